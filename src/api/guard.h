/*
 * guard.h — the one access-rule layer in front of every handler.
 *
 * Each route declares, in its router flags, whether it needs an
 * authenticated caller and which rate class it belongs to. The guard runs
 * after routing (installed with http_server_guard_set) and:
 *   1. works out the client address (X-Forwarded-For only from a trusted
 *      proxy),
 *   2. authenticates the bearer token when the route needs it (Clarity's
 *      ES256 tokens, or external Firebase/OIDC ID tokens when configured),
 *   3. applies the token bucket of the route's class, keyed by user when
 *      authenticated and by client address otherwise (429 with Retry-After
 *      and RateLimit-* headers).
 * Handlers then use access_* below for ownership — they never parse tokens.
 */
#ifndef CLARITY_API_GUARD_H
#define CLARITY_API_GUARD_H

#include "auth/jwt.h"
#include "auth/limiter.h"
#include "auth/oidc.h"
#include "core/config.h"
#include "http/http.h"

struct store;

/* Route flags (router_add's flags). */
#define GUARD_AUTH 0x01u /* an authenticated caller is required */
/* The route may take its bearer token from ?token= (the WebSocket handshake
 * only: browsers cannot set headers there; tokens in URLs reach logs and
 * proxies, so no REST route accepts them). */
#define GUARD_QUERY_TOKEN 0x02u
#define GUARD_RATE_SHIFT 4
#define GUARD_RATE_MASK (0x7u << GUARD_RATE_SHIFT)
enum guard_rate_class {
    GUARD_RATE_NONE = 0, /* probes, docs: not limited */
    GUARD_RATE_API,      /* other API: 100/min */
    GUARD_RATE_AUTH,     /* auth endpoints: 5/min */
    GUARD_RATE_UPLOAD,   /* uploads: 60/min */
    GUARD_RATE_INSIGHTS, /* insight generation: 20/h */
    GUARD_RATE_CHAT,     /* chat: 30/min */
    GUARD_RATE_COUNT
};
#define GUARD_RATE(c) ((unsigned)(c) << GUARD_RATE_SHIFT)

/* Permissions, by role (docs/security.md). */
#define PERM_READ_OWN 0x01u
#define PERM_WRITE_OWN 0x02u
#define PERM_READ_ALL 0x04u /* admin: read any user's data */
#define PERM_AUDIT 0x08u    /* admin: read the audit log */
#define PERM_MANAGE_USERS 0x10u

struct principal {
    char user_id[64];
    char role[16];
    unsigned perms;
    char jti[64];
    int64_t exp;
    int64_t iat;
    int external;       /* authenticated by an external token */
    char sid[80];       /* the session the token belongs to (revocation key) */
    char subject[128];  /* external: the provider's subject; "" otherwise */
    char provider[64];  /* "clarity", or the issuer's name ("firebase", …) */
    int email_verified; /* external: the token's email_verified */
};

struct guard;
struct store_tx;

/*
 * Build the guard from configuration. signer verifies Clarity's tokens;
 * oidc (may be NULL) verifies external ID tokens (oidc.h); store links
 * external subjects to local users. Rate classes follow RATE_LIMITS overrides. NULL with err on failure.
 */
struct guard *guard_new(const struct config *cfg, const struct jwt_signer *signer, struct oidc *oidc,
                        struct store *store, char *err, size_t errlen);
void guard_free(struct guard *g);

/* The http_guard_fn to install. */
int guard_run(void *ctx, struct http_request *req, struct http_response *res);

/* Parse "auth=5/60,upload=60/60" into rules (tests and config check). */
int guard_rate_rules_parse(const char *spec, struct rate_rule rules[GUARD_RATE_COUNT], char *err, size_t errlen);

/* Role → permissions; 0 for an unknown role. */
unsigned guard_role_perms(const char *role);
/* JSON-friendly names of a permission set, e.g. "read:own_data". */
int guard_perm_names(unsigned perms, const char **out, int max);

/*
 * 1 when id names the caller: their Clarity user id (compared
 * case-insensitively, as UUIDs are) or, for a caller signed in with an
 * external token, that token's subject (exact: provider subjects are
 * case-sensitive). The one rule every ownership check of an id taken from
 * a path or body uses; p may be NULL. After a match, handlers read and write
 * under p->user_id, never under the id they were given (a subject is not a
 * Clarity user id). Stored owners are compared with the user id only
 * (access_can_read).
 */
int auth_principal_is(const struct principal *p, const char *id);

/*
 * Revoke a session (logout) or, with user_id set and sid NULL, every token of
 * a user issued up to now (erasure, disabling, password change). The row is
 * written in tx (the caller commits) and the revocation takes effect in this
 * process at once; other processes see it within GUARD_REVOCATION_POLL_MS.
 * expires_at_ms: when no token it can match is still valid.
 */
#define GUARD_REVOCATION_POLL_MS 1000
int guard_revoke(struct guard *g, struct store_tx *tx, const char *sid, const char *user_id, int64_t expires_at_ms);

/*
 * For processes without a guard (operator commands: disable a user, reset a
 * password): write the user-wide revocation row in tx. Running servers pick
 * it up within GUARD_REVOCATION_POLL_MS. 0 or a STORE_E* code.
 */
int guard_revoke_user_row(struct store_tx *tx, const char *user_id, int64_t now_ms);

/*
 * Verify a bearer token as the guard does (cache, signature, issuer rules,
 * external linking, revocation) into *p. 0, or a loggable reason in why and
 * TOKEN_EINVALID (refused: answer 401) or the server's failure to check it
 * (TOKEN_ENOMEM, TOKEN_EUNAVAILABLE, a STORE_E* code: answer 503).
 * For the WebSocket handshake and the identity-link endpoint; link_external
 * 0 verifies an external token without creating or linking a user.
 */
int guard_authenticate_token(struct guard *g, const char *token, struct principal *p, char *why, size_t whylen);

/* Verify an external token only (no user lookup): its claims and provider.
 * Returns as guard_authenticate_token. */
int guard_external_verify(struct guard *g, const char *token, struct jwt_claims *c, char *provider, char *why,
                          size_t whylen);

/* The Clarity user of a verified external identity (claims from
 * oidc_login_verify), linked or created by the (issuer, subject) rules of
 * issue #16 (e-mail link only when verified and onto an auto-linkable
 * account; roles never from a link). 0, TOKEN_EINVALID (a disabled user)
 * or a STORE_E* code. */
int guard_link_identity(struct guard *g, const struct jwt_claims *c, char user_id[64], char role[16]);

/* Verified-token cache counters (bench and tests). */
void guard_cache_stats(struct guard *g, uint64_t *hits, uint64_t *misses);

/* The authenticated caller, or NULL. */
const struct principal *access_principal(const struct http_request *req);

/*
 * A path names user_id: 403 unless it is the caller (or an admin reading).
 * Returns 0 when allowed, -1 after filling res.
 */
int access_user_path(const struct http_request *req, struct http_response *res, const char *user_id, int write);

/* The owner a read must be restricted to: the caller's id, or NULL for an
 * admin (who may read any user's records). Borrowed from the request. */
const char *access_owner_scope(const struct http_request *req);

/* 1 when the caller may see a record owned by owner_id (owner, or admin). A
 * record the caller may not see must be answered as 404, never 403. */
int access_can_read(const struct http_request *req, const char *owner_id);

#endif
