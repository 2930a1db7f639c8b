/*
 * reason.c — DISCONNECT and AUTH (§3.14, §3.15): in 5.0 a reason code and
 * properties, both omissible when the code is 0 and there are no
 * properties; below 5.0 a DISCONNECT has no body and AUTH does not exist.
 * The same reason-code-and-properties tail ends the 5.0 acks (ack.c), so
 * it lives here once: rc_props_decode / rc_props_encode.
 */
#include "codec_int.h"

enum mqtt_rc rc_props_decode(struct rd *r, unsigned type, uint8_t version, uint8_t *rc,
                             struct mqtt_props *props)
{
	if (version == MQTT_V5 && rd_left(r) > 0) {
		if (!rd_u8(r, rc))
			return MQTT_RC_MALFORMED_PACKET;
		if (rd_left(r) > 0) {
			enum mqtt_rc e = props_decode(r, type, props);
			if (e != MQTT_RC_SUCCESS)
				return e;
		}
	}
	if (rd_left(r) != 0)
		return MQTT_RC_MALFORMED_PACKET;
	if (version == MQTT_V5 && !mqtt_rc_valid_for(type, *rc))
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

void rc_props_encode(struct wr *w, uint8_t version, uint8_t rc, const struct mqtt_props *props)
{
	if (version != MQTT_V5)
		return;
	bool any = props->has != 0 || props->user_count != 0;
	if (rc != 0 || any)
		wr_u8(w, rc);
	if (any)
		props_encode(w, props);
}

enum mqtt_rc reason_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_reason *out)
{
	memset(out, 0, sizeof(*out));
	return rc_props_decode(r, type, version, &out->rc, &out->props);
}

uint8_t reason_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_reason *r)
{
	CODEC_ASSERT(type == MQTT_DISCONNECT || version == MQTT_V5);
	rc_props_encode(w, version, r->rc, &r->props);
	return 0;
}
