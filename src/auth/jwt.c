/*
 * jwt.c — JWT issue (libjwt) and pinned-algorithm verification (OpenSSL 3).
 * References: RFC 7515 (JWS), RFC 7517 (JWK), RFC 7518 §3.3–3.4 (RS256,
 * ES256: the signature is R || S, 32 bytes each), RFC 7519 (claims).
 */
#include "auth/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json_load.h"
#include "core/uuid.h"

enum alg { ALG_ES256 = 1, ALG_RS256 = 2 };

struct jwt_signer {
    EVP_PKEY *pkey;
    char *pem; /* PKCS#8 PEM, for libjwt */
    char kid[32];
};

#define KEYSET_MAX 32

struct jwt_keyset {
    enum alg alg;
    size_t n;
    char kid[KEYSET_MAX][128];
    EVP_PKEY *key[KEYSET_MAX];
};

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err != NULL && errlen > 0)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* base64url without padding (RFC 7515 §2) → bytes. Returns length or -1. */
static long b64url_decode(const char *s, size_t len, unsigned char *out, size_t outcap)
{
    size_t n = 0;
    if (sodium_base642bin(out, outcap, s, len, NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    return (long)n;
}

static int is_p256(EVP_PKEY *pkey)
{
    char group[64];
    size_t glen = 0;
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &glen) != 1)
        return 0;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

static int compute_kid(EVP_PKEY *pkey, char out[32])
{
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pkey, &der);
    if (len <= 0)
        return -1;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, der, (unsigned long long)len);
    OPENSSL_free(der);
    sodium_bin2base64(out, 32, digest, 12, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

static char *pem_of(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        char *data = NULL;
        long len = BIO_get_mem_data(bio, &data);
        out = malloc((size_t)len + 1);
        if (out != NULL) {
            memcpy(out, data, (size_t)len);
            out[len] = '\0';
        }
    }
    BIO_free(bio);
    return out;
}

static struct jwt_signer *signer_of(EVP_PKEY *pkey, char *err, size_t errlen)
{
    struct jwt_signer *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        EVP_PKEY_free(pkey);
        fail(err, errlen, "out of memory");
        return NULL;
    }
    s->pkey = pkey;
    s->pem = pem_of(pkey);
    if (s->pem == NULL || compute_kid(pkey, s->kid) != 0) {
        jwt_signer_free(s);
        fail(err, errlen, "cannot encode the signing key");
        return NULL;
    }
    return s;
}

struct jwt_signer *jwt_signer_from_pem(const char *pem, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (pkey == NULL) {
        fail(err, errlen, "JWT_PRIVATE_KEY: not a PEM private key");
        return NULL;
    }
    if (!is_p256(pkey)) {
        EVP_PKEY_free(pkey);
        fail(err, errlen, "JWT_PRIVATE_KEY: expected an EC P-256 key (ES256)");
        return NULL;
    }
    return signer_of(pkey, err, errlen);
}

struct jwt_signer *jwt_signer_load_or_create(const char *path, int *created, char *err, size_t errlen)
{
    *created = 0;
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char pem[8192];
        size_t n = fread(pem, 1, sizeof(pem) - 1, f);
        fclose(f);
        pem[n] = '\0';
        struct jwt_signer *s = jwt_signer_from_pem(pem, err, errlen);
        sodium_memzero(pem, sizeof(pem));
        return s;
    }
    if (errno != ENOENT) {
        fail(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (pkey == NULL) {
        fail(err, errlen, "cannot generate a P-256 key");
        return NULL;
    }
    struct jwt_signer *s = signer_of(pkey, err, errlen);
    if (s == NULL)
        return NULL;
    /* Create the parent directory (one level, like var/) and the file 0600. */
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
        mkdir(dir, 0700);
    }
    FILE *out = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd >= 0)
        out = fdopen(fd, "w");
    if (out == NULL || fputs(s->pem, out) < 0 || fclose(out) != 0) {
        if (out == NULL && fd >= 0)
            close(fd);
        fail(err, errlen, "%s: cannot write the generated key: %s", path, strerror(errno));
        jwt_signer_free(s);
        return NULL;
    }
    *created = 1;
    return s;
}

void jwt_signer_free(struct jwt_signer *s)
{
    if (s == NULL)
        return;
    EVP_PKEY_free(s->pkey);
    if (s->pem != NULL) {
        sodium_memzero(s->pem, strlen(s->pem));
        free(s->pem);
    }
    free(s);
}

const char *jwt_signer_kid(const struct jwt_signer *s) { return s->kid; }

char *jwt_issue(const struct jwt_signer *s, const char *iss, const char *aud, const char *sub, const char *role,
                int64_t now_s, int ttl_s, char jti_out[37])
{
    return jwt_issue_session(s, iss, aud, sub, role, NULL, now_s, ttl_s, jti_out);
}

char *jwt_issue_session(const struct jwt_signer *s, const char *iss, const char *aud, const char *sub, const char *role,
                        const char *sid, int64_t now_s, int ttl_s, char jti_out[37])
{
    jwt_t *j = NULL;
    char *out = NULL;
    if (uuid_v4(jti_out) != 0 || jwt_new(&j) != 0)
        return NULL;
    if (jwt_set_alg(j, JWT_ALG_ES256, (const unsigned char *)s->pem, (int)strlen(s->pem)) != 0 ||
        jwt_add_header(j, "kid", s->kid) != 0 || jwt_add_grant(j, "iss", iss) != 0 ||
        jwt_add_grant(j, "aud", aud) != 0 || jwt_add_grant(j, "sub", sub) != 0 || jwt_add_grant(j, "role", role) != 0 ||
        jwt_add_grant(j, "jti", jti_out) != 0 || jwt_add_grant_int(j, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(j, "nbf", (long)now_s) != 0 || jwt_add_grant_int(j, "exp", (long)(now_s + ttl_s)) != 0 ||
        (sid != NULL && jwt_add_grant(j, "sid", sid) != 0))
        goto done;
    out = jwt_encode_str(j);
done:
    jwt_free(j);
    return out;
}

/* ---- verification ------------------------------------------------------- */

struct parts {
    const char *header, *payload, *sig;
    size_t hlen, plen, slen;
};

static int split(const char *token, struct parts *p)
{
    size_t len = strnlen(token, JWT_MAX_TOKEN_LEN + 1);
    if (len == 0 || len > JWT_MAX_TOKEN_LEN)
        return -1;
    const char *d1 = memchr(token, '.', len);
    if (d1 == NULL)
        return -1;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
    if (d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return -1;
    p->header = token;
    p->hlen = (size_t)(d1 - token);
    p->payload = d1 + 1;
    p->plen = (size_t)(d2 - d1 - 1);
    p->sig = d2 + 1;
    p->slen = len - (size_t)(d2 + 1 - token);
    return p->hlen > 0 && p->plen > 0 && p->slen > 0 ? 0 : -1;
}

/* One base64url JSON object of a token into *out: 0, JSON_EINVALID (not
 * base64url, not JSON, not an object) or JSON_ENOMEM (the server's). */
static int decode_object(const char *s, size_t len, json_t **out)
{
    unsigned char buf[JWT_MAX_TOKEN_LEN];
    *out = NULL;
    long n = b64url_decode(s, len, buf, sizeof(buf));
    if (n < 0)
        return JSON_EINVALID;
    json_t *j = NULL;
    int rc = json_load_checked((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &j, NULL);
    if (rc == 0 && !json_is_object(j)) {
        json_decref(j);
        return JSON_EINVALID;
    }
    *out = j;
    return rc;
}

static json_t *decode_json(const char *s, size_t len)
{
    json_t *j = NULL;
    decode_object(s, len, &j);
    return j;
}

int jwt_peek_iss(const char *token, char *out, size_t outlen)
{
    struct parts p;
    if (split(token, &p) != 0)
        return -1;
    json_t *pl = decode_json(p.payload, p.plen);
    const char *iss = pl != NULL ? json_string_value(json_object_get(pl, "iss")) : NULL;
    int rc = -1;
    if (iss != NULL && strlen(iss) < outlen) {
        snprintf(out, outlen, "%s", iss);
        rc = 0;
    }
    json_decref(pl);
    return rc;
}

int jwt_peek_kid(const char *token, char *out, size_t outlen)
{
    struct parts p;
    if (split(token, &p) != 0)
        return -1;
    json_t *h = decode_json(p.header, p.hlen);
    const char *kid = h != NULL ? json_string_value(json_object_get(h, "kid")) : NULL;
    int rc = -1;
    if (kid != NULL && strlen(kid) < outlen) {
        snprintf(out, outlen, "%s", kid);
        rc = 0;
    }
    json_decref(h);
    return rc;
}

/* Check the signature of `header.payload` with key under alg: 0 when it
 * verifies, TOKEN_EINVALID when it does not, TOKEN_ENOMEM when OpenSSL could
 * not do the work (an allocation failed: the server's failure, not a bad
 * signature). */
static int check_signature(enum alg alg, EVP_PKEY *key, const struct parts *p)
{
    unsigned char sig[1024];
    long slen = b64url_decode(p->sig, p->slen, sig, sizeof(sig));
    if (slen < 0)
        return TOKEN_EINVALID;
    unsigned char *der = NULL;
    const unsigned char *vsig = sig;
    size_t vlen = (size_t)slen;
    int rc = TOKEN_EINVALID;
    if (alg == ALG_ES256) {
        /* JWS carries R || S; OpenSSL verifies DER-encoded ECDSA-Sig-Value. */
        if (slen != 64)
            return TOKEN_EINVALID;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
        if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return TOKEN_ENOMEM; /* 64 bytes always make two numbers: allocation */
        }
        int dlen = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (dlen <= 0)
            return TOKEN_ENOMEM;
        vsig = der;
        vlen = (size_t)dlen;
    }
    /* Hash once with libsodium, then a plain EVP_PKEY_verify over the digest:
     * EVP_DigestVerifyInit would fetch a digest implementation from the
     * provider on every call, which costs as much as the curve arithmetic. */
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)p->header, p->hlen + 1 + p->plen);
    ERR_clear_error();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
        (alg == ALG_RS256 && (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
                              EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)) ||
        (alg == ALG_ES256 && EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1)) {
        rc = TOKEN_ENOMEM; /* setting up a verification of a loaded key fails only for want of memory */
    } else {
        /* 1: valid; 0: the signature does not verify; < 0: OpenSSL failed
         * (ECDSA_verify's -1, an allocation). A 0 that comes with a malloc
         * failure on the error queue is OpenSSL's failure too. */
        int v = EVP_PKEY_verify(ctx, vsig, vlen, digest, sizeof(digest));
        if (v == 1)
            rc = 0;
        else if (v < 0 || ERR_GET_REASON(ERR_peek_last_error()) == ERR_R_MALLOC_FAILURE)
            rc = TOKEN_ENOMEM;
    }
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    OPENSSL_free(der);
    return rc;
}

static int64_t num_claim(json_t *payload, const char *name)
{
    json_t *v = json_object_get(payload, name);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (json_is_real(v))
        return (int64_t)json_real_value(v);
    return 0;
}

static int copy_claim(json_t *payload, const char *name, char *out, size_t outlen)
{
    const char *v = json_string_value(json_object_get(payload, name));
    out[0] = '\0';
    if (v == NULL)
        return 0;
    if (strlen(v) >= outlen)
        return -1;
    snprintf(out, outlen, "%s", v);
    return 0;
}

static int aud_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach (aud, i, v) {
            if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
                return 1;
        }
    }
    return 0;
}

static int in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        if (list[i] != NULL && strcmp(v, list[i]) == 0)
            return 1;
    return 0;
}

/* struct jwt_audience's rule (jwt.h). */
static int aud_rule_matches(json_t *pl, const struct jwt_audience *r)
{
    json_t *aud = json_object_get(pl, "aud");
    if (aud == NULL) {
        const char *cid = json_string_value(json_object_get(pl, "client_id"));
        return in_list(cid, r->client_ids, r->n_client_ids);
    }
    if (json_is_string(aud)) {
        const char *v = json_string_value(aud);
        return in_list(v, r->audiences, r->n_audiences) || in_list(v, r->client_ids, r->n_client_ids);
    }
    if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach (aud, i, v) {
            const char *s = json_string_value(v);
            if (in_list(s, r->audiences, r->n_audiences) || in_list(s, r->client_ids, r->n_client_ids))
                return 1;
        }
    }
    return 0;
}

/* The shared pipeline: parse, pin alg, find the key by kid, verify the
 * signature, then the registered claims. Exactly one of aud and rule is set. */
static int verify(enum alg alg, EVP_PKEY *(*lookup)(const void *ctx, const char *kid), const void *ctx,
                  const char *token, const char *iss, const char *aud, const struct jwt_audience *rule, int64_t now_s,
                  int external, struct jwt_claims *out, char *err, size_t errlen)
{
    struct parts p;
    json_t *h = NULL, *pl = NULL;
    int rc = TOKEN_EINVALID;
    if (token == NULL || split(token, &p) != 0) {
        fail(err, errlen, "malformed token");
        return TOKEN_EINVALID;
    }
    int jrc = decode_object(p.header, p.hlen, &h);
    if (jrc == JSON_ENOMEM) {
        rc = TOKEN_ENOMEM;
        fail(err, errlen, "out of memory");
        goto done;
    }
    if (h == NULL) {
        fail(err, errlen, "malformed token header");
        goto done;
    }
    const char *a = json_string_value(json_object_get(h, "alg"));
    const char *want = alg == ALG_ES256 ? "ES256" : "RS256";
    if (a == NULL || strcmp(a, want) != 0) {
        fail(err, errlen, "algorithm not accepted");
        goto done;
    }
    const char *kid = json_string_value(json_object_get(h, "kid"));
    EVP_PKEY *key = kid != NULL ? lookup(ctx, kid) : NULL;
    if (key == NULL) {
        fail(err, errlen, "unknown key id");
        goto done;
    }
    int src = check_signature(alg, key, &p);
    if (src != 0) {
        rc = src;
        fail(err, errlen, src == TOKEN_ENOMEM ? "out of memory" : "bad signature");
        goto done;
    }
    jrc = decode_object(p.payload, p.plen, &pl);
    if (jrc == JSON_ENOMEM) {
        rc = TOKEN_ENOMEM;
        fail(err, errlen, "out of memory");
        goto done;
    }
    if (pl == NULL) {
        fail(err, errlen, "malformed token payload");
        goto done;
    }
    const char *tiss = json_string_value(json_object_get(pl, "iss"));
    if (tiss == NULL || strcmp(tiss, iss) != 0) {
        fail(err, errlen, "wrong issuer");
        goto done;
    }
    if (rule != NULL ? !aud_rule_matches(pl, rule) : !aud_matches(json_object_get(pl, "aud"), aud)) {
        fail(err, errlen, "wrong audience");
        goto done;
    }
    memset(out, 0, sizeof(*out));
    out->exp = num_claim(pl, "exp");
    out->iat = num_claim(pl, "iat");
    out->nbf = num_claim(pl, "nbf");
    out->auth_time = num_claim(pl, "auth_time");
    if (out->exp == 0 || now_s > out->exp + JWT_LEEWAY_SECONDS) {
        fail(err, errlen, "token expired");
        goto done;
    }
    if (out->nbf != 0 && out->nbf > now_s + JWT_LEEWAY_SECONDS) {
        fail(err, errlen, "token not yet valid");
        goto done;
    }
    if (out->iat == 0 || out->iat > now_s + JWT_LEEWAY_SECONDS) {
        fail(err, errlen, "bad issued-at time");
        goto done;
    }
    if (external && out->auth_time > now_s + JWT_LEEWAY_SECONDS) {
        fail(err, errlen, "bad auth_time");
        goto done;
    }
    if (copy_claim(pl, "sub", out->sub, sizeof(out->sub)) != 0 || out->sub[0] == '\0') {
        fail(err, errlen, "missing subject");
        goto done;
    }
    if (copy_claim(pl, "role", out->role, sizeof(out->role)) != 0 ||
        copy_claim(pl, "jti", out->jti, sizeof(out->jti)) != 0 ||
        copy_claim(pl, "email", out->email, sizeof(out->email)) != 0 ||
        copy_claim(pl, "sid", out->sid, sizeof(out->sid)) != 0 ||
        copy_claim(pl, "token_use", out->token_use, sizeof(out->token_use)) != 0 ||
        copy_claim(pl, "client_id", out->client_id, sizeof(out->client_id)) != 0) {
        fail(err, errlen, "oversized claim");
        goto done;
    }
    /* Only the browser sign-in compares these two: a bearer token with a
     * long nonce or azp is not refused for it (it was not before). */
    if (copy_claim(pl, "nonce", out->nonce, sizeof(out->nonce)) != 0 ||
        copy_claim(pl, "azp", out->azp, sizeof(out->azp)) != 0) {
        out->nonce[0] = out->azp[0] = '\0';
        out->signin_oversized = 1;
    }
    json_t *audv = json_object_get(pl, "aud");
    out->aud_n = json_is_array(audv) ? (int)json_array_size(audv) : json_is_string(audv) ? 1 : 0;
    snprintf(out->iss, sizeof(out->iss), "%.255s", tiss);
    /* A display name is informational: a long one is cut, never refused. */
    const char *nm = json_string_value(json_object_get(pl, "name"));
    if (nm != NULL)
        snprintf(out->name, sizeof(out->name), "%.127s", nm);
    json_t *ev = json_object_get(pl, "email_verified");
    out->email_verified = json_is_true(ev) || (json_is_string(ev) && strcmp(json_string_value(ev), "true") == 0);
    rc = 0;
done:
    json_decref(h);
    json_decref(pl);
    return rc;
}

static EVP_PKEY *signer_lookup(const void *ctx, const char *kid)
{
    const struct jwt_signer *s = ctx;
    return strcmp(kid, s->kid) == 0 ? s->pkey : NULL;
}

int jwt_verify(const struct jwt_signer *s, const char *token, const char *iss, const char *aud, int64_t now_s,
               struct jwt_claims *out, char *err, size_t errlen)
{
    return verify(ALG_ES256, signer_lookup, s, token, iss, aud, NULL, now_s, 0, out, err, errlen);
}

/* ---- key sets ----------------------------------------------------------- */

static EVP_PKEY *keyset_lookup(const void *ctx, const char *kid)
{
    const struct jwt_keyset *ks = ctx;
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->kid[i], kid) == 0)
            return ks->key[i];
    return NULL;
}

int jwt_verify_external(const struct jwt_keyset *ks, const char *token, const char *iss, const char *aud, int64_t now_s,
                        struct jwt_claims *out, char *err, size_t errlen)
{
    return verify(ks->alg, keyset_lookup, ks, token, iss, aud, NULL, now_s, 1, out, err, errlen);
}

int jwt_verify_external_rule(const struct jwt_keyset *ks, const char *token, const char *iss,
                             const struct jwt_audience *aud, int64_t now_s, struct jwt_claims *out, char *err,
                             size_t errlen)
{
    return verify(ks->alg, keyset_lookup, ks, token, iss, NULL, aud, now_s, 1, out, err, errlen);
}

static BIGNUM *b64url_bn(const char *s)
{
    unsigned char buf[1024];
    long n = s != NULL ? b64url_decode(s, strlen(s), buf, sizeof(buf)) : -1;
    return n > 0 ? BN_bin2bn(buf, (int)n, NULL) : NULL;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (pc != NULL && EVP_PKEY_fromdata_init(pc) == 1)
        EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(pc);
    return pkey;
}

static EVP_PKEY *jwk_rsa(json_t *k)
{
    BIGNUM *n = b64url_bn(json_string_value(json_object_get(k, "n")));
    BIGNUM *e = b64url_bn(json_string_value(json_object_get(k, "e")));
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (n != NULL && e != NULL && bld != NULL && BN_num_bits(n) >= 2048 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1 && (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
        pkey = from_params("RSA", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(json_t *k)
{
    const char *crv = json_string_value(json_object_get(k, "crv"));
    const char *xs = json_string_value(json_object_get(k, "x"));
    const char *ys = json_string_value(json_object_get(k, "y"));
    if (crv == NULL || strcmp(crv, "P-256") != 0 || xs == NULL || ys == NULL)
        return NULL;
    unsigned char point[65];
    point[0] = 0x04; /* uncompressed: 0x04 || X || Y (SEC 1 §2.3.3) */
    if (b64url_decode(xs, strlen(xs), point + 1, 32) != 32 || b64url_decode(ys, strlen(ys), point + 33, 32) != 32)
        return NULL;
    char group[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };
    return from_params("EC", params);
}

static EVP_PKEY *x509_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *pkey = x != NULL ? X509_get_pubkey(x) : NULL;
    X509_free(x);
    BIO_free(bio);
    return pkey;
}

static int keyset_add(struct jwt_keyset *ks, const char *kid, EVP_PKEY *pkey, char *err, size_t errlen)
{
    enum alg a = EVP_PKEY_is_a(pkey, "RSA") ? ALG_RS256 : is_p256(pkey) ? ALG_ES256 : 0;
    if (a == 0 || (ks->n > 0 && a != ks->alg) || ks->n == KEYSET_MAX || strlen(kid) >= sizeof(ks->kid[0])) {
        EVP_PKEY_free(pkey);
        return fail(err, errlen, "key \"%.40s\": unsupported type, mixed algorithms or too many keys", kid);
    }
    ks->alg = a;
    snprintf(ks->kid[ks->n], sizeof(ks->kid[0]), "%s", kid);
    ks->key[ks->n++] = pkey;
    return 0;
}

struct jwt_keyset *jwt_keyset_parse(const char *text, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_parse(text, len, JSON_REJECT_DUPLICATES, &je);
    struct jwt_keyset *ks = calloc(1, sizeof(*ks));
    if (root == NULL || !json_is_object(root) || ks == NULL) {
        fail(err, errlen, "key set is not a JSON object");
        goto fail;
    }
    json_t *keys = json_object_get(root, "keys");
    if (json_is_array(keys)) {
        size_t i;
        json_t *k;
        json_array_foreach (keys, i, k) {
            const char *kty = json_string_value(json_object_get(k, "kty"));
            const char *kid = json_string_value(json_object_get(k, "kid"));
            const char *use = json_string_value(json_object_get(k, "use"));
            if (kty == NULL || kid == NULL || (use != NULL && strcmp(use, "sig") != 0))
                continue; /* encryption keys and keys without ids are not ours */
            EVP_PKEY *pkey = strcmp(kty, "RSA") == 0 ? jwk_rsa(k) : strcmp(kty, "EC") == 0 ? jwk_ec(k) : NULL;
            if (pkey == NULL) {
                fail(err, errlen, "key \"%.40s\": invalid %s key", kid, kty);
                goto fail;
            }
            if (keyset_add(ks, kid, pkey, err, errlen) != 0)
                goto fail;
        }
    } else {
        const char *kid;
        json_t *v;
        json_object_foreach (root, kid, v) {
            const char *pem = json_string_value(v);
            EVP_PKEY *pkey = pem != NULL ? x509_key(pem) : NULL;
            if (pkey == NULL) {
                fail(err, errlen, "key \"%.40s\": not an X.509 certificate", kid);
                goto fail;
            }
            if (keyset_add(ks, kid, pkey, err, errlen) != 0)
                goto fail;
        }
    }
    if (ks->n == 0) {
        fail(err, errlen, "key set has no signing keys");
        goto fail;
    }
    json_decref(root);
    return ks;
fail:
    json_decref(root);
    jwt_keyset_free(ks);
    return NULL;
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->key[i]);
    free(ks);
}

size_t jwt_keyset_count(const struct jwt_keyset *ks) { return ks->n; }

int jwt_keyset_has_kid(const struct jwt_keyset *ks, const char *kid) { return keyset_lookup(ks, kid) != NULL; }
