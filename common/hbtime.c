/* hbtime.c: wall-clock reads and RFC 3339 formatting. */
#include "hbtime.h"

#include <time.h>

int64_t hbtime_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hbtime_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Days since 1970-01-01 to a proleptic Gregorian date: the 400-year era arithmetic that makes
 * gmtime_r needless here (glibc's takes the time-zone lock on every call, and the formatting
 * was a printf: both per event). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
    z += 719468; /* days from 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                  /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);           /* [0, 365], from March */
    int64_t mp = (5 * doy + 2) / 153;                                /* [0, 11], March = 0 */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static char *put2(char *p, int v) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

size_t hbtime_rfc3339(int64_t unix_ms, int millis, char *buf, size_t len) {
    /* Floor division: a time before the epoch still has a non-negative ms and second of day. */
    int64_t secs = unix_ms / 1000;
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t year;
    int mon, mday;
    civil_from_days(days, &year, &mon, &mday);
    size_t need = millis ? 24 : 20; /* "YYYY-MM-DDTHH:MM:SS(.mmm)Z" */
    if (year < 0 || year > 9999 || len < need + 1)
        return 0;
    char *p = buf;
    p = put2(p, (int)(year / 100));
    p = put2(p, (int)(year % 100));
    *p++ = '-';
    p = put2(p, mon);
    *p++ = '-';
    p = put2(p, mday);
    *p++ = 'T';
    p = put2(p, (int)(sod / 3600));
    *p++ = ':';
    p = put2(p, (int)(sod / 60 % 60));
    *p++ = ':';
    p = put2(p, (int)(sod % 60));
    if (millis) {
        *p++ = '.';
        *p++ = (char)('0' + ms / 100);
        p = put2(p, ms % 100);
    }
    *p++ = 'Z';
    *p = '\0';
    return need;
}
