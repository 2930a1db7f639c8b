/*
 * handle_connect.c — CONNECT (§3.1): who the client is (password checks run
 * off the worker: the CONNECT waits in rx and is read again with the
 * verdict), what it asks for (keep alive, receive maximum, topic aliases,
 * session expiry, will), and which session it gets: a new one, or the one
 * its client id holds, taken over through the worker that owns it
 * (takeover.c). The CONNACK goes out when the session is decided
 * (lifecycle.c: client_attach). Runs on the worker that owns the connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/verify.h"
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"
#include "transport/tls.h"

/* Refuse with a CONNACK [MQTT-3.2.2-5] and close without a will. */
static void refuse(struct worker *w, struct client *cl, uint8_t version, enum mqtt_rc rc)
{
	cl->version = version;
	struct mqtt_packet a = {.type = MQTT_CONNACK};
	a.connack.rc = version == MQTT_V5 ? (uint8_t)rc : mqtt_rc_to_v3_connack(rc);
	if (connack_fit(cl, &a))
		client_send(w, cl, &a);
	LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: %s (0x%02X)", conn_peer(&cl->c),
	            conn_listener(&w->tp, &cl->c), mqtt_rc_name(rc), rc);
	w->st.connack[stats_connack_slot(rc)]++;
	cl->c.close_reason = CLOSE_CONNECT_REFUSED;
	client_close(w, cl, MQTT_RC_SUCCESS, false);
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
	uint8_t *will = malloc(n);
	if (!will)
		return false;
	uint32_t len = (uint32_t)mqtt_encode(&p, MQTT_V5, will, n);
	session_set_will(s, will, len,
	                 k->will_props.has & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)
	                     ? k->will_props.will_delay_s
	                     : 0);
	return true;
}

/* Who is this? true: go on. false: refused, or the password is being
 * checked off the worker (the CONNECT is read again with the verdict). */
static bool authenticate(struct worker *w, struct client *cl, const struct mqtt_connect *k,
                         enum auth_identity id)
{
	struct auth *a = w->b->auth;
	size_t peer_len = peer_addr_len(&cl->c.peer);
	enum mqtt_rc rc = MQTT_RC_SUCCESS;
	if (cl->auth == CLIENT_AUTH_PASSED) {
		auth_passed(a, k);
		goto authorized;
	}
	if (cl->auth == CLIENT_AUTH_FAILED) {
		auth_failed(a, k, cl->c.peer.addr, peer_len, w->now_ms);
		LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: wrong password for user \"%.*s\"",
		            conn_peer(&cl->c), conn_listener(&w->tp, &cl->c), (int)k->username.len,
		            (const char *)k->username.ptr);
		refuse(w, cl, k->version, MQTT_RC_BAD_USERNAME_OR_PASSWORD);
		return false;
	}
	enum auth_step step = auth_connect(a, k, conn_listener_kind(&w->tp, &cl->c), id,
	                                   cl->c.peer.addr, peer_len, w->now_ms, &rc);
	switch (step) {
	case AUTH_ACCEPT:
		break;
	case AUTH_REFUSE:
		if (id == AUTH_ID_MISSING)
			LOG_INFO_RL(LOG_CLIENT_RL,
			            "refused %s on %s: no client certificate identity to use as "
			            "user name",
			            conn_peer(&cl->c), conn_listener(&w->tp, &cl->c));
		refuse(w, cl, k->version, rc);
		return false;
	case AUTH_VERIFY:
	case AUTH_VERIFY_LATER:
		if (!verify_submit(auth_verifier(a), w->id, cl->c.slot, cl->c.gen, k->username.ptr,
		                   k->username.len, k->password.ptr, k->password.len,
		                   step == AUTH_VERIFY_LATER)) {
			LOG_WARN_RL(1,
			            "refused %s: too many password checks waiting (at most %u for "
			            "user \"%.*s\" and the names sharing its lane, %u in all)",
			            conn_peer(&cl->c), VERIFY_LANE_MAX, (int)k->username.len,
			            (const char *)k->username.ptr, VERIFY_QUEUE_MAX);
			refuse(w, cl, k->version, MQTT_RC_SERVER_BUSY);
			return false;
		}
		cl->state = CLIENT_WAIT_AUTH;
		return false;
	}
authorized:
	/* A will is published later, but permission is decided now (as
	 * mosquitto does): a client learns at CONNECT, not never. */
	if (k->will) {
		const char *user = k->has_username ? (const char *)k->username.ptr : NULL;
		if (!auth_publish(w->mq.acl, user, k->username.len, k->client_id, k->will_topic)) {
			LOG_INFO_RL(LOG_CLIENT_RL,
			            "refused %s on %s (client \"%.*s\", %s%.*s%s): will topic "
			            "\"%.*s\" not authorized",
			            conn_peer(&cl->c), conn_listener(&w->tp, &cl->c),
			            (int)k->client_id.len, (const char *)k->client_id.ptr,
			            user ? "user \"" : "anonymous", user ? (int)k->username.len : 0,
			            user ? user : "", user ? "\"" : "", (int)k->will_topic.len,
			            (const char *)k->will_topic.ptr);
			refuse(w, cl, k->version, MQTT_RC_NOT_AUTHORIZED);
			return false;
		}
	}
	return true;
}

void handle_connect(struct worker *w, struct client *cl, struct mqtt_packet *p, enum mqtt_rc rc)
{
	const struct config *cfg = w->cfg;
	struct mqtt_connect *k = &p->connect;
	if (rc != MQTT_RC_SUCCESS) {
		if (rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION)
			refuse(w, cl, MQTT_V311, rc); /* a level we cannot speak: 3.1.1's form */
		else if (k->version == MQTT_V5 || rc == MQTT_RC_CLIENT_ID_NOT_VALID)
			refuse(w, cl, k->version ? k->version : MQTT_V311, rc);
		else {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: %s in CONNECT", conn_peer(&cl->c),
			            mqtt_rc_name(rc));
			w->st.connack[stats_connack_slot(rc)]++; /* no CONNACK, but an outcome */
			cl->c.close_reason = CLOSE_CONNECT_REFUSED;
			client_close(w, cl, MQTT_RC_SUCCESS, false);
		}
		return;
	}
	cl->version = k->version;
	/* Known before any CONNACK, a refusal's too [MQTT-3.1.2-24]. */
	if (k->version == MQTT_V5 && (k->props.has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)))
		cl->client_max_packet = k->props.max_packet_size;
	/* tls_identity_as_username: the certificate names the user, whatever
	 * the CONNECT says (auth.c has the policy). */
	enum auth_identity ident_from = AUTH_ID_NONE;
	struct tls_conn *t = conn_tls(&w->tp, &cl->c);
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
	if (!authenticate(w, cl, k, ident_from))
		return; /* refused, or waiting for the password check */

	char assigned[40];
	struct mqtt_view cid = k->client_id;
	cl->assigned_id = false;
	if (cid.len == 0) {
		static _Thread_local uint64_t seq;
		snprintf(assigned, sizeof(assigned), "starling-%u-%llx-%llx", w->id,
		         (unsigned long long)w->now_ms, (unsigned long long)++seq);
		cid = mqtt_view_str(assigned);
		cl->assigned_id = true;
	}

	if (cid.len >= sizeof(BRIDGE_ID_PREFIX) - 1 &&
	    !memcmp(cid.ptr, BRIDGE_ID_PREFIX, sizeof(BRIDGE_ID_PREFIX) - 1)) {
		/* The node's own bridges' sessions: a client taking one over
		 * would take the bridge's queue. */
		LOG_INFO_RL(LOG_CLIENT_RL, "refused %s: client id \"%.*s\" is reserved for bridges",
		            conn_peer(&cl->c), (int)cid.len, (const char *)cid.ptr);
		refuse(w, cl, k->version, MQTT_RC_CLIENT_ID_NOT_VALID);
		return;
	}
	cl->bridge_peer = k->bridge;
	cl->keepalive_s = k->keepalive_s;
	cl->server_keepalive_s = 0;
	if (k->version == MQTT_V5 && k->keepalive_s > cfg->keepalive_max_s) {
		cl->keepalive_s = cfg->keepalive_max_s; /* [MQTT-3.2.2-21] */
		cl->server_keepalive_s = cfg->keepalive_max_s;
	}
	cl->deadline_ms = cl->keepalive_s ? w->now_ms + (uint64_t)cl->keepalive_s * 1500 : 0;
	if (k->version == MQTT_V5) {
		if (k->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
			cl->client_receive_max = k->props.receive_max;
		/* Outbound aliases where it takes them (none on failure). */
		uint16_t am = (k->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM))
		                  ? k->props.topic_alias_max
		                  : 0;
		if (am > cfg->topic_alias_out_max)
			am = cfg->topic_alias_out_max;
		if (am && !cl->aliases)
			cl->aliases = calloc(1, sizeof(*cl->aliases));
		if (am && cl->aliases && !cl->aliases->out)
			cl->aliases->out = alias_out_new(am);
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
	cl->expiry_capped = expiry > cfg->session_expiry_max_s;
	if (cl->expiry_capped)
		expiry = cfg->session_expiry_max_s;
	if (k->version != MQTT_V5)
		cl->expiry_capped = false; /* 3.1.1 has no way to say so */
	cl->clean_start = k->clean_start;

	if (w->journal.on && expiry > 0 && !journal_accepting(&w->journal)) {
		/* Its CONNACK would wait for a record the journal cannot take
		 * (disk full, a failed write): refused rather than kept in memory
		 * alone. Clean sessions still connect. */
		LOG_WARN_RL(LOG_CLIENT_RL,
		            "refused %s: a persistent session while the journal refuses records",
		            conn_peer(&cl->c));
		refuse(w, cl, k->version, MQTT_RC_QUOTA_EXCEEDED);
		return;
	}
	struct sess_id id = sess_reserve(&w->sessions);
	if (id.gen == 0) {
		LOG_WARN_RL(LOG_CLIENT_RL, "refused %s: the node holds its maximum of %u sessions",
		            conn_peer(&cl->c), w->cfg->max_sessions);
		refuse(w, cl, k->version, MQTT_RC_QUOTA_EXCEEDED);
		return;
	}
	struct session *fresh = session_new(cid.ptr, (uint16_t)cid.len, id);
	if (!fresh || (k->will && !will_encode(fresh, k)) ||
	    (k->has_username && !session_set_username(fresh, k->username.ptr, k->username.len))) {
		session_free(fresh);
		sess_release_slot(&w->sessions, id);
		refuse(w, cl, k->version, MQTT_RC_SERVER_UNAVAILABLE);
		return;
	}
	session_set_expiry(fresh, expiry);
	sess_install(&w->sessions, fresh, id);

	struct sess_id prev;
	int r = registry_claim(w->b->registry, fresh->client_id, fresh->client_id_len, id, &prev);
	if (r < 0) {
		sess_release_slot(&w->sessions, id);
		session_free(fresh);
		refuse(w, cl, k->version, MQTT_RC_SERVER_UNAVAILABLE);
		return;
	}
	if (r == 0) {
		client_attach(w, cl, fresh, false);
		return;
	}
	/* Someone holds the id: take the session over, through the worker
	 * that owns it (a direct call when that is this one). */
	takeover_begin(w, cl, fresh, prev, k->clean_start);
}
