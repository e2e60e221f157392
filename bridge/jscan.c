/* jscan.c: one-pass JSON scanner into a tape, and json-c's bytes written back from it. */
#include "jscan.h"

#include <stdlib.h>
#include <string.h>

#define JSCAN_INT_DIGITS 18   /* below json-c's int64/uint64 clamping */
#define JSCAN_DOUBLE_LEN 32
#define JSCAN_EXP_DIGITS 2

typedef struct scan {
    jscan_t *j;
    const unsigned char *s;
    size_t len, i;
    int max_level; /* deepest json-c level taken (the top-level object is level 1) */
} scan_t;

/* A string's bytes: which ones the scan stops at. */
enum { STR_PLAIN = 0, STR_STOP, STR_CTRL, STR_HIGH };
static const unsigned char str_class[256] = {
    [0 ... 0x1f] = STR_CTRL, ['"'] = STR_STOP, ['\\'] = STR_STOP, [0x80 ... 0xff] = STR_HIGH,
};

static inline int is_ws(unsigned char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static inline void skip_ws(scan_t *p) {
    while (p->i < p->len && is_ws(p->s[p->i]))
        p->i++;
}

/* Appends a token; returns its index, or -1 when out of memory. */
static long push(scan_t *p, jscan_type_t type, size_t off) {
    jscan_t *j = p->j;
    if (j->n == j->cap) {
        size_t ncap = j->cap * 2;
        jscan_tok_t *t;
        if (j->tok == j->local) {
            if ((t = malloc(ncap * sizeof *t)) != NULL)
                memcpy(t, j->local, j->n * sizeof *t);
        } else {
            t = realloc(j->tok, ncap * sizeof *t);
        }
        if (!t)
            return -1;
        j->tok = t;
        j->cap = ncap;
    }
    jscan_tok_t *t = &j->tok[j->n];
    t->off = (uint32_t)off;
    t->len = 0;
    t->next = 0;
    t->hash = 0;
    t->type = (uint8_t)type;
    t->escaped = 0;
    return (long)j->n++;
}

static int hex4(const unsigned char *s, unsigned *v) {
    unsigned r = 0;
    for (int k = 0; k < 4; k++) {
        unsigned char c = s[k];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        r = r << 4 | d;
    }
    *v = r;
    return 1;
}

size_t jscan_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    size_t more;
    if (c >= 0xc2 && c <= 0xdf) {
        more = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        more = 2;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below U+0800 */
        if (c == 0xed)
            hi = 0x9f; /* surrogates U+D800..U+DFFF */
    } else if (c >= 0xf0 && c <= 0xf4) {
        more = 3;
        if (c == 0xf0)
            lo = 0x90; /* overlong below U+10000 */
        if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, C0/C1 overlong lead, or F5..FF */
    }
    if (n - 1 < more || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k <= more; k++)
        if ((s[k] & 0xc0) != 0x80)
            return 0;
    return more + 1;
}


/* The string whose opening quote is at p->i; key: refuse any escape. Returns 0 or -1. */
static int scan_string(scan_t *p, int key) {
    size_t start = ++p->i;
    int escaped = 0;
    const unsigned char *s = p->s;
    for (;;) {
        for (; p->i + 8 <= p->len; p->i += 8) {
            uint64_t v; /* memcpy: an unaligned load */
            memcpy(&v, s + p->i, 8);
            if (jscan_swar_string_stop(v))
                break;
        }
        while (p->i < p->len && str_class[s[p->i]] == STR_PLAIN)
            p->i++;
        if (p->i >= p->len || str_class[s[p->i]] == STR_CTRL)
            return -1;
        if (str_class[s[p->i]] == STR_HIGH) {
            size_t n = jscan_utf8_len(s + p->i, p->len - p->i);
            if (n == 0)
                return -1;
            p->i += n;
            continue;
        }
        if (s[p->i] == '"')
            break;
        if (key)
            return -1;
        escaped = 1;
        if (p->i + 1 >= p->len)
            return -1;
        switch (s[p->i + 1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p->i += 2;
            break;
        case 'u': {
            unsigned v;
            if (p->len - p->i < 6 || !hex4(s + p->i + 2, &v) || v == 0 ||
                (v >= 0xd800 && v <= 0xdfff))
                return -1;
            p->i += 6;
            break;
        }
        default: return -1;
        }
    }
    long t = push(p, JSCAN_STRING, start);
    if (t < 0)
        return -1;
    p->j->tok[t].len = (uint32_t)(p->i - start);
    p->j->tok[t].escaped = (uint8_t)escaped;
    if (key)
        p->j->tok[t].hash = jscan_key_hash(p->j->src + start, p->i - start);
    p->j->tok[t].next = (uint32_t)p->j->n;
    p->i++; /* the closing quote */
    return 0;
}

static int scan_number(scan_t *p) {
    const unsigned char *s = p->s;
    size_t start = p->i, i = p->i, digits = 0;
    int is_double = 0;
    if (i < p->len && s[i] == '-')
        i++;
    if (i < p->len && s[i] == '0') {
        i++;
        digits = 1;
    } else if (i < p->len && s[i] >= '1' && s[i] <= '9') {
        while (i < p->len && is_digit(s[i]))
            i++, digits++;
    } else {
        return -1;
    }
    if (i < p->len && s[i] == '.') {
        is_double = 1;
        if (++i >= p->len || !is_digit(s[i]))
            return -1;
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        is_double = 1;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < p->len && is_digit(s[i]))
            i++, e++;
        if (e == 0 || e > JSCAN_EXP_DIGITS)
            return -1;
    }
    if (is_double ? i - start > JSCAN_DOUBLE_LEN : digits > JSCAN_INT_DIGITS)
        return -1;
    long t = push(p, is_double ? JSCAN_DOUBLE : JSCAN_INT, start);
    if (t < 0)
        return -1;
    p->j->tok[t].len = (uint32_t)(i - start);
    p->j->tok[t].next = (uint32_t)p->j->n;
    p->i = i;
    return 0;
}

static int scan_literal(scan_t *p, const char *word, size_t n, jscan_type_t type) {
    if (p->len - p->i < n || memcmp(p->s + p->i, word, n) != 0)
        return -1;
    long t = push(p, type, p->i);
    if (t < 0)
        return -1;
    p->j->tok[t].len = (uint32_t)n;
    p->j->tok[t].next = (uint32_t)p->j->n;
    p->i += n;
    return 0;
}

/* Whether the key at index k repeats one of the object's earlier keys (from index first). */
static int key_repeated(const jscan_t *j, size_t first, size_t k) {
    const jscan_tok_t *nk = &j->tok[k];
    const char *kb = j->src + nk->off;
    for (size_t m = first; m < k; m = j->tok[m + 1].next) {
        const jscan_tok_t *ok = &j->tok[m];
        if (ok->hash == nk->hash && ok->len == nk->len &&
            memcmp(j->src + ok->off, kb, nk->len) == 0)
            return 1;
    }
    return 0;
}

static int scan_value(scan_t *p, int level);

static int scan_container(scan_t *p, int level) {
    int is_object = p->s[p->i] == '{';
    unsigned char close = is_object ? '}' : ']';
    long t = push(p, is_object ? JSCAN_OBJECT : JSCAN_ARRAY, p->i);
    if (t < 0)
        return -1;
    size_t members = 0;
    /* A 256-bit Bloom filter of the keys so far: most keys are new, and the filter says so
     * without walking the earlier ones. */
    uint64_t seen[4] = {0, 0, 0, 0};
    p->i++;
    skip_ws(p);
    if (p->i < p->len && p->s[p->i] == close) {
        p->i++;
    } else {
        for (;;) {
            if (p->i >= p->len)
                return -1;
            if (is_object) {
                if (p->s[p->i] != '"' || ++members > JSCAN_MAX_MEMBERS)
                    return -1;
                size_t k = p->j->n;
                if (scan_string(p, 1) != 0)
                    return -1;
                uint32_t h = p->j->tok[k].hash;
                unsigned bit = (h ^ h >> 8 ^ h >> 16) & 255;
                if (seen[bit >> 6] >> (bit & 63) & 1) {
                    if (key_repeated(p->j, (size_t)t + 1, k))
                        return -1;
                } else {
                    seen[bit >> 6] |= (uint64_t)1 << (bit & 63);
                }
                skip_ws(p);
                if (p->i >= p->len || p->s[p->i] != ':')
                    return -1;
                p->i++;
                skip_ws(p);
            }
            if (scan_value(p, level + 1) != 0)
                return -1;
            skip_ws(p);
            if (p->i >= p->len)
                return -1;
            if (p->s[p->i] == ',') {
                p->i++;
                skip_ws(p);
                continue;
            }
            if (p->s[p->i] != close)
                return -1;
            p->i++;
            break;
        }
    }
    jscan_tok_t *tok = &p->j->tok[t];
    tok->len = (uint32_t)(p->i - tok->off);
    tok->next = (uint32_t)p->j->n;
    return 0;
}

static int scan_value(scan_t *p, int level) {
    if (level > p->max_level || p->i >= p->len)
        return -1;
    switch (p->s[p->i]) {
    case '{':
    case '[': return scan_container(p, level);
    case '"': return scan_string(p, 0);
    case 't': return scan_literal(p, "true", 4, JSCAN_TRUE);
    case 'f': return scan_literal(p, "false", 5, JSCAN_FALSE);
    case 'n': return scan_literal(p, "null", 4, JSCAN_NULL);
    default: return scan_number(p);
    }
}

int jscan_parse(jscan_t *j, const char *body, size_t len, int max_depth) {
    j->src = body;
    j->n = 0;
    if (!j->tok) {
        j->tok = j->local;
        j->cap = JSCAN_LOCAL_TOKENS;
    }
    if (len > UINT32_MAX)
        return 0;
    scan_t p = {.j = j, .s = (const unsigned char *)body, .len = len, .max_level = max_depth - 2};
    skip_ws(&p);
    if (p.i >= len || p.s[p.i] != '{' || scan_value(&p, 1) != 0)
        return 0;
    skip_ws(&p);
    return p.i == len;
}

void jscan_free(jscan_t *j) {
    if (j->tok && j->tok != j->local)
        free(j->tok);
    j->tok = NULL;
    j->n = j->cap = 0;
}

size_t jscan_member(const jscan_t *j, size_t obj, const char *key, size_t klen) {
    const jscan_tok_t *o = &j->tok[obj];
    if (o->type != JSCAN_OBJECT)
        return 0;
    uint32_t h = jscan_key_hash(key, klen);
    for (size_t k = obj + 1; k < o->next; k = j->tok[k + 1].next) {
        const jscan_tok_t *kt = &j->tok[k];
        if (kt->hash == h && kt->len == klen && memcmp(j->src + kt->off, key, klen) == 0)
            return k + 1;
    }
    return 0;
}

/* Appends the code point v (no surrogates, below U+10000) as UTF-8. */
static void put_utf8(buf_t *b, unsigned v) {
    char u[3];
    if (v < 0x80) {
        buf_putc(b, (char)v);
    } else if (v < 0x800) {
        u[0] = (char)(0xc0 | v >> 6);
        u[1] = (char)(0x80 | (v & 0x3f));
        buf_append(b, u, 2);
    } else {
        u[0] = (char)(0xe0 | v >> 12);
        u[1] = (char)(0x80 | (v >> 6 & 0x3f));
        u[2] = (char)(0x80 | (v & 0x3f));
        buf_append(b, u, 3);
    }
}

const char *jscan_str(const jscan_t *j, size_t i, buf_t *scratch, size_t *len) {
    const jscan_tok_t *t = &j->tok[i];
    const char *s = j->src + t->off;
    if (!t->escaped) {
        *len = t->len;
        return s;
    }
    size_t start = scratch->len, run = 0;
    if (buf_reserve(scratch, t->len) != HB_OK)
        return NULL;
    for (size_t k = 0; k < t->len; k++) {
        if (s[k] != '\\')
            continue;
        buf_append(scratch, s + run, k - run);
        char c = s[k + 1], d;
        k++;
        switch (c) {
        case 'b': d = '\b'; break;
        case 'f': d = '\f'; break;
        case 'n': d = '\n'; break;
        case 'r': d = '\r'; break;
        case 't': d = '\t'; break;
        case 'u': {
            unsigned v = 0;
            hex4((const unsigned char *)s + k + 1, &v); /* checked by the scan */
            put_utf8(scratch, v);
            k += 4;
            run = k + 1;
            continue;
        }
        default: d = c; break; /* " \ / */
        }
        buf_putc(scratch, d);
        run = k + 1;
    }
    buf_append(scratch, s + run, t->len - run);
    if (!buf_ok(scratch))
        return NULL;
    *len = scratch->len - start;
    return scratch->data + start;
}

void jscan_put_value(buf_t *b, const jscan_t *j, size_t i, buf_t *scratch) {
    const jscan_tok_t *t = &j->tok[i];
    const char *s = j->src + t->off;
    switch ((jscan_type_t)t->type) {
    case JSCAN_OBJECT:
    case JSCAN_ARRAY: {
        int is_object = t->type == JSCAN_OBJECT;
        buf_putc(b, is_object ? '{' : '[');
        for (size_t k = i + 1; k < t->next;) {
            if (k != i + 1)
                buf_putc(b, ',');
            if (is_object) {
                /* A key holds no escape (the subset), and no byte needing one. */
                const jscan_tok_t *kt = &j->tok[k];
                buf_putc(b, '"');
                buf_append(b, j->src + kt->off, kt->len);
                buf_append(b, "\":", 2);
                k++;
            }
            jscan_put_value(b, j, k, scratch);
            k = j->tok[k].next;
        }
        buf_putc(b, is_object ? '}' : ']');
        return;
    }
    case JSCAN_STRING:
        if (!t->escaped) {
            /* No quote, backslash or control character inside: json-c writes it as it is. */
            buf_putc(b, '"');
            buf_append(b, s, t->len);
            buf_putc(b, '"');
        } else {
            size_t n;
            buf_reset(scratch);
            const char *d = jscan_str(j, i, scratch, &n);
            if (!d) {
                b->oom = 1;
                return;
            }
            buf_json_str(b, d, n);
        }
        return;
    case JSCAN_INT:
        /* json-c keeps the int64, which has no negative zero. */
        if (t->len == 2 && s[0] == '-' && s[1] == '0')
            buf_putc(b, '0');
        else
            buf_append(b, s, t->len);
        return;
    case JSCAN_DOUBLE: /* json-c keeps a parsed double's text and writes that */
    case JSCAN_TRUE:
    case JSCAN_FALSE:
    case JSCAN_NULL: buf_append(b, s, t->len); return;
    }
}
