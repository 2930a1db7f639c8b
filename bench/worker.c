/*
 * worker.c — one worker process: set up its ring and its slice of the
 * clients, then run the loop until the coordinator says stop.
 *
 * Loop turn (CONVENTIONS.md "The worker loop"):
 *   read the coordinator's flags; start connects the connect rate allows;
 *   once a second: deadlines, keep alive, RSS; run due publishers;
 *   flush sends and re-arm receives (once per turn); reap closed clients;
 *   submit and wait until the next deadline; dispatch completions.
 * Owner: the single thread of the worker process; only stats[index] of the
 * shared region is written here, plus the e2e window through e2e.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "payload.h"
#include "procfs.h"
#include "worker.h"

#define TICK_NS       (1000000000ull)
#define STOP_GRACE_NS (3000000000ull)
#define POLL_NS       (200000ull)   /* blocked publishers are polled this often */
#define IDLE_WAIT_NS  (50000000ull) /* never sleep longer: flags are polled */

static int parse_list(struct worker *w, const char *hosts)
{
	char list[SCENARIO_STR_MAX];
	snprintf(list, sizeof(list), "%s", hosts);
	char *save = NULL;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (w->target_count >= TARGETS_MAX) {
			fprintf(stderr, "bench: more than %u hosts\n", TARGETS_MAX);
			return -1;
		}
		char host[128], port[16];
		snprintf(port, sizeof(port), "%u", w->sc->port);
		if (tok[0] == '[') {
			char *close_br = strchr(tok, ']');
			if (!close_br)
				return -1;
			*close_br = 0;
			snprintf(host, sizeof(host), "%s", tok + 1);
			if (close_br[1] == ':')
				snprintf(port, sizeof(port), "%s", close_br + 2);
		} else {
			char *colon = strchr(tok, ':');
			if (colon && !strchr(colon + 1, ':')) {
				*colon = 0;
				snprintf(port, sizeof(port), "%s", colon + 1);
			}
			snprintf(host, sizeof(host), "%s", tok);
		}
		struct addrinfo hints, *res = NULL;
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		int rc = getaddrinfo(host, port, &hints, &res);
		if (rc != 0 || !res) {
			fprintf(stderr, "bench: %s:%s: %s\n", host, port, gai_strerror(rc));
			return -1;
		}
		uint32_t t = w->target_count++;
		memcpy(&w->targets[t], res->ai_addr, res->ai_addrlen);
		w->target_lens[t] = res->ai_addrlen;
		snprintf(w->target_names[t], sizeof(w->target_names[t]), "%s", host);
		freeaddrinfo(res);
	}
	return w->target_count ? 0 : -1;
}

/* hosts, then sub_hosts: subscribers connect to the latter when given. */
static int parse_targets(struct worker *w)
{
	if (parse_list(w, w->sc->hosts) < 0)
		return -1;
	w->pub_targets = w->target_count;
	if (w->sc->sub_hosts[0] && parse_list(w, w->sc->sub_hosts) < 0)
		return -1;
	return 0;
}

static int parse_sources(struct worker *w)
{
	const char *s = w->sc->source;
	if (!*s)
		return 0;
	char first[SCENARIO_STR_MAX], last[SCENARIO_STR_MAX];
	const char *dash = strchr(s, '-');
	if (dash) {
		snprintf(first, sizeof(first), "%.*s", (int)(dash - s), s);
		snprintf(last, sizeof(last), "%s", dash + 1);
	} else {
		snprintf(first, sizeof(first), "%s", s);
		snprintf(last, sizeof(last), "%s", s);
	}
	struct in_addr a, b;
	if (inet_pton(AF_INET, first, &a) != 1 || inet_pton(AF_INET, last, &b) != 1 ||
	    ntohl(b.s_addr) < ntohl(a.s_addr) || ntohl(b.s_addr) - ntohl(a.s_addr) >= SOURCES_MAX) {
		fprintf(stderr, "bench: bad source range '%s'\n", s);
		return -1;
	}
	w->source_first = ntohl(a.s_addr);
	w->source_count = ntohl(b.s_addr) - ntohl(a.s_addr) + 1;
	return 0;
}

static int setup_clients(struct worker *w)
{
	const struct scenario *sc = w->sc;
	uint32_t total = w->plan.clients_total, mine = 0, pubs = 0, subs = 0;
	for (uint32_t i = 0; i < total; i++) {
		if (plan_slice(&w->plan, i, w->slices) != w->slice)
			continue;
		mine++;
		if (plan_role(&w->plan, i) == ROLE_PUB)
			pubs++;
		else if (plan_role(&w->plan, i) == ROLE_SUB)
			subs++;
	}
	w->client_count = mine;
	w->clients = calloc(mine ? mine : 1, sizeof(*w->clients));
	w->pubs = calloc(pubs ? pubs : 1, sizeof(*w->pubs));
	uint32_t lists = mine ? mine : 1;
	w->flush = malloc(lists * sizeof(uint32_t));
	w->rearm = malloc(lists * sizeof(uint32_t));
	w->reap = malloc(lists * sizeof(uint32_t));
	w->ready = malloc((pubs ? pubs : 1) * sizeof(uint32_t));
	w->heap = malloc((pubs ? pubs : 1) * sizeof(uint32_t));
	w->tx_free = malloc(TX_FREE_MAX * sizeof(*w->tx_free));
	if (!w->clients || !w->pubs || !w->flush || !w->rearm || !w->reap || !w->ready ||
	    !w->heap || !w->tx_free)
		return -ENOMEM;

	/* every publisher of a non-pairs shape has the same local targets */
	uint32_t shared_target = 0;
	if (sc->kind != SCENARIO_PAIRS && pubs)
		shared_target =
		    plan_local_deliveries(sc, &w->plan, 0, w->slice_lo, w->slice_hi, w->slices);
	uint32_t n = 0;
	for (uint32_t i = 0; i < total; i++) {
		if (plan_slice(&w->plan, i, w->slices) != w->slice)
			continue;
		struct client *c = &w->clients[n++];
		c->fd = -1;
		c->id = i;
		c->role = (uint8_t)plan_role(&w->plan, i);
		c->pub = NO_PUB;
		if (c->role != ROLE_PUB)
			continue;
		struct pubstate *p = &w->pubs[w->pub_count];
		c->pub = w->pub_count++;
		p->client = (uint32_t)(c - w->clients);
		p->rank = plan_rank(&w->plan, i);
		p->inflight_max = sc->inflight;
		p->e2e_target = sc->kind == SCENARIO_PAIRS
		                    ? plan_local_deliveries(sc, &w->plan, p->rank, w->slice_lo,
		                                            w->slice_hi, w->slices)
		                    : shared_target;
		p->slots = calloc(sc->inflight, 1);
		char topic[160];
		plan_pub_topic(sc, p->rank, topic, sizeof(topic));
		p->topic = strdup(topic);
		if (!p->slots || !p->topic)
			return -ENOMEM;
		p->topic_len = (uint16_t)strlen(topic);
	}

	uint64_t sinks = sc->kind == SCENARIO_SHARED ? sc->groups : subs;
	uint64_t per_sink = w->plan.pubs_total ? w->plan.pubs_total : 4096;
	if (sc->kind == SCENARIO_PAIRS)
		per_sink = 1;
	uint64_t cap = sinks * per_sink;
	/* 4 M pairs (about 400 MB of table): beyond, deliveries count as untracked */
	if (cap > (1u << 22))
		cap = 1u << 22;
	if (track_init(&w->track, (uint32_t)cap) < 0)
		return -ENOMEM;
	return 0;
}

static void heap_swap(struct worker *w, uint32_t a, uint32_t b)
{
	uint32_t t = w->heap[a];
	w->heap[a] = w->heap[b];
	w->heap[b] = t;
}

static uint64_t heap_due(struct worker *w, uint32_t i)
{
	return w->pubs[w->heap[i]].due_ns;
}

static void heap_push(struct worker *w, uint32_t pub)
{
	w->pubs[pub].in_heap = true;
	uint32_t i = w->heap_count++;
	w->heap[i] = pub;
	while (i > 0 && heap_due(w, (i - 1) / 2) > heap_due(w, i)) {
		heap_swap(w, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static uint32_t heap_pop(struct worker *w)
{
	uint32_t top = w->heap[0];
	w->heap[0] = w->heap[--w->heap_count];
	uint32_t i = 0;
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < w->heap_count && heap_due(w, l) < heap_due(w, m))
			m = l;
		if (r < w->heap_count && heap_due(w, r) < heap_due(w, m))
			m = r;
		if (m == i)
			break;
		heap_swap(w, i, m);
		i = m;
	}
	w->pubs[top].in_heap = false;
	return top;
}

void worker_ready_push(struct worker *w, uint32_t pub)
{
	struct pubstate *p = &w->pubs[pub];
	if (p->on_ready || p->in_heap || p->done || !w->go_ns)
		return;
	p->on_ready = true;
	w->ready[w->ready_count++] = pub;
}

static bool pub_finished(struct worker *w, struct pubstate *p)
{
	return (w->sc->count && p->seq >= w->sc->count) || (w->end_ns && w->now_ns >= w->end_ns) ||
	       w->stop_ns;
}

static void pubs_run(struct worker *w)
{
	while (w->heap_count && heap_due(w, 0) <= w->now_ns) {
		uint32_t pub = heap_pop(w);
		worker_ready_push(w, pub);
	}
	uint32_t keep = 0;
	for (uint32_t i = 0; i < w->ready_count; i++) {
		uint32_t idx = w->ready[i];
		struct pubstate *p = &w->pubs[idx];
		if (p->done) {
			p->on_ready = false;
			continue;
		}
		if (pub_finished(w, p)) {
			if (p->inflight == 0) {
				p->done = true;
				p->on_ready = false;
				w->st->pubs_done++;
				continue;
			}
			w->ready[keep++] = idx; /* waiting for acknowledgements */
			continue;
		}
		if (!w->rate_interval_ns) {
			if (client_publish(w, p, PUB_BATCH))
				w->published_this_turn = true;
			w->ready[keep++] = idx;
			continue;
		}
		uint32_t n = 0;
		while (p->due_ns <= w->now_ns && n < PUB_BATCH && client_publish(w, p, 1)) {
			p->due_ns += w->rate_interval_ns;
			n++;
		}
		/* a publisher that fell behind by over a second does not burst */
		if (p->due_ns + TICK_NS < w->now_ns)
			p->due_ns = w->now_ns;
		if (p->due_ns > w->now_ns && !pub_finished(w, p)) {
			p->on_ready = false;
			heap_push(w, idx);
			continue;
		}
		if (n == PUB_BATCH)
			w->published_this_turn = true;
		w->ready[keep++] = idx;
	}
	w->ready_count = keep;
}

static void go_start(struct worker *w)
{
	w->go_ns = w->now_ns;
	if (w->sc->duration_s)
		w->end_ns = w->now_ns + (uint64_t)w->sc->duration_s * TICK_NS;
	for (uint32_t i = 0; i < w->pub_count; i++) {
		struct pubstate *p = &w->pubs[i];
		p->progress_ns = w->now_ns;
		/* spread publishers over one interval so they do not send in lockstep */
		p->due_ns = w->now_ns;
		if (w->rate_interval_ns && w->pub_count)
			p->due_ns += w->rate_interval_ns * i / w->pub_count;
		if (w->clients[p->client].state == CS_READY)
			worker_ready_push(w, i);
	}
}

static void stop_start(struct worker *w)
{
	w->stop_ns = w->now_ns;
	for (uint32_t i = 0; i < w->client_count; i++) {
		struct client *c = &w->clients[i];
		if (c->state == CS_NEW) {
			c->state = CS_CLOSED; /* never started: nothing to close */
			w->closed++;
		} else if (c->state == CS_READY || c->state == CS_SUBACK) {
			client_send_disconnect(w, c);
		} else if (c->state < CS_CLOSING) {
			io_close(w, c, FAIL_OTHER, false);
		}
	}
}

static void connects_run(struct worker *w)
{
	uint64_t allowed = w->client_count;
	if (w->connect_rate_w > 0) {
		double secs = (double)(w->now_ns - w->start_ns) / 1e9;
		allowed = (uint64_t)(secs * w->connect_rate_w) + 1;
	}
	while (w->next_connect < w->client_count && w->next_connect < allowed &&
	       w->connecting < CONNECTING_MAX)
		io_connect_start(w, &w->clients[w->next_connect++]);
}

static void housekeeping(struct worker *w)
{
	uint64_t deadline_ns = (uint64_t)w->sc->connect_timeout_s * TICK_NS;
	uint32_t now_s = (uint32_t)((w->now_ns - w->start_ns) / TICK_NS);
	uint32_t ka = w->sc->keepalive_s;
	for (uint32_t i = 0; i < w->client_count; i++) {
		struct client *c = &w->clients[i];
		if (c->state >= CS_TCP && c->state < CS_READY && w->now_ns - c->t0_ns > deadline_ns)
			io_close(w, c, FAIL_TIMEOUT, true);
		else if (c->state == CS_READY && ka && now_s - c->tx_s >= (ka + 1) / 2)
			client_send_ping(w, c);
	}
	w->st->rss_bytes = procfs_self_rss_bytes();
	w->tick_ns = w->now_ns + TICK_NS;
}

static uint64_t wait_ns(struct worker *w)
{
	if (w->published_this_turn)
		return 0;
	uint64_t until = w->tick_ns;
	if (w->ready_count && w->now_ns + POLL_NS < until)
		until = w->now_ns + POLL_NS;
	if (w->heap_count && heap_due(w, 0) < until)
		until = heap_due(w, 0);
	if (w->next_connect < w->client_count && w->connecting < CONNECTING_MAX &&
	    w->connect_rate_w > 0) {
		uint64_t next =
		    w->start_ns + (uint64_t)((double)w->next_connect / w->connect_rate_w * 1e9);
		if (next < until)
			until = next;
	}
	if (until <= w->now_ns)
		return 0;
	uint64_t d = until - w->now_ns;
	return d > IDLE_WAIT_NS ? IDLE_WAIT_NS : d;
}

static void loop_run(struct worker *w)
{
	for (;;) {
		w->now_ns = worker_clock_ns();
		w->published_this_turn = false;
		if (!w->go_ns && shared_load(&w->sh->go))
			go_start(w);
		if (!w->stop_ns && shared_load(&w->sh->stop))
			stop_start(w);
		if (w->stop_ns &&
		    (w->closed == w->client_count || w->now_ns - w->stop_ns > STOP_GRACE_NS))
			break;
		if (!w->stop_ns)
			connects_run(w);
		if (w->now_ns >= w->tick_ns)
			housekeeping(w);
		if (w->go_ns)
			pubs_run(w);
		io_flush_all(w);
		io_reap_all(w);

		uint64_t d = wait_ns(w);
		struct __kernel_timespec ts = {.tv_sec = (long long)(d / TICK_NS),
		                               .tv_nsec = (long long)(d % TICK_NS)};
		struct io_uring_cqe *cqe = NULL;
		int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY) {
			fprintf(stderr, "bench: io_uring wait: %s\n", strerror(-rc));
			break;
		}
		w->now_ns = worker_clock_ns();
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&w->ring, head, cqe)
		{
			io_dispatch(w, cqe);
			seen++;
		}
		io_uring_cq_advance(&w->ring, seen);
	}
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int worker_run(const struct scenario *sc, struct shared *sh, uint32_t index, uint32_t slice,
               uint32_t slices, uint32_t slice_lo, uint32_t slice_hi)
{
	/* the coordinator handles ^C and tells us to stop; die with it */
	signal(SIGINT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	raise_fd_limit();

	struct worker wk;
	memset(&wk, 0, sizeof(wk));
	struct worker *w = &wk;
	w->sc = sc;
	w->sh = sh;
	w->st = &sh->stats[index];
	w->index = index;
	w->slice = slice;
	w->slices = slices;
	w->slice_lo = slice_lo;
	w->slice_hi = slice_hi;
	plan_make(sc, &w->plan);
	int rc = -1;
	if (parse_targets(w) < 0 || parse_sources(w) < 0)
		goto fail;
	rc = setup_clients(w);
	if (rc < 0)
		goto fail;
	w->rx_max = sc->size_bytes + 64 * 1024;
	/* TLS plaintext in | a packet out | (ws) its frame out, gathered for TLS */
	w->plain = malloc((size_t)w->rx_max * (sc->ws ? 3 : 2) + WS_FRAME_HEAD_MAX);
	w->payload = malloc(sc->size_bytes);
	if (!w->plain || !w->payload)
		goto fail;
	for (uint32_t i = 0; i < sc->size_bytes; i++)
		w->payload[i] = (uint8_t)('a' + i % 26);
	uint32_t window = sc->e2e_window;
	e2e_attach(&w->e2e, shared_e2e(sh), window ? w->plan.pubs_total : 0, window);
	if (sc->tls) {
		char err[256];
		w->tls = tls_ctx_new(sc->cafile, sc->cert, sc->key, sc->insecure, err, sizeof(err));
		if (!w->tls) {
			fprintf(stderr, "bench: tls: %s\n", err);
			goto fail;
		}
	}
	if (sc->ws) {
		w->ws = ws_ctx_new(sc->ws_path);
		w->ws_conns = calloc(w->client_count ? w->client_count : 1, sizeof(*w->ws_conns));
		if (!w->ws || !w->ws_conns) {
			fprintf(stderr, "bench: ws: out of memory\n");
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = io_setup(w);
	if (rc < 0) {
		fprintf(stderr, "bench: io_uring setup: %s\n", strerror(-rc));
		goto fail;
	}
	if (sc->rate)
		w->rate_interval_ns = TICK_NS / sc->rate;
	if (sc->connect_rate)
		w->connect_rate_w = (double)sc->connect_rate / slices;
	w->st->clients = w->client_count;
	w->start_ns = worker_clock_ns();
	w->now_ns = w->start_ns;
	w->tick_ns = w->start_ns + TICK_NS;
	w->st->rss_base_bytes = procfs_self_rss_bytes();
	w->st->rss_bytes = w->st->rss_base_bytes;

	loop_run(w);

	/* whatever did not close in the grace time is cut now */
	for (uint32_t i = 0; i < w->client_count; i++)
		if (w->clients[i].fd >= 0)
			close(w->clients[i].fd);
	io_teardown(w);
	rc = 0;
fail:
	for (uint32_t i = 0; w->ws_conns && i < w->client_count; i++)
		ws_conn_free(w->ws, w->ws_conns[i]);
	free(w->ws_conns);
	ws_ctx_free(w->ws);
	tls_ctx_free(w->tls);
	return rc;
}
