/*
 * swim.h — cluster membership and failure detection: SWIM (Das, Gupta,
 * Motivala, DSN 2002) with Lifeguard's refinements (arXiv 1707.00788), with
 * hashicorp/memberlist's behaviour and parameters (../shared/cluster-notes.md
 * §3, §8.1). The wire format is proto/membership.proto.
 *
 * A pure state machine: it does no I/O, reads no clock and starts no
 * thread. The caller owns the socket and the clock:
 *
 *     s = swim_new(&params, &self);
 *     swim_join(s, now, seeds, n);          // and again whenever DNS changes
 *     loop:
 *         for each datagram received:  swim_receive(s, now, from, bytes, len);
 *         if (now >= swim_next_deadline_ms(s)) swim_tick(s, now);
 *         while (swim_next_send(s, &d)) send d.bytes to d.to (copy first);
 *         while (swim_next_event(s, &ev)) act on ev;
 *         sleep until swim_next_deadline_ms(s) or a datagram arrives;
 *
 * Time is monotonic milliseconds, never going back. One thread owns an
 * instance; nothing is shared between instances, so a test runs many in one
 * process. Every queue is bounded (struct swim_params) and what does not
 * fit is counted (struct swim_counters), never grown.
 *
 * Identity: a member is a name (unique in the cluster, e.g. the pod name)
 * plus a boot epoch the caller chooses per process start (random 64 bits or
 * a persisted counter). A member heard with a newer epoch replaces its old
 * record at once (SWIM_EV_RESTARTED); messages of an older epoch are
 * dropped. Within an epoch, incarnation numbers order what is said about a
 * member, as in SWIM.
 */
#ifndef STARLING_CLUSTER_SWIM_H
#define STARLING_CLUSTER_SWIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SWIM_NAME_MAX            64    /* bytes of a member name */
#define SWIM_ADDRESS_MAX         64    /* bytes of an "ip:port" address */
#define SWIM_CLUSTER_MAX         64    /* bytes of the cluster name */
#define SWIM_PAYLOAD_MAX         256   /* bytes of the piggybacked payload */
#define SWIM_SECRET_MAX          64    /* bytes of the HMAC key */
#define SWIM_MEMBERS_MAX         1024  /* peers one instance knows, at most */
#define SWIM_SEEDS_MAX           16    /* addresses one swim_join remembers */
#define SWIM_HELPERS_MAX         8     /* indirect_checks, at most */
#define SWIM_PACKET_BYTES_MAX    1400  /* a probe or gossip datagram: one Ethernet frame */
#define SWIM_PUSH_PULL_BYTES_MAX 64000 /* a push-pull part: under UDP's 65,507 */
#define SWIM_DATAGRAM_BYTES_MAX  65536 /* received datagrams beyond are malformed */

enum swim_state {
	SWIM_ALIVE = 1,
	SWIM_SUSPECT = 2,
	SWIM_DEAD = 3, /* declared failed: the suspicion ran out */
	SWIM_LEFT = 4, /* left gracefully (swim_leave) */
};
#define SWIM_STATES 5

/*
 * Protocol parameters. swim_params_profile fills them; a caller may then
 * change any field (swim_new checks them with swim_params_invalid).
 * Intervals are scaled by the local health score (awareness) where noted.
 */
struct swim_params {
	uint32_t probe_interval_ms; /* one probe per period, x (health + 1) */
	uint32_t probe_timeout_ms;  /* direct ack wait before ping-req, x (health + 1) */
	uint32_t indirect_checks;   /* helpers asked to ping-req, <= SWIM_HELPERS_MAX */
	uint32_t suspicion_mult;    /* min suspicion = mult * max(1, log10 N) * probe interval */
	uint32_t suspicion_max_timeout_mult; /* max suspicion = this * min */
	uint32_t gossip_interval_ms;         /* a gossip round */
	uint32_t gossip_nodes;               /* members gossiped to per round */
	uint32_t gossip_to_the_dead_ms;      /* dead members still gossiped to, and counted in N */
	uint32_t retransmit_mult;            /* an update is sent mult * ceil(log10(N + 1)) times */
	uint32_t push_pull_interval_ms;      /* full-state exchange with one alive member */
	uint32_t reconnect_interval_ms;      /* push-pull with one dead member (heals partitions) */
	uint32_t join_retry_ms;              /* while alone, push-pull the seeds again */
	uint32_t awareness_max_multiplier;   /* health score is 0 .. this - 1 */
	uint32_t dead_forget_ms;             /* dead and left records are forgotten after this */
	uint32_t members_max;                /* peers kept, <= SWIM_MEMBERS_MAX */
	uint32_t events_max;                 /* events waiting for swim_next_event */
	uint32_t out_max;                    /* datagrams waiting for swim_next_send */
	uint32_t out_bytes_max;              /* their bytes */
};

/* Fill p for "lan" (memberlist's DefaultLANConfig) or "fast" (tests, CI on
 * loopback); 0, or -EINVAL for another name. The table is in README.md. */
int swim_params_profile(struct swim_params *p, const char *profile);

/* NULL when p is usable, else what is wrong with it. */
const char *swim_params_invalid(const struct swim_params *p);

/* Who this instance is. Strings are copied by swim_new. */
struct swim_node {
	const char *name;      /* 1..SWIM_NAME_MAX printable bytes, unique in the cluster */
	const char *address;   /* "ip:port" peers send to, 1..SWIM_ADDRESS_MAX bytes */
	uint64_t epoch;        /* this process's boot epoch: greater than any before it */
	const char *cluster;   /* 1..SWIM_CLUSTER_MAX bytes; other clusters are dropped */
	const uint8_t *secret; /* HMAC-SHA256 key, or NULL: no MAC */
	size_t secret_len;     /* 1..SWIM_SECRET_MAX when secret is set */
	uint64_t seed;         /* the PRNG's seed: the same seed, the same choices */
};

struct swim;

/* NULL when p or self is invalid, or out of memory. */
struct swim *swim_new(const struct swim_params *p, const struct swim_node *self);
void swim_free(struct swim *s);

/*
 * Contact seeds: a push-pull (join) to each address other than our own
 * and other than a live member's (so re-joining once in costs nothing).
 * The caller resolves names (a Kubernetes headless Service) and may call
 * this again whenever it likes; the last list (at most SWIM_SEEDS_MAX) is
 * retried every join_retry_ms while no other member is alive. Returns the
 * seeds contacted.
 */
size_t swim_join(struct swim *s, uint64_t now_ms, const char *const *addresses, size_t n);

/* Run what is due at now_ms: probes and their timeouts, suspicions that
 * ran out, gossip, push-pull, reconnects, join retries, forgetting. */
void swim_tick(struct swim *s, uint64_t now_ms);

/* When swim_tick must run next (absolute ms); ask again after every
 * swim_tick, swim_receive, swim_join, swim_probe_now or swim_leave. */
uint64_t swim_next_deadline_ms(const struct swim *s);

/* Why a received datagram was not accepted (counted in swim_counters), and
 * where the instance refused to grow. */
enum swim_drop {
	SWIM_DROP_NONE = 0,     /* accepted */
	SWIM_DROP_MALFORMED,    /* does not decode, or a value is out of bounds */
	SWIM_DROP_AUTH,         /* MAC missing or wrong, or present where we have no secret */
	SWIM_DROP_CLUSTER,      /* another cluster's */
	SWIM_DROP_VERSION,      /* a protocol version we do not speak */
	SWIM_DROP_SELF,         /* claims our own name */
	SWIM_DROP_STALE_EPOCH,  /* from an older epoch of a member we know */
	SWIM_DROP_OUT_FULL,     /* an outgoing datagram: out_max or out_bytes_max reached */
	SWIM_DROP_MEMBERS_FULL, /* a new member: members_max live members known */
	SWIM_DROP_RELAYS_FULL,  /* a ping-req: too many indirect probes in flight for others */
};
#define SWIM_DROP_REASONS 10

/* Hand in one received datagram; from_address is its source as the socket
 * saw it ("ip:port", where answers go; NULL: the address it claims). */
enum swim_drop swim_receive(struct swim *s, uint64_t now_ms, const char *from_address,
                            const uint8_t *bytes, size_t len);

/* One datagram to send. to and bytes stay valid until the next call into
 * this instance: an asynchronous sender copies them. */
struct swim_datagram {
	const char *to; /* "ip:port" */
	const uint8_t *bytes;
	size_t len; /* <= SWIM_PACKET_BYTES_MAX, push-pull parts <= SWIM_PUSH_PULL_BYTES_MAX */
};
bool swim_next_send(struct swim *s, struct swim_datagram *out);

/*
 * The caller saw a broken link to name (its TCP connection failed): probe
 * it now, outside the round-robin. Only the probe's own outcome counts, so
 * a broken link alone never declares anyone dead. 0; -ENOENT: no alive or
 * suspect member of that name; -EALREADY: being probed; -EBUSY: too many
 * probes in flight; -ESHUTDOWN: we left.
 */
int swim_probe_now(struct swim *s, uint64_t now_ms, const char *name);

/*
 * Leave gracefully: gossip "left" at our incarnation, sent at once to every
 * alive or suspect member (at most 64; gossip carries it further), so peers
 * see LEFT within one gossip round, never DEAD. Afterwards the instance
 * stops probing and answers only to spread the news; drain swim_next_send
 * now, and tick for a gossip interval or two if there is time.
 */
void swim_leave(struct swim *s, uint64_t now_ms);

/* The opaque payload carried on our pings, acks and push-pulls (peers get
 * SWIM_EV_PAYLOAD when it changes). 0, or -EMSGSIZE beyond SWIM_PAYLOAD_MAX. */
int swim_set_payload(struct swim *s, const uint8_t *bytes, size_t len);

enum swim_event_type {
	SWIM_EV_JOINED = 1,    /* first seen alive (or again after it was forgotten) */
	SWIM_EV_SUSPECT = 2,   /* alive -> suspect */
	SWIM_EV_ALIVE = 3,     /* suspect, dead or left -> alive: refuted or recovered */
	SWIM_EV_DEAD = 4,      /* -> dead: drop what it owned */
	SWIM_EV_LEFT = 5,      /* -> left gracefully */
	SWIM_EV_RESTARTED = 6, /* a new epoch replaced the record: drop all of epoch_before */
	SWIM_EV_PAYLOAD = 7,   /* its payload changed (or was first heard) */
};

struct swim_event {
	enum swim_event_type type;
	char name[SWIM_NAME_MAX + 1];
	char address[SWIM_ADDRESS_MAX + 1];
	uint64_t epoch;        /* the member's epoch after the event */
	uint64_t epoch_before; /* RESTARTED: the epoch replaced; else equal to epoch */
	uint32_t incarnation;
	uint16_t payload_len; /* PAYLOAD: bytes in payload */
	uint8_t payload[SWIM_PAYLOAD_MAX];
};
bool swim_next_event(struct swim *s, struct swim_event *out);

/* A peer as this instance sees it (the instance itself is not listed). */
struct swim_member_info {
	const char *name;    /* valid until the next call that changes the instance */
	const char *address; /* likewise */
	uint64_t epoch;
	uint32_t incarnation;
	enum swim_state state;
	uint64_t state_since_ms; /* when the state last changed */
	uint32_t rtt_ms;         /* last direct probe's round trip; UINT32_MAX: none yet */
};

size_t swim_member_count(const struct swim *s, enum swim_state state);
/* Iterate: *cursor = 0 first; false when there are no more. */
bool swim_member_next(const struct swim *s, size_t *cursor, struct swim_member_info *out);
bool swim_member_get(const struct swim *s, const char *name, struct swim_member_info *out);

struct swim_counters {
	uint64_t packets_received;       /* datagrams handed to swim_receive */
	uint64_t packets_sent;           /* datagrams queued for sending */
	uint64_t probes_sent;            /* direct pings of our probes */
	uint64_t acks_received;          /* acks that completed one of our probes */
	uint64_t probes_failed;          /* probes that ended without an ack */
	uint64_t indirect_probes_sent;   /* ping-reqs sent to helpers */
	uint64_t indirect_probes_served; /* ping-reqs we probed for others */
	uint64_t nacks_sent;
	uint64_t nacks_received;
	uint64_t suspicions_raised;  /* members we suspected from our own probe */
	uint64_t refutations;        /* times we denied a suspicion or death of ourselves */
	uint64_t gossip_sent;        /* gossip datagrams */
	uint64_t push_pulls_sent;    /* exchanges started: joins, periodic, reconnects */
	uint64_t updates_stale;      /* updates about an older epoch, ignored */
	uint64_t pings_misaddressed; /* pings for another name, not answered */
	uint64_t self_conflicts;     /* our name claimed with a newer epoch: another process? */
	uint64_t dropped[SWIM_DROP_REASONS];
	uint64_t events_dropped; /* events_max were waiting */
};
const struct swim_counters *swim_counters(const struct swim *s);

/* Lifeguard's local health score, 0 (healthy) .. awareness_max_multiplier - 1. */
unsigned swim_health_score(const struct swim *s);
uint32_t swim_incarnation(const struct swim *s);

const char *swim_state_name(enum swim_state st);
const char *swim_event_name(enum swim_event_type t);
const char *swim_drop_name(enum swim_drop d);

/* The formulas, for tests and for documentation (memberlist util.go,
 * suspicion.go). nodes counts this instance. */
uint64_t swim_suspicion_min_ms(const struct swim_params *p, size_t nodes);
/* timeout = max - log(n + 1) / log(k + 1) * (max - min), never below min;
 * min when k is 0. */
uint64_t swim_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, unsigned k,
                                   unsigned confirmations);
unsigned swim_retransmit_limit(const struct swim_params *p, size_t nodes);

#endif
