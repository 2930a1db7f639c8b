/*
 * route.c — where messages go (DESIGN.md "Subscription index", "Retained
 * messages", "Mailboxes"). A publish is matched once, on the worker that
 * received it; subscribers on this worker get it directly, every other
 * worker gets one mailbox message per subscriber carrying a reference to the
 * same immutable message. Subscription changes apply to this worker's copy of
 * the index first, then travel to every other worker as one shared delta.
 * Runs on the worker thread that calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/op.h"
#include "loop/worker.h"

struct sub_delta *sub_delta_new(bool add, struct mqtt_view filter, const struct sub_entry *e)
{
	struct sub_delta *d = malloc(sizeof(*d) + filter.len + 1);
	if (!d)
		return NULL;
	atomic_init(&d->refs, 1);
	d->add = add;
	d->at_ns = clock_now_ns();
	d->e = *e;
	d->was = (struct sess_id){0, 0, 0};
	d->filter_len = (uint16_t)filter.len;
	memcpy(d->filter, filter.ptr, filter.len);
	d->filter[filter.len] = '\0';
	return d;
}

void sub_delta_unref(struct sub_delta *d)
{
	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
		free(d);
}

static void must(bool ok, const char *what)
{
	if (!ok) {
		LOG_ERROR("out of memory: %s", what);
		abort(); /* a worker that cannot keep its index equal to the others' */
	}
}

/* Apply a delta to this worker's index. */
static void delta_apply(struct worker *w, bool add, struct mqtt_view filter,
                        const struct sub_entry *e, struct sess_id was)
{
	if (add && was.gen)
		subidx_remove(w->subs, filter, was);
	if (add)
		must(subidx_add(w->subs, filter, e) >= 0, "subscription index");
	else
		subidx_remove(w->subs, filter, e->who);
}

static void delta_everywhere(struct worker *w, bool add, struct mqtt_view filter,
                             const struct sub_entry *e, struct sess_id was)
{
	delta_apply(w, add, filter, e, was);
	unsigned n = w->b->worker_count;
	if (n == 1)
		return;
	struct sub_delta *d = sub_delta_new(add, filter, e);
	must(d != NULL, "subscription delta");
	d->was = was;
	atomic_store(&d->refs, n - 1);
	for (unsigned to = 0; to < n; to++) {
		if (to == w->id)
			continue;
		struct mbox_msg m = {.kind = MB_SUB_DELTA, .from = w->id, .ptr = d};
		mbox_send(w, (uint16_t)to, &m);
	}
}

void index_change(struct worker *w, bool add, struct mqtt_view filter, const struct sub_entry *e)
{
	delta_everywhere(w, add, filter, e, (struct sess_id){0, 0, 0});
}

void index_move(struct worker *w, struct mqtt_view filter, const struct sub_entry *e,
                struct sess_id was)
{
	delta_everywhere(w, true, filter, e, was);
}

/* subidx_match callback: gather, merge later. */
static void collect(void *ctx, const struct sub_entry *e, bool shared)
{
	struct worker *w = ctx;
	if (w->match_len == w->match_cap) {
		uint32_t cap = w->match_cap ? w->match_cap * 2 : 64;
		struct match *n = realloc(w->match_buf, cap * sizeof(*n));
		must(n != NULL, "match buffer");
		w->match_buf = n;
		w->match_cap = cap;
	}
	w->match_buf[w->match_len++] = (struct match){*e, shared};
}

static int by_session(const void *a, const void *b)
{
	const struct sub_entry *x = &((const struct match *)a)->e,
	                       *y = &((const struct match *)b)->e;
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

static void deliver_to(struct worker *w, struct sess_id to, struct msg *m, uint8_t qos,
                       uint8_t flags, uint32_t sub_id)
{
	if (to.worker == w->id) {
		deliver_local(w, to, m, qos, flags, sub_id);
		return;
	}
	struct mbox_msg mb = {.kind = MB_DELIVER,
	                      .qos = qos,
	                      .flags = (uint8_t)((flags & DELIV_RETAIN ? MBOX_F_RETAIN : 0) |
	                                         (flags & DELIV_SHARED ? MBOX_F_SHARED : 0)),
	                      .from = w->id,
	                      .sub_id = sub_id,
	                      .target = to,
	                      .bytes = m->size_bytes,
	                      .ptr = msg_ref(m)};
	mbox_send(w, to.worker, &mb);
}

unsigned route_publish(struct worker *w, struct msg *m)
{
	unsigned delivered = 0;
	if (m->pub.retain)
		retained_store(w, msg_ref(m));
	w->match_len = 0;
	subidx_match(w->subs, m->pub.topic, collect, w);
	if (w->match_len > 1)
		qsort(w->match_buf, w->match_len, sizeof(*w->match_buf), by_session);

	/* Overlapping subscriptions of one session become one delivery with
	 * the highest QoS [MQTT-3.3.4-2], one per distinct subscription
	 * identifier so that each identifier reaches the client
	 * [MQTT-3.3.4-3, -5] (a 3.1.1 session has none: one copy); no-local
	 * ones drop out for the publisher's own session [MQTT-3.8.3-3]. */
	uint32_t i = 0;
	while (i < w->match_len) {
		struct sess_id who = w->match_buf[i].e.who;
		uint32_t sub_id = w->match_buf[i].e.opts.sub_id;
		int qos = -1;
		bool rap = false, shared = true;
		for (; i < w->match_len && sess_id_eq(w->match_buf[i].e.who, who) &&
		       w->match_buf[i].e.opts.sub_id == sub_id;
		     i++) {
			const struct sub_opts *o = &w->match_buf[i].e.opts;
			if (o->no_local && sess_id_eq(who, m->origin))
				continue;
			if (o->qos > qos)
				qos = o->qos;
			rap |= o->rap;
			shared &= w->match_buf[i].shared; /* any own subscription: it is theirs */
		}
		if (qos < 0)
			continue;
		uint8_t q = (uint8_t)qos < m->pub.qos ? (uint8_t)qos : m->pub.qos;
		/* Retain As Published, else 0 on normal delivery [MQTT-3.3.1-12]. */
		uint8_t flags = (uint8_t)((rap && m->pub.retain ? DELIV_RETAIN : 0) |
		                          (shared ? DELIV_SHARED : 0));
		deliver_to(w, who, m, q, flags, sub_id);
		delivered++;
	}
	msg_unref(m);
	return delivered;
}

/* Would this PUBLISH be larger than the client accepts [MQTT-3.1.2-24]? */
static bool too_big(struct conn *c, const struct mqtt_packet *p)
{
	return c->client_max_packet && mqtt_encode_len(p, c->version) > c->client_max_packet;
}

/*
 * Outgoing topic alias (§3.3.2.3.4; the policy is in session.h): a topic
 * the client knows an alias for goes as an empty topic plus the alias; a
 * topic that can have one goes in full with its new alias. Only to a
 * client that takes them, never above its maximum [MQTT-3.1.2-26, -27]:
 * c->aliases->out exists only then, sized by it. Returns that new alias, to
 * remember only once the packet really went (alias_sent): a dropped QoS 0
 * must not leave the client unaware of an alias we then use. 0: nothing
 * to remember.
 */
static uint16_t alias_apply(struct conn *c, struct mqtt_packet *p)
{
	if (!c->aliases || !c->aliases->out)
		return 0;
	struct alias_out *out = c->aliases->out;
	struct mqtt_publish *pub = &p->publish;
	uint16_t known = alias_out_find(out, pub->topic);
	uint16_t n = known ? known : alias_out_next(out, pub->topic);
	if (n == 0)
		return 0;
	pub->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
	pub->props.topic_alias = n;
	if (known) {
		pub->topic.len = 0;
		return 0;
	}
	if (too_big(c, p)) {
		/* The alias property made it too big: without it, maybe not. */
		pub->props.has &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
		return 0;
	}
	return n;
}

/* p (built by alias_apply from m) went into the outbox. */
static void alias_sent(struct conn *c, uint16_t fresh, const struct msg *m)
{
	if (fresh)
		alias_out_add(c->aliases->out, m->pub.topic);
}

static void publish_packet(struct worker *w, struct mqtt_packet *p, struct msg *m, uint8_t qos,
                           uint16_t pid, bool retain, bool dup, const uint32_t *sub_id)
{
	p->type = MQTT_PUBLISH;
	p->publish = m->pub;
	p->publish.qos = qos;
	p->publish.packet_id = pid;
	p->publish.retain = retain;
	p->publish.dup = dup;
	if (*sub_id) {
		p->publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
		p->publish.props.sub_ids = sub_id;
		p->publish.props.sub_id_count = 1;
	}
	if (m->expires_at_ms) /* the time it waited comes off [MQTT-3.3.2-6] */
		p->publish.props.message_expiry_s = msg_expiry_left_s(m, w->now_ms);
}

void deliver_local(struct worker *w, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id)
{
	bool retain = flags & DELIV_RETAIN;
	const struct config *cfg = w->cfg;
	struct session *s = sess_get(w, to);
	if (!s) {
		/* Moved by a takeover since the match: on to where it went
		 * (sessions.c). Otherwise it ended: a stale entry. */
		struct sess_id moved;
		if (sess_moved_to(w, to, &moved))
			deliver_to(w, moved, m, qos, flags, sub_id);
		return;
	}
	if (w->acl) {
		/* Every way a message reaches a session passes here: live,
		 * retained, wills, shared handoffs. */
		size_t ulen;
		const char *user = session_username(s, &ulen);
		struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
		if (!auth_receive(w->acl, user, ulen, cid, m->pub.topic)) {
			w->st.drops_denied++;
			return;
		}
	}
	if (msg_expired(m, w->now_ms)) {
		w->st.drops_expired++;
		return;
	}
	if (s->online) {
		struct conn *c = conn_get(w, s->conn_slot, s->conn_gen);
		if (c && c->state == CONN_ACTIVE) {
			struct mqtt_packet p;
			publish_packet(w, &p, m, qos, qos ? 1 : 0, retain, false, &sub_id);
			uint16_t fresh = alias_apply(c, &p);
			if (too_big(c, &p)) {
				w->st.drops_oversize++; /* skipped for this client, counted */
				return;
			}
			if (qos == 0) {
				if (!conn_send_packet(w, c, &p))
					w->st.drops_outbox++;
				else
					alias_sent(c, fresh, m);
				return;
			}
			uint32_t window = cfg->inflight_max < c->client_receive_max
			                      ? cfg->inflight_max
			                      : c->client_receive_max;
			if (s->q_len == 0) {
				uint16_t pid = session_infl_add(s, m, qos, flags, sub_id, window);
				if (pid) {
					p.publish.packet_id = pid;
					if (conn_send_packet(w, c, &p))
						alias_sent(c, fresh, m);
					return;
				}
			}
		}
	} else if (qos == 0 && !cfg->queue_qos0) {
		return; /* QoS 0 is not kept for offline sessions unless asked */
	}
	w->st.drops_queue += session_enqueue(s, m, qos, flags, sub_id, cfg->queue_messages_max,
	                                     cfg->queue_bytes_max, cfg->queue_overflow);
}

void session_pump(struct worker *w, struct session *s)
{
	if (!s->online)
		return;
	struct conn *c = conn_get(w, s->conn_slot, s->conn_gen);
	if (!c || c->state != CONN_ACTIVE)
		return;
	uint32_t window = w->cfg->inflight_max < c->client_receive_max ? w->cfg->inflight_max
	                                                               : c->client_receive_max;
	while (s->q_len > 0) {
		struct queued *front = &s->q[s->q_head];
		if (front->qos > 0 && s->infl_count >= window)
			break;
		struct queued q;
		session_dequeue(s, &q);
		if (msg_expired(q.m, w->now_ms)) {
			w->st.drops_expired++;
			msg_unref(q.m);
			continue;
		}
		struct mqtt_packet p;
		publish_packet(w, &p, q.m, q.qos, q.qos ? 1 : 0, q.retain, false, &q.sub_id);
		uint16_t fresh = alias_apply(c, &p);
		if (too_big(c, &p)) {
			w->st.drops_oversize++;
		} else if (q.qos == 0) {
			if (!conn_send_packet(w, c, &p))
				w->st.drops_outbox++;
			else
				alias_sent(c, fresh, q.m);
		} else {
			uint8_t flags = (uint8_t)((q.retain ? DELIV_RETAIN : 0) |
			                          (q.shared ? DELIV_SHARED : 0));
			p.publish.packet_id =
			    session_infl_add(s, q.m, q.qos, flags, q.sub_id, window);
			if (conn_send_packet(w, c, &p))
				alias_sent(c, fresh, q.m);
		}
		msg_unref(q.m);
	}
}

void session_resend(struct worker *w, struct session *s)
{
	struct conn *c = conn_get(w, s->conn_slot, s->conn_gen);
	if (!c)
		return;
	/* [MQTT-4.4.0-1]: unacknowledged PUBLISH again with DUP, PUBREL again.
	 * Always with the whole topic: the aliases of the connection it was
	 * first sent on are gone with it [MQTT-3.3.2-7]. */
	uint32_t seq = s->infl_head;
	struct inflight *f;
	while ((f = session_infl_next(s, &seq)) != NULL) {
		struct mqtt_packet p;
		if (f->state == INFL_WAIT_COMP) {
			p = (struct mqtt_packet){.type = MQTT_PUBREL};
			p.ack.packet_id = f->pid;
		} else {
			publish_packet(w, &p, f->m, f->qos, f->pid, f->retain, true, &f->sub_id);
			if (too_big(c, &p)) {
				/* The new connection takes less than the old one
				 * did: drop it as if sent and acknowledged
				 * [MQTT-3.1.2-25], or it holds a window slot for good. */
				w->st.drops_oversize++;
				session_infl_ack(s, f->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
				                 f->pid);
				if (f->qos == 2)
					session_infl_ack(s, MQTT_PUBCOMP, f->pid);
				continue;
			}
		}
		conn_send_packet(w, c, &p);
		if (c->state == CONN_CLOSING)
			return; /* it did not take a PUBREL (conn.c): s may be gone */
	}
}

void retained_store(struct worker *w, struct msg *m)
{
	unsigned shard = retain_shard_of(m->pub.topic, w->b->worker_count);
	if (shard == w->id) {
		must(retain_put(w->retained, m) >= 0, "retained store");
		msg_unref(m);
		return;
	}
	struct mbox_msg mb = {.kind = MB_RETAIN_PUT, .from = w->id, .ptr = m};
	mbox_send(w, (uint16_t)shard, &mb);
}

struct retained_ctx {
	struct worker *w;
	const struct sub_entry *e;
	uint64_t since_ns; /* when the subscription was made */
};

/* A retained message found for a new subscription: retain flag set [MQTT-3.3.1-9]. */
static void retained_found(void *ctx, struct msg *m)
{
	struct retained_ctx *r = ctx;
	/* Retained after the subscription was made: a publish sent after the
	 * SUBACK reached the subscriber live (its publisher's worker had the
	 * subscription, see the OP_WAKE drain), so this copy would be a
	 * duplicate; the lookup is for what was retained when it subscribed
	 * [MQTT-3.3.1-9]. A publish racing the SUBSCRIBE itself may reach it
	 * neither way, like any message sent while a subscription is made. */
	if (m->created_ns > r->since_ns)
		return;
	uint8_t qos = r->e->opts.qos < m->pub.qos ? r->e->opts.qos : m->pub.qos;
	deliver_to(r->w, r->e->who, m, qos, DELIV_RETAIN, r->e->opts.sub_id);
}

void retained_query(struct worker *w, struct mqtt_view filter, const struct sub_entry *e)
{
	bool wild = memchr(filter.ptr, '+', filter.len) || memchr(filter.ptr, '#', filter.len);
	unsigned n = w->b->worker_count;
	unsigned only = wild ? n : retain_shard_of(filter, n);
	for (unsigned shard = 0; shard < n; shard++) {
		if (only != n && shard != only)
			continue;
		struct sub_delta *d = sub_delta_new(true, filter, e);
		must(d != NULL, "retained query");
		if (shard == w->id) {
			retained_defer(w, d);
			continue;
		}
		struct mbox_msg mb = {.kind = MB_RETAIN_QUERY, .from = w->id, .ptr = d};
		mbox_send(w, (uint16_t)shard, &mb);
	}
}

/* Give m to the next member of the ending session's group it came through. */
static void shared_reroute(struct worker *w, const struct session *s, struct msg *m, uint8_t qos)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct mqtt_filter_parts parts;
		mqtt_filter_split(f, &parts);
		if (!parts.shared || !mqtt_topic_match(parts.filter, m->pub.topic))
			continue;
		struct sub_entry e;
		if (!subidx_shared_pick(w->subs, f, &e))
			continue; /* the group is empty now: nobody to give it to */
		uint8_t q = e.opts.qos < qos ? e.opts.qos : qos;
		deliver_to(w, e.who, m, q, DELIV_SHARED, e.opts.sub_id);
		return;
	}
}

void shared_handoff(struct worker *w, struct session *s)
{
	uint32_t seq = s->infl_head;
	struct inflight *f;
	while ((f = session_infl_next(s, &seq)) != NULL)
		if (f->shared && f->m)
			shared_reroute(w, s, f->m, f->qos);
	for (uint32_t i = 0; i < s->q_len; i++) {
		struct queued *q = &s->q[(s->q_head + i) & (s->q_cap - 1)];
		if (q->shared)
			shared_reroute(w, s, q->m, q->qos);
	}
}

/*
 * Retained lookups are answered only after this worker has drained every
 * mailbox up to what it holds at that moment (see drain_mailboxes): a
 * retained PUBLISH acknowledged to its publisher was pushed toward this
 * shard before the acknowledgement went out, so anything a subscriber could
 * have learned of before subscribing is applied before its lookup runs,
 * whichever worker either of them is on.
 */
void retained_defer(struct worker *w, struct sub_delta *d)
{
	if (w->rq_len == w->rq_cap) {
		uint32_t cap = w->rq_cap ? w->rq_cap * 2 : 16;
		struct sub_delta **n = realloc(w->rq, cap * sizeof(*n));
		must(n != NULL, "retained lookups");
		w->rq = n;
		w->rq_cap = cap;
	}
	w->rq[w->rq_len++] = d;
}

void retained_answer(struct worker *w, struct sub_delta *d)
{
	struct retained_ctx r = {w, &d->e, d->at_ns};
	struct mqtt_view f = {(const uint8_t *)d->filter, d->filter_len};
	retain_match(w->retained, f, w->now_ms, retained_found, &r);
	sub_delta_unref(d);
}

void will_publish(struct worker *w, struct session *s)
{
	struct mqtt_packet p;
	if (s->will &&
	    mqtt_decode_buf(s->will, s->will_len, MQTT_V5, &p, NULL) == MQTT_RC_SUCCESS) {
		struct msg *m = msg_new(&p.publish, MQTT_V5, p.publish.topic, s->id, w->now_ms);
		if (m) {
			LOG_DEBUG("publishing the will of \"%s\"", s->client_id);
			route_publish(w, m);
		}
	}
	free(s->will);
	s->will = NULL;
	s->will_len = 0;
	s->will_at_ms = 0;
}

void mbox_dispatch(struct worker *w, const struct mbox_msg *m)
{
	switch (m->kind) {
	case MB_DELIVER:
		deliver_local(w, m->target, m->ptr, m->qos,
		              (uint8_t)((m->flags & MBOX_F_RETAIN ? DELIV_RETAIN : 0) |
		                        (m->flags & MBOX_F_SHARED ? DELIV_SHARED : 0)),
		              m->sub_id);
		msg_unref(m->ptr);
		break;
	case MB_SUB_DELTA: {
		struct sub_delta *d = m->ptr;
		struct mqtt_view f = {(const uint8_t *)d->filter, d->filter_len};
		delta_apply(w, d->add, f, &d->e, d->was);
		sub_delta_unref(d);
		break;
	}
	case MB_RETAIN_PUT:
		must(retain_put(w->retained, m->ptr) >= 0, "retained store");
		msg_unref(m->ptr);
		break;
	case MB_RETAIN_QUERY:
		retained_defer(w, m->ptr);
		break;
	case MB_TAKEOVER:
		handle_takeover(w, m);
		break;
	case MB_HANDOVER:
		handle_handover(w, m);
		break;
	default:
		LOG_ERROR("worker %u: unknown mailbox message %u", w->id, m->kind);
		break;
	}
}
