/*
 * repo.c — the repositories of store.h: users, refresh tokens, audit log,
 * uploads, health samples, raw uploads, analyses, insights, key ring.
 *
 * Every query is written once, in SQL both SQLite (3.35+) and PostgreSQL 15
 * accept: numbered parameters, row-value comparisons for keyset pagination
 * ("(created_at, id) < (?2, ?3)", SQLite "Row Values" and PostgreSQL §9.24.5),
 * INSERT … ON CONFLICT DO NOTHING for deduplication, CAST(? AS TEXT) where a
 * parameter's type must be known to PostgreSQL. The only backend-specific
 * path is the multi-row sample insert for PostgreSQL, where one statement per
 * row would cost one network round trip per row.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/uuid.h"
#include "store/store.h"
#include "store/store_int.h"

#define FITS(field) store_str_fits((field), sizeof(field))

/* Keyset sentinel for "no cursor": created_at never reaches INT64_MAX, so the
 * id half of the row comparison is never consulted. */
static void bind_after(struct db_stmt *s, int idx, const struct store_cursor *after)
{
    if (after != NULL && after->set) {
        db_bind_int64(s, idx, after->ts);
        db_bind_text(s, idx + 1, after->key);
    } else {
        db_bind_int64(s, idx, INT64_MAX);
        db_bind_text(s, idx + 1, "");
    }
}

static int limit_ok(size_t limit) { return limit >= 1 && limit <= STORE_PAGE_MAX; }

/* Read a one-row result: 0 with the row present, STORE_ENOTFOUND, or error. */
static int step_one(struct store_tx *tx, struct db_stmt *s)
{
    int rc = db_step(s);
    if (rc == DB_ROW)
        return 0;
    db_stmt_reset(s);
    if (rc == DB_DONE)
        return STORE_ENOTFOUND;
    return store_tx_fail(tx, rc);
}

/* A statement that must change exactly one row (or ENOTFOUND). */
static int run_one(struct store_tx *tx, struct db_stmt *s)
{
    int64_t n = 0;
    int rc = store_tx_run(tx, s, &n);
    if (rc != 0)
        return rc;
    return n > 0 ? 0 : STORE_ENOTFOUND;
}

typedef int (*row_fn)(struct db_stmt *s, void *item);

/*
 * Collect up to limit rows (the query asks for limit + 1) into a new array of
 * item_size records. The cursor is taken from the last kept row's created_at
 * (column ts_col) and id (column id_col).
 */
static int collect(struct store_tx *tx, struct db_stmt *s, size_t limit, size_t item_size, row_fn fn,
                   void (*clear)(void *), void **out, size_t *n, struct store_cursor *next, int ts_col, int id_col)
{
    char *v = calloc(limit, item_size);
    size_t k = 0;
    int rc = 0;
    struct store_cursor cur = {0};
    if (v == NULL) {
        db_stmt_reset(s);
        return STORE_ENOMEM;
    }
    while ((rc = db_step(s)) == DB_ROW) {
        if (k == limit) {
            cur.set = 1; /* one more row exists */
            break;
        }
        if (fn(s, v + k * item_size) != 0) {
            rc = STORE_ENOMEM;
            k++;
            break;
        }
        cur.ts = db_col_int64(s, ts_col);
        store_col_copy(s, id_col, cur.key, sizeof(cur.key));
        k++;
    }
    db_stmt_reset(s);
    if (rc < 0) {
        if (clear != NULL)
            for (size_t i = 0; i < k; i++)
                clear(v + i * item_size);
        free(v);
        return rc == STORE_ENOMEM ? rc : store_tx_fail(tx, rc);
    }
    *out = v;
    *n = k;
    if (next != NULL) {
        if (!cur.set)
            memset(&cur, 0, sizeof(cur));
        *next = cur;
    }
    return 0;
}

/* ---- users ---------------------------------------------------------------- */

#define USER_COLS                                                                                                      \
    "id, email, password_hash, first_name, last_name, phone_number, role, status,"                                     \
    " failed_logins, locked_until, last_login, created_at, updated_at"

static int user_row(struct db_stmt *s, void *item)
{
    struct store_user *u = item;
    store_col_copy(s, 0, u->id, sizeof(u->id));
    store_col_copy(s, 1, u->email, sizeof(u->email));
    store_col_copy(s, 2, u->password_hash, sizeof(u->password_hash));
    store_col_copy(s, 3, u->first_name, sizeof(u->first_name));
    store_col_copy(s, 4, u->last_name, sizeof(u->last_name));
    store_col_copy(s, 5, u->phone_number, sizeof(u->phone_number));
    store_col_copy(s, 6, u->role, sizeof(u->role));
    store_col_copy(s, 7, u->status, sizeof(u->status));
    u->failed_logins = (int)db_col_int64(s, 8);
    u->locked_until_ms = db_col_int64(s, 9);
    u->last_login_ms = db_col_int64(s, 10);
    u->created_at_ms = db_col_int64(s, 11);
    u->updated_at_ms = db_col_int64(s, 12);
    return 0;
}

static int user_fields_ok(const struct store_user *u)
{
    return FITS(u->id) && FITS(u->email) && FITS(u->password_hash) && FITS(u->first_name) && FITS(u->last_name) &&
           FITS(u->phone_number) && FITS(u->role) && FITS(u->status) && u->id[0] && u->email[0];
}

int store_user_insert(struct store_tx *tx, const struct store_user *u)
{
    static const char sql[] = "INSERT INTO users (" USER_COLS ") VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
    struct db_stmt *s = NULL;
    if (!user_fields_ok(u))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    int64_t now = u->created_at_ms ? u->created_at_ms : store_now_ms();
    db_bind_text(s, 1, u->id);
    db_bind_text(s, 2, u->email);
    db_bind_text(s, 3, u->password_hash);
    db_bind_text(s, 4, u->first_name);
    db_bind_text(s, 5, u->last_name);
    db_bind_text(s, 6, u->phone_number);
    db_bind_text(s, 7, u->role[0] ? u->role : "patient");
    db_bind_text(s, 8, u->status[0] ? u->status : "active");
    db_bind_int64(s, 9, u->failed_logins);
    db_bind_int64(s, 10, u->locked_until_ms);
    db_bind_int64(s, 11, u->last_login_ms);
    db_bind_int64(s, 12, now);
    db_bind_int64(s, 13, u->updated_at_ms ? u->updated_at_ms : now);
    return store_tx_run(tx, s, NULL);
}

static int user_get_by(struct store_tx *tx, const char *sql, const char *key, struct store_user *out)
{
    struct db_stmt *s = NULL;
    if (key == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, key);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    user_row(s, out);
    db_stmt_reset(s);
    return 0;
}

int store_user_get(struct store_tx *tx, const char *id, struct store_user *out)
{
    return user_get_by(tx, "SELECT " USER_COLS " FROM users WHERE id = ?1", id, out);
}

int store_user_profile_get(struct store_tx *tx, const char *id, struct store_user *out, int *email_verified,
                           char *display_name, size_t cap)
{
    static const char sql[] = "SELECT " USER_COLS ", email_verified, display_name FROM users WHERE id = ?1";
    struct db_stmt *s = NULL;
    if (id == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    user_row(s, out);
    *email_verified = db_col_int64(s, 13) != 0;
    store_col_copy(s, 14, display_name, cap);
    db_stmt_reset(s);
    return 0;
}

int store_user_get_by_email(struct store_tx *tx, const char *email, struct store_user *out)
{
    return user_get_by(tx, "SELECT " USER_COLS " FROM users WHERE email = ?1", email, out);
}

int store_user_login_update(struct store_tx *tx, const char *id, int failed_logins, int64_t locked_until_ms,
                            int64_t last_login_ms)
{
    static const char sql[] = "UPDATE users SET failed_logins = ?2, locked_until = ?3,"
                              " last_login = ?4, updated_at = ?5 WHERE id = ?1";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, failed_logins);
    db_bind_int64(s, 3, locked_until_ms);
    db_bind_int64(s, 4, last_login_ms);
    db_bind_int64(s, 5, store_now_ms());
    return run_one(tx, s);
}

int store_user_update(struct store_tx *tx, const struct store_user *u)
{
    static const char sql[] = "UPDATE users SET password_hash = ?2, first_name = ?3, last_name = ?4,"
                              " phone_number = ?5, role = ?6, status = ?7, updated_at = ?8 WHERE id = ?1";
    struct db_stmt *s = NULL;
    if (!user_fields_ok(u))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, u->id);
    db_bind_text(s, 2, u->password_hash);
    db_bind_text(s, 3, u->first_name);
    db_bind_text(s, 4, u->last_name);
    db_bind_text(s, 5, u->phone_number);
    db_bind_text(s, 6, u->role[0] ? u->role : "patient");
    db_bind_text(s, 7, u->status[0] ? u->status : "active");
    db_bind_int64(s, 8, store_now_ms());
    return run_one(tx, s);
}

int store_user_list(struct store_tx *tx, const struct store_cursor *after, size_t limit, struct store_user **out,
                    size_t *n, struct store_cursor *next)
{
    static const char sql[] = "SELECT " USER_COLS " FROM users"
                              " WHERE (created_at, id) < (?1, ?2)"
                              " ORDER BY created_at DESC, id DESC LIMIT ?3";
    struct db_stmt *s = NULL;
    if (!limit_ok(limit))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    bind_after(s, 1, after);
    db_bind_int64(s, 3, (int64_t)limit + 1);
    return collect(tx, s, limit, sizeof(**out), user_row, NULL, (void **)out, n, next, 11, 0);
}

int store_user_delete(struct store_tx *tx, const char *id)
{
    /* ON DELETE CASCADE removes tokens, uploads, raw bodies, analyses and
     * insights in the same transaction; samples have no foreign key (see
     * migrate.c) and are deleted here. */
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM users WHERE id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    if ((rc = run_one(tx, s)) != 0)
        return rc;
    return store_sample_delete_by_user(tx, id, NULL);
}

/* ---- refresh tokens ------------------------------------------------------- */

#define TOKEN_COLS "id, user_id, family_id, token_hash, created_at, expires_at, revoked_at, replaced_by"

int store_token_insert(struct store_tx *tx, const struct store_refresh_token *t)
{
    static const char sql[] = "INSERT INTO refresh_tokens (" TOKEN_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    struct db_stmt *s = NULL;
    if (!FITS(t->id) || !FITS(t->user_id) || !FITS(t->family_id) || !FITS(t->token_hash) || !FITS(t->replaced_by) ||
        !t->id[0] || !t->token_hash[0])
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, t->id);
    db_bind_text(s, 2, t->user_id);
    db_bind_text(s, 3, t->family_id);
    db_bind_text(s, 4, t->token_hash);
    db_bind_int64(s, 5, t->created_at_ms ? t->created_at_ms : store_now_ms());
    db_bind_int64(s, 6, t->expires_at_ms);
    db_bind_int64(s, 7, t->revoked_at_ms);
    db_bind_text(s, 8, t->replaced_by);
    return store_tx_run(tx, s, NULL);
}

int store_token_get_by_hash(struct store_tx *tx, const char *token_hash, struct store_refresh_token *out)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT " TOKEN_COLS " FROM refresh_tokens WHERE token_hash = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, token_hash);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    store_col_copy(s, 0, out->id, sizeof(out->id));
    store_col_copy(s, 1, out->user_id, sizeof(out->user_id));
    store_col_copy(s, 2, out->family_id, sizeof(out->family_id));
    store_col_copy(s, 3, out->token_hash, sizeof(out->token_hash));
    out->created_at_ms = db_col_int64(s, 4);
    out->expires_at_ms = db_col_int64(s, 5);
    out->revoked_at_ms = db_col_int64(s, 6);
    store_col_copy(s, 7, out->replaced_by, sizeof(out->replaced_by));
    db_stmt_reset(s);
    return 0;
}

int store_token_revoke(struct store_tx *tx, const char *id, const char *replaced_by, int64_t now_ms)
{
    static const char sql[] = "UPDATE refresh_tokens SET revoked_at = ?2,"
                              " replaced_by = COALESCE(CAST(?3 AS TEXT), replaced_by)"
                              " WHERE id = ?1";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, now_ms);
    db_bind_text(s, 3, replaced_by);
    return run_one(tx, s);
}

int store_token_revoke_family(struct store_tx *tx, const char *family_id, int64_t now_ms, int64_t *n)
{
    static const char sql[] = "UPDATE refresh_tokens SET revoked_at = ?2 WHERE family_id = ?1 AND revoked_at = 0";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, family_id);
    db_bind_int64(s, 2, now_ms);
    return store_tx_run(tx, s, n);
}

int store_token_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM refresh_tokens WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, n);
}

/* ---- audit log ------------------------------------------------------------ */

#define AUDIT_COLS "id, user_id, action, resource_type, resource_id, outcome, request_id, ip, created_at"

int store_audit_insert(struct store_tx *tx, const struct store_audit *a)
{
    static const char sql[] = "INSERT INTO audit_log (" AUDIT_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    struct db_stmt *s = NULL;
    char id[STORE_ID_LEN];
    if (!FITS(a->id) || !FITS(a->user_id) || !FITS(a->action) || !FITS(a->resource_type) || !FITS(a->resource_id) ||
        !FITS(a->outcome) || !FITS(a->request_id) || !FITS(a->ip) || !a->action[0])
        return STORE_EINVAL;
    if (a->id[0])
        memcpy(id, a->id, sizeof(id));
    else if (uuid_v7(id) != 0)
        return STORE_EINTERNAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, a->user_id);
    db_bind_text(s, 3, a->action);
    db_bind_text(s, 4, a->resource_type);
    db_bind_text(s, 5, a->resource_id);
    db_bind_text(s, 6, a->outcome[0] ? a->outcome : "success");
    db_bind_text(s, 7, a->request_id);
    db_bind_text(s, 8, a->ip);
    db_bind_int64(s, 9, a->created_at_ms ? a->created_at_ms : store_now_ms());
    return store_tx_run(tx, s, NULL);
}

static int audit_row(struct db_stmt *s, void *item)
{
    struct store_audit *a = item;
    store_col_copy(s, 0, a->id, sizeof(a->id));
    store_col_copy(s, 1, a->user_id, sizeof(a->user_id));
    store_col_copy(s, 2, a->action, sizeof(a->action));
    store_col_copy(s, 3, a->resource_type, sizeof(a->resource_type));
    store_col_copy(s, 4, a->resource_id, sizeof(a->resource_id));
    store_col_copy(s, 5, a->outcome, sizeof(a->outcome));
    store_col_copy(s, 6, a->request_id, sizeof(a->request_id));
    store_col_copy(s, 7, a->ip, sizeof(a->ip));
    a->created_at_ms = db_col_int64(s, 8);
    return 0;
}

int store_audit_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                     struct store_audit **out, size_t *n, struct store_cursor *next)
{
    static const char sql[] = "SELECT " AUDIT_COLS " FROM audit_log"
                              " WHERE user_id = ?1 AND (created_at, id) < (?2, ?3)"
                              " ORDER BY created_at DESC, id DESC LIMIT ?4";
    struct db_stmt *s = NULL;
    if (!limit_ok(limit) || user_id == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    bind_after(s, 2, after);
    db_bind_int64(s, 4, (int64_t)limit + 1);
    return collect(tx, s, limit, sizeof(**out), audit_row, NULL, (void **)out, n, next, 8, 0);
}

int store_audit_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM audit_log WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, n);
}

/* ---- uploads -------------------------------------------------------------- */

#define UPLOAD_COLS                                                                                                    \
    "id, user_id, source, status, total_metrics, processed_metrics, accepted, rejected,"                               \
    " progress, error, sync_token, client_timestamp, created_at, updated_at"

static int upload_row(struct db_stmt *s, void *item)
{
    struct store_upload *u = item;
    store_col_copy(s, 0, u->id, sizeof(u->id));
    store_col_copy(s, 1, u->user_id, sizeof(u->user_id));
    store_col_copy(s, 2, u->source, sizeof(u->source));
    char status[16];
    store_col_copy(s, 3, status, sizeof(status));
    if (store_upload_status_parse(status, &u->status) != 0)
        u->status = STORE_UPLOAD_FAILED; /* not written by this program: never "in progress" */
    u->total_metrics = db_col_int64(s, 4);
    u->processed_metrics = db_col_int64(s, 5);
    u->accepted = db_col_int64(s, 6);
    u->rejected = db_col_int64(s, 7);
    u->progress = db_col_double(s, 8);
    store_col_copy(s, 9, u->error, sizeof(u->error));
    store_col_copy(s, 10, u->sync_token, sizeof(u->sync_token));
    u->client_timestamp_ms = db_col_int64(s, 11);
    u->created_at_ms = db_col_int64(s, 12);
    u->updated_at_ms = db_col_int64(s, 13);
    return 0;
}

int store_upload_insert(struct store_tx *tx, const struct store_upload *u)
{
    static const char sql[] = "INSERT INTO uploads (" UPLOAD_COLS ", days_indexed) VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 1)";
    struct db_stmt *s = NULL;
    if (!FITS(u->id) || !FITS(u->user_id) || !FITS(u->source) || !FITS(u->error) || !FITS(u->sync_token) || !u->id[0] ||
        !u->user_id[0])
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    int64_t now = u->created_at_ms ? u->created_at_ms : store_now_ms();
    db_bind_text(s, 1, u->id);
    db_bind_text(s, 2, u->user_id);
    db_bind_text(s, 3, u->source);
    db_bind_text(s, 4, store_upload_status_name(u->status));
    db_bind_int64(s, 5, u->total_metrics);
    db_bind_int64(s, 6, u->processed_metrics);
    db_bind_int64(s, 7, u->accepted);
    db_bind_int64(s, 8, u->rejected);
    db_bind_double(s, 9, u->progress);
    db_bind_text(s, 10, u->error);
    db_bind_text(s, 11, u->sync_token);
    db_bind_int64(s, 12, u->client_timestamp_ms);
    db_bind_int64(s, 13, now);
    db_bind_int64(s, 14, u->updated_at_ms ? u->updated_at_ms : now);
    return store_tx_run(tx, s, NULL);
}

int store_upload_get(struct store_tx *tx, const char *id, const char *user_id, struct store_upload *out)
{
    static const char sql[] = "SELECT " UPLOAD_COLS " FROM uploads WHERE id = ?1"
                              " AND (CAST(?2 AS TEXT) IS NULL OR user_id = ?2)";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, user_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    upload_row(s, out);
    db_stmt_reset(s);
    return 0;
}

static const char *const upload_status_names[] = {"received", "processing", "completed", "failed"};

const char *store_upload_status_name(enum store_upload_status s)
{
    return (unsigned)s < 4 ? upload_status_names[s] : "failed";
}

int store_upload_status_parse(const char *text, enum store_upload_status *out)
{
    for (unsigned i = 0; text != NULL && i < 4; i++)
        if (strcmp(text, upload_status_names[i]) == 0) {
            *out = (enum store_upload_status)i;
            return 0;
        }
    return STORE_EINVAL;
}

int store_upload_status_set(struct store_tx *tx, const char *id, enum store_upload_status status, double progress,
                            int64_t processed, const char *error)
{
    static const char sql[] = "UPDATE uploads SET status = ?2, progress = ?3,"
                              " processed_metrics = ?4, error = ?5, updated_at = ?6 WHERE id = ?1";
    struct db_stmt *s = NULL;
    if ((unsigned)status >= 4 || (error != NULL && strlen(error) >= sizeof(((struct store_upload *)0)->error)))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, store_upload_status_name(status));
    db_bind_double(s, 3, progress);
    db_bind_int64(s, 4, processed);
    db_bind_text(s, 5, error != NULL ? error : "");
    db_bind_int64(s, 6, store_now_ms());
    return run_one(tx, s);
}

int store_upload_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                      struct store_upload **out, size_t *n, struct store_cursor *next)
{
    static const char sql[] = "SELECT " UPLOAD_COLS " FROM uploads"
                              " WHERE user_id = ?1 AND (created_at, id) < (?2, ?3)"
                              " ORDER BY created_at DESC, id DESC LIMIT ?4";
    struct db_stmt *s = NULL;
    if (!limit_ok(limit) || user_id == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    bind_after(s, 2, after);
    db_bind_int64(s, 4, (int64_t)limit + 1);
    return collect(tx, s, limit, sizeof(**out), upload_row, NULL, (void **)out, n, next, 12, 0);
}

int store_upload_delete(struct store_tx *tx, const char *id, const char *user_id)
{
    /* The raw body and analyses (and their insights) cascade; samples are
     * deleted explicitly (no foreign key, see migrate.c), and the days they
     * were on are written again without them. */
    static const char owner[] = "SELECT user_id FROM uploads WHERE id = ?1"
                                " AND (CAST(?2 AS TEXT) IS NULL OR user_id = ?2)";
    struct db_stmt *s = NULL;
    char uid[STORE_ID_LEN];
    int64_t *days = NULL;
    size_t nd = 0;
    int rc = store_tx_stmt(tx, owner, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, user_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    store_col_copy(s, 0, uid, sizeof(uid));
    db_stmt_reset(s);
    if ((rc = store_days_upload_deleting(tx, uid, id, &days, &nd)) != 0)
        return rc;
    if ((rc = store_tx_stmt(tx, "DELETE FROM uploads WHERE id = ?1", &s)) == 0) {
        db_bind_text(s, 1, id);
        rc = run_one(tx, s);
    }
    int rows = 0;
    if (rc == 0 && (rc = store_legacy_rows_now(tx, &rows)) == 0 && rows &&
        (rc = store_tx_stmt(tx, "DELETE FROM health_samples WHERE upload_id = ?1", &s)) == 0) {
        db_bind_text(s, 1, id);
        rc = store_tx_run(tx, s, NULL);
    }
    if (rc == 0)
        rc = store_days_rebuild(tx, uid, days, nd);
    free(days);
    return rc;
}

/* ---- health samples ------------------------------------------------------- */

#define SAMPLE_INSERT_COLS                                                                                             \
    "user_id, upload_id, metric_type, start_ms, end_ms, value, value2, unit, source,"                                  \
    " device, hk_uuid, payload, quality_score, validation_status, processing_version,"                                 \
    " created_at, utc_offset_min"
#define SAMPLE_NCOLS 17

static const char sample_insert_one[] = "INSERT INTO health_samples (" SAMPLE_INSERT_COLS ") VALUES"
                                        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
                                        " ON CONFLICT DO NOTHING";

/* A plain scan rather than a JSON parse: it runs once per stored sample. */
int32_t store_sample_payload_offset(const char *payload)
{
    static const char key[] = "\"tz_offset_min\":";
    if (payload == NULL)
        return 0;
    const char *p = strstr(payload, key);
    if (p == NULL)
        return 0;
    p += sizeof(key) - 1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno != 0 || end == p || v < -1080 || v > 1080)
        return 0;
    return (int32_t)v;
}

static int sample_ok(const struct store_sample *x)
{
    return FITS(x->user_id) && FITS(x->upload_id) && FITS(x->metric_type) && FITS(x->unit) && FITS(x->source) &&
           FITS(x->device) && FITS(x->hk_uuid) && FITS(x->validation_status) && x->user_id[0] && x->metric_type[0] &&
           x->end_ms >= x->start_ms;
}

static void bind_double_or_null(struct db_stmt *s, int idx, double v)
{
    if (isnan(v))
        db_bind_null(s, idx);
    else
        db_bind_double(s, idx, v);
}

/* Text is borrowed from x, which outlives the statement's execution. */
static void bind_sample(struct db_stmt *s, int base, const struct store_sample *x, int64_t now)
{
    db_bind_text_borrowed(s, base + 1, x->user_id);
    db_bind_text_borrowed(s, base + 2, x->upload_id[0] ? x->upload_id : NULL);
    db_bind_text_borrowed(s, base + 3, x->metric_type);
    db_bind_int64(s, base + 4, x->start_ms);
    db_bind_int64(s, base + 5, x->end_ms);
    bind_double_or_null(s, base + 6, x->value);
    bind_double_or_null(s, base + 7, x->value2);
    db_bind_text_borrowed(s, base + 8, x->unit);
    db_bind_text_borrowed(s, base + 9, x->source);
    db_bind_text_borrowed(s, base + 10, x->device);
    db_bind_text_borrowed(s, base + 11, x->hk_uuid[0] ? x->hk_uuid : NULL);
    db_bind_text_borrowed(s, base + 12, x->payload);
    bind_double_or_null(s, base + 13, x->quality_score);
    db_bind_text_borrowed(s, base + 14, x->validation_status[0] ? x->validation_status : "valid");
    db_bind_int64(s, base + 15, x->processing_version ? x->processing_version : STORE_PROCESSING_VERSION);
    db_bind_int64(s, base + 16, now);
    db_bind_int64(s, base + 17, store_sample_payload_offset(x->payload));
}

int store_sample_rows_put(struct store_tx *tx, const struct store_sample *v, size_t n)
{
    static const char sql[] = "INSERT INTO health_samples (" SAMPLE_INSERT_COLS ", id) VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
                              " ON CONFLICT DO NOTHING";
    struct db_stmt *s = NULL;
    int64_t now = store_now_ms();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!sample_ok(&v[i]))
            return STORE_EINVAL;
        if ((rc = store_tx_stmt(tx, sql, &s)) != 0)
            break;
        bind_sample(s, 0, &v[i], now);
        db_bind_int64(s, 18, v[i].id);
        rc = store_tx_run(tx, s, NULL);
    }
    return rc;
}

/* PostgreSQL multi-row statements: one per chunk size, built once per
 * process (immutable afterwards; see store_sample_bulk_sql). */
static const size_t bulk_sizes[STORE_BULK_SIZES] = {250, 50, 10, 1};

char *store_sample_bulk_sql_build(size_t rows)
{
    size_t cap = 288 + rows * (SAMPLE_NCOLS * 7 + 4);
    char *sql = malloc(cap);
    if (sql == NULL)
        return NULL;
    size_t o = (size_t)snprintf(sql, cap, "INSERT INTO health_samples (%s) VALUES ", SAMPLE_INSERT_COLS);
    int p = 1;
    for (size_t r = 0; r < rows; r++) {
        o += (size_t)snprintf(sql + o, cap - o, "%s(", r ? "," : "");
        for (int c = 0; c < SAMPLE_NCOLS; c++)
            o += (size_t)snprintf(sql + o, cap - o, "%s?%d", c ? "," : "", p++);
        o += (size_t)snprintf(sql + o, cap - o, ")");
    }
    /* Which rows went in (the others were duplicates): their days get them. */
    snprintf(sql + o, cap - o, " ON CONFLICT DO NOTHING RETURNING user_id, hk_uuid");
    return sql;
}

size_t store_sample_bulk_size(int i) { return bulk_sizes[i]; }

/*
 * What a foreign key would check, once per distinct owner in the batch: the
 * user exists and the upload (when given) is theirs. On PostgreSQL the rows
 * are locked FOR KEY SHARE, as a foreign key check does, so a concurrent
 * erasure waits for this transaction instead of leaving orphans.
 */
static int check_owner(struct store_tx *tx, const char *user_id, const char *upload_id)
{
    static const char lite[] = "SELECT (SELECT COUNT(*) FROM users WHERE id = ?1),"
                               " (SELECT COUNT(*) FROM uploads WHERE id = ?2 AND user_id = ?1)";
    static const char pg[] = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM users WHERE id = ?1 FOR KEY SHARE) u),"
                             " (SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE id = ?2 AND user_id = ?1"
                             " FOR KEY SHARE) p)";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_text(s, 2, upload_id[0] ? upload_id : "");
    if ((rc = step_one(tx, s)) != 0)
        return rc == STORE_ENOTFOUND ? STORE_EINTERNAL : rc;
    int ok = db_col_int64(s, 0) == 1 && (upload_id[0] == '\0' || db_col_int64(s, 1) == 1);
    db_stmt_reset(s);
    if (!ok) {
        snprintf(tx->err, sizeof(tx->err), "sample owner: no such user or upload");
        return STORE_EINVAL;
    }
    return 0;
}

/* One multi-row statement's RETURNING user_id, hk_uuid: mark inserted[]
 * for its rows. All rows when all went in; otherwise a row without a uuid
 * went in (NULLs never conflict) and one with a uuid went in when its
 * (user, uuid) came back (its first occurrence: a later one in the same
 * statement was the duplicate). */
static int bulk_inserted(struct store_tx *tx, struct db_stmt *s, const struct store_sample *v, size_t rows,
                         unsigned char *inserted, int64_t *changes)
{
    struct got {
        char user[STORE_ID_LEN];
        char uuid[sizeof(v->hk_uuid)];
    } *got = NULL;
    size_t ng = 0;
    int step, rc = 0;
    while ((step = db_step(s)) == DB_ROW) {
        const char *usr = db_col_text(s, 0), *u = db_col_text(s, 1);
        if (u == NULL || usr == NULL)
            continue;
        if (got == NULL && (got = malloc(rows * sizeof(*got))) == NULL) {
            rc = STORE_ENOMEM;
            break;
        }
        if (ng < rows) {
            snprintf(got[ng].user, sizeof(got[ng].user), "%s", usr);
            snprintf(got[ng].uuid, sizeof(got[ng].uuid), "%s", u);
            ng++;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        db_stmt_reset(s);
        free(got);
        return store_tx_fail(tx, step);
    }
    *changes = db_changes(s);
    db_stmt_reset(s);
    if (rc == 0 && (size_t)*changes == rows) {
        memset(inserted, 1, rows);
    } else if (rc == 0) {
        for (size_t r = 0; r < rows; r++) {
            inserted[r] = v[r].hk_uuid[0] == '\0';
            for (size_t k = 0; !inserted[r] && k < ng; k++)
                if (got[k].uuid[0] != '\0' && strcmp(got[k].uuid, v[r].hk_uuid) == 0 &&
                    strcmp(got[k].user, v[r].user_id) == 0) {
                    inserted[r] = 1;
                    got[k].uuid[0] = '\0';
                }
        }
    }
    free(got);
    return rc;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Each distinct user of the batch's sample lock, in user id order (two
 * batches with the same users in another order would deadlock). */
static int lock_users(struct store_tx *tx, const struct store_sample *v, size_t n)
{
    if (tx->st->backend == DB_SQLITE || n == 0)
        return 0;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < n && k < 2; i++)
        if (i == 0 || strcmp(v[i].user_id, v[i - 1].user_id) != 0)
            k++;
    if (k == 1)
        return store_days_lock_user(tx, v[0].user_id);
    const char **u = malloc(n * sizeof(*u));
    if (u == NULL)
        return STORE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        u[i] = v[i].user_id;
    qsort(u, n, sizeof(*u), cmp_str_ptr);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (i == 0 || strcmp(u[i], u[i - 1]) != 0)
            rc = store_days_lock_user(tx, u[i]);
    free(u);
    return rc;
}

int store_sample_insert_batch(struct store_tx *tx, const struct store_sample *v, size_t n, size_t *inserted)
{
    struct db_stmt *s = NULL;
    int64_t total = 0, ch = 0;
    int64_t now = store_now_ms();
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!sample_ok(&v[i])) {
            snprintf(tx->err, sizeof(tx->err), "sample %zu is invalid", i);
            return STORE_EINVAL;
        }
    /* The users' sample locks first (days.c): before any row gets an id, so
     * that ids follow the order days are appended in, and before the owner
     * checks' row locks, the order every writer of samples keeps. */
    if ((rc = lock_users(tx, v, n)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(v[i].user_id, v[i - 1].user_id) != 0 || strcmp(v[i].upload_id, v[i - 1].upload_id) != 0)
            if ((rc = check_owner(tx, v[i].user_id, v[i].upload_id)) != 0)
                return rc;
    unsigned char *in = calloc(n ? n : 1, 1);
    if (in == NULL)
        return STORE_ENOMEM;
    if (!store_samples_previous_release()) {
        size_t added = 0;
        rc = store_days_insert(tx, v, n, in, &added);
        free(in);
        if (rc == 0 && inserted != NULL)
            *inserted = added;
        return rc;
    }
    if (tx->st->backend == DB_SQLITE) {
        /* In-process SQLite: a cached single-row statement is the fastest
         * path; there is no round trip to save. */
        if ((rc = store_tx_stmt(tx, sample_insert_one, &s)) != 0)
            goto out;
        for (size_t i = 0; i < n; i++) {
            bind_sample(s, 0, &v[i], now);
            if ((rc = store_tx_run(tx, s, &ch)) != 0)
                goto out;
            in[i] = ch > 0;
            total += ch;
        }
    } else {
        size_t i = 0;
        for (int k = 0; k < STORE_BULK_SIZES && i < n; k++) {
            size_t rows = bulk_sizes[k];
            while (n - i >= rows) {
                if ((rc = store_tx_stmt(tx, tx->st->bulk_sql[k], &s)) != 0)
                    goto out;
                for (size_t r = 0; r < rows; r++)
                    bind_sample(s, (int)r * SAMPLE_NCOLS, &v[i + r], now);
                if ((rc = bulk_inserted(tx, s, v + i, rows, in + i, &ch)) != 0)
                    goto out;
                total += ch;
                i += rows;
            }
        }
    }
    rc = store_days_append(tx, v, n, in);
out:
    free(in);
    if (rc == 0 && inserted != NULL)
        *inserted = (size_t)total;
    return rc;
}

#define SAMPLE_COLS                                                                                                    \
    "id, user_id, upload_id, metric_type, start_ms, end_ms, value, value2, unit, source,"                              \
    " device, hk_uuid, payload, quality_score, validation_status, processing_version"
#define SAMPLE_FILTER                                                                                                  \
    " FROM health_samples WHERE user_id = ?1"                                                                          \
    " AND (CAST(?2 AS TEXT) IS NULL OR metric_type = ?2)"                                                              \
    " AND (CAST(?3 AS TEXT) IS NULL OR source = ?3)"                                                                   \
    " AND (CAST(?4 AS TEXT) IS NULL OR upload_id = ?4)"                                                                \
    " AND start_ms >= ?5 AND start_ms < ?6"

static int sample_row(struct db_stmt *s, struct store_sample *x)
{
    memset(x, 0, sizeof(*x));
    x->id = db_col_int64(s, 0);
    store_col_copy(s, 1, x->user_id, sizeof(x->user_id));
    store_col_copy(s, 2, x->upload_id, sizeof(x->upload_id));
    store_col_copy(s, 3, x->metric_type, sizeof(x->metric_type));
    x->start_ms = db_col_int64(s, 4);
    x->end_ms = db_col_int64(s, 5);
    x->value = db_col_is_null(s, 6) ? NAN : db_col_double(s, 6);
    x->value2 = db_col_is_null(s, 7) ? NAN : db_col_double(s, 7);
    store_col_copy(s, 8, x->unit, sizeof(x->unit));
    store_col_copy(s, 9, x->source, sizeof(x->source));
    store_col_copy(s, 10, x->device, sizeof(x->device));
    store_col_copy(s, 11, x->hk_uuid, sizeof(x->hk_uuid));
    x->quality_score = db_col_is_null(s, 13) ? NAN : db_col_double(s, 13);
    store_col_copy(s, 14, x->validation_status, sizeof(x->validation_status));
    x->processing_version = (int)db_col_int64(s, 15);
    return 0;
}

/* One statement's worth of rows; reports how many rows it saw and the keyset
 * position of the last one. */
int store_sample_rows_page(struct store_tx *tx, const struct store_sample_query *q, int64_t limit, store_sample_fn fn,
                           void *ctx, int64_t *seen, struct store_cursor *last)
{
    static const char sql_desc[] = "SELECT " SAMPLE_COLS SAMPLE_FILTER " AND (start_ms, id) < (?7, ?8)"
                                   " ORDER BY start_ms DESC, id DESC LIMIT ?9";
    static const char sql_asc[] = "SELECT " SAMPLE_COLS SAMPLE_FILTER " AND (start_ms, id) > (?7, ?8)"
                                  " ORDER BY start_ms, id LIMIT ?9";
    struct db_stmt *s = NULL;
    int rows = 0;
    *seen = 0;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || !rows || (rc = store_tx_stmt(tx, q->ascending ? sql_asc : sql_desc, &s)) != 0)
        return rc;
    db_bind_text(s, 1, q->user_id);
    db_bind_text(s, 2, q->metric_type);
    db_bind_text(s, 3, q->source);
    db_bind_text(s, 4, q->upload_id);
    db_bind_int64(s, 5, q->start_ms);
    db_bind_int64(s, 6, q->end_ms);
    if (q->after.set) {
        db_bind_int64(s, 7, q->after.ts);
        db_bind_int64(s, 8, strtoll(q->after.key, NULL, 10));
    } else {
        db_bind_int64(s, 7, q->ascending ? INT64_MIN : INT64_MAX);
        db_bind_int64(s, 8, 0);
    }
    db_bind_int64(s, 9, limit);
    struct store_sample x;
    *seen = 0;
    while ((rc = db_step(s)) == DB_ROW) {
        sample_row(s, &x);
        x.payload = (char *)db_col_text(s, 12); /* borrowed for the callback */
        (*seen)++;
        last->set = 1;
        last->ts = x.start_ms;
        snprintf(last->key, sizeof(last->key), "%" PRId64, x.id);
        int stop = fn(ctx, &x);
        if (stop != 0) {
            db_stmt_reset(s);
            return stop;
        }
    }
    db_stmt_reset(s);
    return rc < 0 ? store_tx_fail(tx, rc) : 0;
}

int store_insight_count(struct store_tx *tx, const char *user_id, int64_t *count)
{
    static const char sql[] = "SELECT COUNT(*) FROM insights WHERE user_id = ?1";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    *count = db_col_int64(s, 0);
    db_stmt_reset(s);
    return 0;
}

int store_sample_rows_count(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t *count)
{
    static const char sql[] = "SELECT COUNT(*) FROM health_samples WHERE user_id = ?1"
                              " AND (CAST(?2 AS TEXT) IS NULL OR upload_id = ?2)";
    struct db_stmt *s = NULL;
    int rows = 0;
    *count = 0;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || !rows || (rc = store_tx_stmt(tx, sql, &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_text(s, 2, upload_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    *count = db_col_int64(s, 0);
    db_stmt_reset(s);
    return 0;
}

int store_sample_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n)
{
    struct db_stmt *s = NULL;
    int64_t total = 0;
    /* Counting opens the blocks: only when the caller asks. */
    int rc = n != NULL ? store_sample_count(tx, user_id, NULL, &total) : 0;
    if (rc == 0)
        rc = store_tx_stmt(tx, "DELETE FROM sample_days WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    if ((rc = store_tx_run(tx, s, NULL)) != 0)
        return rc;
    int rows = 0;
    if ((rc = store_legacy_rows_now(tx, &rows)) != 0)
        return rc;
    if (rows) {
        if ((rc = store_tx_stmt(tx, "DELETE FROM health_samples WHERE user_id = ?1", &s)) != 0)
            return rc;
        db_bind_text(s, 1, user_id);
        rc = store_tx_run(tx, s, NULL);
    }
    if (rc == 0 && n != NULL)
        *n = total;
    return rc;
}

int store_sample_rows_newest(struct store_tx *tx, const char *user_id, const char *upload_id, size_t max,
                             int64_t *start_ms, int64_t *end_ms, int32_t *offset_min, size_t *n)
{
#define NEWEST_COLS "SELECT start_ms, end_ms, utc_offset_min, CASE WHEN utc_offset_min IS NULL THEN payload END"
    /* The owner check sits outside the LIMITed subquery on purpose: next to
     * upload_id it made PostgreSQL multiply two selectivities that are one
     * (an upload's samples are its owner's, checked at insert), estimate a
     * few hundred rows and bitmap-scan the whole upload instead of reading
     * max rows from health_samples_upload_time in order. */
    static const char by_upload[] =
        "SELECT start_ms, end_ms, utc_offset_min, p FROM (" NEWEST_COLS " AS p, user_id, id"
        " FROM health_samples WHERE upload_id = ?2 ORDER BY start_ms DESC, id DESC LIMIT ?3) t"
        " WHERE t.user_id = ?1 ORDER BY start_ms DESC, id DESC";
    static const char by_user[] = NEWEST_COLS " FROM health_samples WHERE user_id = ?1"
                                              " ORDER BY start_ms DESC, id DESC LIMIT ?2";
#undef NEWEST_COLS
    struct db_stmt *s = NULL;
    *n = 0;
    if (user_id == NULL || max == 0 || max > 100000)
        return STORE_EINVAL;
    int rows = 0;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || !rows || (rc = store_tx_stmt(tx, upload_id != NULL ? by_upload : by_user, &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    if (upload_id != NULL) {
        db_bind_text(s, 2, upload_id);
        db_bind_int64(s, 3, (int64_t)max);
    } else {
        db_bind_int64(s, 2, (int64_t)max);
    }
    while ((rc = db_step(s)) == DB_ROW && *n < max) {
        start_ms[*n] = db_col_int64(s, 0);
        end_ms[*n] = db_col_int64(s, 1);
        offset_min[*n] =
            db_col_is_null(s, 2) ? store_sample_payload_offset(db_col_text(s, 3)) : (int32_t)db_col_int64(s, 2);
        (*n)++;
    }
    db_stmt_reset(s);
    return rc < 0 ? store_tx_fail(tx, rc) : 0;
}

/* ---- the analysis window -------------------------------------------------- */

/*
 * One statement, the same on both backends but for the substring function
 * (SQLite instr, PostgreSQL strpos: both (haystack, needle), NULL for a NULL
 * needle). Parameters: ?1 user, ?2/?3 the start_ms range, ?4..?11 the types
 * (unused slots NULL match nothing), ?12..?15 the rank patterns, ?16 the rank
 * of no match, ?17..?20 the types that bring their payload (equalities, not
 * IN: PostgreSQL would build the IN list's array again for every row), ?21
 * the limit.
 * A row stored before migration 004 (utc_offset_min NULL) brings its payload
 * too, for its offset. The rows come through health_samples_user_time_type
 * in start_ms order; only rows sharing a start_ms are sorted by id.
 */
#define WINDOW_SQL(POS)                                                                                                \
    "SELECT CASE metric_type WHEN ?4 THEN 0 WHEN ?5 THEN 1 WHEN ?6 THEN 2 WHEN ?7 THEN 3"                              \
    " WHEN ?8 THEN 4 WHEN ?9 THEN 5 WHEN ?10 THEN 6 WHEN ?11 THEN 7 ELSE -1 END,"                                      \
    " start_ms, end_ms, value,"                                                                                        \
    " CASE WHEN " POS "(device, ?12) > 0 OR " POS "(source, ?12) > 0 THEN 0"                                           \
    " WHEN " POS "(device, ?13) > 0 OR " POS "(source, ?13) > 0 THEN 1"                                                \
    " WHEN " POS "(device, ?14) > 0 OR " POS "(source, ?14) > 0 THEN 2"                                                \
    " WHEN " POS "(device, ?15) > 0 OR " POS "(source, ?15) > 0 THEN 3"                                                \
    " ELSE CAST(?16 AS INTEGER) END,"                                                                                  \
    " utc_offset_min,"                                                                                                 \
    " CASE WHEN utc_offset_min IS NULL OR metric_type = ?17 OR metric_type = ?18"                                      \
    " OR metric_type = ?19 OR metric_type = ?20 THEN payload END"                                                      \
    " FROM health_samples WHERE user_id = ?1 AND start_ms >= ?2 AND start_ms < ?3"                                     \
    " ORDER BY start_ms, id LIMIT ?21"

int store_window_grow(struct store_window *w)
{
    size_t nc = w->cap ? w->cap * 2 : 4096;
    /* Each array is moved as soon as it is reallocated, so a failure
     * half-way leaves every array valid (some merely larger). */
#define GROW(field)                                                                                                    \
    do {                                                                                                               \
        void *p_ = realloc(w->field, nc * sizeof(*w->field));                                                          \
        if (p_ == NULL)                                                                                                \
            return STORE_ENOMEM;                                                                                       \
        w->field = p_;                                                                                                 \
    } while (0)
    GROW(type);
    GROW(start_ms);
    GROW(end_ms);
    GROW(value);
    GROW(rank);
    GROW(offset_min);
    GROW(payload);
#undef GROW
    w->cap = nc;
    return 0;
}

static int window_text(struct store_window *w, const char *t, uint32_t *at)
{
    size_t len = strlen(t);
    if (w->text_len + len + 1 > w->text_cap) {
        size_t nc = w->text_cap ? w->text_cap : 4096;
        while (nc < w->text_len + len + 1)
            nc *= 2;
        if (nc >= UINT32_MAX)
            return STORE_ENOMEM;
        char *p = realloc(w->text, nc);
        if (p == NULL)
            return STORE_ENOMEM;
        w->text = p;
        w->text_cap = nc;
    }
    memcpy(w->text + w->text_len, t, len + 1);
    *at = (uint32_t)w->text_len;
    w->text_len += len + 1;
    return 0;
}

static int window_query_ok(const struct store_window_query *q)
{
    if (q == NULL || q->user_id == NULL || q->types == NULL || q->n_types < 1 || q->n_types > STORE_WINDOW_MAX_TYPES ||
        q->n_ranks > STORE_WINDOW_MAX_RANKS || (q->n_ranks > 0 && q->ranks == NULL))
        return 0;
    for (size_t i = 0; i < q->n_types; i++)
        if (q->types[i] == NULL)
            return 0;
    for (size_t i = 0; i < q->n_ranks; i++)
        if (q->ranks[i] == NULL || q->ranks[i][0] == '\0')
            return 0;
    int bits = 0;
    for (size_t i = 0; i < 32; i++)
        if (q->payload_types >> i & 1u) {
            if (i >= q->n_types)
                return 0;
            bits++;
        }
    return bits <= STORE_WINDOW_MAX_PAYLOAD_TYPES;
}

/* Empty w and check q: what both window reads start with. */
static int window_reset(const struct store_window_query *q, struct store_window *w)
{
    if (w == NULL)
        return STORE_EINVAL;
    w->n = 0;
    w->n_other = 0;
    w->text_len = 0;
    return window_query_ok(q) ? 0 : STORE_EINVAL;
}

int store_sample_window(struct store_tx *tx, const struct store_window_query *q, struct store_window *w)
{
    int use_rows = 0;
    int rc = window_reset(q, w);
    if (rc != 0)
        return rc;
    rc = store_days_window(tx, q, w, &use_rows);
    if (rc == 0 && use_rows)
        return store_sample_window_rows(tx, q, w);
    if (rc != 0)
        window_reset(q, w);
    return rc;
}

int store_sample_window_rows(struct store_tx *tx, const struct store_window_query *q, struct store_window *w)
{
    static const char lite[] = WINDOW_SQL("instr");
    static const char pg[] = WINDOW_SQL("strpos");
    struct db_stmt *s = NULL;
    int rows = 0;
    int rc = window_reset(q, w);
    if (rc != 0 || (rc = store_legacy_rows(tx, &rows)) != 0 || !rows)
        return rc;
    rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s);
    if (rc != 0)
        return rc;
    db_stmt_binary_results(s);
    db_bind_text(s, 1, q->user_id);
    db_bind_int64(s, 2, q->from_ms);
    db_bind_int64(s, 3, q->to_ms);
    for (size_t i = 0; i < STORE_WINDOW_MAX_TYPES; i++)
        db_bind_text(s, 4 + (int)i, i < q->n_types ? q->types[i] : NULL);
    for (size_t i = 0; i < STORE_WINDOW_MAX_RANKS; i++)
        db_bind_text(s, 12 + (int)i, i < q->n_ranks ? q->ranks[i] : NULL);
    db_bind_int64(s, 16, (int64_t)q->n_ranks);
    int slot = 0;
    for (size_t i = 0; i < q->n_types; i++)
        if (q->payload_types >> i & 1u)
            db_bind_text(s, 17 + slot++, q->types[i]);
    for (; slot < STORE_WINDOW_MAX_PAYLOAD_TYPES; slot++)
        db_bind_null(s, 17 + slot);
    db_bind_int64(s, 21, q->max_rows > 0 && q->max_rows < (size_t)INT64_MAX ? (int64_t)q->max_rows + 1 : INT64_MAX);
    while ((rc = db_step(s)) == DB_ROW) {
        int64_t t = db_col_int64(s, 0);
        if (t < 0 || t >= (int64_t)q->n_types) {
            w->n_other++;
            continue;
        }
        if (w->n == w->cap && (rc = store_window_grow(w)) != 0)
            break;
        size_t i = w->n;
        w->type[i] = (uint8_t)t;
        w->start_ms[i] = db_col_int64(s, 1);
        w->end_ms[i] = db_col_int64(s, 2);
        w->value[i] = db_col_is_null(s, 3) ? NAN : db_col_double(s, 3);
        w->rank[i] = (uint8_t)db_col_int64(s, 4);
        const char *pl = db_col_text(s, 6);
        w->offset_min[i] = db_col_is_null(s, 5) ? store_sample_payload_offset(pl) : (int32_t)db_col_int64(s, 5);
        w->payload[i] = STORE_WINDOW_NO_PAYLOAD;
        if (pl != NULL && (q->payload_types >> t & 1u) && (rc = window_text(w, pl, &w->payload[i])) != 0)
            break;
        w->n++;
    }
    db_stmt_reset(s);
    if (rc == DB_DONE)
        return 0;
    window_reset(q, w);
    return rc == STORE_ENOMEM ? rc : store_tx_fail(tx, rc);
}

void store_window_free(struct store_window *w)
{
    if (w == NULL)
        return;
    free(w->type);
    free(w->start_ms);
    free(w->end_ms);
    free(w->value);
    free(w->rank);
    free(w->offset_min);
    free(w->payload);
    free(w->text);
    memset(w, 0, sizeof(*w));
}

/* ---- raw uploads ---------------------------------------------------------- */

int store_raw_upload_put(struct store_tx *tx, const struct store_raw_upload *r)
{
    static const char sql[] = "INSERT INTO raw_uploads (upload_id, user_id, key_version, wrapped_dek, nonce,"
                              " ciphertext, content_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    struct db_stmt *s = NULL;
    if (!FITS(r->upload_id) || !FITS(r->user_id) || !FITS(r->content_type) || r->ciphertext == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, r->upload_id);
    db_bind_text(s, 2, r->user_id);
    db_bind_int64(s, 3, r->key_version);
    db_bind_blob(s, 4, r->wrapped_dek, r->wrapped_dek_len);
    db_bind_blob(s, 5, r->nonce, r->nonce_len);
    db_bind_blob(s, 6, r->ciphertext, r->ciphertext_len);
    db_bind_text(s, 7, r->content_type);
    db_bind_int64(s, 8, r->created_at_ms ? r->created_at_ms : store_now_ms());
    return store_tx_run(tx, s, NULL);
}

static int blob_dup(struct db_stmt *s, int col, unsigned char **out, size_t *len)
{
    size_t n = 0;
    const void *p = db_col_blob(s, col, &n);
    *out = NULL;
    *len = 0;
    if (p == NULL)
        return 0;
    *out = malloc(n ? n : 1);
    if (*out == NULL)
        return -1;
    memcpy(*out, p, n);
    *len = n;
    return 0;
}

void store_raw_upload_clear(struct store_raw_upload *r)
{
    if (r == NULL)
        return;
    free(r->wrapped_dek);
    free(r->nonce);
    free(r->ciphertext);
    r->wrapped_dek = r->nonce = r->ciphertext = NULL;
}

int store_raw_upload_get(struct store_tx *tx, const char *upload_id, struct store_raw_upload *out)
{
    static const char sql[] = "SELECT upload_id, user_id, key_version, wrapped_dek, nonce,"
                              " ciphertext, content_type, created_at FROM raw_uploads"
                              " WHERE upload_id = ?1";
    struct db_stmt *s = NULL;
    struct store_raw_upload r;
    memset(&r, 0, sizeof(r));
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, upload_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    store_col_copy(s, 0, r.upload_id, sizeof(r.upload_id));
    store_col_copy(s, 1, r.user_id, sizeof(r.user_id));
    r.key_version = (int)db_col_int64(s, 2);
    store_col_copy(s, 6, r.content_type, sizeof(r.content_type));
    r.created_at_ms = db_col_int64(s, 7);
    if (blob_dup(s, 3, &r.wrapped_dek, &r.wrapped_dek_len) != 0 || blob_dup(s, 4, &r.nonce, &r.nonce_len) != 0 ||
        blob_dup(s, 5, &r.ciphertext, &r.ciphertext_len) != 0) {
        db_stmt_reset(s);
        store_raw_upload_clear(&r);
        return STORE_ENOMEM;
    }
    db_stmt_reset(s);
    *out = r;
    return 0;
}

int store_raw_upload_purge(struct store *st, int64_t now_ms, int64_t *n)
{
    static const char sql[] = "DELETE FROM raw_uploads WHERE upload_id IN (SELECT upload_id FROM raw_uploads"
                              " WHERE created_at < ?1 LIMIT 1000)";
    int64_t total = 0;
    int rc = 0;
    while (st->opts.raw_retention_ms > 0) {
        struct store_tx *tx = NULL;
        struct db_stmt *s = NULL;
        int64_t k = 0;
        if ((rc = store_tx_begin(st, STORE_TX_WRITE, &tx)) != 0)
            break;
        if ((rc = store_tx_stmt(tx, sql, &s)) == 0) {
            db_bind_int64(s, 1, now_ms - st->opts.raw_retention_ms);
            rc = store_tx_run(tx, s, &k);
        }
        if (rc != 0) {
            store_tx_rollback(tx);
            break;
        }
        if ((rc = store_tx_commit(tx)) != 0)
            break;
        total += k;
        if (k < 1000)
            break;
    }
    if (rc == 0 && n != NULL)
        *n = total;
    return rc;
}

/* ---- sealed values (store_set_sealer) ------------------------------------- */

static int sealer_rc(int rc) { return store_sealer_code(rc); }

/* Two optional texts as one plaintext: u8 presence bits, u32 length of the
 * first (little-endian), the first, the second. */
static int pair_pack(const char *a, const char *b, unsigned char **out, size_t *len)
{
    size_t la = a ? strlen(a) : 0, lb = b ? strlen(b) : 0;
    if (la > UINT32_MAX)
        return STORE_EINVAL;
    unsigned char *p = malloc(5 + la + lb);
    if (p == NULL)
        return STORE_ENOMEM;
    p[0] = (unsigned char)((a != NULL) | (b != NULL) << 1);
    for (int i = 0; i < 4; i++)
        p[1 + i] = (unsigned char)(la >> (8 * i));
    if (la)
        memcpy(p + 5, a, la);
    if (lb)
        memcpy(p + 5 + la, b, lb);
    *out = p;
    *len = 5 + la + lb;
    return 0;
}

static int pair_unpack(const unsigned char *p, size_t len, char **a, char **b)
{
    *a = *b = NULL;
    if (len < 5 || p[0] > 3)
        return STORE_EINTERNAL;
    size_t la = (size_t)p[1] | (size_t)p[2] << 8 | (size_t)p[3] << 16 | (size_t)p[4] << 24;
    if (la > len - 5 || memchr(p + 5, 0, len - 5) != NULL)
        return STORE_EINTERNAL;
    size_t lb = len - 5 - la;
    if (((p[0] & 1) == 0 && la) || ((p[0] & 2) == 0 && lb))
        return STORE_EINTERNAL;
    if ((p[0] & 1) && (*a = strndup((const char *)p + 5, la)) == NULL)
        return STORE_ENOMEM;
    if ((p[0] & 2) && (*b = strndup((const char *)p + 5 + la, lb)) == NULL) {
        free(*a);
        *a = NULL;
        return STORE_ENOMEM;
    }
    return 0;
}

/* Seal texts a and b of record kind/id for user: *blob, or NULL when the
 * store has no sealer. */
static int seal_pair(struct store_tx *tx, const char *kind, const char *id, const char *user, const char *a,
                     const char *b, unsigned char **blob, size_t *blen)
{
    const struct store_sealer *z = &tx->st->sealer;
    char bound[64];
    unsigned char *p = NULL;
    size_t plen = 0;
    *blob = NULL;
    *blen = 0;
    if (z->seal == NULL)
        return 0;
    snprintf(bound, sizeof(bound), "%s/%s", kind, id);
    int rc = pair_pack(a, b, &p, &plen);
    if (rc != 0)
        return rc;
    rc = z->seal(z->ctx, tx, user, bound, p, plen, blob, blen);
    explicit_bzero(p, plen);
    free(p);
    return rc != 0 ? sealer_rc(rc) : 0;
}

/* Open a record's sealed texts into *a and *b (which must be NULL). */
static int open_pair(struct store_tx *tx, const char *kind, const char *id, const char *user, const unsigned char *blob,
                     size_t blen, char **a, char **b)
{
    const struct store_sealer *z = &tx->st->sealer;
    char bound[64];
    unsigned char *p = NULL;
    size_t plen = 0;
    if (z->open == NULL)
        return STORE_EUNAVAILABLE; /* sealed, and no key ring in this process */
    snprintf(bound, sizeof(bound), "%s/%s", kind, id);
    int rc = z->open(z->ctx, tx, user, bound, blob, blen, &p, &plen);
    if (rc != 0)
        return sealer_rc(rc);
    free(*a);
    free(*b);
    rc = pair_unpack(p, plen, a, b);
    explicit_bzero(p, plen);
    free(p);
    return rc;
}

/* Copy a blob column into *out (NULL when NULL). */
static int col_blob_dup(struct db_stmt *s, int col, unsigned char **out, size_t *len)
{
    size_t n = 0;
    const void *p = db_col_blob(s, col, &n);
    *out = NULL;
    *len = 0;
    if (p == NULL || db_col_is_null(s, col))
        return 0;
    if ((*out = malloc(n ? n : 1)) == NULL)
        return -1;
    memcpy(*out, p, n);
    *len = n;
    return 0;
}

/* ---- analyses ------------------------------------------------------------- */

#define ANALYSIS_COLS "id, user_id, upload_id, kind, model_version, version, coverage, result, created_at, sealed"

int store_analysis_insert(struct store_tx *tx, const struct store_analysis *a)
{
    static const char sql[] = "INSERT INTO analyses (" ANALYSIS_COLS ") VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    struct db_stmt *s = NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    if (!FITS(a->id) || !FITS(a->user_id) || !FITS(a->upload_id) || !FITS(a->kind) || !FITS(a->model_version) ||
        !a->id[0] || !a->user_id[0])
        return STORE_EINVAL;
    int rc = seal_pair(tx, "analysis", a->id, a->user_id, a->coverage, a->result, &blob, &blen);
    if (rc == 0)
        rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0) {
        free(blob);
        return rc;
    }
    db_bind_text(s, 1, a->id);
    db_bind_text(s, 2, a->user_id);
    db_bind_text(s, 3, a->upload_id[0] ? a->upload_id : NULL);
    db_bind_text(s, 4, a->kind);
    db_bind_text(s, 5, a->model_version);
    db_bind_int64(s, 6, a->version);
    db_bind_text(s, 7, blob ? NULL : a->coverage);
    db_bind_text(s, 8, blob ? NULL : a->result);
    db_bind_int64(s, 9, a->created_at_ms ? a->created_at_ms : store_now_ms());
    if (blob)
        db_bind_blob(s, 10, blob, blen);
    else
        db_bind_null(s, 10);
    rc = store_tx_run(tx, s, NULL);
    free(blob);
    return rc;
}

static int analysis_row(struct db_stmt *s, void *item)
{
    struct store_analysis *a = item;
    store_col_copy(s, 0, a->id, sizeof(a->id));
    store_col_copy(s, 1, a->user_id, sizeof(a->user_id));
    store_col_copy(s, 2, a->upload_id, sizeof(a->upload_id));
    store_col_copy(s, 3, a->kind, sizeof(a->kind));
    store_col_copy(s, 4, a->model_version, sizeof(a->model_version));
    a->version = (int)db_col_int64(s, 5);
    a->created_at_ms = db_col_int64(s, 8);
    if (store_col_dup(s, 6, &a->coverage) != 0 || store_col_dup(s, 7, &a->result) != 0 ||
        col_blob_dup(s, 9, &a->sealed_, &a->sealed_len_) != 0)
        return -1;
    return 0;
}

/* Open the sealed values of analyses read (v[0..n)). */
static int analyses_open(struct store_tx *tx, struct store_analysis *v, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v[i].sealed_ == NULL)
            continue;
        rc = open_pair(tx, "analysis", v[i].id, v[i].user_id, v[i].sealed_, v[i].sealed_len_, &v[i].coverage,
                       &v[i].result);
        free(v[i].sealed_);
        v[i].sealed_ = NULL;
        v[i].sealed_len_ = 0;
    }
    return rc;
}

void store_analysis_clear(struct store_analysis *a)
{
    if (a == NULL)
        return;
    free(a->coverage);
    free(a->result);
    free(a->sealed_);
    a->coverage = a->result = NULL;
    a->sealed_ = NULL;
    a->sealed_len_ = 0;
}

static void analysis_clear_v(void *p) { store_analysis_clear(p); }

void store_analysis_list_free(struct store_analysis *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        store_analysis_clear(&v[i]);
    free(v);
}

int store_analysis_get(struct store_tx *tx, const char *id, const char *user_id, struct store_analysis *out)
{
    static const char sql[] = "SELECT " ANALYSIS_COLS " FROM analyses WHERE id = ?1"
                              " AND (CAST(?2 AS TEXT) IS NULL OR user_id = ?2)";
    struct db_stmt *s = NULL;
    struct store_analysis a;
    memset(&a, 0, sizeof(a));
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, user_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    rc = analysis_row(s, &a);
    db_stmt_reset(s);
    if (rc != 0) {
        store_analysis_clear(&a);
        return STORE_ENOMEM;
    }
    if ((rc = analyses_open(tx, &a, 1)) != 0) {
        store_analysis_clear(&a);
        return rc;
    }
    *out = a;
    return 0;
}

int store_analysis_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                        struct store_analysis **out, size_t *n, struct store_cursor *next)
{
    static const char sql[] = "SELECT " ANALYSIS_COLS " FROM analyses"
                              " WHERE user_id = ?1 AND (created_at, id) < (?2, ?3)"
                              " ORDER BY created_at DESC, id DESC LIMIT ?4";
    struct db_stmt *s = NULL;
    if (!limit_ok(limit) || user_id == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    bind_after(s, 2, after);
    db_bind_int64(s, 4, (int64_t)limit + 1);
    rc = collect(tx, s, limit, sizeof(**out), analysis_row, analysis_clear_v, (void **)out, n, next, 8, 0);
    if (rc == 0 && (rc = analyses_open(tx, *out, *n)) != 0) {
        store_analysis_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- insights ------------------------------------------------------------- */

#define INSIGHT_COLS                                                                                                   \
    "id, user_id, analysis_id, insight_type, generator, narrative, body, confidence,"                                  \
    " created_at, sealed"

int store_insight_insert(struct store_tx *tx, const struct store_insight *i)
{
    static const char sql[] = "INSERT INTO insights (" INSIGHT_COLS ") VALUES"
                              " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    struct db_stmt *s = NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    if (!FITS(i->id) || !FITS(i->user_id) || !FITS(i->analysis_id) || !FITS(i->insight_type) || !FITS(i->generator) ||
        !i->id[0] || !i->user_id[0])
        return STORE_EINVAL;
    int rc =
        seal_pair(tx, "insight", i->id, i->user_id, i->narrative != NULL ? i->narrative : "", i->body, &blob, &blen);
    if (rc == 0)
        rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0) {
        free(blob);
        return rc;
    }
    db_bind_text(s, 1, i->id);
    db_bind_text(s, 2, i->user_id);
    db_bind_text(s, 3, i->analysis_id[0] ? i->analysis_id : NULL);
    db_bind_text(s, 4, i->insight_type);
    db_bind_text(s, 5, i->generator);
    db_bind_text(s, 6, blob ? "" : i->narrative != NULL ? i->narrative : "");
    db_bind_text(s, 7, blob ? NULL : i->body);
    db_bind_double(s, 8, i->confidence);
    db_bind_int64(s, 9, i->created_at_ms ? i->created_at_ms : store_now_ms());
    if (blob)
        db_bind_blob(s, 10, blob, blen);
    else
        db_bind_null(s, 10);
    rc = store_tx_run(tx, s, NULL);
    free(blob);
    /* Chat sockets on any instance hear of it when the row becomes visible. */
    return rc == 0 ? store_tx_notify_insight(tx, i->user_id, i->id) : rc;
}

int store_insight_update(struct store_tx *tx, const struct store_insight *i)
{
    static const char sql[] = "UPDATE insights SET analysis_id = ?3, generator = ?4, narrative = ?5, body = ?6,"
                              " confidence = ?7, created_at = ?8 WHERE id = ?1 AND user_id = ?2";
    struct db_stmt *s = NULL;
    int64_t changed = 0;
    if (!FITS(i->id) || !FITS(i->user_id) || !FITS(i->analysis_id) || !FITS(i->generator) || !i->id[0] ||
        !i->user_id[0])
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, i->id);
    db_bind_text(s, 2, i->user_id);
    db_bind_text(s, 3, i->analysis_id[0] ? i->analysis_id : NULL);
    db_bind_text(s, 4, i->generator);
    db_bind_text(s, 5, i->narrative != NULL ? i->narrative : "");
    db_bind_text(s, 6, i->body);
    db_bind_double(s, 7, i->confidence);
    db_bind_int64(s, 8, i->created_at_ms ? i->created_at_ms : store_now_ms());
    rc = store_tx_run(tx, s, &changed);
    if (rc == 0 && changed == 0)
        rc = STORE_ENOTFOUND;
    return rc == 0 ? store_tx_notify_insight(tx, i->user_id, i->id) : rc;
}

static int insight_row(struct db_stmt *s, void *item)
{
    struct store_insight *i = item;
    store_col_copy(s, 0, i->id, sizeof(i->id));
    store_col_copy(s, 1, i->user_id, sizeof(i->user_id));
    store_col_copy(s, 2, i->analysis_id, sizeof(i->analysis_id));
    store_col_copy(s, 3, i->insight_type, sizeof(i->insight_type));
    store_col_copy(s, 4, i->generator, sizeof(i->generator));
    i->confidence = db_col_double(s, 7);
    i->created_at_ms = db_col_int64(s, 8);
    if (store_col_dup(s, 5, &i->narrative) != 0 || store_col_dup(s, 6, &i->body) != 0 ||
        col_blob_dup(s, 9, &i->sealed_, &i->sealed_len_) != 0)
        return -1;
    return 0;
}

static int insights_open(struct store_tx *tx, struct store_insight *v, size_t n)
{
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (v[k].sealed_ == NULL)
            continue;
        rc = open_pair(tx, "insight", v[k].id, v[k].user_id, v[k].sealed_, v[k].sealed_len_, &v[k].narrative,
                       &v[k].body);
        free(v[k].sealed_);
        v[k].sealed_ = NULL;
        v[k].sealed_len_ = 0;
    }
    return rc;
}

void store_insight_clear(struct store_insight *i)
{
    if (i == NULL)
        return;
    free(i->narrative);
    free(i->body);
    free(i->sealed_);
    i->narrative = i->body = NULL;
    i->sealed_ = NULL;
    i->sealed_len_ = 0;
}

static void insight_clear_v(void *p) { store_insight_clear(p); }

void store_insight_list_free(struct store_insight *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t k = 0; k < n; k++)
        store_insight_clear(&v[k]);
    free(v);
}

int store_insight_get(struct store_tx *tx, const char *id, const char *user_id, struct store_insight *out)
{
    static const char sql[] = "SELECT " INSIGHT_COLS " FROM insights WHERE id = ?1"
                              " AND (CAST(?2 AS TEXT) IS NULL OR user_id = ?2)";
    struct db_stmt *s = NULL;
    struct store_insight x;
    memset(&x, 0, sizeof(x));
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_text(s, 2, user_id);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    rc = insight_row(s, &x);
    db_stmt_reset(s);
    if (rc != 0) {
        store_insight_clear(&x);
        return STORE_ENOMEM;
    }
    if ((rc = insights_open(tx, &x, 1)) != 0) {
        store_insight_clear(&x);
        return rc;
    }
    *out = x;
    return 0;
}

int store_insight_list(struct store_tx *tx, const char *user_id, const char *insight_type,
                       const struct store_cursor *after, size_t limit, struct store_insight **out, size_t *n,
                       struct store_cursor *next)
{
    static const char sql[] = "SELECT " INSIGHT_COLS " FROM insights"
                              " WHERE user_id = ?1 AND (CAST(?5 AS TEXT) IS NULL OR insight_type = ?5)"
                              " AND (created_at, id) < (?2, ?3)"
                              " ORDER BY created_at DESC, id DESC LIMIT ?4";
    struct db_stmt *s = NULL;
    if (!limit_ok(limit) || user_id == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    bind_after(s, 2, after);
    db_bind_int64(s, 4, (int64_t)limit + 1);
    db_bind_text(s, 5, insight_type);
    rc = collect(tx, s, limit, sizeof(**out), insight_row, insight_clear_v, (void **)out, n, next, 8, 0);
    if (rc == 0 && (rc = insights_open(tx, *out, *n)) != 0) {
        store_insight_list_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- key ring ------------------------------------------------------------- */

int store_key_insert(struct store_tx *tx, const struct store_key *k)
{
    static const char sql[] = "INSERT INTO key_ring (version, algorithm, status, wrapped_key,"
                              " created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
    struct db_stmt *s = NULL;
    if (!FITS(k->algorithm) || !FITS(k->status) || k->wrapped_key == NULL || k->version < 1)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, k->version);
    db_bind_text(s, 2, k->algorithm);
    db_bind_text(s, 3, k->status[0] ? k->status : "active");
    db_bind_blob(s, 4, k->wrapped_key, k->wrapped_key_len);
    db_bind_int64(s, 5, k->created_at_ms ? k->created_at_ms : store_now_ms());
    return store_tx_run(tx, s, NULL);
}

static int key_get(struct store_tx *tx, const char *sql, int version, struct store_key *out)
{
    struct db_stmt *s = NULL;
    struct store_key k;
    memset(&k, 0, sizeof(k));
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    if (version > 0)
        db_bind_int64(s, 1, version);
    if ((rc = step_one(tx, s)) != 0)
        return rc;
    k.version = (int)db_col_int64(s, 0);
    store_col_copy(s, 1, k.algorithm, sizeof(k.algorithm));
    store_col_copy(s, 2, k.status, sizeof(k.status));
    k.created_at_ms = db_col_int64(s, 4);
    rc = blob_dup(s, 3, &k.wrapped_key, &k.wrapped_key_len);
    db_stmt_reset(s);
    if (rc != 0)
        return STORE_ENOMEM;
    *out = k;
    return 0;
}

int store_key_get(struct store_tx *tx, int version, struct store_key *out)
{
    if (version < 1)
        return STORE_EINVAL;
    return key_get(tx,
                   "SELECT version, algorithm, status, wrapped_key, created_at FROM key_ring"
                   " WHERE version = ?1",
                   version, out);
}

int store_key_get_active(struct store_tx *tx, struct store_key *out)
{
    return key_get(tx,
                   "SELECT version, algorithm, status, wrapped_key, created_at FROM key_ring"
                   " WHERE status = 'active' ORDER BY version DESC LIMIT 1",
                   0, out);
}

int store_key_status_set(struct store_tx *tx, int version, const char *status)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "UPDATE key_ring SET status = ?2 WHERE version = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, version);
    db_bind_text(s, 2, status);
    return run_one(tx, s);
}

void store_key_clear(struct store_key *k)
{
    if (k == NULL)
        return;
    free(k->wrapped_key);
    k->wrapped_key = NULL;
}
