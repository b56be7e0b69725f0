/*
 * config_test.c — configuration sources, priorities and every rejection path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"

/* A fake environment: NULL-terminated name/value pairs. */
struct fake_env {
    const char *kv[32];
};

static const char *fake_getenv(void *ctx, const char *name)
{
    struct fake_env *e = ctx;
    for (int i = 0; e->kv[i] != NULL; i += 2)
        if (strcmp(e->kv[i], name) == 0)
            return e->kv[i + 1];
    return NULL;
}

static char tmpdir[512];

static int setup_dir(void **state)
{
    (void)state;
    const char *base = getenv("CLARITY_TEST_TMP");
    snprintf(tmpdir, sizeof(tmpdir), "%s/config_test_XXXXXX", base != NULL ? base : "/tmp");
    mkdir(base != NULL ? base : "/tmp", 0700);
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static void write_file(const char *name, const char *content)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void remove_file(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    unlink(path);
}

/* Load with a fake environment; returns rc and leaves the error in err. */
static int load(struct config *cfg, struct fake_env *env, char *err, size_t errlen)
{
    err[0] = '\0';
    return config_load(cfg, fake_getenv, env, tmpdir, err, errlen);
}

static void expect_error(struct fake_env *env, const char *needle)
{
    struct config cfg;
    char err[512];
    int rc = load(&cfg, env, err, sizeof(err));
    if (rc == 0 || strstr(err, needle) == NULL)
        fail_msg("expected error containing \"%s\", got rc=%d err=\"%s\"", needle, rc, err);
}

static void test_defaults_development(void **state)
{
    (void)state;
    struct fake_env env = {{NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.environment, CONFIG_ENV_DEVELOPMENT);
    assert_int_equal(cfg.port, 8000);
    assert_int_equal(cfg.debug, 0);
    assert_int_equal(cfg.shutdown_grace_seconds, 10);
    assert_int_equal(cfg.max_request_bytes, 10u * 1024 * 1024);
    assert_true(cfg.http_threads >= 1);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_string_equal(cfg.database_url, "sqlite:var/clarity.db");
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_null(cfg.google_cloud_project);
    config_free(&cfg);
}

#define KEYS "JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----", "ENCRYPTION_KEY", "AAAA"

static void test_production_defaults_listen_everywhere(void **state)
{
    (void)state;
    struct fake_env env = {{"ENVIRONMENT", "production", KEYS, NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.environment, CONFIG_ENV_PRODUCTION);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.n_cors_origins, 0);
    config_free(&cfg);
}

static void test_environment_values(void **state)
{
    (void)state;
    struct fake_env env = {{"ENVIRONMENT", "staging", KEYS, "DEBUG", "yes", "LOG_LEVEL", "warning", "PORT", "9090",
                            "CORS_ORIGINS", "[\"https://app.example.com\", \"http://localhost:3000\"]", "HTTP_THREADS",
                            "7", "GOOGLE_CLOUD_PROJECT", "clarity-staging", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.environment, CONFIG_ENV_STAGING);
    assert_int_equal(cfg.debug, 1);
    assert_int_equal(cfg.log_level, LOG_WARNING);
    assert_int_equal(cfg.port, 9090);
    assert_int_equal(cfg.http_threads, 7);
    assert_int_equal(cfg.n_cors_origins, 2);
    assert_string_equal(cfg.cors_origins[0], "https://app.example.com");
    assert_string_equal(cfg.google_cloud_project, "clarity-staging");
    config_free(&cfg);
}

static void test_dotenv_priority(void **state)
{
    (void)state;
    write_file(".env.development", "# comment\n\nexport PORT=7000\nLOG_LEVEL=\"ERROR\"\nHOST='::1'\n"
                                   "GOOGLE_CLOUD_PROJECT = from-file \n");
    struct fake_env env = {{"PORT", "7100", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 7100);           /* process environment wins */
    assert_int_equal(cfg.log_level, LOG_ERROR); /* .env beats default */
    assert_string_equal(cfg.host, "::1");       /* quotes removed */
    assert_string_equal(cfg.google_cloud_project, "from-file");
    config_free(&cfg);
    remove_file(".env.development");
}

static void test_dotenv_follows_environment(void **state)
{
    (void)state;
    write_file(".env.staging", "PORT=7200\n");
    write_file(".env.development", "PORT=7300\n");
    struct fake_env env = {{"ENVIRONMENT", "staging", KEYS, NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 7200);
    config_free(&cfg);
    remove_file(".env.staging");
    remove_file(".env.development");
}

static void test_dotenv_malformed(void **state)
{
    (void)state;
    write_file(".env.development", "PORT=7000\nthis line has no equals\n");
    struct fake_env env = {{NULL}};
    expect_error(&env, ".env.development:2: expected NAME=value");
    remove_file(".env.development");
}

static void test_secret_file(void **state)
{
    (void)state;
    write_file("db_url", "postgres://clarity:s3cret@db:5432/clarity\n");
    char path[1024];
    snprintf(path, sizeof(path), "%s/db_url", tmpdir);
    struct fake_env env = {{"DATABASE_URL_FILE", path, NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    /* One trailing newline removed, content otherwise exact. */
    assert_string_equal(cfg.database_url, "postgres://clarity:s3cret@db:5432/clarity");
    config_free(&cfg);
    remove_file("db_url");
}

static void test_secret_file_missing(void **state)
{
    (void)state;
    struct fake_env env = {{"DATABASE_URL_FILE", "/nonexistent/secret", NULL}};
    expect_error(&env, "DATABASE_URL_FILE: cannot read /nonexistent/secret");
}

static void test_secret_both_forms(void **state)
{
    (void)state;
    struct fake_env env = {{"DATABASE_URL", "sqlite:x.db", "DATABASE_URL_FILE", "/x", NULL}};
    expect_error(&env, "set either DATABASE_URL or DATABASE_URL_FILE, not both");
}

static void test_non_secret_file_form_ignored(void **state)
{
    (void)state;
    /* Only secrets take _FILE; PORT_FILE is not a configuration variable. */
    struct fake_env env = {{"PORT_FILE", "/nonexistent", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 8000);
    config_free(&cfg);
}

static void test_rejections(void **state)
{
    (void)state;
    struct {
        const char *name, *value, *needle;
    } cases[] = {
        {"ENVIRONMENT", "prod",
         "ENVIRONMENT: invalid value \"prod\"; expected one of development, staging, production"},
        {"DEBUG", "maybe", "DEBUG: invalid value \"maybe\"; expected true or false"},
        {"LOG_LEVEL", "TRACE", "LOG_LEVEL: invalid value \"TRACE\"; expected one of DEBUG, INFO, WARNING, ERROR"},
        {"PORT", "65536", "PORT: invalid value \"65536\"; expected an integer from 0 to 65535"},
        {"PORT", "-1", "PORT: invalid value"},
        {"PORT", "80a", "PORT: invalid value"},
        {"PORT", "", "PORT: invalid value"},
        {"SHUTDOWN_GRACE_SECONDS", "-5", "SHUTDOWN_GRACE_SECONDS: invalid value"},
        {"MAX_REQUEST_BYTES", "100", "MAX_REQUEST_BYTES: invalid value \"100\"; expected an integer number of bytes"},
        {"HTTP_THREADS", "0", "HTTP_THREADS: invalid value \"0\"; expected an integer from 1 to 1024"},
        {"CORS_ORIGINS", "https://a.example.com", "CORS_ORIGINS: expected a JSON list of origins"},
        {"CORS_ORIGINS", "{\"a\":1}", "CORS_ORIGINS: expected a JSON list of origins"},
        {"CORS_ORIGINS", "[1]", "CORS_ORIGINS: item 0 is not an origin"},
        {"CORS_ORIGINS", "[\"https://a.example.com/path\"]", "CORS_ORIGINS: item 0 is not an origin"},
        {"CORS_ORIGINS", "[\"ftp://a.example.com\"]", "CORS_ORIGINS: item 0 is not an origin"},
        {"DATABASE_URL", "mysql://x", "DATABASE_URL: expected sqlite:PATH or postgres://"},
        {"DATABASE_URL", "sqlite:", "DATABASE_URL: sqlite: needs a path"},
        /* Issue #16: 10,080 points never fitted the old 64 KiB message. */
        {"CHAT_MAX_MESSAGE_BYTES", "65536",
         "CHAT_MAX_MESSAGE_BYTES: 65536 bytes cannot hold CHAT_MAX_DATA_POINTS=10080 points; expected at least 645376"},
        /* The structured variables serve used to refuse after config check
         * had passed them (#15): one parser each, run by config_load. */
        {"HOST", "localhost", "HOST: invalid value \"localhost\"; expected an IP address"},
        {"RATE_LIMITS", "auth=5", "RATE_LIMITS: \"auth=5\" is not CLASS=COUNT/SECONDS"},
        {"RATE_LIMITS", "login=5/60", "RATE_LIMITS: unknown class \"login\""},
        {"TRUSTED_PROXIES", "10.0.0.1", "TRUSTED_PROXIES: expected a JSON list"},
        {"TRUSTED_PROXIES", "[\"proxy.local\"]", "TRUSTED_PROXIES: item 0 is not an IP address"},
        {"INSIGHT_GENERATOR", "gpt", "INSIGHT_GENERATOR: invalid value \"gpt\"; expected builtin, gemini or openai"},
        {"INSIGHT_GENERATOR", "gemini", "GEMINI_API_KEY: required when INSIGHT_GENERATOR=gemini"},
        {"INSIGHT_GENERATOR", "openai", "LLM_API_KEY: required when INSIGHT_GENERATOR=openai"},
        {"PAT_STANDARDIZATION", "per-minute:x.csv", "PAT_STANDARDIZATION: workers take none or global:MEAN:STD"},
        {"PAT_STANDARDIZATION", "global:1:0", "PAT_STANDARDIZATION: expected global:MEAN:STD with STD > 0"},
        {"PAT_MODEL_SHA256", "abc", "PAT_MODEL_SHA256: invalid value; expected 64 hex digits"},
        {"PAT_MODEL_PATH", "/nonexistent/pat.h5", "PAT_MODEL_PATH: cannot read /nonexistent/pat.h5"},
        {"PIPELINE_TEST_FAULT", "explode=1", "PIPELINE_TEST_FAULT: expected fail_source=NAME or delay_ms=N"},
        {"LOG_FORMAT", "xml", "LOG_FORMAT: invalid value \"xml\"; expected json or text"},
        {"METRICS_TOKEN", "short", "METRICS_TOKEN: expected a random bearer token of at least 16 characters"},
        {"HEALTH_CANARY_SECONDS", "1", "HEALTH_CANARY_SECONDS: invalid value \"1\""},
        {"LLM_BASE_URL", "localhost:8080", "LLM_BASE_URL: invalid value \"localhost:8080\"; expected an http(s) URL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fake_env env = {{cases[i].name, cases[i].value, NULL}};
        expect_error(&env, cases[i].needle);
    }
}

/* The defaults hold a health_insight of the default number of points. */
static void test_chat_limits_consistent_by_default(void **state)
{
    (void)state;
    struct fake_env env = {{NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.chat_max_data_points, 10080);
    assert_true((size_t)cfg.chat_max_data_points * CONFIG_CHAT_POINT_BYTES + CONFIG_CHAT_ENVELOPE_BYTES <=
                cfg.chat_max_message_bytes);
    config_free(&cfg);
}

static void test_production_refuses_debug(void **state)
{
    (void)state;
    struct fake_env env = {{"ENVIRONMENT", "production", KEYS, "DEBUG", "true", NULL}};
    expect_error(&env, "DEBUG: must be false in production");
}

static void test_production_refuses_cors_wildcard(void **state)
{
    (void)state;
    struct fake_env env = {{"ENVIRONMENT", "production", KEYS, "CORS_ORIGINS", "[\"*\"]", NULL}};
    expect_error(&env, "CORS_ORIGINS: \"*\" is not allowed in production");
    /* The same list is accepted in development. */
    struct fake_env dev = {{"CORS_ORIGINS", "[\"*\"]", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &dev, err, sizeof(err)), 0);
    config_free(&cfg);
}

static void test_keys_required_outside_development(void **state)
{
    (void)state;
    struct fake_env staging = {{"ENVIRONMENT", "staging", "ENCRYPTION_KEY", "AAAA", NULL}};
    expect_error(&staging, "JWT_PRIVATE_KEY: required in staging");
    struct fake_env prod = {{"ENVIRONMENT", "production", "JWT_PRIVATE_KEY", "pem", NULL}};
    expect_error(&prod, "ENCRYPTION_KEY: required in production");
}

static void test_secret_not_echoed(void **state)
{
    (void)state;
    struct fake_env env = {{"DATABASE_URL", "mysql://root:hunter2@db/x", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), -1);
    assert_null(strstr(err, "hunter2"));
}

static void test_redact_url(void **state)
{
    (void)state;
    char out[256];
    config_redact_url("postgres://clarity:s3cret@db:5432/clarity?sslmode=require", out, sizeof(out));
    assert_string_equal(out, "postgres://clarity:***@db:5432/clarity?sslmode=require");
    config_redact_url("postgres://db/clarity?user=a&password=s3cret&x=1", out, sizeof(out));
    assert_string_equal(out, "postgres://db/clarity?user=a&password=***&x=1");
    config_redact_url("postgres://clarity@db/clarity", out, sizeof(out));
    assert_string_equal(out, "postgres://clarity@db/clarity");
    config_redact_url("sqlite:var/clarity.db", out, sizeof(out));
    assert_string_equal(out, "sqlite:var/clarity.db");
    config_redact_url("opaque-api-key", out, sizeof(out));
    assert_string_equal(out, "***");
}

static void test_print_redacts(void **state)
{
    (void)state;
    struct fake_env env = {{"DATABASE_URL", "postgres://u:topsecret@h/db", NULL}};
    struct config cfg;
    char err[512];
    assert_int_equal(load(&cfg, &env, err, sizeof(err)), 0);
    char path[1024];
    snprintf(path, sizeof(path), "%s/print.out", tmpdir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    config_print(&cfg, fileno(f));
    config_free(&cfg);
    fflush(f);
    rewind(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(path);
    assert_null(strstr(text, "topsecret"));
    assert_non_null(strstr(text, "DATABASE_URL=postgres://u:***@h/db  (environment)"));
    assert_non_null(strstr(text, "PORT=8000  (default)"));
}

static void test_structured_parsers(void **state)
{
    (void)state;
    struct config_rate r[CONFIG_RATE_CLASSES];
    char err[256];
    assert_int_equal(config_rate_limits_parse("auth=10/30, chat=1/1", r, err, sizeof(err)), 0);
    assert_int_equal(r[2].count, 10);
    assert_int_equal(r[2].period_s, 30);
    assert_int_equal(r[5].count, 1);
    assert_int_equal(r[1].count, 100); /* api keeps its default */
    char proxies[CONFIG_MAX_PROXIES][64];
    int n = 0;
    assert_int_equal(config_proxies_parse("[\"10.0.0.1\",\"::1\"]", proxies, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(proxies[1], "::1");
    int global;
    double mean, sd;
    assert_int_equal(config_pat_std_parse("global:2.5:0.5", &global, &mean, &sd, err, sizeof(err)), 0);
    assert_int_equal(global, 1);
    assert_true(mean == 2.5 && sd == 0.5);
    char fs[64];
    long long delay;
    assert_int_equal(config_test_fault_parse("fail_source=x,delay_ms=5", fs, sizeof(fs), &delay, err, sizeof(err)), 0);
    assert_string_equal(fs, "x");
    assert_int_equal(delay, 5);
    /* Production refuses test faults; an LLM generator with its key loads. */
    struct fake_env prod = {{"ENVIRONMENT", "production", KEYS, "PIPELINE_TEST_FAULT", "delay_ms=1", NULL}};
    expect_error(&prod, "PIPELINE_TEST_FAULT: for tests only; refused in production");
    struct fake_env gem = {{"INSIGHT_GENERATOR", "gemini", "GEMINI_API_KEY", "k", NULL}};
    struct config cfg;
    assert_int_equal(load(&cfg, &gem, err, sizeof(err)), 0);
    config_free(&cfg);
}

static void test_debug_means_debug_logging(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    struct fake_env dev = {{"DEBUG", "true", NULL}};
    assert_int_equal(load(&cfg, &dev, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    config_free(&cfg);
    /* An explicit LOG_LEVEL wins; outside development DEBUG changes nothing. */
    struct fake_env lvl = {{"DEBUG", "true", "LOG_LEVEL", "ERROR", NULL}};
    assert_int_equal(load(&cfg, &lvl, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_ERROR);
    config_free(&cfg);
    struct fake_env stg = {{"ENVIRONMENT", "staging", KEYS, "DEBUG", "true", NULL}};
    assert_int_equal(load(&cfg, &stg, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_INFO);
    config_free(&cfg);
}

static void test_suspects(void **state)
{
    (void)state;
    struct config cfg;
    char err[256];
    struct fake_env none = {{NULL}};
    assert_int_equal(load(&cfg, &none, err, sizeof(err)), 0);
    char *envp[] = {"DATABSE_URL=sqlite:x", "FIRESTORE_PROJECT_ID=p", "CLOUD_RUN_REGION=us-central1",
                    "FIREBASE_DATABASE_URL=https://x", "HOST_FILE=/x", "PAT_MODEL=/m", "OIDC_JWKS_URI=x",
                    /* not suspects: Clarity's own, platform, unrelated */
                    "DATABASE_URL=sqlite:y", "JWT_PRIVATE_KEY_FILE=/k", "PATH=/bin", "HOME=/root", "LISTEN_FDS=1",
                    "K_SERVICE=x", "GOOGLE_APPLICATION_CREDENTIALS=/c", "TERM=xterm", "HOSTNAME=h", NULL};
    struct config_suspect s[16];
    size_t n = config_suspects(&cfg, envp, tmpdir, s, 16);
    assert_int_equal(n, 7);
    assert_string_equal(s[0].name, "DATABSE_URL");
    assert_non_null(strstr(s[0].hint, "did you mean DATABASE_URL?"));
    assert_non_null(strstr(s[1].hint, "not Firestore"));
    assert_non_null(strstr(s[2].hint, "GOOGLE_CLOUD_REGION"));
    assert_non_null(strstr(s[3].hint, "Realtime Database"));
    assert_non_null(strstr(s[4].hint, "only secrets"));
    assert_non_null(strstr(s[5].hint, "no Clarity variable has this name"));
    assert_non_null(strstr(s[6].hint, "OIDC_JWKS_URL"));
    /* The .env file is looked at too. */
    write_file(".env.development", "LOCKOUT_TRESHOLD=3\n");
    char *empty[] = {NULL};
    n = config_suspects(&cfg, empty, tmpdir, s, 16);
    remove_file(".env.development");
    assert_int_equal(n, 1);
    assert_non_null(strstr(s[0].hint, "did you mean LOCKOUT_THRESHOLD?"));
    config_free(&cfg);
    assert_int_equal(config_edit_distance("DATABSE_URL", "DATABASE_URL", 2), 1);
    assert_int_equal(config_edit_distance("HOME", "HOST", 1), 2);
}

/* A value that starts with "password=" and has "://" later (found by
 * config_fuzz): the query-parameter check read the byte before the output
 * buffer. Here that byte is a '?', so the old code also masked the value
 * as if it were a query parameter; the buffer before out is untouched. */
static void test_redact_password_at_start(void **state)
{
    (void)state;
    char big[64];
    memset(big, 'z', sizeof(big));
    big[0] = '?';
    config_redact_url("password=s3cret://h", big + 1, sizeof(big) - 1);
    assert_int_equal(big[0], '?');
    assert_string_equal(big + 1, "***"); /* not a URL: masked whole */
    /* OIDC_PROVIDERS is JSON with https issuers and client secrets: it
     * contains "://" but is no URL, and was printed in full by config show. */
    char js[256];
    config_redact_url("[{\"name\":\"g\",\"issuer\":\"https://accounts.google.com\",\"client_secret\":\"s3cret\"}]", js,
                      sizeof(js));
    assert_string_equal(js, "***");
    char out[64];
    config_redact_url("postgres://h/db?password=s3cret&x=1", out, sizeof(out));
    assert_string_equal(out, "postgres://h/db?password=***&x=1");
}

/* The full optimal-string-alignment table, for checking the banded one. */
static int osa_reference(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int d[16][16];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + (a[i - 1] != b[j - 1]) < v)
                v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[la][lb];
}

/* Every string over {a, b, c} of up to 5 letters, numbered k. */
static void nth_word(unsigned k, char *out)
{
    size_t n = 0;
    unsigned len = 0, first = 0, count = 1;
    while (k >= first + count) {
        first += count;
        count *= 3;
        len++;
    }
    for (unsigned r = k - first; n < len; r /= 3)
        out[n++] = (char)('a' + r % 3);
    out[n] = '\0';
}

/* The banded edit distance (only |i - j| <= cap computed, early exit)
 * agrees with the full table on every pair of short words and every cap. */
static void test_edit_distance_banded(void **state)
{
    (void)state;
    char a[8], b[8];
    for (unsigned i = 0; i < 364; i++) {
        nth_word(i, a);
        for (unsigned j = 0; j < 364; j++) {
            nth_word(j, b);
            int ref = osa_reference(a, b);
            for (int cap = 0; cap <= 4; cap++)
                assert_int_equal(config_edit_distance(a, b, cap), ref > cap ? cap + 1 : ref);
        }
    }
    assert_int_equal(config_edit_distance("RATE_LIMITS", "RATE_LIMTIS", 2), 1);
    assert_int_equal(config_edit_distance("ab", "ba", 0), 1);
    assert_int_equal(config_edit_distance("OIDC_JWKS_URL", "OIDC_JWKS_URL", 0), 0);
    assert_int_equal(config_edit_distance("XXXXXXXXXXXXXXXXXXXXXXXXXXXX", "DATABASE_URL", 2), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_development),
        cmocka_unit_test(test_production_defaults_listen_everywhere),
        cmocka_unit_test(test_environment_values),
        cmocka_unit_test(test_dotenv_priority),
        cmocka_unit_test(test_dotenv_follows_environment),
        cmocka_unit_test(test_dotenv_malformed),
        cmocka_unit_test(test_secret_file),
        cmocka_unit_test(test_secret_file_missing),
        cmocka_unit_test(test_secret_both_forms),
        cmocka_unit_test(test_non_secret_file_form_ignored),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_chat_limits_consistent_by_default),
        cmocka_unit_test(test_production_refuses_debug),
        cmocka_unit_test(test_production_refuses_cors_wildcard),
        cmocka_unit_test(test_keys_required_outside_development),
        cmocka_unit_test(test_secret_not_echoed),
        cmocka_unit_test(test_redact_url),
        cmocka_unit_test(test_print_redacts),
        cmocka_unit_test(test_structured_parsers),
        cmocka_unit_test(test_debug_means_debug_logging),
        cmocka_unit_test(test_suspects),
        cmocka_unit_test(test_edit_distance_banded),
        cmocka_unit_test(test_redact_password_at_start),
    };
    return cmocka_run_group_tests(tests, setup_dir, NULL);
}
