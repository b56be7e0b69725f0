/*
 * ws_fuzz.c — libFuzzer driver for the WebSocket framing (src/http/ws.c over
 * wslay) and the chat protocol (src/chat/protocol.c).
 *
 * Input: the bytes a client sends after the opening handshake. They go down
 * a socket pair into the real WebSocket loop (one loop for the whole run),
 * whose handler parses every message with the chat protocol and answers
 * with a rendered message, as the hub does; then the client's end closes and
 * the driver waits for the loop to let the connection go. The same bytes are
 * also parsed directly as one chat message. Invariants: no crash, no
 * sanitizer report, no leak, and every connection is freed (a socket the
 * loop never lets go of is a finding: abort after 8 s).
 *
 * The loop stays the path under test (framing, UTF-8, caps and the closing
 * handshake live there, not in a parser of their own); the driver waits for
 * the connection's end on a condition variable that on_close signals, not by
 * polling with a 1 ms sleep, which had held it to ~760 executions a second.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat/protocol.h"
#include "http/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Connections the loop let go of (on_close or on_drop), for the driver. */
static pthread_mutex_t gone_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone_cv = PTHREAD_COND_INITIALIZER;
static unsigned long gone;

static void count_gone(void)
{
    pthread_mutex_lock(&gone_mu);
    gone++;
    pthread_cond_signal(&gone_cv);
    pthread_mutex_unlock(&gone_mu);
}

static void on_open(void *app, struct ws_conn *c)
{
    (void)app;
    (void)c;
}

static void on_message(void *app, struct ws_conn *c, const uint8_t *msg, size_t len, int text)
{
    (void)app;
    (void)text;
    struct chat_in in;
    const char *code = NULL, *why = NULL;
    char *out = NULL;
    if (chat_protocol_parse(msg, len, &in, &code, &why) != 0)
        out = chat_render_error(code, why);
    else if (in.type == CHAT_IN_HEARTBEAT)
        out = chat_render_heartbeat_ack(in.client_timestamp);
    else if (in.type == CHAT_IN_MESSAGE)
        out = chat_render_user_message("m", "u", "r", in.text);
    else if (in.type == CHAT_IN_TYPING)
        out = chat_render_typing("u", "r", in.is_typing);
    else
        out = chat_render_system("ok");
    if (out == NULL)
        abort();
    ws_conn_send_text(c, out, strlen(out));
    free(out);
    chat_in_clear(&in);
}

static void on_close(void *app, struct ws_conn *c)
{
    (void)app;
    (void)c;
    count_gone();
}

static void on_post(void *app, void *item)
{
    (void)app;
    (void)item;
}

static void on_drop(void *app, void *item_or_data, int is_conn_data)
{
    (void)app;
    (void)item_or_data;
    if (is_conn_data)
        count_gone();
}

static const struct ws_handler handler = {on_open, on_message, NULL, on_close, on_post, on_drop};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ws_loop *loop;
    if (loop == NULL) {
        struct ws_options o = {
            .max_message = 64 * 1024, .max_queued = 256 * 1024, .heartbeat_ms = 60000, .idle_ms = 60000};
        char err[128];
        if ((loop = ws_loop_new(&o, &handler, NULL, err, sizeof(err))) == NULL)
            abort();
    }
    /* The protocol on its own. */
    struct chat_in in;
    const char *code, *why;
    chat_protocol_parse(data, size, &in, &code, &why);
    chat_in_clear(&in);

    /* The framing, through the loop. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    pthread_mutex_lock(&gone_mu);
    unsigned long want = gone + 1;
    pthread_mutex_unlock(&gone_mu);
    if (ws_loop_adopt(loop, sv[1], NULL, 0, NULL) != 0) {
        close(sv[0]);
        return 0;
    }
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(sv[0], data + off, size - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the loop stopped reading (a protocol error) */
        off += (size_t)w;
    }
    close(sv[0]);
    /* Wait for on_close (or on_drop), then for the count to drop: conn_free
     * decrements it just after the callback. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 8; /* under libFuzzer's 10-s -timeout; generous on a loaded runner */
    pthread_mutex_lock(&gone_mu);
    while (gone < want)
        if (pthread_cond_timedwait(&gone_cv, &gone_mu, &deadline) != 0 && gone < want)
            abort(); /* the loop never let the connection go */
    pthread_mutex_unlock(&gone_mu);
    for (long i = 0; ws_loop_connections(loop) > 0; i++) {
        if (i > 50 * 1000 * 1000)
            abort();
        sched_yield();
    }
    return 0;
}
