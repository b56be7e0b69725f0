/*
 * problem.h — RFC 7807 problem details, filled where a failure happens and
 * rendered once at the HTTP boundary (src/http/).
 *
 * A problem has a status, a type slug (https://clarity.dev/problems/<slug>),
 * a title derived from the slug, a detail sentence for the client, and an
 * optional list of {pointer, message} errors (JSON Pointer, RFC 6901). The
 * detail and messages must never contain health values, passwords or tokens.
 */
#ifndef CLARITY_CORE_PROBLEM_H
#define CLARITY_CORE_PROBLEM_H

#include <jansson.h>
#include <stddef.h>

#include "core/limits.h"

#define PROBLEM_TYPE_BASE "https://clarity.dev/problems/"
#define PROBLEM_MAX_ERRORS LIMIT_PROBLEM_ERRORS /* errors beyond this are counted, not listed */

struct problem_error {
    char *pointer; /* JSON Pointer into the request body, "" for the whole body */
    char *message;
};

struct problem {
    int status;
    const char *slug; /* static string, e.g. "validation-error" */
    char *detail;     /* heap, may be NULL */
    struct problem_error *errors;
    size_t nerrors;
    size_t errors_cap;
    size_t errors_dropped;
    int retry_after; /* seconds for Retry-After, 0 when none */
    json_t *extra;   /* owned; extension members (RFC 7807 §3.2) merged
                          into the rendering; never overrides standard ones */
};

/* Start or reset a problem with status, slug and a printf-style detail. The
 * problem owns its strings; problem_clear frees them. */
void problem_set(struct problem *p, int status, const char *slug, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The slug API.md assigns to an HTTP status (e.g. 404 → resource-not-found). */
const char *problem_slug_for_status(int status);
/* Human title for a slug ("Validation Error"); unknown slugs get "Error". */
const char *problem_title(const char *slug);

/* Add one field error. Returns 0, -1 on allocation failure. */
int problem_add_error(struct problem *p, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Attach extension members (steals the reference; replaces earlier ones). */
void problem_set_extra(struct problem *p, json_t *extra);

/*
 * Verbose problem details (DEBUG=true in development only; set once at
 * start-up): places that know an internal cause add it as extension members
 * named debug_* (e.g. the store's error), never values, passwords or tokens.
 */
void problem_verbose_set(int on);
int problem_verbose(void);

/* Free the problem's strings and zero it. Accepts a zeroed problem. */
void problem_clear(struct problem *p);

/*
 * Render as a JSON object: {type, title, status, detail, instance, request_id,
 * errors?}. instance and request_id are borrowed and may be NULL. Returns a
 * new reference (caller decrefs) or NULL on allocation failure.
 */
json_t *problem_to_json(const struct problem *p, const char *instance, const char *request_id);

#endif
