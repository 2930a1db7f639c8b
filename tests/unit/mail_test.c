/*
 * mail_test.c — a worker's mail (core/io/mail.c) between two workers run
 * from one thread: handlers by kind, order kept through a full mailbox and
 * the overflow, the limits by class (QoS 0 by bytes in transit, QoS 1/2 by
 * messages held, control mail never refused but reported as congestion),
 * wake-ups through real rings, and what is discarded at exit.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "io/mail.h"
#include "io/op.h"
#include "io/ring.h"

#define KIND_A 24
#define KIND_B 25

struct got {
	uint32_t seq[1 << 16];
	uint8_t kind[1 << 16];
	uint32_t n;
	uint32_t discarded;
};

static struct got got;

static void handle(void *ctx, const struct mbox_msg *m)
{
	struct got *g = ctx;
	uint32_t seq;
	memcpy(&seq, m->body, sizeof(seq));
	g->seq[g->n] = seq;
	g->kind[g->n++] = m->kind;
}

static void discard(const struct mbox_msg *m)
{
	(void)m;
	got.discarded++;
}

struct pair {
	struct mbox *boxes[4];
	int fds[2];
	struct mail a, b; /* worker 0 and worker 1 */
};

static void pair_init(struct pair *p, uint32_t cap)
{
	memset(p, 0, sizeof(*p));
	memset(&got, 0, sizeof(got));
	p->boxes[1] = mbox_new(cap); /* 0 -> 1 */
	p->boxes[2] = mbox_new(cap); /* 1 -> 0 */
	cr_assert(p->boxes[1] && p->boxes[2]);
	p->fds[0] = p->fds[1] = -1;
	cr_assert_eq(mail_init(&p->a, 0, 2, p->boxes, p->fds), 0);
	cr_assert_eq(mail_init(&p->b, 1, 2, p->boxes, p->fds), 0);
	mail_register(&p->b, KIND_A, handle, discard, &got);
	mail_register(&p->b, KIND_B, handle, discard, &got);
	mail_register(&p->a, KIND_A, handle, discard, &got);
	mail_register(&p->a, KIND_B, handle, discard, &got);
}

static void pair_fini(struct pair *p)
{
	struct mbox_msg m;
	while (mbox_pop(p->boxes[1], &m, 1))
		mail_discard(&p->b, &m);
	mail_fini(&p->a);
	mail_fini(&p->b);
	free(p->boxes[1]);
	free(p->boxes[2]);
}

/* Real rings for the two workers, so that wake-ups can be seen. */
static void pair_rings(struct pair *p, struct ring *ra, struct ring *rb)
{
	cr_assert_eq(ring_init(ra, 0, 8, 4096), 0);
	cr_assert_eq(ring_init(rb, 1, 8, 4096), 0);
	p->fds[0] = ring_fd(ra);
	p->fds[1] = ring_fd(rb);
}

static enum mail_result post(struct mail *m, uint16_t to, uint8_t kind, enum mbox_class cls,
                             uint32_t seq, uint32_t bytes)
{
	struct mbox_msg msg = {.kind = kind, .cls = (uint8_t)cls, .bytes = bytes};
	memcpy(msg.body, &seq, sizeof(seq));
	return mail_send(m, to, &msg);
}

Test(mail, handlers_by_kind_in_order)
{
	struct pair p;
	pair_init(&p, 512);
	for (uint32_t i = 0; i < 100; i++)
		cr_assert_eq(post(&p.a, 1, i % 2 ? KIND_B : KIND_A, MBOX_CONTROL, i, 0), MAIL_SENT);
	cr_assert(mail_pending(&p.b));
	cr_assert_eq(mail_drain(&p.b, 16384), 100);
	cr_assert_eq(got.n, 100);
	for (uint32_t i = 0; i < 100; i++) {
		cr_assert_eq(got.seq[i], i);
		cr_assert_eq(got.kind[i], i % 2 ? KIND_B : KIND_A);
	}
	cr_assert_not(mail_pending(&p.b));
	pair_fini(&p);
}

Test(mail, a_full_mailbox_holds_in_order_and_flushes_with_a_wake_up)
{
	struct pair p;
	pair_init(&p, 512);
	struct ring ra, rb;
	pair_rings(&p, &ra, &rb);
	for (uint32_t i = 0; i < 2000; i++)
		cr_assert_neq(post(&p.a, 1, KIND_A, MBOX_DELIVERY, i, 100), MAIL_REFUSED);
	cr_assert_eq(mail_held(&p.a), 2000 - 512);
	cr_assert_eq(p.a.overflows, 2000 - 512);
	/* Drain 512, flush (the held ones move up), until all arrived. */
	while (got.n < 2000) {
		mail_drain(&p.b, 16384);
		mail_flush(&p.a, &ra);
		cr_assert_eq(ring_submit_wait(&ra, 0), 0);
	}
	for (uint32_t i = 0; i < 2000; i++)
		cr_assert_eq(got.seq[i], i, "order kept through the overflow");
	cr_assert_eq(mail_held(&p.a), 0);
	/* The flushes woke worker 1's ring. */
	cr_assert_eq(ring_submit_wait(&rb, 100), 0);
	struct completion c[8];
	unsigned n = ring_reap(&rb, c, 8);
	cr_assert_geq(n, 1);
	cr_assert_eq(op_kind(c[0].ud), OP_WAKE);
	cr_assert_eq(op_slot(c[0].ud), 0, "from worker 0");
	ring_exit(&ra);
	ring_exit(&rb);
	pair_fini(&p);
}

/* A receiver that takes a whole box's worth wakes the sender with its next
 * flush (the sender may hold more in its overflow and would otherwise push
 * it only at its next timer); one that takes less wakes nobody. */
Test(mail, draining_a_full_box_wakes_its_sender)
{
	struct pair p;
	pair_init(&p, 512);
	struct ring ra, rb;
	pair_rings(&p, &ra, &rb);
	for (uint32_t i = 0; i < 100; i++)
		cr_assert_eq(post(&p.a, 1, KIND_A, MBOX_DELIVERY, i, 100), MAIL_SENT);
	cr_assert_eq(mail_drain(&p.b, 0), 100);
	mail_flush(&p.b, &rb);
	cr_assert_eq(ring_submit_wait(&rb, 0), 0);
	struct completion c[8];
	cr_assert_eq(ring_submit_wait(&ra, 0), 0);
	cr_assert_eq(ring_reap(&ra, c, 8), 0, "a part of a box: no wake-up");
	for (uint32_t i = 0; i < 600; i++)
		cr_assert_neq(post(&p.a, 1, KIND_A, MBOX_DELIVERY, i, 100), MAIL_REFUSED);
	cr_assert_eq(mail_held(&p.a), 600 - 512);
	cr_assert_eq(mail_drain(&p.b, 0), 512);
	mail_flush(&p.b, &rb);
	cr_assert_eq(ring_submit_wait(&rb, 0), 0);
	cr_assert_eq(ring_submit_wait(&ra, 100), 0);
	unsigned n = ring_reap(&ra, c, 8);
	cr_assert_eq(n, 1, "a full box drained: the sender is woken");
	cr_assert_eq(op_kind(c[0].ud), OP_WAKE);
	cr_assert_eq(op_slot(c[0].ud), 1, "from worker 1");
	mail_flush(&p.a, &ra); /* the sender's turn: the rest goes */
	cr_assert_eq(mail_held(&p.a), 0);
	cr_assert_eq(mail_drain(&p.b, 0), 600 - 512);
	ring_exit(&ra);
	ring_exit(&rb);
	pair_fini(&p);
}

Test(mail, qos0_gives_way_past_the_bytes_in_transit)
{
	struct pair p;
	pair_init(&p, 512);
	p.a.transit_droppable_max = 10000;
	uint32_t sent = 0, refused = 0;
	for (uint32_t i = 0; i < 300; i++) {
		if (post(&p.a, 1, KIND_A, MBOX_DROPPABLE, i, 100) == MAIL_REFUSED)
			refused++;
		else
			sent++;
	}
	cr_assert_eq(sent, 101, "10,000 bytes in transit, then one more");
	cr_assert_eq(refused, 199);
	cr_assert_eq(p.a.refused_droppable, 199);
	/* Once the receiver has handled them, QoS 0 goes again. */
	mail_drain(&p.b, 16384);
	cr_assert_eq(post(&p.a, 1, KIND_A, MBOX_DROPPABLE, 1000, 100), MAIL_SENT);
	/* Control mail is not droppable, however far behind. */
	for (uint32_t i = 0; i < 300; i++)
		cr_assert_neq(post(&p.a, 1, KIND_B, MBOX_CONTROL, i, 0), MAIL_REFUSED);
	pair_fini(&p);
}

Test(mail, deliveries_held_are_bounded_control_is_reported)
{
	struct pair p;
	pair_init(&p, 512);
	p.a.held_max = 100;
	for (uint32_t i = 0; i < 512 + 100; i++)
		cr_assert_neq(post(&p.a, 1, KIND_A, MBOX_DELIVERY, i, 10), MAIL_REFUSED);
	cr_assert_eq(post(&p.a, 1, KIND_A, MBOX_DELIVERY, 9999, 10), MAIL_REFUSED);
	cr_assert_eq(p.a.refused_delivery, 1);
	cr_assert(mail_congested(&p.a), "held_max messages wait");
	cr_assert_eq(post(&p.a, 1, KIND_B, MBOX_CONTROL, 1, 0), MAIL_HELD, "never refused");
	pair_fini(&p);
	cr_assert_eq(got.discarded, 512 + 101, "what was never handled is discarded");
}

Test(mail, box_capacity_shares_a_budget_per_worker)
{
	cr_assert_eq(mail_box_cap(1), 16384);
	cr_assert_eq(mail_box_cap(2), 16384, "two workers: as before");
	cr_assert_eq(mail_box_cap(4), 4096);
	cr_assert_eq(mail_box_cap(16), 1024);
	cr_assert_eq(mail_box_cap(64), 512, "never below 512");
	/* 64 workers: 64 x 63 boxes of 512 x 48 bytes is 99 MiB, not 3 GiB. */
	uint64_t total = 64ull * 63 * mail_box_cap(64) * sizeof(struct mbox_msg);
	cr_assert_lt(total, 100ull << 20);
}
