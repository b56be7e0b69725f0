/*
 * jwt_fuzz.c — libFuzzer driver for JWT and JWKS parsing (src/auth/jwt.c):
 * untrusted bytes reach jwt_keyset_parse from an identity provider's key URL,
 * and every bearer token reaches jwt_peek_kid, jwt_peek_iss, jwt_verify and
 * jwt_verify_external_rule before any signature has been checked.
 *
 * Input: byte 0 picks the target (even: a key set, odd: a token), the rest is
 * the text. Tokens are verified against a fixed P-256 key (as Clarity's own
 * and as an external key set); invariants: a token the fuzzer did not sign
 * never verifies, and claims come back NUL-terminated.
 */
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"

static struct jwt_signer *signer;
static struct jwt_keyset *keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n = 0;
    if (k == NULL || b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1 ||
        (n = BIO_get_mem_data(b, &pem)) <= 0)
        abort();
    char *copy = strndup(pem, (size_t)n);
    char err[128];
    signer = jwt_signer_from_pem(copy, err, sizeof(err));
    unsigned char pt[65];
    size_t ptlen = 0;
    if (signer == NULL || EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen) != 1 ||
        ptlen != 65)
        abort();
    char x[64], y[64], jwks[400];
    sodium_bin2base64(x, sizeof(x), pt + 1, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(y, sizeof(y), pt + 33, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             jwt_signer_kid(signer), x, y);
    keys = jwt_keyset_parse(jwks, strlen(jwks), err, sizeof(err));
    if (keys == NULL)
        abort();
    free(copy);
    BIO_free(b);
    EVP_PKEY_free(k);
}

static void nul_terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (signer == NULL)
        init();
    if (size < 1)
        return 0;
    char err[256];
    if ((data[0] & 1) == 0) {
        struct jwt_keyset *ks = jwt_keyset_parse((const char *)data + 1, size - 1, err, sizeof(err));
        if (ks != NULL) {
            if (jwt_keyset_count(ks) == 0)
                abort();
            (void)jwt_keyset_has_kid(ks, "k1");
        }
        jwt_keyset_free(ks);
        return 0;
    }
    char *tok = malloc(size);
    if (tok == NULL)
        return 0;
    memcpy(tok, data + 1, size - 1);
    tok[size - 1] = '\0';
    char out[256];
    if (jwt_peek_kid(tok, out, sizeof(out)) == 0)
        nul_terminated(out, sizeof(out));
    if (jwt_peek_iss(tok, out, sizeof(out)) == 0)
        nul_terminated(out, sizeof(out));
    struct jwt_claims c;
    /* The fuzzer holds no private key: nothing it writes may verify. */
    if (jwt_verify(signer, tok, "clarity", "clarity-api", 1800000000, &c, err, sizeof(err)) == 0)
        abort();
    const char *auds[] = {"clarity-api"}, *cids[] = {"client-1"};
    struct jwt_audience rule = {auds, 1, cids, 1};
    if (jwt_verify_external_rule(keys, tok, "https://issuer.example", &rule, 1800000000, &c, err, sizeof(err)) == 0)
        abort();
    nul_terminated(err, sizeof(err));
    free(tok);
    return 0;
}
