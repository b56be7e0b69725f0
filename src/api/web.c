/*
 * web.c — the web app (issue 20): GET / and GET /app/{asset}.
 *
 * The app's files (web/index.html, web/app.js, web/app.css, web/icon.svg)
 * are embedded into the binary at build time by cmake/embed.cmake, like
 * /openapi.json, so the served app is the one the binary was built with and
 * nothing is read from disk or fetched at run time. Each file's strong ETag
 * is its SHA-256; a matching If-None-Match answers 304 (RFC 9110 §13.1.2).
 * Every file is sent with no-cache: browsers keep it and revalidate, which
 * costs a 304 and no body, and a new build is picked up at the next load.
 *
 * Every answer carries a strict Content-Security-Policy: scripts, styles,
 * images and connections (fetch and the chat WebSocket) from this origin
 * only, no inline script or style, no eval, no framing, no form posting
 * elsewhere. WEB_APP_ENABLED=false turns the app off (404); the API is
 * unchanged.
 */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"
#include "http/server.h"

/* Written by cmake/embed.cmake from web/. */
extern const unsigned char clarity_web_index_html[];
extern const size_t clarity_web_index_html_len;
extern const char clarity_web_index_html_sha256[];
extern const unsigned char clarity_web_app_js[];
extern const size_t clarity_web_app_js_len;
extern const char clarity_web_app_js_sha256[];
extern const unsigned char clarity_web_app_css[];
extern const size_t clarity_web_app_css_len;
extern const char clarity_web_app_css_sha256[];
extern const unsigned char clarity_web_icon_svg[];
extern const size_t clarity_web_icon_svg_len;
extern const char clarity_web_icon_svg_sha256[];

#define WEB_CSP                                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "        \
    "manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

struct web_asset {
    const char *name;
    const char *type;
    const unsigned char *data;
    const size_t *len;
    const char *sha;
};

static const struct web_asset web_assets[] = {
    {"app.js", "text/javascript; charset=utf-8", clarity_web_app_js, &clarity_web_app_js_len,
     clarity_web_app_js_sha256},
    {"app.css", "text/css; charset=utf-8", clarity_web_app_css, &clarity_web_app_css_len, clarity_web_app_css_sha256},
    {"icon.svg", "image/svg+xml", clarity_web_icon_svg, &clarity_web_icon_svg_len, clarity_web_icon_svg_sha256},
};

/* 1 when If-None-Match lists etag or "*" (weak comparison, RFC 9110). */
static int web_etag_matches(const struct http_request *req, const char *etag)
{
    const char *inm = http_request_header(req, "If-None-Match");
    if (inm == NULL)
        return 0;
    size_t elen = strlen(etag);
    for (const char *p = inm; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == elen && memcmp(p, etag, n) == 0)
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

static void web_respond(struct http_request *req, struct http_response *res, const char *type,
                        const unsigned char *data, size_t len, const char *sha, const char *cache)
{
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%.64s\"", sha);
    if (web_etag_matches(req, etag))
        http_respond_bytes(res, 304, NULL, "", 0);
    else
        http_respond_bytes(res, 200, type, data, len);
    http_response_header(res, "ETag", etag);
    http_response_header(res, "Cache-Control", cache);
    http_response_header(res, "Content-Security-Policy", WEB_CSP);
    http_response_header(res, "X-Content-Type-Options", "nosniff");
    http_response_header(res, "Referrer-Policy", "no-referrer");
    http_response_header(res, "Cross-Origin-Opener-Policy", "same-origin");
}

static int web_off(const struct http_request *req, struct http_response *res)
{
    if (http_server_config(req->server)->web_app_enabled)
        return 0;
    http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
    return 1;
}

static void h_index(struct http_request *req, struct http_response *res)
{
    if (web_off(req, res))
        return;
    web_respond(req, res, "text/html; charset=utf-8", clarity_web_index_html, clarity_web_index_html_len,
                clarity_web_index_html_sha256, "no-cache");
}

static void h_web_asset(struct http_request *req, struct http_response *res)
{
    if (web_off(req, res))
        return;
    const char *name = http_request_param(req, "asset");
    for (size_t i = 0; name != NULL && i < sizeof(web_assets) / sizeof(web_assets[0]); i++) {
        const struct web_asset *a = &web_assets[i];
        if (strcmp(name, a->name) == 0) {
            web_respond(req, res, a->type, a->data, *a->len, a->sha, "no-cache");
            return;
        }
    }
    http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
}

int api_web_register(struct router *r)
{
    int rc = 0;
    rc |= router_add(r, HTTP_GET, "/", h_index, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/app/{asset}", h_web_asset, NULL, 0);
    return rc != 0 ? -1 : 0;
}
