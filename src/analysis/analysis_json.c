/*
 * analysis_json.c — JSON rendering of analysis results (see analysis_json.h).
 */
#include "analysis/analysis_json.h"

#include <stdio.h>

/* Days since 1970-01-01 -> civil date (proleptic Gregorian), by the
 * 400-year-era decomposition (146097 days per era, years starting in March). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

char *analysis_json_local_time(int64_t local_min, char *out, size_t size)
{
    int64_t days = local_min / 1440;
    if (local_min % 1440 < 0)
        days--;
    int mod = (int)(local_min - days * 1440);
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    /* unsigned, bounded operands let the compiler see the output fits */
    snprintf(out, size, "%04lld-%02u-%02uT%02u:%02u", (long long)y, (unsigned)m % 100u, (unsigned)d % 100u,
             (unsigned)mod / 60u % 100u, (unsigned)mod % 60u);
    return out;
}

json_t *analysis_json_metric(const struct metric *m)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = 0;
    if (metric_value_valid(m)) {
        bad |= json_object_set_new(o, "value", json_real(m->value));
    } else {
        bad |= json_object_set_new(o, "value", json_null());
        bad |= json_object_set_new(o, "reason", json_string(m->reason));
    }
    bad |= json_object_set_new(o, "n", json_integer((json_int_t)m->n));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Set key to a new value; records failure in *bad (json_object_set_new
 * steals the reference even on failure, and refuses a NULL value). */
static void put(json_t *o, const char *key, json_t *v, int *bad)
{
    if (!v || json_object_set_new(o, key, v) != 0)
        *bad = 1;
}

#define PUTM(o, key, metric, bad) put((o), (key), analysis_json_metric(&(metric)), (bad))

static json_t *finish(json_t *o, int bad)
{
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void night_fields(json_t *o, const struct sleep_night *nt, int64_t t0, int *bad)
{
    char a[64];
    put(o, "period_start", json_string(analysis_json_local_time(t0 + (int64_t)nt->bed_start, a, sizeof(a))), bad);
    put(o, "period_end", json_string(analysis_json_local_time(t0 + (int64_t)nt->bed_end, a, sizeof(a))), bad);
    put(o, "in_bed_known", json_boolean(nt->bed_known), bad);
    if (metric_value_valid(&nt->total_sleep_min)) {
        put(o, "sleep_onset", json_string(analysis_json_local_time(t0 + (int64_t)nt->onset, a, sizeof(a))), bad);
        put(o, "final_wake", json_string(analysis_json_local_time(t0 + (int64_t)nt->final_wake, a, sizeof(a))), bad);
    }
    PUTM(o, "time_in_bed_min", nt->time_in_bed_min, bad);
    PUTM(o, "total_sleep_min", nt->total_sleep_min, bad);
    PUTM(o, "efficiency_pct", nt->efficiency_pct, bad);
    PUTM(o, "onset_latency_min", nt->onset_latency_min, bad);
    PUTM(o, "waso_min", nt->waso_min, bad);
    PUTM(o, "awakenings", nt->awakenings, bad);
    put(o, "unknown_min", json_integer((json_int_t)nt->n_unknown), bad);
}

json_t *analysis_json_night(const struct sleep_night *nt, int64_t start_local_min)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    night_fields(o, nt, start_local_min, &bad);
    return finish(o, bad);
}

json_t *analysis_json_hksleep_night(const struct hksleep_night *nt, int64_t start_local_min)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    night_fields(o, &nt->base, start_local_min, &bad);
    PUTM(o, "core_min", nt->core_min, &bad);
    PUTM(o, "deep_min", nt->deep_min, &bad);
    PUTM(o, "rem_min", nt->rem_min, &bad);
    PUTM(o, "unspecified_min", nt->unspecified_min, &bad);
    PUTM(o, "core_pct", nt->core_pct, &bad);
    PUTM(o, "deep_pct", nt->deep_pct, &bad);
    PUTM(o, "rem_pct", nt->rem_pct, &bad);
    return finish(o, bad);
}

static const char *scorer_name(const struct analysis_params *p)
{
    if (p->scorer == ANALYSIS_SCORER_SADEH)
        return "sadeh-1994";
    return p->ck_scale == SLEEP_CK_ACTIGRAPH ? "cole-kripke-1992-actigraph" : "cole-kripke-1992";
}

static json_t *params_json(const struct analysis_params *p)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "scorer", json_string(scorer_name(p)), &bad);
    if (p->scorer == ANALYSIS_SCORER_SADEH)
        put(o, "sadeh_threshold", json_real(p->sadeh_threshold), &bad);
    put(o, "webster_rescoring", json_boolean(p->webster), &bad);
    put(o, "bin_min", json_integer((json_int_t)p->bin_min), &bad);
    put(o, "max_gap_min", json_integer((json_int_t)p->period.max_gap_min), &bad);
    put(o, "min_sleep_min", json_integer((json_int_t)p->period.min_sleep_min), &bad);
    put(o, "min_awakening_min", json_integer((json_int_t)p->min_awakening_min), &bad);
    put(o, "max_period_min", json_integer((json_int_t)p->period.max_period_min), &bad);
    put(o, "nonwear", json_string(p->nonwear_choi ? "choi-2011 on counts" : "off for counts"), &bad);
    put(o, "rest_min_max", json_pack("[I, I]", (json_int_t)p->rest.min_rest_min, (json_int_t)p->rest.max_rest_min),
        &bad);
    return finish(o, bad);
}

static json_t *sleep_json(const struct analysis_report *r, int64_t t0)
{
    json_t *o = json_object(), *nights = json_array(), *timing = json_object();
    int bad = 0;
    if (!o || !nights || !timing) {
        json_decref(o);
        json_decref(nights);
        json_decref(timing);
        return NULL;
    }
    static const char *const basis[] = {"scored", "recorded", "estimated"};
    for (size_t i = 0; i < r->n_nights; i++) {
        json_t *nt = analysis_json_night(&r->nights[i], t0);
        if (nt && r->night_basis) {
            uint8_t b = r->night_basis[i] < 3 ? r->night_basis[i] : 0;
            put(nt, "basis", json_string(basis[b]), &bad);
            if (b == ANALYSIS_NIGHT_ESTIMATED)
                PUTM(nt, "estimated_rest_min", r->nights[i].time_in_bed_min, &bad);
        }
        if (!nt || json_array_append_new(nights, nt) != 0)
            bad = 1;
    }
    put(o, "nights", nights, &bad);
    put(o, "nights_recorded", json_integer((json_int_t)r->nights_recorded), &bad);
    put(o, "nights_scored", json_integer((json_int_t)r->nights_scored), &bad);
    put(o, "nights_estimated", json_integer((json_int_t)r->nights_estimated), &bad);
    PUTM(o, "estimated_rest_mean_min", r->rest_mean_min, &bad);
    PUTM(o, "nonwear_min", r->nonwear_min, &bad);
    /* step nights without an estimate, with the reason */
    json_t *skipped = json_array();
    if (!skipped)
        bad = 1;
    for (size_t i = 0; skipped && i < r->n_rest; i++) {
        if (r->rest[i].reason == NULL)
            continue;
        char a[64];
        json_t *e = json_pack("{s:s, s:n, s:s}", "night_start",
                              analysis_json_local_time(t0 + (int64_t)r->rest[i].night_start, a, sizeof(a)), "value",
                              "reason", r->rest[i].reason);
        if (!e || json_array_append_new(skipped, e) != 0)
            bad = 1;
    }
    put(o, "nights_without_rest_period", skipped, &bad);
    PUTM(o, "total_sleep_mean_min", r->tst_mean_min, &bad);
    PUTM(o, "efficiency_mean_pct", r->efficiency_mean_pct, &bad);
    PUTM(o, "waso_mean_min", r->waso_mean_min, &bad);
    PUTM(o, "awakenings_mean", r->awakenings_mean, &bad);
    PUTM(o, "sleep_regularity_index", r->sri, &bad);
    PUTM(timing, "onset_sd_min", r->timing.onset_sd_min, &bad);
    PUTM(timing, "final_wake_sd_min", r->timing.wake_sd_min, &bad);
    PUTM(timing, "midpoint_sd_min", r->timing.midpoint_sd_min, &bad);
    PUTM(timing, "total_sleep_sd_min", r->timing.tst_sd_min, &bad);
    PUTM(timing, "midpoint_mean_clock_min", r->timing.midpoint_mean_clock_min, &bad);
    put(o, "timing", timing, &bad);
    return finish(o, bad);
}

static json_t *circadian_json(const struct analysis_report *r)
{
    json_t *o = json_object(), *cos = json_object();
    int bad = 0;
    if (!o || !cos) {
        json_decref(o);
        json_decref(cos);
        return NULL;
    }
    put(o, "bin_min", json_integer((json_int_t)r->npar.bin_min), &bad);
    put(o, "valid_bins", json_integer((json_int_t)r->npar.n_bins), &bad);
    PUTM(o, "interdaily_stability", r->npar.is, &bad);
    PUTM(o, "intradaily_variability", r->npar.iv, &bad);
    PUTM(o, "relative_amplitude", r->npar.ra, &bad);
    PUTM(o, "l5", r->npar.l5, &bad);
    PUTM(o, "l5_onset_clock_min", r->npar.l5_onset_min, &bad);
    PUTM(o, "m10", r->npar.m10, &bad);
    PUTM(o, "m10_onset_clock_min", r->npar.m10_onset_min, &bad);
    PUTM(cos, "mesor", r->cosinor.mesor, &bad);
    PUTM(cos, "amplitude", r->cosinor.amplitude, &bad);
    PUTM(cos, "acrophase_clock_min", r->cosinor.acrophase_min, &bad);
    PUTM(cos, "r_squared", r->cosinor.r_squared, &bad);
    put(o, "cosinor", cos, &bad);
    return finish(o, bad);
}

static json_t *cardio_json(const struct features_cardio *c)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "hr_minutes", json_integer((json_int_t)c->hr_minutes), &bad);
    put(o, "hr_removed", json_integer((json_int_t)c->hr_removed), &bad);
    put(o, "hrv_samples", json_integer((json_int_t)c->hrv_samples), &bad);
    PUTM(o, "hr_mean_bpm", c->hr_mean_bpm, &bad);
    PUTM(o, "hr_max_bpm", c->hr_max_bpm, &bad);
    PUTM(o, "hr_resting_bpm", c->hr_resting_bpm, &bad);
    PUTM(o, "hr_sd_bpm", c->hr_sd_bpm, &bad);
    PUTM(o, "hrv_mean_ms", c->hrv_mean_ms, &bad);
    PUTM(o, "hrv_sd_ms", c->hrv_sd_ms, &bad);
    PUTM(o, "recovery_index", c->recovery_index, &bad);
    PUTM(o, "day_night_diff_bpm", c->day_night_diff_bpm, &bad);
    return finish(o, bad);
}

static json_t *resp_json(const struct features_resp *r)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "rr_samples", json_integer((json_int_t)r->rr_samples), &bad);
    put(o, "spo2_samples", json_integer((json_int_t)r->spo2_samples), &bad);
    PUTM(o, "rr_mean", r->rr_mean, &bad);
    PUTM(o, "rr_p25", r->rr_p25, &bad);
    PUTM(o, "rr_sd", r->rr_sd, &bad);
    PUTM(o, "rr_stability", r->rr_stability, &bad);
    PUTM(o, "spo2_mean_pct", r->spo2_mean, &bad);
    PUTM(o, "spo2_min_pct", r->spo2_min, &bad);
    PUTM(o, "spo2_sd_pct", r->spo2_sd, &bad);
    PUTM(o, "oxygenation", r->oxygenation, &bad);
    return finish(o, bad);
}

static json_t *activity_json(const struct features_activity *a)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "complete_days", json_integer((json_int_t)a->days), &bad);
    PUTM(o, "steps_total", a->steps_total, &bad);
    PUTM(o, "steps_daily_mean", a->steps_daily_mean, &bad);
    PUTM(o, "steps_daily_peak", a->steps_daily_peak, &bad);
    PUTM(o, "steps_consistency", a->steps_consistency, &bad);
    PUTM(o, "distance_daily_mean_m", a->distance_daily_mean_m, &bad);
    PUTM(o, "active_kcal_daily_mean", a->active_kcal_daily_mean, &bad);
    PUTM(o, "exercise_daily_mean_min", a->exercise_daily_mean_min, &bad);
    PUTM(o, "flights_total", a->flights_total, &bad);
    PUTM(o, "vo2max_latest", a->vo2max_latest, &bad);
    PUTM(o, "resting_hr_latest_bpm", a->resting_hr_latest_bpm, &bad);
    return finish(o, bad);
}

json_t *analysis_json_report(const struct analysis_report *r, const struct analysis_params *p, int64_t start_local_min,
                             int has_cardio, int has_resp, int has_activity)
{
    json_t *o = json_object();
    int bad = 0;
    if (!o)
        return NULL;
    put(o, "parameters", params_json(p), &bad);
    put(o, "minutes", json_integer((json_int_t)r->n_minutes), &bad);
    put(o, "valid_minutes", json_integer((json_int_t)r->n_valid), &bad);
    put(o, "sleep", sleep_json(r, start_local_min), &bad);
    put(o, "circadian", circadian_json(r), &bad);
    if (has_cardio)
        put(o, "cardio", cardio_json(&r->cardio), &bad);
    if (has_resp)
        put(o, "respiration", resp_json(&r->resp), &bad);
    if (has_activity)
        put(o, "activity", activity_json(&r->activity), &bad);
    return finish(o, bad);
}
