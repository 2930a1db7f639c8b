/*
 * input.c — what a client sends, as packets: framing, decoding, and one
 * handler per packet type. Only the owning worker's thread calls this.
 *
 * Packets are decoded straight out of the bytes the transport hands up (a
 * provided receive buffer, or TLS's or WebSocket's plaintext); only the
 * tail of a packet that is not complete yet is copied, into rx. rx holds at
 * most one packet (max_packet_size, checked from the fixed header before
 * the body is buffered) plus what one receive brings after it; its memory
 * counts against the node's partial_packets_bytes_max, and an idle client
 * keeps none.
 *
 * Input is parsed only from the transport's completion or the loop's resume
 * step, never from inside a handler: a handler that lets a waiting client go
 * on (a password verdict, a session that arrived from a takeover) names it
 * with client_want_resume, and the resume step parses its buffered input. A
 * same-worker takeover finishes inside the parse of the new connection's
 * own CONNECT, which then goes on with the packets behind it; parsing rx
 * from the handler as well would read that CONNECT twice. process() checks
 * it is never nested.
 */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"

enum stash_result {
	STASH_OK,
	STASH_TOO_MUCH,  /* more than one packet's worth for this connection */
	STASH_NO_BUDGET, /* the node's partial_packets_bytes_max is taken */
	STASH_NO_MEMORY,
};

/* rx's capacity is counted node-wide (b->rx_bytes) for the budget of
 * partially received packets: a hostile client holding 95% of a large
 * packet for ever pins memory that no per-connection bound limits. */
void client_rx_release(struct worker *w, struct client *cl)
{
	if (cl->rx_cap)
		atomic_fetch_sub_explicit(&w->b->rx_bytes, cl->rx_cap, memory_order_relaxed);
	free(cl->rx);
	cl->rx = NULL;
	cl->rx_len = cl->rx_cap = 0;
}

static enum stash_result stash(struct worker *w, struct client *cl, const uint8_t *data,
                               uint32_t len)
{
	uint64_t need = (uint64_t)cl->rx_len + len;
	/* One packet plus what a receive can bring after it; more while
	 * waiting for a takeover means the client is flooding. */
	uint64_t limit = (uint64_t)w->cfg->max_packet_size + 2u * 65536u;
	if (need > limit)
		return STASH_TOO_MUCH;
	if (cl->rx_len == 0)
		cl->rx_since_ms = (uint32_t)w->now_ms; /* a packet begins */
	if (need > cl->rx_cap) {
		uint32_t cap = cl->rx_cap ? cl->rx_cap : 256;
		while (cap < need)
			cap *= 2;
		uint64_t more = cap - cl->rx_cap;
		uint64_t budget = w->cfg->partial_packets_bytes_max;
		uint64_t held =
		    atomic_fetch_add_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
		if (budget && held + more > budget) {
			atomic_fetch_sub_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
			return STASH_NO_BUDGET;
		}
		uint8_t *n = realloc(cl->rx, cap);
		if (!n) {
			atomic_fetch_sub_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
			return STASH_NO_MEMORY;
		}
		cl->rx = n;
		cl->rx_cap = cap;
	}
	memcpy(cl->rx + cl->rx_len, data, len);
	cl->rx_len += len;
	return STASH_OK;
}

/* A stash failed: close with the reason that fits. */
static void stash_refused(struct worker *w, struct client *cl, enum stash_result r)
{
	if (r == STASH_NO_BUDGET) {
		w->st.partial_over_budget++;
		client_fail(w, cl, CE_INPUT_BUDGET, 0, "%llu",
		            (unsigned long long)w->cfg->partial_packets_bytes_max);
	} else if (r == STASH_NO_MEMORY) {
		client_fail(w, cl, CE_INPUT_NO_MEMORY, 0, NULL);
	} else {
		client_fail(w, cl, CE_INPUT_TOO_MUCH, 0, NULL);
	}
}

static void pingreq(struct worker *w, struct client *cl)
{
	struct mqtt_packet r = {.type = MQTT_PINGRESP};
	client_send(w, cl, &r);
}

/* One decoded packet of an active client to its handler. */
static void dispatch(struct worker *w, struct client *cl, struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_PUBLISH:
		handle_publish(w, cl, &p->publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		handle_puback(w, cl, p->type, &p->ack);
		break;
	case MQTT_PUBREL:
		handle_pubrel(w, cl, &p->ack);
		break;
	case MQTT_SUBSCRIBE:
		handle_subscribe(w, cl, &p->subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		handle_unsubscribe(w, cl, &p->unsubscribe);
		break;
	case MQTT_PINGREQ:
		pingreq(w, cl);
		break;
	case MQTT_DISCONNECT:
		if (client_is_bridge(cl))
			bridge_server_packet(w, cl, p);
		else
			handle_disconnect(w, cl, &p->reason);
		break;
	case MQTT_CONNECT:
		client_fail(w, cl, CE_SECOND_CONNECT, 0, NULL);
		break;
	case MQTT_SUBACK:
	case MQTT_UNSUBACK:
	case MQTT_PINGRESP:
		if (client_is_bridge(cl)) { /* a remote broker's answers */
			bridge_server_packet(w, cl, p);
			break;
		}
		client_fail(w, cl, CE_UNEXPECTED, 0, "%s", mqtt_type_name(p->type));
		break;
	case MQTT_AUTH: /* no enhanced authentication method was agreed */
	default:        /* server-to-client packets from a client */
		client_fail(w, cl, CE_UNEXPECTED, 0, "%s", mqtt_type_name(p->type));
		break;
	}
}

/* Handle the whole packets at the front of buf; returns bytes consumed. */
static uint32_t parse(struct worker *w, struct client *cl, const uint8_t *buf, uint32_t len)
{
	uint32_t off = 0;
	while (off < len && !client_closing(cl) &&
	       (cl->state == CLIENT_NEW || cl->state == CLIENT_ACTIVE)) {
		struct mqtt_frame f;
		enum mqtt_frame_status st =
		    mqtt_frame_peek(buf + off, len - off, cl->version, w->cfg->max_packet_size, &f);
		if (st == MQTT_FRAME_NEED_MORE)
			break;
		if (st == MQTT_FRAME_INVALID) {
			client_fail(w, cl, CE_MALFORMED, f.rc, "%s", mqtt_rc_name(f.rc));
			return len;
		}
		struct mqtt_packet p;
		enum mqtt_rc rc = mqtt_decode(&f, buf + off + f.header_len, cl->version, &p);
		off += (uint32_t)mqtt_frame_size(&f);
		if (f.type == MQTT_PUBLISH && rc == MQTT_RC_SUCCESS)
			w->st.msgs_in[p.publish.qos]++;

		if (cl->state == CLIENT_NEW && client_is_bridge(cl)) {
			bridge_connack(w, cl, &p, rc); /* the remote's answer to our CONNECT */
			continue;
		}
		if (cl->state == CLIENT_NEW) {
			if (f.type != MQTT_CONNECT) {
				/* [MQTT-3.1.0-1]: close, no answer. */
				client_fail(w, cl, CE_FIRST_NOT_CONNECT, 0, "%s",
				            mqtt_type_name(f.type));
				return len;
			}
			handle_connect(w, cl, &p, rc);
			if (cl->state == CLIENT_WAIT_AUTH) {
				/* Keep the CONNECT: it is read again when the
				 * password check's verdict arrives. */
				off -= (uint32_t)mqtt_frame_size(&f);
				break;
			}
			continue;
		}
		if (rc != MQTT_RC_SUCCESS) {
			client_fail(w, cl, CE_BAD_PACKET, rc, "%s in %s", mqtt_rc_name(rc),
			            mqtt_type_name(f.type));
			return len;
		}
		if (cl->keepalive_s)
			cl->deadline_ms = w->now_ms + (uint64_t)cl->keepalive_s * 1500;
		dispatch(w, cl, &p);
	}
	return off;
}

static uint32_t process(struct worker *w, struct client *cl, const uint8_t *buf, uint32_t len)
{
	CHECK(w->mq.in_process == NULL); /* never nested: see the top of this file */
	w->mq.in_process = cl;
	uint32_t used = parse(w, cl, buf, len);
	w->mq.in_process = NULL;
	return used;
}

/* Parse what cl has buffered in rx. */
static void resume(struct worker *w, struct client *cl)
{
	if (cl->rx_len == 0)
		return;
	uint32_t used = process(w, cl, cl->rx, cl->rx_len);
	if (client_closing(cl)) {
		cl->rx_len = 0;
	} else {
		CHECK(used <= cl->rx_len);
		memmove(cl->rx, cl->rx + used, cl->rx_len - used);
		cl->rx_len -= used;
		if (used > 0)
			cl->rx_since_ms = (uint32_t)w->now_ms; /* progress: the timer restarts */
	}
	if (cl->rx_len == 0)
		client_rx_release(w, cl); /* an idle connection keeps no receive memory */
}

void client_input(struct worker *w, struct client *cl, const uint8_t *data, uint32_t len)
{
	enum stash_result r;
	if (cl->rx_len == 0) {
		uint32_t used = process(w, cl, data, len);
		if (used < len && !client_closing(cl) &&
		    (r = stash(w, cl, data + used, len - used)) != STASH_OK)
			stash_refused(w, cl, r);
		return;
	}
	if ((r = stash(w, cl, data, len)) != STASH_OK) {
		stash_refused(w, cl, r);
		return;
	}
	resume(w, cl);
}

void client_want_resume(struct worker *w, struct client *cl)
{
	if (cl->on_resume_list || client_closing(cl))
		return;
	if (w->mq.resume_len == w->mq.resume_cap) {
		uint32_t cap = w->mq.resume_cap ? w->mq.resume_cap * 2 : 64;
		struct slot_ref *n = realloc(w->mq.resume, cap * sizeof(*n));
		if (!n) {
			client_fail(w, cl, CE_NO_MEMORY, 0, NULL);
			return;
		}
		w->mq.resume = n;
		w->mq.resume_cap = cap;
	}
	cl->on_resume_list = true;
	w->mq.resume[w->mq.resume_len++] = (struct slot_ref){cl->c.slot, cl->c.gen};
}

void mqtt_resume_all(struct worker *w)
{
	/* Parsing may name more clients (a CONNECT that takes over a session
	 * on this worker names itself again): go on until none is left. Each
	 * pass parses input that was already here, so it ends. */
	while (w->mq.resume_len > 0) {
		struct slot_ref r = w->mq.resume[--w->mq.resume_len];
		struct conn *c = conn_get(&w->tp, r.slot, r.gen);
		CHECK(c && client_of(c)->on_resume_list); /* reaped only after this step */
		struct client *cl = client_of(c);
		cl->on_resume_list = false;
		if (!client_closing(cl))
			resume(w, cl);
	}
}
