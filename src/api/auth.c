/*
 * auth.c — /api/v1/auth: register, login, refresh, logout, me (API.md
 * "Identity"), and the audit views.
 *
 * Refresh tokens are 256 random bits handed to the client once; only their
 * SHA-256 is stored. Every use rotates the token inside one write
 * transaction; presenting a token that was already rotated (or revoked)
 * revokes its whole family, since only a thief or a replay can hold it.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/input.h"
#include "auth/audit.h"
#include "auth/guard.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/store.h"

#define REFRESH_TTL_S (24 * 3600)
#define REFRESH_TTL_REMEMBER_S (30 * 24 * 3600)
#define REFRESH_BYTES 32

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

static json_t *profile_json(const struct store_user *u)
{
    json_t *perms = json_array();
    const char *names[8];
    int n = guard_perm_names(guard_role_perms(u->role), names, 8);
    for (int i = 0; i < n; i++)
        json_array_append_new(perms, json_string(names[i]));
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_string(u->id));
    json_object_set_new(o, "email", json_string(u->email));
    json_object_set_new(o, "first_name", json_string(u->first_name));
    json_object_set_new(o, "last_name", json_string(u->last_name));
    json_object_set_new(o, "role", json_string(u->role));
    json_object_set_new(o, "permissions", perms);
    json_object_set_new(o, "status", json_string(u->status));
    json_object_set_new(o, "last_login", api_time_json(u->last_login_ms));
    json_object_set_new(o, "created_at", api_time_json(u->created_at_ms));
    return o;
}

static void token_hash(const char *token, char out[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(out, 65, d, sizeof(d));
}

/*
 * Issue an access token and a new refresh token of `family` (a new family
 * when NULL) inside tx. Fills *tokens_out with the client's token object.
 */
static int issue_pair(struct api_ctx *ctx, struct store_tx *tx, const struct store_user *u, const char *family,
                      int64_t refresh_ttl_s, json_t **tokens_out, char new_id[STORE_ID_LEN])
{
    int64_t now_ms = time_now_ms();
    char jti[37];
    char *access = jwt_issue(ctx->signer, ctx->cfg->jwt_issuer, ctx->cfg->jwt_audience, u->id, u->role,
                             now_ms / 1000, ctx->cfg->access_token_ttl_seconds, jti);
    if (access == NULL)
        return STORE_EINTERNAL;
    unsigned char raw[REFRESH_BYTES];
    char refresh[64];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(refresh, sizeof(refresh), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));

    struct store_refresh_token t;
    memset(&t, 0, sizeof(t));
    uuid_v7(t.id);
    snprintf(t.user_id, sizeof(t.user_id), "%s", u->id);
    if (family != NULL)
        snprintf(t.family_id, sizeof(t.family_id), "%s", family);
    else
        uuid_v7(t.family_id);
    token_hash(refresh, t.token_hash);
    t.created_at_ms = now_ms;
    t.expires_at_ms = now_ms + refresh_ttl_s * 1000;
    int rc = store_token_insert(tx, &t);
    if (rc != 0) {
        free(access);
        return rc;
    }
    snprintf(new_id, STORE_ID_LEN, "%s", t.id);
    json_t *o = json_object();
    json_object_set_new(o, "access_token", json_string(access));
    json_object_set_new(o, "refresh_token", json_string(refresh));
    json_object_set_new(o, "token_type", json_string("bearer"));
    json_object_set_new(o, "expires_in", json_integer(ctx->cfg->access_token_ttl_seconds));
    json_object_set_new(o, "refresh_expires_in", json_integer(refresh_ttl_s));
    json_object_set_new(o, "scope", json_string("full_access"));
    sodium_memzero(refresh, sizeof(refresh));
    sodium_memzero(access, strlen(access));
    free(access);
    *tokens_out = o;
    return 0;
}

static void h_register(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"email",          "password",       "first_name",
                                          "last_name",      "phone_number",   "terms_accepted",
                                          "privacy_policy_accepted", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *email = input_string(&in, body, "", "email", 1, 3, 254);
    if (email != NULL && !input_email_valid(email))
        input_error(&in, "/email", "must be an email address");
    const char *pw = input_string(&in, body, "", "password", 1, 1, 1024);
    const char *why = pw != NULL ? password_policy_check(pw) : NULL;
    if (why != NULL)
        input_error(&in, "/password", "%s", why);
    const char *first = input_string(&in, body, "", "first_name", 1, 1, 50);
    const char *last = input_string(&in, body, "", "last_name", 1, 1, 50);
    const char *phone = input_string(&in, body, "", "phone_number", 0, 7, 20);
    if (phone != NULL) {
        /* E.164: '+' then up to 15 digits (ITU-T E.164 §6). */
        size_t k = phone[0] == '+' ? 1 : 0, digits = 0;
        for (; phone[k]; k++)
            digits += (phone[k] >= '0' && phone[k] <= '9') ? 1 : 1000;
        if (digits < 7 || digits > 15)
            input_error(&in, "/phone_number", "must be a phone number in E.164 form, e.g. +14155550100");
    }
    if (!input_bool(&in, body, "", "terms_accepted", 1, 0) && json_is_boolean(json_object_get(body, "terms_accepted")))
        input_error(&in, "/terms_accepted", "must be true");
    if (!input_bool(&in, body, "", "privacy_policy_accepted", 1, 0) &&
        json_is_boolean(json_object_get(body, "privacy_policy_accepted")))
        input_error(&in, "/privacy_policy_accepted", "must be true");
    if (input_done(&in) != 0)
        goto done;

    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "%s", email);
    lower(u.email);
    snprintf(u.first_name, sizeof(u.first_name), "%s", first);
    snprintf(u.last_name, sizeof(u.last_name), "%s", last);
    snprintf(u.phone_number, sizeof(u.phone_number), "%s", phone != NULL ? phone : "");
    snprintf(u.role, sizeof(u.role), "patient");
    snprintf(u.status, sizeof(u.status), "active");
    u.created_at_ms = time_now_ms();
    if (password_hash(pw, ctx->pw_profile, u.password_hash) != 0) {
        http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        goto done;
    }
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_insert(tx, &u);
    if (rc == STORE_ECONFLICT) {
        store_tx_rollback(tx);
        tx = NULL;
        audit_record(ctx->store, NULL, req, "", "auth.register", "user", "", "conflict");
        http_respond_problem(res, 409, "resource-conflict", "An account with this email already exists.");
        goto done;
    }
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.register", "user", u.id, "success") == 0 ? 0 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_string(u.id));
    json_object_set_new(o, "email", json_string(u.email));
    json_object_set_new(o, "status", json_string(u.status));
    json_object_set_new(o, "created_at", api_time_json(u.created_at_ms));
    http_respond_json(res, 201, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

static int locked_response(struct http_response *res, int seconds)
{
    struct problem *p = http_respond_problem(res, 423, "account-locked",
                                             "Too many failed logins; try again in %d seconds.", seconds);
    p->retry_after = seconds;
    return 0;
}

static void h_login(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"email", "password", "remember_me", "device_info", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *email_in = input_string(&in, body, "", "email", 1, 1, 254);
    const char *pw = input_string(&in, body, "", "password", 1, 1, 1024);
    int remember = input_bool(&in, body, "", "remember_me", 0, 0);
    json_t *dev = json_object_get(body, "device_info");
    if (dev != NULL && !json_is_object(dev) && !json_is_null(dev))
        input_error(&in, "/device_info", "must be an object");
    if (input_done(&in) != 0)
        goto done;

    char email[256];
    snprintf(email, sizeof(email), "%s", email_in);
    lower(email);
    /* Lockout is counted per (account, client address): an attacker guessing
     * from one address locks only that address out of the account. */
    char lock_key[400];
    snprintf(lock_key, sizeof(lock_key), "login:%s|%s", email, req->client_ip);
    int64_t now_ms = time_now_ms();
    int locked = limiter_locked(ctx->lockout, lock_key, now_ms);
    if (locked > 0) {
        audit_record(ctx->store, NULL, req, "", "auth.login", "user", "", "locked");
        locked_response(res, locked);
        goto done;
    }

    struct store_user u;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, email, &u);
    if (rc != 0 && rc != STORE_ENOTFOUND) {
        api_store_failure(res, rc);
        goto done;
    }
    int ok;
    if (rc == STORE_ENOTFOUND) {
        password_verify_dummy(ctx->pw_profile, pw); /* same time as a real check */
        ok = 0;
    } else {
        ok = password_verify(u.password_hash, pw) == 0 && strcmp(u.status, "active") == 0;
    }
    if (!ok) {
        int lock = limiter_fail(ctx->lockout, lock_key, ctx->cfg->lockout_threshold, ctx->cfg->lockout_window_seconds,
                                ctx->cfg->lockout_seconds, now_ms);
        audit_record(ctx->store, tx, req, rc == 0 ? u.id : "", "auth.login", "user", rc == 0 ? u.id : "",
                     lock > 0 ? "locked" : "failure");
        store_tx_commit(tx);
        tx = NULL;
        if (lock > 0)
            log_warning("login locked", LOG_STR, "request_id", req->request_id, LOG_INT, "seconds",
                        (long long)lock, LOG_END);
        http_respond_problem(res, 401, "authentication-required", "Invalid email or password.");
        goto done;
    }
    limiter_clear(ctx->lockout, lock_key);
    if (password_needs_rehash(u.password_hash, ctx->pw_profile)) {
        char fresh[PASSWORD_HASH_MAX];
        if (password_hash(pw, ctx->pw_profile, fresh) == 0) {
            snprintf(u.password_hash, sizeof(u.password_hash), "%s", fresh);
            store_user_update(tx, &u);
        }
    }
    u.last_login_ms = now_ms;
    json_t *tokens = NULL;
    char tid[STORE_ID_LEN];
    rc = store_user_login_update(tx, u.id, 0, 0, now_ms);
    if (rc == 0)
        rc = issue_pair(ctx, tx, &u, NULL, remember ? REFRESH_TTL_REMEMBER_S : REFRESH_TTL_S, &tokens, tid);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.login", "user", u.id, "success") == 0 ? 0 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        json_decref(tokens);
        api_store_failure(res, rc);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "user", profile_json(&u));
    json_object_set_new(o, "tokens", tokens);
    http_respond_json(res, 200, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

/* Read {refresh_token} from the body. NULL after answering. */
static const char *refresh_input(struct http_response *res, json_t *body)
{
    static const char *const allowed[] = {"refresh_token", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *t = input_string(&in, body, "", "refresh_token", 1, 1, 512);
    return input_done(&in) == 0 ? t : NULL;
}

static void h_refresh(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    const char *token = refresh_input(res, body);
    if (token == NULL)
        goto done;
    char h[65];
    token_hash(token, h);
    int64_t now_ms = time_now_ms();
    struct store_refresh_token t;
    struct store_user u;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_token_get_by_hash(tx, h, &t);
    if (rc == STORE_ENOTFOUND) {
        http_respond_problem(res, 401, "authentication-required", "The refresh token is invalid.");
        goto done;
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    if (t.revoked_at_ms != 0) {
        /* Reuse of a rotated token: someone else holds this family. */
        int64_t n = 0;
        store_token_revoke_family(tx, t.family_id, now_ms, &n);
        audit_record(ctx->store, tx, req, t.user_id, "auth.refresh_reuse", "token_family", t.family_id, "denied");
        store_tx_commit(tx);
        tx = NULL;
        log_warning("refresh token reuse: family revoked", LOG_STR, "request_id", req->request_id, LOG_INT,
                    "revoked", (long long)n, LOG_END);
        http_respond_problem(res, 401, "authentication-required", "The refresh token is invalid.");
        goto done;
    }
    if (t.expires_at_ms <= now_ms || (rc = store_user_get(tx, t.user_id, &u)) != 0 ||
        strcmp(u.status, "active") != 0) {
        if (rc != 0 && rc != STORE_ENOTFOUND) {
            api_store_failure(res, rc);
            goto done;
        }
        http_respond_problem(res, 401, "authentication-required", "The refresh token is invalid.");
        goto done;
    }
    json_t *tokens = NULL;
    char new_id[STORE_ID_LEN];
    rc = issue_pair(ctx, tx, &u, t.family_id, (t.expires_at_ms - t.created_at_ms) / 1000, &tokens, new_id);
    if (rc == 0)
        rc = store_token_revoke(tx, t.id, new_id, now_ms);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.refresh", "token_family", t.family_id, "success") == 0
                 ? 0
                 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        json_decref(tokens);
        api_store_failure(res, rc);
        goto done;
    }
    http_respond_json(res, 200, tokens);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

static void h_logout(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    const char *token = refresh_input(res, body);
    if (token == NULL)
        goto done;
    char h[65];
    token_hash(token, h);
    struct store_refresh_token t;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_token_get_by_hash(tx, h, &t);
    if (rc == 0) {
        /* Logging out ends the whole login (every rotation of it). */
        int64_t n = 0;
        rc = store_token_revoke_family(tx, t.family_id, time_now_ms(), &n);
        if (rc == 0)
            audit_record(ctx->store, tx, req, t.user_id, "auth.logout", "token_family", t.family_id, "success");
        if (rc == 0) {
            rc = store_tx_commit(tx);
            tx = NULL;
        }
    }
    if (rc != 0 && rc != STORE_ENOTFOUND) {
        api_store_failure(res, rc);
        goto done;
    }
    /* The same answer for an unknown token: nothing to learn from logout. */
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string("Logged out."));
    http_respond_json(res, 200, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

static void h_me(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct store_tx *tx = NULL;
    struct store_user u;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_user_get(tx, p->user_id, &u);
    store_tx_rollback(tx);
    if (rc == STORE_ENOTFOUND) {
        http_respond_problem(res, 404, "resource-not-found", "The account no longer exists.");
        return;
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    http_respond_json(res, 200, profile_json(&u));
}

/* store_user_delete takes no owner: the id is the caller's own. */
static int delete_user(struct store_tx *tx, const char *id, const char *owner)
{
    (void)owner;
    return store_user_delete(tx, id);
}

static void h_me_delete(struct http_request *req, struct http_response *res)
{
    /* Erases the account and everything derived from it; the erasure itself
     * stays on record (actor and time, nothing else). */
    const struct principal *p = access_principal(req);
    api_delete_audited(req, res, delete_user, p->user_id, p->user_id, "account.erase", "user", "user_id",
                       "The account no longer exists.");
}

static void audit_page(struct http_request *req, struct http_response *res, const char *user_id)
{
    struct api_ctx *ctx = req->route_ctx;
    size_t limit;
    struct store_cursor after, next;
    if (api_page_params(req, res, 50, &limit, &after) != 0)
        return;
    struct store_tx *tx = NULL;
    struct store_audit *rows = NULL;
    size_t n = 0;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_audit_list(tx, user_id, &after, limit, &rows, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(rows[i].id));
        json_object_set_new(o, "user_id", json_string(rows[i].user_id));
        json_object_set_new(o, "action", json_string(rows[i].action));
        json_object_set_new(o, "resource_type", json_string(rows[i].resource_type));
        json_object_set_new(o, "resource_id", json_string(rows[i].resource_id));
        json_object_set_new(o, "outcome", json_string(rows[i].outcome));
        json_object_set_new(o, "request_id", json_string(rows[i].request_id));
        json_object_set_new(o, "ip", json_string(rows[i].ip));
        json_object_set_new(o, "created_at", api_time_json(rows[i].created_at_ms));
        json_array_append_new(items, o);
    }
    free(rows);
    json_t *o = json_object();
    json_object_set_new(o, "data", items);
    char extra[64] = "";
    if (strcmp(req->path, "/api/v1/audit") == 0)
        snprintf(extra, sizeof(extra), "user_id=%.36s", user_id);
    api_page_links(o, req, n, limit, &next, extra);
    http_respond_json(res, 200, o);
}

static void h_me_audit(struct http_request *req, struct http_response *res)
{
    audit_page(req, res, access_principal(req)->user_id);
}

/* Admins read any user's audit trail: /api/v1/audit?user_id=… */
static void h_audit(struct http_request *req, struct http_response *res)
{
    const struct principal *p = access_principal(req);
    if (!(p->perms & PERM_AUDIT)) {
        http_respond_problem(res, 403, "authorization-denied", "Reading the audit log needs the admin role.");
        return;
    }
    const char *uid = http_request_query(req, "user_id");
    if (uid == NULL || !uuid_is_valid(uid)) {
        struct problem *pr = http_respond_problem(res, 422, "validation-error", "A user_id is required.");
        problem_add_error(pr, "/query/user_id", "must be a user id (UUID)");
        return;
    }
    audit_page(req, res, uid);
}

int api_auth_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned open = GUARD_RATE(GUARD_RATE_AUTH);
    const unsigned authed = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    int rc = 0;
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/register", h_register, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/login", h_login, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/refresh", h_refresh, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/logout", h_logout, ctx, open);
    rc |= router_add(r, HTTP_GET, "/api/v1/auth/me", h_me, ctx, authed);
    rc |= router_add(r, HTTP_DELETE, "/api/v1/auth/me", h_me_delete, ctx, authed);
    rc |= router_add(r, HTTP_GET, "/api/v1/auth/me/audit", h_me_audit, ctx, authed);
    rc |= router_add(r, HTTP_GET, "/api/v1/audit", h_audit, ctx, authed);
    return rc != 0 ? -1 : 0;
}
