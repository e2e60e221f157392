/* hbtime.h: wall-clock reads and RFC 3339 formatting. */
#ifndef HB_HBTIME_H
#define HB_HBTIME_H

#include <stddef.h>
#include <stdint.h>

#define HBTIME_RFC3339_LEN 32 /* enough for "YYYY-MM-DDTHH:MM:SS.mmmZ" and NUL */

int64_t hbtime_now_ms(void);      /* CLOCK_REALTIME, milliseconds since the Unix epoch */
int64_t hbtime_mono_ms(void);     /* CLOCK_MONOTONIC, milliseconds */
/* Formats unix_ms as RFC 3339 UTC: "2025-09-04T18:37:59Z", or with millis != 0
 * "2025-09-04T18:37:59.123Z". Returns the length written, or 0 if the time is out of
 * range (years outside 0000-9999) or buf is too small. */
size_t hbtime_rfc3339(int64_t unix_ms, int millis, char *buf, size_t len);

#endif
