/* http.h: the webhook listener: checks method, path, access control, content type and size,
 * hands accepted bodies on, and writes JSON answers. Served by conn.h's HTTP/1.1 server, which
 * frames requests strictly (h1.h); every answer this listener sends is written here, counted,
 * and has a JSON body, framing errors included.
 *
 * The paths served are those of the endpoint set (endpoint.h), swapped whole on a reload.
 * Every request to an endpoint gets a request id when it arrives (32 lowercase hex: a random
 * 64-bit prefix drawn at start, then a counter), sent back in X-Request-Id on every answer,
 * errors included, and named in every log line about the request, with the endpoint.
 *
 * Access control (auth.h, the endpoint's) runs after the path and method checks and before
 * everything else; with tokens set, "<path>/<token>" is the endpoint's path too. A token in the
 * path or in ?token= is percent-decoded and compared over its exact bytes. A denied request
 * gets 401 or 403, is counted (http_auth_failures) and logged without any secret.
 *
 * Secrets: no answer or log line of this listener repeats a configured secret. A 404 never
 * quotes the path (a mistyped URL may carry the real token: "/WEBHOOKS/CLOUD66/<token>"): it
 * names the endpoint path the request fell under, if any; every other detail that quotes
 * client text is masked with auth_redact for every endpoint's secrets.
 *
 * Standard Webhooks replay: with Standard Webhooks configured on an endpoint, a request whose
 * webhook-id (verified by its signature) was answered 202 within the signature tolerance gets
 * 202 with the same envelope id and is not handed on (replay.h; counted: http_replay_hits).
 *
 * Errors are answered as {"error":"<code>","detail":"<what was wrong>"} with the status:
 * 400 (framing: bad_request; body: invalid_json, ...), 401 (credentials, with WWW-Authenticate
 * for Basic), 403 (source address), 404 (path), 405 (method, with Allow), 413 (size), 415
 * (content type), 422 (no event_type), 431 (header bytes: headers_too_large, closes; header
 * count: too_many_headers, the connection stays open), 503 (cannot make the event safe, with
 * Retry-After), 505 (HTTP version). Framing errors (conn.h) are counted under "other" and
 * close the connection.
 *
 * Several loops (http.workers, workers.h): one server per loop, each on its own event_base and
 * thread, made in one http_group_t. The group's servers share the address (SO_REUSEPORT, after
 * a plain bind proved the port free: conn.h), max_connections as a total over them, and the
 * replay cache (a retry may land on another loop). The readers below, called on the first
 * server of a group, answer for the whole group: counters are summed over its servers (read
 * with relaxed atomics: they may lag a request behind).
 *
 * @locality the server's loop, except where a function says otherwise.
 */
#ifndef HB_HTTP_H
#define HB_HTTP_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "endpoint.h"

typedef struct http_server http_server_t;
typedef struct http_req http_req_t;
typedef struct http_group http_group_t;
struct conn_stats;

#define HTTP_REQUEST_ID_LEN 32

/* The answer counters (hookbridge_http_requests_total) are kept by slot: these two, then one
 * per webhook endpoint name (http_counter_count, http_counter_label). */
typedef enum http_endpoint {
    HTTP_EP_HEALTHZ, /* /healthz */
    HTTP_EP_OTHER,   /* any other path (answered 404), and requests refused by the framing */
    HTTP_EP__FIXED
} http_endpoint_t;

/* An accepted webhook: POST on an endpoint's path, past its access control, JSON content type,
 * body within the limit. ep is valid during the call only (a reload may free it later); body
 * stays valid until the request is answered. The callee must answer req exactly once (now or
 * later) with http_reply_*. */
typedef void (*http_webhook_cb)(void *arg, http_req_t *req, const endpoint_t *ep,
                                const char *body, size_t len);

/* What the servers of `loops` loops share (above); NULL when out of memory. cfg is only read.
 * Free it after its servers. @locality main, before the loops' threads run. */
http_group_t *http_group_new(const hb_config_t *cfg, size_t loops);
void http_group_free(http_group_t *g); /* NULL is fine */

/* Binds cfg->http_listen (in a group: the first server; the others bind the port it got) and
 * starts serving on base; no path is a webhook path until http_set_endpoints. group: borrowed,
 * NULL for a server alone. NULL with errstr on failure ("address in use" included, also when
 * the other listener has SO_REUSEPORT). cfg is only read. @locality main, before the loops'
 * threads run. */
http_server_t *http_new(struct event_base *base, const hb_config_t *cfg, http_group_t *group,
                        http_webhook_cb cb, void *arg, char *errstr, size_t errlen);

/* Serves the endpoints of set from now on (borrowed: it must stay alive until replaced or
 * http_free). Requests already handed to the callback keep no pointer into the old set, which
 * the caller may free once this returns 0. -1 when out of memory: the old set stays in use. */
int http_set_endpoints(http_server_t *s, const endpoint_set_t *set);

/* The port actually bound (useful with port 0). */
int http_port(const http_server_t *s);

/* Answers this listener (its group) has sent, by counter slot (0 .. http_counter_count - 1) and
 * status (100..599; 0 for any other status). Counted where each answer is sent: every answer.
 * @locality any thread (http_counter_count and http_counter_label: the server's loop; every
 * server of a group has the same slots once a reload reached it). */
uint64_t http_answer_count(const http_server_t *s, size_t slot, int status);
size_t http_counter_count(const http_server_t *s);
/* A slot's label: "healthz", "other" or the endpoint's name; owned by s. */
const char *http_counter_label(const http_server_t *s, size_t slot);

/* Requests denied by access control (401 or 403) since http_new; 0 for NULL. Any thread. */
uint64_t http_auth_failures(const http_server_t *s);
/* Standard Webhooks deliveries answered from the replay cache; 0 for NULL. Any thread. */
uint64_t http_replay_hits(const http_server_t *s);
/* conn_get_stats of the listener, or of the group's listeners: open, deadline cuts and TLS
 * failures summed, the shared cap's max and episodes as they are. Any thread. */
void http_conn_stats(const http_server_t *s, struct conn_stats *out);

/* The connection limits and TLS of the listener (conn.h: conn_get_stats; conn_set_tls on a
 * reload), owned by s; NULL for NULL. */
struct conn *http_conns(const http_server_t *s);

/* 202 {"id":"<id>"}. Frees req. */
void http_reply_accepted(http_req_t *req, const char *id);
/* status with {"error":code,"detail":detail}; retry_after_s > 0 adds Retry-After. Frees req. */
void http_reply_error(http_req_t *req, int status, const char *code, const char *detail,
                      int retry_after_s);
/* The client address of req, for logs ("ip:port", "[v6]:port"). */
const char *http_req_peer(const http_req_t *req);
/* The request id (HTTP_REQUEST_ID_LEN lowercase hex chars; valid until req is answered) and
 * its endpoint's name (owned by the server; read it when needed, do not keep it: a reload may
 * move it). */
const char *http_req_id(const http_req_t *req);
const char *http_req_endpoint(const http_req_t *req);

/* Calls cb(arg) once every answer given so far has been written to its socket (now, if that is
 * already so). A client that stops reading can hold this up: callers bound the wait. */
void http_when_flushed(http_server_t *s, void (*cb)(void *arg), void *arg);

/* A graceful stop began: every answer from now on carries Connection: close (conn.h). */
void http_set_stopping(http_server_t *s);

/* Stops accepting new connections and closes those between requests; requests in progress are
 * still answered. */
void http_stop_accepting(http_server_t *s);

/* Connections still open. */
size_t http_open_connections(const http_server_t *s);

/* Frees the server and its connections. Answer every request first. NULL is fine. */
void http_free(http_server_t *s);

/* Appends the error body every listener answers with: {"error":code,"detail":detail}. */
void http_format_error(buf_t *b, const char *code, const char *detail);

#endif
