/*
 * publish.c — PUBLISH (§3.3). The hot path of the broker: decoding copies
 * nothing and encoding is one pass per subscriber over views.
 */
#include "codec_int.h"
#include "topic.h"

enum mqtt_rc publish_decode(struct rd *r, uint8_t flags, uint8_t version, struct mqtt_publish *out)
{
	out->dup = flags & 0x08;
	out->qos = (flags >> 1) & 0x03;
	out->retain = flags & 0x01;
	out->packet_id = 0;
	if (out->qos == 3) /* [MQTT-3.3.1-4] */
		return MQTT_RC_MALFORMED_PACKET;
	if (out->dup && out->qos == 0) /* [MQTT-3.3.1-2] */
		return MQTT_RC_MALFORMED_PACKET;

	enum mqtt_rc rc = rd_utf8(r, &out->topic);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	if (out->qos > 0) {
		if (!rd_u16(r, &out->packet_id))
			return MQTT_RC_MALFORMED_PACKET;
		if (out->packet_id == 0) /* [MQTT-2.2.1-3] */
			return MQTT_RC_PROTOCOL_ERROR;
	}
	if (version == MQTT_V5) {
		rc = props_decode(r, MQTT_PUBLISH, &out->props);
		if (rc != MQTT_RC_SUCCESS)
			return rc;
	} else {
		memset(&out->props, 0, sizeof(out->props));
	}
	out->payload = rd_rest(r);

	/* An empty topic is allowed only when a 5.0 topic alias names it
	 * (§3.3.2.1); wildcards never [MQTT-3.3.2-2]. */
	bool alias = out->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	if (out->topic.len == 0 ? !alias : !mqtt_topic_name_valid(out->topic))
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

uint8_t publish_encode(struct wr *w, uint8_t version, const struct mqtt_publish *p)
{
	CODEC_ASSERT(p->qos <= 2 && (p->qos == 0) == (p->packet_id == 0));
	CODEC_ASSERT(!(p->dup && p->qos == 0));
	wr_binary(w, p->topic);
	if (p->qos > 0)
		wr_u16(w, p->packet_id);
	if (version == MQTT_V5)
		props_encode(w, &p->props);
	wr_view(w, p->payload);
	return (uint8_t)((p->dup ? 0x08 : 0) | p->qos << 1 | (p->retain ? 0x01 : 0));
}
