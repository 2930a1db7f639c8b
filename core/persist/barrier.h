/*
 * barrier.h — write before you reply (DESIGN.md "Durability"; Redis's
 * AE_BARRIER): the journal's position on a worker, and the gate that keeps a
 * connection's output in its outbox until the records written before it
 * are durable.
 *
 * Every journal record gets the next sequence number (`appended`); the
 * journal's completions move `durable` up. Output written to a connection
 * while records wait (appended > durable) depends on them — a PUBACK on its
 * PUBLISH's record, a delivery on the record that queued it — so the
 * transport marks where in the outbox that output begins and which number
 * it waits for (gate_mark), and sends only the bytes before the first mark
 * the journal has not reached (gate_sendable). Output written while nothing
 * waits carries no mark and goes in the turn that made it, exactly as
 * without a journal. Marks are in outbox order with rising numbers, so no
 * acknowledgement overtakes an earlier one on the wire.
 *
 * A connection keeps at most GATE_MARKS marks: a further one raises the last
 * mark's number instead (its bytes then wait a little longer; never less).
 *
 * Pure bookkeeping, unit-tested (tests/unit/barrier_test.c); the worker's
 * thread only.
 */
#ifndef STARLING_CORE_BARRIER_H
#define STARLING_CORE_BARRIER_H

#include <stdbool.h>
#include <stdint.h>

#define GATE_MARKS 2

struct ack_barrier {
	uint64_t appended; /* journal records written so far (their last number) */
	uint64_t durable;  /* of those, durable (the journal's completions say so) */
	bool stalled;      /* the journal cannot write (disk full): it takes no new
	                    * records, so output written meanwhile depends on none
	                    * and is not held (what was held stays held) */
};

/* A connection's marks: outbox bytes from off[i] on wait for lsn[i]. */
struct out_gate {
	uint32_t off[GATE_MARKS];
	uint64_t lsn[GATE_MARKS];
	uint8_t n;
};

void barrier_init(struct ack_barrier *b);

/* A journal record was written (the journal calls it); its number. */
uint64_t barrier_append(struct ack_barrier *b);
/* The journal made everything up to seq durable. */
void barrier_durable(struct ack_barrier *b, uint64_t seq);
/* Records wait: output written now must wait for them. */
static inline bool barrier_pending(const struct ack_barrier *b)
{
	return b->appended > b->durable && !b->stalled;
}

/* Output written from outbox offset off on waits for what is appended now. */
void gate_mark(struct out_gate *g, const struct ack_barrier *b, uint32_t off);
/* How many of the outbox's out_len bytes may be sent now (marks the journal
 * passed are dropped). */
uint32_t gate_sendable(struct out_gate *g, const struct ack_barrier *b, uint32_t out_len);
/* The first n bytes of the outbox left it (staged for sending). */
void gate_consumed(struct out_gate *g, uint32_t n);
/* The outbox was emptied without sending (a dead connection). */
static inline void gate_clear(struct out_gate *g)
{
	g->n = 0;
}

#endif
