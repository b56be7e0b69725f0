/*
 * metrics.c — lock-free counters and histograms. See metrics.h.
 */
#include "http/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/timeutil.h"

/* Upper bounds in seconds, as Prometheus client libraries default to. */
static const double bucket_le[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

void metrics_init(struct metrics *m, const struct router *router)
{
    memset(m, 0, sizeof(*m));
    m->router = router;
    m->start_ms = time_now_ms();
}

static uint32_t pack(int route_index, enum http_method method, int status)
{
    /* route+1 in bits 16..23 (0 = unmatched), method in 10..13, status 0..1023. */
    return ((uint32_t)(route_index + 1) << 16) | ((uint32_t)method << 10) | (uint32_t)(status & 1023) | (1u << 31);
}

void metrics_record(struct metrics *m, int route_index, enum http_method method, int status, uint64_t duration_ns)
{
    if (route_index >= ROUTER_MAX_ROUTES)
        route_index = -1;
    uint32_t key = pack(route_index, method, status);
    /* Open addressing with linear probing; a slot's key is claimed once by CAS
     * and never changes, so readers need no lock. */
    uint32_t h = key * 2654435761u;
    for (int i = 0; i < METRICS_SLOTS; i++) {
        struct metrics_counter_slot *s = &m->slots[(h + (uint32_t)i) % METRICS_SLOTS];
        uint32_t cur = atomic_load_explicit(&s->key, memory_order_acquire);
        if (cur == 0) {
            uint32_t expected = 0;
            if (atomic_compare_exchange_strong(&s->key, &expected, key))
                cur = key;
            else
                cur = expected;
        }
        if (cur == key) {
            atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
            goto histogram;
        }
    }
    atomic_fetch_add_explicit(&m->dropped, 1, memory_order_relaxed);
histogram:;
    struct metrics_histogram *hg = &m->hist[route_index < 0 ? ROUTER_MAX_ROUTES : route_index];
    double secs = (double)duration_ns / 1e9;
    int b = 0;
    while (b < METRICS_BUCKETS && secs > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&hg->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->sum_us, duration_ns / 1000, memory_order_relaxed);
    atomic_fetch_add_explicit(&hg->count, 1, memory_order_relaxed);
}

static const char *route_name(const struct metrics *m, int idx)
{
    if (idx < 0 || m->router == NULL || idx >= m->router->n)
        return "unmatched";
    return m->router->routes[idx].template;
}

static long resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
        rss = -1;
    fclose(f);
    return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory's own descriptor */
}

int metrics_render(struct metrics *m, struct buf *out)
{
    buf_puts(out, "# HELP clarity_http_requests_total HTTP requests by route template, method and status.\n"
                  "# TYPE clarity_http_requests_total counter\n");
    for (int i = 0; i < METRICS_SLOTS; i++) {
        uint32_t key = atomic_load_explicit(&m->slots[i].key, memory_order_acquire);
        if (key == 0)
            continue;
        int route = (int)((key >> 16) & 0xff) - 1;
        int method = (int)((key >> 10) & 0xf);
        int status = (int)(key & 1023);
        buf_printf(out, "clarity_http_requests_total{route=\"%s\",method=\"%s\",status=\"%d\"} %llu\n",
                   route_name(m, route), http_method_name((enum http_method)method), status,
                   (unsigned long long)atomic_load(&m->slots[i].count));
    }
    buf_puts(out, "# HELP clarity_http_request_duration_seconds HTTP request latency by route template.\n"
                  "# TYPE clarity_http_request_duration_seconds histogram\n");
    for (int r = 0; r <= ROUTER_MAX_ROUTES; r++) {
        struct metrics_histogram *hg = &m->hist[r];
        uint64_t count = atomic_load(&hg->count);
        if (count == 0)
            continue;
        const char *name = route_name(m, r == ROUTER_MAX_ROUTES ? -1 : r);
        uint64_t cum = 0;
        for (int b = 0; b < METRICS_BUCKETS; b++) {
            cum += atomic_load(&hg->bucket[b]);
            buf_printf(out, "clarity_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name,
                       bucket_le[b], (unsigned long long)cum);
        }
        cum += atomic_load(&hg->bucket[METRICS_BUCKETS]);
        buf_printf(out, "clarity_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name,
                   (unsigned long long)cum);
        buf_printf(out, "clarity_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name,
                   (double)atomic_load(&hg->sum_us) / 1e6);
        buf_printf(out, "clarity_http_request_duration_seconds_count{route=\"%s\"} %llu\n", name,
                   (unsigned long long)cum);
    }
    int64_t now = time_now_ms();
    buf_printf(out,
               "# HELP clarity_metrics_series_dropped_total Request series not recorded for lack of slots.\n"
               "# TYPE clarity_metrics_series_dropped_total counter\n"
               "clarity_metrics_series_dropped_total %llu\n"
               "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
               "# TYPE process_start_time_seconds gauge\n"
               "process_start_time_seconds %.3f\n"
               "# HELP clarity_uptime_seconds Seconds since the process started.\n"
               "# TYPE clarity_uptime_seconds gauge\n"
               "clarity_uptime_seconds %.3f\n",
               (unsigned long long)atomic_load(&m->dropped), (double)m->start_ms / 1000.0,
               (double)(now - m->start_ms) / 1000.0);
    buf_printf(out,
               "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %ld\n"
               "# HELP process_open_fds Number of open file descriptors.\n"
               "# TYPE process_open_fds gauge\n"
               "process_open_fds %ld\n",
               resident_bytes(), open_fds());
    return out->truncated ? -1 : 0;
}
