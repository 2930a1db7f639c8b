/*
 * cluster_view.h — what the cluster tells the rest of the node: written by
 * the cluster's thread (cluster/node.c) with relaxed atomic stores, read by
 * the ops thread (/metrics, /readyz) and worker 0 ($SYS). Defined here, in
 * the core, so that the core reads it without including anything of
 * cluster/ (arrows go from the cluster to the core, never back).
 *
 * A snapshot may be torn between two updates (one counter from this one,
 * the next from the last): each value is still one that was true, which is
 * all the metrics need.
 */
#ifndef STARLING_CORE_CLUSTER_VIEW_H
#define STARLING_CORE_CLUSTER_VIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Peer states, as the membership protocol has them (cluster/swim.h). */
enum cluster_member_state {
	CLUSTER_ALIVE = 1,
	CLUSTER_SUSPECT = 2,
	CLUSTER_DEAD = 3,
	CLUSTER_LEFT = 4,
	CLUSTER_STATES = 5
};

/* Why a membership packet was not taken, by label (index = cluster/swim.h's
 * enum swim_drop; 0 is "accepted" and unused). */
#define CLUSTER_DROP_REASONS 10
extern const char *const cluster_drop_names[CLUSTER_DROP_REASONS];

struct cluster_view {
	atomic_bool enabled; /* a cluster is configured (cluster_listen) */
	atomic_bool ready;   /* joined, or alone past cluster_join_timeout_ms */
	_Atomic uint64_t members[CLUSTER_STATES]; /* peers by enum cluster_member_state */
	_Atomic uint64_t health_score;            /* Lifeguard's local health, 0 = healthy */
	_Atomic uint64_t packets_in;              /* membership datagrams received */
	_Atomic uint64_t packets_out;             /* membership datagrams sent */
	_Atomic uint64_t probes;                  /* direct probes sent */
	_Atomic uint64_t probes_failed;           /* probes that ended without an ack */
	_Atomic uint64_t indirect_probes;         /* ping-reqs sent to helpers */
	_Atomic uint64_t suspicions;              /* peers we suspected */
	_Atomic uint64_t refutations;             /* suspicions of ourselves we denied */
	_Atomic uint64_t dropped[CLUSTER_DROP_REASONS];
	_Atomic uint64_t probe_rtt_us_sum;        /* round trips of the last direct probes, */
	_Atomic uint64_t probe_rtt_count;         /* summed over alive peers, and how many */
};

#endif
