/*
 * worker.c — one worker thread as a loop of named steps (DESIGN.md
 * "Workers"; CONVENTIONS.md "The worker loop"). Only this worker's thread
 * runs this code on its struct worker, apart from `stopping`, which the
 * main thread sets.
 *
 * A turn:
 *
 *   begin     the clock; this turn's ACL and TLS context
 *   mail      drain the mailboxes (bounded per sender); answer retained
 *             lookups once everything that was there is applied
 *   resume    parse the input of clients that may go on (a password
 *             verdict, a session taken over)
 *   timers    the sweep (keep alive, timeouts, expiry), drop reports, $SYS
 *   post      push held mail, wake the workers written to; the shutdown's
 *             phases when stopping
 *   journal   the journal makes this turn's records durable (no journal
 *             yet: a no-op) and the barrier releases the output waiting
 *             for them (barrier.h)
 *   send      every connection's new output to the kernel, once
 *   reap      closing connections whose last bytes went, bounded per turn
 *   rearm     receives the buffer pool ran dry for, paused accepts
 *   wait      submit and wait for completions until the next deadline;
 *             dispatch each by its op kind (a table, not a switch), at
 *             most CQE_TURN_MAX per turn
 *
 * Work per turn is bounded so that a burst of one kind (a wave of
 * disconnects: thousands of end-of-stream completions, closes and index
 * deltas) is spread over turns, each of which sends what the others are
 * owed; a bystander waits for one bounded turn, not for the whole burst.
 */
#include "loop/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth/auth.h"
#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/op.h"
#include "ops/sys_publish.h"
#include "persist/msg_journal.h"
#include "persist/retained.h"
#include "session/session.h"
#include "transport/tls.h"

/* Receive buffers per worker (a power of two) and their size: 2 MiB per
 * worker. The kernel cycles through all of them, so all become resident: a
 * fixed cost per worker, paid whatever the connection count. A buffer goes
 * back to the ring as soon as its completion is handled, so a few hundred
 * serve thousands of connections; when they run out a receive ends with
 * -ENOBUFS and is re-armed next turn. */
#ifndef STARLING_RECV_BUFFERS /* tests build a variant with a tiny pool */
#define STARLING_RECV_BUFFERS 512
#endif
#define BUF_COUNT       STARLING_RECV_BUFFERS
#define BUF_SIZE        4096
#define MBOX_BATCH      16384 /* messages drained from one sender per turn */
#define SWEEP_MS        250   /* timer resolution: keep alive, connect timeout, expiry */
#define STALL_WINDOW_MS 10000 /* the stall maxima cover one to two of these */
#define CQE_TURN_MAX    1024  /* completions handled per turn; the rest wait in the CQ */
#define REAP_TURN_MAX   512   /* connections closed (two syscalls each) per turn */
#define DROP_REPORT_MS  10000 /* how often dropped messages are reported */

/* ---- completions, by op kind ------------------------------------------ */

static void accept_done(struct worker *w, const struct completion *cqe)
{
	transport_accept_done(&w->tp, cqe);
}

static void recv_done(struct worker *w, const struct completion *cqe)
{
	transport_recv_done(&w->tp, cqe);
}

static void send_done(struct worker *w, const struct completion *cqe)
{
	transport_send_done(&w->tp, cqe);
}

static void dial_done(struct worker *w, const struct completion *cqe)
{
	transport_dial_done(&w->tp, cqe);
}

static void drain_mail(struct worker *w);

/* The mail is drained where the wake stands among the completions, not only
 * at the top of the next turn: it is causally before the ones behind it.
 * Another worker sends a subscription delta, then its SUBACK; a publisher
 * that saw the SUBACK publishes here, and that receive must not be routed
 * ahead of the delta. Both completions arrive in one batch when this worker
 * was descheduled (found by CI: 4 workers, 2 cores). */
static void wake_done(struct worker *w, const struct completion *cqe)
{
	(void)cqe;
	drain_mail(w);
}

static void verify_done(struct worker *w, const struct completion *cqe)
{
	mqtt_verify_done(w, cqe);
}

static void stop_done(struct worker *w, const struct completion *cqe)
{
	(void)cqe;
	if (!atomic_load(&w->stopping))
		atomic_store(&w->stopping, true);
	stop_begin(w);
}

static void ext_done(struct worker *w, const struct completion *cqe)
{
	if (w->b->ext.completion)
		w->b->ext.completion(w->b->ext.ctx, w, cqe);
}

static void journal_done_op(struct worker *w, const struct completion *cqe)
{
	uint32_t slot = op_slot(cqe->ud);
	if (slot >= JOURNAL_SLOT_SNAPSHOT)
		compact_done(&w->compact, cqe->res, slot);
	else
		journal_done(&w->journal, cqe->res, slot);
}

static void none_done(struct worker *w, const struct completion *cqe)
{
	if (cqe->res < 0)
		LOG_WARN("worker %u: wake-up failed: %s", w->id, strerror(-cqe->res));
}

static const op_fn op_handlers[OP_KINDS] = {
    [OP_NONE] = none_done,          [OP_ACCEPT] = accept_done, [OP_RECV] = recv_done,
    [OP_SEND] = send_done,          [OP_WAKE] = wake_done,     [OP_STOP] = stop_done,
    [OP_VERIFY] = verify_done,      [OP_CONNECT] = dial_done,  [OP_EXT] = ext_done,
    [OP_JOURNAL] = journal_done_op,
};

static void dispatch(struct worker *w, const struct completion *cqe)
{
	enum op_kind k = op_kind(cqe->ud);
	if (k < OP_KINDS && op_handlers[k])
		op_handlers[k](w, cqe);
}

/* ---- the steps --------------------------------------------------------- */

static void drain_mail(struct worker *w)
{
	uint64_t depth = mail_drain(&w->mail, MBOX_BATCH);
	if (depth > w->depth_max[0])
		w->depth_max[0] = depth;
	if (!route_lookups_waiting(&w->route))
		return;
	/* Retained lookups wait: first everything already in every mailbox
	 * (up to what is there now, so the work is bounded), then the answers
	 * (see route.c for why). */
	mail_drain(&w->mail, 0);
	route_answer_lookups(&w->route);
}

static void stop_arm(struct worker *w)
{
	ring_read(&w->ring, w->stop_fd, &w->stop_buf, sizeof(w->stop_buf), op_pack(OP_STOP, 0, 0));
}

/* Make the counters visible to the ops thread and $SYS (stats.h). */
static void publish_stats(struct worker *w)
{
	struct worker_stats *st = &w->st;
	st->conns_current = w->tp.conn_live;
	st->retained = retain_count(w->route.retained);
	st->retained_bytes = retain_bytes(w->route.retained);
	st->subscriptions = subidx_count(w->route.subs);
	st->shared_groups = subidx_group_count(w->route.subs);
	st->mbox_backlog = mail_held(&w->mail);
	st->mbox_overflows = w->mail.overflows;
	if (w->now_ms >= w->stall_window_end_ms) {
		w->turn_max_ns[1] = w->turn_max_ns[0];
		w->depth_max[1] = w->depth_max[0];
		w->turn_max_ns[0] = w->depth_max[0] = 0;
		w->stall_window_end_ms = w->now_ms + STALL_WINDOW_MS;
	}
	st->loop_turn_max_ns =
	    w->turn_max_ns[0] > w->turn_max_ns[1] ? w->turn_max_ns[0] : w->turn_max_ns[1];
	st->mbox_depth_max = w->depth_max[0] > w->depth_max[1] ? w->depth_max[0] : w->depth_max[1];
	st->last_turn_ms = w->now_ms;
	st->journal_failing = w->journal.failing;
	st->journal_waiting = w->journal.fill_len + w->journal.flight_len;
	stats_publish(&w->pub, st);
}

/* Drops are counted in /metrics; this line makes them visible to someone
 * reading only the log: one line per worker per period, and only when
 * something was dropped. */
static void report_drops(struct worker *w)
{
	struct worker_stats *s = &w->st, *l = &w->st_reported;
	uint64_t outbox = s->drops_outbox - l->drops_outbox;
	uint64_t oversize = s->drops_oversize - l->drops_oversize;
	uint64_t queue = s->drops_queue - l->drops_queue;
	uint64_t expired = s->drops_expired - l->drops_expired;
	uint64_t transit = s->drops_transit - l->drops_transit;
	if (outbox | oversize | queue | expired | transit)
		LOG_WARN("worker %u dropped in the last %us: %llu QoS 0 to slow readers (outbox "
		         "full), %llu to a worker that fell behind, %llu over a client's "
		         "maximum packet size, %llu to session queue limits, %llu expired",
		         w->id, DROP_REPORT_MS / 1000, (unsigned long long)outbox,
		         (unsigned long long)transit, (unsigned long long)oversize,
		         (unsigned long long)queue, (unsigned long long)expired);
	*l = *s;
}

static void step_begin(struct worker *w)
{
	w->now_ms = clock_now_ms();
	w->st.loop_turns++;
	mqtt_turn(w);
	if (w->b->tls) /* accepts below use this turn's context (tls.h) */
		w->tp.ssl_ctx = tls_ctx_acquire(w->b->tls, w->id);
}

static void step_timers(struct worker *w)
{
	if (w->now_ms >= w->next_sweep_ms) {
		mqtt_sweep(w);
		w->next_sweep_ms = w->now_ms + SWEEP_MS;
	}
	if (w->now_ms >= w->next_report_ms) {
		if (w->next_report_ms)
			report_drops(w);
		w->next_report_ms = w->now_ms + DROP_REPORT_MS;
	}
	if (w->sys)
		sys_tick(w);
}

static void step_post(struct worker *w)
{
	mail_flush(&w->mail, &w->ring);
	if (w->stop_phase != STOP_NONE)
		stop_step(w);
}

/* The journal hands this turn's records to the kernel; then every
 * connection's new output goes, except what waits for records not yet
 * durable (barrier.h: the transport holds it back and flushes it when the
 * journal advances). Without persistence nothing waits. */
static void step_journal_and_send(struct worker *w)
{
	compact_turn(&w->compact);
	if (w->journal.on)
		route_held_seal(&w->route); /* before the turn's records go to the kernel */
	journal_step(&w->journal);
	transport_flush_all(&w->tp);
}

static void journal_advanced(void *ctx)
{
	struct worker *w = ctx;
	route_held_release(&w->route);
	transport_ungate(&w->tp);
}

static void journal_retained(void *ctx, struct msg *m)
{
	struct worker *w = ctx;
	persist_retained(&w->journal, m, &w->b->retain_stamp, w->now_ms);
}

static bool journal_msg(void *ctx, struct msg *m, const struct plan *p,
                        const struct route_inbound *in)
{
	struct worker *w = ctx;
	struct rec_inbound rin;
	if (in)
		rin = (struct rec_inbound){in->pid, (const uint8_t *)in->client_id,
		                           in->client_id_len};
	return persist_message(&w->journal, m, p, in ? &rin : NULL, &w->b->sess_stamp, w->now_ms);
}

/* true: the reap left work for the next turn (do not sleep). */
static bool step_reap(struct worker *w)
{
	bool stopping = w->stop_phase != STOP_NONE;
	uint64_t stop_cut_ms = stopping ? w->stop_began_ms + w->cfg->shutdown_grace_ms : 0;
	if (stopping && stop_cut_ms == 0)
		stop_cut_ms = 1; /* a node stopping at time 0 of the clock: still stopping */
	unsigned reaped =
	    transport_reap(&w->tp, REAP_TURN_MAX, stop_cut_ms, w->cfg->shutdown_grace_ms);
	return reaped == REAP_TURN_MAX;
}

struct worker *worker_new(struct broker *b, uint16_t id)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->id = id;
	w->b = b;
	w->cfg = b->cfg;
	w->stop_fd = eventfd(0, EFD_CLOEXEC);
	atomic_init(&w->stopping, false);
	barrier_init(&w->barrier);
	w->journal.fd = -1; /* opened by broker_start, after recovery */
	struct transport_ops ops = mqtt_transport_ops;
	ops.ctx = w;
	sessions_init(&w->sessions, id, b->cfg->max_sessions, &b->sess_count, &w->now_ms);
	if (id == 0 && b->cfg->sys_interval_s > 0)
		w->sys = sys_state_new();
	if (w->stop_fd < 0 ||
	    mail_init(&w->mail, id, b->worker_count, b->mboxes, b->ring_fds) != 0 ||
	    transport_init(&w->tp, id, b->cfg, &b->tnode, &w->st, &w->now_ms, &ops) != 0 ||
	    router_init(&w->route, id, b->worker_count, &w->now_ms, &w->mail, &w->st, deliver_local,
	                w) != 0 ||
	    mqtt_init(w) != 0 || (id == 0 && b->cfg->sys_interval_s > 0 && !w->sys) ||
	    (b->ext.init && b->ext.init(b->ext.ctx, w) != 0)) {
		worker_free(w);
		return NULL;
	}
	w->mail.transit_droppable_max = b->cfg->worker_transit_bytes_max;
	return w;
}

void worker_free(struct worker *w)
{
	if (!w)
		return;
	if (w->b->ext.fini)
		w->b->ext.fini(w->b->ext.ctx, w);
	journal_close(&w->journal); /* what is still in memory, to the file */
	compact_fini(&w->compact);
	transport_fini(&w->tp); /* before the sessions: connections point at them */
	sessions_fini(&w->sessions);
	mqtt_fini(w);
	router_fini(&w->route);
	mail_fini(&w->mail);
	sys_state_free(w->sys);
	if (w->stop_fd >= 0)
		close(w->stop_fd);
	ring_exit(&w->ring);
	free(w);
}

void *worker_main(void *arg)
{
	struct worker *w = arg;
	char name[16];
	snprintf(name, sizeof(name), "starling-w%u", w->id);
	pthread_setname_np(pthread_self(), name);
	/* The ring is made here: with SINGLE_ISSUER and DEFER_TASKRUN only its
	 * creator may submit. The barrier makes every ring exist before any
	 * worker sends another a wake-up. */
	w->init_failed = ring_init(&w->ring, w->id, BUF_COUNT, BUF_SIZE) != 0;
	if (!w->init_failed)
		w->b->ring_fds[w->id] = ring_fd(&w->ring);
	pthread_barrier_wait(&w->b->start_barrier);
	if (w->init_failed || w->b->start_failed)
		return NULL;
	if (w->b->tls)
		w->tp.ssl_ctx = tls_ctx_acquire(w->b->tls, w->id);
	transport_start(&w->tp, &w->ring);
	stop_arm(w);
	mqtt_start(w);
	if (w->journal.on) {
		journal_start(&w->journal, &w->ring, &w->barrier, &w->st, &w->now_ms,
		              journal_advanced, w);
		compact_start(&w->compact, &w->ring);
		transport_set_barrier(&w->tp, &w->barrier);
		w->route.journal_retained = journal_retained;
		w->route.journal_msg = journal_msg;
		w->route.journal_ctx = w;
		w->route.journal_appended = &w->barrier.appended;
		w->route.journal_durable = &w->barrier.durable;
	}
	if (w->b->ext.start)
		w->b->ext.start(w->b->ext.ctx, w);
	bridges_start(w); /* once the journal runs: a bridge's session is journaled */
	uint64_t woke_ns = clock_now_ns(); /* when the last wait returned */
	static _Thread_local struct completion cqes[CQE_TURN_MAX];

	for (;;) {
		step_begin(w);
		drain_mail(w);
		if (w->b->ext.turn)
			w->b->ext.turn(w->b->ext.ctx, w);
		mqtt_resume_all(w);
		step_timers(w);
		step_post(w);
		step_journal_and_send(w);
		bool more_work = step_reap(w);

		if (atomic_load_explicit(&w->stopping, memory_order_relaxed) &&
		    w->stop_phase == STOP_NONE)
			stop_begin(w);
		/* The journal's writes in flight read its buffers: the loop ends
		 * once they completed (journal_close writes what is left). */
		if (w->stop_phase == STOP_CLOSING && w->tp.conn_live == 0 &&
		    journal_idle(&w->journal) && !compact_writing(&w->compact)) {
			publish_stats(w);
			LOG_INFO("worker %u: %llu loop turns, %llu PUBLISH out in %llu sends",
			         w->id, (unsigned long long)w->st.loop_turns,
			         (unsigned long long)(w->st.msgs_out[0] + w->st.msgs_out[1] +
			                              w->st.msgs_out[2]),
			         (unsigned long long)w->st.sends);
			break;
		}
		transport_rearm(&w->tp);

		if (w->now_ms >= w->next_publish_ms) {
			publish_stats(w);
			w->next_publish_ms = w->now_ms + STATS_PUBLISH_MS;
		}
		/* Busy time of this turn: from the end of the last wait to here. */
		uint64_t busy_ns = clock_now_ns() - woke_ns;
		if (busy_ns > w->turn_max_ns[0])
			w->turn_max_ns[0] = busy_ns;
		w->st.loop_busy_ns += busy_ns;
		w->st.loop_busy_hist[stats_loop_bucket(busy_ns)]++;

		uint64_t wake_ms = w->next_sweep_ms;
		uint64_t accept_ms = transport_accept_wakeup_ms(&w->tp);
		if (accept_ms && accept_ms < wake_ms)
			wake_ms = accept_ms; /* to accept again */
		uint64_t journal_ms = journal_deadline_ms(&w->journal);
		if (journal_ms && journal_ms < wake_ms)
			wake_ms = journal_ms; /* a group to write, a write to try again */
		uint64_t wait_ms = wake_ms > w->now_ms && !more_work ? wake_ms - w->now_ms : 0;
		int ret = ring_submit_wait(&w->ring, wait_ms);
		if (ret < 0)
			LOG_WARN("worker %u: submit: %s", w->id, strerror(-ret));
		woke_ns = clock_now_ns();
		w->now_ms = woke_ns / 1000000;
		unsigned n = ring_reap(&w->ring, cqes, CQE_TURN_MAX);
		for (unsigned i = 0; i < n; i++)
			dispatch(w, &cqes[i]);
	}
	return NULL;
}
