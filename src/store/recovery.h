/*
 * recovery.h — closing uploads whose processing was abandoned.
 *
 * A job that fails on its last attempt marks its upload failed itself. A
 * worker that DIES during the last attempt cannot: the next lease finds the
 * message exhausted and moves it to the dead-letter topic without running
 * it, and the upload would stay "received"/"processing" forever. The
 * workers look through the dead letters now and then (jobs_close_dead_lettered
 * in pipeline/jobs.c, which alone knows the job message schema) and close
 * each such upload with store_upload_fail_open.
 */
#ifndef CLARITY_STORE_RECOVERY_H
#define CLARITY_STORE_RECOVERY_H

#include <stdint.h>

#include "store/store.h"

/*
 * Mark upload_id failed with error (borrowed, client-safe) when it is still
 * received or processing; a completed or failed upload is left alone.
 * *changed receives 1 when the upload was closed, else 0. 0, STORE_EINVAL
 * (error too long) or another STORE_E* code.
 */
int store_upload_fail_open(struct store_tx *tx, const char *upload_id, const char *error, int *changed);

#endif
