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

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "producer.h"

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

/* libconfig 1.5 reads 5368709120 as 1073741824 unless it is written 5368709120L: the loader
 * refuses such a literal with its line, and takes the L form, and big numbers in strings and
 * comments, as they are. */
static void test_wide_integers_need_the_L_suffix(void **state) {
    (void)state;
    char err[512];
    hb_config_t *c = load_text("# spool.max_bytes\nspool = {\n  max_bytes = 5368709120;\n};\n",
                               err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, ":3: 5368709120 does not fit in 32 bits"));
    assert_non_null(strstr(err, "write 5368709120L"));
    c = load_text("kafka = { message_timeout_ms = -3000000000; };\n", err, sizeof err);
    assert_null(c);
    assert_non_null(strstr(err, ":1: -3000000000 does not fit"));

    c = load_text("# 99999999999 in a comment\n"
                  "/* and 99999999999\n here */\n"
                  "http = { path = \"/hooks/99999999999\"; };\n"
                  "spool = { max_bytes = 5368709120L; };\n"
                  "kafka = { batch_size = 2147483647; linger_ms = 1.5e10; acks = \"-1\"; };\n",
                  err, sizeof err);
    assert_non_null(c);
    assert_int_equal(c->spool_max_bytes, 5368709120LL);
    assert_string_equal(c->http_path, "/hooks/99999999999");
    config_free(c);
}

static void test_defaults(void **state) {
    (void)state;
    hb_config_t *c = config_new();
    assert_non_null(c);
    assert_string_equal(c->http_listen, "0.0.0.0:8080");
    assert_string_equal(c->http_path, "/webhooks/cloud66");
    assert_int_equal(c->http_max_body_bytes, 131072); /* fits message.max.bytes (bridge.c) */
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


/* ---- endpoints --------------------------------------------------------------------------- */

static const cfg_endpoint_t *endpoint_named(const hb_config_t *c, const char *name) {
    for (size_t i = 0; i < c->endpoints_cnt; i++)
        if (strcmp(c->endpoints[i].name, name) == 0)
            return &c->endpoints[i];
    fail_msg("no endpoint named %s", name);
    return NULL;
}

/* Each entry is the top level with its own settings laid over it: what it sets replaces the
 * top-level value whole (an empty list turns a mode off), what it leaves out is inherited, and
 * the top level counts wherever it sits in the file (here after the list). */
static void test_endpoints_overlay_the_top_level(void **state) {
    (void)state;
    char err[512] = "";
    hb_config_t *c = load_text(
        "endpoints = (\n"
        "  { name = \"prod\"; path = \"/webhooks/prod\";\n"
        "    auth = { tokens = [ \"prod-token-0123456789\" ]; };\n"
        "    envelope = { source = \"/cloud66/prod\"; };\n"
        "    routing = { topic_prefix = \"prod.\"; topics = { backup = \"prod-backups\"; }; };\n"
        "  },\n"
        "  { name = \"staging\"; path = \"/webhooks/staging\";\n"
        "    auth = { tokens = []; allow_from = [ \"10.0.0.0/8\" ]; }; }\n"
        ");\n"
        "http = { path = \"/top\"; json_max_depth = 9; };\n"
        "auth = { tokens = ( \"top-token-0123456789\" ); basic_users = ( \"u:p\" ); };\n"
        "envelope = { source = \"/top\"; mode = \"binary\"; };\n"
        "routing = { topic_prefix = \"top.\"; topics = { stack = \"top-stack\"; };\n"
        "            rules = ( { match = \"x.*\"; family = \"ex\"; } ); };\n",
        err, sizeof err);
    if (!c)
        fail_msg("%s", err);
    assert_int_equal(c->endpoints_cnt, 2);
    assert_true(c->endpoints_listed);

    const cfg_endpoint_t *prod = endpoint_named(c, "prod");
    assert_int_equal(prod->line, 2);
    const hb_config_t *p = prod->cfg;
    assert_string_equal(p->http_path, "/webhooks/prod");
    assert_int_equal(p->auth_tokens.count, 1);
    assert_string_equal(p->auth_tokens.items[0], "prod-token-0123456789");
    assert_int_equal(p->auth_tokens.lines[0], 3);
    assert_int_equal(p->auth_basic_users.count, 1); /* inherited */
    assert_string_equal(p->auth_basic_users.items[0], "u:p");
    assert_string_equal(p->envelope_source, "/cloud66/prod");
    assert_int_equal(p->envelope_mode, CFG_MODE_BINARY); /* inherited */
    assert_string_equal(p->routing_topic_prefix, "prod.");
    assert_int_equal(p->routing_topics_cnt, 1); /* replaced, not merged */
    assert_string_equal(p->routing_topics[0].name, "backup");
    assert_string_equal(p->routing_topics[0].value, "prod-backups");
    assert_int_equal(p->routing_rules_cnt, 1); /* inherited */
    assert_int_equal(p->http_json_max_depth, 9);
    assert_int_equal(p->endpoints_cnt, 0);

    const hb_config_t *st = endpoint_named(c, "staging")->cfg;
    assert_string_equal(st->http_path, "/webhooks/staging");
    assert_int_equal(st->auth_tokens.count, 0); /* an explicit empty list: off */
    assert_int_equal(st->auth_allow_from.count, 1);
    assert_int_equal(st->auth_basic_users.count, 1);
    assert_string_equal(st->envelope_source, "/top");
    assert_string_equal(st->routing_topic_prefix, "top.");
    assert_int_equal(st->routing_topics_cnt, 1);
    assert_string_equal(st->routing_topics[0].value, "top-stack");
    /* The top level itself is untouched by the entries. */
    assert_int_equal(c->auth_tokens.count, 1);
    assert_string_equal(c->routing_topic_prefix, "top.");
    config_free(c);
}

/* Without a list (or with an empty one): exactly one endpoint, "webhook", from the top level. */
static void test_implicit_endpoint(void **state) {
    (void)state;
    hb_config_t *d = config_new();
    assert_non_null(d);
    assert_int_equal(d->endpoints_cnt, 1);
    assert_false(d->endpoints_listed);
    assert_string_equal(d->endpoints[0].name, "webhook");
    assert_string_equal(d->endpoints[0].cfg->http_path, "/webhooks/cloud66");
    config_free(d);
    const char *texts[] = {"http = { path = \"/x\"; };\n"
                           "auth = { tokens = ( \"t-0123456789abcdef\" ); };\n",
                           "endpoints = ();\nhttp = { path = \"/x\"; };\n"
                           "auth = { tokens = ( \"t-0123456789abcdef\" ); };\n"};
    for (size_t i = 0; i < 2; i++) {
        char err[512] = "";
        hb_config_t *c = load_text(texts[i], err, sizeof err);
        if (!c)
            fail_msg("%s", err);
        assert_int_equal(c->endpoints_cnt, 1);
        assert_false(c->endpoints_listed);
        assert_string_equal(c->endpoints[0].name, "webhook");
        assert_string_equal(c->endpoints[0].cfg->http_path, "/x");
        assert_int_equal(c->endpoints[0].cfg->auth_tokens.count, 1);
        assert_non_null(c->endpoints[0].cfg->path);
        config_free(c);
    }
}

static void test_endpoint_errors_name_line_and_reason(void **state) {
    (void)state;
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n    bogus = 1; }\n);\n",
                 ":3: endpoint 'a': unknown option 'bogus'");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    auth = { tokenz = []; }; }\n);\n",
                 ":3: endpoint 'a': unknown option 'auth.tokenz'");
    expect_error("endpoints = (\n  { name = \"a\";\n    auth = { tokens = []; }; }\n);\n",
                 ":2: endpoint 'a' needs a path");
    expect_error("endpoints = (\n  { path = \"/a\"; }\n);\n", ":2: endpoints[0] needs a name");
    expect_error("endpoints = (\n  { name = \"a\";\n    path = 5; }\n);\n",
                 ":3: endpoint 'a': path must be a string");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\"; },\n"
                 "  { name = \"a\"; path = \"/b\"; }\n);\n",
                 ":3: endpoint name 'a' is used twice (first at line 2)");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\"; },\n"
                 "  { name = \"b\";\n    path = \"/a\"; }\n);\n",
                 ":4: endpoint 'b': path /a is endpoint 'a''s already (line 2)");
    expect_error("endpoints = (\n  { name = \"a b\"; path = \"/a\"; }\n);\n",
                 ":2: endpoint name 'a b' must be 1 to 64 characters of A-Z a-z 0-9 _ -");
    expect_error("endpoints = (\n  { name = \"healthz\"; path = \"/a\"; }\n);\n",
                 ":2: endpoint name 'healthz' is reserved");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    spool = { dir = \"/x\"; }; }\n);\n",
                 ":3: endpoint 'a': spool.dir cannot be set per endpoint");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    log = { level = \"debug\"; }; }\n);\n",
                 ":3: endpoint 'a': log.level cannot be set per endpoint");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n    kafka = { a = 1; }; }\n);\n",
                 ":3: endpoint 'a': kafka cannot be set per endpoint");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    http = { path = \"/b\"; }; }\n);\n",
                 ":3: endpoint 'a': write the endpoint's path as path");
    expect_error("endpoints = (\n  { name = \"a\";\n    path = \"a\"; }\n);\n",
                 ":3: endpoint 'a': path must start with '/'");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/healthz\"; }\n);\n",
                 ":2: endpoint 'a': path /healthz is the health check");
    expect_error("endpoints = { a = 1; };\n", ":1: endpoints must be a list");
    expect_error("endpoints = (\n  \"a\"\n);\n", "endpoints[0] must be a group");
    /* An option's own check, with the endpoint named. */
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    auth = { tokens = ( \"short\" ); }; }\n);\n",
                 ":3: endpoint 'a': auth.tokens[0] must be 16 to 256 characters long");
    expect_error("endpoints = (\n  { name = \"a\"; path = \"/a\";\n"
                 "    envelope = { mode = \"loud\"; }; }\n);\n",
                 ":3: endpoint 'a': envelope.mode = \"loud\" is not one of");
}

/* ---- reload: diff and take -------------------------------------------------------------- */

typedef struct names {
    char list[1024];
} names_t;

static void collect(void *arg, const char *option) {
    names_t *n = arg;
    strncat(n->list, option, sizeof n->list - strlen(n->list) - 1);
    strncat(n->list, " ", sizeof n->list - strlen(n->list) - 1);
}

static const char *const RUNNING =
    "http = { listen = \"127.0.0.1:0\"; };\n"
    "log = { level = \"info\"; };\n"
    "auth = { tokens = ( \"token-a-0123456789\" ); };\n"
    "spool = { max_bytes = 2097152; };\n"
    "kafka = { bootstrap_servers = \"a:1\"; linger_ms = 5; };\n";

static void test_diff_names_what_changed(void **state) {
    (void)state;
    char err[512] = "";
    hb_config_t *a = load_text(RUNNING, err, sizeof err);
    /* Same values, another order and layout: no difference. */
    hb_config_t *same = load_text("kafka = { linger_ms = 5;\n bootstrap_servers = \"a:1\"; };\n"
                                  "spool = { max_bytes = 2097152; };\n"
                                  "auth = { tokens = [ \"token-a-0123456789\" ]; };\n"
                                  "log = { level = \"info\"; };\n"
                                  "http = { listen = \"127.0.0.1:0\"; };\n",
                                  err, sizeof err);
    hb_config_t *b = load_text("http = { listen = \"127.0.0.1:1\"; };\n"
                               "log = { level = \"debug\"; };\n"
                               "auth = { tokens = ( \"token-b-0123456789\" ); };\n"
                               "routing = { topic_prefix = \"new.\"; };\n"
                               "spool = { max_bytes = 4194304; };\n"
                               "kafka = { bootstrap_servers = \"a:1\"; linger_ms = 7;\n"
                               "          acks = 1; };\n",
                               err, sizeof err);
    assert_non_null(a);
    assert_non_null(same);
    assert_non_null(b);
    assert_int_equal(config_diff(a, same, 0, NULL, NULL), 0);
    assert_int_equal(config_diff(a, same, 1, NULL, NULL), 0);
    names_t restart = {""}, reload = {""};
    assert_int_equal(config_diff(a, b, 0, collect, &restart), 4);
    assert_string_equal(restart.list, "http.listen spool.max_bytes kafka.linger.ms kafka.acks ");
    assert_int_equal(config_diff(a, b, 1, collect, &reload), 3);
    assert_string_equal(reload.list, "log.level routing.topic_prefix auth.tokens ");
    config_free(same);
    config_free(a);
    config_free(b);
}

/* An endpoint list counts as one option, "endpoints": added, removed or changed inside. */
static void test_diff_endpoints(void **state) {
    (void)state;
    char err[512] = "";
    const char *one = "endpoints = ( { name = \"a\"; path = \"/a\"; } );\n";
    const char *renamed = "endpoints = ( { name = \"b\"; path = \"/a\"; } );\n";
    const char *retoken = "endpoints = ( { name = \"a\"; path = \"/a\";\n"
                          "  auth = { tokens = ( \"token-b-0123456789\" ); }; } );\n";
    hb_config_t *plain = load_text("log = { level = \"info\"; };\n", err, sizeof err);
    hb_config_t *c1 = load_text(one, err, sizeof err);
    hb_config_t *c1b = load_text(one, err, sizeof err);
    hb_config_t *c2 = load_text(renamed, err, sizeof err);
    hb_config_t *c3 = load_text(retoken, err, sizeof err);
    assert_true(plain && c1 && c1b && c2 && c3);
    names_t n = {""};
    assert_int_equal(config_diff(c1, c1b, 1, collect, &n), 0);
    assert_int_equal(config_diff(plain, c1, 1, collect, &n), 1);
    assert_string_equal(n.list, "endpoints ");
    assert_int_equal(config_diff(c1, c2, 1, NULL, NULL), 1);
    assert_int_equal(config_diff(c1, c3, 1, NULL, NULL), 1);
    assert_int_equal(config_diff(c1, c3, 0, NULL, NULL), 0);
    config_free(plain);
    config_free(c1);
    config_free(c1b);
    config_free(c2);
    config_free(c3);
}

/* After a reload the running config has the file's reloadable options and keeps its own
 * restart-only ones; the other config holds the old values, for the caller to free. */
static void test_take_reloadable(void **state) {
    (void)state;
    char err[512] = "";
    hb_config_t *run = load_text(RUNNING, err, sizeof err);
    const char *text = "log = { level = \"debug\"; };\n"
                       "auth = { tokens = ( \"token-b-0123456789\" ); };\n"
                       "routing = { topics = { stack = \"s\"; }; };\n"
                       "spool = { max_bytes = 4194304; };\n"
                       "endpoints = ( { name = \"x\"; path = \"/x\"; } );\n";
    hb_config_t *file = load_text(text, err, sizeof err);
    hb_config_t *again = load_text(text, err, sizeof err);
    assert_non_null(run);
    assert_non_null(file);
    assert_non_null(again);
    config_take_reloadable(run, file);
    assert_int_equal(run->log_level, 0 /* debug */);
    assert_string_equal(run->auth_tokens.items[0], "token-b-0123456789");
    assert_int_equal(run->routing_topics_cnt, 1);
    assert_int_equal(run->endpoints_cnt, 1);
    assert_string_equal(run->endpoints[0].name, "x");
    assert_int_equal(run->spool_max_bytes, 2097152);        /* restart-only: kept */
    assert_string_equal(run->http_listen, "127.0.0.1:0");  /* restart-only: kept */
    assert_int_equal(run->kafka_cnt, 2);                    /* restart-only: kept */
    assert_string_equal(file->auth_tokens.items[0], "token-a-0123456789");
    assert_string_equal(file->endpoints[0].name, "webhook");
    /* spool.max_bytes, http.listen and the two kafka properties still differ from the file;
     * nothing reloadable does. */
    assert_int_equal(config_diff(run, again, 0, NULL, NULL), 4);
    assert_int_equal(config_diff(run, again, 1, NULL, NULL), 0);
    config_free(again);
    config_free(file);
    config_free(run);
}

/* The reference says per option whether a SIGHUP applies it, and the flags make sense: every
 * per-endpoint option is reloadable; listeners, spool, producer and kafka need a restart. */
static void test_reference_marks_reload_and_endpoint(void **state) {
    (void)state;
    for (size_t i = 0; i < config_option_count(); i++) {
        const char *n = config_option_name(i);
        unsigned f = config_option_flags(i);
        if (f & CFG_F_ENDPOINT)
            assert_true(f & CFG_F_RELOAD);
        if (strstr(n, "listen") || strncmp(n, "spool.", 6) == 0 ||
            strncmp(n, "producer.", 9) == 0 || strcmp(n, "kafka") == 0)
            if (f & CFG_F_RELOAD)
                fail_msg("%s must need a restart", n);
        if (strncmp(n, "auth.", 5) == 0 || strncmp(n, "routing.", 8) == 0 ||
            strncmp(n, "envelope.", 9) == 0 || strcmp(n, "http.path") == 0)
            if (!(f & CFG_F_ENDPOINT))
                fail_msg("%s must be settable per endpoint", n);
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print_reference(f);
    fclose(f);
    assert_non_null(strstr(text, "| on SIGHUP | per endpoint |"));
    assert_non_null(strstr(text, "| `spool.dir` | string | `/var/lib/hookbridge/spool` | 1 to 4096 "
                                 "chars | restart |  |"));
    assert_non_null(strstr(text, "| `auth.tokens` | string list | `()` | entries 16 to 256 chars "
                                 "| applied | yes |"));
    assert_non_null(strstr(text, "| `log.level` | enum | `info` | debug, info, warn, error, off "
                                 "| applied |  |"));
    free(text);
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

/* The configuration reference (docs/configuration.md) must name every option of the table;
 * test_docs.py checks that its option table is exactly config_print_reference's. */
static void test_docs_cover_table(void **state) {
    (void)state;
    FILE *f = fopen(HB_SOURCE_DIR "/docs/configuration.md", "r");
    assert_non_null(f);
    static char text[262144];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < config_option_count(); i++) {
        char pat[128];
        snprintf(pat, sizeof pat, "`%s`", config_option_name(i));
        if (!strstr(text, pat))
            fail_msg("docs/configuration.md lacks %s", config_option_name(i));
    }
}

/* The producer's librdkafka settings: statistics feed only /metrics, so with the admin listener
 * off the default is 0 (librdkafka then keeps no latency histograms for them); on, 5000 ms; a
 * kafka.statistics_interval_ms of the operator's wins either way. */
static const char *stats_interval(const char *text, char *val, size_t vlen) {
    char err[512];
    hb_config_t *c = load_text(text, err, sizeof err);
    assert_non_null(c);
    rd_kafka_conf_t *conf = producer_conf_build(c, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_get(conf, "statistics.interval.ms", val, &vlen),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(conf);
    config_free(c);
    return val;
}

static void test_kafka_statistics_follow_the_admin_listener(void **state) {
    (void)state;
    char v[64];
    assert_string_equal(stats_interval("", v, sizeof v), "5000");
    assert_string_equal(stats_interval("admin = { listen = \"127.0.0.1:9\"; };\n", v, sizeof v),
                        "5000");
    assert_string_equal(stats_interval("admin = { listen = \"\"; };\n", v, sizeof v), "0");
    assert_string_equal(
        stats_interval("admin = { listen = \"\"; };\nkafka = { statistics_interval_ms = 700; };\n",
                       v, sizeof v),
        "700");
    assert_string_equal(stats_interval("kafka = { statistics_interval_ms = 0; };\n", v, sizeof v),
                        "0");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_wide_integers_need_the_L_suffix),
        cmocka_unit_test(test_values_and_kafka_passthrough),
        cmocka_unit_test(test_errors_name_line_and_reason),
        cmocka_unit_test(test_endpoints_overlay_the_top_level),
        cmocka_unit_test(test_implicit_endpoint),
        cmocka_unit_test(test_endpoint_errors_name_line_and_reason),
        cmocka_unit_test(test_diff_names_what_changed),
        cmocka_unit_test(test_diff_endpoints),
        cmocka_unit_test(test_take_reloadable),
        cmocka_unit_test(test_reference_marks_reload_and_endpoint),
        cmocka_unit_test(test_sample_config_covers_table),
        cmocka_unit_test(test_docs_cover_table),
        cmocka_unit_test(test_kafka_statistics_follow_the_admin_listener),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
