/*
 * block_test.c — the sample block codec (src/store/block.c): property tests
 * over random series, the edges of the format, refused input, and damaged
 * bytes (every truncation, every single-byte change) that must answer
 * BLOCK_ECORRUPT or decode, never crash (run under ASan+UBSan too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/healthkit.h"
#include "store/block.h"

/* xorshift64*: a fixed seed per test, so a failure reproduces. */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static uint64_t rnd_below(uint64_t n) { return rnd() % n; }

static uint64_t bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static const char *nz(const char *s) { return s ? s : ""; }

/* Owned storage for generated samples' strings. */
struct gen {
    struct block_sample *s;
    char (*uuid)[48];
    char (*payload)[96];
    size_t n;
};

static void gen_free(struct gen *g)
{
    free(g->s);
    free(g->uuid);
    free(g->payload);
    memset(g, 0, sizeof(*g));
}

static void gen_alloc(struct gen *g, size_t n)
{
    g->s = calloc(n, sizeof(*g->s));
    g->uuid = calloc(n, sizeof(*g->uuid));
    g->payload = calloc(n, sizeof(*g->payload));
    assert_non_null(g->s);
    assert_non_null(g->uuid);
    assert_non_null(g->payload);
    g->n = n;
}

/* Encode, decode, and compare every field (values bit for bit, NaN as
 * none); returns the encoded size. */
static size_t roundtrip(const struct block_sample *s, size_t n)
{
    unsigned char *b = NULL;
    size_t len = 0;
    struct block_reader *r = NULL;
    assert_int_equal(block_encode(s, n, &b, &len), 0);
    assert_int_equal(block_reader_open(b, len, &r), 0);
    assert_int_equal(block_reader_count(r), n);
    for (size_t i = 0; i < n; i++) {
        struct block_sample x;
        uint32_t si = UINT32_MAX;
        assert_int_equal(block_reader_next(r, &x, &si), 1);
        assert_true(si < block_reader_series_count(r));
        assert_ptr_equal(block_reader_series(r, si)->metric_type, x.metric_type);
        assert_int_equal(x.id, s[i].id);
        assert_int_equal(x.start_ms, s[i].start_ms);
        assert_int_equal(x.end_ms, s[i].end_ms);
        const double *a[3] = {&s[i].value, &s[i].value2, &s[i].quality};
        const double *d[3] = {&x.value, &x.value2, &x.quality};
        for (int k = 0; k < 3; k++) {
            if (isnan(*a[k]))
                assert_true(isnan(*d[k]));
            else if (bits(*a[k]) != bits(*d[k]))
                fail_msg("sample %zu value %d: %.17g decoded as %.17g", i, k, *a[k], *d[k]);
        }
        assert_int_equal(x.utc_offset_min, s[i].utc_offset_min);
        assert_int_equal(x.processing_version, s[i].processing_version);
        assert_string_equal(x.metric_type, s[i].metric_type);
        assert_string_equal(x.unit, nz(s[i].unit));
        assert_string_equal(x.source, nz(s[i].source));
        assert_string_equal(x.device, nz(s[i].device));
        assert_string_equal(x.upload_id, nz(s[i].upload_id));
        assert_string_equal(x.validation_status, nz(s[i].validation_status));
        if (s[i].hk_uuid == NULL || s[i].hk_uuid[0] == '\0')
            assert_null(x.hk_uuid);
        else
            assert_string_equal(x.hk_uuid, s[i].hk_uuid);
        if (s[i].payload == NULL)
            assert_null(x.payload);
        else
            assert_string_equal(x.payload, s[i].payload);
    }
    struct block_sample x;
    assert_int_equal(block_reader_next(r, &x, NULL), 0);
    block_reader_free(r);
    free(b);
    return len;
}

static const char *const types[] = {"steps",         "heart_rate", "heart_rate_variability", "sleep_stage",
                                    "active_energy", "distance",   "blood_pressure",         "workout"};
static const char *const sources[] = {"Apple Watch", "iPhone", "", "Oura", "MyFitnessPal"};
static const char *const devices[] = {"", "Watch6,1", "iPhone14,2", "<<HKDevice: 0x1>>"};
static const char *const uploads[] = {"", "0190c5a0-0000-7000-8000-000000000001",
                                      "0190c5a0-0000-7000-8000-000000000002"};

static double random_value(int kind)
{
    switch (kind) {
    case 0: return (double)rnd_below(200);                    /* steps */
    case 1: return 40.0 + (double)rnd_below(1400) / 10.0;     /* one decimal */
    case 2: return (double)(int64_t)rnd_below(1000000) / 1e4; /* km, 4 decimals */
    case 3: {                                                 /* any finite bits */
        double d;
        do {
            uint64_t u = rnd();
            memcpy(&d, &u, sizeof(d));
        } while (!isfinite(d));
        return d;
    }
    case 4: return rnd_below(2) ? -0.0 : 5e-324; /* signed zero, denormal */
    case 5: return (double)rnd() / 3.0;          /* large, inexact */
    case 6: return NAN;                          /* none */
    default: return -(double)rnd_below(1000) / 100.0;
    }
}

/* The content key apple_export_content_key derives (version 8, the first
 * 48 bits the start): here with a made-up hash part h. */
static void v8_key(int64_t start_ms, uint64_t h, int upper, char out[48])
{
    unsigned char b[16];
    uint64_t t = (uint64_t)start_ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(t >> (40 - 8 * i));
    for (int i = 6; i < 16; i++)
        b[i] = (unsigned char)(h >> (8 * (i % 8)) ^ (unsigned)(i * 37));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x80);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    const char *d = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = d[b[i] >> 4];
        out[k++] = d[b[i] & 15];
    }
    out[k] = '\0';
}

/* A random block: interleaved series of mixed kinds, random or regular
 * times (with extremes), ids sequential or not, every uuid and payload
 * form. */
static void gen_random(struct gen *g, size_t n)
{
    gen_alloc(g, n);
    int kind[8], keys[8];
    int64_t t[8], step[8];
    for (int k = 0; k < 8; k++) {
        kind[k] = (int)rnd_below(8);
        keys[k] = (int)rnd_below(3); /* mostly content keys, mostly hex keys, anything */
        t[k] = (int64_t)rnd_below(4) == 0 ? (int64_t)rnd() : 1700000000000 + (int64_t)rnd_below(86400000);
        step[k] = rnd_below(3) == 0 ? (int64_t)rnd_below(1000000) : 60000;
    }
    int64_t id = (int64_t)rnd_below(1000000);
    int nser = 1 + (int)rnd_below(8);
    for (size_t i = 0; i < n; i++) {
        struct block_sample *x = &g->s[i];
        int k = (int)rnd_below((uint64_t)nser);
        id += rnd_below(10) == 0 ? (int64_t)rnd_below(1000) - 500 : 1;
        x->id = rnd_below(50) == 0 ? (int64_t)rnd() : id;
        t[k] += rnd_below(5) == 0 ? (int64_t)rnd_below(100000) : step[k];
        x->start_ms = rnd_below(100) == 0 ? (int64_t)rnd() : t[k];
        switch (rnd_below(6)) {
        case 0: x->end_ms = x->start_ms; break;
        case 1:
            x->end_ms = x->start_ms > INT64_MAX - 1000000 ? INT64_MAX : x->start_ms + (int64_t)rnd_below(1000000);
            break;
        case 2: x->end_ms = INT64_MAX; break;
        default: x->end_ms = x->start_ms > INT64_MAX - 60000 ? x->start_ms : x->start_ms + 60000;
        }
        x->value = random_value(rnd_below(10) == 0 ? (int)rnd_below(8) : kind[k]);
        x->value2 = rnd_below(3) == 0 ? random_value(kind[(k + 1) % 8]) : NAN;
        x->quality = rnd_below(4) == 0 ? (double)rnd_below(101) / 100.0 : NAN;
        x->utc_offset_min = rnd_below(20) == 0 ? (int32_t)rnd_below(2161) - 1080 : -300;
        if (rnd_below(200) == 0)
            x->utc_offset_min = rnd_below(2) ? INT32_MIN : INT32_MAX;
        x->processing_version = k % 3 == 0 ? 2 : (int32_t)(k - 3);
        x->metric_type = types[k];
        x->unit = k % 2 ? "count/min" : NULL;
        x->source = sources[(size_t)k % 5];
        x->device = devices[rnd_below(20) == 0 ? rnd_below(4) : (size_t)k % 4];
        x->upload_id = uploads[(size_t)k % 3];
        x->validation_status = k == 5 ? "suspect" : "valid";
        if (keys[k] == 0 && rnd_below(200) != 0) {
            v8_key(x->start_ms, rnd(), (int)rnd_below(2), g->uuid[i]);
            x->hk_uuid = g->uuid[i];
        } else if (keys[k] == 1 && rnd_below(200) != 0) {
            snprintf(g->uuid[i], sizeof(g->uuid[i]), "h:%016" PRIx64 "%016" PRIx64, rnd(), rnd());
            x->hk_uuid = g->uuid[i];
        } else
            switch (rnd_below(6)) {
            case 0: break;
            case 1:
                g->uuid[i][0] = '\0';
                x->hk_uuid = g->uuid[i];
                break;
            case 2:
            case 3: {
                const char *hex = rnd_below(2) ? "0123456789abcdef" : "0123456789ABCDEF";
                char *u = g->uuid[i];
                for (int j = 0, o = 0; j < 36; j++)
                    u[o++] = (j == 8 || j == 13 || j == 18 || j == 23) ? '-' : hex[rnd_below(16)];
                u[36] = '\0';
                if (rnd_below(5) == 0) /* mixed case: kept as text */
                    u[0] = 'a', u[1] = 'B';
                x->hk_uuid = u;
                break;
            }
            default: snprintf(g->uuid[i], sizeof(g->uuid[i]), "content:%016" PRIx64, rnd()); x->hk_uuid = g->uuid[i];
            }
        switch (rnd_below(6)) {
        case 0:
            snprintf(g->payload[i], sizeof(g->payload[i]), "{\"tz_offset_min\":%d}", x->utc_offset_min);
            x->payload = g->payload[i];
            break;
        case 1: /* looks like an offset payload but is not the sample's */
            snprintf(g->payload[i], sizeof(g->payload[i]), "{\"tz_offset_min\":%d }", x->utc_offset_min);
            x->payload = g->payload[i];
            break;
        case 2:
            snprintf(g->payload[i], sizeof(g->payload[i]),
                     "{\"stage\":\"asleep_core\",\"tz_offset_min\":%d,\"n\":%" PRIu64 "}", x->utc_offset_min,
                     rnd_below(1000));
            x->payload = g->payload[i];
            break;
        case 3:
            g->payload[i][0] = '\0';
            x->payload = g->payload[i];
            break;
        default: break;
        }
    }
}

static void test_roundtrip_random(void **state)
{
    (void)state;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 300; iter++) {
        struct gen g;
        size_t n = 1 + (size_t)rnd_below(iter % 10 == 0 ? 5000 : 300);
        gen_random(&g, n);
        roundtrip(g.s, g.n);
        gen_free(&g);
    }
}

static struct block_sample base_sample(void)
{
    return (struct block_sample){.id = 1,
                                 .start_ms = 1700000000000,
                                 .end_ms = 1700000060000,
                                 .value = 72,
                                 .value2 = NAN,
                                 .quality = NAN,
                                 .metric_type = "heart_rate",
                                 .processing_version = 2};
}

static void test_one_sample(void **state)
{
    (void)state;
    struct block_sample s = base_sample();
    size_t len = roundtrip(&s, 1);
    assert_true(len < 64);
    s.value = NAN; /* a sample without a value */
    roundtrip(&s, 1);
}

/* 100,000 minute samples (steps and heart rate, ~35 days): round-trip and
 * the size the format exists for. */
static void test_100000_samples(void **state)
{
    (void)state;
    size_t n = 100000;
    struct block_sample *s = calloc(n, sizeof(*s));
    assert_non_null(s);
    rng_state = 42;
    double hr = 70;
    for (size_t i = 0; i < n; i++) {
        s[i] = base_sample();
        s[i].id = (int64_t)i + 1;
        s[i].start_ms = 1700000000000 + (int64_t)(i / 2) * 60000;
        s[i].end_ms = s[i].start_ms + 60000;
        s[i].utc_offset_min = -300;
        s[i].source = "Apple Watch";
        s[i].device = "Watch6,1";
        s[i].upload_id = uploads[1 + (i / 50000)];
        s[i].validation_status = "valid";
        if (i % 2) {
            s[i].metric_type = "steps";
            s[i].unit = "count";
            s[i].value = (double)rnd_below(120);
        } else {
            hr += (double)rnd_below(5) - 2;
            s[i].unit = "count/min";
            s[i].value = hr;
        }
    }
    size_t len = roundtrip(s, n);
    printf("100,000 minute samples: %zu bytes, %.2f bytes per sample\n", len, (double)len / (double)n);
    assert_true(len < n * 6); /* the row store spent ~734 B, sample_days 36 B */
    free(s);
}

static void test_extreme_timestamps(void **state)
{
    (void)state;
    const int64_t t[][2] = {{INT64_MIN, INT64_MIN}, {INT64_MIN, INT64_MAX},     {INT64_MAX, INT64_MAX}, {0, 0}, {-1, 0},
                            {INT64_MIN, -1},        {INT64_MAX - 1, INT64_MAX}, {-86400000, 86400000}};
    size_t n = sizeof(t) / sizeof(t[0]);
    struct block_sample s[sizeof(t) / sizeof(t[0]) * 2];
    for (size_t i = 0; i < 2 * n; i++) {
        s[i] = base_sample();
        s[i].start_ms = t[i % n][0];
        s[i].end_ms = t[i % n][1];
        s[i].id = i % 2 ? INT64_MAX - (int64_t)i : INT64_MIN + (int64_t)i;
        s[i].value = i % 3 ? DBL_MAX : -1e308;
    }
    roundtrip(s, 2 * n);
}

static void test_every_type(void **state)
{
    (void)state;
    static const struct {
        const char *type, *unit;
        double v, v2;
        const char *payload;
    } t[] = {
        {HK_T_STEPS, "count", 112, NAN, NULL},
        {HK_T_HEART_RATE, "count/min", 61.5, NAN, NULL},
        {HK_T_RESTING_HEART_RATE, "count/min", 52, NAN, NULL},
        {HK_T_HRV, "ms", 43.21875, NAN, NULL},
        {HK_T_RESPIRATORY_RATE, "count/min", 14.5, NAN, NULL},
        {HK_T_BLOOD_OXYGEN, "%", 97.0, NAN, NULL},
        {HK_T_BODY_TEMPERATURE, "degC", 36.722222222222221, NAN, NULL},
        {HK_T_BP_SYSTOLIC, "mmHg", 121, NAN, NULL},
        {HK_T_BP_DIASTOLIC, "mmHg", 79, NAN, NULL},
        {HK_T_BLOOD_PRESSURE, "mmHg", 121, 79, NULL},
        {HK_T_BLOOD_GLUCOSE, "mg/dL", 98.3, NAN, NULL},
        {HK_T_ACTIVE_ENERGY, "kcal", 0.345, NAN, NULL},
        {HK_T_BASAL_ENERGY, "kcal", 1.1019999999999999, NAN, NULL},
        {HK_T_DISTANCE, "km", 0.0123, NAN, NULL},
        {HK_T_FLIGHTS, "count", 3, NAN, NULL},
        {HK_T_EXERCISE_MINUTES, "min", 1.0 / 3.0, NAN, NULL},
        {HK_T_VO2MAX, "mL/(kg*min)", 41.7, NAN, NULL},
        {HK_T_SLEEP, "min", 37.5, NAN, "{\"stage\":\"asleep_deep\",\"tz_offset_min\":60}"},
        {HK_T_MINDFUL, "min", 10, NAN, NULL},
        {HK_T_WORKOUT, "min", 45.25, NAN, "{\"activity\":\"running\",\"energy_kcal\":512.3,\"distance_km\":8.02}"},
    };
    size_t nt = sizeof(t) / sizeof(t[0]);
    struct block_sample s[3 * (sizeof(t) / sizeof(t[0]))];
    for (size_t i = 0; i < 3 * nt; i++) {
        const size_t k = i % nt;
        s[i] = base_sample();
        s[i].id = 1000 + (int64_t)i;
        s[i].start_ms = 1700000000000 + (int64_t)(i / nt) * 300000;
        s[i].end_ms = s[i].start_ms + 60000;
        s[i].metric_type = t[k].type;
        s[i].unit = t[k].unit;
        s[i].value = t[k].v * (double)(1 + i / nt);
        s[i].value2 = t[k].v2;
        s[i].payload = t[k].payload;
        s[i].utc_offset_min = 60;
        s[i].source = "iPhone";
        s[i].hk_uuid = "E621E1F8-C36C-495A-93FC-0C247A3E6E5F";
    }
    s[0].hk_uuid = "e621e1f8-c36c-495a-93fc-0c247a3e6e5f";
    roundtrip(s, 3 * nt);
}

static void test_refused(void **state)
{
    (void)state;
    unsigned char *b = (unsigned char *)"untouched";
    size_t len = 7;
    struct block_sample s[2] = {base_sample(), base_sample()};
    assert_int_equal(block_encode(s, 0, &b, &len), BLOCK_EINVAL);
    s[1].value = INFINITY;
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    s[1].value = 1;
    s[1].value2 = -INFINITY;
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    s[1].value2 = NAN;
    s[1].quality = INFINITY;
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    s[1].quality = NAN;
    s[1].end_ms = s[1].start_ms - 1;
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    s[1].end_ms = s[1].start_ms;
    s[1].metric_type = "";
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    s[1].metric_type = NULL;
    assert_int_equal(block_encode(s, 2, &b, &len), BLOCK_EINVAL);
    /* Nothing was written on refusal. */
    assert_int_equal(len, 7);
    assert_memory_equal(b, "untouched", 9);
    /* A NaN value is "none": it reads back as none, not as a stored NaN. */
    s[1].metric_type = "steps";
    uint64_t odd_nan = 0x7FF8000000000123ull;
    memcpy(&s[1].value, &odd_nan, sizeof(odd_nan));
    roundtrip(s, 2);
}

/* Damaged bytes: every truncation is refused; every single-byte change
 * either is refused or decodes to some block, and never reads out of
 * bounds (ASan) or loops. */
static void test_corrupt(void **state)
{
    (void)state;
    struct gen g;
    rng_state = 7;
    gen_random(&g, 40);
    unsigned char *b;
    size_t len;
    assert_int_equal(block_encode(g.s, g.n, &b, &len), 0);
    for (size_t cut = 0; cut < len; cut++) {
        struct block_reader *r = NULL;
        int rc = block_reader_open(b, cut, &r);
        if (rc == 0) {
            struct block_sample x;
            size_t got = 0;
            while ((rc = block_reader_next(r, &x, NULL)) == 1)
                got++;
            assert_int_equal(rc, BLOCK_ECORRUPT);
            (void)got;
            block_reader_free(r);
        } else {
            assert_int_equal(rc, BLOCK_ECORRUPT);
        }
    }
    unsigned char *c = malloc(len);
    assert_non_null(c);
    size_t refused = 0;
    for (size_t i = 0; i < len; i++) {
        for (int flip = 1; flip < 256; flip <<= 1) {
            memcpy(c, b, len);
            c[i] ^= (unsigned char)flip;
            struct block_reader *r = NULL;
            int rc = block_reader_open(c, len, &r);
            if (rc == 0) {
                struct block_sample x;
                size_t got = 0;
                while ((rc = block_reader_next(r, &x, NULL)) == 1)
                    assert_true(++got <= block_reader_count(r));
                block_reader_free(r);
            }
            assert_true(rc == 0 || rc == BLOCK_ECORRUPT);
            refused += rc != 0;
        }
    }
    assert_true(refused > 0);
    free(c);
    free(b);
    gen_free(&g);
    struct block_reader *r = NULL;
    assert_int_equal(block_reader_open((const unsigned char *)"CB", 2, &r), BLOCK_ECORRUPT);
    assert_int_equal(block_reader_open(NULL, 0, &r), BLOCK_ECORRUPT);
}

/* ---- format 2: keys that drop their redundant bytes, the payload table -- */

/* n minute heart-rate samples keyed by make_key; the block's size. */
static size_t keyed_block(size_t n, void (*make_key)(size_t i, int64_t start, char out[48]), char (*keys)[48])
{
    struct block_sample *s = calloc(n, sizeof(*s));
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        s[i] = base_sample();
        s[i].id = (int64_t)i + 1;
        s[i].start_ms = 1700000000000 + (int64_t)i * 60000;
        s[i].end_ms = s[i].start_ms;
        s[i].value = 60 + (double)(i % 7);
        if (make_key != NULL) {
            make_key(i, s[i].start_ms, keys[i]);
            s[i].hk_uuid = keys[i];
        }
    }
    size_t len = roundtrip(s, n);
    free(s);
    return len;
}

static void key_v8(size_t i, int64_t start, char out[48]) { v8_key(start, i * 0x9E3779B97F4A7C15ull, 0, out); }
static void key_v8_upper(size_t i, int64_t start, char out[48]) { v8_key(start, i * 0x9E3779B97F4A7C15ull, 1, out); }
/* One key whose time part is not its sample's start: the series keeps 16 B. */
static void key_v8_one_off(size_t i, int64_t start, char out[48])
{
    v8_key(i == 500 ? start + 1 : start, i * 0x9E3779B97F4A7C15ull, 0, out);
}
static void key_hex(size_t i, int64_t start, char out[48])
{
    (void)start;
    snprintf(out, 48, "h:%016" PRIx64 "%016" PRIx64, (uint64_t)(i * 0x9E3779B97F4A7C15ull),
             (uint64_t)(~i * 0xC2B2AE3D27D4EB4Full));
}
static void key_hex_one_upper(size_t i, int64_t start, char out[48])
{
    key_hex(i, start, out);
    if (i == 7)
        out[2] = 'A', out[3] = 'B';
}

/* Content keys cost 10 bytes (their first 6 are the start, already in the
 * block), hex keys 16; a series with one key that does not fit keeps every
 * key whole, and each reads back exactly as written (case included). */
static void test_compact_keys(void **state)
{
    (void)state;
    size_t n = 1000;
    char(*keys)[48] = calloc(n, sizeof(*keys));
    assert_non_null(keys);
    size_t none = keyed_block(n, NULL, keys);
    size_t v8 = keyed_block(n, key_v8, keys) - none;
    size_t v8u = keyed_block(n, key_v8_upper, keys) - none;
    size_t off = keyed_block(n, key_v8_one_off, keys) - none;
    size_t hex = keyed_block(n, key_hex, keys) - none;
    size_t hexu = keyed_block(n, key_hex_one_upper, keys) - none;
    printf("keys per sample: content %.2f B (upper-case %.2f), one off %.2f, hex %.2f, one not hex %.2f\n",
           (double)v8 / (double)n, (double)v8u / (double)n, (double)off / (double)n, (double)hex / (double)n,
           (double)hexu / (double)n);
    /* The keys' column plus a few bytes of flags (which no longer run). */
    assert_true(v8 >= 10 * n && v8 <= 10 * n + 32);
    assert_true(v8u >= 10 * n && v8u <= 10 * n + 32);
    assert_true(off >= 16 * n && off <= 16 * n + 32);
    assert_true(hex >= 16 * n && hex <= 16 * n + 32);
    assert_true(hexu >= 35 * n);
    free(keys);
}

/* Payloads sit in their own table, compressed where that is shorter, and
 * inflated only when a sample's payload is read: the analysis window's
 * read (block_reader_skip_text) never touches them. */
static void test_payload_table(void **state)
{
    (void)state;
    size_t n = 600, text = 0;
    struct block_sample *s = calloc(n, sizeof(*s));
    char(*pay)[160] = calloc(n, sizeof(*pay));
    assert_non_null(s);
    assert_non_null(pay);
    for (size_t i = 0; i < n; i++) {
        s[i] = base_sample();
        s[i].id = (int64_t)i + 1;
        s[i].start_ms = 1700000000000 + (int64_t)i * 60000;
        s[i].end_ms = s[i].start_ms + 60000;
        snprintf(pay[i], sizeof(pay[i]),
                 "{\"tz_offset_min\":-240,\"hk_type\":\"HKQuantityTypeIdentifierHeartRate\",\"source_version\":"
                 "\"11.0\",\"metadata\":{\"HKMetadataKeyHeartRateMotionContext\":\"%zu\"}}",
                 i % 120);
        if (i < 120)
            text += strlen(pay[i]);
        s[i].payload = pay[i];
    }
    unsigned char *b = NULL;
    size_t len = 0;
    assert_int_equal(block_encode(s, n, &b, &len), 0);
    printf("600 samples, 120 distinct payloads of %zu bytes in all: block of %zu bytes\n", text, len);
    assert_true(len < text / 4);
    assert_int_equal(roundtrip(s, n), len);
    /* The frame is checked where the block is opened: a broken magic
     * number (or an old zstd format's), refused. */
    static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    unsigned char *m = NULL;
    for (size_t i = 0; i + 4 <= len && m == NULL; i++)
        if (memcmp(b + i, magic, 4) == 0)
            m = b + i;
    assert_non_null(m);
    struct block_reader *r = NULL;
    struct block_sample x;
    size_t got = 0;
    int rc;
    m[0] ^= 0xFF;
    assert_int_equal(block_reader_open(b, len, &r), BLOCK_ECORRUPT);
    m[0] ^= 0xFF;
    /* Damage inside the frame: the window's read (no payloads) never
     * inflates it and reads every sample; a read of the payloads either
     * answers BLOCK_ECORRUPT or (zstd frames carry no checksum here: the
     * seal authenticates the block) gives other payload text, never a crash. */
    m[12] ^= 0x5A;
    assert_int_equal(block_reader_open(b, len, &r), 0);
    block_reader_skip_text(r, 1);
    while ((rc = block_reader_next(r, &x, NULL)) == 1)
        got++;
    assert_int_equal(rc, 0);
    assert_int_equal(got, n);
    block_reader_free(r);
    assert_int_equal(block_reader_open(b, len, &r), 0);
    int differs = 0;
    for (got = 0; (rc = block_reader_next(r, &x, NULL)) == 1; got++)
        differs |= x.payload == NULL || strcmp(x.payload, s[got].payload) != 0;
    assert_true(rc == BLOCK_ECORRUPT || differs);
    if (rc == BLOCK_ECORRUPT) /* an error sticks */
        assert_int_equal(block_reader_next(r, &x, NULL), BLOCK_ECORRUPT);
    block_reader_free(r);
    free(b);
    free(pay);
    free(s);
}

/* A one-sample format-2 block made by hand, with the payload table given
 * (np, raw, zlen < 128 each). Its sample: type "x", id 1, value 5, the
 * table's first payload. */
static size_t v2_block(unsigned char *out, unsigned np, unsigned raw, unsigned zlen, const unsigned char *tab,
                       size_t tlen)
{
    static const unsigned char head[] = {'C', 'B', 2, 0, 1 /* n */, 1, 1, 'x' /* strings */};
    static const unsigned char tail[] = {
        1, 0, 0, 0, 0, 0,  0,             /* one series: string indexes */
        0,                                /* processing version */
        0, 0, 0,                          /* value modes (scale 0), key mode */
        0,                                /* no runs */
        1, 1, 1, 1, 1, 1,  0, 0, 0, 0, 1, /* column lengths */
        0, 9, 2, 0, 0, 10, 0 /* series 0, F_VALUE|F_PAYLOAD, id +1, start, duration, value +5, payload +0 */};
    size_t k = 0;
    memcpy(out, head, sizeof(head));
    k += sizeof(head);
    out[k++] = (unsigned char)np;
    out[k++] = (unsigned char)raw;
    out[k++] = (unsigned char)zlen;
    memcpy(out + k, tab, tlen);
    k += tlen;
    memcpy(out + k, tail, sizeof(tail));
    return k + sizeof(tail);
}

/* What a payload table must be: no more payloads than samples, a plain one
 * well-formed to its last byte, a compressed one one zstd frame shorter
 * than what it inflates to; each refused where the block is opened. */
static void test_payload_table_refused(void **state)
{
    (void)state;
    unsigned char b[128];
    struct block_reader *r = NULL;
    struct block_sample x;
    static const unsigned char ok[] = {2, '{', '}'}, bad_len[] = {5, '{', '}'}, junk[] = {1, 2, 3, 4, 5};
    size_t len = v2_block(b, 1, 3, 0, ok, sizeof(ok));
    assert_int_equal(block_reader_open(b, len, &r), 0);
    assert_int_equal(block_reader_next(r, &x, NULL), 1);
    assert_string_equal(x.metric_type, "x");
    assert_string_equal(x.payload, "{}");
    assert_true(x.value == 5 && x.id == 1);
    assert_int_equal(block_reader_next(r, &x, NULL), 0);
    block_reader_free(r);
    len = v2_block(b, 2, 3, 0, ok, sizeof(ok)); /* more payloads than samples */
    assert_int_equal(block_reader_open(b, len, &r), BLOCK_ECORRUPT);
    len = v2_block(b, 1, 3, 0, bad_len, sizeof(bad_len)); /* a string past the table */
    assert_int_equal(block_reader_open(b, len, &r), BLOCK_ECORRUPT);
    len = v2_block(b, 0, 0, 5, junk, sizeof(junk)); /* a frame for no table */
    assert_int_equal(block_reader_open(b, len, &r), BLOCK_ECORRUPT);
    len = v2_block(b, 1, 3, 5, junk, sizeof(junk)); /* "compressed" but not shorter, not zstd */
    assert_int_equal(block_reader_open(b, len, &r), BLOCK_ECORRUPT);
}

/* A block written by the release before (format 1: tests/fuzz/corpus/block/
 * mixed) still reads, sample for sample, and is written again as format 2;
 * format 1 can still be written, byte for byte as that release did. */
static void test_format1_still_read(void **state)
{
    (void)state;
    static const unsigned char mixed[] = {
        0x43, 0x42, 0x01, 0x00, 0x06, 0x09, 0x08, 0x64, 0x69, 0x73, 0x74, 0x61, 0x6e, 0x63, 0x65, 0x02, 0x6b, 0x6d,
        0x0b, 0x41, 0x70, 0x70, 0x6c, 0x65, 0x20, 0x57, 0x61, 0x74, 0x63, 0x68, 0x08, 0x57, 0x61, 0x74, 0x63, 0x68,
        0x36, 0x2c, 0x31, 0x24, 0x30, 0x31, 0x39, 0x30, 0x63, 0x35, 0x61, 0x30, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x2d,
        0x37, 0x30, 0x30, 0x30, 0x2d, 0x38, 0x30, 0x30, 0x30, 0x2d, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30,
        0x30, 0x30, 0x30, 0x31, 0x05, 0x76, 0x61, 0x6c, 0x69, 0x64, 0x0a, 0x68, 0x65, 0x61, 0x72, 0x74, 0x5f, 0x72,
        0x61, 0x74, 0x65, 0x09, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0x2f, 0x6d, 0x69, 0x6e, 0x16, 0x7b, 0x22, 0x73, 0x74,
        0x61, 0x67, 0x65, 0x22, 0x3a, 0x22, 0x61, 0x73, 0x6c, 0x65, 0x65, 0x70, 0x5f, 0x72, 0x65, 0x6d, 0x22, 0x7d,
        0x02, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x04, 0x04, 0x00, 0x06, 0x07, 0x02, 0x03, 0x04, 0x05, 0x04, 0x00,
        0x00, 0x14, 0x06, 0x06, 0x05, 0x1a, 0x06, 0x08, 0x02, 0x03, 0x06, 0x2a, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00,
        0x01, 0x21, 0xe1, 0x81, 0x63, 0x35, 0x09, 0xc8, 0x01, 0x00, 0x02, 0x04, 0x80, 0xa0, 0xab, 0xfe, 0xf9, 0x62,
        0xc0, 0xc9, 0xb2, 0xfe, 0xf9, 0x62, 0xff, 0xcc, 0x9c, 0xfe, 0xf9, 0x62, 0xbf, 0xf6, 0xa3, 0xfe, 0xf9, 0x62,
        0x00, 0x00, 0xc0, 0xa9, 0x07, 0x01, 0x00, 0x03, 0x00, 0x7c, 0xec, 0x03, 0x04, 0xec, 0x03, 0x04, 0x9e, 0x01,
        0x46, 0x3f, 0xe0, 0x78, 0x78, 0xd7, 0x04, 0xd7, 0x04, 0xe6, 0x21, 0xe1, 0xf8, 0xc3, 0x6c, 0x49, 0x5a, 0x93,
        0xfc, 0x0c, 0x24, 0x7a, 0x3e, 0x6e, 0x5f, 0xe6, 0x21, 0xe1, 0xf8, 0xc3, 0x6c, 0x49, 0x5a, 0x93, 0xfc, 0x0c,
        0x24, 0x7a, 0x3e, 0x6e, 0x5f, 0x09, 0x63, 0x6f, 0x6e, 0x74, 0x65, 0x6e, 0x74, 0x3a, 0x31, 0x08};
    static const struct {
        int64_t id;
        const char *type;
        double value;
        const char *uuid, *payload;
        int32_t offset;
    } want[] = {
        {100, "distance", 0, NULL, NULL, 60},
        {101, "heart_rate", 62, "E621E1F8-C36C-495A-93FC-0C247A3E6E5F", NULL, 60},
        {102, "distance", 0.0246, "e621e1f8-c36c-495a-93fc-0c247a3e6e5f", NULL, 60},
        {103, "heart_rate", 64, "content:1", NULL, -300},
        {104, "distance", 0.0492, NULL, "{\"tz_offset_min\":-300}", -300},
        {105, "heart_rate", 66, NULL, "{\"stage\":\"asleep_rem\"}", -300},
    };
    size_t n = sizeof(want) / sizeof(want[0]);
    assert_int_equal(mixed[2], 1);
    struct block_reader *r = NULL;
    assert_int_equal(block_reader_open(mixed, sizeof(mixed), &r), 0);
    assert_int_equal(block_reader_count(r), n);
    struct block_sample got[6];
    char uuid[6][48], pay[6][48];
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(block_reader_next(r, &got[i], NULL), 1);
        assert_int_equal(got[i].id, want[i].id);
        assert_string_equal(got[i].metric_type, want[i].type);
        assert_true(fabs(got[i].value - want[i].value) < 1e-12);
        assert_int_equal(got[i].start_ms, 1700000000000 + (int64_t)i * 60000);
        assert_int_equal(got[i].utc_offset_min, want[i].offset);
        if (want[i].uuid == NULL)
            assert_null(got[i].hk_uuid);
        else
            assert_string_equal(got[i].hk_uuid, want[i].uuid);
        if (want[i].payload == NULL)
            assert_null(got[i].payload);
        else
            assert_string_equal(got[i].payload, want[i].payload);
        snprintf(uuid[i], sizeof(uuid[i]), "%s", got[i].hk_uuid ? got[i].hk_uuid : "");
        snprintf(pay[i], sizeof(pay[i]), "%s", got[i].payload ? got[i].payload : "");
        got[i].hk_uuid = got[i].hk_uuid ? uuid[i] : NULL;
        got[i].payload = got[i].payload ? pay[i] : NULL;
    }
    struct block_sample end;
    assert_int_equal(block_reader_next(r, &end, NULL), 0);
    unsigned char *b = NULL;
    size_t len = 0;
    assert_int_equal(block_encode(got, n, &b, &len), 0);
    assert_int_equal(b[2], BLOCK_FORMAT);
    free(b);
    roundtrip(got, n); /* the dictionary strings still belong to r */
    /* SAMPLE_BLOCK_FORMAT=1 (a release that reads only format 1 still
     * runs): the bytes that release wrote. */
    assert_int_equal(block_set_write_format(1), 0);
    assert_int_equal(block_encode(got, n, &b, &len), 0);
    assert_int_equal(block_set_write_format(BLOCK_FORMAT), 0);
    assert_int_equal(len, sizeof(mixed));
    assert_memory_equal(b, mixed, len);
    free(b);
    assert_int_equal(block_set_write_format(0), BLOCK_EINVAL);
    assert_int_equal(block_set_write_format(BLOCK_FORMAT + 1), BLOCK_EINVAL);
    block_reader_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_one_sample),
        cmocka_unit_test(test_100000_samples),
        cmocka_unit_test(test_extreme_timestamps),
        cmocka_unit_test(test_every_type),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_compact_keys),
        cmocka_unit_test(test_payload_table),
        cmocka_unit_test(test_format1_still_read),
        cmocka_unit_test(test_payload_table_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
