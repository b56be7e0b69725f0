/*
 * limiter_test.c — token buckets, lockout windows, bounded memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "auth/limiter.h"

static void test_bucket(void **state)
{
    (void)state;
    struct limiter *l = limiter_new(1024);
    struct rate_rule r = {5, 60}; /* 5 per minute: one token per 12 s */
    struct rate_result res;
    int64_t t = 1000000;
    for (int i = 0; i < 5; i++) {
        limiter_take(l, "auth:ip:1.2.3.4", &r, t, &res);
        assert_true(res.allowed);
        assert_int_equal(res.remaining, 4 - i);
        assert_int_equal(res.limit, 5);
    }
    limiter_take(l, "auth:ip:1.2.3.4", &r, t, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 12);
    assert_int_equal(res.reset_s, 60);
    /* Another key is independent. */
    limiter_take(l, "auth:ip:5.6.7.8", &r, t, &res);
    assert_true(res.allowed);
    /* 11.9 s later still refused; at 12 s one request passes. */
    limiter_take(l, "auth:ip:1.2.3.4", &r, t + 11900, &res);
    assert_false(res.allowed);
    assert_int_equal(res.retry_after_s, 1);
    limiter_take(l, "auth:ip:1.2.3.4", &r, t + 12000, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 0);
    /* A long pause refills to capacity, not beyond. */
    limiter_take(l, "auth:ip:1.2.3.4", &r, t + 3600000, &res);
    assert_true(res.allowed);
    assert_int_equal(res.remaining, 4);
    limiter_free(l);
}

static void test_lockout(void **state)
{
    (void)state;
    struct limiter *l = limiter_new(1024);
    int64_t t = 5000000;
    const char *k = "login:a@example.com|10.0.0.1";
    for (int i = 0; i < 4; i++)
        assert_int_equal(limiter_fail(l, k, 5, 900, 900, t + i * 1000), 0);
    assert_int_equal(limiter_locked(l, k, t + 5000), 0);
    assert_int_equal(limiter_fail(l, k, 5, 900, 900, t + 5000), 900);
    assert_int_equal(limiter_locked(l, k, t + 5000), 900);
    assert_int_equal(limiter_locked(l, k, t + 5000 + 899500), 1);
    assert_int_equal(limiter_locked(l, k, t + 5000 + 900000), 0);
    /* The same account from another address is not locked. */
    assert_int_equal(limiter_locked(l, "login:a@example.com|10.0.0.2", t + 6000), 0);
    /* Failures spread beyond the window do not add up. */
    const char *k2 = "login:b@example.com|10.0.0.1";
    for (int i = 0; i < 10; i++)
        assert_int_equal(limiter_fail(l, k2, 5, 900, 900, t + (int64_t)i * 901000), 0);
    /* A success clears the count. */
    const char *k3 = "login:c@example.com|10.0.0.1";
    for (int i = 0; i < 4; i++)
        limiter_fail(l, k3, 5, 900, 900, t);
    limiter_clear(l, k3);
    assert_int_equal(limiter_fail(l, k3, 5, 900, 900, t), 0);
    limiter_free(l);
}

static void test_bounded(void **state)
{
    (void)state;
    struct limiter *l = limiter_new(4096);
    struct rate_rule r = {100, 60};
    struct rate_result res;
    char key[64];
    for (int i = 0; i < 1000000; i++) {
        snprintf(key, sizeof(key), "api:ip:10.%d.%d.%d", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        limiter_take(l, key, &r, 1000 + i, &res);
        assert_true(res.allowed);
    }
    assert_true(limiter_size(l) <= 4096);
    assert_true(limiter_size(l) > 3000);
    /* A key's bucket state persists while it stays in use: the 101st request
     * within the same millisecond is refused. */
    for (int i = 0; i < 100; i++) {
        limiter_take(l, "hot", &r, 2000000, &res);
        assert_true(res.allowed);
    }
    limiter_take(l, "hot", &r, 2000000, &res);
    assert_false(res.allowed);
    limiter_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket),
        cmocka_unit_test(test_lockout),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
