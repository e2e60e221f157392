/* fuzz_spool.c: libFuzzer harness: the input is a spool segment file; recovery, the drain cursor
 * and the offline inspector must survive it (no crash, no leak, no hang).
 *
 * With HB_FUZZ_SEED_OUT=DIR in the environment, LLVMFuzzerInitialize also writes a small valid
 * segment made by the real writer (spool_append + spool_sync) into DIR, as a seed that stays in
 * step with the format. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "msg.h"
#include "spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];   /* the spool directory, reused by every input */
static FILE *g_devnull;

/* Removes every file in dir and in dir/quarantine (the spool makes no deeper levels). */
static void empty_dir(const char *dir, int depth) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (depth == 0 && strcmp(e->d_name, "quarantine") == 0) {
            empty_dir(p, 1);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

/* A three-record segment from the real writer, copied to out_dir/generated.seg. */
static void write_seed(const char *out_dir) {
    char dir[] = "/tmp/hb-fuzz-seed-XXXXXX", err[256], path[512];
    if (!mkdtemp(dir))
        abort();
    spool_opts_t o = {.dir = dir};
    spool_t *s = spool_open(&o, err, sizeof err);
    if (!s)
        abort();
    for (int i = 0; i < 3; i++) {
        msg_t m = {0};
        uint64_t seq;
        m.topic = "cloud66.stack";
        m.key = i == 1 ? NULL : "stack-1";
        m.key_len = m.key ? 7 : 0;
        m.value = "{\"event_type\":\"stack.created\"}";
        m.value_len = strlen(m.value);
        m.accept_ms = 1757011079000LL + i;
        snprintf(m.id, sizeof m.id, "%064d", i);
        msg_header_t h = {.name = "content-type", .name_len = 12, .value = "application/json",
                          .value_len = 16};
        m.headers = &h;
        m.header_cnt = i == 2 ? 0 : 1;
        if (spool_append(s, &m, &seq) != HB_OK)
            abort();
    }
    if (spool_sync(s) != HB_OK)
        abort();
    spool_close(s);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".seg") == 0) {
            char out[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            snprintf(out, sizeof out, "%s/generated.seg", out_dir);
            FILE *f = fopen(path, "rb");
            static char buf[1 << 16];
            size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
            if (f)
                fclose(f);
            if (write_file(out, buf, len) != 0)
                abort();
        }
    }
    if (d)
        closedir(d);
    empty_dir(dir, 0);
    rmdir(dir);
}

static void remove_g_dir(void) {
    empty_dir(g_dir, 0);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    log_set_level(LOG_LVL_OFF);
    /* tmpfs when there is one: the spool fsyncs, and on a disk that is most of the time. */
    struct stat st;
    snprintf(g_dir, sizeof g_dir, "%s/hb-fuzz-spool-XXXXXX",
             stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
    if (!mkdtemp(g_dir) || !(g_devnull = fopen("/dev/null", "w")))
        abort();
    atexit(remove_g_dir);
    const char *seed_out = getenv("HB_FUZZ_SEED_OUT");
    if (seed_out)
        write_seed(seed_out);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[256];
    /* Name the file after the base_seq its header claims, so a consistent header gets past the
     * name check and the records behind it are exercised. */
    uint64_t base = 0;
    if (size >= 16)
        for (int i = 7; i >= 0; i--)
            base = base << 8 | data[8 + i];
    snprintf(path, sizeof path, "%s/%020llu.seg", g_dir, (unsigned long long)base);
    if (write_file(path, data, size) != 0)
        abort();

    spool_opts_t o = {.dir = g_dir, .segment_bytes = 64 * 1024};
    spool_t *s = spool_open(&o, err, sizeof err);
    if (s) {
        msg_t m;
        uint64_t seq;
        /* Drain everything once, acking every other record and nacking the rest, which then
         * come back: both paths of the cursor. Bounded, so a cursor bug shows as a crash, not
         * a hang. */
        for (int i = 0; i < 4096; i++) {
            hb_status_t st = spool_next(s, &m, &seq);
            if (st != HB_OK)
                break;
            msg_free(&m);
            if (i % 2 == 0)
                spool_ack(s, seq);
            else if (i < 64)
                spool_nack(s, seq);
            else
                spool_ack(s, seq);
        }
        spool_close(s);
    }
    spool_inspect(g_dir, 1, g_devnull);
    empty_dir(g_dir, 0);
    return 0;
}
