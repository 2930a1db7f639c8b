/*
 * subscribe.c — SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (§3.8–§3.11).
 *
 * Entries stay in the packet's bytes: the decoder walks them once with the
 * same iterator the caller later uses, so the validation and the reading
 * cannot disagree. A filter with bad wildcard syntax is not a broken packet:
 * it gets its own SUBACK code 0x8F (0x80 below 5.0) [§3.9.3].
 */
#include "codec_int.h"
#include "topic.h"

/* Read one entry; MALFORMED / PROTOCOL_ERROR for what fails the packet. */
static enum mqtt_rc sub_entry_read(struct rd *r, uint8_t version, struct mqtt_sub_entry *e)
{
	uint8_t opt;
	enum mqtt_rc rc = rd_utf8(r, &e->filter);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	if (!rd_u8(r, &opt))
		return MQTT_RC_MALFORMED_PACKET;
	e->qos = opt & 0x03;
	e->no_local = false;
	e->retain_as_published = false;
	e->retain_handling = 0;
	if (version == MQTT_V5) {
		if (opt & 0xC0) /* reserved [MQTT-3.8.3-5] */
			return MQTT_RC_MALFORMED_PACKET;
		e->no_local = opt & 0x04;
		e->retain_as_published = opt & 0x08;
		e->retain_handling = (opt >> 4) & 0x03;
		if (e->qos == 3 || e->retain_handling == 3) /* §3.8.3.1 */
			return MQTT_RC_PROTOCOL_ERROR;
	} else {
		if (opt & 0xFC || e->qos == 3) /* [MQTT-3.8.3-4] (3.1.1) */
			return MQTT_RC_MALFORMED_PACKET;
	}
	e->rc = mqtt_topic_filter_check(e->filter) == MQTT_RC_SUCCESS
	            ? MQTT_RC_SUCCESS
	            : MQTT_RC_TOPIC_FILTER_INVALID;
	if (e->rc == MQTT_RC_SUCCESS && e->no_local) {
		struct mqtt_filter_parts parts;
		mqtt_filter_split(e->filter, &parts);
		if (parts.shared) /* [MQTT-3.8.3-4] (5.0) */
			return MQTT_RC_PROTOCOL_ERROR;
	}
	return MQTT_RC_SUCCESS;
}

/* Packet identifier and, in 5.0, properties: the head of all four. */
static enum mqtt_rc head_decode(struct rd *r, unsigned type, uint8_t version, uint16_t *pid,
                                struct mqtt_props *props)
{
	if (!rd_u16(r, pid))
		return MQTT_RC_MALFORMED_PACKET;
	if (version == MQTT_V5) {
		enum mqtt_rc rc = props_decode(r, type, props);
		if (rc != MQTT_RC_SUCCESS)
			return rc;
	} else {
		memset(props, 0, sizeof(*props));
	}
	return *pid == 0 ? MQTT_RC_PROTOCOL_ERROR : MQTT_RC_SUCCESS; /* [MQTT-2.2.1-3] */
}

enum mqtt_rc subscribe_decode(struct rd *r, uint8_t version, struct mqtt_subscribe *out)
{
	out->entries = NULL;
	out->count = 0;
	enum mqtt_rc rc = head_decode(r, MQTT_SUBSCRIBE, version, &out->packet_id, &out->props);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	out->payload = rd_rest(r);
	struct rd e = rd_make(out->payload.ptr, out->payload.len);
	while (rd_left(&e) > 0) {
		struct mqtt_sub_entry entry;
		if ((rc = sub_entry_read(&e, version, &entry)) != MQTT_RC_SUCCESS)
			return rc;
		out->count++;
	}
	/* At least one filter [MQTT-3.8.3-2]. */
	return out->count > 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
}

enum mqtt_rc unsubscribe_decode(struct rd *r, uint8_t version, struct mqtt_unsubscribe *out)
{
	out->filters = NULL;
	out->count = 0;
	enum mqtt_rc rc = head_decode(r, MQTT_UNSUBSCRIBE, version, &out->packet_id, &out->props);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	out->payload = rd_rest(r);
	struct rd e = rd_make(out->payload.ptr, out->payload.len);
	while (rd_left(&e) > 0) {
		struct mqtt_view f;
		if ((rc = rd_utf8(&e, &f)) != MQTT_RC_SUCCESS)
			return rc;
		out->count++;
	}
	/* At least one filter [MQTT-3.10.3-2]. */
	return out->count > 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
}

enum mqtt_rc suback_decode(struct rd *r, unsigned type, uint8_t version, struct mqtt_suback *out)
{
	enum mqtt_rc rc = head_decode(r, type, version, &out->packet_id, &out->props);
	if (rc != MQTT_RC_SUCCESS)
		return rc;
	out->rcs = rd_rest(r);
	/* A 3.1.1 UNSUBACK is the packet identifier alone (§3.11.3). */
	if (type == MQTT_UNSUBACK && version != MQTT_V5)
		return out->rcs.len == 0 ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET;
	if (out->rcs.len == 0)
		return MQTT_RC_PROTOCOL_ERROR; /* one code per filter, at least one */
	for (uint32_t i = 0; i < out->rcs.len; i++) {
		uint8_t c = out->rcs.ptr[i];
		bool ok = version == MQTT_V5 ? mqtt_rc_valid_for(type, c)
		                             : c <= 2 || c == MQTT_V3_SUBACK_FAILURE;
		if (!ok)
			return MQTT_RC_PROTOCOL_ERROR;
	}
	return MQTT_RC_SUCCESS;
}

void mqtt_sub_iter_init(struct mqtt_entry_iter *it, const struct mqtt_subscribe *s, uint8_t version)
{
	it->p = s->payload.ptr;
	it->end = s->payload.ptr ? s->payload.ptr + s->payload.len : NULL;
	it->version = version;
}

bool mqtt_sub_iter_next(struct mqtt_entry_iter *it, struct mqtt_sub_entry *out)
{
	if (it->p == it->end)
		return false;
	struct rd r = {it->p, it->end};
	if (sub_entry_read(&r, it->version, out) != MQTT_RC_SUCCESS) {
		it->p = it->end; /* only for payloads the decoder did not accept */
		return false;
	}
	it->p = r.p;
	return true;
}

void mqtt_unsub_iter_init(struct mqtt_entry_iter *it, const struct mqtt_unsubscribe *u)
{
	it->p = u->payload.ptr;
	it->end = u->payload.ptr ? u->payload.ptr + u->payload.len : NULL;
	it->version = 0;
}

bool mqtt_unsub_iter_next(struct mqtt_entry_iter *it, struct mqtt_view *filter)
{
	if (it->p == it->end)
		return false;
	struct rd r = {it->p, it->end};
	if (!rd_binary(&r, filter)) {
		it->p = it->end;
		return false;
	}
	it->p = r.p;
	return true;
}

static void head_encode(struct wr *w, uint8_t version, uint16_t pid, const struct mqtt_props *p)
{
	CODEC_ASSERT(pid != 0);
	wr_u16(w, pid);
	if (version == MQTT_V5)
		props_encode(w, p);
}

uint8_t subscribe_encode(struct wr *w, uint8_t version, const struct mqtt_subscribe *s)
{
	head_encode(w, version, s->packet_id, &s->props);
	if (!s->entries) {
		wr_view(w, s->payload);
		return 0x2;
	}
	CODEC_ASSERT(s->count > 0);
	for (uint32_t i = 0; i < s->count; i++) {
		const struct mqtt_sub_entry *e = &s->entries[i];
		CODEC_ASSERT(e->qos <= 2 && e->retain_handling <= 2);
		wr_binary(w, e->filter);
		uint8_t opt = e->qos;
		if (version == MQTT_V5)
			opt |= (uint8_t)((e->no_local ? 0x04 : 0) |
			                 (e->retain_as_published ? 0x08 : 0) |
			                 e->retain_handling << 4);
		wr_u8(w, opt);
	}
	return 0x2;
}

uint8_t unsubscribe_encode(struct wr *w, uint8_t version, const struct mqtt_unsubscribe *u)
{
	head_encode(w, version, u->packet_id, &u->props);
	if (!u->filters) {
		wr_view(w, u->payload);
		return 0x2;
	}
	CODEC_ASSERT(u->count > 0);
	for (uint32_t i = 0; i < u->count; i++)
		wr_binary(w, u->filters[i]);
	return 0x2;
}

uint8_t suback_encode(struct wr *w, unsigned type, uint8_t version, const struct mqtt_suback *s)
{
	head_encode(w, version, s->packet_id, &s->props);
	if (type == MQTT_SUBACK || version == MQTT_V5)
		wr_view(w, s->rcs);
	return 0;
}
