/*
 * health.c — deep health check registry. See health.h.
 */
#include "core/health.h"

#include <string.h>

#include "core/timeutil.h"

int health_register(struct health_registry *r, const char *name, health_check_fn fn, void *ctx)
{
    if (r->n >= HEALTH_MAX_CHECKS || fn == NULL || name == NULL)
        return -1;
    r->checks[r->n].name = name;
    r->checks[r->n].fn = fn;
    r->checks[r->n].ctx = ctx;
    r->n++;
    return 0;
}

json_t *health_run(const struct health_registry *r, int *all_ok)
{
    json_t *out = json_object();
    *all_ok = 1;
    for (int i = 0; i < r->n; i++) {
        const struct health_check *c = &r->checks[i];
        json_t *details = json_object();
        char err[256] = "";
        uint64_t t0 = time_mono_ns();
        int rc = c->fn(c->ctx, details, err, sizeof(err));
        double ms = (double)(time_mono_ns() - t0) / 1e6;
        json_object_set_new(details, "status", json_string(rc == 0 ? "healthy" : "unhealthy"));
        json_object_set_new(details, "latency_ms", json_real(ms));
        if (rc != 0) {
            *all_ok = 0;
            json_object_set_new(details, "error", json_string(err[0] ? err : "check failed"));
        }
        json_object_set_new(out, c->name, details);
    }
    return out;
}
