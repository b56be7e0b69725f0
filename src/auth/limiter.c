/*
 * limiter.c — sharded fixed-size table of token buckets / failure counters.
 * Token bucket: capacity `count`, refilled continuously at count/period per
 * second (the classic algorithm, e.g. RFC 2697's token bucket metering).
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "auth/limiter.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 16
#define PROBES 8

struct entry {
    uint64_t key; /* 0 = empty */
    int64_t last_ms;
    int64_t units;    /* bucket: 1 token = period_ms units; -1 = new */
    int32_t failures; /* lockout */
    int64_t window_start_ms;
    int64_t locked_until_ms;
};

struct shard {
    pthread_mutex_t mu;
    struct entry *slots;
    size_t n;
    size_t used;
};

struct limiter {
    unsigned char secret[crypto_shorthash_KEYBYTES];
    struct shard shards[SHARDS];
};

struct limiter *limiter_new(size_t capacity)
{
    if (sodium_init() < 0)
        return NULL;
    struct limiter *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    randombytes_buf(l->secret, sizeof(l->secret));
    size_t per = (capacity + SHARDS - 1) / SHARDS;
    if (per < PROBES)
        per = PROBES;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&l->shards[i].mu, NULL);
        l->shards[i].slots = calloc(per, sizeof(struct entry));
        l->shards[i].n = per;
        if (l->shards[i].slots == NULL) {
            limiter_free(l);
            return NULL;
        }
    }
    return l;
}

void limiter_free(struct limiter *l)
{
    if (l == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        free(l->shards[i].slots);
        pthread_mutex_destroy(&l->shards[i].mu);
    }
    sodium_memzero(l->secret, sizeof(l->secret));
    free(l);
}

static uint64_t hash(const struct limiter *l, const char *key)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)key, strlen(key), l->secret);
    uint64_t h;
    memcpy(&h, out, sizeof(h));
    return h != 0 ? h : 1;
}

/* Find or claim key's entry in its shard (locked by the caller). A claimed
 * entry is zeroed with units = -1 to mark "new". */
static struct entry *slot(struct shard *s, uint64_t h, int create)
{
    size_t start = (size_t)(h >> 8) % s->n;
    struct entry *victim = NULL;
    for (size_t i = 0; i < PROBES; i++) {
        struct entry *e = &s->slots[(start + i) % s->n];
        if (e->key == h)
            return e;
        if (e->key == 0) {
            if (victim == NULL || victim->key != 0)
                victim = e;
        } else if (victim == NULL || (victim->key != 0 && e->last_ms < victim->last_ms)) {
            victim = e;
        }
    }
    if (!create)
        return NULL;
    if (victim->key == 0)
        s->used++;
    memset(victim, 0, sizeof(*victim));
    victim->key = h;
    victim->units = -1;
    return victim;
}

void limiter_take(struct limiter *l, const char *key, const struct rate_rule *rule, int64_t now_ms,
                  struct rate_result *out)
{
    /* Exact integer arithmetic: one token is period_ms units and the bucket
     * gains `count` units per millisecond, i.e. count tokens per period. */
    int64_t count = rule->count > 0 ? rule->count : 1;
    int64_t per = (int64_t)(rule->period_s > 0 ? rule->period_s : 1) * 1000;
    int64_t cap = count * per;
    uint64_t h = hash(l, key);
    struct shard *s = &l->shards[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct entry *e = slot(s, h, 1);
    if (e->units < 0) {
        e->units = cap;
    } else if (now_ms > e->last_ms) {
        int64_t gained = (now_ms - e->last_ms) * count;
        e->units = gained >= cap - e->units ? cap : e->units + gained;
    }
    e->last_ms = now_ms;
    out->limit = (int)count;
    if (e->units >= per) {
        e->units -= per;
        out->allowed = 1;
        out->retry_after_s = 0;
    } else {
        out->allowed = 0;
        int64_t ms = (per - e->units + count - 1) / count;
        out->retry_after_s = (int)((ms + 999) / 1000);
    }
    out->remaining = (int)(e->units / per);
    int64_t full_ms = (cap - e->units + count - 1) / count;
    out->reset_s = (int)((full_ms + 999) / 1000);
    pthread_mutex_unlock(&s->mu);
}

int limiter_fail(struct limiter *l, const char *key, int threshold, int window_s, int lock_s, int64_t now_ms)
{
    uint64_t h = hash(l, key);
    struct shard *s = &l->shards[h % SHARDS];
    int locked = 0;
    pthread_mutex_lock(&s->mu);
    struct entry *e = slot(s, h, 1);
    e->units = 0;
    if (e->locked_until_ms > now_ms) {
        locked = (int)((e->locked_until_ms - now_ms + 999) / 1000);
    } else {
        if (e->failures == 0 || now_ms - e->window_start_ms > (int64_t)window_s * 1000) {
            e->failures = 0;
            e->window_start_ms = now_ms;
        }
        if (++e->failures >= threshold) {
            e->locked_until_ms = now_ms + (int64_t)lock_s * 1000;
            e->failures = 0;
            locked = lock_s;
        }
    }
    e->last_ms = now_ms;
    pthread_mutex_unlock(&s->mu);
    return locked;
}

int limiter_locked(struct limiter *l, const char *key, int64_t now_ms)
{
    uint64_t h = hash(l, key);
    struct shard *s = &l->shards[h % SHARDS];
    int locked = 0;
    pthread_mutex_lock(&s->mu);
    struct entry *e = slot(s, h, 0);
    if (e != NULL && e->locked_until_ms > now_ms)
        locked = (int)((e->locked_until_ms - now_ms + 999) / 1000);
    pthread_mutex_unlock(&s->mu);
    return locked;
}

void limiter_clear(struct limiter *l, const char *key)
{
    uint64_t h = hash(l, key);
    struct shard *s = &l->shards[h % SHARDS];
    pthread_mutex_lock(&s->mu);
    struct entry *e = slot(s, h, 0);
    if (e != NULL) {
        memset(e, 0, sizeof(*e));
        s->used--;
    }
    pthread_mutex_unlock(&s->mu);
}

size_t limiter_size(struct limiter *l)
{
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&l->shards[i].mu);
        n += l->shards[i].used;
        pthread_mutex_unlock(&l->shards[i].mu);
    }
    return n;
}
