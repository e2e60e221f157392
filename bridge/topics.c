/* topics.c: per-topic park state and backoffs (see topics.h). */
#include "topics.h"

#include <stdlib.h>
#include <string.h>

struct topics {
    topic_t **v; /* each entry allocated alone: pointers stay valid as the table grows */
    size_t n, cap;
    size_t parked; /* entries not FLOWING */
};

topics_t *topics_new(void) { return calloc(1, sizeof(topics_t)); }

void topics_free(topics_t *ts) {
    if (!ts)
        return;
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->v[i]->name);
        free(ts->v[i]);
    }
    free(ts->v);
    free(ts);
}

topic_t *topics_get(const topics_t *ts, const char *name) {
    /* Linear: the table holds only topics that were refused at least once, a handful. */
    for (size_t i = 0; i < ts->n; i++)
        if (strcmp(ts->v[i]->name, name) == 0)
            return ts->v[i];
    return NULL;
}

int topics_blocked(const topics_t *ts, const char *name) {
    if (!ts->parked)
        return 0;
    const topic_t *t = topics_get(ts, name);
    return t && (t->state == TOPIC_PARKED || (t->state == TOPIC_PROBING && t->probe_out));
}

size_t topics_parked_count(const topics_t *ts) { return ts->parked; }

static topic_t *topics_add(topics_t *ts, const char *name) {
    topic_t *t = topics_get(ts, name);
    if (t)
        return t;
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 8;
        topic_t **v = realloc(ts->v, cap * sizeof *v);
        if (!v)
            return NULL;
        ts->v = v;
        ts->cap = cap;
    }
    if (!(t = calloc(1, sizeof *t)) || !(t->name = strdup(name))) {
        free(t);
        return NULL;
    }
    ts->v[ts->n++] = t;
    return t;
}

int topics_park(topics_t *ts, const char *name, kerr_kind_t kind, rd_kafka_resp_err_t err,
                const char *reason, int probe, int64_t now_ms) {
    topic_t *t = topics_get(ts, name);
    if (t && (t->state == TOPIC_PARKED || (t->state == TOPIC_PROBING && !probe)))
        return 0; /* parked already; a record sent before the park came back */
    if (!t && !(t = topics_add(ts, name)))
        return -1;
    int64_t lo = kind == KERR_TOPIC ? TOPICS_REFUSED_MIN_MS : TOPICS_RETRY_MIN_MS;
    int64_t hi = kind == KERR_TOPIC ? TOPICS_REFUSED_MAX_MS : TOPICS_RETRY_MAX_MS;
    int was_flowing = t->state == TOPIC_FLOWING;
    int rc = was_flowing ? 1 : t->kind != kind ? 2 : 0;
    if (was_flowing) {
        ts->parked++;
        t->parked_since_ms = now_ms;
        t->backoff_ms = lo;
        t->expired = 0;
    } else {
        t->backoff_ms = t->backoff_ms * 2; /* the probe failed */
    }
    if (t->backoff_ms < lo)
        t->backoff_ms = lo;
    if (t->backoff_ms > hi)
        t->backoff_ms = hi;
    t->state = TOPIC_PARKED;
    t->probe_out = 0;
    t->kind = kind;
    t->err = err;
    t->reason = reason;
    t->next_probe_ms = now_ms + t->backoff_ms;
    return rc;
}

int topics_unpark(topics_t *ts, const char *name) {
    topic_t *t = topics_get(ts, name);
    if (!t || t->state == TOPIC_FLOWING)
        return 0;
    t->state = TOPIC_FLOWING;
    t->probe_out = 0;
    t->expired = 0;
    t->backoff_ms = 0;
    ts->parked--;
    return 1;
}

size_t topics_due(topics_t *ts, int64_t now_ms, int64_t after_ms) {
    size_t changed = 0;
    for (size_t i = 0; i < ts->n; i++) {
        topic_t *t = ts->v[i];
        if (t->state == TOPIC_FLOWING)
            continue;
        if (after_ms > 0 && !t->expired && t->kind == KERR_TOPIC &&
            now_ms - t->parked_since_ms >= after_ms) {
            t->expired = 1;
            changed++;
        }
        if (t->state == TOPIC_PARKED && t->next_probe_ms <= now_ms) {
            t->state = TOPIC_PROBING;
            t->probe_out = 0;
            changed++;
        }
    }
    return changed;
}

size_t topics_retry_now(topics_t *ts, int64_t now_ms) {
    size_t n = 0;
    for (size_t i = 0; i < ts->n; i++) {
        topic_t *t = ts->v[i];
        if (t->state == TOPIC_PARKED && t->kind == KERR_RETRIABLE && t->next_probe_ms > now_ms) {
            t->next_probe_ms = now_ms;
            n++;
        }
    }
    return n;
}

int64_t topics_next_due(const topics_t *ts) {
    int64_t due = -1;
    for (size_t i = 0; i < ts->n; i++)
        if (ts->v[i]->state == TOPIC_PARKED && (due < 0 || ts->v[i]->next_probe_ms < due))
            due = ts->v[i]->next_probe_ms;
    return due;
}

size_t topics_count(const topics_t *ts) { return ts->n; }
const topic_t *topics_at(const topics_t *ts, size_t i) { return i < ts->n ? ts->v[i] : NULL; }
