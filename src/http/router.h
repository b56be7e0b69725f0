/*
 * router.h — maps (method, path) to a handler.
 *
 * Routes are templates of '/'-separated segments; a segment `{name}` matches
 * any one non-empty segment and binds it as a parameter. When several routes
 * match a path, the most specific wins: comparing segment by segment from the
 * left, a literal beats a parameter (so `/insights/status` wins over
 * `/insights/{id}` whatever the registration order). A path that matches some
 * route but not with this method is a 405 with the allowed methods.
 *
 * The router is filled before the server starts and is read-only afterwards.
 */
#ifndef CLARITY_HTTP_ROUTER_H
#define CLARITY_HTTP_ROUTER_H

#include <stddef.h>

enum http_method {
    HTTP_GET = 0,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_OPTIONS,
    HTTP_METHOD_COUNT,
    HTTP_METHOD_UNKNOWN = HTTP_METHOD_COUNT
};

#define ROUTER_MAX_ROUTES 128
#define ROUTER_MAX_SEGMENTS 12
#define ROUTER_MAX_PARAMS 4

struct http_request;
struct http_response;
struct http_body_ops;

typedef void (*http_handler_fn)(struct http_request *req, struct http_response *res);

struct route {
    enum http_method method;
    const char *template; /* static, e.g. "/api/v1/insights/{id}" */
    http_handler_fn handler;
    void *ctx;                            /* borrowed, handed to the handler via the request */
    unsigned flags;                       /* the guard's flags (auth, rate class) */
    const struct http_body_ops *body_ops; /* non-NULL: the body is streamed (http.h) */
    int index;                            /* position in the table, for per-route metrics */
    /* Parsed template. */
    int nseg;
    const char *seg[ROUTER_MAX_SEGMENTS];
    size_t seglen[ROUTER_MAX_SEGMENTS];
    unsigned char is_param[ROUTER_MAX_SEGMENTS];
};

struct router {
    struct route routes[ROUTER_MAX_ROUTES];
    int n;
};

struct route_param {
    const char *name; /* points into the template, namelen bytes */
    size_t namelen;
    const char *value; /* points into the path, len bytes */
    size_t len;
};

struct router_match {
    const struct route *route;
    struct route_param params[ROUTER_MAX_PARAMS];
    int nparams;
    unsigned allowed; /* bit per enum http_method, filled on 405 */
};

enum router_result { ROUTER_FOUND = 0, ROUTER_NOT_FOUND = -1, ROUTER_METHOD_NOT_ALLOWED = -2 };

void router_init(struct router *r);

/*
 * Register a route. The template must start with '/', have at most
 * ROUTER_MAX_SEGMENTS segments and ROUTER_MAX_PARAMS parameters, and must not
 * duplicate an existing (method, template). Returns 0 or -1.
 */
int router_add(struct router *r, enum http_method m, const char *template, http_handler_fn fn, void *ctx,
               unsigned flags);

/* As router_add, for a route whose request body is streamed to ops instead
 * of buffered (see struct http_body_ops in http.h). */
int router_add_streaming(struct router *r, enum http_method m, const char *template, const struct http_body_ops *ops,
                         void *ctx, unsigned flags);

/*
 * Match a decoded path (no query string). A HEAD request also matches GET
 * routes. Returns ROUTER_FOUND with out->route and parameters set,
 * ROUTER_METHOD_NOT_ALLOWED with out->allowed set, or ROUTER_NOT_FOUND.
 * Parameters point into `path`, which must outlive the match.
 */
enum router_result router_match(const struct router *r, enum http_method m, const char *path, struct router_match *out);

/* Method from its name ("GET"); HTTP_METHOD_UNKNOWN when not supported. */
enum http_method http_method_parse(const char *s);
const char *http_method_name(enum http_method m);

/* Write the allowed methods as "GET, HEAD, POST" into out (always terminated). */
void router_allow_header(unsigned allowed, char *out, size_t outlen);

#endif
