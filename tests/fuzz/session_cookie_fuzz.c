/*
 * session_cookie_fuzz.c — libFuzzer driver for the web app's cookie and
 * origin checks (api/session.c): a Cookie header and an Origin/Host pair
 * from the client, parsed before any token is looked up.
 *
 * Input: the Cookie header, a NUL, the Origin header, a NUL, the Host
 * header (missing parts are NULL). Invariants: a found value is non-empty,
 * NUL-terminated inside the buffer and occurs in the header right after
 * "clarity_refresh="; the origin check says yes only for NULL or an exact
 * http(s)://host.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 3);
    if (in == NULL)
        return 0;
    memcpy(in, data, size);
    in[size] = in[size + 1] = in[size + 2] = '\0';
    const char *cookie = in;
    const char *origin = NULL, *host = NULL;
    size_t a = strlen(cookie);
    if (a < size) {
        origin = in + a + 1;
        size_t b = strlen(origin);
        if (a + 1 + b < size)
            host = origin + b + 1;
    }
    char buf[SESSION_TOKEN_MAX];
    if (api_session_cookie_value(cookie, buf, sizeof(buf)) == 0) {
        size_t n = strlen(buf);
        if (n == 0 || n >= sizeof(buf))
            abort();
        char key[SESSION_TOKEN_MAX + 20] = "clarity_refresh=";
        memcpy(key + 16, buf, n + 1);
        if (strstr(cookie, key) == NULL)
            abort();
    }
    if (api_session_origin_ok(origin, host) && origin != NULL) {
        const char *rest = strncmp(origin, "http://", 7) == 0 ? origin + 7 : origin + 8;
        if (host == NULL || strcmp(rest, host) != 0)
            abort();
    }
    free(in);
    return 0;
}
