/*
 * metrics.h — request counters and latency histograms in Prometheus text
 * format (https://prometheus.io/docs/instrumenting/exposition_formats/).
 *
 * Recording is lock-free (atomics), so every HTTP thread records without
 * contention on a lock. Series:
 *   clarity_http_requests_total{route,method,status}    counter
 *   clarity_http_request_duration_seconds{route}         histogram
 *   process_start_time_seconds, clarity_uptime_seconds,
 *   process_resident_memory_bytes, process_open_fds      gauges
 * `route` is the route template (bounded cardinality), or "unmatched".
 */
#ifndef CLARITY_HTTP_METRICS_H
#define CLARITY_HTTP_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "http/router.h"

#define METRICS_BUCKETS 12
#define METRICS_SLOTS 1024 /* distinct (route, method, status) series */

struct metrics_counter_slot {
    _Atomic uint32_t key; /* 0 = empty; else packed (route+1, method, status) */
    _Atomic uint64_t count;
};

struct metrics_histogram {
    _Atomic uint64_t bucket[METRICS_BUCKETS + 1]; /* last is +Inf */
    _Atomic uint64_t sum_us;
    _Atomic uint64_t count;
};

struct metrics {
    const struct router *router; /* borrowed: names the route indices */
    struct metrics_counter_slot slots[METRICS_SLOTS];
    _Atomic uint64_t dropped;                             /* series that found no free slot */
    struct metrics_histogram hist[ROUTER_MAX_ROUTES + 1]; /* last: unmatched */
    int64_t start_ms;
};

void metrics_init(struct metrics *m, const struct router *router);

/* Record one finished request. route_index -1 for an unmatched request. */
void metrics_record(struct metrics *m, int route_index, enum http_method method, int status, uint64_t duration_ns);

/* Append the exposition text to out. Returns 0 or -1 (buffer cap). */
int metrics_render(struct metrics *m, struct buf *out);

#endif
