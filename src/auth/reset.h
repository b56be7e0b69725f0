/*
 * reset.h — one-time password-reset codes: issued by an operator (`clarity
 * users reset-password`), redeemed by the user (POST
 * /api/v1/auth/reset-password).
 *
 * A code is RESET_CODE_BYTES random bytes (144 bits) as URL-safe base64,
 * valid RESET_TTL_S, at most RESET_MAX_ATTEMPTS wrong tries, one pending per
 * user (a new one replaces the old). Only SHA-256(user id ":" code) is
 * stored (table password_resets, migration 012): a reader of the database
 * cannot use it, and the code is never logged or audited.
 */
#ifndef CLARITY_AUTH_RESET_H
#define CLARITY_AUTH_RESET_H

#include <stdint.h>

#include "store/store.h"

#define RESET_CODE_BYTES 18
#define RESET_CODE_LEN 24 /* base64url of 18 bytes, no padding */
#define RESET_TTL_S (60 * 60)
#define RESET_MAX_ATTEMPTS 5

/* users.password_hash of an account whose password an operator reset, until
 * the code is redeemed: no password matches it (it is no Argon2 string, so
 * login spends a dummy check and answers 401), and unlike an external
 * account's "!…" it does not make the account linkable by e-mail. */
#define RESET_PENDING_HASH "*reset-pending"

/* What reset_code_redeem found. */
enum reset_outcome {
    RESET_ACCEPTED = 0, /* the right code: it is consumed (deleted) */
    RESET_REFUSED = 1,  /* no pending code, expired, or its tries used up */
    RESET_WRONG = 2     /* a pending code, not this one: the try is counted */
};

/*
 * Issue a new code for user_id in tx at now_ms, replacing a pending one.
 * code gets the code (NUL-ended; the caller shows it once, then wipes it),
 * *expires_at_ms its expiry. 0, -1 when no random bytes could be had, or a
 * STORE_E* code.
 */
int reset_code_issue(struct store_tx *tx, const char *user_id, int64_t now_ms, char code[RESET_CODE_LEN + 1],
                     int64_t *expires_at_ms);

/*
 * Check code against user_id's pending code at now_ms in tx (a write
 * transaction): the right one is deleted (RESET_ACCEPTED), a wrong one has
 * its try counted (RESET_WRONG); nothing is changed for RESET_REFUSED. The
 * comparison is constant-time. 0 with *outcome set, or a STORE_E* code.
 */
int reset_code_redeem(struct store_tx *tx, const char *user_id, const char *code, int64_t now_ms,
                      enum reset_outcome *outcome);

#endif
