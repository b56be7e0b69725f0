/*
 * keyring.c — versioned key-encryption keys over the store's key_ring table,
 * and the raw-upload seal/open/rewrap built on envelope.c. Contract in
 * keyring.h; design and rotation procedure in docs/security.md.
 */
#include "crypto/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <zlib.h>
#include <zstd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "store/block.h"
#include "store/sealed.h"

/* The root wrapping key is a subkey of ENCRYPTION_KEY (libsodium crypto_kdf),
 * so the configured secret itself never encrypts anything directly and other
 * purposes can derive their own subkeys without interaction. */
#define ROOT_KDF_CONTEXT "clarkeyr"
#define ROOT_KDF_ID 1

/* Associated data of a key-ring entry: label NUL version(4, big-endian)
 * algorithm. Binding the version stops a wrapped KEK being copied to
 * another row. */
static const char RING_AD_LABEL[] = "clarity/key-ring/v1";
#define RING_AD_MAX 64

#define MS_PER_DAY 86400000LL
#define DEV_KEY_FILE_MAX 4096

struct keyring {
    struct store *st;           /* borrowed */
    struct envelope_key *root;  /* wraps key-ring entries */
    pthread_mutex_t mu;         /* guards everything below */
    struct envelope_key **keks; /* keks[v - 1]: unwrapped version v, NULL until needed */
    size_t nkeks;
    int active; /* 0 until read */
    int64_t active_checked_ms;
};

static int from_envelope(int rc)
{
    switch (rc) {
    case ENVELOPE_OK: return 0;
    case ENVELOPE_ENOMEM: return KEYRING_ENOMEM;
    case ENVELOPE_EAUTH: return KEYRING_EAUTH;
    case ENVELOPE_EINIT: return KEYRING_ESTATE;
    default: return KEYRING_EINVAL;
    }
}

#define SAY(...)                                                                                                       \
    do {                                                                                                               \
        if (err != NULL && errlen > 0)                                                                                 \
            snprintf(err, errlen, __VA_ARGS__);                                                                        \
    } while (0)

/* ---- the master key ---------------------------------------------------------- */

/* mkdir -p for the directories above path, each 0700. */
static int make_parent_dirs(const char *path)
{
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, strlen(path) + 1);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

/* Read an existing development key file: must be a regular file that only
 * its owner can read. */
static int dev_key_read(const char *path, struct envelope_key **out, char *err, size_t errlen)
{
    char *text = NULL;
    char why[160];
    ssize_t got;
    size_t n = 0;
    struct stat sb;
    int rc = KEYRING_EIO;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        SAY("%s: %s", path, strerror(errno));
        return KEYRING_EIO;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        SAY("%s: not a regular file", path);
        goto done;
    }
    if ((sb.st_mode & 077) != 0) {
        SAY("%s: readable by group or others (mode %03o); run chmod 600 on it", path, (unsigned)(sb.st_mode & 0777));
        goto done;
    }
    text = sodium_malloc(DEV_KEY_FILE_MAX + 1);
    if (text == NULL) {
        rc = KEYRING_ENOMEM;
        SAY("out of memory");
        goto done;
    }
    while (n < DEV_KEY_FILE_MAX && (got = read(fd, text + n, DEV_KEY_FILE_MAX - n)) != 0) {
        if (got < 0) {
            if (errno == EINTR)
                continue;
            SAY("%s: %s", path, strerror(errno));
            goto done;
        }
        n += (size_t)got;
    }
    text[n] = '\0';
    rc = from_envelope(envelope_key_from_base64(text, out, why, sizeof(why)));
    if (rc != 0)
        SAY("%s: %s", path, why);
done:
    if (text != NULL)
        sodium_free(text);
    close(fd);
    return rc;
}

/* Create the development key file: write a temporary file, then link(2) it
 * into place, which fails with EEXIST when another process won the race, so
 * every process ends up with the same, completely written key. */
static int dev_key_create(const char *path, int *created, char *err, size_t errlen)
{
    char tmp[PATH_MAX];
    char b64[ENVELOPE_KEY_B64_LEN + 1];
    struct envelope_key *k = NULL;
    int fd = -1, rc = KEYRING_EIO;
    size_t len;

    *created = 0;
    if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp)) {
        SAY("%s: path too long", path);
        return KEYRING_EIO;
    }
    if (make_parent_dirs(path) != 0) {
        SAY("%s: cannot create its directory: %s", path, strerror(errno));
        return KEYRING_EIO;
    }
    if ((rc = from_envelope(envelope_key_random(&k))) != 0) {
        SAY("out of memory");
        return rc;
    }
    rc = KEYRING_EIO;
    if (envelope_key_to_base64(k, b64, sizeof(b64) - 1) != 0)
        goto done;
    len = strlen(b64);
    b64[len++] = '\n';
    unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        SAY("%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (write(fd, b64, len) != (ssize_t)len || fsync(fd) != 0) {
        SAY("%s: %s", tmp, strerror(errno));
        goto done;
    }
    close(fd);
    fd = -1;
    if (link(tmp, path) == 0)
        *created = 1;
    else if (errno != EEXIST) {
        SAY("%s: %s", path, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    sodium_memzero(b64, sizeof(b64));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    envelope_key_free(k);
    return rc;
}

int keyring_master_load(const struct config *cfg, const char *dev_key_path, struct envelope_key **out, char *err,
                        size_t errlen)
{
    char why[160];
    int rc, created = 0;
    const char *path = dev_key_path != NULL ? dev_key_path : KEYRING_DEV_KEY_PATH;

    if (cfg == NULL || out == NULL) {
        SAY("no configuration");
        return KEYRING_EINVAL;
    }
    if (envelope_lib_init() != 0) {
        SAY("libsodium initialisation failed");
        return KEYRING_ESTATE;
    }
    if (cfg->encryption_key != NULL && cfg->encryption_key[0] != '\0') {
        rc = from_envelope(envelope_key_from_base64(cfg->encryption_key, out, why, sizeof(why)));
        if (rc != 0)
            SAY("ENCRYPTION_KEY: %s", why);
        return rc;
    }
    if (cfg->environment != CONFIG_ENV_DEVELOPMENT) {
        SAY("ENCRYPTION_KEY: required in %s (or ENCRYPTION_KEY_FILE); expected base64 of 32 "
            "random bytes",
            config_env_name(cfg->environment));
        return KEYRING_ENOKEY;
    }
    if (access(path, F_OK) != 0 && (rc = dev_key_create(path, &created, err, errlen)) != 0)
        return rc;
    if ((rc = dev_key_read(path, out, err, errlen)) != 0)
        return rc;
    log_warning(created ? "generated a development encryption key" : "using the development encryption key", LOG_STR,
                "path", path, LOG_STR, "hint",
                "set ENCRYPTION_KEY outside development; losing this file makes stored raw "
                "uploads unreadable",
                LOG_END);
    return 0;
}

/* ---- key-ring entries ---------------------------------------------------------- */

static size_t ring_ad(unsigned char ad[RING_AD_MAX], int version, const char *algorithm)
{
    size_t alen = strlen(algorithm), n = sizeof(RING_AD_LABEL);
    uint32_t v = (uint32_t)version;
    if (n + 4 + alen > RING_AD_MAX)
        return 0;
    memcpy(ad, RING_AD_LABEL, n);
    ad[n++] = (unsigned char)(v >> 24);
    ad[n++] = (unsigned char)(v >> 16);
    ad[n++] = (unsigned char)(v >> 8);
    ad[n++] = (unsigned char)v;
    memcpy(ad + n, algorithm, alen);
    return n + alen;
}

/* Unwrap a key_ring row with the root key. */
static int row_unwrap(const struct keyring *ring, const struct store_key *row, struct envelope_key **out)
{
    unsigned char ad[RING_AD_MAX];
    size_t adlen;
    if (strcmp(row->algorithm, KEYRING_ALGORITHM) != 0)
        return KEYRING_ESTATE;
    adlen = ring_ad(ad, row->version, row->algorithm);
    if (adlen == 0)
        return KEYRING_ESTATE;
    return from_envelope(envelope_key_unwrap(ring->root, row->wrapped_key, row->wrapped_key_len, ad, adlen, out));
}

/* A new random KEK for version, wrapped into *row (wrapped_key heap, caller
 * clears with store_key_clear). *kek receives the key. */
static int row_new(const struct keyring *ring, int version, struct store_key *row, struct envelope_key **kek)
{
    unsigned char ad[RING_AD_MAX];
    size_t adlen = ring_ad(ad, version, KEYRING_ALGORITHM);
    struct envelope_key *k = NULL;
    int rc;
    memset(row, 0, sizeof(*row));
    if ((rc = from_envelope(envelope_key_random(&k))) != 0)
        return rc;
    row->wrapped_key = malloc(ENVELOPE_WRAPPED_BYTES);
    if (row->wrapped_key == NULL) {
        envelope_key_free(k);
        return KEYRING_ENOMEM;
    }
    if ((rc = from_envelope(envelope_key_wrap(ring->root, k, ad, adlen, row->wrapped_key))) != 0) {
        store_key_clear(row);
        envelope_key_free(k);
        return rc;
    }
    row->version = version;
    row->wrapped_key_len = ENVELOPE_WRAPPED_BYTES;
    snprintf(row->algorithm, sizeof(row->algorithm), "%s", KEYRING_ALGORITHM);
    snprintf(row->status, sizeof(row->status), "active");
    row->created_at_ms = time_now_ms();
    *kek = k;
    return 0;
}

/* Put k into the cache as version v (steals k). Returns the cached key,
 * which is k or an equal one another thread cached first. Cached keys are
 * freed only by keyring_close, so the pointer stays valid without the lock. */
static const struct envelope_key *cache_put(struct keyring *ring, int v, struct envelope_key *k)
{
    const struct envelope_key *res = NULL;
    pthread_mutex_lock(&ring->mu);
    if ((size_t)v > ring->nkeks) {
        size_t n = (size_t)v + 4;
        struct envelope_key **grown = realloc(ring->keks, n * sizeof(*grown));
        if (grown == NULL)
            goto done;
        for (size_t i = ring->nkeks; i < n; i++)
            grown[i] = NULL;
        ring->keks = grown;
        ring->nkeks = n;
    }
    if (ring->keks[v - 1] == NULL) {
        ring->keks[v - 1] = k;
        k = NULL;
    }
    res = ring->keks[v - 1];
done:
    pthread_mutex_unlock(&ring->mu);
    envelope_key_free(k);
    return res;
}

static const struct envelope_key *cache_get(struct keyring *ring, int v)
{
    const struct envelope_key *k = NULL;
    pthread_mutex_lock(&ring->mu);
    if (v >= 1 && (size_t)v <= ring->nkeks)
        k = ring->keks[v - 1];
    pthread_mutex_unlock(&ring->mu);
    return k;
}

/* Cache an unwrapped row; returns 0 and the cached key. */
static int cache_row(struct keyring *ring, const struct store_key *row, const struct envelope_key **out)
{
    struct envelope_key *k = NULL;
    int rc = row_unwrap(ring, row, &k);
    if (rc != 0)
        return rc;
    *out = cache_put(ring, row->version, k);
    return *out != NULL ? 0 : KEYRING_ENOMEM;
}

/* The KEK of version v, from the cache or the store (inside tx). A version
 * the ring does not hold is KEYRING_ESTATE: the row points at nothing. */
static int kek_get(struct keyring *ring, struct store_tx *tx, int v, const struct envelope_key **out)
{
    struct store_key row;
    int rc;
    if (v < 1)
        return KEYRING_ESTATE;
    if ((*out = cache_get(ring, v)) != NULL)
        return 0;
    memset(&row, 0, sizeof(row));
    rc = store_key_get(tx, v, &row);
    if (rc == STORE_ENOTFOUND)
        return KEYRING_ESTATE;
    if (rc != 0)
        return rc;
    rc = cache_row(ring, &row, out);
    store_key_clear(&row);
    return rc;
}

/* The active version and its KEK, re-read from the store when the cached
 * answer is older than KEYRING_ACTIVE_REFRESH_MS. */
static int active_get(struct keyring *ring, struct store_tx *tx, int *version, const struct envelope_key **out)
{
    struct store_key row;
    int64_t now = time_now_ms();
    int v, rc;

    pthread_mutex_lock(&ring->mu);
    v = ring->active;
    if (v > 0 && now - ring->active_checked_ms >= KEYRING_ACTIVE_REFRESH_MS)
        v = 0;
    pthread_mutex_unlock(&ring->mu);
    if (v > 0) {
        *version = v;
        return kek_get(ring, tx, v, out);
    }
    memset(&row, 0, sizeof(row));
    rc = store_key_get_active(tx, &row);
    if (rc == STORE_ENOTFOUND)
        return KEYRING_ESTATE;
    if (rc != 0)
        return rc;
    if ((*out = cache_get(ring, row.version)) == NULL)
        rc = cache_row(ring, &row, out);
    if (rc == 0) {
        pthread_mutex_lock(&ring->mu);
        ring->active = row.version;
        ring->active_checked_ms = now;
        pthread_mutex_unlock(&ring->mu);
        *version = row.version;
    }
    store_key_clear(&row);
    return rc;
}

/* Highest version present, probing upward from `from` (the active one: rows
 * above it exist only if a rotation is half-way or retired them by hand). */
static int max_version(struct store_tx *tx, int from, int *max)
{
    struct store_key row;
    int v = from, rc;
    for (;;) {
        memset(&row, 0, sizeof(row));
        rc = store_key_get(tx, v + 1, &row);
        if (rc == STORE_ENOTFOUND)
            break;
        if (rc != 0)
            return rc;
        store_key_clear(&row);
        v++;
    }
    *max = v;
    return 0;
}

/* ---- open / close -------------------------------------------------------------- */

/* Read the active version, creating version 1 in an empty ring. */
static int ring_bootstrap(struct keyring *ring, char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    struct store_key row;
    struct envelope_key *k = NULL;
    const struct envelope_key *kek = NULL;
    int rc;

    memset(&row, 0, sizeof(row));
    for (int attempt = 0; attempt < 3; attempt++) {
        if ((rc = store_tx_begin(ring->st, STORE_TX_WRITE, &tx)) != 0) {
            SAY("key ring: %s", clarity_strerror(rc));
            return rc;
        }
        rc = store_key_get_active(tx, &row);
        if (rc == STORE_ENOTFOUND) {
            /* Empty ring, unless every version was retired by hand. */
            rc = store_key_get(tx, 1, &row);
            if (rc == 0) {
                store_key_clear(&row);
                store_tx_rollback(tx);
                SAY("key ring: no active version (all retired); run `clarity keys rotate`");
                return KEYRING_ESTATE;
            }
            if (rc != STORE_ENOTFOUND)
                goto store_fail;
            if ((rc = row_new(ring, 1, &row, &k)) != 0) {
                store_tx_rollback(tx);
                SAY("key ring: %s", clarity_strerror(rc));
                return rc;
            }
            rc = store_key_insert(tx, &row);
            if (rc == 0)
                rc = store_tx_commit(tx);
            else
                store_tx_rollback(tx);
            tx = NULL;
            store_key_clear(&row);
            if (rc == STORE_ECONFLICT) { /* another instance created it: read theirs */
                envelope_key_free(k);
                k = NULL;
                continue;
            }
            if (rc != 0) {
                envelope_key_free(k);
                SAY("key ring: creating version 1: %s", clarity_strerror(rc));
                return rc;
            }
            log_info("created encryption key ring", LOG_INT, "version", 1LL, LOG_END);
            if (cache_put(ring, 1, k) == NULL)
                return KEYRING_ENOMEM;
            pthread_mutex_lock(&ring->mu);
            ring->active = 1;
            ring->active_checked_ms = time_now_ms();
            pthread_mutex_unlock(&ring->mu);
            return 0;
        }
        if (rc != 0)
            goto store_fail;
        store_tx_rollback(tx);
        tx = NULL;
        rc = cache_row(ring, &row, &kek);
        if (rc == KEYRING_EAUTH)
            SAY("ENCRYPTION_KEY does not open key-ring version %d: it is not the key this "
                "database was encrypted with (or the key ring was altered)",
                row.version);
        else if (rc == KEYRING_ESTATE)
            SAY("key ring version %d: unknown algorithm '%s'", row.version, row.algorithm);
        else if (rc != 0)
            SAY("key ring: %s", clarity_strerror(rc));
        if (rc == 0) {
            pthread_mutex_lock(&ring->mu);
            ring->active = row.version;
            ring->active_checked_ms = time_now_ms();
            pthread_mutex_unlock(&ring->mu);
        }
        store_key_clear(&row);
        return rc;
    }
    SAY("key ring: could not create or read version 1 (conflicts)");
    return STORE_ECONFLICT;
store_fail:
    store_tx_rollback(tx);
    SAY("key ring: %s", clarity_strerror(rc));
    return rc;
}

int keyring_open(struct store *st, const struct envelope_key *master, struct keyring **out, char *err, size_t errlen)
{
    struct keyring *ring = NULL;
    int rc;
    if (st == NULL || master == NULL || out == NULL) {
        SAY("keyring_open: missing argument");
        return KEYRING_EINVAL;
    }
    if (envelope_lib_init() != 0) {
        SAY("libsodium initialisation failed");
        return KEYRING_ESTATE;
    }
    ring = calloc(1, sizeof(*ring));
    if (ring == NULL) {
        SAY("out of memory");
        return KEYRING_ENOMEM;
    }
    ring->st = st;
    if (pthread_mutex_init(&ring->mu, NULL) != 0) {
        free(ring);
        SAY("out of memory");
        return KEYRING_ENOMEM;
    }
    if ((rc = from_envelope(envelope_key_derive(master, ROOT_KDF_CONTEXT, ROOT_KDF_ID, &ring->root))) != 0) {
        SAY("deriving the root key: %s", clarity_strerror(rc));
        goto fail;
    }
    if ((rc = ring_bootstrap(ring, err, errlen)) != 0)
        goto fail;
    *out = ring;
    return 0;
fail:
    keyring_close(ring);
    return rc;
}

void keyring_close(struct keyring *ring)
{
    if (ring == NULL)
        return;
    for (size_t i = 0; i < ring->nkeks; i++)
        envelope_key_free(ring->keks[i]);
    free(ring->keks);
    envelope_key_free(ring->root);
    pthread_mutex_destroy(&ring->mu);
    free(ring);
}

/* ---- raw uploads ------------------------------------------------------------------ */

static int id_ok(const char *s) { return s != NULL && s[0] != '\0' && strlen(s) < STORE_ID_LEN; }

/* ---- raw bodies: compressed inside the seal (issue #19) -------------------------
 *
 * A body is sealed as "\0CZ" + method + data: method '2' a zstd frame
 * (RFC 8878, level 1, content size in the frame header), '0' the body as it
 * is when zstd does not shrink it. Method '1', a zlib stream (RFC 1950/1951,
 * level 1), is what bodies sealed between the first compression and zstd
 * hold; it is still read, never written. Why zstd level 1
 * (bench/raw_codec_bench.c, same run, 1,000-sample HealthKit bodies): about
 * 28 % fewer bytes than zlib level 1 (the iOS app's body 13.2 against 18.1 B
 * a sample, upload_bench's body with random UUIDs 25.9 against 37.0) at a
 * quarter to a sixth of the CPU (0.25-0.5 ms against 1.1-3.6 ms a body);
 * higher zstd levels gain little (level 9: 11.8 and 29.2 B) for ten times
 * the time, level 19 takes a quarter of a second a body. The marker is
 * inside the AEAD, so it is authenticated like the body. Bodies sealed
 * before compression carry no marker; they were JSON, XML or zip (the only
 * bodies the API stores), none of which starts with a NUL byte, so the two
 * cannot be confused. */
#define RAW_MARK "\0CZ"
#define RAW_MARK_LEN 3
#define RAW_ZSTD_LEVEL 1

static int raw_pack(const unsigned char *body, size_t len, unsigned char **out, size_t *out_len)
{
    size_t bound = ZSTD_compressBound(len);
    if (ZSTD_isError(bound) || bound > SIZE_MAX - RAW_MARK_LEN - 1)
        return KEYRING_EINVAL;
    unsigned char *b = malloc(RAW_MARK_LEN + 1 + (bound > len ? bound : len));
    if (b == NULL)
        return KEYRING_ENOMEM;
    memcpy(b, RAW_MARK, RAW_MARK_LEN);
    size_t dl = len > 0 ? ZSTD_compress(b + RAW_MARK_LEN + 1, bound, body, len, RAW_ZSTD_LEVEL) : 0;
    if (len > 0 && !ZSTD_isError(dl) && dl < len) {
        b[RAW_MARK_LEN] = '2';
        *out_len = RAW_MARK_LEN + 1 + dl;
    } else {
        b[RAW_MARK_LEN] = '0';
        if (len > 0)
            memcpy(b + RAW_MARK_LEN + 1, body, len);
        *out_len = RAW_MARK_LEN + 1 + len;
    }
    *out = b;
    return 0;
}

/* A zstd frame d (dlen bytes) into *body (malloc'd, NUL after *body_len).
 * The frame must state its content size (raw_pack's always do), at most
 * ENVELOPE_BODY_MAX, and hold exactly that: otherwise KEYRING_EAUTH. */
static int raw_unzstd(const unsigned char *d, size_t dlen, unsigned char **body, size_t *body_len)
{
    unsigned long long n = ZSTD_getFrameContentSize(d, dlen);
    if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN || n > ENVELOPE_BODY_MAX ||
        ZSTD_findFrameCompressedSize(d, dlen) != dlen)
        return KEYRING_EAUTH;
    unsigned char *o = malloc((size_t)n + 1);
    if (o == NULL)
        return KEYRING_ENOMEM;
    size_t got = ZSTD_decompress(o, (size_t)n, d, dlen);
    if (ZSTD_isError(got) || got != n) {
        free(o);
        return KEYRING_EAUTH;
    }
    o[n] = '\0';
    *body = o;
    *body_len = (size_t)n;
    return 0;
}

/* The body of an opened plaintext p (malloc'd, NUL after len; taken over:
 * freed or returned). KEYRING_EAUTH for a stream that does not inflate. */
static int raw_unpack(unsigned char *p, size_t len, unsigned char **body, size_t *body_len)
{
    if (len < RAW_MARK_LEN + 1 || memcmp(p, RAW_MARK, RAW_MARK_LEN) != 0) {
        *body = p; /* sealed before compression */
        *body_len = len;
        return 0;
    }
    const unsigned char *d = p + RAW_MARK_LEN + 1;
    size_t dlen = len - RAW_MARK_LEN - 1;
    if (p[RAW_MARK_LEN] == '0') {
        memmove(p, d, dlen);
        p[dlen] = '\0';
        *body = p;
        *body_len = dlen;
        return 0;
    }
    if (p[RAW_MARK_LEN] == '2') {
        int rc = raw_unzstd(d, dlen, body, body_len);
        sodium_memzero(p, len);
        free(p);
        return rc;
    }
    if (p[RAW_MARK_LEN] != '1') {
        sodium_memzero(p, len);
        free(p);
        return KEYRING_EAUTH;
    }
    z_stream z;
    memset(&z, 0, sizeof(z));
    size_t cap = dlen * 4 + 64, n = 0;
    unsigned char *o = malloc(cap);
    int rc = o && inflateInit(&z) == Z_OK ? 0 : KEYRING_ENOMEM, zr = Z_OK;
    if (rc == 0) {
        z.next_in = (unsigned char *)d;
        z.avail_in = (uInt)dlen;
        for (;;) {
            if (cap - n < 2) {
                unsigned char *g = cap > ENVELOPE_BODY_MAX ? NULL : realloc(o, cap * 2);
                if (g == NULL) {
                    rc = KEYRING_ENOMEM;
                    break;
                }
                o = g;
                cap *= 2;
            }
            size_t room = cap - n - 1; /* one byte kept for the NUL */
            z.next_out = o + n;
            z.avail_out = room > UINT32_MAX ? UINT32_MAX : (uInt)room;
            zr = inflate(&z, Z_NO_FLUSH);
            n = (size_t)(z.next_out - o);
            if (zr == Z_STREAM_END)
                break;
            /* No progress with room left: the stream is cut short. */
            if ((zr != Z_OK && zr != Z_BUF_ERROR) || (zr == Z_BUF_ERROR && z.avail_out > 0)) {
                rc = KEYRING_EAUTH;
                break;
            }
        }
        if (rc == 0 && z.avail_in != 0)
            rc = KEYRING_EAUTH;
        inflateEnd(&z);
    }
    sodium_memzero(p, len);
    free(p);
    if (rc != 0) {
        free(o);
        return rc;
    }
    o[n] = '\0';
    *body = o;
    *body_len = n;
    return 0;
}

int keyring_raw_upload_seal(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *upload_id,
                            const char *content_type, const unsigned char *body, size_t len,
                            struct store_raw_upload *out)
{
    struct envelope_binding b = {user_id, upload_id};
    struct envelope_sealed sealed;
    struct store_raw_upload r;
    const struct envelope_key *kek = NULL;
    int v = 0, rc;

    if (ring == NULL || tx == NULL || out == NULL || !id_ok(user_id) || !id_ok(upload_id) ||
        (content_type != NULL && strlen(content_type) >= sizeof(r.content_type)))
        return KEYRING_EINVAL;
    if ((rc = active_get(ring, tx, &v, &kek)) != 0)
        return rc;
    unsigned char *packed = NULL;
    size_t plen = 0;
    if ((rc = raw_pack(body, len, &packed, &plen)) != 0)
        return rc;
    rc = from_envelope(envelope_body_seal(kek, v, &b, packed, plen, &sealed));
    sodium_memzero(packed, plen);
    free(packed);
    if (rc != 0)
        return rc;
    memset(&r, 0, sizeof(r));
    snprintf(r.upload_id, sizeof(r.upload_id), "%s", upload_id);
    snprintf(r.user_id, sizeof(r.user_id), "%s", user_id);
    snprintf(r.content_type, sizeof(r.content_type), "%s", content_type ? content_type : "");
    r.key_version = v;
    r.wrapped_dek = malloc(ENVELOPE_WRAPPED_BYTES);
    r.nonce = malloc(ENVELOPE_NONCE_BYTES);
    if (r.wrapped_dek == NULL || r.nonce == NULL) {
        store_raw_upload_clear(&r);
        envelope_sealed_clear(&sealed);
        return KEYRING_ENOMEM;
    }
    memcpy(r.wrapped_dek, sealed.wrapped_dek, ENVELOPE_WRAPPED_BYTES);
    r.wrapped_dek_len = ENVELOPE_WRAPPED_BYTES;
    memcpy(r.nonce, sealed.nonce, ENVELOPE_NONCE_BYTES);
    r.nonce_len = ENVELOPE_NONCE_BYTES;
    r.ciphertext = sealed.ciphertext; /* steals */
    r.ciphertext_len = sealed.ciphertext_len;
    *out = r;
    return 0;
}

void keyring_block_binding(int64_t day, int64_t seq, int format, char out[KEYRING_BINDING_LEN])
{
    snprintf(out, KEYRING_BINDING_LEN, "block/%" PRId64 "/%" PRId64 "/v%d", day, seq, format);
}

static int bind_ok(const char *s) { return s != NULL && s[0] != '\0' && strlen(s) <= ENVELOPE_ID_MAX; }

int keyring_blob_seal(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *bound,
                      const unsigned char *plain, size_t len, unsigned char **blob, size_t *blob_len)
{
    struct envelope_binding b = {user_id, bound};
    struct envelope_sealed sealed;
    const struct envelope_key *kek = NULL;
    int v = 0, rc;

    if (ring == NULL || tx == NULL || blob == NULL || blob_len == NULL || !bind_ok(user_id) || !bind_ok(bound) ||
        len > ENVELOPE_BODY_MAX)
        return KEYRING_EINVAL;
    if ((rc = active_get(ring, tx, &v, &kek)) != 0)
        return rc;
    if ((rc = from_envelope(envelope_body_seal(kek, v, &b, plain, len, &sealed))) != 0)
        return rc;
    size_t n = 5 + ENVELOPE_WRAPPED_BYTES + ENVELOPE_NONCE_BYTES + sealed.ciphertext_len;
    unsigned char *out = malloc(n);
    if (out == NULL) {
        envelope_sealed_clear(&sealed);
        return KEYRING_ENOMEM;
    }
    out[0] = KEYRING_BLOB_FORMAT;
    for (int i = 0; i < 4; i++)
        out[1 + i] = (unsigned char)((uint32_t)v >> (8 * i));
    memcpy(out + 5, sealed.wrapped_dek, ENVELOPE_WRAPPED_BYTES);
    memcpy(out + 5 + ENVELOPE_WRAPPED_BYTES, sealed.nonce, ENVELOPE_NONCE_BYTES);
    memcpy(out + 5 + ENVELOPE_WRAPPED_BYTES + ENVELOPE_NONCE_BYTES, sealed.ciphertext, sealed.ciphertext_len);
    envelope_sealed_clear(&sealed);
    *blob = out;
    *blob_len = n;
    return 0;
}

int keyring_blob_open(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *bound,
                      const unsigned char *blob, size_t blob_len, unsigned char **plain, size_t *len)
{
    struct envelope_binding b = {user_id, bound};
    const struct envelope_key *kek = NULL;
    int rc;
    if (ring == NULL || tx == NULL || plain == NULL || len == NULL || !bind_ok(user_id) || !bind_ok(bound))
        return KEYRING_EINVAL;
    if (blob == NULL || blob_len < KEYRING_BLOB_OVERHEAD || blob[0] != KEYRING_BLOB_FORMAT)
        return KEYRING_EAUTH;
    uint32_t v = (uint32_t)blob[1] | (uint32_t)blob[2] << 8 | (uint32_t)blob[3] << 16 | (uint32_t)blob[4] << 24;
    if (v == 0 || v > INT32_MAX)
        return KEYRING_EAUTH;
    if ((rc = kek_get(ring, tx, (int)v, &kek)) != 0)
        return rc;
    const unsigned char *w = blob + 5, *nonce = w + ENVELOPE_WRAPPED_BYTES, *ct = nonce + ENVELOPE_NONCE_BYTES;
    return from_envelope(envelope_body_open(kek, (int)v, &b, w, ENVELOPE_WRAPPED_BYTES, nonce, ENVELOPE_NONCE_BYTES, ct,
                                            blob_len - (size_t)(ct - blob), plain, len));
}

static int sealer_seal(void *ctx, struct store_tx *tx, const char *user_id, const char *bound,
                       const unsigned char *plain, size_t len, unsigned char **blob, size_t *blob_len)
{
    return keyring_blob_seal(ctx, tx, user_id, bound, plain, len, blob, blob_len);
}

static int sealer_open(void *ctx, struct store_tx *tx, const char *user_id, const char *bound,
                       const unsigned char *blob, size_t blob_len, unsigned char **plain, size_t *len)
{
    return keyring_blob_open(ctx, tx, user_id, bound, blob, blob_len, plain, len);
}

void keyring_store_sealer(struct keyring *ring, struct store_sealer *out)
{
    out->ctx = ring;
    out->seal = sealer_seal;
    out->open = sealer_open;
}

int keyring_raw_upload_open(struct keyring *ring, struct store_tx *tx, const struct store_raw_upload *r,
                            unsigned char **body, size_t *len)
{
    struct envelope_binding b;
    const struct envelope_key *kek = NULL;
    int rc;
    if (ring == NULL || tx == NULL || r == NULL || body == NULL || len == NULL)
        return KEYRING_EINVAL;
    /* A stored row with missing or wrong-sized parts was altered (or is not
     * ours): report it like any other failed authentication. */
    if (r->wrapped_dek == NULL || r->wrapped_dek_len != ENVELOPE_WRAPPED_BYTES || r->nonce == NULL ||
        r->nonce_len != ENVELOPE_NONCE_BYTES || r->ciphertext == NULL || r->ciphertext_len < ENVELOPE_TAG_BYTES ||
        !id_ok(r->user_id) || !id_ok(r->upload_id))
        return KEYRING_EAUTH;
    b.user_id = r->user_id;
    b.upload_id = r->upload_id;
    if ((rc = kek_get(ring, tx, r->key_version, &kek)) != 0)
        return rc;
    unsigned char *p = NULL;
    size_t plen = 0;
    rc = from_envelope(envelope_body_open(kek, r->key_version, &b, r->wrapped_dek, r->wrapped_dek_len, r->nonce,
                                          r->nonce_len, r->ciphertext, r->ciphertext_len, &p, &plen));
    return rc != 0 ? rc : raw_unpack(p, plen, body, len);
}

int keyring_raw_upload_put(struct keyring *ring, struct store_tx *tx, const char *user_id, const char *upload_id,
                           const char *content_type, const unsigned char *body, size_t len)
{
    struct store_raw_upload r;
    int rc = keyring_raw_upload_seal(ring, tx, user_id, upload_id, content_type, body, len, &r);
    if (rc != 0)
        return rc;
    rc = store_raw_upload_put(tx, &r);
    store_raw_upload_clear(&r);
    return rc;
}

int keyring_raw_upload_get(struct keyring *ring, struct store_tx *tx, const char *upload_id, const char *user_id,
                           unsigned char **body, size_t *len, char content_type[64])
{
    struct store_raw_upload r;
    int rc;
    if (ring == NULL || tx == NULL || !id_ok(upload_id) || body == NULL || len == NULL)
        return KEYRING_EINVAL;
    memset(&r, 0, sizeof(r));
    if ((rc = store_raw_upload_get(tx, upload_id, &r)) != 0)
        return rc;
    if (user_id != NULL && strcmp(user_id, r.user_id) != 0) {
        rc = STORE_ENOTFOUND; /* no existence oracle for other users' uploads */
        goto done;
    }
    if ((rc = keyring_raw_upload_open(ring, tx, &r, body, len)) != 0)
        goto done;
    if (content_type != NULL)
        snprintf(content_type, 64, "%s", r.content_type);
done:
    store_raw_upload_clear(&r);
    return rc;
}

/* ---- administration ------------------------------------------------------------------ */

int keyring_status_list(struct keyring *ring, struct keyring_version **out, size_t *n, int *active)
{
    struct store_tx *tx = NULL;
    struct store_key row;
    struct keyring_version *v = NULL;
    struct envelope_key *k = NULL;
    int64_t now = time_now_ms();
    int max = 0, rc;
    size_t count = 0;

    if (ring == NULL || out == NULL || n == NULL || active == NULL)
        return KEYRING_EINVAL;
    memset(&row, 0, sizeof(row));
    if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0)
        return rc;
    if ((rc = store_key_get_active(tx, &row)) != 0)
        goto done;
    *active = row.version;
    store_key_clear(&row);
    if ((rc = max_version(tx, *active, &max)) != 0)
        goto done;
    v = calloc((size_t)max, sizeof(*v));
    if (v == NULL) {
        rc = KEYRING_ENOMEM;
        goto done;
    }
    for (int ver = 1; ver <= max; ver++) {
        rc = store_key_get(tx, ver, &row);
        if (rc == STORE_ENOTFOUND)
            continue;
        if (rc != 0)
            goto done;
        struct keyring_version *e = &v[count++];
        e->version = row.version;
        snprintf(e->algorithm, sizeof(e->algorithm), "%s", row.algorithm);
        snprintf(e->status, sizeof(e->status), "%s", row.status);
        e->created_at_ms = row.created_at_ms;
        e->age_days = now > row.created_at_ms ? (now - row.created_at_ms) / MS_PER_DAY : 0;
        e->opens = row_unwrap(ring, &row, &k) == 0;
        envelope_key_free(k);
        k = NULL;
        store_key_clear(&row);
    }
    rc = 0;
done:
    store_tx_rollback(tx);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n = count;
    return 0;
}

int keyring_rotate(struct keyring *ring, int *new_version, char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    struct store_key row;
    struct envelope_key *k = NULL;
    int max = 0, nv, rc;

    if (ring == NULL || new_version == NULL) {
        SAY("keyring_rotate: missing argument");
        return KEYRING_EINVAL;
    }
    memset(&row, 0, sizeof(row));
    if ((rc = store_tx_begin(ring->st, STORE_TX_WRITE, &tx)) != 0) {
        SAY("key ring: %s", clarity_strerror(rc));
        return rc;
    }
    if ((rc = store_key_get_active(tx, &row)) != 0) {
        SAY("key ring: reading the active version: %s", clarity_strerror(rc));
        goto fail;
    }
    /* Refuse to rotate with a master key that does not open the ring: the new
     * version would be unreadable by every instance that has the right one. */
    if ((rc = row_unwrap(ring, &row, &k)) != 0) {
        SAY("ENCRYPTION_KEY does not open the active key-ring version %d; refusing to rotate", row.version);
        goto fail;
    }
    envelope_key_free(k);
    k = NULL;
    max = row.version;
    store_key_clear(&row);
    if ((rc = max_version(tx, max, &max)) != 0) {
        SAY("key ring: %s", clarity_strerror(rc));
        goto fail;
    }
    if (max >= INT_MAX - 1) {
        rc = KEYRING_ESTATE;
        SAY("key ring: version numbers exhausted");
        goto fail;
    }
    nv = max + 1;
    if ((rc = row_new(ring, nv, &row, &k)) != 0) {
        SAY("key ring: %s", clarity_strerror(rc));
        goto fail;
    }
    rc = store_key_insert(tx, &row);
    store_key_clear(&row);
    if (rc != 0) {
        SAY("key ring: adding version %d: %s%s", nv, clarity_strerror(rc),
            rc == STORE_ECONFLICT ? " (another rotation ran at the same time)" : "");
        goto fail;
    }
    /* Retire the older active versions: they keep decrypting, never encrypt. */
    for (int v = 1; v < nv; v++) {
        rc = store_key_get(tx, v, &row);
        if (rc == STORE_ENOTFOUND)
            continue;
        if (rc != 0) {
            SAY("key ring: %s", clarity_strerror(rc));
            goto fail;
        }
        int was_active = strcmp(row.status, "active") == 0;
        store_key_clear(&row);
        if (was_active && (rc = store_key_status_set(tx, v, "retired")) != 0) {
            SAY("key ring: retiring version %d: %s", v, clarity_strerror(rc));
            goto fail;
        }
    }
    rc = store_tx_commit(tx);
    tx = NULL;
    if (rc != 0) {
        SAY("key ring: commit: %s%s", clarity_strerror(rc),
            rc == STORE_ECONFLICT ? " (another rotation ran at the same time)" : "");
        goto fail;
    }
    if (cache_put(ring, nv, k) == NULL) {
        k = NULL;
        SAY("out of memory");
        return KEYRING_ENOMEM;
    }
    k = NULL;
    pthread_mutex_lock(&ring->mu);
    ring->active = nv;
    ring->active_checked_ms = time_now_ms();
    pthread_mutex_unlock(&ring->mu);
    log_info("rotated encryption key ring", LOG_INT, "version", (long long)nv, LOG_END);
    *new_version = nv;
    return 0;
fail:
    store_key_clear(&row);
    envelope_key_free(k);
    store_tx_rollback(tx);
    return rc;
}

/* ---- re-wrapping ------------------------------------------------------------------------ */

/*
 * Pending updates of one batch, applied in one transaction with
 * store_admin_exec. The store has no repository call to change a raw upload's
 * wrapped key (see docs/security.md, "Gaps"), so the statement is built
 * here; it carries only hex of wrapped keys, integers and validated UUIDs,
 * never request data. The key_version condition makes each update a
 * compare-and-set: a row changed since it was read is left alone.
 */
struct batch {
    char *sql;
    size_t len, cap;
    size_t rows;
    int postgres;
};

#define BATCH_ROW_MAX 512

static int batch_add(struct batch *bt, const char *upload_id, int old_v, int new_v,
                     const unsigned char wrapped[ENVELOPE_WRAPPED_BYTES])
{
    char hex[2 * ENVELOPE_WRAPPED_BYTES + 1];
    int w;
    if (bt->cap - bt->len < BATCH_ROW_MAX)
        return KEYRING_ENOMEM;
    sodium_bin2hex(hex, sizeof(hex), wrapped, ENVELOPE_WRAPPED_BYTES);
    w = snprintf(bt->sql + bt->len, bt->cap - bt->len,
                 bt->postgres ? "UPDATE raw_uploads SET key_version = %d, wrapped_dek ="
                                " decode('%s', 'hex') WHERE upload_id = '%s'"
                                " AND key_version = %d;\n"
                              : "UPDATE raw_uploads SET key_version = %d, wrapped_dek ="
                                " X'%s' WHERE upload_id = '%s' AND key_version = %d;\n",
                 new_v, hex, upload_id, old_v);
    if (w < 0 || (size_t)w >= bt->cap - bt->len)
        return KEYRING_ENOMEM;
    bt->len += (size_t)w;
    bt->rows++;
    return 0;
}

static int batch_flush(struct keyring *ring, struct batch *bt, char *err, size_t errlen)
{
    int rc = 0;
    if (bt->rows > 0) {
        char why[256];
        rc = store_admin_exec(ring->st, bt->sql, why, sizeof(why));
        if (rc != 0)
            SAY("re-wrapping a batch: %s", why);
    }
    bt->len = 0;
    bt->rows = 0;
    if (bt->cap > 0)
        bt->sql[0] = '\0';
    return rc;
}

/* One page of a user's uploads: read in a read transaction, re-wrap, then
 * write the batch. */
static int rewrap_page(struct keyring *ring, const char *user_id, struct store_cursor *cursor, size_t batch_rows,
                       struct batch *bt, const struct envelope_key *target_kek, struct keyring_rewrap_stats *st,
                       char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    struct store_upload *ups = NULL;
    struct store_cursor next;
    size_t n = 0;
    int rc;

    memset(&next, 0, sizeof(next));
    if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0) {
        SAY("re-wrap: %s", clarity_strerror(rc));
        return rc;
    }
    if ((rc = store_upload_list(tx, user_id, cursor, batch_rows, &ups, &n, &next)) != 0) {
        SAY("re-wrap: listing uploads: %s", clarity_strerror(rc));
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct store_raw_upload r;
        const struct envelope_key *old_kek = NULL;
        unsigned char wrapped[ENVELOPE_WRAPPED_BYTES];
        memset(&r, 0, sizeof(r));
        rc = store_raw_upload_get(tx, ups[i].id, &r);
        if (rc == STORE_ENOTFOUND)
            continue;
        if (rc != 0) {
            SAY("re-wrap: reading upload %s: %s", ups[i].id, clarity_strerror(rc));
            goto done;
        }
        st->tables[KEYRING_REWRAP_RAW_UPLOADS].scanned++;
        if (r.key_version != st->target) {
            struct envelope_binding b = {r.user_id, r.upload_id};
            if (!uuid_is_valid(r.upload_id) || kek_get(ring, tx, r.key_version, &old_kek) != 0 ||
                envelope_dek_rewrap(old_kek, r.key_version, target_kek, st->target, &b, r.wrapped_dek,
                                    r.wrapped_dek_len, wrapped) != 0) {
                st->tables[KEYRING_REWRAP_RAW_UPLOADS].failed++;
                log_warning("raw upload key does not unwrap; left as is", LOG_STR, "upload_id", r.upload_id, LOG_INT,
                            "key_version", (long long)r.key_version, LOG_END);
            } else if ((rc = batch_add(bt, r.upload_id, r.key_version, st->target, wrapped)) != 0) {
                store_raw_upload_clear(&r);
                SAY("re-wrap: out of memory");
                goto done;
            }
        }
        store_raw_upload_clear(&r);
    }
    rc = 0;
done:
    store_tx_rollback(tx); /* reads only; release the snapshot before writing */
    free(ups);
    if (rc == 0) {
        size_t rows = bt->rows;
        if ((rc = batch_flush(ring, bt, err, errlen)) == 0) {
            st->tables[KEYRING_REWRAP_RAW_UPLOADS].rewrapped += (int64_t)rows;
            *cursor = next;
        }
    }
    return rc;
}

/* ---- re-wrapping sealed blobs ---------------------------------------------------------- */

_Static_assert(STORE_SEALED_FORMAT == KEYRING_BLOB_FORMAT, "the store lists keyring_blob_seal's blobs");
_Static_assert(STORE_SEALED_HEAD == 5 + ENVELOPE_WRAPPED_BYTES, "the head is format, version, wrapped DEK");
_Static_assert(STORE_SEALED_NONCE == ENVELOPE_NONCE_BYTES, "the nonce follows the head");

/* The k-th binding a blob of table t may have been sealed with (0 when
 * there is none left): what its writer passed to keyring_blob_seal. The
 * store's (src/store/repo.c, days.c): "analysis/<id>", "insight/<id>", a
 * day row "block/<day>/v<format>" (tried from BLOCK_SEAL_FORMAT down, the
 * likely one first), an aggregate "agg/<sample_day_id>/<metric type>". */
static int blob_bound(enum store_sealed_table t, const struct store_sealed_row *r, int k, char out[KEYRING_BINDING_LEN])
{
    switch (t) {
    case STORE_SEALED_SAMPLE_DAYS:
        if (k >= BLOCK_SEAL_FORMAT)
            return 0;
        snprintf(out, KEYRING_BINDING_LEN, "block/%" PRId64 "/v%d", r->day, BLOCK_SEAL_FORMAT - k);
        return 1;
    case STORE_SEALED_SAMPLE_DAY_AGGS:
        if (k > 0)
            return 0;
        snprintf(out, KEYRING_BINDING_LEN, "agg/%" PRId64 "/%.48s", r->rowid, r->metric_type);
        return 1;
    case STORE_SEALED_ANALYSES:
    case STORE_SEALED_INSIGHTS:
        if (k > 0)
            return 0;
        snprintf(out, KEYRING_BINDING_LEN, "%s/%s", t == STORE_SEALED_ANALYSES ? "analysis" : "insight", r->id);
        return 1;
    }
    return 0;
}

/* New head for row r under the target: 0, or non-zero when its DEK does not
 * unwrap with any binding it may have (or its version is unknown). */
static int blob_rewrap_one(struct keyring *ring, struct store_tx *tx, enum store_sealed_table t,
                           const struct store_sealed_row *r, const struct envelope_key *target_kek, int target,
                           unsigned char head[STORE_SEALED_HEAD])
{
    const struct envelope_key *old_kek = NULL;
    char bound[KEYRING_BINDING_LEN];
    if (r->key_version == 0 || r->key_version > INT32_MAX || r->len < KEYRING_BLOB_OVERHEAD || !bind_ok(r->user_id) ||
        kek_get(ring, tx, (int)r->key_version, &old_kek) != 0)
        return -1;
    for (int k = 0; blob_bound(t, r, k, bound); k++) {
        struct envelope_binding b = {r->user_id, bound};
        if (envelope_dek_rewrap(old_kek, (int)r->key_version, target_kek, target, &b, r->head + 5,
                                ENVELOPE_WRAPPED_BYTES, head + 5) == 0) {
            head[0] = KEYRING_BLOB_FORMAT;
            for (int i = 0; i < 4; i++)
                head[1 + i] = (unsigned char)((uint32_t)target >> (8 * i));
            return 0;
        }
    }
    return -1;
}

/* One batch of table t: list the blobs after *cursor not under the target in
 * a read transaction, re-wrap them in memory, then apply the new heads by
 * compare-and-set in one write transaction. *cursor moves on only when the
 * batch is written. */
static int blob_page(struct keyring *ring, enum store_sealed_table t, struct keyring_rewrap_table *tt,
                     struct store_sealed_cursor *cursor, size_t batch_rows, const struct envelope_key *target_kek,
                     int target, char *err, size_t errlen)
{
    struct store_tx *tx = NULL;
    struct store_sealed_row *rows = NULL;
    struct store_sealed_cursor next;
    unsigned char(*heads)[STORE_SEALED_HEAD] = NULL;
    unsigned char *ok = NULL;
    size_t n = 0;
    int64_t failed = 0, done = 0, skipped = 0;
    int rc;

    if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0) {
        SAY("re-wrap: %s", clarity_strerror(rc));
        return rc;
    }
    rc = store_sealed_list(tx, t, (uint32_t)target, cursor, batch_rows, &rows, &n, &next);
    if (rc != 0) {
        store_tx_rollback(tx);
        SAY("re-wrap: listing %s: %s", tt->name, clarity_strerror(rc));
        return rc;
    }
    heads = n ? malloc(n * sizeof(*heads)) : NULL;
    ok = n ? calloc(n, 1) : NULL;
    if (n > 0 && (heads == NULL || ok == NULL)) {
        store_tx_rollback(tx);
        rc = KEYRING_ENOMEM;
        SAY("re-wrap: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (blob_rewrap_one(ring, tx, t, &rows[i], target_kek, target, heads[i]) == 0) {
            ok[i] = 1;
            continue;
        }
        failed++;
        log_warning("sealed blob key does not unwrap; left as is", LOG_STR, "table", tt->name, LOG_STR, "id",
                    rows[i].id, LOG_INT, "key_version", (long long)rows[i].key_version, LOG_END);
    }
    store_tx_rollback(tx); /* reads only; release the snapshot before writing */
    tx = NULL;

    if (n > (size_t)failed) {
        if ((rc = store_tx_begin(ring->st, STORE_TX_WRITE, &tx)) != 0) {
            SAY("re-wrap: %s", clarity_strerror(rc));
            goto out;
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            int applied = 0;
            if (!ok[i])
                continue;
            if ((rc = store_sealed_rewrap(tx, t, &rows[i], heads[i], &applied)) == 0) {
                done += applied;
                skipped += !applied;
            }
        }
        if (rc == 0) {
            rc = store_tx_commit(tx);
        } else {
            store_tx_rollback(tx);
        }
        tx = NULL;
        if (rc != 0) {
            SAY("re-wrapping a batch of %s: %s", tt->name, clarity_strerror(rc));
            goto out;
        }
    }
    tt->scanned += (int64_t)n;
    tt->rewrapped += done;
    tt->skipped += skipped;
    tt->failed += failed;
    *cursor = next;
out:
    if (heads != NULL)
        sodium_memzero(heads, n * sizeof(*heads));
    free(heads);
    free(ok);
    free(rows);
    return rc;
}

static void stats_sum(struct keyring_rewrap_stats *st)
{
    st->scanned = st->rewrapped = st->skipped = st->failed = 0;
    for (int i = 0; i < KEYRING_REWRAP_TABLES; i++) {
        st->scanned += st->tables[i].scanned;
        st->rewrapped += st->tables[i].rewrapped;
        st->skipped += st->tables[i].skipped;
        st->failed += st->tables[i].failed;
    }
}

#define REWRAP_BUSY_TRIES 3

/* 1 when the caller asked to stop. */
static int report(keyring_progress_fn progress, void *ctx, struct keyring_rewrap_stats *st, int table)
{
    st->table = table;
    stats_sum(st);
    return progress != NULL && progress(ctx, st) != 0;
}

int keyring_rewrap(struct keyring *ring, size_t batch, keyring_progress_fn progress, void *ctx,
                   struct keyring_rewrap_stats *stats, char *err, size_t errlen)
{
    struct keyring_rewrap_stats st;
    struct batch bt;
    struct store_tx *tx = NULL;
    struct store_user *users = NULL;
    struct store_cursor ucur, unext;
    const struct envelope_key *target_kek = NULL;
    size_t nu = 0;
    int rc;

    if (ring == NULL || stats == NULL) {
        SAY("keyring_rewrap: missing argument");
        return KEYRING_EINVAL;
    }
    if (batch == 0)
        batch = KEYRING_REWRAP_BATCH_DEFAULT;
    if (batch > STORE_PAGE_MAX)
        batch = STORE_PAGE_MAX;
    memset(&st, 0, sizeof(st));
    memset(&bt, 0, sizeof(bt));
    memset(&ucur, 0, sizeof(ucur));
    st.tables[KEYRING_REWRAP_RAW_UPLOADS].name = "raw_uploads";
    for (int t = 0; t < STORE_SEALED_TABLES; t++)
        st.tables[KEYRING_REWRAP_ANALYSES + t].name = store_sealed_table_name((enum store_sealed_table)t);
    bt.postgres = strcmp(store_backend_name(ring->st), "postgres") == 0;
    bt.cap = batch * BATCH_ROW_MAX + 1;
    bt.sql = malloc(bt.cap);
    if (bt.sql == NULL) {
        SAY("out of memory");
        return KEYRING_ENOMEM;
    }
    bt.sql[0] = '\0';

    /* The target is the active version as the store has it now (not a cached
     * answer), so a pass started right after a rotation moves rows to it. */
    if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0) {
        SAY("re-wrap: %s", clarity_strerror(rc));
        goto done;
    }
    pthread_mutex_lock(&ring->mu);
    ring->active_checked_ms = 0;
    ring->active = 0;
    pthread_mutex_unlock(&ring->mu);
    rc = active_get(ring, tx, &st.target, &target_kek);
    store_tx_rollback(tx);
    if (rc != 0) {
        SAY("re-wrap: the active key-ring version does not open: %s", clarity_strerror(rc));
        goto done;
    }

    /* Every raw upload belongs to an upload of an existing user (foreign
     * keys), so walking users, then their uploads, visits every row. */
    for (;;) {
        memset(&unext, 0, sizeof(unext));
        if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0) {
            SAY("re-wrap: %s", clarity_strerror(rc));
            goto done;
        }
        rc = store_user_list(tx, &ucur, STORE_PAGE_MAX, &users, &nu, &unext);
        store_tx_rollback(tx);
        if (rc != 0) {
            SAY("re-wrap: listing users: %s", clarity_strerror(rc));
            goto done;
        }
        for (size_t i = 0; i < nu; i++) {
            struct store_cursor cur;
            memset(&cur, 0, sizeof(cur));
            do {
                rc = rewrap_page(ring, users[i].id, &cur, batch, &bt, target_kek, &st, err, errlen);
                if (rc != 0)
                    goto done;
                if (report(progress, ctx, &st, KEYRING_REWRAP_RAW_UPLOADS))
                    goto done;
            } while (cur.set);
        }
        free(users);
        users = NULL;
        if (!unext.set)
            break;
        ucur = unext;
    }
    st.tables[KEYRING_REWRAP_RAW_UPLOADS].done = 1;

    /* Then every sealed blob: analyses, insights, sample blocks. */
    for (int t = 0; t < STORE_SEALED_TABLES; t++) {
        struct store_sealed_cursor cur;
        int id = KEYRING_REWRAP_ANALYSES + t;
        memset(&cur, 0, sizeof(cur));
        for (int tries = 0;;) {
            rc = blob_page(ring, (enum store_sealed_table)t, &st.tables[id], &cur, batch, target_kek, st.target, err,
                           errlen);
            /* A deadlock or lock timeout against a concurrent writer
             * (PostgreSQL 40P01/40001/55P03, SQLite busy): the batch was
             * rolled back and the cursor did not move; read it again. */
            if (rc == STORE_EBUSY && ++tries < REWRAP_BUSY_TRIES)
                continue;
            if (rc != 0)
                goto done;
            tries = 0;
            st.tables[id].done = !cur.set;
            if (report(progress, ctx, &st, id))
                goto done;
            if (!cur.set)
                break;
        }
    }
    rc = 0;
done:
    free(users);
    free(bt.sql);
    stats_sum(&st);
    *stats = st;
    return rc;
}

/* ---- health -------------------------------------------------------------------------- */

int keyring_health_check(void *ctx, json_t *details, char *err, size_t errlen)
{
    struct keyring *ring = ctx;
    struct store_tx *tx = NULL;
    struct store_key row;
    const struct envelope_key *kek = NULL;
    char when[40];
    int64_t now = time_now_ms(), age_days;
    int rc;

    if (ring == NULL) {
        SAY("key ring not open");
        return -1;
    }
    memset(&row, 0, sizeof(row));
    if ((rc = store_tx_begin(ring->st, STORE_TX_READ, &tx)) != 0) {
        SAY("key ring: %s", clarity_strerror(rc));
        return -1;
    }
    rc = store_key_get_active(tx, &row);
    if (rc != 0) {
        store_tx_rollback(tx);
        SAY("key ring: %s", rc == STORE_ENOTFOUND ? "no active key version" : clarity_strerror(rc));
        return -1;
    }
    rc = kek_get(ring, tx, row.version, &kek);
    store_tx_rollback(tx);
    if (rc != 0) {
        SAY("key ring version %d: %s", row.version, clarity_strerror(rc));
        store_key_clear(&row);
        return -1;
    }
    age_days = now > row.created_at_ms ? (now - row.created_at_ms) / MS_PER_DAY : 0;
    if (details != NULL) {
        time_format_rfc3339_ms(row.created_at_ms, when, sizeof(when));
        json_object_set_new(details, "active_version", json_integer(row.version));
        json_object_set_new(details, "active_key_created_at", json_string(when));
        json_object_set_new(details, "active_key_age_days", json_integer(age_days));
        json_object_set_new(details, "rotation_period_days", json_integer(KEYRING_ROTATION_DAYS));
        if (now - row.created_at_ms > (int64_t)KEYRING_ROTATION_DAYS * MS_PER_DAY) {
            char msg[160];
            snprintf(msg, sizeof(msg),
                     "active encryption key is %lld days old (rotation period %d days); run "
                     "`clarity keys rotate`",
                     (long long)age_days, KEYRING_ROTATION_DAYS);
            json_object_set_new(details, "warning", json_string(msg));
        }
    }
    store_key_clear(&row);
    return 0;
}
