/*
 * db.h — the store's private driver layer: one connection, prepared
 * statements, parameters and rows, over SQLite 3 or libpq.
 *
 * Internal to src/store/; nothing outside this folder includes it. The
 * repositories (store.c, queue.c, migrate.c) are written once against this
 * interface, so backend-specific SQL is limited to the few strings that
 * really differ (identity columns, SKIP LOCKED, NOTIFY).
 *
 * SQL text uses SQLite's numbered parameters `?1 … ?N`; for PostgreSQL the
 * driver rewrites them to `$1 … $N` outside quoted strings (both forms bind
 * by number, so a parameter may be used twice).
 *
 * A connection is used by one thread at a time (the pool in store.c hands it
 * out). Statements are cached per connection by the address of their SQL
 * text, so SQL must live as long as the connection (string literals, or
 * strings owned by the store).
 */
#ifndef CLARITY_STORE_DB_H
#define CLARITY_STORE_DB_H

#include <stddef.h>
#include <stdint.h>

enum db_backend { DB_SQLITE = 1, DB_POSTGRES = 2 };

/* db_step results besides the negative STORE_E* codes of store.h. */
#define DB_DONE 0
#define DB_ROW 1

struct db_conn;
struct db_stmt;

struct db_open_opts {
    int synchronous_full;     /* SQLite: synchronous=FULL (1) or NORMAL (0) */
    int busy_timeout_ms;      /* SQLite busy handler */
    int statement_timeout_ms; /* PostgreSQL statement_timeout, 0 = none */
};

/*
 * Open a connection. target is a file path (SQLite) or a libpq URL. On failure
 * returns NULL and writes a reason without credentials into err.
 */
struct db_conn *db_conn_open(enum db_backend backend, const char *target, const struct db_open_opts *opts, char *err,
                             size_t errlen);
/* A libpq connection to url with Clarity's defaults (connect_timeout 5 s
 * unless the URL sets one). Returns what PQconnectdbParams returns. */
struct pg_conn;
struct pg_conn *db_pg_connect(const char *url);

/* Close and free; accepts NULL. */
void db_conn_close(struct db_conn *c);
enum db_backend db_conn_backend(const struct db_conn *c);

/*
 * Make sure the connection is usable: PostgreSQL resets a broken connection
 * (server restart) and forgets its prepared statements. Returns 0 or
 * STORE_EUNAVAILABLE.
 */
int db_conn_ensure(struct db_conn *c);

/* Run SQL without parameters or results (may hold several statements).
 * Returns 0 or a negative STORE_E* code (text in db_conn_errmsg). */
int db_exec(struct db_conn *c, const char *sql);
/*
 * db_exec for a statement run again and again (BEGIN, COMMIT, ROLLBACK):
 * on SQLite it is prepared once and cached like db_stmt_get (sql is the
 * cache key by address, so pass a literal); PostgreSQL sends it as db_exec.
 */
int db_exec_cached(struct db_conn *c, const char *sql);

/* 1 when the connection is inside a transaction (an earlier ROLLBACK that
 * failed, e.g. for want of memory, can leave one open), else 0. */
int db_in_transaction(const struct db_conn *c);

/* Last error text of the connection (borrowed; no credentials). */
const char *db_conn_errmsg(const struct db_conn *c);

/* The raw handle (sqlite3 * or PGconn *), for backup and LISTEN. */
void *db_conn_raw(struct db_conn *c);

/*
 * The cached prepared statement for sql (prepared on first use). Returns NULL
 * on failure (text in db_conn_errmsg, code in db_conn_errcode). The statement
 * is borrowed: call db_stmt_reset when done with it.
 */
struct db_stmt *db_stmt_get(struct db_conn *c, const char *sql);
int db_conn_errcode(const struct db_conn *c);
/* Whether the last error was a statement naming a table that does not exist
 * (PostgreSQL SQLSTATE 42P01; SQLite "no such table"). */
int db_conn_missing_table(const struct db_conn *c);

/* Bind parameter idx (1-based). text NULL binds SQL NULL. Values are copied. */
int db_bind_text(struct db_stmt *s, int idx, const char *text);
/* As db_bind_text, but SQLite borrows text until the next step/reset instead
 * of copying it (the caller keeps it alive that long). */
int db_bind_text_borrowed(struct db_stmt *s, int idx, const char *text);
int db_bind_int64(struct db_stmt *s, int idx, int64_t v);
int db_bind_double(struct db_stmt *s, int idx, double v);
int db_bind_blob(struct db_stmt *s, int idx, const void *p, size_t len);
int db_bind_null(struct db_stmt *s, int idx);

/*
 * PostgreSQL: have the statement's results come back in binary format from
 * its next execution on (it stays so while cached), so that integers and
 * floats reach the accessors below without being printed and parsed again.
 * The accessors decode int2/int4/int8, float4/float8, bool, text-like and
 * bytea columns; use it only for statements whose columns are of those
 * types. No effect on SQLite.
 */
void db_stmt_binary_results(struct db_stmt *s);

/*
 * Execute (first call) and advance. Returns DB_ROW with a row available,
 * DB_DONE when finished, or a negative STORE_E* code.
 */
int db_step(struct db_stmt *s);

/* Column accessors for the current row (0-based). Text and blobs are
 * borrowed until the next step or reset; NULL text comes back as NULL. */
int db_col_is_null(struct db_stmt *s, int col);
const char *db_col_text(struct db_stmt *s, int col);
int64_t db_col_int64(struct db_stmt *s, int col);
double db_col_double(struct db_stmt *s, int col);
const void *db_col_blob(struct db_stmt *s, int col, size_t *len);

/* Rows changed by the last executed INSERT/UPDATE/DELETE of this statement. */
int64_t db_changes(struct db_stmt *s);

/* Finish with the statement: drop results and bindings. Accepts NULL. */
void db_stmt_reset(struct db_stmt *s);

#endif
