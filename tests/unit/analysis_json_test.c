/*
 * analysis_json_test.c — JSON rendering of analysis results
 * (src/analysis/analysis_json.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "analysis/analysis_json.h"

static void test_metric(void **st)
{
    (void)st;
    struct metric ok = metric_value_ok(12.5, 30), no = metric_value_null("fewer than two days", 3);
    json_t *a = analysis_json_metric(&ok), *b = analysis_json_metric(&no);
    assert_non_null(a);
    assert_non_null(b);
    assert_true(json_real_value(json_object_get(a, "value")) == 12.5);
    assert_int_equal(json_integer_value(json_object_get(a, "n")), 30);
    assert_null(json_object_get(a, "reason"));
    assert_true(json_is_null(json_object_get(b, "value")));
    assert_string_equal(json_string_value(json_object_get(b, "reason")), "fewer than two days");
    json_decref(a);
    json_decref(b);
    /* a non-finite value can never become a measurement (JSON has no NaN) */
    struct metric inf = metric_value_ok(INFINITY, 1);
    a = analysis_json_metric(&inf);
    assert_true(json_is_null(json_object_get(a, "value")));
    json_decref(a);
}

/* Local minute numbering: 0 = 1970-01-01T00:00; 2024-02-29 (leap day) is day
 * 19782; -1 is 1969-12-31T23:59. */
static void test_local_time(void **st)
{
    (void)st;
    char buf[64];
    assert_string_equal(analysis_json_local_time(0, buf, sizeof(buf)), "1970-01-01T00:00");
    assert_string_equal(analysis_json_local_time(19782LL * 1440 + 23 * 60 + 59, buf, sizeof(buf)), "2024-02-29T23:59");
    assert_string_equal(analysis_json_local_time(-1, buf, sizeof(buf)), "1969-12-31T23:59");
}

/* A report of an all-missing day renders with nulls and reasons, and the
 * optional sections appear only when asked for. */
static void test_report_shape(void **st)
{
    (void)st;
    static double x[1440];
    for (int i = 0; i < 1440; i++)
        x[i] = NAN;
    struct analysis_input in = {x, 1440, 0, NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL};
    struct analysis_params p = analysis_params_default();
    size_t wsz = analysis_workspace_size(1440, 60);
    void *ws = malloc(wsz);
    struct analysis_report r;
    assert_int_equal(analysis_report_run(&in, &p, ws, wsz, &r), 0);
    json_t *j = analysis_json_report(&r, &p, 0, 1, 0, 0);
    assert_non_null(j);
    json_t *sleep = json_object_get(j, "sleep");
    assert_int_equal(json_array_size(json_object_get(sleep, "nights")), 0);
    json_t *sri = json_object_get(sleep, "sleep_regularity_index");
    assert_string_equal(json_string_value(json_object_get(sri, "reason")), "fewer than two days");
    assert_non_null(json_object_get(j, "cardio"));
    assert_null(json_object_get(j, "respiration"));
    assert_null(json_object_get(j, "activity"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "parameters"), "scorer")),
                        "cole-kripke-1992");
    json_decref(j);
    free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric),
        cmocka_unit_test(test_local_time),
        cmocka_unit_test(test_report_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
