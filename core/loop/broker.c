/*
 * broker.c — starting and stopping a node: listeners (one SO_REUSEPORT
 * socket per worker per address, so the kernel spreads connections), the
 * N x N mailboxes, the worker threads. Runs on the main thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "io/net.h"
#include "loop/worker.h"
#include "persist/persist_cmd.h"
#include "persist/recover.h"
#include "persist/session_journal.h"
#include "transport/tls.h"

unsigned broker_worker_count(const struct config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = cfg->workers ? cfg->workers : (unsigned)(cpus > 0 ? cpus : 1);
	return n > WORKERS_MAX ? WORKERS_MAX : n;
}

/* Recovery hands each retained message to its shard for this worker count. */
static void recovered_retained(void *ctx, struct msg *m)
{
	struct broker *b = ctx;
	unsigned shard = retain_shard_of(m->pub.topic, b->worker_count);
	if (retain_put(b->workers[shard]->route.retained, m) != 0)
		LOG_WARN("out of memory restoring the retained message of \"%.*s\"",
		         (int)m->pub.topic.len, (const char *)m->pub.topic.ptr);
	msg_unref(m);
}

/* Recovery places a persistent session on a worker by its client id, with
 * its subscriptions in every worker's index; its times count on from its
 * record (a session online then lost its connection with the process: it
 * went offline now, and its will is due as after any lost connection). */
static int recovered_session(void *ctx, const uint8_t *cid, size_t cid_len, const uint8_t *enc,
                             size_t len, uint64_t wall_ms, struct sess_id *where)
{
	struct broker *b = ctx;
	uint64_t now_ms = clock_now_ms(), now_wall = clock_wall_ms();
	uint64_t gone_ms = now_wall > wall_ms ? now_wall - wall_ms : 0;
	struct worker *w = b->workers[hash_bytes(cid, cid_len) % b->worker_count];
	struct sess_id id = sess_reserve(&w->sessions);
	if (id.gen == 0) {
		LOG_WARN("the node holds its maximum of %u sessions (max_sessions): a restored "
		         "session is dropped",
		         b->cfg->max_sessions);
		return -1;
	}
	struct session *s = session_decode(enc, len, id, now_ms);
	if (!s || s->client_id_len != cid_len || memcmp(s->client_id, cid, cid_len) != 0) {
		LOG_WARN("a journaled session could not be rebuilt (%s)",
		         s ? "its client id disagrees with its record" : "malformed, or no memory");
		session_free(s);
		sess_release_slot(&w->sessions, id);
		return -1;
	}
	if (s->expires_at_ms == 0) { /* online when recorded */
		s->expires_at_ms = now_ms + (uint64_t)s->expiry_s * 1000;
		if (s->will)
			s->will_at_ms = now_ms + (uint64_t)s->will_delay_s * 1000;
	} else if (s->expires_at_ms <= now_ms + gone_ms && !s->will) {
		/* It expired while the node was down: nothing of it is due. */
		session_free(s);
		sess_release_slot(&w->sessions, id);
		return 1;
	} else {
		/* Expired with a will: the first sweep publishes it and ends it. */
		s->expires_at_ms =
		    s->expires_at_ms > now_ms + gone_ms ? s->expires_at_ms - gone_ms : now_ms;
		if (s->will_at_ms)
			s->will_at_ms =
			    s->will_at_ms > now_ms + gone_ms ? s->will_at_ms - gone_ms : now_ms;
	}
	sess_install(&w->sessions, s, id);
	sess_set_journaled(&w->sessions, id, true);
	struct sess_id prev;
	if (registry_claim(b->registry, s->client_id, s->client_id_len, id, &prev) != 0) {
		LOG_WARN("no memory to restore the session of \"%s\"", s->client_id);
		sess_release_slot(&w->sessions, id);
		session_free(s);
		return -1;
	}
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct sub_entry e = {id, s->subs[i].opts};
		for (unsigned k = 0; k < b->worker_count; k++)
			if (!route_restore(&b->workers[k]->route, f, &e))
				LOG_WARN(
				    "no memory to restore the subscription of \"%s\" to \"%s\"",
				    s->client_id, s->subs[i].filter);
	}
	*where = id;
	return 0;
}

/* A restored session's message back in its queue, journaled as it was (its
 * REC_MSG names the session's place before the restart; its done record,
 * when it comes, names its stamp). Within the queue limits, as any. */
static void recovered_message(void *ctx, struct sess_id where, struct msg *m, uint8_t qos,
                              uint8_t flags, uint32_t sub_id, uint16_t pid)
{
	struct broker *b = ctx;
	const struct config *cfg = b->cfg;
	struct worker *w = b->workers[where.worker];
	struct session *s = sess_get(&w->sessions, where);
	if (!m) {
		if (!s)
			return;
		/* A PUBREL owed (sent again when the client returns), or an
		 * inbound QoS 2 id awaiting PUBREL (a resend is not routed). */
		bool ok =
		    qos == 2 ? session_owe_pubrel(s, pid) : session_rx_qos2_add(s, pid, UINT32_MAX);
		if (!ok)
			LOG_WARN("the QoS 2 state of packet id %u of \"%s\" could not be restored",
			         pid, s->client_id);
		return;
	}
	/* A QoS 2 delivery that went out: again under its id (a receiver
	 * that had it knows it); else, or when that id is taken, queued. */
	if (s && pid && session_resend_inflight(s, m, pid, qos, flags | DELIV_JOURNALED, sub_id)) {
		msg_unref(m);
		return;
	}
	/* One the limits drop here is not in the snapshot the compaction
	 * after every recovering start writes; a crash before that gives it
	 * back once more (at least once). */
	struct queue_limits lim;
	if (s) {
		queue_limits_of(cfg, s, &lim);
		unsigned dropped = session_enqueue(s, m, qos, flags | DELIV_JOURNALED, sub_id,
		                                   lim.messages, lim.bytes, lim.policy, NULL);
		w->st.drops_queue += dropped;
		bridge_dropped(w, &lim, dropped);
	}
	msg_unref(m);
}

/* The restored sessions live at new places: each gets a REC_SESS_PLACED
 * there before any client can publish, or a message journaled for it from
 * now on would name a place no record resolves after the next crash. */
static int journal_restored(struct broker *b, char *err, size_t err_len)
{
	uint64_t now_ms = clock_now_ms(), wall = clock_wall_ms();
	for (unsigned i = 0; i < b->worker_count; i++) {
		struct worker *w = b->workers[i];
		struct sessions *t = &w->sessions;
		uint8_t *buf = NULL;
		size_t len = 0, cap = 0;
		for (uint32_t k = 0; k < t->cap; k++) {
			if (!t->sess[k] || !t->journaled[k])
				continue;
			uint64_t stamp = atomic_fetch_add(&b->sess_stamp, 1) + 1;
			uint8_t *rec;
			size_t n = persist_session_record(
			    t->sess[k], b->run, stamp, w->barrier.appended + 1, now_ms, wall, &rec);
			if (n && len + n > cap) {
				size_t c = cap ? cap * 2 : 64 * 1024;
				while (c < len + n)
					c *= 2;
				uint8_t *x = realloc(buf, c);
				if (!x) {
					free(rec);
					n = 0;
				} else {
					buf = x;
					cap = c;
				}
			}
			if (!n) {
				free(buf);
				snprintf(err, err_len,
				         "out of memory journaling the restored sessions");
				return -1;
			}
			barrier_append(&w->barrier);
			memcpy(buf + len, rec, n);
			free(rec);
			len += n;
		}
		int rc = len ? journal_write_at_start(&w->journal, buf, len, err, err_len) : 0;
		free(buf);
		if (rc != 0)
			return -1;
		w->barrier.durable = w->barrier.appended;
	}
	return 0;
}

/* Persistence on: the journal's state back into the workers, then a new
 * segment for each (core/persist/README.md). */
static int persistence_start(struct broker *b, char *err, size_t err_len)
{
	const struct config *cfg = b->cfg;
	struct recover_result r;
	char dir[CONFIG_PATH_MAX + 16];
	if (journal_dir(cfg, dir, sizeof(dir), err, err_len) != 0)
		return -1;
	/* One node per directory: a second one would interleave segments. */
	b->data_lock = persist_lock(cfg->data_dir, err, err_len);
	if (b->data_lock < 0)
		return -1;
	if (recover_run(cfg, clock_now_ms(), recovered_retained, recovered_session,
	                recovered_message, b, &r, err, err_len) != 0)
		return -1;
	if (r.files)
		LOG_INFO("recovered from %s/journal in %llu ms: %llu sessions (%llu expired, "
		         "dropped), %llu queued messages (%llu expired, %llu of ended sessions, "
		         "dropped), %llu QoS 2 releases owed, %llu inbound QoS 2 ids awaiting "
		         "PUBREL, %llu retained messages (%llu expired, dropped); %llu records "
		         "in %llu files, %llu bytes%s",
		         cfg->data_dir, (unsigned long long)r.ms, (unsigned long long)r.sessions,
		         (unsigned long long)r.sessions_expired, (unsigned long long)r.messages,
		         (unsigned long long)r.messages_expired,
		         (unsigned long long)r.messages_orphaned, (unsigned long long)r.releases,
		         (unsigned long long)r.inbound, (unsigned long long)r.retained,
		         (unsigned long long)r.retained_expired, (unsigned long long)r.records,
		         (unsigned long long)r.files, (unsigned long long)r.bytes,
		         r.cut ? "; damaged tails cut (see above)" : "");
	else
		LOG_INFO("persistence: %s/journal holds nothing yet: starting empty",
		         cfg->data_dir);
	atomic_store(&b->retain_stamp, r.next_stamp - 1);
	atomic_store(&b->sess_stamp, r.next_sess_stamp - 1);
	b->run = r.next_run;
	b->recovered = r;
	if (r.unknown)
		LOG_WARN(
		    "the journal holds %llu records of a kind this build does not know (a newer "
		    "version wrote them): kept, and no file is compacted away",
		    (unsigned long long)r.unknown);
	if (compact_node_init(&b->compact, cfg, b->worker_count, r.next_segment + 1,
	                      r.unknown + r.rejected > 0, r.files > 0) != 0) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < b->worker_count; i++) {
		struct worker *w = b->workers[i];
		if (journal_open(&w->journal, cfg, (uint16_t)i, r.next_segment, err, err_len) != 0)
			return -1;
		compact_init(&w->compact, &b->compact, (uint16_t)i, &w->journal, w->route.retained,
		             &w->mail, &w->now_ms);
		w->compact.sessions = &w->sessions;
		w->compact.sess_stamps = &b->sess_stamp;
		w->journal.run = b->run;
	}
	return journal_restored(b, err, err_len);
}

int broker_start(struct broker *b, const struct config *cfg, const struct worker_ext *ext,
                 char *err, size_t err_len)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->cluster_view.peers_lock, NULL);
	b->cfg = cfg;
	if (ext)
		b->ext = *ext;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = broker_worker_count(cfg);
	b->worker_count = n;
	b->start_ms = clock_now_ms();
	atomic_init(&b->tnode.conn_count, 0);
	atomic_init(&b->tnode.conn_max, 0);
	atomic_init(&b->sess_count, 0);
	atomic_init(&b->stop_wills_out, 0);
	b->registry = registry_new();
	b->auth = auth_new(cfg, n, err, err_len);
	if (!b->auth || bridges_prepare(b, err, err_len) != 0)
		return -1;
	b->workers = calloc(n, sizeof(*b->workers));
	b->mboxes = calloc((size_t)n * n, sizeof(*b->mboxes));
	b->ring_fds = calloc(n, sizeof(*b->ring_fds));
	snprintf(err, err_len, "out of memory");
	if (!b->registry || !b->workers || !b->mboxes || !b->ring_fds)
		return -1;
	/* Each worker's mailboxes share one budget of slots (mail.c), so the
	 * node's mailboxes grow with the workers, not their square. */
	uint32_t box_cap = mail_box_cap(n);
	for (unsigned from = 0; from < n; from++) {
		for (unsigned to = 0; to < n; to++) {
			if (from == to)
				continue;
			struct mbox *mb = mbox_new(box_cap);
			if (!mb)
				return -1;
			b->mboxes[from * n + to] = mb;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		b->workers[i] = worker_new(b, (uint16_t)i);
		if (!b->workers[i])
			return -1;
	}
	if (cfg->persistence && persistence_start(b, err, err_len) != 0)
		return -1;

	if (cfg->tls_listen_count + cfg->wss_listen_count > 0) {
		b->tls = tls_new(cfg, n, err, err_len);
		if (!b->tls)
			return -1;
	}
	/* Every worker listens on every address; with port 0 the first
	 * socket picks the port and the others share it. The listener index
	 * a connection keeps says which kind it is. */
	const struct {
		const struct config_addr *list;
		unsigned count;
		const char *kind, *what;
	} kinds[] = {
	    [LISTENER_MQTT] = {cfg->listen, cfg->listen_count, "mqtt", "MQTT"},
	    [LISTENER_MQTTS] = {cfg->tls_listen, cfg->tls_listen_count, "mqtts", "MQTT over TLS"},
	    [LISTENER_WS] = {cfg->ws_listen, cfg->ws_listen_count, "ws", "MQTT over WebSocket"},
	    [LISTENER_WSS] = {cfg->wss_listen, cfg->wss_listen_count, "wss",
	                      "MQTT over secure WebSocket"},
	    [LISTENER_LINK] = {b->ext.listen, b->ext.listen ? 1 : 0, "link", "the cluster's link"},
	};
	for (unsigned k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		const struct config_addr *list = kinds[k].list;
		unsigned count = kinds[k].count;
		const char *kind = kinds[k].kind;
		const char *what = kinds[k].what;
		for (unsigned l = 0; l < count; l++) {
			struct listener *ln = &b->tnode.listeners[b->tnode.listener_count];
			uint16_t port = list[l].port;
			for (unsigned i = 0; i < n; i++) {
				char why[256];
				int fd = net_listen(&list[l], NET_REUSEPORT | NET_NODELAY, 4096,
				                    &port, why, sizeof(why));
				if (fd < 0) {
					snprintf(err, err_len, "cannot listen for %s on %s", what,
					         why);
					return -1;
				}
				struct transport *tp = &b->workers[i]->tp;
				tp->listen_fds[tp->listen_count++] = fd;
			}
			const char *host = list[l].host[0] ? list[l].host : "*";
			ln->kind = (uint8_t)k;
			ln->upper = k == LISTENER_LINK ? b->ext.upper : 0;
			ln->port = port;
			snprintf(ln->name, sizeof(ln->name),
			         strchr(host, ':') ? "%s [%s]:%u" : "%s %s:%u", kind, host, port);
			b->tnode.listener_count++;
			LOG_INFO("listening for %s on %s:%u", what, host, port);
		}
	}

	if (b->ext.listen) { /* where the connections the extension dials belong */
		struct listener *ln = &b->tnode.listeners[b->tnode.listener_count++];
		ln->kind = LISTENER_DIAL;
		ln->upper = b->ext.upper;
		snprintf(ln->name, sizeof(ln->name), "link out");
	}
	/* One pseudo-listener per bridge: its connections are MQTT's (upper
	 * 0), dialled by the bridge's worker (mqtt/bridge.c), and the index
	 * says which bridge a connection is. */
	b->bridge_listener0 = b->tnode.listener_count;
	for (unsigned i = 0; i < cfg->bridge_count; i++) {
		struct listener *ln = &b->tnode.listeners[b->tnode.listener_count++];
		ln->kind = LISTENER_BRIDGE;
		ln->upper = 0;
		snprintf(ln->name, sizeof(ln->name), "bridge %s", cfg->bridges[i].name);
	}

	pthread_barrier_init(&b->start_barrier, NULL, n + 1);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&b->workers[i]->thread, NULL, worker_main, b->workers[i]) != 0) {
			LOG_ERROR("cannot start worker %u", i);
			abort();
		}
		/* One core per worker when there are enough cores. */
		if (cpus > 0 && n <= (unsigned)cpus) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(i, &set);
			pthread_setaffinity_np(b->workers[i]->thread, sizeof(set), &set);
		}
	}
	pthread_barrier_wait(&b->start_barrier);
	for (unsigned i = 0; i < n; i++)
		if (b->workers[i]->init_failed) {
			snprintf(err, err_len, "worker %u could not set up its io_uring ring", i);
			return -1;
		}
	LOG_INFO("%u worker%s running", n, n == 1 ? "" : "s");
	return 0;
}

void broker_signal_stop(struct broker *b)
{
	for (unsigned i = 0; i < b->worker_count; i++) {
		struct worker *w = b->workers[i];
		atomic_store(&w->stopping, true);
		uint64_t one = 1;
		if (write(w->stop_fd, &one, sizeof(one)) < 0)
			LOG_WARN("cannot wake worker %u: %s", i, strerror(errno));
	}
}

void broker_stop(struct broker *b)
{
	broker_signal_stop(b);
	for (unsigned i = 0; i < b->worker_count; i++)
		pthread_join(b->workers[i]->thread, NULL);
}

void broker_free(struct broker *b)
{
	/* Mail still in flight holds references: release it before freeing.
	 * A box is read by its receiver, whose kinds say what a body holds. */
	for (unsigned to = 0; b->mboxes && to < b->worker_count; to++) {
		for (unsigned from = 0; from < b->worker_count; from++) {
			struct mbox *mb = b->mboxes[from * b->worker_count + to];
			if (!mb)
				continue;
			struct mbox_msg m;
			while (b->workers && b->workers[to] && mbox_pop(mb, &m, 1) == 1)
				mail_discard(&b->workers[to]->mail, &m);
			free(mb);
		}
	}
	compact_node_fini(&b->compact); /* its thread, if one runs */
	if (b->cfg && b->cfg->persistence && b->data_lock > 0)
		close(b->data_lock);
	for (unsigned i = 0; b->workers && i < b->worker_count; i++)
		worker_free(b->workers[i]); /* its overflow too (mail_fini) */
	free(b->workers);
	bridges_release(b);
	free(b->mboxes);
	free(b->ring_fds);
	registry_free(b->registry);
	auth_free(b->auth);
	tls_free(b->tls);
}
