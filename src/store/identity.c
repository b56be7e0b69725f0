/*
 * identity.c — external identities, the session revocation set and the
 * users' verification/display-name columns (migration 007). See store.h.
 */
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "store/store_int.h"

int store_identity_get(struct store_tx *tx, const char *issuer, const char *subject, char user_id[STORE_ID_LEN])
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT user_id FROM external_identities WHERE issuer = ?1 AND subject = ?2", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, issuer);
    db_bind_text(s, 2, subject);
    rc = db_step(s);
    if (rc == DB_ROW) {
        store_col_copy(s, 0, user_id, STORE_ID_LEN);
        db_stmt_reset(s);
        return 0;
    }
    db_stmt_reset(s);
    return rc == DB_DONE ? STORE_ENOTFOUND : store_tx_fail(tx, rc);
}

int store_identity_insert(struct store_tx *tx, const char *issuer, const char *subject, const char *user_id,
                          const char *email)
{
    struct db_stmt *s = NULL;
    if (issuer == NULL || subject == NULL || user_id == NULL || !issuer[0] || !subject[0] || strlen(issuer) > 512 ||
        strlen(subject) > 255)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx,
                           "INSERT INTO external_identities (issuer, subject, user_id, email, created_at)"
                           " VALUES (?1, ?2, ?3, ?4, ?5)",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, issuer);
    db_bind_text(s, 2, subject);
    db_bind_text(s, 3, user_id);
    db_bind_text(s, 4, email != NULL ? email : "");
    db_bind_int64(s, 5, store_now_ms());
    return store_tx_run(tx, s, NULL);
}

int store_identity_count(struct store_tx *tx, const char *user_id, int64_t *n)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT COUNT(*) FROM external_identities WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return store_tx_fail(tx, rc);
    }
    *n = db_col_int64(s, 0);
    db_stmt_reset(s);
    return 0;
}

int store_session_revoke(struct store_tx *tx, const char *sid, int64_t now_ms, int64_t expires_at_ms)
{
    struct db_stmt *s = NULL;
    if (sid == NULL || !sid[0] || strlen(sid) >= sizeof(((struct store_revocation *)0)->sid))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx,
                           "INSERT INTO revoked_sessions (sid, revoked_at, expires_at) VALUES (?1, ?2, ?3)"
                           " ON CONFLICT (sid) DO UPDATE SET revoked_at = excluded.revoked_at,"
                           " expires_at = excluded.expires_at",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, sid);
    db_bind_int64(s, 2, now_ms);
    db_bind_int64(s, 3, expires_at_ms);
    return store_tx_run(tx, s, NULL);
}

int store_session_revoked_since(struct store_tx *tx, int64_t since_ms, int64_t now_ms, struct store_revocation *out,
                                size_t max, size_t *n)
{
    struct db_stmt *s = NULL;
    *n = 0;
    int rc = store_tx_stmt(tx, "DELETE FROM revoked_sessions WHERE expires_at < ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, now_ms);
    if ((rc = store_tx_run(tx, s, NULL)) != 0)
        return rc;
    rc = store_tx_stmt(tx,
                       "SELECT sid, revoked_at, expires_at FROM revoked_sessions WHERE revoked_at >= ?1"
                       " ORDER BY revoked_at, sid LIMIT ?2",
                       &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, since_ms);
    db_bind_int64(s, 2, (int64_t)max);
    size_t k = 0;
    while ((rc = db_step(s)) == DB_ROW && k < max) {
        store_col_copy(s, 0, out[k].sid, sizeof(out[k].sid));
        out[k].revoked_at_ms = db_col_int64(s, 1);
        out[k].expires_at_ms = db_col_int64(s, 2);
        k++;
    }
    db_stmt_reset(s);
    if (rc != DB_DONE && rc != DB_ROW)
        return store_tx_fail(tx, rc);
    *n = k;
    return 0;
}

int store_user_extra_get(struct store_tx *tx, const char *id, int *email_verified, char *display_name, size_t cap)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT email_verified, display_name FROM users WHERE id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return rc == DB_DONE ? STORE_ENOTFOUND : store_tx_fail(tx, rc);
    }
    *email_verified = db_col_int64(s, 0) != 0;
    store_col_copy(s, 1, display_name, cap);
    db_stmt_reset(s);
    return 0;
}

int store_user_extra_set(struct store_tx *tx, const char *id, int email_verified, const char *display_name)
{
    struct db_stmt *s = NULL;
    if (display_name == NULL || strlen(display_name) > 255)
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, "UPDATE users SET email_verified = ?2, display_name = ?3 WHERE id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, id);
    db_bind_int64(s, 2, email_verified ? 1 : 0);
    db_bind_text(s, 3, display_name);
    int64_t n = 0;
    rc = store_tx_run(tx, s, &n);
    return rc != 0 ? rc : n > 0 ? 0 : STORE_ENOTFOUND;
}

int store_email_code_put(struct store_tx *tx, const struct store_email_code *c)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx,
                           "INSERT INTO email_verifications (user_id, code_hash, expires_at, attempts, sent_at)"
                           " VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (user_id) DO UPDATE SET"
                           " code_hash = excluded.code_hash, expires_at = excluded.expires_at, attempts = 0,"
                           " sent_at = excluded.sent_at",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, c->user_id);
    db_bind_text(s, 2, c->code_hash);
    db_bind_int64(s, 3, c->expires_at_ms);
    db_bind_int64(s, 4, c->sent_at_ms);
    return store_tx_run(tx, s, NULL);
}

int store_email_code_get(struct store_tx *tx, const char *user_id, struct store_email_code *out)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx,
                           "SELECT user_id, code_hash, expires_at, attempts, sent_at FROM email_verifications"
                           " WHERE user_id = ?1",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return rc == DB_DONE ? STORE_ENOTFOUND : store_tx_fail(tx, rc);
    }
    store_col_copy(s, 0, out->user_id, sizeof(out->user_id));
    store_col_copy(s, 1, out->code_hash, sizeof(out->code_hash));
    out->expires_at_ms = db_col_int64(s, 2);
    out->attempts = (int)db_col_int64(s, 3);
    out->sent_at_ms = db_col_int64(s, 4);
    db_stmt_reset(s);
    return 0;
}

int store_email_code_attempt(struct store_tx *tx, const char *user_id)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "UPDATE email_verifications SET attempts = attempts + 1 WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, NULL);
}

int store_email_code_delete(struct store_tx *tx, const char *user_id)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM email_verifications WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, NULL);
}

int store_reset_code_put(struct store_tx *tx, const struct store_reset_code *c)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx,
                           "INSERT INTO password_resets (user_id, code_hash, expires_at, attempts, created_at)"
                           " VALUES (?1, ?2, ?3, 0, ?4) ON CONFLICT (user_id) DO UPDATE SET"
                           " code_hash = excluded.code_hash, expires_at = excluded.expires_at, attempts = 0,"
                           " created_at = excluded.created_at",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, c->user_id);
    db_bind_text(s, 2, c->code_hash);
    db_bind_int64(s, 3, c->expires_at_ms);
    db_bind_int64(s, 4, c->created_at_ms);
    return store_tx_run(tx, s, NULL);
}

int store_reset_code_get(struct store_tx *tx, const char *user_id, struct store_reset_code *out)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx,
                           "SELECT user_id, code_hash, expires_at, attempts, created_at FROM password_resets"
                           " WHERE user_id = ?1",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    rc = db_step(s);
    if (rc != DB_ROW) {
        db_stmt_reset(s);
        return rc == DB_DONE ? STORE_ENOTFOUND : store_tx_fail(tx, rc);
    }
    store_col_copy(s, 0, out->user_id, sizeof(out->user_id));
    store_col_copy(s, 1, out->code_hash, sizeof(out->code_hash));
    out->expires_at_ms = db_col_int64(s, 2);
    out->attempts = (int)db_col_int64(s, 3);
    out->created_at_ms = db_col_int64(s, 4);
    db_stmt_reset(s);
    return 0;
}

int store_reset_code_attempt(struct store_tx *tx, const char *user_id)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "UPDATE password_resets SET attempts = attempts + 1 WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, NULL);
}

int store_reset_code_delete(struct store_tx *tx, const char *user_id)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM password_resets WHERE user_id = ?1", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    return store_tx_run(tx, s, NULL);
}
