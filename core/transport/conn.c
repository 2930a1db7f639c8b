/*
 * conn.c — a worker's connections as bytes (see conn.h): the table, the
 * outbox and its send, closing and reaping. Only the owning worker's thread
 * calls this.
 *
 * Send: the layer above appends encoded bytes to out; transport_flush_all()
 * (once per turn) hands out to the kernel as tx (one send in flight at a
 * time) and new output collects in a fresh out meanwhile. Short sends
 * continue from tx_off. On a TLS or WebSocket connection the outbox goes
 * through those layers first (layers.c).
 *
 * Closing is lingering: once a closing connection's last bytes went to the
 * kernel, the write side is shut (the client reads a FIN after them) and
 * receiving goes on, discarding everything, until the client closes too, at
 * most LINGER_MS after the close began. Closing at once would leave the
 * bytes a client still sends unread, the kernel would answer them with RST,
 * and a client still writing would get EPIPE or ECONNRESET instead of our
 * last packet. A close the client made (end of stream, error) or asked for
 * does not linger.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/check.h"
#include "base/log.h"
#include "io/op.h"
#include "io/ring.h"
#include "transport/conn_int.h"
#include "transport/tls.h"

#define CLOSE_GRACE_MS 2000 /* a closing connection gets this long to flush */
#define LINGER_MS      2000 /* and, from the same start, at most this long to drain */

int transport_init(struct transport *tp, uint16_t id, const struct config *cfg,
                   struct transport_node *node, struct worker_stats *st, const uint64_t *now_ms,
                   const struct transport_ops *ops)
{
	memset(tp, 0, sizeof(*tp));
	tp->id = id;
	tp->cfg = cfg;
	tp->node = node;
	tp->st = st;
	tp->now_ms = now_ms;
	transport_add_upper(tp, 0, ops);
	tp->has_tls = cfg->tls_listen_count + cfg->wss_listen_count > 0;
	tp->has_ws = cfg->ws_listen_count + cfg->wss_listen_count > 0;
	for (unsigned i = 0; i < LISTENERS_MAX; i++)
		tp->listen_fds[i] = -1;
	return 0;
}

void transport_close_others(struct transport *tp)
{
	for (uint32_t i = 0; i < tp->conn_cap; i++) {
		struct conn *c = tp->conns[i];
		if (c && !c->closing && !conn_is_mqtt(tp, c))
			conn_close(tp, c);
	}
}

void transport_add_upper(struct transport *tp, unsigned index, const struct transport_ops *ops)
{
	CHECK(index < TRANSPORT_UPPERS_MAX && ops->conn_size >= sizeof(struct conn));
	CHECK(ops->opened && ops->input && ops->lost && ops->reaped);
	tp->uppers[index] = *ops;
}

static void conn_free_memory(struct transport *tp, struct conn *c)
{
	if (tp->tls) {
		tls_conn_free(tp->tls[c->slot]);
		tp->tls[c->slot] = NULL;
	}
	if (tp->ws) {
		ws_conn_free(tp->ws[c->slot]);
		tp->ws[c->slot] = NULL;
	}
	const struct transport_ops *ops = conn_ops(tp, c);
	ops->reaped(ops->ctx, c);
	free(c->out);
	free(c->tx);
	free(c);
}

void transport_set_barrier(struct transport *tp, const struct ack_barrier *b)
{
	CHECK(tp->conn_cap == 0); /* before the first connection: the table grows with it */
	tp->barrier = b;
}

void transport_fini(struct transport *tp)
{
	for (uint32_t i = 0; i < tp->conn_cap; i++) {
		struct conn *c = tp->conns[i];
		if (!c)
			continue;
		if (c->fd >= 0)
			close(c->fd);
		conn_free_memory(tp, c);
	}
	free(tp->tls);
	free(tp->ws);
	free(tp->gated);
	free(tp->gates);
	free(tp->conns);
	free(tp->conn_gens);
	free(tp->conn_free);
	free(tp->rearm);
	for (unsigned i = 0; i < tp->listen_count; i++)
		if (tp->listen_fds[i] >= 0)
			close(tp->listen_fds[i]);
	memset(tp, 0, sizeof(*tp));
}

void transport_stop_accepting(struct transport *tp)
{
	tp->stopping = true;
	for (unsigned i = 0; i < tp->listen_count; i++) {
		if (tp->listen_fds[i] >= 0) {
			shutdown(tp->listen_fds[i], SHUT_RDWR); /* ends the multishot accept */
			close(tp->listen_fds[i]);
			tp->listen_fds[i] = -1;
		}
	}
}

/* A slot for a new connection of the layer `upper`; the table grows up to
 * the node's limit. */
struct conn *transport_conn_alloc(struct transport *tp, unsigned upper)
{
	if (tp->conn_free_len == 0) {
		uint32_t cap = tp->conn_cap ? tp->conn_cap * 2 : 1024;
		struct conn **c = realloc(tp->conns, cap * sizeof(*c));
		if (c)
			tp->conns = c;
		uint32_t *g = realloc(tp->conn_gens, cap * sizeof(*g));
		if (g)
			tp->conn_gens = g;
		uint32_t *f = realloc(tp->conn_free, cap * sizeof(*f));
		if (f)
			tp->conn_free = f;
		struct tls_conn **t = NULL;
		if (tp->has_tls) {
			t = realloc(tp->tls, cap * sizeof(*t));
			if (t)
				tp->tls = t;
		}
		struct ws_conn **x = NULL;
		if (tp->has_ws) {
			x = realloc(tp->ws, cap * sizeof(*x));
			if (x)
				tp->ws = x;
		}
		struct out_gate *gt = NULL;
		if (tp->barrier) {
			gt = realloc(tp->gates, cap * sizeof(*gt));
			if (gt)
				tp->gates = gt;
		}
		if (!c || !g || !f || (tp->has_tls && !t) || (tp->has_ws && !x) ||
		    (tp->barrier && !gt))
			return NULL;
		for (uint32_t i = tp->conn_cap; i < cap; i++) {
			tp->conns[i] = NULL;
			tp->conn_gens[i] = 1;
			if (tp->tls)
				tp->tls[i] = NULL;
			if (tp->ws)
				tp->ws[i] = NULL;
		}
		for (uint32_t i = cap; i > tp->conn_cap; i--)
			tp->conn_free[tp->conn_free_len++] = i - 1;
		tp->conn_cap = cap;
	}
	CHECK(upper < TRANSPORT_UPPERS_MAX && tp->uppers[upper].conn_size);
	struct conn *c = calloc(1, tp->uppers[upper].conn_size);
	if (!c)
		return NULL;
	c->slot = tp->conn_free[--tp->conn_free_len];
	c->gen = tp->conn_gens[c->slot];
	c->fd = -1;
	if (tp->gates)
		tp->gates[c->slot].n = 0;
	CHECK(tp->conns[c->slot] == NULL);
	tp->conns[c->slot] = c;
	tp->conn_live++;
	return c;
}

bool transport_tls_table(struct transport *tp)
{
	if (tp->has_tls)
		return true;
	/* Without a table yet the first growth makes it (has_tls). */
	if (tp->conn_cap > 0) {
		struct tls_conn **t = calloc(tp->conn_cap, sizeof(*t));
		if (!t)
			return false;
		tp->tls = t;
	}
	tp->has_tls = true;
	return true;
}

/* Give a slot back; its next user gets a new generation. */
static void conn_reap(struct transport *tp, struct conn *c)
{
	CHECK(tp->conns[c->slot] == c && c->closing && !c->send_busy);
	tp->accept_paused_until_ms = 0; /* a descriptor is free (or soon): accept again */
	tp->conns[c->slot] = NULL;
	tp->conn_gens[c->slot] = (c->gen + 1) & OP_GEN_MASK;
	if (tp->conn_gens[c->slot] == 0)
		tp->conn_gens[c->slot] = 1;
	tp->conn_free[tp->conn_free_len++] = c->slot;
	CHECK(tp->conn_live > 0);
	tp->conn_live--;
	atomic_fetch_sub_explicit(&tp->node->conn_count, 1, memory_order_relaxed);
	if (tp->cfg->listener_max_connections)
		atomic_fetch_sub_explicit(&tp->node->listeners[c->listener].conns, 1,
		                          memory_order_relaxed);
	tp->st
	    ->conns_closed[c->close_reason < CLOSE_REASON_COUNT ? c->close_reason : CLOSE_UNSET]++;
	conn_free_memory(tp, c);
}

const char *conn_listener(const struct transport *tp, const struct conn *c)
{
	return c->listener < tp->node->listener_count ? tp->node->listeners[c->listener].name : "?";
}

unsigned conn_listener_kind(const struct transport *tp, const struct conn *c)
{
	return tp->node->listeners[c->listener].kind;
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

uint8_t *conn_out_reserve(struct conn *c, size_t need, uint64_t limit)
{
	if ((uint64_t)c->out_len + need > limit)
		return NULL;
	if (c->out_len + need <= c->out_cap)
		return c->out + c->out_len;
	size_t cap = c->out_cap ? c->out_cap : 512;
	while (cap < c->out_len + need)
		cap *= 2;
	uint8_t *n = realloc(c->out, cap);
	if (!n)
		return NULL;
	c->out = n;
	c->out_cap = (uint32_t)cap;
	return c->out + c->out_len;
}

bool conn_output_idle(const struct transport *tp, const struct conn *c)
{
	const struct ws_conn *x = conn_ws(tp, c);
	return c->out_len == 0 && !c->send_busy && !(x && x->wire_len > 0);
}

static void send_arm(struct transport *tp, struct conn *c)
{
	ring_send(tp->ring, c->fd, c->tx + c->tx_off, c->tx_len - c->tx_off,
	          op_pack(OP_SEND, c->slot, c->gen));
	c->send_busy = true;
	tp->st->sends++;
}

void conn_flush(struct transport *tp, struct conn *c)
{
	if (c->send_busy || c->fd < 0 || c->dialling)
		return; /* a dialling connection's tx holds its address (accept.c) */
	if (!c->tx && !layers_stage(tp, c))
		return; /* nothing to send */
	send_arm(tp, c);
}

void transport_flush_all(struct transport *tp)
{
	struct conn *c = tp->flush_list;
	tp->flush_list = NULL;
	while (c) {
		struct conn *next = c->next_flush;
		c->on_flush_list = false;
		conn_flush(tp, c);
		c = next;
	}
}

void transport_send_done(struct transport *tp, const struct completion *cqe)
{
	struct conn *c = conn_get(tp, op_slot(cqe->ud), op_gen(cqe->ud));
	if (!c)
		return;
	CHECK(c->send_busy && c->tx);
	c->send_busy = false;
	if (cqe->res < 0) {
		free(c->tx);
		c->tx = NULL;
		c->tx_len = c->tx_off = 0;
		if (!c->closing)
			conn_lost(tp, c, CLOSE_SOCKET_ERROR);
		c->out_len = 0; /* nothing more can be sent */
		if (tp->gates)
			gate_clear(&tp->gates[c->slot]);
		return;
	}
	tp->st->bytes_out += (uint64_t)cqe->res;
	c->tx_off += (uint32_t)cqe->res;
	if (c->tx_off < c->tx_len) {
		conn_flush(tp, c); /* short send: the rest goes next */
		return;
	}
	free(c->tx);
	c->tx = NULL;
	c->tx_len = c->tx_off = 0;
	/* TLS may hold ciphertext of its own (a close_notify, a ticket). */
	struct ws_conn *x = conn_ws(tp, c);
	if (c->out_len > 0 || conn_tls(tp, c) || (x && x->wire_len > 0))
		conn_flush(tp, c);
}

void conn_lost(struct transport *tp, struct conn *c, enum close_reason why)
{
	if (c->closing)
		return;
	if (c->close_reason == CLOSE_UNSET)
		c->close_reason = (uint8_t)why;
	const struct transport_ops *ops = conn_ops(tp, c);
	ops->lost(ops->ctx, c);
	CHECK(c->closing); /* the layer above closed it */
}

void conn_close(struct transport *tp, struct conn *c)
{
	if (c->closing)
		return;
	/* A handshake that ends without failing on its own (timeout, end of
	 * stream, shutdown) is a failed handshake too. Only on our listeners:
	 * the metric's reasons describe our clients, not servers we dialled. */
	if (conn_tls_handshaking(tp, c) && c->close_reason != CLOSE_TLS_HANDSHAKE &&
	    !conn_dialled(tp, c))
		tp->st->tls_failures[c->close_reason == CLOSE_CONNECT_TIMEOUT ? TLS_FAIL_TIMEOUT
		                                                              : TLS_FAIL_CLOSED]++;
	c->closing = true;
	c->close_began_ms = (uint32_t)*tp->now_ms;
	if (!c->on_close_list) {
		c->on_close_list = true;
		c->next_close = tp->close_list;
		tp->close_list = c;
	}
	conn_mark_flush(tp, c);
}

/*
 * A closing connection whose last bytes went: end the write side, so the
 * client reads a FIN after our last packet, and keep receiving, discarding
 * it all (recv_done hands a closing connection nothing), until the client
 * ends its side too. Bounded in time by the caller; in memory by nothing
 * kept. true: still lingering.
 */
static bool linger(struct transport *tp, struct conn *c)
{
	/* Not when the client is gone already or said it is going: after its
	 * DISCONNECT it sends nothing and we answer nothing [MQTT-3.14.4-1]. */
	if (c->fd < 0 || c->shut == CONN_SHUT_RDWR || c->close_reason == CLOSE_PEER_CLOSED ||
	    c->close_reason == CLOSE_SOCKET_ERROR || c->close_reason == CLOSE_CLIENT_DISCONNECT)
		return false;
	if (c->shut == CONN_SHUT_NONE) {
		shutdown(c->fd, SHUT_WR);
		c->shut = CONN_SHUT_WR;
	}
	if (c->recv_armed)
		return true;
	/* The receive ended: the client's end of stream or an error, or the
	 * buffer pool ran dry (-ENOBUFS). Look without waiting. */
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) {
		transport_recv_arm(tp, c);
		return true;
	}
	return false;
}

unsigned transport_reap(struct transport *tp, unsigned max, uint64_t stop_cut_ms, uint32_t grace_ms)
{
	/* A send still in flight owns c->tx, so we never free under it: past
	 * the grace period shutdown() makes it complete now. While the node
	 * stops, closing connections get the configured grace instead (the
	 * whole node exits within it). */
	bool stopping = stop_cut_ms != 0;
	uint64_t now = *tp->now_ms;
	uint64_t grace = stopping ? grace_ms : CLOSE_GRACE_MS;
	uint64_t linger_ms = grace < LINGER_MS ? grace : LINGER_MS;
	bool stop_over = stopping && now >= stop_cut_ms;
	unsigned reaped = 0;
	struct conn **pp = &tp->close_list;
	while (*pp && reaped < max) {
		struct conn *c = *pp;
		CHECK(c->closing && c->on_close_list);
		uint32_t closing_ms = (uint32_t)now - c->close_began_ms;
		if (c->on_flush_list) {
			/* Its last bytes wait for the send step (or, held for the
			 * journal, for a later one): not before they went. */
			pp = &c->next_close;
			continue;
		}
		if (c->send_busy || c->dialling) {
			/* The kernel owns tx (a send, or a connect's address):
			 * after the grace, shutdown() makes it complete now. */
			bool cut = stopping ? stop_over : closing_ms > grace;
			if (cut && c->shut != CONN_SHUT_RDWR) {
				shutdown(c->fd, SHUT_RDWR);
				c->shut = CONN_SHUT_RDWR;
			}
			pp = &c->next_close;
			continue;
		}
		if (closing_ms <= linger_ms && !stop_over && linger(tp, c)) {
			pp = &c->next_close;
			continue;
		}
		*pp = c->next_close;
		shutdown(c->fd, SHUT_RDWR); /* ends the multishot receive */
		close(c->fd);
		c->fd = -1;
		conn_reap(tp, c);
		reaped++;
	}
	return reaped;
}

/* c's output waits for the journal: remember to flush it when it moves. */
void conn_gated(struct transport *tp, struct conn *c)
{
	if (c->on_gate_list)
		return;
	if (tp->gated_len == tp->gated_cap) {
		uint32_t cap = tp->gated_cap ? tp->gated_cap * 2 : 64;
		struct slot_ref *n = realloc(tp->gated, cap * sizeof(*n));
		if (!n) {
			/* Without memory for the list it is flushed every turn
			 * instead, until the journal lets its bytes go. */
			conn_mark_flush(tp, c);
			return;
		}
		tp->gated = n;
		tp->gated_cap = cap;
	}
	c->on_gate_list = true;
	tp->gated[tp->gated_len++] = (struct slot_ref){c->slot, c->gen};
}

void transport_ungate(struct transport *tp)
{
	uint32_t n = tp->gated_len;
	tp->gated_len = 0;
	for (uint32_t i = 0; i < n; i++) {
		struct conn *c = conn_get(tp, tp->gated[i].slot, tp->gated[i].gen);
		if (!c)
			continue; /* reaped since */
		c->on_gate_list = false;
		conn_mark_flush(tp, c);
	}
}

void transport_rearm(struct transport *tp)
{
	uint64_t now = *tp->now_ms;
	if (!tp->stopping && now >= tp->accept_paused_until_ms) {
		tp->accept_paused_until_ms = 0;
		for (unsigned i = 0; i < tp->listen_count; i++)
			if (!tp->accept_armed[i] && tp->listen_fds[i] >= 0)
				transport_accept_arm(tp, i);
	}
	for (uint32_t i = 0; i < tp->rearm_len; i++) {
		struct conn *c = conn_get(tp, tp->rearm[i].slot, tp->rearm[i].gen);
		if (!c)
			continue; /* reaped since */
		c->on_rearm_list = false;
		if (!c->recv_armed && !c->closing)
			transport_recv_arm(tp, c);
	}
	tp->rearm_len = 0;
}

uint64_t transport_accept_wakeup_ms(const struct transport *tp)
{
	return tp->accept_paused_until_ms;
}
