/*
 * push_test.c — the chat's insight push (src/chat/push.c) over a real
 * SQLite store: an insight committed for a connected user is delivered as
 * an `insight` message, once; one for a user not connected here is heard
 * but not read; a rolled-back insert is never heard; an insight committed
 * by another process (a second store handle, no in-process wake-up) comes
 * too. There is no poll and no dedup list: one event, one delivery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat/push.h"
#include "core/uuid.h"
#include "store/migrate.h"
#include "store/store.h"

struct rec {
    pthread_mutex_t mu;
    char wanted[CHAT_USER_ID_MAX];
    char got[8][40];
    char got_user[8][CHAT_USER_ID_MAX];
    int n;
};

static int wanted(void *ctx, const char *user_id)
{
    struct rec *r = ctx;
    return strcmp(r->wanted, user_id) == 0;
}

static void deliver(void *ctx, const char *user_id, char *text)
{
    struct rec *r = ctx;
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    pthread_mutex_lock(&r->mu);
    if (o != NULL && r->n < 8 && strcmp(json_string_value(json_object_get(o, "type")), "insight") == 0) {
        snprintf(r->got[r->n], sizeof(r->got[0]), "%s", json_string_value(json_object_get(o, "insight_id")));
        snprintf(r->got_user[r->n], sizeof(r->got_user[0]), "%s", user_id);
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    json_decref(o);
}

static size_t users(void *ctx, char (*ids)[CHAT_USER_ID_MAX], size_t cap)
{
    struct rec *r = ctx;
    if (cap == 0)
        return 0;
    memcpy(ids[0], r->wanted, sizeof(ids[0]));
    return 1;
}

static const struct chat_push_ops ops = {wanted, deliver, users};

static struct store *open_db(const char *url)
{
    struct store_options o;
    store_options_default(&o);
    o.synchronous_full = 0;
    struct store *st = NULL;
    char err[512];
    assert_int_equal(store_open(url, &o, &st, err, sizeof(err)), 0);
    return st;
}

static void make_user(struct store *st, const char *email, char id[STORE_ID_LEN])
{
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "%s", email);
    snprintf(u.password_hash, sizeof(u.password_hash), "x");
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    memcpy(id, u.id, STORE_ID_LEN);
}

static void insight(struct store *st, const char *user, char id[STORE_ID_LEN], int rollback)
{
    struct store_insight in = {.narrative = (char *)"n", .body = (char *)"{}", .confidence = 0.5};
    uuid_v7(in.id);
    snprintf(in.user_id, sizeof(in.user_id), "%s", user);
    snprintf(in.insight_type, sizeof(in.insight_type), "weekly");
    snprintf(in.generator, sizeof(in.generator), "builtin");
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_insight_insert(tx, &in), 0);
    if (rollback)
        store_tx_rollback(tx);
    else
        assert_int_equal(store_tx_commit(tx), 0);
    memcpy(id, in.id, STORE_ID_LEN);
}

static int delivered(struct rec *r, int want, long wait_ms)
{
    int n = 0;
    for (long i = 0; i <= wait_ms / 10; i++) {
        pthread_mutex_lock(&r->mu);
        n = r->n;
        pthread_mutex_unlock(&r->mu);
        if (n >= want)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return n;
}

static void test_push_delivers_each_insight_once(void **state)
{
    (void)state;
    char path[256], url[300], err[512];
    int applied;
    snprintf(path, sizeof(path), "%s/push_test_%d.db", getenv("CLARITY_TEST_TMP") ? getenv("CLARITY_TEST_TMP") : "/tmp",
             (int)getpid());
    unlink(path);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct store *st = open_db(url);
    assert_int_equal(store_migrate_up(st, NULL, &applied, err, sizeof(err)), 0);
    char a[STORE_ID_LEN], b[STORE_ID_LEN], i1[STORE_ID_LEN], i2[STORE_ID_LEN], i3[STORE_ID_LEN], x[STORE_ID_LEN];
    make_user(st, "a@example.com", a);
    make_user(st, "b@example.com", b);

    struct rec r;
    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.mu, NULL);
    snprintf(r.wanted, sizeof(r.wanted), "%s", a);
    struct chat_push *p = chat_push_new(st, &ops, &r);
    assert_non_null(p);
    struct timespec settle = {0, 300 * 1000 * 1000}; /* the thread subscribes */
    nanosleep(&settle, NULL);

    insight(st, a, x, 1); /* rolled back: never */
    insight(st, b, x, 0); /* someone not connected here: heard, not delivered */
    insight(st, a, i1, 0);
    insight(st, a, i2, 0);
    assert_int_equal(delivered(&r, 2, 10000), 2);
    assert_string_equal(r.got[0], i1); /* in commit order */
    assert_string_equal(r.got[1], i2);
    assert_string_equal(r.got_user[0], a);

    /* Another process's commit: no wake-up here, heard by following the table. */
    struct store *other = open_db(url);
    insight(other, a, i3, 0);
    store_close(other);
    assert_int_equal(delivered(&r, 3, 10000), 3);
    assert_string_equal(r.got[2], i3);
    /* Nothing twice. */
    struct timespec quiet = {1, 0};
    nanosleep(&quiet, NULL);
    assert_int_equal(delivered(&r, 4, 0), 3);
    assert_true(chat_push_events(p) >= 4);

    chat_push_free(p);
    chat_push_free(NULL);
    store_close(st);
    pthread_mutex_destroy(&r.mu);
    unlink(path);
    char p2[300];
    snprintf(p2, sizeof(p2), "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof(p2), "%s-shm", path);
    unlink(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_delivers_each_insight_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
