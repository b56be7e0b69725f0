/*
 * analysis_json.h — the analysis results as JSON (jansson), one shape for the
 * CLI, the API and the stored `analyses` rows.
 *
 * A metric renders as {"value": number, "n": count} or, when null,
 * {"value": null, "reason": "...", "n": count}. Times inside a window are
 * local wall-clock strings "YYYY-MM-DDTHH:MM" (the series' own clock, see
 * series.h); clock times of day are minutes after local midnight.
 *
 * Every function returns a new reference (caller owns it, json_decref) or
 * NULL when jansson could not allocate. No I/O.
 */
#ifndef CLARITY_ANALYSIS_ANALYSIS_JSON_H
#define CLARITY_ANALYSIS_ANALYSIS_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/analysis.h"
#include "analysis/hksleep.h"
#include "analysis/metric.h"

/* {"value", "n"[, "reason"]} for one metric. */
json_t *analysis_json_metric(const struct metric *m);

/* "YYYY-MM-DDTHH:MM" of a local minute (series.h numbering) into out,
 * which must hold 64 bytes. Returns out. */
char *analysis_json_local_time(int64_t local_min, char *out, size_t size);

/* One night: period/onset/wake times and the nightly metrics. */
json_t *analysis_json_night(const struct sleep_night *nt, int64_t start_local_min);

/* One HealthKit night: the nightly metrics plus stage minutes/percentages. */
json_t *analysis_json_hksleep_night(const struct hksleep_night *nt, int64_t start_local_min);

/*
 * The whole report: {"parameters", "sleep", "circadian", and "cardio",
 * "respiration", "activity" for the series that were given (has_* flags)}.
 * start_local_min is the local minute of the analysed series' first value.
 */
json_t *analysis_json_report(const struct analysis_report *r, const struct analysis_params *p, int64_t start_local_min,
                             int has_cardio, int has_resp, int has_activity);

#endif
