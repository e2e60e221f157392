/* crc32c.h: CRC-32C (Castagnoli), the checksum on every spool record and file header. */
#ifndef HB_CRC32C_H
#define HB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (the value returned for the bytes before p; 0 to start) over p[0..n), so that
 * crc32c_update(crc32c_update(0, a, la), b, lb) == crc32c of a followed by b.
 * Reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF (as in iSCSI, ext4,
 * and the check value crc32c("123456789") == 0xE3069283). Pure: safe from any thread. */
uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);

/* The same function by tables alone: what crc32c_update runs where crc32c_hw() is 0. Exposed so
 * test_crc32c holds both paths to the bitwise reference on a machine that has the instruction. */
uint32_t crc32c_update_sw(uint32_t crc, const void *p, size_t n);

/* 1 when crc32c_update uses the CPU's CRC32 instruction (x86-64 with SSE4.2), else 0. */
int crc32c_hw(void);

/* CRC-32C of p[0..n). */
static inline uint32_t crc32c(const void *p, size_t n) { return crc32c_update(0, p, n); }

#endif
