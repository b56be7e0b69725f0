/*
 * analysis.h — the full actigraphy analysis of one window, in one call.
 *
 * This is what the pipeline, the `clarity analyze` CLI and the benchmark run:
 * sleep/wake scoring (Cole-Kripke or Sadeh, optional Webster rescoring), main
 * sleep period and metrics per night, SRI, night-to-night timing, IS/IV/RA/
 * L5/M10, cosinor, and — when the series are given — cardio, respiration and
 * activity features. All memory comes from one caller workspace sized by
 * analysis_workspace_size, so a run performs no allocation at all; results
 * that are arrays (per-minute states, nights) point into that workspace and
 * live as long as it does.
 */
#ifndef CLARITY_ANALYSIS_ANALYSIS_H
#define CLARITY_ANALYSIS_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/circadian.h"
#include "analysis/features.h"
#include "analysis/metric.h"
#include "analysis/sleep.h"

enum analysis_scorer {
    ANALYSIS_SCORER_COLE_KRIPKE = 0,
    ANALYSIS_SCORER_SADEH = 1,
};

struct analysis_params {
    enum analysis_scorer scorer;
    enum sleep_ck_scale ck_scale;
    double sadeh_threshold;
    int webster;                       /* apply Webster rescoring */
    struct sleep_period_params period;
    size_t bin_min;                    /* IS/IV/L5/M10 bin width, divides 60 */
    size_t min_awakening_min;
};

/* Cole-Kripke (original scale) with Webster rescoring, hourly bins,
 * sleep_period_params_default(), awakenings of at least 1 minute. */
struct analysis_params analysis_params_default(void);

struct analysis_input {
    const double *activity;   /* minute activity counts, NaN = missing (required) */
    size_t n;                 /* minutes */
    int start_min_of_day;     /* local clock minute of element 0, 0..1439 */
    /* optional minute series of the same length (NULL when absent) */
    const double *heart_rate, *hrv_sdnn, *resp_rate, *spo2_pct, *steps;
};

struct analysis_report {
    size_t n_minutes, n_valid;
    const uint8_t *state;        /* n_minutes states (workspace) */
    size_t n_nights;
    const struct sleep_night *nights; /* workspace */
    struct metric tst_mean_min, efficiency_mean_pct, waso_mean_min, awakenings_mean;
    struct metric sri;
    struct sleep_timing timing;
    struct circadian_npar npar;
    struct circadian_cosinor cosinor;
    struct features_cardio cardio;
    struct features_resp resp;
    struct features_activity activity;
};

/* Bytes of workspace for n minutes with bins of bin_min minutes. */
size_t analysis_workspace_size(size_t n_minutes, size_t bin_min);

/*
 * Run everything. Returns 0; -1 when an argument is invalid (n == 0, n above
 * SERIES_MAX_MINUTES, bad parameters, workspace smaller than
 * analysis_workspace_size). Insufficient data is never an error: it shows up
 * as null metrics with reasons.
 */
int analysis_report_run(const struct analysis_input *in, const struct analysis_params *p,
                        void *workspace, size_t workspace_size, struct analysis_report *out);

#endif
