/*
 * node.c — this node's membership of the cluster (see node.h): the UDP
 * socket, the thread that drives swim.h with the clock and the socket, name
 * resolution of seeds and cluster_dns, the log line for each peer's change,
 * and the cluster_view the ops thread reads.
 *
 * Identity: the node's name (node_name, else the host name), the address
 * peers reach it at (cluster_advertise, else cluster_listen), and a boot
 * epoch: the wall clock in microseconds at start. A restarted node has a
 * greater epoch than its last run (on a clock that does not go back), so
 * peers drop everything of its old run at once (swim.h: RESTARTED).
 *
 * Threads: cluster_node_* run on the main thread; everything else on the
 * node's own thread, which owns the swim instance and the socket.
 */
#include "cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/check.h"
#include "base/clock.h"
#include "base/config.h"
#include "base/file.h"
#include "base/log.h"
#include "ops/cluster_view.h"
#include "routes.h"
#include "swim.h"

#define SECRET_FILE_MAX 4096 /* bytes read of cluster_secret_file */
#define LEAVE_DRAIN_MS  600  /* how long a leave may take to spread, at most */
#define RECV_BATCH      64   /* datagrams read per wake-up before sending */

_Static_assert(SWIM_DROP_REASONS == CLUSTER_DROP_REASONS, "drop reasons line up");
_Static_assert((int)SWIM_ALIVE == (int)CLUSTER_ALIVE && (int)SWIM_LEFT == (int)CLUSTER_LEFT,
               "member states line up");

struct cluster_node {
	const struct config *cfg;
	struct cluster_view *view;
	struct swim *sw;
	int fd;      /* the UDP socket on cluster_listen */
	int stop_fd; /* eventfd: the main thread asks us to leave */
	pthread_t thread;
	bool thread_started;
	bool joining;        /* seeds or cluster_dns are configured */
	uint64_t started_ms; /* monotonic, for cluster_join_timeout_ms */
	uint64_t next_resolve_ms;
	char name[SWIM_NAME_MAX + 1];
	char address[SWIM_ADDRESS_MAX + 1];
	uint64_t digest_epoch, digest_seq; /* our routes' digest as last set on probes */
};

/* ---- configuration ------------------------------------------------------ */

static void format_addr(const struct config_addr *a, char *buf, size_t len)
{
	const char *host = a->host;
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, a->port);
}

static bool unspecified(const struct config_addr *a)
{
	return !a->host[0] || !strcmp(a->host, "0.0.0.0") || !strcmp(a->host, "::");
}

/* Who we are: name, address, secret. 0, or -1 with err naming the key. */
static int identity(const struct config *cfg, char *name, char *address, uint8_t *secret,
                    size_t *secret_len, char *err, size_t err_len)
{
	if (cfg->node_name[0]) {
		snprintf(name, SWIM_NAME_MAX + 1, "%s", cfg->node_name);
	} else {
		char host[256];
		size_t len;
		if (gethostname(host, sizeof(host)) != 0 ||
		    (len = strnlen(host, sizeof(host))) == 0 || len > SWIM_NAME_MAX) {
			snprintf(err, err_len,
			         "node_name: empty, and the host name cannot stand in for it (set "
			         "node_name)");
			return -1;
		}
		memcpy(name, host, len); /* the length was checked: no truncation */
		name[len] = '\0';
	}
	const struct config_addr *adv =
	    cfg->cluster_advertise_set ? &cfg->cluster_advertise : &cfg->cluster_listen;
	if (unspecified(adv) || adv->port == 0) {
		snprintf(
		    err, err_len,
		    "cluster_advertise: cluster_listen %s:%u says no address or port peers "
		    "could reach this node at; set cluster_advertise (e.g. the pod's IP and the "
		    "port)",
		    cfg->cluster_listen.host[0] ? cfg->cluster_listen.host : "*",
		    cfg->cluster_listen.port);
		return -1;
	}
	format_addr(adv, address, SWIM_ADDRESS_MAX + 1);
	*secret_len = 0;
	if (cfg->cluster_secret_file[0]) {
		char *text = NULL;
		size_t len = 0;
		char why[256];
		if (file_read_all(cfg->cluster_secret_file, SECRET_FILE_MAX, &text, &len, why,
		                  sizeof(why)) != 0) {
			snprintf(err, err_len, "cluster_secret_file: %s", why);
			return -1;
		}
		while (len > 0 &&
		       (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
			len--; /* a file written by echo */
		if (len == 0 || len > SWIM_SECRET_MAX) {
			snprintf(
			    err, err_len,
			    "cluster_secret_file %s: the secret must be 1 to %d bytes (it has %zu)",
			    cfg->cluster_secret_file, SWIM_SECRET_MAX, len);
			free(text);
			return -1;
		}
		memcpy(secret, text, len);
		*secret_len = len;
		free(text);
	}
	return 0;
}

int cluster_node_check(const struct config *cfg, char *err, size_t err_len)
{
	struct cluster_identity id;
	int rc = cluster_identity_load(cfg, &id, err, err_len);
	explicit_bzero(id.secret, sizeof(id.secret));
	return rc < 0 ? -1 : 0;
}

int cluster_identity_load(const struct config *cfg, struct cluster_identity *id, char *err,
                          size_t err_len)
{
	_Static_assert(sizeof(id->name) == SWIM_NAME_MAX + 1, "names line up");
	_Static_assert(sizeof(id->address) == SWIM_ADDRESS_MAX + 1, "addresses line up");
	_Static_assert(sizeof(id->secret) == SWIM_SECRET_MAX, "secrets line up");
	memset(id, 0, sizeof(*id));
	err[0] = '\0';
	if (!cfg->cluster_listen_set)
		return 0;
	if (identity(cfg, id->name, id->address, id->secret, &id->secret_len, err, err_len) != 0)
		return -1;
	snprintf(id->cluster, sizeof(id->cluster), "%s", cfg->cluster_name);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	id->epoch = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	return 1;
}

/* ---- peers by name ------------------------------------------------------ */

/* Resolve every host:port of a PEERS list and add "ip:port" strings to
 * out (deduplicated); returns how many there are now. A name that does not
 * resolve is logged (rate-limited) and skipped: it may appear later. */
static size_t resolve_list(const char *list, char out[][SWIM_ADDRESS_MAX + 1], size_t n, size_t max)
{
	const char *p = list;
	while (*p && n < max) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char one[300];
		if (len >= sizeof(one))
			len = sizeof(one) - 1;
		memcpy(one, p, len);
		one[len] = '\0';
		p = end ? end + 1 : p + strlen(p);
		char *colon = strrchr(one, ':');
		if (!colon)
			continue;
		*colon = '\0';
		const char *host = one, *port = colon + 1;
		if (host[0] == '[') { /* [v6]:port */
			host++;
			char *close = strchr(one, ']');
			if (close)
				*close = '\0';
		}
		struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(host, port, &hints, &res);
		if (rc != 0) {
			LOG_WARN_RL(1, "cluster: cannot resolve %s: %s (tried again later)", host,
			            gai_strerror(rc));
			continue;
		}
		for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
			char ip[INET6_ADDRSTRLEN], s[SWIM_ADDRESS_MAX + 1];
			if (ai->ai_family == AF_INET) {
				struct sockaddr_in *a = (struct sockaddr_in *)ai->ai_addr;
				inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
				snprintf(s, sizeof(s), "%s:%u", ip, ntohs(a->sin_port));
			} else if (ai->ai_family == AF_INET6) {
				struct sockaddr_in6 *a = (struct sockaddr_in6 *)ai->ai_addr;
				inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
				snprintf(s, sizeof(s), "[%s]:%u", ip, ntohs(a->sin6_port));
			} else {
				continue;
			}
			bool dup = false;
			for (size_t i = 0; i < n && !dup; i++)
				dup = !strcmp(out[i], s);
			if (!dup)
				snprintf(out[n++], SWIM_ADDRESS_MAX + 1, "%s", s);
		}
		freeaddrinfo(res);
	}
	return n;
}

/* Seeds and cluster_dns, resolved now, handed to the protocol to join. */
static void resolve_and_join(struct cluster_node *n, uint64_t now)
{
	static char found[SWIM_SEEDS_MAX][SWIM_ADDRESS_MAX + 1];
	size_t count = resolve_list(n->cfg->cluster_seeds, found, 0, SWIM_SEEDS_MAX);
	count = resolve_list(n->cfg->cluster_dns, found, count, SWIM_SEEDS_MAX);
	const char *addrs[SWIM_SEEDS_MAX];
	for (size_t i = 0; i < count; i++)
		addrs[i] = found[i];
	if (count)
		swim_join(n->sw, now, addrs, count);
}

/* "ip:port" (or "[v6]:port") into a socket address. */
bool cluster_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	unsigned long port = strtoul(colon + 1, NULL, 10);
	if (port == 0 || port > 65535)
		return false;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[') {
		size_t hl = strlen(host);
		if (hl < 2 || host[hl - 1] != ']')
			return false;
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	*len = sizeof(*a);
	return inet_pton(AF_INET, host, &a->sin_addr) == 1;
}

static void format_peer(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(a->sin_port));
	}
}

/* ---- the thread --------------------------------------------------------- */

static void send_all(struct cluster_node *n)
{
	struct swim_datagram d;
	while (swim_next_send(n->sw, &d)) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (!cluster_parse_addr(d.to, &ss, &sl)) {
			LOG_WARN_RL(1, "cluster: cannot send to \"%s\": not an address", d.to);
			continue;
		}
		if (sendto(n->fd, d.bytes, d.len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl) < 0 &&
		    errno != EAGAIN && errno != EWOULDBLOCK)
			LOG_WARN_RL(1, "cluster: sending to %s: %s", d.to, strerror(errno));
	}
}

static void log_event(const struct swim_event *ev)
{
	switch (ev->type) {
	case SWIM_EV_JOINED:
		LOG_INFO("cluster: %s (%s) joined (epoch %llu)", ev->name, ev->address,
		         (unsigned long long)ev->epoch);
		break;
	case SWIM_EV_SUSPECT:
		LOG_WARN("cluster: %s (%s) is suspected: no answer to probes", ev->name,
		         ev->address);
		break;
	case SWIM_EV_ALIVE:
		LOG_INFO("cluster: %s (%s) is alive (incarnation %u)", ev->name, ev->address,
		         ev->incarnation);
		break;
	case SWIM_EV_DEAD:
		LOG_WARN("cluster: %s (%s) is dead: it stopped answering and nobody reached it",
		         ev->name, ev->address);
		break;
	case SWIM_EV_LEFT:
		LOG_INFO("cluster: %s (%s) left", ev->name, ev->address);
		break;
	case SWIM_EV_RESTARTED:
		LOG_INFO(
		    "cluster: %s (%s) restarted (epoch %llu, was %llu): what it had is dropped",
		    ev->name, ev->address, (unsigned long long)ev->epoch,
		    (unsigned long long)ev->epoch_before);
		break;
	case SWIM_EV_PAYLOAD:
		break;
	}
}

/* What the ops thread shows: relaxed stores of what the protocol counts. */
static void publish_view(struct cluster_node *n, uint64_t now)
{
	struct cluster_view *v = n->view;
	for (int st = 1; st < CLUSTER_STATES; st++)
		atomic_store_explicit(&v->members[st],
		                      swim_member_count(n->sw, (enum swim_state)st),
		                      memory_order_relaxed);
	const struct swim_counters *c = swim_counters(n->sw);
	atomic_store_explicit(&v->health_score, swim_health_score(n->sw), memory_order_relaxed);
	atomic_store_explicit(&v->packets_in, c->packets_received, memory_order_relaxed);
	atomic_store_explicit(&v->packets_out, c->packets_sent, memory_order_relaxed);
	atomic_store_explicit(&v->probes, c->probes_sent, memory_order_relaxed);
	atomic_store_explicit(&v->probes_failed, c->probes_failed, memory_order_relaxed);
	atomic_store_explicit(&v->indirect_probes, c->indirect_probes_sent, memory_order_relaxed);
	atomic_store_explicit(&v->suspicions, c->suspicions_raised, memory_order_relaxed);
	atomic_store_explicit(&v->refutations, c->refutations, memory_order_relaxed);
	for (int i = 0; i < CLUSTER_DROP_REASONS; i++)
		atomic_store_explicit(&v->dropped[i], c->dropped[i], memory_order_relaxed);
	uint64_t rtt_sum = 0, rtt_n = 0;
	size_t cursor = 0;
	struct swim_member_info m;
	while (swim_member_next(n->sw, &cursor, &m))
		if (m.state == SWIM_ALIVE && m.rtt_ms != UINT32_MAX) {
			rtt_sum += (uint64_t)m.rtt_ms * 1000;
			rtt_n++;
		}
	atomic_store_explicit(&v->probe_rtt_us_sum, rtt_sum, memory_order_relaxed);
	atomic_store_explicit(&v->probe_rtt_count, rtt_n, memory_order_relaxed);
	/* Ready: joined (a peer answered), or nothing to join, or alone for
	 * longer than the join timeout (the first node of a cluster). */
	bool ready = !n->joining || swim_member_count(n->sw, SWIM_ALIVE) > 0 ||
	             now - n->started_ms >= n->cfg->cluster_join_timeout_ms;
	if (ready && !atomic_load_explicit(&v->ready, memory_order_relaxed)) {
		atomic_store_explicit(&v->ready, true, memory_order_relaxed);
		size_t alive = swim_member_count(n->sw, SWIM_ALIVE);
		if (alive)
			LOG_INFO("cluster: joined as %s, %zu other node%s alive", n->name, alive,
			         alive == 1 ? "" : "s");
		else
			LOG_INFO("cluster: %s is alone in the cluster%s", n->name,
			         n->joining ? " (no seed answered within cluster_join_timeout_ms)"
			                    : "");
	}
}

/* The peer table the workers read (cluster_view.h): a number per name for
 * the life of the process, its address, epoch and state as last heard. */
static void peer_update(struct cluster_node *n, const struct swim_event *ev)
{
	uint8_t state;
	switch (ev->type) {
	case SWIM_EV_JOINED:
	case SWIM_EV_ALIVE:
	case SWIM_EV_RESTARTED:
		state = CLUSTER_ALIVE;
		break;
	case SWIM_EV_SUSPECT:
		state = CLUSTER_SUSPECT;
		break;
	case SWIM_EV_DEAD:
		state = CLUSTER_DEAD;
		break;
	case SWIM_EV_LEFT:
		state = CLUSTER_LEFT;
		break;
	default:
		return;
	}
	struct cluster_view *v = n->view;
	pthread_mutex_lock(&v->peers_lock);
	uint32_t i = 0;
	while (i < v->peer_count && strcmp(v->peers[i].name, ev->name) != 0)
		i++;
	if (i == v->peer_count) {
		if (i == CLUSTER_PEERS_MAX) {
			pthread_mutex_unlock(&v->peers_lock);
			atomic_fetch_add_explicit(&v->peers_refused, 1, memory_order_relaxed);
			LOG_WARN_RL(
			    1,
			    "cluster: %s is beyond the %d peers a node serves: no routes or "
			    "messages are exchanged with it",
			    ev->name, CLUSTER_PEERS_MAX);
			return;
		}
		snprintf(v->peers[i].name, sizeof(v->peers[i].name), "%s", ev->name);
		v->peer_count++;
	}
	struct cluster_peer *p = &v->peers[i];
	snprintf(p->address, sizeof(p->address), "%s", ev->address);
	p->epoch = ev->epoch;
	p->state = state;
	atomic_fetch_add_explicit(&v->peers_gen, 1, memory_order_release);
	pthread_mutex_unlock(&v->peers_lock);
}

/* A peer's digest rode in on its probes: what it says of its own routes. */
static void peer_digest(struct cluster_node *n, const struct swim_event *ev)
{
	struct route_digest_entry e[ROUTE_DIGEST_ENTRIES_MAX];
	int k = route_digest_decode(ev->payload, ev->payload_len, e, ROUTE_DIGEST_ENTRIES_MAX);
	if (k <= 0 || strcmp(e[0].origin, ev->name) != 0)
		return; /* its own entry comes first */
	struct cluster_view *v = n->view;
	pthread_mutex_lock(&v->peers_lock);
	for (uint32_t i = 0; i < v->peer_count; i++) {
		if (strcmp(v->peers[i].name, ev->name) != 0)
			continue;
		atomic_store_explicit(&v->peer_route_seq[i + 1], e[0].seq, memory_order_relaxed);
		atomic_store_explicit(&v->peer_route_epoch[i + 1], e[0].epoch,
		                      memory_order_release);
	}
	pthread_mutex_unlock(&v->peers_lock);
}

static void drain_events(struct cluster_node *n)
{
	struct swim_event ev;
	while (swim_next_event(n->sw, &ev)) {
		log_event(&ev);
		if (ev.type == SWIM_EV_PAYLOAD)
			peer_digest(n, &ev);
		else
			peer_update(n, &ev);
	}
}

/* What the workers ask of membership: our routes' digest on our probes
 * when worker 0 moved it, and a probe now of a peer whose link broke. */
static void worker_requests(struct cluster_node *n, uint64_t now)
{
	struct cluster_view *v = n->view;
	uint64_t epoch = atomic_load_explicit(&v->own_route_epoch, memory_order_relaxed);
	uint64_t seq = atomic_load_explicit(&v->own_route_seq, memory_order_relaxed);
	if (epoch && (epoch != n->digest_epoch || seq != n->digest_seq)) {
		struct route_digest_entry e = {.epoch = epoch, .seq = seq};
		snprintf(e.origin, sizeof(e.origin), "%s", n->name);
		uint8_t buf[ROUTE_DIGEST_BYTES_MAX];
		size_t encoded = 0;
		int len = route_digest_encode(&e, 1, buf, sizeof(buf), &encoded);
		if (len > 0 && swim_set_payload(n->sw, buf, (size_t)len) == 0) {
			n->digest_epoch = epoch;
			n->digest_seq = seq;
		}
	}
	pthread_mutex_lock(&v->peers_lock);
	uint32_t count = v->peer_count;
	pthread_mutex_unlock(&v->peers_lock);
	for (uint32_t i = 1; i <= count; i++) {
		if (!atomic_exchange_explicit(&v->probe_now[i], false, memory_order_relaxed))
			continue;
		char name[CLUSTER_NAME_MAX + 1];
		pthread_mutex_lock(&v->peers_lock);
		memcpy(name, v->peers[i - 1].name, sizeof(name));
		pthread_mutex_unlock(&v->peers_lock);
		swim_probe_now(n->sw, now, name); /* busy or already probing: fine */
	}
}

static void receive_all(struct cluster_node *n, uint64_t now)
{
	static uint8_t buf[SWIM_DATAGRAM_BYTES_MAX];
	for (int i = 0; i < RECV_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t r =
		    recvfrom(n->fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);
		if (r < 0)
			return; /* EAGAIN: all read */
		char from[SWIM_ADDRESS_MAX + 1];
		format_peer(&ss, from, sizeof(from));
		enum swim_drop d = swim_receive(n->sw, now, from, buf, (size_t)r);
		if (d == SWIM_DROP_AUTH || d == SWIM_DROP_CLUSTER)
			LOG_WARN_RL(1,
			            "cluster: refused a membership packet from %s: %s (another "
			            "cluster, or no cluster_secret_file in common)",
			            from, swim_drop_name(d));
	}
}

static void *node_main(void *arg)
{
	struct cluster_node *n = arg;
	pthread_setname_np(pthread_self(), "starling-cl");
	for (;;) {
		uint64_t now = clock_now_ms();
		if (n->joining && now >= n->next_resolve_ms) {
			resolve_and_join(n, now);
			now = clock_now_ms(); /* resolving may have taken a while */
			n->next_resolve_ms = now + (uint64_t)n->cfg->cluster_dns_interval_s * 1000;
		}
		worker_requests(n, now);
		if (now >= swim_next_deadline_ms(n->sw))
			swim_tick(n->sw, now);
		send_all(n);
		drain_events(n);
		publish_view(n, now);

		uint64_t wake = swim_next_deadline_ms(n->sw);
		if (n->joining && n->next_resolve_ms < wake)
			wake = n->next_resolve_ms;
		if (!atomic_load_explicit(&n->view->ready, memory_order_relaxed) &&
		    n->started_ms + n->cfg->cluster_join_timeout_ms < wake)
			wake = n->started_ms + n->cfg->cluster_join_timeout_ms;
		int timeout = wake > now ? (int)(wake - now < 1000 ? wake - now : 1000) : 0;
		struct pollfd fds[2] = {{n->fd, POLLIN, 0}, {n->stop_fd, POLLIN, 0}};
		int r = poll(fds, 2, timeout);
		if (r < 0 && errno != EINTR)
			LOG_WARN_RL(1, "cluster: poll: %s", strerror(errno));
		if (fds[1].revents)
			break;
		if (fds[0].revents)
			receive_all(n, clock_now_ms());
	}

	/* Leave: peers hear it at once and gossip it on; answer for a few
	 * gossip rounds so it spreads, then go. */
	uint64_t now = clock_now_ms();
	swim_leave(n->sw, now);
	send_all(n);
	uint64_t until = now + LEAVE_DRAIN_MS;
	while ((now = clock_now_ms()) < until) {
		if (now >= swim_next_deadline_ms(n->sw))
			swim_tick(n->sw, now);
		send_all(n);
		drain_events(n);
		struct pollfd fd = {n->fd, POLLIN, 0};
		uint64_t wake = swim_next_deadline_ms(n->sw);
		if (wake > until)
			wake = until;
		if (poll(&fd, 1, wake > now ? (int)(wake - now) : 0) > 0)
			receive_all(n, clock_now_ms());
	}
	LOG_INFO("cluster: %s left the cluster", n->name);
	return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

static void node_free(struct cluster_node *n)
{
	if (!n)
		return;
	if (n->fd >= 0)
		close(n->fd);
	if (n->stop_fd >= 0)
		close(n->stop_fd);
	swim_free(n->sw);
	free(n);
}

struct cluster_node *cluster_node_start(const struct config *cfg, struct cluster_view *view,
                                        const struct cluster_identity *id, char *err,
                                        size_t err_len)
{
	err[0] = '\0';
	atomic_store(&view->enabled, cfg->cluster_listen_set);
	atomic_store(&view->ready, !cfg->cluster_listen_set);
	if (!cfg->cluster_listen_set)
		return NULL;
	struct cluster_node *n = calloc(1, sizeof(*n));
	if (!n) {
		snprintf(err, err_len, "cluster: out of memory");
		return NULL;
	}
	n->fd = n->stop_fd = -1;
	n->cfg = cfg;
	n->view = view;
	memcpy(n->name, id->name, sizeof(n->name));
	memcpy(n->address, id->address, sizeof(n->address));
	size_t secret_len = id->secret_len;

	struct swim_params p;
	CHECK(swim_params_profile(&p, cfg->cluster_profile == CLUSTER_PROFILE_FAST ? "fast"
	                                                                           : "lan") == 0);
	uint64_t epoch = id->epoch;
	struct swim_node self = {.name = n->name,
	                         .address = n->address,
	                         .epoch = epoch,
	                         .cluster = cfg->cluster_name,
	                         .secret = secret_len ? id->secret : NULL,
	                         .secret_len = secret_len,
	                         .seed = epoch ^ (uint64_t)getpid() << 32};
	n->sw = swim_new(&p, &self);
	if (!n->sw) {
		snprintf(err, err_len, "cluster: cannot start membership as \"%s\" at %s", n->name,
		         n->address);
		goto fail;
	}

	/* The socket: cluster_listen's address, UDP. */
	struct sockaddr_storage ss;
	socklen_t sl;
	char listen[SWIM_ADDRESS_MAX + 1];
	struct config_addr la = cfg->cluster_listen;
	if (!la.host[0])
		snprintf(la.host, sizeof(la.host), "0.0.0.0");
	format_addr(&la, listen, sizeof(listen));
	if (la.port == 0 || !cluster_parse_addr(listen, &ss, &sl)) {
		snprintf(
		    err, err_len,
		    "cluster_listen: %s is not an address and port to bind (peers must know the "
		    "port: 0 will not do)",
		    listen);
		goto fail;
	}
	n->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0 || bind(n->fd, (struct sockaddr *)&ss, sl) != 0) {
		snprintf(err, err_len, "cluster_listen: cannot bind UDP %s: %s", listen,
		         strerror(errno));
		goto fail;
	}
	n->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (n->stop_fd < 0) {
		snprintf(err, err_len, "cluster: eventfd: %s", strerror(errno));
		goto fail;
	}
	n->joining = cfg->cluster_seeds[0] || cfg->cluster_dns[0];
	n->started_ms = clock_now_ms();
	n->next_resolve_ms = n->started_ms;
	if (pthread_create(&n->thread, NULL, node_main, n) != 0) {
		snprintf(err, err_len, "cluster: cannot start its thread");
		goto fail;
	}
	n->thread_started = true;
	LOG_INFO("cluster: %s at %s (membership over UDP %s, %s profile, epoch %llu%s)%s%s%s%s",
	         n->name, n->address, listen,
	         cfg->cluster_profile == CLUSTER_PROFILE_FAST ? "fast" : "lan",
	         (unsigned long long)epoch, secret_len ? ", signed" : ", unsigned: trusted network",
	         cfg->cluster_seeds[0] ? "; seeds " : "", cfg->cluster_seeds,
	         cfg->cluster_dns[0] ? "; dns " : "", cfg->cluster_dns);
	return n;
fail:
	node_free(n);
	return NULL;
}

void cluster_node_stop(struct cluster_node *n)
{
	if (!n)
		return;
	if (n->thread_started) {
		uint64_t one = 1;
		if (write(n->stop_fd, &one, sizeof(one)) < 0)
			LOG_WARN("cluster: cannot stop its thread: %s", strerror(errno));
		pthread_join(n->thread, NULL);
	}
	node_free(n);
}
