/*
 * oidc_login.c — the authorization-code flow with PKCE. See oidc_login.h.
 */
#include "auth/oidc_login.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/oidc.h"
#include "core/json_load.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#define DISCOVERY_MAX_BYTES (256u << 10)
#define TOKEN_RESPONSE_MAX_BYTES (64u << 10)
#define DISCOVERY_RETRY_S 10
#define KEYS_WAIT_MS 2000

struct provider {
    char name[33];
    char label[65];
    char issuer[256];
    char client_id[256];
    char *client_secret; /* NULL: a public client */
    int secret_post;     /* client_secret_post, else client_secret_basic */
    char scope[256];     /* space-separated */
    char redirect_uri[OIDC_LOGIN_URL_MAX + 64];
    int jwks_configured;
    /* Endpoints, under lock (held only to copy). */
    pthread_mutex_t lock;
    int known;
    int discovering;
    int64_t tried_s;
    struct oidc_endpoints ep;
};

struct pending_slot {
    int used;
    char client[64]; /* the starting address; "" when not counted */
    char state[OIDC_LOGIN_RANDOM_LEN];
    char binding[OIDC_LOGIN_RANDOM_LEN];
    struct oidc_pending p;
};

struct oidc_login {
    struct provider prov[OIDC_LOGIN_MAX_PROVIDERS];
    size_t n;
    struct oidc *keys;    /* issuer i = provider i (oidc_add_signin) */
    pthread_mutex_t lock; /* pending table */
    struct pending_slot *slots;
    size_t used;
};

/* ---- small pieces ---------------------------------------------------------- */

static void b64url(const unsigned char *in, size_t n, char out[OIDC_LOGIN_RANDOM_LEN])
{
    sodium_bin2base64(out, OIDC_LOGIN_RANDOM_LEN, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void oidc_random(char out[OIDC_LOGIN_RANDOM_LEN])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    b64url(raw, sizeof(raw), out);
    sodium_memzero(raw, sizeof(raw));
}

void oidc_pkce_challenge(const char *verifier, char out[OIDC_LOGIN_RANDOM_LEN])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)verifier, strlen(verifier));
    b64url(d, sizeof(d), out);
}

static int loopback_host(const char *h, size_t n)
{
    return (n == 9 && strncmp(h, "127.0.0.1", 9) == 0) || (n == 9 && strncasecmp(h, "localhost", 9) == 0) ||
           (n == 5 && strncmp(h, "[::1]", 5) == 0);
}

int oidc_url_acceptable(const char *url)
{
    if (url == NULL || strlen(url) >= OIDC_LOGIN_URL_MAX)
        return 0;
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '"' || *c == '<' || *c == '>' || *c == '\\' || (unsigned char)*c >= 0x7f)
            return 0;
    const char *host;
    if (strncmp(url, "https://", 8) == 0)
        host = url + 8;
    else if (strncmp(url, "http://", 7) == 0)
        host = url + 7;
    else
        return 0;
    size_t hl = strcspn(host, ":/?#");
    if (hl == 0 || memchr(host, '@', strcspn(host, "/?#")) != NULL)
        return 0; /* no host, or credentials in the URL */
    if (host[0] == '[')
        hl = strcspn(host, "]") + 1;
    return url[4] == 's' || loopback_host(host, hl);
}

/* Percent-encode s (RFC 3986 unreserved kept) onto b. */
static int put_encoded(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                   c == '_' || c == '~';
        if (keep ? buf_putc(b, (char)c) != 0
                 : buf_putc(b, '%') != 0 || buf_putc(b, hex[c >> 4]) != 0 || buf_putc(b, hex[c & 15]) != 0)
            return -1;
    }
    return 0;
}

/* ---- parsers of the provider's answers (fuzzed) ---------------------------- */

/* A discovery document may name plain-http loopback endpoints only when its
 * issuer is one itself (a development provider): an https provider's
 * document must not send the code, verifier and client secret in the clear
 * to a service on this host. */
static int copy_url(json_t *doc, const char *name, int required, int https_only, char *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(doc, name);
    out[0] = '\0';
    if (v == NULL && !required)
        return 0;
    const char *s = json_string_value(v);
    if (s == NULL || !oidc_url_acceptable(s) || (https_only && strncmp(s, "https://", 8) != 0)) {
        snprintf(err, errlen, "discovery: %s is missing or not an acceptable URL", name);
        return -1;
    }
    snprintf(out, OIDC_LOGIN_URL_MAX, "%s", s);
    return 0;
}

int oidc_discovery_parse(const char *json, size_t len, const char *issuer, struct oidc_endpoints *out, char *err,
                         size_t errlen)
{
    json_error_t je;
    memset(out, 0, sizeof(*out));
    json_t *doc = json_parse(json, len, JSON_REJECT_DUPLICATES, &je);
    int rc = OIDC_LOGIN_EINVALID;
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "discovery: not a JSON object");
        goto done;
    }
    const char *iss = json_string_value(json_object_get(doc, "issuer"));
    if (iss == NULL || strcmp(iss, issuer) != 0) {
        snprintf(err, errlen, "discovery: issuer does not match the configured issuer");
        goto done;
    }
    int tls = strncmp(issuer, "https://", 8) == 0;
    if (copy_url(doc, "authorization_endpoint", 1, tls, out->authorization, err, errlen) != 0 ||
        copy_url(doc, "token_endpoint", 1, tls, out->token, err, errlen) != 0 ||
        copy_url(doc, "jwks_uri", 0, tls, out->jwks, err, errlen) != 0)
        goto done;
    json_t *methods = json_object_get(doc, "code_challenge_methods_supported");
    if (methods != NULL) {
        int s256 = 0;
        size_t i;
        json_t *m;
        if (!json_is_array(methods)) {
            snprintf(err, errlen, "discovery: code_challenge_methods_supported is not a list");
            goto done;
        }
        json_array_foreach (methods, i, m)
            s256 |= json_is_string(m) && strcmp(json_string_value(m), "S256") == 0;
        if (!s256) {
            snprintf(err, errlen, "discovery: the provider does not support PKCE S256");
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(doc);
    return rc;
}

/* An OAuth error code as sent, cut to a loggable token ([a-z_], 40 chars). */
static void safe_code(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    for (; in != NULL && *in && n + 1 < outlen && n < 40; in++)
        if ((*in >= 'a' && *in <= 'z') || *in == '_')
            out[n++] = *in;
    out[n] = '\0';
}

int oidc_token_response_parse(const char *body, size_t len, char *id_token, size_t idlen, char *err, size_t errlen)
{
    json_error_t je;
    id_token[0] = '\0';
    json_t *doc = json_parse(body, len, JSON_REJECT_DUPLICATES, &je);
    int rc = OIDC_LOGIN_EINVALID;
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "token endpoint: answer is not a JSON object");
        goto done;
    }
    json_t *e = json_object_get(doc, "error");
    if (e != NULL) {
        char code[48];
        safe_code(json_string_value(e), code, sizeof(code));
        snprintf(err, errlen, "token endpoint: error %s", code[0] ? code : "(unnamed)");
        goto done;
    }
    const char *tt = json_string_value(json_object_get(doc, "token_type"));
    if (tt != NULL && strcasecmp(tt, "bearer") != 0) {
        snprintf(err, errlen, "token endpoint: token_type is not Bearer");
        goto done;
    }
    const char *t = json_string_value(json_object_get(doc, "id_token"));
    if (t == NULL || t[0] == '\0') {
        snprintf(err, errlen, "token endpoint: no id_token (is the openid scope granted?)");
        goto done;
    }
    if (strlen(t) >= idlen || strlen(t) > JWT_MAX_TOKEN_LEN) {
        snprintf(err, errlen, "token endpoint: id_token too long");
        goto done;
    }
    snprintf(id_token, idlen, "%s", t);
    rc = 0;
done:
    json_decref(doc);
    return rc;
}

/* ---- configuration --------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '-' || s[n] == '_'))
            return 0;
    return n >= 1 && n <= 32;
}

static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || *s == 0x7f)
            return 0;
    return 1;
}

static int provider_parse(struct oidc_login *l, json_t *d, const char *where, const char *base, char *err,
                          size_t errlen)
{
    static const char *const known[] = {"name",
                                        "label",
                                        "issuer",
                                        "client_id",
                                        "client_secret",
                                        "scopes",
                                        "jwks_url",
                                        "jwks_file",
                                        "authorization_endpoint",
                                        "token_endpoint",
                                        "token_endpoint_auth",
                                        NULL};
    const char *k;
    json_t *v;
    json_object_foreach (d, k, v) {
        int ok = 0;
        for (size_t i = 0; known[i] != NULL; i++)
            ok |= strcmp(known[i], k) == 0;
        if (!ok) {
            snprintf(err, errlen, "%s: unknown member \"%.40s\"", where, k);
            return -1;
        }
    }
    struct provider *p = &l->prov[l->n];
    const char *name = json_string_value(json_object_get(d, "name"));
    if (name == NULL || !name_ok(name)) {
        snprintf(err, errlen, "%s: name must be 1-32 of a-z, 0-9, - and _", where);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->prov[i].name, name) == 0) {
            snprintf(err, errlen, "%s: provider %s is configured twice", where, name);
            return -1;
        }
    const char *label = json_string_value(json_object_get(d, "label"));
    if (json_object_get(d, "label") != NULL && (label == NULL || !text_ok(label, 64))) {
        snprintf(err, errlen, "%s: label must be 1-64 printable characters", where);
        return -1;
    }
    const char *iss = json_string_value(json_object_get(d, "issuer"));
    if (iss == NULL || !oidc_url_acceptable(iss) || strlen(iss) >= sizeof(p->issuer)) {
        snprintf(err, errlen, "%s: issuer must be an https URL (http only on a loopback host)", where);
        return -1;
    }
    const char *cid = json_string_value(json_object_get(d, "client_id"));
    if (cid == NULL || !text_ok(cid, 255)) {
        snprintf(err, errlen, "%s: client_id must be a non-empty string", where);
        return -1;
    }
    json_t *sec = json_object_get(d, "client_secret");
    if (sec != NULL && (!json_is_string(sec) || !text_ok(json_string_value(sec), 1024))) {
        snprintf(err, errlen, "%s: client_secret must be a non-empty string", where);
        return -1;
    }
    const char *auth = json_string_value(json_object_get(d, "token_endpoint_auth"));
    if (json_object_get(d, "token_endpoint_auth") != NULL &&
        (auth == NULL || (strcmp(auth, "client_secret_basic") != 0 && strcmp(auth, "client_secret_post") != 0))) {
        snprintf(err, errlen, "%s: token_endpoint_auth must be client_secret_basic or client_secret_post", where);
        return -1;
    }
    /* Scopes. */
    struct buf sb;
    char scope[256];
    buf_init_fixed(&sb, scope, sizeof(scope));
    json_t *scopes = json_object_get(d, "scopes");
    if (scopes == NULL) {
        buf_puts(&sb, "openid email profile");
    } else {
        int openid = 0;
        size_t i;
        json_t *s;
        if (!json_is_array(scopes) || json_array_size(scopes) == 0 || json_array_size(scopes) > 16) {
            snprintf(err, errlen, "%s: scopes must be a list of 1-16 strings", where);
            return -1;
        }
        json_array_foreach (scopes, i, s) {
            const char *t = json_string_value(s);
            if (t == NULL || !text_ok(t, 64) || strchr(t, ' ') != NULL || strchr(t, '"') != NULL) {
                snprintf(err, errlen, "%s: scopes[%zu] must be a scope name", where, i);
                return -1;
            }
            openid |= strcmp(t, "openid") == 0;
            if ((i > 0 && buf_putc(&sb, ' ') != 0) || buf_puts(&sb, t) != 0) {
                snprintf(err, errlen, "%s: scopes too long", where);
                return -1;
            }
        }
        if (!openid) {
            snprintf(err, errlen, "%s: scopes must include \"openid\"", where);
            return -1;
        }
    }
    /* Endpoints: both or neither. */
    const char *az = json_string_value(json_object_get(d, "authorization_endpoint"));
    const char *tk = json_string_value(json_object_get(d, "token_endpoint"));
    int has_az = json_object_get(d, "authorization_endpoint") != NULL;
    int has_tk = json_object_get(d, "token_endpoint") != NULL;
    if (has_az != has_tk) {
        snprintf(err, errlen, "%s: set both authorization_endpoint and token_endpoint, or neither (discovery)", where);
        return -1;
    }
    if (has_az && (!oidc_url_acceptable(az) || !oidc_url_acceptable(tk))) {
        snprintf(err, errlen, "%s: endpoints must be https URLs (http only on a loopback host)", where);
        return -1;
    }
    const char *ju = json_string_value(json_object_get(d, "jwks_url"));
    const char *jf = json_string_value(json_object_get(d, "jwks_file"));
    if ((json_object_get(d, "jwks_url") != NULL && (ju == NULL || !oidc_url_acceptable(ju))) ||
        (json_object_get(d, "jwks_file") != NULL && (jf == NULL || jf[0] == '\0')) || (ju != NULL && jf != NULL)) {
        snprintf(err, errlen, "%s: set at most one of jwks_url (an https URL) and jwks_file (a path)", where);
        return -1;
    }
    if (has_az && ju == NULL && jf == NULL) {
        snprintf(err, errlen, "%s: with explicit endpoints, set jwks_url or jwks_file too", where);
        return -1;
    }
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->label, sizeof(p->label), "%s", label != NULL ? label : name);
    snprintf(p->issuer, sizeof(p->issuer), "%s", iss);
    snprintf(p->client_id, sizeof(p->client_id), "%s", cid);
    snprintf(p->scope, sizeof(p->scope), "%s", scope);
    snprintf(p->redirect_uri, sizeof(p->redirect_uri), "%s/api/v1/auth/oidc/%s/callback", base, name);
    p->secret_post = auth != NULL && strcmp(auth, "client_secret_post") == 0;
    p->jwks_configured = ju != NULL || jf != NULL;
    pthread_mutex_init(&p->lock, NULL);
    if (sec != NULL && (p->client_secret = strdup(json_string_value(sec))) == NULL) {
        pthread_mutex_destroy(&p->lock);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (has_az) {
        snprintf(p->ep.authorization, sizeof(p->ep.authorization), "%s", az);
        snprintf(p->ep.token, sizeof(p->ep.token), "%s", tk);
        p->known = 1;
    }
    char e2[256];
    if (oidc_add_signin(l->keys, iss, name, cid, ju, jf, e2, sizeof(e2)) != 0) {
        snprintf(err, errlen, "%s: %s", where, e2);
        free(p->client_secret);
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    l->n++;
    return 0;
}

struct oidc_login *oidc_login_new(const struct config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    int listed = cfg->oidc_providers != NULL && cfg->oidc_providers[0] != '\0';
    int based = cfg->oidc_redirect_base != NULL && cfg->oidc_redirect_base[0] != '\0';
    if (!listed) {
        if (based)
            snprintf(err, errlen, "OIDC_REDIRECT_BASE: set OIDC_PROVIDERS too (or unset it)");
        return NULL;
    }
    char base[OIDC_LOGIN_URL_MAX];
    if (!based || !oidc_url_acceptable(cfg->oidc_redirect_base) || strpbrk(cfg->oidc_redirect_base, "?#") != NULL ||
        strlen(cfg->oidc_redirect_base) > 400) {
        snprintf(err, errlen,
                 "OIDC_REDIRECT_BASE: set it to this server's external origin, an https URL such as "
                 "https://clarity.example.com (http only on a loopback host)");
        return NULL;
    }
    snprintf(base, sizeof(base), "%s", cfg->oidc_redirect_base);
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        base[--bl] = '\0';
    struct oidc_login *l = calloc(1, sizeof(*l));
    json_t *list = NULL;
    if (l == NULL || (l->keys = oidc_new_empty()) == NULL ||
        (l->slots = calloc(OIDC_LOGIN_MAX_PENDING, sizeof(*l->slots))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&l->lock, NULL);
    json_error_t je;
    list = json_parse_str(cfg->oidc_providers, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > OIDC_LOGIN_MAX_PROVIDERS) {
        snprintf(err, errlen, "OIDC_PROVIDERS: expected a JSON list of 1-%d provider objects",
                 OIDC_LOGIN_MAX_PROVIDERS);
        goto fail;
    }
    size_t i;
    json_t *d;
    json_array_foreach (list, i, d) {
        char where[48], e2[400];
        snprintf(where, sizeof(where), "OIDC_PROVIDERS[%zu]", i);
        if (!json_is_object(d)) {
            snprintf(err, errlen, "%s: expected an object", where);
            goto fail;
        }
        if (provider_parse(l, d, where, base, e2, sizeof(e2)) != 0) {
            snprintf(err, errlen, "%s", e2);
            goto fail;
        }
    }
    json_decref(list);
    return l;
fail:
    json_decref(list);
    oidc_login_free(l);
    return NULL;
}

void oidc_login_free(struct oidc_login *l)
{
    if (l == NULL)
        return;
    oidc_free(l->keys); /* waits for background key fetches */
    for (size_t i = 0; i < l->n; i++) {
        if (l->prov[i].client_secret != NULL) {
            sodium_memzero(l->prov[i].client_secret, strlen(l->prov[i].client_secret));
            free(l->prov[i].client_secret);
        }
        pthread_mutex_destroy(&l->prov[i].lock);
    }
    if (l->slots != NULL) {
        sodium_memzero(l->slots, OIDC_LOGIN_MAX_PENDING * sizeof(*l->slots));
        pthread_mutex_destroy(&l->lock);
    }
    free(l->slots);
    free(l);
}

void oidc_login_prefetch(struct oidc_login *l, int64_t now_s)
{
    if (l != NULL)
        oidc_prefetch(l->keys, now_s);
}

size_t oidc_login_count(const struct oidc_login *l) { return l != NULL ? l->n : 0; }

int oidc_login_find(const struct oidc_login *l, const char *name)
{
    for (size_t i = 0; l != NULL && name != NULL && i < l->n; i++)
        if (strcmp(l->prov[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *oidc_login_name(const struct oidc_login *l, size_t i) { return i < l->n ? l->prov[i].name : NULL; }
const char *oidc_login_label(const struct oidc_login *l, size_t i) { return i < l->n ? l->prov[i].label : NULL; }

/* ---- HTTP to the provider -------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    return buf_append(b, data, size * n) == 0 ? size * n : 0;
}

/* GET (form NULL) or POST form to url, bounded; never follows redirects.
 * 0 with *status and the body in b, or -1 (transport failure; reason in err). */
static int http_call(const char *url, const char *form, const char *user, const char *password, struct buf *b,
                     long *status, char *err, size_t errlen)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)OIDC_LOGIN_HTTP_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    if (form != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    if (user != NULL) {
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, password);
    }
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* The provider's endpoints into *out: known, or discovered now (no lock held
 * during the call; one discovery at a time per provider; a failure is
 * retried after DISCOVERY_RETRY_S). */
static int endpoints(struct oidc_login *l, size_t i, int64_t now_s, struct oidc_endpoints *out)
{
    struct provider *p = &l->prov[i];
    pthread_mutex_lock(&p->lock);
    int known = p->known;
    int go = !known && !p->discovering && (p->tried_s == 0 || now_s - p->tried_s >= DISCOVERY_RETRY_S);
    if (known)
        *out = p->ep;
    if (go) {
        p->discovering = 1;
        p->tried_s = now_s;
    }
    pthread_mutex_unlock(&p->lock);
    if (known)
        return 0;
    if (!go)
        return OIDC_LOGIN_EUNAVAILABLE;
    char url[OIDC_LOGIN_URL_MAX + 64], err[256] = "";
    snprintf(url, sizeof(url), "%s%s.well-known/openid-configuration", p->issuer,
             p->issuer[strlen(p->issuer) - 1] == '/' ? "" : "/");
    struct buf b;
    buf_init(&b, DISCOVERY_MAX_BYTES);
    long status = 0;
    struct oidc_endpoints ep;
    int rc = http_call(url, NULL, NULL, NULL, &b, &status, err, sizeof(err));
    if (rc == 0 && status != 200) {
        snprintf(err, sizeof(err), "discovery answered HTTP %ld", status);
        rc = -1;
    }
    if (rc == 0)
        rc = oidc_discovery_parse(b.data != NULL ? b.data : "", b.len, p->issuer, &ep, err, sizeof(err));
    buf_free(&b);
    if (rc == 0 && !p->jwks_configured && ep.jwks[0] == '\0') {
        snprintf(err, sizeof(err), "discovery: no jwks_uri and no jwks_url configured");
        rc = -1;
    }
    if (rc != 0)
        log_warning("OIDC provider discovery failed", LOG_STR, "provider", p->name, LOG_STR, "error", err, LOG_END);
    else if (!p->jwks_configured)
        oidc_set_jwks_url(l->keys, i, ep.jwks);
    pthread_mutex_lock(&p->lock);
    p->discovering = 0;
    if (rc == 0) {
        p->ep = ep;
        p->known = 1;
    }
    pthread_mutex_unlock(&p->lock);
    if (rc != 0)
        return OIDC_LOGIN_EUNAVAILABLE;
    oidc_signin_keys_ready(l->keys, i, now_s); /* starts the key fetch now */
    *out = ep;
    return 0;
}

/* ---- the flow -------------------------------------------------------------- */

int oidc_login_begin(struct oidc_login *l, size_t i, const char *client, int64_t now_s, char *url, size_t urllen,
                     char binding[OIDC_LOGIN_RANDOM_LEN])
{
    struct oidc_endpoints ep;
    if (i >= l->n)
        return OIDC_LOGIN_EINVALID;
    int rc = endpoints(l, i, now_s, &ep);
    if (rc != 0)
        return rc;
    oidc_signin_keys_ready(l->keys, i, now_s); /* keys on their way while the person signs in */
    struct pending_slot s;
    memset(&s, 0, sizeof(s));
    s.used = 1;
    oidc_random(s.state);
    oidc_random(s.binding);
    oidc_random(s.p.nonce);
    oidc_random(s.p.verifier);
    s.p.provider = (int)i;
    s.p.created_s = now_s;
    if (client != NULL)
        snprintf(s.client, sizeof(s.client), "%.63s", client);
    char challenge[OIDC_LOGIN_RANDOM_LEN];
    oidc_pkce_challenge(s.p.verifier, challenge);
    const struct provider *p = &l->prov[i];
    struct buf b;
    buf_init_fixed(&b, url, urllen);
    int bad = buf_puts(&b, ep.authorization) != 0 || buf_putc(&b, strchr(ep.authorization, '?') ? '&' : '?') != 0 ||
              buf_puts(&b, "response_type=code&client_id=") != 0 || put_encoded(&b, p->client_id) != 0 ||
              buf_puts(&b, "&redirect_uri=") != 0 || put_encoded(&b, p->redirect_uri) != 0 ||
              buf_puts(&b, "&scope=") != 0 || put_encoded(&b, p->scope) != 0 || buf_puts(&b, "&state=") != 0 ||
              buf_puts(&b, s.state) != 0 || buf_puts(&b, "&nonce=") != 0 || buf_puts(&b, s.p.nonce) != 0 ||
              buf_puts(&b, "&code_challenge=") != 0 || buf_puts(&b, challenge) != 0 ||
              buf_puts(&b, "&code_challenge_method=S256") != 0;
    if (bad) {
        sodium_memzero(&s, sizeof(s));
        return OIDC_LOGIN_ENOMEM; /* cannot happen with the bounded inputs */
    }
    /* Record it: a free or expired slot, unless this client has its share
     * in flight already. */
    rc = OIDC_LOGIN_EBUSY;
    struct pending_slot *free_slot = NULL;
    int mine = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t k = 0; k < OIDC_LOGIN_MAX_PENDING; k++) {
        struct pending_slot *t = &l->slots[k];
        int live = t->used && now_s - t->p.created_s < OIDC_LOGIN_TTL_S;
        if (!live && free_slot == NULL)
            free_slot = t;
        else if (live && s.client[0] != '\0' && strcmp(t->client, s.client) == 0)
            mine++;
    }
    if (free_slot != NULL && mine < OIDC_LOGIN_MAX_PER_CLIENT) {
        if (!free_slot->used)
            l->used++;
        *free_slot = s;
        rc = 0;
    }
    pthread_mutex_unlock(&l->lock);
    if (rc == 0)
        memcpy(binding, s.binding, OIDC_LOGIN_RANDOM_LEN);
    sodium_memzero(&s, sizeof(s));
    return rc;
}

int oidc_login_take(struct oidc_login *l, const char *state, const char *binding, int64_t now_s,
                    struct oidc_pending *out)
{
    if (l == NULL || state == NULL || strlen(state) != OIDC_LOGIN_RANDOM_LEN - 1)
        return OIDC_LOGIN_EINVALID;
    int rc = OIDC_LOGIN_EINVALID;
    pthread_mutex_lock(&l->lock);
    for (size_t k = 0; k < OIDC_LOGIN_MAX_PENDING; k++) {
        struct pending_slot *t = &l->slots[k];
        if (!t->used || sodium_memcmp(t->state, state, OIDC_LOGIN_RANDOM_LEN - 1) != 0)
            continue;
        int fresh = now_s - t->p.created_s < OIDC_LOGIN_TTL_S && now_s >= t->p.created_s;
        int bound = binding != NULL && strlen(binding) == OIDC_LOGIN_RANDOM_LEN - 1 &&
                    sodium_memcmp(t->binding, binding, OIDC_LOGIN_RANDOM_LEN - 1) == 0;
        if (fresh && bound) {
            *out = t->p;
            rc = 0;
        }
        sodium_memzero(t, sizeof(*t)); /* one try, whatever its outcome */
        l->used--;
        break;
    }
    pthread_mutex_unlock(&l->lock);
    return rc;
}

size_t oidc_login_pending(struct oidc_login *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = l->used;
    pthread_mutex_unlock(&l->lock);
    return n;
}

int oidc_login_exchange(struct oidc_login *l, size_t i, const char *code, const char *verifier, char *id_token,
                        size_t idlen, char *err, size_t errlen)
{
    struct oidc_endpoints ep;
    id_token[0] = '\0';
    if (i >= l->n || endpoints(l, i, 0, &ep) != 0) {
        snprintf(err, errlen, "provider endpoints unknown");
        return OIDC_LOGIN_EUNAVAILABLE;
    }
    const struct provider *p = &l->prov[i];
    struct buf form;
    buf_init(&form, 16384);
    int bad = buf_puts(&form, "grant_type=authorization_code&code=") != 0 || put_encoded(&form, code) != 0 ||
              buf_puts(&form, "&redirect_uri=") != 0 || put_encoded(&form, p->redirect_uri) != 0 ||
              buf_puts(&form, "&code_verifier=") != 0 || buf_puts(&form, verifier) != 0;
    int basic = p->client_secret != NULL && !p->secret_post;
    if (!basic)
        bad |= buf_puts(&form, "&client_id=") != 0 || put_encoded(&form, p->client_id) != 0;
    if (p->client_secret != NULL && p->secret_post)
        bad |= buf_puts(&form, "&client_secret=") != 0 || put_encoded(&form, p->client_secret) != 0;
    if (bad) {
        buf_free(&form);
        snprintf(err, errlen, "authorization code too long");
        return OIDC_LOGIN_EINVALID;
    }
    /* client_secret_basic: the id and secret form-encoded, then Basic
     * (RFC 6749 §2.3.1). */
    char user[800] = "", pass[3200] = "";
    if (basic) {
        struct buf u, s;
        buf_init_fixed(&u, user, sizeof(user));
        buf_init_fixed(&s, pass, sizeof(pass));
        put_encoded(&u, p->client_id);
        put_encoded(&s, p->client_secret);
    }
    struct buf b;
    buf_init(&b, TOKEN_RESPONSE_MAX_BYTES);
    long status = 0;
    int rc = http_call(ep.token, form.data, basic ? user : NULL, basic ? pass : NULL, &b, &status, err, errlen);
    sodium_memzero(form.data, form.len);
    sodium_memzero(pass, sizeof(pass));
    buf_free(&form);
    if (rc != 0) {
        rc = OIDC_LOGIN_EUNAVAILABLE;
    } else {
        rc = oidc_token_response_parse(b.data != NULL ? b.data : "", b.len, id_token, idlen, err, errlen);
        if (status >= 500 || (status != 200 && status < 400)) {
            snprintf(err, errlen, "token endpoint answered HTTP %ld", status);
            rc = OIDC_LOGIN_EUNAVAILABLE;
        } else if (status != 200 && rc == 0) {
            rc = OIDC_LOGIN_EINVALID;
            snprintf(err, errlen, "token endpoint answered HTTP %ld", status);
        } else if (status == 200 && rc != 0 && strstr(err, ": error ") == NULL) {
            rc = OIDC_LOGIN_EUNAVAILABLE; /* a 200 we cannot use: the provider's fault */
        }
    }
    if (rc != 0)
        sodium_memzero(id_token, idlen);
    if (b.data != NULL)
        sodium_memzero(b.data, b.len);
    buf_free(&b);
    return rc;
}

int oidc_login_verify(struct oidc_login *l, size_t i, const char *id_token, const char *nonce, int64_t now_s,
                      struct jwt_claims *out, char *err, size_t errlen)
{
    if (i >= l->n) {
        snprintf(err, errlen, "no such provider");
        return TOKEN_EINVALID;
    }
    /* Keys may still be on their way (fetched in the background since the
     * flow began): wait a little, holding nothing. */
    for (int waited = 0; !oidc_signin_keys_ready(l->keys, i, now_s) && waited < KEYS_WAIT_MS; waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    int rc = oidc_verify_signin(l->keys, i, id_token, now_s, out, err, errlen);
    if (rc != 0)
        return rc;
    if (out->nonce[0] == '\0' || strlen(out->nonce) != strlen(nonce) ||
        sodium_memcmp(out->nonce, nonce, strlen(nonce)) != 0) {
        snprintf(err, errlen, "wrong nonce");
        return TOKEN_EINVALID;
    }
    return 0;
}
