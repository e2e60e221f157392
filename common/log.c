/* log.c: JSON-lines logger. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "hbtime.h"

log_level_t log_min_level = LOG_LVL_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_set_level(log_level_t lvl) { __atomic_store_n(&log_min_level, lvl, __ATOMIC_RELAXED); }
void log_set_fd(int fd) { log_fd = fd; }

const char *log_level_name(log_level_t lvl) {
    return (unsigned)lvl <= LOG_LVL_OFF ? level_names[lvl] : "?";
}

int log_level_parse(const char *name, log_level_t *out) {
    for (int i = 0; i <= LOG_LVL_OFF; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void log_write(log_level_t lvl, const char *component, const char *msg, ...) {
    int saved = errno; /* logging must not disturb the caller's errno */
    char ts[HBTIME_RFC3339_LEN];
    buf_t b = {0};
    size_t tl = hbtime_rfc3339(hbtime_now_ms(), 1, ts, sizeof ts);

    buf_puts(&b, "{\"time\":\"");
    buf_append(&b, ts, tl);
    buf_puts(&b, "\",\"level\":\"");
    buf_puts(&b, log_level_name(lvl));
    buf_puts(&b, "\",\"component\":");
    buf_json_str(&b, component, strlen(component));
    buf_puts(&b, ",\"msg\":");
    buf_json_str(&b, msg, strlen(msg));

    va_list ap;
    va_start(ap, msg);
    const char *key;
    while ((key = va_arg(ap, const char *)) != NULL) {
        buf_putc(&b, ',');
        if (key[0] == '#') {
            long long v = va_arg(ap, long long);
            buf_json_str(&b, key + 1, strlen(key + 1));
            buf_printf(&b, ":%lld", v);
        } else {
            const char *v = va_arg(ap, const char *);
            buf_json_str(&b, key, strlen(key));
            buf_putc(&b, ':');
            if (v)
                buf_json_str(&b, v, strlen(v));
            else
                buf_puts(&b, "null");
        }
    }
    va_end(ap);
    buf_puts(&b, "}\n");

    if (buf_ok(&b)) {
        const char *p = b.data;
        size_t left = b.len;
        while (left > 0) {
            ssize_t n = write(log_fd, p, left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            p += n;
            left -= (size_t)n;
        }
    }
    buf_free(&b);
    errno = saved;
}
