/*
 * hksleep.c — HealthKit sleep categories to nightly metrics (see hksleep.h).
 */
#include "analysis/hksleep.h"

#include <math.h>

#include "analysis/series.h"

#define NO_SOURCE 0xFFFFu
#define MS_PER_MIN 60000

/* Label precedence inside one source: stage > unspecified > awake > none. */
static int rank_of(uint8_t cat)
{
    switch (cat) {
    case HKSLEEP_ASLEEP_CORE:
    case HKSLEEP_ASLEEP_DEEP:
    case HKSLEEP_ASLEEP_REM: return 3;
    case HKSLEEP_ASLEEP_UNSPECIFIED: return 2;
    case HKSLEEP_AWAKE: return 1;
    default: return 0;
    }
}

size_t hksleep_workspace_size(size_t n_minutes)
{
    /* best source (uint16), label, in-bed flag, state */
    return n_minutes * (sizeof(uint16_t) + 3);
}

/* Window-relative minute range [*a, *b) covered by an interval; 0 if none. */
static int span(const struct hksleep_interval *v, int64_t start_local_min, size_t n, size_t *a, size_t *b)
{
    if (v->category > HKSLEEP_ASLEEP_REM || v->end_ms <= v->start_ms || v->offset_min < -1080 || v->offset_min > 1080)
        return 0;
    int64_t s = series_local_minute(v->start_ms, v->offset_min) - start_local_min;
    /* end is exclusive: the minute holding end_ms - 1 is the last covered */
    int64_t e = series_local_minute(v->end_ms - 1, v->offset_min) - start_local_min + 1;
    if (e <= 0 || s >= (int64_t)n)
        return 0;
    *a = s < 0 ? 0 : (size_t)s;
    *b = e > (int64_t)n ? n : (size_t)e;
    return 1;
}

static struct metric pct(size_t part, const struct metric *tst)
{
    if (!metric_value_valid(tst))
        return metric_value_null(tst->reason, tst->n);
    return metric_value_ok(100.0 * (double)part / tst->value, tst->n);
}

/* Rasterise the intervals onto the window (rules in hksleep.h): in-bed flags,
 * the preferred labelling source and its most specific label per minute.
 * Returns whether any source recorded inBed. */
static int rasterise(const struct hksleep_interval *iv, size_t n_iv, int64_t start_local_min, size_t n_minutes,
                     uint16_t *best, uint8_t *label, uint8_t *inbed)
{
    for (size_t i = 0; i < n_minutes; i++) {
        best[i] = NO_SOURCE;
        label[i] = 0xFF;
        inbed[i] = 0;
    }
    int bed_recorded = 0;
    /* Pass 1: in-bed flags and the preferred labelling source per minute. */
    for (size_t k = 0; k < n_iv; k++) {
        size_t a, b;
        if (iv[k].source >= NO_SOURCE || !span(&iv[k], start_local_min, n_minutes, &a, &b))
            continue;
        int labelled = rank_of(iv[k].category) > 0;
        if (!labelled)
            bed_recorded = 1;
        for (size_t m = a; m < b; m++) {
            inbed[m] = 1;
            if (labelled && iv[k].source < best[m])
                best[m] = iv[k].source;
        }
    }
    /* Pass 2: the preferred source's most specific label per minute. */
    for (size_t k = 0; k < n_iv; k++) {
        size_t a, b;
        int r = rank_of(iv[k].category);
        if (r == 0 || iv[k].source >= NO_SOURCE || !span(&iv[k], start_local_min, n_minutes, &a, &b))
            continue;
        for (size_t m = a; m < b; m++)
            if (best[m] == iv[k].source && (label[m] == 0xFF || r > rank_of(label[m])))
                label[m] = iv[k].category;
    }
    return bed_recorded;
}

static int is_asleep(uint8_t label) { return label != 0xFF && label != HKSLEEP_AWAKE && label != HKSLEEP_IN_BED; }

int hksleep_states_build(const struct hksleep_interval *iv, size_t n_iv, int64_t start_local_min, size_t n_minutes,
                         void *workspace, uint8_t *state)
{
    if (!state || !workspace || (n_iv && !iv) || n_minutes == 0 || n_minutes > SERIES_MAX_MINUTES)
        return -1;
    uint16_t *best = workspace;
    uint8_t *label = (uint8_t *)(best + n_minutes);
    uint8_t *inbed = label + n_minutes;
    rasterise(iv, n_iv, start_local_min, n_minutes, best, label, inbed);
    /* Night by night (local noon to noon): a night with any sleep-analysis
     * sample is known — asleep where labelled asleep, awake elsewhere; a
     * night without one is unknown throughout. */
    int64_t day0 = start_local_min - 720;
    size_t i = 0;
    while (i < n_minutes) {
        int64_t t = day0 + (int64_t)i;
        int64_t night = t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
        int64_t end_abs = (night + 1) * 1440 - day0; /* first index of the next night */
        size_t end = end_abs > (int64_t)n_minutes ? n_minutes : (size_t)end_abs;
        int any = 0;
        for (size_t m = i; m < end; m++)
            any |= inbed[m];
        for (size_t m = i; m < end; m++)
            state[m] = !any ? SLEEP_STATE_UNKNOWN : is_asleep(label[m]) ? SLEEP_STATE_SLEEP : SLEEP_STATE_WAKE;
        i = end;
    }
    return 0;
}

int hksleep_night_compute(const struct hksleep_interval *iv, size_t n_iv, int64_t start_local_min, size_t n_minutes,
                          void *workspace, struct hksleep_night *out)
{
    if (!out || !workspace || (n_iv && !iv) || n_minutes == 0 || n_minutes > SERIES_MAX_MINUTES)
        return -1;
    uint16_t *best = workspace;
    uint8_t *label = (uint8_t *)(best + n_minutes);
    uint8_t *inbed = label + n_minutes;
    uint8_t *state = inbed + n_minutes;
    int bed_recorded = rasterise(iv, n_iv, start_local_min, n_minutes, best, label, inbed);
    size_t first = n_minutes, last = 0;
    for (size_t i = 0; i < n_minutes; i++) {
        if (inbed[i]) {
            if (first == n_minutes)
                first = i;
            last = i + 1;
        }
        if (!inbed[i])
            state[i] = SLEEP_STATE_UNKNOWN;
        else if (label[i] == 0xFF || label[i] == HKSLEEP_AWAKE)
            state[i] = SLEEP_STATE_WAKE;
        else
            state[i] = SLEEP_STATE_SLEEP;
    }
    struct hksleep_night r;
    if (first == n_minutes) {
        const char *why = "no sleep data";
        sleep_night_compute(state, n_minutes, 0, 0, 0, 1, &r.base);
        r.base.time_in_bed_min = metric_value_null(why, 0);
        r.base.total_sleep_min = metric_value_null(why, 0);
        r.base.efficiency_pct = metric_value_null(why, 0);
        r.base.onset_latency_min = metric_value_null(why, 0);
        r.base.waso_min = metric_value_null(why, 0);
        r.base.awakenings = metric_value_null(why, 0);
        r.base.midpoint_min = metric_value_null(why, 0);
        r.core_min = r.deep_min = r.rem_min = r.unspecified_min = metric_value_null(why, 0);
        r.core_pct = r.deep_pct = r.rem_pct = metric_value_null(why, 0);
        *out = r;
        return 0;
    }
    if (sleep_night_compute(state, n_minutes, first, last, bed_recorded, 1, &r.base) != 0)
        return -1;
    size_t core = 0, deep = 0, rem = 0, unspec = 0;
    for (size_t i = first; i < last; i++) {
        if (state[i] != SLEEP_STATE_SLEEP)
            continue;
        core += label[i] == HKSLEEP_ASLEEP_CORE;
        deep += label[i] == HKSLEEP_ASLEEP_DEEP;
        rem += label[i] == HKSLEEP_ASLEEP_REM;
        unspec += label[i] == HKSLEEP_ASLEEP_UNSPECIFIED;
    }
    size_t known = last - first - r.base.n_unknown;
    r.core_min = metric_value_ok((double)core, known);
    r.deep_min = metric_value_ok((double)deep, known);
    r.rem_min = metric_value_ok((double)rem, known);
    r.unspecified_min = metric_value_ok((double)unspec, known);
    if (core + deep + rem == 0) {
        const char *why = "no sleep stage data";
        r.core_pct = r.deep_pct = r.rem_pct = metric_value_null(why, known);
    } else {
        r.core_pct = pct(core, &r.base.total_sleep_min);
        r.deep_pct = pct(deep, &r.base.total_sleep_min);
        r.rem_pct = pct(rem, &r.base.total_sleep_min);
    }
    *out = r;
    return 0;
}
