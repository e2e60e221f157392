/* admin.c: the operator's listener: liveness, readiness and Prometheus metrics. */
#include "admin.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "hbtime.h"
#include "log.h"
#include "producer.h"
#include "spool.h"

/* A failed spool write this recent counts against readiness. Not "until the next good write":
 * a bridge marked not ready gets no traffic, so it would never see one and stay out for good. */
#define ADMIN_SPOOL_FAIL_WINDOW_MS 30000

typedef struct broker_state {
    char *name;  /* librdkafka's broker name, "host:port/id" */
    char *state; /* "UP", "DOWN", "CONNECT", ... */
} broker_state_t;

struct admin {
    conn_t *conns; /* the listener (conn.h's HTTP server) */
    int port;
    const http_server_t *http;
    dispatch_t *dispatch;
    const admin_reload_stats_t *reloads; /* NULL: none */
    uint64_t spool_max_bytes;
    int stopping;
    broker_state_t *brokers; /* from the latest statistics; owned */
    size_t broker_cnt;
};

static void brokers_free(broker_state_t *list, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(list[i].name);
        free(list[i].state);
    }
    free(list);
}

/* librdkafka statistics (every statistics.interval.ms): keep brokers.*.state. The internal
 * pseudo-broker is left out: it is no connection an operator can act on. */
static void on_kafka_stats(void *arg, const char *json) {
    admin_t *a = arg;
    broker_state_t *list = NULL;
    size_t n = 0;
    json_object *root = json_tokener_parse(json);
    json_object *brokers;
    if (!root || !json_object_object_get_ex(root, "brokers", &brokers) ||
        !json_object_is_type(brokers, json_type_object)) {
        log_warn("admin", "librdkafka statistics without a brokers object; broker states kept",
                 NULL);
        goto done;
    }
    list = calloc(json_object_object_length(brokers) + 1, sizeof *list);
    if (!list)
        goto done;
    struct json_object_iterator it = json_object_iter_begin(brokers);
    struct json_object_iterator end = json_object_iter_end(brokers);
    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        json_object *b = json_object_iter_peek_value(&it), *state, *source;
        if (!json_object_object_get_ex(b, "state", &state))
            continue;
        if (json_object_object_get_ex(b, "source", &source) &&
            strcmp(json_object_get_string(source), "internal") == 0)
            continue;
        char *name = strdup(json_object_iter_peek_name(&it));
        char *st = strdup(json_object_get_string(state));
        if (!name || !st) {
            free(name);
            free(st);
            goto done;
        }
        list[n].name = name;
        list[n].state = st;
        n++;
    }
    brokers_free(a->brokers, a->broker_cnt);
    a->brokers = list;
    a->broker_cnt = n;
    list = NULL;
    n = 0;
done:
    brokers_free(list, n);
    json_object_put(root);
}

/* ---- answers ---------------------------------------------------------------------------- */

static void send_json(conn_req_t *req, int status, const char *extra, const char *json,
                      size_t len) {
    conn_reply(req, status, "application/json", extra, json, len);
}

static void send_error(conn_req_t *req, int status, const char *code, const char *detail,
                       const char *extra) {
    buf_t b = {0};
    http_format_error(&b, code, detail);
    if (buf_ok(&b))
        send_json(req, status, extra, b.data, b.len);
    else
        send_json(req, 503, NULL, "{\"error\":\"nomem\",\"detail\":\"out of memory\"}\n", 44);
    buf_free(&b);
}

/* The /readyz answer: its body into b, its status returned (200 or 503). Parked topics do not
 * make the bridge unready (their events are made safe in the spool); they are listed. */
static int readyz_body(admin_t *a, buf_t *b) {
    dispatch_stats_t st;
    spool_stats_t ss;
    dispatch_get_stats(a->dispatch, &st);
    spool_stats(dispatch_spool(a->dispatch), &ss);
    /* A refused append can mean "full" below max_bytes too: the record did not fit, or the
     * filesystem is under spool.min_free_bytes. */
    int recent_fail = st.spool_fail_ms != 0 &&
                      hbtime_mono_ms() - st.spool_fail_ms < ADMIN_SPOOL_FAIL_WINDOW_MS;
    int spool_full = ss.bytes >= a->spool_max_bytes ||
                     (recent_fail && st.spool_fail_st == HB_ERR_NOSPACE);
    int spool_failed = recent_fail && !spool_full;
    int spool_ok = !spool_full && !spool_failed;
    int ready = !a->stopping && (st.kafka_up || spool_ok);
    const char *reason;
    if (a->stopping)
        reason = "stopping: the webhook listener no longer accepts connections";
    else if (st.kafka_up && st.parked)
        reason = "kafka is accepting events; parked topics' events are made safe in the spool";
    else if (st.kafka_up)
        reason = "kafka is accepting events";
    else if (spool_ok)
        reason = "kafka is down; events are made safe in the spool";
    else if (spool_full)
        reason = "kafka is down and the spool is full (or refused a record within 30 s)";
    else
        reason = "kafka is down and a spool write failed within the last 30 s";
    buf_printf(b, "{\"ready\":%s,\"kafka\":\"%s\",\"spool\":\"%s\",\"reason\":\"%s\"",
               ready ? "true" : "false", st.kafka_up ? "up" : "down",
               spool_full ? "full" : spool_failed ? "error" : "ok", reason);
    /* Why Kafka is down, in librdkafka's words: a refused login reads differently from an
     * unreachable broker, and only the first one needs the operator. */
    if (!st.kafka_up && st.kafka_error[0]) {
        buf_puts(b, ",\"kafka_error\":");
        buf_json_str(b, st.kafka_error, strlen(st.kafka_error));
    }
    buf_puts(b, ",\"parked\":[");
    const char *topic, *why, *error;
    int64_t since;
    for (size_t i = 0; dispatch_parked(a->dispatch, i, &topic, &why, &error, &since); i++) {
        buf_puts(b, i ? ",{\"topic\":" : "{\"topic\":");
        buf_json_str(b, topic, strlen(topic));
        buf_puts(b, ",\"reason\":");
        buf_json_str(b, why, strlen(why));
        buf_printf(b, ",\"error\":\"%s\",\"parked_s\":%.1f}", error,
                   (double)(hbtime_mono_ms() - since) / 1000.0);
    }
    buf_puts(b, "]}\n");
    return ready ? 200 : 503;
}

static void serve_readyz(admin_t *a, conn_req_t *req) {
    buf_t b = {0};
    int status = readyz_body(a, &b);
    if (buf_ok(&b))
        send_json(req, status, NULL, b.data, b.len);
    else
        send_error(req, 503, "nomem", "out of memory", NULL);
    buf_free(&b);
}

/* ---- metrics ---------------------------------------------------------------------------- */

static void head(buf_t *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped, as the text format wants. */
static void label(buf_t *b, const char *v) {
    buf_putc(b, '"');
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            buf_putc(b, '\\');
        if (*v == '\n')
            buf_puts(b, "\\n");
        else
            buf_putc(b, *v);
    }
    buf_putc(b, '"');
}

static void sample_u64(buf_t *b, const char *name, uint64_t v) {
    buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* The webhook listener's connection limits and TLS (conn.h). */
static void render_conns(admin_t *a, buf_t *b) {
    conn_stats_t cs;
    http_conn_stats(a->http, &cs); /* every HTTP loop's listener */
    head(b, "hookbridge_http_connections_open", "gauge", "Webhook connections open now.");
    sample_u64(b, "hookbridge_http_connections_open", cs.open);
    head(b, "hookbridge_http_connections_max", "gauge",
         "http.max_connections: at this many, the listener stops accepting.");
    sample_u64(b, "hookbridge_http_connections_max", cs.max_open);
    head(b, "hookbridge_http_connection_limit_reached_total", "counter",
         "Times the listener stopped accepting at http.max_connections (new connections then "
         "wait in the kernel's backlog).");
    sample_u64(b, "hookbridge_http_connection_limit_reached_total", cs.limit_reached);
    head(b, "hookbridge_http_request_deadline_exceeded_total", "counter",
         "Connections cut because a request (or TLS handshake) took longer than "
         "http.request_timeout_ms to arrive.");
    sample_u64(b, "hookbridge_http_request_deadline_exceeded_total", cs.deadline_cuts);
    head(b, "hookbridge_http_tls_handshake_failures_total", "counter",
         "TLS handshakes on the webhook listener that failed.");
    sample_u64(b, "hookbridge_http_tls_handshake_failures_total", cs.tls_failures);
    head(b, "hookbridge_http_replay_hits_total", "counter",
         "Standard Webhooks deliveries whose webhook-id was answered 202 before: answered with "
         "the same envelope id and not published again.");
    sample_u64(b, "hookbridge_http_replay_hits_total", http_replay_hits(a->http));
}

static void render_http(admin_t *a, buf_t *b) {
    head(b, "hookbridge_http_requests_total", "counter",
         "Answers sent by the webhook listener, by endpoint and status.");
    for (size_t slot = 0; slot < http_counter_count(a->http); slot++)
        for (int status = 100; status <= 599; status++) {
            uint64_t n = http_answer_count(a->http, slot, status);
            if (n) {
                buf_puts(b, "hookbridge_http_requests_total{endpoint=");
                label(b, http_counter_label(a->http, slot));
                buf_printf(b, ",status=\"%d\"} %" PRIu64 "\n", status, n);
            }
        }
    render_conns(a, b);
}

static void render_reloads(admin_t *a, buf_t *b) {
    static const admin_reload_stats_t none = {0};
    const admin_reload_stats_t *r = a->reloads ? a->reloads : &none;
    head(b, "hookbridge_reloads_total", "counter",
         "Configuration reloads (SIGHUP), by result: ok (applied) or error (refused, the running "
         "configuration kept).");
    buf_printf(b, "hookbridge_reloads_total{result=\"ok\"} %" PRIu64 "\n", r->ok);
    buf_printf(b, "hookbridge_reloads_total{result=\"error\"} %" PRIu64 "\n", r->error);
    head(b, "hookbridge_config_last_reload_successful", "gauge",
         "1 when the latest configuration load (start or reload) succeeded, 0 when it was "
         "refused.");
    sample_u64(b, "hookbridge_config_last_reload_successful", r->last_ok ? 1 : 0);
    head(b, "hookbridge_config_last_reload_success_timestamp_seconds", "gauge",
         "Unix time of the latest successful configuration load (start or reload).");
    buf_printf(b, "hookbridge_config_last_reload_success_timestamp_seconds %.3f\n",
               (double)r->last_success_ms / 1000.0);
}

static void render_events(admin_t *a, buf_t *b, const dispatch_stats_t *st) {
    static const int64_t bounds[] = DISPATCH_LAT_BOUNDS;
    size_t n;
    const dispatch_topic_stats_t *t = dispatch_topic_stats(a->dispatch, &n);
    head(b, "hookbridge_events_total", "counter",
         "Accepted events by Kafka topic and outcome: published (acked by Kafka on the live "
         "path), spooled (fsynced in the spool), rejected (answered 503).");
    for (size_t i = 0; i < n; i++) {
        const struct {
            const char *name;
            uint64_t v;
        } o[] = {{"published", t[i].published},
                 {"spooled", t[i].spooled},
                 {"rejected", t[i].rejected}};
        for (size_t j = 0; j < sizeof o / sizeof o[0]; j++) {
            buf_puts(b, "hookbridge_events_total{topic=");
            label(b, t[i].topic);
            buf_printf(b, ",outcome=\"%s\"} %" PRIu64 "\n", o[j].name, o[j].v);
        }
    }
    head(b, "hookbridge_event_ack_seconds", "histogram",
         "Time from handing a live event to librdkafka to Kafka's acknowledgement.");
    uint64_t cum = 0;
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++) {
        cum += st->lat_buckets[i];
        buf_printf(b, "hookbridge_event_ack_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                   (double)bounds[i] / 1000.0, cum);
    }
    buf_printf(b, "hookbridge_event_ack_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
               st->lat_count);
    buf_printf(b, "hookbridge_event_ack_seconds_sum %.3f\n", (double)st->lat_sum_ms / 1000.0);
    sample_u64(b, "hookbridge_event_ack_seconds_count", st->lat_count);
}

/* Parked topics and dead letters (dispatch.h, topics.h). */
static void render_topics(admin_t *a, buf_t *b) {
    const char *topic, *reason, *error;
    int64_t since;
    head(b, "hookbridge_topic_parked", "gauge",
         "1 for each topic Kafka refuses now (its events wait in the spool, other topics flow), "
         "with the reason and librdkafka's error.");
    for (size_t i = 0; dispatch_parked(a->dispatch, i, &topic, &reason, &error, &since); i++) {
        buf_puts(b, "hookbridge_topic_parked{topic=");
        label(b, topic);
        buf_puts(b, ",reason=");
        label(b, reason);
        buf_puts(b, ",error=");
        label(b, error);
        buf_puts(b, "} 1\n");
    }
    size_t n;
    const dispatch_dl_stats_t *dl = dispatch_deadletter_stats(a->dispatch, &n);
    head(b, "hookbridge_deadletters_total", "counter",
         "Records Kafka refused for good, by original topic and reason, and where they went: "
         "to=\"topic\" (dead_letter.topic) or to=\"folder\" (<spool.dir>/deadletter/).");
    for (size_t i = 0; i < n; i++) {
        buf_puts(b, "hookbridge_deadletters_total{topic=");
        label(b, dl[i].topic);
        buf_puts(b, ",reason=");
        label(b, dl[i].reason);
        buf_puts(b, ",to=");
        label(b, dl[i].to);
        buf_printf(b, "} %" PRIu64 "\n", dl[i].count);
    }
}

static void render_kafka(admin_t *a, buf_t *b, const dispatch_stats_t *st) {
    head(b, "hookbridge_kafka_up", "gauge",
         "0 only while Kafka takes nothing at all (all brokers down, or nothing delivered within "
         "producer.ack_timeout_ms while records failed); a refused topic alone leaves it 1.");
    sample_u64(b, "hookbridge_kafka_up", st->kafka_up ? 1 : 0);
    render_topics(a, b);
    head(b, "hookbridge_kafka_inflight", "gauge",
         "Events handed to librdkafka and not yet acknowledged: live events and spooled "
         "records being republished.");
    buf_printf(b, "hookbridge_kafka_inflight{path=\"live\"} %" PRIu64 "\n", st->live_inflight);
    buf_printf(b, "hookbridge_kafka_inflight{path=\"drain\"} %" PRIu64 "\n", st->drain_inflight);
    head(b, "hookbridge_kafka_queue_depth", "gauge",
         "Messages and requests in librdkafka's queues (rd_kafka_outq_len).");
    buf_printf(b, "hookbridge_kafka_queue_depth %d\n",
               producer_outq_len(dispatch_producer(a->dispatch)));
    head(b, "hookbridge_kafka_broker_state", "gauge",
         "1 for each broker's state in librdkafka's latest statistics "
         "(kafka statistics.interval.ms).");
    for (size_t i = 0; i < a->broker_cnt; i++) {
        buf_puts(b, "hookbridge_kafka_broker_state{broker=");
        label(b, a->brokers[i].name);
        buf_puts(b, ",state=");
        label(b, a->brokers[i].state);
        buf_puts(b, "} 1\n");
    }
}

static void render_spool(admin_t *a, buf_t *b, const dispatch_stats_t *st) {
    spool_stats_t ss;
    spool_stats(dispatch_spool(a->dispatch), &ss);
    double age = 0;
    if (ss.oldest_accept_ms > 0 && hbtime_now_ms() > ss.oldest_accept_ms)
        age = (double)(hbtime_now_ms() - ss.oldest_accept_ms) / 1000.0;
    head(b, "hookbridge_spool_bytes", "gauge",
         "On-disk size of the live spool segments' records (without the zeros written ahead "
         "of them, spool.prealloc_bytes).");
    sample_u64(b, "hookbridge_spool_bytes", ss.bytes);
    head(b, "hookbridge_spool_max_bytes", "gauge", "spool.max_bytes: webhooks get 503 past it.");
    sample_u64(b, "hookbridge_spool_max_bytes", a->spool_max_bytes);
    head(b, "hookbridge_spool_records", "gauge", "Spooled records not yet acknowledged by Kafka.");
    sample_u64(b, "hookbridge_spool_records", ss.records);
    head(b, "hookbridge_spool_oldest_age_seconds", "gauge",
         "Age of the oldest spooled record (since it was accepted); 0 when the spool is empty.");
    buf_printf(b, "hookbridge_spool_oldest_age_seconds %.3f\n", age);
    head(b, "hookbridge_spool_drained_total", "counter",
         "Spooled records republished and acknowledged by Kafka.");
    sample_u64(b, "hookbridge_spool_drained_total", st->drained);
    head(b, "hookbridge_spool_quarantined_total", "counter",
         "Corrupt records or segments moved to quarantine when the spool was opened.");
    sample_u64(b, "hookbridge_spool_quarantined_total", ss.quarantined);
    head(b, "hookbridge_spool_duplicates_total", "counter",
         "Events spooled after an ack timeout that Kafka acknowledged on the live path too "
         "(each reaches Kafka twice).");
    sample_u64(b, "hookbridge_spool_duplicates_total", st->duplicates);
    head(b, "hookbridge_spool_replayed_total", "counter",
         "Records found at open that were delivered before a crash (republished again).");
    sample_u64(b, "hookbridge_spool_replayed_total", ss.replayed);
    head(b, "hookbridge_spool_syncs_total", "counter",
         "fdatasync calls on the spool (group commit: one per batch of events spooled together).");
    sample_u64(b, "hookbridge_spool_syncs_total", ss.sync_count);
}

static void serve_metrics(admin_t *a, conn_req_t *req) {
    buf_t b = {0};
    dispatch_stats_t st;
    dispatch_get_stats(a->dispatch, &st);
    head(&b, "hookbridge_build_info", "gauge", "Always 1; the labels name the build.");
    buf_printf(&b, "hookbridge_build_info{version=\"%s\",librdkafka=\"%s\"} 1\n", HB_VERSION,
               rd_kafka_version_str());
    render_http(a, &b);
    render_events(a, &b, &st);
    render_kafka(a, &b, &st);
    render_spool(a, &b, &st);
    render_reloads(a, &b);
    if (buf_ok(&b))
        conn_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
    else
        send_error(req, 503, "nomem", "out of memory", NULL);
    buf_free(&b);
}

static void on_request(void *arg, conn_req_t *req) {
    admin_t *a = arg;
    const h1_error_t *ferr = conn_req_error(req);
    if (ferr) {
        send_error(req, ferr->status, ferr->code, ferr->detail, NULL);
        return;
    }
    const char *path = conn_req_path(req);
    h1_method_t method = conn_req_method(req);
    void (*serve)(admin_t *, conn_req_t *) = NULL;
    if (strcmp(path, "/readyz") == 0)
        serve = serve_readyz;
    else if (strcmp(path, "/metrics") == 0)
        serve = serve_metrics;
    else if (strcmp(path, "/healthz") != 0) {
        /* The path is not quoted: a webhook URL with its token sent here by mistake would
         * otherwise come back in the answer. */
        send_error(req, 404, "not_found",
                   "no endpoint at this path (try /healthz, /readyz, /metrics)", NULL);
        return;
    }
    if (method != H1_GET && method != H1_HEAD) {
        send_error(req, 405, "method_not_allowed", "the admin endpoints answer GET and HEAD",
                   "Allow: GET, HEAD\r\n");
        return;
    }
    if (serve)
        serve(a, req);
    else
        send_json(req, 200, NULL, "{\"status\":\"ok\"}\n", 16);
}

admin_t *admin_new(struct event_base *base, const hb_config_t *cfg, const admin_sources_t *src,
                   char *errstr, size_t errlen) {
    char err[512];
    admin_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(errstr, errlen, "admin listener: out of memory");
        goto fail;
    }
    a->http = src->http;
    a->dispatch = src->dispatch;
    a->reloads = src->reloads;
    a->spool_max_bytes = (uint64_t)cfg->spool_max_bytes;
    /* Scrapes and probes are small GETs from a known peer: tight limits. */
    conn_opts_t o = {
        .component = "admin",
        .listen = cfg->admin_listen,
        .max_connections = 64,
        .request_timeout_ms = 10000,
        .idle_timeout_ms = 10000,
        .max_header_bytes = 16384,
        .max_headers = 100,
        .max_body = 4096,
    };
    if (!(a->conns = conn_new(base, &o, on_request, a, err, sizeof err))) {
        snprintf(errstr, errlen, "admin listener: %s", err);
        goto fail;
    }
    a->port = conn_port(a->conns);
    if (a->http && a->port == http_port(a->http)) {
        snprintf(errstr, errlen,
                 "admin listener: admin.listen '%s' uses the webhook listener's port %d; "
                 "give it a port of its own",
                 cfg->admin_listen, a->port);
        goto fail;
    }
    dispatch_set_kafka_stats_cb(a->dispatch, on_kafka_stats, a);
    char addr[320];
    snprintf(addr, sizeof addr, "%.*s:%d",
             (int)(strrchr(cfg->admin_listen, ':') - cfg->admin_listen), cfg->admin_listen,
             a->port);
    log_info("admin", "listening", "addr", addr, NULL);
    return a;
fail:
    admin_free(a);
    return NULL;
}

int admin_port(const admin_t *a) { return a->port; }

void admin_set_stopping(admin_t *a) {
    if (a)
        a->stopping = 1;
}

void admin_free(admin_t *a) {
    if (!a)
        return;
    if (a->dispatch)
        dispatch_set_kafka_stats_cb(a->dispatch, NULL, NULL);
    conn_free(a->conns);
    brokers_free(a->brokers, a->broker_cnt);
    free(a);
}
