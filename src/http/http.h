/*
 * http.h — what a handler sees: the request, and the response it fills.
 *
 * A handler fills the response exactly once, with http_respond_json,
 * http_respond_bytes or http_respond_problem. Errors (status >= 400) can only
 * leave as RFC 7807 problems: a handler that passes an error status to the
 * JSON or bytes helpers gets a 500 problem instead, and the mistake is logged.
 *
 * Request-scoped memory comes from req->arena and is released when the
 * request completes.
 */
#ifndef CLARITY_HTTP_HTTP_H
#define CLARITY_HTTP_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/problem.h"
#include "http/router.h"

#define HTTP_MAX_HEADERS 16

struct http_server;
struct MHD_Connection;

struct http_request {
    enum http_method method;
    const char *path;           /* decoded path, no query string */
    const char *route_template; /* the matched route, e.g. "/api/v1/insights/{id}" */
    const struct route_param *params;
    int nparams;
    const char *body; /* NUL-terminated for convenience; may contain NULs */
    size_t body_len;
    const char *request_id;
    struct arena *arena;
    void *route_ctx;            /* the ctx given to router_add */
    struct http_server *server; /* borrowed, for probes and shared services */
    struct MHD_Connection *conn;
    unsigned route_flags; /* the flags given to router_add */
    void *principal;      /* set by the server's guard (auth layer), or NULL */
    char client_ip[64];   /* the peer, or the forwarded client behind a trusted proxy */
};

struct http_header {
    const char *name;
    const char *value;
};

/*
 * A streamed body: fill buf with up to max bytes and return how many, 0 when
 * nothing is ready yet is NOT allowed (block instead), -1 at the end of the
 * stream, -2 on an error (the connection is then closed: the client sees a
 * truncated chunked body, never a false success). Called on the server's
 * threads after the handler returned; ctx is freed with the free function.
 */
typedef long (*http_stream_fn)(void *ctx, char *buf, size_t max);
typedef void (*http_stream_free_fn)(void *ctx);

/*
 * A protocol upgrade (RFC 7230 §6.7; WebSocket, RFC 6455 §4.2.2). After the
 * 101 response has been written, fn receives the raw socket as its own: fd
 * (a duplicate that libmicrohttpd does not know about; fn closes it with
 * close() when the connection is done) and the bytes the server had already
 * read past the request head (extra, extra_len; often 0; valid only during
 * the call). libmicrohttpd forgets the connection as soon as fn returns, so
 * an upgraded socket holds no server memory and no server connection slot.
 * fn runs on a server thread and must not block. ctx is handed over to fn,
 * or freed with free_fn when the upgrade never happens (the client went
 * away, or no descriptor was left for the duplicate).
 */
typedef void (*http_upgrade_fn)(void *ctx, int fd, const char *extra, size_t extra_len);

struct http_response {
    int status;
    const char *content_type;
    char *body; /* heap, owned by the response until sent */
    size_t body_len;
    struct http_header headers[HTTP_MAX_HEADERS];
    int nheaders;
    int responded;
    struct problem problem; /* set when the response is a problem */
    int is_problem;
    struct arena *arena;
    http_stream_fn stream; /* set by http_respond_stream */
    http_stream_free_fn stream_free;
    void *stream_ctx;
    http_upgrade_fn upgrade; /* set by http_respond_upgrade */
    http_stream_free_fn upgrade_free;
    void *upgrade_ctx;
    /* json_load_failures() when the handler started: a JSON body built
     * while a jansson allocation failed may lack members, and is answered
     * 503 instead (http_respond_json; #16). */
    unsigned long json_mark;
};

/*
 * A route whose body is too large to buffer (an Apple Health export) streams
 * it instead. The server routes and runs the guard as soon as the headers
 * are in, then:
 *   begin  — once; may answer (a problem) to refuse the upload; sets *state;
 *   chunk  — for every piece of body as it arrives; non-zero after filling
 *            res with a problem stops the feeding (the rest of the body is
 *            read and dropped, then the problem is sent);
 *   finish — when the body is complete and no chunk failed: fill res;
 *   release — always, once, when the request ends (also on disconnect).
 * max_bytes replaces MAX_REQUEST_BYTES for the route.
 */
struct http_body_ops {
    void (*begin)(struct http_request *req, struct http_response *res, void **state);
    int (*chunk)(void *state, const char *data, size_t len, struct http_response *res);
    void (*finish)(void *state, struct http_request *req, struct http_response *res);
    void (*release)(void *state);
    size_t max_bytes;
};

/* A request header (case-insensitive name) or NULL. Borrowed. */
const char *http_request_header(const struct http_request *req, const char *name);
/* A query-string argument (decoded) or NULL. Borrowed. */
const char *http_request_query(const struct http_request *req, const char *name);
/* A path parameter, copied into the request arena, or NULL. */
const char *http_request_param(const struct http_request *req, const char *name);

/* The socket peer's address as text ("127.0.0.1", "::1"); "" when unknown. */
void http_request_peer_ip(const struct http_request *req, char *out, size_t outlen);

/* 2xx/3xx JSON response. Steals `body` (may be NULL for an empty body). */
void http_respond_json(struct http_response *res, int status, json_t *body);
/* 2xx/3xx response of raw bytes (copied). content_type must be static. */
void http_respond_bytes(struct http_response *res, int status, const char *content_type, const void *data, size_t len);
/* A 2xx response whose body is produced by fn (chunked transfer). The
 * response owns ctx from here on, also when the client goes away. */
void http_respond_stream(struct http_response *res, int status, const char *content_type, http_stream_fn fn, void *ctx,
                         http_stream_free_fn free_fn);
/* A 101 Switching Protocols response that hands the connection to fn (see
 * http_upgrade_fn). The handler adds the protocol's headers (Upgrade,
 * Connection, Sec-WebSocket-Accept) with http_response_header. The response
 * owns ctx from here on. */
void http_respond_upgrade(struct http_response *res, http_upgrade_fn fn, void *ctx, http_stream_free_fn free_fn);
/* A problem response (status >= 400). slug NULL picks the status's slug.
 * Returns the problem so that callers can add field errors. */
struct problem *http_respond_problem(struct http_response *res, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a response header (both strings copied into the arena). A header the
 * handler sets replaces the server's default of the same name, and an
 * earlier one of its own (except Set-Cookie, which may repeat). */
void http_response_header(struct http_response *res, const char *name, const char *value);

#endif
