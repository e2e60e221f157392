/* test_endpoint.c: the endpoint set: built from the config's endpoints, matched by path, and
 * independent of the config once built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "endpoint.h"

static hb_config_t *load_text(const char *text) {
    char path[] = "/tmp/hb-endpoint-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512] = "";
    hb_config_t *c = config_load(path, err, sizeof err);
    unlink(path);
    if (!c)
        fail_msg("config refused: %s", err);
    return c;
}

static const char *const TWO =
    "endpoints = (\n"
    "  { name = \"prod\"; path = \"/webhooks/prod\";\n"
    "    auth = { tokens = ( \"prod-token-0123456789\" ); };\n"
    "    envelope = { source = \"/cloud66/prod\"; mode = \"binary\"; };\n"
    "    routing = { topic_prefix = \"prod.\"; topics = { backup = \"prod-backups\"; }; }; },\n"
    "  { name = \"special\"; path = \"/webhooks/prod/special\"; },\n"
    "  { name = \"staging\"; path = \"/webhooks/staging\";\n"
    "    auth = { allow_from = ( \"10.0.0.0/8\" ); }; }\n"
    ");\n"
    "http = { json_max_depth = 7; };\n";

/* The config is freed before the set is used: nothing in the set may point into it. */
static endpoint_set_t *build_two(void) {
    hb_config_t *c = load_text(TWO);
    char err[512] = "";
    endpoint_set_t *set = endpoint_set_new(c, err, sizeof err);
    config_free(c);
    if (!set)
        fail_msg("%s", err);
    return set;
}

static const char *matched(const endpoint_set_t *set, const char *path, const char **token,
                           const char **under) {
    int i = endpoint_set_match(set, path, token, under);
    return i < 0 ? NULL : endpoint_name(endpoint_set_get(set, (size_t)i));
}

static void test_match(void **state) {
    (void)state;
    endpoint_set_t *set = build_two();
    const char *token, *under;
    assert_int_equal(endpoint_set_count(set), 3);
    assert_string_equal(matched(set, "/webhooks/prod", &token, &under), "prod");
    assert_null(token);
    assert_string_equal(matched(set, "/webhooks/prod/tok-123", &token, &under), "prod");
    assert_string_equal(token, "tok-123");
    /* An exact path beats a token of the endpoint above it. */
    assert_string_equal(matched(set, "/webhooks/prod/special", &token, &under), "special");
    assert_null(token);
    assert_string_equal(matched(set, "/webhooks/staging", &token, &under), "staging");
    /* No tokens at staging: what follows its path is nothing; the answer names only the
     * endpoint path above. */
    assert_null(matched(set, "/webhooks/staging/tok", &token, &under));
    assert_string_equal(under, "/webhooks/staging");
    assert_null(matched(set, "/webhooks/prod/a/b", &token, &under));
    assert_string_equal(under, "/webhooks/prod");
    assert_null(matched(set, "/webhooks/prod/special/x", &token, &under));
    assert_string_equal(under, "/webhooks/prod/special"); /* the longest */
    assert_null(matched(set, "/webhooks/prod/", &token, &under));
    assert_string_equal(under, "/webhooks/prod");
    assert_null(matched(set, "/webhooks/cloud66", &token, &under));
    assert_null(under);
    assert_null(matched(set, "/webhooks/productions", &token, &under));
    assert_null(under);
    assert_null(matched(NULL, "/webhooks/prod", &token, &under));
    endpoint_set_free(set);
}

static void test_each_endpoint_has_its_own_settings(void **state) {
    (void)state;
    endpoint_set_t *set = build_two();
    const endpoint_t *prod = endpoint_set_get(set, 0), *special = endpoint_set_get(set, 1),
                     *staging = endpoint_set_get(set, 2);
    assert_string_equal(endpoint_path(prod), "/webhooks/prod");
    assert_string_equal(endpoint_norm(prod)->source, "/cloud66/prod");
    assert_int_equal(endpoint_norm(prod)->mode, NORM_BINARY);
    assert_int_equal(endpoint_norm(prod)->max_depth, 7);
    assert_string_equal(endpoint_norm(special)->source, "/cloud66");
    assert_int_equal(endpoint_norm(special)->mode, NORM_STRUCTURED);
    char topic[256];
    assert_true(route_topic(endpoint_router(prod), "backup", topic, sizeof topic) > 0);
    assert_string_equal(topic, "prod-backups");
    assert_true(route_topic(endpoint_router(prod), "stack", topic, sizeof topic) > 0);
    assert_string_equal(topic, "prod.stack");
    assert_true(route_topic(endpoint_router(staging), "stack", topic, sizeof topic) > 0);
    assert_string_equal(topic, "cloud66.stack");
    assert_true(auth_uses_tokens(endpoint_auth(prod)));
    assert_null(endpoint_auth(special)); /* nothing configured: no access control */
    assert_false(auth_uses_tokens(endpoint_auth(staging)));
    assert_true(auth_enabled(endpoint_auth(staging)));
    endpoint_set_free(set);
}

/* Access control and routing are checked per endpoint; the error names the line and the
 * endpoint. */
static void test_bad_entry_names_line_and_endpoint(void **state) {
    (void)state;
    hb_config_t *c = load_text("endpoints = (\n"
                               "  { name = \"a\"; path = \"/a\"; },\n"
                               "  { name = \"b\"; path = \"/b\";\n"
                               "    auth = { allow_from = ( \"10.0.0.0/33\" ); }; }\n"
                               ");\n");
    char err[512] = "";
    assert_null(endpoint_set_new(c, err, sizeof err));
    if (!strstr(err, ":4: auth.allow_from[0]") || !strstr(err, "(in endpoint 'b')"))
        fail_msg("got '%s'", err);
    config_free(c);
    c = load_text("endpoints = (\n"
                  "  { name = \"a\"; path = \"/a\";\n"
                  "    routing = { rules = (\n"
                  "      { match = \"x.*\"; family = \"bad family\"; } ); }; }\n"
                  ");\n");
    assert_null(endpoint_set_new(c, err, sizeof err));
    if (!strstr(err, ":4: routing.rules") || !strstr(err, "(in endpoint 'a')"))
        fail_msg("got '%s'", err);
    config_free(c);
}

/* Without a list, one endpoint "webhook" at http.path. */
static void test_implicit_webhook_endpoint(void **state) {
    (void)state;
    hb_config_t *c = config_new();
    char err[512] = "";
    endpoint_set_t *set = endpoint_set_new(c, err, sizeof err);
    config_free(c);
    assert_non_null(set);
    assert_int_equal(endpoint_set_count(set), 1);
    const char *token, *under;
    assert_string_equal(matched(set, "/webhooks/cloud66", &token, &under), "webhook");
    assert_null(endpoint_auth(endpoint_set_get(set, 0)));
    endpoint_set_free(set);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_each_endpoint_has_its_own_settings),
        cmocka_unit_test(test_bad_entry_names_line_and_endpoint),
        cmocka_unit_test(test_implicit_webhook_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
