/*
 * jwt.h — JSON Web Tokens (RFC 7519) in JWS compact form (RFC 7515).
 *
 * Clarity signs its own access tokens with ES256 (ECDSA P-256 + SHA-256,
 * RFC 7518 §3.4) and verifies them with the algorithm pinned: the header's
 * "alg" must be exactly the verifier's, so "none", HS256-with-the-public-key
 * confusion and any other algorithm are refused before any cryptography runs,
 * and an unknown "kid" is refused. Issuing goes through libjwt; verification
 * uses OpenSSL's EVP interface directly on a key parsed once at start-up,
 * so the hot path parses no PEM.
 *
 * External identity providers (Firebase/OIDC) sign RS256 (or ES256) ID
 * tokens with rotating keys; a key set (jwt_keyset) holds them by "kid".
 */
#ifndef CLARITY_AUTH_JWT_H
#define CLARITY_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define JWT_LEEWAY_SECONDS 60
#define JWT_MAX_TOKEN_LEN LIMIT_TOKEN_BYTES

struct jwt_signer; /* Clarity's private + public key and kid */
struct jwt_keyset; /* verification keys by kid, with one algorithm */

struct jwt_claims {
    char sub[128];
    char role[16];
    char jti[64];
    char email[256];
    int64_t iat, exp, nbf, auth_time; /* seconds; 0 when absent */
    char iss[256];
    char sid[64];         /* Clarity's session id (a login); "" when absent */
    char token_use[16];   /* Cognito: "id" or "access"; "" when absent */
    char client_id[128];  /* Cognito access tokens; "" when absent */
    char name[128];       /* the provider's display name; "" when absent */
    int email_verified;   /* 1 only when the claim is JSON true (or "true") */
    char nonce[128];      /* OIDC ID token's nonce (sign-in flow); "" when absent */
    char azp[128];        /* OIDC authorized party; "" when absent */
    int signin_oversized; /* nonce or azp too long to hold: the sign-in flow refuses, bearer use ignores */
    int aud_n;            /* entries in "aud" (1 for a string, 0 when absent) */
};

/* Accepted audiences of an external token: the token's "aud" (a string or
 * an array) must contain one of audiences[] or client_ids[]; a token without
 * "aud" (a Cognito access token) is accepted only when its "client_id" is one
 * of client_ids[]. Borrowed arrays. */
struct jwt_audience {
    const char *const *audiences;
    size_t n_audiences;
    const char *const *client_ids;
    size_t n_client_ids;
};

/* Parse a PEM EC P-256 private key. NULL on failure (reason in err). */
struct jwt_signer *jwt_signer_from_pem(const char *pem, char *err, size_t errlen);

/*
 * Development convenience: load the PEM at path, or generate a new P-256 key
 * and write it there (mode 0600, parent directory created). NULL on failure.
 * *created is set to 1 when a key was generated.
 */
struct jwt_signer *jwt_signer_load_or_create(const char *path, int *created, char *err, size_t errlen);

void jwt_signer_free(struct jwt_signer *s);

/* The key id: base64url of the first 12 bytes of SHA-256 over the public key's
 * DER encoding (borrowed). */
const char *jwt_signer_kid(const struct jwt_signer *s);

/*
 * Issue an access token {iss, aud, sub, role, iat, nbf, exp = iat + ttl, jti}.
 * jti_out (37 bytes) receives the token id. Returns a heap string (caller
 * frees) or NULL.
 */
char *jwt_issue(const struct jwt_signer *s, const char *iss, const char *aud, const char *sub, const char *role,
                int64_t now_s, int ttl_s, char jti_out[37]);

/* jwt_issue with a "sid" claim (the login session the token belongs to,
 * checked against the revocation set by the guard); sid NULL: none. */
char *jwt_issue_session(const struct jwt_signer *s, const char *iss, const char *aud, const char *sub, const char *role,
                        const char *sid, int64_t now_s, int ttl_s, char jti_out[37]);

/*
 * Verify a token signed by s: pinned ES256, matching kid, valid signature,
 * iss and aud equal (aud may be an array containing it), exp in the future
 * and nbf/iat not in the future (each with JWT_LEEWAY_SECONDS), sub present.
 * Returns 0 and fills *out, or a short reason in err (safe to log: never
 * contains the token) and TOKEN_EINVALID (refused) or TOKEN_ENOMEM (an
 * allocation failed while checking: the server's failure, core/err.h). The
 * external variants below return the same.
 */
int jwt_verify(const struct jwt_signer *s, const char *token, const char *iss, const char *aud, int64_t now_s,
               struct jwt_claims *out, char *err, size_t errlen);

/*
 * Key sets for external ID tokens. Accepted JSON: a JWK Set
 * {"keys":[{"kty":"RSA","kid","n","e"} | {"kty":"EC","crv":"P-256","kid","x","y"}]}
 * or Google's x509 map {"kid": "-----BEGIN CERTIFICATE-----…"}. All keys of a
 * set must share the algorithm (RS256 for RSA, ES256 for EC).
 */
struct jwt_keyset *jwt_keyset_parse(const char *json, size_t len, char *err, size_t errlen);
void jwt_keyset_free(struct jwt_keyset *ks);
size_t jwt_keyset_count(const struct jwt_keyset *ks);
/* 1 when the set has a key with this kid. */
int jwt_keyset_has_kid(const struct jwt_keyset *ks, const char *kid);

/* The "kid" of a token's header, copied into out; -1 when absent/malformed. */
int jwt_peek_kid(const char *token, char *out, size_t outlen);

/*
 * Verify an external ID token against ks: pinned algorithm, known kid,
 * signature, iss, aud, exp, iat and auth_time not in the future, sub present.
 */
int jwt_verify_external(const struct jwt_keyset *ks, const char *token, const char *iss, const char *aud, int64_t now_s,
                        struct jwt_claims *out, char *err, size_t errlen);

/* jwt_verify_external with an audience rule (struct jwt_audience). */
int jwt_verify_external_rule(const struct jwt_keyset *ks, const char *token, const char *iss,
                             const struct jwt_audience *aud, int64_t now_s, struct jwt_claims *out, char *err,
                             size_t errlen);

/* The unverified "iss" of a token's payload, for choosing which issuer's
 * keys verify it (nothing else may be read from an unverified payload).
 * -1 when absent or malformed. */
int jwt_peek_iss(const char *token, char *out, size_t outlen);

#endif
