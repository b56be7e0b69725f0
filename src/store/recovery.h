/*
 * recovery.h — uploads whose processing was abandoned by the queue.
 *
 * A job that fails on its last attempt marks its upload failed itself. A
 * worker that DIES during the last attempt cannot: the next lease finds the
 * message exhausted and moves it to the dead-letter topic without running
 * it, and the upload would stay "received"/"processing" forever. Workers
 * call store_upload_fail_dead_lettered now and then to close such uploads.
 */
#ifndef CLARITY_STORE_RECOVERY_H
#define CLARITY_STORE_RECOVERY_H

#include <stdint.h>

#include "store/store.h"

/*
 * Mark failed every upload that is still received or processing while a
 * message naming it (payload {"upload_id": …}) sits in the dead-letter topic
 * of health-data-processing or insights-generation. The dead letters stay
 * where they are for operators. *n (may be NULL) receives how many uploads
 * were closed.
 */
int store_upload_fail_dead_lettered(struct store_tx *tx, int64_t *n);

#endif
