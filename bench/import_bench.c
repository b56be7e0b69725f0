/*
 * import_bench.c — Apple Health export import throughput and memory against
 * the targets of issue 5: >= 50 MB/s of export.xml parsed and stored, peak
 * RSS <= 64 MB.
 *
 * Generates an export.xml of IMPORT_BENCH_MB megabytes (default 512) under
 * build/tmp with the mix of a real export (heart rate with the long device
 * description and metadata, steps, energy, distance, sleep stages, workouts,
 * blood-pressure correlations, a type the mapping does not know), then in a
 * child process each (so ru_maxrss is the import's alone, read with
 * getrusage(RUSAGE_CHILDREN) after the child exits):
 *   1. parse + map only (callback discards the batches): the parser's floor;
 *   2. parse + map + store into a fresh SQLite store, as `clarity import`
 *      does: one write transaction per 1,000-sample batch holding the batch
 *      and the upload's progress, synchronous=FULL (the production setting).
 * Run from the repository root with no arguments. IMPORT_BENCH_KEEP=1 keeps
 * the generated files.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "ingest/apple_export.h"
#include "store/migrate.h"
#include "store/store.h"

#define TARGET_MBS 50.0
#define TARGET_RSS_MB 64.0

static const char user_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
static const char upload_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";
static int sync_normal;   /* IMPORT_BENCH_SYNC=normal: SQLite synchronous=NORMAL */
static size_t batch_size; /* IMPORT_BENCH_BATCH, 0: the parser's default */

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "import_bench: %s: %s\n", what, detail != NULL ? detail : "");
    exit(1);
}

static void fmt_date(char *out, size_t cap, int64_t ms, int off)
{
    time_t t = (time_t)(ms / 1000 + off * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    int a = off < 0 ? -off : off;
    snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d %c%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', a / 60, a % 60);
}

static const char watch[] = "&lt;&lt;HKDevice: 0x283ec1c20&gt;, name:Apple Watch, manufacturer:Apple Inc., "
                            "model:Watch, hardware:Watch6,1, software:9.1&gt;";

/* Write records until the file reaches bytes; returns the record count. */
static long generate(const char *path, int64_t bytes)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("create", path);
    static char iobuf[1 << 20];
    setvbuf(f, iobuf, _IOFBF, sizeof(iobuf));
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE HealthData [\n"
          "<!ELEMENT HealthData (ExportDate,Me,(Record|Correlation|Workout|ActivitySummary)*)>\n"
          "<!ATTLIST HealthData\n  locale CDATA #REQUIRED\n>\n]>\n<HealthData locale=\"en_US\">\n"
          " <ExportDate value=\"2024-03-07 10:00:00 -0500\"/>\n <Me/>\n",
          f);
    static const int offs[4] = {-300, -240, 60, 120};
    int64_t t = 1546300800000LL; /* 2019-01-01 */
    long n = 0;
    int64_t written = 0;
    char s[96], e[96];
    while (written < bytes) {
        int off = offs[(n / 5000) % 4];
        int64_t st = t + (int64_t)n * 30000;
        fmt_date(s, sizeof(s), st, off);
        switch (n % 10) {
        case 0:
        case 1:
        case 2:
        case 3:
            fmt_date(e, sizeof(e), st, off);
            written += fprintf(f,
                               " <Record type=\"HKQuantityTypeIdentifierHeartRate\" sourceName=\"Apple "
                               "Watch\" sourceVersion=\"9.1\" device=\"%s\" unit=\"count/min\" "
                               "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" value=\"%ld\">\n"
                               "  <MetadataEntry key=\"HKMetadataKeyHeartRateMotionContext\" value=\"0\"/>\n"
                               " </Record>\n",
                               watch, e, s, e, 55 + n % 60);
            break;
        case 4:
        case 5:
            fmt_date(e, sizeof(e), st + 60000, off);
            written += fprintf(f,
                               " <Record type=\"HKQuantityTypeIdentifierStepCount\" sourceName=\"iPhone\" "
                               "sourceVersion=\"17.2\" device=\"%s\" unit=\"count\" creationDate=\"%s\" "
                               "startDate=\"%s\" endDate=\"%s\" value=\"%ld\"/>\n",
                               watch, e, s, e, 10 + n % 90);
            break;
        case 6:
            fmt_date(e, sizeof(e), st + 60000, off);
            written += fprintf(f,
                               " <Record type=\"HKQuantityTypeIdentifierActiveEnergyBurned\" "
                               "sourceName=\"Apple Watch\" sourceVersion=\"9.1\" device=\"%s\" unit=\"kcal\" "
                               "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" value=\"0.%03ld\"/>\n",
                               watch, e, s, e, n % 1000);
            break;
        case 7:
            fmt_date(e, sizeof(e), st + 1800000, off);
            written += fprintf(f,
                               " <Record type=\"HKCategoryTypeIdentifierSleepAnalysis\" sourceName=\"Apple "
                               "Watch\" sourceVersion=\"9.1\" creationDate=\"%s\" startDate=\"%s\" "
                               "endDate=\"%s\" value=\"HKCategoryValueSleepAnalysisAsleepCore\"/>\n",
                               e, s, e);
            break;
        case 8:
            fmt_date(e, sizeof(e), st + 60000, off);
            written += fprintf(f,
                               " <Record type=\"HKQuantityTypeIdentifierEnvironmentalAudioExposure\" "
                               "sourceName=\"Apple Watch\" sourceVersion=\"9.1\" device=\"%s\" "
                               "unit=\"dBASPL\" creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" "
                               "value=\"61.2\"/>\n",
                               watch, e, s, e);
            break;
        default:
            if (n % 100 == 9) {
                fmt_date(e, sizeof(e), st + 1800000, off);
                written += fprintf(f,
                                   " <Workout workoutActivityType=\"HKWorkoutActivityTypeRunning\" "
                                   "duration=\"30\" durationUnit=\"min\" totalDistance=\"5.1\" "
                                   "totalDistanceUnit=\"km\" totalEnergyBurned=\"320\" "
                                   "totalEnergyBurnedUnit=\"kcal\" sourceName=\"Apple Watch\" "
                                   "sourceVersion=\"9.1\" device=\"%s\" creationDate=\"%s\" "
                                   "startDate=\"%s\" endDate=\"%s\">\n"
                                   "  <MetadataEntry key=\"HKIndoorWorkout\" value=\"0\"/>\n"
                                   " </Workout>\n",
                                   watch, e, s, e);
            } else if (n % 100 == 19) {
                written += fprintf(f,
                                   " <Correlation type=\"HKCorrelationTypeIdentifierBloodPressure\" "
                                   "sourceName=\"Withings\" sourceVersion=\"5\" creationDate=\"%s\" "
                                   "startDate=\"%s\" endDate=\"%s\">\n"
                                   "  <Record type=\"HKQuantityTypeIdentifierBloodPressureSystolic\" "
                                   "sourceName=\"Withings\" unit=\"mmHg\" creationDate=\"%s\" "
                                   "startDate=\"%s\" endDate=\"%s\" value=\"121\"/>\n"
                                   "  <Record type=\"HKQuantityTypeIdentifierBloodPressureDiastolic\" "
                                   "sourceName=\"Withings\" unit=\"mmHg\" creationDate=\"%s\" "
                                   "startDate=\"%s\" endDate=\"%s\" value=\"79\"/>\n"
                                   " </Correlation>\n",
                                   s, s, s, s, s, s, s, s, s);
            } else {
                fmt_date(e, sizeof(e), st + 60000, off);
                written += fprintf(f,
                                   " <Record type=\"HKQuantityTypeIdentifierDistanceWalkingRunning\" "
                                   "sourceName=\"iPhone\" sourceVersion=\"17.2\" device=\"%s\" unit=\"km\" "
                                   "creationDate=\"%s\" startDate=\"%s\" endDate=\"%s\" "
                                   "value=\"0.0%02ld\"/>\n",
                                   watch, e, s, e, n % 100);
            }
        }
        n++;
    }
    fputs("</HealthData>\n", f);
    if (fclose(f) != 0)
        die("write", path);
    return n;
}

struct result {
    int rc;
    double secs;
    double cpu; /* CPU seconds of the import (all threads of the child) */
    struct apple_export_stats st;
    char err[256];
    char mem[160]; /* VmHWM and the RSS split at the end of the import */
};

struct ctx {
    struct store *st; /* NULL: parse only */
};

static int on_batch(void *vctx, struct store_sample *v, size_t n, const struct apple_export_stats *so_far,
                    size_t *stored)
{
    struct ctx *c = vctx;
    if (c->st == NULL)
        return 0;
    struct store_tx *tx = NULL;
    size_t ins = 0;
    double progress =
        so_far->bytes_total > 0 ? fmin(0.99, (double)so_far->bytes_parsed / (double)so_far->bytes_total) : 0;
    if (store_tx_begin(c->st, STORE_TX_WRITE, &tx) != 0)
        return -1;
    if (store_sample_insert_batch(tx, v, n, &ins) != 0 ||
        store_upload_status_set(tx, upload_id, STORE_UPLOAD_PROCESSING, progress, so_far->records, NULL) != 0) {
        store_tx_rollback(tx);
        return -1;
    }
    if (store_tx_commit(tx) != 0)
        return -1;
    *stored = ins;
    return 0;
}

static struct store *open_store(const char *path)
{
    char url[1100], err[512];
    struct store *st = NULL;
    struct store_options o;
    unlink(path);
    snprintf(url, sizeof(url), "%s-wal", path);
    unlink(url);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    store_options_default(&o);
    o.pool_size = 1;
    o.synchronous_full = !sync_normal;
    if (store_open(url, &o, &st, err, sizeof(err)) != 0)
        die("open", err);
    if (store_migrate_up(st, NULL, NULL, err, sizeof(err)) != 0)
        die("migrate", err);
    struct store_tx *tx = NULL;
    struct store_user u;
    struct store_upload up;
    memset(&u, 0, sizeof(u));
    memset(&up, 0, sizeof(up));
    snprintf(u.id, sizeof(u.id), "%s", user_id);
    snprintf(u.email, sizeof(u.email), "bench@example.com");
    snprintf(up.id, sizeof(up.id), "%s", upload_id);
    snprintf(up.user_id, sizeof(up.user_id), "%s", user_id);
    snprintf(up.source, sizeof(up.source), "apple_health_export");
    up.status = STORE_UPLOAD_RECEIVED;
    if (store_tx_begin(st, STORE_TX_WRITE, &tx) != 0 || store_user_insert(tx, &u) != 0 ||
        store_upload_insert(tx, &up) != 0 || store_tx_commit(tx) != 0)
        die("seed", "user/upload");
    return st;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* Run one import in a child; fill r and the child's peak RSS in MB. */
static void run_child(const char *xml, const char *db, struct result *r, double *rss_mb)
{
    int fds[2];
    if (pipe(fds) != 0)
        die("pipe", NULL);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", NULL);
    if (pid == 0) {
        close(fds[0]);
        struct result res;
        struct ctx c = {.st = db != NULL ? open_store(db) : NULL};
        struct apple_export *p = NULL;
        struct apple_export_options o = {
            .user_id = user_id, .upload_id = upload_id, .batch_size = batch_size, .on_batch = on_batch, .ctx = &c};
        memset(&res, 0, sizeof(res));
        if (apple_export_new(&o, &p) != 0)
            die("parser", "out of memory");
        uint64_t t0 = time_mono_ns();
        double c0 = self_cpu();
        res.rc = apple_export_import_file(p, xml);
        res.secs = (double)(time_mono_ns() - t0) / 1e9;
        res.cpu = self_cpu() - c0;
        apple_export_stats_get(p, &res.st);
        snprintf(res.err, sizeof(res.err), "%s", apple_export_errmsg(p));
        FILE *ps = fopen("/proc/self/status", "r");
        char line[256];
        size_t at = 0;
        while (ps != NULL && fgets(line, sizeof(line), ps) != NULL)
            if (strncmp(line, "VmHWM", 5) == 0 || strncmp(line, "RssAnon", 7) == 0 ||
                strncmp(line, "RssFile", 7) == 0 || strncmp(line, "RssShmem", 8) == 0) {
                line[strcspn(line, "\n")] = '\0';
                int w = snprintf(res.mem + at, sizeof(res.mem) - at, "%s; ", line);
                if (w > 0 && (size_t)w < sizeof(res.mem) - at)
                    at += (size_t)w;
            }
        if (ps != NULL)
            fclose(ps);
        apple_export_free(p);
        store_close(c.st);
        if (write(fds[1], &res, sizeof(res)) != (ssize_t)sizeof(res))
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    ssize_t got = read(fds[0], r, sizeof(*r));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof(*r) || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("child", "failed");
    /* The largest RSS of any waited-for child: this one (run_child is
     * called smallest-footprint first). ru_maxrss is in KiB on Linux. */
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    *rss_mb = (double)ru.ru_maxrss / 1024.0;
}

static void report(const char *name, const struct result *r, double rss_mb, int targets)
{
    double mb = (double)r->st.bytes_parsed / 1e6;
    double mbs = mb / r->secs;
    printf("%-24s %7.1f MB  wall %6.2f s = %6.1f MB/s (%7.0f records/s)  cpu %6.2f s = %6.1f "
           "MB/cpu-s  peak RSS %5.1f MB\n",
           name, mb, r->secs, mbs, (double)r->st.records / r->secs, r->cpu, r->cpu > 0 ? mb / r->cpu : 0.0, rss_mb);
    if (r->rc != 0)
        printf("  FAILED: %s\n", r->err);
    printf("  memory at the end: %s\n", r->mem);
    printf("  records %" PRId64 ", samples %" PRId64 ", stored %" PRId64 ", unknown %" PRId64 ", rejected %" PRId64
           ", batches %" PRId64 "\n",
           r->st.records, r->st.samples, r->st.stored, r->st.unknown, r->st.rejected, r->st.batches);
    if (targets)
        printf("  target >= %.0f MB/s: wall %s, cpu %s; peak RSS <= %.0f MB: %s\n", TARGET_MBS,
               mbs >= TARGET_MBS ? "MET" : "MISSED", r->cpu > 0 && mb / r->cpu >= TARGET_MBS ? "MET" : "MISSED",
               TARGET_RSS_MB, rss_mb <= TARGET_RSS_MB ? "MET" : "MISSED");
}

int main(void)
{
    log_level_set(LOG_WARNING);
    const char *env = getenv("IMPORT_BENCH_MB");
    long mbytes = env != NULL ? strtol(env, NULL, 10) : 512;
    if (mbytes < 1)
        mbytes = 512;
    env = getenv("IMPORT_BENCH_SYNC");
    sync_normal = env != NULL && strcmp(env, "normal") == 0;
    env = getenv("IMPORT_BENCH_BATCH");
    batch_size = env != NULL ? (size_t)strtoul(env, NULL, 10) : 0;
    char xml[512], db[512];
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    snprintf(xml, sizeof(xml), "build/tmp/import_bench_%d.xml", (int)getpid());
    snprintf(db, sizeof(db), "build/tmp/import_bench_%d.db", (int)getpid());
    char load[128] = "?";
    FILE *la = fopen("/proc/loadavg", "r");
    if (la != NULL) {
        if (fgets(load, sizeof(load), la) != NULL)
            load[strcspn(load, "\n")] = '\0';
        fclose(la);
    }
    printf("machine: %ld CPUs, load average %s; SQLite synchronous=%s, batch %zu\n", sysconf(_SC_NPROCESSORS_ONLN),
           load, sync_normal ? "NORMAL" : "FULL", batch_size ? batch_size : (size_t)APPLE_EXPORT_BATCH_DEFAULT);
    uint64_t t0 = time_mono_ns();
    long n = generate(xml, (int64_t)mbytes * 1000 * 1000);
    struct stat sb;
    stat(xml, &sb);
    printf("generated %s: %.1f MB, %ld top-level elements, in %.1f s\n", xml, (double)sb.st_size / 1e6, n,
           (double)(time_mono_ns() - t0) / 1e9);

    struct result r;
    double rss = 0;
    int ok = 1;
    run_child(xml, NULL, &r, &rss);
    report("parse + map (no store)", &r, rss, 0);
    ok &= r.rc == 0;
    run_child(xml, db, &r, &rss);
    report("parse + map + store", &r, rss, 1);
    ok &= r.rc == 0;
    if (getenv("IMPORT_BENCH_KEEP") == NULL) {
        char side[600];
        unlink(xml);
        unlink(db);
        snprintf(side, sizeof(side), "%s-wal", db);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", db);
        unlink(side);
    }
    /* Like the other benchmarks, a missed target is reported, not fatal. */
    return ok ? 0 : 1;
}
