/*
 * codec_frame_test.c — Variable Byte Integers (§1.5.5 of 5.0, with the
 * spec's table of boundaries) and the fixed header peek.
 */
#include <criterion/criterion.h>

#include "codec.h"

/* The boundaries from the table in §1.5.5 / §2.2.3. */
static const struct {
	uint32_t value;
	uint8_t bytes[4];
	int len;
} varints[] = {
    {0, {0x00}, 1},
    {127, {0x7F}, 1},
    {128, {0x80, 0x01}, 2},
    {16383, {0xFF, 0x7F}, 2},
    {16384, {0x80, 0x80, 0x01}, 3},
    {2097151, {0xFF, 0xFF, 0x7F}, 3},
    {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
    {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
};

Test(varint, spec_table_encodes_exactly)
{
	for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
		uint8_t out[4] = {0};
		int n = mqtt_varint_encode(varints[i].value, out);
		cr_assert_eq(n, varints[i].len, "value %u", varints[i].value);
		cr_assert_arr_eq(out, varints[i].bytes, (size_t)n, "value %u", varints[i].value);
		cr_assert_eq(mqtt_varint_size(varints[i].value), (unsigned)n);
	}
}

Test(varint, spec_table_decodes_exactly)
{
	for (size_t i = 0; i < sizeof(varints) / sizeof(varints[0]); i++) {
		uint32_t v = 12345;
		int n = mqtt_varint_decode(varints[i].bytes, 4, &v);
		cr_assert_eq(n, varints[i].len);
		cr_assert_eq(v, varints[i].value);
		/* Every strict prefix asks for more. */
		for (int k = 0; k < varints[i].len; k++)
			cr_assert_eq(mqtt_varint_decode(varints[i].bytes, (size_t)k, &v), 0);
	}
}

Test(varint, five_bytes_and_non_minimal_are_malformed)
{
	const uint8_t five[] = {0x80, 0x80, 0x80, 0x80, 0x01};
	const uint8_t long_zero[] = {0x80, 0x00};
	const uint8_t long_one[] = {0x81, 0x80, 0x00};
	uint32_t v;
	cr_assert_eq(mqtt_varint_decode(five, sizeof(five), &v), -1);
	cr_assert_eq(mqtt_varint_decode(long_zero, sizeof(long_zero), &v), -1);
	cr_assert_eq(mqtt_varint_decode(long_one, sizeof(long_one), &v), -1);
}

Test(frame, pingreq_is_complete_with_two_bytes)
{
	const uint8_t b[] = {0xC0, 0x00};
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(b, 0, 4, 0, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(mqtt_frame_peek(b, 1, 4, 0, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(mqtt_frame_peek(b, 2, 4, 0, &f), MQTT_FRAME_OK);
	cr_assert_eq(f.type, MQTT_PINGREQ);
	cr_assert_eq(f.header_len, 2);
	cr_assert_eq(f.remaining_len, 0);
	cr_assert_eq(mqtt_frame_size(&f), 2);
}

Test(frame, large_publish_header_and_body)
{
	/* PUBLISH QoS 1 with Remaining Length 200 (0xC8 0x01). */
	uint8_t b[203] = {0x32, 0xC8, 0x01};
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(b, 2, 4, 0, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(mqtt_frame_peek(b, 3, 4, 0, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(f.remaining_len, 200, "length known before the body arrives");
	cr_assert_eq(mqtt_frame_peek(b, 202, 4, 0, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(mqtt_frame_peek(b, 203, 4, 0, &f), MQTT_FRAME_OK);
	cr_assert_eq(f.type, MQTT_PUBLISH);
	cr_assert_eq(f.flags, 0x2);
	cr_assert_eq(f.header_len, 3);
	cr_assert_eq(mqtt_frame_size(&f), 203);
}

Test(frame, too_large_is_refused_from_the_header_alone)
{
	/* 2 + 1000 bytes in total against a maximum of 1000: only the
	 * header is present, and that is enough to refuse it. */
	const uint8_t b[] = {0x30, 0xE8, 0x07};
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(b, sizeof(b), 5, 1000, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(f.rc, MQTT_RC_PACKET_TOO_LARGE);
	/* Exactly at the maximum is fine: 3 + 997 = 1000. */
	const uint8_t ok[] = {0x30, 0xE5, 0x07};
	cr_assert_eq(mqtt_frame_peek(ok, sizeof(ok), 5, 1000, &f), MQTT_FRAME_NEED_MORE);
	cr_assert_eq(mqtt_frame_peek(ok, sizeof(ok), 5, 999, &f), MQTT_FRAME_INVALID);
}

Test(frame, reserved_flags_per_type)
{
	for (unsigned type = 1; type <= 15; type++) {
		for (unsigned flags = 0; flags < 16; flags++) {
			uint8_t b[2] = {(uint8_t)(type << 4 | flags), 0};
			struct mqtt_frame f;
			enum mqtt_frame_status st = mqtt_frame_peek(b, 2, 5, 0, &f);
			bool want_ok;
			if (type == MQTT_PUBLISH)
				want_ok = (flags & 0x6) != 0x6; /* QoS 3 */
			else if (type == MQTT_PUBREL || type == MQTT_SUBSCRIBE ||
			         type == MQTT_UNSUBSCRIBE)
				want_ok = flags == 0x2;
			else
				want_ok = flags == 0;
			cr_assert_eq(st, want_ok ? MQTT_FRAME_OK : MQTT_FRAME_INVALID,
			             "type %u flags %#x", type, flags);
			if (!want_ok)
				cr_assert_eq(f.rc, MQTT_RC_MALFORMED_PACKET);
		}
	}
}

Test(frame, type_zero_and_auth_below_5)
{
	const uint8_t zero[] = {0x00, 0x00};
	const uint8_t auth[] = {0xF0, 0x00};
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(zero, 2, 4, 0, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(mqtt_frame_peek(auth, 2, 4, 0, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(mqtt_frame_peek(auth, 2, 3, 0, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(mqtt_frame_peek(auth, 2, 5, 0, &f), MQTT_FRAME_OK);
}

Test(frame, remaining_length_of_five_bytes)
{
	const uint8_t b[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(b, sizeof(b), 4, 0, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(f.rc, MQTT_RC_MALFORMED_PACKET);
	/* With only four continuation bytes seen it must already know. */
	cr_assert_eq(mqtt_frame_peek(b, 5, 4, 0, &f), MQTT_FRAME_INVALID);
}

Test(frame, stream_of_packets_back_to_back)
{
	/* PINGREQ, PUBLISH "a" QoS 0 "xy", DISCONNECT in one buffer. */
	const uint8_t b[] = {0xC0, 0x00, 0x30, 0x05, 0x00, 0x01, 'a', 'x', 'y', 0xE0, 0x00};
	size_t off = 0;
	const uint8_t types[] = {MQTT_PINGREQ, MQTT_PUBLISH, MQTT_DISCONNECT};
	for (size_t i = 0; i < 3; i++) {
		struct mqtt_frame f;
		cr_assert_eq(mqtt_frame_peek(b + off, sizeof(b) - off, 4, 0, &f), MQTT_FRAME_OK);
		cr_assert_eq(f.type, types[i]);
		struct mqtt_packet p;
		cr_assert_eq(mqtt_decode(&f, b + off + f.header_len, 4, &p), MQTT_RC_SUCCESS);
		off += mqtt_frame_size(&f);
	}
	cr_assert_eq(off, sizeof(b));
}

Test(rc, v3_mappings)
{
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_SUCCESS), 0);
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_CLIENT_ID_NOT_VALID), 2);
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_SERVER_BUSY), 3);
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_BAD_USERNAME_OR_PASSWORD), 4);
	cr_assert_eq(mqtt_rc_to_v3_connack(MQTT_RC_NOT_AUTHORIZED), 5);
	cr_assert_eq(mqtt_rc_to_v3_suback(MQTT_RC_GRANTED_QOS2), 2);
	cr_assert_eq(mqtt_rc_to_v3_suback(MQTT_RC_NOT_AUTHORIZED), 0x80);
	cr_assert_eq(mqtt_rc_to_v3_suback(MQTT_RC_TOPIC_FILTER_INVALID), 0x80);
	cr_assert_str_eq(mqtt_rc_name(MQTT_RC_MALFORMED_PACKET), "malformed packet");
	cr_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
}
