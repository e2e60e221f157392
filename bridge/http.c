/* http.c: the webhook listener on libevent's evhttp. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <unistd.h>

#include "auth.h"
#include "conn.h"
#include "buf.h"
#include "echo.h"
#include "hbtime.h"
#include "log.h"

struct http_server {
    struct event_base *base;
    struct evhttp *evh;
    int port;
    struct evhttp_bound_socket *bound;
    conn_t *conns; /* connection limits and TLS (conn.h) */
    size_t max_body;
    const endpoint_set_t *endpoints; /* borrowed (http_set_endpoints); NULL: none yet */
    size_t *ep_slot;                 /* the counter slot of each endpoint of the set */
    uint64_t auth_failures;  /* requests denied by auth (401 or 403) */
    http_webhook_cb cb;
    void *arg;
    /* Answer counters by slot: HTTP_EP_HEALTHZ, HTTP_EP_OTHER, then one per endpoint name ever
     * served (a reload keeps the counters of the endpoints it drops; slots never move). */
    uint64_t fixed_answers[HTTP_EP__FIXED][500]; /* by status - 100 */
    struct http_counter *ep_counters;
    size_t ep_counter_cnt;
    uint64_t rid_prefix, rid_next; /* request ids: a random prefix from start, a counter */
    uint64_t replies_unsent; /* answers handed to evhttp and not yet written out */
    void (*flushed)(void *);
    void *flushed_arg;
};

struct http_counter {
    char name[CFG_ENDPOINT_NAME_MAX + 1];
    uint64_t answers[500]; /* by status - 100 */
};

struct http_req {
    struct evhttp_request *ev;
    http_server_t *srv;
    size_t slot; /* its endpoint's counter slot (the name too, for logs) */
    char id[HTTP_REQUEST_ID_LEN + 1];
    char peer[64];
};

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

void http_send_json(struct evhttp_request *req, int status, const char *json, size_t len) {
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Content-Type");
    evhttp_add_header(h, "Content-Type", "application/json");
    if (out)
        evbuffer_add(out, json, len);
    evhttp_send_reply(req, status, reason_phrase(status), out);
    if (out)
        evbuffer_free(out);
}

static void on_reply_sent(struct evhttp_request *req, void *arg) {
    (void)req;
    http_server_t *s = arg;
    s->replies_unsent--;
    if (s->replies_unsent == 0 && s->flushed) {
        void (*cb)(void *) = s->flushed;
        s->flushed = NULL;
        cb(s->flushed_arg);
    }
}

/* The answer counters of a slot (HTTP_EP_HEALTHZ, HTTP_EP_OTHER, or an endpoint's). */
static uint64_t *slot_answers(http_server_t *s, size_t slot) {
    return slot < HTTP_EP__FIXED ? s->fixed_answers[slot]
                                 : s->ep_counters[slot - HTTP_EP__FIXED].answers;
}

/* Every answer of this listener goes through here, so the counters see each one once. */
static void send_counted(http_server_t *s, size_t slot, struct evhttp_request *req, int status,
                         const char *json, size_t len) {
    if (status >= 100 && status <= 599)
        slot_answers(s, slot)[status - 100]++;
    /* Counted until the answer has left for the socket, so a stop can wait for it. */
    s->replies_unsent++;
    evhttp_request_set_on_complete_cb(req, on_reply_sent, s);
    http_send_json(req, status, json, len);
}

void http_format_error(buf_t *b, const char *code, const char *detail) {
    buf_puts(b, "{\"error\":");
    buf_json_str(b, code, strlen(code));
    buf_puts(b, ",\"detail\":");
    buf_json_str(b, detail, strlen(detail));
    buf_puts(b, "}\n");
}

static void send_error(http_server_t *s, size_t slot, struct evhttp_request *req, int status,
                       const char *code, const char *detail, int retry_after_s) {
    buf_t b = {0};
    http_format_error(&b, code, detail);
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
    }
    if (buf_ok(&b))
        send_counted(s, slot, req, status, b.data, b.len);
    else
        send_counted(s, slot, req, 503, "{\"error\":\"nomem\",\"detail\":\"out of memory\"}\n",
                     44);
    buf_free(&b);
}

const char *http_req_endpoint(const http_req_t *r) {
    return r->srv->ep_counters[r->slot - HTTP_EP__FIXED].name;
}

void http_reply_accepted(http_req_t *r, const char *id) {
    char body[128];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\"}\n", id);
    log_debug("http", "request accepted", "endpoint", http_req_endpoint(r), "request_id", r->id,
              "peer", r->peer, "id", id, NULL);
    send_counted(r->srv, r->slot, r->ev, 202, body, (size_t)n);
    free(r);
}

/* Answers an error without logging it, and frees r. */
static void finish_error(http_req_t *r, int status, const char *code, const char *detail,
                         int retry_after_s) {
    send_error(r->srv, r->slot, r->ev, status, code, detail, retry_after_s);
    free(r);
}

void http_reply_error(http_req_t *r, int status, const char *code, const char *detail,
                      int retry_after_s) {
    log_info("http", "request refused", "endpoint", http_req_endpoint(r), "request_id", r->id,
             "peer", r->peer, "#status", (long long)status, "error", code, "detail", detail,
             NULL);
    finish_error(r, status, code, detail, retry_after_s);
}

const char *http_req_peer(const http_req_t *r) { return r->peer; }
const char *http_req_id(const http_req_t *r) { return r->id; }

/* The client's address, "ip:port" for logs or, without with_port, the bare ip for auth. */
static void peer_of(struct evhttp_request *req, char *out, size_t len, int with_port) {
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (c)
        evhttp_connection_get_peer(c, &addr, &port);
    if (with_port)
        snprintf(out, len, "%s:%u", addr ? addr : "?", (unsigned)port);
    else
        snprintf(out, len, "%s", addr ? addr : "");
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

/* Refuses a request that reached no endpoint (404, or 405 on /healthz). */
static void refuse(http_server_t *s, size_t slot, struct evhttp_request *req, int status,
                   const char *code, const char *detail) {
    char peer[64];
    peer_of(req, peer, sizeof peer, 1);
    log_info("http", "request refused", "peer", peer, "#status", (long long)status, "error", code,
             "detail", detail, NULL);
    send_error(s, slot, req, status, code, detail, 0);
}

/* Every X-Forwarded-For header, joined with ", " in arrival order (RFC 7230 3.2.2), so the
 * right-most hop is the right-most entry. NULL when there is none. Caller frees. */
static char *forwarded_for(struct evkeyvalq *headers) {
    buf_t b = {0};
    struct evkeyval *h;
    TAILQ_FOREACH(h, headers, next) {
        if (strcasecmp(h->key, "X-Forwarded-For") != 0)
            continue;
        if (b.len)
            buf_puts(&b, ", ");
        buf_puts(&b, h->value);
    }
    if (!b.len || !buf_ok(&b)) {
        buf_free(&b);
        return NULL;
    }
    char *out = strndup(b.data, b.len);
    buf_free(&b);
    return out;
}

/* Runs the endpoint's access-control check; 0 when allowed, else r has been answered (and
 * freed). */
static int check_auth(http_req_t *r, const auth_t *auth, const char *path_token,
                      const char *body, size_t len) {
    struct evhttp_request *req = r->ev;
    struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (query)
        evhttp_parse_query_str(query, &params); /* a malformed query just has no token */
    char peer[INET6_ADDRSTRLEN + 8];
    peer_of(req, peer, sizeof peer, 0);
    char *xff = forwarded_for(hdrs);
    auth_input_t in = {
        .path_token = path_token,
        .query_token = evhttp_find_header(&params, "token"),
        .authorization = evhttp_find_header(hdrs, "Authorization"),
        .peer = peer,
        .forwarded_for = xff,
        .wh_id = evhttp_find_header(hdrs, "webhook-id"),
        .wh_timestamp = evhttp_find_header(hdrs, "webhook-timestamp"),
        .wh_signature = evhttp_find_header(hdrs, "webhook-signature"),
        .hub_signature = evhttp_find_header(hdrs, "X-Hub-Signature-256"),
        .body = body,
        .body_len = len,
        .now_s = hbtime_now_ms() / 1000,
    };
    auth_result_t v;
    auth_check(auth, &in, &v);
    free(xff);
    evhttp_clear_headers(&params);
    if (v.allowed)
        return 0;
    r->srv->auth_failures++;
    /* Only the verdict is logged: never the token, the credentials or a signature. */
    log_warn("http", "request denied by access control", "endpoint", http_req_endpoint(r),
             "request_id", r->id, "peer", r->peer, "client", v.client, "#status",
             (long long)v.status, "error", v.error, "detail", v.detail, NULL);
    if (v.want_basic)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"hookbridge\", charset=\"UTF-8\"");
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

static void on_request(struct evhttp_request *req, void *arg) {
    http_server_t *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    char detail[512];

    /* The request has arrived whole: its deadline is over (conn.h). Too many header fields are
     * refused before anything else is looked at (counted under "other": no endpoint yet). */
    if (conn_request_arrived(s->conns, req, detail, sizeof detail) != 0) {
        refuse(s, HTTP_EP_OTHER, req, 431, "too_many_headers", detail);
        return;
    }
    if (!path || !*path)
        path = "/";
    if (strcmp(path, "/healthz") == 0) {
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
            refuse(s, HTTP_EP_HEALTHZ, req, 405, "method_not_allowed", "use GET on /healthz");
            return;
        }
        send_counted(s, HTTP_EP_HEALTHZ, req, 200, "{\"status\":\"ok\"}\n", 16);
        return;
    }
    const char *path_token, *under;
    int idx = endpoint_set_match(s->endpoints, path, &path_token, &under);
    if (idx < 0) {
        /* What follows an endpoint path may be a (wrong or mistyped) token: keep it out of the
         * answer and the log. */
        char shown[208];
        if (under)
            snprintf(detail, sizeof detail, "no endpoint at %s/...",
                     echo_text(under, strlen(under), 200, shown, sizeof shown));
        else
            snprintf(detail, sizeof detail, "no endpoint at %s",
                     echo_text(path, strlen(path), 200, shown, sizeof shown));
        refuse(s, HTTP_EP_OTHER, req, 404, "not_found", detail);
        return;
    }
    const endpoint_t *ep = endpoint_set_get(s->endpoints, (size_t)idx);
    http_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        send_error(s, s->ep_slot[idx], req, 503, "nomem", "out of memory", 1);
        return;
    }
    r->ev = req;
    r->srv = s;
    r->slot = s->ep_slot[idx];
    next_request_id(s, r->id);
    peer_of(req, r->peer, sizeof r->peer, 1);
    /* Set now, so that every answer to this request carries it, errors included. */
    evhttp_add_header(evhttp_request_get_output_headers(req), "X-Request-Id", r->id);
    if (method != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        http_reply_error(r, 405, "method_not_allowed", "webhooks are delivered with POST", 0);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    log_debug("http", "request received", "endpoint", endpoint_name(ep), "request_id", r->id,
              "peer", r->peer, "#bytes", (long long)len, NULL);
    /* Access control before anything else about the request: a stranger learns nothing from
     * our content-type or size answers. The body is already read (HMAC needs it); one
     * contiguous view, without a copy when it already is one chunk. */
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const auth_t *auth = endpoint_auth(ep);
    if (auth && check_auth(r, auth, path_token, body, len) != 0)
        return;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
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
    for (size_t i = 0; i < s->ep_counter_cnt; i++)
        if (strcmp(s->ep_counters[i].name, name) == 0)
            return HTTP_EP__FIXED + i;
    struct http_counter *c = realloc(s->ep_counters, (s->ep_counter_cnt + 1) * sizeof *c);
    if (!c)
        return (size_t)-1;
    s->ep_counters = c;
    c = &c[s->ep_counter_cnt];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return HTTP_EP__FIXED + s->ep_counter_cnt++;
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

int http_listen_on(struct evhttp *evh, struct event_base *base, const char *listen,
                   struct evhttp_bound_socket **bound_out, char *errstr, size_t errlen) {
    /* Split HOST:PORT or [V6]:PORT ourselves: evutil_parse_sockaddr_port refuses port 0. */
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (!colon || hl == 0 || hl >= sizeof host || !colon[1]) {
        snprintf(errstr, errlen, "cannot parse listen address '%s' (want HOST:PORT or [V6]:PORT)",
                 listen);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_flags = EVUTIL_AI_PASSIVE};
    struct evutil_addrinfo *ai = NULL;
    int gai = evutil_getaddrinfo(host, colon + 1, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(errstr, errlen, "cannot resolve listen address '%s': %s", listen,
                 evutil_gai_strerror(gai));
        return -1;
    }
    struct sockaddr_storage ss;
    int sslen = (int)ai->ai_addrlen;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    struct evconnlistener *l =
        evconnlistener_new_bind(base, NULL, NULL,
                                LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                1024, (struct sockaddr *)&ss, sslen);
    if (!l) {
        snprintf(errstr, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        return -1;
    }
    struct evhttp_bound_socket *bs = evhttp_bind_listener(evh, l);
    if (!bs) {
        evconnlistener_free(l);
        snprintf(errstr, errlen, "cannot serve HTTP on %s", listen);
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&bound, &blen);
    if (bound_out)
        *bound_out = bs;
    return ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                             : ((struct sockaddr_in *)&bound)->sin_port);
}

http_server_t *http_new(struct event_base *base, const hb_config_t *cfg, http_webhook_cb cb,
                        void *arg, char *errstr, size_t errlen) {
    http_server_t *s = calloc(1, sizeof *s);
    if (!s || !(s->evh = evhttp_new(base))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    request_id_init(s);
    s->base = base;
    s->cb = cb;
    s->arg = arg;
    s->max_body = (size_t)cfg->http_max_body_bytes;
    /* evhttp's own cap sits above ours so that most oversized bodies get our JSON 413; see
     * http.h for the limit. */
    evhttp_set_max_body_size(s->evh, (ev_ssize_t)(2 * s->max_body + 65536));
    evhttp_set_max_headers_size(s->evh, (ev_ssize_t)cfg->http_max_header_bytes);
    struct timeval idle = {(time_t)(cfg->http_idle_timeout_ms / 1000),
                           (suseconds_t)(cfg->http_idle_timeout_ms % 1000) * 1000};
    evhttp_set_timeout_tv(s->evh, &idle);
    /* Every method reaches on_request, so wrong ones get our JSON 405, not libevent's. */
    evhttp_set_allowed_methods(s->evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                           EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                           EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(s->evh, "application/json");
    evhttp_set_flags(s->evh, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(s->evh, on_request, s);
    if (!(s->conns = conn_new(base, s->evh, cfg, errstr, errlen)))
        goto fail;
    if ((s->port = http_listen_on(s->evh, base, cfg->http_listen, &s->bound, errstr, errlen)) < 0)
        goto fail;
    conn_set_listener(s->conns, evhttp_bound_socket_get_listener(s->bound));
    char addr[320];
    snprintf(addr, sizeof addr, "%.*s:%d", (int)(strrchr(cfg->http_listen, ':') - cfg->http_listen),
             cfg->http_listen, s->port);
    log_info("http", "listening", "addr", addr, "tls", conn_tls_enabled(s->conns) ? "on" : "off",
             NULL);
    return s;
fail:
    http_free(s);
    return NULL;
}

int http_port(const http_server_t *s) { return s->port; }

uint64_t http_auth_failures(const http_server_t *s) { return s ? s->auth_failures : 0; }

struct conn *http_conns(const http_server_t *s) { return s ? s->conns : NULL; }

size_t http_counter_count(const http_server_t *s) { return HTTP_EP__FIXED + s->ep_counter_cnt; }

const char *http_counter_label(const http_server_t *s, size_t slot) {
    if (slot == HTTP_EP_HEALTHZ)
        return "healthz";
    if (slot == HTTP_EP_OTHER)
        return "other";
    return slot < http_counter_count(s) ? s->ep_counters[slot - HTTP_EP__FIXED].name : NULL;
}

uint64_t http_answer_count(const http_server_t *s, size_t slot, int status) {
    if (slot >= http_counter_count(s) || status < 100 || status > 599)
        return 0;
    return slot < HTTP_EP__FIXED ? s->fixed_answers[slot][status - 100]
                                 : s->ep_counters[slot - HTTP_EP__FIXED].answers[status - 100];
}

void http_when_flushed(http_server_t *s, void (*cb)(void *arg), void *arg) {
    if (s->replies_unsent == 0) {
        cb(arg);
        return;
    }
    s->flushed = cb;
    s->flushed_arg = arg;
}

void http_stop_accepting(http_server_t *s) {
    /* Closing the listener stops new connections; open ones finish their requests. */
    conn_set_listener(s->conns, NULL); /* a closing connection must not re-enable it */
    if (s->bound) {
        evhttp_del_accept_socket(s->evh, s->bound);
        s->bound = NULL;
    }
}

void http_free(http_server_t *s) {
    if (!s)
        return;
    if (s->evh)
        evhttp_free(s->evh);
    conn_free(s->conns); /* after evhttp_free: it outlives the connections being finalized */
    free(s->ep_slot);
    free(s->ep_counters);
    free(s);
}
