/*
 * connect.c — CONNECT and CONNACK (§3.1, §3.2 of 5.0; §3.1, §3.2 of 3.1.1;
 * and the "MQIsdp" level 3 of 3.1).
 *
 * Order of CONNECT checks: the grammar first (so a malformed packet is never
 * answered as anything but malformed), then the protocol level, then the
 * client identifier rules that have a CONNACK answer of their own.
 */
#include "codec_int.h"
#include "topic.h"

static const struct mqtt_view name_mqtt = {(const uint8_t *)"MQTT", 4};
static const struct mqtt_view name_mqisdp = {(const uint8_t *)"MQIsdp", 6};

enum mqtt_rc connect_decode(struct rd *r, struct mqtt_connect *out)
{
	memset(out, 0, sizeof(*out));
	struct mqtt_view name;
	uint8_t level, flags;
	if (rd_utf8(r, &name) != MQTT_RC_SUCCESS || !rd_u8(r, &level) || !rd_u8(r, &flags) ||
	    !rd_u16(r, &out->keepalive_s))
		return MQTT_RC_MALFORMED_PACKET;

	/* mosquitto's bridge bit (try_private): 0x80 on a 3.1 or 3.1.1 level
	 * says the client is another broker's bridge, which wants none of its
	 * own messages back. */
	if ((level & 0x80) && ((level & 0x7F) == MQTT_V31 || (level & 0x7F) == MQTT_V311)) {
		out->bridge = true;
		level &= 0x7F;
	}
	bool is_mqtt = mqtt_view_eq(name, name_mqtt);
	if (!is_mqtt && !mqtt_view_eq(name, name_mqisdp))
		return MQTT_RC_PROTOCOL_ERROR; /* not MQTT at all: close, no CONNACK */
	/* [MQTT-3.1.2-2]: a level we do not speak, or a name that does not go
	 * with the level, is answered with CONNACK 0x84 (0x01 below 5.0). */
	if (is_mqtt ? (level != MQTT_V311 && level != MQTT_V5) : level != MQTT_V31)
		return MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION;
	out->version = level;

	if (flags & 0x01) /* reserved [MQTT-3.1.2-3] */
		return MQTT_RC_MALFORMED_PACKET;
	out->clean_start = flags & 0x02;
	out->will = flags & 0x04;
	out->will_qos = (flags >> 3) & 0x03;
	out->will_retain = flags & 0x20;
	out->has_password = flags & 0x40;
	out->has_username = flags & 0x80;
	if (out->will_qos == 3) /* [MQTT-3.1.2-12] */
		return MQTT_RC_MALFORMED_PACKET;
	if (!out->will && (out->will_qos != 0 || out->will_retain)) /* [MQTT-3.1.2-11, -13] */
		return MQTT_RC_PROTOCOL_ERROR;
	/* Below 5.0 a password needs a user name [MQTT-3.1.2-22]. */
	if (level < MQTT_V5 && out->has_password && !out->has_username)
		return MQTT_RC_PROTOCOL_ERROR;

	enum mqtt_rc rc;
	if (level == MQTT_V5 &&
	    (rc = props_decode(r, MQTT_CONNECT, &out->props)) != MQTT_RC_SUCCESS)
		return rc;
	if ((rc = rd_utf8(r, &out->client_id)) != MQTT_RC_SUCCESS)
		return rc;
	if (out->will) {
		if (level == MQTT_V5 &&
		    (rc = props_decode(r, CODEC_WILL_PROPS, &out->will_props)) != MQTT_RC_SUCCESS)
			return rc;
		if ((rc = rd_utf8(r, &out->will_topic)) != MQTT_RC_SUCCESS)
			return rc;
		if (!rd_binary(r, &out->will_payload))
			return MQTT_RC_MALFORMED_PACKET;
	}
	if (out->has_username && (rc = rd_utf8(r, &out->username)) != MQTT_RC_SUCCESS)
		return rc;
	if (out->has_password && !rd_binary(r, &out->password))
		return MQTT_RC_MALFORMED_PACKET;
	if (rd_left(r) != 0)
		return MQTT_RC_MALFORMED_PACKET;

	if (out->will && !mqtt_topic_name_valid(out->will_topic))
		return MQTT_RC_PROTOCOL_ERROR;
	/* 3.1 requires a client id; 3.1.1 allows an empty one only with a
	 * clean session [MQTT-3.1.3-8]; 5.0 lets the server assign one. */
	if (out->client_id.len == 0 &&
	    (level == MQTT_V31 || (level == MQTT_V311 && !out->clean_start)))
		return MQTT_RC_CLIENT_ID_NOT_VALID;
	return MQTT_RC_SUCCESS;
}

uint8_t connect_encode(struct wr *w, const struct mqtt_connect *c)
{
	uint8_t v = c->version;
	CODEC_ASSERT(v == MQTT_V31 || v == MQTT_V311 || v == MQTT_V5);
	CODEC_ASSERT(c->will_qos <= 2 && (c->will || (c->will_qos == 0 && !c->will_retain)));
	CODEC_ASSERT(v == MQTT_V5 || !c->has_password || c->has_username);
	wr_binary(w, v == MQTT_V31 ? name_mqisdp : name_mqtt);
	wr_u8(w, (uint8_t)(v | (c->bridge && v != MQTT_V5 ? 0x80 : 0)));
	wr_u8(w, (uint8_t)((c->clean_start ? 0x02 : 0) | (c->will ? 0x04 : 0) | c->will_qos << 3 |
	                   (c->will_retain ? 0x20 : 0) | (c->has_password ? 0x40 : 0) |
	                   (c->has_username ? 0x80 : 0)));
	wr_u16(w, c->keepalive_s);
	if (v == MQTT_V5)
		props_encode(w, &c->props);
	wr_binary(w, c->client_id);
	if (c->will) {
		if (v == MQTT_V5)
			props_encode(w, &c->will_props);
		wr_binary(w, c->will_topic);
		wr_binary(w, c->will_payload);
	}
	if (c->has_username)
		wr_binary(w, c->username);
	if (c->has_password)
		wr_binary(w, c->password);
	return 0;
}

enum mqtt_rc connack_decode(struct rd *r, uint8_t version, struct mqtt_connack *out)
{
	memset(out, 0, sizeof(*out));
	uint8_t flags;
	if (!rd_u8(r, &flags) || !rd_u8(r, &out->rc))
		return MQTT_RC_MALFORMED_PACKET;
	if (flags & 0xFE) /* reserved [MQTT-3.2.2-1] */
		return MQTT_RC_MALFORMED_PACKET;
	out->session_present = version != MQTT_V31 && (flags & 0x01); /* 3.1: reserved */
	if (version == MQTT_V5) {
		enum mqtt_rc rc = props_decode(r, MQTT_CONNACK, &out->props);
		if (rc != MQTT_RC_SUCCESS)
			return rc;
		if (!mqtt_rc_valid_for(MQTT_CONNACK, out->rc))
			return MQTT_RC_PROTOCOL_ERROR;
	} else if (out->rc > MQTT_V3_CONNACK_NOT_AUTHORIZED) {
		return MQTT_RC_PROTOCOL_ERROR;
	}
	if (rd_left(r) != 0)
		return MQTT_RC_MALFORMED_PACKET;
	/* A refusal never claims a session [MQTT-3.2.2-6 (5.0), -4 (3.1.1)]. */
	if (out->rc != 0 && out->session_present)
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

uint8_t connack_encode(struct wr *w, uint8_t version, const struct mqtt_connack *c)
{
	CODEC_ASSERT(c->rc == 0 || !c->session_present);
	/* Session Present exists from 3.1.1 on; in 3.1 the byte is reserved. */
	wr_u8(w, c->session_present && version != MQTT_V31 ? 1 : 0);
	wr_u8(w, c->rc);
	if (version == MQTT_V5)
		props_encode(w, &c->props);
	return 0;
}
