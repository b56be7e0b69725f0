/*
 * oidc_login.h — browser sign-in with OIDC providers: the authorization-code
 * flow with PKCE (RFC 6749 §4.1, RFC 7636 S256, OpenID Connect Core §3.1),
 * done by the server (backend-for-frontend): the code, the provider's tokens
 * and the PKCE verifier never reach the page.
 *
 * Providers are configured by OIDC_PROVIDERS, a JSON list of
 *   {"name": "google",                 [a-z0-9_-]{1,32}, in the routes' URLs
 *    "label": "Google",                the button's text (default: name)
 *    "issuer": "https://…",            exact "iss" of its ID tokens
 *    "client_id": "…", "client_secret": "…" (optional: a public client),
 *    "scopes": ["openid","email","profile"] (default; must hold "openid"),
 *    "authorization_endpoint": "…", "token_endpoint": "…"  (both or neither:
 *        neither = from <issuer>/.well-known/openid-configuration),
 *    "jwks_url": "…" | "jwks_file": "/path"  (neither = the discovery
 *        document's jwks_uri),
 *    "token_endpoint_auth": "client_secret_basic" (default) | "client_secret_post"}
 * and OIDC_REDIRECT_BASE, the server's external origin (the redirect URI is
 * <base>/api/v1/auth/oidc/<name>/callback). URLs are https, or http on a
 * loopback host (127.0.0.1, localhost, [::1]: development and tests).
 *
 * A flow in flight is a server-side record keyed by its random state (single
 * use, OIDC_LOGIN_TTL_S), bound to the browser that started it by a random
 * value the browser holds in a short-lived HttpOnly SameSite=Lax cookie; it
 * holds the nonce and the PKCE verifier. Records live in this process's
 * memory (OIDC_LOGIN_MAX_PENDING of them): a flow started on one process
 * must finish on the same one.
 *
 * Calls to the provider (discovery, the token endpoint) are made with
 * libcurl, bounded by OIDC_LOGIN_HTTP_TIMEOUT_S, with no lock held.
 */
#ifndef CLARITY_AUTH_OIDC_LOGIN_H
#define CLARITY_AUTH_OIDC_LOGIN_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "core/config.h"

#define OIDC_LOGIN_MAX_PROVIDERS 8
#define OIDC_LOGIN_TTL_S 600
#define OIDC_LOGIN_MAX_PENDING 4096
#define OIDC_LOGIN_MAX_PER_CLIENT 16 /* flows in flight per client address */
#define OIDC_LOGIN_HTTP_TIMEOUT_S 5
#define OIDC_LOGIN_URL_MAX 512
#define OIDC_LOGIN_RANDOM_LEN 44 /* 32 random bytes, base64url without padding, + NUL */

/* Results of oidc_login_* beyond 0. */
enum {
    OIDC_LOGIN_EINVALID = -1,     /* the client's or the provider's answer is not acceptable */
    OIDC_LOGIN_EUNAVAILABLE = -2, /* the provider could not be reached or failed */
    OIDC_LOGIN_EBUSY = -3,        /* too many flows in flight */
    OIDC_LOGIN_ENOMEM = -4,
};

struct oidc_login;

/* A provider's endpoints (from its discovery document or configuration). */
struct oidc_endpoints {
    char authorization[OIDC_LOGIN_URL_MAX];
    char token[OIDC_LOGIN_URL_MAX];
    char jwks[OIDC_LOGIN_URL_MAX]; /* "" when not named */
};

/* The state of one flow, as handed back by oidc_login_take. */
struct oidc_pending {
    int provider;
    char nonce[OIDC_LOGIN_RANDOM_LEN];
    char verifier[OIDC_LOGIN_RANDOM_LEN];
    int64_t created_s;
};

/*
 * Parse a discovery document (untrusted bytes from the network): a JSON
 * object whose "issuer" equals issuer exactly (OpenID Connect Discovery
 * §4.3), with authorization_endpoint and token_endpoint (and jwks_uri, when
 * present) acceptable URLs, and, when code_challenge_methods_supported is
 * present, "S256" among them. 0, or OIDC_LOGIN_EINVALID / _ENOMEM with a
 * loggable reason in err.
 */
int oidc_discovery_parse(const char *json, size_t len, const char *issuer, struct oidc_endpoints *out, char *err,
                         size_t errlen);

/*
 * Parse a token endpoint's answer (untrusted bytes): {"id_token": "…",
 * "token_type": "Bearer", …} copied into id_token (idlen bytes). An OAuth
 * error answer ({"error": "invalid_grant"}) or a malformed one gives
 * OIDC_LOGIN_EINVALID with a loggable reason (the error code, never a token).
 */
int oidc_token_response_parse(const char *body, size_t len, char *id_token, size_t idlen, char *err, size_t errlen);

/* 32 random bytes as base64url without padding (43 characters). */
void oidc_random(char out[OIDC_LOGIN_RANDOM_LEN]);
/* The PKCE S256 challenge of a verifier: BASE64URL(SHA256(verifier)). */
void oidc_pkce_challenge(const char *verifier, char out[OIDC_LOGIN_RANDOM_LEN]);
/* 1 when url is https, or http on a loopback host. */
int oidc_url_acceptable(const char *url);

/*
 * From configuration: NULL with err empty when OIDC_PROVIDERS is unset,
 * NULL with err set when the configuration is refused (the same for `serve`
 * and `clarity config check`). Reads key files; never the network.
 */
struct oidc_login *oidc_login_new(const struct config *cfg, char *err, size_t errlen);
void oidc_login_free(struct oidc_login *l);
/* Start fetching configured key URLs in the background (serve). */
void oidc_login_prefetch(struct oidc_login *l, int64_t now_s);

size_t oidc_login_count(const struct oidc_login *l);
/* The index of the provider named name, or -1. */
int oidc_login_find(const struct oidc_login *l, const char *name);
const char *oidc_login_name(const struct oidc_login *l, size_t i);
const char *oidc_login_label(const struct oidc_login *l, size_t i);

/*
 * Begin a flow with provider i: make its endpoints known (discovery, bounded,
 * no lock held; a failed discovery is retried at most every 10 s), record a
 * new state with a nonce and a PKCE verifier, and write the provider's
 * authorization URL into url and the browser binding into binding.
 * client (the caller's address; NULL: not counted) may hold at most
 * OIDC_LOGIN_MAX_PER_CLIENT flows in flight, so that a few addresses cannot
 * fill the table for everyone.
 * 0, OIDC_LOGIN_EUNAVAILABLE, OIDC_LOGIN_EBUSY or OIDC_LOGIN_ENOMEM.
 */
int oidc_login_begin(struct oidc_login *l, size_t i, const char *client, int64_t now_s, char *url, size_t urllen,
                     char binding[OIDC_LOGIN_RANDOM_LEN]);

/*
 * Take (and forget) the flow of state: 0 with *out when it exists, has not
 * expired and binding (the browser's cookie, may be NULL) matches; any other
 * case OIDC_LOGIN_EINVALID (a found record is forgotten in every case: a
 * state is good for one try).
 */
int oidc_login_take(struct oidc_login *l, const char *state, const char *binding, int64_t now_s,
                    struct oidc_pending *out);

/*
 * Exchange code at provider i's token endpoint (PKCE verifier, redirect URI,
 * client authentication) and copy the answer's id_token into id_token.
 * 0, OIDC_LOGIN_EINVALID (the provider refused the code: a 4xx or an error
 * answer) or OIDC_LOGIN_EUNAVAILABLE (unreachable, slow, 5xx, unusable
 * answer); err is loggable and never holds a token or the code.
 */
int oidc_login_exchange(struct oidc_login *l, size_t i, const char *code, const char *verifier, char *id_token,
                        size_t idlen, char *err, size_t errlen);

/*
 * Verify provider i's ID token: its keys, issuer, audience = client id,
 * expiry, and nonce equal to the flow's. 0 or TOKEN_* (core/err.h) as
 * oidc_verify; waits (no lock held) up to 2 s for keys still being fetched.
 */
int oidc_login_verify(struct oidc_login *l, size_t i, const char *id_token, const char *nonce, int64_t now_s,
                      struct jwt_claims *out, char *err, size_t errlen);

/* Test hook: the number of flows in flight. */
size_t oidc_login_pending(struct oidc_login *l);

#endif
