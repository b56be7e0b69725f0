/*
 * stats.h — small descriptive statistics over arrays with missing values.
 *
 * Missing values are NaN and are skipped. Nothing here allocates: functions
 * that must reorder data (quantiles) copy into caller-provided workspace.
 * Reentrant; no globals.
 */
#ifndef CLARITY_ANALYSIS_STATS_H
#define CLARITY_ANALYSIS_STATS_H

#include <stddef.h>

/* Number of non-NaN values in x[0..n). */
size_t stats_count_valid(const double *x, size_t n);

/* Mean of the non-NaN values; NaN when there are none. */
double stats_mean_compute(const double *x, size_t n);

/*
 * Sample standard deviation (divisor n_valid - 1) of the non-NaN values;
 * NaN when fewer than two values are present.
 */
double stats_sd_compute(const double *x, size_t n);

/* Minimum / maximum of the non-NaN values; NaN when there are none. */
double stats_min_compute(const double *x, size_t n);
double stats_max_compute(const double *x, size_t n);

/*
 * Quantile q in [0, 1] of the non-NaN values of x, by linear interpolation
 * between order statistics (Hyndman & Fan 1996, definition 7: h = (m-1)q,
 * Q = x_(floor h) + (h - floor h)(x_(floor h + 1) - x_(floor h)), 0-based).
 * work must hold n doubles; it is overwritten. x is not modified.
 * Uses selection (Hoare's FIND), O(n) expected, no allocation.
 * Returns NaN when no value is present or q is outside [0, 1].
 */
double stats_quantile_compute(const double *x, size_t n, double q, double *work);

/*
 * Fill NaN runs of at most max_gap values that have a valid value on both
 * sides by linear interpolation, in place. Longer runs and runs touching either
 * end stay NaN. Returns the number of values filled.
 */
size_t stats_gaps_interpolate(double *x, size_t n, size_t max_gap);

#endif
