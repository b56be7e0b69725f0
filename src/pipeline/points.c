/*
 * points.c — posted points into an analysis. See points.h.
 */
#include "pipeline/points.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "ml/pat.h"
#include "pipeline/compute.h"
#include "store/store.h"

/* ---- the calling thread's PAT workspace ----------------------------------- */

struct thread_ws {
    const struct pat_model *model; /* the model it was made for */
    struct pat_workspace *ws;
};

static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;
static int ws_key_ok;
static atomic_size_t ws_made; /* a counter, not state: see points_workspaces_made */

static void thread_ws_free(void *p)
{
    struct thread_ws *t = p;
    if (t != NULL)
        pat_workspace_free(t->ws);
    free(t);
}

static void ws_key_make(void) { ws_key_ok = pthread_key_create(&ws_key, thread_ws_free) == 0; }

/* The workspace of this thread for model, made on first use; NULL when out
 * of memory. A different model (only in tests) replaces it. */
static struct pat_workspace *thread_workspace(const struct pat_model *model)
{
    pthread_once(&ws_once, ws_key_make);
    if (!ws_key_ok)
        return NULL;
    struct thread_ws *t = pthread_getspecific(ws_key);
    if (t != NULL && t->model == model)
        return t->ws;
    if (t == NULL) {
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return NULL;
        if (pthread_setspecific(ws_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    pat_workspace_free(t->ws);
    t->model = model;
    t->ws = pat_workspace_new(model, 1);
    if (t->ws != NULL)
        atomic_fetch_add(&ws_made, 1);
    return t->ws;
}

size_t points_workspaces_made(void) { return atomic_load(&ws_made); }

/* ---- the use case ------------------------------------------------------- */

int points_analyse(const struct points_pat *pat, const int64_t *minute, const double *value, size_t n, int steps,
                   size_t keep_min, json_t **result, json_t **coverage, char *err, size_t errlen)
{
    struct compute_window w;
    double *series = NULL;
    char why[256] = "";
    int rc = ANALYSIS_EINTERNAL;
    memset(&w, 0, sizeof(w));
    *result = NULL;
    *coverage = NULL;
    if (n == 0) {
        snprintf(err, errlen, "no points");
        return ANALYSIS_EINVAL;
    }
    int64_t lo = minute[0], hi = minute[0];
    for (size_t i = 1; i < n; i++) {
        if (minute[i] < lo)
            lo = minute[i];
        if (minute[i] > hi)
            hi = minute[i];
    }
    if (keep_min > 0 && hi + 1 - (int64_t)keep_min > lo)
        lo = hi + 1 - (int64_t)keep_min;
    /* Checked before the subtraction can be trusted as a size. */
    if (hi - lo >= LIMIT_POINTS_SPAN_MIN) {
        snprintf(err, errlen, "the points may span at most %d minutes", LIMIT_POINTS_SPAN_MIN);
        return ANALYSIS_ESPAN;
    }
    size_t span = (size_t)(hi + 1 - lo);
    series = malloc(span * sizeof(*series));
    if (series == NULL)
        goto done;
    for (size_t i = 0; i < span; i++)
        series[i] = NAN;
    for (size_t i = 0; i < n; i++) {
        if (minute[i] < lo)
            continue;
        size_t k = (size_t)(minute[i] - lo);
        series[k] = isnan(series[k]) ? value[i] : series[k] + value[i];
    }
    int crc = compute_window_from_minutes(series, span, lo, steps, &w, why, sizeof(why));
    struct pat_workspace *ws = NULL;
    if (crc == 0 && pat != NULL && pat->model != NULL && (ws = thread_workspace(pat->model)) == NULL)
        crc = COMPUTE_ENOMEM;
    if (crc == 0) {
        struct compute_pat cp = {pat != NULL ? pat->model : NULL, ws, pat != NULL ? pat->std : NULL,
                                 pat != NULL ? pat->model_version : NULL};
        crc = compute_window_analyse(&w, &cp, result, coverage, why, sizeof(why));
    }
    if (crc == COMPUTE_EREJECTED) {
        snprintf(err, errlen, "%s", why);
        rc = ANALYSIS_EINVAL;
    } else if (crc == 0) {
        rc = 0;
    }
done:
    if (rc == ANALYSIS_EINTERNAL)
        snprintf(err, errlen, "the analysis could not be completed (%s)", why);
    if (rc != 0) {
        json_decref(*result);
        json_decref(*coverage);
        *result = NULL;
        *coverage = NULL;
    }
    compute_window_free(&w);
    free(series);
    return rc;
}

int points_analysis_save(struct store *st, const struct store_analysis *a, const struct store_audit *audit)
{
    struct store_tx *tx = NULL;
    int rc = store_tx_begin(st, STORE_TX_WRITE, &tx);
    if (rc != 0)
        return rc;
    rc = store_analysis_insert(tx, a);
    if (rc == 0 && audit != NULL)
        rc = store_audit_insert(tx, audit);
    if (rc != 0) {
        store_tx_rollback(tx);
        return rc;
    }
    return store_tx_commit(tx);
}
