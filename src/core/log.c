/*
 * log.c — JSON-lines logger. See log.h for the contract.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "core/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"

/* Configuration written once at start-up, read by every thread. */
static atomic_int log_min_level = LOG_INFO;
static atomic_int log_out_fd = 2;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void log_level_set(enum log_level level) { atomic_store(&log_min_level, (int)level); }

enum log_level log_level_get(void) { return (enum log_level)atomic_load(&log_min_level); }

void log_fd_set(int fd) { atomic_store(&log_out_fd, fd); }

const char *log_level_name(enum log_level level)
{
    if ((int)level < 0 || (int)level > LOG_ERROR)
        return "INFO";
    return level_names[level];
}

int log_level_parse(const char *name, enum log_level *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i <= LOG_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "WARN") == 0) {
        *out = LOG_WARNING;
        return 0;
    }
    return -1;
}

/* Append a decimal integer without printf. */
static void put_int(struct buf *b, long long v)
{
    char tmp[24];
    int i = (int)sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        tmp[--i] = '-';
    buf_append(b, tmp + i, sizeof(tmp) - (size_t)i);
}

void log_writev(enum log_level level, const char *message, va_list ap)
{
    if ((int)level < atomic_load(&log_min_level))
        return;

    /* A line lives on the stack; buf truncates rather than allocates so that
     * logging works even when memory is exhausted. */
    char storage[2048];
    struct buf b;
    buf_init_fixed(&b, storage, sizeof(storage));

    char ts[40];
    time_format_rfc3339_ms(time_now_ms(), ts, sizeof(ts));
    buf_puts(&b, "{\"timestamp\":\"");
    buf_puts(&b, ts);
    buf_puts(&b, "\",\"level\":\"");
    buf_puts(&b, log_level_name(level));
    buf_puts(&b, "\",\"message\":");
    buf_json_string(&b, message);

    for (;;) {
        int kind = va_arg(ap, int);
        if (kind == LOG_END)
            break;
        const char *key = va_arg(ap, const char *);
        buf_putc(&b, ',');
        buf_json_string(&b, key);
        buf_putc(&b, ':');
        if (kind == LOG_STR) {
            const char *v = va_arg(ap, const char *);
            if (v == NULL)
                buf_puts(&b, "null");
            else
                buf_json_string(&b, v);
        } else if (kind == LOG_INT) {
            put_int(&b, va_arg(ap, long long));
        } else if (kind == LOG_DBL) {
            double v = va_arg(ap, double);
            /* Three decimals, by integer arithmetic when the value allows
             * (printf's float path is slow on the per-request log line). */
            if (v >= 0 && v < 1e12) {
                long long milli = (long long)(v * 1000.0 + 0.5);
                char frac[4] = {(char)('0' + milli / 100 % 10), (char)('0' + milli / 10 % 10),
                                (char)('0' + milli % 10), '\0'};
                put_int(&b, milli / 1000);
                buf_putc(&b, '.');
                buf_puts(&b, frac);
            } else {
                buf_printf(&b, "%.3f", v);
            }
        } else {
            break; /* malformed field list: stop rather than read garbage */
        }
    }
    if (b.truncated) {
        /* Never emit a cut line (it would not be JSON): say what happened. */
        buf_init_fixed(&b, storage, sizeof(storage));
        buf_puts(&b, "{\"timestamp\":\"");
        buf_puts(&b, ts);
        buf_puts(&b, "\",\"level\":\"");
        buf_puts(&b, log_level_name(level));
        buf_puts(&b, "\",\"message\":\"log line too long\",\"truncated\":true");
    }
    buf_puts(&b, "}\n");

    int fd = atomic_load(&log_out_fd);
    const char *p = b.data;
    size_t left = b.len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n <= 0)
            break; /* nothing sensible to do when stderr is gone */
        p += n;
        left -= (size_t)n;
    }
}

void log_write(enum log_level level, const char *message, ...)
{
    va_list ap;
    va_start(ap, message);
    log_writev(level, message, ap);
    va_end(ap);
}
