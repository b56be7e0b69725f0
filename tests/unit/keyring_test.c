/*
 * keyring_test.c — the key ring over the real SQLite store: raw uploads
 * sealed and opened, the database file scanned for plaintext, tampering in
 * the database detected, wrong master keys refused, rotation and batch
 * re-wrapping keeping every upload readable, the health check's 90-day
 * warning, and the development key file.
 *
 * SQLite by default (a fresh directory under $CLARITY_TEST_TMP per case);
 * PostgreSQL when CLARITY_TEST_PG_URL is set (scripts/pg-test-server), each
 * case from an empty public schema. The file scan is SQLite-only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <zlib.h>
#include <zstd.h>

#include "core/config.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "crypto/envelope.h"
#include "crypto/keyring.h"
#include "store/block.h"
#include "store/db.h"
#include "store/migrate.h"
#include "store/sealed.h"
#include "store/store.h"

#define NUSERS 2

struct fixture {
    char dir[512];
    char url[600];
    struct store *st;
    struct envelope_key *master;
    struct keyring *ring;
    char users[NUSERS][STORE_ID_LEN];
    char emails[NUSERS][64];
};

static int is_pg(void) { return getenv("CLARITY_TEST_PG_URL") != NULL; }

/* SQL for a blob of n zero bytes (n an SQL expression), per backend. */
static void zeros(char *out, size_t size, const char *n)
{
    if (is_pg())
        snprintf(out, size, "decode(repeat('00', %s), 'hex')", n);
    else
        snprintf(out, size, "zeroblob(%s)", n);
}

static void store_up(struct fixture *f)
{
    char err[256];
    assert_int_equal(store_open(f->url, NULL, &f->st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(f->st, NULL, NULL, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    const char *base = getenv("CLARITY_TEST_TMP");
    struct fixture *f = calloc(1, sizeof(*f));
    struct store_tx *tx = NULL;
    char err[256];
    if (f == NULL)
        return -1;
    if (base == NULL)
        base = "/tmp";
    mkdir(base, 0700);
    snprintf(f->dir, sizeof(f->dir), "%s/keyring_test_XXXXXX", base);
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->url, sizeof(f->url), "sqlite:%s/clarity.db", f->dir);
    if (is_pg()) {
        snprintf(f->url, sizeof(f->url), "%s", getenv("CLARITY_TEST_PG_URL"));
        assert_int_equal(store_open(f->url, NULL, &f->st, err, sizeof(err)), 0);
        static const char reset[] = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;";
        assert_int_equal(store_admin_exec(f->st, reset, err, sizeof(err)), 0);
        store_close(f->st); /* prepared statements name dropped tables */
        f->st = NULL;
    }
    store_up(f);
    assert_int_equal(envelope_key_random(&f->master), 0);
    assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    for (int i = 0; i < NUSERS; i++) {
        struct store_user u;
        memset(&u, 0, sizeof(u));
        assert_int_equal(uuid_v7(u.id), 0);
        memcpy(f->users[i], u.id, sizeof(u.id));
        snprintf(f->emails[i], sizeof(f->emails[i]), "person%d.%.8s@example.org", i, u.id + 28);
        snprintf(u.email, sizeof(u.email), "%s", f->emails[i]);
        snprintf(u.password_hash, sizeof(u.password_hash), "x");
        assert_int_equal(store_user_insert(tx, &u), 0);
    }
    assert_int_equal(store_tx_commit(tx), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    keyring_close(f->ring);
    store_close(f->st);
    envelope_key_free(f->master);
    free(f);
    return 0;
}

/* Create an upload row for user and put body through the ring, in one
 * transaction (the shape of the real upload path). */
static void put_upload(struct fixture *f, struct keyring *ring, const char *user, char id[STORE_ID_LEN],
                       const char *body)
{
    struct store_tx *tx = NULL;
    struct store_upload u;
    memset(&u, 0, sizeof(u));
    assert_int_equal(uuid_v7(id), 0);
    snprintf(u.id, sizeof(u.id), "%s", id);
    snprintf(u.user_id, sizeof(u.user_id), "%s", user);
    snprintf(u.source, sizeof(u.source), "healthkit");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_upload_insert(tx, &u), 0);
    assert_int_equal(
        keyring_raw_upload_put(ring, tx, user, id, "application/json", (const unsigned char *)body, strlen(body)), 0);
    assert_int_equal(store_tx_commit(tx), 0);
}

/* Read and decrypt; returns the code, *out (caller frees) on success. */
static int get_upload(struct fixture *f, struct keyring *ring, const char *id, const char *user, char **out)
{
    struct store_tx *tx = NULL;
    unsigned char *body = NULL;
    size_t len = 0;
    char ct[64];
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    int rc = keyring_raw_upload_get(ring, tx, id, user, &body, &len, ct);
    store_tx_rollback(tx);
    if (rc == 0) {
        assert_string_equal(ct, "application/json");
        assert_int_equal(strlen((char *)body), len);
        *out = (char *)body;
    }
    return rc;
}

static void expect_body(struct fixture *f, struct keyring *ring, const char *id, const char *body)
{
    char *got = NULL;
    assert_int_equal(get_upload(f, ring, id, NULL, &got), 0);
    assert_string_equal(got, body);
    free(got);
}

static void raw_row(struct fixture *f, const char *id, struct store_raw_upload *r)
{
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_raw_upload_get(tx, id, r), 0);
    store_tx_rollback(tx);
}

__attribute__((format(printf, 2, 3))) static void admin(struct fixture *f, const char *fmt, ...)
{
    char sql[1024], err[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
}

/* 1. A fresh database gets version 1; bodies round-trip; another user's
 *    upload answers not found; ids are checked. */
static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    char id[STORE_ID_LEN], *got = NULL;
    struct keyring_version *v = NULL;
    size_t n = 0;
    int active = 0;
    const char *body = "{\"data\":[{\"type\":\"steps\",\"value\":5400}]}";

    assert_int_equal(keyring_status_list(f->ring, &v, &n, &active), 0);
    assert_int_equal(n, 1);
    assert_int_equal(active, 1);
    assert_int_equal(v[0].version, 1);
    assert_string_equal(v[0].status, "active");
    assert_string_equal(v[0].algorithm, KEYRING_ALGORITHM);
    assert_true(v[0].opens);
    assert_int_equal(v[0].age_days, 0);
    free(v);

    put_upload(f, f->ring, f->users[0], id, body);
    expect_body(f, f->ring, id, body);
    assert_int_equal(get_upload(f, f->ring, id, f->users[0], &got), 0);
    free(got);
    assert_int_equal(get_upload(f, f->ring, id, f->users[1], &got), STORE_ENOTFOUND);

    struct store_raw_upload r;
    memset(&r, 0, sizeof(r));
    raw_row(f, id, &r);
    assert_int_equal(r.key_version, 1);
    assert_int_equal(r.wrapped_dek_len, ENVELOPE_WRAPPED_BYTES);
    assert_int_equal(r.nonce_len, ENVELOPE_NONCE_BYTES);
    /* A short body does not deflate: stored as it is behind the 4-byte mark. */
    assert_int_equal(r.ciphertext_len, 4 + strlen(body) + ENVELOPE_TAG_BYTES);
    store_raw_upload_clear(&r);

    struct store_tx *tx = NULL;
    char longid[STORE_ID_LEN + 4];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(keyring_raw_upload_seal(f->ring, tx, f->users[0], longid, NULL, (const unsigned char *)"x", 1, &r),
                     KEYRING_EINVAL);
    assert_int_equal(keyring_raw_upload_seal(f->ring, tx, "", id, NULL, (const unsigned char *)"x", 1, &r),
                     KEYRING_EINVAL);
    store_tx_rollback(tx);
    assert_string_equal(clarity_strerror(STORE_ENOTFOUND), clarity_strerror(STORE_ENOTFOUND));
}

/* 1b. Sealed blobs (sample blocks, analyses, insights): round-trip, and
 *     any other user, day, block number, block version or byte fails. */
static void test_blob_binding(void **state)
{
    struct fixture *f = *state;
    struct store_tx *tx = NULL;
    const char *plain = "heart_rate 61 62 63 steps 5400";
    char bound[KEYRING_BINDING_LEN], other[KEYRING_BINDING_LEN];
    unsigned char *blob = NULL, *got = NULL;
    size_t blen = 0, glen = 0;

    keyring_block_binding(19700, 0, 1, bound);
    assert_string_equal(bound, "block/19700/0/v1");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(
        keyring_blob_seal(f->ring, tx, f->users[0], bound, (const unsigned char *)plain, strlen(plain), &blob, &blen),
        0);
    assert_int_equal(blen, strlen(plain) + KEYRING_BLOB_OVERHEAD);
    assert_null(memmem(blob, blen, "heart_rate", 10));
    assert_int_equal(keyring_blob_open(f->ring, tx, f->users[0], bound, blob, blen, &got, &glen), 0);
    assert_int_equal(glen, strlen(plain));
    assert_string_equal((char *)got, plain);
    free(got);
    got = NULL;
    assert_int_equal(keyring_blob_open(f->ring, tx, f->users[1], bound, blob, blen, &got, &glen), KEYRING_EAUTH);
    const int64_t alt[][3] = {{19701, 0, 1}, {19700, 1, 1}, {19700, 0, 2}};
    for (size_t i = 0; i < 3; i++) {
        keyring_block_binding(alt[i][0], alt[i][1], (int)alt[i][2], other);
        assert_int_equal(keyring_blob_open(f->ring, tx, f->users[0], other, blob, blen, &got, &glen), KEYRING_EAUTH);
    }
    for (size_t i = 0; i < blen; i++) {
        blob[i] ^= 0x20;
        int rc = keyring_blob_open(f->ring, tx, f->users[0], bound, blob, blen, &got, &glen);
        assert_true(rc == KEYRING_EAUTH || rc == KEYRING_ESTATE);
        blob[i] ^= 0x20;
    }
    assert_int_equal(keyring_blob_open(f->ring, tx, f->users[0], bound, blob, blen - 1, &got, &glen), KEYRING_EAUTH);
    assert_int_equal(keyring_blob_open(f->ring, tx, f->users[0], bound, blob, 3, &got, &glen), KEYRING_EAUTH);
    assert_int_equal(keyring_blob_seal(f->ring, tx, f->users[0], "", blob, 1, &got, &glen), KEYRING_EINVAL);
    assert_null(got);
    store_tx_rollback(tx);
    free(blob);
}

/* Store plain as the sealed plaintext of a new upload of user 0, the
 * envelope the ring writes, but without raw_pack in between: how bodies
 * sealed by an earlier release (no mark, or a zlib mark) sit in the table.
 * keyring_blob_seal with the upload id as binding is that envelope: its
 * parts are unpacked into the row's columns. */
static void put_sealed_plain(struct fixture *f, const unsigned char *plain, size_t plen, char id[STORE_ID_LEN])
{
    struct store_tx *tx = NULL;
    struct store_upload u;
    struct store_raw_upload r;
    memset(&u, 0, sizeof(u));
    assert_int_equal(uuid_v7(u.id), 0);
    snprintf(u.user_id, sizeof(u.user_id), "%s", f->users[0]);
    snprintf(u.source, sizeof(u.source), "healthkit");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_upload_insert(tx, &u), 0);
    unsigned char *blob = NULL;
    size_t blen = 0;
    assert_int_equal(keyring_blob_seal(f->ring, tx, f->users[0], u.id, plain, plen, &blob, &blen), 0);
    unsigned char wrapped[ENVELOPE_WRAPPED_BYTES], nonce[ENVELOPE_NONCE_BYTES];
    memcpy(wrapped, blob + 5, sizeof(wrapped));
    memcpy(nonce, blob + 5 + sizeof(wrapped), sizeof(nonce));
    memset(&r, 0, sizeof(r));
    snprintf(r.upload_id, sizeof(r.upload_id), "%s", u.id);
    snprintf(r.user_id, sizeof(r.user_id), "%s", f->users[0]);
    snprintf(r.content_type, sizeof(r.content_type), "application/json");
    r.key_version = blob[1];
    r.wrapped_dek = wrapped;
    r.wrapped_dek_len = sizeof(wrapped);
    r.nonce = nonce;
    r.nonce_len = sizeof(nonce);
    r.ciphertext = blob + 5 + sizeof(wrapped) + sizeof(nonce);
    r.ciphertext_len = blen - 5 - sizeof(wrapped) - sizeof(nonce);
    assert_int_equal(store_raw_upload_put(tx, &r), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    free(blob);
    memcpy(id, u.id, STORE_ID_LEN);
}

/* The sealed plaintext of upload id (what raw_pack made), opened with the
 * blob envelope it shares; *len bytes, caller frees. */
static unsigned char *sealed_plain(struct fixture *f, const char *id, size_t *len)
{
    struct store_raw_upload r;
    struct store_tx *tx = NULL;
    memset(&r, 0, sizeof(r));
    raw_row(f, id, &r);
    size_t blen = 5 + ENVELOPE_WRAPPED_BYTES + ENVELOPE_NONCE_BYTES + r.ciphertext_len;
    unsigned char *blob = malloc(blen), *plain = NULL;
    assert_non_null(blob);
    blob[0] = KEYRING_BLOB_FORMAT;
    for (int i = 0; i < 4; i++)
        blob[1 + i] = (unsigned char)((uint32_t)r.key_version >> (8 * i));
    memcpy(blob + 5, r.wrapped_dek, ENVELOPE_WRAPPED_BYTES);
    memcpy(blob + 5 + ENVELOPE_WRAPPED_BYTES, r.nonce, ENVELOPE_NONCE_BYTES);
    memcpy(blob + 5 + ENVELOPE_WRAPPED_BYTES + ENVELOPE_NONCE_BYTES, r.ciphertext, r.ciphertext_len);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(keyring_blob_open(f->ring, tx, r.user_id, r.upload_id, blob, blen, &plain, len), 0);
    store_tx_rollback(tx);
    free(blob);
    store_raw_upload_clear(&r);
    return plain;
}

/* 1c. Raw bodies are compressed inside the seal: a HealthKit-sized JSON
 *     body shrinks, every form round-trips (deflated, stored, empty, a body
 *     that itself starts with the mark), and a body sealed before the change
 *     (no mark) still opens as it was. */
static void test_raw_body_compressed(void **state)
{
    struct fixture *f = *state;
    char id[STORE_ID_LEN], *got = NULL;
    size_t cap = 200000, w = 0;
    char *body = malloc(cap);
    assert_non_null(body);
    w += (size_t)snprintf(body + w, cap - w, "{\"quantity_samples\":[");
    for (int k = 0; k < 1000; k++)
        w += (size_t)snprintf(body + w, cap - w,
                              "%s{\"uuid\":\"%08X-0000-4000-8000-%012X\",\"identifier\":"
                              "\"HKQuantityTypeIdentifierHeartRate\",\"value\":%d,\"unit\":\"count/min\","
                              "\"start_date\":\"2026-11-01T%02d:%02d:00Z\"}",
                              k ? "," : "", (unsigned)k * 2654435761u, (unsigned)k * 40503u, 50 + k % 60, k / 60 % 24,
                              k % 60);
    snprintf(body + w, cap - w, "]}");
    put_upload(f, f->ring, f->users[0], id, body);
    struct store_raw_upload r;
    memset(&r, 0, sizeof(r));
    raw_row(f, id, &r);
    assert_true(r.ciphertext_len < strlen(body) / 4);
    store_raw_upload_clear(&r);
    expect_body(f, f->ring, id, body);

    /* Written as zstd (method '2'): a frame with its content size. */
    size_t plen = 0;
    unsigned char *packed = sealed_plain(f, id, &plen);
    assert_true(plen > 8);
    assert_memory_equal(packed, "\0CZ2", 4);
    assert_int_equal(ZSTD_getFrameContentSize(packed + 4, plen - 4), strlen(body));
    free(packed);

    put_upload(f, f->ring, f->users[0], id, "");
    expect_body(f, f->ring, id, "");

    /* A body sealed before compression: the envelope over the body alone. */
    const char *legacy = "{\"data\":[{\"type\":\"steps\",\"value\":1}]}";
    char lid[STORE_ID_LEN];
    put_sealed_plain(f, (const unsigned char *)legacy, strlen(legacy), lid);
    expect_body(f, f->ring, lid, legacy);

    /* A body sealed with zlib (method '1', before zstd) still opens. */
    uLongf zl = compressBound((uLong)strlen(body));
    unsigned char *zp = malloc(4 + zl);
    assert_non_null(zp);
    memcpy(zp, "\0CZ1", 4);
    assert_int_equal(compress2(zp + 4, &zl, (const Bytef *)body, (uLong)strlen(body), 1), Z_OK);
    put_sealed_plain(f, zp, 4 + zl, lid);
    expect_body(f, f->ring, lid, body);
    /* ... and a cut zlib stream is refused. */
    put_sealed_plain(f, zp, 4 + zl / 2, lid);
    assert_int_equal(get_upload(f, f->ring, lid, NULL, &got), KEYRING_EAUTH);
    free(zp);

    /* zstd frames that are cut, padded, or do not state their size: refused. */
    size_t zb = ZSTD_compressBound(strlen(body));
    unsigned char *zs = malloc(4 + zb + 1);
    assert_non_null(zs);
    memcpy(zs, "\0CZ2", 4);
    size_t zn = ZSTD_compress(zs + 4, zb, body, strlen(body), 1);
    assert_false(ZSTD_isError(zn));
    put_sealed_plain(f, zs, 4 + zn, lid);
    expect_body(f, f->ring, lid, body); /* as written: opens */
    put_sealed_plain(f, zs, 4 + zn - 1, lid);
    assert_int_equal(get_upload(f, f->ring, lid, NULL, &got), KEYRING_EAUTH);
    zs[4 + zn] = 0;
    put_sealed_plain(f, zs, 4 + zn + 1, lid);
    assert_int_equal(get_upload(f, f->ring, lid, NULL, &got), KEYRING_EAUTH);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    assert_non_null(cc);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0)));
    ZSTD_outBuffer ob = {zs + 4, zb, 0};
    ZSTD_inBuffer ib = {body, strlen(body), 0};
    assert_int_equal(ZSTD_compressStream2(cc, &ob, &ib, ZSTD_e_end), 0);
    ZSTD_freeCCtx(cc);
    assert_int_equal(ZSTD_getFrameContentSize(zs + 4, ob.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    put_sealed_plain(f, zs, 4 + ob.pos, lid);
    assert_int_equal(get_upload(f, f->ring, lid, NULL, &got), KEYRING_EAUTH);
    put_sealed_plain(f, (const unsigned char *)"\0CZ3abc", 7, lid); /* an unknown method */
    assert_int_equal(get_upload(f, f->ring, lid, NULL, &got), KEYRING_EAUTH);
    free(zs);

    struct store_tx *tx = NULL;
    memset(&r, 0, sizeof(r));
    char uid_[STORE_ID_LEN];
    memcpy(uid_, lid, STORE_ID_LEN);
    /* A new body that itself begins with the mark is wrapped, not mistaken. */
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    memset(&r, 0, sizeof(r));
    assert_int_equal(
        keyring_raw_upload_seal(f->ring, tx, f->users[0], uid_, NULL, (const unsigned char *)"\0CZ1abc", 7, &r), 0);
    unsigned char *out = NULL;
    size_t olen = 0;
    assert_int_equal(keyring_raw_upload_open(f->ring, tx, &r, &out, &olen), 0);
    assert_int_equal(olen, 7);
    assert_memory_equal(out, "\0CZ1abc", 7);
    free(out);
    store_raw_upload_clear(&r);
    store_tx_rollback(tx);
    free(body);
    (void)got;
}

/* 2. Another ENCRYPTION_KEY is refused at open, with a message that says
 *    so; the right key opens a second ring over the same data. */
static void test_wrong_master_refused(void **state)
{
    struct fixture *f = *state;
    struct envelope_key *other = NULL;
    struct keyring *ring2 = NULL;
    char id[STORE_ID_LEN], err[256] = "";
    const char *body = "{\"sleep\":\"asleep\"}";

    put_upload(f, f->ring, f->users[0], id, body);
    assert_int_equal(envelope_key_random(&other), 0);
    assert_int_equal(keyring_open(f->st, other, &ring2, err, sizeof(err)), KEYRING_EAUTH);
    assert_null(ring2);
    assert_non_null(strstr(err, "ENCRYPTION_KEY does not open key-ring version 1"));
    envelope_key_free(other);

    assert_int_equal(keyring_open(f->st, f->master, &ring2, err, sizeof(err)), 0);
    expect_body(f, ring2, id, body);
    keyring_close(ring2);
}

/* Scan every file in dir (the database, its WAL and shared memory) for
 * needle; returns how many files contain it. */
static int files_containing(const char *dir, const void *needle, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int hits = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[1024];
        struct stat sb;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0)
            continue;
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        unsigned char *buf = malloc((size_t)sb.st_size);
        assert_non_null(buf);
        size_t got = fread(buf, 1, (size_t)sb.st_size, fp);
        fclose(fp);
        if (memmem(buf, got, needle, n) != NULL)
            hits++;
        free(buf);
    }
    closedir(d);
    return hits;
}

/* 3. The database files on disk hold no plaintext of an uploaded body: not
 *    the whole body, not any 16-byte window of it (checked for every window),
 *    while the store is open (WAL) and after it is closed (checkpointed).
 *    The scanner is proven to work by finding a value that is stored in
 *    clear (the user's email). */
static void test_database_file_has_no_plaintext(void **state)
{
    struct fixture *f = *state;
    char id[STORE_ID_LEN], err[256];
    char body[2048];
    int w = snprintf(body, sizeof(body),
                     "{\"data\":[{\"type\":\"heart_rate\",\"value\":71.5,\"unit\":\"count/min\","
                     "\"note\":\"PLAINTEXT-CANARY-7f3a9c\"},{\"type\":\"blood_oxygen\","
                     "\"value\":0.97},{\"type\":\"mood\",\"value\":\"anxious about diagnosis\"}");
    while (w < (int)sizeof(body) - 64)
        w += snprintf(body + w, sizeof(body) - (size_t)w, ",{\"type\":\"steps\",\"value\":%d}", w);
    snprintf(body + w, sizeof(body) - (size_t)w, "]}");

    put_upload(f, f->ring, f->users[0], id, body);
    if (is_pg()) {
        expect_body(f, f->ring, id, body);
        skip(); /* PostgreSQL's files are the server's; the scan is SQLite's */
    }
    for (int pass = 0; pass < 2; pass++) {
        /* Positive control: clear-text columns are visible to this scan. */
        assert_true(files_containing(f->dir, f->emails[0], strlen(f->emails[0])) > 0);
        assert_int_equal(files_containing(f->dir, body, strlen(body)), 0);
        assert_int_equal(files_containing(f->dir, "PLAINTEXT-CANARY", 16), 0);
        assert_int_equal(files_containing(f->dir, "anxious about diagnosis", 23), 0);
        for (size_t i = 0; i + 16 <= strlen(body); i += 16)
            assert_int_equal(files_containing(f->dir, body + i, 16), 0);
        if (pass == 0) {
            /* Close everything: SQLite checkpoints the WAL into the main file. */
            keyring_close(f->ring);
            f->ring = NULL;
            store_close(f->st);
            f->st = NULL;
            store_up(f);
            assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
        }
    }
    expect_body(f, f->ring, id, body);
}

/* 4. Tampering inside the database is detected: the row moved to another
 *    user, wrapped keys swapped between rows, ciphertext or nonce changed,
 *    the key version changed, a key-ring entry changed. */
static void test_tampering_in_database(void **state)
{
    struct fixture *f = *state;
    char a[STORE_ID_LEN], b[STORE_ID_LEN], c[STORE_ID_LEN], d[STORE_ID_LEN], e[STORE_ID_LEN];
    char *got = NULL, err[256];
    int v = 0;

    put_upload(f, f->ring, f->users[0], a, "{\"a\":1}");
    put_upload(f, f->ring, f->users[0], b, "{\"b\":2}");
    put_upload(f, f->ring, f->users[0], c, "{\"c\":3}");
    put_upload(f, f->ring, f->users[0], d, "{\"d\":4}");
    put_upload(f, f->ring, f->users[0], e, "{\"e\":5}");

    /* Moved to another user (other user id in the associated data). */
    admin(f, "UPDATE raw_uploads SET user_id = '%s' WHERE upload_id = '%s'", f->users[1], a);
    assert_int_equal(get_upload(f, f->ring, a, NULL, &got), KEYRING_EAUTH);
    assert_int_equal(get_upload(f, f->ring, a, f->users[1], &got), KEYRING_EAUTH);

    /* Wrapped keys swapped between two rows of the same user. */
    admin(f,
          "UPDATE raw_uploads SET wrapped_dek = (SELECT wrapped_dek FROM raw_uploads"
          " WHERE upload_id = '%s') WHERE upload_id = '%s'",
          c, b);
    assert_int_equal(get_upload(f, f->ring, b, NULL, &got), KEYRING_EAUTH);
    expect_body(f, f->ring, c, "{\"c\":3}");

    /* Ciphertext and nonce rewritten. */
    char zc[128], zn[128], zk[128];
    zeros(zc, sizeof(zc), "length(ciphertext)");
    zeros(zn, sizeof(zn), "24");
    zeros(zk, sizeof(zk), "72");
    admin(f, "UPDATE raw_uploads SET ciphertext = %s WHERE upload_id = '%s'", zc, c);
    assert_int_equal(get_upload(f, f->ring, c, NULL, &got), KEYRING_EAUTH);
    admin(f, "UPDATE raw_uploads SET nonce = %s WHERE upload_id = '%s'", zn, d);
    assert_int_equal(get_upload(f, f->ring, d, NULL, &got), KEYRING_EAUTH);
    /* Parts of the wrong size or missing: also an authentication failure. */
    char z10[128];
    zeros(z10, sizeof(z10), "10");
    admin(f, "UPDATE raw_uploads SET wrapped_dek = %s WHERE upload_id = '%s'", z10, d);
    assert_int_equal(get_upload(f, f->ring, d, NULL, &got), KEYRING_EAUTH);
    admin(f, "UPDATE raw_uploads SET wrapped_dek = NULL, nonce = NULL WHERE upload_id = '%s'", d);
    assert_int_equal(get_upload(f, f->ring, d, NULL, &got), KEYRING_EAUTH);
    admin(f, "UPDATE raw_uploads SET ciphertext = %s WHERE upload_id = '%s'", z10, c);
    assert_int_equal(get_upload(f, f->ring, c, NULL, &got), KEYRING_EAUTH);

    /* Key version: an existing other version fails authentication; a
     * version the ring does not have is a state error, not a crash. */
    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    admin(f, "UPDATE raw_uploads SET key_version = 2 WHERE upload_id = '%s'", e);
    assert_int_equal(get_upload(f, f->ring, e, NULL, &got), KEYRING_EAUTH);
    admin(f, "UPDATE raw_uploads SET key_version = 99 WHERE upload_id = '%s'", e);
    assert_int_equal(get_upload(f, f->ring, e, NULL, &got), KEYRING_ESTATE);
    admin(f, "UPDATE raw_uploads SET key_version = 1 WHERE upload_id = '%s'", e);
    expect_body(f, f->ring, e, "{\"e\":5}");

    /* A key-ring entry altered: a fresh instance refuses to open. */
    struct keyring *ring2 = NULL;
    admin(f, "UPDATE key_ring SET wrapped_key = %s WHERE version = 2", zk);
    assert_int_equal(keyring_open(f->st, f->master, &ring2, err, sizeof(err)), KEYRING_EAUTH);
    assert_null(ring2);
}

/* The progress callback counts batches. */
static int count_batches(void *ctx, const struct keyring_rewrap_stats *s)
{
    (void)s;
    (*(int *)ctx)++;
    return 0;
}

/* 5. Rotation: old uploads stay readable at every step (before and after
 *    re-wrapping, from the rotating instance and from one opened before the
 *    rotation), new uploads use the new version, re-wrapping touches only
 *    the wrapped key and version of each row, and is idempotent. */
/* Analyses and insights sealed through the store (store_set_sealer): read
 * back whole by get and list, their clear columns empty, the file holds
 * none of their text, a sealed value moved to another row does not open,
 * rows written without a sealer still read, and a sealed row read by a
 * store without a sealer is refused rather than returned empty. */
static void test_sealed_analyses_insights(void **state)
{
    struct fixture *f = *state;
    char err[256];
    struct store_sealer z;
    keyring_store_sealer(f->ring, &z);

    struct store_analysis plain = {
        .version = 1, .coverage = "{\"days\":1}", .result = "{\"legacy\":1}", .created_at_ms = 1000};
    assert_int_equal(uuid_v7(plain.id), 0);
    memcpy(plain.user_id, f->users[0], STORE_ID_LEN);
    snprintf(plain.kind, sizeof(plain.kind), "pat");
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_analysis_insert(tx, &plain), 0); /* no sealer yet */
    assert_int_equal(store_tx_commit(tx), 0);

    store_set_sealer(f->st, &z);
    struct store_analysis a = {.version = 1,
                               .coverage = "{\"days\":7,\"note\":\"SEALED-COVERAGE-51c\"}",
                               .result = "{\"tst_minutes\":417,\"note\":\"SEALED-RESULT-9e2\"}",
                               .created_at_ms = 2000};
    assert_int_equal(uuid_v7(a.id), 0);
    memcpy(a.user_id, f->users[0], STORE_ID_LEN);
    snprintf(a.kind, sizeof(a.kind), "sleep");
    struct store_insight in = {.narrative = "SEALED-NARRATIVE-you slept 6.9 hours",
                               .body = "{\"key_insights\":[\"SEALED-BODY-4d1\"]}",
                               .confidence = 0.75};
    assert_int_equal(uuid_v7(in.id), 0);
    memcpy(in.user_id, f->users[0], STORE_ID_LEN);
    memcpy(in.analysis_id, a.id, STORE_ID_LEN);
    snprintf(in.insight_type, sizeof(in.insight_type), "sleep");
    snprintf(in.generator, sizeof(in.generator), "builtin");
    struct store_insight empty = {.narrative = NULL, .body = NULL, .confidence = 0.1};
    assert_int_equal(uuid_v7(empty.id), 0);
    memcpy(empty.user_id, f->users[0], STORE_ID_LEN);
    snprintf(empty.insight_type, sizeof(empty.insight_type), "activity");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_analysis_insert(tx, &a), 0);
    assert_int_equal(store_insight_insert(tx, &in), 0);
    assert_int_equal(store_insight_insert(tx, &empty), 0);
    assert_int_equal(store_tx_commit(tx), 0);

    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    struct store_analysis ag;
    assert_int_equal(store_analysis_get(tx, a.id, f->users[0], &ag), 0);
    assert_string_equal(ag.coverage, a.coverage);
    assert_string_equal(ag.result, a.result);
    assert_string_equal(ag.kind, "sleep");
    store_analysis_clear(&ag);
    struct store_analysis *al = NULL;
    size_t n = 0;
    struct store_cursor next;
    assert_int_equal(store_analysis_list(tx, f->users[0], NULL, 10, &al, &n, &next), 0);
    assert_int_equal(n, 2);
    assert_string_equal(al[0].result, a.result); /* newest first */
    assert_string_equal(al[1].result, plain.result);
    store_analysis_list_free(al, n);
    struct store_insight ig;
    assert_int_equal(store_insight_get(tx, in.id, NULL, &ig), 0);
    assert_string_equal(ig.narrative, in.narrative);
    assert_string_equal(ig.body, in.body);
    assert_true(ig.confidence == 0.75);
    store_insight_clear(&ig);
    assert_int_equal(store_insight_get(tx, empty.id, NULL, &ig), 0);
    assert_string_equal(ig.narrative, "");
    assert_null(ig.body);
    store_insight_clear(&ig);
    struct store_insight *il = NULL;
    assert_int_equal(store_insight_list(tx, f->users[0], "sleep", NULL, 10, &il, &n, &next), 0);
    assert_int_equal(n, 1);
    assert_string_equal(il[0].body, in.body);
    store_insight_list_free(il, n);
    store_tx_rollback(tx);

    /* A sealed value moved to another row (or user) does not open. */
    admin(f, "UPDATE analyses SET sealed = (SELECT sealed FROM analyses WHERE id = '%s') WHERE id = '%s'", a.id,
          plain.id);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_get(tx, plain.id, NULL, &ag), STORE_EINTERNAL);
    assert_int_equal(store_analysis_list(tx, f->users[0], NULL, 10, &al, &n, &next), STORE_EINTERNAL);
    assert_null(al);
    store_tx_rollback(tx);
    admin(f, "UPDATE analyses SET sealed = NULL WHERE id = '%s'", plain.id);

    /* Without a sealer, a sealed row is refused, a clear one still reads. */
    store_set_sealer(f->st, NULL);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_analysis_get(tx, a.id, NULL, &ag), STORE_EUNAVAILABLE);
    assert_int_equal(store_analysis_get(tx, plain.id, NULL, &ag), 0);
    assert_string_equal(ag.result, plain.result);
    store_analysis_clear(&ag);
    store_tx_rollback(tx);

    if (is_pg())
        return;
    keyring_close(f->ring);
    f->ring = NULL;
    store_close(f->st);
    f->st = NULL;
    store_up(f);
    assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
    static const char *const canaries[] = {"SEALED-COVERAGE", "SEALED-RESULT", "SEALED-NARRATIVE",
                                           "SEALED-BODY",     "tst_minutes",   "slept 6.9"};
    for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++)
        assert_int_equal(files_containing(f->dir, canaries[i], strlen(canaries[i])), 0);
    assert_true(files_containing(f->dir, "legacy", 6) > 0); /* the scan sees clear text */
}

static void test_rotation(void **state)
{
    struct fixture *f = *state;
    enum { OLD = 7 };
    char ids[OLD + 2][STORE_ID_LEN], bodies[OLD + 2][64], err[256];
    struct store_raw_upload before[OLD];
    struct keyring *stale = NULL;
    struct keyring_rewrap_stats st;
    int v = 0, batches = 0;

    assert_int_equal(keyring_open(f->st, f->master, &stale, err, sizeof(err)), 0);
    for (int i = 0; i < OLD; i++) {
        snprintf(bodies[i], sizeof(bodies[i]), "{\"upload\":%d,\"hrv\":%d}", i, 40 + i);
        put_upload(f, f->ring, f->users[i % NUSERS], ids[i], bodies[i]);
        memset(&before[i], 0, sizeof(before[i]));
        raw_row(f, ids[i], &before[i]);
        assert_int_equal(before[i].key_version, 1);
    }

    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 2);
    for (int i = 0; i < OLD; i++) {
        expect_body(f, f->ring, ids[i], bodies[i]);
        expect_body(f, stale, ids[i], bodies[i]);
    }
    /* New uploads use version 2 at once on the rotating instance. */
    snprintf(bodies[OLD], sizeof(bodies[OLD]), "{\"after\":\"rotation\"}");
    put_upload(f, f->ring, f->users[0], ids[OLD], bodies[OLD]);
    struct store_raw_upload r;
    memset(&r, 0, sizeof(r));
    raw_row(f, ids[OLD], &r);
    assert_int_equal(r.key_version, 2);
    store_raw_upload_clear(&r);
    /* A running instance still on version 1 (until its refresh interval)
     * keeps working; what it writes is readable and re-wrapped later. */
    snprintf(bodies[OLD + 1], sizeof(bodies[OLD + 1]), "{\"stale\":\"instance\"}");
    put_upload(f, stale, f->users[1], ids[OLD + 1], bodies[OLD + 1]);
    expect_body(f, f->ring, ids[OLD + 1], bodies[OLD + 1]);

    memset(&st, 0, sizeof(st));
    assert_int_equal(keyring_rewrap(f->ring, 2, count_batches, &batches, &st, err, sizeof(err)), 0);
    assert_int_equal(st.target, 2);
    assert_int_equal(st.scanned, OLD + 2);
    assert_int_equal(st.rewrapped, OLD + 1);
    assert_int_equal(st.failed, 0);
    assert_true(batches >= 4); /* batches of at most 2 rows */
    for (int i = 0; i < OLD; i++) {
        memset(&r, 0, sizeof(r));
        raw_row(f, ids[i], &r);
        assert_int_equal(r.key_version, 2);
        /* The body's bytes are untouched: only the wrapped key changed. */
        assert_int_equal(r.ciphertext_len, before[i].ciphertext_len);
        assert_memory_equal(r.ciphertext, before[i].ciphertext, r.ciphertext_len);
        assert_memory_equal(r.nonce, before[i].nonce, ENVELOPE_NONCE_BYTES);
        assert_memory_not_equal(r.wrapped_dek, before[i].wrapped_dek, ENVELOPE_WRAPPED_BYTES);
        store_raw_upload_clear(&r);
        expect_body(f, f->ring, ids[i], bodies[i]);
        expect_body(f, stale, ids[i], bodies[i]);
    }
    for (int i = OLD; i < OLD + 2; i++)
        expect_body(f, f->ring, ids[i], bodies[i]);

    /* Idempotent: nothing left to move. */
    assert_int_equal(keyring_rewrap(f->ring, 0, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.rewrapped, 0);
    assert_int_equal(st.scanned, OLD + 2);

    /* A second rotation, re-wrapped by the other instance. */
    assert_int_equal(keyring_rotate(stale, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 3);
    assert_int_equal(keyring_rewrap(stale, 1000, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.target, 3);
    assert_int_equal(st.rewrapped, OLD + 2);
    for (int i = 0; i < OLD + 2; i++) {
        expect_body(f, f->ring, ids[i], bodies[i]);
        expect_body(f, stale, ids[i], bodies[i]);
    }

    struct keyring_version *vs = NULL;
    size_t n = 0;
    int active = 0;
    assert_int_equal(keyring_status_list(f->ring, &vs, &n, &active), 0);
    assert_int_equal(n, 3);
    assert_int_equal(active, 3);
    assert_string_equal(vs[0].status, "retired");
    assert_string_equal(vs[1].status, "retired");
    assert_string_equal(vs[2].status, "active");
    for (size_t i = 0; i < n; i++)
        assert_true(vs[i].opens);
    free(vs);
    for (int i = 0; i < OLD; i++)
        store_raw_upload_clear(&before[i]);
    keyring_close(stale);
}

/* 6. The health check reports the active version and age, and warns (while
 *    staying healthy) once the key is older than 90 days. */
static void test_health_check(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", sql[256];
    json_t *d = json_object();

    assert_int_equal(keyring_health_check(f->ring, d, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "active_version")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "active_key_age_days")), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "rotation_period_days")), 90);
    assert_null(json_object_get(d, "warning"));
    json_decref(d);

    snprintf(sql, sizeof(sql), "UPDATE key_ring SET created_at = %lld WHERE version = 1",
             (long long)(time_now_ms() - 89LL * 86400000LL));
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    d = json_object();
    assert_int_equal(keyring_health_check(f->ring, d, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "active_key_age_days")), 89);
    assert_null(json_object_get(d, "warning"));
    json_decref(d);

    snprintf(sql, sizeof(sql), "UPDATE key_ring SET created_at = %lld WHERE version = 1",
             (long long)(time_now_ms() - 91LL * 86400000LL));
    assert_int_equal(store_admin_exec(f->st, sql, err, sizeof(err)), 0);
    d = json_object();
    assert_int_equal(keyring_health_check(f->ring, d, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "active_key_age_days")), 91);
    const char *warning = json_string_value(json_object_get(d, "warning"));
    assert_non_null(warning);
    assert_non_null(strstr(warning, "91 days old"));
    assert_non_null(strstr(warning, "clarity keys rotate"));
    json_decref(d);

    /* After rotation the new active key is young again. */
    int v = 0;
    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    d = json_object();
    assert_int_equal(keyring_health_check(f->ring, d, err, sizeof(err)), 0);
    assert_int_equal(json_integer_value(json_object_get(d, "active_version")), 2);
    assert_null(json_object_get(d, "warning"));
    json_decref(d);

    /* No key ring at all: unhealthy with a reason. */
    assert_int_equal(keyring_health_check(NULL, NULL, err, sizeof(err)), -1);
    assert_true(err[0] != '\0');
}

/* 7. The master key from configuration: malformed and wrong-length keys are
 *    rejected naming ENCRYPTION_KEY; staging without a key is refused;
 *    development generates var/encryption.key once (0600) and reuses it,
 *    and refuses it once others can read it. */
static void test_master_load(void **state)
{
    struct fixture *f = *state;
    struct config cfg;
    struct envelope_key *k = NULL, *k2 = NULL;
    char err[256], path[700], key[64];
    struct stat sb;

    memset(&cfg, 0, sizeof(cfg));
    cfg.environment = CONFIG_ENV_PRODUCTION;
    snprintf(key, sizeof(key), "!!! not base64 !!!");
    cfg.encryption_key = key;
    assert_int_equal(keyring_master_load(&cfg, NULL, &k, err, sizeof(err)), KEYRING_EINVAL);
    assert_non_null(strstr(err, "ENCRYPTION_KEY: not valid base64"));
    assert_null(strstr(err, "!!!")); /* never echoes the secret */
    snprintf(key, sizeof(key), "AAAAAAAAAAAAAAAAAAAAAA==");
    assert_int_equal(keyring_master_load(&cfg, NULL, &k, err, sizeof(err)), KEYRING_EINVAL);
    assert_non_null(strstr(err, "ENCRYPTION_KEY: decodes to 16 bytes"));
    snprintf(key, sizeof(key), "%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(keyring_master_load(&cfg, NULL, &k, err, sizeof(err)), KEYRING_EINVAL);
    assert_non_null(strstr(err, "decodes to 42 bytes"));
    snprintf(key, sizeof(key), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    assert_int_equal(keyring_master_load(&cfg, NULL, &k, err, sizeof(err)), 0);
    envelope_key_free(k);
    k = NULL;

    cfg.encryption_key = NULL;
    cfg.environment = CONFIG_ENV_STAGING;
    assert_int_equal(keyring_master_load(&cfg, NULL, &k, err, sizeof(err)), KEYRING_ENOKEY);
    assert_non_null(strstr(err, "ENCRYPTION_KEY: required in staging"));

    cfg.environment = CONFIG_ENV_DEVELOPMENT;
    snprintf(path, sizeof(path), "%s/var/encryption.key", f->dir);
    assert_int_equal(keyring_master_load(&cfg, path, &k, err, sizeof(err)), 0);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/var", f->dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    snprintf(path, sizeof(path), "%s/var/encryption.key", f->dir);
    assert_int_equal(keyring_master_load(&cfg, path, &k2, err, sizeof(err)), 0);
    assert_true(envelope_key_equal(k, k2));
    envelope_key_free(k2);
    k2 = NULL;

    /* The generated key really is what a ring uses: a ring opened with it
     * on a fresh database and reopened with the reloaded key agrees. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(keyring_master_load(&cfg, path, &k2, err, sizeof(err)), KEYRING_EIO);
    assert_non_null(strstr(err, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);

    /* A corrupt key file is reported with its path. */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("short\n", fp);
    fclose(fp);
    assert_int_equal(keyring_master_load(&cfg, path, &k2, err, sizeof(err)), KEYRING_EINVAL);
    assert_non_null(strstr(err, "encryption.key: "));
    envelope_key_free(k);
}

/* 8. Threads sealing and opening at once while another rotates. */
struct worker {
    struct fixture *f;
    int user;
    int ok;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 15; i++) {
        char id[STORE_ID_LEN], body[64], *got = NULL;
        snprintf(body, sizeof(body), "{\"thread\":%d,\"i\":%d}", w->user, i);
        put_upload(w->f, w->f->ring, w->f->users[w->user % NUSERS], id, body);
        if (get_upload(w->f, w->f->ring, id, NULL, &got) == 0 && strcmp(got, body) == 0)
            w->ok++;
        free(got);
    }
    return NULL;
}

static void test_concurrent_use(void **state)
{
    struct fixture *f = *state;
    struct worker w[4];
    pthread_t t[4];
    char err[256];
    int v = 0;
    for (int i = 0; i < 4; i++) {
        w[i].f = f;
        w[i].user = i;
        w[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 15);
    }
}

static int sample_keep(void *ctx, const struct store_sample *x)
{
    struct store_sample *got = ctx;
    if (got[0].id == 0) {
        got[0] = *x;
        got[0].payload = x->payload ? strdup(x->payload) : NULL;
    }
    got[1].id++; /* count */
    return 0;
}

/* 6. Samples (issue #19) live in sealed blocks, and so do the series
 *    aggregates computed from them: the database files hold none of a
 *    sample's values or texts (sources, devices, units, payloads, the
 *    value's bytes), the samples read back as stored, a block moved to
 *    another day does not open, and without a sealer the read is refused. */
static void test_sample_blocks_sealed(void **state)
{
    struct fixture *f = *state;
    struct store_sealer z;
    keyring_store_sealer(f->ring, &z);
    store_set_sealer(f->st, &z);
    const double canary_value = 71.123456789;
    const int64_t t0 = 1718236800000LL; /* a UTC midnight */
    enum { N = 200 };
    struct store_sample v[N];
    memset(v, 0, sizeof(v));
    for (int i = 0; i < N; i++) {
        struct store_sample *x = &v[i];
        snprintf(x->user_id, sizeof(x->user_id), "%s", f->users[0]);
        snprintf(x->metric_type, sizeof(x->metric_type), "%s", i % 2 ? "heart_rate" : "steps");
        x->start_ms = t0 + (int64_t)i * 60000;
        x->end_ms = x->start_ms + 60000;
        x->value = i == 7 ? canary_value : 40 + i;
        x->value2 = x->quality_score = NAN;
        snprintf(x->unit, sizeof(x->unit), "CANARY-UNIT");
        snprintf(x->source, sizeof(x->source), "CANARY-SOURCE-81f2");
        snprintf(x->device, sizeof(x->device), "CANARY-DEVICE-9c0d");
        snprintf(x->hk_uuid, sizeof(x->hk_uuid), "0f0e0d0c-0b0a-4908-8706-%012d", i);
        x->payload = i == 3 ? "{\"note\":\"CANARY-PAYLOAD-77\"}" : NULL;
    }
    struct store_tx *tx = NULL;
    size_t ins = 0;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sample_insert_batch(tx, v, N, &ins), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(ins, N);
    /* A series aggregate (filled and sealed on first read). */
    int64_t cnt[24];
    double sum[24], mn[24], mx[24];
    struct store_series_buckets b = {cnt, sum, mn, mx, 0};
    struct store_series_query q = {f->users[0], "steps", t0, t0 + 86400000LL, 3600000LL, 24};
    int hit = 0;
    assert_int_equal(store_series_aggregate(f->st, &q, &b, &hit), 0); /* fills */
    assert_int_equal(hit, 1);
    assert_int_equal(store_series_aggregate(f->st, &q, &b, &hit), 0); /* reads the sealed sums */
    assert_int_equal(hit, 1);
    assert_int_equal(cnt[0], 30); /* even minutes 0..58 */

    struct store_sample got[2];
    struct store_sample_query sq = {.user_id = f->users[0], .start_ms = INT64_MIN, .end_ms = INT64_MAX, .ascending = 1};
    memset(got, 0, sizeof(got));
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_each(tx, &sq, sample_keep, got), 0);
    store_tx_rollback(tx);
    assert_int_equal(got[1].id, N);
    assert_string_equal(got[0].source, "CANARY-SOURCE-81f2");
    assert_string_equal(got[0].unit, "CANARY-UNIT");
    free(got[0].payload);

    if (!is_pg()) {
        char err[256];
        keyring_close(f->ring);
        f->ring = NULL;
        store_close(f->st);
        f->st = NULL;
        store_up(f);
        assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
        keyring_store_sealer(f->ring, &z);
        store_set_sealer(f->st, &z);
        static const char *const canaries[] = {"CANARY-UNIT",    "CANARY-SOURCE", "CANARY-DEVICE",
                                               "CANARY-PAYLOAD", "heart_rate",    "0f0e0d0c"};
        for (size_t i = 0; i < sizeof(canaries) / sizeof(canaries[0]); i++)
            assert_int_equal(files_containing(f->dir, canaries[i], strlen(canaries[i])), 0);
        assert_int_equal(files_containing(f->dir, &canary_value, sizeof(canary_value)), 0);
        assert_true(files_containing(f->dir, f->emails[0], strlen(f->emails[0])) > 0); /* the scan sees clear text */
    }

    /* A block moved to another day (or user) does not open. */
    admin(f, "UPDATE sample_days SET day = day + 1");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_each(tx, &sq, sample_keep, got), STORE_EINTERNAL);
    store_tx_rollback(tx);
    admin(f, "UPDATE sample_days SET day = day - 1");
    /* Without a sealer the blocks are refused. */
    store_set_sealer(f->st, NULL);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sample_each(tx, &sq, sample_keep, got), STORE_EUNAVAILABLE);
    store_tx_rollback(tx);
}

/* ---- re-wrapping sealed blobs (issue #19) ---------------------------------------- */

static int count_samples(void *ctx, const struct store_sample *x)
{
    (void)x;
    (*(int64_t *)ctx)++;
    return 0;
}

/* What the store seals a user's sample_days row of day to (days.c). */
static void day_binding(int64_t day, char out[KEYRING_BINDING_LEN])
{
    snprintf(out, KEYRING_BINDING_LEN, "block/%lld/v%d", (long long)day, BLOCK_SEAL_FORMAT);
}

/* An SQL literal of bytes, per backend. */
static void hexlit(char *out, size_t size, const unsigned char *p, size_t n)
{
    char *hex = malloc(2 * n + 1);
    assert_non_null(hex);
    sodium_bin2hex(hex, 2 * n + 1, p, n);
    if (is_pg())
        snprintf(out, size, "decode('%s', 'hex')", hex);
    else
        snprintf(out, size, "X'%s'", hex);
    free(hex);
}

/* sample_days.data of row id as stored (*len bytes, caller frees), read
 * over a connection of its own; NULL when the row is gone. */
static unsigned char *day_data(struct fixture *f, int64_t id, size_t *len)
{
    static const char sql[] = "SELECT data FROM sample_days WHERE id = ?1";
    char err[256], path[600];
    struct db_open_opts o = {.busy_timeout_ms = 5000};
    snprintf(path, sizeof(path), "%s/clarity.db", f->dir);
    struct db_conn *c = db_conn_open(is_pg() ? DB_POSTGRES : DB_SQLITE, is_pg() ? f->url : path, &o, err, sizeof(err));
    assert_non_null(c);
    struct db_stmt *s = db_stmt_get(c, sql);
    assert_non_null(s);
    db_bind_int64(s, 1, id);
    unsigned char *out = NULL;
    *len = 0;
    if (db_step(s) == DB_ROW) {
        size_t n = 0;
        const void *p = db_col_blob(s, 0, &n);
        out = malloc(n ? n : 1);
        assert_non_null(out);
        memcpy(out, p, n);
        *len = n;
    }
    db_stmt_reset(s);
    db_conn_close(c);
    return out;
}

/* Seal plain as sample block row id of user on day (bound the way
 * keyring_rewrap rebuilds it) and insert it; returns the blob (caller frees). */
static unsigned char *put_block(struct fixture *f, const char *user, int64_t id, int64_t day, const char *plain,
                                size_t *blen)
{
    char bound[KEYRING_BINDING_LEN], lit[4096], sql[4400];
    unsigned char *blob = NULL;
    struct store_tx *tx = NULL;
    day_binding(day, bound);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(
        keyring_blob_seal(f->ring, tx, user, bound, (const unsigned char *)plain, strlen(plain), &blob, blen), 0);
    store_tx_rollback(tx);
    hexlit(lit, sizeof(lit), blob, *blen);
    snprintf(sql, sizeof(sql), "INSERT INTO sample_days (id, user_id, day, data) VALUES (%lld, '%s', %lld, %s)",
             (long long)id, user, (long long)day, lit);
    admin(f, "%s", sql);
    return blob;
}

/* Stop after the first batch of a blob table. */
static int stop_in_blobs(void *ctx, const struct keyring_rewrap_stats *s)
{
    (void)ctx;
    return s->table >= KEYRING_REWRAP_ANALYSES;
}

/* Every listed blob of every table names `version`; returns how many. */
static size_t blobs_all_under(struct fixture *f, uint32_t version)
{
    struct store_tx *tx = NULL;
    size_t total = 0;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    for (int t = 0; t < STORE_SEALED_TABLES; t++) {
        struct store_sealed_row *rows = NULL;
        struct store_sealed_cursor next;
        size_t n = 0;
        /* version 0 is never used: lists every sealed blob */
        assert_int_equal(store_sealed_list(tx, t, 0, NULL, STORE_PAGE_MAX, &rows, &n, &next), 0);
        for (size_t i = 0; i < n; i++)
            if (!(t == STORE_SEALED_SAMPLE_DAYS && rows[i].rowid == 45)) /* the damaged one */
                assert_int_equal(rows[i].key_version, version);
        total += n;
        free(rows);
    }
    store_tx_rollback(tx);
    return total;
}

/* After a rotation, keyring_rewrap moves the DEKs of analyses, insights and
 * sealed sample blocks too: only the 77-byte head of each blob changes, the
 * blobs open to the same plaintext, unsealed sample_days rows and the
 * aggregates that reference sealed ones stay, a damaged blob is counted and
 * left, an interrupted pass resumes, and the old key version can then be
 * dropped with every value still readable. */
static void test_rewrap_sealed_blobs(void **state)
{
    struct fixture *f = *state;
    enum { NA = 5 };
    char err[256], upload[STORE_ID_LEN], aid[NA][STORE_ID_LEN], result[NA][64], lit[512];
    struct store_sealer z;
    struct store_tx *tx = NULL;
    struct keyring_rewrap_stats st;
    const int64_t day = 20431;
    int v = 0;

    keyring_store_sealer(f->ring, &z);
    store_set_sealer(f->st, &z);
    put_upload(f, f->ring, f->users[0], upload, "{\"raw\":\"body\"}");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    for (int i = 0; i < NA; i++) {
        struct store_analysis a = {.version = 1, .coverage = "{\"days\":7}", .created_at_ms = 1000 + i};
        snprintf(result[i], sizeof(result[i]), "{\"tst_minutes\":%d}", 400 + i);
        a.result = result[i];
        assert_int_equal(uuid_v7(a.id), 0);
        memcpy(aid[i], a.id, STORE_ID_LEN);
        memcpy(a.user_id, f->users[i % NUSERS], STORE_ID_LEN);
        snprintf(a.kind, sizeof(a.kind), "sleep");
        assert_int_equal(store_analysis_insert(tx, &a), 0);
    }
    struct store_insight in = {.narrative = "you slept 6.9 hours", .body = "{\"k\":1}", .confidence = 0.5};
    assert_int_equal(uuid_v7(in.id), 0);
    memcpy(in.user_id, f->users[1], STORE_ID_LEN);
    snprintf(in.insight_type, sizeof(in.insight_type), "sleep");
    snprintf(in.generator, sizeof(in.generator), "builtin");
    assert_int_equal(store_insight_insert(tx, &in), 0);
    assert_int_equal(store_tx_commit(tx), 0);

    /* Sample blocks: two sealed rows, one unsealed (0xD1) row, one sealed
     * blob whose wrapped key is damaged; an aggregate references row 42. */
    size_t b42n = 0, b44n = 0;
    unsigned char *b42 = put_block(f, f->users[0], 42, day, "BLOCK-42 heart rate 61 62 63", &b42n);
    unsigned char *b44 = put_block(f, f->users[1], 44, day + 1, "BLOCK-44 steps 1200", &b44n);
    const unsigned char legacy[] = {0xD1, 0x01, 0x02, 0x03, 0x04, 0x05};
    hexlit(lit, sizeof(lit), legacy, sizeof(legacy));
    admin(f, "INSERT INTO sample_days (id, user_id, day, data) VALUES (43, '%s', %lld, %s)", f->users[0],
          (long long)day, lit);
    unsigned char damaged[KEYRING_BLOB_OVERHEAD + 4];
    memcpy(damaged, b44, sizeof(damaged));
    damaged[20] ^= 0x55; /* inside the wrapped DEK */
    hexlit(lit, sizeof(lit), damaged, sizeof(damaged));
    admin(f, "INSERT INTO sample_days (id, user_id, day, data) VALUES (45, '%s', %lld, %s)", f->users[1],
          (long long)day, lit);
    hexlit(lit, sizeof(lit), (const unsigned char *)"agg", 3);
    admin(f, "INSERT INTO sample_day_aggs (sample_day_id, metric_type, data) VALUES (42, 'heart_rate', %s)", lit);
    assert_int_equal(blobs_all_under(f, 1), NA + 1 + 3);

    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 2);

    /* Interrupted after the first batch of analyses (2 rows a batch). */
    memset(&st, 0, sizeof(st));
    assert_int_equal(keyring_rewrap(f->ring, 2, stop_in_blobs, NULL, &st, err, sizeof(err)), 0);
    assert_true(st.tables[KEYRING_REWRAP_RAW_UPLOADS].done);
    assert_int_equal(st.tables[KEYRING_REWRAP_RAW_UPLOADS].rewrapped, 1);
    assert_string_equal(st.tables[KEYRING_REWRAP_ANALYSES].name, "analyses");
    assert_int_equal(st.tables[KEYRING_REWRAP_ANALYSES].rewrapped, 2);
    assert_false(st.tables[KEYRING_REWRAP_ANALYSES].done);
    assert_int_equal(st.tables[KEYRING_REWRAP_INSIGHTS].scanned, 0);
    assert_int_equal(st.rewrapped, 3);

    /* Run again: it resumes with what is left. */
    assert_int_equal(keyring_rewrap(f->ring, 2, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.target, 2);
    assert_int_equal(st.tables[KEYRING_REWRAP_RAW_UPLOADS].rewrapped, 0);
    assert_int_equal(st.tables[KEYRING_REWRAP_ANALYSES].rewrapped, NA - 2);
    assert_int_equal(st.tables[KEYRING_REWRAP_INSIGHTS].rewrapped, 1);
    assert_string_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].name, "sample_days");
    assert_int_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].scanned, 3);
    assert_int_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].rewrapped, 2);
    assert_int_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].failed, 1);
    assert_int_equal(st.failed, 1);
    for (int i = 0; i < KEYRING_REWRAP_TABLES; i++)
        assert_true(st.tables[i].done);
    assert_int_equal(blobs_all_under(f, 2), NA + 1 + 3);

    /* Only the head changed; the unsealed row, the damaged blob and the
     * aggregate are as they were. */
    size_t n = 0;
    unsigned char *now = day_data(f, 42, &n);
    assert_non_null(now);
    assert_int_equal(n, b42n);
    assert_int_equal(now[0], KEYRING_BLOB_FORMAT);
    assert_int_equal(now[1], 2);
    assert_memory_not_equal(now + 5, b42 + 5, ENVELOPE_WRAPPED_BYTES);
    assert_memory_equal(now + STORE_SEALED_HEAD, b42 + STORE_SEALED_HEAD, n - STORE_SEALED_HEAD);
    free(now);
    now = day_data(f, 43, &n);
    assert_int_equal(n, sizeof(legacy));
    assert_memory_equal(now, legacy, n);
    free(now);
    now = day_data(f, 45, &n);
    assert_int_equal(n, sizeof(damaged));
    assert_memory_equal(now, damaged, n);
    free(now);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    struct store_sealed_row *rows = NULL;
    struct store_sealed_cursor next;
    assert_int_equal(store_sealed_list(tx, STORE_SEALED_SAMPLE_DAYS, 2, NULL, 10, &rows, &n, &next), 0);
    assert_int_equal(n, 1); /* only the damaged one is left behind */
    assert_int_equal(rows[0].rowid, 45);
    free(rows);
    store_tx_rollback(tx);

    /* Idempotent: nothing moves; the damaged blob is reported again. */
    assert_int_equal(keyring_rewrap(f->ring, 0, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.rewrapped, 0);
    assert_int_equal(st.failed, 1);

    /* Version 1 dropped (possible now that nothing needs it): a fresh ring
     * opens every value, the blocks to their plaintext. */
    admin(f, "DELETE FROM sample_days WHERE id = 45");
    admin(f, "DELETE FROM key_ring WHERE version = 1");
    keyring_close(f->ring);
    assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
    keyring_store_sealer(f->ring, &z);
    store_set_sealer(f->st, &z);
    expect_body(f, f->ring, upload, "{\"raw\":\"body\"}");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    for (int i = 0; i < NA; i++) {
        struct store_analysis ag;
        assert_int_equal(store_analysis_get(tx, aid[i], NULL, &ag), 0);
        assert_string_equal(ag.result, result[i]);
        store_analysis_clear(&ag);
    }
    struct store_insight ig;
    assert_int_equal(store_insight_get(tx, in.id, NULL, &ig), 0);
    assert_string_equal(ig.narrative, in.narrative);
    store_insight_clear(&ig);
    static const struct {
        int64_t id, day;
        int user;
        const char *plain;
    } blocks[] = {{42, day, 0, "BLOCK-42 heart rate 61 62 63"}, {44, day + 1, 1, "BLOCK-44 steps 1200"}};
    for (size_t i = 0; i < 2; i++) {
        char bound[KEYRING_BINDING_LEN];
        unsigned char *plain = NULL;
        size_t pl = 0;
        now = day_data(f, blocks[i].id, &n);
        day_binding(blocks[i].day, bound);
        assert_int_equal(keyring_blob_open(f->ring, tx, f->users[blocks[i].user], bound, now, n, &plain, &pl), 0);
        assert_int_equal(pl, strlen(blocks[i].plain));
        assert_memory_equal(plain, blocks[i].plain, pl);
        free(plain);
        free(now);
    }
    store_tx_rollback(tx);
    admin(f, "DELETE FROM sample_day_aggs WHERE sample_day_id = 42 AND metric_type = 'heart_rate'");
    free(b42);
    free(b44);
    store_set_sealer(f->st, NULL);
}

/* The compare-and-set of store_sealed_rewrap: a row replaced or deleted
 * between the listing and the update is left to its writer. */
static void test_rewrap_concurrent_change(void **state)
{
    struct fixture *f = *state;
    struct store_tx *tx = NULL;
    struct store_sealed_row *rows = NULL;
    struct store_sealed_cursor next;
    char lit[512];
    size_t n = 0, b1n = 0, b2n = 0, b3n = 0;
    unsigned char *b1 = put_block(f, f->users[0], 7, 100, "first", &b1n);
    unsigned char *b3 = put_block(f, f->users[0], 8, 100, "third", &b3n);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sealed_list(tx, STORE_SEALED_SAMPLE_DAYS, 2, NULL, 1, &rows, &n, &next), 0);
    assert_int_equal(n, 1); /* a page of one, and a cursor to go on */
    assert_true(next.set);
    assert_int_equal(rows[0].rowid, 7);
    assert_int_equal(rows[0].len, b1n);
    assert_int_equal(rows[0].key_version, 1);
    assert_memory_equal(rows[0].head, b1, STORE_SEALED_HEAD);
    store_tx_rollback(tx);

    /* Another writer replaces row 7's block meanwhile. */
    char bound[KEYRING_BINDING_LEN];
    unsigned char *b2 = NULL;
    day_binding(100, bound);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(keyring_blob_seal(f->ring, tx, f->users[0], bound, (const unsigned char *)"second", 6, &b2, &b2n),
                     0);
    store_tx_rollback(tx);
    hexlit(lit, sizeof(lit), b2, b2n);
    admin(f, "UPDATE sample_days SET data = %s WHERE id = 7", lit);

    unsigned char head[STORE_SEALED_HEAD];
    memset(head, 0xAB, sizeof(head));
    head[0] = STORE_SEALED_FORMAT;
    int applied = -1;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sealed_rewrap(tx, STORE_SEALED_SAMPLE_DAYS, &rows[0], head, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_tx_commit(tx), 0);
    unsigned char *now = day_data(f, 7, &n);
    assert_int_equal(n, b2n);
    assert_memory_equal(now, b2, n); /* the other writer's bytes */
    free(now);

    /* Deleted meanwhile: nothing to update, no row comes back. */
    struct store_sealed_row r8;
    memset(&r8, 0, sizeof(r8));
    r8.rowid = 8;
    memcpy(r8.head, b3, STORE_SEALED_HEAD);
    admin(f, "DELETE FROM sample_days WHERE id = 8");
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sealed_rewrap(tx, STORE_SEALED_SAMPLE_DAYS, &r8, head, &applied), 0);
    assert_int_equal(applied, 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_null(day_data(f, 8, &n));

    /* Unchanged: the head is replaced, the rest kept. */
    free(rows);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    assert_int_equal(store_sealed_list(tx, STORE_SEALED_SAMPLE_DAYS, 2, NULL, 10, &rows, &n, &next), 0);
    assert_int_equal(n, 1);
    assert_false(next.set);
    store_tx_rollback(tx);
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sealed_rewrap(tx, STORE_SEALED_SAMPLE_DAYS, &rows[0], head, &applied), 0);
    assert_int_equal(applied, 1);
    assert_int_equal(store_tx_commit(tx), 0);
    now = day_data(f, 7, &n);
    assert_int_equal(n, b2n);
    assert_memory_equal(now, head, STORE_SEALED_HEAD);
    assert_memory_equal(now + STORE_SEALED_HEAD, b2 + STORE_SEALED_HEAD, n - STORE_SEALED_HEAD);
    free(now);
    free(rows);
    free(b1);
    free(b2);
    free(b3);
}

/* A writer that keeps replacing sealed sample blocks (UPDATE in place, or
 * DELETE and INSERT under the same id) with a ring opened before the
 * rotation, so its blobs are under the old version, while keyring_rewrap
 * passes run. */
#define CW_ROWS 12
#define CW_DAY 300
struct block_writer {
    struct fixture *f;
    struct keyring *ring;
    _Atomic int stop;
    _Atomic int writes;
    int gen[CW_ROWS]; /* the last generation written to each row */
    int errors;
    int corrupt; /* rows found not to open to what was last written */
};

/* 1 when row id opens (with ring) to "row <id> gen <g>". */
static int block_is(struct fixture *f, struct keyring *ring, int64_t id, int g)
{
    char bound[KEYRING_BINDING_LEN], want[64];
    unsigned char *plain = NULL;
    size_t n = 0, pl = 0;
    struct store_tx *tx = NULL;
    unsigned char *now = day_data(f, id, &n);
    int ok = 0;
    day_binding(CW_DAY, bound);
    snprintf(want, sizeof(want), "row %lld gen %d", (long long)id, g);
    if (now != NULL && store_tx_begin(f->st, STORE_TX_READ, &tx) == 0) {
        ok = keyring_blob_open(ring, tx, f->users[0], bound, now, n, &plain, &pl) == 0 && pl == strlen(want) &&
             memcmp(plain, want, pl) == 0;
        store_tx_rollback(tx);
    }
    free(plain);
    free(now);
    return ok;
}

static int write_block(struct fixture *f, struct keyring *ring, int64_t id, int g, int reinsert)
{
    char bound[KEYRING_BINDING_LEN], plain[64], lit[600], sql[1400], err[256];
    unsigned char *blob = NULL;
    size_t blen = 0;
    struct store_tx *tx = NULL;
    int n = snprintf(plain, sizeof(plain), "row %lld gen %d", (long long)id, g);
    day_binding(CW_DAY, bound);
    if (store_tx_begin(f->st, STORE_TX_READ, &tx) != 0)
        return -1;
    int rc = keyring_blob_seal(ring, tx, f->users[0], bound, (const unsigned char *)plain, (size_t)n, &blob, &blen);
    store_tx_rollback(tx);
    if (rc != 0)
        return -1;
    hexlit(lit, sizeof(lit), blob, blen);
    free(blob);
    if (reinsert)
        snprintf(sql, sizeof(sql),
                 "DELETE FROM sample_days WHERE id = %lld;"
                 " INSERT INTO sample_days (id, user_id, day, data) VALUES (%lld, '%s', %d, %s);",
                 (long long)id, (long long)id, f->users[0], CW_DAY, lit);
    else
        snprintf(sql, sizeof(sql), "UPDATE sample_days SET data = %s WHERE id = %lld", lit, (long long)id);
    return store_admin_exec(f->st, sql, err, sizeof(err));
}

static void *block_writer_run(void *arg)
{
    struct block_writer *w = arg;
    for (int k = 0; !w->stop; k++) {
        int i = k % CW_ROWS, g = w->gen[i] + 1;
        /* What a pass did since this writer's last write must have kept
         * the block whole: head and ciphertext of one seal. */
        if (!block_is(w->f, w->ring, 1000 + i, w->gen[i]))
            w->corrupt++;
        if (write_block(w->f, w->ring, 1000 + i, g, (k / CW_ROWS) % 2) == 0) {
            w->gen[i] = g;
            w->writes++;
        } else {
            w->errors++;
        }
    }
    return NULL;
}

/* Passes beside a writer that replaces and re-inserts the blocks: no pass
 * fails or overwrites a block it did not read (every block still opens, to
 * its newest content), and a last pass leaves every block under the new
 * version. */
static void test_rewrap_beside_writers(void **state)
{
    struct fixture *f = *state;
    struct block_writer w;
    struct keyring_rewrap_stats st;
    char err[256];
    pthread_t th;
    int v = 0, passes = 0;
    int64_t skipped = 0;

    memset(&w, 0, sizeof(w));
    w.f = f;
    assert_int_equal(keyring_open(f->st, f->master, &w.ring, err, sizeof(err)), 0);
    for (int i = 0; i < CW_ROWS; i++)
        assert_int_equal(write_block(f, w.ring, 1000 + i, 0, 1), 0);
    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 2);

    assert_int_equal(pthread_create(&th, NULL, block_writer_run, &w), 0);
    int64_t deadline = time_now_ms() + 20000;
    while ((w.writes < 6 * CW_ROWS || passes < 5) && time_now_ms() < deadline) {
        assert_int_equal(keyring_rewrap(f->ring, 3, NULL, NULL, &st, err, sizeof(err)), 0);
        assert_int_equal(st.failed, 0);
        skipped += st.skipped;
        passes++;
    }
    w.stop = 1;
    pthread_join(th, NULL);
    assert_int_equal(w.errors, 0);
    assert_int_equal(w.corrupt, 0);
    assert_true(w.writes >= CW_ROWS); /* the passes did run beside writes */
    print_message("beside writers: %d passes, %d writes, %lld skipped\n", passes, (int)w.writes, (long long)skipped);

    assert_int_equal(keyring_rewrap(f->ring, 3, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].skipped, 0);
    assert_int_equal(blobs_all_under(f, 2), CW_ROWS);
    for (int i = 0; i < CW_ROWS; i++)
        assert_true(block_is(f, f->ring, 1000 + i, w.gen[i]));
    keyring_close(w.ring);
}

/* The blocks and aggregates the store itself seals (days.c: sample_days
 * rows and sample_day_aggs) are re-wrapped with the bindings the store
 * uses: after rotation, re-wrap and deleting version 1, every sample and
 * the aggregate still read through the store. */
static void test_rewrap_store_blocks(void **state)
{
    struct fixture *f = *state;
    struct store_sealer z;
    struct keyring_rewrap_stats st;
    char err[256];
    int v = 0;
    keyring_store_sealer(f->ring, &z);
    store_set_sealer(f->st, &z);
    const int64_t t0 = 1718236800000LL; /* a UTC midnight */
    enum { N = 300 };
    struct store_sample s[N];
    memset(s, 0, sizeof(s));
    for (int i = 0; i < N; i++) {
        snprintf(s[i].user_id, sizeof(s[i].user_id), "%s", f->users[i % NUSERS]);
        snprintf(s[i].metric_type, sizeof(s[i].metric_type), "%s", i % 3 ? "heart_rate" : "steps");
        s[i].start_ms = t0 + (int64_t)i * 600000; /* two days */
        s[i].end_ms = s[i].start_ms + 60000;
        s[i].value = 50 + i % 40;
        s[i].value2 = s[i].quality_score = NAN;
        snprintf(s[i].unit, sizeof(s[i].unit), "count");
    }
    struct store_tx *tx = NULL;
    size_t ins = 0;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_sample_insert_batch(tx, s, N, &ins), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(ins, N);
    int64_t cnt[48], cnt2[48];
    double sum[48], mn[48], mx[48];
    struct store_series_buckets b = {cnt, sum, mn, mx, 0};
    struct store_series_query q = {f->users[0], "steps", t0, t0 + 2 * 86400000LL, 3600000LL, 48};
    int hit = 0;
    assert_int_equal(store_series_aggregate(f->st, &q, &b, &hit), 0); /* fills the sealed sums */
    assert_int_equal(hit, 1);
    memcpy(cnt2, cnt, sizeof(cnt));
    size_t blobs = blobs_all_under(f, 1);
    assert_true(blobs >= 4); /* day rows of two users, two days, and aggregates */

    assert_int_equal(keyring_rotate(f->ring, &v, err, sizeof(err)), 0);
    assert_int_equal(keyring_rewrap(f->ring, 2, NULL, NULL, &st, err, sizeof(err)), 0);
    assert_int_equal(st.failed, 0);
    assert_true(st.tables[KEYRING_REWRAP_SAMPLE_DAYS].rewrapped >= 4);
    assert_true(st.tables[KEYRING_REWRAP_SAMPLE_DAY_AGGS].rewrapped >= 2); /* one per day row of user 0 */
    assert_string_equal(st.tables[KEYRING_REWRAP_SAMPLE_DAY_AGGS].name, "sample_day_aggs");
    assert_int_equal(st.rewrapped, (int64_t)blobs);
    assert_int_equal(blobs_all_under(f, 2), blobs);

    admin(f, "DELETE FROM key_ring WHERE version = 1");
    keyring_close(f->ring);
    assert_int_equal(keyring_open(f->st, f->master, &f->ring, err, sizeof(err)), 0);
    keyring_store_sealer(f->ring, &z);
    store_set_sealer(f->st, &z);
    for (int u = 0; u < NUSERS; u++) {
        int64_t count = 0;
        assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
        struct store_sample_query sq = {.user_id = f->users[u], .start_ms = INT64_MIN, .end_ms = INT64_MAX};
        assert_int_equal(store_sample_each(tx, &sq, count_samples, &count), 0);
        store_tx_rollback(tx);
        assert_int_equal(count, N / NUSERS);
    }
    memset(cnt, 0, sizeof(cnt));
    assert_int_equal(store_series_aggregate(f->st, &q, &b, &hit), 0); /* the re-wrapped sums */
    assert_int_equal(hit, 1);
    assert_memory_equal(cnt, cnt2, sizeof(cnt));
    store_set_sealer(f->st, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_body_compressed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sealed_analyses_insights, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_file_has_no_plaintext, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampering_in_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_sealed_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_concurrent_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_store_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewrap_beside_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sample_blocks_sealed, setup, teardown),
    };
    return cmocka_run_group_tests_name("keyring", tests, NULL, NULL);
}
