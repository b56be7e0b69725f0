/*
 * app_sample.c — the iOS app's sync sample to a canonical sample. See
 * app_sample.h.
 */
#include "ingest/app_sample.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/timeutil.h"
#include "ingest/apple_export.h"
#include "ingest/healthkit.h"

#define QID "HKQuantityTypeIdentifier"
#define SLEEP_ID "HKCategoryTypeIdentifierSleepAnalysis"

/* The app's sample types and the HealthKit identifier and default unit each
 * stands for (the app converts with these units: ios-app.md). */
static const struct {
    const char *app, *hk, *unit;
} types[] = {
    {"stepCount", QID "StepCount", "count"},
    {"heartRate", QID "HeartRate", "count/min"},
    {"restingHeartRate", QID "RestingHeartRate", "count/min"},
    {"sleepAnalysis", SLEEP_ID, NULL},
};

/* The export's names of HKCategoryValueSleepAnalysis raw values 0–5, so the
 * content key is the one an import of the same sample derives. */
static const char *const sleep_names[] = {
    "HKCategoryValueSleepAnalysisInBed",      "HKCategoryValueSleepAnalysisAsleepUnspecified",
    "HKCategoryValueSleepAnalysisAwake",      "HKCategoryValueSleepAnalysisAsleepCore",
    "HKCategoryValueSleepAnalysisAsleepDeep", "HKCategoryValueSleepAnalysisAsleepREM",
};

static int fail(struct app_sample_error *err, int rc, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct app_sample_error *err, int rc, const char *member, const char *fmt, ...)
{
    va_list ap;
    snprintf(err->member, sizeof(err->member), "%s", member);
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
    return rc;
}

/* A string member that must fit `cap` bytes with its NUL (a column): NULL
 * when absent; -1 through *bad when present and not such a string. */
static const char *text(json_t *o, const char *name, size_t cap, int *bad)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) || json_string_length(v) >= cap) {
        *bad = 1;
        return NULL;
    }
    return json_string_value(v);
}

static int date(json_t *s, const char *name, int64_t *ms, int *off, struct app_sample_error *err)
{
    json_t *v = json_object_get(s, name);
    char member[40];
    snprintf(member, sizeof(member), "/%s", name);
    if (v == NULL || json_is_null(v))
        return fail(err, APP_SAMPLE_INVALID, member, "is required");
    if (!json_is_string(v) || time_parse_rfc3339(json_string_value(v), ms, off) != 0)
        return fail(err, APP_SAMPLE_INVALID, member, "must be an RFC 3339 date-time, e.g. 2025-06-24T10:00:00Z");
    return 0;
}

int app_sample_map(json_t *sample, const char *user_id, struct store_sample *out, struct app_sample_error *err)
{
    if (!json_is_object(sample))
        return fail(err, APP_SAMPLE_INVALID, "", "must be an object");
    json_t *tv = json_object_get(sample, "sample_type");
    if (!json_is_string(tv))
        return fail(err, APP_SAMPLE_INVALID, "/sample_type", tv == NULL ? "is required" : "must be a string");
    size_t t = sizeof(types) / sizeof(types[0]);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].app, json_string_value(tv)) == 0)
            t = i;
    if (t == sizeof(types) / sizeof(types[0]))
        return fail(err, APP_SAMPLE_UNSUPPORTED, "/sample_type",
                    "is not one of stepCount, heartRate, restingHeartRate, sleepAnalysis");

    int64_t start = 0, end = 0;
    int off = 0, off_end = 0;
    int rc = date(sample, "start_date", &start, &off, err);
    if (rc == 0)
        rc = date(sample, "end_date", &end, &off_end, err);
    if (rc != 0)
        return rc;
    if (end < start)
        return fail(err, APP_SAMPLE_INVALID, "/end_date", "must not be before start_date");

    json_t *v = json_object_get(sample, "value");
    if (v != NULL && !json_is_null(v) && !json_is_number(v))
        return fail(err, APP_SAMPLE_INVALID, "/value", "must be a number");
    int bad = 0;
    const char *unit = text(sample, "unit", sizeof(out->unit), &bad);
    if (bad)
        return fail(err, APP_SAMPLE_INVALID, "/unit", "must be a string of at most %zu bytes", sizeof(out->unit) - 1);
    json_t *meta = json_object_get(sample, "metadata");
    if (meta != NULL && !json_is_null(meta) && !json_is_object(meta))
        return fail(err, APP_SAMPLE_INVALID, "/metadata", "must be an object");

    /* source_revision: {source: {name, bundle_identifier}, version?,
     * product_type?, operating_system_version?} */
    const char *source = NULL, *bundle = NULL, *version = NULL, *product = NULL;
    json_t *rev = json_object_get(sample, "source_revision");
    if (rev != NULL && !json_is_null(rev)) {
        if (!json_is_object(rev))
            return fail(err, APP_SAMPLE_INVALID, "/source_revision", "must be an object");
        json_t *src = json_object_get(rev, "source");
        if (src != NULL && !json_is_null(src)) {
            if (!json_is_object(src))
                return fail(err, APP_SAMPLE_INVALID, "/source_revision/source", "must be an object");
            source = text(src, "name", sizeof(out->source), &bad);
            if (bad)
                return fail(err, APP_SAMPLE_INVALID, "/source_revision/source/name",
                            "must be a string of at most %zu bytes", sizeof(out->source) - 1);
            bundle = text(src, "bundle_identifier", 256, &bad);
            if (bad)
                return fail(err, APP_SAMPLE_INVALID, "/source_revision/source/bundle_identifier",
                            "must be a string of at most 255 bytes");
        }
        version = text(rev, "version", 128, &bad);
        if (bad)
            return fail(err, APP_SAMPLE_INVALID, "/source_revision/version", "must be a string of at most 127 bytes");
        product = text(rev, "product_type", sizeof(out->device), &bad);
        if (bad)
            return fail(err, APP_SAMPLE_INVALID, "/source_revision/product_type",
                        "must be a string of at most %zu bytes", sizeof(out->device) - 1);
    }

    struct hk_mapped m;
    char why[200], value_text[64];
    const char *key_unit;
    if (types[t].unit != NULL) {
        if (!json_is_number(v))
            return fail(err, APP_SAMPLE_INVALID, "/value", "is required for %s", types[t].app);
        double raw = json_number_value(v);
        key_unit = unit != NULL ? unit : types[t].unit;
        if (hk_map_quantity(types[t].hk, key_unit, raw, &m, why, sizeof(why)) != 0)
            return fail(err, APP_SAMPLE_INVALID, strstr(why, "value") != NULL ? "/value" : "/unit", "%s", why);
        /* The export writes values as short decimals ("72.5", "120"): %.15g
         * gives the same text for the values HealthKit holds. */
        snprintf(value_text, sizeof(value_text), "%.15g", raw);
    } else {
        json_t *cv = json_object_get(sample, "category_value");
        if (cv == NULL || json_is_null(cv))
            return fail(err, APP_SAMPLE_INVALID, "/category_value", "is required for sleepAnalysis");
        if (!json_is_integer(cv) || json_integer_value(cv) < 0 || json_integer_value(cv) > 5)
            return fail(err, APP_SAMPLE_INVALID, "/category_value",
                        "must be an HKCategoryValueSleepAnalysis raw value from 0 to 5");
        if (v != NULL && !json_is_null(v) && !isfinite(json_number_value(v)))
            return fail(err, APP_SAMPLE_INVALID, "/value", "must be a finite number");
        char code[8];
        snprintf(code, sizeof(code), "%d", (int)json_integer_value(cv));
        if (hk_map_category(SLEEP_ID, code, (double)(end - start) / 60000.0, &m, why, sizeof(why)) != 0)
            return fail(err, APP_SAMPLE_INVALID, strstr(why, "end_date") != NULL ? "/end_date" : "/category_value",
                        "%s", why);
        snprintf(value_text, sizeof(value_text), "%s", sleep_names[json_integer_value(cv)]);
        key_unit = "";
    }

    json_t *pl =
        json_pack("{s:i, s:s, s:s}", "tz_offset_min", off, "hk_type", types[t].hk, "app_sample_type", types[t].app);
    if (pl == NULL)
        return APP_SAMPLE_ENOMEM;
    if (off_end != off)
        json_object_set_new(pl, "end_tz_offset_min", json_integer(off_end));
    if (m.category != NULL)
        json_object_set_new(pl, "category", json_string(m.category));
    if (version != NULL)
        json_object_set_new(pl, "source_version", json_string(version));
    if (bundle != NULL)
        json_object_set_new(pl, "bundle_identifier", json_string(bundle));
    /* The app's metadata ({"sleep_stage": "..."}) rides along when small. */
    if (json_is_object(meta) && json_object_size(meta) > 0) {
        if (json_dumpb(meta, NULL, 0, JSON_COMPACT) <= 1024)
            json_object_set(pl, "metadata", meta);
        else
            json_object_set_new(pl, "metadata_truncated", json_true());
    }
    out->payload = json_dumps(pl, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(pl);
    if (out->payload == NULL)
        return APP_SAMPLE_ENOMEM;

    snprintf(out->user_id, sizeof(out->user_id), "%s", user_id);
    snprintf(out->metric_type, sizeof(out->metric_type), "%s", m.metric_type);
    snprintf(out->unit, sizeof(out->unit), "%s", m.unit);
    snprintf(out->source, sizeof(out->source), "%s", source != NULL ? source : "healthkit");
    snprintf(out->device, sizeof(out->device), "%s", product != NULL ? product : "");
    out->value = m.value;
    out->start_ms = start;
    out->end_ms = end;
    apple_export_content_key(types[t].hk, start, end, value_text, key_unit, source != NULL ? source : "", out->hk_uuid,
                             sizeof(out->hk_uuid));
    return APP_SAMPLE_OK;
}
