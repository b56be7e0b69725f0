/*
 * block.c — the sample block codec (block.h has the format and its sources).
 */
#include "store/block.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

enum {
    COL_SERIES,
    COL_FLAGS,
    COL_ID,
    COL_START,
    COL_DUR,
    COL_VALUE,
    COL_VALUE2,
    COL_QUALITY,
    COL_OFFSET,
    COL_UUID,
    COL_PAYLOAD
};

/* Sample flags. */
#define F_VALUE 0x01u
#define F_VALUE2 0x02u
#define F_QUALITY 0x04u
#define F_PAYLOAD 0x08u
#define F_OFFSET_ONLY 0x10u /* payload is {"tz_offset_min":N}, N the offset */
#define F_OFFSET 0x20u      /* offset differs from the series' previous one */
#define F_UUID_SHIFT 6      /* 0 none, 1 text, 2 lower-case UUID, 3 upper-case UUID */

/* Format 2: a series' key mode (a bit set). */
#define K_V8 0x01u        /* its UUID keys are content keys: the first 6 bytes are start_ms */
#define K_HEX 0x02u       /* its text keys are "h:" and 32 lower-case hex digits */
#define V8_TAIL 10        /* bytes of a content key kept (the other 6 are start_ms) */
#define PAY_MAX_RATIO 256 /* a payload table inflates at most this much (and 4 KiB) */

#define MODE_XOR 0xFFu
#define MAX_SCALE 9
#define SCALED_MAX 9007199254740992.0 /* 2^53: every |k| below is exact in a double */
#define NSTR 6                        /* strings per series */

static const double p10[MAX_SCALE + 1] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};

const char *block_strerror(int rc)
{
    switch (rc) {
    case BLOCK_OK: return "ok";
    case BLOCK_EINVAL: return "sample cannot be encoded";
    case BLOCK_ENOMEM: return "out of memory";
    case BLOCK_ECORRUPT: return "not a valid sample block";
    default: return "unknown block error";
    }
}

/* ---- zstd contexts, one pair per thread --------------------------------------
 * Creating a context costs more than compressing a day's string table
 * (about 10 us against a few), so each thread keeps its own, freed when
 * the thread exits. */

struct zctx {
    ZSTD_CCtx *c;
    ZSTD_DCtx *d;
};

static pthread_key_t zkey;
static pthread_once_t zonce = PTHREAD_ONCE_INIT;
static int zkey_ok;

static void zctx_free(void *p)
{
    struct zctx *z = p;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z);
}

static void zkey_init(void) { zkey_ok = pthread_key_create(&zkey, zctx_free) == 0; }

/* This thread's contexts (created on first use), or NULL without memory. */
static struct zctx *zctx_get(void)
{
    pthread_once(&zonce, zkey_init);
    if (!zkey_ok)
        return NULL;
    struct zctx *z = pthread_getspecific(zkey);
    if (z == NULL) {
        if ((z = calloc(1, sizeof(*z))) == NULL)
            return NULL;
        if (pthread_setspecific(zkey, z) != 0) {
            free(z);
            return NULL;
        }
    }
    return z;
}

/* ---- growable byte buffers ------------------------------------------------ */

struct bbuf {
    unsigned char *p;
    size_t n, cap;
    int oom;
};

static void bb_reserve(struct bbuf *b, size_t extra)
{
    if (b->oom || b->n + extra <= b->cap)
        return;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->n + extra)
        nc *= 2;
    unsigned char *q = realloc(b->p, nc);
    if (q == NULL) {
        b->oom = 1;
        return;
    }
    b->p = q;
    b->cap = nc;
}

static void bb_put(struct bbuf *b, const void *p, size_t n)
{
    bb_reserve(b, n);
    if (!b->oom && n) {
        memcpy(b->p + b->n, p, n);
        b->n += n;
    }
}

static void bb_byte(struct bbuf *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    bb_put(b, &c, 1);
}

static void bb_uvar(struct bbuf *b, uint64_t v)
{
    unsigned char t[10];
    size_t k = 0;
    while (v >= 0x80) {
        t[k++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    t[k++] = (unsigned char)v;
    bb_put(b, t, k);
}

static uint64_t zig(uint64_t v) { return (v << 1) ^ (uint64_t) - (int64_t)(v >> 63); }
static uint64_t unzig(uint64_t v) { return (v >> 1) ^ (uint64_t) - (int64_t)(v & 1); }

static void bb_svar(struct bbuf *b, uint64_t wrapped) { bb_uvar(b, zig(wrapped)); }

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Byte-aligned Gorilla XOR: 0 for an unchanged value, else a header byte
 * 0x40 | leading zero bytes << 3 | trailing zero bytes and the bytes
 * between, most significant first. */
static void bb_xor(struct bbuf *b, uint64_t x)
{
    if (x == 0) {
        bb_byte(b, 0);
        return;
    }
    unsigned lz = 0, tz = 0;
    while (lz < 7 && (x >> (56 - 8 * lz)) == 0)
        lz++;
    while (tz < 7 - lz && (x & (0xFFull << (8 * tz))) == 0)
        tz++;
    bb_byte(b, 0x40u | lz << 3 | tz);
    for (unsigned i = lz; i < 8 - tz; i++)
        bb_byte(b, (unsigned)(x >> (56 - 8 * i)) & 0xFFu);
}

/* ---- the string and series dictionaries (open addressing) ----------------- */

struct dict {
    uint32_t *slot; /* index + 1; 0 empty */
    size_t cap;
};

static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ull; /* FNV-1a */
    return h;
}

struct enc {
    const char **str; /* borrowed */
    size_t *str_len;
    size_t n_str, cap_str;
    struct dict sd;
    uint32_t (*ser)[NSTR];
    int32_t *ser_pv;
    size_t n_ser, cap_ser;
    struct dict rd;
};

static int dict_grow(struct dict *d, size_t entries)
{
    if (entries * 2 < d->cap)
        return 0;
    size_t nc = d->cap ? d->cap * 2 : 64;
    while (entries * 2 >= nc)
        nc *= 2;
    uint32_t *s = calloc(nc, sizeof(*s));
    if (s == NULL)
        return BLOCK_ENOMEM;
    free(d->slot);
    d->slot = s;
    d->cap = nc;
    return 1; /* rehash needed */
}

static uint64_t ser_hash(const uint32_t k[NSTR], int32_t pv)
{
    return hash_bytes(&pv, sizeof(pv), hash_bytes(k, sizeof(uint32_t) * NSTR, 14695981039346656037ull));
}

static int str_index(struct enc *e, const char *s, uint32_t *idx)
{
    if (s == NULL)
        s = "";
    size_t len = strlen(s);
    if (len > BLOCK_MAX_STRING)
        return BLOCK_EINVAL;
    int g = dict_grow(&e->sd, e->n_str + 1);
    if (g < 0)
        return g;
    if (g)
        for (size_t i = 0; i < e->n_str; i++) {
            size_t h = hash_bytes(e->str[i], e->str_len[i], 14695981039346656037ull) & (e->sd.cap - 1);
            while (e->sd.slot[h])
                h = (h + 1) & (e->sd.cap - 1);
            e->sd.slot[h] = (uint32_t)i + 1;
        }
    size_t h = hash_bytes(s, len, 14695981039346656037ull) & (e->sd.cap - 1);
    for (; e->sd.slot[h]; h = (h + 1) & (e->sd.cap - 1)) {
        uint32_t i = e->sd.slot[h] - 1;
        if (e->str_len[i] == len && memcmp(e->str[i], s, len) == 0) {
            *idx = i;
            return 0;
        }
    }
    if (e->n_str == e->cap_str) {
        size_t nc = e->cap_str ? e->cap_str * 2 : 16;
        const char **a = realloc(e->str, nc * sizeof(*a));
        if (a == NULL)
            return BLOCK_ENOMEM;
        e->str = a;
        size_t *l = realloc(e->str_len, nc * sizeof(*l));
        if (l == NULL)
            return BLOCK_ENOMEM;
        e->str_len = l;
        e->cap_str = nc;
    }
    e->str[e->n_str] = s;
    e->str_len[e->n_str] = len;
    e->sd.slot[h] = (uint32_t)e->n_str + 1;
    *idx = (uint32_t)e->n_str++;
    return 0;
}

static int ser_index(struct enc *e, const uint32_t k[NSTR], int32_t pv, uint32_t *idx)
{
    int g = dict_grow(&e->rd, e->n_ser + 1);
    if (g < 0)
        return g;
    if (g)
        for (size_t i = 0; i < e->n_ser; i++) {
            size_t h = ser_hash(e->ser[i], e->ser_pv[i]) & (e->rd.cap - 1);
            while (e->rd.slot[h])
                h = (h + 1) & (e->rd.cap - 1);
            e->rd.slot[h] = (uint32_t)i + 1;
        }
    size_t h = ser_hash(k, pv) & (e->rd.cap - 1);
    for (; e->rd.slot[h]; h = (h + 1) & (e->rd.cap - 1)) {
        uint32_t i = e->rd.slot[h] - 1;
        if (e->ser_pv[i] == pv && memcmp(e->ser[i], k, sizeof(uint32_t) * NSTR) == 0) {
            *idx = i;
            return 0;
        }
    }
    if (e->n_ser == e->cap_ser) {
        size_t nc = e->cap_ser ? e->cap_ser * 2 : 8;
        uint32_t(*a)[NSTR] = realloc(e->ser, nc * sizeof(*a));
        if (a == NULL)
            return BLOCK_ENOMEM;
        e->ser = a;
        int32_t *pvs = realloc(e->ser_pv, nc * sizeof(*pvs));
        if (pvs == NULL)
            return BLOCK_ENOMEM;
        e->ser_pv = pvs;
        e->cap_ser = nc;
    }
    memcpy(e->ser[e->n_ser], k, sizeof(uint32_t) * NSTR);
    e->ser_pv[e->n_ser] = pv;
    e->rd.slot[h] = (uint32_t)e->n_ser + 1;
    *idx = (uint32_t)e->n_ser++;
    return 0;
}

static void enc_free(struct enc *e)
{
    free(e->str);
    free(e->str_len);
    free(e->sd.slot);
    free(e->ser);
    free(e->ser_pv);
    free(e->rd.slot);
}

/* ---- values ------------------------------------------------------------------ */

/* The smallest scale s at which v is exactly k / 10^s, or -1. */
static int min_scale(double v)
{
    for (int s = 0; s <= MAX_SCALE; s++) {
        double m = v * p10[s];
        if (!(fabs(m) < SCALED_MAX))
            return -1;
        double k = (double)(int64_t)nearbyint(m); /* as the decoder sees it: no -0 */
        if (dbits(k / p10[s]) == dbits(v))
            return s;
    }
    return -1;
}

static int fits_scale(double v, int s)
{
    double m = v * p10[s];
    if (!(fabs(m) < SCALED_MAX))
        return 0;
    return dbits((double)(int64_t)nearbyint(m) / p10[s]) == dbits(v);
}

/* Per series and value column: the mode (scale or MODE_XOR). */
static void choose_modes(const struct block_sample *s, size_t n, const uint32_t *ser, size_t n_ser, int which,
                         uint8_t *mode)
{
    for (size_t i = 0; i < n_ser; i++)
        mode[i] = 0;
    for (size_t i = 0; i < n; i++) {
        double v = which ? s[i].value2 : s[i].value;
        if (isnan(v) || mode[ser[i]] == MODE_XOR)
            continue;
        int m = min_scale(v);
        if (m < 0)
            mode[ser[i]] = MODE_XOR;
        else if (m > mode[ser[i]])
            mode[ser[i]] = (uint8_t)m;
    }
    /* A larger scale chosen for a later value must hold the earlier ones too. */
    for (size_t i = 0; i < n; i++) {
        double v = which ? s[i].value2 : s[i].value;
        if (!isnan(v) && mode[ser[i]] != MODE_XOR && !fits_scale(v, mode[ser[i]]))
            mode[ser[i]] = MODE_XOR;
    }
}

/* ---- uuids and offset-only payloads ----------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* 2 for a canonical lower-case UUID, 3 for upper-case (bytes into b), else 0. */
static int uuid_parse(const char *u, unsigned char b[16])
{
    int lower = 0, upper = 0, k = 0;
    if (strlen(u) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int c = (unsigned char)u[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
            continue;
        }
        int h = hexval(c);
        if (h < 0)
            return 0;
        lower |= c >= 'a' && c <= 'f';
        upper |= c >= 'A' && c <= 'F';
        if (k % 2 == 0)
            b[k / 2] = (unsigned char)(h << 4);
        else
            b[k / 2] |= (unsigned char)h;
        k++;
    }
    if (lower && upper)
        return 0;
    return upper ? 3 : 2;
}

static void uuid_format(const unsigned char b[16], int upper, char out[37])
{
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    const char *d = upper ? up : lo;
    int k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[k++] = '-';
        out[k++] = d[b[i] >> 4];
        out[k++] = d[b[i] & 15];
    }
    out[k] = '\0';
}

/*
 * A version-8 content key (apple_export_content_key): bytes 0-5 are the low
 * 48 bits of the sample's start_ms, big-endian, then the version nibble 8
 * and the RFC 9562 variant. Only bytes 6-15 need storing.
 */
static int uuid_is_v8_of(const unsigned char b[16], int64_t start_ms)
{
    uint64_t t = (uint64_t)start_ms;
    for (int i = 0; i < 6; i++)
        if (b[i] != (unsigned char)(t >> (40 - 8 * i)))
            return 0;
    return (b[6] >> 4) == 8 && (b[8] & 0xC0) == 0x80;
}

static void uuid_v8_rebuild(const unsigned char tail[V8_TAIL], int64_t start_ms, unsigned char b[16])
{
    uint64_t t = (uint64_t)start_ms;
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(t >> (40 - 8 * i));
    memcpy(b + 6, tail, V8_TAIL);
}

/* "h:" and 32 lower-case hex digits (the HealthKit route's content key,
 * ingest/hk_upload.c) into 16 bytes; 0 when s is not one. */
static int hexkey_parse(const char *s, unsigned char b[16])
{
    if (s[0] != 'h' || s[1] != ':' || strlen(s) != 34)
        return 0;
    for (int i = 0; i < 32; i++) {
        int c = (unsigned char)s[2 + i], h = hexval(c);
        if (h < 0 || (c >= 'A' && c <= 'F'))
            return 0;
        if (i % 2 == 0)
            b[i / 2] = (unsigned char)(h << 4);
        else
            b[i / 2] |= (unsigned char)h;
    }
    return 1;
}

static void hexkey_format(const unsigned char b[16], char out[35])
{
    static const char lo[] = "0123456789abcdef";
    out[0] = 'h';
    out[1] = ':';
    for (int i = 0; i < 16; i++) {
        out[2 + 2 * i] = lo[b[i] >> 4];
        out[3 + 2 * i] = lo[b[i] & 15];
    }
    out[34] = '\0';
}

/* {"tz_offset_min":N} with N in decimal, no spaces, no leading zeros. */
static size_t offset_payload(int32_t off, char out[40])
{
    static const char pre[] = "{\"tz_offset_min\":";
    char num[16];
    size_t k = 0, o = 0;
    uint32_t v = off < 0 ? (uint32_t)0 - (uint32_t)off : (uint32_t)off;
    do {
        num[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, pre, sizeof(pre) - 1);
    o = sizeof(pre) - 1;
    if (off < 0)
        out[o++] = '-';
    while (k)
        out[o++] = num[--k];
    out[o++] = '}';
    out[o] = '\0';
    return o;
}

/* ---- run-length columns -------------------------------------------------------- */

/*
 * The first RUN_COLUMNS columns (series, flags, id, start, duration) hold one
 * unsigned number per sample, and in regular data long runs of one number
 * (ids +1, a delta-of-delta of 0, the same flags). Each is written either
 * plainly (a varint each; flags a byte each) or as (number, run length - 1)
 * pairs, whichever is shorter; a header byte says which (bit c: column c
 * has runs).
 */
#define RUN_COLUMNS 5
/* Format 2: the payload column (the change of each payload-carrying
 * sample's payload index from its series' last) may be runs too; bit 5 of
 * the run mask, run state RUN_PAYLOAD. */
#define RUN_PAYLOAD RUN_COLUMNS

static size_t uvar_len(uint64_t v)
{
    size_t k = 1;
    while (v >= 0x80) {
        v >>= 7;
        k++;
    }
    return k;
}

/* Write v[0..n) into b; returns 1 when written as runs. */
static int put_run_column(struct bbuf *b, const uint64_t *v, size_t n, int bytes)
{
    size_t plain = 0, rl = 0;
    for (size_t i = 0; i < n; i++)
        plain += bytes ? 1 : uvar_len(v[i]);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && v[j] == v[i]; j++)
            ;
        rl += uvar_len(v[i]) + uvar_len(j - i - 1);
    }
    if (rl < plain) {
        for (size_t i = 0, j; i < n; i = j) {
            for (j = i + 1; j < n && v[j] == v[i]; j++)
                ;
            bb_uvar(b, v[i]);
            bb_uvar(b, j - i - 1);
        }
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (bytes)
            bb_byte(b, (unsigned)v[i]);
        else
            bb_uvar(b, v[i]);
    }
    return 0;
}

/* ---- encode ------------------------------------------------------------------ */

struct ser_state {
    uint64_t start, delta, dur;
    uint64_t v, v2, q; /* last value: scaled k or bits */
    uint64_t pay;      /* last payload index (format 2) */
    int32_t offset;
};

static int sample_ok(const struct block_sample *x)
{
    return x->metric_type && x->metric_type[0] && x->end_ms >= x->start_ms && !isinf(x->value) && !isinf(x->value2) &&
           !isinf(x->quality) && (x->payload == NULL || strlen(x->payload) <= BLOCK_MAX_STRING) &&
           (x->hk_uuid == NULL || strlen(x->hk_uuid) <= BLOCK_MAX_STRING);
}

static void put_value(struct bbuf *b, double v, uint8_t mode, uint64_t *last)
{
    if (mode == MODE_XOR) {
        uint64_t bits = dbits(v);
        bb_xor(b, bits ^ *last);
        *last = bits;
    } else {
        uint64_t k = (uint64_t)(int64_t)nearbyint(v * p10[mode]);
        bb_svar(b, k - *last);
        *last = k;
    }
}

static atomic_int write_format = BLOCK_FORMAT;

int block_set_write_format(int format)
{
    if (format < 1 || format > BLOCK_FORMAT)
        return BLOCK_EINVAL;
    atomic_store(&write_format, format);
    return 0;
}

int block_encode(const struct block_sample *s, size_t n, unsigned char **out, size_t *out_len)
{
    const int format = atomic_load(&write_format);
    struct enc e = {0}, pe = {0}; /* pe: the payloads' table (format 2) */
    struct bbuf col[BLOCK_COLUMNS] = {{0}}, hdr = {0}, dict = {0}, zd = {0};
    uint32_t *ser = NULL, *pidx = NULL;
    uint8_t *mode = NULL, *kmode = NULL, *kind = NULL;
    unsigned char(*kb)[16] = NULL; /* each sample's key as bytes (kind 2, 3 or a hex key) */
    struct ser_state *st = NULL;
    uint64_t *rv[RUN_COLUMNS] = {NULL}, *pv = NULL;
    size_t np = 0;
    unsigned runs = 0;
    int rc = 0;

    if (s == NULL || n == 0 || n > BLOCK_MAX_SAMPLES || out == NULL || out_len == NULL)
        return BLOCK_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!sample_ok(&s[i]))
            return BLOCK_EINVAL;
    if ((ser = malloc(n * sizeof(*ser))) == NULL || (pidx = malloc(n * sizeof(*pidx))) == NULL) {
        free(ser);
        return BLOCK_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint32_t k[NSTR];
        const char *f[NSTR] = {s[i].metric_type, s[i].unit,      s[i].source,
                               s[i].device,      s[i].upload_id, s[i].validation_status};
        for (int j = 0; j < NSTR && rc == 0; j++)
            rc = str_index(&e, f[j], &k[j]);
        if (rc == 0)
            rc = ser_index(&e, k, s[i].processing_version, &ser[i]);
        /* Payloads join the string table: the export's per-sample payloads
         * repeat ({"tz_offset_min":…,"hk_type":…}), so each is stored once. */
        pidx[i] = UINT32_MAX;
        if (rc == 0 && s[i].payload) {
            char opay[40];
            size_t ol = offset_payload(s[i].utc_offset_min, opay);
            if (strlen(s[i].payload) != ol || memcmp(s[i].payload, opay, ol) != 0)
                rc = str_index(format >= 2 ? &pe : &e, s[i].payload, &pidx[i]);
        }
    }
    if (rc == 0 && ((mode = malloc(e.n_ser * 2)) == NULL || (st = calloc(e.n_ser, sizeof(*st))) == NULL ||
                    (kmode = calloc(e.n_ser, 2)) == NULL || (kind = calloc(n, 1)) == NULL ||
                    (kb = malloc(n * sizeof(*kb))) == NULL))
        rc = BLOCK_ENOMEM;
    for (int c = 0; c < RUN_COLUMNS && rc == 0; c++)
        if ((rv[c] = malloc(n * sizeof(uint64_t))) == NULL)
            rc = BLOCK_ENOMEM;
    if (rc == 0 && format >= 2 && (pv = malloc(n * sizeof(uint64_t))) == NULL)
        rc = BLOCK_ENOMEM;
    if (rc != 0)
        goto done;
    choose_modes(s, n, ser, e.n_ser, 0, mode);
    choose_modes(s, n, ser, e.n_ser, 1, mode + e.n_ser);
    /* Key modes: a series whose every UUID key is its start's content key
     * stores 10 bytes of each, one whose every text key is a hex key 16. */
    for (size_t i = 0; i < n; i++) {
        if (s[i].hk_uuid == NULL || s[i].hk_uuid[0] == '\0')
            continue;
        int uk = uuid_parse(s[i].hk_uuid, kb[i]);
        kind[i] = (uint8_t)(uk ? uk : 1);
        unsigned bit = uk ? K_V8 : K_HEX;
        int ok = uk ? uuid_is_v8_of(kb[i], s[i].start_ms) : hexkey_parse(s[i].hk_uuid, kb[i]);
        kmode[ser[i]] |= (uint8_t)bit;
        if (!ok)
            kmode[e.n_ser + ser[i]] |= (uint8_t)bit;
    }
    for (size_t i = 0; i < e.n_ser; i++)
        kmode[i] = format >= 2 ? (uint8_t)(kmode[i] & ~kmode[e.n_ser + i]) : 0;

    uint64_t last_id = 0;
    for (size_t i = 0; i < n; i++) {
        const struct block_sample *x = &s[i];
        struct ser_state *t = &st[ser[i]];
        unsigned flags = 0;
        int uk = kind[i];
        if (!isnan(x->value))
            flags |= F_VALUE;
        if (!isnan(x->value2))
            flags |= F_VALUE2;
        if (!isnan(x->quality))
            flags |= F_QUALITY;
        if (x->payload)
            flags |= pidx[i] == UINT32_MAX ? F_OFFSET_ONLY : F_PAYLOAD;
        if (x->utc_offset_min != t->offset)
            flags |= F_OFFSET;
        flags |= (unsigned)uk << F_UUID_SHIFT;
        rv[COL_SERIES][i] = ser[i];
        rv[COL_FLAGS][i] = flags;
        rv[COL_ID][i] = zig((uint64_t)x->id - last_id);
        last_id = (uint64_t)x->id;
        uint64_t d = (uint64_t)x->start_ms - t->start;
        rv[COL_START][i] = zig(d - t->delta);
        t->start = (uint64_t)x->start_ms;
        t->delta = d;
        uint64_t dur = (uint64_t)x->end_ms - (uint64_t)x->start_ms;
        rv[COL_DUR][i] = zig(dur - t->dur);
        t->dur = dur;
        if (flags & F_VALUE)
            put_value(&col[COL_VALUE], x->value, mode[ser[i]], &t->v);
        if (flags & F_VALUE2)
            put_value(&col[COL_VALUE2], x->value2, mode[e.n_ser + ser[i]], &t->v2);
        if (flags & F_QUALITY)
            put_value(&col[COL_QUALITY], x->quality, MODE_XOR, &t->q);
        if (flags & F_OFFSET) {
            bb_svar(&col[COL_OFFSET], (uint64_t)(int64_t)x->utc_offset_min);
            t->offset = x->utc_offset_min;
        }
        if (uk == 1 && (kmode[ser[i]] & K_HEX)) {
            bb_put(&col[COL_UUID], kb[i], 16);
        } else if (uk == 1) {
            size_t l = strlen(x->hk_uuid);
            bb_uvar(&col[COL_UUID], l);
            bb_put(&col[COL_UUID], x->hk_uuid, l);
        } else if (uk && (kmode[ser[i]] & K_V8)) {
            bb_put(&col[COL_UUID], kb[i] + 16 - V8_TAIL, V8_TAIL);
        } else if (uk) {
            bb_put(&col[COL_UUID], kb[i], 16);
        }
        if ((flags & F_PAYLOAD) && format >= 2) {
            /* The change from its series' last payload: mostly none. */
            pv[np++] = zig((uint64_t)pidx[i] - t->pay);
            t->pay = pidx[i];
        } else if (flags & F_PAYLOAD) {
            bb_uvar(&col[COL_PAYLOAD], pidx[i]);
        }
    }

    for (int c = 0; c < RUN_COLUMNS; c++)
        if (put_run_column(&col[c], rv[c], n, c == COL_FLAGS))
            runs |= 1u << c;
    if (np != 0 && put_run_column(&col[COL_PAYLOAD], pv, np, 0))
        runs |= 1u << RUN_PAYLOAD;

    /* The payload table, then zstd over it where that is shorter: the
     * export's per-sample JSON payloads repeat most of their text. */
    for (size_t i = 0; i < pe.n_str; i++) {
        bb_uvar(&dict, pe.str_len[i]);
        bb_put(&dict, pe.str[i], pe.str_len[i]);
    }
    struct zctx *zc = NULL;
    if (!dict.oom && dict.n >= 64 && (zc = zctx_get()) != NULL &&
        (zc->c != NULL || (zc->c = ZSTD_createCCtx()) != NULL)) {
        size_t bound = ZSTD_compressBound(dict.n);
        bb_reserve(&zd, bound);
        zd.oom = 0;         /* compression is optional: without memory for it, */
        if (zd.p != NULL) { /* the table goes plain */
            size_t z = ZSTD_compressCCtx(zc->c, zd.p, bound, dict.p, dict.n, 3);
            if (!ZSTD_isError(z) && z + 8 < dict.n && dict.n <= PAY_MAX_RATIO * z + 4096)
                zd.n = z;
        }
    }
    bb_put(&hdr, "CB", 2);
    bb_byte(&hdr, (unsigned)format);
    bb_byte(&hdr, 0);
    bb_uvar(&hdr, n);
    bb_uvar(&hdr, e.n_str);
    for (size_t i = 0; i < e.n_str; i++) {
        bb_uvar(&hdr, e.str_len[i]);
        bb_put(&hdr, e.str[i], e.str_len[i]);
    }
    if (format >= 2) {
        bb_uvar(&hdr, pe.n_str);
        bb_uvar(&hdr, dict.n);
        bb_uvar(&hdr, zd.n);
        if (zd.n)
            bb_put(&hdr, zd.p, zd.n);
        else
            bb_put(&hdr, dict.p, dict.n);
    }
    bb_uvar(&hdr, e.n_ser);
    for (size_t i = 0; i < e.n_ser; i++) {
        for (int j = 0; j < NSTR; j++)
            bb_uvar(&hdr, e.ser[i][j]);
        bb_svar(&hdr, (uint64_t)(int64_t)e.ser_pv[i]);
        bb_byte(&hdr, mode[i]);
        bb_byte(&hdr, mode[e.n_ser + i]);
        if (format >= 2)
            bb_byte(&hdr, kmode[i]);
    }
    bb_byte(&hdr, runs);
    for (int c = 0; c < BLOCK_COLUMNS; c++)
        bb_uvar(&hdr, col[c].n);
    for (int c = 0; c < BLOCK_COLUMNS; c++)
        bb_put(&hdr, col[c].p, col[c].n);
    rc = hdr.oom || dict.oom || zd.oom ? BLOCK_ENOMEM : 0;
    for (int c = 0; c < BLOCK_COLUMNS; c++)
        if (col[c].oom)
            rc = BLOCK_ENOMEM;
    if (rc == 0) {
        *out = hdr.p;
        *out_len = hdr.n;
        hdr.p = NULL;
    }
done:
    for (int c = 0; c < BLOCK_COLUMNS; c++)
        free(col[c].p);
    free(hdr.p);
    free(dict.p);
    free(zd.p);
    free(ser);
    free(pidx);
    free(mode);
    free(kmode);
    free(kind);
    free(kb);
    free(st);
    for (int c = 0; c < RUN_COLUMNS; c++)
        free(rv[c]);
    free(pv);
    enc_free(&e);
    enc_free(&pe);
    return rc;
}

/* ---- decode ------------------------------------------------------------------ */

struct cur {
    const unsigned char *p, *end;
};

static inline int get_uvar(struct cur *c, uint64_t *v)
{
    uint64_t r = 0;
    if (c->p < c->end && *c->p < 0x80) { /* the common one-byte case */
        *v = *c->p++;
        return 0;
    }
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end)
            return BLOCK_ECORRUPT;
        unsigned b = *c->p++;
        if (shift == 63 && b > 1)
            return BLOCK_ECORRUPT;
        r |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return BLOCK_ECORRUPT;
}

static int get_svar(struct cur *c, uint64_t *v)
{
    uint64_t u;
    if (get_uvar(c, &u) != 0)
        return BLOCK_ECORRUPT;
    *v = unzig(u);
    return 0;
}

static int get_byte(struct cur *c, unsigned *v)
{
    if (c->p >= c->end)
        return BLOCK_ECORRUPT;
    *v = *c->p++;
    return 0;
}

static int get_bytes(struct cur *c, size_t n, const unsigned char **p)
{
    if ((size_t)(c->end - c->p) < n)
        return BLOCK_ECORRUPT;
    *p = c->p;
    c->p += n;
    return 0;
}

static int get_xor(struct cur *c, uint64_t *x)
{
    unsigned h, b;
    if (get_byte(c, &h) != 0)
        return BLOCK_ECORRUPT;
    if (h == 0) {
        *x = 0;
        return 0;
    }
    unsigned lz = (h >> 3) & 7, tz = h & 7;
    if ((h & 0xC0) != 0x40 || lz + tz > 7)
        return BLOCK_ECORRUPT;
    uint64_t r = 0;
    for (unsigned i = lz; i < 8 - tz; i++) {
        if (get_byte(c, &b) != 0)
            return BLOCK_ECORRUPT;
        r |= (uint64_t)b << (56 - 8 * i);
    }
    if (r == 0)
        return BLOCK_ECORRUPT;
    *x = r;
    return 0;
}

struct block_reader {
    size_t n, i;
    char **str;
    size_t n_str;
    struct block_series *ser;
    uint8_t *mode;  /* 2 per series */
    uint8_t *kmode; /* 1 per series (0 in format 1) */
    /* Format 2's payload table (format 1's payloads are in str): n_pay
     * strings in pay_raw bytes, at pay_src (a zstd frame of pay_z bytes, or
     * plain when pay_z is 0); pay is filled on the first payload read. */
    size_t n_pay, pay_raw, pay_z;
    const unsigned char *pay_src;
    char **pay, *pay_arena;
    struct ser_state *st;
    size_t n_ser;
    struct cur col[BLOCK_COLUMNS];
    struct run {
        int on;
        uint64_t v, left; /* current number and how many more samples it covers */
    } run[RUN_COLUMNS + 1];
    uint64_t last_id;
    int no_text; /* block_reader_skip_text */
    int format;
    int err; /* the first error block_reader_next returned */
    char uuid[37];
    struct tbuf {
        char *p;
        size_t cap;
    } utext, ptext; /* the current sample's hk_uuid text and payload */
};

void block_reader_free(struct block_reader *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_str; i++)
        free(r->str[i]);
    free(r->str);
    free(r->ser);
    free(r->mode);
    free(r->kmode);
    free(r->pay);
    free(r->pay_arena);
    free(r->st);
    free(r->utext.p);
    free(r->ptext.p);
    free(r);
}

size_t block_reader_count(const struct block_reader *r) { return r->n; }
void block_reader_skip_text(struct block_reader *r, int skip) { r->no_text = skip != 0; }
size_t block_reader_series_count(const struct block_reader *r) { return r->n_ser; }

const struct block_series *block_reader_series(const struct block_reader *r, size_t i)
{
    return i < r->n_ser ? &r->ser[i] : NULL;
}

/* A plain payload table: n strings (length, bytes without NUL) in exactly
 * len bytes. 0 or BLOCK_ECORRUPT. */
static int check_payload_table(const unsigned char *p, size_t len, size_t n)
{
    struct cur c = {p, p + len};
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        const unsigned char *q;
        if (get_uvar(&c, &v) != 0 || v > BLOCK_MAX_STRING || get_bytes(&c, (size_t)v, &q) != 0 ||
            memchr(q, 0, (size_t)v) != NULL)
            return BLOCK_ECORRUPT;
    }
    return c.p == c.end ? 0 : BLOCK_ECORRUPT;
}

int block_reader_open(const unsigned char *p, size_t len, struct block_reader **out)
{
    struct cur c = {p, p + len};
    struct block_reader *r = NULL;
    uint64_t n, ns, nr, v;
    unsigned b;
    const unsigned char *q;
    int rc = BLOCK_ECORRUPT;

    if (p == NULL || len < 4 || p[0] != 'C' || p[1] != 'B' || p[2] < 1 || p[2] > BLOCK_FORMAT || p[3] != 0)
        return BLOCK_ECORRUPT;
    int format = p[2];
    c.p += 4;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return BLOCK_ENOMEM;
    r->format = format;
    /* Every string, series and sample takes at least one byte, so the
     * counts are bounded by len (a payload table's by its inflated size,
     * at most PAY_MAX_RATIO times its bytes) and so is every allocation. */
    if (get_uvar(&c, &n) != 0 || n == 0 || n > BLOCK_MAX_SAMPLES || n > len)
        goto fail;
    r->n = (size_t)n;
    if (get_uvar(&c, &ns) != 0 || ns == 0 || ns > len)
        goto fail;
    if ((r->str = calloc((size_t)ns, sizeof(*r->str))) == NULL)
        goto oom;
    for (; r->n_str < ns; r->n_str++) {
        if (get_uvar(&c, &v) != 0 || v > BLOCK_MAX_STRING || get_bytes(&c, (size_t)v, &q) != 0 ||
            memchr(q, 0, (size_t)v) != NULL)
            goto fail;
        if ((r->str[r->n_str] = malloc((size_t)v + 1)) == NULL)
            goto oom;
        memcpy(r->str[r->n_str], q, (size_t)v);
        r->str[r->n_str][v] = '\0';
    }
    if (format >= 2) {
        /* The payload table. Every payload is some sample's (np <= n), a
         * compressed one is exactly one zstd frame (current format, no
         * trailing frame) of its stated size and shorter than it; a plain
         * one is checked here, a compressed one when block_reader_next
         * first needs a payload and inflates it. */
        uint64_t np, raw, zlen, left;
        if (get_uvar(&c, &np) != 0 || get_uvar(&c, &raw) != 0 || get_uvar(&c, &zlen) != 0 || np > n || np > raw ||
            (np == 0) != (raw == 0))
            goto fail;
        left = (uint64_t)(c.end - c.p);
        if (zlen > left || (zlen == 0 && raw > left) ||
            (zlen != 0 && (zlen >= raw || raw > PAY_MAX_RATIO * zlen + 4096)))
            goto fail;
        if (get_bytes(&c, (size_t)(zlen ? zlen : raw), &q) != 0)
            goto fail;
        if (zlen != 0 &&
            (zlen < 4 ||
             ((uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24) != ZSTD_MAGICNUMBER ||
             ZSTD_getFrameContentSize(q, (size_t)zlen) != raw || ZSTD_findFrameCompressedSize(q, (size_t)zlen) != zlen))
            goto fail;
        r->n_pay = (size_t)np;
        r->pay_raw = (size_t)raw;
        r->pay_z = (size_t)zlen;
        r->pay_src = q;
        if (zlen == 0 && (rc = check_payload_table(r->pay_src, r->pay_raw, r->n_pay)) != 0)
            goto fail;
        rc = BLOCK_ECORRUPT;
    }
    if (get_uvar(&c, &nr) != 0 || nr == 0 || nr > len || nr > UINT32_MAX)
        goto fail;
    if ((r->ser = calloc((size_t)nr, sizeof(*r->ser))) == NULL || (r->mode = malloc((size_t)nr * 2)) == NULL ||
        (r->kmode = calloc((size_t)nr, 1)) == NULL || (r->st = calloc((size_t)nr, sizeof(*r->st))) == NULL)
        goto oom;
    r->n_ser = (size_t)nr;
    for (size_t i = 0; i < r->n_ser; i++) {
        const char *f[NSTR];
        for (int j = 0; j < NSTR; j++) {
            if (get_uvar(&c, &v) != 0 || v >= ns)
                goto fail;
            f[j] = r->str[v];
        }
        if (f[0][0] == '\0')
            goto fail;
        r->ser[i] = (struct block_series){f[0], f[1], f[2], f[3], f[4], f[5], 0};
        if (get_svar(&c, &v) != 0 || (int64_t)v < INT32_MIN || (int64_t)v > INT32_MAX)
            goto fail;
        r->ser[i].processing_version = (int32_t)(int64_t)v;
        for (int j = 0; j < 2; j++) {
            if (get_byte(&c, &b) != 0 || (b != MODE_XOR && b > MAX_SCALE))
                goto fail;
            r->mode[2 * i + (size_t)j] = (uint8_t)b;
        }
        if (format >= 2) {
            if (get_byte(&c, &b) != 0 || (b & ~(K_V8 | K_HEX)) != 0)
                goto fail;
            r->kmode[i] = (uint8_t)b;
        }
    }
    uint64_t cl[BLOCK_COLUMNS];
    if (get_byte(&c, &b) != 0 || b >> (RUN_COLUMNS + (format >= 2)))
        goto fail;
    for (int k = 0; k <= RUN_PAYLOAD; k++)
        r->run[k].on = (b >> k) & 1;
    for (int k = 0; k < BLOCK_COLUMNS; k++)
        if (get_uvar(&c, &cl[k]) != 0)
            goto fail;
    for (int k = 0; k < BLOCK_COLUMNS; k++) {
        if (get_bytes(&c, (size_t)cl[k], &q) != 0)
            goto fail;
        r->col[k] = (struct cur){q, q + cl[k]};
    }
    if (c.p != c.end)
        goto fail;
    *out = r;
    return 0;
oom:
    rc = BLOCK_ENOMEM;
fail:
    block_reader_free(r);
    return rc;
}

/* A run column's next number (plain varint, a byte, or from its runs). A
 * run covers at most the samples left (runs left over at the end are
 * corruption, block_reader_next). */
static inline int get_run_at(struct block_reader *r, struct run *u, struct cur *col, int bytes, uint64_t *v)
{
    if (!u->on) {
        if (bytes) {
            unsigned b;
            if (get_byte(col, &b) != 0)
                return BLOCK_ECORRUPT;
            *v = b;
            return 0;
        }
        return get_uvar(col, v);
    }
    if (u->left == 0) {
        uint64_t len;
        if (get_uvar(col, &u->v) != 0 || get_uvar(col, &len) != 0 || len >= r->n - r->i)
            return BLOCK_ECORRUPT;
        u->left = len + 1;
    }
    u->left--;
    *v = u->v;
    return 0;
}

/* Column k's next number. */
static inline int get_run(struct block_reader *r, int k, uint64_t *v)
{
    return get_run_at(r, &r->run[k], &r->col[k], k == COL_FLAGS, v);
}

static int get_value(struct cur *c, uint8_t mode, uint64_t *last, double *v)
{
    uint64_t d;
    if (mode == MODE_XOR) {
        if (get_xor(c, &d) != 0)
            return BLOCK_ECORRUPT;
        *last ^= d;
        *v = bitsd(*last);
    } else {
        if (get_svar(c, &d) != 0)
            return BLOCK_ECORRUPT;
        *last += d;
        double k = (double)(int64_t)*last;
        if (!(fabs(k) < SCALED_MAX))
            return BLOCK_ECORRUPT;
        *v = k / p10[mode];
    }
    return isnan(*v) || isinf(*v) ? BLOCK_ECORRUPT : 0;
}

/* Copy n bytes into a reader's text buffer as a C string. */
static int take_text(struct tbuf *b, const unsigned char *p, size_t n)
{
    if (memchr(p, 0, n) != NULL)
        return BLOCK_ECORRUPT;
    if (n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < n + 1)
            nc *= 2;
        char *t = realloc(b->p, nc);
        if (t == NULL)
            return BLOCK_ENOMEM;
        b->p = t;
        b->cap = nc;
    }
    memcpy(b->p, p, n);
    b->p[n] = '\0';
    return 0;
}

/* Inflate and check format 2's payload table (once per reader). */
static int load_payloads(struct block_reader *r)
{
    const unsigned char *src = r->pay_src;
    unsigned char *plain = NULL;
    if (r->pay_z != 0) {
        struct zctx *zc = zctx_get();
        if (zc == NULL || (zc->d == NULL && (zc->d = ZSTD_createDCtx()) == NULL) ||
            (plain = malloc(r->pay_raw)) == NULL)
            return BLOCK_ENOMEM;
        size_t got = ZSTD_decompressDCtx(zc->d, plain, r->pay_raw, r->pay_src, r->pay_z);
        if (ZSTD_isError(got) || got != r->pay_raw) {
            free(plain);
            return BLOCK_ECORRUPT;
        }
        src = plain;
    }
    /* Each string gets its NUL in the arena: n_pay <= pay_raw. */
    struct cur c = {src, src + r->pay_raw};
    int rc = BLOCK_ENOMEM;
    if ((r->pay = malloc(r->n_pay * sizeof(*r->pay))) == NULL || (r->pay_arena = malloc(r->pay_raw + r->n_pay)) == NULL)
        goto done;
    rc = BLOCK_ECORRUPT;
    char *at = r->pay_arena;
    for (size_t i = 0; i < r->n_pay; i++) {
        uint64_t v;
        const unsigned char *q;
        if (get_uvar(&c, &v) != 0 || v > BLOCK_MAX_STRING || get_bytes(&c, (size_t)v, &q) != 0 ||
            memchr(q, 0, (size_t)v) != NULL)
            goto done;
        memcpy(at, q, (size_t)v);
        at[v] = '\0';
        r->pay[i] = at;
        at += v + 1;
    }
    rc = c.p == c.end ? 0 : BLOCK_ECORRUPT;
done:
    free(plain);
    if (rc != 0) {
        free(r->pay);
        free(r->pay_arena);
        r->pay = NULL;
        r->pay_arena = NULL;
    }
    return rc;
}

static int reader_next(struct block_reader *r, struct block_sample *out, uint32_t *series)
{
    uint64_t si, v, d, fl;
    unsigned flags;
    const unsigned char *q;
    char opay[40];

    if (r->i == r->n) {
        for (int k = 0; k < BLOCK_COLUMNS; k++)
            if (r->col[k].p != r->col[k].end)
                return BLOCK_ECORRUPT;
        if (r->run[RUN_PAYLOAD].left != 0)
            return BLOCK_ECORRUPT;
        return 0;
    }
    if (get_run(r, COL_SERIES, &si) != 0 || si >= r->n_ser || get_run(r, COL_FLAGS, &fl) != 0 || fl > 0xFF)
        return BLOCK_ECORRUPT;
    flags = (unsigned)fl;
    if ((flags & F_PAYLOAD) && (flags & F_OFFSET_ONLY))
        return BLOCK_ECORRUPT;
    struct ser_state *t = &r->st[si];
    const struct block_series *sr = &r->ser[si];
    struct block_sample x = {0};
    x.metric_type = sr->metric_type;
    x.unit = sr->unit;
    x.source = sr->source;
    x.device = sr->device;
    x.upload_id = sr->upload_id;
    x.validation_status = sr->validation_status;
    x.processing_version = sr->processing_version;
    x.value = x.value2 = x.quality = NAN;
    if (get_run(r, COL_ID, &d) != 0)
        return BLOCK_ECORRUPT;
    r->last_id += unzig(d);
    x.id = (int64_t)r->last_id;
    if (get_run(r, COL_START, &d) != 0)
        return BLOCK_ECORRUPT;
    t->delta += unzig(d);
    t->start += t->delta;
    x.start_ms = (int64_t)t->start;
    if (get_run(r, COL_DUR, &d) != 0)
        return BLOCK_ECORRUPT;
    t->dur += unzig(d);
    x.end_ms = (int64_t)(t->start + t->dur);
    if (x.end_ms < x.start_ms)
        return BLOCK_ECORRUPT;
    if ((flags & F_VALUE) && get_value(&r->col[COL_VALUE], r->mode[2 * si], &t->v, &x.value) != 0)
        return BLOCK_ECORRUPT;
    if ((flags & F_VALUE2) && get_value(&r->col[COL_VALUE2], r->mode[2 * si + 1], &t->v2, &x.value2) != 0)
        return BLOCK_ECORRUPT;
    if ((flags & F_QUALITY) && get_value(&r->col[COL_QUALITY], MODE_XOR, &t->q, &x.quality) != 0)
        return BLOCK_ECORRUPT;
    if (flags & F_OFFSET) {
        if (get_svar(&r->col[COL_OFFSET], &v) != 0 || (int64_t)v < INT32_MIN || (int64_t)v > INT32_MAX ||
            (int32_t)(int64_t)v == t->offset)
            return BLOCK_ECORRUPT;
        t->offset = (int32_t)(int64_t)v;
    }
    x.utc_offset_min = t->offset;
    int rc = 0;
    switch (flags >> F_UUID_SHIFT) {
    case 0: break;
    case 1:
        if (r->kmode[si] & K_HEX) {
            if (get_bytes(&r->col[COL_UUID], 16, &q) != 0)
                return BLOCK_ECORRUPT;
            if (r->no_text)
                break;
            hexkey_format(q, r->uuid);
            x.hk_uuid = r->uuid;
            break;
        }
        if (get_uvar(&r->col[COL_UUID], &v) != 0 || v == 0 || v > BLOCK_MAX_STRING ||
            get_bytes(&r->col[COL_UUID], (size_t)v, &q) != 0)
            return BLOCK_ECORRUPT;
        if (r->no_text)
            break;
        if ((rc = take_text(&r->utext, q, (size_t)v)) != 0)
            return rc;
        x.hk_uuid = r->utext.p;
        break;
    default:
        if (r->kmode[si] & K_V8) {
            unsigned char full[16];
            if (get_bytes(&r->col[COL_UUID], V8_TAIL, &q) != 0 || (q[0] >> 4) != 8 || (q[2] & 0xC0) != 0x80)
                return BLOCK_ECORRUPT;
            if (r->no_text)
                break;
            uuid_v8_rebuild(q, x.start_ms, full);
            uuid_format(full, (flags >> F_UUID_SHIFT) == 3, r->uuid);
        } else {
            if (get_bytes(&r->col[COL_UUID], 16, &q) != 0)
                return BLOCK_ECORRUPT;
            if (r->no_text)
                break;
            uuid_format(q, (flags >> F_UUID_SHIFT) == 3, r->uuid);
        }
        x.hk_uuid = r->uuid;
        break;
    }
    if (flags & F_PAYLOAD) {
        int v2 = r->format >= 2;
        if (v2) {
            if (get_run_at(r, &r->run[RUN_PAYLOAD], &r->col[COL_PAYLOAD], 0, &d) != 0)
                return BLOCK_ECORRUPT;
            t->pay += unzig(d);
            v = t->pay;
        } else if (get_uvar(&r->col[COL_PAYLOAD], &v) != 0) {
            return BLOCK_ECORRUPT;
        }
        if (v >= (v2 ? r->n_pay : r->n_str))
            return BLOCK_ECORRUPT;
        if (v2 && !r->no_text && r->pay == NULL && (rc = load_payloads(r)) != 0)
            return rc;
        if (!r->no_text)
            x.payload = v2 ? r->pay[v] : r->str[v];
    } else if ((flags & F_OFFSET_ONLY) && !r->no_text) {
        size_t l = offset_payload(x.utc_offset_min, opay);
        if ((rc = take_text(&r->ptext, (const unsigned char *)opay, l)) != 0)
            return rc;
        x.payload = r->ptext.p;
    }
    r->i++;
    *out = x;
    if (series)
        *series = (uint32_t)si;
    return 1;
}

/* An error sticks: after one, the columns are part-consumed. */
int block_reader_next(struct block_reader *r, struct block_sample *out, uint32_t *series)
{
    if (r->err != 0)
        return r->err;
    int rc = reader_next(r, out, series);
    if (rc < 0)
        r->err = rc;
    return rc;
}
