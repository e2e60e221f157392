/* test_dispatch.c: the dispatcher's pipelined group commit, through a real event loop, a real
 * spool (with injected fdatasync results) and librdkafka's built-in mock cluster.
 *
 * Every event here goes to the spool (producer.max_inflight = 0). What is checked is the promise
 * (HB_OK only after the event's own fdatasync succeeded; a failed sync refuses its whole batch,
 * and the events appended while it ran, never HB_OK) and the pipelining (one sync at a time;
 * events appended while one runs share the next). The fdatasync hook runs on the sync worker
 * thread; a gate lets the test hold it inside the hook. No test depends on timing: every wait
 * is on an event, with a generous deadline that only a hang would reach.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "config.h"
#include "dispatch.h"
#include "log.h"
#include "spool.h"

#define DEADLINE_MS 20000

/* ---- the fdatasync hook (runs on the worker thread) ----------------------------------------- */

static int sync_calls;   /* written by the worker; read after the dispatcher's handshake */
static int sync_fail_at; /* that call fails with EIO */
static int gate_at;               /* that call blocks until the test opens the gate */
static int entered[2] = {-1, -1}; /* the hook writes a byte here when it blocks */
static int gate[2] = {-1, -1};    /* ... and reads one from here to go on */

static int hook_fdatasync(int fd) {
    int n = ++sync_calls;
    if (n == gate_at) {
        char c = 'x';
        if (write(entered[1], &c, 1) != 1 || read(gate[0], &c, 1) != 1)
            abort();
    }
    if (n == sync_fail_at) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static const spool_io_t hooks = {NULL, hook_fdatasync, NULL};

/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct outcome {
    int done;
    hb_status_t st;
    int syncs_seen; /* sync_calls when it was answered */
} outcome_t;

typedef struct fx {
    char root[64];
    char dir[128];
    struct event_base *base;
    struct event *tick;
    dispatch_t *d;
    int devnull;
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
}

static int setup_with(void **state, int64_t max_inflight);

static int setup(void **state) { return setup_with(state, 0); }

/* Live events allowed: Kafka (the in-process mock cluster) first, the spool only as the rules
 * say. */
static int setup_live(void **state) { return setup_with(state, 100000); }

static int setup_with(void **state, int64_t max_inflight) {
    fx_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/hb-dispatch-test-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    f->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    log_set_fd(f->devnull); /* the failures below are logged at error level, as they should */
    sync_calls = 0;
    sync_fail_at = gate_at = 0;
    if (pipe(entered) != 0 || pipe(gate) != 0)
        return -1;
    f->base = event_base_new();
    f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, f);
    struct timeval tv = {0, 20000};
    event_add(f->tick, &tv); /* bounds each EVLOOP_ONCE, so run_until checks its deadline */

    char err[256] = "";
    spool_opts_t so = {.dir = f->dir, .io = &hooks};
    spool_t *s = spool_open(&so, err, sizeof err);
    if (!s) {
        print_error("spool_open: %s\n", err);
        return -1;
    }
    hb_config_t *cfg = config_new();
    cfg->producer_max_inflight = max_inflight; /* 0: every event goes to the spool */
    cfg->spool_commit_window_ms = 0;
    cfg->kafka = calloc(1, sizeof *cfg->kafka);
    cfg->kafka[0].name = strdup("test.mock.num.brokers");
    cfg->kafka[0].value = strdup("1");
    cfg->kafka_cnt = 1;
    f->d = dispatch_new(f->base, cfg, s, err, sizeof err);
    config_free(cfg);
    if (!f->d) {
        print_error("dispatch_new: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    char c = 'x';
    if (gate_at && write(gate[1], &c, 1) != 1) /* never leave the worker blocked */
        return -1;
    dispatch_free(f->d);
    event_free(f->tick);
    event_base_free(f->base);
    for (int i = 0; i < 2; i++) {
        close(entered[i]);
        close(gate[i]);
    }
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    log_set_fd(2);
    close(f->devnull);
    free(f);
    return 0;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(void *ctx, hb_status_t st, const char *id) {
    (void)id;
    outcome_t *o = ctx;
    assert_false(o->done); /* exactly once */
    o->done = 1;
    o->st = st;
    o->syncs_seen = sync_calls;
}

static void submit(fx_t *f, outcome_t *o, int n) {
    msg_t m = {0};
    m.topic = strdup("cloud66.stack");
    m.value = strdup("{\"n\":1}");
    m.value_len = strlen(m.value);
    snprintf(m.id, sizeof m.id, "id-%d", n);
    assert_non_null(m.topic);
    assert_non_null(m.value);
    memset(o, 0, sizeof *o);
    dispatch_submit(f->d, &m, on_done, o);
}

static int all_done(const outcome_t *o, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!o[i].done)
            return 0;
    return 1;
}

static void run_until_done(fx_t *f, const outcome_t *o, size_t n) {
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (!all_done(o, n)) {
        if (now_ms() > deadline)
            fail_msg("events not answered within %d ms", DEADLINE_MS);
        event_base_loop(f->base, EVLOOP_ONCE);
    }
}

/* Runs the loop until the worker sits in the gated fdatasync. */
static void run_until_gated(fx_t *f) {
    int64_t deadline = now_ms() + DEADLINE_MS;
    struct pollfd p = {.fd = entered[0], .events = POLLIN};
    while (poll(&p, 1, 0) == 0) {
        if (now_ms() > deadline)
            fail_msg("the sync never started");
        event_base_loop(f->base, EVLOOP_ONCE);
    }
    char c;
    assert_int_equal(read(entered[0], &c, 1), 1);
}

static void open_gate(void) {
    char c = 'x';
    assert_int_equal(write(gate[1], &c, 1), 1);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* A failing fdatasync turns into refusals (the daemon's 503), never HB_OK; the next batch,
 * synced fine, is HB_OK. */
static void test_failed_sync_refuses_its_batch(void **state) {
    fx_t *f = *state;
    outcome_t a[3], b[2];
    sync_fail_at = 1;
    for (int i = 0; i < 3; i++)
        submit(f, &a[i], i);
    run_until_done(f, a, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].st, HB_ERR_IO);
    for (int i = 0; i < 2; i++)
        submit(f, &b[i], 10 + i);
    run_until_done(f, b, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(b[i].st, HB_OK);
    dispatch_stats_t st;
    dispatch_get_stats(f->d, &st);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.spooled, 2);
    assert_int_equal(sync_calls, 2);
}

/* One sync at a time: events appended while a sync runs are not answered by it, and share the
 * next one, which starts when it returns. */
static void test_events_appended_during_a_sync_share_the_next(void **state) {
    fx_t *f = *state;
    outcome_t a[2], b[3];
    gate_at = 1;
    for (int i = 0; i < 2; i++)
        submit(f, &a[i], i);
    run_until_gated(f); /* batch a's fdatasync is on the worker, held */
    for (int i = 0; i < 3; i++)
        submit(f, &b[i], 10 + i);
    for (int i = 0; i < 20; i++) /* the loop keeps running; nothing may be answered yet */
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_false(a[0].done || a[1].done || b[0].done || b[1].done || b[2].done);
    open_gate();
    gate_at = 0;
    run_until_done(f, a, 2);
    run_until_done(f, b, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].st, HB_OK);
        assert_int_equal(a[i].syncs_seen, 1);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].st, HB_OK);
        assert_int_equal(b[i].syncs_seen, 2); /* one more sync, shared by all three */
    }
    assert_int_equal(sync_calls, 2);
}

/* The sync in flight fails while more events were appended: those were cut off the segment
 * with the failed batch, so they are refused too (never HB_OK), and the spool goes on. */
static void test_failed_sync_refuses_events_appended_during_it(void **state) {
    fx_t *f = *state;
    outcome_t a[2], b[2], c[2];
    gate_at = 1;
    sync_fail_at = 1;
    for (int i = 0; i < 2; i++)
        submit(f, &a[i], i);
    run_until_gated(f);
    for (int i = 0; i < 2; i++)
        submit(f, &b[i], 10 + i);
    open_gate();
    gate_at = 0;
    run_until_done(f, a, 2);
    run_until_done(f, b, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].st, HB_ERR_IO);
        assert_int_equal(b[i].st, HB_ERR_IO);
    }
    assert_int_equal(spool_pending(dispatch_spool(f->d)), 0);
    for (int i = 0; i < 2; i++)
        submit(f, &c[i], 20 + i);
    run_until_done(f, c, 2);
    for (int i = 0; i < 2; i++)
        assert_int_equal(c[i].st, HB_OK);
}

static void on_stopped(void *arg) { *(int *)arg = 1; }

/* Issue 11: events submitted while stopping go to Kafka when it is up (not to the spool), and
 * the stop waits for them; after the stop was reported, a submit is still safe: spooled and
 * synced at once, answered from inside the call. */
static void test_submit_while_stopping_goes_live(void **state) {
    fx_t *f = *state;
    outcome_t warm, a, b, c;
    submit(f, &warm, 0);
    run_until_done(f, &warm, 1);
    assert_int_equal(warm.st, HB_OK);
    submit(f, &a, 1);
    int stopped = 0;
    dispatch_shutdown(f->d, on_stopped, &stopped);
    assert_false(stopped); /* a is still in flight */
    submit(f, &b, 2);
    run_until_done(f, &a, 1);
    run_until_done(f, &b, 1);
    int64_t deadline = now_ms() + DEADLINE_MS;
    while (!stopped && now_ms() < deadline)
        event_base_loop(f->base, EVLOOP_ONCE);
    assert_true(stopped);
    assert_int_equal(a.st, HB_OK);
    assert_int_equal(b.st, HB_OK);
    dispatch_stats_t st;
    dispatch_get_stats(f->d, &st);
    assert_int_equal(st.published, 3);
    assert_int_equal(st.spooled, 0);
    submit(f, &c, 3); /* after the stop: answered at once, from the spool */
    assert_true(c.done);
    assert_int_equal(c.st, HB_OK);
    dispatch_get_stats(f->d, &st);
    assert_int_equal(st.spooled, 1);
    assert_int_equal(spool_pending(dispatch_spool(f->d)), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failed_sync_refuses_its_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_appended_during_a_sync_share_the_next,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_sync_refuses_events_appended_during_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_while_stopping_goes_live, setup_live,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
