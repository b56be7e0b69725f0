/*
 * circadian.c — IS, IV, RA, L5, M10 and cosinor (see circadian.h).
 */
#include "analysis/circadian.h"

#include <math.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Bins a window touches: clock-aligned, from the bin holding minute 0. */
static size_t bins_spanned(size_t n, int start_min_of_day, size_t bin)
{
    size_t first = (size_t)start_min_of_day / bin;
    size_t last = ((size_t)start_min_of_day + n + bin - 1) / bin;
    return last - first;
}

/* Room for the bins of any window of n minutes, whatever its start: a
 * clock-aligned window touches at most ceil(n / bin) + 1 bins. */
static size_t bin_capacity(size_t n, size_t bin) { return n / bin + 2; }

size_t circadian_workspace_size(size_t n_minutes, size_t bin_min)
{
    if (bin_min == 0)
        return 0;
    size_t p = 1440 / bin_min;
    /* bin values + per-time-of-day sums and counts */
    return bin_capacity(n_minutes, bin_min) * sizeof(double) + p * 2 * sizeof(double);
}

static void npar_null_all(struct circadian_npar *o, const char *why, size_t n)
{
    o->is = o->iv = o->l5 = o->l5_onset_min = o->m10 = o->m10_onset_min = o->ra = metric_value_null(why, n);
}

int circadian_npar_compute(const double *x, size_t n, int start_min_of_day, size_t bin_min, void *workspace,
                           struct circadian_npar *out)
{
    if (!out || !workspace || (n && !x) || bin_min == 0 || 60 % bin_min != 0 || start_min_of_day < 0 ||
        start_min_of_day >= 1440)
        return -1;
    const size_t p = 1440 / bin_min; /* bins per day */
    const size_t first_bin = (size_t)start_min_of_day / bin_min;
    const size_t nb = bins_spanned(n, start_min_of_day, bin_min);
    double *bins = workspace;
    double *hsum = bins + bin_capacity(n, bin_min);
    double *hcnt = hsum + p;

    /* 1. Bin means; a bin counts when half its minutes are valid. */
    size_t valid_bins = 0;
    double grand = 0.0;
    for (size_t b = 0; b < nb; b++) {
        long lo = (long)((first_bin + b) * bin_min) - start_min_of_day;
        double s = 0.0;
        size_t k = 0;
        for (long m = lo; m < lo + (long)bin_min; m++) {
            if (m < 0 || (size_t)m >= n || isnan(x[m]))
                continue;
            s += x[m];
            k++;
        }
        if (2 * k >= bin_min && k > 0) {
            bins[b] = s / (double)k;
            grand += bins[b];
            valid_bins++;
        } else {
            bins[b] = NAN;
        }
    }
    memset(out, 0, sizeof(*out));
    out->bin_min = bin_min;
    out->n_bins = valid_bins;
    if (valid_bins < p) {
        npar_null_all(out, "less than one day of data", valid_bins);
        return 0;
    }
    grand /= (double)valid_bins;

    /* 2. Sums of squares. Total: sum_i (x_i - mean)^2. Between times of day:
     * sum_h n_h (mean_h - mean)^2 — with complete days n_h = N/p, which turns
     * this into van Someren's N sum_h (mean_h - mean)^2 / p. */
    for (size_t h = 0; h < p; h++)
        hsum[h] = hcnt[h] = 0.0;
    double sst = 0.0, sdiff = 0.0;
    size_t pairs = 0;
    for (size_t b = 0; b < nb; b++) {
        if (isnan(bins[b]))
            continue;
        size_t h = (first_bin + b) % p;
        hsum[h] += bins[b];
        hcnt[h] += 1.0;
        sst += (bins[b] - grand) * (bins[b] - grand);
        if (b > 0 && !isnan(bins[b - 1])) {
            sdiff += (bins[b] - bins[b - 1]) * (bins[b] - bins[b - 1]);
            pairs++;
        }
    }
    double ssb = 0.0;
    size_t hours_present = 0;
    for (size_t h = 0; h < p; h++) {
        if (hcnt[h] == 0.0)
            continue;
        hours_present++;
        double mh = hsum[h] / hcnt[h];
        ssb += hcnt[h] * (mh - grand) * (mh - grand);
    }

    /* Relative tolerance: a series constant up to rounding is constant. */
    int constant = !(sst > 1e-12 * (double)valid_bins * (1.0 + grand * grand));
    if (constant) {
        out->is = metric_value_null("constant series", valid_bins);
        out->iv = metric_value_null("constant series", valid_bins);
    } else {
        out->is = valid_bins >= 2 * p ? metric_value_ok(ssb / sst, valid_bins)
                                      : metric_value_null("fewer than two days of data", valid_bins);
        /* IV = N sum (x_i - x_{i-1})^2 / ((N - 1) sum (x_i - mean)^2), the
         * difference sum over consecutive valid bins and N - 1 their count. */
        out->iv = pairs > 0 ? metric_value_ok((double)valid_bins * sdiff / ((double)pairs * sst), valid_bins)
                            : metric_value_null("no consecutive bins", valid_bins);
    }

    /* 3. L5 / M10 on the mean day, windows wrapping over midnight. */
    if (hours_present < p) {
        const char *why = "mean day has bins without data";
        out->l5 = out->l5_onset_min = out->m10 = out->m10_onset_min = out->ra = metric_value_null(why, valid_bins);
        return 0;
    }
    for (size_t h = 0; h < p; h++)
        hsum[h] /= hcnt[h]; /* hsum now holds the mean-day profile */
    size_t w5 = 300 / bin_min, w10 = 600 / bin_min;
    double l5 = INFINITY, m10 = -INFINITY;
    size_t l5_at = 0, m10_at = 0;
    for (size_t h = 0; h < p; h++) {
        double s5 = 0.0, s10 = 0.0;
        for (size_t k = 0; k < w10; k++) {
            double v = hsum[(h + k) % p];
            s10 += v;
            if (k < w5)
                s5 += v;
        }
        s5 /= (double)w5;
        s10 /= (double)w10;
        if (s5 < l5) {
            l5 = s5;
            l5_at = h;
        }
        if (s10 > m10) {
            m10 = s10;
            m10_at = h;
        }
    }
    out->l5 = metric_value_ok(l5, valid_bins);
    out->l5_onset_min = metric_value_ok((double)(l5_at * bin_min), valid_bins);
    out->m10 = metric_value_ok(m10, valid_bins);
    out->m10_onset_min = metric_value_ok((double)(m10_at * bin_min), valid_bins);
    out->ra = (m10 + l5 > 0.0) ? metric_value_ok((m10 - l5) / (m10 + l5), valid_bins)
                               : metric_value_null("no activity", valid_bins);
    return 0;
}

/* Solve the symmetric 3x3 system A z = r by Cramer's rule; 0 if singular. */
static int solve3(const double a[3][3], const double r[3], double z[3])
{
    double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                 a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
    double scale = fabs(a[0][0] * a[1][1] * a[2][2]);
    if (!(fabs(det) > 1e-12 * scale))
        return 0;
    for (int c = 0; c < 3; c++) {
        double m[3][3];
        memcpy(m, a, sizeof(m));
        for (int i = 0; i < 3; i++)
            m[i][c] = r[i];
        z[c] = (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])) /
               det;
    }
    return 1;
}

int circadian_cosinor_fit(const double *x, size_t n, int start_min_of_day, double period_min,
                          struct circadian_cosinor *out)
{
    if (!out || (n && !x) || !(period_min > 0.0) || !isfinite(period_min) || start_min_of_day < 0 ||
        start_min_of_day >= 1440)
        return -1;
    const double w = 2.0 * M_PI / period_min;
    /* Normal equations of [1, cos, sin]; cos/sin advanced by rotation and
     * recomputed exactly every 1440 steps to bound rounding drift. */
    double a[3][3] = {{0}}, r[3] = {0}, sy = 0.0, syy = 0.0;
    size_t k = 0, first = n, last = 0;
    double c = 0.0, s = 0.0, cd = cos(w), sd = sin(w);
    for (size_t i = 0; i < n; i++) {
        if (i % 1440 == 0) {
            double t = (double)start_min_of_day + (double)i;
            c = cos(w * t);
            s = sin(w * t);
        }
        double y = x[i];
        if (!isnan(y)) {
            a[0][1] += c;
            a[0][2] += s;
            a[1][1] += c * c;
            a[1][2] += c * s;
            a[2][2] += s * s;
            r[0] += y;
            r[1] += y * c;
            r[2] += y * s;
            sy += y;
            syy += y * y;
            if (first == n)
                first = i;
            last = i;
            k++;
        }
        double c2 = c * cd - s * sd;
        s = s * cd + c * sd;
        c = c2;
    }
    a[0][0] = (double)k;
    a[1][0] = a[0][1];
    a[2][0] = a[0][2];
    a[2][1] = a[1][2];
    const char *why = NULL;
    double z[3];
    double sst = k ? syy - sy * sy / (double)k : 0.0;
    if (k < 3)
        why = "fewer than three valid minutes";
    else if ((double)(last - first + 1) < period_min)
        why = "data span shorter than one period";
    else if (!(sst > 1e-12 * (double)k * (1.0 + (sy / k) * (sy / k))))
        why = "constant series";
    else if (!solve3(a, r, z))
        why = "singular design";
    if (why) {
        out->mesor = out->amplitude = out->acrophase_min = out->r_squared = metric_value_null(why, k);
        return 0;
    }
    /* SSE = y'y - z'X'y for the least-squares solution. */
    double sse = syy - (z[0] * r[0] + z[1] * r[1] + z[2] * r[2]);
    double amp = hypot(z[1], z[2]);
    double phase = atan2(z[2], z[1]) / w; /* peak of b cos + g sin */
    phase = fmod(phase, period_min);
    if (phase < 0)
        phase += period_min;
    double r2 = 1.0 - sse / sst;
    if (r2 < 0.0)
        r2 = 0.0; /* rounding only: least squares with an intercept cannot do worse */
    out->mesor = metric_value_ok(z[0], k);
    out->amplitude = metric_value_ok(amp, k);
    out->acrophase_min = metric_value_ok(phase, k);
    out->r_squared = metric_value_ok(r2, k);
    return 0;
}

/* ---- pyActigraphy's conventions (docs/algorithms.md, "Conventions") ---- */

size_t circadian_pyact_workspace_size(size_t n_epochs, unsigned epoch_s)
{
    if (epoch_s == 0 || epoch_s > 3600 || 3600 % epoch_s != 0)
        return 0;
    size_t per_day = 86400 / epoch_s, per_hour = 3600 / epoch_s;
    /* hourly bins (the last one partial) + 2, the mean day twice, counts */
    return ((n_epochs + per_hour - 1) / per_hour + 2) * sizeof(double) + 2 * per_day * sizeof(double) +
           per_day * sizeof(size_t);
}

/* pandas' sample variance (ddof 1) of v[0..n). */
static double var_ddof1(const double *v, size_t n)
{
    if (n < 2)
        return NAN;
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m += v[i];
    m /= (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    return ss / (double)(n - 1);
}

int circadian_npar_pyactigraphy(const double *x, size_t n, unsigned epoch_s, int start_s_of_day, double threshold,
                                void *workspace, struct circadian_npar *out)
{
    if (!x || !out || !workspace || n == 0 || epoch_s == 0 || epoch_s > 3600 || 3600 % epoch_s != 0 ||
        start_s_of_day < 0 || start_s_of_day >= 86400 || !isfinite(threshold))
        return -1;
    const size_t per_hour = 3600 / epoch_s, per_day = 86400 / epoch_s;
    size_t nb = (n + per_hour - 1) / per_hour;
    double *bin = workspace;
    double *prof = bin + nb + 2; /* per_day time-of-day means, then a second copy */
    size_t *cnt = (size_t *)(prof + 2 * per_day);
    memset(out, 0, sizeof(*out));
    out->bin_min = 60;
    out->n_bins = nb;
    /* binarise (count > threshold -> 1; NaN stays missing), hourly sums of
     * bins anchored at the first epoch; a missing epoch adds 0. The mean
     * day is grouped by the epochs' time of day; pandas sorts the groups
     * and relabels them 0, e, 2e, ... (e the epoch), so an epoch grid that
     * does not start on a multiple of e after midnight is labelled by its
     * epoch index: tod = floor(start / e) + i. */
    for (size_t k = 0; k < nb; k++)
        bin[k] = 0.0;
    for (size_t t = 0; t < per_day; t++) {
        prof[t] = 0.0;
        cnt[t] = 0;
    }
    const size_t tod0 = (size_t)start_s_of_day / epoch_s;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        double b = x[i] > threshold ? 1.0 : 0.0;
        bin[i / per_hour] += b;
        size_t tod = (tod0 + i % per_day) % per_day;
        prof[tod] += b;
        cnt[tod]++;
    }
    /* IS = var(mean profile of the bins by time of day) / var(bins), both
     * with ddof 1; IV = mean(diff^2) / var(bins). Hourly bins k and k + 24
     * share their time of day. */
    double vb = var_ddof1(bin, nb);
    if (!(vb > 0.0)) {
        out->is = metric_value_null(nb < 2 ? "fewer than two bins" : "constant series", nb);
        out->iv = out->is;
    } else {
        double gm[24];
        size_t gn[24] = {0}, groups = 0;
        for (int h = 0; h < 24; h++)
            gm[h] = 0.0;
        for (size_t k = 0; k < nb; k++) {
            gm[k % 24] += bin[k];
            gn[k % 24]++;
        }
        double g[24];
        for (int h = 0; h < 24; h++)
            if (gn[h])
                g[groups++] = gm[h] / (double)gn[h];
        out->is = metric_value_ok(var_ddof1(g, groups) / vb, nb);
        double d2 = 0.0;
        for (size_t k = 1; k < nb; k++)
            d2 += (bin[k] - bin[k - 1]) * (bin[k] - bin[k - 1]);
        out->iv = metric_value_ok(d2 / (double)(nb - 1) / vb, nb);
    }
    /* L5/M10 on the mean day at the epoch's resolution, cyclic: windows of
     * 5 h / 10 h of epochs starting at each epoch of the day, the earliest
     * extreme wins; values are the mean per epoch */
    for (size_t t = 0; t < per_day; t++) {
        if (cnt[t] == 0) {
            const char *why = "a time of day without data";
            out->l5 = out->m10 = out->ra = out->l5_onset_min = out->m10_onset_min = metric_value_null(why, 0);
            return 0;
        }
        prof[t] /= (double)cnt[t];
        prof[per_day + t] = prof[t];
    }
    double lo = INFINITY, hi = -INFINITY;
    size_t lo_t = 0, hi_t = 0;
    for (int w = 0; w < 2; w++) {
        size_t len = (w == 0 ? 5 : 10) * per_hour;
        /* pandas' rolling sum (window ending at i) with its Kahan running
         * sums and equal-value rule, so that ties between windows resolve
         * as pyActigraphy's idxmin/idxmax see them */
        double sum = 0.0, comp_add = 0.0, comp_rem = 0.0, prev = prof[0];
        size_t nobs = 0, same = 0;
        for (size_t i = 0; i < 2 * per_day; i++) {
            if (i >= len) {
                double y = -prof[i - len] - comp_rem, t = sum + y;
                comp_rem = t - sum - y;
                sum = t;
                nobs--;
            }
            double v = prof[i], y = v - comp_add, t = sum + y;
            comp_add = t - sum - y;
            sum = t;
            nobs++;
            same = v == prev ? same + 1 : 1;
            prev = v;
            if (i + 1 < len)
                continue; /* this window starts before the profile */
            double r = same >= nobs ? prev * (double)nobs : sum;
            size_t start = i + 1 - len;
            if (w == 0 && r < lo) {
                lo = r;
                lo_t = start;
            }
            if (w == 1 && r > hi) {
                hi = r;
                hi_t = start;
            }
        }
    }
    size_t days = (size_t)((double)n * epoch_s / 86400.0);
    if (days == 0)
        days = 1;
    out->l5 = metric_value_ok(lo / (double)(5 * per_hour), days);
    out->m10 = metric_value_ok(hi / (double)(10 * per_hour), days);
    out->l5_onset_min = metric_value_ok((double)(lo_t % per_day) * epoch_s / 60.0, days);
    out->m10_onset_min = metric_value_ok((double)(hi_t % per_day) * epoch_s / 60.0, days);
    double den = out->m10.value + out->l5.value;
    out->ra = den > 0.0 ? metric_value_ok((out->m10.value - out->l5.value) / den, days)
                        : metric_value_null("M10 + L5 is zero", days);
    return 0;
}
