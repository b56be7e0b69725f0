/*
 * keyring.h — the versioned key ring behind encryption at rest.
 *
 * Key hierarchy (docs/security.md):
 *
 *   ENCRYPTION_KEY (32 bytes, configuration; never stored in the database)
 *     └─ root wrapping key = crypto_kdf(ENCRYPTION_KEY, "clarkeyr", 1)
 *          └─ key-encryption keys (KEKs), one per key-ring version: random,
 *             stored in key_ring.wrapped_key wrapped by the root key
 *               └─ data keys (DEKs), one per raw upload or sealed blob:
 *                  random, stored in raw_uploads.wrapped_dek or in the
 *                  blob's head, wrapped by one KEK version
 *                    └─ the body (raw_uploads.ciphertext) or the blob's
 *                       ciphertext (envelope.h)
 *
 * New uploads use the active (highest) version. `keyring_rotate` adds a new
 * version and retires the older ones; retired versions still decrypt, so
 * nothing becomes unreadable at any moment. `keyring_rewrap` then moves every
 * stored DEK to the active version in batches: it rewrites the 72-byte
 * wrapped DEK and key_version of each row and never the body, while the
 * service keeps running.
 *
 * A `struct keyring` is opened once at start-up and shared by all threads:
 * unwrapped KEKs are cached (in libsodium secure memory) behind a mutex; the
 * active version is re-read from the store at most every
 * KEYRING_ACTIVE_REFRESH_MS, so running instances pick up a rotation made by
 * `clarity keys rotate` in another process without a restart.
 *
 * Return codes: 0, a STORE_E* code (passed through unchanged from the
 * store), or a KEYRING_E* code (core/err.h); clarity_strerror names both. Nothing here logs key material; only
 * keyring_master_load logs (a warning when a development key is generated
 * or used).
 */
#ifndef CLARITY_CRYPTO_KEYRING_H
#define CLARITY_CRYPTO_KEYRING_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/envelope.h"
#include "store/store.h"

struct config;

/* Return codes: KEYRING_E* in core/err.h; STORE_E* codes pass through. */

#define KEYRING_ALGORITHM "xchacha20poly1305" /* store_key.algorithm of every version */
#define KEYRING_DEV_KEY_PATH "var/encryption.key"
#define KEYRING_ROTATION_DAYS 90        /* the deployment guide's rotation period */
#define KEYRING_ACTIVE_REFRESH_MS 30000 /* re-read the active version this often */
#define KEYRING_REWRAP_BATCH_DEFAULT 100

struct keyring;

/*
 * Resolve the master key (ENCRYPTION_KEY / ENCRYPTION_KEY_FILE, already read
 * into cfg->encryption_key by config_load):
 *  - set: decode it (base64 of exactly 32 bytes) or fail with KEYRING_EINVAL
 *    and "ENCRYPTION_KEY: decodes to 16 bytes; ..." in err;
 *  - unset in development: read dev_key_path (NULL: KEYRING_DEV_KEY_PATH),
 *    creating it (directory 0700, file 0600, O_EXCL so concurrent starts
 *    agree on one key) with a fresh random key when absent, and log a
 *    warning either way; a key file readable by group or others is refused;
 *  - unset in staging/production: KEYRING_ENOKEY (config_load already
 *    refuses that configuration; this is defence in depth).
 * Returns 0 and *out (free with envelope_key_free) or a code with one line in
 * err that never contains key material.
 */
int keyring_master_load(const struct config *cfg, const char *dev_key_path, struct envelope_key **out, char *err,
                        size_t errlen);

/*
 * Open the key ring in st (borrowed; must outlive the ring) with master
 * (borrowed; only a derived key is kept). On an empty key_ring table creates
 * version 1 (two instances racing to do so agree on one). Verifies that the
 * master key opens the active version: a different ENCRYPTION_KEY fails here
 * with KEYRING_EAUTH and a message saying so, before any data is touched.
 * Returns 0 and *out (keyring_close), or a code with one line in err.
 */
int keyring_open(struct store *st, const struct envelope_key *master, struct keyring **out, char *err, size_t errlen);

/* Wipe every cached key and free the ring; accepts NULL. */
void keyring_close(struct keyring *ring);

/* ---- the upload path ------------------------------------------------------ */

/*
 * Encrypt body (len bytes) for (user_id, upload_id) under the active version,
 * reading keys inside the caller's transaction tx. Fills *out: upload_id,
 * user_id, key_version, wrapped_dek, nonce, ciphertext (heap; free with
 * store_raw_upload_clear), content_type (may be NULL → ""), created_at 0.
 * Ids must fit STORE_ID_LEN. Returns 0, KEYRING_EINVAL, KEYRING_ENOMEM, a
 * store code, or KEYRING_EAUTH/ESTATE when the ring is damaged.
 */
int keyring_raw_upload_seal(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *upload_id,
                            const char *content_type, const unsigned char *body, size_t len,
                            struct store_raw_upload *out);

/*
 * Decrypt a stored row r (as read by store_raw_upload_get) with the key
 * version it names, checking the binding to r->user_id and r->upload_id.
 * *body is malloc'd, NUL-terminated (not counted in *len); caller frees.
 * KEYRING_EAUTH when any stored byte or the binding was altered, or a part is
 * missing or has the wrong size; KEYRING_ESTATE when it names a version the
 * ring does not hold.
 */
int keyring_raw_upload_open(struct keyring *ring, struct store_tx *tx, const struct store_raw_upload *r,
                            unsigned char **body, size_t *len);

/* Seal and store_raw_upload_put in tx: the one call the upload handler makes
 * inside its transaction. Same returns as the two calls. */
int keyring_raw_upload_put(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *upload_id,
                           const char *content_type, const unsigned char *body, size_t len);

/*
 * store_raw_upload_get and open. user_id NULL: any owner (workers, admin);
 * otherwise a row of another user answers STORE_ENOTFOUND. content_type
 * (may be NULL) receives the stored type, 64 bytes.
 */
int keyring_raw_upload_get(struct keyring *ring, struct store_tx *tx, const char *upload_id, const char *user_id,
                           unsigned char **body, size_t *len, char content_type[64]);

/* ---- sealed blobs: sample blocks, analyses, insights (issue #19) ---------- */

/*
 * A sealed blob is one self-contained column value: u8 format (1), u32
 * key_version (little-endian), the wrapped DEK (72), the nonce (24), then
 * the ciphertext (plaintext + 16-byte tag): KEYRING_BLOB_OVERHEAD bytes more
 * than the plaintext. Each blob has its own random DEK, so a key rotation
 * re-wraps 72 bytes and never re-encrypts the block.
 *
 * The associated data binds the blob to user_id and to `bound`, a short
 * text naming what it is: keyring_block_binding's "block/<day>/<n>/v<format>"
 * for a sample block, an analysis or insight id for those. A blob copied to
 * another user, day, block or version fails to open (KEYRING_EAUTH).
 */
#define KEYRING_BLOB_FORMAT 1
#define KEYRING_BLOB_OVERHEAD (1 + 4 + ENVELOPE_WRAPPED_BYTES + ENVELOPE_NONCE_BYTES + ENVELOPE_TAG_BYTES)
#define KEYRING_BINDING_LEN 96

/* "block/<day>/<seq>/v<format>" into out: a binding for a sample block of a
 * user (day: days since the epoch, UTC; seq: the block's number within the
 * day; format: BLOCK_SEAL_FORMAT). The store seals each sample_days row to
 * "block/<day>/v<format>" instead (days.c), which keyring_rewrap rebuilds. */
void keyring_block_binding(int64_t day, int64_t seq, int format, char out[KEYRING_BINDING_LEN]);

/*
 * Seal plain (len bytes, may be 0) for (user_id, bound) under the active
 * key version, reading keys in tx. *blob is malloc'd (*blob_len bytes;
 * caller frees). Returns 0, KEYRING_EINVAL (ids empty or longer than
 * ENVELOPE_ID_MAX), KEYRING_ENOMEM or a store/ring code.
 */
int keyring_blob_seal(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *bound,
                      const unsigned char *plain, size_t len, unsigned char **blob, size_t *blob_len);

/*
 * Open a blob made by keyring_blob_seal for the same (user_id, bound).
 * *plain is malloc'd with a NUL after *len bytes (caller frees).
 * KEYRING_EAUTH when any byte, the user or the binding differ or the blob is
 * too short; KEYRING_ESTATE when it names a version the ring lacks.
 */
int keyring_blob_open(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *bound,
                      const unsigned char *blob, size_t blob_len, unsigned char **plain, size_t *len);

/* The store's sealer (store_set_sealer) backed by keyring_blob_seal/open:
 * analyses and insights sealed with the ring. ring must outlive its use. */
void keyring_store_sealer(struct keyring *ring, struct store_sealer *out);

/* ---- administration --------------------------------------------------------- */

struct keyring_version {
    int version;
    char algorithm[32];
    char status[16]; /* active | retired */
    int64_t created_at_ms;
    int64_t age_days; /* whole days since created_at */
    int opens;        /* 1 when the configured master key unwraps it */
};

/* Every version, oldest first, into a new array (free()); *active receives
 * the active version. Returns 0 or a code. */
int keyring_status_list(struct keyring *ring, struct keyring_version **out, size_t *n, int *active);

/*
 * Add a new random version, make it the active one and retire all older
 * versions, in one write transaction. Old versions stay readable. A
 * concurrent rotation loses with STORE_ECONFLICT. Returns 0 and *new_version.
 */
int keyring_rotate(struct keyring *ring, int *new_version, char *err, size_t errlen);

/* The tables a re-wrap pass walks, in this order (stats->tables[i]). */
enum keyring_rewrap_table_id {
    KEYRING_REWRAP_RAW_UPLOADS = 0,     /* raw_uploads.wrapped_dek */
    KEYRING_REWRAP_ANALYSES = 1,        /* analyses.sealed */
    KEYRING_REWRAP_INSIGHTS = 2,        /* insights.sealed */
    KEYRING_REWRAP_SAMPLE_DAYS = 3,     /* sample_days.data starting with KEYRING_BLOB_FORMAT */
    KEYRING_REWRAP_SAMPLE_DAY_AGGS = 4, /* sample_day_aggs.data: 0xA5, then a blob */
};
#define KEYRING_REWRAP_TABLES 5

struct keyring_rewrap_table {
    const char *name;  /* the table's name */
    int64_t scanned;   /* raw_uploads: every row looked at; blobs: those not under the target */
    int64_t rewrapped; /* moved to the target version */
    int64_t skipped;   /* deleted or changed by another writer meanwhile (left to it) */
    int64_t failed;    /* could not be unwrapped (left untouched, logged) */
    int done;          /* the pass went through the whole table */
};

struct keyring_rewrap_stats {
    int64_t scanned; /* the sums of tables[] */
    int64_t rewrapped;
    int64_t skipped;
    int64_t failed;
    int target; /* the version moved to */
    int table;  /* the table of the last batch (progress callbacks) */
    struct keyring_rewrap_table tables[KEYRING_REWRAP_TABLES];
};

/* Called after each batch; a non-zero return stops the pass. */
typedef int (*keyring_progress_fn)(void *ctx, const struct keyring_rewrap_stats *s);

/*
 * Re-wrap every stored DEK that is not under the active version: raw
 * uploads' wrapped_dek, then the sealed blobs of analyses, insights,
 * sample_days and sample_day_aggs (keyring_blob_seal's blobs: their 72-byte wrapped DEK and
 * 4-byte version change, the nonce and ciphertext are never re-encrypted
 * and keep their bytes). `batch` rows per write transaction (0:
 * KEYRING_REWRAP_BATCH_DEFAULT). Reads happen in short read transactions,
 * and each update only applies when the row still holds what it was read
 * with (raw uploads: the version; blobs: the whole 77-byte head, whose wrap
 * nonce is random), so uploads, analyses and block writers continue during
 * the pass; a row deleted or replaced meanwhile is counted as skipped.
 * Blobs are bound as their writers in the store bind them: analyses
 * "analysis/<id>", insights "insight/<id>", sample_days rows
 * "block/<day>/v<format>" (format BLOCK_SEAL_FORMAT down to 1), aggregates
 * "agg/<sample_day_id>/<metric type>". Idempotent: an
 * interrupted pass (progress returning non-zero, a crash) resumes when run
 * again, as only rows not yet under the target are moved. Rows that do not
 * unwrap are counted in stats->failed and left as they are (the return is
 * still 0; the caller decides). Returns 0 and *stats, or a code with err.
 */
int keyring_rewrap(struct keyring *ring, size_t batch, keyring_progress_fn progress, void *ctx,
                   struct keyring_rewrap_stats *stats, char *err, size_t errlen);

/*
 * health_check_fn (core/health.h) for "encryption"; ctx is the struct keyring *.
 * Healthy when the active version can be read and unwrapped; details get
 * active_version, active_key_created_at, active_key_age_days and
 * rotation_period_days, plus a "warning" string when the active key is older
 * than KEYRING_ROTATION_DAYS (still healthy: an old key is a chore, not an
 * outage). Unhealthy (-1, reason in err) when the store fails or the key does
 * not unwrap.
 */
int keyring_health_check(void *ctx, json_t *details, char *err, size_t errlen);

#endif
