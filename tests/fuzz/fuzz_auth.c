/* fuzz_auth.c: libFuzzer harness: auth_check on one request against an auth_t with every mode
 * configured; checks the verdict's invariants and re-derives every verdict independently.
 *
 * Input layout: the request as text, like an HTTP head, so seeds are readable and libFuzzer can
 * change one field without breaking the others:
 *
 *   NAME VALUE\n    one field a line; NAME is one of now, peer, xff, path, query, auth, wh-id,
 *                   wh-ts, wh-sig, hub (the auth_input_t fields; see FIELD_NAMES). A field not
 *                   given is absent (NULL); "NAME" alone is present and empty. Repeated xff
 *                   lines are joined with ", " as http.c joins X-Forwarded-For headers; for the
 *                   others the first line counts, as with evhttp_find_header. Other lines are
 *                   ignored.
 *   \n              a blank line, then the body: every remaining byte, NULs included. Without
 *                   the blank line the body is absent.
 *
 * `now` is decimal Unix seconds (default NOW_DEFAULT), clamped to a clock any host could have.
 *
 * Every field is copied into its own allocation of its exact size, so ASan sees an over-read of
 * any one of them. Checked on every input:
 *   - allowed: status 0, error NULL, no WWW-Authenticate, empty detail;
 *   - denied: status 401 or 403 (403 exactly for forbidden_source), a known error code, a
 *     non-empty detail;
 *   - detail and client are NUL-terminated printable ASCII (they go into a JSON answer and a
 *     log line; buf_json_str copies bytes >= 0x80 as they are, so raw client bytes there would
 *     make invalid UTF-8), and never hold a configured secret the request did not carry itself;
 *   - the verdict equals a reference written here from auth.h's description, with OpenSSL's
 *     one-shot HMAC and base64 decoder: allowed exactly when every mode passes, and when denied,
 *     the mode that failed first (address, token, basic, standard, github) is the one named by
 *     the error code. The client address chosen behind trusted proxies is compared too.
 *
 * With HB_FUZZ_SEED_OUT=DIR in the environment, LLVMFuzzerInitialize writes seed requests into
 * DIR: ones that pass every mode (signatures computed with this file's secrets, so the HMAC
 * match paths are reached from the first run) and one for each way a mode fails. It checks that
 * each seed gets the verdict it was written for, so the seeds cannot rot silently.
 */
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW_DEFAULT 1757011079LL
#define NOW_MAX 4102444800LL /* 2100-01-01 */
#define TOLERANCE_S 300
#define COUNT(a) (sizeof(a) / sizeof *(a))

/* ---- the configuration: every mode, several entries each -------------------------------- */

static const char *const g_tokens[] = {"fuzz-token-0123456789abcdef", "rotated.Token_~0123456789"};
static const char *const g_users[] = {"cloud66:pa:ss w0rd", "ops:correct horse"};
static const char *const g_allow[] = {"203.0.113.0/24", "2001:db8:1::/48", "198.51.100.7",
                                      "::ffff:192.0.2.128/121"};
static const char *const g_proxies[] = {"10.0.0.0/8", "fd00::/8", "127.0.0.1"};
/* The first is Standard Webhooks' published example key. */
static const char *const g_standard[] = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                         "whsec_c29tZSBvdGhlciBrZXkgb2YgdGhpcnR5LXR3byE="};
static const char *const g_github[] = {"It's a Secret to Everybody", "gh-rotated-secret"};

static auth_t *g_auth;

/* ---- the request ---------------------------------------------------------------------------- */

enum { F_NOW, F_PEER, F_XFF, F_PATH, F_QUERY, F_AUTH, F_WH_ID, F_WH_TS, F_WH_SIG, F_HUB, F_CNT };
static const char *const FIELD_NAMES[F_CNT] = {"now",   "peer",  "xff",   "path",  "query",
                                               "auth",  "wh-id", "wh-ts", "wh-sig", "hub"};

typedef struct req {
    char *f[F_CNT]; /* NULL: absent */
    char *body;     /* NULL: absent */
    size_t body_len;
    int64_t now;
} req_t;

static void req_free(req_t *q) {
    for (int i = 0; i < F_CNT; i++)
        free(q->f[i]);
    free(q->body);
}

static char *dup_n(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static void parse_request(const uint8_t *d, size_t n, req_t *q) {
    memset(q, 0, sizeof *q);
    size_t i = 0;
    while (i < n) {
        const uint8_t *nl = memchr(d + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - d) : n;
        if (end == i) { /* blank line: the body follows */
            q->body_len = n - end - 1;
            q->body = malloc(q->body_len ? q->body_len : 1);
            if (!q->body)
                abort();
            memcpy(q->body, d + end + 1, q->body_len);
            break;
        }
        const uint8_t *sp = memchr(d + i, ' ', end - i);
        size_t name_len = sp ? (size_t)(sp - (d + i)) : end - i;
        size_t vstart = sp ? (size_t)(sp - d) + 1 : end;
        for (int k = 0; k < F_CNT; k++) {
            if (strlen(FIELD_NAMES[k]) != name_len || memcmp(FIELD_NAMES[k], d + i, name_len))
                continue;
            /* A C string, as a header value is: it ends at the first NUL. */
            const uint8_t *nul = memchr(d + vstart, '\0', end - vstart);
            size_t vlen = nul ? (size_t)(nul - (d + vstart)) : end - vstart;
            if (k == F_XFF && q->f[k]) {
                size_t old = strlen(q->f[k]);
                char *j = realloc(q->f[k], old + 2 + vlen + 1);
                if (!j)
                    abort();
                memcpy(j + old, ", ", 2);
                memcpy(j + old + 2, d + vstart, vlen);
                j[old + 2 + vlen] = '\0';
                q->f[k] = j;
            } else if (!q->f[k]) {
                q->f[k] = dup_n(d + vstart, vlen);
            }
        }
        i = end + 1;
    }
    q->now = NOW_DEFAULT;
    if (q->f[F_NOW]) {
        long long v = strtoll(q->f[F_NOW], NULL, 10);
        q->now = v < 0 ? 0 : v > NOW_MAX ? NOW_MAX : v;
    }
}

static auth_input_t input_of(const req_t *q) {
    return (auth_input_t){.path_token = q->f[F_PATH],
                          .query_token = q->f[F_QUERY],
                          .authorization = q->f[F_AUTH],
                          .peer = q->f[F_PEER],
                          .forwarded_for = q->f[F_XFF],
                          .wh_id = q->f[F_WH_ID],
                          .wh_timestamp = q->f[F_WH_TS],
                          .wh_signature = q->f[F_WH_SIG],
                          .hub_signature = q->f[F_HUB],
                          .body = q->body,
                          .body_len = q->body_len,
                          .now_s = q->now};
}

/* ---- the reference ------------------------------------------------------------------------- */

typedef struct net {
    int v6;
    unsigned char a[16];
    int bits;
} net_t;

/* A numeric address of n chars; an IPv4-mapped IPv6 address is its IPv4 address. */
static int ref_addr(const char *s, size_t n, net_t *out) {
    char buf[64];
    if (n == 0 || n >= sizeof buf)
        return 0;
    memcpy(buf, s, n);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->a) == 1) {
        out->bits = 32;
        return 1;
    }
    if (inet_pton(AF_INET6, buf, out->a) != 1)
        return 0;
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    out->v6 = memcmp(out->a, mapped, 12) != 0;
    out->bits = out->v6 ? 128 : 32;
    if (!out->v6)
        memmove(out->a, out->a + 12, 4);
    return 1;
}

static net_t ref_net(const char *cidr) {
    net_t n;
    const char *slash = strchr(cidr, '/');
    if (!ref_addr(cidr, slash ? (size_t)(slash - cidr) : strlen(cidr), &n))
        abort();
    if (slash)
        n.bits = atoi(slash + 1) - (strchr(cidr, ':') && !n.v6 ? 96 : 0);
    return n;
}

static int ref_in(const char *const *list, size_t cnt, const net_t *a) {
    for (size_t i = 0; i < cnt; i++) {
        net_t n = ref_net(list[i]);
        int same = n.v6 == a->v6;
        for (int b = 0; same && b < n.bits; b++)
            same = ((n.a[b / 8] ^ a->a[b / 8]) & (0x80 >> (b % 8))) == 0;
        if (same)
            return 1;
    }
    return 0;
}

/* Strict standard base64, trailing '=' optional, into out (cap bytes); -1 when malformed. */
static long ref_b64(const char *s, size_t n, unsigned char *out, size_t cap) {
    char tmp[2048];
    unsigned char dec[1536];
    while (n > 0 && s[n - 1] == '=')
        n--;
    if (n % 4 == 1 || n + 3 > sizeof tmp)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (!s[i] ||
            !strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", s[i]))
            return -1;
    size_t pad = (4 - n % 4) % 4;
    memcpy(tmp, s, n);
    memset(tmp + n, '=', pad);
    int got = n + pad ? EVP_DecodeBlock(dec, (const unsigned char *)tmp, (int)(n + pad)) : 0;
    if (got < 0 || (size_t)got < pad)
        abort(); /* the text was checked above: OpenSSL must take it */
    size_t len = (size_t)got - pad;
    if (len > cap)
        return -1;
    memcpy(out, dec, len);
    return (long)len;
}

static void hmac(const void *key, size_t klen, const void *msg, size_t mlen, unsigned char *out) {
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &len) || len != 32)
        abort();
}

static size_t whsec_key(const char *secret, unsigned char *key) {
    long n = ref_b64(secret + 6, strlen(secret + 6), key, 256);
    if (n < 1)
        abort();
    return (size_t)n;
}

enum mode { M_NONE, M_ADDRESS, M_TOKEN, M_BASIC, M_STANDARD, M_GITHUB };

/* The client address (its text in *client): the peer, or behind a trusted proxy the
 * right-most X-Forwarded-For element that is not one. 0 when none can be determined. */
static int ref_client(const req_t *q, net_t *client, char *text, size_t textlen) {
    const char *peer = q->f[F_PEER], *xff = q->f[F_XFF];
    if (!peer || !ref_addr(peer, strlen(peer), client))
        return 0;
    snprintf(text, textlen, "%s", peer);
    if (!xff || !ref_in(g_proxies, COUNT(g_proxies), client))
        return 1;
    /* Cut into elements first, then walk them from the right. */
    size_t cap = 1, cnt = 0;
    for (const char *c = xff; *c; c++)
        cap += *c == ',';
    const char **el = malloc(cap * sizeof *el);
    size_t *ellen = malloc(cap * sizeof *ellen);
    if (!el || !ellen)
        abort();
    for (const char *p = xff;;) {
        size_t n = strcspn(p, ",");
        const char *s = p, *e = p + n;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > s) {
            el[cnt] = s;
            ellen[cnt++] = (size_t)(e - s);
        }
        if (!p[n])
            break;
        p += n + 1;
    }
    int found = 1; /* only trusted hops: the left-most one */
    while (cnt-- > 0) {
        const char *h = el[cnt];
        size_t n = ellen[cnt];
        const char *colon = memchr(h, ':', n);
        if (h[0] == '[') { /* "[v6]" or "[v6]:port" */
            const char *close = memchr(h, ']', n);
            if (!close) {
                found = 0;
                break;
            }
            n = (size_t)(close - h - 1);
            h++;
        } else if (colon && memchr(h, '.', n) &&
                   !memchr(colon + 1, ':', n - (size_t)(colon - h) - 1)) {
            n = (size_t)(colon - h); /* "v4:port" */
        }
        if (!ref_addr(h, n, client)) {
            found = 0;
            break;
        }
        snprintf(text, textlen, "%.*s", (int)n, h);
        if (!ref_in(g_proxies, COUNT(g_proxies), client))
            break;
    }
    free(el);
    free(ellen);
    return found;
}

static int ref_token(const req_t *q) {
    for (size_t i = 0; i < COUNT(g_tokens); i++)
        if ((q->f[F_PATH] && strcmp(q->f[F_PATH], g_tokens[i]) == 0) ||
            (q->f[F_QUERY] && strcmp(q->f[F_QUERY], g_tokens[i]) == 0))
            return 1;
    return 0;
}

static int ref_basic(const req_t *q) {
    const char *h = q->f[F_AUTH];
    if (!h)
        return 0;
    h += strspn(h, " \t");
    if (strncasecmp(h, "basic", 5) != 0 || (h[5] != ' ' && h[5] != '\t'))
        return 0;
    h += 5 + strspn(h + 5, " \t");
    size_t n = strlen(h);
    while (n > 0 && strchr(" \t", h[n - 1]))
        n--;
    unsigned char dec[1024];
    long dl = ref_b64(h, n, dec, sizeof dec);
    for (size_t i = 0; dl > 0 && i < COUNT(g_users); i++)
        if ((size_t)dl == strlen(g_users[i]) && memcmp(dec, g_users[i], (size_t)dl) == 0)
            return 1;
    return 0;
}

static int ref_standard(const req_t *q) {
    const char *id = q->f[F_WH_ID], *ts = q->f[F_WH_TS], *sig = q->f[F_WH_SIG];
    if (!id || !*id || !ts || !*ts || !sig || strspn(ts, "0123456789") != strlen(ts))
        return 0;
    /* auth.c stops reading digits past 10^13: such a time is invalid, not just stale. */
    int64_t t = 0;
    for (const char *p = ts; *p && t <= 10000000000009LL; p++)
        t = t * 10 + (*p - '0');
    if (t > 10000000000009LL || q->now - t > TOLERANCE_S || t - q->now > TOLERANCE_S)
        return 0;
    size_t idl = strlen(id), tsl = strlen(ts);
    size_t mlen = idl + 1 + tsl + 1 + q->body_len;
    unsigned char *msg = malloc(mlen);
    if (!msg)
        abort();
    memcpy(msg, id, idl);
    msg[idl] = '.';
    memcpy(msg + idl + 1, ts, tsl);
    msg[idl + 1 + tsl] = '.';
    if (q->body_len)
        memcpy(msg + idl + tsl + 2, q->body, q->body_len);
    int ok = 0;
    for (size_t k = 0; k < COUNT(g_standard) && !ok; k++) {
        unsigned char key[256], want[32], got[64];
        size_t klen = whsec_key(g_standard[k], key);
        hmac(key, klen, msg, mlen, want);
        for (const char *p = sig; *p && !ok;) {
            size_t n = strcspn(p, " ");
            if (n > 3 && strncmp(p, "v1,", 3) == 0)
                ok = ref_b64(p + 3, n - 3, got, sizeof got) == 32 && memcmp(got, want, 32) == 0;
            p += n + strspn(p + n, " ");
        }
    }
    free(msg);
    return ok;
}

static int ref_github(const req_t *q) {
    const char *h = q->f[F_HUB];
    unsigned char got[32], want[32];
    if (!h || strncmp(h, "sha256=", 7) != 0 || strlen(h + 7) != 64 ||
        strspn(h + 7, "0123456789abcdefABCDEF") != 64)
        return 0;
    for (int i = 0; i < 32; i++) {
        char byte[3] = {h[7 + 2 * i], h[8 + 2 * i], 0};
        got[i] = (unsigned char)strtoul(byte, NULL, 16);
    }
    for (size_t k = 0; k < COUNT(g_github); k++) {
        hmac(g_github[k], strlen(g_github[k]), q->body ? q->body : "", q->body_len, want);
        if (memcmp(got, want, 32) == 0)
            return 1;
    }
    return 0;
}

/* The first mode that fails, in auth_check's order, or M_NONE when every one passes. */
static enum mode ref_verdict(const req_t *q, net_t *client, char *text, size_t textlen) {
    *text = '\0';
    if (!ref_client(q, client, text, textlen) || !ref_in(g_allow, COUNT(g_allow), client))
        return M_ADDRESS;
    if (!ref_token(q))
        return M_TOKEN;
    if (!ref_basic(q))
        return M_BASIC;
    if (!ref_standard(q))
        return M_STANDARD;
    if (!ref_github(q))
        return M_GITHUB;
    return M_NONE;
}

/* ---- the checks ---------------------------------------------------------------------------- */

static void fail(const char *what, const req_t *q, const auth_result_t *r) {
    fprintf(stderr, "fuzz_auth: %s\n  verdict: allowed=%d status=%d error=%s want_basic=%d\n"
                    "  detail: %.*s\n  client: %.*s\n",
            what, r->allowed, r->status, r->error ? r->error : "(null)", r->want_basic,
            (int)sizeof r->detail, r->detail, (int)sizeof r->client, r->client);
    for (int i = 0; i < F_CNT; i++)
        if (q->f[i])
            fprintf(stderr, "  %s: '%s'\n", FIELD_NAMES[i], q->f[i]);
    abort();
}

static int printable(const char *s, size_t cap) {
    const char *end = memchr(s, '\0', cap);
    if (!end)
        return 0;
    for (; s < end; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static enum mode mode_of(const char *error) {
    static const struct {
        const char *code;
        enum mode m;
    } codes[] = {
        {"forbidden_source", M_ADDRESS},      {"missing_token", M_TOKEN},
        {"invalid_token", M_TOKEN},           {"missing_credentials", M_BASIC},
        {"invalid_credentials", M_BASIC},     {"missing_signature", M_STANDARD},
        {"invalid_signature", M_STANDARD},    {"stale_signature", M_STANDARD},
    };
    for (size_t i = 0; error && i < COUNT(codes); i++)
        if (strcmp(error, codes[i].code) == 0)
            return codes[i].m;
    return M_NONE;
}

/* A configured secret in text that the request did not carry itself. */
static int leaks(const char *text, size_t textcap, const uint8_t *data, size_t size,
                 const void *secret, size_t n) {
    return n && memmem(text, strnlen(text, textcap), secret, n) && !memmem(data, size, secret, n);
}

static void check_secrets(const auth_result_t *r, const req_t *q, const uint8_t *data,
                          size_t size) {
    const char *texts[2] = {r->detail, r->client};
    size_t caps[2] = {sizeof r->detail, sizeof r->client};
    for (int t = 0; t < 2; t++) {
        for (size_t i = 0; i < COUNT(g_tokens); i++)
            if (leaks(texts[t], caps[t], data, size, g_tokens[i], strlen(g_tokens[i])))
                fail("a token in the verdict", q, r);
        for (size_t i = 0; i < COUNT(g_users); i++) {
            const char *pw = strchr(g_users[i], ':') + 1;
            if (leaks(texts[t], caps[t], data, size, pw, strlen(pw)))
                fail("a password in the verdict", q, r);
        }
        for (size_t i = 0; i < COUNT(g_standard); i++) {
            unsigned char key[256];
            size_t klen = whsec_key(g_standard[i], key);
            const char *b64key = g_standard[i] + 6;
            if (leaks(texts[t], caps[t], data, size, b64key, strlen(b64key)) ||
                leaks(texts[t], caps[t], data, size, key, klen))
                fail("a whsec_ secret in the verdict", q, r);
        }
        for (size_t i = 0; i < COUNT(g_github); i++)
            if (leaks(texts[t], caps[t], data, size, g_github[i], strlen(g_github[i])))
                fail("a GitHub secret in the verdict", q, r);
    }
}

/* Checks one verdict; returns it for the seed self-check. */
static int check(const req_t *q, const uint8_t *data, size_t size) {
    auth_input_t in = input_of(q);
    auth_result_t r;
    memset(&r, 0x5a, sizeof r); /* auth_check must set every field it promises */
    auth_check(g_auth, &in, &r);

    if (!printable(r.detail, sizeof r.detail))
        fail("detail is not NUL-terminated printable ASCII", q, &r);
    if (!printable(r.client, sizeof r.client))
        fail("client is not NUL-terminated printable ASCII", q, &r);
    if (r.allowed) {
        if (r.allowed != 1 || r.status != 0 || r.error || r.want_basic || r.detail[0])
            fail("allowed, but status, error, want_basic or detail set", q, &r);
    } else {
        enum mode m = mode_of(r.error);
        if (m == M_NONE)
            fail("denied with an unknown error code", q, &r);
        if ((r.status != 401 && r.status != 403) || (r.status == 403) != (m == M_ADDRESS))
            fail("denied with a status that does not fit the error", q, &r);
        if (!r.detail[0])
            fail("denied without a detail", q, &r);
        if (r.want_basic && m != M_BASIC)
            fail("WWW-Authenticate asked for outside the basic mode", q, &r);
    }
    check_secrets(&r, q, data, size);

    net_t client;
    char text[64];
    enum mode want = ref_verdict(q, &client, text, sizeof text);
    enum mode got = r.allowed ? M_NONE : mode_of(r.error);
    /* One code covers both signature modes: invalid_signature from the github check. */
    if (got == M_STANDARD && want == M_GITHUB)
        got = M_GITHUB;
    if (got != want) {
        char why[96];
        snprintf(why, sizeof why, "the reference says mode %d fails first, auth_check %d", want,
                 got);
        fail(why, q, &r);
    }
    if (want != M_ADDRESS && strcmp(r.client, text) != 0)
        fail("the client address differs from the reference's", q, &r);
    return r.allowed;
}

/* ---- seeds ----------------------------------------------------------------------------------- */

static const char SEED_BODY[] =
    "{\"timestamp\":1757011079,\"event_type\":\"stack.redeploy.ok\",\"stack\":{\"uid\":"
    "\"stack-550e8400-e29b-41d4-a716\",\"name\":\"my-production-app\"}}\n";

static void b64(const void *p, size_t n, char *out) {
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

static void sw_sig(size_t k, const char *id, const char *ts, const char *body, char *out) {
    unsigned char key[256], mac[32];
    size_t klen = whsec_key(g_standard[k], key);
    size_t n = strlen(id) + strlen(ts) + strlen(body) + 3;
    char *msg = malloc(n);
    if (!msg)
        abort();
    int len = snprintf(msg, n, "%s.%s.%s", id, ts, body);
    hmac(key, klen, msg, (size_t)len, mac);
    free(msg);
    strcpy(out, "v1,");
    b64(mac, sizeof mac, out + 3);
}

static void gh_sig(size_t k, const char *body, int upper, char *out) {
    unsigned char mac[32];
    hmac(g_github[k], strlen(g_github[k]), body, strlen(body), mac);
    strcpy(out, "sha256=");
    for (int i = 0; i < 32; i++)
        sprintf(out + 7 + 2 * i, upper ? "%02X" : "%02x", mac[i]);
}

/* Writes DIR/NAME (the head, a blank line unless body is NULL, the body) and checks that the
 * harness gives it the verdict it was written for. */
static void seed(const char *dir, const char *name, const char *head, const char *body,
                 int want_allowed) {
    char path[1024], buf[8192];
    int n = snprintf(buf, sizeof buf, "%s%s%s", head, body ? "\n" : "", body ? body : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        abort();
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, (size_t)n, f) != (size_t)n || fclose(f) != 0)
        abort();
    req_t q;
    parse_request((const uint8_t *)buf, (size_t)n, &q);
    if (check(&q, (const uint8_t *)buf, (size_t)n) != want_allowed) {
        fprintf(stderr, "fuzz_auth: seed %s: not %s\n", name, want_allowed ? "allowed" : "denied");
        abort();
    }
    req_free(&q);
}

static void write_seeds(const char *dir) {
    char u0[64], u1[64], sw0[64], sw1[64], gh0[80], gh1[80], gh_empty[80], head[2048];
    const char *id = "msg_p5jXN8AQM9LWM0D4loKWxJek", *ts = "1757011079";
    b64(g_users[0], strlen(g_users[0]), u0);
    b64(g_users[1], strlen(g_users[1]), u1);
    sw_sig(0, id, ts, SEED_BODY, sw0);
    sw_sig(1, id, ts, SEED_BODY, sw1);
    gh_sig(0, SEED_BODY, 0, gh0);
    gh_sig(1, SEED_BODY, 1, gh1);
    gh_sig(0, "", 0, gh_empty);

    /* Allowed: a direct client, every mode with its first entry. */
#define SIGNED_BY_0 "wh-id %s\nwh-ts %s\nwh-sig %s\nhub %s\n"
    snprintf(head, sizeof head,
             "now 1757011079\npeer 198.51.100.7\npath %s\nauth Basic %s\n" SIGNED_BY_0,
             g_tokens[0], u0, id, ts, sw0, gh0);
    seed(dir, "allowed-direct.req", head, SEED_BODY, 1);
    /* Allowed: behind two trusted proxies (two X-Forwarded-For headers), the second entry of
     * every list, a wrong and an unknown signature entry before the right one, upper-case hex,
     * lower-case scheme and extra blanks, the clock 299 s ahead of the timestamp. */
    snprintf(head, sizeof head,
             "now 1757011378\npeer 10.1.2.3\nxff 192.0.2.66, 203.0.113.5\nxff 10.9.9.9\n"
             "query %s\nauth basic   %s \nwh-id %s\nwh-ts %s\n"
             "wh-sig v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v2,abc  %s\nhub %s\n",
             g_tokens[1], u1, id, ts, sw1, gh1);
    seed(dir, "allowed-proxied.req", head, SEED_BODY, 1);
    /* Allowed: an IPv6 proxy, bracketed and port forms, empty elements; the client 299 s
     * ahead. */
    snprintf(head, sizeof head,
             "now 1757010780\npeer fd12::1\nxff 192.0.2.1, [2001:db8:1::7]:443, , 10.0.0.1\n"
             "path %s\nquery nope\nauth Basic %s\n" SIGNED_BY_0,
             g_tokens[0], u1, id, ts, sw0, gh1);
    seed(dir, "allowed-ipv6-proxy.req", head, SEED_BODY, 1);
    snprintf(head, sizeof head,
             "peer ::ffff:192.0.2.200\nxff 127.0.0.1\npath %s\nauth Basic %s\n" SIGNED_BY_0,
             g_tokens[1], u0, id, ts, sw1, gh0);
    seed(dir, "allowed-mapped-v4.req", head, SEED_BODY, 1);
    snprintf(head, sizeof head, "peer 127.0.0.1\nxff 203.0.113.9:8080\npath %s\nauth Basic %s\n",
             g_tokens[0], u0);
    {
        char s[64], h2[2048];
        sw_sig(0, id, ts, "", s);
        snprintf(h2, sizeof h2, "%s" SIGNED_BY_0, head, id, ts, s, gh_empty);
        seed(dir, "allowed-empty-body.req", h2, "", 1);
    }

    /* Denied, one mode at a time. */
    snprintf(head, sizeof head, "peer 198.51.100.8\npath %s\n", g_tokens[0]);
    seed(dir, "denied-address.req", head, SEED_BODY, 0);
    snprintf(head, sizeof head, "peer 10.0.0.7\nxff 203.0.113.5, evil\npath %s\n", g_tokens[0]);
    seed(dir, "denied-xff-garbage.req", head, SEED_BODY, 0);
    snprintf(head, sizeof head, "peer 203.0.113.1\npath fuzz-token-0123456789abcdeF\n");
    seed(dir, "denied-token.req", head, SEED_BODY, 0);
    snprintf(head, sizeof head, "peer 203.0.113.1\npath %s\nauth Basic b3BzOndyb25n\n",
             g_tokens[0]);
    seed(dir, "denied-basic.req", head, SEED_BODY, 0);
    snprintf(head, sizeof head,
             "now 1757011380\npeer 203.0.113.1\npath %s\nauth Basic %s\n" SIGNED_BY_0,
             g_tokens[0], u0, id, ts, sw0, gh0);
    seed(dir, "denied-stale.req", head, SEED_BODY, 0);
    snprintf(head, sizeof head,
             "peer 203.0.113.1\npath %s\nauth Basic %s\n" SIGNED_BY_0, g_tokens[0], u0, id, ts,
             sw0, gh_empty);
    seed(dir, "denied-github.req", head, SEED_BODY, 0);
#undef SIGNED_BY_0
}

/* ---- libFuzzer ------------------------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    auth_opts_t o = {.tokens = g_tokens,
                     .tokens_cnt = COUNT(g_tokens),
                     .basic_users = g_users,
                     .basic_users_cnt = COUNT(g_users),
                     .allow_from = g_allow,
                     .allow_from_cnt = COUNT(g_allow),
                     .trusted_proxies = g_proxies,
                     .trusted_proxies_cnt = COUNT(g_proxies),
                     .standard_secrets = g_standard,
                     .standard_secrets_cnt = COUNT(g_standard),
                     .github_secrets = g_github,
                     .github_secrets_cnt = COUNT(g_github),
                     .tolerance_s = TOLERANCE_S};
    char err[256];
    if (!(g_auth = auth_new(&o, err, sizeof err))) {
        fprintf(stderr, "fuzz_auth: auth_new: %s\n", err);
        abort();
    }
    const char *seed_out = getenv("HB_FUZZ_SEED_OUT");
    if (seed_out)
        write_seeds(seed_out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    req_t q;
    parse_request(data, size, &q);
    check(&q, data, size);
    req_free(&q);
    return 0;
}
