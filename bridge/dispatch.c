/* dispatch.c: Kafka-or-spool routing of accepted events, group commit, and the spool drainer. */
#include "dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include "hbtime.h"
#include "log.h"
#include "producer.h"

enum item_kind { ITEM_LIVE = 1, ITEM_DRAIN = 2 };

/* A live event: from submit until it is answered AND librdkafka has let go of it. */
typedef struct pending {
    enum item_kind kind; /* first: the producer opaque is either a pending or a drain_rec */
    msg_t msg;
    dispatch_done_cb done;
    void *ctx;
    int64_t sent_ms;     /* monotonic, when handed to librdkafka */
    int64_t deadline_ms; /* monotonic, ack timeout */
    unsigned in_kafka : 1, in_live : 1, in_commit : 1, answered : 1;
    /* in_commit: appended to the spool and waiting for its fdatasync, on d->commit (the next
     * batch) or on d->syncing (the batch of the sync in flight) */
    TAILQ_ENTRY(pending) live_link;
    TAILQ_ENTRY(pending) commit_link;
} pending_t;

/* A spooled record being republished. */
typedef struct drain_rec {
    enum item_kind kind;
    msg_t msg;
    uint64_t seq;
} drain_rec_t;

/* The request that brought a record (bridge.c adds this header; the spool keeps it), named in
 * the log lines about one event as the HTTP lines name it. NULL (logged as null) without one. */
static const char *request_id_of(const msg_t *m) {
    const msg_header_t *h = msg_header(m, MSG_HDR_REQUEST_ID);
    return h ? h->value : NULL;
}

TAILQ_HEAD(pending_list, pending);

struct dispatch {
    struct event_base *base;
    producer_t *producer;
    spool_t *spool;
    int64_t ack_timeout_ms, commit_window_ms, shutdown_timeout_ms;
    uint64_t max_inflight, drain_max;

    struct pending_list live;    /* in send order = deadline order */
    struct pending_list commit;  /* appended to the spool, waiting for the next sync */
    struct pending_list syncing; /* covered by the sync in flight */
    struct event *ack_timer, *commit_ev, *drain_timer, *recreate_ev, *shutdown_timer;
    int commit_armed;  /* commit_ev is active or pending */
    int sync_inflight; /* a spool_sync job is on the worker (its batch is d->syncing) */
    spool_sync_job_t job;

    /* The sync worker: one thread that runs spool_sync_run() for the loop, one job at a time,
     * and writes to the eventfd when done (the loop's wake-up; nothing polls). Started at the
     * first commit. */
    pthread_t worker;
    int worker_started;
    pthread_mutex_t wmu;
    pthread_cond_t wcv;
    int wjob, wdone, wquit; /* under wmu */
    int wfd;                /* eventfd, -1 until the worker starts */
    struct event *synced_ev;
    int64_t drain_backoff_ms; /* 0 while Kafka is up; the wait before the next probe */
    int probe_now;
    int recreating;

    int stopping;
    int deadline_passed; /* the shutdown deadline passed: drain records no longer waited for */
    int freeing; /* inside dispatch_free: outcomes are no longer reported */
    void (*stopped)(void *);
    void *stopped_arg;

    dispatch_stats_t st;
    dispatch_topic_stats_t *topics; /* see dispatch_topic_stats() */
    size_t topic_cnt;
    dispatch_kafka_stats_cb kafka_stats_cb;
    void *kafka_stats_arg;
};

static const int64_t lat_bounds[] = DISPATCH_LAT_BOUNDS;

static void drain_kick(dispatch_t *d);
static void check_stopped(dispatch_t *d);

/* The counters of topic, created on first sight; NULL when out of memory (not counted). */
static dispatch_topic_stats_t *topic_stats(dispatch_t *d, const char *topic) {
    for (size_t i = 0; i < d->topic_cnt; i++)
        if (strcmp(d->topics[i].topic, topic) == 0)
            return &d->topics[i];
    if (d->topic_cnt == DISPATCH_TOPICS_MAX)
        return &d->topics[DISPATCH_TOPICS_MAX - 1]; /* the overflow entry, made below */
    const char *name = d->topic_cnt == DISPATCH_TOPICS_MAX - 1 ? DISPATCH_TOPIC_OVERFLOW : topic;
    dispatch_topic_stats_t *grown = realloc(d->topics, (d->topic_cnt + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    d->topics = grown;
    dispatch_topic_stats_t *t = &d->topics[d->topic_cnt];
    memset(t, 0, sizeof *t);
    if (!(t->topic = strdup(name)))
        return NULL;
    d->topic_cnt++;
    return t;
}

static void pending_maybe_free(pending_t *p) {
    if (p->answered && !p->in_kafka && !p->in_commit) {
        msg_free(&p->msg);
        free(p);
    }
}

static void answer(dispatch_t *d, pending_t *p, hb_status_t st) {
    if (p->answered)
        return;
    p->answered = 1;
    if (d->freeing)
        return; /* the listener may be gone already: nobody to tell */
    if (st != HB_OK) {
        d->st.rejected++;
        dispatch_topic_stats_t *t = topic_stats(d, p->msg.topic);
        if (t)
            t->rejected++;
    }
    p->done(p->ctx, st, p->msg.id);
}

static void live_unlink(dispatch_t *d, pending_t *p) {
    if (p->in_live) {
        TAILQ_REMOVE(&d->live, p, live_link);
        p->in_live = 0;
        d->st.live_inflight--;
    }
}

static void arm_ack_timer(dispatch_t *d) {
    pending_t *head = TAILQ_FIRST(&d->live);
    if (!head) {
        evtimer_del(d->ack_timer);
        return;
    }
    int64_t wait = head->deadline_ms - hbtime_mono_ms();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(d->ack_timer, &tv);
}

static void commit_kick(dispatch_t *d);

/* Appends p to the spool; it is answered when the fdatasync of its batch returns, or at once
 * when the spool refuses it. Never frees p: the caller calls pending_maybe_free(). */
static void to_spool(dispatch_t *d, pending_t *p) {
    uint64_t seq;
    hb_status_t st = spool_append(d->spool, &p->msg, &seq);
    if (st != HB_OK) {
        d->st.spool_fail_ms = hbtime_mono_ms();
        d->st.spool_fail_st = st;
        log_error("dispatch", "cannot spool event", "id", p->msg.id, "request_id",
                  request_id_of(&p->msg), "topic", p->msg.topic, "reason", hb_status_str(st),
                  NULL);
        answer(d, p, st);
        return;
    }
    p->in_commit = 1;
    TAILQ_INSERT_TAIL(&d->commit, p, commit_link);
    commit_kick(d);
}

/* ---- group commit ----------------------------------------------------------------------------
 * Pipelined: the batch is every event appended since the last sync began. A sync starts as soon
 * as the loop has run the callbacks already due in this iteration (commit_window_ms = 0: an
 * activated event, run after them) or after the window, and never while another one is in
 * flight: events appended meanwhile wait and share the next sync, which starts the moment the
 * current one returns. The fdatasync itself runs on the worker thread, so the loop keeps
 * accepting, normalising and appending while the disk works. */

static void *sync_worker(void *arg) {
    dispatch_t *d = arg;
    pthread_mutex_lock(&d->wmu);
    for (;;) {
        if (d->wjob) {
            d->wjob = 0;
            pthread_mutex_unlock(&d->wmu);
            spool_sync_run(&d->job);
            pthread_mutex_lock(&d->wmu);
            d->wdone = 1;
            uint64_t one = 1;
            /* An eventfd write of 1 cannot fail short of an overflow at 2^64 - 1. */
            while (write(d->wfd, &one, sizeof one) < 0 && errno == EINTR) {
            }
            continue;
        }
        if (d->wquit)
            break;
        pthread_cond_wait(&d->wcv, &d->wmu);
    }
    pthread_mutex_unlock(&d->wmu);
    return NULL;
}

static void on_synced(evutil_socket_t fd, short what, void *arg);

/* Starts the worker: 0, or -1 (logged) and the caller syncs on the loop thread instead. */
static int worker_start(dispatch_t *d) {
    if (d->worker_started)
        return 0;
    d->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->wfd < 0) {
        log_error("dispatch", "cannot create the sync worker's eventfd: syncing on the loop",
                  "error", strerror(errno), NULL);
        return -1;
    }
    d->synced_ev = event_new(d->base, d->wfd, EV_READ | EV_PERSIST, on_synced, d);
    if (!d->synced_ev || event_add(d->synced_ev, NULL) != 0)
        goto fail;
    int e = pthread_create(&d->worker, NULL, sync_worker, d);
    if (e != 0) {
        log_error("dispatch", "cannot start the sync worker: syncing on the loop", "error",
                  strerror(e), NULL);
        goto fail;
    }
    d->worker_started = 1;
    return 0;
fail:
    if (d->synced_ev)
        event_free(d->synced_ev);
    d->synced_ev = NULL;
    close(d->wfd);
    d->wfd = -1;
    return -1;
}

/* The batch's sync returned: answer every event of it. */
static void commit_finish(dispatch_t *d) {
    hb_status_t st = spool_sync_end(d->spool, &d->job);
    d->sync_inflight = 0;
    if (st != HB_OK) {
        d->st.spool_fail_ms = hbtime_mono_ms();
        d->st.spool_fail_st = st;
        log_error("dispatch", "spool sync failed: events of this commit are refused",
                  "reason", hb_status_str(st), NULL);
    }
    pending_t *p;
    while ((p = TAILQ_FIRST(&d->syncing)) != NULL) {
        TAILQ_REMOVE(&d->syncing, p, commit_link);
        p->in_commit = 0;
        if (st == HB_OK && !p->answered) {
            d->st.spooled++;
            dispatch_topic_stats_t *t = topic_stats(d, p->msg.topic);
            if (t)
                t->spooled++;
        }
        answer(d, p, st);
        pending_maybe_free(p);
    }
    commit_kick(d); /* what was appended meanwhile */
    drain_kick(d);
    check_stopped(d);
}

static void on_synced(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    dispatch_t *d = arg;
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0)
        return; /* EAGAIN: a spurious wake-up */
    pthread_mutex_lock(&d->wmu);
    int done = d->wdone;
    d->wdone = 0;
    pthread_mutex_unlock(&d->wmu);
    if (done && d->sync_inflight)
        commit_finish(d);
}

/* Takes the batch (every event appended so far) and hands its sync to the worker. */
static void on_commit(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    d->commit_armed = 0;
    if (d->sync_inflight || TAILQ_EMPTY(&d->commit))
        return;
    TAILQ_CONCAT(&d->syncing, &d->commit, commit_link);
    spool_sync_begin(d->spool, &d->job);
    d->sync_inflight = 1;
    if (worker_start(d) != 0) {
        spool_sync_run(&d->job);
        commit_finish(d);
        return;
    }
    pthread_mutex_lock(&d->wmu);
    d->wjob = 1;
    pthread_cond_signal(&d->wcv);
    pthread_mutex_unlock(&d->wmu);
}

/* Schedules the next sync if events wait for one and none is in flight. */
static void commit_kick(dispatch_t *d) {
    if (d->commit_armed || d->sync_inflight || TAILQ_EMPTY(&d->commit))
        return;
    d->commit_armed = 1;
    if (d->commit_window_ms > 0 && !d->stopping) {
        struct timeval tv = {(time_t)(d->commit_window_ms / 1000),
                             (suseconds_t)(d->commit_window_ms % 1000) * 1000};
        event_add(d->commit_ev, &tv);
    } else {
        event_active(d->commit_ev, EV_TIMEOUT, 0);
    }
}

static void set_kafka_up(dispatch_t *d, int up) {
    if (up)
        d->st.kafka_error[0] = '\0'; /* Kafka acknowledged: what went wrong before is over */
    if (d->st.kafka_up == up)
        return;
    d->st.kafka_up = up;
    log_info("dispatch", up ? "kafka is accepting events" : "kafka is not accepting events",
             NULL);
    if (up)
        d->drain_backoff_ms = 0;
}

static int must_spool(const dispatch_t *d) {
    return !d->st.kafka_up || d->recreating || d->stopping || spool_pending(d->spool) > 0 ||
           d->st.live_inflight >= d->max_inflight;
}

void dispatch_submit(dispatch_t *d, msg_t *m, dispatch_done_cb done, void *ctx) {
    pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        /* Not even room to remember the event: refuse it (503). */
        msg_free(m);
        d->st.rejected++;
        done(ctx, HB_ERR_NOMEM, "");
        return;
    }
    p->kind = ITEM_LIVE;
    p->msg = *m;
    memset(m, 0, sizeof *m);
    p->done = done;
    p->ctx = ctx;
    if (must_spool(d) || producer_send(d->producer, &p->msg, p) != HB_OK) {
        to_spool(d, p);
        pending_maybe_free(p);
        return;
    }
    p->in_kafka = 1;
    p->sent_ms = hbtime_mono_ms();
    p->deadline_ms = p->sent_ms + d->ack_timeout_ms;
    p->in_live = 1;
    d->st.live_inflight++;
    int was_empty = TAILQ_EMPTY(&d->live);
    TAILQ_INSERT_TAIL(&d->live, p, live_link);
    if (was_empty)
        arm_ack_timer(d);
}

/* Kafka did not acknowledge in time: make the events safe in the spool. Their delivery reports
 * still come later; a success then is a counted duplicate. */
static void on_ack_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    int64_t now = hbtime_mono_ms();
    pending_t *p;
    int n = 0;
    while ((p = TAILQ_FIRST(&d->live)) != NULL && p->deadline_ms <= now) {
        live_unlink(d, p);
        if (!p->answered && !p->in_commit) {
            to_spool(d, p);
            n++;
        }
    }
    if (n) {
        log_warn("dispatch", "kafka did not acknowledge in time: events spooled", "#events",
                 (long long)n, NULL);
        set_kafka_up(d, 0);
    }
    arm_ack_timer(d);
}

static void observe_latency(dispatch_t *d, int64_t ms) {
    size_t nb = sizeof lat_bounds / sizeof lat_bounds[0];
    size_t i = 0;
    while (i < nb && ms > lat_bounds[i])
        i++;
    d->st.lat_buckets[i]++;
    d->st.lat_count++;
    d->st.lat_sum_ms += (uint64_t)(ms < 0 ? 0 : ms);
}

/* Retry after a backoff that the loop owns, doubling to 5 s, so a broker that fails every
 * request at once does not spin us. */
static void drain_backoff(dispatch_t *d) {
    d->drain_backoff_ms = d->drain_backoff_ms ? d->drain_backoff_ms * 2 : 100;
    if (d->drain_backoff_ms > 5000)
        d->drain_backoff_ms = 5000;
}

static void drain_delivered(dispatch_t *d, drain_rec_t *r, rd_kafka_resp_err_t err) {
    d->st.drain_inflight--;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        spool_ack(d->spool, r->seq);
        d->st.drained++;
        set_kafka_up(d, 1);
        if (spool_pending(d->spool) == 0)
            log_info("dispatch", "spool drained", "#drained", (long long)d->st.drained, NULL);
    } else {
        spool_nack(d->spool, r->seq);
        if (d->st.kafka_up || d->drain_backoff_ms == 0)
            log_warn("dispatch", "republishing a spooled event failed", "id", r->msg.id,
                     "request_id", request_id_of(&r->msg), "topic", r->msg.topic, "error",
                     rd_kafka_err2name(err), "#seq", (long long)r->seq, NULL);
        set_kafka_up(d, 0);
        drain_backoff(d);
    }
    msg_free(&r->msg);
    free(r);
}

static void on_delivered(void *arg, void *opaque, rd_kafka_resp_err_t err, unsigned gen) {
    (void)gen;
    dispatch_t *d = arg;
    if (*(enum item_kind *)opaque == ITEM_DRAIN) {
        drain_delivered(d, opaque, err);
        if (d->st.drain_inflight == 0 || err == RD_KAFKA_RESP_ERR_NO_ERROR)
            drain_kick(d);
        check_stopped(d);
        return;
    }
    pending_t *p = opaque;
    p->in_kafka = 0;
    int was_head = TAILQ_FIRST(&d->live) == p;
    live_unlink(d, p);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        set_kafka_up(d, 1);
        if (p->answered || p->in_commit) {
            d->st.duplicates++;
        } else {
            d->st.published++;
            dispatch_topic_stats_t *t = topic_stats(d, p->msg.topic);
            if (t)
                t->published++;
            observe_latency(d, hbtime_mono_ms() - p->sent_ms);
        }
        answer(d, p, HB_OK);
    } else {
        if (!p->answered && !p->in_commit) {
            log_warn("dispatch", "delivery failed: event spooled", "id", p->msg.id,
                     "request_id", request_id_of(&p->msg), "topic", p->msg.topic, "error",
                     rd_kafka_err2name(err), NULL);
            to_spool(d, p);
        }
        set_kafka_up(d, 0);
    }
    if (was_head)
        arm_ack_timer(d);
    pending_maybe_free(p);
    check_stopped(d);
}

/* Republishes spooled records: up to drain_max at once while Kafka is up, one (a probe) while
 * it is down. */
static void drain_kick(dispatch_t *d) {
    if (d->recreating || d->stopping || evtimer_pending(d->drain_timer, NULL))
        return;
    if (!d->st.kafka_up && d->drain_backoff_ms > 0 && d->st.drain_inflight == 0 &&
        !d->probe_now) {
        struct timeval tv = {(time_t)(d->drain_backoff_ms / 1000),
                             (suseconds_t)(d->drain_backoff_ms % 1000) * 1000};
        evtimer_add(d->drain_timer, &tv);
        return;
    }
    d->probe_now = 0;
    uint64_t limit = d->st.kafka_up ? d->drain_max : 1;
    while (d->st.drain_inflight < limit) {
        drain_rec_t *r = calloc(1, sizeof *r);
        if (!r)
            return;
        r->kind = ITEM_DRAIN;
        hb_status_t st = spool_next(d->spool, &r->msg, &r->seq);
        if (st != HB_OK) {
            free(r);
            return;
        }
        if (producer_send(d->producer, &r->msg, r) != HB_OK) {
            spool_nack(d->spool, r->seq);
            msg_free(&r->msg);
            free(r);
            /* Queue full: the next delivery report kicks again. Refused with nothing in flight
             * (say, a topic librdkafka knows to be missing): no report will come, so retry
             * after the backoff. */
            if (d->st.drain_inflight == 0) {
                set_kafka_up(d, 0);
                drain_backoff(d);
                drain_kick(d);
            }
            return;
        }
        d->st.drain_inflight++;
    }
}

/* The backoff passed: let one probe through although Kafka is still marked down. */
static void on_drain_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    d->probe_now = 1;
    drain_kick(d);
}

static void on_recreate(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    char err[512];
    /* Purged deliveries come back with errors inside producer_recreate and are spooled by
     * on_delivered. */
    if (producer_recreate(d->producer, err, sizeof err) != HB_OK)
        log_error("dispatch", "cannot recreate the producer", "reason", err, NULL);
    d->st.recreated++;
    d->recreating = 0;
    set_kafka_up(d, 0);
    drain_kick(d);
}

/* Remembers librdkafka's error for /readyz. "All brokers down" only when nothing says why. */
static void note_kafka_error(dispatch_t *d, producer_event_t ev, rd_kafka_resp_err_t err,
                             const char *reason) {
    if (ev == PRODUCER_EV_BROKERS_DOWN && d->st.kafka_error[0])
        return;
    snprintf(d->st.kafka_error, sizeof d->st.kafka_error, "%s: %s", rd_kafka_err2name(err),
             reason ? reason : "");
}

static void on_producer_event(void *arg, producer_event_t ev, rd_kafka_resp_err_t err,
                              const char *reason) {
    dispatch_t *d = arg;
    if (ev != PRODUCER_EV_STATS)
        note_kafka_error(d, ev, err, reason);
    switch (ev) {
    case PRODUCER_EV_FATAL:
        /* Not from inside librdkafka's callback: the handle is destroyed in on_recreate. */
        if (!d->recreating) {
            d->recreating = 1;
            event_active(d->recreate_ev, 0, 0);
        }
        break;
    case PRODUCER_EV_BROKERS_DOWN:
        set_kafka_up(d, 0);
        break;
    case PRODUCER_EV_STATS:
        if (d->kafka_stats_cb)
            d->kafka_stats_cb(d->kafka_stats_arg, reason);
        break;
    default:
        break;
    }
}

static void check_stopped(dispatch_t *d) {
    if (!d->stopping || !d->stopped)
        return;
    if (!TAILQ_EMPTY(&d->live) || !TAILQ_EMPTY(&d->commit) || !TAILQ_EMPTY(&d->syncing) ||
        d->sync_inflight || (d->st.drain_inflight > 0 && !d->deadline_passed))
        return;
    void (*cb)(void *) = d->stopped;
    d->stopped = NULL;
    evtimer_del(d->shutdown_timer);
    cb(d->stopped_arg);
}

/* The shutdown deadline passed: spool every live event still waiting for Kafka. */
static void on_shutdown_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    pending_t *p;
    int n = 0;
    while ((p = TAILQ_FIRST(&d->live)) != NULL) {
        live_unlink(d, p);
        if (!p->answered && !p->in_commit) {
            to_spool(d, p);
            n++;
        }
    }
    log_info("dispatch", "shutdown deadline: in-flight events spooled", "#events", (long long)n,
             NULL);
    /* Drain records are already safe in the spool: their reports arrive at producer_flush.
     * The events just spooled are answered when their sync returns (check_stopped then). */
    d->deadline_passed = 1;
    if (d->commit_armed && evtimer_pending(d->commit_ev, NULL)) {
        event_del(d->commit_ev);
        d->commit_armed = 0;
    }
    commit_kick(d);
    check_stopped(d);
}

void dispatch_shutdown(dispatch_t *d, void (*stopped)(void *arg), void *arg) {
    d->stopping = 1;
    d->stopped = stopped;
    d->stopped_arg = arg;
    evtimer_del(d->drain_timer);
    struct timeval tv = {(time_t)(d->shutdown_timeout_ms / 1000),
                         (suseconds_t)(d->shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(d->shutdown_timer, &tv);
    check_stopped(d);
}

dispatch_t *dispatch_new(struct event_base *base, const hb_config_t *cfg, spool_t *spool,
                         char *errstr, size_t errlen) {
    dispatch_t *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(errstr, errlen, "out of memory");
        spool_close(spool);
        return NULL;
    }
    d->base = base;
    d->spool = spool;
    d->ack_timeout_ms = cfg->producer_ack_timeout_ms;
    d->commit_window_ms = cfg->spool_commit_window_ms;
    d->shutdown_timeout_ms = cfg->producer_shutdown_timeout_ms;
    d->max_inflight = (uint64_t)cfg->producer_max_inflight;
    d->drain_max = (uint64_t)cfg->spool_drain_max_inflight;
    d->st.kafka_up = 1; /* optimistic until a failure says otherwise */
    TAILQ_INIT(&d->live);
    TAILQ_INIT(&d->commit);
    TAILQ_INIT(&d->syncing);
    d->wfd = -1;
    pthread_mutex_init(&d->wmu, NULL);
    pthread_cond_init(&d->wcv, NULL);
    d->ack_timer = evtimer_new(base, on_ack_timeout, d);
    d->commit_ev = event_new(base, -1, 0, on_commit, d);
    d->drain_timer = evtimer_new(base, on_drain_timer, d);
    d->shutdown_timer = evtimer_new(base, on_shutdown_timeout, d);
    d->recreate_ev = event_new(base, -1, 0, on_recreate, d);
    if (!d->ack_timer || !d->commit_ev || !d->drain_timer || !d->shutdown_timer ||
        !d->recreate_ev) {
        snprintf(errstr, errlen, "out of memory");
        goto fail;
    }
    producer_cbs_t cbs = {.delivered = on_delivered, .event = on_producer_event, .arg = d};
    if (!(d->producer = producer_new(base, cfg, &cbs, errstr, errlen)))
        goto fail;
    /* Records left from an earlier run start draining at once. */
    drain_kick(d);
    return d;
fail:
    dispatch_free(d);
    return NULL;
}

void dispatch_get_stats(const dispatch_t *d, dispatch_stats_t *out) { *out = d->st; }

const dispatch_topic_stats_t *dispatch_topic_stats(const dispatch_t *d, size_t *n) {
    *n = d->topic_cnt;
    return d->topics;
}

void dispatch_set_kafka_stats_cb(dispatch_t *d, dispatch_kafka_stats_cb cb, void *arg) {
    d->kafka_stats_cb = cb;
    d->kafka_stats_arg = arg;
}

spool_t *dispatch_spool(dispatch_t *d) { return d->spool; }
producer_t *dispatch_producer(dispatch_t *d) { return d->producer; }

void dispatch_free(dispatch_t *d) {
    if (!d)
        return;
    d->stopping = 1;
    d->freeing = 1;
    d->stopped = NULL;
    if (d->producer) {
        /* Any report still owed arrives here; live events are all answered by now, drain
         * records are nacked (they stay in the spool). */
        producer_flush(d->producer, 2000);
        producer_free(d->producer);
    }
    if (d->worker_started) {
        /* The worker finishes the job it holds, then leaves. */
        pthread_mutex_lock(&d->wmu);
        d->wquit = 1;
        pthread_cond_signal(&d->wcv);
        pthread_mutex_unlock(&d->wmu);
        pthread_join(d->worker, NULL);
    }
    if (d->sync_inflight) {
        spool_sync_end(d->spool, &d->job);
        d->sync_inflight = 0;
    }
    /* Normally empty by now (dispatch_shutdown answered everything); after a failed start or
     * an aborted run, free what is left without answering. */
    pending_t *p;
    while ((p = TAILQ_FIRST(&d->syncing)) != NULL) {
        TAILQ_REMOVE(&d->syncing, p, commit_link);
        p->in_commit = 0;
        if (p->in_live)
            live_unlink(d, p);
        msg_free(&p->msg);
        free(p);
    }
    while ((p = TAILQ_FIRST(&d->commit)) != NULL) {
        TAILQ_REMOVE(&d->commit, p, commit_link);
        p->in_commit = 0;
        if (p->in_live)
            live_unlink(d, p);
        msg_free(&p->msg);
        free(p);
    }
    while ((p = TAILQ_FIRST(&d->live)) != NULL) {
        live_unlink(d, p);
        msg_free(&p->msg);
        free(p);
    }
    if (d->ack_timer)
        event_free(d->ack_timer);
    if (d->commit_ev)
        event_free(d->commit_ev);
    if (d->synced_ev)
        event_free(d->synced_ev);
    if (d->wfd >= 0)
        close(d->wfd);
    pthread_mutex_destroy(&d->wmu);
    pthread_cond_destroy(&d->wcv);
    if (d->drain_timer)
        event_free(d->drain_timer);
    if (d->shutdown_timer)
        event_free(d->shutdown_timer);
    if (d->recreate_ev)
        event_free(d->recreate_ev);
    spool_close(d->spool);
    for (size_t i = 0; i < d->topic_cnt; i++)
        free(d->topics[i].topic);
    free(d->topics);
    free(d);
}
