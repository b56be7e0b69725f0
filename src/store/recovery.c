/*
 * recovery.c — closing uploads the queue abandoned. See recovery.h.
 */
#include "store/recovery.h"

#include "store/queue.h"
#include "store/store_int.h"

int store_upload_fail_dead_lettered(struct store_tx *tx, int64_t *n)
{
    /* The upload id is read out of the JSON payload: json_extract on SQLite
     * (JSON1 is built in), the ->> operator on PostgreSQL. */
    static const char lite[] =
        "UPDATE uploads SET status = 'failed', updated_at = ?1,"
        " error = 'processing abandoned: the job was retried the maximum number of times'"
        " WHERE status IN ('received', 'processing') AND id IN ("
        " SELECT json_extract(payload, '$.upload_id') FROM queue_messages"
        " WHERE topic IN ('" STORE_TOPIC_HEALTH_DATA STORE_DEAD_LETTER_SUFFIX "', '" STORE_TOPIC_INSIGHTS
        STORE_DEAD_LETTER_SUFFIX "') AND json_valid(payload))";
    static const char pg[] =
        "UPDATE uploads SET status = 'failed', updated_at = ?1,"
        " error = 'processing abandoned: the job was retried the maximum number of times'"
        " WHERE status IN ('received', 'processing') AND id IN ("
        " SELECT payload::json->>'upload_id' FROM queue_messages"
        " WHERE topic IN ('" STORE_TOPIC_HEALTH_DATA STORE_DEAD_LETTER_SUFFIX "', '" STORE_TOPIC_INSIGHTS
        STORE_DEAD_LETTER_SUFFIX "'))";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, store_now_ms());
    return store_tx_run(tx, s, n);
}
