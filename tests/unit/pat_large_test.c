/*
 * pat_large_test.c — PAT-L (patch 9, N = 1120, 4 blocks of 12 heads)
 * against the double-precision reference of pat_ref.h. Separate from
 * pat_test.c because one PAT-L reference pass is ~27.5 GFLOP of plain
 * double loops; two inputs (one with the attention maps) keep the
 * sanitizer build within its time budget.
 *
 * Tolerance: max |float engine - double reference| <= 1e-4 (issue 7).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ml/pat.h"
#include "pat_ref.h"

static void test_pat_l_matches_reference(void **state)
{
    struct ref_model rm;
    struct pat_model *m = NULL;
    struct pat_workspace *ws = NULL;
    struct pat_model_info info;
    char path[512], err[256];
    const int kinds[2] = {2, 1};
    (void)state;

    ref_model_init(&rm, 0, 9, 4, 12, 9009);
    ref_tmp_path(path, sizeof path, "pat_large");
    assert_int_equal(ref_model_write(&rm, path, "model_weights/", NULL), 0);
    if (pat_model_load(path, NULL, &m, err, sizeof err) != PAT_OK)
        fail_msg("load: %s", err);
    pat_model_info_get(m, &info);
    assert_string_equal(info.variant, "PAT-L");
    assert_true(fabs(info.flops - 27.5e9) < 0.1e9);
    ws = pat_workspace_new(m, 2);
    assert_non_null(ws);

    const size_t n = rm.n, l = rm.l;
    float *in = malloc(PAT_MINUTES * sizeof *in);
    float *tok = malloc(n * PAT_EMBED_DIM * sizeof *tok), pooled[PAT_EMBED_DIM];
    double *rtok = malloc(n * PAT_EMBED_DIM * sizeof *rtok), rpooled[PAT_EMBED_DIM];
    float *att = malloc(l * n * n * sizeof *att);
    double *ratt = malloc(l * n * n * sizeof *ratt);
    assert_true(in && tok && rtok && att && ratt);

    for (int i = 0; i < 2; i++) {
        ref_input(kinds[i], 77 + (uint64_t)i, in);
        assert_int_equal(pat_model_forward(m, ws, in, tok, pooled, i == 0 ? att : NULL), PAT_OK);
        ref_forward(&rm, in, rtok, rpooled, i == 0 ? ratt : NULL);
        double et = ref_max_abs_diff(tok, rtok, n * PAT_EMBED_DIM);
        double ep = ref_max_abs_diff(pooled, rpooled, PAT_EMBED_DIM);
        print_message("PAT-L input %d: max|err| tokens %.3g pooled %.3g\n", kinds[i], et, ep);
        assert_true(et <= 1e-4);
        assert_true(ep <= 1e-4);
        if (i == 0) {
            double ea = ref_max_abs_diff(att, ratt, l * n * n);
            print_message("PAT-L input %d: max|err| attention %.3g\n", kinds[i], ea);
            assert_true(ea <= 1e-5);
        }
    }
    free(in);
    free(tok);
    free(rtok);
    free(att);
    free(ratt);
    pat_workspace_free(ws);
    pat_model_free(m);
    ref_model_free(&rm);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pat_l_matches_reference),
    };
    pat_blas_threads_set(1); /* the workspace's 2 threads do the parallel work */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
