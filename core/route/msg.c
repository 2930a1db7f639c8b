/*
 * msg.c — creating and releasing shared messages (see msg.h). Any worker may
 * call msg_ref/msg_unref; msg_new runs on the worker that received the
 * PUBLISH. One allocation per message: the struct and its bytes together.
 */
#include "route/msg.h"

#include "base/clock.h"

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
	m->expires_at_ms = 0;
	if (pr->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY))
		m->expires_at_ms = now_ms + (uint64_t)pr->message_expiry_s * 1000;
	/* The fields a subscriber's copy sets for itself. */
	m->pub.dup = false;
	m->pub.packet_id = 0;
	return m;
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
