/* auth.c: the access-control verdict for one webhook request (see auth.h). */
#include "auth.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "echo.h"

#define DIGEST_LEN 32 /* SHA-256 and HMAC-SHA256 */
#define SECRET_MAX 256 /* decoded whsec_ key bytes */
#define DEFAULT_TOLERANCE_S 300

/* An address or a network: family AF_INET or AF_INET6, 16 bytes (IPv4 in the first 4). */
typedef struct cidr {
    int family;
    unsigned char addr[16];
    int prefix;
} cidr_t;

typedef struct key {
    unsigned char *bytes;
    size_t len;
} hmac_key_t;

struct auth {
    /* Tokens and Basic credentials are kept only as SHA-256 digests: comparing digests is
     * constant-time whatever the lengths, and a core dump does not show them in clear. */
    unsigned char (*tokens)[DIGEST_LEN];
    size_t tokens_cnt;
    unsigned char (*basic)[DIGEST_LEN];
    size_t basic_cnt;
    cidr_t *allow;
    size_t allow_cnt;
    cidr_t *proxies;
    size_t proxies_cnt;
    hmac_key_t *standard;
    size_t standard_cnt;
    hmac_key_t *github;
    size_t github_cnt;
    int64_t tolerance_s;
    /* The secrets in clear, only to keep them out of answers and logs (auth_redact). */
    char **clear;
    size_t clear_cnt;
};

/* ---- small parsers ------------------------------------------------------------------------ */

static int b64_value(int c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict standard base64 (padding optional, nothing else allowed) of n chars into out (cap
 * bytes). Returns the decoded length, or -1 when malformed or too long. */
static long b64_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (long)o;
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts as the IPv4 address, so an IPv4 allowlist
 * works on a dual-stack listener. */
static void unmap_v4(cidr_t *c) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (c->family == AF_INET6 && memcmp(c->addr, mapped, 12) == 0) {
        memmove(c->addr, c->addr + 12, 4);
        memset(c->addr + 4, 0, 12);
        c->family = AF_INET;
        c->prefix = c->prefix >= 96 ? c->prefix - 96 : 0;
    }
}

/* A bare address into c (prefix = full length). 0 or -1. */
static int parse_addr(const char *s, size_t n, cidr_t *c) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(c, 0, sizeof *c);
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        c->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        c->prefix = 128;
        unmap_v4(c);
        return 0;
    }
    return -1;
}

/* "ADDR" or "ADDR/PREFIX"; host bits must be zero (a set one is almost always a typo). */
static int parse_cidr(const char *s, cidr_t *c, char *why, size_t whylen) {
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (parse_addr(s, alen, c) != 0) {
        snprintf(why, whylen, "'%.64s' is not an IPv4 or IPv6 address or CIDR", s);
        return -1;
    }
    if (slash) {
        int v6_text = memchr(s, ':', alen) != NULL;
        int max = v6_text ? 128 : 32;
        char *end = NULL;
        errno = 0;
        long p = strtol(slash + 1, &end, 10);
        if (!isdigit((unsigned char)slash[1]) || *end || errno || p < 0 || p > max) {
            snprintf(why, whylen, "'%.64s': the prefix length must be 0 to %d", s, max);
            return -1;
        }
        if (v6_text && c->family == AF_INET) { /* ::ffff:a.b.c.d/n, unmapped by parse_addr */
            if (p < 96) {
                snprintf(why, whylen, "'%.64s': an IPv4-mapped network needs a prefix >= 96", s);
                return -1;
            }
            p -= 96;
        }
        c->prefix = (int)p;
    }
    for (int bit = c->prefix; bit < (c->family == AF_INET ? 32 : 128); bit++)
        if (c->addr[bit / 8] & (0x80 >> (bit % 8))) {
            snprintf(why, whylen, "'%.64s' has bits set past its /%d prefix", s, c->prefix);
            return -1;
        }
    return 0;
}

static int cidr_contains(const cidr_t *net, const cidr_t *a) {
    if (net->family != a->family)
        return 0;
    int full = net->prefix / 8, rest = net->prefix % 8;
    if (memcmp(net->addr, a->addr, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (net->addr[full] & mask) == (a->addr[full] & mask);
}

static int in_list(const cidr_t *list, size_t n, const cidr_t *a) {
    for (size_t i = 0; i < n; i++)
        if (cidr_contains(&list[i], a))
            return 1;
    return 0;
}

static int sha256(const void *data, size_t n, unsigned char out[DIGEST_LEN]) {
    unsigned int len = 0;
    return EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1 && len == DIGEST_LEN ? 0 : -1;
}

/* HMAC-SHA256 over the concatenation of up to three parts, separated by '.' when sep is set. */
static int hmac_sha256(const hmac_key_t *k, const void *const *parts, const size_t *lens, int nparts,
                       int sep, unsigned char out[DIGEST_LEN]) {
    int rc = -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t outlen = 0;
    if (!ctx || EVP_MAC_init(ctx, k->bytes, k->len, params) != 1)
        goto done;
    for (int i = 0; i < nparts; i++) {
        if (i > 0 && sep && EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1)
            goto done;
        if (lens[i] && EVP_MAC_update(ctx, parts[i], lens[i]) != 1)
            goto done;
    }
    if (EVP_MAC_final(ctx, out, &outlen, DIGEST_LEN) != 1 || outlen != DIGEST_LEN)
        goto done;
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

/* 1 when the digest of s equals any of list; every entry is compared, match or not. */
static int digest_matches(const unsigned char (*list)[DIGEST_LEN], size_t n, const char *s,
                          size_t len) {
    unsigned char d[DIGEST_LEN];
    int hit = 0;
    if (sha256(s, len, d) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        hit |= CRYPTO_memcmp(d, list[i], DIGEST_LEN) == 0;
    OPENSSL_cleanse(d, sizeof d);
    return hit;
}

/* ---- construction ------------------------------------------------------------------------- */

void auth_free(auth_t *a) {
    if (!a)
        return;
    for (size_t i = 0; i < a->standard_cnt; i++)
        OPENSSL_clear_free(a->standard[i].bytes, a->standard[i].len);
    for (size_t i = 0; i < a->github_cnt; i++)
        OPENSSL_clear_free(a->github[i].bytes, a->github[i].len);
    if (a->tokens)
        OPENSSL_cleanse(a->tokens, a->tokens_cnt * DIGEST_LEN);
    if (a->basic)
        OPENSSL_cleanse(a->basic, a->basic_cnt * DIGEST_LEN);
    for (size_t i = 0; i < a->clear_cnt; i++)
        OPENSSL_clear_free(a->clear[i], strlen(a->clear[i]));
    free(a->clear);
    free(a->tokens);
    free(a->basic);
    free(a->allow);
    free(a->proxies);
    free(a->standard);
    free(a->github);
    free(a);
}

/* Characters allowed in a token: RFC 3986 unreserved, so it can sit in a path or a query as is. */
static int token_ok(const char *t) {
    for (; *t; t++)
        if (!isalnum((unsigned char)*t) && !strchr("-._~", *t))
            return 0;
    return 1;
}

static int build_cidrs(const char *name, const char *const *in, size_t n, cidr_t **out,
                       size_t *cnt, char *errstr, size_t errlen, size_t *bad) {
    char why[160];
    if (n == 0)
        return 0;
    if (!(*out = calloc(n, sizeof **out))) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (parse_cidr(in[i], &(*out)[i], why, sizeof why) != 0) {
            snprintf(errstr, errlen, "%s[%zu]: %s", name, i, why);
            *bad = i;
            return -1;
        }
    }
    *cnt = n;
    return 0;
}

/* Builds; on a bad entry *bad_opt names the option and *bad_idx the entry, for file:line. */
static auth_t *build(const auth_opts_t *o, char *errstr, size_t errlen, const char **bad_opt,
                     size_t *bad_idx) {
    auth_t *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    a->tolerance_s = o->tolerance_s > 0 ? o->tolerance_s : DEFAULT_TOLERANCE_S;

    *bad_opt = "auth.tokens";
    if (o->tokens_cnt && !(a->tokens = calloc(o->tokens_cnt, DIGEST_LEN)))
        goto nomem;
    for (size_t i = 0; i < o->tokens_cnt; i++) {
        *bad_idx = i;
        if (strlen(o->tokens[i]) < 16 || !token_ok(o->tokens[i])) {
            snprintf(errstr, errlen,
                     "auth.tokens[%zu]: a token needs at least 16 characters, all of "
                     "A-Z a-z 0-9 - . _ ~",
                     i);
            goto fail;
        }
        if (sha256(o->tokens[i], strlen(o->tokens[i]), a->tokens[i]) != 0)
            goto nomem;
        a->tokens_cnt = i + 1;
    }

    *bad_opt = "auth.basic_users";
    if (o->basic_users_cnt && !(a->basic = calloc(o->basic_users_cnt, DIGEST_LEN)))
        goto nomem;
    for (size_t i = 0; i < o->basic_users_cnt; i++) {
        const char *u = o->basic_users[i];
        const char *colon = strchr(u, ':');
        *bad_idx = i;
        if (!colon || colon == u || !colon[1]) {
            snprintf(errstr, errlen,
                     "auth.basic_users[%zu]: want \"user:password\" with both parts non-empty", i);
            goto fail;
        }
        if (sha256(u, strlen(u), a->basic[i]) != 0)
            goto nomem;
        a->basic_cnt = i + 1;
    }

    *bad_opt = "auth.allow_from";
    if (build_cidrs(*bad_opt, o->allow_from, o->allow_from_cnt, &a->allow, &a->allow_cnt, errstr,
                    errlen, bad_idx) != 0)
        goto fail;
    *bad_opt = "auth.trusted_proxies";
    if (build_cidrs(*bad_opt, o->trusted_proxies, o->trusted_proxies_cnt, &a->proxies,
                    &a->proxies_cnt, errstr, errlen, bad_idx) != 0)
        goto fail;

    *bad_opt = "auth.standard_webhooks_secrets";
    if (o->standard_secrets_cnt && !(a->standard = calloc(o->standard_secrets_cnt, sizeof(hmac_key_t))))
        goto nomem;
    for (size_t i = 0; i < o->standard_secrets_cnt; i++) {
        const char *s = o->standard_secrets[i];
        unsigned char tmp[SECRET_MAX];
        *bad_idx = i;
        long n = strncmp(s, "whsec_", 6) == 0 ? b64_decode(s + 6, strlen(s + 6), tmp, sizeof tmp)
                                               : -1;
        if (n < 1) {
            snprintf(errstr, errlen,
                     "auth.standard_webhooks_secrets[%zu]: want whsec_ followed by the base64 "
                     "key (at most %d bytes)",
                     i, SECRET_MAX);
            OPENSSL_cleanse(tmp, sizeof tmp);
            goto fail;
        }
        a->standard[i].bytes = OPENSSL_malloc((size_t)n);
        if (!a->standard[i].bytes) {
            OPENSSL_cleanse(tmp, sizeof tmp);
            goto nomem;
        }
        memcpy(a->standard[i].bytes, tmp, (size_t)n);
        a->standard[i].len = (size_t)n;
        a->standard_cnt = i + 1;
        OPENSSL_cleanse(tmp, sizeof tmp);
    }

    *bad_opt = "auth.github_secrets";
    if (o->github_secrets_cnt && !(a->github = calloc(o->github_secrets_cnt, sizeof(hmac_key_t))))
        goto nomem;
    for (size_t i = 0; i < o->github_secrets_cnt; i++) {
        size_t n = strlen(o->github_secrets[i]);
        *bad_idx = i;
        if (n == 0) {
            snprintf(errstr, errlen, "auth.github_secrets[%zu]: empty secret", i);
            goto fail;
        }
        if (!(a->github[i].bytes = OPENSSL_malloc(n)))
            goto nomem;
        memcpy(a->github[i].bytes, o->github_secrets[i], n);
        a->github[i].len = n;
        a->github_cnt = i + 1;
    }
    *bad_opt = NULL;
    return a;
nomem:
    *bad_opt = NULL;
    snprintf(errstr, errlen, "out of memory");
fail:
    auth_free(a);
    return NULL;
}

/* Keeps s (n bytes) in clear for auth_redact; 0 or -1 when out of memory. Secrets shorter
 * than 4 bytes are not kept: masking them would mangle ordinary text. */
static int keep_clear(auth_t *a, const char *s, size_t n) {
    if (n < 4)
        return 0;
    char **t = realloc(a->clear, (a->clear_cnt + 1) * sizeof *t);
    if (!t)
        return -1;
    a->clear = t;
    if (!(t[a->clear_cnt] = OPENSSL_malloc(n + 1)))
        return -1;
    memcpy(t[a->clear_cnt], s, n);
    t[a->clear_cnt][n] = '\0';
    a->clear_cnt++;
    return 0;
}

static int keep_all_clear(auth_t *a, const auth_opts_t *o) {
    for (size_t i = 0; i < o->tokens_cnt; i++)
        if (keep_clear(a, o->tokens[i], strlen(o->tokens[i])) != 0)
            return -1;
    for (size_t i = 0; i < o->basic_users_cnt; i++) {
        const char *u = o->basic_users[i], *colon = strchr(u, ':');
        if (keep_clear(a, u, strlen(u)) != 0 ||
            (colon && keep_clear(a, colon + 1, strlen(colon + 1)) != 0))
            return -1;
    }
    for (size_t i = 0; i < o->standard_secrets_cnt; i++) {
        const char *s = o->standard_secrets[i];
        if (keep_clear(a, s, strlen(s)) != 0 ||
            (strncmp(s, "whsec_", 6) == 0 && keep_clear(a, s + 6, strlen(s + 6)) != 0))
            return -1;
    }
    for (size_t i = 0; i < o->github_secrets_cnt; i++)
        if (keep_clear(a, o->github_secrets[i], strlen(o->github_secrets[i])) != 0)
            return -1;
    return 0;
}

static auth_t *build_all(const auth_opts_t *o, char *errstr, size_t errlen, const char **bad_opt,
                         size_t *bad_idx) {
    auth_t *a = build(o, errstr, errlen, bad_opt, bad_idx);
    if (a && keep_all_clear(a, o) != 0) {
        auth_free(a);
        *bad_opt = NULL;
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    return a;
}

void auth_redact(const auth_t *a, char *text) {
    if (!a || !text)
        return;
    for (size_t i = 0; i < a->clear_cnt; i++) {
        size_t n = strlen(a->clear[i]);
        for (char *p = text; (p = strstr(p, a->clear[i])); p += n)
            memset(p, '*', n);
    }
}

auth_t *auth_new(const auth_opts_t *opts, char *errstr, size_t errlen) {
    const char *bad_opt = NULL;
    size_t bad_idx = 0;
    return build_all(opts, errstr, errlen, &bad_opt, &bad_idx);
}

auth_t *auth_from_config(const hb_config_t *cfg, char *errstr, size_t errlen) {
    const cfg_strlist_t *lists[] = {&cfg->auth_tokens,          &cfg->auth_basic_users,
                                    &cfg->auth_allow_from,      &cfg->auth_trusted_proxies,
                                    &cfg->auth_standard_webhooks_secrets,
                                    &cfg->auth_github_secrets};
    static const char *const names[] = {"auth.tokens",          "auth.basic_users",
                                        "auth.allow_from",      "auth.trusted_proxies",
                                        "auth.standard_webhooks_secrets",
                                        "auth.github_secrets"};
    auth_opts_t o = {
        .tokens = (const char *const *)cfg->auth_tokens.items,
        .tokens_cnt = cfg->auth_tokens.count,
        .basic_users = (const char *const *)cfg->auth_basic_users.items,
        .basic_users_cnt = cfg->auth_basic_users.count,
        .allow_from = (const char *const *)cfg->auth_allow_from.items,
        .allow_from_cnt = cfg->auth_allow_from.count,
        .trusted_proxies = (const char *const *)cfg->auth_trusted_proxies.items,
        .trusted_proxies_cnt = cfg->auth_trusted_proxies.count,
        .standard_secrets = (const char *const *)cfg->auth_standard_webhooks_secrets.items,
        .standard_secrets_cnt = cfg->auth_standard_webhooks_secrets.count,
        .github_secrets = (const char *const *)cfg->auth_github_secrets.items,
        .github_secrets_cnt = cfg->auth_github_secrets.count,
        .tolerance_s = cfg->auth_signature_tolerance_s,
    };
    char err[256];
    const char *bad_opt = NULL;
    size_t bad_idx = 0;
    auth_t *a = build_all(&o, err, sizeof err, &bad_opt, &bad_idx);
    if (a)
        return a;
    int line = 0;
    for (size_t i = 0; bad_opt && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i], bad_opt) == 0 && bad_idx < lists[i]->count)
            line = lists[i]->lines[bad_idx];
    if (line > 0)
        snprintf(errstr, errlen, "%s:%d: %s", cfg->path ? cfg->path : "config", line, err);
    else
        snprintf(errstr, errlen, "%s: %s", cfg->path ? cfg->path : "config", err);
    return NULL;
}

int auth_enabled(const auth_t *a) {
    return a && (a->tokens_cnt || a->basic_cnt || a->allow_cnt || a->standard_cnt ||
                 a->github_cnt);
}

int auth_uses_tokens(const auth_t *a) { return a && a->tokens_cnt > 0; }

int64_t auth_replay_window_s(const auth_t *a) {
    return a && a->standard_cnt ? a->tolerance_s : 0;
}

/* ---- the checks --------------------------------------------------------------------------- */

static void deny(auth_result_t *r, int status, const char *code, const char *fmt, const char *arg) {
    r->allowed = 0;
    r->status = status;
    r->error = code;
    snprintf(r->detail, sizeof r->detail, fmt, arg ? arg : "");
}

/* Finds the client address: the peer, or, behind trusted proxies, the right-most X-Forwarded-For
 * entry that is not itself a trusted proxy. 0, or -1 with the verdict written. */
static int client_address(const auth_t *a, const auth_input_t *in, cidr_t *client,
                          auth_result_t *r) {
    if (!in->peer || parse_addr(in->peer, strlen(in->peer), client) != 0) {
        deny(r, 403, "forbidden_source", "the client address cannot be determined%s", NULL);
        return -1;
    }
    snprintf(r->client, sizeof r->client, "%s", in->peer);
    if (!in->forwarded_for || !in_list(a->proxies, a->proxies_cnt, client))
        return 0;
    const char *xff = in->forwarded_for;
    size_t end = strlen(xff);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        size_t s = start, e = end;
        while (s < e && (xff[s] == ' ' || xff[s] == '\t'))
            s++;
        while (e > s && (xff[e - 1] == ' ' || xff[e - 1] == '\t'))
            e--;
        end = start > 0 ? start - 1 : 0;
        if (s == e)
            continue; /* empty element ("a,,b"): proxies do write these */
        /* "[v6]:port", "[v6]" and "v4:port" are written by some proxies. */
        const char *h = xff + s;
        size_t hl = e - s;
        if (h[0] == '[') {
            const char *close = memchr(h, ']', hl);
            if (!close) {
                hl = 0;
            } else {
                hl = (size_t)(close - h) - 1;
                h++;
            }
        } else if (memchr(h, '.', hl) && memchr(h, ':', hl) &&
                   memchr(h, ':', hl) == memrchr(h, ':', hl)) {
            hl = (size_t)((const char *)memchr(h, ':', hl) - h);
        }
        cidr_t hop;
        if (parse_addr(h, hl, &hop) != 0) {
            /* Client bytes, bound for a JSON answer and a log line that copy bytes >= 0x80 as
             * they are: shown capped and reduced to printable ASCII, so both stay UTF-8. */
            char shown[56];
            echo_text(xff + s, e - s, 48, shown, sizeof shown);
            deny(r, 403, "forbidden_source", "X-Forwarded-For holds '%s', which is not an address",
                 shown);
            return -1;
        }
        *client = hop;
        snprintf(r->client, sizeof r->client, "%.*s", (int)(hl > 63 ? 63 : hl), h);
        if (!in_list(a->proxies, a->proxies_cnt, &hop))
            return 0;
    }
    /* Every hop was a trusted proxy: the left-most one is the best we know. */
    return 0;
}

static int check_token(const auth_t *a, const auth_input_t *in, auth_result_t *r) {
    int hit = 0, seen = 0;
    /* Over the exact bytes: a NUL inside makes the digest differ from every configured token
     * (which hold none), so "<token>%00junk" does not match. */
    if (in->path_token && (in->path_token_len || *in->path_token)) {
        seen = 1;
        hit |= digest_matches((const unsigned char(*)[DIGEST_LEN])a->tokens, a->tokens_cnt,
                              in->path_token,
                              in->path_token_len ? in->path_token_len : strlen(in->path_token));
    }
    if (in->query_token && (in->query_token_len || *in->query_token)) {
        seen = 1;
        hit |= digest_matches((const unsigned char(*)[DIGEST_LEN])a->tokens, a->tokens_cnt,
                              in->query_token,
                              in->query_token_len ? in->query_token_len
                                                  : strlen(in->query_token));
    }
    if (!seen) {
        deny(r, 401, "missing_token", "this endpoint needs a token in the path or ?token=%s",
             NULL);
        return -1;
    }
    if (!hit) {
        deny(r, 401, "invalid_token", "the token is not valid%s", NULL);
        return -1;
    }
    return 0;
}

static int check_basic(const auth_t *a, const auth_input_t *in, auth_result_t *r) {
    const char *h = in->authorization;
    r->want_basic = 1;
    if (!h) {
        deny(r, 401, "missing_credentials", "this endpoint needs HTTP Basic credentials%s", NULL);
        return -1;
    }
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t')) {
        deny(r, 401, "missing_credentials", "the Authorization header is not HTTP Basic%s", NULL);
        return -1;
    }
    h += 5;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    unsigned char dec[1024];
    long dl = b64_decode(h, n, dec, sizeof dec);
    int ok = dl > 0 && digest_matches((const unsigned char(*)[DIGEST_LEN])a->basic, a->basic_cnt,
                                      (const char *)dec, (size_t)dl);
    OPENSSL_cleanse(dec, sizeof dec);
    if (dl <= 0) {
        deny(r, 401, "invalid_credentials", "the Basic credentials are not valid base64%s", NULL);
        return -1;
    }
    if (!ok) {
        deny(r, 401, "invalid_credentials", "wrong user name or password%s", NULL);
        return -1;
    }
    r->want_basic = 0;
    return 0;
}

/* A decimal Unix time, nothing else; -1 when malformed. */
static int64_t parse_unix(const char *s) {
    int64_t v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) || v > 1000000000000LL)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

static int check_standard(const auth_t *a, const auth_input_t *in, auth_result_t *r) {
    if (!in->wh_id || !in->wh_timestamp || !in->wh_signature || !*in->wh_id) {
        deny(r, 401, "missing_signature",
             "this endpoint needs webhook-id, webhook-timestamp and webhook-signature%s", NULL);
        return -1;
    }
    int64_t ts = parse_unix(in->wh_timestamp);
    if (ts < 0) {
        deny(r, 401, "invalid_signature", "webhook-timestamp is not a Unix time in seconds%s",
             NULL);
        return -1;
    }
    int64_t skew = in->now_s - ts;
    if (skew > a->tolerance_s || skew < -a->tolerance_s) {
        char d[64];
        snprintf(d, sizeof d, "%lld s", (long long)a->tolerance_s);
        deny(r, 401, "stale_signature", "webhook-timestamp is further from now than %s", d);
        return -1;
    }
    /* Every secret against every v1 entry: rotation on either side (ours or the sender's). */
    const void *parts[3] = {in->wh_id, in->wh_timestamp, in->body ? in->body : ""};
    size_t lens[3] = {strlen(in->wh_id), strlen(in->wh_timestamp), in->body_len};
    int hit = 0, entries = 0;
    for (size_t k = 0; k < a->standard_cnt; k++) {
        unsigned char want[DIGEST_LEN];
        if (hmac_sha256(&a->standard[k], parts, lens, 3, 1, want) != 0) {
            deny(r, 401, "invalid_signature", "the signature could not be computed%s", NULL);
            return -1;
        }
        entries = 0;
        for (const char *p = in->wh_signature; *p;) {
            while (*p == ' ')
                p++;
            size_t n = strcspn(p, " ");
            if (n == 0)
                break;
            if (n > 3 && strncmp(p, "v1,", 3) == 0) {
                unsigned char got[DIGEST_LEN + 4];
                long gl = b64_decode(p + 3, n - 3, got, sizeof got);
                entries++;
                if (gl == DIGEST_LEN)
                    hit |= CRYPTO_memcmp(got, want, DIGEST_LEN) == 0;
            }
            p += n;
        }
        OPENSSL_cleanse(want, sizeof want);
    }
    if (!entries) {
        deny(r, 401, "invalid_signature", "webhook-signature has no v1,<base64> entry%s", NULL);
        return -1;
    }
    if (!hit) {
        deny(r, 401, "invalid_signature", "no webhook-signature entry matches%s", NULL);
        return -1;
    }
    return 0;
}

static int check_github(const auth_t *a, const auth_input_t *in, auth_result_t *r) {
    const char *h = in->hub_signature;
    if (!h) {
        deny(r, 401, "missing_signature", "this endpoint needs X-Hub-Signature-256%s", NULL);
        return -1;
    }
    unsigned char got[DIGEST_LEN];
    int ok = strncmp(h, "sha256=", 7) == 0 && strlen(h + 7) == 2 * DIGEST_LEN;
    for (size_t i = 0; ok && i < DIGEST_LEN; i++) {
        int hi = hex_value((unsigned char)h[7 + 2 * i]), lo = hex_value((unsigned char)h[8 + 2 * i]);
        if (hi < 0 || lo < 0)
            ok = 0;
        else
            got[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok) {
        deny(r, 401, "invalid_signature", "X-Hub-Signature-256 must be sha256=<64 hex digits>%s",
             NULL);
        return -1;
    }
    int hit = 0;
    const void *parts[1] = {in->body ? in->body : ""};
    size_t lens[1] = {in->body_len};
    for (size_t k = 0; k < a->github_cnt; k++) {
        unsigned char want[DIGEST_LEN];
        if (hmac_sha256(&a->github[k], parts, lens, 1, 0, want) != 0) {
            deny(r, 401, "invalid_signature", "the signature could not be computed%s", NULL);
            return -1;
        }
        hit |= CRYPTO_memcmp(got, want, DIGEST_LEN) == 0;
    }
    if (!hit) {
        deny(r, 401, "invalid_signature", "X-Hub-Signature-256 does not match%s", NULL);
        return -1;
    }
    return 0;
}

void auth_check(const auth_t *a, const auth_input_t *in, auth_result_t *r) {
    memset(r, 0, sizeof *r);
    if (!auth_enabled(a)) {
        r->allowed = 1;
        return;
    }
    /* The address first: it is cheap and says nothing about any secret. */
    if (a->allow_cnt || a->proxies_cnt) {
        cidr_t client;
        if (client_address(a, in, &client, r) != 0)
            return;
        if (a->allow_cnt && !in_list(a->allow, a->allow_cnt, &client)) {
            deny(r, 403, "forbidden_source", "address %s is not in auth.allow_from", r->client);
            return;
        }
    } else if (in->peer) {
        snprintf(r->client, sizeof r->client, "%s", in->peer);
    }
    if (a->tokens_cnt && check_token(a, in, r) != 0)
        return;
    if (a->basic_cnt && check_basic(a, in, r) != 0)
        return;
    if (a->standard_cnt && check_standard(a, in, r) != 0)
        return;
    if (a->github_cnt && check_github(a, in, r) != 0)
        return;
    r->allowed = 1;
}
