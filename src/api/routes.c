/*
 * routes.c — every route of the API, in one place.
 */
#include "api/api.h"

int api_routes_register(struct router *r, struct api_ctx *ctx)
{
    if (api_probes_register(r, ctx) != 0 || api_auth_register(r, ctx) != 0 || api_health_data_register(r, ctx) != 0 ||
        api_pat_register(r, ctx) != 0 || api_insights_register(r, ctx) != 0 || api_docs_register(r) != 0 ||
        api_chat_register(r, ctx) != 0 || api_web_register(r) != 0 || api_views_register(r, ctx) != 0 ||
        api_oidc_register(r, ctx) != 0 || api_recordings_register(r, ctx) != 0)
        return -1;
    return 0;
}
