/*
 * pat_load.c — reading PAT encoder weights from Keras 2 HDF5 files.
 *
 * Keras 2 "legacy" HDF5 weight files (model.save_weights / model.save with
 * h5 format) hold one group per layer, and in it one group per sub-layer
 * with datasets named "<weight>:0" (e.g. "dense/dense/kernel:0"); a full
 * saved model puts the same tree under "model_weights/". Dense kernels are
 * [in, out]; MultiHeadAttention's query/key/value kernels are
 * [in, heads, key_dim] with biases [heads, key_dim] and its output kernel is
 * [heads, key_dim, out] (Keras MultiHeadAttention, einsum-dense layers).
 * Conv1D kernels are [width, in_channels, filters]. See docs/pat.md.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/evp.h>

#include "ml/pat_internal.h"

#define PATH_MAX_LEN 256
#define PAT_HUGE_BYTES ((size_t)2 << 20)

float *pat_floats_new(size_t n)
{
    size_t bytes;
    float *p;

    if (n == 0)
        n = 1;
    if (n > SIZE_MAX / sizeof(float) - 64)
        return NULL;
    bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (bytes >= PAT_HUGE_BYTES) {
        /* Workspace buffers and large weights: 2 MiB-aligned and marked for
         * transparent huge pages, so that first touch costs one fault per
         * 2 MiB instead of per 4 KiB (a PAT-L workspace is tens of MiB;
         * its page faults were most of `pat embed`'s set-up, issue 22). */
        bytes = (bytes + PAT_HUGE_BYTES - 1) & ~(size_t)(PAT_HUGE_BYTES - 1);
        p = aligned_alloc(PAT_HUGE_BYTES, bytes);
        if (p)
            (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: failure is harmless */
    } else {
        p = aligned_alloc(64, bytes);
    }
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* ---- SHA-256 (OpenSSL 3 EVP) ------------------------------------------ */

int pat_file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = NULL;
    FILE *f = NULL;
    size_t got;
    int rc = PAT_ERR_IO;

    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        snprintf(err, errlen, "%s: SHA-256 unavailable", path);
        rc = PAT_ERR_NOMEM;
        goto done;
    }
    while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
        if (EVP_DigestUpdate(ctx, buf, got) != 1) {
            snprintf(err, errlen, "%s: SHA-256 failed", path);
            goto done;
        }
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto done;
    }
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 32) {
        snprintf(err, errlen, "%s: SHA-256 failed", path);
        goto done;
    }
    for (unsigned int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    rc = PAT_OK;
done:
    EVP_MD_CTX_free(ctx);
    if (f)
        fclose(f);
    return rc;
}

int pat_sha256_check(const char *computed, const char *expected, const char *path, char *err, size_t errlen)
{
    size_t i;

    for (i = 0; expected[i]; i++) {
        if (i >= 64 || !isxdigit((unsigned char)expected[i]))
            break;
    }
    if (i != 64 || expected[i] != '\0') {
        snprintf(err, errlen, "expected SHA-256 must be 64 hex digits");
        return PAT_ERR_ARG;
    }
    for (i = 0; i < 64; i++) {
        if (tolower((unsigned char)expected[i]) != computed[i]) {
            snprintf(err, errlen, "%s: SHA-256 mismatch: file has %s, expected %.64s", path, computed, expected);
            return PAT_ERR_CHECKSUM;
        }
    }
    return PAT_OK;
}

/* ---- HDF5 helpers ------------------------------------------------------ */

int pat_hdf_open(struct pat_hdf *h, const char *path, char *err, size_t errlen)
{
    FILE *f;

    h->file = H5I_INVALID_HID;
    /* libhdf5 prints its error stack to stderr by default; a library that
     * never logs must not, so the handler is off while we read. */
    H5Eget_auto2(H5E_DEFAULT, &h->old_fn, &h->old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);

    f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        H5Eset_auto2(H5E_DEFAULT, h->old_fn, h->old_data);
        return PAT_ERR_IO;
    }
    fclose(f);
    if (H5Fis_hdf5(path) <= 0) {
        snprintf(err, errlen, "%s: not an HDF5 file", path);
        H5Eset_auto2(H5E_DEFAULT, h->old_fn, h->old_data);
        return PAT_ERR_FORMAT;
    }
    h->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (h->file < 0) {
        snprintf(err, errlen, "%s: cannot open as HDF5 (corrupt or truncated?)", path);
        H5Eset_auto2(H5E_DEFAULT, h->old_fn, h->old_data);
        return PAT_ERR_FORMAT;
    }
    return PAT_OK;
}

void pat_hdf_close(struct pat_hdf *h)
{
    if (h->file >= 0)
        H5Fclose(h->file);
    h->file = H5I_INVALID_HID;
    H5Eset_auto2(H5E_DEFAULT, h->old_fn, h->old_data);
}

int pat_hdf_exists(hid_t file, const char *path)
{
    char buf[PATH_MAX_LEN];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof buf)
        return 0;
    memcpy(buf, path, len + 1);
    /* H5Lexists requires every intermediate group to exist. */
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (i > 0 && H5Lexists(file, buf, H5P_DEFAULT) <= 0)
                return 0;
            buf[i] = c;
        }
    }
    return 1;
}

void pat_hdf_dims_format(int rank, const hsize_t *dims, char *buf, size_t len)
{
    size_t off = 0;
    int n;

    n = snprintf(buf, len, "[");
    off = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < rank && off < len; i++) {
        n = snprintf(buf + off, len - off, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

int pat_hdf_shape(hid_t file, const char *path, int *rank, hsize_t dims[4], char *err, size_t errlen)
{
    hid_t ds = H5I_INVALID_HID, space = H5I_INVALID_HID, type = H5I_INVALID_HID;
    int rc = PAT_ERR_FORMAT, r;

    if (!pat_hdf_exists(file, path)) {
        snprintf(err, errlen, "dataset %s: missing", path);
        return PAT_ERR_FORMAT;
    }
    ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0) {
        snprintf(err, errlen, "dataset %s: not a readable dataset", path);
        goto done;
    }
    type = H5Dget_type(ds);
    if (type < 0 || H5Tget_class(type) != H5T_FLOAT) {
        snprintf(err, errlen, "dataset %s: not floating point", path);
        goto done;
    }
    space = H5Dget_space(ds);
    r = space < 0 ? -1 : H5Sget_simple_extent_ndims(space);
    if (r < 0 || r > 4) {
        snprintf(err, errlen, "dataset %s: unsupported rank %d", path, r);
        goto done;
    }
    if (r > 0 && H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        snprintf(err, errlen, "dataset %s: unreadable shape", path);
        goto done;
    }
    *rank = r;
    rc = PAT_OK;
done:
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (ds >= 0)
        H5Dclose(ds);
    return rc;
}

int pat_hdf_read(hid_t file, const char *path, int rank, const hsize_t *dims, float *dst, char *err, size_t errlen)
{
    hsize_t found[4] = {0, 0, 0, 0};
    char want_s[64], found_s[64];
    int found_rank = 0, rc;
    size_t count = 1;
    hid_t ds;

    rc = pat_hdf_shape(file, path, &found_rank, found, err, errlen);
    if (rc)
        return rc;
    int same = found_rank == rank;
    for (int i = 0; same && i < rank; i++)
        same = found[i] == dims[i];
    if (!same) {
        pat_hdf_dims_format(rank, dims, want_s, sizeof want_s);
        pat_hdf_dims_format(found_rank, found, found_s, sizeof found_s);
        snprintf(err, errlen, "dataset %s: shape %s, expected %s", path, found_s, want_s);
        return PAT_ERR_SHAPE;
    }
    for (int i = 0; i < rank; i++)
        count *= (size_t)dims[i];
    ds = H5Dopen2(file, path, H5P_DEFAULT);
    if (ds < 0 || H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0) {
        snprintf(err, errlen, "dataset %s: cannot read data (corrupt or truncated file?)", path);
        if (ds >= 0)
            H5Dclose(ds);
        return PAT_ERR_FORMAT;
    }
    H5Dclose(ds);
    for (size_t i = 0; i < count; i++) {
        if (!isfinite(dst[i])) {
            snprintf(err, errlen, "dataset %s: value %zu is not finite", path, i);
            return PAT_ERR_FORMAT;
        }
    }
    return PAT_OK;
}

/* ---- the model --------------------------------------------------------- */

/* Read base + rel (formatted) with the given shape into a new buffer. */
static int read_new(hid_t file, const char *base, const char *rel, int rank, const hsize_t *dims, float **out,
                    size_t *n_params, char *err, size_t errlen)
{
    char path[PATH_MAX_LEN];
    size_t count = 1;
    float *buf;
    int rc;

    if ((size_t)snprintf(path, sizeof path, "%s%s", base, rel) >= sizeof path) {
        snprintf(err, errlen, "dataset name too long");
        return PAT_ERR_FORMAT;
    }
    for (int i = 0; i < rank; i++)
        count *= (size_t)dims[i];
    buf = pat_floats_new(count);
    if (!buf) {
        snprintf(err, errlen, "out of memory reading %s", path);
        return PAT_ERR_NOMEM;
    }
    rc = pat_hdf_read(file, path, rank, dims, buf, err, errlen);
    if (rc) {
        free(buf);
        return rc;
    }
    *n_params += count;
    *out = buf;
    return PAT_OK;
}

static void layer_free(struct pat_layer *ly)
{
    free(ly->wqkv);
    free(ly->bqkv);
    free(ly->wo);
    free(ly->bo);
    free(ly->ln1_g);
    free(ly->ln1_b);
    free(ly->w1);
    free(ly->b1);
    free(ly->w2);
    free(ly->b2);
    free(ly->ln2_g);
    free(ly->ln2_b);
}

void pat_model_free(struct pat_model *m)
{
    if (!m)
        return;
    free(m->patch_w);
    free(m->patch_b);
    free(m->pe);
    for (size_t i = 0; i < PAT_MAX_LAYERS; i++)
        layer_free(&m->layers[i]);
    free(m);
}

/*
 * Load block i (1-based) into ly. The three [96,H,96] projection kernels
 * are read separately and interleaved row by row into the fused kernel.
 */
static int load_layer(hid_t file, const char *base, size_t i, size_t heads, struct pat_layer *ly, size_t *n_params,
                      char *err, size_t errlen)
{
    static const char *const qkv[3] = {"query", "key", "value"};
    const hsize_t D = PAT_EMBED_DIM, F = PAT_FF_DIM, H = heads;
    const size_t hd = heads * PAT_EMBED_DIM;
    char pre[128], rel[PATH_MAX_LEN];
    float *tmp = NULL;
    int rc = PAT_OK;

    snprintf(pre, sizeof pre, "encoder_layer_%zu_transformer/encoder_layer_%zu_", i, i);
    ly->wqkv = pat_floats_new(PAT_EMBED_DIM * 3 * hd);
    ly->bqkv = pat_floats_new(3 * hd);
    if (!ly->wqkv || !ly->bqkv) {
        rc = PAT_ERR_NOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    for (int p = 0; p < 3; p++) {
        const hsize_t kd[3] = {D, H, D}, bd[2] = {H, D};
        snprintf(rel, sizeof rel, "%sattention/%s/kernel:0", pre, qkv[p]);
        rc = read_new(file, base, rel, 3, kd, &tmp, n_params, err, errlen);
        if (rc)
            goto done;
        for (size_t r = 0; r < PAT_EMBED_DIM; r++)
            memcpy(ly->wqkv + r * 3 * hd + (size_t)p * hd, tmp + r * hd, hd * sizeof(float));
        free(tmp);
        tmp = NULL;
        snprintf(rel, sizeof rel, "%sattention/%s/bias:0", pre, qkv[p]);
        rc = read_new(file, base, rel, 2, bd, &tmp, n_params, err, errlen);
        if (rc)
            goto done;
        memcpy(ly->bqkv + (size_t)p * hd, tmp, hd * sizeof(float));
        free(tmp);
        tmp = NULL;
    }
    {
        const hsize_t od[3] = {H, D, D}, vd[1] = {D}, f1[2] = {D, F}, fb[1] = {F}, f2[2] = {F, D};
        struct {
            const char *name;
            int rank;
            const hsize_t *dims;
            float **dst;
        } parts[] = {
            {"attention/attention_output/kernel:0", 3, od, &ly->wo},
            {"attention/attention_output/bias:0", 1, vd, &ly->bo},
            {"norm1/gamma:0", 1, vd, &ly->ln1_g},
            {"norm1/beta:0", 1, vd, &ly->ln1_b},
            {"ff1/kernel:0", 2, f1, &ly->w1},
            {"ff1/bias:0", 1, fb, &ly->b1},
            {"ff2/kernel:0", 2, f2, &ly->w2},
            {"ff2/bias:0", 1, vd, &ly->b2},
            {"norm2/gamma:0", 1, vd, &ly->ln2_g},
            {"norm2/beta:0", 1, vd, &ly->ln2_b},
        };
        for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
            /* Sub-layers are named encoder_layer_{i}_attention,
             * encoder_layer_{i}_norm1, encoder_layer_{i}_ff1, ... */
            snprintf(rel, sizeof rel, "%s%s", pre, parts[k].name);
            rc = read_new(file, base, rel, parts[k].rank, parts[k].dims, parts[k].dst, n_params, err, errlen);
            if (rc)
                goto done;
        }
    }
done:
    free(tmp);
    return rc;
}

struct conv_scan {
    char kernel[PATH_MAX_LEN]; /* first match, relative to the weights root */
    int n;
};

/* H5Lvisit callback: count ".../kernel:0" links under top-level conv1d*
 * groups. */
static herr_t conv_scan_cb(hid_t group, const char *name, const H5L_info_t *info, void *data)
{
    struct conv_scan *cs = data;
    const char *slash = strrchr(name, '/');

    (void)group;
    (void)info;
    if (!slash || strcmp(slash + 1, "kernel:0") != 0 || strncmp(name, "conv1d", 6) != 0)
        return 0;
    if (cs->n++ == 0)
        snprintf(cs->kernel, sizeof cs->kernel, "%s", name);
    return 0;
}

static void variant_name(struct pat_model *m)
{
    const char *size = "custom";

    if (m->patch == 18 && m->n_layers == 1 && m->n_heads == 6)
        size = "S";
    else if (m->patch == 18 && m->n_layers == 2 && m->n_heads == 12)
        size = "M";
    else if (m->patch == 9 && m->n_layers == 4 && m->n_heads == 12)
        size = "L";
    snprintf(m->variant, sizeof m->variant, "PAT-%s%s", m->conv ? "Conv-" : "", size);
}

int pat_model_load(const char *path, const struct pat_load_options *opt, struct pat_model **out, char *err,
                   size_t errlen)
{
    struct pat_hdf h = {.file = H5I_INVALID_HID};
    struct pat_model *m = NULL;
    const char *base = "";
    char rel[PATH_MAX_LEN], shape_s[64];
    hsize_t dims[4];
    int rank = 0, rc, opened = 0;
    size_t heads = 0;

    if (!path || !out) {
        snprintf(err, errlen, "pat_model_load: missing argument");
        return PAT_ERR_ARG;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return PAT_ERR_NOMEM;
    }
    rc = pat_file_sha256(path, m->sha256, err, errlen);
    if (rc)
        goto fail;
    if (opt && opt->expected_sha256) {
        rc = pat_sha256_check(m->sha256, opt->expected_sha256, path, err, errlen);
        if (rc)
            goto fail;
    }
    rc = pat_hdf_open(&h, path, err, errlen);
    if (rc)
        goto fail;
    opened = 1;
    if (pat_hdf_exists(h.file, "model_weights"))
        base = "model_weights/";

    /* Patch embedding: Dense [S,96] or Conv1D [3,1,96]. */
    snprintf(rel, sizeof rel, "%sdense/dense/kernel:0", base);
    if (pat_hdf_exists(h.file, rel)) {
        rc = pat_hdf_shape(h.file, rel, &rank, dims, err, errlen);
        if (rc)
            goto fail;
        if (rank != 2 || dims[1] != PAT_EMBED_DIM || dims[0] == 0 || PAT_MINUTES % dims[0] != 0 ||
            PAT_MINUTES / dims[0] > PAT_MAX_TOKENS) {
            pat_hdf_dims_format(rank, dims, shape_s, sizeof shape_s);
            snprintf(err, errlen, "dataset %s: shape %s, expected [S,96] with S dividing 10080 and S >= 4", rel,
                     shape_s);
            rc = PAT_ERR_SHAPE;
            goto fail;
        }
        m->patch = (size_t)dims[0];
        rc = read_new(h.file, base, "dense/dense/kernel:0", 2, dims, &m->patch_w, &m->n_params, err, errlen);
        if (rc)
            goto fail;
        const hsize_t bd[1] = {PAT_EMBED_DIM};
        rc = read_new(h.file, base, "dense/dense/bias:0", 1, bd, &m->patch_b, &m->n_params, err, errlen);
        if (rc)
            goto fail;
    } else {
        /* PAT-Conv: the authors wrap Conv1D in TimeDistributed, named
         * "conv1d_patch_embedding", so the kernel sits one group deeper than
         * a plain Conv1D's ("conv1d/conv1d/kernel:0"). Accept any top-level
         * group named conv1d* holding exactly one kernel:0. */
        struct conv_scan cs;
        hid_t g = H5I_INVALID_HID;
        herr_t vr = -1;

        memset(&cs, 0, sizeof cs);
        g = *base ? H5Gopen2(h.file, "model_weights", H5P_DEFAULT) : h.file;
        if (g >= 0)
            vr = H5Lvisit(g, H5_INDEX_NAME, H5_ITER_INC, conv_scan_cb, &cs);
        if (*base && g >= 0)
            H5Gclose(g);
        if (vr < 0) {
            snprintf(err, errlen, "%s: cannot walk the file (corrupt?)", path);
            rc = PAT_ERR_FORMAT;
            goto fail;
        }
        if (cs.n == 0) {
            snprintf(err, errlen,
                     "%s: no patch embedding (neither %sdense/dense/kernel:0 nor a conv1d* group "
                     "with a kernel:0): not a PAT encoder weights file",
                     path, base);
            rc = PAT_ERR_FORMAT;
            goto fail;
        }
        if (cs.n > 1) {
            snprintf(err, errlen, "%s: %d conv1d* kernels (%s, ...): ambiguous patch embedding", path, cs.n, cs.kernel);
            rc = PAT_ERR_FORMAT;
            goto fail;
        }
        const hsize_t kd[3] = {3, 1, PAT_EMBED_DIM}, bd[1] = {PAT_EMBED_DIM};
        size_t klen = strlen(cs.kernel) - strlen("kernel:0");
        m->conv = 1;
        rc = read_new(h.file, base, cs.kernel, 3, kd, &m->patch_w, &m->n_params, err, errlen);
        if (rc)
            goto fail;
        snprintf(rel, sizeof rel, "%.*sbias:0", (int)klen, cs.kernel);
        rc = read_new(h.file, base, rel, 1, bd, &m->patch_b, &m->n_params, err, errlen);
        if (rc)
            goto fail;
    }

    /* Blocks 1..L, consecutive; H from the first query kernel [96,H,96]. */
    for (size_t i = 1;; i++) {
        snprintf(rel, sizeof rel, "%sencoder_layer_%zu_transformer", base, i);
        if (!pat_hdf_exists(h.file, rel))
            break;
        if (i > PAT_MAX_LAYERS) {
            snprintf(err, errlen, "%s: more than %d encoder layers", path, PAT_MAX_LAYERS);
            rc = PAT_ERR_SHAPE;
            goto fail;
        }
        snprintf(rel, sizeof rel, "%sencoder_layer_%zu_transformer/encoder_layer_%zu_attention/query/kernel:0", base, i,
                 i);
        rc = pat_hdf_shape(h.file, rel, &rank, dims, err, errlen);
        if (rc)
            goto fail;
        if (rank != 3 || dims[0] != PAT_EMBED_DIM || dims[2] != PAT_EMBED_DIM || dims[1] == 0 ||
            dims[1] > PAT_MAX_HEADS || (heads && dims[1] != heads)) {
            pat_hdf_dims_format(rank, dims, shape_s, sizeof shape_s);
            snprintf(err, errlen, "dataset %s: shape %s, expected [96,H,96] with 1 <= H <= %d%s", rel, shape_s,
                     PAT_MAX_HEADS, heads ? " and H equal in every block" : "");
            rc = PAT_ERR_SHAPE;
            goto fail;
        }
        heads = (size_t)dims[1];
        rc = load_layer(h.file, base, i, heads, &m->layers[i - 1], &m->n_params, err, errlen);
        if (rc)
            goto fail;
        m->n_layers = i;
    }
    if (m->n_layers == 0) {
        snprintf(err, errlen, "%s: no encoder layer (%sencoder_layer_1_transformer missing)", path, base);
        rc = PAT_ERR_FORMAT;
        goto fail;
    }
    m->n_heads = heads;
    if (m->conv) {
        size_t s = opt && opt->conv_patch_size ? opt->conv_patch_size : (m->n_layers == 4 ? 9 : 18);
        if (s < 4 || PAT_MINUTES % s != 0) {
            snprintf(err, errlen, "conv patch size %zu must divide 10080 and be >= 4", s);
            rc = PAT_ERR_ARG;
            goto fail;
        }
        m->patch = s;
    }
    m->n = PAT_MINUTES / m->patch;
    m->pe = pat_floats_new(m->n * PAT_EMBED_DIM);
    if (!m->pe) {
        snprintf(err, errlen, "out of memory");
        rc = PAT_ERR_NOMEM;
        goto fail;
    }
    pat_pe_fill(m->pe, m->n);
    variant_name(m);
    pat_hdf_close(&h);
    *out = m;
    return PAT_OK;
fail:
    if (opened)
        pat_hdf_close(&h);
    pat_model_free(m);
    return rc;
}
