/*
 * protocol.c — parsing and rendering chat messages. See protocol.h and
 * docs/api.md ("Chat").
 */
#include "chat/protocol.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/json_load.h"
#include "core/timeutil.h"
#include "pipeline/insight_builtin.h"
#include "store/store.h"

/* Compact ASCII JSON of o (stolen). */
static char *dump(json_t *o)
{
    if (o == NULL)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

static json_t *now_json(void)
{
    char ts[40];
    time_format_rfc3339_s(time_now_ms(), ts, sizeof(ts)); /* whole seconds (docs/api.md) */
    return json_string(ts);
}

static int refuse(const char **code, const char **message, const char *c, const char *m)
{
    *code = c;
    *message = m;
    return -1;
}

int chat_protocol_parse(const uint8_t *data, size_t len, struct chat_in *in, const char **code, const char **message)
{
    memset(in, 0, sizeof(*in));
    json_error_t jerr;
    int jrc = json_load_checked((const char *)data, len, JSON_REJECT_DUPLICATES, &in->root, &jerr);
    const char *type = json_string_value(json_object_get(in->root, "type"));
    in->rated = type == NULL || strcmp(type, "heartbeat") != 0;
    if (jrc == JSON_ENOMEM) /* the server's failure, not the client's message (#16) */
        return refuse(code, message, CHAT_ERR_INTERNAL, "The server is busy; please send the message again.");
    if (in->root == NULL)
        return refuse(code, message, CHAT_ERR_INVALID_JSON, "The message is not valid JSON (UTF-8).");
    if (!json_is_object(in->root))
        return refuse(code, message, CHAT_ERR_INVALID_JSON, "The message must be a JSON object.");
    if (type == NULL)
        return refuse(code, message, CHAT_ERR_UNKNOWN_TYPE, "The message needs a string \"type\".");
    if (strcmp(type, "message") == 0) {
        in->text = json_string_value(json_object_get(in->root, "content"));
        if (in->text == NULL || in->text[0] == '\0')
            return refuse(code, message, CHAT_ERR_INVALID_JSON, "A message needs a non-empty string \"content\".");
        in->type = CHAT_IN_MESSAGE;
    } else if (strcmp(type, "typing") == 0) {
        json_t *t = json_object_get(in->root, "is_typing");
        in->is_typing = t == NULL ? 1 : json_is_true(t);
        in->type = CHAT_IN_TYPING;
    } else if (strcmp(type, "heartbeat") == 0) {
        in->client_timestamp = json_object_get(in->root, "client_timestamp");
        in->type = CHAT_IN_HEARTBEAT;
    } else if (strcmp(type, "health_insight") == 0) {
        in->content = json_object_get(in->root, "content");
        in->type = CHAT_IN_HEALTH_INSIGHT;
    } else {
        return refuse(code, message, CHAT_ERR_UNKNOWN_TYPE, "Known types: message, typing, heartbeat, health_insight.");
    }
    return 0;
}

void chat_in_clear(struct chat_in *in)
{
    if (in == NULL)
        return;
    json_decref(in->root);
    memset(in, 0, sizeof(*in));
}

char *chat_render_ack(const char *connection_id, const char *user_id, const char *room_id, const struct chat_limits *l)
{
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:o, s:{s:I, s:i, s:i, s:i, s:i, s:I}}", "type", "connection_ack",
                          "connection_id", connection_id, "user_id", user_id, "room_id", room_id, "server_time",
                          now_json(), "limits", "max_message_bytes", (json_int_t)l->max_message_bytes,
                          "messages_per_minute", l->messages_per_minute, "max_connections", l->max_connections,
                          "heartbeat_seconds", l->heartbeat_seconds, "idle_timeout_seconds", l->idle_timeout_seconds,
                          "max_data_points", (json_int_t)l->max_data_points));
}

char *chat_render_error(const char *code, const char *message)
{
    return dump(
        json_pack("{s:s, s:s, s:s, s:o}", "type", "error", "code", code, "message", message, "timestamp", now_json()));
}

char *chat_render_system(const char *message)
{
    return dump(json_pack("{s:s, s:s, s:o}", "type", "system", "message", message, "timestamp", now_json()));
}

char *chat_render_user_message(const char *message_id, const char *user_id, const char *room_id, const char *content)
{
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type", "message", "message_id", message_id, "role",
                          "user", "user_id", user_id, "room_id", room_id, "content", content, "timestamp", now_json()));
}

char *chat_render_answer(const char *message_id, const char *user_id, const char *room_id, const char *content,
                         const char *intent, const char *generator, const char *in_reply_to)
{
    return dump(json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "type", "message", "message_id",
                          message_id, "role", "assistant", "user_id", user_id, "room_id", room_id, "content", content,
                          "intent", intent, "generator", generator, "in_reply_to", in_reply_to, "timestamp",
                          now_json()));
}

char *chat_render_typing(const char *user_id, const char *room_id, int is_typing)
{
    return dump(json_pack("{s:s, s:s, s:s, s:b, s:o}", "type", "typing", "user_id", user_id, "room_id", room_id,
                          "is_typing", is_typing, "timestamp", now_json()));
}

char *chat_render_heartbeat_ack(const json_t *client_timestamp)
{
    json_t *o = json_pack("{s:s, s:o}", "type", "heartbeat_ack", "timestamp", now_json());
    if (o != NULL && client_timestamp != NULL)
        json_object_set_new(o, "client_timestamp", json_deep_copy(client_timestamp));
    return dump(o);
}

char *chat_render_insight(const struct store_insight *in)
{
    json_t *body = in->body != NULL ? json_parse_str(in->body, 0, NULL) : NULL;
    char ts[40];
    time_format_rfc3339_s(in->created_at_ms, ts, sizeof(ts));
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:s}", "type", "insight", "source", "pipeline",
                          "insight_id", in->id, "user_id", in->user_id, "narrative",
                          in->narrative != NULL ? in->narrative : "", "generator", in->generator, "confidence_score",
                          in->confidence, "generated_at", ts, "insight_type", in->insight_type);
    if (o != NULL) {
        json_object_set_new(o, "analysis_id", in->analysis_id[0] ? json_string(in->analysis_id) : json_null());
        json_t *ki = json_object_get(body, "key_insights"), *rec = json_object_get(body, "recommendations");
        (void)insight_figures_describe(ki); /* label and unit; out of memory leaves them out */
        json_object_set_new(o, "key_insights", ki != NULL ? json_incref(ki) : json_array());
        json_object_set_new(o, "recommendations", rec != NULL ? json_incref(rec) : json_array());
        json_object_set_new(o, "timestamp", now_json());
    }
    json_decref(body);
    return dump(o);
}

char *chat_render_health_insight(json_t *analysis, const char *user_id)
{
    if (analysis == NULL)
        return NULL;
    json_object_set_new(analysis, "type", json_string("insight"));
    json_object_set_new(analysis, "source", json_string("health_insight"));
    json_object_set_new(analysis, "user_id", json_string(user_id));
    json_object_set_new(analysis, "timestamp", now_json());
    return dump(analysis);
}
