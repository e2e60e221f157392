/* bridge.h: the daemon's state, one struct: config, endpoints, spool, producer, listeners.
 *
 * Tests can build two of them in one process: nothing here is global but the logger.
 *
 * Reload (bridge_reload, on SIGHUP): the file the daemon started with is read and checked like
 * at start; if it is good, the options flagged CFG_F_RELOAD (config.h) take effect at once: a
 * new endpoint set (paths, access control, routers, envelope source and mode, JSON depth) is
 * swapped in and log.level is set. The listeners, their connections, the producer and the spool
 * are untouched, so no connection is dropped and no event is lost. Every other option that
 * differs from the running value is logged at warn and keeps the running value until a
 * restart. A bad file changes nothing and is logged with "PATH:LINE: reason".
 *
 * @locality the event-loop thread.
 */
#ifndef HB_BRIDGE_H
#define HB_BRIDGE_H

#include <event2/event.h>

#include "config.h"
#include "status.h"

typedef struct bridge bridge_t;

/* Reads path (NULL: the defaults) and checks all the daemon would refuse at start: the file
 * against the option table, every endpoint's access control and router, the librdkafka
 * properties, and the TLS certificate and key (so a half-rotated key pair refuses a reload). NULL with errstr ("PATH:LINE: reason"). Used at start, by --check-config and by
 * bridge_reload. */
hb_config_t *bridge_config_load(const char *path, char *errstr, size_t errlen);

/* Starts everything: opens the spool (recovering it), creates the producer, binds the listeners.
 * Takes ownership of cfg (from bridge_config_load). NULL with errstr on failure (cfg freed
 * too). */
bridge_t *bridge_new(struct event_base *base, hb_config_t *cfg, char *errstr, size_t errlen);

/* Reloads the config file the bridge started with (see above) and logs the outcome. HB_OK when
 * applied; HB_ERR_CONFIG when the file was refused (the running config stays);
 * HB_ERR_NOT_FOUND when the bridge runs on the defaults (no file: nothing is counted). */
hb_status_t bridge_reload(bridge_t *b);

/* Graceful stop (SIGTERM): /readyz answers 503 at once; the webhook listener keeps serving for
 * http.shutdown_grace_ms, every answer from now on carrying Connection: close (a request the
 * client already pipelined is still answered first); then it stops accepting and closes the
 * connections between requests; once the others are answered (at most
 * http.request_timeout_ms + producer.ack_timeout_ms), the dispatcher stops (dispatch_shutdown:
 * in-flight deliveries get producer.shutdown_timeout_ms, the rest is spooled), the answers are
 * flushed, and done(arg) runs. */
void bridge_shutdown(bridge_t *b, void (*done)(void *arg), void *arg);

/* The longest a graceful stop can take by cfg's timeouts, flushing answers aside. */
int64_t bridge_stop_budget_ms(const hb_config_t *cfg);

void bridge_free(bridge_t *b); /* NULL is fine */

#endif
