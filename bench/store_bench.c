/*
 * store_bench.c — storage throughput and latency against the targets of
 * issue 3, on SQLite and (when one can be started) PostgreSQL 15.
 *
 *  1. Health-sample inserts through the repository (store_sample_insert_batch,
 *     1,000-row transactions, dedup index in place) beside the raw floor: the
 *     same rows inserted into the same table with plain prepared statements
 *     straight through sqlite3 / libpq. PostgreSQL gets two floors: one
 *     round trip per row (the "plain" floor) and the same multi-row statement
 *     the repository uses, sent raw (which isolates the repository's cost).
 *     Targets: SQLite >= 300,000 rows/s, PostgreSQL >= 150,000 rows/s, and
 *     >= 0.7 of the floor.
 *  2. Queue publish + lease + ack with one producer and 2 consumers.
 *     Targets: SQLite >= 5,000 msg/s, PostgreSQL >= 10,000 msg/s.
 *  3. Wake-up latency of an idle consumer (LISTEN/NOTIFY on PostgreSQL,
 *     in-process condition variable on SQLite). Target PostgreSQL p50 <= 5 ms.
 *
 * Run from the repository root with no arguments. PostgreSQL: uses
 * CLARITY_BENCH_PG_URL when set; otherwise re-runs itself under
 * scripts/pg-test-server (PostgreSQL's default, durable settings). SQLite runs
 * with synchronous=FULL, the production setting. The raw SQL here is a
 * measuring stick only; the product's SQL lives in src/store/.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/timeutil.h"
#include "store/migrate.h"
#include "store/queue.h"
#include "store/store.h"

#define ROWS 100000
#define ROUNDS 3 /* alternate repository and floor, keep the best of each */
#define TX_ROWS 1000
#define QUEUE_MSGS 20000
#define WAKE_SAMPLES 200

static const char user_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
static const char upload_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

static double secs_since(uint64_t t0) { return (double)(time_mono_ns() - t0) / 1e9; }

/* CPU seconds used by this process so far (all threads). */
static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* CPU seconds used so far by every PostgreSQL client backend of the local
 * server (from /proc; the server runs on this machine). 0 when unknown. */
static double pg_server_cpu(const char *url)
{
    if (url == NULL)
        return 0;
    PGconn *c = PQconnectdb(url);
    double total = 0;
    if (PQstatus(c) == CONNECTION_OK) {
        PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE backend_type ="
                                " 'client backend' AND pid <> pg_backend_pid()");
        for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
            char path[64], buf[1024];
            snprintf(path, sizeof(path), "/proc/%s/stat", PQgetvalue(r, i, 0));
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            fclose(f);
            buf[n] = '\0';
            /* Fields after the parenthesised command: state is field 3,
             * utime and stime are fields 14 and 15 (proc(5)). */
            char *p = strrchr(buf, ')');
            unsigned long ut = 0, stt = 0;
            if (p != NULL && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) == 2)
                total += (double)(ut + stt) / (double)sysconf(_SC_CLK_TCK);
        }
        PQclear(r);
    }
    PQfinish(c);
    return total;
}

/* Wall-clock rate and CPU-bound rate (items per CPU-second of client and,
 * for PostgreSQL, server) of one phase. */
struct rate {
    double wall, cpu;
};

static const char *cur_pg_url; /* set while measuring PostgreSQL */

struct meter {
    uint64_t t0;
    double c0, s0;
};

static void meter_start(struct meter *m)
{
    m->s0 = pg_server_cpu(cur_pg_url);
    m->c0 = self_cpu();
    m->t0 = time_mono_ns();
}

static struct rate meter_stop(const struct meter *m, double items)
{
    double wall = secs_since(m->t0);
    double cpu = self_cpu() - m->c0;
    cpu += pg_server_cpu(cur_pg_url) - m->s0;
    struct rate r = {items / wall, cpu > 0 ? items / cpu : 0};
    return r;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "store_bench: %s: %s\n", what, detail != NULL ? detail : "");
    exit(1);
}

static struct store *open_fresh(const char *url, int pool)
{
    struct store_options o;
    struct store *st = NULL;
    char err[512];
    store_options_default(&o);
    o.pool_size = pool;
    o.synchronous_full = 1;
    if (store_open(url, &o, &st, err, sizeof(err)) != 0)
        die("open", err);
    if (strncmp(url, "postgres", 8) == 0) {
        if (store_admin_exec(st, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;", err, sizeof(err)) != 0)
            die("reset", err);
        store_close(st);
        if (store_open(url, &o, &st, err, sizeof(err)) != 0)
            die("open", err);
    }
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
    if (store_tx_begin(st, STORE_TX_WRITE, &tx) != 0 || store_user_insert(tx, &u) != 0 ||
        store_upload_insert(tx, &up) != 0 || store_tx_commit(tx) != 0)
        die("seed", "user/upload");
    return st;
}

static void fill(struct store_sample *x, int i, int run)
{
    memset(x, 0, sizeof(*x));
    memcpy(x->user_id, user_id, sizeof(user_id));
    memcpy(x->upload_id, upload_id, sizeof(upload_id));
    snprintf(x->metric_type, sizeof(x->metric_type), "heart_rate");
    x->start_ms = 1700000000000LL + (int64_t)i * 5000;
    x->end_ms = x->start_ms + 5000;
    x->value = 60 + i % 40;
    x->value2 = NAN;
    snprintf(x->unit, sizeof(x->unit), "count/min");
    snprintf(x->source, sizeof(x->source), "Apple Watch");
    snprintf(x->hk_uuid, sizeof(x->hk_uuid), "%08x-0000-4000-8000-%012d", run, i);
    x->quality_score = 1.0;
    snprintf(x->validation_status, sizeof(x->validation_status), "valid");
}

/* Samples through the repository, 1,000-row transactions. */
static struct rate bench_repo(struct store *st, int run)
{
    struct store_sample *v = calloc(TX_ROWS, sizeof(*v));
    struct meter m;
    meter_start(&m);
    for (int b = 0; b < ROWS / TX_ROWS; b++) {
        for (int i = 0; i < TX_ROWS; i++)
            fill(&v[i], b * TX_ROWS + i, run);
        struct store_tx *tx = NULL;
        size_t ins = 0;
        if (store_tx_begin(st, STORE_TX_WRITE, &tx) != 0 || store_sample_insert_batch(tx, v, TX_ROWS, &ins) != 0 ||
            store_tx_commit(tx) != 0 || ins != TX_ROWS)
            die("repository insert", "failed");
    }
    struct rate r = meter_stop(&m, ROWS);
    free(v);
    return r;
}

static const char raw_insert[] = "INSERT INTO health_samples (user_id, upload_id, metric_type, start_ms, end_ms, value,"
                                 " value2, unit, source, device, hk_uuid, payload, quality_score, validation_status,"
                                 " processing_version, created_at) VALUES (%s)";

/* SQLite floor: the same rows, one cached prepared statement, sqlite3 API. */
static struct rate floor_sqlite(const char *path, int run)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char sql[1024];
    snprintf(sql, sizeof(sql), raw_insert, "?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16");
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        die("sqlite floor", sqlite3_errmsg(db));
    struct store_sample x;
    int64_t now = time_now_ms();
    struct meter m;
    meter_start(&m);
    for (int b = 0; b < ROWS / TX_ROWS; b++) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (int i = 0; i < TX_ROWS; i++) {
            fill(&x, b * TX_ROWS + i, run);
            sqlite3_bind_text(s, 1, x.user_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 2, x.upload_id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, x.metric_type, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 4, x.start_ms);
            sqlite3_bind_int64(s, 5, x.end_ms);
            sqlite3_bind_double(s, 6, x.value);
            sqlite3_bind_null(s, 7);
            sqlite3_bind_text(s, 8, x.unit, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 9, x.source, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 10, x.device, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 11, x.hk_uuid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_null(s, 12);
            sqlite3_bind_double(s, 13, x.quality_score);
            sqlite3_bind_text(s, 14, x.validation_status, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 15, 2);
            sqlite3_bind_int64(s, 16, now);
            if (sqlite3_step(s) != SQLITE_DONE)
                die("sqlite floor step", sqlite3_errmsg(db));
            sqlite3_reset(s);
        }
        if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            die("sqlite floor commit", sqlite3_errmsg(db));
    }
    struct rate r = meter_stop(&m, ROWS);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return r;
}

static void pg_ok(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die(what, PQerrorMessage(c));
    PQclear(r);
}

/* PostgreSQL floors: rows_per_stmt 1 is one round trip per row (plain
 * prepared inserts); 250 is the multi-row statement the repository uses. */
static struct rate floor_pg(const char *url, int rows_per_stmt, int run)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        die("pg floor connect", PQerrorMessage(c));
    pg_ok(c, PQexec(c, "TRUNCATE health_samples"), "truncate");
    size_t cap = 256 + (size_t)rows_per_stmt * 16 * 8;
    char *vals = malloc(cap), *sql = malloc(cap + 512);
    size_t o = 0;
    int p = 1;
    for (int r = 0; r < rows_per_stmt; r++) {
        if (r)
            o += (size_t)snprintf(vals + o, cap - o, "),(");
        for (int k = 0; k < 16; k++)
            o += (size_t)snprintf(vals + o, cap - o, "%s$%d", k ? "," : "", p++);
    }
    snprintf(sql, cap + 512, raw_insert, vals);
    pg_ok(c, PQprepare(c, "ins", sql, 0, NULL), "prepare");
    int np = rows_per_stmt * 16;
    const char **pv = calloc((size_t)np, sizeof(*pv));
    char(*num)[32] = calloc((size_t)np, 32);
    char(*uu)[64] = calloc((size_t)rows_per_stmt, 64);
    struct store_sample x;
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, time_now_ms());
    struct meter m;
    meter_start(&m);
    for (int b = 0; b < ROWS / TX_ROWS; b++) {
        pg_ok(c, PQexec(c, "BEGIN"), "begin");
        for (int i = 0; i < TX_ROWS; i += rows_per_stmt) {
            for (int r = 0; r < rows_per_stmt; r++) {
                fill(&x, b * TX_ROWS + i + r, run);
                const char **q = pv + r * 16;
                char(*n)[32] = num + r * 16;
                snprintf(n[0], 32, "%" PRId64, x.start_ms);
                snprintf(n[1], 32, "%" PRId64, x.end_ms);
                snprintf(n[2], 32, "%.17g", x.value);
                snprintf(n[3], 32, "%.17g", x.quality_score);
                q[0] = user_id;
                q[1] = upload_id;
                q[2] = "heart_rate";
                q[3] = n[0];
                q[4] = n[1];
                q[5] = n[2];
                q[6] = NULL;
                q[7] = "count/min";
                q[8] = "Apple Watch";
                q[9] = "";
                memcpy(uu[r], x.hk_uuid, sizeof(uu[r]));
                q[10] = uu[r];
                q[11] = NULL;
                q[12] = n[3];
                q[13] = "valid";
                q[14] = "2";
                q[15] = now;
            }
            pg_ok(c, PQexecPrepared(c, "ins", np, pv, NULL, NULL, 0), "insert");
        }
        pg_ok(c, PQexec(c, "COMMIT"), "commit");
    }
    struct rate rt = meter_stop(&m, ROWS);
    pg_ok(c, PQexec(c, "TRUNCATE health_samples"), "truncate");
    free(vals);
    free(sql);
    free(pv);
    free(num);
    free(uu);
    PQfinish(c);
    return rt;
}

/* ---- queue ------------------------------------------------------------------ */

struct qctx {
    struct store *st;
    volatile int published_all;
    int acked;
    pthread_mutex_t mu;
};

static void *producer(void *arg)
{
    struct qctx *q = arg;
    for (int b = 0; b < QUEUE_MSGS / 100; b++) {
        struct store_tx *tx = NULL;
        if (store_tx_begin(q->st, STORE_TX_WRITE, &tx) != 0)
            die("publish", "begin");
        const char *payloads[100];
        for (int i = 0; i < 100; i++)
            payloads[i] = "{\"upload_id\":\"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c\"}";
        if (store_queue_publish_batch(tx, STORE_TOPIC_HEALTH_DATA, payloads, 100, NULL) != 0)
            die("publish", store_tx_errmsg(tx));
        if (store_tx_commit(tx) != 0)
            die("publish", "commit");
    }
    q->published_all = 1;
    return NULL;
}

static void *consumer(void *arg)
{
    struct qctx *q = arg;
    struct store_msg m[64];
    for (;;) {
        size_t n = 0;
        int rc = store_queue_lease(q->st, STORE_TOPIC_HEALTH_DATA, 30000, m, 64, &n);
        if (rc == STORE_EBUSY)
            continue;
        if (rc != 0)
            die("lease", clarity_strerror(rc));
        if (n == 0) {
            pthread_mutex_lock(&q->mu);
            int done = q->published_all && q->acked >= QUEUE_MSGS;
            pthread_mutex_unlock(&q->mu);
            if (done)
                return NULL;
            usleep(200);
            continue;
        }
        struct store_tx *tx = NULL;
        if (store_tx_begin(q->st, STORE_TX_WRITE, &tx) != 0)
            die("ack", "begin");
        size_t acked = 0;
        if (store_queue_ack_batch(tx, m, n, &acked) != 0 || acked != n)
            die("ack", store_tx_errmsg(tx));
        for (size_t i = 0; i < n; i++)
            store_msg_clear(&m[i]);
        if (store_tx_commit(tx) != 0)
            die("ack", "commit");
        pthread_mutex_lock(&q->mu);
        q->acked += (int)n;
        pthread_mutex_unlock(&q->mu);
    }
}

static struct rate bench_queue(struct store *st)
{
    struct qctx q = {.st = st};
    pthread_mutex_init(&q.mu, NULL);
    pthread_t p, c[2];
    struct meter m;
    meter_start(&m);
    pthread_create(&p, NULL, producer, &q);
    pthread_create(&c[0], NULL, consumer, &q);
    pthread_create(&c[1], NULL, consumer, &q);
    pthread_join(p, NULL);
    pthread_join(c[0], NULL);
    pthread_join(c[1], NULL);
    struct rate r = meter_stop(&m, q.acked);
    pthread_mutex_destroy(&q.mu);
    return r;
}

struct wctx {
    struct store_listener *l;
    volatile uint64_t woke_ns;
    volatile int go, stop;
};

static void *waiter(void *arg)
{
    struct wctx *w = arg;
    while (!w->stop) {
        int r = store_listener_wait(w->l, 200);
        if (r == 1)
            w->woke_ns = time_mono_ns();
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Wake-up latency: publish and commit, measure until the idle listener
 * thread returns. Reported from the end of COMMIT (what a consumer waits on
 * once the producer's data is durable). */
static void bench_wake(struct store *st, double *p50, double *p99)
{
    struct store_listener *l = NULL;
    if (store_listener_open(st, &l) != 0)
        die("listener", "open");
    struct wctx w = {.l = l};
    pthread_t th;
    pthread_create(&th, NULL, waiter, &w);
    usleep(100000);
    double *lat = calloc(WAKE_SAMPLES, sizeof(double));
    for (int i = 0; i < WAKE_SAMPLES; i++) {
        w.woke_ns = 0;
        usleep(5000); /* let the listener go idle */
        struct store_tx *tx = NULL;
        if (store_tx_begin(st, STORE_TX_WRITE, &tx) != 0 ||
            store_queue_publish(tx, STORE_TOPIC_INSIGHTS, "{}", NULL, NULL) != 0)
            die("wake", "publish");
        if (store_tx_commit(tx) != 0)
            die("wake", "commit");
        uint64_t t_commit = time_mono_ns();
        uint64_t deadline = t_commit + 2000000000ull;
        while (w.woke_ns == 0 && time_mono_ns() < deadline)
            ;
        uint64_t woke = w.woke_ns;
        lat[i] = woke == 0 ? 2000.0 : woke > t_commit ? (double)(woke - t_commit) / 1e6 : 0.0;
    }
    w.stop = 1;
    pthread_join(th, NULL);
    store_listener_close(l);
    qsort(lat, WAKE_SAMPLES, sizeof(double), cmp_d);
    *p50 = lat[WAKE_SAMPLES / 2];
    *p99 = lat[(WAKE_SAMPLES * 99) / 100];
    free(lat);
}

static const char *verdict(int ok) { return ok ? "PASS" : "MISS"; }

static void best_of(struct rate *best, struct rate r)
{
    if (r.wall > best->wall)
        best->wall = r.wall;
    if (r.cpu > best->cpu)
        best->cpu = r.cpu;
}

static void remove_db(const char *path)
{
    char p[700];
    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
}

static void loadavg(char *out, size_t n)
{
    FILE *f = fopen("/proc/loadavg", "r");
    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, (int)n, f) == NULL)
            out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

static int run_backend(const char *url, int pg)
{
    int misses = 0;
    const char *name = pg ? "postgres" : "sqlite";
    double target_rows = pg ? 150000 : 300000, target_q = pg ? 10000 : 5000;
    char la[128];
    loadavg(la, sizeof(la));
    printf("\n== %s (%s) ==\n", name,
           pg ? "PostgreSQL 15, local, default durable settings" : "WAL, synchronous=FULL, foreign keys on");
    printf("machine: %ld CPUs, load average %s at start; wall = rows per second of elapsed "
           "time, cpu = rows per CPU-second of %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), la, pg ? "client + server backends" : "this process");
    cur_pg_url = pg ? url : NULL;

    struct rate repo = {0, 0}, floor1 = {0, 0}, floor2 = {0, 0};
    struct store *st = NULL;
    char err[256];
    if (pg)
        st = open_fresh(url, 8); /* the schema the floors insert into */
    for (int round = 0; round < ROUNDS; round++) {
        struct rate r;
        if (pg) {
            if (round == 0)
                floor1 = floor_pg(url, 1, 100 + round); /* slow: once */
            r = floor_pg(url, 250, 200 + round);
            best_of(&floor2, r);
            if (store_admin_exec(st, "TRUNCATE health_samples", err, sizeof(err)) != 0)
                die("truncate", err);
            best_of(&repo, bench_repo(st, 300 + round));
        } else {
            char rpath[600], rurl[700], fpath[600], furl[700];
            snprintf(rpath, sizeof(rpath), "%s.repo%d", url + 7, round);
            snprintf(rurl, sizeof(rurl), "sqlite:%s", rpath);
            snprintf(fpath, sizeof(fpath), "%s.floor%d", url + 7, round);
            snprintf(furl, sizeof(furl), "sqlite:%s", fpath);
            remove_db(rpath);
            remove_db(fpath);
            struct store *rs = open_fresh(rurl, 2);
            best_of(&repo, bench_repo(rs, 300 + round));
            store_close(rs);
            store_close(open_fresh(furl, 1));
            best_of(&floor1, floor_sqlite(fpath, 100 + round));
            remove_db(rpath);
            remove_db(fpath);
        }
    }
    if (st == NULL)
        st = open_fresh(url, 8);
    struct rate best = floor2.wall > floor1.wall ? floor2 : floor1;
    int ok_rows = repo.wall >= target_rows, ok_ratio = repo.wall >= 0.7 * best.wall;
    misses += !ok_rows + !ok_ratio;
    printf("samples, %d rows in %d-row transactions, dedup index on (user_id, hk_uuid), "
           "best of %d alternating runs:\n",
           ROWS, TX_ROWS, ROUNDS);
    printf("  repository (store_sample_insert_batch)  wall %8.0f  cpu %8.0f rows/s  target >= %.0f  %s\n", repo.wall,
           repo.cpu, target_rows, verdict(ok_rows));
    if (pg) {
        printf("  floor: raw prepared insert, 1 row/trip   wall %8.0f  cpu %8.0f rows/s\n", floor1.wall, floor1.cpu);
        printf("  floor: raw prepared insert, 250 rows/stmt wall %7.0f  cpu %8.0f rows/s\n", floor2.wall, floor2.cpu);
    } else {
        printf("  floor: raw sqlite3 prepared insert      wall %8.0f  cpu %8.0f rows/s\n", floor1.wall, floor1.cpu);
    }
    printf("  repository / best floor = %.2f (wall), %.2f (cpu)  target >= 0.70  %s\n", repo.wall / best.wall,
           best.cpu > 0 ? repo.cpu / best.cpu : 0, verdict(ok_ratio));

    struct rate q = bench_queue(st);
    int ok_q = q.wall >= target_q;
    misses += !ok_q;
    printf("queue, %d messages, 1 producer (batches of 100) + 2 consumers (lease 64, ack in one tx):\n", QUEUE_MSGS);
    printf("  publish+lease+ack  wall %8.0f  cpu %8.0f msg/s  target >= %.0f  %s\n", q.wall, q.cpu, target_q,
           verdict(ok_q));

    double p50 = 0, p99 = 0;
    bench_wake(st, &p50, &p99);
    if (pg) {
        int ok_w = p50 <= 5.0;
        misses += !ok_w;
        printf("wake-up (LISTEN/NOTIFY), %d samples: p50 %.3f ms  p99 %.3f ms  target p50 <= 5 ms  %s\n", WAKE_SAMPLES,
               p50, p99, verdict(ok_w));
    } else {
        printf("wake-up (in-process), %d samples: p50 %.3f ms  p99 %.3f ms  (no target; other "
               "processes poll)\n",
               WAKE_SAMPLES, p50, p99);
    }
    loadavg(la, sizeof(la));
    printf("load average at end: %s\n", la);
    store_close(st);
    cur_pg_url = NULL;
    return misses;
}

int main(int argc, char **argv)
{
    (void)argc;
    log_level_set(LOG_ERROR);
    const char *pg_url = getenv("CLARITY_BENCH_PG_URL");
    if (pg_url == NULL)
        pg_url = getenv("CLARITY_TEST_PG_URL");
    /* Without a server, re-run under scripts/pg-test-server (which sets
     * CLARITY_TEST_PG_URL), unless that already failed. */
    if (pg_url == NULL && getenv("STORE_BENCH_NO_PG") == NULL && access("scripts/pg-test-server", X_OK) == 0 &&
        getenv("STORE_BENCH_CHILD") == NULL) {
        fflush(stdout);
        setenv("STORE_BENCH_CHILD", "1", 1);
        execl("scripts/pg-test-server", "pg-test-server", "--", argv[0], (char *)NULL);
        perror("store_bench: exec scripts/pg-test-server");
    }
    mkdir("build", 0755);
    mkdir("build/tmp", 0755);
    char path[256];
    snprintf(path, sizeof(path), "build/tmp/store_bench_%d.db", (int)getpid());
    char url[300];
    snprintf(url, sizeof(url), "sqlite:%s", path);
    printf("store_bench: storage targets of issue 3 (figures in rows or messages per second)\n");
    int misses = run_backend(url, 0);
    unlink(path);
    char p2[320];
    snprintf(p2, sizeof(p2), "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof(p2), "%s-shm", path);
    unlink(p2);
    if (pg_url != NULL)
        misses += run_backend(pg_url, 1);
    else
        printf("\n== postgres: skipped (no CLARITY_BENCH_PG_URL and scripts/pg-test-server "
               "unavailable) ==\n");
    printf("\n%d target%s missed\n", misses, misses == 1 ? "" : "s");
    return 0;
}
