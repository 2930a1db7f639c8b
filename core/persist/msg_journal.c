/*
 * msg_journal.c — the messages of persistent sessions into the journal
 * (see msg_journal.h).
 */
#include "persist/msg_journal.h"

#include <stdlib.h>

#include "base/clock.h"
#include "persist/record.h"

#define TARGETS_ON_STACK 64

static uint64_t next_stamp(_Atomic uint64_t *stamps)
{
	return atomic_fetch_add_explicit(stamps, 1, memory_order_relaxed) + 1;
}

/* m's REC_MSG records (REC_MSG_TARGETS_MAX targets each, all of stamp; t
 * not const: GCC 12 takes a const pointer to a partly filled array for a
 * read). With in, the last is a REC_MSG_IN: a tail cut before it keeps
 * neither the id nor (all of) the message, so the publisher's resend is
 * routed again (at least once to the sessions of the records before it,
 * past REC_MSG_TARGETS_MAX targets), never taken for a duplicate. */
static bool write_msg(struct journal *j, const struct msg *m, struct rec_msg_target *t, size_t n,
                      uint64_t stamp, uint64_t now_ms, const struct rec_inbound *in)
{
	uint64_t wall = clock_wall_ms();
	for (size_t at = 0; at < n; at += REC_MSG_TARGETS_MAX) {
		size_t k = n - at < REC_MSG_TARGETS_MAX ? n - at : REC_MSG_TARGETS_MAX;
		bool last_in = in && at + k == n;
		uint8_t *rec = journal_reserve(j, last_in ? rec_msg_in_size(m, k, in->client_id_len)
		                                          : rec_msg_size(m, k));
		if (!rec) {
			/* Records of this stamp already appended name sessions
			 * that then never get it: recovery gives them a message
			 * the live node refused (at least once, never lost). */
			j->st->journal_refused++;
			return false;
		}
		if (last_in)
			rec_msg_in_put(rec, in, m, stamp, j->run, t + at, k, now_ms, wall);
		else
			rec_msg_put(rec, m, stamp, j->run, t + at, k, now_ms, wall);
		journal_commit(j, last_in ? REC_MSG_IN : REC_MSG, wall);
	}
	return true;
}

bool persist_message(struct journal *j, struct msg *m, const struct plan *p,
                     const struct rec_inbound *in, _Atomic uint64_t *stamps, uint64_t now_ms)
{
	struct rec_msg_target local[TARGETS_ON_STACK], *t = local;
	if (p->journaled > TARGETS_ON_STACK && !(t = malloc(p->journaled * sizeof(*t)))) {
		j->st->journal_refused++;
		return false;
	}
	size_t n = 0;
	for (uint32_t i = 0; i < p->len && n < p->journaled; i++) {
		const struct plan_target *pt = &p->t[i];
		if (pt->flags & PLAN_JOURNALED)
			t[n++] = (struct rec_msg_target){.id = pt->who,
			                                 .sub_id = pt->sub_id,
			                                 .qos = pt->qos,
			                                 .flags = pt->flags &
			                                          (PLAN_RETAIN | PLAN_SHARED)};
	}
	uint64_t stamp = next_stamp(stamps);
	bool ok = write_msg(j, m, t, n, stamp, now_ms, in);
	if (ok)
		m->jstamp = stamp;
	if (t != local)
		free(t);
	return ok;
}

bool persist_message_to(struct journal *j, struct msg *m, struct sess_id to, uint8_t qos,
                        uint8_t flags, uint32_t sub_id, _Atomic uint64_t *stamps, uint64_t now_ms)
{
	struct rec_msg_target t = {
	    .id = to, .sub_id = sub_id, .qos = qos, .flags = flags & (PLAN_RETAIN | PLAN_SHARED)};
	uint64_t stamp = next_stamp(stamps);
	if (!write_msg(j, m, &t, 1, stamp, now_ms, NULL))
		return false;
	m->jstamp = stamp;
	return true;
}

bool persist_message_done(struct journal *j, uint64_t stamp, const char *client_id, uint16_t len)
{
	uint8_t *rec = journal_reserve(j, rec_msg_done_size(len));
	if (!rec) {
		j->st->journal_refused++;
		return false;
	}
	rec_msg_done_put(rec, stamp, (const uint8_t *)client_id, len);
	journal_commit(j, REC_MSG_DONE, clock_wall_ms());
	return true;
}

bool persist_packet_id(struct journal *j, _Atomic uint64_t *stamps, uint8_t type,
                       uint64_t msg_stamp, uint16_t pid, const char *client_id, uint16_t len)
{
	bool with_msg = rec_release_with_msg(type);
	uint8_t *rec = journal_reserve(j, rec_release_size(len, with_msg));
	if (!rec) {
		j->st->journal_refused++;
		return false;
	}
	struct rec_release r = {
	    .stamp = next_stamp(stamps),
	    .msg_stamp = with_msg ? msg_stamp : 0,
	    .pid = pid,
	    .client_id = (const uint8_t *)client_id,
	    .client_id_len = len,
	};
	rec_release_put(rec, &r, with_msg);
	journal_commit(j, type, clock_wall_ms());
	return true;
}

void session_journaled_walk(const struct session *s, const struct journaled_walk *fn, void *ctx)
{
	uint32_t seq = s->infl_head;
	struct inflight *f;
	while ((f = session_infl_next((struct session *)s, &seq)) != NULL) {
		if (f->journaled && f->m) {
			fn->message(ctx, s, f->m, f->qos, infl_flags(f), f->sub_id);
			if (f->qos == 2)
				fn->packet_id(ctx, s, REC_MSG_SENT, f->m->jstamp, f->pid);
		} else if (f->journaled) {
			fn->packet_id(ctx, s, REC_MSG_REL, 0, f->pid);
		}
	}
	for (uint32_t k = 0; k < s->rx_qos2_count; k++)
		fn->packet_id(ctx, s, REC_IN_QOS2, 0, s->rx_qos2[k]);
	for (uint32_t k = 0; k < s->q_len; k++) {
		const struct queued *q = &s->q[(s->q_head + k) & (s->q_cap - 1)];
		if (q->journaled)
			fn->message(ctx, s, q->m, q->qos, queued_flags(q), q->sub_id);
	}
}

struct again {
	struct journal *j;
	_Atomic uint64_t *stamps;
	uint64_t now_ms;
	bool ok;
};

static void again_message(void *ctx, const struct session *s, const struct msg *m, uint8_t qos,
                          uint8_t flags, uint32_t sub_id)
{
	struct again *a = ctx;
	struct rec_msg_target t = {.id = s->id,
	                           .sub_id = sub_id,
	                           .qos = qos,
	                           .flags = flags & (DELIV_RETAIN | DELIV_SHARED)};
	/* Its own stamp: the same message, so recovery gives it once, and a
	 * REC_MSG_DONE of that stamp still ends it. */
	a->ok = a->ok && write_msg(a->j, m, &t, 1, m->jstamp, a->now_ms, NULL);
}

static void again_packet_id(void *ctx, const struct session *s, uint8_t type, uint64_t msg_stamp,
                            uint16_t pid)
{
	struct again *a = ctx;
	a->ok = a->ok && persist_packet_id(a->j, a->stamps, type, msg_stamp, pid, s->client_id,
	                                   s->client_id_len);
}

bool persist_session_messages(struct journal *j, const struct session *s, _Atomic uint64_t *stamps,
                              uint64_t now_ms)
{
	static const struct journaled_walk fn = {again_message, again_packet_id};
	struct again a = {j, stamps, now_ms, true};
	session_journaled_walk(s, &fn, &a);
	return a.ok;
}
