/*
 * routes.h — the cluster's route tables (../shared/DESIGN.md "Routes";
 * ../shared/cluster-notes.md §1.1, §8.2): which filters each node has at
 * least one subscriber for. Each node is the only writer of its own routes
 * (EMQX's v3 "merge table" model): it numbers its changes, and every peer
 * holds a read-only copy that it replaces or advances only from what the
 * origin sent.
 *
 *   origin side (struct route_origin, one per node): the core's
 *   DELTA_FIRST / DELTA_LAST transitions (core/route/delta.h) come in as
 *   route_origin_add / route_origin_remove; each change gets the next
 *   sequence number of this boot epoch (at seq 0 the set is empty); the
 *   last log_max changes are kept so a peer that missed a few catches up
 *   by a delta, and any other peer gets a snapshot, read in chunks.
 *
 *   receiving side (struct route_peer, one per peer node): snapshots (in
 *   chunks, swapped in whole at the last one) and deltas (applied only in
 *   sequence; a gap applies nothing) move the copy forward; a new epoch,
 *   or the node declared dead or gone, drops the copy. Every change of the
 *   copy is reported through a callback, so the caller's index (the one
 *   that says which peer nodes a publish goes to, core/route/plan.h) is
 *   always equal to the copy: nothing is left behind.
 *
 *   digest: (origin, epoch, seq) entries in at most 256 bytes, the payload
 *   that cluster/swim.h piggybacks on probes (swim_set_payload,
 *   SWIM_EV_PAYLOAD). A node lists its own routes' epoch and seq first,
 *   then, for each peer, the epoch and seq of that peer's routes it has
 *   applied (epoch 0: it wants a snapshot). From a received digest an
 *   origin learns that a peer is behind on its routes
 *   (route_origin_catchup says with what to push it forward), and a node
 *   learns that it is itself behind (route_peer_behind).
 *
 * Pure: no I/O, no clock, no threads. One thread owns an instance; the
 * link (another file) carries snapshots and deltas as RouteSnapshot and
 * RouteDelta frames (link_wire.h), in order, origin to peer, never relayed.
 *
 * Limits: filters per node (origin and each copy), bytes per filter
 * (<= 65,535), changes and bytes in the origin's log; what does not fit is
 * refused and counted, never grown.
 */
#ifndef STARLING_CLUSTER_ROUTES_H
#define STARLING_CLUSTER_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "view.h"

#define ROUTE_NAME_MAX           64    /* bytes of a node name (= SWIM_NAME_MAX) */
#define ROUTE_FILTER_BYTES_MAX   65535 /* bytes of a filter: MQTT's u16 length */
#define ROUTE_DIGEST_BYTES_MAX   256   /* an encoded digest (= SWIM_PAYLOAD_MAX) */
#define ROUTE_DIGEST_ENTRIES_MAX 64    /* entries one digest decodes into, at most */

struct route_params {
	uint32_t filters_max;      /* filters one node's set holds: the origin's and each copy */
	uint32_t filter_bytes_max; /* bytes of one filter, 1..ROUTE_FILTER_BYTES_MAX */
	uint32_t log_max;          /* changes the origin keeps for catch-up by delta (0: none) */
	uint64_t log_bytes_max;    /* the filter bytes of those changes */
	uint64_t hash_seed;        /* the filter tables' hash seed: random, so clients cannot
	                            * choose colliding filters */
};

/* filters_max 1,048,576; filter_bytes_max 65,535; log_max 16,384 changes
 * in at most 4 MiB; hash_seed 0 (set it). */
void route_params_default(struct route_params *p);
/* NULL when p is usable, else what is wrong with it. */
const char *route_params_invalid(const struct route_params *p);

/* One numbered change: a filter's first subscriber on its origin (add) or
 * its last one gone. */
struct route_change {
	struct mqtt_view filter;
	bool add;
};

/* ---- the origin: this node's own routes --------------------------------- */

struct route_origin;

/* node: this node's name (1..ROUTE_NAME_MAX printable); epoch: its boot
 * epoch (> 0, as in swim.h). NULL when p or node is invalid, or out of
 * memory. */
struct route_origin *route_origin_new(const struct route_params *p, const char *node,
                                      uint64_t epoch);
void route_origin_free(struct route_origin *o);

/*
 * The filter got its first subscriber on this node (DELTA_FIRST) or lost
 * its last (DELTA_LAST). 1: the change is numbered route_origin_seq(o);
 * 0: nothing changed (already held / not held: counted as unmatched);
 * -EINVAL: not a filter of at most filter_bytes_max bytes; -ENOSPC:
 * filters_max held (add); -ENOMEM. Refusals are counted; a refused filter
 * is not advertised, so no other node forwards to it.
 */
int route_origin_add(struct route_origin *o, struct mqtt_view filter);
int route_origin_remove(struct route_origin *o, struct mqtt_view filter);

const char *route_origin_node(const struct route_origin *o);
uint64_t route_origin_epoch(const struct route_origin *o);
uint64_t route_origin_seq(const struct route_origin *o); /* the last change's number; 0: none */
uint32_t route_origin_count(const struct route_origin *o);
bool route_origin_has(const struct route_origin *o, struct mqtt_view filter);

enum route_catchup {
	ROUTE_CURRENT = 0,     /* the peer has everything */
	ROUTE_BY_DELTA = 1,    /* send route_origin_changes after *after_seq, in order */
	ROUTE_BY_SNAPSHOT = 2, /* send a snapshot (route_origin_snapshot_*) */
};

/*
 * How to bring a peer that has applied our routes up to peer_seq of
 * peer_epoch (from its digest; epoch 0: it asks for a snapshot) up to
 * date: by a delta when every change it lacks is still in the log (a peer
 * still on an older epoch of ours gets the changes from 1 on, if the log
 * has them, and drops the old epoch when it sees the new one), else by a
 * snapshot. What has already been sent and not yet applied is the
 * caller's to remember.
 */
enum route_catchup route_origin_catchup(const struct route_origin *o, uint64_t peer_epoch,
                                        uint64_t peer_seq, uint64_t *after_seq);

/*
 * The logged changes after after_seq, in order, into out: at most out_max
 * of them and bytes_max filter bytes (at least one change when any is
 * left, whatever its size). Returns the count (the first is numbered
 * after_seq + 1); 0 when after_seq is the last; -ERANGE when a change
 * after after_seq has left the log (or after_seq is ahead of us): send a
 * snapshot. The views stay valid until the next add or remove.
 */
int route_origin_changes(const struct route_origin *o, uint64_t after_seq, struct route_change *out,
                         size_t out_max, size_t bytes_max);

/* Reading the current set in chunks, all as of one (epoch, seq). */
struct route_snapshot_cursor {
	uint64_t epoch; /* the snapshot's: every chunk carries them */
	uint64_t seq;
	uint32_t pos; /* where the next chunk starts (a table slot) */
	bool done;    /* the last chunk was read */
};

void route_origin_snapshot_begin(const struct route_origin *o, struct route_snapshot_cursor *c);

/*
 * The next chunk: at most out_max filters and bytes_max filter bytes (at
 * least one filter when any is left). Returns the count, *last true on the
 * snapshot's last chunk (an empty set is one empty chunk); -ESTALE when the
 * set changed since route_origin_snapshot_begin: begin again (send every
 * chunk of a snapshot in one go, before the next change). The views stay
 * valid until the next add or remove.
 */
int route_origin_snapshot_next(const struct route_origin *o, struct route_snapshot_cursor *c,
                               struct mqtt_view *out, size_t out_max, size_t bytes_max, bool *last);

struct route_origin_counters {
	uint64_t adds;            /* numbered changes: filter added */
	uint64_t removes;         /* numbered changes: filter removed */
	uint64_t unmatched;       /* adds of held filters, removals of unheld ones: ignored */
	uint64_t refused_full;    /* adds beyond filters_max: not advertised */
	uint64_t refused_invalid; /* filters too long or not valid MQTT filters */
	uint64_t log_evicted; /* changes that left the log: peers further behind get snapshots */
};
const struct route_origin_counters *route_origin_counters(const struct route_origin *o);

/* ---- a peer: one other node's routes, as this node holds them ------------ */

/*
 * A change of a peer's copy: filter added to or removed from what node has
 * subscribers for. filter is valid during the call only. The callback must
 * not call into the same route_peer.
 */
typedef void (*route_change_fn)(void *arg, const char *node, struct mqtt_view filter, bool add);

struct route_peer;

/* node: the peer's name. NULL when p or node is invalid, or out of memory. */
struct route_peer *route_peer_new(const struct route_params *p, const char *node,
                                  route_change_fn fn, void *arg);
/* Frees the copy without reporting anything: route_peer_drop first when
 * the caller's index still holds it. */
void route_peer_free(struct route_peer *r);

enum route_result {
	ROUTE_APPLIED = 0, /* the copy moved on (a snapshot chunk: kept until its last) */
	ROUTE_STALE = 1,   /* an older epoch, or nothing newer than what is applied: ignored */
	ROUTE_GAP = 2,     /* changes before first_seq are missing: nothing applied */
	ROUTE_INVALID = 3, /* epoch 0, seq 0 or a seq range that wraps: ignored */
};

/*
 * One chunk of a snapshot: the origin's whole set as of (epoch, seq) comes
 * in chunks with the same epoch and seq, the last with last = true; only
 * then does the copy become that set (filters gone reported removed, new
 * ones added). A newer epoch drops the copy first. A chunk of another seq
 * abandons a partial snapshot and starts a new one. Filters refused (too
 * many, too long, invalid) are counted and left out.
 */
enum route_result route_peer_snapshot(struct route_peer *r, uint64_t epoch, uint64_t seq,
                                      const struct mqtt_view *filters, size_t n, bool last);

/*
 * Changes first_seq .. first_seq + n - 1. Applied only in sequence: those
 * already applied are skipped; when first_seq is beyond route_peer_seq + 1
 * nothing is applied (ROUTE_GAP: the origin must resend from
 * route_peer_seq + 1 — it learns that from this node's digest and chooses
 * a delta or a snapshot). A newer epoch drops the copy first (a new epoch
 * starts empty at seq 0, so its changes from 1 apply at once).
 */
enum route_result route_peer_delta(struct route_peer *r, uint64_t epoch, uint64_t first_seq,
                                   const struct route_change *changes, size_t n);

/* Membership heard of the node at epoch (SWIM_EV_JOINED, _RESTARTED):
 * a newer epoch than the copy's drops the copy. */
void route_peer_epoch_seen(struct route_peer *r, uint64_t epoch);

/* The node was declared dead or left: the copy is dropped, each filter
 * reported removed. Its epoch is kept; anything later rebuilds it from seq
 * 0. (A link that broke is not a reason: see route_peer_link_down.) */
void route_peer_drop(struct route_peer *r);

/* The link to the node broke: a partial snapshot is abandoned (the
 * origin starts the next one afresh); the copy stays. */
void route_peer_link_down(struct route_peer *r);

/* Is this node behind the origin's own (epoch, seq), as its digest says? */
bool route_peer_behind(const struct route_peer *r, uint64_t epoch, uint64_t seq);

const char *route_peer_node(const struct route_peer *r);
uint64_t route_peer_epoch(const struct route_peer *r); /* 0: none heard yet */
uint64_t route_peer_seq(const struct route_peer *r);   /* the last change applied */
uint32_t route_peer_count(const struct route_peer *r);
bool route_peer_has(const struct route_peer *r, struct mqtt_view filter);
/* Iterate the copy: *cursor = 0 first; false when there are no more. The
 * view stays valid until the copy changes. */
bool route_peer_next(const struct route_peer *r, uint32_t *cursor, struct mqtt_view *out);
/* The copy disagreed with a change (an add of a held filter, a removal of
 * one not held): only a snapshot repairs it, and the digest asks for one. */
bool route_peer_needs_snapshot(const struct route_peer *r);

struct route_peer_counters {
	uint64_t snapshots_applied; /* snapshots swapped in whole */
	uint64_t
	    snapshots_abandoned;  /* partial ones dropped: link down, new seq, new epoch, stale */
	uint64_t chunks;          /* snapshot chunks received */
	uint64_t deltas_applied;  /* deltas that moved the copy */
	uint64_t changes;         /* filters added to or removed from the copy (reported) */
	uint64_t stale;           /* snapshots and deltas ignored as old */
	uint64_t gaps;            /* deltas refused for a gap */
	uint64_t invalid;         /* calls refused as ROUTE_INVALID */
	uint64_t epochs;          /* new epochs seen: the copy dropped */
	uint64_t drops;           /* route_peer_drop: dead or left */
	uint64_t mismatched;      /* changes that disagreed with the copy */
	uint64_t refused_full;    /* filters beyond filters_max, left out */
	uint64_t refused_invalid; /* filters too long or invalid, left out */
};
const struct route_peer_counters *route_peer_counters(const struct route_peer *r);

/* ---- the digest ------------------------------------------------------------ */

struct route_digest_entry {
	char origin[ROUTE_NAME_MAX + 1]; /* the node whose routes */
	uint64_t epoch;                  /* 0: the sender wants a snapshot of them */
	uint64_t seq;
};

/* This node's own entry, and its entry for a peer's routes. */
void route_origin_digest(const struct route_origin *o, struct route_digest_entry *out);
void route_peer_digest(const struct route_peer *r, struct route_digest_entry *out);

/*
 * Format (version 1): u8 version, then per entry u8 name length (1..64),
 * the name (printable ASCII), epoch and seq as LEB128 varints. Entries are
 * encoded in order while they fit in cap (<= ROUTE_DIGEST_BYTES_MAX);
 * *encoded says how many did (rotate the rest through later digests).
 * Returns the bytes written, or -EINVAL (an entry's name is invalid, or
 * cap < 1).
 */
int route_digest_encode(const struct route_digest_entry *e, size_t n, uint8_t *out, size_t cap,
                        size_t *encoded);

/* Entries decoded into out (at most out_max), or -EINVAL: longer than
 * ROUTE_DIGEST_BYTES_MAX, another version, truncated, a name out of
 * bounds, an origin twice, a varint beyond 64 bits, or more entries than
 * out_max. */
int route_digest_decode(const uint8_t *bytes, size_t len, struct route_digest_entry *out,
                        size_t out_max);

const char *route_result_name(enum route_result r);

#endif
