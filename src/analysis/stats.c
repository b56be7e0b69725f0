/*
 * stats.c — descriptive statistics with NaN as missing (see stats.h).
 */
#include "analysis/stats.h"

#include <math.h>

size_t stats_count_valid(const double *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += !isnan(x[i]);
    return k;
}

double stats_mean_compute(const double *x, size_t n)
{
    double s = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        s += x[i];
        k++;
    }
    return k ? s / (double)k : NAN;
}

double stats_sd_compute(const double *x, size_t n)
{
    /* Two passes: the textbook one-pass formula loses precision when the mean
     * is large relative to the spread (heart rate around 60 with SD 0.1). */
    double mean = stats_mean_compute(x, n);
    double ss = 0.0;
    size_t k = 0;
    if (isnan(mean))
        return NAN;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]))
            continue;
        ss += (x[i] - mean) * (x[i] - mean);
        k++;
    }
    return k >= 2 ? sqrt(ss / (double)(k - 1)) : NAN;
}

double stats_min_compute(const double *x, size_t n)
{
    double m = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (isnan(m) || x[i] < m))
            m = x[i];
    return m;
}

double stats_max_compute(const double *x, size_t n)
{
    double m = NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]) && (isnan(m) || x[i] > m))
            m = x[i];
    return m;
}

/* Rearrange a[lo..hi] so that a[k] holds the value it would have if sorted,
 * smaller-or-equal values before it and greater-or-equal after (Hoare 1961,
 * Algorithm 65 FIND), with a median-of-three pivot. */
static void select_kth(double *a, size_t lo, size_t hi, size_t k)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        double t;
        /* median of three into a[mid] */
        if (a[mid] < a[lo]) {
            t = a[mid];
            a[mid] = a[lo];
            a[lo] = t;
        }
        if (a[hi] < a[lo]) {
            t = a[hi];
            a[hi] = a[lo];
            a[lo] = t;
        }
        if (a[hi] < a[mid]) {
            t = a[hi];
            a[hi] = a[mid];
            a[mid] = t;
        }
        double pivot = a[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        /* now a[lo..j] <= pivot <= a[i..hi], and j < i */
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return;
    }
}

double stats_quantile_compute(const double *x, size_t n, double q, double *work)
{
    size_t m = 0;
    if (!(q >= 0.0 && q <= 1.0))
        return NAN;
    for (size_t i = 0; i < n; i++)
        if (!isnan(x[i]))
            work[m++] = x[i];
    if (m == 0)
        return NAN;
    double h = (double)(m - 1) * q;
    size_t lo = (size_t)floor(h);
    double frac = h - (double)lo;
    select_kth(work, 0, m - 1, lo);
    double a = work[lo];
    if (frac == 0.0 || lo + 1 >= m)
        return a;
    /* the next order statistic is the minimum of the part above lo */
    double b = work[lo + 1];
    for (size_t i = lo + 2; i < m; i++)
        if (work[i] < b)
            b = work[i];
    return a + frac * (b - a);
}

size_t stats_gaps_interpolate(double *x, size_t n, size_t max_gap)
{
    size_t filled = 0;
    size_t i = 0;
    while (i < n) {
        if (!isnan(x[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < n && isnan(x[i]))
            i++;
        size_t len = i - start;
        if (start == 0 || i == n || len > max_gap)
            continue;
        double a = x[start - 1], b = x[i];
        for (size_t k = 0; k < len; k++)
            x[start + k] = a + (b - a) * (double)(k + 1) / (double)(len + 1);
        filled += len;
    }
    return filled;
}
