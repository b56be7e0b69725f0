/*
 * features.h — cardio, respiration and activity feature processors.
 *
 * These replace the "feature processors" of the earlier Python service with
 * plain descriptive statistics over cleaned data. Every feature is a struct
 * metric: a number with the amount of data behind it, or a null with the
 * reason. Nothing is ever defaulted. The composite scores (recovery index,
 * stability, oxygenation, consistency) are simple documented transforms of
 * the descriptive statistics, not validated clinical scores; their formulas
 * are in docs/algorithms.md.
 *
 * Inputs are minute series as built by series.h (NaN = missing) or per-day
 * arrays (NaN = no data that day). Workspace: `work` must hold n doubles where
 * a function takes it (copies for cleaning and quantiles). Reentrant, no
 * allocation, no I/O. Functions return 0, or -1 on invalid arguments.
 */
#ifndef CLARITY_ANALYSIS_FEATURES_H
#define CLARITY_ANALYSIS_FEATURES_H

#include <stddef.h>

#include "analysis/metric.h"

/* Physiological plausibility limits (issue #6): values outside are removed. */
#define FEATURES_HR_MIN_BPM 30.0  /* HR <= 30 removed */
#define FEATURES_HR_MAX_BPM 220.0 /* HR > 220 removed */
#define FEATURES_HRV_MIN_MS 5.0   /* SDNN <= 5 removed */
#define FEATURES_HRV_MAX_MS 200.0 /* SDNN > 200 removed */
#define FEATURES_RR_MIN 4.0       /* breaths/min outside [4, 60] removed */
#define FEATURES_RR_MAX 60.0
#define FEATURES_SPO2_MIN 70.0 /* percent outside [70, 100] removed */
#define FEATURES_SPO2_MAX 100.0
#define FEATURES_MAX_GAP_MIN 5     /* interpolate gaps of at most 5 minutes */
#define FEATURES_MIN_HR_MINUTES 60 /* an hour of heart rate for HR features */
#define FEATURES_MIN_SAMPLES 3     /* HRV, respiratory rate, SpO2 samples */

struct features_cardio {
    size_t hr_minutes; /* valid minutes after cleaning + interpolation */
    size_t hr_removed; /* minutes removed as implausible */
    size_t hrv_samples;
    struct metric hr_mean_bpm, hr_max_bpm;
    struct metric hr_resting_bpm;         /* 10th percentile of minute HR */
    struct metric hr_sd_bpm;              /* SD of minute HR */
    struct metric hrv_mean_ms, hrv_sd_ms; /* SDNN samples: mean and SD */
    struct metric recovery_index;         /* mean SDNN (ms) / resting HR (bpm) */
    struct metric day_night_diff_bpm;     /* mean HR 09:00-21:00 minus 00:00-06:00 */
};

/*
 * Cardio features from minute heart rate (bpm) and minute HRV (SDNN, ms, at
 * its natural cadence: most minutes NaN). Implausible values are removed, then
 * heart-rate gaps of at most FEATURES_MAX_GAP_MIN minutes are linearly
 * interpolated (HRV is never interpolated). start_min_of_day is the local
 * clock minute of element 0. work: 2 n doubles. Either series may be NULL.
 */
int features_cardio_compute(const double *hr, const double *hrv, size_t n, int start_min_of_day, double *work,
                            struct features_cardio *out);

struct features_resp {
    size_t rr_samples, spo2_samples;
    struct metric rr_mean, rr_p25, rr_sd;       /* breaths per minute */
    struct metric spo2_mean, spo2_min, spo2_sd; /* percent */
    struct metric rr_stability;                 /* 1 - min(1, SD / mean) of respiratory rate */
    struct metric oxygenation;                  /* share of SpO2 readings >= 95 % */
};

/* Respiration features from minute series of respiratory rate and SpO2 (in
 * percent; convert HealthKit fractions first). work: n doubles. */
int features_resp_compute(const double *rr, const double *spo2, size_t n, double *work, struct features_resp *out);

struct features_activity_input {
    const double *steps_min; /* minute steps (NaN = no sample); may be NULL */
    size_t n_min;
    int start_min_of_day; /* clock minute of steps_min[0] */
    /* per-day totals, NaN = no data that day; any may be NULL */
    const double *distance_m, *active_kcal, *exercise_min, *flights;
    size_t n_days;
    /* time-ordered samples; the latest valid one is reported */
    const double *vo2max;
    size_t n_vo2max;
    const double *resting_hr;
    size_t n_resting_hr;
};

struct features_activity {
    size_t days; /* complete local days with step data */
    struct metric steps_total, steps_daily_mean, steps_daily_peak;
    struct metric steps_consistency; /* 1 - min(1, SD / mean) of daily steps */
    struct metric distance_daily_mean_m, active_kcal_daily_mean, exercise_daily_mean_min;
    struct metric flights_total;
    struct metric vo2max_latest, resting_hr_latest_bpm;
};

/*
 * Activity features. Daily steps use only complete local days (all 1440
 * minutes inside the series) that have at least one step sample; partial
 * first and last days would bias daily figures. work: n_days_in_series
 * doubles, i.e. n_min / 1440 + 1.
 */
int features_activity_compute(const struct features_activity_input *in, double *work, struct features_activity *out);

#endif
