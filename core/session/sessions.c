/*
 * sessions.c — a worker's session table (see sessions.h). The owning
 * worker's thread only.
 */
#include "session/sessions.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "session/session.h"

void sessions_init(struct sessions *t, uint16_t id, uint32_t max, atomic_uint *node_count,
                   const uint64_t *now_ms)
{
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->max = max;
	t->node_count = node_count;
	t->now_ms = now_ms;
}

void sessions_fini(struct sessions *t)
{
	for (uint32_t i = 0; i < t->cap; i++)
		session_free(t->sess[i]);
	free(t->sess);
	free(t->moved);
	free(t->gens);
	free(t->journaled);
	free(t->free);
	memset(t, 0, sizeof(*t));
}

struct sess_id sess_reserve(struct sessions *t)
{
	struct sess_id id = {0, 0, t->id};
	/* A bound on sessions, since offline ones outlive their connections:
	 * without it a client cycling client ids grows the node until expiry. */
	if (atomic_fetch_add_explicit(t->node_count, 1, memory_order_relaxed) >= t->max) {
		atomic_fetch_sub_explicit(t->node_count, 1, memory_order_relaxed);
		return id; /* gen 0: no slot */
	}
	if (t->free_len == 0) {
		uint32_t cap = t->cap ? t->cap * 2 : 1024;
		struct session **s = realloc(t->sess, cap * sizeof(*s));
		if (s)
			t->sess = s;
		uint32_t *g = realloc(t->gens, cap * sizeof(*g));
		if (g)
			t->gens = g;
		uint32_t *f = realloc(t->free, cap * sizeof(*f));
		if (f)
			t->free = f;
		struct sess_moved *mv = realloc(t->moved, cap * sizeof(*mv));
		if (mv)
			t->moved = mv;
		bool *jr = realloc(t->journaled, cap * sizeof(*jr));
		if (jr)
			t->journaled = jr;
		if (!s || !g || !f || !mv || !jr) {
			atomic_fetch_sub_explicit(t->node_count, 1, memory_order_relaxed);
			return id; /* gen 0: no slot */
		}
		for (uint32_t i = t->cap; i < cap; i++) {
			t->sess[i] = NULL;
			t->gens[i] = 1;
			t->moved[i] = (struct sess_moved){0};
			t->journaled[i] = false;
		}
		for (uint32_t i = cap; i > t->cap; i--)
			t->free[t->free_len++] = i - 1;
		t->cap = cap;
	}
	id.slot = t->free[--t->free_len];
	id.gen = t->gens[id.slot];
	CHECK(t->sess[id.slot] == NULL && t->moved[id.slot].to.gen == 0);
	return id;
}

void sess_install(struct sessions *t, struct session *s, struct sess_id id)
{
	CHECK(id.worker == t->id && id.slot < t->cap && t->gens[id.slot] == id.gen);
	CHECK(t->sess[id.slot] == NULL);
	session_set_id(s, id);
	t->sess[id.slot] = s;
	t->journaled[id.slot] = false;
}

/* A new generation for the slot, and back to the free list. */
static void slot_recycle(struct sessions *t, uint32_t slot)
{
	uint32_t g = t->gens[slot] + 1;
	t->gens[slot] = g ? g : 1;
	t->free[t->free_len++] = slot;
}

void sess_release_slot(struct sessions *t, struct sess_id id)
{
	CHECK(id.worker == t->id && id.slot < t->cap && t->gens[id.slot] == id.gen);
	atomic_fetch_sub_explicit(t->node_count, 1, memory_order_relaxed);
	t->sess[id.slot] = NULL;
	t->journaled[id.slot] = false;
	slot_recycle(t, id.slot);
}

void sess_mark_moved(struct sessions *t, struct session *s, struct sess_id to)
{
	struct sess_id from = s->id;
	CHECK(sess_get(t, from) == s);
	atomic_fetch_sub_explicit(t->node_count, 1, memory_order_relaxed);
	t->sess[from.slot] = NULL;
	t->journaled[from.slot] = false;
	t->moved[from.slot] = (struct sess_moved){to, *t->now_ms + SESS_MOVED_MS};
	session_moved(s, to); /* what its index entries name from now on */
}

bool sess_moved_to(const struct sessions *t, struct sess_id id, struct sess_id *to)
{
	if (id.worker != t->id || id.slot >= t->cap || t->sess[id.slot] ||
	    t->gens[id.slot] != id.gen || t->moved[id.slot].to.gen == 0)
		return false;
	*to = t->moved[id.slot].to;
	return true;
}

void sess_moved_expire(struct sessions *t, uint32_t slot)
{
	struct sess_moved *mv = &t->moved[slot];
	if (mv->to.gen != 0 && *t->now_ms >= mv->until_ms) {
		*mv = (struct sess_moved){0};
		slot_recycle(t, slot);
	}
}
