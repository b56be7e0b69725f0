/*
 * analysis.c — one-call analysis of a window (see analysis.h).
 */
#include "analysis/analysis.h"

#include <math.h>
#include <string.h>

#include "analysis/series.h"

#define ALIGN8(x) (((x) + 7u) & ~(size_t)7u)

struct analysis_params analysis_params_default(void)
{
    struct analysis_params p;
    memset(&p, 0, sizeof(p));
    p.scorer = ANALYSIS_SCORER_COLE_KRIPKE;
    p.ck_scale = SLEEP_CK_ORIGINAL;
    p.sadeh_threshold = SLEEP_SADEH_THRESHOLD_ACTILIFE;
    p.webster = 1;
    p.period = sleep_period_params_default();
    p.bin_min = 60;
    p.min_awakening_min = 1;
    return p;
}

static size_t max_nights(size_t n) { return n / 1440 + 2; }

size_t analysis_workspace_size(size_t n_minutes, size_t bin_min)
{
    size_t s = ALIGN8(n_minutes);                                   /* states */
    s += ALIGN8(max_nights(n_minutes) * sizeof(struct sleep_period));
    s += ALIGN8(max_nights(n_minutes) * sizeof(struct sleep_night));
    s += ALIGN8(circadian_workspace_size(n_minutes, bin_min));
    s += 2 * n_minutes * sizeof(double);                            /* features */
    return s;
}

/* Mean of one night metric across nights where it is valid. */
static struct metric nights_mean(const struct sleep_night *nt, size_t k, size_t off)
{
    double s = 0.0;
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        const struct metric *x = (const struct metric *)((const char *)&nt[i] + off);
        if (!metric_value_valid(x))
            continue;
        s += x->value;
        m++;
    }
    return m ? metric_value_ok(s / (double)m, m) : metric_value_null("no night with sleep", 0);
}

int analysis_report_run(const struct analysis_input *in, const struct analysis_params *p,
                        void *workspace, size_t workspace_size, struct analysis_report *out)
{
    if (!in || !p || !out || !workspace || !in->activity || in->n == 0 ||
        in->n > SERIES_MAX_MINUTES || p->bin_min == 0 || 60 % p->bin_min != 0 ||
        in->start_min_of_day < 0 || in->start_min_of_day >= 1440 ||
        workspace_size < analysis_workspace_size(in->n, p->bin_min))
        return -1;
    const size_t n = in->n;
    char *w = workspace;
    uint8_t *state = (uint8_t *)w;
    w += ALIGN8(n);
    struct sleep_period *periods = (struct sleep_period *)w;
    w += ALIGN8(max_nights(n) * sizeof(struct sleep_period));
    struct sleep_night *nights = (struct sleep_night *)w;
    w += ALIGN8(max_nights(n) * sizeof(struct sleep_night));
    void *cw = w;
    w += ALIGN8(circadian_workspace_size(n, p->bin_min));
    double *fw = (double *)w;

    memset(out, 0, sizeof(*out));
    out->n_minutes = n;
    out->n_valid = 0;
    for (size_t i = 0; i < n; i++)
        out->n_valid += !isnan(in->activity[i]);

    int rc = p->scorer == ANALYSIS_SCORER_SADEH
                 ? sleep_score_sadeh(in->activity, n, p->sadeh_threshold, state)
                 : sleep_score_cole_kripke(in->activity, n, p->ck_scale, state);
    if (rc != 0)
        return -1;
    if (p->webster && sleep_rescore_webster(state, n) != 0)
        return -1;
    out->state = state;

    size_t np = 0;
    if (sleep_periods_detect(state, n, in->start_min_of_day, &p->period, periods, max_nights(n),
                             &np) != 0)
        return -1;
    for (size_t i = 0; i < np; i++)
        if (sleep_night_compute(state, n, periods[i].start, periods[i].end, 0,
                                p->min_awakening_min, &nights[i]) != 0)
            return -1;
    out->n_nights = np;
    out->nights = nights;
    out->tst_mean_min = nights_mean(nights, np, offsetof(struct sleep_night, total_sleep_min));
    out->efficiency_mean_pct = nights_mean(nights, np, offsetof(struct sleep_night, efficiency_pct));
    out->waso_mean_min = nights_mean(nights, np, offsetof(struct sleep_night, waso_min));
    out->awakenings_mean = nights_mean(nights, np, offsetof(struct sleep_night, awakenings));
    out->sri = sleep_sri_compute(state, n, 1440);
    if (sleep_timing_compute(nights, np, in->start_min_of_day, &out->timing) != 0)
        return -1;

    if (circadian_npar_compute(in->activity, n, in->start_min_of_day, p->bin_min, cw, &out->npar) != 0)
        return -1;
    if (circadian_cosinor_fit(in->activity, n, in->start_min_of_day, 1440.0, &out->cosinor) != 0)
        return -1;

    if (features_cardio_compute(in->heart_rate, in->hrv_sdnn, n, in->start_min_of_day, fw,
                                &out->cardio) != 0)
        return -1;
    if (features_resp_compute(in->resp_rate, in->spo2_pct, n, fw, &out->resp) != 0)
        return -1;
    struct features_activity_input ai;
    memset(&ai, 0, sizeof(ai));
    ai.steps_min = in->steps;
    ai.n_min = in->steps ? n : 0;
    ai.start_min_of_day = in->start_min_of_day;
    if (features_activity_compute(&ai, fw, &out->activity) != 0)
        return -1;
    return 0;
}
