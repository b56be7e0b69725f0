/*
 * insight.c — rendering and writing insights. See insight.h.
 */
#include "pipeline/insight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_load.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "pipeline/llm.h"

int insight_render(struct llm_client *llm, const struct insight_subject *s, struct insight_draft *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(s->result) || s->user_id == NULL)
        return COMPUTE_EINTERNAL;
    const char *generator = INSIGHT_BUILTIN_NAME;
    if (llm_insight_generate(llm, s->result, s->coverage, s->focus, s->context, &out->gen, &generator) != 0)
        return COMPUTE_ENOMEM;
    out->body_text = json_dumps(out->gen.body, JSON_COMPACT | JSON_REAL_PRECISION(10));
    if (out->body_text == NULL)
        return COMPUTE_ENOMEM;
    struct store_insight *r = &out->rec;
    if (s->insight_id != NULL)
        snprintf(r->id, sizeof(r->id), "%s", s->insight_id);
    else if (uuid_v7(r->id) != 0)
        return COMPUTE_EINTERNAL;
    snprintf(r->user_id, sizeof(r->user_id), "%.36s", s->user_id);
    if (s->analysis_id != NULL)
        snprintf(r->analysis_id, sizeof(r->analysis_id), "%.36s", s->analysis_id);
    snprintf(r->insight_type, sizeof(r->insight_type), "%s", insight_focus_name(s->focus));
    snprintf(r->generator, sizeof(r->generator), "%s", generator);
    r->narrative = out->gen.narrative;
    r->body = out->body_text;
    r->confidence = out->gen.confidence;
    r->created_at_ms = time_now_ms();
    return 0;
}

int insight_render_analysis(struct llm_client *llm, const struct store_analysis *a, enum insight_focus focus,
                            const char *context, const char *insight_id, struct insight_draft *out)
{
    json_t *result = json_parse_str(a->result != NULL ? a->result : "", 0, NULL);
    json_t *coverage = a->coverage != NULL ? json_parse_str(a->coverage, 0, NULL) : NULL;
    struct insight_subject s = {a->user_id, a->id, insight_id, focus, context, result, coverage};
    int rc = insight_render(llm, &s, out);
    json_decref(result);
    json_decref(coverage);
    return rc;
}

static int insight_write(struct store_tx *tx, const struct insight_draft *d, int replace, const char *upload_id,
                         int64_t processed)
{
    int rc = replace ? store_insight_update(tx, &d->rec) : store_insight_insert(tx, &d->rec);
    if (rc == 0 && upload_id != NULL) {
        rc = store_upload_status_set(tx, upload_id, STORE_UPLOAD_COMPLETED, 1.0, processed, NULL);
        if (rc == STORE_ENOTFOUND)
            rc = 0;
    }
    return rc;
}

int insight_create(struct store_tx *tx, const struct insight_draft *d, const char *upload_id, int64_t processed)
{
    return insight_write(tx, d, 0, upload_id, processed);
}

int insight_replace(struct store_tx *tx, const struct insight_draft *d, const char *upload_id, int64_t processed)
{
    return insight_write(tx, d, 1, upload_id, processed);
}

void insight_draft_clear(struct insight_draft *d)
{
    insight_builtin_out_clear(&d->gen);
    free(d->body_text);
    memset(d, 0, sizeof(*d));
}
