/*
 * routes.c — `clarity routes`: every registered route as JSON, with whether
 * it needs authentication and its rate class. Tests use it to prove that
 * each protected route refuses bad tokens and that the API description
 * covers every route.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/guard.h"
#include "cli/cli.h"

int cli_routes(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "clarity routes: unexpected argument '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    static const char *const classes[] = {"none", "api", "auth", "upload", "insights", "chat"};
    static struct router r;
    struct api_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    router_init(&r);
    if (api_routes_register(&r, &ctx) != 0) {
        fprintf(stderr, "clarity routes: route registration failed\n");
        return CLI_EXIT_FAILURE;
    }
    json_t *arr = json_array();
    for (int i = 0; i < r.n; i++) {
        const struct route *rt = &r.routes[i];
        unsigned cls = (rt->flags & GUARD_RATE_MASK) >> GUARD_RATE_SHIFT;
        json_array_append_new(arr, json_pack("{s:s, s:s, s:b, s:s}", "method", http_method_name(rt->method), "path",
                                             rt->template, "auth", (rt->flags & GUARD_AUTH) != 0, "rate_class",
                                             cls < GUARD_RATE_COUNT ? classes[cls] : "none"));
    }
    char *s = json_dumps(arr, JSON_INDENT(1));
    json_decref(arr);
    if (s == NULL)
        return CLI_EXIT_FAILURE;
    puts(s);
    free(s);
    return CLI_EXIT_OK;
}
