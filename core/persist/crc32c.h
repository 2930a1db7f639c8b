/*
 * crc32c.h — CRC-32C (Castagnoli, RFC 3720 §B.4: reflected polynomial
 * 0x82F63B78, initial value and final xor 0xFFFFFFFF), the checksum of the
 * journal's headers and records (persist/record.h). Pure; any thread.
 *
 * The pre- and post-inversion are inside, so a checksum is chained by
 * passing the previous result: crc32c(crc32c(0, a, n), b, m) ==
 * crc32c(0, a||b, n+m), and crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef STARLING_CORE_CRC32C_H
#define STARLING_CORE_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The checksum of len bytes at buf, continuing crc (0 to start). Uses the
 * SSE4.2 crc32 instruction when the CPU has it, else crc32c_sw. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The same in software (slicing-by-8 tables), whatever the CPU: for the
 * tests that compare the two. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* Does crc32c() use the CPU's instruction on this machine? */
bool crc32c_uses_hw(void);

#endif
