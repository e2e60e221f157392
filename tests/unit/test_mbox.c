/* test_mbox.c: the cross-thread mailbox: order, batching, teardown with items pending, and a
 * stress run with several producer threads (per-producer FIFO, every item exactly once), also
 * while the consumer closes the mailbox under them.
 *
 * Waits are on the loop, with a deadline timer that only a hang reaches.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "mbox.h"

/* mbox.c's eventfd writes, counted (linked with --wrap=eventfd_write). */
static atomic_int wakeup_writes;
int __real_eventfd_write(int fd, eventfd_t value);
int __wrap_eventfd_write(int fd, eventfd_t value);
int __wrap_eventfd_write(int fd, eventfd_t value) {
    atomic_fetch_add(&wakeup_writes, 1);
    return __real_eventfd_write(fd, value);
}

#define DEADLINE_S 120

typedef struct titem {
    mbox_item_t link;
    int producer;
    uint64_t seq;
    int delivered, dropped; /* written by the consumer only */
} titem_t;

typedef struct consumer {
    struct event_base *base;
    mbox_t *mb;
    int producers;
    uint64_t *next;  /* per producer: the seq expected next (delivered or dropped) */
    uint64_t total;  /* delivered + dropped */
    uint64_t want;   /* stop the loop at this total */
    uint64_t close_at; /* close the mailbox at this total (0: never) */
    titem_t **log;   /* delivery order (small tests) */
    size_t log_len, log_cap;
    int pipe_w;      /* the starvation test: written at the first delivery */
    uint64_t seen_by_pipe;
    size_t batches_done, batch_items;
} consumer_t;

static void check_order(consumer_t *c, titem_t *it) {
    if (it->delivered || it->dropped)
        fail_msg("item %d/%llu came out twice", it->producer, (unsigned long long)it->seq);
    if (it->seq != c->next[it->producer])
        fail_msg("producer %d: got seq %llu, expected %llu", it->producer,
                 (unsigned long long)it->seq, (unsigned long long)c->next[it->producer]);
    c->next[it->producer]++;
    c->total++;
    if (c->log && c->log_len < c->log_cap)
        c->log[c->log_len++] = it;
}

static void on_deliver(void *arg, mbox_item_t *li) {
    consumer_t *c = arg;
    titem_t *it = MBOX_CONTAINER(li, titem_t, link);
    check_order(c, it);
    it->delivered = 1;
    if (c->pipe_w >= 0 && c->total == 1) {
        char b = 'x';
        assert_int_equal(write(c->pipe_w, &b, 1), 1);
    }
    if (c->close_at && c->total == c->close_at) {
        mbox_close(c->mb); /* from inside deliver: the rest is dropped */
        event_base_loopbreak(c->base);
    }
    if (c->total == c->want)
        event_base_loopbreak(c->base);
}

static void on_drop(void *arg, mbox_item_t *li) {
    consumer_t *c = arg;
    titem_t *it = MBOX_CONTAINER(li, titem_t, link);
    check_order(c, it);
    it->dropped = 1;
}

static void on_batch_done(void *arg, size_t n) {
    consumer_t *c = arg;
    c->batches_done++;
    c->batch_items += n;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    consumer_t *c = arg;
    fail_msg("deadline: %llu of %llu items", (unsigned long long)c->total,
             (unsigned long long)c->want);
}

static void consumer_init(consumer_t *c, int producers, size_t batch_max) {
    memset(c, 0, sizeof *c);
    c->base = event_base_new();
    assert_non_null(c->base);
    c->producers = producers;
    c->next = calloc((size_t)producers, sizeof c->next[0]);
    assert_non_null(c->next);
    c->pipe_w = -1;
    mbox_opts_t o = {.deliver = on_deliver, .drop = on_drop, .batch_done = on_batch_done,
                     .arg = c, .batch_max = batch_max};
    char err[256];
    c->mb = mbox_new(c->base, &o, err, sizeof err);
    if (!c->mb)
        fail_msg("mbox_new: %s", err);
}

/* Runs the loop until want items came out, under the deadline. */
static void consumer_run(consumer_t *c) {
    struct event *dl = evtimer_new(c->base, on_deadline, c);
    struct timeval tv = {DEADLINE_S, 0};
    evtimer_add(dl, &tv);
    if (c->total < c->want)
        event_base_loop(c->base, EVLOOP_NO_EXIT_ON_EMPTY);
    event_free(dl);
}

static void consumer_fini(consumer_t *c) {
    mbox_free(c->mb);
    event_base_free(c->base);
    free(c->next);
    free(c->log);
}

static titem_t *items_new(int producer, size_t n) {
    titem_t *v = calloc(n, sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        v[i].producer = producer;
        v[i].seq = i;
    }
    return v;
}

/* Posts before the loop runs come out in order, in one batch, on one wake-up. */
static void test_order_one_batch(void **state) {
    (void)state;
    consumer_t c;
    consumer_init(&c, 1, 0);
    c.log_cap = 100;
    c.log = calloc(c.log_cap, sizeof c.log[0]);
    titem_t *v = items_new(0, 100);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(mbox_post(c.mb, &v[i].link), 0);
    c.want = 100;
    consumer_run(&c);
    assert_int_equal(c.log_len, 100);
    for (size_t i = 0; i < 100; i++)
        assert_ptr_equal(c.log[i], &v[i]);
    mbox_stats_t st;
    mbox_get_stats(c.mb, &st);
    assert_int_equal(st.delivered, 100);
    assert_int_equal(st.batches, 1);
    assert_int_equal(st.max_batch, 100);
    assert_int_equal(c.batches_done, 1);
    assert_int_equal(c.batch_items, 100);
    consumer_fini(&c);
    free(v);
}

/* Only the post onto an empty mailbox writes the eventfd: a hundred posts, one write. */
static void test_one_wakeup_per_batch(void **state) {
    (void)state;
    consumer_t c;
    consumer_init(&c, 1, 0);
    titem_t *v = items_new(0, 100);
    atomic_store(&wakeup_writes, 0);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(mbox_post(c.mb, &v[i].link), 0);
    assert_int_equal(atomic_load(&wakeup_writes), 1);
    c.want = 100;
    consumer_run(&c);
    /* A second round: the mailbox is empty again, so the first post wakes once more. */
    titem_t *w = items_new(0, 3);
    for (size_t i = 0; i < 3; i++)
        w[i].seq = 100 + i;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(mbox_post(c.mb, &w[i].link), 0);
    assert_int_equal(atomic_load(&wakeup_writes), 2);
    c.want = 103;
    consumer_run(&c);
    mbox_stats_t st;
    mbox_get_stats(c.mb, &st);
    assert_int_equal(st.batches, 2);
    assert_int_equal(st.delivered, 103);
    consumer_fini(&c);
    free(v);
    free(w);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    consumer_t *c = arg;
    char b;
    assert_int_equal(read(fd, &b, 1), 1);
    c->seen_by_pipe = c->total;
}

/* batch_max bounds a batch, and a socket that became ready during one is served before the
 * next: with 10 items and batch_max 3, the pipe written at the first delivery is read before the
 * last item comes out. */
static void test_batch_max_lets_others_run(void **state) {
    (void)state;
    consumer_t c;
    consumer_init(&c, 1, 3);
    int p[2];
    assert_int_equal(pipe(p), 0);
    c.pipe_w = p[1];
    c.seen_by_pipe = UINT64_MAX;
    struct event *pe = event_new(c.base, p[0], EV_READ, on_pipe, &c);
    event_add(pe, NULL);
    titem_t *v = items_new(0, 10);
    for (size_t i = 0; i < 10; i++)
        assert_int_equal(mbox_post(c.mb, &v[i].link), 0);
    c.want = 10;
    consumer_run(&c);
    mbox_stats_t st;
    mbox_get_stats(c.mb, &st);
    assert_int_equal(st.batches, 4);
    assert_int_equal(st.max_batch, 3);
    if (c.seen_by_pipe >= 10)
        fail_msg("the pipe was served only after %llu items", (unsigned long long)c.seen_by_pipe);
    event_free(pe);
    close(p[0]);
    close(p[1]);
    consumer_fini(&c);
    free(v);
}

/* mbox_close hands the pending items to drop, in order, and refuses posts from then on. */
static void test_close_drops_pending(void **state) {
    (void)state;
    consumer_t c;
    consumer_init(&c, 1, 0);
    titem_t *v = items_new(0, 5);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(mbox_post(c.mb, &v[i].link), 0);
    assert_false(mbox_closed(c.mb));
    mbox_close(c.mb);
    assert_true(mbox_closed(c.mb));
    assert_int_equal(c.total, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_true(v[i].dropped);
        assert_false(v[i].delivered);
    }
    assert_int_equal(mbox_post(c.mb, &v[4].link), -1);
    assert_false(v[4].dropped);
    mbox_close(c.mb); /* idempotent */
    mbox_stats_t st;
    mbox_get_stats(c.mb, &st);
    assert_int_equal(st.dropped, 4);
    assert_int_equal(st.delivered, 0);
    consumer_fini(&c);
    free(v);
}

/* Closing from inside deliver: the rest of the batch, and what is still posted, is dropped. */
static void test_close_inside_deliver(void **state) {
    (void)state;
    consumer_t c;
    consumer_init(&c, 1, 0);
    titem_t *v = items_new(0, 6);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(mbox_post(c.mb, &v[i].link), 0);
    c.close_at = 2;
    c.want = 6; /* reached by drops inside mbox_close; the deadline would catch a hang */
    struct event *dl = evtimer_new(c.base, on_deadline, &c);
    struct timeval tv = {DEADLINE_S, 0};
    evtimer_add(dl, &tv);
    event_base_loop(c.base, EVLOOP_ONCE);
    event_free(dl);
    assert_int_equal(c.total, 6);
    assert_true(v[0].delivered && v[1].delivered);
    for (size_t i = 2; i < 6; i++)
        assert_true(v[i].dropped);
    consumer_fini(&c);
    free(v);
}

/* ---- several producer threads ----------------------------------------------------------- */

typedef struct producer {
    pthread_t t;
    mbox_t *mb;
    titem_t *items;
    size_t n;
    size_t accepted; /* posts that returned 0, a prefix of items */
    atomic_int *go;
} producer_t;

static void *producer_main(void *arg) {
    producer_t *p = arg;
    while (!atomic_load(p->go))
        ; /* a start line, so the producers overlap */
    for (size_t i = 0; i < p->n; i++) {
        if (mbox_post(p->mb, &p->items[i].link) != 0)
            break;
        p->accepted++;
    }
    return NULL;
}

static void stress(int nprod, size_t per, size_t batch_max, uint64_t close_at) {
    consumer_t c;
    consumer_init(&c, nprod, batch_max);
    c.want = close_at ? close_at : (uint64_t)nprod * per;
    c.close_at = close_at;
    atomic_int go = 0;
    producer_t *p = calloc((size_t)nprod, sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < nprod; i++) {
        p[i].mb = c.mb;
        p[i].items = items_new(i, per);
        p[i].n = per;
        p[i].go = &go;
        assert_int_equal(pthread_create(&p[i].t, NULL, producer_main, &p[i]), 0);
    }
    atomic_store(&go, 1);
    consumer_run(&c);
    for (int i = 0; i < nprod; i++)
        pthread_join(p[i].t, NULL);
    uint64_t accepted = 0;
    for (int i = 0; i < nprod; i++) {
        accepted += p[i].accepted;
        /* Every accepted item came out exactly once (check_order fails twice-seen ones); the
         * refused ones never. */
        for (size_t k = 0; k < per; k++) {
            int out = p[i].items[k].delivered + p[i].items[k].dropped;
            if (k < p[i].accepted && out != 1)
                fail_msg("producer %d item %zu: accepted, came out %d times", i, k, out);
            if (k >= p[i].accepted && out != 0)
                fail_msg("producer %d item %zu: refused, yet came out", i, k);
        }
        assert_int_equal(c.next[i], p[i].accepted);
    }
    mbox_stats_t st;
    mbox_get_stats(c.mb, &st);
    assert_int_equal(st.delivered + st.dropped, accepted);
    assert_int_equal(c.total, accepted);
    if (!close_at)
        assert_int_equal(accepted, (uint64_t)nprod * per);
    print_message("  %d producers: %llu items, %llu batches (largest %llu), %llu dropped\n",
                  nprod, (unsigned long long)accepted, (unsigned long long)st.batches,
                  (unsigned long long)st.max_batch, (unsigned long long)st.dropped);
    consumer_fini(&c);
    for (int i = 0; i < nprod; i++)
        free(p[i].items);
    free(p);
}

/* Four producers flood one consumer: per-producer FIFO, every item exactly once. */
static void test_stress_fifo_exactly_once(void **state) {
    (void)state;
    stress(4, 100000, 0, 0);
    stress(4, 50000, 64, 0);
}

/* The consumer closes the mailbox while the producers are still posting: every post that was
 * taken is delivered or dropped once, every refused one never. */
static void test_stress_close_under_producers(void **state) {
    (void)state;
    stress(4, 100000, 0, 50000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_one_batch),
        cmocka_unit_test(test_one_wakeup_per_batch),
        cmocka_unit_test(test_batch_max_lets_others_run),
        cmocka_unit_test(test_close_drops_pending),
        cmocka_unit_test(test_close_inside_deliver),
        cmocka_unit_test(test_stress_fifo_exactly_once),
        cmocka_unit_test(test_stress_close_under_producers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
