/* conn.h: connection-level limits of the webhook listener (how many connections are open, how
 * long a request may take to arrive, how many header fields it may carry) and its TLS.
 *
 * Request-level checks (path, method, auth, body) are http.c's; this module only sees
 * connections and bytes. http.c installs it on its evhttp (conn_new), hands it the listener
 * (conn_set_listener) and calls conn_request_arrived() first thing in its request callback.
 *
 * The hook: evhttp_set_bevcb. libevent 2.1 calls it once per accepted connection to make that
 * connection's bufferevent. It has no new-request callback, and no server-side close callback
 * that can be set before a first request completes (evhttp_connection_set_closecb needs the
 * evhttp_connection, which a request callback first sees with a complete request; a slowloris
 * client never gets that far). So the bevcb wraps the connection's real bufferevent (a socket
 * one, or an OpenSSL one for TLS) in a bufferevent filter that this module owns:
 *   - the filter's free_context runs when evhttp frees the connection, whatever the reason
 *     (answered with Connection: close, idle timeout, client gone, failed handshake, our
 *     deadline, evhttp_free): the one place a close is sure to be seen, so the open count is
 *     exact. It runs from libevent's finalizer, one loop turn after evhttp lets go (or inside
 *     event_base_free at exit), which is why conn_free() may leave the conn_t alive until the
 *     last connection's free_context has run;
 *   - its input side passes every plaintext byte up unchanged (moving buffer chains, no copy)
 *     and so sees a request's first byte: the request deadline starts there, with a
 *     per-connection timer (a common timeout: one queue, not the heap), not a polling timer;
 *   - its output side moves nothing: evhttp takes "the bufferevent's output is empty" for "the
 *     answer is sent" and, after a Connection: close answer, frees the connection and shuts the
 *     socket down at once, so bytes merely passed to the bufferevent beneath would be lost
 *     (libevent issues #616, #795). conn.c's writer sends them itself and tells evhttp only once
 *     they are in the kernel: evbuffer_write on the socket, or for TLS, once the OpenSSL
 *     bufferevent's output has drained. That moment also ends the answering phase of the
 *     deadline (CONN_EV_SENT).
 * Other hooks were rejected: the listener callback belongs to evhttp (evhttp_bind_listener sets
 * it) and sees no close; an SSL ex_data free callback would cover TLS connections only; reading
 * the evhttp_connection out of the bufferevent's callback argument, or guessing evhttp's state
 * from which events it enabled, relies on libevent internals.
 *
 * Limits:
 *   max_connections    when http.max_connections connections are open, the listener is disabled
 *                      (evconnlistener_disable) and re-enabled when one closes (if that fails,
 *                      error "cannot accept connections again; retrying", and it is tried again
 *                      at the next close and every second until it works). Connections
 *                      beyond the cap wait in the kernel's accept backlog (http_listen_on
 *                      asks for 1024; net.core.somaxconn may cap it), unseen and
 *                      uncounted; a sender waits instead of being refused. Logged once per
 *                      episode: warn "connection limit reached", info "accepting connections
 *                      again".
 *   request deadline   http.request_timeout_ms from a request's first byte (request line,
 *                      headers and body) to the moment the whole request reaches http.c's
 *                      request callback. Idle time between keep-alive requests does not count
 *                      (http.idle_timeout_ms covers it), nor does the time from the request's
 *                      arrival until our whole answer is in the kernel. A request whose first
 *                      bytes came earlier (pipelined: sent with the previous one, or while we
 *                      answered it) is timed from when our answer to the previous one is in
 *                      the kernel, which is when evhttp turns to it. A
 *                      late request is cut without an answer, like libevent's own timeouts:
 *                      warn "request deadline exceeded" with the peer, counted. See
 *                      conn_phase_next.
 *                      With TLS, the handshake is bounded too: the timer starts at accept and
 *                      stops when the handshake is done (OpenSSL's info callback), so a client
 *                      slow to send its first request after a quick handshake is not cut.
 *   max_headers        more header fields than http.max_headers (after libevent joined obsolete
 *                      folded lines) makes conn_request_arrived() fail; http.c answers 431
 *                      too_many_headers and keeps the connection. The bytes are bounded before
 *                      that by http.max_header_bytes, which libevent enforces itself (http.h).
 *   TLS                with http.tls_cert_file and http.tls_key_file set, every connection is an
 *                      OpenSSL bufferevent (TLS 1.2 minimum, forward-secret AEAD suites for 1.2,
 *                      OpenSSL's defaults for 1.3, no compression, no renegotiation, no client
 *                      certificates). A failed handshake is logged at info with the peer and
 *                      OpenSSL's reason and counted; it costs no other connection anything. A
 *                      client that connects and closes without sending a byte is not counted.
 *                      conn_set_tls swaps the context for new connections (a reload); open
 *                      ones keep theirs.
 *
 * Out of memory: the bevcb must not return NULL, or evhttp makes a plain bufferevent of its own
 * (on a TLS listener, that connection would speak cleartext). So a spare plain link is made
 * ahead; when a connection's link cannot be built, the spare stands in: on a plain listener it
 * serves the connection, on a TLS one it is dropped before evhttp reads a byte (error "cannot
 * set up a TLS connection: out of memory; dropping it"). The listener is off while no spare
 * can be made, and tried again every second. A link that cannot be registered or cannot
 * move its input (out of memory) is dropped with an error event, as a failed socket is.
 * Known gap: if libevent's own allocations fail right after the bevcb (the evhttp_connection,
 * its address), libevent 2.1.12 leaks the bufferevent it was given (http.c,
 * evhttp_connection_base_bufferevent_new): that link is never freed and st.open stays one too
 * high, a max_connections slot lost until a restart.
 *
 * @locality the event-loop thread.
 */
#ifndef HB_CONN_H
#define HB_CONN_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct conn conn_t;

typedef struct conn_stats {
    uint64_t open;          /* webhook connections open now */
    uint64_t max_open;      /* http.max_connections */
    uint64_t limit_reached; /* times accepting stopped at the cap */
    uint64_t deadline_cuts; /* connections cut by http.request_timeout_ms (TLS handshakes too) */
    uint64_t tls_failures;  /* failed TLS handshakes (not those cut by the deadline) */
} conn_stats_t;

/* Builds the webhook listener's TLS context from cfg's http.tls_cert_file (PEM, a chain may
 * follow the certificate) and http.tls_key_file (PEM, unencrypted). Both empty: plain HTTP,
 * *out = NULL and 0. Otherwise 0 with *out owned by the caller (SSL_CTX_free), or -1 with errstr
 * naming the option, the file and the reason (one set without the other, cannot read, not PEM,
 * key not matching the certificate; OpenSSL's reason when it has one). cfg is only read. Used by
 * conn_new and by `hookbridge --check-config`. */
int conn_tls_from_config(const hb_config_t *cfg, SSL_CTX **out, char *errstr, size_t errlen);

/* Installs the limits and TLS of cfg's http group on evh (evhttp_set_bevcb). Call before evh
 * accepts anything. NULL with errstr on failure (TLS files, out of memory). base and evh are
 * borrowed; cfg is read during the call only. */
conn_t *conn_new(struct event_base *base, struct evhttp *evh, const hb_config_t *cfg,
                 char *errstr, size_t errlen);

/* The listener that max_connections pauses and resumes; borrowed. Pass NULL before the listener
 * is freed (when the server stops accepting): nothing re-enables it afterwards. */
void conn_set_listener(conn_t *c, struct evconnlistener *l);

/* Call first in the request callback: the request arrived whole, so its deadline is over. 0 when
 * the request is within the limits; -1 with detail when it has more than http.max_headers header
 * fields (answer 431 too_many_headers). NULL c: 0. */
int conn_request_arrived(conn_t *c, struct evhttp_request *req, char *detail, size_t len);

/* Connections accepted from now on use tls (NULL: plain HTTP), which c takes (also for NULL
 * c: it is freed). Open connections keep the context they started with (each SSL holds a
 * reference). Logs the change: warn when TLS goes off, info with the certificate's SHA-256 when
 * it comes on or the certificate differs from the running one. For a reload: build tls with
 * conn_tls_from_config first, so that bad files refuse the reload. */
void conn_set_tls(conn_t *c, SSL_CTX *tls);

/* 1 when the listener speaks TLS (to connections accepted from now on). */
int conn_tls_enabled(const conn_t *c);

/* The counters (all zero for NULL). */
void conn_get_stats(const conn_t *c, conn_stats_t *out);

/* Call after evhttp_free() of the evhttp given to conn_new. Connections evhttp freed are still
 * being finalized by libevent; the conn_t is released when the last of them is (at the latest in
 * event_base_free). NULL is fine. */
void conn_free(conn_t *c);

/* ---- the request deadline, as a pure state machine (exposed for the unit test) ---------------
 *
 *   HANDSHAKE --input--> RECEIVING   (TLS only: the timer runs from accept; the first plaintext
 *   HANDSHAKE --tls done--> IDLE      byte restarts it; a finished handshake stops it)
 *   IDLE --input--> RECEIVING --request--> ANSWERING --sent--> IDLE
 *                   (timer starts)  (timer stops)     (answer in the kernel, nothing more here)
 *                                          ANSWERING --sent, more--> RECEIVING (timer starts)
 * "Sent" is when the writer has put the whole answer in the kernel and tells evhttp. Input
 * while ANSWERING is a pipelined next request (libevent reads while it writes the answer); its
 * bytes wait in the filter's input, unparsed, as do bytes that came in one read with the last
 * request: when the answer is sent, any such bytes make it "sent, more", and the next request's
 * clock starts then. "Sent" while RECEIVING is a 100 Continue or libevent's own error answer:
 * the timer keeps running. */
typedef enum conn_phase {
    CONN_HANDSHAKE,
    CONN_IDLE,
    CONN_RECEIVING,
    CONN_ANSWERING
} conn_phase_t;

typedef enum conn_event {
    CONN_EV_INPUT,     /* plaintext bytes arrived */
    CONN_EV_REQUEST,   /* a whole request reached the request callback */
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
