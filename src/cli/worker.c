/*
 * worker.c — `clarity worker` and the pipeline set-up shared with `serve`
 * (contract in worker.h).
 */
#include "cli/worker.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/migrate.h"
#include "core/config.h"
#include "core/log.h"
#include "crypto/keyring.h"
#include "pipeline/llm.h"
#include "pipeline/worker.h"
#include "store/store.h"

/* The LLM client INSIGHT_GENERATOR asks for (docs/insights.md). */
static int llm_load(const struct config *cfg, struct llm_client **out)
{
    char err[256];
    const char *g = cfg->insight_generator ? cfg->insight_generator : "builtin";
    struct llm_config lc = {0, cfg->llm_base_url, NULL, NULL, 20000};
    *out = NULL;
    if (strcmp(g, "builtin") == 0)
        return 0;
    if (strcmp(g, "gemini") == 0) {
        lc.provider = LLM_PROVIDER_GEMINI;
        lc.api_key = cfg->gemini_api_key;
        lc.model = cfg->gemini_model;
    } else if (strcmp(g, "openai") == 0) {
        lc.provider = LLM_PROVIDER_OPENAI;
        lc.api_key = cfg->llm_api_key;
        lc.model = cfg->llm_model;
    } else {
        log_error("INSIGHT_GENERATOR: expected builtin, gemini or openai", LOG_STR, "value", g, LOG_END);
        return -1;
    }
    if ((*out = llm_client_new(&lc, err, sizeof(err))) == NULL) {
        log_error("cannot set up the insight generator", LOG_STR, "generator", g, LOG_STR, "error", err, LOG_END);
        return -1;
    }
    log_info("insight generator", LOG_STR, "name", llm_client_name(*out), LOG_STR, "fallback", "builtin", LOG_END);
    return 0;
}

int cli_pat_load(const struct config *cfg, struct cli_pat *out)
{
    char err[512];
    memset(out, 0, sizeof(*out));
    out->std.mode = PAT_STD_NONE;
    if (llm_load(cfg, &out->llm) != 0)
        return -1;
    if (cfg->pat_model_path == NULL || cfg->pat_model_path[0] == '\0')
        return 0;
    const char *s = cfg->pat_standardization;
    if (s == NULL || s[0] == '\0') {
        log_error("PAT_MODEL_PATH is set but PAT_STANDARDIZATION is not (none or global:MEAN:STD; see docs/pat.md)",
                  LOG_END);
        return -1;
    }
    int global = 0;
    double mean = 0, sd = 1;
    if (config_pat_std_parse(s, &global, &mean, &sd, err, sizeof(err)) != 0) {
        log_error("invalid PAT_STANDARDIZATION", LOG_STR, "error", err, LOG_END);
        return -1;
    }
    out->std.mode = global ? PAT_STD_GLOBAL : PAT_STD_NONE;
    out->std.mean = (float)mean;
    out->std.std = (float)sd;
    struct pat_load_options opt = {cfg->pat_model_sha256, 0};
    pat_blas_threads_set(1);
    if (pat_model_load(cfg->pat_model_path, &opt, &out->model, err, sizeof(err)) != 0) {
        log_error("cannot load the PAT model", LOG_STR, "path", cfg->pat_model_path, LOG_STR, "error", err, LOG_END);
        return -1;
    }
    struct pat_model_info info;
    pat_model_info_get(out->model, &info);
    log_info("PAT model loaded", LOG_STR, "variant", info.variant, LOG_STR, "sha256", info.sha256, LOG_END);
    return 0;
}

void cli_pat_free(struct cli_pat *p)
{
    if (p != NULL) {
        pat_model_free(p->model);
        p->model = NULL;
        llm_client_free(p->llm);
        p->llm = NULL;
    }
}

int cli_workers_start(const struct config *cfg, struct store *store, const struct cli_pat *pat, int threads,
                      unsigned topics, struct worker_pool **out)
{
    char err[512], fail_source[128];
    int64_t delay = 0;
    *out = NULL;
    if (threads <= 0)
        return 0;
    if (worker_fault_parse(cfg->pipeline_test_fault, fail_source, sizeof(fail_source), &delay, err, sizeof(err)) != 0) {
        log_error("invalid PIPELINE_TEST_FAULT", LOG_STR, "error", err, LOG_END);
        return -1;
    }
    if ((fail_source[0] != '\0' || delay > 0) && cfg->environment == CONFIG_ENV_PRODUCTION) {
        log_error("PIPELINE_TEST_FAULT is for tests and refused in production", LOG_END);
        return -1;
    }
    if (fail_source[0] != '\0' || delay > 0)
        log_warning("PIPELINE_TEST_FAULT is set: analysis jobs are faulted on purpose", LOG_STR, "fail_source",
                    fail_source, LOG_INT, "delay_ms", (long long)delay, LOG_END);
    struct worker_options o = {
        .store = store,
        .threads = threads,
        .topics = topics,
        .lease_ms = (int64_t)cfg->worker_lease_seconds * 1000,
        .import_stale_ms = (int64_t)cfg->import_stale_seconds * 1000,
        .poll_ms = 500,
        .model = pat ? pat->model : NULL,
        .pat_std = pat ? &pat->std : NULL,
        .model_version = cfg->actigraphy_model_version,
        .fault_fail_source = fail_source,
        .fault_delay_ms = delay,
        .llm = pat ? pat->llm : NULL,
    };
    if (worker_pool_start(&o, out, err, sizeof(err)) != 0) {
        log_error("cannot start workers", LOG_STR, "error", err, LOG_END);
        return -1;
    }
    log_info("workers started", LOG_INT, "threads", (long long)threads, LOG_INT, "lease_seconds",
             (long long)cfg->worker_lease_seconds, LOG_STR, "pat", pat && pat->model ? "enabled" : "disabled", LOG_END);
    return 0;
}

void cli_workers_stop(struct worker_pool *p, long long grace_ms)
{
    if (p == NULL)
        return;
    int left = worker_pool_join(p, grace_ms);
    int64_t done = 0, failed = 0;
    worker_pool_counts(p, &done, &failed);
    if (left > 0) {
        /* Threads still inside a job use the store: exit without freeing
         * anything under them. Their leases expire and the jobs are
         * redelivered to another worker. */
        log_warning("grace period over; abandoning jobs in flight (their leases expire)", LOG_INT, "threads",
                    (long long)left, LOG_INT, "jobs_done", (long long)done, LOG_END);
        _exit(CLI_EXIT_OK);
    }
    log_info("workers stopped", LOG_INT, "jobs_done", (long long)done, LOG_INT, "jobs_failed", (long long)failed,
             LOG_END);
    worker_pool_free(p);
}

static int usage(const char *msg)
{
    fprintf(stderr,
            "clarity worker: %s\nusage: clarity worker [--topics health-data-processing,insights-generation] "
            "[--threads N]\n",
            msg);
    return CLI_EXIT_USAGE;
}

int cli_worker(int argc, char **argv)
{
    unsigned topics = WORKER_TOPIC_ANALYSIS | WORKER_TOPIC_INSIGHTS;
    long threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--topics") == 0) {
            if (val == NULL || worker_topics_parse(val, &topics) != 0)
                return usage("--topics takes health-data-processing and/or insights-generation, comma-separated");
            i++;
        } else if (strcmp(argv[i], "--threads") == 0) {
            char *end;
            threads = val ? strtol(val, &end, 10) : -1;
            if (val == NULL || *end != '\0' || threads < 1 || threads > WORKER_MAX_THREADS)
                return usage("--threads takes 1 to 64");
            i++;
        } else {
            return usage("unknown argument");
        }
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    if (threads < 0)
        threads = cfg.worker_threads > 0 ? cfg.worker_threads : 1;

    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    cli_signals_to_main(&sigs);
    signal(SIGPIPE, SIG_IGN); /* a provider closing its socket is an error value, not a death */

    struct store *store = NULL;
    struct cli_pat pat;
    struct worker_pool *pool = NULL;
    struct envelope_key *master = NULL;
    struct keyring *ring = NULL;
    memset(&pat, 0, sizeof(pat));
    rc = CLI_EXIT_FAILURE;
    curl_global_init(CURL_GLOBAL_DEFAULT); /* LLM providers; before any thread */
    if (cli_store_open_for_serve(&cfg, &store) != 0)
        goto done;
    /* The key ring seals the analyses and insights this worker writes
     * (store_set_sealer; issue #19), and opens them for the insight job. */
    if (cli_store_seal(&cfg, store, &master, &ring) != 0)
        goto done;
    if (cli_pat_load(&cfg, &pat) != 0 || cli_workers_start(&cfg, store, &pat, (int)threads, topics, &pool) != 0)
        goto done;
    log_info("worker ready", LOG_STR, "version", CLARITY_VERSION, LOG_END);
    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("worker draining", LOG_INT, "signal", (long long)sig, LOG_INT, "grace_seconds",
             (long long)cfg.shutdown_grace_seconds, LOG_END);
    cli_workers_stop(pool, (long long)cfg.shutdown_grace_seconds * 1000);
    pool = NULL;
    rc = CLI_EXIT_OK;
done:
    cli_workers_stop(pool, 0);
    cli_pat_free(&pat);
    keyring_close(ring);
    envelope_key_free(master);
    store_close(store);
    curl_global_cleanup();
    config_free(&cfg);
    return rc;
}
