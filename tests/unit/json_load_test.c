/*
 * json_load_test.c — JSON parsing that tells allocation failure from bad
 * input (core/json_load.h, issue 16).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/json_load.h"

/* An upload-like body with strings longer than jansson's 16-byte initial
 * lexer buffer, so the lexer must grow it while reading them. */
static const char BODY[] =
    "{\"user_id\":\"0190f3a2-7c1e-7b3a-9f00-123456789abc\",\"upload_source\":\"apple_health_export_2025\","
    "\"metrics\":[{\"metric_type\":\"heart_rate\",\"biometric_data\":{\"heart_rate\":72},"
    "\"start_date\":\"2025-12-01T00:00:00Z\",\"end_date\":\"2025-12-01T00:01:00Z\"}]}";

static void test_valid_and_invalid(void **state)
{
    (void)state;
    json_t *j = NULL;
    json_error_t je;
    assert_int_equal(json_load_checked(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &j, &je), 0);
    assert_true(json_is_object(j));
    json_decref(j);
    assert_int_equal(json_load_checked("{\"a\":", 5, 0, &j, &je), JSON_EINVALID);
    assert_null(j);
    assert_int_equal(json_load_checked("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &j, &je), JSON_EINVALID);
    assert_int_equal(json_load_checked(NULL, 0, 0, &j, NULL), JSON_EINVALID);
}

/* Fail each allocation of the parse in turn: the answer is the exact
 * document or JSON_ENOMEM, never JSON_EINVALID (the client blamed) and never
 * a different document (jansson drops a byte its lexer buffer could not grow
 * for and goes on; the bare json_loadb shows it below). */
static void test_every_allocation_failure(void **state)
{
    (void)state;
    json_t *want = NULL;
    assert_int_equal(json_load_checked(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &want, NULL), 0);
    int n, enomem = 0;
    for (n = 1; n < 1000; n++) {
        json_t *j = NULL;
        json_load_fail_at((unsigned long)n);
        int rc = json_load_checked(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &j, NULL);
        json_load_fail_at(0);
        if (rc == 0) {
            assert_true(json_equal(j, want));
            json_decref(j);
            break; /* the nth allocation came after the parse */
        }
        assert_int_equal(rc, JSON_ENOMEM);
        assert_null(j);
        enomem++;
    }
    assert_true(n < 1000);
    assert_true(enomem > 10);

    /* Why the module exists: bare json_loadb under the same failures
     * reports syntax errors for valid JSON, or returns an altered document. */
    int misreported = 0, altered = 0;
    for (int k = 1; k <= enomem; k++) {
        json_error_t je;
        json_load_fail_at((unsigned long)k);
        json_t *j = json_loadb(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &je);
        json_load_fail_at(0);
        if (j == NULL && json_error_code(&je) != json_error_out_of_memory)
            misreported++;
        if (j != NULL && !json_equal(j, want))
            altered++;
        json_decref(j);
    }
    print_message("of %d failed allocations, bare jansson misreported %d and altered %d documents\n", enomem,
                  misreported, altered);
    assert_true(misreported + altered > 0);
    json_decref(want);
}

/* jansson 2.14's lexer asserts when the byte it dropped for a failed buffer
 * growth was an escaped character or a pushed-back delimiter (upstream #362;
 * CI saw load.c:442 abort the server). A document with an escape and a long
 * number at every offset past the 16-byte initial buffer puts one at each
 * growth point; failing each allocation of its parse in turn must give the
 * exact document or JSON_ENOMEM, never an abort, and leave nothing in the
 * parse reserve. */
static void test_lexer_growth_never_aborts(void **state)
{
    (void)state;
    static char doc[16384];
    size_t o = 0;
    o += (size_t)snprintf(doc + o, sizeof doc - o, "{");
    for (int k = 0; k < 40; k++) {
        o += (size_t)snprintf(doc + o, sizeof doc - o, "\"s%d\":\"%.*s\\n\\\"\\u00e9\",\"n%d\":-1.%.*s,", k, k,
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", k, k + 1,
                              "1234567890123456789012345678901234567890123456789");
    }
    o += (size_t)snprintf(doc + o, sizeof doc - o, "\"end\":-1.5e10}");
    assert_true(o < sizeof doc);
    json_t *want = NULL;
    assert_int_equal(json_load_checked(doc, o, 0, &want, NULL), 0);
    int n, enomem = 0;
    for (n = 1; n < 5000; n++) {
        json_t *j = NULL;
        json_load_fail_at((unsigned long)n);
        int rc = json_load_checked(doc, o, 0, &j, NULL);
        json_load_fail_at(0);
        assert_int_equal(json_load_reserve_live(), 0);
        if (rc == 0) {
            assert_true(json_equal(j, want));
            json_decref(j);
            break;
        }
        assert_int_equal(rc, JSON_ENOMEM);
        enomem++;
        /* json_parse says why in je. */
        json_error_t je;
        json_load_fail_at((unsigned long)n);
        assert_null(json_parse(doc, o, 0, &je));
        json_load_fail_at(0);
        assert_int_equal(json_error_code(&je), json_error_out_of_memory);
    }
    assert_true(n < 5000);
    assert_true(enomem > 100);
    json_decref(want);
}

/* A tree parsed into an arena equals the plain parse, can be changed (a
 * member replaced, an object grown past its hashtable, a member deleted),
 * and goes at once; failing each allocation of the arena parse in turn gives
 * the document or JSON_ENOMEM and leaves nothing live. ASan (the sanitizer
 * build) reports any arena block handed to free(). */
static void test_arena(void **state)
{
    (void)state;
    json_t *want = NULL, *j = NULL;
    struct json_arena *a = NULL;
    assert_int_equal(json_load_checked(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &want, NULL), 0);
    assert_int_equal(json_load_arena(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &j, NULL, &a), 0);
    assert_non_null(a);
    assert_true(json_equal(j, want));
    /* A second arena on the same thread: the plain way, NULL arena. */
    json_t *k = NULL;
    struct json_arena *b = (struct json_arena *)1;
    assert_int_equal(json_load_arena("[1]", 3, 0, &k, NULL, &b), 0);
    assert_null(b);
    json_arena_release(k, b);
    /* Changed after the parse: arena memory is freed by jansson here. */
    assert_int_equal(json_object_set_new(j, "user_id", json_string("someone-else")), 0);
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(json_object_set_new(j, key, json_integer(i)), 0);
    }
    assert_int_equal(json_object_del(j, "metrics"), 0);
    assert_int_equal(json_object_size(j), 102);
    json_t *kept = json_incref(json_object_get(want, "metrics"));
    json_arena_release(j, a);
    /* The next arena parse on this thread gets an arena again. */
    assert_int_equal(json_load_arena(BODY, strlen(BODY), 0, &j, NULL, &a), 0);
    assert_non_null(a);
    json_arena_release(j, a);
    int n, enomem = 0;
    for (n = 1; n < 1000; n++) {
        json_load_fail_at((unsigned long)n);
        int rc = json_load_arena(BODY, strlen(BODY), JSON_REJECT_DUPLICATES, &j, NULL, &a);
        json_load_fail_at(0);
        assert_int_equal(json_load_reserve_live(), 0);
        if (rc == 0) {
            assert_true(json_equal(j, want));
            json_arena_release(j, a);
            break;
        }
        assert_int_equal(rc, JSON_ENOMEM);
        assert_null(j);
        assert_null(a);
        enomem++;
    }
    assert_true(n < 1000 && enomem > 0);
    json_decref(kept);
    json_decref(want);
}

/* The counter is per thread and counts only jansson's allocations. */
static void test_failure_counter(void **state)
{
    (void)state;
    unsigned long before = json_load_failures();
    json_load_fail_at(1);
    json_t *o = json_object();
    json_load_fail_at(0);
    assert_null(o);
    assert_int_equal(json_load_failures(), before + 1);
}

int main(void)
{
    json_load_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_invalid),
        cmocka_unit_test(test_every_allocation_failure),
        cmocka_unit_test(test_failure_counter),
        cmocka_unit_test(test_lexer_growth_never_aborts),
        cmocka_unit_test(test_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
