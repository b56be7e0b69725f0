/*
 * recovery.c — closing uploads the queue abandoned. See recovery.h.
 */
#include "store/recovery.h"

#include <string.h>

#include "store/store_int.h"

int store_upload_fail_open(struct store_tx *tx, const char *upload_id, const char *error, int *changed)
{
    static const char sql[] = "UPDATE uploads SET status = 'failed', updated_at = ?2, error = ?3"
                              " WHERE id = ?1 AND status IN ('received', 'processing')";
    struct db_stmt *s = NULL;
    int64_t n = 0;
    *changed = 0;
    if (upload_id == NULL || error == NULL || strlen(error) >= sizeof(((struct store_upload *)0)->error))
        return STORE_EINVAL;
    int rc = store_tx_stmt(tx, sql, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, upload_id);
    db_bind_int64(s, 2, store_now_ms());
    db_bind_text(s, 3, error);
    rc = store_tx_run(tx, s, &n);
    if (rc == 0)
        *changed = n > 0;
    return rc;
}

int store_upload_fail_stale_imports(struct store_tx *tx, int64_t stale_before_ms, int64_t *n)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx,
                           "UPDATE uploads SET status = ?4, updated_at = ?1, error = ?2"
                           " WHERE status = ?5 AND source IN ('apple_health_export', 'research_recording')"
                           " AND updated_at < ?3",
                           &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, store_now_ms());
    db_bind_text(s, 2, STORE_IMPORT_INTERRUPTED);
    db_bind_int64(s, 3, stale_before_ms);
    db_bind_text(s, 4, store_upload_status_name(STORE_UPLOAD_FAILED));
    db_bind_text(s, 5, store_upload_status_name(STORE_UPLOAD_PROCESSING));
    return store_tx_run(tx, s, n);
}
