/*
 * hub.h — the chat service behind GET /api/v1/chat/{room_id}: the glue
 * between the parts that do the work.
 *
 *   http/ws.h        the WebSocket loop: sockets, framing, pings, send caps
 *                    (knows nothing of chat)
 *   chat/protocol.h  the messages: parse what clients send, render replies
 *   chat/registry.h  who is connected: per-user slots and message budget,
 *                    room owners
 *   chat/pool.h      the answer threads (store reads, analyses, the LLM)
 *   chat/push.h      insights stored by the pipeline, from the store's
 *                    "insight created" events, to the user's sockets
 *   chat/answer.h    what the chat says
 *
 * The HTTP layer authenticates the caller and completes the opening
 * handshake (api/chat.c); chat_hub_conn_adopt hands the raw socket to the
 * loop. The hub's callbacks run on the loop thread; the pool and the push
 * hand their results back with ws_loop_post.
 *
 * Locks: the loop's inbox, the registry's tables, the pool's queue — each
 * held only for a list operation, never two at once.
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

/* Start the loop, the answer threads and (with a store) the insight push.
 * Returns the hub, or NULL with a message in err. */
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
