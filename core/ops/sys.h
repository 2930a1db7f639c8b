/*
 * sys.h — the content of the $SYS/broker/... topics, laid out and formatted
 * the way mosquitto publishes them (mosquitto(8), "BROKER STATUS"), so the
 * dashboards and scripts written for mosquitto read Starling unchanged.
 *
 * Pure logic: worker 0 takes a snapshot of the node-wide counters every
 * sys_interval_s seconds, folds it into a struct sys_load and asks sys_items
 * for the (topic, value) pairs it then publishes retained at QoS 0. Nothing
 * here reads a clock or a counter itself; one struct sys_load has one owner.
 */
#ifndef STARLING_CORE_SYS_H
#define STARLING_CORE_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Node-wide, cumulative since start unless noted. */
struct sys_snapshot {
	uint64_t uptime_s;
	uint64_t clients_connected;    /* now */
	uint64_t clients_disconnected; /* offline persistent sessions now */
	uint64_t clients_maximum;      /* most connected at once since start */
	uint64_t connections_total;    /* accepted since start */
	uint64_t msgs_received;        /* PUBLISH packets in, all QoS */
	uint64_t msgs_sent;            /* PUBLISH packets out, all QoS */
	uint64_t msgs_dropped;         /* PUBLISH not delivered: queue/inflight limits */
	uint64_t bytes_received;       /* bytes off the wire */
	uint64_t bytes_sent;           /* bytes onto the wire */
	uint64_t subscriptions;        /* now */
	uint64_t retained;             /* retained messages now */
	uint64_t inflight;             /* QoS > 0 messages awaiting an ack now */
	uint64_t queued;               /* messages queued for sessions now */
	uint64_t heap_bytes;           /* allocator's currently allocated bytes */
	/* The cluster view, when the node is in a cluster (cluster/...). */
	bool cluster;
	char node[65];                 /* this node's name */
	uint64_t nodes[4];             /* other nodes: alive, suspect, dead, left */
	uint64_t links_up;             /* link connections this node dialled, up */
	uint64_t forwarded_in, forwarded_out; /* publishes from and to other nodes */
	uint64_t routes;               /* this node's routes (filters with subscribers) */
	bool synced;                   /* joined, with every node's routes and the retained set */
};

/* The counters that have 1/5/15-minute load averages. */
enum sys_load_series {
	SYS_LOAD_MSGS_RX,  /* msgs_received: load/messages/received and load/publish/received */
	SYS_LOAD_MSGS_TX,  /* msgs_sent: load/messages/sent and load/publish/sent */
	SYS_LOAD_BYTES_RX, /* bytes_received */
	SYS_LOAD_BYTES_TX, /* bytes_sent */
	SYS_LOAD_CONNS,    /* connections_total */
	SYS_LOAD_SERIES_N,
};

enum sys_load_period { SYS_LOAD_1MIN, SYS_LOAD_5MIN, SYS_LOAD_15MIN, SYS_LOAD_PERIODS_N };

/*
 * Exponentially-damped 1/5/15-minute averages of each series, in events (or
 * bytes) per minute, like mosquitto's $SYS/broker/load/...: each update with
 * interval t folds in the rate r = delta * 60 / t as
 *     avg = avg * e^(-t/T) + r * (1 - e^(-t/T)),   T = 60, 300, 900 s.
 * Zero-initialise (`struct sys_load l = {0};`) before the first update.
 */
struct sys_load {
	uint64_t prev[SYS_LOAD_SERIES_N];                          /* counters at the last update */
	double avg_per_min[SYS_LOAD_SERIES_N][SYS_LOAD_PERIODS_N]; /* per minute */
	bool primed; /* prev holds a real snapshot; false until the first update */
};

/*
 * Fold snapshot s, taken interval_s seconds after the previous one, into l.
 * The first update only records the counters (averages stay 0). A counter
 * that went backwards (a reset) counts as no events and becomes the new
 * baseline. A non-positive or non-finite interval_s records the counters
 * and leaves the averages alone.
 */
void sys_load_update(struct sys_load *l, const struct sys_snapshot *s, double interval_s);

struct sys_item {
	char topic[80]; /* NUL-terminated topic name */
	char value[64]; /* NUL-terminated payload text */
};

#define SYS_ITEMS_MAX 64 /* enough room for every item sys_items produces */

/*
 * Fill items (at most max of them) with every $SYS/broker/... topic and its
 * value, always in the same order; returns how many were filled. Integers
 * are decimal, the uptime is "N seconds", load averages have two decimals,
 * and $SYS/broker/version is version itself (e.g. "starling 0.1.0").
 */
size_t sys_items(const struct sys_snapshot *s, const struct sys_load *l, const char *version,
                 struct sys_item *items, size_t max);

#endif
