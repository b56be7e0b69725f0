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
#include "analysis/rest.h"
#include "analysis/sleep.h"

enum analysis_scorer {
    ANALYSIS_SCORER_COLE_KRIPKE = 0,
    ANALYSIS_SCORER_SADEH = 1,
};

struct analysis_params {
    enum analysis_scorer scorer;
    enum sleep_ck_scale ck_scale;
    double sadeh_threshold;
    int webster; /* apply Webster rescoring */
    struct sleep_period_params period;
    size_t bin_min; /* IS/IV/L5/M10 bin width, divides 60 */
    size_t min_awakening_min;
    int nonwear_choi;        /* Choi (2011) non-wear on counts (default on;
                                          never applied to steps) */
    struct rest_params rest; /* rest periods from steps (rest.h) */
};

/* Cole-Kripke (original scale) with Webster rescoring, hourly bins,
 * sleep_period_params_default(), awakenings of at least 1 minute, Choi
 * non-wear on counts, rest_params_default(). */
struct analysis_params analysis_params_default(void);

struct analysis_input {
    const double *activity; /* minute activity counts, NaN = missing (required) */
    size_t n;               /* minutes */
    int start_min_of_day;   /* local clock minute of element 0, 0..1439 */
    /* optional minute series of the same length (NULL when absent) */
    const double *heart_rate, *hrv_sdnn, *resp_rate, *spo2_pct, *steps;
    /* activity is a phone's or watch's minute steps, not wrist counts: no
     * sleep scorer runs on it; each night gets an estimated rest period
     * (rest.h) and sleep-only figures are null with the reason. */
    int activity_is_steps;
    /* per-minute states from the device's own sleep record (hksleep.h
     * hksleep_states_build; UNKNOWN on nights it did not record), or NULL.
     * A night (local noon to noon) with any known minute here takes these
     * states for every sleep figure; activity only fills the other nights. */
    const uint8_t *recorded_state;
    /* 1 = device not worn that minute (e.g. heart-rate gaps of a watch), or
     * NULL. Masked minutes are missing for scoring and IS/IV/RA/L5/M10. */
    const uint8_t *nonwear;
};

/* Where a night's figures come from. */
enum analysis_night_basis {
    ANALYSIS_NIGHT_SCORED = 0,    /* sleep/wake scored from wrist counts */
    ANALYSIS_NIGHT_RECORDED = 1,  /* the device's own sleep record */
    ANALYSIS_NIGHT_ESTIMATED = 2, /* estimated rest period from steps */
};

struct analysis_report {
    size_t n_minutes, n_valid;
    const uint8_t *state; /* n_minutes states (workspace) */
    size_t n_nights;
    const struct sleep_night *nights; /* workspace */
    const uint8_t *night_basis;       /* n_nights x enum analysis_night_basis */
    size_t nights_recorded, nights_scored, nights_estimated;
    const uint8_t *nonwear;        /* n_minutes, 1 = masked as not worn */
    struct metric nonwear_min;     /* minutes masked; null when not detectable */
    size_t n_rest;                 /* step nights examined (activity_is_steps) */
    const struct rest_night *rest; /* workspace; reasons for nights without one */
    struct metric rest_mean_min;   /* mean estimated rest period (steps) */
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
int analysis_report_run(const struct analysis_input *in, const struct analysis_params *p, void *workspace,
                        size_t workspace_size, struct analysis_report *out);

#endif
