/* spool.c: the crash-safe on-disk queue (segments of CRC'd records, checkpoint, recovery). */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define SEG_MAGIC 0x53424889u  /* bytes 89 48 42 53 */
#define REC_MAGIC 0x5242489Eu  /* bytes 9E 48 42 52 */
#define CKPT_MAGIC 0x43424889u /* bytes 89 48 42 43 */
#define NO_KEY 0xFFFFFFFFu

#define DEF_MAX_BYTES (1ull << 30)
#define DEF_SEG_BYTES (64ull << 20)
/* Keeps every record offset far below what a segment scan or a uint32 length could overflow. */
#define MAX_SEG_BYTES (1ull << 30)
/* Checkpoints cost two fsyncs; one per this many acks bounds both that cost and the replay
 * after a crash. */
#define CKPT_EVERY 1024
#define RBUF_MIN (256u << 10)
#define SEG_NAME_LEN 32
#define CKPT_NAME "checkpoint"
#define CKPT_TMP_NAME "checkpoint.tmp"
#define LOCK_NAME "lock"
#define QUAR_NAME "quarantine"

/* Drain state of one seq in the window. ABSENT: no such record (dropped, quarantined, or a seq
 * that was never written). */
enum { ST_ABSENT = 0, ST_PENDING, ST_INFLIGHT, ST_RETRY, ST_ACKED };

typedef struct win_ent {
    uint64_t off;      /* record offset in its segment */
    int64_t accept_ms; /* for stats.oldest_accept_ms without a disk read */
    uint32_t st;
    uint32_t topic;    /* index into spool.topics (fits the padding: no extra memory) */
} win_ent_t;

/* One topic named by a record: the name and how many of its records are unacked. Entries live
 * as long as the spool_t (a topic is named by at most as many records as were ever spooled);
 * the hash maps a name to its entry without a scan. */
typedef struct spool_topic {
    char *name;
    uint64_t pending;  /* unacked */
    uint64_t inflight; /* of those, handed out and neither acked nor nacked */
} spool_topic_t;

typedef struct seg {
    uint64_t base;  /* seq in the file name */
    uint64_t size;  /* bytes on disk */
    uint64_t total; /* records it holds that the spool tracks (acked or not) */
    uint64_t acked;
} seg_t;

/* A record decoded in place: pointers into the buffer that holds it. */
typedef struct rec_view {
    uint64_t seq;
    int64_t accept_ms;
    const unsigned char *topic, *id, *key, *hdrs, *value;
    uint32_t topic_len, id_len, key_len, header_cnt, value_len;
    int has_key;
} rec_view_t;

struct spool {
    char *dir;
    int dirfd, lockfd, qfd;
    uint64_t max_bytes, min_free, seg_bytes, prealloc;
    spool_io_t io;
    /* min_free's view of the filesystem: the room above min_free at the last fstatvfs, what was
     * appended since, and the accept_ms of the append that read it (free_space_ok) */
    uint64_t free_room, free_used;
    int64_t free_at_ms;
    int free_known;

    seg_t *segs; /* sorted by base; the active (writable) one is the last when wfd >= 0 */
    size_t nseg, capseg;
    uint64_t bytes;

    /* writer */
    int wfd;
    uint64_t wsynced;  /* active segment's size at its last good sync (0: never synced) */
    uint64_t wfile;    /* active segment's file size: its records, then the zeros written
                        * ahead of them (prealloc), which later records overwrite in place */
    int wprep_off;     /* zero-filling failed in this segment: records are appended plainly */
    int dirty;         /* records appended since the last sync */
    int dir_dirty;     /* a segment was created since the last sync */
    int sync_err;      /* records of this batch were already dropped: next sync must fail */
    uint64_t drops;    /* drop_unsynced calls: a sync job that saw one begin after it fails */
    unsigned char *wb; /* encode buffer */
    size_t wbcap;
    uint64_t next_seq, durable_next;

    /* window: the state of every seq in [win_base, win_base + win_len), from the low-water
     * mark up; entries live at win[win_start ..]. */
    win_ent_t *win;
    size_t win_start, win_len, win_cap;
    uint64_t win_base;
    uint64_t records, inflight;

    /* nacked seqs, sorted, handed out again before the cursor moves on */
    uint64_t *retry;
    size_t nretry, capretry;

    /* drain cursor and its read cache */
    uint64_t cur;
    int rfd;
    uint64_t rbase;
    unsigned char *rbuf;
    size_t rcap, rlen;
    uint64_t roff;

    uint64_t ckpt_lw, ckpt_next;
    unsigned acks_since_ckpt;
    spool_stats_t st;

    /* topics of the records, see spool_topic_t; hash: open addressing over indices + 1 */
    spool_topic_t *topics;
    size_t ntopics, captopics;
    uint32_t *thash;
    size_t thash_cap; /* a power of two, kept at least twice ntopics */
};

/* ---- little-endian helpers -------------------------------------------------------------- */

static void put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint16_t get16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const unsigned char *p) {
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void seg_name(uint64_t base, char out[SEG_NAME_LEN]) {
    snprintf(out, SEG_NAME_LEN, "%020" PRIu64 ".seg", base);
}

/* 1 and *base set when name is exactly 20 digits and ".seg". */
static int seg_name_parse(const char *name, uint64_t *base) {
    if (strlen(name) != 24 || strcmp(name + 20, ".seg") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *base = v;
    return 1;
}

/* ---- format: parse and check (shared by recovery, the drain and spool_inspect) ----------- */

/* Checks a body of len bytes and fills v with pointers into it. Every length is compared with
 * the bytes still left before it is used, so no corrupt length can read out of bounds. */
static hb_status_t body_parse(const unsigned char *b, size_t len, rec_view_t *v,
                              const char **why) {
    if (len < SPOOL_BODY_FIXED) {
        *why = "body shorter than its fixed part";
        return HB_ERR_CORRUPT;
    }
    memset(v, 0, sizeof *v);
    v->seq = get64(b);
    v->accept_ms = (int64_t)get64(b + 8);
    v->value_len = get32(b + 16);
    v->key_len = get32(b + 20);
    v->topic_len = get16(b + 24);
    v->header_cnt = get16(b + 26);
    v->id_len = b[28];
    if (v->id_len > MSG_ID_LEN || b[29] || b[30] || b[31]) {
        *why = "bad id length or reserved bytes";
        return HB_ERR_CORRUPT;
    }
    v->has_key = v->key_len != NO_KEY;
    if (!v->has_key)
        v->key_len = 0;

    size_t left = len - SPOOL_BODY_FIXED;
    const unsigned char *p = b + SPOOL_BODY_FIXED;
    if ((size_t)v->topic_len + v->id_len > left || v->key_len > left - v->topic_len - v->id_len) {
        *why = "topic, id or key length past the body";
        return HB_ERR_CORRUPT;
    }
    v->topic = p;
    v->id = p + v->topic_len;
    v->key = v->id + v->id_len;
    p = v->key + v->key_len;
    left -= (size_t)v->topic_len + v->id_len + v->key_len;
    if (memchr(v->topic, 0, v->topic_len)) {
        *why = "NUL in topic";
        return HB_ERR_CORRUPT;
    }

    v->hdrs = p;
    for (uint32_t i = 0; i < v->header_cnt; i++) {
        if (left < 6) {
            *why = "header past the body";
            return HB_ERR_CORRUPT;
        }
        size_t nl = get16(p), vl = get32(p + 2);
        left -= 6;
        p += 6;
        if (nl > left || vl > left - nl) {
            *why = "header length past the body";
            return HB_ERR_CORRUPT;
        }
        if (memchr(p, 0, nl)) {
            *why = "NUL in header name";
            return HB_ERR_CORRUPT;
        }
        p += nl + vl;
        left -= nl + vl;
    }
    if (v->value_len != left) {
        *why = "value length does not match the body";
        return HB_ERR_CORRUPT;
    }
    v->value = p;
    return HB_OK;
}

/* Checks the record at p (avail bytes readable). HB_ERR_TRUNCATED: it does not fit in avail
 * (a torn write, if nothing valid follows); HB_ERR_CORRUPT: magic, length, CRC or body bad. */
static hb_status_t rec_check(const unsigned char *p, size_t avail, size_t *rec_len, rec_view_t *v,
                             const char **why) {
    if (avail < SPOOL_REC_FRAME_LEN) {
        *why = "record frame cut short";
        return HB_ERR_TRUNCATED;
    }
    if (get32(p) != REC_MAGIC) {
        *why = "bad record magic";
        return HB_ERR_CORRUPT;
    }
    uint32_t len = get32(p + 4);
    if (len < SPOOL_BODY_FIXED || len > SPOOL_RECORD_MAX) {
        *why = "record length out of bounds";
        return HB_ERR_CORRUPT;
    }
    if ((size_t)len > avail - SPOOL_REC_FRAME_LEN) {
        *why = "record cut short";
        return HB_ERR_TRUNCATED;
    }
    uint32_t crc = crc32c_update(crc32c(p + 4, 4), p + SPOOL_REC_FRAME_LEN, len);
    if (crc != get32(p + 8)) {
        *why = "record crc mismatch";
        return HB_ERR_CORRUPT;
    }
    *rec_len = SPOOL_REC_FRAME_LEN + (size_t)len;
    return body_parse(p + SPOOL_REC_FRAME_LEN, len, v, why);
}

/* Checks a segment header against the base seq in the file name. */
static hb_status_t seg_hdr_check(const unsigned char *p, size_t size, uint64_t name_base,
                                 const char **why) {
    if (size < SPOOL_SEG_HDR_LEN) {
        *why = "segment header cut short";
        return HB_ERR_TRUNCATED;
    }
    if (get32(p) != SEG_MAGIC) {
        *why = "bad segment magic";
        return HB_ERR_CORRUPT;
    }
    /* Version before CRC: another version may lay the header out differently. */
    if (get16(p + 4) != SPOOL_FORMAT_VERSION) {
        *why = "unknown segment version";
        return HB_ERR_VERSION;
    }
    if (crc32c(p, 16) != get32(p + 16)) {
        *why = "segment header crc mismatch";
        return HB_ERR_CORRUPT;
    }
    if (get16(p + 6) != 0 || get64(p + 8) != name_base) {
        *why = "segment header does not match its name";
        return HB_ERR_CORRUPT;
    }
    return HB_OK;
}

typedef struct scan_ops {
    void (*record)(void *ctx, uint64_t off, size_t len, const rec_view_t *v);
    void (*corrupt)(void *ctx, uint64_t off, uint64_t end, const char *why);
    void (*torn)(void *ctx, uint64_t off, const char *why);
} scan_ops_t;

/* Offset of the next record magic at or after from whose record checks out with a seq above
 * prev; 0 when there is none. */
static size_t scan_resync(const unsigned char *p, size_t size, size_t from, uint64_t prev) {
    static const unsigned char magic[4] = {0x9E, 0x48, 0x42, 0x52};
    while (from + SPOOL_REC_FRAME_LEN <= size) {
        const unsigned char *hit = memmem(p + from, size - from, magic, sizeof magic);
        if (!hit)
            return 0;
        size_t at = (size_t)(hit - p), rl;
        rec_view_t v;
        const char *why;
        if (rec_check(hit, size - at, &rl, &v, &why) == HB_OK && v.seq > prev)
            return at;
        from = at + 1;
    }
    return 0;
}

/* Where the zeros that end [from, size) begin (size: none). */
static size_t zeros_from(const unsigned char *p, size_t from, size_t size) {
    while (size > from && p[size - 1] == 0)
        size--;
    return size;
}

/* Walks the records after a good header. A bad record followed by a good one is corrupt (it
 * is reported and skipped); a bad record with nothing good after it is the torn tail; zeros
 * from there to the end are the room written ahead of the records (seg_prealloc), not a tear.
 * Returns where the records end: size, or where those zeros begin. Every step moves forward,
 * so this ends on any input. */
static size_t seg_scan(const unsigned char *p, size_t size, uint64_t base, const scan_ops_t *ops,
                       void *ctx) {
    size_t off = SPOOL_SEG_HDR_LEN;
    uint64_t prev = base ? base - 1 : 0;
    int first = 1;
    while (off < size) {
        size_t rl = 0;
        rec_view_t v;
        const char *why = NULL;
        hb_status_t r = rec_check(p + off, size - off, &rl, &v, &why);
        if (r == HB_OK && (first ? v.seq < base : v.seq <= prev)) {
            r = HB_ERR_CORRUPT;
            why = "record seq out of order";
        }
        if (r == HB_OK) {
            ops->record(ctx, off, rl, &v);
            prev = v.seq;
            first = 0;
            off += rl;
            continue;
        }
        if (zeros_from(p, off, size) == off)
            return off;
        size_t next = scan_resync(p, size, off + 1, first ? (base ? base - 1 : 0) : prev);
        if (!next) {
            ops->torn(ctx, off, why);
            return size;
        }
        ops->corrupt(ctx, off, next, why);
        off = next;
    }
    return size;
}

/* Maps a whole file read-only; *map = NULL for an empty file. */
static int map_file(int fd, const unsigned char **map, size_t *size) {
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return -1;
    *size = (size_t)sb.st_size;
    *map = NULL;
    if (sb.st_size == 0)
        return 0;
    void *m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return -1;
    *map = m;
    return 0;
}

/* ---- I/O helpers ---------------------------------------------------------------------------- */

/* Writes all of p through the hook; returns 0, or -1 with *err set. A 0-byte write is an error
 * (EIO) so a broken hook cannot make this loop forever. */
static int io_write_all(const spool_t *s, int fd, const unsigned char *p, size_t n, uint64_t off,
                        int *err) {
    while (n > 0) {
        ssize_t w = s->io.pwrite ? s->io.pwrite(fd, p, n, (off_t)off) : pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            *err = w < 0 ? errno : EIO;
            return -1;
        }
        p += w;
        off += (uint64_t)w;
        n -= (size_t)w;
    }
    return 0;
}

static hb_status_t errno_status(int e) {
    return (e == ENOSPC || e == EDQUOT) ? HB_ERR_NOSPACE : HB_ERR_IO;
}

/* Makes renames, creations and deletions in the spool directory durable. */
static int dir_sync(spool_t *s, const char *why) {
    if (fsync(s->dirfd) != 0) {
        int e = errno;
        log_error("spool", "directory fsync failed", "dir", s->dir, "after", why, "error",
                  strerror(e), NULL);
        return -1;
    }
    return 0;
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

static uint64_t low_water(const spool_t *s) { return s->win_len ? s->win_base : s->next_seq; }

/* Write temp, fsync, rename, fsync the directory: a crash leaves the old or the new checkpoint,
 * never a torn one, and the rename itself survives power loss only with the directory fsync. */
static hb_status_t ckpt_write(spool_t *s) {
    unsigned char b[SPOOL_CKPT_LEN];
    uint64_t lw = low_water(s);
    int fd = -1, e = 0;
    const char *step = NULL;
    hb_status_t rc = HB_ERR_IO;

    put32(b, CKPT_MAGIC);
    put16(b + 4, SPOOL_FORMAT_VERSION);
    put16(b + 6, 0);
    put64(b + 8, lw);
    put64(b + 16, s->next_seq);
    put32(b + 24, crc32c(b, 24));

    fd = openat(s->dirfd, CKPT_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        e = errno, step = "open";
        goto done;
    }
    size_t off = 0;
    while (off < sizeof b) {
        ssize_t w = write(fd, b + off, sizeof b - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO, step = "write";
            goto done;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        e = errno, step = "fsync";
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        e = errno, step = "close";
        goto done;
    }
    fd = -1;
    if (renameat(s->dirfd, CKPT_TMP_NAME, s->dirfd, CKPT_NAME) != 0) {
        e = errno, step = "rename";
        goto done;
    }
    if (dir_sync(s, "checkpoint rename") != 0)
        goto done;
    s->ckpt_lw = lw;
    s->ckpt_next = s->next_seq;
    s->acks_since_ckpt = 0;
    rc = HB_OK;
done:
    if (fd >= 0)
        close(fd);
    if (step)
        log_error("spool", "checkpoint write failed", "dir", s->dir, "step", step, "error",
                  strerror(e), NULL);
    return rc;
}

/* Reads the checkpoint; a missing one is fine, a corrupt one is logged and ignored (that only
 * costs replays). */
static void ckpt_read(spool_t *s) {
    unsigned char b[SPOOL_CKPT_LEN + 1];
    int fd = openat(s->dirfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            log_error("spool", "cannot open checkpoint", "dir", s->dir, "error",
                      strerror(errno), NULL);
        return;
    }
    ssize_t n = pread(fd, b, sizeof b, 0);
    int e = errno;
    close(fd);
    const char *why = NULL;
    if (n < 0)
        why = strerror(e);
    else if (n != SPOOL_CKPT_LEN)
        why = "wrong size";
    else if (get32(b) != CKPT_MAGIC)
        why = "bad magic";
    else if (get16(b + 4) != SPOOL_FORMAT_VERSION)
        why = "unknown version";
    else if (crc32c(b, 24) != get32(b + 24))
        why = "crc mismatch";
    else if (get64(b + 8) > get64(b + 16))
        why = "low-water above next seq";
    if (why) {
        log_error("spool", "checkpoint unreadable, ignored (records may replay)", "dir", s->dir,
                  "reason", why, NULL);
        return;
    }
    s->ckpt_lw = get64(b + 8);
    s->ckpt_next = get64(b + 16);
}

/* ---- topics ---------------------------------------------------------------------------------- */

static uint64_t topic_hash(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int topic_grow_hash(spool_t *s) {
    size_t cap = s->thash_cap ? s->thash_cap * 2 : 64;
    uint32_t *h = calloc(cap, sizeof *h);
    if (!h)
        return -1;
    for (size_t i = 0; i < s->ntopics; i++) {
        const char *n = s->topics[i].name;
        size_t j = (size_t)topic_hash((const unsigned char *)n, strlen(n)) & (cap - 1);
        while (h[j])
            j = (j + 1) & (cap - 1);
        h[j] = (uint32_t)i + 1;
    }
    free(s->thash);
    s->thash = h;
    s->thash_cap = cap;
    return 0;
}

/* The index of topic name[0..len), or UINT32_MAX when it is unknown. */
static uint32_t topic_find(const spool_t *s, const unsigned char *name, size_t len) {
    if (!s->thash_cap)
        return UINT32_MAX;
    size_t j = (size_t)topic_hash(name, len) & (s->thash_cap - 1);
    while (s->thash[j]) {
        const spool_topic_t *t = &s->topics[s->thash[j] - 1];
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0)
            return s->thash[j] - 1;
        j = (j + 1) & (s->thash_cap - 1);
    }
    return UINT32_MAX;
}

/* The index of topic name[0..len), added when new; UINT32_MAX when out of memory. */
static uint32_t topic_intern(spool_t *s, const unsigned char *name, size_t len) {
    uint32_t i = topic_find(s, name, len);
    if (i != UINT32_MAX)
        return i;
    if (s->ntopics >= UINT32_MAX - 1)
        return UINT32_MAX;
    if ((s->ntopics + 1) * 2 > s->thash_cap && topic_grow_hash(s) != 0)
        return UINT32_MAX;
    if (s->ntopics == s->captopics) {
        size_t cap = s->captopics ? s->captopics * 2 : 16;
        spool_topic_t *t = realloc(s->topics, cap * sizeof *t);
        if (!t)
            return UINT32_MAX;
        s->topics = t;
        s->captopics = cap;
    }
    char *copy = strndup((const char *)name, len);
    if (!copy)
        return UINT32_MAX;
    i = (uint32_t)s->ntopics++;
    s->topics[i] = (spool_topic_t){copy, 0, 0};
    size_t j = (size_t)topic_hash(name, len) & (s->thash_cap - 1);
    while (s->thash[j])
        j = (j + 1) & (s->thash_cap - 1);
    s->thash[j] = i + 1;
    return i;
}

/* A record of entry e stopped being unacked (acked, dropped or quarantined). */
static void topic_done(spool_t *s, const win_ent_t *e) {
    if (e->topic < s->ntopics && s->topics[e->topic].pending > 0)
        s->topics[e->topic].pending--;
}

uint64_t spool_topic_pending(const spool_t *s, const char *topic) {
    if (!s || !topic)
        return 0;
    uint32_t i = topic_find(s, (const unsigned char *)topic, strlen(topic));
    return i == UINT32_MAX ? 0 : s->topics[i].pending;
}

uint64_t spool_topic_inflight(const spool_t *s, const char *topic) {
    if (!s || !topic)
        return 0;
    uint32_t i = topic_find(s, (const unsigned char *)topic, strlen(topic));
    return i == UINT32_MAX ? 0 : s->topics[i].inflight;
}

/* Entry e's record went out (delta 1) or came back (-1). */
static void topic_inflight(spool_t *s, const win_ent_t *e, int delta) {
    if (e->topic < s->ntopics && (delta > 0 || s->topics[e->topic].inflight > 0))
        s->topics[e->topic].inflight += (uint64_t)(int64_t)delta;
}

size_t spool_topic_count(const spool_t *s) { return s ? s->ntopics : 0; }

const char *spool_topic_at(const spool_t *s, size_t i, uint64_t *pending) {
    if (!s || i >= s->ntopics)
        return NULL;
    if (pending)
        *pending = s->topics[i].pending;
    return s->topics[i].name;
}

/* ---- window ---------------------------------------------------------------------------------- */

static win_ent_t *win_get(spool_t *s, uint64_t seq) {
    if (seq < s->win_base || seq - s->win_base >= s->win_len)
        return NULL;
    return &s->win[s->win_start + (seq - s->win_base)];
}

/* Room for seq (and the ABSENT gap before it) at the end, without writing anything, so an
 * append can fail on memory before it touches the disk. */
static hb_status_t win_reserve(spool_t *s, uint64_t seq) {
    uint64_t need = s->win_len ? seq - s->win_base + 1 : 1;
    if (need > SIZE_MAX / sizeof(win_ent_t) - s->win_start)
        return HB_ERR_NOMEM;
    if (s->win_start > 0 && s->win_start >= s->win_len) {
        /* Reclaim the acked prefix; amortised O(1) because it runs once the dead part is at
         * least as long as the live one. */
        memmove(s->win, s->win + s->win_start, s->win_len * sizeof *s->win);
        s->win_start = 0;
    }
    if (s->win_start + need <= s->win_cap)
        return HB_OK;
    size_t cap = s->win_cap ? s->win_cap : 1024;
    while (cap < s->win_start + need)
        cap *= 2;
    win_ent_t *w = realloc(s->win, cap * sizeof *w);
    if (!w)
        return HB_ERR_NOMEM;
    s->win = w;
    s->win_cap = cap;
    return HB_OK;
}

/* Adds seq (above every seq in the window) after win_reserve(seq) succeeded; topic is an
 * index from topic_intern(). */
static void win_push(spool_t *s, uint64_t seq, uint64_t off, int64_t accept_ms,
                     uint32_t topic) {
    if (s->win_len == 0) {
        s->win_start = 0;
        s->win_base = seq;
    }
    while (s->win_base + s->win_len < seq)
        s->win[s->win_start + s->win_len++] = (win_ent_t){0, 0, ST_ABSENT, UINT32_MAX};
    s->win[s->win_start + s->win_len++] = (win_ent_t){off, accept_ms, ST_PENDING, topic};
    s->topics[topic].pending++;
}

/* Drops acked/absent entries at both ends: the front is then the low-water mark. */
static void win_trim(spool_t *s) {
    while (s->win_len > 0 && (s->win[s->win_start].st == ST_ABSENT ||
                              s->win[s->win_start].st == ST_ACKED)) {
        s->win_start++;
        s->win_base++;
        s->win_len--;
    }
    while (s->win_len > 0 && s->win[s->win_start + s->win_len - 1].st == ST_ABSENT)
        s->win_len--;
    if (s->win_len == 0)
        s->win_start = 0;
}

/* ---- segments ---------------------------------------------------------------------------------- */

static long seg_find(const spool_t *s, uint64_t seq) {
    size_t lo = 0, hi = s->nseg;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].base <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? (long)lo - 1 : -1;
}

static hb_status_t seg_reserve(spool_t *s) {
    if (s->nseg < s->capseg)
        return HB_OK;
    size_t cap = s->capseg ? s->capseg * 2 : 16;
    seg_t *g = realloc(s->segs, cap * sizeof *g);
    if (!g)
        return HB_ERR_NOMEM;
    s->segs = g;
    s->capseg = cap;
    return HB_OK;
}

static int seg_is_active(const spool_t *s, size_t idx) {
    return s->wfd >= 0 && idx + 1 == s->nseg;
}

/* Deletes segment idx from disk and from the list. The checkpoint is brought up to next_seq
 * first: once the segment holding the highest seq is gone, only the checkpoint keeps seqs from
 * being reused after a restart. */
static void seg_delete(spool_t *s, size_t idx) {
    char name[SEG_NAME_LEN];
    seg_t *g = &s->segs[idx];
    seg_name(g->base, name);
    if (s->ckpt_next < s->next_seq || s->ckpt_lw < low_water(s))
        ckpt_write(s);
    if (s->rfd >= 0 && s->rbase == g->base) {
        close(s->rfd);
        s->rfd = -1;
        s->rlen = 0;
    }
    if (unlinkat(s->dirfd, name, 0) != 0) {
        int e = errno;
        log_error("spool", "cannot delete acked segment", "segment", name, "error", strerror(e),
                  NULL);
    } else {
        dir_sync(s, "segment delete");
    }
    s->bytes -= g->size;
    memmove(g, g + 1, (s->nseg - idx - 1) * sizeof *g);
    s->nseg--;
}

static void seg_maybe_delete(spool_t *s, size_t idx) {
    if (!seg_is_active(s, idx) && s->segs[idx].acked == s->segs[idx].total)
        seg_delete(s, idx);
}

/* Creates the segment whose first record will be base and makes it the active one. */
static hb_status_t seg_create(spool_t *s, uint64_t base) {
    char name[SEG_NAME_LEN];
    unsigned char h[SPOOL_SEG_HDR_LEN];
    int fd = -1, e = 0;
    hb_status_t rc = seg_reserve(s);
    if (rc != HB_OK)
        return rc;
    seg_name(base, name);
    /* O_TRUNC, not O_EXCL: a file of that name can only be a leftover that holds no live record,
     * since base is above every seq found at open. No O_APPEND: records are written at their
     * offset, over the zeros written ahead of them. */
    fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        e = errno;
        rc = errno_status(e);
        log_error("spool", "cannot create segment", "segment", name, "error", strerror(e), NULL);
        goto fail;
    }
    put32(h, SEG_MAGIC);
    put16(h + 4, SPOOL_FORMAT_VERSION);
    put16(h + 6, 0);
    put64(h + 8, base);
    put32(h + 16, crc32c(h, 16));
    if (io_write_all(s, fd, h, sizeof h, 0, &e) != 0) {
        rc = errno_status(e);
        log_error("spool", "cannot write segment header", "segment", name, "error", strerror(e),
                  NULL);
        goto fail;
    }
    s->segs[s->nseg++] = (seg_t){base, SPOOL_SEG_HDR_LEN, 0, 0};
    s->bytes += SPOOL_SEG_HDR_LEN;
    s->wfd = fd;
    s->wsynced = 0;
    s->wfile = SPOOL_SEG_HDR_LEN;
    s->wprep_off = 0;
    s->dir_dirty = 1;
    return HB_OK;
fail:
    if (fd >= 0) {
        close(fd);
        unlinkat(s->dirfd, name, 0);
    }
    return rc;
}

/* 1 when a record ending at end in the active segment makes seg_prealloc write zeros. */
static int prealloc_due(const spool_t *s, uint64_t end) {
    return s->prealloc && !s->wprep_off && end > s->wfile;
}

/* Zero-fills the active segment ahead of end (the end of the record about to be written), up
 * to s->prealloc bytes past it, within the segment's size: a record is then written over blocks
 * the file already has, and the fdatasync of its batch writes the data alone, not the inode and
 * the block allocation of the file's growth (or, where ext4 has a journal, its commit): about
 * half the time on the bench's disk. The growth is made durable once
 * per prealloc bytes, by the next sync. Zeros are written, not fallocate()d: an unwritten extent
 * would need that commit on every first write into it. A failure (a full disk) only ends the
 * zero-filling in this segment; the record's own write then reports it. */
static void seg_prealloc(spool_t *s, uint64_t end) {
    static const unsigned char zeros[64 << 10];
    if (!prealloc_due(s, end))
        return;
    uint64_t want = end + s->prealloc, cap = s->seg_bytes > end ? s->seg_bytes : end;
    if (want > cap)
        want = cap;
    int e = 0;
    while (s->wfile < want) {
        uint64_t n = want - s->wfile > sizeof zeros ? sizeof zeros : want - s->wfile;
        if (io_write_all(s, s->wfd, zeros, (size_t)n, s->wfile, &e) != 0) {
            /* Cut back whatever part of the zeros did land: the file ends at the records. */
            s->wprep_off = 1;
            s->wfile = s->segs[s->nseg - 1].size;
            if (ftruncate(s->wfd, (off_t)s->wfile) != 0)
                s->wfile = want; /* unknown: zeros may stay; records still go at their offset */
            return;
        }
        s->wfile += n;
    }
}

/* Cuts the zeros past the active segment's last record off its file (best effort, no fsync:
 * zeros left by a crash are a clean end to recovery too). */
static void seg_trim(spool_t *s) {
    if (s->wfd < 0)
        return;
    uint64_t size = s->segs[s->nseg - 1].size;
    if (s->wfile > size && ftruncate(s->wfd, (off_t)size) == 0)
        s->wfile = size;
}

/* The sync-failure rule of spool.h: records since the last good sync are forgotten, the active
 * segment is cut back to its last synced size (best effort: pages the kernel failed to write
 * must not resurface as records whose requests got an error) and closed. */
static void drop_unsynced(spool_t *s) {
    s->drops++;
    for (uint64_t q = s->durable_next; q < s->next_seq; q++) {
        win_ent_t *e = win_get(s, q);
        if (!e || e->st != ST_PENDING)
            continue;
        e->st = ST_ABSENT;
        s->records--;
        topic_done(s, e);
        long gi = seg_find(s, q);
        if (gi >= 0)
            s->segs[gi].total--;
    }
    win_trim(s);
    if (s->wfd >= 0) {
        seg_t *g = &s->segs[s->nseg - 1];
        char name[SEG_NAME_LEN];
        seg_name(g->base, name);
        if (g->size != s->wsynced || s->wfile > g->size) {
            s->wfile = s->wsynced;
            if (ftruncate(s->wfd, (off_t)s->wsynced) != 0) {
                int e = errno;
                log_error("spool", "cannot cut unsynced records off segment", "segment", name,
                          "error", strerror(e), NULL);
            }
            s->bytes -= g->size - s->wsynced;
            g->size = s->wsynced;
        }
        close(s->wfd);
        s->wfd = -1;
        if (g->size == 0) {
            /* Never synced: an empty husk with no header. */
            g->total = g->acked = 0;
        }
        seg_maybe_delete(s, s->nseg - 1);
    }
    s->durable_next = s->next_seq;
    s->dirty = 0;
    s->dir_dirty = 0;
}

/* ---- open and recovery ------------------------------------------------------------------------ */

static int quar_open(spool_t *s) {
    if (s->qfd >= 0)
        return 0;
    if (mkdirat(s->dirfd, QUAR_NAME, 0750) == 0)
        dir_sync(s, "quarantine mkdir");
    else if (errno != EEXIST)
        goto fail;
    s->qfd = openat(s->dirfd, QUAR_NAME, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->qfd < 0)
        goto fail;
    return 0;
fail:
    log_error("spool", "cannot open quarantine directory", "dir", s->dir, "error",
              strerror(errno), NULL);
    return -1;
}

/* Copies corrupt bytes aside as <segment>.<offset>.rec. O_EXCL: the same bad record is seen
 * again at every open until its segment goes, and the first copy is the one to keep. */
static void quar_bytes(spool_t *s, const char *segname, uint64_t off, const unsigned char *p,
                       size_t n) {
    char name[SEG_NAME_LEN + 32];
    int e = 0;
    if (quar_open(s) != 0)
        return;
    snprintf(name, sizeof name, "%s.%" PRIu64 ".rec", segname, off);
    int fd = openat(s->qfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        if (errno != EEXIST) {
            e = errno;
            log_error("spool", "cannot write quarantine copy", "file", name, "error", strerror(e),
                      NULL);
        }
        return;
    }
    const unsigned char *q = p;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, q, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            break;
        }
        q += w;
        left -= (size_t)w;
    }
    if (!e && fsync(fd) != 0)
        e = errno;
    close(fd);
    if (e)
        log_error("spool", "cannot write quarantine copy", "file", name, "error", strerror(e),
                  NULL);
    else if (fsync(s->qfd) != 0)
        log_error("spool", "quarantine directory fsync failed", "dir", s->dir, NULL);
}

/* Moves a whole segment into quarantine without replacing an earlier file of the same name. */
static void quar_segment(spool_t *s, const char *name) {
    char dst[SEG_NAME_LEN + 16];
    if (quar_open(s) != 0)
        return;
    for (int i = 0; i < 1000; i++) {
        if (i == 0)
            snprintf(dst, sizeof dst, "%s", name);
        else
            snprintf(dst, sizeof dst, "%s.%d", name, i);
        if (renameat2(s->dirfd, name, s->qfd, dst, RENAME_NOREPLACE) == 0) {
            fsync(s->qfd);
            dir_sync(s, "segment quarantined");
            return;
        }
        if (errno != EEXIST)
            break;
    }
    log_error("spool", "cannot move segment to quarantine", "segment", name, "error",
              strerror(errno), NULL);
}

typedef struct open_scan {
    spool_t *s;
    const char *name;
    const unsigned char *map;
    size_t gi;          /* index of the segment being scanned */
    uint64_t max_seq;   /* highest seq seen anywhere, below the checkpoint or not */
    uint64_t torn_at;   /* 0: no torn tail */
    hb_status_t err;
} open_scan_t;

static void open_on_record(void *ctx, uint64_t off, size_t len, const rec_view_t *v) {
    open_scan_t *o = ctx;
    spool_t *s = o->s;
    (void)len;
    if (v->seq > o->max_seq)
        o->max_seq = v->seq;
    if (v->seq < s->ckpt_lw || o->err != HB_OK)
        return;
    uint32_t topic = topic_intern(s, v->topic, v->topic_len);
    if (topic == UINT32_MAX || win_reserve(s, v->seq) != HB_OK) {
        o->err = HB_ERR_NOMEM;
        return;
    }
    win_push(s, v->seq, off, v->accept_ms, topic);
    s->segs[o->gi].total++;
    s->records++;
    s->st.replayed++;
}

static void open_on_corrupt(void *ctx, uint64_t off, uint64_t end, const char *why) {
    open_scan_t *o = ctx;
    log_error("spool", "corrupt record quarantined", "segment", o->name, "#offset",
              (long long)off, "#length", (long long)(end - off), "reason", why, NULL);
    quar_bytes(o->s, o->name, off, o->map + off, (size_t)(end - off));
    o->s->st.quarantined++;
}

static void open_on_torn(void *ctx, uint64_t off, const char *why) {
    open_scan_t *o = ctx;
    o->torn_at = off;
    log_error("spool", "torn tail truncated", "segment", o->name, "#offset", (long long)off,
              "reason", why, NULL);
}

/* Recovers one segment: adds its live records to the window, or quarantines it whole. */
static hb_status_t open_segment(spool_t *s, const char *name, uint64_t base, uint64_t *max_seq) {
    const unsigned char *map = NULL;
    size_t size = 0;
    const char *why = NULL;
    hb_status_t rc = HB_OK;
    int fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0 || map_file(fd, &map, &size) != 0) {
        /* Not bad data but an unreadable file: leave it in place for a human. */
        log_error("spool", "cannot read segment, skipped", "segment", name, "error",
                  strerror(errno), NULL);
        s->st.quarantined++;
        goto done;
    }
    hb_status_t h = seg_hdr_check(map, size, base, &why);
    if (h == HB_OK && *max_seq >= base && *max_seq > 0) {
        h = HB_ERR_CORRUPT;
        why = "segment overlaps the previous one";
    }
    if (h != HB_OK) {
        log_error("spool", "segment quarantined", "segment", name, "#offset", 0LL, "reason", why,
                  NULL);
        quar_segment(s, name);
        s->st.quarantined++;
        goto done;
    }
    if ((rc = seg_reserve(s)) != HB_OK)
        goto done;
    s->segs[s->nseg] = (seg_t){base, size, 0, 0};
    open_scan_t o = {s, name, map, s->nseg, *max_seq, 0, HB_OK};
    s->nseg++;
    s->bytes += size;
    static const scan_ops_t ops = {open_on_record, open_on_corrupt, open_on_torn};
    size_t end = seg_scan(map, size, base, &ops, &o);
    if ((rc = o.err) != HB_OK)
        goto done;
    *max_seq = o.max_seq;
    /* Zeros after the last record: the active segment's room at a crash. No record will be
     * written there (appends go to a new segment): cut them off, silently, best effort. */
    if (end < size && ftruncate(fd, (off_t)end) == 0) {
        s->bytes -= size - end;
        s->segs[s->nseg - 1].size = end;
    }
    if (o.torn_at) {
        if (ftruncate(fd, (off_t)o.torn_at) != 0 || fsync(fd) != 0) {
            log_error("spool", "cannot truncate torn tail", "segment", name, "error",
                      strerror(errno), NULL);
        } else {
            s->st.truncated_bytes += size - o.torn_at;
            s->bytes -= size - o.torn_at;
            s->segs[s->nseg - 1].size = o.torn_at;
        }
    }
done:
    if (map)
        munmap((void *)map, size);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted bases of the segment files in dirfd. Returns 0, or -1 with errno set. */
static int list_segments(int dirfd, uint64_t **out, size_t *n) {
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    int dfd = dup(dirfd), e = 0;
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        e = errno;
        if (dfd >= 0)
            close(dfd);
        goto fail;
    }
    rewinddir(d);
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t base;
        if (!seg_name_parse(de->d_name, &base))
            continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                e = ENOMEM;
                closedir(d);
                goto fail;
            }
            v = nv;
            cap = nc;
        }
        v[cnt++] = base;
        errno = 0;
    }
    e = errno;
    closedir(d);
    if (e)
        goto fail;
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
fail:
    free(v);
    errno = e;
    return -1;
}

spool_t *spool_open(const spool_opts_t *opts, char *errstr, size_t errlen) {
    spool_t *s = NULL;
    uint64_t *bases = NULL;
    size_t nbases = 0;
    const char *what = NULL;
    int e = 0;

    if (!opts || !opts->dir || !*opts->dir) {
        snprintf(errstr, errlen, "spool: no directory given");
        return NULL;
    }
    if (!(s = calloc(1, sizeof *s)) || !(s->dir = strdup(opts->dir))) {
        e = ENOMEM, what = "out of memory";
        goto fail;
    }
    s->dirfd = s->lockfd = s->qfd = s->wfd = s->rfd = -1;
    s->max_bytes = opts->max_bytes ? opts->max_bytes : DEF_MAX_BYTES;
    s->min_free = opts->min_free_bytes;
    s->seg_bytes = opts->segment_bytes ? opts->segment_bytes : DEF_SEG_BYTES;
    if (s->seg_bytes > MAX_SEG_BYTES)
        s->seg_bytes = MAX_SEG_BYTES;
    s->prealloc = opts->prealloc_bytes;
    if (opts->io)
        s->io = *opts->io;

    if (mkdir(s->dir, 0750) != 0 && errno != EEXIST) {
        e = errno, what = "cannot create directory";
        goto fail;
    }
    if ((s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        e = errno, what = "cannot open directory";
        goto fail;
    }
    if ((s->lockfd = openat(s->dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC, 0640)) < 0) {
        e = errno, what = "cannot create lock file";
        goto fail;
    }
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        e = errno;
        what = e == EWOULDBLOCK ? "directory is locked by another spool (another hookbridge "
                                  "running on it?)"
                                : "cannot lock";
        goto fail;
    }
    /* A leftover temp is a checkpoint write that crashed before its rename: never valid. */
    unlinkat(s->dirfd, CKPT_TMP_NAME, 0);
    ckpt_read(s);

    if (list_segments(s->dirfd, &bases, &nbases) != 0) {
        e = errno, what = "cannot list directory";
        goto fail;
    }
    uint64_t max_seq = 0;
    for (size_t i = 0; i < nbases; i++) {
        char name[SEG_NAME_LEN];
        seg_name(bases[i], name);
        if (open_segment(s, name, bases[i], &max_seq) != HB_OK) {
            e = ENOMEM, what = "out of memory during recovery";
            goto fail;
        }
    }
    s->next_seq = max_seq + 1;
    if (s->ckpt_next > s->next_seq)
        s->next_seq = s->ckpt_next;
    s->durable_next = s->next_seq;
    win_trim(s);
    s->cur = low_water(s);

    /* Segments with nothing live (wholly below the checkpoint, emptied by quarantine, or only a
     * header) go now; seg_delete writes the checkpoint first when it is behind. */
    for (size_t i = s->nseg; i-- > 0;)
        seg_maybe_delete(s, i);

    s->rcap = RBUF_MIN;
    if (!(s->rbuf = malloc(s->rcap))) {
        e = ENOMEM, what = "out of memory";
        goto fail;
    }
    free(bases);
    log_info("spool", "opened", "dir", s->dir, "#records", (long long)s->records, "#segments",
             (long long)s->nseg, "#next_seq", (long long)s->next_seq, NULL);
    return s;
fail:
    snprintf(errstr, errlen, "spool %s: %s%s%s", opts->dir, what, e ? ": " : "",
             e ? strerror(e) : "");
    free(bases);
    if (s) {
        /* Nothing was changed that a checkpoint would need to record. */
        if (s->lockfd >= 0)
            close(s->lockfd);
        if (s->dirfd >= 0)
            close(s->dirfd);
        if (s->qfd >= 0)
            close(s->qfd);
        free(s->segs);
        free(s->win);
        free(s->dir);
        for (size_t i = 0; i < s->ntopics; i++)
            free(s->topics[i].name);
        free(s->topics);
        free(s->thash);
        free(s);
    }
    return NULL;
}

/* ---- append and sync --------------------------------------------------------------------------- */

/* Encodes m as the record for seq into s->wb. Returns its length, or 0 with *rc set. */
static size_t rec_encode(spool_t *s, const msg_t *m, uint64_t seq, hb_status_t *rc) {
    size_t tl = m->topic ? strlen(m->topic) : 0, il = strnlen(m->id, sizeof m->id);
    uint64_t body = SPOOL_BODY_FIXED + (uint64_t)tl + il + (m->key ? m->key_len : 0) +
                    m->value_len;
    *rc = HB_ERR_INVALID;
    if (!m->topic || tl > UINT16_MAX || il > MSG_ID_LEN || m->header_cnt > UINT16_MAX ||
        (m->key && m->key_len >= NO_KEY) || (m->value_len && !m->value) ||
        m->value_len > SPOOL_RECORD_MAX)
        return 0;
    for (size_t i = 0; i < m->header_cnt; i++) {
        size_t nl = m->headers[i].name_len;
        if (nl > UINT16_MAX || m->headers[i].value_len > SPOOL_RECORD_MAX)
            return 0;
        body += 6 + nl + m->headers[i].value_len;
        if (body > SPOOL_RECORD_MAX)
            return 0;
    }
    if (body > SPOOL_RECORD_MAX)
        return 0;
    size_t len = SPOOL_REC_FRAME_LEN + (size_t)body;
    if (len > s->wbcap) {
        size_t cap = s->wbcap ? s->wbcap : 4096;
        while (cap < len)
            cap *= 2;
        unsigned char *nb = realloc(s->wb, cap);
        if (!nb) {
            *rc = HB_ERR_NOMEM;
            return 0;
        }
        s->wb = nb;
        s->wbcap = cap;
    }
    unsigned char *p = s->wb, *b = p + SPOOL_REC_FRAME_LEN;
    put64(b, seq);
    put64(b + 8, (uint64_t)m->accept_ms);
    put32(b + 16, (uint32_t)m->value_len);
    put32(b + 20, m->key ? (uint32_t)m->key_len : NO_KEY);
    put16(b + 24, (uint16_t)tl);
    put16(b + 26, (uint16_t)m->header_cnt);
    b[28] = (unsigned char)il;
    b[29] = b[30] = b[31] = 0;
    unsigned char *q = b + SPOOL_BODY_FIXED;
    memcpy(q, m->topic, tl);
    q += tl;
    memcpy(q, m->id, il);
    q += il;
    if (m->key && m->key_len) {
        memcpy(q, m->key, m->key_len);
        q += m->key_len;
    }
    for (size_t i = 0; i < m->header_cnt; i++) {
        size_t nl = m->headers[i].name_len, vl = m->headers[i].value_len;
        put16(q, (uint16_t)nl);
        put32(q + 2, (uint32_t)vl);
        q += 6;
        memcpy(q, m->headers[i].name, nl);
        q += nl;
        if (vl) {
            memcpy(q, m->headers[i].value, vl);
            q += vl;
        }
    }
    if (m->value_len)
        memcpy(q, m->value, m->value_len);
    put32(p, REC_MAGIC);
    put32(p + 4, (uint32_t)body);
    put32(p + 8, crc32c_update(crc32c(p + 4, 4), b, (size_t)body));
    *rc = HB_OK;
    return len;
}

/* Re-read the free space after this much was appended since the last read, or this long. */
#define FREE_RECHECK_BYTES (1u << 20)
#define FREE_RECHECK_MS 100

/* 0 when the filesystem under the spool has no room for need more bytes above min_free. An
 * fstatvfs per append cost about 1 % of the spool path's CPU, so the last reading stands while
 * the spool's own writes since are well inside it: under half its room, under 1 MiB and within
 * 100 ms (now_ms: the caller's accept_ms). Other writers to the filesystem are seen at the next
 * reading; near the limit every append reads it. */
static int free_space_ok(spool_t *s, uint64_t need, int64_t now_ms) {
    if (!s->min_free)
        return 1;
    uint64_t used = s->free_used + need;
    int64_t age = now_ms - s->free_at_ms;
    if (s->free_known && used <= s->free_room / 2 && used <= FREE_RECHECK_BYTES &&
        age < FREE_RECHECK_MS && age > -FREE_RECHECK_MS) {
        s->free_used = used;
        return 1;
    }
    struct statvfs sv;
    int r = s->io.fstatvfs ? s->io.fstatvfs(s->dirfd, &sv) : fstatvfs(s->dirfd, &sv);
    if (r != 0) {
        s->free_known = 0;
        return 1; /* cannot tell: the write itself will report ENOSPC */
    }
    uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
    s->free_room = avail > s->min_free ? avail - s->min_free : 0;
    s->free_at_ms = now_ms;
    s->free_known = 1;
    if (s->free_room < need) {
        s->free_used = 0;
        return 0;
    }
    s->free_used = need;
    return 1;
}

/* spool_sync in three steps, so that a caller can run the slow middle one (fdatasync) on
 * another thread while the loop keeps appending the next batch. The job holds its own
 * descriptors (dup), so a segment closed meanwhile (a roll, a failed batch) stays valid for it. */
void spool_sync_begin(spool_t *s, spool_sync_job_t *job) {
    memset(job, 0, sizeof *job);
    job->fd = job->dirfd = -1;
    job->next_seq = s->next_seq;
    job->fdatasync = s->io.fdatasync;
    job->drops = s->drops;
    if (s->sync_err) {
        /* Part of this batch was already lost: the whole batch fails, as one unit. */
        s->sync_err = 0;
        drop_unsynced(s);
        job->failed_early = 1;
        return;
    }
    seg_t *g = s->wfd >= 0 ? &s->segs[s->nseg - 1] : NULL;
    if (g && g->size != s->wsynced) {
        s->st.sync_count++;
        job->seg_base = g->base;
        job->seg_size = g->size;
        if ((job->fd = fcntl(s->wfd, F_DUPFD_CLOEXEC, 0)) < 0) {
            job->err = errno;
            job->what = "cannot duplicate the segment descriptor";
        }
    }
    if (!job->what && s->dir_dirty) {
        if ((job->dirfd = fcntl(s->dirfd, F_DUPFD_CLOEXEC, 0)) < 0) {
            job->err = errno;
            job->what = "cannot duplicate the directory descriptor";
        }
    }
    /* Records appended from here on belong to the next batch. */
    s->dirty = 0;
    s->dir_dirty = 0;
}

void spool_sync_run(spool_sync_job_t *job) {
    if (job->failed_early || job->what)
        return;
    if (job->fd >= 0 && (job->fdatasync ? job->fdatasync(job->fd) : fdatasync(job->fd)) != 0) {
        job->err = errno;
        job->what = "fdatasync failed";
        return;
    }
    if (job->dirfd >= 0 && fsync(job->dirfd) != 0) {
        job->err = errno;
        job->what = "directory fsync failed";
    }
}

hb_status_t spool_sync_end(spool_t *s, spool_sync_job_t *job) {
    hb_status_t st = HB_OK;
    if (job->failed_early) {
        st = HB_ERR_IO;
    } else if (!job->what && job->drops != s->drops) {
        /* While the job ran, a failed sync on the loop (a segment roll's) dropped every record
         * not yet durable, this batch's included: it cannot be reported durable. */
        log_error("spool", "batch dropped by another failed sync while its own ran", "#seq",
                  (long long)job->next_seq, NULL);
        st = HB_ERR_IO;
    } else if (job->what) {
        char name[SEG_NAME_LEN];
        seg_name(job->seg_base, name);
        log_error("spool", job->what, "segment", name, "error", strerror(job->err), "#dropped",
                  (long long)(s->next_seq - s->durable_next), NULL);
        /* Records appended while the job ran are dropped with the batch (drop_unsynced cuts
         * the segment back to its last good sync): their own batch must fail too. */
        int later = s->next_seq > job->next_seq;
        drop_unsynced(s);
        if (later)
            s->sync_err = 1;
        st = HB_ERR_IO;
    } else {
        if (job->fd >= 0 && s->wfd >= 0 && s->segs[s->nseg - 1].base == job->seg_base &&
            s->wsynced < job->seg_size)
            s->wsynced = job->seg_size;
        if (s->durable_next < job->next_seq)
            s->durable_next = job->next_seq;
    }
    if (job->fd >= 0)
        close(job->fd);
    if (job->dirfd >= 0)
        close(job->dirfd);
    job->fd = job->dirfd = -1;
    return st;
}

hb_status_t spool_sync(spool_t *s) {
    if (!s)
        return HB_ERR_INVALID;
    spool_sync_job_t job;
    spool_sync_begin(s, &job);
    spool_sync_run(&job);
    return spool_sync_end(s, &job);
}

/* Closes the active segment so the next append starts a new one. Its records are synced first
 * (spool_sync covers only the active segment). A sealed segment whose records were all acked
 * already is deleted here, since no later ack would trigger that. */
static hb_status_t seg_seal(spool_t *s) {
    if (s->dirty || s->dir_dirty || s->sync_err) {
        if (spool_sync(s) != HB_OK) {
            /* The caller's spool_sync must still report this batch as failed. */
            s->sync_err = 1;
            return HB_ERR_IO;
        }
    }
    if (s->wfd >= 0) {
        seg_trim(s);
        close(s->wfd);
        s->wfd = -1;
        seg_maybe_delete(s, s->nseg - 1);
    }
    return HB_OK;
}

hb_status_t spool_append(spool_t *s, const msg_t *m, uint64_t *seq) {
    if (!s || !m)
        return HB_ERR_INVALID;
    hb_status_t rc;
    uint64_t q = s->next_seq;
    size_t len = rec_encode(s, m, q, &rc);
    if (!len)
        return rc;

    seg_t *g = s->wfd >= 0 ? &s->segs[s->nseg - 1] : NULL;
    int roll = g && g->size > SPOOL_SEG_HDR_LEN && g->size + len > s->seg_bytes;
    uint64_t need = len + ((!g || roll) ? SPOOL_SEG_HDR_LEN : 0);
    if (s->bytes + need > s->max_bytes)
        return HB_ERR_NOSPACE;
    /* The zeros this append would write ahead (seg_prealloc) take disk space too. */
    uint64_t end = (g && !roll) ? g->size + len : SPOOL_SEG_HDR_LEN + len;
    int fills = s->prealloc && (!g || roll || prealloc_due(s, end)); /* new segment: always */
    if (!free_space_ok(s, need + (fills ? s->prealloc : 0), m->accept_ms))
        return HB_ERR_NOSPACE;
    uint32_t topic = topic_intern(s, (const unsigned char *)m->topic, strlen(m->topic));
    if (topic == UINT32_MAX)
        return HB_ERR_NOMEM;
    if ((rc = win_reserve(s, q)) != HB_OK || (rc = seg_reserve(s)) != HB_OK)
        return rc;
    if (roll && (rc = seg_seal(s)) != HB_OK)
        return rc;
    if (s->wfd < 0 && (rc = seg_create(s, q)) != HB_OK)
        return rc;
    if ((rc = win_reserve(s, q)) != HB_OK) /* the seal may have moved the window */
        return rc;

    g = &s->segs[s->nseg - 1];
    uint64_t start = g->size;
    int e = 0;
    seg_prealloc(s, start + len);
    if (io_write_all(s, s->wfd, s->wb, len, start, &e) != 0) {
        char name[SEG_NAME_LEN];
        seg_name(g->base, name);
        rc = errno_status(e);
        log_error("spool", "append failed", "segment", name, "#offset", (long long)start,
                  "error", strerror(e), NULL);
        /* The seq is spent even though nothing of it stays: if the failed write did reach the
         * disk whole, reusing the seq could put two records with one seq on disk. */
        s->next_seq++;
        s->wfile = start;
        if (ftruncate(s->wfd, (off_t)start) != 0) {
            e = errno;
            log_error("spool", "cannot cut failed append off segment", "segment", name,
                      "#offset", (long long)start, "error", strerror(e), NULL);
            /* Bytes of the failed record may stay: close the segment so nothing follows them
             * (recovery sees them as a torn tail), and fail the batch. */
            drop_unsynced(s);
            s->sync_err = 1;
        }
        return rc;
    }
    g->size += len;
    if (s->wfile < g->size)
        s->wfile = g->size;
    g->total++;
    s->bytes += len;
    s->records++;
    s->next_seq++;
    s->dirty = 1;
    s->st.appended++;
    win_push(s, q, start, m->accept_ms, topic);
    if (seq)
        *seq = q;
    return HB_OK;
}

int spool_dirty(const spool_t *s) { return s && s->dirty; }

/* ---- drain ------------------------------------------------------------------------------------- */

/* Reads [off, off+n) of the cursor's segment into the read cache. */
static hb_status_t rd_fill(spool_t *s, uint64_t off, size_t n) {
    if (n > s->rcap) {
        unsigned char *nb = realloc(s->rbuf, n);
        if (!nb)
            return HB_ERR_NOMEM;
        s->rbuf = nb;
        s->rcap = n;
    }
    /* Read a whole cache-full: the next records are almost always right behind this one. */
    size_t got = 0;
    s->rlen = 0;
    while (got < s->rcap) {
        ssize_t r = pread(s->rfd, s->rbuf + got, s->rcap - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return HB_ERR_IO;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    s->roff = off;
    s->rlen = got;
    return HB_OK;
}

static int rd_has(const spool_t *s, uint64_t off, size_t n) {
    return s->rlen && off >= s->roff && off - s->roff <= s->rlen && n <= s->rlen - (off - s->roff);
}

/* Copies the record view into a msg_t the caller owns. */
static hb_status_t rec_to_msg(const rec_view_t *v, msg_t *out) {
    memset(out, 0, sizeof *out);
    out->accept_ms = v->accept_ms;
    memcpy(out->id, v->id, v->id_len);
    out->id[v->id_len] = '\0';
    if (!(out->topic = strndup((const char *)v->topic, v->topic_len)))
        goto fail;
    if (v->has_key) {
        if (!(out->key = malloc(v->key_len + 1)))
            goto fail;
        memcpy(out->key, v->key, v->key_len);
        out->key[v->key_len] = '\0';
        out->key_len = v->key_len;
    }
    if (!(out->value = malloc((size_t)v->value_len + 1)))
        goto fail;
    memcpy(out->value, v->value, v->value_len);
    out->value[v->value_len] = '\0';
    out->value_len = v->value_len;
    if (v->header_cnt && !(out->headers = calloc(v->header_cnt, sizeof *out->headers)))
        goto fail;
    const unsigned char *p = v->hdrs;
    for (uint32_t i = 0; i < v->header_cnt; i++) {
        size_t nl = get16(p), vl = get32(p + 2);
        msg_header_t *h = &out->headers[i];
        p += 6;
        h->name = strndup((const char *)p, nl);
        h->value = malloc(vl + 1);
        if (!h->name || !h->value) {
            free(h->name);
            free(h->value);
            goto fail;
        }
        memcpy(h->value, p + nl, vl);
        h->value[vl] = '\0';
        h->value_len = vl;
        h->name_len = strlen(h->name); /* nl, but for a NUL among its bytes */
        out->header_cnt++;
        p += nl + vl;
    }
    return HB_OK;
fail:
    msg_free(out);
    return HB_ERR_NOMEM;
}

/* Makes [off, off+frame+body) of the cursor's segment readable in the cache, as far as the file
 * has it; returns the bytes available from off (possibly fewer than the record needs). */
static hb_status_t rd_load(spool_t *s, uint64_t off, int fresh, size_t *avail) {
    hb_status_t rc;
    if ((fresh || !rd_has(s, off, SPOOL_REC_FRAME_LEN)) && (rc = rd_fill(s, off, s->rcap)) != HB_OK)
        return rc;
    *avail = rd_has(s, off, 1) ? s->rlen - (size_t)(off - s->roff) : 0;
    if (*avail >= SPOOL_REC_FRAME_LEN) {
        uint32_t blen = get32(s->rbuf + (off - s->roff) + 4);
        size_t want = SPOOL_REC_FRAME_LEN + (blen <= SPOOL_RECORD_MAX ? blen : 0);
        if (want > *avail) {
            if ((rc = rd_fill(s, off, want > s->rcap ? want : s->rcap)) != HB_OK)
                return rc;
            *avail = s->rlen;
        }
    }
    return HB_OK;
}

/* Reads and checks record seq at e->off. HB_ERR_CORRUPT: the bytes changed on disk since they
 * were checked at open or append (the caller counts it and moves on). */
static hb_status_t rd_record(spool_t *s, uint64_t seq, const win_ent_t *e, msg_t *out) {
    long gi = seg_find(s, seq);
    char name[SEG_NAME_LEN];
    const char *why = "record outside every segment";
    hb_status_t rc = HB_ERR_CORRUPT;
    rec_view_t v;
    size_t rl = 0, avail = 0;
    const unsigned char *p = NULL;
    if (gi < 0) {
        log_error("spool", "record unreadable", "#seq", (long long)seq, "reason", why, NULL);
        return rc;
    }
    seg_name(s->segs[gi].base, name);
    if (s->rfd < 0 || s->rbase != s->segs[gi].base) {
        if (s->rfd >= 0)
            close(s->rfd);
        s->rlen = 0;
        s->rbase = s->segs[gi].base;
        if ((s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
            int err = errno;
            log_error("spool", "cannot open segment for reading", "segment", name, "error",
                      strerror(err), NULL);
            return HB_ERR_IO;
        }
    }
    /* A failed check on cached bytes is retried once from the file before it counts. */
    for (int fresh = 0; fresh < 2; fresh++) {
        if ((rc = rd_load(s, e->off, fresh, &avail)) != HB_OK) {
            int err = errno;
            if (rc == HB_ERR_IO)
                log_error("spool", "segment read failed", "segment", name, "#offset",
                          (long long)e->off, "error", strerror(err), NULL);
            return rc;
        }
        p = s->rbuf + (e->off - s->roff);
        rc = rec_check(p, avail, &rl, &v, &why);
        if (rc == HB_OK && v.seq != seq) {
            rc = HB_ERR_CORRUPT;
            why = "record seq changed on disk";
        }
        if (rc == HB_OK)
            return rec_to_msg(&v, out);
    }
    log_error("spool", "record unreadable, quarantined", "segment", name, "#offset",
              (long long)e->off, "#seq", (long long)seq, "reason", why, NULL);
    if (avail >= SPOOL_REC_FRAME_LEN) {
        size_t blen = get32(p + 4);
        size_t want = SPOOL_REC_FRAME_LEN + (blen <= SPOOL_RECORD_MAX ? blen : 0);
        quar_bytes(s, name, e->off, p, want < avail ? want : avail);
    } else if (avail) {
        quar_bytes(s, name, e->off, p, avail);
    }
    return HB_ERR_CORRUPT;
}

static void retry_remove_at(spool_t *s, size_t i) {
    memmove(s->retry + i, s->retry + i + 1, (s->nretry - i - 1) * sizeof *s->retry);
    s->nretry--;
}

/* Index of the first retry entry >= seq. */
static size_t retry_lower(const spool_t *s, uint64_t seq) {
    size_t lo = 0, hi = s->nretry;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->retry[mid] < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A record that is gone for good (quarantined while draining) counts as done, so its segment
 * can still be freed and the low-water mark can pass it. */
static void mark_done(spool_t *s, uint64_t seq, win_ent_t *e, uint32_t st) {
    e->st = st;
    s->records--;
    topic_done(s, e);
    long gi = seg_find(s, seq);
    if (gi >= 0) {
        s->segs[gi].acked++;
        seg_maybe_delete(s, (size_t)gi);
    }
    win_trim(s);
}

/* 1 when the caller's filter passes over entry e's topic. */
static int skipped(const spool_t *s, const win_ent_t *e, spool_skip_fn skip, void *arg) {
    return skip && e->topic < s->ntopics && skip(arg, s->topics[e->topic].name);
}

hb_status_t spool_next(spool_t *s, msg_t *out, uint64_t *seq) {
    return spool_next_skip(s, NULL, NULL, out, seq);
}

hb_status_t spool_next_skip(spool_t *s, spool_skip_fn skip, void *arg, msg_t *out,
                            uint64_t *seq) {
    if (!s || !out)
        return HB_ERR_INVALID;
    for (;;) {
        uint64_t q;
        int from_retry = s->nretry > 0;
        if (from_retry) {
            q = s->retry[0];
        } else {
            if (s->win_len == 0 || s->cur < s->win_base)
                s->cur = s->win_len ? s->win_base : s->next_seq;
            win_ent_t *c;
            while (s->cur < s->durable_next &&
                   (!(c = win_get(s, s->cur)) || c->st != ST_PENDING || skipped(s, c, skip, arg)))
                s->cur++;
            if (s->cur >= s->durable_next)
                return HB_ERR_EOF;
            q = s->cur;
        }
        win_ent_t *e = win_get(s, q);
        if (!e) { /* cannot happen: a retry entry is always in the window */
            if (from_retry)
                retry_remove_at(s, 0);
            continue;
        }
        if (from_retry && skipped(s, e, skip, arg)) {
            /* Back to plain pending: spool_rewind() finds it again, in seq order. */
            retry_remove_at(s, 0);
            e->st = ST_PENDING;
            continue;
        }
        hb_status_t rc = rd_record(s, q, e, out);
        if (rc != HB_OK && rc != HB_ERR_CORRUPT)
            return rc;
        if (from_retry)
            retry_remove_at(s, 0);
        else
            s->cur++;
        if (rc == HB_ERR_CORRUPT) {
            s->st.quarantined++;
            mark_done(s, q, e, ST_ABSENT);
            continue;
        }
        e->st = ST_INFLIGHT;
        s->inflight++;
        topic_inflight(s, e, 1);
        if (seq)
            *seq = q;
        return HB_OK;
    }
}

void spool_rewind(spool_t *s) {
    if (s)
        s->cur = low_water(s);
}

hb_status_t spool_ack(spool_t *s, uint64_t seq) {
    win_ent_t *e = s ? win_get(s, seq) : NULL;
    if (!e || (e->st != ST_INFLIGHT && e->st != ST_RETRY))
        return HB_ERR_NOT_FOUND;
    if (e->st == ST_RETRY) {
        size_t i = retry_lower(s, seq);
        if (i < s->nretry && s->retry[i] == seq)
            retry_remove_at(s, i);
    } else {
        s->inflight--;
        topic_inflight(s, e, -1);
    }
    s->st.acked++;
    mark_done(s, seq, e, ST_ACKED);
    /* Also when the spool just emptied: one small write then spares a restart from replaying
     * the whole drain. */
    if ((++s->acks_since_ckpt >= CKPT_EVERY || s->records == 0) && low_water(s) != s->ckpt_lw)
        ckpt_write(s);
    return HB_OK;
}

void spool_nack(spool_t *s, uint64_t seq) {
    win_ent_t *e = s ? win_get(s, seq) : NULL;
    if (!e || e->st != ST_INFLIGHT)
        return;
    if (s->nretry == s->capretry) {
        size_t cap = s->capretry ? s->capretry * 2 : 64;
        uint64_t *r = realloc(s->retry, cap * sizeof *r);
        if (!r) {
            /* Cannot queue it: leave it in flight; the caller can nack again. */
            log_error("spool", "out of memory queueing a nack", "#seq", (long long)seq, NULL);
            return;
        }
        s->retry = r;
        s->capretry = cap;
    }
    size_t i = retry_lower(s, seq);
    memmove(s->retry + i + 1, s->retry + i, (s->nretry - i) * sizeof *s->retry);
    s->retry[i] = seq;
    s->nretry++;
    e->st = ST_RETRY;
    s->inflight--;
    topic_inflight(s, e, -1);
}

uint64_t spool_pending(const spool_t *s) { return s ? s->records : 0; }

uint64_t spool_inflight(const spool_t *s) { return s ? s->inflight : 0; }

void spool_stats(const spool_t *s, spool_stats_t *out) {
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    *out = s->st;
    out->records = s->records;
    out->bytes = s->bytes;
    out->segments = s->nseg;
    /* The window's front is the lowest unacked seq (win_trim), the oldest by arrival. */
    out->oldest_accept_ms = s->win_len ? s->win[s->win_start].accept_ms : 0;
}

void spool_close(spool_t *s) {
    if (!s)
        return;
    if (s->dirty || s->dir_dirty || s->sync_err)
        spool_sync(s);
    seg_trim(s);
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = -1;
    ckpt_write(s);
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->qfd >= 0)
        close(s->qfd);
    if (s->dirfd >= 0)
        close(s->dirfd);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    free(s->segs);
    free(s->win);
    free(s->retry);
    free(s->rbuf);
    free(s->wb);
    free(s->dir);
    for (size_t i = 0; i < s->ntopics; i++)
        free(s->topics[i].name);
    free(s->topics);
    free(s->thash);
    free(s);
}

/* ---- spool_inspect ------------------------------------------------------------------------------ */

typedef struct insp {
    FILE *out;
    int verbose;
    uint64_t records, first, last, corrupt;
    int64_t torn_at; /* -1: none */
} insp_t;

/* Prints untrusted bytes on one line: printable ASCII as is, the rest as \xHH, capped. */
static void put_safe(FILE *out, const unsigned char *p, size_t n) {
    size_t cap = n > 64 ? 64 : n;
    for (size_t i = 0; i < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            fputc(p[i], out);
        else
            fprintf(out, "\\x%02x", p[i]);
    }
    if (cap < n)
        fputs("...", out);
}

static void insp_record(void *ctx, uint64_t off, size_t len, const rec_view_t *v) {
    insp_t *in = ctx;
    if (!in->records)
        in->first = v->seq;
    in->last = v->seq;
    in->records++;
    if (!in->verbose)
        return;
    fprintf(in->out, "  record seq=%" PRIu64 " offset=%" PRIu64 " bytes=%zu accept_ms=%" PRId64
                     " topic=",
            v->seq, off, len, v->accept_ms);
    put_safe(in->out, v->topic, v->topic_len);
    fputs(" key=", in->out);
    if (v->has_key)
        put_safe(in->out, v->key, v->key_len);
    else
        fputs("(none)", in->out);
    fprintf(in->out, " headers=%" PRIu32 " value_bytes=%" PRIu32 " id=", v->header_cnt,
            v->value_len);
    put_safe(in->out, v->id, v->id_len);
    fputc('\n', in->out);
}

static void insp_corrupt(void *ctx, uint64_t off, uint64_t end, const char *why) {
    insp_t *in = ctx;
    in->corrupt++;
    if (in->verbose)
        fprintf(in->out, "  corrupt offset=%" PRIu64 " bytes=%" PRIu64 " reason=%s\n", off,
                end - off, why);
}

static void insp_torn(void *ctx, uint64_t off, const char *why) {
    insp_t *in = ctx;
    in->torn_at = (int64_t)off;
    if (in->verbose)
        fprintf(in->out, "  torn-tail offset=%" PRIu64 " reason=%s\n", off, why);
}

/* Prints the checkpoint line; returns 1 when it exists and is bad. */
static int insp_ckpt(int dfd, FILE *out) {
    unsigned char b[SPOOL_CKPT_LEN + 1];
    int fd = openat(dfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(out, "checkpoint none\n");
        return 0;
    }
    ssize_t n = pread(fd, b, sizeof b, 0);
    close(fd);
    if (n != SPOOL_CKPT_LEN || get32(b) != CKPT_MAGIC || get16(b + 4) != SPOOL_FORMAT_VERSION ||
        crc32c(b, 24) != get32(b + 24)) {
        fprintf(out, "checkpoint status=corrupt\n");
        return 1;
    }
    fprintf(out, "checkpoint low_water=%" PRIu64 " next_seq=%" PRIu64 " status=ok\n",
            get64(b + 8), get64(b + 16));
    return 0;
}

int spool_inspect(const char *dir, int verbose, FILE *out) {
    uint64_t *bases = NULL;
    size_t n = 0;
    int bad = 0;
    uint64_t total = 0, corrupt_total = 0;
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd < 0 || list_segments(dfd, &bases, &n) != 0) {
        fprintf(out, "spool %s: cannot read: %s\n", dir ? dir : "(null)", strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return 2;
    }
    bad |= insp_ckpt(dfd, out);
    for (size_t i = 0; i < n; i++) {
        char name[SEG_NAME_LEN];
        const unsigned char *map = NULL;
        size_t size = 0;
        const char *why = NULL;
        insp_t in = {out, verbose, 0, 0, 0, 0, -1};
        seg_name(bases[i], name);
        /* Read-only and unlocked: a live daemon may append meanwhile, which only hides the
         * newest records; map a private copy of what is there now. */
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || map_file(fd, &map, &size) != 0) {
            fprintf(out, "%s status=unreadable error=%s\n", name, strerror(errno));
            bad = 1;
            if (fd >= 0)
                close(fd);
            continue;
        }
        hb_status_t h = seg_hdr_check(map, size, bases[i], &why);
        if (h != HB_OK) {
            fprintf(out, "%s size=%zu records=0 first=- last=- status=%s reason=\"%s\"\n", name,
                    size, h == HB_ERR_VERSION ? "unknown-version" : "bad-header", why);
            bad = 1;
        } else {
            static const scan_ops_t ops = {insp_record, insp_corrupt, insp_torn};
            size_t end = seg_scan(map, size, bases[i], &ops, &in);
            fprintf(out, "%s size=%zu", name, size);
            if (end < size)
                fprintf(out, " preallocated=%zu", size - end);
            fprintf(out, " records=%" PRIu64, in.records);
            if (in.records)
                fprintf(out, " first=%" PRIu64 " last=%" PRIu64, in.first, in.last);
            else
                fputs(" first=- last=-", out);
            if (!in.corrupt && in.torn_at < 0)
                fputs(" status=ok\n", out);
            else
                fprintf(out, " status=corrupt corrupt_records=%" PRIu64 " torn_tail=%s\n",
                        in.corrupt, in.torn_at >= 0 ? "yes" : "no");
            bad |= in.corrupt || in.torn_at >= 0;
            total += in.records;
            corrupt_total += in.corrupt + (in.torn_at >= 0);
        }
        if (map)
            munmap((void *)map, size);
        close(fd);
    }
    fprintf(out, "summary segments=%zu records=%" PRIu64 " corrupt=%" PRIu64 " status=%s\n", n,
            total, corrupt_total, bad ? "corrupt" : "ok");
    free(bases);
    close(dfd);
    return bad ? 1 : 0;
}

/* ---- spool_scan --------------------------------------------------------------------------------- */

typedef struct scan_ctx {
    spool_scan_cb cb;
    void *arg;
    uint64_t low_water;
    int bad;
} scan_ctx_t;

static void scan_record(void *ctx, uint64_t off, size_t len, const rec_view_t *v) {
    scan_ctx_t *c = ctx;
    (void)off, (void)len;
    if (v->seq < c->low_water)
        return; /* acked before the checkpoint was written */
    msg_t m;
    if (rec_to_msg(v, &m) != HB_OK) {
        c->bad = 1;
        return;
    }
    c->cb(c->arg, v->seq, &m);
    msg_free(&m);
}

static void scan_corrupt(void *ctx, uint64_t off, uint64_t end, const char *why) {
    (void)off, (void)end, (void)why;
    ((scan_ctx_t *)ctx)->bad = 1;
}

static void scan_torn(void *ctx, uint64_t off, const char *why) {
    (void)off, (void)why;
    ((scan_ctx_t *)ctx)->bad = 1;
}

int spool_scan(const char *dir, spool_scan_cb cb, void *arg) {
    uint64_t *bases = NULL;
    size_t n = 0;
    scan_ctx_t c = {cb, arg, 0, 0};
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (dfd < 0)
        return errno == ENOENT ? 0 : 2;
    if (list_segments(dfd, &bases, &n) != 0) {
        close(dfd);
        return 2;
    }
    unsigned char b[SPOOL_CKPT_LEN];
    int fd = openat(dfd, CKPT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (pread(fd, b, sizeof b, 0) == SPOOL_CKPT_LEN && get32(b) == CKPT_MAGIC &&
            get16(b + 4) == SPOOL_FORMAT_VERSION && crc32c(b, 24) == get32(b + 24))
            c.low_water = get64(b + 8);
        close(fd);
    }
    for (size_t i = 0; i < n; i++) {
        char name[SEG_NAME_LEN];
        const unsigned char *map = NULL;
        size_t size = 0;
        const char *why = NULL;
        seg_name(bases[i], name);
        int sfd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        if (sfd < 0 || map_file(sfd, &map, &size) != 0) {
            c.bad = 1;
        } else if (seg_hdr_check(map, size, bases[i], &why) != HB_OK) {
            c.bad = 1;
        } else {
            static const scan_ops_t ops = {scan_record, scan_corrupt, scan_torn};
            seg_scan(map, size, bases[i], &ops, &c);
        }
        if (map)
            munmap((void *)map, size);
        if (sfd >= 0)
            close(sfd);
    }
    free(bases);
    close(dfd);
    return c.bad ? 1 : 0;
}
