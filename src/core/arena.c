/*
 * arena.c — chunked bump allocator. See arena.h.
 */
#include "core/arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 4096

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a, size_t max)
{
    a->head = NULL;
    a->first = NULL;
    a->used_total = 0;
    a->max_total = max;
}

void arena_init_inline(struct arena *a, size_t max, void *storage, size_t size)
{
    arena_init(a, max);
    if (storage == NULL || size <= sizeof(struct arena_chunk))
        return;
    struct arena_chunk *c = storage;
    c->next = NULL;
    c->size = size - sizeof(struct arena_chunk);
    c->used = 0;
    a->first = c;
    a->head = c;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        if (c != a->first)
            free(c);
        c = next;
    }
    a->head = a->first;
    if (a->first != NULL) {
        a->first->next = NULL;
        a->first->used = 0;
    }
    a->used_total = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n == 0)
        n = 1;
    if (n > ((size_t)-1) / 2)
        return NULL;
    size_t rounded = (n + align - 1) & ~(align - 1);
    if (rounded > a->max_total || a->used_total > a->max_total - rounded)
        return NULL;
    struct arena_chunk *c = a->head;
    if (c == NULL || c->size - c->used < rounded) {
        /* Large requests get a chunk of their own; small ones share. */
        size_t size = rounded > ARENA_CHUNK / 2 ? rounded : ARENA_CHUNK;
        c = malloc(sizeof(*c) + size);
        if (c == NULL)
            return NULL;
        c->size = size;
        c->used = 0;
        if (rounded > ARENA_CHUNK / 2 && a->head != NULL) {
            /* Keep the partly used chunk at the head for later small requests. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = c->data + c->used;
    c->used += rounded;
    a->used_total += rounded;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    if (s == NULL)
        return NULL;
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s) { return s == NULL ? NULL : arena_strndup(a, s, strlen(s)); }
