/*
 * migrate.c — `clarity migrate up|status` and the store start-up policy of
 * `serve`. See migrate.h; the migrations themselves are src/store/migrate.c.
 */
#include "cli/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "store/migrate.h"
#include "store/store.h"

static const char usage[] = "usage: clarity migrate up [--to NAME] | clarity migrate status\n"
                            "       clarity migrate contract\n"
                            "       clarity migrate samples-backfill|samples-to-rows [--batch N]\n";

static int open_store(const struct config *cfg, int pool, struct store **out)
{
    struct store_options o;
    char err[512], shown[512];
    store_options_from_config(&o, cfg);
    o.pool_size = pool;
    int rc = store_open(cfg->database_url, &o, out, err, sizeof(err));
    if (rc != 0) {
        config_redact_url(cfg->database_url, shown, sizeof(shown));
        fprintf(stderr, "clarity: cannot open the database %s: %s\n", shown, err);
        return -1;
    }
    return 0;
}

static int status(struct store *st, const struct config *cfg)
{
    struct store_migration_status ms[64];
    size_t n = 0;
    char err[512] = "", shown[512];
    int rc = store_migrate_status(st, ms, 64, &n, err, sizeof(err));
    if (rc != 0 && rc != STORE_EMIGRATION) {
        fprintf(stderr, "clarity migrate status: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    config_redact_url(cfg->database_url, shown, sizeof(shown));
    printf("database: %s (%s)\n", shown, store_backend_name(st));
    int pending = 0, changed = 0, unknown = 0, applied = 0, contract = 0;
    for (size_t i = 0; i < n; i++) {
        char when[32] = "";
        /* A contract migration waits for `migrate contract`, not `up`. */
        const char *state = ms[i].contract ? "contract" : "pending";
        if (ms[i].applied) {
            time_format_rfc3339_ms(ms[i].applied_at_ms, when, sizeof(when));
            state = ms[i].unknown        ? "UNKNOWN"
                    : !ms[i].checksum_ok ? "CHANGED"
                    : ms[i].complete     ? "applied"
                                         : "backfilling";
        }
        contract += ms[i].contract && !ms[i].applied;
        pending += !ms[i].contract && (!ms[i].applied || (!ms[i].complete && ms[i].checksum_ok && !ms[i].unknown));
        changed += ms[i].applied && !ms[i].unknown && !ms[i].checksum_ok;
        unknown += ms[i].unknown;
        applied += ms[i].applied && !ms[i].unknown && ms[i].checksum_ok && ms[i].complete;
        printf("%-32s %-11s %-24s sha256:%.16s\n", ms[i].name, state, when, ms[i].checksum);
    }
    printf("%d applied, %d pending, %d changed, %d unknown, %d contract\n", applied, pending, changed, unknown,
           contract);
    if (rc == STORE_EMIGRATION) {
        fprintf(stderr, "clarity migrate status: %s\n", err);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

static int samples_progress(void *ctx, const struct store_backfill_stats *s)
{
    const char *what = ctx;
    printf("%s: %lld days, %lld samples%s\n", what, (long long)s->days, (long long)s->samples, s->done ? ", done" : "");
    fflush(stdout);
    return 0;
}

/* `migrate samples-backfill|samples-to-rows [--batch N]`: issue #19's
 * backfill (rows into sealed blocks; the workers also run it a little at a
 * time) or its rollback (blocks back into rows for the release before). */
static int samples_move(int argc, char **argv)
{
    long batch = 20;
    int back = strcmp(argv[1], "samples-to-rows") == 0;
    if (argc == 4 && strcmp(argv[2], "--batch") == 0) {
        char *end = NULL;
        batch = strtol(argv[3], &end, 10);
        if (end == argv[3] || *end != '\0' || batch < 1 || batch > 10000) {
            fputs(usage, stderr);
            return CLI_EXIT_USAGE;
        }
    } else if (argc != 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    struct store *st = NULL;
    struct envelope_key *master = NULL;
    struct keyring *ring = NULL;
    struct store_backfill_stats stats;
    memset(&stats, 0, sizeof(stats));
    rc = CLI_EXIT_FAILURE;
    if (cli_store_open_for_serve(&cfg, &st) == 0 && cli_store_seal(&cfg, st, &master, &ring) == 0) {
        char err[512] = "";
        int undone = 0, src = 0;
        /* The rows need their table: after 014 it is made again first. */
        if (back && (src = store_migrate_undo_014(st, &undone, err, sizeof(err))) == 0 && undone)
            printf("samples-to-rows: migration 014_drop_health_samples undone (health_samples made again)\n");
        if (src == 0)
            src = back ? store_sample_blocks_to_rows(st, (size_t)batch, samples_progress, argv[1], &stats)
                       : store_sample_rows_backfill(st, (size_t)batch, samples_progress, argv[1], &stats);
        /* The rollback ends by undoing 013 itself: the release before refuses
         * a database with a migration it does not know, and its column goes
         * with it (a later upgrade adds it again, starting the ids afresh). */
        if (src == 0 && back && stats.done &&
            (src = store_admin_exec(st,
                                    "ALTER TABLE users DROP COLUMN sample_seq;"
                                    " DELETE FROM _migrations WHERE name = '013_sample_blocks'",
                                    err, sizeof(err))) == 0)
            printf("samples-to-rows: migration 013_sample_blocks undone; start the release before it now\n");
        if (src != 0)
            fprintf(stderr, "clarity migrate %s: %s%s%s (resume by running it again)\n", argv[1], clarity_strerror(src),
                    err[0] ? ": " : "", err);
        else
            rc = CLI_EXIT_OK;
    }
    store_close(st);
    keyring_close(ring);
    envelope_key_free(master);
    config_free(&cfg);
    return rc;
}

int cli_migrate(int argc, char **argv)
{
    const char *target = NULL;
    int up = 0, contract = 0;
    if (argc >= 2 && (strcmp(argv[1], "samples-backfill") == 0 || strcmp(argv[1], "samples-to-rows") == 0))
        return samples_move(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "up") == 0) {
        up = 1;
        if (argc == 4 && strcmp(argv[2], "--to") == 0)
            target = argv[3];
        else if (argc != 2) {
            fputs(usage, stderr);
            return CLI_EXIT_USAGE;
        }
    } else if (argc == 2 && strcmp(argv[1], "contract") == 0) {
        contract = 1;
    } else if (!(argc == 2 && strcmp(argv[1], "status") == 0)) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    struct store *st = NULL;
    if (open_store(&cfg, 1, &st) != 0) {
        config_free(&cfg);
        return CLI_EXIT_FAILURE;
    }
    if (up) {
        char err[512] = "";
        int applied = 0;
        rc = store_migrate_up(st, target, &applied, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "clarity migrate up: %s\n", err);
            rc = rc == STORE_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
        } else {
            printf("applied %d migration%s\n", applied, applied == 1 ? "" : "s");
            rc = CLI_EXIT_OK;
        }
    } else if (contract) {
        char err[1024] = "";
        int applied = 0;
        rc = store_migrate_contract(st, &applied, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "clarity migrate contract: %s\n", err);
            rc = CLI_EXIT_FAILURE;
        } else {
            printf("applied %d contract migration%s\n", applied, applied == 1 ? "" : "s");
            rc = CLI_EXIT_OK;
        }
    } else {
        rc = status(st, &cfg);
    }
    store_close(st);
    config_free(&cfg);
    return rc;
}

int cli_store_open_for_serve(const struct config *cfg, struct store **out)
{
    struct store *st = NULL;
    struct store_options o;
    char err[512] = "", shown[512];
    store_options_from_config(&o, cfg);
    config_redact_url(cfg->database_url, shown, sizeof(shown));
    int rc = store_open(cfg->database_url, &o, &st, err, sizeof(err));
    if (rc != 0) {
        log_error("cannot open the database", LOG_STR, "database", shown, LOG_STR, "error", err, LOG_END);
        return -1;
    }
    int pending = 0;
    rc = store_migrate_pending(st, &pending, err, sizeof(err));
    if (rc == 0 && pending > 0) {
        if (cfg->environment == CONFIG_ENV_DEVELOPMENT) {
            int applied = 0;
            rc = store_migrate_up(st, NULL, &applied, err, sizeof(err));
            if (rc == 0)
                log_info("applied pending migrations (development)", LOG_INT, "applied", (long long)applied, LOG_END);
        } else {
            log_error("refusing to start: the database has pending migrations; run `clarity "
                      "migrate up` as a deploy step first",
                      LOG_STR, "environment", config_env_name(cfg->environment), LOG_INT, "pending", (long long)pending,
                      LOG_STR, "database", shown, LOG_END);
            store_close(st);
            return -1;
        }
    }
    if (rc != 0) {
        log_error("refusing to start: database schema problem", LOG_STR, "error", err, LOG_STR, "database", shown,
                  LOG_END);
        store_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

int cli_store_open(const struct config *cfg, struct store **out)
{
    struct store *st = NULL;
    char err[512] = "";
    int pending = 0;
    if (open_store(cfg, 1, &st) != 0)
        return -1;
    int rc = store_migrate_pending(st, &pending, err, sizeof(err));
    if (rc != 0 || pending > 0) {
        fprintf(stderr, "clarity: %s\n",
                rc != 0 ? err : "the database has pending migrations; run `clarity migrate up` first");
        store_close(st);
        return -1;
    }
    *out = st;
    return 0;
}

int cli_store_seal(const struct config *cfg, struct store *st, struct envelope_key **master, struct keyring **ring)
{
    char err[512] = "";
    struct store_sealer z;
    if (envelope_lib_init() != 0 || keyring_master_load(cfg, NULL, master, err, sizeof(err)) != 0 ||
        keyring_open(st, *master, ring, err, sizeof(err)) != 0) {
        log_error("cannot open the encryption key ring", LOG_STR, "error", err, LOG_END);
        return -1;
    }
    keyring_store_sealer(*ring, &z);
    store_set_sealer(st, &z);
    return 0;
}
