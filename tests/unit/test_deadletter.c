/* test_deadletter.c: dead-letter records, the folder, and the list/replay tools. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "deadletter.h"
#include "log.h"
#include "spool.h"

typedef struct fx {
    char root[64];
    char dir[128];
} fx_t;

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->root, sizeof f->root, "/tmp/hb-dl-test-XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    if (mkdir(f->dir, 0700) != 0) /* the daemon's spool directory, where the folder goes */
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void make(msg_t *m, const char *topic, const char *key, int n) {
    char v[64];
    memset(m, 0, sizeof *m);
    m->topic = strdup(topic);
    m->key = strdup(key);
    m->key_len = strlen(key);
    snprintf(v, sizeof v, "{\"n\":%d}", n);
    m->value = strdup(v);
    m->value_len = strlen(v);
    m->accept_ms = 1700000000000 + n;
    snprintf(m->id, sizeof m->id, "id-%d", n);
    msg_add_header(m, "ce_type", "stack.created", 13);
}

static const char *hdr(const msg_t *m, const char *name) {
    const msg_header_t *h = msg_header(m, name);
    return h ? h->value : NULL;
}

static void test_build_adds_the_headers(void **state) {
    (void)state;
    msg_t orig, dl;
    make(&orig, "cloud66.stack", "k1", 1);
    assert_int_equal(deadletter_build(&dl, &orig, "cloud66.deadletter",
                                      RD_KAFKA_RESP_ERR_INVALID_RECORD, "invalid", 3,
                                      1700000000123),
                     0);
    assert_string_equal(dl.topic, "cloud66.deadletter");
    assert_int_equal(dl.key_len, 2);
    assert_memory_equal(dl.key, "k1", 2);
    assert_int_equal(dl.value_len, orig.value_len);
    assert_string_equal(dl.id, "id-1");
    assert_string_equal(hdr(&dl, "ce_type"), "stack.created");
    assert_string_equal(hdr(&dl, DEADLETTER_HDR_TOPIC), "cloud66.stack");
    assert_string_equal(hdr(&dl, DEADLETTER_HDR_ERROR), "INVALID_RECORD");
    assert_string_equal(hdr(&dl, DEADLETTER_HDR_REASON), "invalid");
    assert_string_equal(hdr(&dl, DEADLETTER_HDR_ATTEMPTS), "3");
    assert_string_equal(hdr(&dl, DEADLETTER_HDR_FIRST), "1700000000123");
    msg_free(&dl);
    msg_free(&orig);
}

/* Stored dead letters are listed (while the folder is held), replayed into the spool in order
 * without their hb_dlq_* headers, and gone from the folder after. */
static void test_store_list_replay(void **state) {
    fx_t *f = *state;
    char err[512] = "";
    deadletter_t *dl = deadletter_open(f->dir, err, sizeof err);
    assert_non_null(dl);
    for (int i = 0; i < 3; i++) {
        msg_t orig, d;
        make(&orig, i == 1 ? "cloud66.backup" : "cloud66.stack", "k", i);
        assert_int_equal(deadletter_build(&d, &orig, orig.topic,
                                          RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "too large", 1,
                                          5),
                         0);
        assert_int_equal(deadletter_store(dl, &d), HB_OK);
        msg_free(&d);
        msg_free(&orig);
    }
    assert_int_equal(deadletter_records(dl), 3);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    FILE *errf = fopen("/dev/null", "w");
    assert_int_equal(deadletter_list(f->dir, out, errf), 0);
    fclose(out);
    assert_non_null(strstr(text, "seq=1 topic=\"cloud66.stack\" key=\"k\" id=id-0 "
                                 "error=MSG_SIZE_TOO_LARGE attempts=1"));
    assert_non_null(strstr(text, "topic=\"cloud66.backup\""));
    assert_non_null(strstr(text, "summary dead_letters=3"));
    free(text);

    /* a daemon holds the folder: replay needs the spool's lock first, then the folder's */
    out = open_memstream(&text, &len);
    assert_int_equal(deadletter_replay(f->dir, out, errf), 1);
    fclose(out);
    free(text);
    deadletter_close(dl);

    spool_opts_t so = {.dir = f->dir};
    spool_t *held = spool_open(&so, err, sizeof err);
    assert_non_null(held);
    out = open_memstream(&text, &len);
    assert_int_equal(deadletter_replay(f->dir, out, errf), 1); /* the daemon's spool lock */
    fclose(out);
    free(text);
    spool_close(held);

    out = open_memstream(&text, &len);
    assert_int_equal(deadletter_replay(f->dir, out, errf), 0);
    fclose(out);
    assert_non_null(strstr(text, "replayed 3 dead letters"));
    free(text);

    spool_t *s = spool_open(&so, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(spool_pending(s), 3);
    for (int i = 0; i < 3; i++) {
        msg_t m;
        assert_int_equal(spool_next(s, &m, NULL), HB_OK);
        assert_string_equal(m.topic, i == 1 ? "cloud66.backup" : "cloud66.stack");
        char want[32];
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        assert_string_equal(m.value, want);
        assert_int_equal(m.header_cnt, 1); /* ce_type only */
        assert_null(msg_header(&m, DEADLETTER_HDR_TOPIC));
        msg_free(&m);
    }
    spool_close(s);
    out = open_memstream(&text, &len);
    assert_int_equal(deadletter_list(f->dir, out, errf), 0);
    fclose(out);
    assert_non_null(strstr(text, "summary dead_letters=0"));
    free(text);
    /* nothing left: a second replay is a no-op */
    out = open_memstream(&text, &len);
    assert_int_equal(deadletter_replay(f->dir, out, errf), 0);
    fclose(out);
    assert_non_null(strstr(text, "replayed 0 dead letters"));
    free(text);
    fclose(errf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_adds_the_headers),
        cmocka_unit_test_setup_teardown(test_store_list_replay, setup, teardown),
    };
    log_set_level(LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
