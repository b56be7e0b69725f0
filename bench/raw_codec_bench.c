/*
 * raw_codec_bench.c — which compressor for raw upload bodies (issue #19):
 * zlib (levels 1 and 6) against zstd (levels 1, 3, 9, 19), same run, on
 * generated bodies shaped like the ones Clarity keeps.
 *
 * Bodies (1,000 samples each, as the clients send them):
 *  - ios: `POST /api/v1/healthkit` as the iOS app encodes it
 *    (/work/shared/clients/ios-app.md): snake_case keys, ISO 8601 dates
 *    without fractional seconds, no sample UUID, a source_revision on
 *    every sample; a week's mix of heart rate every ~5 minutes, step counts
 *    at irregular intervals, sleep stages with their metadata and a daily
 *    resting heart rate, from a watch and a phone;
 *  - upload: `POST /api/v1/healthkit/upload` as bench/upload_bench.py sends
 *    it (a random UUID per sample: the least compressible part).
 * Printed per codec: compressed bytes per sample (what the seal adds is the
 * same for all: KEYRING's 16-byte tag, 72-byte wrapped DEK and 24-byte
 * nonce per upload), and the median time to compress and to decompress
 * one body (µs) with its speed over the JSON bytes (MB/s). zstd runs with a
 * reused context, except "zstd 1*": a new context per body (ZSTD_compress /
 * ZSTD_decompress), which is what keyring.c's raw_pack and raw_unpack do.
 * Every output is decompressed and compared with its input.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "bench_util.h"

#define SAMPLES 1000
#define REPS 15
#define BODY_MAX (1 << 20)

struct buf {
    char *p;
    size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= b->cap - b->n) {
        fprintf(stderr, "raw_codec_bench: body too large\n");
        exit(1);
    }
    b->n += (size_t)w;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* "2025-06-24T10:00:00Z" for t seconds since 2025-06-18T00:00:00Z (a week). */
static void iso(char out[32], long t)
{
    unsigned d = (unsigned)(t / 86400 % 12), s = (unsigned)(t % 86400);
    snprintf(out, 32, "2025-06-%02uT%02u:%02u:%02uZ", 18 + d, s / 3600 % 24, s / 60 % 60, s % 60);
}

static const char watch[] = "\"source_revision\":{\"source\":{\"name\":\"Ana's Apple Watch\","
                            "\"bundle_identifier\":\"com.apple.health.6F1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D\"},"
                            "\"version\":\"11.5\",\"product_type\":\"Watch7,3\",\"operating_system_version\":"
                            "\"11.5.0\"}";
static const char phone[] = "\"source_revision\":{\"source\":{\"name\":\"Ana's iPhone\","
                            "\"bundle_identifier\":\"com.apple.health.1A2B3C4D-5E6F-4788-99AA-BBCCDDEEFF00\"},"
                            "\"version\":\"18.5\",\"product_type\":\"iPhone16,2\",\"operating_system_version\":"
                            "\"18.5.0\"}";

static void body_ios(struct buf *b)
{
    static const char *const stages[] = {"core", "deep", "rem", "awake"};
    static const int stage_code[] = {3, 4, 5, 2};
    char s[32], e[32];
    long t = 0;
    int hr = 64;
    put(b, "{\"user_id\":\"us-east-1:5c9e1f0a-7b2d-4c3e-9f8a-1d2e3f4a5b6c\",\"samples\":[");
    for (int i = 0; i < SAMPLES; i++) {
        int kind = (int)(rnd() % 100);
        if (i)
            put(b, ",");
        if (kind < 55) { /* heart rate, every ~5 minutes */
            t += 240 + rnd() % 120;
            hr += (int)(rnd() % 7) - 3;
            hr = hr < 48 ? 48 : hr > 150 ? 150 : hr;
            iso(s, t);
            put(b,
                "{\"sample_type\":\"heartRate\",\"value\":%d,\"unit\":\"count/min\",\"start_date\":\"%s\","
                "\"end_date\":\"%s\",%s}",
                hr, s, s, watch);
        } else if (kind < 90) { /* steps over irregular intervals */
            long d = 60 + rnd() % 540;
            iso(s, t);
            iso(e, t + d);
            put(b,
                "{\"sample_type\":\"stepCount\",\"value\":%u,\"unit\":\"count\",\"start_date\":\"%s\","
                "\"end_date\":\"%s\",%s}",
                rnd() % 900 + 3, s, e, (kind & 1) ? phone : watch);
        } else if (kind < 99) { /* a sleep stage */
            int k = (int)(rnd() % 4);
            long d = 60 * (5 + rnd() % 40);
            iso(s, t);
            iso(e, t + d);
            put(b,
                "{\"sample_type\":\"sleepAnalysis\",\"value\":%ld,\"category_value\":%d,\"unit\":\"min\","
                "\"start_date\":\"%s\",\"end_date\":\"%s\",\"metadata\":{\"sleep_stage\":\"%s\"},%s}",
                d / 60, stage_code[k], s, e, stages[k], watch);
        } else { /* resting heart rate, daily */
            iso(s, t - t % 86400);
            iso(e, t - t % 86400 + 86399);
            put(b,
                "{\"sample_type\":\"restingHeartRate\",\"value\":%u,\"unit\":\"count/min\",\"start_date\":\"%s\","
                "\"end_date\":\"%s\",%s}",
                52 + rnd() % 10, s, e, watch);
        }
    }
    iso(s, t);
    put(b,
        "],\"device_info\":{\"device_model\":\"iPhone\",\"system_name\":\"iOS\",\"system_version\":\"18.5\","
        "\"app_version\":\"2.4.1\",\"time_zone\":\"Europe/Madrid\"},\"timestamp\":\"%s\"}",
        s);
}

static void body_upload(struct buf *b)
{
    put(b, "{\"user_id\":\"0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b\",\"quantity_samples\":[");
    for (int k = 0; k < SAMPLES; k++) {
        uint32_t r[4] = {rnd(), rnd(), rnd(), rnd()};
        put(b,
            "%s{\"uuid\":\"%08x-%04x-4%03x-%04x-%04x%08x\",\"identifier\":\"HKQuantityTypeIdentifierHeartRate\","
            "\"value\":%d,\"unit\":\"count/min\",\"start_date\":\"2026-11-01T%02d:%02d:00Z\","
            "\"end_date\":\"2026-11-01T%02d:%02d:00Z\"}",
            k ? ", " : "", r[0], r[1] & 0xffff, r[1] >> 20, (r[2] & 0x3fff) | 0x8000, r[2] >> 16, r[3], 50 + k % 60,
            (k / 60) % 24, k % 60, (k / 60) % 24, k % 60);
    }
    put(b, "]}");
}

enum codec { ZLIB, ZSTD, ZSTD_FRESH };

static size_t pack(enum codec c, int level, ZSTD_CCtx *cc, const char *in, size_t n, unsigned char *out, size_t cap)
{
    if (c == ZLIB) {
        uLongf dl = cap;
        return compress2(out, &dl, (const Bytef *)in, (uLong)n, level) == Z_OK ? dl : 0;
    }
    size_t r = c == ZSTD ? ZSTD_compressCCtx(cc, out, cap, in, n, level) : ZSTD_compress(out, cap, in, n, level);
    return ZSTD_isError(r) ? 0 : r;
}

static size_t unpack(enum codec c, ZSTD_DCtx *dc, const unsigned char *in, size_t n, char *out, size_t cap)
{
    if (c == ZLIB) {
        uLongf dl = cap;
        return uncompress((Bytef *)out, &dl, in, (uLong)n) == Z_OK ? dl : 0;
    }
    size_t r = c == ZSTD ? ZSTD_decompressDCtx(dc, out, cap, in, n) : ZSTD_decompress(out, cap, in, n);
    return ZSTD_isError(r) ? 0 : r;
}

static int run(const char *name, const struct buf *b)
{
    static const struct {
        enum codec c;
        int level;
        const char *label;
    } codecs[] = {{ZLIB, 1, "zlib 1"}, {ZLIB, 6, "zlib 6"},   {ZSTD, 1, "zstd 1"},       {ZSTD, 3, "zstd 3"},
                  {ZSTD, 9, "zstd 9"}, {ZSTD, 19, "zstd 19"}, {ZSTD_FRESH, 1, "zstd 1*"}};
    size_t cap = compressBound((uLong)b->n) + ZSTD_compressBound(b->n);
    unsigned char *z = malloc(cap);
    char *back = malloc(b->n + 1);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    int ok = z && back && cc && dc;
    printf("%s body: %zu samples, %zu bytes of JSON (%.1f B a sample)\n", name, (size_t)SAMPLES, b->n,
           (double)b->n / SAMPLES);
    printf("  %-8s %10s %10s %12s %10s %12s %10s\n", "codec", "bytes", "B/sample", "compress us", "MB/s", "decompr. us",
           "MB/s");
    for (size_t i = 0; ok && i < sizeof(codecs) / sizeof(codecs[0]); i++) {
        int levels_ok = codecs[i].c == ZLIB || codecs[i].level <= ZSTD_maxCLevel();
        if (!levels_ok)
            continue;
        double tc[REPS], td[REPS];
        size_t zn = 0;
        for (int r = 0; r < REPS && ok; r++) {
            double t0 = bench_now_s();
            zn = pack(codecs[i].c, codecs[i].level, cc, b->p, b->n, z, cap);
            double t1 = bench_now_s();
            size_t bn = unpack(codecs[i].c, dc, z, zn, back, b->n + 1);
            double t2 = bench_now_s();
            ok = zn > 0 && bn == b->n && memcmp(back, b->p, bn) == 0;
            tc[r] = t1 - t0;
            td[r] = t2 - t1;
        }
        if (!ok)
            break;
        double c = bench_median(tc, REPS), d = bench_median(td, REPS);
        printf("  %-8s %10zu %10.1f %12.0f %10.0f %12.0f %10.0f\n", codecs[i].label, zn, (double)zn / SAMPLES, c * 1e6,
               (double)b->n / c / 1e6, d * 1e6, (double)b->n / d / 1e6);
    }
    if (!ok)
        fprintf(stderr, "raw_codec_bench: a codec failed or did not round-trip\n");
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    free(z);
    free(back);
    return ok ? 0 : 1;
}

int main(void)
{
    struct buf a = {malloc(BODY_MAX), 0, BODY_MAX}, b = {malloc(BODY_MAX), 0, BODY_MAX};
    if (a.p == NULL || b.p == NULL)
        return 1;
    body_ios(&a);
    body_upload(&b);
    int rc = run("iOS app POST /api/v1/healthkit", &a) | run("POST /api/v1/healthkit/upload (upload_bench)", &b);
    free(a.p);
    free(b.p);
    return rc;
}
