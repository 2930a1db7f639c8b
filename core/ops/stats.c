/*
 * stats.c — publishing a worker's statistics to other threads and the small
 * classifications its counters are indexed by. stats_publish runs on the
 * owning worker only; stats_read on any thread (see stats.h for why relaxed
 * word-by-word copies are enough).
 */
#include "ops/stats.h"

#include "mqtt.h"

#include <string.h>

_Static_assert(sizeof(struct worker_stats) % sizeof(uint64_t) == 0,
               "struct worker_stats must be whole words");

/* 10 us .. 1 s: a healthy turn is tens of microseconds; a turn of
 * milliseconds means a burst of work (or a blocked worker) that delays
 * every connection on it. */
const uint64_t stats_loop_bounds_ns[STATS_LOOP_BUCKETS - 1] = {
    10000,   25000,   50000,    100000,   250000,    500000,     1000000,
    2500000, 5000000, 10000000, 25000000, 100000000, 1000000000,
};

void stats_publish(struct stats_pub *p, const struct worker_stats *s)
{
	const unsigned char *src = (const unsigned char *)s;
	for (size_t i = 0; i < STATS_WORDS; i++) {
		uint64_t v;
		memcpy(&v, src + i * sizeof(v), sizeof(v));
		atomic_store_explicit(&p->word[i], v, memory_order_relaxed);
	}
}

void stats_read(const struct stats_pub *p, struct worker_stats *out)
{
	unsigned char *dst = (unsigned char *)out;
	for (size_t i = 0; i < STATS_WORDS; i++) {
		/* The cast drops const only for C11's atomic_load signature. */
		uint64_t v =
		    atomic_load_explicit((_Atomic uint64_t *)&p->word[i], memory_order_relaxed);
		memcpy(dst + i * sizeof(v), &v, sizeof(v));
	}
}

void stats_add(struct worker_stats *out, const struct worker_stats *in)
{
	unsigned char *o = (unsigned char *)out;
	const unsigned char *n = (const unsigned char *)in;
	for (size_t i = 0; i < STATS_WORDS; i++) {
		uint64_t a, b;
		memcpy(&a, o + i * sizeof(a), sizeof(a));
		memcpy(&b, n + i * sizeof(b), sizeof(b));
		a += b;
		memcpy(o + i * sizeof(a), &a, sizeof(a));
	}
}

unsigned stats_connack_slot(unsigned rc)
{
	if (rc == MQTT_RC_SUCCESS)
		return 0;
	if (rc >= 0x80 && rc <= 0x9F)
		return 1 + (unsigned)(rc - 0x80);
	return STATS_CONNACK_SLOTS - 1;
}

unsigned stats_connack_code(unsigned slot)
{
	if (slot == 0)
		return 0;
	if (slot < STATS_CONNACK_SLOTS - 1)
		return 0x80 + slot - 1;
	return 0xFF;
}

unsigned stats_loop_bucket(uint64_t busy_ns)
{
	unsigned i = 0;
	while (i < STATS_LOOP_BUCKETS - 1 && busy_ns > stats_loop_bounds_ns[i])
		i++;
	return i;
}

enum close_reason stats_close_reason_of(unsigned rc)
{
	switch (rc) {
	case MQTT_RC_SUCCESS:
	case MQTT_RC_DISCONNECT_WITH_WILL:
		return CLOSE_CLIENT_DISCONNECT;
	case MQTT_RC_KEEP_ALIVE_TIMEOUT:
		return CLOSE_KEEPALIVE_TIMEOUT;
	case MQTT_RC_SESSION_TAKEN_OVER:
		return CLOSE_TAKEN_OVER;
	case MQTT_RC_SERVER_SHUTTING_DOWN:
		return CLOSE_SHUTDOWN;
	case MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED:
	case MQTT_RC_PACKET_TOO_LARGE:
	case MQTT_RC_QUOTA_EXCEEDED:
	case MQTT_RC_MESSAGE_RATE_TOO_HIGH:
	case MQTT_RC_CONNECTION_RATE_EXCEEDED:
		return CLOSE_LIMIT;
	case MQTT_RC_UNSPECIFIED_ERROR:
	case MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR:
	case MQTT_RC_SERVER_UNAVAILABLE:
	case MQTT_RC_SERVER_BUSY:
		return CLOSE_SERVER_ERROR;
	default:
		return CLOSE_PROTOCOL_ERROR;
	}
}

const char *stats_close_reason_name(enum close_reason r)
{
	static const char *const names[CLOSE_REASON_COUNT] = {
	    [CLOSE_UNSET] = "unknown",
	    [CLOSE_CLIENT_DISCONNECT] = "client_disconnect",
	    [CLOSE_PEER_CLOSED] = "peer_closed",
	    [CLOSE_SOCKET_ERROR] = "socket_error",
	    [CLOSE_CONNECT_TIMEOUT] = "connect_timeout",
	    [CLOSE_CONNECT_REFUSED] = "connect_refused",
	    [CLOSE_KEEPALIVE_TIMEOUT] = "keep_alive_timeout",
	    [CLOSE_PROTOCOL_ERROR] = "protocol_error",
	    [CLOSE_TAKEN_OVER] = "session_taken_over",
	    [CLOSE_LIMIT] = "limit_exceeded",
	    [CLOSE_SERVER_ERROR] = "server_error",
	    [CLOSE_SHUTDOWN] = "server_shutting_down",
	    [CLOSE_TLS_HANDSHAKE] = "tls_handshake_failed",
	};
	return (unsigned)r < CLOSE_REASON_COUNT ? names[r] : "unknown";
}

const char *stats_tls_fail_name(enum tls_fail f)
{
	static const char *const names[TLS_FAIL_COUNT] = {
	    [TLS_FAIL_NOT_TLS] = "not_tls",
	    [TLS_FAIL_VERSION] = "protocol_version",
	    [TLS_FAIL_NO_CERT] = "no_client_cert",
	    [TLS_FAIL_CERT_UNTRUSTED] = "client_cert_untrusted",
	    [TLS_FAIL_CERT_EXPIRED] = "client_cert_expired",
	    [TLS_FAIL_CERT_INVALID] = "client_cert_invalid",
	    [TLS_FAIL_PEER_ALERT] = "client_alert",
	    [TLS_FAIL_NO_SHARED_CIPHER] = "no_shared_cipher",
	    [TLS_FAIL_TIMEOUT] = "timeout",
	    [TLS_FAIL_CLOSED] = "closed",
	    [TLS_FAIL_OTHER] = "other",
	};
	return (unsigned)f < TLS_FAIL_COUNT ? names[f] : "other";
}
