/*
 * buf.h — a growable byte buffer with a hard cap (after curl's dynbuf).
 *
 * A buffer is either dynamic (heap, grows up to `max` bytes) or fixed (caller
 * storage, never grows). Appending past the cap does not write a partial
 * result: the call fails, sets `truncated` and leaves earlier content intact,
 * so a peer can never make a buffer grow without bound. The content is kept
 * NUL-terminated.
 */
#ifndef CLARITY_CORE_BUF_H
#define CLARITY_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data;    /* NUL-terminated content; NULL until first append (dynamic) */
    size_t len;    /* bytes used, excluding the terminator */
    size_t cap;    /* bytes allocated */
    size_t max;    /* hard limit on len */
    int fixed;     /* storage belongs to the caller */
    int truncated; /* an append was refused */
};

/* A heap buffer that may hold up to max bytes. */
void buf_init(struct buf *b, size_t max);
/* A buffer over caller storage of `size` bytes (holds size-1 bytes + NUL). */
void buf_init_fixed(struct buf *b, char *storage, size_t size);
/* Free a heap buffer's storage; safe on fixed and zeroed buffers. */
void buf_free(struct buf *b);
/* Empty the buffer, keeping its storage. */
void buf_reset(struct buf *b);
/* Hand the heap storage to the caller (caller frees); the buffer is emptied.
 * Returns an empty heap string for an empty buffer; NULL on allocation failure. */
char *buf_steal(struct buf *b, size_t *len_out);

/* Each returns 0 on success, -1 when the cap or memory refused the append. */
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
/* Append a decimal integer without printf (hot paths: the log line, headers). */
int buf_put_int(struct buf *b, long long v);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Append s as a JSON string literal with quotes, escaping as RFC 8259 §7. */
int buf_json_string(struct buf *b, const char *s);
int buf_json_string_len(struct buf *b, const char *s, size_t len);

#endif
