/*
 * pat_head.c — fine-tuned PAT task heads.
 *
 * The authors' fine-tuning notebooks put GlobalAveragePooling1D ->
 * Dense(128, ReLU) -> Dense(1, sigmoid) on top of the encoder. The pooled
 * embedding of pat_model_forward is that average, so a head only needs the
 * two Dense layers. Their group names depend on how the head was saved, so
 * the loader finds the kernels by shape and refuses anything ambiguous.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml/pat_internal.h"

#define HEAD_HIDDEN 128
#define HEAD_PATH_MAX 256

struct pat_head {
    float w1[PAT_EMBED_DIM * HEAD_HIDDEN]; /* [96, 128] */
    float b1[HEAD_HIDDEN];
    float w2[HEAD_HIDDEN]; /* [128, 1] */
    float b2;
    char sha256[65];
};

struct head_scan {
    char k1[HEAD_PATH_MAX], k2[HEAD_PATH_MAX]; /* paths of the two kernels */
    int n1, n2;
};

/* H5Lvisit2 callback: note every ".../kernel:0" float dataset whose shape
 * is [96,128] or [128,1]. */
static herr_t scan_cb(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    struct head_scan *s = data;
    const char *base = strrchr(name, '/');
    hsize_t dims[4];
    int rank = 0;
    char err[8];

    (void)info;
    base = base ? base + 1 : name;
    if (strcmp(base, "kernel:0") != 0 || strlen(name) >= HEAD_PATH_MAX)
        return 0;
    if (pat_hdf_shape(group, name, &rank, dims, err, sizeof err) != 0 || rank != 2)
        return 0;
    if (dims[0] == PAT_EMBED_DIM && dims[1] == HEAD_HIDDEN) {
        if (s->n1++ == 0)
            snprintf(s->k1, sizeof s->k1, "%s", name);
    } else if (dims[0] == HEAD_HIDDEN && dims[1] == 1) {
        if (s->n2++ == 0)
            snprintf(s->k2, sizeof s->k2, "%s", name);
    }
    return 0;
}

/* kernel path ".../kernel:0" -> ".../bias:0" */
static void bias_path(const char *kernel, char *out, size_t len)
{
    size_t n = strlen(kernel) - strlen("kernel:0");
    snprintf(out, len, "%.*sbias:0", (int)n, kernel);
}

int pat_head_load(const char *path, const char *expected_sha256, struct pat_head **out, char *err, size_t errlen)
{
    struct pat_hdf h = {.file = H5I_INVALID_HID};
    struct head_scan scan;
    struct pat_head *hd = NULL;
    char bpath[HEAD_PATH_MAX];
    int rc, opened = 0;

    if (!path || !out) {
        snprintf(err, errlen, "pat_head_load: missing argument");
        return PAT_ERR_ARG;
    }
    memset(&scan, 0, sizeof scan);
    hd = calloc(1, sizeof *hd);
    if (!hd) {
        snprintf(err, errlen, "out of memory");
        return PAT_ERR_NOMEM;
    }
    rc = pat_file_sha256(path, hd->sha256, err, errlen);
    if (rc)
        goto fail;
    if (expected_sha256) {
        rc = pat_sha256_check(hd->sha256, expected_sha256, path, err, errlen);
        if (rc)
            goto fail;
    }
    rc = pat_hdf_open(&h, path, err, errlen);
    if (rc)
        goto fail;
    opened = 1;
    if (H5Lvisit(h.file, H5_INDEX_NAME, H5_ITER_NATIVE, scan_cb, &scan) < 0) {
        snprintf(err, errlen, "%s: cannot walk the file (corrupt?)", path);
        rc = PAT_ERR_FORMAT;
        goto fail;
    }
    if (scan.n1 != 1 || scan.n2 != 1) {
        snprintf(err, errlen,
                 "%s: a head needs exactly one kernel:0 of shape [96,128] and one of [128,1]; "
                 "found %d and %d",
                 path, scan.n1, scan.n2);
        rc = PAT_ERR_SHAPE;
        goto fail;
    }
    {
        const hsize_t d1[2] = {PAT_EMBED_DIM, HEAD_HIDDEN}, b1[1] = {HEAD_HIDDEN}, d2[2] = {HEAD_HIDDEN, 1},
                      b2[1] = {1};
        rc = pat_hdf_read(h.file, scan.k1, 2, d1, hd->w1, err, errlen);
        if (rc)
            goto fail;
        bias_path(scan.k1, bpath, sizeof bpath);
        rc = pat_hdf_read(h.file, bpath, 1, b1, hd->b1, err, errlen);
        if (rc)
            goto fail;
        rc = pat_hdf_read(h.file, scan.k2, 2, d2, hd->w2, err, errlen);
        if (rc)
            goto fail;
        bias_path(scan.k2, bpath, sizeof bpath);
        rc = pat_hdf_read(h.file, bpath, 1, b2, &hd->b2, err, errlen);
        if (rc)
            goto fail;
    }
    pat_hdf_close(&h);
    *out = hd;
    return PAT_OK;
fail:
    if (opened)
        pat_hdf_close(&h);
    free(hd);
    return rc;
}

void pat_head_free(struct pat_head *h) { free(h); }

const char *pat_head_sha256(const struct pat_head *h) { return h->sha256; }

int pat_head_predict(const struct pat_head *h, const float *pooled, float *prob)
{
    float hidden[HEAD_HIDDEN];
    float z;

    for (size_t i = 0; i < PAT_EMBED_DIM; i++) {
        if (!isfinite(pooled[i]))
            return PAT_ERR_INPUT;
    }
    for (size_t j = 0; j < HEAD_HIDDEN; j++)
        hidden[j] = h->b1[j];
    for (size_t i = 0; i < PAT_EMBED_DIM; i++) {
        const float *w = h->w1 + i * HEAD_HIDDEN;
        for (size_t j = 0; j < HEAD_HIDDEN; j++)
            hidden[j] += pooled[i] * w[j];
    }
    z = h->b2;
    for (size_t j = 0; j < HEAD_HIDDEN; j++)
        z += (hidden[j] > 0.0f ? hidden[j] : 0.0f) * h->w2[j];
    /* sigmoid, written to avoid overflow of exp for large |z| */
    *prob = z >= 0.0f ? 1.0f / (1.0f + expf(-z)) : expf(z) / (1.0f + expf(z));
    return PAT_OK;
}
