/*
 * metrics.c — rendering struct metrics_input as Prometheus text. Called on
 * the ops thread per scrape; allocates only its output buffer. The output
 * must pass `promtool check metrics` (tests/integration/ops_test.py runs it).
 */
#include "ops/metrics.h"

#include "mqtt.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct out {
	char *p;
	size_t len;
	size_t cap;
	bool oom;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o, const char *fmt, ...)
{
	if (o->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = true;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		size_t cap = o->cap * 2 + (size_t)n;
		char *p = realloc(o->p, cap);
		if (!p) {
			o->oom = true;
			return;
		}
		o->p = p;
		o->cap = cap;
	}
}

static void family(struct out *o, const char *name, const char *type, const char *help);

/* Bridges (docs/bridges.md), one label per bridge. */
static void bridge_families(struct out *o, const struct metrics_input *in)
{
	static const char *const states[] = {"backing_off", "connecting", "up"};
	family(o, "starling_bridge_up", "gauge", "1 while the bridge's link to its remote is up.");
	for (unsigned i = 0; i < in->bridge_count; i++)
		put(o, "starling_bridge_up{bridge=\"%s\"} %d\n", in->bridges[i].name,
		    in->bridges[i].state == 2);
	family(o, "starling_bridge_state", "gauge",
	       "The bridge's state: backing_off (waiting to dial again), connecting, up.");
	for (unsigned i = 0; i < in->bridge_count; i++)
		for (unsigned s = 0; s < 3; s++)
			put(o, "starling_bridge_state{bridge=\"%s\",state=\"%s\"} %d\n",
			    in->bridges[i].name, states[s], in->bridges[i].state == s);
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} one[] = {
	    {"starling_bridge_connects_total", "counter",
	     "Connections the bridge's remote accepted (the first and every reconnect).",
	     offsetof(struct bridge_figures, connects)},
	    {"starling_bridge_connect_failures_total", "counter",
	     "Dials, TLS handshakes or CONNECTs of the bridge that did not get a connection up.",
	     offsetof(struct bridge_figures, failures)},
	    {"starling_bridge_queued_messages", "gauge",
	     "Messages waiting in the bridge's queue for the remote.",
	     offsetof(struct bridge_figures, queued)},
	    {"starling_bridge_inflight_messages", "gauge",
	     "Messages sent to the remote and not acknowledged yet.",
	     offsetof(struct bridge_figures, inflight)},
	    {"starling_bridge_dropped_total", "counter",
	     "Messages for the remote the bridge's queue bounds dropped.",
	     offsetof(struct bridge_figures, dropped)},
	};
	for (size_t f = 0; f < sizeof(one) / sizeof(one[0]); f++) {
		family(o, one[f].name, one[f].type, one[f].help);
		for (unsigned i = 0; i < in->bridge_count; i++)
			put(o, "%s{bridge=\"%s\"} %llu\n", one[f].name, in->bridges[i].name,
			    (unsigned long long)*(const uint64_t *)((const char *)&in->bridges[i] +
			                                            one[f].off));
	}
	static const char *const dirs[] = {"in", "out"};
	family(o, "starling_bridge_messages_total", "counter",
	       "PUBLISH packets between the bridge and its remote (out: resends included).");
	for (unsigned i = 0; i < in->bridge_count; i++)
		for (unsigned d = 0; d < 2; d++)
			put(o,
			    "starling_bridge_messages_total{bridge=\"%s\",direction=\"%s\"} %llu\n",
			    in->bridges[i].name, dirs[d],
			    (unsigned long long)in->bridges[i].msgs[d]);
	family(o, "starling_bridge_ack_rtt_seconds", "summary",
	       "Round trips from a QoS 1/2 PUBLISH into the bridge's connection to the remote's "
	       "PUBACK or PUBREC, one timed at a time.");
	for (unsigned i = 0; i < in->bridge_count; i++)
		put(o,
		    "starling_bridge_ack_rtt_seconds_sum{bridge=\"%s\"} %.6f\n"
		    "starling_bridge_ack_rtt_seconds_count{bridge=\"%s\"} %llu\n",
		    in->bridges[i].name, (double)in->bridges[i].rtt_us / 1e6, in->bridges[i].name,
		    (unsigned long long)in->bridges[i].rtt_n);
	family(o, "starling_bridge_payload_bytes_total", "counter",
	       "Payload bytes of those PUBLISH packets.");
	for (unsigned i = 0; i < in->bridge_count; i++)
		for (unsigned d = 0; d < 2; d++)
			put(o,
			    "starling_bridge_payload_bytes_total{bridge=\"%s\",direction=\"%s\"} "
			    "%llu\n",
			    in->bridges[i].name, dirs[d],
			    (unsigned long long)in->bridges[i].bytes[d]);
}

static void family(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t word(const struct worker_stats *s, size_t i)
{
	uint64_t v;
	memcpy(&v, (const unsigned char *)s + i * sizeof(v), sizeof(v));
	return v;
}

/* A family with one unlabelled sample: the node-wide sum of one field. */
static void sum1(struct out *o, const struct worker_stats *total, size_t w, const char *name,
                 const char *type, const char *help)
{
	family(o, name, type, help);
	put(o, "%s %llu\n", name, (unsigned long long)word(total, w));
}

/* A family with one sample per worker of one field. */
static void per_worker(struct out *o, const struct metrics_input *in, size_t w, const char *name,
                       const char *type, const char *help)
{
	family(o, name, type, help);
	for (unsigned i = 0; i < in->workers; i++)
		put(o, "%s{worker=\"%u\"} %llu\n", name, i,
		    (unsigned long long)word(&in->per_worker[i], w));
}

/* A histogram per worker over the loop's buckets: hist and sum are the
 * fields' word indexes. */
static void worker_histogram(struct out *o, const struct metrics_input *in, const char *name,
                             size_t hist, size_t sum, const char *help)
{
	family(o, name, "histogram", help);
	for (unsigned i = 0; i < in->workers; i++) {
		const struct worker_stats *s = &in->per_worker[i];
		uint64_t cum = 0;
		for (unsigned b = 0; b < STATS_LOOP_BUCKETS; b++) {
			cum += word(s, hist + b);
			if (b < STATS_LOOP_BUCKETS - 1)
				put(o, "%s_bucket{worker=\"%u\",le=\"%g\"} %llu\n", name, i,
				    (double)stats_loop_bounds_ns[b] / 1e9, (unsigned long long)cum);
			else
				put(o, "%s_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n", name, i,
				    (unsigned long long)cum);
		}
		put(o, "%s_sum{worker=\"%u\"} %.9f\n", name, i, (double)word(s, sum) / 1e9);
		put(o, "%s_count{worker=\"%u\"} %llu\n", name, i, (unsigned long long)cum);
	}
}

static void loop_histogram(struct out *o, const struct metrics_input *in)
{
	worker_histogram(o, in, "starling_worker_loop_busy_seconds", STATS_WORD(loop_busy_hist),
	                 STATS_WORD(loop_busy_ns),
	                 "Time a worker's loop turn spent working (between waits for the kernel).");
}

/* Persistence (core/persist/): the journal per worker, recovery at start. */
static void journal_families(struct out *o, const struct metrics_input *in,
                             const struct worker_stats *t)
{
	per_worker(o, in, STATS_WORD(journal_records), "starling_journal_records_total", "counter",
	           "Records appended to a worker's journal.");
	per_worker(o, in, STATS_WORD(journal_bytes), "starling_journal_bytes_total", "counter",
	           "Bytes a worker's journal wrote.");
	per_worker(o, in, STATS_WORD(journal_commits), "starling_journal_commits_total", "counter",
	           "Writes of a worker's journal, each a group of records (with "
	           "persistence_sync=fsync, a group commit); records / commits = group size.");
	per_worker(o, in, STATS_WORD(journal_fsyncs), "starling_journal_fsyncs_total", "counter",
	           "fdatasync calls completed (persistence_sync=fsync).");
	per_worker(o, in, STATS_WORD(journal_errors), "starling_journal_errors_total", "counter",
	           "Journal writes or flushes that failed (disk full, I/O error); each is tried "
	           "again.");
	sum1(o, t, STATS_WORD(journal_refused), "starling_journal_refused_total", "counter",
	     "Work that needed the journal refused while it could not write (0x97 to 5.0 "
	     "clients).");
	per_worker(o, in, STATS_WORD(journal_failing), "starling_journal_failing", "gauge",
	           "1 while a worker's journal cannot write: /readyz is false.");
	per_worker(o, in, STATS_WORD(journal_waiting), "starling_journal_waiting_bytes", "gauge",
	           "Bytes appended to a worker's journal and not yet written.");
	worker_histogram(o, in, "starling_journal_commit_seconds", STATS_WORD(journal_commit_hist),
	                 STATS_WORD(journal_commit_ns),
	                 "Time from a group's submission to its durability (write, or write and "
	                 "fdatasync).");
	family(o, "starling_persistence_recovered", "gauge",
	       "What the journal gave back at start, by kind.");
	put(o, "starling_persistence_recovered{kind=\"sessions\"} %llu\n",
	    (unsigned long long)in->recovered_sessions);
	put(o, "starling_persistence_recovered{kind=\"messages\"} %llu\n",
	    (unsigned long long)in->recovered_messages);
	put(o, "starling_persistence_recovered{kind=\"releases\"} %llu\n",
	    (unsigned long long)in->recovered_releases);
	put(o, "starling_persistence_recovered{kind=\"retained\"} %llu\n",
	    (unsigned long long)in->recovered_retained);
	put(o, "starling_persistence_recovered{kind=\"files\"} %llu\n",
	    (unsigned long long)in->recovered_files);
	put(o, "starling_persistence_recovered{kind=\"cut_bytes\"} %llu\n",
	    (unsigned long long)in->recovered_cut_bytes);
	family(o, "starling_journal_compactions_total", "counter",
	       "Compactions completed: every worker's snapshot durable, older files removed.");
	put(o, "starling_journal_compactions_total %llu\n", (unsigned long long)in->compactions);
	family(o, "starling_journal_compacted_bytes_total", "counter",
	       "Bytes of older journal files compactions removed.");
	put(o, "starling_journal_compacted_bytes_total %llu\n",
	    (unsigned long long)in->compacted_bytes);
	family(o, "starling_persistence_recovery_seconds", "gauge",
	       "Time the recovery at start took.");
	put(o, "starling_persistence_recovery_seconds %.3f\n", in->recovery_seconds);
}

char *metrics_render(const struct metrics_input *in, size_t *len)
{
	struct out o = {.cap = 16384};
	o.p = malloc(o.cap);
	if (!o.p)
		return NULL;
	o.p[0] = '\0';

	struct worker_stats t = {0};
	for (unsigned i = 0; i < in->workers; i++)
		stats_add(&t, &in->per_worker[i]);
	/* Every worker holds a full copy of the index: report one copy. */
	const struct worker_stats *w0 = in->workers ? &in->per_worker[0] : &t;

	family(&o, "starling_build_info", "gauge", "Starling's version; the value is always 1.");
	put(&o, "starling_build_info{version=\"%s\"} 1\n", in->version);
	family(&o, "starling_uptime_seconds", "gauge", "Seconds since the broker started.");
	put(&o, "starling_uptime_seconds %llu\n", (unsigned long long)in->uptime_s);
	family(&o, "starling_workers", "gauge", "Worker threads (one io_uring ring each).");
	put(&o, "starling_workers %u\n", in->workers);
	family(&o, "starling_ready", "gauge", "1 when /readyz answers ready.");
	put(&o, "starling_ready %d\n", in->ready ? 1 : 0);

	/* Connections */
	sum1(&o, &t, STATS_WORD(conns_current), "starling_connections", "gauge",
	     "Client connections open now.");
	sum1(&o, &t, STATS_WORD(conns_accepted), "starling_connections_accepted_total", "counter",
	     "Client connections accepted.");
	family(&o, "starling_connections_refused_total", "counter",
	       "Client connections closed at accept, before reading a byte.");
	put(&o, "starling_connections_refused_total{reason=\"max_connections\"} %llu\n",
	    (unsigned long long)t.conns_refused);
	put(&o, "starling_connections_refused_total{reason=\"listener_max_connections\"} %llu\n",
	    (unsigned long long)t.conns_refused_listener);
	put(&o, "starling_connections_refused_total{reason=\"connect_rate\"} %llu\n",
	    (unsigned long long)t.conns_refused_rate);
	family(&o, "starling_partial_packets_closed_total", "counter",
	       "Connections closed over a packet they were sending: the node's budget for "
	       "partially received packets was taken, or it took too long.");
	put(&o, "starling_partial_packets_closed_total{reason=\"budget\"} %llu\n",
	    (unsigned long long)t.partial_over_budget);
	put(&o, "starling_partial_packets_closed_total{reason=\"timeout\"} %llu\n",
	    (unsigned long long)t.partial_timeouts);
	sum1(&o, &t, STATS_WORD(accept_errors), "starling_accept_errors_total", "counter",
	     "Accepts that failed for want of file descriptors or memory; accepting pauses "
	     "and backs off meanwhile.");
	family(&o, "starling_connections_closed_total", "counter",
	       "Client connections closed, by reason.");
	for (unsigned r = CLOSE_UNSET + 1; r < CLOSE_REASON_COUNT; r++)
		put(&o, "starling_connections_closed_total{reason=\"%s\"} %llu\n",
		    stats_close_reason_name((enum close_reason)r),
		    (unsigned long long)t.conns_closed[r]);
	family(&o, "starling_connects_total", "counter",
	       "CONNECT packets answered, by CONNACK reason code (5.0 codes; 3.1.1 "
	       "refusals are counted under the 5.0 code they were translated from).");
	for (unsigned s = 0; s < STATS_CONNACK_SLOTS; s++) {
		unsigned code = stats_connack_code(s);
		/* Success always, failures once they happened: 34 mostly-zero
		 * series would bury the ones that matter. */
		if (s != 0 && t.connack[s] == 0)
			continue;
		put(&o, "starling_connects_total{code=\"0x%02X\",reason=\"%s\"} %llu\n", code,
		    code == 0xFF ? "other" : mqtt_rc_name((enum mqtt_rc)code),
		    (unsigned long long)t.connack[s]);
	}

	/* TLS */
	sum1(&o, &t, STATS_WORD(tls_handshakes), "starling_tls_handshakes_total", "counter",
	     "TLS handshakes completed on the TLS listeners.");
	family(&o, "starling_tls_handshake_failures_total", "counter",
	       "TLS handshakes that failed, by reason.");
	for (unsigned f = 0; f < TLS_FAIL_COUNT; f++)
		put(&o, "starling_tls_handshake_failures_total{reason=\"%s\"} %llu\n",
		    stats_tls_fail_name((enum tls_fail)f), (unsigned long long)t.tls_failures[f]);

	/* Messages */
	family(&o, "starling_messages_received_total", "counter",
	       "PUBLISH packets received from clients, by QoS.");
	for (unsigned q = 0; q < 3; q++)
		put(&o, "starling_messages_received_total{qos=\"%u\"} %llu\n", q,
		    (unsigned long long)t.msgs_in[q]);
	family(&o, "starling_messages_delivered_total", "counter",
	       "PUBLISH packets sent to clients, by QoS (redeliveries included).");
	for (unsigned q = 0; q < 3; q++)
		put(&o, "starling_messages_delivered_total{qos=\"%u\"} %llu\n", q,
		    (unsigned long long)t.msgs_out[q]);
	sum1(&o, &t, STATS_WORD(bytes_in), "starling_network_received_bytes_total", "counter",
	     "Bytes received from clients.");
	sum1(&o, &t, STATS_WORD(bytes_out), "starling_network_sent_bytes_total", "counter",
	     "Bytes sent to clients.");
	family(&o, "starling_messages_dropped_total", "counter",
	       "Messages not delivered, by reason: outbox_full (QoS 0 to a slow reader), "
	       "worker_behind (QoS 0 to a worker that fell behind), oversize (over a client's "
	       "maximum packet size), queue_full (session queue limits), expired, "
	       "no_subscribers, not_authorized.");
	static const struct {
		const char *reason;
		size_t w;
	} drops[] = {
	    {"outbox_full", STATS_WORD(drops_outbox)},
	    {"worker_behind", STATS_WORD(drops_transit)},
	    {"oversize", STATS_WORD(drops_oversize)},
	    {"queue_full", STATS_WORD(drops_queue)},
	    {"expired", STATS_WORD(drops_expired)},
	    {"no_subscribers", STATS_WORD(drops_no_subscribers)},
	    {"not_authorized", STATS_WORD(drops_denied)},
	};
	for (size_t i = 0; i < sizeof(drops) / sizeof(drops[0]); i++)
		put(&o, "starling_messages_dropped_total{reason=\"%s\"} %llu\n", drops[i].reason,
		    (unsigned long long)word(&t, drops[i].w));

	/* Sessions, subscriptions, retained */
	family(&o, "starling_sessions", "gauge", "Sessions on the node, by state.");
	put(&o, "starling_sessions{state=\"online\"} %llu\n",
	    (unsigned long long)t.sessions_online);
	put(&o, "starling_sessions{state=\"offline\"} %llu\n",
	    (unsigned long long)t.sessions_offline);
	sum1(&o, &t, STATS_WORD(queued_msgs), "starling_queued_messages", "gauge",
	     "Messages queued for sessions (offline, or past the in-flight window).");
	sum1(&o, &t, STATS_WORD(queued_bytes), "starling_queued_bytes", "gauge",
	     "Bytes of the queued messages.");
	sum1(&o, &t, STATS_WORD(inflight), "starling_inflight_messages", "gauge",
	     "Outbound QoS 1/2 messages awaiting acknowledgement.");
	sum1(&o, w0, STATS_WORD(subscriptions), "starling_subscriptions", "gauge",
	     "Subscriptions on the node (a shared group member counts once).");
	sum1(&o, w0, STATS_WORD(shared_groups), "starling_shared_groups", "gauge",
	     "Shared subscription groups on the node.");
	sum1(&o, &t, STATS_WORD(retained), "starling_retained_messages", "gauge",
	     "Retained messages stored.");
	sum1(&o, &t, STATS_WORD(retained_bytes), "starling_retained_bytes", "gauge",
	     "Bytes of the retained messages.");

	/* Workers */
	per_worker(&o, in, STATS_WORD(loop_turns), "starling_worker_loop_turns_total", "counter",
	           "Turns of a worker's event loop.");
	loop_histogram(&o, in);
	family(&o, "starling_worker_mailbox_depth", "gauge",
	       "Messages waiting in a worker's mailboxes from every other worker.");
	for (unsigned i = 0; i < in->workers; i++)
		put(&o, "starling_worker_mailbox_depth{worker=\"%u\"} %llu\n", i,
		    (unsigned long long)in->mailbox_depth[i]);
	family(&o, "starling_worker_loop_turn_max_seconds", "gauge",
	       "The longest busy time of one loop turn in the last 10 to 20 seconds: a stall "
	       "that a scrape interval's averages hide.");
	for (unsigned i = 0; i < in->workers; i++)
		put(&o, "starling_worker_loop_turn_max_seconds{worker=\"%u\"} %.6f\n", i,
		    (double)word(&in->per_worker[i], STATS_WORD(loop_turn_max_ns)) / 1e9);
	per_worker(&o, in, STATS_WORD(mbox_depth_max), "starling_worker_mailbox_depth_max", "gauge",
	           "The most messages found waiting in a worker's mailboxes at one drain, in the "
	           "last 10 to 20 seconds.");
	per_worker(&o, in, STATS_WORD(mbox_backlog), "starling_worker_mailbox_backlog", "gauge",
	           "Messages a worker holds in its own overflow because a mailbox was full.");
	per_worker(&o, in, STATS_WORD(mbox_overflows), "starling_worker_mailbox_overflows_total",
	           "counter", "Messages that found a mailbox full and waited in the overflow.");
	sum1(&o, &t, STATS_WORD(lookups_dropped), "starling_retained_lookups_dropped_total",
	     "counter",
	     "Retained-message lookups of new subscriptions dropped (a shard had too many "
	     "waiting, or no memory): those subscribers got no retained messages.");
	per_worker(&o, in, STATS_WORD(sends), "starling_worker_sends_total", "counter",
	           "Send operations submitted (delivered / sends = messages per send).");

	/* Memory and process: one unlabelled sample per family. */
	if (in->have_memory) {
		const struct {
			const char *name, *help;
			uint64_t v;
		} mem[] = {
		    {"starling_memory_allocated_bytes",
		     "Bytes allocated by the broker (jemalloc stats.allocated).",
		     in->mem_allocated_bytes},
		    {"starling_memory_active_bytes",
		     "Bytes in pages the allocator has in use (jemalloc stats.active).",
		     in->mem_active_bytes},
		    {"starling_memory_resident_bytes",
		     "Bytes the allocator holds resident (jemalloc stats.resident).",
		     in->mem_resident_bytes},
		    {"starling_memory_mapped_bytes",
		     "Bytes the allocator has mapped (jemalloc stats.mapped).",
		     in->mem_mapped_bytes},
		};
		for (size_t i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
			family(&o, mem[i].name, "gauge", mem[i].help);
			put(&o, "%s %llu\n", mem[i].name, (unsigned long long)mem[i].v);
		}
	}
	if (in->have_process) {
		/* Names and help as the Prometheus client libraries export them. */
		const struct {
			const char *name, *type, *help;
			double v;
		} proc[] = {
		    {"process_cpu_seconds_total", "counter",
		     "Total user and system CPU time spent in seconds.", in->cpu_seconds},
		    {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
		     (double)in->resident_bytes},
		    {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
		     (double)in->virtual_bytes},
		    {"process_open_fds", "gauge", "Number of open file descriptors.",
		     (double)in->open_fds},
		    {"process_max_fds", "gauge", "Maximum number of open file descriptors.",
		     (double)in->max_fds},
		    {"process_start_time_seconds", "gauge",
		     "Start time of the process since unix epoch in seconds.", in->start_time_s},
		};
		for (size_t i = 0; i < sizeof(proc) / sizeof(proc[0]); i++) {
			family(&o, proc[i].name, proc[i].type, proc[i].help);
			/* %.15g: exact for integers below 10^15, and 0.1 stays "0.1". */
			put(&o, "%s %.15g\n", proc[i].name, proc[i].v);
		}
	}

	if (in->have_persistence)
		journal_families(&o, in, &t);

	if (in->have_cluster) {
		const struct cluster_figures *c = &in->cluster;
		static const char *const states[CLUSTER_STATES] = {NULL, "alive", "suspect", "dead",
		                                                   "left"};
		family(&o, "starling_cluster_members", "gauge",
		       "Other nodes of the cluster as this one sees them, by state.");
		for (int i = 1; i < CLUSTER_STATES; i++)
			put(&o, "starling_cluster_members{state=\"%s\"} %llu\n", states[i],
			    (unsigned long long)c->members[i]);
		family(&o, "starling_cluster_ready", "gauge",
		       "1 once this node joined the cluster (or started alone after "
		       "cluster_join_timeout_ms).");
		put(&o, "starling_cluster_ready %d\n", c->ready ? 1 : 0);
		family(&o, "starling_cluster_health_score", "gauge",
		       "Lifeguard's local health score: 0 healthy; higher means this node's own "
		       "probes fail and it waits longer before suspecting others.");
		put(&o, "starling_cluster_health_score %llu\n",
		    (unsigned long long)c->health_score);
		const struct {
			const char *name, *help;
			uint64_t v;
		} counters[] = {
		    {"starling_cluster_membership_packets_received_total",
		     "Membership datagrams received.", c->packets_in},
		    {"starling_cluster_membership_packets_sent_total", "Membership datagrams sent.",
		     c->packets_out},
		    {"starling_cluster_probes_total", "Direct probes of other nodes sent.",
		     c->probes},
		    {"starling_cluster_probes_failed_total",
		     "Probes that ended without an answer, direct or through other nodes.",
		     c->probes_failed},
		    {"starling_cluster_indirect_probes_total",
		     "Probes asked of other nodes when a direct probe went unanswered.",
		     c->indirect_probes},
		    {"starling_cluster_suspicions_total",
		     "Nodes this one suspected of having failed.", c->suspicions},
		    {"starling_cluster_refutations_total",
		     "Suspicions of this node it denied (it was slow, or the network was).",
		     c->refutations},
		};
		for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
			family(&o, counters[i].name, "counter", counters[i].help);
			put(&o, "%s %llu\n", counters[i].name, (unsigned long long)counters[i].v);
		}
		family(&o, "starling_cluster_membership_packets_dropped_total", "counter",
		       "Membership datagrams not taken, by reason (auth: not signed with "
		       "cluster_secret_file; cluster: another cluster_name).");
		for (int i = 1; i < CLUSTER_DROP_REASONS; i++)
			put(&o,
			    "starling_cluster_membership_packets_dropped_total{reason=\"%s\"} "
			    "%llu\n",
			    cluster_drop_names[i], (unsigned long long)c->dropped[i]);
		family(&o, "starling_cluster_probe_rtt_seconds", "gauge",
		       "Mean of the last direct probe's round trip to each alive node.");
		put(&o, "starling_cluster_probe_rtt_seconds %.6f\n", c->probe_rtt_avg_s);

		family(
		    &o, "starling_cluster_routes", "gauge",
		    "Filters with at least one subscriber, by the node they are on (origin): this "
		    "node's own, and each peer's as this node holds them.");
		put(&o, "starling_cluster_routes{origin=\"self\"} %u\n", c->routes_own);
		for (uint32_t i = 0; i < c->peer_count; i++)
			put(&o, "starling_cluster_routes{origin=\"%s\"} %u\n", c->peer_names[i],
			    c->routes[i]);
		family(&o, "starling_cluster_links_up", "gauge",
		       "Link connections this node dialled that are up (one per worker per peer).");
		put(&o, "starling_cluster_links_up %llu\n", (unsigned long long)c->links_up);
		family(&o, "starling_cluster_links_refused_total", "counter",
		       "Link connections refused at the handshake (another cluster, version or "
		       "secret, an unknown node, a protocol error).");
		put(&o, "starling_cluster_links_refused_total %llu\n",
		    (unsigned long long)c->links_refused);
		static const char *const dir[2] = {"in", "out"};
		family(&o, "starling_cluster_link_bytes_total", "counter",
		       "Bytes on the links between nodes, by direction.");
		for (int d = 0; d < 2; d++)
			put(&o, "starling_cluster_link_bytes_total{direction=\"%s\"} %llu\n",
			    dir[d], (unsigned long long)c->link_bytes[d]);
		family(&o, "starling_cluster_link_frames_total", "counter",
		       "Frames on the links between nodes (in: decoded; out: handshake and route "
		       "frames), by direction.");
		for (int d = 0; d < 2; d++)
			put(&o, "starling_cluster_link_frames_total{direction=\"%s\"} %llu\n",
			    dir[d], (unsigned long long)c->link_frames[d]);
		family(&o, "starling_cluster_forwarded_total", "counter",
		       "Publishes forwarded to peer nodes (out, once per node) and received from "
		       "them (in).");
		for (int d = 0; d < 2; d++)
			put(&o, "starling_cluster_forwarded_total{direction=\"%s\"} %llu\n", dir[d],
			    (unsigned long long)c->forwarded[d]);
		family(&o, "starling_cluster_route_resyncs_total", "counter",
		       "Peers' routes fetched whole because the digest on their probes showed this "
		       "node behind them for half a second.");
		put(&o, "starling_cluster_route_resyncs_total %llu\n",
		    (unsigned long long)c->route_resyncs);
		family(&o, "starling_cluster_synced", "gauge",
		       "1 once this node joined and has every alive peer's routes and the retained "
		       "messages (part of /readyz).");
		put(&o, "starling_cluster_synced %d\n", c->synced ? 1 : 0);
		family(&o, "starling_cluster_retained_replicated_total", "counter",
		       "Retained messages replicated between nodes: stored from peers (in), sent "
		       "to peers (out).");
		for (int d = 0; d < 2; d++)
			put(&o,
			    "starling_cluster_retained_replicated_total{direction=\"%s\"} %llu\n",
			    dir[d], (unsigned long long)c->retained[d]);
		const struct {
			const char *name, *help;
			size_t off;
		} per_peer[] = {
		    {"starling_cluster_peer_link_bytes_total",
		     "Bytes on the links with each other node, by direction (peer=\"\": "
		     "connections "
		     "before their handshake named the node).",
		     offsetof(struct cluster_link_counts, bytes)},
		    {"starling_cluster_peer_link_frames_total",
		     "Frames on the links with each other node, by direction.",
		     offsetof(struct cluster_link_counts, frames)},
		    {"starling_cluster_peer_forwarded_total",
		     "Publishes forwarded to (out) and received from (in) each other node.",
		     offsetof(struct cluster_link_counts, forwarded)},
		};
		for (size_t f = 0; f < sizeof(per_peer) / sizeof(per_peer[0]); f++) {
			family(&o, per_peer[f].name, "counter", per_peer[f].help);
			for (uint32_t i = 0; i <= c->peer_count; i++) {
				const uint64_t *v =
				    (const uint64_t *)((const char *)&c->peer[i] + per_peer[f].off);
				for (int d = 0; d < 2; d++)
					put(&o, "%s{peer=\"%s\",direction=\"%s\"} %llu\n",
					    per_peer[f].name, i ? c->peer_names[i - 1] : "", dir[d],
					    (unsigned long long)v[d]);
			}
		}
		family(&o, "starling_cluster_route_lag_seconds", "gauge",
		       "How long each node's routes held here have been behind what its own digest "
		       "says (0: in step); past half a second they are fetched whole.");
		for (uint32_t i = 0; i < c->peer_count; i++)
			put(&o, "starling_cluster_route_lag_seconds{origin=\"%s\"} %.3f\n",
			    c->peer_names[i], (double)c->route_lag_ms[i] / 1000);
		family(&o, "starling_cluster_forward_duplicates_total", "counter",
		       "Forwarded QoS 1/2 publishes received again after a link reconnected, "
		       "recognised by their link number and not delivered twice.");
		put(&o, "starling_cluster_forward_duplicates_total %llu\n",
		    (unsigned long long)c->forward_duplicates);
		static const char *const why[CLUSTER_LINK_DROPS] = {"full", "down", "too_large"};
		family(&o, "starling_cluster_link_drops_total", "counter",
		       "Publishes for a peer node dropped, by reason (full: its buffer, "
		       "cluster_link_buffer_bytes; down: dead or gone; too_large: beyond a link "
		       "frame).");
		for (int r = 0; r < CLUSTER_LINK_DROPS; r++)
			put(&o, "starling_cluster_link_drops_total{reason=\"%s\"} %llu\n", why[r],
			    (unsigned long long)c->link_drops[r]);
	}

	if (in->bridge_count > 0)
		bridge_families(&o, in);

	if (in->have_ops) {
		family(&o, "starling_ops_connections", "gauge",
		       "Connections open on metrics_listen, this scrape's included.");
		put(&o, "starling_ops_connections %llu\n", (unsigned long long)in->ops_connections);
		family(&o, "starling_ops_connections_accepted_total", "counter",
		       "Connections accepted on metrics_listen.");
		put(&o, "starling_ops_connections_accepted_total %llu\n",
		    (unsigned long long)in->ops_accepted);
		family(
		    &o, "starling_ops_connections_dropped_total", "counter",
		    "metrics_listen connections closed before they were done, by reason: evicted "
		    "(closed for a new connection when all metrics_max_connections were taken), "
		    "request_timeout (no whole request within metrics_request_timeout_ms), "
		    "send_timeout (the answer was not read in time).");
		put(&o, "starling_ops_connections_dropped_total{reason=\"evicted\"} %llu\n",
		    (unsigned long long)in->ops_evicted);
		put(&o, "starling_ops_connections_dropped_total{reason=\"request_timeout\"} %llu\n",
		    (unsigned long long)in->ops_request_timeouts);
		put(&o, "starling_ops_connections_dropped_total{reason=\"send_timeout\"} %llu\n",
		    (unsigned long long)in->ops_send_timeouts);
		family(&o, "starling_ops_unauthorized_total", "counter",
		       "/metrics requests answered 401 (missing or wrong credentials).");
		put(&o, "starling_ops_unauthorized_total %llu\n",
		    (unsigned long long)in->ops_unauthorized);
	}

	if (o.oom) {
		free(o.p);
		return NULL;
	}
	*len = o.len;
	return o.p;
}
