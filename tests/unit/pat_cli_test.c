/*
 * pat_cli_test.c — `clarity pat info|embed` (src/cli/pat.c): exit statuses
 * 0/1/2, the JSON it prints, CSV reading and coverage, heads, attention.
 * Calls cli_pat directly with stdout/stderr redirected to files.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "cli/pat.h"
#include "ml/pat.h"
#include "pat_ref.h"

struct fixture {
    char model[512], head[512], csv[512], out[512], errf[512];
};

/* Run cli_pat(argv) capturing stdout and stderr; returns its status and
 * the parsed stdout (NULL if it was not JSON; caller decrefs). */
static int run(struct fixture *f, json_t **json, int argc, char **argv)
{
    int out = open(f->out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(f->errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved_out, saved_err, rc;

    assert_true(out >= 0 && err >= 0);
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    dup2(out, 1);
    dup2(err, 2);
    rc = cli_pat(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(out);
    close(err);
    if (json)
        *json = json_load_file(f->out, 0, NULL);
    return rc;
}

static int contains_file(const char *path, const char *needle)
{
    char buf[4096];
    FILE *fp = fopen(path, "r");
    size_t n = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
    if (fp)
        fclose(fp);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    struct ref_model rm;
    uint64_t st = 8;
    FILE *fp;

    ref_tmp_path(f->model, sizeof f->model, "patcli_model");
    ref_tmp_path(f->head, sizeof f->head, "patcli_head");
    ref_tmp_path(f->csv, sizeof f->csv, "patcli_csv");
    ref_tmp_path(f->out, sizeof f->out, "patcli_out");
    ref_tmp_path(f->errf, sizeof f->errf, "patcli_err");
    ref_model_init(&rm, 0, 18, 1, 6, 123);
    assert_int_equal(ref_model_write(&rm, f->model, "", NULL), 0);
    ref_model_free(&rm);

    hid_t h = H5Fcreate(f->head, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t d1[2] = {96, 128}, b1[1] = {128}, d2[2] = {128, 1}, b2[1] = {1};
    float *w1 = ref_fill(&st, 96 * 128, 0.2f, 0), *bb1 = ref_fill(&st, 128, 0.1f, 0);
    float *w2 = ref_fill(&st, 128, 0.3f, 0), *bb2 = ref_fill(&st, 1, 0.1f, 0);
    ref_h5_write(h, "dense_a/dense_a/kernel:0", 2, d1, w1);
    ref_h5_write(h, "dense_a/dense_a/bias:0", 1, b1, bb1);
    ref_h5_write(h, "dense_b/dense_b/kernel:0", 2, d2, w2);
    ref_h5_write(h, "dense_b/dense_b/bias:0", 1, b2, bb2);
    H5Fclose(h);
    free(w1);
    free(bb1);
    free(w2);
    free(bb2);

    /* 2 days of minutes with a header, timestamps, and 3 missing values. */
    fp = fopen(f->csv, "w");
    fprintf(fp, "timestamp,steps\n");
    for (int t = 0; t < 2880; t++) {
        if (t == 5 || t == 6)
            fprintf(fp, "2024-01-01T00:%02d,\n", t % 60);
        else if (t == 7)
            fprintf(fp, "2024-01-01T00:%02d,NA\n", t % 60);
        else
            fprintf(fp, "2024-01-01T00:%02d,%d\n", t % 60, (t * 37) % 120);
    }
    fclose(fp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    unlink(f->model);
    unlink(f->head);
    unlink(f->csv);
    unlink(f->out);
    unlink(f->errf);
    free(f);
    return 0;
}

static void test_info(void **state)
{
    struct fixture *f = *state;
    json_t *j = NULL;
    char *argv[] = {"pat", "info", f->model, NULL};

    assert_int_equal(run(f, &j, 3, argv), 0);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "variant")), "PAT-S");
    assert_int_equal(json_integer_value(json_object_get(j, "tokens")), 560);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "sha256"))), 64);

    /* Right checksum: 0; wrong: 1; malformed: 2. */
    char sha[65];
    snprintf(sha, sizeof sha, "%s", json_string_value(json_object_get(j, "sha256")));
    json_decref(j);
    char *ok[] = {"pat", "info", f->model, "--sha256", sha, NULL};
    assert_int_equal(run(f, NULL, 5, ok), 0);
    sha[0] = sha[0] == 'a' ? 'b' : 'a';
    assert_int_equal(run(f, NULL, 5, ok), 1);
    assert_true(contains_file(f->errf, "SHA-256 mismatch"));
    char *bad[] = {"pat", "info", f->model, "--sha256", "xyz", NULL};
    assert_int_equal(run(f, NULL, 5, bad), 2);

    /* Not a model: 1, with the reason. */
    char *notmodel[] = {"pat", "info", f->csv, NULL};
    assert_int_equal(run(f, NULL, 3, notmodel), 1);
    assert_true(contains_file(f->errf, "not an HDF5 file"));
}

static void test_usage_errors(void **state)
{
    struct fixture *f = *state;
    char *a1[] = {"pat", NULL};
    char *a2[] = {"pat", "frobnicate", NULL};
    char *a3[] = {"pat", "info", NULL};
    char *a4[] = {"pat", "embed", "--model", f->model, NULL};
    char *a5[] = {"pat", "embed", "--model", f->model, "--input", f->csv, "--std", "global:1:-2", NULL};
    char *a6[] = {"pat", "embed", "--model", f->model, "--input", f->csv, "--threads", "0", NULL};
    char *a7[] = {"pat", "embed", "--model", f->model, "--input", f->csv, "--head", "nofile", NULL};
    char *a8[] = {"pat", "embed", "--bogus", NULL};

    assert_int_equal(run(f, NULL, 1, a1), 2);
    assert_int_equal(run(f, NULL, 2, a2), 2);
    assert_true(contains_file(f->errf, "unknown subcommand"));
    assert_int_equal(run(f, NULL, 2, a3), 2);
    assert_int_equal(run(f, NULL, 4, a4), 2);
    assert_true(contains_file(f->errf, "--input"));
    assert_int_equal(run(f, NULL, 8, a5), 2);
    assert_int_equal(run(f, NULL, 8, a6), 2);
    assert_int_equal(run(f, NULL, 8, a7), 2);
    assert_int_equal(run(f, NULL, 3, a8), 2);
}

static void test_embed(void **state)
{
    struct fixture *f = *state;
    char headarg[600];
    json_t *j = NULL;

    snprintf(headarg, sizeof headarg, "depression=%s", f->head);
    char *argv[] = {"pat",          "embed",  "--model", f->model,      "--input",   f->csv, "--std",
                    "global:60:35", "--head", headarg,   "--attention", "--threads", "2",    NULL};
    assert_int_equal(run(f, &j, 13, argv), 0);
    assert_non_null(j);
    json_t *cov = json_object_get(j, "coverage");
    assert_int_equal(json_integer_value(json_object_get(cov, "minutes")), 10080);
    assert_int_equal(json_integer_value(json_object_get(cov, "present")), 2880 - 3);
    assert_int_equal(json_integer_value(json_object_get(cov, "missing")), 10080 - 2880 + 3);
    assert_int_equal(json_array_size(json_object_get(j, "embedding")), 96);
    assert_string_equal(json_string_value(json_object_get(j, "standardization")), "global");
    double p =
        json_real_value(json_object_get(json_object_get(json_object_get(j, "heads"), "depression"), "probability"));
    assert_true(p > 0.0 && p < 1.0);
    json_t *layers = json_object_get(json_object_get(j, "attention"), "layers");
    assert_int_equal(json_array_size(layers), 1);
    json_t *l0 = json_array_get(layers, 0);
    assert_int_equal(json_array_size(l0), 560);
    double sum = 0;
    for (size_t i = 0; i < 560; i++)
        sum += json_real_value(json_array_get(l0, i));
    assert_true(fabs(sum - 1.0) < 1e-4); /* mean of rows that each sum to 1 */

    /* The same embedding as the library computes directly. */
    struct pat_model *m = NULL;
    struct pat_workspace *ws = NULL;
    char err[256];
    double *minutes = malloc(2880 * sizeof *minutes);
    float *in = malloc(PAT_MINUTES * sizeof *in), pooled[96];
    struct pat_standardization st = {.mode = PAT_STD_GLOBAL, .mean = 60, .std = 35};
    for (int t = 0; t < 2880; t++)
        minutes[t] = (t >= 5 && t <= 7) ? NAN : (double)((t * 37) % 120);
    assert_int_equal(pat_input_prepare(minutes, 2880, &st, in, NULL), 0);
    assert_int_equal(pat_model_load(f->model, NULL, &m, err, sizeof err), 0);
    ws = pat_workspace_new(m, 1);
    assert_int_equal(pat_model_forward(m, ws, in, NULL, pooled, NULL), 0);
    json_t *emb = json_object_get(j, "embedding");
    for (size_t i = 0; i < 96; i++)
        assert_true(fabs(json_real_value(json_array_get(emb, i)) - pooled[i]) < 1e-6);
    pat_workspace_free(ws);
    pat_model_free(m);
    free(minutes);
    free(in);
    json_decref(j);

    /* No head configured: an empty heads object, never a score. */
    char *plain[] = {"pat", "embed", "--model", f->model, "--input", f->csv, "--tokens", NULL};
    assert_int_equal(run(f, &j, 7, plain), 0);
    assert_int_equal(json_object_size(json_object_get(j, "heads")), 0);
    assert_int_equal(json_array_size(json_object_get(j, "tokens")), 560);
    json_decref(j);
}

static void test_bad_csv(void **state)
{
    struct fixture *f = *state;
    char path[512];
    FILE *fp;
    ref_tmp_path(path, sizeof path, "patcli_bad");
    char *argv[] = {"pat", "embed", "--model", f->model, "--input", path, NULL};

    fp = fopen(path, "w");
    fprintf(fp, "1\n2\nthree\n");
    fclose(fp);
    assert_int_equal(run(f, NULL, 6, argv), 1);
    assert_true(contains_file(f->errf, ":3: not a number"));

    fp = fopen(path, "w");
    for (int i = 0; i < PAT_MINUTES + 1; i++)
        fprintf(fp, "1\n");
    fclose(fp);
    assert_int_equal(run(f, NULL, 6, argv), 1);
    assert_true(contains_file(f->errf, "more than 10080 minutes"));

    unlink(path);
    assert_int_equal(run(f, NULL, 6, argv), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_bad_csv),
    };
    pat_blas_threads_set(1);
    return cmocka_run_group_tests(tests, setup, teardown);
}
