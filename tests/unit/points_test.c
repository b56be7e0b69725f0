/*
 * points_test.c — the "posted points → analysis" use case
 * (pipeline/points.c) shared by the PAT API and the chat: points summed per
 * local minute, the last keep_min minutes kept, the span cap, rejection in
 * the client's words, and one PAT workspace per thread reused across calls
 * (instead of ~20 MB allocated per request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "../tests/unit/pat_ref.h"
#include "core/limits.h"
#include "pipeline/points.h"

/* A week of minute step counts: 08:00-22:00 active, nights still. */
static void week(int64_t *min, double *val, size_t n, int64_t start)
{
    for (size_t i = 0; i < n; i++) {
        min[i] = start + (int64_t)i;
        int mod = (int)(i % 1440);
        val[i] = mod >= 480 && mod < 1320 ? 20.0 + (double)(i % 7) : 0.0;
    }
}

static double steps_daily_mean(json_t *result)
{
    return json_real_value(
        json_object_get(json_object_get(json_object_get(result, "activity"), "steps_daily_mean"), "value"));
}

static void test_bucketing_and_keep(void **state)
{
    (void)state;
    static int64_t min[10080];
    static double val[10080];
    week(min, val, 10080, 1000000);
    json_t *res = NULL, *cov = NULL;
    char err[256];
    assert_int_equal(points_analyse(NULL, min, val, 10080, 1, 0, &res, &cov, err, sizeof(err)), 0);
    double mean = steps_daily_mean(res);
    assert_true(mean > 0);
    json_decref(res);
    json_decref(cov);

    /* The same totals posted as two half-counts per minute: summed, the
     * same analysis. */
    static int64_t min2[20160];
    static double val2[20160];
    for (size_t i = 0; i < 10080; i++) {
        min2[2 * i] = min2[2 * i + 1] = min[i];
        val2[2 * i] = val2[2 * i + 1] = val[i] / 2;
    }
    assert_int_equal(points_analyse(NULL, min2, val2, 20160, 1, 0, &res, &cov, err, sizeof(err)), 0);
    assert_true(fabs(steps_daily_mean(res) - mean) < 1e-9);
    json_decref(res);
    json_decref(cov);

    /* keep_min: a stray point two weeks before the week is dropped, so the
     * span stays within the cap. */
    min2[0] = min[0] - 20000;
    val2[0] = 5;
    memcpy(min2 + 1, min, sizeof(min));
    memcpy(val2 + 1, val, sizeof(val));
    assert_int_equal(points_analyse(NULL, min2, val2, 10081, 1, 0, &res, &cov, err, sizeof(err)), ANALYSIS_ESPAN);
    assert_null(res);
    assert_int_equal(points_analyse(NULL, min2, val2, 10081, 1, 10080, &res, &cov, err, sizeof(err)), 0);
    assert_true(fabs(steps_daily_mean(res) - mean) < 1e-9);
    json_decref(res);
    json_decref(cov);
}

static void test_span_cap_and_rejection(void **state)
{
    (void)state;
    int64_t min[2] = {0, LIMIT_POINTS_SPAN_MIN - 1};
    double val[2] = {1, 1};
    json_t *res = NULL, *cov = NULL;
    char err[256] = "";
    /* Exactly the cap is allowed to be tried; one minute more is refused. */
    int rc = points_analyse(NULL, min, val, 2, 1, 0, &res, &cov, err, sizeof(err));
    assert_true(rc == 0 || rc == ANALYSIS_EINVAL);
    json_decref(res);
    json_decref(cov);
    min[1] = LIMIT_POINTS_SPAN_MIN;
    assert_int_equal(points_analyse(NULL, min, val, 2, 1, 0, &res, &cov, err, sizeof(err)), ANALYSIS_ESPAN);
    assert_non_null(strstr(err, "20160"));
    assert_int_equal(points_analyse(NULL, min, val, 0, 1, 0, &res, &cov, err, sizeof(err)), ANALYSIS_EINVAL);
}

struct run {
    const struct points_pat *pat;
    int calls;
    int ok;
};

static void *analyse_n(void *p)
{
    struct run *r = p;
    static _Thread_local int64_t min[10080];
    static _Thread_local double val[10080];
    week(min, val, 10080, 2000000);
    r->ok = 1;
    for (int k = 0; k < r->calls; k++) {
        json_t *res = NULL, *cov = NULL;
        char err[256];
        if (points_analyse(r->pat, min, val, 10080, 1, 0, &res, &cov, err, sizeof(err)) != 0 ||
            json_is_null(json_object_get(json_object_get(res, "pat"), "value"))) {
            char *t = json_dumps(json_object_get(res, "pat"), 0);
            fprintf(stderr, "pat: %s (%s)\n", t ? t : "-", err);
            free(t);
            r->ok = 0;
        }
        json_decref(res);
        json_decref(cov);
    }
    return NULL;
}

/* With a model: the embedding is there, and each thread makes its workspace
 * once whatever the number of requests it serves. */
static void test_workspace_per_thread_reused(void **state)
{
    (void)state;
    struct ref_model rm;
    struct pat_model *m = NULL;
    char path[512], err[256];
    ref_model_init(&rm, 0, 18, 1, 6, 7);
    ref_tmp_path(path, sizeof(path), "points_model");
    assert_int_equal(ref_model_write(&rm, path, "", NULL), 0);
    assert_int_equal(pat_model_load(path, NULL, &m, err, sizeof(err)), PAT_OK);
    struct pat_standardization std;
    memset(&std, 0, sizeof(std));
    std.mode = PAT_STD_NONE;
    struct points_pat pat = {m, &std, "test"};
    size_t before = points_workspaces_made();
    struct run r1 = {&pat, 3, 0}, r2 = {&pat, 3, 0};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, analyse_n, &r1), 0);
    assert_int_equal(pthread_create(&t2, NULL, analyse_n, &r2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_true(r1.ok && r2.ok);
    /* Six analyses with PAT on two threads: two workspaces, not six. */
    assert_int_equal(points_workspaces_made() - before, 2);
    pat_model_free(m);
    ref_model_free(&rm);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucketing_and_keep),
        cmocka_unit_test(test_span_cap_and_rejection),
        cmocka_unit_test(test_workspace_per_thread_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
