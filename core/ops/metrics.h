/*
 * metrics.h — the Prometheus text exposition (format 0.0.4) of a node's
 * statistics. Pure: the caller (ops.c) gathers the numbers — each worker's
 * published stats, mailbox depths, allocator and process figures — and this
 * module only turns them into text, so the output is unit-tested from fixed
 * inputs.
 *
 * Families follow Prometheus naming: a `starling_` prefix, `_total` on
 * counters, base units in names (`_bytes`, `_seconds`), HELP and TYPE once
 * per family. Node-wide figures are sums over workers; loop and mailbox
 * figures carry a `worker` label.
 */
#ifndef STARLING_CORE_METRICS_H
#define STARLING_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "ops/cluster_view.h"
#include "ops/stats.h"

/* The cluster's figures at one scrape (from struct cluster_view). */
struct cluster_figures {
	uint64_t members[CLUSTER_STATES]; /* peers by enum cluster_member_state */
	uint64_t health_score;
	uint64_t packets_in, packets_out;
	uint64_t probes, probes_failed, indirect_probes, suspicions, refutations;
	uint64_t dropped[CLUSTER_DROP_REASONS];
	double probe_rtt_avg_s; /* mean of the alive peers' last direct round trips */
	bool ready;
	/* The link. */
	uint64_t links_up, links_refused, forward_duplicates, route_resyncs;
	uint64_t link_bytes[2], link_frames[2], forwarded[2], retained[2]; /* [0] in, [1] out */
	bool synced;
	uint64_t link_drops[CLUSTER_LINK_DROPS];
	uint32_t routes_own; /* this node's routes */
	uint32_t peer_count; /* entries of peer_names, routes */
	char peer_names[CLUSTER_PEERS_MAX][CLUSTER_NAME_MAX + 1];
	uint32_t routes[CLUSTER_PEERS_MAX];                     /* each peer's routes held here */
	struct cluster_link_counts peer[CLUSTER_PEERS_MAX + 1]; /* by number; [0]: before Hello */
	uint64_t route_lag_ms[CLUSTER_PEERS_MAX]; /* each peer's routes behind its digest for */
};

/* One bridge's figures (mqtt/bridge.h struct bridge_pub, as read). */
struct bridge_figures {
	char name[CONFIG_BRIDGE_NAME_MAX];
	unsigned state; /* 0 backing off, 1 connecting, 2 up */
	uint64_t connects, failures, queued, inflight, dropped;
	uint64_t msgs[2], bytes[2]; /* [0] in from the remote, [1] out to it */
	uint64_t rtt_us, rtt_n;     /* sampled acknowledgement round trips: sum, count */
};

struct metrics_input {
	const char *version;
	unsigned workers;
	const struct worker_stats *per_worker; /* [workers], as last published */
	const uint64_t *mailbox_depth;         /* [workers]: messages waiting for each */
	uint64_t uptime_s;
	bool ready; /* /readyz's answer, also exported */

	bool have_memory; /* allocator statistics (jemalloc) */
	uint64_t mem_allocated_bytes;
	uint64_t mem_active_bytes;
	uint64_t mem_resident_bytes;
	uint64_t mem_mapped_bytes;

	bool have_process; /* the process_* families every Prometheus client exports */
	double cpu_seconds;
	uint64_t resident_bytes;
	uint64_t virtual_bytes;
	uint64_t open_fds;
	uint64_t max_fds;
	double start_time_s; /* since the Unix epoch */

	bool have_persistence;       /* persistence is on: the journal's families */
	uint64_t recovered_retained; /* at start, from the journal */
	uint64_t recovered_sessions;
	uint64_t recovered_messages; /* queued messages given back to sessions */
	uint64_t recovered_releases; /* QoS 2 PUBRELs owed, given back */
	uint64_t recovered_files;
	uint64_t recovered_cut_bytes;
	double recovery_seconds;
	uint64_t compactions;     /* compact.h: rounds completed */
	uint64_t compacted_bytes; /* older files they removed */

	bool have_cluster; /* a cluster is configured */
	struct cluster_figures cluster;

	unsigned bridge_count; /* configured bridges */
	struct bridge_figures bridges[CONFIG_BRIDGES_MAX];

	bool have_ops;                 /* the ops listener's own figures (ops.c) */
	uint64_t ops_connections;      /* open now, the one scraping included */
	uint64_t ops_accepted;         /* connections accepted */
	uint64_t ops_evicted;          /* closed to make room for a new connection */
	uint64_t ops_request_timeouts; /* no whole request head in metrics_request_timeout_ms */
	uint64_t ops_send_timeouts;    /* the answer was not read in time */
	uint64_t ops_unauthorized;     /* /metrics answered 401 */
};

/* The exposition text in a malloc'd, NUL-terminated buffer of *len bytes
 * (the caller frees it); NULL when out of memory. */
char *metrics_render(const struct metrics_input *in, size_t *len);

#endif
