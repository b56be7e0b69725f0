/*
 * features.c — cardio, respiration and activity features (see features.h).
 */
#include "analysis/features.h"

#include <math.h>

#include "analysis/stats.h"

/* Copy x into dst keeping values in (lo, hi] or [lo, hi] as asked; others NaN.
 * Returns how many finite values were removed. */
static size_t clean_copy(const double *x, size_t n, double lo, int lo_inclusive, double hi, double *dst)
{
    size_t removed = 0;
    for (size_t i = 0; i < n; i++) {
        double v = x ? x[i] : NAN;
        int ok = isfinite(v) && (lo_inclusive ? v >= lo : v > lo) && v <= hi;
        if (!ok && isfinite(v))
            removed++;
        dst[i] = ok ? v : NAN;
    }
    return removed;
}

/* Mean of the valid values whose clock minute lies in [from, to). */
static double clock_mean(const double *x, size_t n, int start, int from, int to, size_t *k_out)
{
    double s = 0.0;
    size_t k = 0;
    int m = start; /* clock minute of x[i], advanced without a division */
    for (size_t i = 0; i < n; i++) {
        if (m >= from && m < to && !isnan(x[i])) {
            s += x[i];
            k++;
        }
        if (++m == 1440)
            m = 0;
    }
    *k_out = k;
    return k ? s / (double)k : NAN;
}

int features_cardio_compute(const double *hr, const double *hrv, size_t n, int start_min_of_day, double *work,
                            struct features_cardio *out)
{
    if (!out || (n && !work) || start_min_of_day < 0 || start_min_of_day >= 1440)
        return -1;
    double *h = work, *v = work + n;
    struct features_cardio r;
    /* HR <= 30 or > 220 is not a heart rate (issue #6 limits). */
    r.hr_removed = clean_copy(hr, n, FEATURES_HR_MIN_BPM, 0, FEATURES_HR_MAX_BPM, h);
    stats_gaps_interpolate(h, n, FEATURES_MAX_GAP_MIN);
    clean_copy(hrv, n, FEATURES_HRV_MIN_MS, 0, FEATURES_HRV_MAX_MS, v);
    r.hr_minutes = stats_count_valid(h, n);
    r.hrv_samples = stats_count_valid(v, n);

    size_t k = r.hr_minutes;
    if (k < FEATURES_MIN_HR_MINUTES) {
        const char *why = k ? "less than an hour of heart rate" : "no heart rate data";
        r.hr_mean_bpm = r.hr_max_bpm = r.hr_resting_bpm = r.hr_sd_bpm = r.day_night_diff_bpm =
            metric_value_null(why, k);
    } else {
        r.hr_mean_bpm = metric_value_ok(stats_mean_compute(h, n), k);
        r.hr_max_bpm = metric_value_ok(stats_max_compute(h, n), k);
        r.hr_sd_bpm = metric_value_ok(stats_sd_compute(h, n), k);
        size_t kd, kn;
        double day = clock_mean(h, n, start_min_of_day, 9 * 60, 21 * 60, &kd);
        double night = clock_mean(h, n, start_min_of_day, 0, 6 * 60, &kn);
        r.day_night_diff_bpm = (kd >= FEATURES_MIN_HR_MINUTES && kn >= FEATURES_MIN_HR_MINUTES)
                                   ? metric_value_ok(day - night, kd + kn)
                                   : metric_value_null("less than an hour of day or night heart rate", kd + kn);
        /* quantile reorders its workspace: reuse the HRV half after HRV stats */
    }
    if (r.hrv_samples < FEATURES_MIN_SAMPLES) {
        const char *why = r.hrv_samples ? "fewer than three HRV samples" : "no HRV data";
        r.hrv_mean_ms = r.hrv_sd_ms = metric_value_null(why, r.hrv_samples);
    } else {
        r.hrv_mean_ms = metric_value_ok(stats_mean_compute(v, n), r.hrv_samples);
        r.hrv_sd_ms = metric_value_ok(stats_sd_compute(v, n), r.hrv_samples);
    }
    if (k >= FEATURES_MIN_HR_MINUTES)
        r.hr_resting_bpm = metric_value_ok(stats_quantile_compute(h, n, 0.10, v), k);
    if (metric_value_valid(&r.hrv_mean_ms) && metric_value_valid(&r.hr_resting_bpm))
        r.recovery_index = metric_value_ok(r.hrv_mean_ms.value / r.hr_resting_bpm.value, r.hrv_samples);
    else
        r.recovery_index = metric_value_null(
            metric_value_valid(&r.hrv_mean_ms) ? r.hr_resting_bpm.reason : r.hrv_mean_ms.reason, r.hrv_samples);
    *out = r;
    return 0;
}

int features_resp_compute(const double *rr, const double *spo2, size_t n, double *work, struct features_resp *out)
{
    if (!out || (n && !work))
        return -1;
    struct features_resp r;
    /* Respiratory rate first, in work; then SpO2 reuses work. */
    double p25 = NAN, mean, sd;
    clean_copy(rr, n, FEATURES_RR_MIN, 1, FEATURES_RR_MAX, work);
    r.rr_samples = stats_count_valid(work, n);
    mean = stats_mean_compute(work, n);
    sd = stats_sd_compute(work, n);
    if (r.rr_samples >= FEATURES_MIN_SAMPLES) {
        /* quantile needs scratch: the series is compacted into the same array,
         * which the selection may then reorder — nothing reads it afterwards */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (!isnan(work[i]))
                work[m++] = work[i];
        p25 = stats_quantile_compute(work, m, 0.25, work);
        r.rr_mean = metric_value_ok(mean, r.rr_samples);
        r.rr_p25 = metric_value_ok(p25, r.rr_samples);
        r.rr_sd = metric_value_ok(sd, r.rr_samples);
        r.rr_stability = metric_value_ok(1.0 - fmin(1.0, sd / mean), r.rr_samples);
    } else {
        const char *why = r.rr_samples ? "fewer than three respiratory-rate samples" : "no respiratory-rate data";
        r.rr_mean = r.rr_p25 = r.rr_sd = r.rr_stability = metric_value_null(why, r.rr_samples);
    }
    clean_copy(spo2, n, FEATURES_SPO2_MIN, 1, FEATURES_SPO2_MAX, work);
    r.spo2_samples = stats_count_valid(work, n);
    if (r.spo2_samples >= FEATURES_MIN_SAMPLES) {
        size_t high = 0;
        for (size_t i = 0; i < n; i++)
            high += !isnan(work[i]) && work[i] >= 95.0;
        r.spo2_mean = metric_value_ok(stats_mean_compute(work, n), r.spo2_samples);
        r.spo2_min = metric_value_ok(stats_min_compute(work, n), r.spo2_samples);
        r.spo2_sd = metric_value_ok(stats_sd_compute(work, n), r.spo2_samples);
        r.oxygenation = metric_value_ok((double)high / (double)r.spo2_samples, r.spo2_samples);
    } else {
        const char *why = r.spo2_samples ? "fewer than three SpO2 samples" : "no SpO2 data";
        r.spo2_mean = r.spo2_min = r.spo2_sd = r.oxygenation = metric_value_null(why, r.spo2_samples);
    }
    *out = r;
    return 0;
}

/* Mean of a per-day array over days with data. */
static struct metric daily_mean(const double *x, size_t n, const char *what)
{
    if (!x)
        return metric_value_null(what, 0);
    size_t k = stats_count_valid(x, n);
    return k ? metric_value_ok(stats_mean_compute(x, n), k) : metric_value_null(what, 0);
}

static struct metric latest(const double *x, size_t n, const char *what)
{
    for (size_t i = n; x && i-- > 0;)
        if (isfinite(x[i]))
            return metric_value_ok(x[i], 1);
    return metric_value_null(what, 0);
}

int features_activity_compute(const struct features_activity_input *in, double *work, struct features_activity *out)
{
    if (!in || !out || (in->n_min && (!in->steps_min || !work)) || in->start_min_of_day < 0 ||
        in->start_min_of_day >= 1440)
        return -1;
    struct features_activity r;
    /* complete local days: the first starts at the first local midnight */
    size_t skip = in->start_min_of_day ? (size_t)(1440 - in->start_min_of_day) : 0;
    size_t days = 0;
    for (size_t d = skip; in->steps_min && d + 1440 <= in->n_min; d += 1440) {
        double s = 0.0;
        size_t k = 0;
        for (size_t i = d; i < d + 1440; i++) {
            if (isnan(in->steps_min[i]))
                continue;
            s += in->steps_min[i];
            k++;
        }
        if (k)
            work[days++] = s;
    }
    r.days = days;
    if (days == 0) {
        const char *why = "no complete day with step data";
        r.steps_total = r.steps_daily_mean = r.steps_daily_peak = r.steps_consistency = metric_value_null(why, 0);
    } else {
        double mean = stats_mean_compute(work, days), total = 0.0;
        for (size_t d = 0; d < days; d++)
            total += work[d];
        r.steps_total = metric_value_ok(total, days);
        r.steps_daily_mean = metric_value_ok(mean, days);
        r.steps_daily_peak = metric_value_ok(stats_max_compute(work, days), days);
        if (days < 2)
            r.steps_consistency = metric_value_null("fewer than two days", days);
        else if (mean <= 0.0)
            r.steps_consistency = metric_value_null("no steps", days);
        else
            r.steps_consistency = metric_value_ok(1.0 - fmin(1.0, stats_sd_compute(work, days) / mean), days);
    }
    r.distance_daily_mean_m = daily_mean(in->distance_m, in->n_days, "no distance data");
    r.active_kcal_daily_mean = daily_mean(in->active_kcal, in->n_days, "no active energy data");
    r.exercise_daily_mean_min = daily_mean(in->exercise_min, in->n_days, "no exercise data");
    if (in->flights && stats_count_valid(in->flights, in->n_days)) {
        double total = 0.0;
        for (size_t d = 0; d < in->n_days; d++)
            if (!isnan(in->flights[d]))
                total += in->flights[d];
        r.flights_total = metric_value_ok(total, stats_count_valid(in->flights, in->n_days));
    } else {
        r.flights_total = metric_value_null("no flights data", 0);
    }
    r.vo2max_latest = latest(in->vo2max, in->n_vo2max, "no VO2max sample");
    r.resting_hr_latest_bpm = latest(in->resting_hr, in->n_resting_hr, "no resting heart rate sample");
    *out = r;
    return 0;
}
