/* bridge.c: wires the webhook listener to the normaliser and the dispatcher, and the admin
 * listener to both. */
#include "bridge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "dispatch.h"
#include "hbtime.h"
#include "http.h"
#include "log.h"
#include "normalize.h"
#include "producer.h"
#include "spool.h"

struct bridge {
    struct event_base *base;
    hb_config_t *cfg;
    route_t *router;
    norm_opts_t norm;
    dispatch_t *dispatch;
    size_t max_record; /* librdkafka's message.max.bytes */
    http_server_t *http;
    admin_t *admin; /* NULL when admin.listen is empty; reads http and dispatch */
    void (*done)(void *);
    void *done_arg;
};

route_t *bridge_router_from_config(const hb_config_t *cfg, char *errstr, size_t errlen) {
    char err[256];
    route_t *r = route_new(cfg->routing_topic_prefix);
    if (!r) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->routing_rules_cnt; i++) {
        const cfg_kv_t *kv = &cfg->routing_rules[i];
        if (route_add_rule(r, kv->name, kv->value, err, sizeof err) != HB_OK) {
            snprintf(errstr, errlen, "%s:%d: routing.rules: %s", cfg->path ? cfg->path : "config",
                     kv->line, err);
            goto fail;
        }
    }
    for (size_t i = 0; i < cfg->routing_topics_cnt; i++) {
        const cfg_kv_t *kv = &cfg->routing_topics[i];
        if (route_set_topic(r, kv->name, kv->value, err, sizeof err) != HB_OK) {
            snprintf(errstr, errlen, "%s:%d: routing.topics.%s: %s",
                     cfg->path ? cfg->path : "config", kv->line, kv->name, err);
            goto fail;
        }
    }
    return r;
fail:
    route_free(r);
    return NULL;
}

static void on_done(void *ctx, hb_status_t st, const char *id) {
    http_req_t *req = ctx;
    switch (st) {
    case HB_OK:
        http_reply_accepted(req, id);
        break;
    case HB_ERR_NOSPACE:
        log_error("bridge", "event refused: Kafka cannot take it and the spool is full", "peer",
                  http_req_peer(req), "id", id, NULL);
        http_reply_error(req, 503, "spool_full",
                         "Kafka cannot take the event now and the spool is full", 30);
        break;
    default:
        log_error("bridge", "event refused: it could not be made durable", "peer",
                  http_req_peer(req), "id", id, "reason", hb_status_str(st), NULL);
        http_reply_error(req, 503, "unavailable",
                         "Kafka cannot take the event now and the spool could not store it", 5);
        break;
    }
}

static void on_webhook(void *arg, http_req_t *req, const char *body, size_t len) {
    bridge_t *b = arg;
    msg_t m;
    char err[512];
    hb_status_t st = norm_build(&b->norm, b->router, body, len, hbtime_now_ms(), &m, err,
                                sizeof err);
    switch (st) {
    case HB_OK: {
        /* A record Kafka can never take would sit at the head of the spool forever. The
         * margin covers the record's own framing and headers. */
        size_t need = m.value_len + (m.key ? m.key_len : 0) + 512;
        for (size_t i = 0; i < m.header_cnt; i++)
            need += strlen(m.headers[i].name) + m.headers[i].value_len;
        if (need > b->max_record) {
            snprintf(err, sizeof err,
                     "the event's record would be %zu bytes; Kafka takes at most %zu "
                     "(kafka.message_max_bytes)", need, b->max_record);
            msg_free(&m);
            http_reply_error(req, 413, "event_too_large", err, 0);
            return;
        }
        dispatch_submit(b->dispatch, &m, on_done, req);
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

bridge_t *bridge_new(struct event_base *base, hb_config_t *cfg, char *errstr, size_t errlen) {
    bridge_t *b = calloc(1, sizeof *b);
    if (!b) {
        config_free(cfg);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    b->base = base;
    b->cfg = cfg;
    b->norm.source = cfg->envelope_source;
    b->norm.mode = cfg->envelope_mode == CFG_MODE_BINARY ? NORM_BINARY : NORM_STRUCTURED;
    b->norm.max_depth = (int)cfg->http_json_max_depth;
    if (!(b->router = bridge_router_from_config(cfg, errstr, errlen)))
        goto fail;

    spool_opts_t so = {
        .dir = cfg->spool_dir,
        .max_bytes = (uint64_t)cfg->spool_max_bytes,
        .min_free_bytes = (uint64_t)cfg->spool_min_free_bytes,
        .segment_bytes = (uint64_t)cfg->spool_segment_bytes,
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
    if (!(b->http = http_new(base, cfg, on_webhook, b, errstr, errlen)))
        goto fail;
    if (cfg->admin_listen && *cfg->admin_listen) {
        admin_sources_t src = {.http = b->http, .dispatch = b->dispatch};
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

static void on_flushed(void *arg) {
    bridge_t *b = arg;
    if (b->done)
        b->done(b->done_arg);
}

static void on_dispatch_stopped(void *arg) {
    bridge_t *b = arg;
    log_info("bridge", "every accepted event is safe; stopping", NULL);
    /* The answers just given must reach their clients before the loop ends. */
    http_when_flushed(b->http, on_flushed, b);
}

void bridge_shutdown(bridge_t *b, void (*done)(void *arg), void *arg) {
    b->done = done;
    b->done_arg = arg;
    admin_set_stopping(b->admin);
    http_stop_accepting(b->http);
    dispatch_shutdown(b->dispatch, on_dispatch_stopped, b);
}

void bridge_free(bridge_t *b) {
    if (!b)
        return;
    admin_free(b->admin); /* first: it reads the listener and the dispatcher */
    http_free(b->http);
    dispatch_free(b->dispatch);
    route_free(b->router);
    config_free(b->cfg);
    free(b);
}
