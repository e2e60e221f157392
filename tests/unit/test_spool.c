/* test_spool.c: the spool's contract: round trips, acks, recovery from torn and corrupt files,
 * full and failing disks, the lock, the checkpoint, spool_inspect and the on-disk format. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "crc32c.h"
#include "log.h"
#include "msg.h"
#include "spool.h"

#define SEG1 "00000000000000000001.seg"

typedef struct fx {
    char root[64];  /* mkdtemp directory, removed at teardown */
    char dir[128];  /* the spool directory inside it (spool_open creates it) */
    char path[512]; /* scratch for file paths (dir + a name of up to 255 bytes) */
    spool_t *s;
} fx_t;

/* ---- helpers ------------------------------------------------------------------------------- */

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_rf(const char *p) { nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/hb-spool-test-XXXXXX");
    if (!mkdtemp(f->root)) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    spool_close(f->s);
    rm_rf(f->root);
    free(f);
    log_set_fd(2);
    return 0;
}

static spool_t *open_opts(fx_t *f, uint64_t seg_bytes, uint64_t max_bytes, const spool_io_t *io) {
    char err[256] = "";
    spool_opts_t o = {.dir = f->dir, .segment_bytes = seg_bytes, .max_bytes = max_bytes, .io = io};
    spool_t *s = spool_open(&o, err, sizeof err);
    if (!s)
        print_error("spool_open: %s\n", err);
    assert_non_null(s);
    return s;
}

static spool_t *open_default(fx_t *f) { return open_opts(f, 0, 0, NULL); }

static void reopen(fx_t *f) {
    spool_close(f->s);
    f->s = open_default(f);
}

static const char *fpath(fx_t *f, const char *name) {
    /* Checked, not ignored: -Wformat-truncation fails the Release build otherwise. */
    assert_true(snprintf(f->path, sizeof f->path, "%s/%s", f->dir, name) < (int)sizeof f->path);
    return f->path;
}

static off_t fsize(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

static int count_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *de;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (de->d_name[0] != '.' && l >= sl && strcmp(de->d_name + l - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static unsigned char *slurp(const char *p, size_t *n) {
    FILE *fp = fopen(p, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)sz, fp), (size_t)sz);
    fclose(fp);
    *n = (size_t)sz;
    return b;
}

static void spit(const char *p, const void *b, size_t n) {
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b, 1, n, fp), n);
    fclose(fp);
}

/* Message i: deterministic content so a test can check what comes back. */
static void make_msg(msg_t *m, int i, size_t value_len) {
    char tmp[64];
    memset(m, 0, sizeof *m);
    snprintf(tmp, sizeof tmp, "cloud66.events.%d", i % 3);
    m->topic = strdup(tmp);
    snprintf(tmp, sizeof tmp, "key-%d", i);
    m->key = strdup(tmp);
    m->key_len = strlen(tmp);
    m->value = malloc(value_len + 1);
    for (size_t k = 0; k < value_len; k++)
        m->value[k] = (char)('a' + (i + k) % 26);
    m->value[value_len] = '\0';
    m->value_len = value_len;
    snprintf(tmp, sizeof tmp, "v%d", i);
    msg_add_header(m, "ce_type", tmp, strlen(tmp));
    m->accept_ms = 1700000000000 + i;
    snprintf(m->id, sizeof m->id, "%064x", i);
}

static void check_msg(const msg_t *got, int i, size_t value_len) {
    msg_t want;
    make_msg(&want, i, value_len);
    assert_string_equal(got->topic, want.topic);
    assert_int_equal(got->key_len, want.key_len);
    assert_memory_equal(got->key, want.key, want.key_len);
    assert_int_equal(got->value_len, want.value_len);
    assert_memory_equal(got->value, want.value, want.value_len);
    assert_int_equal(got->header_cnt, 1);
    assert_string_equal(got->headers[0].name, "ce_type");
    assert_int_equal(got->headers[0].value_len, want.headers[0].value_len);
    assert_memory_equal(got->headers[0].value, want.headers[0].value, want.headers[0].value_len);
    assert_int_equal(got->accept_ms, want.accept_ms);
    assert_string_equal(got->id, want.id);
    msg_free(&want);
}

static uint64_t append_i(spool_t *s, int i, size_t value_len) {
    msg_t m;
    uint64_t seq = 0;
    make_msg(&m, i, value_len);
    assert_int_equal(spool_append(s, &m, &seq), HB_OK);
    msg_free(&m);
    return seq;
}

/* Takes the next record, checks it is message i with seq want_seq. */
static void expect_next(spool_t *s, int i, size_t value_len, uint64_t want_seq) {
    msg_t m;
    uint64_t seq = 0;
    assert_int_equal(spool_next(s, &m, &seq), HB_OK);
    assert_int_equal(seq, want_seq);
    check_msg(&m, i, value_len);
    msg_free(&m);
}

static void expect_eof(spool_t *s) {
    msg_t m;
    uint64_t seq = 0;
    assert_int_equal(spool_next(s, &m, &seq), HB_ERR_EOF);
}

/* Silences the expected error lines of corruption tests; returns the capture fd. */
static int capture_log(fx_t *f) {
    snprintf(f->path, sizeof f->path, "%s/log.txt", f->root);
    int fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
    assert_true(fd >= 0);
    log_set_fd(fd);
    return fd;
}

static char *read_log(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    char *b = calloc(1, (size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(pread(fd, b, (size_t)n, 0), n);
    return b;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_roundtrip(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    msg_t a = {0}, b = {0}, c = {0}, got;
    uint64_t seq;

    a.topic = strdup("t.one");
    a.key = malloc(3);
    memcpy(a.key, "k\0y", 3); /* a key may hold any byte */
    a.key_len = 3;
    a.value = strdup("{\"x\":1}");
    a.value_len = 7;
    a.accept_ms = -5; /* signed field survives */
    msg_add_header(&a, "ce_id", "abc", 3);
    msg_add_header(&a, "bin", "\x00\xff\x01", 3);
    msg_add_header(&a, "empty", "", 0);
    snprintf(a.id, sizeof a.id, "deadbeef");
    b.topic = strdup("t.two"); /* NULL key, no headers, no id */
    b.value = strdup("v");
    b.value_len = 1;
    c.topic = strdup("t.three"); /* empty value, empty (not NULL) key */
    c.key = strdup("");
    c.key_len = 0;
    c.value = strdup("");
    c.value_len = 0;

    assert_int_equal(spool_dirty(f->s), 0);
    assert_int_equal(spool_append(f->s, &a, &seq), HB_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(spool_append(f->s, &b, &seq), HB_OK);
    assert_int_equal(seq, 2);
    assert_int_equal(spool_append(f->s, &c, &seq), HB_OK);
    assert_int_equal(seq, 3);
    assert_int_equal(spool_dirty(f->s), 1);
    assert_int_equal(spool_pending(f->s), 3);
    expect_eof(f->s); /* nothing is handed out before it is durable */
    assert_int_equal(spool_sync(f->s), HB_OK);
    assert_int_equal(spool_dirty(f->s), 0);

    assert_int_equal(spool_next(f->s, &got, &seq), HB_OK);
    assert_int_equal(seq, 1);
    assert_string_equal(got.topic, "t.one");
    assert_int_equal(got.key_len, 3);
    assert_memory_equal(got.key, "k\0y", 3);
    assert_string_equal(got.value, "{\"x\":1}");
    assert_int_equal(got.accept_ms, -5);
    assert_string_equal(got.id, "deadbeef");
    assert_int_equal(got.header_cnt, 3);
    assert_string_equal(got.headers[0].name, "ce_id");
    assert_memory_equal(got.headers[1].value, "\x00\xff\x01", 3);
    assert_int_equal(got.headers[1].value_len, 3);
    assert_int_equal(got.headers[2].value_len, 0);
    msg_free(&got);

    assert_int_equal(spool_next(f->s, &got, &seq), HB_OK);
    assert_int_equal(seq, 2);
    assert_null(got.key);
    assert_int_equal(got.header_cnt, 0);
    assert_string_equal(got.id, "");
    assert_int_equal(got.value_len, 1);
    msg_free(&got);

    assert_int_equal(spool_next(f->s, &got, &seq), HB_OK);
    assert_int_equal(seq, 3);
    assert_non_null(got.key);
    assert_int_equal(got.key_len, 0);
    assert_int_equal(got.value_len, 0);
    assert_non_null(got.value);
    msg_free(&got);
    expect_eof(f->s);
    assert_int_equal(spool_inflight(f->s), 3);

    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.oldest_accept_ms, -5);
    for (uint64_t q = 1; q <= 3; q++)
        assert_int_equal(spool_ack(f->s, q), HB_OK);
    assert_int_equal(spool_ack(f->s, 2), HB_ERR_NOT_FOUND); /* double ack */
    assert_int_equal(spool_ack(f->s, 99), HB_ERR_NOT_FOUND);
    assert_int_equal(spool_pending(f->s), 0);
    assert_int_equal(spool_inflight(f->s), 0);
    spool_stats(f->s, &st);
    assert_int_equal(st.appended, 3);
    assert_int_equal(st.acked, 3);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.sync_count, 1);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.oldest_accept_ms, 0);
    assert_int_equal(st.bytes, (uint64_t)fsize(fpath(f, SEG1)));
    msg_free(&a);
    msg_free(&b);
    msg_free(&c);
}

static void test_invalid_append(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    msg_t m;
    uint64_t seq;
    make_msg(&m, 1, 10);
    free(m.value);
    m.value_len = SPOOL_RECORD_MAX + 1;
    m.value = calloc(1, m.value_len);
    assert_int_equal(spool_append(f->s, &m, &seq), HB_ERR_INVALID);
    free(m.topic);
    m.topic = NULL;
    assert_int_equal(spool_append(f->s, &m, &seq), HB_ERR_INVALID);
    msg_free(&m);
    assert_int_equal(spool_pending(f->s), 0);
    assert_int_equal(spool_dirty(f->s), 0);
}

static void test_reopen_continues_seq(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 1; i <= 5; i++)
        assert_int_equal(append_i(f->s, i, 40), (uint64_t)i);
    assert_int_equal(spool_sync(f->s), HB_OK);
    for (int i = 1; i <= 5; i++)
        expect_next(f->s, i, 40, (uint64_t)i);
    assert_int_equal(spool_ack(f->s, 4), HB_OK); /* out of order, above the low-water mark */
    assert_int_equal(spool_ack(f->s, 1), HB_OK);
    assert_int_equal(spool_ack(f->s, 2), HB_OK);
    reopen(f);
    /* 1 and 2 are below the checkpoint; 4 was acked above it, so it is a bounded replay. */
    assert_int_equal(spool_pending(f->s), 3);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.replayed, 3);
    expect_next(f->s, 3, 40, 3);
    expect_next(f->s, 4, 40, 4);
    expect_next(f->s, 5, 40, 5);
    expect_eof(f->s);
    assert_int_equal(append_i(f->s, 6, 40), 6);
}

static void test_out_of_order_acks_delete_segments(void **state) {
    fx_t *f = *state;
    f->s = open_opts(f, 700, 0, NULL); /* ~4 records of ~160 bytes per segment */
    for (int i = 1; i <= 20; i++)
        append_i(f->s, i, 60);
    assert_int_equal(spool_sync(f->s), HB_OK);
    int segs = count_files(f->dir, ".seg");
    assert_true(segs >= 5);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.segments, (uint64_t)segs);
    for (int i = 1; i <= 20; i++)
        expect_next(f->s, i, 60, (uint64_t)i);
    /* Ack from the newest down: every sealed segment goes once its last record is acked, even
     * though the low-water mark stays at 1 until the very end. */
    for (int i = 20; i >= 2; i--)
        assert_int_equal(spool_ack(f->s, (uint64_t)i), HB_OK);
    assert_int_equal(count_files(f->dir, ".seg"), 2); /* the first (holds 1) and the active */
    assert_true(fsize(fpath(f, SEG1)) > 0);
    assert_int_equal(spool_ack(f->s, 1), HB_OK);
    assert_int_equal(count_files(f->dir, ".seg"), 1); /* only the active one stays */
    assert_int_equal(fsize(fpath(f, SEG1)), -1);
    spool_stats(f->s, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(st.records, 0);
    reopen(f);
    /* The active segment was wholly acked: deleted at open; seqs still continue. */
    assert_int_equal(count_files(f->dir, ".seg"), 0);
    assert_int_equal(spool_pending(f->s), 0);
    assert_int_equal(append_i(f->s, 21, 60), 21);
}

static void test_nack_redelivery_order(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 1; i <= 6; i++)
        append_i(f->s, i, 30);
    assert_int_equal(spool_sync(f->s), HB_OK);
    expect_next(f->s, 1, 30, 1);
    expect_next(f->s, 2, 30, 2);
    expect_next(f->s, 3, 30, 3);
    expect_next(f->s, 4, 30, 4);
    assert_int_equal(spool_inflight(f->s), 4);
    spool_nack(f->s, 3);
    spool_nack(f->s, 1);
    spool_nack(f->s, 1);  /* already nacked: ignored */
    spool_nack(f->s, 5);  /* never handed out: ignored */
    spool_nack(f->s, 77); /* unknown: ignored */
    assert_int_equal(spool_inflight(f->s), 2);
    /* Retries come first, lowest seq first, then the cursor resumes. */
    expect_next(f->s, 1, 30, 1);
    spool_nack(f->s, 4);
    expect_next(f->s, 3, 30, 3);
    expect_next(f->s, 4, 30, 4);
    expect_next(f->s, 5, 30, 5);
    spool_nack(f->s, 2);
    assert_int_equal(spool_ack(f->s, 2), HB_OK); /* a late ack for a nacked record counts */
    expect_next(f->s, 6, 30, 6);
    expect_eof(f->s);
    for (uint64_t q = 1; q <= 6; q++)
        assert_int_equal(spool_ack(f->s, q), q == 2 ? HB_ERR_NOT_FOUND : HB_OK);
    assert_int_equal(spool_pending(f->s), 0);
    assert_int_equal(spool_inflight(f->s), 0);
}

static void test_segment_rollover(void **state) {
    fx_t *f = *state;
    f->s = open_opts(f, 1024, 0, NULL);
    for (int i = 1; i <= 30; i++)
        append_i(f->s, i, 200);
    assert_int_equal(spool_sync(f->s), HB_OK);
    /* Each segment holds whole records and stays within segment_bytes. */
    DIR *d = opendir(f->dir);
    struct dirent *de;
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (!strstr(de->d_name, ".seg"))
            continue;
        n++;
        off_t sz = fsize(fpath(f, de->d_name));
        assert_true(sz > SPOOL_SEG_HDR_LEN && sz <= 1024);
    }
    closedir(d);
    assert_true(n >= 7);
    reopen(f);
    for (int i = 1; i <= 30; i++)
        expect_next(f->s, i, 200, (uint64_t)i);
    expect_eof(f->s);
}

/* ---- recovery ------------------------------------------------------------------------------- */

/* Cuts the last record at every byte offset: exactly the earlier records must come back and the
 * file must be cut back to where the last record began. */
static void test_torn_tail_every_offset(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    f->s = open_default(f);
    append_i(f->s, 1, 50);
    append_i(f->s, 2, 50);
    assert_int_equal(spool_sync(f->s), HB_OK);
    off_t before = fsize(fpath(f, SEG1));
    append_i(f->s, 3, 50);
    spool_close(f->s);
    f->s = NULL;
    size_t full_len;
    unsigned char *full = slurp(fpath(f, SEG1), &full_len);
    assert_true(full_len > (size_t)before + 60);
    unlink(fpath(f, "checkpoint"));

    for (size_t cut = (size_t)before; cut <= full_len; cut++) {
        rm_rf(f->dir);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        spit(fpath(f, SEG1), full, cut);
        f->s = open_default(f);
        int want = cut == full_len ? 3 : 2;
        for (int i = 1; i <= want; i++)
            expect_next(f->s, i, 50, (uint64_t)i);
        expect_eof(f->s);
        spool_stats_t st;
        spool_stats(f->s, &st);
        assert_int_equal(st.truncated_bytes, cut == full_len ? 0 : cut - (size_t)before);
        assert_int_equal(st.quarantined, 0);
        assert_int_equal(fsize(fpath(f, SEG1)), cut == full_len ? (off_t)full_len : before);
        /* Seqs go on after the cut record's: never reused, though it is gone. */
        uint64_t next = append_i(f->s, 9, 10);
        assert_int_equal(next, (uint64_t)want + 1);
        spool_close(f->s);
        f->s = NULL;
    }
    free(full);
    close(lfd);
}

/* One flipped bit anywhere in a middle record, frame included: that record is quarantined,
 * the records around it survive. */
static void test_flipped_bit_middle_record(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    f->s = open_default(f);
    append_i(f->s, 1, 50);
    assert_int_equal(spool_sync(f->s), HB_OK);
    off_t r2 = fsize(fpath(f, SEG1));
    append_i(f->s, 2, 50);
    assert_int_equal(spool_sync(f->s), HB_OK);
    off_t r3 = fsize(fpath(f, SEG1));
    append_i(f->s, 3, 50);
    spool_close(f->s);
    f->s = NULL;
    size_t len;
    unsigned char *good = slurp(fpath(f, SEG1), &len);
    unsigned char *bad = malloc(len);
    assert_non_null(bad);
    unlink(fpath(f, "checkpoint"));

    for (off_t at = r2; at < r3; at++) {
        rm_rf(f->dir);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        memcpy(bad, good, len);
        bad[at] ^= (unsigned char)(1u << (at % 8));
        spit(fpath(f, SEG1), bad, len);
        assert_int_equal(ftruncate(lfd, 0), 0);
        f->s = open_default(f);
        expect_next(f->s, 1, 50, 1);
        expect_next(f->s, 3, 50, 3);
        expect_eof(f->s);
        spool_stats_t st;
        spool_stats(f->s, &st);
        assert_int_equal(st.quarantined, 1);
        assert_int_equal(st.truncated_bytes, 0);
        /* The bad record's bytes are kept aside, exactly. */
        char q[256];
        snprintf(q, sizeof q, "%s/quarantine/%s.%lld.rec", f->dir, SEG1, (long long)r2);
        assert_int_equal(fsize(q), r3 - r2);
        char *log = read_log(lfd);
        assert_non_null(strstr(log, "\"segment\":\"" SEG1 "\""));
        char off[64];
        snprintf(off, sizeof off, "\"offset\":%lld", (long long)r2);
        assert_non_null(strstr(log, off));
        assert_non_null(strstr(log, "\"reason\":"));
        free(log);
        /* Recovery leaves the segment as it is; a second open finds the same and still works. */
        spool_close(f->s);
        f->s = open_default(f);
        expect_next(f->s, 1, 50, 1);
        expect_next(f->s, 3, 50, 3);
        spool_close(f->s);
        f->s = NULL;
    }
    free(good);
    free(bad);
    close(lfd);
}

/* Writes a spool with records 1..n into f->dir and closes it. */
static void make_spool(fx_t *f, int n) {
    f->s = open_default(f);
    for (int i = 1; i <= n; i++)
        append_i(f->s, i, 30);
    assert_int_equal(spool_sync(f->s), HB_OK);
    spool_close(f->s);
    f->s = NULL;
}

static void test_truncated_segment_header(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    make_spool(f, 2);
    /* A second segment whose header was cut short (a crash right after its creation). */
    size_t len;
    unsigned char *b = slurp(fpath(f, SEG1), &len);
    spit(fpath(f, "00000000000000000003.seg"), b, 11);
    free(b);
    f->s = open_default(f);
    expect_next(f->s, 1, 30, 1);
    expect_next(f->s, 2, 30, 2);
    expect_eof(f->s);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal(fsize(fpath(f, "00000000000000000003.seg")), -1);
    assert_int_equal(fsize(fpath(f, "quarantine/00000000000000000003.seg")), 11);
    char *log = read_log(lfd);
    assert_non_null(strstr(log, "segment header cut short"));
    free(log);
    /* Still usable, and seqs do not collide with the quarantined name. */
    assert_int_equal(append_i(f->s, 3, 30), 3);
    assert_int_equal(spool_sync(f->s), HB_OK);
    expect_next(f->s, 3, 30, 3);
    close(lfd);
}

static void test_unknown_version(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    make_spool(f, 2);
    size_t len;
    unsigned char *b = slurp(fpath(f, SEG1), &len);
    b[4] = 2; /* version 2 */
    spit(fpath(f, SEG1), b, len);
    free(b);
    f->s = open_default(f);
    expect_eof(f->s);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.quarantined, 1);
    assert_int_equal(st.records, 0);
    assert_int_equal(fsize(fpath(f, "quarantine/" SEG1)), (off_t)len);
    char *log = read_log(lfd);
    assert_non_null(strstr(log, "unknown segment version"));
    free(log);
    /* The checkpoint remembered next_seq, so the new record does not reuse seq 1. */
    assert_int_equal(append_i(f->s, 3, 30), 3);
    close(lfd);
}

static void test_garbage_never_crashes(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    make_spool(f, 5);
    size_t len;
    unsigned char *good = slurp(fpath(f, SEG1), &len);
    unsigned char *bad = malloc(len);
    assert_non_null(bad);
    srand(7);
    for (int round = 0; round < 200; round++) {
        memcpy(bad, good, len);
        /* Scribble over a few bytes after the header; sometimes over length fields. */
        int hits = 1 + rand() % 8;
        for (int k = 0; k < hits; k++)
            bad[SPOOL_SEG_HDR_LEN + (size_t)rand() % (len - SPOOL_SEG_HDR_LEN)] = (unsigned char)rand();
        rm_rf(f->dir);
        assert_int_equal(mkdir(f->dir, 0700), 0);
        spit(fpath(f, SEG1), bad, len);
        f->s = open_default(f);
        msg_t m;
        uint64_t seq, prev = 0;
        int got = 0;
        while (spool_next(f->s, &m, &seq) == HB_OK) {
            assert_true(seq > prev && seq <= 5);
            check_msg(&m, (int)seq, 30);
            prev = seq;
            msg_free(&m);
            got++;
        }
        assert_int_equal((uint64_t)got, spool_inflight(f->s));
        spool_close(f->s);
        f->s = NULL;
    }
    free(good);
    free(bad);
    close(lfd);
}

/* ---- full and failing disks ------------------------------------------------------------------ */

static void test_max_bytes(void **state) {
    fx_t *f = *state;
    f->s = open_opts(f, 0, 1000, NULL);
    int ok = 0;
    hb_status_t rc = HB_OK;
    off_t last = 0;
    msg_t m;
    uint64_t seq;
    for (int i = 1; i <= 50 && rc == HB_OK; i++) {
        make_msg(&m, i, 100);
        rc = spool_append(f->s, &m, &seq);
        msg_free(&m);
        if (rc == HB_OK) {
            ok++;
            last = fsize(fpath(f, SEG1));
        }
    }
    assert_int_equal(rc, HB_ERR_NOSPACE);
    assert_true(ok >= 3);
    assert_true(last <= 1000);
    assert_int_equal(fsize(fpath(f, SEG1)), last); /* nothing of the refused record */
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.bytes, (uint64_t)last);
    assert_int_equal(st.appended, (uint64_t)ok);
    assert_int_equal(spool_sync(f->s), HB_OK);
    for (int i = 1; i <= ok; i++)
        expect_next(f->s, i, 100, (uint64_t)i);
    expect_eof(f->s);
}

/* A write hook that fails or shortens chosen calls. */
static int wr_calls, wr_fail_at, wr_fail_errno, wr_short_at;
static ssize_t hook_write(int fd, const void *buf, size_t n, off_t off) {
    wr_calls++;
    if (wr_calls == wr_short_at && n > 1)
        return pwrite(fd, buf, n / 2, off);
    if (wr_calls == wr_fail_at) {
        errno = wr_fail_errno;
        return -1;
    }
    return pwrite(fd, buf, n, off);
}

static int sync_calls, sync_fail_at;
static int hook_fdatasync(int fd) {
    sync_calls++;
    if (sync_calls == sync_fail_at) {
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

static const spool_io_t hooks = {hook_write, hook_fdatasync, NULL};

static void hooks_reset(void) {
    wr_calls = wr_fail_at = wr_fail_errno = wr_short_at = 0;
    sync_calls = sync_fail_at = 0;
}

static void test_write_enospc(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    hooks_reset();
    f->s = open_opts(f, 0, 0, &hooks);
    wr_fail_at = 3; /* 1: segment header, 2: record 1, 3: record 2 */
    wr_fail_errno = ENOSPC;
    msg_t m;
    uint64_t seq;
    append_i(f->s, 1, 80);
    off_t sz = fsize(fpath(f, SEG1));
    make_msg(&m, 2, 80);
    assert_int_equal(spool_append(f->s, &m, &seq), HB_ERR_NOSPACE);
    msg_free(&m);
    assert_int_equal(fsize(fpath(f, SEG1)), sz);
    assert_int_equal(spool_pending(f->s), 1);
    /* The disk has room again: the spool goes on. */
    uint64_t s3 = append_i(f->s, 3, 80);
    assert_true(s3 > 1);
    assert_int_equal(spool_sync(f->s), HB_OK);
    expect_next(f->s, 1, 80, 1);
    expect_next(f->s, 3, 80, s3);
    expect_eof(f->s);
    reopen(f);
    expect_next(f->s, 1, 80, 1);
    expect_next(f->s, 3, 80, s3);
    expect_eof(f->s);
    close(lfd);
}

static void test_short_write(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    hooks_reset();
    f->s = open_opts(f, 0, 0, &hooks);
    append_i(f->s, 1, 80);
    off_t sz = fsize(fpath(f, SEG1));
    /* A short write that then completes is no error. */
    wr_short_at = 3;
    assert_int_equal(append_i(f->s, 2, 80), 2);
    /* A short write followed by an error: IO, and the half-record is cut off. */
    wr_short_at = 5;
    wr_fail_at = 6;
    wr_fail_errno = EIO;
    sz = fsize(fpath(f, SEG1));
    msg_t m;
    uint64_t seq;
    make_msg(&m, 3, 80);
    assert_int_equal(spool_append(f->s, &m, &seq), HB_ERR_IO);
    msg_free(&m);
    assert_int_equal(fsize(fpath(f, SEG1)), sz);
    uint64_t s4 = append_i(f->s, 4, 80);
    assert_int_equal(spool_sync(f->s), HB_OK);
    reopen(f);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.quarantined, 0);
    assert_int_equal(st.truncated_bytes, 0);
    expect_next(f->s, 1, 80, 1);
    expect_next(f->s, 2, 80, 2);
    expect_next(f->s, 4, 80, s4);
    expect_eof(f->s);
    close(lfd);
}

static void test_fdatasync_failure_drops_batch(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    hooks_reset();
    f->s = open_opts(f, 0, 0, &hooks);
    append_i(f->s, 1, 40);
    append_i(f->s, 2, 40);
    assert_int_equal(spool_sync(f->s), HB_OK); /* sync 1 */
    off_t synced = fsize(fpath(f, SEG1));
    append_i(f->s, 3, 40);
    append_i(f->s, 4, 40);
    sync_fail_at = 2;
    assert_int_equal(spool_sync(f->s), HB_ERR_IO);
    assert_int_equal(spool_dirty(f->s), 0);
    assert_int_equal(spool_pending(f->s), 2);
    assert_int_equal(fsize(fpath(f, SEG1)), synced); /* cut back */
    expect_next(f->s, 1, 40, 1);
    expect_next(f->s, 2, 40, 2);
    expect_eof(f->s); /* 3 and 4 are never handed out */
    /* The next append starts a new segment, with a fresh seq. */
    uint64_t s5 = append_i(f->s, 5, 40);
    assert_int_equal(s5, 5);
    assert_int_equal(spool_sync(f->s), HB_OK);
    assert_int_equal(count_files(f->dir, ".seg"), 2);
    expect_next(f->s, 5, 40, 5);
    expect_eof(f->s);
    /* A failed sync of a brand-new segment leaves no file behind. */
    spool_close(f->s);
    f->s = open_opts(f, 0, 0, &hooks);
    sync_calls = 0;
    sync_fail_at = 1;
    append_i(f->s, 6, 40);
    assert_int_equal(spool_sync(f->s), HB_ERR_IO);
    assert_int_equal(count_files(f->dir, ".seg"), 2);
    reopen(f);
    expect_next(f->s, 1, 40, 1);
    expect_next(f->s, 2, 40, 2);
    expect_next(f->s, 5, 40, 5);
    expect_eof(f->s);
    close(lfd);
}

/* ---- split sync (the dispatcher's pipelined group commit) -------------------------------------- */

/* begin takes the batch; records appended while the job runs (on another thread in the
 * daemon) are not covered and stay invisible to the drain until their own sync. */
static void test_split_sync_covers_only_the_batch_it_began(void **state) {
    fx_t *f = *state;
    hooks_reset();
    f->s = open_opts(f, 0, 0, &hooks);
    append_i(f->s, 1, 40);
    append_i(f->s, 2, 40);
    spool_sync_job_t job;
    spool_sync_begin(f->s, &job);
    assert_int_equal(spool_dirty(f->s), 0);
    append_i(f->s, 3, 40); /* the next batch */
    assert_int_equal(spool_dirty(f->s), 1);
    expect_eof(f->s);     /* nothing is durable yet */
    spool_sync_run(&job); /* (the worker thread's part) */
    assert_int_equal(sync_calls, 1);
    assert_int_equal(spool_sync_end(f->s, &job), HB_OK);
    expect_next(f->s, 1, 40, 1);
    expect_next(f->s, 2, 40, 2);
    expect_eof(f->s); /* 3 waits for its own sync */
    assert_int_equal(spool_sync(f->s), HB_OK);
    assert_int_equal(sync_calls, 2);
    expect_next(f->s, 3, 40, 3);
    expect_eof(f->s);
    /* A begin with nothing new syncs nothing and succeeds. */
    spool_sync_begin(f->s, &job);
    spool_sync_run(&job);
    assert_int_equal(spool_sync_end(f->s, &job), HB_OK);
    assert_int_equal(sync_calls, 2);
}

/* A failed job drops its batch and the records appended while it ran (the segment is cut back
 * to the last good sync): their own batch must fail as well, never report durable. */
static void test_split_sync_failure_fails_the_next_batch_too(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    hooks_reset();
    f->s = open_opts(f, 0, 0, &hooks);
    append_i(f->s, 1, 40);
    assert_int_equal(spool_sync(f->s), HB_OK); /* sync 1 */
    off_t synced = fsize(fpath(f, SEG1));
    append_i(f->s, 2, 40);
    spool_sync_job_t job;
    spool_sync_begin(f->s, &job);
    append_i(f->s, 3, 40); /* appended while the failing job runs */
    sync_fail_at = 2;
    spool_sync_run(&job);
    assert_int_equal(spool_sync_end(f->s, &job), HB_ERR_IO);
    assert_int_equal(fsize(fpath(f, SEG1)), synced);
    /* The batch of record 3 fails as one unit, without another fdatasync. */
    spool_sync_begin(f->s, &job);
    spool_sync_run(&job);
    assert_int_equal(spool_sync_end(f->s, &job), HB_ERR_IO);
    assert_int_equal(sync_calls, 2);
    assert_int_equal(spool_pending(f->s), 1);
    expect_next(f->s, 1, 40, 1);
    expect_eof(f->s);
    /* Then the spool goes on. */
    uint64_t s4 = append_i(f->s, 4, 40);
    assert_int_equal(spool_sync(f->s), HB_OK);
    expect_next(f->s, 4, 40, s4);
    expect_eof(f->s);
    reopen(f);
    expect_next(f->s, 1, 40, 1);
    expect_next(f->s, 4, 40, s4);
    expect_eof(f->s);
    close(lfd);
}

/* A roll's own sync fails while a job is in flight: that failure drops every record not yet
 * durable, the job's batch included (the segment is cut back), so the job, though its own
 * fdatasync succeeds afterwards, must not report the batch durable. */
static void test_split_sync_fails_when_a_roll_dropped_its_batch(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    hooks_reset();
    f->s = open_opts(f, 64 * 1024, 0, &hooks);
    for (int i = 1; i <= 3; i++)
        append_i(f->s, i, 10000);
    spool_sync_job_t job;
    spool_sync_begin(f->s, &job); /* the batch 1..3 */
    for (int i = 4; i <= 6; i++)
        append_i(f->s, i, 10000);
    sync_fail_at = 1; /* the roll's sync, on the loop */
    msg_t m;
    uint64_t seq;
    make_msg(&m, 7, 10000);
    assert_int_equal(spool_append(f->s, &m, &seq), HB_ERR_IO); /* 7 does not fit: a roll */
    msg_free(&m);
    spool_sync_run(&job); /* call 2: succeeds */
    assert_int_equal(sync_calls, 2);
    assert_int_equal(spool_sync_end(f->s, &job), HB_ERR_IO);
    assert_int_equal(spool_pending(f->s), 0);
    expect_eof(f->s);
    reopen(f);
    expect_eof(f->s);
    close(lfd);
}

/* A segment roll while a job is in flight: the job holds its own descriptor of the old
 * segment, and ending it afterwards neither fails nor moves the new segment's sync point. */
static void test_split_sync_survives_a_roll_while_in_flight(void **state) {
    fx_t *f = *state;
    hooks_reset();
    f->s = open_opts(f, 64 * 1024, 0, &hooks);
    uint64_t last = 0;
    for (int i = 1; i <= 3; i++)
        last = append_i(f->s, i, 20000);
    spool_sync_job_t job;
    spool_sync_begin(f->s, &job);
    for (int i = 4; i <= 8; i++) /* rolls into a second segment (the roll syncs the first) */
        last = append_i(f->s, i, 20000);
    assert_true(count_files(f->dir, ".seg") >= 2);
    spool_sync_run(&job);
    assert_int_equal(spool_sync_end(f->s, &job), HB_OK);
    assert_int_equal(spool_sync(f->s), HB_OK);
    for (int i = 1; i <= 8; i++)
        expect_next(f->s, i, 20000, (uint64_t)i);
    expect_eof(f->s);
    assert_int_equal(last, 8);
    reopen(f);
    for (int i = 1; i <= 8; i++)
        expect_next(f->s, i, 20000, (uint64_t)i);
    expect_eof(f->s);
}

/* ---- checkpoint, lock ------------------------------------------------------------------------- */

static void test_checkpoint_prevents_replay(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 1; i <= 5; i++)
        append_i(f->s, i, 30);
    assert_int_equal(spool_sync(f->s), HB_OK);
    for (int i = 1; i <= 5; i++) {
        expect_next(f->s, i, 30, (uint64_t)i);
        assert_int_equal(spool_ack(f->s, (uint64_t)i), HB_OK);
    }
    reopen(f);
    expect_eof(f->s);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.replayed, 0);
    assert_int_equal(count_files(f->dir, ".seg"), 0);
    assert_int_equal(append_i(f->s, 6, 30), 6);
}

/* ---- min_free_bytes: the free space left on the filesystem ------------------------------------ */

/* A filesystem of fs_avail bytes free before the test, less every byte the spool writes. */
static uint64_t fs_avail, fs_written;
static int fs_calls;
static ssize_t fs_pwrite(int fd, const void *buf, size_t n, off_t off) {
    ssize_t w = pwrite(fd, buf, n, off);
    if (w > 0)
        fs_written += (uint64_t)w;
    return w;
}
static int fs_statvfs(int fd, struct statvfs *out) {
    (void)fd;
    fs_calls++;
    memset(out, 0, sizeof *out);
    out->f_frsize = 1;
    out->f_bavail = fs_avail > fs_written ? fs_avail - fs_written : 0;
    return 0;
}
static const spool_io_t fs_hooks = {fs_pwrite, NULL, fs_statvfs};

static spool_t *open_min_free(fx_t *f, uint64_t min_free, uint64_t prealloc, uint64_t avail) {
    char err[256] = "";
    fs_avail = avail;
    fs_written = 0;
    fs_calls = 0;
    spool_opts_t o = {.dir = f->dir, .min_free_bytes = min_free, .prealloc_bytes = prealloc,
                      .max_bytes = 1ull << 40, .io = &fs_hooks};
    spool_t *s = spool_open(&o, err, sizeof err);
    if (!s)
        print_error("spool_open: %s\n", err);
    assert_non_null(s);
    return s;
}

/* Appends message i with the given accept time; returns spool_append's status. */
static hb_status_t append_at(spool_t *s, int i, size_t value_len, int64_t accept_ms) {
    msg_t m;
    uint64_t seq;
    make_msg(&m, i, value_len);
    m.accept_ms = accept_ms;
    hb_status_t st = spool_append(s, &m, &seq);
    msg_free(&m);
    return st;
}

/* Appends are refused once one would leave less than min_free_bytes, not before, and the free
 * space is not read on every append while it is plentiful; freed space is seen at once. */
static void test_min_free_refuses_at_the_limit(void **state) {
    fx_t *f = *state;
    const uint64_t min_free = 1 << 20, room = 200 << 10;
    f->s = open_min_free(f, min_free, 0, min_free + room);
    int n = 0;
    hb_status_t st;
    while ((st = append_at(f->s, n + 1, 1000, 1700000000000)) == HB_OK)
        n++;
    assert_int_equal(st, HB_ERR_NOSPACE);
    /* Refused only when the next record (about 1.1 KB) no longer fits above min_free. */
    assert_true(fs_written <= room);
    assert_true(room - fs_written < 2 * 1100);
    assert_true(n > 150);
    /* Halving the room between readings, then one per append near the end: not one per append. */
    assert_true(fs_calls < n / 4);
    /* Space freed by someone else is seen by the next append. */
    fs_avail += 64 << 10;
    assert_int_equal(append_at(f->s, n + 1, 1000, 1700000000000), HB_OK);
}

/* With plenty of room the free space is read again every 1 MiB appended and every 100 ms of
 * accept time, so other writers filling the disk are seen soon. */
static void test_min_free_rereads_by_bytes_and_time(void **state) {
    fx_t *f = *state;
    f->s = open_min_free(f, 1 << 20, 0, 1ull << 40);
    for (int i = 1; i <= 3000; i++) /* about 3.3 MB, all at one accept time */
        assert_int_equal(append_at(f->s, i, 1000, 1700000000000), HB_OK);
    assert_true(fs_calls >= 3 && fs_calls <= 5);
    int before = fs_calls;
    assert_int_equal(append_at(f->s, 3001, 100, 1700000000050), HB_OK);
    assert_int_equal(fs_calls, before);
    assert_int_equal(append_at(f->s, 3002, 100, 1700000000100), HB_OK);
    assert_int_equal(fs_calls, before + 1);
    /* The disk fills up from elsewhere: the next reading refuses. */
    fs_written = fs_avail;
    assert_int_equal(append_at(f->s, 3003, 100, 1700000000200), HB_ERR_NOSPACE);
}

/* The zeros an append writes ahead (prealloc_bytes) count against the free space too. */
static void test_min_free_counts_the_zeros_ahead(void **state) {
    fx_t *f = *state;
    f->s = open_min_free(f, 1 << 20, 256 << 10, (1 << 20) + (128 << 10));
    assert_int_equal(append_at(f->s, 1, 100, 1700000000000), HB_ERR_NOSPACE);
    spool_close(f->s);
    f->s = open_min_free(f, 1 << 20, 0, (1 << 20) + (128 << 10));
    assert_int_equal(append_at(f->s, 1, 100, 1700000000000), HB_OK);
}

/* A real crash: a child process appends and acks, then dies without spool_close. Only records
 * at or above the last periodic checkpoint come back, and none is lost. */
static void test_crash_replays_bounded(void **state) {
    fx_t *f = *state;
    const int n = 3000, acked = 2500;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        spool_opts_t o = {.dir = f->dir};
        spool_t *s = spool_open(&o, err, sizeof err);
        if (!s)
            _exit(2);
        for (int i = 1; i <= n; i++) {
            msg_t m;
            make_msg(&m, i, 20);
            if (spool_append(s, &m, NULL) != HB_OK)
                _exit(3);
            msg_free(&m);
        }
        if (spool_sync(s) != HB_OK)
            _exit(4);
        for (int i = 1; i <= acked; i++) {
            msg_t m;
            uint64_t seq;
            if (spool_next(s, &m, &seq) != HB_OK || spool_ack(s, seq) != HB_OK)
                _exit(5);
            msg_free(&m);
        }
        _exit(0); /* no spool_close: the checkpoint is whatever the last periodic one was */
    }
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    f->s = open_default(f);
    uint64_t pend = spool_pending(f->s);
    /* Checkpoints every 1024 acks: the last was at 2048 acks, so 2049.. come back. */
    assert_int_equal(pend, (uint64_t)(n - 2048));
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.replayed, pend);
    for (int i = 2049; i <= n; i++)
        expect_next(f->s, i, 20, (uint64_t)i);
    expect_eof(f->s);
    assert_int_equal(append_i(f->s, n + 1, 20), (uint64_t)n + 1);
}

static void test_second_open_fails(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    char err[256] = "";
    spool_opts_t o = {.dir = f->dir};
    spool_t *s2 = spool_open(&o, err, sizeof err);
    assert_null(s2);
    assert_non_null(strstr(err, "locked"));
    assert_non_null(strstr(err, f->dir));
    spool_close(f->s);
    f->s = NULL;
    s2 = spool_open(&o, err, sizeof err);
    assert_non_null(s2);
    spool_close(s2);
    /* Not a directory at all. */
    snprintf(f->path, sizeof f->path, "%s/file", f->root);
    spit(f->path, "x", 1);
    o.dir = f->path;
    assert_null(spool_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "cannot open directory"));
}

/* ---- spool_inspect ----------------------------------------------------------------------------- */

static char *inspect_to_string(const char *dir, int verbose, int *rc) {
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    assert_non_null(fp);
    *rc = spool_inspect(dir, verbose, fp);
    fclose(fp);
    return out;
}

static void test_inspect(void **state) {
    fx_t *f = *state;
    int lfd = capture_log(f);
    int rc;
    make_spool(f, 3);
    char *out = inspect_to_string(f->dir, 0, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, SEG1 " size="));
    assert_non_null(strstr(out, "records=3 first=1 last=3 status=ok"));
    assert_non_null(strstr(out, "checkpoint low_water=1 next_seq=4 status=ok"));
    assert_null(strstr(out, "record seq="));
    free(out);
    out = inspect_to_string(f->dir, 1, &rc);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "record seq=2 "));
    assert_non_null(strstr(out, "topic=cloud66.events.2 key=key-2 headers=1 value_bytes=30"));
    free(out);

    /* Corrupt the middle record: reported, and the file is left untouched. */
    size_t len;
    unsigned char *b = slurp(fpath(f, SEG1), &len);
    b[len / 2] ^= 0x10;
    spit(fpath(f, SEG1), b, len);
    out = inspect_to_string(f->dir, 1, &rc);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "status=corrupt"));
    assert_non_null(strstr(out, "  corrupt offset="));
    free(out);
    /* A torn tail also counts, and inspect does not truncate it. */
    spit(fpath(f, SEG1), b, len - 3);
    out = inspect_to_string(f->dir, 0, &rc);
    assert_int_equal(rc, 1);
    assert_int_equal(fsize(fpath(f, SEG1)), (off_t)len - 3);
    free(out);
    free(b);

    snprintf(f->path, sizeof f->path, "%s/nope", f->root);
    out = inspect_to_string(f->path, 0, &rc);
    assert_int_equal(rc, 2);
    free(out);
    close(lfd);
}

/* ---- format golden tests ------------------------------------------------------------------------ */

static size_t unhex(const char *h, unsigned char *out) {
    size_t n = 0;
    for (; h[0] && h[1]; h += 2)
        sscanf(h, "%2hhx", &out[n++]);
    return n;
}

/* The bytes of a one-record segment, from an independent encoder written against the FORMAT
 * diagram (Python, bitwise CRC-32C). A change here is a format change: bump the version. */
static void test_golden_bytes(void **state) {
    fx_t *f = *state;
    static const char want_hex[] =
        "89484253010000000100000000000000" "27d02dee" /* segment header, crc */
        "9e484252" "2e000000" "58309028"              /* record magic, body_len 46, crc */
        "0100000000000000" "7b68e5cf8b010000"         /* seq 1, accept_ms 1700000000123 */
        "02000000" "01000000" "0100" "0100" "02" "000000" /* value, key, topic, hdrs, id */
        "74" "6162" "6b"                              /* "t" "ab" "k" */
        "0100" "01000000" "68" "76"                   /* header h=v */
        "6869";                                       /* "hi" */
    unsigned char want[128];
    size_t want_len = unhex(want_hex, want);
    f->s = open_default(f);
    msg_t m = {0};
    m.topic = strdup("t");
    m.key = strdup("k");
    m.key_len = 1;
    m.value = strdup("hi");
    m.value_len = 2;
    m.accept_ms = 1700000000123;
    msg_add_header(&m, "h", "v", 1);
    snprintf(m.id, sizeof m.id, "ab");
    uint64_t seq;
    assert_int_equal(spool_append(f->s, &m, &seq), HB_OK);
    assert_int_equal(spool_sync(f->s), HB_OK);
    msg_free(&m);
    size_t len;
    unsigned char *got = slurp(fpath(f, SEG1), &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
}

/* A checked-in segment (tests/fixtures/spool/golden-v1, written by the same independent
 * encoder) must keep reading back: guards the reader against format drift. */
static void test_golden_fixture(void **state) {
    fx_t *f = *state;
    size_t len;
    unsigned char *b = slurp(HB_FIXTURES "/spool/golden-v1/00000000000000000007.seg", &len);
    assert_int_equal(mkdir(f->dir, 0700), 0);
    spit(fpath(f, "00000000000000000007.seg"), b, len);
    free(b);
    f->s = open_default(f);
    msg_t m;
    uint64_t seq;
    assert_int_equal(spool_next(f->s, &m, &seq), HB_OK);
    assert_int_equal(seq, 7);
    assert_string_equal(m.topic, "cloud66.events");
    assert_int_equal(m.key_len, 7);
    assert_memory_equal(m.key, "stack-1", 7);
    assert_int_equal(m.accept_ms, 1234567890123);
    assert_int_equal(m.header_cnt, 2);
    assert_string_equal(m.headers[0].name, "ce_type");
    assert_string_equal(m.headers[0].value, "deploy");
    assert_int_equal(m.headers[1].value_len, 2);
    assert_memory_equal(m.headers[1].value, "\x00\xff", 2);
    assert_string_equal(m.value, "{\"a\":1}");
    assert_int_equal(strlen(m.id), 64);
    msg_free(&m);
    assert_int_equal(spool_next(f->s, &m, &seq), HB_OK);
    assert_int_equal(seq, 8);
    assert_null(m.key);
    assert_int_equal(m.value_len, 0);
    assert_int_equal(m.header_cnt, 0);
    assert_string_equal(m.id, "");
    msg_free(&m);
    expect_eof(f->s);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.quarantined + st.truncated_bytes, 0);
    assert_int_equal(append_i(f->s, 9, 10), 9);
}

/* ---- per-topic counts, the drain filter, rewind ----------------------------------------------- */

static int skip_topic(void *arg, const char *topic) { return strcmp(topic, (const char *)arg) == 0; }

/* ---- zeros written ahead (spool_opts.prealloc_bytes) ------------------------------------------ */

#define PREALLOC (64u << 10)

static spool_t *open_prealloc(fx_t *f, const spool_io_t *io) {
    char err[256] = "";
    spool_opts_t o = {.dir = f->dir, .prealloc_bytes = PREALLOC, .io = io};
    spool_t *s = spool_open(&o, err, sizeof err);
    if (!s)
        print_error("spool_open: %s\n", err);
    assert_non_null(s);
    return s;
}

/* The file runs ahead of the records in zeros; the spool counts only the records, and a
 * close cuts the zeros off. */
static void test_prealloc_runs_ahead_and_close_trims(void **state) {
    fx_t *f = *state;
    f->s = open_prealloc(f, NULL);
    for (int i = 1; i <= 3; i++)
        append_i(f->s, i, 100);
    assert_int_equal(spool_sync(f->s), HB_OK);
    spool_stats_t st;
    spool_stats(f->s, &st);
    off_t on_disk = fsize(fpath(f, SEG1));
    /* Filled once, at the first record, to prealloc_bytes past it. */
    assert_true(on_disk > (off_t)st.bytes && on_disk <= (off_t)(st.bytes + PREALLOC));
    int rc;
    char *out = inspect_to_string(f->dir, 0, &rc);
    assert_int_equal(rc, 0); /* the zeros are no tear */
    char want[64];
    snprintf(want, sizeof want, " preallocated=%lld records=3 first=1 last=3 status=ok",
             (long long)(on_disk - (off_t)st.bytes));
    assert_non_null(strstr(out, want));
    free(out);
    spool_close(f->s);
    f->s = NULL;
    assert_int_equal(fsize(fpath(f, SEG1)), (off_t)st.bytes);
    f->s = open_prealloc(f, NULL);
    spool_stats(f->s, &st);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.quarantined, 0);
    for (int i = 1; i <= 3; i++)
        expect_next(f->s, i, 100, (uint64_t)i);
    expect_eof(f->s);
}

/* Records that outgrow the zeros get more of them: each record lands at its offset, in order,
 * and the file is never more than prealloc_bytes ahead of the last record. */
static void test_prealloc_extends_in_steps(void **state) {
    fx_t *f = *state;
    f->s = open_prealloc(f, NULL);
    const int n = 400; /* about 4 times PREALLOC */
    for (int i = 1; i <= n; i++) {
        append_i(f->s, i, 600);
        spool_stats_t st;
        spool_stats(f->s, &st);
        off_t on_disk = fsize(fpath(f, SEG1));
        assert_true(on_disk >= (off_t)st.bytes);
        assert_true(on_disk <= (off_t)(st.bytes + PREALLOC));
    }
    assert_int_equal(spool_sync(f->s), HB_OK);
    for (int i = 1; i <= n; i++)
        expect_next(f->s, i, 600, (uint64_t)i);
    expect_eof(f->s);
}

/* A crash (no spool_close) leaves the zeros: recovery takes them as the end, silently, cuts
 * them off and loses nothing; a torn record in front of them is a torn tail, counted without
 * them. */
static void test_prealloc_crash_recovers_clean(void **state) {
    fx_t *f = *state;
    const int n = 50;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[256];
        spool_opts_t o = {.dir = f->dir, .prealloc_bytes = PREALLOC};
        spool_t *s = spool_open(&o, err, sizeof err);
        if (!s)
            _exit(2);
        for (int i = 1; i <= n; i++) {
            msg_t m;
            make_msg(&m, i, 200);
            if (spool_append(s, &m, NULL) != HB_OK)
                _exit(3);
            msg_free(&m);
        }
        _exit(spool_sync(s) == HB_OK ? 0 : 4);
    }
    int wst;
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    size_t len;
    unsigned char *b = slurp(fpath(f, SEG1), &len);
    size_t end = len;
    while (end > 0 && b[end - 1] == 0)
        end--;
    assert_true(len - end > PREALLOC / 2); /* the child's zeros are there */

    int lfd = capture_log(f);
    f->s = open_prealloc(f, NULL);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(st.truncated_bytes, 0);
    assert_int_equal(st.quarantined, 0);
    assert_int_equal(spool_pending(f->s), (uint64_t)n);
    assert_int_equal(fsize(fpath(f, SEG1)), (off_t)end);
    char *log = read_log(lfd);
    assert_null(strstr(log, "torn"));
    free(log);
    for (int i = 1; i <= n; i++)
        expect_next(f->s, i, 200, (uint64_t)i);
    expect_eof(f->s);
    spool_close(f->s);
    f->s = NULL;

    /* Again with the last record torn: its last 5 bytes lost, zeros after it. */
    memset(b + end - 5, 0, 5);
    spit(fpath(f, SEG1), b, len);
    f->s = open_prealloc(f, NULL);
    spool_stats(f->s, &st);
    assert_int_equal(spool_pending(f->s), (uint64_t)n - 1);
    /* Cut back to where the torn record began; counted with the zeros after it. */
    off_t cut = fsize(fpath(f, SEG1));
    assert_true(cut < (off_t)end - 200);
    assert_int_equal(st.truncated_bytes, len - (size_t)cut);
    log = read_log(lfd);
    assert_non_null(strstr(log, "torn tail truncated"));
    free(log);
    free(b);
    close(lfd);
}

/* A disk that refuses the zeros only ends the zero-filling: the record itself is written, the
 * batch syncs, and the file holds the records and nothing after them. */
static void test_prealloc_failure_is_not_an_append_failure(void **state) {
    fx_t *f = *state;
    hooks_reset();
    wr_fail_at = 2; /* 1: segment header, 2: the first zeros */
    wr_fail_errno = ENOSPC;
    f->s = open_prealloc(f, &hooks);
    append_i(f->s, 1, 100);
    append_i(f->s, 2, 100);
    assert_int_equal(spool_sync(f->s), HB_OK);
    spool_stats_t st;
    spool_stats(f->s, &st);
    assert_int_equal(fsize(fpath(f, SEG1)), (off_t)st.bytes);
    assert_int_equal(wr_calls, 4); /* header, failed zeros, two records: no zeros retried */
    reopen(f);
    expect_next(f->s, 1, 100, 1);
    expect_next(f->s, 2, 100, 2);
    expect_eof(f->s);
}

static void expect_next_skip(spool_t *s, const char *skip, int i, uint64_t want_seq) {
    msg_t m;
    uint64_t seq = 0;
    assert_int_equal(spool_next_skip(s, skip ? skip_topic : NULL, (void *)skip, &m, &seq), HB_OK);
    assert_int_equal(seq, want_seq);
    check_msg(&m, i, 10);
    msg_free(&m);
}

/* Unacked records per topic, kept through acks and a restart (recovered at open). */
static void test_topic_counts_survive_restart(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 0; i < 9; i++)
        append_i(f->s, i, 10);
    assert_int_equal(spool_sync(f->s), HB_OK);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.0"), 3);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.1"), 3);
    assert_int_equal(spool_topic_pending(f->s, "nope"), 0);
    /* ack records 0 and 1 (topics .0 and .1), nack record 2 (.2 stays counted) */
    for (int i = 0; i < 3; i++)
        expect_next(f->s, i, 10, (uint64_t)i + 1);
    assert_int_equal(spool_ack(f->s, 1), HB_OK);
    assert_int_equal(spool_ack(f->s, 2), HB_OK);
    spool_nack(f->s, 3);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.0"), 2);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.1"), 2);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.2"), 3);
    reopen(f);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.0"), 2);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.1"), 2);
    assert_int_equal(spool_topic_pending(f->s, "cloud66.events.2"), 3);
    assert_int_equal(spool_topic_count(f->s), 3);
    uint64_t n = 0;
    size_t i = 0;
    for (const char *t; (t = spool_topic_at(f->s, i, &n)) != NULL; i++)
        assert_int_equal(n, spool_topic_pending(f->s, t));
    assert_int_equal(i, 3);
}

/* The filter passes over a topic's records (they stay pending and counted); rewind hands them
 * out again in seq order, skipping what is in flight; a nacked record of a filtered topic goes
 * back to pending too. */
static void test_skip_then_rewind(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 0; i < 6; i++)
        append_i(f->s, i, 10); /* topics .0 .1 .2 .0 .1 .2 */
    assert_int_equal(spool_sync(f->s), HB_OK);
    const char *parked = "cloud66.events.1";
    expect_next_skip(f->s, parked, 0, 1);
    expect_next_skip(f->s, parked, 2, 3);
    expect_next_skip(f->s, parked, 3, 4);
    expect_next_skip(f->s, parked, 5, 6);
    msg_t m;
    assert_int_equal(spool_next_skip(f->s, skip_topic, (void *)parked, &m, NULL), HB_ERR_EOF);
    assert_int_equal(spool_topic_pending(f->s, parked), 2);
    assert_int_equal(spool_inflight(f->s), 4);
    assert_int_equal(spool_topic_inflight(f->s, parked), 0);
    assert_int_equal(spool_topic_inflight(f->s, "cloud66.events.0"), 2);
    /* Without a rewind the cursor stays past them. */
    expect_eof(f->s);
    spool_rewind(f->s);
    expect_next(f->s, 1, 10, 2);
    /* record 2 (topic .1) fails while its topic gets parked: the filter sends it back */
    spool_nack(f->s, 2);
    assert_int_equal(spool_next_skip(f->s, skip_topic, (void *)parked, &m, NULL), HB_ERR_EOF);
    spool_rewind(f->s);
    expect_next(f->s, 1, 10, 2);
    expect_next(f->s, 4, 10, 5);
    expect_eof(f->s);
    assert_int_equal(spool_topic_inflight(f->s, parked), 2);
    for (uint64_t q = 1; q <= 6; q++)
        assert_int_equal(spool_ack(f->s, q), HB_OK);
    assert_int_equal(spool_topic_pending(f->s, parked), 0);
    assert_int_equal(spool_topic_inflight(f->s, parked), 0);
    assert_int_equal(spool_topic_inflight(f->s, "cloud66.events.0"), 0);
    assert_int_equal(spool_pending(f->s), 0);
}

/* spool_scan reads a spool without its lock, from the checkpoint on. */
typedef struct scan_seen {
    int n;
    uint64_t seqs[16];
} scan_seen_t;

static void on_scan(void *arg, uint64_t seq, const msg_t *m) {
    scan_seen_t *s = arg;
    check_msg(m, (int)seq - 1, 10);
    s->seqs[s->n++] = seq;
}

static void test_scan_reads_unlocked_from_the_checkpoint(void **state) {
    fx_t *f = *state;
    f->s = open_default(f);
    for (int i = 0; i < 5; i++)
        append_i(f->s, i, 10);
    assert_int_equal(spool_sync(f->s), HB_OK);
    expect_next(f->s, 0, 10, 1);
    expect_next(f->s, 1, 10, 2);
    assert_int_equal(spool_ack(f->s, 1), HB_OK);
    assert_int_equal(spool_ack(f->s, 2), HB_OK);
    reopen(f); /* checkpoint at 3 */
    scan_seen_t seen = {0};
    assert_int_equal(spool_scan(f->dir, on_scan, &seen), 0); /* while f->s holds the lock */
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.seqs[0], 3);
    assert_int_equal(seen.seqs[2], 5);
    char missing[300];
    snprintf(missing, sizeof missing, "%s/none", f->root);
    seen.n = 0;
    assert_int_equal(spool_scan(missing, on_scan, &seen), 0);
    assert_int_equal(seen.n, 0);
}


int main(void) {

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_roundtrip),
        T(test_invalid_append),
        T(test_reopen_continues_seq),
        T(test_out_of_order_acks_delete_segments),
        T(test_nack_redelivery_order),
        T(test_segment_rollover),
        T(test_torn_tail_every_offset),
        T(test_flipped_bit_middle_record),
        T(test_truncated_segment_header),
        T(test_unknown_version),
        T(test_garbage_never_crashes),
        T(test_max_bytes),
        T(test_write_enospc),
        T(test_short_write),
        T(test_fdatasync_failure_drops_batch),
        T(test_split_sync_covers_only_the_batch_it_began),
        T(test_split_sync_failure_fails_the_next_batch_too),
        T(test_split_sync_survives_a_roll_while_in_flight),
        T(test_split_sync_fails_when_a_roll_dropped_its_batch),
        T(test_checkpoint_prevents_replay),
        T(test_crash_replays_bounded),
        T(test_prealloc_runs_ahead_and_close_trims),
        T(test_prealloc_extends_in_steps),
        T(test_prealloc_crash_recovers_clean),
        T(test_prealloc_failure_is_not_an_append_failure),
        T(test_min_free_refuses_at_the_limit),
        T(test_min_free_rereads_by_bytes_and_time),
        T(test_min_free_counts_the_zeros_ahead),
        T(test_second_open_fails),
        T(test_inspect),
        T(test_golden_bytes),
        T(test_golden_fixture),
        T(test_topic_counts_survive_restart),
        T(test_skip_then_rewind),
        T(test_scan_reads_unlocked_from_the_checkpoint),
    };
#undef T
    log_set_level(LOG_LVL_WARN); /* the "opened" info lines would drown the test output */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
