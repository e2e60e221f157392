/* conn.h: the project's HTTP/1.1 server on libevent bufferevents: one listener and its
 * connections, strict request framing (h1.h), keep-alive, pipelining with answers in order,
 * the connection limits and deadlines, TLS. Both listeners (webhook: http.c, admin: admin.c) are
 * one conn_t each; what a request means is their handler's business.
 *
 * No globals: one conn_t per listener and event_base, so several loops can each run their own
 * (with reuseport, each its own SO_REUSEPORT socket on the same address). Listeners on several
 * loops share one conn_cap_t: max_connections is then the total over them (below).
 *
 * A connection serves one request at a time. Its bytes are parsed as they arrive; once a
 * request is whole (head and body), its body is moved out of the input into the connection's
 * own buffer and the handler gets it; the handler answers with conn_reply, now or later (a
 * webhook waits for Kafka's ack). Bytes that follow (pipelined requests) wait unparsed; past
 * max_header_bytes plus twice max_body of them, reading pauses. Once the answer is all in the
 * kernel (a small one is written to the socket at once), the next request is parsed. So answers
 * leave in the order the requests came, and a client that does not read its answers holds up
 * nothing but itself.
 *
 * Every answer is the handler's (JSON, counted by it): framing errors too. A request h1.c
 * refuses reaches the handler with conn_req_error() set and conn_req_fatal() 1: the handler
 * answers it (400, 413, 431 or 505), the answer carries Connection: close, and the connection is
 * closed after it is written, since where the next request would start is unknown. Nothing of
 * such a request is handed on as a body. More header fields than max_headers is a 431 the
 * connection survives (the body is read and dropped): conn_req_error() set, not fatal.
 *
 * Answers: "HTTP/1.1 <status> <reason>", Date, Content-Type, Content-Length (the length of the
 * body a GET would get, also for HEAD, which gets no body), the handler's extra fields, and
 * Connection: close when the connection ends after it (the client asked, HTTP/1.0 without
 * keep-alive, a fatal error, or conn_set_stopping) or Connection: keep-alive for an HTTP/1.0
 * client that asked for it. Expect: 100-continue gets the interim answer before the body is read.
 *
 * Closing: once the last answer is written, the write side is shut down and what the client
 * still sends is read and dropped until it closes, or CONN_LINGER_MS pass; closing with unread
 * bytes would make the kernel send a reset, which can destroy the answer before the client
 * reads it.
 *
 * Limits:
 *   max_connections    at the cap the listener is disabled (evconnlistener_disable) and
 *                      re-enabled when a connection closes; if that fails, error "cannot accept
 *                      connections again; retrying", tried again at the next close and every
 *                      second. Connections beyond the cap wait in the kernel's accept backlog
 *                      (1024; net.core.somaxconn may cap it). Logged once per episode: warn
 *                      "connection limit reached", info "accepting connections again".
 *                      With a shared cap (conn_cap_new), the count is the listeners' total: a
 *                      connection one loop accepted while another took the last slot waits on
 *                      its loop, unread, like one in the backlog, until a slot frees anywhere;
 *                      a close that frees the first slot wakes every listener of the cap.
 *   request deadline   request_timeout_ms from a request's first byte until it is whole (line,
 *                      headers, body). Idle time between requests does not count (idle_timeout_ms
 *                      covers it), nor does the time until our answer is in the kernel: a request
 *                      whose bytes came earlier (pipelined) is timed from then. A late request is
 *                      cut without an answer: warn "request deadline exceeded" with the peer,
 *                      counted. With TLS the handshake is bounded too: the timer runs from accept
 *                      until the handshake is done. See conn_phase_next.
 *   idle timeout       idle_timeout_ms without a byte between requests closes the connection
 *                      quietly; an answer the client does not read for that long too.
 *   header bytes       request line plus fields over max_header_bytes: 431, fatal.
 *   max_headers        more fields: 431 too_many_headers, not fatal.
 *   max_body           a declared or decoded body over it: 413, fatal (sent before the body is
 *                      read: a client that waits for 100 Continue never sends it).
 *   TLS                with a context, every connection is an OpenSSL bufferevent (conn_tls_from_
 *                      config: TLS 1.2 minimum, forward-secret AEAD suites for 1.2, no
 *                      compression, renegotiation or client certificates). A failed handshake is
 *                      logged at info with the peer and OpenSSL's reason and counted; a client
 *                      that connects and closes without a byte is not. conn_set_tls swaps the
 *                      context for new connections; open ones keep theirs.
 * Out of memory for a new connection's bufferevent or SSL: the socket is closed at once (error
 * "cannot set up a connection: out of memory"); a TLS listener never answers in cleartext.
 *
 * @locality the event-loop thread of the event_base given to conn_new.
 */
#ifndef HB_CONN_H
#define HB_CONN_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "h1.h"

#define CONN_LINGER_MS 2000

typedef struct conn conn_t;
typedef struct conn_req conn_req_t;
typedef struct conn_cap conn_cap_t;

typedef struct conn_stats {
    uint64_t open;          /* connections open now (this listener's) */
    uint64_t max_open;      /* max_connections (the cap's, when shared) */
    uint64_t limit_reached; /* times the cap was reached (the cap's, when shared) */
    uint64_t deadline_cuts; /* connections cut by request_timeout_ms (TLS handshakes too) */
    uint64_t tls_failures;  /* failed TLS handshakes (not those cut by the deadline) */
} conn_stats_t;

typedef struct conn_opts {
    const char *component;       /* for log lines: "http", "admin" */
    const char *listen;          /* "HOST:PORT" or "[V6]:PORT"; port 0 picks one */
    /* CONN_REUSEPORT_FIRST: SO_REUSEPORT, after a plain bind of the address proved nobody
     * else listens there (SO_REUSEPORT would share the port with another daemon of this user
     * silently); CONN_REUSEPORT_JOIN: SO_REUSEPORT on the address the first one bound. */
    int reuseport;
    uint64_t max_connections;    /* ignored with cap */
    conn_cap_t *cap;             /* borrowed, shared with other listeners; NULL: this one's own */
    int64_t request_timeout_ms;
    int64_t idle_timeout_ms;
    size_t max_header_bytes;
    size_t max_headers;
    uint64_t max_body;
    SSL_CTX *tls;                /* taken (freed by conn_free, also on failure); NULL: plain */
} conn_opts_t;

enum { CONN_REUSEPORT_NONE = 0, CONN_REUSEPORT_FIRST, CONN_REUSEPORT_JOIN };

/* A cap of max connections open over several listeners, each on its own loop and thread.
 * NULL when out of memory. Free it after every conn_t that uses it. @locality any thread. */
conn_cap_t *conn_cap_new(uint64_t max);
void conn_cap_free(conn_cap_t *cap); /* NULL is fine */

/* Gets each request, whole, or refused by the parser (conn_req_error). Must answer it exactly
 * once with conn_reply, now or later. */
typedef void (*conn_handler)(void *arg, conn_req_t *req);

/* Builds the listener's TLS context from cfg's http.tls_cert_file (PEM, a chain may follow the
 * certificate) and http.tls_key_file (PEM, unencrypted). Both empty: plain HTTP, *out = NULL and
 * 0. Otherwise 0 with *out owned by the caller (SSL_CTX_free), or -1 with errstr naming the
 * option, the file and the reason (one set without the other, cannot read, not PEM, key not
 * matching the certificate; OpenSSL's reason when it has one). cfg is only read. Used by
 * http.c and by `hookbridge --check-config`. */
int conn_tls_from_config(const hb_config_t *cfg, SSL_CTX **out, char *errstr, size_t errlen);

/* Binds o->listen and serves. NULL with errstr on failure (cannot parse or bind the address,
 * out of memory). o is read during the call only (o->tls is taken). */
conn_t *conn_new(struct event_base *base, const conn_opts_t *o, conn_handler handler, void *arg,
                 char *errstr, size_t errlen);

/* The port actually bound. */
int conn_port(const conn_t *c);

/* Connections accepted from now on use tls (NULL: plain HTTP), which c takes (also for NULL
 * c). Open connections keep the context they started with. Logs the change: warn when TLS goes
 * off, info with the certificate's SHA-256 when it comes on or the certificate differs. */
void conn_set_tls(conn_t *c, SSL_CTX *tls);

/* 1 when the listener speaks TLS (to connections accepted from now on). */
int conn_tls_enabled(const conn_t *c);

/* All zero for NULL. @locality any thread (counters are read with relaxed atomics). */
void conn_get_stats(const conn_t *c, conn_stats_t *out);

/* A graceful stop began: every answer from now on carries Connection: close and its connection
 * is closed once it is written, except that a request the client already sent on it (pipelined,
 * in our buffer or the kernel's) is still answered first. */
void conn_set_stopping(conn_t *c);

/* Stops accepting connections: those the kernel already completed are accepted, then the
 * listening socket is closed; open ones go on. */
void conn_stop_accepting(conn_t *c);

/* Closes every connection that is between requests (no byte of a next request read, no answer
 * being written) and has served one; one that has not served any yet (just accepted, its
 * request probably on the way) gets at most a second more. */
void conn_close_idle(conn_t *c);

/* Connections open now (lingering ones included). */
size_t conn_open_count(const conn_t *c);

/* Calls cb(arg) once every answer given so far is in the kernel (now, if that is already so),
 * or its connection is gone. A client that stops reading can hold this up: callers bound it. */
void conn_when_flushed(conn_t *c, void (*cb)(void *arg), void *arg);

/* Closes the listener and every connection. A request the handler still holds must not be
 * answered afterwards. NULL is fine. */
void conn_free(conn_t *c);

/* ---- one request (valid until conn_reply; the strings noted below only during the handler) -- */

/* NULL, or why the parser refused the request (status, code, detail; the detail never echoes
 * request bytes). */
const h1_error_t *conn_req_error(const conn_req_t *r);
/* 1 when the error ends the connection (framing); 0 for too many header fields. */
int conn_req_fatal(const conn_req_t *r);
h1_method_t conn_req_method(const conn_req_t *r);
/* The path (before '?') and query (after it, "" when none) of the target, raw (not decoded);
 * for an absolute-form target ("http://host/p"), the path after the authority. NUL-terminated.
 * During the handler only. "" when the request was refused before its line was read. */
const char *conn_req_path(const conn_req_t *r);
const char *conn_req_query(const conn_req_t *r); /* NULL when the target has no '?' */
/* The value of the first field named name (case-insensitive), NUL-terminated, or NULL. During
 * the handler only. */
const char *conn_req_header(const conn_req_t *r, const char *name);
/* Field i (0 .. conn_req_field_count - 1), name and value NUL-terminated. During the handler. */
size_t conn_req_field_count(const conn_req_t *r);
void conn_req_field(const conn_req_t *r, size_t i, const char **name, const char **value);
/* The body (decoded, when chunked); valid until conn_reply. "" and 0 for none. */
const char *conn_req_body(const conn_req_t *r, size_t *len);
/* The client: "203.0.113.7:41024" or "[::1]:41024" (logs), and the bare address (auth). */
const char *conn_req_peer(const conn_req_t *r);
const char *conn_req_peer_addr(const conn_req_t *r);

/* Answers r and ends it: status, the Content-Type, body[0..len) (not sent for HEAD), and
 * extra, more header lines each ending in CRLF ("Allow: POST\r\n"; NULL for none). Copies what it
 * needs. */
void conn_reply(conn_req_t *r, int status, const char *content_type, const char *extra,
                const char *body, size_t len);

/* ---- the request deadline, as a pure state machine (exposed for the unit test) ---------------
 *
 *   HANDSHAKE --input--> RECEIVING   (TLS only: the timer runs from accept; the first plaintext
 *   HANDSHAKE --tls done--> IDLE      byte restarts it; a finished handshake stops it)
 *   IDLE --input--> RECEIVING --request--> ANSWERING --sent--> IDLE
 *                   (timer starts)  (timer stops)     (answer in the kernel, nothing more here)
 *                                          ANSWERING --sent, more--> RECEIVING (timer starts)
 * "Sent" is when the whole answer is in the kernel. Bytes that arrived while ANSWERING (the next
 * request, pipelined) are parsed only then: "sent, more", and the next request's clock starts.
 * "Sent" while RECEIVING is a 100 Continue: the timer keeps running. */
typedef enum conn_phase {
    CONN_HANDSHAKE,
    CONN_IDLE,
    CONN_RECEIVING,
    CONN_ANSWERING
} conn_phase_t;

typedef enum conn_event {
    CONN_EV_INPUT,     /* plaintext bytes arrived */
    CONN_EV_REQUEST,   /* a whole request reached the handler */
    CONN_EV_SENT,      /* an answer is in the kernel; no byte of a next request is here */
    CONN_EV_SENT_MORE, /* an answer is in the kernel; bytes of the next request are here */
    CONN_EV_TLS_DONE   /* the TLS handshake finished */
} conn_event_t;

typedef enum conn_timer_op {
    CONN_TIMER_KEEP,  /* leave the timer as it is */
    CONN_TIMER_START, /* (re)start it with the full deadline */
    CONN_TIMER_STOP
} conn_timer_op_t;

/* The phase after ev; *op what to do with the timer. */
conn_phase_t conn_phase_next(conn_phase_t phase, conn_event_t ev, conn_timer_op_t *op);

#endif
