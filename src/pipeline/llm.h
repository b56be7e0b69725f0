/*
 * llm.h — insight generation by a large language model, with the built-in
 * generator as the fallback of every failure.
 *
 * Providers (configuration INSIGHT_GENERATOR):
 *   gemini  Google Gemini `generateContent` REST: POST
 *           {base}/v1beta/models/{model}:generateContent, header
 *           x-goog-api-key, generationConfig {temperature 0.3, topP 0.8,
 *           topK 40, maxOutputTokens 2048, responseMimeType
 *           "application/json"}; the reply's candidates[0].content.parts[0].text.
 *   openai  any OpenAI-compatible chat-completions endpoint: POST
 *           {base}/chat/completions, Authorization: Bearer, {model,
 *           messages[system, user], temperature 0.3, top_p 0.8, max_tokens
 *           2048, response_format {"type": "json_object"}}; the reply's
 *           choices[0].message.content.
 *
 * Privacy: the prompt holds only aggregated metrics of the analysis (the
 * metric objects' values, rounded, by dotted name) — never samples, ids,
 * names, e-mail addresses or times of day tied to a person. The user's
 * `context` is cut to LLM_CONTEXT_MAX characters, stripped of control
 * characters and refused when it looks like a prompt injection.
 *
 * Output: at most LLM_MAX_RESPONSE bytes are read; the model's text must be
 * a JSON object {narrative: string (<= 4000 chars), key_insights: [{text,
 * metric?}] (<= 12), recommendations: [{text, metric?}] (<= 12)} or the
 * call fails. A metric a statement names must exist in the analysis.
 *
 * Resilience: a connect + total timeout per call; a circuit breaker that
 * opens after LLM_BREAKER_FAILURES consecutive failures and lets one trial
 * call through after LLM_BREAKER_OPEN_MS. llm_insight_generate falls back
 * to the built-in generator on any failure and says so in the result.
 *
 * Threads: a client may be shared; the breaker is guarded by a mutex.
 * libcurl must have been initialised (curl_global_init) by the program.
 */
#ifndef CLARITY_PIPELINE_LLM_H
#define CLARITY_PIPELINE_LLM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "pipeline/insight_builtin.h"

#define LLM_CONTEXT_MAX LIMIT_INSIGHT_CONTEXT_CHARS
#define LLM_MAX_RESPONSE (256u * 1024u)
#define LLM_BREAKER_FAILURES 3
#define LLM_BREAKER_OPEN_MS 60000

enum llm_provider { LLM_PROVIDER_GEMINI = 1, LLM_PROVIDER_OPENAI = 2 };

struct llm_config {
    enum llm_provider provider;
    const char *base_url; /* NULL: Gemini's public endpoint; required for openai */
    const char *api_key;  /* required */
    const char *model;    /* required */
    long timeout_ms;      /* whole call (default 20000); connect is capped at 5000 */
};

struct llm_client;

/* A client (strings copied). NULL with err when the configuration is
 * incomplete or memory ran out. */
struct llm_client *llm_client_new(const struct llm_config *c, char *err, size_t errlen);
void llm_client_free(struct llm_client *c);

/* "gemini" or "openai_compatible". */
const char *llm_client_name(const struct llm_client *c);

/* 1 when a call would be attempted now (breaker closed or half-open);
 * 0 with the reason in reason (e.g. "circuit open after 3 failures"). */
int llm_client_available(struct llm_client *c, char *reason, size_t reason_len);

/*
 * Filter user context: control characters become spaces, the text is cut
 * at LLM_CONTEXT_MAX characters (UTF-8 aware). Returns 0 and out (heap,
 * caller frees; NULL for an empty context), or -1 when the text looks like
 * an attempt to override instructions (it is then not used at all).
 */
int llm_context_filter(const char *in, char **out);

/* The user prompt for an analysis (aggregated metrics only). Heap string,
 * caller frees; NULL when out of memory. context may be NULL. */
char *llm_prompt_build(const json_t *result, const json_t *coverage, enum insight_focus focus, const char *context);

/*
 * Generate with the model, or with the built-in generator when the client
 * is NULL, unavailable, or the call fails in any way. *generator receives
 * "gemini" / "openai_compatible" / "builtin" (static). On fallback the
 * body's "fallback_reason" says why. Confidence always comes from coverage
 * (the built-in rule). Returns 0, or -1 when even the built-in generator
 * ran out of memory.
 */
int llm_insight_generate(struct llm_client *c, const json_t *result, const json_t *coverage, enum insight_focus focus,
                         const char *context, struct insight_builtin_out *out, const char **generator);

/* One model call (no fallback), for tests: 0 and *out, or -1 with err. */
int llm_insight_call(struct llm_client *c, const json_t *result, const json_t *coverage, enum insight_focus focus,
                     const char *context, struct insight_builtin_out *out, char *err, size_t errlen);

/*
 * Chat (chat/answer.c): answer a person's free-text question about their
 * own analyses. The question is filtered like a context (llm_context_filter:
 * cut to LLM_CONTEXT_MAX characters, control characters removed; one that
 * looks like a prompt injection is refused and nothing is sent). The prompt
 * holds the question and the aggregated metrics of at most
 * LLM_CHAT_MAX_ANALYSES analyses (results[i] with coverages[i], newest
 * first; coverages may be NULL), as llm_prompt_build: never samples, ids or
 * clock times. The model must reply {"answer": string of 1 to
 * LLM_CHAT_MAX_ANSWER characters}. Provider failures count for the circuit
 * breaker; an open breaker fails at once. Returns 0 and *answer (heap,
 * caller frees), or -1 with err (no fallback here: the caller has its own).
 */
#define LLM_CHAT_MAX_ANALYSES 3
#define LLM_CHAT_MAX_ANSWER 1200
int llm_chat_answer(struct llm_client *c, const json_t *const *results, const json_t *const *coverages, size_t n,
                    const char *question, char **answer, char *err, size_t errlen);

/* The chat prompt llm_chat_answer sends (question already filtered). Heap
 * string, caller frees; NULL when out of memory. */
char *llm_chat_prompt_build(const json_t *const *results, const json_t *const *coverages, size_t n,
                            const char *question);

#endif
