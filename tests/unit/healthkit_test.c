/*
 * healthkit_test.c — identifier mapping and unit conversions, each checked
 * against a value computed by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "ingest/healthkit.h"
#include "ingest/hk_upload.h"
#include "ingest/upload.h"

static void map(const char *id, const char *unit, double v, const char *type, const char *stored, double want)
{
    struct hk_mapped m;
    char err[160];
    if (hk_map_quantity(id, unit, v, &m, err, sizeof(err)) != 0)
        fail_msg("%s %s: %s", id, unit, err);
    assert_string_equal(m.metric_type, type);
    assert_string_equal(m.unit, stored);
    if (fabs(m.value - want) > 1e-9 * fmax(1.0, fabs(want)))
        fail_msg("%s %g %s: got %.12g, want %.12g", id, v, unit, m.value, want);
}

static void test_quantities(void **state)
{
    (void)state;
    map("HKQuantityTypeIdentifierStepCount", "count", 1234, "steps", "count", 1234);
    map("HeartRate", "count/min", 62, "heart_rate", "count/min", 62);
    map("HKQuantityTypeIdentifierHeartRate", "count/s", 1.5, "heart_rate", "count/min", 90); /* 1.5 × 60 */
    map("HKQuantityTypeIdentifierRestingHeartRate", "count/min", 55, "resting_heart_rate", "count/min", 55);
    map("HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms", 48.2, "heart_rate_variability", "ms", 48.2);
    map("HKQuantityTypeIdentifierRespiratoryRate", "count/min", 14, "respiratory_rate", "count/min", 14);
    /* HealthKit's % is a fraction: 0.97 → 97 %. */
    map("HKQuantityTypeIdentifierOxygenSaturation", "%", 0.97, "blood_oxygen", "%", 97);
    map("HKQuantityTypeIdentifierBodyTemperature", "degC", 36.6, "body_temperature", "degC", 36.6);
    /* 98.6 °F = (98.6 − 32) × 5/9 = 37 °C. */
    map("HKQuantityTypeIdentifierBodyTemperature", "degF", 98.6, "body_temperature", "degC", 37.0);
    map("HKQuantityTypeIdentifierBloodGlucose", "mg/dL", 95, "blood_glucose", "mg/dL", 95);
    /* 5.5 mmol/L × 18.01558800000541 = 99.0857340000298 mg/dL. */
    map("HKQuantityTypeIdentifierBloodGlucose", "mmol<180.1558800000541>/L", 5.5, "blood_glucose", "mg/dL",
        99.0857340000298);
    map("HKQuantityTypeIdentifierActiveEnergyBurned", "kcal", 250, "active_energy", "kcal", 250);
    /* 418.4 kJ / 4.184 = 100 kcal. */
    map("HKQuantityTypeIdentifierActiveEnergyBurned", "kJ", 418.4, "active_energy", "kcal", 100);
    map("HKQuantityTypeIdentifierBasalEnergyBurned", "Cal", 1600, "basal_energy", "kcal", 1600);
    map("HKQuantityTypeIdentifierDistanceWalkingRunning", "km", 5.2, "distance", "km", 5.2);
    map("HKQuantityTypeIdentifierDistanceWalkingRunning", "m", 850, "distance", "km", 0.85);
    /* 3.1 mi × 1.609344 = 4.9889664 km. */
    map("HKQuantityTypeIdentifierDistanceWalkingRunning", "mi", 3.1, "distance", "km", 4.9889664);
    map("HKQuantityTypeIdentifierFlightsClimbed", "count", 12, "flights_climbed", "count", 12);
    map("HKQuantityTypeIdentifierAppleExerciseTime", "min", 30, "exercise_minutes", "min", 30);
    map("HKQuantityTypeIdentifierAppleExerciseTime", "s", 90, "exercise_minutes", "min", 1.5);
    map("HKQuantityTypeIdentifierVO2Max", "mL/min·kg", 42.5, "vo2max", "mL/(kg*min)", 42.5);
    map("HKQuantityTypeIdentifierBloodPressureSystolic", "mmHg", 120, "blood_pressure_systolic", "mmHg", 120);
    map("HKQuantityTypeIdentifierBloodPressureDiastolic", "mmHg", 80, "blood_pressure_diastolic", "mmHg", 80);
}

static void expect_fail(const char *id, const char *unit, double v, int code, const char *needle)
{
    struct hk_mapped m;
    char err[160] = "";
    assert_int_equal(hk_map_quantity(id, unit, v, &m, err, sizeof(err)), code);
    if (strstr(err, needle) == NULL)
        fail_msg("%s %s: error \"%s\" lacks \"%s\"", id, unit, err, needle);
}

static void test_quantity_errors(void **state)
{
    (void)state;
    /* The caller tells "report, do not refuse" from "refuse" by the code,
     * never by the text. */
    expect_fail("HKQuantityTypeIdentifierDietaryCaffeine", "mg", 80, HK_EUNKNOWN_TYPE,
                "unknown HealthKit quantity type");
    expect_fail("HKQuantityTypeIdentifierHeartRate", "beats", 60, HK_EUNIT, "unknown HealthKit unit");
    expect_fail("HKQuantityTypeIdentifierHeartRate", "ms", 60, HK_EUNIT, "does not fit HeartRate");
    expect_fail("HKQuantityTypeIdentifierStepCount", "count", NAN, HK_EVALUE, "finite");
    expect_fail("HKQuantityTypeIdentifierStepCount", "count", INFINITY, HK_EVALUE, "finite");
}

static void test_categories(void **state)
{
    (void)state;
    struct hk_mapped m;
    char err[160];
    const char *values[][2] = {{"0", "in_bed"},
                               {"HKCategoryValueSleepAnalysisInBed", "in_bed"},
                               {"1", "asleep_unspecified"},
                               {"HKCategoryValueSleepAnalysisAsleep", "asleep_unspecified"},
                               {"2", "awake"},
                               {"3", "asleep_core"},
                               {"HKCategoryValueSleepAnalysisAsleepDeep", "asleep_deep"},
                               {"5", "asleep_rem"}};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        assert_int_equal(
            hk_map_category("HKCategoryTypeIdentifierSleepAnalysis", values[i][0], 42, &m, err, sizeof(err)), 0);
        assert_string_equal(m.metric_type, "sleep_stage");
        assert_string_equal(m.category, values[i][1]);
        assert_true(m.value == 42);
    }
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierSleepAnalysis", "7", 1, &m, err, sizeof(err)), HK_EVALUE);
    assert_non_null(strstr(err, "unknown sleep analysis value"));
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierMindfulSession", NULL, 10, &m, err, sizeof(err)), 0);
    assert_string_equal(m.metric_type, "mindful_minutes");
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierToothbrushingEvent", "0", 2, &m, err, sizeof(err)),
                     HK_EUNKNOWN_TYPE);
    assert_non_null(strstr(err, "unknown HealthKit category type"));
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierSleepAnalysis", "0", -1, &m, err, sizeof(err)),
                     HK_EVALUE);
}

static void test_convert(void **state)
{
    (void)state;
    double v;
    assert_int_equal(hk_unit_convert("degC", "degF", 100, &v), 0);
    assert_true(fabs(v - 212) < 1e-9);
    assert_int_equal(hk_unit_convert("K", "degC", 273.15, &v), 0);
    assert_true(fabs(v) < 1e-9);
    assert_int_equal(hk_unit_convert("km", "mi", 1.609344, &v), 0);
    assert_true(fabs(v - 1) < 1e-12);
    assert_int_equal(hk_unit_convert("kcal", "km", 1, &v), HK_EUNIT);
    assert_int_equal(hk_unit_convert("furlong", "km", 1, &v), HK_EUNIT);
}

/* #16.9: ranges apply after conversion: a value that overflows to inf, or
 * one past what a sample can hold, is refused whatever its unit; the edges
 * are kept. */
static void test_ranges_after_conversion(void **state)
{
    (void)state;
    struct hk_mapped m;
    char err[200];
    assert_int_equal(
        hk_map_quantity("HKQuantityTypeIdentifierDistanceWalkingRunning", "mi", 1.7e308, &m, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "value"));
    assert_int_equal(hk_map_quantity("HKQuantityTypeIdentifierHeartRate", "count/min", 1e308, &m, err, sizeof(err)),
                     -1);
    assert_int_equal(hk_map_quantity("HKQuantityTypeIdentifierBodyTemperature", "degF", 1e300, &m, err, sizeof(err)),
                     -1);
    assert_int_equal(hk_map_quantity("HKQuantityTypeIdentifierHeartRate", "count/min", 300, &m, err, sizeof(err)), 0);
    assert_int_equal(hk_map_quantity("HKQuantityTypeIdentifierHeartRate", "count/min", 300.5, &m, err, sizeof(err)),
                     -1);
    assert_int_equal(hk_map_quantity("HKQuantityTypeIdentifierBodyTemperature", "degF", 98.6, &m, err, sizeof(err)), 0);
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierSleepAnalysis", "3", 2880, &m, err, sizeof(err)), 0);
    assert_int_equal(hk_map_category("HKCategoryTypeIdentifierSleepAnalysis", "3", 2881, &m, err, sizeof(err)), -1);
    assert_int_equal(hk_value_plausible(HK_T_WORKOUT, 1e9, err, sizeof(err)), 0); /* no bound, finite */
    assert_int_equal(hk_value_plausible(HK_T_WORKOUT, INFINITY, err, sizeof(err)), -1);
}

static void record(void *ctx, const char *pointer, const char *message)
{
    (void)message;
    snprintf(ctx, 128, "%s", pointer);
}

/* hk_upload_parse over a JSON text as user "u1": its result, the samples
 * in *out (caller frees), the number of errors and the last error's pointer
 * in where (128 bytes). */
static int parse_upload(const char *text, struct upload_samples *out, int *nerrors, char *where)
{
    json_t *body = json_loads(text, 0, NULL);
    assert_non_null(body);
    struct check c;
    check_init(&c, record, where);
    struct hk_upload_counts counts;
    const char *sync = NULL;
    json_t *unsupported = json_array();
    memset(out, 0, sizeof(*out));
    int rc = hk_upload_parse(body, "u1", &c, out, unsupported, &counts, &sync);
    *nerrors = c.nerrors;
    json_decref(unsupported);
    json_decref(body);
    return rc;
}

/* hk_upload_parse writes each sample's payload by hand (once per sample, on
 * the upload's hot path): it must be byte for byte what jansson writes for
 * {"tz_offset_min": N[, "category": C]} with JSON_COMPACT, for every offset
 * sign and width and every sleep stage. */
static void test_upload_payloads(void **state)
{
    (void)state;
    static const char *const offsets[] = {"Z", "+05:30", "-12:00", "+14:00", "-00:45"};
    static const int minutes[] = {0, 330, -720, 840, -45};
    for (int o = 0; o < 5; o++)
        for (int stage = 0; stage <= 5; stage++) {
            char text[1024];
            snprintf(text, sizeof(text),
                     "{\"user_id\":\"u1\",\"quantity_samples\":[{\"identifier\":"
                     "\"HKQuantityTypeIdentifierHeartRate\",\"value\":61,\"unit\":\"count/min\","
                     "\"start_date\":\"2026-11-20T07:00:00%s\",\"end_date\":\"2026-11-20T07:01:00%s\"}],"
                     "\"category_samples\":[{\"identifier\":\"HKCategoryTypeIdentifierSleepAnalysis\","
                     "\"value\":%d,\"start_date\":\"2026-11-20T01:00:00%s\",\"end_date\":"
                     "\"2026-11-20T02:00:00%s\"}]}",
                     offsets[o], offsets[o], stage, offsets[o], offsets[o]);
            char where[128] = "";
            struct upload_samples out;
            int nerrors = 0;
            int rc = parse_upload(text, &out, &nerrors, where);
            if (rc != 0)
                fail_msg("offset %s stage %d: rc %d at %s", offsets[o], stage, rc, where);
            assert_int_equal(upload_samples_complete(&out), 0);
            assert_int_equal(out.n, 2);
            json_t *want = json_pack("{s:i}", "tz_offset_min", minutes[o]);
            char *w = json_dumps(want, JSON_COMPACT);
            assert_string_equal(out.v[0].payload, w);
            free(w);
            json_t *got = json_loads(out.v[1].payload, 0, NULL);
            assert_non_null(got);
            assert_int_equal(json_integer_value(json_object_get(got, "tz_offset_min")), minutes[o]);
            const char *cat = json_string_value(json_object_get(got, "category"));
            assert_non_null(cat);
            json_object_set_new(want, "category", json_string(cat));
            w = json_dumps(want, JSON_COMPACT);
            assert_string_equal(out.v[1].payload, w);
            free(w);
            json_decref(got);
            json_decref(want);
            upload_samples_free(&out);
        }
}

/* An error deep in a list names the sample's pointer, built only on error. */
static void test_upload_error_pointer(void **state)
{
    (void)state;
    static char text[1 << 19];
    size_t o = (size_t)snprintf(text, sizeof(text), "{\"user_id\":\"u1\",\"quantity_samples\":[");
    for (int i = 0; i < 1234; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              "%s{\"identifier\":\"HKQuantityTypeIdentifierHeartRate\",\"value\":61,"
                              "\"unit\":\"count/min\",\"start_date\":\"%s\",\"end_date\":"
                              "\"2026-11-20T07:01:00Z\"}",
                              i ? "," : "", i == 1207 ? "yesterday" : "2026-11-20T07:00:00Z");
    assert_true(o + 3 < sizeof(text));
    snprintf(text + o, sizeof(text) - o, "]}");
    char where[128] = "";
    struct upload_samples out;
    int nerrors = 0;
    assert_int_not_equal(parse_upload(text, &out, &nerrors, where), 0);
    assert_int_equal(nerrors, 1);
    assert_string_equal(where, "/quantity_samples/1207/start_date");
    upload_samples_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranges_after_conversion),
        cmocka_unit_test(test_quantities),
        cmocka_unit_test(test_quantity_errors),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_upload_payloads),
        cmocka_unit_test(test_upload_error_pointer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
