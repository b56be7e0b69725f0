/*
 * pat_cli_bench.c — `clarity pat embed` of PAT-L against its own in-process
 * forward pass (issue 22: the command <= 1.15x the forward pass).
 *
 * Usage: pat_cli_bench PATH/TO/clarity (run by bench/run). Writes seeded
 * PAT-L weights (Keras layout, libhdf5) and a week of minute counts as CSV
 * to $TMPDIR, then measures, back to back in alternating order:
 *   - the forward pass alone: model loaded once, one workspace with one
 *     thread (what `pat embed` uses by default), median of the runs;
 *   - the whole command: fork/exec of `clarity pat embed --model --input`,
 *     wall time to exit, median of the runs;
 * and prints both, their ratio, and the command's phases as the command
 * itself reports them with --timing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/pat_ref.h"
#include "ml/pat.h"
#include "bench_util.h"

static double run_cli(const char *bin, const char *model, const char *csv, int timing)
{
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(127);
        if (timing)
            execl(bin, bin, "pat", "embed", "--model", model, "--input", csv, "--timing", (char *)NULL);
        else
            execl(bin, bin, "pat", "embed", "--model", model, "--input", csv, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return bench_now_s() - t0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: pat_cli_bench PATH/TO/clarity\n");
        return 2;
    }
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    const int reps = getenv("PAT_BENCH_QUICK") ? 5 : 11;
    char model[512], csv[512];
    snprintf(model, sizeof model, "%s/pat_cli_bench_L_%d.h5", tmp, (int)getpid());
    snprintf(csv, sizeof csv, "%s/pat_cli_bench_%d.csv", tmp, (int)getpid());

    struct ref_model rm;
    ref_model_init(&rm, 0, 9, 4, 12, 7); /* PAT-L: patch 9, 4 layers, 12 heads */
    int wrc = ref_model_write(&rm, model, "", NULL);
    ref_model_free(&rm);
    FILE *f = fopen(csv, "w");
    if (wrc != 0 || f == NULL) {
        fprintf(stderr, "pat_cli_bench: cannot write %s or %s\n", model, csv);
        return 1;
    }
    fprintf(f, "minute,steps\n");
    float *in = malloc(PAT_MINUTES * sizeof *in);
    uint64_t seed = 42;
    for (int i = 0; i < PAT_MINUTES; i++) {
        int steps = (i % 1440) > 420 && (i % 1440) < 1320 ? (int)(ref_rand_uniform(&seed, 1.0f) * 60 + 60) : 0;
        fprintf(f, "%d,%d\n", i, steps);
        in[i] = (float)steps;
    }
    fclose(f);

    struct pat_model *m = NULL;
    char err[256];
    if (pat_model_load(model, NULL, &m, err, sizeof err) != PAT_OK) {
        fprintf(stderr, "pat_cli_bench: %s\n", err);
        return 1;
    }
    pat_blas_threads_set(1);
    struct pat_workspace *ws = pat_workspace_new(m, 1);
    float pooled[PAT_EMBED_DIM];
    double fwd[32], cli[32];
    (void)pat_model_forward(m, ws, in, NULL, pooled, NULL); /* warm */
    (void)run_cli(argv[1], model, csv, 0);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now_s();
        if (pat_model_forward(m, ws, in, NULL, pooled, NULL) != PAT_OK)
            return 1;
        fwd[r] = bench_now_s() - t0;
        cli[r] = run_cli(argv[1], model, csv, 0);
        if (cli[r] < 0) {
            fprintf(stderr, "pat_cli_bench: clarity pat embed failed\n");
            return 1;
        }
    }
    double mf = bench_median(fwd, reps), mc = bench_median(cli, reps);
    printf("PAT-L forward pass in process: %.1f ms (median of %d)\n", mf * 1e3, reps);
    printf("clarity pat embed, whole command: %.1f ms (median of %d)\n", mc * 1e3, reps);
    printf("command / forward pass = %.2f   target <= 1.15\n", mc / mf);
    fflush(stdout);
    (void)run_cli(argv[1], model, csv, 1); /* phases, on stderr */
    pat_workspace_free(ws);
    pat_model_free(m);
    free(in);
    unlink(model);
    unlink(csv);
    return 0;
}
