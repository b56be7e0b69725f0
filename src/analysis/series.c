/*
 * series.c — minute series from samples; proxy actigraphy (see series.h).
 */
#include "analysis/series.h"

#include <math.h>
#include <string.h>

#define MS_PER_MIN 60000
#define NO_SOURCE 0xFFFFu
#define MAX_OFFSET_MIN (18 * 60) /* ISO 8601 / RFC 3339 offsets stay within +-18 h */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int64_t series_local_minute(int64_t utc_ms, int32_t offset_min) { return floor_div(utc_ms, MS_PER_MIN) + offset_min; }

size_t series_workspace_size(size_t n_minutes) { return n_minutes * (sizeof(uint32_t) + sizeof(uint16_t)); }

/* The window-relative minute span [*first, *last] a sample covers, and its
 * local start/end in ms. Returns 0 when the sample misses the window or is
 * unusable. */
static int sample_span(const struct series_sample *s, int64_t start_local_min, size_t n, int64_t *first, int64_t *last,
                       double *t0, double *t1)
{
    if (!isfinite(s->value) || s->source >= NO_SOURCE)
        return 0;
    if (s->offset_min < -MAX_OFFSET_MIN || s->offset_min > MAX_OFFSET_MIN)
        return 0;
    /* local time in ms relative to the window start */
    int64_t base_ms = start_local_min * MS_PER_MIN;
    int64_t off_ms = (int64_t)s->offset_min * MS_PER_MIN;
    int64_t a = s->start_ms + off_ms - base_ms;
    int64_t b = s->end_ms + off_ms - base_ms;
    int64_t fa = floor_div(a, MS_PER_MIN);
    int64_t fb;
    if (b <= a) {
        fb = fa; /* an instant */
        b = a;
    } else {
        fb = floor_div(b - 1, MS_PER_MIN); /* end is exclusive */
    }
    if (fb < 0 || fa >= (int64_t)n)
        return 0;
    *first = fa < 0 ? 0 : fa;
    *last = fb >= (int64_t)n ? (int64_t)n - 1 : fb;
    *t0 = (double)a;
    *t1 = (double)b;
    return 1;
}

int series_minutes_build(const struct series_sample *samples, size_t n_samples, int64_t start_local_min,
                         size_t n_minutes, enum series_agg agg, void *workspace, double *out, uint8_t *mask)
{
    if (n_minutes == 0 || n_minutes > SERIES_MAX_MINUTES || !workspace || !out || (n_samples && !samples))
        return -1;
    uint32_t *cnt = workspace;
    uint16_t *best = (uint16_t *)(cnt + n_minutes);
    for (size_t i = 0; i < n_minutes; i++) {
        cnt[i] = 0;
        best[i] = NO_SOURCE;
        out[i] = 0.0;
    }

    /* Pass 1: the preferred (lowest-numbered) source present in each minute. */
    for (size_t k = 0; k < n_samples; k++) {
        int64_t first, last;
        double t0, t1;
        if (!sample_span(&samples[k], start_local_min, n_minutes, &first, &last, &t0, &t1))
            continue;
        uint16_t src = samples[k].source;
        for (int64_t m = first; m <= last; m++)
            if (src < best[m])
                best[m] = src;
    }

    /* Pass 2: accumulate only the preferred source's contributions. */
    for (size_t k = 0; k < n_samples; k++) {
        const struct series_sample *s = &samples[k];
        int64_t first, last;
        double t0, t1;
        if (!sample_span(s, start_local_min, n_minutes, &first, &last, &t0, &t1))
            continue;
        double dur = t1 - t0;
        for (int64_t m = first; m <= last; m++) {
            if (best[m] != s->source)
                continue;
            if (agg == SERIES_AGG_SUM) {
                if (dur <= 0.0) {
                    out[m] += s->value;
                } else {
                    double lo = (double)m * MS_PER_MIN, hi = lo + MS_PER_MIN;
                    double ov = fmin(hi, t1) - fmax(lo, t0);
                    if (ov > 0.0)
                        out[m] += s->value * ov / dur;
                }
            } else {
                out[m] += s->value;
            }
            cnt[m]++;
        }
    }

    for (size_t i = 0; i < n_minutes; i++) {
        int has = best[i] != NO_SOURCE && cnt[i] > 0;
        if (!has)
            out[i] = NAN;
        else if (agg == SERIES_AGG_MEAN)
            out[i] /= (double)cnt[i];
        if (mask)
            mask[i] = (uint8_t)has;
    }
    return 0;
}

int series_proxy_actigraphy(const double *steps, size_t n, double ref_mean, double ref_std, size_t required,
                            double *out, struct series_proxy_result *res)
{
    if (!res || (n && (!steps || !out)) || !isfinite(ref_mean) || !isfinite(ref_std) || !(ref_std > 0.0))
        return -1;
    size_t with_data = 0, hours = 0, hours_with = 0;
    int hour_has = 0;
    double zero = (0.0 - ref_mean) / ref_std;
    for (size_t i = 0; i < n; i++) {
        double v = steps[i];
        if (isnan(v)) {
            out[i] = zero;
        } else {
            out[i] = (sqrt(v > 0.0 ? v : 0.0) - ref_mean) / ref_std;
            with_data++;
            hour_has = 1;
        }
        if (i % 60 == 59 || i + 1 == n) {
            hours++;
            hours_with += (size_t)hour_has;
            hour_has = 0;
        }
    }
    res->n = n;
    res->n_with_data = with_data;
    res->short_by = n < required ? required - n : 0;
    res->quality = n ? metric_value_ok((double)hours_with / (double)hours, hours) : metric_value_null("no minutes", 0);
    return 0;
}
