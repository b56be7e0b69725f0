/*
 * keys.c — `clarity keys status|rotate|rewrap`. See keys.h; the rotation
 * procedure is described in docs/security.md.
 */
#include "cli/keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/migrate.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "store/store.h"

static const char usage[] = "usage: clarity keys status [--json]\n"
                            "       clarity keys rotate [--wait SECONDS] [--batch N] [--no-rewrap]\n"
                            "       clarity keys rewrap [--batch N]\n";

/* Parsed flags. */
struct opts {
    int json;
    int no_rewrap;
    long wait_s; /* -1: default */
    long batch;  /* 0: default */
};

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse(int argc, char **argv, const char *sub, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->wait_s = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        int is_status = strcmp(sub, "status") == 0, is_rotate = strcmp(sub, "rotate") == 0;
        if (is_status && strcmp(a, "--json") == 0) {
            o->json = 1;
        } else if (is_rotate && strcmp(a, "--no-rewrap") == 0) {
            o->no_rewrap = 1;
        } else if (is_rotate && strcmp(a, "--wait") == 0 && i + 1 < argc) {
            if (parse_long(argv[++i], 0, 3600, &o->wait_s) != 0) {
                fprintf(stderr, "clarity keys rotate: --wait takes 0..3600 seconds\n");
                return -1;
            }
        } else if (!is_status && strcmp(a, "--batch") == 0 && i + 1 < argc) {
            if (parse_long(argv[++i], 1, STORE_PAGE_MAX, &o->batch) != 0) {
                fprintf(stderr, "clarity keys %s: --batch takes 1..%d\n", sub, STORE_PAGE_MAX);
                return -1;
            }
        } else {
            fprintf(stderr, "clarity keys %s: unexpected argument '%s'\n%s", sub, a, usage);
            return -1;
        }
    }
    return 0;
}

/* Everything a subcommand needs: configuration, store, ring. */
struct session {
    struct config cfg;
    int cfg_loaded;
    struct store *st;
    struct envelope_key *master;
    struct keyring *ring;
};

static void session_close(struct session *s)
{
    keyring_close(s->ring);
    envelope_key_free(s->master);
    store_close(s->st);
    if (s->cfg_loaded)
        config_free(&s->cfg);
}

/* Returns 0, or the exit status to use. */
static int session_open(struct session *s, const char *sub)
{
    char err[512] = "";
    int rc;
    memset(s, 0, sizeof(*s));
    if ((rc = cli_config_load(&s->cfg)) != 0)
        return rc;
    s->cfg_loaded = 1;
    if ((rc = keyring_master_load(&s->cfg, NULL, &s->master, err, sizeof(err))) != 0) {
        fprintf(stderr, "clarity keys %s: %s\n", sub, err);
        return rc == KEYRING_EINVAL || rc == KEYRING_ENOKEY ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    }
    /* serve's policy: development applies pending migrations, staging and
     * production refuse until `clarity migrate up` ran (it logs why). */
    if (cli_store_open_for_serve(&s->cfg, &s->st) != 0) {
        fprintf(stderr, "clarity keys %s: cannot open the database (see the log line above)\n", sub);
        return CLI_EXIT_FAILURE;
    }
    if ((rc = keyring_open(s->st, s->master, &s->ring, err, sizeof(err))) != 0) {
        fprintf(stderr, "clarity keys %s: %s\n", sub, err);
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

static int do_status(struct session *s, const struct opts *o)
{
    struct keyring_version *v = NULL;
    size_t n = 0;
    int active = 0, rc, ok = 1;
    char when[40], shown[512];
    json_t *health = json_object();

    rc = keyring_status_list(s->ring, &v, &n, &active);
    if (rc != 0 || health == NULL) {
        fprintf(stderr, "clarity keys status: %s\n", clarity_strerror(rc));
        json_decref(health);
        return CLI_EXIT_FAILURE;
    }
    char herr[256] = "";
    if (keyring_health_check(s->ring, health, herr, sizeof(herr)) != 0) {
        fprintf(stderr, "clarity keys status: %s\n", herr);
        ok = 0;
    }
    const char *warning = json_string_value(json_object_get(health, "warning"));
    config_redact_url(s->cfg.database_url, shown, sizeof(shown));
    if (o->json) {
        json_t *root = json_object(), *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            time_format_rfc3339_ms(v[i].created_at_ms, when, sizeof(when));
            json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:s, s:I, s:b}", "version", v[i].version, "status",
                                                 v[i].status, "algorithm", v[i].algorithm, "created_at", when,
                                                 "age_days", (json_int_t)v[i].age_days, "opens", v[i].opens));
        }
        json_object_set_new(root, "database", json_string(shown));
        json_object_set_new(root, "active_version", json_integer(active));
        json_object_set_new(root, "rotation_period_days", json_integer(KEYRING_ROTATION_DAYS));
        json_object_set_new(root, "versions", arr);
        if (warning != NULL)
            json_object_set_new(root, "warning", json_string(warning));
        char *text = json_dumps(root, JSON_INDENT(2));
        if (text != NULL)
            printf("%s\n", text);
        free(text);
        json_decref(root);
    } else {
        printf("database: %s (%s)\n", shown, store_backend_name(s->st));
        printf("active version: %d; rotation period %d days\n", active, KEYRING_ROTATION_DAYS);
        printf("%-8s %-8s %-18s %-25s %-9s %s\n", "VERSION", "STATUS", "ALGORITHM", "CREATED", "AGE_DAYS", "UNWRAPS");
        for (size_t i = 0; i < n; i++) {
            time_format_rfc3339_ms(v[i].created_at_ms, when, sizeof(when));
            printf("%-8d %-8s %-18s %-25s %-9lld %s\n", v[i].version, v[i].status, v[i].algorithm, when,
                   (long long)v[i].age_days, v[i].opens ? "yes" : "NO");
        }
        if (warning != NULL)
            printf("warning: %s\n", warning);
    }
    for (size_t i = 0; i < n; i++)
        ok &= v[i].opens;
    free(v);
    json_decref(health);
    return ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* One updating line on a terminal; nothing when stderr is a file. */
static int progress(void *ctx, const struct keyring_rewrap_stats *st)
{
    (void)ctx;
    if (!isatty(STDERR_FILENO))
        return 0;
    const struct keyring_rewrap_table *t = &st->tables[st->table];
    fprintf(stderr, "\r%s: re-wrapped %lld of %lld scanned (%lld failed); all tables: %lld re-wrapped   ", t->name,
            (long long)t->rewrapped, (long long)t->scanned, (long long)t->failed, (long long)st->rewrapped);
    return 0;
}

static int do_rewrap(struct session *s, const struct opts *o)
{
    struct keyring_rewrap_stats st;
    char err[512] = "";
    int rc = keyring_rewrap(s->ring, (size_t)o->batch, progress, NULL, &st, err, sizeof(err));
    if (isatty(STDERR_FILENO))
        fprintf(stderr, "\n");
    /* Per table, also after a stop: what was done is kept. */
    for (int i = 0; i < KEYRING_REWRAP_TABLES; i++) {
        const struct keyring_rewrap_table *t = &st.tables[i];
        if (t->name == NULL)
            continue;
        printf("%-12s %lld scanned, %lld re-wrapped, %lld skipped (changed meanwhile), %lld failed%s\n", t->name,
               (long long)t->scanned, (long long)t->rewrapped, (long long)t->skipped, (long long)t->failed,
               t->done ? "" : " (not finished)");
    }
    if (rc != 0) {
        fprintf(stderr, "clarity keys: re-wrap stopped: %s (run `clarity keys rewrap` to resume)\n", err);
        return CLI_EXIT_FAILURE;
    }
    printf("re-wrapped %lld data keys to version %d (%lld scanned, %lld failed)\n", (long long)st.rewrapped, st.target,
           (long long)st.scanned, (long long)st.failed);
    if (st.failed > 0) {
        fprintf(stderr,
                "clarity keys: %lld data keys did not unwrap and were left as they are; "
                "see the log for their table and id\n",
                (long long)st.failed);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

static int do_rotate(struct session *s, const struct opts *o)
{
    char err[512] = "";
    int v = 0;
    if (keyring_rotate(s->ring, &v, err, sizeof(err)) != 0) {
        fprintf(stderr, "clarity keys rotate: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    printf("added key version %d (active); older versions retired and still readable\n", v);
    if (o->no_rewrap) {
        printf("data keys not re-wrapped; run `clarity keys rewrap` later\n");
        return CLI_EXIT_OK;
    }
    /* Running instances re-read the active version every
     * KEYRING_ACTIVE_REFRESH_MS; waiting that long (plus a second) means no
     * instance still writes with the old version once the pass starts. */
    long wait_s = o->wait_s >= 0 ? o->wait_s : KEYRING_ACTIVE_REFRESH_MS / 1000 + 1;
    if (wait_s > 0) {
        printf("waiting %ld s for running instances to switch to version %d (--wait 0 skips)\n", wait_s, v);
        fflush(stdout);
        struct timespec ts = {wait_s, 0};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    return do_rewrap(s, o);
}

int cli_keys(int argc, char **argv)
{
    struct opts o;
    struct session s;
    int rc;
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "status") != 0 && strcmp(sub, "rotate") != 0 && strcmp(sub, "rewrap") != 0) {
        fprintf(stderr, "clarity keys: unknown subcommand '%s'\n%s", sub, usage);
        return CLI_EXIT_USAGE;
    }
    if (parse(argc, argv, sub, &o) != 0)
        return CLI_EXIT_USAGE;
    if ((rc = session_open(&s, sub)) != 0) {
        session_close(&s);
        return rc;
    }
    if (strcmp(sub, "status") == 0)
        rc = do_status(&s, &o);
    else if (strcmp(sub, "rotate") == 0)
        rc = do_rotate(&s, &o);
    else
        rc = do_rewrap(&s, &o);
    session_close(&s);
    return rc;
}
