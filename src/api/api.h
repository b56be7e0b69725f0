/*
 * api.h — the shared context of the API handlers and the one function that
 * registers every route (used by `serve` and by `clarity routes`).
 */
#ifndef CLARITY_API_API_H
#define CLARITY_API_API_H

#include <stdatomic.h>

#include "api/guard.h"
#include "auth/jwt.h"
#include "auth/limiter.h"
#include "core/config.h"
#include "crypto/password.h"
#include "http/router.h"

struct store;
struct keyring;
struct pat_model;
struct pat_standardization;
struct llm_client;
struct chat_hub;
struct oidc_login;

/* Services the handlers use; every pointer borrowed, alive while serving. */
struct api_ctx {
    const struct config *cfg;
    struct store *store;
    const struct jwt_signer *signer;
    struct limiter *lockout;
    enum password_profile pw_profile;
    struct keyring *ring; /* encrypts raw uploads */
    size_t max_metrics;   /* per HealthDataUpload */
    /* Pipeline (api/pat.c, api/insights.c): NULL model = PAT disabled. */
    const struct pat_model *pat_model;
    const struct pat_standardization *pat_std;
    struct llm_client *llm; /* INSIGHT_GENERATOR's LLM; NULL: built-in only */
    struct chat_hub *chat;  /* api/chat.c; NULL: chat answers 503 */
    /* Set when the shutdown grace period is over: long imports give up
     * (api/health_data.c) so that no request outlives it. NULL: never. */
    const atomic_int *stop;
    struct guard *guard;           /* revocation and token checks (api/auth.c) */
    struct oidc_login *oidc_login; /* browser sign-in providers (api/oidc_flow.c); NULL: none */
};

/* Register every route of the API. Returns 0 or -1 (router full, bug). */
int api_routes_register(struct router *r, struct api_ctx *ctx);

/* Areas (one file each). */
int api_probes_register(struct router *r, struct api_ctx *ctx); /* ctx->store: queue gauges */
int api_auth_register(struct router *r, struct api_ctx *ctx);
int api_health_data_register(struct router *r, struct api_ctx *ctx);
int api_pat_register(struct router *r, struct api_ctx *ctx);      /* api/pat.c */
int api_insights_register(struct router *r, struct api_ctx *ctx); /* api/insights.c */
int api_docs_register(struct router *r);                          /* api/docs.c: /openapi.json, /docs */
int api_chat_register(struct router *r, struct api_ctx *ctx);     /* api/chat.c: WebSocket chat */
int api_web_register(struct router *r);                           /* api/web.c: the web app at / */
int api_views_register(struct router *r, struct api_ctx *ctx);    /* api/views.c: aggregates for the app */
int api_oidc_register(struct router *r, struct api_ctx *ctx);     /* api/oidc_flow.c: browser OIDC sign-in */
/* api/recordings.c: research recordings, POST /api/v1/recordings. */
int api_recordings_register(struct router *r, struct api_ctx *ctx);

/* Shared by the areas (api/common.c). */
/* 1 when user_id names the caller (auth_principal_is: the Clarity id in any
 * case, or the external token's subject). */
int api_user_is_caller(const struct http_request *req, const char *user_id);
/* When body's "user_id" is a string naming someone else: answer 403 and
 * return 1 (run before any validation error is recorded); else 0. */
int api_body_user_check(struct http_request *req, struct http_response *res, json_t *body);
/* Lower-case a Clarity identifier (UUID) in place: ids are stored
 * lower-case and compared case-insensitively. NULL is allowed. */
void api_id_lower(char *id);
/* A path parameter, lower-cased when it is a UUID (other identifiers, such
 * as an identity provider's subject, are kept as sent). NULL when absent. */
const char *api_id_param(struct http_request *req, const char *name);
struct store_upload;
/* Answer a failed call as its problem: the one mapping of a core/err.h code
 * to an RFC 7807 status and type (404, 409, 422, 403, 503 with Retry-After
 * for an outage, else 500). */
void api_store_failure(struct http_response *res, int rc);
/* An RFC 3339 string for epoch ms, or null for 0, in whole seconds
 * ("2026-12-07T02:58:24Z"): every timestamp Clarity generates goes out this
 * way (docs/api.md "Rules for clients"). New reference. */
json_t *api_time_json(int64_t ms);
/* A sample's own start or end as the client sent it: whole seconds when the
 * fraction is zero, else with milliseconds (data is never rounded). */
json_t *api_sample_time_json(int64_t ms);
/* The processing-status object of an upload. New reference. */
json_t *api_upload_status_json(const struct store_upload *u, const char *id_name);
/* Parse ?limit= (1–STORE_PAGE_MAX, default def) and ?cursor=; answers 422
 * and returns -1 when invalid. */
struct store_cursor;
int api_page_params(struct http_request *req, struct http_response *res, size_t def, size_t *limit,
                    struct store_cursor *after);
/*
 * After reading one owned record (rc from the store): write the audit row
 * (action on resource_type/id, success or not_found) and, when rc is not 0,
 * answer 404 with not_found_detail or the storage failure. Returns 0 when
 * the record was read (the caller answers), 1 when res was answered.
 */
int api_read_outcome(struct http_request *req, struct http_response *res, int rc, const char *action,
                     const char *resource_type, const char *id, const char *not_found_detail);

/* End a write transaction: commit when rc is 0, else roll back. Returns the
 * final code (a failed commit's code when the commit fails). */
struct store_tx;
int api_tx_end(struct store_tx *tx, int rc);

/*
 * Delete a record and write its audit row in one write transaction, then
 * answer: 404 with not_found_detail, the storage failure, or 200
 * {<id_name>: id, status: "deleted"}. del receives (tx, id, owner).
 */
typedef int (*api_delete_fn)(struct store_tx *tx, const char *id, const char *owner);
void api_delete_audited(struct http_request *req, struct http_response *res, api_delete_fn del, const char *id,
                        const char *owner, const char *action, const char *resource_type, const char *id_name,
                        const char *not_found_detail);

/* The web app's refresh cookie (api/session.c): 1 when the request says
 * X-Clarity-Client: web; deliver moves tokens' refresh_token into the
 * HttpOnly cookie for such requests; clear expires it; cookie_token reads it
 * for /refresh and /logout after the CSRF check — 0 with the token in buf,
 * 1 when there is no cookie, -1 after answering 403. */
#define SESSION_TOKEN_MAX 128 /* the refresh cookie read into a buffer */
int api_session_is_web(const struct http_request *req);
void api_session_deliver(struct http_request *req, struct http_response *res, json_t *tokens);
void api_session_clear(struct http_request *req, struct http_response *res);
int api_session_cookie_token(struct http_request *req, struct http_response *res, char *buf, size_t len);
/* The clarity_refresh value of a Cookie header (NULL: none) into buf: 0, or
 * -1 when absent, empty or not shorter than len. */
int api_session_cookie_value(const char *cookie_header, char *buf, size_t len);
/* The same for the cookie called name. */
int api_cookie_value(const char *cookie_header, const char *name, char *buf, size_t len);
/* Move tokens' refresh_token into the refresh cookie (api_session_deliver
 * without the X-Clarity-Client check: OIDC sign-in, api/oidc_flow.c). */
void api_session_set_cookie(struct http_response *res, json_t *tokens);
/* Sign user_id in after an external sign-in (api/auth.c): the account must
 * be active; records its last login, issues an access token and a refresh
 * token (a new family) and writes the audit row `action` — one transaction.
 * 0 with *tokens (as login's), TOKEN_EINVALID (not active) or a STORE_E*. */
int api_auth_sign_in_user(struct api_ctx *ctx, struct http_request *req, const char *user_id, const char *action,
                          json_t **tokens);
/* 1 when origin is NULL or is http(s)://host exactly; 0 otherwise. */
int api_session_origin_ok(const char *origin, const char *host);
/* The service-status object of /pat/models, /pat/health, /insights/status
 * and /insights/alerts (ios-app.md): {service, status, model_info:
 * {model_name, project_id, initialized, capabilities}, timestamp, uptime,
 * version}; the caller adds its own members. New reference. */
json_t *api_service_status(struct http_request *req, const char *service, const char *status, const char *model_name,
                           int initialized, const char *const *capabilities);

/* {page_size, has_next, next_cursor} and {self, next} for a page. */
void api_page_links(json_t *o, struct http_request *req, size_t n, size_t limit, const struct store_cursor *next,
                    const char *extra_query);

#endif
