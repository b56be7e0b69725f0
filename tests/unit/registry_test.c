/*
 * registry_test.c — the chat's users and rooms (src/chat/registry.c): room
 * ownership, the per-user connection limit, the token bucket against a
 * given clock, and the list of connected users, also under concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "chat/registry.h"
#include "core/timeutil.h"

static void test_rooms(void **state)
{
    (void)state;
    struct chat_registry *r = chat_registry_new(3, 60);
    assert_non_null(r);
    assert_int_equal(chat_registry_room_claim(r, "user-a", "user-a"), 0); /* one's own id */
    assert_int_equal(chat_registry_room_claim(r, "family", "user-a"), 0); /* first claim */
    assert_int_equal(chat_registry_room_claim(r, "family", "user-a"), 0);
    assert_int_equal(chat_registry_room_claim(r, "family", "user-b"), -1);
    assert_int_equal(chat_registry_room_claim(r, "user-a", "user-b"), 0); /* never claimed as a name */
    chat_registry_free(r);
    chat_registry_free(NULL);
}

static void test_connection_limit(void **state)
{
    (void)state;
    struct chat_registry *r = chat_registry_new(3, 60);
    int held = -1;
    assert_int_equal(chat_registry_connected(r, "u"), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(chat_registry_conn_acquire(r, "u", &held), 0);
        assert_int_equal(held, i);
    }
    assert_int_equal(chat_registry_conn_acquire(r, "u", &held), -1); /* the 4th */
    assert_int_equal(held, 3);
    assert_int_equal(chat_registry_conn_acquire(r, "v", NULL), 0); /* others unaffected */
    char ids[4][CHAT_USER_ID_MAX];
    assert_int_equal(chat_registry_users(r, ids, 4), 2);
    assert_int_equal(chat_registry_users(r, ids, 1), 1);
    for (int i = 0; i < 3; i++)
        chat_registry_conn_release(r, "u");
    assert_int_equal(chat_registry_connected(r, "u"), 0);
    assert_int_equal(chat_registry_users(r, ids, 4), 1);
    assert_string_equal(ids[0], "v");
    chat_registry_conn_release(r, "nobody"); /* harmless */
    chat_registry_free(r);
}

static void test_rate_bucket(void **state)
{
    (void)state;
    struct chat_registry *r = chat_registry_new(3, 6); /* 6 a minute: one per 10 s */
    /* The bucket starts full at the wall clock of the first connection. */
    assert_int_equal(chat_registry_rate_take(r, "u", time_now_ms()), -1); /* not connected */
    assert_int_equal(chat_registry_conn_acquire(r, "u", NULL), 0);
    int64_t t = time_now_ms() + 1000;
    assert_int_equal(chat_registry_rate_take(r, "u", t), 0);
    t += 10000; /* back to full: 6 */
    for (int i = 0; i < 6; i++)
        assert_int_equal(chat_registry_rate_take(r, "u", t), 0); /* a full bucket */
    assert_int_equal(chat_registry_rate_take(r, "u", t), -1);
    assert_int_equal(chat_registry_rate_take(r, "u", t + 9999), -1); /* 0.9999 token */
    assert_int_equal(chat_registry_rate_take(r, "u", t + 10000), 0); /* refilled one */
    assert_int_equal(chat_registry_rate_take(r, "u", t + 10000), -1);
    /* Never more than per_minute after a long pause. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(chat_registry_rate_take(r, "u", t + 3600000), 0);
    assert_int_equal(chat_registry_rate_take(r, "u", t + 3600000), -1);
    chat_registry_free(r);
}

static void *churn(void *arg)
{
    struct chat_registry *r = arg;
    char id[16];
    for (int i = 0; i < 20000; i++) {
        snprintf(id, sizeof(id), "u%d", i % 50);
        if (chat_registry_conn_acquire(r, id, NULL) == 0)
            chat_registry_conn_release(r, id);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    struct chat_registry *r = chat_registry_new(2, 60);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    char ids[64][CHAT_USER_ID_MAX];
    assert_int_equal(chat_registry_users(r, ids, 64), 0); /* every slot given back */
    chat_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_rate_bucket),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
