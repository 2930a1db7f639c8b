/*
 * bridge.c — a bridge's life on its worker (bridge.h): its session made
 * or found at start, the dial and the back-off, the CONNECT we send and the
 * CONNACK we read, the subscriptions on both sides, pings, and the topic
 * rewriting at the edges. Runs on the bridge's worker only, except
 * bridges_prepare and bridges_release (main thread, before the workers
 * start and after they stopped).
 */
#include "mqtt/bridge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "loop/worker.h"
#include "mqtt/bridge_dns.h"
#include "session/registry.h"
#include "session/session.h"
#include "transport/tls.h"

/* A connection that held this long resets the back-off to its minimum. */
#define BRIDGE_STABLE_MS 10000

struct bridge {
	const struct config_bridge *cfg;
	struct bridge_dns *dns; /* where it dials (bridge_dns.h) */
	unsigned index;         /* in cfg->bridges */
	unsigned listener;      /* its pseudo-listener: which bridge a connection is */
	uint8_t state;          /* enum bridge_state */
	bool has_conn;          /* a connection exists (slot, gen) */
	uint32_t slot, gen;
	unsigned next_addr;     /* the address to dial next (failover in turn) */
	uint64_t next_dial_ms;  /* BRIDGE_WAITING: when to dial */
	uint32_t backoff_ms;    /* the last wait; doubles on failure */
	uint64_t up_since_ms;   /* BRIDGE_UP: since when */
	uint64_t last_ping_ms;  /* the last PINGREQ we sent */
	uint64_t rng;           /* the jitter's state */
	struct bridge_pub *pub; /* its figures for /metrics */
	uint16_t sample_pid;    /* the PUBLISH being timed; 0: none */
	uint64_t sample_ns;     /* when it went into the outbox */
	struct sess_id sid;     /* its session on this worker, once made or attached */
	char local_id[sizeof(BRIDGE_ID_PREFIX) + CONFIG_BRIDGE_NAME_MAX];
	char remote_id[CONFIG_PATH_MAX + CONFIG_NAME_MAX + CONFIG_BRIDGE_NAME_MAX];
	/* Per rule: LOCAL_PREFIX + PATTERN and REMOTE_PREFIX + PATTERN. */
	char (*local_filter)[CONFIG_BRIDGE_PREFIX_MAX + CONFIG_BRIDGE_PATTERN_MAX];
	char (*remote_filter)[CONFIG_BRIDGE_PREFIX_MAX + CONFIG_BRIDGE_PATTERN_MAX];
};

static struct bridge *bridge_of(const struct worker *w, const struct client *cl);

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

unsigned bridge_worker(const struct config *cfg, unsigned i, unsigned workers)
{
	return (unsigned)(fnv1a(cfg->bridges[i].name) % workers);
}

/* ------------------------------------------------------------------------ */
/* Main thread: set-up and release */

int bridges_prepare(struct broker *b, char *err, size_t err_len)
{
	const struct config *cfg = b->cfg;
	if (cfg->bridge_count == 0)
		return 0;
	b->bridge_pub = calloc(cfg->bridge_count, sizeof(*b->bridge_pub));
	if (!b->bridge_pub) {
		snprintf(err, err_len, "bridges: out of memory");
		return -1;
	}
	b->bridge_dns = bridge_dns_start(cfg, err, err_len);
	return b->bridge_dns ? 0 : -1;
}

void queue_limits_of(const struct config *cfg, const struct session *s, struct queue_limits *out)
{
	const size_t plen = sizeof(BRIDGE_ID_PREFIX) - 1;
	const struct config_bridge *c = NULL;
	if (cfg->bridge_count && s->client_id_len > plen &&
	    !memcmp(s->client_id, BRIDGE_ID_PREFIX, plen))
		c = config_bridge_find(cfg, s->client_id + plen);
	if (c)
		*out = (struct queue_limits){c->queue_messages_max, c->queue_bytes_max,
		                             c->queue_overflow, (int)(c - cfg->bridges)};
	else
		*out = (struct queue_limits){cfg->queue_messages_max, cfg->queue_bytes_max,
		                             cfg->queue_overflow, -1};
}

void bridge_dropped(struct worker *w, const struct queue_limits *lim, unsigned n)
{
	if (n && lim->bridge >= 0)
		atomic_fetch_add_explicit(&w->b->bridge_pub[lim->bridge].dropped, n,
		                          memory_order_relaxed);
}

/* Only the bridge's worker writes its counters: a load and a store, not
 * a locked add, on the path of every message it carries. */
static void count(struct bridge *b, bool out, uint32_t payload_bytes)
{
	_Atomic uint64_t *m = &b->pub->msgs[out], *by = &b->pub->bytes[out];
	atomic_store_explicit(m, atomic_load_explicit(m, memory_order_relaxed) + 1,
	                      memory_order_relaxed);
	atomic_store_explicit(by, atomic_load_explicit(by, memory_order_relaxed) + payload_bytes,
	                      memory_order_relaxed);
}

void bridge_received(struct worker *w, const struct client *cl, uint32_t payload_bytes)
{
	struct bridge *b = bridge_of(w, cl);
	if (b)
		count(b, false, payload_bytes);
}

void bridge_sent(struct worker *w, const struct client *cl, const struct mqtt_publish *p)
{
	struct bridge *b = bridge_of(w, cl);
	if (!b)
		return;
	count(b, true, p->payload.len);
	if (p->qos && !b->sample_pid) {
		b->sample_pid = p->packet_id;
		b->sample_ns = clock_now_ns();
	}
}

void bridge_acked(struct worker *w, const struct client *cl, uint8_t type, uint16_t pid)
{
	struct bridge *b = bridge_of(w, cl);
	if (!b || !b->sample_pid || pid != b->sample_pid ||
	    (type != MQTT_PUBACK && type != MQTT_PUBREC))
		return;
	uint64_t us = (clock_now_ns() - b->sample_ns) / 1000;
	atomic_fetch_add_explicit(&b->pub->rtt_us, us, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->pub->rtt_n, 1, memory_order_relaxed);
	b->sample_pid = 0;
}

/* $SYS/broker/bridge/NAME/state: 1 while the link is up, 0 otherwise,
 * retained (mosquitto's $SYS/broker/connection/NAME/state), when the node
 * publishes $SYS at all (sys_interval_s). */
static void publish_state(struct worker *w, struct bridge *b, bool up)
{
	if (!w->cfg->sys_interval_s)
		return;
	char topic[64 + CONFIG_BRIDGE_NAME_MAX];
	snprintf(topic, sizeof(topic), "$SYS/broker/bridge/%s/state", b->cfg->name);
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(topic);
	p.publish.payload = mqtt_view_str(up ? "1" : "0");
	p.publish.retain = true;
	/* msg_new takes a PUBLISH as it was on the wire: build that first. */
	uint8_t wire[sizeof(topic) + 16];
	size_t n = mqtt_encode(&p, MQTT_V5, wire, sizeof(wire));
	struct mqtt_packet d;
	struct msg *m = NULL;
	if (n > 0 && mqtt_decode_buf(wire, n, MQTT_V5, &d, NULL) == MQTT_RC_SUCCESS) {
		struct sess_id nobody = {0};
		m = msg_new(&d.publish, MQTT_V5, d.publish.topic, nobody, w->now_ms);
	}
	if (m)
		route_publish(&w->route, m);
}

static void set_state(struct worker *w, struct bridge *b, enum bridge_state st)
{
	bool was_up = b->state == BRIDGE_UP;
	b->state = (uint8_t)st;
	atomic_store_explicit(&b->pub->state, st, memory_order_relaxed);
	if (was_up != (st == BRIDGE_UP))
		publish_state(w, b, st == BRIDGE_UP);
}

void bridges_release(struct broker *b)
{
	bridge_dns_stop(b->bridge_dns);
	free(b->bridge_pub);
	b->bridge_dns = NULL;
	b->bridge_pub = NULL;
}

/* ------------------------------------------------------------------------ */
/* Set-up */

static struct bridge *bridge_by_listener(const struct worker *w, unsigned listener)
{
	for (unsigned i = 0; i < w->mq.bridge_count; i++)
		if (w->mq.bridges[i].listener == listener)
			return &w->mq.bridges[i];
	return NULL;
}

static struct bridge *bridge_of(const struct worker *w, const struct client *cl)
{
	return bridge_by_listener(w, cl->c.listener);
}

int bridges_init(struct worker *w)
{
	const struct config *cfg = w->cfg;
	unsigned n = 0;
	for (unsigned i = 0; i < cfg->bridge_count; i++)
		n += bridge_worker(cfg, i, w->b->worker_count) == w->id;
	if (n == 0)
		return 0;
	w->mq.bridges = calloc(n, sizeof(struct bridge));
	if (!w->mq.bridges)
		return -1;
	for (unsigned i = 0; i < cfg->bridge_count; i++) {
		if (bridge_worker(cfg, i, w->b->worker_count) != w->id)
			continue;
		struct bridge *b = &w->mq.bridges[w->mq.bridge_count++];
		const struct config_bridge *c = &cfg->bridges[i];
		b->cfg = c;
		b->index = i; /* its addresses and pseudo-listener: known at start */
		snprintf(b->local_id, sizeof(b->local_id), "%s%s", BRIDGE_ID_PREFIX, c->name);
		if (c->client_id[0]) {
			snprintf(b->remote_id, sizeof(b->remote_id), "%s", c->client_id);
		} else {
			char host[CONFIG_NAME_MAX] = "";
			if (cfg->node_name[0])
				snprintf(host, sizeof(host), "%s", cfg->node_name);
			else if (gethostname(host, sizeof(host) - 1) != 0)
				snprintf(host, sizeof(host), "starling");
			snprintf(b->remote_id, sizeof(b->remote_id), "%s.%s", host, c->name);
		}
		b->local_filter =
		    calloc(c->topic_count ? c->topic_count : 1, sizeof(*b->local_filter));
		b->remote_filter =
		    calloc(c->topic_count ? c->topic_count : 1, sizeof(*b->remote_filter));
		if (!b->local_filter || !b->remote_filter)
			return -1;
		for (unsigned t = 0; t < c->topic_count; t++) {
			const struct config_bridge_topic *r = &c->topics[t];
			snprintf(b->local_filter[t], sizeof(b->local_filter[t]), "%s%s",
			         r->local_prefix, r->pattern);
			snprintf(b->remote_filter[t], sizeof(b->remote_filter[t]), "%s%s",
			         r->remote_prefix, r->pattern);
		}
	}
	return 0;
}

void bridges_fini(struct worker *w)
{
	for (unsigned i = 0; i < w->mq.bridge_count; i++) {
		free(w->mq.bridges[i].local_filter);
		free(w->mq.bridges[i].remote_filter);
	}
	free(w->mq.bridges);
	w->mq.bridges = NULL;
	w->mq.bridge_count = 0;
}

/* Has s a subscription to f with these options already? */
static bool has_sub(const struct session *s, struct mqtt_view f, const struct sub_opts *o)
{
	const struct sub_opts *e = session_sub_opts(s, f);
	return e && e->qos == o->qos && e->no_local == o->no_local && e->rap == o->rap &&
	       e->journaled == o->journaled && e->sub_id == o->sub_id;
}

/* The session's local subscriptions are the out rules', each with
 * no-local (what came in through the bridge does not go back out) and
 * retain-as-published (the remote keeps a retained message retained), at
 * the rule's QoS or the remote's Maximum QoS (max_qos) if lower: a remote
 * refuses a PUBLISH above it (0x9B) and closes the link, so a rule's QoS 2
 * goes as QoS 1 to one that takes QoS 1 (AWS IoT Core, for one). Any other
 * is removed (a rule taken out of the configuration). Journaled only when
 * something changed. */
static void subs_sync(struct worker *w, struct bridge *b, struct session *s, uint8_t max_qos)
{
	const struct config_bridge *c = b->cfg;
	bool journaled = session_journal_wanted(w, s);
	bool changed = false;
	for (unsigned t = 0; t < c->topic_count; t++) {
		if (!(c->topics[t].dir & BRIDGE_OUT))
			continue;
		struct mqtt_view f = mqtt_view_str(b->local_filter[t]);
		struct sub_opts opts = {.qos =
		                            c->topics[t].qos < max_qos ? c->topics[t].qos : max_qos,
		                        .no_local = true,
		                        .rap = true,
		                        .journaled = journaled};
		if (has_sub(s, f, &opts))
			continue;
		int added = session_sub_add(s, f, opts, CONFIG_BRIDGE_TOPICS_MAX);
		struct sub_entry se = {s->id, opts};
		if (added < 0 || !route_subscribe(&w->route, f, &se)) {
			LOG_WARN("bridge %s: cannot subscribe to \"%s\" here", c->name,
			         b->local_filter[t]);
			continue;
		}
		changed = true;
		if (added == 1)
			route_retained_query(&w->route, f, &se); /* as a new subscriber gets them */
	}
	/* Filters of rules no longer configured. */
	for (uint32_t i = 0; i < s->sub_count;) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		bool wanted = false;
		for (unsigned t = 0; t < c->topic_count && !wanted; t++)
			wanted = (c->topics[t].dir & BRIDGE_OUT) &&
			         mqtt_view_eq(f, mqtt_view_str(b->local_filter[t]));
		if (wanted) {
			i++;
			continue;
		}
		route_unsubscribe(&w->route, f, s->id);
		session_sub_remove(s, f);
		changed = true;
	}
	if (changed && journaled)
		session_journal(w, s, false);
}

void bridges_start(struct worker *w)
{
	for (unsigned i = 0; i < w->mq.bridge_count; i++) {
		struct bridge *b = &w->mq.bridges[i];
		b->dns = w->b->bridge_dns;
		b->pub = &w->b->bridge_pub[b->index];
		b->listener = w->b->bridge_listener0 + b->index;
		b->rng = fnv1a(b->cfg->name) ^ w->now_ms ^ 0x9E3779B97F4A7C15ull;
		b->next_dial_ms = w->now_ms; /* at once */
		b->state = BRIDGE_WAITING;
		publish_state(w, b, false); /* a retained 1 from before a restart is stale */
		/* The session exists from the start, so what is published before
		 * the first connection is kept for the remote too. After a
		 * restart with persistence it came back from the journal: found,
		 * not made again. */
		struct sess_id id = sess_reserve(&w->sessions);
		if (id.gen == 0) {
			LOG_ERROR("bridge %s: no session slot (max_sessions)", b->cfg->name);
			continue;
		}
		size_t len = strlen(b->local_id);
		struct session *s = session_new((const uint8_t *)b->local_id, (uint16_t)len, id);
		if (!s) {
			sess_release_slot(&w->sessions, id);
			LOG_ERROR("bridge %s: out of memory for its session", b->cfg->name);
			continue;
		}
		session_set_expiry(s, UINT32_MAX);
		s->version = MQTT_V5; /* never attached yet: a level its record can carry */
		struct sess_id prev;
		int r = registry_claim_free(w->b->registry, b->local_id, len, id, &prev);
		if (r != 0) {
			session_free(s);
			sess_release_slot(&w->sessions, id);
			if (r < 0)
				LOG_ERROR("bridge %s: out of memory for its session", b->cfg->name);
			continue; /* restored: it is synced once attached */
		}
		sess_install(&w->sessions, s, id);
		b->sid = id;
		session_journal(w, s, false);
		subs_sync(w, b, s, 2);
	}
}

/* ------------------------------------------------------------------------ */
/* The connection */

/* Full jitter between the minimum and the current back-off: many edges
 * that lost one remote do not all come back at the same moment. */
static void plan_dial(struct worker *w, struct bridge *b, bool failed)
{
	const struct config_bridge *c = b->cfg;
	if (!failed || b->backoff_ms == 0)
		b->backoff_ms = c->reconnect_min_ms;
	else
		b->backoff_ms = b->backoff_ms * 2 > c->reconnect_max_ms ? c->reconnect_max_ms
		                                                        : b->backoff_ms * 2;
	b->rng ^= b->rng << 13, b->rng ^= b->rng >> 7, b->rng ^= b->rng << 17;
	uint32_t span = b->backoff_ms - c->reconnect_min_ms;
	uint32_t wait = c->reconnect_min_ms + (span ? (uint32_t)(b->rng % (span + 1)) : 0);
	b->next_dial_ms = w->now_ms + wait;
	set_state(w, b, BRIDGE_WAITING);
}

static void dial(struct worker *w, struct bridge *b)
{
	struct sockaddr_storage addr;
	socklen_t len;
	char host[BRIDGE_HOST_MAX];
	struct ssl_ctx_st *ssl_ctx;
	if (!bridge_dns_pick(b->dns, b->index, b->next_addr++, &addr, &len, host, &ssl_ctx)) {
		LOG_WARN_RL(1, "bridge %s: no address of \"%s\" resolves yet", b->cfg->name,
		            b->cfg->address);
		bridge_dns_refresh(b->dns, b->index);
		atomic_fetch_add_explicit(&b->pub->failures, 1, memory_order_relaxed);
		plan_dial(w, b, true);
		return;
	}
	struct conn *c;
	if (ssl_ctx) {
		const char *name = b->cfg->sni[0] ? b->cfg->sni : host;
		struct tls_conn *t = tls_conn_new_client(ssl_ctx, name, b->cfg->verify);
		if (!b->cfg->verify)
			LOG_WARN_RL(1,
			            "bridge %s: TLS without verifying the remote's certificate "
			            "(bridge.%s.verify = false)",
			            b->cfg->name, b->cfg->name);
		c = t ? transport_dial_tls(&w->tp, b->listener, &addr, len, t) : NULL;
	} else {
		c = transport_dial(&w->tp, b->listener, &addr, len);
	}
	if (!c) {
		LOG_WARN_RL(1, "bridge %s: cannot dial: %s", b->cfg->name, strerror(errno));
		plan_dial(w, b, true);
		return;
	}
	client_of(c)->bridge = true;
	b->has_conn = true;
	b->slot = c->slot;
	b->gen = c->gen;
	set_state(w, b, BRIDGE_CONNECTING);
}

void bridges_tick(struct worker *w)
{
	bool stopping = w->tp.stopping;
	for (unsigned i = 0; i < w->mq.bridge_count; i++) {
		struct bridge *b = &w->mq.bridges[i];
		const struct session *s = sess_get(&w->sessions, b->sid);
		if (s) { /* else it is elsewhere (restored on another worker), for now */
			atomic_store_explicit(&b->pub->queued, s->q_len, memory_order_relaxed);
			atomic_store_explicit(&b->pub->inflight, s->infl_count,
			                      memory_order_relaxed);
		}
		if (!b->has_conn) {
			if (!stopping && b->state == BRIDGE_WAITING && w->now_ms >= b->next_dial_ms)
				dial(w, b);
			continue;
		}
		if (b->state != BRIDGE_UP || !b->cfg->keepalive_s)
			continue;
		/* A PINGREQ at half the keep-alive: the remote's answer keeps our
		 * own deadline (1.5 x keep alive after the last packet) away. */
		if (w->now_ms - b->last_ping_ms >= (uint64_t)b->cfg->keepalive_s * 500) {
			struct conn *c = conn_get(&w->tp, b->slot, b->gen);
			if (c && !c->closing) {
				struct mqtt_packet p = {.type = MQTT_PINGREQ};
				client_send(w, client_of(c), &p);
			}
			b->last_ping_ms = w->now_ms;
		}
	}
}

void bridge_opened(struct worker *w, struct client *cl)
{
	struct bridge *b = bridge_of(w, cl);
	const struct config_bridge *c = b->cfg;
	cl->version = c->version == BRIDGE_V311 ? MQTT_V311 : MQTT_V5;
	struct mqtt_packet p = {.type = MQTT_CONNECT};
	struct mqtt_connect *k = &p.connect;
	k->version = cl->version;
	k->bridge = c->version == BRIDGE_V311 && c->try_private;
	k->clean_start = c->clean_start;
	k->keepalive_s = c->keepalive_s;
	k->client_id = mqtt_view_str(b->remote_id);
	if (c->username[0]) {
		k->has_username = true;
		k->username = mqtt_view_str(c->username);
	}
	if (c->password[0]) {
		k->has_password = true;
		k->password = mqtt_view_str(c->password);
	}
	if (cl->version == MQTT_V5) {
		k->props.has |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
		k->props.session_expiry_s = c->clean_start ? 0 : c->session_expiry_s;
		/* What we take in at once: the node's own receive maximum. */
		k->props.has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
		k->props.receive_max = w->cfg->receive_maximum;
		k->props.has |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
		k->props.max_packet_size = w->cfg->max_packet_size;
	}
	client_send(w, cl, &p);
	LOG_INFO("bridge %s: connected to %s, CONNECT sent as \"%s\" (MQTT %s)", c->name,
	         conn_peer(&cl->c), b->remote_id, cl->version == MQTT_V5 ? "5.0" : "3.1.1");
}

void bridge_connack(struct worker *w, struct client *cl, const struct mqtt_packet *p,
                    enum mqtt_rc rc)
{
	struct bridge *b = bridge_of(w, cl);
	const struct config_bridge *c = b->cfg;
	if (rc != MQTT_RC_SUCCESS || p->type != MQTT_CONNACK) {
		LOG_WARN("bridge %s: the remote %s sent %s instead of a CONNACK", c->name,
		         conn_peer(&cl->c),
		         rc != MQTT_RC_SUCCESS ? mqtt_rc_name(rc) : mqtt_type_name(p->type));
		cl->c.close_reason = CLOSE_PROTOCOL_ERROR;
		client_close(w, cl, MQTT_RC_PROTOCOL_ERROR, false);
		return;
	}
	const struct mqtt_connack *a = &p->connack;
	if (a->rc != 0) {
		static const char *const v3[] = {
		    "accepted",           "unacceptable protocol version", "identifier rejected",
		    "server unavailable", "bad user name or password",     "not authorized"};
		LOG_WARN("bridge %s: the remote %s refused the connection: %s (0x%02X)", c->name,
		         conn_peer(&cl->c),
		         cl->version == MQTT_V5 ? mqtt_rc_name((enum mqtt_rc)a->rc)
		         : a->rc < 6            ? v3[a->rc]
		                                : "an unknown return code",
		         a->rc);
		cl->c.close_reason = CLOSE_CONNECT_REFUSED;
		client_close(w, cl, MQTT_RC_SUCCESS, false);
		return;
	}
	cl->keepalive_s = c->keepalive_s;
	if (cl->version == MQTT_V5) {
		const struct mqtt_props *pr = &a->props;
		if (pr->has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
			cl->client_receive_max = pr->receive_max;
		if (pr->has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
			cl->client_max_packet = pr->max_packet_size;
		if (pr->has & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
			cl->keepalive_s = pr->server_keepalive_s;
		uint8_t max_qos =
		    (pr->has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS)) ? pr->max_qos : 2;
		cl->peer_max_qos = max_qos > 2 ? 2 : max_qos;
		for (unsigned t = 0; t < c->topic_count; t++)
			if ((c->topics[t].dir & BRIDGE_OUT) && c->topics[t].qos > max_qos)
				/* It would refuse such a PUBLISH (0x9B) and close. */
				LOG_WARN("bridge %s: the remote takes QoS %u at most, rule \"%s\" "
				         "asks for %u: its messages go at QoS %u",
				         c->name, max_qos, c->topics[t].pattern, c->topics[t].qos,
				         max_qos);
	}
	if (cl->client_receive_max > c->inflight_max)
		cl->client_receive_max = c->inflight_max;
	cl->deadline_ms = cl->keepalive_s ? w->now_ms + (uint64_t)cl->keepalive_s * 1500 : 0;
	if (!a->session_present && !c->clean_start &&
	    atomic_load_explicit(&b->pub->connects, memory_order_relaxed) > 0)
		LOG_WARN("bridge %s: the remote %s had lost the bridge's session; its "
		         "subscriptions are made again",
		         c->name, conn_peer(&cl->c));

	/* The bridge's session comes to this connection the way a client's
	 * CONNECT takes its session over (takeover.c): a fresh one that the
	 * existing one is moved into, keeping its queue, its messages in
	 * flight and its subscriptions. */
	struct sess_id id = sess_reserve(&w->sessions);
	size_t len = strlen(b->local_id);
	struct session *fresh =
	    id.gen ? session_new((const uint8_t *)b->local_id, (uint16_t)len, id) : NULL;
	if (!fresh) {
		if (id.gen)
			sess_release_slot(&w->sessions, id);
		LOG_WARN("bridge %s: no session slot or memory", c->name);
		client_close(w, cl, MQTT_RC_SUCCESS, false);
		return;
	}
	session_set_expiry(fresh, UINT32_MAX);
	sess_install(&w->sessions, fresh, id);
	struct sess_id prev;
	int r = registry_claim(w->b->registry, b->local_id, len, id, &prev);
	if (r < 0) {
		sess_release_slot(&w->sessions, id);
		session_free(fresh);
		client_close(w, cl, MQTT_RC_SUCCESS, false);
		return;
	}
	if (r == 0)
		client_attach(w, cl, fresh, false);
	else
		takeover_begin(w, cl, fresh, prev, false);
}

void bridge_attached(struct worker *w, struct client *cl)
{
	struct bridge *b = bridge_of(w, cl);
	const struct config_bridge *c = b->cfg;
	struct session *s = cl->sess;
	set_state(w, b, BRIDGE_UP);
	b->sid = s->id;
	b->up_since_ms = w->now_ms;
	b->last_ping_ms = w->now_ms;
	atomic_fetch_add_explicit(&b->pub->connects, 1, memory_order_relaxed);
	subs_sync(w, b, s, cl->peer_max_qos);

	/* The in rules' subscriptions at the remote: no-local on 5.0 (and
	 * the bridge bit on 3.1.1) so what we publish there does not come
	 * back; retained messages only for a subscription the remote did not
	 * have (a persistent remote session keeps them between links). */
	struct mqtt_sub_entry e[CONFIG_BRIDGE_TOPICS_MAX];
	uint32_t n = 0;
	for (unsigned t = 0; t < c->topic_count; t++) {
		if (!(c->topics[t].dir & BRIDGE_IN))
			continue;
		e[n++] = (struct mqtt_sub_entry){.filter = mqtt_view_str(b->remote_filter[t]),
		                                 .qos = c->topics[t].qos,
		                                 .no_local = true,
		                                 .retain_as_published = true,
		                                 .retain_handling = 1};
	}
	if (n > 0) {
		/* An id no PUBLISH of ours holds (they share the id space), and
		 * the one session_infl_add reaches last: it goes forward from
		 * next_pid, so this id comes round again only after every other
		 * free id was taken once, while the SUBACK is one round trip. */
		uint16_t pid = s->next_pid == 1 ? 65535 : (uint16_t)(s->next_pid - 1);
		for (unsigned i = 0; i < 65535 && session_infl_find(s, pid); i++)
			pid = pid == 1 ? 65535 : (uint16_t)(pid - 1);
		struct mqtt_packet p = {.type = MQTT_SUBSCRIBE};
		p.subscribe.packet_id = pid;
		p.subscribe.count = n;
		p.subscribe.entries = e;
		client_send(w, cl, &p);
	}
	LOG_INFO("bridge %s: up to %s (%u out and %u in rules, %u queued, %u in flight)", c->name,
	         conn_peer(&cl->c), c->topic_count - n, n, s->q_len, s->infl_count);
}

void bridge_server_packet(struct worker *w, struct client *cl, const struct mqtt_packet *p)
{
	struct bridge *b = bridge_of(w, cl);
	const char *name = b->cfg->name;
	switch (p->type) {
	case MQTT_SUBACK:
		for (uint32_t i = 0; i < p->suback.rcs.len; i++)
			if (p->suback.rcs.ptr[i] >= 0x80)
				LOG_WARN(
				    "bridge %s: the remote refused subscription %u: %s (0x%02X)",
				    name, i + 1,
				    cl->version == MQTT_V5
				        ? mqtt_rc_name((enum mqtt_rc)p->suback.rcs.ptr[i])
				        : "failure",
				    p->suback.rcs.ptr[i]);
		break;
	case MQTT_PINGRESP:
	case MQTT_UNSUBACK:
		break; /* the deadline moved when it arrived */
	case MQTT_DISCONNECT:
		LOG_WARN("bridge %s: the remote %s disconnected the bridge: %s (0x%02X)", name,
		         conn_peer(&cl->c), mqtt_rc_name((enum mqtt_rc)p->reason.rc), p->reason.rc);
		cl->c.close_reason = CLOSE_PEER_CLOSED;
		client_close(w, cl, MQTT_RC_SUCCESS, false);
		break;
	default:
		client_fail(w, cl, CE_UNEXPECTED, 0, "%s", mqtt_type_name(p->type));
		break;
	}
}

void bridge_conn_gone(struct worker *w, struct client *cl)
{
	struct bridge *b = bridge_of(w, cl);
	if (!b || !b->has_conn || b->slot != cl->c.slot || b->gen != cl->c.gen)
		return;
	b->has_conn = false;
	b->sample_pid = 0; /* its acknowledgement will not come on this link */
	if (b->state != BRIDGE_UP)
		atomic_fetch_add_explicit(&b->pub->failures, 1, memory_order_relaxed);
	if (w->tp.stopping) {
		/* No dial again, and no $SYS message now: the other workers may
		 * be gone; the next start publishes 0 first. */
		b->state = BRIDGE_WAITING;
		atomic_store_explicit(&b->pub->state, BRIDGE_WAITING, memory_order_relaxed);
		LOG_INFO("bridge %s: link closed (stopping)", b->cfg->name);
		return;
	}
	bool held = b->state == BRIDGE_UP && w->now_ms - b->up_since_ms >= BRIDGE_STABLE_MS;
	/* The remote may have moved (its name has other addresses now): the
	 * next attempts dial what the name is then. */
	bridge_dns_refresh(b->dns, b->index);
	plan_dial(w, b, !held);
	LOG_INFO("bridge %s: link down; next attempt in %llu ms", b->cfg->name,
	         (unsigned long long)(b->next_dial_ms - w->now_ms));
}

/* ------------------------------------------------------------------------ */
/* Topics */

struct mqtt_view bridge_topic_out(const struct worker *w, const struct client *cl,
                                  struct mqtt_view topic, char *buf, size_t cap)
{
	const struct bridge *b = bridge_of(w, cl);
	const struct config_bridge *c = b->cfg;
	for (unsigned t = 0; t < c->topic_count; t++) {
		const struct config_bridge_topic *r = &c->topics[t];
		if (!(r->dir & BRIDGE_OUT) ||
		    !mqtt_topic_match(mqtt_view_str(b->local_filter[t]), topic))
			continue;
		size_t lp = strlen(r->local_prefix), rp = strlen(r->remote_prefix);
		if (topic.len < lp || memcmp(topic.ptr, r->local_prefix, lp) != 0 ||
		    rp + topic.len - lp > cap)
			return topic; /* "a/#" matches "a" too: no prefix to replace */
		memcpy(buf, r->remote_prefix, rp);
		memcpy(buf + rp, topic.ptr + lp, topic.len - lp);
		return (struct mqtt_view){(const uint8_t *)buf, (uint32_t)(rp + topic.len - lp)};
	}
	return topic;
}

bool bridge_topic_in(const struct worker *w, const struct client *cl, struct mqtt_view topic,
                     char *buf, size_t cap, struct mqtt_view *out)
{
	struct bridge *b = bridge_of(w, cl);
	const struct config_bridge *c = b->cfg;
	for (unsigned t = 0; t < c->topic_count; t++) {
		const struct config_bridge_topic *r = &c->topics[t];
		if (!(r->dir & BRIDGE_IN) ||
		    !mqtt_topic_match(mqtt_view_str(b->remote_filter[t]), topic))
			continue;
		size_t lp = strlen(r->local_prefix), rp = strlen(r->remote_prefix);
		if (topic.len < rp || memcmp(topic.ptr, r->remote_prefix, rp) != 0 ||
		    lp + topic.len - rp > cap) {
			*out = topic;
			return true;
		}
		memcpy(buf, r->local_prefix, lp);
		memcpy(buf + lp, topic.ptr + rp, topic.len - rp);
		*out = (struct mqtt_view){(const uint8_t *)buf, (uint32_t)(lp + topic.len - rp)};
		return true;
	}
	return false;
}
