/*
 * payload.h — the header every bench PUBLISH payload starts with, so the
 * subscriber side can tell who sent a message, in which order and when.
 *
 * Wire layout, little-endian, PAYLOAD_HEADER_LEN bytes:
 *   0  u32 magic     PAYLOAD_MAGIC ("SBH1"), tells bench payloads from others
 *   4  u32 run_id    random per run, shared by every process and agent of it,
 *                    so retained or queued messages of earlier runs are not
 *                    counted as deliveries of this one
 *   8  u32 pub_id    the publisher's global client index
 *  12  u32 reserved  0
 *  16  u64 seq       per-publisher sequence number, from 0
 *  24  u64 sent_ns   CLOCK_REALTIME at encode time, nanoseconds
 * The rest of the payload is filler up to the configured size.
 */
#ifndef STARLING_BENCH_PAYLOAD_H
#define STARLING_BENCH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_HEADER_LEN 32u
#define PAYLOAD_MAGIC      0x31484253u /* "SBH1" read as little-endian */

struct payload_header {
	uint32_t run_id;
	uint32_t pub_id;
	uint64_t seq;
	uint64_t sent_ns;
};

/* Write the header into buf (at least PAYLOAD_HEADER_LEN bytes). */
void payload_encode_header(uint8_t *buf, const struct payload_header *h);
/* Read a header; false when len is short or the magic is wrong. */
bool payload_decode_header(const uint8_t *buf, size_t len, struct payload_header *out);

#endif
