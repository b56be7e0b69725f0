/*
 * worker.h — `clarity worker`, and the pipeline set-up `serve` shares with
 * it (PAT model, standardization, test faults, the worker pool).
 *
 *   clarity worker [--topics health-data-processing,insights-generation]
 *                  [--threads N]
 *
 * Consumes the pipeline's topics (pipeline/worker.h) with N threads
 * (default WORKER_THREADS, at least 1) until SIGTERM/SIGINT, then stops
 * leasing and gives jobs in flight SHUTDOWN_GRACE_SECONDS. Configuration
 * comes from the environment like `serve`. Exit 0 after a clean stop,
 * 1 on failure, 2 on a usage or configuration error.
 */
#ifndef CLARITY_CLI_WORKER_H
#define CLARITY_CLI_WORKER_H

#include "ml/pat.h"
#include "pipeline/worker.h"

struct config;
struct llm_client;
struct store;
struct worker_pool;

/* The loaded PAT encoder and its input standardization (model NULL when
 * PAT_MODEL_PATH is unset). */
struct cli_pat {
    struct pat_model *model;
    struct pat_standardization std;
    struct llm_client *llm; /* INSIGHT_GENERATOR gemini/openai; NULL: builtin */
};

/* Load PAT_MODEL_PATH (checked against PAT_MODEL_SHA256), parse
 * PAT_STANDARDIZATION and set up the INSIGHT_GENERATOR's LLM client. Call
 * from one thread at start-up (after curl_global_init). Returns 0, or -1
 * after logging why. */
int cli_pat_load(const struct config *cfg, struct cli_pat *out);
void cli_pat_free(struct cli_pat *p);

/* Start the pipeline's worker pool for cfg on store with `threads` threads
 * and topic bits (pipeline/worker.h; 0 = both). threads 0 starts nothing
 * (*out NULL). Returns 0, or -1 after logging why. */
int cli_workers_start(const struct config *cfg, struct store *store, const struct cli_pat *pat, int threads,
                      unsigned topics, struct worker_pool **out);

/* Stop leasing, wait up to grace_ms, free. Accepts NULL. */
void cli_workers_stop(struct worker_pool *p, long long grace_ms);

int cli_worker(int argc, char **argv);

#endif
