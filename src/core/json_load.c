/*
 * json_load.c — JSON parsing that tells allocation failure from bad input.
 * See json_load.h.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "core/json_load.h"

#include <pthread.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static _Thread_local unsigned long failures;
static _Thread_local unsigned long fail_countdown; /* test API: 0 = off */
static _Thread_local int parsing;                  /* inside json_parse / json_load_checked */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/*
 * The parse reserve. jansson 2.14's lexer ignores a failure to grow its
 * token buffer (lex_save drops strbuffer_append_byte's result; upstream
 * akheron/jansson#362, open): the byte is lost, and when it was the one after
 * a backslash or the one a number lexer pushes back, an assert() in load.c
 * aborts the whole process (seen in CI: load.c:442 lex_scan_string). So a
 * jansson allocation that fails during a parse is still counted — the parse
 * is reported JSON_ENOMEM and its result thrown away — but is served from
 * this reserve instead of returning NULL, and the lexer never loses a byte.
 * It is bump-allocated under a mutex (only failure paths come here) and
 * starts over when nothing in it is live. Static, so it costs address space,
 * not memory, until a failure touches it. A parse that needs more than what
 * is left gets NULL, as before: the abort is then still possible, for a
 * token longer than about half the reserve under real memory exhaustion.
 */
#define RESERVE_SIZE (1u << 20)
static alignas(max_align_t) unsigned char reserve[RESERVE_SIZE];
static pthread_mutex_t reserve_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t reserve_top, reserve_live;

static void *reserve_alloc(size_t n)
{
    const size_t align = alignof(max_align_t);
    void *p = NULL;
    pthread_mutex_lock(&reserve_mu);
    if (reserve_live == 0)
        reserve_top = 0;
    size_t need = n == 0 ? align : (n + align - 1) / align * align;
    if (n <= RESERVE_SIZE && need <= RESERVE_SIZE - reserve_top) {
        p = reserve + reserve_top;
        reserve_top += need;
        reserve_live++;
    }
    pthread_mutex_unlock(&reserve_mu);
    return p;
}

static int in_reserve(const void *p)
{
    uintptr_t u = (uintptr_t)p, lo = (uintptr_t)reserve;
    return u >= lo && u < lo + RESERVE_SIZE;
}

/*
 * Parse arenas (json_load_arena). A request body of 1,000 samples is ~20,000
 * jansson allocations, each freed again one by one when the tree goes; in
 * the upload profile malloc and free of that tree were ~15 % of the server's
 * CPU. An arena takes the parse's allocations from a few chunks and frees
 * them at once. The tree may be changed after the parse (a member replaced,
 * an object grown): jansson then frees arena memory through counting_free,
 * which recognises it (the thread's live arena, a handful of chunks) and
 * does nothing. One live arena per thread: the tree must not outlive
 * json_arena_release nor leave the thread, which is how a request handler
 * uses its body.
 */
struct chunk {
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
};

struct json_arena {
    struct chunk *head;     /* where small blocks are cut from */
    struct chunk **by_addr; /* every chunk, in address order: in_arena's binary search */
    size_t n, cap;
    size_t next_cap;
};

#define ARENA_FIRST (64u * 1024u)
#define ARENA_MAX (1024u * 1024u)

static _Thread_local struct json_arena *live_arena; /* frees of its memory are no-ops */
static _Thread_local int arena_parsing;             /* allocations come from live_arena */

/* A new chunk of cap bytes, entered in the address index; NULL when either
 * cannot be allocated. */
static struct chunk *arena_chunk(struct json_arena *a, size_t cap)
{
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 16;
        struct chunk **v = realloc(a->by_addr, nc * sizeof(*v));
        if (v == NULL)
            return NULL;
        a->by_addr = v;
        a->cap = nc;
    }
    struct chunk *c = malloc(sizeof(*c) + cap);
    if (c == NULL)
        return NULL;
    c->cap = cap;
    c->used = 0;
    size_t k = a->n++;
    while (k > 0 && (uintptr_t)a->by_addr[k - 1] > (uintptr_t)c) {
        a->by_addr[k] = a->by_addr[k - 1];
        k--;
    }
    a->by_addr[k] = c;
    return c;
}

static void *arena_alloc(struct json_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    if (n > SIZE_MAX / 4)
        return NULL;
    size_t need = n == 0 ? align : (n + align - 1) / align * align;
    struct chunk *c = a->head;
    if (c == NULL || c->cap - c->used < need) {
        if (need > a->next_cap / 2) {
            /* A large block (a long string's buffer) gets a chunk of its own;
             * the head keeps taking the small ones. */
            struct chunk *big = arena_chunk(a, need);
            if (big == NULL)
                return NULL;
            big->used = need;
            return big->data;
        }
        if ((c = arena_chunk(a, a->next_cap)) == NULL)
            return NULL;
        a->head = c;
        if (a->next_cap < ARENA_MAX)
            a->next_cap *= 2;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

/* Whether p lies in one of a's chunks: a binary search over their
 * addresses, so that freeing a large tree costs log(chunks) a node. */
static int in_arena(const struct json_arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    size_t lo = 0, hi = a->n;
    while (lo < hi) { /* the first chunk that starts after p */
        size_t mid = lo + (hi - lo) / 2;
        if ((uintptr_t)a->by_addr[mid] <= u)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return 0;
    const struct chunk *c = a->by_addr[lo - 1];
    return u >= (uintptr_t)c->data && u < (uintptr_t)c->data + c->cap;
}

static void *counting_malloc(size_t n)
{
    void *p = NULL;
    if (fail_countdown == 0 || --fail_countdown != 0) {
        /* A chunk that cannot be had: this block from the heap (freed the
         * ordinary way), before the shared reserve is touched. */
        if (arena_parsing)
            p = arena_alloc(live_arena, n);
        if (p == NULL)
            p = malloc(n);
    }
    if (p == NULL) {
        failures++;
        if (parsing > 0)
            p = reserve_alloc(n);
    }
    return p;
}

static void counting_free(void *p)
{
    if (p == NULL || (live_arena != NULL && in_arena(live_arena, p)))
        return;
    if (!in_reserve(p)) {
        free(p);
        return;
    }
    pthread_mutex_lock(&reserve_mu);
    reserve_live--;
    pthread_mutex_unlock(&reserve_mu);
}

static void install(void) { json_set_alloc_funcs(counting_malloc, counting_free); }

void json_load_init(void) { pthread_once(&once, install); }

unsigned long json_load_failures(void) { return failures; }

void json_load_fail_at(unsigned long n) { fail_countdown = n; }

size_t json_load_reserve_live(void)
{
    pthread_mutex_lock(&reserve_mu);
    size_t n = reserve_live;
    pthread_mutex_unlock(&reserve_mu);
    return n;
}

int json_load_checked(const char *buf, size_t len, size_t flags, json_t **out, json_error_t *je)
{
    json_error_t local;
    json_error_t *e = je != NULL ? je : &local;
    json_load_init();
    unsigned long before = failures;
    parsing++;
    json_t *j = json_loadb(buf != NULL ? buf : "", buf != NULL ? len : 0, flags, e);
    parsing--;
    *out = NULL;
    if (failures != before) {
        json_decref(j);
        return JSON_ENOMEM;
    }
    if (j == NULL)
        return JSON_EINVALID;
    *out = j;
    return 0;
}

int json_load_arena(const char *buf, size_t len, size_t flags, json_t **out, json_error_t *je,
                    struct json_arena **arena)
{
    *arena = NULL;
    *out = NULL;
    json_load_init();
    if (live_arena != NULL) /* one at a time: parse the plain way */
        return json_load_checked(buf, len, flags, out, je);
    struct json_arena *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return JSON_ENOMEM;
    a->next_cap = ARENA_FIRST;
    live_arena = a;
    arena_parsing = 1;
    int rc = json_load_checked(buf, len, flags, out, je);
    arena_parsing = 0;
    if (rc != 0) {
        json_arena_release(NULL, a);
        return rc;
    }
    *arena = a;
    return 0;
}

void json_arena_release(json_t *root, struct json_arena *arena)
{
    json_decref(root);
    if (arena == NULL)
        return;
    if (live_arena == arena)
        live_arena = NULL;
    for (size_t i = 0; i < arena->n; i++)
        free(arena->by_addr[i]);
    free(arena->by_addr);
    free(arena);
}

json_t *json_parse(const char *buf, size_t len, size_t flags, json_error_t *je)
{
    json_t *j = NULL;
    if (json_load_checked(buf, len, flags, &j, je) == JSON_ENOMEM && je != NULL) {
        memset(je, 0, sizeof *je);
        je->line = je->column = -1;
        snprintf(je->text, sizeof je->text, "out of memory");
        je->text[JSON_ERROR_TEXT_LENGTH - 1] = (char)json_error_out_of_memory;
    }
    return j;
}

json_t *json_parse_str(const char *s, size_t flags, json_error_t *je)
{
    return json_parse(s, s != NULL ? strlen(s) : 0, flags, je);
}
