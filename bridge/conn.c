/* conn.c: connection-level limits and TLS of the webhook listener (see conn.h for the design). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "log.h"

/* TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all
 * of which qualify). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"    \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"      \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

typedef struct conn_link conn_link_t;

/* How long to wait before trying again to accept when the listener could not be re-enabled or
 * no spare link could be made (out of memory). A retry, not a poll: armed only then. */
#define CONN_RETRY_MS 1000

struct conn {
    struct event_base *base;
    SSL_CTX *tls;                     /* for connections accepted from now on; NULL: plain HTTP */
    struct evconnlistener *listener;  /* borrowed; NULL once the server stops accepting */
    struct event *retry;              /* one-shot: listener_sync again (CONN_RETRY_MS) */
    conn_link_t *spare;               /* a plain link made ahead, for when memory runs out */
    struct timeval deadline;          /* http.request_timeout_ms */
    int64_t deadline_ms;
    size_t max_headers;
    conn_stats_t st;                  /* st.open: connections whose free_context has not run */
    size_t links;                     /* links not yet freed: open ones, the spare, half-built
                                         ones; the conn_t outlives them all */
    int paused;                       /* we disabled the listener (at the cap, or no spare) */
    int failing;                      /* accepting failed (logged once) and is being retried */
    int released;                     /* conn_free ran; free when links reaches 0 */
    conn_link_t **by_fd;              /* the link of each socket, for conn_request_arrived */
    size_t by_fd_len;
};

/* One accepted connection. Owned by its filter bufferevent: freed in its free_context. */
struct conn_link {
    conn_t *c;
    struct bufferevent *bev;   /* the filter, which evhttp holds */
    struct bufferevent *under; /* the socket or OpenSSL bufferevent beneath it */
    SSL *ssl;                  /* owned by under; NULL for plain HTTP */
    struct event *timer;       /* the request (or handshake) deadline */
    struct event *wev;         /* the writer's wake-up (see "writing answers"); made lazily */
    struct evbuffer_cb_entry *out_cb, *tls_out_cb;
    conn_phase_t phase;
    int fd;                    /* registered in c->by_fd; -1 until the first plaintext byte */
    int counted;               /* handed to evhttp: counted in st.open */
    int refuse;                /* the spare standing in on a TLS listener: dropped unread */
    int dropping;              /* out of memory: an error is on its way to evhttp */
    int cut;                   /* closed by the deadline */
    char peer[INET6_ADDRSTRLEN + 16]; /* "ip:port", "" until looked up */
};

/* ---- the deadline state machine (pure) ------------------------------------------------------ */

conn_phase_t conn_phase_next(conn_phase_t phase, conn_event_t ev, conn_timer_op_t *op) {
    *op = CONN_TIMER_KEEP;
    switch (ev) {
    case CONN_EV_INPUT:
        if (phase == CONN_RECEIVING || phase == CONN_ANSWERING)
            return phase; /* answering: the next request's bytes wait; CONN_EV_SENT_MORE */
        *op = CONN_TIMER_START; /* IDLE, or HANDSHAKE: the first plaintext byte of a request */
        return CONN_RECEIVING;
    case CONN_EV_REQUEST:
        *op = CONN_TIMER_STOP; /* answering is our job, not the client's */
        return CONN_ANSWERING;
    case CONN_EV_SENT:
    case CONN_EV_SENT_MORE:
        if (phase != CONN_ANSWERING)
            return phase; /* 100 Continue, or libevent answering a broken request itself */
        if (ev == CONN_EV_SENT)
            return CONN_IDLE;
        *op = CONN_TIMER_START; /* the next request began while we answered, or came with it */
        return CONN_RECEIVING;
    case CONN_EV_TLS_DONE:
        if (phase != CONN_HANDSHAKE)
            return phase; /* TLS 1.3 post-handshake messages report "done" again */
        *op = CONN_TIMER_STOP;
        return CONN_IDLE;
    }
    return phase;
}

/* ---- TLS context -------------------------------------------------------------------------- */

/* OpenSSL's first queued error (the root cause, e.g. "PEM routines: no start line"); clears
 * the queue. */
static void ssl_reason(unsigned long e, char *out, size_t len) {
    const char *lib = e ? ERR_lib_error_string(e) : NULL;
    const char *why = e ? ERR_reason_error_string(e) : NULL;
    if (why)
        snprintf(out, len, "%s: %s", lib ? lib : "OpenSSL", why);
    else if (e)
        ERR_error_string_n(e, out, len);
    else
        snprintf(out, len, "no reason given by OpenSSL");
}

static void ssl_first_error(char *out, size_t len) {
    ssl_reason(ERR_get_error(), out, len);
    ERR_clear_error();
}

/* An encrypted key must fail at start rather than prompt on a terminal nobody watches. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

static int readable(const char *path, const char *where, const char *opt, char *errstr,
                    size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errstr, errlen, "%s: http.%s '%s': cannot read: %s", where, opt, path,
                 strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

int conn_tls_from_config(const hb_config_t *cfg, SSL_CTX **out, char *errstr, size_t errlen) {
    const char *cert = cfg->http_tls_cert_file ? cfg->http_tls_cert_file : "";
    const char *key = cfg->http_tls_key_file ? cfg->http_tls_key_file : "";
    const char *where = cfg->path ? cfg->path : "config";
    char why[256];
    SSL_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    FILE *kf = NULL;

    *out = NULL;
    if (!*cert && !*key)
        return 0;
    if (!*cert || !*key) {
        snprintf(errstr, errlen,
                 "%s: http.%s is set but http.%s is not: TLS needs both the certificate and its "
                 "private key", where, *cert ? "tls_cert_file" : "tls_key_file",
                 *cert ? "tls_key_file" : "tls_cert_file");
        return -1;
    }
    if (readable(cert, where, "tls_cert_file", errstr, errlen) != 0 ||
        readable(key, where, "tls_key_file", errstr, errlen) != 0)
        return -1;
    ERR_clear_error();
    if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen, "%s: cannot create the TLS context: %s", where, why);
        goto fail;
    }
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen, "%s: http.tls_cert_file '%s': not a usable PEM certificate: %s",
                 where, cert, why);
        goto fail;
    }
    if (!(kf = fopen(key, "r"))) {
        snprintf(errstr, errlen, "%s: http.tls_key_file '%s': cannot read: %s", where, key,
                 strerror(errno));
        goto fail;
    }
    pkey = PEM_read_PrivateKey(kf, NULL, no_passphrase, NULL);
    fclose(kf);
    if (!pkey) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen,
                 "%s: http.tls_key_file '%s': not a usable unencrypted PEM private key: %s", where,
                 key, why);
        goto fail;
    }
    if (X509_check_private_key(SSL_CTX_get0_certificate(ctx), pkey) != 1) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen,
                 "%s: http.tls_key_file '%s' does not match the certificate in "
                 "http.tls_cert_file '%s': %s", where, key, cert, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen, "%s: http.tls_key_file '%s': %s", where, key, why);
        goto fail;
    }
    EVP_PKEY_free(pkey);
    pkey = NULL;

    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* A client closing without close_notify is an EOF, as libevent 2.1 expects (OpenSSL 3 would
     * report an error); HTTP's own framing tells a cut request from a whole one. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* Idle keep-alive connections hold no TLS buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
#ifdef SSL_CTX_set_dh_auto
    SSL_CTX_set_dh_auto(ctx, 1);
#endif
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
        ssl_first_error(why, sizeof why);
        snprintf(errstr, errlen, "%s: cannot configure TLS: %s", where, why);
        goto fail;
    }
    *out = ctx;
    return 0;
fail:
    EVP_PKEY_free(pkey);
    SSL_CTX_free(ctx);
    return -1;
}

/* SHA-256 of the DER of tls's certificate, in hex; "" for NULL. */
static void tls_fingerprint(SSL_CTX *tls, char out[2 * 32 + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509 *x = tls ? SSL_CTX_get0_certificate(tls) : NULL;
    out[0] = '\0';
    if (!x || X509_digest(x, EVP_sha256(), md, &n) != 1 || n != 32)
        return;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---- one connection ------------------------------------------------------------------------ */

/* "ip:port" of the link's peer (as http.c writes it), looked up once. */
static const char *link_peer(conn_link_t *k) {
    if (k->peer[0])
        return k->peer;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN];
    evutil_socket_t fd = bufferevent_getfd(k->under);
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
        return "?";
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&ss;
    int six = ss.ss_family == AF_INET6;
    if ((!six && ss.ss_family != AF_INET) ||
        !inet_ntop(ss.ss_family, six ? (const void *)&v6->sin6_addr : (const void *)&v4->sin_addr,
                   host, sizeof host))
        return "?";
    snprintf(k->peer, sizeof k->peer, "%s:%u", host,
             (unsigned)ntohs(six ? v6->sin6_port : v4->sin_port));
    return k->peer;
}

static void link_step(conn_link_t *k, conn_event_t ev) {
    conn_timer_op_t op;
    k->phase = conn_phase_next(k->phase, ev, &op);
    if (op == CONN_TIMER_START)
        evtimer_add(k->timer, &k->c->deadline);
    else if (op == CONN_TIMER_STOP)
        evtimer_del(k->timer);
}

/* Remembers which link owns the socket, so the request callback finds it from the request. The
 * fd stays open until after the link's free_context (the bufferevent beneath closes it), so no
 * other connection can hold the number while it is registered. */
static int link_register(conn_link_t *k) {
    conn_t *c = k->c;
    evutil_socket_t fd = bufferevent_getfd(k->bev);
    if (fd < 0)
        return -1;
    if ((size_t)fd >= c->by_fd_len) {
        size_t n = c->by_fd_len ? c->by_fd_len : 64;
        while (n <= (size_t)fd)
            n *= 2;
        conn_link_t **t = realloc(c->by_fd, n * sizeof *t);
        if (!t)
            return -1;
        memset(t + c->by_fd_len, 0, (n - c->by_fd_len) * sizeof *t);
        c->by_fd = t;
        c->by_fd_len = n;
    }
    c->by_fd[fd] = k;
    k->fd = fd;
    return 0;
}

/* evhttp has freed the connection (it clears the callbacks then); the link lives on until
 * libevent finalizes the filter, and must not touch the bufferevent in between. */
static int link_alive(conn_link_t *k) {
    bufferevent_event_cb evcb = NULL;
    bufferevent_getcb(k->bev, NULL, NULL, &evcb, NULL);
    return evcb != NULL;
}

/* Out of memory while reading: has evhttp drop the connection, as it does when the socket
 * fails. An input filter's BEV_ERROR would not do it: libevent 2.1 ignores it on the read path
 * (bufferevent_filter.c, be_filter_read_nolock_). Deferred: this runs inside the filter's read,
 * and evhttp frees the connection in its event callback. */
static void link_drop(conn_link_t *k, const char *why) {
    if (k->dropping)
        return;
    k->dropping = 1;
    log_error("http", why, "peer", link_peer(k), NULL);
    bufferevent_trigger_event(k->bev, BEV_EVENT_READING | BEV_EVENT_ERROR,
                              BEV_TRIG_DEFER_CALLBACKS);
}

/* The filter's input side: passes every byte up unchanged (moving buffer chains, no copy), and
 * notes that a request has begun. */
static enum bufferevent_filter_result on_input(struct evbuffer *src, struct evbuffer *dst,
                                               ev_ssize_t limit,
                                               enum bufferevent_flush_mode mode, void *arg) {
    (void)mode;
    conn_link_t *k = arg;
    if (k->refuse || k->dropping)
        return BEV_ERROR; /* being dropped: evhttp must not see a byte */
    if (k->fd < 0 && link_register(k) != 0) {
        /* Untracked, its deadline could never be stopped. */
        link_drop(k, "cannot track a connection: out of memory; dropping it");
        return BEV_ERROR;
    }
    size_t n = evbuffer_get_length(src);
    if (limit >= 0 && (size_t)limit < n)
        n = (size_t)limit;
    if (n == 0)
        return BEV_NEED_MORE;
    if (n == evbuffer_get_length(src) ? evbuffer_add_buffer(dst, src) != 0
                                      : evbuffer_remove_buffer(src, dst, n) != (int)n) {
        link_drop(k, "cannot read a request: out of memory; dropping the connection");
        return BEV_ERROR;
    }
    link_step(k, CONN_EV_INPUT);
    return BEV_OK;
}

/* ---- writing answers ---------------------------------------------------------------------------
 * evhttp takes "the bufferevent's output is empty" for "the answer is sent", and after an answer
 * with Connection: close it frees the connection and shuts the socket down at once. A filter that
 * passed the bytes to the bufferevent beneath would empty its output long before they reach the
 * socket, and they would be lost (libevent issues #616 and #795). So the filter's output side
 * moves nothing (on_output), and this writer sends what evhttp wrote, telling evhttp only once the
 * bytes are in the kernel: plain, with evbuffer_write on the socket; TLS, by handing them to the
 * OpenSSL bufferevent and waiting until its output has drained (SSL_write has put them on the
 * socket). */

static enum bufferevent_filter_result on_output(struct evbuffer *src, struct evbuffer *dst,
                                                ev_ssize_t limit,
                                                enum bufferevent_flush_mode mode, void *arg) {
    (void)src;
    (void)dst;
    (void)limit;
    (void)mode;
    (void)arg;
    return BEV_NEED_MORE; /* the writer sends it */
}

/* What the bufferevent beneath would have done: run evhttp's write callback once the output is
 * empty, while evhttp waits for it (it enables writing only then). Deferred: this may run inside
 * OpenSSL's write path, and evhttp may free the connection in its callback.
 * This is also where an answer ends for the deadline (CONN_EV_SENT): its bytes are in the kernel.
 * Whatever plaintext is already here then is the start of the next request (read while we
 * answered, or sent along with the last one), unseen by evhttp until it has finished this
 * answer: its clock starts now. */
static void tell_evhttp(conn_link_t *k) {
    if (!link_alive(k) || evbuffer_get_length(bufferevent_get_output(k->bev)) ||
        !(bufferevent_get_enabled(k->bev) & EV_WRITE))
        return;
    int more = evbuffer_get_length(bufferevent_get_input(k->bev)) ||
               evbuffer_get_length(bufferevent_get_input(k->under));
    link_step(k, more ? CONN_EV_SENT_MORE : CONN_EV_SENT);
    bufferevent_trigger(k->bev, EV_WRITE, BEV_TRIG_DEFER_CALLBACKS);
}

static void on_writable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    conn_link_t *k = arg;
    if (!link_alive(k))
        return;
    struct evbuffer *out = bufferevent_get_output(k->bev);
    if (!evbuffer_get_length(out))
        return;
    if (k->ssl) {
        /* on_tls_out tells evhttp once OpenSSL has written it all. */
        if (evbuffer_add_buffer(bufferevent_get_output(k->under), out) != 0)
            bufferevent_trigger_event(k->bev, BEV_EVENT_WRITING | BEV_EVENT_ERROR, 0);
        return;
    }
    if (evbuffer_write(out, fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* Gone (EPIPE, ECONNRESET): what the socket bufferevent would report. */
        bufferevent_trigger_event(k->bev, BEV_EVENT_WRITING | BEV_EVENT_ERROR, 0);
        return;
    }
    if (evbuffer_get_length(out))
        event_add(k->wev, NULL); /* the socket is full: again once it is writable */
    else
        tell_evhttp(k);
}

/* evhttp wrote to the filter's output: wake the writer (not from inside evhttp's own call). */
static void on_out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    (void)buf;
    conn_link_t *k = arg;
    if (!info->n_added || !link_alive(k))
        return;
    if (!k->wev) {
        evutil_socket_t fd = k->ssl ? -1 : bufferevent_getfd(k->under);
        k->wev = event_new(k->c->base, fd, k->ssl ? 0 : EV_WRITE, on_writable, k);
        if (!k->wev) {
            log_error("http", "cannot send an answer: out of memory", "peer", link_peer(k), NULL);
            bufferevent_trigger_event(k->bev, BEV_EVENT_WRITING | BEV_EVENT_ERROR,
                                      BEV_TRIG_DEFER_CALLBACKS);
            return;
        }
    }
    if (!event_pending(k->wev, EV_WRITE, NULL))
        event_active(k->wev, EV_WRITE, 1);
}

/* The OpenSSL bufferevent's output drained: the answer is on the socket. */
static void on_tls_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    conn_link_t *k = arg;
    if (info->n_deleted && !evbuffer_get_length(buf))
        tell_evhttp(k);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    conn_link_t *k = arg;
    conn_t *c = k->c;
    if (!link_alive(k))
        return;
    if (k->refuse) {
        /* on_accept's spare on a TLS listener: evhttp set it up; now it drops it. */
        bufferevent_trigger_event(k->bev, BEV_EVENT_READING | BEV_EVENT_ERROR, 0);
        return;
    }
    if (k->phase == CONN_HANDSHAKE && k->ssl && SSL_is_init_finished(k->ssl)) {
        link_step(k, CONN_EV_TLS_DONE); /* connected and quiet: the idle timeout's business */
        return;
    }
    if (k->phase != CONN_HANDSHAKE && k->phase != CONN_RECEIVING)
        return;
    k->cut = 1;
    c->st.deadline_cuts++;
    log_warn("http", "request deadline exceeded", "peer", link_peer(k), "during",
             k->phase == CONN_HANDSHAKE ? "tls handshake" : "request", "#timeout_ms",
             (long long)c->deadline_ms, NULL);
    /* What evhttp does on its own read timeout: drop the connection without an answer. */
    bufferevent_trigger_event(k->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

/* OpenSSL's progress report: the handshake started (the peer is known by then) or finished. */
static void on_tls_info(const SSL *ssl, int where, int ret) {
    (void)ret;
    conn_link_t *k = SSL_get_app_data(ssl);
    if (!k)
        return;
    if (where & SSL_CB_HANDSHAKE_START)
        link_peer(k);
    if (where & SSL_CB_HANDSHAKE_DONE)
        link_step(k, CONN_EV_TLS_DONE);
}

static void report_tls_failure(conn_link_t *k) {
    char why[256];
    unsigned long e = bufferevent_get_openssl_error(k->under);
    /* A connect-and-close (port scan, TCP health check) sent nothing: not a failed handshake. */
    BIO *rbio = SSL_get_rbio(k->ssl);
    if (!e && (!rbio || BIO_number_read(rbio) == 0)) {
        log_debug("http", "connection closed before a TLS handshake", "peer", link_peer(k), NULL);
        return;
    }
    if (e)
        ssl_reason(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "the client closed the connection during the handshake");
    while (bufferevent_get_openssl_error(k->under))
        ;
    k->c->st.tls_failures++;
    log_info("http", "TLS handshake failed", "peer", link_peer(k), "reason", why, NULL);
}

static void listener_sync(conn_t *c);
static void conn_release_if_done(conn_t *c);

/* The filter's free_context: evhttp has freed the connection (or conn.c the spare, or a link it
 * could not finish) and libevent is finalizing the filter. The bufferevent beneath is still
 * alive (the filter holds it until this returns), so its SSL and socket can still be read. */
static void link_free(void *arg) {
    conn_link_t *k = arg;
    conn_t *c = k->c;
    if (k->counted && k->ssl && !k->cut && !SSL_is_init_finished(k->ssl))
        report_tls_failure(k);
    if (k->ssl)
        SSL_set_app_data(k->ssl, NULL);
    /* The buffers outlive the link by a little: no callback may reach it any more. */
    if (k->out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(k->bev), k->out_cb);
    if (k->tls_out_cb)
        evbuffer_remove_cb_entry(bufferevent_get_output(k->under), k->tls_out_cb);
    if (k->wev)
        event_free(k->wev);
    event_free(k->timer);
    if (k->fd >= 0 && (size_t)k->fd < c->by_fd_len && c->by_fd[k->fd] == k)
        c->by_fd[k->fd] = NULL;
    int counted = k->counted;
    free(k);
    c->links--;
    if (counted) {
        c->st.open--;
        listener_sync(c);
    }
    conn_release_if_done(c);
}

/* A link for one connection, TLS when tls is set; its socket is set by evhttp later. NULL when
 * memory runs out (anything half-built is freed, a filter through link_free). */
static conn_link_t *link_new(conn_t *c, SSL_CTX *tls) {
    conn_link_t *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->c = c;
    k->fd = -1;
    k->phase = CONN_IDLE;
    if (!(k->timer = evtimer_new(c->base, on_deadline, k)))
        goto fail;
    if (tls) {
        SSL *ssl = SSL_new(tls);
        if (!ssl)
            goto fail;
        /* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns ssl, also when it fails. */
        k->under = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                  BEV_OPT_CLOSE_ON_FREE);
        if (!k->under)
            goto fail;
        k->ssl = ssl;
        SSL_set_app_data(ssl, k);
        SSL_set_info_callback(ssl, on_tls_info);
        bufferevent_openssl_set_allow_dirty_shutdown(k->under, 1);
        k->phase = CONN_HANDSHAKE;
    } else if (!(k->under = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE))) {
        goto fail;
    }
    /* CLOSE_ON_FREE on the filter: freeing it frees the bufferevent beneath, which closes the
     * socket; evhttp then only shuts it down. */
    k->bev = bufferevent_filter_new(k->under, on_input, on_output, BEV_OPT_CLOSE_ON_FREE,
                                    link_free, k);
    if (!k->bev)
        goto fail;
    c->links++; /* from here on the filter owns k: link_free counts it down */
    if (!(k->out_cb = evbuffer_add_cb(bufferevent_get_output(k->bev), on_out_added, k)) ||
        (k->ssl &&
         !(k->tls_out_cb = evbuffer_add_cb(bufferevent_get_output(k->under), on_tls_out, k)))) {
        bufferevent_free(k->bev);
        return NULL;
    }
    return k;
fail:
    if (k->under) {
        if (k->ssl)
            SSL_set_app_data(k->ssl, NULL);
        bufferevent_free(k->under);
    }
    if (k->timer)
        event_free(k->timer);
    free(k);
    return NULL;
}

/* ---- the listener ------------------------------------------------------------------------------
 * The listener is on only while a connection can be taken: below http.max_connections, and with
 * a spare link ready. When memory runs out in on_accept, returning NULL would let evhttp make a
 * plain bufferevent of its own, so on a TLS listener that connection would speak cleartext; the
 * spare, made ahead, stands in instead (on_accept). Without one (memory is still short), or when
 * the listener cannot be re-enabled, the retry timer tries again in CONN_RETRY_MS, and so does
 * every close. listener.c checks after each accepted connection whether the listener is still
 * on, so disabling it here also stops the accept loop in progress. */

static void listener_sync(conn_t *c) {
    if (!c->listener || c->released)
        return;
    if (!c->spare)
        c->spare = link_new(c, NULL);
    int full = c->st.open >= c->st.max_open;
    const char *failed = NULL;
    char why[128] = "";
    if (full || !c->spare) {
        if (!c->paused) {
            evconnlistener_disable(c->listener);
            c->paused = 1;
            if (full) {
                c->st.limit_reached++;
                log_warn("http", "connection limit reached", "#max_connections",
                         (long long)c->st.max_open, NULL);
            }
        }
        if (full && c->spare)
            return; /* a close brings it back */
        failed = "not accepting connections; retrying";
        snprintf(why, sizeof why, "out of memory");
    } else if (c->paused) {
        errno = 0;
        if (evconnlistener_enable(c->listener) == 0) {
            c->paused = 0;
            c->failing = 0;
            evtimer_del(c->retry);
            log_info("http", "accepting connections again", "#open", (long long)c->st.open,
                     "#max_connections", (long long)c->st.max_open, NULL);
            return;
        }
        snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "libevent gave no reason");
        failed = "cannot accept connections again; retrying";
    } else {
        return;
    }
    if (!c->failing)
        log_error("http", failed, "reason", why, "#retry_ms", (long long)CONN_RETRY_MS, NULL);
    c->failing = 1;
    struct timeval tv = {CONN_RETRY_MS / 1000, (CONN_RETRY_MS % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    listener_sync(arg);
}

/* evhttp's bevcb: the bufferevent of a connection evhttp has just accepted (its fd is set right
 * after this returns). */
static struct bufferevent *on_accept(struct event_base *base, void *arg) {
    (void)base;
    conn_t *c = arg;
    conn_link_t *k = link_new(c, c->tls);
    if (!k) {
        /* The listener is off while there is no spare, so there is one. */
        k = c->spare;
        c->spare = NULL;
        if (!k) {
            log_error("http", "cannot set up a connection: out of memory", NULL);
            return NULL;
        }
        if (c->tls) {
            /* Dropped before evhttp reads a byte: on_deadline runs before the loop polls the
             * new socket. */
            k->refuse = 1;
            event_active(k->timer, EV_TIMEOUT, 1);
            log_error("http", "cannot set up a TLS connection: out of memory; dropping it",
                      NULL);
        } else {
            log_warn("http", "cannot set up a connection: out of memory; serving it with the "
                             "spare", NULL);
        }
    }
    k->counted = 1;
    c->st.open++;
    if (k->phase == CONN_HANDSHAKE)
        evtimer_add(k->timer, &c->deadline);
    listener_sync(c);
    return k->bev;
}

conn_t *conn_new(struct event_base *base, struct evhttp *evh, const hb_config_t *cfg,
                 char *errstr, size_t errlen) {
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    if (conn_tls_from_config(cfg, &c->tls, errstr, errlen) != 0) {
        free(c);
        return NULL;
    }
    c->base = base;
    c->st.max_open = (uint64_t)cfg->http_max_connections;
    c->max_headers = (size_t)cfg->http_max_headers;
    c->deadline_ms = cfg->http_request_timeout_ms;
    struct timeval tv = {(time_t)(cfg->http_request_timeout_ms / 1000),
                         (suseconds_t)(cfg->http_request_timeout_ms % 1000) * 1000};
    /* Every deadline has the same length: libevent keeps such timers in a queue, not its heap. */
    const struct timeval *common = event_base_init_common_timeout(base, &tv);
    c->deadline = common ? *common : tv;
    if (!(c->retry = evtimer_new(base, on_retry, c)) || !(c->spare = link_new(c, NULL))) {
        snprintf(errstr, errlen, "out of memory");
        conn_free(c);
        return NULL;
    }
    evhttp_set_bevcb(evh, on_accept, c);
    return c;
}

void conn_set_listener(conn_t *c, struct evconnlistener *l) {
    if (!c)
        return;
    c->listener = l;
    listener_sync(c);
}

void conn_set_tls(conn_t *c, SSL_CTX *tls) {
    if (!c) {
        SSL_CTX_free(tls);
        return;
    }
    char was[2 * 32 + 1], now[2 * 32 + 1];
    tls_fingerprint(c->tls, was);
    tls_fingerprint(tls, now);
    if (c->tls && !tls)
        log_warn("http", "TLS off for new connections: the webhook listener speaks plain HTTP",
                 NULL);
    else if (!c->tls && tls)
        log_info("http", "TLS on for new connections", "cert_sha256", now, NULL);
    else if (tls && strcmp(was, now) != 0)
        log_info("http", "a new TLS certificate for new connections", "cert_sha256", now,
                 "previous_sha256", was, NULL);
    SSL_CTX_free(c->tls); /* each open connection's SSL holds a reference of its own */
    c->tls = tls;
}

int conn_request_arrived(conn_t *c, struct evhttp_request *req, char *detail, size_t len) {
    if (!c)
        return 0;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0 && (size_t)fd < c->by_fd_len && c->by_fd[fd] && c->by_fd[fd]->bev == bev)
        link_step(c->by_fd[fd], CONN_EV_REQUEST);
    size_t n = 0;
    struct evkeyval *h;
    TAILQ_FOREACH(h, evhttp_request_get_input_headers(req), next)
        n++;
    if (n > c->max_headers) {
        snprintf(detail, len, "the request has %zu header fields; the limit is %zu", n,
                 c->max_headers);
        return -1;
    }
    return 0;
}

int conn_tls_enabled(const conn_t *c) { return c && c->tls; }

void conn_get_stats(const conn_t *c, conn_stats_t *out) {
    if (c)
        *out = c->st;
    else
        memset(out, 0, sizeof *out);
}

static void conn_release_if_done(conn_t *c) {
    if (!c->released || c->links > 0)
        return;
    SSL_CTX_free(c->tls);
    free(c->by_fd);
    free(c);
}

void conn_free(conn_t *c) {
    if (!c)
        return;
    c->listener = NULL; /* freed with the evhttp */
    c->released = 1;
    if (c->retry)
        event_free(c->retry);
    c->retry = NULL;
    if (c->spare)
        bufferevent_free(c->spare->bev); /* link_free follows, in libevent's finalizer */
    c->spare = NULL;
    conn_release_if_done(c);
}
