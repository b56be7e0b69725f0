/*
 * metric.h — a number that may be absent, with the reason and the amount of
 * data behind it.
 *
 * Every figure the analysis library reports is a struct metric. A metric is
 * either a measurement (reason == NULL, value finite) or an explicit null
 * (reason != NULL, value NaN). There is no third state: the library never
 * substitutes a default such as 0.5 for a number it could not compute.
 * `n` is the amount of data the figure rests on, in the unit the producing
 * function documents (valid minutes, samples, nights, days).
 *
 * reason strings are static, short, lower-case English and safe to show to a
 * user; they never contain health values.
 */
#ifndef CLARITY_ANALYSIS_METRIC_H
#define CLARITY_ANALYSIS_METRIC_H

#include <math.h>
#include <stddef.h>

struct metric {
    double value;       /* NaN when reason != NULL */
    size_t n;           /* data the value rests on (unit: see producer) */
    const char *reason; /* NULL for a measurement, static text for a null */
};

/* A measurement of `value` resting on `n` units of data. */
static inline struct metric metric_value_ok(double value, size_t n)
{
    struct metric m = {value, n, NULL};
    if (!isfinite(value)) {
        /* A non-finite result is never a measurement. */
        m.value = NAN;
        m.reason = "not finite";
    }
    return m;
}

/* An explicit null: `reason` must be a static string. */
static inline struct metric metric_value_null(const char *reason, size_t n)
{
    struct metric m = {NAN, n, reason};
    return m;
}

/* 1 when m is a measurement. */
static inline int metric_value_valid(const struct metric *m) { return m->reason == NULL; }

#endif
