/* h1.c: the strict HTTP/1.1 request parser (see h1.h for what it refuses and why). */
#include "h1.h"

#include <stdio.h>
#include <string.h>

/* tchar (RFC 9110 5.6.2): what a method or a field name is made of. */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static h1_result_t fail(h1_error_t *err, int status, const char *code, const char *detail) {
    err->status = status;
    err->code = code;
    snprintf(err->detail, sizeof err->detail, "%s", detail);
    return H1_ERROR;
}

static h1_result_t bad(h1_error_t *err, const char *detail) {
    return fail(err, 400, "bad_request", detail);
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

int h1_str_ieq(h1_str_t a, const char *b) {
    size_t i = 0;
    for (; i < a.n; i++)
        if (!b[i] || lower((unsigned char)a.p[i]) != lower((unsigned char)b[i]))
            return 0;
    return b[i] == '\0';
}

const h1_field_t *h1_find(const h1_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nfields; i++)
        if (h1_str_ieq(req->fields[i].name, name))
            return &req->fields[i];
    return NULL;
}

/* Finds the CRLF that ends the line starting at from: *eol is the CR's index. H1_MORE when
 * the line is not complete yet; H1_ERROR for a CR not followed by LF or an LF not preceded by
 * CR. Other bytes are the caller's to check. */
static h1_result_t line_end(const char *p, size_t n, size_t from, size_t *eol, h1_error_t *err) {
    const char *cr = memchr(p + from, '\r', n - from);
    const char *lf = memchr(p + from, '\n', (cr ? (size_t)(cr - p) : n) - from);
    if (lf)
        return bad(err, "a line ends with a bare LF (lines end with CRLF)");
    if (!cr)
        return H1_MORE;
    size_t i = (size_t)(cr - p);
    if (i + 1 == n)
        return H1_MORE;
    if (p[i + 1] != '\n')
        return bad(err, "a bare CR (not followed by LF)");
    *eol = i;
    return H1_DONE;
}

static h1_method_t method_of(const char *m, size_t n) {
    static const struct {
        const char *name;
        h1_method_t m;
    } known[] = {{"GET", H1_GET},         {"HEAD", H1_HEAD},     {"POST", H1_POST},
                 {"PUT", H1_PUT},         {"DELETE", H1_DELETE}, {"OPTIONS", H1_OPTIONS},
                 {"PATCH", H1_PATCH},     {"TRACE", H1_TRACE},   {"CONNECT", H1_CONNECT}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == n && memcmp(known[i].name, m, n) == 0)
            return known[i].m; /* methods are case-sensitive (RFC 9110 9.1) */
    return H1_OTHER;
}

static h1_result_t parse_request_line(const char *p, size_t start, size_t eol, h1_request_t *req,
                                      h1_error_t *err) {
    size_t i = start;
    while (i < eol && tchar[(unsigned char)p[i]])
        i++;
    if (i == start)
        return bad(err, "the request line does not start with a method");
    if (i == eol || p[i] != ' ')
        return bad(err, "the method is not followed by exactly one space");
    req->method_str = (h1_str_t){p + start, i - start};
    req->method = method_of(p + start, i - start);
    size_t t = ++i;
    while (i < eol && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f)
        i++;
    if (i == t)
        return bad(err, "the request line has no target (or more than one space before it)");
    if (i == eol || p[i] != ' ')
        return bad(err, "the request target holds a byte outside visible ASCII, or no version "
                        "follows it");
    req->target = (h1_str_t){p + t, i - t};
    i++;
    if (eol - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' || p[i + 5] > '9' ||
        p[i + 6] != '.' || p[i + 7] < '0' || p[i + 7] > '9')
        return bad(err, "the request line does not end with HTTP/1.1 or HTTP/1.0");
    if (p[i + 5] != '1' || (p[i + 7] != '0' && p[i + 7] != '1'))
        return fail(err, 505, "version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served");
    req->minor = p[i + 7] - '0';
    return H1_DONE;
}

/* One header (or trailer) field line p[start..eol): name, colon, value. */
static h1_result_t parse_field(const char *p, size_t start, size_t eol, h1_field_t *f,
                               h1_error_t *err) {
    size_t i = start;
    if (p[i] == ' ' || p[i] == '\t')
        return bad(err, "a field line starts with whitespace (obs-fold is not accepted)");
    while (i < eol && tchar[(unsigned char)p[i]])
        i++;
    if (i < eol && (p[i] == ' ' || p[i] == '\t'))
        return bad(err, "whitespace between a field name and its colon");
    if (i == eol || p[i] != ':')
        return bad(err, "a field line without a colon, or a field name that is not a token");
    if (i == start)
        return bad(err, "a field with an empty name");
    f->name = (h1_str_t){p + start, i - start};
    i++;
    while (i < eol && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t v = i, end = i;
    for (; i < eol; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return bad(err, "a control character in a field value");
        if (c != ' ' && c != '\t')
            end = i + 1;
    }
    f->value = (h1_str_t){p + v, end - v};
    return H1_DONE;
}

/* Connection: a comma-separated list of options; close and keep-alive matter here. */
static void read_connection(h1_str_t v, int *close, int *keep) {
    size_t i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t s = i;
        while (i < v.n && v.p[i] != ',' && v.p[i] != ' ' && v.p[i] != '\t')
            i++;
        h1_str_t t = {v.p + s, i - s};
        if (h1_str_ieq(t, "close"))
            *close = 1;
        else if (h1_str_ieq(t, "keep-alive"))
            *keep = 1;
    }
}

h1_result_t h1_parse_head(const char *p, size_t n, const h1_limits_t *lim, h1_request_t *req,
                          h1_error_t *err) {
    size_t i = 0, eol;
    h1_result_t r;
    req->nfields = req->fields_seen = 0;
    req->too_many_fields = 0;
    req->framing = H1_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = req->expect_continue = 0;
    req->head_len = 0;
    /* Leading empty lines (RFC 9112 2.2: a server SHOULD ignore at least one). */
    while (i + 1 < n && p[i] == '\r' && p[i + 1] == '\n')
        i += 2;
    if (i < n && p[i] == '\n')
        return bad(err, "a line ends with a bare LF (lines end with CRLF)");
    if ((r = line_end(p, n, i, &eol, err)) != H1_DONE)
        goto more_or_error;
    if (eol + 2 > lim->max_head)
        goto too_large;
    if ((r = parse_request_line(p, i, eol, req, err)) != H1_DONE)
        return r;
    i = eol + 2;
    int hosts = 0, lengths = 0, codings = 0, close = 0, keep = 0;
    int length_huge = 0, chunked = 0;
    uint64_t length = 0;
    for (;;) {
        if ((r = line_end(p, n, i, &eol, err)) != H1_DONE)
            goto more_or_error;
        if (eol + 2 > lim->max_head)
            goto too_large;
        if (eol == i)
            break; /* the empty line */
        h1_field_t f;
        if ((r = parse_field(p, i, eol, &f, err)) != H1_DONE)
            return r;
        i = eol + 2;
        req->fields_seen++;
        if (req->nfields < req->fields_cap)
            req->fields[req->nfields++] = f;
        if (h1_str_ieq(f.name, "Content-Length")) {
            if (++lengths > 1)
                return bad(err, "more than one Content-Length field");
            if (f.value.n == 0)
                return bad(err, "an empty Content-Length");
            for (size_t k = 0; k < f.value.n; k++) {
                char c = f.value.p[k];
                if (c < '0' || c > '9')
                    return bad(err, "Content-Length is not a decimal number");
                if (length > (UINT64_MAX - 9) / 10)
                    length_huge = 1;
                else
                    length = length * 10 + (uint64_t)(c - '0');
            }
        } else if (h1_str_ieq(f.name, "Transfer-Encoding")) {
            if (++codings > 1)
                return bad(err, "more than one Transfer-Encoding field");
            if (!h1_str_ieq(f.value, "chunked"))
                return bad(err, "Transfer-Encoding other than chunked");
            chunked = 1;
        } else if (h1_str_ieq(f.name, "Host")) {
            if (++hosts > 1)
                return bad(err, "more than one Host field");
        } else if (h1_str_ieq(f.name, "Connection")) {
            read_connection(f.value, &close, &keep);
        } else if (h1_str_ieq(f.name, "Expect") && req->minor == 1) {
            /* RFC 9110 10.1.1: 100-continue is the only expectation; a server MAY answer 417
             * to any other, and does here: what the client waits for would never come. An
             * HTTP/1.0 client's Expect is ignored (RFC 9110 10.1.1). */
            if (!h1_str_ieq(f.value, "100-continue"))
                return fail(err, 417, "expectation_failed", "an Expect other than 100-continue");
            req->expect_continue = 1;
        }
    }
    req->head_len = eol + 2;
    if (chunked && lengths)
        return bad(err, "both Content-Length and Transfer-Encoding");
    if (chunked && req->minor == 0)
        return bad(err, "Transfer-Encoding in an HTTP/1.0 request");
    if (req->minor == 1 && !hosts)
        return bad(err, "an HTTP/1.1 request without Host");
    if (lengths && (length_huge || length > lim->max_body)) {
        if (length_huge)
            return fail(err, 413, "body_too_large", "Content-Length is beyond any limit");
        err->status = 413;
        err->code = "body_too_large";
        snprintf(err->detail, sizeof err->detail, "body is %llu bytes, the limit is %llu",
                 (unsigned long long)length, (unsigned long long)lim->max_body);
        return H1_ERROR;
    }
    req->framing = chunked ? H1_BODY_CHUNKED : lengths ? H1_BODY_LENGTH : H1_BODY_NONE;
    req->content_length = length;
    req->keep_alive = !close && (req->minor == 1 || keep);
    req->too_many_fields = req->fields_seen > lim->max_fields;
    return H1_DONE;
more_or_error:
    if (r == H1_ERROR)
        return r;
    if (n >= lim->max_head)
        goto too_large;
    return H1_MORE;
too_large:
    err->status = 431;
    err->code = "headers_too_large";
    snprintf(err->detail, sizeof err->detail,
             "the request line and header fields exceed %zu bytes", lim->max_head);
    return H1_ERROR;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long h1_pct_decode(const char *s, size_t n, int plus, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0)
                return -1;
            c = (char)(hex_digit(s[i + 1]) << 4 | hex_digit(s[i + 2]));
            i += 2;
        } else if (plus && c == '+') {
            c = ' ';
        }
        if (o >= cap)
            return -1;
        out[o++] = c;
    }
    return (long)o;
}

h1_result_t h1_parse_chunked(const char *p, size_t n, uint64_t max_body, size_t max_wire,
                             size_t *wire_len, size_t *body_len, char *out, h1_error_t *err) {
    size_t i = 0, eol, o = 0;
    uint64_t total = 0;
    h1_result_t r;
    for (;;) {
        if ((r = line_end(p, n, i, &eol, err)) != H1_DONE)
            goto more_or_error;
        size_t k = i;
        uint64_t size = 0;
        while (k < eol && hex_digit(p[k]) >= 0) {
            if (k - i >= 15)
                return bad(err, "a chunk size longer than 15 hex digits");
            size = size * 16 + (uint64_t)hex_digit(p[k]);
            k++;
        }
        if (k == i)
            return bad(err, "a chunk size that is not a hex number");
        /* Then the line's end, or chunk extensions after a ';' (ignored, but no control
         * characters). No whitespace around the size: proxies disagree on what it means. */
        if (k < eol && p[k] != ';')
            return bad(err, "a chunk size that is not a hex number");
        for (; k < eol; k++) {
            unsigned char c = (unsigned char)p[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return bad(err, "a control character in a chunk extension");
        }
        i = eol + 2;
        if (size > max_body || total + size > max_body) {
            err->status = 413;
            err->code = "body_too_large";
            snprintf(err->detail, sizeof err->detail,
                     "chunked body exceeds the limit of %llu bytes", (unsigned long long)max_body);
            return H1_ERROR;
        }
        if (size == 0)
            break;
        if (n - i < size + 2) {
            r = H1_MORE;
            goto more_or_error;
        }
        if (p[i + size] != '\r' || p[i + size + 1] != '\n')
            return bad(err, "a chunk is not followed by CRLF");
        if (out)
            memcpy(out + o, p + i, (size_t)size);
        o += (size_t)size;
        total += size;
        i += (size_t)size + 2;
        if (i > max_wire)
            goto too_large;
    }
    /* The trailer section: fields, then the empty line. */
    for (;;) {
        if ((r = line_end(p, n, i, &eol, err)) != H1_DONE)
            goto more_or_error;
        if (eol == i)
            break;
        h1_field_t f;
        if ((r = parse_field(p, i, eol, &f, err)) != H1_DONE)
            return r;
        i = eol + 2;
        if (i > max_wire)
            goto too_large;
    }
    *wire_len = eol + 2;
    *body_len = o;
    return H1_DONE;
more_or_error:
    if (r == H1_ERROR)
        return r;
    if (n > max_wire)
        goto too_large;
    return H1_MORE;
too_large:
    return fail(err, 413, "body_too_large", "the chunked encoding of the body is too large");
}
