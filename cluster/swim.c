/*
 * swim.c — a membership instance (swim.h): parameters and profiles, the
 * member table (slots, a name index, the shuffled probe order), the
 * bounded queues of outgoing datagrams and events, the PRNG, the timers
 * swim_tick runs and swim_next_deadline_ms reports, and the entry points
 * that are not about a received packet (join, leave, payload, probe now).
 * The protocol itself is in swim_state.c (what an update does to a member)
 * and swim_probe.c (probes, gossip, push-pull, received packets); the
 * bytes in swim_wire.c.
 *
 * Called by: the one thread that owns the instance. Pure: the caller hands
 * in the time and the datagrams and takes datagrams and events out.
 *
 * Invariants: members_used counts the used slots and never exceeds
 * members_max; every used slot is in the index once and in the probe order
 * once; the rings hold at most out_max datagrams (out_bytes of them, at
 * most out_bytes_max) and events_max events; time handed in never goes
 * back.
 */
#include "swim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "swim_int.h"

/* ---- parameters ---------------------------------------------------------- */

int swim_params_profile(struct swim_params *p, const char *profile)
{
	if (!profile)
		return -EINVAL;
	if (strcmp(profile, "lan") == 0) {
		/* memberlist DefaultLANConfig; reconnect as serf's ReconnectInterval. */
		*p = (struct swim_params){
		    .probe_interval_ms = 1000,
		    .probe_timeout_ms = 500,
		    .indirect_checks = 3,
		    .suspicion_mult = 4,
		    .suspicion_max_timeout_mult = 6,
		    .gossip_interval_ms = 200,
		    .gossip_nodes = 3,
		    .gossip_to_the_dead_ms = 30000,
		    .retransmit_mult = 4,
		    .push_pull_interval_ms = 30000,
		    .reconnect_interval_ms = 30000,
		    .join_retry_ms = 2000,
		    .awareness_max_multiplier = 8,
		    .dead_forget_ms =
		        24u * 3600 * 1000, /* serf's reconnect and tombstone timeouts */
		};
	} else if (strcmp(profile, "fast") == 0) {
		/* Tests and CI on loopback: memberlist's DefaultLocalConfig with a
		 * faster probe; the same helper count as "lan", so tests exercise
		 * the production logic. */
		*p = (struct swim_params){
		    .probe_interval_ms = 200,
		    .probe_timeout_ms = 100,
		    .indirect_checks = 3,
		    .suspicion_mult = 3,
		    .suspicion_max_timeout_mult = 6,
		    .gossip_interval_ms = 100,
		    .gossip_nodes = 3,
		    .gossip_to_the_dead_ms = 15000,
		    .retransmit_mult = 2,
		    .push_pull_interval_ms = 15000,
		    .reconnect_interval_ms = 2000,
		    .join_retry_ms = 500,
		    .awareness_max_multiplier = 8,
		    .dead_forget_ms = 60000,
		};
	} else {
		return -EINVAL;
	}
	p->members_max = SWIM_MEMBERS_MAX;
	p->events_max = 2 * SWIM_MEMBERS_MAX;
	p->out_max = 512;
	p->out_bytes_max = 4u << 20;
	return 0;
}

const char *swim_params_invalid(const struct swim_params *p)
{
	if (!p)
		return "no parameters";
	if (p->probe_interval_ms == 0 || p->probe_timeout_ms == 0 ||
	    p->probe_timeout_ms >= p->probe_interval_ms)
		return "probe timeout must be above 0 and below the probe interval";
	if (p->indirect_checks > SWIM_HELPERS_MAX)
		return "indirect_checks above SWIM_HELPERS_MAX";
	if (p->suspicion_mult < 1 || p->suspicion_mult > SWIM_CONFIRMERS_MAX + 1)
		return "suspicion_mult must be 1..10";
	if (p->suspicion_max_timeout_mult < 1)
		return "suspicion_max_timeout_mult must be at least 1";
	if (p->gossip_interval_ms == 0 || p->gossip_nodes == 0 || p->gossip_nodes > 64)
		return "gossip needs an interval and 1..64 nodes";
	if (p->retransmit_mult < 1)
		return "retransmit_mult must be at least 1";
	if (p->push_pull_interval_ms == 0 || p->reconnect_interval_ms == 0 || p->join_retry_ms == 0)
		return "push-pull, reconnect and join retry intervals must be above 0";
	if (p->awareness_max_multiplier < 1 || p->awareness_max_multiplier > 64)
		return "awareness_max_multiplier must be 1..64";
	if (p->members_max < 1 || p->members_max > SWIM_MEMBERS_MAX)
		return "members_max must be 1..SWIM_MEMBERS_MAX";
	if (p->events_max < 1 || p->out_max < 1)
		return "events_max and out_max must be at least 1";
	if (p->out_bytes_max < SWIM_PUSH_PULL_BYTES_MAX)
		return "out_bytes_max must hold a push-pull part";
	return NULL;
}

uint64_t swim_suspicion_min_ms(const struct swim_params *p, size_t nodes)
{
	/* memberlist util.go suspicionTimeout: the node scale in thousandths. */
	double scale = fmax(1.0, log10(fmax(1.0, (double)nodes)));
	return (uint64_t)p->suspicion_mult * (uint64_t)(scale * 1000) * p->probe_interval_ms / 1000;
}

uint64_t swim_suspicion_timeout_ms(uint64_t min_ms, uint64_t max_ms, unsigned k,
                                   unsigned confirmations)
{
	if (k == 0)
		return min_ms;
	double frac = log((double)confirmations + 1.0) / log((double)k + 1.0);
	double raw = (double)max_ms - frac * (double)(max_ms - min_ms);
	uint64_t t = raw <= 0 ? 0 : (uint64_t)floor(raw);
	return t < min_ms ? min_ms : t;
}

unsigned swim_retransmit_limit(const struct swim_params *p, size_t nodes)
{
	return p->retransmit_mult * (unsigned)ceil(log10((double)nodes + 1.0));
}

/* ---- PRNG: xorshift64*, the instance's own so runs repeat ---------------- */

uint64_t rng_next(struct swim *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 0x2545F4914F6CDD1DULL;
}

uint32_t rng_below(struct swim *s, uint32_t n)
{
	CHECK(n > 0);
	return (uint32_t)(rng_next(s) % n);
}

/* ---- the member table ----------------------------------------------------- */

uint64_t name_hash(const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (; *name; name++)
		h = (h ^ (uint8_t)*name) * 0x100000001b3ULL;
	return h;
}

uint32_t member_slot(const struct swim *s, const struct member *m)
{
	CHECK(m >= s->members && m < s->members + s->p.members_max);
	return (uint32_t)(m - s->members);
}

struct member *member_find(const struct swim *s, const char *name)
{
	for (uint32_t i = (uint32_t)name_hash(name) & s->index_mask;; i = (i + 1) & s->index_mask) {
		uint32_t v = s->index[i];
		if (v == 0)
			return NULL;
		if (strcmp(s->members[v - 1].name, name) == 0)
			return &s->members[v - 1];
	}
}

static void order_insert(struct swim *s, uint32_t slot)
{
	/* At a random place not yet probed this round, so a newcomer is
	 * probed soon and joiners do not all land at the end (memberlist
	 * aliveNode's random offset). */
	CHECK(s->order_len < s->p.members_max);
	s->order[s->order_len] = slot;
	uint32_t span = s->order_len - s->order_pos + 1;
	uint32_t j = s->order_pos + rng_below(s, span);
	s->order[s->order_len] = s->order[j];
	s->order[j] = slot;
	s->order_len++;
}

static void order_remove(struct swim *s, uint32_t slot)
{
	for (uint32_t i = 0; i < s->order_len; i++) {
		if (s->order[i] != slot)
			continue;
		memmove(&s->order[i], &s->order[i + 1], (s->order_len - i - 1) * sizeof(*s->order));
		s->order_len--;
		if (i < s->order_pos)
			s->order_pos--;
		return;
	}
	CHECK(!"a used slot is in the probe order");
}

static void member_remove(struct swim *s, struct member *m)
{
	uint32_t slot = member_slot(s, m);
	uint32_t i = (uint32_t)name_hash(m->name) & s->index_mask;
	while (s->index[i] != slot + 1) {
		CHECK(s->index[i] != 0);
		i = (i + 1) & s->index_mask;
	}
	/* Backward-shift deletion keeps every probe chain unbroken. */
	s->index[i] = 0;
	for (uint32_t j = (i + 1) & s->index_mask; s->index[j]; j = (j + 1) & s->index_mask) {
		uint32_t home =
		    (uint32_t)name_hash(s->members[s->index[j] - 1].name) & s->index_mask;
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			s->index[i] = s->index[j];
			s->index[j] = 0;
			i = j;
		}
	}
	order_remove(s, slot);
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++)
		if (s->probes[k].active && s->probes[k].slot == slot)
			s->probes[k].active = false;
	memset(m, 0, sizeof(*m));
	CHECK(s->members_used > 0);
	s->members_used--;
}

/* A new record for name (not in the table): a free slot, or the slot of the
 * dead or left member gone longest; NULL when every slot holds a live one. */
struct member *member_add(struct swim *s, const char *name)
{
	CHECK(member_find(s, name) == NULL);
	if (s->members_used == s->p.members_max) {
		struct member *oldest = NULL;
		for (uint32_t i = 0; i < s->p.members_max; i++) {
			struct member *m = &s->members[i];
			if ((m->state == SWIM_DEAD || m->state == SWIM_LEFT) &&
			    (!oldest || m->state_since_ms < oldest->state_since_ms))
				oldest = m;
		}
		if (!oldest)
			return NULL;
		member_remove(s, oldest);
	}
	struct member *m = NULL;
	for (uint32_t i = 0; i < s->p.members_max && !m; i++)
		if (!s->members[i].used)
			m = &s->members[i];
	CHECK(m != NULL);
	memset(m, 0, sizeof(*m));
	m->used = true;
	m->rtt_ms = NO_RTT;
	snprintf(m->name, sizeof(m->name), "%s", name);
	uint32_t slot = member_slot(s, m);
	uint32_t i = (uint32_t)name_hash(name) & s->index_mask;
	while (s->index[i])
		i = (i + 1) & s->index_mask;
	s->index[i] = slot + 1;
	order_insert(s, slot);
	s->members_used++;
	return m;
}

size_t nodes_estimate(const struct swim *s)
{
	/* memberlist's estNumNodes: itself, the living, and the dead it still
	 * gossips to (it reaps them after GossipToTheDeadTime). */
	size_t n = 1;
	for (uint32_t i = 0; i < s->p.members_max; i++)
		n += member_counted(s, &s->members[i]);
	return n;
}

/* ---- queues --------------------------------------------------------------- */

void out_push(struct swim *s, const char *to, uint8_t *bytes, size_t len)
{
	if (!bytes || s->out_len == s->p.out_max || s->out_bytes + len > s->p.out_bytes_max) {
		free(bytes);
		s->c.dropped[SWIM_DROP_OUT_FULL]++;
		return;
	}
	struct out_entry *e = &s->out[(s->out_head + s->out_len) % s->p.out_max];
	snprintf(e->to, sizeof(e->to), "%s", to);
	e->bytes = bytes;
	e->len = len;
	s->out_len++;
	s->out_bytes += len;
	s->c.packets_sent++;
}

bool swim_next_send(struct swim *s, struct swim_datagram *out)
{
	free(s->sending.bytes);
	s->sending.bytes = NULL;
	if (s->out_len == 0)
		return false;
	s->sending = s->out[s->out_head];
	s->out[s->out_head].bytes = NULL;
	s->out_head = (s->out_head + 1) % s->p.out_max;
	s->out_len--;
	CHECK(s->out_bytes >= s->sending.len);
	s->out_bytes -= s->sending.len;
	*out = (struct swim_datagram){s->sending.to, s->sending.bytes, s->sending.len};
	return true;
}

void event_push(struct swim *s, enum swim_event_type t, const struct member *m,
                uint64_t epoch_before)
{
	if (s->ev_len == s->p.events_max) {
		s->c.events_dropped++;
		return;
	}
	struct swim_event *ev = &s->events[(s->ev_head + s->ev_len) % s->p.events_max];
	memset(ev, 0, sizeof(*ev));
	ev->type = t;
	memcpy(ev->name, m->name, sizeof(ev->name));
	memcpy(ev->address, m->address, sizeof(ev->address));
	ev->epoch = m->epoch;
	ev->epoch_before = t == SWIM_EV_RESTARTED ? epoch_before : m->epoch;
	ev->incarnation = m->incarnation;
	if (t == SWIM_EV_PAYLOAD) {
		ev->payload_len = m->payload_len;
		memcpy(ev->payload, m->payload, m->payload_len);
	}
	s->ev_len++;
}

bool swim_next_event(struct swim *s, struct swim_event *out)
{
	if (s->ev_len == 0)
		return false;
	*out = s->events[s->ev_head];
	s->ev_head = (s->ev_head + 1) % s->p.events_max;
	s->ev_len--;
	return true;
}

/* ---- life ------------------------------------------------------------------ */

struct swim *swim_new(const struct swim_params *p, const struct swim_node *self)
{
	if (swim_params_invalid(p) || !self || !wire_text_ok(self->name, SWIM_NAME_MAX) ||
	    !wire_text_ok(self->address, SWIM_ADDRESS_MAX) ||
	    !wire_text_ok(self->cluster, SWIM_CLUSTER_MAX))
		return NULL;
	if (self->secret && (self->secret_len == 0 || self->secret_len > SWIM_SECRET_MAX))
		return NULL;
	struct swim *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->p = *p;
	snprintf(s->name, sizeof(s->name), "%s", self->name);
	snprintf(s->address, sizeof(s->address), "%s", self->address);
	snprintf(s->cluster, sizeof(s->cluster), "%s", self->cluster);
	if (self->secret) {
		memcpy(s->secret, self->secret, self->secret_len);
		s->secret_len = self->secret_len;
	}
	s->keys = (struct wire_keys){s->cluster, s->secret_len ? s->secret : NULL, s->secret_len};
	s->epoch = self->epoch;
	/* splitmix64 of the seed: xorshift's first outputs from nearby seeds
	 * (1, 2, 3 ...) are alike, and instances seeded so probed in step. */
	uint64_t z = self->seed + 0x9E3779B97F4A7C15ULL;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	s->rng = (z ^ (z >> 31)) | 1;

	uint32_t cap = 1;
	while (cap < 2 * p->members_max)
		cap <<= 1;
	s->index_mask = cap - 1;
	s->members = calloc(p->members_max, sizeof(*s->members));
	s->index = calloc(cap, sizeof(*s->index));
	s->order = calloc(p->members_max, sizeof(*s->order));
	s->out = calloc(p->out_max, sizeof(*s->out));
	s->events = calloc(p->events_max, sizeof(*s->events));
	s->cands = calloc(p->members_max + 1, sizeof(*s->cands));
	if (!s->members || !s->index || !s->order || !s->out || !s->events || !s->cands) {
		swim_free(s);
		return NULL;
	}
	s->next_join_ms = UINT64_MAX;
	return s;
}

void swim_free(struct swim *s)
{
	if (!s)
		return;
	if (s->out)
		for (uint32_t i = 0; i < s->out_len; i++)
			free(s->out[(s->out_head + i) % s->p.out_max].bytes);
	free(s->sending.bytes);
	free(s->out);
	free(s->events);
	free(s->cands);
	free(s->order);
	free(s->index);
	free(s->members);
	free(s);
}

/* Take the time in; the first time, start the timers at random phases so
 * nodes started together do not probe and gossip in lockstep (memberlist
 * triggerFunc's stagger). */
void time_advance(struct swim *s, uint64_t now_ms)
{
	if (s->started) {
		CHECK(now_ms >= s->now_ms);
		s->now_ms = now_ms;
		return;
	}
	s->started = true;
	s->now_ms = now_ms;
	s->next_probe_ms = now_ms + rng_below(s, s->p.probe_interval_ms);
	s->next_gossip_ms = now_ms + rng_below(s, s->p.gossip_interval_ms);
	s->next_push_pull_ms = now_ms + rng_below(s, s->p.push_pull_interval_ms);
	s->next_reconnect_ms = now_ms + s->p.reconnect_interval_ms;
}

static bool alone(const struct swim *s)
{
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		const struct member *m = &s->members[i];
		if (m->used && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT))
			return false;
	}
	return true;
}

/* The alive or suspect member at address, or NULL. */
struct member *member_by_address(const struct swim *s, const char *address)
{
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		struct member *m = &s->members[i];
		if (m->used && (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT) &&
		    strcmp(m->address, address) == 0)
			return m;
	}
	return NULL;
}

static bool address_is_live_member(const struct swim *s, const char *address)
{
	return member_by_address(s, address) != NULL;
}

/* A random member in one of the two states given (0: none). */
static struct member *random_member(struct swim *s, uint8_t st1, uint8_t st2)
{
	uint32_t n = 0, pick = 0;
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		struct member *m = &s->members[i];
		/* Reservoir sampling: one pass, each equally likely. */
		if (m->used && (m->state == st1 || m->state == st2) && rng_below(s, ++n) == 0)
			pick = i + 1;
	}
	return pick ? &s->members[pick - 1] : NULL;
}

/* The next member of the round-robin order to probe; reshuffled at each
 * wrap (memberlist probe/resetNodes). Dead, left and already probed ones
 * are skipped. */
static struct member *next_probe_target(struct swim *s)
{
	for (uint32_t checked = 0; checked <= s->order_len; checked++) {
		if (s->order_pos >= s->order_len) {
			for (uint32_t i = s->order_len; i > 1; i--) {
				uint32_t j = rng_below(s, i);
				uint32_t t = s->order[i - 1];
				s->order[i - 1] = s->order[j];
				s->order[j] = t;
			}
			s->order_pos = 0;
			if (s->order_len == 0)
				return NULL;
		}
		uint32_t slot = s->order[s->order_pos++];
		struct member *m = &s->members[slot];
		if (m->state != SWIM_ALIVE && m->state != SWIM_SUSPECT)
			continue;
		bool probing = false;
		for (size_t k = 0; k < SWIM_PROBES_MAX; k++)
			probing |= s->probes[k].active && s->probes[k].slot == slot;
		if (!probing)
			return m;
	}
	return NULL;
}

static uint64_t push_pull_scaled_ms(const struct swim *s)
{
	/* memberlist pushPullScale: beyond 32 nodes, slower with log2 N so
	 * full-state traffic stays bounded. */
	size_t n = nodes_estimate(s);
	if (n <= 32)
		return s->p.push_pull_interval_ms;
	double mult = ceil(log2((double)n) - log2(32.0)) + 1.0;
	return (uint64_t)mult * s->p.push_pull_interval_ms;
}

static void join_seeds(struct swim *s)
{
	for (size_t i = 0; i < s->seeds_len; i++)
		if (!address_is_live_member(s, s->seeds[i]))
			push_pull_send(s, s->seeds[i], true, false);
}

static void forget_old(struct swim *s)
{
	for (uint32_t i = 0; i < s->p.members_max; i++) {
		struct member *m = &s->members[i];
		if (m->used && (m->state == SWIM_DEAD || m->state == SWIM_LEFT) &&
		    s->now_ms - m->state_since_ms >= s->p.dead_forget_ms)
			member_remove(s, m);
	}
}

void swim_tick(struct swim *s, uint64_t now_ms)
{
	time_advance(s, now_ms);
	relays_step(s);
	probes_step(s); /* ping-reqs and verdicts before the next probe starts */

	if (!s->left && now_ms >= s->next_probe_ms) {
		bool regular_busy = false;
		for (size_t k = 0; k < SWIM_PROBES_MAX; k++)
			regular_busy |= s->probes[k].active && s->probes[k].regular;
		struct member *m = regular_busy ? NULL : next_probe_target(s);
		if (m)
			probe_start(s, m, true);
		/* The period stretches with the health score (Lifeguard LHA-Probe). */
		s->next_probe_ms = now_ms + scaled_ms(s, s->p.probe_interval_ms);
	}
	suspicions_expire(s);

	if (now_ms >= s->next_gossip_ms) {
		gossip_round(s);
		s->next_gossip_ms += s->p.gossip_interval_ms;
		if (s->next_gossip_ms <= now_ms) /* late: no burst of missed rounds */
			s->next_gossip_ms = now_ms + s->p.gossip_interval_ms;
	}
	if (!s->left && now_ms >= s->next_push_pull_ms) {
		struct member *m = random_member(s, SWIM_ALIVE, SWIM_ALIVE);
		if (m)
			push_pull_send(s, m->address, false, false);
		s->next_push_pull_ms = now_ms + push_pull_scaled_ms(s);
	}
	if (!s->left && now_ms >= s->next_reconnect_ms) {
		/* Serf's reconnect: the other side of a healed partition is dead
		 * to us and we to it; nobody would talk to the dead otherwise. */
		struct member *m = random_member(s, SWIM_DEAD, SWIM_DEAD);
		if (m)
			push_pull_send(s, m->address, false, false);
		s->next_reconnect_ms = now_ms + s->p.reconnect_interval_ms;
	}
	if (!s->left && s->seeds_len && now_ms >= s->next_join_ms) {
		if (alone(s))
			join_seeds(s);
		s->next_join_ms = now_ms + s->p.join_retry_ms;
	}
	forget_old(s);
}

uint64_t swim_next_deadline_ms(const struct swim *s)
{
	if (!s->started)
		return 0;
	uint64_t d = s->next_gossip_ms;
	if (!s->left) {
		d = d < s->next_probe_ms ? d : s->next_probe_ms;
		d = d < s->next_push_pull_ms ? d : s->next_push_pull_ms;
		d = d < s->next_reconnect_ms ? d : s->next_reconnect_ms;
		if (s->seeds_len)
			d = d < s->next_join_ms ? d : s->next_join_ms;
	}
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++) {
		const struct probe *pr = &s->probes[k];
		if (!pr->active)
			continue;
		if (!pr->indirect_sent && pr->timeout_ms < d)
			d = pr->timeout_ms;
		if (pr->deadline_ms < d)
			d = pr->deadline_ms;
	}
	for (size_t k = 0; k < SWIM_RELAYS_MAX; k++)
		if (s->relays[k].used && s->relays[k].deadline_ms < d)
			d = s->relays[k].deadline_ms;
	uint64_t sd = suspicions_deadline_ms(s);
	return sd < d ? sd : d;
}

size_t swim_join(struct swim *s, uint64_t now_ms, const char *const *addresses, size_t n)
{
	time_advance(s, now_ms);
	if (s->left)
		return 0;
	s->seeds_len = 0;
	for (size_t i = 0; i < n && s->seeds_len < SWIM_SEEDS_MAX; i++) {
		const char *a = addresses[i];
		if (!wire_text_ok(a, SWIM_ADDRESS_MAX) || strcmp(a, s->address) == 0)
			continue;
		bool dup = false;
		for (size_t j = 0; j < s->seeds_len; j++)
			dup |= strcmp(s->seeds[j], a) == 0;
		if (!dup)
			snprintf(s->seeds[s->seeds_len++], SWIM_ADDRESS_MAX + 1, "%s", a);
	}
	/* Seeds that are members we already talk to need no join: a caller
	 * re-resolving DNS every few seconds costs nothing once joined. */
	size_t sent = 0;
	for (size_t i = 0; i < s->seeds_len; i++) {
		if (address_is_live_member(s, s->seeds[i]))
			continue;
		push_pull_send(s, s->seeds[i], true, false);
		sent++;
	}
	s->next_join_ms = s->seeds_len ? now_ms + s->p.join_retry_ms : UINT64_MAX;
	return sent;
}

int swim_probe_now(struct swim *s, uint64_t now_ms, const char *name)
{
	time_advance(s, now_ms);
	if (s->left)
		return -ESHUTDOWN;
	struct member *m = name ? member_find(s, name) : NULL;
	if (!m || (m->state != SWIM_ALIVE && m->state != SWIM_SUSPECT))
		return -ENOENT;
	uint32_t slot = member_slot(s, m);
	size_t busy = 0;
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++) {
		if (!s->probes[k].active)
			continue;
		if (s->probes[k].slot == slot)
			return -EALREADY;
		busy++;
	}
	if (busy >= SWIM_PROBES_MAX - 1) /* one stays free for the period's probe */
		return -EBUSY;
	probe_start(s, m, false);
	return 0;
}

void swim_leave(struct swim *s, uint64_t now_ms)
{
	time_advance(s, now_ms);
	if (s->left)
		return;
	s->left = true;
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++)
		s->probes[k].active = false;
	bcast_self(s); /* gossip carries it on, retransmitted like any update */

	/* And tell the living at once, so none waits for a gossip round to
	 * reach it (memberlist only gossips; cluster-notes §8.1 wants every
	 * peer to know within one round). */
	struct wire_member rec;
	record_of_self(s, &rec);
	uint32_t told = 0;
	for (uint32_t i = 0; i < s->order_len && told < SWIM_LEAVE_DIRECT_MAX; i++) {
		struct member *m = &s->members[s->order[i]];
		if (m->state != SWIM_ALIVE && m->state != SWIM_SUSPECT)
			continue;
		struct wire_packet p;
		header_of(s, &p);
		send_packet(s, m->address, &p, false, &rec);
		told++;
	}
}

int swim_set_payload(struct swim *s, const uint8_t *bytes, size_t len)
{
	if (len > SWIM_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (len)
		memcpy(s->payload, bytes, len);
	s->payload_len = (uint16_t)len;
	s->has_payload = true;
	return 0;
}

/* ---- accessors --------------------------------------------------------- */

size_t swim_member_count(const struct swim *s, enum swim_state state)
{
	size_t n = 0;
	for (uint32_t i = 0; i < s->p.members_max; i++)
		n += s->members[i].used && s->members[i].state == state;
	return n;
}

static void info_of(const struct member *m, struct swim_member_info *out)
{
	*out = (struct swim_member_info){
	    .name = m->name,
	    .address = m->address,
	    .epoch = m->epoch,
	    .incarnation = m->incarnation,
	    .state = (enum swim_state)m->state,
	    .state_since_ms = m->state_since_ms,
	    .rtt_ms = m->rtt_ms,
	};
}

bool swim_member_next(const struct swim *s, size_t *cursor, struct swim_member_info *out)
{
	for (size_t i = *cursor; i < s->p.members_max; i++) {
		if (!s->members[i].used)
			continue;
		info_of(&s->members[i], out);
		*cursor = i + 1;
		return true;
	}
	*cursor = s->p.members_max;
	return false;
}

bool swim_member_get(const struct swim *s, const char *name, struct swim_member_info *out)
{
	struct member *m = name ? member_find(s, name) : NULL;
	if (!m)
		return false;
	info_of(m, out);
	return true;
}

const struct swim_counters *swim_counters(const struct swim *s)
{
	return &s->c;
}

unsigned swim_health_score(const struct swim *s)
{
	return s->health;
}

uint32_t swim_incarnation(const struct swim *s)
{
	return s->incarnation;
}

const char *swim_state_name(enum swim_state st)
{
	static const char *const names[SWIM_STATES] = {"?", "alive", "suspect", "dead", "left"};
	return (unsigned)st < SWIM_STATES ? names[st] : "?";
}

const char *swim_event_name(enum swim_event_type t)
{
	static const char *const names[] = {"?",    "joined", "suspect",   "alive",
	                                    "dead", "left",   "restarted", "payload"};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *swim_drop_name(enum swim_drop d)
{
	static const char *const names[SWIM_DROP_REASONS] = {
	    "none", "malformed",   "auth",     "cluster",      "version",
	    "self", "stale_epoch", "out_full", "members_full", "relays_full"};
	return (unsigned)d < SWIM_DROP_REASONS ? names[d] : "?";
}
