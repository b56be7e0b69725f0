/*
 * pipeline_test.c — the built-in insight generator, derived ids, the
 * worker's configuration parsers, and the analysis/insight jobs against a
 * real SQLite store (success, idempotent redelivery, dead-lettering with
 * the upload marked failed).
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "core/uuid.h"
#include "pipeline/compute.h"
#include "pipeline/insight_builtin.h"
#include "pipeline/jobs.h"
#include "pipeline/worker.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"

/* ---- the built-in generator ------------------------------------------- */

static json_t *m(double v) { return json_pack("{s:f, s:i}", "value", v, "n", 7); }
static json_t *mnull(void) { return json_pack("{s:n, s:s, s:i}", "value", "reason", "no data", "n", 0); }

static json_t *result_of(double tst, double eff, double sri, double is, double ra, double steps, double rhr)
{
    return json_pack("{s:{s:o, s:o}, s:{s:o, s:{s:o}}, s:{s:o, s:o}, s:{s:o}, s:{s:o, s:o}}", "healthkit_sleep",
                     "total_sleep_mean_min", m(tst), "efficiency_mean_pct", m(eff), "sleep", "sleep_regularity_index",
                     m(sri), "timing", "onset_sd_min", m(20), "circadian", "interdaily_stability", m(is),
                     "relative_amplitude", m(ra), "activity", "steps_daily_mean", m(steps), "cardio", "hr_resting_bpm",
                     m(rhr), "hrv_mean_ms", m(48));
}

static json_t *coverage_of(int days, int with, int nights)
{
    return json_pack("{s:i, s:i, s:i}", "days", days, "days_with_data", with, "sleep_nights", nights);
}

static int has_metric(json_t *arr, const char *metric)
{
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v) {
        const char *s = json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "metric"));
        if (s && strcmp(s, metric) == 0)
            return 1;
    }
    return 0;
}

static void no_diagnosis_words(const struct insight_builtin_out *o)
{
    char *all = json_dumps(o->body, 0);
    static const char *const words[] = {"diagnos", "disorder", "disease", "insomnia", "apnea", "depress"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        assert_null(strstr(o->narrative, words[i]));
        assert_null(strstr(all, words[i]));
    }
    free(all);
}

static void test_builtin_good_week(void **state)
{
    (void)state;
    json_t *r = result_of(450, 92, 85, 0.7, 0.9, 9000, 58), *c = coverage_of(7, 7, 7);
    struct insight_builtin_out a, b;
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &a), 0);
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &b), 0);
    /* deterministic */
    assert_string_equal(a.narrative, b.narrative);
    char *ja = json_dumps(a.body, JSON_SORT_KEYS), *jb = json_dumps(b.body, JSON_SORT_KEYS);
    assert_string_equal(ja, jb);
    free(ja);
    free(jb);
    assert_true(fabs(a.confidence - 1.0) < 1e-9);
    json_t *ki = json_object_get(a.body, "key_insights"), *g = json_object_get(a.body, "grounded_metrics");
    assert_true(has_metric(ki, "healthkit_sleep.total_sleep_mean_min"));
    assert_true(has_metric(ki, "healthkit_sleep.efficiency_mean_pct"));
    assert_true(has_metric(ki, "sleep.sleep_regularity_index"));
    assert_true(has_metric(ki, "circadian.interdaily_stability"));
    assert_true(has_metric(ki, "circadian.relative_amplitude"));
    assert_true(has_metric(ki, "activity.steps_daily_mean"));
    assert_true(has_metric(ki, "cardio.hr_resting_bpm"));
    assert_false(has_metric(ki, "sleep.timing.onset_sd_min")); /* 20 min: nothing to say */
    assert_int_equal(json_array_size(g), json_array_size(ki));
    /* every threshold met: nothing to recommend */
    assert_int_equal(json_array_size(json_object_get(a.body, "recommendations")), 0);
    assert_non_null(strstr(a.narrative, "7 h 30 min"));
    assert_non_null(strstr(a.narrative, "within the recommended 7-9 hours"));
    no_diagnosis_words(&a);
    insight_builtin_out_clear(&a);
    insight_builtin_out_clear(&b);
    json_decref(r);
    json_decref(c);
}

/* Issue #20: every cited figure carries a short name and the unit of its
 * value, so a table can say "Sleep duration | 450 min" instead of repeating
 * the sentence; an insight stored without them gets them on the way out. */
static void test_builtin_figures_have_label_and_unit(void **state)
{
    (void)state;
    json_t *r = result_of(450, 92, 85, 0.7, 0.9, 9000, 58), *c = coverage_of(7, 7, 7);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    json_t *ki = json_object_get(o.body, "key_insights");
    size_t k;
    json_t *x;
    assert_true(json_array_size(ki) >= 7);
    json_array_foreach (ki, k, x) {
        const char *label = json_string_value(json_object_get(x, "label"));
        const char *unit = json_string_value(json_object_get(x, "unit"));
        assert_non_null(label);
        assert_non_null(unit);
        assert_true(strlen(label) > 0 && strlen(label) <= 40);
        assert_null(strstr(json_string_value(json_object_get(x, "text")), label)); /* not the sentence */
        const char *metric = json_string_value(json_object_get(x, "metric"));
        if (strcmp(metric, "healthkit_sleep.total_sleep_mean_min") == 0) {
            assert_string_equal(label, "Sleep duration");
            assert_string_equal(unit, "min");
            assert_true(json_real_value(json_object_get(x, "value")) == 450.0);
        } else if (strcmp(metric, "cardio.hr_resting_bpm") == 0) {
            assert_string_equal(label, "Resting heart rate");
            assert_string_equal(unit, "bpm");
        } else if (strcmp(metric, "circadian.interdaily_stability") == 0) {
            assert_string_equal(unit, "ratio");
        }
    }
    /* An older stored body: {text, metric, value, reference} only. */
    json_t *old =
        json_pack("[{s:s, s:s, s:f}, {s:s, s:s}, {s:s, s:s, s:s}, s]", "text", "You walked 9000 steps.", "metric",
                  "activity.steps_daily_mean", "value", 9000.0, "text", "Something else.", "metric", "no.such.metric",
                  "text", "Kept.", "metric", "cardio.hrv_mean_ms", "label", "Own label", "a bare string");
    assert_int_equal(insight_figures_describe(old), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(old, 0), "label")), "Daily steps");
    assert_string_equal(json_string_value(json_object_get(json_array_get(old, 0), "unit")), "steps/day");
    assert_null(json_object_get(json_array_get(old, 1), "label"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(old, 2), "label")), "Own label");
    assert_string_equal(json_string_value(json_object_get(json_array_get(old, 2), "unit")), "ms");
    assert_int_equal(insight_figures_describe(NULL), 0);
    const char *label = "untouched", *unit = "untouched";
    assert_int_equal(insight_figure_describe("sleep.nope", &label, &unit), 0);
    assert_string_equal(label, "untouched");
    json_decref(old);
    insight_builtin_out_clear(&o);
    json_decref(r);
    json_decref(c);
}

static void test_builtin_thresholds_prompt_recommendations(void **state)
{
    (void)state;
    json_t *r = result_of(360, 80, 50, 0.3, 0.5, 3000, 105), *c = coverage_of(7, 4, 2);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    json_t *rec = json_object_get(o.body, "recommendations");
    assert_true(has_metric(rec, "healthkit_sleep.total_sleep_mean_min"));
    assert_true(has_metric(rec, "healthkit_sleep.efficiency_mean_pct"));
    assert_true(has_metric(rec, "sleep.sleep_regularity_index"));
    assert_true(has_metric(rec, "circadian.interdaily_stability"));
    assert_true(has_metric(rec, "circadian.relative_amplitude"));
    assert_true(has_metric(rec, "activity.steps_daily_mean"));
    assert_true(has_metric(rec, "cardio.hr_resting_bpm"));
    /* 0.6 * 4/7 + 0.4 * 2/7 = 0.457 -> 0.46 */
    assert_true(fabs(o.confidence - 0.46) < 1e-9);
    assert_non_null(strstr(o.narrative, "less than the 7 hours"));
    assert_non_null(strstr(o.narrative, "below the 85%"));
    no_diagnosis_words(&o);
    insight_builtin_out_clear(&o);
    json_decref(r);
    json_decref(c);
}

static void test_builtin_nulls_say_nothing(void **state)
{
    (void)state;
    json_t *r =
        json_pack("{s:{s:o, s:o}, s:{s:o}, s:{s:o}}", "sleep", "total_sleep_mean_min", mnull(), "efficiency_mean_pct",
                  mnull(), "circadian", "interdaily_stability", mnull(), "activity", "steps_daily_mean", mnull());
    json_t *c = coverage_of(7, 0, 0);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    assert_int_equal(json_array_size(json_object_get(o.body, "key_insights")), 0);
    assert_int_equal(json_array_size(json_object_get(o.body, "recommendations")), 0);
    assert_true(o.confidence == 0.0);
    assert_non_null(strstr(o.narrative, "not enough data"));
    insight_builtin_out_clear(&o);
    json_decref(r);
    json_decref(c);
}

static void test_builtin_focus_and_fallback_to_actigraphy(void **state)
{
    (void)state;
    /* No device-recorded sleep: the actigraphy estimate is used and named. */
    json_t *r = json_pack("{s:{s:o, s:o}, s:{s:o}}", "sleep", "total_sleep_mean_min", m(430), "efficiency_mean_pct",
                          m(88), "activity", "steps_daily_mean", m(7000));
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(r, NULL, INSIGHT_FOCUS_SLEEP, &o), 0);
    json_t *ki = json_object_get(o.body, "key_insights");
    assert_true(has_metric(ki, "sleep.total_sleep_mean_min"));
    assert_false(has_metric(ki, "activity.steps_daily_mean"));
    assert_non_null(strstr(o.narrative, "estimated from your movement"));
    insight_builtin_out_clear(&o);
    enum insight_focus f;
    assert_int_equal(insight_focus_parse("cardio", &f), 0);
    assert_int_equal(f, INSIGHT_FOCUS_CARDIO);
    assert_int_equal(insight_focus_parse("horoscope", &f), -1);
    assert_string_equal(insight_focus_name(INSIGHT_FOCUS_ACTIVITY), "activity");
    json_decref(r);
}

/* Plausibility before words (issue #18): a figure outside physiological
 * bounds (136 h 45 min of sleep a night) is never stated; it is listed as
 * withheld with its reason, and the rest still speaks. */
static void test_builtin_withholds_implausible(void **state)
{
    (void)state;
    json_t *r = result_of(8205, 92, 85, 0.7, 1.7, 9000, 58), *c = coverage_of(7, 7, 7);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(r, c, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    json_t *ki = json_object_get(o.body, "key_insights"), *wh = json_object_get(o.body, "withheld");
    assert_false(has_metric(ki, "healthkit_sleep.total_sleep_mean_min"));
    assert_false(has_metric(ki, "circadian.relative_amplitude")); /* RA 1.7 > 1 */
    assert_true(has_metric(wh, "healthkit_sleep.total_sleep_mean_min"));
    assert_true(has_metric(wh, "circadian.relative_amplitude"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(wh, 0), "reason")),
                        "outside physiological bounds: withheld");
    assert_null(strstr(o.narrative, "136"));
    assert_true(has_metric(ki, "activity.steps_daily_mean"));
    insight_builtin_out_clear(&o);
    json_decref(r);
    json_decref(c);
}

/* A phone-only week end to end: minute steps (20 a minute 07:00-23:00,
 * none at night) through compute_window_from_minutes, the analysis and the
 * built-in generator. The insight speaks of an estimated rest period, never
 * of sleep time, efficiency or awakenings. Then the case: the phone
 * lay still for 8,205 minutes — no night, no figure, nothing said about
 * sleep. */
static void test_phone_only_week_end_to_end(void **state)
{
    (void)state;
    enum { N = 7 * 1440 };
    static double steps[N];
    for (size_t i = 0; i < N; i++) {
        size_t clock = (720 + i) % 1440;
        steps[i] = (clock >= 420 && clock < 1380) ? 20.0 : 0.0;
    }
    int64_t start = 20000LL * 1440 + 720; /* a local noon */
    struct compute_window w;
    char err[256];
    json_t *res = NULL, *cov = NULL;
    assert_int_equal(compute_window_from_minutes(steps, N, start, 1, &w, err, sizeof(err)), 0);
    assert_int_equal(compute_window_analyse(&w, NULL, &res, &cov, err, sizeof(err)), 0);
    double v;
    assert_false(insight_metric_at(res, "sleep.total_sleep_mean_min", &v));
    assert_true(insight_metric_at(res, "sleep.estimated_rest_mean_min", &v));
    assert_true(v == 480.0);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(res, cov, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    fprintf(stderr, "phone-only insight: %s\n", o.narrative);
    assert_non_null(strstr(o.narrative, "Your phone recorded no steps for about 8 h 00 min a night"));
    assert_non_null(strstr(o.narrative, "rest-activity pattern (from your steps) was regular"));
    assert_null(strstr(o.narrative, "You slept"));
    assert_null(strstr(o.narrative, "time in bed"));
    insight_builtin_out_clear(&o);
    json_decref(res);
    json_decref(cov);
    compute_window_free(&w);

    /* 8,205 still minutes in the middle of the week */
    for (size_t i = 1000; i < 9205; i++)
        steps[i] = 0.0;
    assert_int_equal(compute_window_from_minutes(steps, N, start, 1, &w, err, sizeof(err)), 0);
    assert_int_equal(compute_window_analyse(&w, NULL, &res, &cov, err, sizeof(err)), 0);
    json_t *nights = json_object_get(json_object_get(res, "sleep"), "nights");
    size_t i;
    json_t *nt;
    json_array_foreach (nights, i, nt) {
        assert_true(json_number_value(json_object_get(json_object_get(nt, "estimated_rest_min"), "value")) <= 840);
    }
    assert_int_equal(insight_builtin_generate(res, cov, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    assert_null(strstr(o.narrative, "136"));
    assert_null(strstr(o.narrative, "You slept"));
    insight_builtin_out_clear(&o);
    json_decref(res);
    json_decref(cov);
    compute_window_free(&w);
}

/* Trends and the 28-day circadian window (issue #18): five weeks of phone
 * steps; the four earlier weeks rest 23:00-07:00 (480 min), this week
 * 00:00-07:00 (420 min) with steps 23:00-00:00 too (20/min -> 1,200 more a
 * day). Trend: -60 min against a baseline of 480, +1,200 steps/day; the
 * circadian figures come from the last 28 days. */
static void test_trends_and_28_days(void **state)
{
    (void)state;
    enum { N = 35 * 1440, H = 28 * 1440 };
    static double steps[N];
    for (size_t i = 0; i < N; i++) {
        size_t clock = (720 + i) % 1440;
        size_t bed = i >= H ? 0 : 1380; /* this week: to bed at midnight */
        steps[i] = (clock >= 420 && (bed == 0 || clock < bed)) ? 20.0 : 0.0;
    }
    int64_t start = 20000LL * 1440 + 720;
    struct compute_window w;
    char err[256];
    json_t *res = NULL, *cov = NULL;
    assert_int_equal(compute_window_from_minutes(steps, N, start, 1, &w, err, sizeof(err)), 0);
    w.history_min = H;
    assert_int_equal(compute_window_analyse(&w, NULL, &res, &cov, err, sizeof(err)), 0);
    double v;
    assert_true(insight_metric_at(res, "sleep.estimated_rest_mean_min", &v));
    assert_true(v == 420.0);
    assert_true(insight_metric_at(res, "trends.estimated_rest_change_min", &v));
    assert_true(fabs(v + 60.0) < 1e-9);
    assert_true(insight_metric_at(json_object_get(json_object_get(res, "trends"), "estimated_rest_change_min"),
                                  "baseline", &v));
    assert_true(fabs(v - 480.0) < 1e-9);
    assert_true(insight_metric_at(res, "trends.steps_daily_change", &v));
    assert_true(fabs(v - 1200.0) < 1e-6);
    assert_true(insight_metric_at(res, "circadian_28d.interdaily_stability", &v));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "circadian_28d"), "days_with_data")), 28);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(res, "window"), "minutes")), 7 * 1440);
    assert_int_equal(json_integer_value(json_object_get(cov, "days")), 7);
    struct insight_builtin_out o;
    assert_int_equal(insight_builtin_generate(res, cov, INSIGHT_FOCUS_COMPREHENSIVE, &o), 0);
    fprintf(stderr, "trend insight: %s\n", o.narrative);
    assert_non_null(strstr(o.narrative, "Compared with your previous weeks (8 h 00 min a night), your phone lay "
                                        "still 1 h 00 min less a night this week."));
    assert_non_null(strstr(o.narrative, "You walked about 1200 steps a day more than in your previous weeks"));
    assert_non_null(strstr(o.narrative, "over the last 28 days"));
    insight_builtin_out_clear(&o);
    json_decref(res);
    json_decref(cov);
    compute_window_free(&w);
}

static void test_id_derive(void **state)
{
    (void)state;
    char a[37], b[37], c[37];
    compute_id_derive("analysis", "0190a1b2-0000-7000-8000-000000000001", a);
    compute_id_derive("analysis", "0190a1b2-0000-7000-8000-000000000001", b);
    compute_id_derive("insight", "0190a1b2-0000-7000-8000-000000000001", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(uuid_is_valid(a));
    assert_int_equal(a[14], '8');           /* version 8 */
    assert_non_null(strchr("89ab", a[19])); /* RFC variant */
}

static void test_parsers(void **state)
{
    (void)state;
    char fs[64], err[256];
    int64_t delay;
    assert_int_equal(worker_fault_parse(NULL, fs, sizeof(fs), &delay, err, sizeof(err)), 0);
    assert_string_equal(fs, "");
    assert_int_equal(delay, 0);
    assert_int_equal(worker_fault_parse("fail_source=bad,delay_ms=250", fs, sizeof(fs), &delay, err, sizeof(err)), 0);
    assert_string_equal(fs, "bad");
    assert_int_equal(delay, 250);
    assert_int_equal(worker_fault_parse("delay_ms=-1", fs, sizeof(fs), &delay, err, sizeof(err)), -1);
    assert_int_equal(worker_fault_parse("explode=1", fs, sizeof(fs), &delay, err, sizeof(err)), -1);
    unsigned t;
    assert_int_equal(worker_topics_parse("health-data-processing", &t), 0);
    assert_int_equal(t, WORKER_TOPIC_ANALYSIS);
    assert_int_equal(worker_topics_parse("health-data-processing,insights-generation", &t), 0);
    assert_int_equal(t, WORKER_TOPIC_ANALYSIS | WORKER_TOPIC_INSIGHTS);
    assert_int_equal(worker_topics_parse("nope", &t), -1);
}

/* ---- jobs against SQLite --------------------------------------------------- */

struct fix {
    struct store *st;
    char path[1024];
    char user[STORE_ID_LEN];
};

static int setup(void **state)
{
    static unsigned counter;
    struct fix *f = calloc(1, sizeof(*f));
    struct store_options o;
    char url[1100], err[512];
    int applied;
    const char *tmp = getenv("CLARITY_TEST_TMP") ? getenv("CLARITY_TEST_TMP") : "/tmp";
    snprintf(f->path, sizeof(f->path), "%s/pipeline_test_%d_%u.db", tmp, (int)getpid(), counter++);
    unlink(f->path);
    snprintf(url, sizeof(url), "sqlite:%s", f->path);
    store_options_default(&o);
    o.synchronous_full = 0;
    o.queue_backoff_base_ms = 5;
    o.queue_backoff_max_ms = 20;
    assert_int_equal(store_open(url, &o, &f->st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(f->st, NULL, &applied, err, sizeof(err)), 0);
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "p%u@example.com", counter);
    snprintf(u.password_hash, sizeof(u.password_hash), "$argon2id$v=19$x");
    snprintf(u.first_name, sizeof(u.first_name), "Ada");
    snprintf(u.last_name, sizeof(u.last_name), "Lovelace");
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    memcpy(f->user, u.id, STORE_ID_LEN);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char p[1100];
    store_close(f->st);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

/* The analysis job of upload for user (pipeline/jobs.h owns the schema). */
static void job_payload(const char *upload, const char *user, char out[JOBS_PAYLOAD_MAX])
{
    struct jobs_message m;
    memset(&m, 0, sizeof(m));
    memcpy(m.upload_id, upload, STORE_ID_LEN);
    memcpy(m.user_id, user, STORE_ID_LEN);
    assert_int_equal(jobs_encode(JOBS_ANALYSIS, &m, out), 0);
}

/* An upload of a week of hourly steps and heart rate from `source`, with
 * its analysis job (max_attempts), as the ingest session writes it. */
static void make_upload(struct fix *f, const char *source, int max_attempts, char id[STORE_ID_LEN])
{
    struct store_upload u;
    struct store_tx *tx;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    memcpy(u.user_id, f->user, STORE_ID_LEN);
    snprintf(u.source, sizeof(u.source), "healthkit");
    u.status = STORE_UPLOAD_RECEIVED;
    const int64_t t0 = 1795000000000LL - 1795000000000LL % 86400000LL; /* a UTC midnight */
    size_t n = 7 * 24 * 2;
    struct store_sample *s = calloc(n, sizeof(*s));
    for (size_t i = 0; i < n; i++) {
        size_t h = i / 2;
        int steps = i % 2 == 0;
        memcpy(s[i].user_id, f->user, STORE_ID_LEN);
        memcpy(s[i].upload_id, u.id, STORE_ID_LEN);
        snprintf(s[i].metric_type, sizeof(s[i].metric_type), steps ? "steps" : "heart_rate");
        s[i].start_ms = t0 + (int64_t)h * 3600000;
        s[i].end_ms = steps ? s[i].start_ms + 3600000 : s[i].start_ms;
        int hod = (int)(h % 24);
        s[i].value = steps ? (hod >= 7 && hod < 22 ? 600.0 : 0.0) : (hod >= 7 && hod < 22 ? 75.0 : 56.0);
        s[i].value2 = NAN;
        s[i].quality_score = NAN;
        snprintf(s[i].unit, sizeof(s[i].unit), steps ? "count" : "count/min");
        snprintf(s[i].source, sizeof(s[i].source), "%s", source);
        snprintf(s[i].hk_uuid, sizeof(s[i].hk_uuid), "%s-%zu", u.id, i);
        s[i].payload = (char *)"{\"tz_offset_min\":0}";
    }
    u.total_metrics = (int64_t)n;
    char payload[JOBS_PAYLOAD_MAX];
    job_payload(u.id, f->user, payload);
    struct store_publish_opts po = {.max_attempts = max_attempts, .fair_key = f->user};
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_upload_insert(tx, &u), 0);
    assert_int_equal(store_sample_insert_batch(tx, s, n, NULL), 0);
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, &po, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    free(s);
    memcpy(id, u.id, STORE_ID_LEN);
}

static void get_upload(struct fix *f, const char *id, struct store_upload *u)
{
    struct store_tx *tx;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_upload_get(tx, id, NULL, u), 0);
    store_tx_rollback(tx);
}

static size_t count_analyses(struct fix *f)
{
    struct store_tx *tx;
    struct store_analysis *v = NULL;
    size_t n = 0;
    struct store_cursor after, next;
    memset(&after, 0, sizeof(after));
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_list(tx, f->user, &after, 100, &v, &n, &next), 0);
    store_tx_rollback(tx);
    store_analysis_list_free(v, n);
    return n;
}

static void test_jobs_complete_and_are_idempotent(void **state)
{
    struct fix *f = *state;
    char up[STORE_ID_LEN], aid[37], iid[37];
    int handled;
    struct worker_options o = {.store = f->st, .threads = 1, .lease_ms = 30000};
    make_upload(f, "Apple Watch", 0, up);

    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    struct store_upload u;
    get_upload(f, up, &u);
    assert_int_equal(u.status, STORE_UPLOAD_PROCESSING);
    assert_true(u.progress > 0.5);

    compute_id_derive("analysis", up, aid);
    struct store_tx *tx;
    struct store_analysis a;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_get(tx, aid, f->user, &a), 0);
    store_tx_rollback(tx);
    assert_string_equal(a.upload_id, up);
    assert_int_equal(a.version, COMPUTE_RESULT_VERSION);
    json_t *res = json_loads(a.result, 0, NULL), *cov = json_loads(a.coverage, 0, NULL);
    assert_int_equal(insight_period_id(res, f->user, iid), 0);
    assert_non_null(json_object_get(res, "sleep"));
    assert_non_null(json_object_get(res, "circadian"));
    assert_non_null(json_object_get(res, "cardio"));
    assert_true(json_is_null(json_object_get(json_object_get(res, "pat"), "value")));
    assert_int_equal(json_integer_value(json_object_get(cov, "days_with_data")), 7);
    json_decref(res);
    json_decref(cov);
    store_analysis_clear(&a);

    /* A duplicate delivery of the same job (e.g. after a lost ack) stores
     * nothing new. */
    char payload[JOBS_PAYLOAD_MAX];
    job_payload(up, f->user, payload);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, NULL, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(count_analyses(f), 1);
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.depth, 0);

    /* The insight job: one insight, upload completed. */
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_INSIGHTS, &handled), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_INSIGHTS, &handled), 0);
    assert_int_equal(handled, 0);
    get_upload(f, up, &u);
    assert_int_equal(u.status, STORE_UPLOAD_COMPLETED);
    assert_int_equal(u.processed_metrics, u.total_metrics);
    struct store_insight in;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_insight_get(tx, iid, f->user, &in), 0);
    store_tx_rollback(tx);
    assert_string_equal(in.generator, "builtin");
    assert_string_equal(in.analysis_id, aid);
    assert_true(in.confidence > 0.5);
    store_insight_clear(&in);

    /* A re-sync of the same week (issue #18: 9 near-identical insights in a
     * few minutes): a second upload, a second analysis, still ONE insight
     * for the period, now resting on the newer analysis. A late redelivery
     * of the first insight job changes nothing. */
    char up2[STORE_ID_LEN], aid2[37];
    make_upload(f, "Apple Watch", 0, up2);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_INSIGHTS, &handled), 0);
    assert_int_equal(handled, 1);
    compute_id_derive("analysis", up2, aid2);
    assert_int_equal(count_analyses(f), 2);
    struct store_insight *v = NULL;
    size_t nv = 0;
    struct store_cursor next;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_insight_list(tx, f->user, NULL, NULL, 100, &v, &nv, &next), 0);
    store_tx_rollback(tx);
    assert_int_equal(nv, 1);
    assert_string_equal(v[0].id, iid);
    assert_string_equal(v[0].analysis_id, aid2);
    store_insight_list_free(v, nv);
    get_upload(f, up2, &u);
    assert_int_equal(u.status, STORE_UPLOAD_COMPLETED);

    snprintf(payload, sizeof(payload), "{\"upload_id\":\"%s\",\"user_id\":\"%s\",\"analysis_id\":\"%s\"}", up, f->user,
             aid);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_queue_publish(tx, STORE_TOPIC_INSIGHTS, payload, NULL, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_INSIGHTS, &handled), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_insight_get(tx, iid, f->user, &in), 0);
    store_tx_rollback(tx);
    assert_string_equal(in.analysis_id, aid2);
    store_insight_clear(&in);
}

void store_samples_previous_release_for_test(int on);

/* An upload stored before migration 006 (or by the previous release during
 * a deploy) is not in sample_days: the analysis job puts the user's such
 * uploads in before it reads, and the analysis is the same. */
static void test_analysis_heals_uploads_from_before_days(void **state)
{
    struct fix *f = *state;
    char up[STORE_ID_LEN], aid[37], sql[300], err[256];
    int handled;
    struct worker_options o = {.store = f->st, .threads = 1, .lease_ms = 30000};
    store_samples_previous_release_for_test(1); /* rows, as releases before blocks wrote */
    make_upload(f, "Apple Watch", 0, up);
    store_samples_previous_release_for_test(0);
    snprintf(sql, sizeof(sql), "DELETE FROM sample_days WHERE user_id = '%s'", f->user);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    snprintf(sql, sizeof(sql), "UPDATE uploads SET days_indexed = 0 WHERE id = '%s'", up);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);

    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    struct store_tx *tx;
    int64_t healed = -1;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sample_days_heal(tx, f->user, &healed), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(healed, 0); /* the job did it */

    compute_id_derive("analysis", up, aid);
    struct store_analysis a;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_get(tx, aid, f->user, &a), 0);
    store_tx_rollback(tx);
    json_t *cov = json_loads(a.coverage, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(cov, "days_with_data")), 7);
    json_decref(cov);
    store_analysis_clear(&a);
}

static void test_job_failure_dead_letters_and_marks_upload_failed(void **state)
{
    struct fix *f = *state;
    char up[STORE_ID_LEN], good[STORE_ID_LEN];
    int handled;
    struct worker_options o = {.store = f->st, .threads = 1, .lease_ms = 30000, .fault_fail_source = "poison"};
    make_upload(f, "poison", 2, up);

    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    struct store_upload u;
    get_upload(f, up, &u);
    assert_int_not_equal(u.status, STORE_UPLOAD_FAILED); /* one attempt left */
    /* wait out the backoff (5 ms base in this store) */
    for (int i = 0; i < 100; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
        if (handled)
            break;
    }
    assert_int_equal(handled, 1);
    get_upload(f, up, &u);
    assert_int_equal(u.status, STORE_UPLOAD_FAILED);
    assert_non_null(strstr(u.error, "rejected"));
    assert_non_null(strstr(u.error, "after 2 attempts"));
    struct store_queue_stats qs;
    assert_int_equal(store_queue_stats(f->st, STORE_TOPIC_HEALTH_DATA, &qs), 0);
    assert_int_equal(qs.dead, 1);
    assert_int_equal(count_analyses(f), 0);

    /* The worker keeps serving others. */
    make_upload(f, "Apple Watch", 0, good);
    assert_int_equal(worker_once_run(&o, NULL, WORKER_TOPIC_ANALYSIS, &handled), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(count_analyses(f), 1);
}

static void test_pool_starts_and_stops(void **state)
{
    struct fix *f = *state;
    char up[STORE_ID_LEN], err[256];
    struct worker_pool *p = NULL;
    /* The fault setting is the caller's string, which need not outlive the
     * start (cli_workers_start keeps it on its stack): the pool must not
     * read it later. Empty at the start, it names the upload's source by the
     * time the job runs: the job must still succeed. */
    char fault[32] = "";
    struct worker_options o = {
        .store = f->st, .threads = 2, .lease_ms = 30000, .poll_ms = 20, .fault_fail_source = fault};
    make_upload(f, "Apple Watch", 0, up);
    assert_int_equal(worker_pool_start(&o, &p, err, sizeof(err)), 0);
    snprintf(fault, sizeof(fault), "Apple Watch");
    struct store_upload u;
    for (int i = 0; i < 500; i++) {
        get_upload(f, up, &u);
        if (u.status == STORE_UPLOAD_COMPLETED)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(u.status, STORE_UPLOAD_COMPLETED);
    worker_pool_stop(p);
    assert_int_equal(worker_pool_join(p, 5000), 0);
    int64_t done, failed;
    worker_pool_counts(p, &done, &failed);
    assert_int_equal(done, 2);
    assert_int_equal(failed, 0);
    worker_pool_free(p);
    o.threads = 0;
    assert_int_equal(worker_pool_start(&o, &p, err, sizeof(err)), -1);
}

/* Workers purge acknowledged queue messages past the retention when they
 * start (and once a minute): without it the queue table only grows. */
static void test_pool_purges_acknowledged_messages(void **state)
{
    struct fix *f = *state;
    char err[256];
    struct store *st = NULL;
    struct store_options so;
    char url[1100];
    snprintf(url, sizeof(url), "sqlite:%s", f->path);
    store_options_default(&so);
    so.synchronous_full = 0;
    so.queue_retention_ms = 1; /* everything acknowledged is old at once */
    assert_int_equal(store_open(url, &so, &st, err, sizeof(err)), 0);

    /* One acknowledged message on a topic no worker consumes. */
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_queue_publish(tx, "purge-test", "{}", NULL, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    struct store_msg m;
    size_t n = 0;
    assert_int_equal(store_queue_lease(st, "purge-test", 30000, &m, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_queue_ack_now(st, &m), 0);
    store_msg_clear(&m);
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);

    struct worker_pool *p = NULL;
    struct worker_options o = {.store = st, .threads = 1, .lease_ms = 30000, .poll_ms = 20};
    assert_int_equal(worker_pool_start(&o, &p, err, sizeof(err)), 0);
    worker_pool_stop(p);
    assert_int_equal(worker_pool_join(p, 5000), 0);
    worker_pool_free(p);

    /* The worker took it: nothing is left to purge. */
    int64_t purged = -1;
    assert_int_equal(store_queue_purge(st, time_now_ms(), &purged), 0);
    assert_int_equal(purged, 0);

    /* Control: one acknowledged without a worker is still there to purge. */
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_queue_publish(tx, "purge-test", "{}", NULL, NULL), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(store_queue_lease(st, "purge-test", 30000, &m, 1, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(store_queue_ack_now(st, &m), 0);
    store_msg_clear(&m);
    nanosleep(&ts, NULL);
    assert_int_equal(store_queue_purge(st, time_now_ms(), &purged), 0);
    assert_int_equal(purged, 1);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_good_week),
        cmocka_unit_test(test_builtin_figures_have_label_and_unit),
        cmocka_unit_test(test_builtin_thresholds_prompt_recommendations),
        cmocka_unit_test(test_builtin_nulls_say_nothing),
        cmocka_unit_test(test_builtin_focus_and_fallback_to_actigraphy),
        cmocka_unit_test(test_builtin_withholds_implausible),
        cmocka_unit_test(test_phone_only_week_end_to_end),
        cmocka_unit_test(test_trends_and_28_days),
        cmocka_unit_test(test_id_derive),
        cmocka_unit_test(test_parsers),
        cmocka_unit_test_setup_teardown(test_jobs_complete_and_are_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analysis_heals_uploads_from_before_days, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_failure_dead_letters_and_marks_upload_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_starts_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_purges_acknowledged_messages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
