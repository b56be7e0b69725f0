/*
 * hub.c — the chat service: the WebSocket loop's callbacks, tying the
 * protocol, the registry, the answer pool and the insight push together.
 * See hub.h; the message formats are in docs/api.md ("Chat").
 *
 * Everything here runs on the loop thread except the answer jobs (pool
 * threads), the push callbacks (push thread) and the public functions
 * called by the HTTP layer; those reach connections only by posting an
 * item to the loop (ws_loop_post).
 */
#include "chat/hub.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "chat/answer.h"
#include "chat/pool.h"
#include "chat/protocol.h"
#include "chat/push.h"
#include "chat/registry.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "http/ws.h"

/* A message over this many times the configured limit is not read at all:
 * the connection is closed with 1009 (RFC 6455 §7.4.1). Between the limit
 * and this cap the message is read, dropped and answered MESSAGE_TOO_LARGE. */
#define HUB_HARD_CAP_FACTOR 4u
/* Replies waiting for a slow reader beyond this (control frames included):
 * close with 1008 (http/ws.h). */
#define HUB_MAX_QUEUED_BYTES (4u << 20)
#define HUB_ANSWER_THREADS 2
#define HUB_MAX_JOBS 1024

struct chat_hub {
    struct chat_services svc;
    size_t max_message;
    double per_minute;
    size_t max_points;
    struct chat_limits limits;
    struct ws_loop *loop;
    struct chat_registry *reg;
    struct chat_pool *pool;
    struct chat_push *push;
    _Atomic int open;
};

/* A connection's chat state (the loop's ws_conn_data). */
struct chat_conn {
    struct chat_hub *hub;
    struct ws_conn *ws;
    char id[37];
    char user_id[CHAT_USER_ID_MAX];
    char room_id[CHAT_ROOM_ID_MAX];
    char request_id[129];
    int counted; /* holds one of the user's slots */
};

/* Work for the loop thread, from the pool, the push or a drain. */
enum post_kind { POST_ROOM, POST_CONN, POST_USER, POST_DRAIN };

struct post {
    enum post_kind kind;
    char target[CHAT_ROOM_ID_MAX]; /* room id, connection id or user id */
    char *text;                    /* the message, heap */
};

/* An answer to prepare on a pool thread. */
enum job_kind { JOB_MESSAGE, JOB_INSIGHT };

struct job {
    struct chat_hub *hub;
    enum job_kind kind;
    char conn_id[37];
    char user_id[CHAT_USER_ID_MAX];
    char room_id[CHAT_ROOM_ID_MAX];
    char in_reply_to[40];
    char *text;      /* JOB_MESSAGE: the question */
    json_t *content; /* JOB_INSIGHT: the posted content (owned) */
};

/* ---- sending (loop thread) ------------------------------------------------------ */

static void send_text(struct chat_conn *cc, char *text)
{
    if (text != NULL)
        ws_conn_send_text(cc->ws, text, strlen(text));
    free(text);
}

static void send_error(struct chat_conn *cc, const char *code, const char *message)
{
    send_text(cc, chat_render_error(code, message));
}

/* Send to every open connection matching a target. */
struct fanout {
    enum post_kind kind;
    const char *target;
    const struct chat_conn *except;
    const char *text;
};

static void fanout_one(void *ctx, struct ws_conn *c)
{
    const struct fanout *f = ctx;
    const struct chat_conn *cc = ws_conn_data(c);
    if (cc == f->except)
        return;
    int match = f->kind == POST_ROOM   ? strcmp(cc->room_id, f->target) == 0
                : f->kind == POST_CONN ? strcmp(cc->id, f->target) == 0
                                       : cc->counted && strcmp(cc->user_id, f->target) == 0;
    if (match)
        ws_conn_send_text(c, f->text, strlen(f->text));
}

static void fanout(struct chat_hub *h, enum post_kind kind, const char *target, const struct chat_conn *except,
                   const char *text)
{
    if (text == NULL)
        return;
    struct fanout f = {kind, target, except, text};
    ws_loop_each(h->loop, fanout_one, &f);
}

static void post_free(struct post *p)
{
    if (p == NULL)
        return;
    free(p->text);
    free(p);
}

/* Any thread: hand text (stolen) for `target` to the loop. */
static void post_to_loop(struct chat_hub *h, enum post_kind kind, const char *target, char *text)
{
    struct post *p = calloc(1, sizeof(*p));
    if (p == NULL || text == NULL) {
        free(p);
        free(text);
        return;
    }
    p->kind = kind;
    snprintf(p->target, sizeof(p->target), "%s", target);
    p->text = text;
    if (ws_loop_post(h->loop, p) != 0)
        post_free(p);
}

/* ---- answers (pool threads) --------------------------------------------------- */

static void job_free(void *arg)
{
    struct job *j = arg;
    if (j == NULL)
        return;
    free(j->text);
    json_decref(j->content);
    free(j);
}

/* JOB_MESSAGE: the assistant's reply, for the room (or an error for the
 * connection that asked). */
static void answer_message(struct job *j)
{
    struct chat_hub *h = j->hub;
    enum chat_intent intent = CHAT_INTENT_HELP;
    const char *generator = "builtin";
    char *answer = chat_answer_reply(&h->svc, j->user_id, j->text, &intent, &generator);
    char aid[40];
    uuid_v7(aid);
    char *text = answer != NULL ? chat_render_answer(aid, j->user_id, j->room_id, answer, chat_intent_name(intent),
                                                     generator, j->in_reply_to)
                                : NULL;
    free(answer);
    if (text != NULL)
        post_to_loop(h, POST_ROOM, j->room_id, text);
    else
        post_to_loop(h, POST_CONN, j->conn_id,
                     chat_render_error(CHAT_ERR_INTERNAL, "The answer could not be prepared; please try again."));
}

/* JOB_INSIGHT: the analysis, or an error, for the connection that asked. */
static void answer_insight(struct job *j)
{
    struct chat_hub *h = j->hub;
    json_t *out = NULL;
    char err[256];
    err[0] = '\0';
    int rc = chat_analysis_run(&h->svc, j->content, h->max_points, &out, err, sizeof(err));
    char *text = NULL;
    if (rc != 0) {
        const char *code = rc == ANALYSIS_ETOOMANY ? CHAT_ERR_TOO_MANY_POINTS
                           : rc == ANALYSIS_EINVAL ? CHAT_ERR_INVALID_JSON
                                                   : CHAT_ERR_INTERNAL;
        text = chat_render_error(code, rc == ANALYSIS_EINTERNAL ? "The analysis could not be completed." : err);
    } else {
        text = chat_render_health_insight(out, j->user_id);
    }
    post_to_loop(h, POST_CONN, j->conn_id, text);
}

static void job_run(void *arg)
{
    struct job *j = arg;
    if (j->kind == JOB_MESSAGE)
        answer_message(j);
    else
        answer_insight(j);
    job_free(j);
}

static struct job *job_new(struct chat_conn *cc, enum job_kind kind)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->hub = cc->hub;
    j->kind = kind;
    snprintf(j->conn_id, sizeof(j->conn_id), "%s", cc->id);
    snprintf(j->user_id, sizeof(j->user_id), "%s", cc->user_id);
    snprintf(j->room_id, sizeof(j->room_id), "%s", cc->room_id);
    return j;
}

static void job_submit(struct chat_conn *cc, struct job *j)
{
    if (j == NULL || chat_pool_submit(cc->hub->pool, job_run, job_free, j) != 0) {
        job_free(j);
        send_error(cc, CHAT_ERR_INTERNAL, "The server is busy; please try again in a moment.");
    }
}

/* ---- the loop's callbacks -------------------------------------------------------- */

static void on_open(void *app, struct ws_conn *c)
{
    struct chat_hub *h = app;
    struct chat_conn *cc = ws_conn_data(c);
    cc->ws = c;
    int held = 0;
    int allowed = chat_registry_conn_acquire(h->reg, cc->user_id, &held) == 0;
    cc->counted = allowed;
    if (!atomic_load(&h->open)) {
        send_text(cc, chat_render_system("The server is shutting down; reconnect shortly."));
        ws_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
    } else if (!allowed) {
        char m[96];
        snprintf(m, sizeof(m), "at most %d connections per user", h->limits.max_connections);
        ws_conn_close(c, WS_CLOSE_POLICY_VIOLATION, m);
    } else {
        send_text(cc, chat_render_ack(cc->id, cc->user_id, cc->room_id, &h->limits));
    }
    log_write(LOG_INFO, "chat connected", LOG_STR, "connection_id", cc->id, LOG_STR, "request_id", cc->request_id,
              LOG_STR, "room_id", cc->room_id, LOG_INT, "user_connections", (long long)held, LOG_STR, "refused",
              allowed ? NULL : "connection limit", LOG_END);
}

static void on_message(void *app, struct ws_conn *c, const uint8_t *data, size_t len, int text)
{
    struct chat_hub *h = app;
    struct chat_conn *cc = ws_conn_data(c);
    (void)text; /* text and binary messages alike hold JSON; UTF-8 was checked by the loop */
    if (len > h->max_message) {
        char m[128];
        snprintf(m, sizeof(m), "A message may have at most %zu bytes.", h->max_message);
        send_error(cc, CHAT_ERR_MESSAGE_TOO_LARGE, m);
        return;
    }
    struct chat_in in;
    const char *code = NULL, *why = NULL;
    int rc = chat_protocol_parse(data, len, &in, &code, &why);
    if (in.rated && chat_registry_rate_take(h->reg, cc->user_id, time_now_ms()) != 0) {
        char m[128];
        snprintf(m, sizeof(m), "At most %.0f messages per minute; wait a moment.", h->per_minute);
        send_error(cc, CHAT_ERR_RATE_LIMIT, m);
        goto done;
    }
    if (rc != 0) {
        send_error(cc, code, why);
        goto done;
    }
    switch (in.type) {
    case CHAT_IN_MESSAGE: {
        struct job *j = job_new(cc, JOB_MESSAGE);
        if (j != NULL && (j->text = strdup(in.text)) == NULL) {
            job_free(j);
            j = NULL;
        }
        if (j != NULL)
            uuid_v7(j->in_reply_to);
        char *echo = chat_render_user_message(j != NULL ? j->in_reply_to : "", cc->user_id, cc->room_id, in.text);
        fanout(h, POST_ROOM, cc->room_id, cc, echo);
        free(echo);
        job_submit(cc, j);
        break;
    }
    case CHAT_IN_TYPING: {
        char *t = chat_render_typing(cc->user_id, cc->room_id, in.is_typing);
        fanout(h, POST_ROOM, cc->room_id, cc, t);
        free(t);
        break;
    }
    case CHAT_IN_HEARTBEAT: send_text(cc, chat_render_heartbeat_ack(in.client_timestamp)); break;
    case CHAT_IN_HEALTH_INSIGHT: {
        struct job *j = job_new(cc, JOB_INSIGHT);
        if (j != NULL)
            j->content = json_incref(in.content);
        job_submit(cc, j);
        break;
    }
    case CHAT_IN_INVALID: break;
    }
done:
    chat_in_clear(&in);
}

static void on_idle(void *app, struct ws_conn *c)
{
    (void)app;
    send_text(ws_conn_data(c), chat_render_system("Closing an idle connection."));
}

static void on_close(void *app, struct ws_conn *c)
{
    struct chat_hub *h = app;
    struct chat_conn *cc = ws_conn_data(c);
    if (cc->counted)
        chat_registry_conn_release(h->reg, cc->user_id);
    log_write(LOG_INFO, "chat closed", LOG_STR, "connection_id", cc->id, LOG_STR, "request_id", cc->request_id,
              LOG_END);
    free(cc);
}

static void drain_one(void *ctx, struct ws_conn *c)
{
    (void)ctx;
    send_text(ws_conn_data(c), chat_render_system("The server is shutting down; reconnect shortly."));
    ws_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
}

static void on_post(void *app, void *item)
{
    struct chat_hub *h = app;
    struct post *p = item;
    if (p->kind == POST_DRAIN)
        ws_loop_each(h->loop, drain_one, NULL);
    else
        fanout(h, p->kind, p->target, NULL, p->text);
    post_free(p);
}

static void on_drop(void *app, void *item, int is_conn_data)
{
    (void)app;
    if (is_conn_data)
        free(item);
    else
        post_free(item);
}

static const struct ws_handler handler = {on_open, on_message, on_idle, on_close, on_post, on_drop};

/* ---- the push's callbacks (push thread) ------------------------------------------ */

static int push_wanted(void *ctx, const char *user_id)
{
    struct chat_hub *h = ctx;
    return chat_registry_connected(h->reg, user_id);
}

static void push_deliver(void *ctx, const char *user_id, char *text) { post_to_loop(ctx, POST_USER, user_id, text); }

static size_t push_users(void *ctx, char (*ids)[CHAT_USER_ID_MAX], size_t cap)
{
    struct chat_hub *h = ctx;
    return chat_registry_users(h->reg, ids, cap);
}

static const struct chat_push_ops push_ops = {push_wanted, push_deliver, push_users};

/* ---- public API -------------------------------------------------------------------- */

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
        log_warning("open-file limit below CHAT_MAX_CONNECTIONS", LOG_INT, "nofile", (long long)rl.rlim_cur, LOG_INT,
                    "chat_max_connections", (long long)cfg->chat_max_connections, LOG_END);
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
    h->max_points = (size_t)cfg->chat_max_data_points;
    h->limits = (struct chat_limits){.max_message_bytes = h->max_message,
                                     .messages_per_minute = cfg->chat_messages_per_minute,
                                     .max_connections = cfg->chat_max_connections_per_user,
                                     .heartbeat_seconds = cfg->chat_heartbeat_seconds,
                                     .idle_timeout_seconds = cfg->chat_idle_timeout_seconds,
                                     .max_data_points = h->max_points};
    atomic_store(&h->open, 1);
    nofile_raise(cfg);
    struct ws_options wo = {.max_message = h->max_message * HUB_HARD_CAP_FACTOR,
                            .max_queued = HUB_MAX_QUEUED_BYTES,
                            .heartbeat_ms = (int64_t)cfg->chat_heartbeat_seconds * 1000,
                            .idle_ms = (int64_t)cfg->chat_idle_timeout_seconds * 1000};
    h->reg = chat_registry_new(cfg->chat_max_connections_per_user, h->per_minute);
    h->pool = h->reg != NULL ? chat_pool_new(HUB_ANSWER_THREADS, HUB_MAX_JOBS) : NULL;
    if (h->reg == NULL || h->pool == NULL) {
        snprintf(err, errlen, "cannot start the chat answer threads");
        goto fail;
    }
    if ((h->loop = ws_loop_new(&wo, &handler, h, err, errlen)) == NULL)
        goto fail;
    if (svc->store != NULL && (h->push = chat_push_new(svc->store, &push_ops, h)) == NULL) {
        snprintf(err, errlen, "cannot start the chat insight thread");
        goto fail;
    }
    return h;
fail:
    chat_hub_free(h);
    return NULL;
}

int chat_hub_open(struct chat_hub *h) { return atomic_load(&h->open); }

long chat_hub_connections(struct chat_hub *h) { return ws_loop_connections(h->loop); }

int chat_hub_room_claim(struct chat_hub *h, const char *room_id, const char *user_id)
{
    return chat_registry_room_claim(h->reg, room_id, user_id);
}

void chat_hub_conn_adopt(void *pending, int fd, const char *extra, size_t extra_len)
{
    struct chat_pending *p = pending;
    struct chat_hub *h = p->hub;
    struct chat_conn *cc = calloc(1, sizeof(*cc));
    if (cc != NULL) {
        cc->hub = h;
        snprintf(cc->user_id, sizeof(cc->user_id), "%s", p->user_id);
        snprintf(cc->room_id, sizeof(cc->room_id), "%s", p->room_id);
        snprintf(cc->request_id, sizeof(cc->request_id), "%s", p->request_id);
        if (uuid_v4(cc->id) != 0)
            snprintf(cc->id, sizeof(cc->id), "unavailable");
    }
    free(p);
    if (cc == NULL)
        close(fd);
    else if (ws_loop_adopt(h->loop, fd, extra, extra_len, cc) != 0)
        free(cc); /* the loop closed fd */
}

int chat_hub_drain(struct chat_hub *h, long wait_ms)
{
    if (h == NULL)
        return 0;
    atomic_store(&h->open, 0);
    struct post *p = calloc(1, sizeof(*p));
    if (p != NULL) {
        p->kind = POST_DRAIN;
        if (ws_loop_post(h->loop, p) != 0)
            post_free(p);
    }
    int64_t deadline = (int64_t)(time_mono_ns() / 1000000u) + wait_ms;
    while (ws_loop_connections(h->loop) > 0 && (int64_t)(time_mono_ns() / 1000000u) < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return (int)ws_loop_connections(h->loop);
}

void chat_hub_free(struct chat_hub *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->open, 0);
    /* Producers first: the push and the pool post to the loop; the loop's
     * connections release their registry slots as they close. */
    chat_push_free(h->push);
    chat_pool_free(h->pool);
    ws_loop_free(h->loop);
    chat_registry_free(h->reg);
    free(h);
}
