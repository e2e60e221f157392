/* test_h1.c: the strict HTTP/1.1 parser (h1.c): every framing case issue 12 lists is refused
 * with the documented status, valid requests parse to the right fields, a head may arrive in
 * any number of pieces, and chunked bodies decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "h1.h"

static const h1_limits_t LIM = {.max_head = 4096, .max_fields = 20, .max_body = 1000};

typedef struct parsed {
    h1_result_t r;
    h1_request_t req;
    h1_field_t fields[32];
    h1_error_t err;
} parsed_t;

static void parse(const char *text, parsed_t *p) {
    memset(p, 0, sizeof *p);
    p->req.fields = p->fields;
    p->req.fields_cap = 32;
    p->r = h1_parse_head(text, strlen(text), &LIM, &p->req, &p->err);
}

#define OK_HEAD "POST /p HTTP/1.1\r\nHost: x\r\n"

static void test_refused(void **state) {
    (void)state;
    static const struct {
        const char *why;
        const char *text;
        int status;
    } cases[] = {
        {"two Content-Length", OK_HEAD "Content-Length: 58\r\nContent-Length: 260\r\n\r\n", 400},
        {"two equal Content-Length", OK_HEAD "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400},
        {"list Content-Length", OK_HEAD "Content-Length: 5, 5\r\n\r\n", 400},
        {"+58", OK_HEAD "Content-Length: +58\r\n\r\n", 400},
        {"-5", OK_HEAD "Content-Length: -5\r\n\r\n", 400},
        {"12abc", OK_HEAD "Content-Length: 12abc\r\n\r\n", 400},
        {"empty length", OK_HEAD "Content-Length: \r\n\r\n", 400},
        {"hex length", OK_HEAD "Content-Length: 0x10\r\n\r\n", 400},
        {"CL with TE", OK_HEAD "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"space before colon",
         OK_HEAD "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n", 400},
        {"tab before colon", OK_HEAD "Content-Length\t: 5\r\n\r\n", 400},
        {"TE gzip", OK_HEAD "Transfer-Encoding: gzip\r\n\r\n", 400},
        {"TE gzip, chunked", OK_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n", 400},
        {"TE chunked, chunked", OK_HEAD "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
        {"two TE", OK_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"TE in 1.0", "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"obs-fold", OK_HEAD "X-A: 1\r\n  continued\r\n\r\n", 400},
        {"fold first", "POST /p HTTP/1.1\r\n Host: x\r\n\r\n", 400},
        {"bare CR in value", OK_HEAD "X-A: a\rb\r\n\r\n", 400},
        {"bare LF line", OK_HEAD "X-A: a\n\r\n", 400},
        {"bare LF request line", "POST /p HTTP/1.1\nHost: x\r\n\r\n", 400},
        {"bare LF end", OK_HEAD "\n", 400},
        {"NUL in value", OK_HEAD "X-A: a\0b\r\n\r\n", 400}, /* strlen stops: see below */
        {"DEL in value", OK_HEAD "X-A: a\x7f" "b\r\n\r\n", 400},
        {"ctl in value", OK_HEAD "X-A: a\x01" "b\r\n\r\n", 400},
        {"no Host", "POST /p HTTP/1.1\r\n\r\n", 400},
        {"two Host", OK_HEAD "Host: y\r\n\r\n", 400},
        {"empty name", OK_HEAD ": v\r\n\r\n", 400},
        {"no colon", OK_HEAD "X-A v\r\n\r\n", 400},
        {"bad name char", OK_HEAD "X(A): v\r\n\r\n", 400},
        {"two spaces", "POST  /p HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"tab in line", "POST\t/p HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"non-ascii target", "POST /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400},
        {"lowercase version", "POST /p http/1.1\r\nHost: x\r\n\r\n", 400},
        {"no version", "POST /p\r\nHost: x\r\n\r\n", 400},
        {"HTTP/2.0", "POST /p HTTP/2.0\r\nHost: x\r\n\r\n", 505},
        {"HTTP/1.2", "POST /p HTTP/1.2\r\nHost: x\r\n\r\n", 505},
        {"body too large", OK_HEAD "Content-Length: 1001\r\n\r\n", 413},
        {"huge length", OK_HEAD "Content-Length: 99999999999999999999999\r\n\r\n", 413},
        {"other Expect", OK_HEAD "Expect: 200-ok\r\nContent-Length: 5\r\n\r\n", 417},
        {"Expect list", OK_HEAD "Expect: 100-continue, x\r\n\r\n", 417},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed_t p;
        memset(&p, 0, sizeof p);
        p.req.fields = p.fields;
        p.req.fields_cap = 32;
        /* The NUL case is written with its real length. */
        size_t n = strlen(cases[i].text);
        if (strcmp(cases[i].why, "NUL in value") == 0)
            n = sizeof(OK_HEAD "X-A: a\0b\r\n\r\n") - 1;
        p.r = h1_parse_head(cases[i].text, n, &LIM, &p.req, &p.err);
        if (p.r != H1_ERROR || p.err.status != cases[i].status)
            fail_msg("%s: result %d status %d", cases[i].why, p.r, p.err.status);
        assert_non_null(p.err.code);
        assert_true(p.err.detail[0] != '\0');
    }
}

static void test_valid(void **state) {
    (void)state;
    parsed_t p;
    const char *text = "\r\nPOST /webhooks/x?token=a HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n"
                       "content-type:  application/json \r\nX-Empty:\r\nConnection: close\r\n"
                       "\r\nbody";
    parse(text, &p);
    assert_int_equal(p.r, H1_DONE);
    assert_int_equal(p.req.method, H1_POST);
    assert_int_equal(p.req.minor, 1);
    assert_int_equal(p.req.framing, H1_BODY_LENGTH);
    assert_int_equal(p.req.content_length, 12);
    assert_false(p.req.keep_alive);
    assert_int_equal(p.req.nfields, 5);
    const h1_field_t *ct = h1_find(&p.req, "Content-Type");
    assert_non_null(ct);
    assert_int_equal(ct->value.n, 16);
    assert_memory_equal(ct->value.p, "application/json", 16);
    assert_int_equal(h1_find(&p.req, "x-empty")->value.n, 0);
    assert_int_equal(p.req.target.n, strlen("/webhooks/x?token=a"));
    assert_int_equal(p.req.head_len, strlen(text) - 4); /* all but "body" */

    parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &p); /* 1.0: no Host needed */
    assert_int_equal(p.r, H1_DONE);
    assert_true(p.req.keep_alive);
    assert_int_equal(p.req.framing, H1_BODY_NONE);
    parse("GET / HTTP/1.0\r\n\r\n", &p);
    assert_false(p.req.keep_alive);
    parse("BREW /pot HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", &p);
    assert_int_equal(p.r, H1_DONE);
    assert_int_equal(p.req.method, H1_OTHER);
    assert_int_equal(p.req.framing, H1_BODY_CHUNKED);
    assert_true(p.req.keep_alive);
    parse(OK_HEAD "Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n", &p);
    assert_int_equal(p.r, H1_DONE);
    assert_true(p.req.expect_continue);
    parse(OK_HEAD "Expect: 100-CONTINUE\r\n\r\n", &p); /* case-insensitive (RFC 9110 10.1.1) */
    assert_int_equal(p.r, H1_DONE);
    assert_true(p.req.expect_continue);
    parse("POST /p HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", &p); /* 1.0: Expect is ignored */
    assert_int_equal(p.r, H1_DONE);
    assert_false(p.req.expect_continue);
    parse(OK_HEAD "X-Obs: caf\xc3\xa9\r\n\r\n", &p); /* obs-text is allowed in values */
    assert_int_equal(p.r, H1_DONE);
}

static void test_incremental(void **state) {
    (void)state;
    const char *text = OK_HEAD "Content-Length: 3\r\nX-A: 1\r\n\r\n";
    size_t n = strlen(text);
    for (size_t cut = 0; cut < n; cut++) {
        parsed_t p;
        memset(&p, 0, sizeof p);
        p.req.fields = p.fields;
        p.req.fields_cap = 32;
        h1_result_t r = h1_parse_head(text, cut, &LIM, &p.req, &p.err);
        if (r != H1_MORE)
            fail_msg("cut at %zu: %d (%s)", cut, r, p.err.detail);
    }
    parsed_t p;
    parse(text, &p);
    assert_int_equal(p.r, H1_DONE);
    assert_int_equal(p.req.head_len, n);
    /* An error is seen before the head ends. */
    parse(OK_HEAD "Content-Length: +1\r\nX-A: 1", &p);
    assert_int_equal(p.r, H1_ERROR);
}

static void test_limits(void **state) {
    (void)state;
    char big[6000];
    snprintf(big, sizeof big, OK_HEAD "X-Pad: %0*d\r\n\r\n", 4200, 0);
    parsed_t p;
    parse(big, &p);
    assert_int_equal(p.r, H1_ERROR);
    assert_int_equal(p.err.status, 431);
    big[3000] = '\0'; /* not yet over the limit: more */
    parse(big, &p);
    assert_int_equal(p.r, H1_MORE);
    /* Too many fields: parsed whole, flagged, fields past the storage not kept. */
    char many[2048] = OK_HEAD;
    for (int i = 0; i < 25; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "X-%d: v\r\n", i);
    strcat(many, "Content-Length: 2\r\n\r\n");
    parse(many, &p);
    assert_int_equal(p.r, H1_DONE);
    assert_true(p.req.too_many_fields);
    assert_int_equal(p.req.fields_seen, 27);
    assert_int_equal(p.req.content_length, 2);
}

static h1_result_t chunked(const char *text, size_t *wire, char *out, size_t *blen,
                           h1_error_t *err) {
    return h1_parse_chunked(text, strlen(text), 1000, 4000, wire, blen, out, err);
}

static void test_chunked(void **state) {
    (void)state;
    size_t wire = 0, blen = 0;
    char out[64];
    h1_error_t err;
    const char *ok = "3\r\nabc\r\nA;ext=1\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
    assert_int_equal(chunked(ok, &wire, out, &blen, &err), H1_DONE);
    assert_int_equal(blen, 13);
    assert_memory_equal(out, "abc0123456789", 13);
    assert_int_equal(wire, strlen(ok) - 4);
    assert_int_equal(chunked("3\r\nab", &wire, NULL, &blen, &err), H1_MORE);
    assert_int_equal(chunked("3\r\nabc\r\n0\r\n", &wire, NULL, &blen, &err), H1_MORE);
    static const struct {
        const char *text;
        int status;
    } bad[] = {
        {"0x3a\r\n", 400},  {"+3a\r\n", 400},      {" 3a\r\n", 400},
        {"\r\n", 400},      {"3\r\nabcX\r\n", 400}, {"3\nabc\r\n", 400},
        {"1234567890abcdef0\r\n", 400},              {"3\r\nabc\r\n0\r\nBad Trailer\r\n\r\n", 400},
        {"3;\x01\r\n", 400}, {"3e9\r\n", 413},     {"3zz\r\n", 400},
        {"3 \r\nabc\r\n", 400}, {"3 ;x\r\nabc\r\n", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h1_result_t r = chunked(bad[i].text, &wire, NULL, &blen, &err);
        if (r != H1_ERROR || err.status != bad[i].status)
            fail_msg("chunked case %zu: %d / %d", i, r, err.status);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),    cmocka_unit_test(test_valid),
        cmocka_unit_test(test_incremental), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
