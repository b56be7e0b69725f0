/*
 * app_sync.h — the iOS app's health sync body (POST /api/v1/healthkit,
 * docs/api.md "HealthKit sync"): validation into samples.
 *
 * {user_id, samples:[app sample], device_info?, timestamp}. Each sample is
 * mapped by app_sample_map (ingest/app_sample.h); a sample_type this
 * server does not map is listed in `errors` (strings, as the app decodes
 * them) and counted, not refused; any other malformed sample is a field
 * error recorded on the caller's check. Storing the samples is the ingest
 * session's (ingest/session.h).
 */
#ifndef CLARITY_INGEST_APP_SYNC_H
#define CLARITY_INGEST_APP_SYNC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/check.h"
#include "core/err.h"
#include "ingest/upload.h"

/* At most this many unsupported samples are listed in errors (all are
 * counted), and at most this many field errors are recorded. */
#define APP_SYNC_ERRORS_LISTED 50

/*
 * Validate body for caller user_id (compared case-insensitively): samples
 * go to out, one line per unsupported sample to the array errors (at most
 * APP_SYNC_ERRORS_LISTED), their count to *unsupported, the app's timestamp
 * to *client_ts_ms. Returns 0; INGEST_EINVALID with the field errors
 * recorded on c; INGEST_EOWNER (body's user_id is another user; checked
 * before anything else is recorded); or INGEST_ENOMEM.
 */
int app_sync_parse(json_t *body, const char *user_id, struct check *c, struct upload_samples *out, json_t *errors,
                   size_t *unsupported, int64_t *client_ts_ms);

#endif
