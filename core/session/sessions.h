/*
 * sessions.h — a worker's session table: slot + generation per session, so
 * mailbox messages and index entries name sessions without pointers and a
 * reused slot never receives the previous session's mail (sess_id.h). Only
 * the owning worker's thread calls these.
 *
 * A session that moves to another id (taken over by a connection on any
 * worker; mqtt/takeover.c) leaves its slot marked with where it went for
 * SESS_MOVED_MS: mail already on its way to the old id is passed on rather
 * than dropped, and the slot keeps its generation meanwhile, so the forward
 * cannot be confused with a later session in the same slot. The sweep
 * recycles it afterwards (sess_moved_expire).
 *
 * Sessions are bounded node-wide (max_sessions), since offline ones outlive
 * their connections: sess_reserve counts them in the node's counter.
 */
#ifndef STARLING_CORE_SESSIONS_H
#define STARLING_CORE_SESSIONS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "session/sess_id.h"
#include "session/session.h"

#define SESS_MOVED_MS 10000 /* mailboxes drain every turn: seconds are plenty */

/* Where a moved session went, and until when mail for it is passed on. */
struct sess_moved {
	struct sess_id to; /* to.gen == 0: not moved */
	uint64_t until_ms;
};

struct sessions {
	uint16_t id;               /* the worker */
	uint32_t max;              /* max_sessions, node-wide */
	atomic_uint *node_count;   /* sessions on the node, online and offline */
	const uint64_t *now_ms;    /* the worker's clock */
	struct session **sess;     /* slot -> session or NULL */
	struct sess_moved *moved;  /* slot -> where its session moved lately */
	uint32_t *gens;            /* slot -> current generation */
	bool *journaled;           /* slot -> the journal holds its session's state (persistence:
	                            * mqtt/lifecycle.c sets it, leaving the slot clears it) */
	uint32_t *free;            /* free slots, a stack */
	uint32_t free_len;
	uint32_t cap;              /* slots */
};

void sessions_init(struct sessions *t, uint16_t id, uint32_t max, atomic_uint *node_count,
                   const uint64_t *now_ms);
/* Free every session left (after the loop ended). */
void sessions_fini(struct sessions *t);

/* The session `id` names, if it is still this worker's and alive (inline:
 * every delivery asks). */
static inline struct session *sess_get(const struct sessions *t, struct sess_id id)
{
	if (id.worker != t->id || id.slot >= t->cap)
		return NULL;
	struct session *s = t->sess[id.slot];
	return s && s->id.gen == id.gen ? s : NULL;
}
/* A slot for a new session, counted against max_sessions; gen 0: none (the
 * node holds its maximum, or no memory). */
struct sess_id sess_reserve(struct sessions *t);
/* Put s in the slot sess_reserve gave (s's id becomes id). */
void sess_install(struct sessions *t, struct session *s, struct sess_id id);
/* Free the slot of a session that ends (or never started). */
void sess_release_slot(struct sessions *t, struct sess_id id);
/* s leaves this worker's table for the id `to` (a takeover): its slot
 * passes mail for the old id on to `to` for SESS_MOVED_MS. */
void sess_mark_moved(struct sessions *t, struct session *s, struct sess_id to);
/* The journal holds the state of the session in slot id (persistence). */
static inline bool sess_journaled(const struct sessions *t, struct sess_id id)
{
	return sess_get(t, id) != NULL && t->journaled[id.slot];
}
static inline void sess_set_journaled(struct sessions *t, struct sess_id id, bool on)
{
	if (sess_get(t, id))
		t->journaled[id.slot] = on;
}
/* Where the session `id` moved, when it did so lately. */
bool sess_moved_to(const struct sessions *t, struct sess_id id, struct sess_id *to);
/* Recycle an empty slot whose moved session's forwarding time is over
 * (the sweep's pass over the table). */
void sess_moved_expire(struct sessions *t, uint32_t slot);

#endif
