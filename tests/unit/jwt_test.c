/*
 * jwt_test.c — Clarity's ES256 tokens and external RS256/ES256 ID tokens:
 * every rejection path of the pinned-algorithm verifier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/jwt.h"
#include "core/err.h"
#include "core/json_load.h"

#define ISS "clarity"
#define AUD "clarity-api"
#define NOW 1800000000LL

static EVP_PKEY *ec_key;
static struct jwt_signer *signer;

static char *pem_private(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(b);
    return s;
}

static void b64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Build "b64(header).b64(payload)" into out. */
static void signing_input(const char *header, const char *payload, char *out, size_t outlen)
{
    char h[2048], p[4096];
    b64url((const unsigned char *)header, strlen(header), h, sizeof(h));
    b64url((const unsigned char *)payload, strlen(payload), p, sizeof(p));
    snprintf(out, outlen, "%s.%s", h, p);
}

/* A JWS with any header and payload, signed ES256 (R||S) or RS256 by key. */
static char *sign(EVP_PKEY *key, int es, const char *header, const char *payload)
{
    char input[8192];
    signing_input(header, payload, input, sizeof(input));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t slen = 0;
    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key);
    EVP_DigestSign(ctx, NULL, &slen, (unsigned char *)input, strlen(input));
    unsigned char *sig = malloc(slen);
    EVP_DigestSign(ctx, sig, &slen, (unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    unsigned char raw[512];
    size_t rawlen = slen;
    if (es) {
        const unsigned char *p = sig;
        ECDSA_SIG *e = d2i_ECDSA_SIG(NULL, &p, (long)slen);
        BN_bn2binpad(ECDSA_SIG_get0_r(e), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(e), raw + 32, 32);
        ECDSA_SIG_free(e);
        rawlen = 64;
    } else {
        memcpy(raw, sig, slen);
    }
    free(sig);
    char s64[1024];
    b64url(raw, rawlen, s64, sizeof(s64));
    char *tok = malloc(strlen(input) + strlen(s64) + 2);
    sprintf(tok, "%s.%s", input, s64);
    return tok;
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    ec_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *pem = pem_private(ec_key);
    char err[256];
    signer = jwt_signer_from_pem(pem, err, sizeof(err));
    free(pem);
    return signer != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    jwt_signer_free(signer);
    EVP_PKEY_free(ec_key);
    return 0;
}

static void expect_reject(const char *token, const char *reason)
{
    struct jwt_claims c;
    char err[128] = "";
    int rc = jwt_verify(signer, token, ISS, AUD, NOW, &c, err, sizeof(err));
    if (rc != TOKEN_EINVALID || strstr(err, reason) == NULL)
        fail_msg("expected rejection \"%s\", got rc=%d err=\"%s\"", reason, rc, err);
}

static char *claims_token(const char *alg, const char *kid, const char *payload)
{
    char header[256];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    return sign(ec_key, 1, header, payload);
}

/* A valid token whose check runs out of memory is the server's failure
 * (TOKEN_ENOMEM → 503), never "invalid token" (→ 401, sign in again): fail
 * each of jansson's allocations in turn while verifying (#16). */
static void test_verify_under_allocation_failure(void **state)
{
    (void)state;
    char jti[37];
    char *tok = jwt_issue(signer, ISS, AUD, "user-1", "patient", NOW, 3600, jti);
    assert_non_null(tok);
    int saw_enomem = 0, n;
    for (n = 1; n < 200; n++) {
        struct jwt_claims c;
        char err[128] = "";
        json_load_fail_at((unsigned long)n);
        int rc = jwt_verify(signer, tok, ISS, AUD, NOW, &c, err, sizeof(err));
        json_load_fail_at(0);
        if (rc == 0)
            break; /* the nth allocation came after the check: done */
        if (rc != TOKEN_ENOMEM)
            fail_msg("allocation %d failed: rc=%d (%s), want TOKEN_ENOMEM", n, rc, err);
        saw_enomem++;
    }
    assert_true(saw_enomem > 0);
    assert_true(n < 200);
    /* A forged token stays refused when memory runs short after the
     * signature check: never accepted. */
    char *forged = strdup(tok);
    forged[strlen(forged) - 3] = forged[strlen(forged) - 3] == 'A' ? 'B' : 'A';
    for (n = 1; n < 50; n++) {
        struct jwt_claims c;
        char err[128] = "";
        json_load_fail_at((unsigned long)n);
        int rc = jwt_verify(signer, forged, ISS, AUD, NOW, &c, err, sizeof(err));
        json_load_fail_at(0);
        assert_int_not_equal(rc, 0);
    }
    free(forged);
    free(tok);
}

static void test_issue_verify(void **state)
{
    (void)state;
    char jti[37];
    char *tok = jwt_issue(signer, ISS, AUD, "user-1", "patient", NOW, 3600, jti);
    assert_non_null(tok);
    struct jwt_claims c;
    char err[128];
    assert_int_equal(jwt_verify(signer, tok, ISS, AUD, NOW + 10, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sub, "user-1");
    assert_string_equal(c.role, "patient");
    assert_string_equal(c.jti, jti);
    assert_int_equal(c.exp, NOW + 3600);
    assert_int_equal(c.iat, NOW);
    /* 60 s leeway on expiry, not more. */
    assert_int_equal(jwt_verify(signer, tok, ISS, AUD, NOW + 3600 + 60, &c, err, sizeof(err)), 0);
    assert_int_equal(jwt_verify(signer, tok, ISS, AUD, NOW + 3600 + 61, &c, err, sizeof(err)), TOKEN_EINVALID);
    assert_string_equal(err, "token expired");
    char kid[64];
    assert_int_equal(jwt_peek_kid(tok, kid, sizeof(kid)), 0);
    assert_string_equal(kid, jwt_signer_kid(signer));
    free(tok);
}

static void test_tampered(void **state)
{
    (void)state;
    char jti[37];
    char *tok = jwt_issue(signer, ISS, AUD, "user-1", "patient", NOW, 3600, jti);
    /* Swap the payload for one claiming admin, keep the signature. */
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    char payload[256], p64[512], forged[4096];
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"user-1\",\"role\":\"admin\",\"iat\":%lld,\"exp\":%lld}", ISS,
             AUD, NOW, NOW + 3600);
    b64url((unsigned char *)payload, strlen(payload), p64, sizeof(p64));
    snprintf(forged, sizeof(forged), "%.*s.%s%s", (int)(d1 - tok), tok, p64, d2);
    expect_reject(forged, "bad signature");
    /* Flip one signature character. */
    size_t n = strlen(tok);
    tok[n - 2] = tok[n - 2] == 'A' ? 'B' : 'A';
    expect_reject(tok, "bad signature");
    free(tok);
}

static void test_alg_none_and_hs256(void **state)
{
    (void)state;
    char payload[256], input[2048], tok[4096];
    snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"aud\":\"%s\",\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", ISS,
             AUD, NOW, NOW + 60);
    char header[128];
    snprintf(header, sizeof(header), "{\"alg\":\"none\",\"kid\":\"%s\"}", jwt_signer_kid(signer));
    signing_input(header, payload, input, sizeof(input));
    snprintf(tok, sizeof(tok), "%s.", input);
    expect_reject(tok, "malformed token"); /* empty signature */
    snprintf(tok, sizeof(tok), "%s.AAAA", input);
    expect_reject(tok, "algorithm not accepted");
    /* HS256 keyed with the public key's PEM: the classic confusion attack. */
    snprintf(header, sizeof(header), "{\"alg\":\"HS256\",\"kid\":\"%s\"}", jwt_signer_kid(signer));
    signing_input(header, payload, input, sizeof(input));
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(b, ec_key);
    char *pub;
    long plen = BIO_get_mem_data(b, &pub);
    unsigned char mac[32];
    unsigned int maclen = 32;
    HMAC(EVP_sha256(), pub, (int)plen, (unsigned char *)input, strlen(input), mac, &maclen);
    BIO_free(b);
    char m64[64];
    b64url(mac, maclen, m64, sizeof(m64));
    snprintf(tok, sizeof(tok), "%s.%s", input, m64);
    expect_reject(tok, "algorithm not accepted");
}

static void test_claims_rejected(void **state)
{
    (void)state;
    const char *kid = jwt_signer_kid(signer);
    struct {
        const char *payload_fmt, *reason; /* payloads at iat = NOW */
    } cases[] = {
        {"{\"iss\":\"other\",\"aud\":\"clarity-api\",\"sub\":\"u\",\"iat\":1800000000,\"exp\":1800000060}",
         "wrong issuer"},
        {"{\"iss\":\"clarity\",\"aud\":\"other-api\",\"sub\":\"u\",\"iat\":1800000000,\"exp\":1800000060}",
         "wrong audience"},
        {"{\"iss\":\"clarity\",\"aud\":[\"x\",\"y\"],\"sub\":\"u\",\"iat\":1800000000,\"exp\":1800000060}",
         "wrong audience"},
        {"{\"iss\":\"clarity\",\"aud\":\"clarity-api\",\"iat\":1800000000,\"exp\":1800000060}", "missing subject"},
        {"{\"iss\":\"clarity\",\"aud\":\"clarity-api\",\"sub\":\"\",\"iat\":1800000000,\"exp\":1800000060}",
         "missing subject"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *tok = claims_token("ES256", kid, cases[i].payload_fmt);
        expect_reject(tok, cases[i].reason);
        free(tok);
    }
    char payload[512];
    /* No exp at all. */
    snprintf(payload, sizeof(payload), "{\"iss\":\"clarity\",\"aud\":\"clarity-api\",\"sub\":\"u\",\"iat\":%lld}", NOW);
    char *tok = claims_token("ES256", kid, payload);
    expect_reject(tok, "token expired");
    free(tok);
    /* nbf two minutes ahead. */
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"clarity\",\"aud\":\"clarity-api\",\"sub\":\"u\",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}", NOW,
             NOW + 120, NOW + 600);
    tok = claims_token("ES256", kid, payload);
    expect_reject(tok, "token not yet valid");
    free(tok);
    /* An audience array containing ours is accepted. */
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"clarity\",\"aud\":[\"x\",\"clarity-api\"],\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", NOW,
             NOW + 60);
    tok = claims_token("ES256", kid, payload);
    struct jwt_claims c;
    char err[128];
    assert_int_equal(jwt_verify(signer, tok, ISS, AUD, NOW, &c, err, sizeof(err)), 0);
    free(tok);
    /* Unknown kid. */
    tok = claims_token("ES256", "someone-elses-key", payload);
    expect_reject(tok, "unknown key id");
    free(tok);
}

static void test_other_key(void **state)
{
    (void)state;
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    char *pem = pem_private(other);
    char err[128];
    struct jwt_signer *s2 = jwt_signer_from_pem(pem, err, sizeof(err));
    free(pem);
    char jti[37];
    char *tok = jwt_issue(s2, ISS, AUD, "u", "patient", NOW, 60, jti);
    expect_reject(tok, "unknown key id");
    free(tok);
    /* Same kid as ours but signed by the other key. */
    char payload[256], header[128];
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"clarity\",\"aud\":\"clarity-api\",\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld}", NOW, NOW + 60);
    snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", jwt_signer_kid(signer));
    tok = sign(other, 1, header, payload);
    expect_reject(tok, "bad signature");
    free(tok);
    jwt_signer_free(s2);
    EVP_PKEY_free(other);
}

static void test_garbage(void **state)
{
    (void)state;
    const char *bad[] = {"", "abc", "a.b", "a.b.c.d", "..", "!!!.###.$$$", "eyJhbGciOiJFUzI1NiJ9.e30."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jwt_claims c;
        char err[128];
        assert_int_equal(jwt_verify(signer, bad[i], ISS, AUD, NOW, &c, err, sizeof(err)), TOKEN_EINVALID);
    }
    char *huge = malloc(JWT_MAX_TOKEN_LEN + 10);
    memset(huge, 'a', JWT_MAX_TOKEN_LEN + 9);
    huge[JWT_MAX_TOKEN_LEN + 9] = '\0';
    expect_reject(huge, "malformed token");
    free(huge);
}

static void test_pem_rejections(void **state)
{
    (void)state;
    char err[128];
    assert_null(jwt_signer_from_pem("not a pem", err, sizeof(err)));
    assert_non_null(strstr(err, "not a PEM private key"));
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    char *pem = pem_private(rsa);
    assert_null(jwt_signer_from_pem(pem, err, sizeof(err)));
    assert_non_null(strstr(err, "expected an EC P-256 key"));
    free(pem);
    EVP_PKEY_free(rsa);
}

/* An RS256 identity provider publishing a JWK Set (Firebase-style claims). */
static void test_external_rs256_jwks(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e);
    unsigned char nb[512], eb[8];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char n64[1024], e64[16];
    b64url(nb, (size_t)nl, n64, sizeof(n64));
    b64url(eb, (size_t)el, e64, sizeof(e64));
    char jwks[2048];
    snprintf(
        jwks, sizeof(jwks),
        "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k1\",\"use\":\"sig\",\"alg\":\"RS256\",\"n\":\"%s\",\"e\":\"%s\"}]}",
        n64, e64);
    char err[128];
    struct jwt_keyset *ks = jwt_keyset_parse(jwks, strlen(jwks), err, sizeof(err));
    assert_non_null(ks);
    assert_int_equal(jwt_keyset_count(ks), 1);
    assert_true(jwt_keyset_has_kid(ks, "k1"));

    const char *iss = "https://securetoken.google.com/proj";
    char payload[512];
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"%s\",\"aud\":\"proj\",\"sub\":\"firebase-uid-1\",\"email\":\"a@example.com\","
             "\"iat\":%lld,\"exp\":%lld,\"auth_time\":%lld}",
             iss, NOW - 10, NOW + 3600, NOW - 20);
    char *tok = sign(rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", payload);
    struct jwt_claims c;
    assert_int_equal(jwt_verify_external(ks, tok, iss, "proj", NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sub, "firebase-uid-1");
    assert_string_equal(c.email, "a@example.com");
    assert_int_equal(jwt_verify_external(ks, tok, iss, "other-proj", NOW, &c, err, sizeof(err)), TOKEN_EINVALID);
    free(tok);
    /* auth_time in the future. */
    snprintf(payload, sizeof(payload),
             "{\"iss\":\"%s\",\"aud\":\"proj\",\"sub\":\"u\",\"iat\":%lld,\"exp\":%lld,\"auth_time\":%lld}", iss, NOW,
             NOW + 3600, NOW + 600);
    tok = sign(rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"k1\"}", payload);
    assert_int_equal(jwt_verify_external(ks, tok, iss, "proj", NOW, &c, err, sizeof(err)), TOKEN_EINVALID);
    assert_string_equal(err, "bad auth_time");
    free(tok);
    /* ES256 header against an RS256 key set: refused before any crypto. */
    tok = sign(ec_key, 1, "{\"alg\":\"ES256\",\"kid\":\"k1\"}", payload);
    assert_int_equal(jwt_verify_external(ks, tok, iss, "proj", NOW, &c, err, sizeof(err)), TOKEN_EINVALID);
    assert_string_equal(err, "algorithm not accepted");
    free(tok);
    jwt_keyset_free(ks);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(rsa);
}

static void test_keyset_rejections(void **state)
{
    (void)state;
    char err[128];
    assert_null(jwt_keyset_parse("[]", 2, err, sizeof(err)));
    assert_null(jwt_keyset_parse("{\"keys\":[]}", 11, err, sizeof(err)));
    assert_non_null(strstr(err, "no signing keys"));
    const char *bad = "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";
    assert_null(jwt_keyset_parse(bad, strlen(bad), err, sizeof(err))); /* a 17-bit modulus */
    const char *x509 = "{\"k\":\"-----BEGIN CERTIFICATE-----\\nnope\\n-----END CERTIFICATE-----\\n\"}";
    assert_null(jwt_keyset_parse(x509, strlen(x509), err, sizeof(err)));
    assert_non_null(strstr(err, "not an X.509 certificate"));
}

/* Audience rules (Cognito access tokens carry client_id and no aud), the
 * email_verified and sid claims, and jwt_peek_iss. */
static void test_external_audience_rule(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_E, &e);
    unsigned char nb[512], eb[8];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char n64[1024], e64[16], jwks[2048], err[128], payload[512];
    b64url(nb, (size_t)nl, n64, sizeof(n64));
    b64url(eb, (size_t)el, e64, sizeof(e64));
    snprintf(jwks, sizeof(jwks), "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"c1\",\"n\":\"%s\",\"e\":\"%s\"}]}", n64, e64);
    struct jwt_keyset *ks = jwt_keyset_parse(jwks, strlen(jwks), err, sizeof(err));
    assert_non_null(ks);
    const char *iss = "https://cognito-idp.eu-west-1.amazonaws.com/pool";
    const char *auds[] = {"api-aud"}, *cids[] = {"client-1"};
    struct jwt_audience rule = {auds, 1, cids, 1};
    struct jwt_claims c;
    static const struct {
        const char *claims;
        int ok;
    } cases[] = {
        {"\"client_id\":\"client-1\",\"token_use\":\"access\"", 0}, /* no aud: client_id decides */
        {"\"client_id\":\"client-2\",\"token_use\":\"access\"", TOKEN_EINVALID},
        {"\"token_use\":\"access\"", TOKEN_EINVALID},                             /* neither */
        {"\"aud\":\"client-1\",\"token_use\":\"id\",\"email_verified\":true", 0}, /* Cognito ID token */
        {"\"aud\":[\"x\",\"api-aud\"]", 0},
        {"\"aud\":\"x\",\"client_id\":\"client-1\"", TOKEN_EINVALID}, /* a wrong aud is not rescued */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"sub\":\"s\",\"iat\":%lld,\"exp\":%lld,%s}", iss, NOW,
                 NOW + 600, cases[i].claims);
        char *tok = sign(rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"c1\"}", payload);
        assert_int_equal(jwt_verify_external_rule(ks, tok, iss, &rule, NOW, &c, err, sizeof(err)), cases[i].ok);
        if (i == 3) {
            assert_int_equal(c.email_verified, 1);
            assert_string_equal(c.token_use, "id");
            assert_string_equal(c.iss, iss);
        }
        if (i == 0) {
            assert_int_equal(c.email_verified, 0);
            assert_string_equal(c.client_id, "client-1");
        }
        char got[256];
        assert_int_equal(jwt_peek_iss(tok, got, sizeof(got)), 0);
        assert_string_equal(got, iss);
        free(tok);
    }
    /* email_verified must be true itself: "false", 1 and absent are not. */
    const char *not_verified[] = {"\"email_verified\":\"false\"", "\"email_verified\":1", "\"email_verified\":false"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(payload, sizeof(payload),
                 "{\"iss\":\"%s\",\"aud\":\"api-aud\",\"sub\":\"s\",\"iat\":%lld,\"exp\":%lld,%s}", iss, NOW, NOW + 600,
                 not_verified[i]);
        char *tok = sign(rsa, 0, "{\"alg\":\"RS256\",\"kid\":\"c1\"}", payload);
        assert_int_equal(jwt_verify_external_rule(ks, tok, iss, &rule, NOW, &c, err, sizeof(err)), 0);
        assert_int_equal(c.email_verified, 0);
        free(tok);
    }
    jwt_keyset_free(ks);
    BN_free(n);
    BN_free(e);
    EVP_PKEY_free(rsa);
}

/* Clarity's tokens carry their session id. */
static void test_issue_session(void **state)
{
    (void)state;
    char jti[37], err[128];
    char *tok = jwt_issue_session(signer, ISS, AUD, "user-1", "patient", "family-1", NOW, 3600, jti);
    assert_non_null(tok);
    struct jwt_claims c;
    assert_int_equal(jwt_verify(signer, tok, ISS, AUD, NOW, &c, err, sizeof(err)), 0);
    assert_string_equal(c.sid, "family-1");
    assert_string_equal(c.jti, jti);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_verify),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_alg_none_and_hs256),
        cmocka_unit_test(test_claims_rejected),
        cmocka_unit_test(test_other_key),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_pem_rejections),
        cmocka_unit_test(test_external_rs256_jwks),
        cmocka_unit_test(test_external_audience_rule),
        cmocka_unit_test(test_issue_session),
        cmocka_unit_test(test_keyset_rejections),
        cmocka_unit_test(test_verify_under_allocation_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
