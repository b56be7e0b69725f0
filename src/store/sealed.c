/*
 * sealed.c — listing sealed blobs by key version and replacing their heads
 * by compare-and-set, for keyring_rewrap (contract in sealed.h).
 *
 * Statements are cached by pointer (db_stmt_get), so each is a static
 * string. The head comparisons run in SQL on both backends: substr() is
 * byte-wise on SQLite BLOBs and on PostgreSQL bytea. SQLite has no byte
 * overlay, so the new blob is the new head concatenated with the old tail,
 * cast back to BLOB (|| joins the bytes as they are); PostgreSQL uses
 * overlay(). Either way one UPDATE of the one column: the row keeps its id,
 * so rows that reference it (sample_day_aggs, ON DELETE CASCADE) stay.
 */
#include "store/sealed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

#define HEAD_S "77" /* STORE_SEALED_HEAD */
#define TAIL_S "78"

_Static_assert(STORE_SEALED_HEAD == 77, "HEAD_S must match STORE_SEALED_HEAD");

/* Columns: integer id, text id, user_id, day, length, head. ?1 after (and
 * ?5 for the aggregates' second key), ?2 the mark byte(s), ?3 the version's
 * 4 bytes, ?4 limit. */
#define LIST_SQL(tbl, col, ids, day, after)                                                                            \
    "SELECT " ids ", user_id, " day ", length(" col "), substr(" col ", 1, " HEAD_S ") FROM " tbl " WHERE " after      \
    " AND " col " IS NOT NULL AND length(" col ") >= " HEAD_S " AND substr(" col ", 1, 1) = ?2"                        \
    " AND substr(" col ", 2, 4) <> ?3 ORDER BY id LIMIT ?4"

static const char list_analyses[] = LIST_SQL("analyses", "sealed", "0, id", "0", "id > ?1");
static const char list_insights[] = LIST_SQL("insights", "sealed", "0, id", "0", "id > ?1");
static const char list_days[] = LIST_SQL("sample_days", "data", "id, ''", "day", "id > ?1");
static const char list_aggs[] =
    "SELECT a.sample_day_id, a.metric_type, d.user_id, 0, length(a.data), substr(a.data, 2, " HEAD_S ")"
    " FROM sample_day_aggs a JOIN sample_days d ON d.id = a.sample_day_id"
    " WHERE (a.sample_day_id, a.metric_type) > (?1, ?5) AND length(a.data) >= " TAIL_S
    " AND substr(a.data, 1, 2) = ?2 AND substr(a.data, 3, 4) <> ?3"
    " ORDER BY a.sample_day_id, a.metric_type LIMIT ?4";

/* ?1 the new head, ?2 id (?4 the aggregates' metric type), ?3 the old head. */
#define SET_LITE(tbl, col)                                                                                             \
    "UPDATE " tbl " SET " col " = CAST(?1 || substr(" col ", " TAIL_S ") AS BLOB) WHERE id = ?2"                       \
    " AND substr(" col ", 1, " HEAD_S ") = ?3"
#define SET_PG(tbl, col)                                                                                               \
    "UPDATE " tbl " SET " col " = overlay(" col " placing ?1 from 1 for " HEAD_S ") WHERE id = ?2"                     \
    " AND substr(" col ", 1, " HEAD_S ") = ?3"

static const char set_lite_analyses[] = SET_LITE("analyses", "sealed");
static const char set_lite_insights[] = SET_LITE("insights", "sealed");
static const char set_lite_days[] = SET_LITE("sample_days", "data");
static const char set_lite_aggs[] =
    "UPDATE sample_day_aggs SET data = CAST(substr(data, 1, 1) || ?1 || substr(data, " HEAD_S " + 2) AS BLOB)"
    " WHERE sample_day_id = ?2 AND metric_type = ?4 AND substr(data, 2, " HEAD_S ") = ?3";
static const char set_pg_analyses[] = SET_PG("analyses", "sealed");
static const char set_pg_insights[] = SET_PG("insights", "sealed");
static const char set_pg_days[] = SET_PG("sample_days", "data");
static const char set_pg_aggs[] = "UPDATE sample_day_aggs SET data = overlay(data placing ?1 from 2 for " HEAD_S ")"
                                  " WHERE sample_day_id = ?2 AND metric_type = ?4 AND substr(data, 2, " HEAD_S ") = ?3";

const char *store_sealed_table_name(enum store_sealed_table t)
{
    switch (t) {
    case STORE_SEALED_ANALYSES: return "analyses";
    case STORE_SEALED_INSIGHTS: return "insights";
    case STORE_SEALED_SAMPLE_DAYS: return "sample_days";
    case STORE_SEALED_SAMPLE_DAY_AGGS: return "sample_day_aggs";
    }
    return NULL;
}

static int table_ok(enum store_sealed_table t) { return store_sealed_table_name(t) != NULL; }

int store_sealed_list(struct store_tx *tx, enum store_sealed_table t, uint32_t version,
                      const struct store_sealed_cursor *after, size_t limit, struct store_sealed_row **out, size_t *n,
                      struct store_sealed_cursor *next)
{
    static const char *const sql[STORE_SEALED_TABLES] = {list_analyses, list_insights, list_days, list_aggs};
    const unsigned char mark[2] = {STORE_SEALED_AGG_MARK, STORE_SEALED_FORMAT};
    unsigned char ver[4];
    struct store_sealed_row *v = NULL;
    struct db_stmt *s = NULL;
    size_t k = 0;
    int rc;

    if (tx == NULL || out == NULL || n == NULL || next == NULL || !table_ok(t) || limit < 1 || limit > STORE_PAGE_MAX)
        return STORE_EINVAL;
    *out = NULL;
    *n = 0;
    memset(next, 0, sizeof(*next));
    for (int i = 0; i < 4; i++)
        ver[i] = (unsigned char)(version >> (8 * i));
    if ((v = calloc(limit, sizeof(*v))) == NULL)
        return STORE_ENOMEM;
    if ((rc = store_tx_stmt(tx, sql[t], &s)) != 0) {
        free(v);
        return rc;
    }
    int aggs = t == STORE_SEALED_SAMPLE_DAY_AGGS, by_rowid = t == STORE_SEALED_SAMPLE_DAYS || aggs;
    int set = after != NULL && after->set;
    if (by_rowid)
        db_bind_int64(s, 1, set ? after->rowid : INT64_MIN);
    else
        db_bind_text(s, 1, set ? after->id : "");
    if (aggs) {
        db_bind_blob(s, 2, mark, 2);
        db_bind_text(s, 5, set ? after->metric_type : "");
    } else {
        db_bind_blob(s, 2, mark + 1, 1);
    }
    db_bind_blob(s, 3, ver, sizeof(ver));
    db_bind_int64(s, 4, (int64_t)limit);
    while ((rc = db_step(s)) == DB_ROW) {
        struct store_sealed_row *r = &v[k];
        size_t hl = 0;
        const unsigned char *h = db_col_blob(s, 5, &hl);
        if (k >= limit || h == NULL || hl != STORE_SEALED_HEAD) {
            rc = STORE_EINTERNAL; /* the WHERE clause says this cannot happen */
            break;
        }
        if (by_rowid) {
            r->rowid = db_col_int64(s, 0);
            snprintf(r->id, sizeof(r->id), "%lld", (long long)r->rowid);
            if (aggs)
                store_col_copy(s, 1, r->metric_type, sizeof(r->metric_type));
        } else {
            store_col_copy(s, 1, r->id, sizeof(r->id));
        }
        store_col_copy(s, 2, r->user_id, sizeof(r->user_id));
        r->day = db_col_int64(s, 3);
        int64_t len = db_col_int64(s, 4);
        /* the blob's length: an aggregate's starts after its mark byte */
        r->len = len > aggs ? (size_t)(len - aggs) : 0;
        memcpy(r->head, h, STORE_SEALED_HEAD);
        r->key_version = (uint32_t)h[1] | (uint32_t)h[2] << 8 | (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
        k++;
    }
    if (rc < 0) {
        db_stmt_reset(s);
        free(v);
        return store_tx_fail(tx, rc);
    }
    db_stmt_reset(s);
    if (k == limit) {
        next->set = 1;
        next->rowid = v[k - 1].rowid;
        memcpy(next->id, v[k - 1].id, sizeof(next->id));
        memcpy(next->metric_type, v[k - 1].metric_type, sizeof(next->metric_type));
    }
    *out = v;
    *n = k;
    return 0;
}

int store_sealed_rewrap(struct store_tx *tx, enum store_sealed_table t, const struct store_sealed_row *r,
                        const unsigned char head[STORE_SEALED_HEAD], int *applied)
{
    static const char *const lite[STORE_SEALED_TABLES] = {set_lite_analyses, set_lite_insights, set_lite_days,
                                                          set_lite_aggs};
    static const char *const pg[STORE_SEALED_TABLES] = {set_pg_analyses, set_pg_insights, set_pg_days, set_pg_aggs};
    struct db_stmt *s = NULL;
    int64_t changes = 0;
    int rc;

    if (tx == NULL || r == NULL || head == NULL || applied == NULL || !table_ok(t) || head[0] != STORE_SEALED_FORMAT)
        return STORE_EINVAL;
    *applied = 0;
    if ((rc = store_tx_stmt(tx, store_sql(tx->st, lite[t], pg[t]), &s)) != 0)
        return rc;
    db_bind_blob(s, 1, head, STORE_SEALED_HEAD);
    if (t == STORE_SEALED_SAMPLE_DAYS || t == STORE_SEALED_SAMPLE_DAY_AGGS)
        db_bind_int64(s, 2, r->rowid);
    else
        db_bind_text(s, 2, r->id);
    db_bind_blob(s, 3, r->head, STORE_SEALED_HEAD);
    if (t == STORE_SEALED_SAMPLE_DAY_AGGS)
        db_bind_text(s, 4, r->metric_type);
    if ((rc = store_tx_run(tx, s, &changes)) != 0)
        return rc;
    *applied = changes > 0;
    return 0;
}
