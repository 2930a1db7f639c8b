/*
 * sys_publish.c — publishing the $SYS/broker/... topics (content in sys.c).
 * Runs on worker 0 only, from its loop, every cfg->sys_interval_s: it reads
 * every worker's published statistics (stats.h), the same numbers /metrics
 * shows, and routes each changed value as a retained QoS 0 message through
 * the ordinary publish path, so subscribers, retained shards and (later)
 * ACLs treat it like any message. Unchanged values are not sent again: they
 * are retained, a new subscriber gets them anyway.
 */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "ops/ops.h"
#include "ops/sys.h"
#include "ops/sys_publish.h"
#include "loop/worker.h"

struct sys_state {
	uint64_t next_ms; /* next publication */
	uint64_t last_ms; /* the previous one, for load averages */
	struct sys_load load;
	struct sys_item sent[SYS_ITEMS_MAX]; /* what each topic last carried */
	size_t sent_len;
};

struct sys_state *sys_state_new(void)
{
	return calloc(1, sizeof(struct sys_state));
}

void sys_state_free(struct sys_state *s)
{
	free(s);
}

static void snapshot(struct worker *w, struct sys_snapshot *s)
{
	struct broker *b = w->b;
	struct worker_stats t = {0}, one;
	for (unsigned i = 0; i < b->worker_count; i++) {
		if (i == w->id)
			one = w->st; /* ours, fresher than what we published */
		else
			stats_read(&b->workers[i]->pub, &one);
		stats_add(&t, &one);
	}
	memset(s, 0, sizeof(*s));
	s->uptime_s = (w->now_ms - b->start_ms) / 1000;
	s->clients_connected = t.sessions_online;
	s->clients_disconnected = t.sessions_offline;
	s->clients_maximum = atomic_load_explicit(&b->tnode.conn_max, memory_order_relaxed);
	s->connections_total = t.conns_accepted;
	s->msgs_received = t.msgs_in[0] + t.msgs_in[1] + t.msgs_in[2];
	s->msgs_sent = t.msgs_out[0] + t.msgs_out[1] + t.msgs_out[2];
	s->msgs_dropped = t.drops_outbox + t.drops_oversize + t.drops_queue + t.drops_expired +
	                  t.drops_transit + t.drops_no_subscribers + t.drops_denied;
	s->bytes_received = t.bytes_in;
	s->bytes_sent = t.bytes_out;
	s->subscriptions = w->st.subscriptions; /* every worker holds the whole index */
	s->retained = t.retained;
	s->inflight = t.inflight;
	s->queued = t.queued_msgs;
	struct ops_memory mem;
	if (ops_read_memory(&mem))
		s->heap_bytes = mem.allocated_bytes;
	struct cluster_view *v = &b->cluster_view;
	s->cluster = atomic_load_explicit(&v->enabled, memory_order_relaxed);
	if (s->cluster) {
		memcpy(s->node, v->self_name, sizeof(s->node));
		for (int i = 0; i < 4; i++)
			s->nodes[i] = atomic_load_explicit(&v->members[CLUSTER_ALIVE + i],
			                                   memory_order_relaxed);
		s->links_up = atomic_load_explicit(&v->links_up, memory_order_relaxed);
		s->forwarded_in = atomic_load_explicit(&v->forwarded[0], memory_order_relaxed);
		s->forwarded_out = atomic_load_explicit(&v->forwarded[1], memory_order_relaxed);
		s->routes = atomic_load_explicit(&v->routes[0], memory_order_relaxed);
		s->synced = atomic_load_explicit(&v->synced, memory_order_relaxed);
	}
}

static void publish_item(struct worker *w, const struct sys_item *it)
{
	/* msg_new copies a PUBLISH as it was on the wire (one contiguous
	 * body), so build that first, as a client would have sent it. */
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(it->topic);
	p.publish.payload = mqtt_view_str(it->value);
	p.publish.retain = true;
	uint8_t wire[sizeof(it->topic) + sizeof(it->value) + 16];
	size_t n = mqtt_encode(&p, MQTT_V5, wire, sizeof(wire));
	struct mqtt_packet d;
	struct msg *m = NULL;
	if (n > 0 && mqtt_decode_buf(wire, n, MQTT_V5, &d, NULL) == MQTT_RC_SUCCESS) {
		struct sess_id nobody = {0}; /* no session: no-local never applies */
		m = msg_new(&d.publish, MQTT_V5, d.publish.topic, nobody, w->now_ms);
	}
	if (!m) {
		LOG_WARN_RL(1, "$SYS: cannot publish %s", it->topic);
		return;
	}
	route_publish(&w->route, m);
}

void sys_tick(struct worker *w)
{
	struct sys_state *st = w->sys;
	if (w->now_ms < st->next_ms)
		return;
	uint64_t interval_ms = (uint64_t)w->cfg->sys_interval_s * 1000;
	/* The first publication right after start, then every interval. */
	st->next_ms = w->now_ms + interval_ms;
	struct sys_snapshot snap;
	snapshot(w, &snap);
	sys_load_update(&st->load, &snap,
	                st->last_ms ? (double)(w->now_ms - st->last_ms) / 1000.0 : 0);
	st->last_ms = w->now_ms;
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&snap, &st->load, "starling " STARLING_VERSION, items, SYS_ITEMS_MAX);
	/* sys_items gives the same topics in the same order every time. */
	for (size_t i = 0; i < n; i++) {
		if (i < st->sent_len && !strcmp(st->sent[i].value, items[i].value))
			continue;
		publish_item(w, &items[i]);
		st->sent[i] = items[i];
	}
	st->sent_len = n;
}
