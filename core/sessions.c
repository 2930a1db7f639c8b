/*
 * sessions.c — a worker's session table: slot + generation per session, so
 * mailbox messages and index entries name sessions without pointers and a
 * reused slot never receives the previous session's mail. Only the owning
 * worker's thread calls these.
 */
#include <stdlib.h>

#include "log.h"
#include "worker.h"

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
		if (!s || !g || !f) {
			atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
			return id; /* gen 0: no slot */
		}
		for (uint32_t i = w->sess_cap; i < cap; i++) {
			w->sess[i] = NULL;
			w->sess_gens[i] = 1;
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

void sess_release_slot(struct worker *w, struct sess_id id)
{
	atomic_fetch_sub_explicit(&w->b->sess_count, 1, memory_order_relaxed);
	w->sess[id.slot] = NULL;
	uint32_t g = w->sess_gens[id.slot] + 1;
	w->sess_gens[id.slot] = g ? g : 1;
	w->sess_free[w->sess_free_len++] = id.slot;
}

static void unsubscribe_all(struct worker *w, struct session *s)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct sub_entry e = {s->id, s->subs[i].opts};
		index_change(w, false, f, &e);
	}
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

void sess_detach(struct worker *w, struct session *s)
{
	unsubscribe_all(w, s);
	sess_release_slot(w, s->id);
	s->online = false;
}
