/*
 * sleep.h — sleep/wake scoring of 1-minute activity counts and the nightly
 * sleep metrics built on it.
 *
 * Scoring (one state per minute):
 *   - Cole, Kripke, Gruen, Mullaney & Gillin (1992), "Automatic sleep/wake
 *     identification from wrist activity", Sleep 15(5):461-469 — the 1-minute
 *     epoch equation, with the original scale or ActiGraph's rescaled form.
 *   - Sadeh, Sharkey & Carskadon (1994), "Activity-based sleep-wake
 *     identification: an empirical test of methodological issues", Sleep
 *     17(3):201-207.
 *   - Webster, Kripke, Messin, Mullaney & Wyborney (1982), "An activity-based
 *     sleep monitor system for ambulatory use", Sleep 5(4):389-399: the
 *     rescoring rules, as restated and applied by Cole et al. (1992).
 * Metrics: time in bed, total sleep time, efficiency, onset latency, wake
 * after sleep onset, awakenings, midpoint (definitions in docs/algorithms.md),
 * the Sleep Regularity Index of Phillips et al. (2017), Scientific Reports
 * 7:3216, and the night-to-night consistency of sleep timing.
 *
 * States are bytes: SLEEP_STATE_WAKE, SLEEP_STATE_SLEEP, SLEEP_STATE_UNKNOWN
 * (no data for that minute). Everything is reentrant, allocation-free and
 * I/O-free. Functions return 0, or -1 for invalid arguments (outputs untouched).
 */
#ifndef CLARITY_ANALYSIS_SLEEP_H
#define CLARITY_ANALYSIS_SLEEP_H

#include <stddef.h>
#include <stdint.h>

#include "analysis/metric.h"

#define SLEEP_STATE_WAKE 0u
#define SLEEP_STATE_SLEEP 1u
#define SLEEP_STATE_UNKNOWN 255u

enum sleep_ck_scale {
    /* Cole et al. (1992), 1-min epochs (Actillume, maximum 10-s count per
     * minute): D = 0.00001 (404 A-4 + 598 A-3 + 326 A-2 + 441 A-1 + 1408 A0
     * + 508 A+1 + 350 A+2). */
    SLEEP_CK_ORIGINAL = 0,
    /* The same equation rescaled for ActiGraph counts by ActiGraph (ActiLife
     * manual): A' = min(A / 100, 300), D = 0.001 (106 A'-4 + 54 A'-3 + 58 A'-2
     * + 76 A'-1 + 230 A'0 + 74 A'+1 + 67 A'+2). */
    SLEEP_CK_ACTIGRAPH = 1,
};

/*
 * Cole-Kripke: minute i is asleep when D_i < 1, awake otherwise. Missing
 * counts (NaN) in the window weigh as 0, as do the minutes before the first
 * and after the last (zero padding); a missing minute itself is UNKNOWN.
 * Negative counts are treated as 0. state receives n bytes.
 */
int sleep_score_cole_kripke(const double *counts, size_t n, enum sleep_ck_scale scale, uint8_t *state);

/* Sadeh et al. (1994) score sleep when PS >= 0. ActiGraph's ActiLife
 * implementation scores sleep when PS > -4; most published comparisons of
 * ActiGraph data use that form, so it is Clarity's default. */
#define SLEEP_SADEH_THRESHOLD_ORIGINAL 0.0
#define SLEEP_SADEH_THRESHOLD_ACTILIFE (-4.0)

/*
 * Sadeh: PS = 7.601 - 0.065 MEAN - 1.08 NAT - 0.056 SD - 0.703 LG with, at
 * minute t and counts capped at 300 (ActiLife): MEAN the mean count of the
 * 11-minute window t-5..t+5, NAT the number of minutes in that window with
 * 50 <= count < 100, SD the sample standard deviation (divisor 5) of minutes
 * t-5..t, LG = ln(count_t + 1). Minute t is asleep when PS > threshold.
 * Missing and out-of-record minutes count as 0 in the windows; a missing
 * minute itself is UNKNOWN.
 */
int sleep_score_sadeh(const double *counts, size_t n, double threshold, uint8_t *state);

/*
 * Webster rescoring, in place (Cole et al. 1992, after Webster et al. 1982):
 *   (a) after at least 4 minutes scored wake, the next 1 minute scored sleep
 *       is rescored wake;
 *   (b) after at least 10 minutes wake, the next 3 minutes sleep -> wake;
 *   (c) after at least 15 minutes wake, the next 4 minutes sleep -> wake;
 *   (d) a bout of at most 6 minutes sleep with at least 10 minutes wake
 *       directly before and after it -> wake;
 *   (e) a bout of at most 10 minutes sleep with at least 20 minutes wake
 *       directly before and after -> wake.
 * Rules (a)-(c) look at the run lengths of the input scoring; (d)-(e) at the
 * scoring after (a)-(c). UNKNOWN minutes end runs and are never changed.
 */
int sleep_rescore_webster(uint8_t *state, size_t n);

/* A [start, end) range of minute indices. */
struct sleep_period {
    size_t start;
    size_t end;
};

struct sleep_period_params {
    size_t max_gap_min;    /* wake/unknown gaps up to this long are bridged (default 60) */
    size_t min_sleep_min;  /* a main period needs at least this much sleep (default 180) */
    size_t max_period_min; /* a block longer than this is never a main period (default
                               960 = 16 h; 0 = no bound) */
};

/* The defaults above. */
struct sleep_period_params sleep_period_params_default(void);

/*
 * Main sleep period per night. Sleep runs are merged into blocks across gaps
 * of at most max_gap_min minutes, never across a local noon, so each block
 * lies inside one night (local noon to next local noon); a night's main
 * period is its block with the most sleep minutes, if that is at least
 * min_sleep_min and the block spans at most max_period_min minutes (a
 * 19-hour "night" is non-wear or a device left aside, not sleep). At most
 * one main period per night; the night's other blocks are naps and are not
 * reported here. The block runs from its first to the end of its last sleep
 * minute.
 * start_min_of_day is the local clock minute (0..1439) of state[0].
 * Writes at most max_out periods in time order and the count to *n_out.
 */
int sleep_periods_detect(const uint8_t *state, size_t n, int start_min_of_day, const struct sleep_period_params *p,
                         struct sleep_period *out, size_t max_out, size_t *n_out);

struct sleep_night {
    size_t bed_start, bed_end; /* analysed interval [start, end), minute indices */
    int bed_known;             /* 1: real in-bed interval; 0: the detected period */
    size_t onset;              /* first sleep minute (valid when total_sleep_min > 0) */
    size_t final_wake;         /* one past the last sleep minute */
    size_t n_unknown;          /* minutes without data inside the interval */
    struct metric time_in_bed_min;
    struct metric total_sleep_min;
    struct metric efficiency_pct;    /* 100 TST / TIB */
    struct metric onset_latency_min; /* onset - bed_start; null without in-bed */
    struct metric waso_min;          /* wake minutes between onset and final wake */
    struct metric awakenings;        /* wake bouts between onset and final wake */
    struct metric midpoint_min;      /* (onset + final_wake) / 2, minute index */
};

/*
 * Metrics of one night over [bed_start, bed_end). When bed_known is 0 the
 * interval is a detected sleep period, so onset latency is null ("no in-bed
 * interval") and efficiency is that of the period. An awakening is a run of
 * at least min_awakening_min wake minutes between onset and final wake
 * (min_awakening_min 0 is taken as 1). Unknown minutes count neither as
 * sleep nor wake; a night with more than half its interval unknown, or
 * without sleep, gets nulls with the reason.
 */
int sleep_night_compute(const uint8_t *state, size_t n, size_t bed_start, size_t bed_end, int bed_known,
                        size_t min_awakening_min, struct sleep_night *out);

/*
 * Sleep Regularity Index (Phillips et al. 2017):
 *     SRI = -100 + 200 / (M (N - 1)) * sum_{j=1}^{M(N-1)} delta(s_j, s_{j+M})
 * with M epochs per day, N days and delta 1 when the states 24 h apart agree.
 * With missing minutes the sum runs over the pairs where both states are
 * known and M (N - 1) becomes the number of such pairs. Null when fewer than
 * epochs_per_day pairs are known (less than one full day of comparisons).
 * n of the result = pairs used.
 */
struct metric sleep_sri_compute(const uint8_t *state, size_t n, size_t epochs_per_day);

struct sleep_timing {
    struct metric onset_sd_min;            /* SD across nights of sleep onset clock time */
    struct metric wake_sd_min;             /* ... of final wake */
    struct metric midpoint_sd_min;         /* ... of sleep midpoint */
    struct metric tst_sd_min;              /* ... of total sleep time */
    struct metric midpoint_mean_clock_min; /* mean midpoint, minutes after local midnight */
};

/*
 * Night-to-night consistency: sample SDs (minutes) of onset, final wake and
 * midpoint, each measured as minutes after the local noon before the night so
 * that times around midnight do not wrap. Nights without sleep are skipped;
 * null with fewer than two nights. n of each result = nights used.
 */
int sleep_timing_compute(const struct sleep_night *nights, size_t n_nights, int start_min_of_day,
                         struct sleep_timing *out);

#endif
