/*
 * recording_test.c — ingest/recording.h beyond the readers (whose cases are
 * in analyze_test.c): a recording's epochs as activity_count samples, with
 * hand-computed instants, keys and batching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "core/err.h"
#include "ingest/recording.h"

/* 2024-03-11T12:00 local at +01:00 is 11:00Z: 19793 days + 11 h. */
#define T0_MS 1710154800000LL

/* An AWD of 30-s epochs (code 2) from 11-Mar-2024 12:00: 10, 0, <bad>, 7. */
static const char AWD30[] = "S1\n11-Mar-2024\n12:00\n2\n40\nSN\nF\n10\n0\n3 M\n7\n";

static void parse30(struct recording_series *s)
{
    char err[128] = "";
    assert_int_equal(recording_awd_parse(AWD30, strlen(AWD30), 0, 0, s, err, sizeof(err)), 0);
    assert_int_equal(s->epoch_s, 30);
    assert_int_equal(s->epoch_n, 4);
}

static void test_epochs_become_samples_in_utc(void **st)
{
    (void)st;
    struct recording_series s;
    parse30(&s);
    struct recording_sample_opts o = {"u-1", "Actiwatch (AWD)", 60};
    struct upload_samples out = {0};
    size_t next = 0;
    assert_int_equal(recording_samples_next(&s, &o, &next, 100, &out), 0);
    assert_int_equal(next, recording_samples_total(&s));
    assert_int_equal(out.n, 4);
    for (size_t i = 0; i < 4; i++) {
        const struct store_sample *x = &out.v[i];
        assert_string_equal(x->metric_type, "activity_count");
        assert_string_equal(x->unit, "count");
        assert_string_equal(x->source, "Actiwatch (AWD)");
        assert_string_equal(x->user_id, "u-1");
        assert_int_equal(x->start_ms, T0_MS + (int64_t)i * 30000);
        assert_int_equal(x->end_ms, T0_MS + (int64_t)(i + 1) * 30000);
        assert_string_equal(x->payload, "{\"tz_offset_min\":60,\"epoch_s\":30}");
        assert_int_equal(strlen(x->hk_uuid), 36);
    }
    assert_true(out.v[0].value == 10.0 && out.v[1].value == 0.0 && out.v[2].value == 3.0 && out.v[3].value == 7.0);
    /* the key is the content: the same epoch again gives the same key, a
     * different value or time another one; its first 48 bits are the
     * start in ms (0x018e2d2b5b80 = 1710154800000) */
    assert_memory_equal(out.v[0].hk_uuid, "018e2d2b-5b80", 13);
    struct upload_samples again = {0};
    next = 0;
    assert_int_equal(recording_samples_next(&s, &o, &next, 1, &again), 0);
    assert_int_equal(next, 1);
    assert_string_equal(again.v[0].hk_uuid, out.v[0].hk_uuid);
    assert_string_not_equal(out.v[0].hk_uuid, out.v[1].hk_uuid);
    upload_samples_free(&again);
    upload_samples_free(&out);
    free(s.values);
}

static void test_batches_skip_missing_epochs(void **st)
{
    (void)st;
    /* CSV rows one minute apart with a gap: 3 valid of 4 minutes */
    const char csv[] = "2024-03-11T00:00:00,1\n2024-03-11T00:01:00,NaN\n2024-03-11T00:02:00,2\n2024-03-11T00:03:00,3\n";
    struct recording_series s;
    char err[128] = "";
    assert_int_equal(recording_csv_parse(csv, strlen(csv), 0, 0, &s, err, sizeof(err)), 0);
    struct recording_sample_opts o = {"u", "Recording (CSV)", 0};
    struct upload_samples out = {0};
    size_t next = 0, batches = 0, total = 0;
    while (next < recording_samples_total(&s)) {
        assert_int_equal(recording_samples_next(&s, &o, &next, 2, &out), 0);
        assert_true(out.n <= 2);
        total += out.n;
        batches++;
        upload_samples_free(&out);
    }
    assert_int_equal(total, 3);
    assert_int_equal(recording_samples_count(&s), 3);
    assert_int_equal(batches, 2);
    free(s.values);
}

static void test_refuses_bad_options(void **st)
{
    (void)st;
    struct recording_series s;
    parse30(&s);
    struct upload_samples out = {0};
    size_t next = 0;
    struct recording_sample_opts far = {"u", "x", 1081};
    assert_int_equal(recording_samples_next(&s, &far, &next, 10, &out), INGEST_EINVAL);
    struct recording_sample_opts nouser = {NULL, "x", 0};
    assert_int_equal(recording_samples_next(&s, &nouser, &next, 10, &out), INGEST_EINVAL);
    assert_int_equal(out.n, 0);
    free(s.values);
}

static void test_format_names(void **st)
{
    (void)st;
    assert_string_equal(recording_format_name(RECORDING_FMT_AWD), "awd");
    assert_string_equal(recording_format_name(RECORDING_FMT_RPX), "actiware");
    assert_string_equal(recording_format_label(RECORDING_FMT_CSV), "Recording (CSV)");
    assert_int_equal(recording_format_detect("a.AWD", "", 0), RECORDING_FMT_AWD);
    assert_int_equal(recording_format_detect("a.txt", "Condor Instruments Report", 25), RECORDING_FMT_ATR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epochs_become_samples_in_utc),
        cmocka_unit_test(test_batches_skip_missing_epochs),
        cmocka_unit_test(test_refuses_bad_options),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
