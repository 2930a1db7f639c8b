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

#include <pthread.h>
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

/* Peers get numbers 1..CLUSTER_PEERS_MAX in the order they are first heard
 * of, kept for the life of the process (a restarted peer keeps its number):
 * the index names them by it (route/plan.h: nodes 1..63). */
#define CLUSTER_PEERS_MAX 63
#define CLUSTER_NAME_MAX  64

/* One peer, as membership last saw it. */
struct cluster_peer {
	char name[CLUSTER_NAME_MAX + 1];
	char address[CLUSTER_NAME_MAX + 1]; /* "ip:port" of its cluster_listen (UDP and link) */
	uint64_t epoch;                     /* its boot epoch */
	uint8_t state;                      /* enum cluster_member_state */
};

/* What one worker counts of its links to one peer, added to the view
 * once a turn. */
struct cluster_link_counts {
	uint64_t bytes[2], frames[2], forwarded[2]; /* [0] in, [1] out */
};

/* The same, summed over the workers, per peer (relaxed adds). */
struct cluster_peer_counts {
	_Atomic uint64_t bytes[2], frames[2], forwarded[2];
};

/* What the link counts, summed over the workers (relaxed adds, once per
 * turn at most). */
enum cluster_link_drop {
	CLUSTER_DROP_FULL = 0, /* the peer's buffer on that worker was full */
	CLUSTER_DROP_DOWN = 1, /* no link to the peer and none coming (dead, gone) */
	CLUSTER_DROP_TOO_LARGE = 2, /* larger than the peer's frame limit */
	CLUSTER_LINK_DROPS = 3
};

struct cluster_view {
	atomic_bool enabled; /* a cluster is configured (cluster_listen) */
	char self_name[CLUSTER_NAME_MAX + 1]; /* this node's name: written before the workers start */
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

	/* The peers (written by the cluster's thread under peers_lock, which
	 * bumps peers_gen after each change; workers compare peers_gen once a
	 * turn and copy the table under the lock when it moved). */
	pthread_mutex_t peers_lock;
	_Atomic uint64_t peers_gen;
	uint32_t peer_count; /* numbers 1..peer_count are in use: peers[number - 1] */
	struct cluster_peer peers[CLUSTER_PEERS_MAX];
	_Atomic uint64_t peers_refused; /* peers heard of beyond CLUSTER_PEERS_MAX: not served */

	/* The link, summed over workers. */
	_Atomic uint64_t links_up;               /* outgoing link connections established */
	_Atomic uint64_t link_bytes[2];          /* [0] in, [1] out */
	_Atomic uint64_t link_frames[2];         /* [0] in, [1] out */
	_Atomic uint64_t forwarded[2];           /* publishes: [0] from peers, [1] to peers */
	_Atomic uint64_t retained_replicated[2]; /* retained replicas: [0] stored from peers,
	                                          * [1] sent to peers */
	/* Route digests: this node's own routes' (epoch, seq), published by
	 * worker 0 and carried on membership probes; each peer's, as its
	 * probes said (by number). */
	_Atomic uint64_t own_route_epoch, own_route_seq;
	_Atomic uint64_t peer_route_epoch[CLUSTER_PEERS_MAX + 1];
	_Atomic uint64_t peer_route_seq[CLUSTER_PEERS_MAX + 1];
	/* A worker's link to that peer broke: membership probes it now (never
	 * a verdict by itself). */
	atomic_bool probe_now[CLUSTER_PEERS_MAX + 1];
	/* Worker 0 found that peer's routes here behind its digest: each
	 * worker closes the connection the peer's worker 0 dialled to it, and
	 * the peer sends its routes whole on the next one. */
	_Atomic uint64_t resync[CLUSTER_PEERS_MAX + 1];
	_Atomic uint64_t route_resyncs; /* how often that happened */
	atomic_bool synced; /* joined, and every alive peer's routes and the retained
	                     * messages are here (latched; /readyz) */
	_Atomic uint64_t link_drops[CLUSTER_LINK_DROPS];
	struct cluster_peer_counts peer_counts[CLUSTER_PEERS_MAX + 1]; /* by number; [0]: a
	                                          * connection before its Hello */
	_Atomic uint64_t route_lag_ms[CLUSTER_PEERS_MAX + 1]; /* how long that peer's routes here
	                                          * have been behind its digest; 0: not */
	_Atomic uint64_t links_refused;          /* incoming links refused at the handshake */
	_Atomic uint64_t forward_duplicates;     /* forwarded QoS 1/2 received twice (a resend
	                                          * after a reconnect), delivered once */
	_Atomic uint32_t routes[CLUSTER_PEERS_MAX + 1]; /* filters held of each peer (by number);
	                                           * [0]: this node's own */
};

/* The peers as of now, into out (room for CLUSTER_PEERS_MAX); returns the
 * count and the generation it is current as of. Any thread. */
static inline uint32_t cluster_view_peers(struct cluster_view *v, struct cluster_peer *out,
                                          uint64_t *gen)
{
	pthread_mutex_lock(&v->peers_lock);
	uint32_t n = v->peer_count;
	for (uint32_t i = 0; i < n; i++)
		out[i] = v->peers[i];
	*gen = atomic_load_explicit(&v->peers_gen, memory_order_relaxed);
	pthread_mutex_unlock(&v->peers_lock);
	return n;
}

#endif
