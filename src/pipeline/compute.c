/*
 * compute.c — one analysis window (contract in compute.h).
 *
 * Samples -> minute series (analysis/series.h) -> analysis_report_run ->
 * JSON. All science lives in src/analysis/ and src/ml/; this file selects
 * the window, routes each stored metric type to its series and writes down
 * what the results rest on.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "pipeline/compute.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/analysis.h"
#include "analysis/analysis_json.h"
#include "analysis/rest.h"
#include "analysis/series.h"
#include "core/timeutil.h"
#include "core/metric_types.h"
#include "store/store.h"

/* Metric series the window builds, in struct compute_window order. */
/* SK_COUNTS: a research recording's activity counts (ingest/recording.h);
 * where a window has them they are its activity, scored as counts. */
enum series_kind { SK_STEPS = 0, SK_HR, SK_HRV, SK_RESP, SK_SPO2, SK_COUNTS, SK_COUNT };

static const char *const series_types[SK_COUNT] = {
    HK_T_STEPS, HK_T_HEART_RATE, HK_T_HRV, HK_T_RESPIRATORY_RATE, HK_T_BLOOD_OXYGEN, HK_T_ACTIVITY_COUNT};
static const enum series_agg series_aggs[SK_COUNT] = {SERIES_AGG_SUM,  SERIES_AGG_MEAN, SERIES_AGG_MEAN,
                                                      SERIES_AGG_MEAN, SERIES_AGG_MEAN, SERIES_AGG_SUM};
static const char *const series_cov_names[SK_COUNT] = {"steps_minutes",        "heart_rate_minutes",
                                                       "hrv_minutes",          "respiratory_rate_minutes",
                                                       "blood_oxygen_minutes", "activity_count_minutes"};

struct sample_vec {
    struct series_sample *v;
    size_t n, cap;
};

/* State of one streaming pass over the stored samples. */
struct loader {
    struct sample_vec vec[SK_COUNT];
    struct compute_window *w;
    size_t total;
    /* pass 1 (the upload's own samples) */
    int64_t latest_ms;
    int32_t latest_off;
    int found;
    const char *fail_source;
    const char *upload_id; /* pass 2: the upload whose samples fail_source applies to */
    int rejected;
    char *err;
    size_t errlen;
};

void compute_id_derive(const char *kind, const char *parent_id, char out[37])
{
    unsigned char h[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)kind, strlen(kind));
    crypto_generichash_update(&st, (const unsigned char *)":", 1);
    crypto_generichash_update(&st, (const unsigned char *)parent_id, strlen(parent_id));
    crypto_generichash_final(&st, h, sizeof(h));
    h[6] = (unsigned char)((h[6] & 0x0f) | 0x80); /* version 8 */
    h[8] = (unsigned char)((h[8] & 0x3f) | 0x80); /* RFC 9562 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3],
             h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]);
}

/* HealthKit sleep category of a sample payload ({"category": "asleep_core"}),
 * as enum hksleep_category; -1 when absent or unknown. */
static int payload_sleep_category(const char *payload)
{
    static const char *const names[] = {"in_bed",      "asleep_unspecified", "awake",
                                        "asleep_core", "asleep_deep",        "asleep_rem"};
    if (payload == NULL)
        return -1;
    const char *p = strstr(payload, "\"category\":\"");
    if (p == NULL)
        return -1;
    p += 12;
    for (int i = 0; i < 6; i++) {
        size_t l = strlen(names[i]);
        if (strncmp(p, names[i], l) == 0 && p[l] == '"')
            return i;
    }
    return -1;
}

/* Preference rank of a sample's origin (series.h): the watch first, then
 * the phone, then other apps — a minute is never counted twice. */
static uint16_t source_rank(const struct store_sample *s)
{
    if (strstr(s->device, "Watch") != NULL || strstr(s->source, "Watch") != NULL)
        return 0;
    if (strstr(s->device, "iPhone") != NULL || strstr(s->source, "iPhone") != NULL)
        return 1;
    return 2;
}

static int vec_push(struct sample_vec *v, const struct series_sample *s)
{
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 1024;
        struct series_sample *t = realloc(v->v, nc * sizeof(*t));
        if (t == NULL)
            return -1;
        v->v = t;
        v->cap = nc;
    }
    v->v[v->n++] = *s;
    return 0;
}

static int sleep_push(struct compute_window *w, const struct hksleep_interval *iv)
{
    if (w->n_sleep == w->cap_sleep) {
        size_t nc = w->cap_sleep ? w->cap_sleep * 2 : 64;
        struct hksleep_interval *t = realloc(w->sleep, nc * sizeof(*t));
        if (t == NULL)
            return -1;
        w->sleep = t;
        w->cap_sleep = nc;
    }
    w->sleep[w->n_sleep++] = *iv;
    return 0;
}

/* Pass 1: the window ends at the latest end among the upload's (or, with
 * upload_id NULL, the user's) newest samples by start: a long sample, such
 * as a night's sleep, may end after a later-starting short one. */
#define WINDOW_END_PROBE 64
static int window_end(struct store_tx *tx, const char *user_id, const char *upload_id, struct loader *l)
{
    int64_t start[WINDOW_END_PROBE], end[WINDOW_END_PROBE];
    int32_t off[WINDOW_END_PROBE];
    size_t n = 0;
    int rc = store_sample_newest(tx, user_id, upload_id, WINDOW_END_PROBE, start, end, off, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t t = end[i] > start[i] ? end[i] : start[i];
        if (!l->found || t > l->latest_ms) {
            l->latest_ms = t;
            l->latest_off = off[i];
            l->found = 1;
        }
    }
    return 0;
}

/* Pass 2: every sample of the user in the window, routed to its series. */
static int on_window_sample(void *ctx, const struct store_sample *s)
{
    struct loader *l = ctx;
    if (l->fail_source != NULL && l->fail_source[0] != '\0' && strcmp(s->source, l->fail_source) == 0 &&
        strcmp(s->upload_id, l->upload_id) == 0) {
        snprintf(l->err, l->errlen, "samples from source '%s' are rejected by the PIPELINE_TEST_FAULT setting",
                 l->fail_source);
        l->rejected = 1;
        return 1;
    }
    if (++l->total > COMPUTE_MAX_SAMPLES) {
        snprintf(l->err, l->errlen, "the window holds more than %u samples", COMPUTE_MAX_SAMPLES);
        l->rejected = 1;
        return 1;
    }
    if (strcmp(s->metric_type, HK_T_SLEEP) == 0) {
        int cat = payload_sleep_category(s->payload);
        if (cat < 0)
            return 0;
        struct hksleep_interval iv = {s->start_ms, s->end_ms, store_sample_payload_offset(s->payload), source_rank(s),
                                      (uint8_t)cat};
        return sleep_push(l->w, &iv) == 0 ? 0 : 2; /* positive: stop, out of memory */
    }
    for (int k = 0; k < SK_COUNT; k++) {
        if (strcmp(s->metric_type, series_types[k]) == 0) {
            if (!isfinite(s->value))
                return 0;
            struct series_sample ss = {s->start_ms, s->end_ms, s->value, store_sample_payload_offset(s->payload),
                                       source_rank(s)};
            return vec_push(&l->vec[k], &ss) == 0 ? 0 : 2;
        }
    }
    return 0;
}

/* Build one minute series (heap) or leave *out NULL when nothing landed. */
static int series_build(const struct sample_vec *v, int64_t start, size_t n, enum series_agg agg, void *ws,
                        double **out)
{
    *out = NULL;
    if (v->n == 0)
        return 0;
    double *vals = malloc(n * sizeof(double));
    if (vals == NULL)
        return -1;
    if (series_minutes_build(v->v, v->n, start, n, agg, ws, vals, NULL) != 0) {
        free(vals);
        return -1;
    }
    size_t valid = 0;
    for (size_t i = 0; i < n; i++)
        valid += !isnan(vals[i]);
    if (valid == 0) {
        free(vals);
        return 0;
    }
    *out = vals;
    return 0;
}

/* Minute activity from minute steps: HealthKit writes no step sample for a
 * minute without steps, so inside the span the step data covers a missing
 * minute is zero steps (the same rule as series_proxy_actigraphy); before
 * the first and after the last step sample the minutes stay missing. */
static double *activity_from_steps(const double *steps, size_t n)
{
    double *a = malloc(n * sizeof(double));
    if (a == NULL)
        return NULL;
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(steps[i])) {
            if (first == n)
                first = i;
            last = i;
        }
    }
    for (size_t i = 0; i < n; i++)
        a[i] = (i >= first && i <= last && isnan(steps[i])) ? 0.0 : steps[i];
    return a;
}

/* Window pass 2, the reference: every sample of the user in the range, as
 * whole rows through the generic stream. */
static int window_rows_reference(struct store_tx *tx, const char *user_id, int64_t from_ms, int64_t to_ms,
                                 struct loader *l)
{
    struct store_sample_query q;
    memset(&q, 0, sizeof(q));
    q.user_id = user_id;
    q.start_ms = from_ms;
    q.end_ms = to_ms;
    q.ascending = 1;
    /* One statement for the whole window (a limit makes store_sample_each
     * run a single page): its keyset pages would each re-sort the rest. */
    q.limit = COMPUTE_MAX_SAMPLES + 1;
    int rc = store_sample_each(tx, &q, on_window_sample, l);
    if (l->rejected)
        return COMPUTE_EREJECTED;
    if (rc > 0) {
        snprintf(l->err, l->errlen, "out of memory reading samples");
        return COMPUTE_ENOMEM;
    }
    return rc;
}

/* Window pass 2: the columnar read (store_sample_window) of what the series
 * need — type, times, value, source rank, UTC offset, and the payload of
 * sleep samples only. Same rows, same order, same routing as the reference. */
static int window_rows(struct store_tx *tx, const char *user_id, int64_t from_ms, int64_t to_ms, struct loader *l)
{
    /* Types in series_kind order, then sleep (its stage is in the payload). */
    static const char *const types[SK_COUNT + 1] = {
        HK_T_STEPS,        HK_T_HEART_RATE,     HK_T_HRV,  HK_T_RESPIRATORY_RATE,
        HK_T_BLOOD_OXYGEN, HK_T_ACTIVITY_COUNT, HK_T_SLEEP};
    static const char *const ranks[] = {"Watch", "iPhone"}; /* source_rank's rule */
    struct store_window_query wq = {.user_id = user_id,
                                    .types = types,
                                    .n_types = SK_COUNT + 1,
                                    .payload_types = 1u << SK_COUNT,
                                    .ranks = ranks,
                                    .n_ranks = 2,
                                    .from_ms = from_ms,
                                    .to_ms = to_ms,
                                    .max_rows = COMPUTE_MAX_SAMPLES};
    struct store_window w;
    int rc;
    memset(&w, 0, sizeof(w));
    if (l->fail_source != NULL && l->fail_source[0] != '\0') {
        /* TEST ONLY: is there a sample of this upload from that source in
         * the range? */
        struct store_sample_query q;
        struct loader probe;
        memset(&q, 0, sizeof(q));
        memset(&probe, 0, sizeof(probe));
        probe.w = l->w;
        probe.fail_source = l->fail_source;
        probe.upload_id = l->upload_id;
        probe.err = l->err;
        probe.errlen = l->errlen;
        q.user_id = user_id;
        q.upload_id = l->upload_id;
        q.source = l->fail_source;
        q.start_ms = from_ms;
        q.end_ms = to_ms;
        q.ascending = 1;
        q.limit = 1;
        rc = store_sample_each(tx, &q, on_window_sample, &probe);
        if (probe.rejected)
            return COMPUTE_EREJECTED;
        if (rc < 0)
            return rc;
    }
    rc = store_sample_window(tx, &wq, &w);
    if (rc == STORE_ENOMEM) {
        snprintf(l->err, l->errlen, "out of memory reading samples");
        return COMPUTE_ENOMEM;
    }
    if (rc != 0)
        return rc;
    l->total = w.n + w.n_other;
    if (l->total > COMPUTE_MAX_SAMPLES) {
        snprintf(l->err, l->errlen, "the window holds more than %u samples", COMPUTE_MAX_SAMPLES);
        store_window_free(&w);
        return COMPUTE_EREJECTED;
    }
    /* Exact sizes first: one allocation per series. */
    size_t count[SK_COUNT + 1] = {0};
    for (size_t i = 0; i < w.n; i++)
        count[w.type[i]]++;
    for (int k = 0; k < SK_COUNT; k++) {
        if (count[k] == 0)
            continue;
        l->vec[k].v = malloc(count[k] * sizeof(struct series_sample));
        if (l->vec[k].v == NULL)
            goto nomem;
        l->vec[k].cap = count[k];
    }
    for (size_t i = 0; i < w.n; i++) {
        unsigned k = w.type[i];
        if (k == SK_COUNT) {
            const char *pl = w.payload[i] == STORE_WINDOW_NO_PAYLOAD ? NULL : w.text + w.payload[i];
            int cat = payload_sleep_category(pl);
            if (cat < 0)
                continue;
            struct hksleep_interval iv = {w.start_ms[i], w.end_ms[i], w.offset_min[i], w.rank[i], (uint8_t)cat};
            if (sleep_push(l->w, &iv) != 0)
                goto nomem;
            continue;
        }
        if (!isfinite(w.value[i]))
            continue;
        struct sample_vec *v = &l->vec[k];
        struct series_sample *ss = &v->v[v->n++];
        ss->start_ms = w.start_ms[i];
        ss->end_ms = w.end_ms[i];
        ss->value = w.value[i];
        ss->offset_min = w.offset_min[i];
        ss->source = w.rank[i];
    }
    store_window_free(&w);
    return 0;
nomem:
    store_window_free(&w);
    snprintf(l->err, l->errlen, "out of memory reading samples");
    return COMPUTE_ENOMEM;
}

static int window_load(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t now_ms,
                       const char *fail_source, int reference, struct compute_window *out, char *err, size_t errlen)
{
    struct loader l;
    struct compute_window w;
    void *ws = NULL;
    int rc;
    memset(&l, 0, sizeof(l));
    memset(&w, 0, sizeof(w));
    l.w = &w;
    l.err = err;
    l.errlen = errlen;
    l.fail_source = fail_source;

    /* The window ends at the upload's latest sample (window_end). */
    rc = window_end(tx, user_id, upload_id, &l);
    if (rc < 0)
        goto fail;
    if (!l.found) {
        /* A retried upload stores nothing new: analyse up to the user's
         * latest sample instead. */
        rc = window_end(tx, user_id, NULL, &l);
        if (rc < 0)
            goto fail;
        if (!l.found) {
            l.latest_ms = now_ms;
            l.latest_off = 0;
        }
    }
    l.upload_id = upload_id;
    int64_t last_min = series_local_minute(l.latest_ms > 0 ? l.latest_ms - 1 : 0, l.latest_off);
    w.n = COMPUTE_WINDOW_MINUTES + COMPUTE_HISTORY_MINUTES;
    w.history_min = COMPUTE_HISTORY_MINUTES;
    w.start_local_min = last_min + 1 - (int64_t)w.n;
    w.end_utc_ms = l.latest_ms;
    w.end_offset_min = l.latest_off;

    /* Samples are selected by their UTC start; the margins cover any UTC
     * offset (±18 h) and a long sample reaching into the window. */
    int64_t from_ms = l.latest_ms - (int64_t)w.n * 60000 - 36LL * 3600000;
    int64_t to_ms = l.latest_ms + 18LL * 3600000 + 60000;
    rc = reference ? window_rows_reference(tx, user_id, from_ms, to_ms, &l)
                   : window_rows(tx, user_id, from_ms, to_ms, &l);
    if (rc != 0)
        goto fail;
    w.n_samples = l.total;

    ws = malloc(series_workspace_size(w.n));
    if (ws == NULL) {
        rc = COMPUTE_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    double *counts = NULL;
    double **dst[SK_COUNT] = {&w.steps, &w.hr, &w.hrv, &w.resp, &w.spo2, &counts};
    for (int k = 0; k < SK_COUNT; k++) {
        if (series_build(&l.vec[k], w.start_local_min, w.n, series_aggs[k], ws, dst[k]) != 0) {
            rc = COMPUTE_ENOMEM;
            snprintf(err, errlen, "out of memory building the %s series", series_types[k]);
            goto fail;
        }
    }
    if (counts != NULL) {
        /* A recording's counts are the activity, scored as counts (as
         * `clarity analyze` does); steps stay steps. */
        w.activity = counts;
    } else if (w.steps != NULL) {
        w.activity = activity_from_steps(w.steps, w.n);
        if (w.activity == NULL) {
            rc = COMPUTE_ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        w.steps_are_activity = 1;
    }
    for (int k = 0; k < SK_COUNT; k++)
        free(l.vec[k].v);
    free(ws);
    *out = w;
    return 0;
fail:
    for (int k = 0; k < SK_COUNT; k++)
        free(l.vec[k].v);
    free(ws);
    compute_window_free(&w);
    return rc;
}

int compute_window_load(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t now_ms,
                        const char *fail_source, struct compute_window *out, char *err, size_t errlen)
{
    return window_load(tx, user_id, upload_id, now_ms, fail_source, 0, out, err, errlen);
}

int compute_window_load_reference(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t now_ms,
                                  const char *fail_source, struct compute_window *out, char *err, size_t errlen)
{
    return window_load(tx, user_id, upload_id, now_ms, fail_source, 1, out, err, errlen);
}

int compute_window_from_minutes(const double *values, size_t n, int64_t start_local_min, int steps,
                                struct compute_window *out, char *err, size_t errlen)
{
    struct compute_window w;
    memset(&w, 0, sizeof(w));
    if (values == NULL || n == 0 || n > SERIES_MAX_MINUTES) {
        snprintf(err, errlen, "a series of 1 to %u minutes is required", SERIES_MAX_MINUTES);
        return COMPUTE_EREJECTED;
    }
    w.n = n;
    w.start_local_min = start_local_min;
    w.n_samples = n;
    double *copy = malloc(n * sizeof(double));
    if (copy == NULL)
        goto nomem;
    memcpy(copy, values, n * sizeof(double));
    if (steps) {
        w.steps = copy;
        w.activity = activity_from_steps(copy, n);
        if (w.activity == NULL)
            goto nomem;
        w.steps_are_activity = 1;
    } else {
        w.activity = copy;
    }
    *out = w;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    if (w.steps == NULL)
        free(copy);
    compute_window_free(&w);
    return COMPUTE_ENOMEM;
}

void compute_window_free(struct compute_window *w)
{
    if (w == NULL)
        return;
    free(w->activity);
    free(w->steps);
    free(w->hr);
    free(w->hrv);
    free(w->resp);
    free(w->spo2);
    free(w->sleep);
    memset(w, 0, sizeof(*w));
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static size_t count_valid(const double *v, size_t n)
{
    size_t c = 0;
    if (v != NULL)
        for (size_t i = 0; i < n; i++)
            c += !isnan(v[i]);
    return c;
}

static json_t *metric_mean_json(double sum, size_t n, const char *reason)
{
    struct metric m = n > 0 ? metric_value_ok(sum / (double)n, n) : metric_value_null(reason, 0);
    return analysis_json_metric(&m);
}

/* The nights the device recorded: one local noon-to-noon window per day of
 * the analysis window (hksleep.h), with their means. */
static json_t *hk_sleep_json(const struct compute_window *w, size_t *n_nights)
{
    json_t *o = json_object(), *nights = json_array();
    void *ws = malloc(hksleep_workspace_size(1440));
    double tst = 0, eff = 0, deep = 0, rem = 0;
    size_t n_tst = 0, n_eff = 0, n_deep = 0, n_rem = 0;
    *n_nights = 0;
    if (o == NULL || nights == NULL || ws == NULL)
        goto fail;
    if (w->n_sleep > 0) {
        int64_t wk = w->start_local_min + (int64_t)w->history_min; /* the analysed week */
        int64_t d0 = floor_div(wk - 720, 1440);
        int64_t d1 = floor_div(w->start_local_min + (int64_t)w->n - 1 - 720, 1440);
        for (int64_t d = d0; d <= d1; d++) {
            int64_t start = d * 1440 + 720;
            struct hksleep_night nt;
            if (hksleep_night_compute(w->sleep, w->n_sleep, start, 1440, ws, &nt) != 0)
                goto fail;
            if (!metric_value_valid(&nt.base.total_sleep_min))
                continue;
            json_t *j = analysis_json_hksleep_night(&nt, start);
            if (j == NULL || json_array_append_new(nights, j) != 0)
                goto fail;
            (*n_nights)++;
            tst += nt.base.total_sleep_min.value;
            n_tst++;
            if (metric_value_valid(&nt.base.efficiency_pct)) {
                eff += nt.base.efficiency_pct.value;
                n_eff++;
            }
            if (metric_value_valid(&nt.deep_pct)) {
                deep += nt.deep_pct.value;
                n_deep++;
            }
            if (metric_value_valid(&nt.rem_pct)) {
                rem += nt.rem_pct.value;
                n_rem++;
            }
        }
    }
    json_object_set_new(o, "nights", nights);
    nights = NULL;
    json_object_set_new(o, "total_sleep_mean_min", metric_mean_json(tst, n_tst, "no recorded sleep"));
    json_object_set_new(o, "efficiency_mean_pct", metric_mean_json(eff, n_eff, "no recorded time in bed"));
    json_object_set_new(o, "deep_mean_pct", metric_mean_json(deep, n_deep, "no recorded sleep stages"));
    json_object_set_new(o, "rem_mean_pct", metric_mean_json(rem, n_rem, "no recorded sleep stages"));
    free(ws);
    return o;
fail:
    free(ws);
    json_decref(nights);
    json_decref(o);
    return NULL;
}

/* A watch "reports heart rate" when the window has heart-rate values in at
 * least COMPUTE_HR_WORN_HOURS distinct hours: only then is a long gap in
 * them evidence that the watch was off (docs/algorithms.md, Non-wear). */
#define COMPUTE_HR_GAP_MIN 60
#define COMPUTE_HR_WORN_HOURS 24
static int watch_reports_hr(const struct compute_window *w)
{
    if (w->hr == NULL)
        return 0;
    size_t hours = 0;
    for (size_t h = 0; h * 60 < w->n; h++) {
        size_t hi = h * 60 + 60 < w->n ? h * 60 + 60 : w->n;
        for (size_t i = h * 60; i < hi; i++) {
            if (!isnan(w->hr[i])) {
                hours++;
                break;
            }
        }
    }
    return hours >= COMPUTE_HR_WORN_HOURS;
}

/* The PAT section: the pooled embedding of the window's last week. */
static json_t *pat_json(const struct compute_window *w, const struct compute_pat *pat, char *err, size_t errlen,
                        int *failed)
{
    *failed = 0;
    if (pat == NULL || pat->model == NULL)
        return json_pack("{s:n, s:s}", "value", "reason", "no PAT model configured");
    if (w->activity == NULL)
        return json_pack("{s:n, s:s}", "value", "reason", "no activity data in the window");
    float *input = malloc(PAT_MINUTES * sizeof(float));
    float pooled[PAT_EMBED_DIM];
    struct pat_coverage cov;
    struct pat_model_info info;
    json_t *o = NULL;
    if (input == NULL) {
        snprintf(err, errlen, "out of memory");
        *failed = 1;
        return NULL;
    }
    size_t n = w->n > PAT_MINUTES ? PAT_MINUTES : w->n;
    const double *from = w->activity + (w->n - n);
    int rc = pat_input_prepare(from, n, pat->std, input, &cov);
    if (rc == 0)
        rc = pat_model_forward(pat->model, pat->ws, input, NULL, pooled, NULL);
    free(input);
    if (rc != 0) {
        snprintf(err, errlen, "PAT inference failed: %s", clarity_strerror(rc));
        *failed = 1;
        return NULL;
    }
    pat_model_info_get(pat->model, &info);
    json_t *emb = json_array();
    for (size_t i = 0; i < PAT_EMBED_DIM; i++)
        json_array_append_new(emb, json_real((double)pooled[i]));
    o = json_pack("{s:{s:s, s:s, s:s?}, s:{s:I, s:I, s:I, s:f}, s:o}", "model", "variant", info.variant, "sha256",
                  info.sha256, "version", pat->model_version, "coverage", "minutes", (json_int_t)cov.n_minutes,
                  "present", (json_int_t)cov.n_present, "missing", (json_int_t)cov.n_missing, "fraction", cov.fraction,
                  "embedding", emb);
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        *failed = 1;
    }
    return o;
}

/* One analysis of minutes [off, off + len) of w. */
static int run_slice(const struct compute_window *w, const double *activity, const uint8_t *recorded,
                     const uint8_t *nonwear, size_t off, size_t len, const struct analysis_params *p, void *ws,
                     size_t wsz, struct analysis_report *r)
{
    int64_t start = w->start_local_min + (int64_t)off;
    int64_t day = floor_div(start, 1440);
#define AT(x) ((x) != NULL ? (x) + off : NULL)
    struct analysis_input in = {
        activity + off, len,          (int)(start - day * 1440), AT(w->hr),    AT(w->hrv), AT(w->resp),
        AT(w->spo2),    AT(w->steps), w->steps_are_activity,     AT(recorded), AT(nonwear)};
#undef AT
    return analysis_report_run(&in, p, ws, wsz, r);
}

/* Days of [off, off + len) with any activity minute. */
static size_t days_with_activity(const double *a, size_t off, size_t len)
{
    size_t days = 0;
    for (size_t d = 0; d * 1440 < len; d++) {
        size_t lo = off + d * 1440, hi = off + (d + 1) * 1440 < off + len ? off + (d + 1) * 1440 : off + len;
        for (size_t i = lo; i < hi; i++) {
            if (!isnan(a[i])) {
                days++;
                break;
            }
        }
    }
    return days;
}

/* {"this_week", "baseline", "change", "baseline_weeks"} of one figure: the
 * week's value against the mean of the previous weeks' values; null (with
 * the reason) unless both exist and at least two baseline weeks do. */
static json_t *trend_json(const struct metric *now, const double *weeks, const int *ok, size_t n_weeks)
{
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n_weeks; i++)
        if (ok[i]) {
            s += weeks[i];
            k++;
        }
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "baseline_weeks", json_integer((json_int_t)k));
    if (!metric_value_valid(now)) {
        json_object_set_new(o, "value", json_null());
        json_object_set_new(o, "reason", json_string("no value this week"));
    } else if (k < 2) {
        json_object_set_new(o, "value", json_null());
        json_object_set_new(o, "reason", json_string("fewer than two earlier weeks with a value"));
    } else {
        double base = s / (double)k;
        json_object_set_new(o, "value", json_real(now->value - base));
        json_object_set_new(o, "this_week", json_real(now->value));
        json_object_set_new(o, "baseline", json_real(base));
    }
    return o;
}

/* The night figure a user's trend follows: recorded or scored sleep time,
 * else the estimated rest period (steps). */
static const struct metric *night_figure(const struct analysis_report *r)
{
    return metric_value_valid(&r->tst_mean_min) ? &r->tst_mean_min : &r->rest_mean_min;
}

int compute_window_analyse(const struct compute_window *w, const struct compute_pat *pat, json_t **result,
                           json_t **coverage, char *err, size_t errlen)
{
    struct analysis_params p = analysis_params_default();
    struct analysis_report r;
    json_t *res = NULL, *rep = NULL, *cov = NULL, *hk = NULL, *pj = NULL, *c28 = NULL, *tr = NULL;
    double *nan_activity = NULL;
    uint8_t *recorded = NULL, *nonwear = NULL;
    void *ws = NULL;
    int rc = COMPUTE_ENOMEM;
    char a[64], b[64], tbuf[40];
    size_t n_nights = 0;
    if (w == NULL || w->n == 0 || w->history_min >= w->n) {
        snprintf(err, errlen, "empty window");
        return COMPUTE_EINTERNAL;
    }
    const double *activity = w->activity;
    if (activity == NULL) {
        /* No movement data: every activity-based metric is null with its
         * reason; the other series are still analysed. */
        nan_activity = malloc(w->n * sizeof(double));
        if (nan_activity == NULL)
            goto nomem;
        for (size_t i = 0; i < w->n; i++)
            nan_activity[i] = NAN;
        activity = nan_activity;
    }
    /* The Watch's own sleep record takes every night it covers. */
    if (w->n_sleep > 0) {
        recorded = malloc(w->n);
        void *hws = malloc(hksleep_workspace_size(w->n));
        int hrc = (recorded == NULL || hws == NULL)
                      ? -1
                      : hksleep_states_build(w->sleep, w->n_sleep, w->start_local_min, w->n, hws, recorded);
        free(hws);
        if (hrc != 0)
            goto nomem;
    }
    /* Non-wear of a watch that reports heart rate: gaps in it. */
    if (watch_reports_hr(w)) {
        nonwear = malloc(w->n);
        if (nonwear == NULL || rest_nonwear_hr_gaps(w->hr, w->n, COMPUTE_HR_GAP_MIN, nonwear, NULL) != 0)
            goto nomem;
        /* a minute the watch scored asleep was worn, heart rate or not */
        if (recorded != NULL)
            for (size_t i = 0; i < w->n; i++)
                if (recorded[i] == SLEEP_STATE_SLEEP)
                    nonwear[i] = 0;
    }
    /* The analysed week: the last n - history_min minutes. */
    const size_t off = w->history_min, nw = w->n - w->history_min;
    const size_t span28 = w->n < 4 * 7 * 1440 ? w->n : 4 * 7 * 1440;
    size_t wsz = analysis_workspace_size(nw > span28 ? nw : span28, p.bin_min);
    ws = malloc(wsz);
    if (ws == NULL)
        goto nomem;
    if (run_slice(w, activity, recorded, nonwear, off, nw, &p, ws, wsz, &r) != 0) {
        snprintf(err, errlen, "the analysis library refused the window (%zu minutes)", nw);
        rc = COMPUTE_EREJECTED;
        goto fail;
    }
    rep = analysis_json_report(&r, &p, w->start_local_min + (int64_t)off, w->hr != NULL || w->hrv != NULL,
                               w->resp != NULL || w->spo2 != NULL, w->steps != NULL);
    hk = hk_sleep_json(w, &n_nights);
    if (rep == NULL || hk == NULL)
        goto nomem;
    int pat_failed = 0;
    pj = pat_json(w, pat, err, errlen, &pat_failed);
    if (pat_failed) {
        rc = COMPUTE_EINTERNAL;
        goto fail;
    }
    if (pj == NULL)
        goto nomem;

    if (w->history_min > 0) {
        /* Trends: this week against each of the four weeks before it. */
        const struct metric this_night = *night_figure(&r), this_steps = r.activity.steps_daily_mean, this_sri = r.sri;
        double wn[4], ws_[4], wr[4];
        int on[4], os[4], orr[4];
        size_t n_weeks = 0;
        for (size_t k = 1; k <= 4 && k * nw <= off; k++) {
            struct analysis_report rw;
            if (run_slice(w, activity, recorded, nonwear, off - k * nw, nw, &p, ws, wsz, &rw) != 0)
                goto nomem;
            const struct metric *fn = night_figure(&rw);
            on[n_weeks] = metric_value_valid(fn) && metric_value_valid(&this_night) &&
                          (fn == &rw.tst_mean_min) == (night_figure(&r) == &r.tst_mean_min);
            wn[n_weeks] = fn->value;
            os[n_weeks] = metric_value_valid(&rw.activity.steps_daily_mean);
            ws_[n_weeks] = rw.activity.steps_daily_mean.value;
            orr[n_weeks] = metric_value_valid(&rw.sri);
            wr[n_weeks] = rw.sri.value;
            n_weeks++;
        }
        tr = json_object();
        if (tr == NULL)
            goto nomem;
        json_object_set_new(tr, "basis", json_string("this week against the mean of the previous four weeks"));
        json_object_set_new(
            tr, metric_value_valid(&r.tst_mean_min) ? "total_sleep_change_min" : "estimated_rest_change_min",
            trend_json(&this_night, wn, on, n_weeks));
        json_object_set_new(tr, "steps_daily_change", trend_json(&this_steps, ws_, os, n_weeks));
        json_object_set_new(tr, "sleep_regularity_change", trend_json(&this_sri, wr, orr, n_weeks));

        /* The 28 days up to the window's end, where data reach. */
        struct analysis_report r28;
        size_t o28 = w->n - span28;
        if (run_slice(w, activity, recorded, nonwear, o28, span28, &p, ws, wsz, &r28) != 0)
            goto nomem;
        size_t d28 = days_with_activity(activity, o28, span28);
        c28 = json_object();
        if (c28 == NULL)
            goto nomem;
        json_object_set_new(c28, "days", json_integer((json_int_t)(span28 / 1440)));
        json_object_set_new(c28, "days_with_data", json_integer((json_int_t)d28));
        if (d28 < 14) {
            struct metric none = metric_value_null("fewer than 14 days of data in the last 28", d28);
            json_object_set_new(c28, "interdaily_stability", analysis_json_metric(&none));
            json_object_set_new(c28, "intradaily_variability", analysis_json_metric(&none));
            json_object_set_new(c28, "relative_amplitude", analysis_json_metric(&none));
        } else {
            json_object_set_new(c28, "valid_bins", json_integer((json_int_t)r28.npar.n_bins));
            json_object_set_new(c28, "interdaily_stability", analysis_json_metric(&r28.npar.is));
            json_object_set_new(c28, "intradaily_variability", analysis_json_metric(&r28.npar.iv));
            json_object_set_new(c28, "relative_amplitude", analysis_json_metric(&r28.npar.ra));
            json_object_set_new(c28, "l5", analysis_json_metric(&r28.npar.l5));
            json_object_set_new(c28, "l5_onset_clock_min", analysis_json_metric(&r28.npar.l5_onset_min));
            json_object_set_new(c28, "m10", analysis_json_metric(&r28.npar.m10));
            json_object_set_new(c28, "m10_onset_clock_min", analysis_json_metric(&r28.npar.m10_onset_min));
        }
    }

    analysis_json_local_time(w->start_local_min + (int64_t)off, a, sizeof(a));
    analysis_json_local_time(w->start_local_min + (int64_t)w->n, b, sizeof(b));
    res = json_object();
    if (res == NULL)
        goto nomem;
    json_object_set_new(res, "schema_version", json_integer(COMPUTE_RESULT_VERSION));
    json_t *win = json_pack("{s:s, s:s, s:I}", "start_local", a, "end_local", b, "minutes", (json_int_t)nw);
    if (win != NULL && w->end_utc_ms != 0) {
        json_object_set_new(win, "end_utc", json_string(time_format_rfc3339_s(w->end_utc_ms, tbuf, sizeof(tbuf))));
        json_object_set_new(win, "utc_offset_min", json_integer(w->end_offset_min));
    }
    if (win != NULL && w->history_min > 0)
        json_object_set_new(win, "history_minutes", json_integer((json_int_t)w->history_min));
    json_object_set_new(res, "window", win);
    json_object_set_new(
        res, "algorithms",
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "series", "clarity-series-1 (source-ranked minutes)", "activity",
                  w->steps_are_activity ? "minute steps, zero-filled inside the data span" : "posted activity counts",
                  "sleep_wake",
                  w->steps_are_activity ? "watch sleep record; else estimated rest period from steps (clarity-rest-1)"
                                        : "watch sleep record; else cole-kripke-1992 + webster rescoring",
                  "circadian", "npar (IS, IV, RA, L5, M10) + 24 h cosinor", "healthkit_sleep",
                  "clarity-hksleep-1 (noon-to-noon nights)"));
    if (json_object_update(res, rep) != 0)
        goto nomem;
    json_object_set_new(res, "healthkit_sleep", hk);
    hk = NULL;
    json_object_set_new(res, "pat", pj);
    pj = NULL;
    if (c28 != NULL) {
        json_object_set_new(res, "circadian_28d", c28);
        c28 = NULL;
    }
    if (tr != NULL) {
        json_object_set_new(res, "trends", tr);
        tr = NULL;
    }

    /* Coverage: what the figures rest on (the analysed week). */
    cov = json_object();
    if (cov == NULL)
        goto nomem;
    const double *series[SK_COUNT] = {w->steps, w->hr,   w->hrv,
                                      w->resp,  w->spo2, w->steps_are_activity ? NULL : w->activity};
    size_t days = nw / 1440 ? nw / 1440 : 1, days_with_data = 0;
    for (size_t d = 0; d * 1440 < nw; d++) {
        size_t lo = off + d * 1440, hi = lo + 1440 < w->n ? lo + 1440 : w->n;
        int any = 0;
        for (int k = 0; k < SK_COUNT && !any; k++)
            if (series[k] != NULL)
                for (size_t i = lo; i < hi && !any; i++)
                    any = !isnan(series[k][i]);
        if (!any && w->activity != NULL && !w->steps_are_activity)
            for (size_t i = lo; i < hi && !any; i++)
                any = !isnan(w->activity[i]);
        days_with_data += (size_t)any;
    }
    if (days_with_data > days)
        days_with_data = days;
    json_object_set_new(cov, "minutes", json_integer((json_int_t)nw));
    json_object_set_new(cov, "activity_minutes",
                        json_integer((json_int_t)count_valid(w->activity ? w->activity + off : NULL, nw)));
    for (int k = 0; k < SK_COUNT; k++)
        json_object_set_new(cov, series_cov_names[k],
                            json_integer((json_int_t)count_valid(series[k] ? series[k] + off : NULL, nw)));
    json_object_set_new(cov, "sleep_nights", json_integer((json_int_t)n_nights));
    json_object_set_new(cov, "days", json_integer((json_int_t)days));
    json_object_set_new(cov, "days_with_data", json_integer((json_int_t)days_with_data));
    json_object_set_new(cov, "samples", json_integer((json_int_t)w->n_samples));
    json_object_set_new(cov, "fraction", json_real((double)days_with_data / (double)days));

    json_decref(rep);
    free(ws);
    free(nan_activity);
    free(recorded);
    free(nonwear);
    *result = res;
    *coverage = cov;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    rc = COMPUTE_ENOMEM;
fail:
    json_decref(res);
    json_decref(rep);
    json_decref(cov);
    json_decref(hk);
    json_decref(pj);
    json_decref(c28);
    json_decref(tr);
    free(ws);
    free(nan_activity);
    free(recorded);
    free(nonwear);
    return rc;
}
