/*
 * server.c — libmicrohttpd integration, middleware chain, draining.
 * See server.h and http.h.
 *
 * libmicrohttpd calls the access handler several times per request: once when
 * the headers are in, once per chunk of body, and once more with no data when
 * the request is complete. We answer on that last call — queueing on the
 * first call of a body-less request would make libmicrohttpd close the
 * connection and lose keep-alive. The one exception is a declared
 * Content-Length over the limit, answered at once (and the connection closed)
 * so that we never read the body.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/json_load.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/http.h"

/* A request may use this much arena memory beyond its body. */
#define REQUEST_ARENA_EXTRA (8u << 20)
/* After refusing a streamed body we read and drop at most this much more
 * before closing the connection, so a peer cannot stream forever. */
#define DISCARD_LIMIT (1u << 20)
#define IDLE_TIMEOUT_SECONDS 30
/* The first arena chunk lives in the connection's context: a probe or a
 * small JSON request allocates nothing from the arena's malloc. */
#define INLINE_ARENA_BYTES 2048

struct http_server {
    const struct config *cfg;
    const struct router *router;
    const struct health_registry *health;
    struct MHD_Daemon *daemon;
    int port;
    int listen_fd;            /* ours until quiesced (then -1) */
    _Atomic long connections; /* open client connections */
    _Atomic int state;
    _Atomic long in_flight;
    int64_t started_ms;
    struct metrics metrics;
    http_guard_fn guard;
    void *guard_ctx;
};

/* Everything about one request, from its first call to its completion. */
struct req_ctx {
    struct http_server *server;
    struct conn_ctx *conn_ctx; /* owner of this context when reused, else NULL */
    struct http_request req;
    struct http_response res;
    struct arena arena;
    struct buf body;
    uint64_t t0;
    int route_index;
    int too_large; /* body refused for its size */
    size_t discarded;
    size_t limit;                    /* body size limit for this request */
    const struct http_body_ops *ops; /* a streamed body's consumer, or NULL */
    void *ops_state;
    int ops_begun;
    int ops_failed;  /* begin or a chunk answered a problem */
    size_t streamed; /* body bytes fed to ops */
    int queued;      /* a response was handed to libmicrohttpd */
    int status;      /* status sent, for the access log and metrics */
    size_t bytes;    /* body bytes sent */
    char request_id[LIMIT_REQUEST_ID + 1];
    struct upgrade_state *upgrade; /* a queued 101's hand-over, or NULL */
};

/* A queued upgrade: the handler's callback and its context. libmicrohttpd
 * calls on_upgrade at most once, before the request's completion callback
 * (which follows the close that on_upgrade requests), so on_completed frees
 * the context exactly when it was never handed over. */
struct upgrade_state {
    http_upgrade_fn fn;
    http_stream_free_fn free_fn;
    void *ctx;
    int fired;
};

/*
 * Per connection: created when libmicrohttpd accepts it, freed when it
 * closes. Requests on a keep-alive connection come one after another (a
 * request's completion callback runs before the next request's first
 * call), so one request context and its first arena chunk are reused, and
 * the peer address is formatted once.
 */
struct conn_ctx {
    struct req_ctx rc;
    int rc_in_use;
    int headers_seen; /* the header timeout was lifted */
    char peer[64];
    alignas(max_align_t) unsigned char arena_first[INLINE_ARENA_BYTES];
};

/* ---- handler-facing API (http.h) ---------------------------------------- */

const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_request_param(const struct http_request *req, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < req->nparams; i++) {
        const struct route_param *p = &req->params[i];
        if (p->namelen == n && memcmp(p->name, name, n) == 0)
            return arena_strndup(req->arena, p->value, p->len);
    }
    return NULL;
}

static void reset_response(struct http_response *res)
{
    if (res->stream_ctx != NULL && res->stream_free != NULL)
        res->stream_free(res->stream_ctx);
    res->stream = NULL;
    res->stream_ctx = NULL;
    res->stream_free = NULL;
    if (res->upgrade_ctx != NULL && res->upgrade_free != NULL)
        res->upgrade_free(res->upgrade_ctx);
    res->upgrade = NULL;
    res->upgrade_ctx = NULL;
    res->upgrade_free = NULL;
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
    problem_clear(&res->problem);
    res->is_problem = 0;
}

static void misuse(struct http_response *res, const char *what, int status)
{
    log_error("handler misuse", LOG_STR, "what", what, LOG_INT, "status", (long long)status, LOG_END);
    reset_response(res);
    problem_set(&res->problem, 500, "internal-server-error", "The server could not complete the request.");
    res->status = 500;
    res->is_problem = 1;
    res->responded = 1;
}

/* The server ran out of memory building the answer: a 503 problem, the
 * server's passing failure (never a partial document; #16). */
static void short_of_memory(struct http_response *res, const char *what)
{
    log_warning("out of memory building a response", LOG_STR, "what", what, LOG_END);
    reset_response(res);
    problem_set(&res->problem, 503, "service-unavailable", "The server is short of resources; retry shortly.");
    res->problem.retry_after = 1;
    res->status = 503;
    res->is_problem = 1;
    res->responded = 1;
}

void http_respond_json(struct http_response *res, int status, json_t *body)
{
    if (res->responded || status < 200 || status >= 400) {
        json_decref(body);
        misuse(res, res->responded ? "responded twice" : "non-problem error response", status);
        return;
    }
    /* A member whose value could not be allocated is silently left out by
     * json_object_set_new: a 2xx with a document missing members would be
     * a wrong answer. */
    if (json_load_failures() != res->json_mark) {
        json_decref(body);
        short_of_memory(res, "json value");
        return;
    }
    res->status = status;
    res->content_type = "application/json; charset=utf-8";
    if (body != NULL) {
        res->body = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
        json_decref(body);
        if (res->body == NULL) {
            short_of_memory(res, "json encoding");
            return;
        }
        res->body_len = strlen(res->body);
    }
    res->responded = 1;
}

void http_respond_bytes(struct http_response *res, int status, const char *content_type, const void *data, size_t len)
{
    if (res->responded || status < 200 || status >= 400) {
        misuse(res, res->responded ? "responded twice" : "non-problem error response", status);
        return;
    }
    res->body = malloc(len > 0 ? len : 1);
    if (res->body == NULL) {
        short_of_memory(res, "body");
        return;
    }
    if (len > 0)
        memcpy(res->body, data, len);
    res->body_len = len;
    res->status = status;
    res->content_type = content_type;
    res->responded = 1;
}

void http_respond_stream(struct http_response *res, int status, const char *content_type, http_stream_fn fn, void *ctx,
                         http_stream_free_fn free_fn)
{
    if (res->responded || status < 200 || status >= 300 || fn == NULL) {
        if (free_fn != NULL)
            free_fn(ctx);
        misuse(res, res->responded ? "responded twice" : "bad stream response", status);
        return;
    }
    res->status = status;
    res->content_type = content_type;
    res->stream = fn;
    res->stream_ctx = ctx;
    res->stream_free = free_fn;
    res->responded = 1;
}

void http_respond_upgrade(struct http_response *res, http_upgrade_fn fn, void *ctx, http_stream_free_fn free_fn)
{
    if (res->responded || fn == NULL) {
        if (free_fn != NULL)
            free_fn(ctx);
        misuse(res, res->responded ? "responded twice" : "bad upgrade response", 101);
        return;
    }
    res->status = 101;
    res->upgrade = fn;
    res->upgrade_ctx = ctx;
    res->upgrade_free = free_fn;
    res->responded = 1;
}

/*
 * The 101 is out: hand the socket to the handler and make libmicrohttpd
 * forget the connection at once. libmicrohttpd 0.9.75 keeps an upgraded
 * connection (its 32 KiB memory pool, our request context, a slot under
 * CONNECTION_LIMIT) until MHD_upgrade_action(CLOSE), which would cost every
 * idle WebSocket ~35 KB. So the handler gets a duplicate of the socket and
 * we give the original back now: libmicrohttpd then frees the connection
 * and close()s only its own descriptor, the TCP connection living on in the
 * duplicate. For a plain (non-TLS) upgraded connection libmicrohttpd never
 * shutdown()s the socket on this path (it was suspended, out of its epoll
 * set, when the upgrade began, and the cleanup only closes the descriptor;
 * checked with strace with and without MHD_USE_TURBO, and every chat e2e
 * test talks over the duplicate after this close; with TLS this hand-over
 * would not hold: MHD relays through a socketpair). extra lives in the
 * connection's pool, so the handler
 * runs (and copies it) before the close is requested; the close itself is
 * carried out by this same daemon thread after we return.
 */
static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    struct upgrade_state *st = cls;
    (void)conn;
    (void)con_cls;
    st->fired = 1;
    int fd = fcntl((int)sock, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0) {
        st->fn(st->ctx, fd, extra_in, extra_in_size);
    } else {
        log_write(LOG_WARNING, "upgrade dropped", LOG_STR, "reason", "no file descriptor left", LOG_END);
        if (st->free_fn != NULL)
            st->free_fn(st->ctx);
    }
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* Queue a 101 that hands the socket to the handler's callback. Only the
 * request id and the handler's own headers go on it: the security and
 * caching headers describe a body, and a 101 has none. */
static enum MHD_Result send_upgrade(struct req_ctx *rc)
{
    struct http_response *res = &rc->res;
    struct upgrade_state *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, st);
    if (r == NULL) {
        free(st);
        return MHD_NO;
    }
    st->fn = res->upgrade;
    st->free_fn = res->upgrade_free;
    st->ctx = res->upgrade_ctx;
    res->upgrade = NULL; /* the state owns the context now */
    res->upgrade_ctx = NULL;
    res->upgrade_free = NULL;
    rc->upgrade = st;
    MHD_add_response_header(r, "X-Request-ID", rc->request_id);
    for (int i = 0; i < res->nheaders; i++)
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
    rc->status = 101;
    rc->bytes = 0;
    enum MHD_Result ret = MHD_queue_response(rc->req.conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        rc->queued = 1;
    return ret;
}

/* libmicrohttpd's content reader over a handler's stream function. */
struct stream_state {
    http_stream_fn fn;
    http_stream_free_fn free_fn;
    void *ctx;
    size_t *bytes; /* the request's byte counter, for the access log */
    struct MHD_Connection *conn;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_state *st = cls;
    (void)pos;
    long n = st->fn(st->ctx, buf, max);
    if (n == -1)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) {
        /* libmicrohttpd (with MHD_USE_TURBO) neither shuts the socket down
         * nor wakes its loop to close it: the client, which has the
         * headers of a 200, would wait for the rest until the idle timeout
         * (found by the allocation sweep of test_fault_injection, #16).
         * Cut it now so the client sees the truncated stream at once;
         * libmicrohttpd still closes the descriptor itself. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(st->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci != NULL)
            shutdown(ci->connect_fd, SHUT_RDWR);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    return (ssize_t)n;
}

static void stream_done(void *cls)
{
    struct stream_state *st = cls;
    if (st->free_fn != NULL)
        st->free_fn(st->ctx);
    free(st);
}

struct problem *http_respond_problem(struct http_response *res, int status, const char *slug, const char *fmt, ...)
{
    if (res->responded) {
        misuse(res, "responded twice", status);
        return &res->problem;
    }
    if (status < 400 || status > 599)
        status = 500;
    reset_response(res);
    char detail[1024];
    detail[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof(detail), fmt, ap);
        va_end(ap);
    }
    problem_set(&res->problem, status, slug, "%s",
                detail[0] ? detail : problem_title(slug ? slug : problem_slug_for_status(status)));
    res->status = status;
    res->is_problem = 1;
    res->responded = 1;
    return &res->problem;
}

void http_response_header(struct http_response *res, const char *name, const char *value)
{
    /* Set-Cookie may repeat (RFC 6265 §3: one cookie per header). */
    int repeatable = strcasecmp(name, "Set-Cookie") == 0;
    for (int i = 0; i < res->nheaders && !repeatable; i++)
        if (strcasecmp(res->headers[i].name, name) == 0) {
            res->headers[i].value = arena_strdup(res->arena, value);
            return;
        }
    if (res->nheaders >= HTTP_MAX_HEADERS)
        return;
    res->headers[res->nheaders].name = arena_strdup(res->arena, name);
    res->headers[res->nheaders].value = arena_strdup(res->arena, value);
    if (res->headers[res->nheaders].name != NULL && res->headers[res->nheaders].value != NULL)
        res->nheaders++;
}

/* Dotted quad by hand: inet_ntop's generality showed in per-request profiles. */
static void format_ipv4(const unsigned char *a, char *out, size_t outlen)
{
    char tmp[16];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = a[i];
        if (v >= 100)
            tmp[n++] = (char)('0' + v / 100);
        if (v >= 10)
            tmp[n++] = (char)('0' + v / 10 % 10);
        tmp[n++] = (char)('0' + v % 10);
        if (i < 3)
            tmp[n++] = '.';
    }
    if (outlen == 0)
        return;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

static void format_peer(struct MHD_Connection *conn, char *out, size_t outlen)
{
    out[0] = '\0';
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        format_ipv4((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr, out, outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)outlen);
}

void http_request_peer_ip(const struct http_request *req, char *out, size_t outlen)
{
    format_peer(req->conn, out, outlen);
}

/* ---- helpers ------------------------------------------------------------ */

int http_request_id_is_sane(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > LIMIT_REQUEST_ID)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

int http_cors_origin_allowed(const struct config *cfg, const char *origin)
{
    if (origin == NULL)
        return 0;
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        if (strcmp(cfg->cors_origins[i], "*") == 0 || strcmp(cfg->cors_origins[i], origin) == 0)
            return 1;
    return 0;
}

static const char *res_header(const struct http_response *res, const char *name)
{
    for (int i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

/* Add a header unless the handler set its own. */
static void add_default(struct MHD_Response *r, const struct http_response *res, const char *name, const char *value)
{
    if (res_header(res, name) == NULL)
        MHD_add_response_header(r, name, value);
}

/* CORS response headers for an allowed Origin (Fetch standard, CORS protocol). */
static void add_cors(struct req_ctx *rc, struct MHD_Response *r)
{
    const struct config *cfg = rc->server->cfg;
    if (cfg->n_cors_origins == 0)
        return;
    MHD_add_response_header(r, "Vary", "Origin");
    const char *origin = http_request_header(&rc->req, "Origin");
    if (!http_cors_origin_allowed(cfg, origin))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(r, "Access-Control-Allow-Credentials", "true");
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-ID, Retry-After, Location");
}

/* Turn rc->res into a libmicrohttpd response and queue it. */
static enum MHD_Result send_response(struct req_ctx *rc)
{
    struct http_response *res = &rc->res;
    const struct config *cfg = rc->server->cfg;
    if (!res->responded)
        misuse(res, "no response", 0);
    if (res->upgrade != NULL && !res->is_problem)
        return send_upgrade(rc);

    int fallback = 0;
    if (res->is_problem) {
        unsigned long failures = json_load_failures();
        json_t *j = problem_to_json(&res->problem, rc->req.path, rc->request_id);
        free(res->body);
        /* A member that could not be allocated is left out silently: a
         * problem without its status is no problem document. */
        res->body = j != NULL && json_load_failures() == failures
                        ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10))
                        : NULL;
        json_decref(j);
        res->body_len = res->body != NULL ? strlen(res->body) : 0;
        res->content_type = "application/problem+json";
        if (res->body == NULL) {
            /* No memory to render the problem: a fixed 503 document, so that
             * even then the client gets problem+json (fault injection). */
            fallback = 1;
            res->status = 503;
            res->problem.retry_after = 1;
        }
    }

    struct MHD_Response *r = NULL;
    int streamed = 0;
    if (fallback) {
        static const char oom[] = "{\"type\":\"https://clarity.dev/problems/service-unavailable\","
                                  "\"title\":\"Service Unavailable\",\"status\":503,"
                                  "\"detail\":\"The server is short of memory; try again.\"}";
        res->body_len = sizeof(oom) - 1;
        r = MHD_create_response_from_buffer(res->body_len, (void *)oom, MHD_RESPMEM_PERSISTENT);
        if (r == NULL)
            return MHD_NO;
    } else if (res->stream != NULL && !res->is_problem) {
        streamed = 1;
        struct stream_state *st = malloc(sizeof(*st));
        if (st == NULL)
            return MHD_NO;
        st->fn = res->stream;
        st->free_fn = res->stream_free;
        st->ctx = res->stream_ctx;
        st->conn = rc->req.conn;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, st, stream_done);
        if (r == NULL) {
            free(st);
            return MHD_NO;
        }
        res->stream = NULL; /* libmicrohttpd owns the stream now */
        res->stream_ctx = NULL;
        res->stream_free = NULL;
    } else {
        r = MHD_create_response_from_buffer(res->body_len, res->body, MHD_RESPMEM_MUST_FREE);
        if (r == NULL)
            return MHD_NO;
        res->body = NULL; /* libmicrohttpd owns it now */
    }

    if (res->content_type != NULL && (res->body_len > 0 || streamed) && res_header(res, "Content-Type") == NULL &&
        MHD_add_response_header(r, "Content-Type", res->content_type) != MHD_YES &&
        MHD_add_response_header(r, "Content-Type", res->content_type) != MHD_YES) {
        /* No memory even to label the body (twice): a body without its type
         * (a problem the client cannot recognise as one) is worse than a
         * closed connection, which a client retries (#16). */
        MHD_destroy_response(r);
        return MHD_NO;
    }
    MHD_add_response_header(r, "X-Request-ID", rc->request_id);
    /* Security headers (OWASP secure headers). The CSP forbids everything:
     * API responses need nothing; HTML handlers set their own policy. */
    add_default(r, res, "X-Content-Type-Options", "nosniff");
    add_default(r, res, "X-Frame-Options", "DENY");
    add_default(r, res, "Referrer-Policy", "no-referrer");
    add_default(r, res, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    add_default(r, res, "Cache-Control", "no-store");
    if (cfg->environment != CONFIG_ENV_DEVELOPMENT)
        add_default(r, res, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    add_cors(rc, r);
    if (res->is_problem && res->problem.retry_after > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%d", res->problem.retry_after);
        if (MHD_add_response_header(r, "Retry-After", ra) != MHD_YES)
            MHD_add_response_header(r, "Retry-After", ra); /* once more: a 503's one hint */
    }
    if (atomic_load(&rc->server->state) == HTTP_SERVER_DRAINING || rc->too_large)
        MHD_add_response_header(r, "Connection", "close");
    for (int i = 0; i < res->nheaders; i++)
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);

    rc->status = res->status;
    rc->bytes = streamed ? 0 : res->body_len; /* a stream's size is not known here */
    enum MHD_Result ret = MHD_queue_response(rc->req.conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES)
        rc->queued = 1;
    return ret;
}

static void respond_too_large(struct req_ctx *rc)
{
    rc->too_large = 1;
    reset_response(&rc->res);
    rc->res.responded = 0;
    http_respond_problem(&rc->res, 413, "payload-too-large", "The request body exceeds %zu bytes.", rc->limit);
}

/* CORS preflight (OPTIONS with Origin and Access-Control-Request-Method). */
static void preflight(struct req_ctx *rc, const char *origin, const char *want)
{
    struct http_response *res = &rc->res;
    if (!http_cors_origin_allowed(rc->server->cfg, origin)) {
        http_respond_problem(res, 403, "authorization-denied", "Origin not allowed by CORS policy.");
        return;
    }
    struct router_match m;
    enum http_method wm = http_method_parse(want);
    if (wm == HTTP_METHOD_UNKNOWN) {
        http_respond_problem(res, 403, "authorization-denied", "Method not allowed by CORS policy.");
        return;
    }
    enum router_result rr = router_match(rc->server->router, wm, rc->req.path, &m);
    if (rr == ROUTER_NOT_FOUND) {
        http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
        return;
    }
    if (rr == ROUTER_METHOD_NOT_ALLOWED) {
        http_respond_problem(res, 403, "authorization-denied", "Method not allowed by CORS policy.");
        return;
    }
    char allow[96];
    router_allow_header(m.allowed, allow, sizeof(allow));
    http_respond_bytes(res, 204, NULL, "", 0);
    http_response_header(res, "Access-Control-Allow-Methods", allow);
    http_response_header(res, "Access-Control-Allow-Headers",
                         "Authorization, Content-Type, X-Request-ID, Idempotency-Key");
    http_response_header(res, "Access-Control-Max-Age", "600");
}

static int bind_route(struct req_ctx *rc, const struct router_match *m);

/* Route and run the handler for a complete request. */
static void dispatch(struct req_ctx *rc, const char *method_str)
{
    struct http_request *req = &rc->req;
    struct http_response *res = &rc->res;
    if (req->method == HTTP_METHOD_UNKNOWN) {
        (void)method_str;
        http_respond_problem(res, 405, "method-not-allowed", "This method is not supported.");
        return;
    }
    if (req->method == HTTP_OPTIONS) {
        const char *origin = http_request_header(req, "Origin");
        const char *want = http_request_header(req, "Access-Control-Request-Method");
        if (origin != NULL && want != NULL) {
            preflight(rc, origin, want);
            return;
        }
    }
    struct router_match m;
    enum router_result rr = router_match(rc->server->router, req->method, req->path, &m);
    if (rr == ROUTER_NOT_FOUND) {
        http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
        return;
    }
    if (rr == ROUTER_METHOD_NOT_ALLOWED) {
        char allow[96]; /* only a 405 or an OPTIONS answer needs it */
        router_allow_header(m.allowed, allow, sizeof(allow));
        if (req->method == HTTP_OPTIONS) {
            http_respond_bytes(res, 204, NULL, "", 0);
        } else {
            http_respond_problem(res, 405, "method-not-allowed", "%s is not allowed here; allowed: %s.",
                                 http_method_name(req->method), allow);
        }
        http_response_header(res, "Allow", allow);
        return;
    }
    if (bind_route(rc, &m) != 0)
        return;
    res->json_mark = json_load_failures();
    if (rc->server->guard != NULL && rc->server->guard(rc->server->guard_ctx, req, res) != 0) {
        if (!res->responded)
            http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        return;
    }
    m.route->handler(req, res);
}

/* Attach the matched route to the request: template, parameters, flags. */
static int bind_route(struct req_ctx *rc, const struct router_match *m)
{
    struct http_request *req = &rc->req;
    const struct route *rt = m->route;
    rc->route_index = rt->index;
    req->route_template = rt->template;
    req->route_ctx = rt->ctx;
    /* Parameters live in the arena copy of the match. */
    struct route_param *params = arena_alloc(req->arena, sizeof(m->params));
    if (params == NULL) {
        short_of_memory(&rc->res, "route parameters"); /* 503, not 500 (#16) */
        return -1;
    }
    memcpy(params, m->params, sizeof(m->params));
    req->params = params;
    req->nparams = m->nparams;
    req->route_flags = rt->flags;
    return 0;
}

/*
 * First call of a request whose route streams its body: route, guard and
 * begin now, before any body byte is read. Returns 0 to go on reading, or
 * -1 when a response is ready (refused).
 */
static int stream_begin(struct req_ctx *rc)
{
    struct http_request *req = &rc->req;
    struct http_response *res = &rc->res;
    res->json_mark = json_load_failures();
    if (rc->server->guard != NULL && rc->server->guard(rc->server->guard_ctx, req, res) != 0) {
        if (!res->responded)
            http_respond_problem(res, 500, NULL, "The server could not complete the request.");
        return -1;
    }
    rc->ops->begin(req, res, &rc->ops_state);
    rc->ops_begun = 1;
    return res->responded ? -1 : 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct http_server *s = cls;
    struct req_ctx *rc = *con_cls;
    (void)version;

    if (rc == NULL) {
        /* First call: headers are in. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_ctx *cc = ci != NULL ? ci->socket_context : NULL;
        /* An upgrade (WebSocket) outlives the request's normal course: its
         * context gets memory of its own, freed by its completion. */
        int upgrade = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade") != NULL;
        if (cc != NULL && !cc->rc_in_use && !upgrade) {
            rc = &cc->rc;
            memset(rc, 0, sizeof(*rc));
            rc->conn_ctx = cc;
            cc->rc_in_use = 1;
            arena_init_inline(&rc->arena, s->cfg->max_request_bytes + REQUEST_ARENA_EXTRA, cc->arena_first,
                              sizeof(cc->arena_first));
        } else {
            rc = calloc(1, sizeof(*rc));
            if (rc == NULL)
                return MHD_NO;
            arena_init(&rc->arena, s->cfg->max_request_bytes + REQUEST_ARENA_EXTRA);
        }
        if (cc != NULL && !cc->headers_seen) {
            /* The head is in: from now on the idle timeout applies. */
            cc->headers_seen = 1;
            MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_SECONDS);
        }
        atomic_fetch_add(&s->in_flight, 1);
        *con_cls = rc;
        rc->server = s;
        rc->t0 = time_mono_ns();
        rc->route_index = -1;
        buf_init(&rc->body, s->cfg->max_request_bytes);
        rc->req.conn = conn;
        rc->req.arena = &rc->arena;
        rc->req.server = s;
        rc->req.method = http_method_parse(method);
        rc->req.path = arena_strdup(&rc->arena, url);
        rc->req.request_id = rc->request_id;
        rc->res.arena = &rc->arena;
        if (cc != NULL)
            snprintf(rc->req.client_ip, sizeof(rc->req.client_ip), "%s", cc->peer);
        else
            http_request_peer_ip(&rc->req, rc->req.client_ip, sizeof(rc->req.client_ip));

        const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-ID");
        if (http_request_id_is_sane(rid))
            snprintf(rc->request_id, sizeof(rc->request_id), "%s", rid);
        else if (uuid_v4(rc->request_id) != 0)
            snprintf(rc->request_id, sizeof(rc->request_id), "unavailable");
        if (rc->req.path == NULL) {
            /* No memory for the path (a long one outgrows the inline arena):
             * routing would read NULL. The server's failure: 503 (#16). */
            rc->too_large = 1; /* closes the connection and skips any body */
            short_of_memory(&rc->res, "request path");
            return send_response(rc);
        }

        /* A route that streams its body is found now, so that its own size
         * limit applies and authentication happens before the body. */
        rc->limit = s->cfg->max_request_bytes;
        if (rc->req.method == HTTP_POST || rc->req.method == HTTP_PUT) {
            struct router_match m;
            if (router_match(s->router, rc->req.method, rc->req.path, &m) == ROUTER_FOUND &&
                m.route->body_ops != NULL) {
                rc->ops = m.route->body_ops;
                rc->limit = rc->ops->max_bytes;
                if (bind_route(rc, &m) != 0)
                    return send_response(rc);
            }
        }
        /* RFC 9112 §6.1: only "chunked" is understood; any other transfer
         * coding (or chunked not last) leaves the body's length unknown, so
         * answer now and close instead of waiting for a body that cannot be
         * framed. libmicrohttpd would otherwise wait for the idle timeout. */
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Transfer-Encoding");
        if (te != NULL && strcasecmp(te, "chunked") != 0) {
            rc->too_large = 1; /* closes the connection and skips the body */
            reset_response(&rc->res);
            rc->res.responded = 0;
            http_respond_problem(&rc->res, 400, "bad-request",
                                 "Transfer-Encoding must be chunked (or absent, with Content-Length).");
            return send_response(rc);
        }
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl != NULL) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno != 0 || end == cl || v > rc->limit) {
                respond_too_large(rc);
                return send_response(rc);
            }
        }
        if (rc->ops != NULL && stream_begin(rc) != 0)
            return send_response(rc); /* refused before reading the body */
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rc->too_large) {
            rc->discarded += n;
            return rc->discarded > DISCARD_LIMIT ? MHD_NO : MHD_YES;
        }
        if (rc->ops != NULL) {
            /* Streamed body: hand it over as it comes; after a failure read
             * and drop the rest so that the problem can still be sent. */
            rc->streamed += n;
            if (rc->streamed > rc->limit) {
                if (!rc->ops_failed) {
                    reset_response(&rc->res);
                    rc->res.responded = 0;
                }
                respond_too_large(rc);
                rc->discarded = n;
                return MHD_YES;
            }
            if (!rc->ops_failed && rc->ops->chunk(rc->ops_state, upload_data, n, &rc->res) != 0) {
                rc->ops_failed = 1;
                if (!rc->res.responded)
                    http_respond_problem(&rc->res, 500, NULL, "The server could not complete the request.");
            }
            return MHD_YES;
        }
        if (buf_append(&rc->body, upload_data, n) != 0) {
            /* A chunked body outgrew the limit mid-stream — or the server
             * ran out of memory holding one within it. libmicrohttpd
             * 0.9.75 cannot queue a response while a body is still arriving,
             * so drop what we have, discard up to DISCARD_LIMIT more and
             * answer when the body ends (413, or 503 for our own failure);
             * past that, close the connection. */
            int oom = rc->body.len + n <= rc->body.max;
            buf_free(&rc->body);
            respond_too_large(rc);
            if (oom) {
                reset_response(&rc->res);
                rc->res.responded = 0;
                struct problem *p = http_respond_problem(&rc->res, 503, "service-unavailable",
                                                         "The server is short of memory; try again.");
                if (p != NULL)
                    p->retry_after = 1;
            }
            rc->discarded = n;
        }
        return MHD_YES;
    }

    if (rc->queued)
        return MHD_YES;
    if (rc->ops != NULL) {
        if (!rc->too_large && !rc->ops_failed) {
            rc->res.json_mark = json_load_failures(); /* this thread also serves other connections */
            rc->ops->finish(rc->ops_state, &rc->req, &rc->res);
        }
    } else if (!rc->too_large) {
        rc->req.body = rc->body.data != NULL ? rc->body.data : "";
        rc->req.body_len = rc->body.len;
        dispatch(rc, method);
    }
    return send_response(rc);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct req_ctx *rc = *con_cls;
    (void)conn;
    if (rc == NULL)
        return;
    *con_cls = NULL;
    uint64_t dur = time_mono_ns() - rc->t0;
    /* A request that never got an answer (the client went away) is logged
     * as 499, nginx's "client closed request". */
    int status = rc->queued ? rc->status : 499;
    metrics_record(&s->metrics, rc->route_index, rc->req.method, status, dur);
    log_write_buffered(
        LOG_INFO, "request", LOG_STR, "request_id", rc->request_id, LOG_STR, "method", http_method_name(rc->req.method),
        LOG_STR, "route", rc->req.route_template != NULL ? rc->req.route_template : "unmatched", LOG_INT, "status",
        (long long)status, LOG_DBL, "duration_ms", (double)dur / 1e6, LOG_INT, "bytes", (long long)rc->bytes, LOG_STR,
        "termination", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? NULL : "aborted", LOG_END);
    if (rc->ops != NULL && rc->ops_begun && rc->ops->release != NULL)
        rc->ops->release(rc->ops_state);
    if (rc->upgrade != NULL) {
        if (!rc->upgrade->fired && rc->upgrade->free_fn != NULL)
            rc->upgrade->free_fn(rc->upgrade->ctx);
        free(rc->upgrade);
    }
    reset_response(&rc->res);
    buf_free(&rc->body);
    arena_free(&rc->arena);
    if (rc->conn_ctx != NULL)
        rc->conn_ctx->rc_in_use = 0; /* kept for the connection's next request */
    else
        free(rc);
    atomic_fetch_sub(&s->in_flight, 1);
}

/* libmicrohttpd's own diagnostics go through our logger. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_write(LOG_DEBUG, "libmicrohttpd", LOG_STR, "detail", msg, LOG_END);
}

/* ---- lifecycle ---------------------------------------------------------- */

struct http_server *http_server_new(const struct config *cfg, const struct router *router,
                                    const struct health_registry *health)
{
    struct http_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cfg = cfg;
    s->router = router;
    s->health = health;
    s->started_ms = time_now_ms();
    s->listen_fd = -1;
    atomic_store(&s->state, HTTP_SERVER_STARTING);
    metrics_init(&s->metrics, router);
    return s;
}

/* Count open connections, so that a drain after a hand-over can wait for
 * keep-alive connections to close on their own (each answer then carries
 * Connection: close) instead of cutting one a client is about to reuse. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&s->connections, 1);
        /* A new connection must send its request head within the header
         * timeout (slow-header clients); on_request lifts it to the idle
         * timeout once the head is in. Without memory for the context the
         * connection still works, with per-request allocations. */
        struct conn_ctx *cc = malloc(sizeof(*cc));
        if (cc != NULL) {
            cc->rc_in_use = 0;
            cc->headers_seen = 0;
            format_peer(conn, cc->peer, sizeof(cc->peer));
        }
        *socket_ctx = cc;
        MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg->http_header_timeout_seconds);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&s->connections, 1);
        free(*socket_ctx);
        *socket_ctx = NULL;
    }
}

/*
 * A listening socket handed to us under systemd's socket-activation protocol
 * (sd_listen_fds(3)): LISTEN_PID is this process and LISTEN_FDS=1 names fd 3.
 * systemd socket units and `clarity serve`'s own hand-over (SIGUSR2, see
 * cli/restart.h) both use it. Returns the descriptor, -1 when none was
 * passed to this process, or -2 with a message in err.
 */
#define LISTEN_FDS_START 3
static int inherited_socket(char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID");
    const char *nfds = getenv("LISTEN_FDS");
    if (pid == NULL || nfds == NULL)
        return -1;
    char *end = NULL;
    long p = strtol(pid, &end, 10);
    if (end == pid || *end != '\0' || p != (long)getpid())
        return -1; /* meant for another process (our parent, say) */
    if (strcmp(nfds, "1") != 0) {
        snprintf(err, errlen, "LISTEN_FDS=%s: clarity serve takes exactly one listening socket", nfds);
        return -2;
    }
    int fd = LISTEN_FDS_START, type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM) {
        snprintf(err, errlen, "LISTEN_FDS: descriptor %d is not a stream socket", fd);
        return -2;
    }
    len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening) {
        snprintf(err, errlen, "LISTEN_FDS: descriptor %d is not listening", fd);
        return -2;
    }
    /* Not inherited by anything we start; a hand-over passes it on itself. */
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int http_server_start(struct http_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    int lfd = inherited_socket(err, errlen);
    if (lfd == -2)
        return -1;
    struct MHD_OptionItem extra[] = {
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {lfd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_END, lfd, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (lfd >= 0) {
        socklen_t sl = sizeof(ss);
        if (getsockname(lfd, (struct sockaddr *)&ss, &sl) != 0 ||
            (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
            snprintf(err, errlen, "LISTEN_FDS: descriptor %d is not a TCP socket", lfd);
            return -1;
        }
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ITC | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_UPGRADE;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (lfd >= 0) {
        if (ss.ss_family == AF_INET6)
            flags |= MHD_USE_IPv6; /* HOST and PORT do not apply */
    } else if (inet_pton(AF_INET, s->cfg->host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)s->cfg->port);
    } else if (inet_pton(AF_INET6, s->cfg->host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)s->cfg->port);
        flags |= MHD_USE_IPv6;
    } else {
        snprintf(err, errlen, "HOST: \"%s\" is not an IPv4 or IPv6 address", s->cfg->host);
        return -1;
    }
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_ARRAY, extra, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg->http_threads,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_SECONDS,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg->http_max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)s->cfg->http_max_connections_per_ip, MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL, MHD_OPTION_END);
    if (s->daemon == NULL) {
        if (lfd >= 0)
            snprintf(err, errlen, "cannot serve on the inherited socket (descriptor %d)", lfd);
        else
            snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)", s->cfg->host,
                     s->cfg->port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info != NULL ? info->port : s->cfg->port;
    info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    s->listen_fd = info != NULL ? (int)info->listen_fd : -1;
    if (lfd >= 0)
        log_info("serving on an inherited socket (LISTEN_FDS)", LOG_INT, "fd", (long long)lfd, LOG_INT, "port",
                 (long long)s->port, LOG_END);
    return 0;
}

int http_server_listen_fd(const struct http_server *s) { return s->listen_fd; }

long http_server_connections(const struct http_server *s)
{
    return atomic_load(&((struct http_server *)s)->connections);
}

int http_server_port(const struct http_server *s) { return s->port; }

void http_server_guard_set(struct http_server *s, http_guard_fn fn, void *ctx)
{
    s->guard = fn;
    s->guard_ctx = ctx;
}

void http_server_state_set(struct http_server *s, enum http_server_state state) { atomic_store(&s->state, (int)state); }

enum http_server_state http_server_state_get(const struct http_server *s)
{
    return (enum http_server_state)atomic_load(&((struct http_server *)s)->state);
}

void http_server_quiesce(struct http_server *s)
{
    if (s->daemon == NULL)
        return;
    /* After a hand-over the socket stays open in the new process, which
     * keeps accepting from the same queue; closing our descriptor only
     * drops our reference. Otherwise this closes the socket. */
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    s->listen_fd = -1;
}

long http_server_in_flight(const struct http_server *s) { return atomic_load(&((struct http_server *)s)->in_flight); }

void http_server_free(struct http_server *s)
{
    if (s == NULL)
        return;
    if (s->daemon != NULL)
        MHD_stop_daemon(s->daemon);
    free(s);
}

const struct config *http_server_config(const struct http_server *s) { return s->cfg; }
const struct health_registry *http_server_health(const struct http_server *s) { return s->health; }
struct metrics *http_server_metrics(struct http_server *s) { return &s->metrics; }
int64_t http_server_started_ms(const struct http_server *s) { return s->started_ms; }
