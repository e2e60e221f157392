/* topics.h: per-topic drain state: which topics Kafka refuses (parked), why, and when each is
 * probed again, so one refused topic never holds back the others.
 *
 *   FLOWING --a record of it failed--> PARKED --its backoff passed--> PROBING
 *      ^                                  ^                               |
 *      |                                  +------ the probe failed -------+
 *      +------------------- the probe was delivered ----------------------+
 *
 * A topic absent from the table is FLOWING. While PARKED, none of its records is published
 * (the drain passes over them; new events of the topic are spooled at once); while PROBING,
 * exactly one record (the oldest) is out as the probe. Backoffs double from a minimum to a cap
 * that depends on the kind of failure (kerr.h): short for retriable failures, longer for
 * topic-level refusals. Nothing here does I/O or keeps time: callers pass the monotonic clock
 * in and own the timer (topics_next_due).
 *
 * @locality the event-loop thread.
 */
#ifndef HB_TOPICS_H
#define HB_TOPICS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "kerr.h"

typedef enum topic_state { TOPIC_FLOWING = 0, TOPIC_PARKED, TOPIC_PROBING } topic_state_t;

/* Backoff bounds (ms) by kind of failure. The retriable cap is the all-brokers-down probe's. */
#define TOPICS_RETRY_MIN_MS 100
#define TOPICS_RETRY_MAX_MS 1000
#define TOPICS_REFUSED_MIN_MS 250
#define TOPICS_REFUSED_MAX_MS 2000

typedef struct topic {
    char *name;                /* owned by the table */
    topic_state_t state;
    kerr_kind_t kind;          /* of the failure that parked it */
    rd_kafka_resp_err_t err;   /* that failure */
    const char *reason;        /* static (kerr.c or a literal) */
    int64_t parked_since_ms;   /* monotonic; since it last left FLOWING */
    int64_t backoff_ms;
    int64_t next_probe_ms;     /* monotonic; PARKED only */
    int probe_out;             /* PROBING: the probe record is out */
    int expired;               /* parked longer than dead_letter.after_s: records go to the DLQ */
} topic_t;

typedef struct topics topics_t;

topics_t *topics_new(void); /* NULL when out of memory */
void topics_free(topics_t *ts); /* NULL is fine */

/* The entry of name; NULL when it has none (FLOWING). Entries live as long as the table. */
topic_t *topics_get(const topics_t *ts, const char *name);

/* 1 when name is PARKED, or PROBING with its probe out: its records must wait. */
int topics_blocked(const topics_t *ts, const char *name);

/* Topics not FLOWING; 0 lets callers skip every lookup. */
size_t topics_parked_count(const topics_t *ts);

/* A record of name failed with err (of kind, for reason). A FLOWING topic is PARKED, its
 * first probe after the minimum backoff; a failed probe (probe 1) parks it again with the
 * backoff doubled. Any other failure of a parked topic (a record sent before the park coming
 * back) changes nothing. Returns 1 when it was FLOWING (the caller logs the park, once), 2 when
 * a failed probe shows another kind of failure than the one it was parked for (say, a timeout
 * first, then the topic is missing: worth one more line), 0 otherwise, -1 when out of
 * memory. */
int topics_park(topics_t *ts, const char *name, kerr_kind_t kind, rd_kafka_resp_err_t err,
                const char *reason, int probe, int64_t now_ms);

/* A record of name was delivered: FLOWING again. Returns 1 when it was not (the caller logs
 * that it flows again, once), else 0. */
int topics_unpark(topics_t *ts, const char *name);

/* Moves every PARKED topic whose probe is due to PROBING, and marks expired those parked for
 * at least after_ms (0: never). Returns how many changed (the caller rewinds the drain). */
size_t topics_due(topics_t *ts, int64_t now_ms, int64_t after_ms);

/* Makes the topics parked for a retriable failure due now (Kafka just took a record: their
 * failure was likely the same outage). Returns how many. */
size_t topics_retry_now(topics_t *ts, int64_t now_ms);

/* The earliest next probe among PARKED topics (monotonic ms), or -1 when none is PARKED. */
int64_t topics_next_due(const topics_t *ts);

/* Entry i of the table (i < topics_count()), in first-park order; for metrics and /readyz. */
size_t topics_count(const topics_t *ts);
const topic_t *topics_at(const topics_t *ts, size_t i);

#endif
