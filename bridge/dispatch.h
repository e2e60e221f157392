/* dispatch.h: decides where each accepted event goes (Kafka or the spool), answers its request
 * only once the event is safe, drains the spool back into Kafka topic by topic, and
 * dead-letters the records Kafka refuses for good.
 *
 * The promise: the done callback reports HB_OK only when Kafka acknowledged the record
 * (acks=all) or the spool fsynced it. Every such event then reaches its topic, or the dead
 * letters (dead_letter.topic, else <spool.dir>/deadletter/), never neither. Per key and topic,
 * records reach the topic in the order they were accepted; a record Kafka refuses for good is
 * taken out of that order (dead-lettered), never republished after later ones.
 *
 * Rules:
 *  - an event goes to the spool when Kafka takes nothing at all (kafka_up 0: librdkafka says
 *    all brokers are down, or it gave up on a record for a retriable reason while nothing was
 *    delivered within producer.ack_timeout_ms), the producer is being recreated, too much is in flight, or ITS
 *    TOPIC is parked or still has spooled records not yet delivered (a live event would
 *    overtake them). Other topics' events go straight to Kafka;
 *  - an event Kafka has not acknowledged within producer.ack_timeout_ms, or whose delivery
 *    failed, goes to the spool and its topic is parked (so the topic's next events are spooled
 *    at once); if Kafka acknowledges it later anyway, that is a counted duplicate;
 *  - spooled events share fdatasyncs (group commit, pipelined): a sync takes every event appended
 *    so far and runs on a worker thread while the loop goes on; events appended meanwhile share
 *    the next one, started when it returns (spool.commit_window_ms > 0 delays each start);
 *  - the drainer republishes spooled records oldest first, up to spool.drain_max_inflight at once
 *    (one at a time while kafka_up is 0), and passes over the records of parked topics
 *    (topics.h): each parked topic is probed with its oldest record after its own backoff
 *    (0.1 s doubling to 1 s for retriable failures, 0.25 s to 2 s for topic refusals, and at
 *    once for the retriable ones when any delivery succeeds); when the probe is delivered the
 *    topic flows again and the drain goes back for the records it passed over;
 *  - every failure is classified by kerr.h's table: retriable and topic-level failures keep the
 *    record in the spool and park its topic; a record-level refusal (INVALID_RECORD,
 *    MSG_SIZE_TOO_LARGE, POLICY_VIOLATION, ...) dead-letters the record (deadletter.h); a fatal
 *    error recreates the producer. A topic parked longer than dead_letter.after_s (0 = never)
 *    has its records dead-lettered as the drain reaches them;
 *  - the spool acks a record only when Kafka acknowledged it, or its dead letter is
 *    acknowledged by the dead-letter topic or fsynced in the folder.
 *
 * Order and librdkafka. The producer is idempotent (enable.idempotence=true), so librdkafka
 * keeps its own retries in order with up to 5 requests in flight per broker (the most
 * idempotence allows; its default). enable.gapless.guarantee stays false: with it, a record the
 * broker refuses for good (INVALID_RECORD, MSG_SIZE_TOO_LARGE) would be a fatal error that
 * stops every topic, and the bridge would retry the record forever; instead the bridge takes
 * that record out (dead letter) and the records after it stand. When a batch is refused for
 * good, the batches of the same partition after it are refused by a real broker with
 * OUT_OF_ORDER_SEQUENCE_NUMBER and retried by librdkafka after its epoch bump, so they land in
 * order. (librdkafka's mock cluster checks no sequence numbers: there those later batches are
 * simply accepted, in order too.) The bridge's own retries (a record librdkafka gave up on)
 * keep order because the failure parks the topic at once and the record is republished before
 * anything newer of its topic; only records already handed to librdkafka before the park can
 * land ahead of it, which needs a later batch of the same partition to succeed after an earlier
 * one failed for a retriable reason, which the idempotent producer does not let happen.
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
 * on the loop thread (possibly from inside dispatch_submit: when the spool refuses at once, and
 * after the stop was reported, when the event is spooled and synced within the call). */
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
    uint64_t deadlettered;   /* records dead-lettered (to the topic or the folder) */
    uint64_t parked;         /* topics parked now */
    int kafka_up;            /* 0 only while Kafka takes nothing at all (see the rules) */
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

/* Dead letters by original topic, reason (kerr.c's) and where they went ("topic": the
 * dead-letter topic, "folder": <spool.dir>/deadletter/). Capped like the topic counters. */
typedef struct dispatch_dl_stats {
    char *topic;        /* owned by the dispatcher */
    const char *reason; /* static */
    const char *to;     /* static */
    uint64_t count;
} dispatch_dl_stats_t;

/* Receives librdkafka's statistics JSON (every kafka statistics.interval.ms); json is valid
 * during the call only. */
typedef void (*dispatch_kafka_stats_cb)(void *arg, const char *json);

/* Takes ownership of spool (closed by dispatch_free). cfg is read during the call only. */
dispatch_t *dispatch_new(struct event_base *base, const hb_config_t *cfg, spool_t *spool,
                         char *errstr, size_t errlen);

/* Takes ownership of *m (left zeroed). done(ctx, ...) is called later, exactly once. */
void dispatch_submit(dispatch_t *d, msg_t *m, dispatch_done_cb done, void *ctx);

/* Graceful stop: stop draining, wait up to producer.shutdown_timeout_ms for live deliveries,
 * spool what is left, make it durable, then call stopped(arg). dispatch_submit stays safe
 * throughout: until the deadline, events go live by the usual rules (spooled only when Kafka
 * or their topic cannot take them); after it, and after stopped(), they are spooled (after
 * stopped(), synced at once, as no loop iteration may follow). The HTTP side calls this once
 * it stopped accepting and its in-flight requests were submitted. */
void dispatch_shutdown(dispatch_t *d, void (*stopped)(void *arg), void *arg);

void dispatch_get_stats(const dispatch_t *d, dispatch_stats_t *out);
/* The per-topic counters, *n entries, first-seen order; owned by d and valid until the next
 * event is dispatched. */
const dispatch_topic_stats_t *dispatch_topic_stats(const dispatch_t *d, size_t *n);
/* The dead-letter counters, *n entries; owned by d, valid until the next event. */
const dispatch_dl_stats_t *dispatch_deadletter_stats(const dispatch_t *d, size_t *n);
/* The i-th parked topic: 1 and its name, reason, librdkafka error name and the monotonic ms
 * it was parked at (all owned by d, valid until the next event); 0 past the last. */
size_t dispatch_parked(const dispatch_t *d, size_t i, const char **topic, const char **reason,
                       const char **error, int64_t *since_ms);
/* cb(arg) each time the spool becomes empty (every record delivered or dead-lettered); for
 * `hookbridge spool drain`. cb NULL clears it. */
void dispatch_set_idle_cb(dispatch_t *d, void (*cb)(void *arg), void *arg);
/* Sets (cb NULL: clears) the one receiver of librdkafka's statistics. arg must outlive it. */
void dispatch_set_kafka_stats_cb(dispatch_t *d, dispatch_kafka_stats_cb cb, void *arg);
spool_t *dispatch_spool(dispatch_t *d);
struct producer *dispatch_producer(dispatch_t *d);

/* Flushes the producer briefly, closes the spool, frees. NULL is fine. */
void dispatch_free(dispatch_t *d);

#endif
