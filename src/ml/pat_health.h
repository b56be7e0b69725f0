/*
 * pat_health.h — the "ml_service" deep health check for GET /health.
 *
 * The check proves the encoder is usable right now: a model is loaded and a
 * canary inference (one forward pass on an all-zero week, i.e. every minute
 * at the reference mean) finishes with finite outputs within a latency
 * bound. It matches health_check_fn (core/health.h), so the lead registers
 *   health_register(&reg, "ml_service", pat_health_check, &ctx);
 */
#ifndef CLARITY_ML_PAT_HEALTH_H
#define CLARITY_ML_PAT_HEALTH_H

#include <stddef.h>

#include <jansson.h>

#include "ml/pat.h"

struct pat_health_ctx {
    const struct pat_model *model; /* borrowed; NULL: no weights configured */
    const char *model_version;     /* borrowed; ACTIGRAPHY_MODEL_VERSION, may be NULL */
    double max_latency_ms;         /* canary bound; <= 0 means 2000 ms */
    int required;                  /* 1: a missing model is unhealthy; 0: it is
                                      reported as "disabled" and healthy */
};

/*
 * health_check_fn for "ml_service". ctx is a struct pat_health_ctx
 * (borrowed). Adds to details (borrowed): "model_loaded", "variant",
 * "model_version", "sha256", "canary_ms". Returns 0 when healthy, -1 with a
 * short reason in err otherwise. Thread-safe: the canary uses its own
 * workspace (allocated per call, ~1-20 MB).
 */
int pat_health_check(void *ctx, json_t *details, char *err, size_t errlen);

/*
 * The canary in the background, so that GET /health costs no inference:
 * pat_canary_start runs pat_health_check once before returning (start-up,
 * i.e. after every model change, which needs a new process), then every
 * interval_s seconds on its own thread. pat_canary_check is the
 * health_check_fn that reports the last result ("canary_age_seconds",
 * "canary_runs" added); a result older than three intervals is unhealthy
 * (the canary thread is stuck). Returns NULL when out of memory or when
 * the thread cannot start. hc is copied.
 */
struct pat_canary;
struct pat_canary *pat_canary_start(const struct pat_health_ctx *hc, int interval_s);
int pat_canary_check(void *ctx, json_t *details, char *err, size_t errlen);
/* Canary runs so far (for /metrics). */
unsigned long long pat_canary_runs(const struct pat_canary *c);
/* Stop the thread and free. Accepts NULL. */
void pat_canary_stop(struct pat_canary *c);

#endif
