/*
 * io.c — the ring side of a bench worker: connect, multishot receive into
 * provided buffers, gathered sends flushed once per loop turn, orderly
 * close and reaping, and completion dispatch.
 *
 * Owner: the single thread of one worker process.
 * Invariants:
 *  - user_data is (kind << 56) | (generation << 32) | client slot: never an
 *    fd or a pointer. A completion whose generation differs from the
 *    client's is stale and ignored.
 *  - a client's fd is closed and its buffers freed only when no operation
 *    on it is outstanding (CF_*_BUSY / CF_RECV_ARMED all clear), so the
 *    kernel never writes into or reads from freed memory.
 *  - completion handlers change state and put clients on lists (flush,
 *    re-arm, reap); the loop acts on the lists once per turn.
 *  - a multishot receive that ends without IORING_CQE_F_MORE, or with
 *    -ENOBUFS, is re-armed on the next turn while the client lives.
 *
 * The stream is layered: MQTT bytes <-> WebSocket frames (ws.c, --ws) <->
 * TLS records (tls.c, --tls) <-> the socket. Going out, a packet is written
 * into scratch (io_out_reserve) and io_out_commit frames and/or encrypts it
 * into the send buffer; coming in, stream_in unframes what tls_input
 * decrypted (or what the socket gave) and hands MQTT bytes to client.c.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "worker.h"

enum op_kind {
	OP_CONNECT = 1,
	OP_RECV = 2,
	OP_SEND = 3,
	OP_CANCEL = 4,
};

#define GEN_MASK 0xffffffu

static uint64_t op_data(enum op_kind kind, const struct client *c, uint32_t slot)
{
	return ((uint64_t)kind << 56) | ((uint64_t)(c->gen & GEN_MASK) << 32) | slot;
}

static uint32_t slot_of(const struct worker *w, const struct client *c)
{
	return (uint32_t)(c - w->clients);
}

static enum fail_reason reason_of_errno(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return FAIL_REFUSED;
	case ETIMEDOUT:
	case ECANCELED:
		return FAIL_TIMEOUT;
	case ECONNRESET:
	case EPIPE:
	case ECONNABORTED:
		return FAIL_RESET;
	case EADDRNOTAVAIL:
	case EADDRINUSE:
		return FAIL_ADDR;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		return FAIL_FD;
	default:
		return FAIL_OTHER;
	}
}

struct io_uring_sqe *io_sqe(struct worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
	while (!sqe) {
		/* a full SQ is back-pressure: hand it to the kernel and retry */
		io_uring_submit(&w->ring);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

void io_list_add(uint32_t *list, uint32_t *count, struct client *c, struct worker *w, uint16_t flag)
{
	if (c->flags & flag)
		return;
	c->flags |= flag;
	assert(*count < w->client_count);
	list[(*count)++] = slot_of(w, c);
}

int io_setup(struct worker *w)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	/* one thread submits and reaps; task work runs when we wait, in batches */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = RING_ENTRIES * 4;
	int rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	if (rc == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = RING_ENTRIES * 4;
		rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
	}
	if (rc < 0)
		return rc;

	size_t ring_bytes = RECV_BUF_COUNT * sizeof(struct io_uring_buf);
	void *mem =
	    mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	w->br = mem;
	io_uring_buf_ring_init(w->br);
	struct io_uring_buf_reg reg;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = RECV_BUF_COUNT;
	reg.bgid = RECV_GROUP;
	rc = io_uring_register_buf_ring(&w->ring, &reg, 0);
	if (rc < 0)
		return rc;
	w->recv_bufs = malloc((size_t)RECV_BUF_COUNT * RECV_BUF_BYTES);
	if (!w->recv_bufs)
		return -ENOMEM;
	int mask = io_uring_buf_ring_mask(RECV_BUF_COUNT);
	for (uint32_t i = 0; i < RECV_BUF_COUNT; i++)
		io_uring_buf_ring_add(w->br, w->recv_bufs + (size_t)i * RECV_BUF_BYTES,
		                      RECV_BUF_BYTES, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(w->br, RECV_BUF_COUNT);
	return 0;
}

void io_teardown(struct worker *w)
{
	io_uring_queue_exit(&w->ring);
	free(w->recv_bufs);
	if (w->br)
		munmap(w->br, RECV_BUF_COUNT * sizeof(struct io_uring_buf));
	for (uint32_t i = 0; i < w->tx_free_count; i++)
		free(w->tx_free[i]);
	w->tx_free_count = 0;
}

static void recv_buf_return(struct worker *w, unsigned bid)
{
	io_uring_buf_ring_add(w->br, w->recv_bufs + (size_t)bid * RECV_BUF_BYTES, RECV_BUF_BYTES,
	                      (unsigned short)bid, io_uring_buf_ring_mask(RECV_BUF_COUNT), 0);
	io_uring_buf_ring_advance(w->br, 1);
}

static struct txbuf *txbuf_get(struct worker *w, uint32_t need)
{
	if (need <= TX_BUF_BYTES && w->tx_free_count) {
		struct txbuf *b = w->tx_free[--w->tx_free_count];
		b->len = b->off = 0;
		return b;
	}
	uint32_t cap = need <= TX_BUF_BYTES ? TX_BUF_BYTES : need;
	struct txbuf *b = malloc(sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->len = b->off = 0;
	b->cap = cap;
	return b;
}

static void txbuf_put(struct worker *w, struct txbuf *b)
{
	if (!b)
		return;
	if (b->cap == TX_BUF_BYTES && w->tx_free_count < TX_FREE_MAX)
		w->tx_free[w->tx_free_count++] = b;
	else
		free(b);
}

/* Make room for n raw (wire) bytes at the end of c->tx. */
static uint8_t *tx_room(struct worker *w, struct client *c, uint32_t n)
{
	uint32_t limit = w->rx_max * 4; /* far above TX_HIGH_BYTES: only runaway input hits it */
	if (!c->tx) {
		c->tx = txbuf_get(w, n);
		if (!c->tx)
			return NULL;
	}
	struct txbuf *b = c->tx;
	if (b->cap - b->len < n) {
		uint64_t cap = b->cap;
		while (cap - b->len < n)
			cap *= 2;
		if (cap > limit)
			return NULL;
		struct txbuf *nb = malloc(sizeof(*nb) + cap);
		if (!nb)
			return NULL;
		memcpy(nb->data, b->data, b->len);
		nb->len = b->len;
		nb->off = 0;
		nb->cap = (uint32_t)cap;
		txbuf_put(w, b);
		c->tx = nb;
		b = nb;
	}
	return b->data + b->len;
}

uint32_t io_out_queued(const struct client *c)
{
	uint32_t n = c->tx ? c->tx->len : 0;
	if (c->tx_busy)
		n += c->tx_busy->len - c->tx_busy->off;
	return n;
}

static void mark_flush(struct worker *w, struct client *c)
{
	c->tx_s = (uint32_t)((w->now_ns - w->start_ns) / 1000000000ull);
	io_list_add(w->flush, &w->flush_count, c, w, CF_ON_FLUSH);
}

/* Move TLS ciphertext into the send buffer. */
static int tls_drain(struct worker *w, struct client *c)
{
	size_t n;
	while ((n = tls_conn_pending(c->tls)) > 0) {
		uint32_t chunk = n > 65536 ? 65536 : (uint32_t)n;
		uint8_t *dst = tx_room(w, c, chunk);
		if (!dst)
			return -1;
		size_t got = tls_conn_take(c->tls, dst, chunk);
		if (!got)
			break;
		c->tx->len += (uint32_t)got;
	}
	mark_flush(w, c);
	return 0;
}

/* Bytes below the WebSocket layer: encrypted, or straight into the send buffer. */
static int stream_out(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	if (c->tls)
		return tls_conn_write(c->tls, data, len) < 0 || tls_drain(w, c) < 0 ? -1 : 0;
	uint8_t *dst = tx_room(w, c, (uint32_t)len);
	if (!dst)
		return -1;
	memcpy(dst, data, len);
	c->tx->len += (uint32_t)len;
	mark_flush(w, c);
	return 0;
}

/* Where ws_write puts a frame's pieces (head, masked payload). */
struct ws_out {
	struct worker *w;
	struct client *c;
	size_t len; /* with TLS: bytes gathered in the third part of plain */
};

static int ws_sink(void *arg, const uint8_t *data, size_t len)
{
	struct ws_out *o = arg;
	struct worker *w = o->w;
	if (o->c->tls) {
		/* gather the frame, so that it becomes one TLS record, not three */
		if (o->len + len > (size_t)w->rx_max + WS_FRAME_HEAD_MAX)
			return -1;
		memcpy(w->plain + 2 * (size_t)w->rx_max + o->len, data, len);
		o->len += len;
		return 0;
	}
	uint8_t *dst = tx_room(w, o->c, (uint32_t)len);
	if (!dst)
		return -1;
	memcpy(dst, data, len);
	o->c->tx->len += (uint32_t)len;
	return 0;
}

static int ws_out(struct worker *w, struct client *c, enum ws_opcode op, const uint8_t *data,
                  size_t len)
{
	struct ws_out o = {.w = w, .c = c, .len = 0};
	if (ws_write(w->ws, op, data, len, ws_sink, &o) < 0)
		return -1;
	if (c->tls)
		return stream_out(w, c, w->plain + 2 * (size_t)w->rx_max, o.len);
	mark_flush(w, c);
	return 0;
}

uint8_t *io_out_reserve(struct worker *w, struct client *c, uint32_t n)
{
	if (c->state >= CS_CLOSING)
		return NULL;
	if (c->tls || w->ws)
		return n <= w->rx_max ? w->plain + w->rx_max : NULL; /* second part of plain */
	return tx_room(w, c, n);
}

void io_out_commit(struct worker *w, struct client *c, uint32_t n)
{
	if (w->ws) {
		/* one MQTT packet, one binary frame */
		if (ws_out(w, c, WS_OP_BINARY, w->plain + w->rx_max, n) < 0)
			io_close(w, c, c->tls ? FAIL_TLS : FAIL_OTHER, true);
		return;
	}
	if (c->tls) {
		if (tls_conn_write(c->tls, w->plain + w->rx_max, n) < 0 || tls_drain(w, c) < 0)
			io_close(w, c, FAIL_TLS, true);
		return;
	}
	c->tx->len += n;
	mark_flush(w, c);
}

void io_out_end(struct worker *w, struct client *c)
{
	static const uint8_t normal[2] = {0x03, 0xe8}; /* 1000: normal closure [RFC 6455 §7.4.1] */
	if (w->ws && c->state < CS_CLOSING && ws_out(w, c, WS_OP_CLOSE, normal, 2) < 0)
		io_close(w, c, FAIL_OTHER, false);
}

/* The target of c: round-robin over hosts, or over sub_hosts for a
 * subscriber when they were given. */
static uint32_t target_of(const struct worker *w, const struct client *c)
{
	uint32_t subs = w->target_count - w->pub_targets;
	if (subs && c->role == ROLE_SUB)
		return w->pub_targets + c->id % subs;
	return c->id % w->pub_targets;
}

void io_connect_start(struct worker *w, struct client *c)
{
	uint32_t t = target_of(w, c);
	int family = w->targets[t].ss_family;
	c->t0_ns = w->now_ns;
	c->gen++;
	w->st->conn_attempts++;
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		io_close(w, c, reason_of_errno(errno), true);
		return;
	}
	c->fd = fd;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (w->source_count && family == AF_INET) {
		/* the port is chosen at connect(), per 4-tuple, not at bind() */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		struct sockaddr_in src;
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(w->source_first + c->id % w->source_count);
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
			io_close(w, c, reason_of_errno(errno), true);
			return;
		}
	}
	c->state = CS_TCP;
	w->connecting++;
	struct io_uring_sqe *sqe = io_sqe(w);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&w->targets[t], w->target_lens[t]);
	io_uring_sqe_set_data64(sqe, op_data(OP_CONNECT, c, slot_of(w, c)));
	c->flags |= CF_CONNECT_BUSY;
}

void io_arm_recv(struct worker *w, struct client *c)
{
	if (c->state >= CS_CLOSING || (c->flags & CF_RECV_ARMED))
		return;
	struct io_uring_sqe *sqe = io_sqe(w);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_GROUP;
	io_uring_sqe_set_data64(sqe, op_data(OP_RECV, c, slot_of(w, c)));
	c->flags |= CF_RECV_ARMED;
}

static void send_submit(struct worker *w, struct client *c)
{
	struct txbuf *b = c->tx_busy;
	struct io_uring_sqe *sqe = io_sqe(w);
	io_uring_prep_send(sqe, c->fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, op_data(OP_SEND, c, slot_of(w, c)));
	c->flags |= CF_SEND_BUSY;
}

void io_flush_all(struct worker *w)
{
	for (uint32_t i = 0; i < w->flush_count; i++) {
		struct client *c = &w->clients[w->flush[i]];
		c->flags &= (uint16_t)~CF_ON_FLUSH;
		if (c->state >= CS_CLOSING || (c->flags & CF_SEND_BUSY))
			continue;
		if (!c->tx_busy && c->tx && c->tx->len) {
			c->tx_busy = c->tx;
			c->tx = NULL;
		}
		if (c->tx_busy)
			send_submit(w, c);
	}
	w->flush_count = 0;
	for (uint32_t i = 0; i < w->rearm_count; i++) {
		struct client *c = &w->clients[w->rearm[i]];
		c->flags &= (uint16_t)~CF_ON_REARM;
		io_arm_recv(w, c);
	}
	w->rearm_count = 0;
}

void io_close(struct worker *w, struct client *c, enum fail_reason reason, bool failure)
{
	if (c->state >= CS_CLOSING)
		return;
	struct stats *st = w->st;
	if (failure) {
		if (c->flags & CF_UP)
			st->conn_lost++;
		else
			st->conn_failed++;
		st->fail[reason]++;
	}
	if (c->flags & CF_UP) {
		st->conn_up--;
		c->flags &= (uint16_t)~CF_UP;
	}
	if (c->state >= CS_TCP && c->state < CS_READY)
		w->connecting--;
	if (c->role == ROLE_SUB && c->state < CS_READY)
		st->subs_failed++;
	if (c->pub != NO_PUB && !w->pubs[c->pub].done) {
		w->pubs[c->pub].done = true;
		st->pubs_done++;
	}
	c->state = CS_CLOSING;
	if (c->fd >= 0) {
		shutdown(c->fd, SHUT_RDWR);
		if (c->flags & (CF_RECV_ARMED | CF_SEND_BUSY | CF_CONNECT_BUSY)) {
			struct io_uring_sqe *sqe = io_sqe(w);
			io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
			io_uring_sqe_set_data64(sqe, op_data(OP_CANCEL, c, slot_of(w, c)));
		}
	}
	io_list_add(w->reap, &w->reap_count, c, w, CF_ON_REAP);
}

void io_reap_all(struct worker *w)
{
	uint32_t keep = 0;
	for (uint32_t i = 0; i < w->reap_count; i++) {
		struct client *c = &w->clients[w->reap[i]];
		if (c->flags & (CF_RECV_ARMED | CF_SEND_BUSY | CF_CONNECT_BUSY)) {
			w->reap[keep++] = w->reap[i];
			continue;
		}
		c->flags &= (uint16_t)~CF_ON_REAP;
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		txbuf_put(w, c->tx);
		txbuf_put(w, c->tx_busy);
		c->tx = c->tx_busy = NULL;
		free(c->rx);
		c->rx = NULL;
		tls_conn_free(c->tls);
		c->tls = NULL;
		if (w->ws) {
			ws_conn_free(w->ws, w->ws_conns[slot_of(w, c)]);
			w->ws_conns[slot_of(w, c)] = NULL;
		}
		c->state = CS_CLOSED;
		w->closed++;
	}
	w->reap_count = keep;
}

static void ws_log_once(struct worker *w, struct client *c, const char *why)
{
	if (w->ws_logged)
		return;
	w->ws_logged = true;
	fprintf(stderr, "bench: WebSocket upgrade to %s failed: %s (reported once per process)\n",
	        w->target_names[target_of(w, c)], why);
}

/* Send the upgrade request [RFC 6455 §4.1]. */
static void ws_start(struct worker *w, struct client *c)
{
	const struct sockaddr_storage *ss = &w->targets[target_of(w, c)];
	const char *name = w->target_names[target_of(w, c)];
	unsigned port = ss->ss_family == AF_INET6
	                    ? ntohs(((const struct sockaddr_in6 *)ss)->sin6_port)
	                    : ntohs(((const struct sockaddr_in *)ss)->sin_port);
	char host[160];
	snprintf(host, sizeof(host), strchr(name, ':') ? "[%s]:%u" : "%s:%u", name, port);
	char req[WS_REQUEST_MAX];
	c->state = CS_WS;
	int n = ws_handshake_start(w->ws, &w->ws_conns[slot_of(w, c)], host, req, sizeof(req));
	if (n < 0 || stream_out(w, c, (const uint8_t *)req, (size_t)n) < 0)
		io_close(w, c, FAIL_WS, true);
}

/* TCP (and TLS) is up: upgrade to WebSocket, or speak MQTT right away. */
static void transport_up(struct worker *w, struct client *c)
{
	if (w->ws)
		ws_start(w, c);
	else
		client_on_connected(w, c);
}

struct ws_in {
	struct worker *w;
	struct client *c;
};

static bool ws_on_data(void *arg, const uint8_t *data, size_t len)
{
	struct ws_in *in = arg;
	client_on_bytes(in->w, in->c, data, len);
	return in->c->state < CS_CLOSING;
}

static void ws_on_ping(void *arg, const uint8_t *data, size_t len)
{
	struct ws_in *in = arg;
	if (in->c->state < CS_CLOSING && ws_out(in->w, in->c, WS_OP_PONG, data, len) < 0)
		io_close(in->w, in->c, FAIL_OTHER, true);
}

static const struct ws_events ws_events = {.on_data = ws_on_data, .on_ping = ws_on_ping};

/*
 * The broker sent a close frame. If we are not leaving already (our close
 * went out with the DISCONNECT), the connection is lost now; answer with
 * the same code [RFC 6455 §5.5.1] and close once that is sent.
 */
static void ws_peer_closed(struct worker *w, struct client *c, uint16_t code)
{
	if (c->flags & CF_BYE)
		return;
	struct stats *st = w->st;
	if (c->flags & CF_UP)
		st->conn_lost++;
	else
		st->conn_failed++;
	st->fail[FAIL_CLOSED]++;
	c->flags |= CF_BYE; /* counted: the close that follows is not a failure again */
	uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
	bool has_code = code != 1005 && code != 1006;
	if (ws_out(w, c, WS_OP_CLOSE, body, has_code ? 2 : 0) < 0)
		io_close(w, c, FAIL_OTHER, false);
}

/* Bytes of the WebSocket stream: the 101 answer, then frames. */
static void ws_input(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	struct ws_conn **wc = &w->ws_conns[slot_of(w, c)];
	if (c->state == CS_WS) {
		size_t used = 0;
		char why[160];
		int r = ws_handshake_input(w->ws, wc, data, len, &used, why, sizeof(why));
		if (r < 0) {
			ws_log_once(w, c, why);
			io_close(w, c, FAIL_WS, true);
			return;
		}
		if (r == 0)
			return;
		client_on_connected(w, c);
		data += used;
		len -= used;
		if (!len || c->state >= CS_CLOSING)
			return;
	}
	struct ws_in in = {.w = w, .c = c};
	uint16_t code = 0;
	switch (ws_read(w->ws, wc, data, len, &ws_events, &in, &code)) {
	case WS_READ_OK:
		break;
	case WS_READ_CLOSE:
		if (c->state < CS_CLOSING)
			ws_peer_closed(w, c, code);
		break;
	case WS_READ_PROTO:
		io_close(w, c, FAIL_PROTOCOL, true);
		break;
	case WS_READ_NOMEM:
		io_close(w, c, FAIL_OTHER, true);
		break;
	}
}

/* Plaintext of the stream in. */
static void stream_in(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	if (w->ws)
		ws_input(w, c, data, len);
	else
		client_on_bytes(w, c, data, len);
}

/* A connection that ends during the upgrade is a refused upgrade: a plain
 * MQTT listener resets it, an HTTP server may just close it. */
static enum fail_reason reason_in(const struct client *c, enum fail_reason r)
{
	return c->state == CS_WS ? FAIL_WS : r;
}

/* Ciphertext in: decrypt, drive the handshake, hand plaintext on. */
static void tls_input(struct worker *w, struct client *c, const uint8_t *data, size_t len)
{
	if (tls_conn_feed(c->tls, data, len) < 0) {
		io_close(w, c, FAIL_TLS, true);
		return;
	}
	if (c->state == CS_TLS) {
		int r = tls_conn_handshake(c->tls);
		if (r < 0 || tls_drain(w, c) < 0) {
			io_close(w, c, FAIL_TLS, true);
			return;
		}
		if (r == 0)
			return;
		transport_up(w, c);
	}
	while (c->state < CS_CLOSING) {
		int n = tls_conn_read(c->tls, w->plain, w->rx_max);
		if (n < 0) {
			io_close(w, c, (c->flags & CF_BYE) ? FAIL_OTHER : FAIL_TLS,
			         !(c->flags & CF_BYE));
			return;
		}
		if (n == 0)
			break;
		stream_in(w, c, w->plain, (size_t)n);
	}
	if (c->state < CS_CLOSING && tls_conn_pending(c->tls) && tls_drain(w, c) < 0)
		io_close(w, c, FAIL_TLS, true);
}

static void connect_done(struct worker *w, struct client *c, int res)
{
	c->flags &= (uint16_t)~CF_CONNECT_BUSY;
	if (c->state != CS_TCP)
		return;
	if (res < 0) {
		io_close(w, c, reason_of_errno(-res), true);
		return;
	}
	io_arm_recv(w, c);
	if (w->tls) {
		c->tls = tls_conn_new(w->tls, w->target_names[target_of(w, c)]);
		c->state = CS_TLS;
		if (!c->tls || tls_conn_handshake(c->tls) < 0 || tls_drain(w, c) < 0)
			io_close(w, c, FAIL_TLS, true);
		return;
	}
	transport_up(w, c);
}

static void recv_done(struct worker *w, struct client *c, struct io_uring_cqe *cqe)
{
	int res = cqe->res;
	bool more = cqe->flags & IORING_CQE_F_MORE;
	if (!more)
		c->flags &= (uint16_t)~CF_RECV_ARMED;
	if (res > 0) {
		assert(cqe->flags & IORING_CQE_F_BUFFER);
		unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		if (c->state < CS_CLOSING) {
			w->st->bytes_in += (uint64_t)res;
			const uint8_t *data = w->recv_bufs + (size_t)bid * RECV_BUF_BYTES;
			if (c->tls)
				tls_input(w, c, data, (size_t)res);
			else
				stream_in(w, c, data, (size_t)res);
		}
		recv_buf_return(w, bid);
		if (!more && c->state < CS_CLOSING)
			io_list_add(w->rearm, &w->rearm_count, c, w, CF_ON_REARM);
		return;
	}
	if (c->state >= CS_CLOSING)
		return;
	if (res == -ENOBUFS) {
		/* every provided buffer was in use: they are back by the next turn */
		io_list_add(w->rearm, &w->rearm_count, c, w, CF_ON_REARM);
		return;
	}
	if (res == 0) {
		bool ours = c->flags & CF_BYE;
		if (c->state == CS_WS)
			ws_log_once(w, c, "connection closed before the 101 answer");
		io_close(w, c, reason_in(c, FAIL_CLOSED), !ours);
		return;
	}
	if (c->state == CS_WS)
		ws_log_once(w, c, strerror(-res));
	io_close(w, c, reason_in(c, reason_of_errno(-res)), !(c->flags & CF_BYE));
}

static void send_done(struct worker *w, struct client *c, int res)
{
	c->flags &= (uint16_t)~CF_SEND_BUSY;
	if (c->state >= CS_CLOSING)
		return;
	if (res < 0) {
		io_close(w, c, reason_in(c, reason_of_errno(-res)), !(c->flags & CF_BYE));
		return;
	}
	struct txbuf *b = c->tx_busy;
	w->st->bytes_out += (uint64_t)res;
	b->off += (uint32_t)res;
	if (b->off >= b->len) {
		txbuf_put(w, b);
		c->tx_busy = NULL;
	}
	/* a short send resubmits the rest on the next flush */
	if (c->tx_busy || (c->tx && c->tx->len)) {
		io_list_add(w->flush, &w->flush_count, c, w, CF_ON_FLUSH);
		return;
	}
	if (c->tx) {
		/* an idle client holds no send buffer */
		txbuf_put(w, c->tx);
		c->tx = NULL;
	}
	if (c->flags & CF_BYE)
		io_close(w, c, FAIL_OTHER, false);
	else if (c->pub != NO_PUB)
		worker_ready_push(w, c->pub);
}

void io_dispatch(struct worker *w, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	enum op_kind kind = (enum op_kind)(ud >> 56);
	uint32_t gen = (uint32_t)(ud >> 32) & GEN_MASK;
	uint32_t slot = (uint32_t)ud;
	if (kind == OP_CANCEL)
		return;
	assert(slot < w->client_count);
	struct client *c = &w->clients[slot];
	if ((c->gen & GEN_MASK) != gen) {
		/* stale: an operation of an earlier fd of this slot */
		if (kind == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER))
			recv_buf_return(w, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		return;
	}
	switch (kind) {
	case OP_CONNECT:
		connect_done(w, c, cqe->res);
		break;
	case OP_RECV:
		recv_done(w, c, cqe);
		break;
	case OP_SEND:
		send_done(w, c, cqe->res);
		break;
	default:
		assert(!"unknown op kind");
	}
}
