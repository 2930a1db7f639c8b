/*
 * takeover.c — a client id connects again while its session lives, on this
 * worker or another (DESIGN.md "Sessions and client ids"). The new
 * connection's worker set up a fresh session and asks the old session's
 * worker (MAIL_TAKEOVER); that worker closes the old connection (0x8E, with
 * its will as for any close) and answers (MAIL_HANDOVER) with the session:
 * nothing for a clean start (the old session ends there), else the session
 * itself, moved.
 *
 * How a session moves. Its index entries do not go away and come back:
 * each moves to the fresh id in one delta (route_move), sent from the old
 * worker behind every delta it sent about the same subscriptions, so no
 * worker sees a move before the subscription it moves and no publish in
 * between finds neither. Mail already on its way to the old id is passed on
 * for a while (sessions.h). Across workers the session travels in its
 * encoded form (session.h: session_encode), freed where it was made and
 * rebuilt where it goes; on one worker it is handed over as it is. The new
 * worker adopts it into the fresh session, behind any mail that reached the
 * fresh id first (session_adopt), sends the CONNACK, and parses what the
 * client sent meanwhile at the loop's resume step.
 */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/log.h"
#include "loop/worker.h"
#include "persist/msg_journal.h"
#include "session/session.h"

enum takeover_mail_kind {
	MAIL_TAKEOVER = MAIL_KIND_MQTT, /* to the old session's worker */
	MAIL_HANDOVER,                  /* back to the new connection's worker */
};

struct mail_takeover {
	struct sess_id old;             /* the session to take over */
	uint32_t fresh_slot, fresh_gen; /* the fresh session, on the sender's worker */
	uint32_t conn_slot, conn_gen;   /* the new connection, there too */
	bool clean;                     /* clean start: the old session ends */
};

/* The old session, if any, in its encoded form: the bytes are the
 * receiver's to free. */
struct mail_handover {
	uint8_t *encoded; /* session_encode(), or NULL: no session */
	uint32_t len;     /* bytes */
	uint32_t conn_slot, conn_gen;
	struct sess_id fresh; /* the id it moved to: what its index entries name */
	bool again;           /* sent while a compaction round was open: journal its
	                       * messages again on arrival (handover) */
};

_Static_assert(sizeof(struct mail_takeover) <= MBOX_BODY_BYTES, "fits a mailbox message");
_Static_assert(sizeof(struct mail_handover) <= MBOX_BODY_BYTES, "fits a mailbox message");

/* The new connection's side, once the old session (or none) is here. */
static void handover(struct worker *w, struct session *old, uint32_t conn_slot, uint32_t conn_gen,
                     bool again)
{
	struct conn *c = conn_get(&w->tp, conn_slot, conn_gen);
	struct client *cl = c ? client_of(c) : NULL;
	if (!cl || client_closing(cl) || cl->state != CLIENT_WAIT_TAKEOVER || !cl->pending) {
		/* The new connection died while waiting; so does the session
		 * (its index entries name the fresh id now). */
		if (old)
			session_unindex_free(w, old);
		return;
	}
	struct session *fresh = cl->pending;
	if (old) {
		struct drop_sink sink = {queue_dropped, w};
		struct queue_limits lim;
		queue_limits_of(w->cfg, old, &lim);
		unsigned dropped =
		    session_adopt(fresh, old, lim.messages, lim.bytes, lim.policy, &sink);
		w->st.drops_queue += dropped;
		bridge_dropped(w, &lim, dropped);
	}
	/* A session that left its worker while a compaction round was open
	 * may be in neither worker's snapshot, and the segments holding its
	 * messages' records go when the round ends: they are journaled again
	 * here, naming its place now, before its CONNACK (client_attach
	 * journals the session itself). */
	if (old && again && session_journal_wanted(w, fresh) &&
	    !persist_session_messages(&w->journal, fresh, &w->b->sess_stamp, w->now_ms))
		LOG_WARN_RL(1,
		            "worker %u: the journal refused the messages of \"%s\", moved during a "
		            "compaction: a crash after it may lose them",
		            w->id, fresh->client_id);
	client_attach(w, cl, fresh, old != NULL);
	/* Packets that arrived while we waited: at the loop's resume step.
	 * When the old session was on this worker we are inside the parse of
	 * the client's own CONNECT, which goes on with the packets behind it by
	 * itself; parsing rx here as well would read that CONNECT twice. */
	client_want_resume(w, cl);
}

/* Detach s from this worker for a move to the session `to`: its index
 * entries now name `to`, and so does s's id; mail still addressed to the
 * old id is passed on to `to` for SESS_MOVED_MS. */
static void session_move(struct worker *w, struct session *s, struct sess_id to)
{
	for (uint32_t i = 0; i < s->sub_count; i++) {
		struct mqtt_view f = {(const uint8_t *)s->subs[i].filter, s->subs[i].filter_len};
		struct sub_entry e = {to, s->subs[i].opts};
		route_move(&w->route, f, &e, s->id);
	}
	sess_mark_moved(&w->sessions, s, to);
}

/* The old session's side: close its connection, hand it over. */
static void takeover(struct worker *w, const struct mail_takeover *t, uint16_t from)
{
	struct session *old = sess_get(&w->sessions, t->old);
	if (old && old->online) {
		struct conn *oc = conn_get(&w->tp, old->conn_slot, old->conn_gen);
		if (oc) {
			struct client *ocl = client_of(oc);
			LOG_INFO_RL(LOG_CLIENT_RL, "closing %s (%s): session taken over",
			            conn_peer(oc), old->client_id);
			/* [MQTT-3.1.4-3]: 0x8E, and its will as for any close. */
			client_close(w, ocl, MQTT_RC_SESSION_TAKEN_OVER, true);
		}
		old = sess_get(&w->sessions, t->old); /* an expiry-0 session ended just now */
	}
	if (old && t->clean) {
		if (old->will)
			session_will_publish(w, old); /* the session ends: a delayed will fires */
		session_end(w, old);
		old = NULL;
	}
	if (old) {
		/* Mail still on its way to the old id follows the session. */
		session_move(w, old, (struct sess_id){t->fresh_slot, t->fresh_gen, from});
	}
	if (from == w->id) {
		handover(w, old, t->conn_slot, t->conn_gen, false); /* it stays in the table */
		return;
	}
	struct mail_handover h = {
	    NULL, 0, t->conn_slot, t->conn_gen, (struct sess_id){t->fresh_slot, t->fresh_gen, from},
	    false};
	/* In flight between the tables while a round's snapshots are made:
	 * compact.c's encode_sessions sees it in neither. A round that begins
	 * after this reaches the new worker's table behind this mail (FIFO per
	 * pair of workers, before this worker's ROTATED). */
	h.again = w->journal.on && atomic_load(&w->b->compact.gen) != 0;
	if (old) {
		size_t len;
		h.encoded = session_encode(old, w->now_ms, &len);
		h.len = (uint32_t)len;
		if (!h.encoded)
			LOG_ERROR("worker %u: out of memory handing over the session of \"%s\": it "
			          "resumes empty",
			          w->id, old->client_id);
		session_free(old);
	}
	struct mbox_msg mb = {.kind = MAIL_HANDOVER, .cls = MBOX_CONTROL};
	memcpy(mb.body, &h, sizeof(h));
	mail_send(&w->mail, from, &mb);
}

void takeover_begin(struct worker *w, struct client *cl, struct session *fresh, struct sess_id prev,
                    bool clean_start)
{
	cl->pending = fresh;
	cl->state = CLIENT_WAIT_TAKEOVER;
	struct mail_takeover t = {.old = prev,
	                          .fresh_slot = fresh->id.slot,
	                          .fresh_gen = fresh->id.gen,
	                          .conn_slot = cl->c.slot,
	                          .conn_gen = cl->c.gen,
	                          .clean = clean_start};
	if (prev.worker == w->id) {
		takeover(w, &t, w->id);
		return;
	}
	struct mbox_msg mb = {.kind = MAIL_TAKEOVER, .cls = MBOX_CONTROL};
	memcpy(mb.body, &t, sizeof(t));
	mail_send(&w->mail, prev.worker, &mb);
}

static void mail_takeover(void *ctx, const struct mbox_msg *mb)
{
	struct mail_takeover t;
	memcpy(&t, mb->body, sizeof(t));
	takeover(ctx, &t, mb->from);
}

static void mail_handover(void *ctx, const struct mbox_msg *mb)
{
	struct worker *w = ctx;
	struct mail_handover h;
	memcpy(&h, mb->body, sizeof(h));
	struct session *old = NULL;
	if (h.encoded) {
		/* It arrives under the fresh id: that is what its entries name. */
		old = session_decode(h.encoded, h.len, h.fresh, w->now_ms);
		if (!old)
			LOG_ERROR("worker %u: a handed-over session could not be rebuilt (out of "
			          "memory): it resumes empty",
			          w->id);
		free(h.encoded);
	}
	handover(w, old, h.conn_slot, h.conn_gen, h.again);
}

static void mail_handover_discard(const struct mbox_msg *mb)
{
	struct mail_handover h;
	memcpy(&h, mb->body, sizeof(h));
	free(h.encoded);
}

void takeover_init(struct worker *w)
{
	mail_register(&w->mail, MAIL_TAKEOVER, mail_takeover, NULL, w);
	mail_register(&w->mail, MAIL_HANDOVER, mail_handover, mail_handover_discard, w);
}
