/* fuzz_h1: the HTTP/1.1 parser (h1.c) on arbitrary bytes. Beyond "no crash, no overread"
 * (ASan), it checks what the server relies on:
 *   - a head parsed whole (H1_DONE, head_len H) parses the same from its first H bytes, and
 *     every shorter prefix asks for more (H1_MORE): the re-scan on each read never refuses or
 *     accepts a request differently depending on how its bytes were cut;
 *   - every stored field lies inside the head, names are non-empty, values have no CR or LF;
 *   - a chunked body's decoded size stays within the limit and its wire length within what
 *     was given, and decoding into a buffer gives the same sizes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

static const h1_limits_t LIM = {.max_head = 2048, .max_fields = 16, .max_body = 4096};

static h1_result_t parse(const char *p, size_t n, h1_request_t *r, h1_field_t *f,
                         h1_error_t *e) {
    memset(r, 0, sizeof *r);
    r->fields = f;
    r->fields_cap = 20;
    return h1_parse_head(p, n, &LIM, r, e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = (const char *)data;
    h1_field_t f[20], g[20];
    h1_request_t r, r2;
    h1_error_t e;
    h1_result_t res = parse(p, size, &r, f, &e);
    if (res == H1_ERROR) {
        if (!e.code || !e.detail[0] || (e.status != 400 && e.status != 413 && e.status != 417 &&
                                        e.status != 431 && e.status != 505))
            abort();
        return 0;
    }
    if (res == H1_MORE)
        return 0;
    size_t h = r.head_len;
    if (h > size || h > LIM.max_head || r.nfields > 20 || r.nfields > r.fields_seen)
        abort();
    for (size_t i = 0; i < r.nfields; i++) {
        const h1_field_t *x = &f[i];
        if (x->name.n == 0 || x->name.p < p || x->value.p + x->value.n > p + h ||
            memchr(x->value.p, '\r', x->value.n) || memchr(x->value.p, '\n', x->value.n))
            abort();
    }
    if (parse(p, h, &r2, g, &e) != H1_DONE || r2.head_len != h || r2.framing != r.framing ||
        r2.content_length != r.content_length)
        abort();
    size_t cuts[3] = {h / 2, h > 0 ? h - 1 : 0, h / 3};
    for (int i = 0; i < 3; i++)
        if (cuts[i] < h && parse(p, cuts[i], &r2, g, &e) != H1_MORE)
            abort();
    if (r.framing == H1_BODY_CHUNKED) {
        size_t wire = 0, blen = 0;
        res = h1_parse_chunked(p + h, size - h, LIM.max_body, 3 * LIM.max_body, &wire, &blen,
                               NULL, &e);
        if (res == H1_DONE) {
            if (wire > size - h || blen > LIM.max_body)
                abort();
            char *out = malloc(blen + 1);
            size_t wire2 = 0, blen2 = 0;
            if (!out ||
                h1_parse_chunked(p + h, size - h, LIM.max_body, 3 * LIM.max_body, &wire2,
                                 &blen2, out, &e) != H1_DONE ||
                wire2 != wire || blen2 != blen)
                abort();
            free(out);
        }
    }
    return 0;
}
