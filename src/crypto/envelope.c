/*
 * envelope.c — envelope encryption over libsodium's XChaCha20-Poly1305 IETF
 * AEAD. Contract and stored format in envelope.h; design in docs/security.md.
 *
 * Sources: libsodium documentation, "Authenticated Encryption with Additional
 * Data / XChaCha20-Poly1305 construction", "Key derivation", "Secure memory";
 * draft-irtf-cfrg-xchacha-03 (XChaCha20, HChaCha20); RFC 8439 §2.8 (the
 * ChaCha20-Poly1305 AEAD it extends).
 */
#include "crypto/envelope.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <sodium.h>

/* The key bytes live alone in a sodium_malloc'd page: guard pages around it,
 * excluded from core dumps where supported, wiped by sodium_free. */
struct envelope_key {
    unsigned char k[ENVELOPE_KEY_BYTES];
};

/* Domain-separation labels: a wrapped DEK can never be confused with a body
 * or with a key-ring entry, even under the same key. The trailing NUL of
 * each label is part of the associated data. */
static const char AD_BODY_LABEL[] = "clarity/raw-upload/v1";
static const char AD_WRAP_LABEL[] = "clarity/dek-wrap/v1";

/* label + NUL + 4-byte version + two length-prefixed ids */
#define AD_MAX (32 + 4 + 2 * (1 + ENVELOPE_ID_MAX))

_Static_assert(ENVELOPE_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(ENVELOPE_NONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce size");
_Static_assert(ENVELOPE_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag size");
_Static_assert(ENVELOPE_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key size");

int envelope_lib_init(void)
{
    /* sodium_init returns 1 when already initialised: not an error. */
    return sodium_init() < 0 ? ENVELOPE_EINIT : ENVELOPE_OK;
}

/* ---- keys ---------------------------------------------------------------- */

static struct envelope_key *key_alloc(void)
{
    if (sodium_init() < 0)
        return NULL;
    return sodium_malloc(sizeof(struct envelope_key));
}

/* Key memory stays read-only except while being written, so a stray write
 * through a dangling pointer faults instead of corrupting a key. */
static void key_seal_memory(struct envelope_key *k) { sodium_mprotect_readonly(k); }

void envelope_key_free(struct envelope_key *k)
{
    if (k != NULL)
        sodium_free(k); /* wipes before unmapping, whatever the protection */
}

int envelope_key_random(struct envelope_key **out)
{
    struct envelope_key *k = key_alloc();
    if (k == NULL)
        return ENVELOPE_ENOMEM;
    crypto_aead_xchacha20poly1305_ietf_keygen(k->k);
    key_seal_memory(k);
    *out = k;
    return ENVELOPE_OK;
}

int envelope_key_from_bytes(const unsigned char *bytes, size_t len, struct envelope_key **out)
{
    if (bytes == NULL || len != ENVELOPE_KEY_BYTES)
        return ENVELOPE_EINVAL;
    struct envelope_key *k = key_alloc();
    if (k == NULL)
        return ENVELOPE_ENOMEM;
    memcpy(k->k, bytes, ENVELOPE_KEY_BYTES);
    key_seal_memory(k);
    *out = k;
    return ENVELOPE_OK;
}

/* A one-line reason for a rejected key; never quotes the key text. */
#define SAY(...)                                                                                                       \
    do {                                                                                                               \
        if (err != NULL && errlen > 0)                                                                                 \
            snprintf(err, errlen, __VA_ARGS__);                                                                        \
    } while (0)

int envelope_key_from_base64(const char *text, struct envelope_key **out, char *err, size_t errlen)
{
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    unsigned char *bin = NULL;
    size_t tlen, cap, binlen = 0;
    int rc = ENVELOPE_EINVAL, decoded = 0;

    if (sodium_init() < 0) {
        SAY("libsodium initialisation failed");
        return ENVELOPE_EINIT;
    }
    if (text == NULL || text[0] == '\0') {
        SAY("empty; expected base64 of 32 random bytes");
        return ENVELOPE_EINVAL;
    }
    tlen = strlen(text);
    if (tlen > 4096) {
        SAY("too long (%zu characters); expected base64 of 32 random bytes", tlen);
        return ENVELOPE_EINVAL;
    }
    /* Decode into a buffer as large as the text so a too-long key is reported
     * with its decoded length; the buffer is secret memory. */
    cap = tlen;
    bin = sodium_malloc(cap);
    if (bin == NULL) {
        SAY("out of memory");
        return ENVELOPE_ENOMEM;
    }
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]) && !decoded; i++) {
        /* b64_end NULL: any character outside the alphabet (and the ignore
         * set) fails the whole decode instead of stopping early. */
        if (sodium_base642bin(bin, cap, text, tlen, " \t\r\n", &binlen, NULL, variants[i]) == 0)
            decoded = 1;
    }
    if (!decoded) {
        SAY("not valid base64; expected base64 of 32 random bytes");
        goto done;
    }
    if (binlen != ENVELOPE_KEY_BYTES) {
        SAY("decodes to %zu bytes; expected base64 of exactly 32 random bytes", binlen);
        goto done;
    }
    rc = envelope_key_from_bytes(bin, binlen, out);
    if (rc != ENVELOPE_OK)
        SAY("out of memory");
done:
    sodium_free(bin);
    return rc;
}

int envelope_key_to_base64(const struct envelope_key *k, char *out, size_t outlen)
{
    if (k == NULL || out == NULL ||
        outlen < sodium_base64_ENCODED_LEN(ENVELOPE_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL))
        return ENVELOPE_EINVAL;
    sodium_bin2base64(out, outlen, k->k, ENVELOPE_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
    return ENVELOPE_OK;
}

int envelope_key_derive(const struct envelope_key *key, const char context[8], uint64_t id, struct envelope_key **out)
{
    if (key == NULL || context == NULL)
        return ENVELOPE_EINVAL;
    struct envelope_key *k = key_alloc();
    if (k == NULL)
        return ENVELOPE_ENOMEM;
    /* crypto_kdf_derive_from_key: BLAKE2b keyed with key, personalised with
     * the 8-byte context and salted with id (libsodium "Key derivation"). */
    if (crypto_kdf_derive_from_key(k->k, ENVELOPE_KEY_BYTES, id, context, key->k) != 0) {
        envelope_key_free(k);
        return ENVELOPE_EINVAL;
    }
    key_seal_memory(k);
    *out = k;
    return ENVELOPE_OK;
}

int envelope_key_equal(const struct envelope_key *a, const struct envelope_key *b)
{
    if (a == NULL || b == NULL)
        return 0;
    return sodium_memcmp(a->k, b->k, ENVELOPE_KEY_BYTES) == 0;
}

/* ---- key wrapping ---------------------------------------------------------- */

int envelope_key_wrap(const struct envelope_key *kek, const struct envelope_key *key, const unsigned char *ad,
                      size_t adlen, unsigned char out[ENVELOPE_WRAPPED_BYTES])
{
    unsigned long long clen = 0;
    if (kek == NULL || key == NULL || out == NULL || (ad == NULL && adlen > 0))
        return ENVELOPE_EINVAL;
    randombytes_buf(out, ENVELOPE_NONCE_BYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + ENVELOPE_NONCE_BYTES, &clen, key->k, ENVELOPE_KEY_BYTES, ad, adlen,
                                               NULL, out, kek->k);
    return clen == ENVELOPE_KEY_BYTES + ENVELOPE_TAG_BYTES ? ENVELOPE_OK : ENVELOPE_EINVAL;
}

/* Decrypt a wrapped key straight into k (protected memory: the key never
 * touches the stack). */
static int unwrap_into(const struct envelope_key *kek, const unsigned char *wrapped, const unsigned char *ad,
                       size_t adlen, struct envelope_key *k)
{
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(k->k, &mlen, NULL, wrapped + ENVELOPE_NONCE_BYTES,
                                                   ENVELOPE_WRAPPED_BYTES - ENVELOPE_NONCE_BYTES, ad, adlen, wrapped,
                                                   kek->k) != 0 ||
        mlen != ENVELOPE_KEY_BYTES) {
        sodium_memzero(k->k, sizeof(k->k));
        return ENVELOPE_EAUTH;
    }
    return ENVELOPE_OK;
}

int envelope_key_unwrap(const struct envelope_key *kek, const unsigned char *wrapped, size_t wrapped_len,
                        const unsigned char *ad, size_t adlen, struct envelope_key **out)
{
    if (kek == NULL || wrapped == NULL || wrapped_len != ENVELOPE_WRAPPED_BYTES || (ad == NULL && adlen > 0))
        return ENVELOPE_EINVAL;
    struct envelope_key *k = key_alloc();
    if (k == NULL)
        return ENVELOPE_ENOMEM;
    if (unwrap_into(kek, wrapped, ad, adlen, k) != ENVELOPE_OK) {
        envelope_key_free(k);
        return ENVELOPE_EAUTH;
    }
    key_seal_memory(k);
    *out = k;
    return ENVELOPE_OK;
}

/*
 * The data key of one seal or open lives in this thread's scratch slot: a
 * sodium_malloc'd page like every key (guard pages, no core dump), made
 * once per thread and wiped after each use, instead of a fresh guarded
 * mapping per body. A year's window opens ~700 sealed blocks; mapping,
 * locking, protecting and unmapping a page for each was over half of the
 * read's CPU time, all of it in the kernel (perf, GET /api/v1/rhythm).
 */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *k) { envelope_key_free(k); }

static void scratch_init(void) { (void)pthread_key_create(&scratch_key, scratch_free); }

static struct envelope_key *scratch_get(void)
{
    struct envelope_key *k;
    (void)pthread_once(&scratch_once, scratch_init);
    if ((k = pthread_getspecific(scratch_key)) != NULL)
        return k;
    if ((k = key_alloc()) == NULL)
        return NULL;
    if (pthread_setspecific(scratch_key, k) != 0) {
        envelope_key_free(k);
        return NULL;
    }
    return k;
}

static void scratch_done(struct envelope_key *k)
{
    if (k != NULL)
        sodium_memzero(k->k, sizeof(k->k));
}

/* ---- associated data ---------------------------------------------------- */

/*
 * AD = label NUL [version as 4 bytes big-endian] len(user) user len(upload)
 * upload. Length prefixes make the encoding injective: no two (user, upload)
 * pairs share an AD, whatever characters the ids hold.
 * Returns the length, or 0 for an invalid binding.
 */
static size_t ad_build(unsigned char ad[AD_MAX], const char *label, size_t label_size, int with_version, int version,
                       const struct envelope_binding *b)
{
    size_t n = 0, ul, pl;
    if (b == NULL || b->user_id == NULL || b->upload_id == NULL)
        return 0;
    ul = strlen(b->user_id);
    pl = strlen(b->upload_id);
    if (ul == 0 || pl == 0 || ul > ENVELOPE_ID_MAX || pl > ENVELOPE_ID_MAX || label_size > 32)
        return 0;
    memcpy(ad, label, label_size); /* label_size counts the NUL */
    n = label_size;
    if (with_version) {
        uint32_t v = (uint32_t)version;
        ad[n++] = (unsigned char)(v >> 24);
        ad[n++] = (unsigned char)(v >> 16);
        ad[n++] = (unsigned char)(v >> 8);
        ad[n++] = (unsigned char)v;
    }
    ad[n++] = (unsigned char)ul;
    memcpy(ad + n, b->user_id, ul);
    n += ul;
    ad[n++] = (unsigned char)pl;
    memcpy(ad + n, b->upload_id, pl);
    n += pl;
    return n;
}

static size_t ad_body(unsigned char ad[AD_MAX], const struct envelope_binding *b)
{
    return ad_build(ad, AD_BODY_LABEL, sizeof(AD_BODY_LABEL), 0, 0, b);
}

static size_t ad_wrap(unsigned char ad[AD_MAX], int version, const struct envelope_binding *b)
{
    if (version < 1)
        return 0;
    return ad_build(ad, AD_WRAP_LABEL, sizeof(AD_WRAP_LABEL), 1, version, b);
}

/* ---- bodies --------------------------------------------------------------- */

int envelope_body_seal(const struct envelope_key *kek, int kek_version, const struct envelope_binding *b,
                       const unsigned char *body, size_t len, struct envelope_sealed *out)
{
    unsigned char adb[AD_MAX], adw[AD_MAX];
    size_t adb_len, adw_len;
    struct envelope_key *dek = NULL;
    unsigned char *ct = NULL;
    unsigned long long clen = 0;
    struct envelope_sealed s;
    int rc;

    if (kek == NULL || out == NULL || (body == NULL && len > 0) || len > ENVELOPE_BODY_MAX)
        return ENVELOPE_EINVAL;
    adb_len = ad_body(adb, b);
    adw_len = ad_wrap(adw, kek_version, b);
    if (adb_len == 0 || adw_len == 0)
        return ENVELOPE_EINVAL;
    memset(&s, 0, sizeof(s));
    if ((dek = scratch_get()) == NULL) {
        rc = ENVELOPE_ENOMEM;
        goto fail;
    }
    crypto_aead_xchacha20poly1305_ietf_keygen(dek->k);
    ct = malloc(len + ENVELOPE_TAG_BYTES);
    if (ct == NULL) {
        rc = ENVELOPE_ENOMEM;
        goto fail;
    }
    randombytes_buf(s.nonce, sizeof(s.nonce));
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, body, len, adb, adb_len, NULL, s.nonce, dek->k);
    if ((rc = envelope_key_wrap(kek, dek, adw, adw_len, s.wrapped_dek)) != ENVELOPE_OK)
        goto fail;
    s.ciphertext = ct;
    s.ciphertext_len = (size_t)clen;
    scratch_done(dek);
    *out = s;
    return ENVELOPE_OK;
fail:
    scratch_done(dek);
    free(ct);
    return rc;
}

int envelope_body_open(const struct envelope_key *kek, int kek_version, const struct envelope_binding *b,
                       const unsigned char *wrapped_dek, size_t wrapped_len, const unsigned char *nonce,
                       size_t nonce_len, const unsigned char *ciphertext, size_t ciphertext_len, unsigned char **body,
                       size_t *body_len)
{
    unsigned char adb[AD_MAX], adw[AD_MAX];
    size_t adb_len, adw_len;
    struct envelope_key *dek = NULL;
    unsigned char *pt = NULL;
    unsigned long long mlen = 0;
    int rc;

    if (kek == NULL || wrapped_dek == NULL || nonce == NULL || ciphertext == NULL || body == NULL || body_len == NULL ||
        wrapped_len != ENVELOPE_WRAPPED_BYTES || nonce_len != ENVELOPE_NONCE_BYTES ||
        ciphertext_len < ENVELOPE_TAG_BYTES || ciphertext_len - ENVELOPE_TAG_BYTES > ENVELOPE_BODY_MAX)
        return ENVELOPE_EINVAL;
    adb_len = ad_body(adb, b);
    adw_len = ad_wrap(adw, kek_version, b);
    if (adb_len == 0 || adw_len == 0)
        return ENVELOPE_EINVAL;
    if ((dek = scratch_get()) == NULL) {
        rc = ENVELOPE_ENOMEM;
        goto fail;
    }
    if ((rc = unwrap_into(kek, wrapped_dek, adw, adw_len, dek)) != 0)
        goto fail;
    /* +1 for a NUL terminator, so JSON parsers can take the body as text. */
    pt = malloc(ciphertext_len - ENVELOPE_TAG_BYTES + 1);
    if (pt == NULL) {
        rc = ENVELOPE_ENOMEM;
        goto fail;
    }
    /* libsodium verifies the tag before writing any plaintext, so pt holds
     * nothing on failure. */
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &mlen, NULL, ciphertext, ciphertext_len, adb, adb_len, nonce,
                                                   dek->k) != 0) {
        rc = ENVELOPE_EAUTH;
        goto fail;
    }
    pt[mlen] = '\0';
    scratch_done(dek);
    *body = pt;
    *body_len = (size_t)mlen;
    return ENVELOPE_OK;
fail:
    scratch_done(dek);
    free(pt);
    return rc;
}

int envelope_dek_rewrap(const struct envelope_key *old_kek, int old_version, const struct envelope_key *new_kek,
                        int new_version, const struct envelope_binding *b, const unsigned char *wrapped_dek,
                        size_t wrapped_len, unsigned char out[ENVELOPE_WRAPPED_BYTES])
{
    unsigned char ado[AD_MAX], adn[AD_MAX];
    size_t ado_len, adn_len;
    struct envelope_key *dek = NULL;
    int rc;

    if (old_kek == NULL || new_kek == NULL || out == NULL)
        return ENVELOPE_EINVAL;
    ado_len = ad_wrap(ado, old_version, b);
    adn_len = ad_wrap(adn, new_version, b);
    if (ado_len == 0 || adn_len == 0)
        return ENVELOPE_EINVAL;
    rc = envelope_key_unwrap(old_kek, wrapped_dek, wrapped_len, ado, ado_len, &dek);
    if (rc != ENVELOPE_OK)
        return rc;
    rc = envelope_key_wrap(new_kek, dek, adn, adn_len, out);
    envelope_key_free(dek);
    return rc;
}

void envelope_sealed_clear(struct envelope_sealed *s)
{
    if (s == NULL)
        return;
    free(s->ciphertext);
    memset(s, 0, sizeof(*s));
}
