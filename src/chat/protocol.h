/*
 * protocol.h — the chat's messages on the wire (docs/api.md, "Chat"): what a
 * client may send, parsed into a struct, and every message the server
 * sends, rendered as compact JSON text. No I/O, no state: the WebSocket loop
 * (http/ws.h) carries the text, the hub (chat/hub.c) decides.
 *
 * Threads: reentrant.
 */
#ifndef CLARITY_CHAT_PROTOCOL_H
#define CLARITY_CHAT_PROTOCOL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct store_insight;

enum chat_in_type {
    CHAT_IN_INVALID = 0, /* see code/message of the parse */
    CHAT_IN_MESSAGE,
    CHAT_IN_TYPING,
    CHAT_IN_HEARTBEAT,
    CHAT_IN_HEALTH_INSIGHT,
};

/* A parsed client message. Pointers borrow from root. */
struct chat_in {
    enum chat_in_type type;
    json_t *root;             /* the whole message (owned; chat_in_clear) */
    const char *text;         /* MESSAGE: the non-empty content */
    int is_typing;            /* TYPING: default 1 */
    json_t *client_timestamp; /* HEARTBEAT: echoed when present (borrowed) */
    json_t *content;          /* HEALTH_INSIGHT: content as sent (borrowed; may be NULL) */
    int rated;                /* counts against the message budget (all but heartbeats) */
};

/* Error codes of `error` messages. */
#define CHAT_ERR_MESSAGE_TOO_LARGE "MESSAGE_TOO_LARGE"
#define CHAT_ERR_RATE_LIMIT "RATE_LIMIT_EXCEEDED"
#define CHAT_ERR_TOO_MANY_POINTS "TOO_MANY_DATA_POINTS"
#define CHAT_ERR_INVALID_JSON "INVALID_JSON"
#define CHAT_ERR_UNKNOWN_TYPE "UNKNOWN_MESSAGE_TYPE"
#define CHAT_ERR_INTERNAL "INTERNAL_ERROR"

/*
 * Parse one client message of len bytes. Always fills *in (clear it with
 * chat_in_clear). Returns 0 for a known, well-formed message, or -1 with
 * *code (CHAT_ERR_*) and *message (a client-safe sentence, static) set;
 * in->rated is meaningful either way (a message that is not JSON counts,
 * a heartbeat does not).
 */
int chat_protocol_parse(const uint8_t *data, size_t len, struct chat_in *in, const char **code, const char **message);

void chat_in_clear(struct chat_in *in);

/* The limits announced in connection_ack. */
struct chat_limits {
    size_t max_message_bytes;
    int messages_per_minute;
    int max_connections;
    int heartbeat_seconds;
    int idle_timeout_seconds;
    size_t max_data_points;
};

/*
 * Renderers: each returns a heap string (caller frees), or NULL when out of
 * memory. Strings are copied; timestamps are the current time (RFC 3339).
 */
char *chat_render_ack(const char *connection_id, const char *user_id, const char *room_id,
                      const struct chat_limits *limits);
char *chat_render_error(const char *code, const char *message);
char *chat_render_system(const char *message);
/* The user's message as echoed to the room (role "user"). */
char *chat_render_user_message(const char *message_id, const char *user_id, const char *room_id, const char *content);
/* The assistant's answer (role "assistant"). */
char *chat_render_answer(const char *message_id, const char *user_id, const char *room_id, const char *content,
                         const char *intent, const char *generator, const char *in_reply_to);
char *chat_render_typing(const char *user_id, const char *room_id, int is_typing);
/* client_timestamp: echoed when not NULL (any JSON value, borrowed). */
char *chat_render_heartbeat_ack(const json_t *client_timestamp);
/* The `insight` pushed for a stored insight (source "pipeline"). */
char *chat_render_insight(const struct store_insight *in);
/* The `insight` answering a health_insight: analysis (stolen) completed
 * with type, source and user_id. */
char *chat_render_health_insight(json_t *analysis, const char *user_id);

#endif
