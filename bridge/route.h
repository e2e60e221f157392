/* route.h: event_type -> family -> topic. Pure: no I/O, no globals.
 *
 * Rules are tried in the order added, then the built-in defaults
 * (application.* -> application, stack.* -> stack, backup.* and managed_backup.* -> backup),
 * then the fallback: the event type's first dot-separated segment ("server.created" ->
 * "server"; an event type without a dot is its own family).
 * A pattern is either exact ("stack.created"), a prefix ending in ".*" ("stack.*": matches
 * "stack.x" and "stack.x.y", not "stack" nor "stacks.x"), or "*" (everything).
 * The topic of a family is its explicit entry, else topic_prefix + family.
 */
#ifndef HB_ROUTE_H
#define HB_ROUTE_H

#include <stddef.h>

#include "status.h"

#define ROUTE_NAME_MAX 250 /* longest family or topic name (Kafka's topic limit is 249) */

typedef struct route route_t;

/* Creates a router with the built-in defaults and topic_prefix (copied; NULL = "cloud66.").
 * Returns NULL when out of memory. Free with route_free(). */
route_t *route_new(const char *topic_prefix);
/* Adds a rule ahead of the defaults. HB_ERR_INVALID (with errstr) for a bad pattern or family
 * name (empty, too long, or not [A-Za-z0-9._-]). */
hb_status_t route_add_rule(route_t *r, const char *pattern, const char *family, char *errstr,
                           size_t errlen);
/* Sets the topic of a family. HB_ERR_INVALID (with errstr) for an invalid Kafka topic name. */
hb_status_t route_set_topic(route_t *r, const char *family, const char *topic, char *errstr,
                            size_t errlen);
/* Writes the family of event_type into out (NUL-terminated). Returns its length, or 0 when no
 * valid family results (empty event type, or a segment with characters outside
 * [A-Za-z0-9._-]: such an event goes nowhere and the caller answers 422). */
size_t route_family(const route_t *r, const char *event_type, char *out, size_t outlen);
/* Writes the topic of family into out. Returns its length, or 0 when it does not fit. */
size_t route_topic(const route_t *r, const char *family, char *out, size_t outlen);
void route_free(route_t *r); /* NULL is fine */

#endif
