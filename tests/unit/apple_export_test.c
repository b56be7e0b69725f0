/*
 * apple_export_test.c — the Apple Health export importer (src/ingest/
 * apple_export.c).
 *
 * The big case generates an export.xml of NREC (≥ 100,000) records across
 * quantity, category, workout, correlation and unknown types, three sources
 * and six UTC offsets, with metadata, identical duplicates and sync
 * identifiers; imports it into a SQLite store under $CLARITY_TEST_TMP; zips
 * the same file with libzip and imports that again (same counts, nothing new
 * stored). Smaller cases cover dates, metadata, the feed interface, and
 * malformed input (which must fail with a clear message, never crash).
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
#include <zip.h>

#include "core/timeutil.h"
#include "ingest/apple_export.h"
#include "ingest/healthkit.h"
#include "store/migrate.h"
#include "store/store.h"

#define NREC 100000
#define BASE_MS 1551830400000LL /* 2019-03-06T00:00:00Z */

static const char user_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
static const char upload_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
static const int offsets[6] = {-300, 60, 330, -210, 0, 765}; /* minutes east */
static const char *const sources[3] = {"Apple Watch", "iPhone", "Withings"};

static char tmpdir[1024];

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/apple_export_test_%d_%s", tmpdir, (int)getpid(), name);
}

/* "2019-03-06 07:41:18 -0500" for the instant ms seen at offset off. */
static void fmt_date(char *out, size_t cap, int64_t ms, int off)
{
    time_t t = (time_t)(ms / 1000 + off * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    int a = off < 0 ? -off : off;
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d %c%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', a / 60, a % 60);
}

/* ---- the generated export ---------------------------------------------- */

struct expect {
    int64_t records; /* elements the parser should count */
    int64_t samples; /* mapped samples */
    int64_t unique;  /* samples the store should keep */
    int64_t unknown;
    int64_t heart_rate, steps, sleep, workouts, bp, systolic;
};

static void record(FILE *f, const char *type, const char *unit, const char *value, int64_t start, int64_t end, int off,
                   const char *src, long idx, const char *extra_meta)
{
    char s[96], e[96], c[96];
    fmt_date(s, sizeof(s), start, off);
    fmt_date(e, sizeof(e), end, off);
    fmt_date(c, sizeof(c), end + 5000, off);
    fprintf(f,
            " <Record type=\"%s\" sourceName=\"%s\" sourceVersion=\"9.1\" device=\"&lt;&lt;"
            "HKDevice: 0x283ec1c20&gt;, name:%s, manufacturer:Apple Inc., model:Watch, "
            "hardware:Watch6,1, software:9.1&gt;\"%s%s%s creationDate=\"%s\" startDate=\"%s\" "
            "endDate=\"%s\" value=\"%s\"",
            type, src, src, unit ? " unit=\"" : "", unit ? unit : "", unit ? "\"" : "", c, s, e, value);
    if (idx < 0 && extra_meta == NULL) {
        fputs("/>\n", f);
        return;
    }
    fputs(">\n", f);
    if (idx >= 0)
        fprintf(f, "  <MetadataEntry key=\"ClarityTestIndex\" value=\"%ld\"/>\n", idx);
    if (extra_meta != NULL)
        fputs(extra_meta, f);
    fputs(" </Record>\n", f);
}

static void header(FILE *f)
{
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<!DOCTYPE HealthData [\n<!-- HealthKit Export Version: 11 -->\n"
          "<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n"
          "<!ATTLIST HealthData\n  locale CDATA #REQUIRED\n>\n]>\n"
          "<HealthData locale=\"en_US\">\n"
          " <ExportDate value=\"2019-03-07 10:00:00 -0500\"/>\n"
          " <Me HKCharacteristicTypeIdentifierDateOfBirth=\"1980-01-01\"/>\n",
          f);
}

/*
 * Write the big export. Record i starts at BASE_MS + i minutes (UTC), is
 * written at offset offsets[i % 6] and carries its index as metadata, so the
 * callback can check every instant and offset.
 */
static void generate(const char *path, long n, struct expect *x)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    memset(x, 0, sizeof(*x));
    header(f);
    char v[64];
    for (long i = 0; i < n; i++) {
        int64_t st = BASE_MS + (int64_t)i * 60000;
        int off = offsets[i % 6];
        const char *src = sources[i % 3];
        switch (i % 20) {
        case 0:
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
            snprintf(v, sizeof(v), "%ld", 50 + i % 70);
            record(f, "HKQuantityTypeIdentifierHeartRate", "count/min", v, st, st, off, src, i,
                   "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"1\"/>\n");
            x->records++, x->samples++, x->unique++, x->heart_rate++;
            if (i % 1000 == 0) { /* an identical record written twice */
                record(f, "HKQuantityTypeIdentifierHeartRate", "count/min", v, st, st, off, src, i,
                       "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" "
                       "value=\"1\"/>\n");
                x->records++, x->samples++, x->heart_rate++;
            }
            break;
        case 6:
        case 7:
        case 8:
            snprintf(v, sizeof(v), "%ld", 10 + i % 500);
            record(f, "HKQuantityTypeIdentifierStepCount", "count", v, st, st + 60000, off, src, i, NULL);
            x->records++, x->samples++, x->unique++, x->steps++;
            break;
        case 9:
            record(f, "HKQuantityTypeIdentifierHeartRateVariabilitySDNN", "ms", "48.25", st, st, off, src, i, NULL);
            x->records++, x->samples++, x->unique++;
            break;
        case 10:
            record(f, "HKQuantityTypeIdentifierOxygenSaturation", "%", "0.97", st, st, off, src, i,
                   "  <MetadataEntry key=\"HKExternalUUID\" value=\"ext-&quot;q&quot;\"/>\n");
            x->records++, x->samples++, x->unique++;
            break;
        case 11:
            record(f, "HKQuantityTypeIdentifierActiveEnergyBurned", (i / 20) % 2 ? "kJ" : "kcal", "41.84", st,
                   st + 60000, off, src, i, NULL);
            x->records++, x->samples++, x->unique++;
            break;
        case 12:
            record(f, "HKQuantityTypeIdentifierDistanceWalkingRunning", (i / 20) % 2 ? "mi" : "km", "0.5", st,
                   st + 60000, off, src, i, NULL);
            x->records++, x->samples++, x->unique++;
            break;
        case 13:
            record(f, "HKCategoryTypeIdentifierSleepAnalysis", NULL,
                   i % 3 ? "HKCategoryValueSleepAnalysisAsleepCore" : "HKCategoryValueSleepAnalysisInBed", st,
                   st + 30 * 60000, off, src, i, NULL);
            x->records++, x->samples++, x->unique++, x->sleep++;
            break;
        case 14:
            record(f, "HKCategoryTypeIdentifierMindfulSession", NULL, "HKCategoryValueNotApplicable", st,
                   st + 10 * 60000, off, src, i, NULL);
            x->records++, x->samples++, x->unique++;
            break;
        case 15:
            record(f, "HKQuantityTypeIdentifierEnvironmentalAudioExposure", "dBASPL", "62.1", st, st + 60000, off, src,
                   i, NULL);
            x->records++, x->unknown++;
            break;
        case 16:
            record(f, "HKCategoryTypeIdentifierAppleStandHour", NULL, "HKCategoryValueAppleStandHourStood", st,
                   st + 3600000, off, src, i, NULL);
            x->records++, x->unknown++;
            break;
        case 17: {
            char s[96], e[96];
            fmt_date(s, sizeof(s), st, off);
            fmt_date(e, sizeof(e), st + 1800000, off);
            if ((i / 20) % 2)
                fprintf(f,
                        " <Workout workoutActivityType=\"HKWorkoutActivityTypeRunning\" "
                        "duration=\"30\" durationUnit=\"min\" totalDistance=\"3.1\" "
                        "totalDistanceUnit=\"mi\" totalEnergyBurned=\"300\" "
                        "totalEnergyBurnedUnit=\"kcal\" sourceName=\"%s\" sourceVersion=\"9.1\" "
                        "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\">\n"
                        "  <MetadataEntry key=\"ClarityTestIndex\" value=\"%ld\"/>\n"
                        "  <WorkoutEvent type=\"HKWorkoutEventTypeSegment\" date=\"%s\"/>\n"
                        " </Workout>\n",
                        src, e, s, e, i, s);
            else
                fprintf(f,
                        " <Workout workoutActivityType=\"HKWorkoutActivityTypeCycling\" "
                        "duration=\"1800\" durationUnit=\"s\" sourceName=\"%s\" "
                        "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\">\n"
                        "  <MetadataEntry key=\"ClarityTestIndex\" value=\"%ld\"/>\n"
                        "  <WorkoutStatistics type=\"HKQuantityTypeIdentifierActiveEnergyBurned\""
                        " startDate=\"%s\" endDate=\"%s\" sum=\"1255.2\" unit=\"kJ\"/>\n"
                        "  <WorkoutStatistics type=\"HKQuantityTypeIdentifierDistanceCycling\""
                        " startDate=\"%s\" endDate=\"%s\" sum=\"12000\" unit=\"m\"/>\n"
                        " </Workout>\n",
                        src, e, s, e, i, s, e, s, e);
            x->records++, x->samples++, x->unique++, x->workouts++;
            break;
        }
        case 18: {
            /* A blood-pressure correlation; as in real exports, its two
             * records also appear at top level (identical: stored once). */
            char s[96], e[96];
            fmt_date(s, sizeof(s), st, off);
            fmt_date(e, sizeof(e), st, off);
            fprintf(f,
                    " <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" "
                    "sourceName=\"%s\" sourceVersion=\"9.1\" creationDate=\"%s\" startDate=\"%s\" "
                    "endDate=\"%s\">\n  <MetadataEntry key=\"ClarityTestIndex\" value=\"%ld\"/>\n",
                    src, e, s, e, i);
            record(f, "HKQuantityTypeIdentifierBloodPressureSystolic", "mmHg", "121", st, st, off, src, -1, NULL);
            record(f, "HKQuantityTypeIdentifierBloodPressureDiastolic", "mmHg", "79", st, st, off, src, -1, NULL);
            fputs(" </Correlation>\n", f);
            record(f, "HKQuantityTypeIdentifierBloodPressureSystolic", "mmHg", "121", st, st, off, src, -1, NULL);
            record(f, "HKQuantityTypeIdentifierBloodPressureDiastolic", "mmHg", "79", st, st, off, src, -1, NULL);
            x->records += 5, x->samples += 5, x->unique += 3, x->bp++, x->systolic += 2;
            break;
        }
        case 19: {
            /* Two versions of one sync identifier: stored once. */
            char meta[200];
            snprintf(meta, sizeof(meta),
                     "  <MetadataEntry key=\"HKMetadataKeySyncIdentifier\" value=\"sync-%ld\"/>\n"
                     "  <MetadataEntry key=\"HKMetadataKeySyncVersion\" value=\"1\"/>\n",
                     i);
            record(f, "HKQuantityTypeIdentifierHeartRate", "count/min", "61", st, st, off, "Third Party App", i, meta);
            record(f, "HKQuantityTypeIdentifierHeartRate", "count/min", "62", st, st, off, "Third Party App", i, meta);
            x->records += 2, x->samples += 2, x->unique++, x->heart_rate += 2;
            break;
        }
        }
    }
    fputs(" <ActivitySummary dateComponents=\"2019-03-06\" activeEnergyBurned=\"500\"/>\n"
          "</HealthData>\n",
          f);
    assert_int_equal(fclose(f), 0);
}

/* ---- callbacks --------------------------------------------------------- */

struct counter {
    struct store *st; /* NULL: count only */
    int64_t samples, checked, json_checked;
    int64_t per_type[8]; /* heart_rate, steps, sleep, workout, bp, systolic, oxygen, other */
    int bad;             /* first failed check, 0 none */
    double oxygen, energy_kcal_sum;
    int fail_after; /* >0: return -42 at that batch */
    int batches;
};

static int type_slot(const char *t)
{
    static const char *const names[] = {HK_T_HEART_RATE,     HK_T_STEPS,       HK_T_SLEEP,       HK_T_WORKOUT,
                                        HK_T_BLOOD_PRESSURE, HK_T_BP_SYSTOLIC, HK_T_BLOOD_OXYGEN};
    for (int i = 0; i < 7; i++)
        if (strcmp(t, names[i]) == 0)
            return i;
    return 7;
}

/* Check one sample against what generate() wrote for its index. */
static int check_sample(const struct store_sample *s)
{
    const char *m = s->payload != NULL ? strstr(s->payload, "\"ClarityTestIndex\":\"") : NULL;
    if (s->user_id[0] == '\0' || strcmp(s->upload_id, upload_id) != 0 || strlen(s->hk_uuid) != 36)
        return 1;
    if (m == NULL)
        return 0;
    long i = strtol(m + 20, NULL, 10);
    int64_t st = BASE_MS + (int64_t)i * 60000;
    char want[48];
    snprintf(want, sizeof(want), "{\"tz_offset_min\":%d,", offsets[i % 6]);
    if (s->start_ms != st)
        return 2;
    if (strncmp(s->payload, want, strlen(want)) != 0)
        return 3;
    if (strcmp(s->source, sources[i % 3]) != 0 && strcmp(s->source, "Third Party App") != 0)
        return 4;
    if (strcmp(s->metric_type, HK_T_SLEEP) == 0 &&
        (s->end_ms - s->start_ms != 30 * 60000 || fabs(s->value - 30.0) > 1e-9 ||
         strstr(s->payload, i % 3 ? "\"category\":\"asleep_core\"" : "\"category\":\"in_bed\"") == NULL))
        return 5;
    if (strcmp(s->metric_type, HK_T_WORKOUT) == 0 &&
        (fabs(s->value - 30.0) > 1e-9 ||
         strstr(s->payload, (i / 20) % 2 ? "\"distance_km\":4.98896" : "\"distance_km\":12") == NULL ||
         strstr(s->payload, "\"energy_kcal\":300") == NULL))
        return 6;
    if (strcmp(s->metric_type, HK_T_BLOOD_PRESSURE) == 0 &&
        (s->value != 121 || s->value2 != 79 || strcmp(s->unit, "mmHg") != 0))
        return 7;
    if (strcmp(s->metric_type, HK_T_HEART_RATE) == 0 && strcmp(s->device, "Apple Watch") != 0 &&
        strcmp(s->device, "iPhone") != 0 && strcmp(s->device, "Withings") != 0 &&
        strcmp(s->device, "Third Party App") != 0)
        return 8;
    return 0;
}

static int on_batch(void *ctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                    size_t *stored)
{
    struct counter *c = ctx;
    c->batches++;
    if (c->fail_after > 0 && c->batches == c->fail_after)
        return -42;
    for (size_t i = 0; i < n; i++) {
        c->samples++;
        c->per_type[type_slot(v[i].metric_type)]++;
        if (strcmp(v[i].metric_type, HK_T_BLOOD_OXYGEN) == 0)
            c->oxygen = v[i].value;
        int bad = check_sample(&v[i]);
        if (bad != 0 && c->bad == 0) {
            c->bad = bad;
            fprintf(stderr, "sample check %d failed: %s %s\n", bad, v[i].metric_type, v[i].payload ? v[i].payload : "");
        }
        c->checked++;
        if ((c->samples % 97) == 0 || strstr(v[i].payload, "metadata_truncated") != NULL) {
            json_error_t je;
            json_t *j = json_loads(v[i].payload, 0, &je);
            if (j == NULL && c->bad == 0) {
                c->bad = 100;
                fprintf(stderr, "payload is not JSON: %s (%s)\n", v[i].payload, je.text);
            }
            json_decref(j);
            c->json_checked++;
        }
    }
    if (so_far->samples < c->samples || so_far->bytes_parsed <= 0)
        c->bad = c->bad ? c->bad : 200;
    if (c->st != NULL) {
        struct store_tx *tx = NULL;
        size_t ins = 0;
        if (store_tx_begin(c->st, STORE_TX_WRITE, &tx) != 0)
            return -1;
        if (store_sample_insert_batch(tx, v, n, &ins) != 0) {
            fprintf(stderr, "insert: %s\n", store_tx_errmsg(tx));
            store_tx_rollback(tx);
            return -1;
        }
        if (store_tx_commit(tx) != 0)
            return -1;
        *stored = ins;
    }
    return 0;
}

static struct apple_export *parser(struct counter *c, size_t batch)
{
    struct apple_export *p = NULL;
    struct apple_export_options o = {
        .user_id = user_id, .upload_id = upload_id, .batch_size = batch, .on_batch = on_batch, .ctx = c};
    assert_int_equal(apple_export_new(&o, &p), 0);
    return p;
}

static struct store *open_store(const char *name)
{
    char path[1200], url[1300], err[512];
    struct store *st = NULL;
    struct store_options o;
    tmp_path(path, sizeof(path), name);
    unlink(path);
    char side[1300];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    store_options_default(&o);
    o.pool_size = 1;
    o.synchronous_full = 0;
    int rc = store_open(url, &o, &st, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "store_open: %s\n", err);
    assert_int_equal(rc, 0);
    rc = store_migrate_up(st, NULL, NULL, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "migrate: %s\n", err);
    assert_int_equal(rc, 0);
    struct store_tx *tx = NULL;
    struct store_user u;
    struct store_upload up;
    memset(&u, 0, sizeof(u));
    memset(&up, 0, sizeof(up));
    snprintf(u.id, sizeof(u.id), "%s", user_id);
    snprintf(u.email, sizeof(u.email), "import@example.com");
    snprintf(up.id, sizeof(up.id), "%s", upload_id);
    snprintf(up.user_id, sizeof(up.user_id), "%s", user_id);
    snprintf(up.source, sizeof(up.source), "apple_health_export");
    up.status = STORE_UPLOAD_RECEIVED;
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_upload_insert(tx, &up), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    return st;
}

static int64_t stored_count(struct store *st)
{
    struct store_tx *tx = NULL;
    int64_t n = -1;
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_count(tx, user_id, NULL, &n), 0);
    store_tx_rollback(tx);
    return n;
}

/* ---- the big case: ≥ 100,000 records, XML then zip -------------------- */

static void zip_file(const char *zip_path, const char *xml_path, const char *entry)
{
    int zerr = 0;
    unlink(zip_path);
    zip_t *za = zip_open(zip_path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    assert_non_null(za);
    if (xml_path != NULL) {
        zip_source_t *src = zip_source_file(za, xml_path, 0, -1);
        assert_non_null(src);
        assert_true(zip_file_add(za, entry, src, ZIP_FL_OVERWRITE) >= 0);
    }
    static const char cda[] = "<ClinicalDocument/>";
    zip_source_t *s2 = zip_source_buffer(za, cda, sizeof(cda) - 1, 0);
    assert_non_null(s2);
    assert_true(zip_file_add(za, "apple_health_export/export_cda.xml", s2, ZIP_FL_OVERWRITE) >= 0);
    assert_int_equal(zip_close(za), 0);
}

static void test_large_export_xml_and_zip(void **state)
{
    (void)state;
    char xml[1200], zipp[1200];
    struct expect x;
    tmp_path(xml, sizeof(xml), "export.xml");
    tmp_path(zipp, sizeof(zipp), "export.zip");
    generate(xml, NREC, &x);
    assert_true(x.records >= 100000);

    struct store *st = open_store("large.db");
    struct counter c;
    memset(&c, 0, sizeof(c));
    c.st = st;
    struct apple_export *p = parser(&c, 0);
    int rc = apple_export_import_file(p, xml);
    if (rc != 0)
        fprintf(stderr, "import: %s\n", apple_export_errmsg(p));
    assert_int_equal(rc, 0);
    assert_int_equal(c.bad, 0);
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    assert_int_equal(s.records, x.records);
    assert_int_equal(s.samples, x.samples);
    assert_int_equal(s.unknown, x.unknown);
    assert_int_equal(s.rejected, 0);
    assert_int_equal(c.samples, x.samples);
    assert_int_equal(s.stored, x.unique);
    assert_int_equal(s.bytes_parsed, s.bytes_total);
    assert_int_equal(stored_count(st), x.unique);
    /* Counts per type, from the parser's table and from the samples. */
    assert_int_equal(apple_export_type_count(p, "HKQuantityTypeIdentifierHeartRate"), x.heart_rate);
    assert_int_equal(apple_export_type_count(p, "HKQuantityTypeIdentifierStepCount"), x.steps);
    assert_int_equal(apple_export_type_count(p, "HKCategoryTypeIdentifierSleepAnalysis"), x.sleep);
    assert_int_equal(apple_export_type_count(p, "HKWorkoutTypeIdentifier"), x.workouts);
    assert_int_equal(apple_export_type_count(p, "HKCorrelationTypeIdentifierBloodPressure"), x.bp);
    assert_int_equal(apple_export_type_count(p, "HKQuantityTypeIdentifierBloodPressureSystolic"), x.systolic);
    assert_int_equal(apple_export_type_count(p, "HKQuantityTypeIdentifierNoSuchThing"), 0);
    assert_int_equal(c.per_type[0], x.heart_rate);
    assert_int_equal(c.per_type[1], x.steps);
    assert_int_equal(c.per_type[2], x.sleep);
    assert_int_equal(c.per_type[3], x.workouts);
    assert_int_equal(c.per_type[4], x.bp);
    assert_int_equal(c.per_type[5], x.systolic);
    assert_true(fabs(c.oxygen - 97.0) < 1e-9); /* HealthKit's fraction, stored as percent */
    /* The report names the unknown types with their counts. */
    json_t *r = apple_export_report_json(p);
    assert_non_null(r);
    json_t *u = json_object_get(r, "unknown_types");
    assert_int_equal(json_object_size(u), 2);
    json_t *audio = json_object_get(u, "HKQuantityTypeIdentifierEnvironmentalAudioExposure");
    assert_non_null(audio);
    assert_int_equal(json_integer_value(json_object_get(audio, "count")), NREC / 20);
    assert_non_null(json_object_get(u, "HKCategoryTypeIdentifierAppleStandHour"));
    assert_int_equal(json_integer_value(json_object_get(r, "duplicates")), x.samples - x.unique);
    assert_string_equal(json_string_value(json_object_get(r, "format")), "xml");
    json_decref(r);
    apple_export_free(p);

    /* The same export zipped, as the Health app writes it: same counts, and
     * importing it again into the same store adds nothing. */
    zip_file(zipp, xml, "apple_health_export/export.xml");
    struct counter z;
    memset(&z, 0, sizeof(z));
    z.st = st;
    p = parser(&z, 0);
    rc = apple_export_import_file(p, zipp);
    if (rc != 0)
        fprintf(stderr, "import zip: %s\n", apple_export_errmsg(p));
    assert_int_equal(rc, 0);
    assert_int_equal(z.bad, 0);
    struct apple_export_stats sz;
    apple_export_stats_get(p, &sz);
    assert_int_equal(sz.records, s.records);
    assert_int_equal(sz.samples, s.samples);
    assert_int_equal(sz.unknown, s.unknown);
    assert_int_equal(sz.bytes_parsed, s.bytes_parsed);
    assert_int_equal(sz.bytes_total, s.bytes_total);
    assert_int_equal(sz.stored, 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(z.per_type[i], c.per_type[i]);
    r = apple_export_report_json(p);
    assert_string_equal(json_string_value(json_object_get(r, "format")), "zip");
    json_decref(r);
    apple_export_free(p);
    assert_int_equal(stored_count(st), x.unique);
    store_close(st);
    unlink(xml);
    unlink(zipp);
}

/* ---- dates --------------------------------------------------------------- */

static void test_dates(void **state)
{
    (void)state;
    int64_t ms, want;
    int off = 0;
    assert_int_equal(apple_export_date_parse("2019-03-06 07:41:18 -0500", &ms, &off), 0);
    assert_int_equal(time_parse_rfc3339("2019-03-06T12:41:18Z", &want, NULL), 0);
    assert_int_equal(ms, want);
    assert_int_equal(off, -300);
    assert_int_equal(apple_export_date_parse("2020-02-29 00:10:00 +0545", &ms, &off), 0);
    assert_int_equal(time_parse_rfc3339("2020-02-28T18:25:00Z", &want, NULL), 0);
    assert_int_equal(ms, want);
    assert_int_equal(off, 345);
    assert_int_equal(apple_export_date_parse("1970-01-01 00:00:00 +0000", &ms, &off), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(off, 0);
    /* -0000 is UTC too; -0330 is Newfoundland */
    assert_int_equal(apple_export_date_parse("2019-11-03 01:30:00 -0330", &ms, &off), 0);
    assert_int_equal(time_parse_rfc3339("2019-11-03T05:00:00Z", &want, NULL), 0);
    assert_int_equal(ms, want);
    assert_int_equal(off, -210);
    static const char *const bad[] = {
        "2019-02-29 07:41:18 -0500", /* not a leap year */
        "2019-03-06T07:41:18 -0500", "2019-03-06 07:41:18 -05:00", "2019-03-06 07:41:18",
        "2019-03-06 07:41:18 -2400", "2019-03-06 07:41:18 +0560",  "2019-03-06 24:00:00 +0000",
        "2019-13-06 07:41:18 +0000", "2019-03-06 07:41:18 +0000 ", "",
        "2019-03-06 07:41:18 x0500",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 12345;
        if (apple_export_date_parse(bad[i], &ms, &off) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(ms, 12345);
    }
}

/* ---- smaller documents --------------------------------------------------- */

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static const char small_doc[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<HealthData locale=\"en_US\">\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"72\">\n"
    "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"1\"/>\n"
    "  <MetadataEntry key=\"HKExternalUUID\" value=\"A&amp;B\"/>\n </Record>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"72\">\n"
    "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"1\"/>\n"
    "  <MetadataEntry key=\"HKExternalUUID\" value=\"A&amp;B\"/>\n </Record>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Other\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"72\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"72\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:40:18 -0500\" value=\"72\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"count/min\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"x\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"W\" unit=\"furlongs\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"1\"/>\n"
    " <Record type=\"HKQuantityTypeIdentifierDietaryWater\" sourceName=\"W\" unit=\"mL\""
    " startDate=\"2019-03-06 07:41:18 -0500\" endDate=\"2019-03-06 07:41:18 -0500\" value=\"x\"/>\n"
    "</HealthData>\n";

/* Two identical records → one row; a second source → its own row; bad
 * date, reversed interval, non-number → rejected; unknown unit or type →
 * unknown; metadata in the payload, escaped. */
static void test_small_store_dedup_and_reasons(void **state)
{
    (void)state;
    char xml[1200];
    tmp_path(xml, sizeof(xml), "small.xml");
    write_file(xml, small_doc, sizeof(small_doc) - 1);
    struct store *st = open_store("small.db");
    struct counter c;
    memset(&c, 0, sizeof(c));
    c.st = st;
    struct apple_export *p = parser(&c, 2);
    assert_int_equal(apple_export_import_file(p, xml), 0);
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    assert_int_equal(s.records, 8);
    assert_int_equal(s.samples, 3);
    assert_int_equal(s.stored, 2);
    assert_int_equal(s.rejected, 3);
    assert_int_equal(s.unknown, 2);
    assert_int_equal(s.batches, 2);
    assert_int_equal(stored_count(st), 2);
    json_t *r = apple_export_report_json(p);
    json_t *rej = json_object_get(json_object_get(r, "rejected_types"), "HKQuantityTypeIdentifierHeartRate");
    assert_int_equal(json_integer_value(json_object_get(rej, "count")), 3);
    json_t *unk = json_object_get(r, "unknown_types");
    assert_non_null(json_object_get(unk, "HKQuantityTypeIdentifierDietaryWater"));
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(unk, "HKQuantityTypeIdentifierHeartRate"), "reason")),
               "furlongs"));
    json_decref(r);
    apple_export_free(p);

    /* Read the stored sample back: payload, UTC instant, source, key. */
    struct store_tx *tx = NULL;
    struct store_sample *v = NULL;
    size_t n = 0;
    struct store_cursor next;
    struct store_sample_query q = {
        .user_id = user_id, .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 1, .limit = 10};
    assert_int_equal(store_tx_begin(st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_list(tx, &q, &v, &n, &next), 0);
    store_tx_rollback(tx);
    assert_int_equal(n, 2);
    int64_t want;
    assert_int_equal(time_parse_rfc3339("2019-03-06T12:41:18Z", &want, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].start_ms, want);
        assert_string_equal(v[i].metric_type, HK_T_HEART_RATE);
        assert_true(v[i].value == 72);
        /* version-8 key with the start millisecond in front */
        char prefix[16];
        snprintf(prefix, sizeof(prefix), "%08llx", (unsigned long long)(want >> 16));
        assert_memory_equal(v[i].hk_uuid, prefix, 8);
        assert_int_equal(v[i].hk_uuid[14], '8');
    }
    assert_string_not_equal(v[0].hk_uuid, v[1].hk_uuid);
    store_sample_list_free(v, n);

    /* The payload of the first record (check the callback's view too). */
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_feed(p, small_doc, 300), 0);
    apple_export_free(p); /* freeing mid-stream is fine */

    /* Re-import: nothing new. */
    memset(&c, 0, sizeof(c));
    c.st = st;
    p = parser(&c, 0);
    assert_int_equal(apple_export_import_file(p, xml), 0);
    apple_export_stats_get(p, &s);
    assert_int_equal(s.stored, 0);
    apple_export_free(p);
    store_close(st);
    unlink(xml);
}

/* Capture one batch's payloads. */
struct capture {
    char payload[4][APPLE_EXPORT_PAYLOAD_MAX];
    char uuid[4][64];
    size_t n;
};

static int capture_batch(void *ctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                         size_t *stored)
{
    struct capture *c = ctx;
    for (size_t i = 0; i < n && c->n < 4; i++, c->n++) {
        snprintf(c->payload[c->n], sizeof(c->payload[0]), "%s", v[i].payload);
        snprintf(c->uuid[c->n], sizeof(c->uuid[0]), "%s", v[i].hk_uuid);
    }
    return 0;
}

static void test_metadata_payload(void **state)
{
    (void)state;
    struct capture cap;
    memset(&cap, 0, sizeof(cap));
    struct apple_export *p = NULL;
    struct apple_export_options o = {.user_id = user_id, .on_batch = capture_batch, .ctx = &cap};
    assert_int_equal(apple_export_new(&o, &p), 0);
    /* Fed one byte at a time: chunks may split anywhere. */
    for (size_t i = 0; i < sizeof(small_doc) - 1; i++)
        assert_int_equal(apple_export_feed(p, small_doc + i, 1), 0);
    assert_int_equal(apple_export_finish(p), 0);
    assert_int_equal(apple_export_finish(p), APPLE_EXPORT_EINVAL); /* once */
    assert_int_equal(cap.n, 3);
    json_error_t je;
    json_t *j = json_loads(cap.payload[0], 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "tz_offset_min")), -300);
    json_t *md = json_object_get(j, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "HKExternalUUID")), "A&B");
    assert_string_equal(json_string_value(json_object_get(md, "HKMetadataKeyHeartRateMotionContext")), "1");
    assert_string_equal(json_string_value(json_object_get(j, "hk_type")), "HKQuantityTypeIdentifierHeartRate");
    json_decref(j);
    assert_string_equal(cap.uuid[0], cap.uuid[1]); /* identical records, identical keys */
    apple_export_free(p);

    /* Many metadata entries: the payload stays bounded and valid JSON. */
    FILE *m = NULL;
    char *doc = NULL;
    size_t doclen = 0;
    m = open_memstream(&doc, &doclen);
    assert_non_null(m);
    fputs("<HealthData><Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"S\" "
          "unit=\"count\" startDate=\"2019-03-06 07:41:18 +0100\" "
          "endDate=\"2019-03-06 08:42:18 +0200\" value=\"5\">",
          m);
    for (int i = 0; i < 200; i++)
        fprintf(m, "<MetadataEntry key=\"k%03d\" value=\"\\ &quot; &#9; %0*d\"/>", i, 20, i);
    fputs("<MetadataEntry key=\"HKMetadataKeySyncIdentifier\" value=\"abc\"/>"
          "</Record></HealthData>",
          m);
    fclose(m);
    memset(&cap, 0, sizeof(cap));
    assert_int_equal(apple_export_new(&o, &p), 0);
    assert_int_equal(apple_export_feed(p, doc, doclen), 0);
    assert_int_equal(apple_export_finish(p), 0);
    free(doc);
    assert_int_equal(cap.n, 1);
    assert_true(strlen(cap.payload[0]) < APPLE_EXPORT_PAYLOAD_MAX);
    j = json_loads(cap.payload[0], 0, &je);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "metadata_truncated")));
    assert_int_equal(json_integer_value(json_object_get(j, "tz_offset_min")), 60);
    assert_int_equal(json_integer_value(json_object_get(j, "end_tz_offset_min")), 120);
    json_decref(j);
    /* A sync identifier makes a version-5 key */
    assert_int_equal(cap.uuid[0][14], '5');
    apple_export_free(p);
}

/* ---- zip through the feed interface, and zip errors -------------------- */

static void read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    *out = malloc((size_t)n + 1);
    assert_non_null(*out);
    assert_int_equal(fread(*out, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
}

static void test_zip_feed_and_errors(void **state)
{
    (void)state;
    char xml[1200], zipp[1200], bad[1200];
    tmp_path(xml, sizeof(xml), "z.xml");
    tmp_path(zipp, sizeof(zipp), "z.zip");
    tmp_path(bad, sizeof(bad), "bad.bin");
    write_file(xml, small_doc, sizeof(small_doc) - 1);
    /* Another folder name: found by its file name. */
    zip_file(zipp, xml, "Export/export.xml");
    char *data = NULL;
    size_t len = 0;
    read_all(zipp, &data, &len);
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = parser(&c, 0);
    for (size_t at = 0; at < len; at += 3) /* odd chunks, the signature split */
        assert_int_equal(apple_export_feed(p, data + at, len - at < 3 ? len - at : 3), 0);
    assert_int_equal(apple_export_finish(p), 0);
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    assert_int_equal(s.records, 8);
    assert_int_equal(s.samples, 3);
    apple_export_free(p);

    /* A damaged archive through the feed interface. */
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_feed(p, data, len / 2), 0);
    int rc = apple_export_finish(p);
    assert_true(rc == APPLE_EXPORT_EFORMAT || rc == APPLE_EXPORT_EIO);
    assert_true(strlen(apple_export_errmsg(p)) > 0);
    apple_export_free(p);
    free(data);

    /* A zip without export.xml. */
    zip_file(zipp, NULL, NULL);
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_import_file(p, zipp), APPLE_EXPORT_EFORMAT);
    assert_non_null(strstr(apple_export_errmsg(p), "no export.xml"));
    assert_int_equal(c.batches, 0);
    apple_export_free(p);

    /* A zip signature followed by garbage. */
    static const char junk[] = "PK\3\4this is not really a zip archive at all";
    write_file(bad, junk, sizeof(junk) - 1);
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    rc = apple_export_import_file(p, bad);
    assert_true(rc == APPLE_EXPORT_EFORMAT || rc == APPLE_EXPORT_EIO);
    assert_non_null(strstr(apple_export_errmsg(p), "zip"));
    apple_export_free(p);

    /* A missing file. */
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_import_file(p, "/nonexistent/export.zip"), APPLE_EXPORT_EIO);
    apple_export_free(p);
    unlink(xml);
    unlink(zipp);
    unlink(bad);
}

/* ---- malformed XML ------------------------------------------------------- */

static void expect_format_error(const char *doc, size_t len, const char *needle)
{
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = parser(&c, 0);
    int rc = apple_export_feed(p, doc, len);
    if (rc == 0)
        rc = apple_export_finish(p);
    assert_int_equal(rc, APPLE_EXPORT_EFORMAT);
    const char *msg = apple_export_errmsg(p);
    if (strstr(msg, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", msg, needle);
    /* Later calls keep failing the same way. */
    assert_int_equal(apple_export_feed(p, "x", 1), APPLE_EXPORT_EFORMAT);
    apple_export_free(p);
}

static void test_malformed(void **state)
{
    (void)state;
    /* cut in the middle of a record */
    expect_format_error(small_doc, 400, "not well-formed XML");
    expect_format_error(small_doc, 400, "at line ");
    /* mismatched tag */
    static const char mism[] = "<HealthData><Record type=\"a\"></Workout></HealthData>";
    expect_format_error(mism, sizeof(mism) - 1, "mismatched tag");
    /* another XML document */
    static const char other[] = "<html><body/></html>";
    expect_format_error(other, sizeof(other) - 1, "not an Apple Health export");
    /* binary junk, an empty upload, text that is not XML */
    static const unsigned char bin[] = {0x00, 0xff, 0xfe, 0x01, 0x80, 0x90};
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = parser(&c, 0);
    int rc = apple_export_feed(p, bin, sizeof(bin));
    if (rc == 0)
        rc = apple_export_finish(p);
    assert_int_equal(rc, APPLE_EXPORT_EFORMAT);
    apple_export_free(p);
    expect_format_error("", 0, "empty");
    expect_format_error("hi", 2, "not well-formed XML");
    /* an entity bomb is refused by expat, not expanded */
    static const char bomb[] =
        "<?xml version=\"1.0\"?><!DOCTYPE HealthData [<!ENTITY a \"aaaaaaaaaa\">"
        "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
        "<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
        "<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">"
        "<!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\"><!ENTITY i \"&h;&h;&h;&h;&h;&h;&h;&h;&h;&h;\">"
        "]><HealthData><Record type=\"&i;\"/></HealthData>";
    expect_format_error(bomb, sizeof(bomb) - 1, "not well-formed XML");

    /* The callback stops the import. */
    char xml[1200];
    tmp_path(xml, sizeof(xml), "stop.xml");
    write_file(xml, small_doc, sizeof(small_doc) - 1);
    memset(&c, 0, sizeof(c));
    c.fail_after = 1;
    p = parser(&c, 1);
    assert_int_equal(apple_export_import_file(p, xml), APPLE_EXPORT_ECALLBACK);
    assert_int_equal(apple_export_callback_rc(p), -42);
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    assert_int_equal(s.batches, 1);
    apple_export_free(p);
    unlink(xml);

    /* Bad options */
    struct apple_export_options o = {.user_id = user_id, .on_batch = NULL};
    assert_int_equal(apple_export_new(&o, &p), APPLE_EXPORT_EINVAL);
    o.on_batch = on_batch;
    o.batch_size = APPLE_EXPORT_BATCH_MAX + 1;
    assert_int_equal(apple_export_new(&o, &p), APPLE_EXPORT_EINVAL);
    o.batch_size = 0;
    o.user_id = "";
    assert_int_equal(apple_export_new(&o, &p), APPLE_EXPORT_EINVAL);
}

/* ---- hostile uploads (issue #16, docs/security.md) ---------------------- */

/* Issue #16 (3): nesting had no limit (~47 bytes of memory per uploaded
 * byte). A real export nests 4 levels; 16 pass, 17 are refused as soon as
 * the 17th opens, however much follows. */
static void test_nesting_depth_limit(void **state)
{
    (void)state;
    size_t cap = 64 + 3 * 100000;
    char *doc = malloc(cap);
    assert_non_null(doc);
    /* 16 levels (HealthData + 15) pass. */
    size_t n = (size_t)snprintf(doc, cap, "<HealthData>");
    for (int i = 1; i < APPLE_EXPORT_DEPTH_MAX; i++)
        n += (size_t)snprintf(doc + n, cap - n, "<a>");
    for (int i = 1; i < APPLE_EXPORT_DEPTH_MAX; i++)
        n += (size_t)snprintf(doc + n, cap - n, "</a>");
    n += (size_t)snprintf(doc + n, cap - n, "</HealthData>");
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = parser(&c, 0);
    assert_int_equal(apple_export_feed(p, doc, n), 0);
    assert_int_equal(apple_export_finish(p), 0);
    apple_export_free(p);
    /* 100,000 open elements: refused at the 17th, the rest never parsed. */
    n = (size_t)snprintf(doc, cap, "<HealthData>");
    for (int i = 0; i < 100000; i++)
        n += (size_t)snprintf(doc + n, cap - n, "<a>");
    expect_format_error(doc, n, "deeper than 16 levels");
    free(doc);
}

/* One start tag may not grow expat's buffer past APPLE_EXPORT_TOKEN_MAX
 * (many attributes, or one huge value). */
static void test_token_size_limit(void **state)
{
    (void)state;
    size_t cap = APPLE_EXPORT_TOKEN_MAX + 4096;
    char *doc = malloc(cap);
    assert_non_null(doc);
    size_t n = (size_t)snprintf(doc, cap, "<HealthData><Record type=\"");
    memset(doc + n, 'x', APPLE_EXPORT_TOKEN_MAX + 1024);
    n += APPLE_EXPORT_TOKEN_MAX + 1024;
    expect_format_error(doc, n, "single XML token larger than 1 MiB");
    free(doc);
}

static void zip_of_buffer(const char *zip_path, const char *data, size_t len)
{
    int zerr = 0;
    unlink(zip_path);
    zip_t *za = zip_open(zip_path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    assert_non_null(za);
    zip_source_t *src = zip_source_buffer(za, data, len, 0);
    assert_non_null(src);
    assert_true(zip_file_add(za, "apple_health_export/export.xml", src, ZIP_FL_OVERWRITE) >= 0);
    assert_int_equal(zip_close(za), 0);
}

/* Issue #16 (4): a zip bomb (64 MiB of whitespace in a ~64 KiB archive,
 * ~1000:1) is refused once it inflates past max(16 MiB, 100 x its size),
 * both fed (spooled) and from a file; a real-looking ratio passes. */
static void test_zip_bomb(void **state)
{
    (void)state;
    size_t big = 64u << 20;
    char *doc = malloc(big);
    assert_non_null(doc);
    size_t n = (size_t)snprintf(doc, big, "<HealthData>");
    memset(doc + n, ' ', big - n - 13);
    memcpy(doc + big - 13, "</HealthData>", 13);
    char zpath[1200];
    tmp_path(zpath, sizeof(zpath), "bomb.zip");
    zip_of_buffer(zpath, doc, big);
    free(doc);

    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = parser(&c, 0);
    assert_int_equal(apple_export_import_file(p, zpath), APPLE_EXPORT_EFORMAT);
    assert_non_null(strstr(apple_export_errmsg(p), "zip bomb"));
    struct apple_export_stats s;
    apple_export_stats_get(p, &s);
    assert_true(s.bytes_parsed <= APPLE_EXPORT_ZIP_FLOOR);
    apple_export_free(p);

    char *z = NULL;
    size_t zlen = 0;
    read_all(zpath, &z, &zlen);
    assert_true(zlen < (size_t)(APPLE_EXPORT_ZIP_FLOOR / APPLE_EXPORT_ZIP_RATIO_MAX));
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_feed(p, z, zlen), 0); /* spooled */
    assert_int_equal(apple_export_finish(p), APPLE_EXPORT_EFORMAT);
    assert_non_null(strstr(apple_export_errmsg(p), "zip bomb"));
    apple_export_free(p);
    free(z);

    /* The small document zipped (ratio far below 100) imports. */
    zip_of_buffer(zpath, small_doc, sizeof(small_doc) - 1);
    memset(&c, 0, sizeof(c));
    p = parser(&c, 0);
    assert_int_equal(apple_export_import_file(p, zpath), 0);
    apple_export_free(p);
    unlink(zpath);
}

/* max_xml_bytes bounds plain XML and inflated zips alike. */
static void test_max_xml_bytes(void **state)
{
    (void)state;
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = NULL;
    struct apple_export_options o = {.user_id = user_id, .on_batch = on_batch, .ctx = &c, .max_xml_bytes = 100};
    assert_int_equal(apple_export_new(&o, &p), 0);
    assert_int_equal(apple_export_feed(p, small_doc, sizeof(small_doc) - 1), APPLE_EXPORT_EFORMAT);
    assert_non_null(strstr(apple_export_errmsg(p), "larger than"));
    apple_export_free(p);
}

/* The stop flag (shutdown) ends an import at its next chunk. */
static void test_stop_flag(void **state)
{
    (void)state;
    atomic_int stop = 0;
    struct counter c;
    memset(&c, 0, sizeof(c));
    struct apple_export *p = NULL;
    struct apple_export_options o = {.user_id = user_id, .on_batch = on_batch, .ctx = &c, .stop = &stop};
    assert_int_equal(apple_export_new(&o, &p), 0);
    assert_int_equal(apple_export_feed(p, small_doc, 40), 0);
    atomic_store(&stop, 1);
    assert_int_equal(apple_export_feed(p, small_doc + 40, sizeof(small_doc) - 41), APPLE_EXPORT_ESTOPPED);
    assert_non_null(strstr(apple_export_errmsg(p), "shutting down"));
    apple_export_free(p);
}

/* ---- mutations: no crash, a clean result or a clean error -------------- */

static int json_check_batch(void *ctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                            size_t *stored)
{
    int *bad = ctx;
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(v[i].payload, 0, NULL);
        if (j == NULL || v[i].end_ms < v[i].start_ms || strlen(v[i].hk_uuid) != 36)
            *bad = 1;
        json_decref(j);
    }
    return 0;
}

static uint64_t xorshift(uint64_t *s)
{
    /* xorshift64 (Marsaglia 2003) */
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_mutations(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    char doc[sizeof(small_doc)];
    int bad = 0, ok = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(doc, small_doc, sizeof(small_doc));
        size_t len = sizeof(small_doc) - 1;
        int k = 1 + (int)(xorshift(&seed) % 4);
        for (int m = 0; m < k; m++) {
            size_t at = (size_t)(xorshift(&seed) % len);
            static const char pick[] = "<>\"&;/= -+0123456789:aZ\x01\x80\xff\xc3";
            doc[at] = pick[xorshift(&seed) % (sizeof(pick) - 1)];
        }
        if (xorshift(&seed) % 5 == 0)
            len = (size_t)(xorshift(&seed) % len);
        struct apple_export *p = NULL;
        struct apple_export_options o = {
            .user_id = user_id, .batch_size = 2, .on_batch = json_check_batch, .ctx = &bad};
        assert_int_equal(apple_export_new(&o, &p), 0);
        int rc = 0;
        for (size_t at = 0; at < len && rc == 0;) {
            size_t step = 1 + (size_t)(xorshift(&seed) % 97);
            if (step > len - at)
                step = len - at;
            rc = apple_export_feed(p, doc + at, step);
            at += step;
        }
        if (rc == 0)
            rc = apple_export_finish(p);
        if (rc != 0 && rc != APPLE_EXPORT_EFORMAT)
            fail_msg("iteration %d: unexpected code %d (%s)", it, rc, apple_export_errmsg(p));
        if (rc != 0 && apple_export_errmsg(p)[0] == '\0')
            fail_msg("iteration %d: failed without a message", it);
        ok += rc == 0;
        apple_export_free(p);
    }
    assert_int_equal(bad, 0);
    assert_true(ok > 0); /* some mutations leave a valid document */
}

/* The content key by its definition (apple_export.c, RFC 9562 §5.8): SHA-1
 * over the 16-byte namespace then type, start, end, value, unit and source,
 * each followed by 0x1f; the start's 48 bits over bytes 0-5, version 8,
 * variant 10. Computed independently with Python's hashlib. */
static void test_content_key_by_hand(void **state)
{
    (void)state;
    char out[48];
    apple_export_content_key("HKQuantityTypeIdentifierStepCount", 1700000000000LL, 1700000600000LL, "320", "count",
                             "Watch", out, sizeof(out));
    assert_string_equal(out, "018bcfe5-6800-842f-95ca-3bcf97bfee3b");
}

int main(void)
{
    const char *t = getenv("CLARITY_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s", t != NULL && t[0] ? t : "/tmp");
    mkdir(tmpdir, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_key_by_hand),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_small_store_dedup_and_reasons),
        cmocka_unit_test(test_metadata_payload),
        cmocka_unit_test(test_zip_feed_and_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_nesting_depth_limit),
        cmocka_unit_test(test_token_size_limit),
        cmocka_unit_test(test_zip_bomb),
        cmocka_unit_test(test_max_xml_bytes),
        cmocka_unit_test(test_stop_flag),
        cmocka_unit_test(test_large_export_xml_and_zip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
