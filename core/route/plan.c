/*
 * plan.c — where one message goes (see plan.h). Pure; the calling worker's
 * thread, on its own index and plan.
 */
#include "route/plan.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

#define SCRATCH_KEEP 4096 /* entries kept between plans; more are freed after use */

struct plan_match {
	struct sub_entry e;
	bool shared;
};

void plan_init(struct plan *p)
{
	memset(p, 0, sizeof(*p));
}

void plan_fini(struct plan *p)
{
	free(p->t);
	free(p->scratch);
	memset(p, 0, sizeof(*p));
}

struct collect {
	struct plan *p;
	bool oom;
};

/* subidx_match callback: gather, merge later. */
static void collect(void *ctx, const struct sub_entry *e, bool shared)
{
	struct collect *c = ctx;
	struct plan *p = c->p;
	if (p->scratch_len == p->scratch_cap) {
		uint32_t cap = p->scratch_cap ? p->scratch_cap * 2 : 64;
		struct plan_match *n = realloc(p->scratch, cap * sizeof(*n));
		if (!n) {
			c->oom = true;
			return;
		}
		p->scratch = n;
		p->scratch_cap = cap;
	}
	p->scratch[p->scratch_len++] = (struct plan_match){*e, shared};
}

static int by_session(const void *a, const void *b)
{
	const struct sub_entry *x = &((const struct plan_match *)a)->e,
	                       *y = &((const struct plan_match *)b)->e;
	if (x->who.worker != y->who.worker)
		return x->who.worker < y->who.worker ? -1 : 1;
	if (x->who.slot != y->who.slot)
		return x->who.slot < y->who.slot ? -1 : 1;
	if (x->who.gen != y->who.gen)
		return x->who.gen < y->who.gen ? -1 : 1;
	if (x->opts.sub_id != y->opts.sub_id)
		return x->opts.sub_id < y->opts.sub_id ? -1 : 1;
	return 0;
}

static bool target_add(struct plan *p, const struct plan_target *t)
{
	if (p->len == p->cap) {
		uint32_t cap = p->cap ? p->cap * 2 : 64;
		struct plan_target *n = realloc(p->t, cap * sizeof(*n));
		if (!n)
			return false;
		p->t = n;
		p->cap = cap;
	}
	p->t[p->len++] = *t;
	return true;
}

/* After a large match, give the memory back. */
static void shrink(struct plan *p)
{
	if (p->scratch_cap > SCRATCH_KEEP) {
		free(p->scratch);
		p->scratch = NULL;
		p->scratch_cap = 0;
	}
	if (p->cap > SCRATCH_KEEP) {
		free(p->t);
		p->t = NULL;
		p->cap = 0;
	}
}

int plan_make(struct plan *p, struct subidx *ix, const struct msg *m)
{
	shrink(p); /* the last plan was executed: its targets are done with */
	p->len = 0;
	p->journaled = 0;
	p->scratch_len = 0;
	p->node_count = 0;
	p->nodes_shared = 0;
	/* A message another node forwarded is delivered here and goes no
	 * further: every node matched it once, at its ingress, and chose there
	 * which node serves each shared group. */
	p->local_only = m->forwarded;
	enum subidx_groups groups = !m->forwarded         ? SUBIDX_GROUPS_ALL
	                            : m->forwarded_shared ? SUBIDX_GROUPS_LOCAL
	                                                  : SUBIDX_GROUPS_NONE;
	struct collect c = {p, false};
	subidx_match_groups(ix, m->pub.topic, groups, collect, &c);
	/* Sorting brings a session's overlapping subscriptions (and a peer
	 * node's filters) together to merge them; from one list nothing
	 * overlaps, and fan-out spent ~8% of its time sorting that list. */
	if (p->scratch_len > 1 && subidx_match_lists(ix) > 1)
		qsort(p->scratch, p->scratch_len, sizeof(*p->scratch), by_session);

	uint32_t i = 0;
	while (i < p->scratch_len) {
		struct sess_id who = p->scratch[i].e.who;
		if (who.worker == SESS_WORKER_NODE) {
			/* A peer node's filters: the message goes there once (sorted
			 * last, by node, when several lists matched), with a note
			 * when a group chose it. */
			bool shared = false;
			for (;
			     i < p->scratch_len && p->scratch[i].e.who.worker == SESS_WORKER_NODE &&
			     p->scratch[i].e.who.slot == who.slot;
			     i++)
				shared |= p->scratch[i].shared;
			if (p->local_only || who.slot == 0 || who.slot >= PLAN_NODES_MAX)
				continue;
			p->nodes[p->node_count++] = (uint16_t)who.slot;
			if (shared)
				p->nodes_shared |= 1ull << who.slot;
			continue;
		}
		uint32_t sub_id = p->scratch[i].e.opts.sub_id;
		int qos = -1;
		bool rap = false, shared = true, journaled = false;
		for (; i < p->scratch_len && sess_id_eq(p->scratch[i].e.who, who) &&
		       p->scratch[i].e.opts.sub_id == sub_id;
		     i++) {
			const struct sub_opts *o = &p->scratch[i].e.opts;
			if (o->no_local && sess_id_eq(who, m->origin))
				continue;
			if (o->qos > qos)
				qos = o->qos;
			rap |= o->rap;
			journaled |= o->journaled;
			shared &= p->scratch[i].shared; /* any own subscription: it is theirs */
		}
		if (qos < 0)
			continue;
		struct plan_target t = {
		    .who = who,
		    .sub_id = sub_id,
		    .qos = (uint8_t)qos < m->pub.qos ? (uint8_t)qos : m->pub.qos,
		    .flags = (uint8_t)((rap && m->pub.retain ? PLAN_RETAIN : 0) |
		                       (shared ? PLAN_SHARED : 0)),
		};
		if (journaled && t.qos > 0) {
			t.flags |= PLAN_JOURNALED;
			p->journaled++;
		}
		if (!target_add(p, &t))
			return -1;
	}
	return c.oom ? -1 : 0;
}
