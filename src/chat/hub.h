/*
 * hub.h — the chat service behind GET /api/v1/chat/{room_id}: every upgraded
 * WebSocket (RFC 6455) of this process, on one epoll event loop thread.
 *
 * The HTTP layer authenticates the caller and completes the opening
 * handshake (api/chat.c); chat_hub_conn_adopt then takes the raw socket and
 * the loop owns it from there: framing with wslay, the chat protocol
 * (docs/api.md, "Chat"), heartbeats, the idle timeout, per-user limits and
 * the closing handshake. No thread is held by an idle socket.
 *
 * Threads: chat_hub_conn_adopt, chat_hub_room_claim, chat_hub_insight_notify
 * and chat_hub_drain may be called from any thread; they hand work to the
 * loop through a locked inbox and an eventfd. Everything else about a
 * connection is touched only by the loop thread. Answers that read the
 * store or analyse (`message`, `health_insight`) run on two answer threads
 * and come back through the inbox, so a slow database never stalls the
 * loop.
 *
 * Insight push: chat_hub_insight_notify (the pipeline's worker_notify_fn)
 * delivers an insight stored in this process. On PostgreSQL a listener
 * thread holds LISTEN clarity_insight (store_insight_listener_open): an
 * insight committed by a worker anywhere arrives as a notification and goes
 * the same way. A poller thread looks up the newest insights of the users
 * with open sockets every CHAT_INSIGHT_POLL_MS where no notification channel
 * works (SQLite with an out-of-process worker; PostgreSQL while the LISTEN
 * session is down), every CHAT_INSIGHT_SAFETY_POLL_MS while it works, and
 * once whenever the session comes back. Delivery is idempotent by insight
 * id per user.
 */
#ifndef CLARITY_CHAT_HUB_H
#define CLARITY_CHAT_HUB_H

#include <stddef.h>

#include "http/http.h"

struct config;
struct store;
struct pat_model;
struct pat_standardization;
struct llm_client;

/* Close codes (RFC 6455 §7.4.1). */
#define CHAT_CLOSE_NORMAL 1000
#define CHAT_CLOSE_GOING_AWAY 1001
#define CHAT_CLOSE_PROTOCOL_ERROR 1002
#define CHAT_CLOSE_INVALID_DATA 1007
#define CHAT_CLOSE_POLICY_VIOLATION 1008
#define CHAT_CLOSE_TOO_BIG 1009
#define CHAT_CLOSE_INTERNAL_ERROR 1011

/* The services the chat answers from; every pointer borrowed and alive
 * until chat_hub_free. pat_model NULL: PAT disabled. llm NULL: free text is
 * answered by the built-in intents only. */
struct chat_services {
    const struct config *cfg;
    struct store *store;
    const struct pat_model *pat_model;
    const struct pat_standardization *pat_std;
    struct llm_client *llm;
};

struct chat_hub;

/* Start the loop (and the insight poller when configured). Returns the hub,
 * or NULL with a message in err. */
struct chat_hub *chat_hub_new(const struct chat_services *svc, char *err, size_t errlen);

/*
 * Claim room_id for user_id (api/chat.c, before the upgrade). A room is the
 * user's own id or a room name first used by that user on this instance.
 * Returns 0 when the user may join, -1 when the room belongs to someone
 * else.
 */
int chat_hub_room_claim(struct chat_hub *h, const char *room_id, const char *user_id);

/* 1 while the hub accepts connections (0 once draining began). */
int chat_hub_open(struct chat_hub *h);

/* An upgrade in waiting: what api/chat.c knows about the connection. */
struct chat_pending {
    struct chat_hub *hub;
    char user_id[64];
    char room_id[72];
    char request_id[129];
};

/*
 * The http_upgrade_fn for a struct chat_pending (heap, freed here): adopt
 * the upgraded socket. When the user already holds the maximum number of
 * connections the socket is closed at once with 1008 (policy violation).
 */
void chat_hub_conn_adopt(void *pending, int fd, const char *extra, size_t extra_len);

/*
 * worker_notify_fn (pipeline/worker.h): an insight was stored for user_id;
 * deliver it as an `insight` message to that user's sockets here. Never
 * blocks for long (the store read happens on the poller thread).
 */
void chat_hub_insight_notify(void *hub, const char *user_id, const char *upload_id, const char *insight_id);

/*
 * Graceful shutdown: tell every client in a `system` message, close with
 * 1001 (going away), wait up to wait_ms for the closing handshakes, then
 * drop what is left. New upgrades are refused from the start. Returns the
 * number of sockets that did not close cleanly.
 */
int chat_hub_drain(struct chat_hub *h, long wait_ms);

/* Open WebSocket connections right now. */
long chat_hub_connections(struct chat_hub *h);

/* Stop the threads, close any socket left and free. Accepts NULL. Call
 * after the HTTP server is freed, so that no upgrade arrives any more. */
void chat_hub_free(struct chat_hub *h);

#endif
