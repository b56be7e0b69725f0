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

static void *counting_malloc(size_t n)
{
    void *p = NULL;
    if (fail_countdown == 0 || --fail_countdown != 0)
        p = malloc(n);
    if (p == NULL) {
        failures++;
        if (parsing > 0)
            p = reserve_alloc(n);
    }
    return p;
}

static void counting_free(void *p)
{
    if (p == NULL)
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
