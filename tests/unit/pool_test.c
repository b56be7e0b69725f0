/*
 * pool_test.c — the chat's answer threads (src/chat/pool.c): every job runs
 * once, the queue is bounded (a flood is refused at once, not queued), and
 * jobs still waiting when the pool is freed are dropped, not leaked or run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "chat/pool.h"

static _Atomic int ran, dropped;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void count(void *arg)
{
    free(arg);
    atomic_fetch_add(&ran, 1);
}

static void drop(void *arg)
{
    free(arg);
    atomic_fetch_add(&dropped, 1);
}

/* Holds its thread until the gate opens. */
static void blocker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    atomic_fetch_add(&ran, 1);
}

static void *open_gate(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    return NULL;
}

static void wait_ran(int want)
{
    for (int i = 0; i < 2000 && atomic_load(&ran) < want; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&ran), want);
}

static void test_jobs_run_once(void **state)
{
    (void)state;
    atomic_store(&ran, 0);
    struct chat_pool *p = chat_pool_new(2, 1000);
    assert_non_null(p);
    for (int i = 0; i < 500; i++)
        assert_int_equal(chat_pool_submit(p, count, drop, malloc(8)), 0);
    wait_ran(500);
    chat_pool_free(p);
    chat_pool_free(NULL);
}

static void test_bounded_and_dropped(void **state)
{
    (void)state;
    atomic_store(&ran, 0);
    atomic_store(&dropped, 0);
    gate_open = 0;
    struct chat_pool *p = chat_pool_new(2, 4);
    /* Occupy both threads, then fill the queue. */
    assert_int_equal(chat_pool_submit(p, blocker, NULL, NULL), 0);
    assert_int_equal(chat_pool_submit(p, blocker, NULL, NULL), 0);
    for (int i = 0; i < 200 && chat_pool_queued(p) > 0; i++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(chat_pool_queued(p), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(chat_pool_submit(p, count, drop, malloc(8)), 0);
    void *extra = malloc(8);
    assert_int_equal(chat_pool_submit(p, count, drop, extra), -1); /* full: refused, still ours */
    free(extra);
    assert_int_equal(chat_pool_queued(p), 4);
    /* Free while the four wait: the running ones finish, the rest drop. */
    pthread_t opener;
    struct timespec later = {0, 100 * 1000 * 1000};
    nanosleep(&later, NULL);
    assert_int_equal(pthread_create(&opener, NULL, open_gate, NULL), 0);
    chat_pool_free(p);
    pthread_join(opener, NULL);
    assert_int_equal(atomic_load(&ran) + atomic_load(&dropped), 6);
    assert_true(atomic_load(&ran) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jobs_run_once),
        cmocka_unit_test(test_bounded_and_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
