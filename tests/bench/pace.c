/* hb-pace: an open-loop HTTP load generator for scripts/bench's half-rate phases (wrk2 is not
 * packaged in Debian). POSTs the given bodies round robin at a fixed rate over keep-alive
 * connections and measures each request's latency from the time it was due, not from the time
 * it went out: a server that stalls is charged for every request the stall held back
 * (coordinated omission corrected, as wrk2 does).
 *
 *   hb-pace --url http://HOST:PORT/PATH --rate R [--duration S] [--connections C] BODY...
 *
 * Prints the line tests/bench/post.lua prints, so the bench reads either:
 *   hb-bench requests=N ok2xx=N non2xx=N errors=N p50_us=.. p90_us=.. p99_us=.. p999_us=..
 *            max_us=.. mean_us=.. duration_us=.. rps=.. late=N send_p50_us=.. send_p99_us=..
 * (late: requests that went out over 1 ms after they were due; send_*: latency from the send,
 * what wrk measures, for comparison)
 * A request is due every 1/R s from the start; it goes out on the first idle connection (it
 * waits, with its clock running, when all are busy). Only HTTP/1.1 answers with Content-Length
 * are read (hookbridge's, Fluent Bit's and hb-baseline's). Loopback, IPv4. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "benchfile.h"

#define PACE_IN_MAX 65536

typedef struct pconn {
    int fd;
    int busy;
    uint64_t due_ns;  /* when the request in flight was due */
    uint64_t sent_ns; /* when it went out */
    const char *out;  /* the request being written */
    size_t out_len, out_off;
    char in[PACE_IN_MAX];
    size_t in_len;
} pconn_t;

typedef struct pace {
    struct sockaddr_in addr;
    char **reqs;
    size_t *req_lens;
    size_t nreq, next_req;
    pconn_t *conns;
    int nconns, ep;
    uint64_t *lat_us, *send_us; /* from the due time; from the send (as wrk measures) */
    size_t nlat, cap_lat;
    uint64_t ok, bad, errors;
} pace_t;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int conn_open(pace_t *p, pconn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&p->addr, sizeof p->addr) != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(p->ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = 0;
    c->in_len = 0;
    return 0;
}

static void conn_reset(pace_t *p, pconn_t *c) {
    if (c->fd >= 0) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    if (c->busy)
        p->errors++;
    c->busy = 0;
    conn_open(p, c);
}

static void record(pace_t *p, uint64_t us, uint64_t send_us) {
    if (p->nlat == p->cap_lat) {
        size_t ncap = p->cap_lat ? p->cap_lat * 2 : 65536;
        uint64_t *l = realloc(p->lat_us, ncap * sizeof *l);
        if (l)
            p->lat_us = l;
        uint64_t *s = realloc(p->send_us, ncap * sizeof *s);
        if (s)
            p->send_us = s;
        if (!l || !s)
            return;
        p->cap_lat = ncap;
    }
    p->lat_us[p->nlat] = us;
    p->send_us[p->nlat++] = send_us;
}

/* Writes what the connection still owes; arms EPOLLOUT while the kernel takes no more. */
static void conn_flush(pace_t *p, pconn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOTCONN)) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
            epoll_ctl(p->ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }
        conn_reset(p, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(p->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_send(pace_t *p, pconn_t *c, uint64_t due) {
    size_t r = p->next_req++ % p->nreq;
    c->busy = 1;
    c->due_ns = due;
    c->sent_ns = now_ns();
    c->out = p->reqs[r];
    c->out_len = p->req_lens[r];
    c->out_off = 0;
    conn_flush(p, c);
}

/* One whole answer at the start of c->in: its length (headers and body), else 0. */
static size_t answer_len(pconn_t *c, int *status) {
    c->in[c->in_len < PACE_IN_MAX ? c->in_len : PACE_IN_MAX - 1] = '\0';
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end)
        return 0;
    size_t head = (size_t)(end - c->in) + 4, body = 0;
    if (strncmp(c->in, "HTTP/1.", 7) != 0 || c->in_len < 12)
        return (size_t)-1;
    *status = atoi(c->in + 9);
    for (char *l = strstr(c->in, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
            body = (size_t)strtoul(l + 17, NULL, 10);
    return c->in_len >= head + body ? head + body : 0;
}

static void conn_read(pace_t *p, pconn_t *c) {
    for (;;) {
        if (c->in_len >= PACE_IN_MAX - 1) {
            conn_reset(p, c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, PACE_IN_MAX - 1 - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        conn_reset(p, c); /* closed by the server, or an error */
        return;
    }
    int status = 0;
    size_t len;
    while (c->busy && (len = answer_len(c, &status)) != 0) {
        if (len == (size_t)-1) {
            conn_reset(p, c);
            return;
        }
        uint64_t t = now_ns();
        record(p, (t - c->due_ns) / 1000, (t - c->sent_ns) / 1000);
        if (status >= 200 && status < 300)
            p->ok++;
        else
            p->bad++;
        c->busy = 0;
        memmove(c->in, c->in + len, c->in_len - len);
        c->in_len -= len;
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, double q) {
    if (!n)
        return 0;
    size_t i = (size_t)(q / 100.0 * (double)n);
    return sorted[i < n ? i : n - 1];
}

int main(int argc, char **argv) {
    pace_t p = {0};
    const char *url = NULL;
    double rate = 0, duration = 8;
    int first = 1;
    p.nconns = 32;
    for (; first < argc; first++) {
        if (!strcmp(argv[first], "--url") && first + 1 < argc)
            url = argv[++first];
        else if (!strcmp(argv[first], "--rate") && first + 1 < argc)
            rate = atof(argv[++first]);
        else if (!strcmp(argv[first], "--duration") && first + 1 < argc)
            duration = atof(argv[++first]);
        else if (!strcmp(argv[first], "--connections") && first + 1 < argc)
            p.nconns = atoi(argv[++first]);
        else
            break;
    }
    char host[64];
    unsigned port = 0;
    int off = 0;
    if (!url || rate <= 0 || duration <= 0 || p.nconns <= 0 || first >= argc ||
        sscanf(url, "http://%63[0-9.]:%u%n", host, &port, &off) != 2 || port > 65535 ||
        inet_pton(AF_INET, host, &p.addr.sin_addr) != 1) {
        fprintf(stderr, "Usage: %s --url http://HOST:PORT/PATH --rate R [--duration S] "
                        "[--connections C] BODY...\n", argv[0]);
        return 2;
    }
    const char *path = url[off] ? url + off : "/";
    p.addr.sin_family = AF_INET;
    p.addr.sin_port = htons((uint16_t)port);
    p.nreq = (size_t)(argc - first);
    p.reqs = calloc(p.nreq, sizeof *p.reqs);
    p.req_lens = calloc(p.nreq, sizeof *p.req_lens);
    p.conns = calloc((size_t)p.nconns, sizeof *p.conns);
    if (!p.reqs || !p.req_lens || !p.conns)
        return 1;
    for (size_t i = 0; i < p.nreq; i++) {
        size_t blen;
        char *body = bench_read_file(argv[first + (int)i], &blen);
        if (!body) {
            fprintf(stderr, "hb-pace: cannot read %s\n", argv[first + (int)i]);
            return 1;
        }
        char head[512];
        int hl = snprintf(head, sizeof head,
                          "POST %s HTTP/1.1\r\nHost: %s:%u\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n", path, host, port, blen);
        if (hl < 0 || (size_t)hl >= sizeof head || !(p.reqs[i] = malloc((size_t)hl + blen)))
            return 1;
        memcpy(p.reqs[i], head, (size_t)hl);
        memcpy(p.reqs[i] + hl, body, blen);
        p.req_lens[i] = (size_t)hl + blen;
        free(body);
    }
    p.ep = epoll_create1(0);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (p.ep < 0 || tfd < 0)
        return 1;
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(p.ep, EPOLL_CTL_ADD, tfd, &tev);
    for (int i = 0; i < p.nconns; i++) {
        p.conns[i].fd = -1;
        if (conn_open(&p, &p.conns[i]) != 0) {
            perror("hb-pace: connect");
            return 1;
        }
    }

    const uint64_t interval = (uint64_t)(1e9 / rate);
    const uint64_t t0 = now_ns() + 100000000u; /* 100 ms for the connections to settle */
    const uint64_t t_end = t0 + (uint64_t)(duration * 1e9);
    uint64_t k = 0, late = 0; /* requests issued so far; how many went out after their slot */
    struct epoll_event evs[64];
    for (;;) {
        uint64_t now = now_ns();
        /* Every request due by now goes out on an idle connection; the rest wait their turn. */
        for (int i = 0; i < p.nconns; i++) {
            uint64_t due = t0 + k * interval;
            if (due > now || due >= t_end)
                break;
            pconn_t *c = &p.conns[i];
            if (c->busy || c->fd < 0)
                continue;
            if (now - due > 1000000u)
                late++;
            conn_send(&p, c, due);
            k++;
            i = -1; /* look again from the first connection */
        }
        int busy = 0;
        for (int i = 0; i < p.nconns; i++)
            busy += p.conns[i].busy;
        uint64_t due = t0 + k * interval;
        if (due >= t_end && (!busy || now > t_end + 5000000000u))
            break; /* done, or answers still missing 5 s after the end */
        /* The timer wakes the loop for the next slot only while that slot lies ahead. A slot
         * already due is waiting for a connection to come free, and so is the loop: an answer
         * wakes it. A timer armed in the past would fire at once and spin the loop until then,
         * taking the CPU from the broker it shares (and holding back the answer it waits for). */
        struct itimerspec its = {{0, 0}, {0, 0}}; /* disarmed */
        if (due < t_end && due > now)
            its.it_value = (struct timespec){.tv_sec = (time_t)(due / 1000000000u),
                                             .tv_nsec = (long)(due % 1000000000u)};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        int n = epoll_wait(p.ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            pconn_t *c = evs[i].data.ptr;
            if (!c) {
                uint64_t exp;
                if (read(tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
                    return 1;
                continue;
            }
            if (evs[i].events & EPOLLOUT && c->busy)
                conn_flush(&p, c);
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                conn_read(&p, c);
        }
    }
    uint64_t t_done = now_ns();
    for (int i = 0; i < p.nconns; i++)
        if (p.conns[i].busy)
            p.errors++; /* no answer within 5 s of the end */
    qsort(p.lat_us, p.nlat, sizeof *p.lat_us, cmp_u64);
    qsort(p.send_us, p.nlat, sizeof *p.send_us, cmp_u64);
    double mean = 0;
    for (size_t i = 0; i < p.nlat; i++)
        mean += (double)p.lat_us[i];
    mean = p.nlat ? mean / (double)p.nlat : 0;
    uint64_t dur_us = ((t_done < t_end ? t_done : t_end) - t0) / 1000;
    printf("hb-bench requests=%zu ok2xx=%llu non2xx=%llu errors=%llu p50_us=%llu p90_us=%llu "
           "p99_us=%llu p999_us=%llu max_us=%llu mean_us=%.0f duration_us=%llu rps=%.1f "
           "late=%llu send_p50_us=%llu send_p99_us=%llu\n",
           p.nlat, (unsigned long long)p.ok, (unsigned long long)p.bad,
           (unsigned long long)p.errors, (unsigned long long)pct(p.lat_us, p.nlat, 50),
           (unsigned long long)pct(p.lat_us, p.nlat, 90), (unsigned long long)pct(p.lat_us, p.nlat, 99),
           (unsigned long long)pct(p.lat_us, p.nlat, 99.9),
           (unsigned long long)(p.nlat ? p.lat_us[p.nlat - 1] : 0), mean,
           (unsigned long long)dur_us, dur_us ? (double)p.nlat * 1e6 / (double)dur_us : 0,
           (unsigned long long)late, (unsigned long long)pct(p.send_us, p.nlat, 50),
           (unsigned long long)pct(p.send_us, p.nlat, 99));
    return 0;
}
