/* deadletter.c: dead-letter records, their folder, and the list/replay tools. */
#include "deadletter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "spool.h"

struct deadletter {
    spool_t *spool;
};

int deadletter_build(msg_t *out, const msg_t *orig, const char *topic, rd_kafka_resp_err_t err,
                     const char *reason, unsigned attempts, int64_t first_attempt_ms) {
    char num[32], first[32];
    memset(out, 0, sizeof *out);
    if (msg_copy(out, orig) != 0)
        return -1;
    char *t = strdup(topic);
    if (!t)
        goto fail;
    free(out->topic);
    out->topic = t;
    snprintf(num, sizeof num, "%u", attempts);
    snprintf(first, sizeof first, "%" PRId64, first_attempt_ms);
    const char *name = rd_kafka_err2name(err);
    if (msg_add_header(out, DEADLETTER_HDR_TOPIC, orig->topic, strlen(orig->topic)) != 0 ||
        msg_add_header(out, DEADLETTER_HDR_ERROR, name, strlen(name)) != 0 ||
        msg_add_header(out, DEADLETTER_HDR_REASON, reason, strlen(reason)) != 0 ||
        msg_add_header(out, DEADLETTER_HDR_ATTEMPTS, num, strlen(num)) != 0 ||
        msg_add_header(out, DEADLETTER_HDR_FIRST, first, strlen(first)) != 0)
        goto fail;
    return 0;
fail:
    msg_free(out);
    return -1;
}

static int folder_path(const char *spool_dir, char *out, size_t len) {
    return snprintf(out, len, "%s/%s", spool_dir, DEADLETTER_DIR) < (int)len ? 0 : -1;
}

deadletter_t *deadletter_open(const char *spool_dir, char *errstr, size_t errlen) {
    char path[4200];
    deadletter_t *dl = calloc(1, sizeof *dl);
    if (!dl || folder_path(spool_dir, path, sizeof path) != 0) {
        snprintf(errstr, errlen, "dead-letter folder: out of memory or path too long");
        free(dl);
        return NULL;
    }
    spool_opts_t so = {.dir = path};
    if (!(dl->spool = spool_open(&so, errstr, errlen))) {
        free(dl);
        return NULL;
    }
    return dl;
}

hb_status_t deadletter_store(deadletter_t *dl, const msg_t *m) {
    hb_status_t st = spool_append(dl->spool, m, NULL);
    if (st != HB_OK)
        return st;
    return spool_sync(dl->spool);
}

uint64_t deadletter_records(const deadletter_t *dl) { return dl ? spool_pending(dl->spool) : 0; }

void deadletter_close(deadletter_t *dl) {
    if (!dl)
        return;
    spool_close(dl->spool);
    free(dl);
}

/* ---- the CLI ---------------------------------------------------------------------------------- */

static const char *header_or(const msg_t *m, const char *name, const char *def) {
    const msg_header_t *h = msg_header(m, name);
    return h ? h->value : def;
}

/* Prints untrusted text on one line: printable ASCII as is, the rest as \xHH, capped. */
static void put_text(FILE *out, const char *p, size_t n) {
    size_t cap = n > 80 ? 80 : n;
    for (size_t i = 0; i < cap; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            fputc(c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
    if (cap < n)
        fputs("...", out);
}

typedef struct list_ctx {
    FILE *out;
    uint64_t n;
} list_ctx_t;

static void list_one(void *arg, uint64_t seq, const msg_t *m) {
    list_ctx_t *c = arg;
    const char *topic = header_or(m, DEADLETTER_HDR_TOPIC, m->topic);
    const char *reason = header_or(m, DEADLETTER_HDR_REASON, "");
    c->n++;
    fprintf(c->out, "seq=%" PRIu64 " topic=\"", seq);
    put_text(c->out, topic, strlen(topic));
    fputs("\" key=", c->out);
    if (m->key) {
        fputc('"', c->out);
        put_text(c->out, m->key, m->key_len);
        fputc('"', c->out);
    } else {
        fputs("(none)", c->out);
    }
    fprintf(c->out, " id=%s error=%s attempts=%s first_attempt_ms=%s accept_ms=%" PRId64
                    " value_bytes=%zu reason=\"",
            m->id[0] ? m->id : "-", header_or(m, DEADLETTER_HDR_ERROR, "-"),
            header_or(m, DEADLETTER_HDR_ATTEMPTS, "-"), header_or(m, DEADLETTER_HDR_FIRST, "-"),
            m->accept_ms, m->value_len);
    put_text(c->out, reason, strlen(reason));
    fputs("\"\n", c->out);
}

int deadletter_list(const char *spool_dir, FILE *out, FILE *err) {
    char path[4200];
    if (folder_path(spool_dir, path, sizeof path) != 0) {
        fprintf(err, "hookbridge: spool directory path too long\n");
        return 2;
    }
    list_ctx_t c = {out, 0};
    int rc = spool_scan(path, list_one, &c);
    if (rc == 2) {
        fprintf(err, "hookbridge: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    fprintf(out, "summary dead_letters=%" PRIu64 " folder=%s%s\n", c.n, path,
            rc == 1 ? " status=corrupt (run: hookbridge spool verify FOLDER)" : " status=ok");
    return 0;
}

/* m without its hb_dlq_* headers, for its original topic. Returns 0 or -1 (out of memory). */
static int strip_dlq(msg_t *out, const msg_t *m) {
    msg_t tmp = *m;
    tmp.headers = NULL;
    tmp.header_cnt = 0;
    if (msg_copy(out, &tmp) != 0)
        return -1;
    for (size_t i = 0; i < m->header_cnt; i++) {
        const msg_header_t *h = &m->headers[i];
        if (strncmp(h->name, DEADLETTER_HDR_PREFIX, strlen(DEADLETTER_HDR_PREFIX)) == 0)
            continue;
        if (msg_add_header(out, h->name, h->value, h->value_len) != 0) {
            msg_free(out);
            return -1;
        }
    }
    return 0;
}

int deadletter_replay(const char *spool_dir, FILE *out, FILE *err) {
    char e1[512] = "", path[4200];
    int rc = 1;
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    spool_t *dl = NULL;
    if (folder_path(spool_dir, path, sizeof path) != 0) {
        fprintf(err, "hookbridge: spool directory path too long\n");
        return 1;
    }
    /* The main spool first: its lock says whether a daemon runs on it. */
    spool_opts_t so = {.dir = spool_dir};
    spool_t *main_spool = spool_open(&so, e1, sizeof e1);
    if (!main_spool) {
        fprintf(err, "hookbridge: cannot replay: %s\n", e1);
        return 1;
    }
    spool_opts_t dso = {.dir = path};
    if (!(dl = spool_open(&dso, e1, sizeof e1))) {
        fprintf(err, "hookbridge: cannot replay: %s\n", e1);
        goto done;
    }
    for (;;) {
        msg_t m, back;
        uint64_t seq;
        hb_status_t st = spool_next(dl, &m, &seq);
        if (st == HB_ERR_EOF)
            break;
        if (st != HB_OK) {
            fprintf(err, "hookbridge: cannot read %s: %s\n", path, hb_status_str(st));
            goto done;
        }
        if (strip_dlq(&back, &m) != 0) {
            msg_free(&m);
            fprintf(err, "hookbridge: out of memory\n");
            goto done;
        }
        msg_free(&m);
        st = spool_append(main_spool, &back, NULL);
        msg_free(&back);
        if (st != HB_OK) {
            fprintf(err, "hookbridge: cannot append to %s: %s (nothing removed from %s)\n",
                    spool_dir, hb_status_str(st), path);
            goto done;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 256;
            uint64_t *v = realloc(seqs, nc * sizeof *v);
            if (!v) {
                fprintf(err, "hookbridge: out of memory\n");
                goto done;
            }
            seqs = v;
            cap = nc;
        }
        seqs[n++] = seq;
    }
    /* Durable in the spool first, then gone from the folder: a crash in between replays
     * twice, never loses. */
    if (n && spool_sync(main_spool) != HB_OK) {
        fprintf(err, "hookbridge: cannot sync %s (nothing removed from %s)\n", spool_dir, path);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        spool_ack(dl, seqs[i]);
    fprintf(out, "replayed %zu dead letter%s into %s; a daemon on it publishes them\n", n,
            n == 1 ? "" : "s", spool_dir);
    rc = 0;
done:
    free(seqs);
    spool_close(dl);
    spool_close(main_spool);
    return rc;
}
