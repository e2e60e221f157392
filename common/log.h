/* log.h: structured logs, one JSON object a line on stderr, level checked before formatting.
 *
 * The logger is the one piece of process-wide state (as in Redis): a level and a file
 * descriptor. Everything else lives in the daemon's state struct.
 *
 *   log_error("spool", "segment corrupt", "segment", path, "#offset", (long long)off, NULL);
 *
 * After the message come key/value pairs ended by NULL. A key is a string; its value is a
 * `const char *` (NULL prints null), or, when the key starts with '#', a `long long`
 * (the '#' is not printed). Keys are written as they are: pass plain identifiers.
 * @locality any thread (one write() a line; hookbridge logs from its HTTP loops and the main
 * loop).
 */
#ifndef HB_LOG_H
#define HB_LOG_H

typedef enum log_level {
    LOG_LVL_DEBUG = 0,
    LOG_LVL_INFO,
    LOG_LVL_WARN,
    LOG_LVL_ERROR,
    LOG_LVL_OFF
} log_level_t;

/* Written by log_set_level (the main loop, at start and on a reload), read by every HTTP loop's
 * thread: accessed with relaxed atomics only (a loop may see a new level a little late). */
extern log_level_t log_min_level;

void log_set_level(log_level_t lvl);
void log_set_fd(int fd); /* default 2 (stderr) */
/* Parses "debug", "info", "warn", "error", "off". Returns 0, or -1 for an unknown name. */
int log_level_parse(const char *name, log_level_t *out);
const char *log_level_name(log_level_t lvl);

void log_write(log_level_t lvl, const char *component, const char *msg, ...);

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((lvl) >= __atomic_load_n(&log_min_level, __ATOMIC_RELAXED))                            \
            log_write((lvl), __VA_ARGS__);                                                         \
    } while (0)
#define log_debug(...) log_at(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...) log_at(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...) log_at(LOG_LVL_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_LVL_ERROR, __VA_ARGS__)

#endif
