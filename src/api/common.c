/*
 * common.c — small helpers shared by the API areas. See api.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/audit.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/server.h"
#include "store/store.h"

int api_user_is_caller(const struct http_request *req, const char *user_id)
{
    /* auth's one rule: the caller's Clarity id in any case (the app writes
     * UUIDs upper-case), or their external token's subject exactly. */
    return user_id != NULL && auth_principal_is(access_principal(req), user_id);
}

int api_body_user_check(struct http_request *req, struct http_response *res, json_t *body)
{
    json_t *v = json_object_get(body, "user_id");
    /* Checked before any other validation so that the reply is one 403,
     * never a 403 on top of a 422 under construction (#16.7). A missing or
     * mistyped user_id is left to the body's validation. */
    if (!json_is_string(v) || api_user_is_caller(req, json_string_value(v)))
        return 0;
    http_respond_problem(res, 403, "authorization-denied", "user_id must be the authenticated caller.");
    return 1;
}

const char *api_id_param(struct http_request *req, const char *name)
{
    char *v = (char *)http_request_param(req, name); /* the request arena's own copy */
    if (v != NULL && uuid_is_valid(v))
        api_id_lower(v);
    return v;
}

void api_id_lower(char *id)
{
    for (; id != NULL && *id; id++)
        if (*id >= 'A' && *id <= 'Z')
            *id = (char)(*id - 'A' + 'a');
}

/*
 * The one mapping from a code of core/err.h to an RFC 7807 status and type.
 * Only codes a client can cause or should retry get their own status; every
 * other code is a 500 whose detail says nothing of the cause.
 */
void api_store_failure(struct http_response *res, int rc)
{
    struct problem *p = http_respond_problem(res, 500, NULL, "The server could not complete the request.");
    switch (rc) {
    case STORE_ENOTFOUND: problem_set(p, 404, "resource-not-found", "The requested resource was not found."); break;
    case STORE_ECONFLICT:
        problem_set(p, 409, "resource-conflict", "The resource already exists or was changed.");
        break;
    case STORE_EINVAL: problem_set(p, 422, "validation-error", "The request refers to invalid or missing data."); break;
    case INGEST_EOWNER: problem_set(p, 403, "authorization-denied", "user_id must be the authenticated caller."); break;
    case STORE_EUNAVAILABLE:
    case STORE_EBUSY:
    case STORE_EMIGRATION:
        problem_set(p, 503, "service-unavailable", "The database is temporarily unavailable; retry shortly.");
        p->retry_after = rc == STORE_EBUSY ? 1 : 5;
        break;
    case STORE_ENOMEM:
    case ENVELOPE_ENOMEM:
    case KEYRING_ENOMEM:
    case PAT_ERR_NOMEM:
    case COMPUTE_ENOMEM:
    case APPLE_EXPORT_ENOMEM:
    case INGEST_ENOMEM:
    case JOBS_ENOMEM:
    case JSON_ENOMEM:
    case TOKEN_ENOMEM:
        /* Memory ran short for this request: the server's failure, and a
         * passing one; never a 4xx that blames the client (#16). */
        problem_set(p, 503, "service-unavailable", "The server is short of resources; retry shortly.");
        p->retry_after = 1;
        break;
    case TOKEN_EUNAVAILABLE:
        problem_set(p, 503, "service-unavailable", "The identity provider cannot be reached; retry shortly.");
        p->retry_after = 5;
        break;
    case JSON_EINVALID: problem_set(p, 400, "bad-request", "The body is not valid JSON."); break;
    default: /* keyring, compute, ingest, jobs …: a server fault */
        problem_set(p, 500, "internal-server-error", "An internal error occurred.");
    }
    if (problem_verbose()) /* DEBUG=true in development: the cause rides along */
        problem_set_extra(p, json_pack("{s:s, s:i}", "debug_error", clarity_strerror(rc), "debug_code", rc));
    res->status = p->status;
}

json_t *api_time_json(int64_t ms)
{
    char buf[40];
    return ms != 0 ? json_string(time_format_rfc3339_s(ms, buf, sizeof(buf))) : json_null();
}

json_t *api_sample_time_json(int64_t ms)
{
    char buf[40];
    if (ms % 1000 == 0)
        return json_string(time_format_rfc3339_s(ms, buf, sizeof(buf)));
    return json_string(time_format_rfc3339_ms(ms, buf, sizeof(buf)));
}

json_t *api_upload_status_json(const struct store_upload *u, const char *id_name)
{
    json_t *o = json_object();
    json_object_set_new(o, id_name, json_string(u->id));
    json_object_set_new(o, "status", json_string(store_upload_status_name(u->status)));
    json_object_set_new(o, "progress", json_real(u->progress));
    json_object_set_new(o, "total_metrics", json_integer(u->total_metrics));
    json_object_set_new(o, "processed_metrics", json_integer(u->processed_metrics));
    json_object_set_new(o, "upload_source", json_string(u->source));
    json_object_set_new(o, "created_at", api_time_json(u->created_at_ms));
    json_object_set_new(o, "updated_at", api_time_json(u->updated_at_ms ? u->updated_at_ms : u->created_at_ms));
    if (u->error[0] != '\0')
        json_object_set_new(o, "error", json_string(u->error));
    /* The members the iOS app decodes on its status screens (ios-app.md):
     * the same counts under its names, errors as strings, and completed_at
     * only once the upload is finished. */
    json_object_set_new(o, "processed_samples", json_integer(u->processed_metrics));
    json_object_set_new(o, "total_samples", json_integer(u->total_metrics));
    json_t *errs = json_array();
    if (u->error[0] != '\0')
        json_array_append_new(errs, json_string(u->error));
    json_object_set_new(o, "errors", errs);
    int finished = u->status == STORE_UPLOAD_COMPLETED || u->status == STORE_UPLOAD_FAILED;
    if (finished)
        json_object_set_new(o, "completed_at", api_time_json(u->updated_at_ms ? u->updated_at_ms : u->created_at_ms));
    json_object_set_new(o, "message",
                        json_string(u->status == STORE_UPLOAD_COMPLETED    ? "Processing completed."
                                    : u->status == STORE_UPLOAD_FAILED     ? "Processing failed."
                                    : u->status == STORE_UPLOAD_PROCESSING ? "Processing."
                                                                           : "Received and queued for processing."));
    return o;
}

int api_page_params(struct http_request *req, struct http_response *res, size_t def, size_t *limit,
                    struct store_cursor *after)
{
    const char *l = http_request_query(req, "limit");
    const char *c = http_request_query(req, "cursor");
    *limit = def;
    memset(after, 0, sizeof(*after));
    if (l != NULL) {
        char *end = NULL;
        long v = strtol(l, &end, 10);
        if (end == l || *end != '\0' || v < 1 || v > STORE_PAGE_MAX) {
            struct problem *p = http_respond_problem(res, 422, "validation-error", "Invalid pagination.");
            problem_add_error(p, "/query/limit", "must be an integer from 1 to %d", STORE_PAGE_MAX);
            return -1;
        }
        *limit = (size_t)v;
    }
    if (c != NULL && store_cursor_parse(c, after) != 0) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "Invalid pagination.");
        problem_add_error(p, "/query/cursor", "is not a cursor from a previous page");
        return -1;
    }
    return 0;
}

void api_page_links(json_t *o, struct http_request *req, size_t n, size_t limit, const struct store_cursor *next,
                    const char *extra_query)
{
    char cur[STORE_CURSOR_LEN] = "";
    if (next->set)
        store_cursor_format(next, cur);
    json_t *pg = json_object();
    json_object_set_new(pg, "page_size", json_integer((json_int_t)n));
    json_object_set_new(pg, "has_next", json_boolean(next->set));
    json_object_set_new(pg, "next_cursor", next->set ? json_string(cur) : json_null());
    json_object_set_new(o, "pagination", pg);
    json_t *links = json_object();
    json_object_set_new(links, "self", json_string(req->path));
    if (next->set) {
        char nl[1024];
        snprintf(nl, sizeof(nl), "%s?limit=%zu&cursor=%s%s%s", req->path, limit, cur,
                 extra_query != NULL && *extra_query ? "&" : "", extra_query != NULL ? extra_query : "");
        json_object_set_new(links, "next", json_string(nl));
    } else {
        json_object_set_new(links, "next", json_null());
    }
    json_object_set_new(o, "links", links);
}

int api_tx_end(struct store_tx *tx, int rc)
{
    if (rc == 0)
        return store_tx_commit(tx);
    store_tx_rollback(tx);
    return rc;
}

void api_delete_audited(struct http_request *req, struct http_response *res, api_delete_fn del, const char *id,
                        const char *owner, const char *action, const char *resource_type, const char *id_name,
                        const char *not_found_detail)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    rc = del(tx, id, owner);
    if (rc == 0 && audit_record(ctx->store, tx, req, NULL, action, resource_type, id, "success") != 0)
        rc = STORE_EINTERNAL;
    rc = api_tx_end(tx, rc);
    if (rc == STORE_ENOTFOUND) {
        http_respond_problem(res, 404, "resource-not-found", "%s", not_found_detail);
        return;
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, id_name, json_string(id));
    json_object_set_new(o, "status", json_string("deleted"));
    http_respond_json(res, 200, o);
}

int api_read_outcome(struct http_request *req, struct http_response *res, int rc, const char *action,
                     const char *resource_type, const char *id, const char *not_found_detail)
{
    struct api_ctx *ctx = req->route_ctx;
    audit_record(ctx->store, NULL, req, NULL, action, resource_type, id, rc == 0 ? "success" : "not_found");
    if (rc == 0)
        return 0;
    if (rc == STORE_ENOTFOUND)
        http_respond_problem(res, 404, "resource-not-found", "%s", not_found_detail);
    else
        api_store_failure(res, rc);
    return 1;
}

json_t *api_service_status(struct http_request *req, const char *service, const char *status, const char *model_name,
                           int initialized, const char *const *capabilities)
{
    json_t *caps = json_array();
    for (const char *const *c = capabilities; c != NULL && *c != NULL; c++)
        json_array_append_new(caps, json_string(*c));
    json_t *o = json_object();
    json_object_set_new(o, "service", json_string(service));
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "model_info",
                        json_pack("{s:s, s:s, s:b, s:o}", "model_name", model_name, "project_id", "clarity",
                                  "initialized", initialized, "capabilities", caps));
    json_object_set_new(o, "timestamp", api_time_json(time_now_ms()));
    if (req->server != NULL)
        json_object_set_new(o, "uptime",
                            json_real((double)(time_now_ms() - http_server_started_ms(req->server)) / 1000.0));
    json_object_set_new(o, "version", json_string(CLARITY_VERSION));
    return o;
}
