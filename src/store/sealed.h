/*
 * sealed.h — the store's side of re-wrapping sealed blobs after a key
 * rotation (keyring_rewrap, issue #19).
 *
 * A sealed blob (keyring_blob_seal) is one column value: u8 format (1),
 * u32 key version (little-endian), the 72-byte wrapped DEK, the nonce, the
 * ciphertext. Rotation changes only its first STORE_SEALED_HEAD bytes
 * (format, version, wrapped DEK); the rest is never read or rewritten by
 * these calls' callers. The tables holding them:
 *
 *   analyses.sealed, insights.sealed (migration 009; NULL: not sealed)
 *   sample_days.data, when its first byte is 1 (a sealed day row; unsealed
 *     rows start with 0xD1, 0xD2 or 0xD3 and are never listed)
 *   sample_day_aggs.data, when it is 0xA5 followed by a sealed blob (the
 *     blob, and so its head, starts at byte 1; unsealed aggregates are
 *     never listed)
 *
 * The store knows nothing about keys: it lists the heads of the blobs not
 * under a given version and applies new heads by compare-and-set.
 */
#ifndef CLARITY_STORE_SEALED_H
#define CLARITY_STORE_SEALED_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define STORE_SEALED_FORMAT 1                                          /* == KEYRING_BLOB_FORMAT */
#define STORE_SEALED_HEAD (1 + 4 + 72)                                 /* format, version, wrapped DEK */
#define STORE_SEALED_NONCE 24                                          /* what follows the head */
#define STORE_SEALED_MIN (STORE_SEALED_HEAD + STORE_SEALED_NONCE + 16) /* + tag */

enum store_sealed_table {
    STORE_SEALED_ANALYSES = 0,
    STORE_SEALED_INSIGHTS = 1,
    STORE_SEALED_SAMPLE_DAYS = 2,
    STORE_SEALED_SAMPLE_DAY_AGGS = 3,
};
#define STORE_SEALED_TABLES 4
#define STORE_SEALED_AGG_MARK 0xA5 /* days.c AGG_SEALED: the byte before an aggregate's blob */

/* "analyses", "insights", "sample_days", "sample_day_aggs"; NULL for
 * anything else. */
const char *store_sealed_table_name(enum store_sealed_table t);

/* The position of a pass in one table: rows are visited in id order. */
struct store_sealed_cursor {
    int set;
    char id[STORE_ID_LEN]; /* analyses, insights */
    int64_t rowid;         /* sample_days, sample_day_aggs (sample_day_id) */
    char metric_type[48];  /* sample_day_aggs */
};

struct store_sealed_row {
    char id[STORE_ID_LEN];      /* analyses/insights: the row id; else the integer id as text */
    int64_t rowid;              /* sample_days: the id; sample_day_aggs: sample_day_id; else 0 */
    char metric_type[48];       /* sample_day_aggs: the aggregate's metric type; else "" */
    char user_id[STORE_ID_LEN]; /* sample_day_aggs: the owner of its sample_days row */
    int64_t day;                /* sample_days: days since the epoch (UTC); else 0 */
    size_t len;                 /* the whole blob's length */
    uint32_t key_version;       /* from the head */
    unsigned char head[STORE_SEALED_HEAD];
};

/*
 * Up to limit (1..STORE_PAGE_MAX) sealed blobs of table t after *after (NULL
 * or unset: from the start) whose key version is not `version`, in id
 * order, into *out (malloc'd; free()). Only blobs whose first byte is
 * STORE_SEALED_FORMAT are listed; rows without a blob and unsealed
 * sample_days rows are passed over. *next is set to the last row returned
 * (unset when fewer than limit came back: the table is done). Reads only
 * the heads, never the ciphertext.
 */
int store_sealed_list(struct store_tx *tx, enum store_sealed_table t, uint32_t version,
                      const struct store_sealed_cursor *after, size_t limit, struct store_sealed_row **out, size_t *n,
                      struct store_sealed_cursor *next);

/*
 * Replace the head of row r's blob with head (same length), in place (an
 * UPDATE of that column only: rows that reference it, like
 * sample_day_aggs, are not touched), but only when the row still holds the
 * head it was listed with (r->head). *applied is 1 when it was replaced, 0
 * when the row was deleted or changed meanwhile (nothing written).
 */
int store_sealed_rewrap(struct store_tx *tx, enum store_sealed_table t, const struct store_sealed_row *r,
                        const unsigned char head[STORE_SEALED_HEAD], int *applied);

#endif
