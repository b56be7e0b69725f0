/*
 * ingest_json_fuzz.c — libFuzzer driver for the two JSON upload formats
 * (src/ingest/upload.c: HealthDataUpload; src/ingest/hk_upload.c: native
 * HealthKit), which since issue #15 run below the API with a core/check
 * sink instead of an HTTP response.
 *
 * Input: byte 0 picks the format (even: HealthDataUpload, odd: HealthKit);
 * the rest is the request body. Invariants: no crash, no sanitizer report,
 * no leak; a parse that succeeds recorded no field error and produced only
 * samples of the caller with a metric type and end >= start; a refusal
 * recorded at least one error unless it is INGEST_EOWNER.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_load.h"
#include "ingest/hk_upload.h"
#include "ingest/upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CALLER "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"

static void record(void *ctx, const char *pointer, const char *message)
{
    size_t *n = ctx;
    if (pointer == NULL || message == NULL || message[0] == '\0')
        abort();
    (*n)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int hk = data[0] & 1;
    /* Parsed as the upload handlers do: into an arena (core/json_load.h). */
    json_t *body = NULL;
    struct json_arena *arena = NULL;
    json_load_arena((const char *)data + 1, size - 1, JSON_REJECT_DUPLICATES, &body, NULL, &arena);
    if (!json_is_object(body)) {
        json_arena_release(body, arena);
        return 0;
    }
    /* As api_body_user_normalise does: the tree changed after the parse
     * (arena memory freed by jansson, the object grown). */
    if (data[0] & 2)
        json_object_set_new(body, "user_id", json_string(CALLER));
    size_t recorded = 0;
    struct check c;
    check_init(&c, record, &recorded);
    struct upload_samples out = {0};
    int rc;
    if (hk) {
        json_t *unsupported = json_array();
        struct hk_upload_counts counts;
        const char *sync = NULL;
        rc = hk_upload_parse(body, CALLER, &c, &out, unsupported, &counts, &sync);
        json_decref(unsupported);
    } else {
        const char *source = NULL, *sync = NULL;
        int64_t ts = 0;
        rc = upload_parse_health_data(body, CALLER, 1000, &c, &out, &source, &sync, &ts);
    }
    if ((size_t)c.nerrors != recorded)
        abort();
    if (rc == 0) {
        if (recorded != 0)
            abort();
        for (size_t i = 0; i < out.n; i++)
            if (strcmp(out.v[i].user_id, CALLER) != 0 || out.v[i].metric_type[0] == '\0' ||
                out.v[i].end_ms < out.v[i].start_ms)
                abort();
    } else if (rc == INGEST_EINVALID && recorded == 0) {
        abort();
    } else if (rc != INGEST_EINVALID && rc != INGEST_EOWNER) {
        abort();
    }
    upload_samples_free(&out);
    json_arena_release(body, arena);
    return 0;
}
