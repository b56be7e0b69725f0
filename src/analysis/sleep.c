/*
 * sleep.c — Cole-Kripke, Sadeh, Webster rescoring, sleep periods, nightly
 * metrics, SRI and timing consistency (contracts and sources in sleep.h).
 */
#include "analysis/sleep.h"

#include <math.h>

#include "analysis/stats.h"

/* A count usable in a window: missing, out-of-record and negative weigh 0. */
static double count_at(const double *c, size_t n, long i)
{
    if (i < 0 || (size_t)i >= n)
        return 0.0;
    double v = c[i];
    return (isnan(v) || v < 0.0) ? 0.0 : v;
}

/* A count as Cole-Kripke weighs it at index i: missing, out-of-record and
 * negative are 0; the ActiGraph form divides by 100 and caps at 300. */
static double ck_count(const double *c, size_t n, long i, enum sleep_ck_scale scale)
{
    double a = count_at(c, n, i);
    if (scale == SLEEP_CK_ACTIGRAPH) {
        a /= 100.0;
        if (a > 300.0)
            a = 300.0;
    }
    return a;
}

int sleep_score_cole_kripke(const double *counts, size_t n, enum sleep_ck_scale scale, uint8_t *state)
{
    /* Cole et al. 1992, 1-minute epochs: weights for A-4 .. A+2. */
    static const double w_orig[7] = {404, 598, 326, 441, 1408, 508, 350};
    static const double w_ag[7] = {106, 54, 58, 76, 230, 74, 67};
    const double *w;
    double p;
    if (n && (!counts || !state))
        return -1;
    if (scale == SLEEP_CK_ORIGINAL) {
        w = w_orig;
        p = 0.00001;
    } else if (scale == SLEEP_CK_ACTIGRAPH) {
        w = w_ag;
        p = 0.001;
    } else {
        return -1;
    }
    /* A sliding window of the seven weighed counts A(i-4) .. A(i+2), so each
     * count is cleaned once rather than seven times. */
    double a[7];
    for (int k = 0; k < 7; k++)
        a[k] = ck_count(counts, n, (long)k - 4, scale);
    for (size_t i = 0; i < n; i++) {
        /* summed as a tree: a shorter dependency chain than left to right */
        double d =
            ((w[0] * a[0] + w[1] * a[1]) + (w[2] * a[2] + w[3] * a[3])) + ((w[4] * a[4] + w[5] * a[5]) + w[6] * a[6]);
        state[i] = isnan(counts[i]) ? SLEEP_STATE_UNKNOWN : (p * d < 1.0) ? SLEEP_STATE_SLEEP : SLEEP_STATE_WAKE;
        for (int k = 0; k < 6; k++)
            a[k] = a[k + 1];
        a[6] = ck_count(counts, n, (long)i + 3, scale);
    }
    return 0;
}

static double sadeh_count(const double *c, size_t n, long i)
{
    double a = count_at(c, n, i);
    return a > 300.0 ? 300.0 : a; /* ActiLife caps counts at 300 */
}

/* Sadeh's window statistics at minute i: 11-minute sum and NAT count,
 * 6-minute (t-5..t) sum and sum of squares. */
struct sadeh_win {
    double sum11, sum6, sq6;
    int nat;
};

static int is_nat(double a) { return a >= 50.0 && a < 100.0; }

static void sadeh_win_full(const double *c, size_t n, long i, struct sadeh_win *w)
{
    w->sum11 = w->sum6 = w->sq6 = 0.0;
    w->nat = 0;
    for (long k = -5; k <= 5; k++) {
        double a = sadeh_count(c, n, i + k);
        w->sum11 += a;
        w->nat += is_nat(a);
        if (k <= 0) {
            w->sum6 += a;
            w->sq6 += a * a;
        }
    }
}

int sleep_score_sadeh(const double *counts, size_t n, double threshold, uint8_t *state)
{
    if ((n && (!counts || !state)) || !isfinite(threshold))
        return -1;
    struct sadeh_win w = {0.0, 0.0, 0.0, 0};
    for (size_t i = 0; i < n; i++) {
        long t = (long)i;
        /* Moving sums, recomputed from scratch every 1024 minutes so that
         * rounding in the running sums cannot build up. */
        if (i % 1024 == 0) {
            sadeh_win_full(counts, n, t, &w);
        } else {
            double in11 = sadeh_count(counts, n, t + 5), out11 = sadeh_count(counts, n, t - 6);
            double in6 = sadeh_count(counts, n, t), out6 = out11;
            w.sum11 += in11 - out11;
            w.nat += is_nat(in11) - is_nat(out11);
            w.sum6 += in6 - out6;
            w.sq6 += in6 * in6 - out6 * out6;
        }
        if (isnan(counts[i])) {
            state[i] = SLEEP_STATE_UNKNOWN;
            continue;
        }
        double mean = w.sum11 / 11.0;
        /* sample SD of t-5..t: SS = sum x^2 - (sum x)^2 / 6, divisor 5 */
        double ss = w.sq6 - w.sum6 * w.sum6 / 6.0;
        double sd = ss > 0.0 ? sqrt(ss / 5.0) : 0.0;
        double lg = log(sadeh_count(counts, n, t) + 1.0);
        double ps = 7.601 - 0.065 * mean - 1.08 * w.nat - 0.056 * sd - 0.703 * lg;
        state[i] = ps > threshold ? SLEEP_STATE_SLEEP : SLEEP_STATE_WAKE;
    }
    return 0;
}

/* End (exclusive) of the run of `v` starting at i. */
static size_t run_end(const uint8_t *s, size_t n, size_t i, uint8_t v)
{
    while (i < n && s[i] == v)
        i++;
    return i;
}

int sleep_rescore_webster(uint8_t *state, size_t n)
{
    if (n && !state)
        return -1;
    /* Rules (a)-(c): walk the runs of the input. After a wake run [a, b) that
     * is directly followed by a sleep run [b, c), rescore the first k minutes
     * of that sleep run; continue at c, so lengths are the input's. */
    size_t i = 0;
    while (i < n) {
        if (state[i] != SLEEP_STATE_WAKE) {
            i++;
            continue;
        }
        size_t b = run_end(state, n, i, SLEEP_STATE_WAKE);
        size_t wake_len = b - i;
        if (b >= n || state[b] != SLEEP_STATE_SLEEP) {
            i = b;
            continue;
        }
        size_t c = run_end(state, n, b, SLEEP_STATE_SLEEP);
        size_t k = wake_len >= 15 ? 4 : wake_len >= 10 ? 3 : wake_len >= 4 ? 1 : 0;
        for (size_t j = b; j < c && j < b + k; j++)
            state[j] = SLEEP_STATE_WAKE;
        i = c;
    }
    /* Rules (d)-(e): short sleep bouts between long wake runs. Walking
     * forward, each bout is judged on the wake run before it as found (not
     * lengthened by an earlier rescoring) and the unmodified run after it. */
    size_t prev_wake = 0; /* length of the wake run ending right before i */
    i = 0;
    while (i < n) {
        uint8_t v = state[i];
        size_t e = run_end(state, n, i, v);
        if (v == SLEEP_STATE_WAKE) {
            prev_wake = e - i;
        } else if (v == SLEEP_STATE_SLEEP) {
            size_t len = e - i;
            size_t next_wake = (e < n && state[e] == SLEEP_STATE_WAKE) ? run_end(state, n, e, SLEEP_STATE_WAKE) - e : 0;
            if ((len <= 6 && prev_wake >= 10 && next_wake >= 10) || (len <= 10 && prev_wake >= 20 && next_wake >= 20))
                for (size_t j = i; j < e; j++)
                    state[j] = SLEEP_STATE_WAKE;
            prev_wake = 0;
        } else {
            prev_wake = 0;
        }
        i = e;
    }
    return 0;
}

struct sleep_period_params sleep_period_params_default(void)
{
    struct sleep_period_params p = {60, 180, 960};
    return p;
}

/* Night number of minute index i: nights run from local noon to local noon. */
static long night_of(size_t i, int start_min_of_day)
{
    long t = (long)i + start_min_of_day - 720;
    return t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
}

/* Index of the first local noon after minute index i (its night's end). */
static size_t night_end(size_t i, int start_min_of_day)
{
    long t = (long)i + start_min_of_day - 720; /* minutes after a noon */
    long into = t % 1440;
    if (into < 0)
        into += 1440;
    return i + (size_t)(1440 - into);
}

int sleep_periods_detect(const uint8_t *state, size_t n, int start_min_of_day, const struct sleep_period_params *p,
                         struct sleep_period *out, size_t max_out, size_t *n_out)
{
    if ((n && !state) || !p || !n_out || (max_out && !out) || start_min_of_day < 0 || start_min_of_day >= 1440)
        return -1;
    size_t count = 0;
    long cur_night = 0;
    int have = 0; /* a candidate for cur_night is held */
    struct sleep_period best = {0, 0};
    size_t best_sleep = 0;
    size_t i = 0;
    for (;;) {
        /* next block: from the next sleep minute, extend across short gaps */
        while (i < n && state[i] != SLEEP_STATE_SLEEP)
            i++;
        int done = i >= n;
        struct sleep_period blk = {i, i};
        size_t slept = 0;
        if (!done) {
            /* A block never crosses local noon: one night holds it whole. */
            size_t lim = night_end(i, start_min_of_day);
            if (lim > n)
                lim = n;
            size_t j = i;
            for (;;) {
                size_t e = run_end(state, lim, j, SLEEP_STATE_SLEEP);
                slept += e - j;
                blk.end = e;
                size_t g = e;
                while (g < lim && state[g] != SLEEP_STATE_SLEEP)
                    g++;
                if (g >= lim || g - e > p->max_gap_min)
                    break;
                j = g;
            }
            i = blk.end;
        }
        long night = done ? 0 : night_of(blk.start, start_min_of_day);
        /* Longer than max_period_min is not a night's sleep (non-wear or a
         * device left aside): it is never a main period. */
        if (!done && p->max_period_min > 0 && blk.end - blk.start > p->max_period_min)
            continue;
        if (have && (done || night != cur_night)) {
            if (best_sleep >= p->min_sleep_min && best_sleep > 0) {
                if (count < max_out)
                    out[count] = best;
                count++;
            }
            have = 0;
        }
        if (done)
            break;
        if (!have || slept > best_sleep) {
            best = blk;
            best_sleep = slept;
            cur_night = night;
            have = 1;
        }
    }
    *n_out = count < max_out ? count : max_out;
    return 0;
}

int sleep_night_compute(const uint8_t *state, size_t n, size_t bed_start, size_t bed_end, int bed_known,
                        size_t min_awakening_min, struct sleep_night *out)
{
    if (!out || (n && !state) || bed_start > bed_end || bed_end > n)
        return -1;
    struct sleep_night r;
    size_t tib = bed_end - bed_start;
    size_t unknown = 0, tst = 0;
    size_t onset = bed_end, last = bed_start; /* last: one past last sleep minute */
    if (min_awakening_min == 0)
        min_awakening_min = 1;
    for (size_t i = bed_start; i < bed_end; i++) {
        if (state[i] == SLEEP_STATE_UNKNOWN) {
            unknown++;
        } else if (state[i] == SLEEP_STATE_SLEEP) {
            tst++;
            if (onset == bed_end)
                onset = i;
            last = i + 1;
        }
    }
    r.bed_start = bed_start;
    r.bed_end = bed_end;
    r.bed_known = bed_known;
    r.n_unknown = unknown;
    r.onset = onset;
    r.final_wake = last;
    size_t known = tib - unknown;
    const char *why = NULL;
    if (tib == 0)
        why = "empty interval";
    else if (unknown * 2 > tib)
        why = "more than half of the night without data";
    else if (tst == 0)
        why = "no sleep scored";
    if (why) {
        r.time_in_bed_min = tib ? metric_value_ok((double)tib, known) : metric_value_null(why, 0);
        r.total_sleep_min = metric_value_null(why, known);
        r.efficiency_pct = metric_value_null(why, known);
        r.onset_latency_min = metric_value_null(why, known);
        r.waso_min = metric_value_null(why, known);
        r.awakenings = metric_value_null(why, known);
        r.midpoint_min = metric_value_null(why, known);
        if (unknown * 2 > tib)
            r.time_in_bed_min = metric_value_null(why, known);
        *out = r;
        return 0;
    }
    size_t waso = 0, awak = 0, run = 0;
    for (size_t i = onset; i < last; i++) {
        if (state[i] == SLEEP_STATE_WAKE) {
            waso++;
            run++;
        } else {
            if (run >= min_awakening_min)
                awak++;
            run = 0;
        }
    }
    /* the run before `last` always ends in sleep, so no trailing run to close */
    r.time_in_bed_min = metric_value_ok((double)tib, known);
    r.total_sleep_min = metric_value_ok((double)tst, known);
    r.efficiency_pct = metric_value_ok(100.0 * (double)tst / (double)tib, known);
    r.onset_latency_min = bed_known ? metric_value_ok((double)(onset - bed_start), known)
                                    : metric_value_null("no in-bed interval", known);
    r.waso_min = metric_value_ok((double)waso, known);
    r.awakenings = metric_value_ok((double)awak, known);
    r.midpoint_min = metric_value_ok(((double)onset + (double)last) / 2.0, known);
    *out = r;
    return 0;
}

struct metric sleep_sri_compute(const uint8_t *state, size_t n, size_t epochs_per_day)
{
    if (!epochs_per_day || (n && !state))
        return metric_value_null("invalid arguments", 0);
    if (n < 2 * epochs_per_day)
        return metric_value_null("fewer than two days", 0);
    size_t pairs = 0, agree = 0;
    for (size_t j = 0; j + epochs_per_day < n; j++) {
        uint8_t a = state[j], b = state[j + epochs_per_day];
        if (a == SLEEP_STATE_UNKNOWN || b == SLEEP_STATE_UNKNOWN)
            continue;
        pairs++;
        agree += (a == b);
    }
    if (pairs < epochs_per_day)
        return metric_value_null("less than one day of paired data", pairs);
    return metric_value_ok(-100.0 + 200.0 * (double)agree / (double)pairs, pairs);
}

/* Minutes after the local noon that precedes minute index i. */
static double after_noon(double idx, int start_min_of_day)
{
    double t = fmod(idx + (double)start_min_of_day - 720.0, 1440.0);
    return t < 0 ? t + 1440.0 : t;
}

int sleep_timing_compute(const struct sleep_night *nights, size_t n_nights, int start_min_of_day,
                         struct sleep_timing *out)
{
    if (!out || (n_nights && !nights) || start_min_of_day < 0 || start_min_of_day >= 1440)
        return -1;
    /* Welford's running moments, so no scratch arrays are needed. Timing
     * uses every night with a period (midpoint known), an estimated rest
     * period included; the TST SD only nights with a total sleep time. */
    double m[4] = {0}, s[4] = {0}, mid_mean = 0.0;
    size_t k = 0, kt = 0;
    for (size_t i = 0; i < n_nights; i++) {
        const struct sleep_night *nt = &nights[i];
        if (!metric_value_valid(&nt->midpoint_min))
            continue;
        double x[3] = {after_noon((double)nt->onset, start_min_of_day),
                       after_noon((double)nt->final_wake, start_min_of_day),
                       after_noon(nt->midpoint_min.value, start_min_of_day)};
        /* final wake is after onset: keep it on the same noon-based axis */
        if (x[1] < x[0])
            x[1] += 1440.0;
        k++;
        for (int j = 0; j < 3; j++) {
            double d = x[j] - m[j];
            m[j] += d / (double)k;
            s[j] += d * (x[j] - m[j]);
        }
        mid_mean = m[2];
        if (metric_value_valid(&nt->total_sleep_min)) {
            kt++;
            double d = nt->total_sleep_min.value - m[3];
            m[3] += d / (double)kt;
            s[3] += d * (nt->total_sleep_min.value - m[3]);
        }
    }
    const char *why = "fewer than two nights";
    if (k < 2) {
        out->onset_sd_min = metric_value_null(why, k);
        out->wake_sd_min = metric_value_null(why, k);
        out->midpoint_sd_min = metric_value_null(why, k);
        out->midpoint_mean_clock_min =
            k ? metric_value_ok(fmod(mid_mean + 720.0, 1440.0), k) : metric_value_null(why, 0);
    } else {
        out->onset_sd_min = metric_value_ok(sqrt(s[0] / (double)(k - 1)), k);
        out->wake_sd_min = metric_value_ok(sqrt(s[1] / (double)(k - 1)), k);
        out->midpoint_sd_min = metric_value_ok(sqrt(s[2] / (double)(k - 1)), k);
        out->midpoint_mean_clock_min = metric_value_ok(fmod(mid_mean + 720.0, 1440.0), k);
    }
    out->tst_sd_min = kt < 2 ? metric_value_null("fewer than two nights with a total sleep time", kt)
                             : metric_value_ok(sqrt(s[3] / (double)(kt - 1)), kt);
    return 0;
}
