/*
 * app_sample_test.c — the iOS app's sync sample to a canonical sample
 * (src/ingest/app_sample.c): the four types, their values and units, the
 * refusals with their members, and the dedup key, which must be the one an
 * Apple Health import of the same sample derives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/app_sample.h"
#include "ingest/apple_export.h"
#include "ingest/healthkit.h"

#define USER "0190f0d8-5b3c-7cc0-8000-000000000001"
/* 2025-06-24T10:00:00Z and 10:30:00Z in epoch ms */
#define T10 1750759200000LL
#define T1030 1750761000000LL

static int map(const char *json, struct store_sample *out, struct app_sample_error *err)
{
    json_error_t je;
    json_t *s = json_loads(json, 0, &je);
    assert_non_null(s);
    memset(out, 0, sizeof(*out));
    out->value2 = NAN;
    memset(err, 0, sizeof(*err));
    int rc = app_sample_map(s, USER, out, err);
    json_decref(s);
    return rc;
}

static void test_steps_key_is_the_imports(void **state)
{
    (void)state;
    struct store_sample s;
    struct app_sample_error e;
    assert_int_equal(map("{\"sample_type\":\"stepCount\",\"value\":320.0,\"unit\":\"count\","
                         "\"start_date\":\"2025-06-24T10:00:00Z\",\"end_date\":\"2025-06-24T10:30:00Z\","
                         "\"source_revision\":{\"source\":{\"name\":\"Watch\",\"bundle_identifier\":\"b\"},"
                         "\"product_type\":\"Watch7,1\"},\"unknown_member\":1}",
                         &s, &e),
                     APP_SAMPLE_OK);
    assert_string_equal(s.metric_type, HK_T_STEPS);
    assert_string_equal(s.unit, "count");
    assert_true(s.value == 320.0);
    assert_true(s.start_ms == T10 && s.end_ms == T1030);
    assert_string_equal(s.source, "Watch");
    assert_string_equal(s.device, "Watch7,1");
    assert_string_equal(s.user_id, USER);
    /* An export's <Record type="HKQuantityTypeIdentifierStepCount"
     * sourceName="Watch" unit="count" value="320" …> derives this key. */
    char want[64];
    apple_export_content_key("HKQuantityTypeIdentifierStepCount", T10, T1030, "320", "count", "Watch", want,
                             sizeof(want));
    assert_string_equal(s.hk_uuid, want);
    assert_int_equal(strlen(s.hk_uuid), 36);
    json_t *pl = json_loads(s.payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(pl, "hk_type")), "HKQuantityTypeIdentifierStepCount");
    assert_string_equal(json_string_value(json_object_get(pl, "bundle_identifier")), "b");
    json_decref(pl);
    free(s.payload);

    /* Same content, another source: another sample. Same everything: same key. */
    struct store_sample t;
    assert_int_equal(
        map("{\"sample_type\":\"stepCount\",\"value\":320,\"start_date\":\"2025-06-24T12:00:00+02:00\","
            "\"end_date\":\"2025-06-24T12:30:00+02:00\",\"source_revision\":{\"source\":{\"name\":\"Phone\"}}}",
            &t, &e),
        APP_SAMPLE_OK);
    assert_string_not_equal(t.hk_uuid, want);
    free(t.payload);
    assert_int_equal(
        map("{\"sample_type\":\"stepCount\",\"value\":320,\"start_date\":\"2025-06-24T12:00:00+02:00\","
            "\"end_date\":\"2025-06-24T12:30:00+02:00\",\"source_revision\":{\"source\":{\"name\":\"Watch\"}}}",
            &t, &e),
        APP_SAMPLE_OK);
    assert_string_equal(t.hk_uuid, want); /* default unit "count", offset only a notation */
    free(t.payload);
}

static void test_heart_rates_and_sleep(void **state)
{
    (void)state;
    struct store_sample s;
    struct app_sample_error e;
    assert_int_equal(map("{\"sample_type\":\"heartRate\",\"value\":72.5,\"start_date\":\"2025-06-24T10:00:00Z\","
                         "\"end_date\":\"2025-06-24T10:00:00Z\"}",
                         &s, &e),
                     APP_SAMPLE_OK);
    assert_string_equal(s.metric_type, HK_T_HEART_RATE);
    assert_string_equal(s.unit, "count/min");
    assert_true(s.value == 72.5);
    assert_string_equal(s.source, "healthkit");
    free(s.payload);
    /* 1.5 count/s = 90 count/min */
    assert_int_equal(map("{\"sample_type\":\"restingHeartRate\",\"value\":1.5,\"unit\":\"count/s\","
                         "\"start_date\":\"2025-06-24T10:00:00Z\",\"end_date\":\"2025-06-24T10:00:00Z\"}",
                         &s, &e),
                     APP_SAMPLE_OK);
    assert_string_equal(s.metric_type, HK_T_RESTING_HEART_RATE);
    assert_true(fabs(s.value - 90.0) < 1e-9);
    free(s.payload);
    /* Sleep: the stage from category_value, the value the duration (90 min),
     * whatever the app put in value. Key = the import's of
     * value="HKCategoryValueSleepAnalysisAsleepCore" without a unit. */
    assert_int_equal(map("{\"sample_type\":\"sleepAnalysis\",\"value\":12,\"category_value\":3,\"unit\":\"min\","
                         "\"start_date\":\"2025-06-24T10:00:00Z\",\"end_date\":\"2025-06-24T11:30:00Z\","
                         "\"metadata\":{\"sleep_stage\":\"core\"}}",
                         &s, &e),
                     APP_SAMPLE_OK);
    assert_string_equal(s.metric_type, HK_T_SLEEP);
    assert_true(s.value == 90.0);
    json_t *pl = json_loads(s.payload, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(pl, "category")), "asleep_core");
    assert_string_equal(json_string_value(json_object_get(json_object_get(pl, "metadata"), "sleep_stage")), "core");
    json_decref(pl);
    char want[64];
    apple_export_content_key("HKCategoryTypeIdentifierSleepAnalysis", T10, T10 + 5400000,
                             "HKCategoryValueSleepAnalysisAsleepCore", "", "", want, sizeof(want));
    assert_string_equal(s.hk_uuid, want);
    free(s.payload);
}

static void refused(const char *json, int rc, const char *member)
{
    struct store_sample s;
    struct app_sample_error e;
    int got = map(json, &s, &e);
    if (got != rc || strcmp(e.member, member) != 0)
        fail_msg("%s: rc %d member \"%s\" (%s); want %d \"%s\"", json, got, e.member, e.reason, rc, member);
    assert_true(e.reason[0] != '\0');
    assert_null(s.payload);
}

#define D "\"start_date\":\"2025-06-24T10:00:00Z\",\"end_date\":\"2025-06-24T10:00:00Z\""

static void test_refusals(void **state)
{
    (void)state;
    refused("[]", APP_SAMPLE_INVALID, "");
    refused("{\"value\":1," D "}", APP_SAMPLE_INVALID, "/sample_type");
    refused("{\"sample_type\":\"bloodGlucose\",\"value\":1," D "}", APP_SAMPLE_UNSUPPORTED, "/sample_type");
    refused("{\"sample_type\":\"heartRate\"," D "}", APP_SAMPLE_INVALID, "/value");
    refused("{\"sample_type\":\"heartRate\",\"value\":\"72\"," D "}", APP_SAMPLE_INVALID, "/value");
    /* #16.9: ranges after conversion, so 1e308 or an overflow to inf is refused */
    refused("{\"sample_type\":\"heartRate\",\"value\":1e308," D "}", APP_SAMPLE_INVALID, "/value");
    refused("{\"sample_type\":\"heartRate\",\"value\":1e307,\"unit\":\"count/s\"," D "}", APP_SAMPLE_INVALID, "/value");
    refused("{\"sample_type\":\"heartRate\",\"value\":10," D "}", APP_SAMPLE_INVALID, "/value");
    refused("{\"sample_type\":\"stepCount\",\"value\":-1," D "}", APP_SAMPLE_INVALID, "/value");
    refused("{\"sample_type\":\"heartRate\",\"value\":70,\"unit\":\"km\"," D "}", APP_SAMPLE_INVALID, "/unit");
    refused("{\"sample_type\":\"heartRate\",\"value\":70,\"unit\":\"furlong/fortnight\"," D "}", APP_SAMPLE_INVALID,
            "/unit");
    refused("{\"sample_type\":\"sleepAnalysis\"," D "}", APP_SAMPLE_INVALID, "/category_value");
    refused("{\"sample_type\":\"sleepAnalysis\",\"category_value\":6," D "}", APP_SAMPLE_INVALID, "/category_value");
    refused("{\"sample_type\":\"sleepAnalysis\",\"category_value\":1.5," D "}", APP_SAMPLE_INVALID, "/category_value");
    refused("{\"sample_type\":\"sleepAnalysis\",\"category_value\":1,\"start_date\":\"2025-06-20T10:00:00Z\","
            "\"end_date\":\"2025-06-24T10:00:00Z\"}",
            APP_SAMPLE_INVALID, "/category_value"); /* 4 days */
    refused("{\"sample_type\":\"stepCount\",\"value\":1,\"start_date\":\"2025-06-24T10:00:00Z\","
            "\"end_date\":\"2025-06-24T09:00:00Z\"}",
            APP_SAMPLE_INVALID, "/end_date");
    refused("{\"sample_type\":\"stepCount\",\"value\":1,\"start_date\":\"2025-06-24 10:00\","
            "\"end_date\":\"2025-06-24T09:00:00Z\"}",
            APP_SAMPLE_INVALID, "/start_date");
    refused("{\"sample_type\":\"stepCount\",\"value\":1,\"start_date\":\"2025-06-24T10:00:00Z\"}", APP_SAMPLE_INVALID,
            "/end_date");
    refused("{\"sample_type\":\"stepCount\",\"value\":1,\"metadata\":[]," D "}", APP_SAMPLE_INVALID, "/metadata");
    refused("{\"sample_type\":\"stepCount\",\"value\":1,\"source_revision\":7," D "}", APP_SAMPLE_INVALID,
            "/source_revision");

    /* #16.8: text limits in bytes: 127 bytes fit the source column, 128 do
     * not, and nothing is cut in the middle of a character. */
    char json[1024], name[300];
    struct store_sample s;
    struct app_sample_error e;
    memset(name, 0, sizeof(name));
    for (int i = 0; i < 63; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2); /* é × 63 = 126 bytes */
    snprintf(json, sizeof(json),
             "{\"sample_type\":\"stepCount\",\"value\":1," D ",\"source_revision\":{\"source\":"
             "{\"name\":\"%s\"}}}",
             name);
    assert_int_equal(map(json, &s, &e), APP_SAMPLE_OK);
    assert_string_equal(s.source, name);
    free(s.payload);
    memcpy(name + 126, "\xc3\xa9", 2); /* 128 bytes */
    snprintf(json, sizeof(json),
             "{\"sample_type\":\"stepCount\",\"value\":1," D ",\"source_revision\":{\"source\":"
             "{\"name\":\"%s\"}}}",
             name);
    assert_int_equal(map(json, &s, &e), APP_SAMPLE_INVALID);
    assert_string_equal(e.member, "/source_revision/source/name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steps_key_is_the_imports),
        cmocka_unit_test(test_heart_rates_and_sleep),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
