/*
 * session.h — the ingest session: the one way data comes in.
 *
 * Every entry point — the JSON upload and the HealthKit upload
 * (api/health_data.c), the streamed Apple Health import over HTTP, and
 * `clarity import apple-health` (cli/import.c) — parses its input its own
 * way and then runs the same steps here:
 *
 *   begin → add samples (one or more times) → seal raw (optional) → commit
 *
 * and commit is always: queue the analysis job, write the audit row, (store
 * the Idempotency-Key reply), commit. So every door ends in an analysis, and
 * none can forget a step.
 *
 * Two shapes, chosen at begin:
 *   INGEST_ATOMIC   — one transaction from begin to commit: the uploads row,
 *                     the samples, the sealed raw body, the job, the audit row
 *                     and the idempotency reply commit together or not at all
 *                     (a 2xx means durable).
 *   INGEST_STREAMED — for exports too large to hold (gigabytes): the uploads
 *                     row commits at begin (status processing), each batch of
 *                     samples commits on its own with the upload's progress,
 *                     and commit sets the status received and queues the job
 *                     in one transaction. An upload that never reaches commit
 *                     is marked failed by ingest_session_end.
 *
 * The session knows nothing of HTTP: it returns codes of core/err.h
 * (STORE_E*, KEYRING_E*, JOBS_E*, INGEST_E*), and the adapters render them.
 * Not thread-safe: one session belongs to one thread.
 */
#ifndef CLARITY_INGEST_SESSION_H
#define CLARITY_INGEST_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

struct keyring;
struct ingest_session;

enum ingest_mode { INGEST_ATOMIC = 0, INGEST_STREAMED };

/* Who and where the data comes from. Every string is borrowed for the call
 * to ingest_session_begin only (the session keeps copies). */
struct ingest_origin {
    const char *user_id;      /* the owner of the samples (required) */
    const char *source;       /* uploads.source: "api", "healthkit", "apple_health_export" */
    const char *sync_token;   /* may be NULL */
    int64_t client_ts_ms;     /* the client's timestamp; 0 → now */
    size_t total_metrics;     /* ATOMIC: what the client sent (uploads.total_metrics) */
    size_t rejected;          /* samples counted but not stored (unknown HealthKit types) */
    const char *audit_action; /* "health_data.create", "health_data.import" */
    const char *request_id;   /* for the audit row; NULL from the CLI */
    const char *client_ip;    /* for the audit row; NULL from the CLI */
};

/* What the session stored. */
struct ingest_result {
    char upload_id[STORE_ID_LEN];
    size_t stored;     /* new samples */
    size_t duplicates; /* samples already stored (same user and sample uuid) */
    int64_t created_ms;
};

/* A reply to keep with an Idempotency-Key, in the commit's transaction, so
 * that a retry gets exactly it. All borrowed. */
struct ingest_idempotency {
    const char *key;
    const char *request_hash; /* hex SHA-256 of the request body */
    int status;
    const char *response;
};

/*
 * Open a session: a new upload id (UUID v7) for origin->user_id. Inserts
 * the uploads row: ATOMIC in the transaction it begins (status received),
 * STREAMED in one it commits at once (status processing). ring (borrowed, may be NULL: no raw
 * body is sealed) is used by ingest_session_seal_raw. 0 with *out set (free
 * with ingest_session_end), or INGEST_EINVAL / INGEST_ENOMEM / STORE_E*.
 */
int ingest_session_begin(struct store *st, struct keyring *ring, const struct ingest_origin *origin,
                         enum ingest_mode mode, struct ingest_session **out);

/* The upload's id (valid from begin on). */
const char *ingest_session_upload_id(const struct ingest_session *s);

/*
 * Store n samples (deduplicated by user and sample uuid). Each sample's
 * upload_id is set to the session's; every sample must belong to the
 * session's user (INGEST_EINVAL otherwise, nothing stored). ATOMIC: inside
 * the session's transaction. STREAMED: in a transaction of its own, with the
 * upload's progress (0..0.99) and records counted so far. *stored (may be
 * NULL) receives how many were new. 0 or a STORE_E* code; after a failure
 * the session can only be ended.
 */
int ingest_session_add(struct ingest_session *s, struct store_sample *v, size_t n, double progress, int64_t records,
                       size_t *stored);

/*
 * Seal the raw request body (envelope encryption with the key ring's active
 * key, bound to user and upload) in the session's transaction: ATOMIC only.
 * A session without a key ring seals nothing and returns 0. 0, INGEST_EINVAL
 * (STREAMED) or a KEYRING_E* / STORE_E* code.
 */
int ingest_session_seal_raw(struct ingest_session *s, const char *content_type, const void *body, size_t len);

/* What was stored so far (the reply an adapter renders before commit). */
void ingest_session_result(const struct ingest_session *s, struct ingest_result *out);

/*
 * Finish: queue the analysis job (pipeline/jobs.h), write the audit row and,
 * when idem is given, the idempotency reply, and commit — all in one
 * transaction (STREAMED: also the status received and the records total).
 * 0 with *out (may be NULL) filled, or a code; on failure nothing of this
 * step is written (ATOMIC: nothing at all), and an Idempotency-Key already
 * taken is STORE_ECONFLICT.
 */
int ingest_session_commit(struct ingest_session *s, const struct ingest_idempotency *idem, struct ingest_result *out);

/*
 * Free the session; accepts NULL. A session that was not committed is
 * undone: ATOMIC rolls everything back; STREAMED marks the upload failed
 * with why (client-safe text; NULL: "the upload was interrupted"), keeping
 * the batches already stored.
 */
void ingest_session_end(struct ingest_session *s, const char *why);

#endif
