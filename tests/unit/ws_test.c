/*
 * ws_test.c — the WebSocket loop (src/http/ws.c) on its own, with a handler
 * that knows nothing of chat, over a real socket pair: whole messages to
 * on_message (fragments joined), replies, posted work, UTF-8 refused with
 * 1007, the send cap over pongs (issue #16: a ping flood without reading is
 * cut off with 1008), the idle close, and on_close for every connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "http/ws.h"

struct app {
    struct ws_loop *loop;
    _Atomic int opened, closed, idled, posted, messages;
};

static void on_open(void *a, struct ws_conn *c)
{
    struct app *app = a;
    atomic_fetch_add(&app->opened, 1);
    ws_conn_send_text(c, "hello", 5);
}

/* Echo, upper-cased marker first. */
static void on_message(void *a, struct ws_conn *c, const uint8_t *msg, size_t len, int text)
{
    struct app *app = a;
    atomic_fetch_add(&app->messages, 1);
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s:%.*s", text ? "T" : "B", (int)(len < 200 ? len : 200), (const char *)msg);
    ws_conn_send_text(c, buf, (size_t)n);
}

static void on_idle(void *a, struct ws_conn *c)
{
    struct app *app = a;
    atomic_fetch_add(&app->idled, 1);
    ws_conn_send_text(c, "bye", 3);
}

static void on_close(void *a, struct ws_conn *c)
{
    struct app *app = a;
    free(ws_conn_data(c));
    atomic_fetch_add(&app->closed, 1);
}

static void say(void *ctx, struct ws_conn *c)
{
    const char *s = ctx;
    ws_conn_send_text(c, s, strlen(s));
}

static void on_post(void *a, void *item)
{
    struct app *app = a;
    atomic_fetch_add(&app->posted, 1);
    ws_loop_each(app->loop, say, item);
    free(item);
}

static void on_drop(void *a, void *item, int is_conn)
{
    (void)a;
    (void)is_conn;
    free(item);
}

static const struct ws_handler handler = {on_open, on_message, on_idle, on_close, on_post, on_drop};

static struct ws_loop *start(struct app *app, size_t max_queued, int64_t idle_ms)
{
    memset(app, 0, sizeof(*app));
    struct ws_options o = {.max_message = 4096, .max_queued = max_queued, .heartbeat_ms = 60000, .idle_ms = idle_ms};
    char err[128];
    app->loop = ws_loop_new(&o, &handler, app, err, sizeof(err));
    assert_non_null(app->loop);
    return app->loop;
}

/* A connected pair: the loop's end adopted, the client's end returned.
 * small: the loop's end gets a small send buffer, so that what the client
 * does not read piles up in the loop rather than in the kernel. */
static int adopt_buf(struct ws_loop *l, int small)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    if (small) {
        int sz = 4096;
        setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    struct timeval tv = {10, 0};
    setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(ws_loop_adopt(l, sv[1], NULL, 0, malloc(1)), 0);
    return sv[0];
}

static int adopt(struct ws_loop *l) { return adopt_buf(l, 0); }

/* A masked client frame (mask key 0: the payload goes as is, RFC 6455 §5.3). */
static size_t frame(uint8_t *out, int opcode, int fin, const void *payload, size_t n)
{
    size_t k = 0;
    out[k++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[k++] = (uint8_t)(0x80 | n);
    } else {
        out[k++] = 0x80 | 126;
        out[k++] = (uint8_t)(n >> 8);
        out[k++] = (uint8_t)n;
    }
    memset(out + k, 0, 4);
    k += 4;
    memcpy(out + k, payload, n);
    return k + n;
}

static void send_frame(int fd, int opcode, int fin, const void *payload, size_t n)
{
    uint8_t buf[70000];
    size_t k = frame(buf, opcode, fin, payload, n);
    assert_int_equal(send(fd, buf, k, MSG_NOSIGNAL), (ssize_t)k);
}

static void read_exact(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
}

/* The next server frame: opcode, payload into buf (NUL-terminated). */
static int recv_frame(int fd, char *buf, size_t cap, size_t *len)
{
    uint8_t h[2];
    read_exact(fd, h, 2);
    assert_int_equal(h[1] & 0x80, 0); /* server frames are not masked */
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        uint8_t e[2];
        read_exact(fd, e, 2);
        n = ((size_t)e[0] << 8) | e[1];
    }
    assert_true(n < cap);
    read_exact(fd, (uint8_t *)buf, n);
    buf[n] = '\0';
    *len = n;
    return h[0] & 0x0f;
}

static void expect_text(int fd, const char *want)
{
    char buf[4096];
    size_t n;
    int op;
    while ((op = recv_frame(fd, buf, sizeof(buf), &n)) == 0x9) /* a ping of ours: skip */
        ;
    assert_int_equal(op, 0x1);
    assert_string_equal(buf, want);
}

static int expect_close(int fd)
{
    char buf[4096];
    size_t n;
    int op;
    while ((op = recv_frame(fd, buf, sizeof(buf), &n)) != 0x8)
        ;
    assert_true(n >= 2);
    return ((unsigned char)buf[0] << 8) | (unsigned char)buf[1];
}

static void wait_for(_Atomic int *v, int want)
{
    for (int i = 0; i < 2000 && atomic_load(v) != want; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(v), want);
}

static void test_messages_and_posts(void **state)
{
    (void)state;
    struct app app;
    struct ws_loop *l = start(&app, 1 << 20, 60000);
    int fd = adopt(l);
    expect_text(fd, "hello");
    send_frame(fd, 0x1, 1, "abc", 3);
    expect_text(fd, "T:abc");
    /* Fragments with a ping between them arrive as one message. */
    send_frame(fd, 0x1, 0, "fr", 2);
    send_frame(fd, 0x9, 1, "p", 1);
    char buf[64];
    size_t n;
    assert_int_equal(recv_frame(fd, buf, sizeof(buf), &n), 0xA); /* pong */
    assert_string_equal(buf, "p");
    send_frame(fd, 0x0, 1, "ag", 2);
    expect_text(fd, "T:frag");
    send_frame(fd, 0x2, 1, "\xff", 1);
    expect_text(fd, "B:\xff");
    /* Work posted from this thread runs on the loop. */
    assert_int_equal(ws_loop_post(l, strdup("posted")), 0);
    expect_text(fd, "posted");
    assert_int_equal(atomic_load(&app.posted), 1);
    assert_int_equal(ws_loop_connections(l), 1);
    close(fd);
    wait_for(&app.closed, 1);
    assert_int_equal(ws_loop_connections(l), 0);
    ws_loop_free(l);
}

static void test_invalid_utf8_closes_1007(void **state)
{
    (void)state;
    struct app app;
    struct ws_loop *l = start(&app, 1 << 20, 60000);
    int fd = adopt(l);
    expect_text(fd, "hello");
    send_frame(fd, 0x1, 1, "\xc3\x28", 2);
    assert_int_equal(expect_close(fd), WS_CLOSE_INVALID_DATA);
    assert_int_equal(atomic_load(&app.messages), 0);
    close(fd);
    wait_for(&app.closed, 1);
    ws_loop_free(l);
    /* UTF-8 per RFC 3629. */
    assert_true(ws_utf8_valid((const unsigned char *)"h\xc3\xa9", 3));
    assert_false(ws_utf8_valid((const unsigned char *)"\xc0\xaf", 2));         /* overlong */
    assert_false(ws_utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));     /* surrogate */
    assert_false(ws_utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

/* Issue #16 (5): pongs are queued by wslay outside the send path; a client
 * that pings and never reads must hit the cap and be cut off with 1008. */
static void test_ping_flood_hits_the_send_cap(void **state)
{
    (void)state;
    struct app app;
    struct ws_loop *l = start(&app, 16 * 1024, 60000);
    int fd = adopt_buf(l, 1);
    uint8_t payload[125];
    memset(payload, 'p', sizeof(payload));
    uint8_t one[140];
    size_t k = frame(one, 0x9, 1, payload, sizeof(payload));
    struct timeval tv = {0, 200 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    /* 16 KiB / (125 + 128) is ~65 pongs: 2,000 pings are far past it. */
    for (int i = 0; i < 2000; i++)
        if (send(fd, one, k, MSG_NOSIGNAL) != (ssize_t)k)
            break;
    /* Now read: pongs, then the close, then nothing (the socket is dropped). */
    assert_int_equal(expect_close(fd), WS_CLOSE_POLICY_VIOLATION);
    wait_for(&app.closed, 1);
    close(fd);
    ws_loop_free(l);
}

static void test_idle_close_and_free_closes_all(void **state)
{
    (void)state;
    struct app app;
    struct ws_loop *l = start(&app, 1 << 20, 300);
    int fd = adopt(l);
    int fd2 = adopt(l);
    expect_text(fd, "hello");
    expect_text(fd, "bye");
    assert_int_equal(expect_close(fd), WS_CLOSE_NORMAL);
    assert_true(atomic_load(&app.idled) >= 1);
    close(fd);
    ws_loop_free(l); /* fd2 still open: on_close runs for it too */
    assert_int_equal(atomic_load(&app.opened), 2);
    assert_int_equal(atomic_load(&app.closed), 2);
    close(fd2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_and_posts),
        cmocka_unit_test(test_invalid_utf8_closes_1007),
        cmocka_unit_test(test_ping_flood_hits_the_send_cap),
        cmocka_unit_test(test_idle_close_and_free_closes_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
