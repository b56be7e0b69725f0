/*
 * recovery_test.c — an upload whose job was dead-lettered without running
 * (its worker died during the last attempt) is closed as failed; uploads
 * that finished, or whose messages are still live, are left alone.
 * SQLite, or PostgreSQL when CLARITY_TEST_PG_URL is set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/uuid.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/recovery.h"
#include "pipeline/jobs.h"
#include "store/recovery.h"
#include "store/store.h"

static int run_on(const char *url)
{
    struct store *st = NULL;
    struct store_options o;
    char err[512];
    store_options_default(&o);
    o.queue_backoff_base_ms = 1;
    if (store_open(url, &o, &st, err, sizeof(err)) != 0) {
        fprintf(stderr, "open %s: %s\n", url, err);
        return -1;
    }
    int applied = 0;
    assert_int_equal(store_migrate_up(st, NULL, &applied, err, sizeof(err)), 0);

    struct store_tx *tx = NULL;
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "rec-%.36s@example.com", u.id);
    snprintf(u.password_hash, sizeof(u.password_hash), "x");
    snprintf(u.role, sizeof(u.role), "patient");
    snprintf(u.status, sizeof(u.status), "active");
    /* Three uploads: one abandoned, one completed with a dead letter of its
     * own (must stay completed), one with a live message (must stay received). */
    struct store_upload up[3];
    const enum store_upload_status status[3] = {STORE_UPLOAD_RECEIVED, STORE_UPLOAD_COMPLETED, STORE_UPLOAD_RECEIVED};
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    for (int i = 0; i < 3; i++) {
        memset(&up[i], 0, sizeof(up[i]));
        uuid_v7(up[i].id);
        snprintf(up[i].user_id, sizeof(up[i].user_id), "%s", u.id);
        snprintf(up[i].source, sizeof(up[i].source), "test");
        up[i].status = status[i];
        assert_int_equal(store_upload_insert(tx, &up[i]), 0);
        struct jobs_message jm;
        char msg[JOBS_PAYLOAD_MAX];
        memset(&jm, 0, sizeof(jm));
        memcpy(jm.upload_id, up[i].id, sizeof(jm.upload_id));
        memcpy(jm.user_id, u.id, sizeof(jm.user_id));
        assert_int_equal(jobs_encode(JOBS_ANALYSIS, &jm, msg), 0);
        struct store_publish_opts po = {.max_attempts = i == 2 ? 5 : 1};
        assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, msg, &po, NULL), 0);
    }
    /* A dead letter that is no job (an operator's test message) is skipped. */
    struct store_publish_opts once = {.max_attempts = 1};
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, "{\"hello\":1}", &once, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);

    /* Lease both single-attempt messages and "die": let the leases lapse. */
    struct store_msg m[8];
    size_t n = 0, total = 0;
    for (int round = 0; round < 3; round++) {
        memset(m, 0, sizeof(m));
        assert_int_equal(store_queue_lease(st, STORE_TOPIC_HEALTH_DATA, 1, m, 8, &n), 0);
        total += n;
        for (size_t i = 0; i < n; i++)
            store_msg_clear(&m[i]);
        struct timespec ts = {0, 30 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_true(total >= 3);

    int64_t closed = -1;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(jobs_close_dead_lettered(tx, &closed), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(closed, 1);

    struct store_upload got;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, up[0].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_FAILED);
    assert_non_null(strstr(got.error, "abandoned"));
    assert_int_equal(store_upload_get(tx, up[1].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_COMPLETED);
    assert_int_equal(store_upload_get(tx, up[2].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_RECEIVED);
    store_tx_rollback(tx);

    /* Idempotent: nothing left to close. */
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(jobs_close_dead_lettered(tx, &closed), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(closed, 0);

    /* Issue #16 (4): an import whose process died mid-stream stayed
     * "processing" forever. Past its lease (updated_at) it is failed with a
     * reason; a live import, and a processing upload of another kind, stay. */
    int64_t now = (int64_t)time(NULL) * 1000;
    struct store_upload imp[4];
    const char *src[4] = {"apple_health_export", "apple_health_export", "test", "research_recording"};
    const int64_t touched[4] = {now - 600000, now - 1000, now - 600000, now - 600000};
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    for (int i = 0; i < 4; i++) {
        memset(&imp[i], 0, sizeof(imp[i]));
        uuid_v7(imp[i].id);
        snprintf(imp[i].user_id, sizeof(imp[i].user_id), "%s", u.id);
        snprintf(imp[i].source, sizeof(imp[i].source), "%s", src[i]);
        imp[i].status = STORE_UPLOAD_PROCESSING;
        imp[i].created_at_ms = imp[i].updated_at_ms = touched[i];
        assert_int_equal(store_upload_insert(tx, &imp[i]), 0);
    }
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_upload_fail_stale_imports(tx, now - 300000, &closed), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(closed, 2);
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, imp[3].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_FAILED);
    assert_int_equal(store_upload_get(tx, imp[0].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_FAILED);
    assert_string_equal(got.error, STORE_IMPORT_INTERRUPTED);
    assert_int_equal(store_upload_get(tx, imp[1].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_PROCESSING);
    assert_int_equal(store_upload_get(tx, imp[2].id, NULL, &got), 0);
    assert_int_equal(got.status, STORE_UPLOAD_PROCESSING);
    store_tx_rollback(tx);
    store_close(st);
    return 0;
}

/* SQLite in a scratch directory, or the PostgreSQL of scripts/pg-test-server
 * when CLARITY_TEST_PG_URL is set (ctest runs both: unit/recovery_test and
 * unit/recovery_test_postgres). */
static void test_abandoned_uploads_closed(void **state)
{
    (void)state;
    const char *pg = getenv("CLARITY_TEST_PG_URL");
    if (pg == NULL && getenv("CLARITY_TEST_BACKEND") != NULL)
        fail_msg("CLARITY_TEST_BACKEND is set but CLARITY_TEST_PG_URL is not");
    if (pg != NULL) {
        assert_int_equal(run_on(pg), 0);
        return;
    }
    const char *base = getenv("CLARITY_TEST_TMP");
    char dir[512], url[600];
    snprintf(dir, sizeof(dir), "%s/recovery_XXXXXX", base != NULL ? base : "/tmp");
    mkdir(base != NULL ? base : "/tmp", 0700);
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/r.db", dir);
    assert_int_equal(run_on(url), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_abandoned_uploads_closed)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
