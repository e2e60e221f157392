/* dispatch.c: Kafka-or-spool routing of accepted events, group commit, the spool drainer with
 * per-topic parking, and dead letters. */
#include "dispatch.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include "deadletter.h"
#include "hbtime.h"
#include "kerr.h"
#include "log.h"
#include "producer.h"
#include "topics.h"

enum item_kind { ITEM_LIVE = 1, ITEM_DRAIN = 2, ITEM_DLQ = 3 };

/* A live event: from submit until it is answered AND librdkafka has let go of it. */
typedef struct pending {
    enum item_kind kind; /* first: the producer opaque is a pending, drain_rec or dlq_rec */
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
    int64_t sent_ms;   /* Unix ms of this attempt */
    int64_t sent_mono; /* monotonic ms it went to librdkafka; 0: refused at once */
    int probe;         /* the probe of its parked topic */
    int in_waiting;    /* on dispatch.waiting: sent, not reported, not yet past the timeout */
    TAILQ_ENTRY(drain_rec) link;
} drain_rec_t;

/* A dead letter on its way to dead_letter.topic; the spool record seq is acked once it is
 * delivered there or stored in the folder. */
typedef struct dlq_rec {
    enum item_kind kind;
    msg_t msg;        /* the dead letter, addressed to dead_letter.topic */
    uint64_t seq;     /* of the original record in the spool */
    char *topic;      /* the original topic */
    const char *reason;
    int64_t sent_mono; /* monotonic ms it went to librdkafka */
    int probe;        /* the probe of the parked dead-letter topic */
} dlq_rec_t;

/* Attempts of a record that failed at least once (for hb_dlq_attempts and
 * hb_dlq_first_attempt_ms); sorted by seq, dropped once the record is acked or dead-lettered. */
typedef struct attempt {
    uint64_t seq;
    unsigned n;
    int64_t first_ms;
} attempt_t;

/* The request that brought a record (bridge.c adds this header; the spool keeps it), named in
 * the log lines about one event as the HTTP lines name it. NULL (logged as null) without one. */
static const char *request_id_of(const msg_t *m) {
    const msg_header_t *h = msg_header(m, MSG_HDR_REQUEST_ID);
    return h ? h->value : NULL;
}

TAILQ_HEAD(pending_list, pending);
TAILQ_HEAD(drain_list, drain_rec);

struct dispatch {
    struct event_base *base;
    producer_t *producer;
    spool_t *spool;
    char *spool_dir;
    int64_t ack_timeout_ms, commit_window_ms, shutdown_timeout_ms;
    uint64_t max_inflight, drain_max;

    struct pending_list live;    /* in send order = deadline order */
    struct pending_list commit;  /* appended to the spool, waiting for the next sync */
    struct pending_list syncing; /* covered by the sync in flight */
    struct event *ack_timer, *commit_ev, *recreate_ev, *shutdown_timer;
    struct event *park_timer;
    /* drain records sent and not reported, in send order: one not acknowledged within
     * producer.ack_timeout_ms parks its topic (librdkafka may hold a record of a topic it
     * cannot place for message.timeout.ms) */
    struct drain_list waiting;
    struct event *drain_timer;
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
    int recreating;

    /* per-topic isolation and dead letters */
    topics_t *topics;
    int64_t last_success_ms; /* monotonic, of the latest delivery Kafka acknowledged */
    char *dlq_topic;         /* NULL: dead letters go to the folder only */
    int64_t dlq_after_ms;    /* 0: parked topics wait */
    deadletter_t *folder;    /* opened at the first dead letter that needs it */
    attempt_t *attempts;
    size_t nattempts, capattempts;

    int stopping;
    int deadline_passed; /* the shutdown deadline passed: drain records no longer waited for */
    int stop_reported;   /* stopped() was called: submits are spooled and synced at once */
    int freeing; /* inside dispatch_free: outcomes are no longer reported */
    void (*stopped)(void *);
    void *stopped_arg;
    void (*idle_cb)(void *);
    void *idle_arg;

    dispatch_stats_t st;
    dispatch_topic_stats_t *tstats; /* see dispatch_topic_stats() */
    size_t tstat_cnt;
    dispatch_dl_stats_t *dlstats; /* see dispatch_deadletter_stats() */
    size_t dlstat_cnt;
    dispatch_kafka_stats_cb kafka_stats_cb;
    void *kafka_stats_arg;
};

static const int64_t lat_bounds[] = DISPATCH_LAT_BOUNDS;

static void drain_kick(dispatch_t *d);
static void check_stopped(dispatch_t *d);
static void park_timer_arm(dispatch_t *d);

/* The counters of topic, created on first sight; NULL when out of memory (not counted). */
static dispatch_topic_stats_t *topic_stats(dispatch_t *d, const char *topic) {
    for (size_t i = 0; i < d->tstat_cnt; i++)
        if (strcmp(d->tstats[i].topic, topic) == 0)
            return &d->tstats[i];
    if (d->tstat_cnt == DISPATCH_TOPICS_MAX)
        return &d->tstats[DISPATCH_TOPICS_MAX - 1]; /* the overflow entry, made below */
    const char *name = d->tstat_cnt == DISPATCH_TOPICS_MAX - 1 ? DISPATCH_TOPIC_OVERFLOW : topic;
    dispatch_topic_stats_t *grown = realloc(d->tstats, (d->tstat_cnt + 1) * sizeof *grown);
    if (!grown)
        return NULL;
    d->tstats = grown;
    dispatch_topic_stats_t *t = &d->tstats[d->tstat_cnt];
    memset(t, 0, sizeof *t);
    if (!(t->topic = strdup(name)))
        return NULL;
    d->tstat_cnt++;
    return t;
}

/* Counts one dead letter of topic for reason, stored in `to` ("topic" or "folder"). */
static void count_deadletter(dispatch_t *d, const char *topic, const char *reason,
                             const char *to) {
    d->st.deadlettered++;
    for (size_t i = 0; i < d->dlstat_cnt; i++) {
        dispatch_dl_stats_t *e = &d->dlstats[i];
        if ((strcmp(e->topic, topic) == 0 || d->dlstat_cnt == DISPATCH_TOPICS_MAX) &&
            strcmp(e->reason, reason) == 0 && strcmp(e->to, to) == 0) {
            e->count++;
            return;
        }
    }
    if (d->dlstat_cnt == DISPATCH_TOPICS_MAX)
        topic = DISPATCH_TOPIC_OVERFLOW; /* counted under a shared name from here on */
    dispatch_dl_stats_t *grown = realloc(d->dlstats, (d->dlstat_cnt + 1) * sizeof *grown);
    if (!grown)
        return;
    d->dlstats = grown;
    dispatch_dl_stats_t *e = &d->dlstats[d->dlstat_cnt];
    if (!(e->topic = strdup(topic)))
        return;
    e->reason = reason;
    e->to = to;
    e->count = 1;
    d->dlstat_cnt++;
}

/* ---- attempts of records that failed ------------------------------------------------------ */

static size_t attempt_lower(const dispatch_t *d, uint64_t seq) {
    size_t lo = 0, hi = d->nattempts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->attempts[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Record seq was tried once more, first at first_ms (if this is its first failure). */
static void attempt_note(dispatch_t *d, uint64_t seq, int64_t first_ms) {
    size_t i = attempt_lower(d, seq);
    if (i < d->nattempts && d->attempts[i].seq == seq) {
        d->attempts[i].n++;
        return;
    }
    if (d->nattempts == d->capattempts) {
        size_t cap = d->capattempts ? d->capattempts * 2 : 64;
        attempt_t *a = realloc(d->attempts, cap * sizeof *a);
        if (!a)
            return; /* only the header's count suffers */
        d->attempts = a;
        d->capattempts = cap;
    }
    memmove(d->attempts + i + 1, d->attempts + i, (d->nattempts - i) * sizeof *d->attempts);
    d->attempts[i] = (attempt_t){seq, 1, first_ms};
    d->nattempts++;
}

/* Takes seq's entry out: its attempts so far and first attempt time (0/now without one). */
static void attempt_take(dispatch_t *d, uint64_t seq, unsigned *n, int64_t *first_ms) {
    size_t i = attempt_lower(d, seq);
    if (i < d->nattempts && d->attempts[i].seq == seq) {
        *n = d->attempts[i].n;
        *first_ms = d->attempts[i].first_ms;
        memmove(d->attempts + i, d->attempts + i + 1,
                (d->nattempts - i - 1) * sizeof *d->attempts);
        d->nattempts--;
        return;
    }
    *n = 0;
    *first_ms = 0;
}

/* ---- answers --------------------------------------------------------------------------------- */

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

/* Arms ev to fire at due_mono (monotonic ms; at once when past). */
static void timer_at(struct event *ev, int64_t due_mono) {
    int64_t wait = due_mono - hbtime_mono_ms();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static void arm_ack_timer(dispatch_t *d) {
    pending_t *head = TAILQ_FIRST(&d->live);
    if (head)
        timer_at(d->ack_timer, head->deadline_ms);
    else
        evtimer_del(d->ack_timer);
}

static void commit_kick(dispatch_t *d);

/* Appends p to the spool; it is answered when the fdatasync of its batch returns, or at once
 * when the spool refuses it. Never frees p: the caller calls pending_maybe_free(). After the
 * stop was reported there is no loop iteration left to wait for: the sync runs here. */
static void to_spool(dispatch_t *d, pending_t *p) {
    uint64_t seq;
    hb_status_t st = spool_append(d->spool, &p->msg, &seq);
    if (st == HB_OK && d->stop_reported && (st = spool_sync(d->spool)) == HB_OK) {
        d->st.spooled++;
        dispatch_topic_stats_t *t = topic_stats(d, p->msg.topic);
        if (t)
            t->spooled++;
        answer(d, p, HB_OK);
        return;
    }
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
    /* The default policy, not the process's SCHED_BATCH (process.sched_batch): this thread
     * gates every spooled answer and hardly computes, so its two wake-ups per sync (a job, the
     * disk done) should preempt the loop, not wait for it to run out of work. On one core,
     * brokers down: 17,000 to 22,000 against 14,100 to 18,400 req/s in three interleaved
     * rounds. Any thread may lower its own policy from SCHED_BATCH, so this cannot fail. */
    struct sched_param sp = {.sched_priority = 0};
    pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
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
    pthread_setname_np(d->worker, "hb-spool-sync");
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
    /* Let the worker start the disk now. On a core it shares with the loop (a pinned or
     * CPU-limited container) it could otherwise wait for the loop to run out of work: the sync
     * would start only once the next batch of requests was parsed, and the group commit would
     * run one batch's CPU and one fdatasync in series instead of side by side (one core,
     * brokers down, the worker under SCHED_BATCH too: 12,100 to 12,500 against 13,900 to
     * 14,800 req/s). With the worker on another core this returns at once. */
    sched_yield();
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


/* ---- Kafka's state ---------------------------------------------------------------------------
 * kafka_up is 0 only when Kafka takes nothing at all: librdkafka says every broker is down, or a
 * record failed for a retriable reason (librdkafka gave up on it: a message timeout, a lost
 * connection) while no delivery of any topic succeeded within producer.ack_timeout_ms. Our own
 * ack timeout only parks the event's topic, and a refused topic says nothing about the rest. */

static void park_timer_arm(dispatch_t *d) {
    int64_t due = topics_next_due(d->topics);
    if (due >= 0)
        timer_at(d->park_timer, due);
    else
        evtimer_del(d->park_timer);
}

static void drain_timer_arm(dispatch_t *d) {
    drain_rec_t *head = TAILQ_FIRST(&d->waiting);
    if (head)
        timer_at(d->drain_timer, head->sent_mono + d->ack_timeout_ms);
    else
        evtimer_del(d->drain_timer);
}

static void waiting_remove(dispatch_t *d, drain_rec_t *r) {
    if (!r->in_waiting)
        return;
    int was_head = TAILQ_FIRST(&d->waiting) == r;
    TAILQ_REMOVE(&d->waiting, r, link);
    r->in_waiting = 0;
    if (was_head && !d->freeing)
        drain_timer_arm(d);
}

static void set_kafka_up(dispatch_t *d, int up) {
    if (up)
        d->st.kafka_error[0] = '\0'; /* Kafka acknowledged: what went wrong before is over */
    if (d->st.kafka_up == up)
        return;
    d->st.kafka_up = up;
    log_info("dispatch", up ? "kafka is accepting events" : "kafka is not accepting events",
             NULL);
    if (up && topics_retry_now(d->topics, hbtime_mono_ms()))
        park_timer_arm(d); /* their failure was most likely this outage: probe them now */
}

static void note_success(dispatch_t *d) {
    d->last_success_ms = hbtime_mono_ms();
    set_kafka_up(d, 1);
}

/* Nothing was delivered since sent_mono (the failed record's send): no evidence that Kafka
 * takes anything. 0: unknown (a refusal at once, our own timeout), which proves nothing. */
static int nothing_went_through(const dispatch_t *d, int64_t sent_mono) {
    return sent_mono > 0 && d->last_success_ms < sent_mono;
}

/* A record of topic, handed to librdkafka at sent_mono (0: unknown), failed with err (of
 * kind): park the topic (logged once, when it stops flowing); a retriable failure with nothing
 * of any topic delivered since that record was sent marks Kafka down as well. */
static void park_topic(dispatch_t *d, const char *topic, kerr_kind_t kind,
                       rd_kafka_resp_err_t err, const char *reason, int probe,
                       int64_t sent_mono) {
    /* An ack timeout alone proves nothing about the rest (sent_mono 0): one topic librdkafka
     * cannot place (unauthorised, missing) times out exactly like an outage would. */
    if (kind == KERR_RETRIABLE && nothing_went_through(d, sent_mono))
        set_kafka_up(d, 0);
    int rc = topics_park(d->topics, topic, kind, err, reason, probe, hbtime_mono_ms());
    if (rc == 1) {
        d->st.parked = topics_parked_count(d->topics);
        log_warn("dispatch", "topic parked: its events wait in the spool, other topics flow",
                 "topic", topic, "error", rd_kafka_err2name(err), "kind", kerr_kind_name(kind),
                 "reason", reason, NULL);
    } else if (rc == 2) {
        log_warn("dispatch", "parked topic: the cause is now known", "topic", topic, "error",
                 rd_kafka_err2name(err), "kind", kerr_kind_name(kind), "reason", reason, NULL);
    }
    park_timer_arm(d);
}

/* The probe of topic was delivered: it flows again, and the drain goes back for the records it
 * passed over. */
static void unpark_topic(dispatch_t *d, const char *topic) {
    topic_t *t = topics_get(d->topics, topic);
    int64_t since = t ? t->parked_since_ms : 0;
    if (topics_unpark(d->topics, topic) == 1) {
        d->st.parked = topics_parked_count(d->topics);
        log_info("dispatch", "topic flows again", "topic", topic, "#parked_ms",
                 (long long)(hbtime_mono_ms() - since), NULL);
        spool_rewind(d->spool);
    }
    park_timer_arm(d);
}

/* Probes due: PARKED topics become PROBING (one record each), topics parked past
 * dead_letter.after_s start going to the dead letters. */
static void on_park_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    if (topics_due(d->topics, hbtime_mono_ms(), d->dlq_after_ms))
        spool_rewind(d->spool);
    park_timer_arm(d);
    drain_kick(d);
}

/* Drain records not acknowledged in time park their topic: its other records wait, and its next
 * probe waits until librdkafka has reported on these. The records stay in flight. */
static void on_drain_timer(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    int64_t now = hbtime_mono_ms();
    drain_rec_t *r;
    while ((r = TAILQ_FIRST(&d->waiting)) != NULL && r->sent_mono + d->ack_timeout_ms <= now) {
        TAILQ_REMOVE(&d->waiting, r, link);
        r->in_waiting = 0;
        park_topic(d, r->msg.topic, KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TIMED_OUT,
                   "not acknowledged within producer.ack_timeout_ms", r->probe, 0);
    }
    drain_timer_arm(d);
}

/* ---- the live path --------------------------------------------------------------------------- */

/* Whether m must go to the spool rather than to Kafka: Kafka takes nothing, the producer is
 * being replaced, too much is in flight, or its topic is parked or has spooled records not yet
 * delivered (a live event would overtake them). */
static int must_spool(const dispatch_t *d, const msg_t *m) {
    if (!d->st.kafka_up || d->recreating || d->deadline_passed || d->stop_reported ||
        d->st.live_inflight >= d->max_inflight)
        return 1;
    if (topics_parked_count(d->topics)) {
        const topic_t *t = topics_get(d->topics, m->topic);
        if (t && t->state != TOPIC_FLOWING)
            return 1;
    }
    return spool_topic_pending(d->spool, m->topic) > 0;
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
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (must_spool(d, &p->msg) || producer_send(d->producer, &p->msg, p, &err) != HB_OK) {
        const char *reason;
        kerr_kind_t kind = kerr_classify(err, &reason);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && (kind == KERR_TOPIC || kind == KERR_RETRIABLE) &&
            err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            park_topic(d, p->msg.topic, kind, err, reason, 0, 0);
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

/* Kafka did not acknowledge in time: make the events safe in the spool and park their topics
 * (new events of those topics are then spooled at once, not after another timeout). Their
 * delivery reports still come later; a success then is a counted duplicate. */
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
            park_topic(d, p->msg.topic, KERR_RETRIABLE, RD_KAFKA_RESP_ERR__TIMED_OUT,
                       "not acknowledged within producer.ack_timeout_ms", 0, 0);
            to_spool(d, p);
            n++;
        }
    }
    if (n)
        log_warn("dispatch", "kafka did not acknowledge in time: events spooled", "#events",
                 (long long)n, NULL);
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

static void live_delivered(dispatch_t *d, pending_t *p, rd_kafka_resp_err_t err) {
    p->in_kafka = 0;
    int was_head = TAILQ_FIRST(&d->live) == p;
    live_unlink(d, p);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        note_success(d);
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
    } else if (!p->answered && !p->in_commit) {
        /* Spooled whatever the kind: a record Kafka refuses for good is dead-lettered by the
         * drain, which owns that path. */
        const char *reason;
        kerr_kind_t kind = kerr_classify(err, &reason);
        log_warn("dispatch", "delivery failed: event spooled", "id", p->msg.id, "request_id",
                 request_id_of(&p->msg), "topic", p->msg.topic, "error",
                 rd_kafka_err2name(err), "kind", kerr_kind_name(kind), NULL);
        if (!d->recreating && (kind == KERR_TOPIC || kind == KERR_RETRIABLE))
            park_topic(d, p->msg.topic, kind, err, reason, 0, p->sent_ms);
        to_spool(d, p);
    }
    if (was_head)
        arm_ack_timer(d);
    pending_maybe_free(p);
}

/* Record seq of topic is back from librdkafka (or its dead letter is settled): acked in the
 * spool (ack 1) or due again (0). A parked topic's probe waits until none of its records is out,
 * and the drain passes over its records meanwhile; when the last one comes back, the cursor
 * goes back for them (once per topic, not once per record). */
static void spool_done(dispatch_t *d, const char *topic, uint64_t seq, int ack) {
    if (ack)
        spool_ack(d->spool, seq);
    else
        spool_nack(d->spool, seq);
    if (topics_parked_count(d->topics) && spool_topic_inflight(d->spool, topic) == 0) {
        const topic_t *t = topics_get(d->topics, topic);
        if (t && t->state != TOPIC_FLOWING)
            spool_rewind(d->spool);
    }
}

/* ---- dead letters ----------------------------------------------------------------------------- */

static void dispatch_idle_check(dispatch_t *d) {
    if (spool_pending(d->spool) == 0 && d->st.drain_inflight == 0) {
        log_info("dispatch", "spool drained", "#drained", (long long)d->st.drained,
                 "#dead_lettered", (long long)d->st.deadlettered, NULL);
        if (d->idle_cb)
            d->idle_cb(d->idle_arg);
    }
}

/* Keeps q's dead letter in <spool>/deadletter/ and acks the original; if even that fails, the
 * record stays in the spool and its topic is parked (retried later, never dropped). Frees q. */
static void dlq_to_folder(dispatch_t *d, dlq_rec_t *q, rd_kafka_resp_err_t err) {
    char ebuf[512] = "";
    hb_status_t st = HB_ERR_IO;
    char *orig = strdup(q->topic);
    if (orig) {
        free(q->msg.topic); /* in the folder, a record names its own topic */
        q->msg.topic = orig;
        if (!d->folder && !(d->folder = deadletter_open(d->spool_dir, ebuf, sizeof ebuf)))
            log_error("dispatch", "cannot open the dead-letter folder", "reason", ebuf, NULL);
        if (d->folder)
            st = deadletter_store(d->folder, &q->msg);
    }
    if (st == HB_OK) {
        spool_done(d, q->topic, q->seq, 1);
        count_deadletter(d, q->topic, q->reason, "folder");
        log_warn("dispatch", "event dead-lettered to the folder", "id", q->msg.id, "topic",
                 q->topic, "reason", q->reason, "#seq", (long long)q->seq, NULL);
        msg_free(&q->msg);
        free(q->topic);
        free(q);
        dispatch_idle_check(d);
        return;
    } else {
        log_error("dispatch", "cannot store a dead letter: the event stays in the spool", "id",
                  q->msg.id, "topic", q->topic, "reason", hb_status_str(st), NULL);
        spool_done(d, q->topic, q->seq, 0);
        park_topic(d, q->topic, KERR_RETRIABLE, err, "the dead-letter folder refused a record",
                   0, 0);
    }
    msg_free(&q->msg);
    free(q->topic);
    free(q);
}

/* Record r can never be published to its topic (err, for reason): it goes to the dead-letter
 * topic, or the folder. attempted: r was tried just now (it counts as an attempt). Frees r. */
static void dead_letter(dispatch_t *d, drain_rec_t *r, rd_kafka_resp_err_t err,
                        const char *reason, int attempted) {
    unsigned n;
    int64_t first;
    attempt_take(d, r->seq, &n, &first);
    if (attempted)
        n++;
    if (!first)
        first = r->sent_ms;
    dlq_rec_t *q = calloc(1, sizeof *q);
    const char *to = d->dlq_topic ? d->dlq_topic : r->msg.topic;
    if (!q || !(q->topic = strdup(r->msg.topic)) ||
        deadletter_build(&q->msg, &r->msg, to, err, reason, n, first) != 0) {
        log_error("dispatch", "out of memory building a dead letter: the event stays in the "
                              "spool", "topic", r->msg.topic, NULL);
        if (q)
            free(q->topic);
        free(q);
        park_topic(d, r->msg.topic, KERR_RETRIABLE, err, reason, 0, 0);
        spool_done(d, r->msg.topic, r->seq, 0);
        msg_free(&r->msg);
        free(r);
        return;
    }
    q->kind = ITEM_DLQ;
    q->seq = r->seq;
    q->reason = reason;
    msg_free(&r->msg);
    free(r);
    if (d->dlq_topic && strcmp(q->topic, d->dlq_topic) != 0 && !d->stopping &&
        !topics_blocked(d->topics, d->dlq_topic)) {
        topic_t *t = topics_get(d->topics, d->dlq_topic);
        if (t && t->state == TOPIC_PROBING) {
            t->probe_out = 1;
            q->probe = 1;
        }
        rd_kafka_resp_err_t e2 = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (producer_send(d->producer, &q->msg, q, &e2) == HB_OK) {
            q->sent_mono = hbtime_mono_ms();
            d->st.drain_inflight++;
            return;
        }
        const char *r2;
        kerr_kind_t k2 = kerr_classify(e2, &r2);
        if (k2 == KERR_TOPIC || k2 == KERR_RETRIABLE)
            park_topic(d, d->dlq_topic, k2, e2, r2, q->probe, 0);
    }
    dlq_to_folder(d, q, err);
}

static void dlq_delivered(dispatch_t *d, dlq_rec_t *q, rd_kafka_resp_err_t err) {
    d->st.drain_inflight--;
    if (d->freeing) {
        /* Stopping for good: no folder write now; the record stays in the spool. */
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            spool_ack(d->spool, q->seq);
        else
            spool_nack(d->spool, q->seq);
        msg_free(&q->msg);
        free(q->topic);
        free(q);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *reason;
        kerr_kind_t kind = kerr_classify(err, &reason);
        log_warn("dispatch", "the dead-letter topic refused a record: it goes to the folder",
                 "topic", d->dlq_topic, "error", rd_kafka_err2name(err), NULL);
        if (kind == KERR_TOPIC || kind == KERR_RETRIABLE)
            park_topic(d, d->dlq_topic, kind, err, reason, q->probe, q->sent_mono);
        dlq_to_folder(d, q, err);
        return;
    }
    note_success(d);
    if (q->probe)
        unpark_topic(d, d->dlq_topic);
    spool_done(d, q->topic, q->seq, 1);
    count_deadletter(d, q->topic, q->reason, "topic");
    log_warn("dispatch", "event dead-lettered", "id", q->msg.id, "topic", q->topic,
             "dead_letter_topic", d->dlq_topic, "reason", q->reason, "#seq", (long long)q->seq,
             NULL);
    msg_free(&q->msg);
    free(q->topic);
    free(q);
    dispatch_idle_check(d);
}

/* ---- the drain --------------------------------------------------------------------------------- */

/* A drain record failed (err): dead letter, or back to the spool with its topic parked.
 * Takes r, which was counted in drain_inflight. */
static void drain_failed(dispatch_t *d, drain_rec_t *r, rd_kafka_resp_err_t err) {
    const char *reason;
    kerr_kind_t kind = kerr_classify(err, &reason);
    d->st.drain_inflight--;
    if (kind == KERR_RECORD && !d->freeing) {
        if (r->sent_mono)
            set_kafka_up(d, 1); /* a broker answered: Kafka is there, this record is not */
        if (r->probe)
            unpark_topic(d, r->msg.topic); /* the topic takes records, only not this one */
        log_warn("dispatch", "kafka refused a record for good: dead-lettering it", "id",
                 r->msg.id, "topic", r->msg.topic, "error", rd_kafka_err2name(err), "reason",
                 reason, "#seq", (long long)r->seq, NULL);
        dead_letter(d, r, err, reason, 1);
        return;
    }
    attempt_note(d, r->seq, r->sent_ms);
    if (!d->freeing && !d->recreating && kind != KERR_FATAL) {
        park_topic(d, r->msg.topic, kind == KERR_TOPIC ? KERR_TOPIC : KERR_RETRIABLE, err,
                   reason, r->probe, r->sent_mono);
        if (err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)
            producer_refresh_topic(d->producer, r->msg.topic);
    }
    spool_done(d, r->msg.topic, r->seq, 0); /* after the park: the rewind sees it */
    /* The probe is back: the next one must start from the oldest record again (the drain
     * passed over the topic's others while it was out). */
    if (r->probe)
        spool_rewind(d->spool);
    msg_free(&r->msg);
    free(r);
}

static void drain_delivered(dispatch_t *d, drain_rec_t *r, rd_kafka_resp_err_t err) {
    waiting_remove(d, r);
    if (r->probe) {
        topic_t *t = topics_get(d->topics, r->msg.topic);
        if (t)
            t->probe_out = 0;
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        drain_failed(d, r, err);
        return;
    }
    d->st.drain_inflight--;
    unsigned n;
    int64_t first;
    attempt_take(d, r->seq, &n, &first);
    spool_done(d, r->msg.topic, r->seq, 1);
    d->st.drained++;
    if (!d->freeing) {
        note_success(d);
        if (r->probe)
            unpark_topic(d, r->msg.topic);
        dispatch_idle_check(d);
    }
    msg_free(&r->msg);
    free(r);
}

/* The drain's filter (spool_next_skip): records of a parked topic wait, except its one probe,
 * and except when it is parked past dead_letter.after_s (they are handed out to be
 * dead-lettered). */
static int drain_skip(void *arg, const char *topic) {
    const dispatch_t *d = arg;
    const topic_t *t = topics_get(d->topics, topic);
    if (!t || t->state == TOPIC_FLOWING)
        return 0;
    /* The probe goes once nothing of the topic is out: an older record still in librdkafka
     * could otherwise fail after a newer one of its key went through. */
    if (t->state == TOPIC_PROBING && !t->probe_out &&
        spool_topic_inflight(d->spool, topic) == 0)
        return 0;
    return !t->expired;
}

/* Republishes spooled records, oldest first, of every topic not parked: up to drain_max at once
 * while Kafka is up, one at a time while it is down (the delivery report is the wake-up). */
static void drain_kick(dispatch_t *d) {
    if (d->recreating || d->stopping)
        return;
    uint64_t limit = d->st.kafka_up ? d->drain_max : 1;
    while (d->st.drain_inflight < limit) {
        /* Every unacked record in flight: nothing to hand out (the common case, on every
         * delivery report), and no record to allocate for it. */
        if (spool_pending(d->spool) <= spool_inflight(d->spool))
            return;
        drain_rec_t *r = calloc(1, sizeof *r);
        if (!r)
            return;
        r->kind = ITEM_DRAIN;
        spool_skip_fn skip = topics_parked_count(d->topics) ? drain_skip : NULL;
        if (spool_next_skip(d->spool, skip, d, &r->msg, &r->seq) != HB_OK) {
            free(r);
            return;
        }
        r->sent_ms = hbtime_now_ms();
        topic_t *t = skip ? topics_get(d->topics, r->msg.topic) : NULL;
        if (t && t->state == TOPIC_PROBING && !t->probe_out &&
            spool_topic_inflight(d->spool, r->msg.topic) == 1 /* this one */) {
            t->probe_out = 1;
            r->probe = 1;
        } else if (t && t->state != TOPIC_FLOWING) {
            /* parked past dead_letter.after_s */
            dead_letter(d, r, t->err, t->reason, 0);
            continue;
        }
        rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
        hb_status_t st = producer_send(d->producer, &r->msg, r, &err);
        d->st.drain_inflight++;
        if (st == HB_OK) {
            r->sent_mono = hbtime_mono_ms();
            r->in_waiting = 1;
            TAILQ_INSERT_TAIL(&d->waiting, r, link);
            if (TAILQ_FIRST(&d->waiting) == r)
                drain_timer_arm(d);
            continue;
        }
        if (st == HB_ERR_NOSPACE) {
            /* librdkafka's queue is full: the next delivery report kicks again. */
            d->st.drain_inflight--;
            if (t && r->probe) {
                t->probe_out = 0;
                spool_rewind(d->spool);
            }
            spool_nack(d->spool, r->seq);
            msg_free(&r->msg);
            free(r);
            return;
        }
        drain_failed(d, r, err); /* refused at once (a topic librdkafka knows to be missing) */
    }
}

static void on_delivered(void *arg, void *opaque, rd_kafka_resp_err_t err, unsigned gen) {
    (void)gen;
    dispatch_t *d = arg;
    switch (*(enum item_kind *)opaque) {
    case ITEM_DRAIN:
        drain_delivered(d, opaque, err);
        break;
    case ITEM_DLQ:
        dlq_delivered(d, opaque, err);
        break;
    default:
        live_delivered(d, opaque, err);
        break;
    }
    if (d->freeing)
        return;
    drain_kick(d);
    check_stopped(d);
}

static void on_recreate(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    dispatch_t *d = arg;
    char err[512];
    /* Purged deliveries come back with errors inside producer_recreate: live events are
     * spooled, drain records go back to the spool (no topic is parked for a purge). */
    if (producer_recreate(d->producer, err, sizeof err) != HB_OK)
        log_error("dispatch", "cannot recreate the producer", "reason", err, NULL);
    d->st.recreated++;
    d->recreating = 0;
    spool_rewind(d->spool);
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
        /* A broker state change shows here too: while Kafka takes nothing, probe now rather
         * than at the next backoff (a probe is one record). */
        if (!d->st.kafka_up && strstr(reason, "\"state\":\"UP\"") &&
            topics_retry_now(d->topics, hbtime_mono_ms()))
            park_timer_arm(d);
        break;
    default:
        break;
    }
}

/* ---- stopping --------------------------------------------------------------------------------- */

static void check_stopped(dispatch_t *d) {
    if (!d->stopping || !d->stopped)
        return;
    if (!TAILQ_EMPTY(&d->live) || !TAILQ_EMPTY(&d->commit) || !TAILQ_EMPTY(&d->syncing) ||
        d->sync_inflight || (d->st.drain_inflight > 0 && !d->deadline_passed))
        return;
    void (*cb)(void *) = d->stopped;
    d->stopped = NULL;
    d->stop_reported = 1;
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
    evtimer_del(d->park_timer);
    evtimer_del(d->drain_timer);
    struct timeval tv = {(time_t)(d->shutdown_timeout_ms / 1000),
                         (suseconds_t)(d->shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(d->shutdown_timer, &tv);
    check_stopped(d);
}

/* ---- life ------------------------------------------------------------------------------------- */

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
    d->dlq_after_ms = cfg->dead_letter_after_s * 1000;
    d->st.kafka_up = 1; /* optimistic until a failure says otherwise */
    TAILQ_INIT(&d->live);
    TAILQ_INIT(&d->commit);
    TAILQ_INIT(&d->syncing);
    TAILQ_INIT(&d->waiting);
    d->wfd = -1;
    pthread_mutex_init(&d->wmu, NULL);
    pthread_cond_init(&d->wcv, NULL);
    d->ack_timer = evtimer_new(base, on_ack_timeout, d);
    d->commit_ev = event_new(base, -1, 0, on_commit, d);
    d->park_timer = evtimer_new(base, on_park_timer, d);
    d->drain_timer = evtimer_new(base, on_drain_timer, d);
    d->shutdown_timer = evtimer_new(base, on_shutdown_timeout, d);
    d->recreate_ev = event_new(base, -1, 0, on_recreate, d);
    d->topics = topics_new();
    d->spool_dir = strdup(cfg->spool_dir);
    if (cfg->dead_letter_topic && *cfg->dead_letter_topic)
        d->dlq_topic = strdup(cfg->dead_letter_topic);
    if (!d->ack_timer || !d->commit_ev || !d->park_timer || !d->drain_timer ||
        !d->shutdown_timer || !d->recreate_ev || !d->topics || !d->spool_dir ||
        (cfg->dead_letter_topic && *cfg->dead_letter_topic && !d->dlq_topic)) {
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
    *n = d->tstat_cnt;
    return d->tstats;
}

const dispatch_dl_stats_t *dispatch_deadletter_stats(const dispatch_t *d, size_t *n) {
    *n = d->dlstat_cnt;
    return d->dlstats;
}

size_t dispatch_parked(const dispatch_t *d, size_t i, const char **topic, const char **reason,
                       const char **error, int64_t *since_ms) {
    size_t k = 0;
    for (size_t j = 0; j < topics_count(d->topics); j++) {
        const topic_t *t = topics_at(d->topics, j);
        if (t->state == TOPIC_FLOWING)
            continue;
        if (k++ != i)
            continue;
        *topic = t->name;
        *reason = t->reason;
        *error = rd_kafka_err2name(t->err);
        *since_ms = t->parked_since_ms;
        return 1;
    }
    return 0;
}

void dispatch_set_kafka_stats_cb(dispatch_t *d, dispatch_kafka_stats_cb cb, void *arg) {
    d->kafka_stats_cb = cb;
    d->kafka_stats_arg = arg;
}

void dispatch_set_idle_cb(dispatch_t *d, void (*cb)(void *arg), void *arg) {
    d->idle_cb = cb;
    d->idle_arg = arg;
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
    if (d->park_timer)
        event_free(d->park_timer);
    if (d->drain_timer)
        event_free(d->drain_timer);
    if (d->shutdown_timer)
        event_free(d->shutdown_timer);
    if (d->recreate_ev)
        event_free(d->recreate_ev);
    spool_close(d->spool);
    deadletter_close(d->folder);
    topics_free(d->topics);
    for (size_t i = 0; i < d->tstat_cnt; i++)
        free(d->tstats[i].topic);
    free(d->tstats);
    for (size_t i = 0; i < d->dlstat_cnt; i++)
        free(d->dlstats[i].topic);
    free(d->dlstats);
    free(d->attempts);
    free(d->spool_dir);
    free(d->dlq_topic);
    free(d);
}
