/*
 * hksleep_test.c — nightly metrics from HealthKit sleep categories
 * (src/analysis/hksleep.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/hksleep.h"
#include "analysis/series.h"

#define assert_near(a, b, eps) assert_near_at((a), (b), (eps), __FILE__, __LINE__)
static void assert_near_at(double a, double b, double eps, const char *file, int line)
{
    if (!(fabs(a - b) <= eps)) {
        print_error("%s:%d: %.12g != %.12g (eps %g)\n", file, line, a, b, eps);
        fail();
    }
}

#define MIN_MS 60000LL
#define T0 1768003200000LL /* 2026-01-10T00:00:00Z */

/* Interval from local clock h1:m1 on day d1 (0 = Jan 10) to h2:m2 on d2. */
static struct hksleep_interval iv(int d1, int h1, int m1, int d2, int h2, int m2, int cat, int src, int off)
{
    struct hksleep_interval v;
    int64_t a = (int64_t)(d1 * 1440 + h1 * 60 + m1 - off) * MIN_MS;
    int64_t b = (int64_t)(d2 * 1440 + h2 * 60 + m2 - off) * MIN_MS;
    v.start_ms = T0 + a;
    v.end_ms = T0 + b;
    v.offset_min = off;
    v.source = (uint16_t)src;
    v.category = (uint8_t)cat;
    return v;
}

static int night(const struct hksleep_interval *v, size_t n, struct hksleep_night *out)
{
    /* local noon Jan 10 to noon Jan 11 */
    int64_t w0 = T0 / MIN_MS + 720;
    void *ws = malloc(hksleep_workspace_size(1440));
    int rc = hksleep_night_compute(v, n, w0, 1440, ws, out);
    free(ws);
    return rc;
}

/* A night with watch stages (source 0) and a phone (source 1) that records
 * asleepUnspecified 22:15-06:45, plus a phone inBed 22:00-07:00.
 * Watch: core 22:30-01:00 (150), deep 01:00-02:00 (60), awake 02:00-02:10,
 * REM 02:10-03:00 (50), core 03:00-06:30 (210).
 * Minutes where the watch has no label take the phone's:
 * 22:15-22:30 and 06:30-06:45 are asleepUnspecified (15 + 15).
 * In bed without label: 22:00-22:15 and 06:45-07:00 -> awake in bed.
 * TIB 540, TST 15+150+60+50+210+15 = 500, SE 92.592593 %, SOL 15,
 * WASO 10, awakenings 1; core 360 (72 %), deep 60 (12 %), REM 50 (10 %),
 * unspecified 30. Midpoint index: onset 22:15 = 615, final wake 06:45 =
 * 1125 -> 870. */
static void make_night(struct hksleep_interval *v, int off)
{
    v[0] = iv(0, 22, 0, 1, 7, 0, HKSLEEP_IN_BED, 1, off);
    v[1] = iv(0, 22, 15, 1, 6, 45, HKSLEEP_ASLEEP_UNSPECIFIED, 1, off);
    v[2] = iv(0, 22, 30, 1, 1, 0, HKSLEEP_ASLEEP_CORE, 0, off);
    v[3] = iv(1, 1, 0, 1, 2, 0, HKSLEEP_ASLEEP_DEEP, 0, off);
    v[4] = iv(1, 2, 0, 1, 2, 10, HKSLEEP_AWAKE, 0, off);
    v[5] = iv(1, 2, 10, 1, 3, 0, HKSLEEP_ASLEEP_REM, 0, off);
    v[6] = iv(1, 3, 0, 1, 6, 30, HKSLEEP_ASLEEP_CORE, 0, off);
}

static void check_night(const struct hksleep_night *r)
{
    assert_near(r->base.time_in_bed_min.value, 540, 0);
    assert_near(r->base.total_sleep_min.value, 500, 0);
    assert_near(r->base.efficiency_pct.value, 100.0 * 500 / 540, 1e-9);
    assert_near(r->base.onset_latency_min.value, 15, 0);
    assert_near(r->base.waso_min.value, 10, 0);
    assert_near(r->base.awakenings.value, 1, 0);
    assert_near(r->base.midpoint_min.value, 870, 0);
    assert_near(r->core_min.value, 360, 0);
    assert_near(r->deep_min.value, 60, 0);
    assert_near(r->rem_min.value, 50, 0);
    assert_near(r->unspecified_min.value, 30, 0);
    assert_near(r->core_pct.value, 72, 1e-9);
    assert_near(r->deep_pct.value, 12, 1e-9);
    assert_near(r->rem_pct.value, 10, 1e-9);
}

static void test_staged_night_two_sources(void **st)
{
    (void)st;
    struct hksleep_interval v[7];
    struct hksleep_night r;
    make_night(v, 0);
    assert_int_equal(night(v, 7, &r), 0);
    check_night(&r);
    /* order of samples does not matter */
    struct hksleep_interval rev[7];
    for (int i = 0; i < 7; i++)
        rev[i] = v[6 - i];
    night(rev, 7, &r);
    check_night(&r);
}

/* The same local night recorded in Tokyo (+540): identical local metrics. */
static void test_offset_local_time(void **st)
{
    (void)st;
    struct hksleep_interval v[7];
    struct hksleep_night r;
    make_night(v, 540);
    night(v, 7, &r);
    check_night(&r);
}

/* Overlapping duplicates from one source resolve to the most specific label:
 * asleepUnspecified 23:00-07:00 and asleepDeep 01:00-02:00 from the watch:
 * deep 60, unspecified 420, TST 480; no inBed -> latency null. */
static void test_same_source_overlap(void **st)
{
    (void)st;
    struct hksleep_interval v[2] = {
        iv(0, 23, 0, 1, 7, 0, HKSLEEP_ASLEEP_UNSPECIFIED, 0, 0),
        iv(1, 1, 0, 1, 2, 0, HKSLEEP_ASLEEP_DEEP, 0, 0),
    };
    struct hksleep_night r;
    night(v, 2, &r);
    assert_near(r.base.total_sleep_min.value, 480, 0);
    assert_near(r.deep_min.value, 60, 0);
    assert_near(r.unspecified_min.value, 420, 0);
    assert_string_equal(r.base.onset_latency_min.reason, "no in-bed interval");
    assert_near(r.deep_pct.value, 12.5, 1e-9);
}

/* No stages at all: percentages are nulls, minutes are real zeros. */
static void test_unstaged_and_empty(void **st)
{
    (void)st;
    struct hksleep_interval v[1] = {iv(0, 23, 0, 1, 6, 0, HKSLEEP_ASLEEP_UNSPECIFIED, 0, 0)};
    struct hksleep_night r;
    night(v, 1, &r);
    assert_near(r.base.total_sleep_min.value, 420, 0);
    assert_string_equal(r.rem_pct.reason, "no sleep stage data");
    assert_near(r.rem_min.value, 0, 0);

    night(NULL, 0, &r);
    assert_string_equal(r.base.total_sleep_min.reason, "no sleep data");
    assert_string_equal(r.core_pct.reason, "no sleep data");

    /* intervals outside the window, reversed, or of unknown category are ignored */
    struct hksleep_interval bad[3] = {
        iv(3, 23, 0, 4, 6, 0, HKSLEEP_ASLEEP_CORE, 0, 0),
        iv(1, 6, 0, 0, 23, 0, HKSLEEP_ASLEEP_CORE, 0, 0),
        iv(0, 23, 0, 1, 6, 0, 9, 0, 0),
    };
    night(bad, 3, &r);
    assert_string_equal(r.base.total_sleep_min.reason, "no sleep data");
    assert_int_equal(hksleep_night_compute(v, 1, 0, 0, &r, &r), -1);
}

/* States for SRI: three nights from noon Jan 10; nights 1 and 2 have the
 * same sleep 23:00-07:00, night 3 has no record at all. Night 1 minutes:
 * 660..1140 SLEEP, the rest of that night WAKE; night 3 UNKNOWN. SRI over
 * the known pairs (night 1 vs 2 only: 1440 pairs, all equal) is 100; with
 * night 2 shifted one hour later, 2 * 60 minutes disagree: SRI = -100 + 200 *
 * (1440 - 120) / 1440 = 83.333333. */
static void test_states_for_sri(void **st)
{
    (void)st;
    struct hksleep_interval v[2] = {
        iv(0, 23, 0, 1, 7, 0, HKSLEEP_ASLEEP_CORE, 0, 0),
        iv(1, 23, 0, 2, 7, 0, HKSLEEP_ASLEEP_UNSPECIFIED, 0, 0),
    };
    int64_t w0 = T0 / MIN_MS + 720;
    size_t n = 3 * 1440;
    void *ws = malloc(hksleep_workspace_size(n));
    uint8_t *s = malloc(n);
    assert_int_equal(hksleep_states_build(v, 2, w0, n, ws, s), 0);
    assert_int_equal(s[659], SLEEP_STATE_WAKE);
    assert_int_equal(s[660], SLEEP_STATE_SLEEP);
    assert_int_equal(s[1139], SLEEP_STATE_SLEEP);
    assert_int_equal(s[1140], SLEEP_STATE_WAKE);
    assert_int_equal(s[2 * 1440], SLEEP_STATE_UNKNOWN);
    assert_int_equal(s[3 * 1440 - 1], SLEEP_STATE_UNKNOWN);
    struct metric m = sleep_sri_compute(s, n, 1440);
    assert_near(m.value, 100.0, 0);
    assert_int_equal(m.n, 1440);

    v[1] = iv(2, 0, 0, 2, 8, 0, HKSLEEP_ASLEEP_UNSPECIFIED, 0, 0);
    hksleep_states_build(v, 2, w0, n, ws, s);
    m = sleep_sri_compute(s, n, 1440);
    assert_near(m.value, -100.0 + 200.0 * 1320.0 / 1440.0, 1e-9);
    free(s);
    free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_staged_night_two_sources), cmocka_unit_test(test_offset_local_time),
        cmocka_unit_test(test_same_source_overlap),      cmocka_unit_test(test_unstaged_and_empty),
        cmocka_unit_test(test_states_for_sri),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
