/*
 * mqtt.c — the mqtt room's part of a worker: what it tells the transport
 * (how big a connection is, what to do with its bytes and its end), the
 * password verdicts coming back from the verification threads, and the ACL
 * of each turn. Runs on the worker's thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/verify.h"
#include "base/check.h"
#include "base/log.h"
#include "io/op.h"
#include "loop/worker.h"
#include "session/session.h"

static bool admit(void *ctx, const struct peer_addr *peer)
{
	struct worker *w = ctx;
	return auth_accept_allowed(w->b->auth, peer->addr, peer_addr_len(peer), w->now_ms);
}

static void opened(void *ctx, struct conn *c)
{
	struct worker *w = ctx;
	struct client *cl = client_of(c);
	cl->state = CLIENT_NEW;
	cl->client_receive_max = 65535;
	cl->peer_max_qos = 2;
	cl->deadline_ms = w->now_ms + w->cfg->connect_timeout_ms;
	if (client_is_bridge(cl))
		bridge_opened(w, cl); /* we dialled it: our CONNECT goes first */
}

static void input(void *ctx, struct conn *c, const uint8_t *data, uint32_t len)
{
	client_input(ctx, client_of(c), data, len);
}

static void reaped(void *ctx, struct conn *c)
{
	struct worker *w = ctx;
	struct client *cl = client_of(c);
	if (client_is_bridge(cl))
		bridge_conn_gone(w, cl);
	client_rx_release(w, cl);
	if (cl->aliases) {
		alias_out_free(cl->aliases->out);
		if (cl->aliases->in)
			for (unsigned i = 0; i <= w->cfg->topic_alias_max; i++)
				free(cl->aliases->in[i]);
		free(cl->aliases->in);
		free(cl->aliases);
	}
}

const struct transport_ops mqtt_transport_ops = {
    .conn_size = sizeof(struct client),
    .admit = admit,
    .opened = opened,
    .input = input,
    .lost = client_lost,
    .reaped = reaped,
};

int mqtt_init(struct worker *w)
{
	memset(&w->mq, 0, sizeof(w->mq));
	struct verify_pool *vp = auth_verifier(w->b->auth);
	w->mq.verify_fd = vp ? verify_event_fd(vp, w->id) : -1; /* the pool owns it */
	takeover_init(w);
	return bridges_init(w);
}

void mqtt_fini(struct worker *w)
{
	free(w->mq.resume);
	bridges_fini(w);
	memset(&w->mq, 0, sizeof(w->mq));
}

static void verify_arm(struct worker *w)
{
	ring_read(&w->ring, w->mq.verify_fd, &w->mq.verify_buf, sizeof(w->mq.verify_buf),
	          op_pack(OP_VERIFY, 0, 0));
}

void mqtt_start(struct worker *w)
{
	if (w->mq.verify_fd >= 0)
		verify_arm(w);
	w->mq.acl = auth_acl_acquire(w->b->auth, w->id, NULL, &w->mq.acl_gen);
}

void mqtt_turn(struct worker *w)
{
	uint64_t gen = w->mq.acl_gen;
	w->mq.acl = auth_acl_acquire(w->b->auth, w->id, w->mq.acl, &w->mq.acl_gen);
	if (w->mq.acl_gen != gen)
		mqtt_acl_recheck(w);
}

/* Password verdicts arrived: each waiting client reads its CONNECT again,
 * this time with the verdict. */
void mqtt_verify_done(struct worker *w, const struct completion *cqe)
{
	struct verify_result r[64];
	unsigned n;
	struct verify_pool *vp = auth_verifier(w->b->auth);
	while ((n = verify_take(vp, w->id, r, 64)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			struct conn *c = conn_get(&w->tp, r[i].slot, r[i].gen);
			struct client *cl = c ? client_of(c) : NULL;
			if (!cl || client_closing(cl) || cl->state != CLIENT_WAIT_AUTH)
				continue; /* closed meanwhile */
			cl->auth = r[i].ok ? CLIENT_AUTH_PASSED : CLIENT_AUTH_FAILED;
			cl->state = CLIENT_NEW;
			client_want_resume(w, cl); /* reads its CONNECT again */
		}
	}
	if (cqe->res < 0 && cqe->res != -ECANCELED)
		LOG_WARN("worker %u: password verdicts: %s", w->id, strerror(-cqe->res));
	if (!atomic_load_explicit(&w->stopping, memory_order_relaxed))
		verify_arm(w);
}
