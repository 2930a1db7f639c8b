/*
 * crc32c.c — CRC-32C (see crc32c.h) two ways: the SSE4.2 crc32 instruction,
 * 8 bytes per step, on x86-64 CPUs that have it (chosen at the first call,
 * by __builtin_cpu_supports), and slicing-by-8 tables everywhere else. Any
 * thread: the tables are built once under pthread_once and only read after;
 * the chosen function is published through an atomic pointer (two threads
 * racing on the first call choose the same one).
 *
 * Neither path loads a word from an address that may be unaligned: the
 * instruction's operand comes through memcpy, and the tables are indexed
 * byte by byte (which also makes the software path independent of the
 * machine's byte order).
 *
 * The x86-64 function is compiled for SSE4.2 alone (a target attribute),
 * so the rest of the build keeps its baseline instruction set; it is only
 * called once the CPU is known to have the instruction. That is why it
 * sits between #if defined(__x86_64__) at file level: the one place in the
 * file the architecture shows.
 */
#include "persist/crc32c.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* ---- software: slicing-by-8 -------------------------------------------- */

static uint32_t table[8][256]; /* table[k][b]: b followed by k zero bytes */
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_build(void)
{
	for (uint32_t b = 0; b < 256; b++) {
		uint32_t c = b;
		for (int i = 0; i < 8; i++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][b] = c;
	}
	for (uint32_t b = 0; b < 256; b++)
		for (int k = 1; k < 8; k++)
			table[k][b] = (table[k - 1][b] >> 8) ^ table[0][table[k - 1][b] & 0xFF];
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&table_once, table_build);
	const uint8_t *p = buf;
	uint32_t c = ~crc;
	while (len >= 8) {
		c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
		c = table[7][c & 0xFF] ^ table[6][(c >> 8) & 0xFF] ^ table[5][(c >> 16) & 0xFF] ^
		    table[4][c >> 24] ^ table[3][p[4]] ^ table[2][p[5]] ^ table[1][p[6]] ^
		    table[0][p[7]];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
	return ~c;
}

/* ---- hardware: SSE4.2 -------------------------------------------------- */

typedef uint32_t crc_fn(uint32_t crc, const void *buf, size_t len);

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                            size_t len)
{
	const uint8_t *p = buf;
	uint64_t c = (uint32_t)~crc;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	while (len--)
		c32 = _mm_crc32_u8(c32, *p++);
	return ~c32;
}

static crc_fn *choose(void)
{
	return __builtin_cpu_supports("sse4.2") ? crc32c_hw : crc32c_sw;
}
#else
static crc_fn *choose(void)
{
	return crc32c_sw;
}
#endif

static _Atomic(crc_fn *) chosen;

static crc_fn *impl(void)
{
	crc_fn *f = atomic_load_explicit(&chosen, memory_order_acquire);
	if (!f) {
		f = choose();
		atomic_store_explicit(&chosen, f, memory_order_release);
	}
	return f;
}

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	return impl()(crc, buf, len);
}

bool crc32c_uses_hw(void)
{
	return impl() != crc32c_sw;
}
