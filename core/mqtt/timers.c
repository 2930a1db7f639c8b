/*
 * timers.c — the sweep, once per SWEEP_MS: connections whose CONNECT, TLS
 * handshake, packet or keep alive is overdue, and sessions whose delayed
 * will is due or whose expiry passed. The gauges of sessions ride on the
 * same pass (stats.h). Runs on the worker owning them.
 */
#include "auth/verify.h"
#include "base/log.h"
#include "loop/worker.h"
#include "session/session.h"

static void sweep_client(struct worker *w, struct client *cl)
{
	if (client_closing(cl))
		return;
	if (cl->state == CLIENT_WAIT_AUTH && w->now_ms < cl->deadline_ms + VERIFY_ANSWER_MS)
		return; /* its password check is queued, not stalled (verify.h) */
	uint32_t rx_limit_ms = w->cfg->packet_receive_timeout_ms;
	if (rx_limit_ms && cl->state == CLIENT_ACTIVE && cl->rx_len > 0 &&
	    (uint32_t)w->now_ms - cl->rx_since_ms > rx_limit_ms) {
		/* Keep alive 0 (or a long one) leaves a begun packet unbounded
		 * in time: its bytes stay pinned meanwhile. */
		w->st.partial_timeouts++;
		client_fail(w, cl, CE_PARTIAL_TIMEOUT, 0, "%u (%u bytes of it received)",
		            rx_limit_ms, cl->rx_len);
		return;
	}
	if (!cl->deadline_ms || w->now_ms < cl->deadline_ms)
		return;
	if (conn_tls_handshaking(&w->tp, &cl->c))
		/* connect_timeout_ms covers the handshake too: a client that
		 * stalls in it holds a slot like one that never sends CONNECT. */
		client_fail(w, cl, CE_HANDSHAKE_TIMEOUT, 0, "%u", w->cfg->connect_timeout_ms);
	else if (cl->state == CLIENT_NEW || cl->state == CLIENT_WAIT_AUTH)
		client_fail(w, cl, CE_NO_CONNECT, 0, "%u", w->cfg->connect_timeout_ms);
	else
		client_fail(w, cl, CE_KEEP_ALIVE, 0, NULL);
}

void mqtt_sweep(struct worker *w)
{
	struct transport *tp = &w->tp;
	for (uint32_t i = 0; i < tp->conn_cap; i++)
		if (tp->conns[i] && conn_is_mqtt(tp, tp->conns[i]))
			sweep_client(w, client_of(tp->conns[i]));

	uint64_t online = 0, offline = 0, queued = 0, queued_bytes = 0, inflight = 0;
	struct sessions *t = &w->sessions;
	for (uint32_t i = 0; i < t->cap; i++) {
		struct session *s = t->sess[i];
		if (!s) {
			sess_moved_expire(t, i); /* forwarding windows ride on it too */
			continue;
		}
		queued += s->q_len;
		queued_bytes += s->q_bytes;
		inflight += s->infl_count;
		if (s->online) {
			online++;
			continue;
		}
		offline++;
		bool will_due = s->will_at_ms && w->now_ms >= s->will_at_ms;
		if (will_due)
			session_will_publish(w, s);
		if (s->expires_at_ms && w->now_ms >= s->expires_at_ms) {
			if (s->will)
				session_will_publish(w, s); /* the session ends before the delay */
			session_end(w, s);
		} else {
			/* Its will went: not again after a restart. */
			if (will_due && sess_journaled(t, s->id))
				session_journal(w, s, false);
			if (s->q_len > 0)
				w->st.drops_expired += session_drop_expired(s, w->now_ms);
		}
	}
	bridges_tick(w);
	w->st.sessions_online = online;
	w->st.sessions_offline = offline;
	w->st.queued_msgs = queued;
	w->st.queued_bytes = queued_bytes;
	w->st.inflight = inflight;
}
