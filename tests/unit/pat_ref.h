/*
 * pat_ref.h — test support for the PAT encoder tests (pat_test.c,
 * pat_large_test.c): seeded Keras-layout weights, an HDF5 writer for them,
 * and an independent double-precision reference forward pass.
 *
 * The reference is written from the model description (PAT paper and the
 * Keras layer semantics), not from src/ml/pat.c: it keeps the Keras weight
 * layouts as they are in the file ([96,H,96] projections, [H,96,96] output
 * kernel), computes every head's full attention row in double, normalises
 * probabilities before multiplying by V, and uses no BLAS.
 */
#ifndef CLARITY_TEST_PAT_REF_H
#define CLARITY_TEST_PAT_REF_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "ml/pat.h"

#define REF_D 96
#define REF_F 256

/* The reference is not what is under test; keep its hot loops fast in the
 * debug (-O0) and sanitizer builds so that the suite stays quick. */
#if defined(__SANITIZE_ADDRESS__)
#define REF_HOT __attribute__((no_sanitize_address, no_sanitize_undefined, optimize("O2")))
#else
#define REF_HOT __attribute__((optimize("O2")))
#endif

struct ref_layer {
    float *q_k, *q_b, *k_k, *k_b, *v_k, *v_b; /* [96,H,96], [H,96] */
    float *o_k, *o_b;                         /* [H,96,96], [96] */
    float *n1_g, *n1_b, *n2_g, *n2_b;         /* [96] */
    float *f1_k, *f1_b, *f2_k, *f2_b;         /* [96,256] [256] [256,96] [96] */
};

struct ref_model {
    int conv; /* 0 Dense; 1 Conv1D "conv1d"; 2 TimeDistributed "conv1d_patch_embedding" */
    size_t s, n, l, h;
    float *p_k, *p_b; /* Dense [S,96] or Conv [3,1,96]; [96] */
    struct ref_layer ly[PAT_MAX_LAYERS];
};

/* splitmix64: a small, well-mixed seeded generator (Steele et al. 2014). */
static inline uint64_t ref_rand_u64(uint64_t *st)
{
    uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* uniform in [-a, a) */
static inline float ref_rand_uniform(uint64_t *st, float a)
{
    double u = (double)(ref_rand_u64(st) >> 11) * (1.0 / 9007199254740992.0);
    return (float)((2.0 * u - 1.0) * a);
}

static inline float *ref_fill(uint64_t *st, size_t n, float a, float offset)
{
    float *p = malloc(n * sizeof *p);
    if (!p)
        abort();
    for (size_t i = 0; i < n; i++)
        p[i] = offset + ref_rand_uniform(st, a);
    return p;
}

/* Glorot-uniform-like scale for a kernel of fan_in x fan_out. */
static inline float ref_glorot(size_t fan_in, size_t fan_out) { return (float)sqrt(6.0 / (double)(fan_in + fan_out)); }

static inline void ref_model_init(struct ref_model *m, int conv, size_t s, size_t l, size_t h, uint64_t seed)
{
    uint64_t st = seed;
    const size_t hd = h * REF_D;

    memset(m, 0, sizeof *m);
    m->conv = conv;
    m->s = s;
    m->n = PAT_MINUTES / s;
    m->l = l;
    m->h = h;
    if (conv)
        m->p_k = ref_fill(&st, 3 * REF_D, ref_glorot(3, REF_D), 0.0f);
    else
        m->p_k = ref_fill(&st, s * REF_D, ref_glorot(s, REF_D), 0.0f);
    m->p_b = ref_fill(&st, REF_D, 0.1f, 0.0f);
    for (size_t i = 0; i < l; i++) {
        struct ref_layer *y = &m->ly[i];
        y->q_k = ref_fill(&st, REF_D * hd, ref_glorot(REF_D, hd), 0.0f);
        y->q_b = ref_fill(&st, hd, 0.1f, 0.0f);
        y->k_k = ref_fill(&st, REF_D * hd, ref_glorot(REF_D, hd), 0.0f);
        y->k_b = ref_fill(&st, hd, 0.1f, 0.0f);
        y->v_k = ref_fill(&st, REF_D * hd, ref_glorot(REF_D, hd), 0.0f);
        y->v_b = ref_fill(&st, hd, 0.1f, 0.0f);
        y->o_k = ref_fill(&st, hd * REF_D, ref_glorot(hd, REF_D), 0.0f);
        y->o_b = ref_fill(&st, REF_D, 0.1f, 0.0f);
        y->n1_g = ref_fill(&st, REF_D, 0.2f, 1.0f);
        y->n1_b = ref_fill(&st, REF_D, 0.1f, 0.0f);
        y->f1_k = ref_fill(&st, REF_D * REF_F, ref_glorot(REF_D, REF_F), 0.0f);
        y->f1_b = ref_fill(&st, REF_F, 0.1f, 0.0f);
        y->f2_k = ref_fill(&st, REF_F * REF_D, ref_glorot(REF_F, REF_D), 0.0f);
        y->f2_b = ref_fill(&st, REF_D, 0.1f, 0.0f);
        y->n2_g = ref_fill(&st, REF_D, 0.2f, 1.0f);
        y->n2_b = ref_fill(&st, REF_D, 0.1f, 0.0f);
    }
}

static inline void ref_model_free(struct ref_model *m)
{
    free(m->p_k);
    free(m->p_b);
    for (size_t i = 0; i < m->l; i++) {
        float **f = (float **)&m->ly[i];
        for (size_t k = 0; k < sizeof(struct ref_layer) / sizeof(float *); k++)
            free(f[k]);
    }
}

/* ---- HDF5 writer -------------------------------------------------------- */

/* Write one float32 dataset at path (intermediate groups created). */
static inline int ref_h5_write(hid_t file, const char *path, int rank, const hsize_t *dims, const float *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), space, ds;
    int rc = -1;

    H5Pset_create_intermediate_group(lcpl, 1);
    space = H5Screate_simple(rank, dims, NULL);
    ds = H5Dcreate2(file, path, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0)
        rc = 0;
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(space);
    H5Pclose(lcpl);
    return rc;
}

/* Hooks to make a file wrong on purpose. skip: a path suffix not written.
 * reshape: a path suffix written with shape (rank, dims) instead (data is
 * then zeros). */
struct ref_mutation {
    const char *skip;
    const char *reshape;
    int rank;
    hsize_t dims[4];
    size_t layer_heads_override; /* nonzero: block 2 written with this H */
};

static inline int ref_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static inline int ref_put(hid_t f, const char *prefix, const char *rel, int rank, const hsize_t *dims,
                          const float *data, const struct ref_mutation *mu)
{
    char path[512];
    snprintf(path, sizeof path, "%s%s", prefix, rel);
    if (mu && mu->skip && ref_ends_with(path, mu->skip))
        return 0;
    if (mu && mu->reshape && ref_ends_with(path, mu->reshape)) {
        size_t count = 1;
        for (int i = 0; i < mu->rank; i++)
            count *= (size_t)mu->dims[i];
        float *z = calloc(count ? count : 1, sizeof *z);
        int rc = ref_h5_write(f, path, mu->rank, mu->dims, z);
        free(z);
        return rc;
    }
    return ref_h5_write(f, path, rank, dims, data);
}

/*
 * Write m as a Keras 2 HDF5 weights file at path, under prefix ("" or
 * "model_weights/"). Returns 0 or -1.
 */
static inline int ref_model_write(const struct ref_model *m, const char *path, const char *prefix,
                                  const struct ref_mutation *mu)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t D = REF_D, F = REF_F;
    int rc = 0;

    if (f < 0)
        return -1;
    if (m->conv) {
        const hsize_t kd[3] = {3, 1, D}, bd[1] = {D};
        /* conv 1: a plain Conv1D layer; conv 2: the authors'
         * TimeDistributed(Conv1D) named conv1d_patch_embedding. */
        const char *g = m->conv == 2 ? "conv1d_patch_embedding/conv1d_patch_embedding/conv1d" : "conv1d/conv1d";
        char kp[128], bp[128];
        snprintf(kp, sizeof kp, "%s/kernel:0", g);
        snprintf(bp, sizeof bp, "%s/bias:0", g);
        rc |= ref_put(f, prefix, kp, 3, kd, m->p_k, mu);
        rc |= ref_put(f, prefix, bp, 1, bd, m->p_b, mu);
    } else {
        const hsize_t kd[2] = {m->s, D}, bd[1] = {D};
        rc |= ref_put(f, prefix, "dense/dense/kernel:0", 2, kd, m->p_k, mu);
        rc |= ref_put(f, prefix, "dense/dense/bias:0", 1, bd, m->p_b, mu);
    }
    for (size_t i = 0; i < m->l; i++) {
        const struct ref_layer *y = &m->ly[i];
        hsize_t H = (mu && mu->layer_heads_override && i == 1) ? mu->layer_heads_override : m->h;
        const hsize_t pk[3] = {D, H, D}, pb[2] = {H, D}, ok[3] = {H, D, D}, vd[1] = {D}, f1[2] = {D, F}, fb[1] = {F},
                      f2[2] = {F, D};
        const char *names[3] = {"query", "key", "value"};
        const float *ks[3] = {y->q_k, y->k_k, y->v_k}, *bs[3] = {y->q_b, y->k_b, y->v_b};
        float *big = NULL;
        char rel[256], pre[128];

        if (H != m->h) { /* heads override: fresh data of the other shape */
            big = calloc((size_t)(D * H * D), sizeof *big);
            for (int p = 0; p < 3; p++) {
                ks[p] = big;
                bs[p] = big;
            }
        }
        snprintf(pre, sizeof pre, "encoder_layer_%zu_transformer/encoder_layer_%zu_", i + 1, i + 1);
        for (int p = 0; p < 3; p++) {
            snprintf(rel, sizeof rel, "%sattention/%s/kernel:0", pre, names[p]);
            rc |= ref_put(f, prefix, rel, 3, pk, ks[p], mu);
            snprintf(rel, sizeof rel, "%sattention/%s/bias:0", pre, names[p]);
            rc |= ref_put(f, prefix, rel, 2, pb, bs[p], mu);
        }
        const float *okd = big ? big : y->o_k;
        snprintf(rel, sizeof rel, "%sattention/attention_output/kernel:0", pre);
        rc |= ref_put(f, prefix, rel, 3, ok, okd, mu);
        snprintf(rel, sizeof rel, "%sattention/attention_output/bias:0", pre);
        rc |= ref_put(f, prefix, rel, 1, vd, y->o_b, mu);
        struct {
            const char *n;
            int r;
            const hsize_t *d;
            const float *v;
        } rest[] = {
            {"norm1/gamma:0", 1, vd, y->n1_g}, {"norm1/beta:0", 1, vd, y->n1_b}, {"ff1/kernel:0", 2, f1, y->f1_k},
            {"ff1/bias:0", 1, fb, y->f1_b},    {"ff2/kernel:0", 2, f2, y->f2_k}, {"ff2/bias:0", 1, vd, y->f2_b},
            {"norm2/gamma:0", 1, vd, y->n2_g}, {"norm2/beta:0", 1, vd, y->n2_b},
        };
        for (size_t k = 0; k < sizeof rest / sizeof rest[0]; k++) {
            snprintf(rel, sizeof rel, "%s%s", pre, rest[k].n);
            rc |= ref_put(f, prefix, rel, rest[k].r, rest[k].d, rest[k].v, mu);
        }
        free(big);
    }
    H5Fclose(f);
    return rc ? -1 : 0;
}

/* ---- double-precision reference forward pass ---------------------------- */

static inline void ref_layer_norm(double *v, const float *g, const float *b)
{
    double mean = 0, var = 0;
    for (int i = 0; i < REF_D; i++)
        mean += v[i];
    mean /= REF_D;
    for (int i = 0; i < REF_D; i++)
        var += (v[i] - mean) * (v[i] - mean);
    var /= REF_D;
    for (int i = 0; i < REF_D; i++)
        v[i] = (v[i] - mean) / sqrt(var + 1e-6) * g[i] + b[i];
}

/* q/k/v [H][N][96] (head-major for contiguous dot products) from x [N][96]
 * and a Keras kernel [96,H,96] + bias [H,96]. */
REF_HOT static inline void ref_project(const double *x, size_t n, size_t h, const float *k, const float *b, double *out)
{
    for (size_t hh = 0; hh < h; hh++) {
        for (size_t p = 0; p < n; p++) {
            double *o = out + (hh * n + p) * REF_D;
            for (int d = 0; d < REF_D; d++)
                o[d] = b[hh * REF_D + d];
            for (int i = 0; i < REF_D; i++) {
                const double xi = x[p * REF_D + i];
                const float *kr = k + ((size_t)i * h + hh) * REF_D;
                for (int d = 0; d < REF_D; d++)
                    o[d] += xi * kr[d];
            }
        }
    }
}

/* One query row of one head: probabilities (n) and the context (96). */
REF_HOT static inline void ref_attend_row(const double *q, const double *k, const double *v, size_t n, double *prob,
                                          double *ctx)
{
    const double scale = 1.0 / sqrt((double)REF_D);
    double mx = -INFINITY, sum = 0;
    for (size_t j = 0; j < n; j++) {
        double s = 0;
        for (int d = 0; d < REF_D; d++)
            s += q[d] * k[j * REF_D + d];
        prob[j] = s * scale;
        if (prob[j] > mx)
            mx = prob[j];
    }
    for (size_t j = 0; j < n; j++) {
        prob[j] = exp(prob[j] - mx);
        sum += prob[j];
    }
    for (size_t j = 0; j < n; j++)
        prob[j] /= sum;
    for (int d = 0; d < REF_D; d++)
        ctx[d] = 0;
    for (size_t j = 0; j < n; j++)
        for (int d = 0; d < REF_D; d++)
            ctx[d] += prob[j] * v[j * REF_D + d];
}

/*
 * Reference forward pass. tokens: [N,96] doubles out; pooled: [96] out;
 * att: NULL or [L,N,N] head-averaged attention out.
 */
REF_HOT static inline void ref_forward(const struct ref_model *m, const float *in, double *tokens, double *pooled,
                                       double *att)
{
    const size_t n = m->n, h = m->h, s = m->s;
    double *x = calloc(n * REF_D, sizeof *x);
    double *q = malloc(h * n * REF_D * sizeof *q), *k = malloc(h * n * REF_D * sizeof *k);
    double *v = malloc(h * n * REF_D * sizeof *v), *ctx = malloc(h * REF_D * sizeof *ctx);
    double *prob = malloc(n * sizeof *prob), *row = malloc(REF_F * sizeof *row);
    double *a_out = malloc(n * REF_D * sizeof *a_out);
    if (!x || !q || !k || !v || !ctx || !prob || !row || !a_out)
        abort();

    /* Patch embedding. */
    for (size_t p = 0; p < n; p++) {
        const float *pin = in + p * s;
        for (int f = 0; f < REF_D; f++) {
            double acc = 0;
            if (!m->conv) {
                acc = m->p_b[f];
                for (size_t t = 0; t < s; t++)
                    acc += (double)pin[t] * m->p_k[t * REF_D + f];
            } else {
                /* Conv1D(kernel 3, "same"): zero padding of 1 each side,
                 * ReLU, then the patch mean. */
                for (size_t t = 0; t < s; t++) {
                    double c = m->p_b[f];
                    for (int w = 0; w < 3; w++) {
                        long src = (long)t + w - 1;
                        if (src >= 0 && (size_t)src < s)
                            c += (double)pin[src] * m->p_k[w * REF_D + f];
                    }
                    acc += c > 0 ? c : 0;
                }
                acc /= (double)s;
            }
            x[p * REF_D + f] = acc;
        }
    }
    /* Positional embedding: angles formed in float32 as the authors'
     * TensorFlow code does (that rounding is part of the model), sin/cos in
     * double. */
    {
        const float c = -(logf(10000.0f) / 96.0f);
        for (size_t p = 0; p < n; p++)
            for (int i = 0; i < REF_D / 2; i++) {
                float w = expf((float)(2 * i) * c), ang = (float)p * w;
                x[p * REF_D + i] += sin((double)ang);
                x[p * REF_D + REF_D / 2 + i] += cos((double)ang);
            }
    }
    for (size_t l = 0; l < m->l; l++) {
        const struct ref_layer *y = &m->ly[l];
        ref_project(x, n, h, y->q_k, y->q_b, q);
        ref_project(x, n, h, y->k_k, y->k_b, k);
        ref_project(x, n, h, y->v_k, y->v_b, v);
        for (size_t p = 0; p < n; p++) {
            double *o = a_out + p * REF_D;
            if (att)
                memset(att + (l * n + p) * n, 0, n * sizeof *att);
            for (int e = 0; e < REF_D; e++)
                o[e] = y->o_b[e];
            for (size_t hh = 0; hh < h; hh++) {
                ref_attend_row(q + (hh * n + p) * REF_D, k + hh * n * REF_D, v + hh * n * REF_D, n, prob,
                               ctx + hh * REF_D);
                if (att)
                    for (size_t j = 0; j < n; j++)
                        att[(l * n + p) * n + j] += prob[j] / (double)h;
            }
            /* output kernel [H,96,96]: sum over heads and their 96 dims */
            for (size_t hh = 0; hh < h; hh++)
                for (int d = 0; d < REF_D; d++) {
                    const double c = ctx[hh * REF_D + d];
                    const float *kr = y->o_k + (hh * REF_D + d) * REF_D;
                    for (int e = 0; e < REF_D; e++)
                        o[e] += c * kr[e];
                }
        }
        for (size_t p = 0; p < n; p++) {
            double *xr = x + p * REF_D, tmp[REF_D];
            for (int e = 0; e < REF_D; e++)
                xr[e] += a_out[p * REF_D + e];
            ref_layer_norm(xr, y->n1_g, y->n1_b);
            for (int j = 0; j < REF_F; j++) {
                double acc = y->f1_b[j];
                for (int i = 0; i < REF_D; i++)
                    acc += xr[i] * y->f1_k[i * REF_F + j];
                row[j] = acc > 0 ? acc : 0;
            }
            for (int e = 0; e < REF_D; e++) {
                double acc = y->f2_b[e];
                for (int j = 0; j < REF_F; j++)
                    acc += row[j] * y->f2_k[j * REF_D + e];
                tmp[e] = acc;
            }
            for (int e = 0; e < REF_D; e++)
                xr[e] += tmp[e];
            ref_layer_norm(xr, y->n2_g, y->n2_b);
        }
    }
    for (int e = 0; e < REF_D; e++) {
        double acc = 0;
        for (size_t p = 0; p < n; p++)
            acc += x[p * REF_D + e];
        pooled[e] = acc / (double)n;
    }
    memcpy(tokens, x, n * REF_D * sizeof *x);
    free(x);
    free(q);
    free(k);
    free(v);
    free(ctx);
    free(prob);
    free(row);
    free(a_out);
}

/* Test inputs: 0 all zeros, 1 a smooth day/night pattern with noise, 2
 * large-magnitude values (|z| up to 25), 3 sparse spikes. */
static inline void ref_input(int kind, uint64_t seed, float *in)
{
    uint64_t st = seed;
    for (size_t t = 0; t < PAT_MINUTES; t++) {
        double day = sin(2.0 * M_PI * (double)(t % 1440) / 1440.0);
        switch (kind) {
        case 0: in[t] = 0.0f; break;
        case 1: in[t] = (float)(0.8 * day) + ref_rand_uniform(&st, 1.0f); break;
        case 2: in[t] = (float)(15.0 * day) + ref_rand_uniform(&st, 10.0f); break;
        default: in[t] = (ref_rand_u64(&st) % 97 == 0) ? 8.0f : -0.5f; break;
        }
    }
}

/* max |a - b| over n */
static inline double ref_max_abs_diff(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > m || d != d)
            m = d != d ? INFINITY : d;
    }
    return m;
}

/* A scratch file path under $CLARITY_TEST_TMP (or /tmp), created if missing. */
static inline void ref_tmp_path(char *buf, size_t len, const char *name)
{
    const char *dir = getenv("CLARITY_TEST_TMP");
    if (!dir || !*dir)
        dir = "/tmp";
    /* <build>/tmp: one level, so a plain mkdir is enough */
    (void)mkdir(dir, 0700);
    snprintf(buf, len, "%s/%s.%ld", dir, name, (long)getpid());
}

#endif
