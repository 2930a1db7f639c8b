/*
 * swim_int.h — the inside of a struct swim, shared by the files of
 * cluster/ that implement it (swim.c: the instance, its tables and queues;
 * swim_state.c: what updates do to members; swim_probe.c: probes, gossip,
 * push-pull and received packets; swim_wire.c: the bytes). Nothing outside
 * cluster/ includes it.
 *
 * Ownership: one thread owns a struct swim and everything in it.
 */
#ifndef STARLING_CLUSTER_SWIM_INT_H
#define STARLING_CLUSTER_SWIM_INT_H

#include "swim.h"

#define SWIM_PROBES_MAX       4  /* the period's probe + swim_probe_now's, in flight */
#define SWIM_RELAYS_MAX       64 /* ping-reqs we are probing for others, in flight */
#define SWIM_CONFIRMERS_MAX   9  /* the accuser + k confirmations (k <= suspicion_mult - 2 <= 8) */
#define SWIM_LEAVE_DIRECT_MAX 64 /* members told of our leave at once; gossip reaches the rest */
#define SWIM_UPDATES_MAX      64 /* updates in one received or sent packet, at most */
#define SWIM_RECORDS_MAX      4096 /* push-pull records in one received part, at most */
#define SWIM_VERSION          1    /* Packet.version */
#define SWIM_MAC_BYTES        32   /* HMAC-SHA256 */
#define NO_RTT                UINT32_MAX

/* ---- the wire (swim_wire.c) -------------------------------------------- */

/* A member record as it travels: a gossiped update or a push-pull record.
 * Strings point into a decoded packet or into the sender's tables. */
struct wire_member {
	const char *name;
	const char *address;
	const char *from; /* "" when none */
	uint64_t epoch;
	uint32_t incarnation;
	uint8_t state; /* enum swim_state */
};

/* One packet, decoded (strings point into the decoded message, valid until
 * wire_release) or to be encoded. */
struct wire_packet {
	const char *from;
	const char *from_address;
	uint64_t from_epoch;
	uint32_t from_incarnation;
	bool from_left;

	bool has_ping;
	uint32_t ping_seq;
	const char *ping_target;

	bool has_ack;
	uint32_t ack_seq;

	bool has_ping_req;
	uint32_t req_seq;
	const char *req_target;
	const char *req_target_address;
	bool req_nack;
	uint32_t req_nack_after_ms;

	bool has_nack;
	uint32_t nack_seq;

	bool has_push_pull;
	bool pp_reply;
	bool pp_join;
	uint32_t pp_part;
	uint32_t pp_parts;
	const struct wire_member *records; /* push-pull records */
	size_t records_len;

	const struct wire_member *updates; /* piggybacked gossip */
	size_t updates_len;

	bool has_payload;
	const uint8_t *payload;
	size_t payload_len;
};

/* Who we are on the wire: what every packet carries and checks. */
struct wire_keys {
	const char *cluster;
	const uint8_t *secret; /* NULL: no MAC */
	size_t secret_len;
};

/* Decode and check one datagram. SWIM_DROP_NONE: *out is filled and *hold
 * must go to wire_release; anything else: nothing to release. */
enum swim_drop wire_decode(const struct wire_keys *k, const uint8_t *bytes, size_t len,
                           struct wire_packet *out, void **hold);
void wire_release(void *hold);

/* Encoded size of p without its updates and records. */
size_t wire_base_size(const struct wire_keys *k, const struct wire_packet *p);
/* Bytes one record adds inside a repeated field (key, length, body). */
size_t wire_member_size(const struct wire_member *m);
/* A datagram's size for an encoded packet of packet_len bytes. */
size_t wire_datagram_size(const struct wire_keys *k, size_t packet_len);
/* The datagram for p, malloc'd; NULL when out of memory. */
uint8_t *wire_encode(const struct wire_keys *k, const struct wire_packet *p, size_t *len);

/* True for 1..max printable ASCII bytes (names and addresses end up in
 * logs and as socket addresses). */
bool wire_text_ok(const char *s, size_t max);

/* ---- the instance ------------------------------------------------------ */

/* An update waiting to be gossiped: one per member (a newer update about a
 * member replaces the older one, memberlist's named broadcasts). Its
 * content is the member's current record; from is who said so. */
struct bcast {
	bool pending;
	uint16_t transmits; /* times sent so far */
	uint64_t order;     /* when queued: among equal transmits, newer first */
	char from[SWIM_NAME_MAX + 1];
};

/* An update considered for a packet (bcast_take). */
struct bcast_cand {
	uint16_t transmits;
	uint64_t order;
	struct bcast *b;
	const struct member *m; /* NULL: ourselves */
};

/* Lifeguard's suspicion timer (memberlist suspicion.go): it starts at max
 * and shrinks toward min as independent confirmations arrive. */
struct suspicion {
	uint64_t start_ms;
	uint64_t deadline_ms;
	uint64_t min_ms;
	uint64_t max_ms;
	uint8_t k;                          /* confirmations that bring it down to min */
	uint8_t n;                          /* confirmations so far */
	uint8_t seen_len;                   /* entries in seen */
	uint64_t seen[SWIM_CONFIRMERS_MAX]; /* FNV-1a of who accused or confirmed */
};

struct member {
	bool used;
	char name[SWIM_NAME_MAX + 1];
	char address[SWIM_ADDRESS_MAX + 1];
	uint64_t epoch;
	uint32_t incarnation;
	uint8_t state;           /* enum swim_state */
	uint64_t state_since_ms; /* when state last changed */
	uint32_t rtt_ms;         /* last direct probe's round trip, NO_RTT: none */
	struct suspicion susp;   /* while SUSPECT */
	struct bcast bc;
	bool has_payload; /* a payload was heard from this epoch */
	uint16_t payload_len;
	uint8_t payload[SWIM_PAYLOAD_MAX];
};

/* One of our probes in flight. */
struct probe {
	bool active;
	bool regular;       /* the period's probe (else swim_probe_now's) */
	bool indirect_sent; /* the ping-reqs went out */
	uint32_t seq;
	uint32_t slot;  /* the member probed ... */
	uint64_t epoch; /* ... in this epoch: a restart voids the probe */
	uint64_t sent_ms;
	uint64_t timeout_ms;  /* absolute: no ack by then, ask helpers */
	uint64_t deadline_ms; /* absolute: no ack by then, the probe failed */
	uint8_t nacks_expected;
	uint8_t nacks;
};

/* A ping-req we serve: our ping to the target, the ack to pass back. */
struct relay {
	bool used;
	bool nack;                     /* the requester wants a nack if no ack comes */
	uint32_t seq;                  /* our ping's */
	uint32_t req_seq;              /* the requester's */
	uint64_t deadline_ms;          /* absolute: nack then */
	char to[SWIM_ADDRESS_MAX + 1]; /* the requester */
};

struct out_entry {
	char to[SWIM_ADDRESS_MAX + 1];
	uint8_t *bytes; /* malloc'd, owned by the queue */
	size_t len;
};

struct swim {
	struct swim_params p;
	char name[SWIM_NAME_MAX + 1];
	char address[SWIM_ADDRESS_MAX + 1];
	char cluster[SWIM_CLUSTER_MAX + 1];
	uint8_t secret[SWIM_SECRET_MAX];
	size_t secret_len;     /* 0: no secret */
	struct wire_keys keys; /* points into the fields above */
	uint64_t epoch;        /* ours */
	uint32_t incarnation;  /* ours */
	bool left;             /* swim_leave was called */
	struct bcast self_bc;  /* an update about ourselves to gossip */
	bool has_payload;
	uint16_t payload_len;
	uint8_t payload[SWIM_PAYLOAD_MAX];

	uint64_t rng;    /* xorshift64* state, never 0 */
	bool started;    /* timers were set from the first now_ms */
	uint64_t now_ms; /* the latest time handed in */
	unsigned health; /* Lifeguard awareness, 0 .. max - 1 */

	struct member *members; /* members_max slots */
	uint32_t members_used;
	uint32_t *index;     /* name -> slot + 1 (0: empty), linear probing */
	uint32_t index_mask; /* slots in index - 1 (a power of two >= 2 x members_max) */
	uint32_t *order;     /* probe order: used slots, shuffled each round */
	uint32_t order_len;
	uint32_t order_pos; /* next to probe */

	uint64_t next_probe_ms;
	uint64_t next_gossip_ms;
	uint64_t next_push_pull_ms;
	uint64_t next_reconnect_ms;
	uint64_t next_join_ms; /* UINT64_MAX: no seeds */
	uint64_t next_forget_ms;

	struct probe probes[SWIM_PROBES_MAX];
	uint32_t seq; /* last seq used by a ping */
	struct relay relays[SWIM_RELAYS_MAX];

	char seeds[SWIM_SEEDS_MAX][SWIM_ADDRESS_MAX + 1];
	size_t seeds_len;

	struct out_entry *out; /* ring of out_max */
	uint32_t out_head;
	uint32_t out_len;
	size_t out_bytes;         /* bytes in the ring */
	struct out_entry sending; /* the one swim_next_send handed out last */

	struct swim_event *events; /* ring of events_max */
	uint32_t ev_head;
	uint32_t ev_len;

	uint64_t bcast_order;     /* last bcast.order given */
	struct bcast_cand *cands; /* members_max + 1, bcast_take's scratch */
	struct swim_counters c;
};

/* swim.c */
void time_advance(struct swim *s, uint64_t now_ms);
uint64_t rng_next(struct swim *s);
uint32_t rng_below(struct swim *s, uint32_t n);
uint64_t name_hash(const char *name);
struct member *member_find(const struct swim *s, const char *name);
struct member *member_add(struct swim *s, const char *name);
struct member *member_by_address(const struct swim *s, const char *address);
uint32_t member_slot(const struct swim *s, const struct member *m);
void out_push(struct swim *s, const char *to, uint8_t *bytes, size_t len);
void event_push(struct swim *s, enum swim_event_type t, const struct member *m,
                uint64_t epoch_before);
/* A member that counts in N and gets gossip: alive, suspect, or dead for
 * less than gossip_to_the_dead_ms (memberlist's GossipToTheDeadTime). */
static inline bool member_counted(const struct swim *s, const struct member *m)
{
	return m->used && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT ||
	                   (m->state == SWIM_DEAD &&
	                    s->now_ms - m->state_since_ms <= s->p.gossip_to_the_dead_ms));
}

size_t nodes_estimate(const struct swim *s);

/* swim_state.c */
void health_add(struct swim *s, int delta);
uint64_t scaled_ms(const struct swim *s, uint32_t ms);
void apply_update(struct swim *s, const struct wire_member *u, bool merge);
void member_suspect(struct swim *s, struct member *m, uint32_t incarnation, const char *from);
void suspicions_expire(struct swim *s);
uint64_t suspicions_deadline_ms(const struct swim *s);
void bcast_member(struct swim *s, struct member *m, const char *from);
void bcast_self(struct swim *s);
void record_of(const struct swim *s, const struct member *m, struct wire_member *out);
void record_of_self(const struct swim *s, struct wire_member *out);
size_t bcast_take(struct swim *s, size_t budget, struct wire_member *out, size_t out_max,
                  bool count);
void payload_heard(struct swim *s, struct member *m, const uint8_t *p, size_t len);

/* swim_probe.c */
void header_of(const struct swim *s, struct wire_packet *p);
void send_packet(struct swim *s, const char *to, struct wire_packet *p, bool piggyback,
                 const struct wire_member *first);
void probe_start(struct swim *s, struct member *m, bool regular);
void probes_step(struct swim *s);
void relays_step(struct swim *s);
void gossip_round(struct swim *s);
void push_pull_send(struct swim *s, const char *to, bool join, bool reply);
enum swim_drop packet_handle(struct swim *s, const char *from_address, const struct wire_packet *p);

#endif
