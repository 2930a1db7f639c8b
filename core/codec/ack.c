/*
 * ack.c — PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4–§3.7): a packet identifier
 * and, in 5.0, an optional reason code and properties. 5.0 lets a sender
 * omit the reason code when it is 0 and there are no properties, and the
 * property length when there are none (§3.4.2.1); the encoder does both.
 */
#include "codec_int.h"

enum mqtt_rc ack_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_ack *out)
{
	memset(out, 0, sizeof(*out));
	if (!rd_u16(r, &out->packet_id))
		return MQTT_RC_MALFORMED_PACKET;
	enum mqtt_rc rc = rc_props_decode(r, type, version, &out->rc, &out->props);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	if (out->packet_id == 0) /* [MQTT-2.2.1-3] */
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

uint8_t ack_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_ack *a)
{
	CODEC_ASSERT(a->packet_id != 0);
	wr_u16(w, a->packet_id);
	rc_props_encode(w, version, a->rc, &a->props);
	return type == MQTT_PUBREL ? 0x2 : 0;
}
