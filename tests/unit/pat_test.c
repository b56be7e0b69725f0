/*
 * pat_test.c — the PAT encoder (src/ml/pat*.c) against an independent
 * double-precision reference (pat_ref.h) on generated Keras-layout HDF5
 * files: PAT-S, PAT-M, PAT-Conv-S, the "model_weights/" prefix, attention
 * maps, heads, input preparation, the health check, concurrent use, and
 * corrupt / truncated / mis-shaped files and checksum mismatches.
 * PAT-L has its own executable (pat_large_test.c) to keep each one short.
 *
 * Tolerance: max |float engine - double reference| <= 1e-4 (issue 7).
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>

#include "ml/pat.h"
#include "ml/pat_health.h"
#include "pat_ref.h"

#define TOL 1e-4

/* ---- helpers ------------------------------------------------------------ */

static void write_model_file(const struct ref_model *rm, const char *name, const char *prefix,
                             const struct ref_mutation *mu, char *path, size_t len)
{
    ref_tmp_path(path, len, name);
    assert_int_equal(ref_model_write(rm, path, prefix, mu), 0);
}

/* Load, run each input kind, compare tokens and pooled (and attention for
 * the first kind when want_att). */
static void check_against_reference(int conv, size_t s, size_t l, size_t h, uint64_t seed, const int *kinds,
                                    size_t n_kinds, int want_att, const char *prefix, const char *variant)
{
    struct ref_model rm;
    struct pat_model *m = NULL;
    struct pat_workspace *ws = NULL;
    struct pat_model_info info;
    char path[512], err[256];
    float *in = malloc(PAT_MINUTES * sizeof *in);
    int rc;

    ref_model_init(&rm, conv, s, l, h, seed);
    write_model_file(&rm, "pat_ref", prefix, NULL, path, sizeof path);
    rc = pat_model_load(path, NULL, &m, err, sizeof err);
    if (rc)
        fail_msg("load: %s", err);
    pat_model_info_get(m, &info);
    assert_string_equal(info.variant, variant);
    assert_int_equal(info.n_tokens, rm.n);
    assert_int_equal(info.n_layers, l);
    assert_int_equal(info.n_heads, h);
    const size_t n = rm.n;
    float *tok = malloc(n * PAT_EMBED_DIM * sizeof *tok), pooled[PAT_EMBED_DIM];
    double *rtok = malloc(n * PAT_EMBED_DIM * sizeof *rtok), rpooled[PAT_EMBED_DIM];
    float *att = want_att ? malloc(l * n * n * sizeof *att) : NULL;
    double *ratt = want_att ? malloc(l * n * n * sizeof *ratt) : NULL;

    for (size_t i = 0; i < n_kinds; i++) {
        int with_att = want_att && i == 0;
        ref_input(kinds[i], seed + 17 * i, in);
        ref_forward(&rm, in, rtok, rpooled, with_att ? ratt : NULL);
        /* One thread, and three (an uneven split of the tokens). */
        for (int threads = 1; threads <= 3; threads += 2) {
            ws = pat_workspace_new(m, threads);
            assert_non_null(ws);
            rc = pat_model_forward(m, ws, in, tok, pooled, with_att ? att : NULL);
            assert_int_equal(rc, PAT_OK);
            double et = ref_max_abs_diff(tok, rtok, n * PAT_EMBED_DIM);
            double ep = ref_max_abs_diff(pooled, rpooled, PAT_EMBED_DIM);
            print_message("%s input %d, %d thread(s): max|err| tokens %.3g pooled %.3g\n", variant, kinds[i], threads,
                          et, ep);
            assert_true(et <= TOL);
            assert_true(ep <= TOL);
            if (with_att) {
                double ea = ref_max_abs_diff(att, ratt, l * n * n);
                print_message("%s input %d: max|err| attention %.3g\n", variant, kinds[i], ea);
                assert_true(ea <= 1e-5);
            }
            pat_workspace_free(ws);
            ws = NULL;
        }
    }
    free(att);
    free(ratt);
    free(tok);
    free(rtok);
    free(in);
    pat_workspace_free(ws);
    pat_model_free(m);
    ref_model_free(&rm);
    unlink(path);
}

/* ---- numerical agreement ---------------------------------------------- */

static void test_pat_s_matches_reference(void **state)
{
    static const int kinds[] = {0, 1, 2, 3};
    (void)state;
    check_against_reference(0, 18, 1, 6, 1001, kinds, 4, 1, "", "PAT-S");
}

static void test_pat_m_matches_reference(void **state)
{
    static const int kinds[] = {1, 2};
    (void)state;
    check_against_reference(0, 18, 2, 12, 2002, kinds, 2, 1, "", "PAT-M");
}

static void test_pat_conv_s_matches_reference(void **state)
{
    static const int kinds[] = {0, 1, 2};
    (void)state;
    check_against_reference(1, 18, 1, 6, 3003, kinds, 3, 0, "", "PAT-Conv-S");
}

static void test_pat_conv_time_distributed_layout(void **state)
{
    static const int kinds[] = {1};
    (void)state;
    /* The authors' layout, under a full-model save's model_weights/. */
    check_against_reference(2, 18, 2, 12, 3103, kinds, 1, 0, "model_weights/", "PAT-Conv-M");
}

static void test_model_weights_prefix(void **state)
{
    static const int kinds[] = {1};
    (void)state;
    check_against_reference(0, 18, 1, 6, 4004, kinds, 1, 0, "model_weights/", "PAT-S");
}

static void test_custom_shape_is_named_custom(void **state)
{
    static const int kinds[] = {1};
    (void)state;
    /* S = 36 (N = 280), 2 layers of 3 heads: not a published size. */
    check_against_reference(0, 36, 2, 3, 5005, kinds, 1, 0, "", "PAT-custom");
}

/* ---- model info and checksums ----------------------------------------- */

static void test_info_and_checksum(void **state)
{
    struct ref_model rm;
    struct pat_model *m = NULL;
    struct pat_model_info info;
    struct pat_load_options opt = {0};
    char path[512], err[256], upper[65];
    (void)state;

    ref_model_init(&rm, 0, 18, 1, 6, 7);
    write_model_file(&rm, "pat_info", "", NULL, path, sizeof path);
    assert_int_equal(pat_model_load(path, NULL, &m, err, sizeof err), PAT_OK);
    pat_model_info_get(m, &info);
    /* PAT-S: 18*96+96 + 3*(96*576+576) + 576*96+96 + 4*96 + 96*256+256 + 256*96+96 */
    assert_int_equal(info.n_params,
                     18 * 96 + 96 + 3 * (96 * 576 + 576) + 576 * 96 + 96 + 4 * 96 + 96 * 256 + 256 + 256 * 96 + 96);
    assert_true(fabs(info.flops - 1.03e9) < 0.01e9);
    assert_int_equal(strlen(info.sha256), 64);
    pat_model_free(m);
    m = NULL;

    /* The right digest in upper case loads. */
    for (int i = 0; i < 65; i++)
        upper[i] = (char)toupper((unsigned char)info.sha256[i]);
    opt.expected_sha256 = upper;
    assert_int_equal(pat_model_load(path, &opt, &m, err, sizeof err), PAT_OK);
    pat_model_free(m);
    m = NULL;

    /* One digit off: refused, and the message says so. */
    upper[10] = upper[10] == '0' ? '1' : '0';
    assert_int_equal(pat_model_load(path, &opt, &m, err, sizeof err), PAT_ERR_CHECKSUM);
    assert_null(m);
    assert_non_null(strstr(err, "SHA-256 mismatch"));

    /* Not a digest at all. */
    opt.expected_sha256 = "abc";
    assert_int_equal(pat_model_load(path, &opt, &m, err, sizeof err), PAT_ERR_ARG);
    assert_null(m);

    unlink(path);
    ref_model_free(&rm);
}

/* ---- bad files ---------------------------------------------------------- */

static void expect_load_error(const char *path, int want_rc, const char *want_in_msg)
{
    struct pat_model *m = NULL;
    char err[512] = "";
    int rc = pat_model_load(path, NULL, &m, err, sizeof err);
    print_message("  %s -> %d: %s\n", path, rc, err);
    assert_int_equal(rc, want_rc);
    assert_null(m);
    assert_true(strlen(err) > 0);
    if (want_in_msg)
        assert_non_null(strstr(err, want_in_msg));
}

static void expect_mutation_error(const struct ref_model *rm, const struct ref_mutation *mu, int want_rc,
                                  const char *want_in_msg)
{
    char path[512];
    write_model_file(rm, "pat_bad", "", mu, path, sizeof path);
    expect_load_error(path, want_rc, want_in_msg);
    unlink(path);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void test_missing_and_garbage_files(void **state)
{
    char path[512];
    unsigned char junk[4096];
    uint64_t st = 99;
    (void)state;

    ref_tmp_path(path, sizeof path, "pat_nonexistent");
    unlink(path);
    expect_load_error(path, PAT_ERR_IO, "cannot open");

    ref_tmp_path(path, sizeof path, "pat_empty");
    write_bytes(path, "", 0);
    expect_load_error(path, PAT_ERR_FORMAT, "not an HDF5 file");

    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)ref_rand_u64(&st);
    write_bytes(path, junk, sizeof junk);
    expect_load_error(path, PAT_ERR_FORMAT, "not an HDF5 file");
    unlink(path);

    /* A valid HDF5 file that is not a PAT model. */
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t d[1] = {4};
    const float v[4] = {1, 2, 3, 4};
    assert_int_equal(ref_h5_write(f, "something/else:0", 1, d, v), 0);
    H5Fclose(f);
    expect_load_error(path, PAT_ERR_FORMAT, "no patch embedding");
    unlink(path);
}

static void test_truncated_and_flipped_files(void **state)
{
    struct ref_model rm;
    char path[512], cut[512];
    unsigned char *buf;
    long size;
    FILE *f;
    (void)state;

    ref_model_init(&rm, 0, 18, 2, 12, 11);
    write_model_file(&rm, "pat_whole", "", NULL, path, sizeof path);
    f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);

    /* Truncations at several points: never a crash, always an error. */
    ref_tmp_path(cut, sizeof cut, "pat_cut");
    const double fractions[] = {0.001, 0.1, 0.5, 0.9, 0.999};
    for (size_t i = 0; i < sizeof fractions / sizeof fractions[0]; i++) {
        struct pat_model *m = NULL;
        char err[512] = "";
        write_bytes(cut, buf, (size_t)((double)size * fractions[i]));
        int rc = pat_model_load(cut, NULL, &m, err, sizeof err);
        print_message("  truncated to %.1f%%: %d %s\n", fractions[i] * 100, rc, err);
        assert_true(rc == PAT_ERR_FORMAT || rc == PAT_ERR_SHAPE);
        assert_null(m);
    }

    /* Flipped bytes in the metadata region and in the data: either refused
     * with a message, or (data bytes) loaded with different weights. */
    uint64_t st = 5;
    for (int trial = 0; trial < 24; trial++) {
        struct pat_model *m = NULL;
        char err[512] = "";
        unsigned char *copy = malloc((size_t)size);
        memcpy(copy, buf, (size_t)size);
        for (int k = 0; k < 8; k++) {
            size_t pos = (size_t)(ref_rand_u64(&st) % (uint64_t)(trial < 12 ? 4096 : size));
            copy[pos] ^= (unsigned char)(1u + ref_rand_u64(&st) % 255u);
        }
        write_bytes(cut, copy, (size_t)size);
        int rc = pat_model_load(cut, NULL, &m, err, sizeof err);
        if (rc == PAT_OK) {
            assert_non_null(m);
            pat_model_free(m);
        } else {
            assert_null(m);
            assert_true(strlen(err) > 0);
        }
        free(copy);
    }
    unlink(cut);
    unlink(path);
    free(buf);
    ref_model_free(&rm);
}

static void test_misshaped_files(void **state)
{
    struct ref_model rm, rc1;
    (void)state;

    ref_model_init(&rm, 0, 18, 2, 12, 21);

    /* A missing dataset is named. */
    struct ref_mutation mu = {.skip = "encoder_layer_2_ff2/bias:0"};
    expect_mutation_error(&rm, &mu, PAT_ERR_FORMAT, "encoder_layer_2_transformer/encoder_layer_2_ff2/bias:0: missing");

    /* Query kernel with key_dim 64: the dataset and both shapes are named. */
    struct ref_mutation q64 = {.reshape = "encoder_layer_1_attention/query/kernel:0", .rank = 3, .dims = {96, 12, 64}};
    expect_mutation_error(&rm, &q64, PAT_ERR_SHAPE, "query/kernel:0: shape [96,12,64]");

    /* Key kernel disagreeing with the query kernel's head count. */
    struct ref_mutation k6 = {.reshape = "encoder_layer_1_attention/key/kernel:0", .rank = 3, .dims = {96, 6, 96}};
    expect_mutation_error(&rm, &k6, PAT_ERR_SHAPE, "shape [96,6,96], expected [96,12,96]");

    /* Block 2 with a different head count than block 1. */
    struct ref_mutation h6 = {.layer_heads_override = 6};
    expect_mutation_error(&rm, &h6, PAT_ERR_SHAPE, "H equal in every block");

    /* A patch size that does not divide the week. */
    struct ref_mutation p17 = {.reshape = "dense/dense/kernel:0", .rank = 2, .dims = {17, 96}};
    expect_mutation_error(&rm, &p17, PAT_ERR_SHAPE, "dense/dense/kernel:0: shape [17,96]");

    /* Wrong feed-forward width and wrong LayerNorm rank. */
    struct ref_mutation ff = {.reshape = "encoder_layer_1_ff1/kernel:0", .rank = 2, .dims = {96, 128}};
    expect_mutation_error(&rm, &ff, PAT_ERR_SHAPE, "expected [96,256]");
    struct ref_mutation ln = {.reshape = "encoder_layer_2_norm2/gamma:0", .rank = 2, .dims = {1, 96}};
    expect_mutation_error(&rm, &ln, PAT_ERR_SHAPE, "norm2/gamma:0: shape [1,96]");

    /* No encoder block at all. */
    struct ref_mutation nolayer = {.skip = "encoder_layer_1_attention/query/kernel:0"};
    expect_mutation_error(&rm, &nolayer, PAT_ERR_FORMAT, "query/kernel:0: missing");

    /* Conv kernel of the wrong width. */
    ref_model_init(&rc1, 1, 18, 1, 6, 22);
    struct ref_mutation cw = {.reshape = "conv1d/conv1d/kernel:0", .rank = 3, .dims = {5, 1, 96}};
    expect_mutation_error(&rc1, &cw, PAT_ERR_SHAPE, "conv1d/conv1d/kernel:0: shape [5,1,96]");

    ref_model_free(&rc1);
    ref_model_free(&rm);
}

static void test_non_float_and_non_finite_weights(void **state)
{
    struct ref_model rm;
    char path[512];
    (void)state;

    /* Integer bias: refused as not floating point. */
    ref_model_init(&rm, 0, 18, 1, 6, 31);
    struct ref_mutation skip = {.skip = "dense/dense/bias:0"};
    write_model_file(&rm, "pat_int", "", &skip, path, sizeof path);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const hsize_t d[1] = {96};
    int ints[96] = {0};
    hid_t sp = H5Screate_simple(1, d, NULL);
    hid_t ds = H5Dcreate2(f, "dense/dense/bias:0", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ints);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    expect_load_error(path, PAT_ERR_FORMAT, "dense/dense/bias:0: not floating point");
    unlink(path);

    /* A NaN weight. */
    rm.ly[0].f1_k[77] = NAN;
    write_model_file(&rm, "pat_nan", "", NULL, path, sizeof path);
    expect_load_error(path, PAT_ERR_FORMAT, "ff1/kernel:0: value 77 is not finite");
    unlink(path);
    ref_model_free(&rm);
}

/* ---- forward-pass arguments and concurrency ---------------------------- */

struct thread_job {
    const struct pat_model *m;
    const float *in;
    float pooled[PAT_EMBED_DIM];
    int rc;
};

static void *run_job(void *arg)
{
    struct thread_job *j = arg;
    struct pat_workspace *ws = pat_workspace_new(j->m, 1);
    j->rc = ws ? PAT_OK : PAT_ERR_NOMEM;
    for (int rep = 0; j->rc == PAT_OK && rep < 3; rep++)
        j->rc = pat_model_forward(j->m, ws, j->in, NULL, j->pooled, NULL);
    pat_workspace_free(ws);
    return NULL;
}

static void test_forward_arguments_and_threads(void **state)
{
    struct ref_model rm, rm2;
    struct pat_model *m = NULL, *m2 = NULL;
    struct pat_workspace *ws = NULL, *ws2 = NULL;
    char path[512], path2[512], err[256];
    float *in = malloc(PAT_MINUTES * sizeof *in), pooled[PAT_EMBED_DIM], first[PAT_EMBED_DIM];
    (void)state;

    ref_model_init(&rm, 0, 18, 1, 6, 41);
    ref_model_init(&rm2, 0, 9, 1, 6, 42);
    write_model_file(&rm, "pat_a", "", NULL, path, sizeof path);
    write_model_file(&rm2, "pat_b", "", NULL, path2, sizeof path2);
    assert_int_equal(pat_model_load(path, NULL, &m, err, sizeof err), PAT_OK);
    assert_int_equal(pat_model_load(path2, NULL, &m2, err, sizeof err), PAT_OK);
    ws = pat_workspace_new(m, 1);
    ws2 = pat_workspace_new(m2, 1);
    assert_non_null(ws);
    assert_non_null(ws2);

    ref_input(1, 3, in);
    /* A workspace of another model is refused. */
    assert_int_equal(pat_model_forward(m, ws2, in, NULL, pooled, NULL), PAT_ERR_ARG);
    assert_int_equal(pat_model_forward(NULL, ws, in, NULL, pooled, NULL), PAT_ERR_ARG);
    /* Non-finite input is refused and nothing is written. */
    in[5000] = NAN;
    memset(pooled, 0x7f, sizeof pooled);
    assert_int_equal(pat_model_forward(m, ws, in, NULL, pooled, NULL), PAT_ERR_INPUT);
    assert_true(pooled[0] == pooled[1]);
    in[5000] = INFINITY;
    assert_int_equal(pat_model_forward(m, ws, in, NULL, pooled, NULL), PAT_ERR_INPUT);
    in[5000] = 2e6f; /* beyond PAT_MAX_ABS_INPUT: a forgotten standardization */
    assert_int_equal(pat_model_forward(m, ws, in, NULL, pooled, NULL), PAT_ERR_INPUT);
    assert_true(pooled[0] == pooled[1]);
    /* The bound itself is accepted and gives finite outputs. */
    for (size_t t = 0; t < PAT_MINUTES; t++)
        in[t] = (t % 2 ? 1.0f : -1.0f) * PAT_MAX_ABS_INPUT;
    int big = pat_model_forward(m, ws, in, NULL, pooled, NULL);
    assert_true(big == PAT_OK || big == PAT_ERR_INPUT);
    if (big == PAT_OK)
        for (int k = 0; k < PAT_EMBED_DIM; k++)
            assert_true(isfinite(pooled[k]));
    ref_input(1, 3, in);
    in[5000] = 0.25f;

    /* Same input, same model, four threads with their own workspaces: all
     * agree bit for bit with a single-threaded run. */
    assert_int_equal(pat_model_forward(m, ws, in, NULL, first, NULL), PAT_OK);
    struct thread_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].m = m;
        jobs[i].in = in;
        assert_int_equal(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(jobs[i].rc, PAT_OK);
        for (int k = 0; k < PAT_EMBED_DIM; k++)
            assert_true(fabsf(jobs[i].pooled[k] - first[k]) <= 1e-6f);
    }

    pat_workspace_free(ws);
    pat_workspace_free(ws2);
    pat_model_free(m);
    pat_model_free(m2);
    ref_model_free(&rm);
    ref_model_free(&rm2);
    unlink(path);
    unlink(path2);
    free(in);
}

/* ---- input preparation -------------------------------------------------- */

static void test_input_prepare(void **state)
{
    double *minutes = malloc(PAT_MINUTES * sizeof *minutes);
    float *out = malloc(PAT_MINUTES * sizeof *out);
    float *mu = malloc(PAT_MINUTES * sizeof *mu), *sd = malloc(PAT_MINUTES * sizeof *sd);
    struct pat_coverage cov;
    struct pat_standardization st = {.mode = PAT_STD_GLOBAL, .mean = 100.0f, .std = 50.0f};
    (void)state;

    for (size_t t = 0; t < PAT_MINUTES; t++) {
        minutes[t] = (double)(t % 300);
        mu[t] = (float)(t % 7);
        sd[t] = 2.0f;
    }
    minutes[10] = NAN;
    minutes[11] = INFINITY;
    /* A 7000-minute series: the rest of the week is missing. */
    assert_int_equal(pat_input_prepare(minutes, 7000, &st, out, &cov), PAT_OK);
    assert_int_equal(cov.n_minutes, PAT_MINUTES);
    assert_int_equal(cov.n_missing, 2 + PAT_MINUTES - 7000);
    assert_int_equal(cov.n_present, 7000 - 2);
    assert_true(fabs(cov.fraction - 6998.0 / 10080.0) < 1e-12);
    assert_true(out[10] == 0.0f && out[11] == 0.0f && out[9000] == 0.0f);
    assert_true(fabsf(out[250] - (250.0f - 100.0f) / 50.0f) < 1e-6f);

    st.mode = PAT_STD_PER_MINUTE;
    st.mean_per_minute = mu;
    st.std_per_minute = sd;
    assert_int_equal(pat_input_prepare(minutes, PAT_MINUTES, &st, out, NULL), PAT_OK);
    assert_true(fabsf(out[250] - (250.0f - (float)(250 % 7)) / 2.0f) < 1e-6f);

    st.mode = PAT_STD_NONE;
    assert_int_equal(pat_input_prepare(minutes, PAT_MINUTES, &st, out, &cov), PAT_OK);
    assert_true(out[299] == 299.0f);

    /* A zero std scales by 1, as StandardScaler does for constant columns. */
    st.mode = PAT_STD_PER_MINUTE;
    sd[250] = 0.0f;
    assert_int_equal(pat_input_prepare(minutes, PAT_MINUTES, &st, out, NULL), PAT_OK);
    assert_true(fabsf(out[250] - (250.0f - (float)(250 % 7))) < 1e-6f);
    st.mode = PAT_STD_GLOBAL;
    st.std = 0.0f;
    assert_int_equal(pat_input_prepare(minutes, PAT_MINUTES, &st, out, NULL), PAT_OK);
    assert_true(fabsf(out[250] - (250.0f - 100.0f)) < 1e-6f);

    /* Refusals: too long, std negative or not finite, mean not finite. */
    st.mode = PAT_STD_NONE;
    assert_int_equal(pat_input_prepare(minutes, PAT_MINUTES + 1, &st, out, NULL), PAT_ERR_ARG);
    st.mode = PAT_STD_GLOBAL;
    st.std = -1.0f;
    assert_int_equal(pat_input_prepare(minutes, 10, &st, out, NULL), PAT_ERR_ARG);
    st.std = NAN;
    assert_int_equal(pat_input_prepare(minutes, 10, &st, out, NULL), PAT_ERR_ARG);
    st.std = 1.0f;
    st.mean = INFINITY;
    assert_int_equal(pat_input_prepare(minutes, 10, &st, out, NULL), PAT_ERR_ARG);
    st.mode = PAT_STD_PER_MINUTE;
    sd[4000] = -1.0f;
    assert_int_equal(pat_input_prepare(minutes, 10, &st, out, NULL), PAT_ERR_ARG);

    free(minutes);
    free(out);
    free(mu);
    free(sd);
}

/* ---- heads -------------------------------------------------------------- */

static void write_head(const char *path, const float *w1, const float *b1, const float *w2, const float *b2,
                       int extra_kernel)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t d1[2] = {96, 128}, db1[1] = {128}, d2[2] = {128, 1}, db2[1] = {1};
    assert_int_equal(ref_h5_write(f, "model_weights/dense_1/dense_1/kernel:0", 2, d1, w1), 0);
    assert_int_equal(ref_h5_write(f, "model_weights/dense_1/dense_1/bias:0", 1, db1, b1), 0);
    assert_int_equal(ref_h5_write(f, "model_weights/dense_2/dense_2/kernel:0", 2, d2, w2), 0);
    assert_int_equal(ref_h5_write(f, "model_weights/dense_2/dense_2/bias:0", 1, db2, b2), 0);
    if (extra_kernel)
        assert_int_equal(ref_h5_write(f, "model_weights/dense_3/dense_3/kernel:0", 2, d2, w2), 0);
    H5Fclose(f);
}

static void test_head(void **state)
{
    uint64_t st = 51;
    float *w1 = ref_fill(&st, 96 * 128, 0.2f, 0.0f), *b1 = ref_fill(&st, 128, 0.1f, 0.0f);
    float *w2 = ref_fill(&st, 128, 0.3f, 0.0f), *b2 = ref_fill(&st, 1, 0.1f, 0.0f);
    float pooled[96], prob = -1;
    struct pat_head *h = NULL;
    char path[512], err[256];
    (void)state;

    for (int i = 0; i < 96; i++)
        pooled[i] = ref_rand_uniform(&st, 2.0f);
    ref_tmp_path(path, sizeof path, "pat_head");
    write_head(path, w1, b1, w2, b2, 0);
    if (pat_head_load(path, NULL, &h, err, sizeof err) != PAT_OK)
        fail_msg("head: %s", err);
    assert_int_equal(strlen(pat_head_sha256(h)), 64);
    assert_int_equal(pat_head_predict(h, pooled, &prob), PAT_OK);
    double z = b2[0];
    for (int j = 0; j < 128; j++) {
        double a = b1[j];
        for (int i = 0; i < 96; i++)
            a += (double)pooled[i] * w1[i * 128 + j];
        z += (a > 0 ? a : 0) * w2[j];
    }
    double want = 1.0 / (1.0 + exp(-z));
    print_message("head: prob %.7f reference %.7f\n", prob, want);
    assert_true(fabs(prob - want) < 1e-6);
    pooled[3] = NAN;
    assert_int_equal(pat_head_predict(h, pooled, &prob), PAT_ERR_INPUT);
    pat_head_free(h);
    h = NULL;

    /* Checksum refusal for heads, too. */
    assert_int_equal(pat_head_load(path,
                                   "0000000000000000000000000000000000000000000000000000000"
                                   "000000000",
                                   &h, err, sizeof err),
                     PAT_ERR_CHECKSUM);
    /* Two candidate output kernels: ambiguous, refused. */
    write_head(path, w1, b1, w2, b2, 1);
    assert_int_equal(pat_head_load(path, NULL, &h, err, sizeof err), PAT_ERR_SHAPE);
    assert_non_null(strstr(err, "found 1 and 2"));
    assert_null(h);
    /* An encoder file is not a head. */
    struct ref_model rm;
    ref_model_init(&rm, 0, 18, 1, 6, 52);
    assert_int_equal(ref_model_write(&rm, path, "", NULL), 0);
    assert_int_equal(pat_head_load(path, NULL, &h, err, sizeof err), PAT_ERR_SHAPE);
    ref_model_free(&rm);
    unlink(path);
    free(w1);
    free(b1);
    free(w2);
    free(b2);
}

/* ---- health check ------------------------------------------------------- */

static void test_health_check(void **state)
{
    struct ref_model rm;
    struct pat_model *m = NULL;
    char path[512], err[256] = "";
    json_t *details = json_object();
    (void)state;

    struct pat_health_ctx none = {.model = NULL, .required = 1};
    assert_int_equal(pat_health_check(&none, details, err, sizeof err), -1);
    assert_non_null(strstr(err, "not loaded"));
    none.required = 0;
    assert_int_equal(pat_health_check(&none, details, err, sizeof err), 0);

    ref_model_init(&rm, 0, 18, 1, 6, 61);
    write_model_file(&rm, "pat_health", "", NULL, path, sizeof path);
    assert_int_equal(pat_model_load(path, NULL, &m, err, sizeof err), PAT_OK);
    struct pat_health_ctx ok = {.model = m, .model_version = "pat-s-test", .max_latency_ms = 0};
    json_object_clear(details);
    assert_int_equal(pat_health_check(&ok, details, err, sizeof err), 0);
    assert_string_equal(json_string_value(json_object_get(details, "variant")), "PAT-S");
    assert_string_equal(json_string_value(json_object_get(details, "model_version")), "pat-s-test");
    assert_true(json_is_real(json_object_get(details, "canary_ms")));
    /* An impossible latency bound makes it unhealthy, with the reason. */
    ok.max_latency_ms = 1e-9;
    assert_int_equal(pat_health_check(&ok, details, err, sizeof err), -1);
    assert_non_null(strstr(err, "canary inference took"));
    json_decref(details);
    pat_model_free(m);
    ref_model_free(&rm);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pat_s_matches_reference),
        cmocka_unit_test(test_pat_m_matches_reference),
        cmocka_unit_test(test_pat_conv_s_matches_reference),
        cmocka_unit_test(test_pat_conv_time_distributed_layout),
        cmocka_unit_test(test_model_weights_prefix),
        cmocka_unit_test(test_custom_shape_is_named_custom),
        cmocka_unit_test(test_info_and_checksum),
        cmocka_unit_test(test_missing_and_garbage_files),
        cmocka_unit_test(test_truncated_and_flipped_files),
        cmocka_unit_test(test_misshaped_files),
        cmocka_unit_test(test_non_float_and_non_finite_weights),
        cmocka_unit_test(test_forward_arguments_and_threads),
        cmocka_unit_test(test_input_prepare),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_health_check),
    };
    /* Parallelism comes from workspaces; OpenBLAS runs single-threaded. */
    pat_blas_threads_set(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
