/*
 * pat.c — `clarity pat info|embed` (contract in pat.h).
 *
 * Reads a minute CSV, prepares the model input (src/ml/pat_input.c), runs
 * the encoder and optional heads, and prints JSON. All computation lives in
 * src/ml/; this file only parses arguments, reads files and prints.
 */
#include "cli/pat.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "cli/cli.h"
#include "ml/pat.h"

#define PAT_CLI_MAX_HEADS 8
#define PAT_CLI_LINE 4096

static const char USAGE[] = "usage: clarity pat info FILE [--sha256 HEX]\n"
                            "       clarity pat embed --model FILE --input MINUTES.csv [--sha256 HEX] [--timing]\n"
                            "                         [--std none|global:MEAN:STD|per-minute:FILE]\n"
                            "                         [--head NAME=FILE]... [--attention] [--tokens] [--threads N]\n";

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "clarity pat: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", USAGE);
    return CLI_EXIT_USAGE;
}

/* Strict number: the whole string, finite. */
static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return -1;
    errno = 0;
    v = strtod(s, &end);
    while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
        end++;
    if (errno || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/*
 * Read a minute CSV: one line per minute, the value in the LAST
 * comma-separated field (so both "value" and "timestamp,value" work). An
 * empty field or NA / NaN / null is a missing minute. A first line that is
 * not a number is taken as a header. At most PAT_MINUTES data lines.
 * Returns the number of minutes read, or -1 after printing why.
 */
static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long read_minutes_csv(const char *path, double *out)
{
    char line[PAT_CLI_LINE];
    FILE *f = fopen(path, "r");
    long n = 0, lineno = 0;

    if (!f) {
        fprintf(stderr, "clarity pat: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *field;
        double v;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            fprintf(stderr, "clarity pat: %s:%ld: line longer than %d bytes\n", path, lineno, PAT_CLI_LINE - 1);
            goto fail;
        }
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        field = strrchr(line, ',');
        field = field ? field + 1 : line;
        while (*field == ' ' || *field == '\t')
            field++;
        if (*field == '\0' || strcasecmp(field, "na") == 0 || strcasecmp(field, "nan") == 0 ||
            strcasecmp(field, "null") == 0) {
            v = NAN;
        } else if (parse_double(field, &v) != 0) {
            if (n == 0 && lineno == 1)
                continue; /* header */
            fprintf(stderr, "clarity pat: %s:%ld: not a number: \"%.40s\"\n", path, lineno, field);
            goto fail;
        }
        if (n >= PAT_MINUTES) {
            fprintf(stderr, "clarity pat: %s: more than %d minutes (one week is the model input)\n", path, PAT_MINUTES);
            goto fail;
        }
        out[n++] = v;
    }
    if (ferror(f)) {
        fprintf(stderr, "clarity pat: %s: read error\n", path);
        goto fail;
    }
    fclose(f);
    return n;
fail:
    fclose(f);
    return -1;
}

/* per-minute reference: PAT_MINUTES lines "mean,std" */
static int read_std_file(const char *path, float *mean, float *sd)
{
    char line[PAT_CLI_LINE];
    FILE *f = fopen(path, "r");
    size_t n = 0;

    if (!f) {
        fprintf(stderr, "clarity pat: %s: %s\n", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *comma;
        double a, b;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        comma = strchr(line, ',');
        if (!comma) {
            if (n == 0)
                continue;
            break;
        }
        *comma = '\0';
        if (parse_double(line, &a) || parse_double(comma + 1, &b)) {
            if (n == 0)
                continue; /* header */
            fprintf(stderr, "clarity pat: %s: line %zu is not \"mean,std\"\n", path, n + 1);
            fclose(f);
            return -1;
        }
        if (n >= PAT_MINUTES)
            break;
        mean[n] = (float)a;
        sd[n] = (float)b;
        n++;
    }
    fclose(f);
    if (n != PAT_MINUTES) {
        fprintf(stderr, "clarity pat: %s: need %d \"mean,std\" lines, found %zu\n", path, PAT_MINUTES, n);
        return -1;
    }
    return 0;
}

static json_t *model_json(const struct pat_model_info *info)
{
    return json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:s}", "variant", info->variant, "conv", info->conv,
                     "patch_size", (json_int_t)info->patch_size, "tokens", (json_int_t)info->n_tokens, "layers",
                     (json_int_t)info->n_layers, "heads", (json_int_t)info->n_heads, "parameters",
                     (json_int_t)info->n_params, "gflop_per_inference", info->flops / 1e9, "sha256", info->sha256);
}

static json_t *floats_json(const float *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_real((double)v[i]));
    return a;
}

static int print_json(json_t *j)
{
    int rc = json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) == 0 ? 0 : -1;
    fputc('\n', stdout);
    return rc;
}

static int cmd_info(int argc, char **argv)
{
    struct pat_load_options opt = {0};
    struct pat_model *m = NULL;
    struct pat_model_info info;
    const char *file = NULL;
    char err[512];
    json_t *out;
    int rc;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--sha256") == 0 && i + 1 < argc)
            opt.expected_sha256 = argv[++i];
        else if (argv[i][0] == '-')
            return usage_error("unknown option '%s'", argv[i]);
        else if (!file)
            file = argv[i];
        else
            return usage_error("unexpected argument '%s'", argv[i]);
    }
    if (!file)
        return usage_error("pat info needs a weights FILE");
    rc = pat_model_load(file, &opt, &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "clarity pat: %s\n", err);
        return rc == PAT_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    pat_model_info_get(m, &info);
    out = model_json(&info);
    json_object_set_new(out, "file", json_string(file));
    rc = print_json(out);
    json_decref(out);
    pat_model_free(m);
    return rc ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

struct head_arg {
    const char *name; /* = name_buf */
    char name_buf[64];
    const char *path;
    struct pat_head *head;
};

static int cmd_embed(int argc, char **argv)
{
    struct pat_load_options opt = {0};
    struct pat_standardization st = {.mode = PAT_STD_NONE};
    struct head_arg heads[PAT_CLI_MAX_HEADS];
    size_t n_heads = 0;
    const char *model_path = NULL, *input_path = NULL, *std_arg = "none";
    int want_att = 0, want_tokens = 0, want_timing = 0, threads = 1, rc = CLI_EXIT_FAILURE;
    double t_start = mono_ms(), t_csv = 0, t_load = 0, t_ws = 0, t_fwd = 0;
    struct pat_model *m = NULL;
    struct pat_workspace *ws = NULL;
    struct pat_model_info info;
    struct pat_coverage cov;
    double *minutes = NULL;
    float *input = NULL, *tokens = NULL, *att = NULL, *std_mean = NULL, *std_sd = NULL;
    float pooled[PAT_EMBED_DIM];
    json_t *out = NULL;
    char err[512];
    long n_minutes;

    memset(heads, 0, sizeof heads);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int has_val = i + 1 < argc;
        if (strcmp(a, "--model") == 0 && has_val) {
            model_path = argv[++i];
        } else if (strcmp(a, "--input") == 0 && has_val) {
            input_path = argv[++i];
        } else if (strcmp(a, "--sha256") == 0 && has_val) {
            opt.expected_sha256 = argv[++i];
        } else if (strcmp(a, "--std") == 0 && has_val) {
            std_arg = argv[++i];
        } else if (strcmp(a, "--threads") == 0 && has_val) {
            double t;
            if (parse_double(argv[++i], &t) || t < 1 || t > PAT_MAX_THREADS || t != floor(t))
                return usage_error("--threads takes an integer from 1 to 16, not '%s'", argv[i]);
            threads = (int)t;
        } else if (strcmp(a, "--head") == 0 && has_val) {
            const char *v = argv[++i], *eq = strchr(v, '=');
            if (!eq || eq == v || eq[1] == '\0' || (size_t)(eq - v) >= sizeof heads[0].name_buf)
                return usage_error("--head takes NAME=FILE, not '%s'", v);
            if (n_heads == PAT_CLI_MAX_HEADS)
                return usage_error("at most %d heads", PAT_CLI_MAX_HEADS);
            memcpy(heads[n_heads].name_buf, v, (size_t)(eq - v));
            heads[n_heads].name = heads[n_heads].name_buf;
            heads[n_heads].path = eq + 1;
            n_heads++;
        } else if (strcmp(a, "--attention") == 0) {
            want_att = 1;
        } else if (strcmp(a, "--tokens") == 0) {
            want_tokens = 1;
        } else if (strcmp(a, "--timing") == 0) {
            want_timing = 1;
        } else {
            return usage_error("unknown option or missing value: '%s'", a);
        }
    }
    if (!model_path || !input_path)
        return usage_error("pat embed needs --model FILE and --input MINUTES.csv");

    /* Standardization. */
    if (strcmp(std_arg, "none") == 0) {
        st.mode = PAT_STD_NONE;
    } else if (strncmp(std_arg, "global:", 7) == 0) {
        char buf[128], *colon;
        double mean, sd;
        snprintf(buf, sizeof buf, "%s", std_arg + 7);
        colon = strchr(buf, ':');
        if (!colon)
            return usage_error("--std global:MEAN:STD, not '%s'", std_arg);
        *colon = '\0';
        if (parse_double(buf, &mean) || parse_double(colon + 1, &sd) || sd < 0)
            return usage_error("--std global:MEAN:STD needs numbers with STD >= 0, not '%s'", std_arg);
        st.mode = PAT_STD_GLOBAL;
        st.mean = (float)mean;
        st.std = (float)sd;
    } else if (strncmp(std_arg, "per-minute:", 11) == 0) {
        std_mean = malloc(PAT_MINUTES * sizeof *std_mean);
        std_sd = malloc(PAT_MINUTES * sizeof *std_sd);
        if (!std_mean || !std_sd || read_std_file(std_arg + 11, std_mean, std_sd) != 0)
            goto done;
        st.mode = PAT_STD_PER_MINUTE;
        st.mean_per_minute = std_mean;
        st.std_per_minute = std_sd;
    } else {
        return usage_error("--std is none, global:MEAN:STD or per-minute:FILE, not '%s'", std_arg);
    }

    minutes = malloc(PAT_MINUTES * sizeof *minutes);
    input = malloc(PAT_MINUTES * sizeof *input);
    if (!minutes || !input) {
        fprintf(stderr, "clarity pat: out of memory\n");
        goto done;
    }
    t_csv = mono_ms();
    n_minutes = read_minutes_csv(input_path, minutes);
    t_csv = mono_ms() - t_csv;
    if (n_minutes < 0)
        goto done;
    if (pat_input_prepare(minutes, (size_t)n_minutes, &st, input, &cov) != PAT_OK) {
        fprintf(stderr, "clarity pat: the standardization reference is invalid (std must be >= 0)\n");
        goto done;
    }

    t_load = mono_ms();
    rc = pat_model_load(model_path, &opt, &m, err, sizeof err);
    t_load = mono_ms() - t_load;
    if (rc) {
        fprintf(stderr, "clarity pat: %s\n", err);
        rc = rc == PAT_ERR_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        goto done;
    }
    rc = CLI_EXIT_FAILURE;
    for (size_t h = 0; h < n_heads; h++) {
        if (pat_head_load(heads[h].path, NULL, &heads[h].head, err, sizeof err) != PAT_OK) {
            fprintf(stderr, "clarity pat: head %s: %s\n", heads[h].name, err);
            goto done;
        }
    }
    pat_model_info_get(m, &info);
    pat_blas_threads_set(1); /* parallelism comes from the workspace */
    t_ws = mono_ms();
    ws = pat_workspace_new(m, threads);
    t_ws = mono_ms() - t_ws;
    tokens = malloc(info.n_tokens * PAT_EMBED_DIM * sizeof *tokens);
    if (want_att)
        att = malloc(info.n_layers * info.n_tokens * info.n_tokens * sizeof *att);
    if (!ws || !tokens || (want_att && !att)) {
        fprintf(stderr, "clarity pat: out of memory\n");
        goto done;
    }
    t_fwd = mono_ms();
    if (pat_model_forward(m, ws, input, tokens, pooled, att) != PAT_OK) {
        fprintf(stderr, "clarity pat: inference failed\n");
        goto done;
    }
    t_fwd = mono_ms() - t_fwd;

    out = json_object();
    json_object_set_new(out, "model", model_json(&info));
    json_object_set_new(out, "coverage",
                        json_pack("{s:I, s:I, s:I, s:f}", "minutes", (json_int_t)cov.n_minutes, "present",
                                  (json_int_t)cov.n_present, "missing", (json_int_t)cov.n_missing, "fraction",
                                  cov.fraction));
    json_object_set_new(out, "standardization",
                        json_string(st.mode == PAT_STD_NONE     ? "none"
                                    : st.mode == PAT_STD_GLOBAL ? "global"
                                                                : "per-minute"));
    json_object_set_new(out, "embedding", floats_json(pooled, PAT_EMBED_DIM));
    if (want_tokens) {
        json_t *rows = json_array();
        for (size_t p = 0; p < info.n_tokens; p++)
            json_array_append_new(rows, floats_json(tokens + p * PAT_EMBED_DIM, PAT_EMBED_DIM));
        json_object_set_new(out, "tokens", rows);
    }
    if (want_att) {
        /* Per layer, the attention each patch receives: the head-averaged
         * attention matrix averaged over query patches. Patch p covers
         * minutes [p*S, (p+1)*S). */
        const size_t n = info.n_tokens;
        json_t *layers = json_array();
        float *recv = malloc(n * sizeof *recv);
        if (!recv) {
            fprintf(stderr, "clarity pat: out of memory\n");
            goto done;
        }
        for (size_t l = 0; l < info.n_layers; l++) {
            const float *a = att + l * n * n;
            for (size_t j = 0; j < n; j++)
                recv[j] = 0.0f;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                    recv[j] += a[i * n + j];
            for (size_t j = 0; j < n; j++)
                recv[j] /= (float)n;
            json_array_append_new(layers, floats_json(recv, n));
        }
        free(recv);
        json_object_set_new(out, "attention",
                            json_pack("{s:s, s:I, s:o}", "kind", "mean attention received per patch, per layer",
                                      "patch_minutes", (json_int_t)info.patch_size, "layers", layers));
    }
    {
        /* Risk scores only from configured heads; never an invented one. */
        json_t *scores = json_object();
        for (size_t h = 0; h < n_heads; h++) {
            float p;
            if (pat_head_predict(heads[h].head, pooled, &p) != PAT_OK) {
                fprintf(stderr, "clarity pat: head %s failed\n", heads[h].name);
                json_decref(scores);
                goto done;
            }
            json_object_set_new(
                scores, heads[h].name,
                json_pack("{s:f, s:s}", "probability", (double)p, "sha256", pat_head_sha256(heads[h].head)));
        }
        json_object_set_new(out, "heads", scores);
    }
    rc = print_json(out) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
    if (want_timing) /* where the command's time goes (issue 22), on stderr */
        fprintf(stderr,
                "clarity pat: timing ms: csv %.1f, load %.1f, workspace %.1f, forward %.1f, "
                "command so far %.1f\n",
                t_csv, t_load, t_ws, t_fwd, mono_ms() - t_start);
done:
    json_decref(out);
    for (size_t h = 0; h < n_heads; h++)
        pat_head_free(heads[h].head);
    pat_workspace_free(ws);
    pat_model_free(m);
    free(minutes);
    free(input);
    free(tokens);
    free(att);
    free(std_mean);
    free(std_sd);
    return rc;
}

int cli_pat(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("missing subcommand (info or embed)");
    if (strcmp(argv[1], "info") == 0)
        return cmd_info(argc, argv);
    if (strcmp(argv[1], "embed") == 0)
        return cmd_embed(argc, argv);
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, stdout);
        return CLI_EXIT_OK;
    }
    return usage_error("unknown subcommand '%s' (info or embed)", argv[1]);
}
