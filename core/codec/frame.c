/*
 * frame.c — fixed header peek and Variable Byte Integers (§2.1, §1.5.5).
 * Owns nothing; pure functions over the caller's bytes.
 *
 * [MQTT-2.1.3-1] reserved flag bits must be as the table says, else the
 * packet is malformed; [MQTT-1.5.5-1] a Variable Byte Integer uses the fewest
 * bytes, at most four.
 */
#include "frame.h"

#include "codec_int.h"

int mqtt_varint_decode(const uint8_t *buf, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	for (size_t i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		v |= (uint32_t)(buf[i] & 0x7F) << (7 * i);
		if (!(buf[i] & 0x80)) {
			/* A zero last byte after a continuation is a longer
			 * encoding of a value that fits in fewer bytes. */
			if (i > 0 && buf[i] == 0)
				return -1;
			*out = v;
			return (int)i + 1;
		}
	}
	return -1;
}

int mqtt_varint_encode(uint32_t v, uint8_t out[4])
{
	CODEC_ASSERT(v <= MQTT_VARINT_MAX);
	int n = 0;
	do {
		uint8_t b = v & 0x7F;
		v >>= 7;
		out[n++] = (uint8_t)(v ? b | 0x80 : b);
	} while (v);
	return n;
}

unsigned mqtt_varint_size(uint32_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

int codec_required_flags(unsigned type)
{
	switch (type) {
	case MQTT_PUBLISH:
		return -1;
	case MQTT_PUBREL:
	case MQTT_SUBSCRIBE:
	case MQTT_UNSUBSCRIBE:
		return 0x2;
	default:
		return 0;
	}
}

enum mqtt_frame_status mqtt_frame_peek(const uint8_t *buf, size_t len, uint8_t version,
                                       uint32_t max_packet_size, struct mqtt_frame *out)
{
	if (len < 1)
		return MQTT_FRAME_NEED_MORE;
	out->type = buf[0] >> 4;
	out->flags = buf[0] & 0x0F;
	out->rc = MQTT_RC_MALFORMED_PACKET;
	if (out->type == 0 || (out->type == MQTT_AUTH && version != 0 && version < MQTT_V5))
		return MQTT_FRAME_INVALID;
	int want = codec_required_flags(out->type);
	if (want >= 0 && out->flags != want)
		return MQTT_FRAME_INVALID;
	if (out->type == MQTT_PUBLISH && (out->flags & 0x6) == 0x6) /* QoS 3 [MQTT-3.3.1-4] */
		return MQTT_FRAME_INVALID;

	int n = mqtt_varint_decode(buf + 1, len - 1, &out->remaining_len);
	if (n < 0)
		return MQTT_FRAME_INVALID;
	if (n == 0)
		return MQTT_FRAME_NEED_MORE;
	out->header_len = (uint8_t)(1 + n);

	uint64_t total = (uint64_t)out->header_len + out->remaining_len;
	if (max_packet_size != 0 && total > max_packet_size) {
		out->rc = MQTT_RC_PACKET_TOO_LARGE;
		return MQTT_FRAME_INVALID;
	}
	out->rc = MQTT_RC_SUCCESS;
	return len >= total ? MQTT_FRAME_OK : MQTT_FRAME_NEED_MORE;
}
