/*
 * cli.c — subcommand table and dispatch. main.c only calls cli_main.
 */
#include "cli/cli.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli/analyze.h"
#include "cli/smoke.h"
#include "cli/backup.h"
#include "cli/import.h"
#include "cli/keys.h"
#include "cli/migrate.h"
#include "cli/pat.h"
#include "cli/seed.h"
#include "cli/users.h"
#include "cli/worker.h"
#include "auth/jwt.h"
#include "core/config.h"
#include "auth/oidc.h"
#include "auth/oidc_login.h"
#include "crypto/envelope.h"
#include "core/log.h"
#include "core/problem.h"

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
    const char *usage; /* full help text for `clarity help NAME` */
};

/* Later features add one row each. Keep alphabetical after serve. */
static const struct command commands[] = {
    {"serve", cli_serve, "serve the HTTP API (and workers)",
     "usage: clarity serve\n\n"
     "Serves the REST and WebSocket API on HOST:PORT until SIGTERM or SIGINT.\n"
     "On the first signal readiness turns 503, the listener closes, in-flight\n"
     "requests get SHUTDOWN_GRACE_SECONDS to finish, then the process exits 0.\n"
     "A second signal exits at once. SIGUSR2 restarts without downtime: a new\n"
     "process (the binary at the same path) takes over the listening socket, and\n"
     "this one drains and exits 0 once it serves; if it fails, this one keeps\n"
     "serving. A socket passed with LISTEN_FDS=1 (systemd) is served instead of\n"
     "HOST:PORT. Configuration: see `clarity config check`.\n"},
    {"analyze", cli_analyze, "analyse an actigraphy file (CSV or Actiwatch .AWD)",
     "usage: clarity analyze FILE [--format json|text] [--window 7d]\n"
     "         [--scorer cole-kripke|cole-kripke-actigraph|sadeh] [--no-webster]\n"
     "         [--bin MINUTES] [--epoch SECONDS] [--input counts|steps]\n"
     "         [--nonwear choi|off] [--epochs FILE] [--actogram FILE]\n"
     "         [--conventions clarity|pyactigraphy]\n\n"
     "Reads `timestamp,value` CSV (RFC 3339; no offset = local time) or an Actiwatch\n"
     ".AWD file, brings epochs to one minute, and prints sleep (per night, SRI,\n"
     "timing), circadian (IS, IV, RA, L5, M10, cosinor) and, with --input steps,\n"
     "activity metrics and estimated rest periods (no sleep scorer on steps).\n"
     "Non-wear (Choi 2011) is masked. --epochs writes time,value,wear,sleep per\n"
     "minute; --actogram a double-plotted SVG. FILE may be a folder: one CSV\n"
     "summary row per .awd/.csv recording, progress on stderr. Unsupported figures\n"
     "are null with a reason. --conventions pyactigraphy computes IS, IV, RA, L5,\n"
     "M10 and onsets as pyActigraphy does, on the recording's own epochs (a CSV's\n"
     "epoch is its rows' step, or --epoch). Methods: docs/algorithms.md. Exits 0,\n"
     "1 on a bad file (in a folder: any), 2 on a usage error.\n"},
    {"backup", cli_backup, "copy the running SQLite database (online)", "usage: clarity backup PATH\n"},
    {"config", cli_config, "check and print the effective configuration",
     "usage: clarity config check [--strict]\n\n"
     "Loads the configuration exactly as `serve` would (defaults, .env.<ENVIRONMENT>,\n"
     "process environment, NAME_FILE secrets), prints every variable with its\n"
     "source, secrets redacted, and exits 0; exits 2 with one line naming the\n"
     "variable when the configuration is invalid: every structured variable is\n"
     "parsed by the parser serve uses, and the keys' content is read. Variables that\n"
     "look like Clarity's but are not (DATABSE_URL, FIRESTORE_*) are warned about\n"
     "on stderr; with --strict they make it exit 2.\n"},
    {"help", cli_help, "show help for a command", "usage: clarity help [COMMAND]\n"},
    {"import", cli_import, "import an Apple Health export (export.xml or export.zip)",
     "usage: clarity import apple-health FILE --user EMAIL [--batch N]\n\nStreams FILE (the Health app's export.zip, "
     "or its export.xml) into the samples of\nthe user with that email: records map through the HealthKit mapping, a "
     "record\nalready stored is skipped, unknown types are counted. One upload row (source\napple_health_export) shows "
     "progress. Prints a JSON summary; see docs/api.md\n(Apple Health import). Exits 0, 1 on failure, 2 on a usage "
     "error.\n"},
    {"keys", cli_keys, "show, rotate and re-wrap the encryption key ring",
     "usage: clarity keys status [--json]\n"
     "       clarity keys rotate [--wait SECONDS] [--batch N] [--no-rewrap]\n"
     "       clarity keys rewrap [--batch N]\n\n"
     "status lists key-ring versions with their age and warns when the active one\n"
     "is older than 90 days. rotate adds a version, retires the older ones (they\n"
     "still decrypt), waits --wait seconds (default 31) for running instances to\n"
     "switch, then re-wraps every stored data key in batches of --batch (default\n"
     "100): raw uploads, then the sealed blobs of analyses, insights,\n"
     "sample_days and sample_day_aggs; only the 72-byte wrapped keys change,\n"
     "bodies and blobs are\n"
     "never re-encrypted. It prints per table what it scanned, re-wrapped,\n"
     "skipped (changed meanwhile) and failed. rewrap resumes that pass. Uses\n"
     "ENCRYPTION_KEY and DATABASE_URL like serve; see docs/security.md. Exits 0,\n"
     "1 on failure (wrong key, database, rows left unwrapped), 2 on a usage error.\n"},
    {"migrate", cli_migrate, "apply or list schema migrations",
     "usage: clarity migrate up [--to NAME] | clarity migrate status\n"
     "       clarity migrate contract\n"
     "       clarity migrate samples-backfill|samples-to-rows [--batch N]\n\n"
     "up applies expand migrations (serve refuses to start without them outside\n"
     "development); contract applies contract migrations (014 drops the emptied\n"
     "health_samples), never pending: run it once no older release runs.\n"
     "samples-backfill moves rows of releases before sealed sample blocks into\n"
     "blocks now (the workers also do it a little each minute); samples-to-rows\n"
     "is its rollback: run it, with this release stopped, before starting the\n"
     "release before it (it undoes 014 first). Both print progress and resume\n"
     "where they stopped.\n"},
    {"pat", cli_pat, "PAT encoder: describe a weights file, embed a week of activity",
     "usage: clarity pat info FILE [--sha256 HEX]\n       clarity pat embed --model FILE --input MINUTES.csv [--sha256 "
     "HEX] [--std none|global:MEAN:STD|per-minute:FILE] [--head NAME=FILE]... [--attention] [--tokens] [--threads "
     "N]\n\nSee docs/pat.md.\n"},
    {"seed-demo", cli_seed_demo, "demo accounts and a month of data (development, staging)",
     "usage: clarity seed-demo --url URL [--users N] [--days N] [--seed N]\n\n"
     "Registers demo accounts demo1@clarity.example.com … demoN@ (default 3, password\n"
     "Demo-Clarity-2026!) on the development or staging server at URL and uploads\n"
     "--days (default 30) of HealthKit data for each through the API: steps and\n"
     "heart rate per 15 minutes, resting heart rate, and a night of sleep stages\n"
     "per day, with weekday/weekend rhythms, from a seeded generator (--seed). A\n"
     "rerun stores nothing twice. Refuses a server whose /health does not name\n"
     "development or staging. Prints a JSON report; exits 0, 1 on failure, 2 on a\n"
     "usage error.\n"},
    {"smoke", cli_smoke, "check a running server (post-deployment smoke test)",
     "usage: clarity smoke --url URL [--token TOKEN | --register] [--read-only]\n"
     "                     [--timeout SECONDS] [--wait SECONDS]\n\n"
     "Checks /liveness, /readiness, /health (every check healthy) and the security\n"
     "headers of the server at URL; with --token or --register also an auth round\n"
     "trip and, unless --read-only, a HealthKit upload that must complete (within\n"
     "--wait, default 60 s) and the clean-up of what it wrote. Prints a JSON report\n"
     "{url, passed, mode, checks:[{name, ok, detail, ms}], skipped} and exits 0\n"
     "when every check passed, 1 when one failed, 2 on a usage error. --timeout is\n"
     "per request (default 10 s). Without --token or --register, SMOKE_TOKEN from the\n"
     "environment is used as the token.\n"},
    {"routes", cli_routes, "list every API route as JSON",
     "usage: clarity routes\n\nPrints every registered route: method, path template, whether it needs a\n"
     "bearer token, and its rate-limit class.\n"},
    {"users", cli_users, "create, list, show, disable, unlock, set-role, reset-password accounts",
     "usage: clarity users create EMAIL --first-name NAME --last-name NAME [--role ROLE] [--password-stdin]\n"
     "       clarity users list [--limit N]\n"
     "       clarity users show EMAIL\n"
     "       clarity users disable EMAIL\n"
     "       clarity users unlock EMAIL\n"
     "       clarity users set-role EMAIL patient|clinician|researcher|admin\n"
     "       clarity users reset-password EMAIL\n\n"
     "Account administration without SQL, on DATABASE_URL (migrated). Each change is\n"
     "one transaction with an audit row (action cli.user.VERB, request_id\n"
     "cli:$USER). Passwords never go on the command line: create prints a generated\n"
     "temporary password once (--password-stdin reads one line instead);\n"
     "reset-password ends the current password and prints a one-time reset code\n"
     "(valid 60 minutes) the user redeems at POST /api/v1/auth/reset-password with\n"
     "a new password. reset-password and disable also end every session. Prints the\n"
     "user as JSON. Exits 0, 1 on failure, 2 on a usage error.\n"},
    {"version", cli_version, "print the version", "usage: clarity version\n"},
    {"worker", cli_worker, "run pipeline workers (analysis and insight jobs)",
     "usage: clarity worker [--topics health-data-processing,insights-generation] [--threads N]\n\n"
     "Consumes the pipeline's queue topics until SIGTERM, then finishes or releases jobs\n"
     "in flight within SHUTDOWN_GRACE_SECONDS. Configuration as for serve; see\n"
     "docs/insights.md. Exits 0 after a clean stop, 1 on failure, 2 on a usage error.\n"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void overview(FILE *out)
{
    fprintf(out, "usage: clarity COMMAND [ARGS]\n\nClarity %s — health-data backend.\n\nCommands:\n", CLARITY_VERSION);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun `clarity help COMMAND` for details.\n");
}

int cli_help(int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "clarity help: takes at most one command name\n");
        return CLI_EXIT_USAGE;
    }
    if (argc == 1) {
        overview(stdout);
        return CLI_EXIT_OK;
    }
    const struct command *c = find(argv[1]);
    if (c == NULL) {
        fprintf(stderr, "clarity help: unknown command '%s'; run `clarity help` for the list\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    fputs(c->usage, stdout);
    return CLI_EXIT_OK;
}

int cli_version(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "clarity version: unexpected argument '%s'\n", argv[1]);
        return CLI_EXIT_USAGE;
    }
    printf("clarity %s\n", CLARITY_VERSION);
    return CLI_EXIT_OK;
}

/* The secrets' content, by the parsers serve uses: a key that cannot be
 * read is refused here, by `config check` as by `serve`. */
static int keys_check(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->jwt_private_key != NULL && cfg->jwt_private_key[0] != '\0') {
        char why[256];
        struct jwt_signer *s = jwt_signer_from_pem(cfg->jwt_private_key, why, sizeof(why));
        if (s == NULL) {
            snprintf(err, errlen, "JWT_PRIVATE_KEY: %s; expected a PEM-encoded EC P-256 private key", why);
            return -1;
        }
        jwt_signer_free(s);
    }
    if (cfg->encryption_key != NULL && cfg->encryption_key[0] != '\0') {
        char why[256];
        struct envelope_key *k = NULL;
        if (envelope_lib_init() != 0 || envelope_key_from_base64(cfg->encryption_key, &k, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "ENCRYPTION_KEY: %s", why);
            return -1;
        }
        envelope_key_free(k);
    }
    return 0;
}

int cli_config_load(struct config *cfg)
{
    char err[512];
    if (config_load(cfg, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "clarity: invalid configuration: %s\n", err);
        return CLI_EXIT_USAGE;
    }
    if (keys_check(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "clarity: invalid configuration: %s\n", err);
        config_free(cfg);
        return CLI_EXIT_USAGE;
    }
    log_level_set(cfg->log_level);
    log_format_set(strcmp(cfg->log_format, "text") == 0);
    problem_verbose_set(cfg->debug && cfg->environment == CONFIG_ENV_DEVELOPMENT);
    return 0;
}

size_t cli_config_warn_suspects(const struct config *cfg)
{
    struct config_suspect s[16];
    size_t n = config_suspects(cfg, NULL, NULL, s, 16);
    for (size_t i = 0; i < n && i < 16; i++)
        log_warning("unknown variable that looks like Clarity's", LOG_STR, "variable", s[i].name, LOG_STR, "hint",
                    s[i].hint, LOG_END);
    if (cfg->debug && cfg->environment != CONFIG_ENV_DEVELOPMENT)
        log_warning("DEBUG=true has effect in development only (debug logging, verbose problem details)", LOG_END);
    return n;
}

int cli_config(int argc, char **argv)
{
    int strict = argc == 3 && strcmp(argv[2], "--strict") == 0;
    if ((argc != 2 && !strict) || strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "usage: clarity config check [--strict]\n");
        return CLI_EXIT_USAGE;
    }
    struct config cfg;
    int rc = cli_config_load(&cfg);
    if (rc != 0)
        return rc;
    /* External sign-in: refuse exactly what `serve` refuses (the same
     * oidc_new, which reads key files but never the network). */
    char err[512];
    struct oidc *o = oidc_new(&cfg, err, sizeof(err));
    int refused = o == NULL && err[0] != '\0';
    oidc_free(o);
    if (!refused) { /* browser sign-in providers: the same oidc_login_new as serve */
        struct oidc_login *ol = oidc_login_new(&cfg, err, sizeof(err));
        refused = ol == NULL && err[0] != '\0';
        oidc_login_free(ol);
    }
    if (refused) {
        fprintf(stderr, "clarity: invalid configuration: %s\n", err);
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    struct config_suspect s[32];
    size_t n = config_suspects(&cfg, NULL, NULL, s, 32);
    for (size_t i = 0; i < n && i < 32; i++)
        fprintf(stderr, "clarity: %s: %s: %s\n", strict ? "error" : "warning", s[i].name, s[i].hint);
    if (strict && n > 0) {
        fprintf(stderr,
                "clarity: invalid configuration: %zu unknown variable%s that look%s like Clarity's "
                "(--strict)\n",
                n, n == 1 ? "" : "s", n == 1 ? "s" : "");
        config_free(&cfg);
        return CLI_EXIT_USAGE;
    }
    fflush(stdout);
    config_print(&cfg, 1);
    config_free(&cfg);
    return CLI_EXIT_OK;
}

/* The main thread's id, for the forwarding handler. */
static pid_t main_tid;

/* Runs in a thread that does not block sig (one this program did not make):
 * tgkill is a plain system call, safe in a handler. */
static void forward_to_main(int sig)
{
    int saved = errno;
    (void)syscall(SYS_tgkill, getpid(), main_tid, sig);
    errno = saved;
}

void cli_signals_to_main(const sigset_t *sigs)
{
    struct sigaction sa;
    main_tid = (pid_t)syscall(SYS_gettid);
    pthread_sigmask(SIG_BLOCK, sigs, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = forward_to_main;
    sigfillset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(sigs, sig) == 1)
            (void)sigaction(sig, &sa, NULL);
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        overview(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cli_help(1, argv + 1);
    if (strcmp(name, "--version") == 0)
        return cli_version(1, argv + 1);
    const struct command *c = find(name);
    if (c == NULL) {
        fprintf(stderr, "clarity: unknown command '%s'; run `clarity help` for the list\n", name);
        return CLI_EXIT_USAGE;
    }
    /* `clarity CMD --help` is help for CMD, for every command. */
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
        fputs(c->usage, stdout);
        return CLI_EXIT_OK;
    }
    return c->fn(argc - 1, argv + 1);
}
