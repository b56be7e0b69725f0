/*
 * store_int.h — private definitions shared by the files of src/store/.
 *
 * Not part of the interface: only the .c files of src/store/ include it.
 */
#ifndef CLARITY_STORE_STORE_INT_H
#define CLARITY_STORE_STORE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "store/db.h"
#include "store/store.h"

#define STORE_NOTIFY_CHANNEL "clarity_queue"
#define STORE_INSIGHT_CHANNEL "clarity_insight"
#define STORE_TX_MAX_NOTIFY 4
#define STORE_BULK_SIZES 4 /* PostgreSQL multi-row sample insert chunk sizes */

struct store_tx {
    struct store *st;
    struct db_conn *conn;
    int in_use;
    int active;          /* BEGIN ran */
    int one_stmt;        /* STORE_TX_READ_ONE on SQLite: statements run so far, +1 */
    int write_locked;    /* holds st->write_mu (SQLite writers) */
    int published;       /* queue messages were published in this tx */
    int insight_created; /* SQLite: an insight was inserted (wake event subscribers at commit) */
    int failed_rc;       /* first database error inside the tx; commit refuses */
    char notify[STORE_TX_MAX_NOTIFY][64];
    int nnotify;
    char err[512];
};

struct store {
    enum db_backend backend;
    struct store_options opts;
    char *target; /* file path or libpq URL (secret) */
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* a pooled connection became free */
    struct store_tx *pool; /* opts.pool_size entries */
    int pool_n;
    /* SQLite: one writer at a time in this process, queued on a mutex rather
     * than in SQLite's sleeping busy handler. Other processes still meet the
     * busy timeout. */
    pthread_mutex_t write_mu;
    /* In-process queue wake-ups (SQLite). */
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    uint64_t qgen;
    uint64_t igen; /* insight commits (queue.c, store_insight_events_next), under qmu */
    /* PostgreSQL multi-row sample inserts, one per chunk size (repo.c). */
    char *bulk_sql[STORE_BULK_SIZES];
    /* Seals analyses and insights (store_set_sealer); seal NULL: none. */
    struct store_sealer sealer;
    /* Whether health_samples (the rows before 013) still exists: -1 not
     * known yet, 0 dropped (014), 1 there. See store_legacy_rows. */
    _Atomic int legacy_rows;
};

/* Build the multi-row INSERT for `rows` samples (caller frees), and the
 * chunk size of slot i. */
char *store_sample_bulk_sql_build(size_t rows);
size_t store_sample_bulk_size(int i);

/* Check a connection out of the pool without beginning a transaction. */
int store_conn_acquire(struct store *st, struct store_tx **out);
void store_conn_release(struct store_tx *tx);

/* Whether the legacy table health_samples exists (*yes), asked of the
 * database once per process and cached: every read and write of rows goes
 * through it, so the code works before and after 014 drops the table. When
 * another process drops it under this one, the first statement that finds
 * it gone fails STORE_EBUSY (retry: 503 with Retry-After, a job retried) and
 * clears the cache (store_tx_fail), so the retry no longer looks. */
int store_legacy_rows(struct store_tx *tx, int *yes);
/* The same, asking the catalogue now (and caching the answer): for deletes
 * and erasure, which must not skip rows a rollback may have put back while
 * this process ran. */
int store_legacy_rows_now(struct store_tx *tx, int *yes);
/* Ask again at the next store_legacy_rows (after a migration). */
void store_legacy_rows_forget(struct store *st);

/* Record conn's last error on tx and return rc (logs unexpected ones). */
int store_tx_fail(struct store_tx *tx, int rc);
/* The cached statement for sql, or a failure recorded on tx. */
int store_tx_stmt(struct store_tx *tx, const char *sql, struct db_stmt **out);
/* Step a statement that returns no rows, reset it; *changes may be NULL. */
int store_tx_run(struct store_tx *tx, struct db_stmt *s, int64_t *changes);

/* Copy a text column into a fixed field (NULL → ""). */
void store_col_copy(struct db_stmt *s, int col, char *dst, size_t cap);
/* Heap copy of a text column (NULL stays NULL); -1 on allocation failure. */
int store_col_dup(struct db_stmt *s, int col, char **out);
/* 1 when s fits a field of cap bytes with its terminator. */
int store_str_fits(const char *s, size_t cap);

/* The backend-specific SQL of a pair (sqlite, postgres). */
static inline const char *store_sql(const struct store *st, const char *lite, const char *pg)
{
    return st->backend == DB_SQLITE ? lite : pg;
}

/* Record that tx published to topic (NOTIFY / wake-up at commit). */
void store_tx_note_publish(struct store_tx *tx, const char *topic);

int64_t store_now_ms(void);

/* The "insight created" event of store_insight_insert (queue.c): PostgreSQL
 * NOTIFYs "user_id:insight_id" at this tx's COMMIT; SQLite wakes this
 * process's subscribers when the tx commits. */
int store_tx_notify_insight(struct store_tx *tx, const char *user_id, const char *insight_id);

/* ---- sample_days (days.c) ---- */

/* The UTC day of a time, rounded down. */
int64_t store_day_of(int64_t ms);
/* PostgreSQL: take the user's sample-writer lock (held to the end of tx);
 * every writer of a user's samples and days takes it before writing. */
int store_days_lock_user(struct store_tx *tx, const char *user_id);
/* Tests only: write sample_days segments the 0xD1 way (as before issue #19). */
void store_days_write_legacy_for_test(int on);
/* Tests only: write samples as the previous release did (health_samples
 * rows plus unsealed 0xD2 window copies), to test the union of rows and
 * blocks and the backfill; and whether that is on. */
void store_samples_previous_release_for_test(int on);
int store_samples_previous_release(void);

/* A sealer's (store_set_sealer) return code as a store code: store codes
 * pass through, an allocation failure (KEYRING_ENOMEM, ENVELOPE_ENOMEM) is
 * STORE_ENOMEM, anything else STORE_EINTERNAL. */
int store_sealer_code(int rc);

/* A growable byte buffer. */
struct store_buf {
    unsigned char *p;
    size_t n, cap;
};
/* Legacy health_samples rows (repo.c): one keyset page of q's rows after
 * q->after (limit rows), their count, and the newest rows' times. */
int store_sample_rows_page(struct store_tx *tx, const struct store_sample_query *q, int64_t limit, store_sample_fn fn,
                           void *ctx, int64_t *seen, struct store_cursor *last);
/* Put samples back as health_samples rows with their ids (the rollback to
 * the release before blocks; a row already there is kept). */
int store_sample_rows_put(struct store_tx *tx, const struct store_sample *v, size_t n);
int store_sample_rows_count(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t *count);
int store_sample_rows_newest(struct store_tx *tx, const char *user_id, const char *upload_id, size_t max,
                             int64_t *start_ms, int64_t *end_ms, int32_t *offset_min, size_t *n);
/* The days (ascending, or descending when desc) in [from_day, to_day] on
 * which a user has sample_days rows (*days malloc'd). */
int store_days_list(struct store_tx *tx, const char *user_id, int64_t from_day, int64_t to_day, int desc,
                    int64_t **days, size_t *n);
/* A user's day's rows, opened, concatenated in order into b. */
int store_days_load(struct store_tx *tx, const char *user_id, int64_t day, struct store_buf *b);
/* The next segment of a day's bytes p[0..n) from *at: 1 and its fields
 * (upload: 36 bytes, zero-padded; block: the 0xD3 block, NULL for a legacy
 * window copy), 0 at the end, -1 for bytes that are not segments. */
int store_days_segment(const unsigned char *p, size_t n, size_t *at, const unsigned char **upload,
                       const unsigned char **block, size_t *block_len, uint32_t *count);
#define STORE_SEG_UPLOAD 36
/* Append a sample_days row's segments to b, opened when the row is sealed. */
int store_days_read_row(struct store_tx *tx, const char *user_id, int64_t day, const void *p, size_t n,
                        struct store_buf *b);
/* The primary store's insert (days.c): dedup v against the days' keys and
 * each other, give the new samples ids, append them to their days as
 * sealed blocks; in[i] = 1 for the new ones, *total their count. */
int store_days_insert(struct store_tx *tx, const struct store_sample *v, size_t n, unsigned char *in, size_t *total);
/* Append v[i] where inserted[i] to their days (same transaction). */
int store_days_append(struct store_tx *tx, const struct store_sample *v, size_t n, const unsigned char *inserted);
/* Before an upload's samples are deleted: lock, and the days they are on
 * (*days malloc'd); after the delete, store_days_rebuild those days. */
int store_days_upload_deleting(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t **days,
                               size_t *n);
int store_days_rebuild(struct store_tx *tx, const char *user_id, const int64_t *days, size_t n);
/* The window from sample_days into w (n, n_other, text_len at 0); sets
 * *use_rows instead when the rows must be read (an upload not yet in its
 * days). */
int store_days_window(struct store_tx *tx, const struct store_window_query *q, struct store_window *w, int *use_rows);
/* Grow w's arrays (doubling). */
int store_window_grow(struct store_window *w);

#endif
