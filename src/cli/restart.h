/*
 * restart.h — zero-downtime restart of `clarity serve` by socket hand-over.
 *
 * On SIGUSR2 the serving process starts a new one (fork + exec of the binary
 * at the path it was started from, so a replaced binary is picked up) that
 * inherits the listening socket as fd 3 under systemd's socket-activation
 * protocol (LISTEN_FDS=1, LISTEN_PID=<new pid>) and a pipe as fd 4
 * (CLARITY_READY_FD=4). The new process starts on that socket, and once it
 * serves it writes "READY <pid>\n" to the pipe. Only then does the old
 * process stop accepting and drain; the socket and its accept queue are
 * shared, so no connection waiting in the queue is lost. If the new process
 * exits, or is not ready within RESTART_TIMEOUT_SECONDS, the old one stops
 * it (if needed), logs why and keeps serving.
 */
#ifndef CLARITY_CLI_RESTART_H
#define CLARITY_CLI_RESTART_H

#include <signal.h>

struct config;
struct http_server;

/* Remember the path of the running binary (call once at start-up, before
 * anything may replace the file). 0, or -1 when it cannot be found (SIGUSR2
 * then only logs that it cannot restart). */
int cli_restart_init(void);

/* In a process started by a hand-over (CLARITY_READY_FD set), tell the old
 * process that this one serves now; otherwise nothing. Call once ready. */
void cli_restart_ready(void);

/*
 * Hand the listening socket of srv to a new process and wait until it is
 * ready, while this one keeps serving. sigs are the signals the caller
 * takes with sigwait; one of them other than SIGUSR2 arriving meanwhile
 * stops the new process and is stored in *stop_sig.
 * Returns 1 when the new process serves (drain and exit now), 0 when the
 * restart failed (logged; keep serving), -1 when *stop_sig arrived.
 */
int cli_restart(struct http_server *srv, const struct config *cfg, const sigset_t *sigs, int *stop_sig);

#endif
