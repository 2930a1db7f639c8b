/*
 * sess_id.h — the name of a session anywhere in a node: the worker that owns
 * it, its slot in that worker's session table, and the slot's generation.
 * A slot is reused after its session ends; the generation tells a stale
 * reference (an index entry or mailbox message about the old session) from
 * a live one, so nothing ever needs a pointer into another worker.
 */
#ifndef STARLING_CORE_SESS_ID_H
#define STARLING_CORE_SESS_ID_H

#include <stdbool.h>
#include <stdint.h>

struct sess_id {
	uint32_t slot;   /* index in the owning worker's session table */
	uint32_t gen;    /* generation of that slot; 0 is never used */
	uint16_t worker; /* owning worker */
};

/* An index entry that is not a session but a peer node with a subscriber
 * for the filter (the cluster's routes): slot is the node's number (plan.h),
 * gen 1. */
#define SESS_WORKER_NODE 0xFFFFu

static inline bool sess_id_eq(struct sess_id a, struct sess_id b)
{
	return a.slot == b.slot && a.gen == b.gen && a.worker == b.worker;
}

#endif
