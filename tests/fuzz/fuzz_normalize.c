/* fuzz_normalize.c: libFuzzer harness: norm_build on arbitrary bytes, structured and binary. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "msg.h"
#include "normalize.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One router for the whole run, like the daemon's (built once, only read). */
static route_t *router(void) {
    static route_t *r;
    if (!r) {
        log_set_level(LOG_LVL_OFF);
        char err[256];
        if (!(r = route_new("cloud66.")) ||
            route_add_rule(r, "server.*", "infra", err, sizeof err) != HB_OK)
            abort();
    }
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const norm_mode_t modes[] = {NORM_STRUCTURED, NORM_BINARY};
    route_t *r = router();
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        norm_opts_t o = {.source = "/cloud66", .mode = modes[i], .max_depth = 16};
        msg_t m;
        char err[512];
        hb_status_t st = norm_build(&o, r, (const char *)data, size, 1757011079123LL, &m, err,
                                    sizeof err);
        if (st == HB_OK) {
            /* What the dispatcher relies on: a topic, a 64-hex id, a value. */
            if (!m.topic || !*m.topic || strlen(m.id) != MSG_ID_LEN || !m.value)
                abort();
            msg_free(&m);
        } else if (memchr(err, '\0', sizeof err) == NULL) {
            abort(); /* errstr must always be terminated */
        }
    }
    return 0;
}
