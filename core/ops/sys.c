/*
 * sys.c — owns the layout and formatting of the $SYS/broker/... tree and the
 * load-average arithmetic behind $SYS/broker/load/... . Called by worker 0
 * only, every sys_interval_s seconds, on a snapshot it has already summed
 * over the workers; a struct sys_load belongs to that one caller. No I/O, no
 * allocation, no clock.
 *
 * Topic names and value formats are mosquitto's (mosquitto(8), "BROKER
 * STATUS", and its sys_tree.c) so existing consumers parse them unchanged:
 * integers in decimal, "N seconds" for the uptime, "%.2f" for load averages.
 * Where we differ:
 *   - mosquitto's $SYS/broker/messages/... count MQTT packets of every type;
 *     this broker counts PUBLISH packets only, so messages/... and
 *     publish/messages/... (and load/messages/... and load/publish/...)
 *     carry the same numbers.
 *   - load/connections counts accepted connections, not CONNECT packets.
 *   - store/messages/count is the messages queued for sessions; retained
 *     messages are counted apart, in "retained messages/count".
 *   - the heap topic is "heap/current", the name mosquitto's code publishes
 *     (its manual says "heap/current size").
 *
 * Invariant: sys_items always produces the same topics in the same order,
 * and every topic is a valid topic name (no '+' or '#') under $SYS/broker/.
 */
#include "ops/sys.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Seconds over which each load average is damped, by enum sys_load_period. */
static const double period_s[SYS_LOAD_PERIODS_N] = {60.0, 300.0, 900.0};
static const char *const period_name[SYS_LOAD_PERIODS_N] = {"1min", "5min", "15min"};

static void counters_of(const struct sys_snapshot *s, uint64_t out[SYS_LOAD_SERIES_N])
{
	out[SYS_LOAD_MSGS_RX] = s->msgs_received;
	out[SYS_LOAD_MSGS_TX] = s->msgs_sent;
	out[SYS_LOAD_BYTES_RX] = s->bytes_received;
	out[SYS_LOAD_BYTES_TX] = s->bytes_sent;
	out[SYS_LOAD_CONNS] = s->connections_total;
}

void sys_load_update(struct sys_load *l, const struct sys_snapshot *s, double interval_s)
{
	assert(l != NULL && s != NULL);
	uint64_t now[SYS_LOAD_SERIES_N];
	counters_of(s, now);

	/* Without a baseline or a usable interval there is no rate to fold in. */
	if (l->primed && interval_s > 0.0 && isfinite(interval_s)) {
		double keep[SYS_LOAD_PERIODS_N];
		for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++)
			keep[p] = exp(-interval_s / period_s[p]);
		for (size_t i = 0; i < SYS_LOAD_SERIES_N; i++) {
			/* A counter that went backwards was reset: no events, not 2^64. */
			uint64_t delta = now[i] >= l->prev[i] ? now[i] - l->prev[i] : 0;
			double rate_per_min = (double)delta * 60.0 / interval_s;
			for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++) {
				double *avg = &l->avg_per_min[i][p];
				*avg = *avg * keep[p] + rate_per_min * (1.0 - keep[p]);
			}
		}
	}
	memcpy(l->prev, now, sizeof(now));
	l->primed = true;
}

/* A bounded list of items: past max, further items are not written. */
struct out {
	struct sys_item *items;
	size_t used;
	size_t max;
};

__attribute__((format(printf, 3, 4))) static void add(struct out *o, const char *topic,
                                                      const char *fmt, ...)
{
	if (o->used >= o->max)
		return;
	struct sys_item *it = &o->items[o->used++];
	int n = snprintf(it->topic, sizeof(it->topic), "$SYS/broker/%s", topic);
	assert(n > 0 && (size_t)n < sizeof(it->topic) && "every topic fits");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(it->value, sizeof(it->value), fmt, ap); /* a long version is cut */
	va_end(ap);
}

static void add_u64(struct out *o, const char *topic, uint64_t v)
{
	add(o, topic, "%" PRIu64, v);
}

/* The three averages of one series under load/<name>/{1min,5min,15min}. */
static void add_load(struct out *o, const char *name, const struct sys_load *l,
                     enum sys_load_series series)
{
	for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++) {
		char topic[64];
		snprintf(topic, sizeof(topic), "load/%s/%s", name, period_name[p]);
		add(o, topic, "%.2f", l->avg_per_min[series][p]);
	}
}

size_t sys_items(const struct sys_snapshot *s, const struct sys_load *l, const char *version,
                 struct sys_item *items, size_t max)
{
	assert(s != NULL && l != NULL && version != NULL && (items != NULL || max == 0));
	struct out o = {items, 0, max};

	add(&o, "version", "%s", version);
	add(&o, "uptime", "%" PRIu64 " seconds", s->uptime_s);
	add_u64(&o, "clients/connected", s->clients_connected);
	add_u64(&o, "clients/disconnected", s->clients_disconnected);
	add_u64(&o, "clients/total", s->clients_connected + s->clients_disconnected);
	add_u64(&o, "clients/maximum", s->clients_maximum);
	/* PUBLISH only, both pairs: see the top of this file. */
	add_u64(&o, "messages/received", s->msgs_received);
	add_u64(&o, "messages/sent", s->msgs_sent);
	add_u64(&o, "publish/messages/received", s->msgs_received);
	add_u64(&o, "publish/messages/sent", s->msgs_sent);
	add_u64(&o, "publish/messages/dropped", s->msgs_dropped);
	add_u64(&o, "bytes/received", s->bytes_received);
	add_u64(&o, "bytes/sent", s->bytes_sent);
	add_u64(&o, "subscriptions/count", s->subscriptions);
	add_u64(&o, "retained messages/count", s->retained); /* sic: mosquitto's space */
	add_u64(&o, "messages/inflight", s->inflight);
	add_u64(&o, "store/messages/count", s->queued);
	add_u64(&o, "heap/current", s->heap_bytes);

	add_load(&o, "messages/received", l, SYS_LOAD_MSGS_RX);
	add_load(&o, "messages/sent", l, SYS_LOAD_MSGS_TX);
	add_load(&o, "publish/received", l, SYS_LOAD_MSGS_RX);
	add_load(&o, "publish/sent", l, SYS_LOAD_MSGS_TX);
	add_load(&o, "bytes/received", l, SYS_LOAD_BYTES_RX);
	add_load(&o, "bytes/sent", l, SYS_LOAD_BYTES_TX);
	add_load(&o, "connections", l, SYS_LOAD_CONNS);

	if (s->cluster) {
		add(&o, "cluster/node", "%s", s->node);
		add_u64(&o, "cluster/nodes/alive", s->nodes[0]);
		add_u64(&o, "cluster/nodes/suspect", s->nodes[1]);
		add_u64(&o, "cluster/nodes/dead", s->nodes[2]);
		add_u64(&o, "cluster/nodes/left", s->nodes[3]);
		add_u64(&o, "cluster/links/up", s->links_up);
		add_u64(&o, "cluster/forwarded/received", s->forwarded_in);
		add_u64(&o, "cluster/forwarded/sent", s->forwarded_out);
		add_u64(&o, "cluster/routes", s->routes);
		add_u64(&o, "cluster/synced", s->synced);
	}

	assert(o.used <= SYS_ITEMS_MAX);
	return o.used;
}
