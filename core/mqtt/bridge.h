/*
 * bridge.h — bridges (docs/bridges.md): a connection this node keeps to
 * another broker, run by one worker (hash of the bridge's name), carrying
 * topics out, in or both.
 *
 * A bridge is a persistent session of the node's own, "$bridge/NAME", made
 * at start (or found again after a restart) with a local subscription, with
 * no-local and retain-as-published, for each out rule. While the link is
 * down it is an offline session like any other: its queue holds QoS 1/2
 * messages within its limits (journaled with persistence on). The
 * connection to the remote is an MQTT connection of the mqtt room whose
 * roles are turned around: we send CONNECT and SUBSCRIBE and read CONNACK
 * and SUBACK; once the remote accepted, the session is taken over by the
 * connection exactly as a client's CONNECT takes over its session, so
 * deliveries, the in-flight window, DUP resend after a reconnect and the
 * QoS 2 state machine are the session code's. What the remote publishes
 * to us goes through handle_publish like a client's PUBLISH, with the
 * bridge's session as origin (no-local keeps it from going back out).
 *
 * Topics are rewritten at the edges: out, LOCAL_PREFIX becomes
 * REMOTE_PREFIX as the PUBLISH is encoded; in, REMOTE_PREFIX becomes
 * LOCAL_PREFIX before routing.
 *
 * Only the bridge's worker touches its state.
 */
#ifndef STARLING_CORE_BRIDGE_H
#define STARLING_CORE_BRIDGE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"
#include "codec.h"

struct worker;
struct client;
struct broker;
struct session;

#define BRIDGE_ID_PREFIX "$bridge/" /* local client ids of bridges; refused to clients */

enum bridge_state {
	BRIDGE_WAITING = 0, /* backing off until the next dial */
	BRIDGE_CONNECTING,  /* dialled, or CONNECT sent: waiting for the CONNACK */
	BRIDGE_UP,          /* the remote accepted: the session is attached */
	BRIDGE_STATES
};

/* One bridge's figures for /metrics, written by its worker (and a queue
 * drop by whichever worker holds its session), read by the ops thread:
 * relaxed atomics, one writer per field but `dropped`. */
struct bridge_pub {
	_Atomic uint64_t state;    /* enum bridge_state */
	_Atomic uint64_t connects; /* connections the remote accepted */
	_Atomic uint64_t failures; /* dials, handshakes or CONNECTs that did not get there */
	_Atomic uint64_t queued;   /* messages in the session's queue, at the last sweep */
	_Atomic uint64_t inflight; /* sent and not acknowledged, at the last sweep */
	_Atomic uint64_t dropped;  /* by the queue's bounds */
	_Atomic uint64_t msgs[2];  /* [0] in from the remote, [1] out to it */
	_Atomic uint64_t bytes[2]; /* their payload bytes */
	_Atomic uint64_t rtt_us;   /* sampled round trips of PUBLISH -> PUBACK/PUBREC: sum */
	_Atomic uint64_t rtt_n;    /* and count */
};

/* Main thread, before the workers start: the bridges' figures, TLS
 * contexts and addresses (bridge_dns.h). 0, or -1 with err naming the
 * bridge and key. */
int bridges_prepare(struct broker *b, char *err, size_t err_len);
/* Main thread, after the workers stopped: what bridges_prepare made. */
void bridges_release(struct broker *b);

/* The worker that runs bridge i. */
unsigned bridge_worker(const struct config *cfg, unsigned i, unsigned workers);

/* The worker's bridges: set up (mqtt_init), their sessions made or found
 * and the first dial planned (the worker's start, once its journal runs),
 * freed (mqtt_fini). */
int bridges_init(struct worker *w);
void bridges_start(struct worker *w);
void bridges_fini(struct worker *w);
/* Each sweep: dial what is due, ping what is idle. */
void bridges_tick(struct worker *w);

/* The queue bounds of session s: a bridge's own (bridge.NAME.queue_*), or
 * the node's. Any worker (the configuration is read-only). */
struct queue_limits {
	uint32_t messages;
	uint64_t bytes;
	enum queue_overflow policy;
	int bridge; /* the index of the bridge whose session it is; -1: a client's */
};
/* n messages of a bridge's session were dropped by its bounds (counted). */
void bridge_dropped(struct worker *w, const struct queue_limits *lim, unsigned n);
void queue_limits_of(const struct config *cfg, const struct session *s, struct queue_limits *out);

/* Its connect completed (transport opened()): send CONNECT. */
void bridge_opened(struct worker *w, struct client *cl);
/* The remote's first packet (CONNACK, or anything else: a failure). */
void bridge_connack(struct worker *w, struct client *cl, const struct mqtt_packet *p,
                    enum mqtt_rc rc);
/* The session is attached to the connection: subscribe at the remote. */
void bridge_attached(struct worker *w, struct client *cl);
/* A packet only a server sends (SUBACK, UNSUBACK, PINGRESP, DISCONNECT). */
void bridge_server_packet(struct worker *w, struct client *cl, const struct mqtt_packet *p);
/* The connection is being freed: plan the next dial. */
void bridge_conn_gone(struct worker *w, struct client *cl);
/* Out: the topic the remote gets for a local topic (into buf, cap bytes);
 * the topic unchanged when no rule's prefix applies or it does not fit. */
struct mqtt_view bridge_topic_out(const struct worker *w, const struct client *cl,
                                  struct mqtt_view topic, char *buf, size_t cap);
/* A PUBLISH went into the connection's outbox (resends included:
 * counted out), and the remote's PUBACK/PUBREC for a packet id arrived:
 * one QoS 1/2 PUBLISH is timed at a time (the round trip of
 * acknowledgements, sampled as TCP samples its RTT). */
void bridge_sent(struct worker *w, const struct client *cl, const struct mqtt_publish *p);
void bridge_acked(struct worker *w, const struct client *cl, uint8_t type, uint16_t pid);
/* A PUBLISH came from the remote: counted in. */
void bridge_received(struct worker *w, const struct client *cl, uint32_t payload_bytes);
/* In: the local topic for one from the remote; false: no in rule matches
 * it (dropped, counted). */
bool bridge_topic_in(const struct worker *w, const struct client *cl, struct mqtt_view topic,
                     char *buf, size_t cap, struct mqtt_view *out);

#endif
