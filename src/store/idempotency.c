/*
 * idempotency.c — the idempotency_keys table (migration 003). See
 * idempotency.h.
 */
#include "store/idempotency.h"

#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

int store_idempotency_put(struct store_tx *tx, const struct store_idempotency *r)
{
    /* An upsert (SQLite ≥ 3.24 and PostgreSQL) keeps the transaction usable
     * when the key exists, unlike a unique violation; a reply past the
     * retention window is replaced, a live one is left alone (0 changes). */
    static const char sql[] = "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, status, response,"
                              " created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                              " ON CONFLICT (user_id, idem_key) DO UPDATE SET request_hash = excluded.request_hash,"
                              " status = excluded.status, response = excluded.response,"
                              " created_at = excluded.created_at WHERE idempotency_keys.created_at < ?7";
    struct db_stmt *s = NULL;
    int64_t changes = 0;
    if (!store_str_fits(r->user_id, sizeof(r->user_id)) || !store_str_fits(r->key, sizeof(r->key)) ||
        r->key[0] == '\0' || r->response == NULL)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, r->user_id);
    db_bind_text(s, 2, r->key);
    db_bind_text(s, 3, r->request_hash);
    db_bind_int64(s, 4, r->status);
    db_bind_text(s, 5, r->response);
    int64_t now = r->created_at_ms ? r->created_at_ms : store_now_ms();
    db_bind_int64(s, 6, now);
    db_bind_int64(s, 7, now - STORE_IDEMPOTENCY_RETENTION_MS);
    if ((rc = store_tx_run(tx, s, &changes)) != 0)
        return rc;
    return changes == 1 ? 0 : STORE_ECONFLICT;
}

int store_idempotency_get(struct store_tx *tx, const char *user_id, const char *key, int64_t not_before_ms,
                          struct store_idempotency *out)
{
    static const char sql[] = "SELECT user_id, idem_key, request_hash, status, response, created_at"
                              " FROM idempotency_keys WHERE user_id = ?1 AND idem_key = ?2 AND created_at >= ?3";
    struct db_stmt *s = NULL;
    struct store_idempotency r;
    memset(&r, 0, sizeof(r));
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_text(s, 2, key);
    db_bind_int64(s, 3, not_before_ms);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return rc == DB_DONE ? STORE_ENOTFOUND : store_tx_fail(tx, rc);
    }
    store_col_copy(s, 0, r.user_id, sizeof(r.user_id));
    store_col_copy(s, 1, r.key, sizeof(r.key));
    store_col_copy(s, 2, r.request_hash, sizeof(r.request_hash));
    r.status = (int)db_col_int64(s, 3);
    r.created_at_ms = db_col_int64(s, 5);
    rc = store_col_dup(s, 4, &r.response);
    db_stmt_reset(s);
    if (rc != 0)
        return STORE_ENOMEM;
    *out = r;
    return 0;
}

int store_idempotency_purge(struct store_tx *tx, int64_t before_ms, int64_t *n)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM idempotency_keys WHERE created_at < ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, before_ms);
    return store_tx_run(tx, s, n);
}

void store_idempotency_clear(struct store_idempotency *r)
{
    if (r == NULL)
        return;
    free(r->response);
    r->response = NULL;
}
