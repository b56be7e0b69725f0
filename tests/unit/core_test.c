/*
 * core_test.c — buffers, JSON escaping, RFC 3339, UUIDs, arena, logger.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"

static void test_buf_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "hello"), 0);
    assert_int_equal(buf_puts(&b, "world"), 0);
    assert_int_equal(buf_puts(&b, "!"), -1); /* 11 > 10: refused whole */
    assert_true(b.truncated);
    assert_string_equal(b.data, "helloworld");
    buf_free(&b);

    char storage[8];
    buf_init_fixed(&b, storage, sizeof(storage));
    assert_int_equal(buf_printf(&b, "%d", 1234567), 0);
    assert_int_equal(buf_printf(&b, "%d", 8), -1);
    assert_string_equal(storage, "1234567");

    /* buf_put_int agrees with printf, refuses what does not fit whole. */
    char big[64];
    const long long vals[] = {0, 7, -7, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", vals[i]);
        buf_init_fixed(&b, big, sizeof(big));
        assert_int_equal(buf_put_int(&b, vals[i]), 0);
        assert_string_equal(big, want);
    }
    buf_init_fixed(&b, storage, sizeof(storage));
    assert_int_equal(buf_put_int(&b, 12345678), -1);
    assert_string_equal(storage, "");

    /* Whole-second RFC 3339, and a short buffer cut, never overrun. */
    char t[40], tiny[8];
    assert_string_equal(time_format_rfc3339_s(1765000000123LL, t, sizeof(t)), "2025-12-06T05:46:40Z");
    assert_string_equal(time_format_rfc3339_s(1765000000123LL, tiny, sizeof(tiny)), "2025-12");
}

static void test_json_escape(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 1024);
    buf_json_string(&b, "a\"b\\c\n\x01\x7f\xc3\xa9\xff");
    /* \xc3\xa9 is é (kept); \xff is invalid UTF-8 (replaced). */
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001\\u007f\xc3\xa9\\ufffd\"");
    json_error_t je;
    json_t *j = json_loads(b.data, JSON_DECODE_ANY, &je);
    assert_non_null(j);
    json_decref(j);
    buf_reset(&b);
    buf_json_string(&b, "\xed\xa0\x80"); /* an encoded surrogate is not valid UTF-8 */
    assert_string_equal(b.data, "\"\\ufffd\\ufffd\\ufffd\"");
    buf_free(&b);
}

static void test_rfc3339_parse(void **state)
{
    (void)state;
    int64_t ms;
    int off;
    assert_int_equal(time_parse_rfc3339("1970-01-01T00:00:00Z", &ms, &off), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(time_parse_rfc3339("2024-02-29T12:30:45.5+02:00", &ms, &off), 0);
    /* 2024-02-29 is day 19782 since the epoch; 12:30:45.5 at +02:00 is 10:30:45.5 UTC. */
    assert_int_equal(ms, (int64_t)19782 * 86400000 + (10 * 3600 + 30 * 60 + 45) * 1000LL + 500);
    assert_int_equal(off, 120);
    assert_int_equal(time_parse_rfc3339("2026-11-27t04:15:47.123456789z", &ms, NULL), 0);
    assert_int_equal(ms % 1000, 123);
    assert_int_equal(time_parse_rfc3339("1969-12-31T23:59:59-00:30", &ms, &off), 0);
    assert_int_equal(ms, 29 * 60 * 1000 + 59 * 1000);
    assert_int_equal(off, -30);
}

static void test_rfc3339_reject(void **state)
{
    (void)state;
    int64_t ms;
    const char *bad[] = {"",
                         "2024-02-30T00:00:00Z",
                         "2023-02-29T00:00:00Z",
                         "2024-13-01T00:00:00Z",
                         "2024-01-01T24:00:00Z",
                         "2024-01-01T00:60:00Z",
                         "2024-01-01 00:00:00",
                         "2024-01-01T00:00:00",
                         "2024-01-01T00:00:00.Z",
                         "2024-01-01T00:00:00+0200",
                         "2024-01-01T00:00:00Zjunk",
                         "20240101T000000Z",
                         "2024-01-01T00:00:00.1234567890Z"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (time_parse_rfc3339(bad[i], &ms, NULL) == 0)
            fail_msg("accepted %s", bad[i]);
}

static void test_rfc3339_roundtrip(void **state)
{
    (void)state;
    char out[40];
    int64_t ms;
    time_format_rfc3339_ms(1795580147123LL, out, sizeof(out));
    assert_int_equal(time_parse_rfc3339(out, &ms, NULL), 0);
    assert_int_equal(ms, 1795580147123LL);
    time_format_rfc3339_ms(-1, out, sizeof(out));
    assert_string_equal(out, "1969-12-31T23:59:59.999Z");
}

static void test_uuid(void **state)
{
    (void)state;
    char a[UUID_STR_LEN], b[UUID_STR_LEN];
    assert_int_equal(uuid_v7(a), 0);
    assert_int_equal(uuid_v7(b), 0);
    assert_true(uuid_is_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '7');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_int_equal(uuid_v4(a), 0);
    assert_int_equal(a[14], '4');
    assert_false(uuid_is_valid("not-a-uuid"));
    assert_false(uuid_is_valid("3e65c32f-8dc5-426b-b928-eaebb20c267g"));
    assert_true(uuid_is_valid("3E65C32F-8DC5-426B-B928-EAEBB20C2679"));
}

static void test_arena(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 64 * 1024);
    char *s = arena_strdup(&a, "hello");
    assert_string_equal(s, "hello");
    void *big = arena_alloc(&a, 10000);
    assert_non_null(big);
    memset(big, 1, 10000);
    char *t = arena_strndup(&a, "abcdef", 3);
    assert_string_equal(t, "abc");
    assert_string_equal(s, "hello");
    assert_null(arena_alloc(&a, 64 * 1024)); /* over the cap */
    assert_true(((uintptr_t)arena_alloc(&a, 3) % _Alignof(max_align_t)) == 0);
    arena_free(&a);
}

static void test_log_line_is_json(void **state)
{
    (void)state;
    char path[] = "/tmp/clarity_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    log_fd_set(fd);
    log_level_set(LOG_INFO);
    log_write(LOG_DEBUG, "hidden", LOG_END);
    log_write(LOG_INFO, "hello \"world\"", LOG_STR, "k", "v\n", LOG_INT, "n", 42LL, LOG_DBL, "d", 1.5, LOG_STR, "null",
              (const char *)NULL, LOG_INT, "neg", -9223372036854775807LL - 1, LOG_DBL, "round", 12.3456, LOG_DBL,
              "tiny", 0.0004, LOG_DBL, "minus", -2.25, LOG_END);
    char big[4000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_write(LOG_ERROR, "long", LOG_STR, "big", big, LOG_END);
    log_fd_set(2);
    lseek(fd, 0, SEEK_SET);
    char text[8192];
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    text[n] = '\0';
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    *nl = '\0';
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "INFO");
    assert_string_equal(json_string_value(json_object_get(j, "message")), "hello \"world\"");
    assert_string_equal(json_string_value(json_object_get(j, "k")), "v\n");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 42);
    assert_true(json_is_null(json_object_get(j, "null")));
    assert_true(json_integer_value(json_object_get(j, "neg")) == INT64_MIN);
    assert_true(json_real_value(json_object_get(j, "d")) == 1.5);
    assert_non_null(strstr(text, "\"d\":1.500,"));
    assert_non_null(strstr(text, "\"round\":12.346,"));
    assert_non_null(strstr(text, "\"tiny\":0.000,"));
    assert_non_null(strstr(text, "\"minus\":-2.250}"));
    json_decref(j);
    /* The over-long line is replaced by a valid, marked one. */
    j = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, &je);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
}

static void test_log_level_parse(void **state)
{
    (void)state;
    enum log_level l;
    assert_int_equal(log_level_parse("warning", &l), 0);
    assert_int_equal(l, LOG_WARNING);
    assert_int_equal(log_level_parse("WARN", &l), 0);
    assert_int_equal(log_level_parse("Debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("verbose", &l), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_rfc3339_parse),
        cmocka_unit_test(test_rfc3339_reject),
        cmocka_unit_test(test_rfc3339_roundtrip),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_log_line_is_json),
        cmocka_unit_test(test_log_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
