/*
 * ops.c — the operations listener's thread: a poll(2) loop over one
 * listening socket and at most metrics_max_connections clients, each
 * answered once and closed (Connection: close; Prometheus and probes
 * reconnect per request anyway). This thread owns everything here; it reads
 * the broker only through atomics (stats_read, mbox_depth, conn_max,
 * stopping).
 *
 * The listener is open to anyone who can reach it, and a liveness probe
 * that fails gets a healthy broker restarted, so no client may keep a probe
 * out. Limits: metrics_max_connections clients (the table is allocated once),
 * HTTP_HEAD_MAX bytes of request head each, metrics_request_timeout_ms to
 * send it, OPS_SEND_MS to read the answer, OPS_LINGER_MS to close. A new
 * connection is always accepted: when the table is full the oldest client
 * still sending its request is closed to make room (evicted), so a flood of
 * idle or slowloris connections delays a probe by one loop turn at most.
 * /healthz and /readyz read atomics only; nothing they do can block.
 *
 * /metrics can require a bearer token or basic auth (metrics_token_file,
 * metrics_basic_auth_file). Only SHA-256 digests of the expected
 * credentials are kept, compared in constant time; the files are reread
 * when they change (a Kubernetes secret update replaces the file).
 */
#include "ops/ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "io/net.h"
#include "loop/worker.h"
#include "ops/metrics.h"
#include "transport/http.h"

#define OPS_SEND_MS         10000 /* once answered: the client must read the answer in this */
#define OPS_LINGER_MS       1000  /* after the answer: wait this long for the client to close */
#define OPS_ACCEPT_PAUSE_MS 100   /* out of descriptors: stop accepting this long (no spin) */
#define OPS_SECRET_MAX      4096  /* bytes of a token or user:password; a head holds either */

struct ops_client {
	int fd;
	uint64_t accepted_ms; /* the oldest is evicted first */
	uint64_t deadline_ms; /* closed when not done by then */
	uint32_t in_len;
	char *out; /* the response, once the request was read */
	size_t out_len;
	size_t out_off;
	bool lingering; /* answer sent, our side shut: reading until the client closes */
	uint8_t in[HTTP_HEAD_MAX];
};

/* One credential file: what it held last, as a digest, and which version
 * of the file that was. */
struct ops_secret {
	const char *path;                     /* cfg's; "" = this kind of credential is off */
	const char *what;                     /* "metrics_token_file", for log lines */
	bool basic;                           /* user:password, compared in its base64 form */
	bool have;                            /* digest holds a credential */
	uint8_t digest[SHA256_DIGEST_LENGTH]; /* of the credentials as they appear in the header */
	struct stat st; /* of the file when it was read: dev, ino, size, mtime */
};

/* Ops thread only, rendered into /metrics. */
struct ops_counts {
	uint64_t accepted;         /* connections accepted */
	uint64_t evicted;          /* closed to make room for a new one */
	uint64_t request_timeouts; /* no whole request head within metrics_request_timeout_ms */
	uint64_t send_timeouts;    /* answer not read within OPS_SEND_MS */
	uint64_t unauthorized;     /* /metrics answered 401 */
};

struct ops {
	struct broker *b;
	int listen_fd;
	int stop_fd; /* eventfd: ops_stop() writes it */
	uint16_t port;
	pthread_t thread;
	double start_time_s; /* wall clock at start, for process_start_time_seconds */
	uint32_t request_ms; /* metrics_request_timeout_ms */
	unsigned clients_max;
	unsigned clients_open;
	struct ops_client **clients; /* [clients_max]; NULL = free */
	struct pollfd *pf;           /* [clients_max + 2], rebuilt every turn */
	unsigned *pf_slot;           /* [clients_max]: pf[2 + k] is clients[pf_slot[k]] */
	uint64_t accept_paused_until_ms;
	struct ops_secret token, basic;
	struct ops_counts n;
};

bool ops_read_memory(struct ops_memory *m)
{
	/* jemalloc caches its statistics; bumping the epoch refreshes them. */
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);
	if (mallctl("epoch", &epoch, &sz, &epoch, sz) != 0)
		return false;
	size_t v;
	sz = sizeof(v);
	if (mallctl("stats.allocated", &v, &sz, NULL, 0) != 0)
		return false;
	m->allocated_bytes = v;
	if (mallctl("stats.active", &v, &sz, NULL, 0) == 0)
		m->active_bytes = v;
	if (mallctl("stats.resident", &v, &sz, NULL, 0) == 0)
		m->resident_bytes = v;
	if (mallctl("stats.mapped", &v, &sz, NULL, 0) == 0)
		m->mapped_bytes = v;
	return true;
}

/* The process_* figures from /proc/self. */
static void read_process(struct metrics_input *in)
{
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return;
	char buf[1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which may hold spaces: from the last ')'. */
	char *p = strrchr(buf, ')');
	if (!p)
		return;
	unsigned long utime = 0, stime = 0, vsize = 0;
	long rss = 0;
	if (sscanf(p + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d "
	           "%*u %lu %ld",
	           &utime, &stime, &vsize, &rss) != 4)
		return;
	long tick = sysconf(_SC_CLK_TCK);
	long page = sysconf(_SC_PAGESIZE);
	in->cpu_seconds = (double)(utime + stime) / (double)(tick > 0 ? tick : 100);
	in->virtual_bytes = vsize;
	in->resident_bytes = (uint64_t)rss * (uint64_t)(page > 0 ? page : 4096);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		in->max_fds = rl.rlim_cur;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		uint64_t fds = 0;
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			fds += e->d_name[0] != '.';
		closedir(d);
		in->open_fds = fds > 0 ? fds - 1 : 0; /* not the one opendir holds */
	}
	in->have_process = true;
}

/* A response: head and body in one buffer the client slot owns. extra is
 * NULL or header lines ("Name: value\r\n"...) to add to the head. */
static void respond(struct ops_client *cl, int code, const char *type, const char *extra,
                    const char *body, size_t body_len, bool head_only)
{
	char head[768];
	size_t hl = http_format_head(head, sizeof(head), code, type, body_len);
	size_t el = extra ? strlen(extra) : 0;
	if (hl >= 2 && el && hl + el <= sizeof(head)) {
		/* Before the blank line that ends the head. */
		memmove(head + hl - 2 + el, head + hl - 2, 2);
		memcpy(head + hl - 2, extra, el);
		hl += el;
	}
	size_t total = hl + (head_only ? 0 : body_len);
	cl->out = malloc(total ? total : 1);
	if (!cl->out) {
		cl->out_len = 0;
		return;
	}
	memcpy(cl->out, head, hl);
	if (!head_only && body_len)
		memcpy(cl->out + hl, body, body_len);
	cl->out_len = total;
	cl->out_off = 0;
}

static void respond_text(struct ops_client *cl, int code, const char *text, bool head_only)
{
	respond(cl, code, "text/plain; charset=utf-8", NULL, text, strlen(text), head_only);
}

/* ------------------------------------------------------------------------ */
/* Credentials for /metrics */

/* Read s->path into s->digest; -1 with why filled in, and s unchanged, when
 * the file cannot be read or does not hold a usable credential. */
static int secret_load(struct ops_secret *s, char *why, size_t why_len)
{
	char buf[OPS_SECRET_MAX + 2];
	char b64[4 * ((OPS_SECRET_MAX + 2) / 3) + 1];
	int rc = -1;
	size_t n = 0;
	struct stat st;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(why, why_len, "%s: %s", s->path, strerror(errno));
		goto out;
	}
	for (ssize_t got; n < sizeof(buf) && (got = read(fd, buf + n, sizeof(buf) - n)) != 0;) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, why_len, "%s: %s", s->path, strerror(errno));
			goto out;
		}
		n += (size_t)got;
	}
	/* Secrets are often written with a trailing newline (echo, kubectl). */
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		n--;
	if (n == 0) {
		snprintf(why, why_len, "%s: is empty", s->path);
		goto out;
	}
	if (n > OPS_SECRET_MAX) {
		snprintf(why, why_len, "%s: longer than %d bytes", s->path, OPS_SECRET_MAX);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];
		/* A token travels as one header token (token68 [RFC 9110
		 * 11.2]); a password may hold spaces, but no control bytes. */
		if (c < 0x20 || c == 0x7f || (!s->basic && c == ' ')) {
			snprintf(why, why_len, "%s: holds a space or control character", s->path);
			goto out;
		}
	}
	const char *cred = buf;
	size_t cred_len = n;
	if (s->basic) {
		const char *colon = memchr(buf, ':', n);
		if (!colon || colon == buf) {
			snprintf(why, why_len, "%s: expected user:password on one line", s->path);
			goto out;
		}
		/* Clients send base64(user:password) [RFC 7617 2]: compare that. */
		cred_len =
		    (size_t)EVP_EncodeBlock((unsigned char *)b64, (unsigned char *)buf, (int)n);
		cred = b64;
	}
	SHA256((const unsigned char *)cred, cred_len, s->digest);
	s->have = true;
	s->st = st;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	OPENSSL_cleanse(b64, sizeof(b64));
	return rc;
}

/* Reread the file when it is another one than last time (a Kubernetes
 * secret update swaps a symlink; an editor replaces or rewrites it). On
 * failure the credential read before stays in force. */
static void secret_refresh(struct ops_secret *s)
{
	struct stat st;
	if (!s->path[0])
		return;
	if (stat(s->path, &st) != 0) {
		LOG_WARN_RL(1, "%s: %s: %s; keeping the credential read before", s->what, s->path,
		            strerror(errno));
		return;
	}
	if (st.st_dev == s->st.st_dev && st.st_ino == s->st.st_ino && st.st_size == s->st.st_size &&
	    st.st_mtim.tv_sec == s->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == s->st.st_mtim.tv_nsec)
		return;
	char why[CONFIG_PATH_MAX + 64];
	if (secret_load(s, why, sizeof(why)) != 0)
		LOG_WARN_RL(1, "%s: %s; keeping the credential read before", s->what, why);
	else
		LOG_INFO("%s: reread %s", s->what, s->path);
}

static bool auth_required(const struct ops *o)
{
	return o->token.path[0] || o->basic.path[0];
}

/* Does the Authorization value h carry a credential /metrics accepts? The
 * digests are compared, never the secrets: equal time whatever the length
 * or the first differing byte. */
static bool authorized(struct ops *o, const char *h)
{
	if (!auth_required(o))
		return true;
	secret_refresh(&o->token);
	secret_refresh(&o->basic);
	const char *sp = strchr(h, ' ');
	if (!sp)
		return false;
	size_t scheme_len = (size_t)(sp - h);
	while (*sp == ' ')
		sp++;
	const struct ops_secret *s = NULL;
	/* Scheme names are case-insensitive [RFC 9110 11.1]. */
	if (scheme_len == 6 && !strncasecmp(h, "bearer", 6))
		s = &o->token;
	else if (scheme_len == 5 && !strncasecmp(h, "basic", 5))
		s = &o->basic;
	if (!s || !s->have)
		return false;
	uint8_t d[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)sp, strlen(sp), d);
	return CRYPTO_memcmp(d, s->digest, sizeof(d)) == 0;
}

static void serve_unauthorized(struct ops *o, struct ops_client *cl, bool head_only)
{
	/* A 401 names the schemes it would take [RFC 9110 11.6.1]. */
	char challenge[160] = "";
	if (o->token.path[0])
		strcat(challenge, "WWW-Authenticate: Bearer realm=\"starling\"\r\n");
	if (o->basic.path[0])
		strcat(challenge,
		       "WWW-Authenticate: Basic realm=\"starling\", charset=\"UTF-8\"\r\n");
	const char *text = "unauthorized: /metrics needs credentials\n";
	o->n.unauthorized++;
	respond(cl, 401, "text/plain; charset=utf-8", challenge, text, strlen(text), head_only);
}

/* Is some worker's journal failing (disk full, an I/O error)? */
static bool journal_failing(struct broker *b)
{
	for (unsigned i = 0; b->cfg->persistence && i < b->worker_count; i++)
		if (atomic_load_explicit(&b->workers[i]->pub.word[STATS_WORD(journal_failing)],
		                         memory_order_relaxed))
			return true;
	return false;
}

/* Ready for clients: not stopping, the journal writing (persistence on),
 * and joined to the cluster when there is one (or alone past
 * cluster_join_timeout_ms: cluster/node.c). */
static bool ready(struct broker *b)
{
	if (journal_failing(b))
		return false;
	/* In a cluster: joined, and the peers' routes and the retained
	 * messages are here (cluster/link.c). */
	const struct cluster_view *v = &b->cluster_view;
	return !atomic_load(&b->stopping) && atomic_load(&v->ready) &&
	       (!atomic_load(&v->enabled) || atomic_load(&v->synced));
}

/* The cluster's figures, from the atomics its thread publishes. */
static void read_cluster(struct cluster_view *v, struct metrics_input *in)
{
	in->have_cluster = atomic_load_explicit(&v->enabled, memory_order_relaxed);
	if (!in->have_cluster)
		return;
	struct cluster_figures *c = &in->cluster;
	for (int i = 0; i < CLUSTER_STATES; i++)
		c->members[i] = atomic_load_explicit(&v->members[i], memory_order_relaxed);
	c->health_score = atomic_load_explicit(&v->health_score, memory_order_relaxed);
	c->packets_in = atomic_load_explicit(&v->packets_in, memory_order_relaxed);
	c->packets_out = atomic_load_explicit(&v->packets_out, memory_order_relaxed);
	c->probes = atomic_load_explicit(&v->probes, memory_order_relaxed);
	c->probes_failed = atomic_load_explicit(&v->probes_failed, memory_order_relaxed);
	c->indirect_probes = atomic_load_explicit(&v->indirect_probes, memory_order_relaxed);
	c->suspicions = atomic_load_explicit(&v->suspicions, memory_order_relaxed);
	c->refutations = atomic_load_explicit(&v->refutations, memory_order_relaxed);
	for (int i = 0; i < CLUSTER_DROP_REASONS; i++)
		c->dropped[i] = atomic_load_explicit(&v->dropped[i], memory_order_relaxed);
	uint64_t n = atomic_load_explicit(&v->probe_rtt_count, memory_order_relaxed);
	c->probe_rtt_avg_s =
	    n ? (double)atomic_load_explicit(&v->probe_rtt_us_sum, memory_order_relaxed) / n / 1e6
	      : 0;
	c->ready = atomic_load_explicit(&v->ready, memory_order_relaxed);
	c->synced = atomic_load_explicit(&v->synced, memory_order_relaxed);
	c->links_up = atomic_load_explicit(&v->links_up, memory_order_relaxed);
	c->links_refused = atomic_load_explicit(&v->links_refused, memory_order_relaxed);
	c->forward_duplicates = atomic_load_explicit(&v->forward_duplicates, memory_order_relaxed);
	c->route_resyncs = atomic_load_explicit(&v->route_resyncs, memory_order_relaxed);
	for (int d = 0; d < 2; d++) {
		c->link_bytes[d] = atomic_load_explicit(&v->link_bytes[d], memory_order_relaxed);
		c->link_frames[d] = atomic_load_explicit(&v->link_frames[d], memory_order_relaxed);
		c->forwarded[d] = atomic_load_explicit(&v->forwarded[d], memory_order_relaxed);
		c->retained[d] =
		    atomic_load_explicit(&v->retained_replicated[d], memory_order_relaxed);
	}
	for (int r = 0; r < CLUSTER_LINK_DROPS; r++)
		c->link_drops[r] = atomic_load_explicit(&v->link_drops[r], memory_order_relaxed);
	c->routes_own = atomic_load_explicit(&v->routes[0], memory_order_relaxed);
	static struct cluster_peer peers[CLUSTER_PEERS_MAX]; /* the ops thread's */
	uint64_t gen;
	c->peer_count = cluster_view_peers(v, peers, &gen);
	for (uint32_t i = 0; i < c->peer_count; i++) {
		memcpy(c->peer_names[i], peers[i].name, sizeof(c->peer_names[i]));
		c->routes[i] = atomic_load_explicit(&v->routes[i + 1], memory_order_relaxed);
		c->route_lag_ms[i] =
		    atomic_load_explicit(&v->route_lag_ms[i + 1], memory_order_relaxed);
	}
	for (uint32_t i = 0; i <= c->peer_count; i++)
		for (int d = 0; d < 2; d++) {
			const struct cluster_peer_counts *pc = &v->peer_counts[i];
			c->peer[i].bytes[d] =
			    atomic_load_explicit(&pc->bytes[d], memory_order_relaxed);
			c->peer[i].frames[d] =
			    atomic_load_explicit(&pc->frames[d], memory_order_relaxed);
			c->peer[i].forwarded[d] =
			    atomic_load_explicit(&pc->forwarded[d], memory_order_relaxed);
		}
}

static void serve_metrics(struct ops *o, struct ops_client *cl, bool head_only)
{
	struct broker *b = o->b;
	unsigned n = b->worker_count;
	struct worker_stats *per = calloc(n, sizeof(*per));
	uint64_t *depth = calloc(n, sizeof(*depth));
	struct metrics_input in = {.version = STARLING_VERSION,
	                           .workers = n,
	                           .per_worker = per,
	                           .mailbox_depth = depth,
	                           .uptime_s = (clock_now_ms() - b->start_ms) / 1000,
	                           .ready = ready(b),
	                           .start_time_s = o->start_time_s,
	                           .have_ops = true,
	                           .ops_connections = o->clients_open,
	                           .ops_accepted = o->n.accepted,
	                           .ops_evicted = o->n.evicted,
	                           .ops_request_timeouts = o->n.request_timeouts,
	                           .ops_send_timeouts = o->n.send_timeouts,
	                           .ops_unauthorized = o->n.unauthorized};
	char *text = NULL;
	size_t len = 0;
	if (per && depth) {
		for (unsigned i = 0; i < n; i++) {
			stats_read(&b->workers[i]->pub, &per[i]);
			for (unsigned from = 0; from < n; from++)
				if (b->mboxes[from * n + i])
					depth[i] += mbox_depth(b->mboxes[from * n + i]);
		}
		struct ops_memory mem = {0};
		if (ops_read_memory(&mem)) {
			in.have_memory = true;
			in.mem_allocated_bytes = mem.allocated_bytes;
			in.mem_active_bytes = mem.active_bytes;
			in.mem_resident_bytes = mem.resident_bytes;
			in.mem_mapped_bytes = mem.mapped_bytes;
		}
		read_process(&in);
		read_cluster(&b->cluster_view, &in);
		in.have_persistence = b->cfg->persistence;
		in.recovered_retained = b->recovered.retained;
		in.recovered_sessions = b->recovered.sessions;
		in.recovered_messages = b->recovered.messages;
		in.recovered_releases = b->recovered.releases;
		in.recovered_files = b->recovered.files;
		in.recovered_cut_bytes = b->recovered.cut_bytes;
		in.recovery_seconds = (double)b->recovered.ms / 1000.0;
		in.bridge_count = b->cfg->bridge_count;
		for (unsigned i = 0; i < in.bridge_count && b->bridge_pub; i++) {
			const struct bridge_pub *p = &b->bridge_pub[i];
			struct bridge_figures *f = &in.bridges[i];
			snprintf(f->name, sizeof(f->name), "%s", b->cfg->bridges[i].name);
			f->state = (unsigned)atomic_load_explicit(&p->state, memory_order_relaxed);
			f->connects = atomic_load_explicit(&p->connects, memory_order_relaxed);
			f->failures = atomic_load_explicit(&p->failures, memory_order_relaxed);
			f->queued = atomic_load_explicit(&p->queued, memory_order_relaxed);
			f->inflight = atomic_load_explicit(&p->inflight, memory_order_relaxed);
			f->dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
			f->rtt_us = atomic_load_explicit(&p->rtt_us, memory_order_relaxed);
			f->rtt_n = atomic_load_explicit(&p->rtt_n, memory_order_relaxed);
			for (unsigned d = 0; d < 2; d++) {
				f->msgs[d] =
				    atomic_load_explicit(&p->msgs[d], memory_order_relaxed);
				f->bytes[d] =
				    atomic_load_explicit(&p->bytes[d], memory_order_relaxed);
			}
		}
		in.compactions = atomic_load(&b->compact.runs);
		in.compacted_bytes = atomic_load(&b->compact.removed_bytes);
		text = metrics_render(&in, &len);
	}
	if (text)
		respond(cl, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text, len,
		        head_only);
	else
		respond_text(cl, 500, "out of memory\n", head_only);
	free(text);
	free(per);
	free(depth);
}

/* Alive: the process answers, and every worker turned recently. */
static void serve_health(struct ops *o, struct ops_client *cl, bool head_only)
{
	uint64_t now = clock_now_ms();
	for (unsigned i = 0; i < o->b->worker_count; i++) {
		uint64_t last = atomic_load_explicit(
		    &o->b->workers[i]->pub.word[STATS_WORD(last_turn_ms)], memory_order_relaxed);
		if (last && now > last + OPS_STALL_MS) {
			char msg[128];
			snprintf(msg, sizeof(msg), "worker %u has not turned for %llu ms\n", i,
			         (unsigned long long)(now - last));
			LOG_WARN_RL(1, "/healthz: %.*s", (int)strlen(msg) - 1, msg);
			respond_text(cl, 503, msg, head_only);
			return;
		}
	}
	respond_text(cl, 200, "ok\n", head_only);
}

static void serve(struct ops *o, struct ops_client *cl, const struct http_request *rq)
{
	bool head_only = rq->verb == HTTP_VERB_HEAD;
	if (rq->verb == HTTP_VERB_OTHER)
		respond_text(cl, 405, "only GET and HEAD\n", false);
	else if (!strcmp(rq->path, "/metrics") && !authorized(o, rq->authorization))
		serve_unauthorized(o, cl, head_only);
	else if (!strcmp(rq->path, "/metrics"))
		serve_metrics(o, cl, head_only);
	else if (!strcmp(rq->path, "/healthz"))
		serve_health(o, cl, head_only);
	else if (!strcmp(rq->path, "/readyz"))
		respond_text(cl, ready(o->b) ? 200 : 503,
		             ready(o->b)                    ? "ready\n"
		             : atomic_load(&o->b->stopping) ? "shutting down\n"
		             : journal_failing(o->b) ? "the journal cannot write (see the log)\n"
		                                     : "joining the cluster\n",
		             head_only);
	else if (!strcmp(rq->path, "/"))
		respond_text(cl, 200, "starling: /metrics /healthz /readyz\n", head_only);
	else
		respond_text(cl, 404, "not found: /metrics /healthz /readyz\n", head_only);
}

static void client_free(struct ops *o, unsigned i)
{
	struct ops_client *cl = o->clients[i];
	close(cl->fd);
	free(cl->out);
	free(cl);
	o->clients[i] = NULL;
	o->clients_open--;
}

/* Bytes arrived (or the peer closed): parse, answer when the head is whole. */
static bool client_read(struct ops *o, struct ops_client *cl, uint64_t now_ms)
{
	ssize_t n = recv(cl->fd, cl->in + cl->in_len, sizeof(cl->in) - cl->in_len, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n < 0)
		return true;
	cl->in_len += (uint32_t)n;
	struct http_request rq;
	switch (http_parse_request(cl->in, cl->in_len, sizeof(cl->in), &rq)) {
	case HTTP_PARSE_NEED_MORE:
		return true;
	case HTTP_PARSE_OK:
		serve(o, cl, &rq);
		break;
	case HTTP_PARSE_INVALID:
		respond_text(cl, 400, "bad request\n", false);
		break;
	case HTTP_PARSE_TOO_LARGE:
		respond_text(cl, cl->in_len >= sizeof(cl->in) ? 431 : 414, "request too large\n",
		             false);
		break;
	}
	/* The request is in; the answer gets its own time to be read. */
	cl->deadline_ms = now_ms + OPS_SEND_MS;
	return cl->out != NULL;
}

/* Send what is left; false when it failed: close it. Once all is sent our
 * side is shut and the client lingers: closing a socket with unread input
 * (a client that sent more than a request head) makes the kernel send RST,
 * which can destroy the answer before the client has read it. */
static bool client_write(struct ops_client *cl, uint64_t now_ms)
{
	while (cl->out_off < cl->out_len) {
		ssize_t n =
		    send(cl->fd, cl->out + cl->out_off, cl->out_len - cl->out_off, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		cl->out_off += (size_t)n;
	}
	shutdown(cl->fd, SHUT_WR);
	cl->lingering = true;
	if (cl->deadline_ms > now_ms + OPS_LINGER_MS)
		cl->deadline_ms = now_ms + OPS_LINGER_MS;
	return true;
}

/* Discard what the client still sends; false at its end of stream. */
static bool client_linger(struct ops_client *cl)
{
	char sink[4096];
	ssize_t n = recv(cl->fd, sink, sizeof(sink), 0);
	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* The client to close when a new one needs its slot: one still sending its
 * request before one whose answer is out (lingering) before one still
 * reading its answer, and within each the oldest. A probe that has just
 * connected is the newest of all, so it is the last to go. */
static unsigned victim(const struct ops *o)
{
	unsigned best = o->clients_max;
	unsigned best_rank = 3;
	uint64_t best_ms = UINT64_MAX;
	for (unsigned i = 0; i < o->clients_max; i++) {
		const struct ops_client *cl = o->clients[i];
		if (!cl)
			continue;
		unsigned rank = !cl->out ? 0 : cl->lingering ? 1 : 2;
		if (rank < best_rank || (rank == best_rank && cl->accepted_ms < best_ms)) {
			best = i;
			best_rank = rank;
			best_ms = cl->accepted_ms;
		}
	}
	return best;
}

/* Take what waits in the backlog, at most a table's worth per turn (so a
 * flood cannot keep this loop from serving what it accepted). */
static void accept_clients(struct ops *o, uint64_t now_ms)
{
	for (unsigned budget = o->clients_max; budget > 0; budget--) {
		int fd = accept4(o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* EMFILE and the like: the backlog stays readable, and
				 * polling it again at once would spin. */
				LOG_WARN_RL(1, "ops listener: accept: %s; pausing %d ms",
				            strerror(errno), OPS_ACCEPT_PAUSE_MS);
				o->accept_paused_until_ms = now_ms + OPS_ACCEPT_PAUSE_MS;
			}
			return;
		}
		if (o->clients_open == o->clients_max) {
			client_free(o, victim(o));
			o->n.evicted++;
		}
		unsigned slot = 0;
		while (o->clients[slot])
			slot++;
		struct ops_client *cl = malloc(sizeof(*cl));
		if (!cl) {
			close(fd);
			return;
		}
		cl->fd = fd;
		cl->accepted_ms = now_ms;
		cl->deadline_ms = now_ms + o->request_ms;
		cl->in_len = 0;
		cl->out = NULL;
		cl->out_len = cl->out_off = 0;
		cl->lingering = false;
		o->clients[slot] = cl;
		o->clients_open++;
		o->n.accepted++;
	}
}

static void *ops_main(void *arg)
{
	struct ops *o = arg;
	pthread_setname_np(pthread_self(), "starling-ops");
	for (;;) {
		uint64_t now = clock_now_ms();
		struct pollfd *pf = o->pf;
		nfds_t n = 0;
		bool accepting = now >= o->accept_paused_until_ms;
		uint64_t next_ms = accepting ? UINT64_MAX : o->accept_paused_until_ms;
		pf[n++] = (struct pollfd){.fd = o->stop_fd, .events = POLLIN};
		/* A negative fd is skipped by poll(2). */
		pf[n++] = (struct pollfd){.fd = accepting ? o->listen_fd : -1, .events = POLLIN};
		unsigned clients = 0;
		for (unsigned i = 0; i < o->clients_max; i++) {
			struct ops_client *cl = o->clients[i];
			if (!cl)
				continue;
			o->pf_slot[clients++] = i;
			bool writing = cl->out && !cl->lingering;
			pf[n++] =
			    (struct pollfd){.fd = cl->fd, .events = writing ? POLLOUT : POLLIN};
			if (cl->deadline_ms < next_ms)
				next_ms = cl->deadline_ms;
		}
		int timeout = -1;
		if (next_ms != UINT64_MAX)
			timeout = next_ms <= now ? 0 : (int)(next_ms - now);
		if (poll(pf, n, timeout) < 0 && errno != EINTR) {
			LOG_ERROR("ops listener: poll: %s", strerror(errno));
			return NULL;
		}
		if (pf[0].revents)
			return NULL;
		now = clock_now_ms();
		for (unsigned k = 0; k < clients; k++) {
			unsigned i = o->pf_slot[k];
			struct ops_client *cl = o->clients[i];
			short ev = pf[2 + k].revents;
			bool keep = true;
			if (cl->lingering) {
				if (ev)
					keep = client_linger(cl);
			} else if (!cl->out) {
				if (ev)
					keep = client_read(o, cl, now);
				if (keep && cl->out) /* answered: try to send it now */
					keep = client_write(cl, now);
			} else if (ev) {
				keep = client_write(cl, now);
			}
			if (keep && now >= cl->deadline_ms) {
				keep = false;
				if (!cl->out)
					o->n.request_timeouts++;
				else if (!cl->lingering)
					o->n.send_timeouts++;
			}
			if (!keep)
				client_free(o, i);
		}
		if (accepting && (pf[1].revents & POLLIN))
			accept_clients(o, now);
	}
}

static void ops_free(struct ops *o)
{
	if (o->clients)
		for (unsigned i = 0; i < o->clients_max; i++)
			if (o->clients[i])
				client_free(o, i);
	if (o->listen_fd >= 0)
		close(o->listen_fd);
	if (o->stop_fd >= 0)
		close(o->stop_fd);
	free(o->clients);
	free(o->pf);
	free(o->pf_slot);
	OPENSSL_cleanse(o, sizeof(*o)); /* the credential digests */
	free(o);
}

struct ops *ops_start(struct broker *b, char *err, size_t err_len)
{
	const struct config *cfg = b->cfg;
	struct ops *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, err_len, "ops listener: out of memory");
		return NULL;
	}
	o->b = b;
	o->listen_fd = o->stop_fd = -1;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	o->start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	o->request_ms = cfg->metrics_request_timeout_ms;
	o->clients_max = cfg->metrics_max_connections;
	o->clients = calloc(o->clients_max, sizeof(*o->clients));
	o->pf = calloc(o->clients_max + 2, sizeof(*o->pf));
	o->pf_slot = calloc(o->clients_max, sizeof(*o->pf_slot));
	if (!o->clients || !o->pf || !o->pf_slot) {
		snprintf(err, err_len, "ops listener: out of memory");
		goto fail;
	}
	o->token =
	    (struct ops_secret){.path = cfg->metrics_token_file, .what = "metrics_token_file"};
	o->basic = (struct ops_secret){
	    .path = cfg->metrics_basic_auth_file, .what = "metrics_basic_auth_file", .basic = true};
	struct ops_secret *secrets[] = {&o->token, &o->basic};
	for (size_t i = 0; i < 2; i++) {
		char why[CONFIG_PATH_MAX + 64];
		if (secrets[i]->path[0] && secret_load(secrets[i], why, sizeof(why)) != 0) {
			snprintf(err, err_len, "%s: %s", secrets[i]->what, why);
			goto fail;
		}
	}
	char why[256];
	o->port = cfg->metrics_listen.port;
	/* A backlog as deep as the table: a burst is taken in one turn. */
	int backlog = o->clients_max > 64 ? (int)o->clients_max : 64;
	o->listen_fd =
	    net_listen(&cfg->metrics_listen, NET_NONBLOCK, backlog, &o->port, why, sizeof(why));
	if (o->listen_fd < 0) {
		snprintf(err, err_len, "cannot listen for metrics on %s", why);
		goto fail;
	}
	o->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (o->stop_fd < 0) {
		snprintf(err, err_len, "ops listener: eventfd: %s", strerror(errno));
		goto fail;
	}
	if (pthread_create(&o->thread, NULL, ops_main, o) != 0) {
		snprintf(err, err_len, "ops listener: cannot start its thread");
		goto fail;
	}
	const struct config_addr *a = &cfg->metrics_listen;
	if (auth_required(o))
		LOG_INFO("/metrics needs %s%s%s; /healthz and /readyz need none",
		         o->token.path[0] ? "a bearer token" : "",
		         o->token.path[0] && o->basic.path[0] ? " or " : "",
		         o->basic.path[0] ? "basic auth" : "");
	else
		LOG_INFO("/metrics needs no credentials (see metrics_token_file, "
		         "metrics_basic_auth_file)");
	LOG_INFO("serving /metrics, /healthz and /readyz on %s:%u", a->host[0] ? a->host : "*",
	         o->port);
	return o;
fail:
	ops_free(o);
	return NULL;
}

uint16_t ops_port(const struct ops *o)
{
	return o->port;
}

void ops_stop(struct ops *o)
{
	if (!o)
		return;
	uint64_t one = 1;
	if (write(o->stop_fd, &one, sizeof(one)) < 0)
		LOG_WARN("cannot stop the ops listener: %s", strerror(errno));
	pthread_join(o->thread, NULL);
	ops_free(o);
}
