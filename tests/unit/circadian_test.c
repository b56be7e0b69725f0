/*
 * circadian_test.c — IS, IV, RA, L5, M10 and cosinor (src/analysis/circadian.c),
 * with hand-computed cases from van Someren et al. (1999) and properties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/circadian.h"

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

static double *ws_for(size_t n, size_t bin)
{
    double *w = malloc(circadian_workspace_size(n, bin));
    assert_non_null(w);
    return w;
}

static struct circadian_npar npar(const double *x, size_t n, int start, size_t bin)
{
    struct circadian_npar r;
    double *w = ws_for(n, bin);
    assert_int_equal(circadian_npar_compute(x, n, start, bin, w, &r), 0);
    free(w);
    return r;
}

/* Deterministic pseudo-random numbers in [0, 1) (Numerical Recipes LCG). */
static double rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (double)(*s >> 8) / 16777216.0;
}

/* A perfectly periodic week: every day identical (value = hour of day), so
 * every hourly mean equals the bins of that hour and IS = 1 exactly. */
static void test_is_periodic_week(void **st)
{
    (void)st;
    static double x[WEEK];
    for (size_t i = 0; i < WEEK; i++)
        x[i] = (double)((i % DAY) / 60);
    struct circadian_npar r = npar(x, WEEK, 0, 60);
    assert_true(metric_value_valid(&r.is));
    assert_near(r.is.value, 1.0, 1e-12);
    assert_int_equal(r.n_bins, 168);
    /* other bin sizes on request: 30-min bins, still periodic */
    r = npar(x, WEEK, 0, 30);
    assert_near(r.is.value, 1.0, 1e-12);
    assert_int_equal(r.n_bins, 336);
}

/* A constant series has no variance: IS and IV are undefined, not 0. */
static void test_constant_is_null(void **st)
{
    (void)st;
    static double x[WEEK];
    for (size_t i = 0; i < WEEK; i++)
        x[i] = 42.0;
    struct circadian_npar r = npar(x, WEEK, 0, 60);
    assert_false(metric_value_valid(&r.is));
    assert_string_equal(r.is.reason, "constant series");
    assert_string_equal(r.iv.reason, "constant series");
    assert_true(isnan(r.is.value));
    /* L5 = M10 = 42 and RA = 0 are genuine for a constant series; among
     * equal windows the earliest onset is reported */
    assert_near(r.ra.value, 0.0, 1e-12);
    assert_near(r.l5_onset_min.value, 0.0, 0);
    assert_near(r.m10_onset_min.value, 0.0, 0);
}

/* Hourly bins alternating 0,1,0,1 over two days (N = 48). mean 0.5,
 * sum (x - mean)^2 = 48 * 0.25 = 12, sum of squared successive differences
 * = 47 * 1 = 47. IV = N * 47 / ((N - 1) * 12) = 48 * 47 / (47 * 12) = 4.
 * (The published formula gives 4 for strict alternation; white noise gives
 * about 2.) IS = 1: every hour of day has the same value on both days. */
static void test_iv_alternating(void **st)
{
    (void)st;
    static double x[2 * DAY];
    for (size_t i = 0; i < 2 * DAY; i++)
        x[i] = (double)((i / 60) % 2);
    struct circadian_npar r = npar(x, 2 * DAY, 0, 60);
    assert_near(r.iv.value, 4.0, 1e-12);
    assert_near(r.is.value, 1.0, 1e-12);
}

/* Two days, hourly: day 1 all 0 but hour 0 = 2; day 2 all 0 but hour 1 = 2.
 * N = 48, mean = 4/48 = 1/12. Hour means: h0 = 1, h1 = 1, others 0.
 * Between SS = 2 * [2 (1 - 1/12)^2 + 22 (1/12)^2] = 2 * 264/144 = 11/3.
 * Total SS = sum x^2 - N mean^2 = 8 - 48/144 = 23/3. IS = 11/23.
 * Successive differences: 2->0 (4), day 2 0->2 (4), 2->0 (4): 12.
 * IV = 48 * 12 / (47 * 23/3) = 1728 / 1081. */
static void test_is_iv_hand(void **st)
{
    (void)st;
    static double x[2 * DAY];
    for (size_t i = 0; i < 2 * DAY; i++)
        x[i] = 0.0;
    for (size_t i = 0; i < 60; i++) {
        x[i] = 2.0;
        x[DAY + 60 + i] = 2.0;
    }
    struct circadian_npar r = npar(x, 2 * DAY, 0, 60);
    assert_near(r.is.value, 11.0 / 23.0, 1e-12);
    assert_near(r.iv.value, 1728.0 / 1081.0, 1e-12);
    assert_int_equal(r.is.n, 48);
}

/* Mean-day profile: 00-05 h = 2, 05-08 h = 5, 08-18 h = 10, 18-24 h = 5.
 * L5 = 2 starting 00:00; M10 = 10 starting 08:00 (480);
 * RA = (10 - 2) / (10 + 2) = 2/3. A 22:00-03:00 trough instead tests the
 * wrap over midnight: L5 onset 1320. */
static void test_l5_m10_ra(void **st)
{
    (void)st;
    static double x[3 * DAY];
    for (size_t i = 0; i < 3 * DAY; i++) {
        size_t h = (i % DAY) / 60;
        x[i] = h < 5 ? 2 : h < 8 ? 5 : h < 18 ? 10 : 5;
    }
    struct circadian_npar r = npar(x, 3 * DAY, 0, 60);
    assert_near(r.l5.value, 2.0, 1e-12);
    assert_near(r.l5_onset_min.value, 0.0, 0);
    assert_near(r.m10.value, 10.0, 1e-12);
    assert_near(r.m10_onset_min.value, 480.0, 0);
    assert_near(r.ra.value, 2.0 / 3.0, 1e-12);

    for (size_t i = 0; i < 3 * DAY; i++) {
        size_t h = (i % DAY) / 60;
        x[i] = (h >= 22 || h < 3) ? 1 : 8;
    }
    r = npar(x, 3 * DAY, 0, 60);
    assert_near(r.l5.value, 1.0, 1e-12);
    assert_near(r.l5_onset_min.value, 1320.0, 0);
    assert_near(r.ra.value, 7.0 / 9.0, 1e-12);
}

/* Window starting 18:30 (start_min_of_day 1110): bins stay aligned to the
 * clock, so a periodic signal is still IS = 1 and the L5 onset is a clock
 * time. The half-covered first bin (18:30-19:00) counts (30 of 60 minutes). */
static void test_offset_start(void **st)
{
    (void)st;
    static double x[4 * DAY];
    int start = 1110;
    for (size_t i = 0; i < 4 * DAY; i++) {
        size_t h = ((start + i) % DAY) / 60;
        x[i] = (h >= 1 && h < 6) ? 0.5 : 20.0 + (double)h;
    }
    struct circadian_npar r = npar(x, 4 * DAY, start, 60);
    assert_near(r.is.value, 1.0, 1e-12);
    assert_near(r.l5_onset_min.value, 60.0, 0);
    /* 18:30 + 96 h ends at 18:30: 95 full hours plus the half-covered 18-19 h
     * bins at both ends, each with 30 of 60 minutes, which is enough */
    assert_int_equal(r.n_bins, 97);
}

/* Properties on pseudo-random weeks: IS in [0, 1]; IS and IV unchanged when
 * the series is scaled by a positive constant; IS unchanged when whole days
 * are rotated (day order permuted cyclically); IV >= 0. */
static void test_properties(void **st)
{
    (void)st;
    static double x[WEEK], y[WEEK];
    uint32_t seed = 12345;
    for (int trial = 0; trial < 20; trial++) {
        double amp = rnd(&seed) * 3.0;
        for (size_t i = 0; i < WEEK; i++) {
            double t = (double)(i % DAY) / DAY;
            x[i] = 50.0 + amp * 40.0 * sin(2 * M_PI * t) + 30.0 * rnd(&seed);
            if (rnd(&seed) < 0.05)
                x[i] = NAN; /* 5 % missing minutes */
        }
        struct circadian_npar a = npar(x, WEEK, 0, 60);
        assert_true(metric_value_valid(&a.is));
        assert_true(a.is.value >= 0.0 && a.is.value <= 1.0);
        assert_true(a.iv.value >= 0.0);

        for (size_t i = 0; i < WEEK; i++)
            y[i] = 3.7 * x[i];
        struct circadian_npar b = npar(y, WEEK, 0, 60);
        assert_near(b.is.value, a.is.value, 1e-9);
        assert_near(b.iv.value, a.iv.value, 1e-9);

        size_t k = (size_t)(1 + trial % 6) * DAY;
        for (size_t i = 0; i < WEEK; i++)
            y[i] = x[(i + k) % WEEK];
        b = npar(y, WEEK, 0, 60);
        assert_near(b.is.value, a.is.value, 1e-9);
    }
}

/* Edge cases: empty, all missing, one day only, invalid bins. */
static void test_edges(void **st)
{
    (void)st;
    static double x[DAY];
    double w[64];
    struct circadian_npar r;
    assert_int_equal(circadian_npar_compute(NULL, 0, 0, 60, w, &r), 0);
    assert_string_equal(r.is.reason, "less than one day of data");

    for (size_t i = 0; i < DAY; i++)
        x[i] = NAN;
    r = npar(x, DAY, 0, 60);
    assert_string_equal(r.iv.reason, "less than one day of data");

    for (size_t i = 0; i < DAY; i++)
        x[i] = (double)(i % 7);
    r = npar(x, DAY, 0, 60);
    assert_string_equal(r.is.reason, "fewer than two days of data");
    assert_true(metric_value_valid(&r.l5));

    double *wb = ws_for(DAY, 60);
    assert_int_equal(circadian_npar_compute(x, DAY, 0, 7, wb, &r), -1);
    assert_int_equal(circadian_npar_compute(x, DAY, 1440, 60, wb, &r), -1);
    free(wb);
}

/* Cosinor on y = 10 + 5 cos(2 pi (t - 900) / 1440) over 3 days starting at
 * 10:00 with NaN holes: MESOR 10, amplitude 5, acrophase 900 (15:00),
 * R^2 = 1. */
static void test_cosinor_exact(void **st)
{
    (void)st;
    static double x[3 * DAY];
    int start = 600;
    for (size_t i = 0; i < 3 * DAY; i++)
        x[i] = 10.0 + 5.0 * cos(2 * M_PI * ((double)(start + (int)i) - 900.0) / 1440.0);
    for (size_t i = 100; i < 400; i++)
        x[i] = NAN;
    struct circadian_cosinor c;
    assert_int_equal(circadian_cosinor_fit(x, 3 * DAY, start, 1440.0, &c), 0);
    assert_near(c.mesor.value, 10.0, 1e-9);
    assert_near(c.amplitude.value, 5.0, 1e-9);
    assert_near(c.acrophase_min.value, 900.0, 1e-6);
    assert_near(c.r_squared.value, 1.0, 1e-9);
    assert_int_equal(c.mesor.n, 3 * DAY - 300);

    /* a peak just before midnight stays in [0, 1440) */
    for (size_t i = 0; i < 3 * DAY; i++)
        x[i] = 3.0 * cos(2 * M_PI * ((double)i - 1430.0) / 1440.0);
    circadian_cosinor_fit(x, 3 * DAY, 0, 1440.0, &c);
    assert_near(c.acrophase_min.value, 1430.0, 1e-6);
    assert_near(c.mesor.value, 0.0, 1e-9);
}

/* Cosinor properties: scaling y by c scales MESOR and amplitude by c and
 * leaves acrophase and R^2 alone; adding a constant moves only the MESOR. */
static void test_cosinor_properties(void **st)
{
    (void)st;
    static double x[3 * DAY], y[3 * DAY];
    uint32_t seed = 3;
    struct circadian_cosinor a, b;
    for (size_t i = 0; i < 3 * DAY; i++)
        x[i] = 40.0 + 25.0 * cos(2 * M_PI * ((double)i - 1000.0) / 1440.0) + 20.0 * rnd(&seed);
    circadian_cosinor_fit(x, 3 * DAY, 0, 1440.0, &a);
    for (size_t i = 0; i < 3 * DAY; i++)
        y[i] = 2.5 * x[i];
    circadian_cosinor_fit(y, 3 * DAY, 0, 1440.0, &b);
    assert_near(b.mesor.value, 2.5 * a.mesor.value, 1e-9);
    assert_near(b.amplitude.value, 2.5 * a.amplitude.value, 1e-9);
    assert_near(b.acrophase_min.value, a.acrophase_min.value, 1e-6);
    assert_near(b.r_squared.value, a.r_squared.value, 1e-9);
    for (size_t i = 0; i < 3 * DAY; i++)
        y[i] = x[i] + 100.0;
    circadian_cosinor_fit(y, 3 * DAY, 0, 1440.0, &b);
    assert_near(b.mesor.value, a.mesor.value + 100.0, 1e-8);
    assert_near(b.amplitude.value, a.amplitude.value, 1e-8);
    /* the noisy fit still finds the 1000-minute peak within a few minutes */
    assert_near(a.acrophase_min.value, 1000.0, 10.0);
}

/* Noise lowers R^2 below 1; short, constant and empty inputs are nulls. */
static void test_cosinor_edges(void **st)
{
    (void)st;
    static double x[2 * DAY];
    uint32_t seed = 7;
    struct circadian_cosinor c;
    for (size_t i = 0; i < 2 * DAY; i++)
        x[i] = 5.0 + cos(2 * M_PI * (double)i / 1440.0) + (rnd(&seed) - 0.5);
    circadian_cosinor_fit(x, 2 * DAY, 0, 1440.0, &c);
    assert_true(c.r_squared.value > 0.5 && c.r_squared.value < 1.0);

    circadian_cosinor_fit(x, 1000, 0, 1440.0, &c);
    assert_string_equal(c.amplitude.reason, "data span shorter than one period");
    for (size_t i = 0; i < 2 * DAY; i++)
        x[i] = 1.0;
    circadian_cosinor_fit(x, 2 * DAY, 0, 1440.0, &c);
    assert_string_equal(c.amplitude.reason, "constant series");
    circadian_cosinor_fit(NULL, 0, 0, 1440.0, &c);
    assert_string_equal(c.mesor.reason, "fewer than three valid minutes");
    assert_int_equal(circadian_cosinor_fit(x, 10, 0, 0.0, &c), -1);
}

/* pyActigraphy's conventions by hand: two days from midnight, 10 counts a
 * minute 08:00-20:00, 0 otherwise. Binarised (> 4) and summed per hour:
 * 60 for active hours, 0 else. Profile (24 hours): 12 x 60, 12 x 0, sample
 * variance 24*900/23; bins (48): 48*900/47. IS = (24/23)/(48/47) = 47/46.
 * IV: four steps of +-60 over 47 differences: mean 14400/47, divided by
 * 43200/47 -> 1/3. L5 = 0 from 00:00 (earliest); M10 = 1 from 08:00; RA 1.
 * With one missing minute at 09:00 on day 1 the hour sums 59 (missing adds
 * 0), as pandas' resample().sum() does. */
static void test_pyactigraphy_hand(void **st)
{
    (void)st;
    static double x[2880];
    for (size_t i = 0; i < 2880; i++)
        x[i] = (i % 1440 >= 480 && i % 1440 < 1200) ? 10.0 : 0.0;
    void *ws = malloc(circadian_pyact_workspace_size(2880, 60));
    struct circadian_npar r;
    assert_int_equal(circadian_npar_pyactigraphy(x, 2880, 60, 0, 4.0, ws, &r), 0);
    assert_true(fabs(r.is.value - 47.0 / 46.0) < 1e-12);
    assert_true(fabs(r.iv.value - 1.0 / 3.0) < 1e-12);
    assert_true(r.l5.value == 0.0 && r.l5_onset_min.value == 0.0);
    assert_true(r.m10.value == 1.0 && r.m10_onset_min.value == 480.0);
    assert_true(r.ra.value == 1.0);
    x[540] = NAN;
    assert_int_equal(circadian_npar_pyactigraphy(x, 2880, 60, 0, 4.0, ws, &r), 0);
    assert_true(r.is.value < 47.0 / 46.0);
    assert_int_equal(circadian_npar_pyactigraphy(NULL, 2880, 60, 0, 4.0, ws, &r), -1);
    free(ws);
}

/* pyActigraphy's conventions at 30-s epochs, by hand from the published
 * definitions (IS, IV: Witting et al. 1990, Biol Psychiatry 27:563-572; L5,
 * M10, RA: Van Someren et al. 1999, Chronobiol Int 16:505-518) in
 * pyActigraphy's reading of them. Two identical days of 2880 epochs from
 * 00:00:00; epoch e of the day counts 10 (active, > 4) when
 *   963 <= e < 2403 (08:01:30-20:01:30), or
 *   241 <= e <= 840 (02:00:30-07:00:00) and e % 8 == 0, or
 *   otherwise e % 4 == 0;
 * else 3 (inactive after binarising at > 4).
 * Hourly sums of active epochs (120 epochs an hour), one day:
 *   30 30 15 15 15 15 15 30 118 120x11 32 30 30 30  (sum 1725)
 * (hour 2: epoch 240 + 14 of the every-8th; hour 7: 840 + 29 every-4th
 * 844..956; hour 8: 960 then 963..1079; hour 20: 2400..2402 + 2404..2516.)
 * IS: the profile equals each day, so var(profile) = S/23 and var(bins) =
 * 2S/47 (S = one day's sum of squares about 1725/24): IS = 47/46.
 * IV: squared steps within a day 15^2 + 15^2 + 88^2 + 2^2 + 88^2 + 2^2 =
 * 15946, twice (the midnight step is 30 -> 30): 31892; sum of squares about
 * the mean 575/8 over 48 bins 447109/4; IV = (31892/47) / (447109/4/47) =
 * 127568/447109.
 * M10: the 1440 active epochs 963..2402 hold 10-h windows (1200 epochs) of
 * all ones starting 963..1203: M10 = 1 per epoch, onset 963 * 30 s = 481.5
 * min. L5: 5-h windows (600 epochs); the quietest hold 75 active epochs:
 * 237..836 has epoch 240 and the 74 every-8th 248..832 (windows from 233
 * to 236 also hold 236: 76); L5 = 75/600 = 0.125, onset 237 * 30 s = 118.5
 * min (the earliest of 237..244). RA = (1 - 0.125)/(1 + 0.125) = 7/9.
 * Per minute (Clarity's default input) the same day would give L5 about
 * twice as large: pyActigraphy's values are per recorded epoch. */
static void test_pyactigraphy_30s_hand(void **st)
{
    (void)st;
    static double x[5760];
    for (size_t i = 0; i < 5760; i++) {
        size_t e = i % 2880;
        int on = (e >= 963 && e < 2403) || (e >= 241 && e <= 840 ? e % 8 == 0 : e % 4 == 0);
        x[i] = on ? 10.0 : 3.0;
    }
    size_t wsz = circadian_pyact_workspace_size(5760, 30);
    assert_true(wsz > 0);
    void *ws = malloc(wsz);
    assert_non_null(ws);
    struct circadian_npar r;
    assert_int_equal(circadian_npar_pyactigraphy(x, 5760, 30, 0, 4.0, ws, &r), 0);
    assert_true(!r.is.reason && fabs(r.is.value - 47.0 / 46.0) < 1e-12);
    assert_true(!r.iv.reason && fabs(r.iv.value - 127568.0 / 447109.0) < 1e-12);
    assert_true(!r.l5.reason && fabs(r.l5.value - 0.125) < 1e-12);
    assert_true(r.l5_onset_min.value == 118.5);
    assert_true(!r.m10.reason && fabs(r.m10.value - 1.0) < 1e-12);
    assert_true(r.m10_onset_min.value == 481.5);
    assert_true(!r.ra.reason && fabs(r.ra.value - 7.0 / 9.0) < 1e-12);
    /* the same recording starting at 00:00:30 is the same epochs shifted
     * one epoch later on the clock: onsets move by half a minute */
    assert_int_equal(circadian_npar_pyactigraphy(x, 5760, 30, 30, 4.0, ws, &r), 0);
    assert_true(r.l5_onset_min.value == 119.0 && r.m10_onset_min.value == 482.0);
    /* epochs that do not divide an hour are refused */
    assert_true(circadian_pyact_workspace_size(5760, 7 * 60) == 0);
    assert_int_equal(circadian_npar_pyactigraphy(x, 5760, 420, 0, 4.0, ws, &r), -1);
    free(ws);
}

/* The workspace holds the partial last hour: a recording that does not end
 * on a whole hour (2881 minutes, 5761 30-s epochs) fits in exactly
 * circadian_pyact_workspace_size bytes (ASan in the sanitizer build; found
 * by analyze_formats_fuzz, corpus crash_pyact_partial_hour). */
static void test_pyactigraphy_partial_hour_workspace(void **st)
{
    (void)st;
    static double x[5761];
    for (size_t i = 0; i < 5761; i++)
        x[i] = (i / 60) % 3 ? 10.0 : 0.0;
    const unsigned ep[] = {60, 30};
    const size_t n[] = {2881, 5761};
    for (int k = 0; k < 2; k++) {
        void *ws = malloc(circadian_pyact_workspace_size(n[k], ep[k]));
        assert_non_null(ws);
        struct circadian_npar r;
        assert_int_equal(circadian_npar_pyactigraphy(x, n[k], ep[k], 0, 4.0, ws, &r), 0);
        assert_int_equal(r.n_bins, 49);
        assert_null(r.is.reason);
        free(ws);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_periodic_week),
        cmocka_unit_test(test_constant_is_null),
        cmocka_unit_test(test_iv_alternating),
        cmocka_unit_test(test_is_iv_hand),
        cmocka_unit_test(test_l5_m10_ra),
        cmocka_unit_test(test_offset_start),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_cosinor_exact),
        cmocka_unit_test(test_cosinor_properties),
        cmocka_unit_test(test_cosinor_edges),
        cmocka_unit_test(test_pyactigraphy_hand),
        cmocka_unit_test(test_pyactigraphy_30s_hand),
        cmocka_unit_test(test_pyactigraphy_partial_hour_workspace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
