/*
 * swim_probe.c — the protocol's messages: probing (direct ping, ping-req
 * through helpers, nacks, the verdict), serving others' ping-reqs, gossip
 * rounds, push-pull, and what a received packet does (swim_receive).
 * memberlist's state.go probeNode and net.go handle* are the reference.
 *
 * Called by: the instance's thread, from swim.c's entry points.
 *
 * A probe of member M started at t (period P and timeout T both scaled by
 * the health score, Lifeguard LHA-Probe):
 *
 *   t          ping M (with a suspect record about M when M is suspect:
 *              the buddy system, so M can refute at once)
 *   t + T      no ack: ping-req to k random alive helpers; each pings M,
 *              relays M's ack, or sends a nack after the wait we give it
 *   t + P      no ack: failed. Health +1 per nack we expected and did not
 *              get (+1 when there were no helpers); suspect M. An ack,
 *              direct or relayed, ends it earlier with health -1.
 *
 * The wait we give a helper is 4/5 of what is left of our period, so its
 * nack arrives before our verdict. memberlist's helper waits a whole probe
 * timeout, which lands its nack at about the verdict and can count a
 * healthy helper's nack as missing.
 *
 * Every packet we send carries our name, address, epoch and incarnation,
 * which the receiver takes as the sender's own word that it is alive, and
 * as many pending updates as fit in SWIM_PACKET_BYTES_MAX (infection-style
 * dissemination). Answers go to the address the request came from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "swim_int.h"

/* Room for a packet inside SWIM_PACKET_BYTES_MAX once wrapped in a datagram. */
static size_t packet_room(const struct swim *s, size_t datagram_max)
{
	size_t overhead = wire_datagram_size(&s->keys, datagram_max) - datagram_max;
	return datagram_max - overhead;
}

void header_of(const struct swim *s, struct wire_packet *p)
{
	*p = (struct wire_packet){
	    .from = s->name,
	    .from_address = s->address,
	    .from_epoch = s->epoch,
	    .from_incarnation = s->incarnation,
	    .from_left = s->left,
	};
}

static void with_payload(const struct swim *s, struct wire_packet *p)
{
	if (!s->has_payload)
		return;
	p->has_payload = true;
	p->payload = s->payload;
	p->payload_len = s->payload_len;
}

/*
 * Queue p (its header from header_of) for to, with first (when given; else
 * our suspicion of the member at to, if any) and, when piggyback, as many
 * pending updates as fit.
 */
void send_packet(struct swim *s, const char *to, struct wire_packet *p, bool piggyback,
                 const struct wire_member *first)
{
	size_t room = packet_room(s, SWIM_PACKET_BYTES_MAX);
	size_t base = wire_base_size(&s->keys, p);
	CHECK(base <= room); /* every header field is bounded well below this */
	size_t budget = room - base;
	struct wire_member ups[SWIM_UPDATES_MAX];
	size_t n = 0;
	struct wire_member buddy;
	const struct member *dest = member_by_address(s, to);
	if (!first && dest && dest->state == SWIM_SUSPECT) {
		/* The buddy system on every packet to a suspect, not only on
		 * probes: an ack or a nack to it lets it refute as early. */
		record_of(s, dest, &buddy);
		buddy.from = s->name;
		first = &buddy;
	}
	if (first) {
		size_t size = wire_member_size(first);
		if (size <= budget) {
			ups[n++] = *first;
			budget -= size;
		}
	}
	if (piggyback)
		n += bcast_take(s, budget, ups + n, SWIM_UPDATES_MAX - n,
		                dest && dest->state == SWIM_ALIVE);
	p->updates = ups;
	p->updates_len = n;
	size_t len = 0;
	uint8_t *bytes = wire_encode(&s->keys, p, &len);
	CHECK(!bytes || len <= SWIM_PACKET_BYTES_MAX);
	out_push(s, to, bytes, len);
}

/* ---- our probes ------------------------------------------------------------ */

void probe_start(struct swim *s, struct member *m, bool regular)
{
	struct probe *pr = NULL;
	for (size_t k = 0; k < SWIM_PROBES_MAX && !pr; k++)
		if (!s->probes[k].active)
			pr = &s->probes[k];
	CHECK(pr != NULL); /* swim_probe_now keeps one free for the period's probe */
	*pr = (struct probe){
	    .active = true,
	    .regular = regular,
	    .seq = ++s->seq,
	    .slot = member_slot(s, m),
	    .epoch = m->epoch,
	    .sent_ms = s->now_ms,
	    .timeout_ms = s->now_ms + scaled_ms(s, s->p.probe_timeout_ms),
	    .deadline_ms = s->now_ms + scaled_ms(s, s->p.probe_interval_ms),
	};
	struct wire_packet p;
	header_of(s, &p);
	p.has_ping = true;
	p.ping_seq = pr->seq;
	p.ping_target = m->name;
	with_payload(s, &p);
	struct wire_member buddy, *first = NULL;
	if (m->state == SWIM_SUSPECT) {
		record_of(s, m, &buddy);
		buddy.from = s->name;
		first = &buddy;
	}
	send_packet(s, m->address, &p, true, first);
	s->c.probes_sent++;
}

/* k random alive members other than the target: helpers for a ping-req. */
static void ping_req_send(struct swim *s, struct probe *pr)
{
	const struct member *target = &s->members[pr->slot];
	uint32_t cand[SWIM_MEMBERS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->p.members_max; i++)
		if (s->members[i].used && s->members[i].state == SWIM_ALIVE && i != pr->slot)
			cand[n++] = i;
	uint64_t left_ms = pr->deadline_ms > s->now_ms ? pr->deadline_ms - s->now_ms : 1;
	uint64_t nack_after = left_ms * 4 / 5;
	for (uint32_t h = 0; h < s->p.indirect_checks && n > 0; h++) {
		uint32_t j = rng_below(s, n);
		const struct member *helper = &s->members[cand[j]];
		cand[j] = cand[--n];
		struct wire_packet p;
		header_of(s, &p);
		p.has_ping_req = true;
		p.req_seq = pr->seq;
		p.req_target = target->name;
		p.req_target_address = target->address;
		p.req_nack = true;
		p.req_nack_after_ms = (uint32_t)(nack_after ? nack_after : 1);
		send_packet(s, helper->address, &p, true, NULL);
		pr->nacks_expected++;
		s->c.indirect_probes_sent++;
	}
	pr->indirect_sent = true;
}

static void probe_failed(struct swim *s, struct probe *pr)
{
	pr->active = false;
	s->c.probes_failed++;
	/* Lifeguard: helpers that answered with nacks while the target did
	 * not point at the target; missing nacks point at us. */
	int delta = pr->nacks_expected ? pr->nacks_expected - pr->nacks : 1;
	health_add(s, delta);
	struct member *m = &s->members[pr->slot];
	if (m->state == SWIM_ALIVE)
		s->c.suspicions_raised++;
	member_suspect(s, m, m->incarnation, s->name);
}

void probes_step(struct swim *s)
{
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++) {
		struct probe *pr = &s->probes[k];
		if (!pr->active)
			continue;
		const struct member *m = &s->members[pr->slot];
		if (!m->used || m->epoch != pr->epoch ||
		    (m->state != SWIM_ALIVE && m->state != SWIM_SUSPECT)) {
			pr->active = false; /* restarted, dead or gone meanwhile: moot */
			continue;
		}
		if (!pr->indirect_sent && s->now_ms >= pr->timeout_ms)
			ping_req_send(s, pr);
		if (s->now_ms >= pr->deadline_ms)
			probe_failed(s, pr);
	}
}

static void ack_handle(struct swim *s, const struct wire_packet *p)
{
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++) {
		struct probe *pr = &s->probes[k];
		if (!pr->active || pr->seq != p->ack_seq)
			continue;
		pr->active = false;
		s->c.acks_received++;
		health_add(s, -1);
		struct member *m = &s->members[pr->slot];
		if (m->used && strcmp(m->name, p->from) == 0) /* direct: a round trip */
			m->rtt_ms = (uint32_t)(s->now_ms - pr->sent_ms);
		return;
	}
	for (size_t k = 0; k < SWIM_RELAYS_MAX; k++) {
		struct relay *r = &s->relays[k];
		if (!r->used || r->seq != p->ack_seq)
			continue;
		struct wire_packet a;
		header_of(s, &a);
		a.has_ack = true;
		a.ack_seq = r->req_seq;
		send_packet(s, r->to, &a, true, NULL);
		r->used = false;
		return;
	}
}

static void nack_handle(struct swim *s, const struct wire_packet *p)
{
	for (size_t k = 0; k < SWIM_PROBES_MAX; k++) {
		struct probe *pr = &s->probes[k];
		if (pr->active && pr->seq == p->nack_seq && pr->nacks < pr->nacks_expected) {
			pr->nacks++;
			s->c.nacks_received++;
			return;
		}
	}
}

/* ---- others' probes ----------------------------------------------------- */

static void ping_handle(struct swim *s, const char *reply_to, const struct wire_packet *p)
{
	if (strcmp(p->ping_target, s->name) != 0) {
		/* Meant for whoever had this address before us: an ack would
		 * tell the prober a dead member lives. */
		s->c.pings_misaddressed++;
		return;
	}
	struct wire_packet a;
	header_of(s, &a);
	a.has_ack = true;
	a.ack_seq = p->ping_seq;
	with_payload(s, &a);
	send_packet(s, reply_to, &a, true, NULL);
}

static void ping_req_handle(struct swim *s, const char *reply_to, const struct wire_packet *p)
{
	if (strcmp(p->req_target, s->name) == 0) {
		struct wire_packet a; /* asked to probe ourselves: here we are */
		header_of(s, &a);
		a.has_ack = true;
		a.ack_seq = p->req_seq;
		send_packet(s, reply_to, &a, true, NULL);
		return;
	}
	struct relay *r = NULL;
	for (size_t k = 0; k < SWIM_RELAYS_MAX && !r; k++)
		if (!s->relays[k].used)
			r = &s->relays[k];
	if (!r) {
		s->c.dropped[SWIM_DROP_RELAYS_FULL]++;
		return;
	}
	uint64_t wait_ms = p->req_nack_after_ms ? p->req_nack_after_ms : s->p.probe_timeout_ms;
	uint64_t wait_max = (uint64_t)s->p.probe_interval_ms * s->p.awareness_max_multiplier;
	*r = (struct relay){
	    .used = true,
	    .nack = p->req_nack,
	    .seq = ++s->seq,
	    .req_seq = p->req_seq,
	    .deadline_ms = s->now_ms + (wait_ms < wait_max ? wait_ms : wait_max),
	};
	snprintf(r->to, sizeof(r->to), "%s", reply_to);
	struct wire_packet ping;
	header_of(s, &ping);
	ping.has_ping = true;
	ping.ping_seq = r->seq;
	ping.ping_target = p->req_target;
	send_packet(s, p->req_target_address, &ping, true, NULL);
	s->c.indirect_probes_served++;
}

void relays_step(struct swim *s)
{
	for (size_t k = 0; k < SWIM_RELAYS_MAX; k++) {
		struct relay *r = &s->relays[k];
		if (!r->used || s->now_ms < r->deadline_ms)
			continue;
		r->used = false;
		if (!r->nack)
			continue;
		struct wire_packet n;
		header_of(s, &n);
		n.has_nack = true;
		n.nack_seq = r->req_seq;
		send_packet(s, r->to, &n, true, NULL);
		s->c.nacks_sent++;
	}
}

/* ---- gossip --------------------------------------------------------------- */

/* memberlist gossip(): gossip_nodes random members that are alive, suspect,
 * or dead for less than gossip_to_the_dead_ms; stop when nothing is left
 * to say. */
void gossip_round(struct swim *s)
{
	uint32_t cand[SWIM_MEMBERS_MAX];
	uint32_t n = 0;
	for (uint32_t i = 0; i < s->p.members_max; i++)
		if (member_counted(s, &s->members[i]))
			cand[n++] = i;
	size_t room = packet_room(s, SWIM_PACKET_BYTES_MAX);
	for (uint32_t g = 0; g < s->p.gossip_nodes && n > 0; g++) {
		uint32_t j = rng_below(s, n);
		const struct member *m = &s->members[cand[j]];
		cand[j] = cand[--n];
		struct wire_packet p;
		header_of(s, &p);
		size_t base = wire_base_size(&s->keys, &p);
		struct wire_member ups[SWIM_UPDATES_MAX];
		size_t k =
		    bcast_take(s, room - base, ups, SWIM_UPDATES_MAX, m->state == SWIM_ALIVE);
		if (k == 0)
			return;
		p.updates = ups;
		p.updates_len = k;
		size_t len = 0;
		uint8_t *bytes = wire_encode(&s->keys, &p, &len);
		CHECK(!bytes || len <= SWIM_PACKET_BYTES_MAX);
		out_push(s, m->address, bytes, len);
		s->c.gossip_sent++;
	}
}

/* ---- push-pull ------------------------------------------------------------ */

/*
 * Our whole state (ourselves first, then every member, dead and left ones
 * too) to one address, in parts of at most SWIM_PUSH_PULL_BYTES_MAX. A
 * request (reply false) is answered with the receiver's state.
 */
void push_pull_send(struct swim *s, const char *to, bool join, bool reply)
{
	struct wire_member *recs = malloc((s->p.members_max + 1) * sizeof(*recs));
	size_t *ends = malloc((s->p.members_max + 2) * sizeof(*ends));
	if (!recs || !ends) {
		s->c.dropped[SWIM_DROP_OUT_FULL]++;
		goto done;
	}
	size_t n = 0;
	record_of_self(s, &recs[n++]);
	for (uint32_t i = 0; i < s->p.members_max; i++)
		if (s->members[i].used)
			record_of(s, &s->members[i], &recs[n++]);

	struct wire_packet p;
	header_of(s, &p);
	p.has_push_pull = true;
	p.pp_reply = reply;
	p.pp_join = join;
	p.pp_part = 0;
	p.pp_parts = 1;
	with_payload(s, &p);
	/* 16 bytes of slack: the part numbers' and the PushPull's length varints grow. */
	size_t room = packet_room(s, SWIM_PUSH_PULL_BYTES_MAX) - wire_base_size(&s->keys, &p) - 16;
	size_t parts = 0, used = 0;
	for (size_t i = 0; i < n; i++) {
		size_t size = wire_member_size(&recs[i]);
		CHECK(size < room);
		if (used + size > room) {
			ends[parts++] = i;
			used = 0;
		}
		used += size;
	}
	ends[parts++] = n;
	size_t begin = 0;
	for (size_t part = 0; part < parts; part++) {
		p.pp_part = (uint32_t)part;
		p.pp_parts = (uint32_t)parts;
		p.records = recs + begin;
		p.records_len = ends[part] - begin;
		if (part > 0)
			p.has_payload = false;
		size_t len = 0;
		uint8_t *bytes = wire_encode(&s->keys, &p, &len);
		CHECK(!bytes || len <= SWIM_PUSH_PULL_BYTES_MAX);
		out_push(s, to, bytes, len);
		begin = ends[part];
	}
	if (!reply)
		s->c.push_pulls_sent++;
done:
	free(ends);
	free(recs);
}

/* ---- received packets -------------------------------------------------------- */

enum swim_drop packet_handle(struct swim *s, const char *from_address, const struct wire_packet *p)
{
	if (strcmp(p->from, s->name) == 0)
		return SWIM_DROP_SELF;
	const struct member *known = member_find(s, p->from);
	if (known && p->from_epoch < known->epoch)
		return SWIM_DROP_STALE_EPOCH; /* its process was replaced: it speaks for nobody */
	const char *reply_to = from_address && wire_text_ok(from_address, SWIM_ADDRESS_MAX)
	                           ? from_address
	                           : p->from_address;

	/* The sender's word about itself, authenticated as much as the
	 * packet is: alive at this incarnation, or gone. */
	struct wire_member self_said = {
	    .name = p->from,
	    .address = p->from_address,
	    .from = p->from_left ? p->from : "",
	    .epoch = p->from_epoch,
	    .incarnation = p->from_incarnation,
	    .state = p->from_left ? SWIM_LEFT : SWIM_ALIVE,
	};
	apply_update(s, &self_said, false);
	/* News before answers: a suspicion of us buddied on a ping is refuted
	 * in the ack that answers it. */
	for (size_t i = 0; i < p->updates_len; i++)
		apply_update(s, &p->updates[i], false);
	if (p->has_push_pull)
		for (size_t i = 0; i < p->records_len; i++)
			apply_update(s, &p->records[i], true);

	if (p->has_ping)
		ping_handle(s, reply_to, p);
	if (p->has_ping_req)
		ping_req_handle(s, reply_to, p);
	if (p->has_ack)
		ack_handle(s, p);
	if (p->has_nack)
		nack_handle(s, p);
	if (p->has_push_pull && !p->pp_reply && p->pp_part == 0)
		push_pull_send(s, reply_to, false, true);

	if (p->has_payload) {
		struct member *m = member_find(s, p->from);
		if (m && m->epoch == p->from_epoch &&
		    (m->state == SWIM_ALIVE || m->state == SWIM_SUSPECT))
			payload_heard(s, m, p->payload, p->payload_len);
	}
	return SWIM_DROP_NONE;
}

enum swim_drop swim_receive(struct swim *s, uint64_t now_ms, const char *from_address,
                            const uint8_t *bytes, size_t len)
{
	time_advance(s, now_ms);
	s->c.packets_received++;
	struct wire_packet p;
	void *hold = NULL;
	enum swim_drop why = wire_decode(&s->keys, bytes, len, &p, &hold);
	if (why == SWIM_DROP_NONE) {
		why = packet_handle(s, from_address, &p);
		wire_release(hold);
	}
	if (why != SWIM_DROP_NONE)
		s->c.dropped[why]++;
	return why;
}
