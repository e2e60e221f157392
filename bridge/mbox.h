/* mbox.h: a cross-thread mailbox: any number of threads post items to one event loop, which
 * takes them in batches.
 *
 * The items are the caller's own structs with an mbox_item_t inside (an intrusive link): a post
 * allocates nothing and takes no lock. Posting pushes onto a lock-free stack (one
 * compare-and-swap); the consumer takes the whole stack with one atomic exchange and reverses it,
 * so items come out in the order their posts took effect: FIFO per producer, and across
 * producers in one total order.
 *
 * Wake-ups: the consumer's loop waits on an eventfd. Only the post that finds the mailbox empty
 * writes it; every item posted until the consumer takes the batch rides on that one wake-up (one
 * write by a producer, one read by the consumer, per batch, not per item).
 *
 *   producers (any thread)              consumer (its event loop)
 *   mbox_post(it) --CAS--> [head]  --exchange(NULL)--> reverse --> ready FIFO --> deliver(it)
 *        \--if it was empty: write(eventfd) --> EV_READ wakes the loop, read(eventfd) first
 *
 * A batch is at most batch_max items (0: no bound); what is left waits in the consumer's ready
 * list and is taken after the loop's next poll, behind the sockets and timers ready by then, so
 * a flood of posts cannot starve them.
 *
 * Ownership: mbox_post hands the item to the mailbox (0) or leaves it with the caller (-1: the
 * mailbox is closed). A delivered item belongs to deliver(), a dropped one to drop(); neither is
 * called for the same item twice, and every item accepted by mbox_post reaches exactly one of
 * them. The mailbox never frees an item.
 *
 * Teardown: mbox_close (consumer side) refuses posts from then on and hands every item still
 * pending to drop(), in FIFO order; producers may go on calling mbox_post (refused) until
 * mbox_free, which needs every producer to be done with the mailbox.
 *
 * @locality per function below: "any thread" or "the consumer" (the thread running the loop
 * the mailbox was made on, or any thread while that loop is not running).
 */
#ifndef HB_MBOX_H
#define HB_MBOX_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mbox mbox_t;

/* The link an item carries; the mailbox owns it while the item is posted. */
typedef struct mbox_item {
    struct mbox_item *next;
} mbox_item_t;

/* The struct that holds an mbox_item_t member, from a pointer to that member. */
#define MBOX_CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Receives one item on the consumer's loop; the item is the callee's from now on. */
typedef void (*mbox_deliver_cb)(void *arg, mbox_item_t *it);

typedef struct mbox_opts {
    mbox_deliver_cb deliver; /* required */
    mbox_deliver_cb drop;    /* items pending at mbox_close; NULL: deliver takes them too */
    /* Called after each batch, with its size (e.g. to flush writes once per batch); may be
     * NULL. */
    void (*batch_done)(void *arg, size_t n);
    void *arg;
    size_t batch_max; /* items per batch; 0: all that are there */
} mbox_opts_t;

/* Counters, kept by the consumer. */
typedef struct mbox_stats {
    uint64_t delivered; /* items given to deliver */
    uint64_t dropped;   /* items given to drop */
    uint64_t batches;   /* batches that delivered at least one item */
    uint64_t max_batch; /* the largest of them */
} mbox_stats_t;

/* A mailbox woken on base (an eventfd registered as a persistent EV_READ event). opts is
 * copied. NULL with errstr when the eventfd or the event cannot be made.
 * @locality the consumer. */
mbox_t *mbox_new(struct event_base *base, const mbox_opts_t *opts, char *errstr, size_t errlen);

/* Posts it: 0, and the mailbox owns it until it is delivered or dropped; -1 when the mailbox is
 * closed, and the caller keeps it. Lock-free; writes the eventfd only when the mailbox was
 * empty. it must not be posted anywhere else until it comes back.
 * @locality any thread, the consumer's included, until mbox_free. */
int mbox_post(mbox_t *mb, mbox_item_t *it);

/* Refuses posts from now on, stops the wake-up event (so the loop's base can be freed), and hands
 * every pending item to drop (or deliver), in order. Idempotent. deliver may post to mb (it is
 * refused then).
 * @locality the consumer. */
void mbox_close(mbox_t *mb);

/* Whether the mailbox refuses posts. @locality any thread. */
int mbox_closed(const mbox_t *mb);

/* @locality the consumer. */
void mbox_get_stats(const mbox_t *mb, mbox_stats_t *out);

/* Closes (if not yet closed) and frees. No thread may post to mb any more, nor be inside
 * mbox_post. NULL is fine.
 * @locality the consumer. */
void mbox_free(mbox_t *mb);

#endif
