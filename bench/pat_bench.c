/*
 * pat_bench.c — PAT encoder latency, GFLOP/s and batch throughput.
 *
 * Run from the repository root with no arguments (`make bench`). Weights
 * are generated (seeded, Keras layout, written with libhdf5 to $TMPDIR or
 * /tmp) because the published ones are not shipped; speed does not depend
 * on the values. What it measures, and against what:
 *
 *   1. OpenBLAS sgemm on a 2048^3 square product, 1 and 2 threads: the
 *      machine's attainable single-precision rate (the baseline).
 *   2. Latency of one inference for PAT-S/M/L at 1 and 2 OpenBLAS threads
 *      (median of several runs), the achieved GFLOP/s (FLOPs per inference
 *      from the model shapes: 1.03 / 3.99 / 27.5 G) and that rate as a share
 *      of sgemm at the same thread count. Target (issue 7): >= 50 % for
 *      PAT-M and PAT-L; roughly PAT-S <= 15 ms and PAT-L <= 300 ms.
 *   3. Batch throughput for PAT-S: two worker threads, each with its own
 *      workspace and single-threaded BLAS, over one shared model, as the
 *      analysis workers run it. Target: >= 100 inferences/s on 2 cores.
 *
 * Set PAT_BENCH_QUICK=1 for a short run (fewer repetitions).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "../tests/unit/pat_ref.h"
#include "ml/pat.h"
#include "bench_util.h"

/* Best-of-3 GFLOP/s of an n x n x n sgemm with the current thread count. */
static double sgemm_gflops(int n)
{
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b);
    float *c = malloc((size_t)n * n * sizeof *c);
    double best = 0;
    uint64_t st = 1;

    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = ref_rand_uniform(&st, 1.0f);
        b[i] = ref_rand_uniform(&st, 1.0f);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * (double)n * n / (bench_now_s() - t0) / 1e9;
        best = g > best ? g : best;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

struct variant {
    const char *name;
    size_t s, l, h;
    int reps;
};

struct worker {
    const struct pat_model *m;
    const float *in;
    int count;
    int rc;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct pat_workspace *ws = pat_workspace_new(w->m, 1);
    float pooled[PAT_EMBED_DIM];

    w->rc = ws ? 0 : -1;
    for (int i = 0; w->rc == 0 && i < w->count; i++)
        w->rc = pat_model_forward(w->m, ws, w->in, NULL, pooled, NULL);
    pat_workspace_free(ws);
    return NULL;
}

int main(void)
{
    const int quick = getenv("PAT_BENCH_QUICK") != NULL;
    struct variant vs[] = {
        {"PAT-S", 18, 1, 6, quick ? 10 : 40},
        {"PAT-M", 18, 2, 12, quick ? 5 : 20},
        {"PAT-L", 9, 4, 12, quick ? 3 : 7},
    };
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    float *in = malloc(PAT_MINUTES * sizeof *in);
    double base[3] = {0, 0, 0};
    struct pat_model *small = NULL;
    int rc = 1;

    printf("pat_bench: PAT encoder inference (float32, %s, kernels for %s)\n", OPENBLAS_VERSION,
           openblas_get_corename());
    if (__builtin_cpu_supports("avx512f") && strcmp(openblas_get_corename(), "Haswell") == 0)
        printf("note: this CPU has AVX-512 but OpenBLAS chose its Haswell (AVX2) kernels; "
               "OPENBLAS_CORETYPE=SkylakeX selects the AVX-512 ones (docs/pat.md)\n");
    for (int t = 1; t <= 2; t++) {
        openblas_set_num_threads(t);
        base[t] = sgemm_gflops(2048);
        printf("baseline: OpenBLAS sgemm 2048^3, %d thread%s: %.1f GFLOP/s\n", t, t > 1 ? "s" : "", base[t]);
    }
    ref_input(1, 1, in);
    printf("%-6s %3s %10s %10s %9s %8s  %s\n", "model", "thr", "median_ms", "min_ms", "GFLOP/s", "%sgemm", "target");
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        struct ref_model rm;
        struct pat_model *m = NULL;
        struct pat_workspace *ws = NULL;
        struct pat_model_info info;
        char path[512], err[256];
        float pooled[PAT_EMBED_DIM];

        ref_model_init(&rm, 0, vs[v].s, vs[v].l, vs[v].h, 100 + v);
        snprintf(path, sizeof path, "%s/pat_bench_%s.%ld.h5", tmp, vs[v].name, (long)getpid());
        if (ref_model_write(&rm, path, "", NULL) != 0 || pat_model_load(path, NULL, &m, err, sizeof err) != PAT_OK) {
            fprintf(stderr, "pat_bench: cannot prepare %s: %s\n", vs[v].name, err);
            ref_model_free(&rm);
            goto done;
        }
        unlink(path);
        ref_model_free(&rm);
        pat_model_info_get(m, &info);
        for (int t = 1; t <= 2; t++) {
            double times[64], mn = 1e9;
            /* t threads of the workspace over single-threaded OpenBLAS */
            openblas_set_num_threads(1);
            ws = pat_workspace_new(m, t);
            pat_model_forward(m, ws, in, NULL, pooled, NULL); /* warm-up */
            for (int r = 0; r < vs[v].reps; r++) {
                double t0 = bench_now_s();
                pat_model_forward(m, ws, in, NULL, pooled, NULL);
                times[r] = bench_now_s() - t0;
                mn = times[r] < mn ? times[r] : mn;
            }
            double med = bench_median(times, vs[v].reps), g = info.flops / med / 1e9;
            const char *target = v == 0 ? "<= 15 ms" : v == 2 ? ">= 50 %, <= 300 ms" : ">= 50 %";
            printf("%-6s %3d %10.2f %10.2f %9.1f %7.0f%%  %s (%.2f GFLOP/inference)\n", vs[v].name, t, med * 1e3,
                   mn * 1e3, g, 100.0 * g / base[t], target, info.flops / 1e9);
            pat_workspace_free(ws);
        }
        if (v == 0)
            small = m;
        else
            pat_model_free(m);
    }

    /* Batch throughput: 2 workers x single-threaded BLAS over one model. */
    {
        const int per = quick ? 50 : 200;
        struct worker w[2];
        pthread_t th[2];
        openblas_set_num_threads(1);
        double t0 = bench_now_s();
        for (int i = 0; i < 2; i++) {
            w[i] = (struct worker){.m = small, .in = in, .count = per};
            pthread_create(&th[i], NULL, worker_run, &w[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        double el = bench_now_s() - t0;
        printf("batch: PAT-S, %d inferences on 2 worker threads (1 BLAS thread each): %.1f "
               "inferences/s (target >= 100/s)%s\n",
               2 * per, 2 * per / el, w[0].rc || w[1].rc ? " [ERRORS]" : "");
    }
    rc = 0;
done:
    pat_model_free(small);
    free(in);
    return rc;
}
