/*
 * mqtt.h — the vocabulary of MQTT 3.1, 3.1.1 and 5.0: packet types, protocol
 * levels, reason codes and property identifiers, plus the one place that maps
 * our internal reason codes to the bytes a 3.1.1 peer understands.
 *
 * Pure constants and pure functions; any thread may call them.
 * Spec references: MQTT 5.0 §2.1.2 (types), §2.4 (reason codes), §2.2.2.2
 * (properties); MQTT 3.1.1 §3.2.2.3 (CONNACK return codes).
 */
#ifndef STARLING_CODEC_MQTT_H
#define STARLING_CODEC_MQTT_H

#include <stdbool.h>
#include <stdint.h>

enum mqtt_version {
	MQTT_V31 = 3,  /* protocol name "MQIsdp" */
	MQTT_V311 = 4, /* protocol name "MQTT" */
	MQTT_V5 = 5,   /* protocol name "MQTT" */
};

enum mqtt_type {
	MQTT_CONNECT = 1,
	MQTT_CONNACK = 2,
	MQTT_PUBLISH = 3,
	MQTT_PUBACK = 4,
	MQTT_PUBREC = 5,
	MQTT_PUBREL = 6,
	MQTT_PUBCOMP = 7,
	MQTT_SUBSCRIBE = 8,
	MQTT_SUBACK = 9,
	MQTT_UNSUBSCRIBE = 10,
	MQTT_UNSUBACK = 11,
	MQTT_PINGREQ = 12,
	MQTT_PINGRESP = 13,
	MQTT_DISCONNECT = 14,
	MQTT_AUTH = 15, /* 5.0 only */
};

/* Largest value of a Variable Byte Integer, hence of Remaining Length. */
#define MQTT_VARINT_MAX 268435455u
/* Largest possible packet: 1 type byte + 4 length bytes + payload. */
#define MQTT_PACKET_SIZE_MAX (MQTT_VARINT_MAX + 5u)

/*
 * Reason codes of MQTT 5.0 §2.4. Internally every outcome is one of these,
 * whatever the protocol level of the peer; mqtt_rc_to_v3_connack() and
 * mqtt_rc_to_v3_suback() translate at the edge for 3.1/3.1.1 peers.
 */
enum mqtt_rc {
	MQTT_RC_SUCCESS = 0x00, /* also: normal disconnection, granted QoS 0 */
	MQTT_RC_GRANTED_QOS1 = 0x01,
	MQTT_RC_GRANTED_QOS2 = 0x02,
	MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
	MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
	MQTT_RC_REAUTHENTICATE = 0x19,
	MQTT_RC_UNSPECIFIED_ERROR = 0x80,
	MQTT_RC_MALFORMED_PACKET = 0x81,
	MQTT_RC_PROTOCOL_ERROR = 0x82,
	MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR = 0x83,
	MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
	MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
	MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
	MQTT_RC_NOT_AUTHORIZED = 0x87,
	MQTT_RC_SERVER_UNAVAILABLE = 0x88,
	MQTT_RC_SERVER_BUSY = 0x89,
	MQTT_RC_BANNED = 0x8A,
	MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
	MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
	MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
	MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
	MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
	MQTT_RC_TOPIC_NAME_INVALID = 0x90,
	MQTT_RC_PACKET_ID_IN_USE = 0x91,
	MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
	MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
	MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
	MQTT_RC_PACKET_TOO_LARGE = 0x95,
	MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	MQTT_RC_QUOTA_EXCEEDED = 0x97,
	MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
	MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
	MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
	MQTT_RC_SERVER_MOVED = 0x9D,
	MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
	MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
	MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* CONNACK return codes of MQTT 3.1 and 3.1.1 (§3.2.2.3). */
enum mqtt_v3_connack {
	MQTT_V3_CONNACK_ACCEPTED = 0,
	MQTT_V3_CONNACK_BAD_PROTOCOL_VERSION = 1,
	MQTT_V3_CONNACK_IDENTIFIER_REJECTED = 2,
	MQTT_V3_CONNACK_SERVER_UNAVAILABLE = 3,
	MQTT_V3_CONNACK_BAD_USERNAME_OR_PASSWORD = 4,
	MQTT_V3_CONNACK_NOT_AUTHORIZED = 5,
};

/* SUBACK failure return code of MQTT 3.1.1 (§3.9.3). */
#define MQTT_V3_SUBACK_FAILURE 0x80

/* Property identifiers of MQTT 5.0 §2.2.2.2. All fit in one byte and < 64. */
enum mqtt_prop_id {
	MQTT_PROP_PAYLOAD_FORMAT = 0x01,
	MQTT_PROP_MESSAGE_EXPIRY = 0x02,
	MQTT_PROP_CONTENT_TYPE = 0x03,
	MQTT_PROP_RESPONSE_TOPIC = 0x08,
	MQTT_PROP_CORRELATION_DATA = 0x09,
	MQTT_PROP_SUBSCRIPTION_ID = 0x0B,
	MQTT_PROP_SESSION_EXPIRY = 0x11,
	MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,
	MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
	MQTT_PROP_AUTH_METHOD = 0x15,
	MQTT_PROP_AUTH_DATA = 0x16,
	MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,
	MQTT_PROP_WILL_DELAY = 0x18,
	MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,
	MQTT_PROP_RESPONSE_INFO = 0x1A,
	MQTT_PROP_SERVER_REFERENCE = 0x1C,
	MQTT_PROP_REASON_STRING = 0x1F,
	MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
	MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
	MQTT_PROP_TOPIC_ALIAS = 0x23,
	MQTT_PROP_MAXIMUM_QOS = 0x24,
	MQTT_PROP_RETAIN_AVAILABLE = 0x25,
	MQTT_PROP_USER = 0x26,
	MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
	MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	MQTT_PROP_SUB_ID_AVAILABLE = 0x29,
	MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* Bit of a property in struct mqtt_props.has. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))

/* A human-readable name for a reason code, for logs ("malformed packet"). */
const char *mqtt_rc_name(enum mqtt_rc rc);

/* A packet type's name for logs ("PUBLISH"); "?" for an unknown type. */
const char *mqtt_type_name(unsigned type);

/*
 * Translate an internal outcome of a CONNECT into a 3.1/3.1.1 CONNACK return
 * code. Codes 3.1.1 has no word for become "server unavailable".
 */
uint8_t mqtt_rc_to_v3_connack(enum mqtt_rc rc);

/* Translate a v5 SUBACK reason code into a 3.1.1 return code (QoS or 0x80). */
uint8_t mqtt_rc_to_v3_suback(enum mqtt_rc rc);

/* Is rc one the 5.0 spec allows in a packet of this type (§3.x.2.1)? */
bool mqtt_rc_valid_for(unsigned type, uint8_t rc);

#endif
