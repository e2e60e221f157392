/* workers.c: the HTTP event loops, their threads, and the mailboxes between them and the main
 * loop. */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mbox.h"

#define BATCH_MAX_DEFAULT 256

/* What travels in a mailbox. The main mailbox gets K_JOB (to submit), K_CALL (main_serves'
 * loop 0), K_ACK and K_STOPPED; a loop's mailbox gets K_JOB (its outcome), K_CALL, K_STOP and
 * K_EXIT. */
typedef enum node_kind { K_JOB, K_CALL, K_ACK, K_STOP, K_STOPPED, K_EXIT } node_kind_t;

typedef struct node {
    mbox_item_t link;
    node_kind_t kind;
} node_t;

/* One event on its way to the main loop and its outcome on the way back. Owned by its loop's
 * pool for good; in flight from workers_submit until its done callback ran. */
typedef struct job {
    node_t n;
    workers_loop_t *owner;
    workers_done_cb done;
    void *ctx;
    msg_t msg; /* until opts.submit takes it */
    hb_status_t st;
    int has_id;
    char id[MSG_ID_LEN + 1];
    struct job *free_next; /* in the owner's free list */
    struct job *all_next;  /* every job of the owner, freed with it */
} job_t;

typedef struct call call_t;
typedef struct call_part {
    node_t n; /* K_CALL to the loop, then K_ACK back */
    call_t *c;
    workers_loop_t *l;
    int rc;
} call_part_t;

/* One workers_call; kept in the main loop's list until every loop acknowledged it. */
struct call {
    int (*fn)(void *arg, workers_loop_t *l);
    void *arg;
    void (*all_done)(void *arg, size_t failed);
    size_t remaining, failed;
    call_t *next;
    call_part_t parts[]; /* one per loop */
};

struct workers_loop {
    workers_t *ws;
    size_t index;
    int is_main;
    struct event_base *base; /* the main loop's for main_serves' loop 0, else its own */
    mbox_t *inbox;           /* the main mailbox for main_serves' loop 0 */
    void *data;
    int inited;
    pthread_t thread;
    int started;
    int ended; /* joined: outcomes are discarded (main) */
    /* loop-private */
    job_t *free_jobs, *all_jobs;
    size_t inflight;
    int stopping, flushing, reported;
    node_t stop_item, stopped_item, exit_item;
};

struct workers {
    struct event_base *main_base;
    workers_opts_t o;
    mbox_t *main_mb;
    size_t n;
    workers_loop_t *loops;
    call_t *calls;
    void (*stopped)(void *arg);
    void *stopped_arg;
    size_t stopped_cnt;
    int stop_begun, joined;
};

/* ---- counting CPUs ---------------------------------------------------------------------- */

size_t workers_count_from_config(int64_t configured) {
    if (configured > 0)
        return configured > WORKERS_MAX ? WORKERS_MAX : (size_t)configured;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    long n = online > 0 ? online : 1;
    cpu_set_t set;
    CPU_ZERO(&set);
    /* A process pinned with taskset or a cpuset gets that many loops, not the machine's. */
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int allowed = CPU_COUNT(&set);
        if (allowed > 0 && allowed < n)
            n = allowed;
    }
    return n > WORKERS_MAX ? WORKERS_MAX : (size_t)n;
}

/* ---- on a loop -------------------------------------------------------------------------- */

static void check_quiet(workers_loop_t *l) {
    if (!l->stopping || l->flushing || l->inflight > 0)
        return;
    l->flushing = 1;
    if (l->ws->o.hooks.flush)
        l->ws->o.hooks.flush(l->ws->o.hooks_arg, l);
    else
        workers_loop_flushed(l);
}

void workers_loop_flushed(void *arg) {
    workers_loop_t *l = arg;
    if (l->reported)
        return;
    l->reported = 1;
    l->stopped_item.kind = K_STOPPED;
    (void)mbox_post(l->ws->main_mb, &l->stopped_item.link); /* open while loops run */
}

/* The outcome of one of l's jobs, on l's loop. */
static void job_complete(workers_loop_t *l, job_t *j) {
    if (l->ended) /* its server, and the request behind ctx, are gone */
        return;
    l->inflight--;
    j->done(j->ctx, j->st, j->has_id ? j->id : NULL);
    j->done = NULL;
    j->ctx = NULL;
    j->free_next = l->free_jobs;
    l->free_jobs = j;
    check_quiet(l);
}

static void call_run(workers_loop_t *l, call_part_t *p) {
    p->rc = p->c->fn(p->c->arg, l);
    p->n.kind = K_ACK;
    (void)mbox_post(l->ws->main_mb, &p->n.link);
}

static void loop_stop(workers_loop_t *l) {
    l->stopping = 1;
    if (l->ws->o.hooks.stop_accepting)
        l->ws->o.hooks.stop_accepting(l->ws->o.hooks_arg, l);
    check_quiet(l);
}

static void loop_deliver(void *arg, mbox_item_t *it) {
    workers_loop_t *l = arg;
    node_t *n = MBOX_CONTAINER(it, node_t, link);
    switch (n->kind) {
    case K_JOB:
        job_complete(l, MBOX_CONTAINER(n, job_t, n));
        break;
    case K_CALL:
        call_run(l, MBOX_CONTAINER(n, call_part_t, n));
        break;
    case K_STOP:
        loop_stop(l);
        break;
    case K_EXIT:
        event_base_loopbreak(l->base);
        break;
    default:
        break;
    }
}

/* A loop's mailbox closes at workers_join: owed outcomes are discarded (the job stays in the
 * pool); a call that did not run is acknowledged as not failed (the loop uses nothing now). */
static void loop_drop(void *arg, mbox_item_t *it) {
    workers_loop_t *l = arg;
    node_t *n = MBOX_CONTAINER(it, node_t, link);
    if (n->kind == K_CALL) {
        call_part_t *p = MBOX_CONTAINER(n, call_part_t, n);
        p->rc = 0;
        p->n.kind = K_ACK;
        (void)mbox_post(l->ws->main_mb, &p->n.link);
    }
}

static void *loop_thread(void *arg) {
    workers_loop_t *l = arg;
    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- on the main loop ------------------------------------------------------------------- */

static void on_outcome(void *ctx, hb_status_t st, const char *id) {
    job_t *j = ctx;
    j->st = st;
    j->has_id = id != NULL;
    if (id) { /* no printf on the hot path */
        size_t n = strnlen(id, MSG_ID_LEN);
        memcpy(j->id, id, n);
        j->id[n] = '\0';
    }
    if (j->owner->is_main)
        job_complete(j->owner, j);
    else
        (void)mbox_post(j->owner->inbox, &j->n.link); /* refused once joined: discarded */
}

/* The record goes out from a copy: once done has run, the job may be back on its loop and
 * reused, so nothing the submit function does with m after that may touch the job. */
static void job_submit(workers_t *ws, job_t *j) {
    msg_t m = j->msg;
    memset(&j->msg, 0, sizeof j->msg);
    ws->o.submit(ws->o.submit_arg, &m, on_outcome, j);
}

static void call_acked(workers_t *ws, call_part_t *p, int run) {
    call_t *c = p->c;
    if (p->rc != 0)
        c->failed++;
    if (--c->remaining > 0)
        return;
    for (call_t **pp = &ws->calls; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    if (run)
        c->all_done(c->arg, c->failed);
    free(c);
}

static void main_deliver(void *arg, mbox_item_t *it) {
    workers_t *ws = arg;
    node_t *n = MBOX_CONTAINER(it, node_t, link);
    switch (n->kind) {
    case K_JOB:
        job_submit(ws, MBOX_CONTAINER(n, job_t, n));
        break;
    case K_CALL: /* main_serves' loop 0 */
        call_run(&ws->loops[0], MBOX_CONTAINER(n, call_part_t, n));
        break;
    case K_ACK:
        call_acked(ws, MBOX_CONTAINER(n, call_part_t, n), 1);
        break;
    case K_STOP: /* main_serves' loop 0 */
        loop_stop(&ws->loops[0]);
        break;
    case K_STOPPED:
        if (++ws->stopped_cnt == ws->n && ws->stopped)
            ws->stopped(ws->stopped_arg);
        break;
    default:
        break;
    }
}

/* The main mailbox closes at workers_free: jobs never submitted are freed with their records;
 * calls are freed without all_done. */
static void main_drop(void *arg, mbox_item_t *it) {
    workers_t *ws = arg;
    node_t *n = MBOX_CONTAINER(it, node_t, link);
    if (n->kind == K_JOB)
        msg_free(&MBOX_CONTAINER(n, job_t, n)->msg);
    else if (n->kind == K_ACK || n->kind == K_CALL)
        call_acked(ws, MBOX_CONTAINER(n, call_part_t, n), 0);
}

/* ---- the API ---------------------------------------------------------------------------- */

void workers_submit(workers_loop_t *l, msg_t *m, workers_done_cb done, void *ctx) {
    job_t *j = l->free_jobs;
    if (j) {
        l->free_jobs = j->free_next;
    } else if ((j = calloc(1, sizeof *j)) != NULL) {
        j->owner = l;
        j->all_next = l->all_jobs;
        l->all_jobs = j;
    } else {
        msg_free(m);
        done(ctx, HB_ERR_NOMEM, NULL);
        return;
    }
    j->n.kind = K_JOB;
    j->done = done;
    j->ctx = ctx;
    j->msg = *m;
    memset(m, 0, sizeof *m);
    l->inflight++;
    if (l->is_main) {
        job_submit(l->ws, j);
        return;
    }
    if (mbox_post(l->ws->main_mb, &j->n.link) != 0) { /* only while workers_free runs */
        msg_free(&j->msg);
        j->st = HB_ERR_IO;
        j->has_id = 0;
        job_complete(l, j);
    }
}

int workers_call(workers_t *ws, int (*fn)(void *arg, workers_loop_t *l), void *arg,
                 void (*all_done)(void *arg, size_t failed)) {
    if (ws->joined)
        return -1;
    call_t *c = calloc(1, sizeof *c + ws->n * sizeof c->parts[0]);
    if (!c)
        return -1;
    c->fn = fn;
    c->arg = arg;
    c->all_done = all_done;
    c->remaining = ws->n;
    c->next = ws->calls;
    ws->calls = c;
    /* Every mailbox is open until workers_join, so every post below is taken. */
    for (size_t i = 0; i < ws->n; i++) {
        call_part_t *p = &c->parts[i];
        p->c = c;
        p->l = &ws->loops[i];
        p->n.kind = K_CALL;
        (void)mbox_post(ws->loops[i].inbox, &p->n.link);
    }
    return 0;
}

void workers_stop(workers_t *ws, void (*stopped)(void *arg), void *arg) {
    if (ws->stop_begun || ws->joined)
        return;
    ws->stop_begun = 1;
    ws->stopped = stopped;
    ws->stopped_arg = arg;
    for (size_t i = 0; i < ws->n; i++) {
        ws->loops[i].stop_item.kind = K_STOP;
        (void)mbox_post(ws->loops[i].inbox, &ws->loops[i].stop_item.link);
    }
}

size_t workers_count(const workers_t *ws) { return ws->n; }
workers_loop_t *workers_loop(workers_t *ws, size_t i) { return i < ws->n ? &ws->loops[i] : NULL; }
size_t workers_loop_index(const workers_loop_t *l) { return l->index; }
struct event_base *workers_loop_base(workers_loop_t *l) { return l->base; }
void *workers_loop_data(workers_loop_t *l) { return l->data; }
int workers_loop_is_main(const workers_loop_t *l) { return l->is_main; }

workers_t *workers_new(struct event_base *main_base, const workers_opts_t *opts, char *errstr,
                       size_t errlen) {
    if (opts->loops < 1 || opts->loops > WORKERS_MAX || !opts->submit || !opts->hooks.init) {
        snprintf(errstr, errlen, "workers: %zu loops (1 to %d), a submit function and an init "
                                 "hook are needed", opts->loops, WORKERS_MAX);
        return NULL;
    }
    workers_t *ws = calloc(1, sizeof *ws);
    if (!ws || !(ws->loops = calloc(opts->loops, sizeof ws->loops[0]))) {
        free(ws);
        snprintf(errstr, errlen, "out of memory");
        return NULL;
    }
    ws->main_base = main_base;
    ws->o = *opts;
    if (!ws->o.batch_max)
        ws->o.batch_max = BATCH_MAX_DEFAULT;
    ws->n = opts->loops;
    mbox_opts_t mo = {.deliver = main_deliver, .drop = main_drop, .arg = ws,
                      .batch_max = ws->o.batch_max};
    if (!(ws->main_mb = mbox_new(main_base, &mo, errstr, errlen)))
        goto fail;
    for (size_t i = 0; i < ws->n; i++) {
        workers_loop_t *l = &ws->loops[i];
        l->ws = ws;
        l->index = i;
        l->is_main = ws->o.main_serves && i == 0;
        if (l->is_main) {
            l->base = main_base;
            l->inbox = ws->main_mb;
        } else {
            if (!(l->base = event_base_new())) {
                snprintf(errstr, errlen, "cannot create the event loop of HTTP loop %zu", i);
                goto fail;
            }
            mbox_opts_t lo = {.deliver = loop_deliver, .drop = loop_drop, .arg = l,
                              .batch_max = ws->o.batch_max};
            if (!(l->inbox = mbox_new(l->base, &lo, errstr, errlen)))
                goto fail;
        }
        if (!(l->data = ws->o.hooks.init(ws->o.hooks_arg, l, errstr, errlen)))
            goto fail;
        l->inited = 1;
    }
    /* The threads inherit this mask: SIGTERM, SIGINT and SIGHUP reach the main loop only. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (size_t i = 0; i < ws->n; i++) {
        workers_loop_t *l = &ws->loops[i];
        if (l->is_main)
            continue;
        int rc = pthread_create(&l->thread, NULL, loop_thread, l);
        if (rc != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            snprintf(errstr, errlen, "cannot start the thread of HTTP loop %zu: %s", i,
                     strerror(rc));
            goto fail;
        }
        l->started = 1;
        char name[16]; /* the kernel keeps 15 bytes */
        snprintf(name, sizeof name, "hb-http-%u", (unsigned)(i % 100));
        pthread_setname_np(l->thread, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ws;
fail:
    workers_free(ws);
    return NULL;
}

void workers_join(workers_t *ws) {
    if (!ws || ws->joined)
        return;
    ws->joined = 1;
    for (size_t i = 0; i < ws->n; i++) {
        workers_loop_t *l = &ws->loops[i];
        if (l->started) {
            l->exit_item.kind = K_EXIT;
            (void)mbox_post(l->inbox, &l->exit_item.link);
        }
    }
    for (size_t i = 0; i < ws->n; i++) {
        workers_loop_t *l = &ws->loops[i];
        if (l->started)
            pthread_join(l->thread, NULL);
        l->started = 0;
        l->ended = 1;
        if (!l->is_main)
            mbox_close(l->inbox); /* the loop's thread is gone: this thread consumes it now */
        if (l->inited && ws->o.hooks.fini)
            ws->o.hooks.fini(ws->o.hooks_arg, l, l->data);
        l->inited = 0;
        l->data = NULL;
    }
}

void workers_free(workers_t *ws) {
    if (!ws)
        return;
    workers_join(ws);
    mbox_free(ws->main_mb);
    for (size_t i = 0; i < ws->n; i++) {
        workers_loop_t *l = &ws->loops[i];
        if (!l->is_main) {
            mbox_free(l->inbox);
            if (l->base)
                event_base_free(l->base);
        }
        job_t *j = l->all_jobs;
        while (j) {
            job_t *next = j->all_next;
            msg_free(&j->msg);
            free(j);
            j = next;
        }
    }
    while (ws->calls) {
        call_t *c = ws->calls;
        ws->calls = c->next;
        free(c);
    }
    free(ws->loops);
    free(ws);
}
