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
#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "cli/migrate.h"
#include "ingest/apple_export.h"
#include "ingest/session.h"
#include "store/migrate.h"
#include "store/store.h"

static const char usage[] = "usage: clarity import apple-health FILE --user EMAIL [--batch N]\n";

struct import_ctx {
    struct ingest_session *session;
    char err[512]; /* why a batch could not be stored */
};

/* apple_export_batch_fn: the session commits each batch with the upload's
 * progress, so the upload row never claims more than is stored. */
static int store_batch(void *vctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                       size_t *stored)
{
    struct import_ctx *c = vctx;
    double progress = so_far->bytes_total > 0 ? (double)so_far->bytes_parsed / (double)so_far->bytes_total : 0;
    int rc = ingest_session_add(c->session, v, n, progress, so_far->records, stored);
    if (rc != 0)
        snprintf(c->err, sizeof(c->err), "database: %s", clarity_strerror(rc));
    return rc;
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

/* The user's id for email, or -1 (said on stderr). */
static int user_lookup(struct store *st, const char *email, char user_id[STORE_ID_LEN])
{
    struct store_tx *tx = NULL;
    struct store_user u;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, email, &u);
    store_tx_rollback(tx);
    if (rc == STORE_ENOTFOUND) {
        fprintf(stderr, "clarity import: no user with email %s\n", email);
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "clarity import: database: %s\n", clarity_strerror(rc));
        return -1;
    }
    memcpy(user_id, u.id, STORE_ID_LEN);
    return 0;
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
    struct store *st = NULL;
    struct apple_export *p = NULL;
    json_t *report = NULL;
    char user_id[STORE_ID_LEN];
    int exit_code = CLI_EXIT_FAILURE;
    const char *why = NULL;
    struct envelope_key *master = NULL;
    struct keyring *ring = NULL;
    memset(&c, 0, sizeof(c));
    /* Samples are stored sealed with the key ring (issue #19). */
    if (open_store(&cfg, &st) != 0 || cli_store_seal(&cfg, st, &master, &ring) != 0 ||
        user_lookup(st, email, user_id) != 0)
        goto done;
    /* The same session as an HTTP import: the upload is queued for analysis
     * at the end, so an imported export ends in an analysis and an insight
     * (a worker — `clarity serve` or `clarity worker` — picks the job up). */
    struct ingest_origin origin = {
        .user_id = user_id, .source = "apple_health_export", .audit_action = "health_data.import"};
    if ((rc = ingest_session_begin(st, NULL, &origin, INGEST_STREAMED, &c.session)) != 0) {
        fprintf(stderr, "clarity import: cannot create the upload: %s\n", clarity_strerror(rc));
        goto done;
    }
    struct apple_export_options o = {
        .user_id = user_id,
        .upload_id = ingest_session_upload_id(c.session),
        .batch_size = batch,
        .on_batch = store_batch,
        .ctx = &c,
    };
    if ((rc = apple_export_new(&o, &p)) != 0) {
        why = "out of memory";
        fprintf(stderr, "clarity import: out of memory\n");
        goto done;
    }
    uint64_t t0 = time_mono_ns();
    rc = apple_export_import_file(p, file);
    double secs = (double)(time_mono_ns() - t0) / 1e9;
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    why = rc == APPLE_EXPORT_ECALLBACK ? c.err : apple_export_errmsg(p);
    struct ingest_result r;
    if (rc == 0) {
        rc = ingest_session_commit(c.session, NULL, &r);
        if (rc != 0) {
            snprintf(c.err, sizeof(c.err), "cannot queue the analysis: %s", clarity_strerror(rc));
            why = c.err;
        }
    }
    report = apple_export_report_json(p);
    if (report != NULL) {
        json_object_set_new(report, "upload_id", json_string(ingest_session_upload_id(c.session)));
        json_object_set_new(report, "file", json_string(file));
        /* "received": stored and queued for analysis (the upload's status). */
        json_object_set_new(report, "status", json_string(rc == 0 ? "received" : "failed"));
        if (rc != 0)
            json_object_set_new(report, "error", json_string(why));
        json_object_set_new(report, "seconds", json_real(secs));
        json_object_set_new(report, "mb_per_s", json_real(secs > 0 ? (double)s.bytes_parsed / 1e6 / secs : 0));
        json_dumpf(report, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
    }
    if (rc != 0)
        fprintf(stderr, "clarity import: %s: %s\n", file, why);
    else
        exit_code = CLI_EXIT_OK;
done:
    json_decref(report);
    ingest_session_end(c.session, why); /* a session not committed marks its upload failed */
    apple_export_free(p);
    store_close(st);
    keyring_close(ring);
    envelope_key_free(master);
    config_free(&cfg);
    return exit_code;
}
