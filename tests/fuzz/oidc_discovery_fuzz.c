/*
 * oidc_discovery_fuzz.c — libFuzzer driver for an OIDC provider's discovery
 * document (auth/oidc_login.c, oidc_discovery_parse): bytes from the
 * network, parsed before a sign-in can start.
 *
 * Input: the document. Invariants: accepted only when its issuer is the
 * configured one (compared after JSON unescaping); every endpoint accepted is NUL-terminated inside its
 * buffer and passes oidc_url_acceptable (https, or http on loopback); the
 * reason of a refusal is NUL-terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

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
        /* The document's issuer, once unescaped, is the configured one
         * ("https:\/\/idp..." is the same JSON string: the CI run of stop 24
         * found the driver's first, byte-wise check too strict). */
        json_t *doc = json_loadb((const char *)data, size, 0, NULL);
        const char *iss = json_string_value(json_object_get(doc, "issuer"));
        if (iss == NULL || strcmp(iss, "https://idp.example.org") != 0)
            abort();
        json_decref(doc);
    } else if (rc != OIDC_LOGIN_EINVALID || memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0') {
        abort();
    }
    return 0;
}
