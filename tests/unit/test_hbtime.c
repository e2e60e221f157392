/* test_hbtime.c: hbtime_rfc3339 writes what gmtime_r and strftime would, over the whole range
 * it accepts (years 0000 to 9999), and refuses what is outside it or does not fit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hbtime.h"

/* The reference: libc's calendar and printf. */
static size_t reference(int64_t unix_ms, int millis, char *buf, size_t len) {
    int64_t secs = unix_ms / 1000;
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999)
        return 0;
    int n = millis ? snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms)
                   : snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return n < 0 || (size_t)n >= len ? 0 : (size_t)n;
}

static void same(int64_t unix_ms) {
    for (int millis = 0; millis <= 1; millis++) {
        char want[HBTIME_RFC3339_LEN], got[HBTIME_RFC3339_LEN];
        size_t wn = reference(unix_ms, millis, want, sizeof want);
        memset(got, 'x', sizeof got);
        size_t gn = hbtime_rfc3339(unix_ms, millis, got, sizeof got);
        if (wn != gn || (wn && strcmp(want, got) != 0))
            fail_msg("%lld ms (millis %d): want \"%s\" (%zu), got \"%.*s\" (%zu)",
                     (long long)unix_ms, millis, wn ? want : "", wn, (int)gn, got, gn);
    }
}

static void t_known_values(void **state) {
    (void)state;
    char b[HBTIME_RFC3339_LEN];
    assert_int_equal(hbtime_rfc3339(0, 0, b, sizeof b), 20);
    assert_string_equal(b, "1970-01-01T00:00:00Z");
    assert_int_equal(hbtime_rfc3339(1757011079123LL, 1, b, sizeof b), 24);
    assert_string_equal(b, "2025-09-04T18:37:59.123Z");
    assert_int_equal(hbtime_rfc3339(-1, 1, b, sizeof b), 24);
    assert_string_equal(b, "1969-12-31T23:59:59.999Z");
    assert_int_equal(hbtime_rfc3339(951782400000LL, 0, b, sizeof b), 20); /* a 400-year leap day */
    assert_string_equal(b, "2000-02-29T00:00:00Z");
}

static void t_edges_of_the_range(void **state) {
    (void)state;
    const int64_t first = -62167219200000LL; /* 0000-01-01T00:00:00Z */
    const int64_t last = 253402300799999LL;  /* 9999-12-31T23:59:59.999Z */
    char b[HBTIME_RFC3339_LEN];
    assert_int_equal(hbtime_rfc3339(first, 1, b, sizeof b), 24);
    assert_string_equal(b, "0000-01-01T00:00:00.000Z");
    assert_int_equal(hbtime_rfc3339(last, 1, b, sizeof b), 24);
    assert_string_equal(b, "9999-12-31T23:59:59.999Z");
    assert_int_equal(hbtime_rfc3339(first - 1, 1, b, sizeof b), 0);
    assert_int_equal(hbtime_rfc3339(last + 1, 0, b, sizeof b), 0);
    assert_int_equal(hbtime_rfc3339(INT64_MAX, 0, b, sizeof b), 0);
    assert_int_equal(hbtime_rfc3339(INT64_MIN, 1, b, sizeof b), 0);
    for (int64_t d = -3000; d <= 3000; d += 7)
        same(first + d), same(last + d);
}

static void t_too_small_a_buffer(void **state) {
    (void)state;
    char b[HBTIME_RFC3339_LEN];
    assert_int_equal(hbtime_rfc3339(0, 0, b, 20), 0); /* no room for the NUL */
    assert_int_equal(hbtime_rfc3339(0, 0, b, 21), 20);
    assert_int_equal(hbtime_rfc3339(0, 1, b, 24), 0);
    assert_int_equal(hbtime_rfc3339(0, 1, b, 25), 24);
}

/* Every day from 1900 to 2200 at its first and last second, then random instants over the range. */
static void t_matches_gmtime(void **state) {
    (void)state;
    for (int64_t day = -25567; day <= 84006; day++)
        for (int64_t sod = 0; sod < 86400; sod += 86399)
            same((day * 86400 + sod) * 1000 + day % 1000);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        same((int64_t)(x % 315569520000000ULL) - 62167219200000LL - 5000);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_known_values),
        cmocka_unit_test(t_edges_of_the_range),
        cmocka_unit_test(t_too_small_a_buffer),
        cmocka_unit_test(t_matches_gmtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
