/*
 * pat_health_test.c — the ml_service canary runs in the background, never
 * per health request (#21): a real (generated) PAT-S model, 1,000 health
 * checks, and the process's inference counter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ml/pat_health.h"
#include "pat_ref.h"

static struct pat_model *model;
static char path[512];

static int setup(void **state)
{
    (void)state;
    struct ref_model rm;
    char err[256];
    const char *base = getenv("CLARITY_TEST_TMP");
    mkdir(base != NULL ? base : "/tmp", 0700);
    snprintf(path, sizeof(path), "%s/pat_health_test_%d.h5", base != NULL ? base : "/tmp", (int)getpid());
    ref_model_init(&rm, 0, 18, 1, 6, 7); /* PAT-S shape, 1 block */
    int rc = ref_model_write(&rm, path, "", NULL);
    ref_model_free(&rm);
    if (rc != 0 || pat_model_load(path, NULL, &model, err, sizeof(err)) != 0)
        return -1;
    unlink(path);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    pat_model_free(model);
    return 0;
}

static void test_health_requests_run_no_inference(void **state)
{
    (void)state;
    struct pat_health_ctx hc = {model, "v1.0", 60000, 1};
    unsigned long long before = pat_inferences_total();
    struct pat_canary *c = pat_canary_start(&hc, 3600);
    assert_non_null(c);
    /* The start-up canary: exactly one forward pass. */
    assert_int_equal(pat_inferences_total() - before, 1);
    assert_int_equal(pat_canary_runs(c), 1);
    unsigned long long after_start = pat_inferences_total();
    for (int i = 0; i < 1000; i++) {
        json_t *d = json_object();
        char err[256] = "";
        assert_int_equal(pat_canary_check(c, d, err, sizeof(err)), 0);
        assert_non_null(json_object_get(d, "canary_ms"));
        assert_true(json_is_true(json_object_get(d, "model_loaded")));
        assert_int_equal(json_integer_value(json_object_get(d, "canary_runs")), 1);
        json_decref(d);
    }
    assert_int_equal(pat_inferences_total(), after_start);
    /* The per-request check this replaced costs one inference a call. */
    json_t *d = json_object();
    char err[256] = "";
    assert_int_equal(pat_health_check(&hc, d, err, sizeof(err)), 0);
    json_decref(d);
    assert_int_equal(pat_inferences_total(), after_start + 1);
    pat_canary_stop(c);
}

static void test_canary_repeats_and_reports_failure(void **state)
{
    (void)state;
    /* A model required but missing: unhealthy, with the reason. */
    struct pat_health_ctx missing = {NULL, NULL, 0, 1};
    struct pat_canary *c = pat_canary_start(&missing, 3600);
    assert_non_null(c);
    char err[256] = "";
    assert_int_equal(pat_canary_check(c, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "PAT model not loaded");
    pat_canary_stop(c);
    /* The background thread runs again after its interval (10 s minimum in
     * configuration; the API takes any positive period). */
    struct pat_health_ctx hc = {model, NULL, 60000, 1};
    c = pat_canary_start(&hc, 1);
    assert_non_null(c);
    for (int i = 0; i < 1000 && pat_canary_runs(c) < 2; i++)
        usleep(10 * 1000);
    assert_true(pat_canary_runs(c) >= 2);
    pat_canary_stop(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_requests_run_no_inference),
        cmocka_unit_test(test_canary_repeats_and_reports_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
