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
    p.nonwear_choi = 1;
    p.rest = rest_params_default();
    return p;
}

static size_t max_nights(size_t n) { return n / 1440 + 2; }

size_t analysis_workspace_size(size_t n_minutes, size_t bin_min)
{
    size_t s = ALIGN8(n_minutes); /* states */
    s += ALIGN8(n_minutes);       /* non-wear */
    s += ALIGN8(max_nights(n_minutes) * sizeof(struct sleep_period));
    s += ALIGN8(max_nights(n_minutes) * sizeof(struct sleep_night));
    s += ALIGN8(max_nights(n_minutes) * sizeof(struct rest_night));
    s += ALIGN8(max_nights(n_minutes)); /* night basis */
    s += ALIGN8(max_nights(n_minutes)); /* recorded nights */
    s += ALIGN8(circadian_workspace_size(n_minutes, bin_min));
    s += 2 * n_minutes * sizeof(double); /* features */
    s += n_minutes * sizeof(double);     /* masked activity */
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

/* Night number (local noon to noon) of minute index i; night 0 holds i = 0. */
static size_t night_index(size_t i, int start_min_of_day)
{
    long into = ((long)start_min_of_day - 720) % 1440;
    if (into < 0)
        into += 1440;
    return ((size_t)into + i) / 1440;
}

#define STEPS_NO_SLEEP "steps cannot tell sleep from lying still"

int analysis_report_run(const struct analysis_input *in, const struct analysis_params *p, void *workspace,
                        size_t workspace_size, struct analysis_report *out)
{
    if (!in || !p || !out || !workspace || !in->activity || in->n == 0 || in->n > SERIES_MAX_MINUTES ||
        p->bin_min == 0 || 60 % p->bin_min != 0 || in->start_min_of_day < 0 || in->start_min_of_day >= 1440 ||
        workspace_size < analysis_workspace_size(in->n, p->bin_min))
        return -1;
    const size_t n = in->n, mn = max_nights(n);
    char *w = workspace;
    uint8_t *state = (uint8_t *)w;
    w += ALIGN8(n);
    uint8_t *nw = (uint8_t *)w;
    w += ALIGN8(n);
    struct sleep_period *periods = (struct sleep_period *)w;
    w += ALIGN8(mn * sizeof(struct sleep_period));
    struct sleep_night *nights = (struct sleep_night *)w;
    w += ALIGN8(mn * sizeof(struct sleep_night));
    struct rest_night *rest = (struct rest_night *)w;
    w += ALIGN8(mn * sizeof(struct rest_night));
    uint8_t *basis = (uint8_t *)w;
    w += ALIGN8(mn);
    uint8_t *recorded = (uint8_t *)w;
    w += ALIGN8(mn);
    void *cw = w;
    w += ALIGN8(circadian_workspace_size(n, p->bin_min));
    double *fw = (double *)w;
    w += 2 * n * sizeof(double);
    double *act = (double *)w;

    memset(out, 0, sizeof(*out));
    out->n_minutes = n;
    out->n_valid = 0;
    for (size_t i = 0; i < n; i++)
        out->n_valid += !isnan(in->activity[i]);

    /* Non-wear: the caller's mask (a watch's heart-rate gaps) and, on
     * counts, Choi et al. (2011). Never Choi on steps: a phone lying still
     * all night is exactly what rest looks like. */
    size_t n_nw = 0;
    if (!in->activity_is_steps && p->nonwear_choi) {
        if (rest_nonwear_choi(in->activity, n, nw, NULL) != 0)
            return -1;
    } else {
        memset(nw, 0, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (in->nonwear && in->nonwear[i])
            nw[i] = 1;
        n_nw += nw[i];
        act[i] = nw[i] ? NAN : in->activity[i];
    }
    out->nonwear = nw;
    if (in->activity_is_steps && !in->nonwear)
        out->nonwear_min = metric_value_null("not detectable from steps alone", 0);
    else if (!in->activity_is_steps && !p->nonwear_choi && !in->nonwear)
        out->nonwear_min = metric_value_null("non-wear detection off", 0);
    else
        out->nonwear_min = metric_value_ok((double)n_nw, n);

    /* Sleep/wake per minute: wrist counts are scored; steps get an
     * estimated rest period per night (rest.h). */
    size_t nr = 0;
    if (in->activity_is_steps) {
        if (rest_estimate_steps(act, n, in->start_min_of_day, &p->rest, rest, mn, &nr) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            state[i] = isnan(act[i]) ? SLEEP_STATE_UNKNOWN : SLEEP_STATE_WAKE;
        for (size_t r = 0; r < nr; r++)
            if (rest[r].reason == NULL)
                memset(state + rest[r].start, SLEEP_STATE_SLEEP, rest[r].end - rest[r].start);
    } else {
        int rc = p->scorer == ANALYSIS_SCORER_SADEH ? sleep_score_sadeh(act, n, p->sadeh_threshold, state)
                                                    : sleep_score_cole_kripke(act, n, p->ck_scale, state);
        if (rc != 0)
            return -1;
        if (p->webster && sleep_rescore_webster(state, n) != 0)
            return -1;
        out->rest_mean_min = metric_value_null("not estimated from counts", 0);
    }
    out->n_rest = nr;
    out->rest = rest;

    /* The device's own record takes whole nights. */
    memset(recorded, 0, mn);
    if (in->recorded_state) {
        for (size_t i = 0; i < n; i++)
            if (in->recorded_state[i] != SLEEP_STATE_UNKNOWN)
                recorded[night_index(i, in->start_min_of_day)] = 1;
        for (size_t i = 0; i < n; i++)
            if (recorded[night_index(i, in->start_min_of_day)])
                state[i] = in->recorded_state[i];
    }
    out->state = state;
    if (in->activity_is_steps) {
        /* mean estimated rest over the nights the device did not record */
        double s = 0.0;
        size_t k = 0;
        for (size_t r = 0; r < nr; r++) {
            if (rest[r].reason != NULL || recorded[night_index(rest[r].start, in->start_min_of_day)])
                continue;
            s += (double)(rest[r].end - rest[r].start);
            k++;
        }
        out->rest_mean_min =
            k ? metric_value_ok(s / (double)k, k) : metric_value_null("no night with an estimated rest period", 0);
    }

    size_t np = 0;
    if (sleep_periods_detect(state, n, in->start_min_of_day, &p->period, periods, mn, &np) != 0)
        return -1;
    for (size_t i = 0; i < np; i++) {
        if (sleep_night_compute(state, n, periods[i].start, periods[i].end, 0, p->min_awakening_min, &nights[i]) != 0)
            return -1;
        size_t night = night_index(periods[i].start, in->start_min_of_day);
        basis[i] = recorded[night]         ? ANALYSIS_NIGHT_RECORDED
                   : in->activity_is_steps ? ANALYSIS_NIGHT_ESTIMATED
                                           : ANALYSIS_NIGHT_SCORED;
        if (basis[i] == ANALYSIS_NIGHT_RECORDED)
            out->nights_recorded++;
        else if (basis[i] == ANALYSIS_NIGHT_SCORED)
            out->nights_scored++;
        else
            out->nights_estimated++;
        if (basis[i] == ANALYSIS_NIGHT_ESTIMATED) {
            /* The period is when the phone lay still: its length and timing
             * are reported, nothing that needs to know sleep from wake. */
            size_t known = nights[i].total_sleep_min.n;
            nights[i].total_sleep_min = metric_value_null(STEPS_NO_SLEEP, known);
            nights[i].efficiency_pct = metric_value_null(STEPS_NO_SLEEP, known);
            nights[i].waso_min = metric_value_null(STEPS_NO_SLEEP, known);
            nights[i].awakenings = metric_value_null(STEPS_NO_SLEEP, known);
        }
    }
    out->n_nights = np;
    out->nights = nights;
    out->night_basis = basis;
    out->tst_mean_min = nights_mean(nights, np, offsetof(struct sleep_night, total_sleep_min));
    out->efficiency_mean_pct = nights_mean(nights, np, offsetof(struct sleep_night, efficiency_pct));
    out->waso_mean_min = nights_mean(nights, np, offsetof(struct sleep_night, waso_min));
    out->awakenings_mean = nights_mean(nights, np, offsetof(struct sleep_night, awakenings));
    if (in->activity_is_steps && out->nights_recorded == 0) {
        const char *why = STEPS_NO_SLEEP "; see the estimated rest period";
        out->tst_mean_min = metric_value_null(why, 0);
        out->efficiency_mean_pct = metric_value_null(why, 0);
        out->waso_mean_min = metric_value_null(why, 0);
        out->awakenings_mean = metric_value_null(why, 0);
    }
    out->sri = sleep_sri_compute(state, n, 1440);
    if (sleep_timing_compute(nights, np, in->start_min_of_day, &out->timing) != 0)
        return -1;

    if (circadian_npar_compute(act, n, in->start_min_of_day, p->bin_min, cw, &out->npar) != 0)
        return -1;
    if (circadian_cosinor_fit(act, n, in->start_min_of_day, 1440.0, &out->cosinor) != 0)
        return -1;

    if (features_cardio_compute(in->heart_rate, in->hrv_sdnn, n, in->start_min_of_day, fw, &out->cardio) != 0)
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
