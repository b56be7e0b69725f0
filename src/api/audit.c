/*
 * audit.c — audit rows through the store. See audit.h.
 */
#include "api/audit.h"

#include <stdio.h>
#include <string.h>

#include "api/guard.h"
#include "core/log.h"
#include "store/store.h"

void audit_fill(struct store_audit *a, const struct http_request *req, const char *actor_id, const char *action,
                const char *resource_type, const char *resource_id, const char *outcome)
{
    memset(a, 0, sizeof(*a));
    const struct principal *p = req != NULL ? access_principal(req) : NULL;
    const char *actor = actor_id != NULL ? actor_id : p != NULL ? p->user_id : "";
    snprintf(a->user_id, sizeof(a->user_id), "%.36s", actor);
    snprintf(a->action, sizeof(a->action), "%.63s", action);
    snprintf(a->resource_type, sizeof(a->resource_type), "%.31s", resource_type != NULL ? resource_type : "");
    snprintf(a->resource_id, sizeof(a->resource_id), "%.63s", resource_id != NULL ? resource_id : "");
    snprintf(a->outcome, sizeof(a->outcome), "%.15s", outcome);
    if (req != NULL) {
        /* Whole: the audit column holds every id the server accepts. */
        snprintf(a->request_id, sizeof(a->request_id), "%s", req->request_id);
        snprintf(a->ip, sizeof(a->ip), "%.63s", req->client_ip);
    }
}

int audit_record(struct store *st, struct store_tx *tx, const struct http_request *req, const char *actor_id,
                 const char *action, const char *resource_type, const char *resource_id, const char *outcome)
{
    struct store_audit a;
    audit_fill(&a, req, actor_id, action, resource_type, resource_id, outcome);
    int rc;
    if (tx != NULL) {
        rc = store_audit_insert(tx, &a);
    } else {
        struct store_tx *own = NULL;
        rc = store_tx_begin(st, STORE_TX_WRITE, &own);
        if (rc == 0) {
            rc = store_audit_insert(own, &a);
            if (rc == 0)
                rc = store_tx_commit(own);
            else
                store_tx_rollback(own);
        }
    }
    if (rc != 0)
        log_error("audit write failed", LOG_STR, "action", action, LOG_STR, "request_id",
                  req != NULL ? req->request_id : NULL, LOG_STR, "error", clarity_strerror(rc), LOG_END);
    return rc == 0 ? 0 : -1;
}
