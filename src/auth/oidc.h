/*
 * oidc.h — external sign-in tokens from any number of OIDC issuers.
 *
 * Issuers are configured by OIDC_ISSUERS, a JSON list of
 *   {"issuer": "https://…",            exact "iss" of accepted tokens
 *    "audiences": ["…"],               accepted "aud" values
 *    "client_ids": ["…"],              accepted Cognito "client_id" (and aud)
 *    "jwks_url": "https://…" | "jwks_file": "/path",  exactly one
 *    "token_uses": ["id", "access"],   accepted "token_use" (absent = "id");
 *                                      default ["id"]
 *    "name": "cognito"}                auth_provider reported by /auth/me
 * and FIREBASE_PROJECT_ID adds Firebase's issuer
 * (https://securetoken.google.com/<project>, aud <project>) with its keys
 * from OIDC_JWKS_FILE, OIDC_JWKS_URL, or by default Google's public JWK Set
 * for securetoken (OIDC_DEFAULT_FIREBASE_JWKS_URL).
 *
 * A token is routed to an issuer by its (unverified) "iss" and then verified
 * with that issuer's keys only, its algorithm pinned to the key set's.
 *
 * Keys from a URL are fetched with libcurl with a bounded timeout, cached for
 * the response's Cache-Control max-age, and refreshed single-flight on a
 * thread of its own: every caller keeps verifying with the keys there are
 * (stale ones included) and never waits on the network or on a lock held
 * across it, so no request thread is ever blocked by a slow or silent key
 * URL. A token that arrives before its issuer's first keys are in is refused
 * (401) and the client retries. A kid the cache lacks triggers a refetch at
 * most once a minute, so forged kids cannot make us hammer the provider.
 */
#ifndef CLARITY_AUTH_OIDC_H
#define CLARITY_AUTH_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "core/config.h"

#define OIDC_DEFAULT_FIREBASE_JWKS_URL                                                                                 \
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"
#define OIDC_MAX_ISSUERS 16
#define OIDC_FETCH_TIMEOUT_S 5

struct oidc;

/* NULL with *err empty when no external issuer is configured; NULL with err
 * set on a configuration error (the same refusal for `serve` and
 * `clarity config check`). Reads key files; never touches the network. */
struct oidc *oidc_new(const struct config *cfg, char *err, size_t errlen);
void oidc_free(struct oidc *o);

/* 1 when the token's "iss" is a configured external issuer. */
int oidc_owns(struct oidc *o, const char *token, int64_t now_s);

/*
 * Verify an external token with its issuer's keys and rules (audience or
 * client id, token use, jwt_verify_external_rule's checks). On success fills
 * *out (out->iss is the issuer) and, when provider is non-NULL, copies the
 * issuer's name ("firebase", "cognito", …) into provider (64 bytes).
 * Otherwise a loggable reason in err and TOKEN_EINVALID (the token is
 * refused), TOKEN_ENOMEM or TOKEN_EUNAVAILABLE (no keys to check it with):
 * the last two are the server's failures, not the client's.
 */
int oidc_verify(struct oidc *o, const char *token, int64_t now_s, struct jwt_claims *out, char *provider, char *err,
                size_t errlen);

/* Start fetching every URL issuer's keys in the background (serve, at
 * start: the first tokens then find keys). Never waits. */
void oidc_prefetch(struct oidc *o, int64_t now_s);

/* How many issuers are configured (tests and config check). */
size_t oidc_issuer_count(const struct oidc *o);

/*
 * Issuers of the sign-in providers (auth/oidc_login.h): kept in an oidc of
 * their own, never used for bearer tokens (oidc_owns/oidc_verify skip them).
 * oidc_new_empty: an oidc with no issuer (NULL: out of memory).
 * oidc_add_signin: issuer index = the number added before; keys from
 * jwks_file (read now), jwks_url, or neither (oidc_set_jwks_url later, once
 * the discovery document names it; set once, later calls ignored).
 * oidc_verify_signin: verify an ID token of issuer `index` with audience
 * exactly its client id (and azp, when present, equal to it); returns as
 * oidc_verify. oidc_signin_keys_ready: 1 when keys are in; else starts their
 * fetch in the background and returns 0.
 */
struct oidc *oidc_new_empty(void);
int oidc_add_signin(struct oidc *o, const char *iss, const char *name, const char *client_id, const char *jwks_url,
                    const char *jwks_file, char *err, size_t errlen);
void oidc_set_jwks_url(struct oidc *o, size_t index, const char *url);
int oidc_verify_signin(struct oidc *o, size_t index, const char *token, int64_t now_s, struct jwt_claims *out,
                       char *err, size_t errlen);
int oidc_signin_keys_ready(struct oidc *o, size_t index, int64_t now_s);

#endif
