/*
 * barrier_test.c — the journal's position and the output gate
 * (core/persist/barrier.c): output written while nothing waits goes at
 * once; output written after a record waits until that record is durable,
 * never less; marks stay in outbox order, are bounded, and move with what
 * left the outbox.
 */
#include <criterion/criterion.h>
#include <signal.h>

#include "persist/barrier.h"

Test(barrier, without_pending_records_everything_goes)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct out_gate g = {.n = 0};
	gate_mark(&g, &b, 0);
	cr_assert_eq(g.n, 0);
	cr_assert_eq(gate_sendable(&g, &b, 100), 100);
	uint64_t s = barrier_append(&b);
	barrier_durable(&b, s);
	gate_mark(&g, &b, 100);
	cr_assert_eq(gate_sendable(&g, &b, 150), 150);
}

Test(barrier, output_waits_for_the_records_before_it)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct out_gate g = {.n = 0};
	/* 10 bytes written before any record: free. */
	uint64_t r1 = barrier_append(&b);
	gate_mark(&g, &b, 10); /* a PUBACK after record 1, at offset 10 */
	cr_assert_eq(gate_sendable(&g, &b, 20), 10);
	uint64_t r2 = barrier_append(&b);
	gate_mark(&g, &b, 20); /* another after record 2 */
	cr_assert_eq(g.n, 2);
	cr_assert_eq(gate_sendable(&g, &b, 30), 10);
	barrier_durable(&b, r1);
	cr_assert_eq(gate_sendable(&g, &b, 30), 20, "record 1 durable: its bytes go, not 2's");
	gate_consumed(&g, 20);
	cr_assert_eq(g.off[0], 0);
	cr_assert_eq(gate_sendable(&g, &b, 10), 0);
	barrier_durable(&b, r2);
	cr_assert_eq(gate_sendable(&g, &b, 10), 10);
	cr_assert_eq(g.n, 0);
}

Test(barrier, marks_are_bounded_and_merge_upwards)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct out_gate g = {.n = 0};
	uint64_t last = 0;
	for (uint32_t i = 0; i < 10; i++) {
		last = barrier_append(&b);
		gate_mark(&g, &b, i * 10);
	}
	cr_assert_eq(g.n, GATE_MARKS);
	cr_assert_eq(g.lsn[GATE_MARKS - 1], last, "the last mark waits for the newest record");
	/* Everything up to the one before last durable: the merged bytes still wait. */
	barrier_durable(&b, last - 1);
	cr_assert_eq(gate_sendable(&g, &b, 100), g.off[0]);
	cr_assert(g.off[0] < 100);
	barrier_durable(&b, last);
	cr_assert_eq(gate_sendable(&g, &b, 100), 100);
}

Test(barrier, a_mark_for_no_newer_record_adds_nothing)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct out_gate g = {.n = 0};
	barrier_append(&b);
	gate_mark(&g, &b, 5);
	gate_mark(&g, &b, 9); /* same record: the first mark covers it */
	cr_assert_eq(g.n, 1);
	cr_assert_eq(gate_sendable(&g, &b, 12), 5);
}

Test(barrier, durable_never_passes_appended, .signal = SIGABRT)
{
	struct ack_barrier b;
	barrier_init(&b);
	barrier_durable(&b, 1);
}

Test(barrier, a_stalled_journal_holds_what_it_held_and_nothing_new)
{
	struct ack_barrier b;
	barrier_init(&b);
	struct out_gate held = {.n = 0}, fresh = {.n = 0};
	uint64_t r = barrier_append(&b);
	gate_mark(&held, &b, 0);  /* an acknowledgement of record r */
	b.stalled = true;         /* r's write failed: the disk is full */
	gate_mark(&fresh, &b, 0); /* another client's output, written meanwhile */
	cr_assert_eq(fresh.n, 0, "output written while stalled depends on no record");
	cr_assert_eq(gate_sendable(&fresh, &b, 10), 10);
	cr_assert_eq(gate_sendable(&held, &b, 10), 0, "r is still not on disk");
	b.stalled = false;
	barrier_durable(&b, r);
	cr_assert_eq(gate_sendable(&held, &b, 10), 10);
}
