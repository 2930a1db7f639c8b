/*
 * accept.c — connections coming in and bytes arriving: admission at accept
 * (the rate per address, listener and node limits, checked before a byte is
 * read), the back-off when descriptors run out, and multishot receives into
 * the ring's provided buffers. Only the owning worker's thread calls this.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#define ACCEPT_BACKOFF_MIN_MS 10    /* first pause of accepting when descriptors ran out */
#define ACCEPT_BACKOFF_MAX_MS 1000  /* longest pause */
#define ACCEPT_LOG_MS         10000 /* one line about failing accepts per this, with a count */

void transport_accept_arm(struct transport *tp, unsigned i)
{
	ring_accept(tp->ring, tp->listen_fds[i], op_pack(OP_ACCEPT, i, 0));
	tp->accept_armed[i] = true;
}

void transport_recv_arm(struct transport *tp, struct conn *c)
{
	ring_recv(tp->ring, c->fd, op_pack(OP_RECV, c->slot, c->gen));
	c->recv_armed = true;
}

void transport_start(struct transport *tp, struct ring *r)
{
	tp->ring = r;
	for (unsigned i = 0; i < tp->listen_count; i++)
		transport_accept_arm(tp, i);
}

/* An accept failed for want of descriptors or memory. Re-arming at once
 * would fail at once, forever (a spinning loop and a line per failure):
 * pause accepting on every listener, doubling the pause while it goes on,
 * and say so once per ACCEPT_LOG_MS with a count. Existing clients are
 * served meanwhile; waiting connections stay in the listen backlog until
 * a descriptor is free (conn_reap ends the pause at once). */
static void accept_pause(struct transport *tp, unsigned li, int err, bool still_armed)
{
	uint64_t now = *tp->now_ms;
	tp->st->accept_errors++;
	if (still_armed) /* the kernel keeps a multishot accept going: stop it */
		ring_cancel(tp->ring, op_pack(OP_ACCEPT, li, 0), op_pack(OP_NONE, 0, 0));
	if (tp->accept_paused_until_ms > now)
		return; /* another listener's failure within the same pause */
	uint32_t b = tp->accept_backoff_ms ? tp->accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
	tp->accept_backoff_ms = b < ACCEPT_BACKOFF_MAX_MS ? b : ACCEPT_BACKOFF_MAX_MS;
	tp->accept_paused_until_ms = now + tp->accept_backoff_ms;
	tp->accept_fails_unlogged++;
	if (now >= tp->accept_next_log_ms) {
		LOG_WARN("worker %u: accept on %s: %s (%u times since the last such line); "
		         "accepting pauses for up to %u ms at a time until descriptors are free, "
		         "connected clients are served",
		         tp->id, tp->node->listeners[li].name, strerror(err),
		         tp->accept_fails_unlogged, ACCEPT_BACKOFF_MAX_MS);
		tp->accept_fails_unlogged = 0;
		tp->accept_next_log_ms = now + ACCEPT_LOG_MS;
	}
}

static void peer_of(int fd, struct peer_addr *pa)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	memset(pa, 0, sizeof(*pa));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return;
	pa->family = (uint8_t)ss.ss_family;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		memcpy(pa->addr, &a->sin_addr, 4);
		pa->port = ntohs(a->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		memcpy(pa->addr, &a->sin6_addr, 16);
		pa->port = ntohs(a->sin6_port);
	}
}

void transport_accept_done(struct transport *tp, const struct completion *cqe)
{
	unsigned li = op_slot(cqe->ud);
	CHECK(li < tp->listen_count);
	if (!completion_more(cqe))
		tp->accept_armed[li] = false; /* re-armed at the end of the turn */
	if (cqe->res < 0) {
		/* Stopping shuts the listening socket: its accept ends with EINVAL. */
		if (cqe->res == -ECANCELED || tp->stopping)
			return;
		int e = -cqe->res;
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
			accept_pause(tp, li, e, completion_more(cqe));
			return;
		}
		LOG_WARN_RL(1, "worker %u: accept on %s: %s", tp->id, tp->node->listeners[li].name,
		            strerror(e));
		return;
	}
	tp->accept_backoff_ms = 0; /* descriptors again: the next pause starts short */
	int fd = cqe->res;
	if (tp->stopping) {
		close(fd);
		return;
	}
	/* The peer's address first: the rate limit is by address. Kept as 20
	 * bytes, formatted only when a line is logged. */
	struct peer_addr pa;
	peer_of(fd, &pa);
	struct listener *ln = &tp->node->listeners[li];
	const struct transport_ops *ops = &tp->uppers[ln->upper];
	if (ops->admit && !ops->admit(ops->ctx, &pa)) {
		close(fd); /* before reading a byte: a flood costs an accept */
		tp->st->conns_refused_rate++;
		LOG_WARN_RL(
		    1, "refused connections from one address over connect_rate_per_address %u/s",
		    tp->cfg->connect_rate_per_address);
		return;
	}
	if (tp->cfg->listener_max_connections &&
	    atomic_fetch_add_explicit(&ln->conns, 1, memory_order_relaxed) >=
	        tp->cfg->listener_max_connections) {
		atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		close(fd);
		tp->st->conns_refused_listener++;
		LOG_WARN_RL(1, "refused a connection: %s holds its maximum of %u", ln->name,
		            tp->cfg->listener_max_connections);
		return;
	}
	unsigned open = atomic_fetch_add_explicit(&tp->node->conn_count, 1, memory_order_relaxed);
	if (open >= tp->cfg->max_connections) {
		atomic_fetch_sub_explicit(&tp->node->conn_count, 1, memory_order_relaxed);
		if (tp->cfg->listener_max_connections)
			atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		close(fd); /* over the limit: refuse before reading a byte */
		tp->st->conns_refused++;
		LOG_WARN_RL(1, "refused a connection: the node holds its maximum of %u",
		            tp->cfg->max_connections);
		return;
	}
	/* A high-water mark for $SYS; the compare-exchange runs only when
	 * the mark moves. */
	unsigned max = atomic_load_explicit(&tp->node->conn_max, memory_order_relaxed);
	while (open + 1 > max &&
	       !atomic_compare_exchange_weak_explicit(&tp->node->conn_max, &max, open + 1,
	                                              memory_order_relaxed, memory_order_relaxed)) {
	}
	/* A TLS listener's connection gets its TLS state first: without it
	 * the connection cannot be served, so it is refused like one over the
	 * limit. The context is this turn's (tls.h). */
	uint8_t kind = ln->kind;
	bool tls = kind == LISTENER_MQTTS || kind == LISTENER_WSS;
	bool ws = kind == LISTENER_WS || kind == LISTENER_WSS;
	struct tls_conn *t =
	    tls ? tls_conn_new(tp->ssl_ctx, tp->cfg->tls_identity_as_username) : NULL;
	struct ws_conn *x = ws ? ws_conn_new(tp->cfg->ws_path, tp->cfg->max_packet_size) : NULL;
	struct conn *c = NULL;
	if ((tls && !t) || (ws && !x) || !(c = transport_conn_alloc(tp, ln->upper))) {
		atomic_fetch_sub_explicit(&tp->node->conn_count, 1, memory_order_relaxed);
		if (tp->cfg->listener_max_connections)
			atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		tls_conn_free(t);
		ws_conn_free(x);
		close(fd);
		LOG_WARN_RL(1, "refused a connection on %s: out of memory", ln->name);
		return;
	}
	if (tp->tls)
		tp->tls[c->slot] = t;
	if (tp->ws)
		tp->ws[c->slot] = x;
	int one = 1;
	/* Small writes must not wait for Nagle: latency is the point. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->listener = (uint8_t)li;
	c->peer = pa;
	tp->st->conns_accepted++;
	ops->opened(ops->ctx, c);
	transport_recv_arm(tp, c);
}

/* transport_dial, with TLS when t (taken). */
static struct conn *dial(struct transport *tp, unsigned li, const void *addr, uint32_t addr_len,
                         struct tls_conn *t)
{
	CHECK(li < tp->node->listener_count && (tp->node->listeners[li].kind == LISTENER_DIAL ||
	                                        tp->node->listeners[li].kind == LISTENER_BRIDGE));
	CHECK(addr_len <= sizeof(struct sockaddr_storage));
	const struct sockaddr *sa = addr;
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		tls_conn_free(t);
		errno = e;
		return NULL;
	}
	struct conn *c = transport_conn_alloc(tp, tp->node->listeners[li].upper);
	if (!c) {
		tls_conn_free(t);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	/* The ring reads the address when the connect is submitted, at the
	 * end of the turn: it waits in tx, which a connection that is not
	 * connected yet does not use for anything else (conn_flush and the
	 * reap leave a dialling connection alone). */
	struct sockaddr_storage *dst = malloc(sizeof(*dst));
	if (!dst) {
		tp->conns[c->slot] = NULL; /* never seen by anyone: give the slot back */
		tp->conn_free[tp->conn_free_len++] = c->slot;
		tp->conn_live--;
		free(c);
		tls_conn_free(t);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(dst, addr, addr_len);
	c->tx = (uint8_t *)dst;
	if (t)
		tp->tls[c->slot] = t; /* the table exists: transport_dial_tls */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* Dialled connections count like accepted ones: the reap undoes it. */
	atomic_fetch_add_explicit(&tp->node->conn_count, 1, memory_order_relaxed);
	if (tp->cfg->listener_max_connections)
		atomic_fetch_add_explicit(&tp->node->listeners[li].conns, 1, memory_order_relaxed);
	c->fd = fd;
	c->listener = (uint8_t)li;
	c->dialling = true;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = addr;
		c->peer.family = AF_INET;
		memcpy(c->peer.addr, &a->sin_addr, 4);
		c->peer.port = ntohs(a->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = addr;
		c->peer.family = AF_INET6;
		memcpy(c->peer.addr, &a->sin6_addr, 16);
		c->peer.port = ntohs(a->sin6_port);
	}
	ring_connect(tp->ring, fd, dst, addr_len, op_pack(OP_CONNECT, c->slot, c->gen));
	return c;
}

struct conn *transport_dial(struct transport *tp, unsigned li, const void *addr, uint32_t addr_len)
{
	return dial(tp, li, addr, addr_len, NULL);
}

struct conn *transport_dial_tls(struct transport *tp, unsigned li, const void *addr,
                                uint32_t addr_len, struct tls_conn *t)
{
	CHECK(t);
	if (!transport_tls_table(tp)) {
		tls_conn_free(t);
		errno = ENOMEM;
		return NULL;
	}
	return dial(tp, li, addr, addr_len, t);
}

void transport_dial_done(struct transport *tp, const struct completion *cqe)
{
	struct conn *c = conn_get(tp, op_slot(cqe->ud), op_gen(cqe->ud));
	if (!c)
		return;
	CHECK(c->dialling);
	c->dialling = false;
	free(c->tx); /* the address, read by now */
	c->tx = NULL;
	if (c->closing)
		return; /* its layer gave up on it meanwhile: reaped next */
	if (cqe->res < 0) {
		conn_lost(tp, c, CLOSE_SOCKET_ERROR);
		return;
	}
	tp->st->conns_accepted++;
	const struct transport_ops *ops = conn_ops(tp, c);
	ops->opened(ops->ctx, c);
	/* A TLS client speaks first: the ClientHello goes out with this
	 * turn's flush, ahead of anything the layer wrote (which waits for the
	 * handshake, layers_stage). After opened(): a failure reaches a layer
	 * that has set up its part, as every later one does. */
	if (!c->closing && conn_tls(tp, c) && !layers_tls_start(tp, c))
		return;
	if (!c->closing)
		transport_recv_arm(tp, c);
	if (c->out_len > 0)
		conn_mark_flush(tp, c); /* what its layer wrote while it was connecting */
}

void transport_recv_done(struct transport *tp, const struct completion *cqe)
{
	struct conn *c = conn_get(tp, op_slot(cqe->ud), op_gen(cqe->ud));
	bool more = completion_more(cqe);
	if (cqe->res > 0) {
		unsigned bid = completion_buf(cqe);
		if (c && !c->closing) {
			tp->st->bytes_in += (uint64_t)cqe->res;
			layers_received(tp, c, ring_buf(tp->ring, bid), (uint32_t)cqe->res);
		}
		ring_buf_return(tp->ring, bid); /* the connection copied what it keeps */
	}
	if (!c)
		return; /* stale: the connection is gone */
	if (!more)
		c->recv_armed = false;
	if (c->closing)
		return;
	if (cqe->res == 0) {
		conn_lost(tp, c, CLOSE_PEER_CLOSED); /* end of stream without DISCONNECT */
	} else if (cqe->res == -ENOBUFS) {
		/* Pool dry: re-arm next turn, after this turn's buffers went back. */
		if (!c->on_rearm_list) {
			if (tp->rearm_len == tp->rearm_cap) {
				uint32_t cap = tp->rearm_cap ? tp->rearm_cap * 2 : 64;
				struct slot_ref *n = realloc(tp->rearm, cap * sizeof(*n));
				if (!n) {
					conn_lost(tp, c, CLOSE_SERVER_ERROR);
					return;
				}
				tp->rearm = n;
				tp->rearm_cap = cap;
			}
			c->on_rearm_list = true;
			tp->rearm[tp->rearm_len++] = (struct slot_ref){c->slot, c->gen};
		}
	} else if (cqe->res < 0) {
		conn_lost(tp, c, CLOSE_SOCKET_ERROR);
	} else if (!more) {
		transport_recv_arm(tp, c); /* multishot ended on its own: re-arm */
	}
}
