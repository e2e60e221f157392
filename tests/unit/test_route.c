/* test_route.c: event type -> family -> topic, defaults, rules, overrides and name checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

static void assert_family(const route_t *r, const char *event_type, const char *want) {
    char fam[ROUTE_NAME_MAX];
    size_t n = route_family(r, event_type, fam, sizeof fam);
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    assert_int_equal(n, strlen(want));
    assert_string_equal(fam, want);
}

static void assert_topic(const route_t *r, const char *family, const char *want) {
    char topic[ROUTE_NAME_MAX];
    size_t n = route_topic(r, family, topic, sizeof topic);
    if (!want) {
        assert_int_equal(n, 0);
        return;
    }
    assert_int_equal(n, strlen(want));
    assert_string_equal(topic, want);
}

static void test_defaults(void **state) {
    (void)state;
    route_t *r = route_new(NULL);
    assert_non_null(r);
    assert_family(r, "application.health_check.failed", "application");
    assert_family(r, "application.update.pending", "application");
    assert_family(r, "stack.created", "stack");
    assert_family(r, "stack.redeploy.hook.fail", "stack");
    assert_family(r, "backup.verification.failed", "backup");
    assert_topic(r, "application", "cloud66.application");
    assert_topic(r, "stack", "cloud66.stack");
    assert_topic(r, "backup", "cloud66.backup");
    route_free(r);
}

static void test_managed_backup(void **state) {
    (void)state;
    route_t *r = route_new(NULL);
    assert_family(r, "managed_backup.fail", "backup");
    assert_family(r, "managed_backup.ok", "backup");
    /* the bare name is not matched by "managed_backup.*": it falls back to itself */
    assert_family(r, "managed_backup", "managed_backup");
    route_free(r);
}

static void test_fallback_first_segment(void **state) {
    (void)state;
    route_t *r = route_new(NULL);
    assert_family(r, "server.created", "server");
    assert_family(r, "container.process.restarted", "container");
    assert_family(r, "ssl_certificate.expiring", "ssl_certificate");
    /* "stack.*" needs the dot: neither "stack" nor "stacks.x" match it */
    assert_family(r, "stacks.created", "stacks");
    assert_family(r, "stack.", "stack"); /* empty segment: falls back to "stack" too */
    assert_topic(r, "server", "cloud66.server");
    route_free(r);
}

static void test_no_dot(void **state) {
    (void)state;
    route_t *r = route_new(NULL);
    assert_family(r, "ping", "ping");
    assert_family(r, "stack", "stack");
    assert_family(r, "Account-Event_1", "Account-Event_1");
    route_free(r);
}

static void test_invalid_event_types(void **state) {
    (void)state;
    route_t *r = route_new(NULL);
    assert_family(r, "", NULL);
    assert_family(r, ".created", NULL);
    assert_family(r, "bad type.created", NULL);
    assert_family(r, "server/x.created", NULL);
    assert_family(r, "caf\xc3\xa9.opened", NULL);
    char long_type[400];
    memset(long_type, 'a', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';
    assert_family(r, long_type, NULL); /* 399-character family: too long for Kafka */
    /* the out buffer must hold the family and its NUL */
    char small[6];
    assert_int_equal(route_family(r, "server.created", small, sizeof small), 0);
    assert_int_equal(route_family(r, "stack.created", small, sizeof small), 5);
    assert_string_equal(small, "stack");
    route_free(r);
}

static void test_custom_rule_before_defaults(void **state) {
    (void)state;
    char err[256];
    route_t *r = route_new(NULL);
    assert_int_equal(route_add_rule(r, "stack.deploy.*", "deploy", err, sizeof err), HB_OK);
    assert_family(r, "stack.deploy.started", "deploy");
    assert_family(r, "stack.deploy.x.y", "deploy");
    assert_family(r, "stack.created", "stack");
    assert_family(r, "stack.deploy", "stack"); /* prefix rule needs a segment after the dot */
    /* rules are tried in the order added: the first match wins */
    assert_int_equal(route_add_rule(r, "stack.*", "everything-stack", err, sizeof err), HB_OK);
    assert_int_equal(route_add_rule(r, "stack.deploy.started", "never", err, sizeof err), HB_OK);
    assert_family(r, "stack.deploy.started", "deploy");
    assert_family(r, "stack.created", "everything-stack");
    route_free(r);
}

static void test_exact_rule(void **state) {
    (void)state;
    char err[256];
    route_t *r = route_new(NULL);
    assert_int_equal(route_add_rule(r, "stack.created", "lifecycle", err, sizeof err), HB_OK);
    assert_family(r, "stack.created", "lifecycle");
    assert_family(r, "stack.created.again", "stack");
    assert_family(r, "Stack.created", "Stack"); /* case-sensitive */
    assert_topic(r, "lifecycle", "cloud66.lifecycle");
    route_free(r);
}

static void test_star_rule(void **state) {
    (void)state;
    char err[256];
    route_t *r = route_new(NULL);
    assert_int_equal(route_add_rule(r, "*", "all", err, sizeof err), HB_OK);
    assert_family(r, "stack.created", "all");
    assert_family(r, "managed_backup.fail", "all");
    assert_family(r, "server.created", "all");
    assert_family(r, "ping", "all");
    assert_family(r, "", NULL); /* an empty event type never routes */
    route_free(r);
}

static void test_topic_override(void **state) {
    (void)state;
    char err[256];
    route_t *r = route_new(NULL);
    assert_int_equal(route_set_topic(r, "backup", "ops.backups", err, sizeof err), HB_OK);
    assert_topic(r, "backup", "ops.backups");
    assert_topic(r, "stack", "cloud66.stack");
    /* setting again replaces */
    assert_int_equal(route_set_topic(r, "backup", "ops.backups.v2", err, sizeof err), HB_OK);
    assert_topic(r, "backup", "ops.backups.v2");
    /* an override ignores the prefix, and the family need not have a rule */
    assert_int_equal(route_set_topic(r, "server", "infra_servers", err, sizeof err), HB_OK);
    assert_topic(r, "server", "infra_servers");
    char small[5];
    assert_int_equal(route_topic(r, "backup", small, sizeof small), 0);
    route_free(r);
}

static void test_prefix_change(void **state) {
    (void)state;
    route_t *r = route_new("prod.c66-");
    assert_topic(r, "stack", "prod.c66-stack");
    route_free(r);
    r = route_new("");
    assert_topic(r, "stack", "stack");
    route_free(r);
    /* a prefix Kafka would refuse makes every derived topic invalid, not a bad topic name */
    r = route_new("bad prefix/");
    assert_topic(r, "stack", NULL);
    route_free(r);
    /* prefix + family longer than 249 characters */
    char prefix[245];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    r = route_new(prefix);
    char want[ROUTE_NAME_MAX];
    memcpy(want, prefix, sizeof prefix - 1);
    memcpy(want + sizeof prefix - 1, "stack", 6);
    assert_topic(r, "stack", want); /* 244 + 5 = 249 */
    assert_topic(r, "stacks", NULL);                           /* 250 */
    route_free(r);
}

static void test_invalid_names_rejected(void **state) {
    (void)state;
    char err[256];
    route_t *r = route_new(NULL);
    const char *bad_patterns[] = {"", "stack*", "*.x", "st ack.*", ".*", "stack.**", "a/b"};
    for (size_t i = 0; i < sizeof bad_patterns / sizeof *bad_patterns; i++) {
        err[0] = '\0';
        assert_int_equal(route_add_rule(r, bad_patterns[i], "fam", err, sizeof err),
                         HB_ERR_INVALID);
        assert_non_null(strstr(err, "invalid route pattern"));
    }
    const char *bad_families[] = {"", "a b", "fam/ily", "f\xc3\xa9", "x\"y"};
    for (size_t i = 0; i < sizeof bad_families / sizeof *bad_families; i++) {
        err[0] = '\0';
        assert_int_equal(route_add_rule(r, "stack.*", bad_families[i], err, sizeof err),
                         HB_ERR_INVALID);
        assert_non_null(strstr(err, "invalid family name"));
        assert_int_equal(route_set_topic(r, bad_families[i], "t", err, sizeof err),
                         HB_ERR_INVALID);
    }
    char name[ROUTE_NAME_MAX + 1];
    memset(name, 'n', sizeof name - 1);
    name[ROUTE_NAME_MAX] = '\0'; /* 250 characters: one too many */
    assert_int_equal(route_add_rule(r, "x.*", name, err, sizeof err), HB_ERR_INVALID);
    assert_int_equal(route_set_topic(r, "x", name, err, sizeof err), HB_ERR_INVALID);
    name[ROUTE_NAME_MAX - 1] = '\0'; /* 249: the longest Kafka allows */
    assert_int_equal(route_add_rule(r, "x.*", name, err, sizeof err), HB_OK);
    assert_int_equal(route_set_topic(r, "x", name, err, sizeof err), HB_OK);

    const char *bad_topics[] = {"", ".", "..", "a/b", "topic name", "t\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_topics / sizeof *bad_topics; i++) {
        err[0] = '\0';
        assert_int_equal(route_set_topic(r, "stack", bad_topics[i], err, sizeof err),
                         HB_ERR_INVALID);
        assert_non_null(strstr(err, "invalid Kafka topic name"));
    }
    /* nothing rejected was kept */
    assert_family(r, "stack.created", "stack");
    assert_topic(r, "stack", "cloud66.stack");
    assert_int_equal(route_set_topic(r, "stack", "...", err, sizeof err), HB_OK); /* legal */
    route_free(r);
    route_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_managed_backup),
        cmocka_unit_test(test_fallback_first_segment),
        cmocka_unit_test(test_no_dot),
        cmocka_unit_test(test_invalid_event_types),
        cmocka_unit_test(test_custom_rule_before_defaults),
        cmocka_unit_test(test_exact_rule),
        cmocka_unit_test(test_star_rule),
        cmocka_unit_test(test_topic_override),
        cmocka_unit_test(test_prefix_change),
        cmocka_unit_test(test_invalid_names_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
