/* normalize.h: a Cloud 66 webhook body in, one CloudEvents 1.0 record out.
 *
 * Pure: bytes and a clock value in, a msg_t out. No HTTP, no Kafka, no globals, no clock reads,
 * so the golden tests are byte-for-byte reproducible.
 *
 * The envelope (see README "The envelope"):
 *   specversion "1.0"; id = lowercase hex SHA-256 of the raw body; source = opts->source, plus
 *   "/stacks/<uid>" when the event names a stack; type = "com.cloud66." + event_type;
 *   subject = stack uid, else the payload's top-level string `uid`, else absent;
 *   time = `timestamp` (Unix seconds) as RFC 3339 UTC, else the receive time;
 *   datacontenttype "application/json"; extensions family and receivedat (RFC 3339 with ms);
 *   data = the payload with the stack's fields gathered under data.stack.
 *   A key repeated in one object counts once, with its last value (json-c's rule; README).
 *   Numbers keep their source text, integers beyond 64 bits included (an integer -0 is 0).
 * Structured mode: value = the envelope JSON, header content-type
 *   "application/cloudevents+json; charset=UTF-8".
 * Binary mode: value = data JSON, headers ce_specversion, ce_id, ce_source, ce_type,
 *   ce_subject (when present), ce_time, ce_family, ce_receivedat, content-type
 *   "application/json".
 * Key: the stack uid, else the subject, else none. Topic: from the router.
 */
#ifndef HB_NORMALIZE_H
#define HB_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "route.h"
#include "status.h"

typedef enum norm_mode {
    NORM_STRUCTURED = 0,
    NORM_BINARY = 1
} norm_mode_t;

/* Which parser reads the body. NORM_PATH_AUTO (the daemon's): jscan's one-pass tape where it
 * takes the body (jscan.h: a subset of JSON on which its record is json-c's, byte for byte),
 * json-c otherwise and for every refusal. The other two are for the tests and the differential
 * fuzzer: NORM_PATH_JSONC json-c only; NORM_PATH_FAST the tape only, HB_ERR_NOT_FOUND when it
 * does not take the body. */
typedef enum norm_path {
    NORM_PATH_AUTO = 0,
    NORM_PATH_JSONC = 1,
    NORM_PATH_FAST = 2
} norm_path_t;

typedef struct norm_opts {
    const char *source;  /* CloudEvents source prefix, e.g. "/cloud66" */
    norm_mode_t mode;
    int max_depth;       /* JSON nesting limit; 0 = 64 */
    norm_path_t path;
} norm_opts_t;

/* Builds the record for one webhook body.
 * now_ms: the receive time (Unix ms), used for receivedat and, when the payload has no usable
 * timestamp, for time. On HB_OK, *out is filled (out->topic, key, headers, value, id,
 * accept_ms = now_ms) and owned by the caller (msg_free). On error *out is zeroed and errstr
 * says what was wrong, in words fit for an HTTP client:
 *   HB_ERR_JSON        not valid JSON (errstr names the offset and the reason; this includes
 *                      what json-c alone would take: raw control characters in a string,
 *                      single quotes, NaN, "1."), or nested deeper than max_depth
 *   HB_ERR_INVALID     NUL byte or invalid UTF-8 in the body, or \u0000 in an object key
 *                      (json-c would cut the key there)
 *   HB_ERR_NOT_OBJECT  valid JSON but not an object
 *   HB_ERR_NO_TYPE     no string `event_type`, or one that yields no family
 *   HB_ERR_NOMEM
 *   HB_ERR_NOT_FOUND   (NORM_PATH_FAST only) the fast path does not take this body
 * The router is only read. */
hb_status_t norm_build(const norm_opts_t *opts, const route_t *router, const char *body,
                       size_t len, int64_t now_ms, msg_t *out, char *errstr, size_t errlen);

#endif
