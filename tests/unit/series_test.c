/*
 * series_test.c — minute series building and proxy actigraphy
 * (src/analysis/series.c), plus the NaN-aware statistics it relies on
 * (src/analysis/stats.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/series.h"
#include "analysis/stats.h"

#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s:%d: %.12g != %.12g (eps %g)\n", file, line, a, b, eps);
        fail();
    }
}

#define MIN_MS 60000LL
/* 2026-01-10T00:00:00Z */
#define T0 1768003200000LL

static struct series_sample smp(int64_t start_ms, int64_t end_ms, double v, int off, int src)
{
    struct series_sample s = {start_ms, end_ms, v, off, (uint16_t)src};
    return s;
}

static int build(const struct series_sample *s, size_t ns, int64_t start_local_min, size_t n, enum series_agg agg,
                 double *out, uint8_t *mask)
{
    void *ws = malloc(series_workspace_size(n));
    int rc = series_minutes_build(s, ns, start_local_min, n, agg, ws, out, mask);
    free(ws);
    return rc;
}

/* 120 steps over 10:00:30-10:02:30 (2 minutes): 1 step per second, so
 * 10:00 gets 30, 10:01 gets 60, 10:02 gets 30; the rest have no data. */
static void test_steps_spread(void **st)
{
    (void)st;
    int64_t w0 = T0 / MIN_MS + 600; /* local 10:00 at offset 0 */
    struct series_sample s = smp(T0 + 600 * MIN_MS + 30000, T0 + 602 * MIN_MS + 30000, 120, 0, 0);
    double out[5];
    uint8_t mask[5];
    assert_int_equal(build(&s, 1, w0, 5, SERIES_AGG_SUM, out, mask), 0);
    assert_near(out[0], 30, 1e-9);
    assert_near(out[1], 60, 1e-9);
    assert_near(out[2], 30, 1e-9);
    assert_true(isnan(out[3]));
    assert_int_equal(mask[2], 1);
    assert_int_equal(mask[3], 0);
}

/* Watch (source 0): 100 steps 10:00-10:10; phone (source 1): 150 steps
 * 10:05-10:15. Minutes 10:05-10:09 have both: only the watch counts. So
 * 10:00-10:09 = 10/min from the watch, 10:10-10:14 = 15/min from the phone,
 * total 100 + 75 = 175, not 250. */
static void test_two_sources_no_double_count(void **st)
{
    (void)st;
    int64_t w0 = T0 / MIN_MS + 600;
    struct series_sample s[2] = {
        smp(T0 + 605 * MIN_MS, T0 + 615 * MIN_MS, 150, 0, 1),
        smp(T0 + 600 * MIN_MS, T0 + 610 * MIN_MS, 100, 0, 0),
    };
    double out[20];
    build(s, 2, w0, 20, SERIES_AGG_SUM, out, NULL);
    double total = 0;
    for (int i = 0; i < 20; i++) {
        if (i < 10)
            assert_near(out[i], 10, 1e-9);
        else if (i < 15)
            assert_near(out[i], 15, 1e-9);
        else
            assert_true(isnan(out[i]));
        if (!isnan(out[i]))
            total += out[i];
    }
    assert_near(total, 175, 1e-9);
}

/* Heart rate: instants 60 and 70 bpm in one minute average to 65; a phone
 * reading of 90 in the same minute is ignored (watch preferred). */
static void test_hr_mean(void **st)
{
    (void)st;
    int64_t w0 = T0 / MIN_MS;
    struct series_sample s[3] = {
        smp(T0 + 5000, T0 + 5000, 60, 0, 0),
        smp(T0 + 50000, 0, 70, 0, 0),
        smp(T0 + 20000, T0 + 20000, 90, 0, 1),
    };
    double out[3];
    uint8_t mask[3];
    build(s, 3, w0, 3, SERIES_AGG_MEAN, out, mask);
    assert_near(out[0], 65, 1e-12);
    assert_true(isnan(out[1]));
    assert_int_equal(mask[0], 1);
    assert_int_equal(mask[1], 0);
}

/* Local time: a sample at 23:30Z with offset -300 (New York, EST) is at
 * 18:30 local; the window is in local minutes. */
static void test_local_offset(void **st)
{
    (void)st;
    int64_t w0 = T0 / MIN_MS + 18 * 60; /* local 18:00 on 2026-01-10 */
    struct series_sample s = smp(T0 + (23 * 60 + 30) * MIN_MS, 0, 5, -300, 0);
    double out[60];
    build(&s, 1, w0, 60, SERIES_AGG_SUM, out, NULL);
    assert_near(out[30], 5, 0);
    assert_int_equal(stats_count_valid(out, 60), 1);
    assert_int_equal(series_local_minute(-1, 0), -1); /* floor, not truncation */
}

/* DST spring forward (Europe, 2026-03-29 01:00Z: +60 -> +120). One step per
 * UTC minute 00:00Z-01:59Z. Local: 01:00-01:59 then 03:00-03:59; the local
 * hour 02:00-02:59 never happened and stays missing.
 * DST fall back (2026-10-25 01:00Z: +120 -> +60). UTC 00:00-00:59 at +120
 * and 01:00-01:59 at +60 both land on local 02:00-02:59: sums add (2 per
 * minute), means average. */
static void test_dst(void **st)
{
    (void)st;
    const int64_t spring = 1774742400000LL; /* 2026-03-29T00:00:00Z */
    struct series_sample s[120];
    for (int i = 0; i < 120; i++)
        s[i] = smp(spring + i * MIN_MS, 0, 1, i < 60 ? 60 : 120, 0);
    int64_t w0 = spring / MIN_MS + 60; /* local 01:00 */
    double out[180];
    uint8_t mask[180];
    build(s, 120, w0, 180, SERIES_AGG_SUM, out, mask);
    for (int i = 0; i < 180; i++) {
        int want = !(i >= 60 && i < 120);
        assert_int_equal(mask[i], want);
        if (want)
            assert_near(out[i], 1, 0);
    }

    const int64_t fall = 1792886400000LL; /* 2026-10-25T00:00:00Z */
    for (int i = 0; i < 120; i++)
        s[i] = smp(fall + i * MIN_MS, 0, i < 60 ? 1 : 1, i < 60 ? 120 : 60, 0);
    w0 = fall / MIN_MS + 120; /* local 02:00 */
    build(s, 120, w0, 60, SERIES_AGG_SUM, out, mask);
    for (int i = 0; i < 60; i++)
        assert_near(out[i], 2, 0);
    for (int i = 0; i < 120; i++)
        s[i].value = i < 60 ? 50 : 70;
    build(s, 120, w0, 60, SERIES_AGG_MEAN, out, mask);
    assert_near(out[17], 60, 1e-12);
}

/* Edges: empty sample set (all missing), samples outside the window, NaN
 * values and absurd offsets are skipped; a zero-length window is an error. */
static void test_series_edges(void **st)
{
    (void)st;
    double out[10];
    uint8_t mask[10];
    int64_t w0 = T0 / MIN_MS;
    assert_int_equal(build(NULL, 0, w0, 10, SERIES_AGG_SUM, out, mask), 0);
    assert_int_equal(stats_count_valid(out, 10), 0);
    struct series_sample s[3] = {
        smp(T0 - 3600000, T0 - 1800000, 10, 0, 0),
        smp(T0 + MIN_MS, 0, NAN, 0, 0),
        smp(T0 + MIN_MS, 0, 3, 5000, 0),
    };
    build(s, 3, w0, 10, SERIES_AGG_SUM, out, mask);
    assert_int_equal(stats_count_valid(out, 10), 0);
    /* a sample straddling the window start keeps only its share inside */
    s[0] = smp(T0 - 5 * MIN_MS, T0 + 5 * MIN_MS, 100, 0, 0);
    build(s, 1, w0, 10, SERIES_AGG_SUM, out, mask);
    assert_near(out[0] + out[1] + out[2] + out[3] + out[4], 50, 1e-9);
    assert_int_equal(build(s, 1, w0, 0, SERIES_AGG_SUM, out, mask), -1);
}

/* Proxy: a_i = (sqrt(steps) - 1) / 2 with ref mean 1, SD 2:
 * 0 -> -0.5, 4 -> 0.5, NaN -> value of 0 steps = -0.5, 9 -> 1.
 * One hour block with data -> quality 1; required 10 -> short by 6. */
static void test_proxy(void **st)
{
    (void)st;
    double steps[4] = {0, 4, NAN, 9}, out[4];
    struct series_proxy_result r;
    assert_int_equal(series_proxy_actigraphy(steps, 4, 1.0, 2.0, 10, out, &r), 0);
    assert_near(out[0], -0.5, 0);
    assert_near(out[1], 0.5, 0);
    assert_near(out[2], -0.5, 0);
    assert_near(out[3], 1.0, 0);
    assert_int_equal(r.short_by, 6);
    assert_int_equal(r.n_with_data, 3);
    assert_near(r.quality.value, 1.0, 0);

    /* two hours, data only in the first: quality 0.5; deterministic */
    static double s2[120], o2[120], o3[120];
    for (int i = 0; i < 120; i++)
        s2[i] = i < 3 ? 16 : NAN;
    series_proxy_actigraphy(s2, 120, 0.0, 1.0, 60, o2, &r);
    series_proxy_actigraphy(s2, 120, 0.0, 1.0, 60, o3, &r);
    assert_memory_equal(o2, o3, sizeof(o2));
    assert_near(r.quality.value, 0.5, 0);
    assert_int_equal(r.short_by, 0);

    series_proxy_actigraphy(NULL, 0, 0.0, 1.0, 10080, NULL, &r);
    assert_false(metric_value_valid(&r.quality));
    assert_int_equal(r.short_by, 10080);
    assert_int_equal(series_proxy_actigraphy(steps, 4, 0.0, 0.0, 4, out, &r), -1);
}

/* Quantiles against a sorted copy (definition 7) on pseudo-random arrays
 * with duplicates; NaNs skipped. */
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_quantile_vs_sort(void **st)
{
    (void)st;
    uint32_t seed = 99;
    static double x[501], w[501], sorted[501];
    for (int trial = 0; trial < 200; trial++) {
        size_t n = 1 + (size_t)trial * 5 % 500;
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1664525u + 1013904223u;
            x[i] = (seed >> 28) == 0 ? NAN : (double)((seed >> 8) % 50);
            if (!isnan(x[i]))
                sorted[m++] = x[i];
        }
        qsort(sorted, m, sizeof(double), cmp);
        double qs[5] = {0, 0.1, 0.25, 0.5, 1};
        for (int k = 0; k < 5; k++) {
            double got = stats_quantile_compute(x, n, qs[k], w);
            if (m == 0) {
                assert_true(isnan(got));
                continue;
            }
            double h = (double)(m - 1) * qs[k];
            size_t lo = (size_t)floor(h);
            double want = lo + 1 < m ? sorted[lo] + (h - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
            assert_near(got, want, 1e-12);
        }
    }
    assert_true(isnan(stats_quantile_compute(x, 3, 1.5, w)));
}

/* Descriptive statistics by hand: {2, 4, NaN, 6}: mean 4, sample SD 2. Gaps:
 * {1, NaN, NaN, 4, NaN x 7, 0} with max gap 2 -> {1, 2, 3, 4, NaN...}. */
static void test_stats_basic(void **st)
{
    (void)st;
    double x[4] = {2, 4, NAN, 6};
    assert_near(stats_mean_compute(x, 4), 4, 0);
    assert_near(stats_sd_compute(x, 4), 2, 1e-12);
    assert_near(stats_min_compute(x, 4), 2, 0);
    assert_near(stats_max_compute(x, 4), 6, 0);
    assert_true(isnan(stats_sd_compute(x, 1)));
    assert_true(isnan(stats_mean_compute(x, 0)));
    double g[12] = {1, NAN, NAN, 4, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0};
    assert_int_equal(stats_gaps_interpolate(g, 12, 2), 2);
    assert_near(g[1], 2, 1e-12);
    assert_near(g[2], 3, 1e-12);
    assert_true(isnan(g[4]));
    double e[3] = {NAN, 1, NAN};
    assert_int_equal(stats_gaps_interpolate(e, 3, 5), 0); /* edges never filled */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_spread), cmocka_unit_test(test_two_sources_no_double_count),
        cmocka_unit_test(test_hr_mean),      cmocka_unit_test(test_local_offset),
        cmocka_unit_test(test_dst),          cmocka_unit_test(test_series_edges),
        cmocka_unit_test(test_proxy),        cmocka_unit_test(test_quantile_vs_sort),
        cmocka_unit_test(test_stats_basic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
