/*
 * store_test.c — the repository, migration and queue suite of src/store/.
 *
 * The same cases run against either backend:
 *   - SQLite (default): a fresh file under $CLARITY_TEST_TMP per case;
 *   - PostgreSQL when CLARITY_TEST_PG_URL is set (scripts/pg-test-server sets
 *     it); each case starts from an empty public schema.
 * With CLARITY_TEST_BACKEND=postgres and no URL the suite fails instead of
 * quietly testing SQLite: in CI the PostgreSQL run must not skip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/uuid.h"
#include "ingest/apple_export.h"
#include "pipeline/compute.h"
#include "store/block.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"
#include "store/store_int.h" /* store_tx_stmt: counting cache rows */

void store_samples_previous_release_for_test(int on);
void store_days_write_legacy_for_test(int on);

struct fix {
    char url[1200];
    char path[1024]; /* SQLite file, "" for PostgreSQL */
    struct store *st;
};

/* store.h has no clock; the tests read the same wall clock the store does. */
int64_t store_now_ms_for_test(void);

static int is_pg(void) { return getenv("CLARITY_TEST_PG_URL") != NULL; }

static void fill_opts(struct store_options *o)
{
    store_options_default(o);
    o->synchronous_full = 0; /* tests do not need power-loss durability */
    o->queue_backoff_base_ms = 5;
    o->queue_backoff_max_ms = 40;
}

static int open_store(const char *url, struct store **out)
{
    struct store_options o;
    char err[512];
    fill_opts(&o);
    int rc = store_open(url, &o, out, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err);
    return rc;
}

static int setup(void **state)
{
    static unsigned counter;
    struct fix *f = calloc(1, sizeof(*f));
    char err[512];
    assert_non_null(f);
    if (is_pg()) {
        snprintf(f->url, sizeof(f->url), "%s", getenv("CLARITY_TEST_PG_URL"));
        assert_int_equal(open_store(f->url, &f->st), 0);
        int rc = store_admin_exec(f->st, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;", err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "reset: %s\n", err);
        assert_int_equal(rc, 0);
        /* Prepared statements refer to dropped tables: start from new sessions. */
        store_close(f->st);
        f->st = NULL;
    } else {
        const char *tmp = getenv("CLARITY_TEST_TMP");
        if (tmp == NULL)
            tmp = "/tmp";
        mkdir(tmp, 0755);
        snprintf(f->path, sizeof(f->path), "%s/store_test_%d_%u.db", tmp, (int)getpid(), counter++);
        unlink(f->path);
        char wal[1100];
        snprintf(wal, sizeof(wal), "%s-wal", f->path);
        unlink(wal);
        snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    }
    assert_int_equal(open_store(f->url, &f->st), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    store_samples_previous_release_for_test(0);
    store_days_write_legacy_for_test(0);
    store_close(f->st);
    if (f->path[0]) {
        char p[1100];
        unlink(f->path);
        snprintf(p, sizeof(p), "%s-wal", f->path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", f->path);
        unlink(p);
    }
    free(f);
    return 0;
}

static void migrate_all(struct store *st)
{
    char err[512] = "";
    int applied = -1;
    int rc = store_migrate_up(st, NULL, &applied, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "migrate: %s\n", err);
    assert_int_equal(rc, 0);
}

static struct store_tx *begin(struct store *st)
{
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    return tx;
}

static void commit(struct store_tx *tx) { assert_int_equal(store_tx_commit(tx), 0); }

static void make_user(struct store *st, const char *email, char id[STORE_ID_LEN], int64_t created)
{
    struct store_user u;
    memset(&u, 0, sizeof(u));
    assert_int_equal(uuid_v7(u.id), 0);
    snprintf(u.email, sizeof(u.email), "%s", email);
    snprintf(u.password_hash, sizeof(u.password_hash), "$argon2id$v=19$x");
    snprintf(u.first_name, sizeof(u.first_name), "Ada");
    snprintf(u.last_name, sizeof(u.last_name), "Lovelace");
    u.created_at_ms = created;
    struct store_tx *tx = begin(st);
    assert_int_equal(store_user_insert(tx, &u), 0);
    commit(tx);
    memcpy(id, u.id, STORE_ID_LEN);
}

static void make_upload(struct store_tx *tx, const char *user, char id[STORE_ID_LEN])
{
    struct store_upload u;
    memset(&u, 0, sizeof(u));
    assert_int_equal(uuid_v7(u.id), 0);
    memcpy(u.user_id, user, STORE_ID_LEN);
    snprintf(u.source, sizeof(u.source), "healthkit");
    u.total_metrics = 3;
    assert_int_equal(store_upload_insert(tx, &u), 0);
    memcpy(id, u.id, STORE_ID_LEN);
}

static void fill_sample(struct store_sample *x, const char *user, const char *upload, int i)
{
    memset(x, 0, sizeof(*x));
    snprintf(x->user_id, sizeof(x->user_id), "%s", user);
    snprintf(x->upload_id, sizeof(x->upload_id), "%s", upload != NULL ? upload : "");
    snprintf(x->metric_type, sizeof(x->metric_type), "%s", i % 2 ? "heart_rate" : "step_count");
    x->start_ms = 1700000000000LL + (int64_t)i * 60000;
    x->end_ms = x->start_ms + 60000;
    x->value = 60.0 + i;
    x->value2 = NAN;
    snprintf(x->unit, sizeof(x->unit), "count/min");
    snprintf(x->source, sizeof(x->source), "%s", i % 3 ? "watch" : "phone");
    snprintf(x->hk_uuid, sizeof(x->hk_uuid), "00000000-0000-4000-8000-%012d", i);
    x->quality_score = 0.9;
}

/* ---- 1. opening and errors ------------------------------------------------ */

static void test_open_rejects_bad_urls(void **state)
{
    (void)state;
    struct store *st = NULL;
    char err[256];
    assert_int_equal(store_open("mysql://x", NULL, &st, err, sizeof(err)), STORE_EINVAL);
    assert_int_equal(store_open("", NULL, &st, err, sizeof(err)), STORE_EINVAL);
    /* A wrong password must not appear in the error text. */
    int rc = store_open("postgres://u:s3cretpw@127.0.0.1:1/db?connect_timeout=2", NULL, &st, err, sizeof(err));
    assert_int_equal(rc, STORE_EUNAVAILABLE);
    assert_null(strstr(err, "s3cretpw"));
}

static void test_cursor_roundtrip(void **state)
{
    (void)state;
    struct store_cursor c = {.set = 1, .ts = 1700000000123LL}, d;
    char text[STORE_CURSOR_LEN];
    snprintf(c.key, sizeof(c.key), "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    store_cursor_format(&c, text);
    assert_int_equal(store_cursor_parse(text, &d), 0);
    assert_int_equal(d.ts, c.ts);
    assert_string_equal(d.key, c.key);
    assert_int_equal(store_cursor_parse("abc", &d), STORE_EINVAL);
    assert_int_equal(store_cursor_parse("12.'; DROP", &d), STORE_EINVAL);
}

/* ---- 2. migrations -------------------------------------------------------- */

static void test_migrate_fresh_and_rerun(void **state)
{
    struct fix *f = *state;
    char err[512];
    int applied = -1, pending = -1;
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, (int)store_migration_count());
    assert_int_equal(store_migrate_up(f->st, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, (int)store_migration_count());
    assert_int_equal(store_migrate_up(f->st, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);
    struct store_migration_status ms[16];
    size_t n = 0;
    assert_int_equal(store_migrate_status(f->st, ms, 16, &n, err, sizeof(err)), 0);
    assert_int_equal(n, store_migration_known());
    assert_int_equal(n, store_migration_count() + 1); /* 014, a contract migration */
    assert_string_equal(ms[0].name, "001_create_indexes");
    assert_string_equal(ms[1].name, "002_add_data_quality_fields");
    assert_string_equal(ms[2].name, "003_idempotency_keys");
    for (size_t i = 0; i < n; i++) {
        assert_true(ms[i].contract ? !ms[i].applied : ms[i].applied && ms[i].complete && ms[i].checksum_ok);
        assert_int_equal(strlen(ms[i].checksum), 64);
    }
}

/* Deploys may start several `migrate up` at once: they take turns, both
 * succeed, and each migration is applied exactly once. */
static void test_migrate_concurrent_runners(void **state)
{
    struct fix *f = *state;
    store_close(f->st);
    f->st = NULL;
    pid_t pid[3];
    for (int i = 0; i < 3; i++) {
        pid[i] = fork();
        assert_true(pid[i] >= 0);
        if (pid[i] == 0) {
            struct store *st = NULL;
            char err[512];
            int applied = 0;
            if (open_store(f->url, &st) != 0)
                _exit(2);
            int rc = store_migrate_up(st, NULL, &applied, err, sizeof(err));
            if (rc != 0)
                fprintf(stderr, "runner %d: %s\n", i, err);
            store_close(st);
            _exit(rc == 0 ? 10 + applied : 1);
        }
    }
    int total = 0;
    for (int i = 0; i < 3; i++) {
        int status = 0;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status));
        assert_true(WEXITSTATUS(status) >= 10);
        total += WEXITSTATUS(status) - 10;
    }
    assert_int_equal(total, (int)store_migration_count());
    assert_int_equal(open_store(f->url, &f->st), 0);
    char err[512];
    int pending = -1;
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);
}

static void test_migrate_tampered_refused(void **state)
{
    struct fix *f = *state;
    char err[512] = "";
    int pending = 0;
    migrate_all(f->st);
    assert_int_equal(store_admin_exec(f->st,
                                      "UPDATE _migrations SET checksum = 'deadbeef'"
                                      " WHERE name = '001_create_indexes'",
                                      err, sizeof(err)),
                     0);
    assert_int_equal(store_migrate_up(f->st, NULL, NULL, err, sizeof(err)), STORE_EMIGRATION);
    assert_non_null(strstr(err, "001_create_indexes"));
    assert_non_null(strstr(err, "changed"));
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), STORE_EMIGRATION);
    /* A migration from a newer binary is refused too. */
    assert_int_equal(store_admin_exec(f->st,
                                      "UPDATE _migrations SET checksum = 'x' WHERE 1 = 0;"
                                      "DELETE FROM _migrations WHERE name = '001_create_indexes';"
                                      "INSERT INTO _migrations VALUES ('999_future', 'x', 1, 1)",
                                      err, sizeof(err)),
                     0);
    assert_int_equal(store_migrate_up(f->st, NULL, NULL, err, sizeof(err)), STORE_EMIGRATION);
    assert_non_null(strstr(err, "999_future"));
}

static void test_migrate_002_backfills_every_row(void **state)
{
    struct fix *f = *state;
    char err[512] = "";
    int applied = 0;
    assert_int_equal(store_migrate_up(f->st, "001_create_indexes", &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 1);
    int pending = 0;
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, (int)store_migration_count() - 1);
    /* Seed 1234 rows under the 001 schema (more than two 500-row batches),
     * every tenth without a value. */
    assert_int_equal(store_admin_exec(f->st,
                                      "INSERT INTO users (id, email, created_at, updated_at)"
                                      " VALUES ('u1', 'a@b.c', 1, 1)",
                                      err, sizeof(err)),
                     0);
    for (int batch = 0; batch < 13; batch++) {
        char sql[64 * 1024];
        size_t o = (size_t)snprintf(sql, sizeof(sql),
                                    "INSERT INTO health_samples (user_id, metric_type, start_ms,"
                                    " end_ms, value, hk_uuid, created_at) VALUES ");
        for (int i = 0; i < 100 && batch * 100 + i < 1234; i++) {
            int k = batch * 100 + i;
            o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s('u1','heart_rate',%d,%d,%s,'hk-%d',1)", i ? "," : "", k,
                                  k + 1, k % 10 == 0 ? "NULL" : "72.5", k);
        }
        assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    }
    assert_int_equal(store_migrate_up(f->st, "002_add_data_quality_fields", &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 1);
    /* The later migrations (the repository reads today's schema), so that
     * only 002 is left to resume below. */
    assert_int_equal(store_migrate_up(f->st, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, (int)store_migration_count() - 2);
    /* Check every row through the repository. */
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    struct store_sample_query q = {.user_id = "u1", .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 1};
    struct store_sample *v = NULL;
    size_t n = 0, seen = 0;
    struct store_cursor next;
    q.limit = 1000;
    for (;;) {
        assert_int_equal(store_sample_list(tx, &q, &v, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(v[i].processing_version, 1);
            assert_string_equal(v[i].validation_status, "unvalidated");
            int k = (int)v[i].start_ms;
            assert_true(v[i].quality_score == (k % 10 == 0 ? 0.0 : 1.0));
            assert_true(isnan(v[i].value) == (k % 10 == 0));
        }
        seen += n;
        store_sample_list_free(v, n);
        if (!next.set)
            break;
        q.after = next;
    }
    store_tx_rollback(tx);
    assert_int_equal(seen, 1234);
    /* Resumable and idempotent: mark it incomplete and run again. */
    assert_int_equal(store_admin_exec(f->st,
                                      "UPDATE _migrations SET complete = 0"
                                      " WHERE name = '002_add_data_quality_fields';"
                                      "UPDATE health_samples SET processing_version = NULL"
                                      " WHERE start_ms < 10",
                                      err, sizeof(err)),
                     0);
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 1);
    assert_int_equal(store_migrate_up(f->st, NULL, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);
}

/* ---- 3. repositories ------------------------------------------------------ */

static void test_users(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char ids[25][STORE_ID_LEN];
    for (int i = 0; i < 25; i++) {
        char email[64];
        snprintf(email, sizeof(email), "user%02d@example.com", i);
        /* Pairs share a created_at to exercise the id tie-breaker. */
        make_user(f->st, email, ids[i], 1000 + i / 2);
    }
    struct store_tx *tx = begin(f->st);
    struct store_user u, dup;
    assert_int_equal(store_user_get(tx, ids[3], &u), 0);
    assert_string_equal(u.email, "user03@example.com");
    assert_string_equal(u.role, "patient");
    assert_int_equal(store_user_get_by_email(tx, "user04@example.com", &u), 0);
    assert_string_equal(u.id, ids[4]);
    assert_int_equal(store_user_get(tx, "nope", &u), STORE_ENOTFOUND);
    dup = u;
    assert_int_equal(uuid_v7(dup.id), 0);
    assert_int_equal(store_user_insert(tx, &dup), STORE_ECONFLICT);
    store_tx_rollback(tx);

    tx = begin(f->st);
    assert_int_equal(store_user_login_update(tx, ids[4], 3, 5000, 4000), 0);
    snprintf(u.role, sizeof(u.role), "admin");
    assert_int_equal(store_user_update(tx, &u), 0);
    commit(tx);
    tx = begin(f->st);
    assert_int_equal(store_user_get(tx, ids[4], &u), 0);
    assert_int_equal(u.failed_logins, 3);
    assert_int_equal(u.locked_until_ms, 5000);
    assert_string_equal(u.role, "admin");

    /* Keyset pages: 10, 10, 5, newest first, no duplicates. */
    struct store_cursor after = {0}, next;
    int seen[25] = {0};
    size_t total = 0;
    int64_t last_ts = INT64_MAX;
    for (int page = 0; page < 4; page++) {
        struct store_user *v = NULL;
        size_t n = 0;
        assert_int_equal(store_user_list(tx, &after, 10, &v, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            assert_true(v[i].created_at_ms <= last_ts);
            last_ts = v[i].created_at_ms;
            for (int k = 0; k < 25; k++)
                if (strcmp(v[i].id, ids[k]) == 0)
                    seen[k]++;
        }
        total += n;
        free(v);
        if (!next.set)
            break;
        after = next;
    }
    assert_int_equal(total, 25);
    for (int k = 0; k < 25; k++)
        assert_int_equal(seen[k], 1);
    assert_int_equal(store_user_list(tx, NULL, 0, NULL, NULL, NULL), STORE_EINVAL);
    commit(tx);

    /* A one-statement read (issue 22) sees committed rows, leaves no
     * transaction open on its pooled connection (the next BEGIN IMMEDIATE
     * works and a commit is a no-op), and refuses a second statement:
     * autocommit would give it another snapshot. */
    struct store_user pu;
    int verified = -1;
    char display[64] = "x";
    for (int round = 0; round < 3; round++) {
        assert_int_equal(store_tx_begin(f->st, STORE_TX_READ_ONE, &tx), 0);
        assert_int_equal(store_user_profile_get(tx, ids[4], &pu, &verified, display, sizeof(display)), 0);
        assert_string_equal(pu.role, "admin");
        assert_int_equal(verified, 0);
        if (round == 0) {
            store_tx_rollback(tx);
        } else if (round == 1) {
            assert_int_equal(store_tx_commit(tx), 0);
        } else {
            int second = store_user_get(tx, ids[3], &u);
            assert_int_equal(second, is_pg() ? 0 : STORE_EINTERNAL);
            store_tx_rollback(tx);
        }
        tx = begin(f->st);
        assert_int_equal(store_user_login_update(tx, ids[4], round, 0, 7000 + round), 0);
        commit(tx);
    }
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ_ONE, &tx), 0);
    assert_int_equal(store_user_profile_get(tx, "nope", &pu, &verified, display, sizeof(display)), STORE_ENOTFOUND);
    store_tx_rollback(tx);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ_ONE, &tx), 0);
    assert_int_equal(store_user_profile_get(tx, ids[4], &pu, &verified, display, sizeof(display)), 0);
    assert_int_equal(pu.last_login_ms, 7002);
    store_tx_rollback(tx);
}

static void test_tokens_and_audit(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN];
    make_user(f->st, "t@example.com", user, 0);
    struct store_tx *tx = begin(f->st);
    struct store_refresh_token t[3];
    char family[STORE_ID_LEN];
    assert_int_equal(uuid_v4(family), 0);
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        assert_int_equal(uuid_v7(t[i].id), 0);
        memcpy(t[i].user_id, user, STORE_ID_LEN);
        memcpy(t[i].family_id, family, STORE_ID_LEN);
        snprintf(t[i].token_hash, sizeof(t[i].token_hash), "hash-%d", i);
        t[i].expires_at_ms = 99999;
        assert_int_equal(store_token_insert(tx, &t[i]), 0);
    }
    commit(tx);
    /* A failed statement poisons its transaction on both backends. */
    tx = begin(f->st);
    assert_int_equal(store_token_insert(tx, &t[0]), STORE_ECONFLICT);
    assert_int_equal(store_tx_commit(tx), STORE_ECONFLICT);
    tx = begin(f->st);
    struct store_refresh_token got;
    assert_int_equal(store_token_get_by_hash(tx, "hash-1", &got), 0);
    assert_string_equal(got.id, t[1].id);
    assert_int_equal(got.revoked_at_ms, 0);
    assert_int_equal(store_token_revoke(tx, t[0].id, t[1].id, 10), 0);
    assert_int_equal(store_token_get_by_hash(tx, "hash-0", &got), 0);
    assert_int_equal(got.revoked_at_ms, 10);
    assert_string_equal(got.replaced_by, t[1].id);
    int64_t n = 0;
    assert_int_equal(store_token_revoke_family(tx, family, 20, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_token_revoke(tx, "missing", NULL, 1), STORE_ENOTFOUND);

    for (int i = 0; i < 7; i++) {
        struct store_audit a;
        memset(&a, 0, sizeof(a));
        memcpy(a.user_id, user, STORE_ID_LEN);
        snprintf(a.action, sizeof(a.action), "health_data.read");
        snprintf(a.outcome, sizeof(a.outcome), "%s", i == 3 ? "denied" : "success");
        a.created_at_ms = 100 + i;
        assert_int_equal(store_audit_insert(tx, &a), 0);
    }
    struct store_audit *v = NULL;
    struct store_cursor next;
    size_t cnt = 0;
    assert_int_equal(store_audit_list(tx, user, NULL, 5, &v, &cnt, &next), 0);
    assert_int_equal(cnt, 5);
    assert_int_equal(v[0].created_at_ms, 106);
    assert_true(next.set);
    free(v);
    assert_int_equal(store_audit_list(tx, user, &next, 5, &v, &cnt, &next), 0);
    assert_int_equal(cnt, 2);
    assert_false(next.set);
    assert_int_equal(v[1].created_at_ms, 100);
    free(v);
    assert_int_equal(store_token_delete_by_user(tx, user, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(store_audit_delete_by_user(tx, user, &n), 0);
    assert_int_equal(n, 7);
    commit(tx);
}

static int count_cb(void *ctx, const struct store_sample *s)
{
    (void)s;
    (*(int *)ctx)++;
    return 0;
}

static void test_upload_samples_message_one_transaction(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN], upload[STORE_ID_LEN];
    make_user(f->st, "s@example.com", user, 0);
    struct store_sample v[300];

    /* A rolled-back upload leaves nothing: no upload, samples or message. */
    struct store_tx *tx = begin(f->st);
    make_upload(tx, user, upload);
    for (int i = 0; i < 300; i++)
        fill_sample(&v[i], user, upload, i);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, 300, &ins), 0);
    assert_int_equal(ins, 300);
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, "{\"u\":1}", NULL, NULL), 0);
    store_tx_rollback(tx);
    tx = begin(f->st);
    struct store_upload up;
    assert_int_equal(store_upload_get(tx, upload, NULL, &up), STORE_ENOTFOUND);
    int64_t cnt = -1;
    assert_int_equal(store_sample_count(tx, user, NULL, &cnt), 0);
    assert_int_equal(cnt, 0);
    store_tx_rollback(tx);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, 0);

    /* Committed: all three exist. */
    tx = begin(f->st);
    make_upload(tx, user, upload);
    for (int i = 0; i < 300; i++)
        fill_sample(&v[i], user, upload, i);
    v[7].payload = "{\"stages\":{\"deep\":42}}";
    assert_int_equal(store_sample_insert_batch(tx, v, 300, &ins), 0);
    assert_int_equal(ins, 300);
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, "{\"u\":1}", NULL, NULL), 0);
    commit(tx);
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, 1);

    /* Retried upload: same HealthKit uuids, nothing new. */
    tx = begin(f->st);
    char upload2[STORE_ID_LEN];
    make_upload(tx, user, upload2);
    for (int i = 0; i < 300; i++)
        fill_sample(&v[i], user, upload2, i);
    fill_sample(&v[299], user, upload2, 1000); /* one genuinely new sample */
    assert_int_equal(store_sample_insert_batch(tx, v, 300, &ins), 0);
    assert_int_equal(ins, 1);
    /* Samples must belong to an existing user and, when given, their upload. */
    struct store_sample bad;
    fill_sample(&bad, "no-such-user", NULL, 5000);
    assert_int_equal(store_sample_insert_batch(tx, &bad, 1, &ins), STORE_EINVAL);
    char other[STORE_ID_LEN];
    assert_int_equal(uuid_v7(other), 0);
    fill_sample(&bad, user, other, 5001);
    assert_int_equal(store_sample_insert_batch(tx, &bad, 1, &ins), STORE_EINVAL);
    /* An invalid sample fails the batch. */
    v[0].end_ms = v[0].start_ms - 1;
    assert_int_equal(store_sample_insert_batch(tx, v, 1, &ins), STORE_EINVAL);
    assert_int_equal(store_upload_status_set(tx, upload, STORE_UPLOAD_PROCESSING, 0.5, 150, NULL), 0);
    commit(tx);

    tx = begin(f->st);
    assert_int_equal(store_upload_get(tx, upload, user, &up), 0);
    assert_int_equal(up.status, STORE_UPLOAD_PROCESSING);
    assert_string_equal(store_upload_status_name(up.status), "processing");
    assert_true(up.progress == 0.5);
    assert_int_equal(store_upload_get(tx, upload, "someone-else", &up), STORE_ENOTFOUND);
    assert_int_equal(store_sample_count(tx, user, NULL, &cnt), 0);
    assert_int_equal(cnt, 301);
    assert_int_equal(store_sample_count(tx, user, upload, &cnt), 0);
    assert_int_equal(cnt, 300);

    /* Filters and keyset pages over samples. */
    struct store_sample_query q = {
        .user_id = user, .metric_type = "heart_rate", .start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 40};
    struct store_sample *page = NULL;
    size_t n = 0, total = 0;
    struct store_cursor next;
    int64_t prev = INT64_MAX;
    for (;;) {
        assert_int_equal(store_sample_list(tx, &q, &page, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(page[i].metric_type, "heart_rate");
            assert_true(page[i].start_ms < prev);
            prev = page[i].start_ms;
            if (page[i].start_ms == 1700000000000LL + 7 * 60000) {
                assert_non_null(page[i].payload);
                assert_string_equal(page[i].payload, "{\"stages\":{\"deep\":42}}");
            }
            assert_true(isnan(page[i].value2));
            assert_true(page[i].quality_score == 0.9);
            assert_int_equal(page[i].processing_version, STORE_PROCESSING_VERSION);
        }
        total += n;
        store_sample_list_free(page, n);
        if (!next.set)
            break;
        q.after = next;
    }
    assert_int_equal(total, 150);
    int c = 0;
    struct store_sample_query q2 = {.user_id = user,
                                    .source = "phone",
                                    .start_ms = 1700000000000LL,
                                    .end_ms = 1700000000000LL + 30 * 60000,
                                    .ascending = 1};
    assert_int_equal(store_sample_each(tx, &q2, count_cb, &c), 0);
    assert_int_equal(c, 10); /* i in 0..29 with i % 3 == 0 */
    commit(tx);

    /* Deleting the upload cascades to its samples. */
    tx = begin(f->st);
    assert_int_equal(store_upload_delete(tx, upload, "someone-else"), STORE_ENOTFOUND);
    assert_int_equal(store_upload_delete(tx, upload, user), 0);
    assert_int_equal(store_sample_count(tx, user, NULL, &cnt), 0);
    assert_int_equal(cnt, 1);
    struct store_upload *ul = NULL;
    assert_int_equal(store_upload_list(tx, user, NULL, 10, &ul, &n, &next), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ul[0].id, upload2);
    free(ul);
    commit(tx);
}

/* RAW_UPLOAD_RETENTION_DAYS: with retention 0 nothing is purged; with 10
 * days the bodies stored 20 and 11 days ago go (in batches: 2,100 of them
 * cross two batch boundaries) and the recent one, the uploads and their
 * samples stay. */
static void test_raw_upload_retention(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN], up[3][STORE_ID_LEN];
    make_user(f->st, "retention@example.com", user, 0);
    int64_t now = store_now_ms_for_test(), day = 86400000LL;
    const int64_t age[3] = {20, 11, 1};
    unsigned char nonce[24] = {1}, ct[40] = {2};
    struct store_tx *tx = begin(f->st);
    for (int i = 0; i < 3; i++) {
        make_upload(tx, user, up[i]);
        struct store_raw_upload r = {.key_version = 1,
                                     .nonce = nonce,
                                     .nonce_len = sizeof(nonce),
                                     .ciphertext = ct,
                                     .ciphertext_len = sizeof(ct),
                                     .wrapped_dek = nonce,
                                     .wrapped_dek_len = sizeof(nonce),
                                     .created_at_ms = now - age[i] * day};
        memcpy(r.upload_id, up[i], STORE_ID_LEN);
        memcpy(r.user_id, user, STORE_ID_LEN);
        assert_int_equal(store_raw_upload_put(tx, &r), 0);
    }
    for (int i = 0; i < 2100; i++) { /* more old bodies than one batch */
        char id[STORE_ID_LEN];
        make_upload(tx, user, id);
        struct store_raw_upload r = {.key_version = 1,
                                     .nonce = nonce,
                                     .nonce_len = sizeof(nonce),
                                     .ciphertext = ct,
                                     .ciphertext_len = sizeof(ct),
                                     .wrapped_dek = nonce,
                                     .wrapped_dek_len = sizeof(nonce),
                                     .created_at_ms = now - 30 * day - i};
        memcpy(r.upload_id, id, STORE_ID_LEN);
        memcpy(r.user_id, user, STORE_ID_LEN);
        assert_int_equal(store_raw_upload_put(tx, &r), 0);
    }
    commit(tx);
    int64_t n = -1;
    assert_int_equal(store_raw_upload_purge(f->st, now, &n), 0); /* default: keep */
    assert_int_equal(n, 0);

    struct store_options o;
    struct store *st = NULL;
    char err[512];
    fill_opts(&o);
    o.raw_retention_ms = 10 * day;
    assert_int_equal(store_open(f->url, &o, &st, err, sizeof(err)), 0);
    assert_int_equal(store_raw_upload_purge(st, now, &n), 0);
    assert_int_equal(n, 2102);
    assert_int_equal(store_raw_upload_purge(st, now, &n), 0);
    assert_int_equal(n, 0);
    store_close(st);
    tx = begin(f->st);
    struct store_raw_upload rg;
    assert_int_equal(store_raw_upload_get(tx, up[0], &rg), STORE_ENOTFOUND);
    assert_int_equal(store_raw_upload_get(tx, up[1], &rg), STORE_ENOTFOUND);
    assert_int_equal(store_raw_upload_get(tx, up[2], &rg), 0);
    store_raw_upload_clear(&rg);
    struct store_upload u;
    assert_int_equal(store_upload_get(tx, up[0], user, &u), 0);
    store_tx_rollback(tx);
}

static void test_raw_analyses_insights_keys_and_erasure(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN], upload[STORE_ID_LEN];
    make_user(f->st, "r@example.com", user, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, user, upload);
    unsigned char body[1000];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (unsigned char)(i * 7); /* includes zero bytes */
    unsigned char nonce[24] = {0, 1, 2, 0, 255};
    struct store_raw_upload r = {.key_version = 1,
                                 .nonce = nonce,
                                 .nonce_len = sizeof(nonce),
                                 .ciphertext = body,
                                 .ciphertext_len = sizeof(body),
                                 .wrapped_dek = nonce,
                                 .wrapped_dek_len = 5};
    memcpy(r.upload_id, upload, STORE_ID_LEN);
    memcpy(r.user_id, user, STORE_ID_LEN);
    snprintf(r.content_type, sizeof(r.content_type), "application/json");
    assert_int_equal(store_raw_upload_put(tx, &r), 0);

    struct store_analysis a = {.version = 1, .coverage = "{\"days\":7}", .result = "{\"tst\":420}"};
    assert_int_equal(uuid_v7(a.id), 0);
    memcpy(a.user_id, user, STORE_ID_LEN);
    memcpy(a.upload_id, upload, STORE_ID_LEN);
    snprintf(a.kind, sizeof(a.kind), "pat");
    assert_int_equal(store_analysis_insert(tx, &a), 0);
    for (int i = 0; i < 3; i++) {
        struct store_insight in = {
            .narrative = "You slept well.", .body = "{}", .confidence = 0.8, .created_at_ms = 10 + i};
        assert_int_equal(uuid_v7(in.id), 0);
        memcpy(in.user_id, user, STORE_ID_LEN);
        memcpy(in.analysis_id, a.id, STORE_ID_LEN);
        snprintf(in.insight_type, sizeof(in.insight_type), "%s", i == 1 ? "sleep" : "activity");
        snprintf(in.generator, sizeof(in.generator), "builtin");
        assert_int_equal(store_insight_insert(tx, &in), 0);
    }
    unsigned char wk[48] = {9, 0, 9};
    struct store_key k1 = {.version = 1, .wrapped_key = wk, .wrapped_key_len = sizeof(wk)};
    struct store_key k2 = k1;
    k2.version = 2;
    snprintf(k1.algorithm, sizeof(k1.algorithm), "xchacha20poly1305");
    snprintf(k2.algorithm, sizeof(k2.algorithm), "xchacha20poly1305");
    assert_int_equal(store_key_insert(tx, &k1), 0);
    assert_int_equal(store_key_insert(tx, &k2), 0);
    commit(tx);
    tx = begin(f->st);
    assert_int_equal(store_key_insert(tx, &k2), STORE_ECONFLICT);
    store_tx_rollback(tx);

    tx = begin(f->st);
    struct store_raw_upload rg;
    assert_int_equal(store_raw_upload_get(tx, upload, &rg), 0);
    assert_int_equal(rg.ciphertext_len, sizeof(body));
    assert_memory_equal(rg.ciphertext, body, sizeof(body));
    assert_int_equal(rg.nonce_len, sizeof(nonce));
    assert_memory_equal(rg.nonce, nonce, sizeof(nonce));
    assert_int_equal(rg.wrapped_dek_len, 5);
    store_raw_upload_clear(&rg);
    struct store_analysis ag;
    assert_int_equal(store_analysis_get(tx, a.id, user, &ag), 0);
    assert_string_equal(ag.result, "{\"tst\":420}");
    assert_string_equal(ag.coverage, "{\"days\":7}");
    store_analysis_clear(&ag);
    assert_int_equal(store_analysis_get(tx, a.id, "other", &ag), STORE_ENOTFOUND);
    struct store_analysis *al = NULL;
    size_t n = 0;
    assert_int_equal(store_analysis_list(tx, user, NULL, 10, &al, &n, NULL), 0);
    assert_int_equal(n, 1);
    store_analysis_list_free(al, n);
    struct store_insight *il = NULL;
    struct store_cursor next;
    assert_int_equal(store_insight_list(tx, user, NULL, NULL, 2, &il, &n, &next), 0);
    assert_int_equal(n, 2);
    assert_int_equal(il[0].created_at_ms, 12);
    assert_string_equal(il[0].narrative, "You slept well.");
    assert_true(next.set);
    store_insight_list_free(il, n);
    assert_int_equal(store_insight_list(tx, user, "sleep", NULL, 10, &il, &n, &next), 0);
    assert_int_equal(n, 1);
    struct store_insight ig;
    assert_int_equal(store_insight_get(tx, il[0].id, user, &ig), 0);
    assert_string_equal(ig.insight_type, "sleep");
    store_insight_clear(&ig);
    store_insight_list_free(il, n);
    struct store_key kg;
    assert_int_equal(store_key_get_active(tx, &kg), 0);
    assert_int_equal(kg.version, 2);
    assert_int_equal(kg.wrapped_key_len, sizeof(wk));
    assert_memory_equal(kg.wrapped_key, wk, sizeof(wk));
    store_key_clear(&kg);
    assert_int_equal(store_key_status_set(tx, 2, "retired"), 0);
    assert_int_equal(store_key_get_active(tx, &kg), 0);
    assert_int_equal(kg.version, 1);
    store_key_clear(&kg);
    commit(tx);

    /* Erasure: the user and everything derived from them. */
    tx = begin(f->st);
    struct store_sample s;
    fill_sample(&s, user, upload, 1);
    assert_int_equal(store_sample_insert_batch(tx, &s, 1, NULL), 0);
    assert_int_equal(store_user_delete(tx, user), 0);
    assert_int_equal(store_user_delete(tx, user), STORE_ENOTFOUND);
    commit(tx);
    tx = begin(f->st);
    int64_t cnt = -1;
    assert_int_equal(store_sample_count(tx, user, NULL, &cnt), 0);
    assert_int_equal(cnt, 0);
    assert_int_equal(store_raw_upload_get(tx, upload, &rg), STORE_ENOTFOUND);
    assert_int_equal(store_analysis_get(tx, a.id, NULL, &ag), STORE_ENOTFOUND);
    assert_int_equal(store_insight_list(tx, user, NULL, NULL, 10, &il, &n, NULL), 0);
    assert_int_equal(n, 0);
    free(il);
    commit(tx);
}

struct order_ctx {
    int64_t n, prev;
    int asc, bad;
};

static int order_cb(void *ctx, const struct store_sample *x)
{
    struct order_ctx *o = ctx;
    if (o->n > 0 && (o->asc ? x->start_ms <= o->prev : x->start_ms >= o->prev))
        o->bad++;
    o->prev = x->start_ms;
    o->n++;
    return 0;
}

/* Unlimited streams (exports, analysis windows) cross internal page
 * boundaries without losing or repeating a row. */
static void test_sample_stream_crosses_pages(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN];
    make_user(f->st, "stream@example.com", user, 0);
    enum { N = 12345 };
    struct store_sample *v = calloc(N, sizeof(*v));
    for (int i = 0; i < N; i++)
        fill_sample(&v[i], user, NULL, i);
    struct store_tx *tx = begin(f->st);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, N, &ins), 0);
    assert_int_equal(ins, N);
    commit(tx);
    free(v);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    for (int asc = 0; asc < 2; asc++) {
        struct order_ctx o = {.asc = asc};
        struct store_sample_query q = {.user_id = user, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = asc};
        assert_int_equal(store_sample_each(tx, &q, order_cb, &o), 0);
        assert_int_equal(o.n, N);
        assert_int_equal(o.bad, 0);
    }
    store_tx_rollback(tx);
}

/* The analysis window read (store_sample_window): rows of the listed types
 * in (start_ms, id) order inside [from, to), their rank and offset, the
 * payload only where asked, other types counted, other users excluded, and
 * rows stored before migration 004 (offset NULL) read from their payload. */
enum { WN = 600 };
static const int64_t WT0 = 1700000000000LL;
static const char *const wtypes[] = {"steps", "heart_rate", "sleep_stage", "active_energy", "heart_rate"};

static void window_sample(struct store_sample *x, const char *user, int i, char *payload, size_t cap)
{
    memset(x, 0, sizeof(*x));
    snprintf(x->user_id, sizeof(x->user_id), "%s", user);
    snprintf(x->metric_type, sizeof(x->metric_type), "%s", wtypes[i % 5]);
    x->start_ms = WT0 + (int64_t)(i / 2) * 60000; /* pairs share a start: id decides */
    x->end_ms = x->start_ms + (i % 5 == 2 ? 1800000 : 60000);
    x->value = i % 5 == 4 ? NAN : (double)i + 0.25;
    x->value2 = NAN;
    x->quality_score = NAN;
    static const char *const src[] = {"Apple Watch", "Health", "Other App", "my watch app"};
    snprintf(x->source, sizeof(x->source), "%s", src[i % 4]);
    snprintf(x->device, sizeof(x->device), "%s", i % 4 == 1 ? "iPhone15,2" : "");
    snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%.8s-w-%d", user, i);
    if (i % 6 == 5) {
        x->payload = NULL;
    } else {
        snprintf(payload, cap, "{\"tz_offset_min\":%d%s}", -300 + (i % 3) * 60,
                 i % 5 == 2 ? ",\"category\":\"asleep_core\"" : "");
        x->payload = payload;
    }
}

static int wexpected_rank(int i) { return i % 4 == 0 ? 0 : i % 4 == 1 ? 1 : 2; }

static void test_sample_window(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], err[512];
    make_user(f->st, "window-a@example.com", a, 0);
    make_user(f->st, "window-b@example.com", b, 0);
    struct store_sample *v = calloc(WN, sizeof(*v));
    char(*pl)[96] = calloc(WN, sizeof(*pl));
    assert_non_null(v);
    assert_non_null(pl);
    for (int i = 0; i < WN; i++)
        window_sample(&v[i], a, i, pl[i], sizeof(pl[i]));
    struct store_tx *tx = begin(f->st);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, WN, &ins), 0);
    assert_int_equal(ins, WN);
    /* Another user's rows at the same times. */
    struct store_sample other[20];
    char opl[20][96];
    for (int i = 0; i < 20; i++)
        window_sample(&other[i], b, i * 7, opl[i], sizeof(opl[i]));
    assert_int_equal(store_sample_insert_batch(tx, other, 20, &ins), 0);
    commit(tx);
    /* The first 100 minutes as if stored before 004: no offset column. */
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE health_samples SET utc_offset_min = NULL WHERE start_ms < %lld",
             (long long)(WT0 + 100 * 60000));
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);

    static const char *const types[] = {"steps", "heart_rate", "sleep_stage"};
    static const char *const ranks[] = {"Watch", "iPhone"};
    struct store_window_query q = {.user_id = a,
                                   .types = types,
                                   .n_types = 3,
                                   .payload_types = 1u << 2,
                                   .ranks = ranks,
                                   .n_ranks = 2,
                                   .from_ms = WT0 + 10 * 60000,
                                   .to_ms = WT0 + 250 * 60000};
    struct store_window w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    for (int round = 0; round < 2; round++) { /* the struct is reusable */
        assert_int_equal(store_sample_window(tx, &q, &w), 0);
        size_t k = 0, others = 0;
        for (int i = 0; i < WN; i++) {
            if (v[i].start_ms < q.from_ms || v[i].start_ms >= q.to_ms)
                continue;
            int t = i % 5 == 4 ? 1 : i % 5 == 3 ? -1 : i % 5;
            if (t < 0) {
                others++;
                continue;
            }
            assert_true(k < w.n);
            assert_int_equal(w.type[k], t);
            assert_int_equal(w.start_ms[k], v[i].start_ms);
            assert_int_equal(w.end_ms[k], v[i].end_ms);
            if (isnan(v[i].value))
                assert_true(isnan(w.value[k]));
            else
                assert_true(w.value[k] == v[i].value);
            assert_int_equal(w.rank[k], wexpected_rank(i));
            assert_int_equal(w.offset_min[k], i % 6 == 5 ? 0 : -300 + (i % 3) * 60);
            if (t == 2 && v[i].payload != NULL) {
                assert_int_not_equal(w.payload[k], STORE_WINDOW_NO_PAYLOAD);
                assert_string_equal(w.text + w.payload[k], v[i].payload);
            } else {
                assert_int_equal(w.payload[k], STORE_WINDOW_NO_PAYLOAD);
            }
            k++;
        }
        assert_int_equal(w.n, k);
        assert_int_equal(w.n_other, others);
        assert_true(k > 300 && others > 50);
    }
    /* The bounds: from is inclusive, to exclusive. */
    q.from_ms = WT0 + 3 * 60000;
    q.to_ms = WT0 + 4 * 60000;
    assert_int_equal(store_sample_window(tx, &q, &w), 0);
    assert_int_equal(w.n + w.n_other, 2); /* samples 6 and 7 */
    assert_int_equal(w.n, 2);
    assert_int_equal(w.type[0], 1); /* sample 6: heart_rate */
    assert_int_equal(w.type[1], 2); /* sample 7: sleep_stage */
    /* max_rows: at most one row more than asked for, all types counted. */
    q.from_ms = INT64_MIN;
    q.to_ms = INT64_MAX;
    q.max_rows = 10;
    assert_int_equal(store_sample_window(tx, &q, &w), 0);
    assert_int_equal(w.n + w.n_other, 11);
    q.max_rows = 0;
    /* The other user sees only theirs. */
    q.user_id = b;
    assert_int_equal(store_sample_window(tx, &q, &w), 0);
    assert_int_equal(w.n + w.n_other, 20);
    /* Bad queries. */
    q.n_types = 0;
    assert_int_equal(store_sample_window(tx, &q, &w), STORE_EINVAL);
    q.n_types = 3;
    q.payload_types = 1u << 3;
    assert_int_equal(store_sample_window(tx, &q, &w), STORE_EINVAL);
    q.payload_types = 0;
    q.n_ranks = STORE_WINDOW_MAX_RANKS + 1;
    assert_int_equal(store_sample_window(tx, &q, &w), STORE_EINVAL);
    assert_int_equal(w.n, 0);
    store_tx_rollback(tx);
    store_window_free(&w);
    free(v);
    free(pl);
}

/* The analysis job reads its window through store_sample_window; the
 * reference reader streams whole rows (store_sample_each) and parses each
 * payload. On the same data both must build the same window, bit for bit:
 * a week and a half of watch and phone steps (overlapping), heart rate, HRV
 * with NULL values, sleep stages, a type the window ignores, a UTC offset
 * change, another user's rows, and rows stored before migration 004. */
static void compare_series(const double *x, const double *y, size_t n)
{
    assert_true((x == NULL) == (y == NULL));
    if (x != NULL)
        assert_memory_equal(x, y, n * sizeof(double));
}

/* store_sample_newest: an upload's (or the user's) newest rows by
 * (start_ms, id) descending, with offsets from the column or, for rows
 * stored before 004, from the payload; other users' rows never. */
/*
 * sample_days (migration 006) against the rows it packs: for the same data
 * the window read from days and the one read row by row must agree field by
 * field, through several uploads that overlap in time (ties on start_ms
 * across uploads), samples spanning midnight UTC, duplicates that go in
 * once, payloads that are only the offset and payloads that are more, the
 * 4096-record segment split, an upload deleted through the store, uploads
 * written by a release that knew nothing of days (the window falls back to
 * the rows until healed) and an upload deleted by such a release.
 */
static void days_sample(struct store_sample *x, const char *user, const char *upload, int64_t t0, int i, char *payload,
                        size_t cap)
{
    static const char *const types[] = {"steps", "heart_rate", "sleep_stage", "active_energy", "steps"};
    static const char *const src[] = {"Apple Watch", "Health", "Other App", "my watch app"};
    memset(x, 0, sizeof(*x));
    snprintf(x->user_id, sizeof(x->user_id), "%s", user);
    snprintf(x->upload_id, sizeof(x->upload_id), "%s", upload);
    snprintf(x->metric_type, sizeof(x->metric_type), "%s", types[i % 5]);
    x->start_ms = t0 + (int64_t)(i % 100000 / 3) * 60000; /* triples share a start */
    x->end_ms = x->start_ms + (i % 5 == 2 ? 5400000 : 60000);
    x->value = i % 7 == 6 ? NAN : (double)i * 1.5 + 0.125;
    x->value2 = NAN;
    x->quality_score = NAN;
    snprintf(x->source, sizeof(x->source), "%s", src[i % 4]);
    snprintf(x->device, sizeof(x->device), "%s", i % 4 == 1 ? "iPhone15,2" : i % 4 == 2 ? "Watch6,1" : "");
    snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%.8s-%.8s-d-%d", user, upload, i);
    if (i % 6 == 5) {
        x->payload = NULL;
    } else {
        snprintf(payload, cap, "{\"tz_offset_min\":%d%s}", -300 + (i % 3) * 60,
                 i % 5 == 2    ? ",\"category\":\"asleep_rem\""
                 : i % 11 == 0 ? ",\"note\":\"x\""
                               : "");
        x->payload = payload;
    }
}

/* Steps, heart rate and sleep stages (with payloads), Watch before iPhone,
 * all time: the window several tests compare with the stream. */
static struct store_window_query all_time_window(const char *user)
{
    static const char *const types[] = {"steps", "heart_rate", "sleep_stage"};
    static const char *const ranks[] = {"Watch", "iPhone"};
    struct store_window_query q = {.user_id = user,
                                   .types = types,
                                   .n_types = 3,
                                   .payload_types = 1u << 2,
                                   .ranks = ranks,
                                   .n_ranks = 2,
                                   .from_ms = INT64_MIN,
                                   .to_ms = INT64_MAX};
    return q;
}

static void days_insert(struct store *st, const char *user, const char *upload, int64_t t0, int first, int n,
                        size_t expect)
{
    struct store_sample *v = calloc((size_t)n, sizeof(*v));
    char(*pl)[96] = calloc((size_t)n, sizeof(*pl));
    assert_non_null(v);
    assert_non_null(pl);
    for (int i = 0; i < n; i++)
        days_sample(&v[i], user, upload, t0, first + i, pl[i], sizeof(pl[i]));
    struct store_tx *tx = begin(st);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, (size_t)n, &ins), 0);
    assert_int_equal(ins, expect);
    commit(tx);
    free(v);
    free(pl);
}

/* Both reads of q in one transaction; they must agree. Returns w.n. */
static size_t days_match_rows(struct store *st, const struct store_window_query *q)
{
    struct store_window a, b;
    struct store_tx *tx = NULL;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_window(tx, q, &a), 0);
    assert_int_equal(store_sample_window_rows(tx, q, &b), 0);
    store_tx_rollback(tx);
    assert_int_equal(a.n, b.n);
    assert_int_equal(a.n_other, b.n_other);
    for (size_t k = 0; k < a.n; k++) {
        assert_int_equal(a.type[k], b.type[k]);
        assert_int_equal(a.start_ms[k], b.start_ms[k]);
        assert_int_equal(a.end_ms[k], b.end_ms[k]);
        assert_memory_equal(&a.value[k], &b.value[k], sizeof(double));
        assert_int_equal(a.rank[k], b.rank[k]);
        assert_int_equal(a.offset_min[k], b.offset_min[k]);
        assert_int_equal(a.payload[k] == STORE_WINDOW_NO_PAYLOAD, b.payload[k] == STORE_WINDOW_NO_PAYLOAD);
        if (a.payload[k] != STORE_WINDOW_NO_PAYLOAD)
            assert_string_equal(a.text + a.payload[k], b.text + b.payload[k]);
    }
    size_t n = a.n;
    store_window_free(&a);
    store_window_free(&b);
    return n;
}

/*
 * SAMPLE_BLOCK_FORMAT (store_options.block_format): a store writes blocks
 * in the format it is told (1 while a release that reads only format 1
 * runs beside it) and reads both; dedup sees the keys of either, so the
 * same samples sent again through a format-2 store store nothing. On
 * SQLite the file shows each day's format.
 */
static void test_sample_block_format_option(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], up[STORE_ID_LEN];
    make_user(f->st, "block-format@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, up);
    commit(tx);
    const int64_t t0 = 1718236800000LL; /* a UTC midnight */
    enum { N = 60 };
    struct store_sample v[2][N];
    for (int fmt = 1; fmt <= 2; fmt++) {
        for (int i = 0; i < N; i++) {
            struct store_sample *x = &v[fmt - 1][i];
            fill_sample(x, a, up, i);
            x->start_ms = t0 + (int64_t)(fmt - 1) * 86400000 + (int64_t)i * 60000;
            x->end_ms = x->start_ms + 60000;
            x->payload = "{\"tz_offset_min\":-240,\"hk_type\":\"HKQuantityTypeIdentifierHeartRate\"}";
            apple_export_content_key("HKQuantityTypeIdentifierHeartRate", x->start_ms, x->end_ms, "61", "count/min",
                                     "Apple Watch", x->hk_uuid, sizeof(x->hk_uuid));
        }
        struct store_options o;
        struct store *st = NULL;
        char err[256];
        fill_opts(&o);
        o.block_format = fmt;
        assert_int_equal(store_open(f->url, &o, &st, err, sizeof(err)), 0);
        tx = begin(st);
        size_t ins = 0;
        assert_int_equal(store_sample_insert_batch(tx, v[fmt - 1], N, &ins), 0);
        assert_int_equal(ins, N);
        commit(tx);
        store_close(st);
    }
    /* Back on the fixture's store (format 2): both days read, and a resend
     * of both stores nothing. */
    struct store_options o;
    struct store *st = NULL;
    char err[256];
    fill_opts(&o);
    assert_int_equal(store_open(f->url, &o, &st, err, sizeof(err)), 0);
    int64_t count = 0;
    tx = begin(st);
    assert_int_equal(store_sample_count(tx, a, NULL, &count), 0);
    assert_int_equal(count, 2 * N);
    for (int fmt = 1; fmt <= 2; fmt++) {
        size_t ins = 99;
        assert_int_equal(store_sample_insert_batch(tx, v[fmt - 1], N, &ins), 0);
        assert_int_equal(ins, 0);
    }
    struct store_sample_query q = {.user_id = a, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 1000};
    struct store_sample *got = NULL;
    struct store_cursor next;
    size_t n = 0;
    assert_int_equal(store_sample_list(tx, &q, &got, &n, &next), 0);
    assert_int_equal(n, 2 * N);
    for (size_t i = 0; i < n; i++) { /* newest first: day 2's samples, then day 1's */
        const struct store_sample *w = &v[i < N ? 1 : 0][N - 1 - i % N];
        assert_int_equal(got[i].start_ms, w->start_ms);
        assert_string_equal(got[i].hk_uuid, w->hk_uuid);
        assert_string_equal(got[i].payload, w->payload);
    }
    store_sample_list_free(got, n);
    commit(tx);
    store_close(st);
    o.block_format = BLOCK_FORMAT + 1;
    assert_int_equal(store_open(f->url, &o, &st, err, sizeof(err)), STORE_EINVAL);
    if (!is_pg()) {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT day, data FROM sample_days ORDER BY day", -1, &s, NULL),
                         SQLITE_OK);
        int days = 0;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const unsigned char *p = sqlite3_column_blob(s, 1);
            size_t len = (size_t)sqlite3_column_bytes(s, 1);
            assert_true(len > 52 + 4);
            assert_int_equal(p[0], 0xD3);
            assert_memory_equal(p + 52, "CB", 2);
            assert_int_equal(p[52 + 2], ++days); /* day 1 in format 1, day 2 in format 2 */
        }
        sqlite3_finalize(s);
        sqlite3_close(db);
        assert_int_equal(days, 2);
    }
}

/*
 * Since issue #19 sample_days segments are sample blocks (0xD2); a segment
 * the block format cannot hold (an infinite value) is still written the
 * 0xD1 way, and rows holding both kinds read the same as the rows. On
 * SQLite the file is also looked at: both kinds present, and the block
 * segments of minute data far below the 36 bytes a record of 0xD1 costs.
 */
static void test_sample_days_block_segments(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    store_samples_previous_release_for_test(1); /* rows and window copies, as before blocks */
    char a[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN];
    make_user(f->st, "days-blocks@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    commit(tx);
    const int64_t t0 = 1718236800000LL; /* a UTC midnight */
    enum { N = 2880 };                  /* two days of minute heart rate */
    struct store_sample *v = calloc(N, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < N; i++) {
        struct store_sample *x = &v[i];
        snprintf(x->user_id, sizeof(x->user_id), "%s", a);
        snprintf(x->upload_id, sizeof(x->upload_id), "%s", i < N - 10 ? u1 : u2);
        snprintf(x->metric_type, sizeof(x->metric_type), "%s", i % 3 ? "heart_rate" : "steps");
        x->start_ms = t0 + (int64_t)(i / 2) * 60000;
        x->end_ms = x->start_ms + 60000;
        x->value = i % 3 ? 55 + (double)(i % 40) : (double)(i % 90);
        x->value2 = x->quality_score = NAN;
        snprintf(x->source, sizeof(x->source), "Apple Watch");
        snprintf(x->hk_uuid, sizeof(x->hk_uuid), "blk-%d", i);
        x->payload = i % 2 ? "{\"tz_offset_min\":-300}" : NULL;
    }
    v[N - 3].value = INFINITY; /* u2's segment cannot be a block */
    tx = begin(f->st);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, N, &ins), 0);
    assert_int_equal(ins, N);
    commit(tx);
    static const char *const types[] = {"heart_rate", "steps"};
    static const char *const ranks[] = {"Watch"};
    struct store_window_query q = {.user_id = a,
                                   .types = types,
                                   .n_types = 2,
                                   .payload_types = 1u,
                                   .ranks = ranks,
                                   .n_ranks = 1,
                                   .from_ms = INT64_MIN,
                                   .to_ms = INT64_MAX};
    assert_int_equal(days_match_rows(f->st, &q), N);
    q.from_ms = t0 + 600 * 60000;
    q.to_ms = t0 + 1500 * 60000;
    q.payload_types = 0;
    assert_int_equal(days_match_rows(f->st, &q), 1680); /* minutes 600..1439 */
    if (!is_pg()) {
        sqlite3 *db = NULL;
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT data FROM sample_days", -1, &s, NULL), SQLITE_OK);
        int kinds = 0;
        size_t block_bytes = 0, block_recs = 0;
        while (sqlite3_step(s) == SQLITE_ROW) {
            const unsigned char *p = sqlite3_column_blob(s, 0);
            size_t n = (size_t)sqlite3_column_bytes(s, 0);
            for (size_t at = 0; at + 16 <= n;) {
                uint32_t len = (uint32_t)p[at + 12] | (uint32_t)p[at + 13] << 8 | (uint32_t)p[at + 14] << 16 |
                               (uint32_t)p[at + 15] << 24;
                uint32_t recs = (uint32_t)p[at + 8] | (uint32_t)p[at + 9] << 8 | (uint32_t)p[at + 10] << 16 |
                                (uint32_t)p[at + 11] << 24;
                assert_true(p[at] == 0xD1 || p[at] == 0xD2);
                kinds |= p[at] == 0xD1 ? 1 : 2;
                if (p[at] == 0xD2) {
                    block_bytes += len;
                    block_recs += recs;
                }
                assert_true(len > 0);
                at += len;
            }
        }
        sqlite3_finalize(s);
        sqlite3_close(db);
        assert_int_equal(kinds, 3);
        printf("block segments: %zu bytes for %zu samples (%.2f a sample)\n", block_bytes, block_recs,
               (double)block_bytes / (double)block_recs);
        assert_true(block_recs >= N - 10);
        assert_true(block_bytes < block_recs * 8);
    }
    free(v);
}

static void test_sample_days_match_rows(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    store_samples_previous_release_for_test(1); /* rows and window copies, as before blocks */
    char a[STORE_ID_LEN], b[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN], u3[STORE_ID_LEN], u4[STORE_ID_LEN],
        ub[STORE_ID_LEN], err[512], sql[512];
    make_user(f->st, "days-a@example.com", a, 0);
    make_user(f->st, "days-b@example.com", b, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    make_upload(tx, a, u3);
    make_upload(tx, a, u4);
    make_upload(tx, b, ub);
    commit(tx);
    /* 22:00 UTC: u1's 9,000 samples (3,000 minutes) cross two midnights
     * and more than one 4096-record segment per day. */
    const int64_t t0 = 1795000000000LL - 1795000000000LL % 86400000LL + 22 * 3600000LL;
    days_insert(f->st, a, u1, t0, 0, 9000, 9000);
    /* u2 overlaps u1's second day: same starts, later ids. */
    days_insert(f->st, a, u2, t0 + 86400000LL, 100000, 1200, 1200);
    /* u3 on a later day; u4 repeats u1's first 500 samples: none go in. */
    days_insert(f->st, a, u3, t0 + 4 * 86400000LL, 200000, 600, 600);
    {
        struct store_sample *v = calloc(500, sizeof(*v));
        char(*pl)[96] = calloc(500, sizeof(*pl));
        assert_non_null(v);
        assert_non_null(pl);
        for (int i = 0; i < 500; i++) {
            days_sample(&v[i], a, u1, t0, i, pl[i], sizeof(pl[i]));
            snprintf(v[i].upload_id, sizeof(v[i].upload_id), "%s", u4);
        }
        /* and two new ones in the same statement */
        days_sample(&v[498], a, u4, t0, 300000, pl[498], sizeof(pl[498]));
        days_sample(&v[499], a, u4, t0, 300001, pl[499], sizeof(pl[499]));
        tx = begin(f->st);
        size_t ins = 0;
        assert_int_equal(store_sample_insert_batch(tx, v, 500, &ins), 0);
        assert_int_equal(ins, 2);
        commit(tx);
        free(v);
        free(pl);
    }
    days_insert(f->st, b, ub, t0, 0, 300, 300); /* another user, same times */
    /* One statement with two uploads interleaved at the same starts: ties
     * stay in insertion order. */
    {
        char ub2[STORE_ID_LEN];
        tx = begin(f->st);
        make_upload(tx, b, ub2);
        commit(tx);
        struct store_sample v[40];
        char pl[40][96];
        for (int i = 0; i < 40; i++) {
            days_sample(&v[i], b, i % 2 ? ub2 : ub, t0, 500 + i, pl[i], sizeof(pl[i]));
            if (v[i].payload != NULL && (500 + i) % 5 == 2) /* a sleep row whose payload is just the offset */
                snprintf(pl[i], sizeof(pl[i]), "{\"tz_offset_min\":%d}", -300 + (500 + i) % 3 * 60);
        }
        tx = begin(f->st);
        size_t ins = 0;
        assert_int_equal(store_sample_insert_batch(tx, v, 40, &ins), 0);
        assert_int_equal(ins, 40);
        commit(tx);
    }
    /* Two users in one statement with the same HealthKit uuid: a's is a
     * duplicate of one of u1's samples, b's is new (uniqueness is per user). */
    {
        struct store_sample v[2];
        char pl[2][96];
        days_sample(&v[0], a, u1, t0, 5000, pl[0], sizeof(pl[0])); /* b has no 5000 */
        days_sample(&v[1], b, ub, t0, 5000, pl[1], sizeof(pl[1]));
        snprintf(v[1].hk_uuid, sizeof(v[1].hk_uuid), "%s", v[0].hk_uuid);
        tx = begin(f->st);
        size_t ins = 0;
        assert_int_equal(store_sample_insert_batch(tx, v, 2, &ins), 0);
        assert_int_equal(ins, 1);
        commit(tx);
    }
    /* Many small inserts into the same days: past DAY_MAX_ROWS rows a day
     * they are merged, and the window is the same. */
    for (int k = 0; k < 40; k++)
        days_insert(f->st, b, ub, t0, 1000 + k * 12, 12, 12);

    struct store_window_query q = all_time_window(a);
    size_t all = days_match_rows(f->st, &q);
    assert_true(all > 7000);
    q.from_ms = t0 + 86400000LL + 7 * 60000; /* inside a day, both bounds */
    q.to_ms = t0 + 2 * 86400000LL + 3 * 60000;
    assert_true(days_match_rows(f->st, &q) > 1000);
    q.payload_types = 0;
    q.n_ranks = 0;
    q.max_rows = 100;
    assert_int_equal(days_match_rows(f->st, &q) > 0, 1);
    q.max_rows = 0;
    q.n_ranks = 2;
    q.payload_types = 1u << 2;
    q.from_ms = INT64_MIN;
    q.to_ms = INT64_MAX;
    q.user_id = b;
    assert_int_equal(days_match_rows(f->st, &q), 240 + 32 + 1 + 384); /* active_energy: other */
    q.user_id = a;

    /* Deleted through the store: its days are written again without it. */
    tx = begin(f->st);
    assert_int_equal(store_upload_delete(tx, u2, a), 0);
    commit(tx);
    size_t after = days_match_rows(f->st, &q);
    assert_true(after < all);

    /* As if stored by a release before 006: days gone, uploads unmarked.
     * The window reads rows until the user is healed. */
    snprintf(sql, sizeof(sql), "DELETE FROM sample_days WHERE user_id = '%s'", a);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql), "UPDATE uploads SET days_indexed = 0 WHERE user_id = '%s'", a);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    assert_int_equal(days_match_rows(f->st, &q), after);
    /* An upload still being written ('processing', as an older release's
     * import is) is left pending: its later batches would miss the days. */
    snprintf(sql, sizeof(sql), "UPDATE uploads SET status = 'processing' WHERE id = '%s'", u4);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    int64_t healed = -1;
    tx = begin(f->st);
    assert_int_equal(store_sample_days_heal(tx, a, &healed), 0);
    commit(tx);
    assert_int_equal(healed, 2);                         /* u1, u3 */
    assert_int_equal(days_match_rows(f->st, &q), after); /* rows still: u4 pending */
    snprintf(sql, sizeof(sql), "UPDATE uploads SET status = 'completed' WHERE id = '%s'", u4);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    tx = begin(f->st);
    assert_int_equal(store_sample_days_heal(tx, a, &healed), 0);
    commit(tx);
    assert_int_equal(healed, 1); /* u4 */
    tx = begin(f->st);
    assert_int_equal(store_sample_days_heal(tx, a, &healed), 0);
    commit(tx);
    assert_int_equal(healed, 0);
    assert_int_equal(days_match_rows(f->st, &q), after);

    /* The window now comes from the days: rows removed behind the store's
     * back still show... */
    snprintf(sql, sizeof(sql), "DELETE FROM health_samples WHERE upload_id = '%s' AND metric_type = 'steps'", u3);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    struct store_window w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_window(tx, &q, &w), 0);
    assert_int_equal(w.n, after);
    store_tx_rollback(tx);
    /* ...but an upload deleted by a release that knew nothing of days (its
     * row and samples gone, its segments left) is not in the window. */
    snprintf(sql, sizeof(sql), "DELETE FROM health_samples WHERE upload_id = '%s'", u3);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql), "DELETE FROM uploads WHERE id = '%s'", u3);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    size_t without_u3 = days_match_rows(f->st, &q);
    assert_true(without_u3 < after && without_u3 > 5000);

    /* Erasure takes the days with the user. */
    tx = begin(f->st);
    assert_int_equal(store_user_delete(tx, a), 0);
    commit(tx);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_window(tx, &q, &w), 0);
    assert_int_equal(w.n + w.n_other, 0);
    store_tx_rollback(tx);
    store_window_free(&w);
}

/* Writers of one user's samples at once (PostgreSQL: separate sessions
 * that take the user's lock in turn): the days still read in (start_ms,
 * id) order, equal to the rows. */
struct days_writer {
    struct store *st;
    const char *user, *upload;
    int64_t t0;
    int base;
    int failed;
};

static void *days_write_loop(void *arg)
{
    struct days_writer *d = arg;
    struct store_sample v[30];
    char pl[30][96];
    for (int b = 0; b < 20 && !d->failed; b++) {
        for (int i = 0; i < 30; i++)
            days_sample(&v[i], d->user, d->upload, d->t0, d->base + b * 30 + i, pl[i], sizeof(pl[i]));
        struct store_tx *tx = NULL;
        size_t ins = 0;
        if (store_tx_begin(d->st, STORE_TX_WRITE, &tx) != 0 || store_sample_insert_batch(tx, v, 30, &ins) != 0 ||
            store_tx_commit(tx) != 0 || ins != 30)
            d->failed = 1;
    }
    return NULL;
}

static void test_sample_days_concurrent_writers(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    store_samples_previous_release_for_test(1); /* rows and window copies, as before blocks */
    char a[STORE_ID_LEN], up[4][STORE_ID_LEN];
    make_user(f->st, "days-conc@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    for (int i = 0; i < 4; i++)
        make_upload(tx, a, up[i]);
    commit(tx);
    const int64_t t0 = 1795000000000LL - 1795000000000LL % 86400000LL + 23 * 3600000LL;
    struct days_writer w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        /* Each writer's samples start at t0: ties across writers. */
        w[i] = (struct days_writer){f->st, a, up[i], t0, i * 100000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, days_write_loop, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failed, 0);
    }
    struct store_window_query q = all_time_window(a);
    assert_int_equal(days_match_rows(f->st, &q), 4 * 600 * 4 / 5);
}

/*
 * Series aggregates (migration 011) against the samples: for every query,
 * store_series_aggregate must give bit for bit what bucketing the window's
 * rows in (start, id) order gives (what GET /api/v1/series did before the
 * cache) — on first read (filled), on the next (cached), after an upload
 * delete, after a re-upload of the same samples, and after erasure.
 */
static int64_t sql_count(struct store *st, const char *sql)
{
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_tx_stmt(tx, sql, &s), 0);
    assert_int_equal(db_step(s), DB_ROW);
    int64_t n = db_col_int64(s, 0);
    db_stmt_reset(s);
    store_tx_rollback(tx);
    return n;
}

struct series_ref {
    int64_t cnt[800], samples;
    double sum[800], mn[800], mx[800];
};

/* What views.c did before the cache: every sample of the window. */
static void series_reference(struct store *st, const struct store_series_query *q, struct series_ref *r)
{
    const char *types[1] = {q->type};
    struct store_window_query wq = {
        .user_id = q->user_id, .types = types, .n_types = 1, .from_ms = q->from_ms, .to_ms = q->to_ms};
    struct store_window w;
    struct store_tx *tx = NULL;
    memset(&w, 0, sizeof(w));
    memset(r, 0, sizeof(*r));
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_window(tx, &wq, &w), 0);
    store_tx_rollback(tx);
    for (size_t i = 0; i < w.n; i++) {
        double v = w.value[i];
        if (!isfinite(v))
            continue;
        size_t b = (size_t)((w.start_ms[i] - q->from_ms) / q->bucket_ms);
        if (b >= q->n_buckets)
            continue;
        if (r->cnt[b] == 0 || v < r->mn[b])
            r->mn[b] = v;
        if (r->cnt[b] == 0 || v > r->mx[b])
            r->mx[b] = v;
        r->sum[b] += v;
        r->cnt[b]++;
    }
    r->samples = (int64_t)w.n;
    store_window_free(&w);
}

/* Cached and uncached agree; returns whether the cache answered. */
static int series_same(struct store *st, const char *user, const char *type, int64_t from, int64_t to, int64_t bucket)
{
    struct store_series_query q = {user, type, from, to, bucket, (size_t)((to - from + bucket - 1) / bucket)};
    assert_true(q.n_buckets <= 800);
    static struct series_ref want, got;
    series_reference(st, &q, &want);
    memset(&got, 0, sizeof(got));
    struct store_series_buckets b = {got.cnt, got.sum, got.mn, got.mx, 0};
    int hit = -1;
    assert_int_equal(store_series_aggregate(st, &q, &b, &hit), 0);
    if (!hit)
        return 0;
    assert_int_equal(b.samples, want.samples);
    for (size_t i = 0; i < q.n_buckets; i++) {
        assert_int_equal(got.cnt[i], want.cnt[i]);
        assert_memory_equal(&got.sum[i], &want.sum[i], sizeof(double));
        if (want.cnt[i] > 0) {
            assert_memory_equal(&got.mn[i], &want.mn[i], sizeof(double));
            assert_memory_equal(&got.mx[i], &want.mx[i], sizeof(double));
        }
    }
    return 1;
}

static void series_insert(struct store *st, const char *user, const char *upload, int64_t t0, int n, int fractional)
{
    struct store_sample *v = calloc((size_t)n, sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        struct store_sample *x = &v[i];
        snprintf(x->user_id, sizeof(x->user_id), "%s", user);
        snprintf(x->upload_id, sizeof(x->upload_id), "%s", upload);
        snprintf(x->metric_type, sizeof(x->metric_type), "%s", i % 3 == 2 ? "heart_rate" : "steps");
        x->start_ms = t0 + (int64_t)(i / 3) * 60000 + (i % 3 == 1 ? 17000 : 0);
        x->end_ms = x->start_ms + 60000;
        /* steps: integers (some NaN: a row without a value); heart rate
         * with halves when asked for. */
        x->value = i % 3 == 2    ? 50 + i % 40 + (fractional && i % 7 == 0 ? 0.1 : 0)
                   : i % 13 == 0 ? NAN
                                 : (double)(i % 97);
        x->value2 = NAN;
        x->quality_score = NAN;
        snprintf(x->source, sizeof(x->source), "%s", "Watch");
        snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%s-s-%d", upload, i);
    }
    struct store_tx *tx = begin(st);
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, (size_t)n, &ins), 0);
    assert_int_equal(ins, (size_t)n);
    commit(tx);
    free(v);
}

static void test_series_aggregates_match_samples(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN], u3[STORE_ID_LEN];
    make_user(f->st, "series-a@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    commit(tx);
    const int64_t D = 86400000LL, day0 = 1795000000000LL - 1795000000000LL % D;
    /* u1: three days of minutes from 19:00 UTC, crossing midnights; u2:
     * overlapping the second day with other values (same starts). */
    series_insert(f->st, a, u1, day0 + 19 * 3600000LL, 3 * 1440 * 3, 0);
    series_insert(f->st, a, u2, day0 + D + 6 * 3600000LL, 600 * 3, 1);
    static const int64_t buckets[] = {900000LL, 3600000LL, 6 * 3600000LL, D, 2 * D};
    /* from: UTC midnight, a +05:45 local midnight, a quarter past. */
    static const int64_t froms[] = {0, -(5 * 3600000LL + 45 * 60000LL), 15 * 60000LL};
    for (int pass = 0; pass < 2; pass++) /* filled, then cached */
        for (size_t i = 0; i < sizeof(froms) / sizeof(froms[0]); i++)
            for (size_t k = 0; k < sizeof(buckets) / sizeof(buckets[0]); k++)
                assert_true(series_same(f->st, a, "steps", day0 + froms[i], day0 + 5 * D, buckets[k]));
    assert_true(sql_count(f->st, "SELECT COUNT(*) FROM sample_day_aggs") > 0);
    /* Not whole slots: the samples are read (and agree, trivially). */
    assert_false(series_same(f->st, a, "steps", day0 + 60000, day0 + 5 * D, D));
    assert_false(series_same(f->st, a, "steps", day0, day0 + 5 * D, 600000));
    /* heart_rate has values with a fraction on the day u2 covers: a sum of
     * slot sums might round differently, so the samples are read there;
     * a range without that day is answered from the cache. */
    assert_false(series_same(f->st, a, "heart_rate", day0, day0 + 5 * D, 3600000LL));
    assert_true(series_same(f->st, a, "heart_rate", day0, day0 + D, 3600000LL));
    assert_true(series_same(f->st, a, "no_such_type", day0, day0 + 5 * D, D));

    /* Delete u2 (its days are rebuilt): the cache follows. */
    tx = begin(f->st);
    assert_int_equal(store_upload_delete(tx, u2, a), 0);
    commit(tx);
    for (size_t k = 0; k < sizeof(buckets) / sizeof(buckets[0]); k++)
        assert_true(series_same(f->st, a, "steps", day0, day0 + 5 * D, buckets[k]));
    assert_true(series_same(f->st, a, "heart_rate", day0, day0 + 5 * D, 3600000LL)); /* the fractions went */
    /* Re-upload the same samples under a new upload. */
    tx = begin(f->st);
    make_upload(tx, a, u3);
    commit(tx);
    series_insert(f->st, a, u3, day0 + D + 6 * 3600000LL, 600 * 3, 0);
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < sizeof(buckets) / sizeof(buckets[0]); k++)
            assert_true(
                series_same(f->st, a, "steps", day0 - (5 * 3600000LL + 45 * 60000LL), day0 + 5 * D, buckets[k]));
    /* Erasure takes the cache with the samples. */
    tx = begin(f->st);
    int64_t gone = 0;
    assert_int_equal(store_sample_delete_by_user(tx, a, &gone), 0);
    commit(tx);
    assert_true(gone > 0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM sample_day_aggs"), 0);
    assert_true(series_same(f->st, a, "steps", day0, day0 + 5 * D, D));
}

/* ---- issue #19: samples in blocks are the primary store ------------------- */

struct collect {
    struct store_sample *v;
    size_t n, cap;
};

static int collect_cb(void *ctx, const struct store_sample *x)
{
    struct collect *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->v = realloc(c->v, c->cap * sizeof(*c->v));
        assert_non_null(c->v);
    }
    c->v[c->n] = *x;
    c->v[c->n].payload = x->payload ? strdup(x->payload) : NULL;
    c->n++;
    return 0;
}

static void collect_free(struct collect *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].payload);
    free(c->v);
    memset(c, 0, sizeof(*c));
}

/* Every sample of a user (or of one upload), oldest first. */
static void read_all(struct store *st, const char *user, const char *upload, struct collect *c)
{
    struct store_sample_query q = {
        .user_id = user, .upload_id = upload, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 1};
    struct store_tx *tx = NULL;
    memset(c, 0, sizeof(*c));
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_each(tx, &q, collect_cb, c), 0);
    store_tx_rollback(tx);
}

static void same_sample(const struct store_sample *a, const struct store_sample *b)
{
    assert_int_equal(a->id, b->id);
    assert_string_equal(a->upload_id, b->upload_id);
    assert_string_equal(a->metric_type, b->metric_type);
    assert_int_equal(a->start_ms, b->start_ms);
    assert_int_equal(a->end_ms, b->end_ms);
    assert_true(isnan(a->value) == isnan(b->value));
    if (!isnan(a->value))
        assert_memory_equal(&a->value, &b->value, sizeof(double));
    assert_true(isnan(a->value2) == isnan(b->value2));
    assert_string_equal(a->unit, b->unit);
    assert_string_equal(a->source, b->source);
    assert_string_equal(a->device, b->device);
    assert_string_equal(a->hk_uuid, b->hk_uuid);
    assert_true((a->payload == NULL) == (b->payload == NULL));
    if (a->payload != NULL)
        assert_string_equal(a->payload, b->payload);
    assert_string_equal(a->validation_status, b->validation_status);
    assert_int_equal(a->processing_version, b->processing_version);
}

static void same_lists(const struct collect *a, const struct collect *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        same_sample(&a->v[i], &b->v[i]);
}

/* The window read (days merged by start, in append order) against what the
 * sample stream (each day decoded whole, sorted by (start, id)) gives for
 * the same query: the same rows, types, ranks, offsets and payloads. */
static void window_matches_stream(struct store *st, const struct store_window_query *q)
{
    struct collect c;
    struct store_window w;
    struct store_tx *tx = NULL;
    memset(&w, 0, sizeof(w));
    read_all(st, q->user_id, NULL, &c);
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_window(tx, q, &w), 0);
    store_tx_rollback(tx);
    size_t k = 0, other = 0;
    for (size_t i = 0; i < c.n; i++) {
        const struct store_sample *x = &c.v[i];
        if (x->start_ms < q->from_ms || x->start_ms >= q->to_ms)
            continue;
        int t = -1;
        for (size_t j = 0; j < q->n_types && t < 0; j++)
            if (strcmp(q->types[j], x->metric_type) == 0)
                t = (int)j;
        if (t < 0) {
            other++;
            continue;
        }
        size_t rank = q->n_ranks;
        for (size_t j = 0; j < q->n_ranks && rank == q->n_ranks; j++)
            if (strstr(x->device, q->ranks[j]) || strstr(x->source, q->ranks[j]))
                rank = j;
        assert_true(k < w.n);
        assert_int_equal(w.type[k], t);
        assert_int_equal(w.start_ms[k], x->start_ms);
        assert_int_equal(w.end_ms[k], x->end_ms);
        assert_true(isnan(w.value[k]) == isnan(x->value));
        if (!isnan(x->value))
            assert_memory_equal(&w.value[k], &x->value, sizeof(double));
        assert_int_equal(w.rank[k], rank);
        assert_int_equal(w.offset_min[k], store_sample_payload_offset(x->payload));
        if ((q->payload_types >> t & 1u) && x->payload != NULL)
            assert_string_equal(w.text + w.payload[k], x->payload);
        else
            assert_int_equal(w.payload[k], STORE_WINDOW_NO_PAYLOAD);
        k++;
    }
    assert_int_equal(k, w.n);
    assert_int_equal(other, w.n_other);
    store_window_free(&w);
    collect_free(&c);
}

/*
 * New samples go into blocks only (no health_samples row), every field
 * comes back as it was given, ids follow insertion order, re-uploads and
 * overlapping uploads add exactly the new samples, pages in both directions
 * agree, the window agrees with the stream, an upload delete takes exactly
 * its samples, and erasure leaves no block.
 */
static void test_sample_blocks_primary(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN];
    make_user(f->st, "blocks-primary@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    commit(tx);
    const int64_t t0 = 1718236800000LL + 20 * 3600000LL; /* crosses UTC midnights */
    enum { N = 9000 };
    struct store_sample *v = calloc(N, sizeof(*v));
    char(*pl)[96] = calloc(N, sizeof(*pl));
    assert_non_null(v);
    assert_non_null(pl);
    for (int i = 0; i < N; i++) {
        days_sample(&v[i], a, u1, t0, i, pl[i], sizeof(pl[i]));
        snprintf(v[i].unit, sizeof(v[i].unit), "%s", i % 5 == 1 ? "count/min" : "count");
        if (i % 9 == 4)
            v[i].value2 = 80 + i % 7;
        if (i % 13 == 0)
            v[i].hk_uuid[0] = '\0'; /* no key: never deduplicated */
    }
    size_t ins = 0;
    tx = begin(f->st);
    assert_int_equal(store_sample_insert_batch(tx, v, N / 2, &ins), 0);
    commit(tx);
    assert_int_equal(ins, N / 2);
    /* The second half, with the first half's last 1000 again (overlap). */
    tx = begin(f->st);
    assert_int_equal(store_sample_insert_batch(tx, v + N / 2 - 1000, N / 2 + 1000, &ins), 0);
    commit(tx);
    size_t keyless_again = 0;
    for (int i = N / 2 - 1000; i < N / 2; i++)
        keyless_again += v[i].hk_uuid[0] == '\0';
    assert_int_equal(ins, N / 2 + keyless_again);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 0);

    /* Everything back, in (start, id) order, ids in insertion order. */
    struct collect c;
    read_all(f->st, a, NULL, &c);
    assert_int_equal(c.n, N + keyless_again);
    for (size_t i = 1; i < c.n; i++)
        assert_true(c.v[i - 1].start_ms < c.v[i].start_ms ||
                    (c.v[i - 1].start_ms == c.v[i].start_ms && c.v[i - 1].id < c.v[i].id));
    size_t matched = 0;
    for (size_t i = 0; i < c.n; i++) {
        const struct store_sample *x = &c.v[i];
        if (x->hk_uuid[0] == '\0')
            continue;
        int k = -1;
        for (int j = 0; j < N && k < 0; j++)
            if (strcmp(v[j].hk_uuid, x->hk_uuid) == 0)
                k = j;
        assert_true(k >= 0);
        struct store_sample want = v[k];
        want.id = x->id;
        snprintf(want.validation_status, sizeof(want.validation_status), "valid");
        want.processing_version = STORE_PROCESSING_VERSION;
        same_sample(x, &want);
        matched++;
    }
    assert_int_equal(matched, N - (N + 12) / 13);

    /* Pages of 97, newest first, are the stream reversed. */
    struct store_sample_query q = {
        .user_id = a, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 0, .limit = 97};
    size_t at = c.n;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    for (;;) {
        struct store_sample *page = NULL;
        size_t n = 0;
        struct store_cursor next;
        assert_int_equal(store_sample_list(tx, &q, &page, &n, &next), 0);
        for (size_t i = 0; i < n; i++)
            same_sample(&page[i], &c.v[--at]);
        store_sample_list_free(page, n);
        if (!next.set)
            break;
        q.after = next;
    }
    int64_t cnt = 0;
    assert_int_equal(store_sample_count(tx, a, NULL, &cnt), 0);
    assert_int_equal(cnt, (int64_t)c.n);
    assert_int_equal(store_sample_count(tx, a, u2, &cnt), 0);
    assert_int_equal(cnt, 0);
    store_tx_rollback(tx);
    assert_int_equal(at, 0);

    struct store_window_query wq = all_time_window(a);
    window_matches_stream(f->st, &wq);
    wq.from_ms = t0 + 6 * 3600000LL;
    wq.to_ms = t0 + 30 * 3600000LL;
    window_matches_stream(f->st, &wq);

    /* u2 re-sends some of u1's samples and some of its own: only its own
     * are new; deleting u2 takes exactly those. */
    for (int i = 0; i < 300; i++) {
        days_sample(&v[i], a, u2, t0, i + (i % 2 ? 0 : 200000), pl[i], sizeof(pl[i]));
        snprintf(v[i].unit, sizeof(v[i].unit), "%s", "count");
        if (i % 2) /* the key u1 gave it */
            snprintf(v[i].hk_uuid, sizeof(v[i].hk_uuid), "%.8s-%.8s-d-%d", a, u1, i);
    }
    tx = begin(f->st);
    assert_int_equal(store_sample_insert_batch(tx, v, 300, &ins), 0);
    commit(tx);
    size_t own = 150; /* and u1's samples that had no key there */
    for (int i = 1; i < 300; i += 2)
        own += i % 13 == 0;
    assert_int_equal(ins, own);
    struct collect c2;
    read_all(f->st, a, u2, &c2);
    assert_int_equal(c2.n, own);
    collect_free(&c2);
    tx = begin(f->st);
    assert_int_equal(store_upload_delete(tx, u2, a), 0);
    commit(tx);
    read_all(f->st, a, NULL, &c2);
    same_lists(&c2, &c);
    collect_free(&c2);
    window_matches_stream(f->st, &wq);

    /* Erasure: no block of the user is left. */
    tx = begin(f->st);
    int64_t gone = 0;
    assert_int_equal(store_sample_delete_by_user(tx, a, &gone), 0);
    commit(tx);
    assert_int_equal(gone, (int64_t)c.n);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM sample_days"), 0);
    collect_free(&c);
    free(v);
    free(pl);
}

static int stop_at_once(void *ctx, const struct store_backfill_stats *s)
{
    (void)s;
    ++*(int *)ctx;
    return 1;
}

/*
 * The backfill from health_samples rows (written by the previous release)
 * into blocks: before, during (stopped after one batch) and after it the
 * stream, the ids and the window are the same, rows and blocks together;
 * a sample already in a row is a duplicate before and after; no row and no
 * legacy window copy is left at the end.
 */
static void test_sample_rows_backfill(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN], ub[STORE_ID_LEN];
    make_user(f->st, "rows-backfill-a@example.com", a, 0);
    make_user(f->st, "rows-backfill-b@example.com", b, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    make_upload(tx, b, ub);
    commit(tx);
    const int64_t t0 = 1718236800000LL + 21 * 3600000LL;
    store_samples_previous_release_for_test(1);
    for (int k = 0; k < 4; k++)
        days_insert(f->st, a, k % 2 ? u1 : u2, t0, k * 2000, 2000, 2000);
    days_insert(f->st, b, ub, t0, 0, 900, 900);
    store_samples_previous_release_for_test(0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 8900);
    /* This release adds samples to the same days (blocks), and finds a
     * legacy row's sample a duplicate. */
    days_insert(f->st, a, u1, t0, 8000, 1500, 1500);
    days_insert(f->st, a, u1, t0, 10, 50, 0);
    struct collect before, bb, now;
    read_all(f->st, a, NULL, &before);
    read_all(f->st, b, NULL, &bb);
    assert_int_equal(before.n, 9500);
    struct store_window_query wq = all_time_window(a);
    window_matches_stream(f->st, &wq);

    struct store_backfill_stats st;
    memset(&st, 0, sizeof(st));
    int calls = 0;
    assert_int_equal(store_sample_rows_backfill(f->st, 1, stop_at_once, &calls, &st), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(st.days, 1);
    assert_int_equal(st.done, 0);
    int64_t left = sql_count(f->st, "SELECT COUNT(*) FROM health_samples");
    assert_true(left > 0 && left < 8900);
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    window_matches_stream(f->st, &wq);
    days_insert(f->st, a, u2, t0, 20, 40, 0); /* still duplicates, moved or not */

    assert_int_equal(store_sample_rows_backfill(f->st, 2, NULL, NULL, &st), 0);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.samples, 8900);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM uploads WHERE days_indexed = 0"), 0);
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    read_all(f->st, b, NULL, &now);
    same_lists(&now, &bb);
    collect_free(&now);
    window_matches_stream(f->st, &wq);
    days_insert(f->st, a, u2, t0, 0, 100, 0);
    /* A second pass finds nothing. */
    memset(&st, 0, sizeof(st));
    assert_int_equal(store_sample_rows_backfill(f->st, 0, NULL, NULL, &st), 0);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.days, 0);

    /* The rollback: every block back into rows with its id, days back as
     * the unsealed window copies the release before reads; its window read
     * (from the days) equals its row read, and the stream is unchanged. */
    memset(&st, 0, sizeof(st));
    calls = 0;
    assert_int_equal(store_sample_blocks_to_rows(f->st, 1, stop_at_once, &calls, &st), 0);
    assert_int_equal(st.done, 0);
    assert_int_equal(store_sample_blocks_to_rows(f->st, 3, NULL, NULL, &st), 0);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.samples, 9500 + 900);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 9500 + 900);
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    assert_int_equal(days_match_rows(f->st, &wq), 9500 * 4 / 5);
    store_samples_previous_release_for_test(1);
    days_insert(f->st, a, u2, t0, 0, 100, 0); /* its dedup sees them */
    store_samples_previous_release_for_test(0);
    collect_free(&before);
    collect_free(&bb);
}

/* health_samples' shape: columns (name, type, null, default) and indexes
 * (name and definition), one line each, as the catalogue tells it. */
static void rows_schema(struct store *st, char *out, size_t cap)
{
    static const char lite[] =
        "SELECT c.name || ' ' || c.type || ' ' || c.\"notnull\" || ' ' || COALESCE(c.dflt_value, '-')"
        " FROM pragma_table_info('health_samples') c"
        " UNION ALL SELECT name || ' ' || COALESCE(sql, '') FROM sqlite_master"
        " WHERE type = 'index' AND tbl_name = 'health_samples' ORDER BY 1";
    static const char pg[] = "SELECT column_name || ' ' || data_type || ' ' || is_nullable || ' ' ||"
                             " COALESCE(column_default, '-') FROM information_schema.columns"
                             " WHERE table_name = 'health_samples' AND table_schema = current_schema()"
                             " UNION ALL SELECT indexname || ' ' || indexdef FROM pg_indexes"
                             " WHERE tablename = 'health_samples' AND schemaname = current_schema() ORDER BY 1";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    size_t o = 0;
    out[0] = '\0';
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_tx_stmt(tx, is_pg() ? pg : lite, &s), 0);
    while (db_step(s) == DB_ROW && o + 2 < cap)
        o += (size_t)snprintf(out + o, cap - o, "%s\n", db_col_text(s, 0));
    db_stmt_reset(s);
    store_tx_rollback(tx);
}

/*
 * Migration 014, the contract of issue #19: health_samples goes once the
 * backfill has moved every row. Not pending for `up` or serve; refused while
 * a row is left; afterwards every read and write works without the table,
 * the same as before; a process that looked before the drop gets one
 * retryable STORE_EBUSY and then works; the rollback to rows makes the
 * table again as 013 left it and forgets 014.
 */
static void test_contract_drops_health_samples(void **state)
{
    struct fix *f = *state;
    char err[1024] = "", schema[8192], again[8192];
    int applied = -1, pending = -1;
    migrate_all(f->st);
    char a[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN];
    make_user(f->st, "contract-a@example.com", a, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    commit(tx);
    rows_schema(f->st, schema, sizeof(schema));
    assert_non_null(strstr(schema, "health_samples_user_uuid"));
    assert_non_null(strstr(schema, "utc_offset_min"));
    const int64_t t0 = 1718236800000LL + 5 * 3600000LL;
    store_samples_previous_release_for_test(1);
    days_insert(f->st, a, u1, t0, 0, 1500, 1500);
    store_samples_previous_release_for_test(0);
    days_insert(f->st, a, u2, t0, 1500, 800, 800);

    /* Not pending: serve and `up` do not wait for it. */
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);
    struct store_migration_status ms[32];
    size_t n = 0;
    assert_int_equal(store_migrate_status(f->st, ms, 32, &n, err, sizeof(err)), 0);
    assert_int_equal(n, store_migration_known());
    assert_string_equal(ms[n - 1].name, "014_drop_health_samples");
    assert_true(ms[n - 1].contract && !ms[n - 1].applied);
    /* Refused while the backfill has rows to move; nothing changes. */
    assert_int_equal(store_migrate_contract(f->st, &applied, err, sizeof(err)), STORE_ECONFLICT);
    assert_non_null(strstr(err, "samples-backfill"));
    assert_int_equal(applied, 0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 1500);

    struct collect before, now;
    read_all(f->st, a, NULL, &before);
    assert_int_equal(before.n, 2300);
    struct store_window_query wq = all_time_window(a);
    window_matches_stream(f->st, &wq);
    struct store_backfill_stats bs;
    memset(&bs, 0, sizeof(bs));
    assert_int_equal(store_sample_rows_backfill(f->st, 100, NULL, NULL, &bs), 0);
    assert_int_equal(bs.done, 1);

    /* A second process that looked at the table before it goes. */
    struct store *other = NULL;
    assert_int_equal(open_store(f->url, &other), 0);
    int64_t c = -1;
    tx = begin(other);
    assert_int_equal(store_sample_rows_count(tx, a, NULL, &c), 0);
    assert_int_equal(c, 0);
    store_tx_rollback(tx);

    assert_int_equal(store_migrate_contract(f->st, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM _migrations WHERE name = '014_drop_health_samples'"), 1);
    assert_int_equal(sql_count(f->st, is_pg() ? "SELECT COUNT(*) FROM pg_class WHERE relname LIKE 'health_samples%'"
                                              : "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'health_samples%'"),
                     0);
    assert_int_equal(store_migrate_contract(f->st, &applied, err, sizeof(err)), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_migrate_pending(f->st, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);

    /* The other process: one retryable failure, then it knows. */
    tx = begin(other);
    assert_int_equal(store_sample_rows_count(tx, a, NULL, &c), STORE_EBUSY);
    store_tx_rollback(tx);
    tx = begin(other);
    assert_int_equal(store_sample_rows_count(tx, a, NULL, &c), 0);
    assert_int_equal(c, 0);
    store_tx_rollback(tx);
    read_all(other, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    store_close(other);

    /* Everything reads and writes as before, without the table. */
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    window_matches_stream(f->st, &wq);
    days_insert(f->st, a, u1, t0, 100, 50, 0); /* moved rows still deduplicate */
    days_insert(f->st, a, u2, t0, 3000, 200, 200);
    tx = begin(f->st);
    assert_int_equal(store_sample_count(tx, a, NULL, &c), 0);
    assert_int_equal(c, 2500);
    int64_t newest[4], ends[4];
    int32_t offs[4];
    size_t got = 9;
    assert_int_equal(store_sample_rows_newest(tx, a, u1, 4, newest, ends, offs, &got), 0);
    assert_int_equal(got, 0);
    commit(tx);
    memset(&bs, 0, sizeof(bs));
    assert_int_equal(store_sample_rows_backfill(f->st, 10, NULL, NULL, &bs), 0);
    assert_int_equal(bs.done, 1);
    tx = begin(f->st);
    assert_int_equal(store_upload_delete(tx, u2, a), 0);
    commit(tx);
    read_all(f->st, a, NULL, &now);
    assert_int_equal(now.n, 1500);
    collect_free(&now);

    /* The rollback to rows makes the table again, as 013 left it. */
    memset(&bs, 0, sizeof(bs));
    assert_int_equal(store_sample_blocks_to_rows(f->st, 100, NULL, NULL, &bs), 0);
    assert_int_equal(bs.done, 1);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM _migrations WHERE name = '014_drop_health_samples'"), 0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 1500);
    rows_schema(f->st, again, sizeof(again));
    assert_string_equal(again, schema);
    /* The release before inserts without ids: its new samples must not
     * collide with the restored ones (PostgreSQL's identity sequence). */
    store_samples_previous_release_for_test(1);
    days_insert(f->st, a, u1, t0, 6000, 100, 100);
    store_samples_previous_release_for_test(0);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 1600);
    tx = begin(f->st);
    assert_int_equal(store_sample_delete_by_user(tx, a, &c), 0);
    commit(tx);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 0);
    collect_free(&before);
}

/*
 * The backfill from days the release before issue #19's blocks wrote the
 * 0xD1 way (with their rows): stopped after one batch, the previous
 * release writing meanwhile, resumed; the stream and the window read the
 * same throughout, and the old segments go with the rows.
 */
static void test_sample_days_backfill(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], u1[STORE_ID_LEN], u2[STORE_ID_LEN], ub[STORE_ID_LEN];
    make_user(f->st, "backfill-a@example.com", a, 0);
    make_user(f->st, "backfill-b@example.com", b, 0);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, u1);
    make_upload(tx, a, u2);
    make_upload(tx, b, ub);
    commit(tx);
    const int64_t t0 = 1718236800000LL;
    store_samples_previous_release_for_test(1);
    store_days_write_legacy_for_test(1);
    for (int k = 0; k < 6; k++) /* several rows a day, overlapping uploads */
        days_insert(f->st, a, k % 2 ? u1 : u2, t0, k * 700, 700, 700);
    days_insert(f->st, b, ub, t0, 0, 900, 900);
    store_days_write_legacy_for_test(0);
    struct store_window_query q = all_time_window(a);
    assert_true(days_match_rows(f->st, &q) > 3000); /* 0xD1 days read as the rows */
    store_samples_previous_release_for_test(0);
    struct collect before, now;
    read_all(f->st, a, NULL, &before);
    assert_int_equal(before.n, 4200);

    struct store_backfill_stats st;
    memset(&st, 0, sizeof(st));
    int calls = 0;
    assert_int_equal(store_sample_rows_backfill(f->st, 1, stop_at_once, &calls, &st), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(st.done, 0);
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    window_matches_stream(f->st, &q);

    store_samples_previous_release_for_test(1); /* the previous release writes meanwhile */
    days_insert(f->st, a, u1, t0, 5000, 300, 300);
    store_samples_previous_release_for_test(0);
    collect_free(&before);
    read_all(f->st, a, NULL, &before);
    assert_int_equal(before.n, 4500);

    assert_int_equal(store_sample_rows_backfill(f->st, 2, NULL, NULL, &st), 0);
    assert_int_equal(st.done, 1);
    assert_int_equal(st.samples, 4500 + 900);
    assert_int_equal(sql_count(f->st, "SELECT COUNT(*) FROM health_samples"), 0);
    read_all(f->st, a, NULL, &now);
    same_lists(&now, &before);
    collect_free(&now);
    window_matches_stream(f->st, &q);
    q.user_id = b;
    window_matches_stream(f->st, &q);
    collect_free(&before);
}

static void test_sample_newest(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], err[512];
    make_user(f->st, "newest-a@example.com", a, 0);
    make_user(f->st, "newest-b@example.com", b, 0);
    enum { N = 200, HALF = 100 };
    char one[STORE_ID_LEN], two[STORE_ID_LEN], none[STORE_ID_LEN], bone[STORE_ID_LEN];
    struct store_tx *tx = begin(f->st);
    make_upload(tx, a, one);
    make_upload(tx, a, two);
    make_upload(tx, a, none); /* no samples */
    make_upload(tx, b, bone);
    struct store_sample v[N];
    char pl[N][96];
    for (int i = 0; i < N; i++) {
        window_sample(&v[i], a, i, pl[i], sizeof(pl[i]));
        snprintf(v[i].upload_id, sizeof(v[i].upload_id), "%s", i < HALF ? one : two);
    }
    size_t ins = 0;
    assert_int_equal(store_sample_insert_batch(tx, v, N, &ins), 0);
    assert_int_equal(ins, N);
    /* Another user's rows, later than all of a's. */
    struct store_sample o[3];
    char opl[3][96];
    for (int i = 0; i < 3; i++) {
        window_sample(&o[i], b, N + 10 + i, opl[i], sizeof(opl[i]));
        snprintf(o[i].upload_id, sizeof(o[i].upload_id), "%s", bone);
    }
    assert_int_equal(store_sample_insert_batch(tx, o, 3, &ins), 0);
    commit(tx);
    /* Rows of the first 20 minutes as if stored before 004. */
    char sql[256];
    snprintf(sql, sizeof(sql), "UPDATE health_samples SET utc_offset_min = NULL WHERE start_ms < %lld",
             (long long)(WT0 + 20 * 60000));
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);

    /* Expected, from the definition: rows are inserted in i order (ids
     * ascending), start = WT0 + (i/2) min, so descending (start, id) is
     * descending i; the offset is the payload's, 0 without a payload. */
    int64_t st[N], en[N];
    int32_t off[N];
    size_t n = 0;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    struct {
        const char *upload;
        size_t max;
        int first, count; /* expected: i = first, first-1, ... */
    } cases[] = {
        {one, 64, HALF - 1, 64}, {one, 500, HALF - 1, HALF}, {two, 7, N - 1, 7},
        {NULL, 10, N - 1, 10},   {none, 64, 0, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        assert_int_equal(store_sample_newest(tx, a, cases[c].upload, cases[c].max, st, en, off, &n), 0);
        assert_int_equal(n, (size_t)cases[c].count);
        for (size_t k = 0; k < n; k++) {
            int i = cases[c].first - (int)k;
            assert_int_equal(st[k], v[i].start_ms);
            assert_int_equal(en[k], v[i].end_ms);
            assert_int_equal(off[k], i % 6 == 5 ? 0 : -300 + (i % 3) * 60);
        }
    }
    /* b's own newest rows are b's, and b's upload is not a's. */
    assert_int_equal(store_sample_newest(tx, b, NULL, 10, st, en, off, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(st[0], o[2].start_ms);
    assert_int_equal(store_sample_newest(tx, a, bone, 10, st, en, off, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_sample_newest(tx, a, one, 0, st, en, off, &n), STORE_EINVAL);
    store_tx_rollback(tx);
}

static void test_sample_window_matches_reference_loader(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN], other[STORE_ID_LEN], upload[STORE_ID_LEN], err[512];
    make_user(f->st, "window-ref@example.com", user, 0);
    make_user(f->st, "window-ref-other@example.com", other, 0);
    enum { MINUTES = 15000 };
    size_t cap = MINUTES * 4 + 64, n = 0;
    struct store_sample *v = calloc(cap, sizeof(*v));
    char(*pl)[96] = calloc(cap, sizeof(*pl));
    assert_non_null(v);
    assert_non_null(pl);
    struct store_tx *tx = begin(f->st);
    make_upload(tx, user, upload);
    const int64_t t0 = 1795000000000LL;
    for (int m = 0; m < MINUTES; m++) {
        int off = m < MINUTES / 2 ? -240 : -300; /* a daylight-saving change */
        int hod = (m / 60) % 24;
        for (int k = 0; k < 4; k++) {
            struct store_sample *x = &v[n];
            memset(x, 0, sizeof(*x));
            memcpy(x->user_id, k == 3 && m % 50 == 0 ? other : user, STORE_ID_LEN);
            if (k != 3 || m % 50 != 0)
                memcpy(x->upload_id, upload, STORE_ID_LEN);
            x->start_ms = t0 + (int64_t)m * 60000 + (k == 1 ? 20000 : 0);
            x->value2 = NAN;
            x->quality_score = NAN;
            snprintf(x->hk_uuid, sizeof(x->hk_uuid), "ref-%d-%d", m, k);
            snprintf(pl[n], sizeof(pl[n]), "{\"tz_offset_min\":%d}", off);
            x->payload = pl[n];
            if (k == 0) { /* watch steps */
                snprintf(x->metric_type, sizeof(x->metric_type), "steps");
                x->end_ms = x->start_ms + 60000;
                x->value = hod >= 7 && hod < 23 ? (double)((m * 7) % 90) + 0.5 : 0.0;
                snprintf(x->source, sizeof(x->source), "Apple Watch");
            } else if (k == 1) { /* phone steps over two minutes, every third minute */
                if (m % 3 != 0)
                    continue;
                snprintf(x->metric_type, sizeof(x->metric_type), "steps");
                x->end_ms = x->start_ms + 120000;
                x->value = (double)(m % 40) / 3.0;
                snprintf(x->source, sizeof(x->source), "Health");
                snprintf(x->device, sizeof(x->device), "iPhone14,5");
            } else if (k == 2) { /* heart rate, HRV every 17th minute (some NULL) */
                int hrv = m % 17 == 0;
                snprintf(x->metric_type, sizeof(x->metric_type), "%s", hrv ? "heart_rate_variability" : "heart_rate");
                x->end_ms = x->start_ms;
                x->value = hrv && m % 34 == 0 ? NAN : 55.0 + (double)(m % 23) / 7.0;
                snprintf(x->source, sizeof(x->source), "%s", m % 5 == 0 ? "Other App" : "Apple Watch");
                if (m % 11 == 0)
                    x->payload = NULL;
            } else { /* sleep stages each 30 min at night; active energy by day */
                if (hod >= 7 && hod < 23) {
                    if (m % 10 != 0)
                        continue;
                    snprintf(x->metric_type, sizeof(x->metric_type), "active_energy");
                    x->end_ms = x->start_ms + 600000;
                    x->value = 1.5;
                } else {
                    if (m % 30 != 0)
                        continue;
                    static const char *const cat[] = {"in_bed", "asleep_core", "asleep_deep", "asleep_rem", "awake"};
                    snprintf(x->metric_type, sizeof(x->metric_type), "sleep_stage");
                    x->end_ms = x->start_ms + 1800000;
                    x->value = 30.0;
                    snprintf(pl[n], sizeof(pl[n]), "{\"tz_offset_min\":%d,\"category\":\"%s\"}", off,
                             cat[(m / 30) % 5]);
                }
                snprintf(x->source, sizeof(x->source), "Apple Watch");
            }
            n++;
        }
    }
    /* Insert in owner runs (one owner check per run). */
    size_t from = 0;
    for (size_t i = 1; i <= n; i++)
        if (i == n || strcmp(v[i].user_id, v[from].user_id) != 0) {
            assert_int_equal(store_sample_insert_batch(tx, v + from, i - from, NULL), 0);
            from = i;
        }
    commit(tx);
    char sql[200];
    snprintf(sql, sizeof(sql), "UPDATE health_samples SET utc_offset_min = NULL WHERE start_ms < %lld",
             (long long)(t0 + (int64_t)MINUTES * 60000 / 2));
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);

    struct compute_window a, b;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    int ra = compute_window_load(tx, user, upload, 0, NULL, &a, err, sizeof(err));
    int rb = compute_window_load_reference(tx, user, upload, 0, NULL, &b, err, sizeof(err));
    store_tx_rollback(tx);
    assert_int_equal(ra, 0);
    assert_int_equal(rb, 0);
    assert_int_equal(a.n, b.n);
    assert_true(a.start_local_min == b.start_local_min);
    assert_true(a.end_utc_ms == b.end_utc_ms);
    assert_int_equal(a.end_offset_min, b.end_offset_min);
    assert_int_equal(a.n_samples, b.n_samples);
    assert_true(a.n_samples > 10080 * 2);
    compare_series(a.activity, b.activity, a.n);
    compare_series(a.steps, b.steps, a.n);
    compare_series(a.hr, b.hr, a.n);
    compare_series(a.hrv, b.hrv, a.n);
    assert_null(a.resp);
    assert_null(b.resp);
    assert_non_null(a.steps);
    assert_non_null(a.hrv);
    assert_int_equal(a.n_sleep, b.n_sleep);
    assert_true(a.n_sleep > 50);
    for (size_t i = 0; i < a.n_sleep; i++) {
        assert_true(a.sleep[i].start_ms == b.sleep[i].start_ms);
        assert_true(a.sleep[i].end_ms == b.sleep[i].end_ms);
        assert_int_equal(a.sleep[i].offset_min, b.sleep[i].offset_min);
        assert_int_equal(a.sleep[i].source, b.sleep[i].source);
        assert_int_equal(a.sleep[i].category, b.sleep[i].category);
    }
    compute_window_free(&a);
    compute_window_free(&b);
    free(v);
    free(pl);
}

/* ---- 4. queue ----------------------------------------------------------------- */

static void publish_n(struct store *st, const char *topic, int n, int max_attempts)
{
    struct store_tx *tx = begin(st);
    struct store_publish_opts o = {.max_attempts = max_attempts};
    for (int i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof(p), "{\"i\":%d}", i);
        assert_int_equal(store_queue_publish(tx, topic, p, &o, NULL), 0);
    }
    commit(tx);
}

static void test_queue_lease_ack_and_lost_lease(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    publish_n(f->st, STORE_TOPIC_INSIGHTS, 3, 0);
    struct store_msg m[4];
    size_t n = 0;
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_INSIGHTS, 60000, m, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(m[0].payload, "{\"i\":0}");
    assert_int_equal(m[0].attempts, 1);
    assert_int_equal(m[0].max_attempts, 5);
    /* Leased messages are invisible to others. */
    struct store_msg o[4];
    size_t k = 0;
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_INSIGHTS, 60000, o, 4, &k), 0);
    assert_int_equal(k, 1);
    assert_string_equal(o[0].payload, "{\"i\":2}");
    store_msg_clear(&o[0]);
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 60000, o, 4, &k), 0);
    assert_int_equal(k, 0);
    assert_int_equal(store_queue_ack_now(f->st, &m[0]), 0);
    /* Acking twice, or with another token, is refused. */
    assert_int_equal(store_queue_ack_now(f->st, &m[0]), STORE_ECONFLICT);
    struct store_msg forged = m[1];
    snprintf(forged.lease_token, sizeof(forged.lease_token), "not-the-token");
    assert_int_equal(store_queue_ack_now(f->st, &forged), STORE_ECONFLICT);
    struct store_tx *tx = begin(f->st);
    assert_int_equal(store_queue_extend(tx, &m[1], 120000), 0);
    size_t acked = 9;
    /* m[0] is already acknowledged: only m[1] counts. */
    assert_int_equal(store_queue_ack_batch(tx, m, 2, &acked), 0);
    assert_int_equal(acked, 1);
    commit(tx);
    store_msg_clear(&m[0]);
    store_msg_clear(&m[1]);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_INSIGHTS, &qs), 0);
    assert_int_equal(qs.depth, 1);
    assert_true(qs.oldest_age_ms >= 0);
    assert_int_equal(qs.dead, 0);
}

/* A job given back for the server's passing failure (the store down or
 * busy: #16) spends no attempt: released max_attempts times and more, it
 * is delivered again, never dead-lettered. */
static void test_queue_release_spends_no_attempt(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    publish_n(f->st, STORE_TOPIC_HEALTH_DATA, 1, 2);
    struct store_msg m[1];
    size_t n = 0;
    int64_t t0 = (int64_t)time(NULL);
    for (int round = 0; round < 4; round++) {
        do {
            usleep(5000);
            assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 60000, m, 1, &n), 0);
        } while (n == 0 && (int64_t)time(NULL) - t0 < 20);
        assert_int_equal(n, 1);
        assert_int_equal(m[0].attempts, 1);
        if (round > 0)
            assert_string_equal(m[0].last_error, "storage: database unavailable");
        struct store_tx *tx = begin(f->st);
        assert_int_equal(store_queue_release(tx, &m[0], "storage: database unavailable"), 0);
        commit(tx);
        /* A lost lease: refused. */
        tx = begin(f->st);
        assert_int_equal(store_queue_release(tx, &m[0], "again"), STORE_ECONFLICT);
        store_tx_rollback(tx);
        store_msg_clear(&m[0]);
    }
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, 1);
    assert_int_equal(qs.dead, 0);
}

static void test_queue_expiry_redelivers_and_poison_dead_letters(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    publish_n(f->st, STORE_TOPIC_HEALTH_DATA, 1, 3);
    struct store_msg m[1];
    size_t n = 0;
    /* Lease expiry: not acked within 30 ms → delivered again (attempt 2). */
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 30, m, 1, &n), 0);
    assert_int_equal(n, 1);
    char first_token[STORE_ID_LEN];
    memcpy(first_token, m[0].lease_token, STORE_ID_LEN);
    store_msg_clear(&m[0]);
    int64_t t0 = (int64_t)time(NULL);
    do {
        usleep(10000);
        assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 30, m, 1, &n), 0);
    } while (n == 0 && (int64_t)time(NULL) - t0 < 5);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].attempts, 2);
    assert_string_not_equal(m[0].lease_token, first_token);
    /* Poison: nack with an error; the 3rd failure dead-letters it. */
    struct store_tx *tx = begin(f->st);
    assert_int_equal(store_queue_nack(tx, &m[0], "boom 2"), 0);
    commit(tx);
    store_msg_clear(&m[0]);
    do {
        usleep(5000);
        assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 60000, m, 1, &n), 0);
    } while (n == 0 && (int64_t)time(NULL) - t0 < 5);
    assert_int_equal(n, 1);
    assert_int_equal(m[0].attempts, 3);
    assert_string_equal(m[0].last_error, "boom 2");
    tx = begin(f->st);
    assert_int_equal(store_queue_nack(tx, &m[0], "boom 3"), 0);
    commit(tx);
    store_msg_clear(&m[0]);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, 0);
    assert_int_equal(qs.dead, 1);
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA "-dead-letter", 60000, m, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(m[0].last_error, "boom 3");
    assert_string_equal(m[0].payload, "{\"i\":0}");
    store_msg_clear(&m[0]);

    /* Expired leases alone also dead-letter after max_attempts deliveries. */
    publish_n(f->st, STORE_TOPIC_INSIGHTS, 1, 2);
    int deliveries = 0;
    t0 = (int64_t)time(NULL);
    for (;;) {
        assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_INSIGHTS, 20, m, 1, &n), 0);
        if (n == 1) {
            deliveries++;
            store_msg_clear(&m[0]);
        }
        assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_INSIGHTS, &qs), 0);
        if (qs.dead == 1 || (int64_t)time(NULL) - t0 > 5)
            break;
        usleep(10000);
    }
    assert_int_equal(deliveries, 2);
    assert_int_equal(qs.dead, 1);
    assert_int_equal(qs.depth, 0);
}

static void test_queue_publish_batch_keeps_order_and_bytes(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    const char *p[3] = {"{\"a\":\"quote \\\" and \\\\ backslash\"}", "{\"b\":\"\u00e9\u6f22\"}", "{\"c\":[1,2,3]}"};
    struct store_tx *tx = begin(f->st);
    assert_int_equal(store_queue_publish_batch(tx, STORE_TOPIC_INSIGHTS, p, 3, NULL), 0);
    assert_int_equal(store_queue_publish_batch(tx, STORE_TOPIC_INSIGHTS, p, 0, NULL), 0);
    commit(tx);
    struct store_msg m[4];
    size_t n = 0;
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_INSIGHTS, 60000, m, 4, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(m[i].payload, p[i]);
        store_msg_clear(&m[i]);
    }
}

static void publish_keyed(struct store *st, const char *key, const char *payload)
{
    struct store_tx *tx = begin(st);
    struct store_publish_opts o = {.fair_key = key};
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, &o, NULL), 0);
    commit(tx);
}

/* Lease one message, check its payload, ack it. */
static void take_one(struct store *st, const char *want)
{
    struct store_msg m;
    size_t n = 0;
    assert_int_equal(store_queue_lease(st, STORE_TOPIC_HEALTH_DATA, 60000, &m, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(m.payload, want);
    assert_int_equal(store_queue_ack_now(st, &m), 0);
    store_msg_clear(&m);
}

/* Migration 010: a user with a backlog gets one turn per round; a user who
 * arrives later is served next, not after the backlog; each user's messages
 * keep their publish order; unkeyed messages take the head's rank. */
static void test_queue_fair_between_keys(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char p[32];
    for (int i = 0; i < 40; i++) {
        snprintf(p, sizeof(p), "{\"a\":%d}", i);
        publish_keyed(f->st, "user-a", p);
    }
    publish_keyed(f->st, "user-b", "{\"b\":0}");
    publish_keyed(f->st, "user-b", "{\"b\":1}");
    take_one(f->st, "{\"a\":0}");
    take_one(f->st, "{\"b\":0}");
    take_one(f->st, "{\"a\":1}");
    take_one(f->st, "{\"b\":1}");
    take_one(f->st, "{\"a\":2}");
    /* Arriving now, behind 37 of user-a's: served after the head, a:3. */
    publish_keyed(f->st, "user-c", "{\"c\":0}");
    publish_keyed(f->st, NULL, "{\"none\":0}");
    take_one(f->st, "{\"a\":3}");
    take_one(f->st, "{\"c\":0}");
    take_one(f->st, "{\"none\":0}");
    for (int i = 4; i < 40; i++) {
        snprintf(p, sizeof(p), "{\"a\":%d}", i);
        take_one(f->st, p);
    }
    struct store_msg m;
    size_t n = 7;
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_HEALTH_DATA, 60000, &m, 1, &n), 0);
    assert_int_equal(n, 0);
}

static void test_queue_retention_purge(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    publish_n(f->st, STORE_TOPIC_INSIGHTS, 3, 0);
    struct store_msg m[3];
    size_t n = 0;
    assert_int_equal(store_queue_lease(f->st, STORE_TOPIC_INSIGHTS, 60000, m, 2, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(store_queue_ack_now(f->st, &m[0]), 0);
    int64_t purged = -1;
    /* Within the retention nothing goes. */
    assert_int_equal(store_queue_purge(f->st, store_now_ms_for_test(), &purged), 0);
    assert_int_equal(purged, 0);
    /* A day later the acknowledged one goes; unacknowledged ones never do. */
    assert_int_equal(store_queue_purge(f->st, store_now_ms_for_test() + 86400LL * 1000 + 1000, &purged), 0);
    assert_int_equal(purged, 1);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_INSIGHTS, &qs), 0);
    assert_int_equal(qs.depth, 2);
    store_msg_clear(&m[0]);
    store_msg_clear(&m[1]);
}

#define CONC_MESSAGES 10000
#define CONC_THREADS 4

struct consumer {
    struct store *st;
    unsigned char *acked; /* per payload index */
    pthread_mutex_t *mu;
    pthread_barrier_t *first; /* every consumer holds a lease at once */
    int dup;
    int failures;
    int done;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    struct store_msg m[32];
    int idle = 0, waited = 0;
    while (idle < 50) {
        size_t n = 0;
        int rc = store_queue_lease(c->st, STORE_TOPIC_HEALTH_DATA, 60000, m, 32, &n);
        if (rc == STORE_EBUSY) {
            usleep(1000);
            continue;
        }
        if (rc != 0) {
            c->failures++;
            break;
        }
        if (n == 0) {
            idle++;
            usleep(2000);
            continue;
        }
        idle = 0;
        /* Hold the first lease until every consumer holds one: the leases
         * are then provably concurrent and disjoint (the dup check below),
         * and the work is shared whatever the scheduler does. The queue
         * holds far more than CONC_THREADS batches, so no one waits on an
         * empty queue. */
        if (!waited) {
            pthread_barrier_wait(c->first);
            waited = 1;
        }
        struct store_tx *tx = NULL;
        rc = store_tx_begin(c->st, STORE_TX_WRITE, &tx);
        size_t acked = 0;
        if (rc == 0)
            rc = store_queue_ack_batch(tx, m, n, &acked);
        if (rc == 0 && acked != n)
            rc = STORE_ECONFLICT;
        if (rc == 0)
            rc = store_tx_commit(tx);
        else
            store_tx_rollback(tx);
        if (rc != 0)
            c->failures++;
        pthread_mutex_lock(c->mu);
        for (size_t i = 0; i < n; i++) {
            int idx = (int)strtol(strchr(m[i].payload, ':') + 1, NULL, 10);
            if (rc == 0) {
                if (c->acked[idx])
                    c->dup++;
                c->acked[idx] = 1;
                c->done++;
            }
            store_msg_clear(&m[i]);
        }
        pthread_mutex_unlock(c->mu);
    }
    if (!waited) /* failed or found nothing: release the others */
        pthread_barrier_wait(c->first);
    return NULL;
}

static void test_queue_concurrent_consumers_exactly_once(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    publish_n(f->st, STORE_TOPIC_HEALTH_DATA, CONC_MESSAGES, 0);
    unsigned char *acked = calloc(CONC_MESSAGES, 1);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_barrier_t first;
    assert_int_equal(pthread_barrier_init(&first, NULL, CONC_THREADS), 0);
    struct consumer c[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        c[i] = (struct consumer){.st = f->st, .acked = acked, .mu = &mu, .first = &first};
        assert_int_equal(pthread_create(&th[i], NULL, consume, &c[i]), 0);
    }
    int done = 0, dup = 0, failures = 0;
    for (int i = 0; i < CONC_THREADS; i++) {
        pthread_join(th[i], NULL);
        done += c[i].done;
        dup += c[i].dup;
        failures += c[i].failures;
    }
    pthread_barrier_destroy(&first);
    assert_int_equal(failures, 0);
    assert_int_equal(dup, 0);
    assert_int_equal(done, CONC_MESSAGES);
    for (int i = 0; i < CONC_MESSAGES; i++)
        assert_int_equal(acked[i], 1);
    for (int i = 0; i < CONC_THREADS; i++)
        assert_true(c[i].done > 0); /* the work was actually shared */
    free(acked);
}

/* Two processes consume one topic; each reports the indexes it acked over a
 * pipe; the parent checks that every message was acked exactly once. */
static void test_queue_two_processes_exactly_once(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    enum { N = 2000 };
    publish_n(f->st, STORE_TOPIC_HEALTH_DATA, N, 0);
    int fds[2][2];
    pid_t pid[2];
    for (int p = 0; p < 2; p++) {
        assert_int_equal(pipe(fds[p]), 0);
        pid[p] = fork();
        assert_true(pid[p] >= 0);
        if (pid[p] == 0) {
            close(fds[p][0]);
            struct store *st = NULL;
            if (open_store(f->url, &st) != 0)
                _exit(2);
            struct store_msg m[16];
            int idle = 0;
            while (idle < 100) {
                size_t n = 0;
                int rc = store_queue_lease(st, STORE_TOPIC_HEALTH_DATA, 60000, m, 16, &n);
                if (rc == STORE_EBUSY)
                    continue;
                if (rc != 0)
                    _exit(3);
                if (n == 0) {
                    idle++;
                    usleep(2000);
                    continue;
                }
                idle = 0;
                for (size_t i = 0; i < n; i++) {
                    int r2;
                    while ((r2 = store_queue_ack_now(st, &m[i])) == STORE_EBUSY)
                        ;
                    if (r2 != 0)
                        _exit(4);
                    int idx = (int)strtol(strchr(m[i].payload, ':') + 1, NULL, 10);
                    if (write(fds[p][1], &idx, sizeof(idx)) != sizeof(idx))
                        _exit(5);
                    store_msg_clear(&m[i]);
                }
            }
            store_close(st);
            _exit(0);
        }
        close(fds[p][1]);
    }
    int *count = calloc(N, sizeof(int));
    int per[2] = {0, 0};
    for (int p = 0; p < 2; p++) {
        int idx;
        while (read(fds[p][0], &idx, sizeof(idx)) == sizeof(idx)) {
            assert_true(idx >= 0 && idx < N);
            count[idx]++;
            per[p]++;
        }
        close(fds[p][0]);
        int status = 0;
        assert_int_equal(waitpid(pid[p], &status, 0), pid[p]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(count[i], 1);
    assert_int_equal(per[0] + per[1], N);
    free(count);
}

struct waker {
    struct store *st;
    int delay_ms;
};

static void *publish_later(void *arg)
{
    struct waker *w = arg;
    usleep((useconds_t)w->delay_ms * 1000);
    struct store_tx *tx = NULL;
    if (store_tx_begin(w->st, STORE_TX_WRITE, &tx) == 0) {
        store_queue_publish(tx, STORE_TOPIC_INSIGHTS, "{}", NULL, NULL);
        store_tx_commit(tx);
    }
    return NULL;
}

static void test_queue_listener_wakes(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    struct store_listener *l = NULL;
    assert_int_equal(store_listener_open(f->st, &l), 0);
    assert_int_equal(store_listener_wait(l, 50), 0); /* nothing published: timeout */
    struct waker w = {.st = f->st, .delay_ms = 100};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, publish_later, &w), 0);
    uint64_t t0 = (uint64_t)time(NULL);
    assert_int_equal(store_listener_wait(l, 5000), 1);
    assert_true((uint64_t)time(NULL) - t0 < 4);
    pthread_join(th, NULL);
    store_listener_close(l);
}

/* One insight of user's in its own transaction; committed unless rollback. */
static void insert_insight(struct store *st, const char *user, char id[STORE_ID_LEN], int rollback,
                           struct store_events *l)
{
    struct store_tx *tx = begin(st);
    struct store_insight in = {.narrative = "n", .body = "{}", .confidence = 0.5};
    assert_int_equal(uuid_v7(in.id), 0);
    memcpy(in.user_id, user, STORE_ID_LEN);
    snprintf(in.insight_type, sizeof(in.insight_type), "sleep");
    snprintf(in.generator, sizeof(in.generator), "builtin");
    assert_int_equal(store_insight_insert(tx, &in), 0);
    if (l != NULL) {
        /* Not committed yet: nobody hears of it. */
        struct store_insight_event ev;
        assert_int_equal(store_insight_events_next(l, 100, &ev), 0);
    }
    if (rollback)
        store_tx_rollback(tx);
    else
        commit(tx);
    memcpy(id, in.id, STORE_ID_LEN);
}

static void expect_event(struct store_events *l, const char *user, const char *id)
{
    struct store_insight_event ev;
    assert_int_equal(store_insight_events_next(l, 10000, &ev), 1);
    assert_string_equal(ev.user_id, user);
    assert_string_equal(ev.insight_id, id);
}

/* "Insight created" events, the same API on both backends: one per
 * committed insight, in commit order, none for a rollback, none for
 * what was committed before subscribing; an insert by another process (a
 * second store handle: no in-process wake-up) is heard too; on PostgreSQL
 * a resync after the LISTEN session is lost. */
static void test_insight_events_hear_commits(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN], id[STORE_ID_LEN], id2[STORE_ID_LEN], dropped[STORE_ID_LEN];
    make_user(f->st, "n@example.com", user, 0);
    insert_insight(f->st, user, id, 0, NULL); /* before subscribing: not heard */
    struct store_events *l = NULL;
    struct store_insight_event ev;
    assert_int_equal(store_insight_events_open(f->st, &l), 0);
    assert_int_equal(store_insight_events_next(l, 50, &ev), 0);
    insert_insight(f->st, user, dropped, 1, l);
    insert_insight(f->st, user, id, 0, l);
    insert_insight(f->st, user, id2, 0, NULL);
    expect_event(l, user, id); /* the committed ones, in order; the rolled-back one never */
    expect_event(l, user, id2);
    assert_int_equal(store_insight_events_next(l, 100, &ev), 0);
    /* The queue's wake-ups are not insight events. */
    publish_n(f->st, STORE_TOPIC_INSIGHTS, 1, 0);
    assert_int_equal(store_insight_events_next(l, 200, &ev), 0);

    /* Another process's commit (its own store handle). */
    struct store *other = NULL;
    assert_int_equal(open_store(f->url, &other), 0);
    int64_t t0 = store_now_ms_for_test();
    insert_insight(other, user, id, 0, NULL);
    expect_event(l, user, id);
    assert_true(store_now_ms_for_test() - t0 < 5000);
    store_close(other);

    if (!is_pg()) {
        store_insight_events_close(l);
        return;
    }
    /* The server drops the session: the subscriber comes back saying so. */
    char err[512] = "";
    assert_int_equal(store_admin_exec(f->st,
                                      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE pid <> pg_backend_pid() AND datname = current_database()"
                                      " AND query LIKE 'LISTEN clarity_insight%'",
                                      err, sizeof(err)),
                     0);
    int rc = 0;
    for (int i = 0; i < 50 && rc != STORE_EVENTS_RESYNC; i++)
        rc = store_insight_events_next(l, 100, &ev);
    assert_int_equal(rc, STORE_EVENTS_RESYNC);
    insert_insight(f->st, user, id, 0, NULL);
    expect_event(l, user, id);
    store_insight_events_close(l);
}

/* ---- 5. crash safety ---------------------------------------------------------- */

/*
 * A child commits transactions (an upload + 20 samples + 1 queue message each)
 * as fast as it can and reports each committed sequence number on a pipe after
 * COMMIT returned. The parent SIGKILLs it mid-stream, reopens the database and
 * checks that every reported transaction is complete and that no transaction
 * is visible in part.
 */
static void test_crash_sigkill_mid_stream(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char user[STORE_ID_LEN];
    make_user(f->st, "crash@example.com", user, 0);
    store_close(f->st);
    f->st = NULL;
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        struct store *st = NULL;
        struct store_options o;
        char err[256];
        store_options_default(&o);
        o.synchronous_full = 1;
        if (store_open(f->url, &o, &st, err, sizeof(err)) != 0)
            _exit(2);
        for (int seq = 0;; seq++) {
            struct store_tx *tx = NULL;
            if (store_tx_begin(st, STORE_TX_WRITE, &tx) != 0)
                _exit(3);
            struct store_upload u;
            memset(&u, 0, sizeof(u));
            snprintf(u.id, sizeof(u.id), "00000000-0000-7000-8000-%012d", seq);
            memcpy(u.user_id, user, STORE_ID_LEN);
            u.total_metrics = 20;
            if (store_upload_insert(tx, &u) != 0)
                _exit(4);
            struct store_sample v[20];
            for (int i = 0; i < 20; i++) {
                fill_sample(&v[i], user, u.id, seq * 20 + i);
            }
            if (store_sample_insert_batch(tx, v, 20, NULL) != 0)
                _exit(5);
            char payload[96];
            snprintf(payload, sizeof(payload), "{\"upload_id\":\"%s\"}", u.id);
            if (store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, NULL, NULL) != 0)
                _exit(6);
            if (store_tx_commit(tx) != 0)
                _exit(7);
            if (write(fd[1], &seq, sizeof(seq)) != sizeof(seq))
                _exit(8);
        }
    }
    close(fd[1]);
    int seq = -1, last = -1;
    while (last < 60 && read(fd[0], &seq, sizeof(seq)) == sizeof(seq))
        last = seq;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    /* Drain what it reported before dying. */
    while (read(fd[0], &seq, sizeof(seq)) == sizeof(seq))
        last = seq;
    close(fd[0]);
    assert_true(last >= 60);

    assert_int_equal(open_store(f->url, &f->st), 0);
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    struct store_upload *ul = NULL;
    size_t n = 0, uploads = 0;
    struct store_cursor after = {0}, next;
    for (;;) {
        assert_int_equal(store_upload_list(tx, user, &after, 1000, &ul, &n, &next), 0);
        for (size_t i = 0; i < n; i++) {
            int64_t cnt = 0;
            assert_int_equal(store_sample_count(tx, user, ul[i].id, &cnt), 0);
            assert_int_equal(cnt, 20); /* never a partial transaction */
        }
        uploads += n;
        free(ul);
        if (!next.set)
            break;
        after = next;
    }
    for (int s = 0; s <= last; s++) {
        char id[STORE_ID_LEN];
        struct store_upload u;
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", s);
        assert_int_equal(store_upload_get(tx, id, user, &u), 0);
    }
    int64_t total = 0;
    assert_int_equal(store_sample_count(tx, user, NULL, &total), 0);
    store_tx_rollback(tx);
    assert_true(uploads >= (size_t)last + 1);
    assert_true(uploads <= (size_t)last + 2); /* at most one committed but unreported */
    assert_int_equal(total, (int64_t)uploads * 20);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, (int64_t)uploads);
}

/* ---- 6. health checks, backup, reconnect ------------------------------------ */

static void test_health_checks(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    json_t *d = json_object();
    char err[256] = "";
    assert_int_equal(store_health_database(f->st, d, err, sizeof(err)), 0);
    assert_string_equal(json_string_value(json_object_get(d, "backend")), is_pg() ? "postgres" : "sqlite");
    json_decref(d);
    d = json_object();
    publish_n(f->st, STORE_TOPIC_HEALTH_DATA, 3, 0);
    assert_int_equal(store_health_pubsub(f->st, d, err, sizeof(err)), 0);
    json_t *t = json_object_get(json_object_get(d, "topics"), STORE_TOPIC_HEALTH_DATA);
    assert_non_null(t);
    assert_int_equal(json_integer_value(json_object_get(t, "depth")), 3);
    json_decref(d);
    /* Past a threshold the check turns unhealthy and says why. */
    struct store *st2 = NULL;
    struct store_options o;
    fill_opts(&o);
    o.health_max_depth = 2;
    o.pool_size = 1;
    assert_int_equal(store_open(f->url, &o, &st2, err, sizeof(err)), 0);
    d = json_object();
    assert_int_equal(store_health_pubsub(st2, d, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "depth"));
    json_decref(d);
    store_close(st2);
}

struct writer {
    struct store *st;
    char user[STORE_ID_LEN];
    atomic_int stop;
    atomic_int batches;
};

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    for (int b = 0; !w->stop; b++) {
        struct store_tx *tx = NULL;
        if (store_tx_begin(w->st, STORE_TX_WRITE, &tx) != 0)
            continue;
        struct store_sample v[50];
        for (int i = 0; i < 50; i++)
            fill_sample(&v[i], w->user, NULL, 100000 + b * 50 + i);
        if (store_sample_insert_batch(tx, v, 50, NULL) == 0 && store_tx_commit(tx) == 0)
            w->batches++;
        else
            store_tx_rollback(tx);
    }
    return NULL;
}

static void test_backup_online(void **state)
{
    struct fix *f = *state;
    char err[512] = "";
    migrate_all(f->st);
    if (is_pg()) {
        assert_int_equal(store_backup(f->st, "/tmp/x.dump", err, sizeof(err)), STORE_EUNSUPPORTED);
        assert_non_null(strstr(err, "pg_dump"));
        return;
    }
    struct writer w = {.st = f->st};
    make_user(f->st, "b@example.com", w.user, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_loop, &w), 0);
    /* The backup must run while the writer is committing: wait for its
     * first commit rather than guessing a delay (CI machines are loaded). */
    for (int i = 0; i < 10000 && atomic_load(&w.batches) == 0; i++)
        usleep(1000);
    char path[1200];
    snprintf(path, sizeof(path), "%s.backup", f->path);
    assert_int_equal(store_backup(f->st, path, err, sizeof(err)), 0);
    w.stop = 1;
    pthread_join(th, NULL);
    assert_true(w.batches > 0);
    /* The copy opens, has the schema and a whole number of batches. */
    char url[1300];
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct store *b = NULL;
    assert_int_equal(open_store(url, &b), 0);
    int pending = -1;
    assert_int_equal(store_migrate_pending(b, &pending, err, sizeof(err)), 0);
    assert_int_equal(pending, 0);
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(b, STORE_TX_READ, &tx), 0);
    int64_t cnt = -1;
    assert_int_equal(store_sample_count(tx, w.user, NULL, &cnt), 0);
    assert_int_equal(cnt % 50, 0);
    store_tx_rollback(tx);
    store_close(b);
    unlink(path);
    char p2[1300];
    snprintf(p2, sizeof(p2), "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof(p2), "%s-shm", path);
    unlink(p2);
}

static void test_pg_reconnects_after_server_drops_sessions(void **state)
{
    struct fix *f = *state;
    char err[512] = "";
    migrate_all(f->st);
    if (!is_pg())
        return; /* SQLite has no server to lose */
    /* Warm every pooled session, then have the server kill them all. */
    struct store *admin = NULL;
    struct store_options o;
    fill_opts(&o);
    o.pool_size = 1;
    assert_int_equal(store_open(f->url, &o, &admin, err, sizeof(err)), 0);
    assert_int_equal(store_admin_exec(admin,
                                      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                      " WHERE pid <> pg_backend_pid()"
                                      " AND datname = current_database()"
                                      " AND backend_type = 'client backend'",
                                      err, sizeof(err)),
                     0);
    store_close(admin);
    /* Every call succeeds again (reconnect at BEGIN), or at worst fails
     * cleanly with 503-class codes; none crashes or hangs. */
    int ok = 0;
    for (int i = 0; i < 20; i++) {
        json_t *d = json_object();
        int rc = store_health_database(f->st, d, err, sizeof(err));
        json_decref(d);
        ok += rc == 0;
    }
    assert_true(ok >= 19);
    publish_n(f->st, STORE_TOPIC_INSIGHTS, 1, 0);
}

int64_t store_now_ms_for_test(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Migration 007: identities keyed by (issuer, subject), the revocation set
 * and e-mail codes, on both backends. */
static void test_identities_sessions_codes(void **state)
{
    struct fix *f = *state;
    migrate_all(f->st);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], got[STORE_ID_LEN];
    make_user(f->st, "ida@example.com", a, 0);
    make_user(f->st, "idb@example.com", b, 0);
    struct store_tx *tx = begin(f->st);
    assert_int_equal(store_identity_insert(tx, "https://one.example", "sub-1", a, "ida@example.com"), 0);
    /* The same subject at another issuer is another identity. */
    assert_int_equal(store_identity_insert(tx, "https://two.example", "sub-1", b, ""), 0);
    commit(tx);
    tx = begin(f->st);
    assert_int_equal(store_identity_insert(tx, "https://one.example", "sub-1", b, ""), STORE_ECONFLICT);
    store_tx_rollback(tx);
    tx = begin(f->st);
    assert_int_equal(store_identity_get(tx, "https://one.example", "sub-1", got), 0);
    assert_string_equal(got, a);
    assert_int_equal(store_identity_get(tx, "https://two.example", "sub-1", got), 0);
    assert_string_equal(got, b);
    assert_int_equal(store_identity_get(tx, "https://one.example", "SUB-1", got), STORE_ENOTFOUND);
    int64_t n = 0;
    assert_int_equal(store_identity_count(tx, a, &n), 0);
    assert_int_equal(n, 1);

    /* Revocations: a repeat keeps one row; expired rows are pruned on read. */
    assert_int_equal(store_session_revoke(tx, "sid:s1", 1000, 5000), 0);
    assert_int_equal(store_session_revoke(tx, "sid:s1", 2000, 6000), 0);
    assert_int_equal(store_session_revoke(tx, "user:u1", 3000, 4000), 0);
    struct store_revocation rv[4];
    size_t k = 0;
    assert_int_equal(store_session_revoked_since(tx, 0, 4500, rv, 4, &k), 0);
    assert_int_equal(k, 1);
    assert_string_equal(rv[0].sid, "sid:s1");
    assert_int_equal(rv[0].revoked_at_ms, 2000);

    /* Extra columns and e-mail codes. */
    int verified = -1;
    char name[64];
    assert_int_equal(store_user_extra_set(tx, a, 1, "Ida"), 0);
    assert_int_equal(store_user_extra_get(tx, a, &verified, name, sizeof(name)), 0);
    assert_int_equal(verified, 1);
    assert_string_equal(name, "Ida");
    struct store_email_code c, c2;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", a);
    snprintf(c.code_hash, sizeof(c.code_hash), "%064d", 7);
    c.expires_at_ms = 9000;
    c.sent_at_ms = 1000;
    assert_int_equal(store_email_code_put(tx, &c), 0);
    assert_int_equal(store_email_code_attempt(tx, a), 0);
    assert_int_equal(store_email_code_get(tx, a, &c2), 0);
    assert_int_equal(c2.attempts, 1);
    assert_int_equal(store_email_code_put(tx, &c), 0); /* a new code resets the attempts */
    assert_int_equal(store_email_code_get(tx, a, &c2), 0);
    assert_int_equal(c2.attempts, 0);
    assert_string_equal(c2.code_hash, c.code_hash);
    assert_int_equal(store_email_code_delete(tx, a), 0);
    assert_int_equal(store_email_code_get(tx, a, &c2), STORE_ENOTFOUND);
    commit(tx);

    /* Erasing a user erases its identities. */
    tx = begin(f->st);
    assert_int_equal(store_user_delete(tx, a), 0);
    assert_int_equal(store_identity_get(tx, "https://one.example", "sub-1", got), STORE_ENOTFOUND);
    commit(tx);
}

int main(void)
{
    const char *want = getenv("CLARITY_TEST_BACKEND");
    if (want != NULL && strcmp(want, "postgres") == 0 && !is_pg()) {
        fprintf(stderr, "CLARITY_TEST_BACKEND=postgres but CLARITY_TEST_PG_URL is not set; "
                        "run under scripts/pg-test-server\n");
        return 1;
    }
    log_level_set(LOG_ERROR);
    fprintf(stderr, "store_test: backend %s\n", is_pg() ? "postgres" : "sqlite");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_rejects_bad_urls),
        cmocka_unit_test(test_cursor_roundtrip),
        cmocka_unit_test_setup_teardown(test_migrate_fresh_and_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_concurrent_runners, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identities_sessions_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_tampered_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_002_backfills_every_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_and_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_samples_message_one_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_analyses_insights_keys_and_erasure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_stream_crosses_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_window_matches_reference_loader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_days_match_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_days_block_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_block_format_option, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_upload_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_days_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_days_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_blocks_primary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_rows_backfill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_drops_health_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_newest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_aggregates_match_samples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_lease_ack_and_lost_lease, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_expiry_redelivers_and_poison_dead_letters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_release_spends_no_attempt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_publish_batch_keeps_order_and_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_fair_between_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_retention_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_concurrent_consumers_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_two_processes_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_listener_wakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insight_events_hear_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_sigkill_mid_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_online, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pg_reconnects_after_server_drops_sessions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
