/* producer.h: librdkafka producer driven by the libevent loop.
 *
 * Delivery reports, errors, logs and statistics are all served on the event-loop thread: the
 * main queue's io-event fd (rd_kafka_queue_io_event_enable) wakes the loop, which then polls
 * the queue empty. No polling timer.
 *
 * Defaults set before the user's `kafka` group: enable.idempotence=true, acks=all,
 * log.queue=true, client.id=hookbridge, statistics.interval.ms=5000, linger.ms=1,
 * reconnect.backoff.max.ms=1000; the user's
 * properties pass through unchanged after them.
 *
 * @locality every function: the event-loop thread.
 */
#ifndef HB_PRODUCER_H
#define HB_PRODUCER_H

#include <event2/event.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "msg.h"
#include "status.h"

typedef struct producer producer_t;

typedef enum producer_event {
    PRODUCER_EV_BROKERS_DOWN, /* all brokers unreachable (__ALL_BROKERS_DOWN) */
    PRODUCER_EV_FATAL,        /* fatal error: the caller must producer_recreate() */
    PRODUCER_EV_ERROR,        /* another error worth logging, reason given */
    PRODUCER_EV_STATS         /* reason = the statistics JSON */
} producer_event_t;

typedef struct producer_cbs {
    /* A delivery report: opaque is what producer_send got; err is RD_KAFKA_RESP_ERR_NO_ERROR
     * when the broker acknowledged (acks=all). gen is the producer generation that sent it. */
    void (*delivered)(void *arg, void *opaque, rd_kafka_resp_err_t err, unsigned gen);
    void (*event)(void *arg, producer_event_t ev, rd_kafka_resp_err_t err, const char *reason);
    void *arg;
} producer_cbs_t;

/* Builds the librdkafka configuration from cfg->kafka and checks it; used by --check-config.
 * Returns the conf (caller owns, rd_kafka_conf_destroy) or NULL with "LINE: reason". */
rd_kafka_conf_t *producer_conf_build(const hb_config_t *cfg, char *errstr, size_t errlen);

/* Creates the producer. cfg is read during the call only. NULL and errstr on failure. */
producer_t *producer_new(struct event_base *base, const hb_config_t *cfg,
                         const producer_cbs_t *cbs, char *errstr, size_t errlen);

/* Hands m to librdkafka WITHOUT copying: m's topic, key, value must stay alive and unchanged
 * until the delivery report for opaque arrives (headers are copied). HB_ERR_NOSPACE when the
 * local queue is full, HB_ERR_KAFKA for another refusal (logged at debug: the caller knows what
 * it means, kerr.h). *err (may be NULL) gets librdkafka's code either way. */
hb_status_t producer_send(producer_t *p, const msg_t *m, void *opaque, rd_kafka_resp_err_t *err);

/* Asks the cluster for topic's metadata now, without waiting for the answer. librdkafka refuses
 * records of a topic it saw missing until it learns otherwise, and would only look again at
 * its next periodic refresh: a parked topic's probe calls this so a topic created meanwhile is
 * seen at once. */
void producer_refresh_topic(producer_t *p, const char *topic);

/* Replaces the rd_kafka_t after a fatal error: purges everything, serves the purged delivery
 * reports (each with an error) and starts a new generation. HB_OK or HB_ERR_KAFKA. */
hb_status_t producer_recreate(producer_t *p, char *errstr, size_t errlen);

/* Waits up to timeout_ms for outstanding deliveries, serving their reports; then purges what
 * remains (those reports arrive with an error). Blocks: for shutdown only. */
void producer_flush(producer_t *p, int timeout_ms);

/* librdkafka's message.max.bytes as configured: a record larger than this can never be
 * published, so callers refuse it up front rather than spool it forever. */
size_t producer_max_message_bytes(const producer_t *p);

unsigned producer_generation(const producer_t *p);
int producer_outq_len(const producer_t *p);
rd_kafka_t *producer_handle(producer_t *p); /* for tests and metrics; owned by p */

void producer_free(producer_t *p); /* flushes nothing: call producer_flush first. NULL ok */

#endif
