/*
 * handle_disconnect.c — a client's DISCONNECT (§3.14): a last change of
 * session expiry, and whether the will goes out.
 */
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"

void handle_disconnect(struct worker *w, struct client *cl, struct mqtt_reason *r)
{
	struct session *s = cl->sess;
	if (cl->version == MQTT_V5 && (r->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY))) {
		uint32_t e = r->props.session_expiry_s;
		if (s->expiry_s == 0 && e != 0) {
			/* [MQTT-3.14.2-2]: 0 at CONNECT cannot become non-zero. */
			client_close(w, cl, MQTT_RC_PROTOCOL_ERROR, true);
			return;
		}
		session_set_expiry(s, e < w->cfg->session_expiry_max_s ? e
		                                                       : w->cfg->session_expiry_max_s);
	}
	/* 0x04 asks for the will; any other DISCONNECT deletes it. */
	bool will = cl->version == MQTT_V5 && r->rc == MQTT_RC_DISCONNECT_WITH_WILL;
	LOG_DEBUG("disconnect from %s (%s)", conn_peer(&cl->c), s->client_id);
	client_close(w, cl, MQTT_RC_SUCCESS, will);
}
