/*
 * oidc_login_test.c — the pieces of browser OIDC sign-in (src/auth/oidc_login.c)
 * that need no provider: the PKCE S256 challenge (RFC 7636 Appendix B's
 * vector), random values, the URL policy, the discovery-document and
 * token-response parsers, provider configuration, and the flow records —
 * single use, bound to the browser, expiring, bounded in number.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oidc_login.h"
#include "core/config.h"

#define NOW 1765000000

static void pkce_rfc7636_appendix_b(void **state)
{
    (void)state;
    char c[OIDC_LOGIN_RANDOM_LEN];
    oidc_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", c);
    assert_string_equal(c, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void random_values_are_43_unreserved_and_differ(void **state)
{
    (void)state;
    char a[OIDC_LOGIN_RANDOM_LEN], b[OIDC_LOGIN_RANDOM_LEN];
    oidc_random(a);
    oidc_random(b);
    assert_int_equal(strlen(a), 43);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_string_not_equal(a, b);
}

static void url_policy(void **state)
{
    (void)state;
    assert_true(oidc_url_acceptable("https://accounts.google.com"));
    assert_true(oidc_url_acceptable("https://idp.example.org/realms/x/protocol/openid-connect/auth"));
    assert_true(oidc_url_acceptable("http://127.0.0.1:8080/authorize"));
    assert_true(oidc_url_acceptable("http://localhost:9/x"));
    assert_true(oidc_url_acceptable("http://[::1]:9/x"));
    assert_false(oidc_url_acceptable("http://idp.example.org/authorize")); /* plain http off loopback */
    assert_false(oidc_url_acceptable("http://127.0.0.1.evil.org/x"));      /* not loopback */
    assert_false(oidc_url_acceptable("http://localhost.evil.org/x"));
    assert_false(oidc_url_acceptable("https://user:pw@idp.example.org/x")); /* credentials */
    assert_false(oidc_url_acceptable("javascript:alert(1)"));
    assert_false(oidc_url_acceptable("https://idp.example.org/a b"));
    assert_false(oidc_url_acceptable("https://"));
    assert_false(oidc_url_acceptable(NULL));
}

static int disc(const char *json, struct oidc_endpoints *ep, char *err)
{
    return oidc_discovery_parse(json, strlen(json), "https://idp.example.org", ep, err, 200);
}

static void discovery_document(void **state)
{
    (void)state;
    struct oidc_endpoints ep;
    char err[200];
    assert_int_equal(
        disc("{\"issuer\":\"https://idp.example.org\",\"authorization_endpoint\":\"https://idp.example.org/a\","
             "\"token_endpoint\":\"https://idp.example.org/t\",\"jwks_uri\":\"https://idp.example.org/k\","
             "\"code_challenge_methods_supported\":[\"plain\",\"S256\"]}",
             &ep, err),
        0);
    assert_string_equal(ep.authorization, "https://idp.example.org/a");
    assert_string_equal(ep.token, "https://idp.example.org/t");
    assert_string_equal(ep.jwks, "https://idp.example.org/k");
    /* Another issuer's document (OpenID Connect Discovery §4.3). */
    assert_int_equal(disc("{\"issuer\":\"https://evil.example.org\",\"authorization_endpoint\":\"https://e/a\","
                          "\"token_endpoint\":\"https://e/t\"}",
                          &ep, err),
                     OIDC_LOGIN_EINVALID);
    assert_non_null(strstr(err, "issuer"));
    /* No token endpoint; an http one off loopback; no S256; not an object;
     * a duplicate member. */
    assert_int_equal(
        disc("{\"issuer\":\"https://idp.example.org\",\"authorization_endpoint\":\"https://i/a\"}", &ep, err),
        OIDC_LOGIN_EINVALID);
    assert_int_equal(disc("{\"issuer\":\"https://idp.example.org\",\"authorization_endpoint\":\"https://i/a\","
                          "\"token_endpoint\":\"http://idp.example.org/t\"}",
                          &ep, err),
                     OIDC_LOGIN_EINVALID);
    /* An https provider's document may not send the code and the secret in
     * the clear to this host's loopback (a loopback issuer may). */
    assert_int_equal(disc("{\"issuer\":\"https://idp.example.org\",\"authorization_endpoint\":\"https://i/a\","
                          "\"token_endpoint\":\"http://127.0.0.1:8080/t\"}",
                          &ep, err),
                     OIDC_LOGIN_EINVALID);
    const char *lo = "{\"issuer\":\"http://127.0.0.1:9\",\"authorization_endpoint\":\"http://127.0.0.1:9/a\","
                     "\"token_endpoint\":\"http://127.0.0.1:9/t\"}";
    assert_int_equal(oidc_discovery_parse(lo, strlen(lo), "http://127.0.0.1:9", &ep, err, sizeof(err)), 0);
    assert_int_equal(disc("{\"issuer\":\"https://idp.example.org\",\"authorization_endpoint\":\"https://i/a\","
                          "\"token_endpoint\":\"https://i/t\",\"code_challenge_methods_supported\":[\"plain\"]}",
                          &ep, err),
                     OIDC_LOGIN_EINVALID);
    assert_non_null(strstr(err, "S256"));
    assert_int_equal(disc("[]", &ep, err), OIDC_LOGIN_EINVALID);
    assert_int_equal(disc("{\"issuer\":\"https://idp.example.org\",\"issuer\":\"https://idp.example.org\"}", &ep, err),
                     OIDC_LOGIN_EINVALID);
}

static void token_response(void **state)
{
    (void)state;
    char tok[64], err[200];
    const char *ok = "{\"access_token\":\"at\",\"token_type\":\"Bearer\",\"id_token\":\"aaa.bbb.ccc\"}";
    assert_int_equal(oidc_token_response_parse(ok, strlen(ok), tok, sizeof(tok), err, sizeof(err)), 0);
    assert_string_equal(tok, "aaa.bbb.ccc");
    const char *lower = "{\"token_type\":\"bearer\",\"id_token\":\"x.y.z\"}";
    assert_int_equal(oidc_token_response_parse(lower, strlen(lower), tok, sizeof(tok), err, sizeof(err)), 0);
    /* An OAuth error: the code is reported, never anything else it sent. */
    const char *e = "{\"error\":\"invalid_grant\",\"error_description\":\"SECRET-DETAIL\"}";
    assert_int_equal(oidc_token_response_parse(e, strlen(e), tok, sizeof(tok), err, sizeof(err)), OIDC_LOGIN_EINVALID);
    assert_non_null(strstr(err, "invalid_grant"));
    assert_null(strstr(err, "SECRET"));
    assert_string_equal(tok, "");
    const char *none = "{\"access_token\":\"at\",\"token_type\":\"Bearer\"}";
    assert_int_equal(oidc_token_response_parse(none, strlen(none), tok, sizeof(tok), err, sizeof(err)),
                     OIDC_LOGIN_EINVALID);
    const char *mac = "{\"token_type\":\"mac\",\"id_token\":\"x.y.z\"}";
    assert_int_equal(oidc_token_response_parse(mac, strlen(mac), tok, sizeof(tok), err, sizeof(err)),
                     OIDC_LOGIN_EINVALID);
    char big[200];
    snprintf(big, sizeof(big), "{\"id_token\":\"%0100d\"}", 0);
    assert_int_equal(oidc_token_response_parse(big, strlen(big), tok, sizeof(tok), err, sizeof(err)),
                     OIDC_LOGIN_EINVALID);
    assert_int_equal(oidc_token_response_parse("nope", 4, tok, sizeof(tok), err, sizeof(err)), OIDC_LOGIN_EINVALID);
}

#define PROVIDER                                                                                                       \
    "{\"name\":\"test\",\"label\":\"Test\",\"issuer\":\"https://idp.example.org\",\"client_id\":\"web app\","          \
    "\"client_secret\":\"s\",\"authorization_endpoint\":\"https://idp.example.org/auth?x=1\","                         \
    "\"token_endpoint\":\"https://idp.example.org/token\",\"jwks_url\":\"http://127.0.0.1:1/jwks\"}"

static struct oidc_login *make(const char *providers, const char *base, char *err, size_t errlen)
{
    struct config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.oidc_providers = (char *)providers;
    cfg.oidc_redirect_base = (char *)base;
    return oidc_login_new(&cfg, err, errlen);
}

static void configuration(void **state)
{
    (void)state;
    char err[512];
    assert_null(make(NULL, NULL, err, sizeof(err)));
    assert_string_equal(err, ""); /* nothing configured: nothing enabled */
    assert_null(make(NULL, "https://c.example.org", err, sizeof(err)));
    assert_non_null(strstr(err, "OIDC_PROVIDERS"));
    assert_null(make("[" PROVIDER "]", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "OIDC_REDIRECT_BASE"));
    assert_null(make("[" PROVIDER "]", "http://c.example.org", err, sizeof(err)));
    assert_null(make("[" PROVIDER "," PROVIDER "]", "https://c.example.org", err, sizeof(err)));
    assert_non_null(strstr(err, "twice"));
    assert_null(make("[{\"name\":\"x\",\"issuer\":\"https://i\",\"client_id\":\"c\",\"scopes\":[\"email\"]}]",
                     "https://c.example.org", err, sizeof(err)));
    assert_non_null(strstr(err, "openid"));
    assert_null(
        make("[{\"name\":\"x\",\"issuer\":\"https://i\",\"client_id\":\"c\",\"token_endpoint\":\"https://i/t\"}]",
             "https://c.example.org", err, sizeof(err)));
    assert_non_null(strstr(err, "both"));
    assert_null(make("{}", "https://c.example.org", err, sizeof(err)));
    struct oidc_login *l = make("[" PROVIDER "]", "https://c.example.org/", err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(oidc_login_count(l), 1);
    assert_int_equal(oidc_login_find(l, "test"), 0);
    assert_int_equal(oidc_login_find(l, "other"), -1);
    assert_string_equal(oidc_login_label(l, 0), "Test");
    oidc_login_free(l);
}

/* The value of a query parameter of url into out. */
static void param(const char *url, const char *name, char *out, size_t outlen)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *p = strstr(url, key);
    assert_non_null(p);
    p += strlen(key);
    size_t n = strcspn(p, "&");
    assert_true(n < outlen);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void flow_records(void **state)
{
    (void)state;
    char err[512], url[2048], bind[OIDC_LOGIN_RANDOM_LEN], st[64], ch[64], nonce[64], other[OIDC_LOGIN_RANDOM_LEN];
    struct oidc_login *l = make("[" PROVIDER "]", "https://c.example.org", err, sizeof(err));
    assert_non_null(l);
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.1", NOW, url, sizeof(url), bind), 0);
    /* The authorization request: the configured endpoint's own query kept,
     * every value encoded, PKCE S256. */
    assert_true(strncmp(url, "https://idp.example.org/auth?x=1&response_type=code&client_id=web%20app&", 66) == 0);
    assert_non_null(
        strstr(url, "&redirect_uri=https%3A%2F%2Fc.example.org%2Fapi%2Fv1%2Fauth%2Foidc%2Ftest%2Fcallback&"));
    assert_non_null(strstr(url, "&scope=openid%20email%20profile&"));
    assert_non_null(strstr(url, "&code_challenge_method=S256"));
    param(url, "state", st, sizeof(st));
    param(url, "code_challenge", ch, sizeof(ch));
    param(url, "nonce", nonce, sizeof(nonce));
    assert_int_equal(oidc_login_pending(l), 1);

    struct oidc_pending p;
    /* Another browser (wrong binding) spends the state... */
    oidc_random(other);
    assert_int_equal(oidc_login_take(l, st, other, NOW + 1, &p), OIDC_LOGIN_EINVALID);
    assert_int_equal(oidc_login_pending(l), 0);
    /* ...so the right browser cannot use it afterwards. */
    assert_int_equal(oidc_login_take(l, st, bind, NOW + 1, &p), OIDC_LOGIN_EINVALID);

    /* A good flow: taken once, with its nonce and the verifier whose S256
     * challenge went to the provider. */
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.1", NOW, url, sizeof(url), bind), 0);
    param(url, "state", st, sizeof(st));
    param(url, "code_challenge", ch, sizeof(ch));
    param(url, "nonce", nonce, sizeof(nonce));
    assert_int_equal(oidc_login_take(l, st, NULL, NOW + 1, &p), OIDC_LOGIN_EINVALID); /* no cookie */
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.1", NOW, url, sizeof(url), bind), 0);
    param(url, "state", st, sizeof(st));
    param(url, "code_challenge", ch, sizeof(ch));
    param(url, "nonce", nonce, sizeof(nonce));
    assert_int_equal(oidc_login_take(l, st, bind, NOW + 1, &p), 0);
    assert_int_equal(p.provider, 0);
    assert_string_equal(p.nonce, nonce);
    char c2[OIDC_LOGIN_RANDOM_LEN];
    oidc_pkce_challenge(p.verifier, c2);
    assert_string_equal(c2, ch);
    assert_int_equal(oidc_login_take(l, st, bind, NOW + 2, &p), OIDC_LOGIN_EINVALID); /* single use */
    /* Expiry: OIDC_LOGIN_TTL_S after it began. */
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.1", NOW, url, sizeof(url), bind), 0);
    param(url, "state", st, sizeof(st));
    assert_int_equal(oidc_login_take(l, st, bind, NOW + OIDC_LOGIN_TTL_S, &p), OIDC_LOGIN_EINVALID);
    /* Malformed states. */
    assert_int_equal(oidc_login_take(l, NULL, bind, NOW, &p), OIDC_LOGIN_EINVALID);
    assert_int_equal(oidc_login_take(l, "short", bind, NOW, &p), OIDC_LOGIN_EINVALID);
    assert_int_equal(oidc_login_pending(l), 0);
    oidc_login_free(l);
}

static void flow_records_bounded(void **state)
{
    (void)state;
    char err[512], url[2048], bind[OIDC_LOGIN_RANDOM_LEN], client[32];
    struct oidc_login *l = make("[" PROVIDER "]", "https://c.example.org", err, sizeof(err));
    assert_non_null(l);
    for (int i = 0; i < OIDC_LOGIN_MAX_PENDING; i++) {
        snprintf(client, sizeof(client), "10.0.%d.%d", i / 256, i % 256);
        assert_int_equal(oidc_login_begin(l, 0, client, NOW, url, sizeof(url), bind), 0);
    }
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.9", NOW + 1, url, sizeof(url), bind), OIDC_LOGIN_EBUSY);
    /* Once they expire, their slots are reused. */
    assert_int_equal(oidc_login_begin(l, 0, "192.0.2.9", NOW + OIDC_LOGIN_TTL_S, url, sizeof(url), bind), 0);
    assert_int_equal(oidc_login_pending(l), OIDC_LOGIN_MAX_PENDING);
    oidc_login_free(l);
}

static void flow_records_per_client_share(void **state)
{
    (void)state;
    char err[512], url[2048], bind[OIDC_LOGIN_RANDOM_LEN], st[64];
    struct oidc_login *l = make("[" PROVIDER "]", "https://c.example.org", err, sizeof(err));
    assert_non_null(l);
    for (int i = 0; i < OIDC_LOGIN_MAX_PER_CLIENT; i++)
        assert_int_equal(oidc_login_begin(l, 0, "203.0.113.5", NOW, url, sizeof(url), bind), 0);
    /* That address has its share; another does not. */
    assert_int_equal(oidc_login_begin(l, 0, "203.0.113.5", NOW, url, sizeof(url), bind), OIDC_LOGIN_EBUSY);
    assert_int_equal(oidc_login_begin(l, 0, "203.0.113.6", NOW, url, sizeof(url), bind), 0);
    /* Another address's finished flow frees none of its places; expiry does. */
    param(url, "state", st, sizeof(st));
    struct oidc_pending p;
    assert_int_equal(oidc_login_take(l, st, bind, NOW, &p), 0);
    assert_int_equal(oidc_login_begin(l, 0, "203.0.113.5", NOW, url, sizeof(url), bind), OIDC_LOGIN_EBUSY);
    assert_int_equal(oidc_login_begin(l, 0, "203.0.113.5", NOW + OIDC_LOGIN_TTL_S, url, sizeof(url), bind), 0);
    oidc_login_free(l);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pkce_rfc7636_appendix_b),
        cmocka_unit_test(random_values_are_43_unreserved_and_differ),
        cmocka_unit_test(url_policy),
        cmocka_unit_test(discovery_document),
        cmocka_unit_test(token_response),
        cmocka_unit_test(configuration),
        cmocka_unit_test(flow_records),
        cmocka_unit_test(flow_records_bounded),
        cmocka_unit_test(flow_records_per_client_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
