/*
 * envelope.h — envelope encryption of raw upload bodies (libsodium).
 *
 * Each body is sealed with its own random 256-bit data key (DEK) by the
 * XChaCha20-Poly1305 IETF AEAD (libsodium "XChaCha20-Poly1305 construction";
 * draft-irtf-cfrg-xchacha-03 over the ChaCha20-Poly1305 AEAD of RFC 8439).
 * The associated data binds the ciphertext to its user id and upload id, so a
 * body moved to another row, user or upload fails to open. The DEK itself is
 * wrapped (encrypted) by a key-encryption key (KEK) with the same AEAD; the
 * wrap's associated data names the KEK version, the user and the upload.
 * Rotation therefore re-wraps the 72-byte wrapped DEK and never touches the
 * body (envelope_dek_rewrap). docs/security.md has the whole design.
 *
 * Stored form of one body (the columns of store_raw_upload):
 *   wrapped_dek = wrap nonce (24) || AEAD(KEK, DEK, AD_wrap) (32 + 16 tag) = 72 bytes
 *   nonce       = body nonce (24), random per body
 *   ciphertext  = AEAD(DEK, body, AD_body) = body length + 16 tag
 * Nonces are random: 192 bits make collisions negligible for any number of
 * messages under one key (libsodium docs, "XChaCha20-Poly1305").
 *
 * Everything here is a pure function over buffers except the random numbers;
 * nothing logs. Keys live in `struct envelope_key`, held in sodium_malloc'd
 * memory (guard pages, mlock'd, zeroed on free) and read-only after creation.
 * Call envelope_lib_init once (it is sodium_init; safe to repeat, thread-safe).
 */
#ifndef CLARITY_CRYPTO_ENVELOPE_H
#define CLARITY_CRYPTO_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define ENVELOPE_KEY_BYTES 32   /* crypto_aead_xchacha20poly1305_ietf_KEYBYTES */
#define ENVELOPE_NONCE_BYTES 24 /* crypto_aead_xchacha20poly1305_ietf_NPUBBYTES */
#define ENVELOPE_TAG_BYTES 16   /* crypto_aead_xchacha20poly1305_ietf_ABYTES */
/* A wrapped key: nonce || encrypted key || tag. */
#define ENVELOPE_WRAPPED_BYTES (ENVELOPE_NONCE_BYTES + ENVELOPE_KEY_BYTES + ENVELOPE_TAG_BYTES)
/* Longest user id / upload id bound in associated data (UUIDs are 36). */
#define ENVELOPE_ID_MAX 255
/* Largest body sealed (1 GiB): far above any accepted request size. */
#define ENVELOPE_BODY_MAX ((size_t)1 << 30)

/* Return codes: ENVELOPE_E* in core/err.h (0 is ENVELOPE_OK). */

/* An opaque 256-bit secret key in protected memory. */
struct envelope_key;

/* What a sealed body is bound to. Both borrowed, 1..ENVELOPE_ID_MAX bytes. */
struct envelope_binding {
    const char *user_id;
    const char *upload_id;
};

/* Initialise libsodium. 0, or ENVELOPE_EINIT. */
int envelope_lib_init(void);

/* ---- keys ------------------------------------------------------------- */

/* A fresh random key. 0 and *out (free with envelope_key_free), or ENOMEM. */
int envelope_key_random(struct envelope_key **out);

/* A key from exactly ENVELOPE_KEY_BYTES raw bytes (copied). 0 and *out, or
 * ENVELOPE_EINVAL for any other length. */
int envelope_key_from_bytes(const unsigned char *bytes, size_t len, struct envelope_key **out);

/*
 * A key from base64 text (standard or URL-safe alphabet, padded or not;
 * spaces and line breaks ignored) that must decode to exactly 32 bytes.
 * Returns 0 and *out, or ENVELOPE_EINVAL with a one-line reason in err
 * ("not valid base64", "decodes to 16 bytes, expected 32"). The reason never
 * quotes the text. err may be NULL.
 */
int envelope_key_from_base64(const char *text, struct envelope_key **out, char *err, size_t errlen);

/* Base64 (standard, padded) of the key into out, which holds at least
 * ENVELOPE_KEY_B64_LEN bytes. For persisting a generated development key
 * only; the caller must wipe out with sodium_memzero. 0 or ENVELOPE_EINVAL. */
#define ENVELOPE_KEY_B64_LEN 45
int envelope_key_to_base64(const struct envelope_key *k, char *out, size_t outlen);

/*
 * Derive a subkey from key for one purpose (libsodium crypto_kdf, BLAKE2b):
 * context is exactly 8 characters naming the purpose, id the subkey number.
 * 0 and *out, or ENVELOPE_EINVAL / ENOMEM.
 */
int envelope_key_derive(const struct envelope_key *key, const char context[8], uint64_t id, struct envelope_key **out);

/* 1 when both keys hold the same bytes (constant time), else 0. */
int envelope_key_equal(const struct envelope_key *a, const struct envelope_key *b);

/* Zero and free; accepts NULL. */
void envelope_key_free(struct envelope_key *k);

/* ---- key wrapping ------------------------------------------------------- */

/*
 * Wrap key under kek with associated data ad (adlen bytes, may be 0): writes
 * ENVELOPE_WRAPPED_BYTES into out. A fresh random nonce each call.
 * 0 or ENVELOPE_EINVAL.
 */
int envelope_key_wrap(const struct envelope_key *kek, const struct envelope_key *key, const unsigned char *ad,
                      size_t adlen, unsigned char out[ENVELOPE_WRAPPED_BYTES]);

/*
 * Unwrap a wrapped key made by envelope_key_wrap with the same kek and ad.
 * 0 and *out (caller frees), ENVELOPE_EINVAL for a wrong length, or
 * ENVELOPE_EAUTH when kek or ad differ or the bytes were changed.
 */
int envelope_key_unwrap(const struct envelope_key *kek, const unsigned char *wrapped, size_t wrapped_len,
                        const unsigned char *ad, size_t adlen, struct envelope_key **out);

/* ---- bodies ------------------------------------------------------------- */

/* A sealed body; ciphertext is malloc'd, owned by the struct. */
struct envelope_sealed {
    unsigned char wrapped_dek[ENVELOPE_WRAPPED_BYTES];
    unsigned char nonce[ENVELOPE_NONCE_BYTES];
    unsigned char *ciphertext; /* len + ENVELOPE_TAG_BYTES bytes */
    size_t ciphertext_len;
};

/*
 * Seal body (len bytes, may be 0; at most ENVELOPE_BODY_MAX) for binding b
 * with a new random DEK, and wrap the DEK under kek, which is version
 * kek_version (>= 1) of the key ring. On success fills *out (free its
 * ciphertext with envelope_sealed_clear) and returns 0; otherwise
 * ENVELOPE_EINVAL / ENOMEM and *out is untouched. The DEK is wiped before
 * return.
 */
int envelope_body_seal(const struct envelope_key *kek, int kek_version, const struct envelope_binding *b,
                       const unsigned char *body, size_t len, struct envelope_sealed *out);

/*
 * Open a sealed body: unwrap the DEK with kek (version kek_version), then
 * decrypt and verify the body against binding b. Lengths are checked first
 * (wrapped_len must be ENVELOPE_WRAPPED_BYTES, nonce_len ENVELOPE_NONCE_BYTES).
 * On success *body is a new malloc'd buffer of *body_len bytes plus a NUL
 * terminator that is not counted (caller frees; wipe it if it must not
 * linger). ENVELOPE_EAUTH when the key, the binding or any byte is wrong:
 * no partial plaintext is ever returned.
 */
int envelope_body_open(const struct envelope_key *kek, int kek_version, const struct envelope_binding *b,
                       const unsigned char *wrapped_dek, size_t wrapped_len, const unsigned char *nonce,
                       size_t nonce_len, const unsigned char *ciphertext, size_t ciphertext_len, unsigned char **body,
                       size_t *body_len);

/*
 * Re-wrap a body's DEK from (old_kek, old_version) to (new_kek, new_version)
 * without touching the body: writes ENVELOPE_WRAPPED_BYTES into out.
 * 0, ENVELOPE_EINVAL, or ENVELOPE_EAUTH when the old wrap does not open.
 */
int envelope_dek_rewrap(const struct envelope_key *old_kek, int old_version, const struct envelope_key *new_kek,
                        int new_version, const struct envelope_binding *b, const unsigned char *wrapped_dek,
                        size_t wrapped_len, unsigned char out[ENVELOPE_WRAPPED_BYTES]);

/* Free the ciphertext and zero the struct; accepts NULL. */
void envelope_sealed_clear(struct envelope_sealed *s);

#endif
