/*
 * router.c — template router with specificity ordering. See router.h.
 */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

static const char *const method_names[HTTP_METHOD_COUNT] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

/* A streaming route needs a handler slot for the router's bookkeeping; it
 * is never called (the server drives the body ops instead). */
static void streaming_route_handler(struct http_request *req, struct http_response *res)
{
    (void)req;
    (void)res;
}

int router_add_streaming(struct router *r, enum http_method m, const char *template, const struct http_body_ops *ops,
                         void *ctx, unsigned flags)
{
    if (ops == NULL || router_add(r, m, template, streaming_route_handler, ctx, flags) != 0)
        return -1;
    r->routes[r->n - 1].body_ops = ops;
    return 0;
}

enum http_method http_method_parse(const char *s)
{
    for (int i = 0; i < HTTP_METHOD_COUNT; i++)
        if (strcmp(s, method_names[i]) == 0)
            return (enum http_method)i;
    return HTTP_METHOD_UNKNOWN;
}

const char *http_method_name(enum http_method m) { return m < HTTP_METHOD_COUNT ? method_names[m] : "UNKNOWN"; }

void router_init(struct router *r) { memset(r, 0, sizeof(*r)); }

/* Split "/a/b/c" into segments. Returns the count, or -1 when too many. An
 * empty path ("/") has zero segments; a trailing slash is not a segment. */
static int split(const char *path, const char **seg, size_t *len, int max)
{
    int n = 0;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t l = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == max)
            return -1;
        seg[n] = p;
        len[n] = l;
        n++;
        p += l;
        /* A doubled slash is an empty segment, which never matches. */
        if (*p == '/')
            p++;
        if (*p == '/')
            return -1;
    }
    return n;
}

int router_add(struct router *r, enum http_method m, const char *template, http_handler_fn fn, void *ctx,
               unsigned flags)
{
    if (r->n >= ROUTER_MAX_ROUTES || template == NULL || template[0] != '/' || fn == NULL || m >= HTTP_METHOD_COUNT)
        return -1;
    struct route *rt = &r->routes[r->n];
    memset(rt, 0, sizeof(*rt));
    int n = split(template, rt->seg, rt->seglen, ROUTER_MAX_SEGMENTS);
    if (n < 0)
        return -1;
    int nparams = 0;
    for (int i = 0; i < n; i++) {
        if (rt->seglen[i] >= 3 && rt->seg[i][0] == '{' && rt->seg[i][rt->seglen[i] - 1] == '}') {
            rt->is_param[i] = 1;
            if (++nparams > ROUTER_MAX_PARAMS)
                return -1;
        }
    }
    for (int i = 0; i < r->n; i++)
        if (r->routes[i].method == m && strcmp(r->routes[i].template, template) == 0)
            return -1;
    rt->nseg = n;
    rt->method = m;
    rt->template = template;
    rt->handler = fn;
    rt->ctx = ctx;
    rt->flags = flags;
    rt->index = r->n;
    r->n++;
    return 0;
}

static int matches(const struct route *rt, int n, const char *const *seg, const size_t *len)
{
    if (rt->nseg != n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (rt->is_param[i]) {
            if (len[i] == 0)
                return 0;
        } else if (rt->seglen[i] != len[i] || memcmp(rt->seg[i], seg[i], len[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

/* 1 when a is more specific than b: the first segment where they differ in
 * kind is a literal in a. */
static int more_specific(const struct route *a, const struct route *b)
{
    for (int i = 0; i < a->nseg && i < b->nseg; i++)
        if (a->is_param[i] != b->is_param[i])
            return !a->is_param[i];
    return 0;
}

enum router_result router_match(const struct router *r, enum http_method m, const char *path, struct router_match *out)
{
    const char *seg[ROUTER_MAX_SEGMENTS];
    size_t len[ROUTER_MAX_SEGMENTS];
    memset(out, 0, sizeof(*out));
    int n = split(path, seg, len, ROUTER_MAX_SEGMENTS);
    if (n < 0)
        return ROUTER_NOT_FOUND;

    const struct route *best = NULL;
    unsigned allowed = 0;
    for (int i = 0; i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        if (!matches(rt, n, seg, len))
            continue;
        allowed |= 1u << rt->method;
        if (rt->method == HTTP_GET)
            allowed |= 1u << HTTP_HEAD;
        int method_ok = rt->method == m || (m == HTTP_HEAD && rt->method == HTTP_GET);
        if (!method_ok)
            continue;
        /* An explicit HEAD route beats the GET fallback at equal specificity. */
        if (best == NULL || more_specific(rt, best) ||
            (!more_specific(best, rt) && rt->method == m && best->method != m))
            best = rt;
    }
    if (best == NULL) {
        if (allowed == 0)
            return ROUTER_NOT_FOUND;
        out->allowed = allowed | (1u << HTTP_OPTIONS);
        return ROUTER_METHOD_NOT_ALLOWED;
    }
    out->route = best;
    for (int i = 0; i < n; i++) {
        if (!best->is_param[i])
            continue;
        struct route_param *p = &out->params[out->nparams++];
        p->name = best->seg[i] + 1;
        p->namelen = best->seglen[i] - 2;
        p->value = seg[i];
        p->len = len[i];
    }
    out->allowed = allowed | (1u << HTTP_OPTIONS);
    return ROUTER_FOUND;
}

void router_allow_header(unsigned allowed, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < HTTP_METHOD_COUNT; i++) {
        if (!(allowed & (1u << i)))
            continue;
        int w = snprintf(out + o, outlen - o, "%s%s", o ? ", " : "", method_names[i]);
        if (w < 0 || (size_t)w >= outlen - o)
            break;
        o += (size_t)w;
    }
}
