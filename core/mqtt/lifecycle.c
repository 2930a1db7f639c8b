/*
 * lifecycle.c — a session's life on connections (§4.1): attached when a
 * CONNECT is decided (with the CONNACK), detached when its connection goes
 * (kept until it expires, or ended), its will published, and its end: its
 * subscriptions removed everywhere, its shared messages back to their
 * groups, its client id and slot released. Runs on the worker owning the
 * session.
 */
#include <stdlib.h>

#include "auth/auth.h"
#include "base/check.h"
#include "base/log.h"
#include "loop/worker.h"
#include "persist/session_journal.h"
#include "session/session.h"

/*
 * Nothing larger than the client's Maximum Packet Size [MQTT-3.1.2-24]. A
 * CONNACK that does not fit loses optional properties until it does, the
 * least needed first: Reason String and User Property, which the spec
 * names [MQTT-3.2.2-19, -20]; Topic Alias Maximum, whose absence means
 * the cautious default (no aliases); Session Expiry, only informative;
 * then the limits and features the server enforces anyway, with a reason
 * code, should the client not know them; last Server Keep Alive and the
 * Assigned Client Identifier, which the client cannot do well without.
 * false: not even the bare CONNACK fits (close without sending it).
 */
bool connack_fit(const struct client *cl, struct mqtt_packet *a)
{
	static const uint8_t order[] = {
	    MQTT_PROP_REASON_STRING,       MQTT_PROP_USER,
	    MQTT_PROP_TOPIC_ALIAS_MAXIMUM, MQTT_PROP_SESSION_EXPIRY,
	    MQTT_PROP_RECEIVE_MAXIMUM,     MQTT_PROP_MAXIMUM_PACKET_SIZE,
	    MQTT_PROP_RETAIN_AVAILABLE,    MQTT_PROP_WILDCARD_SUB_AVAILABLE,
	    MQTT_PROP_SUB_ID_AVAILABLE,    MQTT_PROP_SHARED_SUB_AVAILABLE,
	    MQTT_PROP_MAXIMUM_QOS,         MQTT_PROP_SERVER_KEEP_ALIVE,
	    MQTT_PROP_ASSIGNED_CLIENT_ID,
	};
	struct mqtt_props *p = &a->connack.props;
	size_t i = 0;
	while (cl->client_max_packet && mqtt_encode_len(a, cl->version) > cl->client_max_packet) {
		if (i < sizeof(order)) {
			p->has &= ~MQTT_PROP_BIT(order[i]);
			if (order[i++] == MQTT_PROP_USER) {
				p->user_count = 0;
				p->user = NULL;
			}
		} else if (p->has) {
			p->has = 0; /* anything not listed */
		} else {
			return false;
		}
	}
	return true;
}

void client_attach(struct worker *w, struct client *cl, struct session *s, bool present)
{
	const struct config *cfg = w->cfg;
	cl->sess = s;
	cl->pending = NULL;
	session_attach(s, cl->c.slot, cl->c.gen, cl->version);
	cl->state = CLIENT_ACTIVE;
	if (client_is_bridge(cl)) {
		/* The remote sent the CONNACK; ours would make no sense. */
		session_journal(w, s, present);
		bridge_attached(w, cl);
		if (present && !client_closing(cl)) {
			session_resend(w, s);
			if (!client_closing(cl))
				session_pump(w, s);
		}
		return;
	}

	struct mqtt_packet a = {.type = MQTT_CONNACK};
	a.connack.session_present = present;
	if (cl->version == MQTT_V5) {
		struct mqtt_props *p = &a.connack.props;
#define SET(id, field, value)                                                                      \
	do {                                                                                       \
		p->has |= MQTT_PROP_BIT(id);                                                       \
		p->field = (value);                                                                \
	} while (0)
		if (cfg->receive_maximum != 65535)
			SET(MQTT_PROP_RECEIVE_MAXIMUM, receive_max, cfg->receive_maximum);
		SET(MQTT_PROP_MAXIMUM_PACKET_SIZE, max_packet_size, cfg->max_packet_size);
		if (cfg->topic_alias_max)
			SET(MQTT_PROP_TOPIC_ALIAS_MAXIMUM, topic_alias_max, cfg->topic_alias_max);
		if (cfg->max_qos < 2)
			SET(MQTT_PROP_MAXIMUM_QOS, max_qos, cfg->max_qos);
		if (!cfg->retain_available)
			SET(MQTT_PROP_RETAIN_AVAILABLE, retain_available, 0);
		if (!cfg->wildcard_available)
			SET(MQTT_PROP_WILDCARD_SUB_AVAILABLE, wildcard_sub_available, 0);
		if (!cfg->sub_id_available)
			SET(MQTT_PROP_SUB_ID_AVAILABLE, sub_id_available, 0);
		if (!cfg->shared_available)
			SET(MQTT_PROP_SHARED_SUB_AVAILABLE, shared_sub_available, 0);
		if (cl->assigned_id)
			SET(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id,
			    ((struct mqtt_view){(const uint8_t *)s->client_id, s->client_id_len}));
		if (cl->server_keepalive_s)
			SET(MQTT_PROP_SERVER_KEEP_ALIVE, server_keepalive_s,
			    cl->server_keepalive_s);
		if (cl->expiry_capped)
			SET(MQTT_PROP_SESSION_EXPIRY, session_expiry_s, s->expiry_s);
#undef SET
	}
	/* The CONNACK of a persistent session waits for its record (the
	 * barrier holds what is sent after it). */
	session_journal(w, s, present);
	if (!connack_fit(cl, &a)) {
		LOG_INFO_RL(LOG_CLIENT_RL,
		            "closing %s on %s: its Maximum Packet Size of %u bytes leaves no room "
		            "for a CONNACK",
		            conn_peer(&cl->c), conn_listener(&w->tp, &cl->c),
		            cl->client_max_packet);
		w->st.connack[stats_connack_slot(MQTT_RC_PACKET_TOO_LARGE)]++;
		cl->c.close_reason = CLOSE_LIMIT;
		client_close(w, cl, MQTT_RC_SUCCESS, false); /* nothing may go before a CONNACK */
		return;
	}
	client_send(w, cl, &a);
	w->st.connack[0]++;
	LOG_INFO_RL(LOG_CLIENT_RL,
	            "connected %s on %s as \"%s\" (MQTT %s, keep alive %us, clean start %d, "
	            "session %s)",
	            conn_peer(&cl->c), conn_listener(&w->tp, &cl->c), s->client_id,
	            cl->version == MQTT_V5     ? "5.0"
	            : cl->version == MQTT_V311 ? "3.1.1"
	                                       : "3.1",
	            cl->keepalive_s, cl->clean_start, present ? "resumed" : "new");
	if (present) {
		session_resend(w, s);
		if (!client_closing(cl))
			session_pump(w, s);
	}
}

void session_will_publish(struct worker *w, struct session *s)
{
	uint32_t len;
	uint8_t *will = session_take_will(s, &len);
	struct mqtt_packet p;
	if (will && mqtt_decode_buf(will, len, MQTT_V5, &p, NULL) == MQTT_RC_SUCCESS) {
		struct msg *m = msg_new(&p.publish, MQTT_V5, p.publish.topic, s->id, w->now_ms);
		if (m) {
			LOG_DEBUG("publishing the will of \"%s\"", s->client_id);
			route_publish(&w->route, m);
		}
	}
	free(will);
}

/* Remove every subscription of s (whose entries name s->id) everywhere. */
static void unsubscribe_all(struct worker *w, struct session *s)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		route_unsubscribe(&w->route, f, s->id);
	}
}

bool session_journal_wanted(const struct worker *w, const struct session *s)
{
	return w->journal.on && s->expiry_s > 0;
}

bool session_journal(struct worker *w, struct session *s, bool resumed)
{
	if (!w->journal.on)
		return true;
	bool ok = true;
	if (s->expiry_s > 0) {
		ok = persist_session_put(&w->journal, s, &w->b->sess_stamp, w->now_ms);
		if (ok)
			sess_set_journaled(&w->sessions, s->id, true);
	} else if (resumed || sess_journaled(&w->sessions, s->id)) {
		ok = persist_session_end(&w->journal, s->client_id, s->client_id_len,
		                         &w->b->sess_stamp);
		sess_set_journaled(&w->sessions, s->id, false);
	}
	if (!ok)
		LOG_WARN_RL(1,
		            "worker %u: the journal refused the state of session \"%s\" (failing "
		            "or behind): a restart may not find it as it is now",
		            w->id, s->client_id);
	return ok;
}

void session_end(struct worker *w, struct session *s)
{
	unsubscribe_all(w, s);
	shared_handoff(w, s); /* after: the group must not pick this session */
	/* After the handoff's records (deliver.c): a crash that keeps the end
	 * keeps them too (one journal, in order). */
	if (sess_journaled(&w->sessions, s->id) &&
	    !persist_session_end(&w->journal, s->client_id, s->client_id_len, &w->b->sess_stamp))
		LOG_WARN_RL(1,
		            "worker %u: the journal refused the end of session \"%s\" (failing or "
		            "behind): a restart may bring it back",
		            w->id, s->client_id);
	registry_release(w->b->registry, s->client_id, s->client_id_len, s->id);
	sess_release_slot(&w->sessions, s->id);
	LOG_DEBUG("session \"%s\" ended", s->client_id);
	session_free(s);
}

void session_unindex_free(struct worker *w, struct session *s)
{
	unsubscribe_all(w, s);
	session_free(s);
}

void client_detach(struct worker *w, struct client *cl, bool will)
{
	struct session *s = cl->sess;
	CHECK(s && s->online && s->conn_slot == cl->c.slot && s->conn_gen == cl->c.gen);
	cl->sess = NULL;
	unsigned after = session_detach(s, w->now_ms, will);
	if (after & SESSION_WILL_NOW)
		session_will_publish(w, s);
	if (after & SESSION_ENDS)
		session_end(w, s);
	else if (sess_journaled(&w->sessions, s->id))
		session_journal(w, s, false); /* offline: its expiry runs, a will it keeps */
}

void mqtt_acl_recheck(struct worker *w)
{
	uint64_t removed = 0;
	struct sessions *t = &w->sessions;
	for (uint32_t i = 0; i < t->cap; i++) {
		struct session *s = t->sess[i];
		if (!s)
			continue;
		size_t ulen;
		const char *user = session_username(s, &ulen);
		struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
		uint64_t removed_before = removed;
		for (uint32_t k = 0; k < s->sub_count;) {
			struct mqtt_view f = {(const uint8_t *)s->subs[k].filter,
			                      s->subs[k].filter_len};
			if (auth_subscribe(w->mq.acl, user, ulen, cid, f)) {
				k++;
				continue;
			}
			route_unsubscribe(&w->route, f, s->id);
			/* Removing swaps the last one into k: look at k again. */
			session_sub_remove(s, f);
			removed++;
		}
		if (removed > removed_before && sess_journaled(t, s->id))
			session_journal(w, s, false);
	}
	if (removed)
		LOG_INFO("worker %u: the new ACL removed %llu subscriptions", w->id,
		         (unsigned long long)removed);
}

void mqtt_publish_wills(struct worker *w)
{
	/* Without persistence every session ends with the process, and a
	 * session that ends publishes its will, delayed or not [MQTT-3.1.2-8,
	 * §3.1.3.2 Will Delay Interval]. Online persistent sessions keep what
	 * their window could not take. */
	struct sessions *t = &w->sessions;
	for (uint32_t i = 0; i < t->cap; i++)
		if (t->sess[i] && t->sess[i]->will && (t->sess[i]->online || !t->journaled[i]))
			session_will_publish(w, t->sess[i]);
	/* With persistence the journal keeps an offline persistent session,
	 * its will and the will's delay: it does not end with the process, so
	 * its will goes when the delay or the session's expiry ends, counted
	 * across the restart. An online session's connection closes now: its
	 * will goes now, as without persistence. */
}

bool mqtt_client_settled(const struct worker *w, const struct client *cl)
{
	const struct session *s = cl->sess;
	if (cl->state != CLIENT_ACTIVE || client_closing(cl) || !s)
		return true; /* not yet a client, or going: nothing owed */
	if (s->infl_count > 0 || s->q_len > 0)
		return false;
	return conn_output_idle(&w->tp, &cl->c);
}

void mqtt_close_all(struct worker *w, enum mqtt_rc rc)
{
	struct transport *tp = &w->tp;
	for (uint32_t i = 0; i < tp->conn_cap; i++) {
		struct conn *c = tp->conns[i];
		if (c && !c->closing && conn_is_mqtt(tp, c))
			/* A bridge is the client there: "server shutting down" is
			 * not a client's reason code; its link just closes. */
			client_close(w, client_of(c),
			             client_is_bridge(client_of(c)) ? MQTT_RC_SUCCESS : rc, false);
	}
}
