/*
 * json_load.h — parsing JSON bytes with allocation failure told apart from
 * bad input (issue 16).
 *
 * jansson does not report running out of memory reliably: a failed
 * allocation inside its lexer is reported as a syntax error ("invalid
 * token", "string or '}' expected"), an empty error (line -1), or not at
 * all — a byte its string buffer could not grow for is dropped and the
 * parse goes on, so a valid body could come back altered. This module
 * installs counting allocation functions into jansson (json_set_alloc_funcs,
 * once, process-wide; they call malloc and free) and counts failures per
 * thread, so a parse during which any jansson allocation failed is reported
 * as JSON_ENOMEM — the server's failure, never the client's — and its result,
 * complete or not, is thrown away.
 */
#ifndef CLARITY_CORE_JSON_LOAD_H
#define CLARITY_CORE_JSON_LOAD_H

#include <jansson.h>
#include <stddef.h>

/*
 * Parse len bytes of buf as one JSON value with jansson's flags. Returns 0
 * and a new reference in *out; JSON_EINVALID when the bytes are not JSON
 * (je, when not NULL, says where and why); JSON_ENOMEM when an allocation
 * failed during the parse (*out is NULL, whatever jansson made of it).
 */
int json_load_checked(const char *buf, size_t len, size_t flags, json_t **out, json_error_t *je);

/* Install the counting allocation functions now (json_load_checked does it
 * on first use; calling this early keeps every jansson allocation counted). */
void json_load_init(void);

/* Failed jansson allocations on this thread so far (for a caller that wants
 * to know whether building a value lost a member: compare before and after). */
unsigned long json_load_failures(void);

#ifdef CLARITY_TEST_API
/* Test API: make this thread's nth jansson allocation from now fail (1 = the
 * next one); 0 disarms. */
void json_load_fail_at(unsigned long n);
#endif

#endif
