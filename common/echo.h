/* echo.h: client text quoted back in an error answer or a log line, made safe to quote.
 *
 * Paths, header values and payload strings come from strangers. The JSON writers copy bytes
 * >= 0x80 as they are, so raw client bytes would make an answer or a log line invalid UTF-8.
 * echo_text keeps at most max bytes and turns anything outside printable ASCII (and '"', '\\')
 * into '?', appending "..." when it cut: the result needs no further escaping anywhere.
 *
 * @locality any thread; pure.
 */
#ifndef HB_ECHO_H
#define HB_ECHO_H

#include <stddef.h>

/* Writes the safe form of s[0..n) into out (always NUL-terminated when outlen > 0) and returns
 * out. outlen should be at least max + 4. */
char *echo_text(const char *s, size_t n, size_t max, char *out, size_t outlen);

#endif
