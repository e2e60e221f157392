/* http.h: the webhook listener (libevent evhttp): checks method, path, content type and size,
 * hands accepted bodies on, and writes JSON answers.
 *
 * Access control (auth.h) runs after the path and method checks and before everything else;
 * with auth.tokens set, "<http.path>/<token>" is a webhook path too. A denied request gets 401
 * or 403, is counted (http_auth_failures) and logged without any secret.
 *
 * Errors are answered as {"error":"<code>","detail":"<what was wrong>"} with the status:
 * 400 (body), 401 (credentials, with WWW-Authenticate for Basic), 403 (source address),
 * 404 (path), 405 (method, with Allow), 413 (size), 415 (content type),
 * 422 (no event_type), 503 (cannot make the event safe, with Retry-After).
 * One known limit: a body larger than twice http.max_body_bytes (plus 64 KiB) is cut off by
 * libevent itself, which answers 413 with its own HTML body; up to that size the answer is ours.
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

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;

/* Where a request went, for the answer counters (hookbridge_http_requests_total). */
typedef enum http_endpoint {
    HTTP_EP_WEBHOOK, /* the configured webhook path */
    HTTP_EP_HEALTHZ, /* /healthz */
    HTTP_EP_OTHER,   /* any other path (answered 404) */
    HTTP_EP__COUNT
} http_endpoint_t;

/* An accepted webhook: POST on the configured path, JSON content type, body within the limit.
 * body stays valid until the request is answered. The callee must answer req exactly once
 * (now or later) with http_reply_*. */
typedef void (*http_webhook_cb)(void *arg, http_req_t *req, const char *body, size_t len);

/* Binds cfg->http_listen and starts serving, with the access control of cfg's auth group (built
 * and owned by the server). NULL with errstr on failure ("PATH:LINE: reason" for a bad auth
 * entry). cfg is only read. */
http_server_t *http_new(struct event_base *base, const hb_config_t *cfg, http_webhook_cb cb,
                        void *arg, char *errstr, size_t errlen);

/* The port actually bound (useful with port 0). */
int http_port(const http_server_t *s);

/* Answers this listener has sent, by endpoint and status (100..599; 0 for any other status).
 * Counted where each answer is sent; libevent's own answers (e.g. its 413 for a body past its
 * cap, 400 for a garbled request line) are not seen and not counted. */
uint64_t http_answer_count(const http_server_t *s, http_endpoint_t ep, int status);
/* "webhook", "healthz", "other"; a static string. */
const char *http_endpoint_name(http_endpoint_t ep);

/* Requests denied by access control (401 or 403) since http_new; 0 for NULL. */
uint64_t http_auth_failures(const http_server_t *s);

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
