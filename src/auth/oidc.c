/*
 * oidc.c — external issuers and their key caches. See oidc.h.
 */
#include "auth/oidc.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json_load.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

#define REFETCH_MIN_S 60
#define RETRY_MISSING_S 5
#define DEFAULT_MAX_AGE_S 3600
#define JWKS_MAX_BYTES (1u << 20)
#define MAX_NAMES 16

struct oidc;

struct issuer {
    struct oidc *owner;
    char iss[256];
    char name[64];
    char *aud[MAX_NAMES];
    size_t naud;
    char *cid[MAX_NAMES];
    size_t ncid;
    int accept_id, accept_access;
    int signin_only; /* a sign-in provider's issuer (oidc_add_signin): never a bearer */
    char *url;       /* NULL when keys come from a file (or not yet discovered) */

    /* keys is read under keys_lock (held only while verifying or swapping
     * the pointer, never across the network). */
    pthread_rwlock_t keys_lock;
    struct jwt_keyset *keys;
    /* Refresh state under state_lock (held for a few instructions). */
    pthread_mutex_t state_lock;
    int fetching;
    int64_t fetched_s; /* last attempt */
    int64_t expires_s;
};

struct oidc {
    struct issuer *iss[OIDC_MAX_ISSUERS];
    size_t n;
    /* Background fetches in flight; oidc_free waits for them. */
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;
};

struct fetch_job {
    struct oidc *o;
    struct issuer *is;
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

/* Fetch a key set (bounded by OIDC_FETCH_TIMEOUT_S). NULL on failure (logged). */
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
    curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)OIDC_FETCH_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        log_warning("cannot fetch identity provider keys", LOG_STR, "error", curl_easy_strerror(rc), LOG_INT, "status",
                    (long long)code, LOG_END);
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

static void issuer_free(struct issuer *is)
{
    if (is == NULL)
        return;
    jwt_keyset_free(is->keys);
    for (size_t i = 0; i < is->naud; i++)
        free(is->aud[i]);
    for (size_t i = 0; i < is->ncid; i++)
        free(is->cid[i]);
    free(is->url);
    pthread_rwlock_destroy(&is->keys_lock);
    pthread_mutex_destroy(&is->state_lock);
    free(is);
}

static struct jwt_keyset *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    struct buf b;
    buf_init(&b, JWKS_MAX_BYTES);
    char chunk[4096];
    size_t n;
    int over = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) != 0) {
            over = 1;
            break;
        }
    fclose(f);
    struct jwt_keyset *ks = NULL;
    if (over)
        snprintf(err, errlen, "%s is larger than 1 MiB", path);
    else
        ks = jwt_keyset_parse(b.data != NULL ? b.data : "", b.len, err, errlen);
    buf_free(&b);
    return ks;
}

static int names_of(json_t *list, const char *what, char **out, size_t *n, char *err, size_t errlen)
{
    *n = 0;
    if (list == NULL)
        return 0;
    if (!json_is_array(list) || json_array_size(list) > MAX_NAMES) {
        snprintf(err, errlen, "%s: expected a list of at most %d strings", what, MAX_NAMES);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *s = json_string_value(v);
        if (s == NULL || s[0] == '\0' || strlen(s) > 255) {
            snprintf(err, errlen, "%s[%zu]: expected a non-empty string", what, i);
            return -1;
        }
        if ((out[(*n)++] = strdup(s)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* One issuer from its JSON description (OIDC_ISSUERS item or the Firebase
 * mapping). Reads a key file now; a URL is fetched on first use. */
static struct issuer *issuer_new(json_t *d, const char *where, char *err, size_t errlen)
{
    char e2[200] = "";
    struct issuer *is = calloc(1, sizeof(*is));
    if (is == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_rwlock_init(&is->keys_lock, NULL);
    pthread_mutex_init(&is->state_lock, NULL);
    static const char *const known[] = {"issuer",    "audiences",  "client_ids", "jwks_url",
                                        "jwks_file", "token_uses", "name",       NULL};
    const char *k;
    json_t *v;
    json_object_foreach (d, k, v) {
        int ok = 0;
        for (size_t i = 0; known[i] != NULL; i++)
            ok |= strcmp(known[i], k) == 0;
        if (!ok) {
            snprintf(err, errlen, "%s: unknown member \"%.40s\"", where, k);
            goto fail;
        }
    }
    const char *iss = json_string_value(json_object_get(d, "issuer"));
    if (iss == NULL || strncmp(iss, "https://", 8) != 0 || strlen(iss) >= sizeof(is->iss)) {
        snprintf(err, errlen, "%s: issuer must be an https URL", where);
        goto fail;
    }
    snprintf(is->iss, sizeof(is->iss), "%s", iss);
    if (names_of(json_object_get(d, "audiences"), "audiences", is->aud, &is->naud, e2, sizeof(e2)) != 0 ||
        names_of(json_object_get(d, "client_ids"), "client_ids", is->cid, &is->ncid, e2, sizeof(e2)) != 0) {
        snprintf(err, errlen, "%s: %s", where, e2);
        goto fail;
    }
    if (is->naud + is->ncid == 0) {
        snprintf(err, errlen, "%s: set audiences or client_ids (a token for any audience is refused)", where);
        goto fail;
    }
    json_t *uses = json_object_get(d, "token_uses");
    if (uses == NULL)
        is->accept_id = 1;
    else if (!json_is_array(uses) || json_array_size(uses) == 0) {
        snprintf(err, errlen, "%s: token_uses must be a list of \"id\" and/or \"access\"", where);
        goto fail;
    } else {
        size_t i;
        json_array_foreach (uses, i, v) {
            const char *u = json_string_value(v);
            if (u != NULL && strcmp(u, "id") == 0)
                is->accept_id = 1;
            else if (u != NULL && strcmp(u, "access") == 0)
                is->accept_access = 1;
            else {
                snprintf(err, errlen, "%s: token_uses must be a list of \"id\" and/or \"access\"", where);
                goto fail;
            }
        }
    }
    if (is->accept_access && is->ncid == 0) {
        snprintf(err, errlen, "%s: access tokens need client_ids", where);
        goto fail;
    }
    const char *name = json_string_value(json_object_get(d, "name"));
    if (name == NULL)
        name = strstr(iss, "securetoken.google.com") != NULL ? "firebase"
               : strstr(iss, "cognito-idp.") != NULL         ? "cognito"
                                                             : "oidc";
    snprintf(is->name, sizeof(is->name), "%.63s", name);
    const char *url = json_string_value(json_object_get(d, "jwks_url"));
    const char *file = json_string_value(json_object_get(d, "jwks_file"));
    if ((url == NULL) == (file == NULL)) {
        snprintf(err, errlen, "%s: set exactly one of jwks_url and jwks_file", where);
        goto fail;
    }
    if (file != NULL) {
        is->keys = read_file(file, e2, sizeof(e2));
        if (is->keys == NULL) {
            snprintf(err, errlen, "%s: jwks_file: %s", where, e2);
            goto fail;
        }
        is->expires_s = INT64_MAX;
    } else {
        if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
            snprintf(err, errlen, "%s: jwks_url must be an http(s) URL", where);
            goto fail;
        }
        if ((is->url = strdup(url)) == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    return is;
fail:
    issuer_free(is);
    return NULL;
}

static int add(struct oidc *o, json_t *d, const char *where, char *err, size_t errlen)
{
    if (o->n == OIDC_MAX_ISSUERS) {
        snprintf(err, errlen, "OIDC_ISSUERS: at most %d issuers", OIDC_MAX_ISSUERS);
        return -1;
    }
    struct issuer *is = issuer_new(d, where, err, errlen);
    if (is == NULL)
        return -1;
    for (size_t i = 0; i < o->n; i++)
        if (!o->iss[i]->signin_only && strcmp(o->iss[i]->iss, is->iss) == 0) {
            snprintf(err, errlen, "%s: issuer %.80s is configured twice", where, is->iss);
            issuer_free(is);
            return -1;
        }
    is->owner = o;
    o->iss[o->n++] = is;
    return 0;
}

struct oidc *oidc_new(const struct config *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    int firebase = cfg->firebase_project_id != NULL && cfg->firebase_project_id[0] != '\0';
    int listed = cfg->oidc_issuers != NULL && cfg->oidc_issuers[0] != '\0';
    if (!firebase && !listed) {
        if (cfg->oidc_jwks_file != NULL || cfg->oidc_jwks_url != NULL)
            snprintf(err, errlen, "OIDC_JWKS_FILE / OIDC_JWKS_URL: set FIREBASE_PROJECT_ID too (or use OIDC_ISSUERS)");
        return NULL;
    }
    struct oidc *o = calloc(1, sizeof(*o));
    json_t *list = NULL, *fb = NULL;
    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->idle, NULL);
    if (firebase) {
        if (cfg->oidc_jwks_file != NULL && cfg->oidc_jwks_url != NULL) {
            snprintf(err, errlen, "OIDC_JWKS_FILE / OIDC_JWKS_URL: set at most one");
            goto fail;
        }
        char iss[300];
        snprintf(iss, sizeof(iss), "https://securetoken.google.com/%s", cfg->firebase_project_id);
        fb = json_pack("{s:s, s:[s], s:s, s:s}", "issuer", iss, "audiences", cfg->firebase_project_id, "name",
                       "firebase", cfg->oidc_jwks_file != NULL ? "jwks_file" : "jwks_url",
                       cfg->oidc_jwks_file != NULL  ? cfg->oidc_jwks_file
                       : cfg->oidc_jwks_url != NULL ? cfg->oidc_jwks_url
                                                    : OIDC_DEFAULT_FIREBASE_JWKS_URL);
        if (fb == NULL) {
            snprintf(err, errlen, "FIREBASE_PROJECT_ID: not a usable project id");
            goto fail;
        }
        char e2[300];
        if (add(o, fb, "FIREBASE_PROJECT_ID", e2, sizeof(e2)) != 0) {
            snprintf(err, errlen, "%s", e2);
            goto fail;
        }
    } else if (cfg->oidc_jwks_file != NULL || cfg->oidc_jwks_url != NULL) {
        snprintf(err, errlen,
                 "OIDC_JWKS_FILE / OIDC_JWKS_URL: only with FIREBASE_PROJECT_ID (OIDC_ISSUERS "
                 "names its own key sources)");
        goto fail;
    }
    if (listed) {
        json_error_t je;
        list = json_parse_str(cfg->oidc_issuers, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_array(list) || json_array_size(list) == 0) {
            snprintf(err, errlen, "OIDC_ISSUERS: expected a non-empty JSON list of issuer objects");
            goto fail;
        }
        size_t i;
        json_t *d;
        json_array_foreach (list, i, d) {
            char where[48], e2[300];
            snprintf(where, sizeof(where), "OIDC_ISSUERS[%zu]", i);
            if (!json_is_object(d)) {
                snprintf(err, errlen, "%s: expected an object", where);
                goto fail;
            }
            if (add(o, d, where, e2, sizeof(e2)) != 0) {
                snprintf(err, errlen, "%s", e2);
                goto fail;
            }
        }
    }
    json_decref(list);
    json_decref(fb);
    return o;
fail:
    json_decref(list);
    json_decref(fb);
    oidc_free(o);
    return NULL;
}

void oidc_free(struct oidc *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->lock);
    while (o->active > 0)
        pthread_cond_wait(&o->idle, &o->lock); /* bounded by OIDC_FETCH_TIMEOUT_S */
    pthread_mutex_unlock(&o->lock);
    for (size_t i = 0; i < o->n; i++)
        issuer_free(o->iss[i]);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->idle);
    free(o);
}

size_t oidc_issuer_count(const struct oidc *o) { return o != NULL ? o->n : 0; }

static struct issuer *find(struct oidc *o, const char *token)
{
    char iss[256];
    if (o == NULL || jwt_peek_iss(token, iss, sizeof(iss)) != 0)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (!o->iss[i]->signin_only && strcmp(o->iss[i]->iss, iss) == 0)
            return o->iss[i];
    return NULL;
}

int oidc_owns(struct oidc *o, const char *token, int64_t now_s)
{
    (void)now_s;
    return find(o, token) != NULL;
}

/* The fetch itself, on its own thread: no request thread ever waits on the
 * network (libmicrohttpd binds connections to threads, so one blocked
 * request thread would stall every connection it holds). */
static void *fetch_main(void *arg)
{
    struct fetch_job *job = arg;
    struct issuer *is = job->is;
    struct oidc *o = job->o;
    free(job);
    int64_t max_age = DEFAULT_MAX_AGE_S;
    struct jwt_keyset *ks = fetch(is->url, &max_age);
    struct jwt_keyset *old = NULL;
    if (ks != NULL) {
        pthread_rwlock_wrlock(&is->keys_lock);
        old = is->keys;
        is->keys = ks;
        pthread_rwlock_unlock(&is->keys_lock);
    }
    pthread_mutex_lock(&is->state_lock);
    if (ks != NULL)
        is->expires_s = is->fetched_s + (max_age > 0 ? max_age : DEFAULT_MAX_AGE_S);
    is->fetching = 0;
    pthread_mutex_unlock(&is->state_lock);
    jwt_keyset_free(old);
    pthread_mutex_lock(&o->lock);
    if (--o->active == 0)
        pthread_cond_broadcast(&o->idle);
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

/*
 * Single-flight refresh: the caller that finds a refresh due takes the
 * `fetching` flag and starts the fetch on a thread of its own; every caller,
 * that one included, goes on at once with the keys there are (stale, or none:
 * then the token is refused with 401 and the client retries). Missing or
 * expired keys are retried every RETRY_MISSING_S; an unknown kid at most
 * every REFETCH_MIN_S.
 */
static void maybe_refresh(struct issuer *is, int64_t now_s, int unknown_kid)
{
    pthread_mutex_lock(&is->state_lock);
    if (is->url == NULL) { /* keys from a file, or a URL not yet discovered */
        pthread_mutex_unlock(&is->state_lock);
        return;
    }
    int64_t since = now_s - is->fetched_s;
    int missing = is->expires_s == 0 || now_s >= is->expires_s;
    int due = !is->fetching && ((missing && since >= RETRY_MISSING_S) || (unknown_kid && since >= REFETCH_MIN_S));
    if (due) {
        is->fetching = 1;
        is->fetched_s = now_s;
    }
    pthread_mutex_unlock(&is->state_lock);
    if (!due)
        return;
    struct fetch_job *job = malloc(sizeof(*job));
    pthread_attr_t attr;
    pthread_t t;
    int started = 0;
    if (job != NULL && pthread_attr_init(&attr) == 0) {
        job->o = is->owner;
        job->is = is;
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&is->owner->lock);
        is->owner->active++;
        pthread_mutex_unlock(&is->owner->lock);
        started = pthread_create(&t, &attr, fetch_main, job) == 0;
        pthread_attr_destroy(&attr);
        if (!started) {
            pthread_mutex_lock(&is->owner->lock);
            is->owner->active--;
            pthread_mutex_unlock(&is->owner->lock);
        }
    }
    if (!started) {
        free(job);
        pthread_mutex_lock(&is->state_lock);
        is->fetching = 0;
        pthread_mutex_unlock(&is->state_lock);
    }
}

void oidc_prefetch(struct oidc *o, int64_t now_s)
{
    for (size_t i = 0; o != NULL && i < o->n; i++)
        maybe_refresh(o->iss[i], now_s, 0);
}

int oidc_verify(struct oidc *o, const char *token, int64_t now_s, struct jwt_claims *out, char *provider, char *err,
                size_t errlen)
{
    struct issuer *is = find(o, token);
    if (is == NULL) {
        snprintf(err, errlen, "issuer not accepted");
        return TOKEN_EINVALID;
    }
    char kid[128];
    if (jwt_peek_kid(token, kid, sizeof(kid)) != 0) {
        snprintf(err, errlen, "token without a key id");
        return TOKEN_EINVALID;
    }
    pthread_rwlock_rdlock(&is->keys_lock);
    int known = is->keys != NULL && jwt_keyset_has_kid(is->keys, kid);
    pthread_rwlock_unlock(&is->keys_lock);
    pthread_mutex_lock(&is->state_lock);
    int stale = now_s >= is->expires_s;
    pthread_mutex_unlock(&is->state_lock);
    if (!known || stale)
        maybe_refresh(is, now_s, !known);

    const char *const *aud = (const char *const *)is->aud;
    const char *const *cid = (const char *const *)is->cid;
    struct jwt_audience rule = {aud, is->naud, cid, is->ncid};
    pthread_rwlock_rdlock(&is->keys_lock);
    int rc = TOKEN_EUNAVAILABLE;
    if (is->keys == NULL)
        snprintf(err, errlen, "identity provider keys unavailable");
    else
        rc = jwt_verify_external_rule(is->keys, token, is->iss, &rule, now_s, out, err, errlen);
    pthread_rwlock_unlock(&is->keys_lock);
    if (rc != 0)
        return rc; /* TOKEN_EINVALID, or the server's TOKEN_ENOMEM / TOKEN_EUNAVAILABLE */
    /* Token use (Cognito's token_use; other providers' ID tokens have none). */
    int access = strcmp(out->token_use, "access") == 0;
    if (out->token_use[0] != '\0' && !access && strcmp(out->token_use, "id") != 0) {
        snprintf(err, errlen, "token use not accepted");
        return TOKEN_EINVALID;
    }
    if ((access && !is->accept_access) || (!access && !is->accept_id)) {
        snprintf(err, errlen, "token use not accepted");
        return TOKEN_EINVALID;
    }
    /* An access token is bound to the client by client_id, and must carry one
     * of ours even when it also names an audience. */
    if (access) {
        int ok = 0;
        for (size_t i = 0; i < is->ncid; i++)
            ok |= strcmp(out->client_id, is->cid[i]) == 0;
        if (!ok) {
            snprintf(err, errlen, "wrong client id");
            return TOKEN_EINVALID;
        }
    }
    if (provider != NULL)
        snprintf(provider, 64, "%s", is->name);
    return 0;
}

/* ---- sign-in providers' issuers (auth/oidc_login.h) ----------------------- */

struct oidc *oidc_new_empty(void)
{
    struct oidc *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->idle, NULL);
    return o;
}

int oidc_add_signin(struct oidc *o, const char *iss, const char *name, const char *client_id, const char *jwks_url,
                    const char *jwks_file, char *err, size_t errlen)
{
    if (o->n == OIDC_MAX_ISSUERS) {
        snprintf(err, errlen, "at most %d providers", OIDC_MAX_ISSUERS);
        return -1;
    }
    struct issuer *is = calloc(1, sizeof(*is));
    if (is == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_rwlock_init(&is->keys_lock, NULL);
    pthread_mutex_init(&is->state_lock, NULL);
    is->signin_only = 1;
    is->accept_id = 1;
    snprintf(is->iss, sizeof(is->iss), "%.255s", iss);
    snprintf(is->name, sizeof(is->name), "%.63s", name);
    char e2[200];
    if ((is->aud[0] = strdup(client_id)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    is->naud = 1;
    if (jwks_file != NULL) {
        if ((is->keys = read_file(jwks_file, e2, sizeof(e2))) == NULL) {
            snprintf(err, errlen, "jwks_file: %s", e2);
            goto fail;
        }
        is->expires_s = INT64_MAX;
    } else if (jwks_url != NULL && (is->url = strdup(jwks_url)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    is->owner = o;
    o->iss[o->n++] = is;
    return 0;
fail:
    issuer_free(is);
    return -1;
}

void oidc_set_jwks_url(struct oidc *o, size_t index, const char *url)
{
    if (o == NULL || index >= o->n)
        return;
    struct issuer *is = o->iss[index];
    char *copy = strdup(url);
    pthread_mutex_lock(&is->state_lock);
    if (is->url == NULL && is->keys == NULL && copy != NULL) {
        is->url = copy; /* set once; freed with the issuer */
        copy = NULL;
    }
    pthread_mutex_unlock(&is->state_lock);
    free(copy);
}

int oidc_verify_signin(struct oidc *o, size_t index, const char *token, int64_t now_s, struct jwt_claims *out,
                       char *err, size_t errlen)
{
    if (o == NULL || index >= o->n || !o->iss[index]->signin_only) {
        snprintf(err, errlen, "no such provider");
        return TOKEN_EINVALID;
    }
    struct issuer *is = o->iss[index];
    char kid[128];
    if (jwt_peek_kid(token, kid, sizeof(kid)) != 0) {
        snprintf(err, errlen, "token without a key id");
        return TOKEN_EINVALID;
    }
    pthread_rwlock_rdlock(&is->keys_lock);
    int known = is->keys != NULL && jwt_keyset_has_kid(is->keys, kid);
    pthread_rwlock_unlock(&is->keys_lock);
    pthread_mutex_lock(&is->state_lock);
    int stale = now_s >= is->expires_s;
    pthread_mutex_unlock(&is->state_lock);
    if (!known || stale)
        maybe_refresh(is, now_s, !known);
    /* The audience is exactly this client (OIDC Core §3.1.3.7 item 3). */
    const char *const *aud = (const char *const *)is->aud;
    struct jwt_audience rule = {aud, 1, NULL, 0};
    pthread_rwlock_rdlock(&is->keys_lock);
    int rc = TOKEN_EUNAVAILABLE;
    if (is->keys == NULL)
        snprintf(err, errlen, "identity provider keys unavailable");
    else
        rc = jwt_verify_external_rule(is->keys, token, is->iss, &rule, now_s, out, err, errlen);
    pthread_rwlock_unlock(&is->keys_lock);
    /* azp, when present, is this client; with several audiences it must be
     * present (OIDC Core §3.1.3.7 items 4 and 5). */
    if (rc == 0 && (out->signin_oversized || (out->azp[0] != '\0' && strcmp(out->azp, is->aud[0]) != 0) ||
                    (out->aud_n > 1 && out->azp[0] == '\0'))) {
        snprintf(err, errlen, "wrong or missing authorized party");
        rc = TOKEN_EINVALID;
    }
    return rc;
}

int oidc_signin_keys_ready(struct oidc *o, size_t index, int64_t now_s)
{
    if (o == NULL || index >= o->n)
        return 0;
    struct issuer *is = o->iss[index];
    pthread_rwlock_rdlock(&is->keys_lock);
    int ready = is->keys != NULL;
    pthread_rwlock_unlock(&is->keys_lock);
    if (!ready)
        maybe_refresh(is, now_s, 0);
    return ready;
}
