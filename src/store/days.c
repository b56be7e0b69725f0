/*
 * days.c — a user's samples packed per UTC day (migration 006).
 *
 * The analysis window is a week of one user's samples: about 20,000 rows of
 * health_samples for a week of minute data. Read row by row, that cost the
 * database more than the analysis itself cost the worker (an index probe, a
 * heap tuple and a result row each; docs/insights.md has the profile). So
 * every sample is also written, in the same transaction, into sample_days:
 * per (user, UTC day) the day's samples packed into bytes, and the window
 * reads a few such rows instead.
 *
 * A day is one or more rows (in id order) whose bytes are a sequence of
 * segments. Each insert of samples adds a row holding its segments for that
 * day: a plain INSERT, nothing read back or rewritten. When a day has more
 * than DAY_MAX_ROWS rows they are merged into one (their bytes
 * concatenated), which bounds the rows a window reads. Deleting an upload
 * rewrites its days from health_samples, which stays the source of truth.
 * A segment is self-contained, so rows and merges are mere concatenation:
 *
 *   header, 52 bytes:  u8 magic 0xD1, u8 0, u16 0, u32 n_strings,
 *                      u32 n_records, u32 byte length of the whole segment,
 *                      char upload_id[36] (zero-padded; all zeros when the
 *                      samples have no upload)
 *   strings:           n_strings x (u32 length, bytes); types, sources and
 *                      devices once each, payloads as they come
 *   records, 36 bytes: i64 start_ms, i64 end_ms, f64 value (NaN for NULL),
 *                      i32 utc_offset_min, u16 type, u16 source, u16 device,
 *                      u16 payload (string indexes; payload 0xFFFF: none,
 *                      0xFFFE: just {"tz_offset_min":N} with the record's N)
 *
 * all little-endian. Records are sorted by start_ms within a segment (ties
 * in insertion order).
 *
 * Since issue #19 segments are written as sample blocks (src/store/block.h):
 * the same 52-byte header with magic 0xD2 (string count 0), then one block
 * of the records in the same order: type, source, device and payload as
 * strings, start, end, value and offset; ids, units and uuids are not kept
 * (the rows have them). About 5 bytes a minute sample instead of 36. A
 * segment the block format cannot hold (an infinite value, a string over
 * 16 MiB) is written the 0xD1 way; both kinds are read. The window order is (start_ms, id), and on
 * PostgreSQL every writer of a user's samples first takes that user's
 * advisory lock, so row ids follow append order and a stable merge of the
 * segments by start_ms is exactly that order (SQLite has one writer).
 *
 * A payload that only repeats the offset ({"tz_offset_min":N}) is not
 * copied, only marked: the offset has its field, and the text is made again
 * when a window asks for that type's payloads.
 *
 * Rolling deploys: the previous release writes samples without days. Its
 * uploads keep uploads.days_indexed = 0 (the column's default); while a user
 * has such an upload the window is read from the rows, and
 * store_sample_days_heal (run by the analysis job) rebuilds the days those
 * uploads touched. An upload the previous release deletes leaves its
 * segments behind; the window drops segments whose upload no longer exists.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/block.h"
#include "store/store_int.h"

#define DAY_MS 86400000LL
#define SEG_MAGIC 0xD1
#define SEG_BLOCK_MAGIC 0xD2
#define SEG_HDR 52
#define SEG_UPLOAD 36
#define REC_SIZE 36
#define SEG_MAX_RECORDS 4096
#define NO_STR 0xFFFFu
#define OFFSET_ONLY 0xFFFEu /* payload was {"tz_offset_min":N}, N the record's offset */
#define DICT_MAX 64

int64_t store_day_of(int64_t ms)
{
    int64_t d = ms / DAY_MS;
    return ms % DAY_MS < 0 ? d - 1 : d;
}

/* ---- little-endian fields -------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* Make room for one more element in a doubling array (first capacity
 * `first`): p is the address of the array's pointer (any object pointer
 * type, copied through memcpy so no lvalue of another type touches it);
 * it and *cap change only on success. */
static int grow(void *p, size_t *cap, size_t elem, size_t first)
{
    void *old, *q;
    size_t nc = *cap ? *cap * 2 : first;
    memcpy(&old, p, sizeof(old));
    if ((q = realloc(old, nc * elem)) == NULL)
        return STORE_ENOMEM;
    memcpy(p, &q, sizeof(q));
    *cap = nc;
    return 0;
}

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->n + extra <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->n + extra)
        nc *= 2;
    unsigned char *p = realloc(b->p, nc);
    if (p == NULL)
        return STORE_ENOMEM;
    b->p = p;
    b->cap = nc;
    return 0;
}

static int buf_put(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n) != 0)
        return STORE_ENOMEM;
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

/* ---- building segments ----------------------------------------------------- */

struct rec {
    int64_t start, end;
    double value;
    int32_t offset;
    uint16_t type, source, device, payload;
    uint32_t seq; /* insertion order, the tie-break */
};

struct seg {
    char upload[SEG_UPLOAD];
    struct buf str;
    uint32_t nstr;
    struct rec *r;
    size_t nr, cap;
    struct {
        uint32_t idx, off, len;
    } dict[DICT_MAX];
    int ndict;
};

/* One sample as a segment takes it; the strings are copied. */
struct day_sample {
    int64_t start, end;
    double value;
    int32_t offset;
    const char *type, *source, *device, *payload;
};

static void seg_reset(struct seg *s, const char *upload_id)
{
    memset(s->upload, 0, sizeof(s->upload));
    if (upload_id != NULL)
        memcpy(s->upload, upload_id, strnlen(upload_id, SEG_UPLOAD));
    s->str.n = 0;
    s->nstr = 0;
    s->nr = 0;
    s->ndict = 0;
}

static void seg_free(struct seg *s)
{
    free(s->str.p);
    free(s->r);
    memset(s, 0, sizeof(*s));
}

static int seg_string(struct seg *s, const char *t, int dedupe, uint16_t *idx)
{
    size_t len = strlen(t);
    if (len > UINT32_MAX - 8)
        return STORE_EINVAL;
    if (dedupe)
        for (int i = 0; i < s->ndict; i++)
            if (s->dict[i].len == len && memcmp(s->str.p + s->dict[i].off, t, len) == 0) {
                *idx = (uint16_t)s->dict[i].idx;
                return 0;
            }
    unsigned char l[4];
    put32(l, (uint32_t)len);
    if (buf_put(&s->str, l, 4) != 0)
        return STORE_ENOMEM;
    size_t off = s->str.n;
    if (buf_put(&s->str, t, len) != 0)
        return STORE_ENOMEM;
    if (dedupe && s->ndict < DICT_MAX) {
        s->dict[s->ndict].idx = s->nstr;
        s->dict[s->ndict].off = (uint32_t)off;
        s->dict[s->ndict].len = (uint32_t)len;
        s->ndict++;
    }
    *idx = (uint16_t)s->nstr++;
    return 0;
}

/* 1 when payload says nothing but the offset the record carries. */
static int payload_only_offset(const char *payload, int32_t offset)
{
    char t[48];
    snprintf(t, sizeof(t), "{\"tz_offset_min\":%d}", (int)offset);
    return strcmp(payload, t) == 0;
}

/* Add a sample; 1 when the segment is full (flush it and add again). */
static int seg_add(struct seg *s, const struct day_sample *x)
{
    /* Each record adds at most 4 strings, and SEG_MAX_RECORDS of them stay
     * well below the 16-bit string index (0xFFFE and 0xFFFF are marks). */
    if (s->nr >= SEG_MAX_RECORDS)
        return 1;
    if (s->nr == s->cap && grow(&s->r, &s->cap, sizeof(*s->r), 256) != 0)
        return STORE_ENOMEM;
    struct rec *r = &s->r[s->nr];
    r->start = x->start;
    r->end = x->end;
    r->value = x->value;
    r->offset = x->offset;
    r->seq = (uint32_t)s->nr;
    r->payload = NO_STR;
    int rc = seg_string(s, x->type, 1, &r->type);
    if (rc == 0)
        rc = seg_string(s, x->source ? x->source : "", 1, &r->source);
    if (rc == 0)
        rc = seg_string(s, x->device ? x->device : "", 1, &r->device);
    if (rc == 0 && x->payload != NULL) {
        if (payload_only_offset(x->payload, x->offset))
            r->payload = OFFSET_ONLY;
        else
            rc = seg_string(s, x->payload, 0, &r->payload);
    }
    if (rc != 0)
        return rc;
    s->nr++;
    return 0;
}

static int rec_cmp(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Append the sorted segment to out as a block segment (0xD2). Returns 0,
 * 1 when the block format cannot hold it (the caller writes 0xD1), or
 * STORE_ENOMEM. */
static int seg_flush_block(struct seg *s, struct buf *out)
{
    struct block_sample *bs = calloc(s->nr, sizeof(*bs));
    char **owned = calloc((size_t)s->nstr + 1, sizeof(*owned));
    char(*made)[48] = malloc(s->nr * sizeof(*made));
    const char **strs = calloc((size_t)s->nstr + 1, sizeof(*strs));
    unsigned char *b = NULL;
    size_t blen = 0, no = 0;
    int rc = 0;
    if (bs == NULL || owned == NULL || made == NULL || strs == NULL)
        rc = STORE_ENOMEM;
    /* Each distinct string once (a C string per table entry). */
    for (uint32_t i = 0, at = 0; rc == 0 && i < s->nstr; i++) {
        uint32_t l = get32(s->str.p + at);
        char *t = malloc((size_t)l + 1);
        if (t == NULL) {
            rc = STORE_ENOMEM;
            break;
        }
        memcpy(t, s->str.p + at + 4, l);
        t[l] = '\0';
        owned[no++] = t;
        strs[i] = t;
        at += 4 + l;
    }
    for (size_t i = 0; rc == 0 && i < s->nr; i++) {
        const struct rec *r = &s->r[i];
        struct block_sample *x = &bs[i];
        x->start_ms = r->start;
        x->end_ms = r->end;
        x->value = r->value;
        x->value2 = x->quality = NAN;
        x->utc_offset_min = r->offset;
        x->metric_type = strs[r->type];
        x->source = strs[r->source];
        x->device = strs[r->device];
        if (r->payload == OFFSET_ONLY) {
            snprintf(made[i], sizeof(made[i]), "{\"tz_offset_min\":%d}", (int)r->offset);
            x->payload = made[i];
        } else if (r->payload != NO_STR) {
            x->payload = strs[r->payload];
        }
    }
    if (rc == 0) {
        int brc = block_encode(bs, s->nr, &b, &blen);
        if (brc == BLOCK_ENOMEM)
            rc = STORE_ENOMEM;
        else if (brc != 0 || SEG_HDR + blen > UINT32_MAX)
            rc = 1;
    }
    if (rc == 0 && (rc = buf_reserve(out, SEG_HDR + blen)) == 0) {
        unsigned char *h = out->p + out->n;
        memset(h, 0, SEG_HDR);
        h[0] = SEG_BLOCK_MAGIC;
        put32(h + 8, (uint32_t)s->nr);
        put32(h + 12, (uint32_t)(SEG_HDR + blen));
        memcpy(h + 16, s->upload, SEG_UPLOAD);
        memcpy(h + SEG_HDR, b, blen);
        out->n += SEG_HDR + blen;
    }
    for (size_t i = 0; owned && i < no; i++)
        free(owned[i]);
    free(owned);
    free(made);
    free(strs);
    free(bs);
    free(b);
    return rc;
}

/* Tests write 0xD1 segments, as the release before issue #19 did, to test
 * reading them and their backfill (store_days_write_legacy_for_test). */
static _Atomic int legacy_writes;

void store_days_write_legacy_for_test(int on) { legacy_writes = on; }

/* Append the segment to out and empty it (same upload). */
static int seg_flush(struct seg *s, struct buf *out)
{
    if (s->nr == 0)
        return 0;
    int sorted = 1;
    for (size_t i = 1; i < s->nr && sorted; i++)
        sorted = s->r[i - 1].start <= s->r[i].start;
    if (!sorted)
        qsort(s->r, s->nr, sizeof(*s->r), rec_cmp);
    int rc = legacy_writes ? 1 : seg_flush_block(s, out);
    if (rc != 1) {
        s->str.n = 0;
        s->nstr = 0;
        s->nr = 0;
        s->ndict = 0;
        return rc;
    }
    size_t len = SEG_HDR + s->str.n + s->nr * REC_SIZE;
    if (len > UINT32_MAX)
        return STORE_EINVAL;
    if (buf_reserve(out, len) != 0)
        return STORE_ENOMEM;
    unsigned char *h = out->p + out->n;
    memset(h, 0, SEG_HDR);
    h[0] = SEG_MAGIC;
    put32(h + 4, s->nstr);
    put32(h + 8, (uint32_t)s->nr);
    put32(h + 12, (uint32_t)len);
    memcpy(h + 16, s->upload, SEG_UPLOAD);
    memcpy(h + SEG_HDR, s->str.p, s->str.n);
    unsigned char *p = h + SEG_HDR + s->str.n;
    for (size_t i = 0; i < s->nr; i++, p += REC_SIZE) {
        const struct rec *r = &s->r[i];
        uint64_t v;
        memcpy(&v, &r->value, 8);
        put64(p, (uint64_t)r->start);
        put64(p + 8, (uint64_t)r->end);
        put64(p + 16, v);
        put32(p + 24, (uint32_t)r->offset);
        put16(p + 28, r->type);
        put16(p + 30, r->source);
        put16(p + 32, r->device);
        put16(p + 34, r->payload);
    }
    out->n += len;
    s->str.n = 0;
    s->nstr = 0;
    s->nr = 0;
    s->ndict = 0;
    return 0;
}

static int seg_push(struct seg *s, struct buf *out, const struct day_sample *x)
{
    int rc = seg_add(s, x);
    if (rc == 1) {
        if ((rc = seg_flush(s, out)) != 0)
            return rc;
        rc = seg_add(s, x);
    }
    return rc;
}

/* ---- writing ---------------------------------------------------------------- */

int store_days_lock_user(struct store_tx *tx, const char *user_id)
{
    if (tx->st->backend == DB_SQLITE)
        return 0; /* one writer at a time already */
    /* FNV-1a, 64 bits, of a prefixed user id: collisions only make two
     * users' writers wait for each other. */
    uint64_t h = 14695981039346656037ull;
    for (const char *p = "clarity.samples:"; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = user_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "SELECT 1 FROM (SELECT pg_advisory_xact_lock(CAST(?1 AS BIGINT))) l", &s);
    if (rc != 0)
        return rc;
    db_bind_int64(s, 1, (int64_t)h);
    return store_tx_run(tx, s, NULL);
}

/* A day's rows beyond which an append merges them into one: appends stay
 * plain inserts (nothing read back, nothing rewritten), and a window still
 * reads at most this many rows a day. */
#define DAY_MAX_ROWS 32

/* Where each day's bytes end in a read of several days. */
struct day_ends {
    size_t *end;
    size_t n, cap;
};

/* Step a bound statement whose column 0 is a day's bytes (and column 1 its
 * day, when ends is not NULL) and append them all to b, in order; resets
 * s. */
static int read_days(struct store_tx *tx, struct db_stmt *s, struct buf *b, struct day_ends *ends)
{
    int rc = 0, step;
    int64_t last = 0;
    db_stmt_binary_results(s);
    while ((step = db_step(s)) == DB_ROW) {
        size_t len = 0;
        const void *p = db_col_blob(s, 0, &len);
        if (p != NULL && (rc = buf_put(b, p, len)) != 0)
            break;
        if (ends == NULL)
            continue;
        int64_t day = db_col_int64(s, 1);
        if (ends->n > 0 && day == last) {
            ends->end[ends->n - 1] = b->n;
            continue;
        }
        if (ends->n == ends->cap && (rc = grow(&ends->end, &ends->cap, sizeof(*ends->end), 16)) != 0)
            break;
        ends->end[ends->n++] = b->n;
        last = day;
    }
    db_stmt_reset(s);
    return rc == 0 && step != DB_DONE ? store_tx_fail(tx, step) : rc;
}

/* Insert a row of segments; *rows (may be NULL) gets the day's row count
 * with it (the RETURNING subquery sees the rows before the insert on
 * PostgreSQL, after it on SQLite). */
static int day_insert(struct store_tx *tx, const char *user_id, int64_t day, const void *p, size_t n, int64_t *rows)
{
    static const char sql[] = "INSERT INTO sample_days (user_id, day, data) VALUES (?1, ?2, ?3)"
                              " RETURNING (SELECT COUNT(*) FROM sample_days WHERE user_id = ?1 AND day = ?2)";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, sql, &s), step;
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    db_bind_blob(s, 3, p, n);
    if ((step = db_step(s)) != DB_ROW) {
        db_stmt_reset(s);
        return store_tx_fail(tx, step == DB_DONE ? STORE_EINTERNAL : step);
    }
    if (rows != NULL)
        *rows = db_col_int64(s, 0) + (tx->st->backend == DB_SQLITE ? 0 : 1);
    db_stmt_reset(s);
    return 0;
}

static int day_delete(struct store_tx *tx, const char *user_id, int64_t day)
{
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, "DELETE FROM sample_days WHERE user_id = ?1 AND day = ?2", &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    return store_tx_run(tx, s, NULL);
}

/* Merge a day's rows into one: the segments concatenated as they are, in
 * append order. */
static int day_compact(struct store_tx *tx, const char *user_id, int64_t day)
{
    static const char all[] = "SELECT data FROM sample_days WHERE user_id = ?1 AND day = ?2 ORDER BY id";
    struct db_stmt *s = NULL;
    struct buf b = {0};
    int rc = store_tx_stmt(tx, all, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    rc = read_days(tx, s, &b, NULL);
    if (rc == 0)
        rc = day_delete(tx, user_id, day);
    if (rc == 0 && b.n > 0)
        rc = day_insert(tx, user_id, day, b.p, b.n, NULL);
    free(b.p);
    return rc;
}

/* Append a day's new segments (a row of their own), or, for a rebuild,
 * replace all of the day's rows (none when b is empty). */
static int day_write(struct store_tx *tx, const char *user_id, int64_t day, const struct buf *b, int append)
{
    int rc;
    int64_t rows = 0;
    if (append) {
        if (b->n == 0)
            return 0;
        if ((rc = day_insert(tx, user_id, day, b->p, b->n, &rows)) != 0)
            return rc;
        return rows > DAY_MAX_ROWS ? day_compact(tx, user_id, day) : 0;
    }
    if ((rc = day_delete(tx, user_id, day)) != 0)
        return rc;
    return b->n > 0 ? day_insert(tx, user_id, day, b->p, b->n, NULL) : 0;
}

static int sample_order(const void *a, const void *b, void *ctx)
{
    const struct store_sample *v = ctx;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    int c = strcmp(v[i].user_id, v[j].user_id);
    if (c == 0) {
        int64_t di = store_day_of(v[i].start_ms), dj = store_day_of(v[j].start_ms);
        c = di < dj ? -1 : di > dj;
    }
    /* Insertion order within a day, uploads interleaved as they come (a
     * new segment where the upload changes): segment order is id order. */
    return c != 0 ? c : i < j ? -1 : i > j;
}

int store_days_append(struct store_tx *tx, const struct store_sample *v, size_t n, const unsigned char *inserted)
{
    uint32_t *ix = malloc((n ? n : 1) * sizeof(*ix));
    struct seg sg;
    struct buf out = {0};
    size_t m = 0;
    int rc = 0;
    memset(&sg, 0, sizeof(sg));
    if (ix == NULL)
        return STORE_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (inserted[i])
            ix[m++] = (uint32_t)i;
    /* By user and day, insertion order within: one write per day. */
    qsort_r(ix, m, sizeof(*ix), sample_order, (void *)v);
    for (size_t a = 0; a < m && rc == 0;) {
        const struct store_sample *first = &v[ix[a]];
        int64_t day = store_day_of(first->start_ms);
        size_t b = a;
        out.n = 0;
        while (b < m && rc == 0 && strcmp(v[ix[b]].user_id, first->user_id) == 0 &&
               store_day_of(v[ix[b]].start_ms) == day) {
            const char *up = v[ix[b]].upload_id;
            seg_reset(&sg, up);
            for (; b < m && rc == 0 && strcmp(v[ix[b]].user_id, first->user_id) == 0 &&
                   store_day_of(v[ix[b]].start_ms) == day && strcmp(v[ix[b]].upload_id, up) == 0;
                 b++) {
                const struct store_sample *x = &v[ix[b]];
                struct day_sample d = {x->start_ms,    x->end_ms, x->value,  store_sample_payload_offset(x->payload),
                                       x->metric_type, x->source, x->device, x->payload};
                rc = seg_push(&sg, &out, &d);
            }
            if (rc == 0)
                rc = seg_flush(&sg, &out);
        }
        if (rc == 0)
            rc = day_write(tx, first->user_id, day, &out, 1);
        a = b;
    }
    free(ix);
    free(out.p);
    seg_free(&sg);
    return rc;
}

/* Write one day again from health_samples, in id order (segments break
 * where the upload changes). */
static int day_rebuild(struct store_tx *tx, const char *user_id, int64_t day)
{
    static const char sql[] = "SELECT upload_id, metric_type, start_ms, end_ms, value, source, device, payload,"
                              " utc_offset_min FROM health_samples"
                              " WHERE user_id = ?1 AND start_ms >= ?2 AND start_ms < ?3 ORDER BY id";
    struct db_stmt *s = NULL;
    struct seg sg;
    struct buf out = {0};
    char upload[STORE_ID_LEN] = "";
    int rc = store_tx_stmt(tx, sql, &s), step, started = 0;
    if (rc != 0)
        return rc;
    memset(&sg, 0, sizeof(sg));
    db_stmt_binary_results(s);
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day * DAY_MS);
    db_bind_int64(s, 3, (day + 1) * DAY_MS);
    while ((step = db_step(s)) == DB_ROW) {
        const char *up = db_col_text(s, 0);
        if (!started || strcmp(upload, up ? up : "") != 0) {
            if ((rc = seg_flush(&sg, &out)) != 0)
                break;
            snprintf(upload, sizeof(upload), "%s", up ? up : "");
            seg_reset(&sg, upload);
            started = 1;
        }
        const char *pl = db_col_text(s, 7);
        struct day_sample d = {db_col_int64(s, 2),
                               db_col_int64(s, 3),
                               db_col_is_null(s, 4) ? NAN : db_col_double(s, 4),
                               db_col_is_null(s, 8) ? store_sample_payload_offset(pl) : (int32_t)db_col_int64(s, 8),
                               db_col_text(s, 1),
                               db_col_text(s, 5),
                               db_col_text(s, 6),
                               pl};
        if ((rc = seg_push(&sg, &out, &d)) != 0)
            break;
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    if (rc == 0)
        rc = seg_flush(&sg, &out);
    if (rc == 0)
        rc = day_write(tx, user_id, day, &out, 0);
    free(out.p);
    seg_free(&sg);
    return rc;
}

#define DAY_EXPR "(start_ms - (((start_ms % 86400000) + 86400000) % 86400000)) / 86400000"

/* The days an upload's samples fall on, ascending (caller frees *days). */
static int upload_days(struct store_tx *tx, const char *upload_id, int64_t **days, size_t *n)
{
    static const char sql[] = "SELECT DISTINCT " DAY_EXPR " AS d FROM health_samples WHERE upload_id = ?1 ORDER BY d";
    struct db_stmt *s = NULL;
    size_t cap = 0;
    int rc = store_tx_stmt(tx, sql, &s), step;
    *days = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, upload_id);
    while ((step = db_step(s)) == DB_ROW) {
        if (*n == cap && (rc = grow(days, &cap, sizeof(**days), 16)) != 0)
            break;
        (*days)[(*n)++] = db_col_int64(s, 0);
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    if (rc != 0) {
        free(*days);
        *days = NULL;
        *n = 0;
    }
    return rc;
}

int store_days_upload_deleting(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t **days,
                               size_t *n)
{
    int rc = store_days_lock_user(tx, user_id);
    return rc != 0 ? rc : upload_days(tx, upload_id, days, n);
}

int store_days_rebuild(struct store_tx *tx, const char *user_id, const int64_t *days, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = day_rebuild(tx, user_id, days[i]);
    return rc;
}

int store_sample_days_heal(struct store_tx *tx, const char *user_id, int64_t *healed)
{
    /* Not an upload still being written (an import by the previous release
     * runs for many transactions, all 'processing'): its later batches
     * would miss the days. It stays pending, and windows read rows. */
    static const char pending[] = "SELECT id FROM uploads WHERE user_id = ?1 AND days_indexed = 0"
                                  " AND status <> 'processing' ORDER BY id";
    static const char done[] = "UPDATE uploads SET days_indexed = 1 WHERE id = ?1";
    struct db_stmt *s = NULL;
    char(*ids)[STORE_ID_LEN] = NULL;
    size_t n = 0, cap = 0;
    int rc = store_tx_stmt(tx, pending, &s), step;
    if (healed != NULL)
        *healed = 0;
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    while ((step = db_step(s)) == DB_ROW) {
        if (n == cap && (rc = grow(&ids, &cap, sizeof(*ids), 8)) != 0)
            break;
        store_col_copy(s, 0, ids[n++], STORE_ID_LEN);
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    if (rc == 0 && n > 0)
        rc = store_days_lock_user(tx, user_id);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int64_t *days = NULL;
        size_t nd = 0;
        if ((rc = upload_days(tx, ids[i], &days, &nd)) == 0)
            rc = store_days_rebuild(tx, user_id, days, nd);
        free(days);
        if (rc == 0 && (rc = store_tx_stmt(tx, done, &s)) == 0) {
            db_bind_text(s, 1, ids[i]);
            rc = store_tx_run(tx, s, NULL);
        }
    }
    free(ids);
    if (rc == 0 && healed != NULL)
        *healed = (int64_t)n;
    return rc;
}

/* ---- the backfill: 0xD1 rows rewritten as block segments ---------------- */

static int seg_next(const unsigned char *p, size_t n, size_t *at, const unsigned char **seg, uint32_t *len);

/* Re-encode every 0xD1 segment of p (n bytes) into out; *kept is 1 when a
 * segment had to stay 0xD1. STORE_EINTERNAL for bytes that do not parse. */
static int row_reencode(const unsigned char *p, size_t n, struct buf *out, int *kept)
{
    size_t at = 0;
    const unsigned char *seg;
    uint32_t len;
    int more, rc = 0;
    struct seg sg;
    memset(&sg, 0, sizeof(sg));
    *kept = 0;
    while (rc == 0 && (more = seg_next(p, n, &at, &seg, &len)) != 0) {
        if (more < 0)
            return STORE_EINTERNAL;
        if (seg[0] != SEG_MAGIC) {
            rc = buf_put(out, seg, len);
            continue;
        }
        uint32_t nstr = get32(seg + 4), nrec = get32(seg + 8);
        const unsigned char *q = seg + SEG_HDR, *end = seg + len;
        for (uint32_t i = 0; i < nstr && rc == 0; i++) {
            if (end - q < 4 || (size_t)(end - q - 4) < get32(q))
                rc = STORE_EINTERNAL;
            else
                q += 4 + get32(q);
        }
        if (rc != 0 || nstr > NO_STR || (size_t)(end - q) != (size_t)nrec * REC_SIZE) {
            rc = STORE_EINTERNAL;
            break;
        }
        /* The segment as seg_flush had it in memory: its string table as
         * is, its records parsed; then written the block way. */
        sg.str.p = (unsigned char *)(seg + SEG_HDR);
        sg.str.n = (size_t)(q - (seg + SEG_HDR));
        sg.nstr = nstr;
        memcpy(sg.upload, seg + 16, SEG_UPLOAD);
        if (nrec > sg.cap) {
            struct rec *r = realloc(sg.r, nrec * sizeof(*r));
            if (r == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
            sg.r = r;
            sg.cap = nrec;
        }
        sg.nr = nrec;
        for (uint32_t i = 0; i < nrec; i++, q += REC_SIZE) {
            struct rec *r = &sg.r[i];
            uint64_t v = get64(q + 16);
            r->start = (int64_t)get64(q);
            r->end = (int64_t)get64(q + 8);
            memcpy(&r->value, &v, 8);
            r->offset = (int32_t)get32(q + 24);
            r->type = get16(q + 28);
            r->source = get16(q + 30);
            r->device = get16(q + 32);
            r->payload = get16(q + 34);
            r->seq = i;
            if (r->type >= nstr || r->source >= nstr || r->device >= nstr ||
                (r->payload != NO_STR && r->payload != OFFSET_ONLY && r->payload >= nstr))
                rc = STORE_EINTERNAL;
        }
        if (rc == 0 && (rc = seg_flush_block(&sg, out)) == 1) {
            *kept = 1;
            rc = buf_put(out, seg, len);
        }
    }
    free(sg.r);
    return rc;
}

/* One batch in one write transaction. */
static int reencode_batch(struct store *st, size_t batch, struct store_reencode_stats *stats, size_t *seen)
{
    static const char lite[] = "SELECT id, user_id, data FROM sample_days WHERE id > ?1"
                               " AND substr(data, 1, 1) = X'D1' ORDER BY id LIMIT ?2";
    static const char pg[] = "SELECT id, user_id, data FROM sample_days WHERE id > ?1"
                             " AND get_byte(data, 0) = 209 ORDER BY id LIMIT ?2";
    static const char upd[] = "UPDATE sample_days SET data = ?2 WHERE id = ?1";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    struct buf rows = {0}, out = {0};
    struct item {
        int64_t id;
        char user[STORE_ID_LEN];
        size_t off, len;
    } *it = NULL;
    size_t n = 0, cap = 0;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx), step;
    *seen = 0;
    if (rc != 0)
        return rc;
    if ((rc = store_tx_stmt(tx, store_sql(st, lite, pg), &s)) != 0)
        goto done;
    db_stmt_binary_results(s);
    db_bind_int64(s, 1, stats->cursor);
    db_bind_int64(s, 2, (int64_t)batch);
    while ((step = db_step(s)) == DB_ROW) {
        size_t len = 0;
        const void *p = db_col_blob(s, 2, &len);
        if (n == cap && (rc = grow(&it, &cap, sizeof(*it), 64)) != 0)
            break;
        it[n].id = db_col_int64(s, 0);
        store_col_copy(s, 1, it[n].user, STORE_ID_LEN);
        it[n].off = rows.n;
        it[n].len = len;
        if (p != NULL && (rc = buf_put(&rows, p, len)) != 0)
            break;
        n++;
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    for (size_t i = 0; i < n && rc == 0; i++) {
        int kept = 0;
        out.n = 0;
        stats->cursor = it[i].id;
        /* Writers of this user's days wait (PostgreSQL), as for any day write. */
        if ((rc = store_days_lock_user(tx, it[i].user)) != 0)
            break;
        rc = row_reencode(rows.p + it[i].off, it[i].len, &out, &kept);
        if (rc == STORE_EINTERNAL) { /* not ours to fix: the window reads rows for it */
            rc = 0;
            stats->kept++;
            continue;
        }
        if (rc != 0)
            break;
        if (kept && out.n == it[i].len) {
            stats->kept++;
            continue;
        }
        if ((rc = store_tx_stmt(tx, upd, &s)) != 0)
            break;
        db_bind_int64(s, 1, it[i].id);
        db_bind_blob(s, 2, out.p, out.n);
        if ((rc = store_tx_run(tx, s, NULL)) != 0)
            break;
        /* The row's series aggregates go with its old bytes (the samples
         * are the same, but a cache is only as good as its key). */
        if ((rc = store_tx_stmt(tx, "DELETE FROM sample_day_aggs WHERE sample_day_id = ?1", &s)) != 0)
            break;
        db_bind_int64(s, 1, it[i].id);
        if ((rc = store_tx_run(tx, s, NULL)) != 0)
            break;
        stats->rows++;
        stats->kept += kept;
        stats->bytes_in += (int64_t)it[i].len;
        stats->bytes_out += (int64_t)out.n;
    }
    *seen = n;
done:
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    free(it);
    free(rows.p);
    free(out.p);
    return rc;
}

int store_sample_days_reencode(struct store *st, size_t batch, store_reencode_fn fn, void *ctx,
                               struct store_reencode_stats *stats)
{
    if (st == NULL || stats == NULL)
        return STORE_EINVAL;
    if (batch == 0)
        batch = 100;
    stats->done = 0;
    for (;;) {
        struct store_reencode_stats before = *stats;
        size_t seen = 0;
        int rc = reencode_batch(st, batch, stats, &seen);
        if (rc != 0) {
            *stats = before; /* the batch rolled back: resume from before it */
            return rc;
        }
        if (seen < batch)
            stats->done = 1;
        if (fn != NULL && fn(ctx, stats) != 0)
            return 0;
        if (stats->done)
            return 0;
    }
}

/* ---- reading the window ---------------------------------------------------- */

/* A record of the window before ordering. */
struct wrec {
    int64_t start, end;
    double value;
    int32_t offset;
    uint32_t payload; /* offset into w->text */
    uint8_t type;     /* 0xFF: a type the query does not list */
    uint8_t rank;
};

struct wscratch {
    struct wrec *r;
    size_t n, cap;
    uint32_t *ix, *tmp;
    const unsigned char **sp; /* a segment's strings */
    uint32_t *sl;
    int16_t *stype;
    uint8_t *srank;
    size_t scap;
};

static void wscratch_free(struct wscratch *x)
{
    free(x->r);
    free(x->ix);
    free(x->tmp);
    free(x->sp);
    free(x->sl);
    free(x->stype);
    free(x->srank);
}

/* Upload ids go into the id list of uploads_alive unquoted: uuids, or
 * anything else of these characters. */
static int upload_id_plain(const unsigned char *u)
{
    for (int i = 0; i < SEG_UPLOAD && u[i]; i++)
        if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'z') || (u[i] >= 'A' && u[i] <= 'Z') ||
              u[i] == '-' || u[i] == '_' || u[i] == '.' || u[i] == ':'))
            return 0;
    return 1;
}

/* Walk the segments of buf; check each one's framing. */
static int seg_next(const unsigned char *p, size_t n, size_t *at, const unsigned char **seg, uint32_t *len)
{
    if (*at >= n)
        return 0;
    if (n - *at < SEG_HDR || (p[*at] != SEG_MAGIC && p[*at] != SEG_BLOCK_MAGIC))
        return -1;
    uint32_t l = get32(p + *at + 12);
    if (l < SEG_HDR || l > n - *at)
        return -1;
    *seg = p + *at;
    *len = l;
    *at += l;
    return 1;
}

struct live_uploads {
    unsigned char (*id)[SEG_UPLOAD];
    unsigned char *live;
    size_t n, cap;
};

static int live_index(const struct live_uploads *lu, const unsigned char *u)
{
    for (size_t i = 0; i < lu->n; i++)
        if (memcmp(lu->id[i], u, SEG_UPLOAD) == 0)
            return (int)i;
    return -1;
}

/* Which of the segments' uploads still exist (the previous release may
 * have deleted one without touching its days). One query for all. */
static int uploads_alive(struct store_tx *tx, const char *user_id, struct live_uploads *lu)
{
    static const char lite[] = "SELECT id FROM uploads WHERE user_id = ?1 AND id IN (SELECT value FROM json_each(?2))";
    static const char pg[] = "SELECT id FROM uploads WHERE user_id = ?1 AND id = ANY(string_to_array(?2, ','))";
    if (lu->n == 0)
        return 0;
    char *list = malloc(lu->n * (STORE_ID_LEN + 3) + 3);
    struct db_stmt *s = NULL;
    if (list == NULL)
        return STORE_ENOMEM;
    int lite_b = tx->st->backend == DB_SQLITE;
    size_t o = 0;
    if (lite_b)
        list[o++] = '[';
    for (size_t i = 0; i < lu->n; i++)
        o += (size_t)snprintf(list + o, lu->n * (STORE_ID_LEN + 3) + 3 - o, lite_b ? "%s\"%.36s\"" : "%s%.36s",
                              i ? "," : "", (const char *)lu->id[i]);
    if (lite_b)
        list[o++] = ']';
    list[o] = '\0';
    int rc = store_tx_stmt(tx, store_sql(tx->st, lite, pg), &s), step;
    if (rc == 0) {
        db_bind_text(s, 1, user_id);
        db_bind_text(s, 2, list);
        while ((step = db_step(s)) == DB_ROW) {
            const char *id = db_col_text(s, 0);
            unsigned char u[SEG_UPLOAD];
            memset(u, 0, sizeof(u));
            if (id != NULL)
                memcpy(u, id, strnlen(id, SEG_UPLOAD));
            int at = live_index(lu, u);
            if (at >= 0)
                lu->live[at] = 1;
        }
        db_stmt_reset(s);
        if (step != DB_DONE)
            rc = store_tx_fail(tx, step);
    }
    free(list);
    return rc;
}

static int first_rank(const struct store_window_query *q, const unsigned char *t, uint32_t len)
{
    for (size_t i = 0; i < q->n_ranks; i++)
        if (memmem(t, len, q->ranks[i], strlen(q->ranks[i])) != NULL)
            return (int)i;
    return (int)q->n_ranks;
}

static int type_index(const struct store_window_query *q, const unsigned char *t, uint32_t len)
{
    for (size_t i = 0; i < q->n_types; i++)
        if (strlen(q->types[i]) == len && memcmp(q->types[i], t, len) == 0)
            return (int)i;
    return -1;
}

/* Copy a payload, NUL-terminated, into the window's text; *at its offset. */
static int window_text(struct store_window *w, const void *src, size_t plen, uint32_t *at)
{
    size_t need = w->text_len + plen + 1;
    if (need >= UINT32_MAX)
        return STORE_ENOMEM;
    if (need > w->text_cap) {
        size_t nc = w->text_cap ? w->text_cap : 4096;
        while (nc < need)
            nc *= 2;
        char *tp = realloc(w->text, nc);
        if (tp == NULL)
            return STORE_ENOMEM;
        w->text = tp;
        w->text_cap = nc;
    }
    memcpy(w->text + w->text_len, src, plen);
    w->text[w->text_len + plen] = '\0';
    *at = (uint32_t)w->text_len;
    w->text_len = need;
    return 0;
}

/* Decode a block segment's records inside [from, to) into x: the type and
 * rank once per series of the block, then each record. */
static int seg_decode_block(const unsigned char *seg, uint32_t len, const struct store_window_query *q,
                            struct wscratch *x, struct store_window *w)
{
    struct block_reader *br = NULL;
    int rc = block_reader_open(seg + SEG_HDR, len - SEG_HDR, &br);
    if (rc != 0)
        return rc == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
    size_t ns = block_reader_series_count(br);
    if (block_reader_count(br) != get32(seg + 8) || ns > NO_STR) {
        block_reader_free(br);
        return STORE_EINTERNAL;
    }
    if (ns > x->scap) {
        void *c = realloc(x->stype, ns * sizeof(*x->stype));
        if (c)
            x->stype = c;
        void *d = c ? realloc(x->srank, ns * sizeof(*x->srank)) : NULL;
        if (d == NULL) {
            block_reader_free(br);
            return STORE_ENOMEM;
        }
        x->srank = d;
        /* sp and sl keep their old size: only the 0xD1 decoder uses them. */
        void *a = realloc(x->sp, ns * sizeof(*x->sp)), *b = a ? realloc(x->sl, ns * sizeof(*x->sl)) : NULL;
        if (a)
            x->sp = a;
        if (b == NULL) {
            block_reader_free(br);
            return STORE_ENOMEM;
        }
        x->sl = b;
        x->scap = ns;
    }
    uint32_t want_payload = 0;
    for (size_t i = 0; i < ns; i++) {
        const struct block_series *bs = block_reader_series(br, i);
        const char *t = bs->metric_type;
        x->stype[i] = (int16_t)type_index(q, (const unsigned char *)t, (uint32_t)strlen(t));
        int rs = first_rank(q, (const unsigned char *)bs->source, (uint32_t)strlen(bs->source));
        int rd = first_rank(q, (const unsigned char *)bs->device, (uint32_t)strlen(bs->device));
        x->srank[i] = (uint8_t)(rs < rd ? rs : rd);
        if (x->stype[i] >= 0 && (q->payload_types >> x->stype[i] & 1u))
            want_payload = 1;
    }
    block_reader_skip_text(br, !want_payload);
    struct block_sample bsm;
    uint32_t si;
    while ((rc = block_reader_next(br, &bsm, &si)) == 1) {
        if (bsm.start_ms < q->from_ms || bsm.start_ms >= q->to_ms)
            continue;
        if (x->n == x->cap && grow(&x->r, &x->cap, sizeof(*x->r), 4096) != 0) {
            rc = STORE_ENOMEM;
            break;
        }
        struct wrec *r = &x->r[x->n++];
        r->start = bsm.start_ms;
        r->type = 0xFF;
        r->payload = STORE_WINDOW_NO_PAYLOAD;
        int t = x->stype[si];
        if (t < 0)
            continue;
        r->type = (uint8_t)t;
        r->end = bsm.end_ms;
        r->value = bsm.value;
        r->offset = bsm.utc_offset_min;
        r->rank = x->srank[si];
        if (bsm.payload != NULL && (q->payload_types >> t & 1u) &&
            (rc = window_text(w, bsm.payload, strlen(bsm.payload), &r->payload)) != 0)
            break;
    }
    block_reader_free(br);
    if (rc == BLOCK_ECORRUPT)
        return STORE_EINTERNAL;
    return rc;
}

/* Decode one segment's records inside [from, to) into x. */
static int seg_decode(const unsigned char *seg, uint32_t len, const struct store_window_query *q, struct wscratch *x,
                      struct store_window *w)
{
    if (seg[0] == SEG_BLOCK_MAGIC)
        return seg_decode_block(seg, len, q, x, w);
    uint32_t nstr = get32(seg + 4), nrec = get32(seg + 8);
    const unsigned char *p = seg + SEG_HDR, *end = seg + len;
    if (nstr > NO_STR)
        return STORE_EINTERNAL;
    if (nstr > x->scap) {
        size_t nc = nstr;
        void *a = realloc(x->sp, nc * sizeof(*x->sp)), *b = a ? realloc(x->sl, nc * sizeof(*x->sl)) : NULL;
        if (a)
            x->sp = a;
        if (b)
            x->sl = b;
        void *c = b ? realloc(x->stype, nc * sizeof(*x->stype)) : NULL;
        if (c)
            x->stype = c;
        void *d = c ? realloc(x->srank, nc * sizeof(*x->srank)) : NULL;
        if (d == NULL)
            return STORE_ENOMEM;
        x->srank = d;
        x->scap = nc;
    }
    for (uint32_t i = 0; i < nstr; i++) {
        if (end - p < 4)
            return STORE_EINTERNAL;
        uint32_t l = get32(p);
        p += 4;
        if ((size_t)(end - p) < l)
            return STORE_EINTERNAL;
        x->sp[i] = p;
        x->sl[i] = l;
        x->stype[i] = -2; /* not yet looked up */
        x->srank[i] = 0xFF;
        p += l;
    }
    if ((size_t)(end - p) != (size_t)nrec * REC_SIZE)
        return STORE_EINTERNAL;
    for (uint32_t i = 0; i < nrec; i++, p += REC_SIZE) {
        int64_t start = (int64_t)get64(p);
        if (start < q->from_ms || start >= q->to_ms)
            continue;
        uint16_t ti = get16(p + 28), si = get16(p + 30), di = get16(p + 32), pi = get16(p + 34);
        if (ti >= nstr || si >= nstr || di >= nstr || (pi != NO_STR && pi != OFFSET_ONLY && pi >= nstr))
            return STORE_EINTERNAL;
        if (x->stype[ti] == -2)
            x->stype[ti] = (int16_t)type_index(q, x->sp[ti], x->sl[ti]);
        if (x->n == x->cap && grow(&x->r, &x->cap, sizeof(*x->r), 4096) != 0)
            return STORE_ENOMEM;
        struct wrec *r = &x->r[x->n++];
        r->start = start;
        r->type = 0xFF;
        r->payload = STORE_WINDOW_NO_PAYLOAD;
        int t = x->stype[ti];
        if (t < 0)
            continue;
        uint64_t v = get64(p + 16);
        r->type = (uint8_t)t;
        r->end = (int64_t)get64(p + 8);
        memcpy(&r->value, &v, 8);
        r->offset = (int32_t)get32(p + 24);
        if (x->srank[si] == 0xFF)
            x->srank[si] = (uint8_t)first_rank(q, x->sp[si], x->sl[si]);
        if (x->srank[di] == 0xFF)
            x->srank[di] = (uint8_t)first_rank(q, x->sp[di], x->sl[di]);
        r->rank = x->srank[si] < x->srank[di] ? x->srank[si] : x->srank[di];
        if (pi != NO_STR && (q->payload_types >> t & 1u)) {
            char made[48];
            const void *src = made;
            size_t plen;
            if (pi == OFFSET_ONLY) {
                plen = (size_t)snprintf(made, sizeof(made), "{\"tz_offset_min\":%d}", (int)r->offset);
            } else {
                src = x->sp[pi];
                plen = x->sl[pi];
            }
            int trc = window_text(w, src, plen, &r->payload);
            if (trc != 0)
                return trc;
        }
    }
    return 0;
}

/* Stable merge by start of the sorted runs of records a[lo, hi) names (b is
 * scratch of the same size); the result is left in a. */
static void merge_runs(const struct wrec *r, uint32_t *a, uint32_t *b, size_t lo, size_t hi)
{
    uint32_t *src = a, *dst = b;
    for (;;) {
        /* One pass: merge neighbouring runs. */
        size_t runs = 0, i = lo, o = lo;
        while (i < hi) {
            size_t m = i + 1;
            while (m < hi && r[src[m - 1]].start <= r[src[m]].start)
                m++;
            if (m >= hi && i == lo)
                break; /* already one run */
            size_t e = m + 1;
            while (e < hi && r[src[e - 1]].start <= r[src[e]].start)
                e++;
            if (m >= hi)
                e = hi;
            size_t p = i, q = m;
            while (p < m && q < e)
                dst[o++] = r[src[q]].start < r[src[p]].start ? src[q++] : src[p++];
            while (p < m)
                dst[o++] = src[p++];
            while (q < e)
                dst[o++] = src[q++];
            runs++;
            i = e;
        }
        if (runs == 0)
            break; /* src is sorted */
        uint32_t *t = src;
        src = dst;
        dst = t;
        if (runs <= 1)
            break;
    }
    if (src != a)
        memcpy(a + lo, src + lo, (hi - lo) * sizeof(*a));
}

/* Stable order of x->r by start. Segments are sorted runs and a day's
 * records start within the day, so each day's runs are merged on their own,
 * in cache (a day's records are neighbours in x->r), then the whole is
 * checked and merged once more (one scan when the days are in order).
 * Merging all of a year's runs pairwise was 45 % of a year's window read
 * (perf, GET /api/v1/rhythm): log2(segments) passes over 350,000 records,
 * every comparison a cache miss. */
static int order_records(struct wscratch *x, const size_t *day_end, size_t ndays)
{
    size_t n = x->n;
    uint32_t *a = realloc(x->ix, (n ? n : 1) * sizeof(*a));
    if (a == NULL)
        return STORE_ENOMEM;
    x->ix = a;
    uint32_t *b = realloc(x->tmp, (n ? n : 1) * sizeof(*b));
    if (b == NULL)
        return STORE_ENOMEM;
    x->tmp = b;
    for (size_t i = 0; i < n; i++)
        a[i] = (uint32_t)i;
    size_t lo = 0;
    for (size_t d = 0; d < ndays; d++) {
        size_t hi = day_end[d] < n ? day_end[d] : n;
        if (hi > lo + 1)
            merge_runs(x->r, a, b, lo, hi);
        lo = hi > lo ? hi : lo;
    }
    merge_runs(x->r, a, b, 0, n);
    return 0;
}

int store_days_window(struct store_tx *tx, const struct store_window_query *q, struct store_window *w, int *use_rows)
{
    static const char pending[] =
        "SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE user_id = ?1 AND days_indexed = 0 LIMIT 1) p";
    static const char read[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 AND day >= ?2 AND day <= ?3"
                               " ORDER BY day, id";
    struct db_stmt *s = NULL;
    struct buf all = {0};
    struct wscratch x;
    struct live_uploads lu = {0};
    struct day_ends ends = {0};
    int rc, step;
    *use_rows = 0;
    memset(&x, 0, sizeof(x));
    if ((rc = store_tx_stmt(tx, pending, &s)) != 0)
        return rc;
    db_bind_text(s, 1, q->user_id);
    step = db_step(s);
    if (step != DB_ROW) {
        db_stmt_reset(s);
        return store_tx_fail(tx, step == DB_DONE ? STORE_EINTERNAL : step);
    }
    *use_rows = db_col_int64(s, 0) > 0;
    db_stmt_reset(s);
    if (*use_rows || q->to_ms <= q->from_ms)
        return 0;

    if ((rc = store_tx_stmt(tx, read, &s)) != 0)
        return rc;
    db_bind_text(s, 1, q->user_id);
    db_bind_int64(s, 2, store_day_of(q->from_ms));
    db_bind_int64(s, 3, store_day_of(q->to_ms - 1));
    rc = read_days(tx, s, &all, &ends);

    /* The uploads named by the segments, and which of them still exist. */
    size_t at = 0;
    const unsigned char *seg;
    uint32_t len;
    int more;
    while (rc == 0 && (more = seg_next(all.p, all.n, &at, &seg, &len)) != 0) {
        if (more < 0) {
            log_warning("sample_days: a malformed segment; reading the rows", LOG_STR, "backend",
                        store_backend_name(tx->st), LOG_END);
            *use_rows = 1;
            break;
        }
        const unsigned char *u = seg + 16;
        if (u[0] == 0 || live_index(&lu, u) >= 0)
            continue;
        if (!upload_id_plain(u)) {
            *use_rows = 1; /* never written by this store; read the rows */
            break;
        }
        if (lu.n == lu.cap) {
            size_t nc = lu.cap ? lu.cap * 2 : 16;
            void *a = realloc(lu.id, nc * sizeof(*lu.id));
            if (a == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
            lu.id = a;
            void *b = realloc(lu.live, nc);
            if (b == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
            lu.live = b;
            lu.cap = nc;
        }
        memcpy(lu.id[lu.n], u, SEG_UPLOAD);
        lu.live[lu.n++] = 0;
    }
    if (rc == 0 && !*use_rows)
        rc = uploads_alive(tx, q->user_id, &lu);
    w->text_len = 0;
    at = 0;
    /* Day by day, in order: once the days read hold more than max_rows + 1
     * records (all types) in the range, later days cannot be among the
     * first max_rows + 1, so reading stops there (memory stays bounded by
     * the limit, as the row read's LIMIT keeps it). */
    size_t *day_n = ends.n > 0 ? malloc(ends.n * sizeof(*day_n)) : NULL, ndays = 0;
    if (ends.n > 0 && day_n == NULL && rc == 0)
        rc = STORE_ENOMEM;
    for (size_t d = 0; rc == 0 && !*use_rows && d < ends.n; d++) {
        while (rc == 0 && at < ends.end[d]) {
            if (seg_next(all.p, ends.end[d], &at, &seg, &len) <= 0) {
                rc = STORE_EINTERNAL;
                break;
            }
            const unsigned char *u = seg + 16;
            if (u[0] != 0 && !lu.live[live_index(&lu, u)])
                continue; /* deleted by a release that knew nothing of days */
            rc = seg_decode(seg, len, q, &x, w);
        }
        day_n[ndays++] = x.n;
        if (q->max_rows > 0 && x.n > 0 && x.n - 1 > q->max_rows)
            break;
    }
    if (rc == STORE_EINTERNAL) {
        /* Not what this store writes: read the rows rather than fail every
         * analysis of this user until the day is rewritten. */
        log_warning("sample_days: a malformed segment; reading the rows", LOG_STR, "backend",
                    store_backend_name(tx->st), LOG_END);
        *use_rows = 1;
        rc = 0;
    }
    if (*use_rows) {
        w->text_len = 0;
        free(day_n);
        free(all.p);
        free(ends.end);
        free(lu.id);
        free(lu.live);
        wscratch_free(&x);
        return rc;
    }
    if (rc == 0)
        rc = order_records(&x, day_n, ndays);
    /* Like the row read's LIMIT: at most max_rows + 1 rows, all types. */
    size_t keep = x.n;
    if (q->max_rows > 0 && keep > 0 && keep - 1 > q->max_rows)
        keep = q->max_rows + 1;
    for (size_t i = 0; i < keep && rc == 0; i++) {
        const struct wrec *r = &x.r[x.ix[i]];
        if (r->type == 0xFF) {
            w->n_other++;
            continue;
        }
        if (w->n == w->cap && (rc = store_window_grow(w)) != 0)
            break;
        size_t k = w->n++;
        w->type[k] = r->type;
        w->start_ms[k] = r->start;
        w->end_ms[k] = r->end;
        w->value[k] = r->value;
        w->rank[k] = r->rank;
        w->offset_min[k] = r->offset;
        w->payload[k] = r->payload;
    }
    free(day_n);
    free(all.p);
    free(ends.end);
    free(lu.id);
    free(lu.live);
    wscratch_free(&x);
    return rc;
}

/* ---- series aggregates (migration 011) ------------------------------------- */

/*
 * GET /api/v1/series decoded every sample of every day in its range: a year
 * of minute steps is ~350,000 samples and ~150 ms of block decoding, merge
 * ordering and copying (perf: store_days_window + block_reader_next ~65 %,
 * page faults of the fresh arrays most of the rest) for at most 2,000
 * numbers. sample_day_aggs keeps, per sample_days row and metric type, the
 * row's samples of that type summed per 15-minute UTC slot: count of rows,
 * count of finite values, their sum, min and max. A series whose buckets
 * are whole slots is then the sum of a few hundred small records.
 *
 * Key: the sample_days row id, with ON DELETE CASCADE. sample_days rows are
 * never updated in place except by the re-encoder (which deletes the row's
 * aggregates with it), only inserted and deleted — appends, merges, an
 * upload delete's rebuild, erasure, by this release or the previous one —
 * so an aggregate can never outlive the bytes it was computed from, and no
 * writer needs to know the cache exists. Filled on first read, in a write
 * transaction that reads the bytes it aggregates (SQLite may reuse the
 * rowid of a deleted row; within the transaction it cannot).
 *
 * Exactness: the endpoint adds values one by one in (start, id) order; a
 * sum of slot sums is the same number only when no addition rounds. A slot
 * is marked exact when every finite value in it is an integer of magnitude
 * below 2^31 and not -0 (steps, heart rate, most counts): with fewer than
 * 2^21 values in a bucket every partial sum is an integer below 2^52, exact
 * in any order. A range with a slot that is not exact, a segment whose
 * upload no longer exists, a user with uploads not yet in sample_days, or
 * bounds that are not whole slots is answered *hit = 0: the caller reads
 * the samples as before.
 *
 * Entry bytes (little-endian): u8 version 1, u8 0, u16 n_uploads, u16
 * n_slots, u16 0, n_uploads x char[36] (the row's upload ids), then n_slots
 * x 36 bytes: u16 slot (0..95), u16 flags (bit 0: exact), u32 rows, u32
 * finite values, f64 sum, f64 min, f64 max.
 */
#define AGG_SLOTS (DAY_MS / STORE_SERIES_SLOT_MS)
#define AGG_HDR 8
#define AGG_ENTRY 36
#define AGG_EXACT 1u
#define AGG_MAX_BUCKET_VALUES (1 << 21)

struct agg_slot {
    uint32_t rows, n;
    int exact;
    double sum, mn, mx;
};

static int value_exact(double v) { return v == nearbyint(v) && fabs(v) < 2147483648.0 && !(v == 0.0 && signbit(v)); }

/* Aggregate one sample_days row's bytes (day `day`) for `type` into out.
 * STORE_EINTERNAL for bytes that are not what this store writes. */
static int agg_compute(const unsigned char *p, size_t n, int64_t day, const char *type, struct buf *out)
{
    const char *types[1] = {type};
    struct store_window_query q = {
        .user_id = "", .types = types, .n_types = 1, .from_ms = day * DAY_MS, .to_ms = (day + 1) * DAY_MS};
    struct store_window w;
    struct wscratch x;
    struct agg_slot *sl = calloc((size_t)AGG_SLOTS, sizeof(*sl));
    unsigned char(*up)[SEG_UPLOAD] = NULL;
    size_t nup = 0, capup = 0, at = 0;
    const unsigned char *seg;
    uint32_t len;
    int rc = sl == NULL ? STORE_ENOMEM : 0, more;
    memset(&w, 0, sizeof(w));
    memset(&x, 0, sizeof(x));
    while (rc == 0 && (more = seg_next(p, n, &at, &seg, &len)) != 0) {
        if (more < 0) {
            rc = STORE_EINTERNAL;
            break;
        }
        const unsigned char *u = seg + 16;
        int seen = u[0] == 0;
        for (size_t i = 0; i < nup && !seen; i++)
            seen = memcmp(up[i], u, SEG_UPLOAD) == 0;
        if (!seen) {
            if (nup == capup && (rc = grow(&up, &capup, sizeof(*up), 4)) != 0)
                break;
            memcpy(up[nup++], u, SEG_UPLOAD);
        }
        rc = seg_decode(seg, len, &q, &x, &w);
    }
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        const struct wrec *r = &x.r[i];
        if (r->type == 0xFF)
            continue;
        int64_t k = (r->start - day * DAY_MS) / STORE_SERIES_SLOT_MS;
        if (k < 0 || k >= AGG_SLOTS || sl[k].rows == UINT32_MAX) {
            rc = STORE_EINTERNAL;
            break;
        }
        struct agg_slot *a = &sl[k];
        if (a->rows++ == 0)
            a->exact = 1;
        double v = r->value;
        if (!isfinite(v))
            continue;
        if (!value_exact(v))
            a->exact = 0;
        if (a->n == 0 || v < a->mn)
            a->mn = v;
        if (a->n == 0 || v > a->mx)
            a->mx = v;
        a->sum += v;
        a->n++;
    }
    size_t used = 0;
    for (int64_t k = 0; rc == 0 && k < AGG_SLOTS; k++)
        used += sl[k].rows > 0;
    if (rc == 0 && (nup > UINT16_MAX || (rc = buf_reserve(out, AGG_HDR + nup * SEG_UPLOAD + used * AGG_ENTRY)) == 0)) {
        if (nup > UINT16_MAX) {
            rc = STORE_EINTERNAL;
        } else {
            unsigned char h[AGG_HDR] = {1, 0};
            put16(h + 2, (uint16_t)nup);
            put16(h + 4, (uint16_t)used);
            put16(h + 6, 0);
            buf_put(out, h, sizeof(h));
            for (size_t i = 0; i < nup; i++)
                buf_put(out, up[i], SEG_UPLOAD);
            for (int64_t k = 0; k < AGG_SLOTS; k++) {
                unsigned char e[AGG_ENTRY];
                uint64_t b;
                if (sl[k].rows == 0)
                    continue;
                put16(e, (uint16_t)k);
                put16(e + 2, sl[k].exact ? AGG_EXACT : 0);
                put32(e + 4, sl[k].rows);
                put32(e + 8, sl[k].n);
                memcpy(&b, &sl[k].sum, 8);
                put64(e + 12, b);
                memcpy(&b, &sl[k].mn, 8);
                put64(e + 20, b);
                memcpy(&b, &sl[k].mx, 8);
                put64(e + 28, b);
                buf_put(out, e, sizeof(e));
            }
        }
    }
    free(sl);
    free(up);
    free(w.text);
    wscratch_free(&x);
    return rc;
}

/* Fill the missing (row, type) aggregates of ids[] in one write
 * transaction: each row's bytes are read and aggregated there, so that what
 * is stored belongs to the row that has the id when it commits. */
static int agg_fill(struct store *st, const char *type, const int64_t *ids, size_t n)
{
    static const char get[] = "SELECT data, day FROM sample_days WHERE id = ?1";
    static const char put[] = "INSERT INTO sample_day_aggs (sample_day_id, metric_type, data) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT DO NOTHING";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    struct buf row = {0}, out = {0};
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t day = 0;
        int step;
        row.n = 0;
        out.n = 0;
        if ((rc = store_tx_stmt(tx, get, &s)) != 0)
            break;
        db_stmt_binary_results(s);
        db_bind_int64(s, 1, ids[i]);
        if ((step = db_step(s)) == DB_ROW) {
            size_t len = 0;
            const void *p = db_col_blob(s, 0, &len);
            day = db_col_int64(s, 1);
            if (p != NULL)
                rc = buf_put(&row, p, len);
        }
        db_stmt_reset(s);
        if (rc == 0 && step != DB_ROW && step != DB_DONE)
            rc = store_tx_fail(tx, step);
        if (rc != 0)
            break;
        if (step == DB_DONE)
            continue; /* gone since the read: nothing to fill */
        if ((rc = agg_compute(row.p, row.n, day, type, &out)) != 0)
            break;
        if ((rc = store_tx_stmt(tx, put, &s)) != 0)
            break;
        db_bind_int64(s, 1, ids[i]);
        db_bind_text(s, 2, type);
        db_bind_blob(s, 3, out.p, out.n);
        rc = store_tx_run(tx, s, NULL);
    }
    if (tx != NULL) {
        if (rc == 0)
            rc = store_tx_commit(tx);
        else
            store_tx_rollback(tx);
    }
    free(row.p);
    free(out.p);
    return rc;
}

/* One read of the aggregates; *missing gets the row ids without one. */
static int agg_read(struct store *st, const struct store_series_query *q, struct store_series_buckets *b, int *hit,
                    int64_t **missing, size_t *n_missing)
{
    static const char pending[] =
        "SELECT COUNT(*) FROM (SELECT 1 FROM uploads WHERE user_id = ?1 AND days_indexed = 0 LIMIT 1) p";
    static const char read[] = "SELECT d.id, d.day, a.data FROM sample_days d LEFT JOIN sample_day_aggs a"
                               " ON a.sample_day_id = d.id AND a.metric_type = ?4"
                               " WHERE d.user_id = ?1 AND d.day >= ?2 AND d.day <= ?3";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    struct live_uploads lu = {0};
    size_t cap = 0;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx), step = DB_DONE;
    *hit = 1;
    *n_missing = 0;
    b->samples = 0;
    memset(b->cnt, 0, q->n_buckets * sizeof(*b->cnt));
    memset(b->sum, 0, q->n_buckets * sizeof(*b->sum));
    if (rc != 0)
        return rc;
    if ((rc = store_tx_stmt(tx, pending, &s)) != 0)
        goto done;
    db_bind_text(s, 1, q->user_id);
    step = db_step(s);
    if (step != DB_ROW) {
        db_stmt_reset(s);
        rc = store_tx_fail(tx, step == DB_DONE ? STORE_EINTERNAL : step);
        goto done;
    }
    *hit = db_col_int64(s, 0) == 0;
    db_stmt_reset(s);
    if (!*hit || (rc = store_tx_stmt(tx, read, &s)) != 0)
        goto done;
    db_stmt_binary_results(s);
    db_bind_text(s, 1, q->user_id);
    db_bind_int64(s, 2, store_day_of(q->from_ms));
    db_bind_int64(s, 3, store_day_of(q->to_ms - 1));
    db_bind_text(s, 4, q->type);
    while (*hit && rc == 0 && (step = db_step(s)) == DB_ROW) {
        size_t len = 0;
        int64_t id = db_col_int64(s, 0), day = db_col_int64(s, 1);
        const unsigned char *p = db_col_is_null(s, 2) ? NULL : db_col_blob(s, 2, &len);
        if (p == NULL) {
            if (*n_missing == cap && (rc = grow(missing, &cap, sizeof(**missing), 64)) != 0)
                break;
            (*missing)[(*n_missing)++] = id;
            continue;
        }
        if (len < AGG_HDR || p[0] != 1) {
            *hit = 0;
            break;
        }
        size_t nup = get16(p + 2), ns = get16(p + 4);
        if (len != AGG_HDR + nup * SEG_UPLOAD + ns * AGG_ENTRY) {
            *hit = 0;
            break;
        }
        for (size_t i = 0; i < nup && rc == 0; i++) {
            const unsigned char *u = p + AGG_HDR + i * SEG_UPLOAD;
            if (live_index(&lu, u) >= 0)
                continue;
            if (!upload_id_plain(u)) {
                *hit = 0;
                break;
            }
            if (lu.n == lu.cap) {
                size_t nc = lu.cap ? lu.cap * 2 : 16;
                void *a = realloc(lu.id, nc * sizeof(*lu.id));
                if (a == NULL) {
                    rc = STORE_ENOMEM;
                    break;
                }
                lu.id = a;
                void *l = realloc(lu.live, nc);
                if (l == NULL) {
                    rc = STORE_ENOMEM;
                    break;
                }
                lu.live = l;
                lu.cap = nc;
            }
            memcpy(lu.id[lu.n], u, SEG_UPLOAD);
            lu.live[lu.n++] = 0;
        }
        const unsigned char *e = p + AGG_HDR + nup * SEG_UPLOAD;
        for (size_t i = 0; i < ns && *hit; i++, e += AGG_ENTRY) {
            uint16_t k = get16(e);
            int64_t at = day * DAY_MS + (int64_t)k * STORE_SERIES_SLOT_MS;
            if (k >= AGG_SLOTS) {
                *hit = 0;
                break;
            }
            if (at < q->from_ms || at >= q->to_ms)
                continue;
            uint32_t n = get32(e + 8);
            b->samples += get32(e + 4);
            if (n == 0)
                continue;
            size_t bi = (size_t)((at - q->from_ms) / q->bucket_ms);
            if (!(get16(e + 2) & AGG_EXACT) || bi >= q->n_buckets || b->cnt[bi] + (int64_t)n >= AGG_MAX_BUCKET_VALUES) {
                *hit = 0; /* not exactly the endpoint's sum: read the samples */
                break;
            }
            double sum, mn, mx;
            uint64_t v = get64(e + 12);
            memcpy(&sum, &v, 8);
            v = get64(e + 20);
            memcpy(&mn, &v, 8);
            v = get64(e + 28);
            memcpy(&mx, &v, 8);
            if (b->cnt[bi] == 0 || mn < b->min[bi])
                b->min[bi] = mn;
            if (b->cnt[bi] == 0 || mx > b->max[bi])
                b->max[bi] = mx;
            b->sum[bi] += sum;
            b->cnt[bi] += n;
        }
    }
    db_stmt_reset(s);
    if (rc == 0 && *hit && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    /* Segments of an upload deleted by a release that knew nothing of
     * days are left out of the window; these sums hold them. */
    if (rc == 0 && *hit && *n_missing == 0 && (rc = uploads_alive(tx, q->user_id, &lu)) == 0)
        for (size_t i = 0; i < lu.n; i++)
            if (!lu.live[i])
                *hit = 0;
done:
    store_tx_rollback(tx);
    free(lu.id);
    free(lu.live);
    return rc;
}

int store_series_aggregate(struct store *st, const struct store_series_query *q, struct store_series_buckets *b,
                           int *hit)
{
    int64_t *missing = NULL;
    size_t n_missing = 0;
    int rc = 0;
    *hit = 0;
    if (st == NULL || q == NULL || q->user_id == NULL || q->type == NULL || q->bucket_ms <= 0 || q->n_buckets == 0 ||
        q->to_ms <= q->from_ms)
        return STORE_EINVAL;
    /* Whole slots only: the buckets and both ends on 15-minute marks. */
    if (q->from_ms % STORE_SERIES_SLOT_MS != 0 || q->to_ms % STORE_SERIES_SLOT_MS != 0 ||
        q->bucket_ms % STORE_SERIES_SLOT_MS != 0)
        return 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = agg_read(st, q, b, hit, &missing, &n_missing);
        if (rc != 0 || !*hit || n_missing == 0)
            break;
        *hit = 0;
        if (attempt == 1)
            break; /* rows came and went meanwhile: read the samples */
        rc = agg_fill(st, q->type, missing, n_missing);
        if (rc != 0) {
            /* A cache that cannot be filled (a concurrent delete of the
             * row, a busy database) is no error: read the samples. */
            log_info("series: aggregates not filled; reading the samples", LOG_STR, "backend", store_backend_name(st),
                     LOG_INT, "rc", (long long)rc, LOG_END);
            rc = 0;
            break;
        }
    }
    free(missing);
    if (rc != 0)
        *hit = 0;
    return rc;
}
