/*
 * ws.h — a WebSocket (RFC 6455) event loop that knows nothing of what the
 * messages mean: every upgraded socket of one service on one epoll thread.
 *
 * The HTTP layer completes the opening handshake and hands the raw socket
 * over (ws_loop_adopt); from there the loop owns it: framing with wslay
 * (unmasked client frames, bad opcodes, reserved bits and fragmented control
 * frames fail the connection with 1002, a message over max_message with
 * 1009), UTF-8 of text messages (1007, RFC 6455 §8.1), heartbeat pings, the
 * idle timeout, the per-connection send cap and the closing handshake. No
 * thread is held by an idle socket, and an idle socket holds no wslay
 * context (two 4 KiB buffers): it is made when there is something to do.
 *
 * The application is a struct of callbacks, as in h2o's WebSocket glue: a
 * message arrives whole through on_message, the end through on_close. All
 * callbacks run on the loop thread, and so must every ws_conn_* call. Other
 * threads reach the loop only through ws_loop_adopt and ws_loop_post (a
 * locked inbox and an eventfd).
 *
 * Send cap: what waits to be sent to one connection (messages and control
 * frames alike, the pongs wslay queues for each ping included, each frame
 * counted with WS_FRAME_OVERHEAD bytes) may not pass max_queued: past it
 * the connection stops reading and is closed with 1008 — a slow reader, or
 * a client that floods pings without reading the pongs (issue #16).
 */
#ifndef CLARITY_HTTP_WS_H
#define CLARITY_HTTP_WS_H

#include <stddef.h>
#include <stdint.h>

/* Close codes (RFC 6455 §7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY_VIOLATION 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL_ERROR 1011

/* Bytes counted per queued frame besides its payload (wslay's bookkeeping
 * and the allocator's). */
#define WS_FRAME_OVERHEAD 128u

struct ws_loop;
struct ws_conn;

/* The application: every callback runs on the loop thread; app is the
 * pointer given to ws_loop_new. */
struct ws_handler {
    /* A socket was adopted; ws_conn_data(c) is what ws_loop_adopt got. */
    void (*on_open)(void *app, struct ws_conn *c);
    /* One whole message (fragments joined); text: 1 for a text message
     * (valid UTF-8), 0 for binary. msg is borrowed for the call. */
    void (*on_message)(void *app, struct ws_conn *c, const uint8_t *msg, size_t len, int text);
    /* Before the idle close (may send a last message). May be NULL. */
    void (*on_idle)(void *app, struct ws_conn *c);
    /* The connection is gone (any way); the last call that sees it. */
    void (*on_close)(void *app, struct ws_conn *c);
    /* An item given to ws_loop_post. */
    void (*on_post)(void *app, void *item);
    /* An item or a connection's data that will never reach the callbacks
     * above (the loop stopped first). May be NULL. */
    void (*on_drop)(void *app, void *item_or_data, int is_conn_data);
};

struct ws_options {
    size_t max_message;   /* a message over this is not read: close 1009 */
    size_t max_queued;    /* the send cap (see above) */
    int64_t heartbeat_ms; /* ping after this long; no pong for as long: close 1001 */
    int64_t idle_ms;      /* no client message for this long: on_idle, close 1000 */
};

/* Start the loop thread. Returns the loop, or NULL with a message in err.
 * handler and app are borrowed until ws_loop_free. */
struct ws_loop *ws_loop_new(const struct ws_options *o, const struct ws_handler *h, void *app, char *err,
                            size_t errlen);

/*
 * Any thread: hand over an upgraded socket with the bytes the HTTP layer
 * read past the request head (copied). From here the loop owns fd, and data
 * (the application's per-connection state) reaches on_open, later on_close,
 * or on_drop. Returns 0, or -1 (out of memory or stopped: fd is closed,
 * data untouched and still the caller's).
 */
int ws_loop_adopt(struct ws_loop *l, int fd, const char *extra, size_t extra_len, void *data);

/* Any thread: run on_post(item) on the loop. -1 when out of memory or
 * stopped (item untouched, still the caller's). */
int ws_loop_post(struct ws_loop *l, void *item);

/* Connections adopted and not yet freed, from any thread. */
long ws_loop_connections(const struct ws_loop *l);

/* Stop the thread, close every socket (on_close for each), hand what was
 * posted and never run to on_drop, free. Accepts NULL. */
void ws_loop_free(struct ws_loop *l);

/* ---- loop thread only ---- */

/* The data given to ws_loop_adopt. */
void *ws_conn_data(const struct ws_conn *c);

/* 1 once the closing handshake began (nothing more is sent). */
int ws_conn_closing(const struct ws_conn *c);

/* Queue a text message (copied). Returns 0, or -1 when the connection is
 * closing, out of memory, or over the send cap (then it closes 1008). */
int ws_conn_send_text(struct ws_conn *c, const char *text, size_t len);

/* Start the closing handshake after what is already queued; the socket is
 * dropped when it completes or after WS_CLOSE_WAIT_MS. reason: at most 120
 * bytes are sent. */
void ws_conn_close(struct ws_conn *c, int code, const char *reason);
#define WS_CLOSE_WAIT_MS 2000

/* Call fn for every connection that is open and not closing. fn may send
 * and close, but not free. */
void ws_loop_each(struct ws_loop *l, void (*fn)(void *ctx, struct ws_conn *c), void *ctx);

/* 1 when s[0..n) is well-formed UTF-8 (RFC 3629 §4): no overlong forms, no
 * surrogates, nothing above U+10FFFF. Any thread. */
int ws_utf8_valid(const unsigned char *s, size_t n);

#endif
