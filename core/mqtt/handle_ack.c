/*
 * handle_ack.c — PUBACK, PUBREC, PUBCOMP for messages we sent (§4.3.2,
 * §4.3.3) and PUBREL for messages we received at QoS 2. Each freed window
 * slot lets the next queued message go.
 *
 * An acknowledgement of the wrong kind for a message in flight (PUBREC or
 * PUBCOMP answering QoS 1, PUBACK answering QoS 2, PUBCOMP before PUBREC)
 * is a protocol violation: 3.1.1 closes the network connection
 * [MQTT-4.8.0-1], 5.0 says why first (DISCONNECT 0x82, §4.13). One for a
 * packet identifier not in flight is tolerated (core/README.md, "Acks
 * for unknown packet identifiers"): it is what a resend after a reconnect
 * looks like when the first copy's acknowledgement already arrived.
 */
#include "base/log.h"
#include "loop/worker.h"
#include "persist/msg_journal.h"
#include "persist/record.h"
#include "session/session.h"

static void reply(struct worker *w, struct client *cl, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct mqtt_packet a = {.type = type};
	a.ack.packet_id = pid;
	a.ack.rc = cl->version == MQTT_V5 ? rc : 0;
	client_send(w, cl, &a);
}

/* Does an acknowledgement of this type answer f where it stands? A second
 * PUBREC for a message already released counts: the PUBREL is sent again. */
static bool fits(const struct inflight *f, uint8_t type)
{
	if (f->qos == 1)
		return type == MQTT_PUBACK;
	if (f->state == INFL_WAIT_ACK)
		return type == MQTT_PUBREC;
	return type == MQTT_PUBCOMP || type == MQTT_PUBREC;
}

/* A journaled delivery's acknowledgement into the journal (persist/
 * msg_journal.h): PUBACK ends it; PUBREC ends the message and owes PUBREL
 * (a refusing one ends it all); PUBCOMP ends the PUBREL. */
static void journal_ack(struct worker *w, struct session *s, struct inflight *f, uint8_t type,
                        uint8_t rc)
{
	if (type == MQTT_PUBACK || (type == MQTT_PUBREC && rc >= 0x80)) {
		persist_message_done(&w->journal, f->m->jstamp, s->client_id, s->client_id_len);
		f->journaled = false;
	} else {
		persist_packet_id(&w->journal, &w->b->sess_stamp,
		                  type == MQTT_PUBREC ? REC_MSG_REL : REC_MSG_COMP,
		                  type == MQTT_PUBREC ? f->m->jstamp : 0, f->pid, s->client_id,
		                  s->client_id_len);
	}
}

void handle_puback(struct worker *w, struct client *cl, uint8_t type, struct mqtt_ack *a)
{
	struct session *s = cl->sess;
	if (client_is_bridge(cl))
		bridge_acked(w, cl, type, a->packet_id);
	struct inflight *f = session_infl_find(s, a->packet_id);
	if (!f) {
		/* Unknown id: a PUBREC still needs its PUBREL so the client's
		 * flow ends (5.0 says why: 0x92); stray PUBACK/PUBCOMP are
		 * ignored. */
		if (type == MQTT_PUBREC)
			reply(w, cl, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	if (!fits(f, type)) {
		client_fail(w, cl, CE_WRONG_ACK, 0, "%s for packet id %u sent at QoS %u",
		            mqtt_type_name(type), a->packet_id, f->qos);
		return;
	}
	if (type == MQTT_PUBREC && f->state == INFL_WAIT_COMP) {
		reply(w, cl, MQTT_PUBREL, a->packet_id, 0); /* our PUBREL was lost? again */
		return;
	}
	if (f->journaled)
		journal_ack(w, s, f, type, a->rc);
	session_infl_ack(s, type, a->packet_id);
	if (type == MQTT_PUBREC) {
		if (a->rc >= 0x80)
			session_infl_ack(s, MQTT_PUBCOMP, a->packet_id); /* refused: flow ends */
		else
			reply(w, cl, MQTT_PUBREL, a->packet_id, 0);
	}
	if (!client_closing(cl)) /* a reply can close it (output.c): s may be gone */
		session_pump(w, s);
}

void handle_pubrel(struct worker *w, struct client *cl, struct mqtt_ack *a)
{
	/* Unknown id: PUBCOMP all the same, so the client's flow ends; 5.0
	 * says 0x92 (§3.7.2.1). It is what a PUBREL resent after
	 * a reconnect looks like when the PUBCOMP was lost. */
	struct session *s = cl->sess;
	bool known = session_rx_qos2_remove(s, a->packet_id);
	if (known && session_journal_wanted(w, s)) /* before the PUBCOMP (the gate) */
		persist_packet_id(&w->journal, &w->b->sess_stamp, REC_IN_REL, 0, a->packet_id,
		                  s->client_id, s->client_id_len);
	reply(w, cl, MQTT_PUBCOMP, a->packet_id, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}
