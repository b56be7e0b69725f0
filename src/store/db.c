/*
 * db.c — the store's driver layer over SQLite 3 and libpq. See db.h.
 *
 * SQLite: one sqlite3 handle opened with SQLITE_OPEN_NOMUTEX (the pool
 * guarantees one thread at a time), statements prepared with
 * SQLITE_PREPARE_PERSISTENT and kept for the connection's life
 * (https://sqlite.org/c3ref/prepare.html).
 *
 * PostgreSQL: one PGconn; each distinct SQL text becomes a named prepared
 * statement (PQprepare) executed with PQexecPrepared. Parameters travel in
 * text format except blobs, which travel in binary format so that no bytea
 * escaping is needed on the way in (libpq "Command Execution Functions",
 * paramFormats). Results come back in text format (bytea decoded with
 * PQunescapeBytea) unless the statement asked for binary results
 * (db_stmt_binary_results): then each column is decoded from its type's
 * binary send format (network byte order integers, IEEE 754 floats, raw
 * text), which libpq hands over as is.
 */
#include "store/db.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

struct db_stmt {
    struct db_conn *c;
    const char *key; /* the SQL text's address: the cache key */
    /* SQLite */
    sqlite3_stmt *ss;
    /* PostgreSQL */
    char name[24];
    int nparams;
    size_t *poff; /* offset of each parameter's bytes in arena */
    int *plen;
    int *pfmt;            /* 0 text, 1 binary */
    unsigned char *pnull; /* 1 when the parameter is NULL */
    const char **pvals;   /* built at execution from arena + poff */
    char *arena;
    size_t alen, acap;
    PGresult *res;
    int row, nrows;
    unsigned char **dec; /* decoded bytea per column of the current row */
    size_t *declen;
    int ndec;
    int64_t changes;
    int bind_rc; /* first failed bind, reported by db_step */
    int rfmt;    /* result format: 0 text, 1 binary */
};

struct db_conn {
    enum db_backend backend;
    sqlite3 *lite;
    PGconn *pg;
    char *target; /* PostgreSQL URL for reconnects (secret: never printed) */
    struct db_open_opts opts;
    struct db_stmt **stmts;
    size_t nstmts, capstmts;
    unsigned next_name;
    int errcode;
    int missing_table; /* the last error: a statement named a table that does not exist */
    char err[512];
};

static void set_err(struct db_conn *c, int code, const char *prefix, const char *detail)
{
    c->errcode = code;
    c->missing_table = 0;
    snprintf(c->err, sizeof(c->err), "%s%s", prefix, detail != NULL ? detail : "");
    /* libpq messages end with a newline; keep one line. */
    size_t n = strlen(c->err);
    while (n > 0 && (c->err[n - 1] == '\n' || c->err[n - 1] == ' '))
        c->err[--n] = '\0';
    for (char *p = c->err; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* SQLite result codes to store codes (https://sqlite.org/rescode.html). */
static int lite_map(struct db_conn *c, int rc)
{
    int code;
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        code = (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) ? STORE_ECONFLICT : STORE_EINVAL;
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: code = STORE_EBUSY; break;
    case SQLITE_NOMEM: code = STORE_ENOMEM; break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = STORE_EUNAVAILABLE; break;
    default: code = STORE_EINTERNAL;
    }
    set_err(c, code, "sqlite: ", sqlite3_errmsg(c->lite));
    /* SQLite has no finer code for it; its messages are not translated. */
    c->missing_table = (rc & 0xff) == SQLITE_ERROR && strncmp(sqlite3_errmsg(c->lite), "no such table", 13) == 0;
    return code;
}

/* SQLSTATE classes to store codes (PostgreSQL manual, Appendix A). */
static int pg_map(struct db_conn *c, const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    int code = STORE_EINTERNAL;
    if (PQstatus(c->pg) != CONNECTION_OK)
        code = STORE_EUNAVAILABLE;
    else if (state == NULL)
        code = STORE_EUNAVAILABLE; /* no server answer: the connection failed */
    else if (strcmp(state, "23505") == 0)
        code = STORE_ECONFLICT;
    else if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
        code = STORE_EINVAL;
    else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 || strncmp(state, "53", 2) == 0)
        code = STORE_EUNAVAILABLE;
    else if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0 ||
             strcmp(state, "57014") == 0)
        code = STORE_EBUSY;
    /* The primary message only: DETAIL may quote key values (emails, ids). */
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL || msg[0] == '\0')
        msg = PQerrorMessage(c->pg);
    set_err(c, code, "postgres: ", msg);
    c->missing_table = state != NULL && strcmp(state, "42P01") == 0; /* undefined_table, whatever the locale */
    return code;
}

static void pg_ignore_notice(void *arg, const char *message) { (void)arg, (void)message; }

static int pg_session_setup(struct db_conn *c)
{
    char sql[128];
    PQsetNoticeProcessor(c->pg, pg_ignore_notice, NULL);
    snprintf(sql, sizeof(sql), "SET statement_timeout = %d", c->opts.statement_timeout_ms);
    return db_exec(c, sql);
}

PGconn *db_pg_connect(const char *url)
{
    /* A default connect timeout, so that an unreachable server makes calls
     * fail with 503 instead of hanging on TCP; the URL's own
     * connect_timeout, coming later, takes precedence (libpq,
     * PQconnectdbParams with expand_dbname). */
    const char *const keys[] = {"connect_timeout", "dbname", NULL};
    const char *const vals[] = {"5", url, NULL};
    return PQconnectdbParams(keys, vals, 1);
}

struct db_conn *db_conn_open(enum db_backend backend, const char *target, const struct db_open_opts *opts, char *err,
                             size_t errlen)
{
    struct db_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->backend = backend;
    c->opts = *opts;
    if (backend == DB_SQLITE) {
        int rc =
            sqlite3_open_v2(target, &c->lite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK) {
            snprintf(err, errlen, "cannot open sqlite database: %s",
                     c->lite != NULL ? sqlite3_errmsg(c->lite) : sqlite3_errstr(rc));
            goto fail;
        }
        sqlite3_extended_result_codes(c->lite, 1);
        sqlite3_busy_timeout(c->lite, opts->busy_timeout_ms);
        /* WAL lets readers run beside the one writer (https://sqlite.org/wal.html);
         * FULL syncs the WAL at every commit, NORMAL only at checkpoints.
         * The page cache may grow to 32 MiB per connection (allocated only as
         * pages are used; SQLite's default is 2 MiB): the per-user sample
         * uuid index is random by nature, and with the default every 1,000-
         * sample upload re-read much of it (26% more samples/s measured). */
        char pragmas[256];
        snprintf(pragmas, sizeof(pragmas),
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s; PRAGMA foreign_keys=ON;"
                 "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-32768;",
                 opts->synchronous_full ? "FULL" : "NORMAL");
        if (db_exec(c, pragmas) != 0) {
            snprintf(err, errlen, "cannot configure sqlite database: %s", c->err);
            goto fail;
        }
    } else {
        c->target = strdup(target);
        if (c->target == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        c->pg = db_pg_connect(target);
        if (c->pg == NULL || PQstatus(c->pg) != CONNECTION_OK) {
            /* libpq's text names host and user, never the password. */
            set_err(c, STORE_EUNAVAILABLE,
                    "cannot connect to postgres: ", c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
            snprintf(err, errlen, "%s", c->err);
            goto fail;
        }
        if (pg_session_setup(c) != 0) {
            snprintf(err, errlen, "%s", c->err);
            goto fail;
        }
    }
    return c;
fail:
    db_conn_close(c);
    return NULL;
}

static void stmt_clear_results(struct db_stmt *s)
{
    if (s->res != NULL) {
        PQclear(s->res);
        s->res = NULL;
    }
    for (int i = 0; i < s->ndec; i++) {
        if (s->dec[i] != NULL)
            PQfreemem(s->dec[i]);
        s->dec[i] = NULL;
    }
    s->row = -1;
    s->nrows = 0;
}

static void stmt_free(struct db_stmt *s)
{
    if (s == NULL)
        return;
    if (s->ss != NULL)
        sqlite3_finalize(s->ss);
    stmt_clear_results(s);
    free(s->dec);
    free(s->declen);
    free(s->poff);
    free(s->plen);
    free(s->pfmt);
    free(s->pnull);
    free(s->pvals);
    free(s->arena);
    free(s);
}

static void cache_clear(struct db_conn *c)
{
    for (size_t i = 0; i < c->nstmts; i++)
        stmt_free(c->stmts[i]);
    c->nstmts = 0;
}

void db_conn_close(struct db_conn *c)
{
    if (c == NULL)
        return;
    cache_clear(c);
    free(c->stmts);
    if (c->lite != NULL)
        sqlite3_close_v2(c->lite);
    if (c->pg != NULL)
        PQfinish(c->pg);
    free(c->target);
    free(c);
}

enum db_backend db_conn_backend(const struct db_conn *c) { return c->backend; }
int db_conn_missing_table(const struct db_conn *c) { return c->missing_table; }

const char *db_conn_errmsg(const struct db_conn *c) { return c->err; }
int db_conn_errcode(const struct db_conn *c) { return c->errcode; }
void *db_conn_raw(struct db_conn *c) { return c->backend == DB_SQLITE ? (void *)c->lite : (void *)c->pg; }

int db_conn_ensure(struct db_conn *c)
{
    if (c->backend == DB_SQLITE || PQstatus(c->pg) == CONNECTION_OK)
        return 0;
    /* The server went away (restart, failover): prepared statements are gone
     * with the session, so forget them and reconnect once. */
    cache_clear(c);
    PQreset(c->pg);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        set_err(c, STORE_EUNAVAILABLE, "postgres unavailable: ", PQerrorMessage(c->pg));
        return STORE_EUNAVAILABLE;
    }
    return pg_session_setup(c);
}

int db_in_transaction(const struct db_conn *c)
{
    if (c->backend == DB_SQLITE)
        return c->lite != NULL && !sqlite3_get_autocommit(c->lite);
    return c->pg != NULL && PQtransactionStatus(c->pg) != PQTRANS_IDLE && PQtransactionStatus(c->pg) != PQTRANS_UNKNOWN;
}

int db_exec(struct db_conn *c, const char *sql)
{
    if (c->backend == DB_SQLITE) {
        char *msg = NULL;
        int rc = sqlite3_exec(c->lite, sql, NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            int code = lite_map(c, sqlite3_extended_errcode(c->lite));
            if (msg != NULL)
                set_err(c, code, "sqlite: ", msg);
            sqlite3_free(msg);
            return code;
        }
        return 0;
    }
    PGresult *res = PQexec(c->pg, sql);
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_map(c, res);
    PQclear(res);
    return rc;
}

int db_exec_cached(struct db_conn *c, const char *sql)
{
    /* sqlite3_exec parses its text on every call: for a read that is a third
     * of an authenticated request's database time (perf, issue 22). */
    if (c->backend != DB_SQLITE)
        return db_exec(c, sql);
    struct db_stmt *s = db_stmt_get(c, sql);
    if (s == NULL)
        return c->errcode ? c->errcode : STORE_EINTERNAL;
    int rc;
    while ((rc = db_step(s)) == DB_ROW)
        ;
    db_stmt_reset(s);
    return rc;
}

/* Rewrite ?N to $N outside quoted text; report the highest N. */
static char *pg_rewrite(const char *sql, int *maxp)
{
    size_t n = strlen(sql);
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    char quote = 0;
    int maxn = 0;
    for (size_t i = 0; i <= n; i++) {
        char ch = sql[i];
        if (quote) {
            if (ch == quote)
                quote = 0;
        } else if (ch == '\'' || ch == '"') {
            quote = ch;
        } else if (ch == '?' && sql[i + 1] >= '0' && sql[i + 1] <= '9') {
            ch = '$';
            int v = (int)strtol(sql + i + 1, NULL, 10);
            if (v > maxn)
                maxn = v;
        }
        out[i] = ch;
    }
    *maxp = maxn;
    return out;
}

static struct db_stmt *stmt_prepare(struct db_conn *c, const char *sql)
{
    struct db_stmt *s = calloc(1, sizeof(*s));
    char *pgsql = NULL;
    if (s == NULL) {
        set_err(c, STORE_ENOMEM, "out of memory", "");
        return NULL;
    }
    s->c = c;
    s->key = sql;
    s->row = -1;
    if (c->backend == DB_SQLITE) {
        int rc = sqlite3_prepare_v3(c->lite, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->ss, NULL);
        if (rc != SQLITE_OK) {
            lite_map(c, sqlite3_extended_errcode(c->lite));
            goto fail;
        }
        return s;
    }
    int np = 0;
    pgsql = pg_rewrite(sql, &np);
    if (pgsql == NULL)
        goto nomem;
    s->nparams = np;
    size_t cnt = np > 0 ? (size_t)np : 1;
    s->poff = calloc(cnt, sizeof(*s->poff));
    s->plen = calloc(cnt, sizeof(*s->plen));
    s->pfmt = calloc(cnt, sizeof(*s->pfmt));
    s->pnull = calloc(cnt, 1);
    s->pvals = calloc(cnt, sizeof(*s->pvals));
    if (!s->poff || !s->plen || !s->pfmt || !s->pnull || !s->pvals)
        goto nomem;
    memset(s->pnull, 1, cnt);
    snprintf(s->name, sizeof(s->name), "clarity_%u", c->next_name++);
    PGresult *res = PQprepare(c->pg, s->name, pgsql, 0, NULL);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        pg_map(c, res);
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    free(pgsql);
    return s;
nomem:
    set_err(c, STORE_ENOMEM, "out of memory", "");
fail:
    free(pgsql);
    stmt_free(s);
    return NULL;
}

struct db_stmt *db_stmt_get(struct db_conn *c, const char *sql)
{
    for (size_t i = 0; i < c->nstmts; i++)
        if (c->stmts[i]->key == sql)
            return c->stmts[i];
    if (c->nstmts == c->capstmts) {
        size_t cap = c->capstmts ? c->capstmts * 2 : 64;
        struct db_stmt **p = realloc(c->stmts, cap * sizeof(*p));
        if (p == NULL) {
            set_err(c, STORE_ENOMEM, "out of memory", "");
            return NULL;
        }
        c->stmts = p;
        c->capstmts = cap;
    }
    struct db_stmt *s = stmt_prepare(c, sql);
    if (s == NULL)
        return NULL;
    c->stmts[c->nstmts++] = s;
    return s;
}

/* PostgreSQL: copy a parameter's bytes into the statement's arena. */
static int pg_put(struct db_stmt *s, int idx, const void *p, size_t len, int fmt)
{
    if (idx < 1 || idx > s->nparams || len > INT32_MAX) {
        set_err(s->c, STORE_EINVAL, "parameter index or size out of range", "");
        return s->bind_rc = STORE_EINVAL;
    }
    if (s->alen + len + 1 > s->acap) {
        size_t cap = s->acap ? s->acap : 256;
        while (cap < s->alen + len + 1)
            cap *= 2;
        char *a = realloc(s->arena, cap);
        if (a == NULL) {
            set_err(s->c, STORE_ENOMEM, "out of memory", "");
            return s->bind_rc = STORE_ENOMEM;
        }
        s->arena = a;
        s->acap = cap;
    }
    int i = idx - 1;
    s->poff[i] = s->alen;
    if (len > 0)
        memcpy(s->arena + s->alen, p, len);
    s->arena[s->alen + len] = '\0';
    s->alen += len + 1;
    s->plen[i] = (int)len;
    s->pfmt[i] = fmt;
    s->pnull[i] = 0;
    return 0;
}

static int lite_bind(struct db_stmt *s, int rc)
{
    if (rc == SQLITE_OK)
        return 0;
    set_err(s->c, rc == SQLITE_NOMEM ? STORE_ENOMEM : STORE_EINVAL, "sqlite bind: ", sqlite3_errstr(rc));
    if (s->bind_rc == 0)
        s->bind_rc = s->c->errcode;
    return s->c->errcode;
}

int db_bind_text(struct db_stmt *s, int idx, const char *text)
{
    if (text == NULL)
        return db_bind_null(s, idx);
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_text(s->ss, idx, text, -1, SQLITE_TRANSIENT));
    return pg_put(s, idx, text, strlen(text), 0);
}

int db_bind_text_borrowed(struct db_stmt *s, int idx, const char *text)
{
    if (text == NULL)
        return db_bind_null(s, idx);
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_text(s->ss, idx, text, -1, SQLITE_STATIC));
    return pg_put(s, idx, text, strlen(text), 0);
}

int db_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_int64(s->ss, idx, v));
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    return pg_put(s, idx, tmp, (size_t)n, 0);
}

int db_bind_double(struct db_stmt *s, int idx, double v)
{
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_double(s->ss, idx, v));
    char tmp[40];
    /* %.17g round-trips an IEEE double exactly. */
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    return pg_put(s, idx, tmp, (size_t)n, 0);
}

int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t len)
{
    if (p == NULL)
        return db_bind_null(s, idx);
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_blob64(s->ss, idx, p, len, SQLITE_TRANSIENT));
    return pg_put(s, idx, p, len, 1);
}

int db_bind_null(struct db_stmt *s, int idx)
{
    if (s->ss != NULL)
        return lite_bind(s, sqlite3_bind_null(s->ss, idx));
    if (idx < 1 || idx > s->nparams)
        return s->bind_rc = STORE_EINVAL;
    s->pnull[idx - 1] = 1;
    return 0;
}

int db_step(struct db_stmt *s)
{
    if (s->bind_rc != 0)
        return s->bind_rc;
    if (s->ss != NULL) {
        int rc = sqlite3_step(s->ss);
        if (rc == SQLITE_ROW)
            return DB_ROW;
        if (rc == SQLITE_DONE) {
            s->changes = sqlite3_changes64(s->c->lite);
            return DB_DONE;
        }
        return lite_map(s->c, sqlite3_extended_errcode(s->c->lite));
    }
    if (s->res == NULL) {
        for (int i = 0; i < s->nparams; i++)
            s->pvals[i] = s->pnull[i] ? NULL : s->arena + s->poff[i];
        s->res = PQexecPrepared(s->c->pg, s->name, s->nparams, s->pvals, s->plen, s->pfmt, s->rfmt);
        ExecStatusType st = s->res != NULL ? PQresultStatus(s->res) : PGRES_FATAL_ERROR;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            int code = pg_map(s->c, s->res);
            stmt_clear_results(s);
            return code;
        }
        const char *ct = PQcmdTuples(s->res);
        s->changes = (ct != NULL && ct[0]) ? strtoll(ct, NULL, 10) : 0;
        s->nrows = st == PGRES_TUPLES_OK ? PQntuples(s->res) : 0;
        int nf = PQnfields(s->res);
        if (nf > s->ndec) {
            unsigned char **d = realloc(s->dec, (size_t)nf * sizeof(*d));
            if (d == NULL)
                return STORE_ENOMEM;
            s->dec = d;
            size_t *dl = realloc(s->declen, (size_t)nf * sizeof(*dl));
            if (dl == NULL)
                return STORE_ENOMEM;
            s->declen = dl;
            for (int i = s->ndec; i < nf; i++)
                d[i] = NULL;
            s->ndec = nf;
        }
        s->row = 0;
    } else {
        for (int i = 0; i < s->ndec; i++) {
            if (s->dec[i] != NULL)
                PQfreemem(s->dec[i]);
            s->dec[i] = NULL;
        }
        s->row++;
    }
    return s->row < s->nrows ? DB_ROW : DB_DONE;
}

void db_stmt_binary_results(struct db_stmt *s)
{
    if (s->ss == NULL)
        s->rfmt = 1;
}

/* Type OIDs of the binary formats decoded below (pg_type.dat). */
#define OID_BOOL 16
#define OID_INT8 20
#define OID_INT2 21
#define OID_INT4 23
#define OID_FLOAT4 700
#define OID_FLOAT8 701

/* A binary column as a 64-bit integer (0 for a type that is not one). */
static int64_t pg_bin_int(const PGresult *res, int row, int col)
{
    const char *p = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case OID_INT8: {
        uint64_t v;
        memcpy(&v, p, 8);
        return (int64_t)be64toh(v);
    }
    case OID_INT4: {
        uint32_t v;
        memcpy(&v, p, 4);
        return (int32_t)be32toh(v);
    }
    case OID_INT2: {
        uint16_t v;
        memcpy(&v, p, 2);
        return (int16_t)be16toh(v);
    }
    case OID_BOOL: return p[0] != 0;
    default: return 0;
    }
}

static double pg_bin_double(const PGresult *res, int row, int col)
{
    const char *p = PQgetvalue(res, row, col);
    switch (PQftype(res, col)) {
    case OID_FLOAT8: {
        uint64_t v;
        double d;
        memcpy(&v, p, 8);
        v = be64toh(v);
        memcpy(&d, &v, 8);
        return d;
    }
    case OID_FLOAT4: {
        uint32_t v;
        float f;
        memcpy(&v, p, 4);
        v = be32toh(v);
        memcpy(&f, &v, 4);
        return (double)f;
    }
    default: return (double)pg_bin_int(res, row, col);
    }
}

int db_col_is_null(struct db_stmt *s, int col)
{
    if (s->ss != NULL)
        return sqlite3_column_type(s->ss, col) == SQLITE_NULL;
    return PQgetisnull(s->res, s->row, col);
}

/* Text of a binary result is the raw bytes, which libpq ends with a NUL. */
const char *db_col_text(struct db_stmt *s, int col)
{
    if (s->ss != NULL)
        return (const char *)sqlite3_column_text(s->ss, col);
    return PQgetisnull(s->res, s->row, col) ? NULL : PQgetvalue(s->res, s->row, col);
}

int64_t db_col_int64(struct db_stmt *s, int col)
{
    if (s->ss != NULL)
        return sqlite3_column_int64(s->ss, col);
    if (PQgetisnull(s->res, s->row, col))
        return 0;
    if (PQfformat(s->res, col) == 1)
        return pg_bin_int(s->res, s->row, col);
    return strtoll(PQgetvalue(s->res, s->row, col), NULL, 10);
}

double db_col_double(struct db_stmt *s, int col)
{
    if (s->ss != NULL)
        return sqlite3_column_double(s->ss, col);
    if (PQgetisnull(s->res, s->row, col))
        return 0.0;
    if (PQfformat(s->res, col) == 1)
        return pg_bin_double(s->res, s->row, col);
    return strtod(PQgetvalue(s->res, s->row, col), NULL);
}

const void *db_col_blob(struct db_stmt *s, int col, size_t *len)
{
    if (s->ss != NULL) {
        const void *p = sqlite3_column_blob(s->ss, col);
        *len = (size_t)sqlite3_column_bytes(s->ss, col);
        return p;
    }
    *len = 0;
    if (PQgetisnull(s->res, s->row, col) || col >= s->ndec)
        return NULL;
    if (PQfformat(s->res, col) == 1) {
        *len = (size_t)PQgetlength(s->res, s->row, col);
        return PQgetvalue(s->res, s->row, col);
    }
    if (s->dec[col] == NULL) {
        s->dec[col] = PQunescapeBytea((const unsigned char *)PQgetvalue(s->res, s->row, col), &s->declen[col]);
        if (s->dec[col] == NULL)
            return NULL;
    }
    *len = s->declen[col];
    return s->dec[col];
}

int64_t db_changes(struct db_stmt *s) { return s->changes; }

void db_stmt_reset(struct db_stmt *s)
{
    if (s == NULL)
        return;
    s->bind_rc = 0;
    if (s->ss != NULL) {
        sqlite3_reset(s->ss);
        sqlite3_clear_bindings(s->ss);
        return;
    }
    stmt_clear_results(s);
    s->alen = 0;
    if (s->nparams > 0)
        memset(s->pnull, 1, (size_t)s->nparams);
}
