/*
 * pat_health.c — the ml_service health check (see pat_health.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

struct pat_canary {
    struct pat_health_ctx hc;
    int interval_s;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    /* The last result, under mu. */
    json_t *details; /* owned; copied out by pat_canary_check */
    int rc;
    char err[256];
    double at_ms; /* CLOCK_MONOTONIC of the last run */
    unsigned long long runs;
};

static void canary_run(struct pat_canary *c)
{
    json_t *d = json_object();
    char err[256] = "";
    int rc = pat_health_check(&c->hc, d, err, sizeof(err));
    pthread_mutex_lock(&c->mu);
    json_decref(c->details);
    c->details = d;
    c->rc = rc;
    snprintf(c->err, sizeof(c->err), "%s", err);
    c->at_ms = now_ms();
    c->runs++;
    pthread_mutex_unlock(&c->mu);
}

static void *canary_main(void *arg)
{
    struct pat_canary *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += c->interval_s;
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
            ;
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->mu);
        canary_run(c);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct pat_canary *pat_canary_start(const struct pat_health_ctx *hc, int interval_s)
{
    struct pat_canary *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->hc = *hc;
    c->interval_s = interval_s > 0 ? interval_s : 300;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    canary_run(c);
    if (pthread_create(&c->thread, NULL, canary_main, c) != 0) {
        json_decref(c->details);
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    return c;
}

int pat_canary_check(void *ctx, json_t *details, char *err, size_t errlen)
{
    struct pat_canary *c = ctx;
    pthread_mutex_lock(&c->mu);
    int rc = c->rc;
    double age_s = (now_ms() - c->at_ms) / 1000.0;
    if (details != NULL && c->details != NULL)
        json_object_update(details, c->details);
    if (details != NULL) {
        json_object_set_new(details, "canary_age_seconds", json_real(age_s));
        json_object_set_new(details, "canary_runs", json_integer((json_int_t)c->runs));
    }
    if (rc != 0)
        snprintf(err, errlen, "%s", c->err[0] ? c->err : "canary failed");
    else if (age_s > 3.0 * c->interval_s) {
        snprintf(err, errlen, "canary result is %.0f s old (interval %d s)", age_s, c->interval_s);
        rc = -1;
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

unsigned long long pat_canary_runs(const struct pat_canary *c)
{
    if (c == NULL)
        return 0;
    pthread_mutex_t *mu = (pthread_mutex_t *)&c->mu;
    pthread_mutex_lock(mu);
    unsigned long long n = c->runs;
    pthread_mutex_unlock(mu);
    return n;
}

void pat_canary_stop(struct pat_canary *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    json_decref(c->details);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
