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
    struct chunk *next;
    size_t cap, used;
    alignas(max_align_t) unsigned char data[];
};

struct json_arena {
    struct chunk *head;
    size_t next_cap;
};

#define ARENA_FIRST (64u * 1024u)
#define ARENA_MAX (1024u * 1024u)

static _Thread_local struct json_arena *live_arena; /* frees of its memory are no-ops */
static _Thread_local int arena_parsing;             /* allocations come from live_arena */

static void *arena_alloc(struct json_arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    size_t need = n == 0 ? align : (n + align - 1) / align * align;
    struct chunk *c = a->head;
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = a->next_cap;
        if (need > cap / 2) {
            /* A large block (a long string's buffer) gets a chunk of its own,
             * behind the head, which keeps taking the small ones. */
            struct chunk *big = malloc(sizeof(*big) + need);
            if (big == NULL)
                return NULL;
            big->cap = big->used = need;
            if (c != NULL) {
                big->next = c->next;
                c->next = big;
            } else {
                big->next = NULL;
                a->head = big;
            }
            return big->data;
        }
        struct chunk *nc = malloc(sizeof(*nc) + cap);
        if (nc == NULL)
            return NULL;
        nc->cap = cap;
        nc->used = 0;
        nc->next = c;
        a->head = c = nc;
        if (a->next_cap < ARENA_MAX)
            a->next_cap *= 2;
    }
    void *p = c->data + c->used;
    c->used += need;
    return p;
}

static int in_arena(const struct json_arena *a, const void *p)
{
    uintptr_t u = (uintptr_t)p;
    for (const struct chunk *c = a->head; c != NULL; c = c->next)
        if (u >= (uintptr_t)c->data && u < (uintptr_t)c->data + c->cap)
            return 1;
    return 0;
}

static void *counting_malloc(size_t n)
{
    void *p = NULL;
    if (fail_countdown == 0 || --fail_countdown != 0)
        p = arena_parsing ? arena_alloc(live_arena, n) : malloc(n);
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
    for (struct chunk *c = arena->head, *next; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    free(arena);
    if (live_arena == arena)
        live_arena = NULL;
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
