/*
 * ws.c — the WebSocket event loop. See ws.h.
 *
 * One loop thread owns every connection: an epoll set over the upgraded
 * sockets plus an eventfd through which other threads post work (adopt a
 * socket, run an application item). wslay does the framing (RFC 6455 §5)
 * and answers pings and the closing handshake; what it does not do is done
 * here: UTF-8 of text messages, the send cap over every queued frame,
 * heartbeats, the idle timeout and the close deadline.
 *
 * Lock: `mu` guards the inbox only (adopt and post from any thread);
 * everything else is touched by the loop thread alone.
 */
#include "http/ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "core/timeutil.h"

#define WS_MAX_EVENTS 256
#define WS_TICK_MS 250

enum item_kind { ITEM_ADOPT, ITEM_APP };

/* Work posted to the loop. */
struct item {
    enum item_kind kind;
    struct ws_conn *conn; /* ITEM_ADOPT */
    void *app_item;       /* ITEM_APP */
    struct item *next;
};

struct ws_conn {
    struct ws_loop *loop;
    int fd;
    void *data; /* the application's */
    wslay_event_context_ptr ws;
    char *extra; /* bytes read by the HTTP layer past the head */
    size_t extra_len, extra_off;
    int64_t last_rx_ms;   /* last client message (idle timeout) */
    int64_t last_io_ms;   /* last read or queued write (wslay context release) */
    uint64_t rx_fed;      /* bytes handed to wslay */
    uint64_t rx_done;     /* bytes of the frames wslay finished */
    uint64_t rx_frame;    /* header + payload bytes of the frame in progress */
    int rx_mid_message;   /* a fragmented message is in progress */
    int64_t last_ping_ms; /* last ping we sent (at first: the adoption) */
    int ping_outstanding;
    int closing;
    int close_code; /* a close waiting for queued messages to go out */
    char close_reason[124];
    int io_failed; /* the socket itself failed (EOF, reset) */
    int64_t close_deadline_ms;
    int opened; /* on_open ran: on_close will */
    int dead;
    int dirty; /* queued by another connection's event: settle */
    uint32_t events;
    struct ws_conn *prev, *next, *dirty_next;
};

struct ws_loop {
    struct ws_options o;
    const struct ws_handler *h;
    void *app;
    int epfd, evfd;
    pthread_t thread;
    int started;
    pthread_mutex_t mu; /* the inbox */
    struct item *inbox, *inbox_tail;
    _Atomic int stop;
    _Atomic long nconn;
    int reap_needed;       /* loop only: some connection is dead */
    struct ws_conn *conns; /* loop only */
    struct ws_conn *dirty; /* loop only: connections with unsent frames */
};

static int64_t mono_ms(void) { return (int64_t)(time_mono_ns() / 1000000u); }

int ws_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else
            return 0;
        if (n - i < len)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += len;
    }
    return 1;
}

/* ---- sending ------------------------------------------------------------------ */

/* Mark c for freeing after the current batch of events (other events of the
 * batch may still name it). */
static void conn_kill(struct ws_conn *c)
{
    c->dead = 1;
    c->loop->reap_needed = 1;
}

static int conn_ws(struct ws_conn *c);

/* 1 when what waits to be sent (messages and control frames alike) is over
 * the cap. */
static int conn_over_cap(struct ws_conn *c)
{
    size_t bytes = wslay_event_get_queued_msg_length(c->ws);
    size_t frames = wslay_event_get_queued_msg_count(c->ws);
    return bytes + frames * WS_FRAME_OVERHEAD > c->loop->o.max_queued;
}

static void mark_dirty(struct ws_conn *c)
{
    if (c->dirty)
        return;
    c->dirty = 1;
    c->dirty_next = c->loop->dirty;
    c->loop->dirty = c;
}

/* Queue the close frame once the messages before it are out: wslay sends
 * control frames ahead of queued messages, and a goodbye must reach the
 * client before the close. */
static void conn_close_flush(struct ws_conn *c)
{
    if (c->close_code == 0 || conn_ws(c) != 0 || wslay_event_get_queued_msg_count(c->ws) > 0)
        return;
    int code = c->close_code;
    c->close_code = 0;
    if (wslay_event_get_close_sent(c->ws))
        return;
    if (wslay_event_queue_close(c->ws, (uint16_t)code, (const uint8_t *)c->close_reason, strlen(c->close_reason)) != 0)
        conn_kill(c);
}

void ws_conn_close(struct ws_conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_deadline_ms = mono_ms() + WS_CLOSE_WAIT_MS;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%.120s", reason != NULL ? reason : "");
    conn_close_flush(c);
    mark_dirty(c);
}

int ws_conn_send_text(struct ws_conn *c, const char *text, size_t len)
{
    if (c->closing || c->dead || text == NULL || conn_ws(c) != 0)
        return -1;
    c->last_io_ms = mono_ms();
    if (conn_over_cap(c)) {
        ws_conn_close(c, WS_CLOSE_POLICY_VIOLATION, "client too slow");
        return -1;
    }
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    if (wslay_event_queue_msg(c->ws, &m) != 0) {
        conn_kill(c);
        return -1;
    }
    mark_dirty(c);
    return 0;
}

void *ws_conn_data(const struct ws_conn *c) { return c->data; }

int ws_conn_closing(const struct ws_conn *c) { return c->closing || c->dead; }

/* ---- wslay callbacks ------------------------------------------------------------ */

static ssize_t on_ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user_data)
{
    struct ws_conn *c = user_data;
    (void)flags;
    if (c->extra_off < c->extra_len) {
        size_t n = c->extra_len - c->extra_off;
        if (n > len)
            n = len;
        memcpy(buf, c->extra + c->extra_off, n);
        c->extra_off += n;
        c->rx_fed += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, 0);
        if (r > 0) {
            c->rx_fed += (uint64_t)r;
            return r;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        } else {
            c->io_failed = 1;
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE); /* EOF or reset */
        }
        return -1;
    }
}

static ssize_t on_ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags, void *user_data)
{
    struct ws_conn *c = user_data;
    /* WSLAY_MSG_MORE is not passed on as MSG_MORE: corking holds a small
     * reply back for up to 200 ms when no further write comes. */
    (void)flags;
    for (;;) {
        ssize_t r = send(c->fd, data, len, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        else
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

/* Frame accounting (RFC 6455 §5.2): a client frame's header is 2 bytes,
 * the extended length (2 or 8 bytes when the payload has 126 or more), and
 * the 4-byte mask. A sender may use a longer length form than needed; the
 * count then stays below what was read and the context is simply kept. */
static void on_ws_frame_start(wslay_event_context_ptr ws, const struct wslay_event_on_frame_recv_start_arg *arg,
                              void *user_data)
{
    struct ws_conn *c = user_data;
    uint64_t n = arg->payload_length;
    (void)ws;
    c->rx_frame = 2 + 4 + (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8) + n;
    if ((arg->opcode & 0x8) == 0) /* data or continuation, not control */
        c->rx_mid_message = !arg->fin;
}

static void on_ws_frame_end(wslay_event_context_ptr ws, void *user_data)
{
    struct ws_conn *c = user_data;
    (void)ws;
    c->rx_done += c->rx_frame;
    c->rx_frame = 0;
}

static void on_ws_msg(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    struct ws_conn *c = user_data;
    struct ws_loop *l = c->loop;
    if (arg->opcode == WSLAY_PONG) {
        c->ping_outstanding = 0;
        return;
    }
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->closing = 1; /* wslay answers the close frame itself */
        if (c->close_deadline_ms == 0)
            c->close_deadline_ms = mono_ms() + WS_CLOSE_WAIT_MS;
        return;
    }
    c->last_rx_ms = mono_ms();
    if (arg->opcode == WSLAY_PING) {
        /* wslay queues the pong itself (RFC 6455 §5.5.3), outside
         * ws_conn_send_text: check the cap here, or a client that pings
         * without reading grows our memory without bound (issue #16). */
        if (!c->closing && conn_over_cap(c)) {
            ws_conn_close(c, WS_CLOSE_POLICY_VIOLATION, "client too slow");
            wslay_event_shutdown_read(ws);
        }
        return;
    }
    if (c->closing || (arg->opcode != WSLAY_TEXT_FRAME && arg->opcode != WSLAY_BINARY_FRAME))
        return;
    int text = arg->opcode == WSLAY_TEXT_FRAME;
    if (text && !ws_utf8_valid(arg->msg, arg->msg_length)) {
        /* RFC 6455 §8.1: a text message that is not UTF-8 fails the
         * connection with 1007. */
        ws_conn_close(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        wslay_event_shutdown_read(ws);
        return;
    }
    l->h->on_message(l->app, c, arg->msg, arg->msg_length, text);
}

/* ---- connection life ---------------------------------------------------------- */

static void conn_update_events(struct ws_conn *c)
{
    uint32_t want = EPOLLRDHUP;
    if (c->ws == NULL || wslay_event_want_read(c->ws))
        want |= EPOLLIN;
    if (c->ws != NULL && wslay_event_want_write(c->ws))
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = want;
    else
        conn_kill(c);
}

/* After any activity: send what is queued, then decide whether the
 * connection is finished. */
static void conn_settle(struct ws_conn *c)
{
    if (c->dead)
        return;
    if (c->ws == NULL) { /* idle: nothing queued, waiting to read */
        conn_update_events(c);
        return;
    }
    if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        conn_kill(c);
        return;
    }
    if (c->close_code != 0) {
        conn_close_flush(c);
        if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
            conn_kill(c);
            return;
        }
    }
    if (!wslay_event_want_read(c->ws) && !wslay_event_want_write(c->ws)) {
        conn_kill(c); /* closing handshake done, or reading shut after an error */
        return;
    }
    conn_update_events(c);
}

/* Settle every connection something was queued for during this round. */
static void settle_dirty(struct ws_loop *l)
{
    while (l->dirty != NULL) {
        struct ws_conn *c = l->dirty;
        l->dirty = c->dirty_next;
        c->dirty = 0;
        c->dirty_next = NULL;
        conn_settle(c);
    }
}

static void conn_free(struct ws_loop *l, struct ws_conn *c)
{
    if (c->events != 0 || c->ws != NULL)
        epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->opened)
        l->h->on_close(l->app, c);
    else if (l->h->on_drop != NULL)
        l->h->on_drop(l->app, c->data, 1);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ws != NULL)
        wslay_event_context_free(c->ws);
    close(c->fd);
    free(c->extra);
    free(c);
    atomic_fetch_sub(&l->nconn, 1);
}

static void conn_readable(struct ws_conn *c)
{
    if (conn_ws(c) != 0)
        return;
    c->last_io_ms = mono_ms();
    if (wslay_event_recv(c->ws) != 0) {
        if (c->io_failed || wslay_event_get_close_sent(c->ws)) {
            conn_kill(c);
            return;
        }
        /* A framing error wslay reports instead of closing (RFC 6455 §7.1.7:
         * fail the connection with 1002). */
        c->closing = 0;
        c->close_code = 0;
        ws_conn_close(c, WS_CLOSE_PROTOCOL_ERROR, "protocol error");
        c->close_deadline_ms = mono_ms() + 200;
    }
    conn_settle(c);
}

/*
 * wslay's context holds two fixed 4 KiB buffers, nearly all an idle socket
 * would cost. It exists only while there is something to do: conn_ws makes
 * it when a socket becomes readable or a message must go out, and
 * conn_ws_release frees it again once the socket has been quiet for a tick
 * with nothing queued, nothing half-read (every byte read belongs to a frame
 * wslay finished) and no fragmented message open. Between messages a fresh
 * context is in the same state as the old one (RFC 6455 keeps no state
 * across messages but the closing handshake, which keeps its context).
 */
static int conn_ws(struct ws_conn *c)
{
    static const struct wslay_event_callbacks cbs = {on_ws_recv, on_ws_send,      NULL,     on_ws_frame_start,
                                                     NULL,       on_ws_frame_end, on_ws_msg};
    if (c->ws != NULL)
        return 0;
    if (wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
        c->ws = NULL;
        conn_kill(c);
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)c->loop->o.max_message);
    return 0;
}

static void conn_ws_release(struct ws_conn *c, int64_t now)
{
    if (c->ws == NULL || c->dead || c->closing || c->close_code != 0 || now - c->last_io_ms < WS_TICK_MS ||
        c->rx_fed != c->rx_done || c->rx_frame != 0 || c->rx_mid_message || c->extra_off != c->extra_len ||
        wslay_event_want_write(c->ws) || wslay_event_get_queued_msg_count(c->ws) > 0)
        return;
    wslay_event_context_free(c->ws);
    c->ws = NULL;
    free(c->extra);
    c->extra = NULL;
    c->extra_len = c->extra_off = 0;
}

/* ITEM_ADOPT on the loop: register, then the application's on_open. */
static void conn_start(struct ws_loop *l, struct ws_conn *c)
{
    c->next = l->conns;
    if (l->conns != NULL)
        l->conns->prev = c;
    l->conns = c;
    if (conn_ws(c) != 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_kill(c);
        return;
    }
    c->events = ev.events;
    /* The first ping goes out one heartbeat interval after the adoption. */
    c->last_rx_ms = c->last_io_ms = c->last_ping_ms = mono_ms();
    c->opened = 1;
    l->h->on_open(l->app, c);
    /* Frames that arrived with the request head are not signalled by epoll. */
    if (c->extra_len > 0)
        conn_readable(c);
    else
        conn_settle(c);
}

static void process_inbox(struct ws_loop *l)
{
    uint64_t v;
    ssize_t r = read(l->evfd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&l->mu);
    struct item *it = l->inbox;
    l->inbox = l->inbox_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    while (it != NULL) {
        struct item *next = it->next;
        if (it->kind == ITEM_ADOPT)
            conn_start(l, it->conn);
        else
            l->h->on_post(l->app, it->app_item);
        free(it);
        it = next;
    }
}

/* Timers, every WS_TICK_MS: heartbeat pings, idle timeout, close waits. */
static void tick(struct ws_loop *l, int64_t now)
{
    for (struct ws_conn *c = l->conns; c != NULL; c = c->next) {
        if (c->dead)
            continue;
        if (c->closing) {
            if (now >= c->close_deadline_ms)
                conn_kill(c);
            continue;
        }
        if (now - c->last_rx_ms >= l->o.idle_ms) {
            if (l->h->on_idle != NULL)
                l->h->on_idle(l->app, c);
            ws_conn_close(c, WS_CLOSE_NORMAL, "idle timeout");
        } else if (c->ping_outstanding && now - c->last_ping_ms >= l->o.heartbeat_ms) {
            /* No pong for a whole heartbeat interval: the peer is gone. */
            ws_conn_close(c, WS_CLOSE_GOING_AWAY, "heartbeat timeout");
        } else if (now - c->last_ping_ms >= l->o.heartbeat_ms && conn_ws(c) == 0) {
            struct wslay_event_msg m = {WSLAY_PING, (const uint8_t *)"hb", 2};
            if (wslay_event_queue_msg(c->ws, &m) == 0) {
                c->last_ping_ms = now;
                c->ping_outstanding = 1;
                c->last_io_ms = now;
            }
        }
        conn_settle(c);
        conn_ws_release(c, now);
    }
}

static void reap(struct ws_loop *l)
{
    if (!l->reap_needed)
        return;
    l->reap_needed = 0;
    /* Nothing dead may stay on the dirty list. */
    struct ws_conn **pp = &l->dirty;
    while (*pp != NULL) {
        if ((*pp)->dead) {
            (*pp)->dirty = 0;
            *pp = (*pp)->dirty_next;
        } else {
            pp = &(*pp)->dirty_next;
        }
    }
    struct ws_conn *c = l->conns;
    while (c != NULL) {
        struct ws_conn *next = c->next;
        if (c->dead)
            conn_free(l, c);
        c = next;
    }
}

static void *loop_main(void *arg)
{
    struct ws_loop *l = arg;
    struct epoll_event evs[WS_MAX_EVENTS];
    int64_t last_tick = mono_ms();
    while (!atomic_load(&l->stop)) {
        int n = epoll_wait(l->epfd, evs, WS_MAX_EVENTS, WS_TICK_MS);
        for (int i = 0; i < n; i++) {
            struct ws_conn *c = evs[i].data.ptr;
            if (c == NULL) {
                process_inbox(l);
                continue;
            }
            if (c->dead)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                conn_readable(c);
            else if (evs[i].events & EPOLLOUT)
                conn_settle(c);
        }
        settle_dirty(l);
        int64_t now = mono_ms();
        if (now - last_tick >= WS_TICK_MS) {
            tick(l, now);
            last_tick = now;
        }
        reap(l);
    }
    /* Stopping: whatever is left is dropped (the application said goodbye). */
    process_inbox(l);
    for (struct ws_conn *c = l->conns; c != NULL; c = c->next)
        conn_kill(c);
    reap(l);
    return NULL;
}

/* ---- public API ------------------------------------------------------------------ */

void ws_loop_each(struct ws_loop *l, void (*fn)(void *ctx, struct ws_conn *c), void *ctx)
{
    for (struct ws_conn *c = l->conns; c != NULL; c = c->next)
        if (c->opened && !c->dead && !c->closing)
            fn(ctx, c);
}

static int post(struct ws_loop *l, struct item *it)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    if (atomic_load(&l->stop)) {
        rc = -1;
    } else {
        it->next = NULL;
        if (l->inbox_tail != NULL)
            l->inbox_tail->next = it;
        else
            l->inbox = it;
        l->inbox_tail = it;
    }
    pthread_mutex_unlock(&l->mu);
    if (rc == 0) {
        uint64_t one = 1;
        ssize_t w = write(l->evfd, &one, sizeof(one));
        (void)w; /* a full counter still wakes the loop */
    }
    return rc;
}

int ws_loop_post(struct ws_loop *l, void *app_item)
{
    struct item *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return -1;
    it->kind = ITEM_APP;
    it->app_item = app_item;
    if (post(l, it) != 0) {
        free(it);
        return -1;
    }
    return 0;
}

int ws_loop_adopt(struct ws_loop *l, int fd, const char *extra, size_t extra_len, void *data)
{
    struct ws_conn *c = calloc(1, sizeof(*c));
    struct item *it = calloc(1, sizeof(*it));
    if (c != NULL && extra_len > 0 && (c->extra = malloc(extra_len)) == NULL) {
        free(c);
        c = NULL;
    }
    if (c == NULL || it == NULL)
        goto fail;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    /* Replies are small and latency-bound: no Nagle delay. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->loop = l;
    c->fd = fd;
    c->data = data;
    if (extra_len > 0)
        memcpy(c->extra, extra, extra_len);
    c->extra_len = extra_len;
    it->kind = ITEM_ADOPT;
    it->conn = c;
    atomic_fetch_add(&l->nconn, 1);
    if (post(l, it) != 0) {
        atomic_fetch_sub(&l->nconn, 1);
        goto fail;
    }
    return 0;
fail:
    if (c != NULL)
        free(c->extra);
    free(c);
    free(it);
    close(fd);
    return -1;
}

long ws_loop_connections(const struct ws_loop *l) { return atomic_load(&l->nconn); }

struct ws_loop *ws_loop_new(const struct ws_options *o, const struct ws_handler *h, void *app, char *err, size_t errlen)
{
    struct ws_loop *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->o = *o;
    l->h = h;
    l->app = app;
    pthread_mutex_init(&l->mu, NULL);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (l->epfd < 0 || l->evfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->evfd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        snprintf(err, errlen, "cannot start the WebSocket loop thread");
        goto fail;
    }
    l->started = 1;
    return l;
fail:
    ws_loop_free(l);
    return NULL;
}

void ws_loop_free(struct ws_loop *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_mutex_unlock(&l->mu);
    if (l->evfd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(l->evfd, &one, sizeof(one));
        (void)w;
    }
    if (l->started)
        pthread_join(l->thread, NULL);
    /* Items posted while the loop stopped. */
    for (struct item *it = l->inbox; it != NULL;) {
        struct item *next = it->next;
        if (it->kind == ITEM_ADOPT) {
            if (l->h->on_drop != NULL)
                l->h->on_drop(l->app, it->conn->data, 1);
            close(it->conn->fd);
            free(it->conn->extra);
            free(it->conn);
        } else if (l->h->on_drop != NULL) {
            l->h->on_drop(l->app, it->app_item, 0);
        }
        free(it);
        it = next;
    }
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->evfd >= 0)
        close(l->evfd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
