/* spool.h: the crash-safe on-disk queue that holds events while Kafka cannot take them.
 *
 * (The on-disk format is drawn here, by the module that owns it: see FORMAT below.)
 *
 * Model. Records are appended to the newest segment file and get increasing sequence numbers
 * (seq), unique for the life of the spool directory, across restarts. An appended record is
 * durable only after spool_sync() returns HB_OK: callers group-commit, i.e. append a batch and
 * sync once, and answer the requests of that batch only then. A drain cursor hands records
 * out in seq order (spool_next); the caller publishes them and reports each outcome with
 * spool_ack() or spool_nack(). A segment is deleted (and the directory fsynced) once every record
 * in it is acked; a checkpoint file records the low-water mark (every seq below it is acked) so a
 * restart does not replay what was delivered. Records acked above the low-water mark are
 * replayed after a crash: bounded duplicates, counted in spool_stats.replayed.
 *
 * Recovery (spool_open): a torn tail (a last record cut short, or whose CRC fails with nothing
 * valid after it) is truncated away; a corrupt record elsewhere is copied to
 * <dir>/quarantine/ and skipped (framing is regained by scanning for the next record magic
 * whose CRC holds); a segment whose header is unreadable or of an unknown version is moved to
 * quarantine whole. Each case logs one error line and is counted. spool_open never fails because
 * of bad data, only because of the directory itself (cannot create, lock, read).
 *
 * @locality single-threaded: one spool_t is used by one thread (the event loop). The one
 * exception is spool_sync_run(), which touches only its job and may run on any thread.
 */

/* FORMAT (version 1). All integers little-endian, fixed width. CRCs are CRC-32C (crc32c.h).
 *
 * <dir>/lock                        flock()ed by the owner; empty
 * <dir>/checkpoint                  low-water mark (written as checkpoint.tmp, fsync, rename)
 * <dir>/NNNNNNNNNNNNNNNNNNNN.seg    segments; NNN = 20-digit seq of the first record, so the
 *                                   lexical order of the names is the seq order
 * <dir>/quarantine/                 corrupt segments and record bytes moved aside at open
 *
 * Segment file = header, then records back to back (no padding). The active segment may end in
 * zeros, written ahead of its records (spool_opts.prealloc_bytes): zeros from where a record
 * should start to the end of the file are unused room, not a torn write; recovery cuts them off
 * and `spool inspect` shows them as preallocated=N. A record never starts with a zero byte.
 *
 *   0      4      6      8                      16     20
 *   +------+------+------+----------------------+------+
 *   |magic |ver=1 |rsvd=0|  base_seq (u64)      | crc  |   magic = 89 48 42 53 ("\x89HBS")
 *   +------+------+------+----------------------+------+   crc over bytes [0,16)
 *   base_seq = the seq in the file name (a mismatch is a garbled header).
 *
 * Record = 12-byte frame, then a body of body_len bytes:
 *
 *   0      4          8      12
 *   +------+----------+------+================================+
 *   |magic | body_len | crc  | body                           |  magic = 9E 48 42 52 ("\x9eHBR")
 *   +------+----------+------+================================+  crc over bytes [4,8) and body
 *   body_len <= SPOOL_RECORD_MAX and >= SPOOL_BODY_FIXED (else corrupt, checked before use).
 *
 * Body (every length checked against the bytes left in the body; the body must be consumed
 * exactly):
 *
 *   0          8          16         20         24     26     28  29   32
 *   +----------+----------+----------+----------+------+------+---+----+
 *   | seq u64  |accept_ms | value_len| key_len  |topic |header|id |rsvd|
 *   |          |   i64    |   u32    |   u32    |_len  |_cnt  |len| =0 |
 *   |          |          |          |0xFFFFFFFF|  u16 |  u16 | u8|    |
 *   |          |          |          | = no key |      |      |<=64    |
 *   +----------+----------+----------+----------+------+------+---+----+
 *   32: topic[topic_len] id[id_len] key[key_len or 0]
 *       header_cnt x ( name_len u16 | value_len u32 | name[name_len] | value[value_len] )
 *       value[value_len]
 *
 * The per-record magic lets recovery regain framing after a corrupt record: it scans forward
 * for the next magic whose frame, CRC and body check out and whose seq is higher than the last
 * good one. (A payload that embeds a complete valid record of this spool could fool that scan;
 * the seq check makes it need a plausible seq too.)
 *
 * Checkpoint file (28 bytes):
 *
 *   0      4      6      8              16             24     28
 *   +------+------+------+--------------+--------------+------+
 *   |magic |ver=1 |rsvd=0| low_water u64| next_seq u64 | crc  |   magic = 89 48 42 43 ("\x89HBC")
 *   +------+------+------+--------------+--------------+------+   crc over bytes [0,24)
 *   low_water: every seq below it is acked. next_seq: the next seq to assign, so seqs stay
 *   unique even after every segment was deleted.
 */
#ifndef HB_SPOOL_H
#define HB_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include "msg.h"
#include "status.h"

/* Sizes from FORMAT above. */
#define SPOOL_FORMAT_VERSION 1
#define SPOOL_SEG_HDR_LEN 20
#define SPOOL_REC_FRAME_LEN 12
#define SPOOL_BODY_FIXED 32
#define SPOOL_RECORD_MAX (16u << 20) /* body bytes; spool_append refuses more (HB_ERR_INVALID) */
#define SPOOL_CKPT_LEN 28

typedef struct spool spool_t;

/* Write hooks, for tests that inject a full or failing disk. NULL members mean the POSIX call.
 * They cover the segment files (header and record writes, spool_sync's fdatasync); the
 * checkpoint and quarantine copies use POSIX directly. */
typedef struct spool_io {
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);
    int (*fstatvfs)(int fd, struct statvfs *out); /* the min_free_bytes check's view */
} spool_io_t;

typedef struct spool_opts {
    const char *dir;           /* created if missing (one level); locked with flock() */
    uint64_t max_bytes;        /* cap on the segments' total size; 0 = 1 GiB */
    uint64_t min_free_bytes;   /* refuse an append that would leave the filesystem less free
                                * (its record and any zeros it writes ahead); 0 = none. The
                                * free space is read again at least every 1 MiB appended and
                                * every 100 ms of accept_ms, and on every append once less than
                                * twice what was appended since is left. */
    uint64_t segment_bytes;    /* start a new segment past this size; 0 = 64 MiB */
    uint64_t prealloc_bytes;   /* zeros written ahead of the active segment's last record, so
                                * a batch's fdatasync need not commit the file's growth; 0 = off */
    const spool_io_t *io;      /* NULL = POSIX */
} spool_opts_t;

typedef struct spool_stats {
    uint64_t records;          /* appended and not yet acked */
    uint64_t bytes;            /* on-disk size of the live segments */
    uint64_t segments;
    int64_t oldest_accept_ms;  /* accept time of the oldest unacked record; 0 if none */
    uint64_t appended;         /* since open */
    uint64_t acked;            /* since open */
    uint64_t replayed;         /* records at or above the checkpoint found at open: each may
                                * have been acked before a crash (the spool cannot tell which,
                                * so this is an upper bound on the duplicates) */
    uint64_t quarantined;      /* corrupt records or segments moved aside, since open */
    uint64_t truncated_bytes;  /* torn-tail bytes cut at open (with any zeros after them) */
    uint64_t sync_count;       /* fdatasync calls, to see group commit work */
} spool_stats_t;

/* Opens (creating if needed) and recovers the spool in opts->dir. Returns NULL and fills errstr
 * on failure. The opts strings are copied. */
spool_t *spool_open(const spool_opts_t *opts, char *errstr, size_t errlen);

/* Appends a copy of m (topic, key, headers, value, accept_ms, id) and sets *seq. Not durable
 * until spool_sync(). HB_ERR_NOSPACE: over max_bytes or under min_free_bytes, or ENOSPC;
 * HB_ERR_IO: another write error. On any error nothing of the record stays in the spool. */
hb_status_t spool_append(spool_t *s, const msg_t *m, uint64_t *seq);

/* Makes every record appended so far durable (fdatasync; directory fsync after a new segment).
 * On failure the records appended since the last successful sync are NOT durable and are
 * dropped from the spool (their requests must not get a 2xx); the segment is closed and the
 * next append starts a new one. */
hb_status_t spool_sync(spool_t *s);

/* spool_sync() in three steps, for a caller that runs the fdatasync off its event loop while the
 * loop goes on appending (pipelined group commit, at most one job at a time):
 *   spool_sync_begin  (loop thread) takes the batch: every record appended so far;
 *   spool_sync_run    (any thread) the fdatasync and, after a new segment, the directory fsync;
 *   spool_sync_end    (loop thread) HB_OK: the batch is durable (spool_next may hand it out);
 *                     HB_ERR_IO: the batch is dropped, as spool_sync's failure rule says, and so
 *                     are the records appended after begin (the next batch then fails as well).
 * Every begin must be followed by exactly one end; the job owns duplicated descriptors until
 * then. Records appended after begin are not covered by the job. */
typedef struct spool_sync_job {
    int fd, dirfd;              /* dup'ed; -1: nothing to sync there */
    int (*fdatasync)(int fd);   /* spool_opts_t.io's hook, NULL: fdatasync(2) */
    uint64_t seg_base, seg_size, next_seq;
    uint64_t drops;             /* the spool's count of dropped batches at begin */
    int failed_early;           /* part of the batch was already lost at begin */
    int err;                    /* errno of the failed step, with what names it */
    const char *what;
} spool_sync_job_t;

void spool_sync_begin(spool_t *s, spool_sync_job_t *job);
void spool_sync_run(spool_sync_job_t *job);
hb_status_t spool_sync_end(spool_t *s, spool_sync_job_t *job);

/* 1 if records were appended since the last spool_sync (or spool_sync_begin). */
int spool_dirty(const spool_t *s);

/* Hands out the next durable record not yet handed out, in seq order, as a copy owned by the
 * caller (msg_free). HB_ERR_EOF when every durable record has been handed out. HB_ERR_IO when
 * a segment cannot be read (logged; the record stays for a later try). */
hb_status_t spool_next(spool_t *s, msg_t *out, uint64_t *seq);

/* spool_next() with a filter: a durable record whose topic skip(arg, topic) names (returns
 * non-zero) is passed over and stays pending; a nacked record of such a topic goes back to
 * plain pending too. The cursor moves on past them: call spool_rewind() when the filter lets
 * a topic through again. skip may be NULL (spool_next). */
typedef int (*spool_skip_fn)(void *arg, const char *topic);
hb_status_t spool_next_skip(spool_t *s, spool_skip_fn skip, void *arg, msg_t *out,
                            uint64_t *seq);

/* Moves the drain cursor back to the lowest unacked record, so records passed over by
 * spool_next_skip() are handed out again, in seq order; records in flight or acked are still
 * skipped. Costs one walk over the in-memory window (no disk read) on the next spool_next. */
void spool_rewind(spool_t *s);

/* Unacked records (pending, in flight or nacked) of topic; 0 for a topic never seen. Counted
 * at open from the recovered records, so the count survives a restart. */
uint64_t spool_topic_pending(const spool_t *s, const char *topic);

/* Records of topic handed out by spool_next and neither acked nor nacked yet. */
uint64_t spool_topic_inflight(const spool_t *s, const char *topic);

/* The topics the spool has seen since open (those of recovered and appended records), with
 * each one's unacked count: entry i < spool_topic_count(); NULL past the end. The name is
 * owned by the spool and lives as long as it. */
size_t spool_topic_count(const spool_t *s);
const char *spool_topic_at(const spool_t *s, size_t i, uint64_t *pending);

/* Kafka acknowledged record seq. Frees fully acked segments and advances the checkpoint
 * (written at most every few hundred acks and at close; losing it only costs duplicates). */
hb_status_t spool_ack(spool_t *s, uint64_t seq);

/* Publishing seq failed: spool_next hands it out again, before anything newer. */
void spool_nack(spool_t *s, uint64_t seq);

/* Records appended (durable or not) and not yet acked. 0 means the spool is empty. */
uint64_t spool_pending(const spool_t *s);

/* Records handed out by spool_next and neither acked nor nacked yet. */
uint64_t spool_inflight(const spool_t *s);

void spool_stats(const spool_t *s, spool_stats_t *out);

/* Writes the checkpoint, syncs, releases everything. NULL is fine. */
void spool_close(spool_t *s);

/* Offline tool: lists each segment and, with verbose, each record (seq, accept time, topic,
 * key, sizes), checks every CRC, and prints a summary to out. Does not modify anything and
 * does not need the lock. Returns 0 when everything checks out, 1 when corruption was found,
 * 2 when the directory cannot be read. */
int spool_inspect(const char *dir, int verbose, FILE *out);

/* Offline reader: calls cb(arg, seq, m) for every valid record of dir at or above its
 * checkpoint's low-water mark, in seq order (m valid during the call only). Read-only, needs no
 * lock. Returns 0; 1 when corrupt or unreadable parts were passed over; 2 when dir cannot be
 * read. A missing dir has no records (0). */
typedef void (*spool_scan_cb)(void *arg, uint64_t seq, const msg_t *m);
int spool_scan(const char *dir, spool_scan_cb cb, void *arg);

#endif
