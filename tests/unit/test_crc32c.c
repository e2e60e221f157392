/* test_crc32c.c: CRC-32C against published check values and a bitwise reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

/* Bit at a time, straight from the definition: an independent check on the tables. */
static uint32_t ref_crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_value(void **state) {
    (void)state;
    assert_int_equal(crc32c("123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c("", 0), 0);
}

/* RFC 3720 (iSCSI) appendix B.4 vectors. */
static void test_rfc3720_vectors(void **state) {
    (void)state;
    unsigned char b[32];
    memset(b, 0, sizeof b);
    assert_int_equal(crc32c(b, sizeof b), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    assert_int_equal(crc32c(b, sizeof b), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    assert_int_equal(crc32c(b, sizeof b), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    assert_int_equal(crc32c(b, sizeof b), 0x113FDB5Cu);
}

/* Every length and start alignment around the 8-byte fast paths agrees with the reference,
 * for the function the spool calls (the CPU's instruction where it has one) and for the tables,
 * starting from 0 and from a running value. */
static void test_matches_reference(void **state) {
    (void)state;
    unsigned char buf[600];
    srand(12345);
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)rand();
    for (size_t start = 0; start < 9; start++)
        for (size_t n = 0; n + start <= sizeof buf; n += (n < 40 ? 1 : 37)) {
            uint32_t want = ref_crc32c(buf + start, n);
            assert_int_equal(crc32c(buf + start, n), want);
            assert_int_equal(crc32c_update_sw(0, buf + start, n), want);
            uint32_t head = ref_crc32c(buf, start);
            uint32_t whole = ref_crc32c(buf, start + n);
            assert_int_equal(crc32c_update(head, buf + start, n), whole);
            assert_int_equal(crc32c_update_sw(head, buf + start, n), whole);
        }
}

/* The instruction is used exactly where the kernel reports it (x86-64: the sse4_2 flag of
 * /proc/cpuinfo), so the check above held the path the spool runs; the log says which. */
static void test_path(void **state) {
    (void)state;
    int want = 0;
#if defined(__x86_64__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) {
            want = strstr(line, " sse4_2") != NULL;
            break;
        }
    if (f)
        fclose(f);
#endif
    print_message("crc32c: %s\n", crc32c_hw() ? "CPU instruction (SSE4.2)" : "tables");
    assert_int_equal(crc32c_hw(), want);
}

/* Splitting the input anywhere gives the same CRC as one call. */
static void test_incremental(void **state) {
    (void)state;
    const char *s = "The quick brown fox jumps over the lazy dog, twice over for length.";
    size_t n = strlen(s);
    uint32_t whole = crc32c(s, n);
    assert_int_equal(whole, ref_crc32c((const unsigned char *)s, n));
    for (size_t cut = 0; cut <= n; cut++)
        assert_int_equal(crc32c_update(crc32c(s, cut), s + cut, n - cut), whole);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_rfc3720_vectors),
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
