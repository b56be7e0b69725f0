/*
 * push.c — insights to connected users. See push.h.
 */
#include "chat/push.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/protocol.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "store/queue.h"
#include "store/store.h"

#define PUSH_WAIT_MS 500
#define PUSH_CATCHUP_USERS 4096

struct chat_push {
    struct store *store;
    struct chat_push_ops ops;
    void *ctx;
    pthread_t thread;
    _Atomic int stop;
    _Atomic long events;
};

/* Read the insight and hand its message over. */
static void push_one(struct chat_push *p, const char *user_id, const char *insight_id)
{
    struct store_tx *tx = NULL;
    struct store_insight in;
    memset(&in, 0, sizeof(in));
    char *text = NULL;
    if (store_tx_begin(p->store, STORE_TX_READ, &tx) == 0) {
        if (store_insight_get(tx, insight_id, user_id, &in) == 0) {
            text = chat_render_insight(&in);
            store_insight_clear(&in);
        }
        store_tx_rollback(tx);
    }
    if (text != NULL)
        p->ops.deliver(p->ctx, user_id, text);
}

/* The insights created at or after since_ms of every connected user,
 * oldest first (events of a lost subscription). */
static void catch_up(struct chat_push *p, int64_t since_ms)
{
    char(*ids)[CHAT_USER_ID_MAX] = malloc(PUSH_CATCHUP_USERS * sizeof(*ids));
    if (ids == NULL)
        return;
    size_t n = p->ops.users(p->ctx, ids, PUSH_CATCHUP_USERS);
    for (size_t i = 0; i < n && !atomic_load(&p->stop); i++) {
        struct store_tx *tx = NULL;
        struct store_insight *list = NULL;
        size_t got = 0;
        struct store_cursor next;
        if (store_tx_begin(p->store, STORE_TX_READ, &tx) != 0)
            break;
        int rc = store_insight_list(tx, ids[i], NULL, NULL, CHAT_PUSH_CATCHUP, &list, &got, &next);
        store_tx_rollback(tx);
        if (rc != 0)
            continue;
        for (size_t k = got; k-- > 0;) /* newest first in the list */
            if (list[k].created_at_ms >= since_ms) {
                char *text = chat_render_insight(&list[k]);
                if (text != NULL)
                    p->ops.deliver(p->ctx, ids[i], text);
            }
        store_insight_list_free(list, got);
    }
    free(ids);
}

static void *push_main(void *arg)
{
    struct chat_push *p = arg;
    struct store_events *ev = NULL;
    int64_t healthy_ms = time_now_ms(); /* events known complete up to here */
    int lost = 0;
    while (!atomic_load(&p->stop)) {
        if (ev == NULL) {
            if (store_insight_events_open(p->store, &ev) != 0) {
                ev = NULL;
                if (!lost)
                    log_warning("chat insight events unavailable; retrying", LOG_END);
                lost = 1;
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
                continue;
            }
            if (lost) {
                log_info("chat insight events resumed", LOG_END);
                catch_up(p, healthy_ms);
                lost = 0;
            }
        }
        struct store_insight_event e;
        int rc = store_insight_events_next(ev, PUSH_WAIT_MS, &e);
        if (rc == 1) {
            atomic_fetch_add(&p->events, 1);
            if (p->ops.wanted(p->ctx, e.user_id))
                push_one(p, e.user_id, e.insight_id);
        } else if (rc == STORE_EVENTS_RESYNC) {
            log_info("chat insight events resumed", LOG_END);
            catch_up(p, healthy_ms);
            lost = 0;
        } else if (rc < 0) {
            if (!lost)
                log_warning("chat insight events lost; reconnecting", LOG_END);
            lost = 1;
            struct timespec ts = {0, 500 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (!lost)
            healthy_ms = time_now_ms() - 1000; /* margin: commit stamps come before delivery */
    }
    store_insight_events_close(ev);
    return NULL;
}

struct chat_push *chat_push_new(struct store *store, const struct chat_push_ops *ops, void *ctx)
{
    struct chat_push *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->store = store;
    p->ops = *ops;
    p->ctx = ctx;
    if (pthread_create(&p->thread, NULL, push_main, p) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

long chat_push_events(struct chat_push *p) { return atomic_load(&p->events); }

void chat_push_free(struct chat_push *p)
{
    if (p == NULL)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->thread, NULL);
    free(p);
}
