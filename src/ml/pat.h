/*
 * pat.h — the Pretrained Actigraphy Transformer (PAT) encoder.
 *
 * PAT: F. Y. Ruan, A. Zhang, J. Y. Oh, S. Jin, N. C. Jacobson, "AI Foundation
 * Models for Wearable Movement Data in Mental Health Research", arXiv
 * 2411.15240 (2024). A transformer encoder over one week (10,080 minutes) of
 * minute-level actigraphy, cut into patches; the authors publish the encoder
 * weights as Keras 2 HDF5 files (see docs/pat.md).
 *
 * This module computes exactly what the Keras model computes, in float32 on
 * OpenBLAS:
 *
 *   patches  x[p] = minutes[pS .. pS+S)                       (N = 10080/S)
 *   embed    h = Dense96(x) + PE      (or Conv1D(96,3,same,ReLU) averaged
 *                                      over each patch, "PAT-Conv")
 *   per block (post-norm):  a  = MHA(h)
 *                           h1 = LN1(h + a)
 *                           h  = LN2(h1 + Dense96(ReLU(Dense256(h1))))
 *   output   tokens h (N x 96) and their mean (the pooled embedding)
 *
 * Lifetimes and threads: a struct pat_model is immutable after
 * pat_model_load and may be shared read-only by any number of threads. Each
 * thread that runs inferences owns a struct pat_workspace (all scratch memory
 * of one forward pass), so pat_model_forward is reentrant and allocates no
 * memory (a workspace made for several threads starts them per call).
 * Nothing here logs or keeps global state; errors come back as negative
 * codes plus a one-line message in a caller buffer.
 */
#ifndef CLARITY_ML_PAT_H
#define CLARITY_ML_PAT_H

#include <stddef.h>

#include "core/err.h"

#define PAT_MINUTES 10080 /* one week of minutes: the model's input length */
#define PAT_EMBED_DIM 96  /* token width, and every attention head's width */
#define PAT_FF_DIM 256    /* feed-forward hidden width */
#define PAT_MAX_LAYERS 16 /* caps what a weights file may declare */
#define PAT_MAX_HEADS 32
#define PAT_MAX_THREADS 16     /* threads one forward pass may use */
#define PAT_MAX_ABS_INPUT 1e6f /* |standardized input| bound; larger is refused */
#define PAT_MAX_TOKENS 2520    /* patch size >= 4: bounds attention memory */

/* Error codes: PAT_ERR_* in core/err.h (0 is PAT_OK). */

struct pat_model;     /* opaque, immutable after load */
struct pat_workspace; /* opaque, one per thread */

struct pat_load_options {
    /* Expected SHA-256 of the file as 64 hex digits (any case), or NULL to
     * skip verification. Configuration: PAT_MODEL_SHA256. */
    const char *expected_sha256;
    /* PAT-Conv files do not reveal the patch size in any weight shape; 0
     * means "by depth" (4 layers: 9, otherwise 18, as in the authors'
     * PAT-S/M/L settings). Ignored for Dense patch embeddings. */
    size_t conv_patch_size;
};

struct pat_model_info {
    char variant[24];  /* "PAT-S", "PAT-M", "PAT-L", "PAT-Conv-S", ... or
                             "PAT-custom" / "PAT-Conv-custom" */
    int conv;          /* 1: Conv1D patch embedding */
    size_t patch_size; /* S */
    size_t n_tokens;   /* N = 10080 / S */
    size_t n_layers;   /* L */
    size_t n_heads;    /* H */
    size_t n_params;   /* float weights read from the file */
    double flops;      /* multiply-adds x 2 of one forward pass */
    char sha256[65];   /* of the weights file, lower-case hex */
};

/*
 * Load a Keras 2 (legacy HDF5) PAT encoder weights file. The layout, with an
 * optional "model_weights/" prefix, is
 *   dense/dense/{kernel:0 [S,96], bias:0 [96]}            (Dense patches) or
 *   conv1d.../.../{kernel:0 [3,1,96], bias:0 [96]}        (PAT-Conv: one
 *       kernel under a top-level group named conv1d*, e.g. the authors'
 *       TimeDistributed "conv1d_patch_embedding" or a plain "conv1d")
 *   encoder_layer_{i}_transformer/ (i = 1..L, consecutive)
 *     encoder_layer_{i}_attention/{query,key,value}/{kernel:0 [96,H,96],
 *                                                    bias:0 [H,96]}
 *     encoder_layer_{i}_attention/attention_output/{kernel:0 [H,96,96],
 *                                                   bias:0 [96]}
 *     encoder_layer_{i}_norm{1,2}/{gamma:0 [96], beta:0 [96]}
 *     encoder_layer_{i}_ff1/{kernel:0 [96,256], bias:0 [256]}
 *     encoder_layer_{i}_ff2/{kernel:0 [256,96], bias:0 [96]}
 * S, L and H are inferred from the shapes; anything inconsistent is refused
 * with a message naming the dataset and the shape found.
 *
 * opt may be NULL (no checksum). On success returns 0 and stores a new model
 * in *out (caller frees with pat_model_free). On failure returns a negative
 * pat_error, writes a one-line reason into err and leaves *out untouched.
 *
 * Not thread-safe with respect to other libhdf5 use (the serial libhdf5 has
 * no lock): load models at start-up, from one thread. It briefly disables
 * libhdf5's automatic error printing and restores it.
 */
int pat_model_load(const char *path, const struct pat_load_options *opt, struct pat_model **out, char *err,
                   size_t errlen);

/* Free a model. Accepts NULL. No workspace of it may be in use. */
void pat_model_free(struct pat_model *m);

/* Describe a loaded model (shapes, parameter count, checksum). */
void pat_model_info_get(const struct pat_model *m, struct pat_model_info *info);

/* Tokens per input (N) and layers (L): the sizes of the output buffers. */
size_t pat_model_tokens(const struct pat_model *m);
size_t pat_model_layers(const struct pat_model *m);

/*
 * Allocate the scratch memory of forward passes of m (a few MB; about
 * 20 MB for PAT-L). n_threads (1..PAT_MAX_THREADS, clamped) is how many
 * threads one pat_model_forward on this workspace may use: the caller's
 * thread plus n_threads - 1 started per call, each taking a contiguous slice
 * of the tokens. They are used only while OpenBLAS itself runs
 * single-threaded (pat_blas_threads_set(1)); with a multi-threaded OpenBLAS
 * the pass stays on the caller's thread and OpenBLAS parallelises each
 * matrix product instead. Returns NULL when out of memory. The workspace
 * borrows m, which must outlive it. Caller frees with pat_workspace_free.
 */
struct pat_workspace *pat_workspace_new(const struct pat_model *m, int n_threads);
void pat_workspace_free(struct pat_workspace *ws);

/* Forward passes started by pat_model_forward in this process (every caller:
 * workers, the PAT API, chat, the health canary). For /metrics. */
unsigned long long pat_inferences_total(void);

/*
 * One forward pass.
 *   input      PAT_MINUTES standardized values (see pat_input_prepare),
 *              minute 0 first; borrowed.
 *   tokens     NULL, or N x 96 floats (row-major) that receive the token
 *              embeddings after the last block.
 *   pooled     NULL, or 96 floats: the mean of the tokens over N (what a
 *              GlobalAveragePooling1D head sees).
 *   attention  NULL, or L x N x N floats: per layer, the attention weights
 *              averaged over the heads (row = query patch, column = key
 *              patch; each row sums to 1). Costs one extra pass per block.
 * ws must have been made for m. Returns 0, PAT_ERR_ARG on mismatched
 * objects, PAT_ERR_INPUT when an input value is not finite or exceeds
 * PAT_MAX_ABS_INPUT in magnitude (standardized activity is O(1)-O(10); far
 * larger values mean a missing standardization), or when the result would
 * not be finite. Outputs are written only on success.
 */
int pat_model_forward(const struct pat_model *m, struct pat_workspace *ws, const float *input, float *tokens,
                      float *pooled, float *attention);

/*
 * Set the number of threads OpenBLAS uses for each matrix product. This is
 * process-wide library state: call it once at start-up. Clarity wants 1 and
 * parallelism from workspaces (faster on small products, and safe for
 * workers running inferences side by side). n < 1 is taken as 1.
 */
void pat_blas_threads_set(int n);

/* ---- input preparation ------------------------------------------------ */

/*
 * Standardization of minute activity counts before the encoder. The authors
 * standardize with scikit-learn's StandardScaler fit on their participants x
 * 10080 matrix: one mean and population standard deviation per minute of the
 * week (PAT_STD_PER_MINUTE). Which reference belongs to a weights file is
 * configuration, never guessed here.
 *   PAT_STD_NONE        values are already standardized
 *   PAT_STD_GLOBAL      z = (x - mean) / std, one mean/std for all minutes
 *   PAT_STD_PER_MINUTE  z[t] = (x[t] - mean[t]) / std[t], 10080 of each
 * A standard deviation of exactly 0 scales by 1 (StandardScaler's rule for
 * constant columns); negative or non-finite values are refused.
 */
enum pat_std_mode { PAT_STD_NONE = 0, PAT_STD_GLOBAL, PAT_STD_PER_MINUTE };

struct pat_standardization {
    enum pat_std_mode mode;
    float mean, std;              /* PAT_STD_GLOBAL; std >= 0 */
    const float *mean_per_minute; /* PAT_STD_PER_MINUTE: PAT_MINUTES each, */
    const float *std_per_minute;  /* borrowed, std >= 0 */
};

struct pat_coverage {
    size_t n_minutes; /* PAT_MINUTES */
    size_t n_present; /* finite input values */
    size_t n_missing; /* NaN/inf values and minutes past the end of the series */
    double fraction;  /* n_present / n_minutes */
};

/*
 * Turn a minute series into the model input.
 *   minutes  n values (activity per minute, minute 0 first), NaN = missing,
 *            as series_minutes_build (analysis/series.h) produces them for a
 *            10080-minute window; borrowed. n <= PAT_MINUTES; a shorter
 *            series is padded at the end with missing minutes.
 *   out      PAT_MINUTES floats.
 *   cov      NULL, or receives the coverage of the input.
 * Missing minutes become 0 after standardization, i.e. the reference mean.
 * Returns 0, or PAT_ERR_ARG (n too large, a mean or std not finite, a
 * std negative).
 */
int pat_input_prepare(const double *minutes, size_t n, const struct pat_standardization *std, float *out,
                      struct pat_coverage *cov);

/* ---- task heads ------------------------------------------------------- */

/*
 * A fine-tuned task head: GlobalAveragePooling1D -> Dense(128, ReLU) ->
 * Dense(1, sigmoid), as in the authors' fine-tuning notebooks. Loaded from
 * its own HDF5 file (configuration: PAT_HEAD_<TASK>=path). Without a head
 * file Clarity reports the embedding and no score: a head is never made up.
 */
struct pat_head;

/*
 * Load a head: the file must hold exactly one dataset ".../kernel:0" of
 * shape [96,128] and one of shape [128,1], each with a sibling "bias:0"
 * ([128] and [1]); group names are free (a whole fine-tuned model works).
 * expected_sha256 NULL skips verification. Same return and threading
 * contract as pat_model_load.
 */
int pat_head_load(const char *path, const char *expected_sha256, struct pat_head **out, char *err, size_t errlen);
void pat_head_free(struct pat_head *h);

/* Probability in [0,1] from a pooled embedding (96 floats). Reentrant.
 * Returns 0, or PAT_ERR_INPUT when pooled is not finite. */
int pat_head_predict(const struct pat_head *h, const float *pooled, float *prob);

/* SHA-256 (lower-case hex) of the head file. */
const char *pat_head_sha256(const struct pat_head *h);

#endif
