/*
 * session.h — the MQTT session state of one client (§4.1 of 5.0): its
 * subscriptions, outbound QoS 1/2 messages in flight, messages queued while
 * the window is full or the client is offline, inbound QoS 2 packet ids
 * awaiting PUBREL, and the will.
 *
 * Owned by exactly one worker at a time (the one holding the connection, or
 * the one it was last on); only that worker's thread touches it. On takeover
 * the whole struct moves to the new worker in a mailbox message.
 *
 * This file is the pure bookkeeping: no I/O, no clock. Every collection has a
 * limit given by the caller; reaching it is an explicit outcome.
 */
#ifndef STARLING_CORE_SESSION_H
#define STARLING_CORE_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "route/msg.h"
#include "route/subidx.h"
#include "session/sess_id.h"

enum infl_state {
	INFL_WAIT_ACK = 1,  /* PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2) */
	INFL_WAIT_COMP = 2, /* PUBREL sent, awaiting PUBCOMP (QoS 2) */
};

/* One outbound QoS 1/2 message the client has not finished acknowledging. */
struct inflight {
	struct msg *m;   /* held until PUBACK / PUBREC; NULL while awaiting PUBCOMP */
	uint32_t sub_id; /* subscription identifier to send, 0 = none */
	uint16_t pid;    /* packet identifier */
	uint8_t qos;     /* 1 or 2: the QoS it was sent with */
	uint8_t state;   /* enum infl_state; 0 once finished */
	bool retain;     /* retain flag as sent */
	bool shared;     /* came through a shared subscription: if the session
	                  * ends unacknowledged, the group gets it back */
	bool journaled;  /* the journal holds it for this session (m->jstamp):
	                  * when the session is done with it, it says so */
};

/* A message waiting for room in the window, or for the client to return. */
struct queued {
	struct msg *m;
	uint32_t sub_id;
	uint8_t qos;
	bool retain;
	bool shared;    /* as in struct inflight */
	bool journaled; /* as in struct inflight */
};

/* How a message is delivered (the flags of session_infl_add/enqueue). */
#define DELIV_RETAIN    0x01 /* with the retain flag */
#define DELIV_SHARED    0x02 /* through a shared subscription */
#define DELIV_JOURNALED 0x04 /* the journal holds it for this session (persist/msg_journal.h) */
#define DELIV_ALL       0x07

static inline uint8_t infl_flags(const struct inflight *f)
{
	return (uint8_t)((f->retain ? DELIV_RETAIN : 0) | (f->shared ? DELIV_SHARED : 0) |
	                 (f->journaled ? DELIV_JOURNALED : 0));
}

static inline uint8_t queued_flags(const struct queued *q)
{
	return (uint8_t)((q->retain ? DELIV_RETAIN : 0) | (q->shared ? DELIV_SHARED : 0) |
	                 (q->journaled ? DELIV_JOURNALED : 0));
}

/* A subscription as the session remembers it (to remove or move it). */
struct sess_sub {
	char *filter;        /* NUL-terminated copy, as subscribed ($share/... kept) */
	uint16_t filter_len; /* bytes */
	struct sub_opts opts;
};

struct session {
	/* Grouped by size so nothing pads: 160 bytes, a jemalloc size class. */
	char *client_id;        /* NUL-terminated */
	uint64_t expires_at_ms; /* while offline: when it ends; 0 while online */
	struct sess_sub *subs;  /* subscriptions, unordered */
	struct inflight *infl;  /* ring in send order, then its packet-id index (see session.c) */
	struct queued *q;       /* ring buffer of queued messages */
	uint64_t q_bytes;       /* sum of queued messages' size_bytes */
	uint16_t *rx_qos2;      /* inbound QoS 2 ids received, PUBREL pending */
	uint8_t *will;          /* the will as an encoded 5.0 PUBLISH, or NULL */
	uint64_t will_at_ms;    /* when a delayed will fires; 0 = not pending */

	struct sess_id id;  /* where it lives; changes on handover */
	uint32_t conn_slot; /* the attached connection, when online */
	uint32_t conn_gen;
	uint32_t expiry_s; /* Session Expiry Interval; 0: ends with the connection */
	uint32_t sub_count;
	uint32_t sub_cap;
	uint32_t infl_head;  /* sequence number of the oldest entry */
	uint32_t infl_tail;  /* sequence number after the newest */
	uint32_t infl_cap;   /* ring entries, a power of two (0: none) */
	uint32_t infl_count; /* entries not yet finished */
	uint32_t q_head;     /* index of the oldest queued */
	uint32_t q_len;
	uint32_t q_cap; /* allocated entries (power of two) */
	uint32_t rx_qos2_count;
	uint32_t rx_qos2_cap;
	uint32_t will_len;      /* bytes */
	uint32_t will_delay_s;  /* Will Delay Interval */
	uint16_t client_id_len; /* bytes */
	uint16_t next_pid;      /* next packet identifier to try, 1..65535 */
	uint8_t version;        /* protocol level of the last connection */
	bool online;            /* a connection is attached */
};

struct session *session_new(const uint8_t *client_id, uint16_t len, struct sess_id id);

/* The user name the session's client connected with (false: no memory). */
bool session_set_username(struct session *s, const uint8_t *user, size_t len);
/* That user name, NUL-terminated, or NULL for an anonymous client. */
const char *session_username(const struct session *s, size_t *len);

/* Release everything, including each held message reference. */
void session_free(struct session *s);

/* Subscriptions: add or replace (1 added, 0 replaced, -1 no memory or over max). */
int session_sub_add(struct session *s, struct mqtt_view filter, struct sub_opts opts, uint32_t max);
/* The options of s's subscription to filter; NULL when it has none. */
const struct sub_opts *session_sub_opts(const struct session *s, struct mqtt_view filter);
bool session_sub_remove(struct session *s, struct mqtt_view filter);

/*
 * Outbound flow. session_infl_add() assigns a free packet identifier and
 * takes a reference to m (flags: DELIV_*); returns the id, or 0 when the window (window
 * entries) is full.
 */
uint16_t session_infl_add(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                          uint32_t sub_id, uint32_t window);

/* Recovery (persist/recover.h): a journaled QoS 2 delivery whose PUBREC
 * came before the restart: PUBREL of pid is owed (sent again on resume).
 * false when pid is in flight already or memory ran out. */
bool session_owe_pubrel(struct session *s, uint16_t pid);
/* Recovery: a journaled QoS 2 delivery that went out under pid before the
 * restart: in flight again under it (sent again with DUP on resume). false
 * when pid is in flight already or memory ran out. Takes a reference. */
bool session_resend_inflight(struct session *s, struct msg *m, uint16_t pid, uint8_t qos,
                             uint8_t flags, uint32_t sub_id);

/* Find the unfinished entry for a packet identifier, or NULL. O(1). */
struct inflight *session_infl_find(struct session *s, uint16_t pid);

/* Walk unfinished entries in send order: start with *seq = s->infl_head. */
struct inflight *session_infl_next(struct session *s, uint32_t *seq);

/*
 * An acknowledgement arrived. Returns true when it matched an entry in the
 * right state: PUBACK completes QoS 1; PUBREC moves QoS 2 to awaiting
 * PUBCOMP (releasing the message); PUBCOMP completes it.
 */
bool session_infl_ack(struct session *s, uint8_t packet_type, uint16_t pid);

/* Told of each message the journal holds for the session (DELIV_JOURNALED)
 * that a queue limit dropped: persistence writes that the session is done
 * with it, or it would come back after a restart. */
struct drop_sink {
	void (*dropped)(void *ctx, const struct session *s, const struct msg *m);
	void *ctx;
};

/*
 * Queue a message (takes a reference when kept). At a limit the policy
 * decides: drop the oldest queued message or this one. Returns the number of
 * messages dropped (0, 1 or, with a limit of 0, 2); the journaled ones go
 * to sink too (NULL: nobody).
 */
unsigned session_enqueue(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                         uint32_t sub_id, uint32_t max_messages, uint64_t max_bytes,
                         enum queue_overflow policy, const struct drop_sink *sink);

/* Take the oldest queued message (its reference passes to the caller). */
bool session_dequeue(struct session *s, struct queued *out);

/* Drop every queued message whose expiry passed; returns how many. */
unsigned session_drop_expired(struct session *s, uint64_t now_ms);

/* Inbound QoS 2: remember id until PUBREL. false when already present or full. */
bool session_rx_qos2_add(struct session *s, uint16_t pid, uint32_t max);
bool session_rx_qos2_has(const struct session *s, uint16_t pid);
bool session_rx_qos2_remove(struct session *s, uint16_t pid);

/* Forget in-flight state that a clean start discards (subscriptions stay). */
void session_clear_messages(struct session *s);

/*
 * The session on a connection, and between connections. These are the only
 * writers of the fields they name; mqtt/lifecycle.c decides when.
 */
/* s now lives at id (its slot in a worker's table: sessions.c). */
void session_set_id(struct session *s, struct sess_id id);
/* s moved to the id `to` (a takeover): offline until it is adopted. */
void session_moved(struct session *s, struct sess_id to);
/* A connection (slot, generation on the session's worker) attached: online,
 * neither expiring nor holding a delayed will. */
void session_attach(struct session *s, uint32_t conn_slot, uint32_t conn_gen, uint8_t version);
/* The Session Expiry Interval (already capped by session_expiry_max_s). */
void session_set_expiry(struct session *s, uint32_t expiry_s);
/* The will, an encoded 5.0 PUBLISH in malloc'd memory that s now owns, and
 * its Will Delay Interval. */
void session_set_will(struct session *s, uint8_t *will, uint32_t len, uint32_t delay_s);
/* Take the will out of s (NULL when it has none); the caller frees it. */
uint8_t *session_take_will(struct session *s, uint32_t *len);

/* What the caller does after session_detach. */
enum session_after {
	SESSION_KEPT = 0,     /* offline until it expires (or returns) */
	SESSION_ENDS = 1,     /* Session Expiry 0: it ends with its connection */
	SESSION_WILL_NOW = 2, /* publish its will now (with SESSION_ENDS: then end it) */
};
/* The connection went (§4.1, §3.1.2.11.2): offline from now_ms; keep_will
 * false deletes the will (a normal DISCONNECT [MQTT-3.1.2-10]). A delayed
 * will is scheduled. Returns SESSION_* bits. */
unsigned session_detach(struct session *s, uint64_t now_ms, bool keep_will);

/*
 * A reconnection resumed old's state in fresh (a new session on the new
 * connection's worker, whose index entries already name fresh): old's
 * subscriptions, messages in flight and queued, inbound QoS 2 ids and packet
 * id counter move into fresh and old is freed (its will is replaced by the
 * new CONNECT's). Mail that reached fresh before old did is queued after
 * old's own, within the queue limits; returns how many messages those
 * limits dropped.
 */
unsigned session_adopt(struct session *fresh, struct session *old, uint32_t max_messages,
                       uint64_t max_bytes, enum queue_overflow policy,
                       const struct drop_sink *sink);

/*
 * The session's stable binary form (the encoded session): what takeover
 * across workers carries today, and what the journal and a takeover across
 * nodes will write. Everything that survives a reconnection is in it:
 * client id, user name, expiry, protocol level, packet id counter,
 * subscriptions with their options, messages in flight (with their state)
 * and queued, inbound QoS 2 ids, the will and its delay. Messages are
 * written whole (msg_encode). Not in it: where the session lives (its id)
 * and whether a connection is attached — those belong to where it is
 * decoded. Format: session/codec.c; version byte first.
 *
 * session_encode returns a malloc'd buffer and its length in *len, or NULL
 * when out of memory. session_decode rebuilds a session (id as given,
 * offline) from len bytes, or returns NULL when they are not a valid
 * encoding (never reading past len) or memory ran out. now_ms turns
 * remaining times back into deadlines.
 */
uint8_t *session_encode(const struct session *s, uint64_t now_ms, size_t *len);
/* The same format without the messages: zero in flight, zero queued, zero
 * inbound QoS 2 ids (what the journal's session record keeps; the
 * messages have records of their own). */
uint8_t *session_encode_state(const struct session *s, uint64_t now_ms, size_t *len);
struct session *session_decode(const uint8_t *buf, size_t len, struct sess_id id, uint64_t now_ms);

/*
 * Outgoing topic aliases of one connection (5.0 §3.3.2.3.4): which topics
 * the client was told an alias for. Policy: a topic gets the next alias
 * the first time it is sent, until the client's Topic Alias Maximum (capped
 * by topic_alias_out_max) or ALIAS_OUT_TEXT_MAX bytes of topics are used;
 * then the set stays as it is. No eviction: replacing an alias costs the
 * whole topic again plus the alias, so under churn an LRU sends more bytes
 * than no alias at all, while a fixed set keeps what a device publishes
 * over and over (its first topics) cheap. Topics shorter than
 * ALIAS_OUT_TOPIC_MIN bytes gain nothing (an empty topic plus the alias
 * property is 5 bytes) and get none.
 *
 * It belongs to the connection, not the session: a new connection starts
 * with none (the client forgets them [MQTT-3.3.2-7]). Pure bookkeeping;
 * the caller decides when a PUBLISH carrying a new alias was really sent.
 */
#define ALIAS_OUT_TEXT_MAX  4096 /* bytes of aliased topics held per connection */
#define ALIAS_OUT_TOPIC_MIN 4    /* shorter topics are sent as they are */

struct alias_out;

/* A table for a client taking max aliases (max > 0); NULL: no memory. */
struct alias_out *alias_out_new(uint16_t max);
void alias_out_free(struct alias_out *a); /* NULL is fine */
/* The alias the client knows for topic, or 0. */
uint16_t alias_out_find(const struct alias_out *a, struct mqtt_view topic);
/* The alias topic (not known yet) would get, or 0 when it gets none. */
uint16_t alias_out_next(const struct alias_out *a, struct mqtt_view topic);
/* Remember that topic was sent with alias_out_next()'s alias. false: no
 * memory (harmless: the topic is sent in full until a later add). */
bool alias_out_add(struct alias_out *a, struct mqtt_view topic);

#endif
