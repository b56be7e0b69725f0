/*
 * store_fail.c — store-call fault injection for the real binary (issue 16):
 * an LD_PRELOAD library that makes every Nth SQLite statement step or
 * sqlite3_exec (BEGIN and COMMIT, prepared once or not, are steps too) fail as the
 * database would when its disk fails or fills, or it stays locked.
 *
 * It sits on libsqlite3's API, so the binary under test is the one that
 * ships: no hook in src/store, nothing a production environment could arm.
 * The store's own error mapping (src/store/db.c, lite_map) runs on the
 * injected codes, as it would on real ones: the failed call returns the
 * code, and sqlite3_errcode / sqlite3_extended_errcode / sqlite3_errmsg on
 * that connection report it until the thread's next SQLite call.
 *
 * Environment (without STORE_FAIL_EVERY nothing fails):
 *   STORE_FAIL_EVERY=N       fail every Nth step/exec while armed
 *   STORE_FAIL_ARM_FILE=P    armed only while the file P exists (checked on
 *                            every call: a stat, cheap next to a statement)
 *   STORE_FAIL_COUNT_FILE=P  at exit, write "calls failed" to P
 * Injected codes rotate: SQLITE_IOERR_WRITE, SQLITE_BUSY, SQLITE_FULL (the
 * store maps them to STORE_EUNAVAILABLE, STORE_EBUSY, STORE_EUNAVAILABLE).
 *
 * A ROLLBACK is never failed: the store's answer to a failure is to roll
 * back, and SQLite itself rolls back on the errors injected here. A failed
 * COMMIT leaves the transaction open, as SQLite's SQLITE_BUSY on COMMIT
 * does; the store must roll it back (or the next BEGIN on the pooled
 * connection fails).
 *
 * PostgreSQL the same way, on libpq's API: every Nth PQexec or PQexecPrepared
 * (the store's only statement calls; a ROLLBACK is never failed) runs,
 * instead of the statement, one that the server itself fails with the
 * injected SQLSTATE: 53100 (disk full), 40001 (serialization failure) or
 * 53300 (too many connections). The answer is the server's own error
 * result, and inside a transaction the transaction is aborted, as after
 * any real statement error, so the store's error mapping and its rollback
 * run on what a real failure leaves behind.
 *
 * tests/e2e/test_store_faults.py runs `clarity serve` under it (release and
 * sanitizer builds: unlike malloc_fail.c it does not compete with ASan),
 * on SQLite and on PostgreSQL.
 */
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int (*real_step)(sqlite3_stmt *);
static int (*real_exec)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **);
static int (*real_errcode)(sqlite3 *);
static int (*real_extended_errcode)(sqlite3 *);
static const char *(*real_errmsg)(sqlite3 *);
static PGresult *(*real_pqexec)(PGconn *, const char *);
static PGresult *(*real_pqprepare)(PGconn *, const char *, const char *, int, const Oid *);
static PGresult *(*real_pqexec_prepared)(PGconn *, const char *, int, const char *const *, const int *, const int *,
                                         int);

static atomic_ulong calls, failed;
static unsigned long every;
static const char *arm_file;
static atomic_int configured;

/* The injected failure this thread's last SQLite call returned, per
 * connection: reported by the error functions until the next call. */
static _Thread_local sqlite3 *injected_db;
static _Thread_local int injected_rc;
static _Thread_local int in_exec;

static const int codes[] = {SQLITE_IOERR_WRITE, SQLITE_BUSY, SQLITE_FULL};

static void configure(void)
{
    real_step = (int (*)(sqlite3_stmt *))dlsym(RTLD_NEXT, "sqlite3_step");
    real_exec = (int (*)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **))dlsym(
        RTLD_NEXT, "sqlite3_exec");
    real_errcode = (int (*)(sqlite3 *))dlsym(RTLD_NEXT, "sqlite3_errcode");
    real_extended_errcode = (int (*)(sqlite3 *))dlsym(RTLD_NEXT, "sqlite3_extended_errcode");
    real_errmsg = (const char *(*)(sqlite3 *))dlsym(RTLD_NEXT, "sqlite3_errmsg");
    real_pqexec = (PGresult * (*)(PGconn *, const char *)) dlsym(RTLD_NEXT, "PQexec");
    real_pqprepare =
        (PGresult * (*)(PGconn *, const char *, const char *, int, const Oid *)) dlsym(RTLD_NEXT, "PQprepare");
    real_pqexec_prepared =
        (PGresult * (*)(PGconn *, const char *, int, const char *const *, const int *, const int *, int))
            dlsym(RTLD_NEXT, "PQexecPrepared");
    const char *e = getenv("STORE_FAIL_EVERY");
    every = e != NULL ? strtoul(e, NULL, 10) : 0;
    arm_file = getenv("STORE_FAIL_ARM_FILE");
    atomic_store(&configured, 1);
}

/* 0, or the code this call is to fail with. */
static int fail_now(sqlite3 *db)
{
    injected_db = NULL;
    if (every == 0 || (arm_file != NULL && access(arm_file, F_OK) != 0))
        return 0;
    unsigned long n = atomic_fetch_add(&calls, 1) + 1;
    if (n % every != 0)
        return 0;
    unsigned long k = atomic_fetch_add(&failed, 1);
    injected_db = db;
    injected_rc = codes[k % (sizeof(codes) / sizeof(codes[0]))];
    return injected_rc;
}

int sqlite3_step(sqlite3_stmt *st)
{
    if (!atomic_load(&configured))
        configure();
    /* sqlite3_exec steps its statements through this symbol too; a step
     * failed in there would be swallowed (sqlite3_exec reports the
     * statement's finalize, which is clean): the exec is the unit. */
    const char *sql = sqlite3_sql(st);
    int rc = 0;
    if (in_exec || (sql != NULL && strncasecmp(sql, "ROLLBACK", 8) == 0))
        injected_db = NULL; /* a ROLLBACK (prepared once, db_exec_cached) is never failed */
    else
        rc = fail_now(sqlite3_db_handle(st));
    return rc != 0 ? rc : real_step(st);
}

int sqlite3_exec(sqlite3 *db, const char *sql, int (*cb)(void *, int, char **, char **), void *arg, char **msg)
{
    if (!atomic_load(&configured))
        configure();
    int rc = 0;
    if (sql != NULL && strncasecmp(sql, "ROLLBACK", 8) == 0)
        injected_db = NULL; /* never failed (see above) */
    else
        rc = fail_now(db);
    if (rc == 0) {
        in_exec = 1;
        rc = real_exec(db, sql, cb, arg, msg);
        in_exec = 0;
        return rc;
    }
    if (msg != NULL)
        *msg = NULL;
    return rc;
}

int sqlite3_errcode(sqlite3 *db)
{
    if (!atomic_load(&configured))
        configure();
    return db != NULL && db == injected_db ? (injected_rc & 0xff) : real_errcode(db);
}

int sqlite3_extended_errcode(sqlite3 *db)
{
    if (!atomic_load(&configured))
        configure();
    return db != NULL && db == injected_db ? injected_rc : real_extended_errcode(db);
}

const char *sqlite3_errmsg(sqlite3 *db)
{
    if (!atomic_load(&configured))
        configure();
    return db != NULL && db == injected_db ? "injected fault (tests/fault/store_fail.c)" : real_errmsg(db);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

static const char *const pg_states[] = {"53100", "40001", "53300"};

/* The statement the server fails with the k-th injected SQLSTATE. */
static PGresult *pg_fail(PGconn *conn, unsigned long k)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "DO $$BEGIN RAISE EXCEPTION 'injected fault (tests/fault/store_fail.c)' USING ERRCODE = '%s'; END$$",
             pg_states[k % (sizeof(pg_states) / sizeof(pg_states[0]))]);
    return real_pqexec(conn, sql);
}

/* The prepared statements that are a ROLLBACK (the store prepares one per
 * connection, db_exec_cached): (connection, name), never failed. */
static struct {
    PGconn *conn;
    char name[64];
} rollbacks[512];
static size_t n_rollbacks;
static pthread_mutex_t rollbacks_mu = PTHREAD_MUTEX_INITIALIZER;

static int is_rollback(PGconn *conn, const char *name)
{
    int found = 0;
    pthread_mutex_lock(&rollbacks_mu);
    for (size_t i = 0; i < n_rollbacks && !found; i++)
        found = rollbacks[i].conn == conn && strcmp(rollbacks[i].name, name) == 0;
    pthread_mutex_unlock(&rollbacks_mu);
    return found;
}

PGresult *PQprepare(PGconn *conn, const char *name, const char *query, int n, const Oid *types)
{
    if (!atomic_load(&configured))
        configure();
    if (query != NULL && name != NULL && strncasecmp(query, "ROLLBACK", 8) == 0 && strlen(name) < 64) {
        pthread_mutex_lock(&rollbacks_mu);
        size_t i = n_rollbacks < 512 ? n_rollbacks++ : (size_t)(atomic_load(&calls) % 512); /* reuse a slot */
        rollbacks[i].conn = conn;
        strcpy(rollbacks[i].name, name);
        pthread_mutex_unlock(&rollbacks_mu);
    }
    return real_pqprepare(conn, name, query, n, types);
}

/* 1 when this PostgreSQL call is to fail (its number in *k). */
static int pg_fail_now(unsigned long *k)
{
    if (every == 0 || (arm_file != NULL && access(arm_file, F_OK) != 0))
        return 0;
    unsigned long n = atomic_fetch_add(&calls, 1) + 1;
    if (n % every != 0)
        return 0;
    *k = atomic_fetch_add(&failed, 1);
    return 1;
}

PGresult *PQexec(PGconn *conn, const char *query)
{
    if (!atomic_load(&configured))
        configure();
    unsigned long k;
    if (query != NULL && strncasecmp(query, "ROLLBACK", 8) != 0 && pg_fail_now(&k))
        return pg_fail(conn, k);
    return real_pqexec(conn, query);
}

PGresult *PQexecPrepared(PGconn *conn, const char *name, int n, const char *const *values, const int *lengths,
                         const int *formats, int result_format)
{
    if (!atomic_load(&configured))
        configure();
    unsigned long k;
    if (name != NULL && !is_rollback(conn, name) && pg_fail_now(&k))
        return pg_fail(conn, k);
    return real_pqexec_prepared(conn, name, n, values, lengths, formats, result_format);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("STORE_FAIL_COUNT_FILE");
    FILE *f = path != NULL ? fopen(path, "w") : NULL;
    if (f != NULL) {
        fprintf(f, "%lu %lu\n", atomic_load(&calls), atomic_load(&failed));
        fclose(f);
    }
}
