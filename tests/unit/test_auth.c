/* test_auth.c: access control: published signature vectors, every mode's allow and deny. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

/* Standard Webhooks' published example (standard-webhooks spec, "Verifying webhooks"). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_TS "1614265330"
#define SW_TS_N 1614265330LL
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* GitHub's documented example ("Validating webhook deliveries"). */
#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

#define TOKEN "s3cr3t-token-0123456789"
#define TOKEN2 "rotated-token-abcdefghij"

static auth_t *must_new(const auth_opts_t *o) {
    char err[256] = "";
    auth_t *a = auth_new(o, err, sizeof err);
    if (!a)
        fail_msg("auth_new: %s", err);
    return a;
}

/* Runs the check and asserts the status (0 = allowed) and, when denied, the error code. */
static auth_result_t expect(const auth_t *a, const auth_input_t *in, int status, const char *code) {
    auth_result_t r;
    auth_check(a, in, &r);
    if (status == 0) {
        if (!r.allowed)
            fail_msg("denied (%d %s: %s), want allowed", r.status, r.error, r.detail);
    } else {
        if (r.allowed)
            fail_msg("allowed, want %d %s", status, code);
        assert_int_equal(r.status, status);
        assert_string_equal(r.error, code);
        assert_true(r.detail[0] != '\0');
    }
    return r;
}

static auth_input_t sw_input(void) {
    auth_input_t in = {.peer = "192.0.2.1",
                       .wh_id = SW_ID,
                       .wh_timestamp = SW_TS,
                       .wh_signature = SW_SIG,
                       .body = SW_BODY,
                       .body_len = strlen(SW_BODY),
                       .now_s = SW_TS_N};
    return in;
}

static void test_nothing_configured_allows(void **state) {
    (void)state;
    auth_opts_t o = {0};
    auth_t *a = must_new(&o);
    auth_input_t in = {.peer = "192.0.2.1"};
    assert_false(auth_enabled(a));
    expect(a, &in, 0, NULL);
    expect(NULL, &in, 0, NULL);
    auth_free(a);
    auth_free(NULL);
}

static void test_standard_webhooks_published_vector(void **state) {
    (void)state;
    const char *secrets[] = {SW_SECRET};
    auth_opts_t o = {.standard_secrets = secrets, .standard_secrets_cnt = 1};
    auth_t *a = must_new(&o);
    auth_input_t in = sw_input();
    expect(a, &in, 0, NULL);
    /* One byte of the body, the id or the timestamp changed: no match. */
    in.body = "{\"test\": 2432232315}";
    expect(a, &in, 401, "invalid_signature");
    in = sw_input();
    in.wh_id = "msg_p5jXN8AQM9LWM0D4loKWxJel";
    expect(a, &in, 401, "invalid_signature");
    in = sw_input();
    in.wh_timestamp = "1614265331";
    in.now_s = 1614265331;
    expect(a, &in, 401, "invalid_signature");
    /* The signature of another secret. */
    in = sw_input();
    in.wh_signature = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    expect(a, &in, 401, "invalid_signature");
    auth_free(a);
}

static void test_github_published_vector(void **state) {
    (void)state;
    const char *secrets[] = {GH_SECRET};
    auth_opts_t o = {.github_secrets = secrets, .github_secrets_cnt = 1};
    auth_t *a = must_new(&o);
    auth_input_t in = {.peer = "192.0.2.1", .hub_signature = GH_SIG, .body = GH_BODY,
                       .body_len = strlen(GH_BODY)};
    expect(a, &in, 0, NULL);
    /* Upper-case hex is the same digest. */
    in.hub_signature =
        "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    expect(a, &in, 0, NULL);
    in.hub_signature = GH_SIG;
    in.body = "Hello, World?";
    expect(a, &in, 401, "invalid_signature");
    in.body = GH_BODY;
    in.hub_signature = NULL;
    expect(a, &in, 401, "missing_signature");
    const char *malformed[] = {
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177",
        "sha256=z57107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=",
        "",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        in.hub_signature = malformed[i];
        expect(a, &in, 401, "invalid_signature");
    }
    auth_free(a);
}

static void test_rotation_any_secret_and_any_entry(void **state) {
    (void)state;
    const char *sw[] = {"whsec_c29tZSBvdGhlciBrZXkgb2YgdGhpcnR5LXR3byE=", SW_SECRET};
    const char *gh[] = {"the new secret", GH_SECRET};
    auth_opts_t o = {.standard_secrets = sw, .standard_secrets_cnt = 2};
    auth_t *a = must_new(&o);
    auth_input_t in = sw_input();
    expect(a, &in, 0, NULL); /* the second (old) secret matches */
    /* The sender signs with several keys: a wrong entry, an unknown version, the right one. */
    in.wh_signature = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,abc " SW_SIG;
    expect(a, &in, 0, NULL);
    in.wh_signature = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,abc";
    expect(a, &in, 401, "invalid_signature");
    auth_free(a);

    auth_opts_t og = {.github_secrets = gh, .github_secrets_cnt = 2};
    a = must_new(&og);
    auth_input_t ig = {.peer = "192.0.2.1", .hub_signature = GH_SIG, .body = GH_BODY,
                       .body_len = strlen(GH_BODY)};
    expect(a, &ig, 0, NULL);
    auth_free(a);

    const char *tokens[] = {TOKEN, TOKEN2};
    auth_opts_t ot = {.tokens = tokens, .tokens_cnt = 2};
    a = must_new(&ot);
    auth_input_t it = {.peer = "192.0.2.1", .path_token = TOKEN2};
    expect(a, &it, 0, NULL);
    it.path_token = TOKEN;
    expect(a, &it, 0, NULL);
    auth_free(a);
}

static void test_timestamp_tolerance_edges(void **state) {
    (void)state;
    const char *secrets[] = {SW_SECRET};
    auth_opts_t o = {.standard_secrets = secrets, .standard_secrets_cnt = 1};
    auth_t *a = must_new(&o); /* default tolerance: 300 s */
    auth_input_t in = sw_input();
    in.now_s = SW_TS_N + 300;
    expect(a, &in, 0, NULL);
    in.now_s = SW_TS_N - 300;
    expect(a, &in, 0, NULL);
    in.now_s = SW_TS_N + 301;
    expect(a, &in, 401, "stale_signature");
    in.now_s = SW_TS_N - 301;
    expect(a, &in, 401, "stale_signature");
    auth_free(a);

    o.tolerance_s = 5;
    a = must_new(&o);
    in.now_s = SW_TS_N + 5;
    expect(a, &in, 0, NULL);
    in.now_s = SW_TS_N + 6;
    expect(a, &in, 401, "stale_signature");
    auth_free(a);
}

static void test_standard_webhooks_malformed_headers(void **state) {
    (void)state;
    const char *secrets[] = {SW_SECRET};
    auth_opts_t o = {.standard_secrets = secrets, .standard_secrets_cnt = 1};
    auth_t *a = must_new(&o);
    auth_input_t in = sw_input();
    in.wh_id = NULL;
    expect(a, &in, 401, "missing_signature");
    in = sw_input();
    in.wh_timestamp = NULL;
    expect(a, &in, 401, "missing_signature");
    in = sw_input();
    in.wh_signature = NULL;
    expect(a, &in, 401, "missing_signature");
    const char *bad_ts[] = {"", "abc", "-1614265330", "1614265330 ", "+1614265330",
                            "1614265330.0", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad_ts / sizeof *bad_ts; i++) {
        in = sw_input();
        in.wh_timestamp = bad_ts[i];
        expect(a, &in, 401, "invalid_signature");
    }
    const char *bad_sig[] = {"",
                             "v1,",
                             "v1",
                             "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O",  /* cut */
                             "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=AAAA", /* long */
                             "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=", /* base64url */
                             "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                             "v1,!!!!"};
    for (size_t i = 0; i < sizeof bad_sig / sizeof *bad_sig; i++) {
        in = sw_input();
        in.wh_signature = bad_sig[i];
        expect(a, &in, 401, "invalid_signature");
    }
    /* Several spaces between entries are fine. */
    in = sw_input();
    in.wh_signature = "  v1,AAAA   " SW_SIG "  ";
    expect(a, &in, 0, NULL);
    auth_free(a);
}

static void test_token_path_and_query(void **state) {
    (void)state;
    const char *tokens[] = {TOKEN};
    auth_opts_t o = {.tokens = tokens, .tokens_cnt = 1};
    auth_t *a = must_new(&o);
    assert_true(auth_uses_tokens(a));
    auth_input_t in = {.peer = "192.0.2.1", .path_token = TOKEN};
    expect(a, &in, 0, NULL);
    in = (auth_input_t){.peer = "192.0.2.1", .query_token = TOKEN};
    expect(a, &in, 0, NULL);
    /* A wrong token in one place and the right one in the other: the right one counts. */
    in = (auth_input_t){.peer = "192.0.2.1", .path_token = "nope", .query_token = TOKEN};
    expect(a, &in, 0, NULL);
    in = (auth_input_t){.peer = "192.0.2.1"};
    expect(a, &in, 401, "missing_token");
    in.path_token = "";
    expect(a, &in, 401, "missing_token");
    const char *wrong[] = {"s3cr3t-token-012345678", "s3cr3t-token-01234567890",
                           "S3CR3T-TOKEN-0123456789", "x"};
    for (size_t i = 0; i < sizeof wrong / sizeof *wrong; i++) {
        in.path_token = wrong[i];
        auth_result_t r = expect(a, &in, 401, "invalid_token");
        assert_null(strstr(r.detail, TOKEN));
        assert_null(strstr(r.detail, wrong[i]));
    }
    auth_free(a);
}

static void test_basic(void **state) {
    (void)state;
    const char *users[] = {"cloud66:pa:ss w0rd", "other:secret"};
    auth_opts_t o = {.basic_users = users, .basic_users_cnt = 2};
    auth_t *a = must_new(&o);
    /* base64("cloud66:pa:ss w0rd") = Y2xvdWQ2NjpwYTpzcyB3MHJk; base64("other:secret") =
     * b3RoZXI6c2VjcmV0; base64("cloud66:wrong") = Y2xvdWQ2Njp3cm9uZw== */
    auth_input_t in = {.peer = "192.0.2.1", .authorization = "Basic Y2xvdWQ2NjpwYTpzcyB3MHJk"};
    expect(a, &in, 0, NULL);
    in.authorization = "basic   b3RoZXI6c2VjcmV0 ";
    expect(a, &in, 0, NULL);
    in.authorization = "Basic Y2xvdWQ2Njp3cm9uZw==";
    auth_result_t r = expect(a, &in, 401, "invalid_credentials");
    assert_true(r.want_basic);
    in.authorization = "Basic ***";
    expect(a, &in, 401, "invalid_credentials");
    in.authorization = "Bearer Y2xvdWQ2NjpwYTpzcyB3MHJk";
    expect(a, &in, 401, "missing_credentials");
    in.authorization = "BasicY2xvdWQ2NjpwYTpzcyB3MHJk";
    expect(a, &in, 401, "missing_credentials");
    in.authorization = NULL;
    r = expect(a, &in, 401, "missing_credentials");
    assert_true(r.want_basic);
    auth_free(a);
}

static void test_allow_from_ipv4_ipv6(void **state) {
    (void)state;
    const char *allow[] = {"203.0.113.0/24", "2001:db8:1::/48", "198.51.100.7"};
    auth_opts_t o = {.allow_from = allow, .allow_from_cnt = 3};
    auth_t *a = must_new(&o);
    const char *ok[] = {"203.0.113.0", "203.0.113.255", "2001:db8:1::1",
                        "2001:db8:1:ffff:ffff:ffff:ffff:ffff", "198.51.100.7",
                        "::ffff:203.0.113.9"}; /* IPv4-mapped, as a dual-stack socket says */
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        auth_input_t in = {.peer = ok[i]};
        expect(a, &in, 0, NULL);
    }
    const char *no[] = {"203.0.114.1", "203.0.112.255", "2001:db8:2::1", "2001:db8::1",
                        "198.51.100.8", "::1", "127.0.0.1", "", "not-an-address"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        auth_input_t in = {.peer = no[i]};
        expect(a, &in, 403, "forbidden_source");
    }
    auth_input_t in = {.peer = NULL};
    expect(a, &in, 403, "forbidden_source");
    auth_free(a);

    const char *odd[] = {"0.0.0.0/0", "::/0"};
    auth_opts_t o2 = {.allow_from = odd, .allow_from_cnt = 2};
    a = must_new(&o2);
    in.peer = "8.8.8.8";
    expect(a, &in, 0, NULL);
    in.peer = "2606:4700::1";
    expect(a, &in, 0, NULL);
    auth_free(a);
}

static void test_forwarded_for_only_from_trusted_proxies(void **state) {
    (void)state;
    const char *allow[] = {"203.0.113.0/24"};
    const char *proxies[] = {"10.0.0.0/8", "fd00::/8"};
    auth_opts_t o = {.allow_from = allow, .allow_from_cnt = 1, .trusted_proxies = proxies,
                     .trusted_proxies_cnt = 2};
    auth_t *a = must_new(&o);
    /* A stranger naming an allowed address: not believed. */
    auth_input_t in = {.peer = "192.0.2.66", .forwarded_for = "203.0.113.5"};
    expect(a, &in, 403, "forbidden_source");
    /* From a trusted proxy: believed. */
    in.peer = "10.1.2.3";
    auth_result_t r = expect(a, &in, 0, NULL);
    assert_string_equal(r.client, "203.0.113.5");
    /* The client put an allowed address in front; the proxy appended the real one. */
    in.forwarded_for = "203.0.113.5, 192.0.2.66";
    r = expect(a, &in, 403, "forbidden_source");
    assert_string_equal(r.client, "192.0.2.66");
    /* Two proxies: the right-most untrusted entry is the client. */
    in.forwarded_for = "192.0.2.66, 203.0.113.5, 10.9.9.9";
    r = expect(a, &in, 0, NULL);
    assert_string_equal(r.client, "203.0.113.5");
    /* IPv6 proxy, bracketed and port forms, empty elements. */
    in.peer = "fd12::1";
    in.forwarded_for = "[2001:db8::1]:443, , 203.0.113.7:5555";
    r = expect(a, &in, 0, NULL);
    assert_string_equal(r.client, "203.0.113.7");
    /* Garbage where the client should be. */
    in.forwarded_for = "203.0.113.5, evil";
    expect(a, &in, 403, "forbidden_source");
    /* Only trusted hops: the left-most is all we have, and it is not allowed. */
    in.forwarded_for = "10.0.0.1, 10.0.0.2";
    expect(a, &in, 403, "forbidden_source");
    /* A trusted proxy's own address is not in allow_from, and it sent no XFF. */
    in.forwarded_for = NULL;
    expect(a, &in, 403, "forbidden_source");
    auth_free(a);
}

/* The detail echoes a bad X-Forwarded-For element, and it goes into the JSON answer and the log
 * line, which copy bytes >= 0x80 as they are: the echo must be printable ASCII, or a header
 * byte like 0xff makes both invalid UTF-8. (Found by tests/fuzz/fuzz_auth.c.) */
static void test_forwarded_for_echo_is_printable(void **state) {
    (void)state;
    const char *allow[] = {"203.0.113.0/24"};
    const char *proxies[] = {"10.0.0.0/8"};
    auth_opts_t o = {.allow_from = allow, .allow_from_cnt = 1, .trusted_proxies = proxies,
                     .trusted_proxies_cnt = 1};
    auth_t *a = must_new(&o);
    auth_input_t in = {.peer = "10.1.2.3",
                       .forwarded_for = "203.0.113.5, \xff\xfe\x01" "ev\til\x7f, 10.9.9.9"};
    auth_result_t r = expect(a, &in, 403, "forbidden_source");
    for (const char *p = r.detail; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            fail_msg("byte 0x%02x in the detail: %s", (unsigned char)*p, r.detail);
    assert_string_equal(r.detail, "X-Forwarded-For holds '???ev?il?', which is not an address");
    /* still capped at 48 characters, with "..." to say so */
    char long_xff[128];
    memset(long_xff, 'x', 100);
    long_xff[100] = '\0';
    in.forwarded_for = long_xff;
    r = expect(a, &in, 403, "forbidden_source");
    assert_non_null(strstr(r.detail, "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"));
    auth_free(a);
}

static void test_every_configured_mode_must_pass(void **state) {
    (void)state;
    const char *tokens[] = {TOKEN};
    const char *allow[] = {"192.0.2.0/24"};
    const char *gh[] = {GH_SECRET};
    auth_opts_t o = {.tokens = tokens, .tokens_cnt = 1, .allow_from = allow,
                     .allow_from_cnt = 1, .github_secrets = gh, .github_secrets_cnt = 1};
    auth_t *a = must_new(&o);
    auth_input_t in = {.peer = "192.0.2.1", .query_token = TOKEN, .hub_signature = GH_SIG,
                       .body = GH_BODY, .body_len = strlen(GH_BODY)};
    expect(a, &in, 0, NULL);
    in.peer = "198.51.100.1";
    expect(a, &in, 403, "forbidden_source");
    in.peer = "192.0.2.1";
    in.query_token = NULL;
    expect(a, &in, 401, "missing_token");
    in.query_token = TOKEN;
    in.hub_signature = NULL;
    expect(a, &in, 401, "missing_signature");
    auth_free(a);
}

static void expect_bad_opts(const auth_opts_t *o, const char *needle, const char *secret) {
    char err[256] = "";
    auth_t *a = auth_new(o, err, sizeof err);
    if (a || !strstr(err, needle))
        fail_msg("want error containing '%s', got '%s'", needle, a ? "(built)" : err);
    if (secret && strstr(err, secret))
        fail_msg("the error repeats a secret: %s", err);
}

static void test_bad_options(void **state) {
    (void)state;
    const char *cidr_bad[][1] = {{"10.0.0.0/33"}, {"10.0.0.1/8"}, {"300.1.1.1"},
                                 {"2001:db8::/129"}, {"2001:db8::1/32"}, {"10.0.0.0/"},
                                 {"10.0.0.0/8x"}, {"::ffff:10.0.0.0/64"}};
    for (size_t i = 0; i < sizeof cidr_bad / sizeof *cidr_bad; i++) {
        auth_opts_t o = {.allow_from = cidr_bad[i], .allow_from_cnt = 1};
        expect_bad_opts(&o, "auth.allow_from[0]", NULL);
        auth_opts_t p = {.trusted_proxies = cidr_bad[i], .trusted_proxies_cnt = 1};
        expect_bad_opts(&p, "auth.trusted_proxies[0]", NULL);
    }
    const char *mapped[] = {"::ffff:10.0.0.0/104"};
    auth_opts_t m = {.allow_from = mapped, .allow_from_cnt = 1};
    auth_t *a = must_new(&m);
    auth_input_t in = {.peer = "10.1.1.1"};
    expect(a, &in, 0, NULL);
    auth_free(a);

    const char *short_token[] = {TOKEN, "short-secret"};
    auth_opts_t t = {.tokens = short_token, .tokens_cnt = 2};
    expect_bad_opts(&t, "auth.tokens[1]", "short-secret");
    const char *slash_token[] = {"has/a/slash/0123456789"};
    auth_opts_t t2 = {.tokens = slash_token, .tokens_cnt = 1};
    expect_bad_opts(&t2, "auth.tokens[0]", "has/a/slash");
    const char *users[] = {"nocolon-pw-x9", ":pw-x9", "user-x9:"};
    for (size_t i = 0; i < 3; i++) {
        auth_opts_t u = {.basic_users = &users[i], .basic_users_cnt = 1};
        expect_bad_opts(&u, "auth.basic_users[0]", users[i]);
    }
    const char *sw[] = {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!",
                        "whsec_A"};
    for (size_t i = 0; i < 4; i++) {
        auth_opts_t s = {.standard_secrets = &sw[i], .standard_secrets_cnt = 1};
        expect_bad_opts(&s, "auth.standard_webhooks_secrets[0]", i == 0 ? sw[i] : NULL);
    }
    const char *gh[] = {""};
    auth_opts_t g = {.github_secrets = gh, .github_secrets_cnt = 1};
    expect_bad_opts(&g, "auth.github_secrets[0]", NULL);
}

/* auth_from_config names the file and line of the bad entry. */
static void test_from_config_names_the_line(void **state) {
    (void)state;
    hb_config_t *c = config_new();
    assert_non_null(c);
    char *items[] = {"10.0.0.0/8", "10.0.0.1/8"};
    int lines[] = {7, 9};
    c->auth_allow_from = (cfg_strlist_t){.items = items, .lines = lines, .count = 2};
    c->path = "x.conf";
    char err[256] = "";
    assert_null(auth_from_config(c, err, sizeof err));
    assert_non_null(strstr(err, "x.conf:9: auth.allow_from[1]"));
    c->auth_allow_from = (cfg_strlist_t){0};
    c->path = NULL;
    auth_t *a = auth_from_config(c, err, sizeof err);
    assert_non_null(a);
    assert_false(auth_enabled(a));
    auth_free(a);
    config_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_configured_allows),
        cmocka_unit_test(test_standard_webhooks_published_vector),
        cmocka_unit_test(test_github_published_vector),
        cmocka_unit_test(test_rotation_any_secret_and_any_entry),
        cmocka_unit_test(test_timestamp_tolerance_edges),
        cmocka_unit_test(test_standard_webhooks_malformed_headers),
        cmocka_unit_test(test_token_path_and_query),
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_allow_from_ipv4_ipv6),
        cmocka_unit_test(test_forwarded_for_only_from_trusted_proxies),
        cmocka_unit_test(test_forwarded_for_echo_is_printable),
        cmocka_unit_test(test_every_configured_mode_must_pass),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_from_config_names_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
