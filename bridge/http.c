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

#include "auth.h"
#include "buf.h"
#include "hbtime.h"
#include "log.h"

struct http_server {
    struct event_base *base;
    struct evhttp *evh;
    int port;
    struct evhttp_bound_socket *bound;
    char *path;
    size_t path_len;
    size_t max_body;
    auth_t *auth;            /* NULL when no access control is configured */
    uint64_t auth_failures;  /* requests denied by auth (401 or 403) */
    http_webhook_cb cb;
    void *arg;
    uint64_t answers[HTTP_EP__COUNT][500]; /* by endpoint and status - 100 */
    uint64_t replies_unsent; /* answers handed to evhttp and not yet written out */
    void (*flushed)(void *);
    void *flushed_arg;
};

struct http_req {
    struct evhttp_request *ev;
    http_server_t *srv;
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

/* Every answer of this listener goes through here, so the counters see each one once. */
static void send_counted(http_server_t *s, http_endpoint_t ep, struct evhttp_request *req,
                         int status, const char *json, size_t len) {
    if (status >= 100 && status <= 599)
        s->answers[ep][status - 100]++;
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

static void send_error(http_server_t *s, http_endpoint_t ep, struct evhttp_request *req,
                       int status, const char *code, const char *detail, int retry_after_s) {
    buf_t b = {0};
    http_format_error(&b, code, detail);
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", retry_after_s);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", ra);
    }
    if (buf_ok(&b))
        send_counted(s, ep, req, status, b.data, b.len);
    else
        send_counted(s, ep, req, 503, "{\"error\":\"nomem\",\"detail\":\"out of memory\"}\n", 44);
    buf_free(&b);
}

void http_reply_accepted(http_req_t *r, const char *id) {
    char body[128];
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\"}\n", id);
    send_counted(r->srv, HTTP_EP_WEBHOOK, r->ev, 202, body, (size_t)n);
    free(r);
}

void http_reply_error(http_req_t *r, int status, const char *code, const char *detail,
                      int retry_after_s) {
    log_info("http", "request refused", "peer", r->peer, "#status", (long long)status, "error",
             code, "detail", detail, NULL);
    send_error(r->srv, HTTP_EP_WEBHOOK, r->ev, status, code, detail, retry_after_s);
    free(r);
}

const char *http_req_peer(const http_req_t *r) { return r->peer; }

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

static void refuse(http_server_t *s, http_endpoint_t ep, struct evhttp_request *req, int status,
                   const char *code, const char *detail) {
    char peer[64];
    peer_of(req, peer, sizeof peer, 1);
    log_info("http", "request refused", "peer", peer, "#status", (long long)status, "error", code,
             "detail", detail, NULL);
    send_error(s, ep, req, status, code, detail, 0);
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

/* Runs the access-control check; 0 when allowed, else the request has been answered. */
static int check_auth(http_server_t *s, struct evhttp_request *req, const char *path_token,
                      const char *body, size_t len) {
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
    auth_result_t r;
    auth_check(s->auth, &in, &r);
    free(xff);
    evhttp_clear_headers(&params);
    if (r.allowed)
        return 0;
    s->auth_failures++;
    char peerport[64];
    peer_of(req, peerport, sizeof peerport, 1);
    /* Only the verdict is logged: never the token, the credentials or a signature. */
    log_warn("http", "request denied by access control", "peer", peerport, "client", r.client,
             "#status", (long long)r.status, "error", r.error, "detail", r.detail, NULL);
    if (r.want_basic)
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
                          "Basic realm=\"hookbridge\", charset=\"UTF-8\"");
    send_error(s, HTTP_EP_WEBHOOK, req, r.status, r.error, r.detail, 0);
    return -1;
}

static void on_request(struct evhttp_request *req, void *arg) {
    http_server_t *s = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    char detail[512];

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
    /* With tokens configured, "<path>/<token>" is the webhook path too. */
    const char *path_token = NULL;
    int under = strncmp(path, s->path, s->path_len) == 0 && path[s->path_len] == '/';
    if (under && auth_uses_tokens(s->auth) && path[s->path_len + 1] &&
        !strchr(path + s->path_len + 1, '/')) {
        path_token = path + s->path_len + 1;
    } else if (strcmp(path, s->path) != 0) {
        /* What follows the webhook path may be a (wrong or mistyped) token: keep it out of the
         * answer and the log. */
        if (under)
            snprintf(detail, sizeof detail, "no endpoint at %.200s/...", s->path);
        else
            snprintf(detail, sizeof detail, "no endpoint at %.200s", path);
        refuse(s, HTTP_EP_OTHER, req, 404, "not_found", detail);
        return;
    }
    if (method != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        refuse(s, HTTP_EP_WEBHOOK, req, 405, "method_not_allowed",
               "webhooks are delivered with POST");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    /* Access control before anything else about the request: a stranger learns nothing from
     * our content-type or size answers. The body is already read (HMAC needs it); one
     * contiguous view, without a copy when it already is one chunk. */
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    if (s->auth && check_auth(s, req, path_token, body, len) != 0)
        return;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    if (!is_json_type(ct)) {
        snprintf(detail, sizeof detail, "content type must be application/json, got %.100s",
                 ct ? ct : "none");
        refuse(s, HTTP_EP_WEBHOOK, req, 415, "unsupported_media_type", detail);
        return;
    }
    if (len > s->max_body) {
        snprintf(detail, sizeof detail, "body is %zu bytes, the limit is %zu", len, s->max_body);
        refuse(s, HTTP_EP_WEBHOOK, req, 413, "body_too_large", detail);
        return;
    }
    if (len == 0) {
        refuse(s, HTTP_EP_WEBHOOK, req, 400, "empty_body",
               "the body is empty; expected a JSON object");
        return;
    }
    http_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        send_error(s, HTTP_EP_WEBHOOK, req, 503, "nomem", "out of memory", 1);
        return;
    }
    r->ev = req;
    r->srv = s;
    peer_of(req, r->peer, sizeof r->peer, 1);
    log_debug("http", "request received", "peer", r->peer, "#bytes", (long long)len, NULL);
    s->cb(s->arg, r, body, len);
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
    if (!s || !(s->path = strdup(cfg->http_path)) || !(s->evh = evhttp_new(base))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    s->path_len = strlen(s->path);
    if (!(s->auth = auth_from_config(cfg, errstr, errlen)))
        goto fail;
    if (!auth_enabled(s->auth)) {
        auth_free(s->auth);
        s->auth = NULL;
    }
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
    if ((s->port = http_listen_on(s->evh, base, cfg->http_listen, &s->bound, errstr, errlen)) < 0)
        goto fail;
    char addr[320];
    snprintf(addr, sizeof addr, "%.*s:%d", (int)(strrchr(cfg->http_listen, ':') - cfg->http_listen),
             cfg->http_listen, s->port);
    log_info("http", "listening", "addr", addr, "path", s->path, "access_control",
             s->auth ? "on" : "off", NULL);
    return s;
fail:
    http_free(s);
    return NULL;
}

int http_port(const http_server_t *s) { return s->port; }

uint64_t http_auth_failures(const http_server_t *s) { return s ? s->auth_failures : 0; }

uint64_t http_answer_count(const http_server_t *s, http_endpoint_t ep, int status) {
    if ((unsigned)ep >= HTTP_EP__COUNT || status < 100 || status > 599)
        return 0;
    return s->answers[ep][status - 100];
}

const char *http_endpoint_name(http_endpoint_t ep) {
    switch (ep) {
    case HTTP_EP_WEBHOOK: return "webhook";
    case HTTP_EP_HEALTHZ: return "healthz";
    default: return "other";
    }
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
    auth_free(s->auth);
    free(s->path);
    free(s);
}
