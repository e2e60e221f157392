/* bridge.c: wires the webhook listeners (one per HTTP loop, workers.h) to the endpoints, the
 * normaliser and the dispatcher, the admin listener to all of them, and reloads the
 * configuration. */
#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "auth.h"
#include "buf.h"
#include "conn.h"
#include "dispatch.h"
#include "endpoint.h"
#include "hbtime.h"
#include "http.h"
#include "log.h"
#include "normalize.h"
#include "producer.h"
#include "spool.h"
#include "workers.h"

struct bridge {
    struct event_base *base;
    hb_config_t *cfg;          /* running: restart-only options as at start, the rest as of
                                  the last reload */
    endpoint_set_t *endpoints; /* served by http; replaced whole by a reload */
    dispatch_t *dispatch;
    size_t max_record; /* librdkafka's message.max.bytes */
    http_group_t *group; /* what the loops' servers share */
    http_server_t *http; /* loop 0's (the main loop's): admin reads the group through it */
    workers_t *workers;  /* the HTTP loops (http.workers) */
    size_t nloops;
    admin_t *admin; /* NULL when admin.listen is empty; reads http, dispatch and reloads */
    admin_reload_stats_t reloads;
    void (*done)(void *);
    void *done_arg;
    struct event *stop_timer; /* the graceful stop's steps (bridge_shutdown) */
    int stop_step;
    int64_t stop_drain_until_ms;
    size_t stop_open_loops; /* loops with connections open, as last counted */
};

/* One HTTP loop's state (workers.h: hooks.init's result). */
typedef struct bridge_loop {
    bridge_t *b;
    workers_loop_t *l;
    http_server_t *http;
} bridge_loop_t;

/* The largest record a body of n bytes can make: the envelope repeats the stack uid as the
 * subject, the key and, percent-encoded (3 bytes for 1), in the source, so a body that is
 * nearly all uid grows about 6 times; plus the envelope's own members and the headers. */
#define BRIDGE_RECORD_GROWTH 6
#define BRIDGE_RECORD_OVERHEAD 16384

/* Warns (at start, on a reload and in --check-config) when a valid body within
 * http.max_body_bytes could make a record larger than librdkafka's message.max.bytes: such an
 * event would be refused with 413 event_too_large although its body is within the limit. */
static void warn_body_vs_record(const hb_config_t *cfg, rd_kafka_conf_t *kc) {
    char v[32];
    size_t vl = sizeof v;
    if (rd_kafka_conf_get(kc, "message.max.bytes", v, &vl) != RD_KAFKA_CONF_OK)
        return;
    long long mmb = atoll(v);
    long long worst = (long long)cfg->http_max_body_bytes * BRIDGE_RECORD_GROWTH +
                      BRIDGE_RECORD_OVERHEAD;
    if (worst > mmb)
        log_warn("config", "http.max_body_bytes plus the envelope can exceed librdkafka's "
                 "message.max.bytes: such events get 413 event_too_large; lower "
                 "http.max_body_bytes or raise kafka.message_max_bytes (and the broker's "
                 "max.message.bytes)", "file", cfg->path ? cfg->path : "(defaults)",
                 "#max_body_bytes", (long long)cfg->http_max_body_bytes, "#worst_record_bytes",
                 worst, "#message_max_bytes", mmb, NULL);
}

hb_config_t *bridge_config_load(const char *path, char *errstr, size_t errlen) {
    hb_config_t *cfg = path ? config_load(path, errstr, errlen) : config_new();
    if (!cfg) {
        if (!path)
            snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    /* Routing, access-control and librdkafka settings are checked by their owners, with the
     * file's lines: the top level's (even where every endpoint overrides them: a bad line is
     * still a bad line), then every endpoint's. */
    route_t *r = endpoint_router_from_config(cfg, errstr, errlen);
    if (!r)
        goto fail;
    route_free(r);
    auth_t *a = auth_from_config(cfg, errstr, errlen);
    if (!a)
        goto fail;
    auth_free(a);
    endpoint_set_t *set = endpoint_set_new(cfg, errstr, errlen);
    if (!set)
        goto fail;
    endpoint_set_free(set);
    rd_kafka_conf_t *kc = producer_conf_build(cfg, errstr, errlen);
    if (!kc)
        goto fail;
    warn_body_vs_record(cfg, kc);
    rd_kafka_conf_destroy(kc);
    /* The TLS files are read and checked by conn.c: PEM, and that the key fits the certificate. */
    SSL_CTX *tls = NULL;
    if (conn_tls_from_config(cfg, &tls, errstr, errlen) != 0)
        goto fail;
    SSL_CTX_free(tls);
    return cfg;
fail:
    config_free(cfg);
    return NULL;
}

static void on_done(void *ctx, hb_status_t st, const char *id) {
    http_req_t *req = ctx;
    switch (st) {
    case HB_OK:
        http_reply_accepted(req, id);
        break;
    case HB_ERR_NOSPACE:
        log_error("bridge", "event refused: Kafka cannot take it and the spool is full",
                  "endpoint", http_req_endpoint(req), "request_id", http_req_id(req), "peer",
                  http_req_peer(req), "id", id, NULL);
        http_reply_error(req, 503, "spool_full",
                         "Kafka cannot take the event now and the spool is full", 30);
        break;
    default:
        log_error("bridge", "event refused: it could not be made durable", "endpoint",
                  http_req_endpoint(req), "request_id", http_req_id(req), "peer",
                  http_req_peer(req), "id", id, "reason", hb_status_str(st), NULL);
        http_reply_error(req, 503, "unavailable",
                         "Kafka cannot take the event now and the spool could not store it", 5);
        break;
    }
}

/* ep is used during this call only: the record takes copies, and the request keeps nothing of
 * it, so a reload may free the endpoint before the answer. Runs on the request's loop. */
static void on_webhook(void *arg, http_req_t *req, const endpoint_t *ep, const char *body,
                       size_t len) {
    bridge_loop_t *bl = arg;
    bridge_t *b = bl->b;
    msg_t m;
    char err[512];
    hb_status_t st = norm_build(endpoint_norm(ep), endpoint_router(ep), body, len,
                                hbtime_now_ms(), &m, err, sizeof err);
    switch (st) {
    case HB_OK: {
        if (msg_add_header(&m, MSG_HDR_REQUEST_ID, http_req_id(req), HTTP_REQUEST_ID_LEN) !=
            0) {
            msg_free(&m);
            http_reply_error(req, 503, "unavailable", "out of memory", 1);
            return;
        }
        /* A record Kafka can never take would sit at the head of the spool forever. The
         * margin covers the record's own framing and headers. */
        size_t need = m.value_len + (m.key ? m.key_len : 0) + 512;
        for (size_t i = 0; i < m.header_cnt; i++)
            need += m.headers[i].name_len + m.headers[i].value_len;
        if (need > b->max_record) {
            snprintf(err, sizeof err,
                     "the event's record would be %zu bytes; Kafka takes at most %zu "
                     "(kafka.message_max_bytes)", need, b->max_record);
            msg_free(&m);
            http_reply_error(req, 413, "event_too_large", err, 0);
            return;
        }
        workers_submit(bl->l, &m, on_done, req); /* on_done runs on this loop */
        return;
    }
    case HB_ERR_JSON:
        http_reply_error(req, 400, "invalid_json", err, 0);
        return;
    case HB_ERR_INVALID:
        http_reply_error(req, 400, "invalid_body", err, 0);
        return;
    case HB_ERR_NOT_OBJECT:
        http_reply_error(req, 400, "not_an_object", err, 0);
        return;
    case HB_ERR_NO_TYPE:
        http_reply_error(req, 422, "missing_event_type", err, 0);
        return;
    default:
        http_reply_error(req, 503, "unavailable", err, 1);
        return;
    }
}

/* The main loop's end of workers_submit: every event goes to the one dispatcher. */
static void submit_main(void *arg, msg_t *m, workers_done_cb done, void *ctx) {
    dispatch_submit(arg, m, done, ctx);
}

/* Loop l's webhook server, on its own event_base (http.c binds the address of the group). */
static void *loop_init(void *arg, workers_loop_t *l, char *errstr, size_t errlen) {
    bridge_t *b = arg;
    bridge_loop_t *bl = calloc(1, sizeof *bl);
    if (!bl) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    bl->b = b;
    bl->l = l;
    if (!(bl->http = http_new(workers_loop_base(l), b->cfg, b->group, on_webhook, bl, errstr,
                              errlen)))
        goto fail;
    if (http_set_endpoints(bl->http, b->endpoints) != 0) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    if (workers_loop_index(l) == 0)
        b->http = bl->http;
    return bl;
fail:
    http_free(bl->http);
    free(bl);
    return NULL;
}

static void loop_stop_accepting(void *arg, workers_loop_t *l) {
    (void)arg;
    bridge_loop_t *bl = workers_loop_data(l);
    http_stop_accepting(bl->http);
}

static void loop_flush(void *arg, workers_loop_t *l) {
    (void)arg;
    bridge_loop_t *bl = workers_loop_data(l);
    http_when_flushed(bl->http, workers_loop_flushed, l);
}

static void loop_fini(void *arg, workers_loop_t *l, void *data) {
    bridge_t *b = arg;
    bridge_loop_t *bl = data;
    if (workers_loop_index(l) == 0)
        b->http = NULL;
    http_free(bl->http);
    free(bl);
}

bridge_t *bridge_new(struct event_base *base, hb_config_t *cfg, char *errstr, size_t errlen) {
    bridge_t *b = calloc(1, sizeof *b);
    if (!b) {
        config_free(cfg);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    b->base = base;
    b->cfg = cfg;
    b->reloads.last_ok = 1;
    b->reloads.last_success_ms = hbtime_now_ms();
    if (!(b->endpoints = endpoint_set_new(cfg, errstr, errlen)))
        goto fail;

    spool_opts_t so = {
        .dir = cfg->spool_dir,
        .max_bytes = (uint64_t)cfg->spool_max_bytes,
        .min_free_bytes = (uint64_t)cfg->spool_min_free_bytes,
        .segment_bytes = (uint64_t)cfg->spool_segment_bytes,
        .prealloc_bytes = (uint64_t)cfg->spool_prealloc_bytes,
    };
    spool_t *spool = spool_open(&so, errstr, errlen);
    if (!spool)
        goto fail;
    spool_stats_t ss;
    spool_stats(spool, &ss);
    log_info("spool", "opened", "dir", cfg->spool_dir, "#records", (long long)ss.records,
             "#bytes", (long long)ss.bytes, "#quarantined", (long long)ss.quarantined, NULL);
    if (!(b->dispatch = dispatch_new(base, cfg, spool, errstr, errlen)))
        goto fail;
    b->max_record = producer_max_message_bytes(dispatch_producer(b->dispatch));
    /* Loop 0 is this loop: with one loop, no thread and no hop between the listener and the
     * dispatcher. */
    b->nloops = workers_count_from_config(cfg->http_workers);
    if (!(b->group = http_group_new(cfg, b->nloops))) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    workers_opts_t wo = {
        .loops = b->nloops,
        .main_serves = 1,
        .submit = submit_main,
        .submit_arg = b->dispatch,
        .hooks = {loop_init, loop_stop_accepting, loop_flush, loop_fini},
        .hooks_arg = b,
    };
    if (!(b->workers = workers_new(base, &wo, errstr, errlen)))
        goto fail;
    endpoint_set_log(b->endpoints, "serving");
    if (cfg->admin_listen && *cfg->admin_listen) {
        admin_sources_t src = {.http = b->http, .dispatch = b->dispatch, .reloads = &b->reloads};
        if (!(b->admin = admin_new(base, cfg, &src, errstr, errlen)))
            goto fail;
    } else {
        log_info("admin", "admin listener off (admin.listen is empty)", NULL);
    }
    return b;
fail:
    bridge_free(b);
    return NULL;
}

static void warn_restart(void *arg, const char *option) {
    const char *path = arg;
    log_warn("bridge", "changed in the file, needs a restart; keeping the running value",
             "option", option, "file", path, NULL);
}

static void collect_name(void *arg, const char *option) {
    buf_t *b = arg;
    if (b->len)
        buf_putc(b, ',');
    buf_puts(b, option);
}

/* A reload's swap, carried to every HTTP loop (workers_call). */
typedef struct reload_swap {
    bridge_t *b;
    endpoint_set_t *set, *old;
    SSL_CTX *tls; /* the bridge's reference; each loop takes one of its own */
    buf_t changed;
    log_level_t before;
} reload_swap_t;

static int reload_on_loop(void *arg, workers_loop_t *l) {
    reload_swap_t *sw = arg;
    bridge_loop_t *bl = workers_loop_data(l);
    if (sw->tls)
        SSL_CTX_up_ref(sw->tls);
    conn_set_tls(http_conns(bl->http), sw->tls); /* open connections keep theirs */
    return http_set_endpoints(bl->http, sw->set) != 0;
}

/* Every loop serves the new set: no request holds a pointer into the old one (a request in
 * progress keeps its id and counter slot, not its endpoint), so it can go. */
static void reload_done(void *arg, size_t failed) {
    reload_swap_t *sw = arg;
    bridge_t *b = sw->b;
    const char *path = b->cfg->path;
    if (failed) /* out of memory on a loop: it still serves the old set, which stays */
        log_error("bridge", "config reload: some HTTP loops keep the old endpoints (out of "
                  "memory)", "#loops", (long long)failed, NULL);
    else
        endpoint_set_free(sw->old);
    SSL_CTX_free(sw->tls);
    b->reloads.ok++;
    b->reloads.last_ok = 1;
    b->reloads.last_success_ms = hbtime_now_ms();
    endpoint_set_log(sw->set, "reloaded");
    /* The last line of a reload, once every loop serves it. Shown when either the old or the
     * new level shows info: a reload that quiets the log still says that it happened. */
    if (sw->before <= LOG_LVL_INFO || log_min_level <= LOG_LVL_INFO)
        log_write(LOG_LVL_INFO, "bridge", "config reloaded", "file", path, "changed",
                  sw->changed.len && buf_ok(&sw->changed) ? sw->changed.data : "",
                  "#endpoints", (long long)endpoint_set_count(sw->set), NULL);
    buf_free(&sw->changed);
    free(sw);
}

hb_status_t bridge_reload(bridge_t *b) {
    char err[1024];
    const char *path = b->cfg->path;
    if (!path) {
        log_warn("bridge", "SIGHUP: no configuration file to reload (started without "
                           "--config); the defaults stay in force", NULL);
        return HB_ERR_NOT_FOUND;
    }
    log_info("bridge", "reloading the configuration", "file", path, NULL);
    hb_config_t *fresh = bridge_config_load(path, err, sizeof err);
    /* The TLS context for new connections (a renewed certificate may keep its file name), built
     * before anything changes: files that went bad since the check refuse the reload. */
    SSL_CTX *tls = NULL;
    endpoint_set_t *set = fresh && conn_tls_from_config(fresh, &tls, err, sizeof err) == 0
                              ? endpoint_set_new(fresh, err, sizeof err)
                              : NULL;
    if (!set) {
        SSL_CTX_free(tls);
        config_free(fresh);
        b->reloads.error++;
        b->reloads.last_ok = 0;
        log_error("bridge", "config reload refused; keeping the running config", "file", path,
                  "reason", err, NULL);
        return HB_ERR_CONFIG;
    }
    reload_swap_t *sw = calloc(1, sizeof *sw);
    if (!sw) {
        SSL_CTX_free(tls);
        endpoint_set_free(set);
        config_free(fresh);
        b->reloads.error++;
        b->reloads.last_ok = 0;
        log_error("bridge", "config reload refused; keeping the running config", "file", path,
                  "reason", "out of memory", NULL);
        return HB_ERR_CONFIG;
    }
    sw->b = b;
    sw->set = set;
    sw->old = b->endpoints;
    sw->tls = tls;
    b->endpoints = set;
    config_diff(b->cfg, fresh, 0, warn_restart, (void *)path);
    config_diff(b->cfg, fresh, 1, collect_name, &sw->changed);
    sw->before = log_min_level;
    config_take_reloadable(b->cfg, fresh);
    config_free(fresh);
    log_set_level((log_level_t)b->cfg->log_level);
    if (workers_call(b->workers, reload_on_loop, sw, reload_done) != 0)
        reload_done(sw, b->nloops); /* out of memory: every loop keeps the old set */
    return HB_OK;
}

static void on_flushed(void *arg) {
    bridge_t *b = arg;
    if (b->done)
        b->done(b->done_arg);
}

static void on_dispatch_stopped(void *arg) {
    bridge_t *b = arg;
    log_info("bridge", "every accepted event is safe; stopping", NULL);
    /* The answers just given must reach their clients before the loop ends: every loop
     * flushes (hooks.flush), then on_flushed. */
    workers_stop(b->workers, on_flushed, b);
}

/* The stop's per-loop steps, run on each loop (workers_call). */
static int loop_set_stopping(void *arg, workers_loop_t *l) {
    (void)arg;
    http_set_stopping(((bridge_loop_t *)workers_loop_data(l))->http);
    return 0;
}
static int loop_stop_now(void *arg, workers_loop_t *l) {
    (void)arg;
    http_stop_accepting(((bridge_loop_t *)workers_loop_data(l))->http);
    return 0;
}
/* "failed" counts the loops with connections still open. */
static int loop_has_open(void *arg, workers_loop_t *l) {
    (void)arg;
    return http_open_connections(((bridge_loop_t *)workers_loop_data(l))->http) > 0;
}
static void stop_step(evutil_socket_t fd, short what, void *arg);
static void on_open_counted(void *arg, size_t loops_with_open) {
    bridge_t *b = arg;
    b->stop_open_loops = loops_with_open;
    stop_step(-1, 0, b);
}
static void on_stop_noop(void *arg, size_t failed) {
    (void)arg;
    (void)failed;
}

/* How often the stop looks whether the last connections are gone. */
#define STOP_POLL_MS 20

/* The graceful stop (bridge.h), in steps on one timer:
 *   0 (at the signal)  /readyz 503; every answer carries Connection: close; keep serving
 *                      http.shutdown_grace_ms (new connections too: a load balancer may still
 *                      send some until it has seen /readyz);
 *   1 (grace over)     stop accepting; close the connections between requests; let the others
 *                      finish (their requests are answered, with a close) for at most
 *                      http.request_timeout_ms plus producer.ack_timeout_ms;
 *   2 (none left)      dispatch_shutdown: nothing new is submitted from here on; once every
 *                      event is safe, the answers are flushed and done() runs. */
static void stop_step(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    bridge_t *b = arg;
    struct timeval poll = {0, STOP_POLL_MS * 1000};
    if (b->stop_step == 0) {
        b->stop_step = 1;
        (void)workers_call(b->workers, loop_stop_now, b, on_stop_noop);
        log_info("bridge", "grace period over: not accepting connections; finishing the open "
                 "ones", NULL);
        b->stop_drain_until_ms =
            hbtime_mono_ms() + b->cfg->http_request_timeout_ms + b->cfg->producer_ack_timeout_ms;
    }
    if (b->stop_step == 1) {
        /* The timer: count the loops with open connections (the answer comes back here, after
         * the loops ran loop_stop_now: a call reaches each loop in the order it was made). */
        if ((what & EV_TIMEOUT) &&
            workers_call(b->workers, loop_has_open, b, on_open_counted) == 0)
            return;
        size_t open = (what & EV_TIMEOUT) ? 0 : b->stop_open_loops;
        if (open > 0 && hbtime_mono_ms() < b->stop_drain_until_ms) {
            evtimer_add(b->stop_timer, &poll);
            return;
        }
        if (open > 0)
            log_warn("bridge", "connections still open after the stop's drain time; stopping "
                     "anyway", "#loops", (long long)open, NULL);
        b->stop_step = 2;
        dispatch_shutdown(b->dispatch, on_dispatch_stopped, b);
    }
}

void bridge_shutdown(bridge_t *b, void (*done)(void *arg), void *arg) {
    b->done = done;
    b->done_arg = arg;
    admin_set_stopping(b->admin);
    (void)workers_call(b->workers, loop_set_stopping, b, on_stop_noop);
    int64_t grace = b->cfg->http_shutdown_grace_ms;
    log_info("bridge", "graceful stop: serving with Connection: close during the grace period",
             "#grace_ms", (long long)grace, NULL);
    b->stop_timer = evtimer_new(b->base, stop_step, b);
    if (!b->stop_timer) {
        b->stop_step = 2; /* out of memory: skip the grace period */
        (void)workers_call(b->workers, loop_stop_now, b, on_stop_noop);
        dispatch_shutdown(b->dispatch, on_dispatch_stopped, b);
        return;
    }
    struct timeval tv = {(time_t)(grace / 1000), (suseconds_t)(grace % 1000) * 1000};
    evtimer_add(b->stop_timer, &tv);
}

int64_t bridge_stop_budget_ms(const hb_config_t *cfg) {
    return cfg->http_shutdown_grace_ms + cfg->http_request_timeout_ms +
           cfg->producer_ack_timeout_ms + cfg->producer_shutdown_timeout_ms;
}

void bridge_free(bridge_t *b) {
    if (!b)
        return;
    if (b->stop_timer)
        event_free(b->stop_timer);
    admin_free(b->admin);      /* first: it reads the listeners and the dispatcher */
    workers_join(b->workers);  /* ends the loop threads, frees their servers */
    dispatch_free(b->dispatch); /* outcomes still owed are discarded by the loops */
    workers_free(b->workers);
    http_group_free(b->group); /* after its servers */
    endpoint_set_free(b->endpoints);
    config_free(b->cfg);
    free(b);
}
