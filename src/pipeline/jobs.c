/*
 * jobs.c — building and reading job messages. See jobs.h.
 */
#include "pipeline/jobs.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/json_load.h"
#include "core/uuid.h"
#include "store/queue.h"
#include "store/recovery.h"

const char *jobs_topic(enum jobs_kind kind)
{
    return kind == JOBS_INSIGHT ? STORE_TOPIC_INSIGHTS : STORE_TOPIC_HEALTH_DATA;
}

int jobs_encode(enum jobs_kind kind, const struct jobs_message *m, char out[JOBS_PAYLOAD_MAX])
{
    int n;
    out[0] = '\0';
    if (!uuid_is_valid(m->upload_id) || !uuid_is_valid(m->user_id))
        return JOBS_EPAYLOAD;
    if (kind == JOBS_INSIGHT) {
        if (!uuid_is_valid(m->analysis_id))
            return JOBS_EPAYLOAD;
        n = snprintf(out, JOBS_PAYLOAD_MAX, "{\"analysis_id\":\"%s\",\"upload_id\":\"%s\",\"user_id\":\"%s\"}",
                     m->analysis_id, m->upload_id, m->user_id);
    } else {
        n = snprintf(out, JOBS_PAYLOAD_MAX, "{\"upload_id\":\"%s\",\"user_id\":\"%s\"}", m->upload_id, m->user_id);
    }
    /* Three UUIDs and the names fit by construction; say so if they ever do not. */
    if (n < 0 || n >= JOBS_PAYLOAD_MAX) {
        out[0] = '\0';
        return JOBS_EPAYLOAD;
    }
    return 0;
}

static int copy_id(json_t *o, const char *name, char out[STORE_ID_LEN], int required)
{
    const char *s = json_string_value(json_object_get(o, name));
    out[0] = '\0';
    if (s == NULL)
        return required ? -1 : 0;
    if (!uuid_is_valid(s))
        return -1;
    snprintf(out, STORE_ID_LEN, "%s", s);
    return 0;
}

int jobs_parse(enum jobs_kind kind, const char *payload, struct jobs_message *out)
{
    memset(out, 0, sizeof(*out));
    if (payload == NULL)
        return JOBS_EPAYLOAD;
    json_t *o = json_parse_str(payload, JSON_REJECT_DUPLICATES, NULL);
    int ok = json_is_object(o) && copy_id(o, "upload_id", out->upload_id, 1) == 0 &&
             copy_id(o, "user_id", out->user_id, 1) == 0 &&
             copy_id(o, "analysis_id", out->analysis_id, kind == JOBS_INSIGHT) == 0;
    json_decref(o);
    if (!ok) {
        memset(out, 0, sizeof(*out));
        return JOBS_EPAYLOAD;
    }
    return 0;
}

int jobs_analysis_publish(struct store_tx *tx, const char *upload_id, const char *user_id)
{
    struct jobs_message m;
    char payload[JOBS_PAYLOAD_MAX];
    memset(&m, 0, sizeof(m));
    snprintf(m.upload_id, sizeof(m.upload_id), "%s", upload_id);
    snprintf(m.user_id, sizeof(m.user_id), "%s", user_id);
    int rc = jobs_encode(JOBS_ANALYSIS, &m, payload);
    if (rc != 0)
        return rc;
    /* Keyed by the user: one user's burst of uploads does not hold back
     * everyone else's analyses (store_queue_lease). */
    struct store_publish_opts po = {.fair_key = user_id};
    return store_queue_publish(tx, STORE_TOPIC_HEALTH_DATA, payload, &po, NULL);
}

#define DEAD_PAGE 64

int jobs_close_dead_lettered(struct store_tx *tx, int64_t *closed)
{
    static const char *const topics[] = {STORE_TOPIC_HEALTH_DATA STORE_DEAD_LETTER_SUFFIX,
                                         STORE_TOPIC_INSIGHTS STORE_DEAD_LETTER_SUFFIX};
    static const enum jobs_kind kinds[] = {JOBS_ANALYSIS, JOBS_INSIGHT};
    int64_t total = 0;
    int rc = 0;
    for (size_t t = 0; rc == 0 && t < 2; t++) {
        int64_t after = 0;
        for (;;) {
            struct store_msg page[DEAD_PAGE];
            size_t n = 0;
            rc = store_queue_list(tx, topics[t], after, DEAD_PAGE, page, &n);
            if (rc != 0)
                break;
            for (size_t i = 0; i < n; i++) {
                struct jobs_message m;
                int changed = 0;
                after = page[i].id;
                /* A dead letter that is no job names no upload: skip it. */
                if (rc == 0 && jobs_parse(kinds[t], page[i].payload, &m) == 0) {
                    rc = store_upload_fail_open(tx, m.upload_id,
                                                "processing abandoned: the job was retried the maximum number of times",
                                                &changed);
                    total += changed;
                }
                store_msg_clear(&page[i]);
            }
            if (rc != 0 || n < DEAD_PAGE)
                break;
        }
    }
    if (rc == 0 && closed != NULL)
        *closed = total;
    return rc;
}
