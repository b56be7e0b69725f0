/*
 * analyze.c — `clarity analyze` (contract in analyze.h).
 *
 * File -> minute series -> analysis_report_run (src/analysis/) -> JSON or
 * text. All science lives in the library; this file only reads, converts
 * epochs and prints.
 */
#include "cli/analyze.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>

#include "analysis/analysis.h"
#include "analysis/analysis_json.h"
#include "analysis/series.h"
#include "cli/cli.h"
#include "ingest/recording.h"
#include "core/timeutil.h"

#include <sqlite3.h>

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static void local_format(int64_t local_min, char *out, size_t size) { analysis_json_local_time(local_min, out, size); }

int analyze_duration_parse(const char *s, size_t *minutes)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || v == 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    unsigned long mult = end[0] == 'd' ? 1440 : end[0] == 'h' ? 60 : end[0] == 'm' ? 1 : 0;
    if (mult == 0 || v > SERIES_MAX_MINUTES / mult)
        return -1;
    *minutes = (size_t)(v * mult);
    return 0;
}

/* ---- output ---------------------------------------------------------- */

static const char *scorer_name(const struct analysis_params *p)
{
    if (p->scorer == ANALYSIS_SCORER_SADEH)
        return "sadeh-1994";
    return p->ck_scale == SLEEP_CK_ACTIGRAPH ? "cole-kripke-1992-actigraph" : "cole-kripke-1992";
}

/* {"input": {...}} followed by the library's report (analysis_json.h). */
static json_t *report_json(const char *file, const char *format, const struct recording_series *s,
                           const struct analysis_params *p, const struct analysis_report *r, int steps)
{
    char a[64], b[64];
    json_t *root = json_object(), *in = json_object(), *rep = NULL;
    if (!root || !in)
        goto fail;
    rep = analysis_json_report(r, p, s->start_local_min, 0, 0, steps);
    if (!rep)
        goto fail;
    local_format(s->start_local_min, a, sizeof(a));
    local_format(s->start_local_min + (int64_t)s->n, b, sizeof(b));
    json_object_set_new(in, "file", json_string(file));
    json_object_set_new(in, "format", json_string(format));
    json_object_set_new(in, "values", json_string(steps ? "steps" : "activity counts"));
    json_object_set_new(in, "start_local", json_string(a));
    json_object_set_new(in, "end_local", json_string(b));
    json_object_set_new(in, "rows", json_integer((json_int_t)s->rows));
    if (json_object_set_new(root, "input", in) != 0) {
        in = NULL;
        goto fail;
    }
    in = NULL;
    /* the report's members follow "input" (insertion order is kept) */
    if (json_object_update(root, rep) != 0)
        goto fail;
    json_decref(rep);
    return root;
fail:
    json_decref(in);
    json_decref(rep);
    json_decref(root);
    return NULL;
}

/* Text rendering: one "name: value (n)" or "name: null — reason" per line. */
static void text_metric(FILE *f, const char *name, const struct metric *m, const char *unit)
{
    if (metric_value_valid(m))
        fprintf(f, "  %-28s %.2f%s%s  (n=%zu)\n", name, m->value, unit[0] ? " " : "", unit, m->n);
    else
        fprintf(f, "  %-28s null — %s\n", name, m->reason);
}

static void report_text(FILE *f, const char *file, const struct recording_series *s, const struct analysis_params *p,
                        const struct analysis_report *r, int steps)
{
    char a[64], b[64];
    local_format(s->start_local_min, a, sizeof(a));
    local_format(s->start_local_min + (int64_t)s->n, b, sizeof(b));
    fprintf(f, "Clarity analysis of %s\n", file);
    fprintf(f, "  window %s .. %s local, %zu minutes, %zu with data (%s)\n", a, b, r->n_minutes, r->n_valid,
            steps ? "steps" : "activity counts");
    fprintf(f, "  scorer %s, Webster rescoring %s\n\nSleep (%zu nights)\n", scorer_name(p), p->webster ? "on" : "off",
            r->n_nights);
    for (size_t i = 0; i < r->n_nights; i++) {
        const struct sleep_night *nt = &r->nights[i];
        local_format(s->start_local_min + (int64_t)nt->bed_start, a, sizeof(a));
        local_format(s->start_local_min + (int64_t)nt->bed_end, b, sizeof(b));
        if (r->night_basis && r->night_basis[i] == ANALYSIS_NIGHT_ESTIMATED)
            fprintf(f, "  night %zu: %s .. %s  estimated rest period %.0f min (steps: no sleep figures)\n", i + 1, a, b,
                    nt->time_in_bed_min.value);
        else
            fprintf(f, "  night %zu: %s .. %s  TST %.0f min, WASO %.0f min, %.0f awakenings\n", i + 1, a, b,
                    nt->total_sleep_min.value, nt->waso_min.value, nt->awakenings.value);
    }
    text_metric(f, "non-wear", &r->nonwear_min, "min");
    text_metric(f, "mean estimated rest", &r->rest_mean_min, "min");
    text_metric(f, "mean total sleep", &r->tst_mean_min, "min");
    text_metric(f, "mean efficiency", &r->efficiency_mean_pct, "%");
    text_metric(f, "mean WASO", &r->waso_mean_min, "min");
    text_metric(f, "mean awakenings", &r->awakenings_mean, "");
    text_metric(f, "sleep regularity index", &r->sri, "");
    text_metric(f, "onset SD", &r->timing.onset_sd_min, "min");
    text_metric(f, "midpoint SD", &r->timing.midpoint_sd_min, "min");
    fprintf(f, "\nCircadian rhythm (%zu-minute bins)\n", r->npar.bin_min);
    text_metric(f, "interdaily stability", &r->npar.is, "");
    text_metric(f, "intradaily variability", &r->npar.iv, "");
    text_metric(f, "relative amplitude", &r->npar.ra, "");
    text_metric(f, "L5", &r->npar.l5, "");
    text_metric(f, "L5 onset", &r->npar.l5_onset_min, "min after midnight");
    text_metric(f, "M10", &r->npar.m10, "");
    text_metric(f, "M10 onset", &r->npar.m10_onset_min, "min after midnight");
    text_metric(f, "cosinor MESOR", &r->cosinor.mesor, "");
    text_metric(f, "cosinor amplitude", &r->cosinor.amplitude, "");
    text_metric(f, "cosinor acrophase", &r->cosinor.acrophase_min, "min after midnight");
    text_metric(f, "cosinor R^2", &r->cosinor.r_squared, "");
    if (steps) {
        fprintf(f, "\nActivity (%zu complete days)\n", r->activity.days);
        text_metric(f, "steps total", &r->activity.steps_total, "");
        text_metric(f, "steps daily mean", &r->activity.steps_daily_mean, "");
        text_metric(f, "steps daily peak", &r->activity.steps_daily_peak, "");
        text_metric(f, "steps consistency", &r->activity.steps_consistency, "");
    }
}

/* ---- command --------------------------------------------------------- */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "clarity analyze: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: clarity analyze FILE [--format json|text] [--window 7d] "
                    "[--scorer cole-kripke|cole-kripke-actigraph|sadeh] [--no-webster] "
                    "[--bin MINUTES] [--epoch SECONDS] [--input counts|steps] [--nonwear choi|off] "
                    "[--epochs FILE] [--actogram FILE] [--conventions clarity|pyactigraphy]  (FILE may be a "
                    "folder: one summary row per recording)\n");
    return CLI_EXIT_USAGE;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, n = 0;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= RECORDING_MAX_FILE_BYTES) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, RECORDING_MAX_FILE_BYTES);
                goto fail;
            }
            size_t nc = cap ? cap * 2 : 1 << 16;
            char *t = realloc(buf, nc);
            if (!t) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = t;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "%s: read error", path);
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
fail:
    fclose(f);
    free(buf);
    return NULL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Read, parse and analyse one file. On success *s holds the series and
 * *ws the workspace *r points into (caller frees both). */
static int analyze_one(const char *file, unsigned epoch, size_t window, int steps, const struct analysis_params *p,
                       struct recording_series *s, void **ws, struct analysis_report *r, int *fmt, char *err,
                       size_t errlen)
{
    size_t len = 0;
    *ws = NULL;
    int rc;
    *fmt = recording_format_detect(file, "", 0);
    if (*fmt == RECORDING_FMT_AGD) {
        rc = recording_agd_read(file, epoch, window, s, err, errlen);
    } else {
        char *text = read_file(file, &len, err, errlen);
        if (!text)
            return -1;
        *fmt = recording_format_detect(file, text, len);
        switch (*fmt) {
        case RECORDING_FMT_AWD: rc = recording_awd_parse(text, len, epoch, window, s, err, errlen); break;
        case RECORDING_FMT_RPX: rc = recording_rpx_parse(text, len, epoch, window, s, err, errlen); break;
        case RECORDING_FMT_ATR: rc = recording_atr_parse(text, len, epoch, window, s, err, errlen); break;
        case RECORDING_FMT_MTN: rc = recording_mtn_parse(text, len, epoch, window, s, err, errlen); break;
        case RECORDING_FMT_ACTILIFE: rc = recording_actilife_parse(text, len, epoch, window, s, err, errlen); break;
        default: rc = recording_csv_parse(text, len, epoch, window, s, err, errlen); break;
        }
        free(text);
    }
    if (rc != 0)
        return -1;
    int64_t day = floor_div(s->start_local_min, 1440);
    struct analysis_input in = {s->values,
                                s->n,
                                (int)(s->start_local_min - day * 1440),
                                NULL,
                                NULL,
                                NULL,
                                NULL,
                                steps ? s->values : NULL,
                                steps,
                                NULL,
                                NULL};
    size_t wsz = analysis_workspace_size(s->n, p->bin_min);
    *ws = malloc(wsz);
    if (!*ws || analysis_report_run(&in, p, *ws, wsz, r) != 0) {
        snprintf(err, errlen, "analysis failed (out of memory or invalid input)");
        free(*ws);
        *ws = NULL;
        free(s->values);
        s->values = NULL;
        return -1;
    }
    return 0;
}

/* --conventions pyactigraphy: IS, IV, RA, L5, M10 and onsets as
 * pyActigraphy computes them (its defaults: binarised at > 4, no non-wear
 * mask), on the recording's own epochs, in place of Clarity's. */
static int apply_pyactigraphy(const struct recording_series *s, struct analysis_report *r, char *err, size_t errlen)
{
    size_t pws = circadian_pyact_workspace_size(s->epoch_n, s->epoch_s);
    if (pws == 0) {
        snprintf(err, errlen, "pyActigraphy conventions: an epoch of %u s does not divide one hour", s->epoch_s);
        return -1;
    }
    if (s->epoch_n == 0) {
        snprintf(err, errlen,
                 "pyActigraphy conventions: no series at the %u-s epoch (over %u epochs); choose a --window",
                 s->epoch_s, RECORDING_MAX_ROWS);
        return -1;
    }
    void *pw = malloc(pws);
    int64_t day0 = floor_div(s->start_local_s, 86400);
    int prc = pw ? circadian_npar_pyactigraphy(s->epoch_values, s->epoch_n, s->epoch_s,
                                               (int)(s->start_local_s - day0 * 86400), 4.0, pw, &r->npar)
                 : -1;
    free(pw);
    if (prc != 0) {
        snprintf(err, errlen, "pyActigraphy conventions: out of memory or invalid input");
        return -1;
    }
    return 0;
}

static void csv_metric(FILE *f, const struct metric *m)
{
    if (metric_value_valid(m))
        fprintf(f, ",%.10g", m->value);
    else
        fputs(",", f);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Folder mode: one summary CSV row per .awd/.csv recording, sorted by name;
 * a progress line per file on stderr. A file that fails gets a row with its
 * error and the run goes on; the exit status says whether any failed. */
static int analyze_folder(const char *dir, unsigned epoch, size_t window, int steps, int pyact,
                          const struct analysis_params *p)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int failed = 0;
    if (!d) {
        fprintf(stderr, "clarity analyze: %s: %s\n", dir, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        static const char *const exts[] = {".awd", ".csv", ".agd", ".mtn", ".txt"};
        int want = 0;
        for (size_t x = 0; x < sizeof(exts) / sizeof(exts[0]) && l >= 5; x++)
            want |= strcasecmp(e->d_name + l - 4, exts[x]) == 0;
        if (!want)
            continue;
        if (nn == cap) {
            size_t nc = cap ? cap * 2 : 64;
            char **t = nc <= 1000000 ? realloc(names, nc * sizeof(*t)) : NULL;
            if (!t)
                break;
            names = t;
            cap = nc;
        }
        names[nn] = strdup(e->d_name);
        if (names[nn])
            nn++;
    }
    closedir(d);
    if (nn)
        qsort(names, nn, sizeof(*names), by_name);
    printf("file,start_local,minutes,valid_minutes,nonwear_min,nights,total_sleep_mean_min,efficiency_mean_pct,"
           "estimated_rest_mean_min,sri,is,iv,ra,l5,l5_onset_min,m10,m10_onset_min,error\n");
    for (size_t i = 0; i < nn; i++) {
        char path[4096], err[256], a[64];
        struct recording_series s = {0};
        struct analysis_report r;
        void *ws = NULL;
        int awd;
        fprintf(stderr, "[%zu/%zu] %s\n", i + 1, nn, names[i]);
        int pl = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (pl < 0 || (size_t)pl >= sizeof(path)) {
            snprintf(err, sizeof(err), "path too long");
            printf("%s,,,,,,,,,,,,,,,,,\"%s\"\n", names[i], err);
            failed = 1;
        } else if (analyze_one(path, epoch, window, steps, p, &s, &ws, &r, &awd, err, sizeof(err)) != 0 ||
                   (pyact && apply_pyactigraphy(&s, &r, err, sizeof(err)) != 0)) {
            for (char *c = err; *c; c++)
                if (*c == '"')
                    *c = '\'';
            printf("%s,,,,,,,,,,,,,,,,,\"%s\"\n", names[i], err);
            failed = 1;
        } else {
            local_format(s.start_local_min, a, sizeof(a));
            printf("%s,%s,%zu,%zu", names[i], a, r.n_minutes, r.n_valid);
            csv_metric(stdout, &r.nonwear_min);
            printf(",%zu", r.n_nights);
            csv_metric(stdout, &r.tst_mean_min);
            csv_metric(stdout, &r.efficiency_mean_pct);
            csv_metric(stdout, &r.rest_mean_min);
            csv_metric(stdout, &r.sri);
            csv_metric(stdout, &r.npar.is);
            csv_metric(stdout, &r.npar.iv);
            csv_metric(stdout, &r.npar.ra);
            csv_metric(stdout, &r.npar.l5);
            csv_metric(stdout, &r.npar.l5_onset_min);
            csv_metric(stdout, &r.npar.m10);
            csv_metric(stdout, &r.npar.m10_onset_min);
            printf(",\n");
        }
        free(ws);
        free(s.values);
        free(names[i]);
    }
    free(names);
    if (fflush(stdout) != 0)
        return CLI_EXIT_FAILURE;
    return failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int write_to(const char *path, int epochs, const struct recording_series *s, const struct analysis_report *r,
                    char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    int rc = epochs ? analyze_epochs_write(f, s->start_local_min, s->values, s->n, r)
                    : analyze_actogram_write(f, s->start_local_min, s->values, s->n, r);
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        snprintf(err, errlen, "%s: write error", path);
    return rc;
}

int cli_analyze(int argc, char **argv)
{
    const char *file = NULL, *format = "json", *epochs_out = NULL, *actogram_out = NULL;
    int pyact = 0;
    size_t window = 0;
    unsigned long epoch = 0, bin = 60;
    int steps = 0;
    struct analysis_params p = analysis_params_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--format") == 0) {
            if (!val || (strcmp(val, "json") != 0 && strcmp(val, "text") != 0))
                return usage_error("--format takes json or text");
            format = val;
            i++;
        } else if (strcmp(a, "--epochs") == 0 || strcmp(a, "--actogram") == 0) {
            if (!val || !val[0])
                return usage_error("%s takes an output FILE", a);
            if (a[2] == 'e')
                epochs_out = val;
            else
                actogram_out = val;
            i++;
        } else if (strcmp(a, "--conventions") == 0) {
            if (val && strcmp(val, "clarity") == 0)
                pyact = 0;
            else if (val && strcmp(val, "pyactigraphy") == 0)
                pyact = 1;
            else
                return usage_error("--conventions takes clarity or pyactigraphy, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--nonwear") == 0) {
            if (val && strcmp(val, "choi") == 0)
                p.nonwear_choi = 1;
            else if (val && strcmp(val, "off") == 0)
                p.nonwear_choi = 0;
            else
                return usage_error("--nonwear takes choi or off, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--window") == 0) {
            if (!val || analyze_duration_parse(val, &window) != 0)
                return usage_error("--window takes a duration like 7d, 36h or 90m, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--scorer") == 0) {
            if (val && strcmp(val, "cole-kripke") == 0) {
                p.scorer = ANALYSIS_SCORER_COLE_KRIPKE;
                p.ck_scale = SLEEP_CK_ORIGINAL;
            } else if (val && strcmp(val, "cole-kripke-actigraph") == 0) {
                p.scorer = ANALYSIS_SCORER_COLE_KRIPKE;
                p.ck_scale = SLEEP_CK_ACTIGRAPH;
            } else if (val && strcmp(val, "sadeh") == 0) {
                p.scorer = ANALYSIS_SCORER_SADEH;
            } else {
                return usage_error("--scorer takes cole-kripke, cole-kripke-actigraph or sadeh, not '%s'",
                                   val ? val : "");
            }
            i++;
        } else if (strcmp(a, "--no-webster") == 0) {
            p.webster = 0;
        } else if (strcmp(a, "--bin") == 0) {
            if (!val || parse_uint(val, 60, &bin) != 0 || bin == 0 || 60 % bin != 0)
                return usage_error("--bin takes minutes dividing 60 (1, 2, 5, 10, 15, 30, 60...), not '%s'",
                                   val ? val : "");
            i++;
        } else if (strcmp(a, "--epoch") == 0) {
            if (!val || parse_uint(val, 3600, &epoch) != 0 || epoch == 0)
                return usage_error("--epoch takes seconds, not '%s'", val ? val : "");
            i++;
        } else if (strcmp(a, "--input") == 0) {
            if (val && strcmp(val, "counts") == 0)
                steps = 0;
            else if (val && strcmp(val, "steps") == 0)
                steps = 1;
            else
                return usage_error("--input takes counts or steps, not '%s'", val ? val : "");
            i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage_error("unknown option '%s'", a);
        } else if (file) {
            return usage_error("more than one FILE ('%s')", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("missing FILE");
    p.bin_min = bin;
    struct stat sb;
    if (stat(file, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        if (epochs_out || actogram_out)
            return usage_error("--epochs and --actogram take one recording, not a folder");
        return analyze_folder(file, (unsigned)epoch, window, steps, pyact, &p);
    }

    int rc = CLI_EXIT_FAILURE;
    char err[256];
    char *out = NULL;
    void *ws = NULL;
    json_t *doc = NULL;
    struct recording_series s = {0};
    struct analysis_report r;
    int awd = 0;
    if (analyze_one(file, (unsigned)epoch, window, steps, &p, &s, &ws, &r, &awd, err, sizeof(err)) != 0)
        goto fail;
    if (pyact && apply_pyactigraphy(&s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (epochs_out && write_to(epochs_out, 1, &s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (actogram_out && write_to(actogram_out, 0, &s, &r, err, sizeof(err)) != 0)
        goto fail;
    if (strcmp(format, "text") == 0) {
        report_text(stdout, file, &s, &p, &r, steps);
        if (pyact)
            printf("(IS, IV, RA, L5, M10 and onsets: pyActigraphy's conventions on %u-s epochs; L5/M10 are the\n"
                   " mean share of active epochs, > 4 counts)\n",
                   s.epoch_s);
    } else {
        static const char *const fmt_names[] = {"csv", "awd", "rpx", "atr", "mtn", "actilife-csv", "agd"};
        doc = report_json(file, fmt_names[awd], &s, &p, &r, steps);
        if (doc && pyact)
            json_object_set_new(json_object_get(doc, "input"), "epoch_s", json_integer(s.epoch_s));
        if (doc && pyact)
            json_object_set_new(json_object_get(doc, "input"), "conventions",
                                json_string("pyactigraphy (binarised > 4, hourly sums from the first epoch, "
                                            "ddof-1 variances, L5/M10 per recorded epoch)"));
        out = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) : NULL;
        if (!out) {
            snprintf(err, sizeof(err), "out of memory rendering JSON");
            goto fail;
        }
        puts(out);
    }
    if (fflush(stdout) != 0) {
        snprintf(err, sizeof(err), "write error on standard output");
        goto fail;
    }
    rc = CLI_EXIT_OK;
    goto done;
fail:
    fprintf(stderr, "clarity analyze: %s\n", err);
done:
    free(out);
    json_decref(doc);
    free(ws);
    free(s.values);
    return rc;
}
