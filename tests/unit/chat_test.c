/*
 * chat_test.c — the chat's intents, answers from stored analyses, the
 * health_insight analysis and its refusals, room ownership.
 * The WebSocket protocol itself is tested end to end (tests/e2e/test_chat.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat/answer.h"
#include "chat/hub.h"
#include "core/config.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/migrate.h"
#include "store/store.h"

static void test_intents(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum chat_intent want;
    } cases[] = {
        {"How did I sleep last night?", CHAT_INTENT_SLEEP},
        {"how many STEPS did I walk", CHAT_INTENT_ACTIVITY},
        {"What's my resting heart rate", CHAT_INTENT_HEART},
        {"Any trends this week?", CHAT_INTENT_TRENDS},
        {"What should I change?", CHAT_INTENT_CHANGE},
        {"how can I improve my sleep", CHAT_INTENT_CHANGE}, /* advice wins over the topic */
        {"hello", CHAT_INTENT_GREETING},
        {"xyzzy", CHAT_INTENT_HELP},
        {"", CHAT_INTENT_HELP},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(chat_intent_detect(cases[i].text), cases[i].want);
    assert_string_equal(chat_intent_name(CHAT_INTENT_CHANGE), "change");
}

/* content {data_points: n points from 08:00Z, one a minute}. */
static json_t *content_of(size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        time_format_rfc3339_ms(1795680000000LL + (int64_t)i * 60000, ts, sizeof(ts));
        json_array_append_new(arr, json_pack("{s:s, s:i}", "timestamp", ts, "value", (int)(20 + (i * 7) % 90)));
    }
    return json_pack("{s:o}", "data_points", arr);
}

static void test_analysis_run(void **state)
{
    (void)state;
    struct chat_services svc = {NULL, NULL, NULL, NULL, NULL};
    char err[256];
    json_t *out = NULL;
    json_t *c = content_of(720);
    assert_int_equal(chat_analysis_run(&svc, c, 10080, &out, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(out, "data_points")), 720);
    assert_non_null(json_object_get(out, "analysis"));
    json_t *ins = json_object_get(out, "insight");
    assert_non_null(json_string_value(json_object_get(ins, "narrative")));
    assert_string_equal(json_string_value(json_object_get(ins, "generator")), "builtin");
    json_decref(out);

    /* Too many points, checked before anything is parsed. */
    assert_int_equal(chat_analysis_run(&svc, c, 719, &out, err, sizeof(err)), ANALYSIS_ETOOMANY);
    assert_non_null(strstr(err, "719"));
    json_decref(c);

    /* Shapes. */
    json_t *bad[] = {
        json_pack("{s:s}", "data_points", "x"),
        json_pack("{s:[]}", "data_points"),
        json_pack("{s:[{s:s, s:i}]}", "data_points", "timestamp", "yesterday", "value", 3),
        json_pack("{s:[{s:s, s:i}]}", "data_points", "timestamp", "2026-11-20T08:00:00Z", "value", -1),
        json_pack("{s:[{s:s, s:i}], s:s}", "data_points", "timestamp", "2026-11-20T08:00:00Z", "value", 1, "steps",
                  "yes"),
        json_string("not an object"),
        NULL, /* content missing */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(chat_analysis_run(&svc, bad[i], 10080, &out, err, sizeof(err)), ANALYSIS_EINVAL);
        assert_true(err[0] != '\0');
        json_decref(bad[i]);
    }
}

static void insert_analysis(struct store *st, const char *user, const char *result, int64_t at)
{
    struct store_analysis a;
    memset(&a, 0, sizeof(a));
    uuid_v7(a.id);
    snprintf(a.user_id, sizeof(a.user_id), "%s", user);
    snprintf(a.kind, sizeof(a.kind), "pat");
    snprintf(a.model_version, sizeof(a.model_version), "none");
    a.version = 1;
    a.result = (char *)result;
    a.coverage = (char *)"{\"minutes\": 10080, \"fraction\": 0.9}";
    a.created_at_ms = at;
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_analysis_insert(tx, &a), 0);
    assert_int_equal(store_tx_commit(tx), 0);
}

static void test_answers_from_stored_analyses(void **state)
{
    (void)state;
    char path[256], url[300], err[512];
    int applied;
    snprintf(path, sizeof(path), "%s/chat_test_%d.db", getenv("CLARITY_TEST_TMP") ? getenv("CLARITY_TEST_TMP") : "/tmp",
             (int)getpid());
    unlink(path);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    struct store_options o;
    store_options_default(&o);
    o.synchronous_full = 0;
    struct store *st = NULL;
    assert_int_equal(store_open(url, &o, &st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(st, NULL, &applied, err, sizeof(err)), 0);
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "chat@example.com");
    snprintf(u.password_hash, sizeof(u.password_hash), "$argon2id$v=19$x");
    snprintf(u.first_name, sizeof(u.first_name), "Ada");
    snprintf(u.last_name, sizeof(u.last_name), "Lovelace");
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_tx_commit(tx), 0);

    struct chat_services svc = {NULL, st, NULL, NULL, NULL};
    enum chat_intent intent;
    char *a = chat_answer_text(&svc, u.id, "how did I sleep?", &intent);
    assert_int_equal(intent, CHAT_INTENT_SLEEP);
    assert_non_null(strstr(a, "don't have any analysed data"));
    free(a);

    int64_t now = time_now_ms();
    insert_analysis(st, u.id,
                    "{\"activity\": {\"steps_daily_mean\": {\"value\": 4000}}, "
                    "\"cardio\": {\"hr_resting_bpm\": {\"value\": 64}}}",
                    now - 86400000);
    insert_analysis(st, u.id,
                    "{\"activity\": {\"steps_daily_mean\": {\"value\": 6500}}, "
                    "\"cardio\": {\"hr_resting_bpm\": {\"value\": 64}}}",
                    now);
    a = chat_answer_text(&svc, u.id, "how active was I", &intent);
    assert_int_equal(intent, CHAT_INTENT_ACTIVITY);
    assert_non_null(strstr(a, "6500"));
    assert_non_null(strstr(a, "not medical advice"));
    free(a);
    a = chat_answer_text(&svc, u.id, "any trends?", &intent);
    assert_non_null(strstr(a, "average daily steps went up to 6500 steps (from 4000)"));
    assert_non_null(strstr(a, "resting heart rate held steady at 64"));
    free(a);
    a = chat_answer_text(&svc, u.id, "What should I change?", &intent);
    assert_int_equal(intent, CHAT_INTENT_CHANGE);
    assert_true(strlen(a) > 20);
    free(a);
    a = chat_answer_text(&svc, u.id, "how did I sleep", &intent);
    assert_non_null(strstr(a, "no sleep measurements"));
    free(a);

    store_close(st);
    unlink(path);
    char p2[300];
    snprintf(p2, sizeof(p2), "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof(p2), "%s-shm", path);
    unlink(p2);
}

static void test_rooms(void **state)
{
    (void)state;
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.chat_max_message_bytes = 65536;
    cfg.chat_messages_per_minute = 60;
    cfg.chat_max_connections_per_user = 3;
    cfg.chat_heartbeat_seconds = 30;
    cfg.chat_idle_timeout_seconds = 300;
    cfg.chat_max_data_points = 10080;
    struct chat_services svc = {&cfg, NULL, NULL, NULL, NULL};
    char err[128];
    struct chat_hub *h = chat_hub_new(&svc, err, sizeof(err));
    assert_non_null(h);
    assert_int_equal(chat_hub_open(h), 1);
    assert_int_equal(chat_hub_room_claim(h, "user-a", "user-a"), 0); /* one's own id */
    assert_int_equal(chat_hub_room_claim(h, "family", "user-a"), 0); /* first claim */
    assert_int_equal(chat_hub_room_claim(h, "family", "user-a"), 0);
    assert_int_equal(chat_hub_room_claim(h, "family", "user-b"), -1);
    assert_int_equal(chat_hub_connections(h), 0);
    assert_int_equal(chat_hub_drain(h, 100), 0);
    assert_int_equal(chat_hub_open(h), 0);
    chat_hub_free(h);
    chat_hub_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intents),
        cmocka_unit_test(test_analysis_run),
        cmocka_unit_test(test_answers_from_stored_analyses),
        cmocka_unit_test(test_rooms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
