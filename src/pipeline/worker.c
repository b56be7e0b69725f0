/*
 * worker.c — queue consumers for the analysis and insight jobs (contract in
 * worker.h).
 */
#include "pipeline/worker.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/json_load.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "pipeline/compute.h"
#include "pipeline/insight.h"
#include "pipeline/insight_builtin.h"
#include "pipeline/jobs.h"
#include "pipeline/llm.h"
#include "store/queue.h"
#include "store/recovery.h"
#include "store/store.h"

struct worker_thread {
    struct worker_pool *pool;
    pthread_t tid;
    int started;
    atomic_int finished;
};

struct worker_pool {
    struct worker_options o;
    char fail_source[128]; /* the pool's copy of o.fault_fail_source */
    atomic_int stop;
    atomic_llong done, failed;
    struct worker_thread t[WORKER_MAX_THREADS];
    int n;
    int joined;
};

/* ---- configuration helpers ---------------------------------------------- */

int worker_fault_parse(const char *spec, char *fail_source, size_t fail_len, int64_t *delay_ms, char *err,
                       size_t errlen)
{
    /* One parser for serve, `clarity worker` and `config check` (core/config.h). */
    long long d = 0;
    int rc = config_test_fault_parse(spec, fail_source, fail_len, &d, err, errlen);
    *delay_ms = rc == 0 ? d : 0;
    return rc;
}

int worker_topics_parse(const char *list, unsigned *out)
{
    char copy[256];
    unsigned bits = 0;
    if (list == NULL || strlen(list) >= sizeof(copy))
        return -1;
    snprintf(copy, sizeof(copy), "%s", list);
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, STORE_TOPIC_HEALTH_DATA) == 0 || strcmp(t, "analysis") == 0)
            bits |= WORKER_TOPIC_ANALYSIS;
        else if (strcmp(t, STORE_TOPIC_INSIGHTS) == 0 || strcmp(t, "insights") == 0)
            bits |= WORKER_TOPIC_INSIGHTS;
        else if (strcmp(t, "all") == 0)
            bits |= WORKER_TOPIC_ANALYSIS | WORKER_TOPIC_INSIGHTS;
        else
            return -1;
    }
    if (bits == 0)
        return -1;
    *out = bits;
    return 0;
}

/* ---- jobs ----------------------------------------------------------------- */

/* Parse m as a job of kind; a message that is no job is reported in err. */
static int payload_parse(const struct store_msg *m, enum jobs_kind kind, struct jobs_message *ids, char *err,
                         size_t errlen)
{
    int rc = jobs_parse(kind, m->payload, ids);
    if (rc != 0)
        snprintf(err, errlen, "message %lld on %s is not a job payload", (long long)m->id, m->topic);
    return rc;
}

/* Sleep ms in short steps; WORKER_ERELEASED when the pool is stopping. */
static int pause_ms(int64_t ms, const atomic_int *stop)
{
    while (ms > 0) {
        if (stop != NULL && atomic_load(stop))
            return WORKER_ERELEASED;
        int64_t step = ms > 50 ? 50 : ms;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return 0;
}

/* Ack in a transaction of its own; a lost lease is no error here (whoever
 * holds it now will find the job done). */
static int ack_alone(struct store *st, const struct store_msg *m)
{
    int rc = store_queue_ack_now(st, m);
    return rc == STORE_ECONFLICT ? 0 : rc;
}

/* Acknowledge an insight job whose upload needs only its end: completed,
 * in the transaction of the ack. A completed upload is left so; a failed
 * one is not revived. */
static int ack_completed(struct store *st, const struct store_msg *m, const char *upload_id, int64_t processed)
{
    struct store_tx *tx = NULL;
    struct store_upload up;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0) {
        rc = store_upload_get(tx, upload_id, NULL, &up);
        if (rc == 0 && up.status != STORE_UPLOAD_COMPLETED && up.status != STORE_UPLOAD_FAILED)
            rc = store_upload_status_set(tx, upload_id, STORE_UPLOAD_COMPLETED, 1.0, processed, NULL);
        if (rc == STORE_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0)
        rc = store_queue_ack(tx, m);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    return rc == STORE_ECONFLICT ? 0 : rc;
}

static int analysis_job(const struct worker_options *o, struct pat_workspace *ws, const struct store_msg *m,
                        const atomic_int *stop, char *err, size_t errlen)
{
    struct jobs_message ids;
    struct store_tx *tx = NULL;
    struct store_upload up;
    struct store_analysis existing;
    struct compute_window w;
    json_t *result = NULL, *coverage = NULL;
    char *res_text = NULL, *cov_text = NULL;
    char pub[JOBS_PAYLOAD_MAX];
    int rc;
    memset(&w, 0, sizeof(w));
    if (payload_parse(m, JOBS_ANALYSIS, &ids, err, errlen) != 0)
        return JOBS_EPAYLOAD;
    compute_id_derive("analysis", ids.upload_id, ids.analysis_id);

    rc = store_tx_begin(o->store, STORE_TX_READ, &tx);
    if (rc != 0)
        goto store_fail;
    rc = store_upload_get(tx, ids.upload_id, NULL, &up);
    if (rc == STORE_ENOTFOUND) {
        /* The upload was deleted meanwhile: nothing left to analyse. */
        store_tx_rollback(tx);
        return ack_alone(o->store, m);
    }
    if (rc != 0)
        goto store_fail;
    rc = store_analysis_get(tx, ids.analysis_id, NULL, &existing);
    if (rc == 0) {
        /* Done by an earlier delivery whose ack was lost with its lease. */
        store_analysis_clear(&existing);
        store_tx_rollback(tx);
        return ack_alone(o->store, m);
    }
    if (rc != STORE_ENOTFOUND)
        goto store_fail;
    store_tx_rollback(tx);
    tx = NULL;

    /* With the status, put any of the user's uploads stored before
     * migration 006 into sample_days, so that the window reads days. The
     * heal first: it takes the user's sample lock, which every writer of
     * samples takes before any row lock (store/days.c). */
    rc = store_tx_begin(o->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_sample_days_heal(tx, ids.user_id, NULL);
    if (rc == 0)
        rc = store_upload_status_set(tx, ids.upload_id, STORE_UPLOAD_PROCESSING, 0.1, 0, NULL);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    if (rc != 0)
        goto store_fail;

    if (o->fault_delay_ms > 0 && (rc = pause_ms(o->fault_delay_ms, stop)) != 0) {
        snprintf(err, errlen, "released at shutdown");
        return rc;
    }

    rc = store_tx_begin(o->store, STORE_TX_READ, &tx);
    if (rc != 0)
        goto store_fail;
    rc = compute_window_load(tx, ids.user_id, ids.upload_id, time_now_ms(), o->fault_fail_source, &w, err, errlen);
    store_tx_rollback(tx);
    tx = NULL;
    if (rc == COMPUTE_EREJECTED || rc == COMPUTE_ENOMEM || rc == COMPUTE_EINTERNAL)
        goto fail;
    if (rc != 0)
        goto store_fail;

    struct compute_pat pat = {o->model, ws, o->pat_std, o->model_version};
    rc = compute_window_analyse(&w, &pat, &result, &coverage, err, errlen);
    if (rc != 0)
        goto fail;
    res_text = json_dumps(result, JSON_COMPACT | JSON_REAL_PRECISION(10));
    cov_text = json_dumps(coverage, JSON_COMPACT);
    if (jobs_encode(JOBS_INSIGHT, &ids, pub) != 0 || res_text == NULL || cov_text == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = COMPUTE_ENOMEM;
        goto fail;
    }

    struct store_analysis a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", ids.analysis_id);
    snprintf(a.user_id, sizeof(a.user_id), "%s", ids.user_id);
    snprintf(a.upload_id, sizeof(a.upload_id), "%s", ids.upload_id);
    snprintf(a.kind, sizeof(a.kind), "health_window");
    snprintf(a.model_version, sizeof(a.model_version), "%s",
             o->model != NULL && o->model_version != NULL ? o->model_version : "none");
    a.version = COMPUTE_RESULT_VERSION;
    a.coverage = cov_text;
    a.result = res_text;
    a.created_at_ms = time_now_ms();

    rc = store_tx_begin(o->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_analysis_insert(tx, &a);
    if (rc == 0)
        rc = store_upload_status_set(tx, ids.upload_id, STORE_UPLOAD_PROCESSING, 0.6, up.total_metrics, NULL);
    struct store_publish_opts po = {.fair_key = ids.user_id};
    if (rc == 0)
        rc = store_queue_publish(tx, jobs_topic(JOBS_INSIGHT), pub, &po, NULL);
    if (rc == 0)
        rc = store_queue_ack(tx, m);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    if (rc == STORE_ECONFLICT) {
        /* Our lease expired and another worker took the job (or already
         * stored the same analysis id): nothing of ours was committed. */
        store_tx_rollback(tx);
        tx = NULL;
        log_info("analysis job superseded", LOG_STR, "upload_id", ids.upload_id, LOG_INT, "message", (long long)m->id,
                 LOG_END);
        rc = 0;
        goto done;
    }
    if (rc != 0)
        goto store_fail;
    log_info("analysis stored", LOG_STR, "analysis_id", ids.analysis_id, LOG_STR, "upload_id", ids.upload_id, LOG_INT,
             "attempt", (long long)m->attempts, LOG_END);
    goto done;
store_fail:
    snprintf(err, errlen, "storage: %s", clarity_strerror(rc));
fail:
    store_tx_rollback(tx);
done:
    compute_window_free(&w);
    json_decref(result);
    json_decref(coverage);
    free(res_text);
    free(cov_text);
    return rc;
}

static int insight_job(const struct worker_options *o, const struct store_msg *m, char *err, size_t errlen)
{
    struct jobs_message ids;
    struct store_tx *tx = NULL;
    struct store_analysis a;
    struct store_insight existing;
    struct insight_draft d;
    char insight_id[STORE_ID_LEN];
    int rc, have_analysis = 0, replace = 0;
    memset(&d, 0, sizeof(d));
    if (payload_parse(m, JOBS_INSIGHT, &ids, err, errlen) != 0)
        return JOBS_EPAYLOAD;

    rc = store_tx_begin(o->store, STORE_TX_READ, &tx);
    if (rc != 0)
        goto store_fail;
    rc = store_analysis_get(tx, ids.analysis_id, NULL, &a);
    if (rc == STORE_ENOTFOUND) {
        store_tx_rollback(tx);
        return ack_alone(o->store, m); /* deleted with its upload */
    }
    if (rc != 0)
        goto store_fail;
    have_analysis = 1;
    /* One insight per user per analysis period: a re-sync of the same week
     * updates it (insight_period_id). The same analysis again (redelivery)
     * or an older one arriving late changes nothing. */
    json_t *result = json_parse_str(a.result ? a.result : "", 0, NULL);
    if (insight_period_id(result, ids.user_id, insight_id) != 0)
        compute_id_derive("insight", ids.analysis_id, insight_id);
    json_decref(result);
    rc = store_insight_get(tx, insight_id, NULL, &existing);
    if (rc == 0) {
        int stale = strcmp(existing.analysis_id, ids.analysis_id) == 0;
        struct store_analysis prev;
        if (!stale && existing.analysis_id[0] && store_analysis_get(tx, existing.analysis_id, NULL, &prev) == 0) {
            /* newer analysis wins; same millisecond: the later upload (v7 ids) */
            stale = prev.created_at_ms > a.created_at_ms ||
                    (prev.created_at_ms == a.created_at_ms && strcmp(prev.upload_id, a.upload_id) > 0);
            store_analysis_clear(&prev);
        }
        store_insight_clear(&existing);
        if (stale) {
            /* The period's insight is this analysis's or a newer one's:
             * nothing to write but the upload's end. Its analysis is stored,
             * so the upload is complete (left "processing" at 0.6 before, when
             * a retried older job came after a newer one: #16). */
            struct store_upload up;
            int64_t processed = store_upload_get(tx, ids.upload_id, NULL, &up) == 0 ? up.total_metrics : 0;
            store_tx_rollback(tx);
            tx = NULL;
            rc = ack_completed(o->store, m, ids.upload_id, processed);
            goto done;
        }
        replace = 1;
    } else if (rc != STORE_ENOTFOUND) {
        goto store_fail;
    }
    struct store_upload up;
    int64_t processed = 0;
    if (store_upload_get(tx, ids.upload_id, NULL, &up) == 0)
        processed = up.total_metrics;
    store_tx_rollback(tx);
    tx = NULL;

    /* Rendered outside any transaction: an LLM may take seconds. */
    rc = insight_render_analysis(o->llm, &a, INSIGHT_FOCUS_COMPREHENSIVE, NULL, insight_id, &d);
    if (rc != 0) {
        snprintf(err, errlen,
                 rc == COMPUTE_EINTERNAL ? "stored analysis %s is not a JSON object"
                                         : "out of memory generating the insight (analysis %s)",
                 ids.analysis_id);
        goto fail;
    }
    rc = store_tx_begin(o->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = replace ? insight_replace(tx, &d, ids.upload_id, processed)
                     : insight_create(tx, &d, ids.upload_id, processed);
    if (rc == 0)
        rc = store_queue_ack(tx, m);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    if (rc == STORE_ECONFLICT) {
        store_tx_rollback(tx);
        tx = NULL;
        rc = 0;
        goto done;
    }
    if (rc != 0)
        goto store_fail;
    log_info("insight stored", LOG_STR, "insight_id", insight_id, LOG_STR, "upload_id", ids.upload_id, LOG_END);
    /* Whoever must hear of it (the chat) subscribes to the store's
     * "insight created" events (store/queue.h): no callback from here. */
    goto done;
store_fail:
    snprintf(err, errlen, "storage: %s", clarity_strerror(rc));
fail:
    store_tx_rollback(tx);
done:
    if (have_analysis)
        store_analysis_clear(&a);
    insight_draft_clear(&d);
    return rc;
}

/* A failure of the server's that passes (#16): the store unavailable or
 * busy, memory short. The job is given back without spending an attempt:
 * an outage must not dead-letter good work and fail its upload. */
static int transient(int rc)
{
    return rc == STORE_EUNAVAILABLE || rc == STORE_EBUSY || rc == STORE_ENOMEM || rc == COMPUTE_ENOMEM;
}

/* A failed job: nack; on its last attempt the queue dead-letters it and the
 * upload is marked failed in the same transaction. A transient failure
 * (above) releases it instead. */
static void job_failed(const struct worker_options *o, const struct store_msg *m, const char *what, const char *err,
                       int jrc)
{
    struct store_tx *tx = NULL;
    struct jobs_message ids;
    char reason[400], dummy[160];
    int release = transient(jrc);
    int last = !release && m->attempts >= m->max_attempts;
    snprintf(reason, sizeof(reason), "%s failed: %.340s", what, err[0] ? err : "unknown error");
    int rc = store_tx_begin(o->store, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = release ? store_queue_release(tx, m, reason) : store_queue_nack(tx, m, reason);
    if (rc == 0 && last && payload_parse(m, JOBS_ANALYSIS, &ids, dummy, sizeof(dummy)) == 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s (after %d attempts)", reason, m->attempts);
        rc = store_upload_status_set(tx, ids.upload_id, STORE_UPLOAD_FAILED, 0.0, 0, msg);
        if (rc == STORE_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    if (last)
        log_error("job dead-lettered", LOG_STR, "topic", m->topic, LOG_INT, "message", (long long)m->id, LOG_INT,
                  "attempts", (long long)m->attempts, LOG_STR, "error", reason, LOG_END);
    else
        log_warning("job failed; will retry", LOG_STR, "topic", m->topic, LOG_INT, "message", (long long)m->id, LOG_INT,
                    "attempt", (long long)m->attempts, LOG_STR, "error", reason, LOG_END);
    if (rc != 0 && rc != STORE_ECONFLICT)
        log_error("cannot record a job failure", LOG_STR, "error", clarity_strerror(rc), LOG_END);
}

static int run_once(const struct worker_options *o, struct pat_workspace *ws, unsigned topic, const atomic_int *stop,
                    int *handled, int *failed)
{
    struct store_msg m;
    size_t n = 0;
    char err[400] = "";
    const char *name = topic == WORKER_TOPIC_ANALYSIS ? STORE_TOPIC_HEALTH_DATA : STORE_TOPIC_INSIGHTS;
    *handled = 0;
    *failed = 0;
    memset(&m, 0, sizeof(m));
    int rc = store_queue_lease(o->store, name, o->lease_ms > 0 ? o->lease_ms : 60000, &m, 1, &n);
    if (rc != 0)
        return rc;
    if (n == 0)
        return 0;
    *handled = 1;
    int jrc = topic == WORKER_TOPIC_ANALYSIS ? analysis_job(o, ws, &m, stop, err, sizeof(err))
                                             : insight_job(o, &m, err, sizeof(err));
    if (jrc != 0) {
        *failed = 1;
        job_failed(o, &m, topic == WORKER_TOPIC_ANALYSIS ? "analysis" : "insight generation", err, jrc);
    }
    store_msg_clear(&m);
    return 0;
}

int worker_once_run(const struct worker_options *o, struct pat_workspace *ws, unsigned topic, int *handled)
{
    int failed;
    return run_once(o, ws, topic, NULL, handled, &failed);
}

/* Close uploads whose message the queue dead-lettered without a worker
 * running it (the worker died during the last attempt; pipeline/jobs.h), and
 * imports whose process died mid-stream (store/recovery.h). */
static void close_abandoned(struct store *st, int64_t import_stale_ms)
{
    struct store_tx *tx = NULL;
    int64_t n = 0, stale = 0;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = jobs_close_dead_lettered(tx, &n);
    /* Imports whose process died mid-stream (their lease ran out). */
    if (rc == 0 && import_stale_ms > 0)
        rc = store_upload_fail_stale_imports(tx, time_now_ms() - import_stale_ms, &stale);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    if (rc != 0)
        log_warning("worker: cannot close abandoned uploads", LOG_STR, "error", clarity_strerror(rc), LOG_END);
    else if (n > 0)
        log_warning("worker: closed uploads whose jobs were dead-lettered", LOG_INT, "uploads", (long long)n, LOG_END);
    if (rc == 0 && stale > 0)
        log_warning("worker: closed interrupted imports", LOG_INT, "uploads", (long long)stale, LOG_END);
}

/* Delete acknowledged messages past the queue's retention (store/queue.h):
 * without this the queue table only ever grows. Every worker thread of
 * every process does it; concurrent purges delete disjoint or no rows. */
static void purge_acknowledged(struct store *st)
{
    int64_t n = 0;
    int rc = store_queue_purge(st, time_now_ms(), &n);
    if (rc != 0)
        log_warning("worker: cannot purge acknowledged messages", LOG_STR, "error", clarity_strerror(rc), LOG_END);
    else if (n > 0)
        log_info("worker: purged acknowledged messages", LOG_INT, "messages", (long long)n, LOG_END);
}

/* Raw upload bodies past RAW_UPLOAD_RETENTION_DAYS (none when 0, the
 * default): store_raw_upload_purge. */
static void purge_raw_bodies(struct store *st)
{
    int64_t n = 0;
    int rc = store_raw_upload_purge(st, time_now_ms(), &n);
    if (rc != 0)
        log_warning("worker: cannot purge raw upload bodies", LOG_STR, "error", clarity_strerror(rc), LOG_END);
    else if (n > 0)
        log_info("worker: purged raw upload bodies past retention", LOG_INT, "bodies", (long long)n, LOG_END);
}

/* Issue #19's backfill: rows of health_samples (written by releases before
 * samples lived in sealed blocks) are moved into blocks, at most
 * BACKFILL_BATCHES batches of 20 user-days a sweep (short write
 * transactions; every read gives the same before, during and after), logged
 * as it goes (counts only). One thread of a process at a time; other
 * processes may run it too (each day moves under its user's lock, once).
 * Stops for good once a pass finds no row left. */
#define BACKFILL_BATCHES 10

static pthread_mutex_t backfill_mu = PTHREAD_MUTEX_INITIALIZER;
static struct store_backfill_stats backfill_at;
static int backfill_finished;

static int backfill_budget(void *ctx, const struct store_backfill_stats *s)
{
    (void)s;
    return --*(int *)ctx <= 0;
}

static void backfill_rows(struct store *st)
{
    if (pthread_mutex_trylock(&backfill_mu) != 0)
        return;
    if (!backfill_finished) {
        int budget = BACKFILL_BATCHES;
        int64_t days = backfill_at.days;
        int rc = store_sample_rows_backfill(st, 20, backfill_budget, &budget, &backfill_at);
        if (rc != 0)
            log_warning("worker: sample backfill into blocks failed; retried next sweep", LOG_STR, "error",
                        clarity_strerror(rc), LOG_END);
        else if (backfill_at.days > days || backfill_at.done)
            log_info("worker: sample backfill into blocks", LOG_INT, "days", (long long)backfill_at.days, LOG_INT,
                     "samples", (long long)backfill_at.samples, LOG_INT, "done", (long long)backfill_at.done, LOG_END);
        backfill_finished = rc == 0 && backfill_at.done;
    }
    pthread_mutex_unlock(&backfill_mu);
}

/* The housekeeping every worker does at start and then once a minute. */
static void sweep(struct store *st, int64_t import_stale_ms)
{
    close_abandoned(st, import_stale_ms);
    purge_acknowledged(st);
    purge_raw_bodies(st);
    backfill_rows(st);
}

/* ---- threads --------------------------------------------------------------- */

static void *thread_main(void *arg)
{
    struct worker_thread *t = arg;
    struct worker_pool *p = t->pool;
    const struct worker_options *o = &p->o;
    struct store_listener *l = NULL;
    struct pat_workspace *ws = NULL;
    if (o->model != NULL && (ws = pat_workspace_new(o->model, 1)) == NULL) {
        log_error("worker: out of memory for the PAT workspace", LOG_END);
        goto out;
    }
    if (store_listener_open(o->store, &l) != 0)
        l = NULL; /* poll instead */
    /* At start and then once a minute, idle or not: uploads abandoned by
     * the queue, acknowledged messages past their retention. */
    sweep(o->store, o->import_stale_ms);
    uint64_t next_sweep = time_mono_ns() + 60ull * 1000000000ull;
    while (!atomic_load(&p->stop)) {
        if (time_mono_ns() >= next_sweep) {
            sweep(o->store, o->import_stale_ms);
            next_sweep = time_mono_ns() + 60ull * 1000000000ull;
        }
        int any = 0, err = 0;
        /* Insights first: they finish uploads already analysed. */
        static const unsigned order[2] = {WORKER_TOPIC_INSIGHTS, WORKER_TOPIC_ANALYSIS};
        for (int i = 0; i < 2 && !atomic_load(&p->stop); i++) {
            if (!(o->topics & order[i]))
                continue;
            int handled = 0, failed = 0;
            int rc = run_once(o, ws, order[i], &p->stop, &handled, &failed);
            if (rc != 0) {
                log_warning("worker: cannot lease", LOG_STR, "error", clarity_strerror(rc), LOG_END);
                err = 1;
                break;
            }
            if (handled) {
                any = 1;
                atomic_fetch_add(failed ? &p->failed : &p->done, 1);
            }
        }
        if (any || atomic_load(&p->stop))
            continue;
        int wait = o->poll_ms > 0 ? o->poll_ms : 500;
        if (l != NULL && !err) {
            store_listener_wait(l, wait);
        } else {
            struct timespec ts = {wait / 1000, (long)(wait % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
out:
    store_listener_close(l);
    pat_workspace_free(ws);
    atomic_store(&t->finished, 1);
    return NULL;
}

int worker_pool_start(const struct worker_options *o, struct worker_pool **out, char *err, size_t errlen)
{
    if (o == NULL || o->store == NULL || o->threads < 1 || o->threads > WORKER_MAX_THREADS) {
        snprintf(err, errlen, "worker threads must be 1 to %d", WORKER_MAX_THREADS);
        return -1;
    }
    if (o->model != NULL && o->pat_std == NULL) {
        snprintf(err, errlen, "a PAT model needs a standardization (PAT_STANDARDIZATION)");
        return -1;
    }
    struct worker_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->o = *o;
    /* The caller's string may not outlive this call (cli_workers_start keeps
     * it on its stack): keep a copy, or nothing, never the caller's pointer. */
    p->o.fault_fail_source = NULL;
    if (o->fault_fail_source != NULL && o->fault_fail_source[0] != '\0') {
        snprintf(p->fail_source, sizeof(p->fail_source), "%s", o->fault_fail_source);
        p->o.fault_fail_source = p->fail_source;
    }
    if (p->o.topics == 0)
        p->o.topics = WORKER_TOPIC_ANALYSIS | WORKER_TOPIC_INSIGHTS;
    if (p->o.lease_ms <= 0)
        p->o.lease_ms = 60000;
    atomic_init(&p->stop, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->failed, 0);
    for (int i = 0; i < o->threads; i++) {
        p->t[i].pool = p;
        atomic_init(&p->t[i].finished, 0);
        if (pthread_create(&p->t[i].tid, NULL, thread_main, &p->t[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i + 1);
            p->n = i;
            worker_pool_join(p, 60000);
            worker_pool_free(p);
            return -1;
        }
        p->t[i].started = 1;
        p->n = i + 1;
    }
    *out = p;
    return 0;
}

void worker_pool_stop(struct worker_pool *p)
{
    if (p != NULL)
        atomic_store(&p->stop, 1);
}

int worker_pool_join(struct worker_pool *p, int64_t timeout_ms)
{
    if (p == NULL)
        return 0;
    worker_pool_stop(p);
    uint64_t deadline = time_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    int left;
    for (;;) {
        left = 0;
        for (int i = 0; i < p->n; i++)
            if (p->t[i].started && !atomic_load(&p->t[i].finished))
                left++;
        if (left == 0 || time_mono_ns() >= deadline)
            break;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (left == 0) {
        for (int i = 0; i < p->n; i++)
            if (p->t[i].started) {
                pthread_join(p->t[i].tid, NULL);
                p->t[i].started = 0;
            }
        p->joined = 1;
    }
    return left;
}

void worker_pool_free(struct worker_pool *p)
{
    if (p == NULL)
        return;
    if (!p->joined && p->n > 0)
        return; /* threads still running: leak rather than free under them */
    free(p);
}

void worker_pool_counts(const struct worker_pool *p, int64_t *done, int64_t *failed)
{
    *done = p ? (int64_t)atomic_load(&((struct worker_pool *)p)->done) : 0;
    *failed = p ? (int64_t)atomic_load(&((struct worker_pool *)p)->failed) : 0;
}
