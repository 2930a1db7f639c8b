/*
 * barrier.c — the journal's position and the output gate (see barrier.h).
 */
#include "persist/barrier.h"

#include <string.h>

#include "base/check.h"

void barrier_init(struct ack_barrier *b)
{
	memset(b, 0, sizeof(*b));
}

uint64_t barrier_append(struct ack_barrier *b)
{
	return ++b->appended;
}

void barrier_durable(struct ack_barrier *b, uint64_t seq)
{
	CHECK(seq <= b->appended); /* nothing is durable before it was written */
	if (seq > b->durable)
		b->durable = seq;
}

void gate_mark(struct out_gate *g, const struct ack_barrier *b, uint32_t off)
{
	if (!barrier_pending(b))
		return;
	uint64_t lsn = b->appended;
	if (g->n > 0 && g->lsn[g->n - 1] >= lsn)
		return; /* the bytes before already wait for as much */
	if (g->n == GATE_MARKS) {
		g->lsn[g->n - 1] = lsn; /* merged: those bytes wait longer, never less */
		return;
	}
	CHECK(g->n == 0 || g->off[g->n - 1] <= off);
	g->off[g->n] = off;
	g->lsn[g->n] = lsn;
	g->n++;
}

uint32_t gate_sendable(struct out_gate *g, const struct ack_barrier *b, uint32_t out_len)
{
	unsigned passed = 0;
	while (passed < g->n && g->lsn[passed] <= b->durable)
		passed++;
	if (passed) {
		memmove(g->off, g->off + passed, (g->n - passed) * sizeof(g->off[0]));
		memmove(g->lsn, g->lsn + passed, (g->n - passed) * sizeof(g->lsn[0]));
		g->n = (uint8_t)(g->n - passed);
	}
	return g->n ? (g->off[0] < out_len ? g->off[0] : out_len) : out_len;
}

void gate_consumed(struct out_gate *g, uint32_t n)
{
	for (unsigned i = 0; i < g->n; i++) {
		CHECK(g->off[i] >= n); /* only bytes before the first mark leave */
		g->off[i] -= n;
	}
}
