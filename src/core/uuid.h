/*
 * uuid.h — random identifiers.
 */
#ifndef CLARITY_CORE_UUID_H
#define CLARITY_CORE_UUID_H

#include <stddef.h>

#define UUID_STR_LEN 37 /* 36 characters + NUL */

/* A version 7 UUID (RFC 9562 §5.7: 48-bit Unix milliseconds, then random
 * bits), lowercase. Time-ordered ids keep B-tree inserts local. out must hold
 * UUID_STR_LEN bytes. Returns 0, or -1 if the kernel's random source failed. */
int uuid_v7(char out[UUID_STR_LEN]);
/* A version 4 (random) UUID, RFC 9562 §5.4. */
int uuid_v4(char out[UUID_STR_LEN]);
/* 1 when s is a UUID in canonical 8-4-4-4-12 hex form (any case), else 0. */
int uuid_is_valid(const char *s);

/* Fill buf with n cryptographically secure random bytes. 0 or -1. */
int random_bytes(void *buf, size_t n);

#endif
