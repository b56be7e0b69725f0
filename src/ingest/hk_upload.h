/*
 * hk_upload.h — the native HealthKit upload format (API.md "HealthKit"):
 * validation into samples.
 *
 * A body of quantity_samples, category_samples, workouts and
 * correlation_samples as HealthKit writes them. Each is mapped to a
 * canonical sample (ingest/healthkit.h); a type this server does not map is
 * listed in `unsupported` and counted, not refused; a malformed sample is a
 * field error recorded on the caller's check. Storing the samples is the
 * ingest session's (ingest/session.h).
 */
#ifndef CLARITY_INGEST_HK_UPLOAD_H
#define CLARITY_INGEST_HK_UPLOAD_H

#include <jansson.h>
#include <stddef.h>

#include "core/check.h"
#include "core/err.h"
#include "ingest/upload.h"

/* What one upload held, by list, as the 202 reply reports it. */
struct hk_upload_counts {
    size_t quantity, category, workouts, correlations;
    size_t total;
};

/*
 * Validate body for caller user_id: samples go to out, unsupported types to
 * the array unsupported ({pointer, identifier, reason}; at most
 * LIMIT_HEALTHKIT_UNSUPPORTED_LISTED listed), counts to *counts. *sync_out
 * points into body (borrowed; NULL when absent). Returns 0; INGEST_EINVALID
 * with the field errors recorded on c; or INGEST_EOWNER (body's user_id is
 * another user).
 */
int hk_upload_parse(json_t *body, const char *user_id, struct check *c, struct upload_samples *out, json_t *unsupported,
                    struct hk_upload_counts *counts, const char **sync_out);

#endif
