/*
 * ingest_session_test.c — the ingest session (src/ingest/session.c) on a
 * real SQLite store: what commit writes (upload row, samples, the analysis
 * job every door must queue, the audit row, the idempotency reply), what an
 * uncommitted session leaves (ATOMIC: nothing; STREAMED: the batches and a
 * failed upload), and the refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/uuid.h"
#include "ingest/session.h"
#include "pipeline/jobs.h"
#include "store/idempotency.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"

struct fix {
    char dir[64];
    struct store *st;
    char user[STORE_ID_LEN];
    char other[STORE_ID_LEN];
};

static void add_user(struct store *st, char id[STORE_ID_LEN])
{
    struct store_tx *tx = NULL;
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "s-%.36s@example.com", u.id);
    snprintf(u.password_hash, sizeof(u.password_hash), "x");
    snprintf(u.role, sizeof(u.role), "patient");
    snprintf(u.status, sizeof(u.status), "active");
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    memcpy(id, u.id, STORE_ID_LEN);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    char url[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/clarity-ingest-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(url, sizeof(url), "sqlite:%s/c.db", f->dir);
    assert_int_equal(store_open(url, NULL, &f->st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(f->st, NULL, NULL, err, sizeof(err)), 0);
    add_user(f->st, f->user);
    add_user(f->st, f->other);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char path[128];
    store_close(f->st);
    static const char *const ext[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/c.db%s", f->dir, ext[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void samples(struct store_sample *v, size_t n, const char *user, int64_t t0)
{
    memset(v, 0, n * sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        memcpy(v[i].user_id, user, STORE_ID_LEN);
        snprintf(v[i].metric_type, sizeof(v[i].metric_type), "heart_rate");
        snprintf(v[i].unit, sizeof(v[i].unit), "count/min");
        snprintf(v[i].source, sizeof(v[i].source), "test");
        snprintf(v[i].hk_uuid, sizeof(v[i].hk_uuid), "k-%lld-%zu", (long long)t0, i);
        v[i].value = 60.0 + (double)i;
        v[i].value2 = NAN;
        v[i].quality_score = NAN;
        v[i].start_ms = v[i].end_ms = t0 + (int64_t)i * 60000;
    }
}

static struct ingest_origin origin(const char *user, const char *source)
{
    struct ingest_origin o = {.user_id = user,
                              .source = source,
                              .audit_action = "health_data.create",
                              .request_id = "req-1",
                              .client_ip = "127.0.0.1",
                              .total_metrics = 3};
    return o;
}

/* The analysis jobs waiting, parsed; returns how many (at most 4). */
static size_t jobs_waiting(struct store *st, struct jobs_message *out)
{
    struct store_msg m[4];
    size_t n = 0;
    assert_int_equal(store_queue_lease(st, jobs_topic(JOBS_ANALYSIS), 60000, m, 4, &n), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jobs_parse(JOBS_ANALYSIS, m[i].payload, &out[i]), 0);
        assert_int_equal(store_queue_ack_now(st, &m[i]), 0);
        store_msg_clear(&m[i]);
    }
    return n;
}

static int64_t sample_count(struct store *st, const char *user, const char *upload)
{
    struct store_tx *tx = NULL;
    int64_t n = -1;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_count(tx, user, upload, &n), 0);
    store_tx_rollback(tx);
    return n;
}

static void test_atomic_commit_writes_all_and_queues(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[3];
    struct ingest_result r, mid;
    struct ingest_origin o = origin(f->user, "api");
    /* The longest request id the server accepts is kept whole in the audit
     * row (it used to be cut to 63 characters). */
    char rid[LIMIT_REQUEST_ID + 1];
    memset(rid, 'q', LIMIT_REQUEST_ID);
    rid[LIMIT_REQUEST_ID] = '\0';
    o.request_id = rid;
    samples(v, 3, f->user, 1700000000000LL);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    size_t stored = 0;
    assert_int_equal(ingest_session_add(s, v, 3, 0, 0, &stored), 0);
    assert_int_equal(stored, 3);
    assert_string_equal(v[0].upload_id, ingest_session_upload_id(s));             /* stamped */
    assert_int_equal(ingest_session_seal_raw(s, "application/json", "{}", 2), 0); /* no ring: nothing */
    ingest_session_result(s, &mid);
    struct ingest_idempotency idem = {"key-1", "ab", 201, "{\"ok\":true}"};
    assert_int_equal(ingest_session_commit(s, &idem, &r), 0);
    assert_string_equal(r.upload_id, mid.upload_id);
    assert_int_equal(r.stored, 3);
    assert_int_equal(r.duplicates, 0);
    /* Steps after commit are refused. */
    assert_int_equal(ingest_session_add(s, v, 1, 0, 0, NULL), INGEST_EINVAL);
    ingest_session_end(s, NULL);

    struct store_tx *tx = NULL;
    struct store_upload u;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, r.upload_id, f->user, &u), 0);
    assert_int_equal(u.status, STORE_UPLOAD_RECEIVED);
    assert_int_equal(u.total_metrics, 3);
    struct store_idempotency k;
    assert_int_equal(store_idempotency_get(tx, f->user, "key-1", 0, &k), 0);
    assert_int_equal(k.status, 201);
    assert_string_equal(k.response, "{\"ok\":true}");
    store_idempotency_clear(&k);
    struct store_audit *a = NULL;
    size_t na = 0;
    struct store_cursor next;
    assert_int_equal(store_audit_list(tx, f->user, NULL, 10, &a, &na, &next), 0);
    int found = 0;
    for (size_t i = 0; i < na; i++)
        found |= strcmp(a[i].resource_id, r.upload_id) == 0 && strcmp(a[i].action, "health_data.create") == 0 &&
                 strcmp(a[i].request_id, rid) == 0;
    free(a);
    store_tx_rollback(tx);
    assert_true(found);
    assert_int_equal(sample_count(f->st, f->user, r.upload_id), 3);

    /* The job every door must queue: one analysis job for this upload. */
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 1);
    assert_string_equal(j[0].upload_id, r.upload_id);
    assert_string_equal(j[0].user_id, f->user);

    /* The same samples again: duplicates, still a new upload and a new job. */
    samples(v, 3, f->user, 1700000000000LL);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    assert_int_equal(ingest_session_add(s, v, 3, 0, 0, NULL), 0);
    assert_int_equal(ingest_session_commit(s, NULL, &r), 0);
    ingest_session_end(s, NULL);
    assert_int_equal(r.stored, 0);
    assert_int_equal(r.duplicates, 3);
    assert_int_equal(jobs_waiting(f->st, j), 1);
}

static void test_atomic_uncommitted_leaves_nothing(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[2];
    struct ingest_origin o = origin(f->user, "api");
    samples(v, 2, f->user, 1700100000000LL);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    char id[STORE_ID_LEN];
    memcpy(id, ingest_session_upload_id(s), sizeof(id));
    assert_int_equal(ingest_session_add(s, v, 2, 0, 0, NULL), 0);
    ingest_session_end(s, "client went away");

    struct store_tx *tx = NULL;
    struct store_upload u;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, &u), STORE_ENOTFOUND);
    store_tx_rollback(tx);
    assert_int_equal(sample_count(f->st, f->user, id), 0);
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 0);
}

static void test_idempotency_key_taken_writes_nothing(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[1];
    struct ingest_origin o = origin(f->user, "api");
    struct ingest_idempotency idem = {"key-2", "cd", 201, "{}"};
    samples(v, 1, f->user, 1700200000000LL);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    assert_int_equal(ingest_session_add(s, v, 1, 0, 0, NULL), 0);
    assert_int_equal(ingest_session_commit(s, &idem, NULL), 0);
    ingest_session_end(s, NULL);
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 1);

    samples(v, 1, f->user, 1700300000000LL);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    char id[STORE_ID_LEN];
    memcpy(id, ingest_session_upload_id(s), sizeof(id));
    assert_int_equal(ingest_session_add(s, v, 1, 0, 0, NULL), 0);
    assert_int_equal(ingest_session_commit(s, &idem, NULL), STORE_ECONFLICT);
    ingest_session_end(s, NULL);
    assert_int_equal(sample_count(f->st, f->user, id), 0);
    assert_int_equal(jobs_waiting(f->st, j), 0);
}

static void test_streamed_batches_then_commit_queues(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[4];
    struct ingest_origin o = origin(f->user, "apple_health_export");
    o.audit_action = "health_data.import";
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_STREAMED, &s), 0);
    char id[STORE_ID_LEN];
    memcpy(id, ingest_session_upload_id(s), sizeof(id));

    /* The upload row is visible at once, processing. */
    struct store_tx *tx = NULL;
    struct store_upload u;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, &u), 0);
    store_tx_rollback(tx);
    assert_int_equal(u.status, STORE_UPLOAD_PROCESSING);

    samples(v, 4, f->user, 1700400000000LL);
    size_t stored = 0;
    assert_int_equal(ingest_session_add(s, v, 2, 0.4, 2, &stored), 0);
    assert_int_equal(stored, 2);
    /* Each batch is durable on its own, with the progress. */
    assert_int_equal(sample_count(f->st, f->user, id), 2);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, &u), 0);
    store_tx_rollback(tx);
    assert_true(fabs(u.progress - 0.4) < 1e-9);
    assert_int_equal(ingest_session_add(s, v + 2, 2, 2.0, 4, NULL), 0);
    /* No seal for a stream. */
    assert_int_equal(ingest_session_seal_raw(s, "application/xml", "x", 1), INGEST_EINVAL);
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 0); /* not before commit */
    struct ingest_result r;
    assert_int_equal(ingest_session_commit(s, NULL, &r), 0);
    ingest_session_end(s, "ignored after commit");
    assert_int_equal(r.stored, 4);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, &u), 0);
    store_tx_rollback(tx);
    assert_int_equal(u.status, STORE_UPLOAD_RECEIVED);
    assert_int_equal(u.processed_metrics, 4);
    assert_int_equal(jobs_waiting(f->st, j), 1);
    assert_string_equal(j[0].upload_id, id);
}

static void test_streamed_unfinished_is_failed(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[2];
    struct ingest_origin o = origin(f->user, "apple_health_export");
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_STREAMED, &s), 0);
    char id[STORE_ID_LEN];
    memcpy(id, ingest_session_upload_id(s), sizeof(id));
    samples(v, 2, f->user, 1700500000000LL);
    assert_int_equal(ingest_session_add(s, v, 2, 0.1, 2, NULL), 0);
    ingest_session_end(s, "line 3: not well-formed");
    struct store_tx *tx = NULL;
    struct store_upload u;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, &u), 0);
    store_tx_rollback(tx);
    assert_int_equal(u.status, STORE_UPLOAD_FAILED);
    assert_string_equal(u.error, "line 3: not well-formed");
    assert_int_equal(sample_count(f->st, f->user, id), 2); /* kept */
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 0);
}

static void test_refusals(void **state)
{
    struct fix *f = *state;
    struct ingest_session *s = NULL;
    struct store_sample v[2];
    struct ingest_origin o = origin(f->user, "api");
    /* Another user's sample in the batch: refused, nothing stored. */
    samples(v, 2, f->user, 1700600000000LL);
    memcpy(v[1].user_id, f->other, STORE_ID_LEN);
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), 0);
    assert_int_equal(ingest_session_add(s, v, 2, 0, 0, NULL), INGEST_EINVAL);
    assert_int_equal(ingest_session_commit(s, NULL, NULL), INGEST_EINVAL); /* failed: only end */
    ingest_session_end(s, NULL);
    /* No user; a request id longer than the audit column is refused, not cut. */
    o.user_id = NULL;
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_ATOMIC, &s), INGEST_EINVAL);
    assert_null(s);
    o = origin(f->user, "api");
    char long_id[LIMIT_REQUEST_ID + 2];
    memset(long_id, 'r', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    o.request_id = long_id;
    assert_int_equal(ingest_session_begin(f->st, NULL, &o, INGEST_STREAMED, &s), INGEST_EINVAL);
    ingest_session_end(NULL, NULL);
    struct jobs_message j[4];
    assert_int_equal(jobs_waiting(f->st, j), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atomic_commit_writes_all_and_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_uncommitted_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_taken_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_batches_then_commit_queues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_unfinished_is_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
