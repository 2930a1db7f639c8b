/*
 * barrier.c — acknowledgements held for the journal (see barrier.h).
 */
#include "loop/barrier.h"

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

void barrier_journal_step(struct ack_barrier *b)
{
	/* No journal yet: what was appended is as durable as it gets. */
	barrier_durable(b, b->appended);
}

bool barrier_hold(struct ack_barrier *b, void *batch)
{
	if (b->len == BARRIER_HELD_MAX)
		return false;
	uint32_t at = (b->head + b->len) % BARRIER_HELD_MAX;
	b->held[at].seq = b->appended;
	b->held[at].batch = batch;
	b->len++;
	return true;
}

unsigned barrier_release(struct ack_barrier *b, void (*release)(void *ctx, void *batch),
                         void *ctx)
{
	unsigned n = 0;
	while (b->len > 0 && b->held[b->head].seq <= b->durable) {
		void *batch = b->held[b->head].batch;
		b->head = (b->head + 1) % BARRIER_HELD_MAX;
		b->len--;
		release(ctx, batch);
		n++;
	}
	return n;
}
