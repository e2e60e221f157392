/* test_normalize.c: the normaliser against golden envelopes, the data rules and every error.
 *
 * Goldens: tests/golden/<fixture>.json is the structured value plus one newline, and
 * <fixture>.meta.json holds {"topic": ..., "key": ... or null}. Run with HB_GOLDEN_UPDATE=1 to
 * rewrite them, then review every changed file by eye before committing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "buf.h"
#include "normalize.h"
#include "route.h"

#define NOW_MS 1767225600123LL /* 2026-01-01T00:00:00.123Z */
#define SEED_UID "stack-550e8400-e29b-41d4-a716"

static const char *const seed_names[] = {
    "application.health_check.failed", "application.integration.configured",
    "application.integration.removed", "application.update.failed",
    "application.update.pending", "application.update.started",
    "application.update.succeeded", "stack.created",
    "stack.deploy.started", "stack.provision.fail",
    "stack.provision.ok", "stack.redeploy.fail",
    "stack.redeploy.hook.fail", "stack.redeploy.ok",
    "stack.stackscore.changed", "backup.verification.failed",
    "managed_backup.fail",
};

static const char *const extra_names[] = {
    "flat-extra-field", "nested-extra-field", "server.created", "stack-uid-string",
    "no-timestamp",
};

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *data = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *p = realloc(data, cap);
            if (!p) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = p;
        }
        size_t got = fread(data + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    data[n] = '\0';
    *len = n;
    return data;
}

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static char *read_fixture(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s.json", HB_FIXTURES, dir, name);
    char *body = read_file(path, len);
    if (!body)
        fail_msg("cannot read fixture %s", path);
    return body;
}

/* The two records are the same, byte for byte, or both absent. */
static void assert_same_msg(const msg_t *a, const msg_t *b) {
    if (!a->topic) {
        assert_null(b->topic);
        assert_null(b->value);
        return;
    }
    assert_string_equal(a->topic, b->topic);
    assert_int_equal(a->key_len, b->key_len);
    assert_int_equal(a->key == NULL, b->key == NULL);
    if (a->key)
        assert_memory_equal(a->key, b->key, a->key_len);
    assert_int_equal(a->value_len, b->value_len);
    assert_memory_equal(a->value, b->value, a->value_len);
    assert_string_equal(a->id, b->id);
    assert_int_equal(a->accept_ms, b->accept_ms);
    assert_int_equal(a->header_cnt, b->header_cnt);
    for (size_t i = 0; i < a->header_cnt; i++) {
        assert_string_equal(a->headers[i].name, b->headers[i].name);
        assert_int_equal(a->headers[i].value_len, b->headers[i].value_len);
        assert_memory_equal(a->headers[i].value, b->headers[i].value, a->headers[i].value_len);
    }
}

static hb_status_t build_on(norm_path_t path, const char *body, size_t len, norm_mode_t mode,
                            int max_depth, msg_t *out, char *err, size_t errlen) {
    norm_opts_t opts = {.source = "/cloud66", .mode = mode, .max_depth = max_depth, .path = path};
    route_t *r = route_new(NULL);
    assert_non_null(r);
    hb_status_t st = norm_build(&opts, r, body, len, NOW_MS, out, err, errlen);
    route_free(r);
    return st;
}

/* The daemon's path (the fast one where it takes the body), checked against json-c's alone:
 * every test below is also a differential test of the two. */
static hb_status_t build(const char *body, size_t len, norm_mode_t mode, int max_depth,
                         msg_t *out, char *err, size_t errlen) {
    msg_t ref;
    char *ref_err = errlen ? calloc(1, errlen) : NULL; /* the same room: the same cut */
    assert_true(!errlen || ref_err);
    hb_status_t ref_st =
        build_on(NORM_PATH_JSONC, body, len, mode, max_depth, &ref, ref_err, errlen);
    hb_status_t st = build_on(NORM_PATH_AUTO, body, len, mode, max_depth, out, err, errlen);
    assert_int_equal(st, ref_st);
    if (st != HB_OK && errlen)
        assert_string_equal(err, ref_err);
    assert_same_msg(out, &ref);
    msg_free(&ref);
    free(ref_err);
    return st;
}

/* Whether the fast path takes the body (and then gives json-c's record). */
static int fast_takes(const char *body, size_t len, norm_mode_t mode, int max_depth) {
    msg_t m, ref;
    char err[512];
    hb_status_t st = build_on(NORM_PATH_FAST, body, len, mode, max_depth, &m, err, sizeof err);
    if (st == HB_ERR_NOT_FOUND)
        return 0;
    assert_int_equal(st, HB_OK);
    assert_int_equal(build_on(NORM_PATH_JSONC, body, len, mode, max_depth, &ref, err, sizeof err),
                     HB_OK);
    assert_same_msg(&m, &ref);
    msg_free(&m);
    msg_free(&ref);
    return 1;
}

static void build_ok(const char *body, size_t len, norm_mode_t mode, msg_t *out) {
    char err[256] = "";
    hb_status_t st = build(body, len, mode, 0, out, err, sizeof err);
    if (st != HB_OK)
        fail_msg("norm_build: %s: %s", hb_status_str(st), err);
}

/* Parses a record value and returns member `name` of its top level (owned by *root). */
static json_object *member(const msg_t *m, json_object **root, const char *name) {
    *root = json_tokener_parse(m->value);
    assert_non_null(*root);
    json_object *v = NULL;
    json_object_object_get_ex(*root, name, &v);
    return v;
}

static const char *str_member(json_object *o, const char *name) {
    json_object *v;
    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Checks one fixture against its golden files, or rewrites them under HB_GOLDEN_UPDATE. */
static void check_golden(const char *dir, const char *name) {
    size_t len, glen;
    char path[1024];
    msg_t m;
    char *body = read_fixture(dir, name, &len);
    build_ok(body, len, NORM_STRUCTURED, &m);
    /* The daemon reads every fixture on the fast path, in both modes. */
    if (!fast_takes(body, len, NORM_STRUCTURED, 0) || !fast_takes(body, len, NORM_BINARY, 0))
        fail_msg("the fast path does not take fixture %s/%s", dir, name);

    /* the meta sidecar: topic and key, written with json-c so the key is escaped properly */
    json_object *meta = json_object_new_object();
    json_object_object_add(meta, "topic", json_object_new_string(m.topic));
    json_object_object_add(meta, "key",
                           m.key ? json_object_new_string_len(m.key, (int)m.key_len) : NULL);
    const char *meta_s = json_object_to_json_string_ext(meta, JSON_C_TO_STRING_PLAIN);

    if (getenv("HB_GOLDEN_UPDATE")) {
        snprintf(path, sizeof path, "%s/%s.json", HB_GOLDEN, name);
        char *withnl = malloc(m.value_len + 1);
        assert_non_null(withnl);
        memcpy(withnl, m.value, m.value_len);
        withnl[m.value_len] = '\n';
        write_file(path, withnl, m.value_len + 1);
        free(withnl);
        snprintf(path, sizeof path, "%s/%s.meta.json", HB_GOLDEN, name);
        char line[1024];
        int n = snprintf(line, sizeof line, "%s\n", meta_s);
        assert_true(n > 0 && (size_t)n < sizeof line);
        write_file(path, line, (size_t)n);
    }

    snprintf(path, sizeof path, "%s/%s.json", HB_GOLDEN, name);
    char *golden = read_file(path, &glen);
    if (!golden)
        fail_msg("missing golden %s (generate with HB_GOLDEN_UPDATE=1, then review it)", path);
    assert_int_equal(glen, m.value_len + 1);
    assert_int_equal(golden[glen - 1], '\n');
    golden[glen - 1] = '\0';
    assert_string_equal(m.value, golden);
    assert_memory_equal(m.value, golden, m.value_len);

    snprintf(path, sizeof path, "%s/%s.meta.json", HB_GOLDEN, name);
    char *gmeta = read_file(path, &glen);
    assert_non_null(gmeta);
    json_object *want = json_tokener_parse(gmeta);
    assert_non_null(want);
    assert_string_equal(m.topic, str_member(want, "topic"));
    const char *want_key = str_member(want, "key");
    if (want_key) {
        assert_non_null(m.key);
        assert_int_equal(m.key_len, strlen(want_key));
        assert_memory_equal(m.key, want_key, m.key_len);
    } else {
        assert_null(m.key);
        assert_int_equal(m.key_len, 0);
    }

    /* structured mode: exactly one header */
    assert_int_equal(m.header_cnt, 1);
    assert_string_equal(m.headers[0].name, "content-type");
    assert_string_equal(m.headers[0].value, "application/cloudevents+json; charset=UTF-8");
    assert_int_equal(m.accept_ms, NOW_MS);
    assert_int_equal(strlen(m.id), 64);

    json_object_put(want);
    json_object_put(meta);
    free(gmeta);
    free(golden);
    free(body);
    msg_free(&m);
}

static void test_seed_goldens(void **state) {
    (void)state;
    assert_int_equal(sizeof seed_names / sizeof *seed_names, 17);
    for (size_t i = 0; i < sizeof seed_names / sizeof *seed_names; i++)
        check_golden("seeds", seed_names[i]);
}

static void test_extra_goldens(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof extra_names / sizeof *extra_names; i++)
        check_golden("extra", extra_names[i]);
}

/* Every seed names the same stack, whatever its shape. */
static void test_seed_envelopes_name_the_stack(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof seed_names / sizeof *seed_names; i++) {
        size_t len;
        msg_t m;
        json_object *root;
        char *body = read_fixture("seeds", seed_names[i], &len);
        build_ok(body, len, NORM_STRUCTURED, &m);
        json_object *data = member(&m, &root, "data");
        assert_non_null(data);
        json_object *stack;
        assert_true(json_object_object_get_ex(data, "stack", &stack));
        assert_string_equal(str_member(stack, "uid"), SEED_UID);
        /* no stack field is left at the top level of data */
        assert_false(json_object_object_get_ex(data, "uid", NULL));
        assert_false(json_object_object_get_ex(data, "redeploy_hook", NULL));
        assert_string_equal(str_member(data, "event_type"), seed_names[i]);
        assert_string_equal(str_member(root, "subject"), SEED_UID);
        assert_string_equal(str_member(root, "source"), "/cloud66/stacks/" SEED_UID);
        assert_string_equal(str_member(root, "time"), "2025-09-04T18:37:59Z");
        assert_string_equal(str_member(root, "receivedat"), "2026-01-01T00:00:00.123Z");
        assert_string_equal(m.key, SEED_UID);
        json_object_put(root);
        free(body);
        msg_free(&m);
    }
}

static json_object *data_stack_of(const char *dir, const char *name, json_object **root) {
    size_t len;
    msg_t m;
    char *body = read_fixture(dir, name, &len);
    build_ok(body, len, NORM_STRUCTURED, &m);
    /* The daemon reads every fixture on the fast path, in both modes. */
    if (!fast_takes(body, len, NORM_STRUCTURED, 0) || !fast_takes(body, len, NORM_BINARY, 0))
        fail_msg("the fast path does not take fixture %s/%s", dir, name);
    json_object *data = member(&m, root, "data");
    json_object *stack = NULL;
    assert_non_null(data);
    assert_true(json_object_object_get_ex(data, "stack", &stack));
    free(body);
    msg_free(&m);
    return stack;
}

static void test_flat_and_nested_same_stack(void **state) {
    (void)state;
    json_object *r1, *r2;
    /* the flat seed stack.created and the nested seed stack.redeploy.ok carry one stack */
    json_object *flat = data_stack_of("seeds", "stack.created", &r1);
    json_object *nested = data_stack_of("seeds", "stack.redeploy.ok", &r2);
    assert_int_equal(json_object_object_length(flat), 33);
    assert_true(json_object_equal(flat, nested));
    json_object_put(r1);
    json_object_put(r2);

    /* the same with unknown top-level fields: they stay at the top level, nothing moves in */
    flat = data_stack_of("extra", "flat-extra-field", &r1);
    nested = data_stack_of("extra", "nested-extra-field", &r2);
    assert_true(json_object_equal(flat, nested));
    assert_false(json_object_object_get_ex(flat, "update_type", NULL));
    json_object *d1, *d2;
    json_object_object_get_ex(r1, "data", &d1);
    json_object_object_get_ex(r2, "data", &d2);
    assert_string_equal(str_member(d1, "update_type"), "full_deploy");
    assert_string_equal(str_member(d1, "requested_by"), "ops@example.com");
    /* and so the whole data is equal (json_object_equal ignores member order) */
    assert_true(json_object_equal(d1, d2));
    /* the stack sits where the flat payload's first stack field (uid) was */
    struct json_object_iterator it = json_object_iter_begin(d1);
    const char *order[] = {"timestamp", "event_type", "stack", "update_type", "requested_by"};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(json_object_iter_peek_name(&it), order[i]);
        json_object_iter_next(&it);
    }
    json_object_put(r1);
    json_object_put(r2);
}

static void test_stack_as_string(void **state) {
    (void)state;
    size_t len;
    msg_t m;
    json_object *root;
    char *body = read_fixture("extra", "stack-uid-string", &len);
    build_ok(body, len, NORM_STRUCTURED, &m);
    json_object *data = member(&m, &root, "data");
    json_object *stack;
    assert_true(json_object_object_get_ex(data, "stack", &stack));
    assert_true(json_object_is_type(stack, json_type_object));
    assert_int_equal(json_object_object_length(stack), 1);
    assert_string_equal(str_member(stack, "uid"), SEED_UID);
    assert_string_equal(str_member(root, "subject"), SEED_UID);
    assert_string_equal(str_member(root, "source"), "/cloud66/stacks/" SEED_UID);
    assert_string_equal(m.key, SEED_UID);
    assert_string_equal(m.topic, "cloud66.stack");
    /* the object replaces the string in place: stack is still the third member */
    struct json_object_iterator it = json_object_iter_begin(data);
    json_object_iter_next(&it);
    json_object_iter_next(&it);
    assert_string_equal(json_object_iter_peek_name(&it), "stack");
    json_object_put(root);
    free(body);
    msg_free(&m);
}

static void test_unknown_family(void **state) {
    (void)state;
    size_t len;
    msg_t m;
    json_object *root;
    char *body = read_fixture("extra", "server.created", &len);
    build_ok(body, len, NORM_STRUCTURED, &m);
    assert_string_equal(m.topic, "cloud66.server");
    assert_string_equal(m.key, "server-9f8e7d6c-5b4a-3c2d-1e0f");
    json_object *data = member(&m, &root, "data");
    assert_string_equal(str_member(root, "family"), "server");
    assert_string_equal(str_member(root, "type"), "com.cloud66.server.created");
    assert_string_equal(str_member(root, "source"), "/cloud66");
    assert_string_equal(str_member(root, "subject"), "server-9f8e7d6c-5b4a-3c2d-1e0f");
    /* a server's uid, name and status are not a stack's: nothing is gathered */
    assert_false(json_object_object_get_ex(data, "stack", NULL));
    assert_string_equal(str_member(data, "uid"), "server-9f8e7d6c-5b4a-3c2d-1e0f");
    assert_string_equal(str_member(data, "name"), "web-1");
    json_object_put(root);
    free(body);
    msg_free(&m);
}

static void test_flat_detection_threshold(void **state) {
    (void)state;
    msg_t m;
    json_object *root;
    /* one stack-specific field is not enough */
    const char *one = "{\"event_type\":\"server.created\",\"uid\":\"server-1\",\"name\":\"w\","
                      "\"cloud\":\"aws\"}";
    build_ok(one, strlen(one), NORM_STRUCTURED, &m);
    json_object *data = member(&m, &root, "data");
    assert_false(json_object_object_get_ex(data, "stack", NULL));
    assert_string_equal(str_member(root, "source"), "/cloud66");
    json_object_put(root);
    msg_free(&m);
    /* two are; generic names move with them, unknown ones stay */
    const char *two = "{\"event_type\":\"x.y\",\"other\":1,\"name\":\"n\",\"uid\":\"s-2\","
                      "\"cloud\":\"aws\",\"fqdn\":\"a.example\"}";
    build_ok(two, strlen(two), NORM_STRUCTURED, &m);
    const char *want_data = ",\"data\":{\"event_type\":\"x.y\",\"other\":1,\"stack\":{\"name\":"
                            "\"n\",\"uid\":\"s-2\",\"cloud\":\"aws\",\"fqdn\":\"a.example\"}}}";
    assert_non_null(strstr(m.value, want_data));
    assert_string_equal(m.key, "s-2");
    msg_free(&m);
    /* a non-string uid never makes a flat stack */
    const char *numuid = "{\"event_type\":\"x.y\",\"uid\":7,\"cloud\":\"aws\",\"fqdn\":\"f\"}";
    build_ok(numuid, strlen(numuid), NORM_STRUCTURED, &m);
    assert_non_null(strstr(m.value, ",\"data\":{\"event_type\":\"x.y\",\"uid\":7,"));
    assert_null(strstr(m.value, "\"subject\""));
    assert_null(m.key);
    msg_free(&m);
}

static void test_no_subject(void **state) {
    (void)state;
    msg_t m;
    const char *body = "{\"event_type\":\"account.updated\",\"timestamp\":0}";
    build_ok(body, strlen(body), NORM_STRUCTURED, &m);
    assert_null(m.key);
    assert_int_equal(m.key_len, 0);
    assert_string_equal(m.topic, "cloud66.account");
    /* printf '%s' '{"event_type":"account.updated","timestamp":0}' | sha256sum */
    assert_string_equal(m.value,
                        "{\"specversion\":\"1.0\","
                        "\"id\":\"f94753d14c99a2082a8c03529059103f"
                        "ad362261afe873940842761945fbad91\","
                        "\"source\":\"/cloud66\",\"type\":\"com.cloud66.account.updated\","
                        "\"time\":\"1970-01-01T00:00:00Z\","
                        "\"datacontenttype\":\"application/json\","
                        "\"family\":\"account\",\"receivedat\":\"2026-01-01T00:00:00.123Z\","
                        "\"data\":{\"event_type\":\"account.updated\",\"timestamp\":0}}");
    msg_free(&m);
}

static void test_binary_mode(void **state) {
    (void)state;
    size_t len;
    msg_t s, b;
    char *body = read_fixture("seeds", "application.health_check.failed", &len);
    build_ok(body, len, NORM_STRUCTURED, &s);
    build_ok(body, len, NORM_BINARY, &b);
    /* the value is exactly the structured envelope's data */
    const char *data = strstr(s.value, ",\"data\":");
    assert_non_null(data);
    data += strlen(",\"data\":");
    assert_int_equal(b.value_len, strlen(data) - 1);
    assert_memory_equal(b.value, data, b.value_len);
    assert_int_equal(b.value[0], '{');
    assert_string_equal(b.topic, s.topic);
    assert_string_equal(b.key, SEED_UID);
    assert_string_equal(b.id, s.id);
    const char *want[][2] = {
        {"ce_specversion", "1.0"},
        {"ce_id", s.id},
        {"ce_source", "/cloud66/stacks/" SEED_UID},
        {"ce_type", "com.cloud66.application.health_check.failed"},
        {"ce_subject", SEED_UID},
        {"ce_time", "2025-09-04T18:37:59Z"},
        {"ce_family", "application"},
        {"ce_receivedat", "2026-01-01T00:00:00.123Z"},
        {"content-type", "application/json"},
    };
    assert_int_equal(b.header_cnt, sizeof want / sizeof *want);
    for (size_t i = 0; i < b.header_cnt; i++) {
        assert_string_equal(b.headers[i].name, want[i][0]);
        assert_int_equal(b.headers[i].value_len, strlen(want[i][1]));
        assert_string_equal(b.headers[i].value, want[i][1]);
    }
    msg_free(&s);
    msg_free(&b);
    free(body);

    /* without a subject there is no ce_subject header */
    const char *anon = "{\"event_type\":\"account.updated\"}";
    build_ok(anon, strlen(anon), NORM_BINARY, &b);
    assert_null(msg_header(&b, "ce_subject"));
    assert_int_equal(b.header_cnt, 8);
    assert_string_equal(b.value, anon);
    msg_free(&b);
}

static void test_id_is_sha256_of_body(void **state) {
    (void)state;
    msg_t m;
    /* printf '%s' '{"event_type":"stack.created","uid":"s-1"}' | sha256sum */
    const char *body = "{\"event_type\":\"stack.created\",\"uid\":\"s-1\"}";
    build_ok(body, strlen(body), NORM_STRUCTURED, &m);
    assert_string_equal(m.id, "e87e12d2f33db7bf5c20ca8733432ddbf2a3a2469f3cf52080d7f152eed5c8f2");
    assert_non_null(strstr(m.value, "\"id\":\"e87e12d2f33db7bf5c20ca8733432ddbf2a3a2469f3cf5208"
                                    "0d7f152eed5c8f2\""));
    msg_free(&m);
    /* sha256sum tests/fixtures/seeds/stack.created.json: the raw bytes, newline included */
    size_t len;
    char *seed = read_fixture("seeds", "stack.created", &len);
    build_ok(seed, len, NORM_BINARY, &m);
    assert_string_equal(m.id, "5c98cd595bcc8cf36384397b85c65e6dfa39b306173ea34ef876a6056831bb07");
    msg_free(&m);
    free(seed);
}

static const char *time_of(const char *body, int64_t now_ms) {
    static char t[64];
    msg_t m;
    char err[256];
    norm_opts_t opts = {.source = "/cloud66"};
    route_t *r = route_new(NULL);
    assert_int_equal(norm_build(&opts, r, body, strlen(body), now_ms, &m, err, sizeof err), HB_OK);
    json_object *root;
    json_object *v = member(&m, &root, "time");
    assert_non_null(v);
    snprintf(t, sizeof t, "%s", json_object_get_string(v));
    json_object_put(root);
    msg_free(&m);
    route_free(r);
    return t;
}

static void test_time(void **state) {
    (void)state;
    /* no timestamp: the receive time, without its milliseconds (truncated, not rounded) */
    assert_string_equal(time_of("{\"event_type\":\"a.b\"}", NOW_MS), "2026-01-01T00:00:00Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\"}", 1757011079999LL),
                        "2025-09-04T18:37:59Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":1757011079}", NOW_MS),
                        "2025-09-04T18:37:59Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":1757011079.97}", NOW_MS),
                        "2025-09-04T18:37:59Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":1.757011079e9}", NOW_MS),
                        "2025-09-04T18:37:59Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":\"1757011079\"}", NOW_MS),
                        "2025-09-04T18:37:59Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":0}", NOW_MS),
                        "1970-01-01T00:00:00Z");
    /* unusable: the receive time */
    const char *bad[] = {
        "{\"event_type\":\"a.b\",\"timestamp\":\"17570x1079\"}",
        "{\"event_type\":\"a.b\",\"timestamp\":\"\"}",
        "{\"event_type\":\"a.b\",\"timestamp\":\"-5\"}",
        "{\"event_type\":\"a.b\",\"timestamp\":true}",
        "{\"event_type\":\"a.b\",\"timestamp\":null}",
        "{\"event_type\":\"a.b\",\"timestamp\":[1757011079]}",
        "{\"event_type\":\"a.b\",\"timestamp\":99999999999999}",
        "{\"event_type\":\"a.b\",\"timestamp\":18446744073709551615}",
        "{\"event_type\":\"a.b\",\"timestamp\":1e300}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(time_of(bad[i], NOW_MS), "2026-01-01T00:00:00Z");

    /* the no-timestamp fixture: time from now_ms, data unchanged */
    size_t len;
    msg_t m;
    json_object *root;
    char *body = read_fixture("extra", "no-timestamp", &len);
    build_ok(body, len, NORM_STRUCTURED, &m);
    json_object *data = member(&m, &root, "data");
    assert_false(json_object_object_get_ex(data, "timestamp", NULL));
    assert_string_equal(str_member(root, "time"), "2026-01-01T00:00:00Z");
    json_object_put(root);
    msg_free(&m);
    free(body);
}

static void test_escaping_and_source_encoding(void **state) {
    (void)state;
    msg_t m;
    json_object *root;
    /* quote in the event type, slash and space in the uid, non-ASCII text kept as UTF-8 */
    const char *body = "{\"event_type\":\"stack.x\\\"y\",\"stack\":{\"uid\":\"a/b c\"},"
                       "\"note\":\"caf\xc3\xa9 </x>\"}";
    build_ok(body, strlen(body), NORM_STRUCTURED, &m);
    assert_non_null(member(&m, &root, "data"));
    assert_string_equal(str_member(root, "type"), "com.cloud66.stack.x\"y");
    assert_string_equal(str_member(root, "subject"), "a/b c");
    assert_string_equal(str_member(root, "source"), "/cloud66/stacks/a%2Fb%20c");
    assert_string_equal(str_member(root, "family"), "stack");
    assert_non_null(strstr(m.value, "\"note\":\"caf\xc3\xa9 </x>\""));
    assert_string_equal(m.key, "a/b c");
    json_object_put(root);
    msg_free(&m);
    /* the edges of well-formed UTF-8 pass: U+10FFFF, U+FFFF, U+D7FF, U+0080 */
    const char *edges = "{\"event_type\":\"a.b\",\"x\":\"\xf4\x8f\xbf\xbf \xef\xbf\xbf "
                        "\xed\x9f\xbf \xc2\x80\"}";
    build_ok(edges, strlen(edges), NORM_BINARY, &m);
    assert_string_equal(m.value, edges);
    msg_free(&m);
    /* a NUL escaped inside a uid survives into the key, with its length */
    const char *nul = "{\"event_type\":\"a.b\",\"uid\":\"x\\u0000y\"}";
    build_ok(nul, strlen(nul), NORM_STRUCTURED, &m);
    assert_int_equal(m.key_len, 3);
    assert_memory_equal(m.key, "x\0y", 3);
    assert_non_null(strstr(m.value, "\"subject\":\"x\\u0000y\""));
    msg_free(&m);
}

static void test_custom_router(void **state) {
    (void)state;
    char err[256];
    msg_t m;
    route_t *r = route_new("prod.");
    assert_int_equal(route_add_rule(r, "stack.redeploy.*", "deploy", err, sizeof err), HB_OK);
    assert_int_equal(route_set_topic(r, "deploy", "deploys", err, sizeof err), HB_OK);
    norm_opts_t opts = {.source = "/c66/eu"};
    const char *body = "{\"event_type\":\"stack.redeploy.ok\",\"stack\":\"s-9\"}";
    assert_int_equal(norm_build(&opts, r, body, strlen(body), NOW_MS, &m, err, sizeof err), HB_OK);
    assert_string_equal(m.topic, "deploys");
    assert_non_null(strstr(m.value, "\"source\":\"/c66/eu/stacks/s-9\""));
    assert_non_null(strstr(m.value, "\"family\":\"deploy\""));
    msg_free(&m);
    const char *other = "{\"event_type\":\"stack.created\",\"stack\":\"s-9\"}";
    assert_int_equal(norm_build(&opts, r, other, strlen(other), NOW_MS, &m, err, sizeof err),
                     HB_OK);
    assert_string_equal(m.topic, "prod.stack");
    msg_free(&m);
    route_free(r);
}

typedef struct bad_case {
    const char *body;
    size_t len; /* 0: strlen(body) */
    int max_depth;
    hb_status_t want;
    const char *errstr; /* exact */
} bad_case_t;

static void test_errors(void **state) {
    (void)state;
    static const char nul_body[] = "{\"event_type\":\"a.b\",\0\"x\":1}";
    char deep[200];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"event_type\":\"a.b\",\"x\":");
    for (int i = 0; i < 70; i++)
        deep[n++] = '[';
    for (int i = 0; i < 70; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    const bad_case_t cases[] = {
        {"{\"event_type\":\"stack.created\",}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 30"},
        {"{\"event_type\":\"stack.created\"} x", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 31"},
        {"{\"event_type\":\"stack.created\"}{}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 30"},
        {"{\"event_type\":", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected end of data at offset 14"},
        {"", 0, 0, HB_ERR_JSON, "body is empty: expected a JSON object"},
        {" \r\n", 0, 0, HB_ERR_JSON, "body is empty: expected a JSON object"},
        {"{\"event_type\":\"a.b\",\"x\":NaN}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: NaN is not a JSON number"},
        {"{\"event_type\":\"a.b\",\"x\":[-Infinity]}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: -Infinity is not a JSON number"},
        {"{\"event_type\":\"a.b\",\"x\":1.}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: 1. is not a JSON number"},
        {"[{\"event_type\":\"a.b\"}]", 0, 0, HB_ERR_NOT_OBJECT,
         "body is JSON but not an object (got array)"},
        {"\"stack.created\"", 0, 0, HB_ERR_NOT_OBJECT,
         "body is JSON but not an object (got string)"},
        {"42", 0, 0, HB_ERR_NOT_OBJECT, "body is JSON but not an object (got number)"},
        {"null", 0, 0, HB_ERR_NOT_OBJECT, "body is JSON but not an object (got null)"},
        {"{\"uid\":\"s-1\"}", 0, 0, HB_ERR_NO_TYPE, "missing string field event_type"},
        {"{\"event_type\":7}", 0, 0, HB_ERR_NO_TYPE,
         "field event_type must be a string (got number)"},
        {"{\"event_type\":null}", 0, 0, HB_ERR_NO_TYPE,
         "field event_type must be a string (got null)"},
        {"{\"event_type\":\"a\\u0000b.c\"}", 0, 0, HB_ERR_NO_TYPE,
         "field event_type contains a NUL character"},
        {"{\"event_type\":\"\"}", 0, 0, HB_ERR_NO_TYPE,
         "event_type \"\" yields no family (its first segment must be 1 to 249 characters of "
         "A-Z a-z 0-9 _ -)"},
        {"{\"event_type\":\"bad \\\"type\\\".x\"}", 0, 0, HB_ERR_NO_TYPE,
         "event_type \"bad ?type?.x\" yields no family (its first segment must be 1 to 249 "
         "characters of A-Z a-z 0-9 _ -)"},
        {nul_body, sizeof nul_body - 1, 0, HB_ERR_INVALID, "body contains a NUL byte at offset 20"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xff\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        /* truncated sequence, overlong '/', UTF-16 surrogate, above U+10FFFF, in a key */
        {"{\"event_type\":\"a.b\",\"x\":\"\xc3\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xc0\xaf\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xed\xa0\x80\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xf4\x90\x80\x80\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"\xe2\x82\":1}", 0, 0, HB_ERR_INVALID, "body is not valid UTF-8 at offset 2"},
        {deep, 0, 0, HB_ERR_JSON, "body is JSON nested deeper than 64 levels"},
        /* depth counts values: {"x":{"y":1}} is 3 deep */
        {"{\"event_type\":\"a.b\",\"x\":{\"y\":{\"z\":1}}}", 0, 3, HB_ERR_JSON,
         "body is JSON nested deeper than 3 levels"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case_t *c = &cases[i];
        msg_t m;
        char err[256] = "";
        memset(&m, 0xa5, sizeof m);
        size_t len = c->len ? c->len : strlen(c->body);
        hb_status_t st = build(c->body, len, NORM_STRUCTURED, c->max_depth, &m, err, sizeof err);
        if (st != c->want || strcmp(err, c->errstr) != 0)
            fail_msg("case %zu: got %s \"%s\", want %s \"%s\"", i, hb_status_str(st), err,
                     hb_status_str(c->want), c->errstr);
        /* on error the record is zeroed */
        assert_null(m.topic);
        assert_null(m.key);
        assert_null(m.value);
        assert_null(m.headers);
        assert_int_equal(m.header_cnt, 0);
        assert_string_equal(m.id, "");
    }
    /* the depth limit is inclusive: exactly max_depth is fine */
    msg_t m;
    char err[256];
    const char *three = "{\"event_type\":\"a.b\",\"x\":{\"y\":1}}";
    assert_int_equal(build(three, strlen(three), NORM_STRUCTURED, 3, &m, err, sizeof err), HB_OK);
    msg_free(&m);
}

static void test_error_echo_is_capped(void **state) {
    (void)state;
    char body[1200];
    char err[512];
    msg_t m;
    int n = snprintf(body, sizeof body, "{\"event_type\":\"");
    for (int i = 0; i < 1000; i++)
        body[n++] = 'x';
    n += snprintf(body + n, sizeof body - (size_t)n, " y.z\"}");
    assert_int_equal(build(body, (size_t)n, NORM_STRUCTURED, 0, &m, err, sizeof err),
                     HB_ERR_NO_TYPE);
    assert_true(strlen(err) < 200);
    assert_non_null(strstr(err, "xxx...\" yields no family"));
    /* a short errstr buffer is truncated, not overrun */
    char tiny[8];
    assert_int_equal(build(body, (size_t)n, NORM_STRUCTURED, 0, &m, tiny, sizeof tiny),
                     HB_ERR_NO_TYPE);
    assert_string_equal(tiny, "event_t");
}

/* ---- duplicate keys ---------------------------------------------------------------------- */

/* Builds body in binary mode (the value is data alone) and returns the value; fails the test
 * when the body is refused. */
static const char *header_of(const msg_t *m, const char *name) {
    const msg_header_t *h = msg_header(m, name);
    assert_non_null(h);
    return h->value;
}

static char *data_of(const char *body, msg_t *m) {
    build_ok(body, strlen(body), NORM_BINARY, m);
    return m->value;
}

/* A key repeated in one object: the last one counts (json-c's rule, documented in docs/http.md "How
 * a body is read" and normalize.h), at the top level and in nested objects. data keeps that one value,
 * in the place of the key's first appearance; routing and the envelope read the same value, so
 * a consumer can never see another event_type than the one the event was routed by. */
static void test_duplicate_keys_last_wins(void **state) {
    (void)state;
    msg_t m;
    const char *dup_type = "{\"event_type\":\"application.x\",\"event_type\":\"stack.y\"}";
    assert_string_equal(data_of(dup_type, &m), "{\"event_type\":\"stack.y\"}");
    assert_string_equal(m.topic, "cloud66.stack");
    assert_string_equal(header_of(&m, "ce_type"), "com.cloud66.stack.y");
    assert_string_equal(header_of(&m, "ce_family"), "stack");
    msg_free(&m);
    /* the last one decides even when the first was the valid one */
    char err[256];
    const char *type_then_number = "{\"event_type\":\"stack.y\",\"event_type\":7}";
    assert_int_equal(build(type_then_number, strlen(type_then_number), NORM_STRUCTURED, 0, &m,
                           err, sizeof err),
                     HB_ERR_NO_TYPE);
    assert_string_equal(err, "field event_type must be a string (got number)");
    const char *number_then_type = "{\"event_type\":7,\"event_type\":\"stack.y\"}";
    assert_string_equal(data_of(number_then_type, &m), "{\"event_type\":\"stack.y\"}");
    msg_free(&m);

    const char *dup_ts = "{\"event_type\":\"a.b\",\"timestamp\":1,\"timestamp\":1757011079}";
    assert_string_equal(data_of(dup_ts, &m), "{\"event_type\":\"a.b\",\"timestamp\":1757011079}");
    assert_string_equal(header_of(&m, "ce_time"), "2025-09-04T18:37:59Z");
    msg_free(&m);
    /* the later value takes the first one's place; a third repeat too */
    const char *three = "{\"a\":1,\"event_type\":\"a.b\",\"a\":2,\"a\":3}";
    assert_string_equal(data_of(three, &m), "{\"a\":3,\"event_type\":\"a.b\"}");
    msg_free(&m);

    /* nested: the stack's uid, so subject, source and key follow the last one */
    const char *nested = "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-1\",\"name\":\"n\","
                         "\"uid\":\"s-2\"}}";
    assert_string_equal(data_of(nested, &m),
                        "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-2\",\"name\":\"n\"}}");
    assert_string_equal(header_of(&m, "ce_subject"), "s-2");
    assert_string_equal(header_of(&m, "ce_source"), "/cloud66/stacks/s-2");
    assert_string_equal(m.key, "s-2");
    msg_free(&m);
    /* deeper, in an array element */
    const char *deep = "{\"event_type\":\"a.b\",\"l\":[{\"k\":{\"x\":1,\"x\":[2]}}]}";
    assert_string_equal(data_of(deep, &m), "{\"event_type\":\"a.b\",\"l\":[{\"k\":{\"x\":[2]}}]}");
    msg_free(&m);
    /* a repeated `stack`: the last (here a uid string) is the one gathered */
    const char *stack = "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-1\"},"
                        "\"stack\":\"s-2\"}";
    assert_string_equal(data_of(stack, &m),
                        "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-2\"}}");
    assert_string_equal(m.key, "s-2");
    msg_free(&m);
    /* a flat stack with its uid repeated */
    const char *flat = "{\"event_type\":\"stack.x\",\"uid\":\"s-1\",\"git\":\"g\",\"fqdn\":\"f\","
                       "\"uid\":\"s-2\"}";
    assert_string_equal(data_of(flat, &m), "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-2\","
                                           "\"git\":\"g\",\"fqdn\":\"f\"}}");
    assert_string_equal(m.key, "s-2");
    msg_free(&m);
    /* the id still hashes the raw body, repeats included:
     * printf '%s' '{"event_type":"application.x","event_type":"stack.y"}' | sha256sum */
    build_ok(dup_type, strlen(dup_type), NORM_STRUCTURED, &m);
    assert_string_equal(m.id, "d5d24ce2663dea38478e2ecf9137230bb20ff86f19603e341636f0c536bbb912");
    msg_free(&m);
}

/* ---- hostile input at the edge -------------------------------------------------------------- */

/* What the normaliser does today with inputs JSON parsers disagree on. Each line pins the
 * current behaviour, so a change is a decision, not an accident. */
static void test_hostile_input_pinned(void **state) {
    (void)state;
    msg_t m;
    /* -0 as an integer is written back as 0 (the same number); as a double it keeps its text */
    assert_string_equal(data_of("{\"event_type\":\"a.b\",\"v\":[-0,-0.0,0]}", &m),
                        "{\"event_type\":\"a.b\",\"v\":[0,-0.0,0]}");
    msg_free(&m);
    /* numbers outside a double's range are valid JSON grammar: kept as written (a consumer's
     * parser may read them as infinity or refuse them); as a timestamp, unusable */
    const char *inf = "{\"event_type\":\"a.b\",\"v\":[1e999,-1e999,1E400,1e-999]}";
    assert_string_equal(data_of(inf, &m), inf);
    msg_free(&m);
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":1e999}", NOW_MS),
                        "2026-01-01T00:00:00Z");
    assert_string_equal(time_of("{\"event_type\":\"a.b\",\"timestamp\":-0}", NOW_MS),
                        "1970-01-01T00:00:00Z");
    /* the largest integers json-c holds pass unchanged */
    const char *edges = "{\"event_type\":\"a.b\",\"v\":[18446744073709551615,"
                        "-9223372036854775808,0.1000000000000000055511151231257827]}";
    assert_string_equal(data_of(edges, &m), edges);
    msg_free(&m);
    /* lone UTF-16 surrogates cannot be UTF-8: each becomes U+FFFD; a pair is one character */
    assert_string_equal(data_of("{\"event_type\":\"a.b\",\"v\":\"\\ud800x\\udc00\\ud83d\\ude00\"}",
                                &m),
                        "{\"event_type\":\"a.b\",\"v\":\""
                        "\xef\xbf\xbdx\xef\xbf\xbd\xf0\x9f\x98\x80\"}");
    msg_free(&m);
    /* \u0000 in a string value is kept, escaped (the uid case is in
     * test_escaping_and_source_encoding) */
    assert_string_equal(data_of("{\"event_type\":\"a.b\",\"v\":\"a\\u0000b\"}", &m),
                        "{\"event_type\":\"a.b\",\"v\":\"a\\u0000b\"}");
    msg_free(&m);
    /* DEL and U+FEFF inside a string are ordinary characters */
    const char *odd = "{\"event_type\":\"a.b\",\"v\":\"\x7f\xef\xbb\xbf\"}";
    assert_string_equal(data_of(odd, &m), odd);
    msg_free(&m);
    /* whitespace after the object is fine (and part of the hashed body) */
    const char *trailing = "{\"event_type\":\"a.b\"} \r\n\t";
    assert_string_equal(data_of(trailing, &m), "{\"event_type\":\"a.b\"}");
    msg_free(&m);

    static const bad_case_t refused[] = {
        /* overlong forms of '/' in 2, 3 and 4 bytes, and the highest overlong 2-byte form */
        {"{\"event_type\":\"a.b\",\"x\":\"\xc1\xbf\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xe0\x80\xaf\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        {"{\"event_type\":\"a.b\",\"x\":\"\xf0\x80\x80\xaf\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 25"},
        /* a byte order mark before the object: refused (RFC 8259 8.1 lets a parser refuse it);
         * the detail says UTF-8 although the bytes are well-formed, because json-c reports it so */
        {"\xef\xbb\xbf{\"event_type\":\"a.b\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 0"},
        {"\xef\xbb\xbf", 0, 0, HB_ERR_INVALID, "body is not valid UTF-8 at offset 0"},
        {"\xc2\xa0{\"event_type\":\"a.b\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 0"},
        /* only space, tab, CR and LF are JSON whitespace */
        {"\v{\"event_type\":\"a.b\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 0"},
        {"\f{\"event_type\":\"a.b\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 0"},
        {"{\"event_type\":\"a.b\"}\v", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 20"},
        {"\t\n", 0, 0, HB_ERR_JSON, "body is empty: expected a JSON object"},
        /* trailing garbage after whitespace, a NUL right after the object */
        {"{\"event_type\":\"a.b\"}\nx", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 21"},
        {"{\"event_type\":\"a.b\"}\0", 21, 0, HB_ERR_INVALID,
         "body contains a NUL byte at offset 20"},
        /* relaxed-JSON forms */
        {"{\"event_type\":\"a.b\",\"x\":01}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: number expected at offset 26"},
        {"{\"event_type\":\"a.b\",\"x\":+1}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 24"},
        {"{\"event_type\":\"a.b\",\"x\":.5}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 24"},
        {"{\"event_type\":\"a.b\",\"x\":[1,]}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 27"},
        {"{\"event_type\":\"a.b\",\"x\":'y'}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: single quote at offset 24 (JSON strings take double quotes)"},
        {"/**/{\"event_type\":\"a.b\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 0"},
        {"{\"event_type\":\"a.b\",\"x\":\"\\u12\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: invalid string sequence at offset 29"},
        /* a lone surrogate in event_type gives a type no family takes */
        {"{\"event_type\":\"a\\ud800.b\"}", 0, 0, HB_ERR_NO_TYPE,
         "event_type \"a???.b\" yields no family (its first segment must be 1 to 249 characters "
         "of A-Z a-z 0-9 _ -)"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        const bad_case_t *c = &refused[i];
        char err[256] = "";
        size_t len = c->len ? c->len : strlen(c->body);
        hb_status_t st = build(c->body, len, NORM_STRUCTURED, 0, &m, err, sizeof err);
        if (st != c->want || strcmp(err, c->errstr) != 0)
            fail_msg("case %zu: got %s \"%s\", want %s \"%s\"", i, hb_status_str(st), err,
                     hb_status_str(c->want), c->errstr);
    }
}

/* The normaliser writes data itself rather than through json-c's printbuf; for a payload the
 * data rules leave as it is, the bytes must be exactly what json-c writes (PLAIN, no slash
 * escapes) for the same parsed tree: escapes (\b \f short, other controls \u00xx lowercase),
 * integers past INT64_MAX, doubles in their source text, empty containers, key order. */
static void test_data_written_as_json_c_writes_it(void **state) {
    (void)state;
    const char *bodies[] = {
        "{\"event_type\":\"a.b\",\"s\":\"q\\\"b\\\\s/l\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f "
        "\\u00e9 \\ud83d\\ude00 \xc3\xa9\",\"u\":\"x\\u0000y\"}",
        "{\"event_type\":\"a.b\",\"n\":[1,-0,-5,18446744073709551615,9223372036854775807,"
        "-9223372036854775808,1.50,1e5,-2.5E-3,0.0,12345678901234567890]}",
        "{\"event_type\":\"a.b\",\"b\":[true,false,null],\"o\":{},\"a\":[],"
        "\"nested\":{\"x\":{\"y\":[{\"z\":null},[[]],{}]}},\"k/ey\\n\":\"v\",\"timestamp\":1.5}",
        "{ \"event_type\" : \"a.b\" , \"uid\" : \"u-1\", \"name\": \"only one stack field\" }",
        "{\"event_type\":\"a.b\",\"stack\":{\"uid\":\"s\",\"git\":\"g\"},\"uid\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        msg_t m;
        build_ok(bodies[i], strlen(bodies[i]), NORM_BINARY, &m);
        json_object *want = json_tokener_parse(bodies[i]);
        assert_non_null(want);
        const char *w = json_object_to_json_string_ext(
            want, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        char got[1024], exp[1024];
        snprintf(got, sizeof got, "%.*s", (int)m.value_len, m.value);
        snprintf(exp, sizeof exp, "%s", w);
        int same = m.value_len == strlen(w) && memcmp(m.value, w, m.value_len) == 0;
        json_object_put(want);
        msg_free(&m);
        if (!same)
            fail_msg("case %zu:\n got  %s\n want %s", i, got, exp);
    }
}

/* ---- input json-c takes but would change or misread ------------------------------------------
 * Found by a hostile-input review; each was a silent change of the event or a 202 for a body that
 * is not JSON. */

/* Builds each body in structured mode and checks status and detail exactly. */
static void check_refused(const bad_case_t *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const bad_case_t *c = &cases[i];
        msg_t m;
        char err[256] = "";
        size_t len = c->len ? c->len : strlen(c->body);
        hb_status_t st = build(c->body, len, NORM_STRUCTURED, c->max_depth, &m, err, sizeof err);
        if (st == HB_OK)
            msg_free(&m); /* before a failure: cmocka's longjmp would leak it */
        if (st != c->want || strcmp(err, c->errstr) != 0)
            fail_msg("case %zu: got %s \"%s\", want %s \"%s\"", i, hb_status_str(st), err,
                     hb_status_str(c->want), c->errstr);
    }
}

/* json-c 0.16 reads an integer past the int64/uint64 range as the nearest bound, so
 * 123456789012345678901234567890 reached Kafka as 18446744073709551615 (and
 * -9223372036854775809 as INT64_MIN). docs/envelope.md promises data keeps every field: the digits are
 * kept as sent, at any depth, in both modes, through repeated keys and the stack gathering. */
static void test_integer_out_of_range_is_kept(void **state) {
    (void)state;
    const char *same[] = {
        "{\"event_type\":\"a.b\",\"n\":123456789012345678901234567890}",
        "{\"event_type\":\"a.b\",\"n\":18446744073709551616}",
        "{\"event_type\":\"a.b\",\"n\":-9223372036854775809}",
        "{\"event_type\":\"a.b\",\"n\":-99999999999999999999999999999999999999999}",
        /* next to the bounds themselves, in arrays, nested */
        "{\"event_type\":\"a.b\",\"v\":[18446744073709551615,18446744073709551616,"
        "-9223372036854775808,-9223372036854775809,{\"x\":[1,[28446744073709551615]]}]}",
        /* a uid-string stack next to one */
        "{\"event_type\":\"stack.x\",\"stack\":\"s-1\",\"n\":99999999999999999999}",
        /* keys json-c decodes (written back decoded, as always) */
        "{\"event_type\":\"a.b\",\"k\\u00e9\\n\":-19223372036854775808,"
        "\"\\ud800\":38446744073709551615}",
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        msg_t m;
        char err[256];
        hb_status_t st = build(same[i], strlen(same[i]), NORM_BINARY, 0, &m, err, sizeof err);
        if (st != HB_OK)
            fail_msg("case %zu: %s (%s)", i, hb_status_str(st), err);
        char got[512];
        snprintf(got, sizeof got, "%.*s", (int)m.value_len, m.value);
        msg_free(&m);
        /* binary mode writes data alone: the first five are the body as sent */
        if (i < 5 && strcmp(got, same[i]) != 0)
            fail_msg("case %zu:\n got  %s\n want %s", i, got, same[i]);
        if (i == 5 && strcmp(got, "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"s-1\"},"
                                  "\"n\":99999999999999999999}") != 0)
            fail_msg("case %zu: got %s", i, got);
        if (i == 6 && strcmp(got, "{\"event_type\":\"a.b\",\"k\xc3\xa9\\n\":-19223372036854775808,"
                                  "\"\xef\xbf\xbd\":38446744073709551615}") != 0)
            fail_msg("case %zu: got %s", i, got);
    }

    /* structured mode, and gathered under data.stack in a flat payload */
    msg_t m;
    const char *flat = "{\"event_type\":\"stack.x\",\"uid\":\"s-1\",\"git\":\"g\",\"fqdn\":\"f\","
                       "\"account_id\":123456789012345678901234567890}";
    build_ok(flat, strlen(flat), NORM_STRUCTURED, &m);
    assert_non_null(strstr(m.value, ",\"data\":{\"event_type\":\"stack.x\",\"stack\":{\"uid\":"
                                    "\"s-1\",\"git\":\"g\",\"fqdn\":\"f\",\"account_id\":"
                                    "123456789012345678901234567890}}}"));
    msg_free(&m);

    /* A repeated key keeps its last value (docs/http.md): the digits are those of the last one,
     * whichever of the two was out of range, and at any depth. */
    const char *dups[][2] = {
        {"{\"event_type\":\"a.b\",\"n\":123456789012345678901234567890,"
         "\"n\":18446744073709551615}",
         "{\"event_type\":\"a.b\",\"n\":18446744073709551615}"},
        {"{\"event_type\":\"a.b\",\"n\":18446744073709551615,"
         "\"n\":123456789012345678901234567890}",
         "{\"event_type\":\"a.b\",\"n\":123456789012345678901234567890}"},
        {"{\"event_type\":\"a.b\",\"o\":{\"n\":[99999999999999999999]},"
         "\"o\":{\"n\":[18446744073709551615,1]}}",
         "{\"event_type\":\"a.b\",\"o\":{\"n\":[18446744073709551615,1]}}"},
        {"{\"event_type\":\"a.b\",\"o\":{\"n\":99999999999999999999},\"o\":[1],"
         "\"o\":{\"m\":-99999999999999999999,\"n\":-9223372036854775808}}",
         "{\"event_type\":\"a.b\",\"o\":{\"m\":-99999999999999999999,"
         "\"n\":-9223372036854775808}}"},
        {"{\"event_type\":\"a.b\",\"a\":{\"b\":99999999999999999999},"
         "\"a\":{\"b\":1,\"b\":18446744073709551615}}",
         "{\"event_type\":\"a.b\",\"a\":{\"b\":18446744073709551615}}"},
        /* the same key spelt two ways is one key */
        {"{\"event_type\":\"a.b\",\"k\":99999999999999999999,\"\\u006b\":-99999999999999999999}",
         "{\"event_type\":\"a.b\",\"k\":-99999999999999999999}"},
    };
    for (size_t i = 0; i < sizeof dups / sizeof *dups; i++) {
        char got[512];
        snprintf(got, sizeof got, "%s", data_of(dups[i][0], &m));
        msg_free(&m);
        if (strcmp(got, dups[i][1]) != 0)
            fail_msg("dup case %zu:\n got  %s\n want %s", i, got, dups[i][1]);
    }

    /* as a timestamp such a number is unusable: the receive time */
    assert_string_equal(
        time_of("{\"event_type\":\"a.b\",\"timestamp\":123456789012345678901234567890}", NOW_MS),
        "2026-01-01T00:00:00Z");
}

/* json-c keys are C strings, so "\u0000" in a key cut it short: {"k\u0000x":1,"k":2} silently
 * lost a member, and a key "event_type\u0000x" was taken as event_type. Refused as invalid_body
 * (docs/http.md: a NUL in the body is a 400); \u0000 in a string value is still kept
 * (test_hostile_input_pinned). */
static void test_nul_escape_in_key_is_refused(void **state) {
    (void)state;
    static const bad_case_t cases[] = {
        {"{\"event_type\":\"a.b\",\"o\":{\"k\\u0000x\":1,\"k\":2}}", 0, 0, HB_ERR_INVALID,
         "body has an object key with \\u0000 at offset 27 (a key cannot hold a NUL character)"},
        {"{\"event_type\":\"a.b\",\"k\\u0000\":1}", 0, 0, HB_ERR_INVALID,
         "body has an object key with \\u0000 at offset 22 (a key cannot hold a NUL character)"},
        {"{\"event_type\\u0000x\":\"a.b\"}", 0, 0, HB_ERR_INVALID,
         "body has an object key with \\u0000 at offset 12 (a key cannot hold a NUL character)"},
        /* whitespace before the ':', a key in an array, the first of several */
        {"{\"event_type\":\"a.b\",\"l\":[{\"x\\u0000\" \r\n:1}],\"\\u0000\":2}", 0, 0,
         HB_ERR_INVALID,
         "body has an object key with \\u0000 at offset 28 (a key cannot hold a NUL character)"},
        /* a body that is not JSON anyway is invalid_json, whatever its strings hold */
        {"{\"event_type\":\"a.b\",\"k\\u0000\":}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: unexpected character at offset 30"},
    };
    check_refused(cases, sizeof cases / sizeof *cases);

    /* not a NUL: an escaped backslash before "u0000", and \u0000 in values next to keys */
    msg_t m;
    const char *ok = "{\"event_type\":\"a.b\",\"k\\\\u0000\":\"\\u0000\",\"v\":[\"\\u0000\"],"
                     "\"w\":\"\\u0000\" }";
    assert_string_equal(data_of(ok, &m), "{\"event_type\":\"a.b\",\"k\\\\u0000\":\"\\u0000\","
                                         "\"v\":[\"\\u0000\"],\"w\":\"\\u0000\"}");
    msg_free(&m);
}

/* json-c's strict mode still took two relaxed forms: control characters left raw in a string
 * (RFC 8259 7: they must be escaped) and single-quoted member names. docs/http.md: a body that is
 * not JSON gets 400 invalid_json. */
static void test_relaxed_json_is_refused(void **state) {
    (void)state;
    static const bad_case_t cases[] = {
        {"{\"event_type\":\"a.b\",\"v\":\"a\tb\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: control character U+0009 unescaped in a string at offset 26"},
        {"{\"event_type\":\"a.b\",\"v\":\"a\nb\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: control character U+000A unescaped in a string at offset 26"},
        {"{\"event_type\":\"a.b\",\"k\x01\":1}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: control character U+0001 unescaped in a string at offset 22"},
        {"{\"event_type\":\"a.b\",\"v\":\"\x1f\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: control character U+001F unescaped in a string at offset 25"},
        /* after a backslash: still a raw control character */
        {"{\"event_type\":\"a.b\",\"v\":\"\\\r\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: control character U+000D unescaped in a string at offset 26"},
        {"{'event_type':\"a.b\"}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: single quote at offset 1 (JSON strings take double quotes)"},
        {"{\"event_type\":\"a.b\",\"o\":{'x':1}}", 0, 0, HB_ERR_JSON,
         "body is not valid JSON: single quote at offset 25 (JSON strings take double quotes)"},
        /* the first fault counts: a NUL or bad UTF-8 before it is invalid_body */
        {"{\"event_type\":\"\xff\",'x':\"\t\"}", 0, 0, HB_ERR_INVALID,
         "body is not valid UTF-8 at offset 15"},
    };
    check_refused(cases, sizeof cases / sizeof *cases);

    /* every control character raw in a string is refused; escaped, each is kept */
    for (int c = 1; c < 0x20; c++) {
        char body[64], err[256];
        msg_t m;
        int n = snprintf(body, sizeof body, "{\"event_type\":\"a.b\",\"v\":\"%c\"}", c);
        assert_int_equal(build(body, (size_t)n, NORM_STRUCTURED, 0, &m, err, sizeof err),
                         HB_ERR_JSON);
        snprintf(body, sizeof body, "{\"event_type\":\"a.b\",\"v\":\"\\u%04x\"}", c);
        build_ok(body, strlen(body), NORM_BINARY, &m);
        msg_free(&m);
    }
    /* quotes, tabs and newlines where JSON allows them */
    msg_t m;
    const char *ok = "{\n\t\"event_type\" :\r\n\"a.b\",\"it's\":\"'q'\",\"t\":\"a\\tb\\n\"}\n";
    assert_string_equal(data_of(ok, &m),
                        "{\"event_type\":\"a.b\",\"it's\":\"'q'\",\"t\":\"a\\tb\\n\"}");
    msg_free(&m);
}

/* The pre-parse scan skips plain bytes eight at a time: each fault is found, at its exact
 * offset, wherever it falls in a word, inside a string and outside one. */
/* The fast path's subset (jscan.h): what it takes gives json-c's record (fast_takes checks it
 * against json-c's path), and what it leaves is json-c's to decide (build() checks the daemon's
 * path against json-c's there). */
static void test_fast_path_subset(void **state) {
    (void)state;
    static const char *const taken[] = {
        "{\"event_type\":\"stack.created\"}",
        " {\"event_type\" : \"stack.created\" , \"a\" : [ 1 , -0 , 0 , -12 , 1.50 , -0.0 , 1e5 , "
        "2E-07 , true , false , null , { } , [ ] ] }\r\n\t",
        "{\"event_type\":\"stack.x\",\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u00e9"
        "\\u20ac\\uFFFF\\u0041\"}",
        "{\"event_type\":\"stack\\u002ecreated\",\"uid\":\"a\\/b\\u00e9\",\"git\":1,\"fqdn\":2}",
        "{\"event_type\":\"stack.x\",\"stack\":\"u\\u0020v\",\"timestamp\":\"1700000000\"}",
        "{\"event_type\":\"stack.x\",\"stack\":{\"uid\":\"\\u0041\",\"uid2\":1},\"timestamp\":1.7e9}",
        "{\"event_type\":\"stack.x\",\"timestamp\":-5,\"n\":123456789012345678}",
        "{\"event_type\":\"server.x\",\"uid\":\"u\",\"name\":\"n\",\"status\":1,\"git\":2}",
        "{\"event_type\":\"a\",\"k\":{\"k\":{\"k\":1}},\"kk\":1,\"K\":2,\"\":3}",
        "{\"event_type\":\"stack.x\",\"\xc3\xa9\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"}",
    };
    static const char *const left[] = {
        "{\"event_type\":\"stack.x\",\"k\\u0061\":1}",          /* escape in a key */
        "{\"event_type\":\"stack.x\",\"a\":1,\"a\":2}",          /* repeated key */
        "{\"event_type\":\"stack.x\",\"o\":{\"b\":1,\"b\":1}}",  /* repeated, nested */
        "{\"event_type\":\"stack.x\",\"s\":\"a\\u0000b\"}",       /* \u0000 */
        "{\"event_type\":\"stack.x\",\"s\":\"\\ud83d\\ude00\"}",  /* surrogates */
        "{\"event_type\":\"stack.x\",\"n\":1234567890123456789}", /* 19 digits */
        "{\"event_type\":\"stack.x\",\"n\":1e100}",               /* 3-digit exponent */
        "{\"event_type\":\"stack.x\",\"n\":1.000000000000000000000000000000001}",
        "{\"event_type\":\"stack.x\",\"n\":01}",
        "{\"event_type\":\"stack.x\",\"n\":1.}",
        "{\"event_type\":\"stack.x\",\"n\":NaN}",
        "{\"event_type\":\"stack.x\"\f}",                         /* form feed */
        "{\"event_type\":\"stack.x\",}",
        "{\"event_type\":\"stack.x\"} x",
        "[{\"event_type\":\"stack.x\"}]",
        "{\"event_type\":1}",
        "{\"uid\":\"u\"}",
        "{\"event_type\":\"!bad\"}",
        "{\"event_type\":\"stack.x\",\"s\":\"\\x\"}",
        "{\"event_type\":\"stack.x\",\"s\":\"\\u12\"}",
        "{\"event_type\":\"stack.x\",\"s\":tru}",
        ("{\"event_type\":\"stack.x\",\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
         "[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
        "",
        "{\"event_type\":\"stack.x\",\"s\":\"\xc0\xaf\"}",     /* overlong UTF-8 */
        "{\"event_type\":\"stack.x\",\"s\":\"\xed\xa0\x80\"}", /* a surrogate in UTF-8 */
        "{\"event_type\":\"stack.x\",\"s\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"event_type\":\"stack.x\",\"s\":\"\xe2\x82\"}",    /* cut short */
        "{\"event_type\":\"stack.x\",\"\xff\":1}",
        "{\"event_type\":\"stack.x\",\"s\":\"a\tb\"}",         /* raw control character */
        "{\"event_type\":\"stack.x\",'s':1}",
        "{\"event_type\":\"stack.x\",\"s\":\xc3\xa9}",
    };
    msg_t m;
    char err[512];
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++) {
        size_t n = strlen(taken[i]);
        if (!fast_takes(taken[i], n, NORM_STRUCTURED, 0) || !fast_takes(taken[i], n, NORM_BINARY, 0))
            fail_msg("the fast path does not take %s", taken[i]);
        assert_int_equal(build(taken[i], n, NORM_STRUCTURED, 0, &m, err, sizeof err), HB_OK);
        msg_free(&m);
    }
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        size_t n = strlen(left[i]);
        if (fast_takes(left[i], n, NORM_STRUCTURED, 0))
            fail_msg("the fast path takes %s", left[i]);
        build(left[i], n, NORM_STRUCTURED, 0, &m, err, sizeof err); /* json-c's verdict */
        msg_free(&m);
    }
    /* Depth: the fast path stays 2 levels below the limit; json-c decides at the limit. */
    const char *deep = "{\"event_type\":\"stack.x\",\"a\":{\"b\":{\"c\":1}}}"; /* depth 4 */
    assert_true(fast_takes(deep, strlen(deep), NORM_STRUCTURED, 6));
    assert_false(fast_takes(deep, strlen(deep), NORM_STRUCTURED, 5));
    assert_int_equal(build(deep, strlen(deep), NORM_STRUCTURED, 4, &m, err, sizeof err), HB_OK);
    msg_free(&m);
    assert_int_equal(build(deep, strlen(deep), NORM_STRUCTURED, 3, &m, err, sizeof err),
                     HB_ERR_JSON);
    /* More members than the repeated-key check takes, and a tape past its local tokens. */
    buf_t big = {0};
    buf_puts(&big, "{\"event_type\":\"stack.x\"");
    for (int i = 0; i < 200; i++)
        buf_printf(&big, ",\"k%d\":[%d,\"v\"]", i, i);
    buf_putc(&big, '}');
    assert_false(fast_takes(big.data, big.len, NORM_STRUCTURED, 0));
    assert_int_equal(build(big.data, big.len, NORM_STRUCTURED, 0, &m, err, sizeof err), HB_OK);
    msg_free(&m);
    buf_reset(&big);
    buf_puts(&big, "{\"event_type\":\"stack.x\",\"a\":[");
    for (int i = 0; i < 1000; i++)
        buf_printf(&big, "%s{\"i\":%d}", i ? "," : "", i);
    buf_puts(&big, "]}");
    assert_true(fast_takes(big.data, big.len, NORM_STRUCTURED, 0));
    buf_free(&big);
}

static void test_scan_finds_faults_at_any_alignment(void **state) {
    (void)state;
    static const struct {
        const char *bytes; /* put at offset `at` of a 24-byte run */
        int in_string;
        hb_status_t want;
        const char *detail; /* %zu: the offset */
    } faults[] = {
        {"\t", 1, HB_ERR_JSON,
         "body is not valid JSON: control character U+0009 unescaped in a string at offset %zu"},
        {"\x1f", 1, HB_ERR_JSON,
         "body is not valid JSON: control character U+001F unescaped in a string at offset %zu"},
        {"\xc3(", 1, HB_ERR_INVALID, "body is not valid UTF-8 at offset %zu"},
        {"\xc3(", 0, HB_ERR_INVALID, "body is not valid UTF-8 at offset %zu"},
        {"'", 0, HB_ERR_JSON,
         "body is not valid JSON: single quote at offset %zu (JSON strings take double quotes)"},
    };
    for (size_t f = 0; f < sizeof faults / sizeof *faults; f++) {
        for (size_t at = 0; at < 24; at++) {
            char body[128], want[160], err[256];
            msg_t m;
            /* {"event_type":"a.b","v":"<run>"} or {"event_type":"a.b",<run>"v":1} */
            int n = snprintf(body, sizeof body, "{\"event_type\":\"a.b\",%s",
                             faults[f].in_string ? "\"v\":\"" : "");
            size_t start = (size_t)n;
            memset(body + n, faults[f].in_string ? 'x' : ' ', 24);
            memcpy(body + start + at, faults[f].bytes, strlen(faults[f].bytes));
            n += 24;
            n += snprintf(body + n, sizeof body - (size_t)n, "%s",
                          faults[f].in_string ? "\"}" : "\"v\":1}");
            snprintf(want, sizeof want, faults[f].detail, start + at);
            hb_status_t st = build(body, (size_t)n, NORM_STRUCTURED, 0, &m, err, sizeof err);
            if (st == HB_OK)
                msg_free(&m);
            if (st != faults[f].want || strcmp(err, want) != 0)
                fail_msg("fault %zu at %zu: got %s \"%s\", want \"%s\"", f, at,
                         hb_status_str(st), err, want);
        }
    }
    /* a NUL byte at any alignment, and plain runs of every length (valid UTF-8, DEL, quotes in a
     * string) pass through */
    for (size_t at = 0; at < 24; at++) {
        char body[128], want[64], err[256];
        msg_t m;
        int n = snprintf(body, sizeof body, "{\"event_type\":\"a.b\",\"v\":\"%.*s%s\"}", (int)at,
                         "xxxxxxxxxxxxxxxxxxxxxxxx",
                         "\xc3\xa9\x7f'/\xe2\x82\xac\xf0\x9f\x98\x80\\\"");
        build_ok(body, (size_t)n, NORM_BINARY, &m);
        msg_free(&m);
        memset(body, ' ', 24);
        body[at] = '\0';
        memcpy(body + 24, "{\"event_type\":\"a.b\"}", 20);
        snprintf(want, sizeof want, "body contains a NUL byte at offset %zu", at);
        assert_int_equal(build(body, 44, NORM_STRUCTURED, 0, &m, err, sizeof err), HB_ERR_INVALID);
        assert_string_equal(err, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_goldens),
        cmocka_unit_test(test_extra_goldens),
        cmocka_unit_test(test_seed_envelopes_name_the_stack),
        cmocka_unit_test(test_flat_and_nested_same_stack),
        cmocka_unit_test(test_stack_as_string),
        cmocka_unit_test(test_unknown_family),
        cmocka_unit_test(test_flat_detection_threshold),
        cmocka_unit_test(test_no_subject),
        cmocka_unit_test(test_binary_mode),
        cmocka_unit_test(test_id_is_sha256_of_body),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_escaping_and_source_encoding),
        cmocka_unit_test(test_custom_router),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_echo_is_capped),
        cmocka_unit_test(test_duplicate_keys_last_wins),
        cmocka_unit_test(test_hostile_input_pinned),
        cmocka_unit_test(test_data_written_as_json_c_writes_it),
        cmocka_unit_test(test_integer_out_of_range_is_kept),
        cmocka_unit_test(test_nul_escape_in_key_is_refused),
        cmocka_unit_test(test_relaxed_json_is_refused),
        cmocka_unit_test(test_scan_finds_faults_at_any_alignment),
        cmocka_unit_test(test_fast_path_subset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
