/*
 * router_fuzz.c — libFuzzer driver for request routing: the real API route
 * table matched against arbitrary (method, path) pairs, the Allow header
 * rendered for every 405, and the X-Request-ID sanity check.
 *
 * Input: byte 0 picks the method, the rest is the decoded path (as
 * libmicrohttpd hands it over, query string removed). Invariants checked:
 * a match's parameters lie inside the path and are non-empty, a 405 names
 * at least one allowed method, and nothing reads past the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/router.h"
#include "http/server.h"

static struct router routes;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        static struct api_ctx ctx; /* handlers never run here: only the table is used */
        router_init(&routes);
        if (api_routes_register(&routes, &ctx) != 0)
            abort();
        ready = 1;
    }
    if (size < 1)
        return 0;
    enum http_method m = (enum http_method)(data[0] % (HTTP_METHOD_COUNT + 1));
    char *path = malloc(size); /* size-1 path bytes + NUL */
    if (!path)
        return 0;
    memcpy(path, data + 1, size - 1);
    path[size - 1] = '\0';
    size_t plen = strlen(path);

    struct router_match match;
    enum router_result rr = router_match(&routes, m, path, &match);
    if (rr == ROUTER_FOUND) {
        if (!match.route || match.nparams < 0 || match.nparams > ROUTER_MAX_PARAMS)
            abort();
        for (int i = 0; i < match.nparams; i++) {
            const char *v = match.params[i].value;
            if (v < path || v + match.params[i].len > path + plen || match.params[i].len == 0)
                abort();
        }
    } else if (rr == ROUTER_METHOD_NOT_ALLOWED) {
        if (match.allowed == 0)
            abort();
        char allow[128];
        router_allow_header(match.allowed, allow, sizeof allow);
        if (allow[0] == '\0')
            abort();
    }
    (void)http_request_id_is_sane(path);
    free(path);
    return 0;
}
