/*
 * problem_test.c — RFC 7807 rendering, slugs and field errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "core/err.h"
#include "core/problem.h"
#include "http/http.h"

static void test_render_basic(void **state)
{
    (void)state;
    struct problem p = {0};
    problem_set(&p, 404, NULL, "Upload %s not found.", "abc");
    json_t *j = problem_to_json(&p, "/api/v1/x", "rid-1");
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")),
                        "https://clarity.dev/problems/resource-not-found");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Resource Not Found");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "Upload abc not found.");
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/api/v1/x");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "rid-1");
    assert_null(json_object_get(j, "errors")); /* absent when there are none */
    json_decref(j);
    problem_clear(&p);
}

static void test_slugs_for_every_status(void **state)
{
    (void)state;
    struct {
        int status;
        const char *slug;
    } t[] = {{400, "bad-request"},        {401, "authentication-required"}, {403, "authorization-denied"},
             {404, "resource-not-found"}, {405, "method-not-allowed"},      {409, "resource-conflict"},
             {413, "payload-too-large"},  {415, "unsupported-media-type"},  {422, "validation-error"},
             {423, "account-locked"},     {429, "rate-limit-exceeded"},     {500, "internal-server-error"},
             {503, "service-unavailable"}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        assert_string_equal(problem_slug_for_status(t[i].status), t[i].slug);
        assert_string_not_equal(problem_title(t[i].slug), "Error");
    }
    assert_string_equal(problem_slug_for_status(418), "bad-request");
    assert_string_equal(problem_slug_for_status(502), "internal-server-error");
    assert_string_equal(problem_title("no-such-slug"), "Error");
}

static void test_field_errors(void **state)
{
    (void)state;
    struct problem p = {0};
    problem_set(&p, 422, "validation-error", "2 metrics are invalid.");
    assert_int_equal(
        problem_add_error(&p, "/metrics/0/biometric_data/heart_rate", "must be between %d and %d", 30, 300), 0);
    assert_int_equal(problem_add_error(&p, "/user_id", "must be the caller"), 0);
    json_t *j = problem_to_json(&p, NULL, NULL);
    json_t *errs = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errs), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 0), "pointer")),
                        "/metrics/0/biometric_data/heart_rate");
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 0), "message")),
                        "must be between 30 and 300");
    assert_true(json_is_null(json_object_get(j, "instance")));
    json_decref(j);
    problem_clear(&p);
    assert_int_equal(p.nerrors, 0);
    assert_null(p.errors);
}

static void test_error_cap(void **state)
{
    (void)state;
    struct problem p = {0};
    problem_set(&p, 422, NULL, NULL);
    for (int i = 0; i < PROBLEM_MAX_ERRORS + 5; i++)
        assert_int_equal(problem_add_error(&p, "/x", "bad %d", i), 0);
    assert_int_equal(p.nerrors, PROBLEM_MAX_ERRORS);
    json_t *j = problem_to_json(&p, NULL, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "errors_truncated")), 5);
    /* No detail given: the title stands in. */
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "Validation Error");
    json_decref(j);
    problem_clear(&p);
}

static void test_extension_members(void **state)
{
    (void)state;
    struct problem p = {0};
    problem_set(&p, 503, "service-unavailable", "A dependency check failed.");
    json_t *extra =
        json_pack("{s:s, s:i, s:{s:s}}", "health_status", "unhealthy", "status", 200, "checks", "database", "down");
    problem_set_extra(&p, extra);
    json_t *j = problem_to_json(&p, "/health", "r");
    /* Extensions appear, but never override the standard members. */
    assert_string_equal(json_string_value(json_object_get(j, "health_status")), "unhealthy");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
    assert_non_null(json_object_get(j, "checks"));
    json_decref(j);
    problem_clear(&p);
}

static void test_reset_frees_previous(void **state)
{
    (void)state;
    struct problem p = {0};
    problem_set(&p, 400, NULL, "first");
    problem_add_error(&p, "/a", "x");
    problem_set(&p, 409, NULL, "second");
    assert_int_equal(p.nerrors, 0);
    assert_string_equal(p.detail, "second");
    assert_string_equal(p.slug, "resource-conflict");
    problem_clear(&p);
}

/* DEBUG=true in development: the cause rides along as debug_* members. */
static void test_verbose_details(void **state)
{
    (void)state;
    struct http_response res;
    memset(&res, 0, sizeof(res));
    api_store_failure(&res, STORE_EINTERNAL);
    assert_int_equal(res.status, 500);
    assert_null(res.problem.extra);
    problem_clear(&res.problem);
    memset(&res, 0, sizeof(res));
    problem_verbose_set(1);
    api_store_failure(&res, STORE_EINTERNAL);
    problem_verbose_set(0);
    assert_non_null(res.problem.extra);
    assert_string_equal(json_string_value(json_object_get(res.problem.extra, "debug_error")),
                        clarity_strerror(STORE_EINTERNAL));
    assert_int_equal(json_integer_value(json_object_get(res.problem.extra, "debug_code")), STORE_EINTERNAL);
    problem_clear(&res.problem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_basic),      cmocka_unit_test(test_slugs_for_every_status),
        cmocka_unit_test(test_field_errors),      cmocka_unit_test(test_error_cap),
        cmocka_unit_test(test_extension_members), cmocka_unit_test(test_reset_frees_previous),
        cmocka_unit_test(test_verbose_details),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
