/*
 * limiter.h — bounded, thread-safe throttles keyed by subject: token buckets
 * for rate limiting and failure counters for login lockout.
 *
 * Keys are hashed with keyed SipHash (a secret per process, so nobody can
 * aim collisions) into a fixed table of sharded slots. The table never
 * grows: when a key finds no free slot among its probe window, the entry
 * least recently used there is evicted, so memory stays bounded under any
 * number of distinct keys. An evicted bucket comes back full and an evicted
 * failure count comes back at zero — the documented price of the bound.
 */
#ifndef CLARITY_AUTH_LIMITER_H
#define CLARITY_AUTH_LIMITER_H

#include <stddef.h>
#include <stdint.h>

struct limiter;

struct rate_rule {
    int count;    /* requests per period (bucket capacity) */
    int period_s; /* refill period in seconds */
};

struct rate_result {
    int allowed;
    int limit;         /* RateLimit-Limit */
    int remaining;     /* RateLimit-Remaining */
    int reset_s;       /* RateLimit-Reset: seconds until the bucket is full */
    int retry_after_s; /* when refused: seconds until one request is allowed */
};

/* A table of about `capacity` entries (rounded up). NULL on OOM. */
struct limiter *limiter_new(size_t capacity);
void limiter_free(struct limiter *l);

/* Take one token from key's bucket under rule at time now_ms. */
void limiter_take(struct limiter *l, const char *key, const struct rate_rule *rule, int64_t now_ms,
                  struct rate_result *out);

/*
 * Lockout: record a failure for key. After `threshold` failures within
 * `window_s` seconds of the first, the key is locked for `lock_s` seconds.
 * Returns the seconds the key is now locked for (0 when not locked).
 */
int limiter_fail(struct limiter *l, const char *key, int threshold, int window_s, int lock_s, int64_t now_ms);
/* Seconds key remains locked (0 when not). */
int limiter_locked(struct limiter *l, const char *key, int64_t now_ms);
/* Forget key (a successful login clears its failures). */
void limiter_clear(struct limiter *l, const char *key);

#ifdef CLARITY_TEST_API
/* Test API (unit tests build with CLARITY_TEST_API; see CMakeLists.txt). */
/* Entries in use, for tests and metrics. */
size_t limiter_size(struct limiter *l);
#endif

#endif
