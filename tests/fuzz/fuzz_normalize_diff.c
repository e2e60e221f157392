/* fuzz_normalize_diff.c: libFuzzer harness holding the normaliser's fast path to json-c's: on
 * every input, in both modes and at two depth limits, the daemon's path (NORM_PATH_AUTO) gives
 * the status, the error text and the record of json-c's path alone (NORM_PATH_JSONC), byte for
 * byte; and where the fast path alone (NORM_PATH_FAST) takes the input, json-c accepts it and
 * gives the same record. Any difference aborts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "normalize.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One router for the whole run, only read; unlike fuzz_normalize's, with a rule that renames a
 * built-in family and a topic of its own, so both paths route through every kind of entry. */
static route_t *diff_router(void) {
    static route_t *r;
    char err[256];
    if (r)
        return r;
    log_set_level(LOG_LVL_OFF);
    r = route_new("hb.");
    if (!r || route_add_rule(r, "stack.redeploy.*", "redeploys", err, sizeof err) != HB_OK ||
        route_set_topic(r, "backup", "cloud66-backups", err, sizeof err) != HB_OK)
        abort();
    return r;
}

static void differ(const char *what, norm_mode_t mode, int depth) {
    fprintf(stderr, "fuzz_normalize_diff: %s differs (mode %d, max_depth %d)\n", what, (int)mode,
            depth);
    abort();
}

static int same_bytes(const void *a, size_t an, const void *b, size_t bn) {
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static void compare(const msg_t *a, const msg_t *b, norm_mode_t mode, int depth) {
    if (!a->topic || !b->topic || strcmp(a->topic, b->topic) != 0)
        differ("topic", mode, depth);
    if ((a->key == NULL) != (b->key == NULL) || !same_bytes(a->key, a->key_len, b->key, b->key_len))
        differ("key", mode, depth);
    if (!same_bytes(a->value, a->value_len, b->value, b->value_len))
        differ("value", mode, depth);
    if (strcmp(a->id, b->id) != 0 || a->accept_ms != b->accept_ms)
        differ("id or accept time", mode, depth);
    if (a->header_cnt != b->header_cnt)
        differ("header count", mode, depth);
    for (size_t i = 0; i < a->header_cnt; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) != 0 ||
            !same_bytes(a->headers[i].value, a->headers[i].value_len, b->headers[i].value,
                        b->headers[i].value_len))
            differ("header", mode, depth);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const norm_mode_t modes[] = {NORM_STRUCTURED, NORM_BINARY};
    static const int depths[] = {0, 4};
    const char *body = (const char *)data;
    route_t *r = diff_router();
    for (size_t mi = 0; mi < sizeof modes / sizeof *modes; mi++) {
        for (size_t di = 0; di < sizeof depths / sizeof *depths; di++) {
            norm_opts_t o = {.source = "/cloud66", .mode = modes[mi], .max_depth = depths[di]};
            msg_t ref, got, fast;
            char ref_err[512], got_err[512], fast_err[512];
            o.path = NORM_PATH_JSONC;
            hb_status_t ref_st =
                norm_build(&o, r, body, size, 1757011079123LL, &ref, ref_err, sizeof ref_err);
            o.path = NORM_PATH_AUTO;
            hb_status_t got_st =
                norm_build(&o, r, body, size, 1757011079123LL, &got, got_err, sizeof got_err);
            o.path = NORM_PATH_FAST;
            hb_status_t fast_st =
                norm_build(&o, r, body, size, 1757011079123LL, &fast, fast_err, sizeof fast_err);
            if (got_st != ref_st)
                differ("status", modes[mi], depths[di]);
            if (ref_st == HB_OK)
                compare(&got, &ref, modes[mi], depths[di]);
            else if (strcmp(got_err, ref_err) != 0)
                differ("error text", modes[mi], depths[di]);
            if (fast_st == HB_OK) {
                if (ref_st != HB_OK)
                    differ("verdict (the fast path took what json-c refuses)", modes[mi],
                           depths[di]);
                compare(&fast, &ref, modes[mi], depths[di]);
            } else if (fast_st != HB_ERR_NOT_FOUND && fast_st != HB_ERR_NOMEM) {
                differ("fast-path status", modes[mi], depths[di]);
            }
            msg_free(&ref);
            msg_free(&got);
            msg_free(&fast);
        }
    }
    return 0;
}
