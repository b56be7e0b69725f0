/*
 * probes.c — liveness, readiness, deep health and Prometheus metrics.
 *
 * /liveness answers while the process can serve; /readiness says whether the
 * platform should route traffic here (503 while starting or draining);
 * /health runs every registered dependency check (database, queue, model)
 * with its latency, and answers 503 with the same body when one fails.
 */
#include "api/api.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/health.h"
#include "core/timeutil.h"
#include "http/http.h"
#include "http/server.h"
#include "ml/pat.h"
#include "store/queue.h"

static json_t *now_string(void)
{
    char ts[40];
    return json_string(time_format_rfc3339_s(time_now_ms(), ts, sizeof(ts)));
}

/*
 * The probes' bodies are fixed but for the time, so they are written from a
 * template instead of built as JSON (a probe is the most frequent request a
 * platform makes; jansson cost 1.2 us and ten allocations of it, issue 22).
 * The time is whole-second RFC 3339, like every time Clarity generates.
 */
static void respond_probe(struct http_response *res, const char *status)
{
    char ts[40], body[96];
    time_format_rfc3339_ms(time_now_ms(), ts, sizeof(ts));
    size_t tn = strlen(ts);
    if (tn == 24 && ts[19] == '.') { /* drop ".mmm" */
        ts[19] = 'Z';
        ts[20] = '\0';
        tn = 20;
    }
    size_t sn = strlen(status), n = 0;
    static const char a[] = "{\"status\":\"", b[] = "\",\"timestamp\":\"", c[] = "\"}";
    if (sizeof(a) - 1 + sn + sizeof(b) - 1 + tn + sizeof(c) - 1 > sizeof(body)) {
        http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        return;
    }
    memcpy(body + n, a, sizeof(a) - 1), n += sizeof(a) - 1;
    memcpy(body + n, status, sn), n += sn;
    memcpy(body + n, b, sizeof(b) - 1), n += sizeof(b) - 1;
    memcpy(body + n, ts, tn), n += tn;
    memcpy(body + n, c, sizeof(c) - 1), n += sizeof(c) - 1;
    http_respond_bytes(res, 200, "application/json; charset=utf-8", body, n);
}

static void liveness(struct http_request *req, struct http_response *res)
{
    (void)req;
    respond_probe(res, "alive");
}

static void readiness(struct http_request *req, struct http_response *res)
{
    enum http_server_state st = http_server_state_get(req->server);
    if (st != HTTP_SERVER_READY) {
        struct problem *p = http_respond_problem(res, 503, "service-unavailable", "The service is %s.",
                                                 st == HTTP_SERVER_DRAINING ? "draining" : "starting");
        p->retry_after = 1;
        return;
    }
    respond_probe(res, "ready");
}

/*
 * Whether the request carries METRICS_TOKEN as its bearer token (compared in
 * constant time). Monitoring sends it; /metrics and /health's details need
 * it where docs/operations.md says.
 */
static int monitoring_caller(const struct http_request *req, const struct config *cfg)
{
    const char *tok = cfg->metrics_token;
    const char *h = http_request_header(req, "Authorization");
    if (tok == NULL || tok[0] == '\0' || h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    size_t n = strlen(tok), m = strlen(h);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(tok[i] ^ (i < m ? h[i] : 0));
    return diff == 0;
}

static void health(struct http_request *req, struct http_response *res)
{
    uint64_t t0 = time_mono_ns();
    const struct config *cfg = http_server_config(req->server);
    int ok = 0;
    json_t *checks = health_run(http_server_health(req->server), &ok);
    enum http_server_state st = http_server_state_get(req->server);
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(ok ? "healthy" : "unhealthy"));
    json_object_set_new(o, "timestamp", now_string());
    json_object_set_new(o, "version", json_string(CLARITY_VERSION));
    json_object_set_new(o, "environment", json_string(config_env_name(cfg->environment)));
    json_object_set_new(o, "state",
                        json_string(st == HTTP_SERVER_READY      ? "ready"
                                    : st == HTTP_SERVER_DRAINING ? "draining"
                                                                 : "starting"));
    json_object_set_new(o, "uptime_seconds",
                        json_real((double)(time_now_ms() - http_server_started_ms(req->server)) / 1000.0));
    json_object_set_new(o, "checks", checks);
    json_object_set_new(o, "response_time_ms", json_real((double)(time_mono_ns() - t0) / 1e6));
    /* Production tells anonymous callers the status, not the internals
     * (versions, model checksum, queue depths, errors). */
    if (cfg->environment == CONFIG_ENV_PRODUCTION && !monitoring_caller(req, cfg)) {
        json_t *brief = json_object();
        json_object_set(brief, "status", json_object_get(o, "status"));
        json_object_set(brief, "timestamp", json_object_get(o, "timestamp"));
        json_decref(o);
        o = brief;
        if (!ok) {
            json_object_set_new(o, "health_status", json_string("unhealthy"));
            json_object_del(o, "status");
            struct problem *p = http_respond_problem(res, 503, "service-unavailable", "A dependency check failed.");
            problem_set_extra(p, o);
            return;
        }
        http_respond_json(res, 200, o);
        return;
    }
    if (ok) {
        http_respond_json(res, 200, o);
        return;
    }
    /* The deployment guide answers 503 with the same body. Errors here are
     * RFC 7807 documents, so the health fields ride along as extension
     * members (RFC 7807 §3.2); "status" is the problem's integer 503 and the
     * report's own status moves to "health_status". */
    json_object_set_new(o, "health_status", json_string("unhealthy"));
    json_object_del(o, "status");
    struct problem *p = http_respond_problem(res, 503, "service-unavailable", "A dependency check failed.");
    problem_set_extra(p, o);
}

/*
 * The pipeline's queues as gauges: what an alert on a stuck or failing
 * pipeline needs (the same figures as /health's pubsub check). One small
 * query per topic per scrape; clarity_queue_stats_up says whether they
 * could be read, so a database outage does not look like an empty queue.
 */
static void queue_gauges(struct store *st, struct buf *b)
{
    static const char *const topics[] = {STORE_TOPIC_HEALTH_DATA, STORE_TOPIC_INSIGHTS};
    struct store_queue_stats qs[2];
    int up = 1;
    for (size_t i = 0; i < 2 && up; i++)
        up = store_queue_stats(st, topics[i], &qs[i]) == 0;
    if (up) {
        buf_puts(b, "# HELP clarity_queue_depth Unacknowledged messages (visible, leased or delayed).\n"
                    "# TYPE clarity_queue_depth gauge\n");
        for (size_t i = 0; i < 2; i++)
            buf_printf(b, "clarity_queue_depth{topic=\"%s\"} %" PRId64 "\n", topics[i], qs[i].depth);
        buf_puts(b, "# HELP clarity_queue_oldest_age_seconds Age of the oldest unacknowledged message (0: none).\n"
                    "# TYPE clarity_queue_oldest_age_seconds gauge\n");
        for (size_t i = 0; i < 2; i++)
            buf_printf(b, "clarity_queue_oldest_age_seconds{topic=\"%s\"} %.3f\n", topics[i],
                       (double)qs[i].oldest_age_ms / 1000.0);
        buf_puts(b, "# HELP clarity_queue_dead_letters Messages in the topic's dead-letter topic.\n"
                    "# TYPE clarity_queue_dead_letters gauge\n");
        for (size_t i = 0; i < 2; i++)
            buf_printf(b, "clarity_queue_dead_letters{topic=\"%s\"} %" PRId64 "\n", topics[i], qs[i].dead);
    }
    buf_printf(b,
               "# HELP clarity_queue_stats_up 1 when the queue gauges could be read from the database.\n"
               "# TYPE clarity_queue_stats_up gauge\n"
               "clarity_queue_stats_up %d\n",
               up);
}

/* The active encryption key's age, for the 90-day rotation alert. */
static void key_age_gauge(struct store *st, struct buf *b)
{
    struct store_tx *tx = NULL;
    struct store_key row;
    memset(&row, 0, sizeof(row));
    if (store_tx_begin(st, STORE_TX_READ, &tx) != 0)
        return;
    int rc = store_key_get_active(tx, &row);
    store_tx_rollback(tx);
    if (rc != 0)
        return;
    buf_printf(b,
               "# HELP clarity_encryption_key_age_seconds Age of the active encryption key version.\n"
               "# TYPE clarity_encryption_key_age_seconds gauge\n"
               "clarity_encryption_key_age_seconds %.0f\n",
               (double)(time_now_ms() - row.created_at_ms) / 1000.0);
    store_key_clear(&row);
}

static void metrics(struct http_request *req, struct http_response *res)
{
    const struct api_ctx *ctx = req->route_ctx;
    const struct config *cfg = http_server_config(req->server);
    /* Never public in production: with METRICS_TOKEN set only its bearer
     * reads the metrics (anywhere); production without one serves none. */
    int has_token = cfg->metrics_token != NULL && cfg->metrics_token[0] != '\0';
    if ((has_token || cfg->environment == CONFIG_ENV_PRODUCTION) && !monitoring_caller(req, cfg)) {
        http_respond_problem(res, 404, "resource-not-found",
                             "No metrics here: they need the monitoring bearer token (docs/operations.md).");
        return;
    }
    struct buf b;
    buf_init(&b, 4u << 20);
    metrics_render(http_server_metrics(req->server), &b);
    buf_printf(&b,
               "# HELP clarity_pat_inferences_total PAT forward passes run by this process.\n"
               "# TYPE clarity_pat_inferences_total counter\n"
               "clarity_pat_inferences_total %llu\n",
               pat_inferences_total());
    if (ctx != NULL && ctx->store != NULL) {
        queue_gauges(ctx->store, &b);
        key_age_gauge(ctx->store, &b);
    }
    http_respond_bytes(res, 200, "text/plain; version=0.0.4; charset=utf-8", b.data != NULL ? b.data : "", b.len);
    buf_free(&b);
}

int api_probes_register(struct router *r, struct api_ctx *ctx)
{
    int rc = 0;
    rc |= router_add(r, HTTP_GET, "/liveness", liveness, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/readiness", readiness, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/health", health, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/metrics", metrics, ctx, 0);
    return rc != 0 ? -1 : 0;
}
