/*
 * uuid.c — RFC 9562 UUIDs from getrandom(2).
 */
#include "core/uuid.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/timeutil.h"

/* Read n bytes from the kernel's CSPRNG (getrandom(2), blocking until seeded). */
static int kernel_random(unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/*
 * Small requests are served from a per-thread pool of kernel random bytes,
 * refilled 512 bytes at a time: one system call per 32 UUIDs instead of one
 * each. Bytes are used once and then wiped. Large requests go to the kernel.
 */
#define POOL_SIZE 512
static _Thread_local unsigned char pool[POOL_SIZE];
static _Thread_local size_t pool_left;

int random_bytes(void *buf, size_t n)
{
    unsigned char *out = buf;
    if (n > POOL_SIZE / 4)
        return kernel_random(out, n);
    if (pool_left < n) {
        if (kernel_random(pool, POOL_SIZE) != 0)
            return -1;
        pool_left = POOL_SIZE;
    }
    unsigned char *src = pool + (POOL_SIZE - pool_left);
    memcpy(out, src, n);
    memset(src, 0, n);
    pool_left -= n;
    return 0;
}

static void format(const unsigned char b[16], char out[UUID_STR_LEN])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

int uuid_v4(char out[UUID_STR_LEN])
{
    unsigned char b[16];
    if (random_bytes(b, sizeof(b)) != 0)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format(b, out);
    return 0;
}

int uuid_v7(char out[UUID_STR_LEN])
{
    unsigned char b[16];
    if (random_bytes(b, sizeof(b)) != 0)
        return -1;
    uint64_t ms = (uint64_t)time_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    format(b, out);
    return 0;
}

int uuid_is_valid(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}
