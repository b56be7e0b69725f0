/*
 * pat.c — /api/v1/pat (API.md "Analysis"): synchronous analysis of posted
 * step or activity series (stored like the pipeline's analyses), one stored
 * analysis, and the loaded models.
 *
 * The posted series goes through the same window analysis as the workers
 * (pipeline/compute.h), so a result has one shape whichever way it came.
 * PAT output appears only when a model is configured; otherwise the result's
 * "pat" member is null with its reason — never a made-up embedding.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/series.h"
#include "api/api.h"
#include "api/input.h"
#include "api/audit.h"
#include "api/guard.h"
#include "core/json_load.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "ml/pat.h"
#include "pipeline/compute.h"
#include "pipeline/points.h"
#include "store/store.h"
#include "core/limits.h"

/* {name: number} of the result's numeric measures, one level into each
 * member ("sleep.total_sleep_minutes"): the flat pat_features map the iOS
 * app decodes as [String: Double]. At most 128 entries. */
static json_t *features_of(json_t *result)
{
    json_t *f = json_object();
    const char *k1, *k2;
    json_t *v1, *v2;
    json_object_foreach (result, k1, v1) {
        if (json_is_number(v1) && json_object_size(f) < 128)
            json_object_set_new(f, k1, json_real(json_number_value(v1)));
        if (!json_is_object(v1))
            continue;
        json_object_foreach (v1, k2, v2) {
            char name[128];
            if (!json_is_number(v2) || json_object_size(f) >= 128)
                continue;
            snprintf(name, sizeof(name), "%s.%s", k1, k2);
            json_object_set_new(f, name, json_real(json_number_value(v2)));
        }
    }
    return f;
}

/* The API form of a stored analysis: Clarity's members and the ones both
 * builds of the iOS app decode (ios-app.md: id, status, pat_features,
 * analysis, created_at, completed_at; and for a new analysis success,
 * analysis_id, data). Analyses are computed synchronously, so every stored
 * one is "completed". New reference. */
static json_t *analysis_json(const struct store_analysis *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "analysis_id", json_string(a->id));
    json_object_set_new(o, "status", json_string("completed"));
    json_object_set_new(o, "user_id", json_string(a->user_id));
    json_object_set_new(o, "upload_id", a->upload_id[0] ? json_string(a->upload_id) : json_null());
    json_object_set_new(o, "kind", json_string(a->kind));
    json_object_set_new(o, "version", json_integer(a->version));
    json_object_set_new(o, "model_version", json_string(a->model_version));
    json_object_set_new(o, "created_at", api_time_json(a->created_at_ms));
    json_object_set_new(o, "completed_at", api_time_json(a->created_at_ms));
    json_t *cov = a->coverage ? json_parse_str(a->coverage, 0, NULL) : NULL;
    json_t *res = a->result ? json_parse_str(a->result, 0, NULL) : NULL;
    json_object_set_new(o, "pat_features", features_of(res));
    json_object_set_new(o, "coverage", cov ? cov : json_null());
    json_object_set(o, "analysis", res ? res : json_null());
    json_object_set(o, "data", res ? res : json_null());
    json_object_set_new(o, "result", res ? res : json_null());
    json_object_set_new(o, "message", json_string("Analysis completed."));
    json_object_set_new(o, "estimated_completion_time", json_integer(0));
    return o;
}

/* Minute buckets of posted points, in local time. */
struct points {
    int64_t *min;
    double *val;
    size_t n;
};

static void points_free(struct points *p)
{
    free(p->min);
    free(p->val);
}

/* Analyse the points (pipeline/points.h), store the analysis, answer it. */
static void analyse_and_store(struct http_request *req, struct http_response *res, const struct points *pts, int steps,
                              size_t keep_min, const char *kind)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    json_t *result = NULL, *coverage = NULL;
    char *res_text = NULL, *cov_text = NULL;
    char err[256];
    const char *version = ctx->cfg ? ctx->cfg->actigraphy_model_version : NULL;
    struct points_pat pat = {ctx->pat_model, ctx->pat_std, version};
    int rc = points_analyse(&pat, pts->min, pts->val, pts->n, steps, keep_min, &result, &coverage, err, sizeof(err));
    if (rc == ANALYSIS_ESPAN) {
        struct problem *pr = http_respond_problem(res, 422, "validation-error", "The series is too long.");
        problem_add_error(pr, "/timestamps", "the timestamps may span at most %d minutes", LIMIT_POINTS_SPAN_MIN);
        return;
    }
    if (rc == ANALYSIS_EINVAL) {
        http_respond_problem(res, 422, "validation-error", "The series cannot be analysed: %s.", err);
        return;
    }
    if (rc != 0 || (res_text = json_dumps(result, JSON_COMPACT | JSON_REAL_PRECISION(10))) == NULL ||
        (cov_text = json_dumps(coverage, JSON_COMPACT)) == NULL) {
        http_respond_problem(res, 500, NULL, "The analysis could not be completed.");
        goto done;
    }
    struct store_analysis a;
    memset(&a, 0, sizeof(a));
    uuid_v7(a.id);
    snprintf(a.user_id, sizeof(a.user_id), "%.36s", p->user_id);
    snprintf(a.kind, sizeof(a.kind), "%s", kind);
    snprintf(a.model_version, sizeof(a.model_version), "%s",
             ctx->pat_model != NULL && version != NULL ? version : "none");
    a.version = COMPUTE_RESULT_VERSION;
    a.coverage = cov_text;
    a.result = res_text;
    a.created_at_ms = time_now_ms();
    struct store_audit audit;
    audit_fill(&audit, req, NULL, "analysis.create", "analysis", a.id, "success");
    rc = points_analysis_save(ctx->store, &a, &audit);
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    http_respond_json(res, 200, analysis_json(&a));
done:
    json_decref(result);
    json_decref(coverage);
    free(res_text);
    free(cov_text);
}

static int points_alloc(struct points *p, size_t n)
{
    p->n = n;
    p->min = calloc(n ? n : 1, sizeof(int64_t));
    p->val = calloc(n ? n : 1, sizeof(double));
    return p->min && p->val ? 0 : -1;
}

static int local_minute_of(const char *ts, int64_t *out)
{
    int64_t ms;
    int off;
    if (ts == NULL || time_parse_rfc3339(ts, &ms, &off) != 0)
        return -1;
    *out = series_local_minute(ms, off);
    return 0;
}

/* The iOS app's analysis request (ios-app.md; POST /pat/analysis, and the
 * build before's /pat/analyze-step-data and /pat/analyze): {user_id,
 * step_data:[{timestamp, step_count, source?}] | actigraphy_data:
 * [{timestamp, activity_level, light_exposure?, temperature?,
 * heart_rate?}], analysis_type, time_range?:{start_date, end_date}}. */
static void app_analysis(struct http_request *req, struct http_response *res, json_t *body)
{
    static const char *const allowed[] = {"user_id",       "step_data",  "actigraphy_data",
                                          "analysis_type", "time_range", NULL};
    struct points pts = {0};
    if (api_body_user_check(req, res, body) != 0)
        return;
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    input_string(&in, body, "", "user_id", 0, 1, 255);
    input_string(&in, body, "", "analysis_type", 0, 1, 64);
    json_t *sd = json_object_get(body, "step_data"), *ad = json_object_get(body, "actigraphy_data");
    int steps = sd != NULL && !json_is_null(sd);
    json_t *arr = steps ? sd : ad;
    const char *name = steps ? "/step_data" : "/actigraphy_data";
    if ((sd != NULL && !json_is_null(sd)) == (ad != NULL && !json_is_null(ad)))
        input_error(&in, "", "exactly one of step_data and actigraphy_data is required");
    else if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > LIMIT_POINTS_MAX)
        input_error(&in, name, "must be an array of 1 to %d points", LIMIT_POINTS_MAX);
    json_t *tr = json_object_get(body, "time_range");
    if (tr != NULL && !json_is_null(tr)) {
        int64_t ms;
        if (!json_is_object(tr))
            input_error(&in, "/time_range", "must be an object {start_date, end_date}");
        else
            for (int k = 0; k < 2; k++) {
                const char *m = k ? "end_date" : "start_date";
                json_t *d = json_object_get(tr, m);
                char ptr[40];
                snprintf(ptr, sizeof(ptr), "/time_range/%s", m);
                if (d != NULL && (!json_is_string(d) || time_parse_rfc3339(json_string_value(d), &ms, NULL) != 0))
                    input_error(&in, ptr, "must be an RFC 3339 date-time");
            }
    }
    if (in.c.nerrors == 0 && points_alloc(&pts, json_array_size(arr)) != 0) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        goto done;
    }
    for (size_t i = 0; in.c.nerrors < 20 && pts.min != NULL && i < pts.n; i++) {
        json_t *pt = json_array_get(arr, i);
        char ptr[80];
        if (!json_is_object(pt)) {
            snprintf(ptr, sizeof(ptr), "%s/%zu", name, i);
            input_error(&in, ptr, "must be an object");
            continue;
        }
        json_t *v = json_object_get(pt, steps ? "step_count" : "activity_level");
        double x = json_number_value(v);
        if (steps ? !json_is_integer(v) || x < 0 || x > 100000 : !json_is_number(v) || !(x >= 0 && x <= 1e6)) {
            snprintf(ptr, sizeof(ptr), "%s/%zu/%s", name, i, steps ? "step_count" : "activity_level");
            input_error(&in, ptr,
                        steps ? "must be a whole number of steps from 0 to 100000"
                              : "must be an activity level from 0 to 1000000");
        }
        pts.val[i] = x;
        static const char *const extras[] = {"light_exposure", "temperature", "heart_rate"};
        for (int k = 0; !steps && k < 3; k++) {
            json_t *e = json_object_get(pt, extras[k]);
            if (e != NULL && !json_is_null(e) &&
                (!json_is_number(e) || !(json_number_value(e) >= -1e6 && json_number_value(e) <= 1e6))) {
                snprintf(ptr, sizeof(ptr), "%s/%zu/%s", name, i, extras[k]);
                input_error(&in, ptr, "must be a number from -1000000 to 1000000");
            }
        }
        json_t *src = json_object_get(pt, "source");
        if (steps && src != NULL && !json_is_null(src) && (!json_is_string(src) || json_string_length(src) > 255)) {
            snprintf(ptr, sizeof(ptr), "%s/%zu/source", name, i);
            input_error(&in, ptr, "must be a string of at most 255 bytes");
        }
        if (local_minute_of(json_string_value(json_object_get(pt, "timestamp")), &pts.min[i]) != 0) {
            snprintf(ptr, sizeof(ptr), "%s/%zu/timestamp", name, i);
            input_error(&in, ptr, "must be an RFC 3339 date-time with offset");
        }
    }
    if (input_done(&in) != 0)
        goto done;
    analyse_and_store(req, res, &pts, steps, 0, steps ? "step" : "pat");
done:
    points_free(&pts);
}

static int is_app_request(json_t *body)
{
    return json_object_get(body, "step_data") != NULL || json_object_get(body, "actigraphy_data") != NULL;
}

static void h_app_analysis(struct http_request *req, struct http_response *res)
{
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    app_analysis(req, res, body);
    json_decref(body);
}

static void h_analyze_steps(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {"step_counts", "timestamps", "user_metadata", NULL};
    struct points pts = {0};
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    if (is_app_request(body)) {
        app_analysis(req, res, body);
        json_decref(body);
        return;
    }
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    json_t *steps = json_object_get(body, "step_counts"), *ts = json_object_get(body, "timestamps");
    json_t *meta = json_object_get(body, "user_metadata");
    size_t n = json_array_size(steps);
    if (!json_is_array(steps) || n < 1 || n > LIMIT_POINTS_MAX)
        input_error(&in, "/step_counts", "must be an array of 1 to %d step counts", LIMIT_POINTS_MAX);
    if (!json_is_array(ts) || json_array_size(ts) != n)
        input_error(&in, "/timestamps", "must be an array of RFC 3339 date-times, one per step count");
    if (meta != NULL && !json_is_object(meta) && !json_is_null(meta))
        input_error(&in, "/user_metadata", "must be an object");
    if (in.c.nerrors == 0 && points_alloc(&pts, n) != 0) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        goto done;
    }
    for (size_t i = 0; in.c.nerrors < 20 && i < n && json_is_array(ts) && json_array_size(ts) == n; i++) {
        json_t *v = json_array_get(steps, i);
        char ptr[64];
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 100000 ||
            json_number_value(v) != floor(json_number_value(v))) {
            snprintf(ptr, sizeof(ptr), "/step_counts/%zu", i);
            input_error(&in, ptr, "must be a whole number of steps from 0 to 100000");
        } else if (pts.val) {
            pts.val[i] = json_number_value(v);
        }
        if (local_minute_of(json_string_value(json_array_get(ts, i)), pts.min ? &pts.min[i] : &(int64_t){0}) != 0) {
            snprintf(ptr, sizeof(ptr), "/timestamps/%zu", i);
            input_error(&in, ptr, "must be an RFC 3339 date-time with offset");
        }
    }
    if (input_done(&in) != 0)
        goto done;
    analyse_and_store(req, res, &pts, 1, 0, "step");
done:
    points_free(&pts);
    json_decref(body);
}

static void h_analyze(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {"data_points", "sampling_rate", "duration_hours", NULL};
    struct points pts = {0};
    json_t *body = input_body_object(req, res);
    if (body == NULL)
        return;
    if (is_app_request(body)) {
        app_analysis(req, res, body);
        json_decref(body);
        return;
    }
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    json_t *dp = json_object_get(body, "data_points"), *sr = json_object_get(body, "sampling_rate");
    json_t *dh = json_object_get(body, "duration_hours");
    size_t n = json_array_size(dp);
    if (!json_is_array(dp) || n < 1 || n > LIMIT_POINTS_MAX)
        input_error(&in, "/data_points", "must be an array of 1 to %d points", LIMIT_POINTS_MAX);
    if (sr != NULL && !json_is_null(sr) && (!json_is_number(sr) || !(json_number_value(sr) > 0)))
        input_error(&in, "/sampling_rate", "must be a positive number");
    if (dh != NULL && !json_is_null(dh) &&
        (!json_is_integer(dh) || json_integer_value(dh) < 1 || json_integer_value(dh) > 168))
        input_error(&in, "/duration_hours", "must be an integer from 1 to 168");
    if (in.c.nerrors == 0 && points_alloc(&pts, n) != 0) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        goto done;
    }
    for (size_t i = 0; in.c.nerrors < 20 && pts.min != NULL && i < n; i++) {
        json_t *pt = json_array_get(dp, i), *v = json_object_get(pt, "value");
        char ptr[64];
        if (!json_is_object(pt)) {
            snprintf(ptr, sizeof(ptr), "/data_points/%zu", i);
            input_error(&in, ptr, "must be an object {timestamp, value}");
            continue;
        }
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1e6) {
            snprintf(ptr, sizeof(ptr), "/data_points/%zu/value", i);
            input_error(&in, ptr, "must be an activity count from 0 to 1000000");
        } else {
            pts.val[i] = json_number_value(v);
        }
        if (local_minute_of(json_string_value(json_object_get(pt, "timestamp")), &pts.min[i]) != 0) {
            snprintf(ptr, sizeof(ptr), "/data_points/%zu/timestamp", i);
            input_error(&in, ptr, "must be an RFC 3339 date-time with offset");
        }
    }
    if (input_done(&in) != 0)
        goto done;
    size_t keep = json_is_integer(dh) ? (size_t)json_integer_value(dh) * 60 : 0;
    analyse_and_store(req, res, &pts, 0, keep, "pat");
done:
    points_free(&pts);
    json_decref(body);
}

static void h_analysis_get(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const char *id = api_id_param(req, "id");
    struct store_tx *tx = NULL;
    struct store_analysis a;
    if (id == NULL || !uuid_is_valid(id)) {
        http_respond_problem(res, 404, "resource-not-found", "No such analysis.");
        return;
    }
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_analysis_get(tx, id, access_owner_scope(req), &a);
    store_tx_rollback(tx);
    if (api_read_outcome(req, res, rc, "analysis.read", "analysis", id, "No such analysis.") != 0)
        return;
    json_t *o = analysis_json(&a);
    store_analysis_clear(&a);
    http_respond_json(res, 200, o);
}

static void h_models_info(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    json_t *models = json_array();
    if (ctx->pat_model != NULL) {
        struct pat_model_info info;
        pat_model_info_get(ctx->pat_model, &info);
        json_array_append_new(
            models, json_pack("{s:s, s:s, s:s?, s:s, s:I, s:I, s:I, s:I, s:I, s:b}", "name", "PAT", "variant",
                              info.variant, "version", ctx->cfg ? ctx->cfg->actigraphy_model_version : NULL, "checksum",
                              info.sha256, "parameters", (json_int_t)info.n_params, "patch_size",
                              (json_int_t)info.patch_size, "layers", (json_int_t)info.n_layers, "heads",
                              (json_int_t)info.n_heads, "size_bytes", (json_int_t)(info.n_params * 4), "loaded", 1));
    }
    json_t *o = json_pack("{s:o, s:b, s:s?}", "models", models, "pat_enabled", ctx->pat_model != NULL, "reason",
                          ctx->pat_model != NULL ? NULL : "no PAT model configured (PAT_MODEL_PATH)");
    http_respond_json(res, 200, o);
}

/* GET /pat/models and /pat/health: the service status the iOS app decodes. */
static void h_service(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    static const char *const caps[] = {"step_analysis", "actigraphy_analysis", "sleep_analysis", "circadian_analysis",
                                       NULL};
    static const char *const caps_pat[] = {"step_analysis",      "actigraphy_analysis", "sleep_analysis",
                                           "circadian_analysis", "pat_embeddings",      NULL};
    int loaded = ctx->pat_model != NULL;
    json_t *data =
        api_service_status(req, "pat", "healthy", loaded ? "PAT" : "clarity-analysis", 1, loaded ? caps_pat : caps);
    json_object_set_new(data, "pat_enabled", json_boolean(loaded));
    if (!loaded)
        json_object_set_new(data, "reason",
                            json_string("no PAT model configured (PAT_MODEL_PATH); the window "
                                        "analysis runs without it"));
    http_respond_json(res, 200, json_pack("{s:b, s:o}", "success", 1, "data", data));
}

int api_pat_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned rd = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    int rc = 0;
    rc |= router_add(r, HTTP_POST, "/api/v1/pat/analyze-step-data", h_analyze_steps, ctx, rd);
    rc |= router_add(r, HTTP_POST, "/api/v1/pat/analyze", h_analyze, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/pat/analysis/{id}", h_analysis_get, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/pat/models/info", h_models_info, ctx, rd);
    /* The iOS app's paths (ios-app.md). */
    rc |= router_add(r, HTTP_POST, "/api/v1/pat/analysis", h_app_analysis, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/pat/results/{id}", h_analysis_get, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/pat/models", h_service, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/pat/health", h_service, ctx, rd);
    return rc != 0 ? -1 : 0;
}
