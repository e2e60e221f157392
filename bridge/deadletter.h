/* deadletter.h: records Kafka refuses for good: their dead-letter form and the folder that
 * keeps them when the dead-letter topic refuses them too.
 *
 * A dead letter is the original record (key, value, headers) plus these headers:
 *   hb_dlq_topic             the topic it was meant for
 *   hb_dlq_error             librdkafka's error name (e.g. INVALID_RECORD, MSG_SIZE_TOO_LARGE)
 *   hb_dlq_reason            kerr.c's reason for that error, in words
 *   hb_dlq_attempts          publish attempts this bridge made (decimal)
 *   hb_dlq_first_attempt_ms  Unix ms of the first attempt this bridge knows of
 * The dispatcher publishes it to dead_letter.topic; when that topic refuses it (or is
 * disabled), the folder <spool.dir>/deadletter/ keeps it: a spool directory of its own (same
 * format, spool.h), whose records carry the original topic. The main spool acks the record only
 * once the dead letter is acknowledged by Kafka or fsynced in the folder.
 *
 * Operators: `hookbridge spool dead-letters list DIR` prints the folder's records;
 * `... replay DIR` appends them, in order and without the hb_dlq_* headers, to the spool DIR for
 * the next daemon to publish (refused while a daemon holds DIR). A crash during a replay can
 * replay a record twice, never lose one.
 *
 * @locality the event-loop thread (the folder syncs on it: dead letters are rare).
 */
#ifndef HB_DEADLETTER_H
#define HB_DEADLETTER_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>

#include "msg.h"
#include "status.h"

#define DEADLETTER_DIR "deadletter"
#define DEADLETTER_HDR_TOPIC "hb_dlq_topic"
#define DEADLETTER_HDR_ERROR "hb_dlq_error"
#define DEADLETTER_HDR_REASON "hb_dlq_reason"
#define DEADLETTER_HDR_ATTEMPTS "hb_dlq_attempts"
#define DEADLETTER_HDR_FIRST "hb_dlq_first_attempt_ms"
#define DEADLETTER_HDR_PREFIX "hb_dlq_"

/* Builds in *out (owned by the caller, msg_free) the dead letter of orig, addressed to topic.
 * Returns 0, or -1 when out of memory (*out left empty). */
int deadletter_build(msg_t *out, const msg_t *orig, const char *topic, rd_kafka_resp_err_t err,
                     const char *reason, unsigned attempts, int64_t first_attempt_ms);

typedef struct deadletter deadletter_t;

/* Opens (creating) <spool_dir>/deadletter. NULL with errstr on failure. */
deadletter_t *deadletter_open(const char *spool_dir, char *errstr, size_t errlen);

/* Appends m (a dead letter: topic = its original topic) and fsyncs it. HB_OK: durable. */
hb_status_t deadletter_store(deadletter_t *dl, const msg_t *m);

/* Records in the folder. */
uint64_t deadletter_records(const deadletter_t *dl);

void deadletter_close(deadletter_t *dl); /* NULL is fine */

/* The CLI (main.c). list: one line a record, then a summary; 0, or 2 when unreadable.
 * replay: 0 when every dead letter is back in the spool (or there were none); 1 when the spool
 * is held by a daemon or a write failed (nothing is removed from the folder then). */
int deadletter_list(const char *spool_dir, FILE *out, FILE *err);
int deadletter_replay(const char *spool_dir, FILE *out, FILE *err);

#endif
