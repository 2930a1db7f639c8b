/*
 * msg_test.c — a shared message outlives the receive buffer it came from,
 * keeps every property, drops per-hop ones, and counts expiry.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "codec.h"
#include "route/msg.h"

Test(msg, copies_out_of_the_receive_buffer)
{
	/* 5.0 PUBLISH QoS 1 "a/b" id 7, props: content type "t", topic alias
	 * 3, subscription id 9 (as a broker would never accept from a client,
	 * but msg_new must clear it anyway), user "k"="v"; payload "hi". */
	uint8_t wire[] = {0x32, 0x1A, 0x00, 0x03, 'a',  '/',  'b',  0x00, 0x07, 0x10,
	                  0x03, 0x00, 0x01, 't',  0x23, 0x00, 0x03, 0x0B, 0x09, 0x26,
	                  0x00, 0x01, 'k',  0x00, 0x01, 'v',  'h',  'i'};
	struct mqtt_packet p;
	cr_assert_eq(mqtt_decode_buf(wire, sizeof(wire), 5, &p, NULL), MQTT_RC_SUCCESS);
	struct sess_id origin = {.slot = 4, .gen = 2, .worker = 1};
	struct msg *m = msg_new(&p.publish, 5, p.publish.topic, origin, 1000);
	cr_assert_not_null(m);
	memset(wire, 0xEE, sizeof(wire)); /* the buffer is reused */

	cr_assert(mqtt_view_eq_str(m->pub.topic, "a/b"));
	cr_assert(mqtt_view_eq_str(m->pub.payload, "hi"));
	cr_assert(mqtt_view_eq_str(m->pub.props.content_type, "t"));
	cr_assert_eq(m->pub.qos, 1);
	cr_assert_eq(m->pub.packet_id, 0, "the packet id is the subscriber's");
	cr_assert(sess_id_eq(m->origin, origin));
	cr_assert_not(m->pub.props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
	cr_assert_not(m->pub.props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID));
	struct mqtt_prop_iter it;
	struct mqtt_user_prop u;
	mqtt_prop_iter_init(&it, &m->pub.props);
	cr_assert(mqtt_props_next_user(&it, &u));
	cr_assert(mqtt_view_eq_str(u.key, "k") && mqtt_view_eq_str(u.value, "v"));
	cr_assert_not(mqtt_props_next_user(&it, &u));

	/* Re-encoded for a subscriber: no alias, no stale subscription id. */
	struct mqtt_packet out = {.type = MQTT_PUBLISH};
	out.publish = m->pub;
	out.publish.qos = 0;
	uint8_t buf[64];
	size_t n = mqtt_encode(&out, 5, buf, sizeof(buf));
	const uint8_t want[] = {0x30, 0x13, 0x00, 0x03, 'a', '/',  'b',  0x0B, 0x03, 0x00, 0x01,
	                        't',  0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',  'h',  'i'};
	cr_assert_eq(n, sizeof(want));
	cr_assert_arr_eq(buf, want, sizeof(want));
	msg_unref(m);
}

Test(msg, alias_resolved_topic_is_used)
{
	/* 5.0 PUBLISH QoS 0 with an empty topic and alias 2. */
	const uint8_t wire[] = {0x30, 0x08, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, 'x', 'y'};
	struct mqtt_packet p;
	cr_assert_eq(mqtt_decode_buf(wire, sizeof(wire), 5, &p, NULL), MQTT_RC_SUCCESS);
	struct msg *m = msg_new(&p.publish, 5, mqtt_view_str("from/alias"), (struct sess_id){0}, 0);
	cr_assert(mqtt_view_eq_str(m->pub.topic, "from/alias"));
	cr_assert(mqtt_view_eq_str(m->pub.payload, "xy"));
	msg_unref(m);
}

Test(msg, expiry_counts_down_and_rounds_up)
{
	const uint8_t wire[] = {0x30, 0x0B, 0x00, 0x01, 't', 0x05, 0x02,
	                        0x00, 0x00, 0x00, 0x0A, 'p', 'q'};
	struct mqtt_packet p;
	cr_assert_eq(mqtt_decode_buf(wire, sizeof(wire), 5, &p, NULL), MQTT_RC_SUCCESS);
	struct msg *m = msg_new(&p.publish, 5, p.publish.topic, (struct sess_id){0}, 5000);
	cr_assert_eq(m->expires_at_ms, 15000);
	cr_assert_not(msg_expired(m, 14999));
	cr_assert(msg_expired(m, 15000));
	cr_assert_eq(msg_expiry_left_s(m, 5000), 10);
	cr_assert_eq(msg_expiry_left_s(m, 5001), 10);
	cr_assert_eq(msg_expiry_left_s(m, 14001), 1);
	msg_ref(m);
	msg_unref(m);
	cr_assert_eq(atomic_load(&m->refs), 1);
	msg_unref(m);
}

Test(msg, a_copy_stands_alone)
{
	/* 5.0 PUBLISH QoS 2 retain "c/d" id 1, props: correlation data "xy",
	 * response topic "r", user "k"="v"; payload "body". */
	const uint8_t wire[] = {0x35, 0x1C, 0x00, 0x03, 'c',  '/',  'd',  0x00, 0x01, 0x10,
	                        0x09, 0x00, 0x02, 'x',  'y',  0x08, 0x00, 0x01, 'r',  0x26,
	                        0x00, 0x01, 'k',  0x00, 0x01, 'v',  'b',  'o',  'd',  'y'};
	struct mqtt_packet p;
	cr_assert_eq(mqtt_decode_buf(wire, sizeof(wire), 5, &p, NULL), MQTT_RC_SUCCESS);
	struct msg *m = msg_new(&p.publish, 5, p.publish.topic, (struct sess_id){.slot = 3}, 0);
	cr_assert_not_null(m);
	m->jstamp = 77;
	struct msg *c = msg_copy(m);
	cr_assert_not_null(c);
	cr_assert_eq(atomic_load(&c->refs), 1);
	cr_assert_eq(c->jstamp, 0, "a copy is journaled on its own");
	cr_assert_eq(c->size_bytes, m->size_bytes);
	/* Nothing of the copy points into the original: scribble over it. */
	size_t len = m->size_bytes - sizeof(*m);
	memset(m->data, 0xEE, len);
	msg_unref(m);
	cr_assert(mqtt_view_eq_str(c->pub.topic, "c/d"));
	cr_assert(mqtt_view_eq_str(c->pub.payload, "body"));
	cr_assert(mqtt_view_eq_str(c->pub.props.correlation_data, "xy"));
	cr_assert(mqtt_view_eq_str(c->pub.props.response_topic, "r"));
	cr_assert(c->pub.retain && c->pub.qos == 2);
	struct mqtt_prop_iter it;
	struct mqtt_user_prop u;
	mqtt_prop_iter_init(&it, &c->pub.props);
	cr_assert(mqtt_props_next_user(&it, &u));
	cr_assert(mqtt_view_eq_str(u.key, "k") && mqtt_view_eq_str(u.value, "v"));
	msg_unref(c);
}
