/* h1.h: a strict HTTP/1.1 request parser (RFC 9112): the request line, the header section and
 * the body's framing (Content-Length or chunked). Pure: bytes in, a verdict out; no I/O, no
 * allocation, no clock, so a fuzzer and a differential test can drive it directly.
 *
 * Incremental by re-scanning: call h1_parse_head (or h1_parse_chunked) with everything received
 * so far; H1_MORE asks for more bytes, and the next call starts again from the first byte. The
 * head is bounded by lim->max_head and a chunked body by its limits, so a re-scan costs at most
 * that much, and the parser keeps no state between calls that could go stale.
 *
 * Refused (H1_ERROR, status 400 "bad_request" unless said otherwise; the connection must be
 * closed after the answer, since where the next request starts is unknown):
 *   - a request line that is not exactly METHOD SP TARGET SP HTTP/1.x CRLF: several spaces,
 *     tabs, a target with bytes outside 0x21..0x7e, a lowercase or malformed version; a version
 *     other than 1.0 and 1.1 (HTTP/2.0, HTTP/1.2): 505 "version_not_supported";
 *   - a bare CR or a bare LF anywhere in the head (every line ends with CRLF);
 *   - obs-fold (a line starting with SP or HTAB), whitespace between a field name and its
 *     colon, an empty or non-token field name, a control character (other than HTAB) or DEL in
 *     a field value;
 *   - Content-Length that is not 1*DIGIT ("+58", "-5", "12abc", "", "5, 5"), several
 *     Content-Length fields (even with equal values), Content-Length with Transfer-Encoding;
 *   - Transfer-Encoding other than exactly one field whose value is "chunked" (any case):
 *     "gzip, chunked", "chunked, chunked", two fields, or any Transfer-Encoding in HTTP/1.0
 *     (RFC 9112 6.1 says such a message is faulty);
 *   - HTTP/1.1 without Host, or several Host fields;
 *   - a head past lim->max_head bytes: 431 "headers_too_large";
 *   - a declared or decoded body past lim->max_body: 413 "body_too_large";
 *   - a chunk size that is not 1*HEXDIG ("0x3a", "+3a", " 3a", "3a ", empty), longer than 15
 *     digits (leading zeros included),
 *     a chunk not followed by CRLF, a malformed chunk extension or trailer field.
 * Leading empty lines before the request line are skipped (RFC 9112 2.2 allows it).
 * More than lim->max_fields header fields is not a framing error: the head is parsed whole
 * (so the body can be skipped and the connection kept) and req->too_many_fields is set.
 *
 * @locality any thread; pure.
 */
#ifndef HB_H1_H
#define HB_H1_H

#include <stddef.h>
#include <stdint.h>

typedef enum h1_result { H1_ERROR = -1, H1_MORE = 0, H1_DONE = 1 } h1_result_t;

typedef enum h1_method {
    H1_GET,
    H1_HEAD,
    H1_POST,
    H1_PUT,
    H1_DELETE,
    H1_OPTIONS,
    H1_PATCH,
    H1_TRACE,
    H1_CONNECT,
    H1_OTHER /* any other token */
} h1_method_t;

typedef enum h1_framing {
    H1_BODY_NONE,    /* no Content-Length, no Transfer-Encoding: no body */
    H1_BODY_LENGTH,  /* Content-Length */
    H1_BODY_CHUNKED  /* Transfer-Encoding: chunked */
} h1_framing_t;

/* A slice of the caller's buffer (not NUL-terminated). */
typedef struct h1_str {
    const char *p;
    size_t n;
} h1_str_t;

typedef struct h1_field {
    h1_str_t name;  /* as sent (compare case-insensitively) */
    h1_str_t value; /* without leading and trailing SP/HTAB */
} h1_field_t;

typedef struct h1_limits {
    size_t max_head;   /* request line + fields + the empty line */
    size_t max_fields; /* more: too_many_fields (431 by the caller), not a framing error */
    uint64_t max_body; /* declared Content-Length or decoded chunked size */
} h1_limits_t;

typedef struct h1_error {
    int status;       /* 400, 413, 417, 431 or 505 */
    const char *code; /* "bad_request", "body_too_large", "expectation_failed",
                         "headers_too_large", "version_not_supported" */
    char detail[128]; /* what was wrong, in words; never echoes request bytes */
} h1_error_t;

/* One parsed head. Slices point into the buffer given to h1_parse_head. fields/fields_cap is
 * the caller's storage (no allocation here); fields beyond it are checked and counted but not
 * stored. */
typedef struct h1_request {
    h1_field_t *fields;
    size_t fields_cap;
    size_t nfields;         /* fields stored (<= fields_cap) */
    size_t fields_seen;     /* fields in the head */
    int too_many_fields;    /* fields_seen > lim->max_fields */
    h1_method_t method;
    h1_str_t method_str;
    h1_str_t target;        /* the request-target as sent */
    int minor;              /* 0 or 1: HTTP/1.0 or HTTP/1.1 */
    size_t head_len;        /* bytes up to and including the empty line (leading CRLFs too) */
    h1_framing_t framing;
    uint64_t content_length; /* H1_BODY_LENGTH */
    int keep_alive;         /* by version and the Connection field */
    int expect_continue;    /* Expect: 100-continue (HTTP/1.1; any other Expect is a 417) */
} h1_request_t;

/* Parses the head at p[0..n). H1_DONE fills *req; H1_MORE: no error yet, the head is not
 * complete; H1_ERROR fills *err. req->fields/fields_cap are read, everything else written. */
h1_result_t h1_parse_head(const char *p, size_t n, const h1_limits_t *lim, h1_request_t *req,
                          h1_error_t *err);

/* Scans a chunked body at p[0..n) (the bytes after the head). H1_DONE: *wire_len bytes make up
 * the body, chunks, last chunk and trailer section; *body_len is the decoded size. If out is not
 * NULL, the decoded bytes are copied there (it must hold *body_len bytes: call once without
 * out to learn the size, then again with it). Trailer fields are checked like header fields and
 * dropped. max_wire bounds the encoded size (extensions, tiny chunks): past it 413. */
h1_result_t h1_parse_chunked(const char *p, size_t n, uint64_t max_body, size_t max_wire,
                             size_t *wire_len, size_t *body_len, char *out, h1_error_t *err);

/* Percent-decodes s[0..n) into out (cap bytes), '+' as a space when plus (a query). The decoded
 * length (NUL bytes included: callers compare lengths, not C strings), or -1 for a malformed
 * escape or a result longer than cap. */
long h1_pct_decode(const char *s, size_t n, int plus, char *out, size_t cap);

/* The first field named name (case-insensitive), or NULL. */
const h1_field_t *h1_find(const h1_request_t *req, const char *name);

/* 1 when a and the NUL-terminated b are equal ignoring ASCII case. */
int h1_str_ieq(h1_str_t a, const char *b);

#endif
