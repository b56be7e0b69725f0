/*
 * push.h — the chat's insight push: every insight the pipeline stores for a
 * user with sockets on this instance reaches those sockets as an `insight`
 * message (docs/api.md, "Chat").
 *
 * One thread subscribes to the store's "insight created" events
 * (store/queue.h, store_insight_events_*: in-process wake-up plus the
 * insights table on SQLite, LISTEN/NOTIFY on PostgreSQL), so an insight
 * stored by a worker of any process or instance arrives the same way. For
 * each event of a connected user it reads the insight, renders the message
 * (chat/protocol.h) and hands it to deliver. Each event is delivered once:
 * there is no poll and no dedup list.
 *
 * Reconnect catch-up: when the subscription was lost (PostgreSQL session
 * dropped: STORE_EVENTS_RESYNC, or it could not be opened), the events of
 * the gap are gone. Once it is back, the push looks up, for every user
 * connected here, the insights created since the subscription was last
 * known healthy (at most CHAT_PUSH_CATCHUP per user) and delivers those: an
 * insight that arrived just before the loss may then come twice (clients
 * tell by insight_id).
 *
 * Threads: the callbacks run on the push thread.
 */
#ifndef CLARITY_CHAT_PUSH_H
#define CLARITY_CHAT_PUSH_H

#include <stddef.h>

#include "chat/registry.h"

struct store;

#define CHAT_PUSH_CATCHUP 5

struct chat_push_ops {
    /* 1 when user_id has sockets here (asked before the store is read). */
    int (*wanted)(void *ctx, const char *user_id);
    /* The rendered `insight` message for user_id; text is stolen (free it). */
    void (*deliver)(void *ctx, const char *user_id, char *text);
    /* For the catch-up: ids of the users connected here, at most cap;
     * returns how many. */
    size_t (*users)(void *ctx, char (*ids)[CHAT_USER_ID_MAX], size_t cap);
};

struct chat_push;

/* Subscribe and start the thread (store and ops borrowed until
 * chat_push_free). When the subscription cannot be opened now, the thread
 * retries every second. NULL when out of memory or no thread. */
struct chat_push *chat_push_new(struct store *store, const struct chat_push_ops *ops, void *ctx);

/* Events heard so far (delivered or not), for tests and metrics. */
long chat_push_events(struct chat_push *p);

/* Stop the thread, unsubscribe, free. Accepts NULL. */
void chat_push_free(struct chat_push *p);

#endif
