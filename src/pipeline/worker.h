/*
 * worker.h — the queue consumers that turn uploads into analyses and
 * analyses into insights (ARCHITECTURE.md, "The flow of one upload").
 *
 * Topics and jobs:
 *   health-data-processing {"upload_id","user_id"}
 *     -> load the window the upload touches (pipeline/compute.h), analyse,
 *        and in ONE transaction: insert the `analyses` row, set the upload's
 *        progress, publish insights-generation {"analysis_id","upload_id",
 *        "user_id"} and ack.
 *   insights-generation
 *     -> the configured generator (pipeline/llm.h, falling back to the
 *        built-in one, pipeline/insight_builtin.h), and in ONE
 *        transaction: insert the `insights` row, mark the upload completed
 *        and ack (the store emits the "insight created" event at commit).
 * Idempotency: the analysis id is derived from the upload id and the insight
 * id from the analysis id (compute_id_derive), so a redelivered job finds
 * its result and only acks; the ack's lease token makes a job whose lease
 * expired roll back instead of committing twice.
 * Failures: the message is nacked (visible again after the queue's
 * backoff); on its last attempt the nack dead-letters it and, in the same
 * transaction, the upload is marked failed with a readable reason.
 * Shutdown: worker_pool_stop makes the threads stop leasing; a job in flight
 * finishes (or, when it is waiting, gives its message back with a nack);
 * worker_pool_join waits up to a deadline.
 *
 * Any number of pools, in any number of processes, share one database:
 * they coordinate only through the queue's leases.
 */
#ifndef CLARITY_PIPELINE_WORKER_H
#define CLARITY_PIPELINE_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "ml/pat.h"

struct llm_client;
struct store;
struct store_msg;

#define WORKER_TOPIC_ANALYSIS 0x1u /* health-data-processing */
#define WORKER_TOPIC_INSIGHTS 0x2u /* insights-generation */
#define WORKER_MAX_THREADS 64

struct worker_options {
    struct store *store;                       /* borrowed, required */
    int threads;                               /* 1..WORKER_MAX_THREADS */
    unsigned topics;                           /* WORKER_TOPIC_* bits; 0 = both */
    int64_t lease_ms;                          /* job lease (default 60000) */
    int poll_ms;                               /* idle wait between leases (default 500) */
    const struct pat_model *model;             /* borrowed; NULL: PAT disabled */
    const struct pat_standardization *pat_std; /* borrowed; required with a model */
    const char *model_version;                 /* borrowed, may be NULL */
    const char *fault_fail_source;             /* TEST ONLY (PIPELINE_TEST_FAULT), NULL;
                                                 copied by worker_pool_start */
    int64_t fault_delay_ms;                    /* TEST ONLY: pause inside each analysis job */
    struct llm_client *llm;                    /* borrowed; NULL: the built-in generator */
    int64_t import_stale_ms;                   /* interrupted imports (store/recovery.h); 0: not swept */
};

/*
 * Parse PIPELINE_TEST_FAULT: comma-separated "fail_source=NAME" (uploads
 * holding a sample from source NAME fail their analysis every time) and
 * "delay_ms=N" (each analysis job pauses N ms after marking the upload
 * processing, so that tests can kill a worker mid-job). NULL or "" sets
 * nothing. Returns 0, or -1 with a message in err.
 */
int worker_fault_parse(const char *spec, char *fail_source, size_t fail_len, int64_t *delay_ms, char *err,
                       size_t errlen);

/* Topic names -> WORKER_TOPIC_* bits ("health-data-processing,insights-generation",
 * "analysis", "insights", "all"). Returns 0, or -1 for an unknown name. */
int worker_topics_parse(const char *list, unsigned *out);

struct worker_pool;

/* Start o->threads consumer threads. o is copied (its pointers stay
 * borrowed). Returns 0 and *out, or -1 with a message in err. */
int worker_pool_start(const struct worker_options *o, struct worker_pool **out, char *err, size_t errlen);
/* Stop leasing (returns at once). Safe to call more than once. */
void worker_pool_stop(struct worker_pool *p);
/* Wait up to timeout_ms for the threads to finish. Returns how many are
 * still running (abandoned: their leases expire and the jobs are
 * redelivered elsewhere). Stops the pool first when that was not done. */
int worker_pool_join(struct worker_pool *p, int64_t timeout_ms);
/* Free a joined pool (a pool with running threads is leaked on purpose:
 * the process is exiting). Accepts NULL. */
void worker_pool_free(struct worker_pool *p);

/* Jobs handled so far by the pool (completed, failed). */
void worker_pool_counts(const struct worker_pool *p, int64_t *done, int64_t *failed);

/*
 * Lease and handle at most one message of one topic (WORKER_TOPIC_*) on the
 * calling thread: for tests and the benchmark. ws is the thread's PAT
 * workspace (NULL without a model). *handled is 1 when a message was
 * leased. Returns 0 (the job succeeded, or failed and was nacked), or a
 * STORE_E* code when the queue itself could not be reached.
 */
int worker_once_run(const struct worker_options *o, struct pat_workspace *ws, unsigned topic, int *handled);

#endif
