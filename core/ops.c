/*
 * ops.c — the operations listener's thread: a small poll(2) loop over one
 * listening socket and at most OPS_CLIENTS_MAX connections, each answered
 * once and closed (Connection: close; Prometheus and probes reconnect per
 * request anyway). This thread owns everything here; it reads the broker
 * only through atomics (stats_read, mbox_depth, conn_max, stopping).
 *
 * Limits: OPS_CLIENTS_MAX connections (more wait in the kernel's backlog),
 * HTTP_HEAD_MAX bytes of request head, OPS_REQUEST_MS to send it; a slow
 * or hostile client costs a slot for that long and nothing else.
 */
#include "ops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jemalloc/jemalloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "worker.h"

#define OPS_CLIENTS_MAX 16
#define OPS_REQUEST_MS  5000 /* a client must send its request and read the answer in this */
#define OPS_LINGER_MS   1000 /* after the answer: wait this long for the client to close */

struct ops_client {
	int fd;               /* -1: free */
	uint64_t deadline_ms; /* closed when not done by then */
	uint32_t in_len;
	char *out; /* the response, once the request was read */
	size_t out_len;
	size_t out_off;
	bool lingering; /* answer sent, our side shut: reading until the client closes */
	uint8_t in[HTTP_HEAD_MAX];
};

struct ops {
	struct broker *b;
	int listen_fd;
	int stop_fd; /* eventfd: ops_stop() writes it */
	uint16_t port;
	pthread_t thread;
	double start_time_s; /* wall clock at start, for process_start_time_seconds */
	struct ops_client *clients[OPS_CLIENTS_MAX];
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

/* A response: head and body in one buffer the client slot owns. */
static void respond(struct ops_client *cl, int code, const char *type, const char *body,
                    size_t body_len, bool head_only)
{
	char head[512];
	size_t hl = http_format_head(head, sizeof(head), code, type, body_len);
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
	respond(cl, code, "text/plain; charset=utf-8", text, strlen(text), head_only);
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
	                           .ready = !atomic_load(&b->stopping),
	                           .start_time_s = o->start_time_s};
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
		text = metrics_render(&in, &len);
	}
	if (text)
		respond(cl, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, head_only);
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
	else if (!strcmp(rq->path, "/metrics"))
		serve_metrics(o, cl, head_only);
	else if (!strcmp(rq->path, "/healthz"))
		serve_health(o, cl, head_only);
	else if (!strcmp(rq->path, "/readyz"))
		respond_text(cl, atomic_load(&o->b->stopping) ? 503 : 200,
		             atomic_load(&o->b->stopping) ? "shutting down\n" : "ready\n",
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
}

/* Bytes arrived (or the peer closed): parse, answer when the head is whole. */
static bool client_read(struct ops *o, struct ops_client *cl)
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

static void accept_clients(struct ops *o)
{
	for (;;) {
		unsigned slot = OPS_CLIENTS_MAX;
		for (unsigned i = 0; i < OPS_CLIENTS_MAX && slot == OPS_CLIENTS_MAX; i++)
			if (!o->clients[i])
				slot = i;
		if (slot == OPS_CLIENTS_MAX)
			return; /* full: the rest wait in the backlog */
		int fd = accept4(o->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		struct ops_client *cl = malloc(sizeof(*cl));
		if (!cl) {
			close(fd);
			return;
		}
		cl->fd = fd;
		cl->deadline_ms = clock_now_ms() + OPS_REQUEST_MS;
		cl->in_len = 0;
		cl->out = NULL;
		cl->out_len = cl->out_off = 0;
		cl->lingering = false;
		o->clients[slot] = cl;
	}
}

static void *ops_main(void *arg)
{
	struct ops *o = arg;
	pthread_setname_np(pthread_self(), "starling-ops");
	for (;;) {
		struct pollfd pf[OPS_CLIENTS_MAX + 2];
		unsigned idx[OPS_CLIENTS_MAX];
		nfds_t n = 0;
		pf[n++] = (struct pollfd){.fd = o->stop_fd, .events = POLLIN};
		pf[n++] = (struct pollfd){.fd = o->listen_fd, .events = POLLIN};
		unsigned clients = 0;
		for (unsigned i = 0; i < OPS_CLIENTS_MAX; i++) {
			struct ops_client *cl = o->clients[i];
			if (!cl)
				continue;
			idx[clients++] = i;
			bool writing = cl->out && !cl->lingering;
			pf[n++] =
			    (struct pollfd){.fd = cl->fd, .events = writing ? POLLOUT : POLLIN};
		}
		if (poll(pf, n, clients ? 250 : -1) < 0 && errno != EINTR) {
			LOG_ERROR("ops listener: poll: %s", strerror(errno));
			return NULL;
		}
		if (pf[0].revents)
			return NULL;
		uint64_t now = clock_now_ms();
		for (unsigned k = 0; k < clients; k++) {
			unsigned i = idx[k];
			struct ops_client *cl = o->clients[i];
			short ev = pf[2 + k].revents;
			bool keep = true;
			if (cl->lingering) {
				if (ev)
					keep = client_linger(cl);
			} else if (!cl->out) {
				if (ev)
					keep = client_read(o, cl);
				if (keep && cl->out) /* answered: try to send it now */
					keep = client_write(cl, now);
			} else if (ev) {
				keep = client_write(cl, now);
			}
			if (!keep || now >= cl->deadline_ms)
				client_free(o, i);
		}
		if (pf[1].revents & POLLIN)
			accept_clients(o);
	}
}

struct ops *ops_start(struct broker *b, char *err, size_t err_len)
{
	struct ops *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, err_len, "ops listener: out of memory");
		return NULL;
	}
	o->b = b;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	o->start_time_s = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	char why[256];
	o->port = b->cfg->metrics_listen.port;
	o->listen_fd =
	    net_listen(&b->cfg->metrics_listen, NET_NONBLOCK, 64, &o->port, why, sizeof(why));
	if (o->listen_fd < 0)
		snprintf(err, err_len, "cannot listen for metrics on %s", why);
	o->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (o->listen_fd < 0 || o->stop_fd < 0) {
		if (o->stop_fd < 0)
			snprintf(err, err_len, "ops listener: eventfd: %s", strerror(errno));
		if (o->listen_fd >= 0)
			close(o->listen_fd);
		if (o->stop_fd >= 0)
			close(o->stop_fd);
		free(o);
		return NULL;
	}
	if (pthread_create(&o->thread, NULL, ops_main, o) != 0) {
		snprintf(err, err_len, "ops listener: cannot start its thread");
		close(o->listen_fd);
		close(o->stop_fd);
		free(o);
		return NULL;
	}
	const struct config_addr *a = &b->cfg->metrics_listen;
	LOG_INFO("serving /metrics, /healthz and /readyz on %s:%u", a->host[0] ? a->host : "*",
	         o->port);
	return o;
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
	for (unsigned i = 0; i < OPS_CLIENTS_MAX; i++)
		if (o->clients[i])
			client_free(o, i);
	close(o->listen_fd);
	close(o->stop_fd);
	free(o);
}
