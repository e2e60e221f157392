/* probe.c: `hookbridge healthcheck URL`: one HTTP GET with a deadline, for the image's HEALTHCHECK. */
#include "probe.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_DEFAULT_TIMEOUT_MS 2000 /* under the image's HEALTHCHECK --timeout=3s */

typedef struct probe_call {
    struct event_base *base;
    int done;
    int status;                       /* the answer's code; 0 until one came */
    enum evhttp_request_error reason; /* valid when has_reason */
    int has_reason;
    int failed;
} probe_call_t;

static void on_answer(struct evhttp_request *req, void *arg) {
    probe_call_t *c = arg;
    c->done = 1;
    if (req && evhttp_request_get_response_code(req) > 0)
        c->status = evhttp_request_get_response_code(req);
    else
        c->failed = 1; /* a failed connect or lookup comes here without on_error */
    event_base_loopbreak(c->base);
}

static void on_error(enum evhttp_request_error reason, void *arg) {
    probe_call_t *c = arg;
    c->failed = 1;
    c->has_reason = 1;
    c->reason = reason;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    probe_call_t *c = arg;
    event_base_loopbreak(c->base);
}

static const char *reason_text(const probe_call_t *c) {
    switch (c->has_reason ? (int)c->reason : -1) {
    case EVREQ_HTTP_TIMEOUT: return "timed out";
    case EVREQ_HTTP_INVALID_HEADER: return "the answer is not valid HTTP";
    case EVREQ_HTTP_BUFFER_ERROR: return "read or write failed";
    case EVREQ_HTTP_DATA_TOO_LONG: return "the answer is too long";
    case EVREQ_HTTP_EOF: return "the connection closed before a whole answer";
    default: break;
    }
    /* evhttp keeps no reason (nor a usable errno) for a failed lookup or connect. */
    return "cannot resolve or connect";
}

hb_status_t probe_http_get(const char *url, int timeout_ms, int *http_status, char *errstr,
                           size_t errlen) {
    hb_status_t st = HB_ERR_INVALID;
    struct evhttp_uri *uri = NULL;
    struct event_base *base = NULL;
    struct evhttp_connection *evcon = NULL;
    struct event *deadline = NULL;
    char host[256], target[2048], host_header[300];
    probe_call_t call = {0};

    *http_status = 0;
    if (timeout_ms < 1) {
        snprintf(errstr, errlen, "%s: the timeout must be at least 1 ms", url);
        goto done;
    }
    uri = evhttp_uri_parse_with_flags(url, 0);
    const char *scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    const char *h = uri ? evhttp_uri_get_host(uri) : NULL;
    if (!uri || !scheme || strcmp(scheme, "http") != 0 || !h || !*h) {
        snprintf(errstr, errlen, "%s: not an http://HOST[:PORT]/PATH URL", url);
        goto done;
    }
    size_t hl = strlen(h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* evhttp keeps an IPv6 literal's brackets */
        h++;
        hl -= 2;
    }
    int port = evhttp_uri_get_port(uri);
    if (port == -1)
        port = 80;
    if (hl >= sizeof host || port < 1 || port > 65535) {
        snprintf(errstr, errlen, "%s: bad host or port", url);
        goto done;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    int tn = snprintf(target, sizeof target, "%s%s%s", path && *path ? path : "/",
                      query ? "?" : "", query ? query : "");
    if (tn < 0 || (size_t)tn >= sizeof target) {
        snprintf(errstr, errlen, "%s: the path is too long", url);
        goto done;
    }
    snprintf(host_header, sizeof host_header, "%s:%d", evhttp_uri_get_host(uri), port);

    st = HB_ERR_NOMEM;
    base = event_base_new();
    /* NULL dns base: evhttp resolves a name with a blocking getaddrinfo when it connects. */
    evcon = base ? evhttp_connection_base_new(base, NULL, host, (unsigned short)port) : NULL;
    call.base = base;
    deadline = base ? evtimer_new(base, on_deadline, &call) : NULL;
    struct evhttp_request *req = evcon && deadline ? evhttp_request_new(on_answer, &call) : NULL;
    if (!req) {
        snprintf(errstr, errlen, "%s: out of memory", url);
        goto done;
    }
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *hdrs = evhttp_request_get_output_headers(req);
    evhttp_add_header(hdrs, "Host", host_header);
    evhttp_add_header(hdrs, "Connection", "close");
    evhttp_add_header(hdrs, "User-Agent", "hookbridge-healthcheck");
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(evcon, &tv);
    evtimer_add(deadline, &tv);
    if (evhttp_make_request(evcon, req, EVHTTP_REQ_GET, target) != 0) { /* frees req */
        snprintf(errstr, errlen, "%s: cannot send the request", url);
        st = HB_ERR_IO;
        goto done;
    }
    event_base_dispatch(base);
    if (call.status > 0) {
        *http_status = call.status;
        st = HB_OK;
    } else if (!call.done || (call.has_reason && call.reason == EVREQ_HTTP_TIMEOUT)) {
        snprintf(errstr, errlen, "%s: no answer within %d ms", url, timeout_ms);
        st = HB_ERR_TIMEOUT;
    } else {
        snprintf(errstr, errlen, "%s: no answer: %s", url, reason_text(&call));
        st = HB_ERR_IO;
    }
done:
    if (deadline)
        event_free(deadline);
    if (evcon)
        evhttp_connection_free(evcon); /* also frees a request still pending at the deadline */
    if (base)
        event_base_free(base);
    if (uri)
        evhttp_uri_free(uri);
    return st;
}

static int probe_usage(void) {
    fprintf(stderr, "usage: hookbridge healthcheck [--timeout-ms N] URL\n"
                    "  e.g. hookbridge healthcheck http://127.0.0.1:8081/healthz\n"
                    "Exit codes: 0 a 2xx answer, 1 any other answer or none, 2 bad usage.\n");
    return 2;
}

int probe_main(int argc, char **argv) {
    int timeout_ms = PROBE_DEFAULT_TIMEOUT_MS;
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout-ms") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            long v = strtol(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || v < 1 || v > 600000) {
                fprintf(stderr, "hookbridge: healthcheck: --timeout-ms wants 1..600000, not '%s'\n",
                        argv[i]);
                return 2;
            }
            timeout_ms = (int)v;
        } else if (!url && argv[i][0] != '-') {
            url = argv[i];
        } else {
            return probe_usage();
        }
    }
    if (!url)
        return probe_usage();
    char err[512];
    int status = 0;
    hb_status_t st = probe_http_get(url, timeout_ms, &status, err, sizeof err);
    if (st == HB_ERR_INVALID) {
        fprintf(stderr, "hookbridge: healthcheck: %s\n", err);
        return 2;
    }
    if (st != HB_OK) {
        fprintf(stderr, "hookbridge: healthcheck: %s\n", err);
        return 1;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "hookbridge: healthcheck: %s: unhealthy: HTTP %d\n", url, status);
        return 1;
    }
    printf("%s: %d\n", url, status);
    return 0;
}
