/*
 * delta.h — a change to the subscription index: the one type every copy of
 * the index is kept equal by (DESIGN.md "Subscription index"). The owning
 * worker applies it to its copy first, then sends the same delta, shared and
 * reference-counted, to every other worker, in order; the cluster will
 * gossip the same changes between nodes, so there is one apply path.
 *
 * Applying a delta reports the filter's transition on this node: its first
 * subscription (0 -> 1) or its last one gone (1 -> 0), per exact filter as
 * subscribed ("$share/g/f" counts its group's members). That is what a
 * node's routes are made of (cluster issue: "the filters it has at least one
 * subscriber for"). origin_node and seq are room for the cluster: which node
 * the change comes from and its number there.
 *
 * Pure: no I/O. A delta is immutable once sent; only refs changes, by
 * whichever worker applied it last.
 */
#ifndef STARLING_CORE_DELTA_H
#define STARLING_CORE_DELTA_H

#include <stdatomic.h>
#include <stdint.h>

#include "route/subidx.h"
#include "view.h"

enum delta_op {
	DELTA_ADD = 1,    /* add e (or replace the options of e.who's entry) */
	DELTA_REMOVE = 2, /* remove e.who's entry */
	DELTA_MOVE = 3,   /* the entry of `was` becomes e, in one step (a session moved) */
};

/* What applying a delta did to its filter on this node. */
enum delta_effect {
	DELTA_SAME = 0,  /* the filter had subscriptions before and has after */
	DELTA_FIRST = 1, /* its first subscription: 0 -> 1 */
	DELTA_LAST = 2,  /* its last one went: 1 -> 0 */
	DELTA_FAILED = 3 /* out of memory: the index is unchanged */
};

struct route_delta {
	atomic_uint refs;     /* workers still to apply it; the last frees it */
	uint8_t op;           /* enum delta_op */
	uint16_t origin_node; /* 0: this node (the cluster numbers peers from 1) */
	uint64_t seq;         /* the change's number at its origin (0: not numbered) */
	struct sub_entry e;   /* ADD, MOVE: the entry; REMOVE: e.who */
	struct sess_id was;   /* MOVE: the entry it replaces */
	uint64_t at_ms;       /* MOVE: when it moved (the old worker's clock; route/moving.h) */
	uint16_t filter_len;  /* bytes */
	char filter[];        /* NUL-terminated, as subscribed */
};

/* A delta with one reference; NULL when out of memory. */
struct route_delta *route_delta_new(enum delta_op op, struct mqtt_view filter,
                                    const struct sub_entry *e, struct sess_id was);
void route_delta_unref(struct route_delta *d);

static inline struct mqtt_view route_delta_filter(const struct route_delta *d)
{
	return (struct mqtt_view){(const uint8_t *)d->filter, d->filter_len};
}

/* Apply d to ix and say what it did to the filter on this node. */
enum delta_effect route_delta_apply(struct subidx *ix, const struct route_delta *d);

#endif
