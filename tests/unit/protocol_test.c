/*
 * protocol_test.c — the chat's messages (src/chat/protocol.c): every client
 * type parsed, every refusal with its code, the rate rule (heartbeats are
 * free, garbage is not), and the rendered server messages read back as JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "chat/protocol.h"
#include "core/json_load.h"
#include "store/store.h"

static int parse(const char *s, struct chat_in *in, const char **code)
{
    const char *why = NULL;
    *code = NULL;
    int rc = chat_protocol_parse((const uint8_t *)s, strlen(s), in, code, &why);
    if (rc != 0)
        assert_non_null(why);
    return rc;
}

static void test_parse(void **state)
{
    (void)state;
    struct chat_in in;
    const char *code;
    assert_int_equal(parse("{\"type\":\"message\",\"content\":\"how did I sleep?\"}", &in, &code), 0);
    assert_int_equal(in.type, CHAT_IN_MESSAGE);
    assert_string_equal(in.text, "how did I sleep?");
    assert_true(in.rated);
    chat_in_clear(&in);

    assert_int_equal(parse("{\"type\":\"typing\"}", &in, &code), 0);
    assert_int_equal(in.type, CHAT_IN_TYPING);
    assert_int_equal(in.is_typing, 1); /* default */
    chat_in_clear(&in);
    assert_int_equal(parse("{\"type\":\"typing\",\"is_typing\":false}", &in, &code), 0);
    assert_int_equal(in.is_typing, 0);
    chat_in_clear(&in);

    assert_int_equal(parse("{\"type\":\"heartbeat\",\"client_timestamp\":42}", &in, &code), 0);
    assert_int_equal(in.type, CHAT_IN_HEARTBEAT);
    assert_int_equal(json_integer_value(in.client_timestamp), 42);
    assert_false(in.rated); /* heartbeats do not count against the budget */
    chat_in_clear(&in);

    assert_int_equal(parse("{\"type\":\"health_insight\",\"content\":{\"data_points\":[]}}", &in, &code), 0);
    assert_int_equal(in.type, CHAT_IN_HEALTH_INSIGHT);
    assert_true(json_is_object(in.content));
    chat_in_clear(&in);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text, *code;
    } cases[] = {
        {"{not json", CHAT_ERR_INVALID_JSON},
        {"[1, 2]", CHAT_ERR_INVALID_JSON},
        {"{\"type\":\"message\"}", CHAT_ERR_INVALID_JSON},
        {"{\"type\":\"message\",\"content\":\"\"}", CHAT_ERR_INVALID_JSON},
        {"{\"type\":\"message\",\"content\":7}", CHAT_ERR_INVALID_JSON},
        {"{\"type\":\"dance\"}", CHAT_ERR_UNKNOWN_TYPE},
        {"{\"content\":\"no type\"}", CHAT_ERR_UNKNOWN_TYPE},
        {"{\"type\":3}", CHAT_ERR_UNKNOWN_TYPE},
        {"{\"type\":\"a\",\"type\":\"b\"}", CHAT_ERR_INVALID_JSON}, /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct chat_in in;
        const char *code;
        assert_int_equal(parse(cases[i].text, &in, &code), -1);
        assert_string_equal(code, cases[i].code);
        assert_int_equal(in.type, CHAT_IN_INVALID);
        assert_true(in.rated); /* garbage counts against the budget */
        chat_in_clear(&in);
    }
}

static json_t *load(char *s)
{
    assert_non_null(s);
    json_t *o = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(o);
    return o;
}

static const char *str(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_render(void **state)
{
    (void)state;
    struct chat_limits l = {655360, 60, 3, 30, 300, 10080};
    json_t *o = load(chat_render_ack("c1", "u1", "r1", &l));
    assert_string_equal(str(o, "type"), "connection_ack");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "limits"), "max_data_points")), 10080);
    assert_non_null(str(o, "server_time"));
    json_decref(o);

    o = load(chat_render_error(CHAT_ERR_RATE_LIMIT, "slow down"));
    assert_string_equal(str(o, "code"), "RATE_LIMIT_EXCEEDED");
    assert_string_equal(str(o, "message"), "slow down");
    json_decref(o);

    o = load(chat_render_answer("m2", "u1", "r1", "You slept 7 h.", "sleep", "builtin", "m1"));
    assert_string_equal(str(o, "role"), "assistant");
    assert_string_equal(str(o, "in_reply_to"), "m1");
    json_decref(o);

    o = load(chat_render_user_message("m1", "u1", "r1", "caf\xc3\xa9"));
    assert_string_equal(str(o, "content"), "caf\xc3\xa9"); /* escaped as ASCII, read back the same */
    json_decref(o);

    json_t *ts = json_string("t0");
    o = load(chat_render_heartbeat_ack(ts));
    assert_string_equal(str(o, "client_timestamp"), "t0");
    json_decref(o);
    json_decref(ts);

    struct store_insight in = {.narrative = (char *)"Steady week.",
                               .body = (char *)"{\"key_insights\":[\"a\"],\"recommendations\":[\"b\"]}",
                               .confidence = 0.8,
                               .created_at_ms = 1795680000000LL};
    strcpy(in.id, "i1");
    strcpy(in.user_id, "u1");
    strcpy(in.insight_type, "weekly");
    strcpy(in.generator, "builtin");
    o = load(chat_render_insight(&in));
    assert_string_equal(str(o, "type"), "insight");
    assert_string_equal(str(o, "source"), "pipeline");
    assert_string_equal(str(o, "insight_id"), "i1");
    assert_true(json_is_null(json_object_get(o, "analysis_id")));
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "key_insights"), 0)), "a");
    json_decref(o);
    in.body = (char *)"not json";
    o = load(chat_render_insight(&in));
    assert_int_equal(json_array_size(json_object_get(o, "recommendations")), 0);
    json_decref(o);

    o = load(chat_render_health_insight(json_pack("{s:i}", "data_points", 3), "u1"));
    assert_string_equal(str(o, "source"), "health_insight");
    assert_int_equal(json_integer_value(json_object_get(o, "data_points")), 3);
    json_decref(o);
}

/* A valid message that cannot be parsed for want of memory is answered
 * INTERNAL_ERROR (send again), never INVALID_JSON (#16). */
static void test_parse_under_allocation_failure(void **state)
{
    (void)state;
    const char *msg = "{\"type\":\"message\",\"content\":\"How did I sleep over the last fortnight?\"}";
    int n, failed = 0;
    for (n = 1; n < 200; n++) {
        struct chat_in in;
        const char *code = NULL, *why = NULL;
        json_load_fail_at((unsigned long)n);
        int rc = chat_protocol_parse((const uint8_t *)msg, strlen(msg), &in, &code, &why);
        json_load_fail_at(0);
        chat_in_clear(&in);
        if (rc == 0)
            break;
        assert_string_equal(code, CHAT_ERR_INTERNAL);
        failed++;
    }
    assert_true(failed > 0);
    assert_true(n < 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_parse_under_allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
