/*
 * idempotency.h — stored replies for the Idempotency-Key header (IETF
 * httpapi "The Idempotency-Key HTTP Header Field" draft): the same key from
 * the same user within the retention window gets the first reply again,
 * without the request being processed twice.
 */
#ifndef CLARITY_STORE_IDEMPOTENCY_H
#define CLARITY_STORE_IDEMPOTENCY_H

#include <stdint.h>

#include "core/limits.h"
#include "store/store.h"

#define STORE_IDEMPOTENCY_KEY_MAX LIMIT_IDEMPOTENCY_KEY
#define STORE_IDEMPOTENCY_RETENTION_MS (24LL * 3600 * 1000)

struct store_idempotency {
    char user_id[STORE_ID_LEN];
    char key[STORE_IDEMPOTENCY_KEY_MAX + 1];
    char request_hash[65]; /* hex SHA-256 of the request body */
    int status;            /* the HTTP status first answered */
    char *response;        /* the body first answered; heap on read (clear) */
    int64_t created_at_ms;
};

/*
 * Record a reply inside the caller's transaction (the one that stores what
 * the reply describes). STORE_ECONFLICT, with nothing written, when the user
 * already has this key: the caller rolls back and replays or refuses.
 */
int store_idempotency_put(struct store_tx *tx, const struct store_idempotency *r);

/* The reply stored for (user_id, key) no older than not_before_ms;
 * STORE_ENOTFOUND otherwise. */
int store_idempotency_get(struct store_tx *tx, const char *user_id, const char *key, int64_t not_before_ms,
                          struct store_idempotency *out);

/* Delete replies older than before_ms; *n (may be NULL) receives the count. */
int store_idempotency_purge(struct store_tx *tx, int64_t before_ms, int64_t *n);

void store_idempotency_clear(struct store_idempotency *r);

#endif
