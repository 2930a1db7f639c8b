/*
 * deliver.c — a message from a plan (route/plan.h) to one session of this
 * worker: the ACL's receive check, expiry, then the connection's outbox
 * within the in-flight window, or the session's queue; the queue pumped as
 * acknowledgements free the window; unacknowledged messages resent on a new
 * connection; a departing session's shared messages handed back to their
 * groups. Runs on the worker owning the session.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "loop/worker.h"
#include "persist/msg_journal.h"
#include "persist/record.h"
#include "session/session.h"

/* Would this PUBLISH be larger than the client accepts [MQTT-3.1.2-24]? */
static bool too_big(const struct client *cl, const struct mqtt_packet *p)
{
	return cl->client_max_packet && mqtt_encode_len(p, cl->version) > cl->client_max_packet;
}

/*
 * Outgoing topic alias (§3.3.2.3.4; the policy is in session.h): a topic
 * the client knows an alias for goes as an empty topic plus the alias; a
 * topic that can have one goes in full with its new alias. Only to a
 * client that takes them, never above its maximum [MQTT-3.1.2-26, -27]:
 * cl->aliases->out exists only then, sized by it. Returns that new alias,
 * to remember only once the packet really went (alias_sent): a dropped QoS
 * 0 must not leave the client unaware of an alias we then use. 0: nothing
 * to remember.
 */
static uint16_t alias_apply(const struct client *cl, struct mqtt_packet *p)
{
	if (!cl->aliases || !cl->aliases->out)
		return 0;
	struct alias_out *out = cl->aliases->out;
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
	if (too_big(cl, p)) {
		/* The alias property made it too big: without it, maybe not. */
		pub->props.has &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
		return 0;
	}
	return n;
}

/* p (built by alias_apply from m) went into the outbox. */
static void alias_sent(struct client *cl, uint16_t fresh, const struct msg *m)
{
	if (fresh)
		alias_out_add(cl->aliases->out, m->pub.topic);
}

static void publish_packet(struct worker *w, const struct client *cl, struct mqtt_packet *p,
                           struct msg *m, uint8_t qos, uint16_t pid, bool retain, bool dup,
                           const uint32_t *sub_id)
{
	p->type = MQTT_PUBLISH;
	p->publish = m->pub;
	if (client_is_bridge(cl)) {
		/* The remote's name for it; the packet is encoded before the next
		 * one is built, so one buffer per thread is enough. */
		static _Thread_local char topic[CONFIG_BRIDGE_PREFIX_MAX + 65536];
		p->publish.topic = bridge_topic_out(w, cl, m->pub.topic, topic, sizeof(topic));
	}
	p->publish.qos = qos;
	p->publish.packet_id = pid;
	p->publish.retain = retain;
	/* "might be re-delivery of an earlier attempt" (§3.3.1.1): what came
	 * back from the journal may have been sent before the restart. */
	p->publish.dup = dup || (qos > 0 && m->recovered);
	if (*sub_id) {
		p->publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
		p->publish.props.sub_ids = sub_id;
		p->publish.props.sub_id_count = 1;
	}
	if (m->expires_at_ms) /* the time it waited comes off [MQTT-3.3.2-6] */
		p->publish.props.message_expiry_s = msg_expiry_left_s(m, w->now_ms);
}

/* The session's connection, when one is attached and active. */
static struct client *session_client(struct worker *w, const struct session *s)
{
	if (!s->online)
		return NULL;
	struct conn *c = conn_get(&w->tp, s->conn_slot, s->conn_gen);
	struct client *cl = c ? client_of(c) : NULL;
	return cl && !client_closing(cl) && cl->state == CLIENT_ACTIVE ? cl : NULL;
}

static uint32_t window_of(const struct worker *w, const struct client *cl)
{
	/* A bridge's is its own inflight_max, already under the remote's
	 * Receive Maximum (bridge_connack), not the clients' setting. */
	if (client_is_bridge(cl))
		return cl->client_receive_max;
	return w->cfg->inflight_max < cl->client_receive_max ? w->cfg->inflight_max
	                                                     : cl->client_receive_max;
}

/* A journaled QoS 2 delivery goes out under pid: the journal says so first
 * (the gate holds the PUBLISH behind it), so that after a crash it goes
 * again under the same id and a receiver that had it knows it. */
static void journal_sent(struct worker *w, const struct session *s, const struct msg *m,
                         uint8_t qos, uint8_t flags, uint16_t pid)
{
	if (qos == 2 && (flags & DELIV_JOURNALED))
		persist_packet_id(&w->journal, &w->b->sess_stamp, REC_MSG_SENT, m->jstamp, pid,
		                  s->client_id, s->client_id_len);
}

static void deliver_session(struct worker *w, struct session *s, struct msg *m, uint8_t qos,
                            uint8_t flags, uint32_t sub_id);

void deliver_local(void *ctx, struct sess_id to, struct msg *m, uint8_t qos, uint8_t flags,
                   uint32_t sub_id)
{
	struct worker *w = ctx;
	struct session *s = sess_get(&w->sessions, to);
	if (!s) {
		/* Moved by a takeover since the match: on to where it went
		 * (sessions.h). Otherwise it ended: a stale entry. */
		struct sess_id moved;
		if (sess_moved_to(&w->sessions, to, &moved))
			route_pass_on(&w->route, moved, m, qos, flags, sub_id);
		return;
	}
	if (w->mq.acl) {
		/* Every way a message reaches a session passes here: live,
		 * retained, wills, shared handoffs. */
		size_t ulen;
		const char *user = session_username(s, &ulen);
		struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
		if (!auth_receive(w->mq.acl, user, ulen, cid, m->pub.topic)) {
			w->st.drops_denied++;
			return;
		}
	}
	if (msg_expired(m, w->now_ms)) {
		w->st.drops_expired++;
		return;
	}
	if (qos > 0 && !(flags & DELIV_JOURNALED) && w->journal.on &&
	    w->sessions.journaled[to.slot]) {
		/* A QoS 1/2 message that reached a persistent session by a
		 * way that did not journal it for this session: a retained
		 * message at SUBSCRIBE, a shared group's handoff, a will.
		 * Journaled here, on a copy (m is shared and its stamp is
		 * another delivery's), before it goes out (the gate holds the
		 * PUBLISH behind the record); when the journal refuses, it
		 * goes unjournaled, as before. */
		struct msg *c = msg_copy(m);
		if (c && persist_message_to(&w->journal, c, to, qos, flags, sub_id,
		                            &w->b->sess_stamp, w->now_ms)) {
			deliver_session(w, s, c, qos, flags | DELIV_JOURNALED, sub_id);
			msg_unref(c);
			return;
		}
		if (c)
			msg_unref(c);
	}
	deliver_session(w, s, m, qos, flags, sub_id);
}

/* m to session s (on this worker): out now when its client is online and
 * the window has room, else queued. */
static void deliver_session(struct worker *w, struct session *s, struct msg *m, uint8_t qos,
                            uint8_t flags, uint32_t sub_id)
{
	bool retain = flags & DELIV_RETAIN;
	const struct config *cfg = w->cfg;
	if (s->online) {
		struct client *cl = session_client(w, s);
		if (cl && qos > cl->peer_max_qos)
			qos = cl->peer_max_qos; /* a bridge's remote's Maximum QoS */
		/* QoS 1/2 behind queued ones, or with the window full, waits in
		 * the queue: no packet to build for it now. */
		if (cl && (qos == 0 || (s->q_len == 0 && s->infl_count < window_of(w, cl)))) {
			struct mqtt_packet p;
			publish_packet(w, cl, &p, m, qos, qos ? 1 : 0, retain, false, &sub_id);
			uint16_t fresh = alias_apply(cl, &p);
			if (too_big(cl, &p)) {
				w->st.drops_oversize++; /* skipped for this client, counted */
				return;
			}
			if (qos == 0) {
				if (!client_send(w, cl, &p))
					w->st.drops_outbox++;
				else
					alias_sent(cl, fresh, m);
				if (flags & DELIV_JOURNALED) /* downgraded: as good as sent */
					persist_message_done(&w->journal, m->jstamp, s->client_id,
					                     s->client_id_len);
				return;
			}
			uint16_t pid = session_infl_add(s, m, qos, flags, sub_id, window_of(w, cl));
			if (pid) {
				journal_sent(w, s, m, qos, flags, pid);
				p.publish.packet_id = pid;
				if (client_send(w, cl, &p))
					alias_sent(cl, fresh, m);
				return;
			}
		}
	} else if (qos == 0 && !cfg->queue_qos0) {
		return; /* QoS 0 is not kept for offline sessions unless asked */
	}
	struct drop_sink sink = {queue_dropped, w};
	struct queue_limits lim;
	queue_limits_of(cfg, s, &lim);
	unsigned dropped =
	    session_enqueue(s, m, qos, flags, sub_id, lim.messages, lim.bytes, lim.policy, &sink);
	w->st.drops_queue += dropped;
	bridge_dropped(w, &lim, dropped);
}

void queue_dropped(void *ctx, const struct session *s, const struct msg *m)
{
	struct worker *w = ctx;
	persist_message_done(&w->journal, m->jstamp, s->client_id, s->client_id_len);
}

void session_pump(struct worker *w, struct session *s)
{
	struct client *cl = session_client(w, s);
	if (!cl)
		return;
	uint32_t window = window_of(w, cl);
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
		if (q.qos > cl->peer_max_qos) /* queued before a bridge's remote said */
			q.qos = cl->peer_max_qos;
		struct mqtt_packet p;
		publish_packet(w, cl, &p, q.m, q.qos, q.qos ? 1 : 0, q.retain, false, &q.sub_id);
		uint16_t fresh = alias_apply(cl, &p);
		if (too_big(cl, &p)) {
			w->st.drops_oversize++;
			if (q.journaled) /* done with it, as if sent [MQTT-3.1.2-25] */
				persist_message_done(&w->journal, q.m->jstamp, s->client_id,
				                     s->client_id_len);
		} else if (q.qos == 0) {
			if (!client_send(w, cl, &p))
				w->st.drops_outbox++;
			else
				alias_sent(cl, fresh, q.m);
			if (q.journaled) /* a remote that takes QoS 0 only: as good as sent */
				persist_message_done(&w->journal, q.m->jstamp, s->client_id,
				                     s->client_id_len);
		} else {
			p.publish.packet_id =
			    session_infl_add(s, q.m, q.qos, queued_flags(&q), q.sub_id, window);
			journal_sent(w, s, q.m, q.qos, queued_flags(&q), p.publish.packet_id);
			if (client_send(w, cl, &p))
				alias_sent(cl, fresh, q.m);
		}
		msg_unref(q.m);
		if (client_closing(cl))
			return; /* not reading its output (output.c): s may be gone */
	}
}

void session_resend(struct worker *w, struct session *s)
{
	struct conn *c = conn_get(&w->tp, s->conn_slot, s->conn_gen);
	if (!c)
		return;
	struct client *cl = client_of(c);
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
			publish_packet(w, cl, &p, f->m, f->qos, f->pid, f->retain, true,
			               &f->sub_id);
			if (too_big(cl, &p)) {
				/* The new connection takes less than the old one
				 * did: drop it as if sent and acknowledged
				 * [MQTT-3.1.2-25], or it holds a window slot for good. */
				w->st.drops_oversize++;
				if (f->journaled)
					persist_message_done(&w->journal, f->m->jstamp,
					                     s->client_id, s->client_id_len);
				session_infl_ack(s, f->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC,
				                 f->pid);
				if (f->qos == 2)
					session_infl_ack(s, MQTT_PUBCOMP, f->pid);
				continue;
			}
		}
		client_send(w, cl, &p);
		if (client_closing(cl))
			return; /* it did not take a PUBREL (output.c): s may be gone */
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
		if (!route_shared_pick(&w->route, f, &e))
			continue; /* the group is empty now: nobody to give it to */
		uint8_t q = e.opts.qos < qos ? e.opts.qos : qos;
		uint8_t flags = DELIV_SHARED;
		struct msg *c = NULL;
		if (q > 0 && e.opts.journaled && w->journal.on &&
		    e.who.worker != SESS_WORKER_NODE && (c = msg_copy(m)) != NULL &&
		    persist_message_to(&w->journal, c, e.who, q, flags, e.opts.sub_id,
		                       &w->b->sess_stamp, w->now_ms)) {
			/* Journaled for the member here, before the ending
			 * session's REC_SESS_END (session_end): no crash can
			 * keep the end and lose the handoff. route_deliver_to
			 * holds a QoS 2 one until it is durable. */
			m = c;
			flags |= DELIV_JOURNALED;
		}
		route_deliver_to(&w->route, e.who, m, q, flags, e.opts.sub_id);
		if (c)
			msg_unref(c);
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
