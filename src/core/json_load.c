/*
 * json_load.c — JSON parsing that tells allocation failure from bad input.
 * See json_load.h.
 */
/* This file implements its header's test API too (CLARITY_TEST_API). */
#define CLARITY_TEST_API 1
#include "core/json_load.h"

#include <pthread.h>
#include <stdlib.h>

#include "core/err.h"

static _Thread_local unsigned long failures;
static _Thread_local unsigned long fail_countdown; /* test API: 0 = off */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *counting_malloc(size_t n)
{
    void *p = NULL;
    if (fail_countdown == 0 || --fail_countdown != 0)
        p = malloc(n);
    if (p == NULL)
        failures++;
    return p;
}

static void install(void) { json_set_alloc_funcs(counting_malloc, free); }

void json_load_init(void) { pthread_once(&once, install); }

unsigned long json_load_failures(void) { return failures; }

void json_load_fail_at(unsigned long n) { fail_countdown = n; }

int json_load_checked(const char *buf, size_t len, size_t flags, json_t **out, json_error_t *je)
{
    json_error_t local;
    json_error_t *e = je != NULL ? je : &local;
    json_load_init();
    unsigned long before = failures;
    json_t *j = json_loadb(buf != NULL ? buf : "", buf != NULL ? len : 0, flags, e);
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
