/*
 * plan.h — where one message goes, decided once on the worker that received
 * it (DESIGN.md "Subscription index"), before anything is delivered: pure,
 * unit-tested without a ring or a connection.
 *
 * plan_make matches the topic in an index and merges a session's
 * overlapping subscriptions into one delivery with the highest QoS
 * [MQTT-3.3.4-2], one per distinct subscription identifier so each
 * identifier reaches the client [MQTT-3.3.4-3, -5] (a 3.1.1 session has
 * none: one copy); no-local subscriptions drop out for the publisher's own
 * session [MQTT-3.8.3-3]; the delivery QoS is the lower of the message's
 * and the subscription's; the retain flag goes out only with Retain As
 * Published [MQTT-3.3.1-12]; a delivery through a shared group is marked so
 * (its session hands it back to the group if it ends unacknowledged), unless
 * the session also has a subscription of its own that matched.
 *
 * Targets come out ordered by worker, then session, when the match drew
 * from several lists (to merge a session's overlapping subscriptions); from
 * one list (one filter's subscribers, the common fan-out) in that list's
 * order, unsorted: no session is in it twice, and the sort was ~8% of a
 * fan-out's time. Order does not matter to executing the plan (route.c: one
 * delivery or mailbox message per target). A plan also has room for the peer
 * nodes a message is forwarded to (the cluster fills it from the same
 * index: entries whose worker is SESS_WORKER_NODE name a peer node by its
 * number in slot), once per node however many of its filters matched; a
 * plan made for a message that arrived from another node names no nodes:
 * it is delivered locally and never forwarded again, and its shared groups
 * are served here only when the sender chose this node for them
 * (msg.forwarded_shared), by a member on this node.
 *
 * Limits: the targets of one plan are bounded by the subscriptions on the
 * node (max_sessions x subscriptions_max); the scratch shrinks back after a
 * large match so one burst does not keep its memory.
 */
#ifndef STARLING_CORE_PLAN_H
#define STARLING_CORE_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "route/msg.h"
#include "route/subidx.h"

/* Peer nodes one message can be forwarded to; node numbers are
 * 1..PLAN_NODES_MAX - 1. */
#define PLAN_NODES_MAX 64

/* One delivery. */
struct plan_target {
	struct sess_id who; /* the session */
	uint32_t sub_id;    /* subscription identifier to send, 0 = none */
	uint8_t qos;        /* QoS to deliver with */
	uint8_t flags;      /* DELIV_RETAIN, DELIV_SHARED, DELIV_JOURNALED (session.h) */
};

#define PLAN_RETAIN 0x01 /* = DELIV_RETAIN */
#define PLAN_SHARED 0x02 /* = DELIV_SHARED */
#define PLAN_JOURNALED                                                                             \
	0x04 /* = DELIV_JOURNALED: a journaled subscription (subidx.h)                             \
	      * matched, at QoS 1 or 2 */

struct plan_match; /* plan.c's scratch entry */

struct plan {
	struct plan_target *t;      /* the deliveries, by worker then session */
	uint32_t len;               /* targets in t */
	uint32_t journaled;         /* of them, with PLAN_JOURNALED */
	uint32_t cap;               /* allocated */
	struct plan_match *scratch; /* matches before merging */
	uint32_t scratch_len;
	uint32_t scratch_cap;
	uint16_t nodes[PLAN_NODES_MAX]; /* peer nodes to forward to, once each */
	uint32_t node_count;
	uint64_t nodes_shared; /* bit n: node n was chosen for a shared group */
	bool local_only;       /* made for a forwarded message: never forward again */
};

void plan_init(struct plan *p);
void plan_fini(struct plan *p);

/* Match m's topic in ix and make the deliveries (replacing what p held).
 * Advances the turn of matching shared groups. 0, or -1 when out of memory
 * (p then holds what was planned before memory ran out). */
int plan_make(struct plan *p, struct subidx *ix, const struct msg *m);

#endif
