/*
 * serve.c — `clarity serve`: wire the parts together, serve, drain on signal.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigwait, so no work happens in an async signal handler. On the
 * first SIGTERM/SIGINT: readiness turns 503, the listener closes (new
 * connections are refused), requests in flight get SHUTDOWN_GRACE_SECONDS to
 * finish, then the process exits 0. A second signal exits at once (status 1).
 * SIGUSR2 restarts without downtime: a new process takes over the listening
 * socket (cli/restart.h) and only once it serves does this one drain and
 * exit 0; if the new one fails, this one keeps serving.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api/api.h"
#include "api/guard.h"
#include "auth/jwt.h"
#include "auth/limiter.h"
#include "auth/oidc.h"
#include "auth/oidc_login.h"
#include "chat/hub.h"
#include "cli/cli.h"
#include "cli/migrate.h"
#include "cli/restart.h"
#include "cli/worker.h"
#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "crypto/password.h"
#include "store/recovery.h"
#include "core/config.h"
#include "core/health.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "pipeline/worker.h"
#include "http/router.h"
#include "http/server.h"
#include "ml/pat_health.h"
#include "store/store.h"

/* Wait for requests in flight to finish, up to the grace period, while
 * watching for a second signal. After a hand-over also wait for open
 * connections: clients keep using keep-alive connections to this process,
 * each next answer closes one (Connection: close), and closing one while
 * its client may be sending would fail that request. Returns the number of
 * requests still in flight. */
/* Imports a killed process left "processing" past their lease
 * (store/recovery.h): failed with a reason, at every start, workers or not. */
static void close_interrupted_imports(struct store *st, const struct config *cfg)
{
    struct store_tx *tx = NULL;
    int64_t n = 0;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc == 0)
        rc = store_upload_fail_stale_imports(tx, time_now_ms() - (int64_t)cfg->import_stale_seconds * 1000, &n);
    if (rc == 0) {
        rc = store_tx_commit(tx);
        tx = NULL;
    }
    store_tx_rollback(tx);
    if (rc != 0)
        log_warning("cannot close interrupted imports", LOG_STR, "error", clarity_strerror(rc), LOG_END);
    else if (n > 0)
        log_warning("closed interrupted imports", LOG_INT, "uploads", (long long)n, LOG_END);
}

static long drain(struct http_server *srv, int grace_seconds, const sigset_t *sigs, int handed_over)
{
    uint64_t deadline = time_mono_ns() + (uint64_t)grace_seconds * 1000000000u;
    struct timespec tick = {0, 20 * 1000 * 1000};
    long left;
    while (((left = http_server_in_flight(srv)) > 0 || (handed_over && http_server_connections(srv) > 0)) &&
           time_mono_ns() < deadline) {
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig == SIGUSR2) {
            log_info("draining; restart signal ignored", LOG_END);
            continue;
        }
        if (sig > 0) {
            log_warning("second signal: exiting now", LOG_INT, "signal", (long long)sig, LOG_INT, "in_flight",
                        (long long)left, LOG_END);
            _exit(1);
        }
    }
    return left;
}

int cli_signer_load(const struct config *cfg, struct jwt_signer **out)
{
    char err[256];
    if (cfg->jwt_private_key != NULL && cfg->jwt_private_key[0] != '\0') {
        *out = jwt_signer_from_pem(cfg->jwt_private_key, err, sizeof(err));
    } else {
        /* Development only (config refuses this elsewhere): a key generated
         * once and kept under var/ so tokens survive restarts. */
        int created = 0;
        *out = jwt_signer_load_or_create("var/jwt-es256.pem", &created, err, sizeof(err));
        if (*out != NULL && created)
            log_warning("JWT_PRIVATE_KEY unset: generated a development signing key", LOG_STR, "path",
                        "var/jwt-es256.pem", LOG_END);
    }
    if (*out == NULL) {
        log_error("cannot load the token signing key", LOG_STR, "error", err, LOG_END);
        return -1;
    }
    return 0;
}

int cli_serve(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr,
                "clarity serve: unexpected argument '%s'; configuration comes from the environment "
                "(see `clarity config check`)\n",
                argv[1]);
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    cli_config_warn_suspects(&cfg);

    /* Block the shutdown signals before any thread starts, so every thread
     * inherits the mask and only sigwait below receives them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR2); /* zero-downtime restart */
    cli_signals_to_main(&sigs);
    signal(SIGPIPE, SIG_IGN);

    static struct router router;
    static struct health_registry health;
    struct http_server *srv = NULL;
    struct store *store = NULL;
    struct jwt_signer *signer = NULL;
    struct limiter *lockout = NULL;
    struct guard *guard = NULL;
    struct oidc *oidc = NULL;
    struct oidc_login *oidc_login = NULL; /* browser sign-in providers (auth/oidc_login.h) */
    struct envelope_key *master = NULL;
    struct keyring *ring = NULL;
    struct api_ctx api;
    atomic_int stop_requests = 0; /* set once the grace period is over */
    struct cli_pat pat;           /* pipeline: PAT model (cli/worker.h) */
    struct worker_pool *workers = NULL;
    struct chat_hub *chat = NULL;     /* chat: WebSocket connections (chat/hub.h) */
    struct pat_canary *canary = NULL; /* /health's ml_service result (ml/pat_health.h) */
    char err[512];
    rc = CLI_EXIT_FAILURE;

    if (cli_restart_init() != 0)
        log_warning("cannot find the running binary; SIGUSR2 restarts are unavailable", LOG_END);
    router_init(&router);
    memset(&health, 0, sizeof(health));
    memset(&api, 0, sizeof(api));
    memset(&pat, 0, sizeof(pat));
    curl_global_init(CURL_GLOBAL_DEFAULT); /* before any thread may use libcurl */
    if (password_init() != 0) {
        log_error("libsodium initialisation failed", LOG_END);
        goto done;
    }

    /* Storage: migrations applied in development, refused in staging and
     * production (deploys run `clarity migrate up`); see cli/migrate.h. */
    if (cli_store_open_for_serve(&cfg, &store) == 0)
        close_interrupted_imports(store, &cfg);
    if (store == NULL || store_health_register(&health, store) != 0)
        goto done;

    /* Encryption at rest: the key ring that seals every raw upload. */
    if (keyring_master_load(&cfg, NULL, &master, err, sizeof(err)) != 0 ||
        keyring_open(store, master, &ring, err, sizeof(err)) != 0) {
        log_error("cannot open the encryption key ring", LOG_STR, "error", err, LOG_END);
        goto done;
    }
    health_register(&health, "encryption_keys", keyring_health_check, ring);
    {
        struct store_sealer z; /* analyses and insights sealed at rest (issue #19) */
        keyring_store_sealer(ring, &z);
        store_set_sealer(store, &z);
    }

    /* Identity: the signing key, the lockout counters and the guard that
     * authenticates and rate-limits every request before its handler. */
    if (cli_signer_load(&cfg, &signer) != 0)
        goto done;
    oidc = oidc_new(&cfg, err, sizeof(err));
    if (oidc == NULL && err[0] != '\0') {
        log_error("cannot set up external identity", LOG_STR, "error", err, LOG_END);
        goto done;
    }
    oidc_prefetch(oidc, time_now_ms() / 1000); /* in the background */
    oidc_login = oidc_login_new(&cfg, err, sizeof(err));
    if (oidc_login == NULL && err[0] != '\0') {
        log_error("cannot set up OIDC sign-in providers", LOG_STR, "error", err, LOG_END);
        goto done;
    }
    oidc_login_prefetch(oidc_login, time_now_ms() / 1000);
    lockout = limiter_new(1u << 16);
    guard = guard_new(&cfg, signer, oidc, store, err, sizeof(err));
    if (lockout == NULL || guard == NULL) {
        log_error("cannot set up authentication", LOG_STR, "error", lockout == NULL ? "out of memory" : err, LOG_END);
        goto done;
    }
    api.cfg = &cfg;
    api.stop = &stop_requests;
    api.store = store;
    api.signer = signer;
    api.lockout = lockout;
    api.guard = guard;
    api.oidc_login = oidc_login;
    api.ring = ring;
    api.max_metrics = (size_t)cfg.max_metrics_per_upload;
    api.pw_profile = strcmp(cfg.password_hash_profile, "interactive") == 0 ? PASSWORD_INTERACTIVE : PASSWORD_MODERATE;
    /* Pipeline: the PAT model (shared read-only by workers and the PAT API). */
    if (cli_pat_load(&cfg, &pat) != 0)
        goto done;
    api.pat_model = pat.model;
    api.pat_std = &pat.std;
    api.llm = pat.llm;
    /* /health ml_service: a canary inference; a missing model is "disabled" (docs/pat.md). */
    /* Run in the background (at start, then every HEALTH_CANARY_SECONDS), so
     * that /health itself never runs an inference. */
    struct pat_health_ctx pat_hc = {pat.model, cfg.actigraphy_model_version, 2000, pat.model != NULL};
    if ((canary = pat_canary_start(&pat_hc, cfg.health_canary_seconds)) == NULL) {
        log_error("cannot start the ml_service canary", LOG_END);
        goto done;
    }
    health_register(&health, "ml_service", pat_canary_check, canary);
    struct chat_services chat_svc = {&cfg, store, pat.model, &pat.std, pat.llm};
    if ((chat = chat_hub_new(&chat_svc, err, sizeof(err))) == NULL) {
        log_error("cannot start chat", LOG_STR, "error", err, LOG_END);
        goto done;
    }
    api.chat = chat;
    if (api_routes_register(&router, &api) != 0) {
        log_error("route registration failed", LOG_END);
        goto done;
    }

    srv = http_server_new(&cfg, &router, &health);
    if (srv == NULL) {
        log_error("out of memory", LOG_END);
        goto done;
    }
    http_server_guard_set(srv, guard_run, guard);
    if (http_server_start(srv, err, sizeof(err)) != 0) {
        log_error("cannot start HTTP server", LOG_STR, "error", err, LOG_END);
        goto done;
    }
    /* Pipeline: WORKER_THREADS queue consumers (0: run `clarity worker` instead). */
    if (cli_workers_start(&cfg, store, &pat, cfg.worker_threads, 0, &workers) != 0)
        goto done;
    if (cfg.access_log_buffered && log_buffering_start() != 0)
        log_warning("access log unbuffered: cannot start its flusher thread", LOG_END);
    http_server_state_set(srv, HTTP_SERVER_READY);
    log_info("listening", LOG_STR, "host", cfg.host, LOG_INT, "port", (long long)http_server_port(srv), LOG_STR,
             "environment", config_env_name(cfg.environment), LOG_STR, "version", CLARITY_VERSION, LOG_INT,
             "http_threads", (long long)cfg.http_threads, LOG_INT, "pid", (long long)getpid(), LOG_END);
    cli_restart_ready(); /* started by a hand-over: the old process may drain now */

    int sig = 0, handed_over = 0;
    for (;;) {
        while (sigwait(&sigs, &sig) != 0)
            ;
        if (sig != SIGUSR2)
            break;
        int r = cli_restart(srv, &cfg, &sigs, &sig);
        if (r != 0) {
            handed_over = r > 0;
            break;
        }
    }
    log_info("draining", LOG_INT, "signal", (long long)sig, LOG_INT, "handed_over", (long long)handed_over, LOG_INT,
             "grace_seconds", (long long)cfg.shutdown_grace_seconds, LOG_INT, "in_flight",
             (long long)http_server_in_flight(srv), LOG_END);
    http_server_state_set(srv, HTTP_SERVER_DRAINING);
    http_server_quiesce(srv);
    worker_pool_stop(workers);  /* pipeline: stop leasing now, join below */
    chat_hub_drain(chat, 2000); /* chat: `system` message, close 1001 */
    long left = drain(srv, cfg.shutdown_grace_seconds, &sigs, handed_over);
    if (left > 0)
        log_warning("grace period over; closing remaining requests", LOG_INT, "in_flight", (long long)left, LOG_END);
    atomic_store(&stop_requests, 1); /* a long import gives up at its next chunk */
    cli_workers_stop(workers, (long long)cfg.shutdown_grace_seconds * 1000);
    workers = NULL;
    rc = CLI_EXIT_OK;
done:
    cli_workers_stop(workers, 0);
    http_server_free(srv); /* first: no upgrade reaches the hub after it is freed */
    log_buffering_stop();  /* the access log's last lines */
    chat_hub_free(chat);
    pat_canary_stop(canary);
    guard_free(guard);
    oidc_free(oidc);
    oidc_login_free(oidc_login);
    limiter_free(lockout);
    jwt_signer_free(signer);
    keyring_close(ring);
    envelope_key_free(master);
    store_close(store);
    cli_pat_free(&pat);
    if (rc == CLI_EXIT_OK)
        log_info("stopped", LOG_END);
    curl_global_cleanup();
    config_free(&cfg);
    return rc;
}
