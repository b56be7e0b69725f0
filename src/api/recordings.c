/*
 * recordings.c — POST /api/v1/recordings (issue #20): a research actigraphy
 * recording (Actiwatch .AWD, Actiware/ActTrust/ActiLife/MotionWatch exports,
 * a timestamp,value CSV) as the body; its epochs become activity_count
 * samples of one upload, analysed like any other (docs/api.md "Research
 * recordings").
 *
 * The body is buffered (at most LIMIT_RECORDING_BYTES, or MAX_IMPORT_BYTES
 * when lower), read with the readers `clarity analyze` uses
 * (ingest/recording.h), and only a recording that reads completely opens an
 * ingest session, streamed as an Apple Health import is: the upload row
 * ("processing", with progress), the samples in batches of their own, then
 * the analysis job and the audit row with the status "received". A bad file
 * stores nothing; a 2xx means durable; a failure while storing leaves the
 * upload "failed" with the batches stored so far (a new upload of the file
 * adds only what is missing). Status, listing, export and deletion are
 * the uploads' routes (api/health_data.c, api/views.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analysis/analysis_json.h"
#include "api/api.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/timeutil.h"
#include "ingest/recording.h"
#include "ingest/session.h"
#include "ingest/upload.h"

struct rec_state {
    struct api_ctx *ctx;
    struct buf body;
    char name[256];
    unsigned epoch_s;
    int32_t tz_offset_min;
    int refused; /* begin answered: nothing more to do */
};

/* An integer query parameter in [lo, hi]; 0 when absent (*v untouched),
 * 1 when set, -1 after answering 422 at /query/name. */
static int query_int(struct http_request *req, struct http_response *res, const char *name, long lo, long hi, long *v)
{
    const char *s = http_request_query(req, name);
    if (s == NULL)
        return 0;
    char *end = NULL;
    long x = 0;
    int ok = (s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')) && strlen(s) <= 6;
    if (ok)
        x = strtol(s, &end, 10);
    if (!ok || end == s || *end != '\0' || x < lo || x > hi) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "Invalid query parameter %s.", name);
        char ptr[64];
        snprintf(ptr, sizeof(ptr), "/query/%s", name);
        problem_add_error(p, ptr, "must be an integer from %ld to %ld", lo, hi);
        return -1;
    }
    *v = x;
    return 1;
}

static size_t rec_max_bytes(const struct api_ctx *ctx)
{
    size_t m = LIMIT_RECORDING_BYTES;
    if (ctx->cfg != NULL && ctx->cfg->max_import_bytes > 0 && ctx->cfg->max_import_bytes < m)
        m = ctx->cfg->max_import_bytes;
    return m;
}

static void rec_begin(struct http_request *req, struct http_response *res, void **state)
{
    struct api_ctx *ctx = req->route_ctx;
    struct rec_state *st = calloc(1, sizeof(*st));
    *state = st;
    if (st == NULL) {
        api_store_failure(res, INGEST_ENOMEM);
        return;
    }
    st->ctx = ctx;
    st->refused = 1;
    const char *ct = http_request_header(req, "Content-Type");
    if (ct != NULL && (strncasecmp(ct, "application/zip", 15) == 0 || strncasecmp(ct, "application/json", 16) == 0 ||
                       strncasecmp(ct, "multipart/", 10) == 0)) {
        http_respond_problem(res, 415, "unsupported-media-type",
                             "Send the recording file itself as the body (text/csv, text/plain or "
                             "application/octet-stream); Apple Health exports go to /api/v1/healthkit/import.");
        return;
    }
    const char *name = http_request_query(req, "name");
    if (name != NULL && (name[0] == '\0' || strlen(name) >= sizeof(st->name))) {
        struct problem *p = http_respond_problem(res, 422, "validation-error", "Invalid query parameter name.");
        problem_add_error(p, "/query/name", "must be a file name of 1 to %zu bytes", sizeof(st->name) - 1);
        return;
    }
    snprintf(st->name, sizeof(st->name), "%s", name != NULL ? name : "recording");
    long epoch = 0, tz = 0;
    if (query_int(req, res, "epoch", 1, 3600, &epoch) < 0 || query_int(req, res, "tz_offset_min", -1080, 1080, &tz) < 0)
        return;
    if (recording_format_detect(st->name, "", 0) == RECORDING_FMT_AGD) {
        http_respond_problem(res, 415, "unsupported-media-type",
                             "ActiGraph .agd files are SQLite databases, read by `clarity analyze` only; "
                             "upload ActiLife's CSV export instead.");
        return;
    }
    st->epoch_s = (unsigned)epoch;
    st->tz_offset_min = (int32_t)tz;
    buf_init(&st->body, rec_max_bytes(ctx));
    st->refused = 0;
}

static int rec_chunk(void *state, const char *data, size_t len, struct http_response *res)
{
    struct rec_state *st = state;
    if (st == NULL || st->refused)
        return -1;
    if (buf_append(&st->body, data, len) != 0) {
        if (st->body.len + len > st->body.max)
            http_respond_problem(res, 413, "payload-too-large", "A recording may have at most %zu bytes.",
                                 st->body.max);
        else
            api_store_failure(res, INGEST_ENOMEM);
        return -1;
    }
    return 0;
}

/* The 202: the upload and what the recording held. */
static json_t *rec_reply(const struct rec_state *st, enum recording_format fmt, const struct recording_series *s,
                         size_t samples, const struct ingest_result *r)
{
    char a[64], b[64];
    analysis_json_local_time(s->start_local_min, a, sizeof(a));
    analysis_json_local_time(s->start_local_min + (int64_t)s->n, b, sizeof(b));
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:i, s:I, s:I, s:I}", "name", st->name, "format",
                  recording_format_name(fmt), "format_label", recording_format_label(fmt), "epoch_s",
                  (json_int_t)(s->epoch_n > 0 ? s->epoch_s : 60), "rows", (json_int_t)s->rows, "minutes",
                  (json_int_t)s->n, "start_local", a, "end_local", b, "tz_offset_min", (int)st->tz_offset_min, "epochs",
                  (json_int_t)samples, "stored", (json_int_t)r->stored, "duplicates", (json_int_t)r->duplicates);
    if (rec == NULL)
        return NULL;
    return json_pack("{s:s, s:s, s:o, s:o}", "upload_id", r->upload_id, "status", "queued", "queued_at",
                     api_time_json(r->created_ms), "recording", rec);
}

static void rec_finish(void *state, struct http_request *req, struct http_response *res)
{
    struct rec_state *st = state;
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    struct recording_series s;
    struct upload_samples batch = {0};
    struct ingest_session *sess = NULL;
    struct ingest_result r;
    char err[256] = "";
    if (st == NULL || st->refused)
        return;
    const char *text = st->body.data != NULL ? st->body.data : "";
    size_t len = st->body.len;
    memset(&s, 0, sizeof(s));
    enum recording_format fmt = recording_format_detect(st->name, text, len);
    int prc;
    switch (fmt) {
    case RECORDING_FMT_AWD: prc = recording_awd_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    case RECORDING_FMT_RPX: prc = recording_rpx_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    case RECORDING_FMT_ATR: prc = recording_atr_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    case RECORDING_FMT_MTN: prc = recording_mtn_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    case RECORDING_FMT_ACTILIFE: prc = recording_actilife_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    default: prc = recording_csv_parse(text, len, st->epoch_s, 0, &s, err, sizeof(err)); break;
    }
    buf_free(&st->body);
    if (prc != 0) {
        struct problem *pb = http_respond_problem(res, 422, "validation-error", "The recording could not be read.");
        problem_add_error(pb, "", "%s (read as %s)", err[0] ? err : "unreadable", recording_format_label(fmt));
        return;
    }
    size_t count = recording_samples_count(&s);
    if (count == 0) {
        free(s.values);
        struct problem *pb = http_respond_problem(res, 422, "validation-error", "The recording holds no counts.");
        problem_add_error(pb, "", "every epoch of the recording is missing");
        return;
    }
    struct ingest_origin o = {.user_id = p->user_id,
                              .source = "research_recording",
                              .total_metrics = count,
                              .audit_action = "health_data.recording",
                              .request_id = req->request_id,
                              .client_ip = req->client_ip};
    struct recording_sample_opts so = {p->user_id, recording_format_label(fmt), st->tz_offset_min};
    size_t next = 0, total = recording_samples_total(&s), samples = 0;
    /* Streamed like an Apple Health import: the upload shows "processing"
     * with its progress while batches commit one by one (no write lock
     * held for a year of epochs), and commit queues the analysis. */
    int stopped = 0; /* the shutdown grace period ended (api_ctx.stop) */
    int rc = ingest_session_begin(ctx->store, ctx->ring, &o, INGEST_STREAMED, &sess);
    while (rc == 0 && !stopped && next < total) {
        rc = recording_samples_next(&s, &so, &next, RECORDING_SAMPLE_BATCH, &batch);
        if (rc == 0)
            rc = upload_samples_complete(&batch);
        samples += batch.n;
        if (rc == 0)
            rc = ingest_session_add(sess, batch.v, batch.n, (double)next / (double)total, (int64_t)samples, NULL);
        upload_samples_free(&batch);
        stopped = rc == 0 && ctx->stop != NULL && atomic_load(ctx->stop);
    }
    if (rc == 0 && !stopped)
        rc = ingest_session_commit(sess, NULL, &r);
    ingest_session_end(sess, stopped ? "the server stopped while storing the recording; send it again" : NULL);
    if (rc == 0 && stopped) {
        free(s.values);
        http_respond_problem(res, 503, "service-unavailable", "The server is shutting down; send the recording again.");
        return;
    }
    if (rc != 0) {
        free(s.values);
        api_store_failure(res, rc);
        return;
    }
    json_t *out = rec_reply(st, fmt, &s, samples, &r);
    free(s.values);
    if (out == NULL) {
        /* stored and queued: say so even without the summary */
        out = json_pack("{s:s, s:s}", "upload_id", r.upload_id, "status", "queued");
    }
    char loc[128];
    snprintf(loc, sizeof(loc), "/api/v1/healthkit/status/%s", r.upload_id);
    http_respond_json(res, 202, out);
    http_response_header(res, "Location", loc);
}

static void rec_release(void *state)
{
    struct rec_state *st = state;
    if (st == NULL)
        return;
    buf_free(&st->body);
    free(st);
}

static struct http_body_ops rec_ops = {rec_begin, rec_chunk, rec_finish, rec_release, 0};

int api_recordings_register(struct router *r, struct api_ctx *ctx)
{
    rec_ops.max_bytes = rec_max_bytes(ctx);
    return router_add_streaming(r, HTTP_POST, "/api/v1/recordings", &rec_ops, ctx,
                                GUARD_AUTH | GUARD_RATE(GUARD_RATE_UPLOAD));
}
