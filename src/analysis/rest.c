/*
 * rest.c — Choi (2011) non-wear, heart-rate-gap non-wear and rest periods
 * estimated from steps (contracts and sources in rest.h).
 */
#include "analysis/rest.h"

#include <math.h>

static int is_zero(double v) { return v == 0.0; } /* NaN compares false */

int rest_nonwear_choi(const double *counts, size_t n, uint8_t *nonwear, size_t *n_nonwear)
{
    /* Choi et al. 2011: 90-minute window, 2-minute spike tolerance, 30-minute
     * zero windows up- and downstream of a spike. */
    const size_t window = 90, spike = 2, guard = 30;
    if (n && (!counts || !nonwear))
        return -1;
    size_t marked = 0;
    for (size_t i = 0; i < n; i++)
        nonwear[i] = 0;
    size_t i = 0;
    while (i < n) {
        if (!is_zero(counts[i])) {
            i++;
            continue;
        }
        size_t a = i, run_a = i, b = i;
        while (b < n && is_zero(counts[b]))
            b++;
        /* extend across tolerated spikes: [b, c) nonzero and finite, at most
         * 2 minutes, 30 zeros before it (the run [run_a, b)) and after it */
        for (;;) {
            size_t c = b;
            while (c < n && c - b <= spike && isfinite(counts[c]) && !is_zero(counts[c]))
                c++;
            if (c >= n || c == b || c - b > spike || !is_zero(counts[c]) || b - run_a < guard)
                break;
            size_t d = c;
            while (d < n && is_zero(counts[d]))
                d++;
            if (d - c < guard)
                break;
            run_a = c;
            b = d;
        }
        if (b - a >= window) {
            for (size_t k = a; k < b; k++)
                nonwear[k] = 1;
            marked += b - a;
        }
        i = b;
    }
    if (n_nonwear)
        *n_nonwear = marked;
    return 0;
}

int rest_nonwear_hr_gaps(const double *hr, size_t n, size_t max_gap_min, uint8_t *nonwear, size_t *n_nonwear)
{
    if (n && (!hr || !nonwear))
        return -1;
    size_t marked = 0, i = 0;
    while (i < n) {
        if (!isnan(hr[i])) {
            nonwear[i++] = 0;
            continue;
        }
        size_t e = i;
        while (e < n && isnan(hr[e]))
            e++;
        uint8_t off = e - i > max_gap_min;
        for (size_t k = i; k < e; k++)
            nonwear[k] = off;
        marked += off ? e - i : 0;
        i = e;
    }
    if (n_nonwear)
        *n_nonwear = marked;
    return 0;
}

struct rest_params rest_params_default(void)
{
    struct rest_params p = {0.5, 10, 100.0, 180, 840};
    return p;
}

static int quiet(double v, const struct rest_params *p) { return isfinite(v) && v <= p->quiet_max_steps; }

/* End (exclusive) of the block starting at quiet minute s, within [s, lim). */
static size_t block_end(const double *x, size_t s, size_t lim, const struct rest_params *p, size_t *n_quiet)
{
    size_t j = s, q = 0;
    for (;;) {
        while (j < lim && quiet(x[j], p)) {
            j++;
            q++;
        }
        /* a burst [j, k) of finite, non-quiet minutes */
        size_t k = j;
        double steps = 0.0;
        while (k < lim && isfinite(x[k]) && !quiet(x[k], p) && k - j <= p->max_burst_min) {
            steps += x[k];
            k++;
        }
        if (k >= lim || k == j || k - j > p->max_burst_min || steps > p->max_burst_steps || !quiet(x[k], p))
            break;
        j = k;
    }
    *n_quiet = q;
    return j;
}

int rest_estimate_steps(const double *steps, size_t n, int start_min_of_day, const struct rest_params *p,
                        struct rest_night *out, size_t max_out, size_t *n_out)
{
    if ((n && !steps) || !p || !n_out || (max_out && !out) || start_min_of_day < 0 || start_min_of_day >= 1440 ||
        p->min_rest_min == 0 || p->max_rest_min < p->min_rest_min || !(p->quiet_max_steps >= 0.0) ||
        !(p->max_burst_steps >= 0.0))
        return -1;
    size_t count = 0;
    /* first night boundary: the local noon at or before index 0 */
    long into = ((long)start_min_of_day - 720) % 1440;
    if (into < 0)
        into += 1440;
    size_t w0 = 0, w1 = (size_t)(1440 - into); /* night [w0, w1) clipped */
    while (w0 < n && count < max_out) {
        if (w1 > n)
            w1 = n;
        int any = 0;
        for (size_t i = w0; i < w1 && !any; i++)
            any = isfinite(steps[i]);
        if (any) {
            size_t best_s = w0, best_e = w0, best_q = 0, i = w0;
            while (i < w1) {
                if (!quiet(steps[i], p)) {
                    i++;
                    continue;
                }
                size_t q;
                size_t e = block_end(steps, i, w1, p, &q);
                if (e - i > best_e - best_s) {
                    best_s = i;
                    best_e = e;
                    best_q = q;
                }
                i = e;
            }
            struct rest_night r = {w0, best_s, best_e, best_q, NULL};
            size_t span = best_e - best_s;
            if (span == 0)
                r.reason = "no minute without steps";
            else if (best_s == 0 || best_e == n || isnan(steps[best_s - 1]) || (best_e < n && isnan(steps[best_e])))
                r.reason = "the rest period runs past the step data";
            else if (span > p->max_rest_min)
                r.reason = "no steps for too long: the phone was probably not carried";
            else if (span < p->min_rest_min)
                r.reason = "no rest period long enough without steps";
            if (r.reason != NULL) {
                r.start = r.end = best_s;
                r.quiet_min = 0;
            }
            out[count++] = r;
        }
        w0 = w1;
        w1 = w0 + 1440;
    }
    *n_out = count;
    return 0;
}
