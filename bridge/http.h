/* http.h: the webhook listener (libevent evhttp): checks method, path, content type and size,
 * hands accepted bodies on, and writes JSON answers.
 *
 * The paths served are those of the endpoint set (endpoint.h), swapped whole on a reload.
 * Every request to an endpoint gets a request id when it arrives (32 lowercase hex: a random
 * 64-bit prefix drawn at start, then a counter), sent back in X-Request-Id on every answer,
 * errors included, and named in every log line about the request, with the endpoint.
 *
 * Access control (auth.h, the endpoint's) runs after the path and method checks and before
 * everything else; with tokens set, "<path>/<token>" is the endpoint's path too. A denied
 * request gets 401 or 403, is counted (http_auth_failures) and logged without any secret.
 *
 * Errors are answered as {"error":"<code>","detail":"<what was wrong>"} with the status:
 * 400 (body), 401 (credentials, with WWW-Authenticate for Basic), 403 (source address),
 * 404 (path), 405 (method, with Allow), 413 (size), 415 (content type),
 * 422 (no event_type), 431 (more than http.max_headers header fields: too_many_headers, checked
 * first, counted under "other"; the connection stays open), 503 (cannot make the event safe,
 * with Retry-After).
 * libevent answers a few requests itself, with its own HTML page, and the request callback never
 * sees them (nor do the answer counters):
 *   - a body larger than twice http.max_body_bytes (plus 64 KiB): 413; up to that size the
 *     answer is ours;
 *   - a request line plus headers over http.max_header_bytes, or a garbled request line: 400 Bad
 *     Request (not 431) with Connection: close, and the connection is closed once it is written
 *     (evhttp_connection_fail_ with EVREQ_HTTP_INVALID_HEADER, then evhttp_send_error).
 * Connection-level limits (max connections, the request deadline, TLS) are conn.h's.
 *
 * @locality the event-loop thread.
 */
#ifndef HB_HTTP_H
#define HB_HTTP_H

#include <event2/event.h>
#include <event2/http.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "endpoint.h"

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

#define HTTP_REQUEST_ID_LEN 32

/* The answer counters (hookbridge_http_requests_total) are kept by slot: these two, then one
 * per webhook endpoint name (http_counter_count, http_counter_label). */
typedef enum http_endpoint {
    HTTP_EP_HEALTHZ, /* /healthz */
    HTTP_EP_OTHER,   /* any other path (answered 404) */
    HTTP_EP__FIXED
} http_endpoint_t;

/* An accepted webhook: POST on an endpoint's path, past its access control, JSON content type,
 * body within the limit. ep is valid during the call only (a reload may free it later); body
 * stays valid until the request is answered. The callee must answer req exactly once (now or
 * later) with http_reply_*. */
typedef void (*http_webhook_cb)(void *arg, http_req_t *req, const endpoint_t *ep,
                                const char *body, size_t len);

/* Binds cfg->http_listen and starts serving; no path is a webhook path until
 * http_set_endpoints. NULL with errstr on failure. cfg is only read. */
http_server_t *http_new(struct event_base *base, const hb_config_t *cfg, http_webhook_cb cb,
                        void *arg, char *errstr, size_t errlen);

/* Serves the endpoints of set from now on (borrowed: it must stay alive until replaced or
 * http_free). Requests already handed to the callback keep no pointer into the old set, which
 * the caller may free once this returns 0. -1 when out of memory: the old set stays in use. */
int http_set_endpoints(http_server_t *s, const endpoint_set_t *set);

/* The port actually bound (useful with port 0). */
int http_port(const http_server_t *s);

/* Answers this listener has sent, by counter slot (0 .. http_counter_count - 1) and status
 * (100..599; 0 for any other status). Counted where each answer is sent; libevent's own answers
 * (e.g. its 413 for a body past its cap, 400 for a garbled request line) are not seen and not
 * counted. */
uint64_t http_answer_count(const http_server_t *s, size_t slot, int status);
size_t http_counter_count(const http_server_t *s);
/* A slot's label: "healthz", "other" or the endpoint's name; owned by s. */
const char *http_counter_label(const http_server_t *s, size_t slot);

/* Requests denied by access control (401 or 403) since http_new; 0 for NULL. */
uint64_t http_auth_failures(const http_server_t *s);

/* The connection limits and TLS of the listener (conn.h: conn_get_stats; conn_set_tls on a
 * reload), owned by s; NULL for NULL. */
struct conn *http_conns(const http_server_t *s);

/* Binds a listener for "HOST:PORT" or "[V6]:PORT" to an evhttp; returns the bound port or -1
 * with errstr. Shared with the admin listener. */
int http_listen_on(struct evhttp *h, struct event_base *base, const char *listen,
                   struct evhttp_bound_socket **bound_out, char *errstr, size_t errlen);

/* 202 {"id":"<id>"}. Frees req. */
void http_reply_accepted(http_req_t *req, const char *id);
/* status with {"error":code,"detail":detail}; retry_after_s > 0 adds Retry-After. Frees req. */
void http_reply_error(http_req_t *req, int status, const char *code, const char *detail,
                      int retry_after_s);
/* The client address of req, for logs ("ip:port"). */
const char *http_req_peer(const http_req_t *req);
/* The request id (HTTP_REQUEST_ID_LEN lowercase hex chars; valid until req is answered) and
 * its endpoint's name (owned by the server; read it when needed, do not keep it: a reload may
 * move it). */
const char *http_req_id(const http_req_t *req);
const char *http_req_endpoint(const http_req_t *req);

/* Calls cb(arg) once every answer given so far has been written to its socket (now, if that is
 * already so). A client that stops reading can hold this up: callers bound the wait. */
void http_when_flushed(http_server_t *s, void (*cb)(void *arg), void *arg);

/* Stops accepting new connections; requests in progress are still answered. */
void http_stop_accepting(http_server_t *s);

/* Frees the server and its connections. Answer every request first. NULL is fine. */
void http_free(http_server_t *s);

/* Appends the error body every listener answers with: {"error":code,"detail":detail}. */
void http_format_error(buf_t *b, const char *code, const char *detail);

/* Writes a JSON error body into an evhttp request and sends it (for the admin listener). */
void http_send_json(struct evhttp_request *req, int status, const char *json, size_t len);

#endif
