/*
 * health_data.c — /api/v1/health-data and /api/v1/healthkit (API.md "Health
 * data" and "HealthKit"): uploads, status, listing, one upload, deletion and
 * the streamed export.
 *
 * Every upload is validated completely before anything is written (the
 * formats are ingest/upload.c and ingest/hk_upload.c); then the upload row,
 * its samples, the encrypted body, the analysis job and the audit row commit
 * in one transaction through the ingest session (ingest/session.h), as for
 * every other way data comes in. Reads are scoped to the caller (an admin
 * may read anyone's); someone else's record is a 404.
 */
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/input.h"
#include "api/audit.h"
#include "api/guard.h"
#include "core/buf.h"
#include "core/json_load.h"
#include "core/limits.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "ingest/app_sync.h"
#include "ingest/apple_export.h"
#include "ingest/hk_upload.h"
#include "ingest/session.h"
#include "ingest/upload.h"
#include "store/idempotency.h"
#include "store/recovery.h"
#include "store/store.h"

/* Idempotency-Key (IETF httpapi draft): a retry with the same key and body
 * gets the first reply again; the same key with another body is a 409.
 * Returns 1 when res was answered, 0 to go on (*key set when present). */

/* A body's user_id that names the caller by their external subject
 * (auth_principal_is: the iOS app sends its Firebase uid or Cognito sub) is
 * replaced by the caller's Clarity id before parsing: the ingest layer checks
 * and stamps samples with the Clarity id only. Another id is left as sent,
 * for the ingest layer's 403. */
static void api_body_user_normalise(const struct principal *p, json_t *body)
{
    const char *uid = json_string_value(json_object_get(body, "user_id"));
    if (uid != NULL && strcasecmp(uid, p->user_id) != 0 && auth_principal_is(p, uid))
        json_object_set_new(body, "user_id", json_string(p->user_id));
}

static int idempotency_precheck(struct http_request *req, struct http_response *res, const char **key, char hash[65])
{
    struct api_ctx *ctx = req->route_ctx;
    const char *k = http_request_header(req, "Idempotency-Key");
    *key = NULL;
    if (k == NULL)
        return 0;
    size_t n = strlen(k);
    int ok = n >= 1 && n <= STORE_IDEMPOTENCY_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = k[i] > 0x20 && k[i] < 0x7f;
    if (!ok) {
        struct problem *p = http_respond_problem(res, 400, "bad-request", "Invalid Idempotency-Key header.");
        problem_add_error(p, "/headers/Idempotency-Key", "must be 1 to 255 visible ASCII characters");
        return 1;
    }
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)req->body, req->body_len);
    sodium_bin2hex(hash, 65, d, sizeof(d));
    struct store_tx *tx = NULL;
    struct store_idempotency row;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_idempotency_get(tx, access_principal(req)->user_id, k,
                                   time_now_ms() - STORE_IDEMPOTENCY_RETENTION_MS, &row);
    store_tx_rollback(tx);
    if (rc == STORE_ENOTFOUND) {
        *key = k;
        return 0;
    }
    if (rc != 0) {
        api_store_failure(res, rc);
        return 1;
    }
    if (strcmp(row.request_hash, hash) != 0)
        http_respond_problem(res, 409, "resource-conflict",
                             "This Idempotency-Key was already used with a different request body.");
    else {
        http_respond_bytes(res, row.status, "application/json; charset=utf-8", row.response, strlen(row.response));
        http_response_header(res, "Idempotent-Replayed", "true");
    }
    store_idempotency_clear(&row);
    return 1;
}

/* The rendering of one upload's reply: the adapter's, not the session's. */
typedef int (*reply_fn)(const void *ctx, const struct ingest_result *r, int *status, char **body);

/*
 * Store the samples through an ingest session and answer with the reply the
 * adapter renders. With an Idempotency-Key the reply is rendered before the
 * commit and stored in the same transaction, so a retry gets exactly it.
 */
static void ingest_and_reply(struct http_request *req, struct http_response *res, const struct ingest_origin *o,
                             struct upload_samples *samples, reply_fn reply, const void *reply_ctx)
{
    struct api_ctx *ctx = req->route_ctx;
    struct ingest_session *s = NULL;
    struct ingest_result r;
    const char *key = NULL;
    char hash[65] = "";
    char *body = NULL;
    int status = 0;
    if (idempotency_precheck(req, res, &key, hash) != 0)
        return;
    int rc = ingest_session_begin(ctx->store, ctx->ring, o, INGEST_ATOMIC, &s);
    if (rc == 0)
        rc = ingest_session_add(s, samples->v, samples->n, 0, 0, NULL);
    if (rc == 0)
        rc = ingest_session_seal_raw(s, "application/json", req->body, req->body_len);
    if (rc == 0) {
        ingest_session_result(s, &r);
        if (reply(reply_ctx, &r, &status, &body) != 0)
            rc = INGEST_ENOMEM;
    }
    if (rc == 0) {
        struct ingest_idempotency idem = {key, hash, status, body};
        rc = ingest_session_commit(s, key != NULL ? &idem : NULL, &r);
    }
    ingest_session_end(s, NULL);
    if (rc == STORE_ECONFLICT && key != NULL) {
        /* A concurrent request with the same key won: answer as it did. */
        free(body);
        if (idempotency_precheck(req, res, &key, hash) == 0)
            http_respond_problem(res, 409, "resource-conflict", "A request with this Idempotency-Key is in progress.");
        return;
    }
    if (rc != 0) {
        free(body);
        api_store_failure(res, rc);
        return;
    }
    http_respond_bytes(res, status, "application/json; charset=utf-8", body, strlen(body));
    free(body);
    char loc[128];
    snprintf(loc, sizeof(loc), "%s%s", status == 201 ? "/api/v1/health-data/processing/" : "/api/v1/healthkit/status/",
             r.upload_id);
    http_response_header(res, "Location", loc);
}

static int dump_reply(json_t *o, int status_in, int *status, char **body)
{
    *body = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    json_decref(o);
    *status = status_in;
    return *body != NULL ? 0 : -1;
}

/* The 201 of a HealthDataUpload. */
static int upload_reply(const void *cbctx, const struct ingest_result *out, int *status, char **body)
{
    size_t nmetrics = *(const size_t *)cbctx;
    /* json_pack fails as a whole when any member cannot be made (out of
     * memory), so a 201 never goes out without its processing_id: the
     * session then fails and nothing is committed (fault injection). */
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:[], s:I, s:I, s:s, s:o}", "processing_id", out->upload_id, "status",
                          "received", "accepted_metrics", (json_int_t)nmetrics, "rejected_metrics", (json_int_t)0,
                          "validation_errors", "samples_stored", (json_int_t)out->stored, "duplicates_skipped",
                          (json_int_t)out->duplicates, "message", "Upload stored and queued for analysis.", "timestamp",
                          api_time_json(out->created_ms));
    if (o == NULL)
        return -1;
    return dump_reply(o, 201, status, body);
}

static void h_upload(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct upload_samples samples = {0};
    struct json_arena *arena = NULL;
    json_t *body = input_body_object_arena(req, res, &arena);
    if (body == NULL)
        return;
    struct input in;
    input_init(&in, res);
    const char *source = NULL, *sync = NULL;
    int64_t client_ts = 0;
    api_body_user_normalise(p, body);
    int rc = upload_parse_health_data(body, p->user_id, ctx->max_metrics, &in.c, &samples, &source, &sync, &client_ts);
    if (rc == 0)
        rc = upload_samples_complete(&samples);
    if (rc == INGEST_EOWNER || rc == INGEST_ENOMEM) {
        api_store_failure(res, rc);
        goto done;
    }
    if (rc != 0) {
        input_done(&in);
        goto done;
    }
    size_t nmetrics = json_array_size(json_object_get(body, "metrics"));
    struct ingest_origin o = {.user_id = p->user_id,
                              .source = source,
                              .sync_token = sync,
                              .client_ts_ms = client_ts,
                              .total_metrics = samples.n,
                              .audit_action = "health_data.create",
                              .request_id = req->request_id,
                              .client_ip = req->client_ip};
    ingest_and_reply(req, res, &o, &samples, upload_reply, &nmetrics);
done:
    upload_samples_free(&samples);
    json_arena_release(body, arena);
}

/* ---- native HealthKit ---------------------------------------------------- */

struct hk_reply_ctx {
    struct hk_upload_counts counts;
    json_t *unsupported;
};

/* The 202 of a native HealthKit upload. */
static int hk_reply(const void *cbctx, const struct ingest_result *out, int *status, char **body)
{
    const struct hk_reply_ctx *c = cbctx;
    const struct hk_upload_counts *n = &c->counts;
    json_t *o = json_object();
    json_object_set_new(o, "upload_id", json_string(out->upload_id));
    json_object_set_new(o, "status", json_string("queued"));
    json_object_set_new(o, "queued_at", api_time_json(out->created_ms));
    json_object_set_new(o, "samples_received",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "quantity_samples", (json_int_t)n->quantity,
                                  "category_samples", (json_int_t)n->category, "workouts", (json_int_t)n->workouts,
                                  "correlation_samples", (json_int_t)n->correlations, "total", (json_int_t)n->total));
    json_object_set_new(o, "samples_stored", json_integer((json_int_t)out->stored));
    json_object_set_new(o, "duplicates_skipped", json_integer((json_int_t)out->duplicates));
    json_object_set(o, "unsupported", c->unsupported);
    return dump_reply(o, 202, status, body);
}

static void h_healthkit_upload(struct http_request *req, struct http_response *res)
{
    const struct principal *p = access_principal(req);
    struct upload_samples samples = {0};
    struct hk_reply_ctx rctx;
    const char *sync = NULL;
    rctx.unsupported = json_array();
    struct json_arena *arena = NULL;
    json_t *body = input_body_object_arena(req, res, &arena);
    if (body == NULL)
        goto done;
    struct input in;
    input_init(&in, res);
    api_body_user_normalise(p, body);
    int rc = hk_upload_parse(body, p->user_id, &in.c, &samples, rctx.unsupported, &rctx.counts, &sync);
    if (rc == 0)
        rc = upload_samples_complete(&samples);
    if (rc == INGEST_EOWNER || rc == INGEST_ENOMEM) {
        api_store_failure(res, rc);
        goto done;
    }
    if (rc != 0) {
        input_done(&in);
        goto done;
    }
    size_t rejected = json_array_size(rctx.unsupported);
    struct ingest_origin o = {.user_id = p->user_id,
                              .source = "healthkit",
                              .sync_token = sync,
                              .total_metrics = samples.n + rejected,
                              .rejected = rejected,
                              .audit_action = "health_data.create",
                              .request_id = req->request_id,
                              .client_ip = req->client_ip};
    ingest_and_reply(req, res, &o, &samples, hk_reply, &rctx);
done:
    json_decref(rctx.unsupported);
    upload_samples_free(&samples);
    json_arena_release(body, arena);
}

/* ---- the iOS app's sync: POST /api/v1/healthkit ----------------------------- */

struct app_reply_ctx {
    size_t unsupported;
    json_t *errors; /* [String]: samples reported, not stored */
};

/* The 202 the app decodes: {success, upload_id, processed_samples,
 * skipped_samples, errors?, message?}. processed = newly stored; skipped =
 * already stored (a re-sent window) plus unsupported samples. */
static int app_reply(const void *cbctx, const struct ingest_result *out, int *status, char **body)
{
    const struct app_reply_ctx *c = cbctx;
    json_t *o = json_object();
    char msg[160];
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "upload_id", json_string(out->upload_id));
    json_object_set_new(o, "processed_samples", json_integer((json_int_t)out->stored));
    json_object_set_new(o, "skipped_samples", json_integer((json_int_t)(out->duplicates + c->unsupported)));
    if (json_array_size(c->errors) > 0)
        json_object_set(o, "errors", c->errors);
    snprintf(msg, sizeof(msg), "Stored %zu new sample%s; %zu already stored%s. Queued for analysis.", out->stored,
             out->stored == 1 ? "" : "s", out->duplicates, c->unsupported > 0 ? "; some not supported" : "");
    json_object_set_new(o, "message", json_string(msg));
    json_object_set_new(o, "status", json_string("queued"));
    json_object_set_new(o, "timestamp", api_time_json(out->created_ms));
    return dump_reply(o, 202, status, body);
}

static void h_app_sync_upload(struct http_request *req, struct http_response *res)
{
    const struct principal *p = access_principal(req);
    struct upload_samples samples = {0};
    json_t *errors = json_array();
    struct json_arena *arena = NULL;
    json_t *body = input_body_object_arena(req, res, &arena);
    if (body == NULL)
        goto done;
    struct input in;
    input_init(&in, res);
    struct app_reply_ctx rctx = {0, errors};
    int64_t ts = 0;
    api_body_user_normalise(p, body);
    int rc = app_sync_parse(body, p->user_id, &in.c, &samples, errors, &rctx.unsupported, &ts);
    if (rc == 0)
        rc = upload_samples_complete(&samples);
    if (rc == INGEST_EINVALID) {
        input_done(&in);
        goto done;
    }
    if (rc != 0) {
        api_store_failure(res, rc); /* 403 for another user, else the server's failure */
        goto done;
    }
    /* Stored through the ingest session like every other door: the
     * uploads row, the samples, the sealed body, the analysis job and the
     * audit row in one transaction (ingest/session.h). */
    struct ingest_origin o = {.user_id = p->user_id,
                              .source = "healthkit",
                              .client_ts_ms = ts,
                              .total_metrics = samples.n + rctx.unsupported,
                              .rejected = rctx.unsupported,
                              .audit_action = "health_data.create",
                              .request_id = req->request_id,
                              .client_ip = req->client_ip};
    ingest_and_reply(req, res, &o, &samples, app_reply, &rctx);
done:
    json_decref(errors);
    upload_samples_free(&samples);
    json_arena_release(body, arena);
}

/* POST /api/v1/healthkit/sync. Clarity cannot pull from HealthKit: the app
 * pushes its samples (POST /api/v1/healthkit). A "sync" here therefore
 * starts nothing; it names the caller's newest upload as the sync, whose
 * status is what GET /healthkit/sync/{sync_id} reports (the nil UUID when
 * nothing was received yet). docs/api.md "HealthKit sync". */
#define APP_NO_SYNC "00000000-0000-0000-0000-000000000000"

static void h_app_sync_start(struct http_request *req, struct http_response *res)
{
    static const char *const allowed[] = {"user_id", "start_date", "end_date", "data_types", "force_refresh", NULL};
    struct api_ctx *ctx = req->route_ctx;
    json_t *body = input_body_object(req, res);
    struct store_upload *v = NULL;
    size_t n = 0;
    if (body == NULL)
        return;
    if (api_body_user_check(req, res, body) != 0)
        goto done;
    struct input in;
    input_init(&in, res);
    input_only(&in, body, "", allowed);
    static const char *const dates[] = {"start_date", "end_date"};
    for (int k = 0; k < 2; k++) {
        json_t *d = json_object_get(body, dates[k]);
        int64_t ms;
        char ptr[32];
        snprintf(ptr, sizeof(ptr), "/%s", dates[k]);
        if (d != NULL && !json_is_null(d) &&
            (!json_is_string(d) || time_parse_rfc3339(json_string_value(d), &ms, NULL) != 0))
            input_error(&in, ptr, "must be an RFC 3339 date-time, e.g. 2025-06-24T10:00:00Z");
    }
    json_t *dt = json_object_get(body, "data_types");
    if (dt != NULL && !json_is_null(dt)) {
        size_t i;
        json_t *x;
        int ok = json_is_array(dt) && json_array_size(dt) <= 64;
        json_array_foreach (dt, i, x)
            ok = ok && json_is_string(x);
        if (!ok)
            input_error(&in, "/data_types", "must be an array of at most 64 strings");
    }
    input_bool(&in, body, "", "force_refresh", 0, 0);
    if (input_done(&in) != 0)
        goto done;
    struct store_tx *tx = NULL;
    struct store_cursor after, next;
    memset(&after, 0, sizeof(after));
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_upload_list(tx, access_principal(req)->user_id, &after, 1, &v, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        goto done;
    }
    json_t *o = json_object();
    json_object_set_new(o, "success", json_true());
    json_object_set_new(o, "sync_id", json_string(n > 0 ? v[0].id : APP_NO_SYNC));
    json_object_set_new(o, "status", json_string(n > 0 ? store_upload_status_name(v[0].status) : "completed"));
    json_object_set_new(o, "estimated_duration", json_real(0));
    json_object_set_new(o, "message",
                        json_string("Clarity cannot pull from HealthKit: the app sends its samples with POST "
                                    "/api/v1/healthkit. This sync is your newest upload; nothing new was started."));
    http_respond_json(res, 200, o);
done:
    free(v);
    json_decref(body);
}

/* ---- reads --------------------------------------------------------------- */

static void status_of(struct http_request *req, struct http_response *res, const char *param, const char *id_name)
{
    struct api_ctx *ctx = req->route_ctx;
    const char *id = api_id_param(req, param);
    struct store_tx *tx = NULL;
    struct store_upload u;
    if (id == NULL || !uuid_is_valid(id)) {
        http_respond_problem(res, 404, "resource-not-found", "No such upload.");
        return;
    }
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_upload_get(tx, id, access_owner_scope(req), &u);
    store_tx_rollback(tx);
    if (api_read_outcome(req, res, rc, "health_data.status", "upload", id, "No such upload.") != 0)
        return;
    http_respond_json(res, 200, api_upload_status_json(&u, id_name));
}

static void h_processing(struct http_request *req, struct http_response *res)
{
    status_of(req, res, "processing_id", "processing_id");
}

static void h_healthkit_status(struct http_request *req, struct http_response *res)
{
    status_of(req, res, "upload_id", "upload_id");
}

static void h_app_sync_status(struct http_request *req, struct http_response *res)
{
    const char *id = api_id_param(req, "sync_id");
    if (id != NULL && strcmp(id, APP_NO_SYNC) == 0) {
        /* No upload yet: nothing is pending. */
        json_t *o =
            json_pack("{s:s, s:s, s:f, s:i, s:i, s:[], s:s}", "sync_id", APP_NO_SYNC, "status", "completed", "progress",
                      1.0, "processed_samples", 0, "total_samples", 0, "errors", "message", "No samples received yet.");
        http_respond_json(res, 200, o);
        return;
    }
    status_of(req, res, "sync_id", "sync_id");
}

static json_t *sample_json(const struct store_sample *s)
{
    json_t *o = json_object();
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)s->id);
    json_object_set_new(o, "id", json_string(id));
    /* metric_id (a UUID, as the iOS app decodes it): the client's metric_id
     * or HealthKit uuid when the sample has one, the content key of an
     * import or app sync, else one made from the row id. */
    char mid[40];
    if (strlen(s->hk_uuid) >= 36 && s->hk_uuid[36] != '\0' && s->hk_uuid[36] != ':')
        mid[0] = '\0';
    else
        snprintf(mid, sizeof(mid), "%.36s", s->hk_uuid);
    if (!uuid_is_valid(mid))
        snprintf(mid, sizeof(mid), "00000000-0000-8000-8000-%012llx", (unsigned long long)s->id & 0xffffffffffffULL);
    api_id_lower(mid);
    json_object_set_new(o, "metric_id", json_string(mid));
    json_object_set_new(o, "metric_type", json_string(s->metric_type));
    /* When the measurement was taken: samples keep no separate creation time. */
    json_object_set_new(o, "created_at", api_time_json(s->start_ms));
    json_object_set_new(o, "value", isfinite(s->value) ? json_real(s->value) : json_null());
    if (isfinite(s->value2))
        json_object_set_new(o, "value2", json_real(s->value2));
    json_object_set_new(o, "unit", json_string(s->unit));
    json_object_set_new(o, "start_date", api_sample_time_json(s->start_ms));
    json_object_set_new(o, "end_date", api_sample_time_json(s->end_ms));
    json_object_set_new(o, "source", json_string(s->source));
    json_object_set_new(o, "device", json_string(s->device));
    json_object_set_new(o, "upload_id", s->upload_id[0] ? json_string(s->upload_id) : json_null());
    if (s->hk_uuid[0] != '\0' && strncmp(s->hk_uuid, "h:", 2) != 0)
        json_object_set_new(o, "uuid", json_string(s->hk_uuid));
    json_error_t je;
    json_t *pl = s->payload != NULL ? json_parse_str(s->payload, 0, &je) : NULL;
    if (pl != NULL)
        json_object_set_new(o, "data", pl);
    return o;
}

/* Filters of GET /health-data and /export into q; 422 on a bad one. */
static int sample_filters(struct http_request *req, struct http_response *res, struct store_sample_query *q,
                          char *extra, size_t extralen)
{
    memset(q, 0, sizeof(*q));
    q->user_id = access_principal(req)->user_id;
    q->start_ms = INT64_MIN;
    q->end_ms = INT64_MAX;
    q->metric_type = http_request_query(req, "data_type");
    q->source = http_request_query(req, "source");
    const char *sd = http_request_query(req, "start_date"), *ed = http_request_query(req, "end_date");
    struct problem *p = NULL;
    if (sd != NULL && time_parse_rfc3339(sd, &q->start_ms, NULL) != 0) {
        p = http_respond_problem(res, 422, "validation-error", "Invalid filter.");
        problem_add_error(p, "/query/start_date", "must be an RFC 3339 date-time with offset");
    }
    if (ed != NULL && time_parse_rfc3339(ed, &q->end_ms, NULL) != 0) {
        if (p == NULL)
            p = http_respond_problem(res, 422, "validation-error", "Invalid filter.");
        problem_add_error(p, "/query/end_date", "must be an RFC 3339 date-time with offset");
    }
    if ((q->metric_type != NULL && strlen(q->metric_type) > 47) || (q->source != NULL && strlen(q->source) > 127)) {
        if (p == NULL)
            p = http_respond_problem(res, 422, "validation-error", "Invalid filter.");
        problem_add_error(p, "/query", "data_type or source is too long");
    }
    if (p != NULL)
        return -1;
    /* Carry the filters into links.next (values are URL-safe as validated
     * or are echoed back as given by the client). */
    size_t o = 0;
    const char *names[] = {"data_type", "source", "start_date", "end_date"};
    for (int i = 0; i < 4 && extra != NULL; i++) {
        const char *v = http_request_query(req, names[i]);
        if (v == NULL)
            continue;
        int w = snprintf(extra + o, extralen - o, "%s%s=", o ? "&" : "", names[i]);
        if (w < 0 || (size_t)w >= extralen - o)
            break;
        o += (size_t)w;
        for (const char *c = v; *c && o + 4 < extralen; c++) {
            if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
                *c == '_' || *c == '.' || *c == ':')
                extra[o++] = *c;
            else
                o += (size_t)snprintf(extra + o, extralen - o, "%%%02X", (unsigned char)*c);
        }
        extra[o] = '\0';
    }
    return 0;
}

static void h_list(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_sample_query q;
    char extra[512] = "";
    size_t limit;
    struct store_cursor after, next;
    if (sample_filters(req, res, &q, extra, sizeof(extra)) != 0 || api_page_params(req, res, 100, &limit, &after) != 0)
        return;
    q.after = after;
    q.limit = limit;
    struct store_tx *tx = NULL;
    struct store_sample *rows = NULL;
    size_t n = 0;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_sample_list(tx, &q, &rows, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    audit_record(ctx->store, NULL, req, NULL, "health_data.read", "samples", "", "success");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, sample_json(&rows[i]));
    store_sample_list_free(rows, n);
    json_t *o = json_object();
    json_object_set_new(o, "data", items);
    api_page_links(o, req, n, limit, &next, extra);
    http_respond_json(res, 200, o);
}

static void h_get(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const char *id = api_id_param(req, "id");
    if (id == NULL || !uuid_is_valid(id)) {
        http_respond_problem(res, 404, "resource-not-found", "No such upload.");
        return;
    }
    struct store_tx *tx = NULL;
    struct store_upload u;
    struct store_sample *rows = NULL;
    size_t n = 0;
    struct store_cursor next;
    int rc = store_tx_begin(ctx->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_upload_get(tx, id, access_owner_scope(req), &u);
    if (rc == 0) {
        struct store_sample_query q;
        memset(&q, 0, sizeof(q));
        q.user_id = u.user_id;
        q.upload_id = u.id;
        q.start_ms = INT64_MIN;
        q.end_ms = INT64_MAX;
        q.ascending = 1;
        q.limit = STORE_PAGE_MAX;
        rc = store_sample_list(tx, &q, &rows, &n, &next);
    }
    store_tx_rollback(tx);
    if (api_read_outcome(req, res, rc, "health_data.read", "upload", id, "No such upload.") != 0)
        return;
    json_t *o = api_upload_status_json(&u, "processing_id");
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, sample_json(&rows[i]));
    store_sample_list_free(rows, n);
    json_object_set_new(o, "metrics", items);
    json_object_set_new(o, "metrics_truncated", json_boolean(next.set));
    http_respond_json(res, 200, o);
}

static void h_delete(struct http_request *req, struct http_response *res)
{
    const char *id = api_id_param(req, "id");
    if (id == NULL || !uuid_is_valid(id)) {
        http_respond_problem(res, 404, "resource-not-found", "No such upload.");
        return;
    }
    /* Only the owner deletes (an admin reads, never erases others' data). */
    api_delete_audited(req, res, store_upload_delete, id, access_principal(req)->user_id, "health_data.delete",
                       "upload", "processing_id", "No such upload.");
}

/* ---- export: keyset pages of samples, streamed as NDJSON or CSV ------------ */

struct export_state {
    struct store *store;
    struct store_sample_query q;
    char user_id[STORE_ID_LEN];
    char metric_type[48], source[128];
    int csv, header_done, finished;
    struct buf pending; /* rendered rows not yet handed out */
    size_t off;
};

static void csv_field(struct buf *b, const char *s)
{
    /* RFC 4180: quote fields with separators, quotes or line breaks; a
     * leading =,+,-,@, tab or carriage return is prefixed with ' so
     * spreadsheets do not run it (OWASP "CSV Injection": a leading tab or CR
     * is skipped by some spreadsheets, which then read the formula after
     * it; #16.9). */
    int quote = strpbrk(s, ",\"\r\n\t") != NULL;
    if (quote)
        buf_putc(b, '"');
    if (*s == '=' || *s == '+' || *s == '-' || *s == '@' || *s == '\t' || *s == '\r')
        buf_putc(b, '\'');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    if (quote)
        buf_putc(b, '"');
}

static int export_page(struct export_state *st)
{
    struct store_tx *tx = NULL;
    struct store_sample *rows = NULL;
    size_t n = 0;
    struct store_cursor next;
    int lost = 0;
    st->q.limit = 500;
    int rc = store_tx_begin(st->store, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_sample_list(tx, &st->q, &rows, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0)
        return -1;
    buf_reset(&st->pending);
    st->off = 0;
    if (st->csv && !st->header_done) {
        buf_puts(&st->pending, "id,metric_type,value,value2,unit,start_date,end_date,source,device,upload_id\r\n");
        st->header_done = 1;
    }
    for (size_t i = 0; i < n; i++) {
        const struct store_sample *s = &rows[i];
        if (st->csv) {
            char a[40], b[40];
            buf_printf(&st->pending, "%lld,", (long long)s->id);
            csv_field(&st->pending, s->metric_type);
            if (isfinite(s->value))
                buf_printf(&st->pending, ",%.17g,", s->value);
            else
                buf_puts(&st->pending, ",,");
            if (isfinite(s->value2))
                buf_printf(&st->pending, "%.17g", s->value2);
            buf_putc(&st->pending, ',');
            csv_field(&st->pending, s->unit);
            buf_printf(&st->pending, ",%s,%s,", time_format_rfc3339_ms(s->start_ms, a, sizeof(a)),
                       time_format_rfc3339_ms(s->end_ms, b, sizeof(b)));
            csv_field(&st->pending, s->source);
            buf_putc(&st->pending, ',');
            csv_field(&st->pending, s->device);
            buf_printf(&st->pending, ",%s\r\n", s->upload_id);
        } else {
            /* A row whose JSON lost a member (or all of it) for want of
             * memory fails the page: the export is cut, never silently
             * short of a row or a field (#16). */
            unsigned long failures = json_load_failures();
            json_t *o = sample_json(s);
            char *line = json_dumps(o, JSON_COMPACT);
            json_decref(o);
            if (line == NULL || json_load_failures() != failures)
                lost = 1;
            else {
                buf_puts(&st->pending, line);
                buf_putc(&st->pending, '\n');
            }
            free(line);
        }
    }
    store_sample_list_free(rows, n);
    if (st->pending.truncated || lost)
        return -1;
    if (next.set)
        st->q.after = next;
    else
        st->finished = 1;
    return 0;
}

static long export_read(void *ctx, char *out, size_t max)
{
    struct export_state *st = ctx;
    while (st->off >= st->pending.len) {
        if (st->finished)
            return -1;
        if (export_page(st) != 0)
            return -2; /* the connection is cut: a truncated export never looks complete */
    }
    size_t n = st->pending.len - st->off;
    if (n > max)
        n = max;
    memcpy(out, st->pending.data + st->off, n);
    st->off += n;
    return (long)n;
}

static void export_free(void *ctx)
{
    struct export_state *st = ctx;
    buf_free(&st->pending);
    free(st);
}

static void h_export(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    struct store_sample_query q;
    if (sample_filters(req, res, &q, NULL, 0) != 0)
        return;
    struct export_state *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        api_store_failure(res, STORE_ENOMEM); /* 503 + Retry-After: the server's, and passing (#16) */
        return;
    }
    st->store = ctx->store;
    st->q = q;
    st->q.ascending = 1;
    /* The query's strings live in the request; the stream outlives it. */
    snprintf(st->user_id, sizeof(st->user_id), "%s", q.user_id);
    st->q.user_id = st->user_id;
    if (q.metric_type != NULL) {
        snprintf(st->metric_type, sizeof(st->metric_type), "%s", q.metric_type);
        st->q.metric_type = st->metric_type;
    }
    if (q.source != NULL) {
        snprintf(st->source, sizeof(st->source), "%s", q.source);
        st->q.source = st->source;
    }
    buf_init(&st->pending, 16u << 20);
    const char *accept = http_request_header(req, "Accept");
    st->csv = accept != NULL && strstr(accept, "text/csv") != NULL;
    audit_record(ctx->store, NULL, req, NULL, "health_data.export", "samples", "", "success");
    http_respond_stream(res, 200, st->csv ? "text/csv; charset=utf-8" : "application/x-ndjson", export_read, st,
                        export_free);
    http_response_header(res, "Content-Disposition",
                         st->csv ? "attachment; filename=\"clarity-export.csv\""
                                 : "attachment; filename=\"clarity-export.ndjson\"");
}

/* ---- Apple Health export import: the body is streamed into the parser ---- */

struct import_state {
    struct api_ctx *ctx;
    struct apple_export *parser;
    struct ingest_session *session;
    int store_rc;       /* the storage failure that stopped the import, if any */
    int64_t touched_ms; /* last write of the upload row: its lease (store/recovery.h) */
};

/* One batch of samples: the session commits it with the upload's progress. */
static int import_batch(void *cbctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                        size_t *stored)
{
    struct import_state *st = cbctx;
    double progress = so_far->bytes_total > 0 ? (double)so_far->bytes_parsed / (double)so_far->bytes_total : 0;
    st->store_rc = ingest_session_add(st->session, v, n, progress, so_far->records, stored);
    if (st->store_rc == 0)
        st->touched_ms = time_now_ms();
    return st->store_rc;
}

static void import_begin(struct http_request *req, struct http_response *res, void **state)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct import_state *st = calloc(1, sizeof(*st));
    *state = st;
    if (st == NULL) {
        api_store_failure(res, INGEST_ENOMEM);
        return;
    }
    st->ctx = ctx;
    const char *ct = http_request_header(req, "Content-Type");
    if (ct == NULL || (strncasecmp(ct, "application/xml", 15) != 0 && strncasecmp(ct, "text/xml", 8) != 0 &&
                       strncasecmp(ct, "application/zip", 15) != 0)) {
        http_respond_problem(res, 415, "unsupported-media-type",
                             "Send export.xml as application/xml or export.zip as application/zip.");
        return;
    }
    struct ingest_origin o = {.user_id = p->user_id,
                              .source = "apple_health_export",
                              .audit_action = "health_data.import",
                              .request_id = req->request_id,
                              .client_ip = req->client_ip};
    int rc = ingest_session_begin(ctx->store, ctx->ring, &o, INGEST_STREAMED, &st->session);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    st->touched_ms = time_now_ms();
    const char *cl = http_request_header(req, "Content-Length");
    struct apple_export_options eo = {
        .user_id = p->user_id,
        .upload_id = ingest_session_upload_id(st->session),
        .size_hint = cl != NULL && strncasecmp(ct, "application/zip", 15) != 0 ? strtoll(cl, NULL, 10) : 0,
        .on_batch = import_batch,
        .ctx = st,
        .stop = ctx->stop};
    rc = apple_export_new(&eo, &st->parser);
    if (rc != 0)
        api_store_failure(res, rc);
}

static void import_refuse(struct import_state *st, struct http_response *res, int rc)
{
    if (rc == APPLE_EXPORT_ECALLBACK && st->store_rc != 0) {
        api_store_failure(res, st->store_rc);
        return;
    }
    if (rc == APPLE_EXPORT_EFORMAT) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "The export could not be read.");
        problem_add_error(p, "", "%s", apple_export_errmsg(st->parser));
        return;
    }
    if (rc == APPLE_EXPORT_ESTOPPED) {
        http_respond_problem(res, 503, "service-unavailable", "The server is shutting down; send the export again.");
        return;
    }
    /* APPLE_EXPORT_ENOMEM: 503, the server's, not a bad export (#16). */
    log_warning("import failed", LOG_STR, "error", clarity_strerror(rc), LOG_END);
    api_store_failure(res, rc);
}

static int import_chunk(void *state, const char *data, size_t len, struct http_response *res)
{
    struct import_state *st = state;
    int rc = apple_export_feed(st->parser, data, len);
    if (rc != 0) {
        import_refuse(st, res, rc);
        return rc;
    }
    /* A zip spools without batches: keep the import's lease alive so that
     * the stale-import sweep leaves it alone (store/recovery.h). */
    int64_t now = time_now_ms();
    if (now - st->touched_ms >= STORE_IMPORT_TOUCH_MS) {
        /* No samples: the session only writes the upload's progress. */
        rc = ingest_session_add(st->session, NULL, 0, 0, 0, NULL);
        if (rc != 0) {
            st->store_rc = rc;
            api_store_failure(res, rc);
            return rc;
        }
        st->touched_ms = now;
    }
    return 0;
}

static void import_finish(void *state, struct http_request *req, struct http_response *res)
{
    struct import_state *st = state;
    struct ingest_result r;
    int rc = apple_export_finish(st->parser);
    if (rc != 0) {
        import_refuse(st, res, rc);
        return;
    }
    /* The samples are in; the session queues the analysis with the upload's
     * status, in one transaction, as for every other way data comes in. */
    rc = ingest_session_commit(st->session, NULL, &r);
    if (rc != 0) {
        api_store_failure(res, rc);
        return;
    }
    json_t *o = json_object();
    json_object_set_new(o, "upload_id", json_string(r.upload_id));
    json_object_set_new(o, "status", json_string("queued"));
    json_object_set_new(o, "queued_at", api_time_json(time_now_ms()));
    json_object_set_new(o, "import", apple_export_report_json(st->parser));
    char loc[128];
    snprintf(loc, sizeof(loc), "/api/v1/healthkit/status/%s", r.upload_id);
    http_respond_json(res, 202, o);
    http_response_header(res, "Location", loc);
}

/* An import that did not finish leaves its upload marked failed, with the
 * samples stored so far (each batch committed on its own): the session's end. */
static void import_release(void *state)
{
    struct import_state *st = state;
    if (st == NULL)
        return;
    ingest_session_end(st->session, st->parser != NULL ? apple_export_errmsg(st->parser) : NULL);
    apple_export_free(st->parser);
    free(st);
}

static struct http_body_ops import_ops = {import_begin, import_chunk, import_finish, import_release, 0};

int api_health_data_register(struct router *r, struct api_ctx *ctx)
{
    const unsigned up = GUARD_AUTH | GUARD_RATE(GUARD_RATE_UPLOAD);
    const unsigned rd = GUARD_AUTH | GUARD_RATE(GUARD_RATE_API);
    int rc = 0;
    rc |= router_add(r, HTTP_POST, "/api/v1/health-data/upload", h_upload, ctx, up);
    rc |= router_add(r, HTTP_GET, "/api/v1/health-data/processing/{processing_id}", h_processing, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/health-data", h_list, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/health-data/export", h_export, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/health-data/{id}", h_get, ctx, rd);
    rc |= router_add(r, HTTP_DELETE, "/api/v1/health-data/{id}", h_delete, ctx, rd);
    rc |= router_add(r, HTTP_POST, "/api/v1/healthkit/upload", h_healthkit_upload, ctx, up);
    rc |= router_add(r, HTTP_GET, "/api/v1/healthkit/status/{upload_id}", h_healthkit_status, ctx, rd);
    /* The iOS app's sync (ios-app.md): its upload, the older build's status
     * path, and the two sync calls. */
    rc |= router_add(r, HTTP_POST, "/api/v1/healthkit", h_app_sync_upload, ctx, up);
    rc |= router_add(r, HTTP_GET, "/api/v1/health-data/upload/{upload_id}/status", h_healthkit_status, ctx, rd);
    rc |= router_add(r, HTTP_POST, "/api/v1/healthkit/sync", h_app_sync_start, ctx, rd);
    rc |= router_add(r, HTTP_GET, "/api/v1/healthkit/sync/{sync_id}", h_app_sync_status, ctx, rd);
    import_ops.max_bytes = ctx->cfg != NULL ? (size_t)ctx->cfg->max_import_bytes : 0;
    rc |= router_add_streaming(r, HTTP_POST, "/api/v1/healthkit/import", &import_ops, ctx, up);
    return rc != 0 ? -1 : 0;
}
