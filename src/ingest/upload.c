/*
 * upload.c — HealthDataUpload validation. See upload.h; the field names and
 * ranges are API.md's.
 */
#include "ingest/upload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/timeutil.h"
#include "core/limits.h"
#include "core/uuid.h"
#include "ingest/healthkit.h"

void upload_samples_free(struct upload_samples *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].payload);
    free(s->v);
    memset(s, 0, sizeof(*s));
}

struct store_sample *upload_samples_add(struct upload_samples *s)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        struct store_sample *v = realloc(s->v, ncap * sizeof(*v));
        if (v == NULL) {
            s->oom = 1;
            return NULL;
        }
        s->v = v;
        s->cap = ncap;
    }
    struct store_sample *x = &s->v[s->n++];
    memset(x, 0, sizeof(*x));
    x->value = NAN;
    x->value2 = NAN;
    x->quality_score = NAN;
    return x;
}

int upload_samples_complete(const struct upload_samples *s) { return s->oom ? INGEST_ENOMEM : 0; }

/* ---- the HealthMetric model ------------------------------------------- */

/* A numeric field of a payload: name, range, the sample type and unit it
 * becomes. A field with no type only validates (it rides in the payload). */
struct field {
    const char *name;
    double min, max;
    int min_exclusive;
    const char *type; /* sample metric_type, or NULL */
    const char *unit;
};

static const struct field biometric_fields[] = {
    {"heart_rate", 30, 300, 0, HK_T_HEART_RATE, "count/min"},
    {"blood_pressure_systolic", 70, 250, 0, NULL, NULL},
    {"blood_pressure_diastolic", 40, 150, 0, NULL, NULL},
    {"oxygen_saturation", 70, 100, 0, HK_T_BLOOD_OXYGEN, "%"},
    {"heart_rate_variability", 0, 200, 0, HK_T_HRV, "ms"},
    {"respiratory_rate", 5, 60, 0, HK_T_RESPIRATORY_RATE, "count/min"},
    {"body_temperature", 35, 42, 0, HK_T_BODY_TEMPERATURE, "degC"},
    {"blood_glucose", 50, 500, 0, HK_T_BLOOD_GLUCOSE, "mg/dL"},
};

static const struct field activity_fields[] = {
    {"steps", 0, 100000, 0, HK_T_STEPS, "count"},
    {"distance", 0, 100, 0, HK_T_DISTANCE, "km"},
    {"active_energy", 0, 5000, 0, HK_T_ACTIVE_ENERGY, "kcal"},
    {"exercise_minutes", 0, 1440, 0, HK_T_EXERCISE_MINUTES, "min"},
    {"active_minutes", 0, 1440, 0, NULL, NULL},
    {"flights_climbed", 0, 500, 0, HK_T_FLIGHTS, "count"},
    {"vo2_max", 10, 80, 0, HK_T_VO2MAX, "mL/(kg*min)"},
    {"resting_heart_rate", 30, 120, 0, HK_T_RESTING_HEART_RATE, "count/min"},
};

static const struct field sleep_fields[] = {
    {"total_sleep_minutes", 0, 1440, 1, NULL, NULL},
    {"sleep_efficiency", 0, 1, 0, NULL, NULL},
    {"time_to_sleep_minutes", 0, 180, 0, NULL, NULL},
    {"wake_count", 0, 50, 0, NULL, NULL},
};

static const struct field mental_fields[] = {
    {"stress_level", 1, 10, 0, NULL, NULL},
    {"anxiety_level", 1, 10, 0, NULL, NULL},
    {"energy_level", 1, 10, 0, NULL, NULL},
    {"focus_rating", 1, 10, 0, NULL, NULL},
    {"social_interaction_minutes", 0, 1440, 0, NULL, NULL},
    {"meditation_minutes", 0, 480, 0, NULL, NULL},
};

enum payload { P_BIOMETRIC, P_SLEEP, P_ACTIVITY, P_MENTAL, P_METADATA };

static const char *const payload_names[] = {"biometric_data", "sleep_data", "activity_data", "mental_health_data",
                                            "metadata"};

static const struct {
    const char *type;
    enum payload payload;
    const char *required_field; /* a field the payload must carry, or NULL */
} metric_types[] = {
    {"heart_rate", P_BIOMETRIC, "heart_rate"},
    {"heart_rate_variability", P_BIOMETRIC, "heart_rate_variability"},
    {"blood_pressure", P_BIOMETRIC, NULL}, /* both pressures, checked below */
    {"blood_oxygen", P_BIOMETRIC, "oxygen_saturation"},
    {"respiratory_rate", P_BIOMETRIC, "respiratory_rate"},
    {"body_temperature", P_BIOMETRIC, "body_temperature"},
    {"blood_glucose", P_BIOMETRIC, "blood_glucose"},
    {"sleep_analysis", P_SLEEP, "total_sleep_minutes"},
    {"activity_level", P_ACTIVITY, NULL},
    {"stress_indicators", P_MENTAL, NULL},
    {"mood_assessment", P_MENTAL, "mood_score"},
    {"cognitive_metrics", P_MENTAL, NULL},
    {"environmental", P_METADATA, NULL},
};

#define NTYPES (sizeof(metric_types) / sizeof(metric_types[0]))

static const char *const moods[] = {"very_low", "low", "neutral", "good", "excellent"};

/* Check one numeric field; returns the value or NAN (error recorded or absent). */
static double number(struct check *in, json_t *obj, const char *ptr, const struct field *f)
{
    json_t *v = json_object_get(obj, f->name);
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", ptr, f->name);
    if (v == NULL || json_is_null(v))
        return NAN;
    if (!json_is_number(v) || json_is_true(v) || json_is_false(v)) {
        check_error(in, p, "must be a number");
        return NAN;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < f->min || x > f->max || (f->min_exclusive && x <= f->min)) {
        if (f->min_exclusive)
            check_error(in, p, "must be greater than %g and at most %g", f->min, f->max);
        else
            check_error(in, p, "must be between %g and %g", f->min, f->max);
        return NAN;
    }
    return x;
}

/* Check a payload object's members against its fields (+ extra allowed
 * names); record each present value into vals (NAN when absent). */
static void fields(struct check *in, json_t *obj, const char *ptr, const struct field *fs, size_t nf,
                   const char *const *extra, double *vals)
{
    /* Unknown members are ignored (docs/api.md "Rules for clients"); an
     * object of nothing but unknown members is still an error. */
    const char *key;
    json_t *v;
    size_t nknown = 0;
    json_object_foreach (obj, key, v) {
        int known = 0;
        for (size_t i = 0; i < nf; i++)
            known |= strcmp(fs[i].name, key) == 0;
        for (const char *const *e = extra; e != NULL && *e != NULL; e++)
            known |= strcmp(*e, key) == 0;
        nknown += known != 0;
    }
    if (nknown == 0 && json_object_size(obj) > 0)
        check_error(in, ptr, "holds none of the members this object takes");
    for (size_t i = 0; i < nf; i++)
        vals[i] = number(in, obj, ptr, &fs[i]);
}

/* An optional RFC 3339 member; returns 0 with *ms set, 1 when absent, -1 bad. */
static int timestamp(struct check *in, json_t *obj, const char *ptr, const char *name, int64_t *ms)
{
    json_t *v = json_object_get(obj, name);
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", ptr, name);
    if (v == NULL || json_is_null(v))
        return 1;
    if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), ms, NULL) != 0) {
        check_error(in, p, "must be an RFC 3339 date-time with offset, e.g. 2026-11-27T08:00:00Z");
        return -1;
    }
    return 0;
}

static struct store_sample *new_sample(struct upload_samples *out, const char *user_id, const char *type,
                                       const char *unit, double value, int64_t start, int64_t end, const char *device,
                                       const char *metric_id, const char *suffix)
{
    struct store_sample *s = upload_samples_add(out);
    if (s == NULL)
        return NULL;
    snprintf(s->user_id, sizeof(s->user_id), "%s", user_id);
    snprintf(s->metric_type, sizeof(s->metric_type), "%s", type);
    snprintf(s->unit, sizeof(s->unit), "%s", unit);
    snprintf(s->source, sizeof(s->source), "api");
    snprintf(s->device, sizeof(s->device), "%.127s", device != NULL ? device : "");
    /* One metric may become several samples; each gets its own dedup key. */
    if (metric_id != NULL)
        snprintf(s->hk_uuid, sizeof(s->hk_uuid), "%.36s:%.26s", metric_id, suffix);
    s->value = value;
    s->start_ms = start;
    s->end_ms = end;
    return s;
}

/* Validate and convert metrics[i] at pointer ptr. */
static void parse_metric(struct check *in, json_t *m, const char *ptr, const char *user_id, int64_t default_ts,
                         struct upload_samples *out, json_t *seen_ids)
{
    static const char *const allowed[] = {
        "metric_id", "metric_type", "biometric_data", "sleep_data", "activity_data", "mental_health_data", "device_id",
        "metadata",  "start_date",  "end_date",       NULL};
    char p[256];
    if (!json_is_object(m)) {
        check_error(in, ptr, "must be an object");
        return;
    }
    check_only(in, m, ptr, allowed);
    const char *type = check_string(in, m, ptr, "metric_type", 1, 1, 64);
    const char *metric_id = check_string(in, m, ptr, "metric_id", 0, 36, 36);
    if (metric_id != NULL) {
        snprintf(p, sizeof(p), "%s/metric_id", ptr);
        if (!uuid_is_valid(metric_id))
            check_error(in, p, "must be a UUID");
        else if (json_object_get(seen_ids, metric_id) != NULL)
            check_error(in, p, "duplicates an earlier metric_id in this upload");
        else
            json_object_set_new(seen_ids, metric_id, json_true());
    }
    const char *device = check_bytes(in, m, ptr, "device_id", 0, 1, 127);
    json_t *meta = json_object_get(m, "metadata");
    if (meta != NULL && !json_is_object(meta) && !json_is_null(meta)) {
        snprintf(p, sizeof(p), "%s/metadata", ptr);
        check_error(in, p, "must be an object");
    }
    int64_t start = default_ts, end;
    int sr = timestamp(in, m, ptr, "start_date", &start);
    int er = timestamp(in, m, ptr, "end_date", &end);
    /* A missing end makes a point at start; a missing start a point at end
     * (defaulting it to client_timestamp could put it after end_date: found
     * by the health_upload fuzz driver). Neither: the client's time. */
    if (er != 0)
        end = start;
    else if (sr == 1)
        start = end;
    if (sr == 0 && er == 0 && end < start) {
        snprintf(p, sizeof(p), "%s/end_date", ptr);
        check_error(in, p, "must not be before start_date");
    }
    if (type == NULL)
        return;
    size_t t = NTYPES;
    for (size_t i = 0; i < NTYPES; i++)
        if (strcmp(metric_types[i].type, type) == 0)
            t = i;
    if (t == NTYPES) {
        snprintf(p, sizeof(p), "%s/metric_type", ptr);
        check_error(in, p,
                    "must be one of heart_rate, heart_rate_variability, blood_pressure, blood_oxygen, "
                    "respiratory_rate, sleep_analysis, activity_level, stress_indicators, mood_assessment, "
                    "cognitive_metrics, environmental, body_temperature, blood_glucose");
        return;
    }
    enum payload want = metric_types[t].payload;
    /* The type decides the payload: it is required, and the others are not allowed. */
    for (int k = P_BIOMETRIC; k <= P_MENTAL; k++) {
        json_t *pl = json_object_get(m, payload_names[k]);
        if (pl != NULL && !json_is_null(pl) && (enum payload)k != want) {
            snprintf(p, sizeof(p), "%s/%s", ptr, payload_names[k]);
            check_error(in, p, "not allowed for metric_type %s (use %s)", type, payload_names[want]);
        }
    }
    json_t *pl = json_object_get(m, payload_names[want]);
    snprintf(p, sizeof(p), "%s/%s", ptr, payload_names[want]);
    if (pl == NULL || json_is_null(pl)) {
        check_error(in, p, "is required for metric_type %s", type);
        return;
    }
    if (!json_is_object(pl)) {
        check_error(in, p, "must be an object");
        return;
    }
    int before = in->nerrors;
    if (want == P_BIOMETRIC) {
        double v[8];
        fields(in, pl, p, biometric_fields, 8, NULL, v);
        const char *req = metric_types[t].required_field;
        if (req != NULL && json_object_get(pl, req) == NULL) {
            char q[300];
            snprintf(q, sizeof(q), "%s/%s", p, req);
            check_error(in, q, "is required for metric_type %s", type);
        }
        int has_sys = json_object_get(pl, "blood_pressure_systolic") != NULL;
        int has_dia = json_object_get(pl, "blood_pressure_diastolic") != NULL;
        if ((strcmp(type, "blood_pressure") == 0 && (!has_sys || !has_dia)) || has_sys != has_dia) {
            char q[300];
            snprintf(q, sizeof(q), "%s/%s", p, has_sys ? "blood_pressure_diastolic" : "blood_pressure_systolic");
            check_error(in, q, "blood pressure needs both systolic and diastolic values");
        }
        if (isfinite(v[1]) && isfinite(v[2]) && v[2] >= v[1]) {
            char q[300];
            snprintf(q, sizeof(q), "%s/blood_pressure_diastolic", p);
            check_error(in, q, "must be lower than blood_pressure_systolic");
        }
        if (in->nerrors != before)
            return;
        for (size_t i = 0; i < 8; i++) {
            if (!isfinite(v[i]) || biometric_fields[i].type == NULL)
                continue;
            new_sample(out, user_id, biometric_fields[i].type, biometric_fields[i].unit, v[i], start, end, device,
                       metric_id, biometric_fields[i].name);
        }
        if (isfinite(v[1])) {
            struct store_sample *s = new_sample(out, user_id, HK_T_BLOOD_PRESSURE, "mmHg", v[1], start, end, device,
                                                metric_id, "blood_pressure");
            if (s != NULL)
                s->value2 = v[2];
        }
    } else if (want == P_ACTIVITY) {
        static const char *const extra[] = {"date", NULL};
        double v[8];
        fields(in, pl, p, activity_fields, 8, extra, v);
        int any = 0;
        for (size_t i = 0; i < 8; i++)
            any |= isfinite(v[i]);
        if (!any && in->nerrors == before)
            check_error(in, p, "needs at least one activity value");
        int64_t day = start;
        if (timestamp(in, pl, p, "date", &day) == 0 && sr != 0) {
            start = day;
            end = er == 0 ? end : day;
        }
        if (in->nerrors != before)
            return;
        for (size_t i = 0; i < 8; i++)
            if (isfinite(v[i]) && activity_fields[i].type != NULL)
                new_sample(out, user_id, activity_fields[i].type, activity_fields[i].unit, v[i], start, end, device,
                           metric_id, activity_fields[i].name);
    } else if (want == P_SLEEP) {
        static const char *const extra[] = {"sleep_stages", "sleep_start", "sleep_end", NULL};
        double v[4];
        fields(in, pl, p, sleep_fields, 4, extra, v);
        if (json_object_get(pl, "total_sleep_minutes") == NULL) {
            char q[300];
            snprintf(q, sizeof(q), "%s/total_sleep_minutes", p);
            check_error(in, q, "is required");
        }
        int64_t s0 = 0, s1 = 0;
        int r0 = timestamp(in, pl, p, "sleep_start", &s0), r1 = timestamp(in, pl, p, "sleep_end", &s1);
        char q[300];
        if (r0 == 1 || r1 == 1) {
            snprintf(q, sizeof(q), "%s/%s", p, r0 == 1 ? "sleep_start" : "sleep_end");
            check_error(in, q, "is required");
        } else if (r0 == 0 && r1 == 0) {
            snprintf(q, sizeof(q), "%s/sleep_end", p);
            if (s1 <= s0)
                check_error(in, q, "must be after sleep_start");
            else if (isfinite(v[0]) && fabs((double)(s1 - s0) / 60000.0 - v[0]) > 30.0)
                check_error(in, q, "must be within 30 minutes of sleep_start + total_sleep_minutes");
        }
        json_t *stages = json_object_get(pl, "sleep_stages");
        if (stages != NULL && !json_is_null(stages)) {
            snprintf(q, sizeof(q), "%s/sleep_stages", p);
            if (!json_is_object(stages)) {
                check_error(in, q, "must be an object");
            } else {
                static const struct field stage_fields[] = {{"awake", 0, 1440, 0, NULL, NULL},
                                                            {"light", 0, 1440, 0, NULL, NULL},
                                                            {"deep", 0, 1440, 0, NULL, NULL},
                                                            {"rem", 0, 1440, 0, NULL, NULL}};
                double sv[4];
                fields(in, stages, q, stage_fields, 4, NULL, sv);
            }
        }
        if (in->nerrors != before)
            return;
        struct store_sample *s =
            new_sample(out, user_id, "sleep_session", "min", v[0], s0, s1, device, metric_id, "sleep");
        if (s != NULL)
            s->payload = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
    } else if (want == P_MENTAL) {
        static const char *const extra[] = {"mood_score", "notes", "timestamp", NULL};
        double v[6];
        fields(in, pl, p, mental_fields, 6, extra, v);
        char q[300];
        json_t *mood = json_object_get(pl, "mood_score");
        if (mood != NULL && !json_is_null(mood)) {
            int ok = 0;
            for (size_t i = 0; json_is_string(mood) && i < 5; i++)
                ok |= strcmp(json_string_value(mood), moods[i]) == 0;
            if (!ok) {
                snprintf(q, sizeof(q), "%s/mood_score", p);
                check_error(in, q, "must be one of very_low, low, neutral, good, excellent");
            }
        } else if (metric_types[t].required_field != NULL) {
            snprintf(q, sizeof(q), "%s/mood_score", p);
            check_error(in, q, "is required for metric_type %s", type);
        }
        (void)check_string(in, pl, p, "notes", 0, 0, LIMIT_NOTES_CHARS);
        int64_t ts = start;
        if (timestamp(in, pl, p, "timestamp", &ts) == 0 && sr != 0)
            start = end = ts;
        if (in->nerrors != before)
            return;
        struct store_sample *s = new_sample(out, user_id, type, "", NAN, start, end, device, metric_id, "mental");
        if (s != NULL) {
            /* Free text stays out of the numeric columns; the payload holds it
             * (and the raw body is encrypted). */
            s->payload = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
            for (size_t i = 0; i < 6; i++)
                if (isfinite(v[i]) && strcmp(mental_fields[i].name, "stress_level") == 0)
                    s->value = v[i];
        }
    } else {
        if (meta == NULL || !json_is_object(meta) || json_object_size(meta) == 0) {
            snprintf(p, sizeof(p), "%s/metadata", ptr);
            check_error(in, p, "is required (an object of readings) for metric_type environmental");
            return;
        }
        struct store_sample *s =
            new_sample(out, user_id, "environmental", "", NAN, start, end, device, metric_id, "environmental");
        if (s != NULL)
            s->payload = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
    }
}

int upload_parse_health_data(json_t *body, const char *user_id, size_t max_metrics, struct check *in,
                             struct upload_samples *out, const char **source_out, const char **sync_out,
                             int64_t *client_ts_ms)
{
    static const char *const allowed[] = {"user_id",          "metrics",    "upload_source",
                                          "client_timestamp", "sync_token", NULL};
    /* The owner first, before any field error is recorded: a body for
     * another user is refused as such (403), whatever else is wrong in it. */
    const char *uid = check_string(in, body, "", "user_id", 1, 1, 64);
    if (uid != NULL && strcasecmp(uid, user_id) != 0)
        return INGEST_EOWNER;
    check_only(in, body, "", allowed);
    /* Stored in columns of fixed size: limits in bytes (#16.8). */
    *source_out = check_bytes(in, body, "", "upload_source", 1, 1, 63);
    *sync_out = check_bytes(in, body, "", "sync_token", 0, 1, LIMIT_SYNC_TOKEN);
    *client_ts_ms = time_now_ms();
    json_t *ct = json_object_get(body, "client_timestamp");
    if (ct == NULL || json_is_null(ct))
        check_error(in, "/client_timestamp", "is required");
    else if (!json_is_string(ct) || time_parse_rfc3339(json_string_value(ct), client_ts_ms, NULL) != 0)
        check_error(in, "/client_timestamp", "must be an RFC 3339 date-time with offset");
    json_t *metrics = json_object_get(body, "metrics");
    if (!json_is_array(metrics)) {
        check_error(in, "/metrics", metrics == NULL ? "is required" : "must be an array");
        return INGEST_EINVALID;
    }
    size_t n = json_array_size(metrics);
    if (n == 0 || n > max_metrics) {
        check_error(in, "/metrics", "must hold 1 to %zu metrics", max_metrics);
        return INGEST_EINVALID;
    }
    json_t *seen = json_object();
    for (size_t i = 0; i < n; i++) {
        char ptr[64];
        snprintf(ptr, sizeof(ptr), "/metrics/%zu", i);
        parse_metric(in, json_array_get(metrics, i), ptr, user_id, *client_ts_ms, out, seen);
    }
    json_decref(seen);
    return in->nerrors > 0 ? INGEST_EINVALID : 0;
}
