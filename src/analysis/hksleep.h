/*
 * hksleep.h — nightly sleep metrics from HealthKit sleep-analysis samples.
 *
 * HealthKit records sleep as category samples over intervals, numbered as in
 * HKCategoryValueSleepAnalysis: inBed 0, asleepUnspecified 1, awake 2,
 * asleepCore 3, asleepDeep 4, asleepREM 5. Several sources (watch, phone, a
 * third-party app) may record the same night with overlapping intervals.
 *
 * The night is rasterised onto the minutes of a local-time window (local
 * minutes as in series.h), then:
 *   - a minute is IN BED when any source has any sleep-analysis sample over it;
 *   - its state comes from ONE source: the lowest-numbered source (the
 *     caller's preference order, as in series.h) that has an asleep or awake
 *     sample over it. Within that source, overlapping labels resolve to the
 *     most specific: a stage (core, deep, REM) over asleepUnspecified over
 *     awake;
 *   - an in-bed minute without any asleep/awake label is awake in bed;
 *   - a minute inside the night's span but not in bed has no data.
 * The analysed interval runs from the first to the last in-bed minute, and
 * the metrics are those of sleep_night_compute (sleep.h); onset latency is
 * known only when a source recorded inBed. Stage minutes are counted in the
 * same interval; percentages are of total sleep time.
 */
#ifndef CLARITY_ANALYSIS_HKSLEEP_H
#define CLARITY_ANALYSIS_HKSLEEP_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/metric.h"
#include "analysis/sleep.h"

enum hksleep_category {
    HKSLEEP_IN_BED = 0,
    HKSLEEP_ASLEEP_UNSPECIFIED = 1,
    HKSLEEP_AWAKE = 2,
    HKSLEEP_ASLEEP_CORE = 3,
    HKSLEEP_ASLEEP_DEEP = 4,
    HKSLEEP_ASLEEP_REM = 5,
};

struct hksleep_interval {
    int64_t start_ms, end_ms; /* UTC epoch ms, [start, end) */
    int32_t offset_min;       /* UTC offset at start */
    uint16_t source;          /* preference rank: lower wins */
    uint8_t category;         /* enum hksleep_category; others are ignored */
};

struct hksleep_night {
    struct sleep_night base; /* indices relative to the window start */
    struct metric core_min, deep_min, rem_min, unspecified_min;
    struct metric core_pct, deep_pct, rem_pct; /* of total sleep; null without stages */
};

/* Bytes of workspace for an n-minute window. */
size_t hksleep_workspace_size(size_t n_minutes);

/*
 * Metrics of the night held in the local window [start_local_min,
 * start_local_min + n_minutes) (e.g. local noon to noon). Intervals outside
 * the window are ignored and those crossing its edges are clipped.
 * Returns 0; -1 on invalid arguments or n_minutes beyond SERIES_MAX_MINUTES.
 * With no usable interval the night's metrics are nulls ("no sleep data").
 */
int hksleep_night_compute(const struct hksleep_interval *iv, size_t n_iv, int64_t start_local_min, size_t n_minutes,
                          void *workspace, struct hksleep_night *out);

/*
 * Per-minute sleep states over a multi-day window, for the Sleep Regularity
 * Index and timing consistency (sleep.h) on HealthKit data. Minutes are
 * rasterised as above; then, night by night (local noon to noon): a night
 * with at least one sleep-analysis sample is known — SLEEP where the chosen
 * label is an asleep category, WAKE elsewhere (out of bed means awake) — and
 * a night without any sample is UNKNOWN throughout (no record is not "awake").
 * workspace: hksleep_workspace_size(n_minutes) bytes; state: n_minutes bytes.
 * Returns 0, or -1 on invalid arguments.
 */
int hksleep_states_build(const struct hksleep_interval *iv, size_t n_iv, int64_t start_local_min, size_t n_minutes,
                         void *workspace, uint8_t *state);

#endif
