/*
 * registry.c — users and rooms of the chat. See registry.h.
 *
 * Two chained hash tables (FNV-1a) under one mutex. A user entry exists
 * while the user holds a slot; a room entry lives as long as the registry
 * (a room name stays its first user's).
 */
#include "chat/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"

#define BUCKETS 1024u

struct user {
    char id[CHAT_USER_ID_MAX];
    int nconn;
    double tokens;     /* message budget (token bucket) */
    int64_t refill_ms; /* when tokens were last refilled */
    struct user *next;
};

struct room {
    char id[CHAT_ROOM_ID_MAX];
    char owner[CHAT_USER_ID_MAX];
    struct room *next;
};

struct chat_registry {
    pthread_mutex_t mu;
    int max_conns;
    double per_minute;
    struct user *users[BUCKETS];
    struct room *rooms[BUCKETS];
};

static unsigned bucket_of(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % BUCKETS;
}

/* Caller holds mu. */
static struct user *user_find(struct chat_registry *r, const char *id)
{
    for (struct user *u = r->users[bucket_of(id)]; u != NULL; u = u->next)
        if (strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

struct chat_registry *chat_registry_new(int max_conns, double per_minute)
{
    struct chat_registry *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->mu, NULL);
    r->max_conns = max_conns;
    r->per_minute = per_minute;
    return r;
}

void chat_registry_free(struct chat_registry *r)
{
    if (r == NULL)
        return;
    for (unsigned b = 0; b < BUCKETS; b++) {
        for (struct user *u = r->users[b]; u != NULL;) {
            struct user *next = u->next;
            free(u);
            u = next;
        }
        for (struct room *m = r->rooms[b]; m != NULL;) {
            struct room *next = m->next;
            free(m);
            m = next;
        }
    }
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int chat_registry_room_claim(struct chat_registry *r, const char *room_id, const char *user_id)
{
    if (strcmp(room_id, user_id) == 0)
        return 0;
    int rc = 0;
    unsigned b = bucket_of(room_id);
    pthread_mutex_lock(&r->mu);
    struct room *m = r->rooms[b];
    for (; m != NULL; m = m->next)
        if (strcmp(m->id, room_id) == 0)
            break;
    if (m != NULL) {
        rc = strcmp(m->owner, user_id) == 0 ? 0 : -1;
    } else if (strlen(room_id) < sizeof(m->id) && strlen(user_id) < sizeof(m->owner) &&
               (m = calloc(1, sizeof(*m))) != NULL) {
        snprintf(m->id, sizeof(m->id), "%s", room_id);
        snprintf(m->owner, sizeof(m->owner), "%s", user_id);
        m->next = r->rooms[b];
        r->rooms[b] = m;
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int chat_registry_conn_acquire(struct chat_registry *r, const char *user_id, int *held)
{
    int rc = -1, n = 0;
    if (strlen(user_id) >= CHAT_USER_ID_MAX)
        return -1;
    pthread_mutex_lock(&r->mu);
    struct user *u = user_find(r, user_id);
    if (u == NULL && (u = calloc(1, sizeof(*u))) != NULL) {
        unsigned b = bucket_of(user_id);
        snprintf(u->id, sizeof(u->id), "%s", user_id);
        u->tokens = r->per_minute;
        u->refill_ms = time_now_ms();
        u->next = r->users[b];
        r->users[b] = u;
    }
    if (u != NULL) {
        if (u->nconn < r->max_conns) {
            u->nconn++;
            rc = 0;
        }
        n = u->nconn;
    }
    pthread_mutex_unlock(&r->mu);
    if (rc != 0 && n == 0)
        chat_registry_conn_release(r, user_id); /* drop an entry made for nothing */
    if (held != NULL)
        *held = n;
    return rc;
}

void chat_registry_conn_release(struct chat_registry *r, const char *user_id)
{
    pthread_mutex_lock(&r->mu);
    struct user **pp = &r->users[bucket_of(user_id)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        struct user *u = *pp;
        if (strcmp(u->id, user_id) != 0)
            continue;
        if (u->nconn > 0)
            u->nconn--;
        if (u->nconn == 0) {
            *pp = u->next;
            free(u);
        }
        break;
    }
    pthread_mutex_unlock(&r->mu);
}

int chat_registry_connected(struct chat_registry *r, const char *user_id)
{
    pthread_mutex_lock(&r->mu);
    struct user *u = user_find(r, user_id);
    int yes = u != NULL && u->nconn > 0;
    pthread_mutex_unlock(&r->mu);
    return yes;
}

int chat_registry_rate_take(struct chat_registry *r, const char *user_id, int64_t now_ms)
{
    int rc = -1;
    pthread_mutex_lock(&r->mu);
    struct user *u = user_find(r, user_id);
    if (u != NULL) {
        /* Token bucket: per_minute tokens, refilled continuously. */
        if (now_ms > u->refill_ms)
            u->tokens += (double)(now_ms - u->refill_ms) * r->per_minute / 60000.0;
        if (u->tokens > r->per_minute)
            u->tokens = r->per_minute;
        if (now_ms > u->refill_ms)
            u->refill_ms = now_ms;
        if (u->tokens >= 1.0) {
            u->tokens -= 1.0;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

size_t chat_registry_users(struct chat_registry *r, char (*ids)[CHAT_USER_ID_MAX], size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (unsigned b = 0; b < BUCKETS && n < cap; b++)
        for (struct user *u = r->users[b]; u != NULL && n < cap; u = u->next)
            if (u->nconn > 0)
                memcpy(ids[n++], u->id, sizeof(u->id));
    pthread_mutex_unlock(&r->mu);
    return n;
}
