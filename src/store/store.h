/*
 * store.h — Clarity's storage interface: one API over SQLite and PostgreSQL.
 *
 * The rest of the program sees repositories per aggregate (users, refresh
 * tokens, audit log, uploads, health samples, raw uploads, analyses,
 * insights, key ring) plus the durable queue (queue.h) and never writes SQL.
 * All SQL, and all that differs between the backends, lives in src/store/.
 *
 * Handles and threads. A `struct store` is opened once and shared by every
 * thread; it owns a pool of connections. Work happens inside a transaction:
 * store_tx_begin checks a connection out of the pool, the repository calls
 * take the transaction, and store_tx_commit / store_tx_rollback end it and
 * return the connection. One transaction spans any number of repositories,
 * so an upload, its samples, its encrypted body and its queue message commit
 * together or not at all. A transaction belongs to one thread at a time.
 *
 * Errors are values: every function returns 0 or a negative STORE_E* code
 * and writes its outputs only on success. The text of the last failure is
 * kept on the transaction (store_tx_errmsg); it never holds credentials or
 * health values. api_store_failure (src/api/common.c) turns a code into the
 * RFC 7807 reply (STORE_EUNAVAILABLE and STORE_EBUSY become 503).
 *
 * Time is epoch milliseconds (UTC) everywhere; ids are lowercase UUID text.
 * Strings in records are fixed-size arrays (NUL-terminated) unless the field
 * is unbounded (JSON, narrative, blobs): those are heap pointers, borrowed on
 * insert and owned by the record on read (free with the record's _clear).
 * On insert, a string longer than its field is refused with STORE_EINVAL.
 */
#ifndef CLARITY_STORE_STORE_H
#define CLARITY_STORE_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/health.h"
#include "core/limits.h"
#include "core/err.h"

/* Return codes: STORE_E* in core/err.h (0 is STORE_OK). */

#define STORE_ID_LEN 37 /* UUID text + NUL */

struct store;
struct store_tx;

struct store_options {
    int pool_size;                 /* connections; size to HTTP + worker threads (default 8) */
    int synchronous_full;          /* SQLite synchronous=FULL (1, default) or NORMAL (0) */
    int busy_timeout_ms;           /* SQLite busy wait (default 5000) */
    int statement_timeout_ms;      /* PostgreSQL statement_timeout (default 30000) */
    int acquire_timeout_ms;        /* wait for a free connection (default 5000) */
    int queue_max_attempts;        /* default max deliveries per message (default 5) */
    int64_t queue_retention_ms;    /* keep acknowledged messages (default 86400000) */
    int64_t raw_retention_ms;      /* keep raw upload bodies this long; 0 (default) forever */
    int block_format;              /* sample blocks written: 0 (default) BLOCK_FORMAT, or 1;
                                    * process-wide (block_set_write_format): the last
                                    * store_open sets it for every store of the process */
    int64_t queue_backoff_base_ms; /* first retry delay (default 1000) */
    int64_t queue_backoff_max_ms;  /* retry delay cap (default 600000) */
    int64_t health_max_depth;      /* pubsub unhealthy above this depth (default 10000) */
    int64_t health_max_age_ms;     /* ... or oldest unacked older (default 900000) */
    int64_t health_max_dead;       /* ... or dead letters above (default 100) */
};

/* Fill o with the defaults above. */
void store_options_default(struct store_options *o);

struct config;
/*
 * Defaults adjusted for a configuration: synchronous=FULL in staging and
 * production, NORMAL in development (docs/data-model.md says what each
 * survives); a pool of HTTP threads + 4 (workers, health checks).
 */
void store_options_from_config(struct store_options *o, const struct config *cfg);

/*
 * Open the store at url: "sqlite:PATH" (the directory is created) or
 * "postgres://…" / "postgresql://…" (libpq). opts NULL means defaults.
 * Opens the whole pool now, so a bad URL fails here. Does not migrate.
 * Returns 0 and *out (caller closes), or a STORE_E* code with a reason in err
 * that never contains the password.
 */
int store_open(const char *url, const struct store_options *opts, struct store **out, char *err, size_t errlen);
/* Close every connection and free the store; accepts NULL. No transaction
 * may be open. */
void store_close(struct store *st);
/* "sqlite" or "postgres". */
const char *store_backend_name(const struct store *st);

/* ---- transactions ---------------------------------------------------- */

enum store_tx_mode {
    STORE_TX_READ = 0,  /* reads only (SQLite: deferred; PostgreSQL: READ ONLY) */
    STORE_TX_WRITE = 1, /* takes the write lock up front (SQLite: BEGIN IMMEDIATE) */
    /* One statement, which is its own snapshot. SQLite runs it in autocommit
     * mode: no BEGIN and no ROLLBACK to execute, a third of a one-row read
     * (issue 22). A second statement in it fails with STORE_EINTERNAL.
     * PostgreSQL: the same as STORE_TX_READ (its BEGIN is where a dropped
     * session is found and reconnected). */
    STORE_TX_READ_ONE = 2,
};

/*
 * Begin a transaction on a pooled connection. A thread must not begin a
 * second transaction while it holds one: with SQLite the second write
 * transaction would wait for the first (STORE_EBUSY after busy_timeout_ms),
 * and nesting can exhaust the pool. Waits up to acquire_timeout_ms
 * for a connection; reconnects a PostgreSQL connection the server dropped.
 * Returns 0 and *out, or STORE_EUNAVAILABLE / STORE_EBUSY.
 */
int store_tx_begin(struct store *st, enum store_tx_mode mode, struct store_tx **out);
/* Commit and release the transaction (also on failure: it is rolled back).
 * A transaction in which a database call failed (a unique violation, say)
 * cannot be committed on either backend: commit rolls it back and returns
 * that first error. Expected duplicates go through the ON CONFLICT paths
 * (store_sample_insert_batch), which do not fail.
 * PostgreSQL NOTIFY for messages published in it is delivered by this commit. */
int store_tx_commit(struct store_tx *tx);
/* Roll back and release; accepts NULL. */
void store_tx_rollback(struct store_tx *tx);
/* Text of the last failure inside tx (borrowed, valid until the tx ends). */
const char *store_tx_errmsg(const struct store_tx *tx);

/* ---- keyset pagination ----------------------------------------------- */

/*
 * Position after the last row of a page, ordered newest first by (ts, key).
 * `set` 0 means the first page. The API layer encodes it as an opaque
 * cursor with store_cursor_format / store_cursor_parse.
 */
struct store_cursor {
    int set;
    int64_t ts;
    char key[STORE_ID_LEN]; /* a row id (uuid) or, for samples, the decimal row id */
};
#define STORE_CURSOR_LEN 64
/* "ts.key" text, URL-safe. out holds STORE_CURSOR_LEN. */
void store_cursor_format(const struct store_cursor *c, char out[STORE_CURSOR_LEN]);
/* Returns 0, or STORE_EINVAL for text that is not a cursor. */
int store_cursor_parse(const char *s, struct store_cursor *c);

#define STORE_PAGE_MAX LIMIT_PAGE_MAX

/* ---- users ------------------------------------------------------------ */

struct store_user {
    char id[STORE_ID_LEN];
    char email[256];         /* unique, stored as given (callers lower-case) */
    char password_hash[256]; /* Argon2id encoded string */
    char first_name[256];
    char last_name[256];
    char phone_number[64];
    char role[16];   /* patient | clinician | researcher | admin */
    char status[16]; /* active | locked | disabled */
    int failed_logins;
    int64_t locked_until_ms; /* 0 when not locked */
    int64_t last_login_ms;   /* 0 never */
    int64_t created_at_ms;
    int64_t updated_at_ms;
};

/* Insert u (id and timestamps as given; created_at 0 → now). STORE_ECONFLICT
 * on a taken email or id. */
int store_user_insert(struct store_tx *tx, const struct store_user *u);
int store_user_get(struct store_tx *tx, const char *id, struct store_user *out);
int store_user_get_by_email(struct store_tx *tx, const char *email, struct store_user *out);
/* Record a login attempt's outcome: failed_logins, locked_until, last_login. */
int store_user_login_update(struct store_tx *tx, const char *id, int failed_logins, int64_t locked_until_ms,
                            int64_t last_login_ms);
/* Replace the mutable profile fields (names, phone, role, status, password). */
int store_user_update(struct store_tx *tx, const struct store_user *u);
/* Newest first by (created_at, id). *out is caller-freed with free(). */
int store_user_list(struct store_tx *tx, const struct store_cursor *after, size_t limit, struct store_user **out,
                    size_t *n, struct store_cursor *next);
/* Erase the user and every row derived from them (tokens, uploads, samples,
 * raw bodies, analyses, insights, queue messages naming them stay opaque).
 * Audit rows keep the user id. STORE_ENOTFOUND when absent. */
int store_user_delete(struct store_tx *tx, const char *id);

/* ---- refresh tokens ---------------------------------------------------- */

struct store_refresh_token {
    char id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    char family_id[STORE_ID_LEN]; /* all rotations of one login */
    char token_hash[128];         /* hash of the token, never the token */
    int64_t created_at_ms;
    int64_t expires_at_ms;
    int64_t revoked_at_ms;          /* 0 when live */
    char replaced_by[STORE_ID_LEN]; /* "" when not rotated */
};

int store_token_insert(struct store_tx *tx, const struct store_refresh_token *t);
int store_token_get_by_hash(struct store_tx *tx, const char *token_hash, struct store_refresh_token *out);
/* Revoke one token (replaced_by may be NULL). STORE_ENOTFOUND when absent. */
int store_token_revoke(struct store_tx *tx, const char *id, const char *replaced_by, int64_t now_ms);
/* Revoke every live token of a family (reuse detection); *n revoked. */
int store_token_revoke_family(struct store_tx *tx, const char *family_id, int64_t now_ms, int64_t *n);
int store_token_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n);

/* ---- sign-in identities and sessions (identity.c) ---------------------- */

/* The Clarity user an external identity (issuer, subject) is bound to, into
 * user_id (STORE_ID_LEN). STORE_ENOTFOUND when unbound. */
int store_identity_get(struct store_tx *tx, const char *issuer, const char *subject, char user_id[STORE_ID_LEN]);
/* Bind (issuer, subject) to user_id. STORE_ECONFLICT when already bound. */
int store_identity_insert(struct store_tx *tx, const char *issuer, const char *subject, const char *user_id,
                          const char *email);
/* How many identities are bound to user_id. */
int store_identity_count(struct store_tx *tx, const char *user_id, int64_t *n);

/* Add sid to the revocation set (revoked_at = now_ms; a repeat keeps the
 * later time); expires_at_ms is when no token it can match is valid. */
int store_session_revoke(struct store_tx *tx, const char *sid, int64_t now_ms, int64_t expires_at_ms);
struct store_revocation {
    char sid[128];
    int64_t revoked_at_ms;
    int64_t expires_at_ms;
};
/* Revocations with revoked_at >= since_ms, oldest first, at most max into
 * out (*n filled). Rows past expiry at now_ms are pruned first. */
int store_session_revoked_since(struct store_tx *tx, int64_t since_ms, int64_t now_ms, struct store_revocation *out,
                                size_t max, size_t *n);

/* users.email_verified and users.display_name (migration 007). */
int store_user_extra_get(struct store_tx *tx, const char *id, int *email_verified, char *display_name, size_t cap);
/* store_user_get and store_user_extra_get in one statement (GET /auth/me). */
int store_user_profile_get(struct store_tx *tx, const char *id, struct store_user *out, int *email_verified,
                           char *display_name, size_t cap);
int store_user_extra_set(struct store_tx *tx, const char *id, int email_verified, const char *display_name);

/* Pending e-mail verification codes (one per user; only a hash is kept). */
struct store_email_code {
    char user_id[STORE_ID_LEN];
    char code_hash[65];
    int64_t expires_at_ms;
    int attempts;
    int64_t sent_at_ms;
};
/* Insert or replace the user's code (attempts reset). */
int store_email_code_put(struct store_tx *tx, const struct store_email_code *c);
int store_email_code_get(struct store_tx *tx, const char *user_id, struct store_email_code *out);
int store_email_code_attempt(struct store_tx *tx, const char *user_id);
int store_email_code_delete(struct store_tx *tx, const char *user_id);

/* Pending password-reset codes (migration 012; one per user, only a hash is
 * kept; src/auth/reset.c owns the rules). */
struct store_reset_code {
    char user_id[STORE_ID_LEN];
    char code_hash[65];
    int64_t expires_at_ms;
    int attempts;
    int64_t created_at_ms;
};
/* Insert or replace the user's code (attempts reset to 0). */
int store_reset_code_put(struct store_tx *tx, const struct store_reset_code *c);
/* The user's code into *out; STORE_ENOTFOUND when none is pending. */
int store_reset_code_get(struct store_tx *tx, const char *user_id, struct store_reset_code *out);
/* Count one wrong attempt. */
int store_reset_code_attempt(struct store_tx *tx, const char *user_id);
/* Forget the user's code (used); 0 when there was none too. */
int store_reset_code_delete(struct store_tx *tx, const char *user_id);

/* ---- audit log --------------------------------------------------------- */

struct store_audit {
    char id[STORE_ID_LEN];      /* "" → generated */
    char user_id[STORE_ID_LEN]; /* the actor; "" for anonymous */
    char action[64];            /* e.g. "health_data.read" */
    char resource_type[32];
    char resource_id[64];
    char outcome[16];                      /* success | denied | error */
    char request_id[LIMIT_REQUEST_ID + 1]; /* the whole id the server accepted (never cut) */
    char ip[64];
    int64_t created_at_ms; /* 0 → now */
};

int store_audit_insert(struct store_tx *tx, const struct store_audit *a);
int store_audit_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                     struct store_audit **out, size_t *n, struct store_cursor *next);
int store_audit_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n);

/* ---- uploads ----------------------------------------------------------- */

/* An upload's life: received (stored, analysis queued) → processing (a
 * worker has it, or a streamed import is still arriving) → completed |
 * failed. The zero value is RECEIVED. */
enum store_upload_status {
    STORE_UPLOAD_RECEIVED = 0,
    STORE_UPLOAD_PROCESSING,
    STORE_UPLOAD_COMPLETED,
    STORE_UPLOAD_FAILED,
};

/* The status's text in the uploads table and in the API ("received", …). */
const char *store_upload_status_name(enum store_upload_status s);
/* Parse that text. 0, or STORE_EINVAL for any other string. */
int store_upload_status_parse(const char *text, enum store_upload_status *out);

struct store_upload {
    char id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    char source[64]; /* upload_source, or "healthkit" / "apple_health_export" */
    enum store_upload_status status;
    int64_t total_metrics;
    int64_t processed_metrics;
    int64_t accepted;
    int64_t rejected;
    double progress; /* 0..1 */
    char error[512]; /* "" when none; never health values */
    char sync_token[256];
    int64_t client_timestamp_ms;
    int64_t created_at_ms; /* 0 → now */
    int64_t updated_at_ms;
};

int store_upload_insert(struct store_tx *tx, const struct store_upload *u);
/* user_id NULL: any owner (workers, admin); otherwise only the owner's. */
int store_upload_get(struct store_tx *tx, const char *id, const char *user_id, struct store_upload *out);
/* Set status, progress, processed count and error (NULL keeps "") and
 * updated_at = now. */
int store_upload_status_set(struct store_tx *tx, const char *id, enum store_upload_status status, double progress,
                            int64_t processed, const char *error);
int store_upload_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                      struct store_upload **out, size_t *n, struct store_cursor *next);
/* Delete an upload with its samples, raw body and analyses (and the insights
 * of those). user_id NULL: any owner. STORE_ENOTFOUND when absent. */
int store_upload_delete(struct store_tx *tx, const char *id, const char *user_id);

/* ---- health samples ---------------------------------------------------- */

struct store_sample {
    int64_t id; /* out: assigned row id */
    char user_id[STORE_ID_LEN];
    char upload_id[STORE_ID_LEN]; /* "" for none */
    char metric_type[48];         /* API metric_type or HealthKit identifier */
    int64_t start_ms;
    int64_t end_ms;
    double value;  /* NAN for none */
    double value2; /* second value (diastolic…), NAN for none */
    char unit[32];
    char source[128];
    char device[128];
    char hk_uuid[64];           /* HealthKit sample UUID; "" none; unique per user */
    char *payload;              /* JSON text for structured data (sleep stages…), NULL none */
    double quality_score;       /* NAN for none */
    char validation_status[16]; /* "" → "valid" */
    int processing_version;     /* 0 → STORE_PROCESSING_VERSION */
};
#define STORE_PROCESSING_VERSION 2

/*
 * Insert n samples in the caller's transaction, skipping any whose
 * (user_id, hk_uuid) is already stored (a retried upload changes nothing).
 * *inserted (may be NULL) receives how many rows were new. Ids are not
 * written back (bulk path). Any invalid sample fails the whole call.
 */
int store_sample_insert_batch(struct store_tx *tx, const struct store_sample *s, size_t n, size_t *inserted);

struct store_sample_query {
    const char *user_id;       /* required */
    const char *metric_type;   /* NULL: any */
    const char *source;        /* NULL: any */
    const char *upload_id;     /* NULL: any */
    int64_t start_ms;          /* start_ms >= this (INT64_MIN: unbounded) */
    int64_t end_ms;            /* start_ms < this (INT64_MAX: unbounded) */
    int ascending;             /* 0 newest first (API lists), 1 oldest first (analysis) */
    struct store_cursor after; /* keyset: (start_ms, id) of the last row seen */
    size_t limit;              /* 0: no limit (streaming with _each) */
};

/* Called per row; the sample (and its payload) is borrowed for the call.
 * Return non-zero to stop (store_sample_each then returns that value). */
typedef int (*store_sample_fn)(void *ctx, const struct store_sample *s);

/* Stream matching samples to fn, in (start_ms, id) order. */
int store_sample_each(struct store_tx *tx, const struct store_sample_query *q, store_sample_fn fn, void *ctx);
/* One page (limit 1..STORE_PAGE_MAX) into a new array; free with
 * store_sample_list_free. next->set is 1 when more rows may follow. */
int store_sample_list(struct store_tx *tx, const struct store_sample_query *q, struct store_sample **out, size_t *n,
                      struct store_cursor *next);
void store_sample_list_free(struct store_sample *v, size_t n);
int store_sample_count(struct store_tx *tx, const char *user_id, const char *upload_id, int64_t *count);
int store_sample_delete_by_user(struct store_tx *tx, const char *user_id, int64_t *n);

/*
 * The device's UTC offset in minutes recorded in a sample payload
 * ({"tz_offset_min": -300, …}, written by the HealthKit and export ingest);
 * 0 when the payload is NULL or carries none in -1080..1080. Stored in its
 * own column at insert (store_sample_window reads it from there).
 */
int32_t store_sample_payload_offset(const char *payload);

/*
 * The newest samples of an upload (upload_id non-NULL) or of the user, by
 * (start_ms, id) descending: up to max rows' start, end and UTC offset into
 * the caller's arrays, *n how many. A fixed-shape statement each, served by
 * health_samples_upload_time / health_samples_user_time_type in index
 * order, so it reads about max rows however large the upload is.
 */
int store_sample_newest(struct store_tx *tx, const char *user_id, const char *upload_id, size_t max, int64_t *start_ms,
                        int64_t *end_ms, int32_t *offset_min, size_t *n);

/* ---- the analysis window: one columnar read ---------------------------- */

#define STORE_WINDOW_MAX_TYPES 8         /* metric types one read tells apart */
#define STORE_WINDOW_MAX_PAYLOAD_TYPES 4 /* of which may bring their payload */
#define STORE_WINDOW_MAX_RANKS 4         /* source preference patterns */
#define STORE_WINDOW_NO_PAYLOAD UINT32_MAX

struct store_window_query {
    const char *user_id;      /* required */
    const char *const *types; /* metric types; a row of types[i] gets type i */
    size_t n_types;           /* 1..STORE_WINDOW_MAX_TYPES */
    uint32_t payload_types;   /* bit i: rows of types[i] bring their payload
                                  (at most STORE_WINDOW_MAX_PAYLOAD_TYPES bits) */
    const char *const *ranks; /* a row's rank: the index of the first of these
                                  found in its device or source text (case-
                                  sensitive substring), n_ranks when none */
    size_t n_ranks;           /* 0..STORE_WINDOW_MAX_RANKS */
    int64_t from_ms, to_ms;   /* rows with from_ms <= start_ms < to_ms */
    size_t max_rows;          /* read at most max_rows + 1 rows (all types);
                                  0 means no limit */
};

/*
 * The rows, column by column, in (start_ms, id) order, in arrays the store
 * grows (doubling, never per row) and the caller owns: zero the struct
 * before the first read, reuse it for any number of reads, release it with
 * store_window_free. Rows of the listed types only; rows of other types in
 * the range are counted in n_other. Payload texts, when asked for, are
 * NUL-terminated strings at text + payload[i].
 */
struct store_window {
    size_t n;       /* rows of the listed types */
    size_t n_other; /* rows of other types in the range */
    uint8_t *type;  /* index into query types */
    int64_t *start_ms;
    int64_t *end_ms;
    double *value;       /* NAN for NULL */
    uint8_t *rank;       /* 0..n_ranks */
    int32_t *offset_min; /* the device's UTC offset (store_sample_payload_offset) */
    uint32_t *payload;   /* offset into text, or STORE_WINDOW_NO_PAYLOAD */
    char *text;
    size_t cap, text_len, text_cap;
};

/*
 * Read from sample_days (migration 006): the window's days, a few rows of
 * packed samples, plus one query for which of their uploads still exist;
 * no per-sample allocation, payloads copied only for the types asked for.
 * Replaces w's previous rows. Returns 0, or STORE_EINVAL for a bad query,
 * STORE_ENOMEM or a database error with w->n and w->n_other set to 0.
 */
int store_sample_window(struct store_tx *tx, const struct store_window_query *q, struct store_window *w);
/* The same read from health_samples row by row: what store_sample_window
 * falls back to while a user has an upload not yet in sample_days (written
 * by a release before migration 006); tests compare the two. */
int store_sample_window_rows(struct store_tx *tx, const struct store_window_query *q, struct store_window *w);
/* ---- series aggregates (migration 011; days.c) ------------------------ */

#define STORE_SERIES_SLOT_MS 900000LL /* 15 minutes: every UTC offset in use is whole slots */

struct store_series_query {
    const char *user_id, *type; /* required */
    int64_t from_ms, to_ms;     /* samples with from_ms <= start_ms < to_ms */
    int64_t bucket_ms;          /* bucket i is [from + i * bucket, from + (i+1) * bucket) */
    size_t n_buckets;           /* >= 1; buckets past to_ms stay empty */
};

/* The caller's arrays of n_buckets each. cnt and sum are zeroed by the
 * call; min[i] and max[i] are set where cnt[i] > 0. */
struct store_series_buckets {
    int64_t *cnt; /* finite values per bucket */
    double *sum, *min, *max;
    int64_t samples; /* rows of the type in the range, finite or not */
};

/*
 * A series' buckets from sample_day_aggs, filling missing aggregates from
 * sample_days first (its own transactions). *hit = 1: b holds exactly what
 * bucketing store_sample_window's rows in (start, id) order gives — the
 * same counts, sums, minima and maxima, bit for bit. *hit = 0 (and 0
 * returned): this query cannot be answered that way (bounds or bucket not
 * whole 15-minute slots, a value that is not a small integer in range,
 * uploads not yet in sample_days, a segment of a deleted upload); b is
 * undefined and the caller reads the samples. Returns 0, STORE_EINVAL for
 * a bad query, or a database error.
 */
int store_series_aggregate(struct store *st, const struct store_series_query *q, struct store_series_buckets *b,
                           int *hit);

/* Put the user's uploads that are not yet in sample_days (uploads stored by
 * a release before migration 006) into it; *healed (may be NULL) counts
 * them. Write transaction. The analysis job runs it before its read. */
int store_sample_days_heal(struct store_tx *tx, const char *user_id, int64_t *healed);

void store_window_free(struct store_window *w);

/* Progress of store_sample_rows_backfill and store_sample_blocks_to_rows. */
struct store_backfill_stats {
    int64_t days;                   /* user-days moved */
    int64_t samples;                /* samples moved */
    int done;                       /* 1 when none is left */
    char cursor_user[STORE_ID_LEN]; /* blocks_to_rows: where to resume */
    int64_t cursor_day;
};
/* Called after each batch; non-zero stops the pass. */
typedef int (*store_backfill_fn)(void *ctx, const struct store_backfill_stats *s);

/*
 * Issue #19's backfill: move the rows of health_samples (written by releases
 * before samples lived in blocks) into sealed blocks, one (user, day) at a
 * time, `batch` days per write transaction (0: 20), until none is left.
 * Each day keeps its samples, ids and (start, id) order, so every read
 * gives the same before, during and after; the day's legacy window copies
 * are dropped with its rows. Resumable by construction (a moved day has no
 * rows left) and safe beside writers and other passes (each day is moved
 * under its user's sample lock). Zero the stats to start. Returns 0 (also
 * when fn stopped it) or a store code.
 */
int store_sample_rows_backfill(struct store *st, size_t batch, store_backfill_fn fn, void *ctx,
                               struct store_backfill_stats *stats);

/*
 * The rollback of issue #19 (`clarity migrate samples-to-rows`): put the
 * samples of blocks back as health_samples rows with their ids, and each
 * day's bytes back as the unsealed window copies the release before blocks
 * reads (built from the rows), `batch` user-days per write transaction
 * (0: 20), in (user, day) order after stats->cursor_user/cursor_day. Needs
 * the sealer. Run it with this release stopped (a writer of this release
 * would add blocks behind it). Returns 0 (also when fn stopped it) or a
 * store code.
 */
int store_sample_blocks_to_rows(struct store *st, size_t batch, store_backfill_fn fn, void *ctx,
                                struct store_backfill_stats *stats);

/* ---- raw uploads (encrypted request bodies) ---------------------------- */

struct store_raw_upload {
    char upload_id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    int key_version;            /* key_ring version that wrapped the DEK */
    unsigned char *wrapped_dek; /* envelope: the data key, wrapped */
    size_t wrapped_dek_len;
    unsigned char *nonce;
    size_t nonce_len;
    unsigned char *ciphertext;
    size_t ciphertext_len;
    char content_type[64];
    int64_t created_at_ms;
};

int store_raw_upload_put(struct store_tx *tx, const struct store_raw_upload *r);
/* Read; the blobs are heap copies freed by store_raw_upload_clear. */
int store_raw_upload_get(struct store_tx *tx, const char *upload_id, struct store_raw_upload *out);
void store_raw_upload_clear(struct store_raw_upload *r);
/*
 * Delete raw bodies stored more than store_options.raw_retention_ms before
 * now_ms (RAW_UPLOAD_RETENTION_DAYS), in batches of 1,000 per write
 * transaction; nothing when the retention is 0 (keep). The uploads, samples
 * and analyses stay. *n (may be NULL) counts the bodies deleted.
 */
int store_raw_upload_purge(struct store *st, int64_t now_ms, int64_t *n);

/* ---- sealing analyses and insights (issue #19) --------------------------- */

/*
 * What seals health values at rest: the key ring registers itself
 * (keyring_store_sealer) in every process that holds it. Both functions
 * return 0 or non-zero (a store code passes through; anything else reads
 * as STORE_EINTERNAL); *blob / *plain are malloc'd (caller frees; *plain
 * has a NUL after *len bytes). `bound` names the record
 * ("analysis/<id>", "insight/<id>") so a sealed value moved to another row
 * or user does not open.
 */
struct store_sealer {
    void *ctx;
    int (*seal)(void *ctx, struct store_tx *tx, const char *user_id, const char *bound, const unsigned char *plain,
                size_t len, unsigned char **blob, size_t *blob_len);
    int (*open)(void *ctx, struct store_tx *tx, const char *user_id, const char *bound, const unsigned char *blob,
                size_t blob_len, unsigned char **plain, size_t *len);
};

/*
 * With a sealer set, store_analysis_insert and store_insight_insert keep
 * only the metadata queries need in the clear (ids, owner, upload/analysis,
 * kind, model, version, type, generator, confidence, created_at) and seal
 * coverage + result and narrative + body into the row's `sealed` column
 * (migration 009); reads open it. Rows without `sealed` (written before, or
 * by a process without a sealer) read as they are; a sealed row read
 * without a sealer answers STORE_EUNAVAILABLE. s NULL removes the sealer.
 * Set it before other threads use the store.
 */
void store_set_sealer(struct store *st, const struct store_sealer *s);

/* ---- analyses ---------------------------------------------------------- */

struct store_analysis {
    char id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    char upload_id[STORE_ID_LEN]; /* "" none */
    char kind[32];                /* e.g. "pat", "sleep", "step" */
    char model_version[64];
    int version;    /* result schema version */
    char *coverage; /* JSON: data coverage the results rest on */
    char *result;   /* JSON */
    int64_t created_at_ms;
    unsigned char *sealed_; /* store-internal (the sealed form as read); ignore */
    size_t sealed_len_;
};

int store_analysis_insert(struct store_tx *tx, const struct store_analysis *a);
/* user_id NULL: any owner. Free with store_analysis_clear. */
int store_analysis_get(struct store_tx *tx, const char *id, const char *user_id, struct store_analysis *out);
int store_analysis_list(struct store_tx *tx, const char *user_id, const struct store_cursor *after, size_t limit,
                        struct store_analysis **out, size_t *n, struct store_cursor *next);
void store_analysis_clear(struct store_analysis *a);
void store_analysis_list_free(struct store_analysis *v, size_t n);

/* ---- insights ---------------------------------------------------------- */

struct store_insight {
    char id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    char analysis_id[STORE_ID_LEN]; /* "" none */
    char insight_type[32];
    char generator[32]; /* "builtin", "gemini", … */
    char *narrative;
    char *body; /* JSON: key_insights, recommendations, … */
    double confidence;
    int64_t created_at_ms;
    unsigned char *sealed_; /* store-internal (the sealed form as read); ignore */
    size_t sealed_len_;
};

int store_insight_insert(struct store_tx *tx, const struct store_insight *i);
int store_insight_get(struct store_tx *tx, const char *id, const char *user_id, struct store_insight *out);
/* Replace the content of insight i->id of user i->user_id (a re-sync of the
 * same analysis period: analysis_id, generator, narrative, body, confidence,
 * created_at). STORE_ENOTFOUND when there is no such row. */
int store_insight_update(struct store_tx *tx, const struct store_insight *i);
/* Newest first; insight_type NULL for all types. */
int store_insight_list(struct store_tx *tx, const char *user_id, const char *insight_type,
                       const struct store_cursor *after, size_t limit, struct store_insight **out, size_t *n,
                       struct store_cursor *next);
/* How many insights user_id has (the history's total_count). */
int store_insight_count(struct store_tx *tx, const char *user_id, int64_t *count);
void store_insight_clear(struct store_insight *i);
void store_insight_list_free(struct store_insight *v, size_t n);

/* ---- key ring ---------------------------------------------------------- */

struct store_key {
    int version;
    char algorithm[32];         /* e.g. "xchacha20poly1305" */
    char status[16];            /* active | retired */
    unsigned char *wrapped_key; /* heap on read */
    size_t wrapped_key_len;
    int64_t created_at_ms;
};

int store_key_insert(struct store_tx *tx, const struct store_key *k);
int store_key_get(struct store_tx *tx, int version, struct store_key *out);
/* The highest-versioned active key. */
int store_key_get_active(struct store_tx *tx, struct store_key *out);
int store_key_status_set(struct store_tx *tx, int version, const char *status);
void store_key_clear(struct store_key *k);

/* ---- administration ---------------------------------------------------- */

/*
 * Online copy of a SQLite database to path (SQLite's backup API, pages copied
 * in steps so writers keep going). On PostgreSQL returns STORE_EUNSUPPORTED
 * with a pointer to pg_dump in err.
 */
int store_backup(struct store *st, const char *path, char *err, size_t errlen);

/* Run SQL outside the repositories, in its own transaction: for tools and
 * tests (seeding old schemas, simulating tampering). Never for request data. */
int store_admin_exec(struct store *st, const char *sql, char *err, size_t errlen);

/* Health checks for core/health.h; ctx is the struct store *.
 * database: a real round trip. pubsub: depth and oldest age per topic and
 * dead-letter count, unhealthy past the store_options thresholds. */
int store_health_database(void *ctx, json_t *details, char *err, size_t errlen);
int store_health_pubsub(void *ctx, json_t *details, char *err, size_t errlen);
/* Register both checks ("database", "pubsub") with st as their context.
 * Returns 0, or -1 when the registry is full. */
int store_health_register(struct health_registry *r, struct store *st);

#endif
