/*
 * client.h — MQTT on a connection: what the protocol keeps per connection
 * (behind the transport's struct conn), and the mqtt room's entry points for
 * the loop (DESIGN.md "A node"; core/README.md walks a PUBLISH through them).
 *
 * The room: input.c frames and decodes what arrives and dispatches it to
 * one handle_<packet>.c per packet; output.c writes packets into the
 * outbox within their bounds and closes connections, with one map from
 * internal error to reason code and log line; deliver.c takes a
 * message from a plan to a session's connection or queue; lifecycle.c is a
 * session's life on a connection (attach, detach, will, end); takeover.c
 * moves a session to a new connection on any worker; timers.c is the sweep
 * (keep alive, connect timeouts, session expiry, delayed wills).
 *
 * Only the owning worker's thread touches a client.
 */
#ifndef STARLING_CORE_CLIENT_H
#define STARLING_CORE_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "codec.h"
#include "mqtt/bridge.h"
#include "ops/stats.h"
#include "route/msg.h"
#include "session/sess_id.h"
#include "transport/conn.h"

struct worker;
struct session;
struct acl;
struct completion;

enum client_auth {
	CLIENT_AUTH_NONE = 0, /* not checked (yet) */
	CLIENT_AUTH_PASSED,   /* the password matched: the re-read CONNECT goes on */
	CLIENT_AUTH_FAILED,   /* it did not: the re-read CONNECT is refused */
};

enum client_state {
	CLIENT_NEW = 0,       /* accepted; the first packet must be CONNECT */
	CLIENT_WAIT_AUTH,     /* CONNECT seen, kept in rx; its password is being checked */
	CLIENT_WAIT_TAKEOVER, /* CONNECT seen; waiting for a session from another worker */
	CLIENT_ACTIVE,        /* CONNACK sent */
};

/* A connection's topic aliases (5.0), both ways, allocated when the first is
 * used: one pointer in struct client for both keeps it in its size class. */
struct client_aliases {
	char **in;             /* inbound [1..cfg->topic_alias_max]; NULL until one is set */
	struct alias_out *out; /* outbound (session.h); NULL when the client takes none */
};

struct client {
	struct conn c;                  /* the bytes (transport); first, see conn_size */
	uint64_t deadline_ms;           /* connect timeout, or 1.5 x keep alive after the
	                                 * last packet; 0: none */
	uint8_t *rx;                    /* bytes of an incomplete packet */
	struct client_aliases *aliases; /* topic aliases both ways; NULL until one is used */
	struct session *sess;           /* attached session, once CONNACK is decided */
	struct session *pending;        /* CLIENT_WAIT_TAKEOVER: the session being set up */
	uint32_t rx_len;
	uint32_t rx_cap;
	uint32_t rx_since_ms;        /* low 32 bits of now_ms when rx's incomplete packet
	                              * began (or a packet last completed) */
	uint32_t client_max_packet;  /* the client's Maximum Packet Size; 0 = no limit */
	uint16_t keepalive_s;        /* negotiated; 0 = none */
	uint16_t client_receive_max; /* the client's Receive Maximum (5.0), else 65535 */
	uint16_t server_keepalive_s; /* 5.0 Server Keep Alive to send; 0 = none */
	uint8_t state;               /* enum client_state */
	uint8_t version;             /* protocol level; 0 until CONNECT */
	uint8_t auth;                /* enum client_auth: the password check's verdict */
	bool on_resume_list : 1;     /* buffered input waits for the loop's resume step */
	bool assigned_id : 1;        /* we chose the client id (5.0: tell the client) */
	bool expiry_capped : 1;      /* we lowered the session expiry (5.0: tell it) */
	bool clean_start : 1;        /* as the CONNECT asked */
	bool bridge_peer : 1;        /* its CONNECT had the bridge bit: all its subscriptions
	                              * are no-local (bridge.h) */
	bool bridge : 1;             /* a bridge's link, dialled by us (bridge.c sets it at
	                              * dial): asked per PUBLISH, so a bit, not the listener */
	uint8_t peer_max_qos : 2;    /* what it takes: 2, or a bridge remote's Maximum QoS */
};

_Static_assert(sizeof(struct client) <= 160, "a connection stays in jemalloc's 160-byte class");

static inline struct client *client_of(struct conn *c)
{
	return (struct client *)c; /* struct conn is the first member */
}

/* Is cl a bridge's connection (to a remote we dialled)? */
static inline bool client_is_bridge(const struct client *cl)
{
	return cl->bridge;
}

/* The mqtt room's part of a worker. */
struct mqtt_worker {
	const struct acl *acl;     /* this turn's ACL (auth_acl_acquire); NULL = none */
	uint64_t acl_gen;          /* its generation */
	struct client *in_process; /* the client whose input is being parsed: never nested */
	struct slot_ref *resume;   /* clients whose buffered input is read again at the
	                            * resume step (a password verdict or a session arrived) */
	uint32_t resume_len;
	uint32_t resume_cap;
	int verify_fd; /* eventfd: password verdicts wait (auth.h); -1: none */
	uint64_t verify_buf;
	struct bridge *bridges; /* the bridges this worker runs (bridge.h) */
	unsigned bridge_count;
};

/* Set up the room's part of w and what it registers with the transport and
 * the mail. 0, or -1 when out of memory. */
int mqtt_init(struct worker *w);
void mqtt_fini(struct worker *w);
/* What the transport calls (conn.h). */
extern const struct transport_ops mqtt_transport_ops;

/* The loop's steps. */
/* Each turn first: this turn's ACL (subscriptions a new ACL no longer
 * allows are removed). */
void mqtt_turn(struct worker *w);
/* Parse the buffered input of every client that may go on (resume list). */
void mqtt_resume_all(struct worker *w);
/* Deadlines of connections and sessions (every SWEEP_MS). */
void mqtt_sweep(struct worker *w);
/* Password verdicts arrived (OP_VERIFY). */
void mqtt_verify_done(struct worker *w, const struct completion *cqe);
/* Arm the verdicts' read (after the ring exists). */
void mqtt_start(struct worker *w);

/* Shutdown: publish every session's will; is a client owed nothing more;
 * tell every client the node stops (0x8B) and close it. */
void mqtt_publish_wills(struct worker *w);
bool mqtt_client_settled(const struct worker *w, const struct client *cl);
void mqtt_close_all(struct worker *w, enum mqtt_rc rc);

/* output.c */
/* Encode p into the client's outbox. false when it did not fit (the caller
 * decides; a client that cannot take its answers is closed). */
bool client_send(struct worker *w, struct client *cl, const struct mqtt_packet *p);
/* Close: a 5.0 DISCONNECT with rc first when rc != 0 and the protocol allows,
 * the session detached (its will published when will is true), then the
 * transport closes the connection. The one line per connection's end. */
void client_close(struct worker *w, struct client *cl, enum mqtt_rc rc, bool will);
/* The transport lost the connection on its own (transport_ops.lost). */
void client_lost(void *ctx, struct conn *c);
static inline bool client_closing(const struct client *cl)
{
	return cl->c.closing;
}
/* The client's id for a log line ("-" before CONNECT). */
const char *client_name(const struct client *cl);

/* The internal errors that end a connection: output.c maps each to its
 * reason code, close reason and log line. */
enum client_error {
	CE_FIRST_NOT_CONNECT, /* [MQTT-3.1.0-1]: detail: the packet's type */
	CE_MALFORMED,         /* the frame is invalid: detail: the reason */
	CE_BAD_PACKET,        /* a packet failed to decode: detail: "rc in TYPE" */
	CE_SECOND_CONNECT,    /* [MQTT-3.1.0-2] */
	CE_UNEXPECTED,        /* a server-to-client packet, or AUTH: detail: the type */
	CE_INPUT_TOO_MUCH,    /* more unparsed input than one packet */
	CE_INPUT_BUDGET,      /* the node's partial_packets_bytes_max is taken */
	CE_INPUT_NO_MEMORY,   /* no memory for its input */
	CE_PUBLISH_INVALID,   /* a PUBLISH the protocol forbids: rc given */
	CE_RECEIVE_MAXIMUM,   /* over its receive maximum [MQTT-3.3.4-8] */
	CE_NOT_READING,       /* its answers pass twice the outbox limit */
	CE_NO_ROOM,           /* its Maximum Packet Size leaves no room for an answer */
	CE_KEEP_ALIVE,        /* keep alive timeout */
	CE_NO_CONNECT,        /* no CONNECT within connect_timeout_ms */
	CE_HANDSHAKE_TIMEOUT, /* TLS handshake not finished within connect_timeout_ms */
	CE_PARTIAL_TIMEOUT,   /* a packet not finished within packet_receive_timeout_ms */
	CE_WRONG_ACK,         /* an acknowledgement of the wrong kind */
	CE_NO_MEMORY,         /* out of memory serving it */
	CE_COUNT
};
/* Close cl for e: its reason code (rc overrides where e takes one, else 0),
 * close reason, one rate-limited log line per error kind with detail. */
void client_fail(struct worker *w, struct client *cl, enum client_error e, enum mqtt_rc rc,
                 const char *detail_fmt, ...) __attribute__((format(printf, 5, 6)));

/* input.c */
void client_input(struct worker *w, struct client *cl, const uint8_t *data, uint32_t len);
/* A client that was waiting (password check, takeover) may go on: its
 * buffered input is parsed at the loop's resume step, never from inside the
 * handler that decided it (which may itself be parsing that input). */
void client_want_resume(struct worker *w, struct client *cl);
/* Free the client's receive buffer and take it off the node's budget. */
void client_rx_release(struct worker *w, struct client *cl);

/* handle_*.c: one decoded packet in, effects out */
void handle_connect(struct worker *w, struct client *cl, struct mqtt_packet *p, enum mqtt_rc rc);
void handle_publish(struct worker *w, struct client *cl, struct mqtt_publish *p);
void handle_puback(struct worker *w, struct client *cl, uint8_t type, struct mqtt_ack *a);
void handle_pubrel(struct worker *w, struct client *cl, struct mqtt_ack *a);
void handle_subscribe(struct worker *w, struct client *cl, struct mqtt_subscribe *s);
void handle_unsubscribe(struct worker *w, struct client *cl, struct mqtt_unsubscribe *u);
void handle_disconnect(struct worker *w, struct client *cl, struct mqtt_reason *r);

/* lifecycle.c */
/* The CONNECT is decided: attach s, send the CONNACK, resend and pump. */
void client_attach(struct worker *w, struct client *cl, struct session *s, bool present);
/* The connection goes: the session outlives it or ends (will as asked). */
void client_detach(struct worker *w, struct client *cl, bool will);
/* Publish s's will now (the session keeps going or ends after). */
void session_will_publish(struct worker *w, struct session *s);
/* End a session: its subscriptions everywhere, its shared messages back to
 * their groups, its client id, its slot. */
void session_end(struct worker *w, struct session *s);
/* A moved session no one adopts (its new connection died while waiting):
 * remove its index entries (they name s's id) and free it. */
void session_unindex_free(struct worker *w, struct session *s);
/* Shed optional CONNACK properties until it fits the client's Maximum
 * Packet Size; false: not even the bare CONNACK fits. */
bool connack_fit(const struct client *cl, struct mqtt_packet *a);
/* A new ACL: remove the subscriptions it no longer allows. */
void mqtt_acl_recheck(struct worker *w);
/* Persistence: the journal is to hold s's state (a persistent session on a
 * node with persistence on). */
bool session_journal_wanted(const struct worker *w, const struct session *s);
/* Persistence: s's state changed (created or resumed, subscriptions, gone
 * offline, will published): its record into the journal, or its end when
 * it is no longer persistent but the journal held it (resumed: it may have
 * been journaled on another worker before its takeover). Output sent after
 * this waits for the record (persist/barrier.h). false: the journal
 * refused it (logged). */
bool session_journal(struct worker *w, struct session *s, bool resumed);

/* takeover.c */
/* Take the session of client id `prev` over for cl (fresh set up, clean
 * start as asked): through the worker that owns it. */
void takeover_begin(struct worker *w, struct client *cl, struct session *fresh, struct sess_id prev,
                    bool clean_start);
/* Register the takeover's mail kinds. */
void takeover_init(struct worker *w);

/* deliver.c */
/* route_local_fn: deliver m to session `to` of this worker (ctx: worker). */
void deliver_local(void *ctx, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id);
/* drop_sink: a journaled message a queue limit dropped from s is done
 * with (ctx: worker); recovery would give it back otherwise. */
void queue_dropped(void *ctx, const struct session *s, const struct msg *m);
/* Send what fits of s's queue into its window. */
void session_pump(struct worker *w, struct session *s);
/* Resend s's unacknowledged messages (DUP) and PUBRELs on a new connection. */
void session_resend(struct worker *w, struct session *s);
/* A session is ending: its unacknowledged shared-subscription messages go
 * to another member of their group [MQTT 5.0 §4.8.2]. */
void shared_handoff(struct worker *w, struct session *s);

#endif
