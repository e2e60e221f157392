/* buf.h: a growable byte buffer, the one used by the log, the JSON writer and the encoders. */
#ifndef HB_BUF_H
#define HB_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "status.h"

/* A buffer owns `data` (heap, NUL-terminated after `len` whenever len > 0 or cap > 0).
 * Zero-initialise (`buf_t b = {0};`) to start; buf_free() releases it. */
typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set once an append failed; later appends are no-ops; check with buf_ok() */
} buf_t;

hb_status_t buf_reserve(buf_t *b, size_t extra);
void buf_append_slow(buf_t *b, const void *p, size_t n); /* buf_append when it must grow */
/* Inline fast paths: the JSON writers call these per member and per escaped byte. */
static inline void buf_append(buf_t *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap || b->oom) {
        buf_append_slow(b, p, n);
        return;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}
static inline void buf_putc(buf_t *b, char c) {
    if (b->len + 2 > b->cap || b->oom) {
        buf_append_slow(b, &c, 1);
        return;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
void buf_puts(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s[0..n) as a quoted JSON string, byte for byte as json-c writes it with
 * JSON_C_TO_STRING_NOSLASHESCAPE: \b \f \n \r \t \" \\ short escapes, other control
 * characters as \u00xx, everything else (bytes >= 0x80 included: callers pass UTF-8) as it is.
 * The normaliser's records depend on that (the golden files hold them). */
void buf_json_str(buf_t *b, const char *s, size_t n);
static inline int buf_ok(const buf_t *b) { return !b->oom; }
void buf_reset(buf_t *b); /* len = 0, keeps the allocation */
/* Hands the allocation to the caller (free() it); the buffer is left empty. */
char *buf_steal(buf_t *b, size_t *len);
void buf_free(buf_t *b);

#endif
