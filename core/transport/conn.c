/*
 * conn.c — one connection's bytes: parsing what arrives into packets for the
 * handlers, gathering what they answer into an outbox that the loop sends
 * once per turn, and closing. Only the owning worker's thread calls this.
 *
 * Receive: packets are decoded straight out of the kernel's provided buffer;
 * only the tail of a packet that is not complete yet is copied, into rx.
 * Send: handlers append encoded packets to out; conn_flush() hands out to
 * the kernel as tx (one send in flight at a time), and new output collects in
 * a fresh out meanwhile. Short sends continue from tx_off.
 *
 * Limits: rx holds at most one packet (max_packet_size, checked from the
 * fixed header before the body is buffered); out holds at most
 * outbox_bytes_max of droppable QoS 0 traffic and twice that in all, beyond
 * which the client is not reading and is disconnected.
 *
 * TLS (a connection from a tls_listen address, tls.h): what arrives is
 * ciphertext, fed to the connection's SSL and read back as plaintext for
 * the same parser; handlers still append plaintext packets to out, and
 * conn_flush encrypts out and sends the ciphertext as tx instead. The
 * handshake's own output is sent even when out is empty. Plaintext per
 * receive is bounded by the ciphertext fed (one receive buffer plus one
 * incomplete record, tls.c), read in TLS_READ_CHUNK pieces.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/op.h"
#include "transport/tls.h"
#include "loop/worker.h"
#include "transport/ws.h"

#define TLS_READ_CHUNK 16384 /* plaintext bytes per SSL_read: one TLS record */

static void mark_flush(struct worker *w, struct conn *c)
{
	if (!c->on_flush_list) {
		c->on_flush_list = true;
		c->next_flush = w->flush_list;
		w->flush_list = c;
	}
}

const char *conn_listener(const struct worker *w, const struct conn *c)
{
	return c->listener < w->b->listener_count ? w->b->listeners[c->listener].name : "?";
}

const char *conn_peer(const struct conn *c)
{
	static _Thread_local char buf[INET6_ADDRSTRLEN + 8];
	char host[INET6_ADDRSTRLEN] = "?";
	if (c->peer.family)
		inet_ntop(c->peer.family, c->peer.addr, host, sizeof(host));
	snprintf(buf, sizeof(buf), c->peer.family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
	         c->peer.port);
	return buf;
}

static const char *client_name(const struct conn *c)
{
	return c->sess ? c->sess->client_id : "-";
}

enum stash_result {
	STASH_OK,
	STASH_TOO_MUCH,  /* more than one packet's worth for this connection */
	STASH_NO_BUDGET, /* the node's partial_packets_bytes_max is taken */
	STASH_NO_MEMORY,
};

/* rx's capacity is counted node-wide (b->rx_bytes) for the budget of
 * partially received packets: a hostile client holding 95% of a large
 * packet for ever pins memory that no per-connection bound limits. */
static void rx_free(struct worker *w, struct conn *c)
{
	if (c->rx_cap)
		atomic_fetch_sub_explicit(&w->b->rx_bytes, c->rx_cap, memory_order_relaxed);
	free(c->rx);
	c->rx = NULL;
	c->rx_len = c->rx_cap = 0;
}

void conn_rx_release(struct worker *w, struct conn *c)
{
	rx_free(w, c);
}

static enum stash_result stash(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len)
{
	uint64_t need = (uint64_t)c->rx_len + len;
	/* One packet plus what a receive can bring after it; more while
	 * waiting for a takeover means the client is flooding. */
	uint64_t limit = (uint64_t)w->cfg->max_packet_size + 2u * 65536u;
	if (need > limit)
		return STASH_TOO_MUCH;
	if (c->rx_len == 0)
		c->rx_since_ms = (uint32_t)w->now_ms; /* a packet begins */
	if (need > c->rx_cap) {
		uint32_t cap = c->rx_cap ? c->rx_cap : 256;
		while (cap < need)
			cap *= 2;
		uint64_t more = cap - c->rx_cap;
		uint64_t budget = w->cfg->partial_packets_bytes_max;
		uint64_t held =
		    atomic_fetch_add_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
		if (budget && held + more > budget) {
			atomic_fetch_sub_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
			return STASH_NO_BUDGET;
		}
		uint8_t *n = realloc(c->rx, cap);
		if (!n) {
			atomic_fetch_sub_explicit(&w->b->rx_bytes, more, memory_order_relaxed);
			return STASH_NO_MEMORY;
		}
		c->rx = n;
		c->rx_cap = cap;
	}
	memcpy(c->rx + c->rx_len, data, len);
	c->rx_len += len;
	return STASH_OK;
}

/* A stash failed: close c with the reason that fits. */
static void stash_refused(struct worker *w, struct conn *c, enum stash_result r)
{
	if (r == STASH_NO_BUDGET) {
		w->st.partial_over_budget++;
		LOG_WARN_RL(1,
		            "closing %s (%s): partially received packets hold the node's "
		            "partial_packets_bytes_max of %llu bytes",
		            conn_peer(c), client_name(c),
		            (unsigned long long)w->cfg->partial_packets_bytes_max);
		conn_close(w, c, MQTT_RC_QUOTA_EXCEEDED, true);
	} else if (r == STASH_NO_MEMORY) {
		LOG_WARN_RL(1, "closing %s (%s): out of memory for its input", conn_peer(c),
		            client_name(c));
		conn_close(w, c, MQTT_RC_SERVER_BUSY, true);
	} else {
		LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): too much unparsed input", conn_peer(c),
		            client_name(c));
		conn_close(w, c, MQTT_RC_PACKET_TOO_LARGE, true);
	}
}

static void dispatch_packet(struct worker *w, struct conn *c, struct mqtt_packet *p)
{
	switch (p->type) {
	case MQTT_PUBLISH:
		handle_publish(w, c, &p->publish);
		break;
	case MQTT_PUBACK:
	case MQTT_PUBREC:
	case MQTT_PUBCOMP:
		handle_puback(w, c, p->type, &p->ack);
		break;
	case MQTT_PUBREL:
		handle_pubrel(w, c, &p->ack);
		break;
	case MQTT_SUBSCRIBE:
		handle_subscribe(w, c, &p->subscribe);
		break;
	case MQTT_UNSUBSCRIBE:
		handle_unsubscribe(w, c, &p->unsubscribe);
		break;
	case MQTT_PINGREQ: {
		struct mqtt_packet r = {.type = MQTT_PINGRESP};
		conn_send_packet(w, c, &r);
		break;
	}
	case MQTT_DISCONNECT:
		handle_disconnect(w, c, &p->reason);
		break;
	case MQTT_CONNECT: /* a second CONNECT [MQTT-3.1.0-2] */
		LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): second CONNECT", conn_peer(c),
		            client_name(c));
		conn_close(w, c, MQTT_RC_PROTOCOL_ERROR, true);
		break;
	case MQTT_AUTH: /* no enhanced authentication method was agreed */
	default:        /* server-to-client packets from a client */
		LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): unexpected %s", conn_peer(c),
		            client_name(c), mqtt_type_name(p->type));
		conn_close(w, c, MQTT_RC_PROTOCOL_ERROR, true);
		break;
	}
}

/* Handle the whole packets at the front of buf; returns bytes consumed.
 * Never nested: a handler that lets a waiting connection go on (a takeover
 * finished on this worker, inside this very loop) asks for a resume step
 * instead, since buf may be the rx that this call has not consumed yet. */
static uint32_t parse(struct worker *w, struct conn *c, const uint8_t *buf, uint32_t len);
static void resume(struct worker *w, struct conn *c);

static uint32_t process(struct worker *w, struct conn *c, const uint8_t *buf, uint32_t len)
{
	assert(w->in_process == NULL);
	w->in_process = c;
	uint32_t used = parse(w, c, buf, len);
	w->in_process = NULL;
	return used;
}

static uint32_t parse(struct worker *w, struct conn *c, const uint8_t *buf, uint32_t len)
{
	uint32_t off = 0;
	while (off < len && (c->state == CONN_NEW || c->state == CONN_ACTIVE)) {
		struct mqtt_frame f;
		enum mqtt_frame_status st =
		    mqtt_frame_peek(buf + off, len - off, c->version, w->cfg->max_packet_size, &f);
		if (st == MQTT_FRAME_NEED_MORE)
			break;
		if (st == MQTT_FRAME_INVALID) {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): %s", conn_peer(c),
			            client_name(c), mqtt_rc_name(f.rc));
			conn_close(w, c, f.rc, true);
			return len;
		}
		struct mqtt_packet p;
		enum mqtt_rc rc = mqtt_decode(&f, buf + off + f.header_len, c->version, &p);
		off += (uint32_t)mqtt_frame_size(&f);
		if (f.type == MQTT_PUBLISH && rc == MQTT_RC_SUCCESS)
			w->st.msgs_in[p.publish.qos]++;

		if (c->state == CONN_NEW) {
			if (f.type != MQTT_CONNECT) {
				/* [MQTT-3.1.0-1]: close, no answer. */
				LOG_INFO_RL(LOG_CLIENT_RL,
				            "closing %s: first packet is %s, not CONNECT",
				            conn_peer(c), mqtt_type_name(f.type));
				c->close_reason = CLOSE_PROTOCOL_ERROR;
				conn_close(w, c, MQTT_RC_SUCCESS, false);
				return len;
			}
			handle_connect(w, c, &p, rc);
			if (c->state == CONN_WAIT_AUTH) {
				/* Keep the CONNECT: it is read again when the
				 * password check's verdict arrives. */
				off -= (uint32_t)mqtt_frame_size(&f);
				break;
			}
			continue;
		}
		if (rc != MQTT_RC_SUCCESS) {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): %s in %s", conn_peer(c),
			            client_name(c), mqtt_rc_name(rc), mqtt_type_name(f.type));
			conn_close(w, c, rc, true);
			return len;
		}
		if (c->keepalive_s)
			c->deadline_ms = w->now_ms + (uint64_t)c->keepalive_s * 1500;
		dispatch_packet(w, c, &p);
	}
	return off;
}

void conn_input(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len)
{
	enum stash_result r;
	if (c->rx_len == 0) {
		uint32_t used = process(w, c, data, len);
		if (used < len && c->state != CONN_CLOSING &&
		    (r = stash(w, c, data + used, len - used)) != STASH_OK)
			stash_refused(w, c, r);
		return;
	}
	if ((r = stash(w, c, data, len)) != STASH_OK) {
		stash_refused(w, c, r);
		return;
	}
	resume(w, c);
}

/* Parse what c has buffered in rx. */
static void resume(struct worker *w, struct conn *c)
{
	if (c->rx_len == 0)
		return;
	uint32_t used = process(w, c, c->rx, c->rx_len);
	if (c->state == CONN_CLOSING) {
		c->rx_len = 0;
	} else {
		memmove(c->rx, c->rx + used, c->rx_len - used);
		c->rx_len -= used;
		if (used > 0)
			c->rx_since_ms = (uint32_t)w->now_ms; /* progress: the timer restarts */
	}
	if (c->rx_len == 0)
		rx_free(w, c); /* an idle connection keeps no receive memory */
}

void conn_want_resume(struct worker *w, struct conn *c)
{
	if (c->on_resume_list || c->state == CONN_CLOSING)
		return;
	assert(w->resume_len < w->conn_cap); /* one entry per connection at most */
	c->on_resume_list = true;
	w->resume[w->resume_len++] = (struct rearm){c->slot, c->gen};
}

void conn_resume_all(struct worker *w)
{
	/* Parsing may name more connections (a CONNECT that takes over a
	 * session on this worker names itself again): go on until none is
	 * left. Each pass parses input that was already here, so it ends. */
	while (w->resume_len > 0) {
		struct rearm r = w->resume[--w->resume_len];
		struct conn *c = conn_get(w, r.slot, r.gen);
		assert(c && c->on_resume_list); /* reaped only after this step */
		c->on_resume_list = false;
		if (c->state != CONN_CLOSING)
			resume(w, c);
	}
}

struct ws_conn *ws_conn_new(const char *path, uint32_t max_frame_bytes)
{
	struct ws_conn *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	/* A frame may hold one whole packet of the largest size plus the
	 * start of the next: refusing less would refuse legal packets. */
	x->ws = ws_new(path, (uint64_t)max_frame_bytes + 65536);
	if (!x->ws) {
		free(x);
		return NULL;
	}
	return x;
}

void ws_conn_free(struct ws_conn *x)
{
	if (!x)
		return;
	ws_free(x->ws);
	free(x->wire);
	free(x);
}

struct ws_io {
	struct worker *w;
	struct conn *c;
	struct ws_conn *x;
	uint64_t limit; /* wire bytes the layer may hold */
	bool oom;
	bool over; /* past limit: the client is not reading */
};

static void ws_deliver(void *ctx, const uint8_t *data, size_t len)
{
	struct ws_io *io = ctx;
	if (io->c->state != CONN_CLOSING)
		conn_input(io->w, io->c, data, (uint32_t)len);
}

/* Bytes the WebSocket layer wants sent; bounded by what it is given (the
 * upgrade answer, pongs of bounded pings, frames of the outbox). */
static void ws_wire(void *ctx, const uint8_t *data, size_t len)
{
	struct ws_io *io = ctx;
	struct ws_conn *x = io->x;
	if ((uint64_t)x->wire_len + len > io->limit) {
		io->over = true;
		return;
	}
	if (x->wire_len + len > x->wire_cap) {
		uint32_t cap = x->wire_cap ? x->wire_cap : 256;
		while (cap < x->wire_len + len)
			cap *= 2;
		uint8_t *n = realloc(x->wire, cap);
		if (!n) {
			io->oom = true;
			return;
		}
		x->wire = n;
		x->wire_cap = cap;
	}
	memcpy(x->wire + x->wire_len, data, len);
	x->wire_len += (uint32_t)len;
}

/* Plaintext from the socket (or from TLS): through the WebSocket layer
 * on a ws/wss connection, else straight to the MQTT parser. */
static void plain_input(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct ws_conn *x = conn_ws(w, c);
	if (!x) {
		conn_input(w, c, data, len);
		return;
	}
	/* What input makes the layer say (the upgrade's answer, pongs,
	 * closes) is bounded like a client's answers in conn_send_packet: a
	 * client that pings without reading is disconnected, not buffered. */
	struct ws_io io = {w, c, x, w->cfg->outbox_bytes_max * 2 + 65536, false, false};
	bool was_open = ws_open(x->ws);
	enum ws_result r = ws_input(x->ws, data, len, ws_deliver, ws_wire, &io);
	if (x->wire_len > 0)
		mark_flush(w, c);
	if ((r == WS_CLOSE || io.oom || io.over) && c->state != CONN_CLOSING) {
		const char *why = io.oom    ? "out of memory"
		                  : io.over ? "not reading its output"
		                            : ws_why(x->ws);
		if (!was_open && !ws_open(x->ws))
			LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: WebSocket upgrade: %s",
			            conn_peer(c), conn_listener(w, c), why);
		else
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s) on %s: WebSocket: %s",
			            conn_peer(c), client_name(c), conn_listener(w, c), why);
		c->close_reason = ws_peer_closed(x->ws) ? CLOSE_PEER_CLOSED : CLOSE_PROTOCOL_ERROR;
		conn_close(w, c, MQTT_RC_SUCCESS, true);
	}
}

/* WebSocket: frame the outbox (MQTT bytes) behind what the layer already
 * produced, end with a close frame when closing, and make the whole the
 * outbox for the next stage (TLS or the socket). */
static void ws_stage(struct worker *w, struct conn *c, struct ws_conn *x)
{
	/* The outbox has its own bounds (conn_send_packet); framing it adds
	 * a few bytes per packet. */
	struct ws_io io = {w, c, x, UINT32_MAX, false, false};
	if (c->out_len > 0 && ws_open(x->ws))
		ws_send(x->ws, c->out, c->out_len, ws_wire, &io);
	free(c->out); /* framed now (or, before the upgrade, nothing to frame) */
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	if (c->state == CONN_CLOSING && ws_open(x->ws))
		ws_close(x->ws, 1000, ws_wire, &io); /* once: ws_close is idempotent */
	c->out = x->wire;
	c->out_len = x->wire_len;
	c->out_cap = x->wire_cap;
	x->wire = NULL;
	x->wire_len = x->wire_cap = 0;
}

bool conn_tls_handshaking(const struct worker *w, const struct conn *c)
{
	struct tls_conn *t = conn_tls(w, c);
	return t && !tls_conn_established(t);
}

/* A handshake failed: one line saying why, counted by reason. The alert
 * OpenSSL queued goes out with the close. */
static void tls_refuse(struct worker *w, struct conn *c, struct tls_conn *t)
{
	enum tls_fail f = tls_conn_fail_reason(t);
	w->st.tls_failures[f]++;
	LOG_INFO_RL(LOG_CLIENT_RL, "TLS handshake failed with %s on %s: %s", conn_peer(c),
	            conn_listener(w, c), tls_conn_error(t));
	c->close_reason = CLOSE_TLS_HANDSHAKE;
	conn_close(w, c, MQTT_RC_SUCCESS, false);
}

void conn_received(struct worker *w, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct tls_conn *t = conn_tls(w, c);
	if (!t) {
		plain_input(w, c, data, len);
		return;
	}
	if (tls_conn_feed(t, data, len) != TLS_OK) {
		if (!tls_conn_established(t)) {
			tls_refuse(w, c, t);
			return;
		}
		LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): TLS: %s", conn_peer(c), client_name(c),
		            tls_conn_error(t));
		c->close_reason = CLOSE_PROTOCOL_ERROR;
		conn_close(w, c, MQTT_RC_SUCCESS, true);
		return;
	}
	if (!tls_conn_established(t)) {
		enum tls_result r = tls_conn_handshake(t);
		if (tls_conn_pending(t) > 0)
			mark_flush(w, c); /* the server's flight, even with nothing in out */
		if (r == TLS_ERROR) {
			tls_refuse(w, c, t);
			return;
		}
		if (r == TLS_AGAIN)
			return;
		w->st.tls_handshakes++;
		size_t idlen;
		const char *id = tls_conn_identity(t, &idlen);
		LOG_DEBUG("TLS handshake with %s on %s: %s%s%.*s%s", conn_peer(c),
		          conn_listener(w, c), tls_conn_describe(t),
		          id                     ? ", certificate identity \""
		          : tls_conn_has_cert(t) ? ", client certificate"
		                                 : "",
		          (int)idlen, id ? id : "", id ? "\"" : "");
	}
	/* Everything decryptable now: the rbio must not keep ciphertext that
	 * no later receive would make us look at again. */
	uint8_t buf[TLS_READ_CHUNK];
	while (c->state != CONN_CLOSING) {
		int n = tls_conn_read(t, buf, sizeof(buf));
		if (n > 0) {
			plain_input(w, c, buf, (uint32_t)n);
			continue;
		}
		if (n == TLS_AGAIN)
			break;
		if (n == TLS_EOF) {
			/* close_notify: as an end of stream without DISCONNECT. */
			c->close_reason = CLOSE_PEER_CLOSED;
			conn_close(w, c, MQTT_RC_SUCCESS, true);
		} else {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): TLS: %s", conn_peer(c),
			            client_name(c), tls_conn_error(t));
			c->close_reason = CLOSE_PROTOCOL_ERROR;
			conn_close(w, c, MQTT_RC_SUCCESS, true);
		}
		break;
	}
	if (tls_conn_pending(t) > 0)
		mark_flush(w, c); /* e.g. a key update's answer */
}

/* Make room for need more bytes in out; false past the limit. */
static bool out_reserve(struct conn *c, size_t need, uint64_t limit)
{
	if ((uint64_t)c->out_len + need > limit)
		return false;
	if (c->out_len + need <= c->out_cap)
		return true;
	size_t cap = c->out_cap ? c->out_cap : 512;
	while (cap < c->out_len + need)
		cap *= 2;
	uint8_t *n = realloc(c->out, cap);
	if (!n)
		return false;
	c->out = n;
	c->out_cap = (uint32_t)cap;
	return true;
}

enum out_result {
	OUT_OK,      /* appended */
	OUT_FULL,    /* past the outbox limit (or closing, or no memory) */
	OUT_TOO_BIG, /* larger than the client's Maximum Packet Size */
};

/* Append p to out within limit. */
static enum out_result out_append(struct worker *w, struct conn *c, const struct mqtt_packet *p,
                                  uint64_t limit)
{
	if (c->state == CONN_CLOSING && p->type != MQTT_DISCONNECT)
		return OUT_FULL;
	/* Usually it fits in what is left: encode once. */
	size_t n = 0;
	if (c->out_cap > c->out_len)
		n = mqtt_encode(p, c->version, c->out + c->out_len, c->out_cap - c->out_len);
	if (n == 0) {
		size_t need = mqtt_encode_len(p, c->version);
		if (need > 0 && c->client_max_packet && need > c->client_max_packet)
			return OUT_TOO_BIG;
		if (need == 0 || !out_reserve(c, need, limit))
			return OUT_FULL;
		n = mqtt_encode(p, c->version, c->out + c->out_len, c->out_cap - c->out_len);
	}
	/* [MQTT-3.1.2-24]: the size is known once encoded, so the check costs
	 * nothing; bytes encoded into spare room are simply not counted. */
	if (c->client_max_packet && n > c->client_max_packet)
		return OUT_TOO_BIG;
	if ((uint64_t)c->out_len + n > limit)
		return OUT_FULL; /* encoded past the limit into spare room: forget it */
	c->out_len += (uint32_t)n;
	if (p->type == MQTT_PUBLISH)
		w->st.msgs_out[p->publish.qos]++; /* 0..2: we chose it */
	mark_flush(w, c);
	return OUT_OK;
}

bool conn_send_packet(struct worker *w, struct conn *c, const struct mqtt_packet *p)
{
	/* Three kinds of output, three bounds. A QoS 0 PUBLISH may be dropped
	 * at outbox_bytes_max (the caller counts it). A QoS 1/2 PUBLISH is
	 * already bounded by the in-flight window (inflight_max and the
	 * client's Receive Maximum, times the packet size), so it always goes.
	 * Anything else answers the client's own packets: reaching twice the
	 * outbox limit means it keeps sending without reading, and it is
	 * disconnected. */
	bool is_publish = p->type == MQTT_PUBLISH;
	uint64_t soft = w->cfg->outbox_bytes_max;
	uint64_t limit = !is_publish ? soft * 2 + 65536 : p->publish.qos == 0 ? soft : UINT64_MAX;
	enum out_result r = out_append(w, c, p, limit);
	if (r == OUT_OK)
		return true;
	if (r == OUT_TOO_BIG) {
		/* A PUBLISH is the caller's to drop (route.c checks first and
		 * counts it). Our answers carry no Reason String or User
		 * Property, the properties [MQTT-3.1.2-25] would have us leave
		 * out first (the CONNACK sheds its optional ones in
		 * handle_connect.c); what is left is required, so a client that
		 * refuses its size cannot go on. */
		if (!is_publish && c->state != CONN_CLOSING) {
			LOG_INFO_RL(
			    LOG_CLIENT_RL,
			    "closing %s (%s): its Maximum Packet Size of %u bytes leaves no "
			    "room for a %s",
			    conn_peer(c), client_name(c), c->client_max_packet,
			    mqtt_type_name(p->type));
			conn_close(w, c, MQTT_RC_PACKET_TOO_LARGE, true);
		}
		return false;
	}
	if (!(is_publish && p->publish.qos == 0) && c->state != CONN_CLOSING) {
		LOG_WARN("closing %s (%s): not reading its output (%u bytes waiting)", conn_peer(c),
		         client_name(c), c->out_len);
		conn_close(w, c, MQTT_RC_QUOTA_EXCEEDED, true);
	}
	return false;
}

/* TLS: encrypt out and make the ciphertext tx. false: nothing to send. */
static bool tls_stage(struct worker *w, struct conn *c, struct tls_conn *t)
{
	if (c->out_len > 0) {
		/* Before the handshake finished there is no MQTT output to send
		 * (nothing was read); whatever a close left there is dropped. */
		if (tls_conn_established(t) && tls_conn_write(t, c->out, c->out_len) != TLS_OK &&
		    c->state != CONN_CLOSING) {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): TLS: %s", conn_peer(c),
			            client_name(c), tls_conn_error(t));
			c->close_reason = CLOSE_SOCKET_ERROR;
			conn_close(w, c, MQTT_RC_SUCCESS, true);
		}
		/* An idle connection keeps no send memory: the plaintext is
		 * ciphertext now. */
		free(c->out);
		c->out = NULL;
		c->out_len = c->out_cap = 0;
	}
	if (c->state == CONN_CLOSING)
		tls_conn_close_notify(t); /* after the last packet, once */
	size_t n = tls_conn_pending(t);
	if (n == 0)
		return false;
	uint8_t *tx = malloc(n);
	if (!tx) {
		if (c->state != CONN_CLOSING) {
			c->close_reason = CLOSE_SERVER_ERROR;
			conn_close(w, c, MQTT_RC_SUCCESS, true);
		}
		return false;
	}
	c->tx = tx;
	c->tx_len = (uint32_t)tls_conn_take(t, tx, n);
	c->tx_off = 0;
	return c->tx_len > 0;
}

void conn_flush(struct worker *w, struct conn *c)
{
	if (c->send_busy || c->fd < 0)
		return;
	if (!c->tx) {
		struct ws_conn *x = conn_ws(w, c);
		if (x)
			ws_stage(w, c, x);
		struct tls_conn *t = conn_tls(w, c);
		if (t) {
			if (!tls_stage(w, c, t)) {
				free(c->tx);
				c->tx = NULL;
				c->tx_len = 0;
				return;
			}
		} else {
			if (c->out_len == 0)
				return;
			c->tx = c->out;
			c->tx_len = c->out_len;
			c->tx_off = 0;
			c->out = NULL;
			c->out_len = c->out_cap = 0;
		}
	}
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_send(sqe, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, op_pack(OP_SEND, c->slot, c->gen));
	c->send_busy = true;
	w->st.sends++;
}

/* The session outlives or ends with its connection (§4.1, §3.1.2.11.2). */
static void session_detach_conn(struct worker *w, struct conn *c, bool will)
{
	struct session *s = c->sess;
	c->sess = NULL;
	s->online = false;
	if (!will && s->will) {
		free(s->will); /* a normal DISCONNECT deletes the will [MQTT-3.1.2-10] */
		s->will = NULL;
	}
	if (s->expiry_s == 0) {
		if (s->will)
			will_publish(w, s);
		sess_end(w, s);
		return;
	}
	s->expires_at_ms = w->now_ms + (uint64_t)s->expiry_s * 1000;
	if (s->will) {
		if (s->will_delay_s == 0)
			will_publish(w, s);
		else
			s->will_at_ms = w->now_ms + (uint64_t)s->will_delay_s * 1000;
	}
}

void conn_close(struct worker *w, struct conn *c, enum mqtt_rc rc, bool will)
{
	if (c->state == CONN_CLOSING)
		return;
	if (c->close_reason == CLOSE_UNSET) /* callers set it where rc does not say */
		c->close_reason = (uint8_t)stats_close_reason_of(rc);
	/* A handshake that ends without failing on its own (timeout, end of
	 * stream, shutdown) is a failed handshake too. */
	if (conn_tls_handshaking(w, c) && c->close_reason != CLOSE_TLS_HANDSHAKE)
		w->st.tls_failures[c->close_reason == CLOSE_CONNECT_TIMEOUT ? TLS_FAIL_TIMEOUT
		                                                            : TLS_FAIL_CLOSED]++;
	/* The one line per connection's end: who, where, why. */
	if (rc != MQTT_RC_SUCCESS)
		LOG_INFO_RL(LOG_CLIENT_RL, "disconnected %s (%s) on %s: %s, reason code 0x%02X",
		            conn_peer(c), client_name(c), conn_listener(w, c),
		            stats_close_reason_name((enum close_reason)c->close_reason), rc);
	else
		LOG_INFO_RL(LOG_CLIENT_RL, "disconnected %s (%s) on %s: %s", conn_peer(c),
		            client_name(c), conn_listener(w, c),
		            stats_close_reason_name((enum close_reason)c->close_reason));
	/* 5.0 lets the server say why [MQTT-3.14.0-1]; only after CONNACK. */
	if (rc >= 0x80 && c->version == MQTT_V5 && c->state == CONN_ACTIVE) {
		struct mqtt_packet d = {.type = MQTT_DISCONNECT};
		d.reason.rc = rc;
		c->state = CONN_CLOSING; /* out_append lets only this through */
		out_append(w, c, &d, UINT64_MAX);
	}
	c->state = CONN_CLOSING;
	c->deadline_ms = w->now_ms; /* from now on: when the close began */
	if (c->pending) {
		/* Died while its session was on the way: end the one we set up
		 * (handle_handover() frees the old one when it arrives). */
		struct session *p = c->pending;
		c->pending = NULL;
		sess_end(w, p);
	}
	if (c->sess)
		session_detach_conn(w, c, will);
	if (!c->on_close_list) {
		c->on_close_list = true;
		c->next_close = w->close_list;
		w->close_list = c;
	}
	mark_flush(w, c);
}
