/* conn.c: the HTTP/1.1 server on bufferevents: listener, connections, framing, answers (see
 * conn.h for the design). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"

/* TLS 1.2 suites: forward secrecy and AEAD only (TLS 1.3 suites are OpenSSL's defaults, all
 * of which qualify). */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"    \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"      \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"

/* How long to wait before trying again to accept when the listener could not be re-enabled. A
 * retry, not a poll: armed only then. */
#define CONN_RETRY_MS 1000

/* Plain HTTP: the most one read(2) takes. libevent's own socket read asks the kernel how much
 * is waiting first (ioctl FIONREAD, a syscall per request) and takes at most 4 KiB. */
#define CONN_READ_CHUNK 16384

typedef struct conn_link conn_link_t;

/* The counters another thread reads (conn_get_stats) have one writer, the listener's loop:
 * relaxed atomic loads and stores, no read-modify-write needed. */
#define STAT_ADD(field, d)                                                                         \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (uint64_t)(d),        \
                     __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* max_connections over the listeners that share it (conn.h). open and limit_reached are
 * atomic; the member list is guarded by lock (a close on one loop wakes the others). */
struct conn_cap {
    uint64_t max;
    uint64_t open;
    uint64_t limit_reached;
    int shared; /* made by conn_cap_new: its members have wake-up events */
    pthread_mutex_t lock;
    conn_t *members;
};

/* A connection accepted over a shared cap, waiting for a slot (conn.h). */
typedef struct conn_waiting {
    evutil_socket_t fd;
    struct sockaddr_storage sa;
    int salen;
} conn_waiting_t;

struct conn_req {
    conn_link_t *k;
    h1_request_t h;     /* slices into the server's scratch: valid during the handler */
    h1_error_t err;
    int has_err, fatal;
    const char *path, *query;
    const char *body;
    size_t body_len;
};

/* One accepted connection; freed by link_free. */
struct conn_link {
    conn_t *c;
    struct bufferevent *bev; /* a socket or an OpenSSL bufferevent */
    SSL *ssl;                /* owned by bev; NULL for plain HTTP */
    struct event *rev;       /* plain HTTP: reads into bev's input (link_readable); TLS: NULL,
                              * bev reads */
    evutil_socket_t fd;
    struct event *timer;     /* the request deadline, the idle timeout, the linger */
    conn_phase_t phase;
    conn_req_t req;          /* the request in progress */
    int busy;                /* req is with the handler */
    int writing;             /* an answer is being written */
    int closing;             /* close once the answer is written */
    int lingering;           /* write side shut; reading and dropping until EOF or the timer */
    int peer_done;           /* the client closed its side: answer what was read, then close */
    int continue_sent;       /* 100 Continue written for the request being received */
    uint64_t served;         /* requests answered on it */
    int read_paused;         /* reading stopped: too much pipelined input while busy */
    buf_t body;              /* the body of the request in progress (kept for the next one) */
    LIST_ENTRY(conn_link) entry;
    char peer[INET6_ADDRSTRLEN + 16]; /* "ip:port" or "[v6]:port" */
    char addr[INET6_ADDRSTRLEN];
};

struct conn {
    struct event_base *base;
    char component[16];
    conn_handler handler;
    void *arg;
    SSL_CTX *tls;                    /* for connections accepted from now on; NULL: plain */
    struct evconnlistener *listener; /* NULL once the server stops accepting */
    struct event *retry;             /* one-shot: listener_sync again (CONN_RETRY_MS) */
    struct timeval deadline, idle, linger;
    int64_t deadline_ms;
    h1_limits_t lim;
    size_t max_wire;                 /* the chunked encoding of a body at most this long */
    char *scratch;                   /* the head being parsed, copied (max_header_bytes + 1) */
    h1_field_t *fields;              /* the stored fields of that head */
    size_t fields_cap;
    conn_stats_t st;              /* open, deadline_cuts, tls_failures (STAT_ADD) */
    conn_cap_t *cap;              /* shared, or own_cap */
    conn_cap_t *own_cap;
    conn_t *cap_next;             /* in cap->members */
    int wake_fd;                  /* eventfd: a slot freed on another loop; -1: none */
    struct event *wake_ev;
    conn_waiting_t *waiting;      /* accepted over the shared cap, unread */
    size_t waiting_cnt, waiting_cap;
    int port;
    int paused;   /* we disabled the listener at the cap */
    int failing;  /* re-enabling failed (logged once) and is being retried */
    int stopping; /* conn_set_stopping */
    LIST_HEAD(, conn_link) links;
    uint64_t unsent;            /* answers queued and not yet all in the kernel */
    void (*flushed)(void *);
    void *flushed_arg;
    time_t date_at;             /* the Date field, made once a second */
    char date[40];
};

static void link_free(conn_link_t *k);
static void link_process(conn_link_t *k);
static void listener_sync(conn_t *c);
static void cap_release(conn_t *c);

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

static void peer_format(const struct sockaddr *sa, char *peer, size_t plen, char *addr,
                        size_t alen) {
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(v6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
            /* An IPv4 client of a dual-stack listener is written as the IPv4 address it is. */
            inet_ntop(AF_INET, &v6->sin6_addr.s6_addr[12], host, sizeof host);
            snprintf(peer, plen, "%s:%u", host, port);
        } else {
            inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
            snprintf(peer, plen, "[%s]:%u", host, port);
        }
    } else if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        port = ntohs(v4->sin_port);
        snprintf(peer, plen, "%s:%u", host, port);
    } else {
        snprintf(peer, plen, "?");
    }
    snprintf(addr, alen, "%s", host);
}

static void timer_set(conn_link_t *k, const struct timeval *tv) { evtimer_add(k->timer, tv); }

static void link_step(conn_link_t *k, conn_event_t ev) {
    conn_timer_op_t op;
    conn_phase_t was = k->phase;
    k->phase = conn_phase_next(k->phase, ev, &op);
    if (op == CONN_TIMER_START)
        timer_set(k, &k->c->deadline);
    else if (op == CONN_TIMER_STOP)
        evtimer_del(k->timer);
    if (k->phase == CONN_IDLE && was != CONN_IDLE)
        timer_set(k, &k->c->idle); /* between requests: the idle timeout */
}

static void flushed_check(conn_t *c) {
    if (c->unsent == 0 && c->flushed) {
        void (*cb)(void *) = c->flushed;
        c->flushed = NULL;
        cb(c->flushed_arg);
    }
}

static void on_tls_info(const SSL *ssl, int where, int ret) {
    (void)ret;
    conn_link_t *k = SSL_get_app_data(ssl);
    if (k && (where & SSL_CB_HANDSHAKE_DONE))
        link_step(k, CONN_EV_TLS_DONE);
}

static void report_tls_failure(conn_link_t *k) {
    char why[256];
    unsigned long e = bufferevent_get_openssl_error(k->bev);
    /* A connect-and-close (port scan, TCP health check) sent nothing: not a failed handshake. */
    BIO *rbio = SSL_get_rbio(k->ssl);
    if (!e && (!rbio || BIO_number_read(rbio) == 0)) {
        log_debug(k->c->component, "connection closed before a TLS handshake", "peer", k->peer,
                  NULL);
        return;
    }
    if (e)
        ssl_reason(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "the client closed the connection during the handshake");
    while (bufferevent_get_openssl_error(k->bev))
        ;
    STAT_ADD(k->c->st.tls_failures, 1);
    log_info(k->c->component, "TLS handshake failed", "peer", k->peer, "reason", why, NULL);
}

/* The connection ends now: counted down, the listener may take one more. A request the handler
 * holds keeps the link (without its socket) until it is answered. */
static void link_close(conn_link_t *k) {
    conn_t *c = k->c;
    if (!k->bev)
        return;
    if (k->ssl && k->phase == CONN_HANDSHAKE && !SSL_is_init_finished(k->ssl))
        report_tls_failure(k);
    if (k->ssl)
        SSL_set_app_data(k->ssl, NULL);
    evtimer_del(k->timer);
    if (k->rev) {
        event_free(k->rev); /* before the socket closes */
        k->rev = NULL;
    }
    bufferevent_free(k->bev); /* closes the socket (BEV_OPT_CLOSE_ON_FREE) */
    k->bev = NULL;
    if (k->writing) {
        k->writing = 0;
        c->unsent--;
    }
    LIST_REMOVE(k, entry);
    STAT_ADD(c->st.open, -1);
    cap_release(c);
    listener_sync(c);
    if (!k->busy)
        link_free(k);
    flushed_check(c);
}

static void link_free(conn_link_t *k) {
    if (k->timer)
        event_free(k->timer);
    buf_free(&k->body);
    free(k);
}

/* Reading on or off: our read event for plain HTTP, the bufferevent's for TLS. */
static void link_reading(conn_link_t *k, int on) {
    if (k->rev) {
        if (on)
            event_add(k->rev, NULL);
        else
            event_del(k->rev);
    } else if (on) {
        bufferevent_enable(k->bev, EV_READ);
    } else {
        bufferevent_disable(k->bev, EV_READ);
    }
}

/* The answer is written: shut the write side and drop what still comes (see conn.h). */
static void link_linger(conn_link_t *k) {
    if (k->lingering)
        return;
    k->lingering = 1;
    if (k->peer_done) {
        link_close(k);
        return;
    }
    if (!k->ssl)
        shutdown(k->fd, SHUT_WR);
    struct evbuffer *in = bufferevent_get_input(k->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    link_reading(k, 1);
    timer_set(k, &k->c->linger);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    conn_link_t *k = arg;
    conn_t *c = k->c;
    if (k->lingering || k->phase == CONN_IDLE) {
        link_close(k); /* done lingering, or idle for idle_timeout_ms */
        return;
    }
    if (k->phase == CONN_HANDSHAKE && k->ssl && SSL_is_init_finished(k->ssl)) {
        link_step(k, CONN_EV_TLS_DONE); /* connected and quiet: the idle timeout's business */
        return;
    }
    if (k->phase != CONN_HANDSHAKE && k->phase != CONN_RECEIVING)
        return;
    STAT_ADD(c->st.deadline_cuts, 1);
    log_warn(c->component, "request deadline exceeded", "peer", k->peer, "during",
             k->phase == CONN_HANDSHAKE ? "tls handshake" : "request", "#timeout_ms",
             (long long)c->deadline_ms, NULL);
    k->phase = CONN_IDLE; /* not a failed handshake: the deadline counted it */
    link_close(k);
}

static void on_read(struct bufferevent *bev, void *arg) {
    conn_link_t *k = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (k->lingering) {
        evbuffer_drain(in, evbuffer_get_length(in));
        return;
    }
    if (k->busy || k->writing || k->closing) {
        /* Parsed once the answer is written. A client that pipelines far ahead waits. */
        if (evbuffer_get_length(in) > k->c->lim.max_head + k->c->max_wire && !k->read_paused) {
            k->read_paused = 1;
            link_reading(k, 0);
        }
        return;
    }
    link_process(k);
}

/* The answer is all in the kernel: the next request may be parsed. */
static void answer_sent(conn_link_t *k) {
    conn_t *c = k->c;
    k->writing = 0;
    c->unsent--;
    if (k->closing) {
        link_linger(k);
        flushed_check(c);
        return;
    }
    size_t left = evbuffer_get_length(bufferevent_get_input(k->bev));
    link_step(k, left ? CONN_EV_SENT_MORE : CONN_EV_SENT);
    if (k->read_paused) {
        k->read_paused = 0;
        link_reading(k, 1);
    }
    if (left)
        bufferevent_trigger(k->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
    else if (k->peer_done)
        link_close(k);
    flushed_check(c);
}

/* The output is empty. */
static void on_write(struct bufferevent *bev, void *arg) {
    (void)bev;
    conn_link_t *k = arg;
    if (k->writing)
        answer_sent(k);
}

static void on_event(struct bufferevent *bev, short what, void *arg) {
    (void)bev;
    conn_link_t *k = arg;
    if (what & BEV_EVENT_CONNECTED)
        return; /* the TLS handshake is done (on_tls_info saw it) */
    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !k->lingering &&
        k->phase != CONN_HANDSHAKE) {
        /* A half-close: what was read is still answered. */
        k->peer_done = 1;
        if (k->busy || k->writing)
            return;
        if (evbuffer_get_length(bufferevent_get_input(k->bev))) {
            link_process(k); /* closes the link itself when nothing whole is there */
            return;
        }
    }
    link_close(k);
}

/* Plain HTTP: the socket is readable. One read(2) into the input buffer, then what the
 * bufferevent's own read would do: on_read with the bytes, on_event at the end of the stream
 * or on an error (reading off, as libevent turns it off). */
static void link_readable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    conn_link_t *k = arg;
    struct evbuffer *in = bufferevent_get_input(k->bev);
    struct evbuffer_iovec v;
    ssize_t n = -1;
    /* A bufferevent's input takes bytes only from the bufferevent, which unfreezes its end to
     * add them: as it does. */
    evbuffer_unfreeze(in, 0);
    int have = evbuffer_reserve_space(in, CONN_READ_CHUNK, &v, 1) == 1;
    if (have) {
        n = read(fd, v.iov_base, v.iov_len < CONN_READ_CHUNK ? v.iov_len : CONN_READ_CHUNK);
        if (n > 0) {
            v.iov_len = (size_t)n;
            have = evbuffer_commit_space(in, &v, 1) == 0;
        }
    }
    evbuffer_freeze(in, 0);
    if (!have) {
        log_error(k->c->component, "cannot read a request: out of memory", "peer", k->peer,
                  NULL);
        link_close(k);
        return;
    }
    if (n > 0) {
        on_read(k->bev, k);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    event_del(k->rev);
    on_event(k->bev, BEV_EVENT_READING | (n == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR), k);
}

/* Where the target's path starts: after "scheme://authority" for the absolute form. */
static char *target_path(char *t) {
    if (strncmp(t, "http://", 7) == 0 || strncmp(t, "https://", 8) == 0) {
        char *p = strchr(t + (t[4] == 's' ? 8 : 7), '/');
        return p ? p : (char *)"/";
    }
    return t;
}

/* Hands a request (or the parser's refusal) to the handler; reading stops until it is
 * answered. */
static void link_deliver(conn_link_t *k) {
    conn_t *c = k->c;
    conn_req_t *r = &k->req;
    r->k = k;
    k->busy = 1;
    link_step(k, CONN_EV_REQUEST);
    c->handler(c->arg, r);
}

static void deliver_error(conn_link_t *k, const h1_error_t *err) {
    conn_req_t *r = &k->req;
    r->err = *err;
    r->has_err = r->fatal = 1;
    r->path = "";
    r->query = NULL;
    r->body = "";
    r->body_len = 0;
    r->h.nfields = 0;
    r->h.method = H1_OTHER;
    link_deliver(k);
}

/* NUL-terminates the method, the target and every stored field in the scratch copy, and splits
 * the target. */
static void terminate_strings(conn_req_t *r) {
    h1_request_t *h = &r->h;
    ((char *)h->method_str.p)[h->method_str.n] = '\0';
    char *t = (char *)h->target.p;
    t[h->target.n] = '\0';
    for (size_t i = 0; i < h->nfields; i++) {
        ((char *)h->fields[i].name.p)[h->fields[i].name.n] = '\0';
        ((char *)h->fields[i].value.p)[h->fields[i].value.n] = '\0';
    }
    char *q = strchr(t, '?');
    if (q)
        *q++ = '\0';
    r->path = target_path(t);
    r->query = q;
}

static void send_continue(conn_link_t *k) {
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (k->continue_sent || !k->req.h.expect_continue || k->req.h.minor == 0)
        return;
    k->continue_sent = 1;
    bufferevent_write(k->bev, cont, sizeof cont - 1);
}

static void link_process(conn_link_t *k) {
    conn_t *c = k->c;
    conn_req_t *r = &k->req;
    struct evbuffer *in = bufferevent_get_input(k->bev);
    size_t len = evbuffer_get_length(in);
    h1_error_t err;
    if (len == 0)
        return;
    if (k->phase != CONN_RECEIVING) {
        link_step(k, CONN_EV_INPUT);
        k->continue_sent = 0;
    }
    size_t n = len < c->lim.max_head + 1 ? len : c->lim.max_head + 1;
    if (evbuffer_copyout(in, c->scratch, n) != (ev_ssize_t)n) {
        log_error(c->component, "cannot read a request: out of memory", "peer", k->peer, NULL);
        link_close(k);
        return;
    }
    memset(&r->h, 0, sizeof r->h);
    r->h.fields = c->fields;
    r->h.fields_cap = c->fields_cap;
    r->has_err = r->fatal = 0;
    h1_result_t res = h1_parse_head(c->scratch, n, &c->lim, &r->h, &err);
    if (res == H1_ERROR) {
        deliver_error(k, &err);
        return;
    }
    if (res == H1_MORE)
        goto more;
    size_t head = r->h.head_len;
    switch (r->h.framing) {
    /* The body is taken out of the input into the link's own buffer, so the input may go on
     * filling (pipelined requests) while the handler holds the body. */
    case H1_BODY_NONE:
        r->body = "";
        r->body_len = 0;
        evbuffer_drain(in, head);
        break;
    case H1_BODY_LENGTH: {
        size_t cl = (size_t)r->h.content_length;
        if (len < head + cl) {
            send_continue(k);
            goto more;
        }
        buf_reset(&k->body);
        if (buf_reserve(&k->body, cl + 1) != HB_OK) {
            log_error(c->component, "cannot read a request: out of memory", "peer", k->peer,
                      NULL);
            link_close(k);
            return;
        }
        evbuffer_drain(in, head);
        evbuffer_remove(in, k->body.data, cl);
        k->body.data[cl] = '\0';
        k->body.len = cl;
        r->body = k->body.data;
        r->body_len = cl;
        break;
    }
    case H1_BODY_CHUNKED: {
        size_t wire = 0, blen = 0;
        const char *p = (const char *)evbuffer_pullup(in, -1);
        if (!p) {
            log_error(c->component, "cannot read a request: out of memory", "peer", k->peer,
                      NULL);
            link_close(k);
            return;
        }
        res = h1_parse_chunked(p + head, len - head, c->lim.max_body, c->max_wire, &wire, &blen,
                               NULL, &err);
        if (res == H1_ERROR) {
            deliver_error(k, &err);
            return;
        }
        if (res == H1_MORE) {
            send_continue(k);
            goto more;
        }
        buf_reset(&k->body);
        if (buf_reserve(&k->body, blen + 1) != HB_OK) {
            log_error(c->component, "cannot read a request: out of memory", "peer", k->peer,
                      NULL);
            link_close(k);
            return;
        }
        h1_parse_chunked(p + head, len - head, c->lim.max_body, c->max_wire, &wire, &blen,
                         k->body.data, &err);
        k->body.len = blen;
        k->body.data[blen] = '\0';
        r->body = k->body.data;
        r->body_len = blen;
        evbuffer_drain(in, head + wire);
        break;
    }
    }
    /* The copy in scratch may stop short of the body; the head is whole in it. */
    terminate_strings(r);
    if (r->h.too_many_fields) {
        r->has_err = 1;
        r->err.status = 431;
        r->err.code = "too_many_headers";
        snprintf(r->err.detail, sizeof r->err.detail,
                 "the request has %zu header fields; the limit is %zu", r->h.fields_seen,
                 c->lim.max_fields);
    }
    link_deliver(k);
    return;
more:
    if (k->peer_done)
        link_close(k); /* the client closed mid-request: nothing to answer */
}

/* 1 when bytes of a next request are already here: in our input beyond this request, or
 * waiting in the kernel (or in OpenSSL). */
static int more_input(conn_link_t *k) {
    if (evbuffer_get_length(bufferevent_get_input(k->bev)) > 0)
        return 1;
    int pending = 0;
    if (k->ssl && SSL_pending(k->ssl) > 0)
        return 1;
    return ioctl(k->fd, FIONREAD, &pending) == 0 && pending > 0;
}

static const char *reason_phrase(int status) {
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

/* The Date field's value (RFC 9110 5.6.7), made once a second. */
static const char *date_now(conn_t *c) {
    time_t now = time(NULL);
    if (now != c->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(c->date, sizeof c->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        c->date_at = now;
    }
    return c->date;
}

/* Decimal digits of v into out (at least 21 bytes); returns the length. */
static size_t u64_dec(uint64_t v, char *out) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

void conn_reply(conn_req_t *r, int status, const char *content_type, const char *extra,
                const char *body, size_t len) {
    conn_link_t *k = r->k;
    conn_t *c = k->c;
    k->busy = 0;
    if (!k->bev) {
        link_free(k); /* the client went away while we worked on its request */
        return;
    }
    struct evbuffer *in = bufferevent_get_input(k->bev);
    int head_only = !r->has_err && r->h.method == H1_HEAD;
    int keep = !r->fatal && r->h.keep_alive && !k->peer_done;
    if (r->fatal)
        evbuffer_drain(in, evbuffer_get_length(in));
    /* Stopping: close after this answer unless the client already sent the next request. */
    if (keep && c->stopping && !more_input(k))
        keep = 0;
    char head[512];
    size_t n = 0;
#define PUT(s, l)                                                                                  \
    do {                                                                                           \
        size_t l_ = (l);                                                                           \
        if (n + l_ < sizeof head) {                                                                \
            memcpy(head + n, (s), l_);                                                             \
            n += l_;                                                                               \
        }                                                                                          \
    } while (0)
#define PUTS(s) PUT((s), strlen(s))
    PUTS("HTTP/1.1 ");
    char num[24];
    PUT(num, u64_dec((uint64_t)status, num));
    PUTS(" ");
    PUTS(reason_phrase(status));
    PUTS("\r\nDate: ");
    PUTS(date_now(c));
    PUTS("\r\nContent-Type: ");
    PUTS(content_type);
    PUTS("\r\nContent-Length: ");
    PUT(num, u64_dec(len, num));
    PUTS("\r\n");
    if (!keep)
        PUTS("Connection: close\r\n");
    else if (r->h.minor == 0)
        PUTS("Connection: keep-alive\r\n");
#undef PUT
#undef PUTS
    struct evbuffer *out = bufferevent_get_output(k->bev);
    struct iovec iov[4] = {{head, n},
                           {(void *)(extra ? extra : ""), extra ? strlen(extra) : 0},
                           {(void *)"\r\n", 2},
                           {(void *)body, head_only ? 0 : len}};
    size_t total = iov[0].iov_len + iov[1].iov_len + iov[2].iov_len + iov[3].iov_len, done = 0;
    k->closing = !keep;
    k->writing = 1;
    k->served++;
    c->unsent++;
    /* Plain HTTP with nothing queued: straight to the socket, which takes a small answer
     * whole, without a round through the loop (and no write event to add and remove). */
    if (!k->ssl && evbuffer_get_length(out) == 0) {
        ssize_t w = writev(k->fd, iov, 4);
        if (w > 0)
            done = (size_t)w;
        if (done == total) {
            answer_sent(k);
            return;
        }
    }
    for (int i = 0; i < 4; i++) {
        size_t skip = done < iov[i].iov_len ? done : iov[i].iov_len;
        done -= skip;
        if (iov[i].iov_len > skip &&
            evbuffer_add(out, (const char *)iov[i].iov_base + skip, iov[i].iov_len - skip) != 0) {
            log_error(c->component, "cannot send an answer: out of memory", "peer", k->peer,
                      NULL);
            link_close(k);
            return;
        }
    }
    bufferevent_enable(k->bev, EV_WRITE);
}

/* ---- the request, for the handler ------------------------------------------------------------ */

const h1_error_t *conn_req_error(const conn_req_t *r) { return r->has_err ? &r->err : NULL; }
int conn_req_fatal(const conn_req_t *r) { return r->fatal; }
h1_method_t conn_req_method(const conn_req_t *r) { return r->h.method; }
const char *conn_req_path(const conn_req_t *r) { return r->path; }
const char *conn_req_query(const conn_req_t *r) { return r->query; }
const char *conn_req_peer(const conn_req_t *r) { return r->k->peer; }
const char *conn_req_peer_addr(const conn_req_t *r) { return r->k->addr; }

const char *conn_req_header(const conn_req_t *r, const char *name) {
    const h1_field_t *f = h1_find(&r->h, name);
    return f ? f->value.p : NULL;
}

size_t conn_req_field_count(const conn_req_t *r) { return r->h.nfields; }

void conn_req_field(const conn_req_t *r, size_t i, const char **name, const char **value) {
    *name = r->h.fields[i].name.p;
    *value = r->h.fields[i].value.p;
}

const char *conn_req_body(const conn_req_t *r, size_t *len) {
    *len = r->body_len;
    return r->body;
}

/* ---- the listener ------------------------------------------------------------------------------
 * The listener is on only while a connection can be taken: below max_connections. When it
 * cannot be re-enabled, the retry timer tries again in CONN_RETRY_MS, and so does every close.
 * listener.c checks after each accepted connection whether the listener is still on, so
 * disabling it here also stops the accept loop in progress. */

/* Takes a slot of the cap: 1, or 0 when it is full (force: takes one anyway, at the stop). The
 * one that fills the cap logs and counts the episode. */
static int cap_reserve(conn_t *c, int force) {
    conn_cap_t *cap = c->cap;
    uint64_t cur = __atomic_load_n(&cap->open, __ATOMIC_RELAXED);
    do {
        if (cur >= cap->max && !force)
            return 0;
    } while (!__atomic_compare_exchange_n(&cap->open, &cur, cur + 1, 1, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    if (cur + 1 == cap->max) {
        __atomic_fetch_add(&cap->limit_reached, 1, __ATOMIC_RELAXED);
        log_warn(c->component, "connection limit reached", "#max_connections",
                 (long long)cap->max, NULL);
    }
    return 1;
}

/* A connection closed: its slot is free. The close that ends an episode at the cap logs it and
 * wakes the cap's other listeners (theirs may be paused, or hold a waiting connection). */
static void cap_release(conn_t *c) {
    conn_cap_t *cap = c->cap;
    uint64_t was = __atomic_fetch_sub(&cap->open, 1, __ATOMIC_RELAXED);
    if (was != cap->max)
        return;
    if (c->listener) /* not at the stop, when no listener takes connections any more */
        log_info(c->component, "accepting connections again", "#open", (long long)(was - 1),
                 "#max_connections", (long long)cap->max, NULL);
    if (!cap->shared)
        return;
    uint64_t one = 1;
    pthread_mutex_lock(&cap->lock);
    for (conn_t *m = cap->members; m; m = m->cap_next)
        if (m != c && m->wake_fd >= 0 && write(m->wake_fd, &one, sizeof one) < 0) {
            /* EAGAIN only: a wake-up is pending already */
        }
    pthread_mutex_unlock(&cap->lock);
}

static void link_admit(conn_t *c, evutil_socket_t fd, struct sockaddr *sa);

static void listener_sync(conn_t *c) {
    if (!c->listener)
        return;
    /* Connections taken over the cap come first: they were accepted before any new one. */
    while (c->waiting_cnt > 0 && cap_reserve(c, 0)) {
        conn_waiting_t w = c->waiting[0];
        memmove(c->waiting, c->waiting + 1, --c->waiting_cnt * sizeof *c->waiting);
        link_admit(c, w.fd, (struct sockaddr *)&w.sa);
    }
    int full = c->waiting_cnt > 0 ||
               __atomic_load_n(&c->cap->open, __ATOMIC_RELAXED) >= c->cap->max;
    char why[128];
    if (full) {
        if (!c->paused) {
            evconnlistener_disable(c->listener);
            c->paused = 1;
        }
        return;
    }
    if (!c->paused)
        return;
    errno = 0;
    if (evconnlistener_enable(c->listener) == 0) {
        c->paused = 0;
        if (c->failing)
            log_info(c->component, "accepting connections again", "#open",
                     (long long)STAT_GET(c->cap->open), "#max_connections",
                     (long long)c->cap->max, NULL);
        c->failing = 0;
        evtimer_del(c->retry);
        return;
    }
    snprintf(why, sizeof why, "%s", errno ? strerror(errno) : "libevent gave no reason");
    if (!c->failing)
        log_error(c->component, "cannot accept connections again; retrying", "reason", why,
                  "#retry_ms", (long long)CONN_RETRY_MS, NULL);
    c->failing = 1;
    struct timeval tv = {CONN_RETRY_MS / 1000, (CONN_RETRY_MS % 1000) * 1000};
    evtimer_add(c->retry, &tv);
}

/* Another loop freed a slot of the shared cap. */
static void on_wake(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0) {
        /* EAGAIN: another read took it */
    }
    listener_sync(arg);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    listener_sync(arg);
}

/* Grows the waiting list: 0, or -1 when out of memory (the old one stays). */
static int grow_waiting(conn_t *c) {
    size_t n = c->waiting_cap ? 2 * c->waiting_cap : 4;
    conn_waiting_t *w = realloc(c->waiting, n * sizeof *w);
    if (!w)
        return -1;
    c->waiting = w;
    c->waiting_cap = n;
    return 0;
}

/* Sets up an accepted connection that holds a slot of the cap. */
static void link_admit(conn_t *c, evutil_socket_t fd, struct sockaddr *sa) {
    conn_link_t *k = calloc(1, sizeof *k);
    SSL *ssl = NULL;
    if (!k || !(k->timer = evtimer_new(c->base, on_timer, k)))
        goto nomem;
    k->c = c;
    k->fd = fd;
    peer_format(sa, k->peer, sizeof k->peer, k->addr, sizeof k->addr);
    if (c->tls) {
        if (!(ssl = SSL_new(c->tls)))
            goto nomem;
        /* With BEV_OPT_CLOSE_ON_FREE the bufferevent owns ssl and fd, also when it fails. */
        k->bev = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                BEV_OPT_CLOSE_ON_FREE);
        fd = -1;
        if (!k->bev)
            goto nomem;
        k->ssl = ssl;
        SSL_set_app_data(ssl, k);
        SSL_set_info_callback(ssl, on_tls_info);
        bufferevent_openssl_set_allow_dirty_shutdown(k->bev, 1);
        k->phase = CONN_HANDSHAKE;
    } else {
        if (!(k->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE)))
            goto nomem;
        fd = -1; /* the bufferevent's now */
        if (!(k->rev = event_new(c->base, bufferevent_getfd(k->bev), EV_READ | EV_PERSIST,
                                 link_readable, k)))
            goto nomem;
        k->phase = CONN_IDLE;
    }
    fd = -1;
    struct timeval wt = c->idle; /* an answer the client does not read */
    bufferevent_set_timeouts(k->bev, NULL, &wt);
    bufferevent_setcb(k->bev, on_read, on_write, on_event, k);
    link_reading(k, 1);
    LIST_INSERT_HEAD(&c->links, k, entry);
    STAT_ADD(c->st.open, 1);
    timer_set(k, k->phase == CONN_HANDSHAKE ? &c->deadline : &c->idle);
    return;
nomem:
    log_error(c->component, "cannot set up a connection: out of memory", "peer",
              k ? k->peer : "?", NULL);
    if (fd >= 0)
        evutil_closesocket(fd);
    if (k) {
        if (k->timer)
            event_free(k->timer);
        if (k->bev)
            bufferevent_free(k->bev); /* closes the socket */
        free(k);
    }
    cap_release(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg) {
    (void)l;
    conn_t *c = arg;
    if (cap_reserve(c, 0)) {
        link_admit(c, fd, sa);
    } else if (c->waiting_cnt < c->waiting_cap || grow_waiting(c) == 0) {
        /* Another loop took the last slot since this listener last looked: wait for one. */
        conn_waiting_t *w = &c->waiting[c->waiting_cnt++];
        w->fd = fd;
        w->salen = socklen < (int)sizeof w->sa ? socklen : (int)sizeof w->sa;
        memcpy(&w->sa, sa, (size_t)w->salen);
    } else {
        log_error(c->component, "cannot hold a connection over the limit: out of memory", NULL);
        evutil_closesocket(fd);
    }
    listener_sync(c);
}

/* SO_REUSEPORT lets any socket of this user with the option bind the port too, so a second
 * daemon on the same address would share the traffic instead of failing. A plain bind first
 * (SO_REUSEADDR only, as the listener: TIME_WAIT leftovers do not count) fails on a port
 * someone listens on. Port 0 picks the port here, written back into sa, so that the listener
 * binds the one probed. The window between the probe and the bind is a few system calls. */
static int probe_bind(struct sockaddr *sa, socklen_t salen, const char *listen, char *errstr,
                      size_t errlen) {
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1, rc = -1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, sa, salen) != 0) {
        snprintf(errstr, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        goto done;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        snprintf(errstr, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        goto done;
    }
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = ((struct sockaddr_in6 *)&bound)->sin6_port;
    else
        ((struct sockaddr_in *)sa)->sin_port = ((struct sockaddr_in *)&bound)->sin_port;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Splits "HOST:PORT" or "[V6]:PORT" and binds it. 0 with *out, or -1 with errstr. */
static int listen_on(conn_t *c, const char *listen, int reuseport, char *errstr, size_t errlen) {
    char host[256];
    /* Split ourselves: evutil_parse_sockaddr_port refuses port 0. */
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
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    if (reuseport != CONN_REUSEPORT_NONE)
        flags |= LEV_OPT_REUSEABLE_PORT;
    if (reuseport == CONN_REUSEPORT_FIRST && probe_bind(ai->ai_addr, (socklen_t)ai->ai_addrlen,
                                                        listen, errstr, errlen) != 0) {
        evutil_freeaddrinfo(ai);
        return -1;
    }
    c->listener = evconnlistener_new_bind(c->base, on_accept, c, flags, 1024, ai->ai_addr,
                                          (int)ai->ai_addrlen);
    evutil_freeaddrinfo(ai);
    if (!c->listener) {
        snprintf(errstr, errlen, "cannot listen on %s: %s", listen, strerror(errno));
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    getsockname(evconnlistener_get_fd(c->listener), (struct sockaddr *)&bound, &blen);
    c->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

static struct timeval ms_tv(struct event_base *base, int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    /* Timers of one length: libevent keeps them in a queue, not its heap. */
    const struct timeval *common = event_base_init_common_timeout(base, &tv);
    return common ? *common : tv;
}

conn_t *conn_new(struct event_base *base, const conn_opts_t *o, conn_handler handler, void *arg,
                 char *errstr, size_t errlen) {
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        SSL_CTX_free(o->tls);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    LIST_INIT(&c->links);
    c->base = base;
    c->tls = o->tls;
    snprintf(c->component, sizeof c->component, "%s", o->component ? o->component : "http");
    c->handler = handler;
    c->arg = arg;
    c->wake_fd = -1;
    if (o->cap) {
        c->cap = o->cap;
    } else if (!(c->cap = c->own_cap = conn_cap_new(o->max_connections))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    } else {
        c->own_cap->shared = 0;
    }
    if (c->cap->shared) {
        if ((c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0 ||
            !(c->wake_ev = event_new(base, c->wake_fd, EV_READ | EV_PERSIST, on_wake, c)) ||
            event_add(c->wake_ev, NULL) != 0) {
            snprintf(errstr, errlen, "cannot make the connection limit's wake-up: %s",
                     strerror(errno));
            goto fail;
        }
        pthread_mutex_lock(&c->cap->lock);
        c->cap_next = c->cap->members;
        c->cap->members = c;
        pthread_mutex_unlock(&c->cap->lock);
    }
    c->deadline_ms = o->request_timeout_ms;
    c->deadline = ms_tv(base, o->request_timeout_ms);
    c->idle = ms_tv(base, o->idle_timeout_ms);
    c->linger = ms_tv(base, CONN_LINGER_MS);
    c->lim.max_head = o->max_header_bytes;
    c->lim.max_fields = o->max_headers;
    c->lim.max_body = o->max_body;
    /* Chunk framing may take some room of its own, but not without bound. */
    c->max_wire = (size_t)o->max_body * 2 + 65536;
    c->fields_cap = o->max_headers + 1;
    if (!(c->scratch = malloc(o->max_header_bytes + 2)) ||
        !(c->fields = calloc(c->fields_cap, sizeof *c->fields)) ||
        !(c->retry = evtimer_new(base, on_retry, c))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    if (listen_on(c, o->listen, o->reuseport, errstr, errlen) != 0)
        goto fail;
    return c;
fail:
    conn_free(c);
    return NULL;
}

int conn_port(const conn_t *c) { return c->port; }

void conn_set_tls(conn_t *c, SSL_CTX *tls) {
    if (!c) {
        SSL_CTX_free(tls);
        return;
    }
    char was[2 * 32 + 1], now[2 * 32 + 1];
    tls_fingerprint(c->tls, was);
    tls_fingerprint(tls, now);
    if (c->tls && !tls)
        log_warn(c->component, "TLS off for new connections: the webhook listener speaks plain "
                 "HTTP", NULL);
    else if (!c->tls && tls)
        log_info(c->component, "TLS on for new connections", "cert_sha256", now, NULL);
    else if (tls && strcmp(was, now) != 0)
        log_info(c->component, "a new TLS certificate for new connections", "cert_sha256", now,
                 "previous_sha256", was, NULL);
    SSL_CTX_free(c->tls); /* each open connection's SSL holds a reference of its own */
    c->tls = tls;
}

int conn_tls_enabled(const conn_t *c) { return c && c->tls; }

void conn_get_stats(const conn_t *c, conn_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->open = STAT_GET(c->st.open);
    out->max_open = c->cap->max;
    out->limit_reached = STAT_GET(c->cap->limit_reached);
    out->deadline_cuts = STAT_GET(c->st.deadline_cuts);
    out->tls_failures = STAT_GET(c->st.tls_failures);
}

conn_cap_t *conn_cap_new(uint64_t max) {
    conn_cap_t *cap = calloc(1, sizeof *cap);
    if (!cap)
        return NULL;
    if (pthread_mutex_init(&cap->lock, NULL) != 0) {
        free(cap);
        return NULL;
    }
    cap->max = max;
    cap->shared = 1;
    return cap;
}

void conn_cap_free(conn_cap_t *cap) {
    if (!cap)
        return;
    pthread_mutex_destroy(&cap->lock);
    free(cap);
}

void conn_set_stopping(conn_t *c) {
    if (c)
        c->stopping = 1;
}

void conn_stop_accepting(conn_t *c) {
    if (!c || !c->listener)
        return;
    /* Connections the kernel completed but nobody accepted yet would be reset when the socket
     * closes, their requests with them: take them first. */
    evutil_socket_t lfd = evconnlistener_get_fd(c->listener);
    for (size_t i = 0; i < c->waiting_cnt; i++) { /* over the cap too: answered, not reset */
        cap_reserve(c, 1);
        link_admit(c, c->waiting[i].fd, (struct sockaddr *)&c->waiting[i].sa);
    }
    c->waiting_cnt = 0;
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        evutil_socket_t fd =
            accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            break;
        cap_reserve(c, 1);
        link_admit(c, fd, (struct sockaddr *)&ss);
    }
    evconnlistener_free(c->listener);
    c->listener = NULL;
    evtimer_del(c->retry);
}

void conn_close_idle(conn_t *c) {
    if (!c)
        return;
    conn_link_t *k = LIST_FIRST(&c->links), *next;
    for (; k; k = next) {
        next = LIST_NEXT(k, entry);
        if (k->busy || k->writing || k->lingering || k->phase != CONN_IDLE || more_input(k))
            continue;
        if (k->served) {
            link_close(k); /* kept alive after an answer and quiet since */
        } else {
            /* Just accepted: its request is likely on the way. A second to send it. */
            struct timeval soon = {1, 0};
            if (evutil_timercmp(&c->idle, &soon, <))
                soon = c->idle;
            timer_set(k, &soon);
        }
    }
}

size_t conn_open_count(const conn_t *c) { return c ? (size_t)c->st.open : 0; }

void conn_when_flushed(conn_t *c, void (*cb)(void *arg), void *arg) {
    c->flushed = cb;
    c->flushed_arg = arg;
    flushed_check(c);
}

void conn_free(conn_t *c) {
    if (!c)
        return;
    conn_stop_accepting(c);
    conn_link_t *k;
    while ((k = LIST_FIRST(&c->links))) {
        k->busy = 0; /* no answer may come any more */
        link_close(k);
    }
    if (c->retry)
        event_free(c->retry);
    if (c->cap && c->cap->shared) {
        pthread_mutex_lock(&c->cap->lock);
        for (conn_t **pp = &c->cap->members; *pp; pp = &(*pp)->cap_next)
            if (*pp == c) {
                *pp = c->cap_next;
                break;
            }
        pthread_mutex_unlock(&c->cap->lock);
    }
    if (c->wake_ev)
        event_free(c->wake_ev);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    for (size_t i = 0; i < c->waiting_cnt; i++)
        evutil_closesocket(c->waiting[i].fd);
    free(c->waiting);
    conn_cap_free(c->own_cap);
    SSL_CTX_free(c->tls);
    free(c->scratch);
    free(c->fields);
    free(c);
}
