/*
 * handle_ack.c — PUBACK, PUBREC, PUBCOMP for messages we sent (§4.3.2,
 * §4.3.3) and PUBREL for messages we received at QoS 2. Each freed window
 * slot lets the next queued message go.
 */
#include "log.h"
#include "worker.h"

static void reply(struct worker *w, struct conn *c, uint8_t type, uint16_t pid, uint8_t rc)
{
	struct mqtt_packet a = {.type = type};
	a.ack.packet_id = pid;
	a.ack.rc = c->version == MQTT_V5 ? rc : 0;
	conn_send_packet(w, c, &a);
}

void handle_puback(struct worker *w, struct conn *c, uint8_t type, struct mqtt_ack *a)
{
	struct session *s = c->sess;
	if (!session_infl_ack(s, type, a->packet_id)) {
		/* Unknown id: a PUBREC still needs its PUBREL so the client's
		 * flow ends (5.0 says why: 0x92); stray PUBACK/PUBCOMP are
		 * ignored. */
		if (type == MQTT_PUBREC)
			reply(w, c, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_ID_NOT_FOUND);
		return;
	}
	if (type == MQTT_PUBREC) {
		if (a->rc >= 0x80)
			session_infl_ack(s, MQTT_PUBCOMP, a->packet_id); /* refused: flow ends */
		else
			reply(w, c, MQTT_PUBREL, a->packet_id, 0);
	}
	session_pump(w, s);
}

void handle_pubrel(struct worker *w, struct conn *c, struct mqtt_ack *a)
{
	bool known = session_rx_qos2_remove(c->sess, a->packet_id);
	reply(w, c, MQTT_PUBCOMP, a->packet_id, known ? 0 : MQTT_RC_PACKET_ID_NOT_FOUND);
}
