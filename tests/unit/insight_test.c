/*
 * insight_test.c — creating an insight (pipeline/insight.c), the one path
 * the worker and POST /api/v1/insights/generate share: a real analysis
 * (posted points) rendered by the built-in generator, written in the
 * caller's transaction with its upload marked completed; read back equal;
 * a second write of the same id is a conflict; an unreadable stored
 * analysis is refused.
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

#include "core/uuid.h"
#include "pipeline/insight.h"
#include "pipeline/points.h"
#include "store/migrate.h"
#include "store/store.h"

static void test_render_create_read(void **state)
{
    (void)state;
    char dir[] = "/tmp/clarity-insight-XXXXXX", url[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof(url), "sqlite:%s/c.db", dir);
    struct store *st = NULL;
    assert_int_equal(store_open(url, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(st, NULL, NULL, err, sizeof(err)), 0);

    /* A user, an upload, and a week of minute steps analysed. */
    struct store_user u;
    struct store_upload up;
    memset(&u, 0, sizeof(u));
    memset(&up, 0, sizeof(up));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "i-%.36s@example.com", u.id);
    snprintf(u.password_hash, sizeof(u.password_hash), "x");
    snprintf(u.role, sizeof(u.role), "patient");
    snprintf(u.status, sizeof(u.status), "active");
    uuid_v7(up.id);
    memcpy(up.user_id, u.id, STORE_ID_LEN);
    snprintf(up.source, sizeof(up.source), "healthkit");
    up.status = STORE_UPLOAD_PROCESSING;
    up.total_metrics = 42;
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_upload_insert(tx, &up), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    static int64_t min[10080];
    static double val[10080];
    for (size_t i = 0; i < 10080; i++) {
        min[i] = 3000000 + (int64_t)i;
        val[i] = i % 1440 >= 480 && i % 1440 < 1320 ? 25.0 : 0.0;
    }
    json_t *result = NULL, *coverage = NULL;
    assert_int_equal(points_analyse(NULL, min, val, 10080, 1, 0, &result, &coverage, err, sizeof(err)), 0);

    struct insight_draft d;
    struct insight_subject s = {u.id, NULL, NULL, INSIGHT_FOCUS_ACTIVITY, NULL, result, coverage};
    assert_int_equal(insight_render(NULL, &s, &d), 0);
    assert_true(uuid_is_valid(d.rec.id));
    assert_string_equal(d.rec.generator, INSIGHT_BUILTIN_NAME);
    assert_string_equal(d.rec.insight_type, "activity");
    assert_string_equal(d.rec.analysis_id, "");
    assert_non_null(d.rec.narrative);
    assert_true(d.rec.confidence > 0 && d.rec.confidence <= 1);

    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(insight_create(tx, &d, up.id, 42), 0);
    assert_int_equal(store_tx_commit(tx), 0);

    struct store_insight got;
    struct store_upload ug;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_insight_get(tx, d.rec.id, u.id, &got), 0);
    assert_int_equal(store_upload_get(tx, up.id, NULL, &ug), 0);
    store_tx_rollback(tx);
    assert_string_equal(got.narrative, d.rec.narrative);
    assert_string_equal(got.body, d.rec.body);
    assert_string_equal(got.generator, d.rec.generator);
    store_insight_clear(&got);
    assert_int_equal(ug.status, STORE_UPLOAD_COMPLETED);
    assert_int_equal(ug.processed_metrics, 42);

    /* The same insight id again (a job delivered twice): a conflict, and
     * nothing else of the transaction. */
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(insight_create(tx, &d, NULL, 0), STORE_ECONFLICT);
    store_tx_rollback(tx);
    insight_draft_clear(&d);

    /* From a stored analysis: the id given is kept, owner and analysis
     * come from the record; an unreadable result is refused. */
    struct store_analysis a;
    memset(&a, 0, sizeof(a));
    uuid_v7(a.id);
    memcpy(a.user_id, u.id, STORE_ID_LEN);
    char *rt = json_dumps(result, JSON_COMPACT), *ct = json_dumps(coverage, JSON_COMPACT);
    a.result = rt;
    a.coverage = ct;
    char iid[STORE_ID_LEN];
    uuid_v7(iid);
    assert_int_equal(insight_render_analysis(NULL, &a, INSIGHT_FOCUS_COMPREHENSIVE, NULL, iid, &d), 0);
    assert_string_equal(d.rec.id, iid);
    assert_string_equal(d.rec.analysis_id, a.id);
    assert_string_equal(d.rec.user_id, u.id);
    assert_string_equal(d.rec.insight_type, "comprehensive");
    insight_draft_clear(&d);
    a.result = (char *)"[not json";
    assert_int_equal(insight_render_analysis(NULL, &a, INSIGHT_FOCUS_COMPREHENSIVE, NULL, NULL, &d), COMPUTE_EINTERNAL);
    insight_draft_clear(&d);

    /* The PAT API's use case: the analysis and its audit row together, or
     * neither (a second save of the same id conflicts and adds no audit). */
    snprintf(a.kind, sizeof(a.kind), "pat");
    snprintf(a.model_version, sizeof(a.model_version), "none");
    a.result = rt;
    a.created_at_ms = 1764547200000;
    struct store_audit au;
    memset(&au, 0, sizeof(au));
    memcpy(au.user_id, u.id, STORE_ID_LEN);
    snprintf(au.action, sizeof(au.action), "analysis.create");
    snprintf(au.resource_type, sizeof(au.resource_type), "analysis");
    snprintf(au.resource_id, sizeof(au.resource_id), "%s", a.id);
    snprintf(au.outcome, sizeof(au.outcome), "success");
    assert_int_equal(points_analysis_save(st, &a, &au), 0);
    assert_int_not_equal(points_analysis_save(st, &a, &au), 0);
    struct store_analysis saved;
    struct store_audit *rows = NULL;
    size_t nrows = 0;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_get(tx, a.id, u.id, &saved), 0);
    assert_string_equal(saved.result, rt);
    store_analysis_clear(&saved);
    assert_int_equal(store_audit_list(tx, u.id, NULL, 8, &rows, &nrows, NULL), 0);
    store_tx_rollback(tx);
    size_t creates = 0;
    for (size_t i = 0; i < nrows; i++)
        creates += strcmp(rows[i].action, "analysis.create") == 0 && strcmp(rows[i].resource_id, a.id) == 0;
    free(rows);
    assert_int_equal(creates, 1);
    free(rt);
    free(ct);
    json_decref(result);
    json_decref(coverage);
    store_close(st);
    static const char *const ext[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char path[160];
        snprintf(path, sizeof(path), "%s/c.db%s", dir, ext[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_create_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
