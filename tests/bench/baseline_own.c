/* hb-baseline-own: hb-baseline on hookbridge's own HTTP server (bridge/conn.c) instead of
 * evhttp: answers every request 202 with the same tiny JSON body, nothing else. Run beside
 * hb-baseline, it measures what the server layer itself costs.
 *
 *   hb-baseline-own [--listen 127.0.0.1:PORT]    (default 127.0.0.1:0)
 *
 * Prints "port <N>" on stdout once it listens; exits 0 on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "conn.h"
#include "log.h"

static const char BODY[] = "{\"id\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";

static void on_request(void *arg, conn_req_t *req) {
    (void)arg;
    size_t len;
    conn_req_body(req, &len); /* the body is read whole before this runs */
    conn_reply(req, 202, "application/json", NULL, BODY, sizeof BODY - 1);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv) {
    const char *listen = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen = argv[++i];
        } else {
            fprintf(stderr, "Usage: %s [--listen HOST:PORT]\n", argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_ERROR);
    struct event_base *base = event_base_new();
    char err[512];
    conn_opts_t o = {.component = "bench", .listen = listen, .max_connections = 10000,
                     .request_timeout_ms = 30000, .idle_timeout_ms = 30000,
                     .max_header_bytes = 16384, .max_headers = 100, .max_body = 1 << 20};
    conn_t *c = base ? conn_new(base, &o, on_request, NULL, err, sizeof err) : NULL;
    if (!c) {
        fprintf(stderr, "hb-baseline-own: %s\n", base ? err : "out of memory");
        return 1;
    }
    printf("port %d\n", conn_port(c));
    fflush(stdout);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);
    event_free(sigint);
    event_free(sigterm);
    conn_free(c);
    event_base_free(base);
    return 0;
}
