/*
 * packet.h — MQTT packets as structs of zero-copy views, decoded from and
 * encoded to bytes, for protocol levels 3 (3.1), 4 (3.1.1) and 5 (5.0).
 *
 * Decoding checks every rule of the specifications that can be checked
 * without connection state and returns the reason code the 5.0 spec names
 * for its violation: MQTT_RC_MALFORMED_PACKET when the bytes cannot be parsed
 * by the grammar (§4.13: truncation, trailing bytes, ill-formed UTF-8, bad
 * flags, unknown properties), MQTT_RC_PROTOCOL_ERROR when they parse but
 * carry what the protocol forbids (duplicate properties, out-of-range
 * property values, packet identifier 0, wildcards in a topic name, ...).
 * Rules that need connection state (topic alias maximum, receive maximum,
 * which side sent the packet) are the caller's.
 *
 * Encoding writes into a caller's buffer and returns the byte count, or 0
 * when the buffer is too small; the codec never allocates. Encoding a
 * struct that breaks the protocol's rules is a programmer error and asserts.
 *
 * Pure functions; any thread may call them on its own buffers.
 */
#ifndef STARLING_CODEC_PACKET_H
#define STARLING_CODEC_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "mqtt.h"
#include "view.h"

/* A 5.0 user property (§3.1.2.11.8): a UTF-8 string pair. */
struct mqtt_user_prop {
	struct mqtt_view key;
	struct mqtt_view value;
};

/*
 * The properties of one packet (or of a will). A scalar or string field is
 * meaningful only when its MQTT_PROP_BIT is set in has. User properties and
 * subscription identifiers may repeat, so they are not copied out: they stay
 * in raw, in order, and are walked with struct mqtt_prop_iter.
 *
 * For encoding, user properties come from user[0..user_count) when user is
 * set, else from the 0x26 entries of raw; subscription identifiers come from
 * sub_ids[0..sub_id_count) when sub_ids is set, else from raw. So a decoded
 * packet re-encodes as itself, and a sender builds new ones from arrays.
 */
struct mqtt_props {
	uint64_t has; /* MQTT_PROP_BIT(id) for each property present */

	uint32_t message_expiry_s;      /* 0x02 */
	uint32_t session_expiry_s;      /* 0x11 */
	uint32_t will_delay_s;          /* 0x18 */
	uint32_t max_packet_size;       /* 0x27, bytes, > 0 */
	uint32_t sub_id;                /* 0x0B, the first one, 1..268435455 */
	uint16_t receive_max;           /* 0x21, > 0 */
	uint16_t topic_alias_max;       /* 0x22 */
	uint16_t topic_alias;           /* 0x23, > 0 */
	uint16_t server_keepalive_s;    /* 0x13 */
	uint8_t payload_format;         /* 0x01, 0 bytes or 1 UTF-8 */
	uint8_t request_problem_info;   /* 0x17, 0 or 1 */
	uint8_t request_response_info;  /* 0x19, 0 or 1 */
	uint8_t max_qos;                /* 0x24, 0 or 1 */
	uint8_t retain_available;       /* 0x25, 0 or 1 */
	uint8_t wildcard_sub_available; /* 0x28, 0 or 1 */
	uint8_t sub_id_available;       /* 0x29, 0 or 1 */
	uint8_t shared_sub_available;   /* 0x2A, 0 or 1 */

	struct mqtt_view content_type;       /* 0x03 */
	struct mqtt_view response_topic;     /* 0x08, a topic name */
	struct mqtt_view correlation_data;   /* 0x09, binary */
	struct mqtt_view assigned_client_id; /* 0x12 */
	struct mqtt_view auth_method;        /* 0x15 */
	struct mqtt_view auth_data;          /* 0x16, binary */
	struct mqtt_view response_info;      /* 0x1A */
	struct mqtt_view server_reference;   /* 0x1C */
	struct mqtt_view reason_string;      /* 0x1F */

	uint32_t user_count;   /* user properties (0x26) */
	uint32_t sub_id_count; /* subscription identifiers (0x0B) */
	struct mqtt_view raw;  /* decoded: the property bytes after the length */

	const struct mqtt_user_prop *user; /* encode: overrides raw's 0x26s */
	const uint32_t *sub_ids;           /* encode: overrides raw's 0x0Bs */
};

/* One property as found in raw. */
struct mqtt_prop {
	uint8_t id;             /* enum mqtt_prop_id */
	uint32_t u;             /* integer value (byte, two/four byte, varint) */
	struct mqtt_view str;   /* string or binary value; the key of a pair */
	struct mqtt_view value; /* the value of a user property */
};

/* Walk the properties of an already-decoded block, in wire order. */
struct mqtt_prop_iter {
	const uint8_t *p;
	const uint8_t *end;
};

void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *props);
bool mqtt_prop_iter_next(struct mqtt_prop_iter *it, struct mqtt_prop *out);

/* Convenience walkers over one kind: user properties, subscription ids. */
bool mqtt_props_next_user(struct mqtt_prop_iter *it, struct mqtt_user_prop *out);
bool mqtt_props_next_sub_id(struct mqtt_prop_iter *it, uint32_t *out);

/* CONNECT (§3.1). */
struct mqtt_connect {
	uint8_t version;      /* enum mqtt_version, from the variable header */
	bool bridge;          /* 3.1/3.1.1: the level had mosquitto's bridge bit 0x80 */
	bool clean_start;     /* Clean Session in 3.1.1 */
	uint16_t keepalive_s; /* 0: no keep alive */
	struct mqtt_props props;
	struct mqtt_view client_id; /* may be empty */

	bool will;        /* the Will Flag */
	uint8_t will_qos; /* 0..2 */
	bool will_retain;
	struct mqtt_props will_props; /* 5.0 only */
	struct mqtt_view will_topic;
	struct mqtt_view will_payload; /* binary */

	bool has_username;
	bool has_password;
	struct mqtt_view username;
	struct mqtt_view password; /* binary */
};

/* CONNACK (§3.2). rc is the wire byte: a 3.1.1 return code below 5.0. */
struct mqtt_connack {
	bool session_present;
	uint8_t rc;
	struct mqtt_props props;
};

/* PUBLISH (§3.3). */
struct mqtt_publish {
	uint8_t qos; /* 0..2 */
	bool dup;
	bool retain;
	struct mqtt_view topic; /* empty only with a 5.0 topic alias */
	uint16_t packet_id;     /* 0 for QoS 0, else > 0 */
	struct mqtt_props props;
	struct mqtt_view payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP (§3.4–§3.7). */
struct mqtt_ack {
	uint16_t packet_id; /* > 0 */
	uint8_t rc;         /* 5.0 reason code; 0 below 5.0 */
	struct mqtt_props props;
};

/* One SUBSCRIBE entry: a filter and its subscription options (§3.8.3.1). */
struct mqtt_sub_entry {
	struct mqtt_view filter;
	uint8_t qos;              /* maximum QoS, 0..2 */
	bool no_local;            /* 5.0 */
	bool retain_as_published; /* 5.0 */
	uint8_t retain_handling;  /* 5.0: 0 send, 1 send if new, 2 do not send */
	uint8_t rc;               /* decoded: 0, or 0x8F when the filter's syntax is invalid */
};

/*
 * SUBSCRIBE (§3.8). A bad filter does not fail the packet (§3.9.3 gives it a
 * reason code of its own): its entry carries rc 0x8F for the SUBACK.
 * Entries are walked with struct mqtt_entry_iter; encoding takes them from
 * entries[0..count) when set, else copies payload.
 */
struct mqtt_subscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	uint32_t count;                       /* entries, >= 1 */
	struct mqtt_view payload;             /* decoded: the raw entries */
	const struct mqtt_sub_entry *entries; /* encode */
};

/* UNSUBSCRIBE (§3.10): filters only, same shape as SUBSCRIBE. */
struct mqtt_unsubscribe {
	uint16_t packet_id;
	struct mqtt_props props;
	uint32_t count;                  /* filters, >= 1 */
	struct mqtt_view payload;        /* decoded: the raw filters */
	const struct mqtt_view *filters; /* encode */
};

/*
 * SUBACK and UNSUBACK (§3.9, §3.11): one reason code byte per filter. A
 * 3.1.1 UNSUBACK has none (rcs.len is 0).
 */
struct mqtt_suback {
	uint16_t packet_id;
	struct mqtt_props props;
	struct mqtt_view rcs;
};

/* DISCONNECT and AUTH (§3.14, §3.15): a reason code and properties (5.0). */
struct mqtt_reason {
	uint8_t rc;
	struct mqtt_props props;
};

struct mqtt_packet {
	uint8_t type; /* enum mqtt_type */
	union {
		struct mqtt_connect connect;
		struct mqtt_connack connack;
		struct mqtt_publish publish;
		struct mqtt_ack ack; /* PUBACK PUBREC PUBREL PUBCOMP */
		struct mqtt_subscribe subscribe;
		struct mqtt_suback suback; /* SUBACK UNSUBACK */
		struct mqtt_unsubscribe unsubscribe;
		struct mqtt_reason reason; /* DISCONNECT AUTH */
	};                                 /* PINGREQ PINGRESP: nothing */
};

/*
 * Decode one framed packet. body points at frame->remaining_len bytes (the
 * bytes after the fixed header). version is the connection's protocol level;
 * for CONNECT it is ignored and the packet's own level is used. The views in
 * out point into body. Returns MQTT_RC_SUCCESS or the reason for refusal;
 * for CONNECT also MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION (answer with CONNACK
 * 0x84, or 0x01 below 5.0) and MQTT_RC_CLIENT_ID_NOT_VALID (0x85 / 0x02).
 */
enum mqtt_rc mqtt_decode(const struct mqtt_frame *frame, const uint8_t *body, uint8_t version,
                         struct mqtt_packet *out);

/*
 * Convenience for tests and clients: peek and decode the packet at the
 * front of buf, which must hold all of it. *used receives its size.
 */
enum mqtt_rc mqtt_decode_buf(const uint8_t *buf, size_t len, uint8_t version,
                             struct mqtt_packet *out, size_t *used);

/*
 * Encode p for a peer of this protocol level (for CONNECT, p->connect.version
 * is used). Returns the bytes written, or 0 if cap is too small.
 * mqtt_encode_len() returns the size the encoding needs.
 */
size_t mqtt_encode(const struct mqtt_packet *p, uint8_t version, uint8_t *buf, size_t cap);
size_t mqtt_encode_len(const struct mqtt_packet *p, uint8_t version);

/* Walk SUBSCRIBE entries or UNSUBSCRIBE filters of a decoded packet. */
struct mqtt_entry_iter {
	const uint8_t *p;
	const uint8_t *end;
	uint8_t version;
};

void mqtt_sub_iter_init(struct mqtt_entry_iter *it, const struct mqtt_subscribe *s,
                        uint8_t version);
bool mqtt_sub_iter_next(struct mqtt_entry_iter *it, struct mqtt_sub_entry *out);
void mqtt_unsub_iter_init(struct mqtt_entry_iter *it, const struct mqtt_unsubscribe *u);
bool mqtt_unsub_iter_next(struct mqtt_entry_iter *it, struct mqtt_view *filter);

#endif
