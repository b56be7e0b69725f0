/*
 * pat_health.c — the ml_service health check (see pat_health.h).
 */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "ml/pat_health.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int pat_health_check(void *ctx, json_t *details, char *err, size_t errlen)
{
    const struct pat_health_ctx *c = ctx;
    static const float zeros[PAT_MINUTES]; /* const: the canary input */
    struct pat_model_info info;
    struct pat_workspace *ws = NULL;
    float pooled[PAT_EMBED_DIM];
    double t0, ms, bound;
    int rc = -1;

    if (!c) {
        snprintf(err, errlen, "no ml_service context");
        return -1;
    }
    bound = c->max_latency_ms > 0 ? c->max_latency_ms : 2000.0;
    if (details && c->model_version)
        json_object_set_new(details, "model_version", json_string(c->model_version));
    if (!c->model) {
        if (details)
            json_object_set_new(details, "model_loaded", json_false());
        if (c->required) {
            snprintf(err, errlen, "PAT model not loaded");
            return -1;
        }
        if (details)
            json_object_set_new(details, "state", json_string("disabled"));
        return 0;
    }
    pat_model_info_get(c->model, &info);
    if (details) {
        json_object_set_new(details, "model_loaded", json_true());
        json_object_set_new(details, "variant", json_string(info.variant));
        json_object_set_new(details, "sha256", json_string(info.sha256));
    }
    ws = pat_workspace_new(c->model, 1);
    if (!ws) {
        snprintf(err, errlen, "out of memory for the canary inference");
        goto done;
    }
    t0 = now_ms();
    if (pat_model_forward(c->model, ws, zeros, NULL, pooled, NULL) != PAT_OK) {
        snprintf(err, errlen, "canary inference failed");
        goto done;
    }
    ms = now_ms() - t0;
    if (details)
        json_object_set_new(details, "canary_ms", json_real(ms));
    for (size_t i = 0; i < PAT_EMBED_DIM; i++) {
        if (!isfinite(pooled[i])) {
            snprintf(err, errlen, "canary inference produced non-finite values");
            goto done;
        }
    }
    if (ms > bound) {
        snprintf(err, errlen, "canary inference took %.0f ms (bound %.0f ms)", ms, bound);
        goto done;
    }
    rc = 0;
done:
    pat_workspace_free(ws);
    return rc;
}
