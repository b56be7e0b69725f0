/*
 * insights.c — /api/v1/insights (API.md "Insights"): generate an insight on
 * request, read one, the caller's history, and the generators' status.
 *
 * Generation uses the built-in generator (pipeline/insight_builtin.h), the
 * same one the workers run; every insight is stored with the generator that
 * produced it. Ownership: someone else's insight or analysis is a 404, a
 * history path naming another user a 403 (an admin may read any).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/input.h"
#include "auth/audit.h"
#include "auth/guard.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "pipeline/insight.h"
#include "pipeline/insight_builtin.h"
#include "pipeline/llm.h"
#include "store/store.h"
#include "core/limits.h"


/* The API form of a stored insight. New reference. */
static json_t *insight_json(const struct store_insight *i)
{
    json_t *body = i->body ? json_loads(i->body, 0, NULL) : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "insight_id", json_string(i->id));
    json_object_set_new(o, "user_id", json_string(i->user_id));
    json_object_set_new(o, "analysis_id", i->analysis_id[0] ? json_string(i->analysis_id) : json_null());
    json_object_set_new(o, "insight_type", json_string(i->insight_type));
    json_object_set_new(o, "narrative", json_string(i->narrative ? i->narrative : ""));
    json_t *ki = json_object_get(body, "key_insights"), *rec = json_object_get(body, "recommendations");
    json_object_set_new(o, "key_insights", ki ? json_incref(ki) : json_array());
    json_object_set_new(o, "recommendations", rec ? json_incref(rec) : json_array());
    json_t *gm = json_object_get(body, "grounded_metrics");
    if (gm != NULL)
        json_object_set(o, "grounded_metrics", gm);
    json_object_set_new(o, "confidence_score", json_real(i->confidence));
    json_object_set_new(o, "generator", json_string(i->generator));
    json_object_set_new(o, "generated_at", api_time_json(i->created_at_ms));
    json_decref(body);
    return o;
}

static json_t *envelope(struct http_request *req, json_t *data, uint64_t t0)
{
    return json_pack("{s:b, s:o, s:{s:s, s:f}}", "success", 1, "data", data, "metadata", "request_id",
                     req->request_id ? req->request_id : "", "processing_time_ms",
                     (double)(time_mono_ns() - t0) / 1e6);
}

static void h_generate(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {"analysis_id", "analysis_results", "context", "insight_type", NULL};
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    uint64_t t0 = time_mono_ns();
    struct store_analysis a;
    int have_a = 0;
    struct insight_draft d;
    struct store_tx *tx = NULL;
    memset(&d, 0, sizeof(d));
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *aid = input_string(&in, body, "", "analysis_id", 0, 36, 36);
    json_t *ar = json_object_get(body, "analysis_results");
    /* context: length-limited here, filtered against prompt injection by
     * the LLM client (llm.h); the built-in generator does not read it. */
    const char *context = input_string(&in, body, "", "context", 0, 0, LIMIT_INSIGHT_CONTEXT_CHARS);
    const char *type = input_string(&in, body, "", "insight_type", 0, 1, 32);
    enum insight_focus focus = INSIGHT_FOCUS_COMPREHENSIVE;
    if (aid != NULL && !uuid_is_valid(aid))
        input_error(&in, "/analysis_id", "must be a UUID");
    if (ar != NULL && !json_is_object(ar))
        input_error(&in, "/analysis_results", "must be an object (an analysis result)");
    if ((json_object_get(body, "analysis_id") != NULL) == (ar != NULL))
        input_error(&in, "", "exactly one of analysis_id and analysis_results is required");
    if (type != NULL && insight_focus_parse(type, &focus) != 0)
        input_error(&in, "/insight_type", "must be one of comprehensive, sleep, activity, circadian, cardio");
    if (input_done(&in) != 0)
        goto done;

    int rc = 0;
    if (aid != NULL) {
        rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
        if (rc == 0)
            /* A write: only the caller's own analysis, admins included (an
             * admin reads anyone's data but never writes into it). */
            rc = store_analysis_get(tx, aid, p->user_id, &a);
        store_tx_rollback(tx);
        tx = NULL;
        if (rc == STORE_ENOTFOUND) {
            http_respond_problem(res, 404, "resource-not-found", "No such analysis.");
            goto done;
        }
        if (rc != 0) {
            api_store_failure(res, rc);
            goto done;
        }
        have_a = 1;
        rc = insight_render_analysis(ctx->llm, &a, focus, context, NULL, &d);
    } else {
        struct insight_subject s = {p->user_id, NULL, NULL, focus, context, ar, json_object_get(ar, "coverage")};
        rc = insight_render(ctx->llm, &s, &d);
    }
    if (rc == COMPUTE_EINTERNAL) {
        http_respond_problem(res, 500, NULL, "The stored analysis is unreadable.");
        goto done;
    }
    if (rc != 0) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        goto done;
    }
    rc = store_tx_begin(ctx->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = insight_create(tx, &d, NULL, 0);
    if (rc == 0)
        rc = audit_record(ctx->store, tx, req, NULL, "insight.create", "insight", d.rec.id, "success") == 0
                 ? 0 : STORE_EINTERNAL;
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    if (rc != 0) {
        store_tx_rollback(tx);
        tx = NULL;
        api_store_failure(res, rc);
        goto done;
    }
    http_respond_json(res, 200, envelope(req, insight_json(&d.rec), t0));
done:
    if (have_a)
        store_analysis_clear(&a);
    insight_draft_clear(&d);
    json_decref(body);
}

static void h_get(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    uint64_t t0 = time_mono_ns();
    const char *id = http_request_param(req, "insight_id");
    struct store_tx *tx = NULL;
    struct store_insight i;
    if (id == NULL || !uuid_is_valid(id)) {
        http_respond_problem(res, 404, "resource-not-found", "No such insight.");
        return;
    }
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_insight_get(tx, id, access_owner_scope(req), &i);
    store_tx_rollback(tx);
    if (api_read_outcome(req, res, rc, "insight.read", "insight", id, "No such insight.") != 0)
        return;
    json_t *o = insight_json(&i);
    store_insight_clear(&i);
    http_respond_json(res, 200, envelope(req, o, t0));
}

static void h_history(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const char *uid = http_request_param(req, "user_id");
    struct store_tx *tx = NULL;
    struct store_insight *v = NULL;
    size_t n = 0, limit;
    struct store_cursor after, next;
    if (uid == NULL || access_user_path(req, res, uid, 0) != 0)
        return;
    if (auth_principal_is(access_principal(req), uid))
        uid = access_principal(req)->user_id; /* e.g. the caller's Firebase uid */
    if (api_page_params(req, res, 20, &limit, &after) != 0)
        return;
    memset(&next, 0, sizeof(next));
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_insight_list(tx, uid, NULL, &after, limit, &v, &n, &next);
    store_tx_rollback(tx);
    audit_record(ctx->store, NULL, req, NULL, "insight.list", "insight", uid, rc == 0 ? "success" : "error");
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *arr = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(arr, insight_json(&v[k]));
    store_insight_list_free(v, n);
    json_t *o = json_pack("{s:b, s:o}", "success", 1, "data", arr);
    api_page_links(o, req, n, limit, &next, NULL);
    http_respond_json(res, 200, o);
}

static json_t *llm_status(struct llm_client *c, const char *name)
{
    char why[200] = "not configured (INSIGHT_GENERATOR)";
    int configured = c != NULL && strcmp(llm_client_name(c), name) == 0;
    int up = configured && llm_client_available(c, why, sizeof(why));
    json_t *o = json_pack("{s:s, s:b, s:b}", "name", name, "available", up, "default", configured);
    if (!up)
        json_object_set_new(o, "reason", json_string(why));
    return o;
}

static void h_status(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    char why[200];
    int llm_up = ctx->llm != NULL && llm_client_available(ctx->llm, why, sizeof(why));
    json_t *gens = json_array();
    json_array_append_new(gens, json_pack("{s:s, s:b, s:b, s:s, s:s}", "name", INSIGHT_BUILTIN_NAME, "available", 1,
                                          "default", ctx->llm == NULL, "version", INSIGHT_BUILTIN_VERSION, "role",
                                          "default and fallback of every other generator"));
    json_array_append_new(gens, llm_status(ctx->llm, "gemini"));
    json_array_append_new(gens, llm_status(ctx->llm, "openai_compatible"));
    json_t *o = json_pack("{s:b, s:{s:s, s:s, s:o}}", "success", 1, "data", "status",
                          ctx->llm == NULL || llm_up ? "healthy" : "degraded", "default_generator",
                          ctx->llm ? llm_client_name(ctx->llm) : INSIGHT_BUILTIN_NAME, "generators", gens);
    http_respond_json(res, 200, o);
}

int api_insights_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned rd = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    const unsigned gen = GUARD_AUTH | GUARD_RATE(GUARD_RATE_INSIGHTS);
    int rc = 0;
    rc |= router_add(r, HTTP_POST, "/api/v1/insights/generate", h_generate, ctx, gen);
    /* Literal segments win over parameters in the router, so /status is
     * never taken for an insight id. */
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/status", h_status, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/history/{user_id}", h_history, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/{insight_id}", h_get, ctx, rd);
    return rc != 0 ? -1 : 0;
}
