/*
 * reset_test.c — one-time password-reset codes (src/auth/reset.c) on a real
 * SQLite store: what is stored (a hash, an expiry an hour out), the right
 * code accepted once, a wrong one counted, expired and used-up codes
 * refused, a new code replacing the old, and a code bound to its user.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/reset.h"
#include "core/uuid.h"
#include "store/migrate.h"
#include "store/store.h"

#define T0 1765000000000LL /* a fixed "now" (2025-12-06) */

struct fix {
    char dir[64];
    struct store *st;
    char user[STORE_ID_LEN];
    char other[STORE_ID_LEN];
};

static void add_user(struct store *st, char id[STORE_ID_LEN])
{
    struct store_tx *tx = NULL;
    struct store_user u;
    memset(&u, 0, sizeof(u));
    uuid_v7(u.id);
    snprintf(u.email, sizeof(u.email), "r-%.36s@example.com", u.id);
    snprintf(u.password_hash, sizeof(u.password_hash), "x");
    snprintf(u.role, sizeof(u.role), "patient");
    snprintf(u.status, sizeof(u.status), "active");
    assert_int_equal(store_tx_begin(st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(store_user_insert(tx, &u), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    memcpy(id, u.id, STORE_ID_LEN);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    char url[128], err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/clarity-reset-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(url, sizeof(url), "sqlite:%s/c.db", f->dir);
    assert_int_equal(store_open(url, NULL, &f->st, err, sizeof(err)), 0);
    assert_int_equal(store_migrate_up(f->st, NULL, NULL, err, sizeof(err)), 0);
    add_user(f->st, f->user);
    add_user(f->st, f->other);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    char path[128];
    store_close(f->st);
    static const char *const ext[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/c.db%s", f->dir, ext[i]);
        unlink(path);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void issue(struct fix *f, const char *user, int64_t now, char code[RESET_CODE_LEN + 1])
{
    struct store_tx *tx = NULL;
    int64_t exp = 0;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(reset_code_issue(tx, user, now, code, &exp), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    assert_int_equal(exp, now + 3600 * 1000LL);
}

static enum reset_outcome redeem(struct fix *f, const char *user, const char *code, int64_t now)
{
    struct store_tx *tx = NULL;
    enum reset_outcome o = RESET_ACCEPTED;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_WRITE, &tx), 0);
    assert_int_equal(reset_code_redeem(tx, user, code, now, &o), 0);
    assert_int_equal(store_tx_commit(tx), 0);
    return o;
}

static int get(struct fix *f, const char *user, struct store_reset_code *c)
{
    struct store_tx *tx = NULL;
    assert_int_equal(store_tx_begin(f->st, STORE_TX_READ, &tx), 0);
    int rc = store_reset_code_get(tx, user, c);
    store_tx_rollback(tx);
    return rc;
}

/* 1. Issued: 24 URL-safe characters, only a hash stored; the right code
 *    works once. */
static void test_right_code_once(void **state)
{
    struct fix *f = *state;
    char code[RESET_CODE_LEN + 1];
    struct store_reset_code c;
    issue(f, f->user, T0, code);
    assert_int_equal(strlen(code), RESET_CODE_LEN);
    assert_int_equal(strspn(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), RESET_CODE_LEN);
    assert_int_equal(get(f, f->user, &c), 0);
    assert_int_equal(strlen(c.code_hash), 64);
    assert_null(strstr(c.code_hash, code));
    assert_int_equal(c.attempts, 0);
    assert_int_equal(redeem(f, f->user, code, T0 + 1000), RESET_ACCEPTED);
    assert_int_equal(get(f, f->user, &c), STORE_ENOTFOUND);
    assert_int_equal(redeem(f, f->user, code, T0 + 2000), RESET_REFUSED);
}

/* 2. Wrong codes are counted; after RESET_MAX_ATTEMPTS the right one is
 *    refused too, and refusals change nothing. */
static void test_wrong_counted_then_used_up(void **state)
{
    struct fix *f = *state;
    char code[RESET_CODE_LEN + 1];
    struct store_reset_code c;
    issue(f, f->user, T0, code);
    for (int i = 0; i < RESET_MAX_ATTEMPTS; i++)
        assert_int_equal(redeem(f, f->user, "AAAAAAAAAAAAAAAAAAAAAAAA", T0), RESET_WRONG);
    assert_int_equal(get(f, f->user, &c), 0);
    assert_int_equal(c.attempts, RESET_MAX_ATTEMPTS);
    assert_int_equal(redeem(f, f->user, code, T0), RESET_REFUSED);
    assert_int_equal(get(f, f->user, &c), 0);
    assert_int_equal(c.attempts, RESET_MAX_ATTEMPTS);
}

/* 3. Expiry: valid up to the last millisecond before expires_at. */
static void test_expiry(void **state)
{
    struct fix *f = *state;
    char code[RESET_CODE_LEN + 1];
    issue(f, f->user, T0, code);
    assert_int_equal(redeem(f, f->user, code, T0 + 3600 * 1000LL), RESET_REFUSED);
    assert_int_equal(redeem(f, f->user, code, T0 + 3600 * 1000LL - 1), RESET_ACCEPTED);
}

/* 4. A new code replaces the old one (and its count of tries); a code is
 *    bound to its user. */
static void test_replaced_and_bound(void **state)
{
    struct fix *f = *state;
    char first[RESET_CODE_LEN + 1], second[RESET_CODE_LEN + 1], theirs[RESET_CODE_LEN + 1];
    struct store_reset_code c;
    issue(f, f->user, T0, first);
    assert_int_equal(redeem(f, f->user, "wrong", T0), RESET_WRONG);
    issue(f, f->user, T0 + 10, second);
    assert_string_not_equal(first, second);
    assert_int_equal(get(f, f->user, &c), 0);
    assert_int_equal(c.attempts, 0);
    assert_int_equal(redeem(f, f->user, first, T0 + 20), RESET_WRONG);
    issue(f, f->other, T0, theirs);
    assert_int_equal(redeem(f, f->user, theirs, T0 + 30), RESET_WRONG);
    assert_int_equal(redeem(f, f->other, second, T0 + 30), RESET_WRONG);
    assert_int_equal(redeem(f, f->user, second, T0 + 40), RESET_ACCEPTED);
    assert_int_equal(redeem(f, f->other, theirs, T0 + 40), RESET_ACCEPTED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_right_code_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_counted_then_used_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_and_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
