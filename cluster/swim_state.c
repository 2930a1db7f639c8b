/*
 * swim_state.c — what one piece of news does to a member: the rules of
 * memberlist's aliveNode, suspectNode and deadNode (state.go), extended
 * with boot epochs; refutation; Lifeguard's suspicion timer and local
 * health; and the queue of updates to gossip.
 *
 * Called by: the instance's thread, from swim.c and swim_probe.c.
 *
 * The order of news about one name: a newer epoch first (a restarted
 * process replaces the record, RESTARTED), an older one is ignored; within
 * an epoch a higher incarnation wins; at the same incarnation suspect
 * overrides alive and dead or left override both. Only the member itself
 * raises its incarnation (refuting), so only it can undo a suspicion or a
 * death. Events are raised exactly when the state seen changes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "swim_int.h"

/* ---- Lifeguard local health (memberlist awareness.go) ---------------------- */

void health_add(struct swim *s, int delta)
{
	int v = (int)s->health + delta;
	int top = (int)s->p.awareness_max_multiplier - 1;
	s->health = (unsigned)(v < 0 ? 0 : v > top ? top : v);
}

uint64_t scaled_ms(const struct swim *s, uint32_t ms)
{
	return (uint64_t)ms * (s->health + 1);
}

/* ---- the gossip queue --------------------------------------------------- */

static void bcast_set(struct swim *s, struct bcast *b, const char *from)
{
	b->pending = true;
	b->transmits = 0;
	b->order = ++s->bcast_order;
	snprintf(b->from, sizeof(b->from), "%s", from ? from : "");
}

void bcast_member(struct swim *s, struct member *m, const char *from)
{
	bcast_set(s, &m->bc, from);
}

void bcast_self(struct swim *s)
{
	bcast_set(s, &s->self_bc, s->name);
}

void record_of(const struct swim *s, const struct member *m, struct wire_member *out)
{
	(void)s;
	*out = (struct wire_member){
	    .name = m->name,
	    .address = m->address,
	    .from = "",
	    .epoch = m->epoch,
	    .incarnation = m->incarnation,
	    .state = m->state,
	};
}

void record_of_self(const struct swim *s, struct wire_member *out)
{
	*out = (struct wire_member){
	    .name = s->name,
	    .address = s->address,
	    .from = s->left ? s->name : "",
	    .epoch = s->epoch,
	    .incarnation = s->incarnation,
	    .state = s->left ? SWIM_LEFT : SWIM_ALIVE,
	};
}

static int cand_cmp(const void *a, const void *b)
{
	const struct bcast_cand *x = a, *y = b;
	if (x->transmits != y->transmits)
		return x->transmits < y->transmits ? -1 : 1;
	return x->order > y->order ? -1 : x->order < y->order ? 1 : 0; /* newer first */
}

/*
 * Up to out_max updates that fit in budget bytes, the least sent first
 * and, among those, the newest (memberlist TransmitLimitedQueue). When
 * count, each taken update counts a transmission; at mult * ceil(log10(N +
 * 1)) it is done. Only packets to members believed alive count: copies to
 * suspect, dead or unknown addresses are likely lost, and with the fast
 * profile's 2 transmissions, one wasted on a crashed member left a death
 * known to its accuser alone. Strings in out point into the tables:
 * encode before changing them.
 */
size_t bcast_take(struct swim *s, size_t budget, struct wire_member *out, size_t out_max,
                  bool count)
{
	struct bcast_cand *c = s->cands;
	size_t n = 0;
	if (s->self_bc.pending)
		c[n++] =
		    (struct bcast_cand){s->self_bc.transmits, s->self_bc.order, &s->self_bc, NULL};
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		struct member *m = &s->members[i];
		if (m->used && m->bc.pending)
			c[n++] = (struct bcast_cand){m->bc.transmits, m->bc.order, &m->bc, m};
	}
	if (n == 0)
		return 0;
	qsort(c, n, sizeof(c[0]), cand_cmp);
	unsigned limit = swim_retransmit_limit(&s->p, nodes_estimate(s));
	size_t taken = 0;
	for (size_t i = 0; i < n && taken < out_max; i++) {
		struct wire_member rec;
		if (c[i].m) {
			record_of(s, c[i].m, &rec);
			rec.from = c[i].b->from;
		} else {
			record_of_self(s, &rec);
		}
		size_t size = wire_member_size(&rec);
		if (size > budget)
			continue;
		budget -= size;
		out[taken++] = rec;
		if (count && ++c[i].b->transmits >= limit)
			c[i].b->pending = false;
	}
	return taken;
}

/* ---- suspicion (memberlist suspicion.go) ---------------------------------- */

static void suspicion_start(struct swim *s, struct member *m, const char *from)
{
	/* k confirmations bring the timer to min; none are expected when the
	 * cluster is too small to give them (N - 2: not us, not the suspect). */
	size_t n = nodes_estimate(s);
	unsigned k = s->p.suspicion_mult >= 2 ? s->p.suspicion_mult - 2 : 0;
	if (n < (size_t)k + 2)
		k = 0;
	struct suspicion *su = &m->susp;
	memset(su, 0, sizeof(*su));
	su->start_ms = s->now_ms;
	su->min_ms = swim_suspicion_min_ms(&s->p, n);
	su->max_ms = su->min_ms * s->p.suspicion_max_timeout_mult;
	su->k = (uint8_t)k;
	su->seen[su->seen_len++] = name_hash(from); /* our own accusation comes back as gossip */
	su->deadline_ms = su->start_ms + (k == 0 ? su->min_ms : su->max_ms);
}

/* A new, independent confirmation: true when it moved the timer. */
static bool suspicion_confirm(struct member *m, const char *from)
{
	struct suspicion *su = &m->susp;
	if (su->n >= su->k)
		return false;
	uint64_t h = name_hash(from);
	for (size_t i = 0; i < su->seen_len; i++)
		if (su->seen[i] == h)
			return false;
	CHECK(su->seen_len < SWIM_CONFIRMERS_MAX);
	su->seen[su->seen_len++] = h;
	su->n++;
	su->deadline_ms =
	    su->start_ms + swim_suspicion_timeout_ms(su->min_ms, su->max_ms, su->k, su->n);
	return true; /* a deadline already past fires at the next tick */
}

static void member_dead(struct swim *s, struct member *m, uint32_t incarnation, const char *from,
                        uint8_t state)
{
	if (incarnation < m->incarnation)
		return;
	if (m->state == SWIM_DEAD || m->state == SWIM_LEFT)
		return;
	m->incarnation = incarnation;
	m->state = state;
	m->state_since_ms = s->now_ms;
	event_push(s, state == SWIM_LEFT ? SWIM_EV_LEFT : SWIM_EV_DEAD, m, 0);
	bcast_member(s, m, from);
}

void suspicions_expire(struct swim *s)
{
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		struct member *m = &s->members[i];
		if (m->used && m->state == SWIM_SUSPECT && m->susp.deadline_ms <= s->now_ms)
			member_dead(s, m, m->incarnation, s->name, SWIM_DEAD);
	}
}

uint64_t suspicions_deadline_ms(const struct swim *s)
{
	uint64_t d = UINT64_MAX;
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		const struct member *m = &s->members[i];
		if (m->used && m->state == SWIM_SUSPECT && m->susp.deadline_ms < d)
			d = m->susp.deadline_ms;
	}
	return d;
}

void member_suspect(struct swim *s, struct member *m, uint32_t incarnation, const char *from)
{
	if (incarnation < m->incarnation)
		return;
	if (m->state == SWIM_SUSPECT) {
		/* Pass confirmations on, so others' timers shrink too, even when
		 * several probers suspect the same member. */
		if (suspicion_confirm(m, from))
			bcast_member(s, m, from);
		return;
	}
	if (m->state != SWIM_ALIVE)
		return;
	m->incarnation = incarnation;
	m->state = SWIM_SUSPECT;
	m->state_since_ms = s->now_ms;
	suspicion_start(s, m, from);
	event_push(s, SWIM_EV_SUSPECT, m, 0);
	bcast_member(s, m, from);
}

/* ---- news about ourselves ------------------------------------------------- */

static void refute(struct swim *s, uint32_t accused)
{
	if (accused == UINT32_MAX)
		return; /* cannot outbid it; 4 billion refutations are not a real case */
	uint32_t inc = s->incarnation + 1;
	if (accused >= inc)
		inc = accused + 1;
	s->incarnation = inc;
	s->c.refutations++;
	/* Having to refute means we were too slow for someone (LHA). */
	health_add(s, 1);
	bcast_self(s);
}

static void self_update(struct swim *s, const struct wire_member *u)
{
	if (u->epoch < s->epoch) {
		s->c.updates_stale++; /* about our previous process */
		return;
	}
	if (u->epoch > s->epoch) {
		s->c.self_conflicts++; /* another process with our name, newer */
		return;
	}
	if (s->left)
		return; /* we said we left: no refuting after that */
	if (u->state == SWIM_ALIVE) {
		if (u->incarnation > s->incarnation ||
		    (u->incarnation == s->incarnation && strcmp(u->address, s->address) != 0))
			refute(s, u->incarnation);
		return;
	}
	if (u->incarnation >= s->incarnation)
		refute(s, u->incarnation);
}

/* ---- news about others --------------------------------------------------- */

static void member_alive(struct swim *s, struct member *m, const struct wire_member *u)
{
	if (u->incarnation <= m->incarnation)
		return;
	uint8_t was = m->state;
	m->incarnation = u->incarnation;
	snprintf(m->address, sizeof(m->address), "%s", u->address);
	if (was != SWIM_ALIVE) {
		m->state = SWIM_ALIVE;
		m->state_since_ms = s->now_ms;
		event_push(s, SWIM_EV_ALIVE, m, 0);
	}
	bcast_member(s, m, "");
}

/* A newer epoch replaces the record whatever it held (RESTARTED); the
 * caller then applies the update's state to the new epoch. */
static void member_restart(struct swim *s, struct member *m, const struct wire_member *u)
{
	uint64_t before = m->epoch;
	m->epoch = u->epoch;
	m->incarnation = u->incarnation;
	snprintf(m->address, sizeof(m->address), "%s", u->address);
	m->state = SWIM_ALIVE;
	m->state_since_ms = s->now_ms;
	m->rtt_ms = NO_RTT;
	m->has_payload = false;
	m->payload_len = 0;
	memset(&m->susp, 0, sizeof(m->susp));
	event_push(s, SWIM_EV_RESTARTED, m, before);
	bcast_member(s, m, "");
}

/*
 * Apply one record. merge: it comes from a push-pull, where a remote
 * "dead" only makes us suspect (memberlist mergeState: our own probes get
 * the last word, and the member a chance to refute).
 */
void apply_update(struct swim *s, const struct wire_member *u, bool merge)
{
	if (strcmp(u->name, s->name) == 0) {
		self_update(s, u);
		return;
	}
	struct member *m = member_find(s, u->name);
	if (!m) {
		/* Only the living are worth a record: news of a stranger's
		 * failure says nothing we could act on. */
		if (u->state != SWIM_ALIVE)
			return;
		m = member_add(s, u->name);
		if (!m) {
			s->c.dropped[SWIM_DROP_MEMBERS_FULL]++;
			return;
		}
		snprintf(m->address, sizeof(m->address), "%s", u->address);
		m->epoch = u->epoch;
		m->incarnation = u->incarnation;
		m->state = SWIM_ALIVE;
		m->state_since_ms = s->now_ms;
		event_push(s, SWIM_EV_JOINED, m, 0);
		bcast_member(s, m, "");
		return;
	}
	if (u->epoch < m->epoch) {
		s->c.updates_stale++;
		return;
	}
	if (u->epoch > m->epoch) {
		member_restart(s, m, u);
		if (u->state == SWIM_ALIVE)
			return;
	}
	switch (u->state) {
	case SWIM_ALIVE:
		member_alive(s, m, u);
		break;
	case SWIM_SUSPECT:
		member_suspect(s, m, u->incarnation, merge || !u->from[0] ? s->name : u->from);
		break;
	case SWIM_DEAD:
		if (merge)
			member_suspect(s, m, u->incarnation, s->name);
		else
			member_dead(s, m, u->incarnation, u->from[0] ? u->from : s->name,
			            SWIM_DEAD);
		break;
	case SWIM_LEFT:
		member_dead(s, m, u->incarnation, m->name, SWIM_LEFT);
		break;
	default:
		CHECK(!"the decoder lets only the four states through");
	}
}

void payload_heard(struct swim *s, struct member *m, const uint8_t *p, size_t len)
{
	CHECK(len <= SWIM_PAYLOAD_MAX);
	if (m->has_payload && m->payload_len == len &&
	    (len == 0 || memcmp(m->payload, p, len) == 0))
		return;
	m->has_payload = true;
	m->payload_len = (uint16_t)len;
	if (len)
		memcpy(m->payload, p, len);
	event_push(s, SWIM_EV_PAYLOAD, m, 0);
}
