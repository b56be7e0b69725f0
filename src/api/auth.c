/*
 * auth.c — /api/v1/auth: register, login, refresh, logout, me (API.md
 * "Identity"), and the audit views.
 *
 * Refresh tokens are 256 random bits handed to the client once; only their
 * SHA-256 is stored. Every use rotates the token inside one write
 * transaction; presenting a token that was already rotated (or revoked)
 * revokes its whole family, since only a thief or a replay can hold it.
 */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/input.h"
#include "api/audit.h"
#include "api/guard.h"
#include "auth/mailer.h"
#include "auth/reset.h"
#include "core/buf.h"
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

/* When the longest-lived token a revocation can match expires: an access
 * token's TTL, or an external provider's token (an hour at the providers
 * we know; a day to be safe). */
static int64_t revocation_expiry_ms(const struct api_ctx *ctx)
{
    int64_t ttl = ctx->cfg->access_token_ttl_seconds;
    if (ttl < 24 * 3600)
        ttl = 24 * 3600;
    return time_now_ms() + (ttl + 2 * JWT_LEEWAY_SECONDS) * 1000;
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
    char fam[STORE_ID_LEN];
    if (family != NULL)
        snprintf(fam, sizeof(fam), "%s", family);
    else
        uuid_v7(fam);
    /* The access token's session is the refresh family: logging out of the
     * login revokes both (guard_revoke). */
    char *access = jwt_issue_session(ctx->signer, ctx->cfg->jwt_issuer, ctx->cfg->jwt_audience, u->id, u->role, fam,
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
    snprintf(t.family_id, sizeof(t.family_id), "%s", fam);
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

/* The token members flat on the reply too (the iOS app reads login,
 * register and refresh replies as {access_token, refresh_token, token_type,
 * expires_in, scope}); `tokens` stays for the documented clients. */
static void flat_tokens(json_t *o, json_t *tokens)
{
    static const char *const names[] = {"access_token", "refresh_token", "token_type", "expires_in", "scope", NULL};
    for (size_t i = 0; names[i] != NULL; i++)
        json_object_set(o, names[i], json_object_get(tokens, names[i]));
}

/* ---- e-mail verification ---------------------------------------------------
 * A 6-digit code, valid EMAIL_CODE_TTL_S, at most EMAIL_CODE_MAX_ATTEMPTS
 * wrong tries, a new one at most every EMAIL_CODE_RESEND_S. Only
 * SHA-256(user id ":" code) is stored. Sent after the transaction commits, on
 * a thread of its own (a slow SMTP server never holds a request thread). */
#define EMAIL_CODE_TTL_S (15 * 60)
#define EMAIL_CODE_MAX_ATTEMPTS 5
#define EMAIL_CODE_RESEND_S 60

static void code_hash(const char *user_id, const char *code, char out[65])
{
    crypto_hash_sha256_state st;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)user_id, strlen(user_id));
    crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)code, strlen(code));
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(out, 65, d, sizeof(d));
}

/* Store a new code for user_id in tx; code_out (7 bytes) gets the code. */
static int email_code_new(struct store_tx *tx, const char *user_id, char code_out[7])
{
    snprintf(code_out, 7, "%06u", (unsigned)randombytes_uniform(1000000));
    struct store_email_code c;
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", user_id);
    code_hash(user_id, code_out, c.code_hash);
    c.sent_at_ms = time_now_ms();
    c.expires_at_ms = c.sent_at_ms + EMAIL_CODE_TTL_S * 1000LL;
    return store_email_code_put(tx, &c);
}

struct mail_job {
    const struct config *cfg;
    char to[256];
    char body[512];
};

static void *mail_main(void *arg)
{
    struct mail_job *j = arg;
    char err[256] = "";
    if (mailer_send(j->cfg, j->to, "Your Clarity verification code", j->body, err, sizeof(err)) != 0)
        log_warning("verification e-mail not sent", LOG_STR, "error", err, LOG_END);
    sodium_memzero(j->body, sizeof(j->body));
    free(j);
    return NULL;
}

/* Send the code to email in the background. Never logs the code. */
static void email_code_send(const struct config *cfg, const char *email, const char *code)
{
    struct mail_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->cfg = cfg;
    snprintf(j->to, sizeof(j->to), "%s", email);
    snprintf(j->body, sizeof(j->body),
             "Your Clarity verification code is %s\n\nIt expires in %d minutes. If you did not create a Clarity "
             "account, ignore this message.\n",
             code, EMAIL_CODE_TTL_S / 60);
    pthread_attr_t attr;
    pthread_t t;
    int ok = pthread_attr_init(&attr) == 0;
    if (ok) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        ok = pthread_create(&t, &attr, mail_main, j) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!ok) {
        log_warning("verification e-mail not sent", LOG_STR, "error", "cannot start a thread", LOG_END);
        free(j);
    }
}

static void h_register(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"email",
                                          "password",
                                          "first_name",
                                          "last_name",
                                          "phone_number",
                                          "terms_accepted",
                                          "privacy_policy_accepted",
                                          "display_name",
                                          NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *display = input_string(&in, body, "", "display_name", 0, 1, 100);
    const char *email = input_string(&in, body, "", "email", 1, 3, 254);
    if (email != NULL && !input_email_valid(email))
        input_error(&in, "/email", "must be an email address");
    const char *pw = input_string(&in, body, "", "password", 1, 1, 1024);
    const char *why = pw != NULL ? password_policy_check(pw) : NULL;
    if (why != NULL)
        input_error(&in, "/password", "%s", why);
    /* Names are required unless a display name stands for them. */
    const char *first = input_string(&in, body, "", "first_name", display == NULL, 1, 50);
    const char *last = input_string(&in, body, "", "last_name", display == NULL, 1, 50);
    const char *phone = input_string(&in, body, "", "phone_number", 0, 7, 20);
    if (phone != NULL) {
        /* E.164: '+' then up to 15 digits (ITU-T E.164 §6). */
        size_t k = phone[0] == '+' ? 1 : 0, digits = 0;
        for (; phone[k]; k++)
            digits += (phone[k] >= '0' && phone[k] <= '9') ? 1 : 1000;
        if (digits < 7 || digits > 15)
            input_error(&in, "/phone_number", "must be a phone number in E.164 form, e.g. +14155550100");
    }
    /* The acceptances must be true when sent. The iOS app's sign-up sends
     * only {email, password, display_name?} (ios-app.md): it collects
     * consent on its own screen, and the app's contract wins, so an absent
     * acceptance is not an error; false still is. */
    if (!input_bool(&in, body, "", "terms_accepted", 0, 1) && json_is_boolean(json_object_get(body, "terms_accepted")))
        input_error(&in, "/terms_accepted", "must be true");
    if (!input_bool(&in, body, "", "privacy_policy_accepted", 0, 1) &&
        json_is_boolean(json_object_get(body, "privacy_policy_accepted")))
        input_error(&in, "/privacy_policy_accepted", "must be true");
    if (input_done(&in) != 0)
        goto done;

    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "%s", email);
    lower(u.email);
    snprintf(u.first_name, sizeof(u.first_name), "%s", first != NULL ? first : "");
    snprintf(u.last_name, sizeof(u.last_name), "%s", last != NULL ? last : "");
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
    if (rc == 0 && display != NULL)
        rc = store_user_extra_set(tx, u.id, 0, display);
    char code[7] = "";
    int mail = mailer_configured(ctx->cfg);
    if (rc == 0 && mail)
        rc = email_code_new(tx, u.id, code);
    json_t *tokens = NULL;
    char tid[STORE_ID_LEN];
    if (rc == 0)
        rc = issue_pair(ctx, tx, &u, NULL, REFRESH_TTL_S, &tokens, tid);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.register", "user", u.id, "success") == 0 ? 0
                                                                                                    : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        json_decref(tokens);
        api_store_failure(res, rc);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_string(u.id));
    json_object_set_new(o, "email", json_string(u.email));
    json_object_set_new(o, "status", json_string(u.status));
    json_object_set_new(o, "created_at", api_time_json(u.created_at_ms));
    api_session_deliver(req, res, tokens);
    flat_tokens(o, tokens);
    json_decref(tokens);
    json_object_set_new(o, "email_verification_sent", json_boolean(mail));
    if (mail)
        email_code_send(ctx->cfg, u.email, code);
    sodium_memzero(code, sizeof(code));
    http_respond_json(res, 201, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

static int locked_response(struct http_response *res, int seconds)
{
    struct problem *p =
        http_respond_problem(res, 423, "account-locked", "Too many failed logins; try again in %d seconds.", seconds);
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
    } else if (strncmp(u.password_hash, "$argon2", 7) != 0) {
        /* An externally linked account has no password: spend what a real
         * check costs, or the answer's speed tells which accounts are
         * external (an account-type oracle). */
        password_verify_dummy(ctx->pw_profile, pw);
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
            log_warning("login locked", LOG_STR, "request_id", req->request_id, LOG_INT, "seconds", (long long)lock,
                        LOG_END);
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
    api_session_deliver(req, res, tokens);
    flat_tokens(o, tokens);
    json_object_set_new(o, "tokens", tokens);
    http_respond_json(res, 200, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

int api_auth_sign_in_user(struct api_ctx *ctx, struct http_request *req, const char *user_id, const char *action,
                          json_t **tokens)
{
    struct store_tx *tx = NULL;
    struct store_user u;
    char tid[STORE_ID_LEN];
    int64_t now_ms = time_now_ms();
    *tokens = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_get(tx, user_id, &u);
    if (rc == 0 && strcmp(u.status, "active") != 0)
        rc = TOKEN_EINVALID;
    if (rc == 0)
        rc = store_user_login_update(tx, u.id, 0, 0, now_ms);
    if (rc == 0)
        rc = issue_pair(ctx, tx, &u, NULL, REFRESH_TTL_S, tokens, tid);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, action, "user", u.id, "success") == 0 ? 0 : STORE_EINTERNAL;
    if (tx != NULL)
        rc = api_tx_end(tx, rc);
    if (rc != 0) {
        json_decref(*tokens);
        *tokens = NULL;
    }
    return rc;
}

/* Read {refresh_token} from the body or, without one, the web app's cookie
 * (api/session.c, CSRF-checked) into cookie. NULL after answering. */
static const char *refresh_input(struct http_request *req, struct http_response *res, json_t *body,
                                 char cookie[SESSION_TOKEN_MAX])
{
    int ck = json_object_get(body, "refresh_token") == NULL && json_object_size(body) == 0
                 ? api_session_cookie_token(req, res, cookie, SESSION_TOKEN_MAX)
                 : 1;
    if (ck <= 0)
        return ck == 0 ? cookie : NULL;
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
    char cookie[SESSION_TOKEN_MAX];
    const char *token = refresh_input(req, res, body, cookie);
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
        if (ctx->guard != NULL)
            guard_revoke(ctx->guard, tx, t.family_id, NULL, revocation_expiry_ms(ctx));
        audit_record(ctx->store, tx, req, t.user_id, "auth.refresh_reuse", "token_family", t.family_id, "denied");
        store_tx_commit(tx);
        tx = NULL;
        log_warning("refresh token reuse: family revoked", LOG_STR, "request_id", req->request_id, LOG_INT, "revoked",
                    (long long)n, LOG_END);
        http_respond_problem(res, 401, "authentication-required", "The refresh token is invalid.");
        goto done;
    }
    if (t.expires_at_ms <= now_ms || (rc = store_user_get(tx, t.user_id, &u)) != 0 || strcmp(u.status, "active") != 0) {
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
    api_session_deliver(req, res, tokens);
    http_respond_json(res, 200, tokens);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

/* The bearer token of the request, or NULL. */
static const char *bearer(struct http_request *req)
{
    const char *h = http_request_header(req, "Authorization");
    return h != NULL && strncasecmp(h, "Bearer ", 7) == 0 && h[7] != '\0' ? h + 7 : NULL;
}

/*
 * POST /api/v1/auth/logout. With {refresh_token}: ends that login (every
 * rotation of the refresh token and every access token of its session).
 * With no body: ends the session of the presented bearer token (the iOS
 * app's logout). Answers {message} either way, the same for an unknown
 * token: nothing to learn from logout.
 */
static void h_logout(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = NULL;
    int rc = 0;
    if (req->body_len == 0) {
        const char *tok = bearer(req);
        struct principal p;
        char why[128];
        int arc = tok == NULL || ctx->guard == NULL ? TOKEN_EINVALID
                                                    : guard_authenticate_token(ctx->guard, tok, &p, why, sizeof(why));
        if (arc != 0 && arc != TOKEN_EINVALID) {
            api_store_failure(res, arc); /* could not check the token: the server's (#16) */
            return;
        }
        if (arc != 0) {
            http_respond_problem(res, 401, "authentication-required",
                                 "Logout needs a refresh_token in the body or a valid bearer token.");
            http_response_header(res, "WWW-Authenticate", "Bearer realm=\"clarity\", error=\"invalid_token\"");
            return;
        }
        rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
        int64_t n = 0;
        /* A Clarity session is a refresh family: end its refresh tokens too. */
        if (rc == 0 && !p.external)
            rc = store_token_revoke_family(tx, p.sid, time_now_ms(), &n);
        if (rc == 0)
            rc = guard_revoke(ctx->guard, tx, p.sid, NULL, revocation_expiry_ms(ctx));
        if (rc == 0)
            rc = audit_record(ctx->store, tx, req, p.user_id, "auth.logout", "session", p.external ? "" : p.sid,
                              "success") == 0
                     ? 0
                     : STORE_EINTERNAL;
        rc = api_tx_end(tx, rc);
        tx = NULL;
        if (rc != 0) {
            api_store_failure(res, rc);
            return;
        }
        goto ok;
    }
    body = input_body_object(req, res);
    if (body == NULL)
        return;
    char cookie[SESSION_TOKEN_MAX];
    const char *token = refresh_input(req, res, body, cookie);
    if (token == NULL)
        goto done;
    char h[65];
    token_hash(token, h);
    struct store_refresh_token t;
    rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_token_get_by_hash(tx, h, &t);
    if (rc == 0) {
        /* Logging out ends the whole login (every rotation of it) and the
         * access tokens of its session. */
        int64_t n = 0;
        rc = store_token_revoke_family(tx, t.family_id, time_now_ms(), &n);
        if (rc == 0 && ctx->guard != NULL)
            rc = guard_revoke(ctx->guard, tx, t.family_id, NULL, revocation_expiry_ms(ctx));
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
ok:;
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string("Logged out."));
    api_session_clear(req, res);
    http_respond_json(res, 200, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

/*
 * POST /api/v1/auth/identities {id_token}: the signed-in owner of an
 * account links an external identity to it (the only way onto an account
 * with a password or a role). Needs a Clarity session, not an external
 * token; 409 when the identity is already bound to some user.
 */
static void h_identity_link(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct store_tx *tx = NULL;
    json_t *body = NULL;
    if (p->external) {
        http_respond_problem(res, 403, "authorization-denied",
                             "Link an identity while signed in with your Clarity password.");
        return;
    }
    body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"id_token", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *tok = input_string(&in, body, "", "id_token", 1, 1, JWT_MAX_TOKEN_LEN);
    if (input_done(&in) != 0)
        goto done;
    struct jwt_claims c;
    char provider[64] = "", why[128] = "";
    int vrc =
        ctx->guard == NULL ? TOKEN_EINVALID : guard_external_verify(ctx->guard, tok, &c, provider, why, sizeof(why));
    if (vrc != 0 && vrc != TOKEN_EINVALID) {
        api_store_failure(res, vrc); /* could not check the token: the server's (#16) */
        goto done;
    }
    if (vrc != 0) {
        log_info("identity link refused", LOG_STR, "request_id", req->request_id, LOG_STR, "reason", why, LOG_END);
        struct problem *pr = http_respond_problem(res, 422, "validation-error", "The id_token is not accepted.");
        problem_add_error(pr, "/id_token", "must be a valid token of a configured identity provider");
        goto done;
    }
    char email[256];
    snprintf(email, sizeof(email), "%s", c.email);
    lower(email);
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_identity_insert(tx, c.iss, c.sub, p->user_id, email);
    if (rc == STORE_ECONFLICT) {
        http_respond_problem(res, 409, "resource-conflict", "This identity is already linked to an account.");
        goto done;
    }
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, p->user_id, "auth.identity_link", "user", p->user_id, "success") == 0
                 ? 0
                 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "user_id", json_string(p->user_id));
    json_object_set_new(o, "issuer", json_string(c.iss));
    json_object_set_new(o, "subject", json_string(c.sub));
    json_object_set_new(o, "auth_provider", json_string(provider));
    http_respond_json(res, 201, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

/*
 * POST /api/v1/auth/verify-email {verification_code, email?}: the account is
 * named by email, or by the bearer token when email is absent. A right code
 * marks the e-mail verified and signs the user in (the iOS app's reply
 * {user, tokens}); a wrong, expired or used-up code is a 400 that says the
 * same for an unknown e-mail.
 */
static void h_verify_email(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    json_t *tokens = NULL;
    if (body == NULL)
        return;
    static const char *const allowed[] = {"verification_code", "email", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *code = input_string(&in, body, "", "verification_code", 1, 1, 32);
    const char *email_in = input_string(&in, body, "", "email", 0, 3, 254);
    if (input_done(&in) != 0)
        goto done;
    struct store_user u;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0 && email_in != NULL) {
        char email[256];
        snprintf(email, sizeof(email), "%s", email_in);
        lower(email);
        rc = store_user_get_by_email(tx, email, &u);
    } else if (rc == 0) {
        const char *tok = bearer(req);
        struct principal p;
        char why[128];
        int arc = tok == NULL || ctx->guard == NULL ? TOKEN_EINVALID
                                                    : guard_authenticate_token(ctx->guard, tok, &p, why, sizeof(why));
        if (arc != 0 && arc != TOKEN_EINVALID) {
            api_store_failure(res, arc); /* could not check the token: the server's (#16) */
            goto done;
        }
        if (arc != 0) {
            struct problem *pr =
                http_respond_problem(res, 422, "validation-error", "Name the account: an email, or a bearer token.");
            problem_add_error(pr, "/email", "is required without a bearer token");
            goto done;
        }
        rc = store_user_get(tx, p.user_id, &u);
    }
    struct store_email_code c;
    if (rc == 0)
        rc = store_email_code_get(tx, u.id, &c);
    if (rc != 0 && rc != STORE_ENOTFOUND) {
        api_store_failure(res, rc);
        goto done;
    }
    if (rc == STORE_ENOTFOUND || c.expires_at_ms <= time_now_ms() || c.attempts >= EMAIL_CODE_MAX_ATTEMPTS) {
        http_respond_problem(res, 400, "bad-request",
                             "The verification code is invalid or has expired; ask for a new one.");
        goto done;
    }
    char h[65];
    code_hash(u.id, code, h);
    if (sodium_memcmp(h, c.code_hash, 64) != 0) {
        rc = store_email_code_attempt(tx, u.id);
        if (rc == 0)
            audit_record(ctx->store, tx, req, u.id, "auth.verify_email", "user", u.id, "failure");
        rc = api_tx_end(tx, rc);
        tx = NULL;
        if (rc != 0) {
            api_store_failure(res, rc);
            goto done;
        }
        http_respond_problem(res, 400, "bad-request",
                             "The verification code is invalid or has expired; ask for a new one.");
        goto done;
    }
    int verified = 0;
    char display[256] = "";
    char tid[STORE_ID_LEN];
    rc = store_user_extra_get(tx, u.id, &verified, display, sizeof(display));
    if (rc == 0)
        rc = store_user_extra_set(tx, u.id, 1, display);
    if (rc == 0)
        rc = store_email_code_delete(tx, u.id);
    if (rc == 0)
        rc = issue_pair(ctx, tx, &u, NULL, REFRESH_TTL_S, &tokens, tid);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.verify_email", "user", u.id, "success") == 0
                 ? 0
                 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    json_t *user = json_object();
    json_object_set_new(user, "id", json_string(u.id));
    json_object_set_new(user, "email", json_string(u.email));
    json_object_set_new(user, "display_name", json_string(display));
    json_object_set_new(user, "provider", json_string("clarity"));
    json_object_set_new(user, "role", json_string(u.role));
    json_object_set_new(user, "is_active", json_boolean(strcmp(u.status, "active") == 0));
    json_object_set_new(user, "is_email_verified", json_true());
    json_t *o = json_object();
    json_object_set_new(o, "user", user);
    json_object_del(tokens, "refresh_expires_in");
    json_object_set_new(o, "tokens", tokens);
    tokens = NULL;
    http_respond_json(res, 200, o);
done:
    json_decref(tokens);
    store_tx_rollback(tx);
    json_decref(body);
}

/*
 * POST /api/v1/auth/resend-verification {email}: a new code for an existing,
 * unverified account, at most one a minute. The same {message} whatever the
 * account's state, so the reply tells nobody which e-mails have accounts.
 */
static void h_resend_verification(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"email", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *email_in = input_string(&in, body, "", "email", 1, 3, 254);
    if (input_done(&in) != 0)
        goto done;
    if (!mailer_configured(ctx->cfg)) {
        http_respond_problem(res, 503, "service-unavailable", "E-mail is not configured on this server.");
        goto done;
    }
    char email[256];
    snprintf(email, sizeof(email), "%s", email_in);
    lower(email);
    struct store_user u;
    struct store_email_code c;
    char code[7] = "";
    int send = 0, verified = 0;
    char display[256];
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, email, &u);
    if (rc == 0)
        rc = store_user_extra_get(tx, u.id, &verified, display, sizeof(display));
    if (rc == 0 && !verified && strcmp(u.status, "active") == 0) {
        int r2 = store_email_code_get(tx, u.id, &c);
        if (r2 == STORE_ENOTFOUND || (r2 == 0 && time_now_ms() - c.sent_at_ms >= EMAIL_CODE_RESEND_S * 1000LL)) {
            rc = email_code_new(tx, u.id, code);
            send = rc == 0;
        } else if (r2 != 0)
            rc = r2;
    }
    if (rc == STORE_ENOTFOUND)
        rc = 0;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    if (send)
        email_code_send(ctx->cfg, email, code);
    sodium_memzero(code, sizeof(code));
    json_t *o = json_object();
    json_object_set_new(o, "message",
                        json_string("If an unverified account has this e-mail, a new code is on its way."));
    http_respond_json(res, 200, o);
done:
    store_tx_rollback(tx);
    json_decref(body);
}

/*
 * POST /api/v1/auth/reset-password {email, code, new_password}: redeem the
 * one-time code an operator issued (`clarity users reset-password`,
 * auth/reset.h). The right code sets the new password (the register
 * policy), consumes the code, ends every session of the account and answers
 * 200 {message}; the user then signs in. A wrong, used, expired or used-up
 * code is a 400 that reads the same for an e-mail without an account, and
 * every answer spends one Argon2id hash first, so neither the reply nor its
 * speed tells which e-mails have accounts. Failures count toward a lockout
 * per (e-mail, address), as login's do: 429 with Retry-After once locked.
 */
static void h_reset_password(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    char fresh[PASSWORD_HASH_MAX] = "";
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    static const char *const allowed[] = {"email", "code", "new_password", NULL};
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *email_in = input_string(&in, body, "", "email", 1, 1, 254);
    const char *code = input_string(&in, body, "", "code", 1, 1, 64);
    const char *pw = input_string(&in, body, "", "new_password", 1, 1, 1024);
    const char *why = pw != NULL ? password_policy_check(pw) : NULL;
    if (why != NULL)
        input_error(&in, "/new_password", "%s", why);
    if (input_done(&in) != 0)
        goto done;

    char email[256];
    snprintf(email, sizeof(email), "%s", email_in);
    lower(email);
    char lock_key[400];
    snprintf(lock_key, sizeof(lock_key), "reset:%s|%s", email, req->client_ip);
    int64_t now_ms = time_now_ms();
    int locked = limiter_locked(ctx->lockout, lock_key, now_ms);
    if (locked > 0) {
        audit_record(ctx->store, NULL, req, "", "auth.reset_password", "user", "", "locked");
        struct problem *p = http_respond_problem(res, 429, "rate-limit-exceeded",
                                                 "Too many failed reset attempts; try again in %d seconds.", locked);
        p->retry_after = locked;
        goto done;
    }
    /* Hashed whatever the code: every answer costs the same. */
    if (password_hash(pw, ctx->pw_profile, fresh) != 0) {
        http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        goto done;
    }
    struct store_user u;
    memset(&u, 0, sizeof(u));
    enum reset_outcome outcome = RESET_REFUSED;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_get_by_email(tx, email, &u);
    int found = rc == 0;
    /* A disabled account stays disabled: its code is refused, untouched. */
    if (rc == 0 && strcmp(u.status, "disabled") != 0)
        rc = reset_code_redeem(tx, u.id, code, now_ms, &outcome);
    if (rc == STORE_ENOTFOUND)
        rc = 0;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    if (outcome != RESET_ACCEPTED) {
        int lock = limiter_fail(ctx->lockout, lock_key, ctx->cfg->lockout_threshold, ctx->cfg->lockout_window_seconds,
                                ctx->cfg->lockout_seconds, now_ms);
        audit_record(ctx->store, tx, req, found ? u.id : "", "auth.reset_password", "user", found ? u.id : "",
                     lock > 0 ? "locked" : "failure");
        rc = api_tx_end(tx, 0); /* keeps the counted try */
        tx = NULL;
        if (rc != 0) {
            api_store_failure(res, rc);
            goto done;
        }
        http_respond_problem(res, 400, "bad-request", "The reset code is invalid, used or expired; ask for a new one.");
        goto done;
    }
    snprintf(u.password_hash, sizeof(u.password_hash), "%s", fresh);
    if (strcmp(u.status, "locked") == 0)
        snprintf(u.status, sizeof(u.status), "active");
    int64_t ended = 0;
    rc = store_user_update(tx, &u);
    if (rc == 0)
        rc = store_user_login_update(tx, u.id, 0, 0, u.last_login_ms);
    if (rc == 0) /* every session ends: refresh tokens go, access tokens are revoked */
        rc = store_token_delete_by_user(tx, u.id, &ended);
    if (rc == 0)
        rc = ctx->guard != NULL ? guard_revoke(ctx->guard, tx, NULL, u.id, revocation_expiry_ms(ctx))
                                : guard_revoke_user_row(tx, u.id, now_ms);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, u.id, "auth.reset_password", "user", u.id, "success") == 0
                 ? 0
                 : STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    tx = NULL;
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    limiter_clear(ctx->lockout, lock_key);
    snprintf(lock_key, sizeof(lock_key), "login:%s|%s", email, req->client_ip);
    limiter_clear(ctx->lockout, lock_key);
    json_t *o = json_object();
    json_object_set_new(o, "message", json_string("Password changed; sign in with the new password."));
    http_respond_json(res, 200, o);
done:
    sodium_memzero(fresh, sizeof(fresh));
    store_tx_rollback(tx);
    json_decref(body);
}

static void h_me(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct store_tx *tx = NULL;
    struct store_user u;
    int verified = 0;
    char display[256] = "";
    int rc = store_tx_begin(ctx->store, STORE_TX_READ_ONE, &tx);
    if (rc == 0)
        rc = store_user_profile_get(tx, p->user_id, &u, &verified, display, sizeof(display));
    store_tx_rollback(tx);
    if (rc == STORE_ENOTFOUND) {
        http_respond_problem(res, 404, "resource-not-found", "The account no longer exists.");
        return;
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    /* An account made for an external identity whose e-mail was unverified
     * or taken holds a placeholder address: that is no e-mail of the user's. */
    const char *at = strrchr(u.email, '@');
    int placeholder = at != NULL && strcmp(at, "@users.invalid") == 0;
    int ev = !placeholder && (verified || (p->external && p->email_verified));
    /* profile_json's members and the four of this route, written straight
     * into a buffer: the hottest authenticated route (issue 22) spent a
     * sixth of its time building and dumping a jansson tree. */
    char storage[4096];
    struct buf b;
    buf_init_fixed(&b, storage, sizeof(storage));
    int bad = buf_puts(&b, "{\"user_id\":") || buf_json_string(&b, u.id) || buf_puts(&b, ",\"email\":") ||
              (placeholder ? buf_puts(&b, "null") : buf_json_string(&b, u.email)) || buf_puts(&b, ",\"first_name\":") ||
              buf_json_string(&b, u.first_name) || buf_puts(&b, ",\"last_name\":") ||
              buf_json_string(&b, u.last_name) || buf_puts(&b, ",\"role\":") || buf_json_string(&b, u.role) ||
              buf_puts(&b, ",\"permissions\":[");
    const char *names[8];
    int n = guard_perm_names(guard_role_perms(u.role), names, 8);
    for (int i = 0; i < n && !bad; i++)
        bad = (i > 0 && buf_putc(&b, ',')) || buf_json_string(&b, names[i]);
    bad = bad || buf_puts(&b, "],\"status\":") || buf_json_string(&b, u.status);
    const char *tname[2] = {",\"last_login\":", ",\"created_at\":"};
    int64_t tms[2] = {u.last_login_ms, u.created_at_ms};
    for (int i = 0; i < 2 && !bad; i++) {
        char t[40];
        bad = buf_puts(&b, tname[i]) ||
              (tms[i] != 0 ? buf_json_string(&b, time_format_rfc3339_s(tms[i], t, sizeof(t))) : buf_puts(&b, "null"));
    }
    bad = bad || buf_puts(&b, ev ? ",\"email_verified\":true" : ",\"email_verified\":false") ||
          buf_puts(&b, ",\"display_name\":") || (display[0] ? buf_json_string(&b, display) : buf_puts(&b, "null")) ||
          buf_puts(&b, ",\"auth_provider\":") || buf_json_string(&b, p->provider[0] ? p->provider : "clarity") ||
          buf_putc(&b, '}');
    if (bad) {
        /* 4 KiB holds every column at its limit; say so if it ever does not. */
        http_respond_problem(res, 500, NULL, "The profile could not be rendered.");
        return;
    }
    http_respond_bytes(res, 200, "application/json; charset=utf-8", b.data, b.len);
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
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    /* Every token of the account dies with it (revoked first, in its own
     * transaction: a failed erasure leaves the user signed out, never an
     * erased user signed in). */
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0 && ctx->guard != NULL)
        rc = guard_revoke(ctx->guard, tx, NULL, p->user_id, revocation_expiry_ms(ctx));
    rc = api_tx_end(tx, rc);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
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
    char lower[40];
    snprintf(lower, sizeof(lower), "%s", uid);
    api_id_lower(lower); /* identifiers are case-insensitive in queries too */
    audit_page(req, res, lower);
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
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/verify-email", h_verify_email, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/resend-verification", h_resend_verification, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/reset-password", h_reset_password, ctx, open);
    rc |= router_add(r, HTTP_POST, "/api/v1/auth/identities", h_identity_link, ctx,
                     GUARD_AUTH | GUARD_RATE(GUARD_RATE_AUTH));
    rc |= router_add(r, HTTP_DELETE, "/api/v1/auth/me", h_me_delete, ctx, authed);
    rc |= router_add(r, HTTP_GET, "/api/v1/auth/me/audit", h_me_audit, ctx, authed);
    rc |= router_add(r, HTTP_GET, "/api/v1/audit", h_audit, ctx, authed);
    return rc != 0 ? -1 : 0;
}
