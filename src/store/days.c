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
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/block.h"
#include "store/migrate.h"
#include "store/store_int.h"

#define DAY_MS 86400000LL
#define SEG_MAGIC 0xD1
#define SEG_BLOCK_MAGIC 0xD2
#define SEG_FULL_MAGIC 0xD3 /* a block of complete samples: the primary store */
#define ROW_SEALED 0x01     /* a row's bytes sealed by the store's sealer (KEYRING_BLOB_FORMAT) */
#define AGG_SEALED 0xA5     /* an aggregate entry: this byte, then the sealed entry */
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

#define buf store_buf /* store_int.h */

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

/* Tests write samples as the release before blocks became the primary
 * store did (rows in health_samples, unsealed 0xD2 window copies), to test
 * the union of rows and blocks and the backfill. */
static _Atomic int previous_release;

void store_samples_previous_release_for_test(int on) { previous_release = on; }
int store_samples_previous_release(void) { return previous_release; }

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

/* The text a user's day row is sealed to (with the user id): "block/<day>/v<format>". */
static void day_bound(int64_t day, char out[64]) { snprintf(out, 64, "block/%" PRId64 "/v%d", day, BLOCK_SEAL_FORMAT); }

/* Append a row's segments to b: its bytes as they are, or opened when the
 * row is sealed (STORE_EUNAVAILABLE without a sealer in this process). */
static int row_open(struct store_tx *tx, const char *user_id, int64_t day, const unsigned char *p, size_t n,
                    struct buf *b)
{
    const struct store_sealer *z = &tx->st->sealer;
    if (n == 0 || p[0] != ROW_SEALED)
        return buf_put(b, p, n);
    if (z->open == NULL) {
        snprintf(tx->err, sizeof(tx->err), "sample blocks are sealed and this process has no key ring");
        return STORE_EUNAVAILABLE;
    }
    char bound[64];
    unsigned char *plain = NULL;
    size_t len = 0;
    day_bound(day, bound);
    int rc = z->open(z->ctx, tx, user_id, bound, p, n, &plain, &len);
    if (rc == 0)
        rc = buf_put(b, plain, len);
    else
        rc = store_sealer_code(rc);
    if (plain != NULL)
        explicit_bzero(plain, len);
    free(plain);
    return rc;
}

int store_days_read_row(struct store_tx *tx, const char *user_id, int64_t day, const void *p, size_t n,
                        struct store_buf *b)
{
    return row_open(tx, user_id, day, p, n, b);
}

/* Step a bound statement whose columns are a day's bytes and its day, of
 * user_id's rows, and append them all to b (opened), in order; ends (may
 * be NULL) gets where each day's bytes end. Resets s. */
static int read_days(struct store_tx *tx, struct db_stmt *s, const char *user_id, struct buf *b, struct day_ends *ends)
{
    int rc = 0, step;
    int64_t last = 0;
    db_stmt_binary_results(s);
    while ((step = db_step(s)) == DB_ROW) {
        size_t len = 0;
        const void *p = db_col_blob(s, 0, &len);
        int64_t day = db_col_int64(s, 1);
        if (p != NULL && (rc = row_open(tx, user_id, day, p, len, b)) != 0)
            break;
        if (ends == NULL)
            continue;
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
    const struct store_sealer *z = &tx->st->sealer;
    struct db_stmt *s = NULL;
    unsigned char *blob = NULL;
    size_t blen = 0;
    int rc = 0, step;
    if (z->seal != NULL && !previous_release && !legacy_writes) {
        char bound[64];
        day_bound(day, bound);
        if ((rc = z->seal(z->ctx, tx, user_id, bound, p, n, &blob, &blen)) != 0)
            return store_sealer_code(rc);
        p = blob;
        n = blen;
    }
    if ((rc = store_tx_stmt(tx, sql, &s)) != 0) {
        free(blob);
        return rc;
    }
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    db_bind_blob(s, 3, p, n);
    step = db_step(s);
    free(blob);
    if (step != DB_ROW) {
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
    static const char all[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 AND day = ?2 ORDER BY id";
    struct db_stmt *s = NULL;
    struct buf b = {0};
    int rc = store_tx_stmt(tx, all, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    rc = read_days(tx, s, user_id, &b, NULL);
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

static int seg_next(const unsigned char *p, size_t n, size_t *at, const unsigned char **seg, uint32_t *len);

/* ---- the primary store: complete samples in sealed blocks ---------------- */

/*
 * Since issue #19 sample_days is where samples live: every stored sample is
 * a record of a 0xD3 segment (a block with every field: id, type, unit,
 * source, device, upload, times, values, quality, validation, version,
 * offset, hk_uuid, payload), and each row's bytes are sealed by the store's
 * sealer (the key ring; AD: the user and "block/<day>/v<format>"), so the
 * database holds no health value in the clear. health_samples keeps only
 * rows written by releases before this one until the backfill
 * (store_sample_rows_backfill) has moved them.
 *
 * Dedup: a sample's key is its hk_uuid (a HealthKit UUID, or the content
 * key the ingest derives for samples that have none), and a key is stored
 * once per user and UTC day of its start: a retried upload, an overlapping
 * import or a second device sending the same sample adds nothing. The keys
 * of a day are read from the day's blocks (and its legacy rows) when a
 * batch writes to it: no per-sample index. A key can only repeat on the
 * same day, because both kinds of key fix the start (a HealthKit sample
 * never changes; the content key hashes the start).
 *
 * Ids: per user, from users.sample_seq (migration 013), taken under the
 * user's sample lock so that ids follow append order as before; they start
 * 2^32 above the last legacy row id, so the (start_ms, id) order and the
 * API's cursors stay unique across rows and blocks.
 */

struct keyset {
    uint64_t *h;  /* open addressing, 0 = empty */
    uint32_t *at; /* the key's text in arena */
    size_t cap, n;
    struct buf arena;
};

static uint64_t key_hash(const char *k)
{
    uint64_t h = 14695981039346656037ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h | 1;
}

static void keyset_free(struct keyset *ks)
{
    free(ks->h);
    free(ks->at);
    free(ks->arena.p);
    memset(ks, 0, sizeof(*ks));
}

static int keyset_grow(struct keyset *ks)
{
    size_t nc = ks->cap ? ks->cap * 2 : 1024;
    uint64_t *h = calloc(nc, sizeof(*h));
    uint32_t *at = malloc(nc * sizeof(*at));
    if (h == NULL || at == NULL) {
        free(h);
        free(at);
        return STORE_ENOMEM;
    }
    for (size_t i = 0; i < ks->cap; i++) {
        if (ks->h[i] == 0)
            continue;
        size_t j = (size_t)ks->h[i] & (nc - 1);
        while (h[j] != 0)
            j = (j + 1) & (nc - 1);
        h[j] = ks->h[i];
        at[j] = ks->at[i];
    }
    free(ks->h);
    free(ks->at);
    ks->h = h;
    ks->at = at;
    ks->cap = nc;
    return 0;
}

/* *found = 1 when k is in the set; otherwise k is added. */
static int keyset_add(struct keyset *ks, const char *k, int *found)
{
    uint64_t h = key_hash(k);
    *found = 0;
    if ((ks->n + 1) * 2 > ks->cap && keyset_grow(ks) != 0)
        return STORE_ENOMEM;
    size_t j = (size_t)h & (ks->cap - 1);
    for (; ks->h[j] != 0; j = (j + 1) & (ks->cap - 1))
        if (ks->h[j] == h && strcmp((const char *)ks->arena.p + ks->at[j], k) == 0) {
            *found = 1;
            return 0;
        }
    size_t len = strlen(k) + 1;
    if (ks->arena.n + len > UINT32_MAX)
        return STORE_ENOMEM;
    uint32_t at = (uint32_t)ks->arena.n;
    if (buf_put(&ks->arena, k, len) != 0)
        return STORE_ENOMEM;
    ks->h[j] = h;
    ks->at[j] = at;
    ks->n++;
    return 0;
}

/* The keys already stored on a user's day: its blocks' hk_uuids and, while
 * the backfill has not moved them, its legacy rows'. */
static int day_keys(struct store_tx *tx, const char *user_id, int64_t day, struct keyset *ks)
{
    static const char rows[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 AND day = ?2 ORDER BY id";
    static const char legacy[] = "SELECT hk_uuid FROM health_samples WHERE user_id = ?1 AND start_ms >= ?2"
                                 " AND start_ms < ?3 AND hk_uuid IS NOT NULL";
    struct db_stmt *s = NULL;
    struct buf b = {0};
    size_t at = 0;
    const unsigned char *seg;
    uint32_t len;
    int rc, more, found, step;
    if (ks->cap)
        memset(ks->h, 0, ks->cap * sizeof(*ks->h));
    ks->n = 0;
    ks->arena.n = 0;
    if ((rc = store_tx_stmt(tx, rows, &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    rc = read_days(tx, s, user_id, &b, NULL);
    while (rc == 0 && (more = seg_next(b.p, b.n, &at, &seg, &len)) != 0) {
        struct block_reader *br = NULL;
        struct block_sample x;
        if (more < 0) {
            rc = STORE_EINTERNAL;
            break;
        }
        if (seg[0] != SEG_FULL_MAGIC)
            continue; /* a legacy window copy: its rows have the keys */
        if ((more = block_reader_open(seg + SEG_HDR, len - SEG_HDR, &br)) != 0) {
            rc = more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
            break;
        }
        while (rc == 0 && (more = block_reader_next(br, &x, NULL)) == 1)
            if (x.hk_uuid != NULL && x.hk_uuid[0] != '\0')
                rc = keyset_add(ks, x.hk_uuid, &found);
        if (rc == 0 && more < 0)
            rc = more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
        block_reader_free(br);
    }
    if (b.p != NULL)
        explicit_bzero(b.p, b.n);
    free(b.p);
    int rows_left = 0;
    if (rc == 0)
        rc = store_legacy_rows(tx, &rows_left);
    if (rc != 0 || !rows_left || (rc = store_tx_stmt(tx, legacy, &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day * DAY_MS);
    db_bind_int64(s, 3, (day + 1) * DAY_MS);
    while (rc == 0 && (step = db_step(s)) == DB_ROW) {
        const char *k = db_col_text(s, 0);
        if (k != NULL && k[0] != '\0')
            rc = keyset_add(ks, k, &found);
    }
    db_stmt_reset(s);
    return rc == 0 && step != DB_DONE ? store_tx_fail(tx, step) : rc;
}

/* n new sample ids for a user: *first .. *first + n - 1. */
static int alloc_ids(struct store_tx *tx, const char *user_id, int64_t n, int64_t *first)
{
    static const char sql[] = "UPDATE users SET sample_seq = CASE WHEN sample_seq > 0 THEN sample_seq"
                              " ELSE (SELECT COALESCE(MAX(id), 0) FROM health_samples) + 4294967296 END + ?2"
                              " WHERE id = ?1 RETURNING sample_seq";
    /* After 014 the table is gone, and it was empty when it went: the
     * subquery's answer would be 0. */
    static const char no_rows[] = "UPDATE users SET sample_seq = CASE WHEN sample_seq > 0 THEN sample_seq"
                                  " ELSE 4294967296 END + ?2 WHERE id = ?1 RETURNING sample_seq";
    struct db_stmt *s = NULL;
    int rows = 0, step;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || (rc = store_tx_stmt(tx, rows ? sql : no_rows, &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, n);
    if ((step = db_step(s)) != DB_ROW) {
        db_stmt_reset(s);
        return store_tx_fail(tx, step == DB_DONE ? STORE_EINTERNAL : step);
    }
    *first = db_col_int64(s, 0) - n + 1;
    db_stmt_reset(s);
    return 0;
}

static int start_order(const void *a, const void *b, void *ctx)
{
    const struct store_sample *v = ctx;
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    if (v[i].start_ms != v[j].start_ms)
        return v[i].start_ms < v[j].start_ms ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* A block's sample from a store sample (pointers borrowed). */
static void block_from_sample(struct block_sample *b, const struct store_sample *x, int64_t id)
{
    b->id = id;
    b->start_ms = x->start_ms;
    b->end_ms = x->end_ms;
    b->value = x->value;
    b->value2 = x->value2;
    b->quality = x->quality_score;
    b->utc_offset_min = store_sample_payload_offset(x->payload);
    b->processing_version = x->processing_version ? x->processing_version : STORE_PROCESSING_VERSION;
    b->metric_type = x->metric_type;
    b->unit = x->unit;
    b->source = x->source;
    b->device = x->device;
    b->upload_id = x->upload_id;
    b->validation_status = x->validation_status[0] ? x->validation_status : "valid";
    b->hk_uuid = x->hk_uuid[0] ? x->hk_uuid : NULL;
    b->payload = x->payload;
}

/* Append a 0xD3 segment holding bs[0..n) (sorted by start, then id) to out. */
static int seg_write_full(const struct block_sample *bs, size_t n, const char *upload_id, struct buf *out)
{
    unsigned char *b = NULL;
    size_t blen = 0;
    int brc = block_encode(bs, n, &b, &blen);
    if (brc != 0)
        return brc == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINVAL;
    int rc = SEG_HDR + blen > UINT32_MAX ? STORE_EINVAL : buf_reserve(out, SEG_HDR + blen);
    if (rc == 0) {
        unsigned char *h = out->p + out->n;
        memset(h, 0, SEG_HDR);
        h[0] = SEG_FULL_MAGIC;
        put32(h + 8, (uint32_t)n);
        put32(h + 12, (uint32_t)(SEG_HDR + blen));
        if (upload_id != NULL)
            memcpy(h + 16, upload_id, strnlen(upload_id, SEG_UPLOAD));
        memcpy(h + SEG_HDR, b, blen);
        out->n += SEG_HDR + blen;
    }
    free(b);
    return rc;
}

int store_days_insert(struct store_tx *tx, const struct store_sample *v, size_t n, unsigned char *in, size_t *total)
{
    uint32_t *ix = malloc((n ? n : 1) * sizeof(*ix)), *run = malloc((n ? n : 1) * sizeof(*run));
    int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
    struct block_sample *bs = malloc((n ? n : 1) * sizeof(*bs));
    struct keyset ks = {0};
    struct buf out = {0};
    int rc = ix && run && ids && bs ? 0 : STORE_ENOMEM;
    *total = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        ix[i] = (uint32_t)i;
    if (rc == 0)
        qsort_r(ix, n, sizeof(*ix), sample_order, (void *)v);
    /* 1. Which samples are new: per (user, day), against the day's keys and
     * the batch's earlier samples. */
    for (size_t a = 0; rc == 0 && a < n;) {
        const struct store_sample *first = &v[ix[a]];
        int64_t day = store_day_of(first->start_ms);
        size_t b = a;
        rc = day_keys(tx, first->user_id, day, &ks);
        for (; rc == 0 && b < n && strcmp(v[ix[b]].user_id, first->user_id) == 0 &&
               store_day_of(v[ix[b]].start_ms) == day;
             b++) {
            int found = 0;
            if (v[ix[b]].hk_uuid[0] != '\0')
                rc = keyset_add(&ks, v[ix[b]].hk_uuid, &found);
            in[ix[b]] = !found;
        }
        a = b;
    }
    /* 2. Ids per user, in batch order. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!in[i] || ids[i] != 0)
            continue;
        int64_t cnt = 0, next = 0;
        for (size_t j = i; j < n; j++)
            cnt += in[j] && strcmp(v[j].user_id, v[i].user_id) == 0;
        if ((rc = alloc_ids(tx, v[i].user_id, cnt, &next)) != 0)
            break;
        for (size_t j = i; j < n; j++)
            if (in[j] && strcmp(v[j].user_id, v[i].user_id) == 0)
                ids[j] = next++;
    }
    /* 3. Each (user, day): one new row of segments, one per upload run. */
    for (size_t a = 0; rc == 0 && a < n;) {
        const struct store_sample *first = &v[ix[a]];
        int64_t day = store_day_of(first->start_ms);
        size_t b = a;
        out.n = 0;
        while (rc == 0 && b < n && strcmp(v[ix[b]].user_id, first->user_id) == 0 &&
               store_day_of(v[ix[b]].start_ms) == day) {
            const char *up = v[ix[b]].upload_id;
            size_t m = 0;
            for (; b < n && strcmp(v[ix[b]].user_id, first->user_id) == 0 && store_day_of(v[ix[b]].start_ms) == day &&
                   strcmp(v[ix[b]].upload_id, up) == 0;
                 b++)
                if (in[ix[b]])
                    run[m++] = ix[b];
            if (m == 0)
                continue;
            qsort_r(run, m, sizeof(*run), start_order, (void *)v);
            for (size_t k = 0; k < m; k++)
                block_from_sample(&bs[k], &v[run[k]], ids[run[k]]);
            if ((rc = seg_write_full(bs, m, up, &out)) == STORE_EINVAL)
                snprintf(tx->err, sizeof(tx->err), "a sample the block format cannot hold");
            *total += m;
        }
        if (rc == 0)
            rc = day_write(tx, first->user_id, day, &out, 1);
        a = b;
    }
    if (out.p != NULL)
        explicit_bzero(out.p, out.n);
    free(out.p);
    keyset_free(&ks);
    free(ix);
    free(run);
    free(ids);
    free(bs);
    return rc;
}

/* A day's legacy rows (health_samples, before the backfill) as segments
 * appended to out, in id order (segments break where the upload changes). */
static int legacy_segments(struct store_tx *tx, const char *user_id, int64_t day, struct buf *out)
{
    static const char sql[] = "SELECT upload_id, metric_type, start_ms, end_ms, value, source, device, payload,"
                              " utc_offset_min FROM health_samples"
                              " WHERE user_id = ?1 AND start_ms >= ?2 AND start_ms < ?3 ORDER BY id";
    struct db_stmt *s = NULL;
    struct seg sg;
    char upload[STORE_ID_LEN] = "";
    int rows = 0, step, started = 0;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || !rows || (rc = store_tx_stmt(tx, sql, &s)) != 0)
        return rc;
    memset(&sg, 0, sizeof(sg));
    db_stmt_binary_results(s);
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day * DAY_MS);
    db_bind_int64(s, 3, (day + 1) * DAY_MS);
    while ((step = db_step(s)) == DB_ROW) {
        const char *up = db_col_text(s, 0);
        if (!started || strcmp(upload, up ? up : "") != 0) {
            if ((rc = seg_flush(&sg, out)) != 0)
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
        if ((rc = seg_push(&sg, out, &d)) != 0)
            break;
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    if (rc == 0)
        rc = seg_flush(&sg, out);
    seg_free(&sg);
    return rc;
}

static int day_rebuild(struct store_tx *tx, const char *user_id, int64_t day);

#define DAY_EXPR "(start_ms - (((start_ms % 86400000) + 86400000) % 86400000)) / 86400000"

/* Step a bound statement whose column 0 is a day into a new array (*days,
 * *n; nothing on failure); resets s. */
static int collect_days(struct store_tx *tx, struct db_stmt *s, int64_t **days, size_t *n)
{
    size_t cap = 0;
    int rc = 0, step;
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

/* The days an upload's samples fall on, ascending (caller frees *days). */
static int upload_days(struct store_tx *tx, const char *upload_id, int64_t **days, size_t *n)
{
    static const char sql[] = "SELECT DISTINCT " DAY_EXPR " AS d FROM health_samples WHERE upload_id = ?1 ORDER BY d";
    struct db_stmt *s = NULL;
    int rows = 0;
    int rc = store_legacy_rows_now(tx, &rows); /* deletes: see store_int.h */
    *days = NULL;
    *n = 0;
    if (rc != 0 || !rows || (rc = store_tx_stmt(tx, sql, &s)) != 0)
        return rc;
    db_bind_text(s, 1, upload_id);
    return collect_days(tx, s, days, n);
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
    if (n - *at < SEG_HDR || (p[*at] != SEG_MAGIC && p[*at] != SEG_BLOCK_MAGIC && p[*at] != SEG_FULL_MAGIC))
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
    return rc == BLOCK_ENOMEM ? STORE_ENOMEM : rc;
}

/* Decode one segment's records inside [from, to) into x. */
static int seg_decode(const unsigned char *seg, uint32_t len, const struct store_window_query *q, struct wscratch *x,
                      struct store_window *w)
{
    if (seg[0] == SEG_BLOCK_MAGIC || seg[0] == SEG_FULL_MAGIC)
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
    rc = read_days(tx, s, q->user_id, &all, &ends);

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
    static const char get[] = "SELECT data, day, user_id FROM sample_days WHERE id = ?1";
    static const char put[] = "INSERT INTO sample_day_aggs (sample_day_id, metric_type, data) VALUES (?1, ?2, ?3)"
                              " ON CONFLICT DO NOTHING";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    struct buf row = {0}, out = {0};
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t day = 0;
        int step;
        char user[STORE_ID_LEN] = "";
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
            store_col_copy(s, 2, user, sizeof(user));
            if (p != NULL)
                rc = row_open(tx, user, day, p, len, &row);
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
        /* The sums are health values too: sealed like the row they sum. */
        unsigned char *blob = NULL;
        size_t blen = 0;
        if (st->sealer.seal != NULL) {
            char bound[96];
            snprintf(bound, sizeof(bound), "agg/%" PRId64 "/%.48s", ids[i], type);
            unsigned char *b = NULL;
            if ((rc = st->sealer.seal(st->sealer.ctx, tx, user, bound, out.p, out.n, &b, &blen)) != 0) {
                rc = store_sealer_code(rc);
                break;
            }
            if ((blob = malloc(blen + 1)) != NULL) {
                blob[0] = AGG_SEALED;
                memcpy(blob + 1, b, blen);
                blen++;
            }
            free(b);
            if (blob == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
        }
        if ((rc = store_tx_stmt(tx, put, &s)) != 0) {
            free(blob);
            break;
        }
        db_bind_int64(s, 1, ids[i]);
        db_bind_text(s, 2, type);
        if (blob != NULL)
            db_bind_blob(s, 3, blob, blen);
        else
            db_bind_blob(s, 3, out.p, out.n);
        rc = store_tx_run(tx, s, NULL);
        free(blob);
    }
    if (tx != NULL) {
        if (rc == 0)
            rc = store_tx_commit(tx);
        else
            store_tx_rollback(tx);
    }
    if (row.p != NULL)
        explicit_bzero(row.p, row.n);
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
    unsigned char *plain = NULL; /* an opened aggregate */
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
        if (len > 0 && p[0] == AGG_SEALED) {
            char bound[96];
            size_t plen = 0;
            free(plain);
            plain = NULL;
            if (st->sealer.open == NULL) {
                rc = STORE_EUNAVAILABLE;
                break;
            }
            snprintf(bound, sizeof(bound), "agg/%" PRId64 "/%.48s", id, q->type);
            if ((rc = st->sealer.open(st->sealer.ctx, tx, q->user_id, bound, p + 1, len - 1, &plain, &plen)) != 0) {
                rc = store_sealer_code(rc);
                break;
            }
            p = plain;
            len = plen;
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
    free(plain);
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

/* ---- rewriting days: upload deletes and the heal --------------------------- */

static int lu_add(struct live_uploads *lu, const unsigned char *u)
{
    if (live_index(lu, u) >= 0)
        return 0;
    if (lu->n == lu->cap) {
        size_t nc = lu->cap ? lu->cap * 2 : 16;
        void *a = realloc(lu->id, nc * sizeof(*lu->id));
        if (a == NULL)
            return STORE_ENOMEM;
        lu->id = a;
        void *b = realloc(lu->live, nc);
        if (b == NULL)
            return STORE_ENOMEM;
        lu->live = b;
        lu->cap = nc;
    }
    memcpy(lu->id[lu->n], u, SEG_UPLOAD);
    lu->live[lu->n++] = 0;
    return 0;
}

/* Append the 0xD3 segments of p (n bytes) whose upload still exists (or
 * that have none) to out. */
static int keep_full_segments(struct store_tx *tx, const char *user_id, const unsigned char *p, size_t n,
                              struct buf *out)
{
    struct live_uploads lu = {0};
    size_t at = 0;
    const unsigned char *seg;
    uint32_t len;
    int rc = 0, more;
    while (rc == 0 && (more = seg_next(p, n, &at, &seg, &len)) != 0) {
        if (more < 0)
            rc = STORE_EINTERNAL;
        else if (seg[0] == SEG_FULL_MAGIC && seg[16] != 0)
            rc = upload_id_plain(seg + 16) ? lu_add(&lu, seg + 16) : STORE_EINTERNAL;
    }
    if (rc == 0)
        rc = uploads_alive(tx, user_id, &lu);
    at = 0;
    while (rc == 0 && seg_next(p, n, &at, &seg, &len) > 0)
        if (seg[0] == SEG_FULL_MAGIC && (seg[16] == 0 || lu.live[live_index(&lu, seg + 16)]))
            rc = buf_put(out, seg, len);
    free(lu.id);
    free(lu.live);
    return rc;
}

/* Write a day again: its legacy rows as segments (they have the lowest
 * ids), then its blocks' samples whose upload still exists. */
static int day_rebuild(struct store_tx *tx, const char *user_id, int64_t day)
{
    static const char all[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 AND day = ?2 ORDER BY id";
    struct db_stmt *s = NULL;
    struct buf cur = {0}, out = {0};
    int rc = store_tx_stmt(tx, all, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    rc = read_days(tx, s, user_id, &cur, NULL);
    if (rc == 0)
        rc = legacy_segments(tx, user_id, day, &out);
    if (rc == 0)
        rc = keep_full_segments(tx, user_id, cur.p, cur.n, &out);
    if (rc == 0)
        rc = day_write(tx, user_id, day, &out, 0);
    if (cur.p != NULL)
        explicit_bzero(cur.p, cur.n);
    if (out.p != NULL)
        explicit_bzero(out.p, out.n);
    free(cur.p);
    free(out.p);
    return rc;
}

/* The days whose blocks hold samples of upload_id, ascending, added to
 * *days (which has *n of *cap). Reads (opens) every row of the user. */
static int upload_block_days(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t **days, size_t *n,
                             size_t *cap)
{
    static const char all[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 ORDER BY day, id";
    unsigned char u[SEG_UPLOAD];
    struct db_stmt *s = NULL;
    struct buf b = {0};
    int rc = store_tx_stmt(tx, all, &s), step;
    if (rc != 0)
        return rc;
    memset(u, 0, sizeof(u));
    memcpy(u, upload_id, strnlen(upload_id, SEG_UPLOAD));
    db_stmt_binary_results(s);
    db_bind_text(s, 1, user_id);
    while (rc == 0 && (step = db_step(s)) == DB_ROW) {
        size_t len = 0, at = 0;
        const void *p = db_col_blob(s, 0, &len);
        int64_t day = db_col_int64(s, 1);
        const unsigned char *seg;
        uint32_t sl;
        int more, hit = 0;
        b.n = 0;
        if (p == NULL || (*n > 0 && (*days)[*n - 1] == day))
            continue;
        if ((rc = row_open(tx, user_id, day, p, len, &b)) != 0)
            break;
        while (!hit && (more = seg_next(b.p, b.n, &at, &seg, &sl)) > 0)
            hit = seg[0] == SEG_FULL_MAGIC && memcmp(seg + 16, u, SEG_UPLOAD) == 0;
        if (hit && *n == *cap && (rc = grow(days, cap, sizeof(**days), 16)) != 0)
            break;
        if (hit)
            (*days)[(*n)++] = day;
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_ROW && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    if (b.p != NULL)
        explicit_bzero(b.p, b.n);
    free(b.p);
    return rc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int store_days_upload_deleting(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t **days,
                               size_t *n)
{
    int rc = store_days_lock_user(tx, user_id);
    size_t cap;
    if (rc != 0 || (rc = upload_days(tx, upload_id, days, n)) != 0)
        return rc;
    cap = *n;
    if ((rc = upload_block_days(tx, user_id, upload_id, days, n, &cap)) != 0) {
        free(*days);
        *days = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) {
        size_t m = 1;
        qsort(*days, *n, sizeof(**days), cmp_i64);
        for (size_t i = 1; i < *n; i++)
            if ((*days)[i] != (*days)[m - 1])
                (*days)[m++] = (*days)[i];
        *n = m;
    }
    return 0;
}

/* ---- for the readers (samples.c) ------------------------------------------- */

int store_days_list(struct store_tx *tx, const char *user_id, int64_t from_day, int64_t to_day, int desc,
                    int64_t **days, size_t *n)
{
    static const char asc[] = "SELECT DISTINCT day FROM sample_days WHERE user_id = ?1 AND day >= ?2 AND day <= ?3"
                              " ORDER BY day";
    static const char dsc[] = "SELECT DISTINCT day FROM sample_days WHERE user_id = ?1 AND day >= ?2 AND day <= ?3"
                              " ORDER BY day DESC";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, desc ? dsc : asc, &s);
    *days = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, from_day);
    db_bind_int64(s, 3, to_day);
    return collect_days(tx, s, days, n);
}

int store_days_load(struct store_tx *tx, const char *user_id, int64_t day, struct store_buf *b)
{
    static const char all[] = "SELECT data, day FROM sample_days WHERE user_id = ?1 AND day = ?2 ORDER BY id";
    struct db_stmt *s = NULL;
    int rc = store_tx_stmt(tx, all, &s);
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day);
    return read_days(tx, s, user_id, b, NULL);
}

int store_days_segment(const unsigned char *p, size_t n, size_t *at, const unsigned char **upload,
                       const unsigned char **block, size_t *block_len, uint32_t *count)
{
    const unsigned char *seg;
    uint32_t len;
    int more = seg_next(p, n, at, &seg, &len);
    if (more <= 0)
        return more;
    *upload = seg + 16;
    *count = get32(seg + 8);
    *block = seg[0] == SEG_FULL_MAGIC ? seg + SEG_HDR : NULL;
    *block_len = len - SEG_HDR;
    return 1;
}

/* ---- the backfill: legacy rows moved into blocks --------------------------- */

/* A legacy day's rows as store samples, in id order (caller frees each
 * payload and the array). */
static int legacy_day_samples(struct store_tx *tx, const char *user_id, int64_t day, struct store_sample **out,
                              size_t *n)
{
    static const char sql[] = "SELECT id, upload_id, metric_type, start_ms, end_ms, value, value2, unit, source,"
                              " device, hk_uuid, payload, quality_score, validation_status, processing_version"
                              " FROM health_samples WHERE user_id = ?1 AND start_ms >= ?2 AND start_ms < ?3"
                              " ORDER BY id";
    struct db_stmt *s = NULL;
    size_t cap = 0;
    int rc = store_tx_stmt(tx, sql, &s), step;
    *out = NULL;
    *n = 0;
    if (rc != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    db_bind_int64(s, 2, day * DAY_MS);
    db_bind_int64(s, 3, (day + 1) * DAY_MS);
    while ((step = db_step(s)) == DB_ROW) {
        if (*n == cap && (rc = grow(out, &cap, sizeof(**out), 256)) != 0)
            break;
        struct store_sample *x = &(*out)[*n];
        memset(x, 0, sizeof(*x));
        x->id = db_col_int64(s, 0);
        snprintf(x->user_id, sizeof(x->user_id), "%s", user_id);
        store_col_copy(s, 1, x->upload_id, sizeof(x->upload_id));
        store_col_copy(s, 2, x->metric_type, sizeof(x->metric_type));
        x->start_ms = db_col_int64(s, 3);
        x->end_ms = db_col_int64(s, 4);
        x->value = db_col_is_null(s, 5) ? NAN : db_col_double(s, 5);
        x->value2 = db_col_is_null(s, 6) ? NAN : db_col_double(s, 6);
        store_col_copy(s, 7, x->unit, sizeof(x->unit));
        store_col_copy(s, 8, x->source, sizeof(x->source));
        store_col_copy(s, 9, x->device, sizeof(x->device));
        store_col_copy(s, 10, x->hk_uuid, sizeof(x->hk_uuid));
        x->quality_score = db_col_is_null(s, 12) ? NAN : db_col_double(s, 12);
        store_col_copy(s, 13, x->validation_status, sizeof(x->validation_status));
        x->processing_version = (int)db_col_int64(s, 14);
        const char *pl = db_col_text(s, 11);
        (*n)++;
        if (pl != NULL && (x->payload = strdup(pl)) == NULL) {
            rc = STORE_ENOMEM;
            break;
        }
    }
    db_stmt_reset(s);
    if (rc == 0 && step != DB_DONE)
        rc = store_tx_fail(tx, step);
    return rc;
}

/* Move one legacy day of a user into blocks: its rows become 0xD3
 * segments with their ids (first: the lowest ids), followed by the day's
 * blocks of live uploads; its legacy window copies go; its rows are
 * deleted. *moved: how many samples. */
static int move_day(struct store_tx *tx, const char *user_id, int64_t day, int64_t *moved)
{
    struct store_sample *v = NULL;
    size_t n = 0;
    struct buf cur = {0}, out = {0};
    struct block_sample *bs = NULL;
    uint32_t *run = NULL;
    int rc = legacy_day_samples(tx, user_id, day, &v, &n);
    if (rc == 0 && n > 0 && ((bs = malloc(n * sizeof(*bs))) == NULL || (run = malloc(n * sizeof(*run))) == NULL))
        rc = STORE_ENOMEM;
    for (size_t a = 0; rc == 0 && a < n;) {
        size_t m = 0, b = a;
        for (; b < n && strcmp(v[b].upload_id, v[a].upload_id) == 0; b++)
            run[m++] = (uint32_t)b;
        qsort_r(run, m, sizeof(*run), start_order, v);
        for (size_t k = 0; k < m; k++)
            block_from_sample(&bs[k], &v[run[k]], v[run[k]].id);
        rc = seg_write_full(bs, m, v[a].upload_id, &out);
        a = b;
    }
    if (rc == 0 && (rc = store_days_load(tx, user_id, day, &cur)) == 0 &&
        (rc = keep_full_segments(tx, user_id, cur.p, cur.n, &out)) == 0)
        rc = day_write(tx, user_id, day, &out, 0);
    if (rc == 0) {
        struct db_stmt *s = NULL;
        if ((rc = store_tx_stmt(tx,
                                "DELETE FROM health_samples WHERE user_id = ?1 AND start_ms >= ?2"
                                " AND start_ms < ?3",
                                &s)) == 0) {
            db_bind_text(s, 1, user_id);
            db_bind_int64(s, 2, day * DAY_MS);
            db_bind_int64(s, 3, (day + 1) * DAY_MS);
            rc = store_tx_run(tx, s, NULL);
        }
    }
    *moved = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        free(v[i].payload);
    if (v != NULL)
        explicit_bzero(v, n * sizeof(*v));
    free(v);
    free(bs);
    free(run);
    if (cur.p != NULL)
        explicit_bzero(cur.p, cur.n);
    if (out.p != NULL)
        explicit_bzero(out.p, out.n);
    free(cur.p);
    free(out.p);
    return rc;
}

/* One batch of days in one write transaction; *seen: days moved. */
static int backfill_batch(struct store *st, size_t batch, struct store_backfill_stats *stats)
{
    size_t seen = 0;
    static const char next[] = "SELECT user_id, start_ms FROM health_samples ORDER BY user_id DESC, start_ms LIMIT 1";
    static const char left[] = "SELECT 1 FROM health_samples WHERE user_id = ?1 LIMIT 1";
    static const char indexed[] = "UPDATE uploads SET days_indexed = 1 WHERE user_id = ?1 AND days_indexed = 0";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx), step, rows = 0;
    if (rc != 0)
        return rc;
    if ((rc = store_legacy_rows(tx, &rows)) == 0 && !rows)
        stats->done = 1; /* 014 dropped the table: nothing was left to move */
    while (rc == 0 && rows && seen < batch) {
        char user[STORE_ID_LEN];
        int64_t start, moved = 0;
        if ((rc = store_tx_stmt(tx, next, &s)) != 0)
            break;
        step = db_step(s);
        if (step == DB_ROW) {
            store_col_copy(s, 0, user, sizeof(user));
            start = db_col_int64(s, 1);
        }
        db_stmt_reset(s);
        if (step == DB_DONE) {
            stats->done = 1;
            break;
        }
        if (step != DB_ROW) {
            rc = store_tx_fail(tx, step);
            break;
        }
        if ((rc = store_days_lock_user(tx, user)) != 0 || (rc = move_day(tx, user, store_day_of(start), &moved)) != 0)
            break;
        stats->days++;
        stats->samples += moved;
        seen++;
        /* The user's last row moved: every upload of theirs is in its days. */
        if ((rc = store_tx_stmt(tx, left, &s)) != 0)
            break;
        db_bind_text(s, 1, user);
        step = db_step(s);
        db_stmt_reset(s);
        if (step == DB_DONE && (rc = store_tx_stmt(tx, indexed, &s)) == 0) {
            db_bind_text(s, 1, user);
            rc = store_tx_run(tx, s, NULL);
        } else if (step != DB_ROW && step != DB_DONE) {
            rc = store_tx_fail(tx, step);
        }
    }
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    return rc;
}

/* Batches of `one` until it reports done or fn stops it; a failed batch
 * rolled back whole, so the stats go back to before it. */
static int run_batches(struct store *st, size_t batch,
                       int (*one)(struct store *, size_t, struct store_backfill_stats *), store_backfill_fn fn,
                       void *ctx, struct store_backfill_stats *stats)
{
    if (st == NULL || stats == NULL)
        return STORE_EINVAL;
    if (batch == 0)
        batch = 20;
    stats->done = 0;
    for (;;) {
        struct store_backfill_stats before = *stats;
        int rc = one(st, batch, stats);
        if (rc != 0) {
            *stats = before;
            return rc;
        }
        if ((fn != NULL && fn(ctx, stats) != 0) || stats->done)
            return 0;
    }
}

int store_sample_rows_backfill(struct store *st, size_t batch, store_backfill_fn fn, void *ctx,
                               struct store_backfill_stats *stats)
{
    return run_batches(st, batch, backfill_batch, fn, ctx, stats);
}

/* ---- the rollback: blocks back into rows ----------------------------------- */

/* Samples of the 0xD3 segments of p[0..n), as store samples of user_id
 * appended to *v (payloads owned). */
static int full_samples(const unsigned char *p, size_t n, const char *user_id, struct store_sample **v, size_t *nv,
                        size_t *cap)
{
    size_t at = 0;
    const unsigned char *seg;
    uint32_t len;
    int rc = 0, more;
    while (rc == 0 && (more = seg_next(p, n, &at, &seg, &len)) != 0) {
        struct block_reader *br = NULL;
        struct block_sample b;
        if (more < 0)
            return STORE_EINTERNAL;
        if (seg[0] != SEG_FULL_MAGIC)
            continue;
        if ((more = block_reader_open(seg + SEG_HDR, len - SEG_HDR, &br)) != 0)
            return more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
        while (rc == 0 && (more = block_reader_next(br, &b, NULL)) == 1) {
            if (*nv == *cap && (rc = grow(v, cap, sizeof(**v), 256)) != 0)
                break;
            struct store_sample *x = &(*v)[(*nv)++];
            memset(x, 0, sizeof(*x));
            x->id = b.id;
            snprintf(x->user_id, sizeof(x->user_id), "%s", user_id);
            snprintf(x->upload_id, sizeof(x->upload_id), "%s", b.upload_id ? b.upload_id : "");
            snprintf(x->metric_type, sizeof(x->metric_type), "%s", b.metric_type ? b.metric_type : "");
            x->start_ms = b.start_ms;
            x->end_ms = b.end_ms;
            x->value = b.value;
            x->value2 = b.value2;
            x->quality_score = b.quality;
            snprintf(x->unit, sizeof(x->unit), "%s", b.unit ? b.unit : "");
            snprintf(x->source, sizeof(x->source), "%s", b.source ? b.source : "");
            snprintf(x->device, sizeof(x->device), "%s", b.device ? b.device : "");
            snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%s", b.hk_uuid ? b.hk_uuid : "");
            snprintf(x->validation_status, sizeof(x->validation_status), "%s",
                     b.validation_status ? b.validation_status : "");
            x->processing_version = b.processing_version;
            if (b.payload != NULL && (x->payload = strdup(b.payload)) == NULL)
                rc = STORE_ENOMEM;
        }
        if (rc == 0 && more < 0)
            rc = more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
        block_reader_free(br);
    }
    return rc;
}

/* Put one user-day's block samples back into rows and its bytes back as
 * unsealed window copies; *moved: how many samples (0: nothing to do). */
static int unmove_day(struct store_tx *tx, const char *user_id, int64_t day, int64_t *moved)
{
    struct buf cur = {0}, live = {0}, out = {0};
    struct store_sample *v = NULL;
    size_t n = 0, cap = 0;
    int rc = store_days_load(tx, user_id, day, &cur);
    *moved = 0;
    if (rc == 0)
        rc = keep_full_segments(tx, user_id, cur.p, cur.n, &live);
    if (rc == 0)
        rc = full_samples(live.p, live.n, user_id, &v, &n, &cap);
    if (rc == 0 && n > 0)
        rc = store_sample_rows_put(tx, v, n);
    if (rc == 0)
        rc = legacy_segments(tx, user_id, day, &out);
    if (rc == 0) {
        int was = previous_release;
        previous_release = 1; /* unsealed, as the release before blocks wrote */
        rc = day_write(tx, user_id, day, &out, 0);
        previous_release = was;
    }
    *moved = (int64_t)n;
    for (size_t i = 0; i < n; i++)
        free(v[i].payload);
    free(v);
    if (cur.p != NULL)
        explicit_bzero(cur.p, cur.n);
    if (live.p != NULL)
        explicit_bzero(live.p, live.n);
    free(cur.p);
    free(live.p);
    free(out.p);
    return rc;
}

static int unmove_batch(struct store *st, size_t batch, struct store_backfill_stats *stats)
{
    static const char next[] = "SELECT user_id, day FROM sample_days WHERE (user_id, day) > (?1, ?2)"
                               " ORDER BY user_id, day LIMIT 1";
    struct store_tx *tx = NULL;
    struct db_stmt *s = NULL;
    size_t seen = 0;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx), step;
    if (rc != 0)
        return rc;
    while (rc == 0 && seen < batch) {
        char user[STORE_ID_LEN];
        int64_t day = 0, moved = 0;
        if ((rc = store_tx_stmt(tx, next, &s)) != 0)
            break;
        db_bind_text(s, 1, stats->cursor_user);
        db_bind_int64(s, 2, stats->cursor_day);
        step = db_step(s);
        if (step == DB_ROW) {
            store_col_copy(s, 0, user, sizeof(user));
            day = db_col_int64(s, 1);
        }
        db_stmt_reset(s);
        if (step == DB_DONE) {
            stats->done = 1;
            break;
        }
        if (step != DB_ROW) {
            rc = store_tx_fail(tx, step);
            break;
        }
        if ((rc = store_days_lock_user(tx, user)) != 0 || (rc = unmove_day(tx, user, day, &moved)) != 0)
            break;
        snprintf(stats->cursor_user, sizeof(stats->cursor_user), "%s", user);
        stats->cursor_day = day;
        stats->days += moved > 0;
        stats->samples += moved;
        seen++;
    }
    if (rc == 0)
        rc = store_tx_commit(tx);
    else
        store_tx_rollback(tx);
    return rc;
}

int store_sample_blocks_to_rows(struct store *st, size_t batch, store_backfill_fn fn, void *ctx,
                                struct store_backfill_stats *stats)
{
    /* The rows go back into health_samples: after 014 the table is made
     * again first (and 014 forgotten). */
    char err[256];
    int undone = 0;
    int rc = store_migrate_undo_014(st, &undone, err, sizeof(err));
    if (rc != 0) {
        log_warning("samples-to-rows: cannot undo 014", LOG_STR, "error", err, LOG_END);
        return rc;
    }
    if ((rc = run_batches(st, batch, unmove_batch, fn, ctx, stats)) != 0 || st->backend != DB_POSTGRES)
        return rc;
    /* The rows came back with their ids, which do not move an identity
     * column's sequence; a table made again by the undo starts it at 1, and
     * the release before (which inserts without ids, ON CONFLICT DO NOTHING)
     * would then take its new samples for duplicates of restored ones. */
    rc = store_admin_exec(st,
                          "SELECT setval(pg_get_serial_sequence('health_samples', 'id'), COALESCE(MAX(id), 1),"
                          " MAX(id) IS NOT NULL) FROM health_samples",
                          err, sizeof(err));
    if (rc != 0)
        log_warning("samples-to-rows: cannot move the id sequence past the rows", LOG_STR, "error", err, LOG_END);
    return rc;
}
