/*
 * err_test.c — the one error space (core/err.h) and its one mapping to
 * RFC 7807 (api_store_failure).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "api/api.h"
#include "core/err.h"
#include "http/http.h"

/* Every code of err.h, block by block. */
static const int codes[] = {
    STORE_ENOTFOUND,  STORE_ECONFLICT,     STORE_EUNAVAILABLE,
    STORE_EBUSY,      STORE_EINVAL,        STORE_ENOMEM,
    STORE_EINTERNAL,  STORE_EMIGRATION,    STORE_EUNSUPPORTED,
    ENVELOPE_EINVAL,  ENVELOPE_ENOMEM,     ENVELOPE_EAUTH,
    ENVELOPE_EINIT,   KEYRING_EINVAL,      KEYRING_EAUTH,
    KEYRING_ENOKEY,   KEYRING_EIO,         KEYRING_ENOMEM,
    KEYRING_ESTATE,   PAT_ERR_IO,          PAT_ERR_FORMAT,
    PAT_ERR_SHAPE,    PAT_ERR_CHECKSUM,    PAT_ERR_NOMEM,
    PAT_ERR_ARG,      PAT_ERR_INPUT,       COMPUTE_EREJECTED,
    COMPUTE_ENOMEM,   COMPUTE_EINTERNAL,   WORKER_ERELEASED,
    ANALYSIS_EINVAL,  ANALYSIS_ETOOMANY,   ANALYSIS_EINTERNAL,
    ANALYSIS_ESPAN,   APPLE_EXPORT_EINVAL, APPLE_EXPORT_EFORMAT,
    APPLE_EXPORT_EIO, APPLE_EXPORT_ENOMEM, APPLE_EXPORT_ECALLBACK,
    HK_EINVAL,        HK_EUNKNOWN_TYPE,    HK_EUNIT,
    HK_EVALUE,        INGEST_EINVAL,       INGEST_ENOMEM,
    INGEST_EINVALID,  INGEST_EOWNER,       JOBS_EPAYLOAD,
    JOBS_ENOMEM,      JSON_EINVALID,       JSON_ENOMEM,
    TOKEN_EINVALID,   TOKEN_ENOMEM,        TOKEN_EUNAVAILABLE,
};
#define NCODES (sizeof(codes) / sizeof(codes[0]))

/* No two modules share a number (the bug this space fixes: KEYRING_EINVAL
 * was COMPUTE_EREJECTED, APPLE_EXPORT_EFORMAT was STORE_ECONFLICT). */
static void test_codes_distinct_and_in_blocks(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        assert_true(codes[i] < 0);
        for (size_t j = i + 1; j < NCODES; j++)
            assert_int_not_equal(codes[i], codes[j]);
    }
    assert_int_equal(KEYRING_EINVAL / 100, -3);
    assert_int_equal(COMPUTE_EREJECTED / 100, -5);
    assert_int_equal(APPLE_EXPORT_EFORMAT / 100, -8);
    assert_int_equal(STORE_ECONFLICT / 100, -1);
    assert_int_equal(JOBS_EPAYLOAD / 100, -11);
}

/* Every code has a name of its own; unknown numbers say so. */
static void test_strerror_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(clarity_strerror(0), "ok");
    for (size_t i = 0; i < NCODES; i++)
        assert_string_not_equal(clarity_strerror(codes[i]), "unknown error");
    assert_string_equal(clarity_strerror(-1), "unknown error");
    assert_string_equal(clarity_strerror(-99999), "unknown error");
    assert_string_equal(clarity_strerror(STORE_ENOTFOUND), "not found");
    assert_string_equal(clarity_strerror(HK_EUNKNOWN_TYPE), "unknown HealthKit type");
}

static int status_of(int rc, int *retry_after)
{
    struct http_response res;
    memset(&res, 0, sizeof(res));
    api_store_failure(&res, rc);
    int status = res.status;
    assert_int_equal(res.problem.status, status);
    *retry_after = res.problem.retry_after;
    problem_clear(&res.problem);
    return status;
}

/* The one mapping to problem+json: client-caused and retryable codes get
 * their status, everything else (keyring, compute, ingest, jobs) is a 500. */
static void test_problem_mapping(void **state)
{
    (void)state;
    int ra = 0;
    assert_int_equal(status_of(STORE_ENOTFOUND, &ra), 404);
    assert_int_equal(status_of(STORE_ECONFLICT, &ra), 409);
    assert_int_equal(status_of(STORE_EINVAL, &ra), 422);
    assert_int_equal(status_of(STORE_EUNAVAILABLE, &ra), 503);
    assert_true(ra > 0);
    assert_int_equal(status_of(STORE_EBUSY, &ra), 503);
    assert_int_equal(ra, 1);
    assert_int_equal(status_of(KEYRING_EAUTH, &ra), 500);
    assert_int_equal(status_of(KEYRING_EINVAL, &ra), 500); /* was −101 = COMPUTE_EREJECTED */
    assert_int_equal(status_of(INGEST_EOWNER, &ra), 403);
    assert_int_equal(status_of(INGEST_EINVAL, &ra), 500);
    assert_int_equal(status_of(JOBS_EPAYLOAD, &ra), 500);
    /* Memory that ran short is the server's passing failure: 503 with
     * Retry-After, never a 4xx and never a plain 500 (#16). */
    const int oom[] = {STORE_ENOMEM,        ENVELOPE_ENOMEM, KEYRING_ENOMEM, PAT_ERR_NOMEM, COMPUTE_ENOMEM,
                       APPLE_EXPORT_ENOMEM, INGEST_ENOMEM,   JOBS_ENOMEM,    JSON_ENOMEM,   TOKEN_ENOMEM};
    for (size_t i = 0; i < sizeof(oom) / sizeof(oom[0]); i++) {
        ra = 0;
        assert_int_equal(status_of(oom[i], &ra), 503);
        assert_true(ra > 0);
    }
    assert_int_equal(status_of(TOKEN_EUNAVAILABLE, &ra), 503);
    assert_int_equal(status_of(JSON_EINVALID, &ra), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_distinct_and_in_blocks),
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_problem_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
