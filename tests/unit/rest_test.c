/*
 * rest_test.c — Choi (2011) non-wear, heart-rate-gap non-wear and rest
 * periods from steps (src/analysis/rest.c). Each case is worked by hand from
 * the rules in rest.h / docs/algorithms.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/rest.h"

static void fill(double *x, size_t pos, size_t len, double v)
{
    for (size_t i = pos; i < pos + len; i++)
        x[i] = v;
}

static size_t count(const uint8_t *m, size_t a, size_t b)
{
    size_t c = 0;
    for (size_t i = a; i < b; i++)
        c += m[i];
    return c;
}

/* Choi 2011: 90 zeros are non-wear, 89 are not. Counts of 5 around them. */
static void test_choi_window(void **st)
{
    (void)st;
    static double x[400];
    static uint8_t m[400];
    size_t nw = 0;
    fill(x, 0, 400, 5);
    fill(x, 10, 90, 0);  /* 10..99: 90 zeros -> non-wear */
    fill(x, 200, 89, 0); /* 200..288: 89 zeros -> wear */
    assert_int_equal(rest_nonwear_choi(x, 400, m, &nw), 0);
    assert_int_equal(nw, 90);
    assert_int_equal(count(m, 10, 100), 90);
    assert_int_equal(m[9] + m[100], 0);
    assert_int_equal(count(m, 200, 289), 0);
}

/* The 2-minute spike allowance. (a) 40 zeros, 2 minutes of 50, 50 zeros:
 * 30 zeros upstream and downstream, so one period of 92 minutes, the spike
 * included. (b) 40 zeros, 3 nonzero, 50 zeros: the spike is too long; 40 and
 * 50 are each below 90: wear. (c) 29 zeros, 2 nonzero, 70 zeros: upstream
 * has 29 < 30 zeros, so the 70 alone are below 90: wear. (d) 100 zeros, 1
 * nonzero, 29 zeros: downstream 29 < 30, the period is the 100 zeros only. */
static void test_choi_spike(void **st)
{
    (void)st;
    static double x[1000];
    static uint8_t m[1000];
    size_t nw = 0;
    fill(x, 0, 1000, 7);
    fill(x, 10, 40, 0);
    fill(x, 52, 50, 0); /* (a) 10..101 */
    fill(x, 200, 40, 0);
    fill(x, 243, 50, 0); /* (b) */
    fill(x, 400, 29, 0);
    fill(x, 431, 70, 0); /* (c) */
    fill(x, 600, 100, 0);
    fill(x, 701, 29, 0); /* (d) 600..699 */
    assert_int_equal(rest_nonwear_choi(x, 1000, m, &nw), 0);
    assert_int_equal(count(m, 10, 102), 92);
    assert_int_equal(count(m, 200, 300), 0);
    assert_int_equal(count(m, 400, 510), 0);
    assert_int_equal(count(m, 600, 700), 100);
    assert_int_equal(count(m, 700, 740), 0);
    assert_int_equal(nw, 192);

    /* a missing minute ends a run: 50 zeros, NaN, 50 zeros -> wear */
    fill(x, 0, 1000, 7);
    fill(x, 100, 50, 0);
    x[150] = NAN;
    fill(x, 151, 50, 0);
    assert_int_equal(rest_nonwear_choi(x, 1000, m, &nw), 0);
    assert_int_equal(nw, 0);
    /* invalid arguments */
    assert_int_equal(rest_nonwear_choi(NULL, 10, m, &nw), -1);
}

/* Heart-rate gaps: with a 60-minute limit, a 61-minute gap is non-wear, a
 * 60-minute one is not; leading and trailing gaps count the same. */
static void test_hr_gaps(void **st)
{
    (void)st;
    static double hr[400];
    static uint8_t m[400];
    size_t nw = 0;
    fill(hr, 0, 400, 62);
    fill(hr, 0, 70, NAN);   /* leading 70: off */
    fill(hr, 100, 60, NAN); /* 60: worn */
    fill(hr, 200, 61, NAN); /* 61: off */
    fill(hr, 390, 10, NAN); /* trailing 10: worn */
    assert_int_equal(rest_nonwear_hr_gaps(hr, 400, 60, m, &nw), 0);
    assert_int_equal(nw, 131);
    assert_int_equal(count(m, 0, 70), 70);
    assert_int_equal(count(m, 100, 160), 0);
    assert_int_equal(count(m, 200, 261), 61);
    assert_int_equal(count(m, 390, 400), 0);
}

/* Rest from steps, two nights starting at noon (start_min_of_day 720).
 * Night 0: walking (20 steps/min) except 22:30-06:30 (indices 630..1110)
 * with a bathroom trip at 03:00 (index 900..905: 5 minutes x 8 steps = 40
 * steps, bridged: <= 10 minutes and <= 100 steps) -> one period 630..1110,
 * 480 minutes, 475 quiet. A 2-hour quiet block in the afternoon (120..240)
 * is shorter and loses.
 * Night 1 (1440..2880): quiet 23:00-01:00 (2100..2220), a 15-minute walk
 * (too long to bridge), quiet 01:15-07:00 (2235..2580, 345 min) -> the
 * longest block 2235..2580. */
static void test_rest_two_nights(void **st)
{
    (void)st;
    static double x[2880];
    struct rest_night r[4];
    size_t nr = 0;
    struct rest_params p = rest_params_default();
    fill(x, 0, 2880, 20);
    fill(x, 120, 120, 0);
    fill(x, 630, 480, 0);
    fill(x, 900, 5, 8);
    fill(x, 2100, 120, 0);
    fill(x, 2235, 345, 0);
    assert_int_equal(rest_estimate_steps(x, 2880, 720, &p, r, 4, &nr), 0);
    assert_int_equal(nr, 2);
    assert_null(r[0].reason);
    assert_int_equal(r[0].start, 630);
    assert_int_equal(r[0].end, 1110);
    assert_int_equal(r[0].quiet_min, 475);
    assert_null(r[1].reason);
    assert_int_equal(r[1].night_start, 1440);
    assert_int_equal(r[1].start, 2235);
    assert_int_equal(r[1].end, 2580);

    /* the trip with 101 steps is not bridged: 630..900 (270) is longest */
    fill(x, 900, 5, 20.2);
    assert_int_equal(rest_estimate_steps(x, 2880, 720, &p, r, 4, &nr), 0);
    assert_int_equal(r[0].start, 630);
    assert_int_equal(r[0].end, 900);
}

/* Bounds: a phone left still for 19 hours (the "136-hour night" of issue
 * #18 in small) is no rest period; 2 hours is too short; a night without
 * any step data is not reported; a block that runs into missing data is
 * incomplete. Start at 18:00 (1080): noon is at index 1080. */
static void test_rest_bounds(void **st)
{
    (void)st;
    static double x[2880];
    struct rest_night r[4];
    size_t nr = 0;
    struct rest_params p = rest_params_default();
    fill(x, 0, 2880, 30);
    fill(x, 1100, 1140, 0); /* night from index 1080: 19 h of no steps */
    assert_int_equal(rest_estimate_steps(x, 2880, 1080, &p, r, 4, &nr), 0);
    assert_int_equal(nr, 3);
    assert_string_equal(r[1].reason, "no steps for too long: the phone was probably not carried");
    assert_int_equal(r[1].start, r[1].end);

    fill(x, 0, 2880, 30);
    fill(x, 300, 120, 0);
    fill(x, 1080, 1440, NAN);
    assert_int_equal(rest_estimate_steps(x, 2880, 1080, &p, r, 4, &nr), 0);
    assert_int_equal(nr, 2); /* night 1 has no data */
    assert_string_equal(r[0].reason, "no rest period long enough without steps");
    assert_int_equal(r[1].night_start, 2520);

    fill(x, 0, 2880, 30);
    fill(x, 800, 280, 0); /* 800..1080 then missing */
    fill(x, 1080, 1800, NAN);
    assert_int_equal(rest_estimate_steps(x, 2880, 1080, &p, r, 4, &nr), 0);
    assert_int_equal(nr, 1);
    assert_string_equal(r[0].reason, "the rest period runs past the step data");

    p.max_rest_min = 10; /* below min_rest_min */
    assert_int_equal(rest_estimate_steps(x, 2880, 1080, &p, r, 4, &nr), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choi_window),     cmocka_unit_test(test_choi_spike),  cmocka_unit_test(test_hr_gaps),
        cmocka_unit_test(test_rest_two_nights), cmocka_unit_test(test_rest_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
