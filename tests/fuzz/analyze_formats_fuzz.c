/*
 * analyze_formats_fuzz.c — libFuzzer driver for the text readers of
 * `clarity analyze` (src/ingest/recording.c, shared with the recording upload route): CSV, Actiwatch .AWD, Philips
 * Actiware export, Condor ActTrust, CamNtech MotionWatch and ActiLife CSV.
 *
 * Input: byte 0 picks the reader (mod 6), byte 1 the epoch override (0 =
 * the file's own; else 15, 30, 60, 120 s), the rest is the file. Every
 * reader must return 0 with a series of 1..SERIES_MAX_MINUTES minutes
 * starting inside the representable range, or -1 with a non-empty message;
 * nothing may read past the input (the text is not NUL-terminated). The
 * epoch series beside it (for --conventions pyactigraphy) must be
 * consistent, and pyActigraphy's measures must run on it. The series then
 * goes through recording_samples_next as the recording upload route does:
 * every sample has an end after its start, a finite count and a key.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/circadian.h"
#include "analysis/series.h"
#include "ingest/recording.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned epochs[] = {0, 15, 30, 60, 120};
    if (size < 2)
        return 0;
    unsigned which = data[0] % 6, epoch = epochs[data[1] % 5];
    size_t len = size - 2;
    /* an exact-size copy so that ASan sees any read past the end */
    char *text = malloc(len ? len : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 2, len);
    struct recording_series s;
    char err[256];
    err[0] = '\0';
    int rc;
    switch (which) {
    case 0: rc = recording_csv_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    case 1: rc = recording_awd_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    case 2: rc = recording_rpx_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    case 3: rc = recording_atr_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    case 4: rc = recording_mtn_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    default: rc = recording_actilife_parse(text, len, epoch, 0, &s, err, sizeof(err)); break;
    }
    if (rc == 0) {
        if (s.n == 0 || s.n > SERIES_MAX_MINUTES || s.values == NULL)
            abort();
        if (s.epoch_s == 0 || s.epoch_n > RECORDING_MAX_ROWS || (s.epoch_n == 0) != (s.epoch_values == NULL))
            abort();
        size_t wsz = circadian_pyact_workspace_size(s.epoch_n, s.epoch_s);
        if (s.epoch_n && wsz && s.epoch_n <= 100000) {
            int64_t sod = s.start_local_s % 86400;
            if (sod < 0)
                sod += 86400;
            void *ws = malloc(wsz);
            struct circadian_npar r;
            if (ws && circadian_npar_pyactigraphy(s.epoch_values, s.epoch_n, s.epoch_s, (int)sod, 4.0, ws, &r) != 0)
                abort();
            free(ws);
        }
        /* The API's path (api/recordings.c): the series as samples. */
        if (recording_samples_total(&s) <= 200000) {
            struct recording_sample_opts o = {"fuzz-user", "fuzz", (int32_t)(data[1] % 61) * 30 - 900};
            struct upload_samples out = {0};
            size_t next = 0, n = 0;
            while (next < recording_samples_total(&s)) {
                size_t before = next;
                if (recording_samples_next(&s, &o, &next, RECORDING_SAMPLE_BATCH, &out) != 0 || next <= before)
                    abort();
                for (size_t i = 0; i < out.n; i++)
                    if (out.v[i].end_ms <= out.v[i].start_ms || !isfinite(out.v[i].value) ||
                        out.v[i].hk_uuid[0] == '\0' || out.v[i].payload == NULL)
                        abort();
                n += out.n;
                upload_samples_free(&out);
            }
            if (n > recording_samples_total(&s))
                abort();
        }
        free(s.values);
    } else if (rc != -1 || err[0] == '\0') {
        abort();
    }
    (void)recording_format_detect("fuzz.csv", text, len);
    free(text);
    return 0;
}
