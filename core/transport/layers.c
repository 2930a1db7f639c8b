/*
 * layers.c — TLS and WebSocket as byte transforms between a connection's
 * socket and the layer above (conn.h). Only the owning worker's thread
 * calls this.
 *
 * TLS (a connection from a tls_listen or wss_listen address, tls.h): what
 * arrives is ciphertext, fed to the connection's SSL and read back as
 * plaintext; at flush the outbox is encrypted and the ciphertext becomes tx.
 * The handshake's own output is sent even when the outbox is empty.
 * A connection we dialled with TLS (transport_dial_tls) is the client: its
 * handshake starts when the connect completed, without input, and what the
 * layer above writes meanwhile (MQTT's CONNECT) stays in the outbox until
 * the handshake finished; a server's outbox is empty until then anyway.
 * Plaintext per receive is bounded by the ciphertext fed (one receive buffer
 * plus one incomplete record, tls.c), read in TLS_READ_CHUNK pieces.
 *
 * WebSocket (ws.c, over Debian's libwslay) sits where TLS does, and above it
 * for wss: received bytes (plaintext, or what TLS decrypted) go through
 * ws_input, whose binary-frame payload is the byte stream handed up; at
 * flush the outbox is framed behind what the layer produced itself (the
 * upgrade's answer, pongs) and the whole becomes the outbox for TLS or the
 * socket.
 */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/log.h"
#include "transport/conn_int.h"
#include "transport/tls.h"
#include "transport/ws.h"

#define TLS_READ_CHUNK 16384 /* plaintext bytes per SSL_read: one TLS record */

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
	struct transport *tp;
	struct conn *c;
	struct ws_conn *x;
	uint64_t limit; /* wire bytes the layer may hold */
	bool oom;
	bool over; /* past limit: the client is not reading */
};

static void ws_deliver(void *ctx, const uint8_t *data, size_t len)
{
	struct ws_io *io = ctx;
	if (!io->c->closing) {
		const struct transport_ops *ops = conn_ops(io->tp, io->c);
		ops->input(ops->ctx, io->c, data, (uint32_t)len);
	}
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
 * on a ws/wss connection, else straight up. */
static void plain_input(struct transport *tp, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct ws_conn *x = conn_ws(tp, c);
	if (!x) {
		const struct transport_ops *ops = conn_ops(tp, c);
		ops->input(ops->ctx, c, data, len);
		return;
	}
	/* What input makes the layer say (the upgrade's answer, pongs,
	 * closes) is bounded like a client's answers are above: a client
	 * that pings without reading is disconnected, not buffered. */
	struct ws_io io = {tp, c, x, tp->cfg->outbox_bytes_max * 2 + 65536, false, false};
	bool was_open = ws_open(x->ws);
	enum ws_result r = ws_input(x->ws, data, len, ws_deliver, ws_wire, &io);
	if (x->wire_len > 0)
		conn_mark_flush(tp, c);
	if ((r == WS_CLOSE || io.oom || io.over) && !c->closing) {
		const char *why = io.oom    ? "out of memory"
		                  : io.over ? "not reading its output"
		                            : ws_why(x->ws);
		if (!was_open && !ws_open(x->ws))
			LOG_INFO_RL(LOG_CLIENT_RL, "refused %s on %s: WebSocket upgrade: %s",
			            conn_peer(c), conn_listener(tp, c), why);
		else
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s on %s: WebSocket: %s", conn_peer(c),
			            conn_listener(tp, c), why);
		conn_lost(tp, c, ws_peer_closed(x->ws) ? CLOSE_PEER_CLOSED : CLOSE_PROTOCOL_ERROR);
	}
}

/* WebSocket: frame the outbox behind what the layer already produced, end
 * with a close frame when closing, and make the whole the outbox for the
 * next stage (TLS or the socket). */
static void ws_stage(struct transport *tp, struct conn *c, struct ws_conn *x)
{
	/* The outbox has its own bounds (the layer above); framing it adds a
	 * few bytes per packet. */
	struct ws_io io = {tp, c, x, UINT32_MAX, false, false};
	if (c->out_len > 0 && ws_open(x->ws))
		ws_send(x->ws, c->out, c->out_len, ws_wire, &io);
	free(c->out); /* framed now (or, before the upgrade, nothing to frame) */
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	if (c->closing && ws_open(x->ws))
		ws_close(x->ws, 1000, ws_wire, &io); /* once: ws_close is idempotent */
	c->out = x->wire;
	c->out_len = x->wire_len;
	c->out_cap = x->wire_cap;
	x->wire = NULL;
	x->wire_len = x->wire_cap = 0;
}

bool conn_tls_handshaking(const struct transport *tp, const struct conn *c)
{
	struct tls_conn *t = conn_tls(tp, c);
	return t && !tls_conn_established(t);
}

/* A handshake failed: one line saying why, counted by reason. The alert
 * OpenSSL queued goes out with the close. A connection we dialled is not
 * counted (the metric's reasons describe clients of our listeners) and its
 * line is a warning: an operator configured it, and a wrong CA file or
 * server name shows here and nowhere else. */
static void tls_refuse(struct transport *tp, struct conn *c, struct tls_conn *t)
{
	if (conn_dialled(tp, c)) {
		LOG_WARN_RL(1, "TLS handshake failed with %s on %s: %s", conn_peer(c),
		            conn_listener(tp, c), tls_conn_error(t));
	} else {
		tp->st->tls_failures[tls_conn_fail_reason(t)]++;
		LOG_INFO_RL(LOG_CLIENT_RL, "TLS handshake failed with %s on %s: %s", conn_peer(c),
		            conn_listener(tp, c), tls_conn_error(t));
	}
	conn_lost(tp, c, CLOSE_TLS_HANDSHAKE);
}

bool layers_tls_start(struct transport *tp, struct conn *c)
{
	struct tls_conn *t = conn_tls(tp, c);
	CHECK(t && !tls_conn_established(t));
	if (tls_conn_handshake(t) == TLS_ERROR) {
		tls_refuse(tp, c, t);
		return false;
	}
	conn_mark_flush(tp, c); /* the ClientHello */
	return true;
}

void layers_received(struct transport *tp, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct tls_conn *t = conn_tls(tp, c);
	if (!t) {
		plain_input(tp, c, data, len);
		return;
	}
	if (tls_conn_feed(t, data, len) != TLS_OK) {
		if (!tls_conn_established(t)) {
			tls_refuse(tp, c, t);
			return;
		}
		LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: TLS: %s", conn_peer(c), tls_conn_error(t));
		conn_lost(tp, c, CLOSE_PROTOCOL_ERROR);
		return;
	}
	if (!tls_conn_established(t)) {
		enum tls_result r = tls_conn_handshake(t);
		if (tls_conn_pending(t) > 0)
			conn_mark_flush(tp, c); /* the server's flight, even with nothing in out */
		if (r == TLS_ERROR) {
			tls_refuse(tp, c, t);
			return;
		}
		if (r == TLS_AGAIN)
			return;
		if (!conn_dialled(tp, c))
			tp->st->tls_handshakes++; /* on our listeners, as the metric says */
		if (c->out_len > 0)
			conn_mark_flush(tp, c); /* a client's output that waited for this */
		size_t idlen;
		const char *id = tls_conn_identity(t, &idlen);
		LOG_DEBUG("TLS handshake with %s on %s: %s%s%.*s%s", conn_peer(c),
		          conn_listener(tp, c), tls_conn_describe(t),
		          id                     ? ", certificate identity \""
		          : tls_conn_has_cert(t) ? ", client certificate"
		                                 : "",
		          (int)idlen, id ? id : "", id ? "\"" : "");
	}
	/* Everything decryptable now: the rbio must not keep ciphertext that
	 * no later receive would make us look at again. */
	uint8_t buf[TLS_READ_CHUNK];
	while (!c->closing) {
		int n = tls_conn_read(t, buf, sizeof(buf));
		if (n > 0) {
			plain_input(tp, c, buf, (uint32_t)n);
			continue;
		}
		if (n == TLS_AGAIN)
			break;
		if (n == TLS_EOF) {
			conn_lost(tp, c, CLOSE_PEER_CLOSED); /* close_notify: an end of stream */
		} else if (tls_conn_failed_early(t)) {
			tls_refuse(tp, c, t); /* a TLS 1.3 server refused our certificate */
		} else {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: TLS: %s", conn_peer(c),
			            tls_conn_error(t));
			conn_lost(tp, c, CLOSE_PROTOCOL_ERROR);
		}
		break;
	}
	if (tls_conn_pending(t) > 0)
		conn_mark_flush(tp, c); /* e.g. a key update's answer */
}

/* The ciphertext TLS holds becomes tx. false: nothing to send. */
static bool tls_take(struct transport *tp, struct conn *c, struct tls_conn *t)
{
	size_t n = tls_conn_pending(t);
	if (n == 0)
		return false;
	uint8_t *tx = malloc(n);
	if (!tx) {
		if (!c->closing)
			conn_lost(tp, c, CLOSE_SERVER_ERROR);
		return false;
	}
	c->tx = tx;
	c->tx_len = (uint32_t)tls_conn_take(t, tx, n);
	c->tx_off = 0;
	if (c->tx_len == 0) {
		free(c->tx);
		c->tx = NULL;
		return false;
	}
	return true;
}

/* TLS: encrypt out and make the ciphertext tx. false: nothing to send. */
static bool tls_stage(struct transport *tp, struct conn *c, struct tls_conn *t)
{
	if (c->out_len > 0) {
		/* Unfinished handshakes wait in layers_stage unless closing:
		 * what a close left in the outbox then is dropped. */
		if (tls_conn_established(t) && tls_conn_write(t, c->out, c->out_len) != TLS_OK &&
		    !c->closing) {
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: TLS: %s", conn_peer(c),
			            tls_conn_error(t));
			conn_lost(tp, c, CLOSE_SOCKET_ERROR);
		}
		/* An idle connection keeps no send memory: the plaintext is
		 * ciphertext now. */
		free(c->out);
		c->out = NULL;
		c->out_len = c->out_cap = 0;
	}
	if (c->closing)
		tls_conn_close_notify(t); /* after the last packet, once */
	return tls_take(tp, c, t);
}

static bool layers_stage_all(struct transport *tp, struct conn *c);

/* Stage what the journal lets go: the outbox up to the first gate mark it
 * has not reached (barrier.h). The rest stays in the outbox, and the
 * connection waits on the gate list. */
bool layers_stage(struct transport *tp, struct conn *c)
{
	/* Mid-handshake only the handshake's bytes go; the outbox (a dialled
	 * connection's first packets) waits, with its gate marks, as it is. */
	struct tls_conn *t = conn_tls(tp, c);
	if (t && !tls_conn_established(t) && !c->closing)
		return tls_take(tp, c, t);
	struct out_gate *g = tp->gates ? &tp->gates[c->slot] : NULL;
	if (!g || g->n == 0)
		return layers_stage_all(tp, c);
	uint32_t can = gate_sendable(g, tp->barrier, c->out_len);
	if (can == c->out_len)
		return layers_stage_all(tp, c);
	/* Split: the held tail aside, stage the head, the tail back. */
	uint8_t *rest;
	uint32_t rest_len = c->out_len - can, rest_cap;
	if (can == 0) {
		rest = c->out;
		rest_cap = c->out_cap;
		c->out = NULL;
		c->out_len = c->out_cap = 0;
	} else {
		rest = malloc(rest_len);
		if (!rest) {
			conn_gated(tp, c); /* try again when the journal moves */
			return false;
		}
		memcpy(rest, c->out + can, rest_len);
		rest_cap = rest_len;
		c->out_len = can;
	}
	bool staged = layers_stage_all(tp, c);
	gate_consumed(g, can);
	/* Staging consumed the outbox (moved to tx, framed or encrypted). */
	CHECK(c->out_len == 0);
	free(c->out);
	c->out = rest;
	c->out_len = rest_len;
	c->out_cap = rest_cap;
	conn_gated(tp, c);
	return staged;
}

static bool layers_stage_all(struct transport *tp, struct conn *c)
{
	struct ws_conn *x = conn_ws(tp, c);
	if (x)
		ws_stage(tp, c, x);
	struct tls_conn *t = conn_tls(tp, c);
	if (t)
		return tls_stage(tp, c, t);
	if (c->out_len == 0)
		return false;
	c->tx = c->out;
	c->tx_len = c->out_len;
	c->tx_off = 0;
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	return true;
}
