/*
 * cli.h — the `clarity` command dispatcher.
 *
 * Each subcommand is `int cli_<name>(int argc, char **argv)` with argv[0] the
 * subcommand's name. Exit statuses: 0 success, 1 failure, 2 usage error
 * (unknown command or flag, bad configuration).
 */
#ifndef CLARITY_CLI_CLI_H
#define CLARITY_CLI_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

#include <stddef.h>

struct config;

/* Entry point from main(). */
int cli_main(int argc, char **argv);

/*
 * Load the configuration from the environment and `.env.<ENVIRONMENT>`, set the
 * log level, and report an invalid configuration as one line on stderr.
 * Returns 0, or CLI_EXIT_USAGE after printing the error.
 */
int cli_config_load(struct config *cfg);

#include <signal.h>
/*
 * Block sigs in the calling thread (the main thread, before it starts any)
 * and make sure they still reach it when a thread made before main — the
 * OpenBLAS pool, started by the library's constructor with nothing blocked
 * — is the one the kernel picks: a handler there forwards the signal to the
 * main thread, where it stays pending until sigwait takes it. Without it a
 * SIGTERM that came while the main thread was not in sigwait killed the
 * process by the default action, with no drain.
 */
void cli_signals_to_main(const sigset_t *sigs);

/* Log a warning per unknown variable that looks like Clarity's (and DEBUG
 * outside development). Returns how many variables were suspect. */
size_t cli_config_warn_suspects(const struct config *cfg);

/* Load Clarity's token signing key: JWT_PRIVATE_KEY, or in development a
 * key generated once under var/. 0, or -1 after logging why. */
struct jwt_signer;
int cli_signer_load(const struct config *cfg, struct jwt_signer **out);

/* Subcommands implemented in this folder. */
int cli_serve(int argc, char **argv);
int cli_version(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_help(int argc, char **argv);
int cli_routes(int argc, char **argv);

#endif
