/*
 * pat_internal.h — the PAT model object, shared by the loader (pat_load.c)
 * and the forward pass (pat.c). Not for use outside src/ml/.
 */
#ifndef CLARITY_ML_PAT_INTERNAL_H
#define CLARITY_ML_PAT_INTERNAL_H

#include <stddef.h>

#include <hdf5.h>

#include "ml/pat.h"

/*
 * One encoder block, laid out for row-major sgemm (activations are N x C,
 * row-major; kernels are [in, out] exactly as Keras stores Dense kernels).
 * Q, K and V projections are fused into one [96, 3*H*96] kernel: Keras'
 * query/key/value kernels are [96, H, 96] (einsum "abc,cde->abde"), which
 * read row-major are [96, H*96] with head h at columns h*96..h*96+95.
 */
struct pat_layer {
    float *wqkv; /* [96, 3*H*96]: q | k | v columns */
    float *bqkv; /* [3*H*96] */
    float *wo;   /* [H*96, 96]: Keras attention_output kernel [H,96,96] */
    float *bo;   /* [96] */
    float *ln1_g, *ln1_b;
    float *w1, *b1; /* [96, 256], [256] */
    float *w2, *b2; /* [256, 96], [96] */
    float *ln2_g, *ln2_b;
};

struct pat_model {
    int conv;        /* 0: Dense patch embedding; 1: Conv1D */
    size_t patch;    /* S */
    size_t n;        /* N = PAT_MINUTES / S */
    size_t n_layers; /* L */
    size_t n_heads;  /* H */
    float *patch_w;  /* Dense: [S, 96]; Conv: [3, 96] (kernel [3,1,96]) */
    float *patch_b;  /* [96] */
    float *pe;       /* [N, 96] sinusoidal positional embedding */
    struct pat_layer layers[PAT_MAX_LAYERS];
    size_t n_params;
    char variant[24];
    char sha256[65];
};

/* LayerNormalization epsilon used by PAT's encoder blocks (Keras
 * LayerNormalization(epsilon=1e-6); Keras' own default would be 1e-3). */
#define PAT_LN_EPS 1e-6f

/* Fill pe [n, 96] with PAT's fixed positional embedding (pat.c). */
void pat_pe_fill(float *pe, size_t n);

/* SHA-256 of a file as lower-case hex (pat_load.c). Returns 0 or
 * PAT_ERR_IO with a message. */
int pat_file_sha256(const char *path, char hex[65], char *err, size_t errlen);

/* Compare a computed digest with an expected hex string (any case). Returns
 * 0 on match, PAT_ERR_ARG when expected is not 64 hex digits,
 * PAT_ERR_CHECKSUM on mismatch; writes a message in both failure cases. */
int pat_sha256_check(const char *computed, const char *expected, const char *path, char *err, size_t errlen);

/*
 * HDF5 helpers (pat_load.c). Paths are relative to the file root and are
 * checked component by component, so a missing group is an error, never a
 * libhdf5 failure deeper down.
 *
 * pat_hdf_open: open read-only; PAT_ERR_IO when the file cannot be read at
 * all, PAT_ERR_FORMAT when it is not HDF5. Silences libhdf5's automatic
 * error printing until pat_hdf_close (saving and restoring the handler).
 */
struct pat_hdf {
    hid_t file;
    H5E_auto2_t old_fn;
    void *old_data;
};
int pat_hdf_open(struct pat_hdf *h, const char *path, char *err, size_t errlen);
void pat_hdf_close(struct pat_hdf *h);
/* 1 when every component of path exists as a link, else 0. */
int pat_hdf_exists(hid_t file, const char *path);
/* Shape of a float dataset: rank (<= 4) and dims. PAT_ERR_FORMAT (missing,
 * not a dataset, not floating point) with a message naming path. */
int pat_hdf_shape(hid_t file, const char *path, int *rank, hsize_t dims[4], char *err, size_t errlen);
/* Read a float dataset of exactly the given shape into dst (converted to
 * float32), refusing non-finite values. PAT_ERR_SHAPE names the dataset, the
 * shape expected and the shape found; PAT_ERR_FORMAT for unreadable data. */
int pat_hdf_read(hid_t file, const char *path, int rank, const hsize_t *dims, float *dst, char *err, size_t errlen);
/* "[a,b,c]" into buf. */
void pat_hdf_dims_format(int rank, const hsize_t *dims, char *buf, size_t len);

/* 64-byte aligned allocation of n floats (zeroed), or NULL. Free with free(). */
float *pat_floats_new(size_t n);

#endif
