/*
 * insight_builtin.c — the built-in insight generator (contract in
 * insight_builtin.h; thresholds and their sources in docs/insights.md).
 */
#include "pipeline/insight_builtin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "pipeline/compute.h"

/* Thresholds (docs/insights.md has the sources). */
#define SLEEP_MIN_RECOMMENDED 420.0 /* 7 h: Watson et al. 2015, AASM/SRS consensus */
#define SLEEP_MAX_RECOMMENDED 540.0 /* 9 h: same consensus, upper bound */
#define EFFICIENCY_GOOD_PCT 85.0    /* Ohayon et al. 2017, NSF sleep quality */
#define SRI_REGULAR 80.0            /* Clarity band (SRI: Phillips et al. 2017) */
#define SRI_IRREGULAR 60.0
#define ONSET_SD_IRREGULAR_MIN 60.0 /* Clarity band: bedtimes varying by > 1 h */
#define IS_STABLE 0.6               /* Clarity bands (IS: Van Someren et al. 1999) */
#define IS_LOW 0.4
#define RA_STRONG 0.8 /* Clarity band (RA: Van Someren et al. 1999) */
#define RA_WEAK 0.6
#define STEPS_ACTIVE 8000.0 /* Paluch et al. 2022; Tudor-Locke et al. 2011 */
#define STEPS_LOW 5000.0    /* Tudor-Locke et al. 2013 */
#define RHR_LOW 60.0        /* typical adult resting range (AHA) */
#define RHR_HIGH 100.0

static const char *const focus_names[] = {"comprehensive", "sleep", "activity", "circadian", "cardio"};

int insight_focus_parse(const char *name, enum insight_focus *out)
{
    if (name == NULL) {
        *out = INSIGHT_FOCUS_COMPREHENSIVE;
        return 0;
    }
    for (size_t i = 0; i < sizeof(focus_names) / sizeof(focus_names[0]); i++) {
        if (strcmp(name, focus_names[i]) == 0) {
            *out = (enum insight_focus)i;
            return 0;
        }
    }
    return -1;
}

const char *insight_focus_name(enum insight_focus f)
{
    return (unsigned)f < sizeof(focus_names) / sizeof(focus_names[0]) ? focus_names[f] : "comprehensive";
}

int insight_metric_at(const json_t *root, const char *path, double *v)
{
    char part[64];
    const json_t *cur = root;
    const char *p = path;
    while (cur != NULL && *p != '\0') {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l >= sizeof(part))
            return 0;
        memcpy(part, p, l);
        part[l] = '\0';
        cur = json_object_get(cur, part);
        p += l + (dot != NULL);
    }
    if (cur == NULL)
        return 0;
    const json_t *val = json_is_object(cur) ? json_object_get(cur, "value") : cur;
    if (!json_is_number(val))
        return 0;
    double x = json_number_value(val);
    if (!isfinite(x))
        return 0;
    *v = x;
    return 1;
}

static double int_at(const json_t *o, const char *name, double def)
{
    const json_t *v = o ? json_object_get(o, name) : NULL;
    return json_is_number(v) ? json_number_value(v) : def;
}

struct gen {
    json_t *insights, *recs, *grounded, *withheld;
    struct buf narrative;
    int bad;
};

/* Physiological bounds: a figure outside them is never put into words
 * (issue #18: "You slept 136 h 45 min a night"); it is withheld with the
 * reason. Bounds are deliberately wide — they catch broken inputs, not
 * unusual people. Sources in docs/insights.md. */
struct bound {
    const char *metric;
    double lo, hi;
};
static const struct bound bounds[] = {
    {"healthkit_sleep.total_sleep_mean_min", 60.0, 960.0}, /* 1-16 h a night */
    {"sleep.total_sleep_mean_min", 60.0, 960.0},
    {"sleep.estimated_rest_mean_min", 180.0, 840.0}, /* the estimator's own bounds */
    {"healthkit_sleep.efficiency_mean_pct", 0.0, 100.0},
    {"sleep.efficiency_mean_pct", 0.0, 100.0},
    {"sleep.sleep_regularity_index", -100.0, 100.0},
    {"sleep.timing.onset_sd_min", 0.0, 720.0},
    {"circadian.interdaily_stability", 0.0, 1.0},
    {"circadian.relative_amplitude", 0.0, 1.0},
    {"circadian_28d.interdaily_stability", 0.0, 1.0},
    {"circadian_28d.relative_amplitude", 0.0, 1.0},
    {"trends.total_sleep_change_min", -900.0, 900.0},
    {"trends.estimated_rest_change_min", -660.0, 660.0},
    {"trends.steps_daily_change", -100000.0, 100000.0},
    {"activity.steps_daily_mean", 0.0, 100000.0},
    {"cardio.hr_resting_bpm", 25.0, 220.0},
    {"cardio.hrv_mean_ms", 1.0, 300.0},
};

/* The value at path when it is a measurement within its bounds; a measured
 * value outside them is recorded in g->withheld and not returned. */
static int figure(struct gen *g, const json_t *r, const char *path, double *v)
{
    if (!insight_metric_at(r, path, v))
        return 0;
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        if (strcmp(bounds[i].metric, path) != 0)
            continue;
        if (*v < bounds[i].lo || *v > bounds[i].hi) {
            json_t *o = json_pack("{s:s, s:s, s:[f, f]}", "metric", path, "reason",
                                  "outside physiological bounds: withheld", "bounds", bounds[i].lo, bounds[i].hi);
            if (o == NULL || json_array_append_new(g->withheld, o) != 0)
                g->bad = 1;
            return 0;
        }
    }
    return 1;
}

/* What each cited figure is called in a table and the unit its value is in
 * (issue #20: the web app's figures table showed the whole sentence and a
 * bare number). The unit is machine-readable: "min", "%", "index" (0-100),
 * "ratio" (0-1), "steps/day", "bpm", "ms"; docs/insights.md lists them. */
struct figure_desc {
    const char *metric, *label, *unit;
};
static const struct figure_desc descs[] = {
    {"healthkit_sleep.total_sleep_mean_min", "Sleep duration", "min"},
    {"sleep.total_sleep_mean_min", "Sleep duration (estimated)", "min"},
    {"sleep.estimated_rest_mean_min", "Rest period (estimated)", "min"},
    {"healthkit_sleep.efficiency_mean_pct", "Sleep efficiency", "%"},
    {"sleep.efficiency_mean_pct", "Sleep efficiency (estimated)", "%"},
    {"sleep.sleep_regularity_index", "Sleep regularity index", "index"},
    {"sleep.timing.onset_sd_min", "Bedtime variability", "min"},
    {"circadian.interdaily_stability", "Interdaily stability", "ratio"},
    {"circadian.relative_amplitude", "Relative amplitude", "ratio"},
    {"circadian_28d.interdaily_stability", "Interdaily stability (28 days)", "ratio"},
    {"circadian_28d.relative_amplitude", "Relative amplitude (28 days)", "ratio"},
    {"trends.total_sleep_change_min", "Sleep vs. your baseline", "min"},
    {"trends.estimated_rest_change_min", "Rest period vs. your baseline", "min"},
    {"trends.steps_daily_change", "Steps vs. your baseline", "steps/day"},
    {"activity.steps_daily_mean", "Daily steps", "steps/day"},
    {"cardio.hr_resting_bpm", "Resting heart rate", "bpm"},
    {"cardio.hrv_mean_ms", "Heart rate variability", "ms"},
};

int insight_figure_describe(const char *metric, const char **label, const char **unit)
{
    for (size_t i = 0; metric != NULL && i < sizeof(descs) / sizeof(descs[0]); i++) {
        if (strcmp(descs[i].metric, metric) == 0) {
            *label = descs[i].label;
            *unit = descs[i].unit;
            return 1;
        }
    }
    return 0;
}

int insight_figures_describe(json_t *key_insights)
{
    size_t k;
    json_t *x;
    int rc = 0;
    json_array_foreach (key_insights, k, x) {
        const char *label, *unit;
        if (!json_is_object(x) ||
            !insight_figure_describe(json_string_value(json_object_get(x, "metric")), &label, &unit))
            continue;
        if (json_object_get(x, "label") == NULL && json_object_set_new(x, "label", json_string(label)) != 0)
            rc = -1;
        if (json_object_get(x, "unit") == NULL && json_object_set_new(x, "unit", json_string(unit)) != 0)
            rc = -1;
    }
    return rc;
}

static int int_field(const json_t *r, const char *obj, const char *name)
{
    const json_t *v = json_object_get(json_object_get(r, obj), name);
    return json_is_integer(v) ? (int)json_integer_value(v) : 0;
}

static void hm(double minutes, char *out, size_t n)
{
    long m = lround(minutes);
    snprintf(out, n, "%ld h %02ld min", m / 60, m % 60);
}

static void say(struct gen *g, const char *category, const char *metric, double value, const char *reference,
                const char *text)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:s}", "text", text, "category", category, "metric", metric, "value",
                          round(value * 100.0) / 100.0, "reference", reference);
    const char *label, *unit;
    if (o != NULL && insight_figure_describe(metric, &label, &unit) &&
        (json_object_set_new(o, "label", json_string(label)) != 0 ||
         json_object_set_new(o, "unit", json_string(unit)) != 0))
        g->bad = 1;
    if (o == NULL || json_array_append_new(g->insights, o) != 0)
        g->bad = 1;
    if (json_array_append_new(g->grounded, json_string(metric)) != 0)
        g->bad = 1;
    if (buf_printf(&g->narrative, "%s%s", g->narrative.len ? " " : "", text) != 0)
        g->bad = 1;
}

static void advise(struct gen *g, const char *category, const char *metric, const char *text)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "text", text, "category", category, "metric", metric);
    if (o == NULL || json_array_append_new(g->recs, o) != 0)
        g->bad = 1;
}

static void sleep_part(struct gen *g, const json_t *r)
{
    char t[512], a[32];
    double v;
    /* Sleep the device recorded beats sleep estimated from movement. */
    const char *tst_path = "healthkit_sleep.total_sleep_mean_min";
    const char *eff_path = "healthkit_sleep.efficiency_mean_pct";
    const char *how = "recorded by your device";
    if (!figure(g, r, tst_path, &v)) {
        tst_path = "sleep.total_sleep_mean_min";
        eff_path = "sleep.efficiency_mean_pct";
        how = "estimated from your movement";
    }
    if (figure(g, r, tst_path, &v)) {
        hm(v, a, sizeof(a));
        if (v < SLEEP_MIN_RECOMMENDED) {
            snprintf(t, sizeof(t),
                     "You slept %s a night on average (%s), less than the 7 hours recommended for "
                     "adults.",
                     a, how);
            say(g, "sleep", tst_path, v, ">= 420 min", t);
            advise(g, "sleep", tst_path,
                   "Aim for at least 7 hours of sleep: a consistent bedtime that leaves "
                   "room for 7-9 hours in bed is a good start.");
        } else if (v > SLEEP_MAX_RECOMMENDED) {
            snprintf(t, sizeof(t),
                     "You slept %s a night on average (%s), more than the 7-9 hours usually "
                     "recommended for adults.",
                     a, how);
            say(g, "sleep", tst_path, v, "<= 540 min", t);
            advise(g, "sleep", tst_path,
                   "Long sleep is often fine; if you still feel tired during the day, it "
                   "is worth mentioning to a health professional.");
        } else {
            snprintf(t, sizeof(t), "You slept %s a night on average (%s), within the recommended 7-9 hours.", a, how);
            say(g, "sleep", tst_path, v, "420-540 min", t);
        }
    } else if (figure(g, r, "sleep.estimated_rest_mean_min", &v)) {
        /* Phone only: when the phone lay still, not sleep (issue #18). */
        hm(v, a, sizeof(a));
        snprintf(t, sizeof(t),
                 "Your phone recorded no steps for about %s a night on average: an estimate of "
                 "your nightly rest period. A phone cannot tell sleep from lying awake, so this is not your sleep "
                 "time; an Apple Watch worn at night would measure it.",
                 a);
        say(g, "sleep", "sleep.estimated_rest_mean_min", v, "180-840 min (estimator bounds)", t);
    }
    if (figure(g, r, eff_path, &v)) {
        if (v >= EFFICIENCY_GOOD_PCT) {
            snprintf(t, sizeof(t),
                     "You were asleep for %.0f%% of your time in bed, at or above the 85%% usually "
                     "seen as good sleep efficiency.",
                     v);
            say(g, "sleep", eff_path, v, ">= 85 %", t);
        } else {
            snprintf(t, sizeof(t),
                     "You were asleep for %.0f%% of your time in bed, below the 85%% usually seen "
                     "as good sleep efficiency.",
                     v);
            say(g, "sleep", eff_path, v, ">= 85 %", t);
            advise(g, "sleep", eff_path,
                   "Going to bed when sleepy and keeping screens out of bed can raise the "
                   "share of time in bed spent asleep.");
        }
    }
    /* Mostly step-estimated nights: the regularity is of rest and activity. */
    int estimated = int_field(r, "sleep", "nights_estimated");
    int measured = int_field(r, "sleep", "nights_recorded") + int_field(r, "sleep", "nights_scored");
    const char *pattern = estimated > measured ? "rest-activity pattern (from your steps)" : "sleep-wake pattern";
    if (figure(g, r, "sleep.sleep_regularity_index", &v)) {
        const char *word = v >= SRI_REGULAR ? "regular" : v >= SRI_IRREGULAR ? "moderately regular" : "irregular";
        snprintf(t, sizeof(t), "Your %s was %s from day to day (regularity index %.0f of 100).", pattern, word, v);
        say(g, "sleep", "sleep.sleep_regularity_index", v, ">= 80 regular, < 60 irregular", t);
        if (v < SRI_IRREGULAR)
            advise(g, "sleep", "sleep.sleep_regularity_index",
                   "Going to bed and getting up at similar times "
                   "every day, weekends included, makes sleep more regular.");
    }
    if (figure(g, r, "sleep.timing.onset_sd_min", &v) && v > ONSET_SD_IRREGULAR_MIN) {
        snprintf(t, sizeof(t), "The time your %s began varied by about %.0f minutes from night to night.",
                 estimated > measured ? "rest period" : "sleep", v);
        say(g, "sleep", "sleep.timing.onset_sd_min", v, "<= 60 min", t);
        advise(g, "sleep", "sleep.timing.onset_sd_min",
               "Try to keep your bedtime within the same hour each "
               "night.");
    }
}

static void circadian_part(struct gen *g, const json_t *r)
{
    char t[512];
    double v;
    /* 28 days where the data reach that far (rhythm measures need weeks),
     * else the analysed week. */
    const char *is_path = "circadian_28d.interdaily_stability", *ra_path = "circadian_28d.relative_amplitude";
    const char *span = "over the last 28 days";
    if (!insight_metric_at(r, is_path, &v)) {
        is_path = "circadian.interdaily_stability";
        ra_path = "circadian.relative_amplitude";
        span = "across days";
    }
    if (figure(g, r, is_path, &v)) {
        const char *word = v >= IS_STABLE ? "stable" : v >= IS_LOW ? "fairly stable" : "changeable";
        snprintf(t, sizeof(t),
                 "Your daily rhythm of activity and rest was %s %s (interdaily stability "
                 "%.2f on a 0-1 scale).",
                 word, span, v);
        say(g, "circadian", is_path, v, ">= 0.6 stable, < 0.4 low", t);
        if (v < IS_LOW)
            advise(g, "circadian", is_path,
                   "Regular times for waking, meals and "
                   "activity help your body keep a steady daily rhythm.");
    }
    if (figure(g, r, ra_path, &v)) {
        const char *word = v >= RA_STRONG ? "clear" : v >= RA_WEAK ? "moderate" : "small";
        snprintf(t, sizeof(t),
                 "The difference between your most active and your most restful hours was %s "
                 "(relative amplitude %.2f on a 0-1 scale).",
                 word, v);
        say(g, "circadian", ra_path, v, ">= 0.8 clear, < 0.6 small", t);
        if (v < RA_WEAK)
            advise(g, "circadian", ra_path,
                   "More daylight activity and quieter, darker "
                   "evenings strengthen the contrast between day and night.");
    }
}

/* Trends against the user's own baseline (the four weeks before). Only a
 * change worth a sentence is said: 20 minutes a night, 1,000 steps a day. */
static void trend_part(struct gen *g, const json_t *r)
{
    char t[512], a[32], b[32];
    double v, base;
    const json_t *tr = json_object_get(r, "trends");
    if (tr == NULL)
        return;
    const char *sleep_path = "trends.total_sleep_change_min";
    int rest = 0;
    if (!insight_metric_at(r, sleep_path, &v)) {
        sleep_path = "trends.estimated_rest_change_min";
        rest = 1;
    }
    if (figure(g, r, sleep_path, &v) && fabs(v) >= 20.0 &&
        insight_metric_at(json_object_get(tr, rest ? "estimated_rest_change_min" : "total_sleep_change_min"),
                          "baseline", &base)) {
        hm(fabs(v), a, sizeof(a));
        hm(base, b, sizeof(b));
        snprintf(t, sizeof(t), "Compared with your previous weeks (%s a night), %s %s %s a night this week.", b,
                 rest ? "your phone lay still" : "you slept", a, v > 0 ? "more" : "less");
        say(g, "trend", sleep_path, v, "your own baseline, +/- 20 min", t);
    }
    if (figure(g, r, "trends.steps_daily_change", &v) && fabs(v) >= 1000.0 &&
        insight_metric_at(json_object_get(tr, "steps_daily_change"), "baseline", &base)) {
        snprintf(t, sizeof(t), "You walked about %.0f steps a day %s than in your previous weeks (%.0f a day).",
                 fabs(v), v > 0 ? "more" : "fewer", base);
        say(g, "trend", "trends.steps_daily_change", v, "your own baseline, +/- 1000 steps/day", t);
    }
}

static void activity_part(struct gen *g, const json_t *r)
{
    char t[512];
    double v;
    if (figure(g, r, "activity.steps_daily_mean", &v)) {
        if (v >= STEPS_ACTIVE) {
            snprintf(t, sizeof(t),
                     "You walked %.0f steps a day on average, at or above the 8,000 a day linked "
                     "with health benefits in large studies.",
                     v);
            say(g, "activity", "activity.steps_daily_mean", v, ">= 8000 steps/day", t);
        } else if (v >= STEPS_LOW) {
            snprintf(t, sizeof(t),
                     "You walked %.0f steps a day on average, between 5,000 and the 8,000 a day "
                     "linked with health benefits.",
                     v);
            say(g, "activity", "activity.steps_daily_mean", v, ">= 8000 steps/day", t);
            advise(g, "activity", "activity.steps_daily_mean",
                   "A short walk after meals adds about 1,000-2,000 "
                   "steps a day.");
        } else {
            snprintf(t, sizeof(t), "You walked %.0f steps a day on average, below 5,000 a day.", v);
            say(g, "activity", "activity.steps_daily_mean", v, ">= 5000 steps/day", t);
            advise(g, "activity", "activity.steps_daily_mean",
                   "Adding a little movement each day, such as a "
                   "10-minute walk, is a good first step towards 8,000 steps.");
        }
    }
}

static void cardio_part(struct gen *g, const json_t *r)
{
    char t[512];
    double v;
    if (figure(g, r, "cardio.hr_resting_bpm", &v)) {
        if (v > RHR_HIGH) {
            snprintf(t, sizeof(t),
                     "Your resting heart rate was about %.0f beats per minute, above the typical "
                     "adult range of 60-100.",
                     v);
            say(g, "cardio", "cardio.hr_resting_bpm", v, "60-100 bpm", t);
            advise(g, "cardio", "cardio.hr_resting_bpm",
                   "If your resting heart rate stays this high, mention "
                   "it to a health professional.");
        } else if (v < RHR_LOW) {
            snprintf(t, sizeof(t),
                     "Your resting heart rate was about %.0f beats per minute, below 60, which is "
                     "common in people who exercise regularly.",
                     v);
            say(g, "cardio", "cardio.hr_resting_bpm", v, "60-100 bpm", t);
        } else {
            snprintf(t, sizeof(t),
                     "Your resting heart rate was about %.0f beats per minute, within the typical "
                     "adult range of 60-100.",
                     v);
            say(g, "cardio", "cardio.hr_resting_bpm", v, "60-100 bpm", t);
        }
    }
    if (figure(g, r, "cardio.hrv_mean_ms", &v)) {
        snprintf(t, sizeof(t),
                 "Your heart rate variability averaged %.0f ms; it is most useful compared with "
                 "your own earlier weeks.",
                 v);
        say(g, "cardio", "cardio.hrv_mean_ms", v, "personal baseline", t);
    }
}

int insight_builtin_generate(const json_t *result, const json_t *coverage, enum insight_focus focus,
                             struct insight_builtin_out *out)
{
    struct gen g;
    json_t *body = NULL;
    memset(&g, 0, sizeof(g));
    buf_init(&g.narrative, 64 * 1024);
    g.insights = json_array();
    g.recs = json_array();
    g.grounded = json_array();
    g.withheld = json_array();
    if (g.insights == NULL || g.recs == NULL || g.grounded == NULL || g.withheld == NULL)
        goto fail;

    /* Coverage -> confidence: 0.6 x share of days with data + 0.4 x share
     * of nights with sleep figures (docs/insights.md). */
    double days = int_at(coverage, "days", 0), with = int_at(coverage, "days_with_data", 0);
    double nights = int_at(coverage, "sleep_nights", 0);
    if (coverage == NULL) {
        double minutes = int_at(result, "minutes", 0), valid = int_at(result, "valid_minutes", 0);
        days = minutes / 1440.0;
        with = minutes > 0 ? days * valid / minutes : 0;
    }
    if (nights == 0) {
        const json_t *nv = json_object_get(json_object_get(result, "sleep"), "nights");
        nights = (double)json_array_size(nv);
    }
    double day_cov = days > 0 ? fmin(with / days, 1.0) : 0.0;
    double night_cov = days > 0 ? fmin(nights / fmax(floor(days), 1.0), 1.0) : 0.0;
    double confidence = round((0.6 * day_cov + 0.4 * night_cov) * 100.0) / 100.0;

    if (focus == INSIGHT_FOCUS_COMPREHENSIVE || focus == INSIGHT_FOCUS_SLEEP)
        sleep_part(&g, result);
    if (focus == INSIGHT_FOCUS_COMPREHENSIVE || focus == INSIGHT_FOCUS_CIRCADIAN)
        circadian_part(&g, result);
    if (focus == INSIGHT_FOCUS_COMPREHENSIVE || focus == INSIGHT_FOCUS_ACTIVITY)
        activity_part(&g, result);
    if (focus == INSIGHT_FOCUS_COMPREHENSIVE || focus == INSIGHT_FOCUS_CARDIO)
        cardio_part(&g, result);
    if (focus == INSIGHT_FOCUS_COMPREHENSIVE)
        trend_part(&g, result);
    if (g.bad)
        goto fail;

    /* The opening sentence says what the statements rest on. */
    struct buf text;
    buf_init(&text, 64 * 1024);
    int brc;
    if (json_array_size(g.insights) == 0) {
        confidence = 0.0;
        brc = buf_printf(&text, "There is not enough data in this period for a summary yet. Wear your device "
                                "through the day and night and sync again.");
    } else {
        brc = buf_printf(&text, "This summary covers %.0f day%s, %.0f of them with data. %s", days,
                         days == 1 ? "" : "s", with, g.narrative.len ? g.narrative.data : "");
    }
    if (brc != 0 || (out->narrative = strdup(text.len ? text.data : "")) == NULL) {
        buf_free(&text);
        goto fail;
    }
    buf_free(&text);
    body =
        json_pack("{s:O, s:O, s:O, s:O, s:{s:f, s:f, s:f, s:f}, s:s, s:s}", "key_insights", g.insights,
                  "recommendations", g.recs, "grounded_metrics", g.grounded, "withheld", g.withheld, "confidence_basis",
                  "days", days, "days_with_data", with, "sleep_nights", nights, "formula_weight_days", 0.6,
                  "generator_version", INSIGHT_BUILTIN_VERSION, "insight_type", insight_focus_name(focus));
    if (body == NULL) {
        free(out->narrative);
        out->narrative = NULL;
        goto fail;
    }
    out->body = body;
    out->confidence = confidence;
    json_decref(g.insights);
    json_decref(g.recs);
    json_decref(g.grounded);
    json_decref(g.withheld);
    buf_free(&g.narrative);
    return 0;
fail:
    json_decref(g.insights);
    json_decref(g.recs);
    json_decref(g.grounded);
    json_decref(g.withheld);
    buf_free(&g.narrative);
    return -1;
}

void insight_builtin_out_clear(struct insight_builtin_out *o)
{
    if (o == NULL)
        return;
    free(o->narrative);
    json_decref(o->body);
    o->narrative = NULL;
    o->body = NULL;
}

int insight_period_id(const json_t *result, const char *user_id, char out[37])
{
    const char *end = json_string_value(json_object_get(json_object_get(result, "window"), "end_local"));
    char key[128];
    if (end == NULL || strlen(end) < 10 || user_id == NULL)
        return -1;
    for (int i = 0; i < 10; i++)
        if (!((end[i] >= '0' && end[i] <= '9') || ((i == 4 || i == 7) && end[i] == '-')))
            return -1;
    int l = snprintf(key, sizeof(key), "%s:%.10s", user_id, end);
    if (l < 0 || (size_t)l >= sizeof(key))
        return -1;
    compute_id_derive("insight", key, out);
    return 0;
}
