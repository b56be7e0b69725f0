/*
 * store.c — opening the store, the connection pool, transactions, and the
 * cross-cutting pieces (errors, cursors, health checks, backup). See store.h.
 * The repositories live in repo.c, the queue in queue.c, migrations in
 * migrate.c.
 */
#include "store/store.h"
#include "store/block.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/queue.h"
#include "store/store_int.h"

void store_options_default(struct store_options *o)
{
    memset(o, 0, sizeof(*o));
    o->pool_size = 8;
    o->synchronous_full = 1;
    o->busy_timeout_ms = 5000;
    o->statement_timeout_ms = 30000;
    o->acquire_timeout_ms = 5000;
    o->queue_max_attempts = 5;
    o->queue_retention_ms = 86400LL * 1000; /* the guide's 86400 s retention */
    o->queue_backoff_base_ms = 1000;
    o->queue_backoff_max_ms = 600000;
    o->health_max_depth = 10000;
    o->health_max_age_ms = 900000;
    o->health_max_dead = 100;
}

void store_options_from_config(struct store_options *o, const struct config *cfg)
{
    store_options_default(o);
    o->synchronous_full = cfg->environment != CONFIG_ENV_DEVELOPMENT;
    o->pool_size = (cfg->http_threads > 0 ? cfg->http_threads : 4) + 4;
    o->raw_retention_ms = (int64_t)cfg->raw_upload_retention_days * 86400000LL;
    o->block_format = cfg->sample_block_format;
}

int64_t store_now_ms(void) { return time_now_ms(); }

void store_set_sealer(struct store *st, const struct store_sealer *s)
{
    if (s != NULL)
        st->sealer = *s;
    else
        memset(&st->sealer, 0, sizeof(st->sealer));
}

/* ---- helpers shared with repo.c, queue.c, migrate.c --------------------- */

int store_tx_fail(struct store_tx *tx, int rc)
{
    snprintf(tx->err, sizeof(tx->err), "%s", db_conn_errmsg(tx->conn));
    /* A statement on health_samples after 014 dropped it in another
     * process: the error code says the table is missing (SQLSTATE 42P01,
     * not the translated text) and the untranslated identifier says which. */
    if (rc == STORE_EINTERNAL && db_conn_missing_table(tx->conn) && strstr(tx->err, "health_samples") != NULL) {
        /* 014 ran in another process after this one looked: retryable. */
        tx->st->legacy_rows = 0;
        rc = STORE_EBUSY;
    }
    /* PostgreSQL aborts a transaction at its first error; SQLite does not.
     * Both behave like PostgreSQL here, so callers see one semantics. */
    if (tx->active && tx->failed_rc == 0)
        tx->failed_rc = rc;
    if (rc == STORE_EINTERNAL || rc == STORE_EUNAVAILABLE)
        log_warning("store error", LOG_STR, "backend", store_backend_name(tx->st), LOG_STR, "error", tx->err, LOG_END);
    return rc;
}

int store_legacy_rows(struct store_tx *tx, int *yes)
{
    int known = tx->st->legacy_rows;
    if (known >= 0) {
        *yes = known;
        return 0;
    }
    return store_legacy_rows_now(tx, yes);
}

int store_legacy_rows_now(struct store_tx *tx, int *yes)
{
    static const char lite[] = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'health_samples'";
    static const char pg[] = "SELECT 1 WHERE to_regclass('health_samples') IS NOT NULL";
    /* A catalogue probe, not data: it does not count as a one-statement
     * read's statement (its snapshot is not what that rule protects). */
    int one = tx->one_stmt;
    struct db_stmt *s = NULL;
    tx->one_stmt = 0;
    int rc = store_tx_stmt(tx, tx->st->backend == DB_SQLITE ? lite : pg, &s);
    tx->one_stmt = one;
    if (rc != 0)
        return rc;
    int step = db_step(s);
    db_stmt_reset(s);
    if (step != DB_ROW && step != DB_DONE)
        return store_tx_fail(tx, step);
    *yes = step == DB_ROW;
    tx->st->legacy_rows = *yes;
    return 0;
}

void store_legacy_rows_forget(struct store *st) { st->legacy_rows = -1; }

int store_tx_stmt(struct store_tx *tx, const char *sql, struct db_stmt **out)
{
    if (tx->one_stmt > 0 && tx->one_stmt++ > 1) {
        /* Autocommit gives each statement its own snapshot: a second one
         * would not see the same database as the first. */
        snprintf(tx->err, sizeof(tx->err), "a one-statement read ran a second statement");
        return store_tx_fail(tx, STORE_EINTERNAL);
    }
    struct db_stmt *s = db_stmt_get(tx->conn, sql);
    if (s == NULL)
        return store_tx_fail(tx, db_conn_errcode(tx->conn) ? db_conn_errcode(tx->conn) : STORE_EINTERNAL);
    *out = s;
    return 0;
}

int store_tx_run(struct store_tx *tx, struct db_stmt *s, int64_t *changes)
{
    int rc = db_step(s);
    while (rc == DB_ROW)
        rc = db_step(s);
    if (rc < 0) {
        db_stmt_reset(s);
        return store_tx_fail(tx, rc);
    }
    if (changes != NULL)
        *changes = db_changes(s);
    db_stmt_reset(s);
    return 0;
}

void store_col_copy(struct db_stmt *s, int col, char *dst, size_t cap)
{
    /* snprintf's "%s" cost more than the query on a row of short columns. */
    const char *t = db_col_text(s, col);
    size_t n = t != NULL ? strnlen(t, cap > 0 ? cap - 1 : 0) : 0;
    if (cap == 0)
        return;
    memcpy(dst, t != NULL ? t : "", n);
    dst[n] = '\0';
}

int store_col_dup(struct db_stmt *s, int col, char **out)
{
    const char *t = db_col_text(s, col);
    *out = NULL;
    if (t == NULL)
        return 0;
    *out = strdup(t);
    return *out != NULL ? 0 : -1;
}

int store_str_fits(const char *s, size_t cap) { return s == NULL || strnlen(s, cap) < cap; }

void store_tx_note_publish(struct store_tx *tx, const char *topic)
{
    tx->published = 1;
    for (int i = 0; i < tx->nnotify; i++)
        if (strcmp(tx->notify[i], topic) == 0)
            return;
    if (tx->nnotify < STORE_TX_MAX_NOTIFY)
        snprintf(tx->notify[tx->nnotify++], sizeof(tx->notify[0]), "%s", topic);
    else
        snprintf(tx->notify[STORE_TX_MAX_NOTIFY - 1], sizeof(tx->notify[0]), "*");
}

/* ---- opening ----------------------------------------------------------- */

/* mkdir -p for the directory part of path. */
static int make_parent_dirs(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

int store_open(const char *url, const struct store_options *opts, struct store **out, char *err, size_t errlen)
{
    struct store *st = NULL;
    struct store_options o;
    if (opts != NULL)
        o = *opts;
    else
        store_options_default(&o);
    if (o.pool_size < 1)
        o.pool_size = 1;
    if (url == NULL || url[0] == '\0') {
        snprintf(err, errlen, "DATABASE_URL is empty");
        return STORE_EINVAL;
    }
    /* Process-wide, like the configuration it comes from. */
    if (block_set_write_format(o.block_format != 0 ? o.block_format : BLOCK_FORMAT) != 0) {
        snprintf(err, errlen, "SAMPLE_BLOCK_FORMAT: no such sample block format");
        return STORE_EINVAL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        goto nomem;
    st->opts = o;
    st->legacy_rows = -1;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    pthread_mutex_init(&st->write_mu, NULL);
    pthread_mutex_init(&st->qmu, NULL);
    pthread_cond_init(&st->qcv, NULL);
    if (strncmp(url, "sqlite:", 7) == 0) {
        st->backend = DB_SQLITE;
        const char *path = url + 7;
        /* Accept sqlite:///abs/path and sqlite://rel too. */
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        if (path[0] == '\0') {
            snprintf(err, errlen, "DATABASE_URL sqlite: needs a path (sqlite:var/clarity.db)");
            store_close(st);
            return STORE_EINVAL;
        }
        if (make_parent_dirs(path) != 0) {
            snprintf(err, errlen, "cannot create the directory of the sqlite database: %s", strerror(errno));
            store_close(st);
            return STORE_EUNAVAILABLE;
        }
        st->target = strdup(path);
    } else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        st->backend = DB_POSTGRES;
        st->target = strdup(url);
    } else {
        snprintf(err, errlen, "DATABASE_URL must start with sqlite: or postgres://");
        store_close(st);
        return STORE_EINVAL;
    }
    if (st->target == NULL)
        goto nomem;
    st->pool = calloc((size_t)o.pool_size, sizeof(*st->pool));
    if (st->pool == NULL)
        goto nomem;
    struct db_open_opts dopts = {
        .synchronous_full = o.synchronous_full,
        .busy_timeout_ms = o.busy_timeout_ms,
        .statement_timeout_ms = o.statement_timeout_ms,
    };
    if (st->backend == DB_POSTGRES) {
        for (int i = 0; i < STORE_BULK_SIZES; i++)
            if ((st->bulk_sql[i] = store_sample_bulk_sql_build(store_sample_bulk_size(i))) == NULL)
                goto nomem;
    }
    for (int i = 0; i < o.pool_size; i++) {
        st->pool[i].st = st;
        st->pool[i].conn = db_conn_open(st->backend, st->target, &dopts, err, errlen);
        if (st->pool[i].conn == NULL) {
            store_close(st);
            return STORE_EUNAVAILABLE;
        }
        st->pool_n++;
    }
    *out = st;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    store_close(st);
    return STORE_ENOMEM;
}

void store_close(struct store *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < st->pool_n; i++)
        db_conn_close(st->pool[i].conn);
    free(st->pool);
    free(st->target);
    for (int i = 0; i < STORE_BULK_SIZES; i++)
        free(st->bulk_sql[i]);
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->write_mu);
    pthread_mutex_destroy(&st->qmu);
    pthread_cond_destroy(&st->qcv);
    free(st);
}

const char *store_backend_name(const struct store *st) { return st->backend == DB_SQLITE ? "sqlite" : "postgres"; }

/* ---- pool and transactions ----------------------------------------------- */

int store_conn_acquire(struct store *st, struct store_tx **out)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += st->opts.acquire_timeout_ms / 1000;
    deadline.tv_nsec += (long)(st->opts.acquire_timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    struct store_tx *tx = NULL;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        for (int i = 0; i < st->pool_n; i++) {
            if (!st->pool[i].in_use) {
                tx = &st->pool[i];
                break;
            }
        }
        if (tx != NULL)
            break;
        if (pthread_cond_timedwait(&st->cv, &st->mu, &deadline) == ETIMEDOUT)
            break;
    }
    if (tx != NULL)
        tx->in_use = 1;
    pthread_mutex_unlock(&st->mu);
    if (tx == NULL) {
        log_warning("store pool exhausted", LOG_INT, "pool_size", (long long)st->pool_n, LOG_END);
        return STORE_EUNAVAILABLE;
    }
    tx->active = 0;
    tx->write_locked = 0;
    tx->published = 0;
    tx->insight_created = 0;
    tx->failed_rc = 0;
    tx->nnotify = 0;
    tx->one_stmt = 0;
    tx->err[0] = '\0';
    int rc = db_conn_ensure(tx->conn);
    if (rc != 0) {
        store_tx_fail(tx, rc);
        store_conn_release(tx);
        return rc;
    }
    *out = tx;
    return 0;
}

void store_conn_release(struct store_tx *tx)
{
    struct store *st = tx->st;
    if (tx->write_locked) {
        pthread_mutex_unlock(&st->write_mu);
        tx->write_locked = 0;
    }
    pthread_mutex_lock(&st->mu);
    tx->in_use = 0;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

int store_tx_begin(struct store *st, enum store_tx_mode mode, struct store_tx **out)
{
    struct store_tx *tx = NULL;
    int rc = store_conn_acquire(st, &tx);
    if (rc != 0)
        return rc;
    /* A pooled connection must come back outside any transaction. If a
     * ROLLBACK failed (out of memory: found by fault injection), the
     * connection is still in the old one and every BEGIN on it would fail
     * for the rest of the process; end it now. */
    if (db_in_transaction(tx->conn) && db_exec(tx->conn, "ROLLBACK") != 0 && db_in_transaction(tx->conn)) {
        snprintf(tx->err, sizeof(tx->err), "a pooled connection is stuck in a transaction");
        store_conn_release(tx);
        return STORE_EUNAVAILABLE;
    }
    const char *sql;
    if (st->backend == DB_SQLITE && mode == STORE_TX_READ_ONE) {
        tx->one_stmt = 1;
        *out = tx;
        return 0;
    }
    if (st->backend == DB_SQLITE) {
        if (mode == STORE_TX_WRITE) {
            /* Bounded like SQLite's own busy wait: a writer that never
             * finishes (or a thread nesting write transactions) yields
             * STORE_EBUSY, not a hang. */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_sec += st->opts.busy_timeout_ms / 1000;
            dl.tv_nsec += (long)(st->opts.busy_timeout_ms % 1000) * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            if (pthread_mutex_timedlock(&st->write_mu, &dl) != 0) {
                snprintf(tx->err, sizeof(tx->err), "timed out waiting for the write lock");
                store_conn_release(tx);
                return STORE_EBUSY;
            }
            tx->write_locked = 1;
            sql = "BEGIN IMMEDIATE";
        } else {
            sql = "BEGIN";
        }
    } else {
        sql = mode == STORE_TX_WRITE ? "BEGIN" : "BEGIN READ ONLY";
    }
    rc = db_exec_cached(tx->conn, sql);
    if (rc == STORE_EUNAVAILABLE && st->backend == DB_POSTGRES) {
        /* The server dropped this session since its last use (restart,
         * pg_terminate_backend). Nothing ran yet, so reconnect and retry once. */
        rc = db_conn_ensure(tx->conn);
        if (rc == 0)
            rc = db_exec(tx->conn, sql);
    }
    if (rc != 0) {
        store_tx_fail(tx, rc);
        store_conn_release(tx);
        return rc;
    }
    tx->active = 1;
    *out = tx;
    return 0;
}

int store_tx_commit(struct store_tx *tx)
{
    struct store *st = tx->st;
    int rc = tx->failed_rc;
    if (tx->one_stmt > 0) {
        /* Autocommit: nothing to commit, the statement ended its snapshot. */
        store_conn_release(tx);
        return rc;
    }
    if (rc == 0 && st->backend == DB_POSTGRES && tx->nnotify > 0) {
        /* NOTIFY is transactional: listeners hear it only if COMMIT succeeds
         * (PostgreSQL manual, NOTIFY). One per distinct topic, not per row. */
        struct db_stmt *s = NULL;
        for (int i = 0; i < tx->nnotify && rc == 0; i++) {
            rc = store_tx_stmt(tx, "SELECT pg_notify('" STORE_NOTIFY_CHANNEL "', ?1)", &s);
            if (rc == 0) {
                db_bind_text(s, 1, tx->notify[i]);
                rc = store_tx_run(tx, s, NULL);
            }
        }
    }
    if (rc == 0) {
        rc = db_exec_cached(tx->conn, "COMMIT");
        if (rc != 0)
            store_tx_fail(tx, rc);
    }
    if (rc != 0) {
        db_exec_cached(tx->conn, "ROLLBACK");
    } else if (tx->published || tx->insight_created) {
        pthread_mutex_lock(&st->qmu);
        st->qgen += tx->published ? 1 : 0;
        st->igen += tx->insight_created ? 1 : 0;
        pthread_cond_broadcast(&st->qcv);
        pthread_mutex_unlock(&st->qmu);
    }
    tx->active = 0;
    store_conn_release(tx);
    return rc;
}

void store_tx_rollback(struct store_tx *tx)
{
    if (tx == NULL)
        return;
    if (tx->active)
        db_exec_cached(tx->conn, "ROLLBACK");
    tx->active = 0;
    store_conn_release(tx);
}

const char *store_tx_errmsg(const struct store_tx *tx) { return tx->err; }

/* ---- cursors ------------------------------------------------------------- */

void store_cursor_format(const struct store_cursor *c, char out[STORE_CURSOR_LEN])
{
    snprintf(out, STORE_CURSOR_LEN, "%" PRId64 ".%s", c->ts, c->key);
}

int store_cursor_parse(const char *s, struct store_cursor *c)
{
    if (s == NULL || strlen(s) >= STORE_CURSOR_LEN)
        return STORE_EINVAL;
    char *end = NULL;
    errno = 0;
    long long ts = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '.')
        return STORE_EINVAL;
    const char *key = end + 1;
    size_t n = strlen(key);
    if (n == 0 || n >= STORE_ID_LEN)
        return STORE_EINVAL;
    for (size_t i = 0; i < n; i++) {
        char ch = key[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-'))
            return STORE_EINVAL;
    }
    c->set = 1;
    c->ts = ts;
    memcpy(c->key, key, n + 1);
    return 0;
}

/* ---- administration ------------------------------------------------------ */

int store_admin_exec(struct store *st, const char *sql, char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc != 0) {
        snprintf(err, errlen, "%s", clarity_strerror(rc));
        return rc;
    }
    rc = db_exec(tx->conn, sql);
    if (rc != 0) {
        snprintf(err, errlen, "%s", db_conn_errmsg(tx->conn));
        store_tx_rollback(tx);
        return rc;
    }
    return store_tx_commit(tx);
}

int store_backup(struct store *st, const char *path, char *err, size_t errlen)
{
    if (st->backend != DB_SQLITE) {
        snprintf(err, errlen,
                 "backup of PostgreSQL is done with pg_dump (see docs/operations.md, Storage): "
                 "pg_dump --format=custom --file=%s \"$DATABASE_URL\"",
                 path);
        return STORE_EUNSUPPORTED;
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.partial", path) >= (int)sizeof(tmp)) {
        snprintf(err, errlen, "backup path too long");
        return STORE_EINVAL;
    }
    struct store_tx *tx = NULL;
    sqlite3 *dst = NULL;
    sqlite3_backup *b = NULL;
    int rc = store_conn_acquire(st, &tx);
    if (rc != 0) {
        snprintf(err, errlen, "%s", clarity_strerror(rc));
        return rc;
    }
    unlink(tmp);
    if (make_parent_dirs(path) != 0 ||
        sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot create %s", tmp);
        rc = STORE_EUNAVAILABLE;
        goto done;
    }
    /* One step of -1 pages copies everything inside a single read transaction:
     * in WAL mode that snapshot does not block writers, and the copy cannot be
     * restarted by their commits (https://sqlite.org/backup.html). */
    b = sqlite3_backup_init(dst, "main", (sqlite3 *)db_conn_raw(tx->conn), "main");
    if (b == NULL) {
        snprintf(err, errlen, "backup failed: %s", sqlite3_errmsg(dst));
        rc = STORE_EINTERNAL;
        goto done;
    }
    int src;
    for (int tries = 0; tries < 600; tries++) {
        src = sqlite3_backup_step(b, -1);
        if (src != SQLITE_BUSY && src != SQLITE_LOCKED)
            break;
        sqlite3_sleep(50);
    }
    if (src != SQLITE_DONE) {
        snprintf(err, errlen, "backup failed: %s", sqlite3_errstr(src));
        rc = STORE_EUNAVAILABLE;
        goto done;
    }
    sqlite3_backup_finish(b);
    b = NULL;
    /* The copy is a plain rollback-journal database, self-contained. */
    if (sqlite3_exec(dst, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "backup failed: %s", sqlite3_errmsg(dst));
        rc = STORE_EUNAVAILABLE;
        goto done;
    }
    sqlite3_close(dst);
    dst = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "cannot rename backup into place: %s", strerror(errno));
        rc = STORE_EUNAVAILABLE;
        goto done;
    }
    rc = 0;
done:
    if (b != NULL)
        sqlite3_backup_finish(b);
    if (dst != NULL) {
        sqlite3_close(dst);
        unlink(tmp);
    }
    store_conn_release(tx);
    return rc;
}

/* ---- health checks -------------------------------------------------------- */

int store_health_database(void *ctx, json_t *details, char *err, size_t errlen)
{
    struct store *st = ctx;
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_tx_stmt(tx, "SELECT 1", &s);
    if (rc == 0) {
        rc = db_step(s);
        rc = rc == DB_ROW && db_col_int64(s, 0) == 1 ? 0 : (rc < 0 ? rc : STORE_EINTERNAL);
        db_stmt_reset(s);
    }
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    json_object_set_new(details, "backend", json_string(store_backend_name(st)));
    json_object_set_new(details, "pool_size", json_integer(st->pool_n));
    if (rc != 0) {
        snprintf(err, errlen, "%s", clarity_strerror(rc));
        return -1;
    }
    return 0;
}

int store_health_pubsub(void *ctx, json_t *details, char *err, size_t errlen)
{
    struct store *st = ctx;
    static const char *const topics[] = {STORE_TOPIC_HEALTH_DATA, STORE_TOPIC_INSIGHTS};
    json_t *tj = json_object();
    int healthy = 1;
    char why[128] = "";
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        struct store_queue_stats qs;
        int rc = store_queue_stats(st, topics[i], &qs);
        if (rc != 0) {
            json_decref(tj);
            snprintf(err, errlen, "queue unavailable: %s", clarity_strerror(rc));
            return -1;
        }
        json_t *o = json_object();
        json_object_set_new(o, "depth", json_integer(qs.depth));
        json_object_set_new(o, "oldest_unacked_age_ms", json_integer(qs.oldest_age_ms));
        json_object_set_new(o, "dead_letter", json_integer(qs.dead));
        json_object_set_new(tj, topics[i], o);
        if (healthy && qs.depth > st->opts.health_max_depth) {
            healthy = 0;
            snprintf(why, sizeof(why), "%s depth %" PRId64 " over %" PRId64, topics[i], qs.depth,
                     st->opts.health_max_depth);
        } else if (healthy && qs.oldest_age_ms > st->opts.health_max_age_ms) {
            healthy = 0;
            snprintf(why, sizeof(why), "%s oldest message %" PRId64 " ms old", topics[i], qs.oldest_age_ms);
        } else if (healthy && qs.dead > st->opts.health_max_dead) {
            healthy = 0;
            snprintf(why, sizeof(why), "%s has %" PRId64 " dead letters", topics[i], qs.dead);
        }
    }
    json_object_set_new(details, "topics", tj);
    if (!healthy) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    return 0;
}

int store_health_register(struct health_registry *r, struct store *st)
{
    if (health_register(r, "database", store_health_database, st) != 0 ||
        health_register(r, "pubsub", store_health_pubsub, st) != 0)
        return -1;
    return 0;
}

int store_sealer_code(int rc)
{
    if (rc >= STORE_EUNSUPPORTED && rc <= STORE_ENOTFOUND)
        return rc;
    return rc == KEYRING_ENOMEM || rc == ENVELOPE_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
}
