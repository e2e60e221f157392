/* test_workers.c: the HTTP loops: jobs reach the main loop in each loop's order and every
 * outcome comes back on the loop that submitted it; the call barrier; the graceful stop waits
 * for what is in flight; teardown with outcomes owed and jobs never submitted.
 *
 * A fake dispatcher on the main loop stands for dispatch_submit (answers at once, or holds the
 * outcomes until the test releases them); a generator event on each loop stands for its HTTP
 * server. Checks that run on loop threads count into `bad` (cmocka's asserts belong to the main
 * thread), which the main thread asserts is zero. Waits are on the loop or on a pipe, with
 * deadlines only a hang reaches.
 */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "workers.h"

#define DEADLINE_MS 60000
#define BURST 64

static atomic_int bad; /* failed checks on loop threads */
#define LOOP_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "loop check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);     \
            atomic_fetch_add(&bad, 1);                                                         \
        }                                                                                      \
    } while (0)

typedef struct fix fix_t;
typedef struct tloop tloop_t;

typedef struct req { /* one "request" of a loop, answered by on_answer */
    struct req *prev, *next;
    tloop_t *t;
    uint64_t seq;
} req_t;

struct tloop { /* a loop's state, built by hook_init */
    fix_t *f;
    workers_loop_t *l;
    size_t index;
    struct event *gen, *flush_ev;
    pthread_t thread;      /* the loop's, seen by its first on_gen */
    size_t sent, answered; /* loop-private */
    req_t *open;           /* requests not answered yet */
    int stop_called, flush_called;
    size_t inflight_at_flush;
    pthread_t call_thread;
    int call_ran;
};

typedef struct held {
    workers_done_cb done;
    void *ctx;
    msg_t m;
} held_t;

struct fix {
    struct event_base *base;
    pthread_t main_thread;
    workers_t *ws;
    size_t loops, K;
    int main_serves, hold, fail_init_at;
    held_t *held;
    size_t held_n;
    uint64_t expect[WORKERS_MAX]; /* per loop: the seq the dispatcher expects next */
    size_t submitted;
    int pipe[2]; /* loops to main: 'a' all answered, 's' stopped accepting, 'u' all submitted */
    struct event *pipe_ev;
    size_t n_a, n_s, n_u;
    atomic_int answers;
    size_t fini_called;
    int stopped;
    void (*all_submitted)(fix_t *f);
    void (*all_answered)(fix_t *f);
    void (*all_stopping)(fix_t *f);
};

static void notify(fix_t *f, char c) {
    LOOP_CHECK(write(f->pipe[1], &c, 1) == 1);
}

/* ---- the fake dispatcher (main loop) ---------------------------------------------------- */

static void fake_submit(void *arg, msg_t *m, workers_done_cb done, void *ctx) {
    fix_t *f = arg;
    assert_true(pthread_equal(pthread_self(), f->main_thread));
    unsigned loop = 0;
    unsigned long long seq = 0;
    assert_int_equal(sscanf(m->topic, "loop-%u", &loop), 1);
    assert_int_equal(sscanf(m->key, "%llu", &seq), 1);
    assert_true(loop < f->loops);
    if (seq != f->expect[loop])
        fail_msg("loop %u: job %llu reached the dispatcher, expected %llu", loop, seq,
                 (unsigned long long)f->expect[loop]);
    f->expect[loop]++;
    f->submitted++;
    snprintf(m->id, sizeof m->id, "id-%u-%llu", loop, seq);
    if (f->hold) {
        held_t *h = &f->held[f->held_n++];
        h->done = done;
        h->ctx = ctx;
        h->m = *m;
        memset(m, 0, sizeof *m);
    } else {
        done(ctx, HB_OK, m->id);
        msg_free(m);
    }
    if (f->submitted == f->loops * f->K && f->all_submitted)
        f->all_submitted(f);
}

static void release_held(fix_t *f) {
    for (size_t i = 0; i < f->held_n; i++) {
        f->held[i].done(f->held[i].ctx, HB_OK, f->held[i].m.id);
        msg_free(&f->held[i].m);
    }
    f->held_n = 0;
}

/* ---- a loop's "HTTP server" (loop thread) ---------------------------------------------- */

static void on_answer(void *ctx, hb_status_t st, const char *id) {
    req_t *r = ctx;
    tloop_t *t = r->t;
    fix_t *f = t->f;
    LOOP_CHECK(pthread_equal(pthread_self(), t->thread)); /* the loop that submitted it */
    LOOP_CHECK(workers_loop_is_main(t->l) == pthread_equal(pthread_self(), f->main_thread));
    LOOP_CHECK(st == HB_OK);
    char want[64];
    snprintf(want, sizeof want, "id-%zu-%llu", t->index, (unsigned long long)r->seq);
    LOOP_CHECK(id && strcmp(id, want) == 0);
    if (r->prev)
        r->prev->next = r->next;
    else
        t->open = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r);
    atomic_fetch_add(&f->answers, 1);
    if (++t->answered == f->K)
        notify(f, 'a');
}

static void on_gen(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    tloop_t *t = arg;
    fix_t *f = t->f;
    if (t->sent == 0)
        t->thread = pthread_self();
    for (int b = 0; b < BURST && t->sent < f->K; b++) {
        req_t *r = calloc(1, sizeof *r);
        LOOP_CHECK(r != NULL);
        r->t = t;
        r->seq = t->sent++;
        r->next = t->open;
        if (t->open)
            t->open->prev = r;
        t->open = r;
        msg_t m = {0};
        char topic[32], key[32];
        snprintf(topic, sizeof topic, "loop-%zu", t->index);
        snprintf(key, sizeof key, "%llu", (unsigned long long)r->seq);
        m.topic = strdup(topic);
        m.key = strdup(key);
        m.key_len = strlen(key);
        workers_submit(t->l, &m, on_answer, r);
        LOOP_CHECK(m.topic == NULL); /* taken */
    }
    if (t->sent < f->K) {
        static const struct timeval now = {0, 0};
        evtimer_add(t->gen, &now);
    } else if (f->K) {
        notify(f, 'u');
    }
}

static void *hook_init(void *arg, workers_loop_t *l, char *errstr, size_t errlen) {
    fix_t *f = arg;
    assert_true(pthread_equal(pthread_self(), f->main_thread));
    if ((int)workers_loop_index(l) == f->fail_init_at) {
        snprintf(errstr, errlen, "init refused loop %zu", workers_loop_index(l));
        return NULL;
    }
    tloop_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->f = f;
    t->l = l;
    t->index = workers_loop_index(l);
    t->gen = evtimer_new(workers_loop_base(l), on_gen, t);
    assert_non_null(t->gen);
    static const struct timeval now = {0, 0};
    evtimer_add(t->gen, &now);
    return t;
}

static void hook_stop_accepting(void *arg, workers_loop_t *l) {
    fix_t *f = arg;
    tloop_t *t = workers_loop_data(l);
    t->stop_called = 1;
    notify(f, 's');
}

static void on_flush_ev(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    tloop_t *t = arg;
    workers_loop_flushed(t->l);
}

/* Answers "flushed" on the next loop iteration, as a server with buffered answers would. */
static void hook_flush(void *arg, workers_loop_t *l) {
    (void)arg;
    tloop_t *t = workers_loop_data(l);
    LOOP_CHECK(t->stop_called);
    t->flush_called++;
    t->inflight_at_flush = t->sent - t->answered;
    t->flush_ev = evtimer_new(workers_loop_base(l), on_flush_ev, t);
    static const struct timeval now = {0, 0};
    evtimer_add(t->flush_ev, &now);
}

static void hook_fini(void *arg, workers_loop_t *l, void *data) {
    fix_t *f = arg;
    (void)l;
    assert_true(pthread_equal(pthread_self(), f->main_thread));
    tloop_t *t = data;
    while (t->open) { /* the requests of a server torn down unanswered */
        req_t *r = t->open;
        t->open = r->next;
        free(r);
    }
    event_free(t->gen);
    if (t->flush_ev)
        event_free(t->flush_ev);
    free(t);
    f->fini_called++;
}

/* ---- fixture (main thread) -------------------------------------------------------------- */

static void on_pipe(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    fix_t *f = arg;
    char c;
    assert_int_equal(read(fd, &c, 1), 1);
    if (c == 'a' && ++f->n_a == f->loops && f->all_answered)
        f->all_answered(f);
    if (c == 's' && ++f->n_s == f->loops && f->all_stopping)
        f->all_stopping(f);
    if (c == 'u')
        f->n_u++;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    fix_t *f = arg;
    fail_msg("deadline: %zu jobs submitted, %d answered", f->submitted, atomic_load(&f->answers));
}

static workers_hooks_t hooks = {hook_init, hook_stop_accepting, hook_flush, hook_fini};

static fix_t *fix_new(size_t loops, int main_serves, size_t K, int hold) {
    fix_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    atomic_store(&bad, 0);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->main_thread = pthread_self();
    f->loops = loops;
    f->main_serves = main_serves;
    f->K = K;
    f->hold = hold;
    f->fail_init_at = -1;
    f->held = calloc(loops * K + 1, sizeof f->held[0]);
    assert_int_equal(pipe(f->pipe), 0);
    f->pipe_ev = event_new(f->base, f->pipe[0], EV_READ | EV_PERSIST, on_pipe, f);
    event_add(f->pipe_ev, NULL);
    return f;
}

static workers_t *fix_start(fix_t *f, char *err, size_t errlen) {
    workers_opts_t o = {.loops = f->loops, .main_serves = f->main_serves,
                        .submit = fake_submit, .submit_arg = f,
                        .hooks = hooks, .hooks_arg = f};
    return f->ws = workers_new(f->base, &o, err, errlen);
}

static void fix_run(fix_t *f) {
    struct event *dl = evtimer_new(f->base, on_deadline, f);
    struct timeval tv = {DEADLINE_MS / 1000, 0};
    evtimer_add(dl, &tv);
    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    event_free(dl);
}

static void fix_free(fix_t *f) {
    workers_free(f->ws);
    release_held(f);
    event_free(f->pipe_ev);
    close(f->pipe[0]);
    close(f->pipe[1]);
    event_base_free(f->base);
    free(f->held);
    assert_int_equal(atomic_load(&bad), 0);
    free(f);
}

/* ---- round trip and graceful stop ------------------------------------------------------ */

static void on_stopped(void *arg) {
    fix_t *f = arg;
    assert_true(pthread_equal(pthread_self(), f->main_thread));
    f->stopped = 1;
    for (size_t i = 0; i < f->loops; i++) {
        tloop_t *t = workers_loop_data(workers_loop(f->ws, i));
        /* Read after the loop's "stopped" came through the main mailbox. */
        assert_true(t->stop_called);
        assert_int_equal(t->flush_called, 1);
        assert_int_equal(t->inflight_at_flush, 0);
        assert_int_equal(t->answered, f->K);
    }
    event_base_loopbreak(f->base);
}

static void stop_now(fix_t *f) { workers_stop(f->ws, on_stopped, f); }

static void round_trip(size_t loops, int main_serves) {
    fix_t *f = fix_new(loops, main_serves, 3000, 0);
    f->all_answered = stop_now;
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    assert_int_equal(workers_count(f->ws), loops);
    fix_run(f);
    assert_true(f->stopped);
    assert_int_equal(f->submitted, loops * f->K);
    assert_int_equal(atomic_load(&f->answers), (int)(loops * f->K));
    workers_join(f->ws);
    assert_int_equal(f->fini_called, loops);
    workers_join(f->ws); /* idempotent */
    assert_int_equal(f->fini_called, loops);
    fix_free(f);
}

/* Each loop's jobs reach the dispatcher in order, on the main thread; each outcome comes back
 * on the loop that submitted it; then a graceful stop. */
static void test_round_trip_threads_and_main(void **state) {
    (void)state;
    round_trip(3, 1);
}
static void test_round_trip_threads_only(void **state) {
    (void)state;
    round_trip(3, 0);
}
static void test_round_trip_one_loop_no_thread(void **state) {
    (void)state;
    round_trip(1, 1);
}

/* The stop waits for the outcomes in flight: every job is held by the dispatcher when the stop
 * begins, and released only once every loop stopped accepting. */
static void release_now(fix_t *f) { release_held(f); }

static void test_stop_waits_for_inflight(void **state) {
    (void)state;
    fix_t *f = fix_new(3, 1, 200, 1);
    f->all_submitted = stop_now;
    f->all_stopping = release_now;
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    fix_run(f);
    assert_true(f->stopped); /* on_stopped checked every loop answered all */
    fix_free(f);
}

/* ---- the call barrier ------------------------------------------------------------------- */

static int call_fn(void *arg, workers_loop_t *l) {
    (void)arg;
    tloop_t *t = workers_loop_data(l);
    t->call_thread = pthread_self();
    t->call_ran++;
    return workers_loop_index(l) == 1 ? 1 : 0;
}

static void call_all_done(void *arg, size_t failed) {
    fix_t *f = arg;
    assert_true(pthread_equal(pthread_self(), f->main_thread));
    assert_int_equal(failed, 1);
    for (size_t i = 0; i < f->loops; i++) {
        tloop_t *t = workers_loop_data(workers_loop(f->ws, i));
        assert_int_equal(t->call_ran, 1);
        int on_main = pthread_equal(t->call_thread, f->main_thread);
        assert_int_equal(on_main, workers_loop_is_main(workers_loop(f->ws, i)));
        for (size_t k = 0; k < i; k++) {
            tloop_t *o = workers_loop_data(workers_loop(f->ws, k));
            assert_false(pthread_equal(o->call_thread, t->call_thread));
        }
    }
    f->stopped = 1;
    event_base_loopbreak(f->base);
}

static void call_barrier(int main_serves) {
    fix_t *f = fix_new(4, main_serves, 0, 0);
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    assert_int_equal(workers_call(f->ws, call_fn, f, call_all_done), 0);
    fix_run(f);
    assert_true(f->stopped);
    workers_join(f->ws);
    assert_int_equal(workers_call(f->ws, call_fn, f, call_all_done), -1);
    fix_free(f);
}

static void test_call_runs_on_every_loop(void **state) {
    (void)state;
    call_barrier(1);
    call_barrier(0);
}

/* Calls issued while jobs flow (as reloads under load): every loop runs them in the order they
 * were issued, and their all_done come in that order too, so a reload's old endpoint set is
 * freed only after the later swaps' loops are past it. */
typedef struct seq_call {
    fix_t *f;
    int n;
    int *done_order;
    size_t *done_cnt;
} seq_call_t;

static int seq_fn(void *arg, workers_loop_t *l) {
    seq_call_t *c = arg;
    tloop_t *t = workers_loop_data(l);
    LOOP_CHECK(t->call_ran == c->n); /* call n runs after calls 0 .. n-1 on this loop */
    t->call_ran = c->n + 1;
    return 0;
}

static void seq_all_done(void *arg, size_t failed) {
    seq_call_t *c = arg;
    assert_int_equal(failed, 0);
    c->done_order[(*c->done_cnt)++] = c->n;
}

#define SEQ_CALLS 20
static seq_call_t seq_calls[SEQ_CALLS];
static int seq_done_order[SEQ_CALLS];
static size_t seq_done_cnt;

static void issue_calls(fix_t *f) {
    for (int i = 0; i < SEQ_CALLS; i++) {
        seq_calls[i] = (seq_call_t){f, i, seq_done_order, &seq_done_cnt};
        assert_int_equal(workers_call(f->ws, seq_fn, &seq_calls[i], seq_all_done), 0);
    }
}

static void test_calls_under_load_keep_their_order(void **state) {
    (void)state;
    fix_t *f = fix_new(3, 1, 3000, 0);
    seq_done_cnt = 0;
    f->all_answered = stop_now;
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    issue_calls(f); /* before the loops' first jobs reach the main loop */
    fix_run(f);
    assert_true(f->stopped);
    assert_int_equal(seq_done_cnt, SEQ_CALLS);
    for (int i = 0; i < SEQ_CALLS; i++)
        assert_int_equal(seq_done_order[i], i);
    for (size_t i = 0; i < f->loops; i++) {
        tloop_t *t = workers_loop_data(workers_loop(f->ws, i));
        assert_int_equal(t->call_ran, SEQ_CALLS);
    }
    fix_free(f);
}

/* ---- teardown --------------------------------------------------------------------------- */

static void break_now(fix_t *f) { event_base_loopbreak(f->base); }

/* The main loop ends with every outcome still held; after workers_join the held outcomes are
 * given (as dispatch_free would) and must be discarded: the loops' requests are gone. */
static void test_outcomes_after_join_are_discarded(void **state) {
    (void)state;
    fix_t *f = fix_new(3, 1, 50, 1);
    f->all_submitted = break_now;
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    fix_run(f);
    assert_int_equal(f->held_n, 3 * 50);
    workers_join(f->ws); /* fini frees the unanswered requests */
    assert_int_equal(f->fini_called, 3);
    release_held(f);
    assert_int_equal(atomic_load(&f->answers), 0);
    fix_free(f);
}

/* The main loop never runs: the loops' jobs wait in the main mailbox and are freed, records
 * and all, by workers_free (LeakSanitizer checks). */
static void test_jobs_never_submitted_are_freed(void **state) {
    (void)state;
    fix_t *f = fix_new(3, 0, 100, 0);
    char err[256];
    if (!fix_start(f, err, sizeof err))
        fail_msg("workers_new: %s", err);
    size_t got = 0;
    while (got < 3) { /* wait for every loop's 'u' without running the main loop */
        struct pollfd p = {f->pipe[0], POLLIN, 0};
        if (poll(&p, 1, DEADLINE_MS) != 1)
            fail_msg("deadline: %zu loops submitted everything", got);
        char c;
        assert_int_equal(read(f->pipe[0], &c, 1), 1);
        got += c == 'u';
    }
    workers_join(f->ws);
    assert_int_equal(f->submitted, 0);
    fix_free(f);
}

/* ---- start-up --------------------------------------------------------------------------- */

static void test_start_failures(void **state) {
    (void)state;
    char err[256] = "";
    fix_t *f = fix_new(0, 1, 0, 0);
    assert_null(fix_start(f, err, sizeof err));
    assert_non_null(strstr(err, "loops"));
    fix_free(f);

    f = fix_new(WORKERS_MAX + 1, 1, 0, 0);
    assert_null(fix_start(f, err, sizeof err));
    fix_free(f);

    /* The third loop's init fails: the two built are torn down, no thread is left. */
    f = fix_new(3, 0, 0, 0);
    f->fail_init_at = 2;
    assert_null(fix_start(f, err, sizeof err));
    assert_string_equal(err, "init refused loop 2");
    assert_int_equal(f->fini_called, 2);
    fix_free(f);
}

static void test_count_from_config(void **state) {
    (void)state;
    assert_int_equal(workers_count_from_config(5), 5);
    assert_int_equal(workers_count_from_config(1000), WORKERS_MAX);
    size_t n = workers_count_from_config(0);
    assert_true(n >= 1 && n <= WORKERS_MAX);
    cpu_set_t set;
    assert_int_equal(sched_getaffinity(0, sizeof set, &set), 0);
    assert_true(n <= (size_t)CPU_COUNT(&set));
    /* Pinned to one CPU, the process gets one loop. */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            CPU_SET(c, &one);
            break;
        }
    assert_int_equal(sched_setaffinity(0, sizeof one, &one), 0);
    size_t pinned = workers_count_from_config(0);
    assert_int_equal(sched_setaffinity(0, sizeof set, &set), 0);
    assert_int_equal(pinned, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_threads_and_main),
        cmocka_unit_test(test_round_trip_threads_only),
        cmocka_unit_test(test_round_trip_one_loop_no_thread),
        cmocka_unit_test(test_stop_waits_for_inflight),
        cmocka_unit_test(test_call_runs_on_every_loop),
        cmocka_unit_test(test_calls_under_load_keep_their_order),
        cmocka_unit_test(test_outcomes_after_join_are_discarded),
        cmocka_unit_test(test_jobs_never_submitted_are_freed),
        cmocka_unit_test(test_start_failures),
        cmocka_unit_test(test_count_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
