/* kerr.h: what an error from librdkafka means for one record: the one table of error kinds.
 *
 * Every delivery report, and every refusal of rd_kafka_producev(), is classified here, and the
 * dispatcher acts on the kind alone:
 *
 *   KERR_RETRIABLE  a transient failure (a broker down, a timeout, a leader moving). librdkafka's
 *                   idempotent producer has already retried it in order; when it gives up, the
 *                   dispatcher keeps the record in the spool, parks its topic briefly and
 *                   republishes it before anything newer of that topic.
 *   KERR_TOPIC      Kafka refuses the topic (unknown, not authorised, ...): the topic is parked
 *                   with a backoff of its own while the others flow; its records wait in the
 *                   spool (or go to the dead letters after dead_letter.after_s).
 *   KERR_RECORD     Kafka will never take this record (too large, invalid, against a policy):
 *                   it goes to the dead letters, never to the back of the queue.
 *   KERR_FATAL      the producer instance is unusable (idempotence state lost): recreate it;
 *                   the record is retried by the new one.
 *
 * Errors the table does not name are KERR_RETRIABLE: a record is then kept and retried, never
 * dropped or dead-lettered on a guess.
 */
#ifndef HB_KERR_H
#define HB_KERR_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

typedef enum kerr_kind {
    KERR_OK = 0,
    KERR_RETRIABLE,
    KERR_TOPIC,
    KERR_RECORD,
    KERR_FATAL,
} kerr_kind_t;

/* The kind of err and, in *reason (may be NULL), a short static explanation for logs, metrics
 * and dead-letter headers. */
kerr_kind_t kerr_classify(rd_kafka_resp_err_t err, const char **reason);

/* "ok", "retriable", "topic", "record", "fatal". */
const char *kerr_kind_name(kerr_kind_t kind);

/* The table itself, for tests and documentation: entry i (i < kerr_table_count()). */
size_t kerr_table_count(void);
void kerr_table_entry(size_t i, rd_kafka_resp_err_t *err, kerr_kind_t *kind, const char **reason);

#endif
