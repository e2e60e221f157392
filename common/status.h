/* status.h: the one status enum every hookbridge module returns. */
#ifndef HB_STATUS_H
#define HB_STATUS_H

typedef enum hb_status {
    HB_OK = 0,
    HB_ERR_NOMEM,       /* allocation failed */
    HB_ERR_IO,          /* read/write/fsync failed; errno was saved by the caller's log line */
    HB_ERR_NOSPACE,     /* ENOSPC, or the spool reached its byte cap or free-disk floor */
    HB_ERR_INVALID,     /* bad argument or bad input */
    HB_ERR_JSON,        /* body is not valid JSON */
    HB_ERR_NOT_OBJECT,  /* body is JSON but not an object */
    HB_ERR_NO_TYPE,     /* no string event_type */
    HB_ERR_CORRUPT,     /* on-disk data failed a magic, version, length or CRC check */
    HB_ERR_TRUNCATED,   /* on-disk data ends mid-record (torn write) */
    HB_ERR_VERSION,     /* on-disk data has a version this build does not read */
    HB_ERR_EOF,         /* no more records */
    HB_ERR_NOT_FOUND,
    HB_ERR_CONFIG,      /* configuration rejected */
    HB_ERR_KAFKA,       /* librdkafka refused the call */
    HB_ERR_TIMEOUT,
    HB_ERR__COUNT
} hb_status_t;

/* Short stable name of a status ("ok", "io", ...), for logs and JSON errors. Never NULL. */
const char *hb_status_str(hb_status_t st);

#endif
