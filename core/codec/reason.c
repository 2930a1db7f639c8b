/*
 * reason.c — DISCONNECT and AUTH (§3.14, §3.15): in 5.0 a reason code and
 * properties, both omissible when the code is 0 and there are no
 * properties; below 5.0 a DISCONNECT has no body and AUTH does not exist.
 */
#include "codec_int.h"

enum mqtt_rc reason_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_reason *out)
{
	memset(out, 0, sizeof(*out));
	if (version == MQTT_V5 && rd_left(r) > 0) {
		if (!rd_u8(r, &out->rc))
			return MQTT_RC_MALFORMED_PACKET;
		if (rd_left(r) > 0) {
			enum mqtt_rc rc = props_decode(r, type, &out->props);
			if (rc != MQTT_RC_SUCCESS)
				return rc;
		}
	}
	if (rd_left(r) != 0)
		return MQTT_RC_MALFORMED_PACKET;
	if (version == MQTT_V5 && !mqtt_rc_valid_for(type, out->rc))
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

uint8_t reason_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_reason *r)
{
	CODEC_ASSERT(type == MQTT_DISCONNECT || version == MQTT_V5);
	if (version == MQTT_V5) {
		bool props = r->props.has != 0 || r->props.user_count != 0;
		if (r->rc != 0 || props)
			wr_u8(w, r->rc);
		if (props)
			props_encode(w, &r->props);
	}
	return 0;
}
