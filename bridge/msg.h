/* msg.h: one Kafka record as hookbridge builds, spools and publishes it. */
#ifndef HB_MSG_H
#define HB_MSG_H

#include <stddef.h>
#include <stdint.h>

#define MSG_ID_LEN 64 /* lowercase hex SHA-256 */
/* The Kafka header naming the HTTP request that brought the event (its X-Request-Id). Not
 * "ce_": in the CloudEvents Kafka binding that prefix marks event attributes, and the request
 * id is not part of the event (a webhook sent twice is one event, with one envelope id, but
 * two requests). */
#define MSG_HDR_REQUEST_ID "hb_request_id"

typedef struct msg_header {
    char *name;    /* owned, NUL-terminated */
    size_t name_len; /* strlen(name) */
    char *value;   /* owned, value_len bytes (NUL-terminated for convenience) */
    size_t value_len;
    int packed;    /* value lives in name's allocation (msg_add_header's one block); 0: its own */
} msg_header_t;

/* Every pointer in a msg_t is owned by it and released by msg_free(). */
typedef struct msg {
    char *topic;              /* NUL-terminated */
    char *key;                /* NULL: no key */
    size_t key_len;
    msg_header_t *headers;
    size_t header_cnt;
    size_t header_cap;        /* room in headers (msg_add_header); below header_cnt: exactly that */
    char *value;
    size_t value_len;
    int64_t accept_ms;        /* when the bridge accepted the request (Unix ms) */
    char id[MSG_ID_LEN + 1];  /* the envelope id, NUL-terminated ("" when unknown) */
} msg_t;

/* Appends a header (copies name and value into one allocation; the array grows by doubling).
 * Returns 0, or -1 when out of memory. */
int msg_add_header(msg_t *m, const char *name, const void *value, size_t value_len);
/* Looks up a header by exact name; NULL if absent. */
const msg_header_t *msg_header(const msg_t *m, const char *name);
/* Deep copy; returns 0 or -1 (dst left empty). */
int msg_copy(msg_t *dst, const msg_t *src);
/* Frees what m owns and zeroes it; m itself is not freed. Safe on a zeroed msg_t. */
void msg_free(msg_t *m);

#endif
