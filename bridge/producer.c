/* producer.c: librdkafka producer whose events are served by the libevent loop. */
#include "producer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Topic handles kept per producer generation: see topic_handle(). Topic names come from unsigned
 * payloads, so the cache is capped; past the cap a record names its topic as before. */
#define PRODUCER_TOPICS_MAX 64

typedef struct producer_topic {
    char *name;
    rd_kafka_topic_t *rkt;
} producer_topic_t;

struct producer {
    struct event_base *base;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    int pipefd[2];
    struct event *wake;
    producer_cbs_t cbs;
    unsigned gen;
    rd_kafka_conf_t *conf_template;    /* kept to rebuild the handle after a fatal error */
    producer_topic_t topics[PRODUCER_TOPICS_MAX];
    size_t topic_cnt;
};

static const struct {
    const char *name, *value;
} defaults[] = {
    {"enable.idempotence", "true"},
    {"acks", "all"},
    {"log.queue", "true"},
    {"client.id", "hookbridge"},
    /* feeds /metrics (broker states); 0 turns it off. With admin.listen empty nothing reads
     * them, and producer_conf_build makes the default 0: librdkafka then also skips the
     * latency histograms it keeps for them on every request. */
    {"statistics.interval.ms", "5000"},
    /* A request is answered only after Kafka's ack, so each connection waits linger.ms plus a
     * round trip per event: librdkafka's 5 ms made the bridge latency-bound. 0.2 ms needs both
     * of our librdkafka patches: without producer-busy-loop any linger below 1 ms made the
     * broker thread spin, and without sub-ms-linger it slept a whole millisecond (poll()).
     * With both, single bench rows (32 connections, one core) at low steal gave 22,100 to
     * 23,600 req/s at 39 to 41 µs per request and 92 % of the core, against 18,700 to 19,300
     * at 80 to 83 % when 0.2 still meant 1 ms. 0 is faster still on one pinned core but
     * collapses unpinned. docs/performance.md has the sweeps. */
    {"linger.ms", "0.2"},
    /* librdkafka's reconnect backoff grows to 10 s: after a short outage the brokers were back
     * seconds before it tried again. At most 1 s keeps recovery about a second (issue 11). */
    {"reconnect.backoff.max.ms", "1000"},
};

rd_kafka_conf_t *producer_conf_build(const hb_config_t *cfg, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rderr[512];
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (rd_kafka_conf_set(conf, defaults[i].name, defaults[i].value, rderr, sizeof rderr) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, errlen, "default %s: %s", defaults[i].name, rderr);
            goto fail;
        }
    if ((!cfg->admin_listen || !*cfg->admin_listen) &&
        rd_kafka_conf_set(conf, "statistics.interval.ms", "0", rderr, sizeof rderr) !=
            RD_KAFKA_CONF_OK) {
        snprintf(errstr, errlen, "default statistics.interval.ms: %s", rderr);
        goto fail;
    }
    for (size_t i = 0; i < cfg->kafka_cnt; i++) {
        const cfg_kv_t *kv = &cfg->kafka[i];
        if (rd_kafka_conf_set(conf, kv->name, kv->value, rderr, sizeof rderr) !=
            RD_KAFKA_CONF_OK) {
            snprintf(errstr, errlen, "%s:%d: kafka.%s: %s", cfg->path ? cfg->path : "config",
                     kv->line, kv->name, rderr);
            goto fail;
        }
        if (strcmp(kv->name, "acks") == 0 && strcmp(kv->value, "all") != 0 &&
            strcmp(kv->value, "-1") != 0)
            log_warn("kafka", "acks is not 'all': a 202 no longer means every in-sync replica "
                              "has the event", "acks", kv->value, NULL);
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    producer_t *p = opaque;
    p->cbs.delivered(p->cbs.arg, m->_private, m->err, p->gen);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    producer_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        log_error("kafka", "fatal producer error", "error", rd_kafka_err2name(ferr), "reason",
                  fatal, NULL);
        p->cbs.event(p->cbs.arg, PRODUCER_EV_FATAL, ferr, fatal);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        log_warn("kafka", "all brokers down", "reason", reason, NULL);
        p->cbs.event(p->cbs.arg, PRODUCER_EV_BROKERS_DOWN, (rd_kafka_resp_err_t)err, reason);
        return;
    }
    /* A refused login or a failed TLS handshake does not heal by retrying: say what to fix. */
    if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
        log_error("kafka", "kafka refused the login", "error", "_AUTHENTICATION", "reason", reason,
                  "hint", "check kafka.sasl_mechanism, kafka.sasl_username, kafka.sasl_password",
                  NULL);
    else if (err == RD_KAFKA_RESP_ERR__SSL)
        log_error("kafka", "TLS with kafka failed", "error", "_SSL", "reason", reason, "hint",
                  "check kafka.security_protocol, kafka.ssl_ca_location and the broker's "
                  "certificate", NULL);
    else
        log_warn("kafka", "producer error", "error", rd_kafka_err2name((rd_kafka_resp_err_t)err),
                 "reason", reason, NULL);
    p->cbs.event(p->cbs.arg, PRODUCER_EV_ERROR, (rd_kafka_resp_err_t)err, reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    log_level_t lvl = level <= 3 ? LOG_LVL_ERROR
                    : level == 4 ? LOG_LVL_WARN
                    : level <= 6 ? LOG_LVL_INFO
                                 : LOG_LVL_DEBUG;
    log_at(lvl, "librdkafka", buf, "facility", fac, NULL);
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    (void)len;
    producer_t *p = opaque;
    p->cbs.event(p->cbs.arg, PRODUCER_EV_STATS, RD_KAFKA_RESP_ERR_NO_ERROR, json);
    return 0; /* librdkafka frees json */
}

/* The io-event fd became readable: empty the pipe, then serve the main queue until empty.
 * librdkafka writes to the pipe again only when the queue goes from empty to non-empty. */
static void on_wake(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    producer_t *p = arg;
    char drain[256];
    while (read(fd, drain, sizeof drain) > 0) {
    }
    rd_kafka_poll(p->rk, 0);
}

static hb_status_t start_handle(producer_t *p, char *errstr, size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf_template);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    char rderr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof rderr);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(errstr, errlen, "cannot create the Kafka producer: %s", rderr);
        return HB_ERR_KAFKA;
    }
    rd_kafka_set_log_queue(p->rk, NULL); /* logs to the main queue: served on the loop thread */
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->pipefd[1], "1", 1);
    /* librdkafka writes the wake-up only when the queue goes from empty to non-empty. Whatever
     * rd_kafka_new queued already (its logs when kafka.debug is set, an early error) would
     * keep the queue non-empty forever, with no wake-up ever written, and no delivery report
     * would be served again: serve it once now, from the loop. */
    event_active(p->wake, EV_READ, 0);
    p->gen++;
    return HB_OK;
}

static void stop_handle(producer_t *p) {
    if (!p->rk)
        return;
    for (size_t i = 0; i < p->topic_cnt; i++) {
        rd_kafka_topic_destroy(p->topics[i].rkt);
        free(p->topics[i].name);
    }
    p->topic_cnt = 0;
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    p->mainq = NULL;
}

producer_t *producer_new(struct event_base *base, const hb_config_t *cfg,
                         const producer_cbs_t *cbs, char *errstr, size_t errlen) {
    producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    p->pipefd[0] = p->pipefd[1] = -1;
    p->base = base;
    p->cbs = *cbs;
    if (!(p->conf_template = producer_conf_build(cfg, errstr, errlen)))
        goto fail;
    if (pipe2(p->pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(errstr, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    p->wake = event_new(base, p->pipefd[0], EV_READ | EV_PERSIST, on_wake, p);
    if (!p->wake || event_add(p->wake, NULL) != 0) {
        snprintf(errstr, errlen, "cannot watch the Kafka queue fd");
        goto fail;
    }
    if (start_handle(p, errstr, errlen) != HB_OK)
        goto fail;
    return p;
fail:
    producer_free(p);
    return NULL;
}

/* The application handle of topic `name`, created on first sight; NULL past the cap (or out of
 * memory). Why a handle rather than RD_KAFKA_V_TOPIC(name): librdkafka 2.0.2 asks the cluster
 * for a new topic's metadata at once only when the application creates the topic handle
 * (rd_kafka_topic_new: "leader query"). A topic first named by rd_kafka_producev() waits for
 * librdkafka's 1 s topic scan ("refresh unavailable topics"), so the first events of every
 * topic waited about a second for their ack. The handle also spares librdkafka a topic lookup
 * by name under its lock for every record. */
static rd_kafka_topic_t *topic_handle(producer_t *p, const char *name) {
    for (size_t i = 0; i < p->topic_cnt; i++)
        if (strcmp(p->topics[i].name, name) == 0)
            return p->topics[i].rkt;
    if (p->topic_cnt == PRODUCER_TOPICS_MAX)
        return NULL;
    char *copy = strdup(name);
    rd_kafka_topic_t *rkt = copy ? rd_kafka_topic_new(p->rk, name, NULL) : NULL;
    if (!rkt) {
        free(copy);
        return NULL;
    }
    p->topics[p->topic_cnt].name = copy;
    p->topics[p->topic_cnt].rkt = rkt;
    p->topic_cnt++;
    return rkt;
}

hb_status_t producer_send(producer_t *p, const msg_t *m, void *opaque,
                          rd_kafka_resp_err_t *errp) {
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(m->header_cnt);
    for (size_t i = 0; i < m->header_cnt; i++) {
        const msg_header_t *h = &m->headers[i];
        rd_kafka_header_add(hdrs, h->name, (ssize_t)h->name_len, h->value, (ssize_t)h->value_len);
    }
    rd_kafka_topic_t *rkt = topic_handle(p, m->topic);
    rd_kafka_resp_err_t err =
        rkt ? rd_kafka_producev(p->rk, RD_KAFKA_V_RKT(rkt),
                                RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
                                RD_KAFKA_V_VALUE(m->value, m->value_len),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                                RD_KAFKA_V_END)
            : rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(m->topic),
                                RD_KAFKA_V_KEY(m->key, m->key ? m->key_len : 0),
                                RD_KAFKA_V_VALUE(m->value, m->value_len),
                                RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque),
                                RD_KAFKA_V_END);
    if (errp)
        *errp = err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return HB_OK; /* librdkafka owns hdrs now */
    rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return HB_ERR_NOSPACE;
    log_debug("kafka", "produce refused", "topic", m->topic, "error", rd_kafka_err2name(err),
              NULL);
    return HB_ERR_KAFKA;
}

void producer_refresh_topic(producer_t *p, const char *topic) {
    rd_kafka_topic_t *rkt = topic_handle(p, topic);
    if (!rkt)
        return;
    /* Timeout 0: the request goes out and this returns at once (_TIMED_OUT); the answer still
     * updates librdkafka's view of the topic, which is what we are after. */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(p->rk, 0, rkt, &md, 0) == RD_KAFKA_RESP_ERR_NO_ERROR && md)
        rd_kafka_metadata_destroy(md);
}

hb_status_t producer_recreate(producer_t *p, char *errstr, size_t errlen) {
    log_warn("kafka", "recreating the producer after a fatal error", "#generation",
             (long long)p->gen, NULL);
    /* Every message still inside the old handle gets a delivery report with a purge error,
     * served here, so the caller spools each one before the handle is gone. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(p->rk, 5000);
    rd_kafka_poll(p->rk, 0);
    stop_handle(p);
    return start_handle(p, errstr, errlen);
}

void producer_flush(producer_t *p, int timeout_ms) {
    if (!p || !p->rk)
        return;
    rd_kafka_flush(p->rk, timeout_ms);
    if (rd_kafka_outq_len(p->rk) > 0) {
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 1000);
    }
    rd_kafka_poll(p->rk, 0);
}

size_t producer_max_message_bytes(const producer_t *p) {
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(p->conf_template, "message.max.bytes", v, &n) != RD_KAFKA_CONF_OK)
        return 1000000; /* librdkafka's default */
    return (size_t)strtoull(v, NULL, 10);
}

unsigned producer_generation(const producer_t *p) { return p->gen; }
int producer_outq_len(const producer_t *p) { return p->rk ? rd_kafka_outq_len(p->rk) : 0; }
rd_kafka_t *producer_handle(producer_t *p) { return p->rk; }

void producer_free(producer_t *p) {
    if (!p)
        return;
    stop_handle(p);
    if (p->wake)
        event_free(p->wake);
    if (p->pipefd[0] >= 0)
        close(p->pipefd[0]);
    if (p->pipefd[1] >= 0)
        close(p->pipefd[1]);
    if (p->conf_template)
        rd_kafka_conf_destroy(p->conf_template);
    free(p);
}
