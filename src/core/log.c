/*
 * log.c — JSON-lines logger. See log.h for the contract.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "core/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/timeutil.h"

/* The longest line; longer ones are replaced by a "log line too long" line. */
#define LOG_LINE_MAX 2048

/* Configuration written once at start-up, read by every thread. */
static atomic_int log_min_level = LOG_INFO;
static atomic_int log_out_fd = 2;
static atomic_int log_text = 0;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

void log_level_set(enum log_level level) { atomic_store(&log_min_level, (int)level); }

enum log_level log_level_get(void) { return (enum log_level)atomic_load(&log_min_level); }

void log_fd_set(int fd) { atomic_store(&log_out_fd, fd); }

void log_format_set(int text) { atomic_store(&log_text, text != 0); }

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

/*
 * The line's timestamp. gmtime_r and the date's digits are worked out once
 * per second per thread; each line only writes its milliseconds.
 */
static void line_timestamp(char ts[40])
{
    static _Thread_local int64_t cached_sec = INT64_MIN;
    static _Thread_local char cached[40];
    int64_t ms = time_now_ms();
    int64_t sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    if (sec != cached_sec) {
        time_format_rfc3339_ms(sec * 1000, cached, sizeof(cached));
        cached_sec = sec;
    }
    memcpy(ts, cached, sizeof(cached));
    size_t n = strlen(ts);
    int millis = (int)(ms - sec * 1000);
    if (n == 24 && ts[19] == '.') { /* YYYY-MM-DDTHH:MM:SS.mmmZ */
        ts[20] = (char)('0' + millis / 100);
        ts[21] = (char)('0' + millis / 10 % 10);
        ts[22] = (char)('0' + millis % 10);
    } else {
        time_format_rfc3339_ms(ms, ts, 40); /* out of the four-digit range */
    }
}

static void write_all(int fd, const char *p, size_t left)
{
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n <= 0)
            break; /* nothing sensible to do when stderr is gone */
        p += n;
        left -= (size_t)n;
    }
}

/* Format one line into b (a fixed buffer): always a whole JSON object, or
 * with LOG_FORMAT=text one whole "TIME LEVEL message key=value ..." line. */
static void format_line(struct buf *b, char *storage, size_t size, enum log_level level, const char *message,
                        va_list ap)
{
    buf_init_fixed(b, storage, size);
    char ts[40];
    line_timestamp(ts);
    int text = atomic_load(&log_text);
    if (text) {
        buf_puts(b, ts);
        buf_putc(b, ' ');
        buf_puts(b, log_level_name(level));
        buf_putc(b, ' ');
        buf_puts(b, message);
    } else {
        buf_puts(b, "{\"timestamp\":\"");
        buf_puts(b, ts);
        buf_puts(b, "\",\"level\":\"");
        buf_puts(b, log_level_name(level));
        buf_puts(b, "\",\"message\":");
        buf_json_string(b, message);
    }

    for (;;) {
        int kind = va_arg(ap, int);
        if (kind == LOG_END)
            break;
        const char *key = va_arg(ap, const char *);
        if (text) {
            buf_putc(b, ' ');
            buf_puts(b, key);
            buf_putc(b, '=');
        } else {
            buf_putc(b, ',');
            buf_json_string(b, key);
            buf_putc(b, ':');
        }
        if (kind == LOG_STR) {
            const char *v = va_arg(ap, const char *);
            if (v == NULL)
                buf_puts(b, "null");
            else if (text && v[0] != '\0' && v[strcspn(v, " \t\"=\\\n\r")] == '\0')
                buf_puts(b, v); /* bare when nothing needs quoting */
            else
                buf_json_string(b, v);
        } else if (kind == LOG_INT) {
            buf_put_int(b, va_arg(ap, long long));
        } else if (kind == LOG_DBL) {
            double v = va_arg(ap, double);
            /* Three decimals, by integer arithmetic when the value allows
             * (printf's float path is slow on the per-request log line). */
            if (v >= 0 && v < 1e12) {
                long long milli = (long long)(v * 1000.0 + 0.5);
                char frac[4] = {(char)('0' + milli / 100 % 10), (char)('0' + milli / 10 % 10), (char)('0' + milli % 10),
                                '\0'};
                buf_put_int(b, milli / 1000);
                buf_putc(b, '.');
                buf_puts(b, frac);
            } else {
                buf_printf(b, "%.3f", v);
            }
        } else {
            break; /* malformed field list: stop rather than read garbage */
        }
    }
    if (b->truncated) {
        /* Never emit a cut line (it would not be JSON): say what happened. */
        buf_init_fixed(b, storage, size);
        if (text) {
            buf_puts(b, ts);
            buf_putc(b, ' ');
            buf_puts(b, log_level_name(level));
            buf_puts(b, " log line too long truncated=true");
        } else {
            buf_puts(b, "{\"timestamp\":\"");
            buf_puts(b, ts);
            buf_puts(b, "\",\"level\":\"");
            buf_puts(b, log_level_name(level));
            buf_puts(b, "\",\"message\":\"log line too long\",\"truncated\":true");
        }
    }
    buf_puts(b, text ? "\n" : "}\n");
}

void log_writev(enum log_level level, const char *message, va_list ap)
{
    if ((int)level < atomic_load(&log_min_level))
        return;
    /* A line lives on the stack; buf truncates rather than allocates so that
     * logging works even when memory is exhausted. */
    char storage[LOG_LINE_MAX];
    struct buf b;
    format_line(&b, storage, sizeof(storage), level, message, ap);
    write_all(atomic_load(&log_out_fd), b.data, b.len);
}

void log_write(enum log_level level, const char *message, ...)
{
    va_list ap;
    va_start(ap, message);
    log_writev(level, message, ap);
    va_end(ap);
}

/* ---- buffered lines (the access log) -------------------------------------
 *
 * Each thread that writes buffered lines owns a buffer of whole lines; it is
 * written with one write(2) when the next line would not fit, and by the
 * flusher thread within LOG_FLUSH_MS of its first line, and by log_flush()
 * (drain, shutdown) and when the thread exits. A buffer's mutex is only ever
 * contended by the flusher, so the per-line cost is an uncontended lock and
 * a memcpy instead of a system call. Lines of one thread stay in order;
 * lines of different threads, and buffered against unbuffered lines, may be
 * reordered by up to LOG_FLUSH_MS (each carries its own timestamp).
 */
#define LOG_TBUF_SIZE (64u * 1024u)
#define LOG_FLUSH_MS 500

struct log_tbuf {
    pthread_mutex_t mu;
    size_t len;
    struct log_tbuf *next; /* in the registry, under reg_mu */
    char data[LOG_TBUF_SIZE];
};

static atomic_int log_buffered; /* log_buffering_start() was called */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_tbuf *reg_head; /* every live thread's buffer */
static pthread_key_t tbuf_key;
static pthread_once_t tbuf_once = PTHREAD_ONCE_INIT;
static pthread_t flusher;
static int flusher_running; /* under reg_mu */
static pthread_cond_t flusher_cv = PTHREAD_COND_INITIALIZER;
static _Thread_local struct log_tbuf *my_tbuf;

/* Write out a buffer's lines. Caller holds t->mu. */
static void tbuf_drain(struct log_tbuf *t)
{
    if (t->len > 0) {
        write_all(atomic_load(&log_out_fd), t->data, t->len);
        t->len = 0;
    }
}

/* Thread exit: write what is left and forget the buffer. */
static void tbuf_destroy(void *p)
{
    struct log_tbuf *t = p;
    pthread_mutex_lock(&reg_mu);
    for (struct log_tbuf **pp = &reg_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    pthread_mutex_lock(&t->mu);
    tbuf_drain(t);
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

static void tbuf_key_init(void) { (void)pthread_key_create(&tbuf_key, tbuf_destroy); }

static struct log_tbuf *tbuf_get(void)
{
    if (my_tbuf != NULL)
        return my_tbuf;
    pthread_once(&tbuf_once, tbuf_key_init);
    struct log_tbuf *t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->len = 0;
    pthread_mutex_lock(&reg_mu);
    t->next = reg_head;
    reg_head = t;
    pthread_mutex_unlock(&reg_mu);
    (void)pthread_setspecific(tbuf_key, t);
    my_tbuf = t;
    return t;
}

void log_flush(void)
{
    pthread_mutex_lock(&reg_mu);
    for (struct log_tbuf *t = reg_head; t != NULL; t = t->next) {
        pthread_mutex_lock(&t->mu);
        tbuf_drain(t);
        pthread_mutex_unlock(&t->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

static void *flusher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reg_mu);
    while (flusher_running) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)LOG_FLUSH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        (void)pthread_cond_timedwait(&flusher_cv, &reg_mu, &ts);
        for (struct log_tbuf *t = reg_head; t != NULL; t = t->next) {
            pthread_mutex_lock(&t->mu);
            tbuf_drain(t);
            pthread_mutex_unlock(&t->mu);
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return NULL;
}

int log_buffering_start(void)
{
    pthread_mutex_lock(&reg_mu);
    int rc = 0;
    if (!flusher_running) {
        flusher_running = 1;
        if (pthread_create(&flusher, NULL, flusher_main, NULL) != 0) {
            flusher_running = 0;
            rc = -1;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (rc == 0)
        atomic_store(&log_buffered, 1);
    return rc;
}

void log_buffering_stop(void)
{
    atomic_store(&log_buffered, 0);
    pthread_mutex_lock(&reg_mu);
    int was = flusher_running;
    flusher_running = 0;
    pthread_cond_signal(&flusher_cv);
    pthread_mutex_unlock(&reg_mu);
    if (was)
        pthread_join(flusher, NULL);
    log_flush();
}

void log_write_buffered(enum log_level level, const char *message, ...)
{
    if ((int)level < atomic_load(&log_min_level))
        return;
    char storage[LOG_LINE_MAX];
    struct buf b;
    va_list ap;
    va_start(ap, message);
    format_line(&b, storage, sizeof(storage), level, message, ap);
    va_end(ap);
    struct log_tbuf *t = atomic_load(&log_buffered) ? tbuf_get() : NULL;
    if (t == NULL) {
        write_all(atomic_load(&log_out_fd), b.data, b.len);
        return;
    }
    pthread_mutex_lock(&t->mu);
    if (t->len + b.len > sizeof(t->data))
        tbuf_drain(t);
    memcpy(t->data + t->len, b.data, b.len);
    t->len += b.len;
    pthread_mutex_unlock(&t->mu);
}
