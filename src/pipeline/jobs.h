/*
 * jobs.h — the one home of the job message schema.
 *
 * Two topics carry jobs (store/queue.h): health-data-processing ("analyse
 * this upload") and insights-generation ("write the insight of this
 * analysis"). Their payload is one small JSON object:
 *
 *   analysis job   {"upload_id": UUID, "user_id": UUID}
 *   insight job    {"analysis_id": UUID, "upload_id": UUID, "user_id": UUID}
 *
 * It is built (jobs_encode) and read (jobs_parse) here and nowhere else: the
 * ingest session publishes analysis jobs through jobs_analysis_publish, the
 * worker publishes insight jobs and parses both, and the recovery of
 * dead-lettered jobs reads their upload ids through jobs_parse
 * (jobs_close_dead_lettered), not with SQL of its own.
 */
#ifndef CLARITY_PIPELINE_JOBS_H
#define CLARITY_PIPELINE_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

struct store_tx;

enum jobs_kind { JOBS_ANALYSIS = 0, JOBS_INSIGHT };

struct jobs_message {
    char upload_id[STORE_ID_LEN];
    char user_id[STORE_ID_LEN];
    char analysis_id[STORE_ID_LEN]; /* insight jobs only; "" for analysis jobs */
};

/* The largest encoded payload, with its NUL. */
#define JOBS_PAYLOAD_MAX 160

/* The queue topic of a kind (static). */
const char *jobs_topic(enum jobs_kind kind);

/*
 * Encode m as kind's payload into out (JOBS_PAYLOAD_MAX bytes). 0, or
 * JOBS_EPAYLOAD when an id is not a UUID (or analysis_id is missing on an
 * insight job). The ids are UUID text, so nothing needs escaping.
 */
int jobs_encode(enum jobs_kind kind, const struct jobs_message *m, char out[JOBS_PAYLOAD_MAX]);

/*
 * Parse payload (JSON text, may be NULL) as kind's message. 0 with *out
 * filled, or JOBS_EPAYLOAD (not JSON, not an object, an id missing or not a
 * UUID); *out is zeroed on failure.
 */
int jobs_parse(enum jobs_kind kind, const char *payload, struct jobs_message *out);

/* Publish the analysis job of upload_id (owned by user_id) inside tx: the
 * ingest session's queue step. 0, JOBS_EPAYLOAD, or a STORE_E* code. */
int jobs_analysis_publish(struct store_tx *tx, const char *upload_id, const char *user_id);

/*
 * Close the uploads whose job the queue gave up on: every upload still
 * received or processing while a message naming it sits in the dead-letter
 * topic of either job topic is marked failed (the dead letters stay for
 * operators). A worker that dies during a job's last attempt cannot mark
 * its upload itself; the workers call this now and then. *closed (may be
 * NULL) receives how many uploads were closed. 0 or a STORE_E* code.
 */
int jobs_close_dead_lettered(struct store_tx *tx, int64_t *closed);

#endif
