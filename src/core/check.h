/*
 * check.h — validating JSON members, recording every field error.
 *
 * A parser of untrusted JSON (ingest's upload formats, the API's request
 * bodies) checks each member and records a field error (RFC 6901 JSON
 * Pointer + message) instead of stopping, so a client learns every mistake
 * at once. Where the errors go is the caller's business: a check only calls
 * its `record` function, so parsers below the interface layer produce the
 * same errors without knowing HTTP (api/input.c records them into a 422
 * problem+json; a test can collect them in a list). Messages never hold
 * health values.
 */
#ifndef CLARITY_CORE_CHECK_H
#define CLARITY_CORE_CHECK_H

#include <jansson.h>
#include <stddef.h>

struct check {
    int nerrors;
    /* Called once per error; pointer and message are borrowed for the call. */
    void (*record)(void *ctx, const char *pointer, const char *message);
    void *ctx;
};

/* Start a check whose errors go to record(ctx, …). */
void check_init(struct check *c, void (*record)(void *, const char *, const char *), void *ctx);

/* Record one error at pointer ("" is the whole document). */
void check_error(struct check *c, const char *pointer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The JSON Pointer of member name under prefix, escaped per RFC 6901 §3. */
void check_pointer(char *out, size_t outlen, const char *prefix, const char *name);

/* Members of obj not named in `allowed` (NULL-terminated) are ignored
 * (docs/api.md "Rules for clients"); at the top level (prefix "" or NULL) an
 * object with none of them (empty, or only unknown members) records an
 * error at "". */
void check_only(struct check *c, json_t *obj, const char *prefix, const char *const *allowed);

/*
 * A string member of UTF-8 length in [min, max] characters. Returns the
 * borrowed value, or NULL (absent and optional, or an error was recorded).
 */
const char *check_string(struct check *c, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                         size_t max);

/*
 * A string member of [min, max] BYTES of UTF-8: for text stored in a
 * column of fixed size (source, device, upload_source, sync_token…), so
 * that what is accepted always fits and is never cut (#16.8).
 */
const char *check_bytes(struct check *c, json_t *obj, const char *prefix, const char *name, int required, size_t min,
                        size_t max);

/* A boolean member; returns 0/1, or `def` when absent and optional. */
int check_bool(struct check *c, json_t *obj, const char *prefix, const char *name, int required, int def);

#endif
