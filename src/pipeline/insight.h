/*
 * insight.h — creating an insight: the one renderer and the one write.
 *
 * An insight is rendered from an analysis result (and its coverage) by the
 * configured generator — an LLM with the built-in generator as fallback
 * (pipeline/llm.h) — into a store_insight record: narrative, body JSON
 * (key insights, recommendations, grounded metrics), confidence and the
 * generator's name. The worker (after an analysis) and POST
 * /api/v1/insights/generate (on request) both render with insight_render
 * and write with insight_create, so an insight reads the same whichever
 * way it was made.
 *
 * Rendering may call out to an LLM (seconds): do it outside any
 * transaction, then insight_create inside the caller's transaction (the
 * worker's also acknowledges its job there; the API's also audits).
 */
#ifndef CLARITY_PIPELINE_INSIGHT_H
#define CLARITY_PIPELINE_INSIGHT_H

#include <jansson.h>

#include "core/err.h"
#include "pipeline/insight_builtin.h"
#include "store/store.h"

struct llm_client;

/* A rendered insight: rec's narrative and body point into the draft's own
 * memory (free with insight_draft_clear). */
struct insight_draft {
    struct store_insight rec;
    struct insight_builtin_out gen;
    char *body_text;
};

/* What to render. */
struct insight_subject {
    const char *user_id;     /* the owner */
    const char *analysis_id; /* NULL or "": an ad-hoc result (no stored analysis) */
    const char *insight_id;  /* NULL: a new UUID v7; the worker passes an id derived from the analysis */
    enum insight_focus focus;
    const char *context;    /* the user's words for an LLM, may be NULL (llm.h filters it) */
    const json_t *result;   /* the analysis result object (borrowed) */
    const json_t *coverage; /* its coverage, may be NULL (borrowed) */
};

/*
 * Render s into *out with llm (NULL: the built-in generator). 0, or
 * COMPUTE_EINTERNAL (result is not an object) / COMPUTE_ENOMEM. *out is
 * zeroed first and needs insight_draft_clear either way.
 */
int insight_render(struct llm_client *llm, const struct insight_subject *s, struct insight_draft *out);

/*
 * The same from a stored analysis a (its result and coverage text parsed,
 * its owner and id taken); COMPUTE_EINTERNAL when the stored result is not
 * a JSON object.
 */
int insight_render_analysis(struct llm_client *llm, const struct store_analysis *a, enum insight_focus focus,
                            const char *context, const char *insight_id, struct insight_draft *out);

/*
 * Write the draft inside tx. With upload_id (the worker's), the upload is
 * also marked completed with processed metrics (an upload deleted meanwhile
 * is no error). 0 or a STORE_E* code (STORE_ECONFLICT: the insight id
 * exists — a job delivered twice).
 */
int insight_create(struct store_tx *tx, const struct insight_draft *d, const char *upload_id, int64_t processed);

/*
 * The same for a re-sync of an analysis period that already has its insight
 * (insight_period_id): the row d->rec.id is updated in place (newer analysis
 * id, text, body, confidence, time) instead of a near-duplicate being added.
 * STORE_ENOTFOUND when the row is gone.
 */
int insight_replace(struct store_tx *tx, const struct insight_draft *d, const char *upload_id, int64_t processed);

void insight_draft_clear(struct insight_draft *d);

#endif
