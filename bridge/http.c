/* http.c: the webhook listener: what a request to it means, and every answer it gets. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "conn.h"
#include "echo.h"
#include "hbtime.h"
#include "log.h"
#include "replay.h"

#define WH_ID_MAX 255 /* longer webhook-ids are verified but not remembered */

/* Endpoint counters live in chunks that never move, so that the admin listener's thread can
 * read another loop's while that loop adds one (a reload): at most this many names served
 * over the life of the process. */
#define COUNTER_CHUNK 64
#define COUNTER_CHUNKS 256

/* Counters with one writer (the server's loop) and readers on the admin's thread. */
#define CNT_INC(field)                                                                             \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
#define CNT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct http_group {
    size_t loops;
    http_server_t **members; /* by order of http_new; NULL once freed */
    size_t count;
    replay_t *replay;
    conn_cap_t *cap;
    char *listen_at; /* "HOST:PORT" with the first member's port, for the others */
};

struct http_server {
    struct event_base *base;
    conn_t *conns; /* the HTTP server: connections, framing, limits, TLS */
    size_t max_body;
    const endpoint_set_t *endpoints; /* borrowed (http_set_endpoints); NULL: none yet */
    size_t *ep_slot;                 /* the counter slot of each endpoint of the set */
    uint64_t auth_failures;          /* requests denied by auth (401 or 403) */
    replay_t *replay;                /* Standard Webhooks ids answered 202; the group's */
    replay_t *own_replay;            /* without a group */
    http_group_t *group;             /* NULL: alone */
    size_t member;                   /* its index in group->members */
    http_webhook_cb cb;
    void *arg;
    /* Answer counters by slot: HTTP_EP_HEALTHZ, HTTP_EP_OTHER, then one per endpoint name ever
     * served (a reload keeps the counters of the endpoints it drops; slots never move). */
    uint64_t fixed_answers[HTTP_EP__FIXED][500]; /* by status - 100 */
    struct http_counter *ep_chunks[COUNTER_CHUNKS];
    size_t ep_counter_cnt; /* release-stored after the counter is made */
    uint64_t rid_prefix, rid_next; /* request ids: a random prefix from start, a counter */
    http_req_t *pool;              /* answered requests, kept for the next ones */
};

struct http_counter {
    char name[CFG_ENDPOINT_NAME_MAX + 1];
    uint64_t answers[500]; /* by status - 100 */
};

struct http_req {
    conn_req_t *cr;
    http_server_t *srv;
    http_req_t *next_free;
    size_t slot; /* its endpoint's counter slot (the name too, for logs) */
    int64_t replay_window_s; /* > 0: remember wh_id with the answered id */
    char id[HTTP_REQUEST_ID_LEN + 1];
    char wh_id[WH_ID_MAX + 1];
    char extra[256]; /* header lines every answer to it carries */
    size_t extra_len;
};

static const char JSON[] = "application/json";

static struct http_counter *ep_counter(const http_server_t *s, size_t slot) {
    size_t i = slot - HTTP_EP__FIXED;
    return &s->ep_chunks[i / COUNTER_CHUNK][i % COUNTER_CHUNK];
}

/* The answer counters of a slot (HTTP_EP_HEALTHZ, HTTP_EP_OTHER, or an endpoint's). */
static uint64_t *slot_answers(http_server_t *s, size_t slot) {
    return slot < HTTP_EP__FIXED ? s->fixed_answers[slot] : ep_counter(s, slot)->answers;
}

/* Every answer of this listener goes through here, so the counters see each one once. */
static void send_counted(http_server_t *s, size_t slot, conn_req_t *cr, int status,
                         const char *extra, const char *json, size_t len) {
    if (status >= 100 && status <= 599)
        CNT_INC(slot_answers(s, slot)[status - 100]);
    conn_reply(cr, status, JSON, extra, json, len);
}

void http_format_error(buf_t *b, const char *code, const char *detail) {
    buf_puts(b, "{\"error\":");
    buf_json_str(b, code, strlen(code));
    buf_puts(b, ",\"detail\":");
    buf_json_str(b, detail, strlen(detail));
    buf_puts(b, "}\n");
}

/* Masks every endpoint's secrets in client text about to be quoted (http.h). */
static void redact(const http_server_t *s, char *text) {
    for (size_t i = 0; i < endpoint_set_count(s->endpoints); i++)
        auth_redact(endpoint_auth(endpoint_set_get(s->endpoints, i)), text);
}

static void send_error(http_server_t *s, size_t slot, conn_req_t *cr, int status,
                       const char *code, const char *detail, const char *extra) {
    buf_t b = {0};
    http_format_error(&b, code, detail);
    if (buf_ok(&b))
        send_counted(s, slot, cr, status, extra, b.data, b.len);
    else
        send_counted(s, slot, cr, 503, extra,
                     "{\"error\":\"nomem\",\"detail\":\"out of memory\"}\n", 44);
    buf_free(&b);
}

const char *http_req_endpoint(const http_req_t *r) {
    return ep_counter(r->srv, r->slot)->name;
}

static void req_release(http_req_t *r) {
    http_server_t *s = r->srv;
    r->next_free = s->pool;
    s->pool = r;
}

void http_reply_accepted(http_req_t *r, const char *id) {
    char body[MSG_ID_LEN + 16]; /* {"id":"<id>"} and a newline */
    size_t idl = strnlen(id, MSG_ID_LEN), n = 7 + idl + 3;
    memcpy(body, "{\"id\":\"", 7);
    memcpy(body + 7, id, idl);
    memcpy(body + 7 + idl, "\"}\n", 3);
    log_debug("http", "request accepted", "endpoint", http_req_endpoint(r), "request_id", r->id,
              "peer", http_req_peer(r), "id", id, NULL);
    if (r->replay_window_s > 0 && r->wh_id[0])
        replay_store(r->srv->replay, http_req_endpoint(r), r->wh_id, id,
                     hbtime_now_ms() / 1000 + r->replay_window_s);
    send_counted(r->srv, r->slot, r->cr, 202, r->extra, body, n);
    req_release(r);
}

/* Answers an error without logging it, and releases r. */
static void finish_error(http_req_t *r, int status, const char *code, const char *detail,
                         int retry_after_s) {
    if (retry_after_s > 0 && r->extra_len + 32 < sizeof r->extra)
        r->extra_len += (size_t)snprintf(r->extra + r->extra_len, sizeof r->extra - r->extra_len,
                                         "Retry-After: %d\r\n", retry_after_s);
    send_error(r->srv, r->slot, r->cr, status, code, detail, r->extra);
    req_release(r);
}

void http_reply_error(http_req_t *r, int status, const char *code, const char *detail,
                      int retry_after_s) {
    char safe[600];
    snprintf(safe, sizeof safe, "%s", detail);
    redact(r->srv, safe);
    log_info("http", "request refused", "endpoint", http_req_endpoint(r), "request_id", r->id,
             "peer", http_req_peer(r), "#status", (long long)status, "error", code, "detail",
             safe, NULL);
    finish_error(r, status, code, safe, retry_after_s);
}

const char *http_req_peer(const http_req_t *r) { return conn_req_peer(r->cr); }
const char *http_req_id(const http_req_t *r) { return r->id; }

/* Adds a header line to every answer r gets. */
static void req_add_header(http_req_t *r, const char *name, const char *value) {
    size_t nl = strlen(name), vl = strlen(value), n = nl + 2 + vl + 2;
    if (n >= sizeof r->extra - r->extra_len)
        return; /* no room: the line is left out whole */
    char *p = r->extra + r->extra_len;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, value, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 3); /* with the NUL */
    r->extra_len += n;
}

/* "application/json", "application/json; charset=utf-8" and "application/<x>+json" are JSON. */
static int is_json_type(const char *ct) {
    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return 1;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Refuses a request that reached no endpoint (framing, 404, or 405 on /healthz). */
static void refuse(http_server_t *s, size_t slot, conn_req_t *cr, int status, const char *code,
                   const char *detail, const char *extra) {
    char safe[600];
    snprintf(safe, sizeof safe, "%s", detail);
    redact(s, safe);
    log_info("http", "request refused", "peer", conn_req_peer(cr), "#status", (long long)status,
             "error", code, "detail", safe, NULL);
    send_error(s, slot, cr, status, code, safe, extra);
}

/* Every X-Forwarded-For field, joined with ", " in arrival order (RFC 9110 5.3), so the
 * right-most hop is the right-most entry. NULL when there is none. Caller frees. */
static char *forwarded_for(const conn_req_t *cr) {
    buf_t b = {0};
    for (size_t i = 0; i < conn_req_field_count(cr); i++) {
        const char *name, *value;
        conn_req_field(cr, i, &name, &value);
        if (strcasecmp(name, "X-Forwarded-For") != 0)
            continue;
        if (b.len)
            buf_puts(&b, ", ");
        buf_puts(&b, value);
    }
    if (!b.len || !buf_ok(&b)) {
        buf_free(&b);
        return NULL;
    }
    size_t n;
    return buf_steal(&b, &n);
}

/* The first "token" parameter of the query, decoded into out; its length, 0 when absent, -1
 * when malformed. */
static long query_token(const char *q, char *out, size_t cap) {
    while (q && *q) {
        size_t n = strcspn(q, "&;");
        const char *eq = memchr(q, '=', n);
        char name[8];
        long nl = h1_pct_decode(q, eq ? (size_t)(eq - q) : n, 1, name, sizeof name);
        if (eq && nl == 5 && memcmp(name, "token", 5) == 0) {
            long vl = h1_pct_decode(eq + 1, n - (size_t)(eq + 1 - q), 1, out, cap);
            return vl == 0 ? -1 : vl;
        }
        q += n;
        if (*q)
            q++;
    }
    return 0;
}

/* Runs the endpoint's access-control check; 0 when allowed, else r has been answered (and
 * released). */
static int check_auth(http_req_t *r, const auth_t *auth, const char *path_token,
                      const char *body, size_t len) {
    conn_req_t *cr = r->cr;
    /* A token that cannot be decoded is still a token given: one NUL byte, which no configured
     * token holds, so it is refused as invalid rather than as missing. */
    char ptok[512], qtok[512];
    long pl = 0, ql = query_token(conn_req_query(cr), qtok, sizeof qtok);
    if (path_token &&
        (pl = h1_pct_decode(path_token, strlen(path_token), 0, ptok, sizeof ptok)) <= 0)
        ptok[0] = '\0', pl = 1;
    if (ql < 0)
        qtok[0] = '\0', ql = 1;
    char *xff = forwarded_for(cr);
    auth_input_t in = {
        .path_token = path_token ? ptok : NULL,
        .path_token_len = (size_t)pl,
        .query_token = ql ? qtok : NULL,
        .query_token_len = (size_t)ql,
        .authorization = conn_req_header(cr, "Authorization"),
        .peer = conn_req_peer_addr(cr),
        .forwarded_for = xff,
        .wh_id = conn_req_header(cr, "webhook-id"),
        .wh_timestamp = conn_req_header(cr, "webhook-timestamp"),
        .wh_signature = conn_req_header(cr, "webhook-signature"),
        .hub_signature = conn_req_header(cr, "X-Hub-Signature-256"),
        .body = body,
        .body_len = len,
        .now_s = hbtime_now_ms() / 1000,
    };
    auth_result_t v;
    auth_check(auth, &in, &v);
    free(xff);
    if (v.allowed)
        return 0;
    CNT_INC(r->srv->auth_failures);
    redact(r->srv, v.detail);
    redact(r->srv, v.client);
    /* Only the verdict is logged: never the token, the credentials or a signature. */
    log_warn("http", "request denied by access control", "endpoint", http_req_endpoint(r),
             "request_id", r->id, "peer", http_req_peer(r), "client", v.client, "#status",
             (long long)v.status, "error", v.error, "detail", v.detail, NULL);
    if (v.want_basic)
        req_add_header(r, "WWW-Authenticate", "Basic realm=\"hookbridge\", charset=\"UTF-8\"");
    finish_error(r, v.status, v.error, v.detail, 0);
    return -1;
}

/* 32 lowercase hex characters: the process's random prefix, then a counter. Unique within
 * the process by the counter, across restarts by the prefix (2^-64 per pair of processes). */
static void next_request_id(http_server_t *s, char out[HTTP_REQUEST_ID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    uint64_t v[2] = {s->rid_prefix, s->rid_next++};
    for (int half = 0; half < 2; half++)
        for (int i = 0; i < 16; i++)
            out[half * 16 + i] = hex[(v[half] >> (60 - 4 * i)) & 0xf];
    out[HTTP_REQUEST_ID_LEN] = '\0';
}

/* The random half of the request ids. getrandom() may refuse only before the kernel's pool is
 * ready (early boot): the clock and pid then still keep two runs apart. */
static void request_id_init(http_server_t *s) {
    if (getrandom(&s->rid_prefix, sizeof s->rid_prefix, GRND_NONBLOCK) !=
        (ssize_t)sizeof s->rid_prefix)
        s->rid_prefix = (uint64_t)hbtime_now_ms() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
}

static http_req_t *req_take(http_server_t *s) {
    http_req_t *r = s->pool;
    if (r)
        s->pool = r->next_free;
    else if (!(r = malloc(sizeof *r)))
        return NULL;
    r->srv = s;
    r->replay_window_s = 0;
    r->wh_id[0] = '\0';
    r->extra[0] = '\0';
    r->extra_len = 0;
    return r;
}

static void on_request(void *arg, conn_req_t *cr) {
    http_server_t *s = arg;
    const h1_error_t *ferr = conn_req_error(cr);
    char detail[512];

    /* Refused by the framing, or too many header fields: before anything else is looked at
     * (counted under "other": no endpoint yet). */
    if (ferr) {
        refuse(s, HTTP_EP_OTHER, cr, ferr->status, ferr->code, ferr->detail, NULL);
        return;
    }
    const char *path = conn_req_path(cr);
    h1_method_t method = conn_req_method(cr);
    if (strcmp(path, "/healthz") == 0) {
        if (method != H1_GET && method != H1_HEAD) {
            refuse(s, HTTP_EP_HEALTHZ, cr, 405, "method_not_allowed", "use GET on /healthz",
                   "Allow: GET, HEAD\r\n");
            return;
        }
        send_counted(s, HTTP_EP_HEALTHZ, cr, 200, NULL, "{\"status\":\"ok\"}\n", 16);
        return;
    }
    const char *path_token, *under;
    int idx = endpoint_set_match(s->endpoints, path, &path_token, &under);
    if (idx < 0) {
        /* The path is never quoted: a mistyped URL may hold the real token (http.h). */
        if (under)
            snprintf(detail, sizeof detail, "no endpoint at %s/...", under);
        else
            snprintf(detail, sizeof detail, "no endpoint at this path");
        refuse(s, HTTP_EP_OTHER, cr, 404, "not_found", detail, NULL);
        return;
    }
    const endpoint_t *ep = endpoint_set_get(s->endpoints, (size_t)idx);
    http_req_t *r = req_take(s);
    if (!r) {
        send_error(s, s->ep_slot[idx], cr, 503, "nomem", "out of memory", "Retry-After: 1\r\n");
        return;
    }
    r->cr = cr;
    r->slot = s->ep_slot[idx];
    next_request_id(s, r->id);
    /* Set now, so that every answer to this request carries it, errors included. */
    req_add_header(r, "X-Request-Id", r->id);
    if (method != H1_POST) {
        req_add_header(r, "Allow", "POST");
        http_reply_error(r, 405, "method_not_allowed", "webhooks are delivered with POST", 0);
        return;
    }
    size_t len;
    const char *body = conn_req_body(cr, &len);
    log_debug("http", "request received", "endpoint", endpoint_name(ep), "request_id", r->id,
              "peer", http_req_peer(r), "#bytes", (long long)len, "#loop", (long long)s->member,
              NULL);
    /* Access control before anything else about the request: a stranger learns nothing from
     * our content-type or size answers. */
    const auth_t *auth = endpoint_auth(ep);
    if (auth && check_auth(r, auth, path_token, body, len) != 0)
        return;
    int64_t window = auth_replay_window_s(auth);
    const char *wid = window > 0 ? conn_req_header(cr, "webhook-id") : NULL;
    if (wid && strlen(wid) <= WH_ID_MAX) {
        char id[MSG_ID_LEN + 1];
        if (replay_lookup(s->replay, endpoint_name(ep), wid, hbtime_now_ms() / 1000, id)) {
            log_info("http", "webhook-id seen before: answered with its envelope id, not "
                     "published again", "endpoint", endpoint_name(ep), "request_id", r->id,
                     "peer", http_req_peer(r), "id", id, NULL);
            http_reply_accepted(r, id);
            return;
        }
        r->replay_window_s = window;
        snprintf(r->wh_id, sizeof r->wh_id, "%s", wid);
    }
    const char *ct = conn_req_header(cr, "Content-Type");
    if (!is_json_type(ct)) {
        char shown[108];
        snprintf(detail, sizeof detail, "content type must be application/json, got %s",
                 ct ? echo_text(ct, strlen(ct), 100, shown, sizeof shown) : "none");
        http_reply_error(r, 415, "unsupported_media_type", detail, 0);
        return;
    }
    if (len > s->max_body) {
        snprintf(detail, sizeof detail, "body is %zu bytes, the limit is %zu", len, s->max_body);
        http_reply_error(r, 413, "body_too_large", detail, 0);
        return;
    }
    if (len == 0) {
        http_reply_error(r, 400, "empty_body", "the body is empty; expected a JSON object", 0);
        return;
    }
    s->cb(s->arg, r, ep, body, len);
}

/* The counter slot of an endpoint name, added when new. (size_t)-1 when out of memory. */
static size_t counter_slot(http_server_t *s, const char *name) {
    size_t n = s->ep_counter_cnt;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ep_counter(s, HTTP_EP__FIXED + i)->name, name) == 0)
            return HTTP_EP__FIXED + i;
    if (n == COUNTER_CHUNK * COUNTER_CHUNKS)
        return (size_t)-1;
    struct http_counter **chunk = &s->ep_chunks[n / COUNTER_CHUNK];
    if (!*chunk) {
        struct http_counter *fresh = calloc(COUNTER_CHUNK, sizeof *fresh);
        if (!fresh)
            return (size_t)-1;
        __atomic_store_n(chunk, fresh, __ATOMIC_RELEASE);
    }
    struct http_counter *c = ep_counter(s, HTTP_EP__FIXED + n);
    snprintf(c->name, sizeof c->name, "%s", name);
    __atomic_store_n(&s->ep_counter_cnt, n + 1, __ATOMIC_RELEASE); /* readers see c whole */
    return HTTP_EP__FIXED + n;
}

int http_set_endpoints(http_server_t *s, const endpoint_set_t *set) {
    size_t n = endpoint_set_count(set);
    size_t *slots = calloc(n ? n : 1, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((slots[i] = counter_slot(s, endpoint_name(endpoint_set_get(set, i)))) ==
            (size_t)-1) {
            free(slots);
            return -1;
        }
    free(s->ep_slot);
    s->ep_slot = slots;
    s->endpoints = set;
    return 0;
}

http_group_t *http_group_new(const hb_config_t *cfg, size_t loops) {
    http_group_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->loops = loops ? loops : 1;
    if (!(g->members = calloc(g->loops, sizeof *g->members)) ||
        !(g->replay = replay_new((size_t)cfg->http_replay_cache_size)) ||
        !(g->cap = conn_cap_new((uint64_t)cfg->http_max_connections))) {
        http_group_free(g);
        return NULL;
    }
    return g;
}

void http_group_free(http_group_t *g) {
    if (!g)
        return;
    replay_free(g->replay);
    conn_cap_free(g->cap);
    free(g->listen_at);
    free(g->members);
    free(g);
}

http_server_t *http_new(struct event_base *base, const hb_config_t *cfg, http_group_t *group,
                        http_webhook_cb cb, void *arg, char *errstr, size_t errlen) {
    http_server_t *s = calloc(1, sizeof *s);
    if (!s || (group && group->count == group->loops)) {
        snprintf(errstr, errlen, s ? "the HTTP group is full" : "out of memory");
        goto fail;
    }
    if (group) {
        s->replay = group->replay;
    } else if (!(s->replay = s->own_replay =
                     replay_new((size_t)cfg->http_replay_cache_size))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    request_id_init(s);
    s->base = base;
    s->cb = cb;
    s->arg = arg;
    s->max_body = (size_t)cfg->http_max_body_bytes;
    /* The first server of a group binds http.listen (and picks the port, if 0); the others
     * bind the port it got. Several loops share it with SO_REUSEPORT. */
    const char *listen = group && group->count > 0 ? group->listen_at : cfg->http_listen;
    int reuse = CONN_REUSEPORT_NONE;
    if (group && group->loops > 1)
        reuse = group->count == 0 ? CONN_REUSEPORT_FIRST : CONN_REUSEPORT_JOIN;
    conn_opts_t o = {
        .component = "http",
        .listen = listen,
        .reuseport = reuse,
        .cap = group ? group->cap : NULL,
        .max_connections = (uint64_t)cfg->http_max_connections,
        .request_timeout_ms = cfg->http_request_timeout_ms,
        .idle_timeout_ms = cfg->http_idle_timeout_ms,
        .max_header_bytes = (size_t)cfg->http_max_header_bytes,
        .max_headers = (size_t)cfg->http_max_headers,
        .max_body = (uint64_t)cfg->http_max_body_bytes,
    };
    if (conn_tls_from_config(cfg, &o.tls, errstr, errlen) != 0)
        goto fail;
    if (!(s->conns = conn_new(base, &o, on_request, s, errstr, errlen)))
        goto fail;
    char addr[320];
    snprintf(addr, sizeof addr, "%.*s:%d", (int)(strrchr(listen, ':') - listen), listen,
             conn_port(s->conns));
    if (group) {
        if (group->count == 0 && !(group->listen_at = strdup(addr))) {
            snprintf(errstr, errlen, "out of memory");
            goto fail;
        }
        s->group = group;
        s->member = group->count;
        group->members[group->count++] = s;
    }
    if (!group || s->member == 0)
        log_info("http", "listening", "addr", addr, "tls",
                 conn_tls_enabled(s->conns) ? "on" : "off", "#loops",
                 (long long)(group ? group->loops : 1), NULL);
    return s;
fail:
    http_free(s);
    return NULL;
}

int http_port(const http_server_t *s) { return conn_port(s->conns); }

/* The servers a read covers: the group's, or s alone. */
#define FOR_MEMBERS(s, m)                                                                          \
    for (size_t i_ = 0, n_ = (s)->group ? (s)->group->count : 1; i_ < n_; i_++)                   \
        for (const http_server_t *m = (s)->group ? (s)->group->members[i_] : (s); m; m = NULL)

uint64_t http_auth_failures(const http_server_t *s) {
    uint64_t n = 0;
    if (s)
        FOR_MEMBERS(s, m)
            n += CNT_GET(m->auth_failures);
    return n;
}

uint64_t http_replay_hits(const http_server_t *s) { return s ? replay_hits(s->replay) : 0; }

void http_conn_stats(const http_server_t *s, conn_stats_t *out) {
    conn_get_stats(s ? s->conns : NULL, out);
    if (!s || !s->group)
        return;
    out->open = out->deadline_cuts = out->tls_failures = 0; /* the cap's fields are shared */
    FOR_MEMBERS(s, m) {
        conn_stats_t one;
        conn_get_stats(m->conns, &one);
        out->open += one.open;
        out->deadline_cuts += one.deadline_cuts;
        out->tls_failures += one.tls_failures;
    }
}

struct conn *http_conns(const http_server_t *s) { return s ? s->conns : NULL; }

size_t http_counter_count(const http_server_t *s) { return HTTP_EP__FIXED + s->ep_counter_cnt; }

const char *http_counter_label(const http_server_t *s, size_t slot) {
    if (slot == HTTP_EP_HEALTHZ)
        return "healthz";
    if (slot == HTTP_EP_OTHER)
        return "other";
    return slot < http_counter_count(s) ? ep_counter(s, slot)->name : NULL;
}

uint64_t http_answer_count(const http_server_t *s, size_t slot, int status) {
    if (status < 100 || status > 599)
        return 0;
    uint64_t n = 0;
    FOR_MEMBERS(s, m) {
        /* Another loop may not have taken a reload's endpoints yet: it has fewer slots. */
        if (slot >= HTTP_EP__FIXED + __atomic_load_n(&m->ep_counter_cnt, __ATOMIC_ACQUIRE))
            continue;
        n += slot < HTTP_EP__FIXED ? CNT_GET(m->fixed_answers[slot][status - 100])
                                   : CNT_GET(ep_counter(m, slot)->answers[status - 100]);
    }
    return n;
}

void http_when_flushed(http_server_t *s, void (*cb)(void *arg), void *arg) {
    conn_when_flushed(s->conns, cb, arg);
}

void http_set_stopping(http_server_t *s) { conn_set_stopping(s->conns); }

void http_stop_accepting(http_server_t *s) {
    conn_stop_accepting(s->conns);
    conn_close_idle(s->conns);
}

size_t http_open_connections(const http_server_t *s) { return conn_open_count(s->conns); }

void http_free(http_server_t *s) {
    if (!s)
        return;
    conn_free(s->conns);
    replay_free(s->own_replay);
    if (s->group)
        s->group->members[s->member] = NULL;
    while (s->pool) {
        http_req_t *r = s->pool;
        s->pool = r->next_free;
        free(r);
    }
    free(s->ep_slot);
    for (size_t i = 0; i < COUNTER_CHUNKS; i++)
        free(s->ep_chunks[i]);
    free(s);
}
