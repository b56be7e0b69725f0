/*
 * config_fuzz.c — libFuzzer driver for the configuration parsers: the
 * variable table (every kind: integers, sizes, booleans, CORS JSON, the
 * environment), the structured parsers (RATE_LIMITS, TRUSTED_PROXIES,
 * PAT_STANDARDIZATION, PIPELINE_TEST_FAULT), the edit distance behind the
 * unknown-variable warnings, and config_print's redaction.
 *
 * Input: NAME=VALUE lines, served as the process environment to
 * config_load (a fake getenv), and the lines' names to config_suspects; the
 * whole input is also handed to each structured parser as one value.
 * Invariants: a successful load prints; a failed one leaves an error line;
 * nothing reads past the input or leaks.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"

#define MAX_VARS 32

struct fake_env {
    char *names[MAX_VARS];
    char *values[MAX_VARS];
    char *envp[MAX_VARS + 1];
    int n;
};

static const char *fake_getenv(void *ctx, const char *name)
{
    const struct fake_env *e = ctx;
    for (int i = e->n; i-- > 0;)
        if (strcmp(e->names[i], name) == 0)
            return e->values[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    /* The structured parsers on the whole input. */
    struct config_rate rates[CONFIG_RATE_CLASSES];
    char proxies[CONFIG_MAX_PROXIES][64], fs[128], err[512];
    int n = 0, global = 0;
    double mean, sd;
    long long delay;
    config_rate_limits_parse(text, rates, err, sizeof(err));
    if (config_proxies_parse(text, proxies, &n, err, sizeof(err)) == 0 && (n < 0 || n > CONFIG_MAX_PROXIES))
        abort();
    if (config_pat_std_parse(text, &global, &mean, &sd, err, sizeof(err)) == 0 && global && !(sd > 0))
        abort();
    config_test_fault_parse(text, fs, sizeof(fs), &delay, err, sizeof(err));
    if (size < 64 && config_edit_distance(text, "DATABASE_URL", 2) < 0)
        abort();

    /* NAME=VALUE lines as the environment. */
    struct fake_env e = {0};
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL && e.n < MAX_VARS; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL || eq == line)
            continue;
        e.envp[e.n] = line;
        *eq = '\0';
        e.names[e.n] = line;
        e.values[e.n] = eq + 1;
        e.n++;
    }
    struct config cfg;
    err[0] = '\0';
    /* A directory that holds no .env file: only the fake environment counts. */
    if (config_load(&cfg, fake_getenv, &e, "/nonexistent-clarity-fuzz", err, sizeof(err)) == 0) {
        static int devnull = -1; /* opened once, not per input */
        if (devnull < 0)
            devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0)
            config_print(&cfg, devnull);
        /* config_suspects reads "NAME=value" strings: rebuild them. */
        char *envp[MAX_VARS + 1];
        char buf[MAX_VARS][80];
        for (int i = 0; i < e.n; i++) {
            snprintf(buf[i], sizeof(buf[i]), "%.60s=x", e.names[i]);
            envp[i] = buf[i];
        }
        envp[e.n] = NULL;
        struct config_suspect s[8];
        config_suspects(&cfg, envp, "/nonexistent-clarity-fuzz", s, 8);
        config_free(&cfg);
    } else if (err[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    free(text);
    return 0;
}
