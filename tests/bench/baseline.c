/* hb-baseline: the benchmark's yardstick. A bare evhttp server that answers every request
 * 202 with a tiny JSON body and does nothing else: one event loop, keep-alive, no parsing,
 * no Kafka, no spool. scripts/bench compares hookbridge's webhook path against it.
 *
 *   hb-baseline [--listen 127.0.0.1:PORT]    (default 127.0.0.1:0: a free port)
 *
 * Prints "port <N>" on stdout once it listens; exits 0 on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

static const char BODY[] = "{\"id\":\"0000000000000000000000000000000000000000000000000000000000000000\"}";

static void on_request(struct evhttp_request *req, void *arg) {
    struct evbuffer *out = arg;
    /* Read the body like a real handler would have to see it; then drop it. */
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    evbuffer_drain(in, evbuffer_get_length(in));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add_reference(out, BODY, sizeof BODY - 1, NULL, NULL);
    evhttp_send_reply(req, 202, "Accepted", out);
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
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host) {
        fprintf(stderr, "hb-baseline: bad --listen '%s'\n", listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    int port = atoi(colon + 1);

    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    struct evbuffer *out = evbuffer_new();
    if (!http || !out) {
        fprintf(stderr, "hb-baseline: out of memory\n");
        return 1;
    }
    evhttp_set_max_body_size(http, 1 << 20);
    evhttp_set_timeout(http, 30);
    evhttp_set_gencb(http, on_request, out);
    struct evhttp_bound_socket *sock = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (!sock) {
        fprintf(stderr, "hb-baseline: cannot listen on %s\n", listen);
        return 1;
    }
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &len) != 0) {
        perror("hb-baseline: getsockname");
        return 1;
    }
    int bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    printf("port %d\n", bound);
    fflush(stdout);

    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    event_base_dispatch(base);

    event_free(sigint);
    event_free(sigterm);
    evbuffer_free(out);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
