/*
 * config.h — the service's configuration, read once at start-up.
 *
 * Sources, lowest to highest priority:
 *   1. built-in defaults for the environment (ENVIRONMENT, default development),
 *   2. an optional `.env.<ENVIRONMENT>` file in the working directory,
 *   3. the process environment.
 * A secret NAME may instead be given as NAME_FILE: the path of a file whose
 * content (one trailing newline removed) is the value, the way Cloud Run
 * mounts Secret Manager secrets. Setting both NAME and NAME_FILE in the same
 * source is an error.
 *
 * Validation failures produce one line naming the variable and the expected
 * form. The struct is immutable after config_load and shared by all threads.
 */
#ifndef CLARITY_CORE_CONFIG_H
#define CLARITY_CORE_CONFIG_H

#include <stddef.h>

#include "core/log.h"

enum config_env { CONFIG_ENV_DEVELOPMENT = 0, CONFIG_ENV_STAGING, CONFIG_ENV_PRODUCTION };

#define CONFIG_MAX_CORS_ORIGINS 64

/* What one chat health_insight point may take on the wire, e.g.
 * {"timestamp": "2026-11-20T08:00:00.000+01:00", "value": 123456.5}, (63
 * bytes), and the rest of the message around the points:
 * CHAT_MAX_MESSAGE_BYTES must hold CHAT_MAX_DATA_POINTS points. */
#define CONFIG_CHAT_POINT_BYTES 64
#define CONFIG_CHAT_ENVELOPE_BYTES 256

struct config {
    enum config_env environment;
    int debug;
    enum log_level log_level;

    /* Deployment guide variables, passed through to the parts that use them. */
    char *google_cloud_project;
    char *google_cloud_region;
    char *cloud_run_service;
    char *firebase_project_id;
    char *firebase_auth_domain;
    char *vertex_ai_location;
    char *ml_model_endpoint;
    char *actigraphy_model_version;

    char *cors_origins[CONFIG_MAX_CORS_ORIGINS]; /* "*" allowed outside production */
    size_t n_cors_origins;

    char *host;
    int port;           /* 0 picks an ephemeral port (tests) */
    char *database_url; /* secret: may embed a password */
    int shutdown_grace_seconds;
    int restart_timeout_seconds; /* SIGUSR2 hand-over: how long the new process may take to be ready */
    size_t max_request_bytes;
    int http_threads;

    /* Identity and data protection (docs/configuration.md). */
    char *jwt_private_key; /* secret: PEM (EC P-256) */
    char *jwt_issuer;
    char *jwt_audience;
    int access_token_ttl_seconds;
    char *encryption_key; /* secret: base64 of 32 bytes */
    char *oidc_jwks_url;
    char *oidc_jwks_file;
    char *oidc_issuers;       /* JSON list of external issuers (auth/oidc.h) */
    char *oidc_providers;     /* JSON list of browser sign-in providers (auth/oidc_login.h) */
    char *oidc_redirect_base; /* this server's external origin, for their redirect URIs */
    char *smtp_url;           /* smtp://host:port or smtps://…; NULL: no e-mail */
    char *smtp_from;
    char *smtp_username;
    char *smtp_password;           /* secret */
    char *trusted_proxies;         /* JSON list of addresses whose X-Forwarded-For is honoured */
    int lockout_threshold;         /* failed logins per (account, address) ... */
    int lockout_window_seconds;    /* ... within this window lock for ... */
    int lockout_seconds;           /* ... this long */
    int raw_upload_retention_days; /* delete raw bodies older than this; 0 keeps them */
    int sample_block_format;       /* the sample block format written (store/block.h) */
    char *rate_limits;             /* "auth=5/60,upload=60/60,..." overrides */
    char *password_hash_profile;
    int max_metrics_per_upload;
    size_t max_import_bytes;         /* streamed Apple Health exports */
    int import_stale_seconds;        /* an import untouched this long was interrupted (store/recovery.h) */
    int docs_enabled;                /* /openapi.json and /docs served */
    int http_max_connections;        /* open connections in all */
    int http_max_connections_per_ip; /* per client address; 0: no per-address limit */
    int http_header_timeout_seconds; /* a new connection must send its request head within this */
    int access_log_buffered;         /* access log lines buffered per thread (core/log.h) */
    int web_app_enabled;             /* the web app at / (api/web.c) */
    char *docs_assets_dir;           /* Swagger UI's files; NULL: the build's default */

    /* Analysis and insights pipeline (docs/insights.md, docs/pat.md). */
    int worker_threads;        /* queue consumers inside `serve`; 0 disables */
    int worker_lease_seconds;  /* how long a leased job stays invisible */
    char *pat_model_path;      /* PAT encoder weights; unset: PAT disabled */
    char *pat_model_sha256;    /* expected SHA-256 of that file, optional */
    char *pat_standardization; /* none | global:MEAN:STD */
    char *insight_generator;   /* builtin (default) */
    char *pipeline_test_fault; /* TEST ONLY: fail_source=NAME,delay_ms=N */
    char *gemini_api_key;      /* secret: INSIGHT_GENERATOR=gemini */
    char *gemini_model;
    char *llm_base_url; /* OpenAI-compatible endpoint (or a Gemini base override) */
    char *llm_api_key;  /* secret: INSIGHT_GENERATOR=openai */
    char *llm_model;

    /* Chat over WebSocket (docs/api.md, "Chat"). */
    size_t chat_max_message_bytes; /* larger: MESSAGE_TOO_LARGE; 4x larger: close 1009 */
    int chat_messages_per_minute;  /* per user, all sockets together */
    int chat_max_connections_per_user;
    int chat_max_connections;      /* all users together on this instance */
    int chat_heartbeat_seconds;    /* server ping interval */
    int chat_idle_timeout_seconds; /* no client message for this long: close */
    int chat_max_data_points;      /* per health_insight */

    /* Operations (docs/operations.md). */
    char *log_format;          /* json (default) or text */
    char *metrics_token;       /* secret: bearer token /metrics and /health details need */
    int health_canary_seconds; /* background PAT canary period */

    /* Where each variable came from (enum config_source), by table order. */
    unsigned char source[128];
};

/*
 * Parsers of the structured variables. config_load runs each, so a value
 * `clarity config check` accepts is one `serve` accepts; the parts that use
 * a value (api/guard, cli/worker) call the same parser for its result.
 */

/* RATE_LIMITS classes, in api/guard.h's GUARD_RATE_* order (0: none). */
#define CONFIG_RATE_CLASSES 6
struct config_rate {
    int count;
    int period_s;
};
/* Defaults, then "CLASS=COUNT/SECONDS,..." overrides. 0 or -1 with err. */
int config_rate_limits_parse(const char *spec, struct config_rate out[CONFIG_RATE_CLASSES], char *err, size_t errlen);

/* TRUSTED_PROXIES: a JSON list of at most CONFIG_MAX_PROXIES IP addresses. */
#define CONFIG_MAX_PROXIES 32
int config_proxies_parse(const char *json, char out[][64], int *n, char *err, size_t errlen);

/* PAT_STANDARDIZATION for workers: none (*global 0) or global:MEAN:STD, STD > 0. */
int config_pat_std_parse(const char *s, int *global, double *mean, double *sd, char *err, size_t errlen);

/* PIPELINE_TEST_FAULT: fail_source=NAME and/or delay_ms=N (0..600000). */
int config_test_fault_parse(const char *spec, char *fail_source, size_t fail_len, long long *delay_ms, char *err,
                            size_t errlen);

/*
 * Variables that are not Clarity's but look like it: a Clarity prefix
 * (OIDC_, PAT_, CHAT_, ...), one or two edits from a known name
 * (DATABSE_URL), NAME_FILE of a variable that is not a secret, or a name the
 * deployment guide once used (FIRESTORE_*, CLOUD_RUN_REGION,
 * FIREBASE_DATABASE_URL). Looks at envp ("NAME=value" strings, NULL-ended;
 * NULL: the process environment) and the `.env.<ENVIRONMENT>` file in dir.
 * Writes up to max findings and returns how many there were.
 */
struct config_suspect {
    char name[64];
    char hint[192];
};
size_t config_suspects(const struct config *cfg, char *const *envp, const char *dir, struct config_suspect *out,
                       size_t max);

/* Levenshtein distance with adjacent transpositions (optimal string
 * alignment), capped: returns cap + 1 when larger. For the suspects above. */
int config_edit_distance(const char *a, const char *b, int cap);

/* Looks a variable up in the process environment (or a test's fake one).
 * Returns a borrowed string or NULL. */
typedef const char *(*config_getenv_fn)(void *ctx, const char *name);

/*
 * Fill cfg from the three sources. getenv_fn NULL means the real environment;
 * dir is where `.env.<ENVIRONMENT>` is looked for (NULL: working directory).
 * Returns 0, or -1 with a one-line message in err (naming the variable and
 * the expected form). On failure cfg holds nothing that needs freeing.
 */
int config_load(struct config *cfg, config_getenv_fn getenv_fn, void *ctx, const char *dir, char *err, size_t errlen);

/* Free the strings config_load allocated. Accepts a zeroed struct. */
void config_free(struct config *cfg);

const char *config_env_name(enum config_env env);

/*
 * Print the effective configuration, one `NAME=value  (source)` per line,
 * secrets redacted (a URL keeps everything but its password). To fd.
 */
void config_print(const struct config *cfg, int fd);

/*
 * Redact a secret for display: URLs lose their password ("postgres://u:***@h"),
 * other non-empty secrets become "***". Writes into out (always terminated).
 */
void config_redact_url(const char *url, char *out, size_t outlen);

#endif
