/*
 * features_test.c — cardio, respiration and activity features
 * (src/analysis/features.c): hand-computed values and null+reason cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/features.h"

#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s:%d: %.12g != %.12g (eps %g)\n", file, line, a, b, eps);
        fail();
    }
}

/* 120 minutes: 60 at 50 bpm then 60 at 70 bpm. Minutes 10-12 are NaN (a
 * 3-minute gap between 50s: interpolated to 50). Minute 20 is 25 bpm and
 * minute 80 is 250 bpm: both implausible, removed, then interpolated (gap 1)
 * back to 50 and 70. So: mean 60, max 70, sample SD = sqrt(120*100/119)
 * = 10.041580, 10th percentile: h = 119 * 0.1 = 11.9, both order statistics
 * 11 and 12 are 50 -> 50. HRV (SDNN) samples 4 (removed, <= 5), 40, 60, 80,
 * 250 (removed, > 200): mean 60, SD 20. Recovery index = 60 / 50 = 1.2. */
static void test_cardio_hand(void **st)
{
    (void)st;
    double hr[120], hrv[120], work[240];
    for (int i = 0; i < 120; i++) {
        hr[i] = i < 60 ? 50 : 70;
        hrv[i] = NAN;
    }
    hr[10] = hr[11] = hr[12] = NAN;
    hr[20] = 25;
    hr[80] = 250;
    hrv[5] = 4;
    hrv[30] = 40;
    hrv[60] = 60;
    hrv[90] = 80;
    hrv[100] = 250;
    struct features_cardio c;
    assert_int_equal(features_cardio_compute(hr, hrv, 120, 0, work, &c), 0);
    assert_int_equal(c.hr_removed, 2);
    assert_int_equal(c.hr_minutes, 120);
    assert_near(c.hr_mean_bpm.value, 60, 1e-12);
    assert_near(c.hr_max_bpm.value, 70, 0);
    assert_near(c.hr_sd_bpm.value, sqrt(12000.0 / 119.0), 1e-9);
    assert_near(c.hr_resting_bpm.value, 50, 0);
    assert_int_equal(c.hrv_samples, 3);
    assert_near(c.hrv_mean_ms.value, 60, 1e-12);
    assert_near(c.hrv_sd_ms.value, 20, 1e-12);
    assert_near(c.recovery_index.value, 1.2, 1e-12);
    /* 120 minutes from midnight: no day-time heart rate */
    assert_false(metric_value_valid(&c.day_night_diff_bpm));
    assert_string_equal(c.day_night_diff_bpm.reason, "less than an hour of day or night heart rate");
}

/* One day from midnight: 60 bpm 00:00-06:00, 150 bpm 08:00-09:00 (outside
 * both windows), 80 bpm 09:00-21:00, NaN otherwise (gaps too long to
 * interpolate). Day-night difference = 80 - 60 = 20. A boundary value of
 * exactly 30 bpm is removed (HR <= 30). */
static void test_cardio_day_night(void **st)
{
    (void)st;
    static double hr[1440], work[2880];
    for (int i = 0; i < 1440; i++)
        hr[i] = i < 360 ? 60 : (i >= 540 && i < 1260) ? 80 : (i >= 480 && i < 540) ? 150 : NAN;
    hr[0] = 30;
    struct features_cardio c;
    features_cardio_compute(hr, NULL, 1440, 0, work, &c);
    assert_near(c.day_night_diff_bpm.value, 20, 1e-12);
    assert_int_equal(c.hr_removed, 1);
    assert_int_equal(c.hr_minutes, 359 + 60 + 720);
    assert_string_equal(c.hrv_mean_ms.reason, "no HRV data");
    assert_string_equal(c.recovery_index.reason, "no HRV data");
}

/* Resting HR is the 10th percentile (type 7): 100 distinct minutes 41..140
 * in scrambled order: h = 99 * 0.1 = 9.9 -> x(9) + 0.9 (x(10) - x(9)) = 50 +
 * 0.9 = 50.9 (0-based order statistics 9 and 10 are 50 and 51). */
static void test_cardio_resting_percentile(void **st)
{
    (void)st;
    double hr[100], work[200];
    for (int i = 0; i < 100; i++)
        hr[i] = 41 + (i * 37) % 100; /* a permutation of 41..140 */
    struct features_cardio c;
    features_cardio_compute(hr, NULL, 100, 0, work, &c);
    assert_near(c.hr_resting_bpm.value, 50.9, 1e-9);
    assert_near(c.hr_max_bpm.value, 140, 0);
}

/* Not enough data: nulls with reasons, never defaults. */
static void test_cardio_insufficient(void **st)
{
    (void)st;
    double hr[59], hrv[59], work[118];
    for (int i = 0; i < 59; i++) {
        hr[i] = 70;
        hrv[i] = NAN;
    }
    hrv[1] = 50;
    hrv[2] = 60;
    struct features_cardio c;
    features_cardio_compute(hr, hrv, 59, 0, work, &c);
    assert_string_equal(c.hr_mean_bpm.reason, "less than an hour of heart rate");
    assert_true(isnan(c.hr_resting_bpm.value));
    assert_string_equal(c.hrv_mean_ms.reason, "fewer than three HRV samples");
    assert_int_equal(c.hrv_mean_ms.n, 2);
    features_cardio_compute(NULL, NULL, 0, 0, NULL, &c);
    assert_string_equal(c.hr_mean_bpm.reason, "no heart rate data");
}

/* Respiratory rate {12, 14, 16, 18, 70 (removed), 2 (removed)}: mean 15,
 * p25: h = 3 * 0.25 = 0.75 -> 12 + 0.75 * 2 = 13.5, SD = sqrt(20/3) =
 * 2.581989, stability = 1 - 2.581989/15 = 0.827867. SpO2 {97, 95, 94, 99,
 * 60 (removed)}: mean 96.25, min 94, SD = sqrt((0.5625 + 1.5625 + 5.0625 +
 * 7.5625)/3) = 2.217356, oxygenation = 3/4 (97, 95, 99 are >= 95). */
static void test_resp_hand(void **st)
{
    (void)st;
    double rr[6] = {12, 14, 16, 18, 70, 2};
    double sp[6] = {97, 95, 94, 99, 60, NAN};
    double work[6];
    struct features_resp r;
    assert_int_equal(features_resp_compute(rr, sp, 6, work, &r), 0);
    assert_near(r.rr_mean.value, 15, 1e-12);
    assert_near(r.rr_p25.value, 13.5, 1e-12);
    assert_near(r.rr_sd.value, sqrt(20.0 / 3.0), 1e-12);
    assert_near(r.rr_stability.value, 1.0 - sqrt(20.0 / 3.0) / 15.0, 1e-12);
    assert_near(r.spo2_mean.value, 96.25, 1e-12);
    assert_near(r.spo2_min.value, 94, 0);
    assert_near(r.spo2_sd.value, sqrt(14.75 / 3.0), 1e-12);
    assert_near(r.oxygenation.value, 0.75, 1e-12);
    assert_int_equal(r.rr_samples, 4);

    features_resp_compute(NULL, sp, 6, work, &r);
    assert_string_equal(r.rr_mean.reason, "no respiratory-rate data");
    assert_true(metric_value_valid(&r.spo2_mean));
    double few[2] = {97, 98};
    features_resp_compute(few, few, 2, work, &r);
    assert_string_equal(r.spo2_mean.reason, "fewer than three SpO2 samples");
}

/* Steps from 18:00 (start 1080) over 6 h + 2 days: the first 6 h (5000 steps)
 * are a partial day and excluded. Day 1 = 8000, day 2 = 12000: total 20000,
 * mean 10000, peak 12000, SD = 2828.427125, consistency = 1 - 0.2828427 =
 * 0.717157. VO2max {NaN, 40, 42, NaN}: latest 42. */
static void test_activity_hand(void **st)
{
    (void)st;
    static double steps[360 + 2880], work[8];
    for (int i = 0; i < 3240; i++)
        steps[i] = NAN;
    steps[10] = 5000;
    steps[360 + 600] = 3000;
    steps[360 + 700] = 5000;
    steps[1800 + 500] = 12000;
    double vo2[4] = {NAN, 40, 42, NAN};
    double dist[3] = {5000, NAN, 7000};
    double flights[3] = {3, NAN, 4};
    struct features_activity_input in;
    memset(&in, 0, sizeof(in));
    in.steps_min = steps;
    in.n_min = 3240;
    in.start_min_of_day = 1080;
    in.vo2max = vo2;
    in.n_vo2max = 4;
    in.distance_m = dist;
    in.flights = flights;
    in.n_days = 3;
    struct features_activity a;
    assert_int_equal(features_activity_compute(&in, work, &a), 0);
    assert_int_equal(a.days, 2);
    assert_near(a.steps_total.value, 20000, 1e-9);
    assert_near(a.steps_daily_mean.value, 10000, 1e-9);
    assert_near(a.steps_daily_peak.value, 12000, 0);
    assert_near(a.steps_consistency.value, 1.0 - sqrt(8e6) / 10000.0, 1e-12);
    assert_near(a.vo2max_latest.value, 42, 0);
    assert_near(a.distance_daily_mean_m.value, 6000, 0);
    assert_int_equal(a.distance_daily_mean_m.n, 2);
    assert_near(a.flights_total.value, 7, 0);
    assert_int_equal(a.flights_total.n, 2);
    assert_string_equal(a.resting_hr_latest_bpm.reason, "no resting heart rate sample");

    in.flights = NULL;
    features_activity_compute(&in, work, &a);
    assert_string_equal(a.flights_total.reason, "no flights data");
    /* one partial day only: nulls */
    in.n_min = 1000;
    features_activity_compute(&in, work, &a);
    assert_string_equal(a.steps_total.reason, "no complete day with step data");
    /* one complete day: consistency needs two */
    in.n_min = 360 + 1440;
    features_activity_compute(&in, work, &a);
    assert_near(a.steps_total.value, 8000, 0);
    assert_string_equal(a.steps_consistency.reason, "fewer than two days");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cardio_hand),
        cmocka_unit_test(test_cardio_day_night),
        cmocka_unit_test(test_cardio_resting_percentile),
        cmocka_unit_test(test_cardio_insufficient),
        cmocka_unit_test(test_resp_hand),
        cmocka_unit_test(test_activity_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
