/* kerr.c: the table of librdkafka errors by kind (see kerr.h). */
#include "kerr.h"

typedef struct kerr_entry {
    rd_kafka_resp_err_t err;
    kerr_kind_t kind;
    const char *reason;
} kerr_entry_t;

#define E(code, kind, reason) {RD_KAFKA_RESP_ERR_##code, KERR_##kind, reason}

static const kerr_entry_t table[] = {
    E(NO_ERROR, OK, "delivered"),
    /* A retry found the record already written: delivered, as far as the record goes. */
    E(DUPLICATE_SEQUENCE_NUMBER, OK, "already delivered (duplicate sequence)"),

    /* The connection or the cluster: librdkafka retries these itself, in order. */
    E(_TRANSPORT, RETRIABLE, "broker connection failed"),
    E(_ALL_BROKERS_DOWN, RETRIABLE, "all brokers down"),
    E(_MSG_TIMED_OUT, RETRIABLE, "not delivered within message.timeout.ms"),
    E(_TIMED_OUT, RETRIABLE, "timed out"),
    E(_TIMED_OUT_QUEUE, RETRIABLE, "timed out in the queue"),
    E(_QUEUE_FULL, RETRIABLE, "librdkafka's queue is full"),
    E(_RESOLVE, RETRIABLE, "broker address does not resolve"),
    E(_PURGE_QUEUE, RETRIABLE, "purged from the queue (producer recreated or stopping)"),
    E(_PURGE_INFLIGHT, RETRIABLE, "purged in flight (producer recreated or stopping)"),
    E(_DESTROY, RETRIABLE, "producer destroyed"),
    E(_ISR_INSUFF, RETRIABLE, "too few in-sync replicas"),
    E(_RETRY, RETRIABLE, "to be retried"),
    E(_SSL, RETRIABLE, "TLS failure"),
    E(_AUTHENTICATION, RETRIABLE, "authentication failed"),
    E(LEADER_NOT_AVAILABLE, RETRIABLE, "no partition leader"),
    E(NOT_LEADER_FOR_PARTITION, RETRIABLE, "partition leader moved"),
    E(REQUEST_TIMED_OUT, RETRIABLE, "request timed out"),
    E(BROKER_NOT_AVAILABLE, RETRIABLE, "broker not available"),
    E(REPLICA_NOT_AVAILABLE, RETRIABLE, "replica not available"),
    E(NETWORK_EXCEPTION, RETRIABLE, "network error"),
    E(NOT_ENOUGH_REPLICAS, RETRIABLE, "not enough in-sync replicas"),
    E(NOT_ENOUGH_REPLICAS_AFTER_APPEND, RETRIABLE, "not enough replicas after append"),
    E(KAFKA_STORAGE_ERROR, RETRIABLE, "broker storage error"),
    E(FENCED_LEADER_EPOCH, RETRIABLE, "stale leader epoch"),
    E(UNKNOWN_LEADER_EPOCH, RETRIABLE, "unknown leader epoch"),
    E(THROTTLING_QUOTA_EXCEEDED, RETRIABLE, "quota exceeded"),
    E(PREFERRED_LEADER_NOT_AVAILABLE, RETRIABLE, "preferred leader not available"),
    E(ELIGIBLE_LEADERS_NOT_AVAILABLE, RETRIABLE, "no eligible leader"),

    /* The topic as a whole is refused: park it, the others flow. */
    E(_UNKNOWN_TOPIC, TOPIC, "topic does not exist"),
    E(UNKNOWN_TOPIC_OR_PART, TOPIC, "topic or partition does not exist"),
    E(_UNKNOWN_PARTITION, TOPIC, "partition does not exist"),
    E(TOPIC_AUTHORIZATION_FAILED, TOPIC, "not authorised to write to the topic"),
    E(CLUSTER_AUTHORIZATION_FAILED, TOPIC, "not authorised on the cluster (IdempotentWrite)"),
    E(TOPIC_EXCEPTION, TOPIC, "invalid topic name"),
    /* A setting of ours the broker refuses: every record of the topic fails the same way, so
     * dead-lettering them would empty the topic into the DLQ. */
    E(INVALID_REQUIRED_ACKS, TOPIC, "broker refuses the acks setting"),
    E(UNSUPPORTED_FOR_MESSAGE_FORMAT, TOPIC, "topic's message format does not support the record"),
    E(UNSUPPORTED_COMPRESSION_TYPE, TOPIC, "topic refuses the compression type"),
    E(UNSUPPORTED_VERSION, TOPIC, "broker does not support the request version"),

    /* This record can never be published: dead letter. */
    E(MSG_SIZE_TOO_LARGE, RECORD, "record larger than the topic's max.message.bytes"),
    E(INVALID_MSG_SIZE, RECORD, "invalid record size"),
    E(RECORD_LIST_TOO_LARGE, RECORD, "record batch too large"),
    E(INVALID_RECORD, RECORD, "broker refused the record as invalid"),
    E(INVALID_MSG, RECORD, "corrupt record (CRC)"),
    E(POLICY_VIOLATION, RECORD, "record violates a topic policy"),
    E(INVALID_TIMESTAMP, RECORD, "record timestamp out of the topic's range"),
    E(_BAD_MSG, RECORD, "bad record"),
    E(_INVALID_ARG, RECORD, "librdkafka refused the record's fields"),
    E(_KEY_SERIALIZATION, RECORD, "key cannot be serialised"),
    E(_VALUE_SERIALIZATION, RECORD, "value cannot be serialised"),

    /* The idempotent producer's state is lost: a new producer instance. */
    E(_FATAL, FATAL, "fatal producer error"),
    E(_GAPLESS_GUARANTEE, FATAL, "gapless guarantee broken"),
    E(_FENCED, FATAL, "producer fenced"),
    E(OUT_OF_ORDER_SEQUENCE_NUMBER, FATAL, "out of order sequence number"),
    E(INVALID_PRODUCER_EPOCH, FATAL, "invalid producer epoch"),
    E(INVALID_PRODUCER_ID_MAPPING, FATAL, "invalid producer id"),
    E(PRODUCER_FENCED, FATAL, "producer fenced"),
    E(TRANSACTIONAL_ID_AUTHORIZATION_FAILED, FATAL, "transactional id not authorised"),
};

#undef E

#define N_ENTRIES (sizeof table / sizeof table[0])

kerr_kind_t kerr_classify(rd_kafka_resp_err_t err, const char **reason) {
    for (size_t i = 0; i < N_ENTRIES; i++)
        if (table[i].err == err) {
            if (reason)
                *reason = table[i].reason;
            return table[i].kind;
        }
    if (reason)
        *reason = "unclassified error (kept and retried)";
    return KERR_RETRIABLE;
}

const char *kerr_kind_name(kerr_kind_t kind) {
    switch (kind) {
    case KERR_OK: return "ok";
    case KERR_RETRIABLE: return "retriable";
    case KERR_TOPIC: return "topic";
    case KERR_RECORD: return "record";
    case KERR_FATAL: return "fatal";
    }
    return "unknown";
}

size_t kerr_table_count(void) { return N_ENTRIES; }

void kerr_table_entry(size_t i, rd_kafka_resp_err_t *err, kerr_kind_t *kind,
                      const char **reason) {
    if (i >= N_ENTRIES)
        return;
    *err = table[i].err;
    *kind = table[i].kind;
    *reason = table[i].reason;
}
