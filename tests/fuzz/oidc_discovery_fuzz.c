/*
 * oidc_discovery_fuzz.c — libFuzzer driver for an OIDC provider's discovery
 * document (auth/oidc_login.c, oidc_discovery_parse): bytes from the
 * network, parsed before a sign-in can start.
 *
 * Input: the document. Invariants: accepted only when its issuer is the
 * configured one; every endpoint accepted is NUL-terminated inside its
 * buffer and passes oidc_url_acceptable (https, or http on loopback); the
 * reason of a refusal is NUL-terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oidc_login.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct oidc_endpoints ep;
    char err[200];
    err[0] = '\0';
    int rc = oidc_discovery_parse((const char *)data, size, "https://idp.example.org", &ep, err, sizeof(err));
    if (rc == 0) {
        if (memchr(ep.authorization, '\0', sizeof(ep.authorization)) == NULL ||
            memchr(ep.token, '\0', sizeof(ep.token)) == NULL || memchr(ep.jwks, '\0', sizeof(ep.jwks)) == NULL)
            abort();
        if (!oidc_url_acceptable(ep.authorization) || !oidc_url_acceptable(ep.token) ||
            (ep.jwks[0] != '\0' && !oidc_url_acceptable(ep.jwks)))
            abort();
        if (memmem(data, size, "https://idp.example.org", 23) == NULL)
            abort(); /* the issuer must have been in the document */
    } else if (rc != OIDC_LOGIN_EINVALID || memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
        abort();
    }
    return 0;
}
