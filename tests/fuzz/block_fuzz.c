/*
 * block_fuzz.c — libFuzzer driver for the sample block decoder
 * (src/store/block.c). Any bytes must either be refused with
 * BLOCK_ECORRUPT or decode into at most block_reader_count samples whose
 * strings are readable C strings; a block that decodes completely must
 * decode to the same samples without its text (the analysis window's read)
 * and encode again, in each format, to the same samples (the codec is a
 * bijection on what it accepts, up to NaN payloads). Seeds:
 * tests/fuzz/corpus/block/.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/block.h"

static void touch(const char *s)
{
    if (s != NULL && strlen(s) > BLOCK_MAX_STRING)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct block_reader *r = NULL;
    if (block_reader_open(data, size, &r) != 0)
        return 0;
    size_t n = block_reader_count(r), got = 0;
    struct block_sample x;
    int rc;
    size_t cap = n < 4096 ? n : 4096; /* re-encode only small blocks */
    struct block_sample *keep = calloc(cap ? cap : 1, sizeof(*keep));
    char **owned = calloc(cap ? cap * 2 : 1, sizeof(*owned));
    while ((rc = block_reader_next(r, &x, NULL)) == 1) {
        if (++got > n)
            abort();
        touch(x.metric_type);
        touch(x.unit);
        touch(x.source);
        touch(x.device);
        touch(x.upload_id);
        touch(x.validation_status);
        touch(x.hk_uuid);
        touch(x.payload);
        if (x.end_ms < x.start_ms || isinf(x.value) || isinf(x.value2) || isinf(x.quality))
            abort();
        if (keep && owned && got <= cap) {
            keep[got - 1] = x;
            keep[got - 1].hk_uuid = owned[2 * (got - 1)] = x.hk_uuid ? strdup(x.hk_uuid) : NULL;
            keep[got - 1].payload = owned[2 * (got - 1) + 1] = x.payload ? strdup(x.payload) : NULL;
        }
    }
    if (rc == 0 && got != n)
        abort();
    if (rc == 0) {
        /* The window's read (no keys, no payloads) agrees on every sample. */
        struct block_reader *r3 = NULL;
        if (block_reader_open(data, size, &r3) != 0)
            abort();
        block_reader_skip_text(r3, 1);
        size_t again = 0;
        while ((rc = block_reader_next(r3, &x, NULL)) == 1)
            if (x.hk_uuid != NULL || x.payload != NULL || ++again > n)
                abort();
        if (rc != 0 || again != n)
            abort();
        block_reader_free(r3);
    }
    /* Written again in each format (1: what the release before reads), it
     * decodes to the same samples. */
    for (int format = BLOCK_FORMAT; rc == 0 && keep && owned && n <= cap && format >= 1; format--) {
        unsigned char *b = NULL;
        size_t len = 0;
        struct block_reader *r2 = NULL;
        if (block_set_write_format(format) != 0 || block_encode(keep, n, &b, &len) != 0 ||
            block_set_write_format(BLOCK_FORMAT) != 0 || b[2] != format || block_reader_open(b, len, &r2) != 0)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (block_reader_next(r2, &x, NULL) != 1 || x.id != keep[i].id || x.start_ms != keep[i].start_ms ||
                x.end_ms != keep[i].end_ms || strcmp(x.metric_type, keep[i].metric_type) != 0 ||
                x.utc_offset_min != keep[i].utc_offset_min || (x.payload == NULL) != (keep[i].payload == NULL) ||
                (x.payload && strcmp(x.payload, keep[i].payload) != 0) ||
                (x.hk_uuid == NULL) != (keep[i].hk_uuid == NULL) ||
                (x.hk_uuid && strcmp(x.hk_uuid, keep[i].hk_uuid) != 0))
                abort();
        }
        block_reader_free(r2);
        free(b);
    }
    for (size_t i = 0; owned && i < 2 * (got < cap ? got : cap); i++)
        free(owned[i]);
    free(owned);
    free(keep);
    block_reader_free(r);
    return 0;
}
