/*
 * worker.c — one worker thread: its io_uring ring and its loop (DESIGN.md
 * "Workers"; CONVENTIONS.md "The worker loop"). Only this worker's thread
 * runs this code on its struct worker, apart from `stopping`, which the main
 * thread sets.
 *
 * Ring flags: SINGLE_ISSUER because only this thread submits; DEFER_TASKRUN
 * so completions are processed when we ask (once per turn) rather than by
 * interrupting us; a CQ twice the SQ because multishot receives can post many
 * completions per submission.
 *
 * Receives are multishot into a provided-buffer ring: an idle connection
 * holds no receive buffer. When the pool runs dry a receive ends with
 * -ENOBUFS and is re-armed next turn, after this turn's buffers went back.
 */
#include "loop/worker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/op.h"
#include "transport/tls.h"
#include "auth/verify.h"

#define RING_ENTRIES 4096
#define BUF_GROUP    1
/* Receive buffers per worker (a power of two) and their size: 2 MiB per
 * worker. The kernel cycles through all of them, so all become resident: a
 * fixed cost per worker, paid whatever the connection count. A buffer goes
 * back to the ring as soon as its completion is handled, so a few hundred
 * serve thousands of connections; when they run out a receive ends with
 * -ENOBUFS and is re-armed next turn. */
#ifndef STARLING_RECV_BUFFERS /* tests build a variant with a tiny pool */
#define STARLING_RECV_BUFFERS 512
#endif
#define BUF_COUNT       STARLING_RECV_BUFFERS
#define BUF_SIZE        4096
#define MBOX_BATCH      16384 /* messages drained from one mailbox per turn (its capacity) */
#define SWEEP_MS        250   /* timer resolution: keep alive, connect timeout, expiry */
#define CLOSE_GRACE_MS  2000  /* a closing connection gets this long to flush */
#define LINGER_MS       2000  /* and, from the same start, at most this long to drain */
#define STALL_WINDOW_MS 10000 /* the stall maxima cover one to two of these */
/* Work per loop turn is bounded so that a burst of one kind (a wave of
 * disconnects: thousands of end-of-stream completions, closes and index
 * deltas) is spread over turns, each of which sends what the others are
 * owed; a bystander waits for one bounded turn, not for the whole burst. */
#define CQE_TURN_MAX          1024  /* completions handled per turn; the rest wait in the CQ */
#define REAP_TURN_MAX         512   /* connections closed (two syscalls each) per turn */
#define ACCEPT_BACKOFF_MIN_MS 10    /* first pause of accepting when descriptors ran out */
#define ACCEPT_BACKOFF_MAX_MS 1000  /* longest pause */
#define ACCEPT_LOG_MS         10000 /* one line about failing accepts per this, with a count */
#define DROP_REPORT_MS        10000 /* how often dropped messages are reported */
/* Message bytes in transit toward one worker (its mailbox from us plus our
 * overflow for it) past which QoS 0 deliveries are dropped and counted
 * instead of kept: QoS 0 promises nothing and memory must stay bounded when
 * a worker falls behind. Other mail is kept (losing a subscription delta
 * would split the index). */
#define TRANSIT_QOS0_BYTES_MAX (16u << 20)

struct io_uring_sqe *worker_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	if (!sqe) {
		/* The SQ is full: hand it to the kernel and take a fresh one. */
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	if (!sqe) {
		LOG_ERROR("worker %u: submission queue stuck full", w->id);
		abort();
	}
	return sqe;
}

struct worker *worker_new(struct broker *b, uint16_t id)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->b = b;
	w->cfg = b->cfg;
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	struct verify_pool *vp = auth_verifier(b->auth);
	w->verify_fd = vp ? verify_event_fd(vp, id) : -1; /* the pool owns it */
	w->subs = subidx_new();
	w->retained = retain_new();
	w->overflow = calloc(b->worker_count, sizeof(*w->overflow));
	w->wake_pending = calloc(b->worker_count, sizeof(*w->wake_pending));
	if (id == 0 && b->cfg->sys_interval_s > 0)
		w->sys = sys_state_new();
	if (w->stop_fd < 0 || !w->subs || !w->retained || !w->overflow || !w->wake_pending ||
	    (id == 0 && b->cfg->sys_interval_s > 0 && !w->sys)) {
		worker_free(w);
		return NULL;
	}
	atomic_init(&w->stopping, false);
	return w;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	for (uint32_t i = 0; i < w->conn_cap; i++) {
		struct conn *c = w->conns[i];
		if (c) {
			if (c->fd >= 0)
				close(c->fd);
			free(c->rx);
			free(c->out);
			free(c->tx);
			free(c);
		}
		if (w->tls)
			tls_conn_free(w->tls[i]);
		if (w->ws)
			ws_conn_free(w->ws[i]);
	}
	free(w->tls);
	free(w->ws);
	for (uint32_t i = 0; i < w->sess_cap; i++)
		session_free(w->sess[i]);
	free(w->conns);
	free(w->conn_gens);
	free(w->conn_free);
	free(w->sess);
	free(w->sess_gens);
	free(w->sess_moved);
	free(w->sess_free);
	if (w->overflow) {
		for (unsigned i = 0; i < w->b->worker_count; i++)
			free(w->overflow[i].items);
		free(w->overflow);
	}
	free(w->wake_pending);
	for (uint32_t i = 0; i < w->rq_len; i++)
		sub_delta_unref(w->rq[i]);
	free(w->rq);
	free(w->rearm);
	free(w->resume);
	free(w->match_buf);
	subidx_free(w->subs);
	retain_free(w->retained);
	sys_state_free(w->sys);
	for (unsigned i = 0; i < w->listen_count; i++)
		if (w->listen_fds[i] >= 0)
			close(w->listen_fds[i]);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	if (w->ring.ring_fd > 0)
		io_uring_queue_exit(&w->ring);
	if (w->br && w->br != MAP_FAILED)
		munmap(w->br, w->buf_count * sizeof(struct io_uring_buf));
	if (w->bufs)
		munmap(w->bufs, (size_t)w->buf_count * w->buf_size);
	free(w);
}

static int ring_setup(struct worker *w)
{
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
	          IORING_SETUP_SUBMIT_ALL;
	p.cq_entries = RING_ENTRIES * 4;
	int ret = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	if (ret < 0) {
		/* Older kernels: the same ring without the deferred task run. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		ret = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	}
	if (ret < 0) {
		LOG_ERROR("worker %u: io_uring setup failed: %s", w->id, strerror(-ret));
		return -1;
	}

	w->buf_count = BUF_COUNT;
	w->buf_size = BUF_SIZE;
	size_t ring_bytes = w->buf_count * sizeof(struct io_uring_buf);
	w->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	/* Populated now: the kernel cycles through every buffer, so all of it
	 * becomes resident anyway; committing it at start keeps page faults off
	 * the receive path and makes RSS growth mean per-connection cost. */
	w->bufs = mmap(NULL, (size_t)w->buf_count * w->buf_size, PROT_READ | PROT_WRITE,
	               MAP_ANONYMOUS | MAP_PRIVATE | MAP_POPULATE, -1, 0);
	if (w->br == MAP_FAILED || w->bufs == MAP_FAILED) {
		w->bufs = NULL;
		LOG_ERROR("worker %u: no memory for receive buffers", w->id);
		return -1;
	}
	struct io_uring_buf_reg reg = {
	    .ring_addr = (unsigned long)w->br, .ring_entries = w->buf_count, .bgid = BUF_GROUP};
	ret = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (ret < 0) {
		LOG_ERROR("worker %u: provided buffer ring: %s", w->id, strerror(-ret));
		return -1;
	}
	io_uring_buf_ring_init(w->br);
	int mask = io_uring_buf_ring_mask(w->buf_count);
	for (unsigned i = 0; i < w->buf_count; i++)
		io_uring_buf_ring_add(w->br, w->bufs + (size_t)i * w->buf_size, w->buf_size,
		                      (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(w->br, (int)w->buf_count);
	return 0;
}

static void buf_return(struct worker *w, unsigned bid)
{
	io_uring_buf_ring_add(w->br, w->bufs + (size_t)bid * w->buf_size, w->buf_size,
	                      (unsigned short)bid, io_uring_buf_ring_mask(w->buf_count), 0);
	io_uring_buf_ring_advance(w->br, 1);
}

static void accept_arm(struct worker *w, unsigned i)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_multishot_accept(sqe, w->listen_fds[i], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, op_pack(OP_ACCEPT, i, 0));
	w->accept_armed[i] = true;
}

static void recv_arm(struct worker *w, struct conn *c)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BUF_GROUP;
	io_uring_sqe_set_data64(sqe, op_pack(OP_RECV, c->slot, c->gen));
	c->recv_armed = true;
}

static void verify_arm(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->verify_fd, &w->verify_buf, sizeof(w->verify_buf), 0);
	io_uring_sqe_set_data64(sqe, op_pack(OP_VERIFY, 0, 0));
}

/* Password verdicts arrived: each waiting connection reads its CONNECT
 * again, this time with the verdict. */
static void verify_done(struct worker *w, struct io_uring_cqe *cqe)
{
	struct verify_result r[64];
	unsigned n;
	struct verify_pool *vp = auth_verifier(w->b->auth);
	while ((n = verify_take(vp, w->id, r, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct conn *c = conn_get(w, r[i].slot, r[i].gen);
			if (!c || c->state != CONN_WAIT_AUTH)
				continue; /* closed meanwhile */
			c->auth = r[i].ok ? CONN_AUTH_PASSED : CONN_AUTH_FAILED;
			c->state = CONN_NEW;
			conn_want_resume(w, c); /* reads its CONNECT again */
		}
	}
	if (cqe->res < 0 && cqe->res != -ECANCELED)
		LOG_WARN("worker %u: password verdicts: %s", w->id, strerror(-cqe->res));
	if (!atomic_load_explicit(&w->stopping, memory_order_relaxed))
		verify_arm(w);
}

static void stop_arm(struct worker *w)
{
	struct io_uring_sqe *sqe = worker_sqe(w);
	io_uring_prep_read(sqe, w->stop_fd, &w->stop_buf, sizeof(w->stop_buf), 0);
	io_uring_sqe_set_data64(sqe, op_pack(OP_STOP, 0, 0));
}

/* A slot for a new connection; the table grows up to the node's limit. */
static struct conn *conn_alloc(struct worker *w)
{
	if (w->conn_free_len == 0) {
		uint32_t cap = w->conn_cap ? w->conn_cap * 2 : 1024;
		struct conn **c = realloc(w->conns, cap * sizeof(*c));
		if (c)
			w->conns = c;
		uint32_t *g = realloc(w->conn_gens, cap * sizeof(*g));
		if (g)
			w->conn_gens = g;
		uint32_t *f = realloc(w->conn_free, cap * sizeof(*f));
		if (f)
			w->conn_free = f;
		struct rearm *r = realloc(w->resume, cap * sizeof(*r));
		if (r)
			w->resume = r;
		struct tls_conn **t = NULL;
		if (w->b->tls) {
			t = realloc(w->tls, cap * sizeof(*t));
			if (t)
				w->tls = t;
		}
		bool has_ws = w->cfg->ws_listen_count + w->cfg->wss_listen_count > 0;
		struct ws_conn **x = NULL;
		if (has_ws) {
			x = realloc(w->ws, cap * sizeof(*x));
			if (x)
				w->ws = x;
		}
		if (!c || !g || !f || !r || (w->b->tls && !t) || (has_ws && !x))
			return NULL;
		for (uint32_t i = w->conn_cap; i < cap; i++) {
			w->conns[i] = NULL;
			w->conn_gens[i] = 1;
			if (w->tls)
				w->tls[i] = NULL;
			if (w->ws)
				w->ws[i] = NULL;
		}
		for (uint32_t i = cap; i > w->conn_cap; i--)
			w->conn_free[w->conn_free_len++] = i - 1;
		w->conn_cap = cap;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slot = w->conn_free[--w->conn_free_len];
	c->gen = w->conn_gens[c->slot];
	w->conns[c->slot] = c;
	w->conn_live++;
	return c;
}

struct conn *conn_get(struct worker *w, uint32_t slot, uint32_t gen)
{
	if (slot >= w->conn_cap)
		return NULL;
	struct conn *c = w->conns[slot];
	return c && (c->gen & OP_GEN_MASK) == (gen & OP_GEN_MASK) ? c : NULL;
}

/* Give a slot back; its next user gets a new generation. */
void conn_reap(struct worker *w, struct conn *c)
{
	assert(!c->on_resume_list);    /* the resume step ran before the reap */
	w->accept_paused_until_ms = 0; /* a descriptor is free (or soon): accept again */
	w->conns[c->slot] = NULL;
	w->conn_gens[c->slot] = (c->gen + 1) & OP_GEN_MASK;
	if (w->conn_gens[c->slot] == 0)
		w->conn_gens[c->slot] = 1;
	w->conn_free[w->conn_free_len++] = c->slot;
	w->conn_live--;
	atomic_fetch_sub_explicit(&w->b->conn_count, 1, memory_order_relaxed);
	if (w->cfg->listener_max_connections)
		atomic_fetch_sub_explicit(&w->b->listeners[c->listener].conns, 1,
		                          memory_order_relaxed);
	w->st.conns_closed[c->close_reason < CLOSE_REASON_COUNT ? c->close_reason : CLOSE_UNSET]++;
	if (w->tls) {
		tls_conn_free(w->tls[c->slot]);
		w->tls[c->slot] = NULL;
	}
	if (w->ws) {
		ws_conn_free(w->ws[c->slot]);
		w->ws[c->slot] = NULL;
	}
	conn_rx_release(w, c);
	free(c->out);
	free(c->tx);
	if (c->aliases) {
		alias_out_free(c->aliases->out);
		if (c->aliases->in)
			for (unsigned i = 0; i <= w->cfg->topic_alias_max; i++)
				free(c->aliases->in[i]);
		free(c->aliases->in);
		free(c->aliases);
	}
	free(c);
}

/* An accept failed for want of descriptors or memory. Re-arming at once
 * would fail at once, forever (a spinning loop and a line per failure):
 * pause accepting on every listener, doubling the pause while it goes on,
 * and say so once per ACCEPT_LOG_MS with a count. Existing clients are
 * served meanwhile; waiting connections stay in the listen backlog until
 * a descriptor is free (conn_reap ends the pause at once). */
static void accept_pause(struct worker *w, unsigned li, int err, bool still_armed)
{
	w->st.accept_errors++;
	if (still_armed) { /* the kernel keeps a multishot accept going: stop it */
		struct io_uring_sqe *sqe = worker_sqe(w);
		io_uring_prep_cancel64(sqe, op_pack(OP_ACCEPT, li, 0), 0);
		io_uring_sqe_set_data64(sqe, op_pack(OP_NONE, 0, 0));
	}
	if (w->accept_paused_until_ms > w->now_ms)
		return; /* another listener's failure within the same pause */
	uint32_t b = w->accept_backoff_ms ? w->accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
	w->accept_backoff_ms = b < ACCEPT_BACKOFF_MAX_MS ? b : ACCEPT_BACKOFF_MAX_MS;
	w->accept_paused_until_ms = w->now_ms + w->accept_backoff_ms;
	w->accept_fails_unlogged++;
	if (w->now_ms >= w->accept_next_log_ms) {
		LOG_WARN("worker %u: accept on %s: %s (%u times since the last such line); "
		         "accepting pauses for up to %u ms at a time until descriptors are free, "
		         "connected clients are served",
		         w->id, w->b->listeners[li].name, strerror(err), w->accept_fails_unlogged,
		         ACCEPT_BACKOFF_MAX_MS);
		w->accept_fails_unlogged = 0;
		w->accept_next_log_ms = w->now_ms + ACCEPT_LOG_MS;
	}
}

static void accept_done(struct worker *w, struct io_uring_cqe *cqe)
{
	unsigned li = op_slot(cqe->user_data);
	if (!(cqe->flags & IORING_CQE_F_MORE))
		w->accept_armed[li] = false; /* re-armed at the end of the turn */
	if (cqe->res < 0) {
		/* Stopping shuts the listening socket: its accept ends with EINVAL. */
		if (cqe->res == -ECANCELED ||
		    atomic_load_explicit(&w->stopping, memory_order_relaxed))
			return;
		int e = -cqe->res;
		if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
			accept_pause(w, li, e, cqe->flags & IORING_CQE_F_MORE);
			return;
		}
		LOG_WARN_RL(1, "worker %u: accept on %s: %s", w->id, w->b->listeners[li].name,
		            strerror(e));
		return;
	}
	w->accept_backoff_ms = 0; /* descriptors again: the next pause starts short */
	int fd = cqe->res;
	if (atomic_load_explicit(&w->stopping, memory_order_relaxed)) {
		close(fd);
		return;
	}
	/* The peer's address first: the rate limit is by address. Kept as 20
	 * bytes, formatted only when a line is logged. */
	struct peer_addr pa = {0};
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		pa.family = (uint8_t)ss.ss_family;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			memcpy(pa.addr, &a->sin_addr, 4);
			pa.port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			memcpy(pa.addr, &a->sin6_addr, 16);
			pa.port = ntohs(a->sin6_port);
		}
	}
	if (!auth_accept_allowed(w->b->auth, pa.addr, peer_addr_len(&pa), w->now_ms)) {
		close(fd); /* before reading a byte: a flood costs an accept */
		w->st.conns_refused_rate++;
		LOG_WARN_RL(
		    1, "refused connections from one address over connect_rate_per_address %u/s",
		    w->cfg->connect_rate_per_address);
		return;
	}
	struct listener *ln = &w->b->listeners[li];
	if (w->cfg->listener_max_connections &&
	    atomic_fetch_add_explicit(&ln->conns, 1, memory_order_relaxed) >=
	        w->cfg->listener_max_connections) {
		atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		close(fd);
		w->st.conns_refused_listener++;
		LOG_WARN_RL(1, "refused a connection: %s holds its maximum of %u", ln->name,
		            w->cfg->listener_max_connections);
		return;
	}
	unsigned open = atomic_fetch_add_explicit(&w->b->conn_count, 1, memory_order_relaxed);
	if (open >= w->cfg->max_connections) {
		atomic_fetch_sub_explicit(&w->b->conn_count, 1, memory_order_relaxed);
		if (w->cfg->listener_max_connections)
			atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		close(fd); /* over the limit: refuse before reading a byte */
		w->st.conns_refused++;
		LOG_WARN_RL(1, "refused a connection: the node holds its maximum of %u",
		            w->cfg->max_connections);
		return;
	}
	/* A high-water mark for $SYS; the compare-exchange runs only when
	 * the mark moves. */
	unsigned max = atomic_load_explicit(&w->b->conn_max, memory_order_relaxed);
	while (open + 1 > max &&
	       !atomic_compare_exchange_weak_explicit(&w->b->conn_max, &max, open + 1,
	                                              memory_order_relaxed, memory_order_relaxed)) {
	}
	/* A TLS listener's connection gets its TLS state first: without it
	 * the connection cannot be served, so it is refused like one over the
	 * limit. The context is this turn's (tls.h). */
	uint8_t kind = w->b->listeners[li].kind;
	struct tls_conn *t = NULL;
	struct ws_conn *x = NULL;
	if (kind == LISTENER_MQTTS || kind == LISTENER_WSS)
		t = tls_conn_new(w->ssl_ctx, w->cfg->tls_identity_as_username);
	if (kind == LISTENER_WS || kind == LISTENER_WSS)
		x = ws_conn_new(w->cfg->ws_path, w->cfg->max_packet_size);
	struct conn *c = NULL;
	if (((kind == LISTENER_MQTTS || kind == LISTENER_WSS) && !t) ||
	    ((kind == LISTENER_WS || kind == LISTENER_WSS) && !x) || !(c = conn_alloc(w))) {
		atomic_fetch_sub_explicit(&w->b->conn_count, 1, memory_order_relaxed);
		if (w->cfg->listener_max_connections)
			atomic_fetch_sub_explicit(&ln->conns, 1, memory_order_relaxed);
		tls_conn_free(t);
		ws_conn_free(x);
		close(fd);
		LOG_WARN_RL(1, "refused a connection on %s: out of memory",
		            w->b->listeners[li].name);
		return;
	}
	if (w->tls)
		w->tls[c->slot] = t;
	if (w->ws)
		w->ws[c->slot] = x;
	int one = 1;
	/* Small writes must not wait for Nagle: latency is the point. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->listener = (uint8_t)li;
	c->state = CONN_NEW;
	c->client_receive_max = 65535;
	c->deadline_ms = w->now_ms + w->cfg->connect_timeout_ms;
	c->peer = pa;
	w->st.conns_accepted++;
	recv_arm(w, c);
}

static void recv_done(struct worker *w, struct io_uring_cqe *cqe)
{
	struct conn *c = conn_get(w, op_slot(cqe->user_data), op_gen(cqe->user_data));
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (cqe->res > 0) {
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (c && c->state != CONN_CLOSING) {
			w->st.bytes_in += (uint64_t)cqe->res;
			conn_received(w, c, w->bufs + (size_t)bid * w->buf_size,
			              (uint32_t)cqe->res);
		}
		buf_return(w, bid); /* the connection copied what it keeps */
	}
	if (!c)
		return; /* stale: the connection is gone */
	if (!more)
		c->recv_armed = false;
	if (c->state == CONN_CLOSING)
		return;
	if (cqe->res == 0) {
		c->close_reason = CLOSE_PEER_CLOSED; /* end of stream without DISCONNECT */
		conn_close(w, c, MQTT_RC_SUCCESS, true);
	} else if (cqe->res == -ENOBUFS) {
		/* Pool dry: re-arm next turn, after this turn's buffers went back. */
		if (!c->on_rearm_list) {
			if (w->rearm_len == w->rearm_cap) {
				uint32_t cap = w->rearm_cap ? w->rearm_cap * 2 : 64;
				struct rearm *n = realloc(w->rearm, cap * sizeof(*n));
				if (!n) {
					conn_close(w, c, MQTT_RC_SERVER_BUSY, true);
					return;
				}
				w->rearm = n;
				w->rearm_cap = cap;
			}
			c->on_rearm_list = true;
			w->rearm[w->rearm_len++] = (struct rearm){c->slot, c->gen};
		}
	} else if (cqe->res < 0) {
		c->close_reason = CLOSE_SOCKET_ERROR;
		conn_close(w, c, MQTT_RC_SUCCESS, true);
	} else if (!more) {
		recv_arm(w, c); /* multishot ended on its own: re-arm */
	}
}

static void send_done(struct worker *w, struct io_uring_cqe *cqe)
{
	struct conn *c = conn_get(w, op_slot(cqe->user_data), op_gen(cqe->user_data));
	if (!c)
		return;
	c->send_busy = false;
	if (cqe->res < 0) {
		free(c->tx);
		c->tx = NULL;
		c->tx_len = c->tx_off = 0;
		if (c->state != CONN_CLOSING) {
			c->close_reason = CLOSE_SOCKET_ERROR;
			conn_close(w, c, MQTT_RC_SUCCESS, true);
		}
		c->out_len = 0; /* nothing more can be sent */
		return;
	}
	w->st.bytes_out += (uint64_t)cqe->res;
	c->tx_off += (uint32_t)cqe->res;
	if (c->tx_off < c->tx_len) {
		conn_flush(w, c); /* short send: the rest goes next */
		return;
	}
	free(c->tx);
	c->tx = NULL;
	c->tx_len = c->tx_off = 0;
	/* TLS may hold ciphertext of its own (a close_notify, a ticket). */
	struct ws_conn *x = conn_ws(w, c);
	if (c->out_len > 0 || conn_tls(w, c) || (x && x->wire_len > 0))
		conn_flush(w, c);
}

/* Handle up to max messages from one worker's mailbox; returns how many. */
static unsigned drain_one(struct worker *w, struct mbox *mb, unsigned max)
{
	struct mbox_msg batch[64];
	unsigned total = 0, n;
	uint64_t bytes = 0;
	while (total < max && (n = mbox_pop(mb, batch, max - total < 64 ? max - total : 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			bytes += batch[i].bytes;
			mbox_dispatch(w, &batch[i]);
		}
		total += n;
	}
	/* Only this thread writes it: a plain add, published once per batch. */
	if (bytes)
		atomic_store_explicit(
		    &mb->consumed_bytes,
		    atomic_load_explicit(&mb->consumed_bytes, memory_order_relaxed) + bytes,
		    memory_order_release);
	return total;
}

static void drain_mailboxes(struct worker *w)
{
	unsigned n = w->b->worker_count;
	uint64_t depth = 0;
	for (unsigned from = 0; from < n; from++)
		if (w->b->mboxes[from * n + w->id])
			depth += drain_one(w, w->b->mboxes[from * n + w->id], MBOX_BATCH);
	if (depth > w->depth_max[0])
		w->depth_max[0] = depth;
	if (w->rq_len == 0)
		return;
	/* Retained lookups wait: first everything already in every mailbox
	 * (up to what is there now, so the work is bounded), then the answers
	 * (see retained_defer in route.c for why). */
	for (unsigned from = 0; from < n; from++) {
		struct mbox *mb = w->b->mboxes[from * n + w->id];
		if (mb)
			drain_one(w, mb, mbox_available(mb));
	}
	uint32_t len = w->rq_len;
	for (uint32_t i = 0; i < len; i++)
		retained_answer(w, w->rq[i]);
	memmove(w->rq, w->rq + len, (w->rq_len - len) * sizeof(*w->rq));
	w->rq_len -= len;
}

/* Push what did not fit last time, then wake every worker we wrote to. */
static void flush_mailboxes(struct worker *w)
{
	for (unsigned to = 0; to < w->b->worker_count; to++) {
		struct mbox_overflow *o = &w->overflow[to];
		if (o->len > 0) {
			struct mbox *mb = w->b->mboxes[w->id * w->b->worker_count + to];
			uint32_t i = 0;
			while (i < o->len && mbox_push(mb, &o->items[i]))
				i++;
			memmove(o->items, o->items + i, (o->len - i) * sizeof(*o->items));
			o->len -= i;
			if (i > 0)
				w->wake_pending[to] = true;
		}
		if (w->wake_pending[to]) {
			w->wake_pending[to] = false;
			struct io_uring_sqe *sqe = worker_sqe(w);
			io_uring_prep_msg_ring(sqe, w->b->workers[to]->ring.ring_fd, 0,
			                       op_pack(OP_WAKE, w->id, 0), 0);
			sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
			io_uring_sqe_set_data64(sqe, op_pack(OP_NONE, 0, 0));
		}
	}
}

void mbox_send(struct worker *w, uint16_t to, const struct mbox_msg *m)
{
	struct mbox_overflow *o = &w->overflow[to];
	struct mbox *mb = w->b->mboxes[w->id * w->b->worker_count + to];
	if (m->kind == MB_DELIVER && m->qos == 0) {
		uint64_t done = atomic_load_explicit(&mb->consumed_bytes, memory_order_acquire);
		if (o->sent_bytes - done > TRANSIT_QOS0_BYTES_MAX) {
			msg_unref(m->ptr); /* that worker is behind: QoS 0 gives way */
			w->st.drops_transit++;
			return;
		}
	}
	o->sent_bytes += m->bytes;
	if (o->len == 0 && mbox_push(mb, m)) {
		w->wake_pending[to] = true;
		return;
	}
	/* Full: keep order behind what is already waiting. */
	w->st.mbox_overflows++;
	if (o->len == o->cap) {
		uint32_t cap = o->cap ? o->cap * 2 : 256;
		struct mbox_msg *n = realloc(o->items, cap * sizeof(*n));
		if (!n) {
			LOG_ERROR("worker %u: mailbox overflow to %u: out of memory", w->id, to);
			abort();
		}
		o->items = n;
		o->cap = cap;
	}
	o->items[o->len++] = *m;
}

/* Deadlines of connections and sessions, once per SWEEP_MS. */
static void sweep(struct worker *w)
{
	for (uint32_t i = 0; i < w->conn_cap; i++) {
		struct conn *c = w->conns[i];
		if (!c)
			continue;
		if (c->state == CONN_CLOSING)
			continue;
		if (c->state == CONN_WAIT_AUTH && w->now_ms < c->deadline_ms + VERIFY_ANSWER_MS)
			continue; /* its password check is queued, not stalled (verify.h) */
		uint32_t rx_limit_ms = w->cfg->packet_receive_timeout_ms;
		if (rx_limit_ms && c->state == CONN_ACTIVE && c->rx_len > 0 &&
		    (uint32_t)w->now_ms - c->rx_since_ms > rx_limit_ms) {
			/* Keep alive 0 (or a long one) leaves a begun packet
			 * unbounded in time: its bytes stay pinned meanwhile. */
			w->st.partial_timeouts++;
			LOG_INFO_RL(LOG_CLIENT_RL,
			            "closing %s (%s): a packet not finished within "
			            "packet_receive_timeout_ms %u (%u bytes of it received)",
			            conn_peer(c), c->sess ? c->sess->client_id : "?", rx_limit_ms,
			            c->rx_len);
			conn_close(w, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, true);
			continue;
		}
		if (c->deadline_ms && w->now_ms >= c->deadline_ms) {
			if (conn_tls_handshaking(w, c)) {
				/* connect_timeout_ms covers the handshake too: a client
				 * that stalls in it holds a slot like one that never
				 * sends CONNECT. */
				LOG_INFO_RL(
				    LOG_CLIENT_RL,
				    "closing %s on %s: TLS handshake not finished within %u ms",
				    conn_peer(c), conn_listener(w, c), w->cfg->connect_timeout_ms);
				c->close_reason = CLOSE_CONNECT_TIMEOUT;
				conn_close(w, c, MQTT_RC_SUCCESS, false);
			} else if (c->state == CONN_NEW || c->state == CONN_WAIT_AUTH) {
				LOG_INFO_RL(LOG_CLIENT_RL, "closing %s: no CONNECT within %u ms",
				            conn_peer(c), w->cfg->connect_timeout_ms);
				c->close_reason = CLOSE_CONNECT_TIMEOUT;
				conn_close(w, c, MQTT_RC_SUCCESS, false);
			} else {
				LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): keep alive timeout",
				            conn_peer(c), c->sess ? c->sess->client_id : "?");
				conn_close(w, c, MQTT_RC_KEEP_ALIVE_TIMEOUT, true);
			}
		}
	}
	uint64_t online = 0, offline = 0, queued = 0, queued_bytes = 0, inflight = 0;
	for (uint32_t i = 0; i < w->sess_cap; i++) {
		struct session *s = w->sess[i];
		if (!s) {
			sess_moved_expire(w, i); /* forwarding windows ride on it too */
			continue;
		}
		/* Gauges ride on this pass over every session (stats.h). */
		queued += s->q_len;
		queued_bytes += s->q_bytes;
		inflight += s->infl_count;
		if (s->online) {
			online++;
			continue;
		}
		offline++;
		if (s->will_at_ms && w->now_ms >= s->will_at_ms)
			will_publish(w, s);
		if (s->expires_at_ms && w->now_ms >= s->expires_at_ms) {
			if (s->will)
				will_publish(w, s); /* the session ends before the delay */
			sess_end(w, s);
		} else if (s->q_len > 0) {
			w->st.drops_expired += session_drop_expired(s, w->now_ms);
		}
	}
	w->st.sessions_online = online;
	w->st.sessions_offline = offline;
	w->st.queued_msgs = queued;
	w->st.queued_bytes = queued_bytes;
	w->st.inflight = inflight;
}

/* A new ACL: subscriptions it no longer allows are removed, as if the
 * client had unsubscribed (issue 5: "existing sessions' subscriptions are
 * re-checked"). The client is not told: MQTT has no packet for it. */
static void acl_recheck(struct worker *w)
{
	uint64_t removed = 0;
	for (uint32_t i = 0; i < w->sess_cap; i++) {
		struct session *s = w->sess[i];
		if (!s)
			continue;
		size_t ulen;
		const char *user = session_username(s, &ulen);
		struct mqtt_view cid = {(const uint8_t *)s->client_id, s->client_id_len};
		for (uint32_t k = 0; k < s->sub_count;) {
			struct mqtt_view f = {(const uint8_t *)s->subs[k].filter,
			                      s->subs[k].filter_len};
			if (auth_subscribe(w->acl, user, ulen, cid, f)) {
				k++;
				continue;
			}
			struct sub_entry se = {s->id, {0}};
			index_change(w, false, f, &se);
			/* Removing swaps the last one into k: look at k again. */
			session_sub_remove(s, f);
			removed++;
		}
	}
	if (removed)
		LOG_INFO("worker %u: the new ACL removed %llu subscriptions", w->id,
		         (unsigned long long)removed);
}

/* Make the counters visible to the ops thread and $SYS (stats.h). */
static void publish_stats(struct worker *w)
{
	struct worker_stats *st = &w->st;
	st->conns_current = w->conn_live;
	st->retained = retain_count(w->retained);
	st->retained_bytes = retain_bytes(w->retained);
	st->subscriptions = subidx_count(w->subs);
	st->shared_groups = subidx_group_count(w->subs);
	uint64_t backlog = 0;
	for (unsigned i = 0; i < w->b->worker_count; i++)
		backlog += w->overflow[i].len;
	st->mbox_backlog = backlog;
	if (w->now_ms >= w->stall_window_end_ms) {
		w->turn_max_ns[1] = w->turn_max_ns[0];
		w->depth_max[1] = w->depth_max[0];
		w->turn_max_ns[0] = w->depth_max[0] = 0;
		w->stall_window_end_ms = w->now_ms + STALL_WINDOW_MS;
	}
	st->loop_turn_max_ns =
	    w->turn_max_ns[0] > w->turn_max_ns[1] ? w->turn_max_ns[0] : w->turn_max_ns[1];
	st->mbox_depth_max = w->depth_max[0] > w->depth_max[1] ? w->depth_max[0] : w->depth_max[1];
	st->last_turn_ms = w->now_ms;
	stats_publish(&w->pub, st);
}

/* Drops are counted in /metrics; this line makes them visible to someone
 * reading only the log: one line per worker per period, and only when
 * something was dropped. */
static void report_drops(struct worker *w)
{
	struct worker_stats *s = &w->st, *l = &w->st_reported;
	uint64_t outbox = s->drops_outbox - l->drops_outbox;
	uint64_t oversize = s->drops_oversize - l->drops_oversize;
	uint64_t queue = s->drops_queue - l->drops_queue;
	uint64_t expired = s->drops_expired - l->drops_expired;
	uint64_t transit = s->drops_transit - l->drops_transit;
	if (outbox | oversize | queue | expired | transit)
		LOG_WARN("worker %u dropped in the last %us: %llu QoS 0 to slow readers (outbox "
		         "full), %llu QoS 0 to a worker that fell behind, %llu over a client's "
		         "maximum packet size, %llu to session queue limits, %llu expired",
		         w->id, DROP_REPORT_MS / 1000, (unsigned long long)outbox,
		         (unsigned long long)transit, (unsigned long long)oversize,
		         (unsigned long long)queue, (unsigned long long)expired);
	*l = *s;
}

/* SIGTERM (or the main thread's stop): stop accepting, publish the wills,
 * tell every client why it is closed, then let the loop flush and reap. */
static void begin_stop(struct worker *w)
{
	if (w->stop_phase != STOP_NONE)
		return; /* the stop event and the flag both lead here */
	w->stop_phase = STOP_WILLS;
	w->stop_began_ms = w->now_ms;
	for (unsigned i = 0; i < w->listen_count; i++) {
		if (w->listen_fds[i] >= 0) {
			shutdown(w->listen_fds[i], SHUT_RDWR); /* ends the multishot accept */
			close(w->listen_fds[i]);
			w->listen_fds[i] = -1;
		}
	}
	/* Without persistence every session ends with the process, and a
	 * session that ends publishes its will, delayed or not [MQTT-3.1.2-8,
	 * §3.1.3.2 Will Delay Interval]. Wills first, and connections stay
	 * open until subscribers here and on every other worker have them
	 * (stop_step), so none is lost to a DISCONNECT that came first. Online
	 * persistent sessions keep what their window could not take. */
	for (uint32_t i = 0; i < w->sess_cap; i++)
		if (w->sess[i] && w->sess[i]->will)
			will_publish(w, w->sess[i]);
}

/* Nothing is on its way to or from c: its session has nothing in flight or
 * queued, and its output went to the kernel. */
static bool conn_settled(const struct worker *w, const struct conn *c)
{
	const struct session *s = c->sess;
	if (c->state != CONN_ACTIVE || !s)
		return true; /* not yet a client: nothing owed */
	if (s->infl_count > 0 || s->q_len > 0)
		return false;
	const struct ws_conn *x = conn_ws(w, c);
	return c->out_len == 0 && !c->send_busy && !(x && x->wire_len > 0);
}

/* The shutdown's order (enum stop_phase), once per turn after the mailboxes
 * were flushed. Bounded by time: past half the grace the connections are
 * closed whatever is still owed. */
static void stop_step(struct worker *w)
{
	struct broker *b = w->b;
	bool late = w->now_ms >= w->stop_began_ms + w->cfg->shutdown_grace_ms / 2;
	if (w->stop_phase == STOP_WILLS) {
		bool queued = false;
		for (unsigned to = 0; to < b->worker_count; to++)
			queued |= w->overflow[to].len > 0;
		if (!queued || late) {
			atomic_fetch_add(&b->stop_wills_out, 1);
			w->stop_phase = STOP_SETTLE;
		}
	}
	if (w->stop_phase != STOP_SETTLE)
		return;
	if (!late) {
		/* Every worker's wills are in the mailboxes, ours are drained
		 * (a drain is bounded per turn: look), and every client has
		 * what it is owed. */
		if (atomic_load(&b->stop_wills_out) < b->worker_count)
			return;
		for (unsigned from = 0; from < b->worker_count; from++) {
			struct mbox *mb = b->mboxes[from * b->worker_count + w->id];
			if (mb && mbox_available(mb) > 0)
				return;
		}
		for (uint32_t i = 0; i < w->conn_cap; i++)
			if (w->conns[i] && !conn_settled(w, w->conns[i]))
				return;
	}
	for (uint32_t i = 0; i < w->conn_cap; i++) {
		struct conn *c = w->conns[i];
		if (c && c->state != CONN_CLOSING)
			conn_close(w, c, MQTT_RC_SERVER_SHUTTING_DOWN, false);
	}
	w->stop_phase = STOP_CLOSING;
}

static void dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	switch (op_kind(cqe->user_data)) {
	case OP_ACCEPT:
		accept_done(w, cqe);
		break;
	case OP_RECV:
		recv_done(w, cqe);
		break;
	case OP_SEND:
		send_done(w, cqe);
		break;
	case OP_WAKE:
		/* The mail is drained where the wake stands among the
		 * completions, not only at the top of the next turn: it is
		 * causally before the ones behind it. Another worker sends a
		 * subscription delta, then its SUBACK; a publisher that saw the
		 * SUBACK publishes here, and that receive must not be routed
		 * ahead of the delta. Both completions arrive in one batch when
		 * this worker was descheduled (found by CI: 4 workers, 2 cores). */
		drain_mailboxes(w);
		break;
	case OP_VERIFY:
		verify_done(w, cqe);
		break;
	case OP_STOP:
		if (!atomic_load(&w->stopping))
			atomic_store(&w->stopping, true);
		begin_stop(w);
		break;
	case OP_NONE:
		if (cqe->res < 0)
			LOG_WARN("worker %u: wake-up failed: %s", w->id, strerror(-cqe->res));
		break;
	default:
		break;
	}
}

/*
 * A closing connection whose last bytes went: the lingering close of
 * well-behaved servers. End the write side, so the client reads a FIN
 * after our last packet, and keep receiving, discarding it all
 * (recv_done hands a closing connection nothing), until the client ends
 * its side too. Closing a socket with unread bytes in it makes the kernel
 * answer RST, and a client still writing then gets EPIPE or ECONNRESET
 * and may never read what we sent last (a DISCONNECT's reason code).
 * Bounded in time by the caller; in memory by nothing kept. true: still
 * lingering.
 */
static bool linger(struct worker *w, struct conn *c)
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
		recv_arm(w, c);
		return true;
	}
	return false;
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "starling-w%u", w->id);
	pthread_setname_np(pthread_self(), name);
	/* The ring is made here: with SINGLE_ISSUER and DEFER_TASKRUN only its
	 * creator may submit. The barrier makes every ring exist before any
	 * worker sends another a wake-up. */
	w->init_failed = ring_setup(w) != 0;
	pthread_barrier_wait(&w->b->start_barrier);
	if (w->init_failed || w->b->start_failed)
		return NULL;
	for (unsigned i = 0; i < w->listen_count; i++)
		accept_arm(w, i);
	stop_arm(w);
	if (w->verify_fd >= 0)
		verify_arm(w);
	w->acl = auth_acl_acquire(w->b->auth, w->id, NULL, &w->acl_gen);
	if (w->b->tls)
		w->ssl_ctx = tls_ctx_acquire(w->b->tls, w->id);
	bool stopping = false;
	uint64_t woke_ns = clock_now_ns(); /* when the last wait returned */

	for (;;) {
		w->now_ms = clock_now_ms();
		w->st.loop_turns++;
		uint64_t acl_gen = w->acl_gen;
		w->acl = auth_acl_acquire(w->b->auth, w->id, w->acl, &w->acl_gen);
		if (w->acl_gen != acl_gen)
			acl_recheck(w);
		if (w->b->tls) /* accepts below use this turn's context (tls.h) */
			w->ssl_ctx = tls_ctx_acquire(w->b->tls, w->id);
		drain_mailboxes(w);
		/* Input that waited (a password verdict, a session taken over)
		 * is parsed here, never inside the handler that decided it. */
		conn_resume_all(w);
		if (w->now_ms >= w->next_sweep_ms) {
			sweep(w);
			w->next_sweep_ms = w->now_ms + SWEEP_MS;
		}
		if (w->now_ms >= w->next_report_ms) {
			if (w->next_report_ms)
				report_drops(w);
			w->next_report_ms = w->now_ms + DROP_REPORT_MS;
		}
		if (w->sys)
			sys_tick(w);
		flush_mailboxes(w);
		if (w->stop_phase != STOP_NONE)
			stop_step(w);

		/* Output: once per turn, every connection with something new. */
		struct conn *c = w->flush_list;
		w->flush_list = NULL;
		while (c) {
			struct conn *next = c->next_flush;
			c->on_flush_list = false;
			conn_flush(w, c);
			c = next;
		}
		/* Reap: a closing connection goes when its last bytes went and
		 * its linger is over. A send still in flight owns c->tx, so we
		 * never free under it: past the grace period shutdown() makes it
		 * complete now. */
		struct conn **pp = &w->close_list;
		/* While stopping the node, closing connections get the configured
		 * grace instead (the whole node exits within it). */
		uint64_t grace_ms = stopping ? w->cfg->shutdown_grace_ms : CLOSE_GRACE_MS;
		uint64_t linger_ms = grace_ms < LINGER_MS ? grace_ms : LINGER_MS;
		/* The whole stop, lingering included, ends within the grace. */
		uint64_t stop_cut_ms = w->stop_began_ms + w->cfg->shutdown_grace_ms;
		bool stop_over = stopping && w->now_ms >= stop_cut_ms;
		unsigned reaped = 0;
		while (*pp && reaped < REAP_TURN_MAX) {
			c = *pp;
			uint64_t closing_ms = w->now_ms - c->deadline_ms;
			if (c->send_busy) {
				bool cut = stopping ? stop_over : closing_ms > grace_ms;
				if (cut && c->shut != CONN_SHUT_RDWR) {
					shutdown(c->fd, SHUT_RDWR);
					c->shut = CONN_SHUT_RDWR;
				}
				pp = &c->next_close;
				continue;
			}
			if (closing_ms <= linger_ms && !stop_over && linger(w, c)) {
				pp = &c->next_close;
				continue;
			}
			*pp = c->next_close;
			shutdown(c->fd, SHUT_RDWR); /* ends the multishot receive */
			close(c->fd);
			c->fd = -1;
			conn_reap(w, c);
			reaped++;
		}
		bool more_work = reaped == REAP_TURN_MAX; /* the rest next turn, without sleeping */

		if (atomic_load_explicit(&w->stopping, memory_order_relaxed) && !stopping) {
			stopping = true;
			begin_stop(w);
		}
		if (stopping && w->stop_phase == STOP_CLOSING && w->conn_live == 0) {
			publish_stats(w);
			LOG_INFO("worker %u: %llu loop turns, %llu PUBLISH out in %llu sends",
			         w->id, (unsigned long long)w->st.loop_turns,
			         (unsigned long long)(w->st.msgs_out[0] + w->st.msgs_out[1] +
			                              w->st.msgs_out[2]),
			         (unsigned long long)w->st.sends);
			break;
		}
		if (!stopping && w->now_ms >= w->accept_paused_until_ms) {
			w->accept_paused_until_ms = 0;
			for (unsigned i = 0; i < w->listen_count; i++)
				if (!w->accept_armed[i] && w->listen_fds[i] >= 0)
					accept_arm(w, i);
		}
		for (uint32_t i = 0; i < w->rearm_len; i++) {
			struct conn *rc = conn_get(w, w->rearm[i].slot, w->rearm[i].gen);
			if (!rc)
				continue; /* reaped since */
			rc->on_rearm_list = false;
			if (!rc->recv_armed && rc->state != CONN_CLOSING)
				recv_arm(w, rc);
		}
		w->rearm_len = 0;

		if (w->now_ms >= w->next_publish_ms) {
			publish_stats(w);
			w->next_publish_ms = w->now_ms + STATS_PUBLISH_MS;
		}
		/* Busy time of this turn: from the end of the last wait to here. */
		uint64_t busy_ns = clock_now_ns() - woke_ns;
		if (busy_ns > w->turn_max_ns[0])
			w->turn_max_ns[0] = busy_ns;
		w->st.loop_busy_ns += busy_ns;
		w->st.loop_busy_hist[stats_loop_bucket(busy_ns)]++;

		uint64_t wake_ms = w->next_sweep_ms;
		if (w->accept_paused_until_ms && w->accept_paused_until_ms < wake_ms)
			wake_ms = w->accept_paused_until_ms; /* to accept again */
		uint64_t wait_ms = wake_ms > w->now_ms && !more_work ? wake_ms - w->now_ms : 0;
		struct __kernel_timespec ts = {.tv_sec = 0,
		                               .tv_nsec = (long long)wait_ms * 1000000};
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EBUSY)
			LOG_WARN("worker %u: submit: %s", w->id, strerror(-ret));
		woke_ns = clock_now_ns();
		w->now_ms = woke_ns / 1000000;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			dispatch(w, cqe);
			if (++n == CQE_TURN_MAX)
				break; /* the rest after this turn's sends (they wait in the CQ) */
		}
		io_uring_cq_advance(&w->ring, n);
	}
	return NULL;
}
