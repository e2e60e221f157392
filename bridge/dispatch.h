/* dispatch.h: decides where each accepted event goes (Kafka or the spool), answers its request
 * only once the event is safe, and drains the spool back into Kafka.
 *
 * The promise: the done callback reports HB_OK only when Kafka acknowledged the record
 * (acks=all) or the spool fsynced it. Rules:
 *  - while the spool holds records, or Kafka is down, or the producer is being recreated, new
 *    events go to the spool (so events of one key never overtake each other);
 *  - an event Kafka has not acknowledged within producer.ack_timeout_ms, or whose delivery failed,
 *    goes to the spool; if Kafka acknowledges it later anyway, that is a counted duplicate;
 *  - spooled events share fdatasyncs (group commit, pipelined): a sync takes every event appended
 *    so far and runs on a worker thread while the loop goes on; events appended meanwhile share
 *    the next one, started when it returns (spool.commit_window_ms > 0 delays each start);
 *  - the drainer republishes spooled records in order, acks them in the spool on delivery, and
 *    probes with one record at a time while Kafka is down (the delivery report is the wake-up).
 *
 * @locality the event-loop thread.
 */
#ifndef HB_DISPATCH_H
#define HB_DISPATCH_H

#include <event2/event.h>
#include <stdint.h>

#include "config.h"
#include "msg.h"
#include "spool.h"
#include "status.h"

typedef struct dispatch dispatch_t;

/* The outcome of one event. st: HB_OK (safe; id is the envelope id), HB_ERR_NOSPACE (the spool
 * is full), HB_ERR_IO (the spool could not make it durable). Called exactly once per submit,
 * on the loop thread (possibly from inside dispatch_submit, when the spool refuses at once). */
typedef void (*dispatch_done_cb)(void *ctx, hb_status_t st, const char *id);

typedef struct dispatch_stats {
    uint64_t published;      /* acknowledged by Kafka on the live path */
    uint64_t spooled;        /* made durable in the spool */
    uint64_t rejected;       /* answered with an error (spool full, disk error) */
    uint64_t drained;        /* spooled records acknowledged by Kafka */
    uint64_t duplicates;     /* spooled, then acknowledged by Kafka on the live path as well */
    uint64_t live_inflight;  /* live events awaiting Kafka */
    uint64_t drain_inflight; /* spooled records being republished */
    uint64_t recreated;      /* producer recreations after fatal errors */
    int kafka_up;            /* 1 after a delivery succeeded, 0 after a failure or outage */
    int64_t spool_fail_ms;   /* monotonic ms of the last failed spool append or sync; 0: none */
    hb_status_t spool_fail_st; /* and its status (HB_ERR_NOSPACE: full, else a disk error) */
    /* "NAME: reason" of the last error librdkafka reported since Kafka last acknowledged an
     * event (a refused login, a TLS failure, all brokers down...); "" when there was none. */
    char kafka_error[256];
    /* accept-to-ack latency of live publishes, in histogram buckets (see DISPATCH_LAT_BUCKETS) */
    uint64_t lat_count, lat_sum_ms;
    uint64_t lat_buckets[12];
} dispatch_stats_t;

/* Upper bounds (ms) of the latency buckets; the last bucket is +Inf. */
#define DISPATCH_LAT_BOUNDS {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000}

/* Outcomes counted by Kafka topic (the topic, unlike the family, is in every msg_t). Topic
 * names come from the payload's event_type, which nobody signs, so at most
 * DISPATCH_TOPICS_MAX topics get their own entry; later ones share DISPATCH_TOPIC_OVERFLOW. */
#define DISPATCH_TOPICS_MAX 64
#define DISPATCH_TOPIC_OVERFLOW "_other"
typedef struct dispatch_topic_stats {
    char *topic; /* owned by the dispatcher */
    uint64_t published, spooled, rejected; /* as in dispatch_stats_t */
} dispatch_topic_stats_t;

/* Receives librdkafka's statistics JSON (every kafka statistics.interval.ms); json is valid
 * during the call only. */
typedef void (*dispatch_kafka_stats_cb)(void *arg, const char *json);

/* Takes ownership of spool (closed by dispatch_free). cfg is read during the call only. */
dispatch_t *dispatch_new(struct event_base *base, const hb_config_t *cfg, spool_t *spool,
                         char *errstr, size_t errlen);

/* Takes ownership of *m (left zeroed). done(ctx, ...) is called later, exactly once. */
void dispatch_submit(dispatch_t *d, msg_t *m, dispatch_done_cb done, void *ctx);

/* Graceful stop: stop draining, wait up to producer.shutdown_timeout_ms for live deliveries,
 * spool what is left, make it durable, then call stopped(arg). */
void dispatch_shutdown(dispatch_t *d, void (*stopped)(void *arg), void *arg);

void dispatch_get_stats(const dispatch_t *d, dispatch_stats_t *out);
/* The per-topic counters, *n entries, first-seen order; owned by d and valid until the next
 * event is dispatched. */
const dispatch_topic_stats_t *dispatch_topic_stats(const dispatch_t *d, size_t *n);
/* Sets (cb NULL: clears) the one receiver of librdkafka's statistics. arg must outlive it. */
void dispatch_set_kafka_stats_cb(dispatch_t *d, dispatch_kafka_stats_cb cb, void *arg);
spool_t *dispatch_spool(dispatch_t *d);
struct producer *dispatch_producer(dispatch_t *d);

/* Flushes the producer briefly, closes the spool, frees. NULL is fine. */
void dispatch_free(dispatch_t *d);

#endif
