/*
 * api.h — the shared context of the API handlers and the one function that
 * registers every route (used by `serve` and by `clarity routes`).
 */
#ifndef CLARITY_API_API_H
#define CLARITY_API_API_H

#include "auth/guard.h"
#include "auth/jwt.h"
#include "auth/limiter.h"
#include "core/config.h"
#include "crypto/password.h"
#include "http/router.h"

struct store;

/* Services the handlers use; every pointer borrowed, alive while serving. */
struct api_ctx {
    const struct config *cfg;
    struct store *store;
    const struct jwt_signer *signer;
    struct limiter *lockout;
    enum password_profile pw_profile;
};

/* Register every route of the API. Returns 0 or -1 (router full, bug). */
int api_routes_register(struct router *r, struct api_ctx *ctx);

/* Areas (one file each). */
int api_probes_register(struct router *r);
int api_auth_register(struct router *r, struct api_ctx *ctx);

#endif
