/* test_conn.c: the HTTP server (conn.c): the deadline state machine, the TLS config checks, and
 * a real listener on loopback driven by clients in the same event loop (answers reach the
 * socket before a close, plain and TLS; keep-alive and pipelining in order; HEAD without a
 * body; framing errors answered and closed; the connection cap; the request and handshake
 * deadlines, pipelined requests included; the header count; graceful stop; a TLS context
 * swapped for new connections; injected allocation failures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "log.h"

/* ---- injected failures ---------------------------------------------------------------------
 * This test is linked with --wrap for these functions (tests/CMakeLists.txt): the calls made by
 * conn.c and by this file reach the wrappers, libevent's and OpenSSL's own calls do not. Each
 * counter makes that many calls fail, then lets them through. */
static int fail_ssl_new, fail_socket_new, fail_listener_enable;

SSL *__real_SSL_new(SSL_CTX *ctx);
SSL *__wrap_SSL_new(SSL_CTX *ctx);
SSL *__wrap_SSL_new(SSL_CTX *ctx) {
    if (fail_ssl_new > 0) {
        fail_ssl_new--;
        return NULL;
    }
    return __real_SSL_new(ctx);
}

struct bufferevent *__real_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options);
struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options);
struct bufferevent *__wrap_bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
                                                  int options) {
    if (fail_socket_new > 0) {
        fail_socket_new--;
        return NULL;
    }
    return __real_bufferevent_socket_new(base, fd, options);
}

int __real_evconnlistener_enable(struct evconnlistener *l);
int __wrap_evconnlistener_enable(struct evconnlistener *l);
int __wrap_evconnlistener_enable(struct evconnlistener *l) {
    if (fail_listener_enable > 0) {
        fail_listener_enable--;
        errno = ENOMEM;
        return -1;
    }
    return __real_evconnlistener_enable(l);
}

/* ---- the deadline state machine ------------------------------------------------------------ */

typedef struct step {
    conn_phase_t from;
    conn_event_t ev;
    conn_phase_t to;
    conn_timer_op_t op;
} step_t;

static void test_phase_machine(void **state) {
    (void)state;
    static const step_t steps[] = {
        /* a request: first byte starts the clock, arrival stops it, our answer ends it */
        {CONN_IDLE, CONN_EV_INPUT, CONN_RECEIVING, CONN_TIMER_START},
        {CONN_RECEIVING, CONN_EV_INPUT, CONN_RECEIVING, CONN_TIMER_KEEP},
        {CONN_RECEIVING, CONN_EV_REQUEST, CONN_ANSWERING, CONN_TIMER_STOP},
        {CONN_ANSWERING, CONN_EV_SENT, CONN_IDLE, CONN_TIMER_KEEP},
        /* 100 Continue or libevent's own error page: the clock runs on */
        {CONN_RECEIVING, CONN_EV_SENT, CONN_RECEIVING, CONN_TIMER_KEEP},
        {CONN_RECEIVING, CONN_EV_SENT_MORE, CONN_RECEIVING, CONN_TIMER_KEEP},
        /* pipelined: input while answering waits; its clock starts once the answer is sent */
        {CONN_ANSWERING, CONN_EV_INPUT, CONN_ANSWERING, CONN_TIMER_KEEP},
        {CONN_ANSWERING, CONN_EV_SENT_MORE, CONN_RECEIVING, CONN_TIMER_START},
        /* a second "sent" (the writer tells evhttp again) changes nothing */
        {CONN_IDLE, CONN_EV_SENT, CONN_IDLE, CONN_TIMER_KEEP},
        {CONN_IDLE, CONN_EV_SENT_MORE, CONN_IDLE, CONN_TIMER_KEEP},
        /* TLS: the first plaintext byte restarts the clock; a finished handshake stops it */
        {CONN_HANDSHAKE, CONN_EV_INPUT, CONN_RECEIVING, CONN_TIMER_START},
        {CONN_HANDSHAKE, CONN_EV_TLS_DONE, CONN_IDLE, CONN_TIMER_STOP},
        /* TLS 1.3 reports "done" again after the handshake: nothing changes */
        {CONN_RECEIVING, CONN_EV_TLS_DONE, CONN_RECEIVING, CONN_TIMER_KEEP},
        {CONN_IDLE, CONN_EV_TLS_DONE, CONN_IDLE, CONN_TIMER_KEEP},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        conn_timer_op_t op = (conn_timer_op_t)-1;
        conn_phase_t to = conn_phase_next(steps[i].from, steps[i].ev, &op);
        if (to != steps[i].to || op != steps[i].op)
            fail_msg("step %zu: got phase %d op %d", i, to, op);
    }
}

/* ---- TLS files ---------------------------------------------------------------------------- */

static char tmpdir[64];
static char cert_path[128], key_path[128], other_key_path[128], enc_key_path[128],
    garbage_path[128], cert2_path[128], key2_path[128];

static EVP_PKEY *new_key(void) {
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static void write_key(const char *path, EVP_PKEY *k, const EVP_CIPHER *enc) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, enc, (unsigned char *)(enc ? "pw" : NULL),
                                          enc ? 2 : 0, NULL, NULL),
                     1);
    fclose(f);
}

/* A self-signed certificate for 127.0.0.1 with key k, as PEM in path. */
static int write_cert(const char *path, EVP_PKEY *k) {
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    int ok = X509_sign(x, k, EVP_sha256()) != 0;
    FILE *f = ok ? fopen(path, "w") : NULL;
    ok = f && PEM_write_X509(f, x) == 1;
    if (f)
        fclose(f);
    X509_free(x);
    return ok ? 0 : -1;
}

/* A self-signed certificate for 127.0.0.1 and its key, a second key, the first key encrypted,
 * a file that is not PEM, and a second certificate with the second key (a renewal). */
static int make_files(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hb-test-conn-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(cert_path, sizeof cert_path, "%s/cert.pem", tmpdir);
    snprintf(key_path, sizeof key_path, "%s/key.pem", tmpdir);
    snprintf(other_key_path, sizeof other_key_path, "%s/other.pem", tmpdir);
    snprintf(enc_key_path, sizeof enc_key_path, "%s/enc.pem", tmpdir);
    snprintf(garbage_path, sizeof garbage_path, "%s/garbage.pem", tmpdir);
    snprintf(cert2_path, sizeof cert2_path, "%s/cert2.pem", tmpdir);
    snprintf(key2_path, sizeof key2_path, "%s/key2.pem", tmpdir);
    EVP_PKEY *k = new_key(), *other = new_key();
    if (write_cert(cert_path, k) != 0 || write_cert(cert2_path, other) != 0)
        return -1;
    write_key(key_path, k, NULL);
    write_key(other_key_path, other, NULL);
    write_key(key2_path, other, NULL);
    write_key(enc_key_path, k, EVP_aes_128_cbc());
    FILE *f = fopen(garbage_path, "w");
    if (!f)
        return -1;
    fputs("this is not PEM\n", f);
    fclose(f);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
    return 0;
}

static int remove_files(void **state) {
    (void)state;
    const char *files[] = {cert_path,    key_path,   other_key_path, enc_key_path,
                           garbage_path, cert2_path, key2_path};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(tmpdir);
    return 0;
}

static hb_config_t *tls_config(const char *cert, const char *key) {
    hb_config_t *cfg = config_new();
    assert_non_null(cfg);
    free(cfg->http_tls_cert_file);
    free(cfg->http_tls_key_file);
    cfg->http_tls_cert_file = strdup(cert);
    cfg->http_tls_key_file = strdup(key);
    cfg->path = strdup("test.conf");
    return cfg;
}

/* conn_tls_from_config fails, with every fragment of want in the message. */
static void expect_tls_error(const char *cert, const char *key, const char *want1,
                             const char *want2) {
    hb_config_t *cfg = tls_config(cert, key);
    SSL_CTX *ctx = (SSL_CTX *)1;
    char err[1024] = "";
    assert_int_equal(conn_tls_from_config(cfg, &ctx, err, sizeof err), -1);
    assert_null(ctx);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
    if (strncmp(err, "test.conf: ", 11) != 0)
        fail_msg("error \"%s\" does not start with the config file", err);
    config_free(cfg);
}

static void test_tls_config(void **state) {
    (void)state;
    char err[1024] = "";
    SSL_CTX *ctx = (SSL_CTX *)1;
    hb_config_t *cfg = tls_config("", "");
    assert_int_equal(conn_tls_from_config(cfg, &ctx, err, sizeof err), 0);
    assert_null(ctx); /* plain HTTP */
    config_free(cfg);

    cfg = tls_config(cert_path, key_path);
    assert_int_equal(conn_tls_from_config(cfg, &ctx, err, sizeof err), 0);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    SSL_CTX_free(ctx);
    config_free(cfg);

    expect_tls_error(cert_path, "", "http.tls_cert_file is set but http.tls_key_file is not",
                     NULL);
    expect_tls_error("", key_path, "http.tls_key_file is set but http.tls_cert_file is not",
                     NULL);
    expect_tls_error("/nonexistent/cert.pem", key_path, "http.tls_cert_file '/nonexistent/",
                     "No such file or directory");
    expect_tls_error(cert_path, "/nonexistent/key.pem", "http.tls_key_file '/nonexistent/",
                     "No such file or directory");
    expect_tls_error(garbage_path, key_path, "not a usable PEM certificate", "PEM");
    expect_tls_error(cert_path, garbage_path, "not a usable unencrypted PEM private key", NULL);
    expect_tls_error(cert_path, enc_key_path, "not a usable unencrypted PEM private key", NULL);
    expect_tls_error(cert_path, other_key_path, "does not match the certificate",
                     "key values mismatch");
}

/* ---- a listener and clients in one loop --------------------------------------------------- */

typedef struct server {
    struct event_base *base;
    conn_t *conn;
    int port;
    size_t body_len; /* bytes of 'x' in each 200 answer */
    char *body;
    int requests;    /* requests that reached the handler */
    int refused;     /* requests the handler got with an error */
    int last_status; /* of the last refused one */
    char last_path[64];
} server_t;

typedef struct client {
    server_t *srv;
    struct bufferevent *bev;
    struct evbuffer *got;
    int closed;
} client_t;

static void on_request(void *arg, conn_req_t *req) {
    server_t *s = arg;
    s->requests++;
    const h1_error_t *err = conn_req_error(req);
    if (err) {
        s->refused++;
        s->last_status = err->status;
        conn_reply(req, err->status, "application/json", NULL, "{}", 2);
        return;
    }
    snprintf(s->last_path, sizeof s->last_path, "%s", conn_req_path(req));
    conn_reply(req, 200, "text/plain", "X-Test: 1\r\n", s->body, s->body_len);
}

static void server_start(server_t *s, hb_config_t *cfg, size_t body_len) {
    char err[1024] = "";
    memset(s, 0, sizeof *s);
    s->body_len = body_len;
    assert_non_null(s->body = malloc(body_len + 1));
    memset(s->body, 'x', body_len);
    assert_non_null(s->base = event_base_new());
    conn_opts_t o = {
        .component = "http",
        .listen = "127.0.0.1:0",
        .max_connections = (uint64_t)cfg->http_max_connections,
        .request_timeout_ms = cfg->http_request_timeout_ms,
        .idle_timeout_ms = 30000,
        .max_header_bytes = (size_t)cfg->http_max_header_bytes,
        .max_headers = (size_t)cfg->http_max_headers,
        .max_body = (uint64_t)cfg->http_max_body_bytes,
    };
    if (conn_tls_from_config(cfg, &o.tls, err, sizeof err) != 0)
        fail_msg("tls: %s", err);
    s->conn = conn_new(s->base, &o, on_request, s, err, sizeof err);
    if (!s->conn)
        fail_msg("conn_new: %s", err);
    s->port = conn_port(s->conn);
    config_free(cfg);
}

static void server_stop(server_t *s) {
    conn_free(s->conn);
    event_base_free(s->base);
    free(s->body);
}

static void client_read(struct bufferevent *bev, void *arg) {
    client_t *c = arg;
    evbuffer_add_buffer(c->got, bufferevent_get_input(bev));
}

static void client_event(struct bufferevent *bev, short what, void *arg) {
    client_t *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        evbuffer_add_buffer(c->got, bufferevent_get_input(bev));
        c->closed = 1;
    }
}

/* A connected client; TLS when tls is a client context. */
static client_t *client_new(server_t *s, SSL_CTX *tls) {
    client_t *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->srv = s;
    c->got = evbuffer_new();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    evutil_make_socket_nonblocking(fd);
    if (tls)
        c->bev = bufferevent_openssl_socket_new(s->base, fd, SSL_new(tls),
                                                BUFFEREVENT_SSL_CONNECTING,
                                                BEV_OPT_CLOSE_ON_FREE);
    else
        c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    assert_non_null(c->bev);
    bufferevent_setcb(c->bev, client_read, NULL, client_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

static void client_send(client_t *c, const char *text) {
    bufferevent_write(c->bev, text, strlen(text));
}

static void client_free(client_t *c) {
    bufferevent_free(c->bev);
    evbuffer_free(c->got);
    free(c);
}

static void on_give_up(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    *(int *)arg = 1;
}

/* Runs the loop until done(arg) or ms pass; returns done(arg). */
static int run_until(server_t *s, int (*done)(void *), void *arg, int ms) {
    int timed_out = 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(s->base, on_give_up, &timed_out);
    evtimer_add(t, &tv);
    while (!(done && done(arg)) && !timed_out)
        event_base_loop(s->base, EVLOOP_ONCE);
    event_free(t);
    return done ? done(arg) : 0;
}

static int is_closed(void *arg) { return ((client_t *)arg)->closed; }

/* How many times needle occurs in what c received. */
static int count_in(client_t *c, const char *needle) {
    size_t len = evbuffer_get_length(c->got);
    const char *p = (const char *)evbuffer_pullup(c->got, -1);
    int n = 0;
    for (const char *q = p; q && (q = memmem(q, len - (size_t)(q - p), needle, strlen(needle)));
         q++)
        n++;
    return n;
}

typedef struct want {
    client_t *c;
    const char *needle;
    int n;
} want_t;

static int has_answers(void *arg) {
    want_t *w = arg;
    return count_in(w->c, w->needle) >= w->n;
}

static hb_config_t *plain_config(void) {
    hb_config_t *cfg = config_new();
    assert_non_null(cfg);
    return cfg;
}

static conn_stats_t stats(server_t *s) {
    conn_stats_t st;
    conn_get_stats(s->conn, &st);
    return st;
}

/* An answer with Connection: close reaches the client whole before the socket closes, small or
 * large (large: the socket fills up and the writer waits for it). */
static void check_close_answer(hb_config_t *cfg, SSL_CTX *client_tls, size_t body_len) {
    server_t s;
    server_start(&s, cfg, body_len);
    client_t *c = client_new(&s, client_tls);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(run_until(&s, is_closed, c, 20000));
    size_t len = evbuffer_get_length(c->got);
    const char *p = (const char *)evbuffer_pullup(c->got, -1);
    const char *end = p ? memmem(p, len, "\r\n\r\n", 4) : NULL;
    if (!end || strncmp(p, "HTTP/1.1 200", 12) != 0)
        fail_msg("no 200 answer (%zu bytes received)", len);
    assert_int_equal(len - (size_t)(end + 4 - p), body_len);
    client_free(c);
    run_until(&s, NULL, NULL, 50); /* the server sees the close */
    assert_int_equal(stats(&s).open, 0);
    server_stop(&s);
}

static void test_close_answer_is_whole_plain(void **state) {
    (void)state;
    check_close_answer(plain_config(), NULL, 100);
    check_close_answer(plain_config(), NULL, 8 << 20);
}

/* A client context that trusts only the certificate in ca. */
static SSL_CTX *client_ctx_for(const char *ca) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return ctx;
}

static SSL_CTX *client_ctx(void) { return client_ctx_for(cert_path); }

static void test_close_answer_is_whole_tls(void **state) {
    (void)state;
    SSL_CTX *cli = client_ctx();
    check_close_answer(tls_config(cert_path, key_path), cli, 100);
    check_close_answer(tls_config(cert_path, key_path), cli, 8 << 20);
    SSL_CTX_free(cli);
}

/* Pipelined requests on one connection are each answered (the writer hands over repeatedly). */
static void test_keep_alive_pipelined(void **state) {
    (void)state;
    server_t s;
    server_start(&s, plain_config(), 10);
    client_t *c = client_new(&s, NULL);
    client_send(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {c, "HTTP/1.1 200", 3};
    assert_true(run_until(&s, has_answers, &w, 5000));
    assert_false(c->closed);
    assert_int_equal(stats(&s).open, 1);
    client_free(c);
    server_stop(&s);
}

/* Expect: 100-continue: the interim answer goes out before the body is read; both answers
 * reach the client. */
static void test_expect_continue(void **state) {
    (void)state;
    server_t s;
    server_start(&s, plain_config(), 10);
    client_t *c = client_new(&s, NULL);
    client_send(c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   "Content-Length: 5\r\n\r\n");
    want_t w = {c, "HTTP/1.1 100 Continue", 1};
    assert_true(run_until(&s, has_answers, &w, 3000));
    client_send(c, "hello");
    w.needle = "HTTP/1.1 200";
    assert_true(run_until(&s, has_answers, &w, 3000));
    client_free(c);
    server_stop(&s);
}

static int open_is(void *arg) {
    void **a = arg;
    return stats((server_t *)a[0]).open == (uint64_t)(uintptr_t)a[1];
}

/* At the cap the listener stops accepting; the next client waits in the backlog and is served
 * once a connection closes. */
static void test_max_connections(void **state) {
    (void)state;
    hb_config_t *cfg = plain_config();
    cfg->http_max_connections = 1;
    server_t s;
    server_start(&s, cfg, 10);
    client_t *a = client_new(&s, NULL);
    void *one[] = {&s, (void *)(uintptr_t)1};
    assert_true(run_until(&s, open_is, one, 5000));
    assert_int_equal(stats(&s).limit_reached, 1);
    client_t *b = client_new(&s, NULL); /* the kernel completes the handshake: backlog */
    client_send(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {b, "HTTP/1.1 200", 1};
    assert_false(run_until(&s, has_answers, &w, 300)); /* not accepted while a is open */
    assert_int_equal(stats(&s).open, 1);
    client_free(a);
    assert_true(run_until(&s, has_answers, &w, 5000));
    assert_int_equal(stats(&s).open, 1);
    assert_int_equal(stats(&s).limit_reached, 2); /* b filled the one slot again */
    client_free(b);
    server_stop(&s);
}

/* A request that does not arrive whole within the deadline is cut; idle time before it is not
 * counted. */
static void test_request_deadline(void **state) {
    (void)state;
    hb_config_t *cfg = plain_config();
    cfg->http_request_timeout_ms = 150;
    server_t s;
    server_start(&s, cfg, 10);
    client_t *idle = client_new(&s, NULL);
    client_t *slow = client_new(&s, NULL);
    client_send(slow, "GET / HTTP/1.1\r\nHost: x\r\nX-Half: ");
    assert_true(run_until(&s, is_closed, slow, 3000));
    assert_int_equal(evbuffer_get_length(slow->got), 0); /* no answer: dropped */
    assert_int_equal(stats(&s).deadline_cuts, 1);
    /* idle has been connected for longer than the deadline by now, and is served */
    client_send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {idle, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &w, 3000));
    /* ... and again after more idle time on the kept-alive connection */
    run_until(&s, NULL, NULL, 300);
    client_send(idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    w.n = 2;
    assert_true(run_until(&s, has_answers, &w, 3000));
    assert_int_equal(stats(&s).deadline_cuts, 1);
    client_free(idle);
    client_free(slow);
    server_stop(&s);
}

static void test_max_headers(void **state) {
    (void)state;
    hb_config_t *cfg = plain_config();
    cfg->http_max_headers = 3;
    server_t s;
    server_start(&s, cfg, 10);
    client_t *c = client_new(&s, NULL);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
    want_t w = {c, "HTTP/1.1 431", 1};
    assert_true(run_until(&s, has_answers, &w, 3000));
    assert_int_equal(s.refused, 1);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"); /* exactly 3 */
    w.needle = "HTTP/1.1 200";
    assert_true(run_until(&s, has_answers, &w, 3000));
    assert_int_equal(s.refused, 1);
    client_free(c);
    server_stop(&s);
}

/* Plain HTTP to the TLS listener: a failed handshake, counted, and no answer in clear. */
static void test_tls_handshake_failure(void **state) {
    (void)state;
    server_t s;
    server_start(&s, tls_config(cert_path, key_path), 10);
    client_t *c = client_new(&s, NULL);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, c, 3000));
    assert_int_equal(count_in(c, "HTTP/1.1"), 0);
    client_free(c);
    void *zero[] = {&s, (void *)(uintptr_t)0};
    assert_true(run_until(&s, open_is, zero, 3000));
    assert_int_equal(stats(&s).tls_failures, 1);
    /* A connect-and-close sends nothing: not counted. */
    c = client_new(&s, NULL);
    void *one[] = {&s, (void *)(uintptr_t)1};
    assert_true(run_until(&s, open_is, one, 3000));
    client_free(c);
    assert_true(run_until(&s, open_is, zero, 3000));
    assert_int_equal(stats(&s).tls_failures, 1);
    server_stop(&s);
}

/* A handshake that stalls is cut by the request deadline; one that finished is not, however
 * long the client then waits before its request. */
static void test_tls_handshake_deadline(void **state) {
    (void)state;
    hb_config_t *cfg = tls_config(cert_path, key_path);
    cfg->http_request_timeout_ms = 150;
    server_t s;
    server_start(&s, cfg, 10);
    SSL_CTX *cli = client_ctx();
    client_t *done = client_new(&s, cli);
    client_t *stall = client_new(&s, NULL);
    client_send(stall, "\x16\x03\x01"); /* the start of a ClientHello */
    assert_true(run_until(&s, is_closed, stall, 3000));
    assert_int_equal(stats(&s).deadline_cuts, 1);
    assert_int_equal(stats(&s).tls_failures, 0);
    run_until(&s, NULL, NULL, 300); /* done's handshake finished long ago */
    client_send(done, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {done, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &w, 3000));
    assert_int_equal(stats(&s).deadline_cuts, 1);
    client_free(done);
    client_free(stall);
    SSL_CTX_free(cli);
    server_stop(&s);
}

/* A request plus the start of the next in one write, then silence: the second request's bytes
 * wait unparsed while the first is answered, and its clock starts once that answer is sent, so
 * the deadline cuts it (not the idle timeout, 30 s here). */
static void check_pipelined_partial(hb_config_t *cfg, SSL_CTX *client_tls) {
    cfg->http_request_timeout_ms = 300;
    server_t s;
    server_start(&s, cfg, 10);
    client_t *c = client_new(&s, client_tls);
    client_send(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Half: ");
    assert_true(run_until(&s, is_closed, c, 10000));
    assert_int_equal(count_in(c, "HTTP/1.1 200"), 1);
    assert_int_equal(stats(&s).deadline_cuts, 1);
    assert_int_equal(s.requests, 1);
    client_free(c);
    server_stop(&s);
}

static void test_pipelined_partial_is_cut(void **state) {
    (void)state;
    check_pipelined_partial(plain_config(), NULL);
    SSL_CTX *cli = client_ctx();
    check_pipelined_partial(tls_config(cert_path, key_path), cli);
    SSL_CTX_free(cli);
}

typedef struct got_len {
    client_t *c;
    size_t n;
} got_len_t;

static int got_at_least(void *arg) {
    got_len_t *g = arg;
    return g->c->closed || evbuffer_get_length(g->c->got) >= g->n;
}

/* Our time answering is not the client's: a pipelined request that arrives whole while our
 * answer to the one before waits for a client that does not read is timed from when that
 * answer is in the kernel, not from its arrival. */
static void test_pipelined_while_answering_is_not_cut(void **state) {
    (void)state;
    hb_config_t *cfg = plain_config();
    cfg->http_request_timeout_ms = 300;
    server_t s;
    const size_t body = 16 << 20; /* more than the kernel's socket buffers hold */
    server_start(&s, cfg, body);
    client_t *c = client_new(&s, NULL);
    bufferevent_disable(c->bev, EV_READ);
    client_send(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    void *one[] = {&s, (void *)(uintptr_t)1};
    assert_true(run_until(&s, open_is, one, 5000));
    while (s.requests < 1 && run_until(&s, NULL, NULL, 10))
        ;
    assert_int_equal(s.requests, 1); /* the first answer is being written */
    client_send(c, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    run_until(&s, NULL, NULL, 1500); /* five deadlines while the answer waits */
    assert_int_equal(stats(&s).deadline_cuts, 0);
    bufferevent_enable(c->bev, EV_READ);
    got_len_t g = {c, 2 * body};
    assert_true(run_until(&s, got_at_least, &g, 60000));
    assert_false(c->closed);
    assert_int_equal(count_in(c, "HTTP/1.1 200"), 2);
    assert_int_equal(s.requests, 2);
    assert_int_equal(stats(&s).deadline_cuts, 0);
    client_free(c);
    server_stop(&s);
}

/* A listener that cannot be re-enabled after the cap is tried again (the retry timer), so the
 * waiting client is served. */
static void test_listener_enable_is_retried(void **state) {
    (void)state;
    hb_config_t *cfg = plain_config();
    cfg->http_max_connections = 1;
    server_t s;
    server_start(&s, cfg, 10);
    client_t *a = client_new(&s, NULL);
    void *one[] = {&s, (void *)(uintptr_t)1};
    assert_true(run_until(&s, open_is, one, 5000));
    client_t *b = client_new(&s, NULL); /* in the backlog */
    client_send(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    fail_listener_enable = 1;
    client_free(a);
    want_t w = {b, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &w, 10000));
    assert_int_equal(fail_listener_enable, 0); /* the first try did fail */
    client_free(b);
    server_stop(&s);
}

/* Out of memory while a connection is set up: it is closed unanswered (a TLS listener never
 * answers in cleartext), and the next one is served. */
static void test_out_of_memory_closes_the_connection(void **state) {
    (void)state;
    server_t s;
    server_start(&s, tls_config(cert_path, key_path), 10);
    client_t *c = client_new(&s, NULL);
    fail_ssl_new = 1;
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, c, 10000));
    assert_int_equal(fail_ssl_new, 0);
    assert_int_equal(count_in(c, "HTTP/1.1"), 0);
    client_free(c);
    assert_int_equal(stats(&s).open, 0);
    assert_int_equal(stats(&s).tls_failures, 0);
    SSL_CTX *cli = client_ctx();
    c = client_new(&s, cli);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {c, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &w, 10000));
    client_free(c);
    SSL_CTX_free(cli);
    server_stop(&s);

    server_start(&s, plain_config(), 10);
    c = client_new(&s, NULL);
    fail_socket_new = 1;
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, c, 5000));
    assert_int_equal(fail_socket_new, 0);
    assert_int_equal(count_in(c, "HTTP/1.1"), 0);
    client_free(c);
    c = client_new(&s, NULL);
    client_send(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    w.c = c;
    assert_true(run_until(&s, has_answers, &w, 5000));
    assert_int_equal(stats(&s).open, 1);
    client_free(c);
    server_stop(&s);
}

/* Pipelined requests are answered in order, HEAD gets the length but no body, and a framing
 * error is answered by the handler, then the connection closes (what followed it is never
 * parsed). */
static void test_pipelining_head_and_framing_errors(void **state) {
    (void)state;
    server_t s;
    server_start(&s, plain_config(), 5);
    client_t *c = client_new(&s, NULL);
    client_send(c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /4 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1"
                   "\r\n\r\nxGET /5 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, c, 5000));
    size_t len = evbuffer_get_length(c->got);
    char *p = (char *)evbuffer_pullup(c->got, -1);
    char *text = strndup(p, len);
    const char *a1 = strstr(text, "HTTP/1.1 200");
    assert_non_null(a1);
    const char *b1 = strstr(a1, "\r\n\r\nxxxxx"); /* GET: the body */
    assert_non_null(b1);
    const char *a2 = strstr(b1 + 9, "HTTP/1.1 200");
    assert_non_null(a2);
    const char *a3 = strstr(a2 + 12, "HTTP/1.1 200");
    assert_non_null(a3);
    /* HEAD's answer: Content-Length 5, and the next answer follows its empty line at once. */
    assert_true(strstr(a2, "Content-Length: 5\r\n") < a3);
    assert_memory_equal(strstr(a2, "\r\n\r\n") + 4, "HTTP/1.1 200", 12);
    const char *a4 = strstr(a3 + 12, "HTTP/1.1 400");
    assert_non_null(a4);
    assert_non_null(strstr(a4, "Connection: close\r\n"));
    assert_null(strstr(a4 + 12, "HTTP/1.1"));
    assert_int_equal(s.requests, 4);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.last_status, 400);
    free(text);
    client_free(c);
    server_stop(&s);
}

/* Stopping: an answer carries Connection: close and its connection closes, unless the client
 * already sent the next request, which is answered first. */
static void test_stopping_closes_after_answers(void **state) {
    (void)state;
    server_t s;
    server_start(&s, plain_config(), 2);
    client_t *a = client_new(&s, NULL), *b = client_new(&s, NULL);
    client_send(a, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t w = {a, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &w, 5000));
    assert_int_equal(count_in(a, "Connection: close"), 0);
    conn_set_stopping(s.conn);
    client_send(a, "GET /a2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, a, 5000));
    assert_int_equal(count_in(a, "HTTP/1.1 200"), 2);
    assert_int_equal(count_in(a, "Connection: close"), 1);
    client_send(b, "GET /b1 HTTP/1.1\r\nHost: x\r\n\r\nGET /b2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, b, 5000));
    assert_int_equal(count_in(b, "HTTP/1.1 200"), 2);
    assert_int_equal(count_in(b, "Connection: close"), 1);
    assert_string_equal(s.last_path, "/b2");
    client_t *idle = client_new(&s, NULL);
    void *one[] = {&s, (void *)(uintptr_t)1};
    assert_true(run_until(&s, open_is, one, 5000));
    conn_stop_accepting(s.conn);
    conn_close_idle(s.conn);
    assert_true(run_until(&s, is_closed, idle, 5000));
    client_free(a);
    client_free(b);
    client_free(idle);
    server_stop(&s);
}

/* conn_set_tls: new connections get the new certificate, open ones keep theirs; NULL turns TLS
 * off for new connections. */
static void test_tls_swap(void **state) {
    (void)state;
    server_t s;
    server_start(&s, tls_config(cert_path, key_path), 10);
    SSL_CTX *cli1 = client_ctx_for(cert_path), *cli2 = client_ctx_for(cert2_path);
    client_t *a = client_new(&s, cli1);
    client_send(a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t wa = {a, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &wa, 5000));

    char err[1024] = "";
    SSL_CTX *ctx2 = NULL;
    hb_config_t *cfg2 = tls_config(cert2_path, key2_path);
    assert_int_equal(conn_tls_from_config(cfg2, &ctx2, err, sizeof err), 0);
    config_free(cfg2);
    conn_set_tls(s.conn, ctx2);
    client_t *b = client_new(&s, cli2); /* trusts only the new certificate */
    client_send(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t wb = {b, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &wb, 5000));
    client_t *old = client_new(&s, cli1); /* trusts only the old one */
    client_send(old, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(&s, is_closed, old, 5000));
    assert_int_equal(count_in(old, "HTTP/1.1"), 0);
    client_send(a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); /* still on the old certificate */
    wa.n = 2;
    assert_true(run_until(&s, has_answers, &wa, 5000));
    assert_false(a->closed);

    conn_set_tls(s.conn, NULL);
    assert_false(conn_tls_enabled(s.conn));
    client_t *p = client_new(&s, NULL);
    client_send(p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    want_t wp = {p, "HTTP/1.1 200", 1};
    assert_true(run_until(&s, has_answers, &wp, 5000));
    client_free(a);
    client_free(b);
    client_free(old);
    client_free(p);
    SSL_CTX_free(cli1);
    SSL_CTX_free(cli2);
    server_stop(&s);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the daemon does */
    log_set_level(LOG_LVL_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phase_machine),
        cmocka_unit_test(test_tls_config),
        cmocka_unit_test(test_close_answer_is_whole_plain),
        cmocka_unit_test(test_close_answer_is_whole_tls),
        cmocka_unit_test(test_keep_alive_pipelined),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_max_connections),
        cmocka_unit_test(test_request_deadline),
        cmocka_unit_test(test_max_headers),
        cmocka_unit_test(test_tls_handshake_failure),
        cmocka_unit_test(test_tls_handshake_deadline),
        cmocka_unit_test(test_pipelined_partial_is_cut),
        cmocka_unit_test(test_pipelined_while_answering_is_not_cut),
        cmocka_unit_test(test_listener_enable_is_retried),
        cmocka_unit_test(test_out_of_memory_closes_the_connection),
        cmocka_unit_test(test_pipelining_head_and_framing_errors),
        cmocka_unit_test(test_stopping_closes_after_answers),
        cmocka_unit_test(test_tls_swap),
    };
    return cmocka_run_group_tests(tests, make_files, remove_files);
}
