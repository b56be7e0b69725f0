/*
 * check.c — JSON member validation. See check.h.
 */
#include "core/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void check_init(struct check *c, void (*record)(void *, const char *, const char *), void *ctx)
{
    c->nerrors = 0;
    c->record = record;
    c->ctx = ctx;
}

static void vrecord(struct check *c, const char *pointer, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void vrecord(struct check *c, const char *pointer, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    c->nerrors++;
    if (c->record != NULL)
        c->record(c->ctx, pointer, msg);
}

void check_error(struct check *c, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vrecord(c, pointer, fmt, ap);
    va_end(ap);
}

void check_pointer(char *out, size_t outlen, const char *prefix, const char *name)
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

/* A member's error, its pointer built only now: the checks run for every
 * member of every sample of an upload, and errors are rare. */
static void member_error(struct check *c, const char *prefix, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void member_error(struct check *c, const char *prefix, const char *name, const char *fmt, ...)
{
    char ptr[256];
    va_list ap;
    check_pointer(ptr, sizeof(ptr), prefix, name);
    va_start(ap, fmt);
    vrecord(c, ptr, fmt, ap);
    va_end(ap);
}

void check_only(struct check *c, json_t *obj, const char *prefix, const char *const *allowed)
{
    /* Unknown members are ignored (clients in the field send members of
     * their own: docs/api.md "Rules for clients"); known ones are validated
     * by the caller. An object holding no known member at all is still
     * refused: at the top level it is not this request. */
    const char *key;
    json_t *v;
    size_t known = 0;
    json_object_foreach (obj, key, v) {
        for (const char *const *a = allowed; *a != NULL; a++)
            if (strcmp(*a, key) == 0) {
                known++;
                break;
            }
    }
    if ((prefix == NULL || prefix[0] == '\0') && known == 0)
        check_error(c, "",
                    json_object_size(obj) == 0 ? "must not be empty" : "holds none of the members this request takes");
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

const char *check_string(struct check *c, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                         size_t max)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            member_error(c, prefix, name, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        member_error(c, prefix, name, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        member_error(c, prefix, name, "must not contain NUL characters");
        return NULL;
    }
    size_t n = utf8_chars(s);
    if (n < min || n > max) {
        if (min == max)
            member_error(c, prefix, name, "must be %zu characters", min);
        else
            member_error(c, prefix, name, "must be %zu to %zu characters", min, max);
        return NULL;
    }
    return s;
}

int check_bool(struct check *c, json_t *obj, const char *prefix, const char *name, int required, int def)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            member_error(c, prefix, name, "is required");
        return def;
    }
    if (!json_is_boolean(v)) {
        member_error(c, prefix, name, "must be true or false");
        return def;
    }
    return json_is_true(v);
}

const char *check_bytes(struct check *c, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                        size_t max)
{
    json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required)
            member_error(c, prefix, name, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        member_error(c, prefix, name, "must be a string");
        return NULL;
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n) {
        member_error(c, prefix, name, "must not contain NUL characters");
        return NULL;
    }
    if (n < min || n > max) {
        member_error(c, prefix, name, "must be %zu to %zu bytes of UTF-8", min, max);
        return NULL;
    }
    return s;
}
