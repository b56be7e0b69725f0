/*
 * rest.h — non-wear detection and rest periods estimated from step counts.
 *
 * Non-wear of count data: Choi L, Liu Z, Matthews CE, Buchowski MS.
 * "Validation of accelerometer wear and nonwear time classification
 * algorithm." Med Sci Sports Exerc 2011;43(2):357-364. A non-wear period is
 * at least 90 consecutive minutes of zero counts, allowing an interval of at
 * most 2 minutes of nonzero counts when the 30 minutes upstream and the 30
 * minutes downstream of it are all zero.
 *
 * Non-wear of a watch that reports heart rate: a gap of more than
 * max_gap_min minutes without a heart-rate value (the watch measures heart
 * rate in the background every few minutes while worn, asleep or awake).
 *
 * Rest periods from steps (a phone has no sleep sensor, so Clarity never runs
 * a wrist-actigraphy scorer on steps): a documented heuristic, not a
 * validated sleep measure. In each night (local noon to next local noon) the
 * main rest period is the longest block of quiet minutes (no step), merged
 * across short bursts of steps (a walk to the bathroom), bounded in length.
 * It says when the phone lay still, not whether its owner slept.
 *
 * Reentrant, no allocation, no I/O. Functions return 0, or -1 for invalid
 * arguments (outputs untouched).
 */
#ifndef CLARITY_ANALYSIS_REST_H
#define CLARITY_ANALYSIS_REST_H

#include <stddef.h>
#include <stdint.h>

/*
 * Choi et al. (2011) on minute counts[0..n): nonwear[i] = 1 for minutes in a
 * non-wear period, 0 otherwise. NaN minutes are neither zero nor a spike:
 * they end a period and stay 0 (they are already missing). Negative counts
 * are treated as nonzero. *n_nonwear (may be NULL) = minutes marked.
 */
int rest_nonwear_choi(const double *counts, size_t n, uint8_t *nonwear, size_t *n_nonwear);

/*
 * Heart-rate gaps: nonwear[i] = 1 for minutes in a run of missing (NaN)
 * heart rate longer than max_gap_min, leading and trailing runs included;
 * 0 elsewhere. The caller decides that the device reports heart rate at all
 * (otherwise every minute would be "non-wear").
 */
int rest_nonwear_hr_gaps(const double *hr, size_t n, size_t max_gap_min, uint8_t *nonwear, size_t *n_nonwear);

struct rest_params {
    double quiet_max_steps; /* a minute is quiet at or below this many steps (0.5) */
    size_t max_burst_min;   /* bursts of at most this many non-quiet minutes ... (10) */
    double max_burst_steps; /* ... and at most this many steps are bridged (100) */
    size_t min_rest_min;    /* a main rest period spans at least this (180) */
    size_t max_rest_min;    /* ... and at most this (840 = 14 h); longer: phone not carried */
};

/* The defaults above. */
struct rest_params rest_params_default(void);

/* One night's estimate. reason NULL: [start, end) is the rest period;
 * otherwise start == end and reason says why there is none. */
struct rest_night {
    size_t night_start; /* index of the night's first minute (clipped to 0) */
    size_t start, end;  /* minute indices */
    size_t quiet_min;   /* quiet minutes inside [start, end) */
    const char *reason; /* static text */
};

/*
 * Main rest period of each night of steps[0..n) (minute steps, NaN = no
 * data; a caller zero-fills minutes inside the span the step data covers).
 * start_min_of_day is the local clock minute of steps[0]. A block is a run
 * of quiet minutes extended across bursts (at most max_burst_min non-quiet
 * minutes with at most max_burst_steps steps, followed by a quiet minute);
 * NaN minutes end a block; blocks never cross local noon. The night's main
 * rest period is its longest block (span); it must not touch missing data
 * or the ends of the series (it would be cut short), and must span
 * min_rest_min to max_rest_min minutes, otherwise the night gets a reason. A night with no
 * step data at all is not reported. Writes at most max_out nights in time
 * order; *n_out = nights written.
 */
int rest_estimate_steps(const double *steps, size_t n, int start_min_of_day, const struct rest_params *p,
                        struct rest_night *out, size_t max_out, size_t *n_out);

#endif
