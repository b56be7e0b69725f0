/*
 * seed.c — `clarity seed-demo`: demo accounts and a realistic month of
 * HealthKit data for development and staging, through the public API of a
 * running server (so the data takes the path the iOS app's does: register,
 * upload, analysis, insights).
 *
 * Per user and day: step counts per 15 minutes (none at night, a morning and
 * an evening peak, more on weekdays' commutes, a weekend walk), heart rate
 * per 15 minutes (lower asleep, higher when stepping), a resting heart rate,
 * and one night of sleep (in bed, core/deep/REM cycles, a short awakening).
 * Everything comes from a seeded generator, and sample ids are derived from
 * (user, day, kind, slot), so a second run stores nothing twice (the API
 * skips known ids). Refuses a server whose /health does not say development
 * or staging.
 */
#include "cli/seed.h"

#include <curl/curl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/json_load.h"
#include "core/buf.h"
#include "core/timeutil.h"

#define DEMO_PASSWORD "Demo-Clarity-2026!"

static const char usage[] = "usage: clarity seed-demo --url URL [--users N] [--days N] [--seed N]\n";

struct http {
    CURL *c;
    const char *base;
};

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    return buf_append(b, p, size * n) == 0 ? size * n : 0;
}

/* One request; *out gets the parsed JSON body (or NULL). Returns the status, 0 on a transport error. */
static long call(struct http *h, const char *method, const char *path, json_t *body, const char *bearer, json_t **out)
{
    char url[1024], auth[4200];
    struct buf b;
    buf_init(&b, 16u << 20);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (bearer != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        hdrs = curl_slist_append(hdrs, auth);
    }
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    snprintf(url, sizeof(url), "%s%s", h->base, path);
    curl_easy_reset(h->c);
    curl_easy_setopt(h->c, CURLOPT_URL, url);
    curl_easy_setopt(h->c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h->c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h->c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h->c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h->c, CURLOPT_WRITEDATA, &b);
    if (text != NULL)
        curl_easy_setopt(h->c, CURLOPT_POSTFIELDS, text);
    long status = 0;
    if (curl_easy_perform(h->c) == CURLE_OK)
        curl_easy_getinfo(h->c, CURLINFO_RESPONSE_CODE, &status);
    if (out != NULL)
        *out = b.data != NULL ? json_parse(b.data, b.len, 0, NULL) : NULL;
    free(text);
    curl_slist_free_all(hdrs);
    buf_free(&b);
    return status;
}

/* xorshift64*: the same data for the same --seed. */
static double rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

/* A v4-shaped id from (user, day, kind, slot): reruns reuse it. */
static void sample_id(char out[37], unsigned user, unsigned day, unsigned kind, unsigned slot)
{
    snprintf(out, 37, "5eed%04x-%04x-4%03x-8%03x-%012x", user & 0xffff, day & 0xffff, kind & 0xfff, slot & 0xfff,
             (user * 7919u + day * 104729u + kind * 31u + slot) & 0xffffffffu);
}

static void add_quantity(json_t *arr, const char *uuid, const char *id, double value, const char *unit,
                         int64_t start_ms, int64_t end_ms)
{
    char s[40], e[40];
    json_array_append_new(
        arr, json_pack("{s:s, s:s, s:f, s:s, s:s, s:s, s:s}", "uuid", uuid, "identifier", id, "value", value, "unit",
                       unit, "start_date", time_format_rfc3339_ms(start_ms, s, sizeof(s)), "end_date",
                       time_format_rfc3339_ms(end_ms, e, sizeof(e)), "source_name", "clarity-seed-demo"));
}

static void add_sleep(json_t *arr, const char *uuid, const char *value, int64_t start_ms, int64_t end_ms)
{
    char s[40], e[40];
    json_array_append_new(arr,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "uuid", uuid, "identifier",
                                    "HKCategoryTypeIdentifierSleepAnalysis", "value", value, "start_date",
                                    time_format_rfc3339_ms(start_ms, s, sizeof(s)), "end_date",
                                    time_format_rfc3339_ms(end_ms, e, sizeof(e)), "source_name", "clarity-seed-demo"));
}

/* One day (UTC midnight day0) of one user's samples into q (quantity) and c (category). */
static void day_samples(unsigned user, unsigned day, int64_t day0, uint64_t *rs, json_t *q, json_t *c)
{
    char id[37];
    const int64_t slot = 15 * 60 * 1000;
    int weekday = (int)(((day0 / 86400000) + 4) % 7); /* 1970-01-01 was a Thursday */
    int weekend = weekday == 0 || weekday == 6;
    double bed = 23.0 + rnd(rs) * 1.2 - 0.4 + (weekend ? 0.7 : 0); /* hours after day0 of the night before */
    double wake = 7.0 + rnd(rs) * 1.0 - 0.3 + (weekend ? 1.2 : 0);
    double activity = 0.7 + rnd(rs) * 0.7; /* this user's day */
    double resting = 54 + (user % 5) * 3 + rnd(rs) * 3;
    for (unsigned k = 0; k < 96; k++) {
        double h = k / 4.0;
        int asleep = h < wake || h >= bed;
        double steps = 0;
        if (!asleep) {
            double morning = exp(-pow((h - (weekend ? 10.5 : 8.3)) / 0.8, 2));
            double evening = exp(-pow((h - 18.0) / 1.2, 2));
            double lunch = exp(-pow((h - 12.5) / 0.5, 2));
            steps = activity * (120 + 900 * morning + 700 * evening + 400 * lunch) * (0.5 + rnd(rs));
            if (weekend && h > 14 && h < 16)
                steps += 1200 * rnd(rs); /* the weekend walk */
        }
        int64_t t = day0 + (int64_t)k * slot;
        if (steps >= 1) {
            sample_id(id, user, day, 1, k);
            add_quantity(q, id, "HKQuantityTypeIdentifierStepCount", floor(steps), "count", t, t + slot);
        }
        double hr = asleep ? resting - 3 + rnd(rs) * 4 : resting + 12 + steps / 40.0 + rnd(rs) * 8;
        sample_id(id, user, day, 2, k);
        add_quantity(q, id, "HKQuantityTypeIdentifierHeartRate", round(hr), "count/min", t + slot / 2, t + slot / 2);
    }
    sample_id(id, user, day, 3, 0);
    add_quantity(q, id, "HKQuantityTypeIdentifierRestingHeartRate", round(resting), "count/min", day0 + 43200000,
                 day0 + 43200000);
    /* Last night: in bed from bed-24 h (the previous evening) to wake. */
    int64_t in = day0 + (int64_t)((bed - 24.0) * 3600000.0), out = day0 + (int64_t)(wake * 3600000.0);
    sample_id(id, user, day, 4, 0);
    add_sleep(c, id, "HKCategoryValueSleepAnalysisInBed", in, out);
    static const char *const stages[] = {
        "HKCategoryValueSleepAnalysisAsleepCore", "HKCategoryValueSleepAnalysisAsleepDeep",
        "HKCategoryValueSleepAnalysisAsleepCore", "HKCategoryValueSleepAnalysisAsleepREM"};
    int64_t t = in + (int64_t)((10 + rnd(rs) * 15) * 60000.0); /* sleep latency */
    unsigned n = 1;
    while (t < out - 20 * 60000 && n < 60) {
        const char *stage = stages[n % 4];
        int64_t len = (int64_t)((15 + rnd(rs) * 30) * 60000.0);
        if (t + len > out)
            len = out - t;
        sample_id(id, user, day, 4, n++);
        add_sleep(c, id, stage, t, t + len);
        t += len;
        if (n == 9) { /* a short awakening in the night */
            sample_id(id, user, day, 4, n++);
            add_sleep(c, id, "HKCategoryValueSleepAnalysisAwake", t, t + 5 * 60000);
            t += 5 * 60000;
        }
    }
}

static int seed_user(struct http *h, unsigned user, unsigned days, uint64_t seed, json_t *report)
{
    char email[128];
    snprintf(email, sizeof(email), "demo%u@clarity.example.com", user);
    static const char *const first[] = {"Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jordan"};
    json_t *reg = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "email", email, "password", DEMO_PASSWORD, "first_name",
                            first[user % 8], "last_name", "Demo", "terms_accepted", 1, "privacy_policy_accepted", 1);
    json_t *doc = NULL;
    long st = call(h, "POST", "/api/v1/auth/register", reg, NULL, &doc);
    json_decref(reg);
    json_decref(doc);
    doc = NULL;
    if (st != 201 && st != 200 && st != 409) {
        fprintf(stderr, "clarity seed-demo: registering %s: HTTP %ld\n", email, st);
        return -1;
    }
    json_t *login = json_pack("{s:s, s:s}", "email", email, "password", DEMO_PASSWORD);
    st = call(h, "POST", "/api/v1/auth/login", login, NULL, &doc);
    json_decref(login);
    const char *token = json_string_value(json_object_get(json_object_get(doc, "tokens"), "access_token"));
    const char *uid = json_string_value(json_object_get(json_object_get(doc, "user"), "user_id"));
    if (uid == NULL)
        uid = json_string_value(json_object_get(json_object_get(doc, "user"), "id"));
    if (st != 200 || token == NULL || uid == NULL) {
        fprintf(stderr, "clarity seed-demo: logging in %s: HTTP %ld (an existing account with another password?)\n",
                email, st);
        json_decref(doc);
        return -1;
    }
    char tok[4096], id[64];
    snprintf(tok, sizeof(tok), "%s", token);
    snprintf(id, sizeof(id), "%s", uid);
    json_decref(doc);

    uint64_t rs = seed * 0x9E3779B97F4A7C15ULL + user + 1;
    int64_t today = time_now_ms() / 86400000 * 86400000;
    long stored = 0, skipped = 0;
    int uploads = 0;
    for (unsigned d = 0; d < days; d++) {
        int64_t day0 = today - (int64_t)(days - d) * 86400000;
        json_t *q = json_array(), *c = json_array();
        day_samples(user, (unsigned)(day0 / 86400000), day0, &rs, q, c);
        json_t *up = json_pack("{s:s, s:o, s:o, s:[], s:[]}", "user_id", id, "quantity_samples", q, "category_samples",
                               c, "workouts", "correlation_samples");
        json_t *ans = NULL;
        for (int attempt = 0; attempt < 5; attempt++) {
            json_decref(ans);
            ans = NULL;
            st = call(h, "POST", "/api/v1/healthkit/upload", up, tok, &ans);
            if (st != 429)
                break;
            /* The upload rate limit (60 a minute by default): wait it out. */
            struct timespec pause = {2, 0};
            nanosleep(&pause, NULL);
        }
        json_decref(up);
        if (st != 202 && st != 200 && st != 201) {
            fprintf(stderr, "clarity seed-demo: upload for %s, day %u: HTTP %ld\n", email, d, st);
            json_decref(ans);
            return -1;
        }
        stored += (long)json_integer_value(json_object_get(ans, "samples_stored"));
        skipped += (long)json_integer_value(json_object_get(ans, "duplicates_skipped"));
        uploads++;
        json_decref(ans);
    }
    json_array_append_new(report, json_pack("{s:s, s:s, s:s, s:i, s:I, s:I}", "email", email, "password", DEMO_PASSWORD,
                                            "user_id", id, "uploads", uploads, "samples_stored", (json_int_t)stored,
                                            "duplicates_skipped", (json_int_t)skipped));
    return 0;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < (long)lo || v > (long)hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int cli_seed_demo(int argc, char **argv)
{
    const char *url = NULL;
    unsigned users = 3, days = 30, seed = 1;
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (strcmp(argv[i], "--url") == 0 && more)
            url = argv[++i];
        else if (strcmp(argv[i], "--users") == 0 && more && parse_uint(argv[i + 1], 1, 100, &users) == 0)
            i++;
        else if (strcmp(argv[i], "--days") == 0 && more && parse_uint(argv[i + 1], 1, 365, &days) == 0)
            i++;
        else if (strcmp(argv[i], "--seed") == 0 && more && parse_uint(argv[i + 1], 0, 1000000, &seed) == 0)
            i++;
        else {
            fprintf(stderr, "clarity seed-demo: unexpected or invalid argument '%s'\n%s", argv[i], usage);
            return CLI_EXIT_USAGE;
        }
    }
    if (url == NULL || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) || strlen(url) > 512) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct http h = {curl_easy_init(), url};
    int rc = CLI_EXIT_FAILURE;
    json_t *health = NULL, *report = json_array();
    if (h.c == NULL)
        goto done;
    long st = call(&h, "GET", "/health", NULL, NULL, &health);
    const char *env = json_string_value(json_object_get(health, "environment"));
    if (env == NULL) {
        json_t *extra = health; /* a 503 carries the report as problem members */
        env = json_string_value(json_object_get(extra, "environment"));
    }
    if (env == NULL || (strcmp(env, "development") != 0 && strcmp(env, "staging") != 0)) {
        fprintf(stderr,
                "clarity seed-demo: %s is not a development or staging server (/health: HTTP %ld, "
                "environment %s); refusing\n",
                url, st, env != NULL ? env : "not shown");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    for (unsigned u = 1; u <= users; u++)
        if (seed_user(&h, u, days, seed, report) != 0)
            goto done;
    json_t *out = json_pack("{s:s, s:s, s:i, s:O}", "url", url, "environment", env, "days", days, "users", report);
    char *text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text != NULL)
        puts(text);
    free(text);
    json_decref(out);
    rc = CLI_EXIT_OK;
done:
    json_decref(report);
    json_decref(health);
    if (h.c != NULL)
        curl_easy_cleanup(h.c);
    curl_global_cleanup();
    return rc;
}
