/*
 * oidc.h — external ID tokens (Firebase Auth or any OIDC provider).
 *
 * The verification keys come from OIDC_JWKS_FILE (read at start-up) or
 * OIDC_JWKS_URL (fetched over HTTPS with libcurl, cached for the response's
 * Cache-Control max-age, and fetched again when a token names a kid the
 * cache lacks — at most once a minute, so forged kids cannot make us hammer
 * the provider). Accepted tokens must have iss
 * https://securetoken.google.com/<FIREBASE_PROJECT_ID> and aud
 * <FIREBASE_PROJECT_ID> (Firebase's documented ID-token rules).
 */
#ifndef CLARITY_AUTH_OIDC_H
#define CLARITY_AUTH_OIDC_H

#include <stddef.h>
#include <stdint.h>

#include "auth/jwt.h"
#include "core/config.h"

struct oidc;

/* NULL with *err empty when external identity is not configured (no
 * FIREBASE_PROJECT_ID); NULL with err set on a configuration error. */
struct oidc *oidc_new(const struct config *cfg, char *err, size_t errlen);
void oidc_free(struct oidc *o);

/* 1 when the token's kid belongs to the provider (after a refresh if the
 * kid is unknown and a refresh is allowed now). */
int oidc_owns(struct oidc *o, const char *token, int64_t now_s);

/* Verify a provider token (see jwt_verify_external). */
int oidc_verify(struct oidc *o, const char *token, int64_t now_s, struct jwt_claims *out, char *err,
                size_t errlen);

#endif
