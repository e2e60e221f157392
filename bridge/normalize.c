/* normalize.c: turns one Cloud 66 webhook body into a CloudEvents 1.0 Kafka record. */
#include "normalize.h"

#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "echo.h"
#include "hbtime.h"
#include "jscan.h"

#define NORM_DEFAULT_DEPTH 64
#define NORM_DEFAULT_SOURCE "/cloud66"
#define ECHO_MAX 64 /* longest client string repeated in an error message */

/* The stack model's 33 fields (Cloud 66 documents them from `uid` to `redeploy_hook`). In a
 * flattened payload these move under data.stack. Sorted by strcmp() for stack_field()'s binary
 * search: keep it sorted. `specific`: only a stack carries it; generic names (name, status,
 * created_at, version...) are not, a server or container payload has those too. */
typedef struct stack_field {
    const char *name;
    size_t len;
    unsigned char specific;
} stack_field_t;
#define SF(name, specific) {name, sizeof name - 1, specific}
static const stack_field_t stack_fields[] = {
    SF("account_id", 0), SF("account_name", 0), SF("application_address", 1),
    SF("backend", 1), SF("cloud", 1), SF("cloud_status", 1),
    SF("cluster_name", 1), SF("configstore_namespace", 1), SF("considerations", 1),
    SF("created_at", 0), SF("deploy_directory", 1), SF("environment", 1),
    SF("fqdn", 1), SF("framework", 1), SF("git", 1),
    SF("git_branch", 1), SF("has_loadbalancer", 1), SF("health", 0),
    SF("is_busy", 1), SF("is_cluster", 1), SF("is_inside_cluster", 1),
    SF("language", 1), SF("last_activity", 1), SF("last_activity_iso", 1),
    SF("maintenance_mode", 1), SF("name", 0), SF("namespaces", 1),
    SF("redeploy_hook", 1), SF("revision", 1), SF("status", 0),
    SF("uid", 0), SF("updated_at", 0), SF("version", 0),
};
#undef SF

#define COUNT(a) (sizeof(a) / sizeof *(a))

/* What the envelope needs from the payload; pointers point into the parsed tree. */
typedef struct norm_event {
    const char *event_type;
    size_t event_type_len;
    const char *subject; /* NULL: absent */
    size_t subject_len;
    int names_stack; /* subject is a stack uid: source gets "/stacks/<uid>" */
} norm_event_t;

static void set_err(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errlen, const char *fmt, ...) {
    if (!errstr || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errlen, fmt, ap);
    va_end(ap);
}

static const char *json_kind(json_object *o) {
    switch (json_object_get_type(o)) {
    case json_type_null: return "null";
    case json_type_boolean: return "boolean";
    case json_type_int:
    case json_type_double: return "number";
    case json_type_string: return "string";
    case json_type_array: return "array";
    case json_type_object: return "object";
    }
    return "unknown";
}

/* The stack field named key[0..n) (a key is cut at a NUL, as json-c's C string keys are), or
 * NULL. Each key of a flat payload is looked up once: a binary search, not 33 strcmp()s. */
static const stack_field_t *stack_field(const char *key, size_t n) {
    size_t lo = 0, hi = COUNT(stack_fields);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *name = stack_fields[mid].name;
        size_t nl = stack_fields[mid].len; /* strcmp()'s order: bytes, then the shorter first */
        /* A byte loop: the names are short, and this runs for every top-level key. */
        int c = 0;
        for (size_t k = 0, m = n < nl ? n : nl; k < m && c == 0; k++)
            c = (unsigned char)key[k] - (unsigned char)name[k];
        if (c == 0)
            c = n < nl ? -1 : n > nl;
        if (c == 0)
            return &stack_fields[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number_ok(const char *s) {
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            s++;
    else
        return 0;
    if (*s == '.') {
        s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

/* json-c 0.16 reads an integer beyond the int64/uint64 range as the nearest bound (strtoll and
 * strtoull clamp; later json-c releases refuse it in strict mode) and keeps no text for
 * integers, so 123456789012345678901234567890 would reach the topic as 18446744073709551615.
 * A node at a bound is where that may have happened; the digits walk (digits_walk_t) then puts
 * its source text back. */
static int at_clamp_bound(json_object *o) {
    return json_object_get_int64(o) == INT64_MIN || json_object_get_uint64(o) == UINT64_MAX;
}

/* One walk over the parsed numbers. json-c's strict mode still accepts NaN, Infinity and "1.",
 * and writes them back as parsed, which would put invalid JSON on the topic; doubles keep their
 * source text, so checking that text against the JSON grammar finds them: the first such
 * double is returned (the body is refused). *clamped is set when an integer sits at a bound
 * json-c clamps to. Recursion is bounded by the parser's max depth. */
static json_object *check_numbers(json_object *o, int *clamped) {
    switch (json_object_get_type(o)) {
    case json_type_int:
        if (at_clamp_bound(o))
            *clamped = 1;
        return NULL;
    case json_type_double: {
        /* The source text is the double's userdata (what json-c writes back). */
        const char *text = json_object_get_userdata(o);
        if (!text)
            text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        return json_number_ok(text) ? NULL : o;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++) {
            json_object *bad = check_numbers(json_object_array_get_idx(o, i), clamped);
            if (bad)
                return bad;
        }
        return NULL;
    case json_type_object: {
        json_object_object_foreach(o, key, val) {
            (void)key;
            json_object *bad = check_numbers(val, clamped);
            if (bad)
                return bad;
        }
        return NULL;
    }
    default: return NULL;
    }
}

/* Member `key` of object o when it is a string (length in *len, NULs included), else NULL. */
static const char *get_str(json_object *o, const char *key, size_t *len) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    *len = (size_t)json_object_get_string_len(v);
    return json_object_get_string(v);
}

static int is_json_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* What scan_body() looks at: 0 for a byte it passes over. A byte's class depends on whether it
 * is inside a string or not, hence two tables. */
enum { SC_PLAIN = 0, SC_NUL, SC_CTRL, SC_HIGH, SC_DQUOTE, SC_BSLASH, SC_SQUOTE };
#define SC_HIGH_BYTES [0x80 ... 0xff] = SC_HIGH
static const unsigned char sc_in_string[256] = {
    [0] = SC_NUL, [0x01 ... 0x1f] = SC_CTRL, ['"'] = SC_DQUOTE, ['\\'] = SC_BSLASH, SC_HIGH_BYTES,
};
static const unsigned char sc_outside[256] = {
    [0] = SC_NUL, ['"'] = SC_DQUOTE, ['\''] = SC_SQUOTE, SC_HIGH_BYTES,
};
#undef SC_HIGH_BYTES

typedef struct body_scan {
    int fault;      /* SC_PLAIN: none; SC_NUL, SC_CTRL, SC_HIGH (bad UTF-8) or SC_SQUOTE at off */
    size_t off;
    size_t nul_key; /* offset of a \u0000 escape in a string that a ':' follows, else SIZE_MAX */
} body_scan_t;

/* Eight bytes at a time (SWAR, jscan.h's helpers), whether any byte of v is one scan_body()
 * must look at: it then finds which with its tables. */
static inline uint64_t look_in_string(uint64_t v) { return jscan_swar_string_stop(v); }
static inline uint64_t look_outside(uint64_t v) {
    return jscan_swar_below(v, 1) | jscan_swar_eq(v, '"') | jscan_swar_eq(v, '\'') |
           (v & JSCAN_B8(0x80));
}

/* One pass over the body for what json-c lets through or gets wrong, before it parses:
 *   - a NUL byte: json-c stops there as if the body ended, which would drop the rest;
 *   - UTF-8 that is not well-formed (see jscan_utf8_len);
 *   - a control character left raw in a string, and a single quote outside one (json-c's strict
 *     mode takes "a<TAB>b" and {'k':1}; RFC 8259 takes neither);
 *   - \u0000 in a key: json-c keys are C strings, cut at the NUL, so {"k\u0000x":1,"k":2} would
 *     lose a member and "event_type\u0000x" would act as event_type. Only noted (nul_key): a
 *     string is known to be a key only once the body is known to be JSON.
 * The first fault stops the scan; json-c validates the grammar. This is the hot path: runs of
 * plain bytes are skipped eight at a time, which keeps this one pass close to the memchr() for
 * NUL plus UTF-8 loop it replaced on short-string payloads, and faster on long strings. */
static void scan_body(const unsigned char *s, size_t len, body_scan_t *r) {
    const unsigned char *cls = sc_outside;
    size_t i = 0, nul_esc = SIZE_MAX; /* the first \u0000 in the current string */
    r->fault = SC_PLAIN;
    r->nul_key = SIZE_MAX;
    for (;;) {
        uint64_t v; /* memcpy: an unaligned load */
        if (cls == sc_outside) {
            for (; i + 8 <= len; i += 8) {
                memcpy(&v, s + i, 8);
                if (look_outside(v))
                    break;
            }
        } else {
            for (; i + 8 <= len; i += 8) {
                memcpy(&v, s + i, 8);
                if (look_in_string(v))
                    break;
            }
        }
        while (i < len && cls[s[i]] == SC_PLAIN)
            i++;
        if (i == len)
            return;
        switch (cls[s[i]]) {
        case SC_HIGH: {
            size_t n = jscan_utf8_len(s + i, len - i);
            if (n == 0)
                goto fault;
            i += n;
            break;
        }
        case SC_DQUOTE:
            if (cls == sc_outside) {
                cls = sc_in_string;
                nul_esc = SIZE_MAX;
            } else {
                cls = sc_outside;
                if (nul_esc != SIZE_MAX && r->nul_key == SIZE_MAX) {
                    size_t j = i + 1;
                    while (j < len && is_json_ws((char)s[j]))
                        j++;
                    if (j < len && s[j] == ':')
                        r->nul_key = nul_esc;
                }
            }
            i++;
            break;
        case SC_BSLASH:
            if (nul_esc == SIZE_MAX && len - i > 5 && memcmp(s + i + 1, "u0000", 5) == 0)
                nul_esc = i;
            /* The escaped byte is passed over unless it is one to look at (json-c refuses such
             * an escape anyway, but its UTF-8 or control character is reported first). */
            i += i + 1 < len && s[i + 1] >= 0x20 && s[i + 1] < 0x80 ? 2 : 1;
            break;
        default: goto fault; /* SC_NUL, SC_CTRL, SC_SQUOTE */
        }
    }
fault:
    r->fault = cls[s[i]];
    r->off = i;
}

/* ---- integers json-c clamped: the digits back from the body -----------------------------------
 * Rare (only when an integer sits at a clamp bound), so this walks the body a second time, in
 * step with the tree json-c made of it, and gives each integer at a bound its source text as a
 * serializer (as json_object_new_double_s does for a double); put_value() writes that text.
 * Repeated keys: json-c keeps one node per key, holding the last value, and the walk visits
 * that node once per occurrence (where the shapes agree). The last occurrence comes last in
 * the body, so the text it sets is the one left. The body is valid JSON here (json-c took it),
 * which keeps the walk simple; its recursion is bounded by the parser's max depth. */
typedef struct digits_walk {
    const char *s;
    size_t len, i;
    json_tokener *tok; /* decodes keys exactly as json-c did */
} digits_walk_t;

static void walk_ws(digits_walk_t *w) {
    while (w->i < w->len && is_json_ws(w->s[w->i]))
        w->i++;
}

/* Moves past the string whose opening quote is at w->i. */
static void walk_string(digits_walk_t *w) {
    for (w->i++; w->i < w->len && w->s[w->i] != '"'; w->i++)
        if (w->s[w->i] == '\\')
            w->i++;
    if (w->i < w->len)
        w->i++;
}

/* Reads the key at w->i and finds its member in o (NULL when o is not an object or has none). */
static hb_status_t walk_key(digits_walk_t *w, json_object *o, json_object **member) {
    size_t start = w->i;
    *member = NULL;
    walk_string(w);
    if (!json_object_is_type(o, json_type_object))
        return HB_OK;
    json_tokener_reset(w->tok);
    json_object *key = json_tokener_parse_ex(w->tok, w->s + start, (int)(w->i - start));
    if (!key)
        return HB_ERR_NOMEM; /* json-c took this key once already: only memory can fail */
    json_object_object_get_ex(o, json_object_get_string(key), member);
    json_object_put(key);
    return HB_OK;
}

/* Walks the value at w->i; o is the node json-c made of it, or NULL (a type or length that
 * differs: the value of an earlier occurrence of a repeated key). */
static hb_status_t walk_value(digits_walk_t *w, json_object *o) {
    hb_status_t st = HB_OK;
    walk_ws(w);
    if (w->i >= w->len)
        return HB_OK;
    char c = w->s[w->i];
    if (c == '"') {
        walk_string(w);
    } else if (c == '{' || c == '[') {
        int is_object = c == '{';
        size_t idx = 0;
        for (w->i++; st == HB_OK; idx++) {
            walk_ws(w);
            if (w->i < w->len && w->s[w->i] == ',') {
                w->i++;
                walk_ws(w);
            }
            if (w->i >= w->len)
                break;
            if (w->s[w->i] == '}' || w->s[w->i] == ']') {
                w->i++;
                break;
            }
            json_object *child = NULL;
            if (is_object) {
                if ((st = walk_key(w, o, &child)) != HB_OK)
                    break;
                walk_ws(w);
                w->i++; /* the ':' */
            } else if (json_object_is_type(o, json_type_array) &&
                       idx < json_object_array_length(o)) {
                child = json_object_array_get_idx(o, idx);
            }
            st = walk_value(w, child);
        }
    } else {
        size_t start = w->i;
        while (w->i < w->len && !strchr(",]} \t\r\n", w->s[w->i]))
            w->i++;
        if (o && json_object_is_type(o, json_type_int) && at_clamp_bound(o)) {
            char *text = strndup(w->s + start, w->i - start);
            if (!text)
                return HB_ERR_NOMEM;
            json_object_set_serializer(o, json_object_userdata_to_json_string, text,
                                       json_object_free_userdata);
        }
    }
    return st;
}

/* Parses the body into *root, which is an object on HB_OK. */
static hb_status_t parse_body(const char *body, size_t len, int max_depth, json_object **root,
                              char *errstr, size_t errlen) {
    hb_status_t st = HB_ERR_JSON;
    json_tokener *tok = NULL;
    json_object *obj = NULL;
    body_scan_t scan;
    int clamped = 0;

    *root = NULL;
    scan_body((const unsigned char *)body, len, &scan);
    switch (scan.fault) {
    case SC_NUL:
        set_err(errstr, errlen, "body contains a NUL byte at offset %zu", scan.off);
        return HB_ERR_INVALID;
    case SC_HIGH:
        set_err(errstr, errlen, "body is not valid UTF-8 at offset %zu", scan.off);
        return HB_ERR_INVALID;
    case SC_CTRL:
        set_err(errstr, errlen,
                "body is not valid JSON: control character U+%04X unescaped in a string at "
                "offset %zu",
                (unsigned)(unsigned char)body[scan.off], scan.off);
        return HB_ERR_JSON;
    case SC_SQUOTE:
        set_err(errstr, errlen,
                "body is not valid JSON: single quote at offset %zu (JSON strings take double "
                "quotes)",
                scan.off);
        return HB_ERR_JSON;
    }
    if (len > INT_MAX) {
        set_err(errstr, errlen, "body is too large to parse (%zu bytes)", len);
        return HB_ERR_INVALID;
    }
    size_t ws = 0;
    while (ws < len && is_json_ws(body[ws]))
        ws++;
    if (ws == len) {
        set_err(errstr, errlen, "body is empty: expected a JSON object");
        return HB_ERR_JSON;
    }

    /* json-c's depth counts values, scalars included: the top-level object is depth 1, so
     * {"a":{"b":1}} has depth 3. */
    tok = json_tokener_new_ex(max_depth);
    if (!tok) {
        set_err(errstr, errlen, "out of memory parsing body");
        return HB_ERR_NOMEM;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* A bare number can only end at the end of input, and a truncated document is only known
         * to be truncated there: feeding the terminator settles both. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    }
    if (jerr == json_tokener_error_parse_utf8_string) {
        set_err(errstr, errlen, "body is not valid UTF-8 at offset %zu", end);
        st = HB_ERR_INVALID;
        goto done;
    }
    if (jerr == json_tokener_error_depth) {
        set_err(errstr, errlen, "body is JSON nested deeper than %d levels", max_depth);
        goto done;
    }
    if (jerr != json_tokener_success) {
        set_err(errstr, errlen, "body is not valid JSON: %s at offset %zu",
                json_tokener_error_desc(jerr), end);
        goto done;
    }
    /* Strict mode already refuses trailing characters; this keeps that guarantee should a json-c
     * release relax it. */
    for (size_t i = end; i < len; i++) {
        if (!is_json_ws(body[i])) {
            set_err(errstr, errlen, "body is not valid JSON: trailing data at offset %zu", i);
            goto done;
        }
    }
    if (scan.nul_key != SIZE_MAX) {
        set_err(errstr, errlen,
                "body has an object key with \\u0000 at offset %zu (a key cannot hold a NUL "
                "character)",
                scan.nul_key);
        st = HB_ERR_INVALID;
        goto done;
    }
    json_object *bad = check_numbers(obj, &clamped);
    if (bad) {
        char shown[ECHO_MAX + 4];
        const char *text = json_object_to_json_string_ext(bad, JSON_C_TO_STRING_PLAIN);
        echo_text(text, strlen(text), ECHO_MAX, shown, sizeof shown);
        set_err(errstr, errlen, "body is not valid JSON: %s is not a JSON number", shown);
        goto done;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        set_err(errstr, errlen, "body is JSON but not an object (got %s)", json_kind(obj));
        st = HB_ERR_NOT_OBJECT;
        goto done;
    }
    if (clamped) {
        digits_walk_t w = {.s = body, .len = len, .tok = tok};
        if (walk_value(&w, obj) != HB_OK) {
            set_err(errstr, errlen, "out of memory parsing body");
            st = HB_ERR_NOMEM;
            goto done;
        }
    }
    *root = obj;
    obj = NULL;
    st = HB_OK;
done:
    json_object_put(obj);
    json_tokener_free(tok);
    return st;
}

/* Flat detection. Most Cloud 66 payloads spread the stack's fields over the top level; a few
 * nest them under "stack". The top level is taken as a flattened stack when it has
 *   - no `stack` member (a nested stack is already where it belongs),
 *   - a string `uid`, and
 *   - at least 2 of the stack_fields that are `specific`.
 * The last condition keeps other families apart: a future `server.*` payload has a top-level
 * `uid` (the server's) and generic fields like name or status, but not a git branch or fqdn. */
static int is_flat_stack(json_object *root) {
    size_t n;
    if (json_object_object_get_ex(root, "stack", NULL) || !get_str(root, "uid", &n))
        return 0;
    size_t hits = 0;
    for (size_t i = 0; i < COUNT(stack_fields); i++)
        if (stack_fields[i].specific && json_object_object_get_ex(root, stack_fields[i].name, NULL))
            hits++;
    return hits >= 2;
}

/* The data rules, decided on the parsed payload without building a second tree; write_data()
 * applies them while it writes:
 *   DATA_FLAT       the stack fields go, in payload order, into a `stack` object placed where
 *                   the first of them was; every other member stays where it was;
 *   DATA_STACK_UID  a `stack` that is only a uid string is written as {"uid": "..."} in place;
 *   DATA_AS_IS      the payload as it is. */
typedef enum data_shape { DATA_AS_IS, DATA_FLAT, DATA_STACK_UID } data_shape_t;

static data_shape_t data_shape(json_object *root) {
    json_object *stack;
    if (is_flat_stack(root))
        return DATA_FLAT;
    if (json_object_object_get_ex(root, "stack", &stack) &&
        json_object_is_type(stack, json_type_string))
        return DATA_STACK_UID;
    return DATA_AS_IS;
}

/* Finds the subject of the reshaped data: the stack's uid when data.stack is an object with a
 * string uid, else the top-level string uid, else none. A flat stack's uid is the top-level uid
 * (is_flat_stack demands a string); a uid-string stack is its own uid. */
static void find_subject(json_object *root, data_shape_t shape, norm_event_t *ev) {
    json_object *stack;
    if (shape == DATA_FLAT) {
        ev->subject = get_str(root, "uid", &ev->subject_len);
        ev->names_stack = 1;
        return;
    }
    if (json_object_object_get_ex(root, "stack", &stack)) {
        if (shape == DATA_STACK_UID) {
            ev->subject = json_object_get_string(stack);
            ev->subject_len = (size_t)json_object_get_string_len(stack);
            ev->names_stack = 1;
            return;
        }
        if (json_object_is_type(stack, json_type_object) &&
            (ev->subject = get_str(stack, "uid", &ev->subject_len)) != NULL) {
            ev->names_stack = 1;
            return;
        }
    }
    ev->subject = get_str(root, "uid", &ev->subject_len);
}

static void put_value(buf_t *b, json_object *o);

/* Decimal digits without printf (which showed in the profile: payloads are full of numbers). */
static void put_uint(buf_t *b, int neg, uint64_t v) {
    char tmp[21];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (neg)
        tmp[--i] = '-';
    buf_append(b, tmp + i, sizeof tmp - i);
}

/* "key":value, json-c style: a key is written up to its first NUL, as json-c does. */
static void put_kv(buf_t *b, const char *key, json_object *val) {
    buf_json_str(b, key, strlen(key));
    buf_putc(b, ':');
    put_value(b, val);
}

/* One value as json-c writes it with JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
 * straight into b (no printbuf per object, no copy afterwards). Recursion is bounded by the
 * parser's max depth. */
static void put_value(buf_t *b, json_object *o) {
    switch (json_object_get_type(o)) {
    case json_type_null: buf_append(b, "null", 4); return;
    case json_type_boolean:
        if (json_object_get_boolean(o))
            buf_append(b, "true", 4);
        else
            buf_append(b, "false", 5);
        return;
    case json_type_int: {
        /* Digits json-c clamped, given back by the digits walk (see digits_walk_t). */
        const char *text = json_object_get_userdata(o);
        if (text) {
            buf_puts(b, text);
            return;
        }
        /* json-c keeps integers above INT64_MAX as uint64; get_int64 would clamp them. */
        int64_t v = json_object_get_int64(o);
        put_uint(b, v < 0, v >= 0 ? json_object_get_uint64(o) : (uint64_t)0 - (uint64_t)v);
        return;
    }
    case json_type_double: {
        /* A parsed double keeps its source text as userdata, and json-c writes that text. */
        const char *text = json_object_get_userdata(o);
        if (!text)
            text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        buf_puts(b, text);
        return;
    }
    case json_type_string:
        buf_json_str(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        return;
    case json_type_array: {
        size_t n = json_object_array_length(o);
        buf_putc(b, '[');
        for (size_t i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            put_value(b, json_object_array_get_idx(o, i));
        }
        buf_putc(b, ']');
        return;
    }
    case json_type_object: {
        int first = 1;
        buf_putc(b, '{');
        json_object_object_foreach(o, key, val) {
            if (!first)
                buf_putc(b, ',');
            first = 0;
            put_kv(b, key, val);
        }
        buf_putc(b, '}');
        return;
    }
    }
}


/* Seconds that hbtime can format as years 0000-9999; the bound also keeps "* 1000" in range. */
#define TS_MAX_SECS 253402300799LL

/* The checks of a `timestamp`, one per JSON type (payload_time_secs and fast_time_secs). */
static int secs_from_int(int64_t v, int64_t *secs) {
    if (v < -TS_MAX_SECS || v > TS_MAX_SECS)
        return 0;
    *secs = v;
    return 1;
}

static int secs_from_double(double d, int64_t *secs) {
    if (!isfinite(d) || d <= -(double)TS_MAX_SECS - 1 || d >= (double)TS_MAX_SECS + 1)
        return 0;
    *secs = (int64_t)d; /* truncation: the integer part */
    return 1;
}

/* s[0..n) is NUL-terminated at n (a NUL inside fails the digits check). */
static int secs_from_digits(const char *s, size_t n, int64_t *secs) {
    if (n == 0 || n > 12 || strspn(s, "0123456789") != n)
        return 0;
    long long v = strtoll(s, NULL, 10);
    if (v > TS_MAX_SECS)
        return 0;
    *secs = (int64_t)v;
    return 1;
}

/* Reads `timestamp` as Unix seconds: an integer, a number with a fraction (the integer part is
 * taken) or a string of digits. Returns 0 when there is none fit to use. */
static int payload_time_secs(json_object *data, int64_t *secs) {
    json_object *ts;
    if (!json_object_object_get_ex(data, "timestamp", &ts))
        return 0;
    switch (json_object_get_type(ts)) {
    case json_type_int:
        /* A uint64 above INT64_MAX reads back as INT64_MAX, which the range check refuses. */
        return secs_from_int(json_object_get_int64(ts), secs);
    case json_type_double: return secs_from_double(json_object_get_double(ts), secs);
    case json_type_string:
        return secs_from_digits(json_object_get_string(ts),
                                (size_t)json_object_get_string_len(ts), secs);
    default: return 0;
    }
}

/* Formats the event time: the payload's timestamp (when have_secs), else the receive time,
 * both to the second. */
static size_t event_time(int have_secs, int64_t secs, int64_t now_ms, char *out, size_t outlen) {
    if (have_secs) {
        size_t n = hbtime_rfc3339(secs * 1000, 0, out, outlen);
        if (n)
            return n;
    }
    return hbtime_rfc3339(now_ms, 0, out, outlen);
}

/* The uid comes from the client and the source is a URI-reference, so every byte outside RFC
 * 3986's unreserved set is percent-encoded; Cloud 66 uids ("stack-550e...") pass unchanged. */
static void put_source(buf_t *b, const char *prefix, const norm_event_t *ev) {
    static const char hex[] = "0123456789ABCDEF";
    buf_puts(b, prefix);
    if (!ev->names_stack)
        return;
    buf_puts(b, "/stacks/");
    for (size_t i = 0; i < ev->subject_len; i++) {
        unsigned char c = (unsigned char)ev->subject[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            buf_putc(b, (char)c);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            buf_append(b, e, sizeof e);
        }
    }
}

/* ,"name":"value"; name is a constant that needs no escaping (PUT_MEMBER passes its length). */
static void put_member(buf_t *b, const char *name, size_t name_len, const char *val, size_t n) {
    buf_append(b, ",\"", 2);
    buf_append(b, name, name_len);
    buf_append(b, "\":", 2);
    buf_json_str(b, val, n);
}
#define PUT_MEMBER(b, name, val, n) put_member(b, name, sizeof name - 1, val, n)

/* SHA-256 as OpenSSL fetched it once for the process. SHA256() fetches the algorithm by name
 * on every call (a lock, a hash-table lookup), which cost as much as hashing a 1.5 KiB body.
 * The fetched method is immutable and shared, and kept for the life of the process. */
/* The digest, fetched once, and a context per thread, made on its first event and freed when
 * the thread ends: EVP_Digest would make and free a context (two allocations) per event. */
static EVP_MD *sha256_md;
static pthread_key_t sha256_key;
static int sha256_key_ok;
static void sha256_ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }
static void sha256_fetch(void) {
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256_key_ok = pthread_key_create(&sha256_key, sha256_ctx_free) == 0;
}

/* This thread's context; NULL when there is none to be had (out of memory). */
static EVP_MD_CTX *sha256_ctx(void) {
    if (!sha256_md || !sha256_key_ok)
        return NULL;
    EVP_MD_CTX *ctx = pthread_getspecific(sha256_key);
    if (!ctx && (ctx = EVP_MD_CTX_new()) && pthread_setspecific(sha256_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

static void sha256_hex(const char *body, size_t len, char out[MSG_ID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    unsigned char md[SHA256_DIGEST_LENGTH];
    pthread_once(&once, sha256_fetch);
    EVP_MD_CTX *ctx = sha256_ctx();
    if (!ctx || !EVP_DigestInit_ex(ctx, sha256_md, NULL) || !EVP_DigestUpdate(ctx, body, len) ||
        !EVP_DigestFinal_ex(ctx, md, NULL))
        SHA256((const unsigned char *)body, len, md);
    for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[MSG_ID_LEN] = '\0';
}

/* Reads event_type: present, a string, no NUL inside (json-c's C string would cut it short). */
static hb_status_t read_event_type(json_object *root, norm_event_t *ev, char *errstr,
                                   size_t errlen) {
    json_object *et;
    if (!json_object_object_get_ex(root, "event_type", &et)) {
        set_err(errstr, errlen, "missing string field event_type");
        return HB_ERR_NO_TYPE;
    }
    if (!json_object_is_type(et, json_type_string)) {
        set_err(errstr, errlen, "field event_type must be a string (got %s)", json_kind(et));
        return HB_ERR_NO_TYPE;
    }
    ev->event_type = json_object_get_string(et);
    ev->event_type_len = (size_t)json_object_get_string_len(et);
    if (strlen(ev->event_type) != ev->event_type_len) {
        set_err(errstr, errlen, "field event_type contains a NUL character");
        return HB_ERR_NO_TYPE;
    }
    return HB_OK;
}

/* The parsed payload the record is written from: json-c's tree or jscan's tape. */
typedef struct norm_doc {
    json_object *root;   /* json-c's path */
    const jscan_t *tape; /* the fast path (root NULL) */
    data_shape_t shape;
} norm_doc_t;

static void write_data(buf_t *b, const norm_doc_t *doc);

/* The payload's top-level members in order, from either parse: a cursor write_data() copies to
 * look ahead. */
typedef struct member {
    const norm_doc_t *doc;
    struct lh_entry *e; /* json-c's path */
    size_t k, end;      /* the fast path: the key's token, the object's end */
} member_t;

static void member_first(const norm_doc_t *d, member_t *m) {
    *m = (member_t){.doc = d};
    if (d->tape) {
        m->k = 1;
        m->end = d->tape->tok[0].next;
    } else {
        m->e = lh_table_head(json_object_get_object(d->root));
    }
}

static int member_end(const member_t *m) { return m->doc->tape ? m->k >= m->end : !m->e; }

static void member_next(member_t *m) {
    if (m->doc->tape)
        m->k = m->doc->tape->tok[m->k + 1].next;
    else
        m->e = lh_entry_next(m->e);
}

/* The key, as json-c holds it: a C string cut at its first NUL; the tape's holds no escape. */
static const char *member_key(const member_t *m, size_t *len) {
    if (m->doc->tape) {
        *len = m->doc->tape->tok[m->k].len;
        return m->doc->tape->src + m->doc->tape->tok[m->k].off;
    }
    const char *k = (const char *)lh_entry_k(m->e);
    *len = strlen(k);
    return k;
}

static void member_put_value(buf_t *b, const member_t *m, buf_t *scratch) {
    if (m->doc->tape)
        jscan_put_value(b, m->doc->tape, m->k + 1, scratch);
    else
        put_value(b, (json_object *)lh_entry_v(m->e));
}

/* "key":value, json-c style. A tape's key needs no escaping (no quote, backslash or control
 * character: jscan's subset), so its bytes are copied as they are. */
static void member_put(buf_t *b, const member_t *m, buf_t *scratch) {
    size_t n;
    const char *key = member_key(m, &n);
    if (m->doc->tape) {
        buf_putc(b, '"');
        buf_append(b, key, n);
        buf_append(b, "\":", 2);
    } else {
        buf_json_str(b, key, n);
        buf_putc(b, ':');
    }
    member_put_value(b, m, scratch);
}

static int member_is_stack_field(const member_t *m) {
    size_t n;
    const char *key = member_key(m, &n);
    return stack_field(key, n) != NULL;
}

/* Writes the payload with the data rules of its shape applied (see data_shape_t). */
static void write_data(buf_t *b, const norm_doc_t *doc) {
    /* A flat payload's keys are each looked up once: is_field[i] for the i-th member (the
     * members past FLAT_KEYS_MAX, if any, are looked up as they come). */
    enum { FLAT_KEYS_MAX = 128 };
    unsigned char is_field[FLAT_KEYS_MAX];
    buf_t scratch = {0}; /* the fast path's strings with escapes, decoded */
    member_t m, f;
    size_t n = 0;
    if (doc->shape == DATA_FLAT)
        for (member_first(doc, &m); !member_end(&m) && n < FLAT_KEYS_MAX; member_next(&m))
            is_field[n++] = (unsigned char)member_is_stack_field(&m);
#define IS_FIELD(i, mp) ((i) < n ? is_field[i] : member_is_stack_field(mp))
    int first = 1, stack_done = 0;
    size_t i = 0;
    buf_putc(b, '{');
    for (member_first(doc, &m); !member_end(&m); member_next(&m), i++) {
        int field = doc->shape == DATA_FLAT && IS_FIELD(i, &m);
        if (field && stack_done)
            continue; /* already written inside data.stack */
        if (!first)
            buf_putc(b, ',');
        first = 0;
        size_t klen;
        const char *key = member_key(&m, &klen);
        if (field) {
            /* This member and every later stack field, in payload order. */
            int sfirst = 1;
            size_t j = i;
            stack_done = 1;
            buf_append(b, "\"stack\":{", 9);
            for (f = m; !member_end(&f); member_next(&f), j++) {
                if (!IS_FIELD(j, &f))
                    continue;
                if (!sfirst)
                    buf_putc(b, ',');
                sfirst = 0;
                member_put(b, &f, &scratch);
            }
            buf_putc(b, '}');
        } else if (doc->shape == DATA_STACK_UID && klen == 5 && memcmp(key, "stack", 5) == 0) {
            buf_append(b, "\"stack\":{\"uid\":", 15);
            member_put_value(b, &m, &scratch);
            buf_putc(b, '}');
        } else {
            member_put(b, &m, &scratch);
        }
    }
#undef IS_FIELD
    buf_putc(b, '}');
    if (!buf_ok(&scratch))
        b->oom = 1;
    buf_free(&scratch);
}

/* What both paths share once the payload is read and routed: the id, the envelope and the
 * record. On HB_NOMEM out is left for the caller to free. */
static hb_status_t put_record(const norm_opts_t *opts, const char *body, size_t len,
                              int64_t now_ms, const norm_event_t *ev, const char *family,
                              size_t family_len, const char *topic, size_t topic_len,
                              const char *time_s, size_t time_len, const char *recv_s,
                              size_t recv_len, const norm_doc_t *doc, msg_t *out) {
    static const char ct_structured[] = "application/cloudevents+json; charset=UTF-8";
    static const char ct_json[] = "application/json";
    static const char type_prefix[] = "com.cloud66.";
    const char *prefix = opts->source && opts->source[0] ? opts->source : NORM_DEFAULT_SOURCE;
    hb_status_t st = HB_ERR_NOMEM;
    buf_t env = {0};   /* the record value: the envelope, or in binary mode the data JSON */
    buf_t attrs = {0}; /* the source, then the type: one allocation */
    int rc = 0;

    sha256_hex(body, len, out->id);
    put_source(&attrs, prefix, ev);
    size_t source_len = attrs.len;
    buf_append(&attrs, type_prefix, sizeof type_prefix - 1);
    buf_append(&attrs, ev->event_type, ev->event_type_len);
    if (!buf_ok(&attrs))
        goto done;
    const char *source = attrs.data, *type = attrs.data + source_len;
    size_t type_len = attrs.len - source_len;

    /* One allocation in the common case: the record is about the body's size plus the
     * envelope's attributes. */
    buf_reserve(&env, len + 1024);
    if (opts->mode != NORM_BINARY) {
        buf_append(&env, "{\"specversion\":\"1.0\"", 20);
        PUT_MEMBER(&env, "id", out->id, MSG_ID_LEN);
        PUT_MEMBER(&env, "source", source, source_len);
        PUT_MEMBER(&env, "type", type, type_len);
        if (ev->subject)
            PUT_MEMBER(&env, "subject", ev->subject, ev->subject_len);
        PUT_MEMBER(&env, "time", time_s, time_len);
        PUT_MEMBER(&env, "datacontenttype", ct_json, sizeof ct_json - 1);
        PUT_MEMBER(&env, "family", family, family_len);
        PUT_MEMBER(&env, "receivedat", recv_s, recv_len);
        buf_append(&env, ",\"data\":", 8);
    }
    write_data(&env, doc);
    if (opts->mode != NORM_BINARY)
        buf_putc(&env, '}');
    if (!buf_ok(&env))
        goto done;

    out->topic = malloc(topic_len + 1);
    if (!out->topic)
        goto done;
    memcpy(out->topic, topic, topic_len + 1);
    if (ev->subject) {
        out->key = malloc(ev->subject_len + 1);
        if (!out->key)
            goto done;
        memcpy(out->key, ev->subject, ev->subject_len);
        out->key[ev->subject_len] = '\0';
        out->key_len = ev->subject_len;
    }
    if (opts->mode == NORM_BINARY) {
        rc |= msg_add_header(out, "ce_specversion", "1.0", 3);
        rc |= msg_add_header(out, "ce_id", out->id, MSG_ID_LEN);
        rc |= msg_add_header(out, "ce_source", source, source_len);
        rc |= msg_add_header(out, "ce_type", type, type_len);
        if (ev->subject)
            rc |= msg_add_header(out, "ce_subject", ev->subject, ev->subject_len);
        rc |= msg_add_header(out, "ce_time", time_s, time_len);
        rc |= msg_add_header(out, "ce_family", family, family_len);
        rc |= msg_add_header(out, "ce_receivedat", recv_s, recv_len);
        rc |= msg_add_header(out, "content-type", ct_json, sizeof ct_json - 1);
    } else {
        rc |= msg_add_header(out, "content-type", ct_structured, sizeof ct_structured - 1);
    }
    if (rc != 0)
        goto done;
    out->value = buf_steal(&env, &out->value_len);
    out->accept_ms = now_ms;
    st = HB_OK;
done:
    buf_free(&env);
    buf_free(&attrs);
    return st;
}

/* json-c's path: every body the fast path does not take, and every refusal. */
static hb_status_t build_jsonc(const norm_opts_t *opts, const route_t *router, const char *body,
                               size_t len, int64_t now_ms, msg_t *out, char *errstr,
                               size_t errlen) {
    hb_status_t st;
    json_object *data = NULL;
    norm_event_t ev = {0};
    norm_doc_t doc = {0};
    char family[ROUTE_NAME_MAX], topic[ROUTE_NAME_MAX], shown[ECHO_MAX + 4];
    char time_s[HBTIME_RFC3339_LEN], recv_s[HBTIME_RFC3339_LEN];
    int max_depth = opts->max_depth > 0 ? opts->max_depth : NORM_DEFAULT_DEPTH;
    size_t family_len, topic_len, time_len, recv_len;
    int64_t secs = 0;

    st = parse_body(body, len, max_depth, &data, errstr, errlen);
    if (st != HB_OK)
        goto done;
    st = read_event_type(data, &ev, errstr, errlen);
    if (st != HB_OK)
        goto done;
    if (!(family_len = route_family(router, ev.event_type, family, sizeof family))) {
        echo_text(ev.event_type, ev.event_type_len, ECHO_MAX, shown, sizeof shown);
        set_err(errstr, errlen,
                "event_type \"%s\" yields no family (its first segment must be 1 to %d "
                "characters of A-Z a-z 0-9 _ -)",
                shown, ROUTE_NAME_MAX - 1);
        st = HB_ERR_NO_TYPE;
        goto done;
    }
    if (!(topic_len = route_topic(router, family, topic, sizeof topic))) {
        echo_text(ev.event_type, ev.event_type_len, ECHO_MAX, shown, sizeof shown);
        set_err(errstr, errlen, "event_type \"%s\" yields family \"%s\" with no valid topic name",
                shown, family);
        st = HB_ERR_NO_TYPE;
        goto done;
    }
    doc.root = data;
    doc.shape = data_shape(data);
    find_subject(data, doc.shape, &ev);
    int have_secs = payload_time_secs(data, &secs);
    if (!(time_len = event_time(have_secs, secs, now_ms, time_s, sizeof time_s)) ||
        !(recv_len = hbtime_rfc3339(now_ms, 1, recv_s, sizeof recv_s))) {
        set_err(errstr, errlen, "receive time %lld ms is out of range", (long long)now_ms);
        st = HB_ERR_INVALID;
        goto done;
    }
    st = put_record(opts, body, len, now_ms, &ev, family, family_len, topic, topic_len, time_s,
                    time_len, recv_s, recv_len, &doc, out);
    if (st != HB_OK)
        set_err(errstr, errlen, "out of memory building the event");
done:
    json_object_put(data);
    return st;
}

/* ---- the fast path: jscan's tape instead of json-c's tree -------------------------------------
 * Takes a body only when its record is known to be json-c's path's, byte for byte: the body is
 * in jscan's subset and would be accepted (every refusal is left to build_jsonc, which words
 * it). tests/fuzz/fuzz_normalize_diff.c compares the two paths on every input it makes. */

/* The top-level members the envelope reads, found in one pass. Indices into the tape, 0 when
 * absent. */
typedef struct fast_top {
    size_t event_type, uid, stack, timestamp;
    size_t specific; /* how many stack-specific fields */
} fast_top_t;

static void fast_scan_top(const jscan_t *j, fast_top_t *t) {
    static const struct {
        const char *name;
        size_t len, off;
    } wanted[] = {
        {"event_type", 10, offsetof(fast_top_t, event_type)},
        {"uid", 3, offsetof(fast_top_t, uid)},
        {"stack", 5, offsetof(fast_top_t, stack)},
        {"timestamp", 9, offsetof(fast_top_t, timestamp)},
    };
    uint32_t hash[COUNT(wanted)];
    memset(t, 0, sizeof *t);
    for (size_t w = 0; w < COUNT(wanted); w++)
        hash[w] = jscan_key_hash(wanted[w].name, wanted[w].len);
    for (size_t k = 1; k < j->tok[0].next; k = j->tok[k + 1].next) {
        const char *key = j->src + j->tok[k].off;
        size_t n = j->tok[k].len;
        const stack_field_t *f = stack_field(key, n);
        if (f && f->specific)
            t->specific++;
        for (size_t w = 0; w < COUNT(wanted); w++)
            if (j->tok[k].hash == hash[w] && n == wanted[w].len &&
                memcmp(key, wanted[w].name, n) == 0)
                *(size_t *)((char *)t + wanted[w].off) = k + 1;
    }
}

static int fast_is_string(const jscan_t *j, size_t i) {
    return i && j->tok[i].type == JSCAN_STRING;
}

/* As data_shape() and is_flat_stack(), on the tape. */
static data_shape_t fast_shape(const jscan_t *j, const fast_top_t *t) {
    if (!t->stack && fast_is_string(j, t->uid) && t->specific >= 2)
        return DATA_FLAT;
    if (fast_is_string(j, t->stack))
        return DATA_STACK_UID;
    return DATA_AS_IS;
}

/* As find_subject(): the index of the subject's string token, 0 for none; *names_stack. */
static size_t fast_subject(const jscan_t *j, const fast_top_t *t, data_shape_t shape,
                           int *names_stack) {
    *names_stack = 0;
    if (shape == DATA_FLAT) {
        *names_stack = 1;
        return t->uid;
    }
    if (t->stack) {
        if (shape == DATA_STACK_UID) {
            *names_stack = 1;
            return t->stack;
        }
        size_t uid = jscan_member(j, t->stack, "uid", 3);
        if (fast_is_string(j, uid)) {
            *names_stack = 1;
            return uid;
        }
    }
    return fast_is_string(j, t->uid) ? t->uid : 0;
}

/* As payload_time_secs(). */
static int fast_time_secs(const jscan_t *j, size_t i, buf_t *scratch, int64_t *secs) {
    if (!i)
        return 0;
    const jscan_tok_t *t = &j->tok[i];
    char text[40];
    switch ((jscan_type_t)t->type) {
    case JSCAN_INT: {
        /* At most 18 digits (jscan's subset): no overflow. */
        const char *s = j->src + t->off;
        size_t k = s[0] == '-';
        int64_t v = 0;
        for (; k < t->len; k++)
            v = v * 10 + (s[k] - '0');
        return secs_from_int(s[0] == '-' ? -v : v, secs);
    }
    case JSCAN_DOUBLE:
        if (t->len >= sizeof text)
            return 0; /* not in jscan's subset */
        memcpy(text, j->src + t->off, t->len);
        text[t->len] = '\0';
        return secs_from_double(strtod(text, NULL), secs); /* as json-c reads it */
    case JSCAN_STRING: {
        size_t n;
        buf_reset(scratch);
        const char *s = jscan_str(j, i, scratch, &n);
        if (!s || n >= sizeof text)
            return 0;
        memcpy(text, s, n);
        text[n] = '\0';
        return secs_from_digits(text, n, secs);
    }
    default: return 0;
    }
}


/* Returns HB_OK with *out built, HB_ERR_NOT_FOUND when the fast path does not take the body
 * (json-c's path decides), HB_ERR_NOMEM. */
static hb_status_t build_fast(const norm_opts_t *opts, const route_t *router, const char *body,
                              size_t len, int64_t now_ms, msg_t *out) {
    hb_status_t st = HB_ERR_NOT_FOUND;
    jscan_t j = {0};
    buf_t scratch = {0}; /* decoded strings: event_type, subject */
    fast_top_t top;
    norm_event_t ev = {0};
    norm_doc_t doc = {0};
    char family[ROUTE_NAME_MAX], topic[ROUTE_NAME_MAX], event_type[ROUTE_NAME_MAX + 1];
    char time_s[HBTIME_RFC3339_LEN], recv_s[HBTIME_RFC3339_LEN];
    int max_depth = opts->max_depth > 0 ? opts->max_depth : NORM_DEFAULT_DEPTH;
    size_t family_len, topic_len, time_len, recv_len, n;
    int64_t secs = 0;

    /* jscan checks what scan_body would (UTF-8, raw control characters, NUL, quotes, \u0000)
     * as it goes: a body with any of those is left to json-c's path, which reports it. */
    if (!jscan_parse(&j, body, len, max_depth))
        goto done;
    fast_scan_top(&j, &top);
    if (!fast_is_string(&j, top.event_type))
        goto done;
    /* event_type as a C string (no NUL inside: jscan takes no \u0000). A longer one is rare,
     * and json-c's path handles it. */
    const char *et = jscan_str(&j, top.event_type, &scratch, &n);
    if (!et || n >= sizeof event_type)
        goto done;
    memcpy(event_type, et, n);
    event_type[n] = '\0';
    ev.event_type = event_type;
    ev.event_type_len = n;
    if (!(family_len = route_family(router, event_type, family, sizeof family)) ||
        !(topic_len = route_topic(router, family, topic, sizeof topic)))
        goto done;
    doc.tape = &j;
    doc.shape = fast_shape(&j, &top);
    size_t subj = fast_subject(&j, &top, doc.shape, &ev.names_stack);
    int have_secs = fast_time_secs(&j, top.timestamp, &scratch, &secs);
    if (!(time_len = event_time(have_secs, secs, now_ms, time_s, sizeof time_s)) ||
        !(recv_len = hbtime_rfc3339(now_ms, 1, recv_s, sizeof recv_s)))
        goto done;
    if (subj) {
        buf_reset(&scratch);
        if (!(ev.subject = jscan_str(&j, subj, &scratch, &ev.subject_len)))
            goto done;
    }
    st = put_record(opts, body, len, now_ms, &ev, family, family_len, topic, topic_len, time_s,
                    time_len, recv_s, recv_len, &doc, out);
done:
    jscan_free(&j);
    buf_free(&scratch);
    return st;
}

hb_status_t norm_build(const norm_opts_t *opts, const route_t *router, const char *body,
                       size_t len, int64_t now_ms, msg_t *out, char *errstr, size_t errlen) {
    hb_status_t st = HB_ERR_NOT_FOUND;
    memset(out, 0, sizeof *out);
    if (errstr && errlen)
        errstr[0] = '\0';
    if (!body)
        body = "";
    if (opts->path != NORM_PATH_JSONC) {
        st = build_fast(opts, router, body, len, now_ms, out);
        if (st == HB_ERR_NOMEM)
            set_err(errstr, errlen, "out of memory building the event");
        if (st != HB_OK) {
            msg_free(out);
            if (opts->path == NORM_PATH_FAST)
                return st;
        }
    }
    if (st != HB_OK) /* not taken, or out of memory: json-c's path decides */
        st = build_jsonc(opts, router, body, len, now_ms, out, errstr, errlen);
    if (st != HB_OK)
        msg_free(out);
    return st;
}
