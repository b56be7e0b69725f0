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
 *
 * jansson's lexer also asserts on the byte it dropped (upstream #362): an
 * allocation that fails during a parse made here is served from a static
 * reserve instead (see json_load.c), so the process does not abort. Every
 * parse in src/ goes through json_load_checked or json_parse for that reason;
 * a bare json_loads/json_loadb is refused by scripts/check-layers.
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

/* json_loadb and json_loads with the same guarantees: NULL when the bytes
 * are not JSON or when an allocation failed during the parse (then je, when
 * not NULL, says "out of memory", json_error_out_of_memory), never an altered
 * document and never jansson's abort. */
json_t *json_parse(const char *buf, size_t len, size_t flags, json_error_t *je);
json_t *json_parse_str(const char *s, size_t flags, json_error_t *je);

/*
 * json_load_checked into an arena: the tree's parse-time allocations come
 * from a few chunks that json_arena_release(root, arena) frees at once
 * (after json_decref(root)). The tree may be changed meanwhile, but must
 * stay on this thread and not outlive the release; one arena per thread at a
 * time (a second call parses the plain way and sets *arena to NULL, which
 * json_arena_release accepts). On an error *out and *arena are NULL.
 */
struct json_arena;
int json_load_arena(const char *buf, size_t len, size_t flags, json_t **out, json_error_t *je,
                    struct json_arena **arena);
void json_arena_release(json_t *root, struct json_arena *arena);

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
/* Test API: allocations now live in the parse reserve (0 once every value a
 * failed parse made is freed). */
size_t json_load_reserve_live(void);
#endif

#endif
