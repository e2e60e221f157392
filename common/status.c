/* status.c: names for hb_status_t. */
#include "status.h"

const char *hb_status_str(hb_status_t st) {
    static const char *const names[HB_ERR__COUNT] = {
        [HB_OK] = "ok",
        [HB_ERR_NOMEM] = "nomem",
        [HB_ERR_IO] = "io",
        [HB_ERR_NOSPACE] = "nospace",
        [HB_ERR_INVALID] = "invalid",
        [HB_ERR_JSON] = "invalid_json",
        [HB_ERR_NOT_OBJECT] = "not_an_object",
        [HB_ERR_NO_TYPE] = "missing_event_type",
        [HB_ERR_CORRUPT] = "corrupt",
        [HB_ERR_TRUNCATED] = "truncated",
        [HB_ERR_VERSION] = "unknown_version",
        [HB_ERR_EOF] = "eof",
        [HB_ERR_NOT_FOUND] = "not_found",
        [HB_ERR_CONFIG] = "config",
        [HB_ERR_KAFKA] = "kafka",
        [HB_ERR_TIMEOUT] = "timeout",
    };
    if ((unsigned)st >= HB_ERR__COUNT || !names[st])
        return "unknown";
    return names[st];
}
