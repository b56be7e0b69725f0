/*
 * hub.c — the chat's event loop, connection registry and protocol. See
 * hub.h; the message formats are in docs/api.md ("Chat").
 *
 * One loop thread owns every connection: an epoll set over the upgraded
 * sockets plus an eventfd through which other threads post work (adopt a
 * socket, deliver an insight, drain). wslay does the framing (RFC 6455 §5):
 * it rejects unmasked client frames, bad opcodes, reserved bits and
 * fragmented control frames with 1002, and messages over the hard cap with
 * 1009; it answers pings and the closing handshake. What wslay does not do
 * is checked here: UTF-8 of text messages (1007, RFC 6455 §8.1) and the
 * chat's own limits.
 *
 * Per-user state (connection count, message budget, insights already
 * delivered) is in a table under the hub's mutex, because the HTTP threads
 * and the insight poller read it too.
 */
#include "chat/hub.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "chat/answer.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/queue.h"
#include "store/store.h"

#define HUB_BUCKETS 1024u
#define HUB_MAX_EVENTS 256
#define HUB_TICK_MS 250
/* A message over this many times the configured limit is not read at all:
 * the connection is closed with 1009 (RFC 6455 §7.4.1). Between the limit
 * and this cap the message is read, dropped and answered MESSAGE_TOO_LARGE. */
#define HUB_HARD_CAP_FACTOR 4u
/* Replies waiting for a slow reader beyond this: close with 1008. Every
 * queued frame counts, control frames included (the pongs wslay queues on
 * its own for each ping, RFC 6455 §5.5.3), each with HUB_FRAME_OVERHEAD
 * bytes for wslay's bookkeeping and the allocator, so that a client that
 * floods pings and never reads is cut off instead of growing our memory. */
#define HUB_MAX_QUEUED_BYTES (4u << 20)
#define HUB_FRAME_OVERHEAD 128u
/* How long a closing handshake may take before the socket is dropped. */
#define HUB_CLOSE_WAIT_MS 2000
#define HUB_SENT_RING 16
#define HUB_POLL_BATCH 5

enum item_kind { ITEM_ADOPT, ITEM_PUSH, ITEM_DRAIN, ITEM_ROOM, ITEM_CONN };

/* Answers are prepared off the loop (they read the store or analyse), by
 * HUB_ANSWER_THREADS threads, and handed back as ITEM_ROOM / ITEM_CONN. */
#define HUB_ANSWER_THREADS 2
#define HUB_MAX_JOBS 1024

enum job_kind { JOB_MESSAGE, JOB_INSIGHT };

struct job {
    enum job_kind kind;
    char conn_id[37];
    char user_id[64];
    char room_id[72];
    char in_reply_to[40];
    char *text;              /* JOB_MESSAGE: the question */
    json_t *content;         /* JOB_INSIGHT: the posted content (owned) */
    struct job *next;
};

struct conn;

/* Work posted to the loop. */
struct item {
    enum item_kind kind;
    struct conn *conn;       /* ITEM_ADOPT */
    char user_id[64];        /* ITEM_PUSH */
    char target[72];         /* ITEM_ROOM: room id; ITEM_CONN: connection id */
    char insight_id[40];
    char *text;              /* ITEM_PUSH: the message, heap */
    struct item *next;
};

/* A user with sockets on this instance (or a room owner). */
struct user {
    char id[64];
    int nconn;
    double tokens;           /* message budget (token bucket) */
    int64_t refill_ms;
    int64_t watermark_ms;    /* insights created after this are new */
    char sent[HUB_SENT_RING][40]; /* insight ids delivered, newest last */
    int nsent;
    struct user *next;
};

struct room {
    char id[72];
    char owner[64];
    struct room *next;
};

/* A notify from the pipeline, waiting for the poller to read the insight. */
struct lookup {
    char user_id[64];
    char insight_id[40];
    struct lookup *next;
};

struct conn {
    struct chat_hub *hub;
    int fd;
    wslay_event_context_ptr ws;
    char user_id[64];
    char room_id[72];
    char id[37];
    char request_id[129];
    char *extra;             /* bytes read by the HTTP layer past the head */
    size_t extra_len, extra_off;
    int64_t last_rx_ms;      /* last client message (idle timeout) */
    int64_t last_io_ms;      /* last read or queued write (wslay context release) */
    uint64_t rx_fed;         /* bytes handed to wslay */
    uint64_t rx_done;        /* bytes of the frames wslay finished */
    uint64_t rx_frame;       /* header + payload bytes of the frame in progress */
    int rx_mid_message;      /* a fragmented message is in progress */
    int64_t last_ping_ms;    /* last ping we sent (at first: the upgrade) */
    int ping_outstanding;
    int closing;
    int close_code;          /* a close waiting for queued messages to go out */
    char close_reason[124];
    int io_failed;           /* the socket itself failed (EOF, reset) */
    int64_t close_deadline_ms;
    int counted;             /* holds one of the user's connection slots */
    int dead;
    uint32_t events;
    struct conn *prev, *next;
};

struct chat_hub {
    struct chat_services svc;
    size_t max_message;
    double per_minute;
    int max_conns;
    int64_t heartbeat_ms, idle_ms;
    size_t max_points;
    int64_t poll_ms;
    int64_t safety_poll_ms;    /* poll interval while LISTEN works */

    int epfd, evfd;
    pthread_t loop, poller, listener_thread;
    int loop_started, poller_started, listener_started;
    struct store_listener *listener; /* PostgreSQL insight notifications */
    _Atomic int listening;     /* the LISTEN session is up */
    _Atomic int resync;        /* notifications may have been missed: poll once */
    pthread_t answerers[HUB_ANSWER_THREADS];
    int nanswerers;
    pthread_cond_t job_cond;
    struct job *jobs, *jobs_tail;
    size_t njobs;
    pthread_mutex_t mu;
    pthread_cond_t poll_cond;
    struct item *inbox, *inbox_tail;
    struct lookup *lookups;
    struct user *users[HUB_BUCKETS];
    struct room *rooms[HUB_BUCKETS];
    _Atomic int open;
    _Atomic int stop;
    _Atomic long nconn;
    int64_t drain_deadline_ms; /* loop only */
    int reap_needed;           /* loop only: some connection is dead */
    struct conn *conns;        /* loop only */
};

/* ---- small helpers --------------------------------------------------------- */

static unsigned bucket_of(const char *s)
{
    /* FNV-1a */
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % HUB_BUCKETS;
}

/* The user's entry, created when create is set. Caller holds mu. */
static struct user *user_find(struct chat_hub *h, const char *id, int create)
{
    unsigned b = bucket_of(id);
    for (struct user *u = h->users[b]; u != NULL; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    if (!create)
        return NULL;
    struct user *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->tokens = h->per_minute;
    u->refill_ms = time_now_ms();
    u->watermark_ms = u->refill_ms;
    u->next = h->users[b];
    h->users[b] = u;
    return u;
}

/* Drop a user entry that holds nothing any more. Caller holds mu. */
static void user_release(struct chat_hub *h, struct user *dead)
{
    if (dead->nconn > 0)
        return;
    struct user **pp = &h->users[bucket_of(dead->id)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if (*pp == dead) {
            *pp = dead->next;
            free(dead);
            return;
        }
}

/* 1 when the insight id was delivered to the user before; records it. */
static int user_seen(struct user *u, const char *insight_id)
{
    int n = u->nsent < HUB_SENT_RING ? u->nsent : HUB_SENT_RING;
    for (int i = 0; i < n; i++)
        if (strcmp(u->sent[i], insight_id) == 0)
            return 1;
    snprintf(u->sent[u->nsent % HUB_SENT_RING], sizeof(u->sent[0]), "%s", insight_id);
    u->nsent++;
    return 0;
}

static void post(struct chat_hub *h, struct item *it)
{
    pthread_mutex_lock(&h->mu);
    it->next = NULL;
    if (h->inbox_tail != NULL)
        h->inbox_tail->next = it;
    else
        h->inbox = it;
    h->inbox_tail = it;
    pthread_mutex_unlock(&h->mu);
    uint64_t one = 1;
    ssize_t w = write(h->evfd, &one, sizeof(one));
    (void)w; /* a full counter still wakes the loop */
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

static int64_t mono_ms(void) { return (int64_t)(time_mono_ns() / 1000000u); }

static json_t *now_json(void)
{
    char ts[40];
    time_format_rfc3339_ms(time_now_ms(), ts, sizeof(ts));
    return json_string(ts);
}

/*
 * 1 when s[0..n) is well-formed UTF-8 (RFC 3629 §4): no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
static int utf8_valid(const unsigned char *s, size_t n)
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

/* ---- sending ----------------------------------------------------------------- */

/* Mark c for freeing after the current batch of events (other events of the
 * batch may still name it). */
static void conn_kill(struct conn *c)
{
    c->dead = 1;
    c->hub->reap_needed = 1;
}

static void conn_close(struct conn *c, int code, const char *reason);

static int conn_ws(struct conn *c);

/* 1 when what waits to be sent (messages and control frames alike) is
 * over the per-connection cap. */
static int conn_over_cap(struct conn *c)
{
    size_t bytes = wslay_event_get_queued_msg_length(c->ws);
    size_t frames = wslay_event_get_queued_msg_count(c->ws);
    return bytes + frames * HUB_FRAME_OVERHEAD > HUB_MAX_QUEUED_BYTES;
}

/* Queue a text message (copied by wslay). */
static void conn_send_text(struct conn *c, const char *text)
{
    if (c->closing || text == NULL || conn_ws(c) != 0)
        return;
    c->last_io_ms = mono_ms();
    if (conn_over_cap(c)) {
        conn_close(c, CHAT_CLOSE_POLICY_VIOLATION, "client too slow");
        return;
    }
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, strlen(text)};
    if (wslay_event_queue_msg(c->ws, &m) != 0)
        conn_kill(c);
}

/* Queue a message object (stolen). */
static void conn_send(struct conn *c, json_t *o)
{
    if (o == NULL)
        return;
    char *s = dump(o);
    if (s == NULL) {
        conn_close(c, CHAT_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    conn_send_text(c, s);
    free(s);
}

static void send_error(struct conn *c, const char *code, const char *message)
{
    conn_send(c, json_pack("{s:s, s:s, s:s, s:o}", "type", "error", "code", code, "message", message, "timestamp",
                           now_json()));
}

static void send_system(struct conn *c, const char *message)
{
    conn_send(c, json_pack("{s:s, s:s, s:o}", "type", "system", "message", message, "timestamp", now_json()));
}

/* Queue the close frame once the messages before it are out: wslay sends
 * control frames ahead of queued messages, and a goodbye (`system`) must
 * reach the client before the close. */
static void conn_close_flush(struct conn *c)
{
    if (c->close_code == 0 || conn_ws(c) != 0 || wslay_event_get_queued_msg_count(c->ws) > 0)
        return;
    int code = c->close_code;
    c->close_code = 0;
    if (wslay_event_get_close_sent(c->ws))
        return;
    if (wslay_event_queue_close(c->ws, (uint16_t)code, (const uint8_t *)c->close_reason,
                                strlen(c->close_reason)) != 0)
        conn_kill(c);
}

/* Start the closing handshake (RFC 6455 §7.1.2) after what is queued; the
 * socket is dropped when it completes or after HUB_CLOSE_WAIT_MS. */
static void conn_close(struct conn *c, int code, const char *reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->close_deadline_ms = mono_ms() + HUB_CLOSE_WAIT_MS;
    c->close_code = code;
    snprintf(c->close_reason, sizeof(c->close_reason), "%.120s", reason != NULL ? reason : "");
    conn_close_flush(c);
}

/* ---- wslay callbacks ------------------------------------------------------- */

static ssize_t on_ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user_data)
{
    struct conn *c = user_data;
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

static ssize_t on_ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                          void *user_data)
{
    struct conn *c = user_data;
    /* WSLAY_MSG_MORE is not passed on as MSG_MORE: corking holds a small
     * reply back for up to 200 ms when no further write comes. */
    int f = MSG_NOSIGNAL;
    (void)flags;
    for (;;) {
        ssize_t r = send(c->fd, data, len, f);
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
    struct conn *c = user_data;
    uint64_t n = arg->payload_length;
    (void)ws;
    c->rx_frame = 2 + 4 + (n < 126 ? 0 : n <= 0xFFFF ? 2 : 8) + n;
    if ((arg->opcode & 0x8) == 0) /* data or continuation, not control */
        c->rx_mid_message = !arg->fin;
}

static void on_ws_frame_end(wslay_event_context_ptr ws, void *user_data)
{
    struct conn *c = user_data;
    (void)ws;
    c->rx_done += c->rx_frame;
    c->rx_frame = 0;
}

static void handle_message(struct conn *c, const uint8_t *msg, size_t len, int text);

static void on_ws_msg(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    struct conn *c = user_data;
    if (arg->opcode == WSLAY_PONG) {
        c->ping_outstanding = 0;
        return;
    }
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->closing = 1; /* wslay answers the close frame itself */
        if (c->close_deadline_ms == 0)
            c->close_deadline_ms = mono_ms() + HUB_CLOSE_WAIT_MS;
        return;
    }
    c->last_rx_ms = mono_ms();
    if (arg->opcode == WSLAY_PING) {
        /* wslay queues the pong itself (RFC 6455 §5.5.3). A client that
         * pings without reading the pongs fills our memory: past the send
         * cap, stop reading and close (dropped after HUB_CLOSE_WAIT_MS when
         * the close frame cannot go out either). */
        if (!c->closing && conn_over_cap(c)) {
            conn_close(c, CHAT_CLOSE_POLICY_VIOLATION, "client too slow");
            wslay_event_shutdown_read(ws);
        }
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME)
        handle_message(c, arg->msg, arg->msg_length, arg->opcode == WSLAY_TEXT_FRAME);
}

/* ---- the chat protocol ------------------------------------------------------- */

/* Take one message from the user's budget. 0 when allowed. */
static int rate_take(struct chat_hub *h, const char *user_id)
{
    int rc = -1;
    int64_t now = time_now_ms();
    pthread_mutex_lock(&h->mu);
    struct user *u = user_find(h, user_id, 0);
    if (u != NULL) {
        /* Token bucket: per_minute tokens, refilled continuously. */
        u->tokens += (double)(now - u->refill_ms) * h->per_minute / 60000.0;
        if (u->tokens > h->per_minute)
            u->tokens = h->per_minute;
        u->refill_ms = now;
        if (u->tokens >= 1.0) {
            u->tokens -= 1.0;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* Send o (stolen) to every open connection in c's room except c. */
static void room_broadcast(struct conn *c, json_t *o)
{
    char *s = dump(o);
    if (s == NULL)
        return;
    for (struct conn *x = c->hub->conns; x != NULL; x = x->next)
        if (x != c && !x->closing && strcmp(x->room_id, c->room_id) == 0)
            conn_send_text(x, s);
    free(s);
}

/* Queue a job for the answer threads; -1 when the queue is full. */
static int job_post(struct chat_hub *h, struct job *j)
{
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    if (h->njobs >= HUB_MAX_JOBS) {
        rc = -1;
    } else {
        j->next = NULL;
        if (h->jobs_tail != NULL)
            h->jobs_tail->next = j;
        else
            h->jobs = j;
        h->jobs_tail = j;
        h->njobs++;
        pthread_cond_signal(&h->job_cond);
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void job_free(struct job *j)
{
    if (j == NULL)
        return;
    free(j->text);
    json_decref(j->content);
    free(j);
}

static struct job *job_new(struct conn *c, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->kind = kind;
    snprintf(j->conn_id, sizeof(j->conn_id), "%s", c->id);
    snprintf(j->user_id, sizeof(j->user_id), "%s", c->user_id);
    snprintf(j->room_id, sizeof(j->room_id), "%s", c->room_id);
    return j;
}

static void job_submit(struct conn *c, struct job *j)
{
    if (j == NULL || job_post(c->hub, j) != 0) {
        job_free(j);
        send_error(c, "INTERNAL_ERROR", "The server is busy; please try again in a moment.");
    }
}

static void on_chat_message(struct conn *c, json_t *msg)
{
    json_t *content = json_object_get(msg, "content");
    const char *text = json_string_value(content);
    if (text == NULL || text[0] == '\0') {
        send_error(c, "INVALID_JSON", "A message needs a non-empty string \"content\".");
        return;
    }
    struct job *j = job_new(c, JOB_MESSAGE);
    if (j != NULL && (j->text = strdup(text)) == NULL) {
        job_free(j);
        j = NULL;
    }
    if (j != NULL)
        uuid_v7(j->in_reply_to);
    json_t *echo = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type", "message", "message_id",
                             j != NULL ? j->in_reply_to : "", "role", "user", "user_id", c->user_id, "room_id",
                             c->room_id, "content", text, "timestamp", now_json());
    room_broadcast(c, echo);
    job_submit(c, j);
}

/* JOB_MESSAGE on an answer thread: the assistant's reply, for the room. */
static void answer_message(struct chat_hub *h, const struct job *j, struct item *it)
{
    enum chat_intent intent = CHAT_INTENT_HELP;
    const char *generator = "builtin";
    char *answer = chat_answer_reply(&h->svc, j->user_id, j->text, &intent, &generator);
    char aid[40];
    uuid_v7(aid);
    json_t *reply =
        answer != NULL
            ? json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type", "message", "message_id", aid,
                        "role", "assistant", "user_id", j->user_id, "room_id", j->room_id, "content", answer,
                        "intent", chat_intent_name(intent), "generator", generator, "in_reply_to", j->in_reply_to,
                        "timestamp", now_json())
            : NULL;
    free(answer);
    if (reply != NULL) {
        it->kind = ITEM_ROOM;
        snprintf(it->target, sizeof(it->target), "%s", j->room_id);
    } else {
        it->kind = ITEM_CONN;
        snprintf(it->target, sizeof(it->target), "%s", j->conn_id);
        reply = json_pack("{s:s, s:s, s:s, s:o}", "type", "error", "code", "INTERNAL_ERROR", "message",
                          "The answer could not be prepared; please try again.", "timestamp", now_json());
    }
    it->text = reply != NULL ? dump(reply) : NULL;
}

static void on_typing(struct conn *c, json_t *msg)
{
    json_t *t = json_object_get(msg, "is_typing");
    int typing = t == NULL ? 1 : json_is_true(t);
    room_broadcast(c, json_pack("{s:s, s:s, s:s, s:b, s:o}", "type", "typing", "user_id", c->user_id, "room_id",
                                c->room_id, "is_typing", typing, "timestamp", now_json()));
}

static void on_heartbeat(struct conn *c, json_t *msg)
{
    json_t *o = json_pack("{s:s, s:o}", "type", "heartbeat_ack", "timestamp", now_json());
    json_t *ct = json_object_get(msg, "client_timestamp");
    if (o != NULL && ct != NULL)
        json_object_set(o, "client_timestamp", ct);
    conn_send(c, o);
}

static void on_health_insight(struct conn *c, json_t *msg)
{
    struct job *j = job_new(c, JOB_INSIGHT);
    if (j != NULL) {
        j->content = json_object_get(msg, "content");
        json_incref(j->content);
    }
    job_submit(c, j);
}

/* JOB_INSIGHT on an answer thread: the analysis, or an error, for the
 * connection that asked. */
static void answer_insight(struct chat_hub *h, const struct job *j, struct item *it)
{
    json_t *out = NULL;
    char err[256];
    err[0] = '\0';
    int rc = chat_analysis_run(&h->svc, j->content, h->max_points, &out, err, sizeof(err));
    it->kind = ITEM_CONN;
    snprintf(it->target, sizeof(it->target), "%s", j->conn_id);
    if (rc != 0) {
        const char *code = rc == ANALYSIS_ETOOMANY ? "TOO_MANY_DATA_POINTS"
                           : rc == ANALYSIS_EINVAL ? "INVALID_JSON"
                                                        : "INTERNAL_ERROR";
        out = json_pack("{s:s, s:s, s:s, s:o}", "type", "error", "code", code, "message",
                        rc == ANALYSIS_EINTERNAL ? "The analysis could not be completed." : err, "timestamp",
                        now_json());
    } else {
        json_object_set_new(out, "type", json_string("insight"));
        json_object_set_new(out, "source", json_string("health_insight"));
        json_object_set_new(out, "user_id", json_string(j->user_id));
        json_object_set_new(out, "timestamp", now_json());
    }
    it->text = out != NULL ? dump(out) : NULL;
}


static void *answer_main(void *arg)
{
    struct chat_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    for (;;) {
        while (h->jobs == NULL && !atomic_load(&h->stop))
            pthread_cond_wait(&h->job_cond, &h->mu);
        if (atomic_load(&h->stop))
            break;
        struct job *j = h->jobs;
        h->jobs = j->next;
        if (h->jobs == NULL)
            h->jobs_tail = NULL;
        h->njobs--;
        pthread_mutex_unlock(&h->mu);
        struct item *it = calloc(1, sizeof(*it));
        if (it != NULL) {
            if (j->kind == JOB_MESSAGE)
                answer_message(h, j, it);
            else
                answer_insight(h, j, it);
            if (it->text != NULL)
                post(h, it);
            else
                free(it);
        }
        job_free(j);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void handle_message(struct conn *c, const uint8_t *data, size_t len, int text)
{
    struct chat_hub *h = c->hub;
    if (c->closing)
        return;
    if (len > h->max_message) {
        char m[128];
        snprintf(m, sizeof(m), "A message may have at most %zu bytes.", h->max_message);
        send_error(c, "MESSAGE_TOO_LARGE", m);
        return;
    }
    if (text && !utf8_valid(data, len)) {
        /* RFC 6455 §8.1: a text message that is not UTF-8 fails the
         * connection with 1007. */
        conn_close(c, CHAT_CLOSE_INVALID_DATA, "invalid UTF-8 in a text message");
        wslay_event_shutdown_read(c->ws);
        return;
    }
    json_error_t jerr;
    json_t *msg = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
    const char *type = json_string_value(json_object_get(msg, "type"));
    if (type == NULL || strcmp(type, "heartbeat") != 0) {
        if (rate_take(h, c->user_id) != 0) {
            char m[128];
            snprintf(m, sizeof(m), "At most %.0f messages per minute; wait a moment.", h->per_minute);
            send_error(c, "RATE_LIMIT_EXCEEDED", m);
            json_decref(msg);
            return;
        }
    }
    if (!json_is_object(msg)) {
        send_error(c, "INVALID_JSON", msg == NULL ? "The message is not valid JSON (UTF-8)."
                                                  : "The message must be a JSON object.");
        goto done;
    }
    if (type == NULL) {
        send_error(c, "UNKNOWN_MESSAGE_TYPE", "The message needs a string \"type\".");
        goto done;
    }
    if (strcmp(type, "message") == 0)
        on_chat_message(c, msg);
    else if (strcmp(type, "typing") == 0)
        on_typing(c, msg);
    else if (strcmp(type, "heartbeat") == 0)
        on_heartbeat(c, msg);
    else if (strcmp(type, "health_insight") == 0)
        on_health_insight(c, msg);
    else
        send_error(c, "UNKNOWN_MESSAGE_TYPE",
                   "Known types: message, typing, heartbeat, health_insight.");
done:
    json_decref(msg);
}

/* ---- connection life --------------------------------------------------------- */

static void conn_update_events(struct conn *c)
{
    uint32_t want = EPOLLRDHUP;
    if (c->ws == NULL || wslay_event_want_read(c->ws))
        want |= EPOLLIN;
    if (c->ws != NULL && wslay_event_want_write(c->ws))
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = c};
    if (epoll_ctl(c->hub->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = want;
    else
        conn_kill(c);
}

/* After any activity: send what is queued, then decide whether the
 * connection is finished. */
static void conn_settle(struct conn *c)
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

static void conn_free(struct chat_hub *h, struct conn *c)
{
    if (c->events != 0 || c->ws != NULL)
        epoll_ctl(h->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->counted) {
        pthread_mutex_lock(&h->mu);
        struct user *u = user_find(h, c->user_id, 0);
        if (u != NULL) {
            u->nconn--;
            user_release(h, u);
        }
        pthread_mutex_unlock(&h->mu);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (h->conns == c)
        h->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->ws != NULL)
        wslay_event_context_free(c->ws);
    close(c->fd);
    log_write(LOG_INFO, "chat closed", LOG_STR, "connection_id", c->id, LOG_STR, "request_id", c->request_id,
              LOG_END);
    free(c->extra);
    free(c);
    atomic_fetch_sub(&h->nconn, 1);
}

static void conn_readable(struct conn *c)
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
        conn_close(c, CHAT_CLOSE_PROTOCOL_ERROR, "protocol error");
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
static int conn_ws(struct conn *c)
{
    static const struct wslay_event_callbacks cbs = {on_ws_recv, on_ws_send, NULL, on_ws_frame_start, NULL,
                                                     on_ws_frame_end, on_ws_msg};
    if (c->ws != NULL)
        return 0;
    if (wslay_event_context_server_init(&c->ws, &cbs, c) != 0) {
        c->ws = NULL;
        conn_kill(c);
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, (uint64_t)c->hub->max_message * HUB_HARD_CAP_FACTOR);
    return 0;
}

static void conn_ws_release(struct conn *c, int64_t now)
{
    if (c->ws == NULL || c->dead || c->closing || c->close_code != 0 || now - c->last_io_ms < HUB_TICK_MS ||
        c->rx_fed != c->rx_done || c->rx_frame != 0 || c->rx_mid_message || c->extra_off != c->extra_len ||
        wslay_event_want_write(c->ws) || wslay_event_get_queued_msg_count(c->ws) > 0)
        return;
    wslay_event_context_free(c->ws);
    c->ws = NULL;
    free(c->extra);
    c->extra = NULL;
    c->extra_len = c->extra_off = 0;
}

/* ITEM_ADOPT on the loop: register, check the per-user limit, greet. */
static void conn_start(struct chat_hub *h, struct conn *c)
{
    c->next = h->conns;
    if (h->conns != NULL)
        h->conns->prev = c;
    h->conns = c;
    if (conn_ws(c) != 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        conn_kill(c);
        return;
    }
    c->events = ev.events;
    /* The first ping goes out one heartbeat interval after the upgrade. */
    c->last_rx_ms = c->last_io_ms = c->last_ping_ms = mono_ms();

    int allowed = 0, nconn = 0;
    pthread_mutex_lock(&h->mu);
    struct user *u = user_find(h, c->user_id, 1);
    if (u != NULL && u->nconn < h->max_conns) {
        u->nconn++;
        c->counted = 1;
        allowed = 1;
    }
    nconn = u != NULL ? u->nconn : 0;
    if (u != NULL && !allowed)
        user_release(h, u);
    pthread_mutex_unlock(&h->mu);

    if (!atomic_load(&h->open)) {
        send_system(c, "The server is shutting down; reconnect shortly.");
        conn_close(c, CHAT_CLOSE_GOING_AWAY, "server shutting down");
    } else if (!allowed) {
        char m[96];
        snprintf(m, sizeof(m), "at most %d connections per user", h->max_conns);
        conn_close(c, CHAT_CLOSE_POLICY_VIOLATION, m);
    } else {
        json_t *ack = json_pack(
            "{s:s, s:s, s:s, s:s, s:o, s:{s:I, s:i, s:i, s:i, s:i, s:I}}", "type", "connection_ack",
            "connection_id", c->id, "user_id", c->user_id, "room_id", c->room_id, "server_time", now_json(),
            "limits", "max_message_bytes", (json_int_t)h->max_message, "messages_per_minute", (int)h->per_minute,
            "max_connections", h->max_conns, "heartbeat_seconds", (int)(h->heartbeat_ms / 1000),
            "idle_timeout_seconds", (int)(h->idle_ms / 1000), "max_data_points", (json_int_t)h->max_points);
        conn_send(c, ack);
    }
    log_write(LOG_INFO, "chat connected", LOG_STR, "connection_id", c->id, LOG_STR, "request_id", c->request_id,
              LOG_STR, "room_id", c->room_id, LOG_INT, "user_connections", (long long)nconn, LOG_STR, "refused",
              allowed ? NULL : "connection limit", LOG_END);
    /* Frames that arrived with the request head are not signalled by epoll. */
    if (c->extra_len > 0)
        conn_readable(c);
    else
        conn_settle(c);
}

static void deliver_push(struct chat_hub *h, struct item *it)
{
    int fresh = 0;
    pthread_mutex_lock(&h->mu);
    struct user *u = user_find(h, it->user_id, 0);
    if (u != NULL && !user_seen(u, it->insight_id))
        fresh = 1;
    pthread_mutex_unlock(&h->mu);
    if (!fresh)
        return;
    for (struct conn *c = h->conns; c != NULL; c = c->next)
        if (!c->closing && c->counted && strcmp(c->user_id, it->user_id) == 0) {
            conn_send_text(c, it->text);
            conn_settle(c);
        }
}

static void process_inbox(struct chat_hub *h)
{
    uint64_t v;
    ssize_t r = read(h->evfd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&h->mu);
    struct item *it = h->inbox;
    h->inbox = h->inbox_tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (it != NULL) {
        struct item *next = it->next;
        if (it->kind == ITEM_ADOPT) {
            conn_start(h, it->conn);
        } else if (it->kind == ITEM_PUSH) {
            deliver_push(h, it);
        } else if (it->kind == ITEM_ROOM || it->kind == ITEM_CONN) {
            for (struct conn *c = h->conns; c != NULL; c = c->next) {
                if (c->closing || strcmp(it->kind == ITEM_ROOM ? c->room_id : c->id, it->target) != 0)
                    continue;
                conn_send_text(c, it->text);
                conn_settle(c);
            }
        } else if (it->kind == ITEM_DRAIN) {
            for (struct conn *c = h->conns; c != NULL; c = c->next) {
                if (c->closing)
                    continue;
                send_system(c, "The server is shutting down; reconnect shortly.");
                conn_close(c, CHAT_CLOSE_GOING_AWAY, "server shutting down");
                conn_settle(c);
            }
        }
        free(it->text);
        free(it);
        it = next;
    }
}

/* Timers, every HUB_TICK_MS: heartbeat pings, idle timeout, close waits. */
static void tick(struct chat_hub *h, int64_t now)
{
    for (struct conn *c = h->conns; c != NULL; c = c->next) {
        if (c->dead)
            continue;
        if (c->closing) {
            if (now >= c->close_deadline_ms)
                conn_kill(c);
            continue;
        }
        if (now - c->last_rx_ms >= h->idle_ms) {
            send_system(c, "Closing an idle connection.");
            conn_close(c, CHAT_CLOSE_NORMAL, "idle timeout");
        } else if (c->ping_outstanding && now - c->last_ping_ms >= h->heartbeat_ms) {
            /* No pong for a whole heartbeat interval: the peer is gone. */
            conn_close(c, CHAT_CLOSE_GOING_AWAY, "heartbeat timeout");
        } else if (now - c->last_ping_ms >= h->heartbeat_ms && conn_ws(c) == 0) {
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

static void reap(struct chat_hub *h)
{
    if (!h->reap_needed)
        return;
    h->reap_needed = 0;
    struct conn *c = h->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        if (c->dead)
            conn_free(h, c);
        c = next;
    }
}

static void *loop_main(void *arg)
{
    struct chat_hub *h = arg;
    struct epoll_event evs[HUB_MAX_EVENTS];
    int64_t last_tick = mono_ms();
    while (!atomic_load(&h->stop)) {
        int n = epoll_wait(h->epfd, evs, HUB_MAX_EVENTS, HUB_TICK_MS);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                process_inbox(h);
                continue;
            }
            if (c->dead)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                conn_readable(c);
            else if (evs[i].events & EPOLLOUT)
                conn_settle(c);
        }
        int64_t now = mono_ms();
        if (now - last_tick >= HUB_TICK_MS) {
            tick(h, now);
            last_tick = now;
        }
        reap(h);
    }
    /* Stopping: whatever is left is dropped (chat_hub_drain said goodbye). */
    process_inbox(h);
    for (struct conn *c = h->conns; c != NULL; c = c->next)
        conn_kill(c);
    reap(h);
    return NULL;
}

/* ---- insight delivery ---------------------------------------------------------- */

/* The `insight` message for a stored insight. New reference or NULL. */
static json_t *insight_message(const struct store_insight *in)
{
    json_t *body = in->body != NULL ? json_loads(in->body, 0, NULL) : NULL;
    char ts[40];
    time_format_rfc3339_ms(in->created_at_ms, ts, sizeof(ts));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:s}", "type", "insight", "source", "pipeline",
                          "insight_id", in->id, "user_id", in->user_id, "narrative",
                          in->narrative != NULL ? in->narrative : "", "generator", in->generator,
                          "confidence_score", in->confidence, "generated_at", ts, "insight_type", in->insight_type);
    if (o == NULL) {
        json_decref(body);
        return NULL;
    }
    json_object_set_new(o, "analysis_id", in->analysis_id[0] ? json_string(in->analysis_id) : json_null());
    json_t *ki = json_object_get(body, "key_insights"), *rec = json_object_get(body, "recommendations");
    json_object_set(o, "key_insights", ki != NULL ? ki : json_array());
    json_object_set(o, "recommendations", rec != NULL ? rec : json_array());
    json_object_set_new(o, "timestamp", now_json());
    json_decref(body);
    return o;
}

static void push_insight(struct chat_hub *h, const struct store_insight *in)
{
    json_t *o = insight_message(in);
    char *text = o != NULL ? dump(o) : NULL;
    struct item *it = text != NULL ? calloc(1, sizeof(*it)) : NULL;
    if (it == NULL) {
        free(text);
        return;
    }
    it->kind = ITEM_PUSH;
    snprintf(it->user_id, sizeof(it->user_id), "%s", in->user_id);
    snprintf(it->insight_id, sizeof(it->insight_id), "%s", in->id);
    it->text = text;
    post(h, it);
}

/* Look up the insights the pipeline announced (in-process notify). */
static void poll_lookups(struct chat_hub *h)
{
    pthread_mutex_lock(&h->mu);
    struct lookup *l = h->lookups;
    h->lookups = NULL;
    pthread_mutex_unlock(&h->mu);
    while (l != NULL) {
        struct lookup *next = l->next;
        struct store_tx *tx = NULL;
        struct store_insight in;
        memset(&in, 0, sizeof(in));
        if (store_tx_begin(h->svc.store, STORE_TX_READ, &tx) == 0) {
            if (store_insight_get(tx, l->insight_id, l->user_id, &in) == 0) {
                push_insight(h, &in);
                store_insight_clear(&in);
            }
            store_tx_rollback(tx);
        }
        free(l);
        l = next;
    }
}

/* Look up new insights of every user with sockets here (other processes'
 * workers). */
static void poll_users(struct chat_hub *h)
{
    size_t cap = 64, n = 0;
    struct snap {
        char id[64];
        int64_t wm;
    } *v = malloc(cap * sizeof(*v));
    if (v == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    for (unsigned b = 0; b < HUB_BUCKETS; b++)
        for (struct user *u = h->users[b]; u != NULL; u = u->next) {
            if (u->nconn <= 0)
                continue;
            if (n == cap) {
                struct snap *nv = realloc(v, cap * 2 * sizeof(*v));
                if (nv == NULL)
                    goto unlock;
                v = nv;
                cap *= 2;
            }
            snprintf(v[n].id, sizeof(v[n].id), "%s", u->id);
            v[n].wm = u->watermark_ms;
            n++;
        }
unlock:
    pthread_mutex_unlock(&h->mu);
    for (size_t i = 0; i < n && !atomic_load(&h->stop); i++) {
        struct store_tx *tx = NULL;
        struct store_insight *list = NULL;
        size_t got = 0;
        struct store_cursor next;
        if (store_tx_begin(h->svc.store, STORE_TX_READ, &tx) != 0)
            break;
        int rc = store_insight_list(tx, v[i].id, NULL, NULL, HUB_POLL_BATCH, &list, &got, &next);
        store_tx_rollback(tx);
        if (rc != 0)
            continue;
        int64_t newest = v[i].wm;
        /* Oldest first, so that a client sees them in order. */
        for (size_t k = got; k-- > 0;)
            if (list[k].created_at_ms > v[i].wm) {
                push_insight(h, &list[k]);
                if (list[k].created_at_ms > newest)
                    newest = list[k].created_at_ms;
            }
        store_insight_list_free(list, got);
        if (newest > v[i].wm) {
            pthread_mutex_lock(&h->mu);
            struct user *u = user_find(h, v[i].id, 0);
            if (u != NULL && u->watermark_ms < newest)
                u->watermark_ms = newest;
            pthread_mutex_unlock(&h->mu);
        }
    }
    free(v);
}

static void *poller_main(void *arg)
{
    struct chat_hub *h = arg;
    int64_t last_poll = mono_ms();
    pthread_mutex_lock(&h->mu);
    while (!atomic_load(&h->stop)) {
        /* While PostgreSQL notifications flow, polling is only the safety
         * net for ones lost without a reconnect being noticed. */
        int64_t every = atomic_load(&h->listening) ? h->safety_poll_ms : h->poll_ms;
        int64_t wait_ms = every > 0 ? every - (mono_ms() - last_poll) : 1000;
        if (wait_ms > 1000)
            wait_ms = 1000; /* look at `listening` and `resync` again soon */
        if (wait_ms < 1)
            wait_ms = 1;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += wait_ms / 1000;
        until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (h->lookups == NULL && !atomic_load(&h->resync))
            pthread_cond_timedwait(&h->poll_cond, &h->mu, &until);
        if (atomic_load(&h->stop))
            break;
        pthread_mutex_unlock(&h->mu);
        poll_lookups(h);
        int64_t now = mono_ms();
        if (atomic_exchange(&h->resync, 0) || (every > 0 && now - last_poll >= every)) {
            poll_users(h);
            last_poll = now;
        }
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Ask the poller for one look at every connected user's insights. */
static void request_resync(struct chat_hub *h)
{
    atomic_store(&h->resync, 1);
    pthread_mutex_lock(&h->mu);
    pthread_cond_signal(&h->poll_cond);
    pthread_mutex_unlock(&h->mu);
}

/*
 * PostgreSQL: LISTEN clarity_insight (store_insight_listener_open). Every
 * insight committed anywhere arrives as "user_id:insight_id"; one of a user
 * with sockets here goes the way of an in-process notify (the poller reads
 * it, the loop delivers it once per user). Whenever the session is
 * (re)established, notifications may have been missed: poll once.
 */
static void *listener_main(void *arg)
{
    struct chat_hub *h = arg;
    char buf[160];
    if (h->listener != NULL) {
        atomic_store(&h->listening, 1);
        request_resync(h);
    }
    while (!atomic_load(&h->stop)) {
        if (h->listener == NULL) {
            if (store_insight_listener_open(h->svc.store, &h->listener) != 0) {
                h->listener = NULL;
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
                continue;
            }
            log_info("chat insight notifications resumed", LOG_END);
            atomic_store(&h->listening, 1);
            request_resync(h);
        }
        int rc = store_listener_next(h->listener, 500, buf, sizeof(buf));
        if (rc == 1) {
            char *colon = strchr(buf, ':');
            if (colon != NULL) {
                *colon = '\0';
                chat_hub_insight_notify(h, buf, NULL, colon + 1);
            }
        } else if (rc == STORE_LISTENER_RESYNC) {
            log_info("chat insight notifications resumed", LOG_END);
            atomic_store(&h->listening, 1);
            request_resync(h);
        } else if (rc < 0) {
            if (atomic_exchange(&h->listening, 0))
                log_warning("chat insight notifications lost; polling until they resume", LOG_END);
            struct timespec ts = {0, 500 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ---- public API ---------------------------------------------------------------- */

/*
 * Every WebSocket is a descriptor of this process, and the usual soft limit
 * (1024) is far below CHAT_MAX_CONNECTIONS: raise the soft RLIMIT_NOFILE to
 * the hard limit (what an unprivileged process may do), and say when even
 * that is below what the configuration allows.
 */
static void nofile_raise(const struct config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = was;
    }
    /* Room for the HTTP connections, the database and the log besides. */
    rlim_t want = (rlim_t)cfg->chat_max_connections + 1024;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want)
        log_warning("open-file limit below CHAT_MAX_CONNECTIONS", LOG_INT, "nofile", (long long)rl.rlim_cur,
                    LOG_INT, "chat_max_connections", (long long)cfg->chat_max_connections, LOG_END);
}

struct chat_hub *chat_hub_new(const struct chat_services *svc, char *err, size_t errlen)
{
    struct chat_hub *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const struct config *cfg = svc->cfg;
    h->svc = *svc;
    h->max_message = cfg->chat_max_message_bytes;
    h->per_minute = (double)cfg->chat_messages_per_minute;
    h->max_conns = cfg->chat_max_connections_per_user;
    h->heartbeat_ms = (int64_t)cfg->chat_heartbeat_seconds * 1000;
    h->idle_ms = (int64_t)cfg->chat_idle_timeout_seconds * 1000;
    h->max_points = (size_t)cfg->chat_max_data_points;
    h->poll_ms = cfg->chat_insight_poll_ms;
    h->safety_poll_ms = cfg->chat_insight_safety_poll_ms;
    nofile_raise(cfg);
    h->epfd = epoll_create1(EPOLL_CLOEXEC);
    h->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->poll_cond, NULL);
    pthread_cond_init(&h->job_cond, NULL);
    atomic_store(&h->open, 1);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (h->epfd < 0 || h->evfd < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->evfd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        goto fail;
    }
    if (pthread_create(&h->loop, NULL, loop_main, h) != 0) {
        snprintf(err, errlen, "cannot start the chat loop thread");
        goto fail;
    }
    h->loop_started = 1;
    if (svc->store != NULL) {
        if (pthread_create(&h->poller, NULL, poller_main, h) != 0) {
            snprintf(err, errlen, "cannot start the chat insight thread");
            goto fail;
        }
        h->poller_started = 1;
        int lrc = store_insight_listener_open(svc->store, &h->listener);
        if (lrc != STORE_EUNSUPPORTED) {
            if (lrc != 0) {
                h->listener = NULL; /* the thread retries */
                log_warning("chat insight notifications unavailable; polling until they start", LOG_END);
            }
            if (pthread_create(&h->listener_thread, NULL, listener_main, h) != 0) {
                snprintf(err, errlen, "cannot start the chat notification thread");
                goto fail;
            }
            h->listener_started = 1;
        }
    }
    for (int i = 0; i < HUB_ANSWER_THREADS; i++) {
        if (pthread_create(&h->answerers[i], NULL, answer_main, h) != 0) {
            snprintf(err, errlen, "cannot start the chat answer threads");
            goto fail;
        }
        h->nanswerers++;
    }
    return h;
fail:
    chat_hub_free(h);
    return NULL;
}

int chat_hub_open(struct chat_hub *h) { return atomic_load(&h->open); }

long chat_hub_connections(struct chat_hub *h) { return atomic_load(&h->nconn); }

int chat_hub_room_claim(struct chat_hub *h, const char *room_id, const char *user_id)
{
    if (strcmp(room_id, user_id) == 0)
        return 0;
    int rc = 0;
    unsigned b = bucket_of(room_id);
    pthread_mutex_lock(&h->mu);
    struct room *r = h->rooms[b];
    for (; r != NULL; r = r->next)
        if (strcmp(r->id, room_id) == 0)
            break;
    if (r != NULL) {
        rc = strcmp(r->owner, user_id) == 0 ? 0 : -1;
    } else if ((r = calloc(1, sizeof(*r))) != NULL) {
        snprintf(r->id, sizeof(r->id), "%s", room_id);
        snprintf(r->owner, sizeof(r->owner), "%s", user_id);
        r->next = h->rooms[b];
        h->rooms[b] = r;
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void chat_hub_conn_adopt(void *pending, int fd, const char *extra, size_t extra_len)
{
    struct chat_pending *p = pending;
    struct chat_hub *h = p->hub;
    struct conn *c = calloc(1, sizeof(*c));
    struct item *it = calloc(1, sizeof(*it));
    if (c != NULL && extra_len > 0 && (c->extra = malloc(extra_len)) == NULL) {
        free(c);
        c = NULL;
    }
    if (c == NULL || it == NULL) {
        free(c);
        free(it);
        free(p);
        close(fd);
        return;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    /* Chat replies are small and latency-bound: no Nagle delay. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->hub = h;
    c->fd = fd;
    if (extra_len > 0)
        memcpy(c->extra, extra, extra_len);
    c->extra_len = extra_len;
    snprintf(c->user_id, sizeof(c->user_id), "%s", p->user_id);
    snprintf(c->room_id, sizeof(c->room_id), "%s", p->room_id);
    snprintf(c->request_id, sizeof(c->request_id), "%s", p->request_id);
    if (uuid_v4(c->id) != 0)
        snprintf(c->id, sizeof(c->id), "unavailable");
    free(p);
    atomic_fetch_add(&h->nconn, 1);
    it->kind = ITEM_ADOPT;
    it->conn = c;
    post(h, it);
}

void chat_hub_insight_notify(void *hub, const char *user_id, const char *upload_id, const char *insight_id)
{
    struct chat_hub *h = hub;
    (void)upload_id;
    if (h == NULL || user_id == NULL || insight_id == NULL)
        return;
    struct lookup *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return;
    snprintf(l->user_id, sizeof(l->user_id), "%s", user_id);
    snprintf(l->insight_id, sizeof(l->insight_id), "%s", insight_id);
    pthread_mutex_lock(&h->mu);
    if (user_find(h, user_id, 0) == NULL) {
        free(l); /* nobody here to tell */
    } else {
        l->next = h->lookups;
        h->lookups = l;
        pthread_cond_signal(&h->poll_cond);
    }
    pthread_mutex_unlock(&h->mu);
}

int chat_hub_drain(struct chat_hub *h, long wait_ms)
{
    if (h == NULL)
        return 0;
    atomic_store(&h->open, 0);
    struct item *it = calloc(1, sizeof(*it));
    if (it != NULL) {
        it->kind = ITEM_DRAIN;
        post(h, it);
    }
    int64_t deadline = mono_ms() + wait_ms;
    while (atomic_load(&h->nconn) > 0 && mono_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return (int)atomic_load(&h->nconn);
}

void chat_hub_free(struct chat_hub *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->open, 0);
    atomic_store(&h->stop, 1);
    if (h->evfd >= 0) {
        uint64_t one = 1;
        ssize_t w = write(h->evfd, &one, sizeof(one));
        (void)w;
    }
    pthread_mutex_lock(&h->mu);
    pthread_cond_broadcast(&h->poll_cond);
    pthread_cond_broadcast(&h->job_cond);
    pthread_mutex_unlock(&h->mu);
    for (int i = 0; i < h->nanswerers; i++)
        pthread_join(h->answerers[i], NULL);
    if (h->listener_started)
        pthread_join(h->listener_thread, NULL);
    store_listener_close(h->listener);
    if (h->poller_started)
        pthread_join(h->poller, NULL);
    if (h->loop_started)
        pthread_join(h->loop, NULL);
    /* Items posted after the loop stopped (an upgrade racing shutdown). */
    for (struct item *it = h->inbox; it != NULL;) {
        struct item *next = it->next;
        if (it->kind == ITEM_ADOPT && it->conn != NULL) {
            close(it->conn->fd);
            free(it->conn->extra);
            free(it->conn);
        }
        free(it->text);
        free(it);
        it = next;
    }
    for (struct job *j = h->jobs; j != NULL;) {
        struct job *next = j->next;
        job_free(j);
        j = next;
    }
    for (struct lookup *l = h->lookups; l != NULL;) {
        struct lookup *next = l->next;
        free(l);
        l = next;
    }
    for (unsigned b = 0; b < HUB_BUCKETS; b++) {
        for (struct user *u = h->users[b]; u != NULL;) {
            struct user *next = u->next;
            free(u);
            u = next;
        }
        for (struct room *r = h->rooms[b]; r != NULL;) {
            struct room *next = r->next;
            free(r);
            r = next;
        }
    }
    if (h->epfd >= 0)
        close(h->epfd);
    if (h->evfd >= 0)
        close(h->evfd);
    pthread_cond_destroy(&h->poll_cond);
    pthread_cond_destroy(&h->job_cond);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
