/*
 * mail.c — a worker's mail (see mail.h). The owning worker's thread only.
 */
#include "io/mail.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "base/log.h"
#include "io/op.h"
#include "io/ring.h"

/* Mailbox slots a worker receives into, shared among its senders: 16,384
 * (768 KiB) per worker, as one box had when there were two workers. A
 * box never has fewer than MAIL_BOX_MIN slots; past 64 workers the total
 * grows again, slowly. */
#define MAIL_SLOTS_PER_WORKER (16384u)
#define MAIL_BOX_MIN          (512u)
#define MAIL_BATCH            64 /* messages popped at once */
/* Deliveries held toward one worker beyond a full mailbox, and control
 * mail past which new index entries and session moves are refused: about
 * 12 MiB of overflow toward one worker, a worker that is seconds behind. */
#define MAIL_HELD_MAX (256u * 1024u)
/* Message bytes in transit toward one worker past which QoS 0 gives way. */
#define MAIL_TRANSIT_DROPPABLE_MAX (16ull << 20)

uint32_t mail_box_cap(unsigned workers)
{
	uint32_t share =
	    workers > 1 ? MAIL_SLOTS_PER_WORKER / (workers - 1) : MAIL_SLOTS_PER_WORKER;
	uint32_t cap = MAIL_BOX_MIN;
	while (cap * 2 <= share)
		cap *= 2;
	return cap;
}

int mail_init(struct mail *m, uint16_t id, unsigned count, struct mbox **boxes, const int *ring_fds)
{
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->count = count;
	m->ring_fds = ring_fds;
	m->held_max = MAIL_HELD_MAX;
	m->transit_droppable_max = MAIL_TRANSIT_DROPPABLE_MAX;
	m->to = calloc(count, sizeof(*m->to));
	m->in = calloc(count, sizeof(*m->in));
	if (!m->to || !m->in)
		return -1;
	for (unsigned w = 0; w < count; w++) {
		m->to[w].box = boxes[id * count + w];
		m->in[w] = boxes[w * count + id];
		CHECK((w == id) == (m->to[w].box == NULL));
	}
	return 0;
}

void mail_register(struct mail *m, uint8_t kind, mail_fn handle, mail_discard_fn discard, void *ctx)
{
	CHECK(kind > 0 && kind < MBOX_KINDS && !m->kinds[kind].handle && handle);
	m->kinds[kind] = (struct mail_kind){handle, discard, ctx};
}

void mail_discard(const struct mail *m, const struct mbox_msg *msg)
{
	const struct mail_kind *k = msg->kind < MBOX_KINDS ? &m->kinds[msg->kind] : NULL;
	if (k && k->discard)
		k->discard(msg);
}

void mail_fini(struct mail *m)
{
	for (unsigned w = 0; m->to && w < m->count; w++) {
		for (uint32_t i = 0; i < m->to[w].held_len; i++)
			mail_discard(m, &m->to[w].held[i]);
		free(m->to[w].held);
	}
	free(m->to);
	free(m->in);
	m->to = NULL;
	m->in = NULL;
}

/* The rest of mail_send: over a limit, or behind what is held already, or
 * the mailbox is full. */
enum mail_result mail_send_held(struct mail *m, uint16_t to, struct mbox_msg *msg)
{
	CHECK(msg->kind > 0 && msg->kind < MBOX_KINDS && m->kinds[msg->kind].handle);
	struct mail_dest *d = &m->to[to];
	if (msg->cls == MBOX_DROPPABLE) {
		uint64_t done = atomic_load_explicit(&d->box->consumed_bytes, memory_order_acquire);
		if (d->sent_bytes - done > m->transit_droppable_max) {
			m->refused_droppable++;
			return MAIL_REFUSED;
		}
	}
	if (msg->cls == MBOX_DELIVERY && d->held_delivery >= m->held_max) {
		m->refused_delivery++;
		return MAIL_REFUSED;
	}
	d->sent_bytes += msg->bytes;
	if (d->held_len == 0 && mbox_push(d->box, msg)) {
		d->wake = true;
		return MAIL_SENT;
	}
	/* Full: keep order behind what is already waiting. */
	m->overflows++;
	if (d->held_len == d->held_cap) {
		uint32_t cap = d->held_cap ? d->held_cap * 2 : 256;
		struct mbox_msg *n = realloc(d->held, cap * sizeof(*n));
		if (!n) {
			if (msg->cls != MBOX_CONTROL) {
				d->sent_bytes -= msg->bytes;
				m->refused_delivery++;
				return MAIL_REFUSED;
			}
			/* A delta lost here would leave that worker's index unlike
			 * ours and route messages wrongly from then on, unseen;
			 * a few KiB unavailable means the process is out of memory
			 * altogether. */
			LOG_ERROR("worker %u: mail toward worker %u: out of memory", m->id, to);
			abort();
		}
		d->held = n;
		d->held_cap = cap;
	}
	d->held[d->held_len++] = *msg;
	if (msg->cls != MBOX_CONTROL)
		d->held_delivery++;
	return MAIL_HELD;
}

bool mail_congested(const struct mail *m)
{
	for (unsigned w = 0; w < m->count; w++)
		if (m->to[w].held_len >= m->held_max)
			return true;
	return false;
}

void mail_flush(struct mail *m, struct ring *r)
{
	for (unsigned w = 0; w < m->count; w++) {
		struct mail_dest *d = &m->to[w];
		if (d->held_len > 0) {
			uint32_t i = 0, deliveries = 0;
			while (i < d->held_len && mbox_push(d->box, &d->held[i])) {
				deliveries += d->held[i].cls != MBOX_CONTROL;
				i++;
			}
			memmove(d->held, d->held + i, (d->held_len - i) * sizeof(*d->held));
			d->held_len -= i;
			d->held_delivery -= deliveries;
			if (i > 0)
				d->wake = true;
			if (d->held_len == 0 && d->held_cap > 4096) {
				/* A burst is over: its overflow goes back. */
				free(d->held);
				d->held = NULL;
				d->held_cap = 0;
			}
		}
		if (d->wake) {
			d->wake = false;
			ring_wake(r, m->ring_fds[w], op_pack(OP_WAKE, m->id, 0),
			          op_pack(OP_NONE, 0, 0));
		}
	}
}

/* Handle up to max messages from one sender's box; returns how many. */
static unsigned drain_box(struct mail *m, struct mbox *mb, unsigned max)
{
	struct mbox_msg batch[MAIL_BATCH];
	unsigned total = 0, n;
	uint64_t bytes = 0;
	while (total < max &&
	       (n = mbox_pop(mb, batch, max - total < MAIL_BATCH ? max - total : MAIL_BATCH)) > 0) {
		for (unsigned i = 0; i < n; i++) {
			const struct mail_kind *k =
			    batch[i].kind < MBOX_KINDS ? &m->kinds[batch[i].kind] : NULL;
			CHECK(k && k->handle); /* only our own workers write here */
			bytes += batch[i].bytes;
			k->handle(k->ctx, &batch[i]);
		}
		total += n;
	}
	/* Only this thread writes it: a plain add, published once per batch. */
	if (bytes)
		atomic_store_explicit(
		    &mb->consumed_bytes,
		    atomic_load_explicit(&mb->consumed_bytes, memory_order_relaxed) + bytes,
		    memory_order_release);
	return total;
}

uint64_t mail_drain(struct mail *m, unsigned max_each)
{
	uint64_t handled = 0;
	for (unsigned w = 0; w < m->count; w++) {
		struct mbox *mb = m->in[w];
		if (!mb)
			continue;
		unsigned max = max_each ? max_each : mbox_available(mb);
		unsigned got = max ? drain_box(m, mb, max) : 0;
		handled += got;
		/* A box drained of a whole box's worth was full, so its sender
		 * may keep more in its overflow: wake it with this turn's flush
		 * to push the rest now, not at its next timer (a sender with
		 * nothing else to do sleeps up to a sweep). */
		if (got >= mb->cap)
			m->to[w].wake = true;
	}
	return handled;
}

uint64_t mail_held(const struct mail *m)
{
	uint64_t n = 0;
	for (unsigned w = 0; w < m->count; w++)
		n += m->to[w].held_len;
	return n;
}

bool mail_pending(struct mail *m)
{
	for (unsigned w = 0; w < m->count; w++)
		if (m->in[w] && mbox_available(m->in[w]) > 0)
			return true;
	return false;
}
