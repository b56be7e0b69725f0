/*
 * envelope_test.c — envelope encryption over buffers: round trips, every
 * kind of tampering (ciphertext, nonce, wrapped key, associated data), wrong
 * keys, re-wrapping, and rejection of malformed keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "crypto/envelope.h"

static const char USER_A[] = "0190a1b2-0000-7000-8000-00000000000a";
static const char USER_B[] = "0190a1b2-0000-7000-8000-00000000000b";
static const char UPLOAD_1[] = "0190a1b2-0000-7000-8000-000000000001";
static const char UPLOAD_2[] = "0190a1b2-0000-7000-8000-000000000002";

static const char BODY[] = "{\"data\":[{\"type\":\"heart_rate\",\"value\":72,"
                           "\"unit\":\"count/min\"}],"
                           "\"upload_source\":\"apple_health\"}";

struct fixture {
    struct envelope_key *kek;
    struct envelope_binding b;
    struct envelope_sealed s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (f == NULL || envelope_lib_init() != ENVELOPE_OK || envelope_key_random(&f->kek) != 0)
        return -1;
    f->b.user_id = USER_A;
    f->b.upload_id = UPLOAD_1;
    if (envelope_body_seal(f->kek, 1, &f->b, (const unsigned char *)BODY, strlen(BODY), &f->s) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    envelope_sealed_clear(&f->s);
    envelope_key_free(f->kek);
    free(f);
    return 0;
}

/* Open f->s (or a modified copy of its parts) and return the code. */
static int try_open(const struct envelope_key *kek, int version, const struct envelope_binding *b,
                    const unsigned char *wrapped, size_t wlen, const unsigned char *nonce, size_t nlen,
                    const unsigned char *ct, size_t clen)
{
    unsigned char *body = NULL;
    size_t len = 0;
    int rc = envelope_body_open(kek, version, b, wrapped, wlen, nonce, nlen, ct, clen, &body, &len);
    if (rc == ENVELOPE_OK) {
        assert_non_null(body);
        free(body);
    } else {
        assert_null(body); /* never partial plaintext */
    }
    return rc;
}

/* 1. Round trip at several sizes, including empty and 1 MiB. */
static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 1u << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        unsigned char *in = malloc(n + 1), *out = NULL;
        size_t out_len = 0;
        struct envelope_sealed s;
        assert_non_null(in);
        for (size_t j = 0; j < n; j++)
            in[j] = (unsigned char)(j * 31 + 7);
        assert_int_equal(envelope_body_seal(f->kek, 3, &f->b, in, n, &s), ENVELOPE_OK);
        assert_int_equal(s.ciphertext_len, n + ENVELOPE_TAG_BYTES);
        assert_int_equal(envelope_body_open(f->kek, 3, &f->b, s.wrapped_dek, sizeof(s.wrapped_dek), s.nonce,
                                            sizeof(s.nonce), s.ciphertext, s.ciphertext_len, &out, &out_len),
                         ENVELOPE_OK);
        assert_int_equal(out_len, n);
        if (n > 0)
            assert_memory_equal(out, in, n);
        assert_int_equal(out[n], '\0'); /* terminated for text parsers */
        free(out);
        free(in);
        envelope_sealed_clear(&s);
    }
}

/* 2. The ciphertext holds no plaintext run, and sealing twice differs
 *    (fresh DEK and nonces every time). */
static void test_fresh_keys_and_no_plaintext(void **state)
{
    struct fixture *f = *state;
    struct envelope_sealed s2;
    assert_int_equal(envelope_body_seal(f->kek, 1, &f->b, (const unsigned char *)BODY, strlen(BODY), &s2), ENVELOPE_OK);
    assert_int_equal(s2.ciphertext_len, f->s.ciphertext_len);
    assert_memory_not_equal(s2.ciphertext, f->s.ciphertext, s2.ciphertext_len);
    assert_memory_not_equal(s2.nonce, f->s.nonce, ENVELOPE_NONCE_BYTES);
    assert_memory_not_equal(s2.wrapped_dek, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES);
    assert_null(memmem(f->s.ciphertext, f->s.ciphertext_len, "heart_rate", 10));
    assert_null(memmem(f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, "heart_rate", 10));
    envelope_sealed_clear(&s2);
}

/* 3. Flipping any single bit of the ciphertext (body or tag) is detected. */
static void test_tamper_ciphertext(void **state)
{
    struct fixture *f = *state;
    unsigned char *ct = malloc(f->s.ciphertext_len);
    assert_non_null(ct);
    for (size_t i = 0; i < f->s.ciphertext_len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(ct, f->s.ciphertext, f->s.ciphertext_len);
            ct[i] ^= (unsigned char)(1u << bit);
            assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                                      ENVELOPE_NONCE_BYTES, ct, f->s.ciphertext_len),
                             ENVELOPE_EAUTH);
        }
    }
    /* Truncated (one byte short) and extended ciphertexts. */
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len - 1),
                     ENVELOPE_EAUTH);
    unsigned char *longer = calloc(1, f->s.ciphertext_len + 1);
    assert_non_null(longer);
    memcpy(longer, f->s.ciphertext, f->s.ciphertext_len);
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, longer, f->s.ciphertext_len + 1),
                     ENVELOPE_EAUTH);
    /* Shorter than a tag: refused before any crypto. */
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, 15),
                     ENVELOPE_EINVAL);
    /* Unmodified still opens (the loop restored nothing it should not). */
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_OK);
    free(longer);
    free(ct);
}

/* 4. Any change to the body nonce is detected; a wrong-length nonce refused. */
static void test_tamper_nonce(void **state)
{
    struct fixture *f = *state;
    unsigned char nonce[ENVELOPE_NONCE_BYTES];
    for (size_t i = 0; i < ENVELOPE_NONCE_BYTES; i++) {
        memcpy(nonce, f->s.nonce, sizeof(nonce));
        nonce[i] ^= 0x01;
        assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, nonce, sizeof(nonce),
                                  f->s.ciphertext, f->s.ciphertext_len),
                         ENVELOPE_EAUTH);
    }
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce, 12,
                              f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EINVAL);
}

/* 5. Any change to the wrapped data key (its nonce, encrypted key or tag)
 *    is detected; wrong lengths refused; a wrapped key from another body
 *    does not open this one. */
static void test_tamper_wrapped_key(void **state)
{
    struct fixture *f = *state;
    unsigned char w[ENVELOPE_WRAPPED_BYTES];
    struct envelope_sealed other;
    for (size_t i = 0; i < ENVELOPE_WRAPPED_BYTES; i++) {
        memcpy(w, f->s.wrapped_dek, sizeof(w));
        w[i] ^= 0x80;
        assert_int_equal(try_open(f->kek, 1, &f->b, w, sizeof(w), f->s.nonce, ENVELOPE_NONCE_BYTES, f->s.ciphertext,
                                  f->s.ciphertext_len),
                         ENVELOPE_EAUTH);
    }
    assert_int_equal(try_open(f->kek, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES - 1, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EINVAL);
    /* Swap in the wrapped key of another body with the same binding. */
    assert_int_equal(envelope_body_seal(f->kek, 1, &f->b, (const unsigned char *)BODY, strlen(BODY), &other),
                     ENVELOPE_OK);
    assert_int_equal(try_open(f->kek, 1, &f->b, other.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
    envelope_sealed_clear(&other);
}

/* 6. The associated data binds user, upload and key version: opening with
 *    another user id, another upload id, the two swapped, or another
 *    version number fails. */
static void test_tamper_associated_data(void **state)
{
    struct fixture *f = *state;
    const struct envelope_binding wrong[] = {
        {USER_B, UPLOAD_1}, /* other user */
        {USER_A, UPLOAD_2}, /* other upload */
        {UPLOAD_1, USER_A}, /* swapped */
        {"0190a1b2-0000-7000-8000-00000000000", "a0190a1b2-0000-7000-8000-000000000001"},
        {USER_A, "0190A1B2-0000-7000-8000-000000000001"}, /* case matters */
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        assert_int_equal(try_open(f->kek, 1, &wrong[i], f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                                  ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                         ENVELOPE_EAUTH);
    assert_int_equal(try_open(f->kek, 2, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
}

/* 7. A different key-encryption key is refused. */
static void test_wrong_kek(void **state)
{
    struct fixture *f = *state;
    struct envelope_key *other = NULL;
    unsigned char raw[ENVELOPE_KEY_BYTES];
    assert_int_equal(envelope_key_random(&other), ENVELOPE_OK);
    assert_int_equal(try_open(other, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
    envelope_key_free(other);
    /* An all-zero key: still just a wrong key. */
    memset(raw, 0, sizeof(raw));
    assert_int_equal(envelope_key_from_bytes(raw, sizeof(raw), &other), ENVELOPE_OK);
    assert_int_equal(try_open(other, 1, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, f->s.nonce,
                              ENVELOPE_NONCE_BYTES, f->s.ciphertext, f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
    envelope_key_free(other);
}

/* 8. Re-wrapping moves the data key to a new KEK and version; the body
 *    bytes are unchanged and open under the new pair only. */
static void test_rewrap(void **state)
{
    struct fixture *f = *state;
    struct envelope_key *kek2 = NULL;
    unsigned char w2[ENVELOPE_WRAPPED_BYTES], *out = NULL;
    size_t len = 0;
    assert_int_equal(envelope_key_random(&kek2), ENVELOPE_OK);
    assert_int_equal(envelope_dek_rewrap(f->kek, 1, kek2, 2, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, w2),
                     ENVELOPE_OK);
    assert_int_equal(envelope_body_open(kek2, 2, &f->b, w2, sizeof(w2), f->s.nonce, ENVELOPE_NONCE_BYTES,
                                        f->s.ciphertext, f->s.ciphertext_len, &out, &len),
                     ENVELOPE_OK);
    assert_int_equal(len, strlen(BODY));
    assert_memory_equal(out, BODY, len);
    free(out);
    /* Old KEK or old version number does not open the new wrap. */
    assert_int_equal(try_open(f->kek, 2, &f->b, w2, sizeof(w2), f->s.nonce, ENVELOPE_NONCE_BYTES, f->s.ciphertext,
                              f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
    assert_int_equal(try_open(kek2, 1, &f->b, w2, sizeof(w2), f->s.nonce, ENVELOPE_NONCE_BYTES, f->s.ciphertext,
                              f->s.ciphertext_len),
                     ENVELOPE_EAUTH);
    /* Re-wrap with the wrong old key fails and leaves out untouched. */
    unsigned char w3[ENVELOPE_WRAPPED_BYTES];
    memset(w3, 0xAA, sizeof(w3));
    assert_int_equal(envelope_dek_rewrap(kek2, 1, f->kek, 3, &f->b, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, w3),
                     ENVELOPE_EAUTH);
    /* Re-wrap checks the binding too: another user's wrap does not move. */
    const struct envelope_binding other = {USER_B, UPLOAD_1};
    assert_int_equal(envelope_dek_rewrap(f->kek, 1, kek2, 2, &other, f->s.wrapped_dek, ENVELOPE_WRAPPED_BYTES, w3),
                     ENVELOPE_EAUTH);
    envelope_key_free(kek2);
}

/* 9. Key text: accepted forms, and each malformed form with a clear reason. */
static void test_key_from_base64(void **state)
{
    (void)state;
    unsigned char raw[ENVELOPE_KEY_BYTES];
    char std[64], url[64], nopad[64], wrapped_lines[80], err[160];
    struct envelope_key *k = NULL, *k2 = NULL;
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(0xF0 + i); /* yields '+' and '/' in standard base64 */
    sodium_bin2base64(std, sizeof(std), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(url, sizeof(url), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE);
    sodium_bin2base64(nopad, sizeof(nopad), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(wrapped_lines, sizeof(wrapped_lines), "%.20s\n%s\n", std, std + 20);
    assert_int_equal(envelope_key_from_bytes(raw, sizeof(raw), &k2), ENVELOPE_OK);
    const char *good[] = {std, url, nopad, wrapped_lines};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(envelope_key_from_base64(good[i], &k, err, sizeof(err)), ENVELOPE_OK);
        assert_true(envelope_key_equal(k, k2));
        envelope_key_free(k);
        k = NULL;
    }
    char back[ENVELOPE_KEY_B64_LEN];
    assert_int_equal(envelope_key_to_base64(k2, back, sizeof(back)), ENVELOPE_OK);
    assert_string_equal(back, std);
    envelope_key_free(k2);

    struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {"", "empty"},
        {"not base64 at all!!", "not valid base64"},
        {"AAAAAAAAAAAAAAAAAAAAAA==", "decodes to 16 bytes"},                     /* 16 */
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "decodes to 32 bytes"}, /* control */
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "decodes to 33 bytes"}, /* 33 */
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=garbage", "not valid base64"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*", "not valid base64"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        k = NULL;
        int rc = envelope_key_from_base64(bad[i].text, &k, err, sizeof(err));
        if (strcmp(bad[i].reason, "decodes to 32 bytes") == 0) {
            assert_int_equal(rc, ENVELOPE_OK); /* the all-zero 32-byte control is accepted */
            envelope_key_free(k);
            continue;
        }
        assert_int_equal(rc, ENVELOPE_EINVAL);
        assert_null(k);
        assert_non_null(strstr(err, bad[i].reason));
        assert_non_null(strstr(err, "32"));
    }
    assert_int_equal(envelope_key_from_base64(NULL, &k, err, sizeof(err)), ENVELOPE_EINVAL);
    assert_int_equal(envelope_key_from_bytes(raw, 31, &k), ENVELOPE_EINVAL);
    assert_int_equal(envelope_key_from_bytes(raw, 33, &k), ENVELOPE_EINVAL);
}

/* 10. Bindings: empty or over-long ids and version 0 are refused. */
static void test_bad_arguments(void **state)
{
    struct fixture *f = *state;
    char longid[ENVELOPE_ID_MAX + 2];
    struct envelope_sealed s;
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    const struct envelope_binding bad[] = {{"", UPLOAD_1}, {USER_A, ""}, {NULL, UPLOAD_1}, {USER_A, longid}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(envelope_body_seal(f->kek, 1, &bad[i], (const unsigned char *)"x", 1, &s), ENVELOPE_EINVAL);
    assert_int_equal(envelope_body_seal(f->kek, 0, &f->b, (const unsigned char *)"x", 1, &s), ENVELOPE_EINVAL);
    assert_int_equal(envelope_body_seal(f->kek, 1, NULL, (const unsigned char *)"x", 1, &s), ENVELOPE_EINVAL);
    assert_int_equal(envelope_body_seal(f->kek, 1, &f->b, NULL, 1, &s), ENVELOPE_EINVAL);
    longid[ENVELOPE_ID_MAX] = '\0'; /* exactly the maximum is fine */
    const struct envelope_binding edge = {longid, longid};
    assert_int_equal(envelope_body_seal(f->kek, 1, &edge, (const unsigned char *)"x", 1, &s), ENVELOPE_OK);
    envelope_sealed_clear(&s);
}

/* 11. Derivation is deterministic per (context, id) and separates them. */
static void test_derive(void **state)
{
    struct fixture *f = *state;
    struct envelope_key *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    assert_int_equal(envelope_key_derive(f->kek, "clarkeyr", 1, &a), ENVELOPE_OK);
    assert_int_equal(envelope_key_derive(f->kek, "clarkeyr", 1, &b), ENVELOPE_OK);
    assert_int_equal(envelope_key_derive(f->kek, "clarkeyr", 2, &c), ENVELOPE_OK);
    assert_int_equal(envelope_key_derive(f->kek, "otherctx", 1, &d), ENVELOPE_OK);
    assert_true(envelope_key_equal(a, b));
    assert_false(envelope_key_equal(a, c));
    assert_false(envelope_key_equal(a, d));
    assert_false(envelope_key_equal(a, f->kek));
    envelope_key_free(a);
    envelope_key_free(b);
    envelope_key_free(c);
    envelope_key_free(d);
}

/* 12. Wrap/unwrap with caller associated data. */
static void test_key_wrap(void **state)
{
    struct fixture *f = *state;
    struct envelope_key *k = NULL, *back = NULL;
    unsigned char w[ENVELOPE_WRAPPED_BYTES];
    static const unsigned char ad[] = "ring/v1";
    assert_int_equal(envelope_key_random(&k), ENVELOPE_OK);
    assert_int_equal(envelope_key_wrap(f->kek, k, ad, sizeof(ad), w), ENVELOPE_OK);
    assert_int_equal(envelope_key_unwrap(f->kek, w, sizeof(w), ad, sizeof(ad), &back), ENVELOPE_OK);
    assert_true(envelope_key_equal(k, back));
    envelope_key_free(back);
    back = NULL;
    assert_int_equal(envelope_key_unwrap(f->kek, w, sizeof(w), ad, sizeof(ad) - 1, &back), ENVELOPE_EAUTH);
    assert_null(back);
    assert_int_equal(envelope_key_unwrap(f->kek, w, sizeof(w), NULL, 0, &back), ENVELOPE_EAUTH);
    envelope_key_free(k);
    assert_string_equal(clarity_strerror(ENVELOPE_EAUTH),
                        "authentication failed (wrong key, or data or binding altered)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_keys_and_no_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_ciphertext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_nonce, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_wrapped_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_associated_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_kek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap, setup, teardown),
        cmocka_unit_test(test_key_from_base64),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_derive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_wrap, setup, teardown),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
