/*
 * block_bench.c — the sample block codec (issue #19) on a generated year of
 * one person's Apple Health data, beside the layout sample_days uses today.
 *
 * The year: per day ~250 heart-rate readings (Apple Watch, integers), ~300
 * active and ~250 basal energy readings (kcal, 3 decimals), ~200 walking
 * distances (km, 5 decimals), ~150 step counts from the iPhone and ~100
 * from the watch (irregular intervals and durations), 10 flights, 60
 * respiratory rates (one decimal) and 12 blood-oxygen readings at night,
 * 6 HRV readings (4 decimals), ~30 sleep stages — about 1,370 samples a
 * day, 500,000 a year. Every sample carries what the export ingest stores:
 * a content-derived v8 UUID as hk_uuid (its first 48 bits the start, as
 * apple_export_content_key derives it) and the payload
 * {"tz_offset_min":N,"hk_type":"HK…","source_version":"…"}; sleep stages
 * add their stage. Ids are sequential, the UTC offset changes twice a year.
 *
 * Measured, per day block: encoded size (and sealed: + KEYRING_BLOB_OVERHEAD
 * bytes), the same samples in sample_days' segment layout (52-byte header,
 * string table, 36-byte records: src/store/days.c), encode and decode
 * speed, and the time to read the whole year as the analysis window read
 * would: each day block opened (its DEK unwrapped and the block decrypted
 * with envelope_body_open, what keyring_blob_open does after its key cache)
 * and decoded into columns. The row store's figure (734 B a sample with its
 * raw body, 481 B rows + indexes) is issue #19's measurement; this bench does
 * not write to a database.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "store/block.h"

#define DAYS 365
#define DAY_MS 86400000LL
#define MAX_PER_DAY 4096

/* This thread's CPU time: the machine is shared, so wall time would measure
 * the neighbours. */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}
static int64_t below(int64_t n) { return (int64_t)(rnd() % (uint64_t)n); }

struct kind {
    const char *type, *unit, *hk, *source, *device;
    int per_day;
    int decimals;
    double lo, hi;
    int64_t dur_ms;
    int night;
};

static const char watch[] = "<<HKDevice: 0x283c2a8f0>, name:Apple Watch, manufacturer:Apple Inc., "
                            "model:Watch, hardware:Watch6,1, software:10.1>";
static const char phone[] = "<<HKDevice: 0x283c2a9e0>, name:iPhone, manufacturer:Apple Inc., "
                            "model:iPhone, hardware:iPhone14,2, software:17.1>";

static const struct kind kinds[] = {
    {"heart_rate", "count/min", "HKQuantityTypeIdentifierHeartRate", "Ana's Apple Watch", watch, 250, 0, 48, 150, 0, 0},
    {"active_energy", "kcal", "HKQuantityTypeIdentifierActiveEnergyBurned", "Ana's Apple Watch", watch, 300, 3, 0.01,
     2.5, 60000, 0},
    {"basal_energy", "kcal", "HKQuantityTypeIdentifierBasalEnergyBurned", "Ana's Apple Watch", watch, 250, 3, 0.8, 1.4,
     60000, 0},
    {"distance", "km", "HKQuantityTypeIdentifierDistanceWalkingRunning", "Ana's iPhone", phone, 200, 5, 0.001, 0.2, 0,
     0},
    {"steps", "count", "HKQuantityTypeIdentifierStepCount", "Ana's iPhone", phone, 150, 0, 1, 400, 0, 0},
    {"steps", "count", "HKQuantityTypeIdentifierStepCount", "Ana's Apple Watch", watch, 100, 0, 1, 300, 0, 0},
    {"flights_climbed", "count", "HKQuantityTypeIdentifierFlightsClimbed", "Ana's iPhone", phone, 10, 0, 1, 4, 0, 0},
    {"respiratory_rate", "count/min", "HKQuantityTypeIdentifierRespiratoryRate", "Ana's Apple Watch", watch, 60, 1, 11,
     19, 0, 1},
    {"blood_oxygen", "%", "HKQuantityTypeIdentifierOxygenSaturation", "Ana's Apple Watch", watch, 12, 0, 92, 100, 0, 1},
    {"heart_rate_variability", "ms", "HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "Ana's Apple Watch", watch, 6,
     4, 20, 90, 0, 1},
    {"sleep_stage", "min", "HKCategoryTypeIdentifierSleepAnalysis", "Ana's Apple Watch", watch, 30, 0, 1, 40, 0, 1},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

struct day {
    struct block_sample s[MAX_PER_DAY];
    char uuid[MAX_PER_DAY][37];
    size_t n;
};

static int cmp_start(const void *a, const void *b)
{
    const struct block_sample *x = a, *y = b;
    return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

static char payloads[NKINDS][2][5][160]; /* per kind, offset, stage */
static const char *const stages[] = {"asleep_core", "asleep_deep", "asleep_rem", "awake", "in_bed"};

static void gen_day(struct day *d, int day, int64_t *id)
{
    int64_t t0 = (int64_t)(19723 + day) * DAY_MS; /* 2024 */
    int dst = day >= 70 && day < 308;
    int32_t off = dst ? -240 : -300;
    d->n = 0;
    for (size_t k = 0; k < NKINDS; k++) {
        const struct kind *kd = &kinds[k];
        int cnt = kd->per_day * 8 / 10 + (int)below(kd->per_day * 4 / 10 + 1);
        for (int i = 0; i < cnt && d->n < MAX_PER_DAY; i++) {
            struct block_sample *x = &d->s[d->n];
            int64_t span = kd->night ? 8 * 3600000LL : 16 * 3600000LL;
            int64_t base = kd->night ? 4 * 3600000LL : 11 * 3600000LL;
            x->start_ms = t0 + base + span * i / cnt + below(60) * 1000;
            x->end_ms = x->start_ms + (kd->dur_ms ? kd->dur_ms : below(600) * 1000);
            double v = kd->lo + (kd->hi - kd->lo) * (double)(rnd() % 10000) / 10000.0;
            double p = pow(10, kd->decimals);
            x->value = round(v * p) / p;
            x->value2 = x->quality = NAN;
            x->utc_offset_min = off;
            x->processing_version = 2;
            x->metric_type = kd->type;
            x->unit = kd->unit;
            x->source = kd->source;
            x->device = kd->device;
            x->upload_id = "0190c5a0-7f3e-7a11-9d2c-5be01f1a2b3c";
            x->validation_status = "valid";
            int st = strcmp(kd->type, "sleep_stage") == 0 ? (int)below(5) : 0;
            x->payload = payloads[k][dst][st];
            unsigned char u[16];
            for (int j = 0; j < 16; j += 8) {
                uint64_t r = rnd();
                memcpy(u + j, &r, 8);
            }
            /* As apple_export_content_key: the first 48 bits are the start. */
            for (int j = 0; j < 6; j++)
                u[j] = (unsigned char)((uint64_t)x->start_ms >> (40 - 8 * j));
            u[6] = (unsigned char)((u[6] & 0x0f) | 0x80);
            u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
            static const char hex[] = "0123456789abcdef";
            for (int j = 0, o = 0; j < 16; j++) {
                if (j == 4 || j == 6 || j == 8 || j == 10)
                    d->uuid[d->n][o++] = '-';
                d->uuid[d->n][o++] = hex[u[j] >> 4];
                d->uuid[d->n][o++] = hex[u[j] & 15];
            }
            d->uuid[d->n][36] = '\0';
            x->hk_uuid = d->uuid[d->n];
            d->n++;
        }
    }
    qsort(d->s, d->n, sizeof(d->s[0]), cmp_start);
    for (size_t i = 0; i < d->n; i++)
        d->s[i].id = ++*id;
}

/* The size of these samples in sample_days' segment layout (days.c). */
static size_t days_layout_size(const struct day *d)
{
    const char *seen[64];
    size_t nseen = 0, bytes = 52 + 36 * d->n;
    for (size_t i = 0; i < d->n; i++) {
        const char *f[4] = {d->s[i].metric_type, d->s[i].source, d->s[i].device, d->s[i].payload};
        for (int j = 0; j < 4; j++) {
            size_t k = 0;
            while (k < nseen && strcmp(seen[k], f[j]) != 0)
                k++;
            if (k == nseen && nseen < 64) {
                seen[nseen++] = f[j];
                bytes += 4 + strlen(f[j]);
            }
        }
    }
    return bytes;
}

int main(void)
{
    static struct day d;
    unsigned char *blocks[DAYS];
    size_t lens[DAYS];
    size_t total_n = 0, total_block = 0, total_days = 0, total_payload = 0, total_keyless = 0;
    int64_t id = 0;
    double enc_s = 0;

    if (sodium_init() < 0)
        return 1;
    for (size_t k = 0; k < NKINDS; k++)
        for (int o = 0; o < 2; o++)
            for (int st = 0; st < 5; st++) {
                if (strcmp(kinds[k].type, "sleep_stage") == 0)
                    snprintf(payloads[k][o][st], sizeof(payloads[k][o][st]),
                             "{\"tz_offset_min\":%d,\"hk_type\":\"%s\",\"source_version\":\"10.1\","
                             "\"stage\":\"%s\"}",
                             o ? -240 : -300, kinds[k].hk, stages[st]);
                else
                    snprintf(payloads[k][o][st], sizeof(payloads[k][o][st]),
                             "{\"tz_offset_min\":%d,\"hk_type\":\"%s\",\"source_version\":\"17.1\"}", o ? -240 : -300,
                             kinds[k].hk);
            }
    for (int day = 0; day < DAYS; day++) {
        gen_day(&d, day, &id);
        for (size_t i = 0; i < d.n; i++)
            total_payload += strlen(d.s[i].payload);
        uint64_t t = cpu_ns();
        if (block_encode(d.s, d.n, &blocks[day], &lens[day]) != 0)
            return 1;
        enc_s += (double)(cpu_ns() - t) / 1e9;
        total_n += d.n;
        total_block += lens[day];
        total_days += days_layout_size(&d);
        /* The same day without keys: what the keys cost. */
        unsigned char *nk = NULL;
        size_t nkl = 0;
        for (size_t i = 0; i < d.n; i++)
            d.s[i].hk_uuid = NULL;
        if (block_encode(d.s, d.n, &nk, &nkl) != 0)
            return 1;
        total_keyless += nkl;
        free(nk);
    }

    /* Seal every day as the store would (one DEK per block), then time the
     * year's read: open (decrypt) and decode into window columns. */
    struct envelope_key *kek = NULL;
    struct envelope_sealed sealed[DAYS];
    char bound[DAYS][KEYRING_BINDING_LEN];
    const char user[] = "0190c5a0-7f3e-7a11-9d2c-5be01f1a2b3d";
    if (envelope_key_random(&kek) != 0)
        return 1;
    for (int day = 0; day < DAYS; day++) {
        keyring_block_binding(19723 + day, 0, BLOCK_SEAL_FORMAT, bound[day]);
        struct envelope_binding b = {user, bound[day]};
        if (envelope_body_seal(kek, 1, &b, blocks[day], lens[day], &sealed[day]) != 0)
            return 1;
    }
    int64_t *start = malloc(total_n * sizeof(int64_t)), *end = malloc(total_n * sizeof(int64_t));
    double *value = malloc(total_n * sizeof(double));
    uint8_t *type = malloc(total_n);
    double best_read = 1e9, best_decode = 1e9;
    for (int round = 0; round < 5; round++) {
        uint64_t t = cpu_ns();
        double dec = 0;
        size_t at = 0;
        for (int day = 0; day < DAYS; day++) {
            struct envelope_binding b = {user, bound[day]};
            unsigned char *pt = NULL;
            size_t pl = 0;
            if (envelope_body_open(kek, 1, &b, sealed[day].wrapped_dek, ENVELOPE_WRAPPED_BYTES, sealed[day].nonce,
                                   ENVELOPE_NONCE_BYTES, sealed[day].ciphertext, sealed[day].ciphertext_len, &pt,
                                   &pl) != 0 ||
                pl != lens[day] || memcmp(pt, blocks[day], pl) != 0)
                return 1;
            uint64_t t2 = cpu_ns();
            struct block_reader *r;
            struct block_sample x;
            uint32_t si;
            if (block_reader_open(pt, pl, &r) != 0)
                return 1;
            block_reader_skip_text(r, 1);
            while (block_reader_next(r, &x, &si) == 1) {
                start[at] = x.start_ms;
                end[at] = x.end_ms;
                value[at] = x.value;
                type[at] = (uint8_t)si;
                at++;
            }
            block_reader_free(r);
            free(pt);
            dec += (double)(cpu_ns() - t2) / 1e9;
        }
        double all = (double)(cpu_ns() - t) / 1e9;
        if (at != total_n)
            return 1;
        if (all < best_read)
            best_read = all;
        if (dec < best_decode)
            best_decode = dec;
    }
    double per_block_seal = (double)KEYRING_BLOB_OVERHEAD * DAYS / (double)total_n;
    printf("generated year: %zu samples over %d days (%.0f a day); payload text %.1f B a sample\n", total_n, DAYS,
           (double)total_n / DAYS, (double)total_payload / (double)total_n);
    printf("block codec:   %.2f B a sample (%.2f sealed: + %d B a day block)\n", (double)total_block / (double)total_n,
           (double)total_block / (double)total_n + per_block_seal, KEYRING_BLOB_OVERHEAD);
    printf("  of which hk_uuid (content keys: 10 B each, the other 6 are the start): %.2f B\n",
           (double)(total_block - total_keyless) / (double)total_n);
    printf("sample_days layout (days.c, same samples, no hk_uuid): %.2f B a sample\n",
           (double)total_days / (double)total_n);
    printf("row store (issue #19's measurement, SQLite): 481 B rows+indexes, 734 B with raw body\n");
    printf("encode: %.2f M samples/s of CPU time\n", (double)total_n / enc_s / 1e6);
    printf("year read (decrypt + decode into columns, CPU time, best of 5): %.2f ms (decode %.2f ms); "
           "target <= 20 ms\n",
           best_read * 1e3, best_decode * 1e3);
    for (int day = 0; day < DAYS; day++) {
        free(blocks[day]);
        envelope_sealed_clear(&sealed[day]);
    }
    envelope_key_free(kek);
    free(start);
    free(end);
    free(value);
    free(type);
    return 0;
}
