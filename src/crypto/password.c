/*
 * password.c — Argon2id (RFC 9106) through libsodium's crypto_pwhash_str.
 */
#include "crypto/password.h"

#include <sodium.h>
#include <string.h>

static void limits(enum password_profile p, unsigned long long *ops, size_t *mem)
{
    if (p == PASSWORD_MODERATE) {
        *ops = crypto_pwhash_OPSLIMIT_MODERATE;
        *mem = crypto_pwhash_MEMLIMIT_MODERATE;
    } else {
        *ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        *mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    }
}

int password_init(void) { return sodium_init() < 0 ? -1 : 0; }

int password_hash(const char *pw, enum password_profile profile, char out[PASSWORD_HASH_MAX])
{
    unsigned long long ops;
    size_t mem;
    limits(profile, &ops, &mem);
    _Static_assert(PASSWORD_HASH_MAX >= crypto_pwhash_STRBYTES, "hash buffer too small");
    return crypto_pwhash_str(out, pw, strlen(pw), ops, mem) == 0 ? 0 : -1;
}

int password_verify(const char *hash, const char *pw)
{
    if (hash == NULL || strlen(hash) >= crypto_pwhash_STRBYTES)
        return -1;
    char h[crypto_pwhash_STRBYTES];
    memset(h, 0, sizeof(h));
    memcpy(h, hash, strlen(hash));
    return crypto_pwhash_str_verify(h, pw, strlen(pw)) == 0 ? 0 : -1;
}

void password_verify_dummy(enum password_profile profile, const char *pw)
{
    /* Hashing with the profile's limits costs what verifying a stored hash
     * of that profile costs (the same Argon2id computation). */
    char out[PASSWORD_HASH_MAX];
    (void)password_hash(pw, profile, out);
    sodium_memzero(out, sizeof(out));
}

int password_needs_rehash(const char *hash, enum password_profile profile)
{
    unsigned long long ops;
    size_t mem;
    limits(profile, &ops, &mem);
    if (hash == NULL || strlen(hash) >= crypto_pwhash_STRBYTES)
        return 1;
    char h[crypto_pwhash_STRBYTES];
    memset(h, 0, sizeof(h));
    memcpy(h, hash, strlen(hash));
    return crypto_pwhash_str_needs_rehash(h, ops, mem) != 0;
}

const char *password_policy_check(const char *pw)
{
    static const char specials[] = "!@#$%^&*()_+-=[]{}|;:,.<>?";
    /* Count characters, not bytes, so multi-byte UTF-8 counts once. */
    size_t chars = 0;
    int upper = 0, lower = 0, digit = 0, special = 0;
    for (const unsigned char *p = (const unsigned char *)pw; *p; p++) {
        if ((*p & 0xc0) != 0x80)
            chars++;
        if (*p >= 'A' && *p <= 'Z')
            upper = 1;
        else if (*p >= 'a' && *p <= 'z')
            lower = 1;
        else if (*p >= '0' && *p <= '9')
            digit = 1;
        else if (*p < 0x80 && strchr(specials, *p) != NULL)
            special = 1;
    }
    if (chars < PASSWORD_MIN_LEN)
        return "must be at least 8 characters";
    if (chars > PASSWORD_MAX_LEN)
        return "must be at most 128 characters";
    if (!upper)
        return "must contain an upper-case letter";
    if (!lower)
        return "must contain a lower-case letter";
    if (!digit)
        return "must contain a digit";
    if (!special)
        return "must contain one of !@#$%^&*()_+-=[]{}|;:,.<>?";
    return NULL;
}
