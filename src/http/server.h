/*
 * server.h — the HTTP server: libmicrohttpd's epoll thread pool, the fixed
 * middleware chain and graceful draining.
 *
 * Middleware order for every request (ARCHITECTURE.md):
 *   request id → access log → security headers → CORS → size limit → route
 *   → handler.
 * The request id is the client's X-Request-ID when it is sane (1–128 chars of
 * [A-Za-z0-9._:-]), else a new UUID; it is echoed on every response.
 */
#ifndef CLARITY_HTTP_SERVER_H
#define CLARITY_HTTP_SERVER_H

#include <stddef.h>

#include "core/config.h"
#include "core/health.h"
#include "http/metrics.h"
#include "http/http.h"
#include "http/router.h"

enum http_server_state { HTTP_SERVER_STARTING = 0, HTTP_SERVER_READY, HTTP_SERVER_DRAINING };

struct http_server;

/* A server over a configured router and health registry (both borrowed; they
 * must outlive the server and are read-only once it starts). NULL on OOM. */
struct http_server *http_server_new(const struct config *cfg, const struct router *router,
                                    const struct health_registry *health);

/*
 * A guard runs after routing and before every handler (the application's
 * authentication, rate limiting and access rules live in it; the HTTP layer
 * knows nothing of them). It returns 0 to let the handler run, or non-zero
 * after filling res with a problem. It may add headers to res either way.
 */
typedef int (*http_guard_fn)(void *ctx, struct http_request *req, struct http_response *res);

/* Install the guard before http_server_start. */
void http_server_guard_set(struct http_server *s, http_guard_fn fn, void *ctx);

/* Bind HOST:PORT and start the thread pool. 0, or -1 with a message in err.
 * A listening socket passed under systemd's socket-activation protocol
 * (LISTEN_FDS=1 and LISTEN_PID naming this process: fd 3) is used instead
 * of binding, and HOST and PORT are then ignored. */
int http_server_start(struct http_server *s, char *err, size_t errlen);

/* The listening socket (to hand over to a new process), or -1 once
 * quiesced. */
int http_server_listen_fd(const struct http_server *s);

/* Client connections open now (keep-alive ones included). */
long http_server_connections(const struct http_server *s);

/* The bound port (useful with PORT=0). */
int http_server_port(const struct http_server *s);

void http_server_state_set(struct http_server *s, enum http_server_state state);
enum http_server_state http_server_state_get(const struct http_server *s);

/*
 * Begin draining: readiness already reads 503 (set the state first); stop
 * accepting and close the listening socket so new connections are refused.
 * Requests already received keep being served.
 */
void http_server_quiesce(struct http_server *s);

/* Requests received and not yet completed. */
long http_server_in_flight(const struct http_server *s);

/* Stop every thread and close every connection, then free. Accepts NULL. */
void http_server_free(struct http_server *s);

/* Shared state for handlers (borrowed). */
const struct config *http_server_config(const struct http_server *s);
const struct health_registry *http_server_health(const struct http_server *s);
struct metrics *http_server_metrics(struct http_server *s);
int64_t http_server_started_ms(const struct http_server *s);

/* 1 when id is an acceptable client request id. */
int http_request_id_is_sane(const char *id);

/* 1 when origin is allowed by the CORS list ("*" allows any). */
int http_cors_origin_allowed(const struct config *cfg, const char *origin);

#endif
