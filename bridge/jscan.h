/* jscan.h: the normaliser's fast path, a one-pass JSON scanner into a flat tape and a writer
 * that gives back json-c's bytes for it.
 *
 * jscan takes only a subset of JSON, one on which its verdict and its output are known to be
 * json-c's (as the normaliser drives json-c: strict mode, written back with
 * JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE). For anything outside the subset it
 * says "not mine" and the caller asks json-c; it never refuses a body on its own. The subset:
 *   - the top-level value is an object, with only space, tab, CR and LF around tokens;
 *   - no key is repeated within an object, and no key holds a backslash (so equal keys are
 *     equal bytes); at most JSCAN_MAX_MEMBERS members an object;
 *   - string escapes are \" \\ \/ \b \f \n \r \t and \uXXXX other than \u0000 and surrogates;
 *   - numbers follow RFC 8259, an integer has at most 18 digits, a number with a fraction or
 *     an exponent at most 32 characters and an exponent of at most 2 digits;
 *   - nesting stays 2 levels below max_depth (json-c counts scalars as a level);
 *   - no more than UINT32_MAX bytes.
 *   - strings are well-formed UTF-8 (jscan_utf8_len) without raw control characters;
 * so a NUL byte, a single quote or a byte above 0x7f outside a string is not in it either.
 *
 * Tape: one token per value and per key, in source order. An object's token is followed by its
 * members, each a key token (JSCAN_STRING) and the value's tokens; `next` skips a value with
 * everything inside it. Pure: no I/O, no globals.
 */
#ifndef HB_JSCAN_H
#define HB_JSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum jscan_type {
    JSCAN_OBJECT,
    JSCAN_ARRAY,
    JSCAN_STRING,
    JSCAN_INT,
    JSCAN_DOUBLE,
    JSCAN_TRUE,
    JSCAN_FALSE,
    JSCAN_NULL
} jscan_type_t;

typedef struct jscan_tok {
    uint32_t off, len; /* the source text: a string's without its quotes, a number's digits */
    uint32_t next;     /* index of the first token after this value */
    uint32_t hash;     /* a key's jscan_key_hash() (0 for other tokens) */
    uint8_t type;      /* jscan_type_t */
    uint8_t escaped;   /* a string with at least one backslash escape */
} jscan_tok_t;

#define JSCAN_LOCAL_TOKENS 256
#define JSCAN_MAX_MEMBERS 128 /* most members of an object (the repeated-key check is quadratic) */

/* A tape. Zero-initialise; jscan_free() releases what a large body made it allocate. */
typedef struct jscan {
    const char *src;          /* the body (borrowed) */
    jscan_tok_t *tok;         /* local, or the heap once there are more tokens */
    size_t n, cap;
    jscan_tok_t local[JSCAN_LOCAL_TOKENS];
} jscan_t;

/* Scans body into j. Returns 1 when the body is in the subset (token 0 is the top-level
 * object), 0 when json-c must decide (outside the subset, invalid, or out of memory). */
int jscan_parse(jscan_t *j, const char *body, size_t len, int max_depth);
void jscan_free(jscan_t *j);

/* Length of the well-formed UTF-8 sequence that starts at s (s[0] >= 0x80, n bytes left), or
 * 0. json-c's own check only counts continuation bytes, so it lets overlong forms, surrogates
 * and code points above U+10FFFF through to the topic; this follows RFC 3629 (Unicode table
 * 3-7) instead. The normaliser's pre-parse scan uses it too. */
size_t jscan_utf8_len(const unsigned char *s, size_t n);

/* Eight bytes at a time (SWAR): jscan_swar_below(v, n) is nonzero exactly when some byte of v
 * is below n (n <= 0x80; a borrow can only mark bytes above a true one, which does not change
 * "any"); jscan_swar_string_stop(v) when some byte is one a string scan must look at: a quote,
 * a backslash, a control character or a byte above 0x7f. */
#define JSCAN_B8(x) (0x0101010101010101ULL * (uint64_t)(x))
static inline uint64_t jscan_swar_below(uint64_t v, unsigned n) {
    return (v - JSCAN_B8(n)) & ~v & JSCAN_B8(0x80);
}
static inline uint64_t jscan_swar_eq(uint64_t v, unsigned char c) {
    return jscan_swar_below(v ^ JSCAN_B8(c), 1);
}
static inline uint64_t jscan_swar_string_stop(uint64_t v) {
    return jscan_swar_below(v, 0x20) | jscan_swar_eq(v, '"') | jscan_swar_eq(v, '\\') |
           (v & JSCAN_B8(0x80));
}

/* A cheap hash of a key's bytes (a few of them and the length), to rule out most unequal keys
 * before comparing bytes. */
static inline uint32_t jscan_key_hash(const char *key, size_t n) {
    if (n == 0)
        return 0x9e3779b9u;
    const unsigned char *k = (const unsigned char *)key;
    return ((uint32_t)n * 0x9e3779b9u) ^ k[0] ^ (uint32_t)k[n - 1] << 8 ^ (uint32_t)k[n / 2] << 16;
}

/* Index of the value of member `key` (klen bytes) of the object at index obj, or 0 (token 0 is
 * never a member's value). */
size_t jscan_member(const jscan_t *j, size_t obj, const char *key, size_t klen);

/* The decoded bytes of the string at index i: into the source when it has no escapes, else
 * decoded into *scratch (appended; a later append may move it, so use it before the next
 * call). Sets *len. NULL when scratch ran out of memory. */
const char *jscan_str(const jscan_t *j, size_t i, buf_t *scratch, size_t *len);

/* Writes the value at index i as json-c writes the tree it would have parsed from it.
 * scratch: for decoding strings with escapes. */
void jscan_put_value(buf_t *b, const jscan_t *j, size_t i, buf_t *scratch);

#endif
