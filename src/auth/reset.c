/*
 * reset.c — one-time password-reset codes (reset.h).
 *
 * 144 random bits make guessing hopeless even without the try limit; the
 * limit (and the per-address lockout at the API) keeps a leaked-but-wrong
 * guess loop from hammering the database. SHA-256 without a salt is enough
 * for a high-entropy secret (no dictionary to run), and hashing the user id
 * in binds a code to its account: a row copied to another user is useless.
 */
#include "auth/reset.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

static void reset_hash(const char *user_id, const char *code, char out[65])
{
    crypto_hash_sha256_state st;
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, (const unsigned char *)user_id, strlen(user_id));
    crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
    crypto_hash_sha256_update(&st, (const unsigned char *)code, strlen(code));
    crypto_hash_sha256_final(&st, d);
    sodium_bin2hex(out, 65, d, sizeof(d));
}

int reset_code_issue(struct store_tx *tx, const char *user_id, int64_t now_ms, char code[RESET_CODE_LEN + 1],
                     int64_t *expires_at_ms)
{
    unsigned char raw[RESET_CODE_BYTES];
    struct store_reset_code c;
    if (sodium_init() < 0)
        return -1;
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(code, RESET_CODE_LEN + 1, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    memset(&c, 0, sizeof(c));
    snprintf(c.user_id, sizeof(c.user_id), "%s", user_id);
    reset_hash(user_id, code, c.code_hash);
    c.created_at_ms = now_ms;
    c.expires_at_ms = now_ms + RESET_TTL_S * 1000LL;
    int rc = store_reset_code_put(tx, &c);
    if (rc == 0)
        *expires_at_ms = c.expires_at_ms;
    else
        sodium_memzero(code, RESET_CODE_LEN + 1);
    return rc;
}

int reset_code_redeem(struct store_tx *tx, const char *user_id, const char *code, int64_t now_ms,
                      enum reset_outcome *outcome)
{
    struct store_reset_code c;
    int rc = store_reset_code_get(tx, user_id, &c);
    if (rc == STORE_ENOTFOUND || (rc == 0 && (c.expires_at_ms <= now_ms || c.attempts >= RESET_MAX_ATTEMPTS))) {
        *outcome = RESET_REFUSED;
        return 0;
    }
    if (rc != 0)
        return rc;
    char h[65];
    reset_hash(user_id, code, h);
    if (sodium_memcmp(h, c.code_hash, 64) == 0) {
        rc = store_reset_code_delete(tx, user_id);
        if (rc == 0)
            *outcome = RESET_ACCEPTED;
    } else {
        rc = store_reset_code_attempt(tx, user_id);
        if (rc == 0)
            *outcome = RESET_WRONG;
    }
    return rc;
}
