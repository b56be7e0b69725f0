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

/*
 * An Apple Health import is "processing" while its body streams in, and its
 * handler touches the upload (updated_at) at every batch and at least every
 * STORE_IMPORT_TOUCH_MS while a zip spools: that is its lease. A process
 * killed mid-stream leaves the upload "processing" with no one to finish it.
 * Mark failed, with a reason, every apple_health_export or research_recording
 * (POST /api/v1/recordings, stored in batches the same way) upload still
 * processing whose updated_at is before stale_before_ms (epoch ms). Imports
 * alive on other instances keep their lease. *n (may be NULL) receives how
 * many were closed.
 */
#define STORE_IMPORT_TOUCH_MS 30000
#define STORE_IMPORT_INTERRUPTED "import interrupted: the server stopped before the export was read; send it again"
int store_upload_fail_stale_imports(struct store_tx *tx, int64_t stale_before_ms, int64_t *n);

#endif
