/*
 * client.c — the MQTT side of a simulated client: CONNECT, SUBSCRIBE,
 * PUBLISH with QoS 0/1/2 flows in both directions, keep alive, and the
 * subscriber's accounting of what arrived (latency, duplicates, order).
 *
 * Owner: the single thread of one worker process. Every packet is built and
 * parsed with core/codec; bytes go out through io_out_reserve/commit.
 * Packet identifiers of a publisher are 1..inflight, one per in-flight slot,
 * so the slot of an acknowledgement is its packet id - 1.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "payload.h"
#include "worker.h"

static bool send_packet(struct worker *w, struct client *c, const struct mqtt_packet *pkt)
{
	size_t need = mqtt_encode_len(pkt, (uint8_t)w->sc->mqtt);
	uint8_t *dst = io_out_reserve(w, c, (uint32_t)need);
	if (!dst) {
		io_close(w, c, FAIL_OTHER, true);
		return false;
	}
	size_t n = mqtt_encode(pkt, (uint8_t)w->sc->mqtt, dst, need);
	assert(n == need);
	io_out_commit(w, c, (uint32_t)n);
	return c->state < CS_CLOSING;
}

static void send_ack(struct worker *w, struct client *c, uint8_t type, uint16_t packet_id)
{
	struct mqtt_packet pkt;
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = type;
	pkt.ack.packet_id = packet_id;
	send_packet(w, c, &pkt);
}

void client_on_connected(struct worker *w, struct client *c)
{
	const struct scenario *sc = w->sc;
	char client_id[96];
	snprintf(client_id, sizeof(client_id), "%s-%u", sc->id_prefix, c->id);
	struct mqtt_packet pkt;
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = MQTT_CONNECT;
	struct mqtt_connect *cn = &pkt.connect;
	cn->version = (uint8_t)sc->mqtt;
	cn->clean_start = !sc->persistent;
	cn->keepalive_s = (uint16_t)sc->keepalive_s;
	cn->client_id = mqtt_view_str(client_id);
	if (sc->username[0]) {
		cn->has_username = true;
		cn->username = mqtt_view_str(sc->username);
	}
	if (sc->password[0]) {
		cn->has_password = true;
		cn->password = mqtt_view_str(sc->password);
	}
	if (sc->mqtt == MQTT_V5 && sc->persistent) {
		cn->props.has |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		cn->props.session_expiry_s = sc->session_expiry_s;
	}
	c->state = CS_CONNACK;
	send_packet(w, c, &pkt);
}

static void on_connack(struct worker *w, struct client *c, const struct mqtt_connack *ack)
{
	if (c->state != CS_CONNACK) {
		io_close(w, c, FAIL_PROTOCOL, true);
		return;
	}
	if (ack->rc != 0) {
		io_close(w, c, FAIL_CONNACK, true);
		return;
	}
	struct stats *st = w->st;
	st->conn_ok++;
	st->conn_up++;
	c->flags |= CF_UP;
	hist_record(&st->connect_ns, w->now_ns - c->t0_ns);
	if (c->pub != NO_PUB) {
		struct pubstate *p = &w->pubs[c->pub];
		p->inflight_max = w->sc->inflight;
		if ((ack->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) &&
		    ack->props.receive_max < p->inflight_max)
			p->inflight_max = ack->props.receive_max; /* [MQTT-3.3.4-7] */
	}
	if (c->role == ROLE_SUB) {
		char filter[160];
		plan_sub_filter(w->sc, plan_rank(&w->plan, c->id), filter, sizeof(filter));
		struct mqtt_sub_entry entry;
		memset(&entry, 0, sizeof(entry));
		entry.filter = mqtt_view_str(filter);
		entry.qos = (uint8_t)w->sc->qos;
		struct mqtt_packet pkt;
		memset(&pkt, 0, sizeof(pkt));
		pkt.type = MQTT_SUBSCRIBE;
		pkt.subscribe.packet_id = 1;
		pkt.subscribe.count = 1;
		pkt.subscribe.entries = &entry;
		c->state = CS_SUBACK;
		send_packet(w, c, &pkt);
		return;
	}
	c->state = CS_READY;
	w->connecting--;
	if (c->pub != NO_PUB && w->go_ns)
		worker_ready_push(w, c->pub);
}

static void on_suback(struct worker *w, struct client *c, const struct mqtt_suback *ack)
{
	if (c->state != CS_SUBACK || ack->packet_id != 1 || ack->rcs.len != 1) {
		io_close(w, c, FAIL_PROTOCOL, true);
		return;
	}
	if (ack->rcs.ptr[0] >= 0x80) {
		io_close(w, c, FAIL_SUBACK, true);
		return;
	}
	c->state = CS_READY;
	w->connecting--;
	w->st->subs_ok++;
}

static void deliver(struct worker *w, struct client *c, const struct mqtt_publish *pub)
{
	struct stats *st = w->st;
	struct payload_header h;
	if (!payload_decode_header(pub->payload.ptr, pub->payload.len, &h) ||
	    h.run_id != w->sh->run_id || h.pub_id < w->plan.subs_total ||
	    h.pub_id >= w->plan.clients_total) {
		st->foreign++;
		return;
	}
	uint32_t pub_rank = h.pub_id - w->plan.subs_total;
	uint32_t sink = plan_sub_sink(w->sc, &w->plan, plan_rank(&w->plan, c->id));
	enum track_result r = track_see(&w->track, sink, h.pub_id, h.seq);
	if (r == TRACK_DUP) {
		st->duplicates++;
		return;
	}
	if (r == TRACK_NOROOM)
		st->untracked++;
	/* a $share group's members are separate connections: the order across
	 * them is not the broker's to keep, so only a subscriber counts it */
	if (r == TRACK_LATE && sink < w->plan.clients_total)
		st->out_of_order++;
	st->delivered++;
	uint64_t now = worker_wall_ns();
	if (now >= h.sent_ns) {
		hist_record(&st->latency_ns, now - h.sent_ns);
	} else {
		st->clock_skew++;
		hist_record(&st->latency_ns, 0);
	}
	e2e_delivered(&w->e2e, pub_rank, h.seq);
}

static void on_publish(struct worker *w, struct client *c, const struct mqtt_publish *pub)
{
	deliver(w, c, pub);
	if (pub->qos == 1)
		send_ack(w, c, MQTT_PUBACK, pub->packet_id);
	else if (pub->qos == 2)
		send_ack(w, c, MQTT_PUBREC, pub->packet_id);
}

/* The publisher's slot for an acknowledged packet id, or NULL. */
static uint8_t *ack_slot(struct worker *w, struct client *c, uint16_t packet_id)
{
	if (c->pub == NO_PUB || packet_id == 0 || packet_id > w->sc->inflight)
		return NULL;
	return &w->pubs[c->pub].slots[packet_id - 1];
}

static void slot_free(struct worker *w, struct client *c, uint8_t *slot)
{
	struct pubstate *p = &w->pubs[c->pub];
	*slot = 0;
	assert(p->inflight > 0);
	p->inflight--;
	worker_ready_push(w, c->pub);
}

static void on_ack(struct worker *w, struct client *c, uint8_t type, const struct mqtt_ack *ack)
{
	struct stats *st = w->st;
	if (type == MQTT_PUBREL) {
		send_ack(w, c, MQTT_PUBCOMP, ack->packet_id);
		return;
	}
	uint8_t *slot = ack_slot(w, c, ack->packet_id);
	uint8_t want = type == MQTT_PUBCOMP ? 2 : 1;
	if (!slot || *slot != want || (type == MQTT_PUBACK) != (w->sc->qos == 1)) {
		io_close(w, c, FAIL_PROTOCOL, true);
		return;
	}
	if (ack->rc >= 0x80) {
		/* v5: the broker refused the message; its flow ends here */
		st->pub_refused++;
		slot_free(w, c, slot);
		return;
	}
	if (type == MQTT_PUBREC) {
		*slot = 2;
		send_ack(w, c, MQTT_PUBREL, ack->packet_id);
		return;
	}
	st->acked++;
	slot_free(w, c, slot);
}

static void on_packet(struct worker *w, struct client *c, const struct mqtt_packet *pkt)
{
	switch (pkt->type) {
	case MQTT_CONNACK:
		on_connack(w, c, &pkt->connack);
		break;
	case MQTT_SUBACK:
		on_suback(w, c, &pkt->suback);
		break;
	case MQTT_PUBLISH:
		on_publish(w, c, &pkt->publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBREL:
	case MQTT_PUBCOMP:
		on_ack(w, c, pkt->type, &pkt->ack);
		break;
	case MQTT_PINGRESP:
		break;
	case MQTT_DISCONNECT:
		io_close(w, c, FAIL_CLOSED, !(c->flags & CF_BYE));
		break;
	default:
		io_close(w, c, FAIL_PROTOCOL, true);
		break;
	}
}

/* Parse whole packets from buf; returns bytes consumed. */
static size_t parse(struct worker *w, struct client *c, const uint8_t *buf, size_t len)
{
	size_t off = 0;
	while (off < len && c->state < CS_CLOSING) {
		struct mqtt_frame f;
		enum mqtt_frame_status s =
		    mqtt_frame_peek(buf + off, len - off, (uint8_t)w->sc->mqtt, w->rx_max, &f);
		if (s == MQTT_FRAME_NEED_MORE)
			break;
		if (s != MQTT_FRAME_OK) {
			io_close(w, c, FAIL_PROTOCOL, true);
			break;
		}
		size_t size = mqtt_frame_size(&f);
		if (size > len - off)
			break;
		struct mqtt_packet pkt;
		if (mqtt_decode(&f, buf + off + f.header_len, (uint8_t)w->sc->mqtt, &pkt) !=
		    MQTT_RC_SUCCESS) {
			io_close(w, c, FAIL_PROTOCOL, true);
			break;
		}
		on_packet(w, c, &pkt);
		off += size;
	}
	return off;
}

static bool rx_keep(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	size_t have = c->rx ? c->rx->len : 0;
	size_t need = have + len;
	if (need > (size_t)w->rx_max + RECV_BUF_BYTES) {
		io_close(w, c, FAIL_PROTOCOL, true);
		return false;
	}
	if (!c->rx || c->rx->cap < need) {
		size_t cap = need < 256 ? 256 : need * 2;
		struct rxbuf *r = realloc(c->rx, sizeof(*r) + cap);
		if (!r) {
			io_close(w, c, FAIL_OTHER, true);
			return false;
		}
		if (!c->rx)
			r->len = 0;
		r->cap = (uint32_t)cap;
		c->rx = r;
	}
	memcpy(c->rx->data + c->rx->len, data, len);
	c->rx->len += (uint32_t)len;
	return true;
}

void client_on_bytes(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	if (c->rx) {
		/* a packet is split across reads: join it in the client's buffer */
		if (!rx_keep(w, c, data, len))
			return;
		size_t used = parse(w, c, c->rx->data, c->rx->len);
		if (!c->rx)
			return; /* can't happen while not reaped, but be safe */
		size_t left = c->rx->len - used;
		if (left == 0) {
			free(c->rx);
			c->rx = NULL;
		} else if (used) {
			memmove(c->rx->data, c->rx->data + used, left);
			c->rx->len = (uint32_t)left;
		}
		return;
	}
	size_t used = parse(w, c, data, len);
	if (used < len && c->state < CS_CLOSING)
		rx_keep(w, c, data + used, len - used);
}

void client_send_ping(struct worker *w, struct client *c)
{
	struct mqtt_packet pkt;
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = MQTT_PINGREQ;
	send_packet(w, c, &pkt);
}

void client_send_disconnect(struct worker *w, struct client *c)
{
	struct mqtt_packet pkt;
	memset(&pkt, 0, sizeof(pkt));
	pkt.type = MQTT_DISCONNECT;
	pkt.reason.rc = MQTT_RC_SUCCESS;
	if (send_packet(w, c, &pkt)) {
		io_out_end(w, c);
		c->flags |= CF_BYE;
	}
}

bool client_pub_blocked(struct worker *w, struct pubstate *p)
{
	struct client *c = &w->clients[p->client];
	if (c->state != CS_READY || (c->flags & CF_BYE))
		return true;
	if (w->sc->qos && p->inflight >= p->inflight_max)
		return true;
	if (io_out_queued(c) >= TX_HIGH_BYTES)
		return true;
	return !e2e_may_publish(&w->e2e, p->rank, p->seq, p->e2e_target, w->now_ns, E2E_STALL_NS,
	                        &p->progress_ns, &w->st->e2e_stalls);
}

static uint16_t slot_take(struct worker *w, struct pubstate *p)
{
	uint32_t n = w->sc->inflight;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t s = (p->slot_next + i) % n;
		if (!p->slots[s]) {
			p->slots[s] = 1;
			p->slot_next = (s + 1) % n;
			p->inflight++;
			return (uint16_t)(s + 1);
		}
	}
	assert(!"no free slot below inflight_max");
	return 0;
}

uint32_t client_publish(struct worker *w, struct pubstate *p, uint32_t max)
{
	const struct scenario *sc = w->sc;
	struct client *c = &w->clients[p->client];
	uint32_t sent = 0;
	while (sent < max && !(sc->count && p->seq >= sc->count) && !client_pub_blocked(w, p)) {
		struct payload_header h = {
		    .run_id = w->sh->run_id,
		    .pub_id = c->id,
		    .seq = p->seq,
		    .sent_ns = worker_wall_ns(),
		};
		payload_encode_header(w->payload, &h);
		struct mqtt_packet pkt;
		memset(&pkt, 0, sizeof(pkt));
		pkt.type = MQTT_PUBLISH;
		pkt.publish.qos = (uint8_t)sc->qos;
		pkt.publish.retain = sc->retain;
		pkt.publish.topic.ptr = (const uint8_t *)p->topic;
		pkt.publish.topic.len = p->topic_len;
		pkt.publish.payload.ptr = w->payload;
		pkt.publish.payload.len = sc->size_bytes;
		if (sc->qos)
			pkt.publish.packet_id = slot_take(w, p);
		if (!send_packet(w, c, &pkt))
			break;
		p->seq++;
		w->st->published++;
		w->st->expected += w->plan.per_msg;
		sent++;
	}
	return sent;
}
