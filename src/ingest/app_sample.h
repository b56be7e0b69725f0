/*
 * app_sample.h — one health sample as the iOS app's sync sends it
 * (POST /api/v1/healthkit, docs/api.md "HealthKit sync"), mapped to
 * Clarity's canonical sample.
 *
 * The app sends {sample_type, value?, category_value?, unit?, start_date,
 * end_date, metadata?, source_revision?} with sample_type one of stepCount,
 * heartRate, restingHeartRate, sleepAnalysis, and no HealthKit UUID. Each
 * sample becomes the same canonical sample an Apple Health export import of
 * it would (ingest/healthkit.h types and units), with the export's content
 * key as its dedup key (apple_export_content_key), so the app's overlapping
 * re-sends and an import of the same samples store each sample once.
 *
 * Pure: no I/O, no globals, reentrant. The only allocation is the sample's
 * payload (caller frees out->payload, e.g. through upload_samples_free).
 */
#ifndef CLARITY_INGEST_APP_SAMPLE_H
#define CLARITY_INGEST_APP_SAMPLE_H

#include <jansson.h>

#include "store/store.h"

/* Why a sample was not mapped: the member (a JSON Pointer relative to the
 * sample, "" for the sample itself) and a client-safe reason that never
 * holds a health value. */
struct app_sample_error {
    char member[40];
    char reason[200];
};

enum {
    APP_SAMPLE_OK = 0,
    APP_SAMPLE_INVALID = -1,    /* the sample breaks the contract: the request is refused (422) */
    APP_SAMPLE_UNSUPPORTED = 1, /* a sample_type this server does not map: reported, not stored */
    APP_SAMPLE_ENOMEM = -2,     /* the payload could not be allocated (the server's failure) */
};

/*
 * Map one sample (borrowed JSON) of caller user_id into *out (zeroed by
 * the caller, value2 NAN). Unknown members are ignored; known members are
 * validated exactly: dates RFC 3339 with end ≥ start; value a finite number
 * (required for the three quantity types) within what one sample can hold
 * after unit conversion (hk_value_plausible); category_value an integer
 * 0–5 (required for sleepAnalysis; the stored value is the duration in
 * minutes); text members at most their column's bytes (never cut). Returns
 * APP_SAMPLE_OK, or APP_SAMPLE_INVALID / APP_SAMPLE_UNSUPPORTED with *err
 * filled, or APP_SAMPLE_ENOMEM; out->payload is set only on APP_SAMPLE_OK.
 */
int app_sample_map(json_t *sample, const char *user_id, struct store_sample *out, struct app_sample_error *err);

#endif
