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
#include "api/audit.h"
#include "api/guard.h"
#include "chat/answer.h"
#include "core/json_load.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "pipeline/insight.h"
#include "pipeline/insight_builtin.h"
#include "pipeline/llm.h"
#include "store/store.h"
#include "core/limits.h"

#define INSIGHT_CHAT_MAX 4000 /* bytes of a chat question */

/* The texts of a list of key insights or recommendations: the iOS app
 * decodes [String] (ios-app.md); the objects' detail stays under
 * "insight_details". */
static json_t *texts_of(json_t *list)
{
    json_t *out = json_array();
    size_t k;
    json_t *x;
    json_array_foreach (list, k, x) {
        if (json_is_string(x))
            json_array_append(out, x);
        else if (json_is_string(json_object_get(x, "text")))
            json_array_append(out, json_object_get(x, "text"));
    }
    return out;
}

/* The API form of a stored insight (the generation reply's data, one item
 * of the history). New reference. */
static json_t *insight_json(const struct store_insight *i)
{
    json_t *body = i->body ? json_parse_str(i->body, 0, NULL) : NULL;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(i->id));
    json_object_set_new(o, "insight_id", json_string(i->id));
    json_object_set_new(o, "user_id", json_string(i->user_id));
    json_object_set_new(o, "analysis_id", i->analysis_id[0] ? json_string(i->analysis_id) : json_null());
    json_object_set_new(o, "insight_type", json_string(i->insight_type));
    json_object_set_new(o, "narrative", json_string(i->narrative ? i->narrative : ""));
    json_t *ki = json_object_get(body, "key_insights"), *rec = json_object_get(body, "recommendations");
    /* Insights stored before the generator named its figures get their
     * label and unit here; out of memory only leaves them out. */
    (void)insight_figures_describe(ki);
    json_t *kt = texts_of(ki), *rt = texts_of(rec);
    json_object_set_new(o, "key_insights_count", json_integer((json_int_t)json_array_size(kt)));
    json_object_set_new(o, "recommendations_count", json_integer((json_int_t)json_array_size(rt)));
    json_object_set_new(o, "key_insights", kt);
    json_object_set_new(o, "recommendations", rt);
    json_t *detail = json_object();
    json_object_set_new(detail, "key_insights", ki ? json_incref(ki) : json_array());
    json_object_set_new(detail, "recommendations", rec ? json_incref(rec) : json_array());
    json_object_set_new(o, "insight_details", detail);
    json_t *gm = json_object_get(body, "grounded_metrics");
    if (gm != NULL)
        json_object_set(o, "grounded_metrics", gm);
    json_object_set_new(o, "confidence_score", json_real(i->confidence));
    json_object_set_new(o, "generator", json_string(i->generator));
    json_object_set_new(o, "generated_at", api_time_json(i->created_at_ms));
    json_decref(body);
    return o;
}

/* Numbers an analysis result may hold: finite and within ±1e9 (no metric
 * comes near it). Larger ones overflowed the generator's arithmetic into
 * inf, which JSON cannot carry, and came back as a 503 (#16.7). Records a
 * 422 error at the first offending pointer; returns -1 then. */
static int numbers_sane(struct input *in, json_t *v, char *ptr, size_t cap, size_t len, int depth)
{
    if (depth > 32) {
        input_error(in, ptr, "is nested too deeply (at most 32 levels)");
        return -1;
    }
    if (json_is_number(v)) {
        double x = json_number_value(v);
        if (!(x >= -1e9 && x <= 1e9)) {
            input_error(in, ptr, "must be a number from -1e9 to 1e9");
            return -1;
        }
        return 0;
    }
    const char *key;
    json_t *x;
    size_t k;
    if (json_is_object(v)) {
        json_object_foreach (v, key, x) {
            snprintf(ptr + len, cap - len, "/%s", key);
            if (numbers_sane(in, x, ptr, cap, strlen(ptr), depth + 1) != 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach (v, k, x) {
            snprintf(ptr + len, cap - len, "/%zu", k);
            if (numbers_sane(in, x, ptr, cap, strlen(ptr), depth + 1) != 0)
                return -1;
        }
    }
    ptr[len] = '\0';
    return 0;
}

static json_t *envelope(struct http_request *req, json_t *data, uint64_t t0)
{
    return json_pack("{s:b, s:o, s:{s:s, s:f}}", "success", 1, "data", data, "metadata", "request_id",
                     req->request_id ? req->request_id : "", "processing_time_ms", (double)(time_mono_ns() - t0) / 1e6);
}

/* The chat tab's question (insight_type "chat_response"): answered as the
 * WebSocket chat answers it (chat/answer.h: the LLM when configured, the
 * built-in answers otherwise), in the generation reply's shape. Chat
 * replies are conversation, not insights: they are not stored and not in
 * the history, and carry no score (confidence_score 0). */
static void chat_reply(struct http_request *req, struct http_response *res, const char *message, uint64_t t0)
{
    struct api_ctx *ctx = req->route_ctx;
    struct chat_services svc = {ctx->cfg, ctx->store, ctx->pat_model, ctx->pat_std, ctx->llm};
    enum chat_intent intent = CHAT_INTENT_HELP;
    const char *generator = INSIGHT_BUILTIN_NAME;
    char *text = chat_answer_reply(&svc, access_principal(req)->user_id, message, &intent, &generator);
    if (text == NULL) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        return;
    }
    json_t *d = json_object();
    json_object_set_new(d, "user_id", json_string(access_principal(req)->user_id));
    json_object_set_new(d, "insight_type", json_string("chat_response"));
    json_object_set_new(d, "narrative", json_string(text));
    json_object_set_new(d, "key_insights", json_array());
    json_object_set_new(d, "recommendations", json_array());
    json_object_set_new(d, "key_insights_count", json_integer(0));
    json_object_set_new(d, "recommendations_count", json_integer(0));
    json_object_set_new(d, "confidence_score", json_real(0));
    json_object_set_new(d, "generator", json_string(generator));
    json_object_set_new(d, "intent", json_string(chat_intent_name(intent)));
    json_object_set_new(d, "generated_at", api_time_json(time_now_ms()));
    free(text);
    http_respond_json(res, 200, envelope(req, d, t0));
}

/* POST /api/v1/insights/chat {message, context?:{conversation_id?,
 * focus_timeframe?}} → {response, conversation_id, follow_up_questions}:
 * the same answer as chat_response. A conversation is the client's thread
 * id (a new UUID when none is given); Clarity keeps no thread state. */
static void h_chat(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {"message", "context", NULL};
    struct api_ctx *ctx = req->route_ctx;
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    json_t *m = json_object_get(body, "message");
    if (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > INSIGHT_CHAT_MAX ||
        strlen(json_string_value(m)) != json_string_length(m))
        input_error(&in, "/message", "must be the question, 1 to %d bytes of text", INSIGHT_CHAT_MAX);
    json_t *c = json_object_get(body, "context");
    const char *conv = NULL;
    if (c != NULL && !json_is_null(c) && !json_is_object(c))
        input_error(&in, "/context", "must be an object");
    else if (json_is_object(c)) {
        conv = input_string(&in, c, "/context", "conversation_id", 0, 1, 64);
        input_string(&in, c, "/context", "focus_timeframe", 0, 1, 64);
    }
    if (input_done(&in) != 0)
        goto done;
    struct chat_services svc = {ctx->cfg, ctx->store, ctx->pat_model, ctx->pat_std, ctx->llm};
    enum chat_intent intent = CHAT_INTENT_HELP;
    const char *generator = INSIGHT_BUILTIN_NAME;
    char *text = chat_answer_reply(&svc, access_principal(req)->user_id, json_string_value(m), &intent, &generator);
    if (text == NULL) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        goto done;
    }
    char id[40];
    if (conv == NULL && uuid_v4(id) != 0) {
        free(text);
        http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        goto done;
    }
    json_t *o =
        json_pack("{s:s, s:s, s:[], s:{s:s, s:s}}", "response", text, "conversation_id", conv != NULL ? conv : id,
                  "follow_up_questions", "relevant_data", "intent", chat_intent_name(intent), "generator", generator);
    free(text);
    http_respond_json(res, 200, o);
done:
    json_decref(body);
}

static void h_generate(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {
        "analysis_id", "analysis_results", "context", "insight_type", "include_recommendations", "language", NULL};
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    uint64_t t0 = time_mono_ns();
    struct store_analysis a;
    int have_a = 0;
    struct insight_draft d;
    struct store_tx *tx = NULL;
    char aid[40] = "";
    memset(&d, 0, sizeof(d));
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    const char *aid_in = input_string(&in, body, "", "analysis_id", 0, 36, 36);
    json_t *ar = json_object_get(body, "analysis_results");
    /* context: length-limited here, filtered against prompt injection by
     * the LLM client (llm.h); the built-in generator does not read it. */
    const char *context = input_string(&in, body, "", "context", 0, 0, LIMIT_INSIGHT_CONTEXT_CHARS);
    const char *type = input_string(&in, body, "", "insight_type", 0, 1, 32);
    input_bool(&in, body, "", "include_recommendations", 0, 1);
    input_string(&in, body, "", "language", 0, 1, 35); /* BCP 47; answers are in English for now */
    enum insight_focus focus = INSIGHT_FOCUS_COMPREHENSIVE;
    int chat = type != NULL && strcmp(type, "chat_response") == 0;
    if (aid_in != NULL && !uuid_is_valid(aid_in))
        input_error(&in, "/analysis_id", "must be a UUID");
    else if (aid_in != NULL) {
        snprintf(aid, sizeof(aid), "%s", aid_in);
        api_id_lower(aid);
    }
    if (ar != NULL && !json_is_object(ar))
        input_error(&in, "/analysis_results", "must be an object (an analysis result)");
    if (chat) {
        json_t *m = json_object_get(ar, "message");
        if (json_is_object(ar) &&
            (!json_is_string(m) || json_string_length(m) == 0 || json_string_length(m) > INSIGHT_CHAT_MAX ||
             strlen(json_string_value(m)) != json_string_length(m)))
            input_error(&in, "/analysis_results/message", "must be the question, 1 to %d bytes of text",
                        INSIGHT_CHAT_MAX);
        else if (ar == NULL)
            input_error(&in, "/analysis_results", "is required for chat_response (with the question in message)");
    } else {
        if ((json_object_get(body, "analysis_id") != NULL) == (ar != NULL))
            input_error(&in, "", "exactly one of analysis_id and analysis_results is required");
        if (type != NULL && insight_focus_parse(type, &focus) != 0)
            input_error(&in, "/insight_type",
                        "must be one of comprehensive, sleep, activity, circadian, cardio, chat_response");
        if (json_is_object(ar)) {
            char ptr[256] = "/analysis_results";
            numbers_sane(&in, ar, ptr, sizeof(ptr), strlen(ptr), 0);
        }
    }
    if (input_done(&in) != 0)
        goto done;
    if (chat) {
        chat_reply(req, res, json_string_value(json_object_get(ar, "message")), t0);
        goto done;
    }

    int rc = 0;
    if (aid[0] != '\0') {
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
                 ? 0
                 : STORE_EINTERNAL;
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
    const char *id = api_id_param(req, "insight_id");
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
    const char *uid = api_id_param(req, "user_id");
    uint64_t t0 = time_mono_ns();
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
    int64_t total = 0;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_insight_list(tx, uid, NULL, &after, limit, &v, &n, &next);
    if (rc == 0)
        rc = store_insight_count(tx, uid, &total);
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
    /* The history object the iOS app decodes (ios-app.md): data is an
     * object, an empty list for a new user. */
    json_t *data = json_object();
    json_object_set_new(data, "insights", arr);
    json_object_set_new(data, "total_count", json_integer((json_int_t)total));
    json_object_set_new(data, "has_more", json_boolean(next.set));
    api_page_links(data, req, n, limit, &next, NULL);
    json_t *pg = json_object_get(data, "pagination");
    json_object_set_new(pg, "limit", json_integer((json_int_t)limit));
    if (!after.set)
        json_object_set_new(pg, "page", json_integer(1));
    json_t *links = json_incref(json_object_get(data, "links"));
    json_object_del(data, "links");
    json_t *o = envelope(req, data, t0);
    json_object_set_new(o, "links", links);
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
    const char *gen = ctx->llm ? llm_client_name(ctx->llm) : INSIGHT_BUILTIN_NAME;
    static const char *const caps[] = {"insight_generation", "insight_history", "chat_response", NULL};
    /* /insights/alerts: Clarity raises no alerts of its own; the app reads
     * the service status there too (ios-app.md), so it gets this reply. */
    int alerts = strstr(req->path, "/alerts") != NULL;
    json_t *data = api_service_status(req, alerts ? "insight-alerts" : "insights",
                                      ctx->llm == NULL || llm_up ? "healthy" : "degraded", gen, 1, caps);
    json_object_set_new(data, "default_generator", json_string(gen));
    json_object_set_new(data, "generators", gens);
    if (alerts)
        json_object_set_new(data, "alerts", json_array());
    json_t *o = json_pack("{s:b, s:o}", "success", 1, "data", data);
    http_respond_json(res, 200, o);
}

int api_insights_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned rd = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    const unsigned gen = GUARD_AUTH | GUARD_RATE(GUARD_RATE_INSIGHTS);
    int rc = 0;
    rc |= router_add(r, HTTP_POST, "/api/v1/insights/generate", h_generate, ctx, gen);
    rc |= router_add(r, HTTP_POST, "/api/v1/insights", h_generate, ctx, gen); /* the newest app build's path */
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/alerts", h_status, ctx, rd);
    rc |= router_add(r, HTTP_POST, "/api/v1/insights/chat", h_chat, ctx, gen);
    /* Literal segments win over parameters in the router, so /status is
     * never taken for an insight id. */
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/status", h_status, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/history/{user_id}", h_history, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/insights/{insight_id}", h_get, ctx, rd);
    return rc != 0 ? -1 : 0;
}
