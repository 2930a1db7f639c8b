/*
 * packet_eq.c — see packet_eq.h. Used by unit tests and the codec fuzzer.
 */
#include "packet_eq.h"

#include "topic.h"

#include <stdio.h>
#include <string.h>

#define DIFF(...)                                                                                  \
	do {                                                                                       \
		snprintf(why, why_len, __VA_ARGS__);                                               \
		return false;                                                                      \
	} while (0)

/* Walk user properties of either form. */
struct user_walk {
	const struct mqtt_props *p;
	uint32_t i;
	struct mqtt_prop_iter it;
};

static void user_walk_init(struct user_walk *w, const struct mqtt_props *p)
{
	w->p = p;
	w->i = 0;
	mqtt_prop_iter_init(&w->it, p);
}

static bool user_walk_next(struct user_walk *w, struct mqtt_user_prop *out)
{
	if (w->p->user) {
		if (w->i >= w->p->user_count)
			return false;
		*out = w->p->user[w->i++];
		return true;
	}
	return mqtt_props_next_user(&w->it, out);
}

static uint32_t sub_ids_collect(const struct mqtt_props *p, uint32_t *out, uint32_t cap)
{
	if (!(p->has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)))
		return 0;
	uint32_t n = 0;
	if (p->sub_ids) {
		for (; n < p->sub_id_count && n < cap; n++)
			out[n] = p->sub_ids[n];
		return n;
	}
	struct mqtt_prop_iter it;
	uint32_t id;
	mqtt_prop_iter_init(&it, p);
	while (n < cap && mqtt_props_next_sub_id(&it, &id))
		out[n++] = id;
	if (n == 0 && cap > 0)
		out[n++] = p->sub_id; /* built by hand with a single id */
	return n;
}

static bool props_eq(const struct mqtt_props *a, const struct mqtt_props *b, const char *where,
                     char *why, size_t why_len)
{
	uint64_t ha = a->has & ~MQTT_PROP_BIT(MQTT_PROP_USER);
	uint64_t hb = b->has & ~MQTT_PROP_BIT(MQTT_PROP_USER);
	if (ha != hb)
		DIFF("%s: property sets differ (%#llx vs %#llx)", where, (unsigned long long)ha,
		     (unsigned long long)hb);
#define U(field, id)                                                                               \
	if ((a->has & MQTT_PROP_BIT(id)) && a->field != b->field)                                  \
		DIFF("%s: property %#x: %u vs %u", where, id, (unsigned)a->field,                  \
		     (unsigned)b->field);
#define S(field, id)                                                                               \
	if ((a->has & MQTT_PROP_BIT(id)) && !mqtt_view_eq(a->field, b->field))                     \
		DIFF("%s: property %#x differs", where, id);
	U(payload_format, MQTT_PROP_PAYLOAD_FORMAT)
	U(message_expiry_s, MQTT_PROP_MESSAGE_EXPIRY)
	S(content_type, MQTT_PROP_CONTENT_TYPE)
	S(response_topic, MQTT_PROP_RESPONSE_TOPIC)
	S(correlation_data, MQTT_PROP_CORRELATION_DATA)
	U(session_expiry_s, MQTT_PROP_SESSION_EXPIRY)
	S(assigned_client_id, MQTT_PROP_ASSIGNED_CLIENT_ID)
	U(server_keepalive_s, MQTT_PROP_SERVER_KEEP_ALIVE)
	S(auth_method, MQTT_PROP_AUTH_METHOD)
	S(auth_data, MQTT_PROP_AUTH_DATA)
	U(request_problem_info, MQTT_PROP_REQUEST_PROBLEM_INFO)
	U(will_delay_s, MQTT_PROP_WILL_DELAY)
	U(request_response_info, MQTT_PROP_REQUEST_RESPONSE_INFO)
	S(response_info, MQTT_PROP_RESPONSE_INFO)
	S(server_reference, MQTT_PROP_SERVER_REFERENCE)
	S(reason_string, MQTT_PROP_REASON_STRING)
	U(receive_max, MQTT_PROP_RECEIVE_MAXIMUM)
	U(topic_alias_max, MQTT_PROP_TOPIC_ALIAS_MAXIMUM)
	U(topic_alias, MQTT_PROP_TOPIC_ALIAS)
	U(max_qos, MQTT_PROP_MAXIMUM_QOS)
	U(retain_available, MQTT_PROP_RETAIN_AVAILABLE)
	U(max_packet_size, MQTT_PROP_MAXIMUM_PACKET_SIZE)
	U(wildcard_sub_available, MQTT_PROP_WILDCARD_SUB_AVAILABLE)
	U(sub_id_available, MQTT_PROP_SUB_ID_AVAILABLE)
	U(shared_sub_available, MQTT_PROP_SHARED_SUB_AVAILABLE)
#undef U
#undef S

	uint32_t ia[64], ib[64];
	uint32_t na = sub_ids_collect(a, ia, 64), nb = sub_ids_collect(b, ib, 64);
	if (na != nb || memcmp(ia, ib, na * sizeof(ia[0])) != 0)
		DIFF("%s: subscription identifiers differ (%u vs %u of them)", where, na, nb);

	struct user_walk wa, wb;
	struct mqtt_user_prop ua, ub;
	user_walk_init(&wa, a);
	user_walk_init(&wb, b);
	for (unsigned i = 0;; i++) {
		bool more_a = user_walk_next(&wa, &ua), more_b = user_walk_next(&wb, &ub);
		if (more_a != more_b)
			DIFF("%s: user property counts differ at %u", where, i);
		if (!more_a)
			break;
		if (!mqtt_view_eq(ua.key, ub.key) || !mqtt_view_eq(ua.value, ub.value))
			DIFF("%s: user property %u differs", where, i);
	}
	return true;
}

#define VIEW(a, b, name)                                                                           \
	if (!mqtt_view_eq(a, b))                                                                   \
		DIFF("%s differs", name);
#define FIELD(a, b, name)                                                                          \
	if ((a) != (b))                                                                            \
		DIFF("%s: %u vs %u", name, (unsigned)(a), (unsigned)(b));

/* SUBSCRIBE entries of either form. */
static bool sub_entry_at(const struct mqtt_subscribe *s, uint8_t version, uint32_t i,
                         struct mqtt_sub_entry *out)
{
	if (s->entries) {
		if (i >= s->count)
			return false;
		*out = s->entries[i];
		out->rc = mqtt_topic_filter_check(out->filter) == MQTT_RC_SUCCESS
		              ? 0
		              : MQTT_RC_TOPIC_FILTER_INVALID;
		return true;
	}
	struct mqtt_entry_iter it;
	mqtt_sub_iter_init(&it, s, version);
	for (uint32_t k = 0; mqtt_sub_iter_next(&it, out); k++)
		if (k == i)
			return true;
	return false;
}

static bool unsub_filter_at(const struct mqtt_unsubscribe *u, uint32_t i, struct mqtt_view *out)
{
	if (u->filters) {
		if (i >= u->count)
			return false;
		*out = u->filters[i];
		return true;
	}
	struct mqtt_entry_iter it;
	mqtt_unsub_iter_init(&it, u);
	for (uint32_t k = 0; mqtt_unsub_iter_next(&it, out); k++)
		if (k == i)
			return true;
	return false;
}

bool packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b, uint8_t version, char *why,
               size_t why_len)
{
	FIELD(a->type, b->type, "type")
	switch (a->type) {
	case MQTT_CONNECT: {
		const struct mqtt_connect *x = &a->connect, *y = &b->connect;
		FIELD(x->version, y->version, "version")
		FIELD(x->clean_start, y->clean_start, "clean_start")
		FIELD(x->keepalive_s, y->keepalive_s, "keepalive")
		VIEW(x->client_id, y->client_id, "client id")
		FIELD(x->will, y->will, "will")
		FIELD(x->has_username, y->has_username, "username flag")
		FIELD(x->has_password, y->has_password, "password flag")
		if (x->has_username)
			VIEW(x->username, y->username, "username")
		if (x->has_password)
			VIEW(x->password, y->password, "password")
		if (x->version == MQTT_V5 &&
		    !props_eq(&x->props, &y->props, "connect", why, why_len))
			return false;
		if (x->will) {
			FIELD(x->will_qos, y->will_qos, "will qos")
			FIELD(x->will_retain, y->will_retain, "will retain")
			VIEW(x->will_topic, y->will_topic, "will topic")
			VIEW(x->will_payload, y->will_payload, "will payload")
			if (x->version == MQTT_V5 &&
			    !props_eq(&x->will_props, &y->will_props, "will", why, why_len))
				return false;
		}
		return true;
	}
	case MQTT_CONNACK:
		FIELD(a->connack.session_present, b->connack.session_present, "session present")
		FIELD(a->connack.rc, b->connack.rc, "rc")
		return version != MQTT_V5 ||
		       props_eq(&a->connack.props, &b->connack.props, "connack", why, why_len);
	case MQTT_PUBLISH: {
		const struct mqtt_publish *x = &a->publish, *y = &b->publish;
		FIELD(x->qos, y->qos, "qos")
		FIELD(x->dup, y->dup, "dup")
		FIELD(x->retain, y->retain, "retain")
		FIELD(x->packet_id, y->packet_id, "packet id")
		VIEW(x->topic, y->topic, "topic")
		VIEW(x->payload, y->payload, "payload")
		return version != MQTT_V5 ||
		       props_eq(&x->props, &y->props, "publish", why, why_len);
	}
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		FIELD(a->ack.packet_id, b->ack.packet_id, "packet id")
		FIELD(a->ack.rc, b->ack.rc, "rc")
		return version != MQTT_V5 ||
		       props_eq(&a->ack.props, &b->ack.props, "ack", why, why_len);
	case MQTT_SUBSCRIBE: {
		const struct mqtt_subscribe *x = &a->subscribe, *y = &b->subscribe;
		FIELD(x->packet_id, y->packet_id, "packet id")
		FIELD(x->count, y->count, "entry count")
		for (uint32_t i = 0; i < x->count; i++) {
			struct mqtt_sub_entry ex, ey;
			if (!sub_entry_at(x, version, i, &ex) || !sub_entry_at(y, version, i, &ey))
				DIFF("entry %u missing", i);
			VIEW(ex.filter, ey.filter, "filter")
			FIELD(ex.qos, ey.qos, "entry qos")
			FIELD(ex.no_local, ey.no_local, "no local")
			FIELD(ex.retain_as_published, ey.retain_as_published, "retain as published")
			FIELD(ex.retain_handling, ey.retain_handling, "retain handling")
			FIELD(ex.rc, ey.rc, "entry rc")
		}
		return version != MQTT_V5 ||
		       props_eq(&x->props, &y->props, "subscribe", why, why_len);
	}
	case MQTT_UNSUBSCRIBE: {
		const struct mqtt_unsubscribe *x = &a->unsubscribe, *y = &b->unsubscribe;
		FIELD(x->packet_id, y->packet_id, "packet id")
		FIELD(x->count, y->count, "filter count")
		for (uint32_t i = 0; i < x->count; i++) {
			struct mqtt_view fx, fy;
			if (!unsub_filter_at(x, i, &fx) || !unsub_filter_at(y, i, &fy))
				DIFF("filter %u missing", i);
			VIEW(fx, fy, "filter")
		}
		return version != MQTT_V5 ||
		       props_eq(&x->props, &y->props, "unsubscribe", why, why_len);
	}
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
		FIELD(a->suback.packet_id, b->suback.packet_id, "packet id")
		VIEW(a->suback.rcs, b->suback.rcs, "reason codes")
		return version != MQTT_V5 ||
		       props_eq(&a->suback.props, &b->suback.props, "suback", why, why_len);
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		FIELD(a->reason.rc, b->reason.rc, "rc")
		return version != MQTT_V5 ||
		       props_eq(&a->reason.props, &b->reason.props, "reason", why, why_len);
	default:
		return true;
	}
}
