/* admin.h: the operator's listener: /healthz, /readyz and Prometheus /metrics.
 *
 * A separate listener (conn.h's HTTP server) on admin.listen, never the webhook listener: its
 * own socket and a port that must differ from the webhook port, so exposing one never exposes
 * the other. It only reads the
 * daemon's state (counters of http.c, dispatch.c, spool.c), except for the latest broker states
 * from librdkafka's statistics, which it keeps itself (parsed once per statistics event, not per
 * scrape).
 *
 *   GET /healthz  200 {"status":"ok"} while the loop runs.
 *   GET /readyz   200 when an event posted now can be made safe: Kafka is up, or the spool has
 *                 room; 503 otherwise, and from the moment a graceful stop begins. Body:
 *                 {"ready":bool,"kafka":"up"|"down","spool":"ok"|"full"|"error","reason":"...",
 *                  "kafka_error":"NAME: reason" (while Kafka is down),
 *                  "parked":[{"topic":..,"reason":..,"error":..,"parked_s":..}]}
 *                 Parked topics (dispatch.h) do not make it 503: their events are safe in the
 *                 spool while the other topics flow; they are listed.
 *                 spool "full": at spool.max_bytes, or it refused a record for space within
 *                 the last 30 s; "error": another spool write failure within the last 30 s.
 *                 (A window, not "until the next good write": a bridge that is not ready gets
 *                 no traffic, so it would never see one.)
 *   GET /metrics  Prometheus text format 0.0.4 (metric list in README "Operating it").
 * Other paths: 404, other methods: 405 (with Allow), requests the framing refuses: 400, 413,
 * 431 or 505 and a close; all as JSON {"error":..,"detail":..}. HEAD gets the headers only.
 *
 * @locality the event-loop thread.
 */
#ifndef HB_ADMIN_H
#define HB_ADMIN_H

#include <event2/event.h>
#include <stddef.h>

#include "config.h"
#include "dispatch.h"
#include "http.h"

typedef struct admin admin_t;

/* Configuration loads, kept by the bridge: the load at start counts as a success (not as a
 * reload), each SIGHUP as one reload. */
typedef struct admin_reload_stats {
    uint64_t ok, error;      /* reloads by result */
    int last_ok;             /* 1 when the latest load succeeded */
    int64_t last_success_ms; /* Unix ms of the latest successful load */
} admin_reload_stats_t;

/* What the admin listener reports on. All borrowed: they must outlive the admin_t. */
typedef struct admin_sources {
    const http_server_t *http; /* the webhook listener: answer counters, its port */
    dispatch_t *dispatch;      /* outcomes, Kafka state, the spool, the producer */
    const admin_reload_stats_t *reloads; /* NULL: reported as none */
} admin_sources_t;

/* Binds cfg->admin_listen (not empty: the caller leaves the admin listener out then) and starts
 * serving; logs {"component":"admin","msg":"listening","addr":"HOST:PORT"}. Registers itself as
 * the dispatcher's receiver of librdkafka statistics. cfg is read during the call only.
 * NULL with errstr on failure (cannot bind, same port as the webhook listener, out of memory). */
admin_t *admin_new(struct event_base *base, const hb_config_t *cfg, const admin_sources_t *src,
                   char *errstr, size_t errlen);

/* The port actually bound (useful with port 0). */
int admin_port(const admin_t *a);

/* A graceful stop began: /readyz answers 503 from now on; /healthz and /metrics still answer.
 * NULL is fine. */
void admin_set_stopping(admin_t *a);

/* Closes the listener and its connections, unregisters the statistics receiver. Call before
 * freeing the sources. NULL is fine. */
void admin_free(admin_t *a);

#endif
