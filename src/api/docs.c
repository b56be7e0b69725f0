/*
 * docs.c — the API described: GET /openapi.json and the interactive /docs
 * page (issue 11).
 *
 * /openapi.json is docs/openapi.json, embedded into the binary at build time
 * (cmake/embed.cmake writes it as a C array with its SHA-256), so the served
 * description is the one the binary was built with, whatever the working
 * directory. Its strong ETag is that SHA-256 (RFC 9110 §8.8.3); a matching
 * If-None-Match answers 304 (RFC 9110 §13.1.2).
 *
 * /docs is Swagger UI from the npm package swagger-ui-dist, which
 * scripts/install-deps puts into build/swagger-ui. Its files are served from
 * DOCS_ASSETS_DIR (default: that install location, fixed at build time) and
 * are not part of the binary; /docs answers 503 when they are missing. Only a
 * fixed list of files is served (no path from the client reaches open()).
 * The page gets a CSP that allows what Swagger UI needs — scripts, styles,
 * images and fetches from this origin, plus inline styles and data: images
 * it uses — and nothing else (no CDN, no inline script, no framing).
 *
 * DOCS_ENABLED=false (or 0/no/off) turns both off (404), for deployments that
 * do not publish their API description. DOCS_ENABLED and DOCS_ASSETS_DIR are
 * read from the process environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "http/http.h"
#include "http/server.h"

/* Written by cmake/embed.cmake from docs/openapi.json. */
extern const unsigned char clarity_openapi_json[];
extern const size_t clarity_openapi_json_len;
extern const char clarity_openapi_json_sha256[];

#ifndef CLARITY_DOCS_ASSETS_DEFAULT
#define CLARITY_DOCS_ASSETS_DEFAULT "build/swagger-ui/node_modules/swagger-ui-dist"
#endif

#define DOCS_ASSET_MAX (16u << 20) /* swagger-ui-bundle.js is ~1.5 MiB */

/* Swagger UI's needs: its own scripts and styles, inline style attributes
 * and data: images (icons in its stylesheet), fetches of /openapi.json and of
 * "Try it out" requests to this origin. No inline script, no eval. */
#define DOCS_CSP                                                                                                       \
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "                  \
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const char docs_page[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Clarity API</title>\n"
    "<link rel=\"stylesheet\" href=\"docs/swagger-ui.css\">\n"
    "<link rel=\"icon\" type=\"image/png\" href=\"docs/favicon-32x32.png\" sizes=\"32x32\">\n"
    "</head>\n"
    "<body>\n"
    "<div id=\"swagger-ui\"></div>\n"
    "<script src=\"docs/swagger-ui-bundle.js\"></script>\n"
    "<script src=\"docs/clarity-docs.js\"></script>\n"
    "</body>\n"
    "</html>\n";

/* The initializer, a file of its own so that the CSP needs no inline script.
 * validatorUrl null: Swagger UI would otherwise send the document to an
 * outside validator. */
static const char docs_init[] = "window.addEventListener('load', function () {\n"
                                "  window.ui = SwaggerUIBundle({\n"
                                "    url: 'openapi.json',\n"
                                "    dom_id: '#swagger-ui',\n"
                                "    deepLinking: true,\n"
                                "    validatorUrl: null,\n"
                                "    presets: [SwaggerUIBundle.presets.apis],\n"
                                "    layout: 'BaseLayout'\n"
                                "  });\n"
                                "});\n";

/* The files of swagger-ui-dist that /docs uses, with their media types. */
static const struct {
    const char *name;
    const char *type;
} assets[] = {
    {"swagger-ui.css", "text/css; charset=utf-8"},
    {"swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
    {"favicon-32x32.png", "image/png"},
    {"favicon-16x16.png", "image/png"},
};

/* DOCS_ENABLED and DOCS_ASSETS_DIR come from the configuration (config.c). */
static const char *assets_dir(const struct http_request *req)
{
    const char *v = http_server_config(req->server)->docs_assets_dir;
    return v != NULL && *v != '\0' ? v : CLARITY_DOCS_ASSETS_DEFAULT;
}

static int not_enabled(const struct http_request *req, struct http_response *res)
{
    if (http_server_config(req->server)->docs_enabled)
        return 0;
    http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
    return 1;
}

/* 1 when the request's If-None-Match lists etag (or is "*"). Weak
 * comparison, as RFC 9110 §13.1.2 prescribes for If-None-Match. */
static int etag_matches(const struct http_request *req, const char *etag)
{
    const char *inm = http_request_header(req, "If-None-Match");
    if (inm == NULL)
        return 0;
    size_t elen = strlen(etag);
    const char *p = inm;
    while (*p != '\0') {
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

/* Answer 304 with the validators, or the bytes with them. */
static void respond_cached(struct http_request *req, struct http_response *res, const char *etag,
                           const char *cache_control, const char *type, const void *data, size_t len)
{
    if (etag_matches(req, etag))
        http_respond_bytes(res, 304, NULL, "", 0);
    else
        http_respond_bytes(res, 200, type, data, len);
    http_response_header(res, "ETag", etag);
    http_response_header(res, "Cache-Control", cache_control);
}

static void h_openapi(struct http_request *req, struct http_response *res)
{
    if (not_enabled(req, res))
        return;
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%.64s\"", clarity_openapi_json_sha256);
    /* no-cache: clients may keep it but revalidate, which costs a 304. */
    respond_cached(req, res, etag, "no-cache", "application/json; charset=utf-8", clarity_openapi_json,
                   clarity_openapi_json_len);
}

/* 0 when dir/name is a regular file; fills path. */
static int asset_path(const struct http_request *req, const char *name, char *path, size_t pathlen, struct stat *st)
{
    int n = snprintf(path, pathlen, "%s/%s", assets_dir(req), name);
    if (n < 0 || (size_t)n >= pathlen)
        return -1;
    if (stat(path, st) != 0 || !S_ISREG(st->st_mode))
        return -1;
    return 0;
}

static void assets_missing(const struct http_request *req, struct http_response *res)
{
    http_respond_problem(res, 503, "service-unavailable",
                         "The interactive API page is not installed: Swagger UI's files (npm package "
                         "swagger-ui-dist) were not found in %.200s. Run scripts/install-deps or set "
                         "DOCS_ASSETS_DIR. The description itself is at /openapi.json.",
                         assets_dir(req));
}

static void h_docs(struct http_request *req, struct http_response *res)
{
    if (not_enabled(req, res))
        return;
    char path[1024];
    struct stat st;
    if (asset_path(req, "swagger-ui-bundle.js", path, sizeof(path), &st) != 0 ||
        asset_path(req, "swagger-ui.css", path, sizeof(path), &st) != 0) {
        assets_missing(req, res);
        return;
    }
    (void)req;
    http_respond_bytes(res, 200, "text/html; charset=utf-8", docs_page, sizeof(docs_page) - 1);
    http_response_header(res, "Content-Security-Policy", DOCS_CSP);
    http_response_header(res, "Cache-Control", "no-cache");
}

/* Read a whole file of at most DOCS_ASSET_MAX bytes. Caller frees. */
static char *read_file(const char *path, size_t *len)
{
    char *data = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0 || (size_t)st.st_size > DOCS_ASSET_MAX)
        goto fail;
    size_t n = (size_t)st.st_size, got = 0;
    data = malloc(n > 0 ? n : 1);
    if (data == NULL)
        goto fail;
    while (got < n) {
        ssize_t r = read(fd, data + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        got += (size_t)r;
    }
    close(fd);
    *len = n;
    return data;
fail:
    free(data);
    close(fd);
    return NULL;
}

static void h_asset(struct http_request *req, struct http_response *res)
{
    if (not_enabled(req, res))
        return;
    const char *name = http_request_param(req, "asset");
    if (name != NULL && strcmp(name, "clarity-docs.js") == 0) {
        char etag[32];
        snprintf(etag, sizeof(etag), "\"clarity-%s\"", CLARITY_VERSION);
        respond_cached(req, res, etag, "public, max-age=3600", "text/javascript; charset=utf-8", docs_init,
                       sizeof(docs_init) - 1);
        return;
    }
    const char *type = NULL;
    for (size_t i = 0; name != NULL && i < sizeof(assets) / sizeof(assets[0]); i++)
        if (strcmp(name, assets[i].name) == 0)
            type = assets[i].type;
    if (type == NULL) {
        http_respond_problem(res, 404, "resource-not-found", "No resource at this path.");
        return;
    }
    char path[1024];
    struct stat st;
    if (asset_path(req, name, path, sizeof(path), &st) != 0) {
        assets_missing(req, res);
        return;
    }
    /* The files change only when swagger-ui-dist is reinstalled: size and
     * modification time identify a version well enough for revalidation. */
    char etag[80];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)st.st_size, (unsigned long long)st.st_mtime);
    if (etag_matches(req, etag)) {
        respond_cached(req, res, etag, "public, max-age=86400", type, "", 0);
        return;
    }
    size_t len = 0;
    char *data = read_file(path, &len);
    if (data == NULL) {
        assets_missing(req, res);
        return;
    }
    respond_cached(req, res, etag, "public, max-age=86400", type, data, len);
    free(data);
}

int api_docs_register(struct router *r)
{
    int rc = 0;
    rc |= router_add(r, HTTP_GET, "/openapi.json", h_openapi, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/docs", h_docs, NULL, 0);
    rc |= router_add(r, HTTP_GET, "/docs/{asset}", h_asset, NULL, 0);
    return rc != 0 ? -1 : 0;
}
