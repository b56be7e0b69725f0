/*
 * jobs_test.c — the job message schema (pipeline/jobs.c): what jobs_encode
 * writes jobs_parse reads back, for both kinds; anything else is refused
 * with JOBS_EPAYLOAD; the analysis job published by jobs_analysis_publish
 * is the one a worker parses.
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

#include "pipeline/jobs.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"

#define UP "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"
#define US "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c"
#define AN "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d"

static struct jobs_message msg(const char *up, const char *us, const char *an)
{
    struct jobs_message m;
    memset(&m, 0, sizeof(m));
    snprintf(m.upload_id, sizeof(m.upload_id), "%s", up);
    snprintf(m.user_id, sizeof(m.user_id), "%s", us);
    snprintf(m.analysis_id, sizeof(m.analysis_id), "%s", an);
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    char text[JOBS_PAYLOAD_MAX];
    struct jobs_message in = msg(UP, US, ""), out;
    assert_int_equal(jobs_encode(JOBS_ANALYSIS, &in, text), 0);
    assert_string_equal(text, "{\"upload_id\":\"" UP "\",\"user_id\":\"" US "\"}");
    assert_int_equal(jobs_parse(JOBS_ANALYSIS, text, &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    /* An analysis job is not an insight job (no analysis_id). */
    assert_int_equal(jobs_parse(JOBS_INSIGHT, text, &out), JOBS_EPAYLOAD);

    in = msg(UP, US, AN);
    assert_int_equal(jobs_encode(JOBS_INSIGHT, &in, text), 0);
    assert_int_equal(jobs_parse(JOBS_INSIGHT, text, &out), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    /* An insight job names its upload too: a failed one closes it. */
    assert_int_equal(jobs_parse(JOBS_ANALYSIS, text, &out), 0);
    assert_string_equal(out.upload_id, UP);
    assert_string_equal(jobs_topic(JOBS_ANALYSIS), STORE_TOPIC_HEALTH_DATA);
    assert_string_equal(jobs_topic(JOBS_INSIGHT), STORE_TOPIC_INSIGHTS);
}

static void test_refusals(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        "[]",
        "{",
        "null",
        "{\"upload_id\":\"" UP "\"}",
        "{\"upload_id\":\"not-a-uuid\",\"user_id\":\"" US "\"}",
        "{\"upload_id\":1,\"user_id\":\"" US "\"}",
        "{\"upload_id\":\"" UP "\",\"user_id\":\"" US "\",\"upload_id\":\"" UP "\"}", /* duplicate key */
        "{\"upload_id\":\"" UP "\",\"user_id\":\"" US "\",\"analysis_id\":\"x\"}",
    };
    struct jobs_message out;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&out, 0x5a, sizeof(out));
        assert_int_equal(jobs_parse(JOBS_ANALYSIS, bad[i], &out), JOBS_EPAYLOAD);
        assert_string_equal(out.upload_id, ""); /* zeroed on failure */
    }
    char text[JOBS_PAYLOAD_MAX];
    struct jobs_message m = msg("x", US, "");
    assert_int_equal(jobs_encode(JOBS_ANALYSIS, &m, text), JOBS_EPAYLOAD);
    m = msg(UP, US, "");
    assert_int_equal(jobs_encode(JOBS_INSIGHT, &m, text), JOBS_EPAYLOAD);
    m = msg(UP, "\"},{\"evil\":1", "");
    assert_int_equal(jobs_encode(JOBS_ANALYSIS, &m, text), JOBS_EPAYLOAD);
}

/* What the ingest session publishes is what the worker leases and parses. */
static void test_publish_is_parsed(void **state)
{
    (void)state;
    char dir[] = "/tmp/clarity-jobs-XXXXXX", url[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/c.db", dir);
    struct store *st = NULL;
    assert_int_equal(store_open(url, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(st, NULL, NULL, err, sizeof(err)), 0);
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(jobs_analysis_publish(tx, UP, US), 0);
    assert_int_equal(jobs_analysis_publish(tx, "nope", US), JOBS_EPAYLOAD);
    assert_int_equal(store_tx_commit(tx), 0);
    struct store_msg m[2];
    size_t n = 0;
    assert_int_equal(store_queue_lease(st, jobs_topic(JOBS_ANALYSIS), 60000, m, 2, &n), 0);
    assert_int_equal(n, 1);
    struct jobs_message out;
    assert_int_equal(jobs_parse(JOBS_ANALYSIS, m[0].payload, &out), 0);
    assert_string_equal(out.upload_id, UP);
    assert_string_equal(out.user_id, US);
    store_msg_clear(&m[0]);
    store_close(st);
    char path[160];
    snprintf(path, sizeof(path), "%s/c.db", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/c.db-wal", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/c.db-shm", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_publish_is_parsed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
