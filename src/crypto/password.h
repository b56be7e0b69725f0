/*
 * password.h — password hashing (Argon2id via libsodium) and the password
 * policy of API.md.
 *
 * Hashes are libsodium's encoded strings ("$argon2id$v=19$m=…,t=…,p=1$…"),
 * which carry their own salt and limits, so limits can be raised later and
 * old hashes upgraded on the next successful login (password_needs_rehash).
 */
#ifndef CLARITY_CRYPTO_PASSWORD_H
#define CLARITY_CRYPTO_PASSWORD_H

#include <stddef.h>

#include "core/limits.h"

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */
#define PASSWORD_MIN_LEN 8
#define PASSWORD_MAX_LEN LIMIT_PASSWORD_CHARS

/* Cost profiles: libsodium's INTERACTIVE (64 MiB, 2 passes) and MODERATE
 * (256 MiB, 3 passes, the choice for production). */
enum password_profile { PASSWORD_INTERACTIVE = 0, PASSWORD_MODERATE };

/* Initialise libsodium; call once at start-up. 0 or -1. */
int password_init(void);

/* Hash pw into out (PASSWORD_HASH_MAX bytes). 0, or -1 (out of memory). */
int password_hash(const char *pw, enum password_profile profile, char out[PASSWORD_HASH_MAX]);

/* 0 when pw matches hash, -1 otherwise (also for a malformed hash). Takes the
 * same time as hashing with the hash's limits. */
int password_verify(const char *hash, const char *pw);

/* Spend the time a verification against a real hash would take, for a login
 * with an unknown email, so that timing does not reveal which emails exist. */
void password_verify_dummy(enum password_profile profile, const char *pw);

/* 1 when hash was made with other limits than profile's (re-hash it). */
int password_needs_rehash(const char *hash, enum password_profile profile);

/*
 * Check the policy: 8–128 characters, at least one upper-case letter, one
 * lower-case letter, one digit and one of !@#$%^&*()_+-=[]{}|;:,.<>?
 * Returns NULL when acceptable, else a static sentence naming what is missing.
 */
const char *password_policy_check(const char *pw);

#endif
