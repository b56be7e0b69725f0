/*
 * answer.h — what the chat says: answers to free text from the user's own
 * stored analyses, and the quick analysis of posted data points
 * (`health_insight`).
 *
 * Answers are short, plain language, describe measurements and never name a
 * condition (no diagnosis); the wording of statements and advice comes from
 * the built-in insight generator (pipeline/insight_builtin.h), so chat and
 * the insights API say the same thing about the same numbers.
 *
 * Threads: reentrant; the store calls block the caller for one read.
 */
#ifndef CLARITY_CHAT_ANSWER_H
#define CLARITY_CHAT_ANSWER_H

#include <jansson.h>
#include <stddef.h>

#include "chat/hub.h"
#include "core/err.h"

enum chat_intent {
    CHAT_INTENT_HELP = 0, /* nothing recognised: say what can be asked */
    CHAT_INTENT_SLEEP,
    CHAT_INTENT_ACTIVITY,
    CHAT_INTENT_HEART,
    CHAT_INTENT_TRENDS,
    CHAT_INTENT_CHANGE, /* "what should I change" */
    CHAT_INTENT_GREETING,
};

/* The intent of a question (case-insensitive keywords; "change"/"improve"
 * win over topic words, which are checked sleep, activity, heart). */
enum chat_intent chat_intent_detect(const char *text);
const char *chat_intent_name(enum chat_intent i);

/*
 * Answer text for user_id from their newest stored analyses. Returns a heap
 * string (caller frees), or NULL when out of memory; a storage failure is
 * answered with a sentence saying so, not NULL.
 */
char *chat_answer_text(const struct chat_services *svc, const char *user_id, const char *text,
                       enum chat_intent *intent_out);

/*
 * The reply to a `message`: from the configured LLM (svc->llm) when the
 * user has stored analyses — the question (filtered) and the aggregated
 * metrics of the newest LLM_CHAT_MAX_ANALYSES of them, never samples or
 * ids (pipeline/llm.h, llm_chat_answer) — and from chat_answer_text when
 * no LLM is configured, the user has no analyses, or the LLM fails in any
 * way (refused question, timeout, open circuit, malformed or oversized
 * reply). *generator receives "gemini", "openai_compatible" or "builtin"
 * (static). Heap string (caller frees), NULL when out of memory. Blocks for
 * up to the LLM's timeout: call it on an answer thread.
 */
char *chat_answer_reply(const struct chat_services *svc, const char *user_id, const char *text,
                        enum chat_intent *intent_out, const char **generator);

/*
 * Analyse content {data_points:[{timestamp, value}], steps?} (steps: true
 * when the values are step counts, the default; false for activity counts).
 * Returns 0 with *out = {analysis, coverage, insight:{narrative,
 * key_insights, recommendations, confidence_score, generator}} (new
 * reference), or a ANALYSIS_E* code with a reason in err.
 */
int chat_analysis_run(const struct chat_services *svc, const json_t *content, size_t max_points, json_t **out,
                      char *err, size_t errlen);

#endif
