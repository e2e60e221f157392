/* workers.h: the HTTP event loops (http.workers): one per thread, each with its own event_base,
 * handing accepted events to the main loop and getting each outcome back on the loop that owns
 * the request.
 *
 * The picture (loops = 3, main_serves = 1):
 *
 *   main thread:  main loop = loop 0 (HTTP too) + the dispatcher, the producer, admin, signals
 *                   ^ main mailbox: jobs, call acks, "stopped"     | direct call for loop 0
 *   thread 1:     loop 1 (HTTP)  --job-->  main   --done-->  loop 1's mailbox --> answer
 *   thread 2:     loop 2 (HTTP)  --job-->  main   --done-->  loop 2's mailbox --> answer
 *
 * A loop's HTTP server is the caller's (hooks.init builds it on workers_loop_base, e.g. a
 * listener with SO_REUSEPORT on every loop). An accepted event goes in with workers_submit: the
 * job (the record, the caller's done callback and context) is posted to the main mailbox
 * (mbox.h) and handed to opts.submit there (the dispatcher), whose outcome is posted back to the
 * owner's mailbox, where done(ctx, st, id) runs. Loop 0 with main_serves runs on the main loop:
 * its jobs skip both mailboxes, so one loop costs what the daemon cost before.
 *
 * Guarantees:
 *  - order: the jobs of one loop reach opts.submit in the order workers_submit was called on
 *    it (a connection lives on one loop, so its requests keep their order);
 *  - done is called exactly once per workers_submit, on the owner's loop, until workers_join;
 *    after it, outcomes still owed are discarded (the loop's requests went with its server);
 *  - no allocation per event once a loop's job pool has grown to its peak in-flight count;
 *  - workers_call runs a function on every loop and reports on the main loop when all have run
 *    it (a barrier: e.g. a reload swaps each loop's endpoint set, then the old set is freed);
 *  - graceful stop (workers_stop): every loop stops accepting; a loop is stopped once it has no
 *    job in flight and its answers are written (hooks.flush); stopped(arg) runs on the main loop
 *    when every loop is. workers_join then ends the loop threads and frees their state.
 *
 * Jobs a loop submits after it reported stopped (a request on a connection that was already open)
 * are still submitted and answered while the loops run.
 *
 * @locality per function: "main" is the thread running main_base (or any thread while it is not
 * running); "loop" is the thread running that loop (main, for main_serves' loop 0).
 */
#ifndef HB_WORKERS_H
#define HB_WORKERS_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "status.h"

#define WORKERS_MAX 64 /* http.workers' range in common/config.c's table says the same */

typedef struct workers workers_t;
typedef struct workers_loop workers_loop_t;

/* The outcome of one event, as dispatch_done_cb (dispatch.h): the same type, so a dispatcher
 * callback can be passed through. id is valid during the call only (may be NULL). */
typedef void (*workers_done_cb)(void *ctx, hb_status_t st, const char *id);

/* Where the main loop sends each job: takes *m (leaves it zeroed), calls done(ctx, ...) exactly
 * once, later or from inside the call (dispatch_submit's contract). @locality main. */
typedef void (*workers_submit_fn)(void *arg, msg_t *m, workers_done_cb done, void *ctx);

typedef struct workers_hooks {
    /* Builds loop l's state (its HTTP server) on workers_loop_base(l) and returns it (then
     * workers_loop_data(l)); NULL with errstr fails workers_new. @locality main, before any
     * loop thread runs. */
    void *(*init)(void *arg, workers_loop_t *l, char *errstr, size_t errlen);
    /* A graceful stop began: stop accepting connections; requests in progress still get their
     * answers. NULL: nothing to do. @locality loop. */
    void (*stop_accepting)(void *arg, workers_loop_t *l);
    /* l has no job in flight any more: call workers_loop_flushed(l) once every answer is
     * written to its socket, now or later (http_when_flushed(srv, workers_loop_flushed, l)).
     * NULL: flushed at once. @locality loop. */
    void (*flush)(void *arg, workers_loop_t *l);
    /* Frees what init built (data). @locality main, after l's loop has ended for good. */
    void (*fini)(void *arg, workers_loop_t *l, void *data);
} workers_hooks_t;

typedef struct workers_opts {
    size_t loops;    /* loops serving HTTP: 1 .. WORKERS_MAX (workers_count_from_config) */
    int main_serves; /* 1: loop 0 is the main loop itself (loops - 1 threads); 0: every loop
                        is a thread of its own and the main loop serves no HTTP */
    workers_submit_fn submit; /* required */
    void *submit_arg;
    workers_hooks_t hooks; /* init required */
    void *hooks_arg;
    size_t batch_max; /* items per mailbox batch before the loop's other events run; 0: 256 */
} workers_opts_t;

/* The loop count for http.workers: configured when > 0, else the CPUs this process may run on
 * (its affinity mask, at most the online CPUs), within 1 .. WORKERS_MAX. */
size_t workers_count_from_config(int64_t configured);

/* Builds the loops (hooks.init for each, in order) and starts their threads, with every signal
 * blocked in them (signals stay the main loop's). opts is copied. NULL with errstr on failure;
 * whatever was built is torn down (fini for each loop that init built).
 * @locality main. */
workers_t *workers_new(struct event_base *main_base, const workers_opts_t *opts, char *errstr,
                       size_t errlen);

/* The loops, 0 .. workers_count - 1; borrowed, valid until workers_free. @locality any thread
 * (they do not change after workers_new). */
size_t workers_count(const workers_t *ws);
workers_loop_t *workers_loop(workers_t *ws, size_t i);
size_t workers_loop_index(const workers_loop_t *l);
struct event_base *workers_loop_base(workers_loop_t *l);
void *workers_loop_data(workers_loop_t *l); /* hooks.init's result */
int workers_loop_is_main(const workers_loop_t *l);

/* Hands an accepted event to the main loop. Takes *m (left zeroed); done(ctx, st, id) runs
 * exactly once on this loop (from inside this call when no job can be allocated: HB_ERR_NOMEM,
 * or, for main_serves' loop 0, when the submit function answers at once).
 * @locality loop. */
void workers_submit(workers_loop_t *l, msg_t *m, workers_done_cb done, void *ctx);

/* Runs fn(arg, l) on every loop, each on its own thread; then all_done(arg, failed) on the main
 * loop, failed being the number of loops where fn returned nonzero. arg must stay valid until
 * all_done. 0; -1 (nothing is called) when out of memory or after workers_join.
 * @locality main. */
int workers_call(workers_t *ws, int (*fn)(void *arg, workers_loop_t *l), void *arg,
                 void (*all_done)(void *arg, size_t failed));

/* Graceful stop (see above); stopped(arg) runs on the main loop. Once only, before
 * workers_join. @locality main. */
void workers_stop(workers_t *ws, void (*stopped)(void *arg), void *arg);

/* hooks.flush's answer: every answer of loop l is written. Takes a workers_loop_t * as void *
 * so it can be a flush callback itself. @locality loop. */
void workers_loop_flushed(void *l);

/* Ends every loop thread (after the events it is running) and joins it, closes the loops'
 * mailboxes (outcomes still owed are discarded from now on) and runs hooks.fini for each loop.
 * Blocks until the threads are gone; idempotent. The main loop's mailbox stays open: jobs in it
 * still reach opts.submit if the main loop runs again.
 * @locality main. */
void workers_join(workers_t *ws);

/* Joins (if not yet) and frees everything; jobs never handed to opts.submit are freed with
 * their records, unanswered. Call it after the submit function's last done callback can have
 * run (after dispatch_free). NULL is fine. @locality main. */
void workers_free(workers_t *ws);

#endif
