/*
 * stop.c — a worker's way out on SIGTERM (enum stop_phase in worker.h):
 * stop accepting, publish every session's will, keep connections open until
 * subscribers here and on every other worker have what they are owed (as
 * far as their windows allow, within half of shutdown_grace_ms), then tell
 * every client why it is closed (0x8B) and let the loop flush and reap.
 * Runs on the worker's thread, from the loop.
 */
#include "base/log.h"
#include "loop/worker.h"

void stop_begin(struct worker *w)
{
	if (w->stop_phase != STOP_NONE)
		return; /* the stop event and the flag both lead here */
	w->stop_phase = STOP_WILLS;
	w->stop_began_ms = w->now_ms;
	transport_stop_accepting(&w->tp);
	/* Wills first, and connections stay open until subscribers here and
	 * on every other worker have them (stop_step), so none is lost to a
	 * DISCONNECT that came first. */
	mqtt_publish_wills(w);
}

/* The shutdown's order, once per turn after the mail was flushed. Bounded
 * by time: past half the grace the connections are closed whatever is
 * still owed. */
void stop_step(struct worker *w)
{
	struct broker *b = w->b;
	bool late = w->now_ms >= w->stop_began_ms + w->cfg->shutdown_grace_ms / 2;
	if (w->stop_phase == STOP_WILLS) {
		if (mail_held(&w->mail) == 0 || late) {
			atomic_fetch_add(&b->stop_wills_out, 1);
			w->stop_phase = STOP_SETTLE;
		}
	}
	if (w->stop_phase != STOP_SETTLE)
		return;
	if (!late) {
		/* Every worker's wills are in the mailboxes, ours are drained
		 * (a drain is bounded per turn: look), and every client has
		 * what it is owed. */
		if (atomic_load(&b->stop_wills_out) < b->worker_count)
			return;
		if (mail_pending(&w->mail))
			return;
		struct transport *tp = &w->tp;
		for (uint32_t i = 0; i < tp->conn_cap; i++)
			if (tp->conns[i] && conn_is_mqtt(tp, tp->conns[i]) &&
			    !mqtt_client_settled(w, client_of(tp->conns[i])))
				return;
	}
	mqtt_close_all(w, MQTT_RC_SERVER_SHUTTING_DOWN);
	transport_close_others(&w->tp); /* the cluster's links */
	w->stop_phase = STOP_CLOSING;
}
