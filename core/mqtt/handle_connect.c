/*
 * handle_connect.c — CONNECT (§3.1) and what it sets up: the reply, the
 * session (new, resumed, or taken over from another connection on any
 * worker), and the CONNACK (§3.2). Runs on the worker that owns the new
 * connection; the old session's worker answers MB_TAKEOVER in
 * handle_takeover() with the session itself (MB_HANDOVER).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/log.h"
#include "transport/tls.h"
#include "auth/verify.h"
#include "loop/worker.h"

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
static bool connack_fit(const struct conn *c, struct mqtt_packet *a)
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
	while (c->client_max_packet && mqtt_encode_len(a, c->version) > c->client_max_packet) {
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

/* Refuse with a CONNACK [MQTT-3.2.2-5] and close without a will. */
static void refuse(struct worker *w, struct conn *c, uint8_t version, enum mqtt_rc rc)
{
	c->version = version;
	struct mqtt_packet a = {.type = MQTT_CONNACK};
	a.connack.rc = version == MQTT_V5 ? (uint8_t)rc : mqtt_rc_to_v3_connack(rc);
	if (connack_fit(c, &a))
		conn_send_packet(w, c, &a);
	LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: %s (0x%02X)", conn_peer(c),
	            conn_listener(w, c), mqtt_rc_name(rc), rc);
	w->st.connack[stats_connack_slot(rc)]++;
	c->close_reason = CLOSE_CONNECT_REFUSED;
	conn_close(w, c, MQTT_RC_SUCCESS, false);
}

/* The will, as the PUBLISH it will become, encoded (5.0 form) for later. */
static bool will_encode(struct session *s, const struct mqtt_connect *k)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = k->will_topic;
	p.publish.payload = k->will_payload;
	p.publish.qos = k->will_qos;
	p.publish.retain = k->will_retain;
	p.publish.packet_id = k->will_qos ? 1 : 0;
	p.publish.props = k->will_props;
	/* Will Delay belongs to the will, not to the PUBLISH it becomes. */
	p.publish.props.has &= ~MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
	size_t n = mqtt_encode_len(&p, MQTT_V5);
	s->will = malloc(n);
	if (!s->will)
		return false;
	s->will_len = (uint32_t)mqtt_encode(&p, MQTT_V5, s->will, n);
	s->will_delay_s = k->will_props.has & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)
	                      ? k->will_props.will_delay_s
	                      : 0;
	return true;
}

/* Move what survives a reconnection from old into fresh, then free old. */
static void session_adopt(struct worker *w, struct session *fresh, struct session *old)
{
	struct session early = {0}; /* fresh's queue: mail that arrived first */
#define TAKE(f)                                                                                    \
	do {                                                                                       \
		early.f = fresh->f;                                                                \
		fresh->f = 0;                                                                      \
	} while (0)
	TAKE(q);
	TAKE(q_head);
	TAKE(q_len);
	TAKE(q_cap);
	TAKE(q_bytes);
#undef TAKE
#define MOVE(f)                                                                                    \
	do {                                                                                       \
		fresh->f = old->f;                                                                 \
		old->f = 0;                                                                        \
	} while (0)
	MOVE(subs);
	MOVE(sub_count);
	MOVE(sub_cap);
	MOVE(infl);
	MOVE(infl_head);
	MOVE(infl_tail);
	MOVE(infl_count);
	MOVE(infl_cap);
	MOVE(q);
	MOVE(q_head);
	MOVE(q_len);
	MOVE(q_cap);
	MOVE(q_bytes);
	MOVE(rx_qos2);
	MOVE(rx_qos2_count);
	MOVE(rx_qos2_cap);
#undef MOVE
	fresh->next_pid = old->next_pid;
	session_free(old); /* its will is replaced by the new CONNECT's */
	/* The index entries already name fresh (moved at the detach), so mail
	 * may have come before the session did: it goes after the session's. */
	const struct config *cfg = w->cfg;
	struct queued e;
	while (session_dequeue(&early, &e)) {
		uint8_t flags =
		    (uint8_t)((e.retain ? DELIV_RETAIN : 0) | (e.shared ? DELIV_SHARED : 0));
		w->st.drops_queue +=
		    session_enqueue(fresh, e.m, e.qos, flags, e.sub_id, cfg->queue_messages_max,
		                    cfg->queue_bytes_max, cfg->queue_overflow);
		msg_unref(e.m);
	}
	free(early.q);
}

void connect_finish(struct worker *w, struct conn *c, struct session *s, bool present)
{
	const struct config *cfg = w->cfg;
	c->sess = s;
	c->pending = NULL;
	s->online = true;
	s->conn_slot = c->slot;
	s->conn_gen = c->gen;
	s->version = c->version;
	s->expires_at_ms = 0;
	s->will_at_ms = 0;
	c->state = CONN_ACTIVE;

	struct mqtt_packet a = {.type = MQTT_CONNACK};
	a.connack.session_present = present;
	if (c->version == MQTT_V5) {
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
		if (c->assigned_id)
			SET(MQTT_PROP_ASSIGNED_CLIENT_ID, assigned_client_id,
			    ((struct mqtt_view){(const uint8_t *)s->client_id, s->client_id_len}));
		if (c->server_keepalive_s)
			SET(MQTT_PROP_SERVER_KEEP_ALIVE, server_keepalive_s, c->server_keepalive_s);
		if (c->expiry_capped)
			SET(MQTT_PROP_SESSION_EXPIRY, session_expiry_s, s->expiry_s);
#undef SET
	}
	if (!connack_fit(c, &a)) {
		LOG_INFO_RL(LOG_CLIENT_RL,
		            "closing %s on %s: its Maximum Packet Size of %u bytes leaves no room "
		            "for a CONNACK",
		            conn_peer(c), conn_listener(w, c), c->client_max_packet);
		w->st.connack[stats_connack_slot(MQTT_RC_PACKET_TOO_LARGE)]++;
		c->close_reason = CLOSE_LIMIT;
		conn_close(w, c, MQTT_RC_SUCCESS, false); /* nothing may go before a CONNACK */
		return;
	}
	conn_send_packet(w, c, &a);
	w->st.connack[0]++;
	LOG_INFO_RL(LOG_CLIENT_RL,
	            "connected %s on %s as \"%s\" (MQTT %s, keep alive %us, clean start %d, "
	            "session %s)",
	            conn_peer(c), conn_listener(w, c), s->client_id,
	            c->version == MQTT_V5     ? "5.0"
	            : c->version == MQTT_V311 ? "3.1.1"
	                                      : "3.1",
	            c->keepalive_s, c->clean_start, present ? "resumed" : "new");
	if (present) {
		session_resend(w, s);
		session_pump(w, s);
	}
}

/* Who is this? true: go on. false: refused, or the password is being
 * checked off the worker (the CONNECT is read again with the verdict). */
static bool authenticate(struct worker *w, struct conn *c, const struct mqtt_connect *k,
                         enum auth_identity id)
{
	struct auth *a = w->b->auth;
	size_t peer_len = peer_addr_len(&c->peer);
	enum mqtt_rc rc = MQTT_RC_SUCCESS;
	if (c->auth == CONN_AUTH_PASSED) {
		auth_passed(a, k);
		goto authorized;
	}
	if (c->auth == CONN_AUTH_FAILED) {
		auth_failed(a, k, c->peer.addr, peer_len, w->now_ms);
		LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: wrong password for user \"%.*s\"",
		            conn_peer(c), conn_listener(w, c), (int)k->username.len,
		            (const char *)k->username.ptr);
		refuse(w, c, k->version, MQTT_RC_BAD_USERNAME_OR_PASSWORD);
		return false;
	}
	enum auth_step step = auth_connect(a, k, w->b->listeners[c->listener].kind, id,
	                                   c->peer.addr, peer_len, w->now_ms, &rc);
	switch (step) {
	case AUTH_ACCEPT:
		break;
	case AUTH_REFUSE:
		if (id == AUTH_ID_MISSING)
			LOG_INFO_RL(LOG_CLIENT_RL,
			            "refused %s on %s: no client certificate identity to use as "
			            "user name",
			            conn_peer(c), conn_listener(w, c));
		refuse(w, c, k->version, rc);
		return false;
	case AUTH_VERIFY:
	case AUTH_VERIFY_LATER:
		if (!verify_submit(auth_verifier(a), w->id, c->slot, c->gen, k->username.ptr,
		                   k->username.len, k->password.ptr, k->password.len,
		                   step == AUTH_VERIFY_LATER)) {
			LOG_WARN_RL(1,
			            "refused %s: too many password checks waiting (at most %u for "
			            "user \"%.*s\" and the names sharing its lane, %u in all)",
			            conn_peer(c), VERIFY_LANE_MAX, (int)k->username.len,
			            (const char *)k->username.ptr, VERIFY_QUEUE_MAX);
			refuse(w, c, k->version, MQTT_RC_SERVER_BUSY);
			return false;
		}
		c->state = CONN_WAIT_AUTH;
		return false;
	}
authorized:
	/* A will is published later, but permission is decided now (as
	 * mosquitto does): a client learns at CONNECT, not never. */
	if (k->will) {
		const char *user = k->has_username ? (const char *)k->username.ptr : NULL;
		if (!auth_publish(w->acl, user, k->username.len, k->client_id, k->will_topic)) {
			LOG_INFO_RL(LOG_CLIENT_RL,
			            "refused %s on %s (client \"%.*s\", %s%.*s%s): will topic "
			            "\"%.*s\" not authorized",
			            conn_peer(c), conn_listener(w, c), (int)k->client_id.len,
			            (const char *)k->client_id.ptr, user ? "user \"" : "anonymous",
			            user ? (int)k->username.len : 0, user ? user : "",
			            user ? "\"" : "", (int)k->will_topic.len,
			            (const char *)k->will_topic.ptr);
			refuse(w, c, k->version, MQTT_RC_NOT_AUTHORIZED);
			return false;
		}
	}
	return true;
}

void handle_connect(struct worker *w, struct conn *c, struct mqtt_packet *p, enum mqtt_rc rc)
{
	const struct config *cfg = w->cfg;
	struct mqtt_connect *k = &p->connect;
	if (rc != MQTT_RC_SUCCESS) {
		if (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)
			refuse(w, c, MQTT_V311, rc); /* a level we cannot speak: 3.1.1's form */
		else if (k->version == MQTT_V5 || rc == MQTT_RC_CLIENT_ID_NOT_VALID)
			refuse(w, c, k->version ? k->version : MQTT_V311, rc);
		else {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: %s in CONNECT", conn_peer(c),
			            mqtt_rc_name(rc));
			w->st.connack[stats_connack_slot(rc)]++; /* no CONNACK, but an outcome */
			c->close_reason = CLOSE_CONNECT_REFUSED;
			conn_close(w, c, MQTT_RC_SUCCESS, false);
		}
		return;
	}
	c->version = k->version;
	/* Known before any CONNACK, a refusal's too [MQTT-3.1.2-24]. */
	if (k->version == MQTT_V5 && (k->props.has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)))
		c->client_max_packet = k->props.max_packet_size;
	/* tls_identity_as_username: the certificate names the user, whatever
	 * the CONNECT says (auth.c has the policy). */
	enum auth_identity ident_from = AUTH_ID_NONE;
	struct tls_conn *t = conn_tls(w, c);
	if (t && cfg->tls_identity_as_username != TLS_IDENTITY_NONE) {
		size_t len;
		const char *ident = tls_conn_identity(t, &len);
		ident_from = ident ? AUTH_ID_CERT : AUTH_ID_MISSING;
		if (ident) {
			k->username = (struct mqtt_view){(const uint8_t *)ident, (uint32_t)len};
			k->has_username = true;
		}
	}
	if (t && ident_from == AUTH_ID_NONE && tls_conn_has_cert(t))
		ident_from = AUTH_ID_VERIFIED;
	if (!authenticate(w, c, k, ident_from))
		return; /* refused, or waiting for the password check */

	char assigned[40];
	struct mqtt_view cid = k->client_id;
	c->assigned_id = false;
	if (cid.len == 0) {
		static _Thread_local uint64_t seq;
		snprintf(assigned, sizeof(assigned), "starling-%u-%llx-%llx", w->id,
		         (unsigned long long)w->now_ms, (unsigned long long)++seq);
		cid = mqtt_view_str(assigned);
		c->assigned_id = true;
	}

	c->keepalive_s = k->keepalive_s;
	c->server_keepalive_s = 0;
	if (k->version == MQTT_V5 && k->keepalive_s > cfg->keepalive_max_s) {
		c->keepalive_s = cfg->keepalive_max_s; /* [MQTT-3.2.2-21] */
		c->server_keepalive_s = cfg->keepalive_max_s;
	}
	c->deadline_ms = c->keepalive_s ? w->now_ms + (uint64_t)c->keepalive_s * 1500 : 0;
	if (k->version == MQTT_V5) {
		if (k->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
			c->client_receive_max = k->props.receive_max;
		/* Outbound aliases where it takes them (none on failure). */
		uint16_t am = (k->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
		                  ? k->props.topic_alias_max
		                  : 0;
		if (am > cfg->topic_alias_out_max)
			am = cfg->topic_alias_out_max;
		if (am && !c->aliases)
			c->aliases = calloc(1, sizeof(*c->aliases));
		if (am && c->aliases && !c->aliases->out)
			c->aliases->out = alias_out_new(am);
	}

	/* Session Expiry: 5.0 asks; 3.1.1 clean session 0 means "keep it",
	 * which we bound by the same maximum. */
	uint32_t expiry;
	if (k->version == MQTT_V5)
		expiry = (k->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))
		             ? k->props.session_expiry_s
		             : 0;
	else
		expiry = k->clean_start ? 0 : UINT32_MAX;
	c->expiry_capped = expiry > cfg->session_expiry_max_s;
	if (c->expiry_capped)
		expiry = cfg->session_expiry_max_s;
	if (k->version != MQTT_V5)
		c->expiry_capped = false; /* 3.1.1 has no way to say so */
	c->clean_start = k->clean_start;

	struct sess_id id = sess_reserve(w);
	if (id.gen == 0) {
		LOG_WARN_RL(LOG_CLIENT_RL, "refused %s: the node holds its maximum of %u sessions",
		            conn_peer(c), w->cfg->max_sessions);
		refuse(w, c, k->version, MQTT_RC_QUOTA_EXCEEDED);
		return;
	}
	struct session *fresh = session_new(cid.ptr, (uint16_t)cid.len, id);
	if (!fresh || (k->will && !will_encode(fresh, k)) ||
	    (k->has_username && !session_set_username(fresh, k->username.ptr, k->username.len))) {
		session_free(fresh);
		sess_release_slot(w, id);
		refuse(w, c, k->version, MQTT_RC_SERVER_UNAVAILABLE);
		return;
	}
	fresh->expiry_s = expiry;
	fresh->version = k->version;
	sess_install(w, fresh, id);

	struct sess_id prev;
	int r = registry_claim(w->b->registry, fresh->client_id, fresh->client_id_len, id, &prev);
	if (r < 0) {
		sess_release_slot(w, id);
		session_free(fresh);
		refuse(w, c, k->version, MQTT_RC_SERVER_UNAVAILABLE);
		return;
	}
	if (r == 0) {
		connect_finish(w, c, fresh, false);
		return;
	}
	/* Someone holds the id: take the session over, through the worker
	 * that owns it (a direct call when that is this one). */
	c->pending = fresh;
	c->state = CONN_WAIT_TAKEOVER;
	struct mbox_msg m = {.kind = MB_TAKEOVER,
	                     .flags = k->clean_start ? MBOX_F_CLEAN : 0,
	                     .from = w->id,
	                     .target = prev,
	                     .conn_slot = c->slot,
	                     .conn_gen = c->gen,
	                     .fresh = {id.slot, id.gen}};
	if (prev.worker == w->id)
		handle_takeover(w, &m);
	else
		mbox_send(w, prev.worker, &m);
}

/* On the worker owning the old session: close its connection, hand it over. */
void handle_takeover(struct worker *w, const struct mbox_msg *m)
{
	struct session *old = sess_get(w, m->target);
	struct mbox_msg reply = {.kind = MB_HANDOVER,
	                         .from = w->id,
	                         .target = m->target,
	                         .conn_slot = m->conn_slot,
	                         .conn_gen = m->conn_gen};
	if (old && old->online) {
		struct conn *oc = conn_get(w, old->conn_slot, old->conn_gen);
		if (oc) {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): session taken over",
			            conn_peer(oc), old->client_id);
			/* [MQTT-3.1.4-3]: 0x8E, and its will as for any close. */
			conn_close(w, oc, MQTT_RC_SESSION_TAKEN_OVER, true);
		}
		old = sess_get(w, m->target); /* an expiry-0 session ended just now */
	}
	if (old) {
		if (m->flags & MBOX_F_CLEAN) {
			if (old->will)
				will_publish(w, old); /* the session ends: a delayed will fires */
			sess_end(w, old);
		} else {
			/* Mail still on its way to the old id follows the session. */
			struct sess_id to = {m->fresh.slot, m->fresh.gen, m->from};
			sess_detach(w, old, to);
			reply.ptr = old;
		}
	}
	if (m->from == w->id)
		handle_handover(w, &reply);
	else
		mbox_send(w, m->from, &reply);
}

/* On the new connection's worker: the old session (or nothing) arrived. */
void handle_handover(struct worker *w, const struct mbox_msg *m)
{
	struct session *old = m->ptr;
	struct conn *c = conn_get(w, m->conn_slot, m->conn_gen);
	if (!c || c->state != CONN_WAIT_TAKEOVER || !c->pending) {
		/* The new connection died while waiting; so does the session. */
		if (old)
			sess_unindex_free(w, old);
		return;
	}
	struct session *fresh = c->pending;
	if (old)
		session_adopt(w, fresh, old);
	connect_finish(w, c, fresh, old != NULL);
	/* Packets that arrived while we waited: at the loop's resume step.
	 * When the old session was on this worker we are inside the parse of
	 * c's own CONNECT, which goes on with the packets behind it by itself;
	 * parsing rx here as well would read that CONNECT a second time. */
	conn_want_resume(w, c);
}
