/*
 * router_test.c — matching, parameters, specificity, 404/405 and Allow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "http/http.h"
#include "http/router.h"
#include "http/server.h"

static void h_a(struct http_request *req, struct http_response *res)
{
    (void)req;
    (void)res;
}
static void h_b(struct http_request *req, struct http_response *res)
{
    (void)req;
    (void)res;
}
static void h_c(struct http_request *req, struct http_response *res)
{
    (void)req;
    (void)res;
}

static struct router r;

static int setup(void **state)
{
    (void)state;
    router_init(&r);
    /* Parameter route registered BEFORE the literal one it must not shadow. */
    if (router_add(&r, HTTP_GET, "/api/v1/insights/{insight_id}", h_a, NULL, 0) ||
        router_add(&r, HTTP_GET, "/api/v1/insights/status", h_b, NULL, 0) ||
        router_add(&r, HTTP_DELETE, "/api/v1/insights/{insight_id}", h_c, NULL, 0) ||
        router_add(&r, HTTP_GET, "/api/v1/insights/history/{user_id}", h_c, NULL, 0) ||
        router_add(&r, HTTP_POST, "/api/v1/health-data/upload", h_a, NULL, 0) ||
        router_add(&r, HTTP_GET, "/api/v1/users/{user_id}/items/{item_id}", h_b, NULL, 0) ||
        router_add(&r, HTTP_GET, "/", h_c, NULL, 0))
        return -1;
    return 0;
}

static void test_literal_beats_parameter(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/insights/status", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_b);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/insights/abc", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_a);
}

static void test_parameters_bound(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/users/u1/items/i-22", &m), ROUTER_FOUND);
    assert_int_equal(m.nparams, 2);
    assert_int_equal(m.params[0].namelen, strlen("user_id"));
    assert_memory_equal(m.params[0].name, "user_id", 7);
    assert_int_equal(m.params[0].len, 2);
    assert_memory_equal(m.params[0].value, "u1", 2);
    assert_memory_equal(m.params[1].name, "item_id", 7);
    assert_memory_equal(m.params[1].value, "i-22", 4);
}

static void test_not_found(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/insights", &m), ROUTER_NOT_FOUND);
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/insights/a/b", &m), ROUTER_NOT_FOUND);
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/users//items/x", &m), ROUTER_NOT_FOUND);
    assert_int_equal(router_match(&r, HTTP_GET, "/nothing", &m), ROUTER_NOT_FOUND);
    /* Thirteen segments: more than any route can have. */
    assert_int_equal(router_match(&r, HTTP_GET, "/a/b/c/d/e/f/g/h/i/j/k/l/m", &m), ROUTER_NOT_FOUND);
}

static void test_trailing_slash_and_root(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/insights/status/", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_b);
    assert_int_equal(router_match(&r, HTTP_GET, "/", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_c);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_POST, "/api/v1/insights/xyz", &m), ROUTER_METHOD_NOT_ALLOWED);
    char allow[96];
    router_allow_header(m.allowed, allow, sizeof(allow));
    assert_string_equal(allow, "GET, HEAD, DELETE, OPTIONS");
    assert_int_equal(router_match(&r, HTTP_GET, "/api/v1/health-data/upload", &m), ROUTER_METHOD_NOT_ALLOWED);
    router_allow_header(m.allowed, allow, sizeof(allow));
    assert_string_equal(allow, "POST, OPTIONS");
}

static void test_delete_on_parameter_route(void **state)
{
    (void)state;
    struct router_match m;
    /* DELETE /insights/status: only the parameter route has DELETE. */
    assert_int_equal(router_match(&r, HTTP_DELETE, "/api/v1/insights/status", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_c);
}

static void test_head_uses_get(void **state)
{
    (void)state;
    struct router_match m;
    assert_int_equal(router_match(&r, HTTP_HEAD, "/api/v1/insights/status", &m), ROUTER_FOUND);
    assert_ptr_equal(m.route->handler, h_b);
}

static void test_add_rejections(void **state)
{
    (void)state;
    struct router r2;
    router_init(&r2);
    assert_int_equal(router_add(&r2, HTTP_GET, "no-slash", h_a, NULL, 0), -1);
    assert_int_equal(router_add(&r2, HTTP_GET, "/a", NULL, NULL, 0), -1);
    assert_int_equal(router_add(&r2, HTTP_GET, "/a", h_a, NULL, 0), 0);
    assert_int_equal(router_add(&r2, HTTP_GET, "/a", h_b, NULL, 0), -1); /* duplicate */
    assert_int_equal(router_add(&r2, HTTP_POST, "/a", h_b, NULL, 0), 0);
    assert_int_equal(router_add(&r2, HTTP_GET, "/{a}/{b}/{c}/{d}/{e}", h_a, NULL, 0), -1); /* 5 params */
    assert_int_equal(r2.n, 2);
    assert_int_equal(r2.routes[1].index, 1);
}

static void test_method_parse(void **state)
{
    (void)state;
    assert_int_equal(http_method_parse("GET"), HTTP_GET);
    assert_int_equal(http_method_parse("OPTIONS"), HTTP_OPTIONS);
    assert_int_equal(http_method_parse("get"), HTTP_METHOD_UNKNOWN);
    assert_int_equal(http_method_parse("TRACE"), HTTP_METHOD_UNKNOWN);
    assert_string_equal(http_method_name(HTTP_DELETE), "DELETE");
}

static void test_request_id_sanity(void **state)
{
    (void)state;
    assert_true(http_request_id_is_sane("abc-123"));
    assert_true(http_request_id_is_sane("3e65c32f-8dc5-426b-b928-eaebb20c2679"));
    assert_true(http_request_id_is_sane("trace.id_1:2"));
    assert_false(http_request_id_is_sane(NULL));
    assert_false(http_request_id_is_sane(""));
    assert_false(http_request_id_is_sane("has space"));
    assert_false(http_request_id_is_sane("inject\r\nSet-Cookie: x"));
    assert_false(http_request_id_is_sane("quote\""));
    char longid[130];
    memset(longid, 'a', 129);
    longid[129] = '\0';
    assert_false(http_request_id_is_sane(longid));
    longid[128] = '\0';
    assert_true(http_request_id_is_sane(longid));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_beats_parameter),
        cmocka_unit_test(test_parameters_bound),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_trailing_slash_and_root),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_delete_on_parameter_route),
        cmocka_unit_test(test_head_uses_get),
        cmocka_unit_test(test_add_rejections),
        cmocka_unit_test(test_method_parse),
        cmocka_unit_test(test_request_id_sanity),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
