/*
 * pat.c — the PAT forward pass (see pat.h for the model and its sources).
 *
 * Every projection is one row-major OpenBLAS sgemm over all N tokens. The
 * attention of one head is computed in blocks of PAT_ATT_BLOCK query rows:
 * scores (block x N) = Q_blk K^T / sqrt(96), a numerically stable softmax
 * (subtract the row maximum before exp), then P V; the normalisation 1/sum
 * is applied to the 96-wide output row instead of the N-wide probability
 * row. At most one block x N score matrix per thread exists at a time, never
 * N x N x H.
 *
 * A workspace for T threads splits the tokens into T contiguous slices, one
 * per thread (the caller's plus T - 1 started per call); see struct slice.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "ml/pat_internal.h"

/* Query rows per attention block: 256 x 1120 floats (PAT-L) is ~1.1 MB,
 * about an L2 cache, and large enough for sgemm to run near peak. */
#define PAT_ATT_BLOCK 256

struct pat_workspace {
    const struct pat_model *model;
    int n_threads;
    float *x;                       /* [N, 96] hidden state */
    float *qkv;                     /* [N, 3*H*96] */
    float *ctx;                     /* [N, H*96] concatenated head outputs */
    float *tmp;                     /* [N, 96] */
    float *ff;                      /* [N, 256] */
    float *scores[PAT_MAX_THREADS]; /* per thread [PAT_ATT_BLOCK, N] */
    float *inv[PAT_MAX_THREADS];    /* per thread [PAT_ATT_BLOCK] 1 / row sums */
};

void pat_blas_threads_set(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }

/*
 * PAT's fixed sinusoidal positional embedding (Vaswani et al. 2017, sec.
 * 3.5, with PAT's layout): sin and cos halves concatenated, not interleaved.
 *   w_i = exp(-2i ln(10000) / 96),  PE[p, i] = sin(p w_i),
 *   PE[p, 48 + i] = cos(p w_i),  i = 0..47.
 * Computed in float32 step by step as the authors' get_positional_embeddings
 * does in TensorFlow (float32 log(10000), divided by 96, times 2i, exp, times
 * p, sin/cos), so the angles round the same way; for p ~ 1000 that rounding
 * is visible at 1e-5 and is part of the model.
 */
void pat_pe_fill(float *pe, size_t n)
{
    const size_t half = PAT_EMBED_DIM / 2;
    const float c = -(logf(10000.0f) / (float)PAT_EMBED_DIM);

    for (size_t p = 0; p < n; p++) {
        for (size_t i = 0; i < half; i++) {
            float w = expf((float)(2 * i) * c);
            float a = (float)p * w;
            pe[p * PAT_EMBED_DIM + i] = sinf(a);
            pe[p * PAT_EMBED_DIM + half + i] = cosf(a);
        }
    }
}

void pat_model_info_get(const struct pat_model *m, struct pat_model_info *info)
{
    const double n = (double)m->n, d = PAT_EMBED_DIM, hd = (double)(m->n_heads * PAT_EMBED_DIM);
    double per_layer;

    memset(info, 0, sizeof *info);
    memcpy(info->variant, m->variant, sizeof info->variant);
    memcpy(info->sha256, m->sha256, sizeof info->sha256);
    info->conv = m->conv;
    info->patch_size = m->patch;
    info->n_tokens = m->n;
    info->n_layers = m->n_layers;
    info->n_heads = m->n_heads;
    info->n_params = m->n_params;
    /* 2 FLOPs per multiply-add: QKV, scores, P V, output, feed-forward. */
    per_layer = 2 * n * d * 3 * hd + 2 * 2 * n * n * hd + 2 * n * hd * d + 2 * 2 * n * d * PAT_FF_DIM;
    info->flops =
        (double)m->n_layers * per_layer + (m->conv ? 2 * 3 * (double)PAT_MINUTES * d : 2 * n * (double)m->patch * d);
}

size_t pat_model_tokens(const struct pat_model *m) { return m->n; }

size_t pat_model_layers(const struct pat_model *m) { return m->n_layers; }

void pat_workspace_free(struct pat_workspace *ws)
{
    if (!ws)
        return;
    free(ws->x);
    free(ws->qkv);
    free(ws->ctx);
    free(ws->tmp);
    free(ws->ff);
    for (int t = 0; t < PAT_MAX_THREADS; t++) {
        free(ws->scores[t]);
        free(ws->inv[t]);
    }
    free(ws);
}

struct pat_workspace *pat_workspace_new(const struct pat_model *m, int n_threads)
{
    struct pat_workspace *ws;
    const size_t n = m->n, hd = m->n_heads * PAT_EMBED_DIM;

    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > PAT_MAX_THREADS)
        n_threads = PAT_MAX_THREADS;
    ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->model = m;
    ws->n_threads = n_threads;
    ws->x = pat_floats_new(n * PAT_EMBED_DIM);
    ws->qkv = pat_floats_new(n * 3 * hd);
    ws->ctx = pat_floats_new(n * hd);
    ws->tmp = pat_floats_new(n * PAT_EMBED_DIM);
    ws->ff = pat_floats_new(n * PAT_FF_DIM);
    if (!ws->x || !ws->qkv || !ws->ctx || !ws->tmp || !ws->ff)
        goto fail;
    for (int t = 0; t < n_threads; t++) {
        ws->scores[t] = pat_floats_new((size_t)PAT_ATT_BLOCK * n);
        ws->inv[t] = pat_floats_new(PAT_ATT_BLOCK);
        if (!ws->scores[t] || !ws->inv[t])
            goto fail;
    }
    return ws;
fail:
    pat_workspace_free(ws);
    return NULL;
}

/* ---- softmax ----------------------------------------------------------- */

/*
 * Row softmax kernels in GCC vector extensions, generated for 8 lanes
 * (AVX2+FMA) and 16 lanes (AVX-512F), each used only after a run-time CPU
 * check; other CPUs take the scalar softmax_row_generic below.
 *
 * exp(x) for x <= 0: Cody-Waite range reduction x = n ln2 + r and the
 * degree-6 minimax polynomial of the Cephes library's expf (S. L. Moshier),
 * relative error about 1 ulp. x is clamped at -87.3 so 2^n stays a normal
 * float (exp(-87.3) ~ 1e-38, far below what a softmax row can notice next to
 * its maximum, which contributes exp(0) = 1).
 *
 * softmax_row_<isa>(row, n) replaces row[0..n) by exp(row - max) (the
 * numerically stable form) and returns 1 / sum.
 */
#define PAT_SOFTMAX_DEFINE(W, VF, VI, ISA, TARGET)                                                                     \
    typedef float VF __attribute__((vector_size(4 * (W))));                                                            \
    typedef int VI __attribute__((vector_size(4 * (W))));                                                              \
                                                                                                                       \
    static inline __attribute__((always_inline, target(TARGET))) VF load_##ISA(const float *p)                         \
    {                                                                                                                  \
        VF v;                                                                                                          \
        memcpy(&v, p, sizeof v);                                                                                       \
        return v;                                                                                                      \
    }                                                                                                                  \
                                                                                                                       \
    static inline __attribute__((always_inline, target(TARGET))) VF select_##ISA(VI mask, VF a, VF b)                  \
    {                                                                                                                  \
        return (VF)(((VI)a & mask) | ((VI)b & ~mask));                                                                 \
    }                                                                                                                  \
                                                                                                                       \
    static inline __attribute__((always_inline, target(TARGET))) VF exp_##ISA(VF x)                                    \
    {                                                                                                                  \
        const VF lo = (VF){0} - 87.3f;                                                                                 \
        VF t, fn, r, z, p;                                                                                             \
        VI n;                                                                                                          \
                                                                                                                       \
        x = select_##ISA(x < lo, lo, x);                                                                               \
        t = x * 1.44269504088896341f + 0.5f;                                                                           \
        n = __builtin_convertvector(t, VI); /* truncates toward zero */                                                \
        fn = __builtin_convertvector(n, VF);                                                                           \
        n += (VI)(fn > t); /* floor: -1 where truncation rounded up */                                                 \
        fn = __builtin_convertvector(n, VF);                                                                           \
        r = x - fn * 0.693359375f;                                                                                     \
        r = r - fn * -2.12194440e-4f;                                                                                  \
        z = r * r;                                                                                                     \
        p = r * 1.9875691500e-4f + 1.3981999507e-3f;                                                                   \
        p = p * r + 8.3334519073e-3f;                                                                                  \
        p = p * r + 4.1665795894e-2f;                                                                                  \
        p = p * r + 1.6666665459e-1f;                                                                                  \
        p = p * r + 5.0000001201e-1f;                                                                                  \
        p = p * z + r + 1.0f;                                                                                          \
        return p * (VF)((n + 127) << 23);                                                                              \
    }                                                                                                                  \
                                                                                                                       \
    __attribute__((target(TARGET))) static float softmax_row_##ISA(float *row, size_t n)                               \
    {                                                                                                                  \
        size_t i = 0, nv = n - n % (W);                                                                                \
        float mx = -INFINITY, sum = 0.0f;                                                                              \
                                                                                                                       \
        if (nv) {                                                                                                      \
            VF m = load_##ISA(row);                                                                                    \
            for (i = (W); i < nv; i += (W)) {                                                                          \
                VF v = load_##ISA(row + i);                                                                            \
                m = select_##ISA(v > m, v, m);                                                                         \
            }                                                                                                          \
            for (int k = 0; k < (W); k++)                                                                              \
                mx = m[k] > mx ? m[k] : mx;                                                                            \
        }                                                                                                              \
        for (i = nv; i < n; i++)                                                                                       \
            mx = row[i] > mx ? row[i] : mx;                                                                            \
        if (nv) {                                                                                                      \
            VF acc = {0};                                                                                              \
            for (i = 0; i < nv; i += (W)) {                                                                            \
                VF e = exp_##ISA(load_##ISA(row + i) - mx);                                                            \
                memcpy(row + i, &e, sizeof e);                                                                         \
                acc += e;                                                                                              \
            }                                                                                                          \
            for (int k = 0; k < (W); k++)                                                                              \
                sum += acc[k];                                                                                         \
        }                                                                                                              \
        for (i = nv; i < n; i++) {                                                                                     \
            row[i] = expf(row[i] - mx);                                                                                \
            sum += row[i];                                                                                             \
        }                                                                                                              \
        return 1.0f / sum;                                                                                             \
    }

PAT_SOFTMAX_DEFINE(8, v8f, v8i, avx2, "avx2,fma")
PAT_SOFTMAX_DEFINE(16, v16f, v16i, avx512, "avx512f")

/* Portable fallback of the vector softmax kernels. */
static float softmax_row_generic(float *row, size_t n)
{
    float mx = -INFINITY, sum = 0.0f;

    for (size_t i = 0; i < n; i++)
        mx = row[i] > mx ? row[i] : mx;
    for (size_t i = 0; i < n; i++) {
        row[i] = expf(row[i] - mx);
        sum += row[i];
    }
    return 1.0f / sum;
}

/* ---- small kernels ----------------------------------------------------- */

/* Each of rows rows of c (leading dimension ld) := bias[0..cols). */
static void rows_fill(float *c, size_t rows, size_t cols, size_t ld, const float *bias)
{
    for (size_t r = 0; r < rows; r++)
        memcpy(c + r * ld, bias, cols * sizeof(float));
}

/*
 * x := LayerNorm(x + t) row by row over 96 features: biased variance,
 * y = (v - mean) / sqrt(var + eps) * gamma + beta (Keras
 * LayerNormalization, axis -1, epsilon PAT_LN_EPS).
 */
static void add_layer_norm(float *x, const float *t, size_t rows, const float *g, const float *b)
{
    for (size_t r = 0; r < rows; r++) {
        float *xr = x + r * PAT_EMBED_DIM;
        const float *tr = t + r * PAT_EMBED_DIM;
        float v[PAT_EMBED_DIM], mean = 0.0f, var = 0.0f, inv;

        for (size_t i = 0; i < PAT_EMBED_DIM; i++) {
            v[i] = xr[i] + tr[i];
            mean += v[i];
        }
        mean /= (float)PAT_EMBED_DIM;
        for (size_t i = 0; i < PAT_EMBED_DIM; i++) {
            float d = v[i] - mean;
            var += d * d;
        }
        var /= (float)PAT_EMBED_DIM;
        inv = 1.0f / sqrtf(var + PAT_LN_EPS);
        for (size_t i = 0; i < PAT_EMBED_DIM; i++)
            xr[i] = (v[i] - mean) * inv * g[i] + b[i];
    }
}

/*
 * PAT-Conv patch embedding: Conv1D(96 filters, kernel 3, padding "same",
 * ReLU) over each patch as an S-sample, 1-channel signal (zero padding of
 * one sample at each end of the patch; Keras Conv1D is a cross-correlation:
 * out[t] = b + w[0] x[t-1] + w[1] x[t] + w[2] x[t+1]), then the mean over
 * the S outputs.
 */
static void conv_embed(const struct pat_model *m, const float *input, float *x, size_t r0, size_t r1)
{
    const size_t s = m->patch;
    const float *w = m->patch_w, *b = m->patch_b;

    for (size_t p = r0; p < r1; p++) {
        const float *in = input + p * s;
        float acc[PAT_EMBED_DIM] = {0};

        for (size_t t = 0; t < s; t++) {
            float xm = t > 0 ? in[t - 1] : 0.0f, x0 = in[t], xp = t + 1 < s ? in[t + 1] : 0.0f;
            for (size_t f = 0; f < PAT_EMBED_DIM; f++) {
                float v = b[f] + w[f] * xm + w[PAT_EMBED_DIM + f] * x0 + w[2 * PAT_EMBED_DIM + f] * xp;
                acc[f] += v > 0.0f ? v : 0.0f;
            }
        }
        for (size_t f = 0; f < PAT_EMBED_DIM; f++)
            x[p * PAT_EMBED_DIM + f] = acc[f] / (float)s;
    }
}

/* ---- one thread's share of a forward pass ------------------------------ */

/*
 * Threads split the N token rows into contiguous slices. Everything but
 * attention is row-local (embedding, projections, LayerNorm, feed-forward),
 * and attention for a slice of query rows only reads K and V of all rows,
 * so a block needs two barriers: after the QKV projection (K, V complete)
 * and before the next block overwrites Q, K, V.
 */
struct slice {
    const struct pat_model *m;
    struct pat_workspace *ws;
    const float *input;
    float *att;             /* NULL or [L, N, N] */
    pthread_barrier_t *bar; /* NULL when single-threaded */
    size_t r0, r1;          /* token rows [r0, r1) */
    int tid;
    /* start gate: threads run only once all of them exist */
    pthread_mutex_t *gate_mu;
    pthread_cond_t *gate_cv;
    int *gate; /* 0 wait, 1 go, -1 give up */
};

static void sync_all(const struct slice *sl)
{
    if (sl->bar)
        pthread_barrier_wait(sl->bar);
}

static void embed_rows(const struct slice *sl)
{
    const struct pat_model *m = sl->m;
    float *x = sl->ws->x;
    const size_t r0 = sl->r0, rows = sl->r1 - sl->r0;

    if (m->conv) {
        conv_embed(m, sl->input, x, r0, sl->r1);
    } else {
        /* The week read row-major as [N, S] is exactly the patch matrix. */
        rows_fill(x + r0 * PAT_EMBED_DIM, rows, PAT_EMBED_DIM, PAT_EMBED_DIM, m->patch_b);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, PAT_EMBED_DIM, (int)m->patch, 1.0f,
                    sl->input + r0 * m->patch, (int)m->patch, m->patch_w, PAT_EMBED_DIM, 1.0f, x + r0 * PAT_EMBED_DIM,
                    PAT_EMBED_DIM);
    }
    for (size_t i = r0 * PAT_EMBED_DIM; i < sl->r1 * PAT_EMBED_DIM; i++)
        x[i] += m->pe[i];
}

static void project_qkv(const struct slice *sl, const struct pat_layer *ly)
{
    struct pat_workspace *ws = sl->ws;
    const size_t ld = 3 * sl->m->n_heads * PAT_EMBED_DIM, rows = sl->r1 - sl->r0;

    rows_fill(ws->qkv + sl->r0 * ld, rows, ld, ld, ly->bqkv);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ld, PAT_EMBED_DIM, 1.0f,
                ws->x + sl->r0 * PAT_EMBED_DIM, PAT_EMBED_DIM, ly->wqkv, (int)ld, 1.0f, ws->qkv + sl->r0 * ld, (int)ld);
}

/*
 * Multi-head self-attention for query rows [r0, r1) into ws->tmp rows
 * (Keras MultiHeadAttention: softmax(Q K^T / sqrt(key_dim)) V per head, then
 * the output kernel [H,96,96], read as [H*96, 96], sums over heads).
 */
static void attend_rows(const struct slice *sl, const struct pat_layer *ly, float *att_l)
{
    const struct pat_model *m = sl->m;
    struct pat_workspace *ws = sl->ws;
    const size_t n = m->n, heads = m->n_heads, hd = heads * PAT_EMBED_DIM, ld = 3 * hd;
    const size_t r0 = sl->r0, r1 = sl->r1;
    const float scale = 1.0f / sqrtf((float)PAT_EMBED_DIM), inv_heads = 1.0f / (float)heads;
    float *scores = ws->scores[sl->tid], *inv = ws->inv[sl->tid];
    float (*softmax_row)(float *, size_t) = __builtin_cpu_supports("avx512f") ? softmax_row_avx512
                                            : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                                                ? softmax_row_avx2
                                                : softmax_row_generic;

    for (size_t h = 0; h < heads; h++) {
        const float *q = ws->qkv + h * PAT_EMBED_DIM;
        const float *k = ws->qkv + hd + h * PAT_EMBED_DIM;
        const float *v = ws->qkv + 2 * hd + h * PAT_EMBED_DIM;

        for (size_t q0 = r0; q0 < r1; q0 += PAT_ATT_BLOCK) {
            const size_t b = r1 - q0 < PAT_ATT_BLOCK ? r1 - q0 : PAT_ATT_BLOCK;
            float *out = ws->ctx + q0 * hd + h * PAT_EMBED_DIM;

            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)b, (int)n, PAT_EMBED_DIM, scale, q + q0 * ld,
                        (int)ld, k, (int)ld, 0.0f, scores, (int)n);
            for (size_t i = 0; i < b; i++)
                inv[i] = softmax_row(scores + i * n, n);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)b, PAT_EMBED_DIM, (int)n, 1.0f, scores, (int)n,
                        v, (int)ld, 0.0f, out, (int)hd);
            for (size_t i = 0; i < b; i++) {
                float *o = out + i * hd, s = inv[i];
                for (size_t j = 0; j < PAT_EMBED_DIM; j++)
                    o[j] *= s;
            }
            if (att_l) {
                for (size_t i = 0; i < b; i++) {
                    const float *p = scores + i * n;
                    float *a = att_l + (q0 + i) * n, s = inv[i] * inv_heads;
                    if (h == 0) {
                        for (size_t j = 0; j < n; j++)
                            a[j] = p[j] * s;
                    } else {
                        for (size_t j = 0; j < n; j++)
                            a[j] += p[j] * s;
                    }
                }
            }
        }
    }
    rows_fill(ws->tmp + r0 * PAT_EMBED_DIM, r1 - r0, PAT_EMBED_DIM, PAT_EMBED_DIM, ly->bo);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), PAT_EMBED_DIM, (int)hd, 1.0f,
                ws->ctx + r0 * hd, (int)hd, ly->wo, PAT_EMBED_DIM, 1.0f, ws->tmp + r0 * PAT_EMBED_DIM, PAT_EMBED_DIM);
}

/* rows := LN2(rows + Dense96(ReLU(Dense256(rows)))), ws->x in place. */
static void feed_forward_rows(const struct slice *sl, const struct pat_layer *ly)
{
    struct pat_workspace *ws = sl->ws;
    const size_t r0 = sl->r0, rows = sl->r1 - sl->r0;
    float *x = ws->x + r0 * PAT_EMBED_DIM, *ff = ws->ff + r0 * PAT_FF_DIM;
    float *t = ws->tmp + r0 * PAT_EMBED_DIM;

    rows_fill(ff, rows, PAT_FF_DIM, PAT_FF_DIM, ly->b1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, PAT_FF_DIM, PAT_EMBED_DIM, 1.0f, x, PAT_EMBED_DIM,
                ly->w1, PAT_FF_DIM, 1.0f, ff, PAT_FF_DIM);
    for (size_t i = 0; i < rows * PAT_FF_DIM; i++)
        ff[i] = ff[i] > 0.0f ? ff[i] : 0.0f;
    rows_fill(t, rows, PAT_EMBED_DIM, PAT_EMBED_DIM, ly->b2);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, PAT_EMBED_DIM, PAT_FF_DIM, 1.0f, ff, PAT_FF_DIM,
                ly->w2, PAT_EMBED_DIM, 1.0f, t, PAT_EMBED_DIM);
    add_layer_norm(x, t, rows, ly->ln2_g, ly->ln2_b);
}

static void run_slice(const struct slice *sl)
{
    const struct pat_model *m = sl->m;
    const size_t n = m->n, r0 = sl->r0, rows = sl->r1 - sl->r0;

    embed_rows(sl);
    /* Post-norm blocks: h1 = LN1(h + MHA(h)); h = LN2(h1 + FF(h1)). */
    for (size_t l = 0; l < m->n_layers; l++) {
        const struct pat_layer *ly = &m->layers[l];
        if (l > 0)
            sync_all(sl); /* every slice is done reading the previous K, V */
        project_qkv(sl, ly);
        sync_all(sl); /* K and V of all rows are ready */
        attend_rows(sl, ly, sl->att ? sl->att + l * n * n : NULL);
        add_layer_norm(sl->ws->x + r0 * PAT_EMBED_DIM, sl->ws->tmp + r0 * PAT_EMBED_DIM, rows, ly->ln1_g, ly->ln1_b);
        feed_forward_rows(sl, ly);
    }
}

static void *slice_thread(void *arg)
{
    struct slice *sl = arg;
    int go;

    pthread_mutex_lock(sl->gate_mu);
    while (*sl->gate == 0)
        pthread_cond_wait(sl->gate_cv, sl->gate_mu);
    go = *sl->gate;
    pthread_mutex_unlock(sl->gate_mu);
    if (go > 0)
        run_slice(sl);
    return NULL;
}

static void open_gate(pthread_mutex_t *mu, pthread_cond_t *cv, int *gate, int value)
{
    pthread_mutex_lock(mu);
    *gate = value;
    pthread_cond_broadcast(cv);
    pthread_mutex_unlock(mu);
}

/* Forward passes run in this process, for /metrics (clarity_pat_inferences_total). */
static _Atomic unsigned long long inferences;

unsigned long long pat_inferences_total(void) { return atomic_load(&inferences); }

int pat_model_forward(const struct pat_model *m, struct pat_workspace *ws, const float *input, float *tokens,
                      float *pooled, float *attention_out)
{
    atomic_fetch_add(&inferences, 1);
    pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
    pthread_barrier_t bar;
    pthread_t th[PAT_MAX_THREADS];
    struct slice sl[PAT_MAX_THREADS];
    int gate = 0, threads, started = 0;
    size_t n;

    if (!m || !ws || !input || ws->model != m)
        return PAT_ERR_ARG;
    for (size_t i = 0; i < PAT_MINUTES; i++) {
        if (!(fabsf(input[i]) <= PAT_MAX_ABS_INPUT)) /* also false for NaN */
            return PAT_ERR_INPUT;
    }
    n = m->n;
    /* Own threads only over single-threaded BLAS; otherwise OpenBLAS
     * parallelises each product and this pass stays on the caller's thread. */
    threads = openblas_get_num_threads() > 1 ? 1 : ws->n_threads;
    if ((size_t)threads > n / 16)
        threads = 1;

    for (int t = 0; t < threads; t++) {
        sl[t] = (struct slice){.m = m,
                               .ws = ws,
                               .input = input,
                               .att = attention_out,
                               .bar = threads > 1 ? &bar : NULL,
                               .r0 = n * (size_t)t / (size_t)threads,
                               .r1 = n * (size_t)(t + 1) / (size_t)threads,
                               .tid = t,
                               .gate_mu = &gate_mu,
                               .gate_cv = &gate_cv,
                               .gate = &gate};
    }
    if (threads > 1) {
        if (pthread_barrier_init(&bar, NULL, (unsigned)threads) != 0) {
            threads = 1;
            sl[0].r1 = n;
            sl[0].bar = NULL;
        }
    }
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&th[t], NULL, slice_thread, &sl[t]) != 0)
            break;
        started++;
    }
    if (threads > 1 && started != threads - 1) {
        /* Could not start them all: release those that exist, run alone. */
        open_gate(&gate_mu, &gate_cv, &gate, -1);
        for (int t = 1; t <= started; t++)
            pthread_join(th[t], NULL);
        pthread_barrier_destroy(&bar);
        threads = 1;
        sl[0].r1 = n;
        sl[0].bar = NULL;
        started = 0;
    }
    if (started)
        open_gate(&gate_mu, &gate_cv, &gate, 1);
    run_slice(&sl[0]);
    for (int t = 1; t <= started; t++)
        pthread_join(th[t], NULL);
    if (threads > 1)
        pthread_barrier_destroy(&bar);

    /* Extreme (but bounded) inputs could still overflow a product; never
     * hand out non-finite embeddings. */
    for (size_t i = 0; i < n * PAT_EMBED_DIM; i++) {
        if (!isfinite(ws->x[i]))
            return PAT_ERR_INPUT;
    }
    if (tokens)
        memcpy(tokens, ws->x, n * PAT_EMBED_DIM * sizeof(float));
    if (pooled) {
        for (size_t f = 0; f < PAT_EMBED_DIM; f++) {
            double s = 0.0;
            for (size_t p = 0; p < n; p++)
                s += ws->x[p * PAT_EMBED_DIM + f];
            pooled[f] = (float)(s / (double)n);
        }
    }
    return PAT_OK;
}
