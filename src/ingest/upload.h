/*
 * upload.h — turning an upload request into durable rows.
 *
 * Two parts:
 *  - upload_parse_health_data: validate a HealthDataUpload (API.md) and
 *    produce the typed samples; every violation is recorded with its JSON
 *    Pointer, and nothing is produced unless everything is valid;
 *  - upload_accept: ONE transaction that writes the uploads row, the samples
 *    (deduplicated by (user, sample uuid)), the encrypted raw body and the
 *    health-data-processing message, plus the audit row. Either all of it
 *    commits or none of it; a 2xx is only sent after the commit.
 */
#ifndef CLARITY_INGEST_UPLOAD_H
#define CLARITY_INGEST_UPLOAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "api/input.h"
#include "store/store.h"

struct keyring;

/* The samples of one upload (heap; upload_samples_free). */
struct upload_samples {
    struct store_sample *v;
    size_t n, cap;
};

void upload_samples_free(struct upload_samples *s);
/* Append a zeroed sample (value fields NAN) and return it, or NULL on OOM. */
struct store_sample *upload_samples_add(struct upload_samples *s);

/*
 * Validate body as a HealthDataUpload for caller user_id and fill out.
 * Errors go to in (422 with pointers); user_id other than the caller is a
 * 403 answered through res and returns -2. Returns 0 when valid, -1 with
 * validation errors recorded, -2 after answering another status.
 * *source_out and *sync_out point into body (borrowed).
 */
int upload_parse_health_data(json_t *body, const char *user_id, size_t max_metrics, struct input *in,
                             struct http_response *res, struct upload_samples *out, const char **source_out,
                             const char **sync_out, int64_t *client_ts_ms);

struct upload_result;

struct upload_request {
    const char *user_id;
    const char *source;        /* upload_source, "healthkit", … */
    const char *sync_token;    /* may be NULL */
    int64_t client_ts_ms;
    struct upload_samples *samples; /* upload_id is filled in by upload_accept */
    size_t rejected;           /* counted, not stored (HealthKit unknown types) */
    const char *body;          /* the raw request body, encrypted at rest */
    size_t body_len;
    const char *content_type;
    const char *request_id;    /* for the audit row */
    const char *client_ip;
    /* Idempotency-Key (NULL: none). The reply is built inside the
     * transaction and stored with the key, so that a retry gets exactly it;
     * when the key is already taken nothing is written and upload_accept
     * returns STORE_ECONFLICT. */
    const char *idem_key;
    const char *idem_hash;     /* hex SHA-256 of the body */
    int (*reply)(void *ctx, const struct upload_result *r, int *status, char **body);
    void *reply_ctx;
};

struct upload_result {
    char upload_id[STORE_ID_LEN];
    size_t stored;
    size_t duplicates;
    int64_t created_ms;
};

/* Write everything in one transaction. 0, or a STORE_E* / keyring code.
 * With an idempotency key, *reply_body (caller frees) and *reply_status
 * receive the stored reply. */
int upload_accept(struct store *st, struct keyring *ring, const struct upload_request *r,
                  struct upload_result *out, int *reply_status, char **reply_body);

#endif
