/*
 * insight_builtin.h — the built-in insight generator: deterministic, no
 * network, the default and the fallback of every other generator.
 *
 * From an analysis result (pipeline/compute.h shape, or any object with the
 * same members) and its coverage it writes:
 *   - key_insights: one statement per metric the data supports, each
 *     {text, category, metric, value, reference, label, unit} where
 *     `metric` is the JSON path of the figure in the analysis result,
 *     `reference` the threshold it was compared with (docs/insights.md lists
 *     every threshold with its source), `label` the figure's short name and
 *     `unit` the unit of `value`;
 *   - recommendations: {text, category, metric}, only where a threshold was
 *     not met, each tied to the metric that prompted it;
 *   - narrative: the statements joined into plain sentences;
 *   - confidence_score in [0, 1] from data coverage (docs/insights.md).
 * No statement is made about a metric that is null; the wording describes
 * measurements and never names a condition (no diagnosis language).
 *
 * Pure: no I/O, no globals; the same input always gives the same output.
 */
#ifndef CLARITY_PIPELINE_INSIGHT_BUILTIN_H
#define CLARITY_PIPELINE_INSIGHT_BUILTIN_H

#include <jansson.h>

#define INSIGHT_BUILTIN_NAME "builtin"
#define INSIGHT_BUILTIN_VERSION "builtin-1"

/* The focus of an insight (API insight_type). */
enum insight_focus {
    INSIGHT_FOCUS_COMPREHENSIVE = 0,
    INSIGHT_FOCUS_SLEEP,
    INSIGHT_FOCUS_ACTIVITY,
    INSIGHT_FOCUS_CIRCADIAN,
    INSIGHT_FOCUS_CARDIO,
};

/* "comprehensive", "sleep", "activity", "circadian", "cardio" -> focus;
 * returns 0, or -1 for another name. NULL is comprehensive. */
/*
 * A measured metric of an analysis result at a dotted path
 * ("sleep.efficiency_mean_pct"): the member's "value" when it is an object,
 * else the member itself, when it is a finite number. 1 and *v, or 0
 * (absent, or null with a reason). Shared with the chat's answers.
 */
int insight_metric_at(const json_t *root, const char *path, double *v);

/*
 * The short name ("Sleep duration") and unit ("min", "%", "index" 0-100,
 * "ratio" 0-1, "steps/day", "bpm", "ms") of a figure the built-in generator
 * cites, by its metric path. 1 with *label and *unit (static strings), or 0
 * for a metric it does not cite (outputs untouched).
 */
int insight_figure_describe(const char *metric, const char **label, const char **unit);

/*
 * Adds "label" and "unit" to each object of a key_insights array (borrowed,
 * modified in place) that lacks them and names a known metric: insights
 * stored before the generator wrote them, and an LLM's {text, metric}
 * items. Other items are left as they are. 0, or -1 when out of memory.
 */
int insight_figures_describe(json_t *key_insights);

int insight_focus_parse(const char *name, enum insight_focus *out);
const char *insight_focus_name(enum insight_focus f);

struct insight_builtin_out {
    char *narrative;   /* heap, caller frees */
    json_t *body;      /* {key_insights[], recommendations[], grounded_metrics[],
                          confidence_basis{}, generator_version}; caller decrefs */
    double confidence; /* 0..1 */
};

/*
 * Generate. result: the analysis result object (borrowed); coverage: its
 * coverage object (borrowed, may be NULL: confidence then rests on the
 * result's own "valid_minutes"/"minutes"). Returns 0 and fills *out, or -1
 * when out of memory (out untouched).
 */
int insight_builtin_generate(const json_t *result, const json_t *coverage, enum insight_focus focus,
                             struct insight_builtin_out *out);

void insight_builtin_out_clear(struct insight_builtin_out *o);

/*
 * The id of the insight for a user's analysis period (issue #18: a re-sync
 * must update the period's insight, not add a near-duplicate). The period
 * is the analysis window, named by the local date its end falls on
 * (result.window.end_local, "YYYY-MM-DD..."): every analysis of the week
 * ending that day shares one insight. out receives
 * compute_id_derive("insight", "<user_id>:<date>"). Returns 0, or -1 when
 * the result has no window end (the caller then keys by analysis id).
 */
int insight_period_id(const json_t *result, const char *user_id, char out[37]);

#endif
