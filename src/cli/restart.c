/*
 * restart.c — zero-downtime restart by socket hand-over; see restart.h.
 *
 * Between fork and exec the child of a multi-threaded process may only call
 * async-signal-safe functions, so everything it needs (the path, argv, the
 * environment) is built before fork, and the child only moves descriptors
 * into place, writes its pid digits into a slot of the prepared
 * environment and calls execve.
 */
#include "cli/restart.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "http/server.h"

extern char **environ;

/* systemd's socket-activation protocol: sockets from fd 3 on. */
#define HANDOVER_LISTEN_FD 3
#define HANDOVER_READY_FD 4
#define READY_ENV "CLARITY_READY_FD"

static char exe_path[PATH_MAX];

int cli_restart_init(void)
{
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
    if (n <= 0 || (size_t)n >= sizeof(exe_path) - 1) {
        exe_path[0] = '\0';
        return -1;
    }
    exe_path[n] = '\0';
    return 0;
}

void cli_restart_ready(void)
{
    const char *v = getenv(READY_ENV);
    if (v == NULL)
        return;
    char *end = NULL;
    long fd = strtol(v, &end, 10);
    if (end == v || *end != '\0' || fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) == -1) {
        log_warning("CLARITY_READY_FD does not name an open descriptor; not telling anyone", LOG_STR, READY_ENV, v,
                    LOG_END);
        return;
    }
    char msg[40];
    int len = snprintf(msg, sizeof(msg), "READY %ld\n", (long)getpid());
    ssize_t w;
    do
        w = write((int)fd, msg, (size_t)len);
    while (w < 0 && errno == EINTR);
    if (w != len)
        log_warning("cannot tell the previous process that this one is ready", LOG_STR, "error", strerror(errno),
                    LOG_END);
    close((int)fd);
}

/* Does the environment entry e name variable `name`? */
static int env_is(const char *e, const char *name)
{
    size_t n = strlen(name);
    return strncmp(e, name, n) == 0 && e[n] == '=';
}

#define PID_SLOT "LISTEN_PID="
#define PID_DIGITS 20

/* The child's environment: ours without the hand-over variables, plus
 * LISTEN_FDS=1, CLARITY_READY_FD=4 and a LISTEN_PID slot (returned in
 * *pid_slot) the child fills in. NULL on OOM; free the array and *pid_slot. */
static char **child_env(char **pid_slot)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 4, sizeof(*env));
    char *slot = calloc(1, sizeof(PID_SLOT) + PID_DIGITS + 1);
    if (env == NULL || slot == NULL) {
        free(env);
        free(slot);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = environ[i];
        if (env_is(e, "LISTEN_FDS") || env_is(e, "LISTEN_PID") || env_is(e, "LISTEN_FDNAMES") || env_is(e, READY_ENV))
            continue;
        env[k++] = environ[i];
    }
    memcpy(slot, PID_SLOT, sizeof(PID_SLOT) - 1);
    env[k++] = "LISTEN_FDS=1";
    env[k++] = READY_ENV "=4";
    env[k++] = slot;
    env[k] = NULL;
    *pid_slot = slot;
    return env;
}

/* In the child: async-signal-safe only. Never returns. */
static void child_exec(int listen_fd, int ready_fd, char *pid_slot, char **env)
{
    /* Move both descriptors above the target numbers first, so that
     * placing one cannot overwrite the other; dup2 clears close-on-exec. */
    int l = fcntl(listen_fd, F_DUPFD_CLOEXEC, 10);
    int r = fcntl(ready_fd, F_DUPFD_CLOEXEC, 10);
    if (l < 0 || r < 0 || dup2(l, HANDOVER_LISTEN_FD) < 0 || dup2(r, HANDOVER_READY_FD) < 0)
        _exit(126);
    /* Nothing else of ours leaks into the new process (database files,
     * sockets of libraries that do not set close-on-exec). */
    close_range(HANDOVER_READY_FD + 1, ~0u, 0);
    char digits[PID_DIGITS];
    int nd = 0;
    for (unsigned long p = (unsigned long)getpid(); p > 0 && nd < PID_DIGITS; p /= 10)
        digits[nd++] = (char)('0' + p % 10);
    char *d = pid_slot + sizeof(PID_SLOT) - 1;
    while (nd > 0)
        *d++ = digits[--nd];
    *d = '\0';
    char *argv[] = {exe_path, "serve", NULL};
    execve(exe_path, argv, env);
    _exit(127);
}

static void describe_exit(int status, char *out, size_t outlen)
{
    if (WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, outlen, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, outlen, "stopped");
}

/* Stop a child that will not be used, and reap it. */
static void abandon(pid_t child)
{
    kill(child, SIGKILL);
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
}

int cli_restart(struct http_server *srv, const struct config *cfg, const sigset_t *sigs, int *stop_sig)
{
    int listen_fd = http_server_listen_fd(srv);
    if (exe_path[0] == '\0' || listen_fd < 0) {
        log_error("restart refused: cannot hand over", LOG_STR, "reason",
                  exe_path[0] == '\0' ? "the path of the running binary is unknown" : "no listening socket", LOG_END);
        return 0;
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        log_error("restart failed", LOG_STR, "reason", "pipe", LOG_STR, "error", strerror(errno), LOG_END);
        return 0;
    }
    char *pid_slot = NULL;
    char **env = child_env(&pid_slot);
    if (env == NULL) {
        close(pfd[0]);
        close(pfd[1]);
        log_error("restart failed", LOG_STR, "reason", "out of memory", LOG_END);
        return 0;
    }
    log_info("restarting: starting a new process on the listening socket", LOG_STR, "binary", exe_path, LOG_INT,
             "timeout_seconds", (long long)cfg->restart_timeout_seconds, LOG_END);
    pid_t child = fork();
    if (child == 0)
        child_exec(listen_fd, pfd[1], pid_slot, env);
    int fork_errno = errno;
    close(pfd[1]);
    free(env);
    free(pid_slot);
    if (child < 0) {
        close(pfd[0]);
        log_error("restart failed", LOG_STR, "reason", "fork", LOG_STR, "error", strerror(fork_errno), LOG_END);
        return 0;
    }

    /* Wait for "READY <pid>\n" while this process keeps serving. EOF means
     * the child exited (or exec failed) before it was ready. */
    uint64_t deadline = time_mono_ns() + (uint64_t)cfg->restart_timeout_seconds * 1000000000u;
    char msg[64];
    size_t got = 0;
    const struct timespec zero = {0, 0};
    int result = 0;
    const char *why = NULL;
    for (;;) {
        int sig = sigtimedwait(sigs, NULL, &zero);
        if (sig == SIGUSR2) {
            log_info("restart already in progress; signal ignored", LOG_INT, "pid", (long long)child, LOG_END);
            continue;
        }
        if (sig > 0) {
            *stop_sig = sig;
            why = "stop signal while waiting";
            result = -1;
            break;
        }
        if (time_mono_ns() >= deadline) {
            why = "not ready within RESTART_TIMEOUT_SECONDS";
            break;
        }
        struct pollfd p = {pfd[0], POLLIN, 0};
        int pr = poll(&p, 1, 50);
        if (pr < 0 && errno != EINTR) {
            why = "poll failed";
            break;
        }
        if (pr <= 0)
            continue;
        ssize_t n = read(pfd[0], msg + got, sizeof(msg) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            why = NULL; /* exited: reported below with its status */
            break;
        }
        got += (size_t)n;
        msg[got] = '\0';
        if (strchr(msg, '\n') != NULL || got == sizeof(msg) - 1) {
            result = strncmp(msg, "READY ", 6) == 0 ? 1 : 0;
            why = result ? NULL : "unexpected message from the new process";
            break;
        }
    }
    close(pfd[0]);
    if (result == 1) {
        log_info("restart: the new process serves; draining this one", LOG_INT, "new_pid", (long long)child, LOG_END);
        return 1;
    }
    if (why == NULL) {
        int status = 0;
        pid_t w;
        while ((w = waitpid(child, &status, 0)) < 0 && errno == EINTR)
            ;
        char detail[64];
        describe_exit(status, detail, sizeof(detail));
        log_error("restart failed: the new process stopped before it was ready; still serving", LOG_INT, "pid",
                  (long long)child, LOG_STR, "status", detail, LOG_END);
        return 0;
    }
    abandon(child);
    if (result == -1) {
        log_warning("restart abandoned: stop signal while the new process started", LOG_INT, "signal",
                    (long long)*stop_sig, LOG_END);
        return -1;
    }
    log_error("restart failed; still serving", LOG_INT, "pid", (long long)child, LOG_STR, "reason", why, LOG_END);
    return 0;
}
