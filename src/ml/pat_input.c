/*
 * pat_input.c — from a minute series to PAT's standardized input.
 *
 * PAT consumes one week of minute-level activity, standardized with a
 * reference mean and standard deviation. The authors' fine-tuning notebook
 * fits scikit-learn's StandardScaler on the participants x 10080 matrix,
 * i.e. one mean and one (population) standard deviation per minute of the
 * week: PAT_STD_PER_MINUTE. As StandardScaler does for constant columns, a
 * standard deviation of exactly 0 scales by 1. Which reference belongs to a
 * weights file is configuration; this file only applies it (docs/pat.md).
 * Missing minutes (NaN, or past the end of a short series) are set to the
 * reference mean, i.e. 0 after standardization, and counted in the coverage.
 */
#include <math.h>
#include <string.h>

#include "ml/pat.h"

static int usable_std(float v) { return isfinite(v) && v >= 0.0f; }

/* StandardScaler's rule: a zero standard deviation scales by 1. */
static double scale_of(float sd) { return sd > 0.0f ? (double)sd : 1.0; }

int pat_input_prepare(const double *minutes, size_t n, const struct pat_standardization *std, float *out,
                      struct pat_coverage *cov)
{
    struct pat_coverage c = {.n_minutes = PAT_MINUTES};

    if ((!minutes && n > 0) || n > PAT_MINUTES || !std || !out)
        return PAT_ERR_ARG;
    switch (std->mode) {
    case PAT_STD_NONE: break;
    case PAT_STD_GLOBAL:
        if (!isfinite(std->mean) || !usable_std(std->std))
            return PAT_ERR_ARG;
        break;
    case PAT_STD_PER_MINUTE:
        if (!std->mean_per_minute || !std->std_per_minute)
            return PAT_ERR_ARG;
        for (size_t t = 0; t < PAT_MINUTES; t++) {
            if (!isfinite(std->mean_per_minute[t]) || !usable_std(std->std_per_minute[t]))
                return PAT_ERR_ARG;
        }
        break;
    default: return PAT_ERR_ARG;
    }
    for (size_t t = 0; t < PAT_MINUTES; t++) {
        double v = t < n ? minutes[t] : NAN, z;
        if (!isfinite(v)) {
            out[t] = 0.0f;
            c.n_missing++;
            continue;
        }
        c.n_present++;
        if (std->mode == PAT_STD_GLOBAL)
            z = (v - std->mean) / scale_of(std->std);
        else if (std->mode == PAT_STD_PER_MINUTE)
            z = (v - std->mean_per_minute[t]) / scale_of(std->std_per_minute[t]);
        else
            z = v;
        out[t] = (float)z;
    }
    c.fraction = (double)c.n_present / (double)PAT_MINUTES;
    if (cov)
        *cov = c;
    return PAT_OK;
}
