/*
 * packet.c — dispatch by packet type: mqtt_decode() after a frame peek, and
 * mqtt_encode() writing the fixed header in front of a body encoder's bytes.
 *
 * The body is encoded twice — once counting, once writing — so that the
 * Remaining Length goes in front without a copy; counting copies nothing,
 * so the payload is copied once.
 */
#include "codec_int.h"

enum mqtt_rc mqtt_decode(const struct mqtt_frame *frame, const uint8_t *body, uint8_t version,
                         struct mqtt_packet *out)
{
	struct rd r = rd_make(body, frame->remaining_len);
	unsigned type = frame->type;
	out->type = (uint8_t)type;

	int want = codec_required_flags(type);
	if (type == 0 || type > MQTT_AUTH || (want >= 0 && frame->flags != want))
		return MQTT_RC_MALFORMED_PACKET;
	if (type == MQTT_AUTH && version != MQTT_V5 && version != 0)
		return MQTT_RC_MALFORMED_PACKET;
	if (type != MQTT_CONNECT && version == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* nothing may come before CONNECT */

	switch (type) {
	case MQTT_CONNECT:
		return connect_decode(&r, &out->connect);
	case MQTT_CONNACK:
		return connack_decode(&r, version, &out->connack);
	case MQTT_PUBLISH:
		return publish_decode(&r, frame->flags, version, &out->publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return ack_decode(&r, type, version, &out->ack);
	case MQTT_SUBSCRIBE:
		return subscribe_decode(&r, version, &out->subscribe);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return suback_decode(&r, type, version, &out->suback);
	case MQTT_UNSUBSCRIBE:
		return unsubscribe_decode(&r, version, &out->unsubscribe);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return frame->remaining_len == 0 ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		return reason_decode(&r, type, version, &out->reason);
	}
	return MQTT_RC_MALFORMED_PACKET;
}

enum mqtt_rc mqtt_decode_buf(const uint8_t *buf, size_t len, uint8_t version,
                             struct mqtt_packet *out, size_t *used)
{
	struct mqtt_frame f;
	switch (mqtt_frame_peek(buf, len, version, 0, &f)) {
	case MQTT_FRAME_OK:
		break;
	case MQTT_FRAME_NEED_MORE:
		return MQTT_RC_MALFORMED_PACKET; /* the caller promised a whole packet */
	case MQTT_FRAME_INVALID:
		return f.rc;
	}
	if (used)
		*used = mqtt_frame_size(&f);
	return mqtt_decode(&f, buf + f.header_len, version, out);
}

/* Encode the body; returns the fixed header's flag nibble. */
static uint8_t body_encode(struct wr *w, const struct mqtt_packet *p, uint8_t version)
{
	switch (p->type) {
	case MQTT_CONNECT:
		return connect_encode(w, &p->connect);
	case MQTT_CONNACK:
		return connack_encode(w, version, &p->connack);
	case MQTT_PUBLISH:
		return publish_encode(w, version, &p->publish);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return ack_encode(w, p->type, version, &p->ack);
	case MQTT_SUBSCRIBE:
		return subscribe_encode(w, version, &p->subscribe);
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		return suback_encode(w, p->type, version, &p->suback);
	case MQTT_UNSUBSCRIBE:
		return unsubscribe_encode(w, version, &p->unsubscribe);
	case MQTT_PINGREQ:
	case MQTT_PINGRESP:
		return 0;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		return reason_encode(w, p->type, version, &p->reason);
	}
	CODEC_ASSERT(!"unknown packet type");
	return 0;
}

size_t mqtt_encode_len(const struct mqtt_packet *p, uint8_t version)
{
	if (p->type == MQTT_CONNECT)
		version = p->connect.version;
	struct wr count = {NULL, 0, 0};
	body_encode(&count, p, version);
	if (count.len > MQTT_VARINT_MAX)
		return 0;
	return 1 + mqtt_varint_size((uint32_t)count.len) + count.len;
}

size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *buf, size_t cap)
{
	if (p->type == MQTT_CONNECT)
		version = p->connect.version;
	struct wr count = {NULL, 0, 0};
	uint8_t flags = body_encode(&count, p, version);
	if (count.len > MQTT_VARINT_MAX)
		return 0;
	size_t total = 1 + mqtt_varint_size((uint32_t)count.len) + count.len;
	if (total > cap)
		return 0;
	struct wr w = {buf, cap, 0};
	wr_u8(&w, (uint8_t)(p->type << 4 | flags));
	wr_varint(&w, (uint32_t)count.len);
	body_encode(&w, p, version);
	CODEC_ASSERT(w.len == total);
	return total;
}
