/*
 * problem.c — RFC 7807 problem details. See problem.h.
 */
#include "core/problem.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int status;
    const char *slug;
    const char *title;
} problem_kinds[] = {
    {400, "bad-request", "Bad Request"},
    {401, "authentication-required", "Authentication Required"},
    {403, "authorization-denied", "Authorization Denied"},
    {404, "resource-not-found", "Resource Not Found"},
    {405, "method-not-allowed", "Method Not Allowed"},
    {409, "resource-conflict", "Resource Conflict"},
    {413, "payload-too-large", "Payload Too Large"},
    {415, "unsupported-media-type", "Unsupported Media Type"},
    {422, "validation-error", "Validation Error"},
    {423, "account-locked", "Account Locked"},
    {429, "rate-limit-exceeded", "Rate Limit Exceeded"},
    {500, "internal-server-error", "Internal Server Error"},
    {503, "service-unavailable", "Service Unavailable"},
};

#define NKINDS (sizeof(problem_kinds) / sizeof(problem_kinds[0]))

const char *problem_slug_for_status(int status)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (problem_kinds[i].status == status)
            return problem_kinds[i].slug;
    return status >= 500 ? "internal-server-error" : "bad-request";
}

const char *problem_title(const char *slug)
{
    for (size_t i = 0; slug != NULL && i < NKINDS; i++)
        if (strcmp(problem_kinds[i].slug, slug) == 0)
            return problem_kinds[i].title;
    return "Error";
}

static char *vformat(const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void problem_set(struct problem *p, int status, const char *slug, const char *fmt, ...)
{
    problem_clear(p);
    p->status = status;
    p->slug = slug != NULL ? slug : problem_slug_for_status(status);
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        p->detail = vformat(fmt, ap);
        va_end(ap);
    }
}

int problem_add_error(struct problem *p, const char *pointer, const char *fmt, ...)
{
    if (p->nerrors >= PROBLEM_MAX_ERRORS) {
        p->errors_dropped++;
        return 0;
    }
    if (p->nerrors == p->errors_cap) {
        size_t ncap = p->errors_cap ? p->errors_cap * 2 : 8;
        struct problem_error *e = realloc(p->errors, ncap * sizeof(*e));
        if (e == NULL)
            return -1;
        p->errors = e;
        p->errors_cap = ncap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    char *ptr = strdup(pointer != NULL ? pointer : "");
    if (msg == NULL || ptr == NULL) {
        free(msg);
        free(ptr);
        return -1;
    }
    p->errors[p->nerrors].pointer = ptr;
    p->errors[p->nerrors].message = msg;
    p->nerrors++;
    return 0;
}

void problem_set_extra(struct problem *p, json_t *extra)
{
    json_decref(p->extra);
    p->extra = extra;
}

void problem_clear(struct problem *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nerrors; i++) {
        free(p->errors[i].pointer);
        free(p->errors[i].message);
    }
    free(p->errors);
    free(p->detail);
    json_decref(p->extra);
    memset(p, 0, sizeof(*p));
}

json_t *problem_to_json(const struct problem *p, const char *instance, const char *request_id)
{
    const char *slug = p->slug != NULL ? p->slug : problem_slug_for_status(p->status);
    char type[128];
    snprintf(type, sizeof(type), "%s%s", PROBLEM_TYPE_BASE, slug);
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "title", json_string(problem_title(slug)));
    json_object_set_new(o, "status", json_integer(p->status));
    json_object_set_new(o, "detail", json_string(p->detail != NULL ? p->detail : problem_title(slug)));
    json_object_set_new(o, "instance", instance != NULL ? json_string(instance) : json_null());
    json_object_set_new(o, "request_id", request_id != NULL ? json_string(request_id) : json_null());
    if (p->extra != NULL) {
        const char *key;
        json_t *value;
        json_object_foreach (p->extra, key, value) {
            if (json_object_get(o, key) == NULL)
                json_object_set(o, key, value);
        }
    }
    if (p->nerrors > 0) {
        json_t *arr = json_array();
        for (size_t i = 0; i < p->nerrors; i++) {
            json_t *e = json_object();
            /* json_string rejects invalid UTF-8 (NULL): fall back to a fixed text
             * so a problem always renders. */
            json_t *ptr = json_string(p->errors[i].pointer);
            json_t *msg = json_string(p->errors[i].message);
            json_object_set_new(e, "pointer", ptr != NULL ? ptr : json_string(""));
            json_object_set_new(e, "message", msg != NULL ? msg : json_string("invalid value"));
            json_array_append_new(arr, e);
        }
        json_object_set_new(o, "errors", arr);
        if (p->errors_dropped > 0)
            json_object_set_new(o, "errors_truncated", json_integer((json_int_t)p->errors_dropped));
    }
    return o;
}

static _Atomic int verbose;

void problem_verbose_set(int on) { atomic_store(&verbose, on != 0); }

int problem_verbose(void) { return atomic_load(&verbose); }
