/*
 * smoke.h — `clarity smoke`: post-deployment checks against a running server.
 *
 * Used as the pre- and post-deployment test of scripts/deploy.sh and
 * scripts/rollback.sh, and by hand:
 *
 *   clarity smoke --url URL [--token TOKEN | --register] [--read-only]
 *                 [--timeout SECONDS] [--wait SECONDS]
 *
 * Without --token or --register, a non-empty SMOKE_TOKEN in the environment
 * is used as the token (it then stays out of process listings).
 *
 * It prints one JSON report on stdout,
 *
 *   {"url", "passed", "mode", "checks": [{"name", "ok", "detail", "ms"}],
 *    "skipped": [{"name", "reason"}]}
 *
 * and exits CLI_EXIT_OK when every check that ran passed, CLI_EXIT_FAILURE
 * when one failed (including a server that cannot be reached), and
 * CLI_EXIT_USAGE for bad arguments. A check that cannot run because a check it
 * depends on failed is reported as failed, never as passed; checks that were
 * not asked for (no credentials) are listed under "skipped" with the reason.
 */
#ifndef CLARITY_CLI_SMOKE_H
#define CLARITY_CLI_SMOKE_H

/* The subcommand; argv[0] is "smoke". */
int cli_smoke(int argc, char **argv);

#endif
