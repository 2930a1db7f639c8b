/*
 * rc.c — the one place that names reason codes and maps our internal
 * outcomes to the codes a 3.1/3.1.1 peer understands, plus which 5.0 reason
 * codes each packet type may carry (§3.2.2.2, §3.4.2.1, ..., §3.15.2.1).
 */
#include "mqtt.h"

#include <stdio.h>
#include <stdlib.h>

#include "cursor.h"

_Noreturn void codec_assert_fail(const char *cond, const char *file, int line)
{
	fprintf(stderr, "assertion failed: %s (%s:%d)\n", cond, file, line);
	abort();
}

const char *mqtt_rc_name(enum mqtt_rc rc)
{
	switch (rc) {
	case MQTT_RC_SUCCESS:
		return "success";
	case MQTT_RC_GRANTED_QOS1:
		return "granted QoS 1";
	case MQTT_RC_GRANTED_QOS2:
		return "granted QoS 2";
	case MQTT_RC_DISCONNECT_WITH_WILL:
		return "disconnect with will message";
	case MQTT_RC_NO_MATCHING_SUBSCRIBERS:
		return "no matching subscribers";
	case MQTT_RC_NO_SUBSCRIPTION_EXISTED:
		return "no subscription existed";
	case MQTT_RC_CONTINUE_AUTHENTICATION:
		return "continue authentication";
	case MQTT_RC_REAUTHENTICATE:
		return "re-authenticate";
	case MQTT_RC_UNSPECIFIED_ERROR:
		return "unspecified error";
	case MQTT_RC_MALFORMED_PACKET:
		return "malformed packet";
	case MQTT_RC_PROTOCOL_ERROR:
		return "protocol error";
	case MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR:
		return "implementation specific error";
	case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
		return "unsupported protocol version";
	case MQTT_RC_CLIENT_ID_NOT_VALID:
		return "client identifier not valid";
	case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
		return "bad user name or password";
	case MQTT_RC_NOT_AUTHORIZED:
		return "not authorized";
	case MQTT_RC_SERVER_UNAVAILABLE:
		return "server unavailable";
	case MQTT_RC_SERVER_BUSY:
		return "server busy";
	case MQTT_RC_BANNED:
		return "banned";
	case MQTT_RC_SERVER_SHUTTING_DOWN:
		return "server shutting down";
	case MQTT_RC_BAD_AUTHENTICATION_METHOD:
		return "bad authentication method";
	case MQTT_RC_KEEP_ALIVE_TIMEOUT:
		return "keep alive timeout";
	case MQTT_RC_SESSION_TAKEN_OVER:
		return "session taken over";
	case MQTT_RC_TOPIC_FILTER_INVALID:
		return "topic filter invalid";
	case MQTT_RC_TOPIC_NAME_INVALID:
		return "topic name invalid";
	case MQTT_RC_PACKET_ID_IN_USE:
		return "packet identifier in use";
	case MQTT_RC_PACKET_ID_NOT_FOUND:
		return "packet identifier not found";
	case MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED:
		return "receive maximum exceeded";
	case MQTT_RC_TOPIC_ALIAS_INVALID:
		return "topic alias invalid";
	case MQTT_RC_PACKET_TOO_LARGE:
		return "packet too large";
	case MQTT_RC_MESSAGE_RATE_TOO_HIGH:
		return "message rate too high";
	case MQTT_RC_QUOTA_EXCEEDED:
		return "quota exceeded";
	case MQTT_RC_ADMINISTRATIVE_ACTION:
		return "administrative action";
	case MQTT_RC_PAYLOAD_FORMAT_INVALID:
		return "payload format invalid";
	case MQTT_RC_RETAIN_NOT_SUPPORTED:
		return "retain not supported";
	case MQTT_RC_QOS_NOT_SUPPORTED:
		return "QoS not supported";
	case MQTT_RC_USE_ANOTHER_SERVER:
		return "use another server";
	case MQTT_RC_SERVER_MOVED:
		return "server moved";
	case MQTT_RC_SHARED_SUBS_NOT_SUPPORTED:
		return "shared subscriptions not supported";
	case MQTT_RC_CONNECTION_RATE_EXCEEDED:
		return "connection rate exceeded";
	case MQTT_RC_MAXIMUM_CONNECT_TIME:
		return "maximum connect time";
	case MQTT_RC_SUB_IDS_NOT_SUPPORTED:
		return "subscription identifiers not supported";
	case MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED:
		return "wildcard subscriptions not supported";
	}
	return "unknown reason code";
}

const char *mqtt_type_name(unsigned type)
{
	static const char *const names[16] = {
	    "?",       "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
	    "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
	    "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};
	return type < 16 ? names[type] : "?";
}

uint8_t mqtt_rc_to_v3_connack(enum mqtt_rc rc)
{
	switch (rc) {
	case MQTT_RC_SUCCESS:
		return MQTT_V3_CONNACK_ACCEPTED;
	case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
		return MQTT_V3_CONNACK_BAD_PROTOCOL_VERSION;
	case MQTT_RC_CLIENT_ID_NOT_VALID:
		return MQTT_V3_CONNACK_IDENTIFIER_REJECTED;
	case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
	case MQTT_RC_BAD_AUTHENTICATION_METHOD:
		return MQTT_V3_CONNACK_BAD_USERNAME_OR_PASSWORD;
	case MQTT_RC_NOT_AUTHORIZED:
	case MQTT_RC_BANNED:
		return MQTT_V3_CONNACK_NOT_AUTHORIZED;
	default:
		return MQTT_V3_CONNACK_SERVER_UNAVAILABLE;
	}
}

uint8_t mqtt_rc_to_v3_suback(enum mqtt_rc rc)
{
	return rc <= MQTT_RC_GRANTED_QOS2 ? (uint8_t)rc : MQTT_V3_SUBACK_FAILURE;
}

/* Reason codes allowed per packet type, as 256-bit sets built from lists. */
static bool in_list(uint8_t rc, const uint8_t *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == rc)
			return true;
	return false;
}

#define IN(rc, ...)                                                                                \
	in_list(rc, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

bool mqtt_rc_valid_for(unsigned type, uint8_t rc)
{
	switch (type) {
	case MQTT_CONNACK:
		return IN(rc, 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
		          0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F);
	case MQTT_PUBACK:
	case MQTT_PUBREC:
		return IN(rc, 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99);
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		return IN(rc, 0x00, 0x92);
	case MQTT_SUBACK:
		return IN(rc, 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1,
		          0xA2);
	case MQTT_UNSUBACK:
		return IN(rc, 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91);
	case MQTT_DISCONNECT:
		return IN(rc, 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E,
		          0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C,
		          0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2);
	case MQTT_AUTH:
		return IN(rc, 0x00, 0x18, 0x19);
	default:
		return false;
	}
}
