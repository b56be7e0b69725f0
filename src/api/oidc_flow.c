/*
 * oidc_flow.c — browser sign-in with the configured OIDC providers (issue
 * 20): the authorization-code flow with PKCE, done by the server
 * (auth/oidc_login.h), ending in the same refresh cookie as password
 * sign-in (api/session.c).
 *
 *   GET /api/v1/auth/providers                  public: {providers: [{id, name, start_url}]}
 *   GET /api/v1/auth/oidc/{provider}/start      302 to the provider (state, nonce, PKCE S256);
 *                                               sets the browser binding cookie
 *   GET /api/v1/auth/oidc/{provider}/callback   checks state and binding, exchanges the code,
 *                                               verifies the ID token (issuer, audience = client
 *                                               id, nonce, expiry), links or creates the account
 *                                               by (issuer, subject), sets the refresh cookie and
 *                                               redirects to /#/signed-in
 *
 * A person's mistake or a provider's failure is never a 5xx: the start and
 * the callback answer with a 303 to /#/signin?error=<code>, which the page
 * shows (access_denied, invalid_state, invalid_request, token_rejected,
 * invalid_token, provider_unavailable, account_disabled, busy, cross_site,
 * server_error). An unknown provider is a 404 problem. Each outcome is an
 * audit row (auth.oidc_login); the code, the tokens and the verifier are
 * never logged (the access log records the route template, not the query).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/audit.h"
#include "auth/oidc_login.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/http.h"

#define BIND_COOKIE "clarity_oidc"
#define BIND_PATH "/api/v1/auth/oidc"
#define CLEAR_BIND BIND_COOKIE "=; Path=" BIND_PATH "; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
#define PAGE_DONE "/#/signed-in"
#define PAGE_ERROR "/#/signin?error="

static void redirect(struct http_response *res, int status, const char *location)
{
    http_response_header(res, "Location", location);
    http_response_header(res, "Cache-Control", "no-store");
    http_response_header(res, "Referrer-Policy", "no-referrer");
    static const char msg[] = "Redirecting.\n";
    http_respond_bytes(res, status, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
}

/* Back to the page with an error code it shows; the binding cookie goes. */
static void fail_to_page(struct http_request *req, struct http_response *res, const char *provider, const char *code,
                         const char *why)
{
    struct api_ctx *ctx = req->route_ctx;
    log_info("OIDC sign-in refused", LOG_STR, "request_id", req->request_id, LOG_STR, "provider", provider, LOG_STR,
             "error", code, LOG_STR, "reason", why, LOG_END);
    audit_record(ctx->store, NULL, req, "", "auth.oidc_login", "provider", provider, code);
    char loc[96];
    snprintf(loc, sizeof(loc), PAGE_ERROR "%s", code);
    http_response_header(res, "Set-Cookie", CLEAR_BIND);
    redirect(res, 303, loc);
}

static void h_providers(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    json_t *list = json_array();
    for (size_t i = 0; i < oidc_login_count(ctx->oidc_login); i++) {
        char url[128];
        snprintf(url, sizeof(url), BIND_PATH "/%s/start", oidc_login_name(ctx->oidc_login, i));
        json_array_append_new(list, json_pack("{s:s, s:s, s:s}", "id", oidc_login_name(ctx->oidc_login, i), "name",
                                              oidc_login_label(ctx->oidc_login, i), "start_url", url));
    }
    json_t *o = json_object();
    json_object_set_new(o, "providers", list);
    http_respond_json(res, 200, o);
}

/* The provider of the path, or -1 after answering 404. */
static int provider_of(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    int i = oidc_login_find(ctx->oidc_login, http_request_param(req, "provider"));
    if (i < 0)
        http_respond_problem(res, 404, "resource-not-found", "No such sign-in provider is configured.");
    return i;
}

/* The key of a client's share of the flow table: its IPv4 address, or the
 * /64 of an IPv6 one (one host commonly holds a whole /64, so a per-address
 * share would not bound it). */
static void client_key(const char *ip, char *out, size_t n)
{
    struct in6_addr a;
    if (strchr(ip, ':') != NULL && inet_pton(AF_INET6, ip, &a) == 1 && !IN6_IS_ADDR_V4MAPPED(&a)) {
        char t[INET6_ADDRSTRLEN];
        memset(a.s6_addr + 8, 0, 8);
        if (inet_ntop(AF_INET6, &a, t, sizeof(t)) != NULL) {
            snprintf(out, n, "%s/64", t);
            return;
        }
    }
    snprintf(out, n, "%s", ip);
}

static void h_start(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    int i = provider_of(req, res);
    if (i < 0)
        return;
    const char *name = oidc_login_name(ctx->oidc_login, (size_t)i);
    /* The page starts sign-in from its own origin. Another site making a
     * browser start flows would spend that address's share of the table and
     * overwrite the browser's binding cookie: refused (Fetch Metadata). */
    const char *site = http_request_header(req, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "cross-site") == 0) {
        fail_to_page(req, res, name, "cross_site", "started from another site");
        return;
    }
    char url[4096], binding[OIDC_LOGIN_RANDOM_LEN], client[80];
    client_key(req->client_ip, client, sizeof(client));
    int rc = oidc_login_begin(ctx->oidc_login, (size_t)i, client, time_now_ms() / 1000, url, sizeof(url), binding);
    if (rc != 0) {
        fail_to_page(req, res, name, rc == OIDC_LOGIN_EBUSY ? "busy" : "provider_unavailable",
                     rc == OIDC_LOGIN_EBUSY ? "too many sign-ins in flight" : "provider endpoints unknown");
        return;
    }
    char cookie[160];
    snprintf(cookie, sizeof(cookie), BIND_COOKIE "=%s; Path=" BIND_PATH "; HttpOnly; Secure; SameSite=Lax; Max-Age=%d",
             binding, OIDC_LOGIN_TTL_S);
    http_response_header(res, "Set-Cookie", cookie);
    redirect(res, 302, url);
}

/* The provider's error code, if one of OAuth's (RFC 6749 §4.1.2.1, OIDC
 * Core §3.1.2.6), else "provider_error". */
static const char *provider_error(const char *e)
{
    static const char *const known[] = {"access_denied",
                                        "login_required",
                                        "consent_required",
                                        "interaction_required",
                                        "temporarily_unavailable",
                                        "server_error",
                                        NULL};
    for (size_t i = 0; known[i] != NULL; i++)
        if (strcmp(e, known[i]) == 0)
            return strcmp(e, "server_error") == 0 ? "provider_unavailable" : known[i];
    return "provider_error";
}

static void h_callback(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    int i = provider_of(req, res);
    if (i < 0)
        return;
    const char *name = oidc_login_name(ctx->oidc_login, (size_t)i);
    int64_t now = time_now_ms() / 1000;
    const char *state = http_request_query(req, "state");
    const char *code = http_request_query(req, "code");
    const char *perr = http_request_query(req, "error");
    char binding[OIDC_LOGIN_RANDOM_LEN + 8];
    int has_binding = api_cookie_value(http_request_header(req, "Cookie"), BIND_COOKIE, binding, sizeof(binding)) == 0;
    struct oidc_pending fl;
    int took = oidc_login_take(ctx->oidc_login, state, has_binding ? binding : NULL, now, &fl);
    if (perr != NULL) { /* the person declined, or the provider failed: the state is spent either way */
        fail_to_page(req, res, name, provider_error(perr), "error from the provider");
        return;
    }
    if (took != 0 || fl.provider != i) {
        fail_to_page(req, res, name, "invalid_state",
                     state == NULL  ? "no state"
                     : !has_binding ? "no browser binding cookie"
                                    : "unknown, used, expired or foreign state");
        return;
    }
    if (code == NULL || code[0] == '\0' || strlen(code) > 2048) {
        fail_to_page(req, res, name, "invalid_request", "no usable code");
        return;
    }
    char id_token[JWT_MAX_TOKEN_LEN + 1], why[256] = "";
    int rc = oidc_login_exchange(ctx->oidc_login, (size_t)i, code, fl.verifier, id_token, sizeof(id_token), why,
                                 sizeof(why));
    if (rc != 0) {
        fail_to_page(req, res, name, rc == OIDC_LOGIN_EINVALID ? "token_rejected" : "provider_unavailable", why);
        return;
    }
    struct jwt_claims c;
    rc = oidc_login_verify(ctx->oidc_login, (size_t)i, id_token, fl.nonce, now, &c, why, sizeof(why));
    memset(id_token, 0, sizeof(id_token));
    if (rc != 0) {
        fail_to_page(req, res, name,
                     rc == TOKEN_EINVALID       ? "invalid_token"
                     : rc == TOKEN_EUNAVAILABLE ? "provider_unavailable"
                                                : "server_error",
                     why);
        return;
    }
    char uid[64], role[16];
    rc = ctx->guard != NULL ? guard_link_identity(ctx->guard, &c, uid, role) : STORE_EINTERNAL;
    json_t *tokens = NULL;
    if (rc == 0)
        rc = api_auth_sign_in_user(ctx, req, uid, "auth.oidc_login", &tokens);
    if (rc != 0) {
        fail_to_page(req, res, name, rc == TOKEN_EINVALID ? "account_disabled" : "server_error", clarity_strerror(rc));
        return;
    }
    log_info("OIDC sign-in", LOG_STR, "request_id", req->request_id, LOG_STR, "provider", name, LOG_STR, "user_id", uid,
             LOG_END);
    api_session_set_cookie(res, tokens); /* exactly password sign-in's cookie */
    http_response_header(res, "Set-Cookie", CLEAR_BIND);
    json_decref(tokens);
    redirect(res, 303, PAGE_DONE);
}

int api_oidc_register(struct router *r, struct api_ctx *ctx)
{
    int rc = 0;
    rc |= router_add(r, HTTP_GET, "/api/v1/auth/providers", h_providers, ctx, GUARD_RATE(GUARD_RATE_API));
    rc |= router_add(r, HTTP_GET, "/api/v1/auth/oidc/{provider}/start", h_start, ctx, GUARD_RATE(GUARD_RATE_AUTH));
    rc |=
        router_add(r, HTTP_GET, "/api/v1/auth/oidc/{provider}/callback", h_callback, ctx, GUARD_RATE(GUARD_RATE_AUTH));
    return rc != 0 ? -1 : 0;
}
