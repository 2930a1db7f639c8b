/*
 * barrier_test.c — acknowledgements held for the journal
 * (core/loop/barrier.c): without a journal a turn's output goes in the turn
 * that made it; with records written and not yet durable it waits, batches
 * go in turn order once the journal catches up, never one before its
 * records, and the number held is bounded.
 */
#include <criterion/criterion.h>

#include "loop/barrier.h"

struct log {
	int order[BARRIER_HELD_MAX + 4];
	int n;
};

static void release(void *ctx, void *batch)
{
	struct log *l = ctx;
	l->order[l->n++] = *(int *)batch;
}

Test(barrier, without_a_journal_output_goes_at_once)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct log l = {.n = 0};
	int turn[3] = {1, 2, 3};
	for (int i = 0; i < 3; i++) {
		barrier_journal_step(&b);
		cr_assert(barrier_hold(&b, &turn[i]));
		cr_assert_eq(barrier_release(&b, release, &l), 1);
		cr_assert_eq(barrier_waiting(&b), 0);
	}
	cr_assert_eq(l.n, 3);
	cr_assert_eq(l.order[2], 3);
}

Test(barrier, output_waits_for_its_records)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct log l = {.n = 0};
	int t1 = 1, t2 = 2, t3 = 3;
	uint64_t r1 = barrier_append(&b); /* turn 1 wrote a record (a PUBLISH to a session) */
	cr_assert(barrier_hold(&b, &t1));
	uint64_t r2 = barrier_append(&b); /* turn 2 wrote two */
	uint64_t r3 = barrier_append(&b);
	cr_assert(barrier_hold(&b, &t2));
	cr_assert(barrier_hold(&b, &t3)); /* turn 3 wrote none: it still follows turn 2 */
	cr_assert_eq(barrier_release(&b, release, &l), 0, "nothing durable yet");
	barrier_durable(&b, r1);
	cr_assert_eq(barrier_release(&b, release, &l), 1);
	cr_assert_eq(l.order[0], 1);
	barrier_durable(&b, r2);
	cr_assert_eq(barrier_release(&b, release, &l), 0, "turn 2's second record is not durable");
	barrier_durable(&b, r3);
	cr_assert_eq(barrier_release(&b, release, &l), 2);
	cr_assert_eq(l.order[1], 2);
	cr_assert_eq(l.order[2], 3, "in turn order");
	barrier_durable(&b, r1); /* a late, older completion changes nothing */
	cr_assert_eq(b.durable, r3);
}

Test(barrier, the_number_held_is_bounded)
{
	struct ack_barrier b;
	barrier_init(&b);
	int t[BARRIER_HELD_MAX + 1];
	barrier_append(&b);
	for (int i = 0; i < BARRIER_HELD_MAX; i++) {
		t[i] = i;
		cr_assert(barrier_hold(&b, &t[i]));
	}
	cr_assert_not(barrier_hold(&b, &t[0]), "the loop must stop taking work");
	struct log l = {.n = 0};
	barrier_journal_step(&b);
	cr_assert_eq(barrier_release(&b, release, &l), BARRIER_HELD_MAX);
	for (int i = 0; i < BARRIER_HELD_MAX; i++)
		cr_assert_eq(l.order[i], i);
}
