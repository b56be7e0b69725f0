/*
 * input.h — reading JSON request bodies into validated values.
 *
 * Every check records a field error (JSON Pointer + message) on the problem
 * instead of stopping, so a client learns every mistake at once; the handler
 * answers 422 when any was recorded. Unknown members are ignored; a body
 * with no known member at all is an error.
 */
#ifndef CLARITY_API_INPUT_H
#define CLARITY_API_INPUT_H

#include <jansson.h>

#include "core/check.h"
#include "http/http.h"

/*
 * Parse the body as a JSON object. Answers 415 for a non-JSON content type
 * and 400 for malformed JSON or a non-object, and returns NULL; otherwise a
 * new reference (caller decrefs).
 */
json_t *input_body_object(struct http_request *req, struct http_response *res);
/* The same, parsed into a json_arena (core/json_load.h) for the bulk
 * uploads: release the body with json_arena_release(body, *arena), on the
 * same thread, before the handler returns. */
struct json_arena;
json_t *input_body_object_arena(struct http_request *req, struct http_response *res, struct json_arena **arena);

/* The validation problem under construction (422), created on the first
 * error. c is the check a parser below the interface layer takes
 * (core/check.h); c.nerrors counts the errors. */
struct input {
    struct check c;
    struct http_response *res;
    struct problem *p;
};

void input_init(struct input *in, struct http_response *res);
void input_error(struct input *in, const char *pointer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Members of obj not named in `allowed` (NULL-terminated) are ignored; at
 * the top level (prefix "" or NULL) an object with none of them (empty, or
 * only unknown members) records an error at "". */
void input_only(struct input *in, json_t *obj, const char *prefix, const char *const *allowed);

/*
 * A string member of UTF-8 length in [min, max] characters. Returns the
 * borrowed value, or NULL (absent and optional, or an error was recorded).
 */
const char *input_string(struct input *in, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                         size_t max);
/*
 * A string member of [min, max] BYTES of UTF-8: for text stored in a
 * column of fixed size (source, device, upload_source, sync_token…), so
 * that what is accepted always fits and is never cut (a cut could split a
 * character: SQLite then kept bytes no JSON reply could carry, PostgreSQL
 * refused them; #16.8). Free text (names, context) is limited in
 * characters by input_string. Returns as input_string does.
 */
const char *input_bytes(struct input *in, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                        size_t max);
/* A boolean member; returns 0/1, or `def` when absent and optional. */
int input_bool(struct input *in, json_t *obj, const char *prefix, const char *name, int required, int def);

/* 1 when s looks like an email address (one '@', a dotted domain, ≤ 254). */
int input_email_valid(const char *s);

/* Finish: when errors were recorded, complete the 422 problem and return -1. */
int input_done(struct input *in);

#endif
