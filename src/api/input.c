/*
 * input.c — JSON body validation helpers. See input.h.
 */
#include "api/input.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

json_t *input_body_object(struct http_request *req, struct http_response *res)
{
    const char *ct = http_request_header(req, "Content-Type");
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] != '\0' && ct[16] != ';')) {
        http_respond_problem(res, 415, "unsupported-media-type", "The body must be application/json.");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        http_respond_problem(res, 400, "bad-request", "The body is not valid JSON (line %d, column %d): %s.",
                             je.line, je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_problem(res, 400, "bad-request", "The body must be a JSON object.");
        return NULL;
    }
    return j;
}

void input_init(struct input *in, struct http_response *res)
{
    in->res = res;
    in->p = NULL;
    in->nerrors = 0;
}

void input_error(struct input *in, const char *pointer, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (in->p == NULL)
        in->p = http_respond_problem(in->res, 422, "validation-error", "The request is invalid.");
    problem_add_error(in->p, pointer, "%s", msg);
    in->nerrors++;
}

static void pointer_of(char *out, size_t outlen, const char *prefix, const char *name)
{
    /* RFC 6901: '~' is written "~0" and '/' "~1" inside a reference token. */
    size_t o = (size_t)snprintf(out, outlen, "%s/", prefix != NULL ? prefix : "");
    for (const char *c = name; *c && o + 3 < outlen; c++) {
        if (*c == '~') {
            out[o++] = '~';
            out[o++] = '0';
        } else if (*c == '/') {
            out[o++] = '~';
            out[o++] = '1';
        } else {
            out[o++] = *c;
        }
    }
    out[o < outlen ? o : outlen - 1] = '\0';
}

void input_only(struct input *in, json_t *obj, const char *prefix, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a != NULL; a++)
            if (strcmp(*a, key) == 0)
                ok = 1;
        if (!ok) {
            char ptr[256];
            pointer_of(ptr, sizeof(ptr), prefix, key);
            input_error(in, ptr, "unknown field");
        }
    }
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

const char *input_string(struct input *in, json_t *obj, const char *prefix, const char *name, int required,
                         size_t min, size_t max)
{
    char ptr[256];
    pointer_of(ptr, sizeof(ptr), prefix, name);
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            input_error(in, ptr, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        input_error(in, ptr, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        input_error(in, ptr, "must not contain NUL characters");
        return NULL;
    }
    size_t n = utf8_chars(s);
    if (n < min || n > max) {
        if (min == max)
            input_error(in, ptr, "must be %zu characters", min);
        else
            input_error(in, ptr, "must be %zu to %zu characters", min, max);
        return NULL;
    }
    return s;
}

int input_bool(struct input *in, json_t *obj, const char *prefix, const char *name, int required, int def)
{
    char ptr[256];
    pointer_of(ptr, sizeof(ptr), prefix, name);
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            input_error(in, ptr, "is required");
        return def;
    }
    if (!json_is_boolean(v)) {
        input_error(in, ptr, "must be true or false");
        return def;
    }
    return json_is_true(v);
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
    if (in->nerrors == 0)
        return 0;
    free(in->p->detail);
    in->p->detail = NULL;
    char detail[96];
    snprintf(detail, sizeof(detail), "%d field%s invalid.", in->nerrors, in->nerrors == 1 ? " is" : "s are");
    in->p->detail = strdup(detail);
    return -1;
}
