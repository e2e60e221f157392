/* bridge.h: the daemon's state, one struct: config, router, spool, producer, listeners.
 *
 * Tests can build two of them in one process: nothing here is global but the logger.
 * @locality the event-loop thread.
 */
#ifndef HB_BRIDGE_H
#define HB_BRIDGE_H

#include <event2/event.h>

#include "config.h"
#include "route.h"

typedef struct bridge bridge_t;

/* Builds a router from the config's routing group. NULL with errstr ("PATH:LINE: reason"). */
route_t *bridge_router_from_config(const hb_config_t *cfg, char *errstr, size_t errlen);

/* Starts everything: opens the spool (recovering it), creates the producer, binds the listeners.
 * Takes ownership of cfg. NULL with errstr on failure (cfg freed too). */
bridge_t *bridge_new(struct event_base *base, hb_config_t *cfg, char *errstr, size_t errlen);

/* Graceful stop: stop accepting connections, let in-flight events finish or spool them, then call
 * done(arg). */
void bridge_shutdown(bridge_t *b, void (*done)(void *arg), void *arg);

void bridge_free(bridge_t *b); /* NULL is fine */

#endif
