/*
 * timeutil.h — clocks and RFC 3339 timestamps.
 */
#ifndef CLARITY_CORE_TIMEUTIL_H
#define CLARITY_CORE_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);
/* Monotonic time in nanoseconds, for durations. */
uint64_t time_mono_ns(void);

/* Format epoch milliseconds as "2026-11-27T04:15:47.123Z" (UTC).
 * out must hold at least 25 bytes; returns out. */
char *time_format_rfc3339_ms(int64_t ms, char *out, size_t size);

/* Format epoch milliseconds as "2026-11-27T04:15:47Z" (UTC), the fraction
 * dropped (truncated toward the earlier second): what the API sends for
 * every timestamp Clarity generates, because Foundation's .iso8601 date
 * decoder (iOS 17/18) rejects fractional seconds. out must hold at least 21
 * bytes; returns out. */
char *time_format_rfc3339_s(int64_t ms, char *out, size_t size);

/*
 * Parse an RFC 3339 date-time ("2026-11-27T04:15:47Z", optional fraction of up
 * to 9 digits, offset "Z" or "+hh:mm"/"-hh:mm"; 't'/'z' and a space for 'T'
 * are accepted as RFC 3339 §5.6 allows). Writes epoch milliseconds (UTC) and,
 * if offset_min is not NULL, the offset in minutes. Returns 0, or -1 when the
 * text is not a valid date-time (including impossible dates like 02-30).
 */
int time_parse_rfc3339(const char *s, int64_t *ms_out, int *offset_min);

#endif
