/*
 * points.h — "posted points → analysis": the one use case behind the PAT
 * API (api/pat.c: /api/v1/pat/analyze, /analyze-step-data) and the chat's
 * health_insight (chat/answer.c).
 *
 * A client posts timestamped step or activity counts; they are summed into
 * local minutes, cut to the last keep_min minutes if asked, and analysed by
 * the same window analysis as the workers (pipeline/compute.h), PAT
 * included when a model is configured — so a result has one shape whichever
 * way it came.
 *
 * PAT needs a workspace of ~20 MB per forward pass. Each thread that
 * analyses gets one on first use and keeps it for every later request (a
 * pthread key frees it when the thread ends), instead of allocating and
 * freeing 20 MB per request.
 */
#ifndef CLARITY_PIPELINE_POINTS_H
#define CLARITY_PIPELINE_POINTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct pat_model;
struct pat_standardization;

/* The PAT encoder the analyses use; all borrowed. model NULL: PAT disabled
 * (the result's "pat" is null with its reason). */
struct points_pat {
    const struct pat_model *model;
    const struct pat_standardization *std;
    const char *model_version; /* ACTIGRAPHY_MODEL_VERSION, may be NULL */
};

/*
 * Analyse n points: minute[i] is a local minute (series_local_minute),
 * value[i] its count (summed when several fall in one minute). steps: 1 for
 * step counts, 0 for activity counts. keep_min > 0 keeps only the last
 * keep_min minutes. Returns 0 with *result and *coverage (new references),
 * or: ANALYSIS_ESPAN (the kept points span more than LIMIT_POINTS_SPAN_MIN
 * minutes), ANALYSIS_EINVAL (the series cannot be analysed; err says why, in
 * words fit for the client), ANALYSIS_EINTERNAL (out of memory or a bug).
 */
int points_analyse(const struct points_pat *pat, const int64_t *minute, const double *value, size_t n, int steps,
                   size_t keep_min, json_t **result, json_t **coverage, char *err, size_t errlen);

struct store;
struct store_analysis;
struct store_audit;

/*
 * Record an analysis of posted points (the PAT API's "analysis.create"):
 * the analysis row and its audit row (prepared by the caller, borrowed) in
 * one transaction. Returns 0 or a STORE_E* code; nothing is written on
 * failure.
 */
int points_analysis_save(struct store *st, const struct store_analysis *a, const struct store_audit *audit);

/*
 * How many PAT workspaces this process has made (test and metrics hook:
 * with reuse it stays at the number of threads that analysed).
 */
size_t points_workspaces_made(void);

#endif
