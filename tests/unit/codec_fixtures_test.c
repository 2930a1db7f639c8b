/*
 * codec_fixtures_test.c — exact-bytes fixtures for every MQTT packet type,
 * written by hand from the byte layouts of MQTT 3.1.1 and 5.0 (§2, §3 of
 * both specifications; the CONNECT variable header example of §3.1.2.10
 * (3.1.1) / §3.1.2.12 (5.0), the SUBSCRIBE/SUBACK/UNSUBSCRIBE payload
 * examples, and the Variable Byte Integer table of §1.5.5 / §2.2.3).
 *
 * For each fixture: mqtt_decode_buf() accepts it, every decoded field is
 * what the bytes say, and mqtt_encode() of the decoded struct gives back the
 * very same bytes (fixtures are in the canonical form the encoder writes:
 * single-valued properties in ascending identifier order, then subscription
 * identifiers, then user properties; 5.0 acks with reason 0 and no
 * properties in their short form).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define N(a)    (sizeof(a) / sizeof((a)[0]))
#define BIT(id) MQTT_PROP_BIT(MQTT_PROP_##id)

/* ---------------------------------------------------------------- helpers */

static const char *hex(const uint8_t *p, size_t n)
{
	static char out[4096];
	size_t o = 0;
	for (size_t i = 0; i < n && o + 4 < sizeof(out); i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%02X ", p[i]);
	out[o] = 0;
	return out;
}

/* Decode fx, which must be exactly one whole packet. */
static void decode_ok(const uint8_t *fx, size_t n, uint8_t version, struct mqtt_packet *p)
{
	size_t used = 0;
	/* Garbage first: the decoder must set every field the encoder reads. */
	memset(p, 0xA5, sizeof(*p));
	enum mqtt_rc rc = mqtt_decode_buf(fx, n, version, p, &used);
	cr_assert_eq(rc, MQTT_RC_SUCCESS, "decode of %s(v%u) failed: 0x%02X %s", hex(fx, n),
	             version, rc, mqtt_rc_name(rc));
	cr_assert_eq(used, n, "used %zu of %zu bytes", used, n);
}

/* Encode p and compare with fx byte for byte; check sizing and a short buffer. */
static void encodes_to(const struct mqtt_packet *p, uint8_t version, const uint8_t *fx, size_t n)
{
	uint8_t buf[1024];
	cr_assert_lt(n, sizeof(buf));
	cr_assert_eq(mqtt_encode_len(p, version), n, "encode_len %zu, want %zu",
	             mqtt_encode_len(p, version), n);
	memset(buf, 0xEE, sizeof(buf));
	cr_assert_eq(mqtt_encode(p, version, buf, n - 1), 0, "one byte short must fail");
	size_t got = mqtt_encode(p, version, buf, n);
	cr_assert_eq(got, n, "encode wrote %zu, want %zu", got, n);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(buf[i], fx[i], "byte %zu: got %02X want %02X\n got  %s", i, buf[i],
		             fx[i], hex(buf, n));
	cr_assert_eq(buf[n], 0xEE, "wrote past the end");
}

static void roundtrip(const uint8_t *fx, size_t n, uint8_t version, struct mqtt_packet *p)
{
	decode_ok(fx, n, version, p);
	encodes_to(p, version, fx, n);
}

static void view_is(struct mqtt_view v, const char *s, const char *what)
{
	cr_assert(mqtt_view_eq_str(v, s), "%s: got \"%.*s\" (len %u) want \"%s\"", what, (int)v.len,
	          v.ptr ? (const char *)v.ptr : "", v.len, s);
}

static void view_bytes(struct mqtt_view v, const uint8_t *b, size_t n, const char *what)
{
	cr_assert_eq(v.len, n, "%s: len %u want %zu", what, v.len, n);
	cr_assert(n == 0 || memcmp(v.ptr, b, n) == 0, "%s: got %s", what, hex(v.ptr, v.len));
}

/* User properties in wire order: kv holds key, value, key, value, ... */
static void users_are(const struct mqtt_props *p, const char *const *kv, size_t pairs)
{
	struct mqtt_prop_iter it;
	struct mqtt_user_prop u;
	cr_assert_eq(p->user_count, pairs, "user_count %u want %zu", p->user_count, pairs);
	mqtt_prop_iter_init(&it, p);
	for (size_t i = 0; i < pairs; i++) {
		cr_assert(mqtt_props_next_user(&it, &u), "user property %zu missing", i);
		view_is(u.key, kv[2 * i], "user key");
		view_is(u.value, kv[2 * i + 1], "user value");
	}
	cr_assert_not(mqtt_props_next_user(&it, &u), "more user properties than %zu", pairs);
}

static void sub_ids_are(const struct mqtt_props *p, const uint32_t *ids, size_t n)
{
	struct mqtt_prop_iter it;
	uint32_t id;
	cr_assert_eq(p->sub_id_count, n, "sub_id_count %u want %zu", p->sub_id_count, n);
	if (n > 0)
		cr_assert_eq(p->sub_id, ids[0], "sub_id %u want the first, %u", p->sub_id, ids[0]);
	mqtt_prop_iter_init(&it, p);
	for (size_t i = 0; i < n; i++) {
		cr_assert(mqtt_props_next_sub_id(&it, &id), "subscription id %zu missing", i);
		cr_assert_eq(id, ids[i], "subscription id %zu: %u want %u", i, id, ids[i]);
	}
	cr_assert_not(mqtt_props_next_sub_id(&it, &id));
}

static void no_props(const struct mqtt_props *p)
{
	cr_assert_eq(p->has, 0, "has %llx", (unsigned long long)p->has);
	cr_assert_eq(p->user_count, 0);
	cr_assert_eq(p->sub_id_count, 0);
}

/* ------------------------------------------------- Variable Byte Integer */

/* The table of §1.5.5 (5.0) / §2.2.3 (3.1.1), both ends of each size. */
static const struct {
	uint32_t v;
	uint8_t b[4];
	int n;
} vbi[] = {
    {0, {0x00}, 1},
    {127, {0x7F}, 1},
    {128, {0x80, 0x01}, 2},
    {16383, {0xFF, 0x7F}, 2},
    {16384, {0x80, 0x80, 0x01}, 3},
    {2097151, {0xFF, 0xFF, 0x7F}, 3},
    {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
    {268435455, {0xFF, 0xFF, 0xFF, 0x7F}, 4},
    {321, {0xC1, 0x02}, 2}, /* the worked example of §1.5.5 */
};

Test(fixtures, varint_spec_table)
{
	for (size_t i = 0; i < N(vbi); i++) {
		uint8_t out[4] = {0};
		uint32_t v = 0xDEADBEEF;
		cr_assert_eq(mqtt_varint_encode(vbi[i].v, out), vbi[i].n, "encode %u", vbi[i].v);
		cr_assert(memcmp(out, vbi[i].b, (size_t)vbi[i].n) == 0, "encode %u: %s", vbi[i].v,
		          hex(out, 4));
		cr_assert_eq(mqtt_varint_size(vbi[i].v), (unsigned)vbi[i].n, "size %u", vbi[i].v);
		cr_assert_eq(mqtt_varint_decode(vbi[i].b, (size_t)vbi[i].n, &v), vbi[i].n,
		             "decode %u", vbi[i].v);
		cr_assert_eq(v, vbi[i].v);
		/* Every shorter prefix is incomplete, not malformed. */
		for (int k = 0; k < vbi[i].n; k++)
			cr_assert_eq(mqtt_varint_decode(vbi[i].b, (size_t)k, &v), 0,
			             "prefix %d of %u", k, vbi[i].v);
	}
}

/* A PUBLISH of 200 payload bytes: Remaining Length 203 = CB 01. */
Test(fixtures, publish_two_byte_remaining_length)
{
	uint8_t fx[2 + 3 + 200 + 1];
	fx[0] = 0x30;
	fx[1] = 0xCB;
	fx[2] = 0x01;
	fx[3] = 0x00;
	fx[4] = 0x01;
	fx[5] = 't';
	for (size_t i = 0; i < 200; i++)
		fx[6 + i] = (uint8_t)i;
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(fx, sizeof(fx), MQTT_V311, 0, &f), MQTT_FRAME_OK);
	cr_assert_eq(f.header_len, 3);
	cr_assert_eq(f.remaining_len, 203);
	cr_assert_eq(mqtt_frame_size(&f), sizeof(fx));
	struct mqtt_packet p;
	roundtrip(fx, sizeof(fx), MQTT_V311, &p);
	view_is(p.publish.topic, "t", "topic");
	view_bytes(p.publish.payload, fx + 6, 200, "payload");
}

/* ------------------------------------------------------------- CONNECT */

/* 3.1.1: the §3.1.2.10 example flags CE (user name, password, will QoS 1,
 * will, clean session) and keep alive 10, with a full payload. */
static const uint8_t connect_v4[] = {
    0x10, 0x23,                       /* CONNECT, remaining length 35 */
    0x00, 0x04, 'M',  'Q',  'T', 'T', /* protocol name */
    0x04,                             /* level 4 */
    0xCE,                             /* flags */
    0x00, 0x0A,                       /* keep alive 10 s */
    0x00, 0x03, 'c',  'i',  'd',      /* client id */
    0x00, 0x03, 'w',  '/',  't',      /* will topic */
    0x00, 0x03, 'b',  'y',  'e',      /* will message */
    0x00, 0x04, 'u',  's',  'e', 'r', /* user name */
    0x00, 0x02, 0x01, 0x02,           /* password */
};

Test(fixtures, connect_v311)
{
	struct mqtt_packet p;
	roundtrip(connect_v4, sizeof(connect_v4), 0, &p);
	const struct mqtt_connect *c = &p.connect;
	cr_assert_eq(p.type, MQTT_CONNECT);
	cr_assert_eq(c->version, MQTT_V311);
	cr_assert(c->clean_start);
	cr_assert_eq(c->keepalive_s, 10);
	view_is(c->client_id, "cid", "client id");
	cr_assert(c->will);
	cr_assert_eq(c->will_qos, 1);
	cr_assert_not(c->will_retain);
	view_is(c->will_topic, "w/t", "will topic");
	view_is(c->will_payload, "bye", "will payload");
	cr_assert(c->has_username);
	cr_assert(c->has_password);
	view_is(c->username, "user", "user name");
	view_bytes(c->password, (const uint8_t[]){1, 2}, 2, "password");
	no_props(&c->props);
	no_props(&c->will_props);
}

/* 3.1.1: empty client id is allowed with clean session 1 [MQTT-3.1.3-7]. */
static const uint8_t connect_v4_empty_id[] = {
    0x10, 0x0C, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x00, 0x00, 0x00,
};

Test(fixtures, connect_v311_empty_client_id_clean)
{
	struct mqtt_packet p;
	roundtrip(connect_v4_empty_id, sizeof(connect_v4_empty_id), 0, &p);
	cr_assert_eq(p.connect.version, MQTT_V311);
	cr_assert(p.connect.clean_start);
	cr_assert_eq(p.connect.keepalive_s, 0);
	cr_assert_eq(p.connect.client_id.len, 0);
	cr_assert_not(p.connect.will);
	cr_assert_not(p.connect.has_username);
	cr_assert_not(p.connect.has_password);
}

/* 3.1: protocol name "MQIsdp", level 3. */
static const uint8_t connect_v31[] = {
    0x10, 0x11, 0x00, 0x06, 'M',  'Q',  'I', 's', 'd', 'p',
    0x03, 0x02, 0x00, 0x3C, 0x00, 0x03, 'c', 'i', 'd',
};

Test(fixtures, connect_v31)
{
	struct mqtt_packet p;
	roundtrip(connect_v31, sizeof(connect_v31), 0, &p);
	cr_assert_eq(p.connect.version, MQTT_V31);
	cr_assert(p.connect.clean_start);
	cr_assert_eq(p.connect.keepalive_s, 60);
	view_is(p.connect.client_id, "cid", "client id");
	cr_assert_not(p.connect.will);
}

/* 5.0: the §3.1.2.12 example header (session expiry 10) grown with every
 * CONNECT property and every will property. */
static const uint8_t connect_v5[] = {
    0x10, 0x7C, 0x00, 0x04, 'M',  'Q',  'T', 'T',
    0x05, 0xEE,                   /* user, password, will retain, will QoS 1, will, clean */
    0x00, 0x0A,                   /* keep alive 10 */
    0x35,                         /* properties: 53 bytes */
    0x11, 0x00, 0x00, 0x00, 0x0A, /* session expiry 10 */
    0x15, 0x00, 0x05, 'S',  'C',  'R',  'A', 'M', /* auth method */
    0x16, 0x00, 0x02, 0xAA, 0xBB,                 /* auth data */
    0x17, 0x00,                                   /* request problem info 0 */
    0x19, 0x01,                                   /* request response info 1 */
    0x21, 0x00, 0x14,                             /* receive maximum 20 */
    0x22, 0x00, 0x0A,                             /* topic alias maximum 10 */
    0x27, 0x00, 0x00, 0x10, 0x00,                 /* maximum packet size 4096 */
    0x26, 0x00, 0x01, 'a',  0x00, 0x01, '1',      /* user a=1 */
    0x26, 0x00, 0x01, 'a',  0x00, 0x01, '2',      /* user a=2 (repeats) */
    0x26, 0x00, 0x01, 'b',  0x00, 0x00,           /* user b="" */
    0x00, 0x03, 'c',  'i',  'd',                  /* client id */
    0x22,                                         /* will properties: 34 bytes */
    0x01, 0x01,                                   /* payload format 1 */
    0x02, 0x00, 0x00, 0x00, 0x3C,                 /* message expiry 60 */
    0x03, 0x00, 0x03, 't',  'x',  't',            /* content type */
    0x08, 0x00, 0x01, 'r',                        /* response topic */
    0x09, 0x00, 0x02, 0xC0, 0xDE,                 /* correlation data */
    0x18, 0x00, 0x00, 0x00, 0x05,                 /* will delay 5 */
    0x26, 0x00, 0x01, 'k',  0x00, 0x01, 'v',      /* user k=v */
    0x00, 0x03, 'w',  '/',  't',                  /* will topic */
    0x00, 0x03, 'b',  'y',  'e',                  /* will payload */
    0x00, 0x04, 'u',  's',  'e',  'r',            /* user name */
    0x00, 0x02, 0x01, 0x02,                       /* password */
};

Test(fixtures, connect_v5)
{
	struct mqtt_packet p;
	roundtrip(connect_v5, sizeof(connect_v5), 0, &p);
	const struct mqtt_connect *c = &p.connect;
	cr_assert_eq(c->version, MQTT_V5);
	cr_assert(c->clean_start);
	cr_assert_eq(c->keepalive_s, 10);
	cr_assert(c->will);
	cr_assert_eq(c->will_qos, 1);
	cr_assert(c->will_retain);
	cr_assert(c->has_username);
	cr_assert(c->has_password);
	view_is(c->client_id, "cid", "client id");
	view_is(c->will_topic, "w/t", "will topic");
	view_is(c->will_payload, "bye", "will payload");
	view_is(c->username, "user", "user name");
	view_bytes(c->password, (const uint8_t[]){1, 2}, 2, "password");

	const struct mqtt_props *pr = &c->props;
	cr_assert_eq(pr->has,
	             BIT(SESSION_EXPIRY) | BIT(AUTH_METHOD) | BIT(AUTH_DATA) |
	                 BIT(REQUEST_PROBLEM_INFO) | BIT(REQUEST_RESPONSE_INFO) |
	                 BIT(RECEIVE_MAXIMUM) | BIT(TOPIC_ALIAS_MAXIMUM) |
	                 BIT(MAXIMUM_PACKET_SIZE) | BIT(USER),
	             "has %llx", (unsigned long long)pr->has);
	cr_assert_eq(pr->session_expiry_s, 10);
	view_is(pr->auth_method, "SCRAM", "auth method");
	view_bytes(pr->auth_data, (const uint8_t[]){0xAA, 0xBB}, 2, "auth data");
	cr_assert_eq(pr->request_problem_info, 0);
	cr_assert_eq(pr->request_response_info, 1);
	cr_assert_eq(pr->receive_max, 20);
	cr_assert_eq(pr->topic_alias_max, 10);
	cr_assert_eq(pr->max_packet_size, 4096);
	cr_assert_eq(pr->sub_id_count, 0);
	static const char *const users[] = {"a", "1", "a", "2", "b", ""};
	users_are(pr, users, 3);

	const struct mqtt_props *w = &c->will_props;
	cr_assert_eq(w->has,
	             BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
	                 BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA) | BIT(WILL_DELAY) | BIT(USER),
	             "will has %llx", (unsigned long long)w->has);
	cr_assert_eq(w->payload_format, 1);
	cr_assert_eq(w->message_expiry_s, 60);
	view_is(w->content_type, "txt", "content type");
	view_is(w->response_topic, "r", "response topic");
	view_bytes(w->correlation_data, (const uint8_t[]){0xC0, 0xDE}, 2, "correlation");
	cr_assert_eq(w->will_delay_s, 5);
	static const char *const wusers[] = {"k", "v"};
	users_are(w, wusers, 1);
}

/* 5.0: a password without a user name is allowed (§3.1.2.9), and an empty
 * client id with clean start 0 too (the server assigns or refuses). */
static const uint8_t connect_v5_password_only[] = {
    0x10, 0x11, 0x00, 0x04, 'M',  'Q',  'T',  'T', 0x05, 0x40,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 'p', 'w',
};

Test(fixtures, connect_v5_password_without_user_name)
{
	struct mqtt_packet p;
	roundtrip(connect_v5_password_only, sizeof(connect_v5_password_only), 0, &p);
	cr_assert_eq(p.connect.version, MQTT_V5);
	cr_assert_not(p.connect.clean_start);
	cr_assert_not(p.connect.has_username);
	cr_assert(p.connect.has_password);
	view_is(p.connect.password, "pw", "password");
	cr_assert_eq(p.connect.client_id.len, 0);
	no_props(&p.connect.props);
}

/* ------------------------------------------------------------- CONNACK */

static const uint8_t connack_v4_present[] = {0x20, 0x02, 0x01, 0x00};
static const uint8_t connack_v4_refused[] = {0x20, 0x02, 0x00, 0x05};

Test(fixtures, connack_v311)
{
	struct mqtt_packet p;
	roundtrip(connack_v4_present, sizeof(connack_v4_present), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_CONNACK);
	cr_assert(p.connack.session_present);
	cr_assert_eq(p.connack.rc, 0);
	roundtrip(connack_v4_refused, sizeof(connack_v4_refused), MQTT_V311, &p);
	cr_assert_not(p.connack.session_present);
	cr_assert_eq(p.connack.rc, MQTT_V3_CONNACK_NOT_AUTHORIZED);
	/* 3.1 has the same CONNACK. */
	roundtrip(connack_v4_refused, sizeof(connack_v4_refused), MQTT_V31, &p);
	cr_assert_eq(p.connack.rc, 5);
}

/* 3.1 has no Session Present: its first byte is reserved, all zero, even
 * when a session was resumed (the flag exists from 3.1.1 on). */
Test(fixtures, connack_v31_no_session_present)
{
	static const uint8_t want[] = {0x20, 0x02, 0x00, 0x00};
	struct mqtt_packet p = {.type = MQTT_CONNACK};
	p.connack.session_present = true;
	uint8_t buf[16];
	size_t n = mqtt_encode(&p, MQTT_V31, buf, sizeof(buf));
	cr_assert_eq(n, sizeof(want));
	cr_assert_arr_eq(buf, want, sizeof(want), "got %s", hex(buf, n));
	n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
	cr_assert_arr_eq(buf, connack_v4_present, sizeof(connack_v4_present), "got %s",
	                 hex(buf, n));
}

static const uint8_t connack_v5[] = {
    0x20, 0x4C, 0x00, 0x00, 0x49,                      /* 73 bytes */
    0x11, 0x00, 0x00, 0x00, 0x78,                      /* session expiry 120 */
    0x12, 0x00, 0x06, 'a',  'u',  't',  'o', '-', '1', /* assigned id */
    0x13, 0x00, 0x3C,                                  /* server keep alive 60 */
    0x15, 0x00, 0x05, 'S',  'C',  'R',  'A', 'M',      /* auth method */
    0x16, 0x00, 0x01, 0xFF,                            /* auth data */
    0x1A, 0x00, 0x02, 'r',  'i',                       /* response info */
    0x1C, 0x00, 0x03, 's',  'r',  'v',                 /* server reference */
    0x1F, 0x00, 0x02, 'o',  'k',                       /* reason string */
    0x21, 0x00, 0x0A,                                  /* receive maximum 10 */
    0x22, 0x00, 0x05,                                  /* topic alias max 5 */
    0x24, 0x01,                                        /* maximum QoS 1 */
    0x25, 0x00,                                        /* retain available 0 */
    0x27, 0x00, 0x01, 0x00, 0x00,                      /* max packet 65536 */
    0x28, 0x01,                                        /* wildcard subs 1 */
    0x29, 0x00,                                        /* sub ids 0 */
    0x2A, 0x01,                                        /* shared subs 1 */
    0x26, 0x00, 0x01, 'x',  0x00, 0x01, 'y',           /* user x=y */
};
static const uint8_t connack_v5_refused[] = {0x20, 0x03, 0x00, 0x87, 0x00};
static const uint8_t connack_v5_present[] = {0x20, 0x03, 0x01, 0x00, 0x00};

Test(fixtures, connack_v5)
{
	struct mqtt_packet p;
	roundtrip(connack_v5, sizeof(connack_v5), MQTT_V5, &p);
	const struct mqtt_props *pr = &p.connack.props;
	cr_assert_not(p.connack.session_present);
	cr_assert_eq(p.connack.rc, 0);
	cr_assert_eq(pr->has,
	             BIT(SESSION_EXPIRY) | BIT(ASSIGNED_CLIENT_ID) | BIT(SERVER_KEEP_ALIVE) |
	                 BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(RESPONSE_INFO) |
	                 BIT(SERVER_REFERENCE) | BIT(REASON_STRING) | BIT(RECEIVE_MAXIMUM) |
	                 BIT(TOPIC_ALIAS_MAXIMUM) | BIT(MAXIMUM_QOS) | BIT(RETAIN_AVAILABLE) |
	                 BIT(MAXIMUM_PACKET_SIZE) | BIT(WILDCARD_SUB_AVAILABLE) |
	                 BIT(SUB_ID_AVAILABLE) | BIT(SHARED_SUB_AVAILABLE) | BIT(USER),
	             "has %llx", (unsigned long long)pr->has);
	cr_assert_eq(pr->session_expiry_s, 120);
	view_is(pr->assigned_client_id, "auto-1", "assigned client id");
	cr_assert_eq(pr->server_keepalive_s, 60);
	view_is(pr->auth_method, "SCRAM", "auth method");
	view_bytes(pr->auth_data, (const uint8_t[]){0xFF}, 1, "auth data");
	view_is(pr->response_info, "ri", "response info");
	view_is(pr->server_reference, "srv", "server reference");
	view_is(pr->reason_string, "ok", "reason string");
	cr_assert_eq(pr->receive_max, 10);
	cr_assert_eq(pr->topic_alias_max, 5);
	cr_assert_eq(pr->max_qos, 1);
	cr_assert_eq(pr->retain_available, 0);
	cr_assert_eq(pr->max_packet_size, 65536);
	cr_assert_eq(pr->wildcard_sub_available, 1);
	cr_assert_eq(pr->sub_id_available, 0);
	cr_assert_eq(pr->shared_sub_available, 1);
	static const char *const users[] = {"x", "y"};
	users_are(pr, users, 1);

	roundtrip(connack_v5_refused, sizeof(connack_v5_refused), MQTT_V5, &p);
	cr_assert_not(p.connack.session_present);
	cr_assert_eq(p.connack.rc, MQTT_RC_NOT_AUTHORIZED);
	no_props(&p.connack.props);
	roundtrip(connack_v5_present, sizeof(connack_v5_present), MQTT_V5, &p);
	cr_assert(p.connack.session_present);
	cr_assert_eq(p.connack.rc, 0);
}

/* ------------------------------------------------------------- PUBLISH */

/* The §3.3.2.3 example (3.1.1): topic "a/b", packet id 10. */
static const uint8_t publish_v4_qos1[] = {0x32, 0x09, 0x00, 0x03, 'a', '/',
                                          'b',  0x00, 0x0A, 'h',  'i'};
static const uint8_t publish_v4_retain_empty[] = {0x31, 0x05, 0x00, 0x03, 'a', '/', 'b'};
static const uint8_t publish_v4_qos2_dup[] = {0x3D, 0x06, 0x00, 0x01, 't', 0x12, 0x34, 0xAB};

Test(fixtures, publish_v311)
{
	struct mqtt_packet p;
	roundtrip(publish_v4_qos1, sizeof(publish_v4_qos1), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_PUBLISH);
	cr_assert_eq(p.publish.qos, 1);
	cr_assert_not(p.publish.dup);
	cr_assert_not(p.publish.retain);
	view_is(p.publish.topic, "a/b", "topic");
	cr_assert_eq(p.publish.packet_id, 10);
	view_is(p.publish.payload, "hi", "payload");
	no_props(&p.publish.props);

	roundtrip(publish_v4_retain_empty, sizeof(publish_v4_retain_empty), MQTT_V311, &p);
	cr_assert_eq(p.publish.qos, 0);
	cr_assert(p.publish.retain);
	cr_assert_eq(p.publish.packet_id, 0);
	cr_assert_eq(p.publish.payload.len, 0);

	roundtrip(publish_v4_qos2_dup, sizeof(publish_v4_qos2_dup), MQTT_V311, &p);
	cr_assert_eq(p.publish.qos, 2);
	cr_assert(p.publish.dup);
	cr_assert(p.publish.retain);
	view_is(p.publish.topic, "t", "topic");
	cr_assert_eq(p.publish.packet_id, 0x1234);
	view_bytes(p.publish.payload, (const uint8_t[]){0xAB}, 1, "payload");

	/* 3.1 PUBLISH has the same layout. */
	roundtrip(publish_v4_qos1, sizeof(publish_v4_qos1), MQTT_V31, &p);
	cr_assert_eq(p.publish.packet_id, 10);
}

static const uint8_t publish_v5[] = {
    0x3B, 0x46,                                        /* DUP, QoS 1, RETAIN; 70 */
    0x00, 0x03, 'a',  '/',  'b',                       /* topic */
    0x00, 0x01,                                        /* packet id 1 */
    0x3C,                                              /* properties: 60 bytes */
    0x01, 0x01,                                        /* payload format 1 */
    0x02, 0x00, 0x00, 0x0E, 0x10,                      /* message expiry 3600 */
    0x03, 0x00, 0x04, 'j',  's',  'o',  'n',           /* content type */
    0x08, 0x00, 0x06, 'r',  'e',  's',  'p', '/', 't', /* response topic */
    0x09, 0x00, 0x03, 0x01, 0x02, 0x03,                /* correlation data */
    0x23, 0x00, 0x07,                                  /* topic alias 7 */
    0x0B, 0x7F,                                        /* subscription id 127 */
    0x0B, 0x80, 0x01,                                  /* 128 */
    0x0B, 0x80, 0x80, 0x01,                            /* 16384 */
    0x0B, 0xFF, 0xFF, 0xFF, 0x7F,                      /* 268435455 */
    0x26, 0x00, 0x01, 'u',  0x00, 0x01, '1',           /* user u=1 */
    0x26, 0x00, 0x01, 'u',  0x00, 0x01, '2',           /* user u=2 */
    '{',  '}',                                         /* payload */
};
static const uint32_t publish_v5_sub_ids[] = {127, 128, 16384, 268435455};
static const char *const publish_v5_users[] = {"u", "1", "u", "2"};

static void check_publish_v5(const struct mqtt_publish *pb)
{
	cr_assert_eq(pb->qos, 1);
	cr_assert(pb->dup);
	cr_assert(pb->retain);
	view_is(pb->topic, "a/b", "topic");
	cr_assert_eq(pb->packet_id, 1);
	view_is(pb->payload, "{}", "payload");
	const struct mqtt_props *pr = &pb->props;
	cr_assert_eq(pr->has,
	             BIT(PAYLOAD_FORMAT) | BIT(MESSAGE_EXPIRY) | BIT(CONTENT_TYPE) |
	                 BIT(RESPONSE_TOPIC) | BIT(CORRELATION_DATA) | BIT(TOPIC_ALIAS) |
	                 BIT(SUBSCRIPTION_ID) | BIT(USER),
	             "has %llx", (unsigned long long)pr->has);
	cr_assert_eq(pr->payload_format, 1);
	cr_assert_eq(pr->message_expiry_s, 3600);
	view_is(pr->content_type, "json", "content type");
	view_is(pr->response_topic, "resp/t", "response topic");
	view_bytes(pr->correlation_data, (const uint8_t[]){1, 2, 3}, 3, "correlation data");
	cr_assert_eq(pr->topic_alias, 7);
	sub_ids_are(pr, publish_v5_sub_ids, N(publish_v5_sub_ids));
	users_are(pr, publish_v5_users, 2);
}

Test(fixtures, publish_v5)
{
	struct mqtt_packet p;
	roundtrip(publish_v5, sizeof(publish_v5), MQTT_V5, &p);
	check_publish_v5(&p.publish);
}

/* A sender builds a PUBLISH from arrays; the bytes must be the same. */
Test(fixtures, publish_v5_encoded_from_arrays)
{
	static const struct mqtt_user_prop users[] = {
	    {{(const uint8_t *)"u", 1}, {(const uint8_t *)"1", 1}},
	    {{(const uint8_t *)"u", 1}, {(const uint8_t *)"2", 1}},
	};
	struct mqtt_packet p;
	memset(&p, 0, sizeof(p));
	p.type = MQTT_PUBLISH;
	p.publish.qos = 1;
	p.publish.dup = true;
	p.publish.retain = true;
	p.publish.topic = mqtt_view_str("a/b");
	p.publish.packet_id = 1;
	p.publish.payload = mqtt_view_str("{}");
	struct mqtt_props *pr = &p.publish.props;
	/* Set in reverse order of the wire on purpose: order is the encoder's. */
	pr->has = BIT(TOPIC_ALIAS) | BIT(CORRELATION_DATA) | BIT(RESPONSE_TOPIC) |
	          BIT(CONTENT_TYPE) | BIT(MESSAGE_EXPIRY) | BIT(PAYLOAD_FORMAT) |
	          BIT(SUBSCRIPTION_ID);
	pr->topic_alias = 7;
	pr->correlation_data = (struct mqtt_view){(const uint8_t *)"\x01\x02\x03", 3};
	pr->response_topic = mqtt_view_str("resp/t");
	pr->content_type = mqtt_view_str("json");
	pr->message_expiry_s = 3600;
	pr->payload_format = 1;
	pr->sub_ids = publish_v5_sub_ids;
	pr->sub_id_count = N(publish_v5_sub_ids);
	pr->user = users;
	pr->user_count = N(users);
	encodes_to(&p, MQTT_V5, publish_v5, sizeof(publish_v5));
}

/* 5.0: an empty topic name with a Topic Alias (§3.3.2.3.4). */
static const uint8_t publish_v5_alias[] = {0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01, 'x'};
/* 5.0: no properties: a property length of 0 is still present. */
static const uint8_t publish_v5_plain[] = {0x30, 0x06, 0x00, 0x01, 't', 0x00, 'p', 'l'};

Test(fixtures, publish_v5_alias_and_plain)
{
	struct mqtt_packet p;
	roundtrip(publish_v5_alias, sizeof(publish_v5_alias), MQTT_V5, &p);
	cr_assert_eq(p.publish.topic.len, 0);
	cr_assert_eq(p.publish.props.has, BIT(TOPIC_ALIAS));
	cr_assert_eq(p.publish.props.topic_alias, 1);
	view_is(p.publish.payload, "x", "payload");
	cr_assert_eq(p.publish.qos, 0);
	cr_assert_eq(p.publish.packet_id, 0);

	roundtrip(publish_v5_plain, sizeof(publish_v5_plain), MQTT_V5, &p);
	view_is(p.publish.topic, "t", "topic");
	view_is(p.publish.payload, "pl", "payload");
	no_props(&p.publish.props);
}

/* --------------------------------------------- PUBACK PUBREC PUBREL PUBCOMP */

static const uint8_t puback_v4[] = {0x40, 0x02, 0x00, 0x0A};
static const uint8_t pubrec_v4[] = {0x50, 0x02, 0x00, 0x0B};
static const uint8_t pubrel_v4[] = {0x62, 0x02, 0x00, 0x0C};
static const uint8_t pubcomp_v4[] = {0x70, 0x02, 0x00, 0x0D};

static void ack_is(const struct mqtt_packet *p, uint8_t type, uint16_t pid, uint8_t rc)
{
	cr_assert_eq(p->type, type, "type %u want %u", p->type, type);
	cr_assert_eq(p->ack.packet_id, pid, "packet id %u want %u", p->ack.packet_id, pid);
	cr_assert_eq(p->ack.rc, rc, "rc %02X want %02X", p->ack.rc, rc);
}

Test(fixtures, acks_v311)
{
	struct mqtt_packet p;
	roundtrip(puback_v4, sizeof(puback_v4), MQTT_V311, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0);
	no_props(&p.ack.props);
	roundtrip(pubrec_v4, sizeof(pubrec_v4), MQTT_V311, &p);
	ack_is(&p, MQTT_PUBREC, 11, 0);
	roundtrip(pubrel_v4, sizeof(pubrel_v4), MQTT_V311, &p);
	ack_is(&p, MQTT_PUBREL, 12, 0);
	roundtrip(pubcomp_v4, sizeof(pubcomp_v4), MQTT_V311, &p);
	ack_is(&p, MQTT_PUBCOMP, 13, 0);
}

static const uint8_t puback_v5_short[] = {0x40, 0x02, 0x00, 0x0A};
static const uint8_t puback_v5_rc[] = {0x40, 0x03, 0x00, 0x0A, 0x10};
static const uint8_t puback_v5_reason[] = {0x40, 0x09, 0x00, 0x0A, 0x10, 0x05,
                                           0x1F, 0x00, 0x02, 'n',  'o'};
static const uint8_t puback_v5_rc0_user[] = {0x40, 0x0B, 0x00, 0x0A, 0x00, 0x07, 0x26,
                                             0x00, 0x01, 'k',  0x00, 0x01, 'v'};
static const uint8_t pubrec_v5[] = {0x50, 0x03, 0x00, 0x0B, 0x91};
static const uint8_t pubrel_v5[] = {0x62, 0x03, 0x00, 0x0C, 0x92};
static const uint8_t pubcomp_v5[] = {0x70, 0x02, 0x00, 0x0D};

Test(fixtures, acks_v5)
{
	struct mqtt_packet p;
	roundtrip(puback_v5_short, sizeof(puback_v5_short), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0);
	no_props(&p.ack.props);
	roundtrip(puback_v5_rc, sizeof(puback_v5_rc), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, MQTT_RC_NO_MATCHING_SUBSCRIBERS);
	no_props(&p.ack.props);
	roundtrip(puback_v5_reason, sizeof(puback_v5_reason), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0x10);
	cr_assert_eq(p.ack.props.has, BIT(REASON_STRING));
	view_is(p.ack.props.reason_string, "no", "reason string");
	roundtrip(puback_v5_rc0_user, sizeof(puback_v5_rc0_user), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0);
	static const char *const users[] = {"k", "v"};
	users_are(&p.ack.props, users, 1);
	roundtrip(pubrec_v5, sizeof(pubrec_v5), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBREC, 11, MQTT_RC_PACKET_ID_IN_USE);
	roundtrip(pubrel_v5, sizeof(pubrel_v5), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBREL, 12, MQTT_RC_PACKET_ID_NOT_FOUND);
	roundtrip(pubcomp_v5, sizeof(pubcomp_v5), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBCOMP, 13, 0);
}

/* 5.0 §3.4.2.1: reason 0 with an explicit empty property block, or with the
 * reason code alone, means the same; the encoder writes the short form. */
Test(fixtures, acks_v5_long_forms_reencode_short)
{
	static const uint8_t rc_and_len[] = {0x40, 0x04, 0x00, 0x0A, 0x00, 0x00};
	static const uint8_t rc_only[] = {0x40, 0x03, 0x00, 0x0A, 0x00};
	static const uint8_t rel_rc_and_len[] = {0x62, 0x04, 0x00, 0x0C, 0x00, 0x00};
	struct mqtt_packet p;
	decode_ok(rc_and_len, sizeof(rc_and_len), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0);
	encodes_to(&p, MQTT_V5, puback_v5_short, sizeof(puback_v5_short));
	decode_ok(rc_only, sizeof(rc_only), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBACK, 10, 0);
	encodes_to(&p, MQTT_V5, puback_v5_short, sizeof(puback_v5_short));
	decode_ok(rel_rc_and_len, sizeof(rel_rc_and_len), MQTT_V5, &p);
	ack_is(&p, MQTT_PUBREL, 12, 0);
	static const uint8_t rel_short[] = {0x62, 0x02, 0x00, 0x0C};
	encodes_to(&p, MQTT_V5, rel_short, sizeof(rel_short));
	/* A 5.0 ack struct encoded for a 3.1.1 peer drops code and properties. */
	decode_ok(puback_v5_reason, sizeof(puback_v5_reason), MQTT_V5, &p);
	encodes_to(&p, MQTT_V311, puback_v4, sizeof(puback_v4));
}

/* ----------------------------------------------------------- SUBSCRIBE */

/* The §3.8.3 payload example (3.1.1): "a/b" QoS 1, "c/d" QoS 2. */
static const uint8_t subscribe_v4[] = {
    0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, 'a', '/', 'b', 0x01, 0x00, 0x03, 'c', '/', 'd', 0x02,
};

struct want_entry {
	const char *filter;
	uint8_t qos;
	bool no_local;
	bool rap;
	uint8_t rh;
	uint8_t rc;
};

static void entries_are(const struct mqtt_subscribe *s, uint8_t version,
                        const struct want_entry *want, size_t n)
{
	struct mqtt_entry_iter it;
	struct mqtt_sub_entry e;
	cr_assert_eq(s->count, n, "count %u want %zu", s->count, n);
	mqtt_sub_iter_init(&it, s, version);
	for (size_t i = 0; i < n; i++) {
		cr_assert(mqtt_sub_iter_next(&it, &e), "entry %zu missing", i);
		view_is(e.filter, want[i].filter, "filter");
		cr_assert_eq(e.qos, want[i].qos, "entry %zu qos %u", i, e.qos);
		cr_assert_eq(e.no_local, want[i].no_local, "entry %zu no local", i);
		cr_assert_eq(e.retain_as_published, want[i].rap, "entry %zu rap", i);
		cr_assert_eq(e.retain_handling, want[i].rh, "entry %zu rh %u", i,
		             e.retain_handling);
		cr_assert_eq(e.rc, want[i].rc, "entry %zu rc %02X", i, e.rc);
	}
	cr_assert_not(mqtt_sub_iter_next(&it, &e), "more than %zu entries", n);
}

Test(fixtures, subscribe_v311)
{
	struct mqtt_packet p;
	roundtrip(subscribe_v4, sizeof(subscribe_v4), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_SUBSCRIBE);
	cr_assert_eq(p.subscribe.packet_id, 10);
	no_props(&p.subscribe.props);
	static const struct want_entry want[] = {
	    {"a/b", 1, false, false, 0, 0},
	    {"c/d", 2, false, false, 0, 0},
	};
	entries_are(&p.subscribe, MQTT_V311, want, N(want));

	/* Built from an entries array, the same bytes. */
	struct mqtt_sub_entry es[2];
	memset(es, 0, sizeof(es));
	es[0].filter = mqtt_view_str("a/b");
	es[0].qos = 1;
	es[1].filter = mqtt_view_str("c/d");
	es[1].qos = 2;
	struct mqtt_packet b;
	memset(&b, 0, sizeof(b));
	b.type = MQTT_SUBSCRIBE;
	b.subscribe.packet_id = 10;
	b.subscribe.count = 2;
	b.subscribe.entries = es;
	encodes_to(&b, MQTT_V311, subscribe_v4, sizeof(subscribe_v4));
}

static const uint8_t subscribe_v5[] = {
    0x82, 0x2B, 0x00, 0x0B, 0x0A,            /* properties: 10 bytes */
    0x0B, 0x80, 0x01,                        /* subscription id 128 */
    0x26, 0x00, 0x01, 's',  0x00, 0x01, 't', /* user s=t */
    0x00, 0x03, 'a',  '/',  '+',  0x2D,      /* QoS1 NL RAP RH2 */
    0x00, 0x0C, '$',  's',  'h',  'a',  'r',  'e', '/',  'g',
    '/',  'x',  '/',  '#',  0x00, 0x00, 0x01, '#', 0x12, /* QoS2 RH1 */
    0x00, 0x02, 'a',  '#',  0x01,                        /* bad filter: its own 0x8F */
};

Test(fixtures, subscribe_v5)
{
	struct mqtt_packet p;
	roundtrip(subscribe_v5, sizeof(subscribe_v5), MQTT_V5, &p);
	cr_assert_eq(p.subscribe.packet_id, 11);
	cr_assert_eq(p.subscribe.props.has, BIT(SUBSCRIPTION_ID) | BIT(USER));
	static const uint32_t ids[] = {128};
	sub_ids_are(&p.subscribe.props, ids, 1);
	static const char *const users[] = {"s", "t"};
	users_are(&p.subscribe.props, users, 1);
	static const struct want_entry want[] = {
	    {"a/+", 1, true, true, 2, 0},
	    {"$share/g/x/#", 0, false, false, 0, 0},
	    {"#", 2, false, false, 1, 0},
	    {"a#", 1, false, false, 0, MQTT_RC_TOPIC_FILTER_INVALID},
	};
	entries_are(&p.subscribe, MQTT_V5, want, N(want));

	/* From an entries array and a sub_ids array. */
	struct mqtt_sub_entry es[4];
	memset(es, 0, sizeof(es));
	for (size_t i = 0; i < 4; i++) {
		es[i].filter = mqtt_view_str(want[i].filter);
		es[i].qos = want[i].qos;
		es[i].no_local = want[i].no_local;
		es[i].retain_as_published = want[i].rap;
		es[i].retain_handling = want[i].rh;
	}
	static const struct mqtt_user_prop u[] = {
	    {{(const uint8_t *)"s", 1}, {(const uint8_t *)"t", 1}},
	};
	struct mqtt_packet b;
	memset(&b, 0, sizeof(b));
	b.type = MQTT_SUBSCRIBE;
	b.subscribe.packet_id = 11;
	b.subscribe.count = 4;
	b.subscribe.entries = es;
	b.subscribe.props.has = BIT(SUBSCRIPTION_ID);
	b.subscribe.props.sub_ids = ids;
	b.subscribe.props.sub_id_count = 1;
	b.subscribe.props.user = u;
	b.subscribe.props.user_count = 1;
	encodes_to(&b, MQTT_V5, subscribe_v5, sizeof(subscribe_v5));
}

/* -------------------------------------------------------------- SUBACK */

/* The §3.9.3 example (3.1.1): granted 0, granted 2, failure. */
static const uint8_t suback_v4[] = {0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80};
static const uint8_t suback_v5[] = {0x90, 0x0D, 0x00, 0x0B, 0x06, 0x1F, 0x00, 0x03,
                                    'b',  'a',  'd',  0x01, 0x02, 0x8F, 0xA2};

Test(fixtures, suback)
{
	struct mqtt_packet p;
	roundtrip(suback_v4, sizeof(suback_v4), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_SUBACK);
	cr_assert_eq(p.suback.packet_id, 10);
	view_bytes(p.suback.rcs, (const uint8_t[]){0x00, 0x02, 0x80}, 3, "codes");
	no_props(&p.suback.props);

	roundtrip(suback_v5, sizeof(suback_v5), MQTT_V5, &p);
	cr_assert_eq(p.suback.packet_id, 11);
	cr_assert_eq(p.suback.props.has, BIT(REASON_STRING));
	view_is(p.suback.props.reason_string, "bad", "reason string");
	view_bytes(p.suback.rcs, (const uint8_t[]){0x01, 0x02, 0x8F, 0xA2}, 4, "codes");
}

/* --------------------------------------------------------- UNSUBSCRIBE */

static const uint8_t unsubscribe_v4[] = {0xA2, 0x0C, 0x00, 0x0D, 0x00, 0x03, 'a',
                                         '/',  'b',  0x00, 0x03, 'c',  '/',  'd'};
static const uint8_t unsubscribe_v5[] = {
    0xA2, 0x1D, 0x00, 0x0E, 0x07, 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', 0x00, 0x03, 'a', '/',
    'b',  0x00, 0x0C, '$',  's',  'h',  'a',  'r',  'e', '/',  'g',  '/', 'x',  '/',  '#',
};

static void filters_are(const struct mqtt_unsubscribe *u, const char *const *want, size_t n)
{
	struct mqtt_entry_iter it;
	struct mqtt_view f;
	cr_assert_eq(u->count, n, "count %u want %zu", u->count, n);
	mqtt_unsub_iter_init(&it, u);
	for (size_t i = 0; i < n; i++) {
		cr_assert(mqtt_unsub_iter_next(&it, &f), "filter %zu missing", i);
		view_is(f, want[i], "filter");
	}
	cr_assert_not(mqtt_unsub_iter_next(&it, &f));
}

Test(fixtures, unsubscribe)
{
	struct mqtt_packet p;
	roundtrip(unsubscribe_v4, sizeof(unsubscribe_v4), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_UNSUBSCRIBE);
	cr_assert_eq(p.unsubscribe.packet_id, 13);
	no_props(&p.unsubscribe.props);
	static const char *const f4[] = {"a/b", "c/d"};
	filters_are(&p.unsubscribe, f4, 2);

	roundtrip(unsubscribe_v5, sizeof(unsubscribe_v5), MQTT_V5, &p);
	cr_assert_eq(p.unsubscribe.packet_id, 14);
	static const char *const users[] = {"k", "v"};
	users_are(&p.unsubscribe.props, users, 1);
	static const char *const f5[] = {"a/b", "$share/g/x/#"};
	filters_are(&p.unsubscribe, f5, 2);

	/* From a filters array. */
	const struct mqtt_view fs[] = {mqtt_view_str("a/b"), mqtt_view_str("c/d")};
	struct mqtt_packet b;
	memset(&b, 0, sizeof(b));
	b.type = MQTT_UNSUBSCRIBE;
	b.unsubscribe.packet_id = 13;
	b.unsubscribe.count = 2;
	b.unsubscribe.filters = fs;
	encodes_to(&b, MQTT_V311, unsubscribe_v4, sizeof(unsubscribe_v4));
}

/* ------------------------------------------------------------ UNSUBACK */

static const uint8_t unsuback_v4[] = {0xB0, 0x02, 0x00, 0x0D};
static const uint8_t unsuback_v5[] = {0xB0, 0x05, 0x00, 0x0E, 0x00, 0x00, 0x11};

Test(fixtures, unsuback)
{
	struct mqtt_packet p;
	roundtrip(unsuback_v4, sizeof(unsuback_v4), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_UNSUBACK);
	cr_assert_eq(p.suback.packet_id, 13);
	cr_assert_eq(p.suback.rcs.len, 0);
	roundtrip(unsuback_v5, sizeof(unsuback_v5), MQTT_V5, &p);
	cr_assert_eq(p.suback.packet_id, 14);
	no_props(&p.suback.props);
	view_bytes(p.suback.rcs, (const uint8_t[]){0x00, 0x11}, 2, "codes");
}

/* ----------------------------------------------------- PINGREQ PINGRESP */

static const uint8_t pingreq[] = {0xC0, 0x00};
static const uint8_t pingresp[] = {0xD0, 0x00};

Test(fixtures, ping)
{
	static const uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	for (size_t i = 0; i < N(versions); i++) {
		struct mqtt_packet p;
		roundtrip(pingreq, sizeof(pingreq), versions[i], &p);
		cr_assert_eq(p.type, MQTT_PINGREQ);
		roundtrip(pingresp, sizeof(pingresp), versions[i], &p);
		cr_assert_eq(p.type, MQTT_PINGRESP);
	}
}

/* ---------------------------------------------------------- DISCONNECT */

static const uint8_t disconnect_v4[] = {0xE0, 0x00};
static const uint8_t disconnect_v5_will[] = {0xE0, 0x01, 0x04};
static const uint8_t disconnect_v5_props[] = {
    0xE0, 0x11, 0x9C, 0x0F, 0x11, 0x00, 0x00, 0x00, 0x3C, /* session expiry 60 */
    0x1C, 0x00, 0x03, 's',  'r',  'v',                    /* server reference */
    0x1F, 0x00, 0x01, 'x',                                /* reason string */
};

Test(fixtures, disconnect)
{
	struct mqtt_packet p;
	roundtrip(disconnect_v4, sizeof(disconnect_v4), MQTT_V311, &p);
	cr_assert_eq(p.type, MQTT_DISCONNECT);
	roundtrip(disconnect_v4, sizeof(disconnect_v4), MQTT_V5, &p);
	cr_assert_eq(p.reason.rc, 0);
	no_props(&p.reason.props);
	roundtrip(disconnect_v5_will, sizeof(disconnect_v5_will), MQTT_V5, &p);
	cr_assert_eq(p.reason.rc, MQTT_RC_DISCONNECT_WITH_WILL);
	no_props(&p.reason.props);
	roundtrip(disconnect_v5_props, sizeof(disconnect_v5_props), MQTT_V5, &p);
	cr_assert_eq(p.reason.rc, MQTT_RC_USE_ANOTHER_SERVER);
	cr_assert_eq(p.reason.props.has,
	             BIT(SESSION_EXPIRY) | BIT(SERVER_REFERENCE) | BIT(REASON_STRING));
	cr_assert_eq(p.reason.props.session_expiry_s, 60);
	view_is(p.reason.props.server_reference, "srv", "server reference");
	view_is(p.reason.props.reason_string, "x", "reason string");
	/* A 5.0 DISCONNECT with a reason code goes to a 3.1.1 peer bare. */
	encodes_to(&p, MQTT_V311, disconnect_v4, sizeof(disconnect_v4));
}

/* ---------------------------------------------------------------- AUTH */

static const uint8_t auth_v5_short[] = {0xF0, 0x00};
static const uint8_t auth_v5[] = {
    0xF0, 0x14, 0x18, 0x12, 0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', /* auth method */
    0x16, 0x00, 0x03, 0x01, 0x02, 0x03,                                /* auth data */
    0x1F, 0x00, 0x01, 'c',                                             /* reason string */
};

Test(fixtures, auth_v5)
{
	struct mqtt_packet p;
	roundtrip(auth_v5_short, sizeof(auth_v5_short), MQTT_V5, &p);
	cr_assert_eq(p.type, MQTT_AUTH);
	cr_assert_eq(p.reason.rc, 0);
	no_props(&p.reason.props);
	roundtrip(auth_v5, sizeof(auth_v5), MQTT_V5, &p);
	cr_assert_eq(p.reason.rc, MQTT_RC_CONTINUE_AUTHENTICATION);
	cr_assert_eq(p.reason.props.has, BIT(AUTH_METHOD) | BIT(AUTH_DATA) | BIT(REASON_STRING));
	view_is(p.reason.props.auth_method, "SCRAM", "auth method");
	view_bytes(p.reason.props.auth_data, (const uint8_t[]){1, 2, 3}, 3, "auth data");
	view_is(p.reason.props.reason_string, "c", "reason string");
}

/* ------------------------------------------------------ stream framing */

/* Several packets back to back: each decode consumes exactly one. */
Test(fixtures, back_to_back_packets)
{
	uint8_t stream[64];
	size_t n = 0;
	memcpy(stream + n, publish_v4_qos1, sizeof(publish_v4_qos1));
	n += sizeof(publish_v4_qos1);
	memcpy(stream + n, pingreq, sizeof(pingreq));
	n += sizeof(pingreq);
	memcpy(stream + n, puback_v4, sizeof(puback_v4));
	n += sizeof(puback_v4);
	static const uint8_t types[] = {MQTT_PUBLISH, MQTT_PINGREQ, MQTT_PUBACK};
	size_t off = 0;
	for (size_t i = 0; i < N(types); i++) {
		struct mqtt_packet p;
		size_t used = 0;
		cr_assert_eq(mqtt_decode_buf(stream + off, n - off, MQTT_V311, &p, &used),
		             MQTT_RC_SUCCESS, "packet %zu", i);
		cr_assert_eq(p.type, types[i]);
		off += used;
	}
	cr_assert_eq(off, n);
}
