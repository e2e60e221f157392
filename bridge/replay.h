/* replay.h: the Standard Webhooks replay cache: which webhook-id was accepted with which envelope
 * id, so a sender's retry of a delivery it already made is answered 202 with the same id and not
 * published again (the spec tells receivers to use webhook-id for idempotency).
 *
 * Bounded: at most `size` entries; a full cache forgets its oldest entry first. An entry counts
 * only until its expiry (the signature's timestamp tolerance after it was stored): past that a
 * retry would be refused as stale anyway. Keys are the SHA-256 of the endpoint name and the
 * webhook-id, so the memory per entry is fixed and no client string is kept. Allocated at the
 * first store, so a bridge without Standard Webhooks pays nothing.
 *
 * Two deliveries of one id that overlap (the second arrives before the first is answered) are
 * both published: the cache learns an id when its first delivery is answered 202.
 *
 * Shared by every HTTP loop (http.workers): a sender's retry may land on another loop than the
 * delivery it repeats. A mutex guards the table (held for a lookup or a store, not for hashing);
 * the hit counter is atomic.
 *
 * @locality any thread.
 */
#ifndef HB_REPLAY_H
#define HB_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

typedef struct replay replay_t;

/* NULL when out of memory. size 0: nothing is ever remembered. */
replay_t *replay_new(size_t size);
void replay_free(replay_t *r); /* NULL is fine */

/* The envelope id stored for (endpoint, webhook_id) if it has not expired at now_s: copied to
 * id_out (MSG_ID_LEN + 1 bytes) and 1; else 0. Counts the hit. */
int replay_lookup(replay_t *r, const char *endpoint, const char *webhook_id, int64_t now_s,
                  char *id_out);

/* Remembers id for (endpoint, webhook_id) until expires_s (replacing an older entry). */
void replay_store(replay_t *r, const char *endpoint, const char *webhook_id, const char *id,
                  int64_t expires_s);

uint64_t replay_hits(const replay_t *r); /* 0 for NULL */

#endif
