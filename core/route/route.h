/*
 * route.h — a worker's routing (DESIGN.md "Subscription index", "Retained
 * messages", "Mailboxes"): its copy of the node's subscription index, its
 * shard of the retained store, and how a message reaches the sessions a
 * plan names.
 *
 * A publish is matched once, on the worker that received it (plan.h);
 * sessions on this worker get it through the local delivery the layer
 * above registered (route_local_fn: mqtt/deliver.c), every other worker
 * gets one mailbox message per session carrying a reference to the same
 * immutable message. Subscription changes apply to this worker's copy of
 * the index first, then travel to every other worker as one shared delta
 * (delta.h); a filter's first and last subscription on the node are
 * reported to the effect hook (the cluster's route gossip; nobody yet).
 * Retained messages live in the shard of their topic's hash; a
 * subscription's lookup asks the shards and is answered only after the
 * shard's worker drained every mailbox up to what it held then.
 *
 * Nothing here knows connections or sessions beyond their ids. Only the
 * owning worker's thread calls these.
 */
#ifndef STARLING_CORE_ROUTE_H
#define STARLING_CORE_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "route/delta.h"
#include "route/held.h"
#include "route/moving.h"
#include "route/msg.h"
#include "route/plan.h"
#include "route/retain.h"
#include "route/subidx.h"

struct mail;
struct mbox_msg;
struct worker_stats;

/* Deliver m to the session `to` of this worker (borrows m). flags:
 * PLAN_RETAIN, PLAN_SHARED. */
typedef void (*route_local_fn)(void *ctx, struct sess_id to, struct msg *m, uint8_t qos,
                               uint8_t flags, uint32_t sub_id);
/* A delta of this node's sessions changed what its filter holds on the node
 * (DELTA_FIRST or DELTA_LAST), as this worker's copy applied it. Registered
 * on one worker only (the cluster: worker 0, whose copy applies every
 * delta of the node in one order, so its transitions are the node's). */
typedef void (*route_effect_fn)(void *ctx, const struct route_delta *d, enum delta_effect e);
/* m goes to the peer nodes the plan names (borrows m; the cluster's link);
 * called for every message with node targets, and for every retained
 * message published on this node (replicated to every node). */
typedef void (*route_forward_fn)(void *ctx, struct msg *m, const struct plan *p);

/* A retained lookup for one new subscription, answered by one shard. */
struct retained_lookup {
	struct sub_entry e; /* the subscriber and the options it subscribed with */
	uint64_t since_ns;  /* monotonic time of the subscription */
	uint16_t filter_len;
	char filter[]; /* NUL-terminated */
};

#define ROUTE_LOOKUPS_MAX 65536 /* retained lookups waiting on one shard */

/* A persistent session's QoS 2 PUBLISH: the packet id it came under, which
 * the journal keeps in the message's own record (persist/record.h
 * REC_MSG_IN). */
struct route_inbound {
	const char *client_id;
	uint16_t client_id_len;
	uint16_t pid;
	bool journaled; /* out: the message's records carry it */
};

struct router {
	uint16_t id;             /* the worker */
	unsigned count;          /* workers on the node */
	const uint64_t *now_ms;  /* the worker's clock */
	struct mail *mail;       /* the worker's mail */
	struct worker_stats *st; /* the worker's counters */
	struct subidx *subs;     /* this worker's copy of the node's index */
	struct retain *retained; /* this worker's shard */
	struct plan plan;        /* scratch of route_publish */
	/* Per worker, while a publish's plan runs: the message whose bytes
	 * are already counted in transit toward it (its first delivery there
	 * carries them, the others none: one message is held however many of
	 * that worker's sessions it goes to). NULL outside a publish. */
	const struct msg **charged;
	bool publishing;
	struct retained_lookup **rq; /* lookups to answer after the next full drain */
	uint32_t rq_len;
	uint32_t rq_cap;
	route_local_fn local; /* delivery to this worker's sessions */
	void *local_ctx;
	route_effect_fn effect; /* NULL: nobody listens */
	void *effect_ctx;
	route_forward_fn forward; /* NULL: a single node */
	void *forward_ctx;
	uint64_t node_rank; /* this node's origin_rank (msg.h); 0: a single node */
	/* Persistence on: called with every retained write (a set or a delete)
	 * this worker makes, before it goes to its shard: the journal records
	 * it and stamps m->retain_stamp (the node-wide order). NULL: off. */
	void (*journal_retained)(void *ctx, struct msg *m);
	void *journal_ctx;
	/* Persistence on: called for a QoS 1/2 message whose plan reached
	 * journaled subscriptions (plan.journaled), before anything of it is
	 * delivered: the journal writes its REC_MSG (with in, when not NULL)
	 * and stamps m->jstamp. false: the journal refused it (counted by the
	 * callee). */
	bool (*journal_msg)(void *ctx, struct msg *m, const struct plan *p,
	                    const struct route_inbound *in);
	/* Persistence on: this worker's journal position (persist/barrier.h:
	 * records appended, and durable); deliveries that must wait for it
	 * (held.h). NULL: off. */
	const uint64_t *journal_appended, *journal_durable;
	struct held held;
	struct moving moving; /* sessions that just moved: via their old worker */
};

/* The turn's end: deliveries held this turn wait for what the journal has
 * appended so far (held.h); those already durable go. */
void route_held_seal(struct router *r);
/* The journal is durable further: the held deliveries it covers go, in order. */
void route_held_release(struct router *r);

/* 0, or -1 when out of memory. Registers the route's mail kinds. */
int router_init(struct router *r, uint16_t id, unsigned count, const uint64_t *now_ms,
                struct mail *mail, struct worker_stats *st, route_local_fn local, void *local_ctx);
void router_fini(struct router *r);
/* Release what a route mail message references (mailboxes emptied at exit). */
void route_mail_discard(const struct mbox_msg *m);

/* Route a message (takes m's reference): retained messages to their shard,
 * then to every matching session. Returns the sessions it went to. A
 * message the journal refuses goes all the same (a will, $SYS: nobody to
 * tell), not kept across a crash. */
unsigned route_publish(struct router *r, struct msg *m);
/* The same for a client's PUBLISH: -1 when it reached journaled
 * subscriptions and the journal refused it (nothing delivered; the
 * publisher is told 0x97). in (NULL: none): a persistent publisher's QoS 2
 * packet id, journaled with the message when it reaches journaled
 * subscriptions (in->journaled set); else the caller journals it alone. */
int route_publish_client(struct router *r, struct msg *m, struct route_inbound *in);
/* Keep m in its topic's retained store, and nothing else (a replica from
 * another node; takes m's reference). */
void route_retain(struct router *r, struct msg *m);
/* Deliver m to one session wherever it is (borrows m); `to` may name a
 * peer node (a shared group's member there: forwarded for its group). */
void route_deliver_to(struct router *r, struct sess_id to, struct msg *m, uint8_t qos,
                      uint8_t flags, uint32_t sub_id);
/* The same for mail passed on from a session's old id to where it moved
 * (sessions.h): it goes straight there, never back the way moving.h sends
 * new mail, which would circle. */
void route_pass_on(struct router *r, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id);

/* Index changes: this worker's copy, then every other worker's, in order.
 * false: not made (out of memory). */
bool route_subscribe(struct router *r, struct mqtt_view filter, const struct sub_entry *e);
void route_unsubscribe(struct router *r, struct mqtt_view filter, struct sess_id who);
/* Recovery, on the main thread before the workers run: a restored
 * session's subscription into this worker's copy alone (the caller does
 * every worker's; worker 0's effect hook hears of it as of any other). */
bool route_restore(struct router *r, struct mqtt_view filter, const struct sub_entry *e);
/* A moving session's subscription: the entry of `was` becomes e, in one step
 * on every worker, so no publish in between finds neither. */
void route_move(struct router *r, struct mqtt_view filter, const struct sub_entry *e,
                struct sess_id was);
/* A peer node (number node, 1..PLAN_NODES_MAX - 1) has a subscriber for
 * filter (add) or no longer has one: an entry naming it, in every worker's
 * copy, in order. Never reported to the effect hook. */
void route_node_change(struct router *r, uint16_t node, struct mqtt_view filter, bool add);

/* Too much control mail waits toward a worker: new subscriptions and session
 * moves are refused (mail.h). */
bool route_congested(const struct router *r);

/* The member of a shared group whose turn it is (subidx_shared_pick). */
bool route_shared_pick(struct router *r, struct mqtt_view filter, struct sub_entry *out);

/* A new subscription wants the retained messages its filter matches: ask
 * the shards (after the SUBACK is queued, so they follow it). */
void route_retained_query(struct router *r, struct mqtt_view filter, const struct sub_entry *e);
/* Lookups wait for this shard (the loop drains every mailbox, then answers). */
bool route_lookups_waiting(const struct router *r);
void route_answer_lookups(struct router *r);

#endif
