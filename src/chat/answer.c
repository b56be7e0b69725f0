/*
 * answer.c — free-text answers and the quick analysis of posted points.
 * See answer.h.
 */
#include "chat/answer.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analysis/series.h"
#include "core/json_load.h"
#include "core/limits.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "ml/pat.h"
#include "pipeline/compute.h"
#include "pipeline/insight_builtin.h"
#include "pipeline/points.h"
#include "pipeline/llm.h"
#include "store/store.h"

#define ANSWER_ANALYSES 14 /* newest analyses read for an answer */
#define ANSWER_MAX_LINES 3 /* statements or tips per answer */
#define ANSWER_MAX_BYTES 2048

static const char *const NOT_ADVICE =
    "These are measurements, not medical advice; talk to a clinician about anything that worries you.";

/* ---- intents -------------------------------------------------------------- */

/* 1 when the lower-cased text contains any of the words. */
static int has_any(const char *lower, const char *const *words)
{
    for (; *words != NULL; words++)
        if (strstr(lower, *words) != NULL)
            return 1;
    return 0;
}

enum chat_intent chat_intent_detect(const char *text)
{
    static const char *const change[] = {
        "what should i change", "should i change", "improve", "recommend", "advice", "suggest", "tip",
        "what can i do",        "better",          NULL};
    static const char *const trends[] = {"trend",   "over time", "progress",  "compared", "getting",
                                         "changed", "this week", "last week", NULL};
    static const char *const sleep[] = {"sleep", "slept", "bed", "nap", "tired", "wake", "circadian", "rhythm", NULL};
    static const char *const activity[] = {"step",    "walk", "activ",   "exercise", "move",
                                           "workout", "run",  "fitness", NULL};
    static const char *const heart[] = {"heart", "pulse", "hrv", "bpm", "cardio", NULL};
    static const char *const hello[] = {"hello", "hi ", "hey", "good morning", "good evening", NULL};
    char lower[512];
    size_t n = 0;
    lower[n++] = ' ';
    for (const char *p = text; *p != '\0' && n + 2 < sizeof(lower); p++)
        lower[n++] = (char)tolower((unsigned char)*p);
    lower[n++] = ' ';
    lower[n] = '\0';
    if (has_any(lower, change))
        return CHAT_INTENT_CHANGE;
    if (has_any(lower, trends))
        return CHAT_INTENT_TRENDS;
    if (has_any(lower, sleep))
        return CHAT_INTENT_SLEEP;
    if (has_any(lower, activity))
        return CHAT_INTENT_ACTIVITY;
    if (has_any(lower, heart))
        return CHAT_INTENT_HEART;
    if (has_any(lower, hello) || strcmp(lower, " hi ") == 0)
        return CHAT_INTENT_GREETING;
    return CHAT_INTENT_HELP;
}

const char *chat_intent_name(enum chat_intent i)
{
    switch (i) {
    case CHAT_INTENT_SLEEP: return "sleep";
    case CHAT_INTENT_ACTIVITY: return "activity";
    case CHAT_INTENT_HEART: return "heart";
    case CHAT_INTENT_TRENDS: return "trends";
    case CHAT_INTENT_CHANGE: return "change";
    case CHAT_INTENT_GREETING: return "greeting";
    default: return "help";
    }
}

/* ---- answers from stored analyses ----------------------------------------- */

struct parsed {
    json_t *result, *coverage;
    int64_t created_at_ms;
};

static int category_matches(enum chat_intent intent, const char *cat)
{
    if (cat == NULL)
        return 0;
    switch (intent) {
    case CHAT_INTENT_SLEEP: return strcmp(cat, "sleep") == 0 || strcmp(cat, "circadian") == 0;
    case CHAT_INTENT_ACTIVITY: return strcmp(cat, "activity") == 0;
    case CHAT_INTENT_HEART: return strcmp(cat, "cardio") == 0;
    default: return 1;
    }
}

/* Statements (or tips for CHANGE) of the built-in generator about the
 * newest analysis that says anything on the topic. Appends to b; returns the
 * number of lines written. */
static int topic_lines(struct buf *b, const struct parsed *v, size_t n, enum chat_intent intent)
{
    enum insight_focus focus = intent == CHAT_INTENT_SLEEP      ? INSIGHT_FOCUS_SLEEP
                               : intent == CHAT_INTENT_ACTIVITY ? INSIGHT_FOCUS_ACTIVITY
                               : intent == CHAT_INTENT_HEART    ? INSIGHT_FOCUS_CARDIO
                                                                : INSIGHT_FOCUS_COMPREHENSIVE;
    const char *member = intent == CHAT_INTENT_CHANGE ? "recommendations" : "key_insights";
    for (size_t i = 0; i < n; i++) {
        struct insight_builtin_out out;
        if (insight_builtin_generate(v[i].result, v[i].coverage, focus, &out) != 0)
            return 0;
        json_t *arr = json_object_get(out.body, member);
        int lines = 0;
        size_t k;
        json_t *it;
        json_array_foreach (arr, k, it) {
            const char *text = json_string_value(json_object_get(it, "text"));
            if (text == NULL || !category_matches(intent, json_string_value(json_object_get(it, "category"))))
                continue;
            if (lines >= ANSWER_MAX_LINES)
                break;
            buf_printf(b, "%s%s", lines > 0 || b->len > 0 ? " " : "", text);
            lines++;
        }
        insight_builtin_out_clear(&out);
        if (lines > 0)
            return lines;
    }
    return 0;
}

/* Compare the newest and the oldest analysis that both hold a metric. */
static int trend_lines(struct buf *b, const struct parsed *v, size_t n)
{
    static const struct {
        const char *path, *alt, *label, *unit;
        int decimals;
    } m[] = {
        {"healthkit_sleep.total_sleep_mean_min", "sleep.total_sleep_mean_min", "average sleep", "minutes a night", 0},
        {"activity.steps_daily_mean", NULL, "average daily steps", "steps", 0},
        {"cardio.hr_resting_bpm", NULL, "resting heart rate", "bpm", 0},
        {"cardio.hrv_mean_ms", NULL, "heart rate variability", "ms", 0},
        {"sleep.sleep_regularity_index", NULL, "sleep regularity", "of 100", 0},
    };
    int lines = 0;
    for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
        double newest = 0, oldest = 0;
        size_t ni = n, oi = n;
        for (size_t i = 0; i < n; i++) {
            double x;
            if (insight_metric_at(v[i].result, m[k].path, &x) ||
                (m[k].alt && insight_metric_at(v[i].result, m[k].alt, &x))) {
                if (ni == n) {
                    ni = i;
                    newest = x;
                }
                oi = i;
                oldest = x;
            }
        }
        if (ni == n || oi == ni)
            continue;
        double diff = newest - oldest;
        const char *dir = fabs(diff) < 0.02 * fabs(oldest) + 1e-9 ? "held steady at"
                          : diff > 0                              ? "went up to"
                                                                  : "went down to";
        buf_printf(b, "%sYour %s %s %.*f %s (from %.*f).", b->len > 0 ? " " : "", m[k].label, dir, m[k].decimals,
                   newest, m[k].unit, m[k].decimals, oldest);
        lines++;
    }
    return lines;
}

static const char *topic_name(enum chat_intent intent)
{
    switch (intent) {
    case CHAT_INTENT_SLEEP: return "sleep";
    case CHAT_INTENT_ACTIVITY: return "activity";
    case CHAT_INTENT_HEART: return "heart";
    default: return "health";
    }
}

char *chat_answer_text(const struct chat_services *svc, const char *user_id, const char *text,
                       enum chat_intent *intent_out)
{
    enum chat_intent intent = chat_intent_detect(text);
    struct buf b;
    struct store_tx *tx = NULL;
    struct store_analysis *list = NULL;
    struct parsed *v = NULL;
    size_t n = 0, np = 0;
    buf_init(&b, ANSWER_MAX_BYTES * 2);
    if (intent_out != NULL)
        *intent_out = intent;

    if (intent == CHAT_INTENT_HELP || intent == CHAT_INTENT_GREETING) {
        buf_printf(&b,
                   "%sI can tell you about your sleep, activity, heart rate, how things are trending, and "
                   "what you might change, from the data you have uploaded. You can also send data "
                   "points for a quick analysis.",
                   intent == CHAT_INTENT_GREETING ? "Hello! " : "");
        goto done;
    }
    struct store_cursor next;
    int rc = svc->store != NULL ? store_tx_begin(svc->store, STORE_TX_READ, &tx) : STORE_EUNAVAILABLE;
    if (rc == 0)
        rc = store_analysis_list(tx, user_id, NULL, ANSWER_ANALYSES, &list, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        buf_printf(&b, "I cannot reach your stored results right now; please ask again in a moment.");
        goto done;
    }
    v = calloc(n ? n : 1, sizeof(*v));
    if (v == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        json_t *r = list[i].result != NULL ? json_parse_str(list[i].result, 0, NULL) : NULL;
        if (!json_is_object(r)) {
            json_decref(r);
            continue;
        }
        v[np].result = r;
        v[np].coverage = list[i].coverage != NULL ? json_parse_str(list[i].coverage, 0, NULL) : NULL;
        v[np].created_at_ms = list[i].created_at_ms;
        np++;
    }
    if (np == 0) {
        buf_printf(&b,
                   "I don't have any analysed data for you yet. Once an upload has been processed I can "
                   "answer questions about your %s.",
                   topic_name(intent));
        goto done;
    }
    int lines;
    if (intent == CHAT_INTENT_TRENDS) {
        lines = trend_lines(&b, v, np);
        if (lines == 0)
            buf_printf(&b, "I need at least two analysed periods with the same measurements to describe a "
                           "trend; keep uploading and ask again.");
    } else {
        lines = topic_lines(&b, v, np, intent);
        if (lines == 0 && intent == CHAT_INTENT_CHANGE)
            buf_printf(&b, "Your recent measurements meet the usual reference values; keeping your current "
                           "routine is a good plan.");
        else if (lines == 0)
            buf_printf(&b, "Your recent data has no %s measurements I can describe yet.", topic_name(intent));
    }
    if (lines > 0)
        buf_printf(&b, " %s", NOT_ADVICE);
done:
    if (v != NULL)
        for (size_t i = 0; i < np; i++) {
            json_decref(v[i].result);
            json_decref(v[i].coverage);
        }
    free(v);
    store_analysis_list_free(list, n);
    return buf_steal(&b, NULL);
oom:
    store_analysis_list_free(list, n);
    buf_free(&b);
    return NULL;
}

/* The LLM's answer from the newest analyses' metrics, or NULL (why in err). */
static char *llm_reply(const struct chat_services *svc, const char *user_id, const char *text, char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    struct store_analysis *list = NULL;
    size_t n = 0, np = 0;
    const json_t *results[LLM_CHAT_MAX_ANALYSES], *coverages[LLM_CHAT_MAX_ANALYSES];
    json_t *owned[2 * LLM_CHAT_MAX_ANALYSES];
    size_t nowned = 0;
    char *answer = NULL;
    struct store_cursor next;
    int rc = svc->store != NULL ? store_tx_begin(svc->store, STORE_TX_READ, &tx) : STORE_EUNAVAILABLE;
    if (rc == 0)
        rc = store_analysis_list(tx, user_id, NULL, LLM_CHAT_MAX_ANALYSES, &list, &n, &next);
    store_tx_rollback(tx);
    if (rc != 0) {
        snprintf(err, errlen, "stored analyses unavailable");
        return NULL;
    }
    for (size_t i = 0; i < n && np < LLM_CHAT_MAX_ANALYSES; i++) {
        json_t *r = list[i].result != NULL ? json_parse_str(list[i].result, 0, NULL) : NULL;
        if (!json_is_object(r)) {
            json_decref(r);
            continue;
        }
        json_t *cov = list[i].coverage != NULL ? json_parse_str(list[i].coverage, 0, NULL) : NULL;
        owned[nowned++] = r;
        if (cov != NULL)
            owned[nowned++] = cov;
        results[np] = r;
        coverages[np] = cov;
        np++;
    }
    if (np == 0)
        snprintf(err, errlen, "no analyses yet");
    else if (llm_chat_answer(svc->llm, results, coverages, np, text, &answer, err, errlen) != 0)
        answer = NULL;
    for (size_t i = 0; i < nowned; i++)
        json_decref(owned[i]);
    store_analysis_list_free(list, n);
    return answer;
}

char *chat_answer_reply(const struct chat_services *svc, const char *user_id, const char *text,
                        enum chat_intent *intent_out, const char **generator)
{
    *generator = INSIGHT_BUILTIN_NAME;
    if (svc->llm != NULL) {
        char why[300] = "";
        char *a = llm_reply(svc, user_id, text, why, sizeof(why));
        if (a != NULL) {
            if (intent_out != NULL)
                *intent_out = chat_intent_detect(text);
            *generator = llm_client_name(svc->llm);
            return a;
        }
        /* The reason names the failure, never the question or the data. */
        log_info("chat answer fell back to the built-in generator", LOG_STR, "reason", why, LOG_END);
    }
    return chat_answer_text(svc, user_id, text, intent_out);
}

/* ---- health_insight --------------------------------------------------------- */

int chat_analysis_run(const struct chat_services *svc, const json_t *content, size_t max_points, json_t **out,
                      char *err, size_t errlen)
{
    int rc = ANALYSIS_EINTERNAL;
    int64_t *mins = NULL;
    double *vals = NULL;
    json_t *result = NULL, *coverage = NULL;
    struct insight_builtin_out ins;
    int have_ins = 0;

    json_t *dp = json_object_get(content, "data_points");
    json_t *steps_j = json_object_get(content, "steps");
    if (!json_is_object(content) || !json_is_array(dp) || json_array_size(dp) == 0) {
        snprintf(err, errlen, "health_insight needs content.data_points: a non-empty array of {timestamp, value}.");
        return ANALYSIS_EINVAL;
    }
    if (steps_j != NULL && !json_is_boolean(steps_j)) {
        snprintf(err, errlen, "content.steps must be true (values are step counts) or false (activity counts).");
        return ANALYSIS_EINVAL;
    }
    size_t n = json_array_size(dp);
    if (n > max_points) {
        snprintf(err, errlen, "At most %zu data points per health_insight; got %zu.", max_points, n);
        return ANALYSIS_ETOOMANY;
    }
    int steps = steps_j != NULL ? json_is_true(steps_j) : 0;
    mins = malloc(n * sizeof(*mins));
    vals = malloc(n * sizeof(*vals));
    if (mins == NULL || vals == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *pt = json_array_get(dp, i);
        json_t *val = json_object_get(pt, "value");
        const char *ts = json_string_value(json_object_get(pt, "timestamp"));
        int64_t ms;
        int off;
        if (!json_is_number(val) || json_number_value(val) < 0 || json_number_value(val) > 1e6 || ts == NULL ||
            time_parse_rfc3339(ts, &ms, &off) != 0) {
            snprintf(err, errlen,
                     "content.data_points[%zu] must be {timestamp: RFC 3339 with offset, value: 0 to 1000000}.", i);
            rc = ANALYSIS_EINVAL;
            goto fail;
        }
        mins[i] = series_local_minute(ms, off);
        vals[i] = json_number_value(val);
    }
    /* The one "points → analysis" use case, shared with the PAT API. */
    char why[256];
    struct points_pat pat = {svc->pat_model, svc->pat_std,
                             svc->cfg != NULL ? svc->cfg->actigraphy_model_version : NULL};
    int crc = points_analyse(&pat, mins, vals, n, steps, 0, &result, &coverage, why, sizeof(why));
    if (crc == ANALYSIS_ESPAN) {
        snprintf(err, errlen, "The data points may span at most %d minutes.", LIMIT_POINTS_SPAN_MIN);
        rc = ANALYSIS_EINVAL;
        goto fail;
    }
    if (crc == ANALYSIS_EINVAL) {
        snprintf(err, errlen, "The data points cannot be analysed: %s.", why);
        rc = ANALYSIS_EINVAL;
        goto fail;
    }
    if (crc != 0 || insight_builtin_generate(result, coverage, INSIGHT_FOCUS_COMPREHENSIVE, &ins) != 0)
        goto fail;
    have_ins = 1;
    json_t *insight = json_object();
    json_object_set_new(insight, "narrative", json_string(ins.narrative != NULL ? ins.narrative : ""));
    json_object_set(insight, "key_insights", json_object_get(ins.body, "key_insights"));
    json_object_set(insight, "recommendations", json_object_get(ins.body, "recommendations"));
    json_object_set_new(insight, "confidence_score", json_real(ins.confidence));
    json_object_set_new(insight, "generator", json_string(INSIGHT_BUILTIN_NAME));
    json_t *o = json_object();
    json_object_set_new(o, "data_points", json_integer((json_int_t)n));
    json_object_set(o, "analysis", result);
    json_object_set(o, "coverage", coverage);
    json_object_set_new(o, "insight", insight);
    *out = o;
    rc = 0;
fail:
    if (rc == ANALYSIS_EINTERNAL)
        snprintf(err, errlen, "The analysis could not be completed.");
    if (have_ins)
        insight_builtin_out_clear(&ins);
    json_decref(result);
    json_decref(coverage);
    free(mins);
    free(vals);
    return rc;
}
