/*
 * compute.h — one analysis window: from stored samples (or posted minutes)
 * to the versioned result and coverage JSON stored in an `analyses` row.
 *
 * The analysis job (worker.c) and the synchronous PAT API (api/pat.c) both
 * come through here, so a stored analysis has one shape whatever produced
 * it:
 *
 *   result   {"schema_version", "window", "algorithms", "sleep", "circadian",
 *             "cardio"?, "respiration"?, "activity"?, "healthkit_sleep", "pat",
 *             "circadian_28d"?, "trends"?}
 *   coverage {"minutes", "steps_minutes", "heart_rate_minutes", ...,
 *             "sleep_nights", "days_with_data", "samples", "fraction"}
 *
 * "sleep"/"circadian"/... are the analysis library's report
 * (analysis/analysis_json.h); "healthkit_sleep" holds the nights the device
 * recorded (analysis/hksleep.h); "pat" is the encoder's pooled embedding, or
 * {"value": null, "reason": ...} when no model is configured — never a
 * made-up one.
 *
 * Threads: everything here is reentrant; a struct compute_pat's workspace
 * belongs to the calling thread.
 */
#ifndef CLARITY_PIPELINE_COMPUTE_H
#define CLARITY_PIPELINE_COMPUTE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/hksleep.h"
#include "core/err.h"
#include "ml/pat.h"

struct store_tx;

#define COMPUTE_WINDOW_MINUTES (7u * 1440u) /* the default window: one week */
/* Loaded with the week: the four weeks before it, for the user's own
 * baseline (trends) and a 28-day circadian window where data reach. */
#define COMPUTE_HISTORY_MINUTES (28u * 1440u)
#define COMPUTE_RESULT_VERSION 1     /* analyses.version of these results */
#define COMPUTE_MAX_SAMPLES 2000000u /* per window; more is refused */

/* Return codes: COMPUTE_E* in core/err.h; STORE_E* codes pass through. */

/* The PAT encoder for one thread; every pointer borrowed. model NULL: PAT
 * is disabled and results say so. */
struct compute_pat {
    const struct pat_model *model;
    struct pat_workspace *ws;
    const struct pat_standardization *std;
    const char *model_version; /* ACTIGRAPHY_MODEL_VERSION, may be NULL */
};

/* The minute series of one window (heap arrays of n each, NaN = missing;
 * a pointer is NULL when no sample of that metric fell in the window). */
struct compute_window {
    int64_t start_local_min; /* series.h numbering */
    size_t n;
    int64_t end_utc_ms;     /* the instant the window ends at */
    int32_t end_offset_min; /* the UTC offset there */
    double *activity, *steps, *hr, *hrv, *resp, *spo2;
    int steps_are_activity; /* activity was derived from steps */
    size_t history_min;     /* the first history_min minutes precede the
                                analysed week (baseline); 0 = none */
    struct hksleep_interval *sleep;
    size_t n_sleep, cap_sleep;
    size_t n_samples; /* samples read for this window */
};

/*
 * Load the window of user_id's samples that the upload touches: the
 * COMPUTE_WINDOW_MINUTES ending at the upload's latest sample, preceded by
 * COMPUTE_HISTORY_MINUTES of history (history_min) (when the
 * upload stored no new samples, at the user's latest sample; when the user
 * has none, ending at now_ms). fail_source (TEST ONLY, may be NULL) makes an
 * upload holding a sample from that source unanalysable.
 * Returns 0 and fills *out (caller frees with compute_window_free), a
 * STORE_E* code, or COMPUTE_E* with a reason in err.
 */
int compute_window_load(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t now_ms,
                        const char *fail_source, struct compute_window *out, char *err, size_t errlen);
#ifdef CLARITY_TEST_API
/*
 * The same window read the slow way: whole sample rows through the generic
 * stream (store_sample_each), payloads parsed per row. compute_window_load
 * reads only the columns the series need (store_sample_window); this one is
 * kept as the reference the tests hold it to (same window, bit for bit).
 */
int compute_window_load_reference(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t now_ms,
                                  const char *fail_source, struct compute_window *out, char *err, size_t errlen);
#endif

/*
 * A window from posted minute values (the PAT API): values[0..n) are minute
 * step counts (steps = 1) or activity counts (steps = 0) starting at local
 * minute start_local_min; NaN = missing. The values are copied. n must be
 * 1..SERIES_MAX_MINUTES. Returns 0 or COMPUTE_E*.
 */
int compute_window_from_minutes(const double *values, size_t n, int64_t start_local_min, int steps,
                                struct compute_window *out, char *err, size_t errlen);

/*
 * Analyse w: the analysis library, HealthKit sleep nights and, when pat has
 * a model, the PAT embedding of the window's last week. Returns 0 with new
 * references in *result and *coverage (caller decrefs), or COMPUTE_E* with
 * a reason in err.
 */
int compute_window_analyse(const struct compute_window *w, const struct compute_pat *pat, json_t **result,
                           json_t **coverage, char *err, size_t errlen);

/* Free the arrays of w; accepts a zeroed struct. */
void compute_window_free(struct compute_window *w);

/*
 * A deterministic UUID-shaped id for a derived record: BLAKE2b of
 * "<kind>:<parent_id>" with the version nibble set to 8 (RFC 9562 §5.8,
 * custom) and the RFC variant. The same upload always yields the same
 * analysis id, which makes a redelivered job idempotent. out holds 37 bytes.
 */
void compute_id_derive(const char *kind, const char *parent_id, char out[37]);

#endif
