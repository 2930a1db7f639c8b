/*
 * route.c — a worker's routing (see route.h): executing plans, keeping the
 * index copies equal, the retained store across shards, and the route's
 * mail. Runs on the worker thread that owns r.
 */
#include "route/route.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/mail.h"
#include "ops/stats.h"
#include "route/held.h"
#include "route/mail.h"
#include "route/moving.h"

/* A worker whose copy of the index could not take a change would route
 * unlike the others from then on, unseen: out of memory for the index is
 * the end of the process (the index's own nodes are small allocations). */
static void must(bool ok, const char *what)
{
	if (!ok) {
		LOG_ERROR("out of memory: %s", what);
		abort();
	}
}

/* ---- messages to sessions ---------------------------------------------- */

/* d (its message reference included) into worker to's mailbox. The bytes
 * in transit toward a worker count what is held for it: each delivery's
 * mailbox entry, and its message once per publish, not once per session it
 * reaches there. */
static void send_delivery(struct router *r, uint16_t to, const struct mail_deliver *d)
{
	bool counted = r->publishing && r->charged[to] == d->m;
	struct mbox_msg mb = {.kind = MAIL_DELIVER,
	                      .cls = d->qos == 0 ? MBOX_DROPPABLE : MBOX_DELIVERY,
	                      .bytes = (uint32_t)sizeof(mb) + (counted ? 0 : d->m->size_bytes)};
	memcpy(mb.body, d, sizeof(*d));
	if (mail_send(r->mail, to, &mb) == MAIL_REFUSED) {
		msg_unref(d->m); /* that worker is behind: counted, not kept */
		r->st->drops_transit++;
	} else if (r->publishing) {
		r->charged[to] = d->m;
	}
}

static void deliver_to(struct router *r, struct sess_id to, struct msg *m, uint8_t qos,
                       uint8_t flags, uint32_t sub_id, bool passed_on);

void route_deliver_to(struct router *r, struct sess_id to, struct msg *m, uint8_t qos,
                      uint8_t flags, uint32_t sub_id)
{
	deliver_to(r, to, m, qos, flags, sub_id, false);
}

void route_pass_on(struct router *r, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id)
{
	deliver_to(r, to, m, qos, flags, sub_id, true);
}

static void deliver_to(struct router *r, struct sess_id to, struct msg *m, uint8_t qos,
                       uint8_t flags, uint32_t sub_id, bool passed_on)
{
	if (to.worker == SESS_WORKER_NODE) {
		/* A shared group's member on another node (a departed member's
		 * messages handed to the group): the node serves its group. */
		if (r->forward && to.slot > 0 && to.slot < PLAN_NODES_MAX) {
			static _Thread_local struct plan one;
			one.node_count = 1;
			one.nodes[0] = (uint16_t)to.slot;
			one.nodes_shared = 1ull << to.slot;
			r->forward(r->forward_ctx, m, &one);
		}
		return;
	}
	/* Behind what is on its way to the old id (moving.h). Mail passed on
	 * from an old id is on that way already: sent back it would circle. */
	const struct moving_entry *via;
	if (!passed_on && r->moving.len && (via = moving_via(&r->moving, to, *r->now_ms)) != NULL)
		to = via->was;
	if (to.worker == r->id) {
		r->local(r->local_ctx, to, m, qos, flags, sub_id);
		return;
	}
	CHECK(to.worker < r->count);
	struct mail_deliver d = {
	    .m = msg_ref(m), .to = to, .sub_id = sub_id, .qos = qos, .flags = flags};
	/* A journaled QoS 2 message waits for this worker's journal (held.h),
	 * and whatever follows a held delivery waits behind it. */
	if (r->journal_durable &&
	    (r->held.len > 0 || ((flags & PLAN_JOURNALED) && qos == 2 &&
	                         *r->journal_appended > *r->journal_durable)) &&
	    held_push(&r->held,
	              &(struct held_delivery){
	                  .m = d.m, .to = to, .sub_id = sub_id, .qos = qos, .flags = flags}))
		return;
	send_delivery(r, to.worker, &d);
}

void route_held_seal(struct router *r)
{
	if (r->held.unsealed)
		held_seal(&r->held, *r->journal_appended);
	route_held_release(r);
}

void route_held_release(struct router *r)
{
	const struct held_delivery *x;
	while (r->journal_durable && (x = held_ready(&r->held, *r->journal_durable)) != NULL) {
		struct mail_deliver d = {
		    .m = x->m, .to = x->to, .sub_id = x->sub_id, .qos = x->qos, .flags = x->flags};
		held_pop(&r->held);
		send_delivery(r, d.to.worker, &d);
	}
}

/* The retained store of the topic's shard keeps m (takes its reference). */
static void retained_store(struct router *r, struct msg *m)
{
	if (r->journal_retained)
		r->journal_retained(r->journal_ctx, m); /* before anyone else sees m */
	unsigned shard = retain_shard_of(m->pub.topic, r->count);
	if (shard == r->id) {
		must(retain_put(r->retained, m) >= 0, "retained store");
		msg_unref(m);
		return;
	}
	struct mail_retain_put p = {m};
	struct mbox_msg mb = {.kind = MAIL_RETAIN_PUT, .cls = MBOX_CONTROL};
	memcpy(mb.body, &p, sizeof(p));
	mail_send(r->mail, (uint16_t)shard, &mb);
}

void route_retain(struct router *r, struct msg *m)
{
	retained_store(r, m);
}

/* refusable: a publisher's message whose acknowledgement can carry a
 * refusal (-1: the journal cannot keep it, nothing was delivered). */
static int publish(struct router *r, struct msg *m, bool refusable, struct route_inbound *in)
{
	if (plan_make(&r->plan, r->subs, m) < 0)
		LOG_WARN_RL(1,
		            "worker %u: out of memory routing a message to \"%.*s\": some "
		            "subscribers missed it",
		            r->id, (int)m->pub.topic.len, (const char *)m->pub.topic.ptr);
	const struct plan *p = &r->plan;
	/* Before anyone else sees m: the journal stamps it (m->jstamp). */
	uint8_t keep = 0xFF;
	if (p->journaled && r->journal_msg) {
		if (!r->journal_msg(r->journal_ctx, m, p, in)) {
			if (refusable) {
				msg_unref(m);
				return -1;
			}
			/* a will, a forwarded one: it goes, unjournaled */
			keep = (uint8_t)~PLAN_JOURNALED;
		} else if (in) {
			in->journaled = true;
		}
	}
	if (m->pub.retain) {
		if (!m->forwarded)
			m->origin_rank =
			    r->node_rank; /* still ours alone: set before it is shared */
		retained_store(r, msg_ref(m));
	}
	if (r->forward && (p->node_count || (m->pub.retain && !m->forwarded)))
		r->forward(r->forward_ctx, m, p);
	r->publishing = true;
	for (uint32_t i = 0; i < p->len; i++)
		route_deliver_to(r, p->t[i].who, m, p->t[i].qos, p->t[i].flags & keep,
		                 p->t[i].sub_id);
	/* Cleared: a later message may have m's address. */
	r->publishing = false;
	memset(r->charged, 0, r->count * sizeof(*r->charged));
	unsigned n = p->len;
	msg_unref(m);
	return (int)n;
}

unsigned route_publish(struct router *r, struct msg *m)
{
	return (unsigned)publish(r, m, false, NULL);
}

int route_publish_client(struct router *r, struct msg *m, struct route_inbound *in)
{
	return publish(r, m, true, in);
}

/* ---- the index --------------------------------------------------------- */

/* A session moved (d): mail from here to its new id goes the way mail to
 * its old id went, for a while (moving.h): through the old worker, or
 * along the path an earlier move still sends it. */
static void moved(struct router *r, const struct route_delta *d)
{
	struct sess_id via = d->was;
	uint64_t until = d->at_ms + MOVING_MS;
	uint32_t hops = 1;
	const struct moving_entry *chain = moving_via(&r->moving, d->was, *r->now_ms);
	if (chain && chain->hops >= MOVING_HOPS_MAX)
		chain = NULL; /* a new chain (moving.h) */
	if (chain) {
		via = chain->was;
		hops = chain->hops + 1;
		if (chain->until_ms < until)
			until = chain->until_ms; /* the old id passes mail on no longer */
	}
	/* Without a chain, mail to an old id on this worker was delivered at
	 * once, and mail to the new id's own worker goes behind what went to
	 * the old one there: no detour. Along a chain, mail to the old id
	 * travels hop by hop (each old worker passes it to the next id), so
	 * the new id's mail takes the same road. */
	if (!chain && (via.worker == r->id || via.worker == d->e.who.worker))
		return;
	if (!moving_add(&r->moving, d->e.who, via, until, hops, *r->now_ms))
		LOG_WARN_RL(1,
		            "worker %u: %u sessions moving at once: a delivery to one may overtake "
		            "an earlier one on its way",
		            r->id, r->moving.len);
}

/* Apply d to this worker's copy; report what it did to the node's own
 * routes to the effect hook, if this worker has one. */
static void delta_apply_here(struct router *r, const struct route_delta *d)
{
	enum delta_effect e = route_delta_apply(r->subs, d);
	must(e != DELTA_FAILED, "subscription index");
	if (d->op == DELTA_MOVE && d->origin_node == 0)
		moved(r, d);
	if ((e == DELTA_FIRST || e == DELTA_LAST) && r->effect && d->origin_node == 0)
		r->effect(r->effect_ctx, d, e);
}

/* Apply d here, then send it to every other worker (takes d's reference). */
static void delta_everywhere(struct router *r, struct route_delta *d)
{
	delta_apply_here(r, d);
	if (r->count == 1) {
		route_delta_unref(d);
		return;
	}
	atomic_store(&d->refs, r->count - 1);
	for (unsigned to = 0; to < r->count; to++) {
		if (to == r->id)
			continue;
		struct mail_delta md = {d};
		struct mbox_msg mb = {.kind = MAIL_DELTA, .cls = MBOX_CONTROL};
		memcpy(mb.body, &md, sizeof(md));
		mail_send(r->mail, (uint16_t)to, &mb);
	}
}

bool route_subscribe(struct router *r, struct mqtt_view filter, const struct sub_entry *e)
{
	struct route_delta *d = route_delta_new(DELTA_ADD, filter, e, (struct sess_id){0, 0, 0});
	if (!d)
		return false;
	delta_everywhere(r, d);
	return true;
}

bool route_restore(struct router *r, struct mqtt_view filter, const struct sub_entry *e)
{
	struct route_delta *d = route_delta_new(DELTA_ADD, filter, e, (struct sess_id){0, 0, 0});
	if (!d)
		return false;
	delta_apply_here(r, d);
	route_delta_unref(d);
	return true;
}

void route_unsubscribe(struct router *r, struct mqtt_view filter, struct sess_id who)
{
	struct sub_entry e = {who, {0}};
	struct route_delta *d =
	    route_delta_new(DELTA_REMOVE, filter, &e, (struct sess_id){0, 0, 0});
	must(d != NULL, "subscription delta");
	delta_everywhere(r, d);
}

void route_move(struct router *r, struct mqtt_view filter, const struct sub_entry *e,
                struct sess_id was)
{
	struct route_delta *d = route_delta_new(DELTA_MOVE, filter, e, was);
	must(d != NULL, "subscription delta");
	d->at_ms = *r->now_ms;
	delta_everywhere(r, d);
}

void route_node_change(struct router *r, uint16_t node, struct mqtt_view filter, bool add)
{
	CHECK(node > 0 && node < PLAN_NODES_MAX);
	/* QoS 2: the message goes with its own QoS; each subscriber on that
	 * node gets the lower of it and its own (plan_make there). */
	struct sub_entry e = {{node, 1, SESS_WORKER_NODE}, {.qos = 2}};
	struct route_delta *d =
	    route_delta_new(add ? DELTA_ADD : DELTA_REMOVE, filter, &e, (struct sess_id){0, 0, 0});
	must(d != NULL, "subscription delta");
	d->origin_node = node;
	delta_everywhere(r, d);
}

bool route_congested(const struct router *r)
{
	return mail_congested(r->mail);
}

bool route_shared_pick(struct router *r, struct mqtt_view filter, struct sub_entry *out)
{
	return subidx_shared_pick(r->subs, filter, out);
}

/* ---- retained messages for new subscriptions -------------------------- */

/* Keep a lookup for this shard until the mailboxes were drained (takes q).
 * Retained lookups are answered only after this worker has drained every
 * mailbox up to what it holds at that moment (the loop's drain step): a
 * retained PUBLISH acknowledged to its publisher was pushed toward this
 * shard before the acknowledgement went out, so anything a subscriber could
 * have learned of before subscribing is applied before its lookup runs,
 * whichever worker either of them is on. */
static void lookup_defer(struct router *r, struct retained_lookup *q)
{
	if (r->rq_len >= ROUTE_LOOKUPS_MAX) {
		r->st->lookups_dropped++;
		LOG_WARN_RL(1,
		            "worker %u: %u retained lookups wait: a new subscription to "
		            "\"%s\" gets no retained messages",
		            r->id, r->rq_len, q->filter);
		free(q);
		return;
	}
	if (r->rq_len == r->rq_cap) {
		uint32_t cap = r->rq_cap ? r->rq_cap * 2 : 16;
		struct retained_lookup **n = realloc(r->rq, cap * sizeof(*n));
		if (!n) {
			r->st->lookups_dropped++;
			free(q);
			return;
		}
		r->rq = n;
		r->rq_cap = cap;
	}
	r->rq[r->rq_len++] = q;
}

void route_retained_query(struct router *r, struct mqtt_view filter, const struct sub_entry *e)
{
	bool wild = memchr(filter.ptr, '+', filter.len) || memchr(filter.ptr, '#', filter.len);
	unsigned n = r->count;
	unsigned only = wild ? n : retain_shard_of(filter, n);
	uint64_t now_ns = clock_now_ns();
	for (unsigned shard = 0; shard < n; shard++) {
		if (only != n && shard != only)
			continue;
		struct retained_lookup *q = malloc(sizeof(*q) + filter.len + 1);
		if (!q) {
			r->st->lookups_dropped++;
			continue;
		}
		q->e = *e;
		q->since_ns = now_ns;
		q->filter_len = (uint16_t)filter.len;
		memcpy(q->filter, filter.ptr, filter.len);
		q->filter[filter.len] = '\0';
		if (shard == r->id) {
			lookup_defer(r, q);
			continue;
		}
		struct mail_retain_query mq = {q};
		struct mbox_msg mb = {.kind = MAIL_RETAIN_QUERY, .cls = MBOX_CONTROL};
		memcpy(mb.body, &mq, sizeof(mq));
		mail_send(r->mail, (uint16_t)shard, &mb);
	}
}

struct retained_ctx {
	struct router *r;
	const struct retained_lookup *q;
};

/* A retained message found for a new subscription: retain flag set [MQTT-3.3.1-9]. */
static void retained_found(void *ctx, struct msg *m)
{
	struct retained_ctx *c = ctx;
	/* Retained after the subscription was made: a publish sent after the
	 * SUBACK reached the subscriber live (its publisher's worker had the
	 * subscription, see the OP_WAKE drain), so this copy would be a
	 * duplicate; the lookup is for what was retained when it subscribed
	 * [MQTT-3.3.1-9]. A publish racing the SUBSCRIBE itself may reach it
	 * neither way, like any message sent while a subscription is made. */
	if (m->created_ns > c->q->since_ns)
		return;
	uint8_t qos = c->q->e.opts.qos < m->pub.qos ? c->q->e.opts.qos : m->pub.qos;
	route_deliver_to(c->r, c->q->e.who, m, qos, PLAN_RETAIN, c->q->e.opts.sub_id);
}

bool route_lookups_waiting(const struct router *r)
{
	return r->rq_len > 0;
}

void route_answer_lookups(struct router *r)
{
	/* Answering delivers locally, which never defers another lookup:
	 * the count taken now is the work. */
	uint32_t len = r->rq_len;
	for (uint32_t i = 0; i < len; i++) {
		struct retained_lookup *q = r->rq[i];
		struct retained_ctx c = {r, q};
		struct mqtt_view f = {(const uint8_t *)q->filter, q->filter_len};
		retain_match(r->retained, f, *r->now_ms, retained_found, &c);
		free(q);
	}
	memmove(r->rq, r->rq + len, (r->rq_len - len) * sizeof(*r->rq));
	r->rq_len -= len;
}

/* ---- the route's mail -------------------------------------------------- */

static void mail_deliver(void *ctx, const struct mbox_msg *mb)
{
	struct router *r = ctx;
	struct mail_deliver d;
	memcpy(&d, mb->body, sizeof(d));
	CHECK(d.to.worker == r->id);
	r->local(r->local_ctx, d.to, d.m, d.qos, d.flags, d.sub_id);
	msg_unref(d.m);
}

static void mail_delta(void *ctx, const struct mbox_msg *mb)
{
	struct router *r = ctx;
	struct mail_delta d;
	memcpy(&d, mb->body, sizeof(d));
	delta_apply_here(r, d.d);
	route_delta_unref(d.d);
}

static void mail_retain_put(void *ctx, const struct mbox_msg *mb)
{
	struct router *r = ctx;
	struct mail_retain_put p;
	memcpy(&p, mb->body, sizeof(p));
	must(retain_put(r->retained, p.m) >= 0, "retained store");
	msg_unref(p.m);
}

static void mail_retain_query(void *ctx, const struct mbox_msg *mb)
{
	struct router *r = ctx;
	struct mail_retain_query q;
	memcpy(&q, mb->body, sizeof(q));
	lookup_defer(r, q.q);
}

void route_mail_discard(const struct mbox_msg *mb)
{
	switch (mb->kind) {
	case MAIL_DELIVER: {
		struct mail_deliver d;
		memcpy(&d, mb->body, sizeof(d));
		msg_unref(d.m);
		break;
	}
	case MAIL_DELTA: {
		struct mail_delta d;
		memcpy(&d, mb->body, sizeof(d));
		route_delta_unref(d.d);
		break;
	}
	case MAIL_RETAIN_PUT: {
		struct mail_retain_put p;
		memcpy(&p, mb->body, sizeof(p));
		msg_unref(p.m);
		break;
	}
	case MAIL_RETAIN_QUERY: {
		struct mail_retain_query q;
		memcpy(&q, mb->body, sizeof(q));
		free(q.q);
		break;
	}
	default:
		break;
	}
}

int router_init(struct router *r, uint16_t id, unsigned count, const uint64_t *now_ms,
                struct mail *mail, struct worker_stats *st, route_local_fn local, void *local_ctx)
{
	memset(r, 0, sizeof(*r));
	r->id = id;
	r->count = count;
	r->now_ms = now_ms;
	r->mail = mail;
	r->st = st;
	r->local = local;
	r->local_ctx = local_ctx;
	plan_init(&r->plan);
	r->subs = subidx_new();
	r->retained = retain_new();
	r->charged = calloc(count, sizeof(*r->charged));
	if (!r->subs || !r->retained || !r->charged)
		return -1;
	mail_register(mail, MAIL_DELIVER, mail_deliver, route_mail_discard, r);
	mail_register(mail, MAIL_DELTA, mail_delta, route_mail_discard, r);
	mail_register(mail, MAIL_RETAIN_PUT, mail_retain_put, route_mail_discard, r);
	mail_register(mail, MAIL_RETAIN_QUERY, mail_retain_query, route_mail_discard, r);
	return 0;
}

void router_fini(struct router *r)
{
	if (r->held.unsealed)
		held_seal(&r->held, 0);
	while (r->held.len > 0) { /* the node stops: what was held is in the journal */
		msg_unref(r->held.e[r->held.head].m);
		held_pop(&r->held);
	}
	held_fini(&r->held);
	moving_fini(&r->moving);
	for (uint32_t i = 0; i < r->rq_len; i++)
		free(r->rq[i]);
	free(r->rq);
	plan_fini(&r->plan);
	subidx_free(r->subs);
	retain_free(r->retained);
	free(r->charged);
	memset(r, 0, sizeof(*r));
}
