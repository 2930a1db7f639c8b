/*
 * link.c — the cluster's link on the workers' rings (cluster.h,
 * ../shared/DESIGN.md "A cluster"): every worker's TCP connection to every
 * peer, the handshake, route replication and forwarding. It runs as the
 * workers' extension (loop/worker.h struct worker_ext), so a worker
 * forwards on its own connections, from its own thread, batched once a
 * turn like client sends.
 *
 * Connections. Each worker dials every peer membership says is alive or
 * suspect (cluster_view.h's table) on the peer's cluster_listen, TCP;
 * the peer accepts on whichever of its workers the kernel picks
 * (SO_REUSEPORT). A node sends only on the connections it dialled; the
 * ones it accepted bring it the peer's frames. A broken connection is
 * dialled again with back-off (100 ms doubling to 5 s); it never makes
 * anyone dead, membership alone does; a peer declared dead or gone has
 * its connections closed and what waited for it dropped (counted).
 *
 * Handshake. Both sides send Hello (cluster name, node name, epoch, link
 * version, worker, a fresh nonce) and answer the other's with HelloProof
 * (link_wire.h: HMAC of the other's nonce with the cluster secret). Until
 * the proof checked, any other frame closes the connection; a wrong
 * cluster, version, name or proof is refused, logged and counted.
 *
 * Routes. Worker 0 owns both route tables (routes.h): its copy of the
 * index applies every delta of the node in one order, so its first/last
 * transitions (route_effect_fn) are this node's routes, numbered per epoch
 * in the origin table. Worker 0's connection to each peer carries them: a
 * snapshot when the link comes up, then deltas as they happen, straight
 * into the connection's output (never dropped: without them routes
 * diverge). A peer's route frames arrive on whichever worker accepted its
 * worker 0's connection, and go to our worker 0 as mail; it applies them
 * to that peer's copy, whose every change becomes an index entry naming
 * the peer's number (route_node_change), on every worker, in order. A
 * peer's routes are dropped when membership declares it dead or gone, or
 * it comes back with a new epoch; never because a link broke.
 *
 * Forwarding. The router calls link_forward with the plan's node targets
 * once per publish; the message is referenced in the peer's queue
 * (fwdq.h, bounded by cluster_link_buffer_bytes / workers: beyond it a
 * publish is dropped and counted, so a slow or unreachable peer never
 * blocks a publisher) and written at the next turn as PublishBatch frames
 * while the connection's outbox is below CONN_OUT_MAX. QoS 1/2 publishes
 * are numbered on the link and kept until the peer acknowledges them
 * (after routing them to its subscribers); a connection that breaks has
 * them written again, first, on the next one, and the receiver delivers a
 * number only once per (peer, its worker, epoch), node-wide, so a link cut
 * loses and duplicates nothing. The receiver builds the message from the
 * body as the publisher sent it (5.0 properties unchanged, expiry
 * decremented by the time spent) and routes it marked forwarded:
 * delivered there, never forwarded again.
 *
 * Not yet (cluster issue, next steps): retained replication to every node,
 * the digest on membership probes, a broken link as swim_probe_now.
 */
#include "cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "base/check.h"
#include "base/config.h"
#include "base/log.h"
#include "fwdq.h"
#include "io/mail.h"
#include "link_wire.h"
#include "loop/worker.h"
#include "ops/cluster_view.h"
#include "route/route.h"
#include "routes.h"
#include "transport/conn.h"

#define LINK_UPPER       1                    /* our index among the transport's layers */
#define MAIL_LINK_ROUTES (MAIL_KIND_NEXT + 0) /* a peer's route frame, to worker 0 */
#define DIAL_BACKOFF_MIN 100                  /* ms */
#define DIAL_BACKOFF_MAX 5000                 /* ms */
#define CONN_OUT_MAX                                                                               \
	(1u << 20)                   /* bytes in a link connection's outbox: what                  \
	                              * is in flight beyond the queue's bound */
#define ROUTE_CHUNK       1024       /* filters or changes per route frame */
#define ROUTE_CHUNK_BYTES (1u << 20) /* their bytes */
#define BATCH_MAX         LINK_BATCH_PUBLISHES_MAX
#define GAP_REPAIR_MS                                                                              \
	500            /* a peer's routes behind its digest this long: fetch them                  \
	                * (the digest itself is already that old or older) */
#define PING_MS   1000 /* an outgoing connection pings this often */
#define SILENT_MS 5000 /* a connection that brought nothing this long is hung: closed */

struct link_w;

/* One link connection: the part behind struct conn. */
struct link_conn {
	struct conn c;
	struct link_w *lw;
	struct link_decoder dec;
	struct link_hello hello; /* theirs (names copied below) */
	char peer_name[LINK_NAME_MAX + 1];
	uint8_t nonce[LINK_NONCE_BYTES]; /* ours, in our Hello */
	uint8_t peer;                    /* their number; 0 until known */
	bool outgoing;                   /* we dialled it */
	bool hello_sent;
	bool hello_in;         /* their Hello arrived (and our proof went) */
	bool up;               /* their proof checked */
	uint64_t last_rx_ms;   /* when it last brought bytes */
	uint64_t last_ping_ms; /* outgoing: when we last pinged */
	uint64_t ping_seq;
};

/* A peer as one worker sees it. */
struct link_peer {
	struct link_w *lw;
	uint8_t number;           /* 1..CLUSTER_PEERS_MAX */
	struct cluster_peer info; /* as membership last said */
	struct link_conn *out;    /* our connection to it; NULL: none */
	uint64_t retry_at_ms;     /* when to dial again */
	uint32_t backoff_ms;
	struct fwdq q; /* what goes to it, until it has it */
	/* Worker 0 only. */
	struct route_peer *routes; /* its routes, as we hold them */
	bool snapshot_due;         /* send it our routes whole (a new connection) */
	uint64_t sent_seq;         /* our route changes sent on this connection */
};

/* One worker's part. */
struct link_w {
	struct cluster_link *l;
	struct worker *w;
	uint8_t li_dial;    /* the LISTENER_DIAL listener's index */
	uint64_t peers_gen; /* of the view, when last copied */
	uint32_t peer_count;
	struct link_peer peers[CLUSTER_PEERS_MAX + 1]; /* by number; [0] unused */
	struct link_buf scratch;                       /* frames on their way into an outbox */
	struct link_publish *pubs;                     /* encoding a batch */
	struct msg *marker;                            /* the stand-in of FWD_SYNC_END entries */
	uint64_t resync_seen[CLUSTER_PEERS_MAX + 1];   /* view->resync, as acted on */
	uint64_t
	    behind_since[CLUSTER_PEERS_MAX + 1]; /* worker 0: a peer's routes behind its digest */
	uint64_t next_liveness_ms;               /* the next look for hung connections */
	uint64_t last_turn_ms;                   /* when liveness last ran */
	uint64_t awake_since_ms; /* the end of our own last stall: silence counts from there */
	uint64_t ranks[CLUSTER_PEERS_MAX + 1]; /* each peer's origin_rank (msg.h), by number */
	/* Worker 0 only: this node's routes. */
	struct route_origin *origin;
	/* Counted here, added to the view once a turn. */
	struct cluster_link_counts pc[CLUSTER_PEERS_MAX + 1]; /* by peer; [0]: not known yet */
	uint64_t retained[2], drops[CLUSTER_LINK_DROPS];
	bool counted; /* pc has something to add */
	uint64_t duplicates;
	int64_t links_up;
};

struct cluster_link {
	const struct config *cfg;
	struct cluster_identity id;
	struct cluster_view *view;
	struct worker_ext ext;
	struct route_params route_params;
	struct link_w **per; /* by worker */
	unsigned workers;
	size_t buf_bytes; /* per worker per peer */
	/* De-duplication of forwarded QoS 1/2 publishes, node-wide (a
	 * peer's worker may reconnect to any of ours): the highest link_seq
	 * delivered per peer and per worker of that peer, for the peer's epoch
	 * in dedup_epoch. */
	_Atomic uint64_t *dedup; /* [(CLUSTER_PEERS_MAX + 1) * LINK_WORKERS_MAX] */
	_Atomic uint64_t dedup_epoch[CLUSTER_PEERS_MAX + 1];
	pthread_mutex_t dedup_lock; /* resets only */
	/* Retained syncs received from each peer (one RetainedSnapshotEnd per
	 * worker of it, for its epoch in dedup_epoch), and its worker count. */
	_Atomic uint32_t retained_ends[CLUSTER_PEERS_MAX + 1];
	_Atomic uint32_t peer_workers[CLUSTER_PEERS_MAX + 1];
};

/* A peer's route frame on its way to worker 0. */
struct mail_link_routes {
	struct link_frame *f; /* decoded, owned by the mail */
	uint8_t peer;
};
_Static_assert(sizeof(struct mail_link_routes) <= MBOX_BODY_BYTES, "fits a mailbox message");

static bool peer_wanted(const struct link_peer *p)
{
	return p->info.state == CLUSTER_ALIVE || p->info.state == CLUSTER_SUSPECT;
}

/* ---- frames into a connection's outbox ----------------------------------- */

/* Encode f straight into lc's outbox (handshake and route frames: never
 * dropped while the connection lives). false: out of bounds or memory. */
static bool send_now(struct link_w *lw, struct link_conn *lc, const struct link_frame *f)
{
	struct link_buf *b = &lw->scratch;
	int rc = link_encode(b, f);
	if (rc != 0) {
		LOG_WARN_RL(1, "cluster: cannot encode a %s frame for %s: %s",
		            link_kind_name(f->kind),
		            lc->peer_name[0] ? lc->peer_name : conn_peer(&lc->c), strerror(-rc));
		return false;
	}
	uint8_t *at = conn_out_reserve(&lc->c, b->len, UINT32_MAX / 2);
	if (!at) {
		link_buf_consume(b, b->len);
		return false;
	}
	memcpy(at, b->bytes, b->len);
	conn_out_commit(&lw->w->tp, &lc->c, b->len);
	lw->pc[lc->peer].bytes[1] += b->len;
	lw->pc[lc->peer].frames[1]++;
	lw->counted = true;
	link_buf_consume(b, b->len);
	return true;
}

static void send_hello(struct link_w *lw, struct link_conn *lc)
{
	if (getrandom(lc->nonce, sizeof(lc->nonce), 0) != sizeof(lc->nonce))
		CHECK(!"getrandom");
	struct link_frame f = {.kind = LINK_HELLO};
	f.hello = (struct link_hello){
	    .cluster_name = lw->l->id.cluster,
	    .node_name = lw->l->id.name,
	    .epoch = lw->l->id.epoch,
	    .link_version = LINK_VERSION,
	    .workers = lw->l->workers,
	    .worker = lw->w->id,
	};
	memcpy(f.hello.nonce, lc->nonce, sizeof(lc->nonce));
	lc->hello_sent = send_now(lw, lc, &f);
}

/* ---- peers from membership ------------------------------------------------ */

static void route_changed(void *arg, const char *node, struct mqtt_view filter, bool add)
{
	(void)node;
	struct link_peer *p = arg;
	route_node_change(&p->lw->w->route, p->number, filter, add);
}

static void routes_count(struct link_w *lw, struct link_peer *p)
{
	atomic_store_explicit(&lw->l->view->routes[p->number],
	                      p->routes ? route_peer_count(p->routes) : 0, memory_order_relaxed);
}

/* What waited for a peer that is gone: dropped, counted. */
static void peer_discard(struct link_w *lw, struct link_peer *p)
{
	lw->drops[CLUSTER_DROP_DOWN] += fwdq_drop_all(&p->q);
}

/* Close the connections p dialled to us that this worker accepted: it
 * dials again, and sends its routes whole once more. */
static void peer_close_incoming(struct link_w *lw, struct link_peer *p)
{
	struct transport *tp = &lw->w->tp;
	for (uint32_t i = 0; i < tp->conn_cap; i++) {
		struct conn *c = tp->conns[i];
		if (!c || c->closing || conn_is_mqtt(tp, c))
			continue;
		struct link_conn *lc = (struct link_conn *)c;
		if (!lc->outgoing && lc->peer == p->number)
			conn_close(tp, c);
	}
}

static void peer_close(struct link_w *lw, struct link_peer *p)
{
	if (!p->out)
		return;
	struct link_conn *lc = p->out;
	p->out = NULL;
	if (lc->up)
		lw->links_up--;
	fwdq_rewind(&p->q); /* what it did not acknowledge goes again, first */
	lc->peer = 0;       /* no longer this peer's */
	conn_close(&lw->w->tp, &lc->c);
}

/* Membership moved: copy its table, and act on what changed. */
static void peers_refresh(struct link_w *lw)
{
	struct cluster_view *v = lw->l->view;
	if (atomic_load_explicit(&v->peers_gen, memory_order_acquire) == lw->peers_gen)
		return;
	static _Thread_local struct cluster_peer now[CLUSTER_PEERS_MAX];
	uint32_t n = cluster_view_peers(v, now, &lw->peers_gen);
	for (uint32_t i = 0; i < n; i++) {
		struct link_peer *p = &lw->peers[i + 1];
		struct cluster_peer was = p->info;
		p->info = now[i];
		if (i + 1 > lw->peer_count)
			p->retry_at_ms = 0;
		bool restarted = was.epoch && was.epoch != now[i].epoch;
		bool gone = !peer_wanted(p);
		if (restarted || gone) {
			/* A connection to its old process, or to a dead one. */
			peer_close(lw, p);
			peer_close_incoming(lw, p);
			/* A new process has none of the old one's subscribers. */
			peer_discard(lw, p);
			p->retry_at_ms = 0;
			p->backoff_ms = 0;
		}
		if (lw->w->id == 0 && p->routes) {
			if (gone && was.state != now[i].state)
				route_peer_drop(p->routes);
			else if (restarted)
				route_peer_epoch_seen(p->routes, now[i].epoch);
			routes_count(lw, p);
		}
	}
	lw->peer_count = n;
}

/* ---- dialling --------------------------------------------------------------- */

static void backoff(struct link_w *lw, struct link_peer *p)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : DIAL_BACKOFF_MIN;
	if (p->backoff_ms > DIAL_BACKOFF_MAX)
		p->backoff_ms = DIAL_BACKOFF_MAX;
	/* Jitter: the workers of a node do not all come back at once. */
	p->retry_at_ms =
	    lw->w->now_ms + p->backoff_ms / 2 + (uint64_t)rand() % (p->backoff_ms / 2 + 1);
}

static void dial(struct link_w *lw, struct link_peer *p)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	if (!cluster_parse_addr(p->info.address, &ss, &sl)) {
		LOG_WARN_RL(1, "cluster: %s's address %s is not ip:port", p->info.name,
		            p->info.address);
		backoff(lw, p);
		return;
	}
	struct conn *c = transport_dial(&lw->w->tp, lw->li_dial, &ss, sl);
	if (!c) {
		LOG_WARN_RL(1, "cluster: worker %u cannot dial %s at %s: %s", lw->w->id,
		            p->info.name, p->info.address, strerror(errno));
		backoff(lw, p);
		return;
	}
	struct link_conn *lc = (struct link_conn *)c;
	lc->lw = lw;
	lc->outgoing = true;
	lc->peer = p->number;
	snprintf(lc->peer_name, sizeof(lc->peer_name), "%s", p->info.name);
	link_decoder_init(&lc->dec, LINK_FRAME_BYTES_DEFAULT);
	p->out = lc;
}

/* ---- routes (worker 0) ------------------------------------------------------ */

static void route_effect(void *ctx, const struct route_delta *d, enum delta_effect e)
{
	struct link_w *lw = ctx;
	int rc = e == DELTA_FIRST ? route_origin_add(lw->origin, route_delta_filter(d))
	                          : route_origin_remove(lw->origin, route_delta_filter(d));
	if (rc < 0)
		LOG_WARN_RL(1, "cluster: the route \"%s\" is not advertised to peers: %s",
		            d->filter, strerror(-rc));
	atomic_store_explicit(&lw->l->view->routes[0], route_origin_count(lw->origin),
	                      memory_order_relaxed);
}

static bool send_snapshot(struct link_w *lw, struct link_peer *p)
{
	static _Thread_local struct mqtt_view views[ROUTE_CHUNK];
	struct route_snapshot_cursor cur;
	route_origin_snapshot_begin(lw->origin, &cur);
	bool last = false;
	while (!last) {
		int n = route_origin_snapshot_next(lw->origin, &cur, views, ROUTE_CHUNK,
		                                   ROUTE_CHUNK_BYTES, &last);
		CHECK(n >= 0); /* nothing changes the set while we read it */
		struct link_frame f = {.kind = LINK_ROUTE_SNAPSHOT};
		f.snapshot =
		    (struct link_route_snapshot){cur.epoch, cur.seq, views, (uint32_t)n, last};
		if (!send_now(lw, p->out, &f))
			return false;
	}
	p->sent_seq = cur.seq;
	return true;
}

/* Bring the peer's copy of our routes up to date on its connection. */
static void send_routes(struct link_w *lw, struct link_peer *p)
{
	if (!p->out || !p->out->up)
		return;
	if (p->snapshot_due) {
		if (send_snapshot(lw, p))
			p->snapshot_due = false;
		return;
	}
	static _Thread_local struct route_change ch[ROUTE_CHUNK];
	static _Thread_local struct link_route_change lch[ROUTE_CHUNK];
	while (p->sent_seq < route_origin_seq(lw->origin)) {
		int n = route_origin_changes(lw->origin, p->sent_seq, ch, ROUTE_CHUNK,
		                             ROUTE_CHUNK_BYTES);
		if (n <= 0) { /* left the log: whole again */
			p->snapshot_due = !send_snapshot(lw, p);
			return;
		}
		for (int i = 0; i < n; i++)
			lch[i] = (struct link_route_change){ch[i].filter, ch[i].add};
		struct link_frame f = {.kind = LINK_ROUTE_DELTA};
		f.delta = (struct link_route_delta){route_origin_epoch(lw->origin), p->sent_seq + 1,
		                                    lch, (uint32_t)n};
		if (!send_now(lw, p->out, &f))
			return;
		p->sent_seq += (uint64_t)n;
	}
}

#ifdef STARLING_TEST_HOOKS
/* Tests only (meson -Dtest_hooks=true): SLTEST_DROP_ROUTE_DELTAS=N makes
 * worker 0 drop the first N route deltas it receives, as if they were
 * lost, so the repair by digest (digests()) is exercised and measured. */
static int test_drops_left; /* worker 0's */

static void test_hooks_init(void)
{
	const char *e = getenv("SLTEST_DROP_ROUTE_DELTAS");
	test_drops_left = e ? atoi(e) : 0;
	if (test_drops_left > 0)
		LOG_WARN("test hook: the next %d route deltas received are dropped",
		         test_drops_left);
}

static bool test_drop_delta(void)
{
	if (test_drops_left <= 0)
		return false;
	test_drops_left--;
	return true;
}
#endif

/* A peer's route frame, on worker 0. */
static void routes_apply(struct link_w *lw, uint8_t number, const struct link_frame *f)
{
	CHECK(lw->w->id == 0);
	/* The worker that received it may have heard of the peer before us. */
	peers_refresh(lw);
	CHECK(number >= 1 && number <= lw->peer_count);
	struct link_peer *p = &lw->peers[number];
	if (!p->routes) {
		p->routes = route_peer_new(&lw->l->route_params, p->info.name, route_changed, p);
		if (!p->routes) {
			LOG_ERROR("cluster: out of memory for %s's routes", p->info.name);
			return;
		}
	}
	enum route_result r;
	if (f->kind == LINK_ROUTE_SNAPSHOT) {
		const struct link_route_snapshot *s = &f->snapshot;
		r = route_peer_snapshot(p->routes, s->epoch, s->seq, s->filters, s->filter_count,
		                        s->last);
	} else {
#ifdef STARLING_TEST_HOOKS
		if (test_drop_delta()) {
			LOG_WARN("test hook: a route delta from %s dropped", p->info.name);
			return;
		}
#endif
		static _Thread_local struct route_change ch[LINK_DELTA_CHANGES_MAX];
		const struct link_route_delta *d = &f->delta;
		for (uint32_t i = 0; i < d->change_count; i++)
			ch[i] = (struct route_change){d->changes[i].filter, d->changes[i].add};
		r = route_peer_delta(p->routes, d->epoch, d->first_seq, ch, d->change_count);
	}
	if (r == ROUTE_GAP || r == ROUTE_INVALID)
		LOG_WARN_RL(1, "cluster: %s's routes: %s (applied up to %llu)", p->info.name,
		            route_result_name(r), (unsigned long long)route_peer_seq(p->routes));
	routes_count(lw, p);
}

static void mail_routes(void *ctx, const struct mbox_msg *mb)
{
	struct mail_link_routes m;
	memcpy(&m, mb->body, sizeof(m));
	routes_apply(ctx, m.peer, m.f);
	link_frame_free(m.f);
	free(m.f);
}

static void mail_routes_discard(const struct mbox_msg *mb)
{
	struct mail_link_routes m;
	memcpy(&m, mb->body, sizeof(m));
	link_frame_free(m.f);
	free(m.f);
}

/* ---- forwarding --------------------------------------------------------------- */

/* $SYS/ topics are each node's own figures: never replicated. */
static bool is_sys(struct mqtt_view topic)
{
	return topic.len >= 5 && memcmp(topic.ptr, "$SYS/", 5) == 0;
}

/* A node's origin_rank: FNV-1a of its name, the same on every node. */
static uint64_t rank_of(const char *name)
{
	uint64_t h = 14695981039346656037ull;
	for (; *name; name++) {
		h ^= (uint8_t)*name;
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

static void link_forward(void *ctx, struct msg *m, const struct plan *plan)
{
	struct link_w *lw = ctx;
	for (uint32_t i = 0; i < plan->node_count; i++) {
		uint16_t n = plan->nodes[i];
		struct link_peer *p = &lw->peers[n];
		if (n > lw->peer_count || !peer_wanted(p)) {
			lw->drops[CLUSTER_DROP_DOWN]++;
			continue;
		}
		if (fwdq_push(&p->q, m, (plan->nodes_shared >> n) & 1 ? FWD_SHARED : 0) != 0) {
			lw->drops[CLUSTER_DROP_FULL]++;
			continue;
		}
		lw->pc[n].forwarded[1]++;
		lw->counted = true;
	}
	if (!m->pub.retain || m->forwarded || is_sys(m->pub.topic))
		return;
	/* A retained message published here: every other node keeps it too
	 * (the nodes the plan named store what they are forwarded). */
	uint64_t named = 0;
	for (uint32_t i = 0; i < plan->node_count; i++)
		named |= 1ull << plan->nodes[i];
	for (uint32_t n = 1; n <= lw->peer_count; n++) {
		struct link_peer *p = &lw->peers[n];
		if ((named >> n) & 1 || !peer_wanted(p))
			continue;
		if (fwdq_push(&p->q, m, FWD_STORE_ONLY) != 0)
			lw->drops[CLUSTER_DROP_FULL]++;
		else
			lw->retained[1]++;
	}
}

/* Our retained messages (this worker's shard), to a peer whose link just
 * came up, then the end of the sync: each node ends up holding them all. */
struct sync_ctx {
	struct link_w *lw;
	struct link_peer *p;
};

static void sync_one(void *ctx, struct msg *m)
{
	struct sync_ctx *c = ctx;
	if (is_sys(m->pub.topic))
		return; /* each node's own */
	if (fwdq_push(&c->p->q, m, FWD_STORE_ONLY | FWD_UNBOUNDED) != 0)
		c->lw->drops[CLUSTER_DROP_FULL]++;
	else
		c->lw->retained[1]++;
}

static void sync_retained(struct link_w *lw, struct link_peer *p)
{
	struct sync_ctx c = {lw, p};
	retain_each(lw->w->route.retained, sync_one, &c);
	if (fwdq_push(&p->q, lw->marker, FWD_SYNC_END | FWD_UNBOUNDED) != 0)
		lw->drops[CLUSTER_DROP_FULL]++;
}

/* What waits for p, as PublishBatch frames into its connection's outbox,
 * while the outbox is below CONN_OUT_MAX (the rest waits in the queue). */
static void q_flush(struct link_w *lw, struct link_peer *p)
{
	if (!p->out || !p->out->up)
		return;
	struct conn *c = &p->out->c;
	uint64_t now = lw->w->now_ms;
	while (fwdq_unwritten(&p->q) > 0 && c->out_len < CONN_OUT_MAX) {
		size_t bytes = LINK_FRAME_OVERHEAD_BYTES;
		uint32_t n = 0, k = 0; /* entries taken, publishes in the frame */
		uint32_t avail = fwdq_unwritten(&p->q);
		bool end = false; /* a RetainedSnapshotEnd goes after the batch */
		for (; n < avail && k < BATCH_MAX; n++) {
			const struct fwd_item *it = fwdq_unwritten_at(&p->q, n);
			const struct msg *m = it->m;
			if (!m)
				continue;
			if (it->flags & FWD_SYNC_END) {
				end = true;
				n++;
				break;
			}
			size_t topic = m->pub.topic.len;
			struct link_publish *x = &lw->pubs[k];
			*x = (struct link_publish){
			    .link_seq = it->seq,
			    .version = m->version,
			    .qos = m->pub.qos,
			    .retain = m->pub.retain,
			    .topic = m->pub.topic,
			    .body = {m->data + topic, m->size_bytes - sizeof(*m) - topic},
			    .expiry_left_ms = !m->expires_at_ms        ? 0
			                      : m->expires_at_ms > now ? m->expires_at_ms - now
			                                               : 1,
			    .wall_ms = m->wall_ms,
			    .origin_node = lw->l->id.name,
			    .shared = (it->flags & FWD_SHARED) != 0,
			    .store_only = (it->flags & FWD_STORE_ONLY) != 0,
			};
			size_t one = link_publish_size(x);
			if (k > 0 && bytes + one > LINK_FRAME_BYTES_DEFAULT) {
				end = false;
				break;
			}
			bytes += one;
			k++;
		}
		if (k > 0) {
			struct link_frame f = {.kind = LINK_PUBLISH_BATCH};
			f.batch = (struct link_publish_batch){lw->pubs, k};
			if (!send_now(lw, p->out, &f)) {
				/* Larger than a frame (a 16 MiB message and more): it
				 * can never go; anything else: out of memory, retry. */
				if (k == 1 && bytes > LINK_FRAME_BYTES_DEFAULT)
					lw->drops[CLUSTER_DROP_TOO_LARGE]++;
				else
					return;
			}
		}
		if (end) {
			struct link_frame f = {.kind = LINK_RETAINED_SNAPSHOT_END};
			if (!send_now(lw, p->out, &f))
				return;
		}
		fwdq_wrote(&p->q, n);
	}
}

/* ---- incoming frames ------------------------------------------------------------ */

static void refuse(struct link_w *lw, struct link_conn *lc, const char *why)
{
	LOG_WARN_RL(1, "cluster: link %s %s: %s", lc->outgoing ? "to" : "from",
	            lc->peer_name[0] ? lc->peer_name : conn_peer(&lc->c), why);
	atomic_fetch_add_explicit(&lw->l->view->links_refused, 1, memory_order_relaxed);
	struct link_peer *p = lc->outgoing && lc->peer ? &lw->peers[lc->peer] : NULL;
	if (p && p->out == lc) {
		backoff(lw, p);
		peer_close(lw, p);
	} else {
		conn_close(&lw->w->tp, &lc->c);
	}
}

/* A peer's epoch seen on a connection it dialled: de-duplication starts
 * afresh for a new process (its numbers start again). */
static void dedup_epoch(struct cluster_link *l, uint8_t peer, uint64_t epoch)
{
	if (atomic_load_explicit(&l->dedup_epoch[peer], memory_order_acquire) == epoch)
		return;
	pthread_mutex_lock(&l->dedup_lock);
	if (atomic_load_explicit(&l->dedup_epoch[peer], memory_order_relaxed) != epoch) {
		for (size_t i = 0; i < LINK_WORKERS_MAX; i++)
			atomic_store_explicit(&l->dedup[(size_t)peer * LINK_WORKERS_MAX + i], 0,
			                      memory_order_relaxed);
		atomic_store_explicit(&l->retained_ends[peer], 0, memory_order_relaxed);
		atomic_store_explicit(&l->dedup_epoch[peer], epoch, memory_order_release);
	}
	pthread_mutex_unlock(&l->dedup_lock);
}

static struct link_peer *peer_by_name(struct link_w *lw, const char *name)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 1; i <= lw->peer_count; i++)
			if (!strcmp(lw->peers[i].info.name, name))
				return &lw->peers[i];
		peers_refresh(lw); /* membership may have heard of it since */
	}
	return NULL;
}

static void on_hello(struct link_w *lw, struct link_conn *lc, const struct link_hello *h)
{
	struct cluster_link *l = lw->l;
	if (lc->hello_in) {
		refuse(lw, lc, "a second Hello");
		return;
	}
	if (strcmp(h->cluster_name, l->id.cluster) != 0) {
		refuse(lw, lc, "of another cluster");
		return;
	}
	if (h->link_version != LINK_VERSION) {
		refuse(lw, lc, "another link version");
		return;
	}
	struct link_peer *p = peer_by_name(lw, h->node_name);
	if (!p) {
		refuse(lw, lc, "a node membership does not know (yet)");
		return;
	}
	if (!peer_wanted(p)) { /* it left, or is dead to us: it will hear */
		LOG_INFO_RL(1, "cluster: link from %s refused: it %s", h->node_name,
		            p->info.state == CLUSTER_LEFT ? "left" : "is dead to this node");
		conn_close(&lw->w->tp, &lc->c);
		return;
	}
	if (h->epoch != p->info.epoch) {
		refuse(lw, lc, "an epoch membership does not know (yet)");
		return;
	}
	if (lc->outgoing && lc->peer != p->number) {
		refuse(lw, lc, "answered by another node than dialled");
		return;
	}
	lc->peer = p->number;
	snprintf(lc->peer_name, sizeof(lc->peer_name), "%s", h->node_name);
	lc->hello = *h;
	lc->hello.cluster_name = lc->hello.node_name = lc->peer_name; /* the frame goes */
	lc->hello_in = true;
	lw->ranks[p->number] = rank_of(p->info.name);
	if (!lc->outgoing) {
		dedup_epoch(l, p->number, h->epoch);
		atomic_store_explicit(&l->peer_workers[p->number], h->workers,
		                      memory_order_relaxed);
	}
	if (!lc->hello_sent)
		send_hello(lw, lc);
	struct link_frame f = {.kind = LINK_HELLO_PROOF};
	if (link_proof_make(l->id.secret, l->id.secret_len, h->nonce, l->id.name, l->id.epoch,
	                    &f.proof) != 0) {
		refuse(lw, lc, "cannot make our proof");
		return;
	}
	send_now(lw, lc, &f);
}

static void on_proof(struct link_w *lw, struct link_conn *lc, const struct link_hello_proof *pr)
{
	struct cluster_link *l = lw->l;
	if (!lc->hello_in || lc->up) {
		refuse(lw, lc, "a proof out of order");
		return;
	}
	if (!link_proof_check(l->id.secret, l->id.secret_len, lc->nonce, &lc->hello, pr)) {
		refuse(lw, lc, "it cannot prove membership (another cluster_secret_file)");
		return;
	}
	lc->up = true;
	if (!lc->outgoing)
		return;
	struct link_peer *p = &lw->peers[lc->peer];
	lw->links_up++;
	p->backoff_ms = 0;
	sync_retained(lw, p);
	if (lw->w->id == 0) {
		p->snapshot_due = true;
		LOG_INFO("cluster: link to %s up", p->info.name);
	}
}

/* Has a publish numbered seq from that worker of that peer been delivered
 * here already? If not, it is from now on. */
static bool seen_before(struct link_w *lw, const struct link_conn *lc, uint64_t seq)
{
	_Atomic uint64_t *d = &lw->l->dedup[(size_t)lc->peer * LINK_WORKERS_MAX + lc->hello.worker];
	uint64_t cur = atomic_load_explicit(d, memory_order_acquire);
	do {
		if (seq <= cur)
			return true;
	} while (!atomic_compare_exchange_weak_explicit(d, &cur, seq, memory_order_acq_rel,
	                                                memory_order_acquire));
	return false;
}

static void on_batch(struct link_w *lw, struct link_conn *lc, const struct link_publish_batch *b)
{
	uint64_t now = lw->w->now_ms;
	uint64_t ack = 0;
	for (uint32_t i = 0; i < b->count; i++) {
		const struct link_publish *x = &b->publishes[i];
		if (x->link_seq) {
			if (x->link_seq > ack)
				ack = x->link_seq;
			if (seen_before(lw, lc, x->link_seq)) {
				lw->duplicates++; /* resent after a reconnect: it was delivered */
				continue;
			}
		}
		struct msg *m = msg_from_body(x->body.ptr, x->body.len, x->version, x->qos,
		                              x->retain, x->topic, now);
		if (!m) {
			LOG_WARN_RL(1, "cluster: a message from %s on \"%.*s\" does not decode: %s",
			            lc->peer_name, (int)x->topic.len, (const char *)x->topic.ptr,
			            strerror(errno));
			continue;
		}
		m->forwarded = true;
		m->forwarded_shared = x->shared;
		m->origin_node = lc->peer;
		m->expires_at_ms = x->expiry_left_ms ? now + x->expiry_left_ms : 0;
		if (x->retain) {
			m->wall_ms = x->wall_ms;
			m->origin_rank = lw->ranks[lc->peer];
		}
		if (x->store_only) {
			lw->retained[0]++;
			route_retain(&lw->w->route, m);
			continue;
		}
		lw->pc[lc->peer].forwarded[0]++;
		lw->counted = true;
		route_publish(&lw->w->route, m);
	}
	if (ack) { /* routed: in its subscribers' sessions on this node */
		struct link_frame f = {.kind = LINK_ACK, .ack = {.up_to = ack}};
		send_now(lw, lc, &f);
	}
}

static bool on_frame(struct link_w *lw, struct link_conn *lc, struct link_frame *f)
{
	if (f->kind == LINK_HELLO) {
		on_hello(lw, lc, &f->hello);
		return true;
	}
	if (!lc->hello_in) {
		refuse(lw, lc, "a frame before Hello");
		return false;
	}
	if (f->kind == LINK_HELLO_PROOF) {
		on_proof(lw, lc, &f->proof);
		return true;
	}
	if (!lc->up) {
		refuse(lw, lc, "a frame before the proof");
		return false;
	}
	switch (f->kind) {
	case LINK_ROUTE_SNAPSHOT:
	case LINK_ROUTE_DELTA: {
		if (lw->w->id == 0) {
			routes_apply(lw, lc->peer, f);
			return true;
		}
		struct link_frame *copy = malloc(sizeof(*copy));
		if (!copy) {
			refuse(lw, lc, "out of memory for a route frame");
			return false;
		}
		*copy = *f;
		f->hold = NULL; /* the copy owns it now */
		f->kind = LINK_NONE;
		struct mail_link_routes m = {copy, lc->peer};
		struct mbox_msg mb = {.kind = MAIL_LINK_ROUTES, .cls = MBOX_CONTROL};
		memcpy(mb.body, &m, sizeof(m));
		mail_send(&lw->w->mail, 0, &mb);
		return true;
	}
	case LINK_PUBLISH_BATCH:
		on_batch(lw, lc, &f->batch);
		return true;
	case LINK_ACK:
		if (lc->outgoing && lw->peers[lc->peer].out == lc)
			fwdq_ack(&lw->peers[lc->peer].q, f->ack.up_to);
		return true;
	case LINK_PING:
		if (!f->ping.ack) { /* answered on the connection it came on */
			struct link_frame pong = {.kind = LINK_PING, .ping = {f->ping.seq, true}};
			send_now(lw, lc, &pong);
		}
		return true;
	case LINK_RETAINED_SNAPSHOT_END:
		if (!lc->outgoing)
			atomic_fetch_add_explicit(&lw->l->retained_ends[lc->peer], 1,
			                          memory_order_relaxed);
		return true;
	default:
		return true; /* what a newer version may send */
	}
}

/* ---- the transport's layer above -------------------------------------------- */

static bool link_admit(void *ctx, const struct peer_addr *peer)
{
	(void)ctx;
	(void)peer;
	return true; /* the handshake decides */
}

static void link_opened(void *ctx, struct conn *c)
{
	struct link_w *lw = ctx;
	struct link_conn *lc = (struct link_conn *)c;
	lc->last_rx_ms = lw->w->now_ms;
	if (lc->outgoing) { /* the connect completed */
		send_hello(lw, lc);
		return;
	}
	lc->lw = lw;
	link_decoder_init(&lc->dec, LINK_FRAME_BYTES_DEFAULT);
}

static void link_input(void *ctx, struct conn *c, const uint8_t *data, uint32_t len)
{
	struct link_w *lw = ctx;
	struct link_conn *lc = (struct link_conn *)c;
	lc->last_rx_ms = lw->w->now_ms;
	size_t off = 0;
	while (off < len && !c->closing) {
		size_t used;
		struct link_frame f;
		enum link_status st = link_decode(&lc->dec, data + off, len - off, &used, &f);
		off += used;
		if (st == LINK_NEED_MORE)
			break;
		if (st == LINK_INVALID) {
			refuse(lw, lc, link_invalid_name(lc->dec.why));
			break;
		}
		bool go_on = on_frame(lw, lc, &f);
		link_frame_free(&f);
		lw->pc[lc->peer].frames[0]++; /* after it: a Hello names the peer */
		if (!go_on)
			break;
	}
	lw->pc[lc->peer].bytes[0] += len;
	lw->counted = true;
}

static void link_lost(void *ctx, struct conn *c)
{
	struct link_w *lw = ctx;
	struct link_conn *lc = (struct link_conn *)c;
	if (lc->outgoing && lc->peer && lw->peers[lc->peer].out == lc) {
		struct link_peer *p = &lw->peers[lc->peer];
		/* A broken link is a reason to probe, never a verdict. */
		atomic_store_explicit(&lw->l->view->probe_now[p->number], true,
		                      memory_order_relaxed);
		if (lw->w->id == 0 && lc->up)
			LOG_INFO("cluster: link to %s lost; dialling again", p->info.name);
		peer_close(lw, p);
		backoff(lw, p);
		return;
	}
	conn_close(&lw->w->tp, c);
}

static void link_reaped(void *ctx, struct conn *c)
{
	struct link_w *lw = ctx;
	struct link_conn *lc = (struct link_conn *)c;
	if (lc->outgoing && lc->peer && lw->peers[lc->peer].out == lc) {
		struct link_peer *p = &lw->peers[lc->peer];
		p->out = NULL;
		if (lc->up)
			lw->links_up--;
	}
	link_decoder_fini(&lc->dec);
}

/* ---- the workers' extension ------------------------------------------------- */

static int ext_init(void *ctx, struct worker *w)
{
	struct cluster_link *l = ctx;
	struct link_w *lw = calloc(1, sizeof(*lw));
	if (!lw)
		return -1;
	l->per[w->id] = lw;
	lw->l = l;
	lw->w = w;
	for (unsigned i = 0; i <= CLUSTER_PEERS_MAX; i++) {
		lw->peers[i].lw = lw;
		lw->peers[i].number = (uint8_t)i;
		fwdq_init(&lw->peers[i].q, l->buf_bytes);
	}
	link_buf_init(&lw->scratch, (size_t)LINK_FRAME_BYTES_DEFAULT * 2, LINK_FRAME_BYTES_DEFAULT);
	lw->pubs = malloc(BATCH_MAX * sizeof(*lw->pubs));
	if (!lw->pubs)
		return -1;
	struct transport_ops ops = {
	    .conn_size = sizeof(struct link_conn),
	    .ctx = lw,
	    .admit = link_admit,
	    .opened = link_opened,
	    .input = link_input,
	    .lost = link_lost,
	    .reaped = link_reaped,
	};
	transport_add_upper(&w->tp, LINK_UPPER, &ops);
	w->route.forward = link_forward;
	w->route.forward_ctx = lw;
	w->route.node_rank = rank_of(l->id.name);
	if (w->id == 0) /* before the threads start: $SYS and metrics name the node */
		memcpy(l->view->self_name, l->id.name, sizeof(l->view->self_name));
	static const uint8_t body[] = {0, 1, 'm'}; /* any message will do: it is never sent */
	lw->marker = msg_from_body(body, sizeof(body), 4, 0, false, mqtt_view_str("m"), 0);
	if (!lw->marker)
		return -1;
	if (w->id == 0) {
#ifdef STARLING_TEST_HOOKS
		test_hooks_init();
#endif
		lw->origin = route_origin_new(&l->route_params, l->id.name, l->id.epoch);
		if (!lw->origin)
			return -1;
		w->route.effect = route_effect;
		w->route.effect_ctx = lw;
	}
	/* Only worker 0 is sent route frames (routes_apply checks), but every
	 * worker's mail knows the kind, to discard one left at exit. */
	mail_register(&w->mail, MAIL_LINK_ROUTES, mail_routes, mail_routes_discard, lw);
	return 0;
}

static void ext_start(void *ctx, struct worker *w)
{
	struct cluster_link *l = ctx;
	struct link_w *lw = l->per[w->id];
	const struct transport_node *tn = w->tp.node;
	for (unsigned i = 0; i < tn->listener_count; i++)
		if (tn->listeners[i].kind == LISTENER_DIAL)
			lw->li_dial = (uint8_t)i;
	CHECK(tn->listeners[lw->li_dial].kind == LISTENER_DIAL);
}

static void publish_counters(struct link_w *lw)
{
	struct cluster_view *v = lw->l->view;
	for (uint32_t n = 0; lw->counted && n <= lw->peer_count; n++) {
		struct cluster_link_counts *c = &lw->pc[n];
		for (int d = 0; d < 2; d++) {
			if (c->bytes[d]) {
				atomic_fetch_add_explicit(&v->link_bytes[d], c->bytes[d],
				                          memory_order_relaxed);
				atomic_fetch_add_explicit(&v->peer_counts[n].bytes[d], c->bytes[d],
				                          memory_order_relaxed);
			}
			if (c->frames[d]) {
				atomic_fetch_add_explicit(&v->link_frames[d], c->frames[d],
				                          memory_order_relaxed);
				atomic_fetch_add_explicit(&v->peer_counts[n].frames[d],
				                          c->frames[d], memory_order_relaxed);
			}
			if (c->forwarded[d]) {
				atomic_fetch_add_explicit(&v->forwarded[d], c->forwarded[d],
				                          memory_order_relaxed);
				atomic_fetch_add_explicit(&v->peer_counts[n].forwarded[d],
				                          c->forwarded[d], memory_order_relaxed);
			}
		}
		*c = (struct cluster_link_counts){0};
	}
	lw->counted = false;
	for (int d = 0; d < 2; d++) {
		if (lw->retained[d])
			atomic_fetch_add_explicit(&v->retained_replicated[d], lw->retained[d],
			                          memory_order_relaxed);
		lw->retained[d] = 0;
	}
	for (int r = 0; r < CLUSTER_LINK_DROPS; r++) {
		if (lw->drops[r])
			atomic_fetch_add_explicit(&v->link_drops[r], lw->drops[r],
			                          memory_order_relaxed);
		lw->drops[r] = 0;
	}
	if (lw->duplicates) {
		atomic_fetch_add_explicit(&v->forward_duplicates, lw->duplicates,
		                          memory_order_relaxed);
		lw->duplicates = 0;
	}
	if (lw->links_up) {
		atomic_fetch_add_explicit(&v->links_up, (uint64_t)lw->links_up,
		                          memory_order_relaxed);
		lw->links_up = 0;
	}
}

/* Worker 0: our routes' digest for membership's probes, and the peers'
 * routes held here checked against theirs: behind for longer than
 * GAP_REPAIR_MS (a delta lost, which a connection's order should make
 * impossible — this is the net under it) asks every worker to close the
 * connection the peer's worker 0 dialled, so it sends a snapshot on the
 * next one. */
static void digests(struct link_w *lw)
{
	struct cluster_view *v = lw->l->view;
	atomic_store_explicit(&v->own_route_seq, route_origin_seq(lw->origin),
	                      memory_order_relaxed);
	atomic_store_explicit(&v->own_route_epoch, route_origin_epoch(lw->origin),
	                      memory_order_relaxed);
	uint64_t now = lw->w->now_ms;
	for (uint32_t n = 1; n <= lw->peer_count; n++) {
		struct link_peer *p = &lw->peers[n];
		uint64_t epoch =
		    atomic_load_explicit(&v->peer_route_epoch[n], memory_order_acquire);
		uint64_t seq = atomic_load_explicit(&v->peer_route_seq[n], memory_order_relaxed);
		bool behind = p->info.state == CLUSTER_ALIVE && epoch == p->info.epoch &&
		              p->routes && route_peer_behind(p->routes, epoch, seq);
		atomic_store_explicit(&v->route_lag_ms[n],
		                      behind && lw->behind_since[n] ? now - lw->behind_since[n] : 0,
		                      memory_order_relaxed);
		if (!behind) {
			lw->behind_since[n] = 0;
		} else if (!lw->behind_since[n]) {
			lw->behind_since[n] = now;
		} else if (now - lw->behind_since[n] >= GAP_REPAIR_MS) {
			LOG_WARN(
			    "cluster: %s's routes here are at %llu, its own at %llu: fetching them "
			    "whole",
			    p->info.name, (unsigned long long)route_peer_seq(p->routes),
			    (unsigned long long)seq);
			atomic_fetch_add_explicit(&v->resync[n], 1, memory_order_relaxed);
			atomic_fetch_add_explicit(&v->route_resyncs, 1, memory_order_relaxed);
			lw->behind_since[n] = now; /* and again if that did not help */
		}
	}
}

/* Hung connections: a link whose packets vanish (a cable, a firewall, a
 * peer stopped) stays open as far as TCP knows. Outgoing connections ping
 * every PING_MS and the peer answers; any connection, either way, that
 * brought nothing for SILENT_MS is closed (an outgoing one is dialled
 * again and membership probes the peer; what it had not acknowledged goes
 * again on the next). Once a second over the table: it holds the clients
 * too. */
static void liveness(struct link_w *lw)
{
	uint64_t now = lw->w->now_ms;
	/* We were the ones not running (SIGSTOP, a frozen VM): what the peers
	 * sent meanwhile waits unread in our sockets, so silence counts only
	 * from now. */
	if (lw->last_turn_ms && now - lw->last_turn_ms > PING_MS)
		lw->awake_since_ms = now;
	lw->last_turn_ms = now;
	for (uint32_t n = 1; n <= lw->peer_count; n++) {
		struct link_conn *lc = lw->peers[n].out;
		if (lc && lc->up && now - lc->last_ping_ms >= PING_MS) {
			struct link_frame f = {.kind = LINK_PING, .ping = {++lc->ping_seq, false}};
			send_now(lw, lc, &f);
			lc->last_ping_ms = now;
		}
	}
	if (now < lw->next_liveness_ms)
		return;
	lw->next_liveness_ms = now + PING_MS;
	struct transport *tp = &lw->w->tp;
	for (uint32_t i = 0; i < tp->conn_cap; i++) {
		struct conn *c = tp->conns[i];
		if (!c || c->closing || c->dialling || conn_is_mqtt(tp, c))
			continue;
		struct link_conn *lc = (struct link_conn *)c;
		uint64_t since =
		    lc->last_rx_ms > lw->awake_since_ms ? lc->last_rx_ms : lw->awake_since_ms;
		if (now - since < SILENT_MS)
			continue;
		LOG_WARN_RL(1, "cluster: link %s %s silent for %llu ms: closed",
		            lc->outgoing ? "to" : "from",
		            lc->peer_name[0] ? lc->peer_name : conn_peer(c),
		            (unsigned long long)(now - lc->last_rx_ms));
		struct link_peer *p = lc->outgoing && lc->peer ? &lw->peers[lc->peer] : NULL;
		if (p && p->out == lc) {
			atomic_store_explicit(&lw->l->view->probe_now[p->number], true,
			                      memory_order_relaxed);
			peer_close(lw, p);
			backoff(lw, p);
		} else {
			conn_close(tp, c);
		}
	}
}

/* Every worker: close the connections a peer's worker 0 dialled to us when
 * worker 0 asked for its routes again (digests). */
static void resyncs(struct link_w *lw)
{
	struct cluster_view *v = lw->l->view;
	struct transport *tp = &lw->w->tp;
	for (uint32_t n = 1; n <= lw->peer_count; n++) {
		uint64_t r = atomic_load_explicit(&v->resync[n], memory_order_relaxed);
		if (r == lw->resync_seen[n])
			continue;
		lw->resync_seen[n] = r;
		for (uint32_t i = 0; i < tp->conn_cap; i++) {
			struct conn *c = tp->conns[i];
			if (!c || c->closing || conn_is_mqtt(tp, c))
				continue;
			struct link_conn *lc = (struct link_conn *)c;
			if (!lc->outgoing && lc->peer == n && lc->hello_in && lc->hello.worker == 0)
				conn_close(tp, c);
		}
	}
}

/* Worker 0: has this node what /readyz promises, once it joined: every
 * alive peer's routes (a snapshot of its current epoch applied), and the
 * whole retained set from one peer (a sync from each of its workers)? It
 * stays so once it was: a peer joining later does not make us unready. */
static void readiness(struct link_w *lw)
{
	struct cluster_link *l = lw->l;
	struct cluster_view *v = l->view;
	if (atomic_load_explicit(&v->synced, memory_order_relaxed) ||
	    !atomic_load_explicit(&v->ready, memory_order_relaxed))
		return;
	bool routes = true, retained = false, anyone = false;
	for (uint32_t n = 1; n <= lw->peer_count; n++) {
		struct link_peer *p = &lw->peers[n];
		if (p->info.state != CLUSTER_ALIVE)
			continue;
		anyone = true;
		routes &= p->routes && route_peer_epoch(p->routes) == p->info.epoch;
		uint32_t workers = atomic_load_explicit(&l->peer_workers[n], memory_order_relaxed);
		retained |=
		    atomic_load_explicit(&l->dedup_epoch[n], memory_order_relaxed) ==
		        p->info.epoch &&
		    workers > 0 &&
		    atomic_load_explicit(&l->retained_ends[n], memory_order_relaxed) >= workers;
	}
	if (!anyone || (routes && retained)) {
		atomic_store_explicit(&v->synced, true, memory_order_relaxed);
		LOG_INFO("cluster: in sync%s", anyone ? ": every peer's routes and the retained "
		                                        "messages are here"
		                                      : " (no peer alive)");
	}
}

static void ext_turn(void *ctx, struct worker *w)
{
	struct cluster_link *l = ctx;
	struct link_w *lw = l->per[w->id];
	peers_refresh(lw);
	/* The node is leaving (main sets b->stopping before membership says
	 * goodbye): dial nobody again. */
	bool stopping = w->stop_phase != STOP_NONE || atomic_load(&w->b->stopping);
	for (uint32_t i = 1; i <= lw->peer_count; i++) {
		struct link_peer *p = &lw->peers[i];
		if (!peer_wanted(p)) {
			if (p->q.len)
				peer_discard(lw, p);
			continue;
		}
		if (!p->out && !stopping && w->now_ms >= p->retry_at_ms)
			dial(lw, p);
		if (w->id == 0)
			send_routes(lw, p);
		q_flush(lw, p);
	}
	if (w->id == 0) {
		digests(lw);
		readiness(lw);
	}
	resyncs(lw);
	liveness(lw);
	publish_counters(lw);
}

static void ext_fini(void *ctx, struct worker *w)
{
	struct cluster_link *l = ctx;
	struct link_w *lw = l->per[w->id];
	if (!lw)
		return;
	for (unsigned i = 0; i <= CLUSTER_PEERS_MAX; i++) {
		struct link_peer *p = &lw->peers[i];
		fwdq_fini(&p->q);
		route_peer_free(p->routes);
	}
	link_buf_fini(&lw->scratch);
	route_origin_free(lw->origin);
	if (lw->marker)
		msg_unref(lw->marker);
	free(lw->pubs);
	free(lw);
	l->per[w->id] = NULL;
}

struct cluster_link *cluster_link_new(const struct config *cfg, const struct cluster_identity *id,
                                      struct cluster_view *view)
{
	struct cluster_link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->cfg = cfg;
	l->id = *id;
	l->view = view;
	l->workers = broker_worker_count(cfg);
	l->per = calloc(l->workers, sizeof(*l->per));
	l->dedup = calloc((size_t)(CLUSTER_PEERS_MAX + 1) * LINK_WORKERS_MAX, sizeof(*l->dedup));
	if (!l->per || !l->dedup) {
		free(l->per);
		free(l->dedup);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->dedup_lock, NULL);
	l->buf_bytes = (size_t)(cfg->cluster_link_buffer_bytes / l->workers);
	if (l->buf_bytes < LINK_FRAME_BYTES_MIN)
		l->buf_bytes = LINK_FRAME_BYTES_MIN;
	route_params_default(&l->route_params);
	if (getrandom(&l->route_params.hash_seed, sizeof(l->route_params.hash_seed), 0) !=
	    sizeof(l->route_params.hash_seed))
		l->route_params.hash_seed = id->epoch;
	l->ext = (struct worker_ext){
	    .ctx = l,
	    .listen = &cfg->cluster_listen,
	    .upper = LINK_UPPER,
	    .init = ext_init,
	    .start = ext_start,
	    .turn = ext_turn,
	    .fini = ext_fini,
	};
	return l;
}

const struct worker_ext *cluster_link_ext(struct cluster_link *l)
{
	return &l->ext;
}

void cluster_link_free(struct cluster_link *l)
{
	if (!l)
		return;
	explicit_bzero(l->id.secret, sizeof(l->id.secret));
	pthread_mutex_destroy(&l->dedup_lock);
	free(l->dedup);
	free(l->per);
	free(l);
}
