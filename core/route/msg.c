/*
 * msg.c — creating and releasing shared messages (see msg.h). Any worker may
 * call msg_ref/msg_unref; msg_new runs on the worker that received the
 * PUBLISH. One allocation per message: the struct and its bytes together.
 */
#include "route/msg.h"

#include "base/clock.h"
#include "codec.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Move a view that pointed into [from, from+len) to the same offset in to. */
static void relocate(struct mqtt_view *v, const uint8_t *from, size_t len, const uint8_t *to)
{
	if (v->len == 0 || v->ptr < from || v->ptr >= from + len) {
		if (v->len == 0)
			v->ptr = to;
		return;
	}
	v->ptr = to + (v->ptr - from);
}

struct msg *msg_new(const struct mqtt_publish *p, uint8_t version, struct mqtt_view topic,
                    struct sess_id origin, uint64_t now_ms)
{
	/* The body of a PUBLISH is contiguous from its topic's length prefix
	 * to the end of its payload; copy that span whole, so the property
	 * block and payload views move by one offset. */
	const uint8_t *body = p->topic.ptr - 2;
	size_t body_len = (size_t)(p->payload.ptr + p->payload.len - body);
	struct msg *m = malloc(sizeof(*m) + topic.len + body_len);
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->size_bytes = (uint32_t)(sizeof(*m) + topic.len + body_len);
	m->origin = origin;
	m->version = version;
	m->pub = *p;
	memcpy(m->data, topic.ptr, topic.len);
	uint8_t *copy = m->data + topic.len;
	memcpy(copy, body, body_len);

	m->pub.topic = (struct mqtt_view){m->data, topic.len};
	relocate(&m->pub.payload, body, body_len, copy);
	struct mqtt_props *pr = &m->pub.props;
	relocate(&pr->raw, body, body_len, copy);
	relocate(&pr->content_type, body, body_len, copy);
	relocate(&pr->response_topic, body, body_len, copy);
	relocate(&pr->correlation_data, body, body_len, copy);
	/* Per-hop properties: an alias belongs to the inbound connection and
	 * subscription identifiers are the subscriber's, set at send time. */
	pr->has &=
	    ~(MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID));
	pr->sub_id_count = 0;
	pr->sub_ids = NULL;
	pr->user = NULL;

	/* Only the retained store reads it (route.c's retained_found), and
	 * only messages published with the retain flag go there: the others
	 * skip a clock read per message. */
	m->created_ns = p->retain ? clock_now_ns() : 0;
	m->wall_ms = p->retain ? clock_wall_ms() : 0;
	m->origin_node = 0;
	m->forwarded = false;
	m->forwarded_shared = false;
	m->recovered = false;
	m->origin_rank = 0;
	m->retain_stamp = 0;
	m->jstamp = 0;
	m->expires_at_ms = 0;
	if (pr->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
		m->expires_at_ms = now_ms + (uint64_t)pr->message_expiry_s * 1000;
	/* The fields a subscriber's copy sets for itself. */
	m->pub.dup = false;
	m->pub.packet_id = 0;
	return m;
}

struct msg *msg_from_body(const uint8_t *body, size_t body_len, uint8_t version, uint8_t qos,
                          bool retain, struct mqtt_view topic, uint64_t now_ms)
{
	if (body_len > 0x0FFFFFFFu || qos > 2) {
		errno = EINVAL;
		return NULL;
	}
	/* The PUBLISH as it came: a fixed header before the body, read by the
	 * codec like any packet. */
	uint8_t *packet = malloc(body_len + 5);
	if (!packet) {
		errno = ENOMEM;
		return NULL;
	}
	size_t h = 0;
	packet[h++] = (uint8_t)(0x30 | qos << 1 | (retain ? 1 : 0));
	uint32_t rl = (uint32_t)body_len;
	do {
		uint8_t b = rl & 0x7F;
		rl >>= 7;
		packet[h++] = (uint8_t)(b | (rl ? 0x80 : 0));
	} while (rl);
	memcpy(packet + h, body, body_len);
	struct mqtt_packet p;
	struct msg *m = NULL;
	errno = EINVAL;
	if (mqtt_decode_buf(packet, h + body_len, version, &p, NULL) == MQTT_RC_SUCCESS &&
	    p.type == MQTT_PUBLISH &&
	    (p.publish.topic.len == 0 || mqtt_view_eq(p.publish.topic, topic))) {
		struct sess_id nobody = {0, 0, 0}; /* no-local was decided where it was routed */
		m = msg_new(&p.publish, version, topic, nobody, now_ms);
		if (!m)
			errno = ENOMEM;
	}
	free(packet);
	return m;
}

_Static_assert(offsetof(struct msg, refs) == 0, "msg_copy copies what follows refs");

struct msg *msg_copy(const struct msg *m)
{
	struct msg *c = malloc(m->size_bytes);
	if (!c)
		return NULL;
	/* Everything after refs: other workers may be taking or giving back
	 * references to m while it is copied (a plain read of refs would race
	 * with their atomic adds). */
	size_t from = offsetof(struct msg, size_bytes);
	memcpy((uint8_t *)c + from, (const uint8_t *)m + from, m->size_bytes - from);
	atomic_init(&c->refs, 1);
	/* Every view of pub points into data[] (msg_new): the same offsets in
	 * the copy. */
	size_t len = m->size_bytes - sizeof(*m);
	relocate(&c->pub.topic, m->data, len, c->data);
	relocate(&c->pub.payload, m->data, len, c->data);
	struct mqtt_props *pr = &c->pub.props;
	relocate(&pr->raw, m->data, len, c->data);
	relocate(&pr->content_type, m->data, len, c->data);
	relocate(&pr->response_topic, m->data, len, c->data);
	relocate(&pr->correlation_data, m->data, len, c->data);
	c->jstamp = 0;
	return c;
}

void msg_unref(struct msg *m)
{
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
		free(m);
}

uint32_t msg_expiry_left_s(const struct msg *m, uint64_t now_ms)
{
	if (m->expires_at_ms <= now_ms)
		return 1;
	uint64_t left_ms = m->expires_at_ms - now_ms;
	return (uint32_t)((left_ms + 999) / 1000);
}
