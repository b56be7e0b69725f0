/*
 * oidc.c — provider key cache. See oidc.h.
 */
#include "auth/oidc.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/log.h"

#define REFETCH_MIN_S 60
#define DEFAULT_MAX_AGE_S 3600
#define JWKS_MAX_BYTES (1u << 20)

struct oidc {
    pthread_rwlock_t lock;
    struct jwt_keyset *keys; /* guarded by lock */
    char iss[256];
    char aud[256];
    char *url;               /* NULL when keys come from a file */
    int64_t fetched_s;
    int64_t expires_s;
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    return buf_append(b, data, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    int64_t *max_age = ctx;
    size_t len = size * n;
    char line[256];
    snprintf(line, sizeof(line), "%.*s", (int)(len < 255 ? len : 255), data);
    if (strncasecmp(line, "cache-control:", 14) == 0) {
        const char *m = strstr(line, "max-age=");
        if (m != NULL)
            *max_age = strtoll(m + 8, NULL, 10);
    }
    return len;
}

/* Fetch the key set over HTTPS. Returns a new set or NULL (reason logged). */
static struct jwt_keyset *fetch(const char *url, int64_t *max_age)
{
    struct buf b;
    buf_init(&b, JWKS_MAX_BYTES);
    struct jwt_keyset *ks = NULL;
    CURL *c = curl_easy_init();
    if (c == NULL)
        goto done;
    *max_age = DEFAULT_MAX_AGE_S;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, max_age);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        log_warning("cannot fetch identity provider keys", LOG_STR, "error", curl_easy_strerror(rc), LOG_INT,
                    "status", (long long)code, LOG_END);
        goto done;
    }
    char err[256];
    ks = jwt_keyset_parse(b.data != NULL ? b.data : "", b.len, err, sizeof(err));
    if (ks == NULL)
        log_warning("identity provider keys rejected", LOG_STR, "error", err, LOG_END);
done:
    curl_easy_cleanup(c);
    buf_free(&b);
    return ks;
}

struct oidc *oidc_new(const struct config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    if (cfg->firebase_project_id == NULL || cfg->firebase_project_id[0] == '\0')
        return NULL;
    if ((cfg->oidc_jwks_file == NULL) == (cfg->oidc_jwks_url == NULL)) {
        snprintf(err, errlen, "OIDC_JWKS_FILE / OIDC_JWKS_URL: set exactly one when FIREBASE_PROJECT_ID is set");
        return NULL;
    }
    struct oidc *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_rwlock_init(&o->lock, NULL);
    snprintf(o->iss, sizeof(o->iss), "https://securetoken.google.com/%s", cfg->firebase_project_id);
    snprintf(o->aud, sizeof(o->aud), "%s", cfg->firebase_project_id);
    if (cfg->oidc_jwks_file != NULL) {
        FILE *f = fopen(cfg->oidc_jwks_file, "r");
        struct buf b;
        buf_init(&b, JWKS_MAX_BYTES);
        char chunk[4096];
        size_t n;
        while (f != NULL && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            if (buf_append(&b, chunk, n) != 0)
                break;
        if (f != NULL)
            fclose(f);
        o->keys = f != NULL ? jwt_keyset_parse(b.data != NULL ? b.data : "", b.len, err, errlen) : NULL;
        if (f == NULL)
            snprintf(err, errlen, "OIDC_JWKS_FILE: cannot read %s", cfg->oidc_jwks_file);
        buf_free(&b);
        if (o->keys == NULL) {
            oidc_free(o);
            return NULL;
        }
        o->expires_s = INT64_MAX;
    } else {
        o->url = strdup(cfg->oidc_jwks_url);
        if (o->url == NULL) {
            oidc_free(o);
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        /* Keys are fetched on first use, so start-up never waits on the
         * provider's network. */
    }
    return o;
}

void oidc_free(struct oidc *o)
{
    if (o == NULL)
        return;
    jwt_keyset_free(o->keys);
    free(o->url);
    pthread_rwlock_destroy(&o->lock);
    free(o);
}

/*
 * Refresh from the URL when allowed now. Missing or expired keys are fetched
 * again at most once a second; an unknown kid triggers a fetch at most once
 * every REFETCH_MIN_S. Called without the lock held.
 */
static void maybe_refresh(struct oidc *o, int64_t now_s, int unknown_kid)
{
    if (o->url == NULL)
        return;
    pthread_rwlock_wrlock(&o->lock);
    int64_t since = now_s - o->fetched_s;
    int missing = o->keys == NULL || now_s >= o->expires_s;
    if ((missing && since >= 1) || (unknown_kid && since >= REFETCH_MIN_S)) {
        int64_t max_age = DEFAULT_MAX_AGE_S;
        struct jwt_keyset *ks = fetch(o->url, &max_age);
        o->fetched_s = now_s;
        if (ks != NULL) {
            jwt_keyset_free(o->keys);
            o->keys = ks;
            o->expires_s = now_s + (max_age > 0 ? max_age : DEFAULT_MAX_AGE_S);
        }
    }
    pthread_rwlock_unlock(&o->lock);
}

int oidc_owns(struct oidc *o, const char *token, int64_t now_s)
{
    char kid[128];
    if (o == NULL || jwt_peek_kid(token, kid, sizeof(kid)) != 0)
        return 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_rwlock_rdlock(&o->lock);
        int known = o->keys != NULL && jwt_keyset_has_kid(o->keys, kid);
        int stale = o->keys == NULL || now_s >= o->expires_s;
        pthread_rwlock_unlock(&o->lock);
        if (known && !stale)
            return 1;
        if (attempt == 0)
            maybe_refresh(o, now_s, !known);
        else
            return known;
    }
    return 0;
}

int oidc_verify(struct oidc *o, const char *token, int64_t now_s, struct jwt_claims *out, char *err,
                size_t errlen)
{
    pthread_rwlock_rdlock(&o->lock);
    int rc = o->keys != NULL ? jwt_verify_external(o->keys, token, o->iss, o->aud, now_s, out, err, errlen) : -1;
    if (o->keys == NULL)
        snprintf(err, errlen, "identity provider keys unavailable");
    pthread_rwlock_unlock(&o->lock);
    return rc;
}
