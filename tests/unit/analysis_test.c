/*
 * analysis_test.c — the one-call analysis (src/analysis/analysis.c) on
 * synthetic weeks whose results follow by hand from the definitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/analysis.h"

#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s:%d: %.12g != %.12g (eps %g)\n", file, line, a, b, eps);
        fail();
    }
}

#define DAY 1440
#define WEEK (7 * DAY)

/* A week from local noon: counts 200 from 07:00 to 23:00, 0 at night.
 * Cole-Kripke (original scale) at the evening edge: minute 23:00+k sees
 * 200-count minutes at offsets -1..-4 while k < 4: at 23:03 only A-4 = 200
 * remains: D = 404*200e-5 = 0.808 < 1 -> sleep; at 23:02, (598+404)*200e-5 =
 * 2.004 -> wake. So raw sleep starts 23:03. Morning edge: 06:59 sees A+1 =
 * 200: 508*200e-5 = 1.016 -> wake; 06:58 sees A+2: 350*200e-5 = 0.7 ->
 * sleep. Raw sleep 23:03-06:59 (476 min). Webster rule (c): >= 15 min wake
 * before -> first 4 sleep minutes rescored: sleep 23:07-06:59 = 472 min. All
 * seven nights are identical: TST 472, WASO 0, no awakenings, efficiency
 * 100 % of the detected period, SRI 100, timing SDs 0, IS 1. */
static void fill_week(double *x)
{
    for (size_t i = 0; i < WEEK; i++) {
        size_t clock = (720 + i) % DAY;
        x[i] = (clock >= 7 * 60 && clock < 23 * 60) ? 200.0 : 0.0;
    }
}

static void *workspace(size_t n, size_t *size)
{
    *size = analysis_workspace_size(n, 60);
    void *w = malloc(*size);
    assert_non_null(w);
    return w;
}

static void test_week_hand(void **st)
{
    (void)st;
    static double x[WEEK];
    fill_week(x);
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    p.nonwear_choi = 0; /* nights of exact zeros would be Choi non-wear (test_nonwear_day) */
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_nights, 7);
    for (size_t i = 0; i < r.n_nights; i++) {
        assert_near(r.nights[i].total_sleep_min.value, 472, 0);
        assert_int_equal(r.nights[i].onset, i * DAY + 660 + 7);
        assert_near(r.nights[i].waso_min.value, 0, 0);
        assert_near(r.nights[i].awakenings.value, 0, 0);
    }
    assert_near(r.tst_mean_min.value, 472, 0);
    assert_near(r.sri.value, 100, 1e-12);
    assert_near(r.timing.onset_sd_min.value, 0, 1e-9);
    assert_near(r.npar.is.value, 1, 1e-12);
    /* 16 h at 200 and 8 h at 0: L5 = 0, M10 = 200, RA = 1 */
    assert_near(r.npar.ra.value, 1, 1e-12);
    assert_near(r.npar.m10.value, 200, 1e-12);
    /* optional series absent: features are nulls with reasons */
    assert_string_equal(r.cardio.hr_mean_bpm.reason, "no heart rate data");
    assert_string_equal(r.activity.steps_total.reason, "no complete day with step data");

    /* without Webster the raw scoring gives 476 */
    p.webster = 0;
    analysis_report_run(&in, &p, ws, wsz, &r);
    assert_near(r.nights[0].total_sleep_min.value, 476, 0);
    free(ws);
}

/* DST in local time (series.h): spring-forward leaves the wall-clock hour
 * 02:00-03:00 without data. On night 3 of the hand-computed week (starts at
 * index 2*1440 + 660) minutes 2*1440 + 840 .. +900 become NaN: they are
 * UNKNOWN, the 60-minute gap is bridged (<= 60), and the neighbours of the
 * hole weigh its minutes as 0 (they were 0 anyway), so that night has
 * TST = 472 - 60 = 412 with 60 unknown minutes; the others keep 472.
 * Fall-back folds two real hours onto 01:00-02:00: at night the counts are 0
 * and stay 0 when added, so nothing changes — shown here by doubling them. */
static void test_week_dst(void **st)
{
    (void)st;
    static double x[WEEK];
    fill_week(x);
    for (size_t i = 2 * DAY + 840; i < 2 * DAY + 900; i++)
        x[i] = NAN;
    for (size_t i = 4 * DAY + 780; i < 4 * DAY + 840; i++)
        x[i] *= 2.0;
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    p.nonwear_choi = 0; /* nights of exact zeros would be Choi non-wear (test_nonwear_day) */
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_nights, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_near(r.nights[i].total_sleep_min.value, i == 2 ? 412 : 472, 0);
        assert_int_equal(r.nights[i].n_unknown, i == 2 ? 60 : 0);
    }
    /* SRI skips the 60 unknown minutes on both sides of their day pairs:
     * 6 day pairs * 1440 - 2 * 60 pairs, all agreeing */
    assert_int_equal(r.sri.n, 6 * 1440 - 120);
    assert_near(r.sri.value, 100, 1e-12);
    free(ws);
}

/* Sadeh on the same week. Its exact edges are asserted by hand in
 * sleep_test.c; here the whole chain must find all seven nights with a
 * plausible length (the true sleep window is 480 minutes). */
static void test_week_sadeh(void **st)
{
    (void)st;
    static double x[WEEK];
    fill_week(x);
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    p.nonwear_choi = 0; /* nights of exact zeros would be Choi non-wear (test_nonwear_day) */
    p.scorer = ANALYSIS_SCORER_SADEH;
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_nights, 7);
    assert_true(r.tst_mean_min.value > 440 && r.tst_mean_min.value <= 480);
    free(ws);
}

/* A week of wrist counts with the watch off for a day (issue #18). Nights
 * carry small counts (10 a minute: worn, scored asleep); from 07:00 on day 3
 * (index 2*DAY + 1140) to 07:00 the next day the count is exactly 0 for 24
 * hours. Choi (2011) masks exactly those 1,440 minutes (their neighbours are
 * nonzero). With the mask: night 2 keeps its own sleep and night 3 has no
 * data, so six nights. Without it the zeros join night 2's sleep into a
 * 13-hour "night" (07:00-12:00 runs on to local noon) — the bug. */
static void fill_week_worn(double *x)
{
    for (size_t i = 0; i < WEEK; i++) {
        size_t clock = (720 + i) % DAY;
        x[i] = (clock >= 7 * 60 && clock < 23 * 60) ? 200.0 : 10.0;
    }
}

static void test_nonwear_day(void **st)
{
    (void)st;
    static double x[WEEK];
    fill_week_worn(x);
    for (size_t i = 2 * DAY + 1140; i < 3 * DAY + 1140; i++)
        x[i] = 0.0;
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_near(r.nonwear_min.value, 1440, 0);
    assert_int_equal(r.nonwear[2 * DAY + 1140] + r.nonwear[3 * DAY + 1139], 2);
    assert_int_equal(r.nonwear[2 * DAY + 1139] + r.nonwear[3 * DAY + 1140], 0);
    assert_int_equal(r.n_nights, 6);
    assert_int_equal(r.nights_scored, 6);
    for (size_t i = 0; i < r.n_nights; i++) {
        assert_true(r.nights[i].total_sleep_min.value >= 440 && r.nights[i].total_sleep_min.value <= 480);
        assert_true(r.nights[i].bed_end - r.nights[i].bed_start <= 480);
    }
    /* IS/IV use only worn hours: 6 of 7 days of bins */
    assert_int_equal(r.npar.n_bins, 6 * 24);

    p.nonwear_choi = 0;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_string_equal(r.nonwear_min.reason, "non-wear detection off");
    assert_true(r.nights[2].total_sleep_min.value > 700);
    free(ws);
}

/* An iPhone-only week (issue #18): 20 steps a minute 07:00-23:00, none at
 * night. No scorer runs on steps: each night's estimated rest period is
 * 23:00-07:00 (480 min); total sleep, efficiency, WASO and awakenings are
 * null with the reason; rest timing is identical every night (SD 0) and the
 * rest/active pattern repeats exactly (SRI 100). */
static void fill_steps_week(double *x)
{
    for (size_t i = 0; i < WEEK; i++) {
        size_t clock = (720 + i) % DAY;
        x[i] = (clock >= 7 * 60 && clock < 23 * 60) ? 20.0 : 0.0;
    }
}

static void test_steps_week(void **st)
{
    (void)st;
    static double x[WEEK];
    fill_steps_week(x);
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, x, 1, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_nights, 7);
    assert_int_equal(r.nights_estimated, 7);
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(r.night_basis[i], ANALYSIS_NIGHT_ESTIMATED);
        assert_int_equal(r.nights[i].bed_start, i * DAY + 660);
        assert_near(r.nights[i].time_in_bed_min.value, 480, 0);
        assert_string_equal(r.nights[i].total_sleep_min.reason, "steps cannot tell sleep from lying still");
        assert_string_equal(r.nights[i].waso_min.reason, "steps cannot tell sleep from lying still");
    }
    assert_near(r.rest_mean_min.value, 480, 0);
    assert_int_equal(r.rest_mean_min.n, 7);
    assert_false(metric_value_valid(&r.tst_mean_min));
    assert_string_equal(r.efficiency_mean_pct.reason,
                        "steps cannot tell sleep from lying still; see the estimated rest period");
    assert_string_equal(r.nonwear_min.reason, "not detectable from steps alone");
    assert_near(r.sri.value, 100, 1e-12);
    assert_near(r.timing.onset_sd_min.value, 0, 1e-9);
    assert_string_equal(r.timing.tst_sd_min.reason, "fewer than two nights with a total sleep time");
    free(ws);
}

/* A Watch week: the Watch recorded nights 0-2 (asleep 23:30-06:30, 420 min,
 * awake otherwise); nights 3-6 have only steps. Recorded nights take the
 * Watch's states, the others the estimated rest period. */
static void test_recorded_nights(void **st)
{
    (void)st;
    static double x[WEEK];
    static uint8_t rec[WEEK];
    fill_steps_week(x);
    memset(rec, SLEEP_STATE_UNKNOWN, sizeof(rec));
    for (size_t d = 0; d < 3; d++) {
        memset(rec + d * DAY, SLEEP_STATE_WAKE, DAY);
        memset(rec + d * DAY + 690, SLEEP_STATE_SLEEP, 420);
    }
    struct analysis_input in = {x, WEEK, 720, NULL, NULL, NULL, NULL, x, 1, rec, NULL};
    struct analysis_params p = analysis_params_default();
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_nights, 7);
    assert_int_equal(r.nights_recorded, 3);
    assert_int_equal(r.nights_estimated, 4);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r.night_basis[i], ANALYSIS_NIGHT_RECORDED);
        assert_near(r.nights[i].total_sleep_min.value, 420, 0);
    }
    assert_int_equal(r.night_basis[3], ANALYSIS_NIGHT_ESTIMATED);
    assert_near(r.tst_mean_min.value, 420, 0);
    assert_int_equal(r.tst_mean_min.n, 3);
    assert_near(r.rest_mean_min.value, 480, 0);
    assert_int_equal(r.rest_mean_min.n, 4); /* only the nights the Watch did not record */
    /* SRI over the merged states: nights 2->3 differ by 30 + 30 minutes */
    assert_true(r.sri.value < 100 && r.sri.value > 95);
    free(ws);
}

/* Edge cases: all missing, one day, NaN minutes; invalid calls. */
static void test_edges(void **st)
{
    (void)st;
    static double x[WEEK];
    for (size_t i = 0; i < WEEK; i++)
        x[i] = NAN;
    struct analysis_input in = {x, WEEK, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL}; /* all missing */
    struct analysis_params p = analysis_params_default();
    p.nonwear_choi = 0; /* nights of exact zeros would be Choi non-wear (test_nonwear_day) */
    struct analysis_report r;
    size_t wsz;
    void *ws = workspace(WEEK, &wsz);
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    assert_int_equal(r.n_valid, 0);
    assert_int_equal(r.n_nights, 0);
    assert_string_equal(r.tst_mean_min.reason, "no night with sleep");
    assert_string_equal(r.sri.reason, "less than one day of paired data");
    assert_string_equal(r.npar.is.reason, "less than one day of data");
    assert_string_equal(r.cosinor.amplitude.reason, "fewer than three valid minutes");

    /* one day: a night is found, SRI and IS need two days */
    fill_week(x);
    in.n = DAY;
    in.start_min_of_day = 720;
    analysis_report_run(&in, &p, ws, wsz, &r);
    assert_int_equal(r.n_nights, 1);
    assert_string_equal(r.sri.reason, "fewer than two days");
    assert_string_equal(r.npar.is.reason, "fewer than two days of data");
    assert_string_equal(r.timing.onset_sd_min.reason, "fewer than two nights");

    /* scattered NaN minutes inside the week: still seven nights */
    in.n = WEEK;
    for (size_t i = 0; i < WEEK; i += 97)
        x[i] = NAN;
    analysis_report_run(&in, &p, ws, wsz, &r);
    assert_int_equal(r.n_nights, 7);
    assert_true(metric_value_valid(&r.sri));
    assert_true(r.sri.value < 100.0);

    in.n = 0;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), -1);
    in.n = WEEK;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz - 1, &r), -1);
    p.bin_min = 7;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), -1);
    free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_week_hand),       cmocka_unit_test(test_week_dst),    cmocka_unit_test(test_week_sadeh),
        cmocka_unit_test(test_edges),           cmocka_unit_test(test_nonwear_day), cmocka_unit_test(test_steps_week),
        cmocka_unit_test(test_recorded_nights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
