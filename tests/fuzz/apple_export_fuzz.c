/*
 * apple_export_fuzz.c — libFuzzer driver for the Apple Health import
 * (src/ingest/apple_export.c): export.xml through expat, export.zip through
 * libzip (the format is sniffed from the first bytes, as for an upload).
 *
 * Input: byte 0 picks the chunk size the body arrives in (1 to 4096 bytes,
 * so that tokens and zip headers are cut everywhere); the rest is the upload.
 * Every batch of mapped samples is checked (ids, payload is JSON-sized and
 * NUL-terminated), the import summary is rendered. Invariants: no crash, no
 * sanitizer report, no leak; the limits of issue #16 (depth, token size,
 * inflation ratio, max_xml_bytes) keep every input inside -rss_limit_mb.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/apple_export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_batch(void *ctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                    size_t *stored)
{
    (void)ctx;
    (void)stored;
    if (n == 0 || so_far->samples < (int64_t)n)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i].user_id, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") != 0)
            abort();
        if (v[i].payload != NULL && strlen(v[i].payload) >= APPLE_EXPORT_PAYLOAD_MAX)
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = 1 + (size_t)data[0] * 16;
    data++;
    size--;
    struct apple_export *p = NULL;
    struct apple_export_options o = {.user_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                                     .upload_id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
                                     .batch_size = 8,
                                     .on_batch = on_batch,
                                     .max_xml_bytes = 64 * 1024 * 1024};
    if (apple_export_new(&o, &p) != 0)
        return 0;
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += chunk)
        rc = apple_export_feed(p, data + off, size - off < chunk ? size - off : chunk);
    if (rc == 0)
        rc = apple_export_finish(p);
    if (rc != 0 && apple_export_errmsg(p)[0] == '\0')
        abort(); /* every failure says why */
    json_t *rep = apple_export_report_json(p);
    json_decref(rep);
    apple_export_free(p);
    return 0;
}
