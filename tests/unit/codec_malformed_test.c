/*
 * codec_malformed_test.c — bad inputs and the precise outcome for each,
 * from the MQTT 3.1.1 and 5.0 specifications.
 *
 * Frame-level rows must be refused by mqtt_frame_peek() with the reason in
 * frame.rc (0x81, or 0x95 over a maximum packet size). Decode-level rows
 * must frame cleanly as exactly one packet (so a row with a miscounted
 * Remaining Length fails here, not silently) and be refused by the decoder
 * with exactly the listed reason code.
 *
 * Where the spec names the code the row follows it. Where it only says
 * "MUST" (mostly 3.1.1), the codec's documented rule applies (packet.h):
 * what the grammar cannot parse is 0x81, what parses but is forbidden is
 * 0x82; rows relying on that choice say "(codec choice)".
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

enum where { FRAME, DECODE };

struct bad {
	const char *name;
	const uint8_t *b;
	size_t n;
	uint8_t version; /* connection level; 0 before CONNECT */
	uint8_t where;   /* enum where */
	uint8_t rc;      /* enum mqtt_rc expected */
	uint32_t max;    /* max_packet_size for the frame peek; 0: none */
};

#define PK(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
/* A decode-level row and a frame-level row. */
#define D(name, ver, rc, ...)                                                                      \
	{                                                                                          \
		name, PK(__VA_ARGS__), ver, DECODE, rc, 0                                          \
	}
#define F(name, ver, rc, ...)                                                                      \
	{                                                                                          \
		name, PK(__VA_ARGS__), ver, FRAME, rc, 0                                           \
	}

#define MAL   MQTT_RC_MALFORMED_PACKET
#define PROTO MQTT_RC_PROTOCOL_ERROR
#define V31   MQTT_V31
#define V4    MQTT_V311
#define V5    MQTT_V5

/* "MQTT" with its length, and "MQIsdp". */
#define MQTT_NAME   0x00, 0x04, 'M', 'Q', 'T', 'T'
#define MQISDP_NAME 0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p'

static size_t failures;

static void check_rows(const struct bad *rows, size_t n)
{
	failures = 0;
	for (size_t i = 0; i < n; i++) {
		const struct bad *r = &rows[i];
		struct mqtt_frame f;
		struct mqtt_packet p;
		memset(&f, 0, sizeof(f));
		enum mqtt_frame_status st = mqtt_frame_peek(r->b, r->n, r->version, r->max, &f);
		if (r->where == FRAME) {
			cr_expect_eq(st, MQTT_FRAME_INVALID, "[%s] frame status %d, want INVALID",
			             r->name, st);
			cr_expect_eq(f.rc, r->rc, "[%s] frame rc 0x%02X, want 0x%02X", r->name,
			             f.rc, r->rc);
			if (r->max == 0) {
				enum mqtt_rc rc = mqtt_decode_buf(r->b, r->n, r->version, &p, NULL);
				cr_expect_eq(rc, r->rc, "[%s] decode_buf 0x%02X, want 0x%02X",
				             r->name, rc, r->rc);
			}
			continue;
		}
		/* The row itself must be one well-framed packet. */
		cr_expect_eq(st, MQTT_FRAME_OK, "[%s] test row does not frame (status %d)", r->name,
		             st);
		if (st != MQTT_FRAME_OK)
			continue;
		cr_expect_eq(mqtt_frame_size(&f), r->n, "[%s] test row: frame %zu of %zu bytes",
		             r->name, mqtt_frame_size(&f), r->n);
		enum mqtt_rc rc = mqtt_decode(&f, r->b + f.header_len, r->version, &p);
		cr_expect_eq(rc, r->rc, "[%s] decode 0x%02X (%s), want 0x%02X (%s)", r->name, rc,
		             mqtt_rc_name(rc), r->rc, mqtt_rc_name((enum mqtt_rc)r->rc));
		size_t used = 0;
		rc = mqtt_decode_buf(r->b, r->n, r->version, &p, &used);
		cr_expect_eq(rc, r->rc, "[%s] decode_buf 0x%02X, want 0x%02X", r->name, rc, r->rc);
	}
}

/* ------------------------------------------------------- fixed header */

static const struct bad frame_rows[] = {
    /* [MQTT-1.5.5-1] / §2.2.3: at most four bytes, minimal. */
    F("remaining length of 5 bytes", V4, MAL, 0x30, 0x80, 0x80, 0x80, 0x80, 0x01),
    F("remaining length FF FF FF FF 7F", V5, MAL, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F),
    F("remaining length 0 in two bytes", V4, MAL, 0xC0, 0x80, 0x00),
    F("remaining length 2 in three bytes", V5, MAL, 0x30, 0x82, 0x80, 0x00),
    F("remaining length 2097151 in four bytes", V4, MAL, 0x30, 0xFF, 0xFF, 0xFF, 0x00),
    /* §2.1.2: type 0 is reserved (forbidden). */
    F("packet type 0 (3.1.1)", V4, MAL, 0x00, 0x00),
    F("packet type 0 (5.0)", V5, MAL, 0x00, 0x00),
    F("packet type 0 before CONNECT", 0, MAL, 0x00, 0x00),
    /* 3.1.1 §2.2.1: 15 is reserved; AUTH exists only in 5.0. */
    F("AUTH in 3.1.1", V4, MAL, 0xF0, 0x00),
    F("AUTH in 3.1", V31, MAL, 0xF0, 0x00),
    /* [MQTT-3.3.1-4]: both QoS bits set is a malformed packet. */
    F("PUBLISH QoS 3", V4, MAL, 0x36, 0x03, 0x00, 0x01, 't'),
    F("PUBLISH QoS 3 retain (5.0)", V5, MAL, 0x37, 0x04, 0x00, 0x01, 't', 0x00),
    F("PUBLISH QoS 3 dup", V4, MAL, 0x3E, 0x05, 0x00, 0x01, 't', 0x00, 0x01),
    /* [MQTT-2.1.3-1] (5.0 [MQTT-2.1.3-1], table 2-2): reserved flags. */
    F("CONNECT flags 1", 0, MAL, 0x11, 0x0D, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    F("CONNECT flags 8", 0, MAL, 0x18, 0x0D, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    F("CONNACK flags 8", V4, MAL, 0x28, 0x02, 0x00, 0x00),
    F("PUBACK flags 1", V4, MAL, 0x41, 0x02, 0x00, 0x01),
    F("PUBREC flags 2", V5, MAL, 0x52, 0x02, 0x00, 0x01),
    F("PUBREL flags 0", V4, MAL, 0x60, 0x02, 0x00, 0x01),
    F("PUBREL flags 3", V5, MAL, 0x63, 0x02, 0x00, 0x01),
    F("PUBCOMP flags 2", V4, MAL, 0x72, 0x02, 0x00, 0x01),
    F("SUBSCRIBE flags 0", V4, MAL, 0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00),
    F("SUBSCRIBE flags 3", V5, MAL, 0x83, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x00),
    F("SUBACK flags 2", V4, MAL, 0x92, 0x03, 0x00, 0x01, 0x00),
    F("UNSUBSCRIBE flags 0", V4, MAL, 0xA0, 0x05, 0x00, 0x01, 0x00, 0x01, 't'),
    F("UNSUBSCRIBE flags 6", V5, MAL, 0xA6, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 't'),
    F("UNSUBACK flags 1", V4, MAL, 0xB1, 0x02, 0x00, 0x01),
    F("PINGREQ flags 4", V4, MAL, 0xC4, 0x00),
    F("PINGRESP flags 8", V5, MAL, 0xD8, 0x00),
    F("DISCONNECT flags 1", V4, MAL, 0xE1, 0x00),
    F("DISCONNECT flags 2 (5.0)", V5, MAL, 0xE2, 0x00),
    F("AUTH flags 1", V5, MAL, 0xF1, 0x00),
};

Test(malformed, fixed_header)
{
	check_rows(frame_rows, N(frame_rows));
}

/* Maximum Packet Size: over the limit is 0x95 as soon as the header is in. */
Test(malformed, packet_too_large)
{
	static const uint8_t pub[] = {0x30, 0x09, 0x00, 0x01, 't', 1, 2, 3, 4, 5, 6}; /* 11 */
	struct mqtt_frame f;
	cr_assert_eq(mqtt_frame_peek(pub, sizeof(pub), V4, 10, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(f.rc, MQTT_RC_PACKET_TOO_LARGE);
	/* Only the two header bytes buffered: refused already. */
	cr_assert_eq(mqtt_frame_peek(pub, 2, V5, 10, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(f.rc, MQTT_RC_PACKET_TOO_LARGE);
	/* Exactly at the limit is fine. */
	cr_assert_eq(mqtt_frame_peek(pub, sizeof(pub), V4, 11, &f), MQTT_FRAME_OK);
	cr_assert_eq(mqtt_frame_size(&f), 11);
	/* The limit counts the whole packet, header included: 11 > 10. */
	cr_assert_eq(mqtt_frame_peek(pub, 2, V4, 11, &f), MQTT_FRAME_NEED_MORE);
	/* A 2 MB header on its own, limit 1 MB. */
	static const uint8_t big[] = {0x30, 0x80, 0x80, 0x80, 0x01};
	cr_assert_eq(mqtt_frame_peek(big, sizeof(big), V5, 1u << 20, &f), MQTT_FRAME_INVALID);
	cr_assert_eq(f.rc, MQTT_RC_PACKET_TOO_LARGE);
	cr_assert_eq(mqtt_frame_peek(big, sizeof(big), V5, 0, &f), MQTT_FRAME_NEED_MORE);
}

/* ------------------------------------------------------------- CONNECT */

static const struct bad connect_rows[] = {
    /* [MQTT-3.1.2-3]: reserved flag not 0 is a malformed packet. */
    D("reserved connect flag", 0, MAL, 0x10, 0x0D, MQTT_NAME, 0x04, 0x03, 0x00, 0x3C, 0x00, 0x01,
      'c'),
    D("reserved connect flag (5.0)", 0, MAL, 0x10, 0x0E, MQTT_NAME, 0x05, 0x03, 0x00, 0x3C, 0x00,
      0x00, 0x01, 'c'),
    /* [MQTT-3.1.2-12] (5.0): will QoS 3 is a malformed packet. */
    D("will QoS 3", 0, MAL, 0x10, 0x12, MQTT_NAME, 0x04, 0x1E, 0x00, 0x3C, 0x00, 0x01, 'c', 0x00,
      0x01, 't', 0x00, 0x00),
    /* [MQTT-3.1.2-11], [MQTT-3.1.2-13] (codec choice). */
    D("will QoS 1 without will flag", 0, PROTO, 0x10, 0x0D, MQTT_NAME, 0x04, 0x0A, 0x00, 0x3C, 0x00,
      0x01, 'c'),
    D("will retain without will flag", 0, PROTO, 0x10, 0x0D, MQTT_NAME, 0x04, 0x22, 0x00, 0x3C,
      0x00, 0x01, 'c'),
    D("will retain without will flag (5.0)", 0, PROTO, 0x10, 0x0E, MQTT_NAME, 0x05, 0x22, 0x00,
      0x3C, 0x00, 0x00, 0x01, 'c'),
    /* 3.1.1 [MQTT-3.1.2-22] (codec choice). */
    D("password without user name (3.1.1)", 0, PROTO, 0x10, 0x10, MQTT_NAME, 0x04, 0x42, 0x00, 0x3C,
      0x00, 0x01, 'c', 0x00, 0x01, 'p'),
    /* [MQTT-3.1.2-1]: not MQTT; no reason code named (codec choice). */
    D("protocol name MQTX", 0, PROTO, 0x10, 0x0D, 0x00, 0x04, 'M', 'Q', 'T', 'X', 0x04, 0x02, 0x00,
      0x3C, 0x00, 0x01, 'c'),
    D("protocol name mqtt (case)", 0, PROTO, 0x10, 0x0D, 0x00, 0x04, 'm', 'q', 't', 't', 0x04, 0x02,
      0x00, 0x3C, 0x00, 0x01, 'c'),
    /* [MQTT-3.1.2-2]: unsupported level -> CONNACK 0x84 / 0x01. */
    D("protocol level 6", 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0D, MQTT_NAME, 0x06,
      0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("protocol level 0", 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0D, MQTT_NAME, 0x00,
      0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("MQTT with level 3", 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0D, MQTT_NAME, 0x03,
      0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("MQIsdp with level 4", 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0F, MQISDP_NAME, 0x04,
      0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("MQIsdp with level 5", 0, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, 0x10, 0x0F, MQISDP_NAME, 0x05,
      0x02, 0x00, 0x3C, 0x00, 0x01, 'c'),
    /* [MQTT-3.1.3-8]: empty id with clean session 0 -> 0x02 (0x85). */
    D("empty client id, clean session 0 (3.1.1)", 0, MQTT_RC_CLIENT_ID_NOT_VALID, 0x10, 0x0C,
      MQTT_NAME, 0x04, 0x00, 0x00, 0x3C, 0x00, 0x00),
    /* 3.1 §3.1: the client id is 1 to 23 characters. */
    D("empty client id (3.1)", 0, MQTT_RC_CLIENT_ID_NOT_VALID, 0x10, 0x0E, MQISDP_NAME, 0x03, 0x02,
      0x00, 0x3C, 0x00, 0x00),
    /* Truncation at each field (§4.13: cannot be parsed). */
    D("truncated in protocol name", 0, MAL, 0x10, 0x04, 0x00, 0x04, 'M', 'Q'),
    D("truncated before level", 0, MAL, 0x10, 0x06, MQTT_NAME),
    D("truncated in keep alive", 0, MAL, 0x10, 0x09, MQTT_NAME, 0x04, 0x02, 0x00),
    D("no client id", 0, MAL, 0x10, 0x0A, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C),
    D("client id cut short", 0, MAL, 0x10, 0x0D, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x03,
      'c'),
    D("will topic missing", 0, MAL, 0x10, 0x0D, MQTT_NAME, 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("will payload cut short", 0, MAL, 0x10, 0x12, MQTT_NAME, 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01,
      'c', 0x00, 0x01, 't', 0x00, 0x05),
    D("user name missing", 0, MAL, 0x10, 0x0D, MQTT_NAME, 0x04, 0x82, 0x00, 0x3C, 0x00, 0x01, 'c'),
    D("password missing", 0, MAL, 0x10, 0x10, MQTT_NAME, 0x04, 0xC2, 0x00, 0x3C, 0x00, 0x01, 'c',
      0x00, 0x01, 'u'),
    D("trailing byte", 0, MAL, 0x10, 0x0E, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 'c',
      0xFF),
    D("5.0 without property length", 0, MAL, 0x10, 0x0A, MQTT_NAME, 0x05, 0x02, 0x00, 0x3C),
    /* [MQTT-3.1.3-11] will topic is a topic name: no wildcards. */
    D("will topic with #", 0, PROTO, 0x10, 0x14, MQTT_NAME, 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01, 'c',
      0x00, 0x03, 'a', '/', '#', 0x00, 0x00),
    D("will topic with + (5.0)", 0, PROTO, 0x10, 0x14, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00,
      0x00, 0x01, 'c', 0x00, 0x00, 0x01, '+', 0x00, 0x00),
    /* [MQTT-4.7.3-1] (codec choice). */
    D("will topic empty", 0, PROTO, 0x10, 0x11, MQTT_NAME, 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01, 'c',
      0x00, 0x00, 0x00, 0x00),
    /* [MQTT-1.5.4-1], [MQTT-1.5.4-2]: ill-formed UTF-8 and U+0000. */
    D("client id U+0000", 0, MAL, 0x10, 0x0D, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x01, 0x00),
    D("client id overlong C0 AF", 0, MAL, 0x10, 0x0E, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02,
      0xC0, 0xAF),
    D("client id surrogate ED B0 80", 0, MAL, 0x10, 0x0F, MQTT_NAME, 0x04, 0x02, 0x00, 0x3C, 0x00,
      0x03, 0xED, 0xB0, 0x80),
    D("will topic U+0000", 0, MAL, 0x10, 0x12, MQTT_NAME, 0x04, 0x06, 0x00, 0x3C, 0x00, 0x01, 'c',
      0x00, 0x01, 0x00, 0x00, 0x00),
    D("user name bad continuation", 0, MAL, 0x10, 0x11, MQTT_NAME, 0x04, 0x82, 0x00, 0x3C, 0x00,
      0x01, 'c', 0x00, 0x02, 0xC3, 0x28),
    D("protocol name ill-formed", 0, MAL, 0x10, 0x0D, 0x00, 0x04, 'M', 0xC0, 'T', 'T', 0x04, 0x02,
      0x00, 0x3C, 0x00, 0x01, 'c'),
};

Test(malformed, connect)
{
	check_rows(connect_rows, N(connect_rows));
}

/* 5.0 CONNECT, clean start, keep alive 60, then properties and id "c". */
#define C5(pl) 0x10, (uint8_t)(14 + (pl)), MQTT_NAME, 0x05, 0x02, 0x00, 0x3C, (pl)
#define ID_C   0x00, 0x01, 'c'

static const struct bad connect_props_rows[] = {
    /* §2.2.2.2: an unknown identifier cannot be parsed (codec choice). */
    D("unknown property 0x07", 0, MAL, C5(2), 0x07, 0x00, ID_C),
    D("property id non-minimal varint", 0, MAL, C5(2), 0x91, 0x00, ID_C),
    /* §2.2.2.2: a property not in the packet's list (codec choice). */
    D("topic alias in CONNECT", 0, PROTO, C5(3), 0x23, 0x00, 0x01, ID_C),
    D("reason string in CONNECT", 0, PROTO, C5(3), 0x1F, 0x00, 0x00, ID_C),
    D("subscription id in CONNECT", 0, PROTO, C5(2), 0x0B, 0x01, ID_C),
    D("will delay in CONNECT properties", 0, PROTO, C5(5), 0x18, 0x00, 0x00, 0x00, 0x05, ID_C),
    /* §3.1.2.11.x: "It is a Protocol Error to include ... more than once". */
    D("session expiry twice", 0, PROTO, C5(10), 0x11, 0x00, 0x00, 0x00, 0x01, 0x11, 0x00, 0x00,
      0x00, 0x02, ID_C),
    D("auth method twice", 0, PROTO, C5(8), 0x15, 0x00, 0x01, 'A', 0x15, 0x00, 0x01, 'B', ID_C),
    /* Value ranges, each "It is a Protocol Error" in §3.1.2.11. */
    D("receive maximum 0", 0, PROTO, C5(3), 0x21, 0x00, 0x00, ID_C),
    D("maximum packet size 0", 0, PROTO, C5(5), 0x27, 0x00, 0x00, 0x00, 0x00, ID_C),
    D("request problem information 2", 0, PROTO, C5(2), 0x17, 0x02, ID_C),
    D("request response information 2", 0, PROTO, C5(2), 0x19, 0x02, ID_C),
    /* §3.1.2.11.10: auth data without auth method. */
    D("auth data without method", 0, PROTO, C5(4), 0x16, 0x00, 0x01, 0xAA, ID_C),
    /* Property length and values past what is there. */
    {"property length past the end", PK(0x10, 0x0E, MQTT_NAME, 0x05, 0x02, 0x00, 0x3C, 0x0A, ID_C),
     0, DECODE, MAL, 0},
    D("session expiry value cut short", 0, MAL, C5(3), 0x11, 0x00, 0x00, ID_C),
    D("user property key U+0000", 0, MAL, C5(7), 0x26, 0x00, 0x01, 0x00, 0x00, 0x01, 'v', ID_C),
    D("user property value cut short", 0, MAL, C5(7), 0x26, 0x00, 0x01, 'k', 0x00, 0x05, 'v', ID_C),
    D("auth method ill-formed", 0, MAL, C5(4), 0x15, 0x00, 0x01, 0xFF, ID_C),
    /* Will properties (§3.1.3.2): only the will's list is allowed. */
    {"session expiry in will properties",
     PK(0x10, 0x19, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00, ID_C, 0x05, 0x11, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 't', 0x00, 0x00),
     0, DECODE, PROTO, 0},
    {"will payload format 2",
     PK(0x10, 0x16, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00, ID_C, 0x02, 0x01, 0x02, 0x00, 0x01,
        't', 0x00, 0x00),
     0, DECODE, PROTO, 0},
    {"will content type ill-formed",
     PK(0x10, 0x18, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00, ID_C, 0x04, 0x03, 0x00, 0x01, 0xFF,
        0x00, 0x01, 't', 0x00, 0x00),
     0, DECODE, MAL, 0},
    {"will response topic with #",
     PK(0x10, 0x18, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00, ID_C, 0x04, 0x08, 0x00, 0x01, '#',
        0x00, 0x01, 't', 0x00, 0x00),
     0, DECODE, PROTO, 0},
    {"will delay twice",
     PK(0x10, 0x1E, MQTT_NAME, 0x05, 0x06, 0x00, 0x3C, 0x00, ID_C, 0x0A, 0x18, 0x00, 0x00, 0x00,
        0x01, 0x18, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01, 't', 0x00, 0x00),
     0, DECODE, PROTO, 0},
};

Test(malformed, connect_v5_properties)
{
	check_rows(connect_props_rows, N(connect_props_rows));
}

/* ------------------------------------------------------------- PUBLISH */

/* 5.0 PUBLISH QoS 0, topic "t", then pl bytes of properties, no payload. */
#define P5(pl) 0x30, (uint8_t)(4 + (pl)), 0x00, 0x01, 't', (pl)

static const struct bad publish_rows[] = {
    /* [MQTT-3.3.1-2]: DUP must be 0 for QoS 0 (codec: a bad flag, 0x81). */
    D("DUP with QoS 0", V4, MAL, 0x38, 0x05, 0x00, 0x01, 't', 'A', 'B'),
    D("DUP with QoS 0 (5.0)", V5, MAL, 0x38, 0x04, 0x00, 0x01, 't', 0x00),
    /* [MQTT-3.3.2-2]: no wildcards in a topic name. */
    D("topic a/#", V4, PROTO, 0x30, 0x05, 0x00, 0x03, 'a', '/', '#'),
    D("topic +", V4, PROTO, 0x30, 0x03, 0x00, 0x01, '+'),
    D("topic a/+ (5.0)", V5, PROTO, 0x30, 0x06, 0x00, 0x03, 'a', '/', '+', 0x00),
    D("topic a# (5.0)", V5, PROTO, 0x30, 0x05, 0x00, 0x02, 'a', '#', 0x00),
    /* [MQTT-4.7.3-1] 3.1.1: at least one character (codec choice). */
    D("empty topic (3.1.1)", V4, PROTO, 0x30, 0x02, 0x00, 0x00),
    D("empty topic with payload (3.1)", V31, PROTO, 0x30, 0x04, 0x00, 0x00, 'A', 'B'),
    /* 5.0 §3.3.2.1: zero-length topic without a Topic Alias. */
    D("empty topic, no alias (5.0)", V5, PROTO, 0x30, 0x03, 0x00, 0x00, 0x00),
    D("empty topic, other props (5.0)", V5, PROTO, 0x30, 0x05, 0x00, 0x00, 0x02, 0x01, 0x01),
    /* [MQTT-2.2.1-3] (5.0 [MQTT-2.2.1-3]): packet id non-zero. */
    D("QoS 1 packet id 0", V4, PROTO, 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x00),
    D("QoS 2 packet id 0 (5.0)", V5, PROTO, 0x34, 0x06, 0x00, 0x01, 't', 0x00, 0x00, 0x00),
    /* Truncation. */
    D("empty body", V4, MAL, 0x30, 0x00),
    D("topic length cut", V4, MAL, 0x30, 0x01, 0x00),
    D("topic cut short", V4, MAL, 0x30, 0x03, 0x00, 0x05, 'a'),
    D("QoS 1 packet id cut", V4, MAL, 0x32, 0x04, 0x00, 0x01, 't', 0x00),
    D("QoS 2 no packet id", V4, MAL, 0x34, 0x03, 0x00, 0x01, 't'),
    D("5.0 no property length", V5, MAL, 0x30, 0x03, 0x00, 0x01, 't'),
    D("5.0 QoS 1 no property length", V5, MAL, 0x32, 0x05, 0x00, 0x01, 't', 0x00, 0x01),
    /* [MQTT-1.5.4-1], [MQTT-1.5.4-2]: ill-formed UTF-8 is malformed. */
    D("topic surrogate ED A0 80", V4, MAL, 0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80),
    D("topic U+110000 F4 90 80 80", V4, MAL, 0x30, 0x06, 0x00, 0x04, 0xF4, 0x90, 0x80, 0x80),
    D("topic F5 lead byte", V4, MAL, 0x30, 0x06, 0x00, 0x04, 0xF5, 0x80, 0x80, 0x80),
    D("topic bad continuation E2 28 A1", V5, MAL, 0x30, 0x06, 0x00, 0x03, 0xE2, 0x28, 0xA1, 0x00),
    D("topic ends mid-sequence a E2", V4, MAL, 0x30, 0x04, 0x00, 0x02, 'a', 0xE2),
    D("topic 3-byte sequence cut E2 82", V4, MAL, 0x30, 0x05, 0x00, 0x02, 0xE2, 0x82, 'A'),
    D("topic U+0000", V4, MAL, 0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b'),
    D("topic U+0000 (5.0)", V5, MAL, 0x30, 0x04, 0x00, 0x01, 0x00, 0x00),
    D("topic overlong C0 AF", V4, MAL, 0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF),
    D("topic overlong E0 80 AF", V4, MAL, 0x30, 0x05, 0x00, 0x03, 0xE0, 0x80, 0xAF),
    D("topic overlong F0 80 80 AF", V4, MAL, 0x30, 0x06, 0x00, 0x04, 0xF0, 0x80, 0x80, 0xAF),
    D("topic lone continuation 80", V4, MAL, 0x30, 0x03, 0x00, 0x01, 0x80),
    D("topic byte FF", V4, MAL, 0x30, 0x03, 0x00, 0x01, 0xFF),
    D("topic 10 ASCII then U+0000", V4, MAL, 0x30, 0x0D, 0x00, 0x0B, 'a', 'b', 'c', 'd', 'e', 'f',
      'g', 'h', 'i', 'j', 0x00),
};

Test(malformed, publish)
{
	check_rows(publish_rows, N(publish_rows));
}

static const struct bad publish_props_rows[] = {
    /* [MQTT-3.3.2-8]: topic alias 0. */
    D("topic alias 0", V5, PROTO, P5(3), 0x23, 0x00, 0x00),
    /* §3.3.2.3.2: payload format 0 or 1. */
    D("payload format 2", V5, PROTO, P5(2), 0x01, 0x02),
    /* §3.3.2.3.8: subscription identifier 1..268435455. */
    D("subscription id 0", V5, PROTO, P5(2), 0x0B, 0x00),
    D("subscription id non-minimal 80 00", V5, MAL, P5(3), 0x0B, 0x80, 0x00),
    D("subscription id of 5 bytes", V5, MAL, P5(6), 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01),
    /* Single-valued properties repeated. */
    D("topic alias twice", V5, PROTO, P5(6), 0x23, 0x00, 0x01, 0x23, 0x00, 0x02),
    D("message expiry twice", V5, PROTO, P5(10), 0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00,
      0x00, 0x01),
    D("payload format twice", V5, PROTO, P5(4), 0x01, 0x00, 0x01, 0x00),
    D("content type twice", V5, PROTO, P5(6), 0x03, 0x00, 0x00, 0x03, 0x00, 0x00),
    D("correlation data twice", V5, PROTO, P5(6), 0x09, 0x00, 0x00, 0x09, 0x00, 0x00),
    /* Not a PUBLISH property. */
    D("session expiry in PUBLISH", V5, PROTO, P5(5), 0x11, 0x00, 0x00, 0x00, 0x01),
    D("will delay in PUBLISH", V5, PROTO, P5(5), 0x18, 0x00, 0x00, 0x00, 0x01),
    D("receive maximum in PUBLISH", V5, PROTO, P5(3), 0x21, 0x00, 0x01),
    /* [MQTT-3.3.2-14]: the Response Topic is a topic name. */
    D("response topic with #", V5, PROTO, P5(6), 0x08, 0x00, 0x03, 'a', '/', '#'),
    D("response topic with +", V5, PROTO, P5(4), 0x08, 0x00, 0x01, '+'),
    /* Grammar. */
    D("property length past the end", V5, MAL, 0x30, 0x05, 0x00, 0x01, 't', 0x05, 0x01),
    D("message expiry cut short", V5, MAL, P5(3), 0x02, 0x00, 0x00),
    D("topic alias cut short", V5, MAL, P5(2), 0x23, 0x00),
    D("content type ill-formed C3 28", V5, MAL, P5(5), 0x03, 0x00, 0x02, 0xC3, 0x28),
    D("response topic U+0000", V5, MAL, P5(4), 0x08, 0x00, 0x01, 0x00),
    D("property id 0x00", V5, MAL, P5(2), 0x00, 0x00),
    D("property id 0x2B", V5, MAL, P5(2), 0x2B, 0x00),
    D("property id 0x7F", V5, MAL, P5(2), 0x7F, 0x00),
    D("user property value U+0000", V5, MAL, P5(7), 0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0x00),
    D("user property key surrogate", V5, MAL, P5(9), 0x26, 0x00, 0x03, 0xED, 0xBF, 0xBF, 0x00, 0x01,
      'v'),
    D("user property without value", V5, MAL, P5(4), 0x26, 0x00, 0x01, 'k'),
};

Test(malformed, publish_v5_properties)
{
	check_rows(publish_props_rows, N(publish_props_rows));
}

/* ----------------------------------------- PUBACK PUBREC PUBREL PUBCOMP */

static const struct bad ack_rows[] = {
    /* [MQTT-2.2.1-3] / 5.0 §2.2.1: non-zero packet identifier. */
    D("PUBACK packet id 0", V4, PROTO, 0x40, 0x02, 0x00, 0x00),
    D("PUBREC packet id 0", V4, PROTO, 0x50, 0x02, 0x00, 0x00),
    D("PUBREL packet id 0 (5.0)", V5, PROTO, 0x62, 0x02, 0x00, 0x00),
    D("PUBCOMP packet id 0 (5.0)", V5, PROTO, 0x70, 0x02, 0x00, 0x00),
    D("PUBACK packet id 0 with reason (5.0)", V5, PROTO, 0x40, 0x03, 0x00, 0x00, 0x10),
    /* Grammar: 3.1.1 acks are exactly 2 bytes. */
    D("PUBACK empty", V4, MAL, 0x40, 0x00),
    D("PUBACK one byte", V5, MAL, 0x40, 0x01, 0x00),
    D("PUBACK trailing byte (3.1.1)", V4, MAL, 0x40, 0x03, 0x00, 0x01, 0x00),
    D("PUBREL trailing byte (3.1.1)", V4, MAL, 0x62, 0x03, 0x00, 0x01, 0x00),
    D("PUBCOMP trailing bytes (3.1)", V31, MAL, 0x70, 0x04, 0x00, 0x01, 0x00, 0x00),
    /* §3.4.2.1 ... §3.7.2.1: the reason codes each ack may carry. */
    D("PUBACK reason 0x92", V5, PROTO, 0x40, 0x03, 0x00, 0x01, 0x92),
    D("PUBACK reason 0x04", V5, PROTO, 0x40, 0x03, 0x00, 0x01, 0x04),
    D("PUBACK reason 0x01", V5, PROTO, 0x40, 0x03, 0x00, 0x01, 0x01),
    D("PUBREC reason 0x92", V5, PROTO, 0x50, 0x03, 0x00, 0x01, 0x92),
    D("PUBREC reason 0x8F", V5, PROTO, 0x50, 0x03, 0x00, 0x01, 0x8F),
    D("PUBREL reason 0x10", V5, PROTO, 0x62, 0x03, 0x00, 0x01, 0x10),
    D("PUBREL reason 0x80", V5, PROTO, 0x62, 0x03, 0x00, 0x01, 0x80),
    D("PUBCOMP reason 0x91", V5, PROTO, 0x70, 0x03, 0x00, 0x01, 0x91),
    /* Properties. */
    D("PUBACK property length past the end", V5, MAL, 0x40, 0x04, 0x00, 0x01, 0x00, 0x05),
    D("PUBACK topic alias property", V5, PROTO, 0x40, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00,
      0x01),
    D("PUBREL session expiry property", V5, PROTO, 0x62, 0x09, 0x00, 0x01, 0x00, 0x05, 0x11, 0x00,
      0x00, 0x00, 0x01),
    D("PUBACK reason string twice", V5, PROTO, 0x40, 0x0A, 0x00, 0x01, 0x00, 0x06, 0x1F, 0x00, 0x00,
      0x1F, 0x00, 0x00),
    D("PUBACK reason string ill-formed", V5, MAL, 0x40, 0x08, 0x00, 0x01, 0x00, 0x04, 0x1F, 0x00,
      0x01, 0xFF),
    D("PUBCOMP byte after properties", V5, MAL, 0x70, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00),
};

Test(malformed, acks)
{
	check_rows(ack_rows, N(ack_rows));
}

/* ----------------------------------------------------------- SUBSCRIBE */

static const struct bad subscribe_rows[] = {
    /* [MQTT-2.2.1-3]: non-zero packet identifier. */
    D("packet id 0", V4, PROTO, 0x82, 0x06, 0x00, 0x00, 0x00, 0x01, 't', 0x00),
    D("packet id 0 (5.0)", V5, PROTO, 0x82, 0x07, 0x00, 0x00, 0x00, 0x00, 0x01, 't', 0x00),
    /* [MQTT-3.8.3-3] (3.1.1), [MQTT-3.8.3-2] (5.0): at least one entry. */
    D("no entries", V4, PROTO, 0x82, 0x02, 0x00, 0x01),
    D("no entries (5.0)", V5, PROTO, 0x82, 0x03, 0x00, 0x01, 0x00),
    /* 3.1.1 [MQTT-3-8.3-4]: reserved bits or QoS 3 -> malformed. */
    D("option bit 2 (3.1.1)", V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x04),
    D("option bit 7 (3.1.1)", V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x80),
    D("option QoS 3 (3.1.1)", V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x03),
    D("option bit 4 (3.1)", V31, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x10),
    D("second entry QoS 3 (3.1.1)", V4, MAL, 0x82, 0x0A, 0x00, 0x01, 0x00, 0x01, 'a', 0x01, 0x00,
      0x01, 'b', 0x03),
    /* 5.0 [MQTT-3.8.3-5]: reserved bits 6-7 -> malformed. */
    D("option bit 6 (5.0)", V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x40),
    D("option bit 7 (5.0)", V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x80),
    /* 5.0 §3.8.3.1: QoS 3 and retain handling 3 are protocol errors. */
    D("option QoS 3 (5.0)", V5, PROTO, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x03),
    D("retain handling 3", V5, PROTO, 0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 't', 0x30),
    /* 5.0 [MQTT-3.8.3-4]: No Local on a shared subscription. */
    D("no local on $share", V5, PROTO, 0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A, '$', 's', 'h', 'a',
      'r', 'e', '/', 'g', '/', 't', 0x04),
    D("no local on second $share entry", V5, PROTO, 0x82, 0x14, 0x00, 0x01, 0x00, 0x00, 0x01, 'a',
      0x04, 0x00, 0x0A, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', '#', 0x05),
    /* Grammar. */
    D("options byte missing", V4, MAL, 0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 't'),
    D("filter cut short", V4, MAL, 0x82, 0x05, 0x00, 0x01, 0x00, 0x05, 't'),
    D("second entry options missing", V4, MAL, 0x82, 0x09, 0x00, 0x01, 0x00, 0x01, 'a', 0x00, 0x00,
      0x01, 'b'),
    D("dangling byte after entry", V4, MAL, 0x82, 0x07, 0x00, 0x01, 0x00, 0x01, 't', 0x00, 0x00),
    D("filter U+0000", V4, MAL, 0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00),
    D("filter overlong", V5, MAL, 0x82, 0x08, 0x00, 0x01, 0x00, 0x00, 0x02, 0xC1, 0x81, 0x00),
    D("packet id cut", V4, MAL, 0x82, 0x01, 0x00),
    D("property length past the end", V5, MAL, 0x82, 0x07, 0x00, 0x01, 0x09, 0x00, 0x01, 't', 0x00),
    /* 5.0 §3.8.2.1.2: one Subscription Identifier, 1..268435455. */
    D("subscription id twice", V5, PROTO, 0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02,
      0x00, 0x01, 't', 0x00),
    D("subscription id 0", V5, PROTO, 0x82, 0x09, 0x00, 0x01, 0x02, 0x0B, 0x00, 0x00, 0x01, 't',
      0x00),
    D("reason string in SUBSCRIBE", V5, PROTO, 0x82, 0x0A, 0x00, 0x01, 0x03, 0x1F, 0x00, 0x00, 0x00,
      0x01, 't', 0x00),
};

Test(malformed, subscribe)
{
	check_rows(subscribe_rows, N(subscribe_rows));
}

/* --------------------------------------------------------- UNSUBSCRIBE */

static const struct bad unsubscribe_rows[] = {
    D("packet id 0", V4, PROTO, 0xA2, 0x05, 0x00, 0x00, 0x00, 0x01, 't'),
    /* [MQTT-3.10.3-2]: at least one filter. */
    D("no filters", V4, PROTO, 0xA2, 0x02, 0x00, 0x01),
    D("no filters (5.0)", V5, PROTO, 0xA2, 0x03, 0x00, 0x01, 0x00),
    D("filter cut short", V4, MAL, 0xA2, 0x05, 0x00, 0x01, 0x00, 0x04, 't'),
    D("dangling byte after filter", V4, MAL, 0xA2, 0x06, 0x00, 0x01, 0x00, 0x01, 't', 0x00),
    D("filter byte FF", V4, MAL, 0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 0xFF),
    D("filter U+0000 (5.0)", V5, MAL, 0xA2, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00),
    D("subscription id in UNSUBSCRIBE", V5, PROTO, 0xA2, 0x08, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00,
      0x01, 't'),
};

Test(malformed, unsubscribe)
{
	check_rows(unsubscribe_rows, N(unsubscribe_rows));
}

/* ------------------------------------------------------ SUBACK UNSUBACK */

static const struct bad suback_rows[] = {
    D("SUBACK packet id 0", V4, PROTO, 0x90, 0x03, 0x00, 0x00, 0x00),
    D("SUBACK packet id 0 (5.0)", V5, PROTO, 0x90, 0x04, 0x00, 0x00, 0x00, 0x00),
    D("SUBACK packet id cut", V4, MAL, 0x90, 0x01, 0x00),
    /* One code per filter, and a SUBSCRIBE has at least one (codec choice). */
    D("SUBACK without codes", V4, PROTO, 0x90, 0x02, 0x00, 0x01),
    D("SUBACK without codes (5.0)", V5, PROTO, 0x90, 0x03, 0x00, 0x01, 0x00),
    /* 3.1.1 §3.9.3: 0x00, 0x01, 0x02, 0x80 only. */
    D("SUBACK code 0x03 (3.1.1)", V4, PROTO, 0x90, 0x03, 0x00, 0x01, 0x03),
    D("SUBACK code 0x8F (3.1.1)", V4, PROTO, 0x90, 0x04, 0x00, 0x01, 0x00, 0x8F),
    /* 5.0 §3.9.3. */
    D("SUBACK code 0x11 (5.0)", V5, PROTO, 0x90, 0x04, 0x00, 0x01, 0x00, 0x11),
    D("SUBACK code 0x03 (5.0)", V5, PROTO, 0x90, 0x05, 0x00, 0x01, 0x00, 0x00, 0x03),
    D("SUBACK property length past end", V5, MAL, 0x90, 0x04, 0x00, 0x01, 0x05, 0x00),
    D("SUBACK subscription id property", V5, PROTO, 0x90, 0x06, 0x00, 0x01, 0x02, 0x0B, 0x01, 0x00),
    /* 3.1.1 §3.11.3: the UNSUBACK has no payload. */
    D("UNSUBACK with payload (3.1.1)", V4, MAL, 0xB0, 0x03, 0x00, 0x01, 0x00),
    D("UNSUBACK packet id 0", V4, PROTO, 0xB0, 0x02, 0x00, 0x00),
    D("UNSUBACK packet id cut", V4, MAL, 0xB0, 0x01, 0x00),
    /* 5.0 §3.11.3. */
    D("UNSUBACK code 0x01 (5.0)", V5, PROTO, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x01),
    D("UNSUBACK code 0x9E (5.0)", V5, PROTO, 0xB0, 0x04, 0x00, 0x01, 0x00, 0x9E),
    D("UNSUBACK without codes (5.0)", V5, PROTO, 0xB0, 0x03, 0x00, 0x01, 0x00),
};

Test(malformed, suback_unsuback)
{
	check_rows(suback_rows, N(suback_rows));
}

/* ------------------------------------------------------------- CONNACK */

#define A5(pl) 0x20, (uint8_t)(3 + (pl)), 0x00, 0x00, (pl)

static const struct bad connack_rows[] = {
    /* [MQTT-3.2.2-1]: bits 7-1 of the flags are reserved. */
    D("flags 0x02 (3.1.1)", V4, MAL, 0x20, 0x02, 0x02, 0x00),
    D("flags 0x80 (3.1.1)", V4, MAL, 0x20, 0x02, 0x80, 0x00),
    D("flags 0x80 (5.0)", V5, MAL, 0x20, 0x03, 0x80, 0x00, 0x00),
    /* [MQTT-3.2.2-4] (3.1.1), [MQTT-3.2.2-6] (5.0) (codec choice). */
    D("session present with refusal (3.1.1)", V4, PROTO, 0x20, 0x02, 0x01, 0x05),
    D("session present with refusal (5.0)", V5, PROTO, 0x20, 0x03, 0x01, 0x87, 0x00),
    /* 3.1.1 §3.2.2.3: 6-255 reserved (codec choice). */
    D("return code 6 (3.1.1)", V4, PROTO, 0x20, 0x02, 0x00, 0x06),
    /* 5.0 §3.2.2.2. */
    D("reason 0x10 (5.0)", V5, PROTO, 0x20, 0x03, 0x00, 0x10, 0x00),
    D("reason 0x8B (5.0)", V5, PROTO, 0x20, 0x03, 0x00, 0x8B, 0x00),
    D("reason 0x01 (5.0)", V5, PROTO, 0x20, 0x03, 0x00, 0x01, 0x00),
    /* Grammar. */
    D("one byte", V4, MAL, 0x20, 0x01, 0x00),
    D("trailing byte (3.1.1)", V4, MAL, 0x20, 0x03, 0x00, 0x00, 0x00),
    D("no property length (5.0)", V5, MAL, 0x20, 0x02, 0x00, 0x00),
    D("trailing byte after properties (5.0)", V5, MAL, 0x20, 0x04, 0x00, 0x00, 0x00, 0x00),
    D("property length past the end", V5, MAL, 0x20, 0x04, 0x00, 0x00, 0x03, 0x24),
    /* 5.0 §3.2.2.3: value ranges and the CONNACK property list. */
    D("maximum QoS 2", V5, PROTO, A5(2), 0x24, 0x02),
    D("retain available 2", V5, PROTO, A5(2), 0x25, 0x02),
    D("wildcard subscription available 2", V5, PROTO, A5(2), 0x28, 0x02),
    D("subscription ids available 2", V5, PROTO, A5(2), 0x29, 0x02),
    D("shared subscription available 2", V5, PROTO, A5(2), 0x2A, 0x02),
    D("receive maximum 0", V5, PROTO, A5(3), 0x21, 0x00, 0x00),
    D("maximum packet size 0", V5, PROTO, A5(5), 0x27, 0x00, 0x00, 0x00, 0x00),
    D("maximum QoS twice", V5, PROTO, A5(4), 0x24, 0x00, 0x24, 0x01),
    D("will delay in CONNACK", V5, PROTO, A5(5), 0x18, 0x00, 0x00, 0x00, 0x01),
    D("topic alias in CONNACK", V5, PROTO, A5(3), 0x23, 0x00, 0x01),
    D("request problem info in CONNACK", V5, PROTO, A5(2), 0x17, 0x01),
    D("auth data without method", V5, PROTO, A5(3), 0x16, 0x00, 0x00),
    D("assigned client id ill-formed", V5, MAL, A5(5), 0x12, 0x00, 0x02, 0xC3, 0x28),
};

Test(malformed, connack)
{
	check_rows(connack_rows, N(connack_rows));
}

/* --------------------------------------- PINGREQ PINGRESP DISCONNECT AUTH */

static const struct bad misc_rows[] = {
    /* §3.12, §3.13: no variable header, no payload. */
    D("PINGREQ with a body", V4, MAL, 0xC0, 0x01, 0x00),
    D("PINGREQ with a body (5.0)", V5, MAL, 0xC0, 0x02, 0x00, 0x00),
    D("PINGRESP with a body", V4, MAL, 0xD0, 0x01, 0x00),
    D("PINGRESP with a body (5.0)", V5, MAL, 0xD0, 0x01, 0x00),
    /* 3.1.1 §3.14: DISCONNECT has no variable header or payload. */
    D("DISCONNECT with a body (3.1.1)", V4, MAL, 0xE0, 0x01, 0x00),
    D("DISCONNECT with a body (3.1)", V31, MAL, 0xE0, 0x02, 0x00, 0x00),
    /* 5.0 §3.14.2.1. */
    D("DISCONNECT reason 0x01", V5, PROTO, 0xE0, 0x01, 0x01),
    D("DISCONNECT reason 0x18", V5, PROTO, 0xE0, 0x01, 0x18),
    D("DISCONNECT reason 0x84", V5, PROTO, 0xE0, 0x01, 0x84),
    D("DISCONNECT reason 0x91", V5, PROTO, 0xE0, 0x01, 0x91),
    D("DISCONNECT property length past end", V5, MAL, 0xE0, 0x02, 0x00, 0x05),
    D("DISCONNECT byte after properties", V5, MAL, 0xE0, 0x03, 0x00, 0x00, 0x00),
    D("DISCONNECT receive maximum property", V5, PROTO, 0xE0, 0x05, 0x00, 0x03, 0x21, 0x00, 0x01),
    D("DISCONNECT session expiry twice", V5, PROTO, 0xE0, 0x0C, 0x00, 0x0A, 0x11, 0x00, 0x00, 0x00,
      0x01, 0x11, 0x00, 0x00, 0x00, 0x01),
    D("DISCONNECT server reference U+0000", V5, MAL, 0xE0, 0x06, 0x9C, 0x04, 0x1C, 0x00, 0x01,
      0x00),
    /* 5.0 §3.15.2.1: AUTH reason codes 0x00, 0x18, 0x19. */
    D("AUTH reason 0x87", V5, PROTO, 0xF0, 0x01, 0x87),
    D("AUTH reason 0x04", V5, PROTO, 0xF0, 0x01, 0x04),
    D("AUTH reason 0x01", V5, PROTO, 0xF0, 0x01, 0x01),
    D("AUTH data without method", V5, PROTO, 0xF0, 0x06, 0x18, 0x04, 0x16, 0x00, 0x01, 0xAA),
    D("AUTH subscription id property", V5, PROTO, 0xF0, 0x04, 0x18, 0x02, 0x0B, 0x01),
    D("AUTH method twice", V5, PROTO, 0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00, 0x01, 'A', 0x15, 0x00,
      0x01, 'B'),
    D("AUTH property length past end", V5, MAL, 0xF0, 0x02, 0x18, 0x05),
    /* Nothing but CONNECT before CONNECT (codec choice: 0x82). */
    D("PUBLISH before CONNECT", 0, PROTO, 0x30, 0x03, 0x00, 0x01, 't'),
    D("AUTH before CONNECT", 0, PROTO, 0xF0, 0x00),
};

Test(malformed, ping_disconnect_auth)
{
	check_rows(misc_rows, N(misc_rows));
}

/* Enough distinct rows? The brief asks for at least 60. */
Test(malformed, table_size)
{
	size_t n = N(frame_rows) + N(connect_rows) + N(connect_props_rows) + N(publish_rows) +
	           N(publish_props_rows) + N(ack_rows) + N(subscribe_rows) + N(unsubscribe_rows) +
	           N(suback_rows) + N(connack_rows) + N(misc_rows);
	cr_assert_geq(n, 60, "%zu rows", n);
}

/* ------------------------------------------------------------ prefixes */

struct exc {
	uint32_t body_len; /* remaining length of the shortened packet */
	uint8_t rc;        /* what it decodes as instead of 0x81 */
};

struct prefix_case {
	const char *name;
	const uint8_t *b;
	size_t n;
	uint8_t version;
	uint32_t valid_from; /* bodies this long or longer decode; 0: none do */
	size_t n_exc;        /* entries in exc */
	struct exc exc[4];   /* other body lengths that are not malformed */
};

#define UNPAREN(...) __VA_ARGS__
/* exc is a parenthesised list of {body_len, rc} pairs. */
#define PC(name, ver, from, n_exc, exc, ...)                                                       \
	{                                                                                          \
		name, PK(__VA_ARGS__), ver, from, n_exc,                                           \
		{                                                                                  \
			UNPAREN exc                                                                \
		}                                                                                  \
	}

static const struct prefix_case prefix_cases[] = {
    PC("CONNECT 3.1.1 with will and credentials", 0, 0, 0, ({0, 0}), 0x10, 0x23, MQTT_NAME, 0x04,
       0xCE, 0x00, 0x0A, 0x00, 0x03, 'c', 'i', 'd', 0x00, 0x03, 'w', '/', 't', 0x00, 0x03, 'b', 'y',
       'e', 0x00, 0x04, 'u', 's', 'e', 'r', 0x00, 0x02, 0x01, 0x02),
    PC("CONNECT 5.0 with properties and will", 0, 0, 0, ({0, 0}), 0x10, 0x1C, MQTT_NAME, 0x05, 0x06,
       0x00, 0x0A, 0x05, 0x11, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x01, 'c', 0x02, 0x01, 0x01, 0x00,
       0x01, 't', 0x00, 0x01, 'x'),
    PC("CONNECT 3.1", 0, 0, 0, ({0, 0}), 0x10, 0x11, MQISDP_NAME, 0x03, 0x02, 0x00, 0x3C, 0x00,
       0x03, 'c', 'i', 'd'),
    PC("CONNACK 5.0 with properties", V5, 0, 0, ({0, 0}), 0x20, 0x09, 0x00, 0x00, 0x06, 0x12, 0x00,
       0x01, 'a', 0x24, 0x01),
    PC("CONNACK 3.1.1", V4, 0, 0, ({0, 0}), 0x20, 0x02, 0x01, 0x00),
    /* PUBLISH: every cut before the payload is malformed; payload may shrink. */
    PC("PUBLISH 5.0 QoS 1 with properties", V5, 14, 0, ({0, 0}), 0x32, 0x10, 0x00, 0x01, 't', 0x00,
       0x07, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3C, 0x23, 0x00, 0x01, 'p', 'a'),
    PC("PUBLISH 3.1.1 QoS 2", V4, 5, 0, ({0, 0}), 0x34, 0x07, 0x00, 0x01, 't', 0x00, 0x07, 'p',
       'a'),
    /* A 5.0 ack may stop after the packet id or after the reason code. */
    PC("PUBACK 5.0 with reason string", V5, 0, 2, ({2, 0}, {3, 0}), 0x40, 0x09, 0x00, 0x0A, 0x10,
       0x05, 0x1F, 0x00, 0x02, 'n', 'o'),
    PC("PUBREL 3.1.1", V4, 0, 0, ({0, 0}), 0x62, 0x02, 0x00, 0x0C),
    /* A SUBSCRIBE cut after the properties has no entries: 0x82; cut
     * after the first entry it is a shorter valid SUBSCRIBE. */
    PC("SUBSCRIBE 5.0, two entries", V5, 0, 2, ({6, PROTO}, {10, 0}), 0x82, 0x0E, 0x00, 0x01, 0x03,
       0x0B, 0x80, 0x01, 0x00, 0x01, 'a', 0x01, 0x00, 0x01, 'b', 0x02),
    PC("UNSUBSCRIBE 3.1.1, two filters", V4, 0, 2, ({2, PROTO}, {5, 0}), 0xA2, 0x08, 0x00, 0x01,
       0x00, 0x01, 'a', 0x00, 0x01, 'b'),
    PC("SUBACK 3.1.1, two codes", V4, 0, 2, ({2, PROTO}, {3, 0}), 0x90, 0x04, 0x00, 0x01, 0x00,
       0x01),
    /* A 5.0 DISCONNECT or AUTH may be empty or a bare reason code. */
    PC("DISCONNECT 5.0 with properties", V5, 0, 2, ({0, 0}, {1, 0}), 0xE0, 0x07, 0x04, 0x05, 0x11,
       0x00, 0x00, 0x00, 0x01),
    PC("AUTH 5.0 with properties", V5, 0, 2, ({0, 0}, {1, 0}), 0xF0, 0x0A, 0x18, 0x08, 0x15, 0x00,
       0x01, 'M', 0x16, 0x00, 0x01, 0xDD),
};

static uint8_t expected_rc(const struct prefix_case *c, uint32_t m)
{
	if (c->valid_from != 0 && m >= c->valid_from)
		return MQTT_RC_SUCCESS;
	for (size_t k = 0; k < c->n_exc; k++)
		if (c->exc[k].body_len == m)
			return c->exc[k].rc;
	return MQTT_RC_MALFORMED_PACKET;
}

/* Every strict prefix of a valid packet is NEED_MORE to the frame peek. */
Test(malformed, every_prefix_needs_more)
{
	for (size_t i = 0; i < N(prefix_cases); i++) {
		const struct prefix_case *c = &prefix_cases[i];
		struct mqtt_frame f;
		struct mqtt_packet p;
		cr_assert_eq(mqtt_frame_peek(c->b, c->n, c->version, 0, &f), MQTT_FRAME_OK,
		             "[%s] not a whole packet", c->name);
		cr_assert_eq(mqtt_frame_size(&f), c->n, "[%s] test row miscounted", c->name);
		cr_assert_eq(mqtt_decode_buf(c->b, c->n, c->version, &p, NULL), MQTT_RC_SUCCESS,
		             "[%s] whole packet must decode", c->name);
		for (size_t k = 0; k < c->n; k++)
			cr_expect_eq(mqtt_frame_peek(c->b, k, c->version, 0, &f),
			             MQTT_FRAME_NEED_MORE, "[%s] prefix of %zu bytes", c->name, k);
	}
}

/* The same packets with their body cut and the Remaining Length fixed to
 * match: the decoder sees a whole frame and must refuse each cut body. */
Test(malformed, every_cut_body_is_refused)
{
	for (size_t i = 0; i < N(prefix_cases); i++) {
		const struct prefix_case *c = &prefix_cases[i];
		struct mqtt_frame f;
		cr_assert_eq(mqtt_frame_peek(c->b, c->n, c->version, 0, &f), MQTT_FRAME_OK);
		const uint8_t *body = c->b + f.header_len;
		for (uint32_t m = 0; m < f.remaining_len; m++) {
			uint8_t buf[300];
			buf[0] = c->b[0];
			int hn = mqtt_varint_encode(m, buf + 1);
			memcpy(buf + 1 + hn, body, m);
			struct mqtt_packet p;
			enum mqtt_rc rc =
			    mqtt_decode_buf(buf, (size_t)(1 + hn) + m, c->version, &p, NULL);
			uint8_t want = expected_rc(c, m);
			cr_expect_eq(rc, want, "[%s] body cut to %u: 0x%02X want 0x%02X", c->name,
			             m, rc, want);
		}
	}
}

/* ---------------------------------------------------- reason code sets */

/* The reason code tables of 5.0 §3.2.2.2, §3.4.2.1, §3.5.2.1, §3.6.2.1,
 * §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1, copied independently. */
static const uint8_t rc_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                     0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                     0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rc_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rc_pubrel[] = {0x00, 0x92};
static const uint8_t rc_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                    0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rc_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rc_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                        0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                        0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rc_auth[] = {0x00, 0x18, 0x19};

static bool in_set(const uint8_t *set, size_t n, unsigned c)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == c)
			return true;
	return false;
}

Test(malformed, reason_code_sets_match_spec_tables)
{
	static const struct {
		uint8_t type;
		const uint8_t *set;
		size_t n;
	} t[] = {
	    {MQTT_CONNACK, rc_connack, sizeof(rc_connack)},
	    {MQTT_PUBACK, rc_puback, sizeof(rc_puback)},
	    {MQTT_PUBREC, rc_puback, sizeof(rc_puback)},
	    {MQTT_PUBREL, rc_pubrel, sizeof(rc_pubrel)},
	    {MQTT_PUBCOMP, rc_pubrel, sizeof(rc_pubrel)},
	    {MQTT_SUBACK, rc_suback, sizeof(rc_suback)},
	    {MQTT_UNSUBACK, rc_unsuback, sizeof(rc_unsuback)},
	    {MQTT_DISCONNECT, rc_disconnect, sizeof(rc_disconnect)},
	    {MQTT_AUTH, rc_auth, sizeof(rc_auth)},
	};
	for (size_t i = 0; i < N(t); i++)
		for (unsigned c = 0; c < 256; c++)
			cr_expect_eq(mqtt_rc_valid_for(t[i].type, (uint8_t)c),
			             in_set(t[i].set, t[i].n, c), "%s reason 0x%02X",
			             mqtt_type_name(t[i].type), c);
}

/* Each code through the decoder: valid ones decode, the rest are 0x82. */
Test(malformed, every_reason_code_through_the_decoder)
{
	for (unsigned c = 0; c < 256; c++) {
		struct mqtt_packet p;
		uint8_t ack[] = {0x40, 0x03, 0x00, 0x01, (uint8_t)c};
		uint8_t rel[] = {0x62, 0x03, 0x00, 0x01, (uint8_t)c};
		uint8_t sub[] = {0x90, 0x04, 0x00, 0x01, 0x00, (uint8_t)c};
		uint8_t uns[] = {0xB0, 0x04, 0x00, 0x01, 0x00, (uint8_t)c};
		uint8_t dis[] = {0xE0, 0x01, (uint8_t)c};
		uint8_t aut[] = {0xF0, 0x01, (uint8_t)c};
		uint8_t cak[] = {0x20, 0x03, 0x00, (uint8_t)c, 0x00};
		uint8_t cak4[] = {0x20, 0x02, 0x00, (uint8_t)c};
		uint8_t sub4[] = {0x90, 0x03, 0x00, 0x01, (uint8_t)c};
#define WANT(set, c) (in_set(set, sizeof(set), c) ? MQTT_RC_SUCCESS : PROTO)
		cr_expect_eq(mqtt_decode_buf(ack, sizeof(ack), V5, &p, NULL), WANT(rc_puback, c),
		             "PUBACK 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(rel, sizeof(rel), V5, &p, NULL), WANT(rc_pubrel, c),
		             "PUBREL 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(sub, sizeof(sub), V5, &p, NULL), WANT(rc_suback, c),
		             "SUBACK 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(uns, sizeof(uns), V5, &p, NULL), WANT(rc_unsuback, c),
		             "UNSUBACK 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(dis, sizeof(dis), V5, &p, NULL),
		             WANT(rc_disconnect, c), "DISCONNECT 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(aut, sizeof(aut), V5, &p, NULL), WANT(rc_auth, c),
		             "AUTH 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(cak, sizeof(cak), V5, &p, NULL), WANT(rc_connack, c),
		             "CONNACK 0x%02X", c);
#undef WANT
		/* 3.1.1 §3.2.2.3: return codes 0-5; §3.9.3: 0, 1, 2, 0x80. */
		cr_expect_eq(mqtt_decode_buf(cak4, sizeof(cak4), V4, &p, NULL),
		             c <= 5 ? MQTT_RC_SUCCESS : PROTO, "CONNACK 3.1.1 0x%02X", c);
		cr_expect_eq(mqtt_decode_buf(sub4, sizeof(sub4), V4, &p, NULL),
		             (c <= 2 || c == 0x80) ? MQTT_RC_SUCCESS : PROTO, "SUBACK 3.1.1 0x%02X",
		             c);
	}
}

/* The edge translation to 3.1.1 return codes (3.1.1 §3.2.2.3, §3.9.3). */
Test(malformed, v3_translation)
{
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_SUCCESS), 0);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_CLIENT_ID_NOT_VALID), 2);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_SERVER_UNAVAILABLE), 3);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_SERVER_BUSY), 3);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_BAD_USERNAME_OR_PASSWORD), 4);
	cr_expect_eq(mqtt_rc_to_v3_connack(MQTT_RC_NOT_AUTHORIZED), 5);
	cr_expect_eq(mqtt_rc_to_v3_suback(MQTT_RC_SUCCESS), 0);
	cr_expect_eq(mqtt_rc_to_v3_suback(MQTT_RC_GRANTED_QOS1), 1);
	cr_expect_eq(mqtt_rc_to_v3_suback(MQTT_RC_GRANTED_QOS2), 2);
	cr_expect_eq(mqtt_rc_to_v3_suback(MQTT_RC_TOPIC_FILTER_INVALID), 0x80);
	cr_expect_eq(mqtt_rc_to_v3_suback(MQTT_RC_NOT_AUTHORIZED), 0x80);
}
