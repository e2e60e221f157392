/* endpoint.h: the webhook endpoints: for each, its name, path, access control, router and
 * envelope options, built from the config's endpoint list (config.h says how an entry
 * overlays the top level).
 *
 * The set is immutable once built and owns copies of everything it needs: nothing in it points
 * into an hb_config_t, so the config can be freed, and a reload builds a new set, hands it to the
 * listener and frees the old one (requests hold no pointer into a set past their callback).
 *
 * Matching a request path: an exact endpoint path first; then "<path>/<token>" (one segment)
 * for an endpoint with tokens configured. Anything else matches nothing (404).
 *
 * @locality the event-loop thread; a built set is only read.
 */
#ifndef HB_ENDPOINT_H
#define HB_ENDPOINT_H

#include <stddef.h>

#include "auth.h"
#include "config.h"
#include "normalize.h"
#include "route.h"

typedef struct endpoint endpoint_t;
typedef struct endpoint_set endpoint_set_t;

/* Builds a router from a config's routing group (the top level or an endpoint's). NULL with
 * errstr ("PATH:LINE: reason"). */
route_t *endpoint_router_from_config(const hb_config_t *cfg, char *errstr, size_t errlen);

/* Builds every endpoint of cfg (cfg->endpoints): access control and router. cfg is read during
 * the call only. NULL with errstr ("PATH:LINE: endpoint 'NAME': reason" for a bad entry, or
 * "out of memory"). */
endpoint_set_t *endpoint_set_new(const hb_config_t *cfg, char *errstr, size_t errlen);

void endpoint_set_free(endpoint_set_t *set); /* NULL is fine */

/* Number of endpoints, and endpoint i (owned by the set). */
size_t endpoint_set_count(const endpoint_set_t *set);
const endpoint_t *endpoint_set_get(const endpoint_set_t *set, size_t i);

/* The index of the endpoint serving path, or -1. *path_token: what followed "<path>/" when the
 * match is by token (else NULL; it points into path). *under: when nothing matches but path
 * lies below an endpoint path ("<path>/..."), that endpoint's path, so an answer can leave out
 * what follows (it may be a mistyped token); else NULL. set may be NULL (nothing matches). */
int endpoint_set_match(const endpoint_set_t *set, const char *path, const char **path_token,
                       const char **under);

const char *endpoint_name(const endpoint_t *ep);
const char *endpoint_path(const endpoint_t *ep);
/* The access control; NULL when the endpoint has none configured. */
const auth_t *endpoint_auth(const endpoint_t *ep);
const route_t *endpoint_router(const endpoint_t *ep);
const norm_opts_t *endpoint_norm(const endpoint_t *ep);

/* Logs one line per endpoint (component "endpoint"): name, path, access control on or off,
 * source, mode and topic prefix. verb: "serving" at start, "reloaded" after a reload. */
void endpoint_set_log(const endpoint_set_t *set, const char *verb);

#endif
