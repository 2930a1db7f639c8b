/*
 * handle_publish.c — an inbound PUBLISH (§3.3, §4.3): topic alias, limits,
 * QoS 2 exactly-once bookkeeping, then one shared message routed to every
 * subscriber, then the acknowledgement. Runs on the publisher's worker.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "base/log.h"
#include "loop/worker.h"
#include "persist/msg_journal.h"
#include "persist/record.h"
#include "session/session.h"

static void ack(struct worker *w, struct client *cl, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct mqtt_packet a = {.type = type};
	a.ack.packet_id = pid;
	a.ack.rc = cl->version == MQTT_V5 ? rc : 0;
	client_send(w, cl, &a);
}

/* Inbound topic alias (§3.3.2.3.4): set or look up. */
static enum mqtt_rc resolve_alias(struct worker *w, struct client *cl, struct mqtt_publish *p,
                                  struct mqtt_view *topic)
{
	uint16_t a = p->props.topic_alias;
	if (a == 0 || a > w->cfg->topic_alias_max)
		return MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-9] */
	if (!cl->aliases && !(cl->aliases = calloc(1, sizeof(*cl->aliases))))
		return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
	char **in = cl->aliases->in;
	if (!in) {
		in = cl->aliases->in = calloc((size_t)w->cfg->topic_alias_max + 1, sizeof(char *));
		if (!in)
			return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
	}
	if (p->topic.len > 0) {
		char *copy = malloc((size_t)p->topic.len + 1);
		if (!copy)
			return MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR;
		memcpy(copy, p->topic.ptr, p->topic.len);
		copy[p->topic.len] = '\0';
		free(in[a]);
		in[a] = copy;
		*topic = p->topic;
		return MQTT_RC_SUCCESS;
	}
	if (!in[a])
		return MQTT_RC_PROTOCOL_ERROR; /* an alias never set [MQTT-3.3.4-?] */
	*topic = mqtt_view_str(in[a]);
	return MQTT_RC_SUCCESS;
}

/* The journal cannot take what this PUBLISH needs kept (disk full, behind):
 * refused rather than acknowledged and lost; 3.1.1 has no code for it. */
static void refuse_unjournaled(struct worker *w, struct client *cl, const struct mqtt_publish *p,
                               struct mqtt_view topic, const char *what)
{
	w->st.journal_refused++;
	LOG_WARN_RL(1,
	            "refused a %sPUBLISH from client \"%s\" to \"%.*s\": the journal cannot write",
	            what, cl->sess->client_id, (int)topic.len, (const char *)topic.ptr);
	if (p->qos > 0 && cl->version == MQTT_V5)
		ack(w, cl, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
		    MQTT_RC_QUOTA_EXCEEDED);
	else if (p->qos > 0)
		client_close(w, cl, MQTT_RC_QUOTA_EXCEEDED, true);
}

void handle_publish(struct worker *w, struct client *cl, struct mqtt_publish *p)
{
	const struct config *cfg = w->cfg;
	struct session *s = cl->sess;
	struct mqtt_view topic = p->topic;
	enum mqtt_rc rc = MQTT_RC_SUCCESS;

	if (cl->version == MQTT_V5) {
		if (p->props.sub_id_count > 0)
			rc = MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.3.4-6] */
		else if (p->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))
			rc = resolve_alias(w, cl, p, &topic);
	}
	if (rc == MQTT_RC_SUCCESS && p->qos > cfg->max_qos)
		rc = MQTT_RC_QOS_NOT_SUPPORTED; /* [MQTT-3.2.2-11] */
	if (rc == MQTT_RC_SUCCESS && p->retain && !cfg->retain_available)
		rc = MQTT_RC_RETAIN_NOT_SUPPORTED; /* [MQTT-3.2.2-14] */
	if (rc != MQTT_RC_SUCCESS) {
		client_fail(w, cl, CE_PUBLISH_INVALID, rc, "%s", mqtt_rc_name(rc));
		return;
	}
	if (topic.len > cfg->topic_length_max || mqtt_topic_levels(topic) > cfg->topic_levels_max) {
		/* Over our limits, not the protocol's: refuse this message only. */
		if (p->qos > 0 && cl->version == MQTT_V5)
			ack(w, cl, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
			    MQTT_RC_TOPIC_NAME_INVALID);
		else if (p->qos > 0)
			client_close(w, cl, MQTT_RC_TOPIC_NAME_INVALID, true);
		return;
	}

	struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
	size_t ulen;
	const char *user = session_username(s, &ulen);
	static _Thread_local char local[CONFIG_BRIDGE_PREFIX_MAX + 65536];
	bool bridged = client_is_bridge(cl);
	if (bridged && !bridge_topic_in(w, cl, topic, local, sizeof(local), &topic)) {
		/* From the remote, on no in rule of ours (a subscription it kept
		 * from an older configuration): acknowledged, not routed. */
		w->st.drops_denied++;
		if (p->qos == 1)
			ack(w, cl, MQTT_PUBACK, p->packet_id, 0);
		else if (p->qos == 2 && session_rx_qos2_add(s, p->packet_id, cfg->receive_maximum))
			ack(w, cl, MQTT_PUBREC, p->packet_id, 0);
		return;
	}
	if (bridged)
		bridge_received(w, cl, p->payload.len);
	/* A bridge's rules are the operator's: the ACL is for clients. */
	if (!bridged && !auth_publish(w->mq.acl, user, ulen, cid, topic)) {
		/* Not allowed: 5.0 says so in the ack; QoS 0 and 3.1.1 drop it,
		 * so the log is where the operator (and the client's owner)
		 * learns of it. */
		w->st.drops_denied++;
		LOG_INFO_RL(LOG_CLIENT_RL,
		            "denied PUBLISH from %s (client \"%s\", %s%.*s%s) to \"%.*s\": not "
		            "authorized",
		            conn_peer(&cl->c), s->client_id, user ? "user \"" : "anonymous",
		            user ? (int)ulen : 0, user ? user : "", user ? "\"" : "",
		            (int)topic.len, (const char *)topic.ptr);
		if (p->qos > 0)
			ack(w, cl, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
			    MQTT_RC_NOT_AUTHORIZED);
		return;
	}

	if (p->retain && w->journal.on && !journal_accepting(&w->journal)) {
		refuse_unjournaled(w, cl, p, topic, "retained ");
		return;
	}

	if (p->qos == 2) {
		/* Exactly once [§4.3.3]: an id still awaiting PUBREL is a resend;
		 * acknowledge it again but do not deliver it twice. */
		if (session_rx_qos2_has(s, p->packet_id)) {
			ack(w, cl, MQTT_PUBREC, p->packet_id, 0);
			return;
		}
		if (!session_rx_qos2_add(s, p->packet_id, cfg->receive_maximum)) {
			client_fail(w, cl, CE_RECEIVE_MAXIMUM, 0, "%u", /* [MQTT-3.3.4-8] */
			            cfg->receive_maximum);
			return;
		}
	}

	struct msg *m = msg_new(p, cl->version, topic, s->id, w->now_ms);
	if (!m) {
		client_fail(w, cl, CE_NO_MEMORY, 0, NULL);
		return;
	}
	bool retain = p->retain;
	/* Exactly once across a crash: the id stays known (a resend is not
	 * routed again) until its PUBREL; the PUBREC waits for the record.
	 * When the message reaches persistent sessions, the id goes in its
	 * own record (REC_MSG_IN), so that no torn tail keeps one without the
	 * other: an id without its message would take the resend for a
	 * duplicate, acknowledged and lost. Else it goes alone, after: a tail
	 * cut before it lost nothing durable, and the resend is routed again. */
	struct route_inbound in = {s->client_id, s->client_id_len, p->packet_id, false};
	bool in_wanted = p->qos == 2 && session_journal_wanted(w, s);
	int n = route_publish_client(&w->route, m, in_wanted ? &in : NULL);
	if (n < 0) {
		/* It reached persistent sessions and the journal cannot keep it:
		 * delivered nowhere, so the publisher may send it again. */
		if (p->qos == 2)
			session_rx_qos2_remove(s, p->packet_id);
		refuse_unjournaled(w, cl, p, topic, "");
		return;
	}
	if (in_wanted && !in.journaled)
		persist_packet_id(&w->journal, &w->b->sess_stamp, REC_IN_QOS2, 0, p->packet_id,
		                  s->client_id, s->client_id_len);
	if (n == 0 && !retain)
		w->st.drops_no_subscribers++; /* a retained one is kept, not dropped */
	if (p->qos == 1)
		ack(w, cl, MQTT_PUBACK, p->packet_id, 0);
	else if (p->qos == 2)
		ack(w, cl, MQTT_PUBREC, p->packet_id, 0);
}
