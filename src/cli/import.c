/*
 * import.c — `clarity import apple-health FILE --user EMAIL [--batch N]`.
 * See import.h; the parsing and mapping are src/ingest/apple_export.c.
 */
#include "cli/import.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "ingest/apple_export.h"
#include "store/migrate.h"
#include "store/store.h"

static const char usage[] = "usage: clarity import apple-health FILE --user EMAIL [--batch N]\n";

struct import_ctx {
    struct store *st;
    char upload_id[STORE_ID_LEN];
    char err[512]; /* why a batch could not be stored */
};

static double progress_of(const struct apple_export_stats *s)
{
    if (s->bytes_total <= 0)
        return 0.0;
    double p = (double)s->bytes_parsed / (double)s->bytes_total;
    /* 1.0 is for "completed"; a zip's entry size may also be an estimate. */
    return p < 0 ? 0 : p > 0.99 ? 0.99 : p;
}

/* apple_export_batch_fn: one transaction per batch, samples and progress
 * together, so the upload row never claims more than is stored. */
static int store_batch(void *vctx, const struct store_sample *v, size_t n,
                       const struct apple_export_stats *so_far, size_t *stored)
{
    struct import_ctx *c = vctx;
    struct store_tx *tx = NULL;
    size_t ins = 0;
    int rc = store_tx_begin(c->st, STORE_TX_WRITE, &tx);
    if (rc != 0) {
        snprintf(c->err, sizeof(c->err), "database: %s", clarity_strerror(rc));
        return rc;
    }
    rc = store_sample_insert_batch(tx, v, n, &ins);
    if (rc == 0)
        rc = store_upload_status_set(tx, c->upload_id, STORE_UPLOAD_PROCESSING, progress_of(so_far),
                                     so_far->records, NULL);
    if (rc != 0) {
        snprintf(c->err, sizeof(c->err), "database: %s: %s", clarity_strerror(rc),
                 store_tx_errmsg(tx));
        store_tx_rollback(tx);
        return rc;
    }
    if ((rc = store_tx_commit(tx)) != 0) {
        snprintf(c->err, sizeof(c->err), "database: commit failed: %s", clarity_strerror(rc));
        return rc;
    }
    *stored = ins;
    return 0;
}

/*
 * Open the store as `serve` would (pending migrations applied in development,
 * refused elsewhere: src/cli/migrate.c), but with ONE connection: the import
 * is a single writer, and each pooled SQLite connection grows a page cache
 * of its own, which would multiply the import's memory.
 */
static int open_store(const struct config *cfg, struct store **out)
{
    struct store *st = NULL;
    struct store_options o;
    char err[512] = "", shown[512];
    store_options_from_config(&o, cfg);
    o.pool_size = 1;
    config_redact_url(cfg->database_url, shown, sizeof(shown));
    int rc = store_open(cfg->database_url, &o, &st, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "clarity import: cannot open the database %s: %s\n", shown, err);
        return -1;
    }
    int pending = 0;
    rc = store_migrate_pending(st, &pending, err, sizeof(err));
    if (rc == 0 && pending > 0) {
        if (cfg->environment != CONFIG_ENV_DEVELOPMENT) {
            fprintf(stderr,
                    "clarity import: the database %s has %d pending migration%s; run `clarity "
                    "migrate up` first\n",
                    shown, pending, pending == 1 ? "" : "s");
            store_close(st);
            return -1;
        }
        rc = store_migrate_up(st, NULL, NULL, err, sizeof(err));
    }
    if (rc != 0) {
        fprintf(stderr, "clarity import: database schema problem in %s: %s\n", shown, err);
        store_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

/* Look the user up and create the upload row (status received). */
static int begin_upload(struct import_ctx *c, const char *email, char *user_id)
{
    struct store_tx *tx = NULL;
    struct store_user u;
    struct store_upload up;
    int rc = store_tx_begin(c->st, STORE_TX_WRITE, &tx);
    if (rc != 0) {
        fprintf(stderr, "clarity import: database: %s\n", clarity_strerror(rc));
        return -1;
    }
    rc = store_user_get_by_email(tx, email, &u);
    if (rc != 0) {
        if (rc == STORE_ENOTFOUND)
            fprintf(stderr, "clarity import: no user with email %s\n", email);
        else
            fprintf(stderr, "clarity import: database: %s\n", clarity_strerror(rc));
        goto fail;
    }
    memset(&up, 0, sizeof(up));
    if (uuid_v7(up.id) != 0) {
        fprintf(stderr, "clarity import: no random source for an upload id\n");
        goto fail;
    }
    memcpy(up.user_id, u.id, sizeof(up.user_id));
    snprintf(up.source, sizeof(up.source), "apple_health_export");
    up.status = STORE_UPLOAD_RECEIVED;
    if ((rc = store_upload_insert(tx, &up)) != 0) {
        fprintf(stderr, "clarity import: cannot create the upload: %s\n", clarity_strerror(rc));
        goto fail;
    }
    if ((rc = store_tx_commit(tx)) != 0) { /* commit releases tx, also on failure */
        fprintf(stderr, "clarity import: cannot create the upload: %s\n", clarity_strerror(rc));
        return -1;
    }
    memcpy(c->upload_id, up.id, sizeof(c->upload_id));
    memcpy(user_id, u.id, STORE_ID_LEN);
    return 0;
fail:
    store_tx_rollback(tx);
    return -1;
}

/* Final status of the upload row; errors only reported. */
static void end_upload(struct import_ctx *c, enum store_upload_status status, double progress,
                       int64_t processed, const char *error)
{
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(c->st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_upload_status_set(tx, c->upload_id, status, progress, processed, error);
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    if (rc != 0)
        fprintf(stderr, "clarity import: cannot mark upload %s %s: %s\n", c->upload_id, store_upload_status_name(status),
                clarity_strerror(rc));
}

int cli_import(int argc, char **argv)
{
    const char *file = NULL, *email_arg = NULL;
    size_t batch = 0;
    if (argc < 2 || strcmp(argv[1], "apple-health") != 0) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--user") == 0 && i + 1 < argc) {
            email_arg = argv[++i];
        } else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            char *end = NULL;
            errno = 0;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (errno != 0 || *end != '\0' || v < 1 || v > APPLE_EXPORT_BATCH_MAX) {
                fprintf(stderr, "clarity import: --batch takes 1..%d\n", APPLE_EXPORT_BATCH_MAX);
                return CLI_EXIT_USAGE;
            }
            batch = v;
        } else if (argv[i][0] != '-' && file == NULL) {
            file = argv[i];
        } else {
            fputs(usage, stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (file == NULL || email_arg == NULL || email_arg[0] == '\0' || strlen(email_arg) >= 256) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    /* Emails are stored lower-case (store.h, users). */
    char email[256];
    size_t k = 0;
    for (; email_arg[k] != '\0'; k++)
        email[k] = (char)tolower((unsigned char)email_arg[k]);
    email[k] = '\0';

    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    struct import_ctx c;
    struct apple_export *p = NULL;
    json_t *report = NULL;
    char user_id[STORE_ID_LEN];
    int exit_code = CLI_EXIT_FAILURE;
    memset(&c, 0, sizeof(c));
    if (open_store(&cfg, &c.st) != 0)
        goto done;
    if (begin_upload(&c, email, user_id) != 0)
        goto done;
    struct apple_export_options o = {
        .user_id = user_id,
        .upload_id = c.upload_id,
        .batch_size = batch,
        .on_batch = store_batch,
        .ctx = &c,
    };
    if ((rc = apple_export_new(&o, &p)) != 0) {
        fprintf(stderr, "clarity import: out of memory\n");
        end_upload(&c, STORE_UPLOAD_FAILED, 0, 0, "out of memory");
        goto done;
    }
    uint64_t t0 = time_mono_ns();
    rc = apple_export_import_file(p, file);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    const char *why = rc == APPLE_EXPORT_ECALLBACK ? c.err : apple_export_errmsg(p);
    if (rc == 0)
        end_upload(&c, STORE_UPLOAD_COMPLETED, 1.0, s.records, NULL);
    else
        end_upload(&c, STORE_UPLOAD_FAILED, progress_of(&s), s.records, why);
    report = apple_export_report_json(p);
    if (report != NULL) {
        json_object_set_new(report, "upload_id", json_string(c.upload_id));
        json_object_set_new(report, "file", json_string(file));
        json_object_set_new(report, "status", json_string(rc == 0 ? "completed" : "failed"));
        if (rc != 0)
            json_object_set_new(report, "error", json_string(why));
        json_object_set_new(report, "seconds", json_real(secs));
        json_object_set_new(report, "mb_per_s",
                            json_real(secs > 0 ? (double)s.bytes_parsed / 1e6 / secs : 0));
        json_dumpf(report, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (rc != 0)
        fprintf(stderr, "clarity import: %s: %s\n", file, why);
    else
        exit_code = CLI_EXIT_OK;
done:
    json_decref(report);
    apple_export_free(p);
    store_close(c.st);
    config_free(&cfg);
    return exit_code;
}
