/* probe.h: `hookbridge healthcheck URL`, the container's health probe: one HTTP GET of the admin
 * listener's /healthz (or any http:// URL) with a deadline.
 *
 * Why in the binary: the image's HEALTHCHECK must run something the runtime image holds, and the
 * image holds nothing but hookbridge, hb-consume and their shared libraries (no shell, no curl).
 * The request is HTTP/1.1 with "Connection: close", made by libevent's evhttp client on a private
 * event loop; the deadline covers resolving, connecting, sending and reading the answer.
 *
 * @locality the calling thread; blocks for at most timeout_ms (plus name resolution, which
 * evhttp does synchronously for a host name: use a numeric address in a health check).
 */
#ifndef HB_PROBE_H
#define HB_PROBE_H

#include <stddef.h>

#include "status.h"

/* GETs url (http://HOST[:PORT]/PATH; HOST may be a name, an IPv4 or a [V6] address; PORT
 * defaults to 80) and waits at most timeout_ms (>= 1) for the whole answer.
 * Returns HB_OK with *http_status set to the answer's status code (any code: the caller decides
 * what is healthy); HB_ERR_INVALID for a URL this probe cannot request (not http://, no host, a
 * bad port); HB_ERR_TIMEOUT when the deadline passed; HB_ERR_IO when the connection failed or
 * closed before a whole answer came. On any error, errstr holds the reason, naming the URL. */
hb_status_t probe_http_get(const char *url, int timeout_ms, int *http_status, char *errstr,
                           size_t errlen);

/* The `healthcheck` command line: argv[0] is "healthcheck", then [--timeout-ms N] URL.
 * Prints "URL: STATUS" on stdout and returns 0 for a 2xx answer; prints the reason on stderr and
 * returns 1 for any other answer or no answer; 2 for bad usage. */
int probe_main(int argc, char **argv);

#endif
