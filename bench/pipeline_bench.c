/*
 * pipeline_bench.c — the analysis and insights pipeline against the targets
 * of issue 8.
 *
 *  1. Upload-to-insight latency: a week of minute data (10,080 step and
 *     10,080 heart-rate samples) is committed with its analysis job the way
 *     the ingest session does; the clock runs from that commit until the
 *     upload is `completed` (analysis row, insight row). SQLite with
 *     synchronous=FULL, one worker thread, the built-in generator, PAT-S
 *     loaded (generated weights: speed does not depend on the values).
 *     Target: p50 <= 200 ms, p99 <= 1 s.
 *  2. Sustained throughput: uploads queued first, then 2 worker threads
 *     drain them; analyses (each followed by its insight) completed per
 *     second. PostgreSQL (CLARITY_BENCH_PG_URL, or re-run under
 *     scripts/pg-test-server), PAT-S loaded. Target >= 50/s. Between the
 *     load and the drain PostgreSQL is vacuumed and checkpointed (see
 *     pg_settle; PIPELINE_BENCH_PG_FRESH=1 skips it). The run waits
 *     on the pool's job counters, not by reading the database. Where the
 *     server runs on this machine its CPU time is measured too (the
 *     postmaster and its children): the workers, the server and this
 *     program share the same cores, so the wall figure depends on how many
 *     there are and what else runs; CPU per analysis does not.
 *
 * Run from the repository root with no arguments. Figures go to stdout.
 *
 * Bounded time: almost all of a run is preparing uploads (a week of minute
 * data through the real ingest insert, ~1-2 s each on the loaded 2-core VM,
 * 160 of them), not the measured parts (seconds). PIPELINE_BENCH_BUDGET_S
 * (default 240) caps the whole run: each phase prepares uploads only until
 * its share of the budget is spent (latency by 30 %, the SQLite load by
 * 50 %, the PostgreSQL load by 85 %; at least LAT_MIN / TPUT_MIN of each),
 * every drain waits at most what is left, and the figures say how many
 * uploads they rest on.
 */
#include <dirent.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tests/unit/pat_ref.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "ml/pat.h"
#include "pipeline/jobs.h"
#include "pipeline/worker.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"

#define LAT_RUNS 40
#define LAT_MIN 10
#define TPUT_UPLOADS 60
#define TPUT_MIN 10
#define WEEK 10080

/* Minutes of data per upload: a week, or PIPELINE_BENCH_DAYS (1..35) days
 * to fill the analysis window with its four weeks of history. */
static size_t upload_minutes = WEEK;

static double secs_since(uint64_t t0) { return (double)(time_mono_ns() - t0) / 1e9; }

/* The run's budget (PIPELINE_BENCH_BUDGET_S) and its start. */
static double budget_s = 240;
static uint64_t bench_t0;

/* Seconds left until `share` (0..1) of the budget is spent. */
static double budget_left(double share) { return share * budget_s - secs_since(bench_t0); }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(double), cmp_double);
    size_t i = (size_t)ceil(p * (double)n) - 1;
    return v[i < n ? i : n - 1];
}

/* A user and an upload holding a week of minute steps and heart rate, with
 * its health-data-processing message, in one transaction. */
static int make_upload(struct store *st, unsigned seed, char upload_id[STORE_ID_LEN])
{
    struct store_user usr;
    struct store_upload u;
    struct store_tx *tx = NULL;
    memset(&usr, 0, sizeof(usr));
    memset(&u, 0, sizeof(u));
    uuid_v7(usr.id);
    snprintf(usr.email, sizeof(usr.email), "bench-%s@example.com", usr.id);
    snprintf(usr.password_hash, sizeof(usr.password_hash), "$argon2id$v=19$x");
    snprintf(usr.first_name, sizeof(usr.first_name), "Bench");
    snprintf(usr.last_name, sizeof(usr.last_name), "User");
    uuid_v7(u.id);
    memcpy(u.user_id, usr.id, STORE_ID_LEN);
    snprintf(u.source, sizeof(u.source), "healthkit");
    u.status = STORE_UPLOAD_RECEIVED;
    size_t n = 2 * upload_minutes;
    struct store_sample *s = calloc(n, sizeof(*s));
    if (s == NULL)
        return -1;
    const int64_t t0 = 1795000000000LL - 1795000000000LL % 86400000LL;
    for (size_t i = 0; i < n; i++) {
        size_t minute = i / 2;
        int steps = i % 2 == 0;
        int hod = (int)((minute / 60) % 24);
        int day = hod >= 7 && hod < 23;
        memcpy(s[i].user_id, usr.id, STORE_ID_LEN);
        memcpy(s[i].upload_id, u.id, STORE_ID_LEN);
        snprintf(s[i].metric_type, sizeof(s[i].metric_type), steps ? "steps" : "heart_rate");
        s[i].start_ms = t0 + (int64_t)minute * 60000;
        s[i].end_ms = steps ? s[i].start_ms + 60000 : s[i].start_ms;
        s[i].value =
            steps ? (day ? (double)((minute * 7 + seed) % 90) : 0.0) : (day ? 70.0 + (double)(minute % 13) : 55.0);
        s[i].value2 = NAN;
        s[i].quality_score = NAN;
        snprintf(s[i].unit, sizeof(s[i].unit), steps ? "count" : "count/min");
        snprintf(s[i].source, sizeof(s[i].source), "Apple Watch");
        snprintf(s[i].hk_uuid, sizeof(s[i].hk_uuid), "%.36s-%zu", u.id, i);
        s[i].payload = (char *)"{\"tz_offset_min\":-300}";
    }
    u.total_metrics = (int64_t)n;
    char payload[JOBS_PAYLOAD_MAX];
    struct jobs_message jm;
    memset(&jm, 0, sizeof(jm));
    memcpy(jm.upload_id, u.id, STORE_ID_LEN);
    memcpy(jm.user_id, usr.id, STORE_ID_LEN);
    int rc = jobs_encode(JOBS_ANALYSIS, &jm, payload);
    if (rc == 0)
        rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_user_insert(tx, &usr);
    if (rc == 0)
        rc = store_upload_insert(tx, &u);
    for (size_t off = 0; rc == 0 && off < n; off += 1000)
        rc = store_sample_insert_batch(tx, s + off, n - off < 1000 ? n - off : 1000, NULL);
    if (rc == 0)
        rc = store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, NULL, NULL);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    free(s);
    memcpy(upload_id, u.id, STORE_ID_LEN);
    return rc;
}

static int upload_done(struct store *st, const char *id, int *done)
{
    struct store_tx *tx = NULL;
    struct store_upload u;
    int rc = store_tx_begin(st, STORE_TX_READ, &tx);
    if (rc == 0)
        rc = store_upload_get(tx, id, NULL, &u);
    store_tx_rollback(tx);
    if (rc == 0) {
        *done = u.status == STORE_UPLOAD_COMPLETED ? 1 : u.status == STORE_UPLOAD_FAILED ? -1 : 0;
    }
    return rc;
}

static int open_store(const char *url, struct store **st)
{
    struct store_options o;
    char err[512];
    int applied;
    store_options_default(&o);
    o.pool_size = 8;
    if (store_open(url, &o, st, err, sizeof(err)) != 0 ||
        store_migrate_up(*st, NULL, &applied, err, sizeof(err)) != 0) {
        fprintf(stderr, "pipeline_bench: %s: %s\n", url, err);
        return -1;
    }
    return 0;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/*
 * CPU seconds used so far by a PostgreSQL server on this machine: its
 * postmaster and every child (backends, WAL writer, checkpointer…), found
 * through the data directory's postmaster.pid. -1 for SQLite, a remote
 * server, or a role that may not read data_directory.
 */
static double pg_server_cpu_s(const char *url)
{
    if (strncmp(url, "postgres", 8) != 0)
        return -1;
    PGconn *c = PQconnectdb(url);
    PGresult *r = NULL;
    char path[1200];
    double total = -1;
    if (PQstatus(c) != CONNECTION_OK)
        goto out;
    r = PQexec(c, "SELECT current_setting('data_directory')");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        goto out;
    snprintf(path, sizeof(path), "%s/postmaster.pid", PQgetvalue(r, 0, 0));
    FILE *f = fopen(path, "r");
    long pm = 0;
    if (f == NULL)
        goto out;
    if (fscanf(f, "%ld", &pm) != 1)
        pm = 0;
    fclose(f);
    if (pm <= 0)
        goto out;
    DIR *d = opendir("/proc");
    struct dirent *e;
    long tick = sysconf(_SC_CLK_TCK);
    if (d == NULL)
        goto out;
    total = 0;
    while ((e = readdir(d)) != NULL) {
        char buf[1024];
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *sf = fopen(path, "r");
        if (sf == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, sf);
        fclose(sf);
        buf[len] = '\0';
        const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
        long pid = atol(e->d_name), ppid = 0;
        unsigned long ut = 0, stt = 0;
        if (p == NULL || sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid, &ut, &stt) != 3)
            continue;
        if (pid == pm || ppid == pm)
            total += (double)(ut + stt) / (double)tick;
    }
    closedir(d);
out:
    PQclear(r);
    PQfinish(c);
    return total;
}

/*
 * After a bulk load, PostgreSQL owes the new rows upkeep: autovacuum starts
 * on health_samples about a minute later and the checkpointer flushes the
 * pages, both on the cores the workers use, at moments no run controls.
 * Paying it before the clock starts makes the drain measure the analyses;
 * it also leaves the rows' hint bits set, as for a week that arrived over
 * days (PIPELINE_BENCH_PG_FRESH=1 drains without it).
 */
static int pg_settle(const char *url)
{
    PGconn *c = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "VACUUM (ANALYZE) health_samples");
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        r = PQexec(c, "CHECKPOINT");
        ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        rc = ok ? 0 : -1;
    }
    if (rc != 0)
        fprintf(stderr, "pipeline_bench: cannot settle PostgreSQL: %s", PQerrorMessage(c));
    PQfinish(c);
    return rc;
}

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One worker thread, run on this thread: from the upload's commit, the
 * analysis job then the insight job (what an idle worker does when the
 * publish wakes it). Judged on thread CPU time (the machines these figures
 * come from are shared and loaded); wall time printed beside it. */
static int latency(const char *url, const struct pat_model *m, const struct pat_standardization *std)
{
    struct store *st = NULL;
    double cpu[LAT_RUNS], wall[LAT_RUNS], cpu_a[LAT_RUNS];
    int misses = 0;
    if (open_store(url, &st) != 0)
        return 1;
    struct worker_options o = {.store = st,
                               .threads = 1,
                               .lease_ms = 60000,
                               .poll_ms = 500,
                               .model = m,
                               .pat_std = std,
                               .model_version = "bench"};
    struct pat_workspace *ws = pat_workspace_new(m, 1);
    int runs = 0;
    double load_s = 0;
    for (int r = 0; r < LAT_RUNS; r++) {
        char id[STORE_ID_LEN];
        int done = 0, h1 = 0, h2 = 0;
        if (r >= LAT_MIN && budget_left(0.30) < 0)
            break; /* the budget's share for this phase is spent */
        uint64_t tl = time_mono_ns();
        int mu = ws == NULL ? -1 : make_upload(st, (unsigned)r, id);
        load_s += secs_since(tl);
        if (mu != 0) {
            fprintf(stderr, "pipeline_bench: upload failed\n");
            misses++;
            break;
        }
        uint64_t t0 = time_mono_ns();
        double c0 = thread_cpu_s();
        int ra = worker_once_run(&o, ws, WORKER_TOPIC_ANALYSIS, &h1);
        cpu_a[r] = (thread_cpu_s() - c0) * 1e3;
        if (ra != 0 || worker_once_run(&o, ws, WORKER_TOPIC_INSIGHTS, &h2) != 0 || !h1 || !h2 ||
            upload_done(st, id, &done) != 0 || done != 1) {
            fprintf(stderr, "pipeline_bench: upload %s did not complete\n", id);
            misses++;
            break;
        }
        cpu[r] = (thread_cpu_s() - c0) * 1e3;
        wall[r] = secs_since(t0) * 1e3;
        runs++;
    }
    pat_workspace_free(ws);
    store_close(st);
    if (misses)
        return misses;
    double p50 = pct(cpu, (size_t)runs, 0.5), p99 = pct(cpu, (size_t)runs, 0.99);
    printf("upload-to-insight latency, SQLite (synchronous=FULL), 1 worker, PAT-S, built-in generator,\n"
           "%d uploads of %zu days of minute data (%zu samples each; %d planned, %.1f s preparing them):\n"
           "  thread CPU p50 %.1f ms (target <= 200)  p99 %.1f ms (target <= 1000)\n"
           "  wall       p50 %.1f ms                  p99 %.1f ms\n"
           "  of which the analysis job (thread CPU) p50 %.1f ms\n",
           runs, upload_minutes / 1440, 2 * upload_minutes, LAT_RUNS, load_s, p50, p99, pct(wall, (size_t)runs, 0.5),
           pct(wall, (size_t)runs, 0.99), pct(cpu_a, (size_t)runs, 0.5));
    return (p50 > 200) + (p99 > 1000);
}

static int throughput(const char *url, const char *label, const struct pat_model *m,
                      const struct pat_standardization *std, double target, int settle, double load_share)
{
    struct store *st = NULL;
    struct worker_pool *pool = NULL;
    char err[256];
    static char ids[TPUT_UPLOADS][STORE_ID_LEN];
    if (open_store(url, &st) != 0)
        return 1;
    uint64_t tl = time_mono_ns();
    int nup = 0;
    for (int i = 0; i < TPUT_UPLOADS; i++, nup++) {
        if (i >= TPUT_MIN && budget_left(load_share) < 0)
            break; /* the budget's share for loading is spent */
        if (make_upload(st, (unsigned)i, ids[i]) != 0) {
            fprintf(stderr, "pipeline_bench: upload failed\n");
            store_close(st);
            return 1;
        }
    }
    double load_s = secs_since(tl);
    int settled = settle && pg_settle(url) == 0;
    double pg_cpu0 = pg_server_cpu_s(url);
    struct worker_options o = {.store = st,
                               .threads = 2,
                               .lease_ms = 60000,
                               .poll_ms = 100,
                               .model = m,
                               .pat_std = std,
                               .model_version = "bench"};
    uint64_t t0 = time_mono_ns();
    double cpu0 = process_cpu_s();
    if (worker_pool_start(&o, &pool, err, sizeof(err)) != 0) {
        fprintf(stderr, "pipeline_bench: %s\n", err);
        store_close(st);
        return 1;
    }
    /* Wait on the pool's job counters (in process, no database reads: a
     * status poll would compete with the workers for the same cores and,
     * on PostgreSQL, the same server), then check every upload once. */
    int64_t jobs_done = 0, jobs_failed = 0;
    double wait_s = budget_left(1.0) > 30 ? budget_left(1.0) : 30; /* a drain takes seconds */
    while (jobs_done + jobs_failed < 2 * nup && secs_since(t0) < wait_s) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
        worker_pool_counts(pool, &jobs_done, &jobs_failed);
    }
    double secs = secs_since(t0);
    double cpu = process_cpu_s() - cpu0;
    double srv = pg_cpu0 >= 0 ? pg_server_cpu_s(url) - pg_cpu0 : -1;
    worker_pool_join(pool, 10000);
    worker_pool_counts(pool, &jobs_done, &jobs_failed);
    worker_pool_free(pool);
    int next = 0;
    for (int i = 0; i < nup; i++) {
        int done = 0;
        if (upload_done(st, ids[i], &done) == 0 && done == 1)
            next++;
    }
    store_close(st);
    double rate = next / secs;
    int n = next ? next : 1;
    if (settled)
        printf("(PostgreSQL settled after the load: VACUUM (ANALYZE) health_samples, CHECKPOINT)\n");
    else if (strncmp(url, "postgres", 8) == 0)
        printf("(PostgreSQL drained right after the load: autovacuum and the checkpointer may run meanwhile)\n");
    printf("throughput, %s, 2 workers, PAT-S: %d of %d uploads (%zu days each, %.1f s to load) analysed and turned\n"
           "  into insights in %.2f s wall: %.1f analyses/s (target >= %.0f); worker CPU %.1f ms per analysis\n"
           "  (+ insight), i.e. %.1f analyses/s per 2 busy cores; jobs %lld done, %lld failed\n",
           label, next, nup, upload_minutes / 1440, load_s, secs, rate, target, 1e3 * cpu / n,
           next ? 2.0 * next / cpu : 0.0, (long long)jobs_done, (long long)jobs_failed);
    if (srv >= 0)
        printf("  database server CPU %.1f ms per analysis; workers + server %.1f ms, i.e. %.1f analyses/s\n"
               "  if 2 cores did nothing else\n",
               1e3 * srv / n, 1e3 * (cpu + srv) / n, next ? 2.0 * next / (cpu + srv) : 0.0);
    return next < nup || rate < target;
}

int main(int argc, char **argv)
{
    (void)argc;
    log_level_set(LOG_ERROR);
    bench_t0 = time_mono_ns();
    const char *b = getenv("PIPELINE_BENCH_BUDGET_S");
    if (b != NULL) {
        char *end;
        double v = strtod(b, &end);
        if (end != b && *end == '\0' && v >= 10 && v <= 3600)
            budget_s = v;
        else
            fprintf(stderr, "pipeline_bench: PIPELINE_BENCH_BUDGET_S '%s' is not 10..3600 s; using %.0f\n", b,
                    budget_s);
    }
    const char *dy = getenv("PIPELINE_BENCH_DAYS");
    if (dy != NULL) {
        char *end;
        long v = strtol(dy, &end, 10);
        if (end != dy && *end == '\0' && v >= 1 && v <= 35)
            upload_minutes = (size_t)v * 1440;
        else
            fprintf(stderr, "pipeline_bench: PIPELINE_BENCH_DAYS '%s' is not 1..35; using 7\n", dy);
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures as they come, also through a pipe */
    const char *pg_url = getenv("CLARITY_BENCH_PG_URL");
    if (pg_url == NULL)
        pg_url = getenv("CLARITY_TEST_PG_URL");
    int only_latency = getenv("PIPELINE_BENCH_LATENCY_ONLY") != NULL; /* for profiling */
    if (pg_url == NULL && !only_latency && access("scripts/pg-test-server", X_OK) == 0 &&
        getenv("PIPELINE_BENCH_CHILD") == NULL) {
        fflush(stdout);
        setenv("PIPELINE_BENCH_CHILD", "1", 1);
        execl("scripts/pg-test-server", "pg-test-server", "--", argv[0], (char *)NULL);
        perror("pipeline_bench: exec scripts/pg-test-server");
    }
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);

    /* PAT-S with generated weights (18-minute patches, 1 block, 6 heads). */
    struct ref_model rm;
    struct pat_model *m = NULL;
    char path[256], err[256];
    snprintf(path, sizeof(path), "build/tmp/pipeline_bench_%d.h5", (int)getpid());
    ref_model_init(&rm, 0, 18, 1, 6, 7);
    pat_blas_threads_set(1);
    if (ref_model_write(&rm, path, "", NULL) != 0 || pat_model_load(path, NULL, &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "pipeline_bench: cannot prepare PAT-S: %s\n", err);
        ref_model_free(&rm);
        return 1;
    }
    unlink(path);
    ref_model_free(&rm);
    struct pat_standardization std = {.mode = PAT_STD_GLOBAL, .mean = 10.0f, .std = 20.0f};

    printf("pipeline_bench: issue 8 targets\n");
    char db[256], url[300], p2[320];
    snprintf(db, sizeof(db), "build/tmp/pipeline_bench_%d.db", (int)getpid());
    snprintf(url, sizeof(url), "sqlite:%s", db);
    /* PIPELINE_BENCH_PG_ONLY: the PostgreSQL throughput run alone (profiling). */
    int pg_only = getenv("PIPELINE_BENCH_PG_ONLY") != NULL && pg_url != NULL;
    int misses = pg_only ? 0 : latency(url, m, &std);
    if (only_latency) {
        pat_model_free(m);
        unlink(db);
        return 0;
    }
    snprintf(db, sizeof(db), "build/tmp/pipeline_bench_t_%d.db", (int)getpid());
    snprintf(url, sizeof(url), "sqlite:%s", db);
    if (!pg_only)
        throughput(url, "SQLite (no target)", m, &std, 0, 0, 0.50);
    for (int k = 0; k < 2; k++) {
        snprintf(db, sizeof(db), "build/tmp/pipeline_bench%s_%d.db", k ? "_t" : "", (int)getpid());
        unlink(db);
        snprintf(p2, sizeof(p2), "%s-wal", db);
        unlink(p2);
        snprintf(p2, sizeof(p2), "%s-shm", db);
        unlink(p2);
    }
    if (pg_url != NULL)
        misses += throughput(pg_url, "PostgreSQL", m, &std, 50, getenv("PIPELINE_BENCH_PG_FRESH") == NULL, 0.85);
    else
        printf("throughput, PostgreSQL: skipped (no CLARITY_BENCH_PG_URL and no scripts/pg-test-server)\n");
    pat_model_free(m);
    printf("%d target%s missed\n", misses, misses == 1 ? "" : "s");
    return 0;
}
