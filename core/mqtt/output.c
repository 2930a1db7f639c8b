/*
 * output.c — packets out and connections closed: encoding into the
 * transport's outbox within the bounds of each kind of output, the close
 * with its reason code, and the one map from internal error to reason code,
 * close reason and log line. Only the owning worker's thread calls this.
 *
 * Three kinds of output, three bounds. A QoS 0 PUBLISH may be dropped at
 * outbox_bytes_max (the caller counts it). A QoS 1/2 PUBLISH is already
 * bounded by the in-flight window (inflight_max and the client's Receive
 * Maximum, times the packet size), so it always goes. Anything else answers
 * the client's own packets: reaching twice the outbox limit means it keeps
 * sending without reading, and it is disconnected.
 */
#include <stdarg.h>
#include <stdio.h>

#include "base/check.h"
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"

const char *client_name(const struct client *cl)
{
	return cl->sess ? cl->sess->client_id : "-";
}

enum out_result {
	OUT_OK,      /* appended */
	OUT_FULL,    /* past the outbox limit (or closing, or no memory) */
	OUT_TOO_BIG, /* larger than the client's Maximum Packet Size */
};

/* Append p to the outbox within limit. */
static enum out_result out_append(struct worker *w, struct client *cl, const struct mqtt_packet *p,
                                  uint64_t limit)
{
	struct conn *c = &cl->c;
	if (c->closing)
		return OUT_FULL;
	/* Usually it fits in what is left: encode once. */
	size_t room, n = 0;
	uint8_t *at = conn_out_spare(c, &room);
	if (at)
		n = mqtt_encode(p, cl->version, at, room);
	if (n == 0) {
		size_t need = mqtt_encode_len(p, cl->version);
		if (need > 0 && cl->client_max_packet && need > cl->client_max_packet)
			return OUT_TOO_BIG;
		if (need == 0 || !(at = conn_out_reserve(c, need, limit)))
			return OUT_FULL;
		n = mqtt_encode(p, cl->version, at, need);
	}
	/* [MQTT-3.1.2-24]: the size is known once encoded, so the check costs
	 * nothing; bytes encoded into spare room are simply not counted. */
	if (cl->client_max_packet && n > cl->client_max_packet)
		return OUT_TOO_BIG;
	if ((uint64_t)c->out_len + n > limit)
		return OUT_FULL; /* encoded past the limit into spare room: forget it */
	conn_out_commit(&w->tp, c, n);
	if (p->type == MQTT_PUBLISH)
		w->st.msgs_out[p->publish.qos]++; /* 0..2: we chose it */
	return OUT_OK;
}

bool client_send(struct worker *w, struct client *cl, const struct mqtt_packet *p)
{
	bool is_publish = p->type == MQTT_PUBLISH;
	uint64_t soft = w->cfg->outbox_bytes_max;
	uint64_t limit = !is_publish ? soft * 2 + 65536 : p->publish.qos == 0 ? soft : UINT64_MAX;
	enum out_result r = out_append(w, cl, p, limit);
	if (r == OUT_OK) {
		if (is_publish && client_is_bridge(cl))
			bridge_sent(w, cl, &p->publish); /* counted once it is really sent */
		return true;
	}
	if (r == OUT_TOO_BIG) {
		/* A PUBLISH is the caller's to drop (deliver.c checks first and
		 * counts it). Our answers carry no Reason String or User
		 * Property, the properties [MQTT-3.1.2-25] would have us leave
		 * out first (the CONNACK sheds its optional ones in
		 * handle_connect.c); what is left is required, so a client that
		 * refuses its size cannot go on. */
		if (!is_publish && !client_closing(cl))
			client_fail(w, cl, CE_NO_ROOM, 0, "%s", mqtt_type_name(p->type));
		return false;
	}
	if (!(is_publish && p->publish.qos == 0) && !client_closing(cl))
		client_fail(w, cl, CE_NOT_READING, 0, "%u", cl->c.out_len);
	return false;
}

void client_close(struct worker *w, struct client *cl, enum mqtt_rc rc, bool will)
{
	struct conn *c = &cl->c;
	if (c->closing)
		return;
	if (c->close_reason == CLOSE_UNSET) /* callers set it where rc does not say */
		c->close_reason = (uint8_t)stats_close_reason_of(rc);
	/* The one line per connection's end: who, where, why. */
	if (rc != MQTT_RC_SUCCESS)
		LOG_INFO_RL(LOG_CLIENT_RL, "disconnected %s (%s) on %s: %s, reason code 0x%02X",
		            conn_peer(c), client_name(cl), conn_listener(&w->tp, c),
		            stats_close_reason_name((enum close_reason)c->close_reason), rc);
	else
		LOG_INFO_RL(LOG_CLIENT_RL, "disconnected %s (%s) on %s: %s", conn_peer(c),
		            client_name(cl), conn_listener(&w->tp, c),
		            stats_close_reason_name((enum close_reason)c->close_reason));
	/* 5.0 lets the server say why [MQTT-3.14.0-1]; only after CONNACK. */
	if (rc >= 0x80 && cl->version == MQTT_V5 && cl->state == CLIENT_ACTIVE) {
		struct mqtt_packet d = {.type = MQTT_DISCONNECT};
		d.reason.rc = rc;
		out_append(w, cl, &d, UINT64_MAX);
	}
	conn_close(&w->tp, c);
	if (cl->pending) {
		/* Died while its session was on the way: end the one we set up
		 * (the handover frees the old one when it arrives). */
		struct session *p = cl->pending;
		cl->pending = NULL;
		session_end(w, p);
	}
	if (cl->sess)
		client_detach(w, cl, will);
}

/* The transport lost the connection on its own (conn.h): as an end of
 * stream without DISCONNECT, the will goes out. */
void client_lost(void *ctx, struct conn *c)
{
	struct worker *w = ctx;
	client_close(w, client_of(c), MQTT_RC_SUCCESS, true);
}

/*
 * The internal errors that end a connection, and how each ends it: the
 * reason code (0: the caller's rc, or none), the close reason for the
 * metrics when the reason code does not say it, whether the will goes out
 * (a client that failed the protocol after CONNECT gets its will, one that
 * never finished connecting has none), and the log line: "closing PEER
 * (CLIENT): TEXT" with the detail formatted into TEXT. One rate limiter per
 * error kind and worker, so a flood of one kind of bad client costs a few
 * lines a second and a summary, and does not hide the other kinds.
 */
static const struct {
	enum mqtt_rc rc;
	uint8_t close_reason;
	bool will;
	bool client; /* the line names the client id */
	uint8_t level;
	const char *text; /* with one %s for the detail, or none */
} errors[CE_COUNT] = {
    [CE_FIRST_NOT_CONNECT] = {0, CLOSE_PROTOCOL_ERROR, false, false, LOG_INFO,
                              "first packet is %s, not CONNECT"},
    [CE_MALFORMED] = {0, CLOSE_UNSET, true, true, LOG_INFO, "%s"},
    [CE_BAD_PACKET] = {0, CLOSE_UNSET, true, true, LOG_INFO, "%s"},
    [CE_SECOND_CONNECT] = {MQTT_RC_PROTOCOL_ERROR, CLOSE_UNSET, true, true, LOG_INFO,
                           "second CONNECT"},
    [CE_UNEXPECTED] = {MQTT_RC_PROTOCOL_ERROR, CLOSE_UNSET, true, true, LOG_INFO, "unexpected %s"},
    [CE_INPUT_TOO_MUCH] = {MQTT_RC_PACKET_TOO_LARGE, CLOSE_UNSET, true, true, LOG_INFO,
                           "too much unparsed input"},
    [CE_INPUT_BUDGET] = {MQTT_RC_QUOTA_EXCEEDED, CLOSE_UNSET, true, true, LOG_WARN,
                         "partially received packets hold the node's "
                         "partial_packets_bytes_max of %s bytes"},
    [CE_INPUT_NO_MEMORY] = {MQTT_RC_SERVER_BUSY, CLOSE_UNSET, true, true, LOG_WARN,
                            "out of memory for its input"},
    [CE_PUBLISH_INVALID] = {0, CLOSE_UNSET, true, true, LOG_INFO, "PUBLISH: %s"},
    [CE_RECEIVE_MAXIMUM] = {MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, CLOSE_UNSET, true, true, LOG_INFO,
                            "over its receive maximum %s"},
    [CE_NOT_READING] = {MQTT_RC_QUOTA_EXCEEDED, CLOSE_UNSET, true, true, LOG_WARN,
                        "not reading its output (%s bytes waiting)"},
    [CE_NO_ROOM] = {MQTT_RC_PACKET_TOO_LARGE, CLOSE_UNSET, true, true, LOG_INFO,
                    "its Maximum Packet Size leaves no room for a %s"},
    [CE_KEEP_ALIVE] = {MQTT_RC_KEEP_ALIVE_TIMEOUT, CLOSE_UNSET, true, true, LOG_INFO,
                       "keep alive timeout"},
    [CE_NO_CONNECT] = {0, CLOSE_CONNECT_TIMEOUT, false, false, LOG_INFO, "no CONNECT within %s ms"},
    [CE_HANDSHAKE_TIMEOUT] = {0, CLOSE_CONNECT_TIMEOUT, false, false, LOG_INFO,
                              "TLS handshake not finished within %s ms"},
    [CE_PARTIAL_TIMEOUT] = {MQTT_RC_KEEP_ALIVE_TIMEOUT, CLOSE_UNSET, true, true, LOG_INFO,
                            "a packet not finished within packet_receive_timeout_ms %s"},
    [CE_WRONG_ACK] = {MQTT_RC_PROTOCOL_ERROR, CLOSE_UNSET, true, true, LOG_INFO, "%s"},
    [CE_NO_MEMORY] = {MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR, CLOSE_UNSET, true, true, LOG_WARN,
                      "out of memory"},
};

void client_fail(struct worker *w, struct client *cl, enum client_error e, enum mqtt_rc rc,
                 const char *detail_fmt, ...)
{
	static _Thread_local struct log_ratelimit rl[CE_COUNT];
	CHECK(e < CE_COUNT);
	if (client_closing(cl))
		return;
	enum mqtt_rc code = errors[e].rc ? errors[e].rc : rc;
	if (errors[e].close_reason != CLOSE_UNSET)
		cl->c.close_reason = errors[e].close_reason;
	enum log_level level = (enum log_level)errors[e].level;
	if (log_enabled(level) && log_ratelimit_ok(&rl[e], LOG_CLIENT_RL, errors[e].text)) {
		char detail[160] = "";
		if (detail_fmt) {
			va_list ap;
			va_start(ap, detail_fmt);
			vsnprintf(detail, sizeof(detail), detail_fmt, ap);
			va_end(ap);
		}
		char text[256];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
		snprintf(text, sizeof(text), errors[e].text, detail);
#pragma GCC diagnostic pop
		if (errors[e].client)
			log_msg(level, "closing %s (%s): %s", conn_peer(&cl->c), client_name(cl),
			        text);
		else if (e == CE_HANDSHAKE_TIMEOUT)
			log_msg(level, "closing %s on %s: %s", conn_peer(&cl->c),
			        conn_listener(&w->tp, &cl->c), text);
		else
			log_msg(level, "closing %s: %s", conn_peer(&cl->c), text);
	}
	client_close(w, cl, code, errors[e].will);
}
