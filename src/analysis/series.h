/*
 * series.h — from stored health samples to regular minute series.
 *
 * A series is one value per minute of a window in the user's LOCAL time.
 * Local minute numbers count minutes since 1970-01-01T00:00 on the user's
 * wall clock: local_min = floor(utc_ms / 60000) + offset_min, where
 * offset_min is the UTC offset recorded with each sample (HealthKit keeps
 * the device time zone per sample). Using each sample's own offset means a
 * daylight-saving change moves later samples on the wall clock exactly as the
 * user lived it: a spring-forward leaves a 60-minute hole (those wall-clock
 * minutes never happened, so they stay missing) and a fall-back folds two
 * real hours onto one wall-clock hour (sum metrics add up, mean metrics
 * average).
 *
 * Minutes without data are NaN in the values and 0 in the mask.
 *
 * Two sources (phone and watch) often record the same activity. The rule,
 * applied per minute: among the sources with a sample overlapping that
 * minute, only the one with the lowest `source` number contributes. Callers
 * number sources by preference (Clarity: 0 = Apple Watch, 1 = iPhone, 2+ =
 * other apps), so a minute is never counted twice and never mixes devices.
 *
 * Reentrant, no I/O; the only memory used is the caller's.
 */
#ifndef CLARITY_ANALYSIS_SERIES_H
#define CLARITY_ANALYSIS_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/metric.h"

#define SERIES_MAX_MINUTES (60u * 24u * 400u) /* 400 days: hard cap on windows */
#define SERIES_MAX_SOURCES 65535u             /* source numbers 0..65534; 65535 is reserved */

/* How the samples overlapping a minute become that minute's value. */
enum series_agg {
    /* Quantities (steps, energy, distance): a sample's value is spread
     * uniformly over its interval [start, end); each minute receives the
     * share of the value proportional to its overlap. A sample with
     * end <= start is an instant and lands whole in its start minute. */
    SERIES_AGG_SUM = 0,
    /* Rates (heart rate, HRV, respiratory rate, SpO2): the minute's value is
     * the unweighted mean of the samples of the chosen source that overlap
     * the minute (an instant sample overlaps its start minute). */
    SERIES_AGG_MEAN = 1,
};

struct series_sample {
    int64_t start_ms;   /* UTC epoch milliseconds */
    int64_t end_ms;     /* UTC epoch milliseconds; <= start_ms for an instant */
    double value;       /* NaN or infinite samples are ignored */
    int32_t offset_min; /* UTC offset of the device at start, minutes (-1080..1080) */
    uint16_t source;    /* preference rank: lower wins, see above */
};

/* Bytes of workspace series_minutes_build needs for an n-minute window. */
size_t series_workspace_size(size_t n_minutes);

/*
 * Build the minute series of samples[0..n_samples) over the local window
 * [start_local_min, start_local_min + n_minutes).
 *
 * out[i] receives the value of local minute start_local_min + i, NaN when no
 * sample covers it; mask (may be NULL) receives 1 for a minute with data and
 * 0 otherwise. workspace must hold series_workspace_size(n_minutes) bytes,
 * suitably aligned for uint32_t (malloc'd memory is).
 *
 * Returns 0, or -1 (outputs untouched) when n_minutes is 0 or exceeds
 * SERIES_MAX_MINUTES or an argument is NULL. Samples outside the window or
 * with an offset beyond +-18 h are skipped, not an error.
 */
int series_minutes_build(const struct series_sample *samples, size_t n_samples, int64_t start_local_min,
                         size_t n_minutes, enum series_agg agg, void *workspace, double *out, uint8_t *mask);

/* Local minute number of a UTC instant at a UTC offset (see above). */
int64_t series_local_minute(int64_t utc_ms, int32_t offset_min);

/*
 * Proxy actigraphy from minute steps (for the PAT encoder and for scoring
 * sleep on step data). Deterministic: for each minute
 *     a_i = (sqrt(max(steps_i, 0)) - ref_mean) / ref_std
 * and a missing minute (NaN) becomes the standardised value of zero steps,
 * (0 - ref_mean) / ref_std, because HealthKit writes no step sample for a
 * minute without steps; the quality score says how much of the window is
 * backed by data. The square root tames the heavy right tail of step counts
 * (variance stabilisation of counts, Anscombe 1948); ref_mean/ref_std are the
 * reference population's mean and SD of sqrt(steps) the model was trained
 * with, passed in so that one build serves any model version.
 *
 * No padding and no noise: out gets exactly n values. `required` is the
 * length the consumer needs (10,080 for one PAT week); the result says how
 * far short the input is.
 */
struct series_proxy_result {
    size_t n;              /* minutes written */
    size_t n_with_data;    /* minutes that had a step sample */
    size_t short_by;       /* required - n when n < required, else 0 */
    struct metric quality; /* share of the window's hours (60-minute blocks from
                              the first minute) with at least one step sample;
                              null when n == 0 */
};

int series_proxy_actigraphy(const double *steps, size_t n, double ref_mean, double ref_std, size_t required,
                            double *out, struct series_proxy_result *res);

#endif
