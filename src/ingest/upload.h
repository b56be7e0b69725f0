/*
 * upload.h — the HealthDataUpload format (API.md): validation into samples.
 *
 * upload_parse_health_data validates a HealthDataUpload and produces the
 * typed samples; every violation is recorded with its JSON Pointer on the
 * caller's check (core/check.h), and nothing is produced unless everything
 * is valid. Storing them is the ingest session's (ingest/session.h).
 */
#ifndef CLARITY_INGEST_UPLOAD_H
#define CLARITY_INGEST_UPLOAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/check.h"
#include "core/err.h"
#include "store/store.h"

/* The samples of one upload (heap; upload_samples_free). */
struct upload_samples {
    struct store_sample *v;
    size_t n, cap;
    int oom; /* an append failed for want of memory: the list is incomplete */
};

void upload_samples_free(struct upload_samples *s);
/* Append a zeroed sample (value fields NAN) and return it, or NULL on OOM
 * (then s->oom is set: a parser that ignores the NULL still cannot hand an
 * incomplete list to storage, see upload_samples_complete). */
struct store_sample *upload_samples_add(struct upload_samples *s);

/* 0 when every append succeeded, else INGEST_ENOMEM: the samples must not be
 * stored, since acknowledging them would drop some silently (found by
 * tests/e2e/test_fault_injection.py). */
int upload_samples_complete(const struct upload_samples *s);

/*
 * Validate body as a HealthDataUpload for caller user_id and fill out.
 * Returns 0 when valid; INGEST_EINVALID with the field errors recorded on
 * in; INGEST_EOWNER when body's user_id is another user (the adapter
 * answers 403). *source_out and *sync_out point into body (borrowed).
 */
int upload_parse_health_data(json_t *body, const char *user_id, size_t max_metrics, struct check *in,
                             struct upload_samples *out, const char **source_out, const char **sync_out,
                             int64_t *client_ts_ms);

#endif
