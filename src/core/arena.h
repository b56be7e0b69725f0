/*
 * arena.h — a per-request memory pool (after h2o's mem pool).
 *
 * Allocations are bump-pointer from chunks and are all released at once by
 * arena_free. A cap bounds the total so that a request can never exhaust the
 * process: allocation past it returns NULL.
 */
#ifndef CLARITY_CORE_ARENA_H
#define CLARITY_CORE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;
    struct arena_chunk *first; /* caller's storage (arena_init_inline), never freed */
    size_t used_total;         /* bytes handed out, across chunks */
    size_t max_total;          /* cap on used_total */
};

/* Start an empty arena that may hand out up to max bytes. Allocates nothing. */
void arena_init(struct arena *a, size_t max);
/*
 * As arena_init, with a first chunk in the caller's storage (size bytes,
 * aligned for any type), so that a small request allocates nothing. The
 * storage must outlive the arena; arena_free keeps it for reuse.
 */
void arena_init_inline(struct arena *a, size_t max, void *storage, size_t size);

/* Release every allocation. The arena may be reused afterwards. */
void arena_free(struct arena *a);
/* n bytes aligned for any type, or NULL (cap reached, or out of memory). */
void *arena_alloc(struct arena *a, size_t n);
/* Copies of strings; NULL on failure or when s is NULL. */
char *arena_strdup(struct arena *a, const char *s);
char *arena_strndup(struct arena *a, const char *s, size_t n);

#endif
