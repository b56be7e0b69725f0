/*
 * samples.c — reading samples from the primary store (issue #19).
 *
 * Samples live in sealed blocks per user and UTC day (days.c). A read —
 * an API page, an export stream, the newest samples of an upload — walks
 * the user's days in its order, opens and decodes each day's blocks, keeps
 * what the query asks for and sorts the day by (start_ms, id); a day's
 * samples all start within the day, so the days in order give the whole
 * order. Rows of health_samples that the backfill has not moved yet
 * (written by a release before this one) are read as before, one keyset
 * page at a time, and merged by (start_ms, id): ids of rows and blocks
 * never collide (migration 013).
 *
 * Memory: one day's samples and one page (SAMPLE_STREAM_PAGE) at a time.
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/block.h"
#include "store/store_int.h"

#define DAY_MS 86400000LL

/* Unlimited streams go in keyset pages of this many samples, so that
 * neither backend holds a whole export in memory. */
#define SAMPLE_STREAM_PAGE 5000

/* Samples, each owning its payload. */
struct sarr {
    struct store_sample *v;
    size_t n, cap;
};

static void sarr_clear(struct sarr *a)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->v[i].payload != NULL)
            explicit_bzero(a->v[i].payload, strlen(a->v[i].payload));
        free(a->v[i].payload);
    }
    if (a->v != NULL)
        explicit_bzero(a->v, a->n * sizeof(*a->v));
    a->n = 0;
}

static void sarr_free(struct sarr *a)
{
    sarr_clear(a);
    free(a->v);
    memset(a, 0, sizeof(*a));
}

/* A new zeroed slot at the end (NULL when out of memory). */
static struct store_sample *sarr_push(struct sarr *a)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        struct store_sample *v = realloc(a->v, nc * sizeof(*v));
        if (v == NULL)
            return NULL;
        a->v = v;
        a->cap = nc;
    }
    struct store_sample *x = &a->v[a->n++];
    memset(x, 0, sizeof(*x));
    return x;
}

static int sarr_copy(struct sarr *a, const struct store_sample *src)
{
    struct store_sample *x = sarr_push(a);
    if (x == NULL)
        return STORE_ENOMEM;
    *x = *src;
    x->payload = NULL;
    if (src->payload != NULL && (x->payload = strdup(src->payload)) == NULL) {
        a->n--;
        return STORE_ENOMEM;
    }
    return 0;
}

static int copy_cb(void *ctx, const struct store_sample *x) { return sarr_copy(ctx, x); }

/* (start, id) order: < 0, 0, > 0. */
static int key_cmp(int64_t s1, int64_t i1, int64_t s2, int64_t i2)
{
    if (s1 != s2)
        return s1 < s2 ? -1 : 1;
    return i1 < i2 ? -1 : i1 > i2;
}

static int asc_cmp(const void *a, const void *b)
{
    const struct store_sample *x = a, *y = b;
    return key_cmp(x->start_ms, x->id, y->start_ms, y->id);
}

static int desc_cmp(const void *a, const void *b) { return asc_cmp(b, a); }

/* Whether x comes after the query's cursor in its order. */
static int after_cursor(const struct store_sample_query *q, int64_t after_id, const struct store_sample *x)
{
    if (!q->after.set)
        return 1;
    int c = key_cmp(x->start_ms, x->id, q->after.ts, after_id);
    return q->ascending ? c > 0 : c < 0;
}

static int fits(const char *s, size_t cap) { return s == NULL || strlen(s) < cap; }

/* A decoded block sample as a store sample of user_id (payload copied). */
static int from_block(struct store_sample *x, const char *user_id, const struct block_sample *b)
{
    x->id = b->id;
    snprintf(x->user_id, sizeof(x->user_id), "%s", user_id);
    snprintf(x->upload_id, sizeof(x->upload_id), "%s", b->upload_id ? b->upload_id : "");
    snprintf(x->metric_type, sizeof(x->metric_type), "%s", b->metric_type ? b->metric_type : "");
    x->start_ms = b->start_ms;
    x->end_ms = b->end_ms;
    x->value = b->value;
    x->value2 = b->value2;
    snprintf(x->unit, sizeof(x->unit), "%s", b->unit ? b->unit : "");
    snprintf(x->source, sizeof(x->source), "%s", b->source ? b->source : "");
    snprintf(x->device, sizeof(x->device), "%s", b->device ? b->device : "");
    snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%s", b->hk_uuid ? b->hk_uuid : "");
    x->quality_score = b->quality;
    snprintf(x->validation_status, sizeof(x->validation_status), "%s",
             b->validation_status ? b->validation_status : "");
    x->processing_version = b->processing_version;
    x->payload = NULL;
    if (b->payload != NULL && (x->payload = strdup(b->payload)) == NULL)
        return STORE_ENOMEM;
    return 0;
}

/* The samples of one day's blocks that q asks for, appended to d. */
static int day_decode(struct store_tx *tx, const struct store_sample_query *q, int64_t day, struct store_buf *bytes,
                      struct sarr *d)
{
    size_t at = 0, blen;
    const unsigned char *up, *blk;
    uint32_t cnt;
    int rc, more;
    bytes->n = 0;
    if ((rc = store_days_load(tx, q->user_id, day, bytes)) != 0)
        return rc;
    while (rc == 0 && (more = store_days_segment(bytes->p, bytes->n, &at, &up, &blk, &blen, &cnt)) != 0) {
        struct block_reader *br = NULL;
        struct block_sample b;
        uint32_t si;
        if (more < 0)
            return STORE_EINTERNAL;
        if (blk == NULL)
            continue; /* a legacy window copy: its rows are read from health_samples */
        if (q->upload_id != NULL && (strlen(q->upload_id) > STORE_SEG_UPLOAD ||
                                     strncmp((const char *)up, q->upload_id, STORE_SEG_UPLOAD) != 0 ||
                                     (strlen(q->upload_id) < STORE_SEG_UPLOAD && up[strlen(q->upload_id)] != 0)))
            continue;
        if ((more = block_reader_open(blk, blen, &br)) != 0)
            return more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
        /* Which series the query wants, once per series. */
        size_t ns = block_reader_series_count(br);
        unsigned char *want = malloc(ns ? ns : 1);
        if (want == NULL) {
            block_reader_free(br);
            return STORE_ENOMEM;
        }
        int any = 0;
        for (size_t i = 0; i < ns; i++) {
            const struct block_series *s = block_reader_series(br, i);
            want[i] = (q->metric_type == NULL || strcmp(s->metric_type, q->metric_type) == 0) &&
                      (q->source == NULL || strcmp(s->source, q->source) == 0);
            any |= want[i];
        }
        /* A segment with none of the wanted series is not decoded at all (a
         * list of one sparse type, e.g. weight, walks many days). */
        while (rc == 0 && any && (more = block_reader_next(br, &b, &si)) == 1) {
            if (si >= ns || !want[si] || b.start_ms < q->start_ms || b.start_ms >= q->end_ms)
                continue;
            if (!fits(b.hk_uuid, sizeof(d->v->hk_uuid))) {
                rc = STORE_EINTERNAL;
                break;
            }
            struct store_sample *x = sarr_push(d);
            if (x == NULL || (rc = from_block(x, q->user_id, &b)) != 0) {
                if (x != NULL)
                    d->n--;
                rc = STORE_ENOMEM;
            }
        }
        if (rc == 0 && any && more < 0)
            rc = more == BLOCK_ENOMEM ? STORE_ENOMEM : STORE_EINTERNAL;
        free(want);
        block_reader_free(br);
    }
    return rc;
}

/* Up to limit samples of q from the blocks after q's cursor, in q's order,
 * appended to out. */
static int blocks_page(struct store_tx *tx, const struct store_sample_query *q, size_t limit, struct sarr *out)
{
    int64_t after_id = q->after.set ? strtoll(q->after.key, NULL, 10) : 0;
    int64_t lo = q->start_ms, hi = q->end_ms;
    if (q->after.set && q->ascending && q->after.ts > lo)
        lo = q->after.ts;
    if (q->after.set && !q->ascending && q->after.ts < hi - 1)
        hi = q->after.ts + 1;
    if (hi <= lo)
        return 0;
    int64_t *days = NULL;
    size_t nd = 0;
    struct store_buf bytes = {0};
    struct sarr d = {0};
    int rc = store_days_list(tx, q->user_id, store_day_of(lo), store_day_of(hi - 1), !q->ascending, &days, &nd);
    for (size_t i = 0; rc == 0 && i < nd && out->n < limit; i++) {
        sarr_clear(&d);
        if ((rc = day_decode(tx, q, days[i], &bytes, &d)) != 0)
            break;
        if (d.n > 1)
            qsort(d.v, d.n, sizeof(*d.v), q->ascending ? asc_cmp : desc_cmp);
        for (size_t k = 0; k < d.n && out->n < limit; k++) {
            if (!after_cursor(q, after_id, &d.v[k]))
                continue;
            /* Move the sample (and its payload) into out. */
            struct store_sample *x = sarr_push(out);
            if (x == NULL) {
                rc = STORE_ENOMEM;
                break;
            }
            *x = d.v[k];
            d.v[k].payload = NULL;
        }
    }
    sarr_free(&d);
    if (bytes.p != NULL)
        explicit_bzero(bytes.p, bytes.n);
    free(bytes.p);
    free(days);
    return rc;
}

/* Whether the user still has health_samples rows (before the backfill). */
static int has_rows(struct store_tx *tx, const char *user_id, int *yes)
{
    struct db_stmt *s = NULL;
    int rows = 0, step;
    *yes = 0;
    int rc = store_legacy_rows(tx, &rows);
    if (rc != 0 || !rows ||
        (rc = store_tx_stmt(tx, "SELECT 1 FROM health_samples WHERE user_id = ?1 LIMIT 1", &s)) != 0)
        return rc;
    db_bind_text(s, 1, user_id);
    step = db_step(s);
    *yes = step == DB_ROW;
    db_stmt_reset(s);
    return step == DB_ROW || step == DB_DONE ? 0 : store_tx_fail(tx, step);
}

/* One page: up to limit samples after q's cursor, from blocks and rows
 * merged, given to fn; *seen how many, *last the position of the last. */
static int sample_page(struct store_tx *tx, const struct store_sample_query *q, size_t limit, int rows,
                       store_sample_fn fn, void *ctx, size_t *seen, struct store_cursor *last)
{
    struct sarr a = {0}, b = {0};
    int rc = blocks_page(tx, q, limit, &a);
    *seen = 0;
    if (rc == 0 && rows) {
        int64_t n = 0;
        struct store_cursor l = {0};
        rc = store_sample_rows_page(tx, q, (int64_t)limit, copy_cb, &b, &n, &l);
    }
    size_t i = 0, j = 0;
    while (rc == 0 && *seen < limit && (i < a.n || j < b.n)) {
        const struct store_sample *x;
        if (j >= b.n)
            x = &a.v[i++];
        else if (i >= a.n)
            x = &b.v[j++];
        else {
            int c = asc_cmp(&a.v[i], &b.v[j]);
            x = (q->ascending ? c < 0 : c > 0) ? &a.v[i++] : &b.v[j++];
        }
        (*seen)++;
        last->set = 1;
        last->ts = x->start_ms;
        snprintf(last->key, sizeof(last->key), "%" PRId64, x->id);
        rc = fn(ctx, x);
    }
    sarr_free(&a);
    sarr_free(&b);
    return rc;
}

int store_sample_each(struct store_tx *tx, const struct store_sample_query *q, store_sample_fn fn, void *ctx)
{
    int rows = 0;
    if (q == NULL || q->user_id == NULL)
        return STORE_EINVAL;
    int rc = has_rows(tx, q->user_id, &rows);
    if (rc != 0)
        return rc;
    if (q->limit > 0) {
        size_t seen = 0;
        struct store_cursor last = {0};
        return sample_page(tx, q, q->limit, rows, fn, ctx, &seen, &last);
    }
    struct store_sample_query page = *q;
    for (;;) {
        size_t seen = 0;
        struct store_cursor last = {0};
        rc = sample_page(tx, &page, SAMPLE_STREAM_PAGE, rows, fn, ctx, &seen, &last);
        if (rc != 0 || seen < SAMPLE_STREAM_PAGE)
            return rc;
        page.after = last;
    }
}

struct list_ctx {
    struct sarr a;
    size_t cap;
    int more;
};

static int list_cb(void *ctx, const struct store_sample *x)
{
    struct list_ctx *l = ctx;
    if (l->a.n == l->cap) {
        l->more = 1;
        return 1;
    }
    return sarr_copy(&l->a, x);
}

int store_sample_list(struct store_tx *tx, const struct store_sample_query *q, struct store_sample **out, size_t *n,
                      struct store_cursor *next)
{
    if (q == NULL || q->limit < 1 || q->limit > STORE_PAGE_MAX)
        return STORE_EINVAL;
    struct store_sample_query qq = *q;
    qq.limit = q->limit + 1;
    struct list_ctx l = {.cap = q->limit};
    int rc = store_sample_each(tx, &qq, list_cb, &l);
    if (rc < 0) {
        sarr_free(&l.a);
        return rc;
    }
    if (next != NULL) {
        memset(next, 0, sizeof(*next));
        if (l.more && l.a.n > 0) {
            next->set = 1;
            next->ts = l.a.v[l.a.n - 1].start_ms;
            snprintf(next->key, sizeof(next->key), "%" PRId64, l.a.v[l.a.n - 1].id);
        }
    }
    if (l.a.v == NULL && (l.a.v = calloc(1, sizeof(*l.a.v))) == NULL)
        return STORE_ENOMEM;
    *out = l.a.v;
    *n = l.a.n;
    return 0;
}

void store_sample_list_free(struct store_sample *v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].payload);
    free(v);
}

int store_sample_count(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t *count)
{
    int64_t *days = NULL;
    size_t nd = 0;
    struct store_buf bytes = {0};
    int rc = store_sample_rows_count(tx, user_id, upload_id, count);
    if (rc == 0)
        rc = store_days_list(tx, user_id, INT64_MIN / DAY_MS - 1, INT64_MAX / DAY_MS, 0, &days, &nd);
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        size_t at = 0, blen;
        const unsigned char *up, *blk;
        uint32_t cnt;
        int more;
        bytes.n = 0;
        if ((rc = store_days_load(tx, user_id, days[i], &bytes)) != 0)
            break;
        while ((more = store_days_segment(bytes.p, bytes.n, &at, &up, &blk, &blen, &cnt)) > 0)
            if (blk != NULL &&
                (upload_id == NULL || (strlen(upload_id) <= STORE_SEG_UPLOAD &&
                                       strncmp((const char *)up, upload_id, STORE_SEG_UPLOAD) == 0 &&
                                       (strlen(upload_id) == STORE_SEG_UPLOAD || up[strlen(upload_id)] == 0))))
                *count += cnt;
        if (more < 0)
            rc = STORE_EINTERNAL;
    }
    if (bytes.p != NULL)
        explicit_bzero(bytes.p, bytes.n);
    free(bytes.p);
    free(days);
    return rc;
}

int store_sample_newest(struct store_tx *tx, const char *user_id, const char *upload_id, size_t max, int64_t *start_ms,
                        int64_t *end_ms, int32_t *offset_min, size_t *n)
{
    struct store_sample_query q = {
        .user_id = user_id, .upload_id = upload_id, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 0};
    struct sarr a = {0};
    int64_t *rs = NULL, *re = NULL;
    int32_t *ro = NULL;
    size_t nr = 0;
    *n = 0;
    if (user_id == NULL || max == 0 || max > 100000)
        return STORE_EINVAL;
    int rc = blocks_page(tx, &q, max, &a);
    if (rc == 0) {
        rs = malloc(max * sizeof(*rs));
        re = malloc(max * sizeof(*re));
        ro = malloc(max * sizeof(*ro));
        rc = rs && re && ro ? store_sample_rows_newest(tx, user_id, upload_id, max, rs, re, ro, &nr) : STORE_ENOMEM;
    }
    /* Merge newest first. Rows' ids are all below the blocks' ids, so at an
     * equal start the block's sample is the newer. */
    size_t i = 0, j = 0;
    while (rc == 0 && *n < max && (i < a.n || j < nr)) {
        if (j >= nr || (i < a.n && a.v[i].start_ms >= rs[j])) {
            start_ms[*n] = a.v[i].start_ms;
            end_ms[*n] = a.v[i].end_ms;
            offset_min[*n] = store_sample_payload_offset(a.v[i].payload);
            i++;
        } else {
            start_ms[*n] = rs[j];
            end_ms[*n] = re[j];
            offset_min[*n] = ro[j];
            j++;
        }
        (*n)++;
    }
    free(rs);
    free(re);
    free(ro);
    sarr_free(&a);
    return rc;
}
