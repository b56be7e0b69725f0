/*
 * sleep_test.c — Cole-Kripke, Sadeh, Webster, sleep periods, night metrics,
 * SRI and timing consistency (src/analysis/sleep.c). Expected values are
 * computed by hand from the published definitions; each case says how.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/sleep.h"

/* cmocka 1.1 compares only floats; doubles need their own check. NaN fails. */
#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s:%d: %.12g != %.12g (eps %g)\n", file, line, a, b, eps);
        fail();
    }
}

#define W SLEEP_STATE_WAKE
#define S SLEEP_STATE_SLEEP
#define U SLEEP_STATE_UNKNOWN

/* Fill state[pos..pos+len) with v; returns pos + len. */
static size_t put(uint8_t *st, size_t pos, size_t len, uint8_t v)
{
    memset(st + pos, v, len);
    return pos + len;
}

/* 1. Cole-Kripke 1992 original scale, one spike of count A at minute 10 in
 * zeros. Minute i sees the spike at offset k = 10 - i with weight w_k:
 * i=8 (k=+2) 350, i=9 508, i=10 1408, i=11 441, i=12 326, i=13 598, i=14 404.
 * D_i = 0.00001 * w * A, wake when D >= 1, i.e. w * A >= 100000.
 * A = 200: 70000, 101600, 281600, 88200, 65200, 119600, 80800
 *   -> wake exactly at minutes 9, 10 and 13. */
static void test_ck_spike_200(void **st)
{
    (void)st;
    double c[30] = {0};
    uint8_t s[30];
    c[10] = 200;
    assert_int_equal(sleep_score_cole_kripke(c, 30, SLEEP_CK_ORIGINAL, s), 0);
    for (size_t i = 0; i < 30; i++) {
        uint8_t want = (i == 9 || i == 10 || i == 13) ? W : S;
        assert_int_equal(s[i], want);
    }
}

/* 2. The weighted sum crosses 1 at a known count: at the spike minute
 * D = 0.01408 A, so A = 71.1 gives 1.001088 (wake) and A = 71.0 gives
 * 0.99968 (sleep). No other minute can reach 1 (largest other weight 598). */
static void test_ck_threshold_crossing(void **st)
{
    (void)st;
    double c[20] = {0};
    uint8_t s[20];
    c[10] = 71.1;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ORIGINAL, s);
    assert_int_equal(s[10], W);
    for (size_t i = 0; i < 20; i++)
        if (i != 10)
            assert_int_equal(s[i], S);
    c[10] = 71.0;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ORIGINAL, s);
    assert_int_equal(s[10], S);
}

/* 3. ActiGraph scale: A' = A/100, D = 0.001 * 230 * A' at the spike.
 * A = 435 -> 1.0005 wake; A = 434 -> 0.9982 sleep. Counts beyond 30000 are
 * capped at A' = 300: a 1e9 count and a 30000 count score alike. */
static void test_ck_actigraph_scale(void **st)
{
    (void)st;
    double c[20] = {0};
    uint8_t s[20], s2[20];
    c[10] = 435;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ACTIGRAPH, s);
    assert_int_equal(s[10], W);
    assert_int_equal(s[9], S);
    c[10] = 434;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ACTIGRAPH, s);
    assert_int_equal(s[10], S);
    c[10] = 1e9;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ACTIGRAPH, s);
    c[10] = 30000;
    sleep_score_cole_kripke(c, 20, SLEEP_CK_ACTIGRAPH, s2);
    assert_memory_equal(s, s2, 20);
    /* 300 * 67 * 0.001 = 20.1: the cap still leaves minute 8 awake */
    assert_int_equal(s[8], W);
}

/* 4. Missing minutes are UNKNOWN and weigh 0 for their neighbours; empty
 * input is fine; bad scale is an error. */
static void test_ck_missing_and_edges(void **st)
{
    (void)st;
    double c[10] = {0, 0, NAN, 0, 0, 0, 0, 0, 0, 0};
    uint8_t s[10];
    assert_int_equal(sleep_score_cole_kripke(c, 10, SLEEP_CK_ORIGINAL, s), 0);
    assert_int_equal(s[2], U);
    assert_int_equal(s[3], S);
    assert_int_equal(sleep_score_cole_kripke(NULL, 0, SLEEP_CK_ORIGINAL, NULL), 0);
    assert_int_equal(sleep_score_cole_kripke(c, 10, (enum sleep_ck_scale)7, s), -1);
}

/* 5. Sadeh on a lone count of 60 at minute 20 in zeros, scored at minute 20:
 * MEAN = 60/11 = 5.454545 -> 0.065*MEAN = 0.354545
 * NAT = 1 (50 <= 60 < 100) -> 1.08
 * SD of {0,0,0,0,0,60}: mean 10, SS = 5*100 + 50^2 = 3000, /5 = 600,
 *   sqrt = 24.494897 -> 0.056*SD = 1.371714
 * LG = ln 61 = 4.110874 -> 0.703*LG = 2.889944
 * PS = 7.601 - 0.354545 - 1.08 - 1.371714 - 2.889944 = 1.904797.
 * So the minute is sleep for threshold 1.90 and wake for 1.91. */
static void test_sadeh_hand_value(void **st)
{
    (void)st;
    double c[40] = {0};
    uint8_t s[40];
    c[20] = 60;
    sleep_score_sadeh(c, 40, 1.90, s);
    assert_int_equal(s[20], S);
    sleep_score_sadeh(c, 40, 1.91, s);
    assert_int_equal(s[20], W);
    /* and with the ActiLife threshold -4 everything here is sleep */
    sleep_score_sadeh(c, 40, SLEEP_SADEH_THRESHOLD_ACTILIFE, s);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(s[i], S);
}

/* 6. Constant counts c (SD 0, NAT 0 for c >= 100): PS = 7.601 - 0.065c -
 * 0.703 ln(c+1). c = 120: 7.601 - 7.8 - 3.371459 = -3.570459 > -4 -> sleep.
 * c = 130: 7.601 - 8.45 - 3.427229 = -4.276229 -> wake. Scored mid-run. */
static void test_sadeh_constant_runs(void **st)
{
    (void)st;
    double c[40];
    uint8_t s[40];
    for (size_t i = 0; i < 40; i++)
        c[i] = 120;
    sleep_score_sadeh(c, 40, SLEEP_SADEH_THRESHOLD_ACTILIFE, s);
    assert_int_equal(s[20], S);
    for (size_t i = 0; i < 40; i++)
        c[i] = 130;
    sleep_score_sadeh(c, 40, SLEEP_SADEH_THRESHOLD_ACTILIFE, s);
    assert_int_equal(s[20], W);
    c[20] = NAN;
    sleep_score_sadeh(c, 40, SLEEP_SADEH_THRESHOLD_ACTILIFE, s);
    assert_int_equal(s[20], U);
}

/* Sadeh as the definition reads, minute by minute (the library keeps moving
 * sums instead): the two must agree on pseudo-random counts with missing
 * minutes, across the library's 1024-minute resynchronisation points. */
static double ref_count(const double *c, size_t n, long i)
{
    if (i < 0 || (size_t)i >= n || isnan(c[i]) || c[i] < 0)
        return 0.0;
    return c[i] > 300.0 ? 300.0 : c[i];
}

static void test_sadeh_matches_definition(void **st)
{
    (void)st;
    enum { N = 5000 };
    static double c[N];
    static uint8_t got[N];
    uint32_t seed = 77;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        /* mostly quiet minutes with some 1-129 counts and a few large ones,
         * so PS lands on both sides of both thresholds */
        uint32_t r = (seed >> 8) % 100;
        c[i] = (seed >> 28) == 0 ? NAN
               : r < 55          ? 0.0
               : r < 95          ? (double)((seed >> 12) % 129 + 1)
                                 : (double)((seed >> 12) % 800);
    }
    double thresholds[2] = {-4.0, 0.0};
    for (int t = 0; t < 2; t++) {
        size_t n_sleep = 0;
        sleep_score_sadeh(c, N, thresholds[t], got);
        for (size_t i = 0; i < N; i++)
            n_sleep += got[i] == S;
        /* the data must exercise both outcomes, or the comparison is empty */
        assert_true(n_sleep > N / 5 && n_sleep < N * 4 / 5);
        for (long i = 0; i < N; i++) {
            if (isnan(c[i])) {
                assert_int_equal(got[i], U);
                continue;
            }
            double sum = 0, m6 = 0, ss = 0;
            int nat = 0;
            for (long k = -5; k <= 5; k++) {
                double a = ref_count(c, N, i + k);
                sum += a;
                nat += a >= 50 && a < 100;
            }
            for (long k = -5; k <= 0; k++)
                m6 += ref_count(c, N, i + k) / 6.0;
            for (long k = -5; k <= 0; k++)
                ss += (ref_count(c, N, i + k) - m6) * (ref_count(c, N, i + k) - m6);
            double ps =
                7.601 - 0.065 * sum / 11 - 1.08 * nat - 0.056 * sqrt(ss / 5) - 0.703 * log(ref_count(c, N, i) + 1);
            assert_int_equal(got[i], ps > thresholds[t] ? S : W);
        }
    }
}

/* 7. Webster (a): 4 wake then sleep -> first sleep minute becomes wake;
 * 3 wake is not enough. */
static void test_webster_rule_a(void **st)
{
    (void)st;
    uint8_t s[9], want[9];
    size_t p = put(s, 0, 4, W);
    put(s, p, 5, S);
    memcpy(want, s, 9);
    want[4] = W;
    sleep_rescore_webster(s, 9);
    assert_memory_equal(s, want, 9);

    uint8_t t[8];
    p = put(t, 0, 3, W);
    put(t, p, 5, S);
    memcpy(want, t, 8);
    sleep_rescore_webster(t, 8);
    assert_memory_equal(t, want, 8);
}

/* 8. Webster (b) and (c): 10 wake -> next 3 sleep minutes rescored; 15 wake
 * -> next 4. The sleep runs are long, so (d)/(e) cannot apply. */
static void test_webster_rules_bc(void **st)
{
    (void)st;
    uint8_t s[40];
    size_t p = put(s, 0, 10, W);
    put(s, p, 30, S);
    sleep_rescore_webster(s, 40);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(s[i], i < 13 ? W : S);

    p = put(s, 0, 15, W);
    put(s, p, 25, S);
    sleep_rescore_webster(s, 40);
    for (size_t i = 0; i < 40; i++)
        assert_int_equal(s[i], i < 19 ? W : S);
}

/* 9. Webster (d): 10W 7S 10W 20S. (a)-(c): 10W -> 3 of the 7S rescored:
 * 13W 4S; the 10W before the 20S -> 3 rescored: 13W 4S 13W 17S. (d): the 4S
 * bout has >= 10W on both sides -> wake. Result: 30W 17S. */
static void test_webster_rule_d(void **st)
{
    (void)st;
    uint8_t s[47];
    size_t p = put(s, 0, 10, W);
    p = put(s, p, 7, S);
    p = put(s, p, 10, W);
    put(s, p, 20, S);
    sleep_rescore_webster(s, 47);
    for (size_t i = 0; i < 47; i++)
        assert_int_equal(s[i], i < 30 ? W : S);
}

/* 10. Webster (e): 20W 12S 20W 30S. (a)-(c): 24W 8S 24W 26S. (d) no (8 > 6);
 * (e): 8 <= 10 with 24 >= 20 on both sides -> wake: 56W 26S.
 * Control: 20W 12S 15W (end) -> 24W 8S 15W, the wake after is < 20: kept. */
static void test_webster_rule_e(void **st)
{
    (void)st;
    uint8_t s[82];
    size_t p = put(s, 0, 20, W);
    p = put(s, p, 12, S);
    p = put(s, p, 20, W);
    put(s, p, 30, S);
    sleep_rescore_webster(s, 82);
    for (size_t i = 0; i < 82; i++)
        assert_int_equal(s[i], i < 56 ? W : S);

    uint8_t t[47];
    p = put(t, 0, 20, W);
    p = put(t, p, 12, S);
    put(t, p, 15, W);
    sleep_rescore_webster(t, 47);
    for (size_t i = 0; i < 47; i++)
        assert_int_equal(t[i], (i >= 24 && i < 32) ? S : W);
}

/* 11. Unknown minutes end runs: 4W U S S — no wake run directly before sleep. */
/* Rule (e) bounds: 20W 14S 20W 30S -> (a)-(c) 24W 10S 24W 26S; a 10-minute
 * bout is "at most 10": rescored (54 W then 26 S). With 15S instead the bout
 * is 11 after (c) and stays. */
static void test_webster_rule_e_bound(void **st)
{
    (void)st;
    uint8_t s[84];
    size_t p = put(s, 0, 20, W);
    p = put(s, p, 14, S);
    p = put(s, p, 20, W);
    put(s, p, 30, S);
    sleep_rescore_webster(s, 84);
    for (size_t i = 0; i < 84; i++)
        assert_int_equal(s[i], i < 58 ? W : S);

    uint8_t t[85];
    p = put(t, 0, 20, W);
    p = put(t, p, 15, S);
    p = put(t, p, 20, W);
    put(t, p, 30, S);
    sleep_rescore_webster(t, 85);
    for (size_t i = 0; i < 85; i++)
        assert_int_equal(t[i], ((i >= 24 && i < 35) || i >= 59) ? S : W);
}

static void test_webster_unknown_breaks_runs(void **st)
{
    (void)st;
    uint8_t s[7] = {W, W, W, W, U, S, S};
    uint8_t want[7] = {W, W, W, W, U, S, S};
    sleep_rescore_webster(s, 7);
    assert_memory_equal(s, want, 7);
}

/* A synthetic night over [0, 480): wake 0-19 (latency 20), sleep 20-199,
 * wake 200-209 (10 min), sleep 210-299, wake 300-302 (3 min), sleep 303-449,
 * wake 450-479. TST = 180 + 90 + 147 = 417, TIB 480, SE = 86.875 %,
 * WASO = 10 + 3 = 13, awakenings 2 (>= 1 min) or 1 (>= 5 min),
 * onset 20, final wake 450, midpoint (20 + 450)/2 = 235. */
static void make_night(uint8_t *s)
{
    size_t p = put(s, 0, 20, W);
    p = put(s, p, 180, S);
    p = put(s, p, 10, W);
    p = put(s, p, 90, S);
    p = put(s, p, 3, W);
    p = put(s, p, 147, S);
    put(s, p, 30, W);
}

static void test_night_metrics_hand(void **st)
{
    (void)st;
    uint8_t s[480];
    struct sleep_night nt;
    make_night(s);
    assert_int_equal(sleep_night_compute(s, 480, 0, 480, 1, 1, &nt), 0);
    assert_near(nt.time_in_bed_min.value, 480, 0);
    assert_near(nt.total_sleep_min.value, 417, 0);
    assert_near(nt.efficiency_pct.value, 86.875, 1e-9);
    assert_near(nt.onset_latency_min.value, 20, 0);
    assert_near(nt.waso_min.value, 13, 0);
    assert_near(nt.awakenings.value, 2, 0);
    assert_near(nt.midpoint_min.value, 235, 0);
    assert_int_equal(nt.onset, 20);
    assert_int_equal(nt.final_wake, 450);

    sleep_night_compute(s, 480, 0, 480, 1, 5, &nt);
    assert_near(nt.awakenings.value, 1, 0);
    /* the bound is inclusive: a 3-minute wake run counts at minimum 3 */
    sleep_night_compute(s, 480, 0, 480, 1, 3, &nt);
    assert_near(nt.awakenings.value, 2, 0);
    sleep_night_compute(s, 480, 0, 480, 1, 4, &nt);
    assert_near(nt.awakenings.value, 1, 0);

    /* without an in-bed interval the latency is an explicit null */
    sleep_night_compute(s, 480, 0, 480, 0, 1, &nt);
    assert_true(isnan(nt.onset_latency_min.value));
    assert_string_equal(nt.onset_latency_min.reason, "no in-bed interval");
    assert_true(metric_value_valid(&nt.total_sleep_min));
}

/* Unknown minutes 100-109 (inside sleep) drop 10 from TST; half-unknown
 * nights and sleepless nights are nulls with reasons. */
static void test_night_metrics_missing(void **st)
{
    (void)st;
    uint8_t s[480];
    struct sleep_night nt;
    make_night(s);
    put(s, 100, 10, U);
    sleep_night_compute(s, 480, 0, 480, 1, 1, &nt);
    assert_near(nt.total_sleep_min.value, 407, 0);
    assert_int_equal(nt.n_unknown, 10);
    assert_int_equal(nt.total_sleep_min.n, 470);

    put(s, 0, 241, U);
    sleep_night_compute(s, 480, 0, 480, 1, 1, &nt);
    assert_false(metric_value_valid(&nt.total_sleep_min));
    assert_string_equal(nt.total_sleep_min.reason, "more than half of the night without data");

    put(s, 0, 480, W);
    sleep_night_compute(s, 480, 0, 480, 1, 1, &nt);
    assert_string_equal(nt.efficiency_pct.reason, "no sleep scored");
    assert_near(nt.time_in_bed_min.value, 480, 0);

    assert_int_equal(sleep_night_compute(s, 480, 10, 500, 1, 1, &nt), -1);
}

/* Two nights from noon. Night 1: sleep 23:00-07:00 = indices 660..1140 with
 * a 30-min wake at 840..870 (bridged, <= 60). A 90-min nap at 15:00 next day
 * (1620..1710) is below 180 min of sleep. Night 2: sleep 22:00-06:00 =
 * 2040..2520 with a 90-min wake at 2220..2310 (not bridged): blocks
 * 2040..2220 (180 min) and 2310..2520 (210 min); the longer one wins.
 * A late-morning block 1320..1530 (10:00-13:30, 210 min) has its midpoint at
 * 11:45, so it belongs to night 1 (noon to noon) and loses to 660..1140. */
static void test_periods_detect(void **st)
{
    (void)st;
    static uint8_t s[2880];
    memset(s, W, sizeof(s));
    put(s, 660, 480, S);
    put(s, 840, 30, W);
    put(s, 1320, 210, S);
    put(s, 1620, 90, S);
    put(s, 2040, 480, S);
    put(s, 2220, 90, W);
    struct sleep_period pr[4];
    size_t np = 0;
    struct sleep_period_params pp = sleep_period_params_default();
    assert_int_equal(sleep_periods_detect(s, 2880, 720, &pp, pr, 4, &np), 0);
    assert_int_equal(np, 2);
    assert_int_equal(pr[0].start, 660);
    assert_int_equal(pr[0].end, 1140);
    assert_int_equal(pr[1].start, 2310);
    assert_int_equal(pr[1].end, 2520);

    /* with a 120-min bridge night 2 is one block 2040..2520 */
    pp.max_gap_min = 120;
    sleep_periods_detect(s, 2880, 720, &pp, pr, 4, &np);
    assert_int_equal(np, 2);
    assert_int_equal(pr[1].start, 2040);
    assert_int_equal(pr[1].end, 2520);

    /* max_out bounds what is written */
    sleep_periods_detect(s, 2880, 720, &pp, pr, 1, &np);
    assert_int_equal(np, 1);
    /* empty and all-wake inputs have no periods */
    sleep_periods_detect(s, 0, 720, &pp, pr, 4, &np);
    assert_int_equal(np, 0);
}

/* Bounds (issue #18): a block never crosses local noon and a block longer
 * than 16 h is never a night's sleep. Start at noon (720). A 19-hour run of
 * "sleep" 13:00-08:00 (indices 60..1200) is rejected; 8,205 minutes of
 * "sleep" (the 136-hour night of issue #18) split at every noon into five
 * 24-hour blocks and one of 1,005 minutes, all rejected. A
 * run 22:00-11:00 that continues past noon to 14:00 (600..1560) is cut at
 * noon: 600..1440 = 14 h in night 0 is kept; 1440..1560 (2 h) is below
 * 180 min of sleep. */
static void test_periods_bounded(void **st)
{
    (void)st;
    static uint8_t s[8400];
    struct sleep_period pr[8];
    size_t np = 9;
    struct sleep_period_params pp = sleep_period_params_default();
    assert_int_equal(pp.max_period_min, 960);

    memset(s, W, 2880);
    put(s, 60, 1140, S);
    assert_int_equal(sleep_periods_detect(s, 2880, 720, &pp, pr, 8, &np), 0);
    assert_int_equal(np, 0);

    memset(s, S, 8400);
    assert_int_equal(sleep_periods_detect(s, 8205, 720, &pp, pr, 8, &np), 0);
    assert_int_equal(np, 0);

    memset(s, W, 2880);
    put(s, 600, 960, S);
    assert_int_equal(sleep_periods_detect(s, 2880, 720, &pp, pr, 8, &np), 0);
    assert_int_equal(np, 1);
    assert_int_equal(pr[0].start, 600);
    assert_int_equal(pr[0].end, 1440);

    /* without the bound (0) the 19-hour run is a period again */
    memset(s, W, 2880);
    put(s, 60, 1140, S);
    pp.max_period_min = 0;
    assert_int_equal(sleep_periods_detect(s, 2880, 720, &pp, pr, 8, &np), 0);
    assert_int_equal(np, 1);
    assert_int_equal(pr[0].end - pr[0].start, 1140);
}

/* SRI with 4 epochs/day: SSWW SSWW SWWW. Day 1-2: 4 agreements; day 2-3:
 * S=S, S!=W, W=W, W=W: 3. 7 of 8 pairs agree: SRI = -100 + 200*7/8 = 75. */
static void test_sri_hand(void **st)
{
    (void)st;
    uint8_t s[12] = {S, S, W, W, S, S, W, W, S, W, W, W};
    struct metric m = sleep_sri_compute(s, 12, 4);
    assert_true(metric_value_valid(&m));
    assert_near(m.value, 75.0, 1e-12);
    assert_int_equal(m.n, 8);

    /* identical days: 100; each day the reverse of the last: -100 */
    uint8_t r[8] = {S, W, S, W, S, W, S, W};
    m = sleep_sri_compute(r, 8, 2);
    assert_near(m.value, 100.0, 0);
    m = sleep_sri_compute(r, 8, 1);
    assert_near(m.value, -100.0, 0);

    /* one day only, and too few known pairs, are nulls */
    m = sleep_sri_compute(s, 4, 4);
    assert_string_equal(m.reason, "fewer than two days");
    uint8_t u[8] = {S, U, U, U, S, S, S, S};
    m = sleep_sri_compute(u, 8, 4);
    assert_string_equal(m.reason, "less than one day of paired data");
}

/* Timing: onsets 23:00 and 01:00 are 660 and 780 minutes after noon:
 * SD = sqrt((60^2 + 60^2) / 1) = 84.852814; a naive clock-minute SD of 1380
 * and 60 would be 933. Midnight does not wrap. */
static void test_timing_across_midnight(void **st)
{
    (void)st;
    struct sleep_night nt[3];
    memset(nt, 0, sizeof(nt));
    /* start_min_of_day 720: index i is clock (720 + i) mod 1440 */
    nt[0].onset = 660;
    nt[0].final_wake = 1140;
    nt[1].onset = 2220;
    nt[1].final_wake = 2580;
    for (int i = 0; i < 2; i++) {
        nt[i].total_sleep_min = metric_value_ok((double)(nt[i].final_wake - nt[i].onset), 1);
        nt[i].midpoint_min = metric_value_ok((nt[i].onset + nt[i].final_wake) / 2.0, 1);
    }
    nt[2].total_sleep_min = metric_value_null("no sleep scored", 0); /* skipped */
    nt[2].midpoint_min = metric_value_null("no sleep scored", 0);
    struct sleep_timing t;
    assert_int_equal(sleep_timing_compute(nt, 3, 720, &t), 0);
    assert_near(t.onset_sd_min.value, sqrt(7200.0), 1e-9);
    /* wakes 07:00 and 07:00 (1140 -> 07:00, 2580 -> 07:00) */
    assert_near(t.wake_sd_min.value, 0.0, 1e-9);
    /* TST 480 and 360 */
    assert_near(t.tst_sd_min.value, sqrt(7200.0), 1e-9);
    /* midpoints 03:00 and 04:00 -> mean 03:30 = 210 */
    assert_near(t.midpoint_mean_clock_min.value, 210.0, 1e-9);
    assert_int_equal(t.onset_sd_min.n, 2);

    assert_int_equal(sleep_timing_compute(nt, 1, 720, &t), 0);
    assert_string_equal(t.onset_sd_min.reason, "fewer than two nights");
}

/* Properties on pseudo-random scorings (LCG): SRI stays in [-100, 100];
 * repeating one random day exactly gives 100 whatever the day looks like;
 * Webster never turns wake into sleep and never touches unknown minutes. */
static void test_properties(void **st)
{
    (void)st;
    static uint8_t s[5 * 1440], before[5 * 1440];
    uint32_t seed = 4242;
    for (int trial = 0; trial < 10; trial++) {
        for (size_t i = 0; i < sizeof(s); i++) {
            seed = seed * 1664525u + 1013904223u;
            uint32_t r = (seed >> 16) % 100;
            s[i] = r < 5 ? U : r < 50 ? S : W;
        }
        struct metric m = sleep_sri_compute(s, sizeof(s), 1440);
        assert_true(metric_value_valid(&m));
        assert_true(m.value >= -100.0 && m.value <= 100.0);
        /* random independent days: SRI near 0 (agreement ~ 1/2) */
        assert_true(fabs(m.value) < 10.0);

        memcpy(before, s, sizeof(s));
        sleep_rescore_webster(s, sizeof(s));
        for (size_t i = 0; i < sizeof(s); i++) {
            if (before[i] == W || before[i] == U)
                assert_int_equal(s[i], before[i]);
        }

        for (size_t i = 1440; i < sizeof(s); i++)
            s[i] = s[i - 1440];
        m = sleep_sri_compute(s, sizeof(s), 1440);
        assert_near(m.value, 100.0, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ck_spike_200),
        cmocka_unit_test(test_ck_threshold_crossing),
        cmocka_unit_test(test_ck_actigraph_scale),
        cmocka_unit_test(test_ck_missing_and_edges),
        cmocka_unit_test(test_sadeh_hand_value),
        cmocka_unit_test(test_sadeh_constant_runs),
        cmocka_unit_test(test_sadeh_matches_definition),
        cmocka_unit_test(test_webster_rule_a),
        cmocka_unit_test(test_webster_rules_bc),
        cmocka_unit_test(test_webster_rule_d),
        cmocka_unit_test(test_webster_rule_e),
        cmocka_unit_test(test_webster_rule_e_bound),
        cmocka_unit_test(test_webster_unknown_breaks_runs),
        cmocka_unit_test(test_night_metrics_hand),
        cmocka_unit_test(test_night_metrics_missing),
        cmocka_unit_test(test_periods_detect),
        cmocka_unit_test(test_periods_bounded),
        cmocka_unit_test(test_sri_hand),
        cmocka_unit_test(test_timing_across_midnight),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
