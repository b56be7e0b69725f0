/*
 * health.h — the registry of deep health checks behind GET /health.
 *
 * Each part of Clarity that owns a dependency (the database, the queue, the
 * ML model) registers a check at start-up. A check does a real round trip and
 * reports healthy or not, plus optional details; the registry times it. The
 * registry is filled before the server starts and is read-only afterwards,
 * so running it needs no lock; checks themselves must be thread-safe.
 */
#ifndef CLARITY_CORE_HEALTH_H
#define CLARITY_CORE_HEALTH_H

#include <jansson.h>

#define HEALTH_MAX_CHECKS 16

/*
 * A check returns 0 when healthy, -1 when not. It may add fields to `details`
 * (borrowed; e.g. depth per topic) and, on failure, must write a short reason
 * into err (never credentials or health values).
 */
typedef int (*health_check_fn)(void *ctx, json_t *details, char *err, size_t errlen);

struct health_check {
    const char *name; /* static, e.g. "database" */
    health_check_fn fn;
    void *ctx; /* borrowed; must outlive the registry's use */
};

struct health_registry {
    struct health_check checks[HEALTH_MAX_CHECKS];
    int n;
};

/* Add a check. Returns 0, or -1 when the registry is full. */
int health_register(struct health_registry *r, const char *name, health_check_fn fn, void *ctx);

/*
 * Run every check in registration order. Returns a new object
 * {name: {status:"healthy", latency_ms, ...details} | {status:"unhealthy",
 * error, latency_ms}} (caller decrefs) and sets *all_ok to 1 when every
 * check passed (also when there are none).
 */
json_t *health_run(const struct health_registry *r, int *all_ok);

#endif
