/*
 * codec_roundtrip_test.c — for every packet type at every protocol level it
 * exists in, a packet built by hand with every field and every 5.0 property
 * the type may carry is encoded, decoded and compared field by field; and
 * re-encoding the decoded packet gives the same bytes (a canonical form).
 *
 * Which property goes in which packet is written out here again, from the
 * table in §2.2.2.2 of 5.0, independently of props.c.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdio.h>

#include "codec.h"
#include "packet_eq.h"

struct case_ {
	uint8_t type;
	uint8_t version;
};

#define WILL 0 /* pseudo type for will properties */

/* §2.2.2.2: which packets carry which property. */
static bool allowed(uint8_t id, uint8_t type)
{
	switch (id) {
	case MQTT_PROP_PAYLOAD_FORMAT:
	case MQTT_PROP_MESSAGE_EXPIRY:
	case MQTT_PROP_CONTENT_TYPE:
	case MQTT_PROP_RESPONSE_TOPIC:
	case MQTT_PROP_CORRELATION_DATA:
		return type == MQTT_PUBLISH || type == WILL;
	case MQTT_PROP_SUBSCRIPTION_ID:
		return type == MQTT_PUBLISH || type == MQTT_SUBSCRIBE;
	case MQTT_PROP_SESSION_EXPIRY:
		return type == MQTT_CONNECT || type == MQTT_CONNACK || type == MQTT_DISCONNECT;
	case MQTT_PROP_ASSIGNED_CLIENT_ID:
	case MQTT_PROP_SERVER_KEEP_ALIVE:
	case MQTT_PROP_RESPONSE_INFO:
	case MQTT_PROP_MAXIMUM_QOS:
	case MQTT_PROP_RETAIN_AVAILABLE:
	case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
	case MQTT_PROP_SUB_ID_AVAILABLE:
	case MQTT_PROP_SHARED_SUB_AVAILABLE:
		return type == MQTT_CONNACK;
	case MQTT_PROP_AUTH_METHOD:
	case MQTT_PROP_AUTH_DATA:
		return type == MQTT_CONNECT || type == MQTT_CONNACK || type == MQTT_AUTH;
	case MQTT_PROP_REQUEST_PROBLEM_INFO:
	case MQTT_PROP_REQUEST_RESPONSE_INFO:
		return type == MQTT_CONNECT;
	case MQTT_PROP_WILL_DELAY:
		return type == WILL;
	case MQTT_PROP_SERVER_REFERENCE:
		return type == MQTT_CONNACK || type == MQTT_DISCONNECT;
	case MQTT_PROP_REASON_STRING:
		return type >= MQTT_CONNACK && type != MQTT_PUBLISH && type != MQTT_SUBSCRIBE &&
		       type != MQTT_UNSUBSCRIBE && type != MQTT_PINGREQ && type != MQTT_PINGRESP;
	case MQTT_PROP_RECEIVE_MAXIMUM:
	case MQTT_PROP_TOPIC_ALIAS_MAXIMUM:
	case MQTT_PROP_MAXIMUM_PACKET_SIZE:
		return type == MQTT_CONNECT || type == MQTT_CONNACK;
	case MQTT_PROP_TOPIC_ALIAS:
		return type == MQTT_PUBLISH;
	case MQTT_PROP_USER:
		return type != MQTT_PINGREQ && type != MQTT_PINGRESP;
	}
	return false;
}

static const struct mqtt_user_prop users[] = {
    {{(const uint8_t *)"region", 6}, {(const uint8_t *)"eu-west", 7}},
    {{(const uint8_t *)"region", 6}, {(const uint8_t *)"eu-north", 8}}, /* repeats are kept */
    {{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}},
};
static const uint32_t sub_ids[] = {1, 127, 128, 268435455};

static void fill_props(struct mqtt_props *p, uint8_t type)
{
	memset(p, 0, sizeof(*p));
	static const uint8_t ids[] = {
	    0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x11, 0x12, 0x13, 0x15, 0x16, 0x17, 0x18, 0x19,
	    0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A,
	};
	for (size_t i = 0; i < sizeof(ids); i++)
		if (allowed(ids[i], type))
			p->has |= MQTT_PROP_BIT(ids[i]);
	p->payload_format = 1;
	p->message_expiry_s = 86400;
	p->content_type = mqtt_view_str("application/json");
	p->response_topic = mqtt_view_str("replies/42");
	p->correlation_data = (struct mqtt_view){(const uint8_t *)"\x00\xFF\x01", 3};
	p->session_expiry_s = 0xFFFFFFFF;
	p->assigned_client_id = mqtt_view_str("auto-7f3a");
	p->server_keepalive_s = 120;
	p->auth_method = mqtt_view_str("SCRAM-SHA-256");
	p->auth_data = (struct mqtt_view){(const uint8_t *)"n,,n=user", 9};
	p->request_problem_info = 0;
	p->will_delay_s = 30;
	p->request_response_info = 1;
	p->response_info = mqtt_view_str("resp/");
	p->server_reference = mqtt_view_str("broker-2:1883");
	p->reason_string = mqtt_view_str("because \xC3\xA9t\xC3\xA9");
	p->receive_max = 1;
	p->topic_alias_max = 65535;
	p->topic_alias = 9;
	p->max_qos = 1;
	p->retain_available = 0;
	p->max_packet_size = 268435460;
	p->wildcard_sub_available = 1;
	p->sub_id_available = 0;
	p->shared_sub_available = 1;
	if (allowed(MQTT_PROP_USER, type)) {
		p->user = users;
		p->user_count = 3;
	}
	if (allowed(MQTT_PROP_SUBSCRIPTION_ID, type)) {
		/* A SUBSCRIBE carries one; a PUBLISH one per matching filter. */
		p->sub_ids = sub_ids;
		p->sub_id_count = type == MQTT_PUBLISH ? 4 : 1;
	}
}

static const struct mqtt_sub_entry entries[] = {
    {.filter = {(const uint8_t *)"sport/tennis/+", 14},
     .qos = 2,
     .no_local = true,
     .retain_as_published = true,
     .retain_handling = 2},
    {.filter = {(const uint8_t *)"#", 1}, .qos = 0, .retain_handling = 1},
    {.filter = {(const uint8_t *)"$share/g1/a/b", 13}, .qos = 1},
    {.filter = {(const uint8_t *)"bad/#/filter", 12}, .qos = 1}, /* decodes with rc 0x8F */
};
static const struct mqtt_view unsub_filters[] = {
    {(const uint8_t *)"a/b", 3},
    {(const uint8_t *)"$share/g/#", 10},
};

static void build(const struct case_ *c, struct mqtt_packet *p)
{
	memset(p, 0, sizeof(*p));
	p->type = c->type;
	bool v5 = c->version == MQTT_V5;
	switch (c->type) {
	case MQTT_CONNECT:
		p->connect.version = c->version;
		p->connect.clean_start = false;
		p->connect.keepalive_s = 65535;
		p->connect.client_id = mqtt_view_str("sensor-\xE2\x82\xAC-1");
		p->connect.will = true;
		p->connect.will_qos = 2;
		p->connect.will_retain = true;
		p->connect.will_topic = mqtt_view_str("status/sensor-1");
		p->connect.will_payload = (struct mqtt_view){(const uint8_t *)"\x00off\xFF", 5};
		p->connect.has_username = true;
		p->connect.username = mqtt_view_str("alice");
		p->connect.has_password = true;
		p->connect.password = (struct mqtt_view){(const uint8_t *)"\x00pw\x01", 4};
		if (v5) {
			fill_props(&p->connect.props, MQTT_CONNECT);
			fill_props(&p->connect.will_props, WILL);
		}
		break;
	case MQTT_CONNACK:
		p->connack.session_present = c->version != MQTT_V31; /* 3.1.1 on */
		if (v5)
			fill_props(&p->connack.props, MQTT_CONNACK);
		break;
	case MQTT_PUBLISH:
		p->publish.qos = 2;
		p->publish.dup = true;
		p->publish.retain = true;
		p->publish.packet_id = 65535;
		p->publish.topic = mqtt_view_str("sensors/\xE2\x82\xAC/temp");
		p->publish.payload = (struct mqtt_view){(const uint8_t *)"\x00\x01\x02{}", 5};
		if (v5)
			fill_props(&p->publish.props, MQTT_PUBLISH);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		p->ack.packet_id = 4660;
		if (v5) {
			p->ack.rc = c->type == MQTT_PUBREL || c->type == MQTT_PUBCOMP
			                ? MQTT_RC_PACKET_ID_NOT_FOUND
			                : MQTT_RC_NO_MATCHING_SUBSCRIBERS;
			fill_props(&p->ack.props, c->type);
		}
		break;
	case MQTT_SUBSCRIBE:
		p->subscribe.packet_id = 1;
		p->subscribe.entries = entries;
		p->subscribe.count = 4;
		if (v5) {
			fill_props(&p->subscribe.props, MQTT_SUBSCRIBE);
		} else {
			/* Below 5.0 the option bits beyond QoS do not exist
			 * (and a shared filter is just a filter). */
			static struct mqtt_sub_entry v3[4];
			for (int i = 0; i < 4; i++) {
				v3[i] = entries[i];
				v3[i].no_local = false;
				v3[i].retain_as_published = false;
				v3[i].retain_handling = 0;
			}
			p->subscribe.entries = v3;
		}
		break;
	case MQTT_SUBACK:
		p->suback.packet_id = 2;
		p->suback.rcs = v5 ? (struct mqtt_view){(const uint8_t *)"\x02\x00\x8F\x87\xA2", 5}
		                   : (struct mqtt_view){(const uint8_t *)"\x02\x00\x80\x01", 4};
		if (v5)
			fill_props(&p->suback.props, MQTT_SUBACK);
		break;
	case MQTT_UNSUBSCRIBE:
		p->unsubscribe.packet_id = 3;
		p->unsubscribe.filters = unsub_filters;
		p->unsubscribe.count = 2;
		if (v5)
			fill_props(&p->unsubscribe.props, MQTT_UNSUBSCRIBE);
		break;
	case MQTT_UNSUBACK:
		p->suback.packet_id = 3;
		if (v5) {
			p->suback.rcs = (struct mqtt_view){(const uint8_t *)"\x00\x11", 2};
			fill_props(&p->suback.props, MQTT_UNSUBACK);
		}
		break;
	case MQTT_DISCONNECT:
	case MQTT_AUTH:
		if (v5) {
			p->reason.rc = c->type == MQTT_AUTH ? MQTT_RC_CONTINUE_AUTHENTICATION
			                                    : MQTT_RC_DISCONNECT_WITH_WILL;
			fill_props(&p->reason.props, c->type);
		}
		break;
	default:
		break;
	}
}

ParameterizedTestParameters(roundtrip, every_type_every_level)
{
	static struct case_ cases[48];
	size_t n = 0;
	const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t v = 0; v < 3; v++)
		for (uint8_t t = MQTT_CONNECT; t <= MQTT_AUTH; t++)
			if (t != MQTT_AUTH || versions[v] == MQTT_V5)
				cases[n++] = (struct case_){t, versions[v]};
	return cr_make_param_array(struct case_, cases, n);
}

ParameterizedTest(struct case_ *c, roundtrip, every_type_every_level)
{
	struct mqtt_packet p, q, r;
	build(c, &p);
	static uint8_t buf[4096], buf2[4096];
	size_t len = mqtt_encode_len(&p, c->version);
	size_t n = mqtt_encode(&p, c->version, buf, sizeof(buf));
	cr_assert_gt(n, 0, "%s v%u: does not encode", mqtt_type_name(c->type), c->version);
	cr_assert_eq(n, len, "%s v%u: encode_len %zu but wrote %zu", mqtt_type_name(c->type),
	             c->version, len, n);
	cr_assert_eq(mqtt_encode(&p, c->version, buf2, n - 1), 0, "must not fit in one less");

	size_t used = 0;
	enum mqtt_rc rc = mqtt_decode_buf(buf, n, c->version, &q, &used);
	cr_assert_eq(rc, MQTT_RC_SUCCESS, "%s v%u: decode: %s", mqtt_type_name(c->type), c->version,
	             mqtt_rc_name(rc));
	cr_assert_eq(used, n);
	char why[160] = "";
	cr_assert(packet_eq(&p, &q, c->version, why, sizeof(why)), "%s v%u: %s",
	          mqtt_type_name(c->type), c->version, why);

	/* The decoded form (views into buf) re-encodes to the same bytes. */
	size_t n2 = mqtt_encode(&q, c->version, buf2, sizeof(buf2));
	cr_assert_eq(n2, n);
	cr_assert_arr_eq(buf2, buf, n, "%s v%u: not canonical", mqtt_type_name(c->type),
	                 c->version);
	cr_assert_eq(mqtt_decode_buf(buf2, n2, c->version, &r, NULL), MQTT_RC_SUCCESS);
}

/* Values at the edges of their types survive the trip. */
Test(roundtrip, extremes_v5_publish)
{
	static uint8_t payload[70000];
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)i;
	static char topic[65535];
	memset(topic, 'x', sizeof(topic));
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.qos = 1;
	p.publish.packet_id = 1;
	p.publish.topic = (struct mqtt_view){(const uint8_t *)topic, sizeof(topic)};
	p.publish.payload = (struct mqtt_view){payload, sizeof(payload)};
	static uint8_t buf[200000];
	size_t n = mqtt_encode(&p, 5, buf, sizeof(buf));
	cr_assert_eq(n, 1 + 3 + 2 + 65535 + 2 + 1 + 70000);
	struct mqtt_packet q;
	cr_assert_eq(mqtt_decode_buf(buf, n, 5, &q, NULL), MQTT_RC_SUCCESS);
	cr_assert_eq(q.publish.topic.len, 65535);
	cr_assert_eq(q.publish.payload.len, 70000);
	cr_assert_arr_eq(q.publish.payload.ptr, payload, sizeof(payload));
}

Test(roundtrip, empty_payload_and_empty_client_id)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str("t");
	uint8_t buf[64];
	size_t n = mqtt_encode(&p, 4, buf, sizeof(buf));
	const uint8_t want[] = {0x30, 0x03, 0x00, 0x01, 't'};
	cr_assert_eq(n, sizeof(want));
	cr_assert_arr_eq(buf, want, n);

	struct mqtt_packet c = {.type = MQTT_CONNECT};
	c.connect.version = 5;
	c.connect.clean_start = true;
	n = mqtt_encode(&c, 5, buf, sizeof(buf));
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(buf, n, 0, &d, NULL), MQTT_RC_SUCCESS);
	cr_assert_eq(d.connect.client_id.len, 0);
	cr_assert(d.connect.clean_start);
}

/* mosquitto's bridge bit (try_private): 0x80 on a 3.1/3.1.1 level, written
 * by a bridge's CONNECT and read as that level plus bridge = true; a 5.0
 * CONNECT never carries it (no-local does that job), and 0x85 is no level. */
Test(roundtrip, bridge_bit_on_the_protocol_level)
{
	uint8_t buf[64];
	for (uint8_t v = 3; v <= 5; v++) {
		struct mqtt_packet c = {.type = MQTT_CONNECT};
		c.connect.version = v;
		c.connect.bridge = true;
		c.connect.client_id = mqtt_view_str("edge.cloud");
		size_t n = mqtt_encode(&c, v, buf, sizeof(buf));
		cr_assert_gt(n, 0);
		size_t level_at = 2 + 2 + (v == 3 ? 6 : 4); /* header, name length, name */
		cr_assert_eq(buf[level_at], v == 5 ? 5 : (uint8_t)(v | 0x80), "level %u", v);
		struct mqtt_packet d;
		cr_assert_eq(mqtt_decode_buf(buf, n, 0, &d, NULL), MQTT_RC_SUCCESS, "level %u", v);
		cr_assert_eq(d.connect.version, v);
		cr_assert_eq(d.connect.bridge, v != 5, "level %u", v);
	}
	struct mqtt_packet c = {.type = MQTT_CONNECT};
	c.connect.version = 5;
	size_t n = mqtt_encode(&c, 5, buf, sizeof(buf));
	buf[2 + 2 + 4] = 0x85; /* a 5.0 level with the bit: not a level we speak */
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(buf, n, 0, &d, NULL), MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
}
