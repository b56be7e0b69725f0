/*
 * session.c — begin, add, seal, commit: the one way data comes in. See
 * session.h.
 */
#include "ingest/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "crypto/keyring.h"
#include "pipeline/jobs.h"
#include "store/idempotency.h"

struct ingest_session {
    struct store *st;     /* borrowed */
    struct keyring *ring; /* borrowed, may be NULL */
    enum ingest_mode mode;
    struct store_tx *tx; /* ATOMIC: open from begin to commit */
    struct store_upload u;
    char action[64];
    char request_id[LIMIT_REQUEST_ID + 1];
    char ip[64];
    size_t stored, offered;
    int64_t records;
    int failed; /* a step failed: only end is allowed */
    int committed;
};

static void audit_fill(const struct ingest_session *s, struct store_audit *a)
{
    memset(a, 0, sizeof(*a));
    memcpy(a->user_id, s->u.user_id, sizeof(a->user_id));
    snprintf(a->action, sizeof(a->action), "%s", s->action);
    snprintf(a->resource_type, sizeof(a->resource_type), "upload");
    snprintf(a->resource_id, sizeof(a->resource_id), "%s", s->u.id);
    snprintf(a->outcome, sizeof(a->outcome), "success");
    snprintf(a->request_id, sizeof(a->request_id), "%s", s->request_id);
    snprintf(a->ip, sizeof(a->ip), "%s", s->ip);
}

/* Copy src into dst[cap]; INGEST_EINVAL when it does not fit (never cut an
 * id or a token silently). NULL is "". */
static int copy_whole(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= cap)
        return INGEST_EINVAL;
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
    return 0;
}

int ingest_session_begin(struct store *st, struct keyring *ring, const struct ingest_origin *origin,
                         enum ingest_mode mode, struct ingest_session **out)
{
    struct ingest_session *s = NULL;
    struct store_tx *tx = NULL;
    int rc;
    *out = NULL;
    if (st == NULL || origin == NULL || origin->user_id == NULL || origin->user_id[0] == '\0' ||
        origin->source == NULL || origin->audit_action == NULL)
        return INGEST_EINVAL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return INGEST_ENOMEM;
    s->st = st;
    s->ring = ring;
    s->mode = mode;
    rc = copy_whole(s->u.user_id, sizeof(s->u.user_id), origin->user_id);
    if (rc == 0)
        rc = copy_whole(s->u.source, sizeof(s->u.source), origin->source);
    if (rc == 0)
        rc = copy_whole(s->u.sync_token, sizeof(s->u.sync_token), origin->sync_token);
    if (rc == 0)
        rc = copy_whole(s->action, sizeof(s->action), origin->audit_action);
    /* Request ids and addresses are capped where they enter (http/server.c);
     * one that does not fit the audit row is refused, not cut. */
    if (rc == 0)
        rc = copy_whole(s->request_id, sizeof(s->request_id), origin->request_id);
    if (rc == 0)
        rc = copy_whole(s->ip, sizeof(s->ip), origin->client_ip);
    if (rc == 0 && uuid_v7(s->u.id) != 0)
        rc = STORE_EINTERNAL;
    if (rc != 0)
        goto fail;
    s->u.status = mode == INGEST_ATOMIC ? STORE_UPLOAD_RECEIVED : STORE_UPLOAD_PROCESSING;
    s->u.rejected = (int64_t)origin->rejected;
    s->u.total_metrics = (int64_t)origin->total_metrics;
    s->u.created_at_ms = time_now_ms();
    s->u.client_timestamp_ms = origin->client_ts_ms != 0 ? origin->client_ts_ms : s->u.created_at_ms;

    rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_upload_insert(tx, &s->u);
    if (rc == 0 && mode == INGEST_ATOMIC) {
        s->tx = tx; /* the samples join this transaction */
        *out = s;
        return 0;
    }
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    store_tx_rollback(tx);
    free(s);
    return rc;
}

const char *ingest_session_upload_id(const struct ingest_session *s) { return s->u.id; }

int ingest_session_add(struct ingest_session *s, struct store_sample *v, size_t n, double progress, int64_t records,
                       size_t *stored)
{
    struct store_tx *tx = NULL;
    size_t ins = 0;
    int rc = 0;
    if (s->failed || s->committed)
        return INGEST_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].user_id, s->u.user_id) != 0) {
            s->failed = 1; /* a caller bug: do not commit what came before */
            return INGEST_EINVAL;
        }
    for (size_t i = 0; i < n; i++)
        memcpy(v[i].upload_id, s->u.id, sizeof(v[i].upload_id));
    if (s->mode == INGEST_ATOMIC) {
        if (n > 0)
            rc = store_sample_insert_batch(s->tx, v, n, &ins);
    } else {
        if (progress > 0.99)
            progress = 0.99; /* 1.0 is for "completed" */
        rc = store_tx_begin(s->st, STORE_TX_WRITE, &tx);
        if (rc == 0 && n > 0)
            rc = store_sample_insert_batch(tx, v, n, &ins);
        if (rc == 0)
            rc = store_upload_status_set(tx, s->u.id, STORE_UPLOAD_PROCESSING, progress < 0 ? 0 : progress, records,
                                         NULL);
        if (rc == 0) {
            rc = store_tx_commit(tx);
            tx = NULL;
        }
        store_tx_rollback(tx);
    }
    if (rc != 0) {
        s->failed = 1;
        return rc;
    }
    s->stored += ins;
    s->offered += n;
    s->records = records;
    if (stored != NULL)
        *stored = ins;
    return 0;
}

int ingest_session_seal_raw(struct ingest_session *s, const char *content_type, const void *body, size_t len)
{
    if (s->failed || s->committed || s->mode != INGEST_ATOMIC)
        return INGEST_EINVAL;
    if (s->ring == NULL)
        return 0;
    int rc =
        keyring_raw_upload_put(s->ring, s->tx, s->u.user_id, s->u.id, content_type, (const unsigned char *)body, len);
    if (rc != 0)
        s->failed = 1;
    return rc;
}

void ingest_session_result(const struct ingest_session *s, struct ingest_result *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->upload_id, s->u.id, sizeof(out->upload_id));
    out->stored = s->stored;
    out->duplicates = s->offered - s->stored;
    out->created_ms = s->u.created_at_ms;
}

int ingest_session_commit(struct ingest_session *s, const struct ingest_idempotency *idem, struct ingest_result *out)
{
    struct store_tx *tx = NULL;
    struct store_audit a;
    int rc = 0;
    if (s->failed || s->committed)
        return INGEST_EINVAL;
    if (s->mode == INGEST_ATOMIC) {
        tx = s->tx;
        s->tx = NULL;
    } else {
        rc = store_tx_begin(s->st, STORE_TX_WRITE, &tx);
        if (rc == 0)
            rc = store_upload_status_set(tx, s->u.id, STORE_UPLOAD_RECEIVED, 0, s->records, NULL);
    }
    /* The step every door shares: the analysis job, in the same transaction
     * as the data it analyses. */
    if (rc == 0)
        rc = jobs_analysis_publish(tx, s->u.id, s->u.user_id);
    if (rc == 0) {
        audit_fill(s, &a);
        rc = store_audit_insert(tx, &a);
    }
    if (rc == 0 && idem != NULL) {
        struct store_idempotency k;
        memset(&k, 0, sizeof(k));
        memcpy(k.user_id, s->u.user_id, sizeof(k.user_id));
        rc = copy_whole(k.key, sizeof(k.key), idem->key);
        if (rc == 0)
            rc = copy_whole(k.request_hash, sizeof(k.request_hash), idem->request_hash);
        k.created_at_ms = s->u.created_at_ms;
        k.status = idem->status;
        k.response = (char *)idem->response; /* borrowed for the insert */
        if (rc == 0)
            rc = store_idempotency_put(tx, &k);
    }
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    if (rc != 0) {
        s->failed = 1;
        return rc;
    }
    s->committed = 1;
    if (out != NULL)
        ingest_session_result(s, out);
    return 0;
}

void ingest_session_end(struct ingest_session *s, const char *why)
{
    if (s == NULL)
        return;
    store_tx_rollback(s->tx); /* ATOMIC and not committed: nothing stays */
    if (s->mode == INGEST_STREAMED && !s->committed) {
        struct store_tx *tx = NULL;
        char text[sizeof(s->u.error)];
        /* The reason is for people; a long one is cut to the column. */
        snprintf(text, sizeof(text), "%s", why != NULL && why[0] != '\0' ? why : "the upload was interrupted");
        int rc = store_tx_begin(s->st, STORE_TX_WRITE, &tx);
        if (rc == 0)
            rc = store_upload_status_set(tx, s->u.id, STORE_UPLOAD_FAILED, 0, s->records, text);
        if (rc == 0) {
            rc = store_tx_commit(tx);
            tx = NULL;
        }
        store_tx_rollback(tx);
    }
    free(s);
}
