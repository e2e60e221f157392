/* test_config.c: the option table, the libconfig reader and its error messages. */
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

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/hb-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads text; returns the config or NULL with the error in err. */
static hb_config_t *load_text(const char *text, char *err, size_t errlen) {
    char *path = write_tmp(text);
    hb_config_t *c = config_load(path, err, errlen);
    unlink(path);
    free(path);
    return c;
}

static void test_defaults(void **state) {
    (void)state;
    hb_config_t *c = config_new();
    assert_non_null(c);
    assert_string_equal(c->http_listen, "0.0.0.0:8080");
    assert_string_equal(c->http_path, "/webhooks/cloud66");
    assert_int_equal(c->http_max_body_bytes, 1048576);
    assert_int_equal(c->spool_max_bytes, 1073741824LL);
    assert_int_equal(c->envelope_mode, CFG_MODE_STRUCTURED);
    assert_int_equal(c->kafka_cnt, 0);
    config_free(c);
}

static void test_values_and_kafka_passthrough(void **state) {
    (void)state;
    char err[512] = "";
    hb_config_t *c = load_text("http = { listen = \"127.0.0.1:0\"; max_body_bytes = 100; };\n"
                               "envelope = { mode = \"binary\"; };\n"
                               "kafka = { bootstrap_servers = \"a:1,b:2\"; linger_ms = 7;\n"
                               "          enable_idempotence = true; };\n"
                               "routing = { rules = ( { match = \"server.*\"; family = \"infra\"; } );\n"
                               "            topics = { infra = \"ops.infra\"; }; };\n",
                               err, sizeof err);
    assert_non_null(c);
    assert_string_equal(c->http_listen, "127.0.0.1:0");
    assert_int_equal(c->http_max_body_bytes, 100);
    assert_int_equal(c->envelope_mode, CFG_MODE_BINARY);
    assert_int_equal(c->kafka_cnt, 3);
    assert_string_equal(c->kafka[0].name, "bootstrap.servers");
    assert_string_equal(c->kafka[0].value, "a:1,b:2");
    assert_string_equal(c->kafka[1].name, "linger.ms");
    assert_string_equal(c->kafka[1].value, "7");
    assert_string_equal(c->kafka[2].value, "true");
    assert_int_equal(c->kafka[1].line, 3);
    assert_int_equal(c->routing_rules_cnt, 1);
    assert_string_equal(c->routing_rules[0].name, "server.*");
    assert_string_equal(c->routing_rules[0].value, "infra");
    assert_int_equal(c->routing_topics_cnt, 1);
    assert_string_equal(c->routing_topics[0].value, "ops.infra");
    config_free(c);
}

static void expect_error(const char *text, const char *needle) {
    char err[512] = "";
    hb_config_t *c = load_text(text, err, sizeof err);
    if (c || !strstr(err, needle))
        fail_msg("config %s: want error containing '%s', got '%s'", c ? "loaded" : "failed",
                 needle, err);
}

static void test_errors_name_line_and_reason(void **state) {
    (void)state;
    expect_error("http = {\n  listen = 8080;\n};\n", ":2: http.listen must be a string");
    expect_error("http = {\n\n  bogus = 1;\n};\n", ":3: unknown option 'http.bogus'");
    expect_error("nonsense = { a = 1; };\n", ":1: unknown group 'nonsense'");
    expect_error("http = { max_body_bytes = 0; };\n", "out of range [1, 67108864]");
    expect_error("log = { level = \"loud\"; };\n", "is not one of: debug, info, warn, error, off");
    expect_error("http = { listen = \"x\" \n", ":2:"); /* syntax error: libconfig's line */
    expect_error("routing = { rules = ( { match = \"a.*\"; } ); };\n", "needs both match and family");
    expect_error("kafka = { a = [1, 2]; };\n", "kafka.a: a librdkafka property takes");
    expect_error("spool = \"x\";\n", "'spool' must be a group");
    char err[256];
    assert_null(config_load("/nonexistent/hookbridge.conf", err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
}

/* The annotated sample must load and must show every option of the table. */
static void test_sample_config_covers_table(void **state) {
    (void)state;
    char err[512] = "";
    hb_config_t *c = config_load(HB_SOURCE_DIR "/conf/hookbridge.conf", err, sizeof err);
    if (!c)
        fail_msg("sample config rejected: %s", err);
    config_free(c);
    FILE *f = fopen(HB_SOURCE_DIR "/conf/hookbridge.conf", "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < config_option_count(); i++) {
        const char *name = config_option_name(i);
        const char *leaf = strrchr(name, '.');
        leaf = leaf ? leaf + 1 : name;
        char pat[128];
        snprintf(pat, sizeof pat, "%s =", leaf);
        if (!strstr(text, pat))
            fail_msg("conf/hookbridge.conf does not show option %s", name);
    }
}

/* The README's configuration reference must name every option of the table. */
static void test_readme_covers_table(void **state) {
    (void)state;
    FILE *f = fopen(HB_SOURCE_DIR "/README.md", "r");
    assert_non_null(f);
    static char text[262144];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < config_option_count(); i++) {
        char pat[128];
        snprintf(pat, sizeof pat, "`%s`", config_option_name(i));
        if (!strstr(text, pat))
            fail_msg("README.md's configuration reference lacks %s", config_option_name(i));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_values_and_kafka_passthrough),
        cmocka_unit_test(test_errors_name_line_and_reason),
        cmocka_unit_test(test_sample_config_covers_table),
        cmocka_unit_test(test_readme_covers_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
