/*
 * chat.c — GET /api/v1/chat/{room_id}?token=… (API.md "Chat"): the WebSocket
 * opening handshake (RFC 6455 §4.2). The protocol itself runs in
 * chat/hub.c once the connection is upgraded.
 *
 * Order of refusals, all as RFC 7807 problems BEFORE any upgrade: the guard
 * answers a missing or bad token with 401 (the token may come as ?token=,
 * since browsers cannot set headers on a WebSocket) and too many handshakes
 * with 429; then a request that is not a valid WebSocket handshake gets 400
 * (426 with Sec-WebSocket-Version: 13 for another protocol version, §4.2.2);
 * someone else's room 403; a server that is draining, or that holds
 * CHAT_MAX_CONNECTIONS sockets already, 503.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api.h"
#include "api/guard.h"
#include "chat/hub.h"
#include "core/uuid.h"
#include "store/store.h"

/* RFC 6455 §1.3: the GUID appended to the client's key. */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* 1 when the comma-separated header value holds token (case-insensitive),
 * as in "keep-alive, Upgrade" (RFC 7230 §7). */
static int header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end != '\0' && *end != ',')
            end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p = end;
    }
    return 0;
}

/* §4.2.1 item 5: the key is base64 of 16 bytes, i.e. 22 characters and "==". */
static int key_valid(const char *key)
{
    if (key == NULL || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (int i = 0; i < 22; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return 0;
    }
    return 1;
}

/* Rooms are named by ids: 1–64 of [A-Za-z0-9_-]. */
static int room_valid(const char *room)
{
    size_t n = room != NULL ? strlen(room) : 0;
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = room[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* 1 when room names a user other than the caller (a user's own room). */
static int room_is_other_user(struct api_ctx *ctx, const char *room, const char *user_id)
{
    if (strcmp(room, user_id) == 0 || !uuid_is_valid(room) || ctx->store == NULL)
        return 0;
    struct store_tx *tx = NULL;
    struct store_user u;
    int found = 0;
    if (store_tx_begin(ctx->store, STORE_TX_READ, &tx) == 0) {
        found = store_user_get(tx, room, &u) == 0;
        store_tx_rollback(tx);
    }
    return found;
}

static void h_chat(struct http_request *req, struct http_response *res)
{
    struct api_ctx *ctx = req->route_ctx;
    const struct principal *p = access_principal(req);
    const char *room = http_request_param(req, "room_id");
    const char *upgrade = http_request_header(req, "Upgrade");
    const char *connection = http_request_header(req, "Connection");
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    const char *version = http_request_header(req, "Sec-WebSocket-Version");

    if (req->method != HTTP_GET || upgrade == NULL || !header_has_token(upgrade, "websocket") || connection == NULL ||
        !header_has_token(connection, "upgrade")) {
        http_respond_problem(res, 400, "bad-request",
                             "This is a WebSocket endpoint: send GET with Upgrade: websocket and Connection: Upgrade.");
        return;
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        http_respond_problem(res, 426, "bad-request", "Only WebSocket version 13 (RFC 6455) is supported.");
        http_response_header(res, "Sec-WebSocket-Version", "13");
        return;
    }
    if (!key_valid(key)) {
        http_respond_problem(res, 400, "bad-request", "Sec-WebSocket-Key must be base64 of 16 bytes.");
        return;
    }
    if (!room_valid(room)) {
        struct problem *pr = http_respond_problem(res, 422, "validation-error", "The room id is not valid.");
        problem_add_error(pr, "/room_id", "must be 1 to 64 letters, digits, '-' or '_'");
        return;
    }
    if (ctx->chat == NULL || !chat_hub_open(ctx->chat)) {
        http_respond_problem(res, 503, "service-unavailable", "Chat is not available right now; retry shortly.");
        return;
    }
    if (chat_hub_connections(ctx->chat) >= (long)ctx->cfg->chat_max_connections) {
        http_respond_problem(res, 503, "service-unavailable",
                             "This server holds as many chat connections as it may; retry shortly.");
        http_response_header(res, "Retry-After", "5");
        return;
    }
    if (room_is_other_user(ctx, room, p->user_id) || chat_hub_room_claim(ctx->chat, room, p->user_id) != 0) {
        http_respond_problem(res, 403, "authorization-denied", "This chat room belongs to another user.");
        return;
    }

    /* §4.2.2 item 5.4: Sec-WebSocket-Accept = base64(SHA-1(key + GUID)). */
    char joined[24 + sizeof(WS_GUID)];
    unsigned char digest[SHA_DIGEST_LENGTH];
    unsigned char accept[32];
    snprintf(joined, sizeof(joined), "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)joined, strlen(joined), digest);
    EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);

    struct chat_pending *pend = calloc(1, sizeof(*pend));
    if (pend == NULL) {
        http_respond_problem(res, 503, "service-unavailable", "Out of memory; retry later.");
        return;
    }
    pend->hub = ctx->chat;
    snprintf(pend->user_id, sizeof(pend->user_id), "%s", p->user_id);
    snprintf(pend->room_id, sizeof(pend->room_id), "%s", room);
    snprintf(pend->request_id, sizeof(pend->request_id), "%s", req->request_id);
    http_respond_upgrade(res, chat_hub_conn_adopt, pend, free);
    http_response_header(res, "Upgrade", "websocket");
    http_response_header(res, "Connection", "Upgrade");
    http_response_header(res, "Sec-WebSocket-Accept", (const char *)accept);
}

int api_chat_register(struct router *r, struct api_ctx *ctx)
{
    return router_add(r, HTTP_GET, "/api/v1/chat/{room_id}", h_chat, ctx,
                      GUARD_AUTH | GUARD_QUERY_TOKEN | GUARD_RATE(GUARD_RATE_CHAT));
}
