/*
 * input.c — JSON body validation helpers. See input.h.
 */
#include "api/input.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "api/api.h"
#include "core/err.h"
#include "core/json_load.h"

static json_t *body_object(struct http_request *req, struct http_response *res, struct json_arena **arena);

json_t *input_body_object(struct http_request *req, struct http_response *res) { return body_object(req, res, NULL); }

json_t *input_body_object_arena(struct http_request *req, struct http_response *res, struct json_arena **arena)
{
    return body_object(req, res, arena);
}

static json_t *body_object(struct http_request *req, struct http_response *res, struct json_arena **arena)
{
    const char *ct = http_request_header(req, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] != '\0' && ct[16] != ';')) {
        http_respond_problem(res, 415, "unsupported-media-type", "The body must be application/json.");
        return NULL;
    }
    json_error_t je;
    json_t *j = NULL;
    int rc = arena != NULL ? json_load_arena(req->body, req->body_len, JSON_REJECT_DUPLICATES, &j, &je, arena)
                           : json_load_checked(req->body, req->body_len, JSON_REJECT_DUPLICATES, &j, &je);
    if (rc == JSON_ENOMEM) {
        api_store_failure(res, rc); /* the server's failure: 503, not 400 (#16) */
        return NULL;
    }
    if (j == NULL) {
        http_respond_problem(res, 400, "bad-request", "The body is not valid JSON (line %d, column %d): %s.", je.line,
                             je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        if (arena != NULL) {
            json_arena_release(j, *arena);
            *arena = NULL;
        } else {
            json_decref(j);
        }
        http_respond_problem(res, 400, "bad-request", "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

/* check.h's sink: the first error opens the 422 problem on the response. */
static void record(void *ctx, const char *pointer, const char *message)
{
    struct input *in = ctx;
    if (in->p == NULL)
        in->p = http_respond_problem(in->res, 422, "validation-error", "The request is invalid.");
    problem_add_error(in->p, pointer, "%s", message);
}

void input_init(struct input *in, struct http_response *res)
{
    in->res = res;
    in->p = NULL;
    check_init(&in->c, record, in);
}

void input_error(struct input *in, const char *pointer, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    check_error(&in->c, pointer, "%s", msg);
}

void input_only(struct input *in, json_t *obj, const char *prefix, const char *const *allowed)
{
    check_only(&in->c, obj, prefix, allowed);
}

const char *input_string(struct input *in, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                         size_t max)
{
    return check_string(&in->c, obj, prefix, name, required, min, max);
}

const char *input_bytes(struct input *in, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                        size_t max)
{
    return check_bytes(&in->c, obj, prefix, name, required, min, max);
}

int input_bool(struct input *in, json_t *obj, const char *prefix, const char *name, int required, int def)
{
    return check_bool(&in->c, obj, prefix, name, required, def);
}

int input_email_valid(const char *s)
{
    size_t n = strlen(s);
    const char *at = strchr(s, '@');
    if (n > 254 || at == NULL || at == s || strchr(at + 1, '@') != NULL || (size_t)(at - s) > 64)
        return 0;
    const char *domain = at + 1;
    const char *dot = strrchr(domain, '.');
    if (dot == NULL || dot == domain || dot[1] == '\0' || strstr(domain, "..") != NULL)
        return 0;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == '"' || *c == ',' || *c == ';')
            return 0;
    return 1;
}

int input_done(struct input *in)
{
    if (in->c.nerrors == 0)
        return 0;
    free(in->p->detail);
    in->p->detail = NULL;
    char detail[96];
    snprintf(detail, sizeof(detail), "%d field%s invalid.", in->c.nerrors, in->c.nerrors == 1 ? " is" : "s are");
    in->p->detail = strdup(detail);
    return -1;
}
