/*
 * log.h — structured logging: one JSON object per line on stderr.
 *
 * Every line carries "timestamp" (RFC 3339, UTC, milliseconds), "level" and
 * "message"; callers add fields as key/value pairs. Lines are written with a
 * single write(2) so that lines from concurrent threads never interleave.
 *
 * Never pass request bodies, tokens, passwords or health values as fields:
 * the logger does not know what is sensitive, its callers do.
 *
 * The level is process-wide configuration, set once at start-up.
 */
#ifndef CLARITY_CORE_LOG_H
#define CLARITY_CORE_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARNING = 2, LOG_ERROR = 3 };

/* Kinds of extra field; a field list ends with LOG_END. */
enum log_field_kind { LOG_END = 0, LOG_STR, LOG_INT, LOG_DBL };

/* Set the minimum level written. Call once before threads start. */
void log_level_set(enum log_level level);
enum log_level log_level_get(void);

/* Parse "DEBUG", "INFO", "WARNING" (or "WARN"), "ERROR", case-insensitive.
 * Returns 0 and writes *out on success, -1 on an unknown name. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

/* LOG_FORMAT: 0 writes one JSON object per line (default, for log
 * collectors), 1 writes "TIME LEVEL message key=value ..." for people. */
void log_format_set(int text);

#ifdef CLARITY_TEST_API
/* Test API (unit tests build with CLARITY_TEST_API; see CMakeLists.txt). */
/* Redirect output to fd (default 2). For tests. */
void log_fd_set(int fd);
#endif

/*
 * Write one line. After the message come triples terminated by LOG_END:
 *   LOG_STR, "key", (const char *)value      (NULL value is written as null)
 *   LOG_INT, "key", (long long)value
 *   LOG_DBL, "key", (double)value
 * Example: log_write(LOG_INFO, "started", LOG_INT, "port", 8000LL, LOG_END);
 */
void log_write(enum log_level level, const char *message, ...);
void log_writev(enum log_level level, const char *message, va_list ap);

/*
 * Buffered lines, for the access log: log_write_buffered() formats a line
 * like log_write() but, once log_buffering_start() has run, keeps it in a
 * per-thread buffer of whole lines, written when the buffer fills, within
 * ~0.5 s by a flusher thread, at log_flush() and when the thread exits. A
 * hard crash (SIGKILL, abort) loses what is buffered: at most ~0.5 s of
 * lines. Without log_buffering_start() (ACCESS_LOG_BUFFERED=false) every
 * line is written at once. log_buffering_stop() stops the flusher and
 * writes everything out; call it before exit.
 */
int log_buffering_start(void);
void log_buffering_stop(void);
void log_flush(void);
void log_write_buffered(enum log_level level, const char *message, ...);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
