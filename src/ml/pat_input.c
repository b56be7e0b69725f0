/*
 * pat_input.c — from a minute series to PAT's standardized input.
 *
 * PAT consumes one week of minute-level activity, standardized with a
 * reference mean and standard deviation (the authors standardize NHANES
 * minute counts before pretraining; docs/pat.md). Which reference belongs to
 * a weights file is configuration; this file only applies it. Missing
 * minutes (NaN, or past the end of a short series) are set to the reference
 * mean, i.e. 0 after standardization, and counted in the coverage.
 */
#include <math.h>
#include <string.h>

#include "ml/pat.h"

static int positive(float v)
{
    return isfinite(v) && v > 0.0f;
}

int pat_input_prepare(const double *minutes, size_t n, const struct pat_standardization *std,
                      float *out, struct pat_coverage *cov)
{
    struct pat_coverage c = {.n_minutes = PAT_MINUTES};

    if ((!minutes && n > 0) || n > PAT_MINUTES || !std || !out)
        return PAT_ERR_ARG;
    switch (std->mode) {
    case PAT_STD_NONE:
        break;
    case PAT_STD_GLOBAL:
        if (!isfinite(std->mean) || !positive(std->std))
            return PAT_ERR_ARG;
        break;
    case PAT_STD_PER_MINUTE:
        if (!std->mean_per_minute || !std->std_per_minute)
            return PAT_ERR_ARG;
        for (size_t t = 0; t < PAT_MINUTES; t++) {
            if (!isfinite(std->mean_per_minute[t]) || !positive(std->std_per_minute[t]))
                return PAT_ERR_ARG;
        }
        break;
    default:
        return PAT_ERR_ARG;
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
            z = (v - std->mean) / std->std;
        else if (std->mode == PAT_STD_PER_MINUTE)
            z = (v - std->mean_per_minute[t]) / std->std_per_minute[t];
        else
            z = v;
        out[t] = (float)z;
    }
    c.fraction = (double)c.n_present / (double)PAT_MINUTES;
    if (cov)
        *cov = c;
    return PAT_OK;
}
