/*
 * config.c — configuration from defaults, `.env.<ENVIRONMENT>` and the process
 * environment. See config.h.
 */
#include "core/config.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <ctype.h>

#include "core/json_load.h"
#include "core/buf.h"
#include "core/limits.h"

enum config_source { SRC_DEFAULT = 0, SRC_DOTENV, SRC_DOTENV_FILE, SRC_ENV, SRC_ENV_FILE };

static const char *const source_names[] = {"default", ".env file", ".env file (_FILE)", "environment",
                                           "environment (_FILE)"};

enum var_kind { V_STRING, V_BOOL, V_INT, V_SIZE, V_LOGLEVEL, V_CORS, V_ENV };

/*
 * One row per variable. Defaults may differ by environment (dev, staging,
 * prod); NULL means "unset". `min`/`max` bound integers. `secret` rows accept
 * NAME_FILE and are redacted when printed.
 */
struct var {
    const char *name;
    enum var_kind kind;
    size_t offset;
    const char *def[3];
    long long min, max;
    int secret;
    const char *form; /* the expected form, for error messages */
};

#define OFF(f) offsetof(struct config, f)

static const struct var vars[] = {
    {"ENVIRONMENT",
     V_ENV,
     OFF(environment),
     {"development", "staging", "production"},
     0,
     0,
     0,
     "one of development, staging, production"},
    {"DEBUG", V_BOOL, OFF(debug), {"false", "false", "false"}, 0, 0, 0, "true or false"},
    {"LOG_LEVEL", V_LOGLEVEL, OFF(log_level), {"INFO", "INFO", "INFO"}, 0, 0, 0, "one of DEBUG, INFO, WARNING, ERROR"},
    {"GOOGLE_CLOUD_PROJECT", V_STRING, OFF(google_cloud_project), {0}, 0, 0, 0, "a project id"},
    {"GOOGLE_CLOUD_REGION",
     V_STRING,
     OFF(google_cloud_region),
     {"us-central1", "us-central1", "us-central1"},
     0,
     0,
     0,
     "a region name"},
    {"CLOUD_RUN_SERVICE",
     V_STRING,
     OFF(cloud_run_service),
     {"clarity-backend-dev", "clarity-backend-staging", "clarity-backend"},
     0,
     0,
     0,
     "a service name"},
    {"FIREBASE_PROJECT_ID", V_STRING, OFF(firebase_project_id), {0}, 0, 0, 0, "a project id"},
    {"FIREBASE_AUTH_DOMAIN", V_STRING, OFF(firebase_auth_domain), {0}, 0, 0, 0, "a domain name"},
    {"VERTEX_AI_LOCATION",
     V_STRING,
     OFF(vertex_ai_location),
     {"us-central1", "us-central1", "us-central1"},
     0,
     0,
     0,
     "a region name"},
    {"ML_MODEL_ENDPOINT", V_STRING, OFF(ml_model_endpoint), {0}, 0, 0, 0, "a URL"},
    {"ACTIGRAPHY_MODEL_VERSION",
     V_STRING,
     OFF(actigraphy_model_version),
     {"v1.0", "v1.0", "v1.0"},
     0,
     0,
     0,
     "a version string"},
    {"CORS_ORIGINS",
     V_CORS,
     0,
     {"[\"http://localhost:3000\",\"http://localhost:8080\"]", "[]", "[]"},
     0,
     0,
     0,
     "a JSON list of origins, e.g. [\"https://app.example.com\"]"},
    {"HOST", V_STRING, OFF(host), {"127.0.0.1", "0.0.0.0", "0.0.0.0"}, 0, 0, 0, "an IP address"},
    {"PORT", V_INT, OFF(port), {"8000", "8000", "8000"}, 0, 65535, 0, "an integer from 0 to 65535"},
    {"DATABASE_URL",
     V_STRING,
     OFF(database_url),
     {"sqlite:var/clarity.db", "sqlite:var/clarity.db", "sqlite:var/clarity.db"},
     0,
     0,
     1,
     "sqlite:PATH or postgres://user:password@host:port/db"},
    {"SHUTDOWN_GRACE_SECONDS",
     V_INT,
     OFF(shutdown_grace_seconds),
     {"10", "10", "10"},
     0,
     3600,
     0,
     "an integer number of seconds from 0 to 3600"},
    {"RESTART_TIMEOUT_SECONDS",
     V_INT,
     OFF(restart_timeout_seconds),
     {"60", "60", "60"},
     1,
     3600,
     0,
     "an integer number of seconds from 1 to 3600"},
    {"MAX_REQUEST_BYTES",
     V_SIZE,
     OFF(max_request_bytes),
     {"10485760", "10485760", "10485760"},
     1024,
     1073741824LL,
     0,
     "an integer number of bytes from 1024 to 1073741824"},
    {"HTTP_THREADS", V_INT, OFF(http_threads), {0}, 1, 1024, 0, "an integer from 1 to 1024"},
    {"HTTP_MAX_CONNECTIONS",
     V_INT,
     OFF(http_max_connections),
     {"8192", "8192", "8192"},
     16,
     65536,
     0,
     "an integer from 16 to 65536"},
    {"HTTP_MAX_CONNECTIONS_PER_IP",
     V_INT,
     OFF(http_max_connections_per_ip),
     {"256", "256", "256"},
     0,
     65536,
     0,
     "an integer from 0 (no per-address limit) to 65536"},
    {"HTTP_HEADER_TIMEOUT_SECONDS",
     V_INT,
     OFF(http_header_timeout_seconds),
     {"10", "10", "10"},
     1,
     300,
     0,
     "an integer number of seconds from 1 to 300"},
    {"ACCESS_LOG_BUFFERED", V_BOOL, OFF(access_log_buffered), {"true", "true", "true"}, 0, 0, 0, "true or false"},
    {"JWT_PRIVATE_KEY", V_STRING, OFF(jwt_private_key), {0}, 0, 0, 1, "a PEM-encoded EC P-256 private key"},
    {"JWT_ISSUER", V_STRING, OFF(jwt_issuer), {"clarity", "clarity", "clarity"}, 0, 0, 0, "an issuer name"},
    {"JWT_AUDIENCE",
     V_STRING,
     OFF(jwt_audience),
     {"clarity-api", "clarity-api", "clarity-api"},
     0,
     0,
     0,
     "an audience name"},
    {"ACCESS_TOKEN_TTL_SECONDS",
     V_INT,
     OFF(access_token_ttl_seconds),
     {"3600", "3600", "3600"},
     60,
     86400,
     0,
     "an integer number of seconds from 60 to 86400"},
    {"ENCRYPTION_KEY", V_STRING, OFF(encryption_key), {0}, 0, 0, 1, "base64 of 32 random bytes"},
    {"OIDC_JWKS_URL", V_STRING, OFF(oidc_jwks_url), {0}, 0, 0, 0, "an https URL of a JWK Set or x509 key map"},
    {"OIDC_JWKS_FILE", V_STRING, OFF(oidc_jwks_file), {0}, 0, 0, 0, "a path to a JWK Set or x509 key map"},
    {"OIDC_ISSUERS",
     V_STRING,
     OFF(oidc_issuers),
     {0},
     0,
     0,
     0,
     "a JSON list of {issuer, audiences, client_ids, jwks_url | jwks_file, token_uses, name}"},
    {"OIDC_PROVIDERS",
     V_STRING,
     OFF(oidc_providers),
     {0},
     0,
     0,
     1,
     "a JSON list of {name, label, issuer, client_id, client_secret, scopes, ...} (docs/configuration.md)"},
    {"OIDC_REDIRECT_BASE", V_STRING, OFF(oidc_redirect_base), {0}, 0, 0, 0, "an https URL: this server's origin"},
    {"SMTP_URL", V_STRING, OFF(smtp_url), {0}, 0, 0, 0, "an smtp:// or smtps:// URL"},
    {"SMTP_FROM", V_STRING, OFF(smtp_from), {0}, 0, 0, 0, "an e-mail address"},
    {"SMTP_USERNAME", V_STRING, OFF(smtp_username), {0}, 0, 0, 0, "a user name"},
    {"SMTP_PASSWORD", V_STRING, OFF(smtp_password), {0}, 0, 0, 1, "a password"},
    {"TRUSTED_PROXIES",
     V_STRING,
     OFF(trusted_proxies),
     {"[]", "[]", "[]"},
     0,
     0,
     0,
     "a JSON list of proxy IP addresses"},
    {"LOCKOUT_THRESHOLD", V_INT, OFF(lockout_threshold), {"5", "5", "5"}, 1, 1000, 0, "an integer from 1 to 1000"},
    {"LOCKOUT_WINDOW_SECONDS",
     V_INT,
     OFF(lockout_window_seconds),
     {"900", "900", "900"},
     1,
     86400,
     0,
     "an integer number of seconds from 1 to 86400"},
    {"RAW_UPLOAD_RETENTION_DAYS",
     V_INT,
     OFF(raw_upload_retention_days),
     {"0", "0", "0"},
     0,
     36500,
     0,
     "0 (keep) or a number of days up to 36500"},
    {"SAMPLE_BLOCK_FORMAT",
     V_INT,
     OFF(sample_block_format),
     {"2", "2", "2"},
     1,
     2,
     0,
     "1 (while a release that reads only format 1 still runs) or 2"},
    {"LOCKOUT_SECONDS",
     V_INT,
     OFF(lockout_seconds),
     {"900", "900", "900"},
     1,
     86400,
     0,
     "an integer number of seconds from 1 to 86400"},
    {"RATE_LIMITS",
     V_STRING,
     OFF(rate_limits),
     {"", "", ""},
     0,
     0,
     0,
     "comma-separated CLASS=COUNT/SECONDS, e.g. auth=5/60,upload=60/60"},
    {"DOCS_ENABLED", V_BOOL, OFF(docs_enabled), {"true", "true", "true"}, 0, 0, 0, "true or false"},
    {"WEB_APP_ENABLED", V_BOOL, OFF(web_app_enabled), {"true", "true", "true"}, 0, 0, 0, "true or false"},
    {"DOCS_ASSETS_DIR", V_STRING, OFF(docs_assets_dir), {0}, 0, 0, 0, "a directory holding swagger-ui-dist's files"},
    {"MAX_IMPORT_BYTES",
     V_SIZE,
     OFF(max_import_bytes),
     {"4294967296", "4294967296", "4294967296"},
     1024,
     68719476736LL,
     0,
     "an integer number of bytes from 1024 to 68719476736"},
    {"IMPORT_STALE_SECONDS",
     V_INT,
     OFF(import_stale_seconds),
     {"900", "900", "900"},
     1,
     86400,
     0,
     "an integer number of seconds from 1 to 86400"},
    {"MAX_METRICS_PER_UPLOAD",
     V_INT,
     OFF(max_metrics_per_upload),
     {"1000", "1000", "1000"},
     1,
     100000,
     0,
     "an integer from 1 to 100000"},
    {"PASSWORD_HASH_PROFILE",
     V_STRING,
     OFF(password_hash_profile),
     {"moderate", "moderate", "moderate"},
     0,
     0,
     0,
     "moderate or interactive"},
    /* Analysis and insights pipeline (docs/insights.md). */
    {"WORKER_THREADS", V_INT, OFF(worker_threads), {"1", "1", "1"}, 0, 64, 0, "an integer from 0 to 64"},
    {"WORKER_LEASE_SECONDS",
     V_INT,
     OFF(worker_lease_seconds),
     {"60", "60", "60"},
     1,
     3600,
     0,
     "an integer number of seconds from 1 to 3600"},
    {"PAT_MODEL_PATH", V_STRING, OFF(pat_model_path), {0}, 0, 0, 0, "a path to PAT encoder weights (.h5)"},
    {"PAT_MODEL_SHA256", V_STRING, OFF(pat_model_sha256), {0}, 0, 0, 0, "64 hex digits"},
    {"PAT_STANDARDIZATION", V_STRING, OFF(pat_standardization), {0}, 0, 0, 0, "none or global:MEAN:STD"},
    {"INSIGHT_GENERATOR",
     V_STRING,
     OFF(insight_generator),
     {"builtin", "builtin", "builtin"},
     0,
     0,
     0,
     "builtin, gemini or openai"},
    {"PIPELINE_TEST_FAULT",
     V_STRING,
     OFF(pipeline_test_fault),
     {0},
     0,
     0,
     0,
     "test only: fail_source=NAME and/or delay_ms=N, comma-separated"},
    {"GEMINI_API_KEY", V_STRING, OFF(gemini_api_key), {0}, 0, 0, 1, "a Google AI Studio API key"},
    {"GEMINI_MODEL",
     V_STRING,
     OFF(gemini_model),
     {"gemini-2.0-flash", "gemini-2.0-flash", "gemini-2.0-flash"},
     0,
     0,
     0,
     "a Gemini model name"},
    {"LLM_BASE_URL", V_STRING, OFF(llm_base_url), {0}, 0, 0, 0, "an http(s) URL, e.g. http://localhost:8080/v1"},
    {"LLM_API_KEY", V_STRING, OFF(llm_api_key), {0}, 0, 0, 1, "an API key"},
    {"LLM_MODEL", V_STRING, OFF(llm_model), {0}, 0, 0, 0, "a model name"},
    /* Chat over WebSocket (docs/api.md, "Chat"). */
    {"CHAT_MAX_MESSAGE_BYTES",
     V_SIZE,
     OFF(chat_max_message_bytes),
     {"655360", "655360", "655360"},
     128,
     16777216LL,
     0,
     "an integer number of bytes from 128 to 16777216"},
    {"CHAT_MESSAGES_PER_MINUTE",
     V_INT,
     OFF(chat_messages_per_minute),
     {"60", "60", "60"},
     1,
     100000,
     0,
     "an integer from 1 to 100000"},
    {"CHAT_MAX_CONNECTIONS_PER_USER",
     V_INT,
     OFF(chat_max_connections_per_user),
     {"3", "3", "3"},
     1,
     1000,
     0,
     "an integer from 1 to 1000"},
    {"CHAT_HEARTBEAT_SECONDS",
     V_INT,
     OFF(chat_heartbeat_seconds),
     {"30", "30", "30"},
     1,
     3600,
     0,
     "an integer number of seconds from 1 to 3600"},
    {"CHAT_IDLE_TIMEOUT_SECONDS",
     V_INT,
     OFF(chat_idle_timeout_seconds),
     {"300", "300", "300"},
     1,
     86400,
     0,
     "an integer number of seconds from 1 to 86400"},
    {"CHAT_MAX_DATA_POINTS",
     V_INT,
     OFF(chat_max_data_points),
     {"10080", "10080", "10080"},
     1,
     LIMIT_POINTS_MAX,
     0,
     "an integer from 1 to 20160"},
    {"CHAT_MAX_CONNECTIONS",
     V_INT,
     OFF(chat_max_connections),
     {"16384", "16384", "16384"},
     1,
     1000000,
     0,
     "an integer from 1 to 1000000"},
    /* Operations (docs/operations.md). */
    {"LOG_FORMAT", V_STRING, OFF(log_format), {"json", "json", "json"}, 0, 0, 0, "json or text"},
    {"METRICS_TOKEN", V_STRING, OFF(metrics_token), {0}, 0, 0, 1, "a random bearer token of at least 16 characters"},
    {"HEALTH_CANARY_SECONDS",
     V_INT,
     OFF(health_canary_seconds),
     {"300", "300", "300"},
     10,
     86400,
     0,
     "an integer number of seconds from 10 to 86400"},
};

#define NVARS (sizeof(vars) / sizeof(vars[0]))
_Static_assert(NVARS <= sizeof(((struct config *)0)->source), "source[] too small");

/* A parsed `.env.<ENVIRONMENT>` file: parallel arrays of names and values. */
struct dotenv {
    char **names;
    char **values;
    size_t n;
};

static void dotenv_free(struct dotenv *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->names[i]);
        free(d->values[i]);
    }
    free(d->names);
    free(d->values);
    memset(d, 0, sizeof(*d));
}

static const char *dotenv_get(const struct dotenv *d, const char *name)
{
    /* Last assignment wins, as in a shell. */
    for (size_t i = d->n; i-- > 0;)
        if (strcmp(d->names[i], name) == 0)
            return d->values[i];
    return NULL;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/*
 * Parse KEY=VALUE lines. Blank lines and lines starting with '#' are skipped;
 * an optional leading "export " is allowed; a value wrapped in matching single
 * or double quotes is unwrapped (no escape processing). A missing file is not
 * an error.
 */
static int dotenv_load(struct dotenv *d, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        return fail(err, errlen, "%s: cannot read: %s", path, strerror(errno));
    }
    char line[8192];
    int lineno = 0;
    int rc = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (eq == NULL || eq == s) {
            rc = fail(err, errlen, "%s:%d: expected NAME=value", path, lineno);
            break;
        }
        *eq = '\0';
        char *name = trim(s);
        char *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && (value[0] == '"' || value[0] == '\'') && value[vl - 1] == value[0]) {
            value[vl - 1] = '\0';
            value++;
        }
        char **nn = realloc(d->names, (d->n + 1) * sizeof(char *));
        if (nn != NULL)
            d->names = nn;
        char **nv = realloc(d->values, (d->n + 1) * sizeof(char *));
        if (nv != NULL)
            d->values = nv;
        char *dn = strdup(name), *dv = strdup(value);
        if (nn == NULL || nv == NULL || dn == NULL || dv == NULL) {
            free(dn);
            free(dv);
            rc = fail(err, errlen, "out of memory reading %s", path);
            break;
        }
        d->names[d->n] = dn;
        d->values[d->n] = dv;
        d->n++;
    }
    fclose(f);
    return rc;
}

/* Read a secret file: the whole content, one trailing newline removed. */
static char *read_secret_file(const char *var, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail(err, errlen, "%s_FILE: cannot read %s: %s", var, path, strerror(errno));
        return NULL;
    }
    struct buf b;
    buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    int bad = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(&b, chunk, n) != 0) {
            bad = 1;
            break;
        }
    fclose(f);
    if (bad) {
        buf_free(&b);
        fail(err, errlen, "%s_FILE: %s is larger than 1 MiB", var, path);
        return NULL;
    }
    if (b.len > 0 && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    if (b.len > 0 && b.data[b.len - 1] == '\r')
        b.data[--b.len] = '\0';
    char *s = buf_steal(&b, NULL);
    if (s == NULL)
        fail(err, errlen, "out of memory");
    return s;
}

static const char *real_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

/*
 * Resolve the raw text of one variable: highest-priority source wins.
 * *owned receives a heap string when the value came from a file (caller frees).
 */
static int resolve(const struct var *v, enum config_env env, const struct dotenv *d, config_getenv_fn ge, void *ctx,
                   const char **out, char **owned, unsigned char *src, char *err, size_t errlen)
{
    char fname[96];
    snprintf(fname, sizeof(fname), "%s_FILE", v->name);
    *owned = NULL;

    struct {
        const char *val, *file;
        unsigned char src_val, src_file;
    } layers[2] = {
        {ge(ctx, v->name), v->secret ? ge(ctx, fname) : NULL, SRC_ENV, SRC_ENV_FILE},
        {dotenv_get(d, v->name), v->secret ? dotenv_get(d, fname) : NULL, SRC_DOTENV, SRC_DOTENV_FILE},
    };
    for (int i = 0; i < 2; i++) {
        if (layers[i].val != NULL && layers[i].file != NULL)
            return fail(err, errlen, "%s: set either %s or %s, not both", v->name, v->name, fname);
        if (layers[i].file != NULL) {
            *owned = read_secret_file(v->name, layers[i].file, err, errlen);
            if (*owned == NULL)
                return -1;
            *out = *owned;
            *src = layers[i].src_file;
            return 0;
        }
        if (layers[i].val != NULL) {
            *out = layers[i].val;
            *src = layers[i].src_val;
            return 0;
        }
    }
    *out = v->def[env];
    *src = SRC_DEFAULT;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_ll(const char *s, long long min, long long max, long long *out)
{
    if (*s == '\0')
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_env(const char *s, enum config_env *out)
{
    static const char *const names[] = {"development", "staging", "production"};
    for (int i = 0; i < 3; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum config_env)i;
            return 0;
        }
    return -1;
}

/* CORS_ORIGINS is a JSON list of strings, as the deployment guide writes it. */
static int parse_cors(struct config *cfg, const char *s, char *err, size_t errlen)
{
    const struct var *v = NULL;
    for (size_t i = 0; i < NVARS; i++)
        if (vars[i].kind == V_CORS)
            v = &vars[i];
    json_error_t je;
    json_t *arr = json_parse_str(s, JSON_REJECT_DUPLICATES, &je);
    if (arr == NULL || !json_is_array(arr)) {
        json_decref(arr);
        return fail(err, errlen, "CORS_ORIGINS: expected %s", v->form);
    }
    size_t n = json_array_size(arr);
    if (n > CONFIG_MAX_CORS_ORIGINS) {
        json_decref(arr);
        return fail(err, errlen, "CORS_ORIGINS: at most %d origins", CONFIG_MAX_CORS_ORIGINS);
    }
    for (size_t i = 0; i < n; i++) {
        const char *o = json_string_value(json_array_get(arr, i));
        int ok = o != NULL && (strcmp(o, "*") == 0 || strncmp(o, "http://", 7) == 0 || strncmp(o, "https://", 8) == 0);
        /* An origin is scheme://host[:port]: no path, no trailing slash. */
        if (ok && strcmp(o, "*") != 0) {
            const char *rest = strstr(o, "://") + 3;
            ok = *rest != '\0' && strchr(rest, '/') == NULL && strchr(rest, ' ') == NULL;
        }
        if (!ok) {
            json_decref(arr);
            return fail(err, errlen,
                        "CORS_ORIGINS: item %zu is not an origin (\"*\" or scheme://host[:port]); expected %s", i,
                        v->form);
        }
        cfg->cors_origins[i] = strdup(o);
        if (cfg->cors_origins[i] == NULL) {
            json_decref(arr);
            return fail(err, errlen, "out of memory");
        }
        cfg->n_cors_origins = i + 1;
    }
    json_decref(arr);
    return 0;
}

static int parse_value(struct config *cfg, const struct var *v, const char *s, char *err, size_t errlen)
{
    char *base = (char *)cfg;
    long long ll;
    switch (v->kind) {
    case V_ENV:
        if (parse_env(s, (enum config_env *)(base + v->offset)) != 0)
            goto bad;
        return 0;
    case V_STRING: {
        char *dup = strdup(s);
        if (dup == NULL)
            return fail(err, errlen, "out of memory");
        *(char **)(base + v->offset) = dup;
        return 0;
    }
    case V_BOOL:
        if (parse_bool(s, (int *)(base + v->offset)) != 0)
            goto bad;
        return 0;
    case V_INT:
        if (parse_ll(s, v->min, v->max, &ll) != 0)
            goto bad;
        *(int *)(base + v->offset) = (int)ll;
        return 0;
    case V_SIZE:
        if (parse_ll(s, v->min, v->max, &ll) != 0)
            goto bad;
        *(size_t *)(base + v->offset) = (size_t)ll;
        return 0;
    case V_LOGLEVEL:
        if (log_level_parse(s, (enum log_level *)(base + v->offset)) != 0)
            goto bad;
        return 0;
    case V_CORS: return parse_cors(cfg, s, err, errlen);
    }
bad:
    /* Never echo a secret's value back. */
    if (v->secret)
        return fail(err, errlen, "%s: invalid value; expected %s", v->name, v->form);
    return fail(err, errlen, "%s: invalid value \"%.64s\"; expected %s", v->name, s, v->form);
}

int config_rate_limits_parse(const char *spec, struct config_rate out[CONFIG_RATE_CLASSES], char *err, size_t errlen)
{
    static const char *const names[CONFIG_RATE_CLASSES] = {"none", "api", "auth", "upload", "insights", "chat"};
    /* Defaults from the identity issue: auth 5/min, upload 60/min,
     * insights 20/h, chat 30/min, other API 100/min. */
    static const struct config_rate defaults[CONFIG_RATE_CLASSES] = {{0, 0},   {100, 60},  {5, 60},
                                                                     {60, 60}, {20, 3600}, {30, 60}};
    memcpy(out, defaults, sizeof(defaults));
    if (spec == NULL || *spec == '\0')
        return 0;
    if (strlen(spec) >= 512)
        return fail(err, errlen, "RATE_LIMITS: longer than 511 characters");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char name[32];
        int count = 0, period = 0, used = 0;
        if (sscanf(item, " %31[a-z] = %d / %d %n", name, &count, &period, &used) != 3 || item[used] != '\0' ||
            count < 1 || count > 1000000 || period < 1 || period > 86400)
            return fail(err, errlen,
                        "RATE_LIMITS: \"%.40s\" is not CLASS=COUNT/SECONDS (COUNT 1..1000000, "
                        "SECONDS 1..86400)",
                        item);
        int found = 0;
        for (int c = 1; c < CONFIG_RATE_CLASSES; c++)
            if (strcmp(name, names[c]) == 0) {
                out[c] = (struct config_rate){count, period};
                found = 1;
            }
        if (!found)
            return fail(err, errlen, "RATE_LIMITS: unknown class \"%s\" (api, auth, upload, insights, chat)", name);
    }
    return 0;
}

int config_proxies_parse(const char *json, char out[][64], int *n, char *err, size_t errlen)
{
    json_error_t je;
    json_t *list = json_parse_str(json != NULL ? json : "[]", 0, &je);
    *n = 0;
    if (!json_is_array(list) || json_array_size(list) > CONFIG_MAX_PROXIES) {
        json_decref(list);
        return fail(err, errlen, "TRUSTED_PROXIES: expected a JSON list of at most %d IP addresses",
                    CONFIG_MAX_PROXIES);
    }
    size_t i;
    json_t *v;
    json_array_foreach (list, i, v) {
        const char *ip = json_string_value(v);
        unsigned char tmp[16];
        if (ip == NULL || strlen(ip) >= 64 || (inet_pton(AF_INET, ip, tmp) != 1 && inet_pton(AF_INET6, ip, tmp) != 1)) {
            json_decref(list);
            return fail(err, errlen, "TRUSTED_PROXIES: item %zu is not an IP address", i);
        }
        if (out != NULL)
            snprintf(out[*n], 64, "%s", ip);
        (*n)++;
    }
    json_decref(list);
    return 0;
}

int config_pat_std_parse(const char *s, int *global, double *mean, double *sd, char *err, size_t errlen)
{
    *global = 0;
    *mean = 0;
    *sd = 1;
    if (s != NULL && strcmp(s, "none") == 0)
        return 0;
    if (s == NULL || strncmp(s, "global:", 7) != 0)
        return fail(err, errlen, "PAT_STANDARDIZATION: workers take none or global:MEAN:STD");
    char *end;
    errno = 0;
    double m = strtod(s + 7, &end);
    int ok = end != s + 7 && *end == ':';
    double d = ok ? strtod(end + 1, &end) : -1;
    if (!ok || errno != 0 || *end != '\0' || !(d > 0) || !(m == m) || m > 1e12 || m < -1e12 || d > 1e12)
        return fail(err, errlen, "PAT_STANDARDIZATION: expected global:MEAN:STD with STD > 0");
    *global = 1;
    *mean = m;
    *sd = d;
    return 0;
}

int config_test_fault_parse(const char *spec, char *fail_source, size_t fail_len, long long *delay_ms, char *err,
                            size_t errlen)
{
    fail_source[0] = '\0';
    *delay_ms = 0;
    if (spec == NULL || spec[0] == '\0')
        return 0;
    char copy[512];
    if (strlen(spec) >= sizeof(copy))
        return fail(err, errlen, "PIPELINE_TEST_FAULT is too long");
    snprintf(copy, sizeof(copy), "%s", spec);
    char *save = NULL;
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        if (strncmp(item, "fail_source=", 12) == 0 && item[12] != '\0' && strlen(item + 12) < fail_len) {
            snprintf(fail_source, fail_len, "%s", item + 12);
        } else if (strncmp(item, "delay_ms=", 9) == 0) {
            char *end;
            errno = 0;
            long long v = strtoll(item + 9, &end, 10);
            if (errno != 0 || end == item + 9 || *end != '\0' || v < 0 || v > 600000)
                return fail(err, errlen, "PIPELINE_TEST_FAULT: delay_ms takes 0 to 600000");
            *delay_ms = v;
        } else {
            return fail(err, errlen, "PIPELINE_TEST_FAULT: expected fail_source=NAME or delay_ms=N, not '%.40s'", item);
        }
    }
    return 0;
}

static int is_hex64(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (!isxdigit((unsigned char)s[n]))
            return 0;
    return n == 64;
}

static int set_nonempty(const char *s) { return s != NULL && s[0] != '\0'; }

/* The structured variables, each by its one parser (see config.h). */
static int validate_structured(const struct config *cfg, char *err, size_t errlen)
{
    struct config_rate rates[CONFIG_RATE_CLASSES];
    char fs[128];
    long long delay;
    int n, global;
    double mean, sd;
    unsigned char addr[16];

    if (inet_pton(AF_INET, cfg->host, addr) != 1 && inet_pton(AF_INET6, cfg->host, addr) != 1)
        return fail(err, errlen, "HOST: invalid value \"%.64s\"; expected an IP address (0.0.0.0, 127.0.0.1, ::)",
                    cfg->host);
    if (config_rate_limits_parse(cfg->rate_limits, rates, err, errlen) != 0 ||
        config_proxies_parse(cfg->trusted_proxies, NULL, &n, err, errlen) != 0 ||
        config_test_fault_parse(cfg->pipeline_test_fault, fs, sizeof(fs), &delay, err, errlen) != 0)
        return -1;
    if ((fs[0] != '\0' || delay > 0) && cfg->environment == CONFIG_ENV_PRODUCTION)
        return fail(err, errlen, "PIPELINE_TEST_FAULT: for tests only; refused in production");
    if (strcmp(cfg->log_format, "json") != 0 && strcmp(cfg->log_format, "text") != 0)
        return fail(err, errlen, "LOG_FORMAT: invalid value \"%.32s\"; expected json or text", cfg->log_format);
    if (cfg->metrics_token != NULL && strlen(cfg->metrics_token) < 16)
        return fail(err, errlen, "METRICS_TOKEN: expected a random bearer token of at least 16 characters");

    /* The insight generator and what each one needs (pipeline/llm.h). */
    const char *g = cfg->insight_generator;
    if (strcmp(g, "gemini") == 0) {
        if (!set_nonempty(cfg->gemini_api_key))
            return fail(err, errlen, "GEMINI_API_KEY: required when INSIGHT_GENERATOR=gemini (or GEMINI_API_KEY_FILE)");
        if (!set_nonempty(cfg->gemini_model))
            return fail(err, errlen, "GEMINI_MODEL: required when INSIGHT_GENERATOR=gemini");
    } else if (strcmp(g, "openai") == 0) {
        if (!set_nonempty(cfg->llm_api_key))
            return fail(err, errlen, "LLM_API_KEY: required when INSIGHT_GENERATOR=openai (or LLM_API_KEY_FILE)");
        if (!set_nonempty(cfg->llm_model))
            return fail(err, errlen, "LLM_MODEL: required when INSIGHT_GENERATOR=openai");
        if (!set_nonempty(cfg->llm_base_url))
            return fail(err, errlen, "LLM_BASE_URL: required when INSIGHT_GENERATOR=openai");
    } else if (strcmp(g, "builtin") != 0) {
        return fail(err, errlen, "INSIGHT_GENERATOR: invalid value \"%.32s\"; expected builtin, gemini or openai", g);
    }
    if (set_nonempty(cfg->llm_base_url) && strncmp(cfg->llm_base_url, "http://", 7) != 0 &&
        strncmp(cfg->llm_base_url, "https://", 8) != 0)
        return fail(err, errlen, "LLM_BASE_URL: invalid value \"%.64s\"; expected an http(s) URL", cfg->llm_base_url);

    /* PAT: the model file, its checksum and the input standardization. */
    if (cfg->pat_model_sha256 != NULL && !is_hex64(cfg->pat_model_sha256))
        return fail(err, errlen, "PAT_MODEL_SHA256: invalid value; expected 64 hex digits");
    if (cfg->pat_standardization != NULL &&
        config_pat_std_parse(cfg->pat_standardization, &global, &mean, &sd, err, errlen) != 0)
        return -1;
    if (set_nonempty(cfg->pat_model_path)) {
        if (access(cfg->pat_model_path, R_OK) != 0)
            return fail(err, errlen, "PAT_MODEL_PATH: cannot read %.200s: %s", cfg->pat_model_path, strerror(errno));
        if (!set_nonempty(cfg->pat_standardization))
            return fail(err, errlen,
                        "PAT_STANDARDIZATION: required when PAT_MODEL_PATH is set (none or "
                        "global:MEAN:STD; see docs/pat.md)");
    }
    return 0;
}

/* Rules that depend on several variables, and production's refusals. */
static int validate(const struct config *cfg, char *err, size_t errlen)
{
    if (strncmp(cfg->database_url, "sqlite:", 7) != 0 && strncmp(cfg->database_url, "postgres://", 11) != 0 &&
        strncmp(cfg->database_url, "postgresql://", 13) != 0)
        return fail(err, errlen, "DATABASE_URL: expected sqlite:PATH or postgres://user:password@host:port/db");
    if (strncmp(cfg->database_url, "sqlite:", 7) == 0 && cfg->database_url[7] == '\0')
        return fail(err, errlen, "DATABASE_URL: sqlite: needs a path, e.g. sqlite:var/clarity.db");
    if (strcmp(cfg->password_hash_profile, "moderate") != 0 && strcmp(cfg->password_hash_profile, "interactive") != 0)
        return fail(err, errlen, "PASSWORD_HASH_PROFILE: invalid value \"%.32s\"; expected moderate or interactive",
                    cfg->password_hash_profile);
    if (cfg->host[0] == '\0')
        return fail(err, errlen, "HOST: expected an IP address");
    /* A health_insight of CHAT_MAX_DATA_POINTS points must fit in one chat
     * message (docs/api.md, "Limits and close codes"). */
    if ((size_t)cfg->chat_max_data_points * CONFIG_CHAT_POINT_BYTES + CONFIG_CHAT_ENVELOPE_BYTES >
        cfg->chat_max_message_bytes)
        return fail(err, errlen,
                    "CHAT_MAX_MESSAGE_BYTES: %zu bytes cannot hold CHAT_MAX_DATA_POINTS=%d points; expected at "
                    "least %zu (%d bytes a point + %d)",
                    cfg->chat_max_message_bytes, cfg->chat_max_data_points,
                    (size_t)cfg->chat_max_data_points * CONFIG_CHAT_POINT_BYTES + CONFIG_CHAT_ENVELOPE_BYTES,
                    CONFIG_CHAT_POINT_BYTES, CONFIG_CHAT_ENVELOPE_BYTES);
    if (cfg->environment == CONFIG_ENV_PRODUCTION) {
        if (cfg->debug)
            return fail(err, errlen, "DEBUG: must be false in production");
        for (size_t i = 0; i < cfg->n_cors_origins; i++)
            if (strcmp(cfg->cors_origins[i], "*") == 0)
                return fail(err, errlen, "CORS_ORIGINS: \"*\" is not allowed in production; list the app's origins");
    }
    if (cfg->environment != CONFIG_ENV_DEVELOPMENT) {
        /* Development generates and persists local keys (with a warning);
         * anywhere else a missing key is a deployment mistake. */
        if (cfg->jwt_private_key == NULL || cfg->jwt_private_key[0] == '\0')
            return fail(err, errlen, "JWT_PRIVATE_KEY: required in %s (or JWT_PRIVATE_KEY_FILE); expected %s",
                        config_env_name(cfg->environment), "a PEM-encoded EC P-256 private key");
        if (cfg->encryption_key == NULL || cfg->encryption_key[0] == '\0')
            return fail(err, errlen, "ENCRYPTION_KEY: required in %s (or ENCRYPTION_KEY_FILE); expected %s",
                        config_env_name(cfg->environment), "base64 of 32 random bytes");
    }
    return validate_structured(cfg, err, errlen);
}

int config_load(struct config *cfg, config_getenv_fn ge, void *ctx, const char *dir, char *err, size_t errlen)
{
    struct dotenv d = {0};
    memset(cfg, 0, sizeof(*cfg));
    if (ge == NULL)
        ge = real_getenv;

    /* ENVIRONMENT picks the .env file, so only the process environment sets it. */
    enum config_env env = CONFIG_ENV_DEVELOPMENT;
    const char *e = ge(ctx, "ENVIRONMENT");
    if (e != NULL && parse_env(e, &env) != 0)
        return fail(err, errlen, "ENVIRONMENT: invalid value \"%.64s\"; expected %s", e, vars[0].form);

    char path[4096];
    snprintf(path, sizeof(path), "%s%s.env.%s", dir != NULL ? dir : "", dir != NULL ? "/" : "", config_env_name(env));
    if (dotenv_load(&d, path, err, errlen) != 0)
        goto fail;

    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        const char *raw = NULL;
        char *owned = NULL;
        if (v->kind == V_ENV) {
            cfg->environment = env;
            cfg->source[i] = e != NULL ? SRC_ENV : SRC_DEFAULT;
            continue;
        }
        if (resolve(v, env, &d, ge, ctx, &raw, &owned, &cfg->source[i], err, errlen) != 0)
            goto fail;
        if (raw == NULL && v->kind == V_INT && strcmp(v->name, "HTTP_THREADS") == 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            cfg->http_threads = n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
            continue;
        }
        if (raw == NULL) /* an optional string left unset */
            continue;
        int rc = parse_value(cfg, v, raw, err, errlen);
        free(owned);
        if (rc != 0)
            goto fail;
    }
    if (validate(cfg, err, errlen) != 0)
        goto fail;
    /* DEBUG=true in development means debug logging unless LOG_LEVEL says
     * otherwise (and verbose problem details, api/common.c). */
    for (size_t i = 0; i < NVARS; i++)
        if (vars[i].kind == V_LOGLEVEL && cfg->source[i] == SRC_DEFAULT && cfg->debug &&
            cfg->environment == CONFIG_ENV_DEVELOPMENT)
            cfg->log_level = LOG_DEBUG;
    dotenv_free(&d);
    return 0;
fail:
    dotenv_free(&d);
    config_free(cfg);
    return -1;
}

void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NVARS; i++)
        if (vars[i].kind == V_STRING) {
            char **p = (char **)((char *)cfg + vars[i].offset);
            free(*p);
            *p = NULL;
        }
    for (size_t i = 0; i < cfg->n_cors_origins; i++)
        free(cfg->cors_origins[i]);
    cfg->n_cors_origins = 0;
}

const char *config_env_name(enum config_env env)
{
    switch (env) {
    case CONFIG_ENV_STAGING: return "staging";
    case CONFIG_ENV_PRODUCTION: return "production";
    default: return "development";
    }
}

void config_redact_url(const char *url, char *out, size_t outlen)
{
    /* A URL only when it starts with a scheme (RFC 3986 §3.1): a secret that
     * merely contains "://" (OIDC_PROVIDERS' JSON with its issuers and client
     * secrets, a key) is opaque and masked whole. */
    const char *scheme = strstr(url, "://");
    int url_like = scheme != NULL && scheme > url && isalpha((unsigned char)url[0]);
    for (const char *c = url; url_like && c < scheme; c++)
        url_like = isalnum((unsigned char)*c) || *c == '+' || *c == '-' || *c == '.';
    if (!url_like) {
        /* sqlite:PATH carries no secret; anything else opaque is masked. */
        snprintf(out, outlen, "%s", strncmp(url, "sqlite:", 7) == 0 ? url : (*url ? "***" : ""));
        return;
    }
    /* userinfo "user:password@" (RFC 3986 §3.2.1) loses its password. */
    const char *auth_end = scheme + 3 + strcspn(scheme + 3, "/?#");
    const char *at = memchr(scheme + 3, '@', (size_t)(auth_end - (scheme + 3)));
    const char *colon = at != NULL ? memchr(scheme + 3, ':', (size_t)(at - (scheme + 3))) : NULL;
    if (colon != NULL)
        snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(out, outlen, "%s", url);
    /* libpq also takes the password as a query parameter. */
    char *q = strstr(out, "password=");
    if (q != NULL && q > out && (q[-1] == '?' || q[-1] == '&')) { /* at the start: nothing before it to read */
        q += 9;
        char *end = strchr(q, '&');
        char tail[1024];
        snprintf(tail, sizeof(tail), "%s", end != NULL ? end : "");
        snprintf(q, outlen - (size_t)(q - out), "***%s", tail);
    }
}

void config_print(const struct config *cfg, int fd)
{
    struct buf b;
    buf_init(&b, 1 << 20);
    const char *base = (const char *)cfg;
    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        char tmp[1024];
        const char *val = tmp;
        switch (v->kind) {
        case V_ENV: val = config_env_name(cfg->environment); break;
        case V_BOOL: val = *(const int *)(base + v->offset) ? "true" : "false"; break;
        case V_INT: snprintf(tmp, sizeof(tmp), "%d", *(const int *)(base + v->offset)); break;
        case V_SIZE: snprintf(tmp, sizeof(tmp), "%zu", *(const size_t *)(base + v->offset)); break;
        case V_LOGLEVEL: val = log_level_name(*(const enum log_level *)(base + v->offset)); break;
        case V_CORS: {
            json_t *arr = json_array();
            for (size_t k = 0; k < cfg->n_cors_origins; k++)
                json_array_append_new(arr, json_string(cfg->cors_origins[k]));
            char *s = json_dumps(arr, JSON_COMPACT);
            snprintf(tmp, sizeof(tmp), "%s", s != NULL ? s : "[]");
            free(s);
            json_decref(arr);
            break;
        }
        case V_STRING: {
            const char *s = *(char *const *)(base + v->offset);
            if (s == NULL)
                val = "(unset)";
            else if (v->secret)
                config_redact_url(s, tmp, sizeof(tmp));
            else
                val = s;
            break;
        }
        }
        buf_printf(&b, "%s=%s  (%s)\n", v->name, val, source_names[cfg->source[i]]);
    }
    if (b.data != NULL) {
        ssize_t off = 0;
        while ((size_t)off < b.len) {
            ssize_t n = write(fd, b.data + off, b.len - (size_t)off);
            if (n <= 0)
                break;
            off += n;
        }
    }
    buf_free(&b);
}

int config_edit_distance(const char *a, const char *b, int cap)
{
    size_t la = strlen(a), lb = strlen(b);
    if (cap < 0 || la > 63 || lb > 63)
        return cap + 1;
    if ((la > lb ? la - lb : lb - la) > (size_t)cap)
        return cap + 1;
    /* Only the band |i - j| <= cap is computed (Ukkonen, 1985): a path
     * that leaves it costs more than cap. Cells just outside the band read
     * as cap + 1, every value is clamped there, and a row whose minimum
     * passes cap ends the search (no later row can come back under it,
     * transpositions included). */
    const int big = cap + 1;
    const size_t w = (size_t)cap;
    int d[64][64];
    for (size_t j = 0; j <= lb && j <= w + 1; j++)
        d[0][j] = j <= w ? (int)j : big;
    for (size_t i = 1; i <= la; i++) {
        size_t lo = i > w ? i - w : 1, hi = i + w < lb ? i + w : lb;
        d[i][lo - 1] = lo - 1 == 0 && i <= w ? (int)i : big;
        if (hi >= i - 1 + w + 1 && hi <= lb)
            d[i - 1][hi] = big; /* just outside the previous row's band */
        int row_min = d[i][lo - 1];
        for (size_t j = lo; j <= hi; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v < big ? v : big;
            if (d[i][j] < row_min)
                row_min = d[i][j];
        }
        if (row_min > cap)
            return big;
    }
    return d[la][lb] > cap ? big : d[la][lb];
}

/* Names Clarity reads outside the table (systemd, restarts, the smoke test)
 * and ones the platforms set that sit close to Clarity's. */
static const char *const other_names[] = {"LISTEN_FDS",  "LISTEN_PID", "LISTEN_FDNAMES", "CLARITY_READY_FD",
                                          "SMOKE_TOKEN", "K_SERVICE",  "K_REVISION",     "K_CONFIGURATION"};

/* Names from the deployment guide Clarity does not read, and why. */
static const struct {
    const char *name; /* a trailing '*' matches a prefix */
    const char *hint;
} explained[] = {
    {"FIRESTORE_*", "not read: Clarity keeps its data in DATABASE_URL (PostgreSQL or SQLite), not Firestore"},
    {"FIREBASE_DATABASE_URL", "not read: Clarity uses no Firebase Realtime Database; data lives in DATABASE_URL"},
    {"CLOUD_RUN_REGION", "not read: the region is GOOGLE_CLOUD_REGION"},
    {"GOOGLE_APPLICATION_CREDENTIALS", NULL}, /* the platform's, not a suspect */
};

static const char *const prefixes[] = {"OIDC_",     "JWT_",     "PAT_",     "CHAT_",    "LLM_",        "GEMINI_",
                                       "FIREBASE_", "LOCKOUT_", "WORKER_",  "METRICS_", "DATABASE_",   "ENCRYPTION_",
                                       "CORS_",     "RATE_",    "INSIGHT_", "VERTEX_",  "ACTIGRAPHY_", "CLOUD_RUN_",
                                       "DOCS_",     "HEALTH_",  "LOG_"};

static int known_name(const char *name)
{
    char fname[96];
    for (size_t i = 0; i < NVARS; i++) {
        if (strcmp(vars[i].name, name) == 0)
            return 1;
        snprintf(fname, sizeof(fname), "%s_FILE", vars[i].name);
        if (vars[i].secret && strcmp(fname, name) == 0)
            return 1;
    }
    for (size_t i = 0; i < sizeof(other_names) / sizeof(other_names[0]); i++)
        if (strcmp(other_names[i], name) == 0)
            return 1;
    return 0;
}

/* Why name looks like Clarity's, into hint; 0 when it does not. */
static int suspect_hint(const char *name, char *hint, size_t hintlen)
{
    size_t len = strlen(name);
    if (len < 4 || len > 63 || known_name(name))
        return 0;
    for (size_t i = 0; i < sizeof(explained) / sizeof(explained[0]); i++) {
        size_t n = strlen(explained[i].name);
        int match = explained[i].name[n - 1] == '*' ? strncmp(name, explained[i].name, n - 1) == 0
                                                    : strcmp(name, explained[i].name) == 0;
        if (match) {
            if (explained[i].hint == NULL)
                return 0;
            snprintf(hint, hintlen, "%s", explained[i].hint);
            return 1;
        }
    }
    if (len > 5 && strcmp(name + len - 5, "_FILE") == 0) {
        char base[64];
        snprintf(base, sizeof(base), "%.*s", (int)(len - 5), name);
        for (size_t i = 0; i < NVARS; i++)
            if (strcmp(vars[i].name, base) == 0) {
                snprintf(hint, hintlen, "not read: only secrets can be given as NAME_FILE; set %s", base);
                return 1;
            }
    }
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < NVARS; i++) {
        int cap = strlen(vars[i].name) <= 7 ? 1 : 2;
        int d = config_edit_distance(name, vars[i].name, cap);
        if (d <= cap && d < best_d) {
            best = vars[i].name;
            best_d = d;
        }
    }
    if (best != NULL) {
        snprintf(hint, hintlen, "not read: did you mean %s?", best);
        return 1;
    }
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(name, prefixes[i], strlen(prefixes[i])) == 0) {
            snprintf(hint, hintlen, "not read: no Clarity variable has this name (see docs/configuration.md)");
            return 1;
        }
    return 0;
}

extern char **environ;

size_t config_suspects(const struct config *cfg, char *const *envp, const char *dir, struct config_suspect *out,
                       size_t max)
{
    size_t found = 0;
    char hint[192];
    if (envp == NULL)
        envp = environ;
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        char name[64];
        size_t n = strcspn(envp[i], "=");
        if (n == 0 || n >= sizeof(name))
            continue;
        memcpy(name, envp[i], n);
        name[n] = '\0';
        if (suspect_hint(name, hint, sizeof(hint))) {
            if (found < max) {
                snprintf(out[found].name, sizeof(out[found].name), "%s", name);
                snprintf(out[found].hint, sizeof(out[found].hint), "%s", hint);
            }
            found++;
        }
    }
    struct dotenv d = {0};
    char path[4096], err[256];
    snprintf(path, sizeof(path), "%s%s.env.%s", dir != NULL ? dir : "", dir != NULL ? "/" : "",
             config_env_name(cfg->environment));
    if (dotenv_load(&d, path, err, sizeof(err)) == 0)
        for (size_t i = 0; i < d.n; i++)
            if (suspect_hint(d.names[i], hint, sizeof(hint))) {
                if (found < max) {
                    snprintf(out[found].name, sizeof(out[found].name), "%s", d.names[i]);
                    snprintf(out[found].hint, sizeof(out[found].hint), "%.120s (in %.60s)", hint, path);
                }
                found++;
            }
    dotenv_free(&d);
    return found;
}
