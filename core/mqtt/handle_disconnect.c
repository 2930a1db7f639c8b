/*
 * handle_disconnect.c — a client's DISCONNECT (§3.14): a last change of
 * session expiry, and whether the will goes out.
 */
#include "base/log.h"
#include "loop/worker.h"

void handle_disconnect(struct worker *w, struct conn *c, struct mqtt_reason *r)
{
	struct session *s = c->sess;
	if (c->version == MQTT_V5 && (r->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
		uint32_t e = r->props.session_expiry_s;
		if (s->expiry_s == 0 && e != 0) {
			/* [MQTT-3.14.2-2]: 0 at CONNECT cannot become non-zero. */
			conn_close(w, c, MQTT_RC_PROTOCOL_ERROR, true);
			return;
		}
		s->expiry_s = e < w->cfg->session_expiry_max_s ? e : w->cfg->session_expiry_max_s;
	}
	/* 0x04 asks for the will; any other DISCONNECT deletes it. */
	bool will = c->version == MQTT_V5 && r->rc == MQTT_RC_DISCONNECT_WITH_WILL;
	LOG_DEBUG("disconnect from %s (%s)", conn_peer(c), s->client_id);
	conn_close(w, c, MQTT_RC_SUCCESS, will);
}
