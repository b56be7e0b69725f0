/*
 * health_upload_fuzz.c — libFuzzer driver for the JSON health-data upload
 * (POST /api/v1/health-data/upload): the body is parsed and validated by
 * upload_parse_health_data (src/ingest/upload.c) exactly as the handler
 * does, its field errors recorded on a check (core/check.h).
 *
 * Invariants checked: valid (0) means no error was recorded, at least one
 * sample came out and every sample has a type, end ≥ start, NUL-terminated
 * valid-UTF-8 text columns and a payload that is JSON when present;
 * INGEST_EINVALID means at least one error with a pointer and a message;
 * INGEST_EOWNER is the only other outcome; nothing leaks either way.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/check.h"
#include "core/err.h"
#include "ingest/upload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int text_ok(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        return 0;
    json_t *j = json_stringn(s, n);
    int ok = j != NULL;
    json_decref(j);
    return ok;
}

static void record(void *ctx, const char *pointer, const char *message)
{
    (void)ctx;
    if (pointer == NULL || message == NULL || message[0] == '\0')
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(body)) {
        json_decref(body);
        return 0;
    }
    struct check c;
    check_init(&c, record, NULL);
    struct upload_samples out = {0};
    const char *source = NULL, *sync = NULL;
    int64_t ts = 0;
    int rc = upload_parse_health_data(body, "0190f0d8-5b3c-7cc0-8000-000000000001", 64, &c, &out, &source, &sync, &ts);
    if (rc == 0) {
        if (c.nerrors != 0 || out.n == 0 || source == NULL)
            abort();
        for (size_t i = 0; i < out.n; i++) {
            const struct store_sample *s = &out.v[i];
            if (s->metric_type[0] == '\0' || s->end_ms < s->start_ms)
                abort();
            if (!text_ok(s->device, sizeof(s->device)) || !text_ok(s->source, sizeof(s->source)) ||
                !text_ok(s->hk_uuid, sizeof(s->hk_uuid)))
                abort();
            if (s->payload != NULL) {
                json_t *pl = json_loads(s->payload, 0, NULL);
                if (pl == NULL)
                    abort();
                json_decref(pl);
            }
        }
    } else if (rc == INGEST_EINVALID) {
        if (c.nerrors == 0)
            abort();
    } else if (rc != INGEST_EOWNER) {
        abort();
    }
    upload_samples_free(&out);
    json_decref(body);
    return 0;
}
