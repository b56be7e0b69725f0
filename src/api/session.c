/*
 * session.c — the web app's refresh cookie and its CSRF check (issue 20).
 *
 * A browser must not keep a refresh token where script can read it. When a
 * login or refresh request carries `X-Clarity-Client: web`, the refresh
 * token is taken out of the JSON answer and set as the cookie
 *   clarity_refresh=<token>; Path=/api/v1/auth; HttpOnly; Secure;
 *   SameSite=Strict; Max-Age=<refresh_expires_in>
 * (Path covers /api/v1/auth/refresh and /api/v1/auth/logout, the only routes
 * that read it). The access token stays in the answer; the app keeps it in
 * memory only.
 *
 * /refresh and /logout accept that cookie in place of a refresh_token
 * member, and only when the request proves it is same-origin script
 * (OWASP CSRF cheat sheet, "custom request headers" and "verifying origin
 * with standard headers"): `X-Clarity-CSRF: 1` present (a cross-site page
 * cannot set it without a CORS preflight, which Clarity does not grant),
 * `Origin`, when sent, equal to this server's origin (`Host`), and
 * `Sec-Fetch-Site`, when sent, `same-origin`. Anything else is 403 and
 * changes nothing. Calls with the token in the body (the iOS app, curl) are
 * unchanged.
 */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "http/http.h"

#define SESSION_COOKIE "clarity_refresh"

int api_session_is_web(const struct http_request *req)
{
    const char *c = http_request_header(req, "X-Clarity-Client");
    return c != NULL && strcmp(c, "web") == 0;
}

void api_session_deliver(struct http_request *req, struct http_response *res, json_t *tokens)
{
    if (!api_session_is_web(req))
        return;
    api_session_set_cookie(res, tokens);
}

void api_session_set_cookie(struct http_response *res, json_t *tokens)
{
    if (tokens == NULL)
        return;
    const char *t = json_string_value(json_object_get(tokens, "refresh_token"));
    if (t == NULL)
        return;
    char cookie[400];
    json_int_t ttl = json_integer_value(json_object_get(tokens, "refresh_expires_in"));
    snprintf(cookie, sizeof(cookie),
             SESSION_COOKIE "=%.256s; Path=/api/v1/auth; HttpOnly; Secure; SameSite=Strict; "
                            "Max-Age=%lld",
             t, (long long)ttl);
    http_response_header(res, "Set-Cookie", cookie);
    http_response_header(res, "Cache-Control", "no-store");
    json_object_del(tokens, "refresh_token");
    json_object_set_new(tokens, "refresh_token_in", json_string("cookie"));
}

void api_session_clear(struct http_request *req, struct http_response *res)
{
    if (api_session_is_web(req))
        http_response_header(res, "Set-Cookie",
                             SESSION_COOKIE "=; Path=/api/v1/auth; HttpOnly; Secure; "
                                            "SameSite=Strict; Max-Age=0");
}

int api_session_cookie_value(const char *c, char *buf, size_t len)
{
    return api_cookie_value(c, SESSION_COOKIE, buf, len);
}

int api_cookie_value(const char *c, const char *name, char *buf, size_t len)
{
    const size_t kl = strlen(name);
    for (const char *p = c; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > kl && strncmp(p, name, kl) == 0 && p[kl] == '=') {
            size_t vl = n - kl - 1;
            if (vl == 0 || vl >= len)
                return -1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

int api_session_origin_ok(const char *origin, const char *host)
{
    if (origin == NULL)
        return 1;
    if (host == NULL)
        return 0;
    const char *rest = strncmp(origin, "http://", 7) == 0    ? origin + 7
                       : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                             : NULL;
    return rest != NULL && strcmp(rest, host) == 0;
}

int api_session_cookie_token(struct http_request *req, struct http_response *res, char *buf, size_t len)
{
    if (api_session_cookie_value(http_request_header(req, "Cookie"), buf, len) != 0)
        return 1;
    const char *csrf = http_request_header(req, "X-Clarity-CSRF");
    const char *site = http_request_header(req, "Sec-Fetch-Site");
    if (csrf == NULL || strcmp(csrf, "1") != 0 ||
        !api_session_origin_ok(http_request_header(req, "Origin"), http_request_header(req, "Host")) ||
        (site != NULL && strcmp(site, "same-origin") != 0)) {
        buf[0] = '\0';
        http_respond_problem(res, 403, "authorization-denied",
                             "A cookie-authenticated request must come from this origin with X-Clarity-CSRF: 1.");
        return -1;
    }
    return 0;
}
