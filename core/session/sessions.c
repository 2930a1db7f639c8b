/*
 * sessions.c — a worker's session table: slot + generation per session, so
 * mailbox messages and index entries name sessions without pointers and a
 * reused slot never receives the previous session's mail. Only the owning
 * worker's thread calls these.
 *
 * A session taken over by a connection on another worker (or this one)
 * moves to a new id. Mail already on its way to the old id — deliveries
 * routed before the takeover and not yet drained here, or routed by a
 * worker that has not yet applied the removal of the old id's
 * subscriptions — is passed on to the new id for SESS_MOVED_MS instead of
 * being dropped: a QoS 1 message acknowledged to its publisher must reach
 * the resumed session. The index entries are not removed and added anew
 * but moved in one delta each (index_move), sent from here at the detach:
 * a remove and a separate add could reach a worker apart, and a publish
 * between them would find no subscriber at all; and sent from here they
 * follow, on each mailbox, every delta this worker sent about the same
 * subscriptions, so no worker sees a move before the subscription it
 * moves. Mail routed to the new id may reach the new worker before the
 * session does; the adopter queues it after the session's own
 * (session_adopt in handle_connect.c). The old slot keeps its generation meanwhile, so the
 * forward cannot be confused with a later session in the same slot, and
 * is recycled by the sweep afterwards. The new session hears of the mail
 * only after its MB_HANDOVER: both leave this worker on one mailbox, in
 * order.
 */
#include <stdlib.h>

#include "base/log.h"
#include "loop/worker.h"

#define SESS_MOVED_MS 10000 /* mailboxes drain every turn: seconds are plenty */

struct session *sess_get(struct worker *w, struct sess_id id)
{
	if (id.worker != w->id || id.slot >= w->sess_cap)
		return NULL;
	struct session *s = w->sess[id.slot];
	return s && s->id.gen == id.gen ? s : NULL;
}

struct sess_id sess_reserve(struct worker *w)
{
	struct sess_id id = {0, 0, w->id};
	/* A bound on sessions, since offline ones outlive their connections:
	 * without it a client cycling client ids grows the node until expiry. */
	if (atomic_fetch_add_explicit(&w->b->sess_count, 1, memory_order_relaxed) >=
	    w->cfg->max_sessions) {
		atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
		return id; /* gen 0: no slot */
	}
	if (w->sess_free_len == 0) {
		uint32_t cap = w->sess_cap ? w->sess_cap * 2 : 1024;
		struct session **s = realloc(w->sess, cap * sizeof(*s));
		if (s)
			w->sess = s;
		uint32_t *g = realloc(w->sess_gens, cap * sizeof(*g));
		if (g)
			w->sess_gens = g;
		uint32_t *f = realloc(w->sess_free, cap * sizeof(*f));
		if (f)
			w->sess_free = f;
		struct sess_moved *mv = realloc(w->sess_moved, cap * sizeof(*mv));
		if (mv)
			w->sess_moved = mv;
		if (!s || !g || !f || !mv) {
			atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
			return id; /* gen 0: no slot */
		}
		for (uint32_t i = w->sess_cap; i < cap; i++) {
			w->sess[i] = NULL;
			w->sess_gens[i] = 1;
			w->sess_moved[i] = (struct sess_moved){0};
		}
		for (uint32_t i = cap; i > w->sess_cap; i--)
			w->sess_free[w->sess_free_len++] = i - 1;
		w->sess_cap = cap;
	}
	id.slot = w->sess_free[--w->sess_free_len];
	id.gen = w->sess_gens[id.slot];
	return id;
}

void sess_install(struct worker *w, struct session *s, struct sess_id id)
{
	s->id = id;
	w->sess[id.slot] = s;
}

/* A new generation for the slot, and back to the free list. */
static void slot_recycle(struct worker *w, uint32_t slot)
{
	uint32_t g = w->sess_gens[slot] + 1;
	w->sess_gens[slot] = g ? g : 1;
	w->sess_free[w->sess_free_len++] = slot;
}

void sess_release_slot(struct worker *w, struct sess_id id)
{
	atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
	w->sess[id.slot] = NULL;
	slot_recycle(w, id.slot);
}

static void unsubscribe_all(struct worker *w, struct session *s)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct sub_entry e = {s->id, s->subs[i].opts};
		index_change(w, false, f, &e);
	}
}

void sess_unindex_free(struct worker *w, struct session *s)
{
	unsubscribe_all(w, s);
	session_free(s);
}

void sess_end(struct worker *w, struct session *s)
{
	unsubscribe_all(w, s);
	shared_handoff(w, s); /* after: the group must not pick this session */
	registry_release(w->b->registry, s->client_id, s->client_id_len, s->id);
	sess_release_slot(w, s->id);
	LOG_DEBUG("session \"%s\" ended", s->client_id);
	session_free(s);
}

void sess_detach(struct worker *w, struct session *s, struct sess_id to)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct sub_entry e = {to, s->subs[i].opts};
		index_move(w, f, &e, s->id);
	}
	atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
	w->sess[s->id.slot] = NULL;
	w->sess_moved[s->id.slot] = (struct sess_moved){to, w->now_ms + SESS_MOVED_MS};
	s->id = to; /* what its index entries name from now on */
	s->online = false;
}

bool sess_moved_to(struct worker *w, struct sess_id id, struct sess_id *to)
{
	if (id.worker != w->id || id.slot >= w->sess_cap || w->sess[id.slot] ||
	    w->sess_gens[id.slot] != id.gen || w->sess_moved[id.slot].to.gen == 0)
		return false;
	*to = w->sess_moved[id.slot].to;
	return true;
}

void sess_moved_expire(struct worker *w, uint32_t slot)
{
	struct sess_moved *mv = &w->sess_moved[slot];
	if (mv->to.gen != 0 && w->now_ms >= mv->until_ms) {
		*mv = (struct sess_moved){0};
		slot_recycle(w, slot);
	}
}
