/*
 * frame.h — find the next whole MQTT packet in a byte stream without copying
 * it: the fixed header's type, flags and Remaining Length (§2.1 of both specs).
 *
 * Resumable in the nginx sense: call again with more bytes after NEED_MORE.
 * Pure; any thread may call it.
 */
#ifndef STARLING_CODEC_FRAME_H
#define STARLING_CODEC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "mqtt.h"

enum mqtt_frame_status {
	MQTT_FRAME_OK = 0,        /* a complete packet is in the buffer */
	MQTT_FRAME_NEED_MORE = 1, /* not enough bytes yet; nothing is wrong */
	MQTT_FRAME_INVALID = 2,   /* the stream is broken; see frame.rc */
};

struct mqtt_frame {
	uint8_t type;           /* enum mqtt_type, high nibble of byte 0 */
	uint8_t flags;          /* low nibble of byte 0 */
	uint8_t header_len;     /* bytes of fixed header: 2..5 */
	uint32_t remaining_len; /* bytes after the fixed header */
	enum mqtt_rc rc;        /* why, when MQTT_FRAME_INVALID: 0x81 or 0x95 */
};

/*
 * Look at the front of buf. version is the connection's protocol level, or 0
 * before CONNECT has been decoded (then only type-independent checks run,
 * and AUTH is allowed through for the CONNECT check to reject). A packet
 * larger than max_packet_size bytes in total (0: the protocol maximum) is
 * INVALID with rc 0x95 as soon as its header is seen, before its body is
 * buffered. Reserved flag bits that are wrong, a Remaining Length of more
 * than four bytes or not minimally encoded, and packet type 0 (or 15 below
 * 5.0) are INVALID with rc 0x81.
 */
enum mqtt_frame_status mqtt_frame_peek(const uint8_t *buf, size_t len, uint8_t version,
                                       uint32_t max_packet_size, struct mqtt_frame *out);

/* Total bytes of the framed packet. */
static inline size_t mqtt_frame_size(const struct mqtt_frame *f)
{
	return (size_t)f->header_len + f->remaining_len;
}

/*
 * Variable Byte Integer (§1.5.5 of 5.0). Decode returns bytes consumed,
 * 0 when more bytes are needed, -1 when malformed (over four bytes or not
 * minimal). Encode writes 1..4 bytes into out (4 bytes of room) and returns
 * the count; v must be <= MQTT_VARINT_MAX.
 */
int mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *out);
int mqtt_varint_encode(uint32_t v, uint8_t out[4]);
unsigned mqtt_varint_size(uint32_t v);

#endif
