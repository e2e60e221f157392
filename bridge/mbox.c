/* mbox.c: the cross-thread mailbox: a lock-free intrusive stack, taken whole and reversed,
 * woken by an eventfd. */
#include "mbox.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* head's value once the mailbox is closed: never dereferenced, only compared. Any push either
 * lands before the close's exchange (and is dropped by it) or sees this and is refused. */
static mbox_item_t closed_mark;
#define MBOX_CLOSED (&closed_mark)

struct mbox {
    _Atomic(mbox_item_t *) head; /* newest first; NULL: empty; MBOX_CLOSED */
    int efd;
    struct event *ev;
    struct event *again; /* a zero timeout: the rest of a batch, after the next poll */
    mbox_opts_t o;
    /* Consumer-private: taken from the stack, oldest first, not yet delivered. */
    mbox_item_t *ready, *ready_tail;
    int closed; /* consumer's view: mbox_close ran */
    mbox_stats_t st;
};

/* Reverses a newest-first chain and appends it, oldest first, to the ready list. */
static void ready_append(mbox_t *mb, mbox_item_t *chain) {
    mbox_item_t *fifo = NULL, *last = chain;
    while (chain) {
        mbox_item_t *next = chain->next;
        chain->next = fifo;
        fifo = chain;
        chain = next;
    }
    if (!fifo)
        return;
    if (mb->ready_tail)
        mb->ready_tail->next = fifo;
    else
        mb->ready = fifo;
    mb->ready_tail = last;
}

static mbox_item_t *ready_pop(mbox_t *mb) {
    mbox_item_t *it = mb->ready;
    if (it) {
        mb->ready = it->next;
        if (!mb->ready)
            mb->ready_tail = NULL;
        it->next = NULL;
    }
    return it;
}

static void on_wake(evutil_socket_t fd, short what, void *arg) {
    mbox_t *mb = arg;
    (void)fd;
    /* The counter is read before the stack is taken: a post that finds the stack empty after
     * the take writes it again, so no item is left without a wake-up. */
    if (what & EV_READ) {
        eventfd_t v;
        (void)eventfd_read(mb->efd, &v);
    }
    ready_append(mb, atomic_exchange_explicit(&mb->head, NULL, memory_order_acquire));
    size_t n = 0;
    mbox_item_t *it;
    while ((mb->o.batch_max == 0 || n < mb->o.batch_max) && !mb->closed &&
           (it = ready_pop(mb)) != NULL) {
        n++;
        mb->st.delivered++;
        mb->o.deliver(mb->o.arg, it);
    }
    if (n) {
        mb->st.batches++;
        if (n > mb->st.max_batch)
            mb->st.max_batch = n;
        if (mb->o.batch_done)
            mb->o.batch_done(mb->o.arg, n);
    }
    /* The rest runs after the next poll, behind the sockets and timers that became ready by
     * then (event_active would run it before them). */
    if (mb->ready && !mb->closed) {
        static const struct timeval now = {0, 0};
        event_add(mb->again, &now);
    }
}

mbox_t *mbox_new(struct event_base *base, const mbox_opts_t *opts, char *errstr, size_t errlen) {
    if (!opts->deliver) {
        snprintf(errstr, errlen, "a mailbox needs a deliver callback");
        return NULL;
    }
    mbox_t *mb = calloc(1, sizeof *mb);
    if (!mb) {
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&mb->head, NULL);
    mb->o = *opts;
    mb->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (mb->efd < 0) {
        snprintf(errstr, errlen, "cannot create the mailbox's eventfd: %s", strerror(errno));
        goto fail;
    }
    mb->ev = event_new(base, mb->efd, EV_READ | EV_PERSIST, on_wake, mb);
    mb->again = evtimer_new(base, on_wake, mb);
    if (!mb->ev || !mb->again || event_add(mb->ev, NULL) != 0) {
        snprintf(errstr, errlen, "cannot register the mailbox's eventfd with the loop");
        goto fail;
    }
    return mb;
fail:
    mbox_free(mb);
    return NULL;
}

int mbox_post(mbox_t *mb, mbox_item_t *it) {
    mbox_item_t *old = atomic_load_explicit(&mb->head, memory_order_relaxed);
    do {
        if (old == MBOX_CLOSED)
            return -1;
        it->next = old;
    } while (!atomic_compare_exchange_weak_explicit(&mb->head, &old, it, memory_order_release,
                                                    memory_order_relaxed));
    /* Only the post onto an empty stack wakes the consumer; the eventfd cannot overflow (the
     * consumer reads it to zero on every wake-up), so the write cannot fail. */
    if (old == NULL)
        (void)eventfd_write(mb->efd, 1);
    return 0;
}

void mbox_close(mbox_t *mb) {
    if (!mb || mb->closed)
        return;
    mb->closed = 1;
    mbox_item_t *chain = atomic_exchange_explicit(&mb->head, MBOX_CLOSED, memory_order_acq_rel);
    if (mb->ev) {
        event_free(mb->ev);
        mb->ev = NULL;
    }
    if (mb->again) {
        event_free(mb->again);
        mb->again = NULL;
    }
    ready_append(mb, chain);
    mbox_deliver_cb drop = mb->o.drop ? mb->o.drop : mb->o.deliver;
    mbox_item_t *it;
    while ((it = ready_pop(mb)) != NULL) {
        mb->st.dropped++;
        drop(mb->o.arg, it);
    }
}

int mbox_closed(const mbox_t *mb) {
    return atomic_load_explicit(&((mbox_t *)mb)->head, memory_order_acquire) == MBOX_CLOSED;
}

void mbox_get_stats(const mbox_t *mb, mbox_stats_t *out) { *out = mb->st; }

void mbox_free(mbox_t *mb) {
    if (!mb)
        return;
    mbox_close(mb);
    if (mb->efd >= 0)
        close(mb->efd);
    free(mb);
}
