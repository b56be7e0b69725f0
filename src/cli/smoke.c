/*
 * smoke.c — `clarity smoke`: checks a deployed server the way a client would.
 *
 * Checks, in order (each one a row of the JSON report, see smoke.h):
 *
 *   liveness          GET /liveness  → 200 {"status":"alive"}
 *   readiness         GET /readiness → 200 {"status":"ready"}
 *   health            GET /health    → 200 {"status":"healthy"} and every entry
 *                     of "checks" healthy (docs/api.md)
 *   security_headers  the headers every response carries (OWASP secure
 *                     headers) and the echo of a client X-Request-ID
 *   auth_round_trip   with --register: register a throw-away account, log in,
 *                     GET /api/v1/auth/me; with --token: GET /me
 *   healthkit_upload  (not --read-only) a one-sample HealthKit upload that must
 *                     reach "completed" within --wait seconds
 *   insight           (not --read-only) the caller's insight history is not
 *                     empty after the upload
 *   cleanup           the data the smoke test wrote is deleted
 *
 * The last four follow the API contract (shared/design/API.md). When the
 * server does not have those routes yet they fail with a detail that says so.
 *
 * No redirects are followed: a probe that redirects is a misconfiguration.
 * Every buffer the server controls is capped (body SMOKE_BODY_MAX, headers
 * SMOKE_HEADERS_MAX × SMOKE_HEADER_LEN).
 */
#include "cli/smoke.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/cli.h"
#include "core/json_load.h"
#include "core/timeutil.h"
#include "core/uuid.h"

#define SMOKE_BODY_MAX ((size_t)1024 * 1024)
#define SMOKE_HEADERS_MAX 64
#define SMOKE_HEADER_NAME_LEN 64
#define SMOKE_HEADER_LEN 512
#define SMOKE_URL_MAX 2048
#define SMOKE_DETAIL_MAX 1024
#define SMOKE_POLL_MS 500

struct header {
    char name[SMOKE_HEADER_NAME_LEN];
    char value[SMOKE_HEADER_LEN];
};

/* One HTTP exchange. status is 0 when no response arrived (error says why). */
struct response {
    long status;
    char *body; /* NUL-terminated; owned, freed by response_clear */
    size_t len;
    int too_large;
    struct header headers[SMOKE_HEADERS_MAX];
    int nheaders;
    double ms;
    char error[CURL_ERROR_SIZE];
};

struct smoke {
    char base[SMOKE_URL_MAX]; /* --url without trailing slashes */
    const char *token;        /* borrowed: argv, or session_token */
    char *session_token;      /* owned: from the --register login */
    char user_id[128];        /* from /me, for the upload */
    char email[160];          /* the --register account */
    int registered;           /* the --register account exists */
    long timeout_ms;          /* per request */
    long wait_ms;             /* for the upload to complete */
    CURL *curl;
    json_t *checks;  /* array, owned */
    json_t *skipped; /* array, owned */
    int failed;
};

static void response_clear(struct response *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    struct response *r = user;
    size_t n = size * nmemb;
    if (r->len + n > SMOKE_BODY_MAX) {
        r->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    char *p = realloc(r->body, r->len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + r->len, data, n);
    r->len += n;
    p[r->len] = '\0';
    r->body = p;
    return n;
}

/* Header lines arrive one by one, the status line included; a new status line
 * (an interim 1xx response) starts the list again. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *user)
{
    struct response *r = user;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        r->nheaders = 0;
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (colon == NULL || r->nheaders >= SMOKE_HEADERS_MAX)
        return n;
    size_t nlen = (size_t)(colon - data);
    if (nlen == 0 || nlen >= SMOKE_HEADER_NAME_LEN)
        return n;
    const char *v = colon + 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (vlen >= SMOKE_HEADER_LEN)
        vlen = SMOKE_HEADER_LEN - 1;
    struct header *h = &r->headers[r->nheaders++];
    memcpy(h->name, data, nlen);
    h->name[nlen] = '\0';
    memcpy(h->value, v, vlen);
    h->value[vlen] = '\0';
    return n;
}

/* The value of a response header (case-insensitive name), or NULL. Borrowed. */
static const char *header_get(const struct response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/*
 * One request to base + path. body (JSON text) may be NULL; bearer and
 * request_id may be NULL. Fills *r (cleared first); returns 0 when an HTTP
 * response arrived, -1 otherwise (r->error says why).
 */
static int request(struct smoke *s, const char *method, const char *path, const char *body, const char *bearer,
                   const char *request_id, struct response *r)
{
    char url[SMOKE_URL_MAX + 512];
    char line[SMOKE_HEADER_LEN + 64];
    struct curl_slist *hdrs = NULL, *tmp;
    int rc = -1;

    response_clear(r);
    if ((size_t)snprintf(url, sizeof(url), "%s%s", s->base, path) >= sizeof(url)) {
        snprintf(r->error, sizeof(r->error), "URL too long");
        return -1;
    }
    tmp = curl_slist_append(hdrs, "Accept: application/json");
    if (tmp == NULL)
        goto oom;
    hdrs = tmp;
    if (body != NULL) {
        if ((tmp = curl_slist_append(hdrs, "Content-Type: application/json")) == NULL)
            goto oom;
        hdrs = tmp;
    }
    if (bearer != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", bearer);
        if ((tmp = curl_slist_append(hdrs, line)) == NULL)
            goto oom;
        hdrs = tmp;
    }
    if (request_id != NULL) {
        snprintf(line, sizeof(line), "X-Request-ID: %s", request_id);
        if ((tmp = curl_slist_append(hdrs, line)) == NULL)
            goto oom;
        hdrs = tmp;
    }

    CURL *c = s->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s->timeout_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "clarity-smoke/" CLARITY_VERSION);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->error);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);

    uint64_t t0 = time_mono_ns();
    CURLcode cc = curl_easy_perform(c);
    r->ms = (double)(time_mono_ns() - t0) / 1e6;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        rc = 0;
    } else {
        r->status = 0;
        if (r->too_large)
            snprintf(r->error, sizeof(r->error), "response body larger than %zu bytes", SMOKE_BODY_MAX);
        else if (r->error[0] == '\0')
            snprintf(r->error, sizeof(r->error), "%s", curl_easy_strerror(cc));
    }
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(hdrs);
    return rc;

oom:
    curl_slist_free_all(hdrs);
    snprintf(r->error, sizeof(r->error), "out of memory");
    return -1;
}

/* The response body as a JSON object (new reference), or NULL. */
static json_t *body_object(const struct response *r)
{
    if (r->body == NULL)
        return NULL;
    json_t *j = json_parse(r->body, r->len, 0, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* A string member of a JSON object, or NULL. Borrowed from obj. */
static const char *member_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

__attribute__((format(printf, 5, 6))) static void add_check(struct smoke *s, const char *name, int ok, double ms,
                                                            const char *fmt, ...)
{
    char detail[SMOKE_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    json_t *c = json_pack("{s:s, s:b, s:s, s:f}", "name", name, "ok", ok, "detail", detail, "ms",
                          (double)((long long)(ms * 1000.0 + 0.5)) / 1000.0);
    /* An allocation failure still fails the run: the report would lie. */
    if (c == NULL || json_array_append_new(s->checks, c) != 0)
        ok = 0;
    if (!ok)
        s->failed = 1;
}

static void add_skipped(struct smoke *s, const char *name, const char *reason)
{
    json_array_append_new(s->skipped, json_pack("{s:s, s:s}", "name", name, "reason", reason));
}

/* Describe a response that was not what a check wanted, for its detail. */
static void describe(const struct response *r, const char *method, const char *path, char *out, size_t size)
{
    if (r->status == 0) {
        snprintf(out, size, "%s %s: no response: %s", method, path, r->error);
        return;
    }
    json_t *j = body_object(r);
    const char *why = j != NULL ? member_str(j, "detail") : NULL;
    if (why == NULL && j != NULL)
        why = member_str(j, "title");
    if (why == NULL && j != NULL)
        why = member_str(j, "status");
    if (r->status == 404 || r->status == 405)
        snprintf(out, size, "%s %s: HTTP %ld — this server does not implement the route yet", method, path, r->status);
    else
        snprintf(out, size, "%s %s: HTTP %ld%s%s", method, path, r->status, why ? ": " : "", why ? why : "");
    json_decref(j);
}

/* liveness / readiness: 200 with {"status": want}. */
static void check_probe(struct smoke *s, const char *name, const char *path, const char *want)
{
    struct response r = {0};
    char why[SMOKE_DETAIL_MAX];
    request(s, "GET", path, NULL, NULL, NULL, &r);
    json_t *j = body_object(&r);
    const char *got = j != NULL ? member_str(j, "status") : NULL;
    if (r.status == 200 && got != NULL && strcmp(got, want) == 0) {
        add_check(s, name, 1, r.ms, "GET %s: 200, status \"%s\"", path, got);
    } else if (r.status == 200) {
        add_check(s, name, 0, r.ms, "GET %s: 200 but status is %s%s%s, expected \"%s\"", path, got ? "\"" : "",
                  got ? got : "missing", got ? "\"" : "", want);
    } else {
        describe(&r, "GET", path, why, sizeof(why));
        add_check(s, name, 0, r.ms, "%s", why);
    }
    json_decref(j);
    response_clear(&r);
}

/* /health: 200, "healthy", and every dependency check healthy. */
static void check_health(struct smoke *s)
{
    struct response r = {0};
    char list[SMOKE_DETAIL_MAX / 2] = "";
    size_t used = 0;
    int bad = 0, total = 0;

    /* METRICS_TOKEN from the environment shows production's checks; without
     * it production answers the status only, which passes on its own. */
    const char *mtoken = getenv("METRICS_TOKEN");
    request(s, "GET", "/health", NULL, mtoken != NULL && mtoken[0] != '\0' ? mtoken : NULL, NULL, &r);
    json_t *j = body_object(&r);
    const char *status = j != NULL ? member_str(j, "status") : NULL;
    json_t *checks = j != NULL ? json_object_get(j, "checks") : NULL;
    if (r.status == 0 || j == NULL) {
        char why[SMOKE_DETAIL_MAX];
        if (r.status != 0)
            snprintf(why, sizeof(why), "GET /health: HTTP %ld without a JSON object body", r.status);
        else
            describe(&r, "GET", "/health", why, sizeof(why));
        add_check(s, "health", 0, r.ms, "%s", why);
        goto done;
    }
    if (!json_is_object(checks) && r.status == 200 && status != NULL && strcmp(status, "healthy") == 0) {
        add_check(s, "health", 1, r.ms,
                  "GET /health: 200, healthy (status only: production shows the checks "
                  "to the METRICS_TOKEN bearer)");
        goto done;
    }
    if (!json_is_object(checks)) {
        add_check(s, "health", 0, r.ms, "GET /health: HTTP %ld, no \"checks\" object", r.status);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach (checks, key, val) {
        const char *st = member_str(val, "status");
        total++;
        if (st == NULL || strcmp(st, "healthy") != 0) {
            bad++;
            int n = snprintf(list + used, sizeof(list) - used, "%s%s=%s", bad > 1 ? ", " : "", key, st ? st : "?");
            if (n > 0 && (size_t)n < sizeof(list) - used)
                used += (size_t)n;
        }
    }
    if (r.status == 200 && status != NULL && strcmp(status, "healthy") == 0 && bad == 0)
        add_check(s, "health", 1, r.ms, "GET /health: 200, healthy, %d of %d checks healthy", total, total);
    else
        add_check(s, "health", 0, r.ms, "GET /health: HTTP %ld, status \"%s\"%s%s", r.status, status ? status : "?",
                  bad ? "; unhealthy: " : "", bad ? list : "");
done:
    json_decref(j);
    response_clear(&r);
}

/* Security headers on a probe response, and the X-Request-ID echo. */
static void check_headers(struct smoke *s)
{
    struct response r = {0};
    char rid[UUID_STR_LEN + 8] = "smoke-";
    char missing[SMOKE_DETAIL_MAX / 2] = "";
    size_t used = 0;
    int bad = 0;

    if (uuid_v4(rid + 6) != 0) {
        add_check(s, "security_headers", 0, 0, "no randomness for a request id");
        return;
    }
    if (request(s, "GET", "/liveness", NULL, NULL, rid, &r) != 0) {
        char why[SMOKE_DETAIL_MAX];
        describe(&r, "GET", "/liveness", why, sizeof(why));
        add_check(s, "security_headers", 0, r.ms, "%s", why);
        response_clear(&r);
        return;
    }
    struct {
        const char *name;
        const char *want; /* NULL: any non-empty value */
    } expect[] = {
        {"X-Content-Type-Options", "nosniff"}, {"X-Frame-Options", NULL}, {"Referrer-Policy", NULL},
        {"Content-Security-Policy", NULL},     {"X-Request-ID", rid},
    };
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        const char *v = header_get(&r, expect[i].name);
        int ok = v != NULL && v[0] != '\0' && (expect[i].want == NULL || strcasecmp(v, expect[i].want) == 0);
        if (!ok) {
            bad++;
            int n = snprintf(missing + used, sizeof(missing) - used, "%s%s %s", bad > 1 ? "; " : "", expect[i].name,
                             v == NULL ? "missing" : "wrong");
            if (n > 0 && (size_t)n < sizeof(missing) - used)
                used += (size_t)n;
        }
    }
    const char *hsts = header_get(&r, "Strict-Transport-Security");
    if (bad == 0)
        add_check(s, "security_headers", 1, r.ms,
                  "nosniff, frame options, referrer policy, CSP present; X-Request-ID echoed; HSTS %s",
                  hsts ? "present" : "absent (sent outside development)");
    else
        add_check(s, "security_headers", 0, r.ms, "%s", missing);
    response_clear(&r);
}

/* GET /api/v1/auth/me with the token; remembers user_id. 0 on success. */
static int fetch_me(struct smoke *s, struct response *r, char *why, size_t size)
{
    request(s, "GET", "/api/v1/auth/me", NULL, s->token, NULL, r);
    json_t *j = body_object(r);
    const char *uid = j != NULL ? member_str(j, "user_id") : NULL;
    int rc = -1;
    if (r->status == 200 && uid != NULL && strlen(uid) < sizeof(s->user_id)) {
        snprintf(s->user_id, sizeof(s->user_id), "%s", uid);
        rc = 0;
    } else if (r->status == 200) {
        snprintf(why, size, "GET /api/v1/auth/me: 200 without a user_id");
    } else {
        describe(r, "GET", "/api/v1/auth/me", why, size);
    }
    json_decref(j);
    return rc;
}

/* Register a throw-away account and log in with it. 0 on success. */
static int register_and_login(struct smoke *s, struct response *r, double *ms, char *why, size_t size)
{
    char id[UUID_STR_LEN], pw[UUID_STR_LEN];
    json_t *req = NULL, *j = NULL;
    char *text = NULL;
    int rc = -1;

    if (uuid_v4(id) != 0 || uuid_v4(pw) != 0) {
        snprintf(why, size, "no randomness for the test account");
        return -1;
    }
    snprintf(s->email, sizeof(s->email), "smoke-%s@example.com", id);
    /* Meets the password rules: upper, lower, digit, special, 8–128. */
    char password[64];
    snprintf(password, sizeof(password), "Sm0ke!%s", pw);

    req = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "email", s->email, "password", password, "first_name", "Smoke",
                    "last_name", "Test", "terms_accepted", 1, "privacy_policy_accepted", 1);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (text == NULL) {
        snprintf(why, size, "out of memory");
        goto done;
    }
    request(s, "POST", "/api/v1/auth/register", text, NULL, NULL, r);
    *ms += r->ms;
    if (r->status != 201) {
        describe(r, "POST", "/api/v1/auth/register", why, size);
        goto done;
    }
    s->registered = 1;
    json_decref(req);
    free(text);
    req = json_pack("{s:s, s:s}", "email", s->email, "password", password);
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (text == NULL) {
        snprintf(why, size, "out of memory");
        goto done;
    }
    request(s, "POST", "/api/v1/auth/login", text, NULL, NULL, r);
    *ms += r->ms;
    j = body_object(r);
    const char *tok = j != NULL ? member_str(json_object_get(j, "tokens"), "access_token") : NULL;
    if (r->status != 200 || tok == NULL) {
        if (r->status == 200)
            snprintf(why, size, "POST /api/v1/auth/login: 200 without tokens.access_token");
        else
            describe(r, "POST", "/api/v1/auth/login", why, size);
        goto done;
    }
    s->session_token = strdup(tok);
    if (s->session_token == NULL) {
        snprintf(why, size, "out of memory");
        goto done;
    }
    s->token = s->session_token;
    rc = 0;
done:
    json_decref(j);
    json_decref(req);
    free(text);
    return rc;
}

/* Auth round trip; returns 1 when it passed. */
static int check_auth(struct smoke *s, int do_register)
{
    struct response r = {0};
    char why[SMOKE_DETAIL_MAX] = "";
    double ms = 0;
    int ok = 0;
    if (do_register && register_and_login(s, &r, &ms, why, sizeof(why)) != 0)
        goto done;
    if (fetch_me(s, &r, why, sizeof(why)) != 0) {
        ms += r.ms;
        goto done;
    }
    ms += r.ms;
    ok = 1;
done:
    if (ok)
        add_check(s, "auth_round_trip", 1, ms, "%s GET /api/v1/auth/me: 200",
                  do_register ? "registered, logged in," : "token accepted:");
    else
        add_check(s, "auth_round_trip", 0, ms, "%s", why);
    response_clear(&r);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A one-sample HealthKit upload that must reach "completed". Writes the upload
 * id into upload_id (size bytes) once accepted. Returns 1 when it passed. */
static int check_upload(struct smoke *s, char *upload_id, size_t size)
{
    struct response r = {0};
    char why[SMOKE_DETAIL_MAX] = "";
    char sample_id[UUID_STR_LEN], start[40], end[40], path[256];
    json_t *req = NULL, *j = NULL;
    char *text = NULL;
    double ms = 0;
    int ok = 0;

    int64_t now = time_now_ms();
    if (uuid_v4(sample_id) != 0 || time_format_rfc3339_ms(now - 60000, start, sizeof(start)) == NULL ||
        time_format_rfc3339_ms(now, end, sizeof(end)) == NULL) {
        snprintf(why, sizeof(why), "could not build the sample");
        goto done;
    }
    req = json_pack("{s:s, s:[{s:s, s:s, s:i, s:s, s:s, s:s, s:s}], s:[], s:[], s:[]}", "user_id", s->user_id,
                    "quantity_samples", "uuid", sample_id, "identifier", "HKQuantityTypeIdentifierHeartRate", "value",
                    62, "unit", "count/min", "start_date", start, "end_date", end, "source_name", "clarity-smoke",
                    "category_samples", "workouts", "correlation_samples");
    text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    if (text == NULL) {
        snprintf(why, sizeof(why), "out of memory");
        goto done;
    }
    request(s, "POST", "/api/v1/healthkit/upload", text, s->token, NULL, &r);
    ms += r.ms;
    j = body_object(&r);
    const char *id = j != NULL ? member_str(j, "upload_id") : NULL;
    if ((r.status != 202 && r.status != 201) || id == NULL || strlen(id) >= size || !uuid_is_valid(id)) {
        if (r.status == 202 || r.status == 201)
            snprintf(why, sizeof(why), "POST /api/v1/healthkit/upload: HTTP %ld without an upload_id", r.status);
        else
            describe(&r, "POST", "/api/v1/healthkit/upload", why, sizeof(why));
        goto done;
    }
    snprintf(upload_id, size, "%s", id);
    snprintf(path, sizeof(path), "/api/v1/healthkit/status/%s", upload_id);

    uint64_t deadline = time_mono_ns() + (uint64_t)s->wait_ms * 1000000u;
    const char *status = "?";
    for (;;) {
        json_decref(j);
        j = NULL;
        request(s, "GET", path, NULL, s->token, NULL, &r);
        ms += r.ms;
        j = body_object(&r);
        status = j != NULL && member_str(j, "status") ? member_str(j, "status") : "?";
        if (r.status != 200) {
            describe(&r, "GET", "/api/v1/healthkit/status/{id}", why, sizeof(why));
            goto done;
        }
        if (strcmp(status, "completed") == 0) {
            ok = 1;
            break;
        }
        if (strcmp(status, "failed") == 0) {
            const char *err = member_str(j, "error");
            snprintf(why, sizeof(why), "upload %s failed: %s", upload_id, err ? err : "no reason given");
            goto done;
        }
        if (time_mono_ns() >= deadline) {
            snprintf(why, sizeof(why), "upload %s still \"%s\" after %ld s", upload_id, status, s->wait_ms / 1000);
            goto done;
        }
        sleep_ms(SMOKE_POLL_MS);
    }
done:
    if (ok)
        add_check(s, "healthkit_upload", 1, ms, "upload %s completed", upload_id);
    else
        add_check(s, "healthkit_upload", 0, ms, "%s", why);
    json_decref(j);
    json_decref(req);
    free(text);
    response_clear(&r);
    return ok;
}

/* The caller's insight history holds at least one insight. */
static void check_insight(struct smoke *s)
{
    struct response r = {0};
    char path[256], why[SMOKE_DETAIL_MAX];
    snprintf(path, sizeof(path), "/api/v1/insights/history/%s?limit=1", s->user_id);
    request(s, "GET", path, NULL, s->token, NULL, &r);
    json_t *j = body_object(&r);
    json_t *data = j != NULL ? json_object_get(j, "data") : NULL;
    json_t *list = json_object_get(data, "insights"); /* {success, data: {insights: [...]}} (docs/api.md) */
    if (r.status == 200 && json_array_size(list) > 0) {
        add_check(s, "insight", 1, r.ms, "insight history has an entry");
    } else if (r.status == 200) {
        add_check(s, "insight", 0, r.ms, "GET /api/v1/insights/history/{user_id}: 200 but no insight");
    } else {
        describe(&r, "GET", "/api/v1/insights/history/{user_id}", why, sizeof(why));
        add_check(s, "insight", 0, r.ms, "%s", why);
    }
    json_decref(j);
    response_clear(&r);
}

/* Delete what the run wrote: the whole throw-away account, or the upload. */
static void check_cleanup(struct smoke *s, const char *upload_id)
{
    struct response r = {0};
    char why[SMOKE_DETAIL_MAX];
    char path[256];
    if (s->registered && s->session_token == NULL) {
        add_check(s, "cleanup", 0, 0, "test account %s was created but cannot be removed without a token", s->email);
        return;
    }
    if (s->registered)
        snprintf(path, sizeof(path), "/api/v1/auth/me");
    else
        snprintf(path, sizeof(path), "/api/v1/health-data/%s", upload_id);
    request(s, "DELETE", path, NULL, s->token, NULL, &r);
    if (r.status == 200 || r.status == 204) {
        add_check(s, "cleanup", 1, r.ms, "DELETE %s: %ld", s->registered ? path : "/api/v1/health-data/{id}", r.status);
    } else {
        describe(&r, "DELETE", s->registered ? path : "/api/v1/health-data/{id}", why, sizeof(why));
        if (s->registered)
            add_check(s, "cleanup", 0, r.ms, "%s (test account %s left behind)", why, s->email);
        else
            add_check(s, "cleanup", 0, r.ms, "%s (upload %s left behind)", why, upload_id);
    }
    response_clear(&r);
}

static void usage(FILE *out)
{
    fputs("usage: clarity smoke --url URL [--token TOKEN | --register] [--read-only]\n"
          "                     [--timeout SECONDS] [--wait SECONDS]\n",
          out);
}

/* Parse a whole number of seconds in [1, 3600]; -1 when invalid. */
static long parse_seconds(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 3600)
        return -1;
    return v;
}

int cli_smoke(int argc, char **argv)
{
    struct smoke s;
    const char *url = NULL;
    int do_register = 0, read_only = 0;
    int rc = CLI_EXIT_FAILURE;
    json_t *report = NULL;

    memset(&s, 0, sizeof(s));
    s.timeout_ms = 10000;
    s.wait_ms = 60000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = i + 1 < argc;
        if (strcmp(a, "--url") == 0 && has_value) {
            url = argv[++i];
        } else if (strcmp(a, "--token") == 0 && has_value) {
            s.token = argv[++i];
        } else if (strcmp(a, "--register") == 0) {
            do_register = 1;
        } else if (strcmp(a, "--read-only") == 0) {
            read_only = 1;
        } else if ((strcmp(a, "--timeout") == 0 || strcmp(a, "--wait") == 0) && has_value) {
            long v = parse_seconds(argv[++i]);
            if (v < 0) {
                fprintf(stderr, "clarity smoke: %s: expected whole seconds from 1 to 3600\n", a);
                return CLI_EXIT_USAGE;
            }
            if (strcmp(a, "--timeout") == 0)
                s.timeout_ms = v * 1000;
            else
                s.wait_ms = v * 1000;
        } else {
            fprintf(stderr, "clarity smoke: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (url == NULL) {
        fprintf(stderr, "clarity smoke: --url is required\n");
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    /* The token may come from the environment, so that it never shows in a
     * process list (scripts/deploy.sh passes it to the container this way). */
    if (s.token == NULL && !do_register) {
        const char *env = getenv("SMOKE_TOKEN");
        if (env != NULL && env[0] != '\0')
            s.token = env;
    }
    if (s.token != NULL && do_register) {
        fprintf(stderr, "clarity smoke: --token and --register are mutually exclusive\n");
        return CLI_EXIT_USAGE;
    }
    if (s.token != NULL && s.token[0] == '\0') {
        fprintf(stderr, "clarity smoke: --token is empty\n");
        return CLI_EXIT_USAGE;
    }
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || strlen(url) >= sizeof(s.base) ||
        strpbrk(url, " \t\r\n?#") != NULL) {
        fprintf(stderr, "clarity smoke: --url must be an http:// or https:// base URL without a query\n");
        return CLI_EXIT_USAGE;
    }
    snprintf(s.base, sizeof(s.base), "%s", url);
    for (size_t n = strlen(s.base); n > 0 && s.base[n - 1] == '/'; n--)
        s.base[n - 1] = '\0';

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "clarity smoke: libcurl initialisation failed\n");
        return CLI_EXIT_FAILURE;
    }
    s.curl = curl_easy_init();
    s.checks = json_array();
    s.skipped = json_array();
    if (s.curl == NULL || s.checks == NULL || s.skipped == NULL) {
        fprintf(stderr, "clarity smoke: out of memory\n");
        goto done;
    }

    check_probe(&s, "liveness", "/liveness", "alive");
    check_probe(&s, "readiness", "/readiness", "ready");
    check_health(&s);
    check_headers(&s);

    int have_auth = s.token != NULL || do_register;
    if (!have_auth) {
        add_skipped(&s, "auth_round_trip", "no --token or --register given");
    } else {
        int auth_ok = check_auth(&s, do_register);
        char upload_id[UUID_STR_LEN] = "";
        int uploaded = 0;
        if (read_only) {
            add_skipped(&s, "healthkit_upload", "--read-only");
            add_skipped(&s, "insight", "--read-only");
        } else if (!auth_ok) {
            add_check(&s, "healthkit_upload", 0, 0, "not run: auth_round_trip failed");
            add_check(&s, "insight", 0, 0, "not run: auth_round_trip failed");
        } else {
            int upload_ok = check_upload(&s, upload_id, sizeof(upload_id));
            uploaded = upload_id[0] != '\0';
            if (upload_ok)
                check_insight(&s);
            else
                add_check(&s, "insight", 0, 0, "not run: healthkit_upload failed");
        }
        if (s.registered || uploaded)
            check_cleanup(&s, upload_id);
        else
            add_skipped(&s, "cleanup", "nothing was written");
    }

    report = json_pack("{s:s, s:b, s:s, s:O, s:O}", "url", s.base, "passed", !s.failed, "mode",
                       read_only ? "read-only" : "full", "checks", s.checks, "skipped", s.skipped);
    if (report == NULL ||
        json_dumpf(report, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) != 0) {
        fprintf(stderr, "clarity smoke: could not write the report\n");
        goto done;
    }
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "clarity smoke: %s: %zu checks, %s\n", s.base, json_array_size(s.checks),
            s.failed ? "FAILED" : "all passed");
    rc = s.failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
done:
    json_decref(report);
    json_decref(s.checks);
    json_decref(s.skipped);
    if (s.curl != NULL)
        curl_easy_cleanup(s.curl);
    free(s.session_token);
    curl_global_cleanup();
    return rc;
}
