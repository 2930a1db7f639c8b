/*
 * props.c — 5.0 properties (§2.2.2): the table of each property's data type
 * and the packets that may carry it, decoding with duplicate and range
 * checks, encoding, and iteration over repeated properties.
 *
 * Outcomes: an unknown identifier or a value cut short is a malformed packet;
 * a known property in the wrong packet, a second copy of a single-valued
 * property, or a value out of its range is a protocol error (§2.2.2.2 and
 * each property's own "It is a Protocol Error ..." sentence).
 */
#include "codec_int.h"
#include "topic.h"

enum kind { K_NONE, K_BYTE, K_U16, K_U32, K_VARINT, K_UTF8, K_BIN, K_PAIR };

#define P(t) (1u << (t))
#define WILL P(CODEC_WILL_PROPS)
#define ACKS (P(MQTT_PUBACK) | P(MQTT_PUBREC) | P(MQTT_PUBREL) | P(MQTT_PUBCOMP))

static const struct {
	uint8_t kind;     /* enum kind; K_NONE: not a property */
	uint16_t packets; /* bit per packet type that may carry it; bit 0: will */
} table[64] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {K_BYTE, P(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_MESSAGE_EXPIRY] = {K_U32, P(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_CONTENT_TYPE] = {K_UTF8, P(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_RESPONSE_TOPIC] = {K_UTF8, P(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_CORRELATION_DATA] = {K_BIN, P(MQTT_PUBLISH) | WILL},
    [MQTT_PROP_SUBSCRIPTION_ID] = {K_VARINT, P(MQTT_PUBLISH) | P(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {K_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {K_UTF8, P(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {K_U16, P(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {K_UTF8, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {K_BIN, P(MQTT_CONNECT) | P(MQTT_CONNACK) | P(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {K_BYTE, P(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {K_U32, WILL},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {K_BYTE, P(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {K_UTF8, P(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {K_UTF8, P(MQTT_CONNACK) | P(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {K_UTF8, P(MQTT_CONNACK) | ACKS | P(MQTT_SUBACK) |
                                             P(MQTT_UNSUBACK) | P(MQTT_DISCONNECT) | P(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAXIMUM] = {K_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {K_U16, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {K_U16, P(MQTT_PUBLISH)},
    [MQTT_PROP_MAXIMUM_QOS] = {K_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {K_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_USER] = {K_PAIR, 0xFFFF & ~(P(MQTT_PINGREQ) | P(MQTT_PINGRESP))},
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {K_U32, P(MQTT_CONNECT) | P(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {K_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {K_BYTE, P(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {K_BYTE, P(MQTT_CONNACK)},
};

/* Read one property's identifier and value; false when malformed. */
static enum mqtt_rc read_one(struct rd *r, struct mqtt_prop *out)
{
	uint32_t id;
	if (!rd_varint(r, &id) || id >= 64 || table[id].kind == K_NONE)
		return MQTT_RC_MALFORMED_PACKET;
	out->id = (uint8_t)id;
	out->u = 0;
	out->str = (struct mqtt_view){0};
	out->value = (struct mqtt_view){0};
	uint8_t b;
	uint16_t h;
	switch (table[id].kind) {
	case K_BYTE:
		if (!rd_u8(r, &b))
			return MQTT_RC_MALFORMED_PACKET;
		out->u = b;
		return MQTT_RC_SUCCESS;
	case K_U16:
		if (!rd_u16(r, &h))
			return MQTT_RC_MALFORMED_PACKET;
		out->u = h;
		return MQTT_RC_SUCCESS;
	case K_U32:
		return rd_u32(r, &out->u) ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET;
	case K_VARINT:
		return rd_varint(r, &out->u) ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET;
	case K_UTF8:
		return rd_utf8(r, &out->str);
	case K_BIN:
		return rd_binary(r, &out->str) ? MQTT_RC_SUCCESS : MQTT_RC_MALFORMED_PACKET;
	case K_PAIR:
		if (rd_utf8(r, &out->str) != MQTT_RC_SUCCESS)
			return MQTT_RC_MALFORMED_PACKET;
		return rd_utf8(r, &out->value);
	}
	return MQTT_RC_MALFORMED_PACKET;
}

/* Store a decoded property in its field and check its range. */
static enum mqtt_rc store(struct mqtt_props *p, const struct mqtt_prop *v)
{
	bool flag_ok = v->u <= 1; /* one-byte booleans are 0 or 1 */
	switch (v->id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
		p->payload_format = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_MESSAGE_EXPIRY:
		p->message_expiry_s = v->u;
		break;
	case MQTT_PROP_CONTENT_TYPE:
		p->content_type = v->str;
		break;
	case MQTT_PROP_RESPONSE_TOPIC:
		p->response_topic = v->str;
		/* A Response Topic is a topic name [MQTT-3.3.2-14]. */
		return mqtt_topic_name_valid(v->str) ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_CORRELATION_DATA:
		p->correlation_data = v->str;
		break;
	case MQTT_PROP_SUBSCRIPTION_ID:
		if (p->sub_id_count == 0)
			p->sub_id = v->u;
		p->sub_id_count++;
		return v->u != 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_SESSION_EXPIRY:
		p->session_expiry_s = v->u;
		break;
	case MQTT_PROP_ASSIGNED_CLIENT_ID:
		p->assigned_client_id = v->str;
		break;
	case MQTT_PROP_SERVER_KEEP_ALIVE:
		p->server_keepalive_s = (uint16_t)v->u;
		break;
	case MQTT_PROP_AUTH_METHOD:
		p->auth_method = v->str;
		break;
	case MQTT_PROP_AUTH_DATA:
		p->auth_data = v->str;
		break;
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
		p->request_problem_info = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_WILL_DELAY:
		p->will_delay_s = v->u;
		break;
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
		p->request_response_info = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_RESPONSE_INFO:
		p->response_info = v->str;
		break;
	case MQTT_PROP_SERVER_REFERENCE:
		p->server_reference = v->str;
		break;
	case MQTT_PROP_REASON_STRING:
		p->reason_string = v->str;
		break;
	case MQTT_PROP_RECEIVE_MAXIMUM:
		p->receive_max = (uint16_t)v->u;
		return v->u != 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
		p->topic_alias_max = (uint16_t)v->u;
		break;
	case MQTT_PROP_TOPIC_ALIAS:
		p->topic_alias = (uint16_t)v->u;
		return v->u != 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.3.2-8] */
	case MQTT_PROP_MAXIMUM_QOS:
		p->max_qos = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_RETAIN_AVAILABLE:
		p->retain_available = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_USER:
		p->user_count++;
		break;
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
		p->max_packet_size = v->u;
		return v->u != 0 ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
		p->wildcard_sub_available = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_SUB_ID_AVAILABLE:
		p->sub_id_available = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		p->shared_sub_available = (uint8_t)v->u;
		return flag_ok ? MQTT_RC_SUCCESS : MQTT_RC_PROTOCOL_ERROR;
	}
	return MQTT_RC_SUCCESS;
}

enum mqtt_rc props_decode(struct rd *r, unsigned type, struct mqtt_props *out)
{
	memset(out, 0, sizeof(*out));
	uint32_t len;
	if (!rd_varint(r, &len) || rd_left(r) < len)
		return MQTT_RC_MALFORMED_PACKET;
	out->raw = (struct mqtt_view){r->p, len};
	struct rd pr = rd_make(r->p, len);
	r->p += len;

	while (rd_left(&pr) > 0) {
		struct mqtt_prop v;
		enum mqtt_rc rc = read_one(&pr, &v);
		if (rc != MQTT_RC_SUCCESS)
			return rc;
		if (!(table[v.id].packets & P(type)))
			return MQTT_RC_PROTOCOL_ERROR;
		/* Only user properties repeat, and subscription identifiers in
		 * a PUBLISH (one per matching subscription, §3.3.2.3.8). */
		bool repeats = v.id == MQTT_PROP_USER ||
		               (v.id == MQTT_PROP_SUBSCRIPTION_ID && type == MQTT_PUBLISH);
		if ((out->has & MQTT_PROP_BIT(v.id)) && !repeats)
			return MQTT_RC_PROTOCOL_ERROR;
		out->has |= MQTT_PROP_BIT(v.id);
		rc = store(out, &v);
		if (rc != MQTT_RC_SUCCESS)
			return rc;
	}
	/* Authentication Data without a method [MQTT-3.1.2-... §3.1.2.11.10]. */
	if ((out->has & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA)) &&
	    !(out->has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)))
		return MQTT_RC_PROTOCOL_ERROR;
	return MQTT_RC_SUCCESS;
}

void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *props)
{
	it->p = props->raw.ptr;
	it->end = props->raw.ptr ? props->raw.ptr + props->raw.len : NULL;
}

bool mqtt_prop_iter_next(struct mqtt_prop_iter *it, struct mqtt_prop *out)
{
	if (it->p == it->end)
		return false;
	struct rd r = {it->p, it->end};
	if (read_one(&r, out) != MQTT_RC_SUCCESS) {
		it->p = it->end;
		return false;
	}
	it->p = r.p;
	return true;
}

bool mqtt_props_next_user(struct mqtt_prop_iter *it, struct mqtt_user_prop *out)
{
	struct mqtt_prop v;
	while (mqtt_prop_iter_next(it, &v)) {
		if (v.id == MQTT_PROP_USER) {
			out->key = v.str;
			out->value = v.value;
			return true;
		}
	}
	return false;
}

bool mqtt_props_next_sub_id(struct mqtt_prop_iter *it, uint32_t *out)
{
	struct mqtt_prop v;
	while (mqtt_prop_iter_next(it, &v)) {
		if (v.id == MQTT_PROP_SUBSCRIPTION_ID) {
			*out = v.u;
			return true;
		}
	}
	return false;
}

static bool has(const struct mqtt_props *p, unsigned id)
{
	return (p->has & MQTT_PROP_BIT(id)) != 0;
}

/* The single-valued properties, in identifier order. */
static void body_encode(struct wr *w, const struct mqtt_props *p)
{
	const struct {
		uint8_t id;
		uint32_t u;
		const struct mqtt_view *s;
	} fields[] = {
	    {MQTT_PROP_PAYLOAD_FORMAT, p->payload_format, NULL},
	    {MQTT_PROP_MESSAGE_EXPIRY, p->message_expiry_s, NULL},
	    {MQTT_PROP_CONTENT_TYPE, 0, &p->content_type},
	    {MQTT_PROP_RESPONSE_TOPIC, 0, &p->response_topic},
	    {MQTT_PROP_CORRELATION_DATA, 0, &p->correlation_data},
	    {MQTT_PROP_SESSION_EXPIRY, p->session_expiry_s, NULL},
	    {MQTT_PROP_ASSIGNED_CLIENT_ID, 0, &p->assigned_client_id},
	    {MQTT_PROP_SERVER_KEEP_ALIVE, p->server_keepalive_s, NULL},
	    {MQTT_PROP_AUTH_METHOD, 0, &p->auth_method},
	    {MQTT_PROP_AUTH_DATA, 0, &p->auth_data},
	    {MQTT_PROP_REQUEST_PROBLEM_INFO, p->request_problem_info, NULL},
	    {MQTT_PROP_WILL_DELAY, p->will_delay_s, NULL},
	    {MQTT_PROP_REQUEST_RESPONSE_INFO, p->request_response_info, NULL},
	    {MQTT_PROP_RESPONSE_INFO, 0, &p->response_info},
	    {MQTT_PROP_SERVER_REFERENCE, 0, &p->server_reference},
	    {MQTT_PROP_REASON_STRING, 0, &p->reason_string},
	    {MQTT_PROP_RECEIVE_MAXIMUM, p->receive_max, NULL},
	    {MQTT_PROP_TOPIC_ALIAS_MAXIMUM, p->topic_alias_max, NULL},
	    {MQTT_PROP_TOPIC_ALIAS, p->topic_alias, NULL},
	    {MQTT_PROP_MAXIMUM_QOS, p->max_qos, NULL},
	    {MQTT_PROP_RETAIN_AVAILABLE, p->retain_available, NULL},
	    {MQTT_PROP_MAXIMUM_PACKET_SIZE, p->max_packet_size, NULL},
	    {MQTT_PROP_WILDCARD_SUB_AVAILABLE, p->wildcard_sub_available, NULL},
	    {MQTT_PROP_SUB_ID_AVAILABLE, p->sub_id_available, NULL},
	    {MQTT_PROP_SHARED_SUB_AVAILABLE, p->shared_sub_available, NULL},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (!has(p, fields[i].id))
			continue;
		wr_u8(w, fields[i].id);
		switch (table[fields[i].id].kind) {
		case K_BYTE:
			wr_u8(w, (uint8_t)fields[i].u);
			break;
		case K_U16:
			wr_u16(w, (uint16_t)fields[i].u);
			break;
		case K_U32:
			wr_u32(w, fields[i].u);
			break;
		default:
			wr_binary(w, *fields[i].s);
			break;
		}
	}

	/* Subscription identifiers: the array, else those in raw, else the
	 * single sub_id of a struct built by hand. */
	if (has(p, MQTT_PROP_SUBSCRIPTION_ID)) {
		uint32_t n = 0;
		if (p->sub_ids) {
			for (; n < p->sub_id_count; n++) {
				wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
				wr_varint(w, p->sub_ids[n]);
			}
		} else {
			struct mqtt_prop_iter it;
			uint32_t id;
			mqtt_prop_iter_init(&it, p);
			while (mqtt_props_next_sub_id(&it, &id)) {
				wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
				wr_varint(w, id);
				n++;
			}
			if (n == 0) {
				wr_u8(w, MQTT_PROP_SUBSCRIPTION_ID);
				wr_varint(w, p->sub_id);
			}
		}
	}

	if (p->user) {
		for (uint32_t i = 0; i < p->user_count; i++) {
			wr_u8(w, MQTT_PROP_USER);
			wr_binary(w, p->user[i].key);
			wr_binary(w, p->user[i].value);
		}
	} else if (p->user_count > 0) {
		struct mqtt_prop_iter it;
		struct mqtt_user_prop u;
		mqtt_prop_iter_init(&it, p);
		while (mqtt_props_next_user(&it, &u)) {
			wr_u8(w, MQTT_PROP_USER);
			wr_binary(w, u.key);
			wr_binary(w, u.value);
		}
	}
}

static size_t body_size(const struct mqtt_props *p)
{
	if (p->has == 0 && p->user_count == 0)
		return 0; /* the common case on the publish path */
	struct wr count = {NULL, 0, 0};
	body_encode(&count, p);
	return count.len;
}

size_t props_size(const struct mqtt_props *p)
{
	size_t n = body_size(p);
	return mqtt_varint_size((uint32_t)n) + n;
}

void props_encode(struct wr *w, const struct mqtt_props *p)
{
	size_t n = body_size(p);
	CODEC_ASSERT(n <= MQTT_VARINT_MAX);
	wr_varint(w, (uint32_t)n);
	if (n > 0)
		body_encode(w, p);
}
