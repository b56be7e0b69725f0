/*
 * app_sample_fuzz.c — libFuzzer driver for the iOS app's sync body: the JSON
 * is parsed as POST /api/v1/healthkit parses it, and every element of
 * "samples" (or the document itself when it is one sample) goes through
 * app_sample_map (src/ingest/app_sample.c) and, through it, the HealthKit
 * unit table and range checks and the Apple Health import's content key.
 *
 * Invariants checked: a mapped sample has a finite value within what
 * hk_value_plausible accepts, a canonical type and unit, end ≥ start, a
 * 36-character lower-case content key and a payload that is a JSON object;
 * a refused sample has a reason; text columns are NUL-terminated and valid
 * UTF-8 (nothing cut in the middle of a character); the same sample maps to
 * the same key twice (dedup is deterministic).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/check.h"
#include "core/err.h"
#include "ingest/app_sample.h"
#include "ingest/app_sync.h"
#include "ingest/healthkit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int utf8_valid(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        return 0;
    json_t *j = json_stringn(s, n); /* NULL when not valid UTF-8 */
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static void one(json_t *sample)
{
    struct store_sample a, b;
    struct app_sample_error e, e2;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&e, 0, sizeof(e));
    a.value2 = b.value2 = NAN;
    int rc = app_sample_map(sample, "0190f0d8-5b3c-7cc0-8000-000000000001", &a, &e);
    if (rc == APP_SAMPLE_OK) {
        char why[200];
        if (!isfinite(a.value) || hk_value_plausible(a.metric_type, a.value, why, sizeof(why)) != 0)
            abort();
        if (a.end_ms < a.start_ms || a.metric_type[0] == '\0' || a.unit[0] == '\0' || strlen(a.hk_uuid) != 36)
            abort();
        for (const char *c = a.hk_uuid; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                abort();
        if (!utf8_valid(a.source, sizeof(a.source)) || !utf8_valid(a.device, sizeof(a.device)))
            abort();
        json_t *pl = a.payload != NULL ? json_loads(a.payload, 0, NULL) : NULL;
        if (!json_is_object(pl))
            abort();
        json_decref(pl);
        if (app_sample_map(sample, "0190f0d8-5b3c-7cc0-8000-000000000001", &b, &e2) != APP_SAMPLE_OK ||
            strcmp(a.hk_uuid, b.hk_uuid) != 0)
            abort();
    } else if (rc == APP_SAMPLE_INVALID || rc == APP_SAMPLE_UNSUPPORTED) {
        if (e.reason[0] == '\0' || a.payload != NULL)
            abort();
    } else if (rc != APP_SAMPLE_ENOMEM) {
        abort();
    }
    free(a.payload);
    free(b.payload);
}

static void record(void *ctx, const char *pointer, const char *message)
{
    (void)ctx;
    if (pointer == NULL || message == NULL || message[0] == '\0')
        abort();
}

/* The whole body: outcome and samples consistent with the recorded errors. */
static void body(json_t *doc)
{
    struct check c;
    check_init(&c, record, NULL);
    struct upload_samples out = {0};
    json_t *errors = json_array();
    size_t unsupported = 0;
    int64_t ts = 0;
    int rc = app_sync_parse(doc, "0190f0d8-5b3c-7cc0-8000-000000000001", &c, &out, errors, &unsupported, &ts);
    if (rc == 0) {
        if (c.nerrors != 0 || json_array_size(errors) > unsupported)
            abort();
        for (size_t i = 0; i < out.n; i++)
            if (out.v[i].payload == NULL || strlen(out.v[i].hk_uuid) != 36)
                abort();
    } else if (rc == INGEST_EINVALID) {
        if (c.nerrors == 0)
            abort();
    } else if (rc == INGEST_EOWNER) {
        if (!json_is_string(json_object_get(doc, "user_id")) || c.nerrors != 0)
            abort();
    } else if (rc != INGEST_ENOMEM) {
        abort();
    }
    json_decref(errors);
    upload_samples_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL)
        return 0;
    if (json_is_object(doc))
        body(doc);
    json_t *samples = json_object_get(doc, "samples");
    if (json_is_array(samples)) {
        size_t i;
        json_t *s;
        json_array_foreach (samples, i, s) {
            if (i >= 256)
                break;
            one(s);
        }
    } else {
        one(doc);
    }
    json_decref(doc);
    return 0;
}
