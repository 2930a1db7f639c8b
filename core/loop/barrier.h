/*
 * barrier.h — where the loop will hold acknowledgements back until the
 * journal made their records durable (DESIGN.md "Durability"; Redis's
 * AE_BARRIER: write before you reply). Present now as a stage of every turn
 * with nothing to wait for; the durability issue gives it a journal.
 *
 * A turn's output is one batch: the connections with something to send,
 * taken whole from the transport's flush list. The journal records written
 * during the turn end at sequence number `appended`; the batch may go to the
 * kernel once the journal says everything up to that number is durable. The
 * barrier keeps batches in turn order and releases each whose sequence
 * number is durable, so no acknowledgement leaves before its record, and no
 * batch overtakes an earlier one (a later PUBACK never precedes an earlier
 * one on the wire).
 *
 * Without a journal nothing is appended: durable == appended after every
 * journal step, and each batch goes out in the turn that made it, exactly as
 * if there were no barrier. Pure bookkeeping, unit-tested
 * (tests/unit/barrier_test.c); the worker's thread only.
 */
#ifndef STARLING_CORE_BARRIER_H
#define STARLING_CORE_BARRIER_H

#include <stdbool.h>
#include <stdint.h>

#define BARRIER_HELD_MAX 64 /* turns of output that may wait for the journal */

struct ack_barrier {
	uint64_t appended; /* journal records written so far (their last number) */
	uint64_t durable;  /* of those, durable (the journal's completions say so) */
	struct {
		uint64_t seq; /* the journal position the batch waits for */
		void *batch;  /* the turn's output (an opaque list head) */
	} held[BARRIER_HELD_MAX];
	uint32_t head; /* oldest held batch */
	uint32_t len;  /* batches held */
};

void barrier_init(struct ack_barrier *b);

/* A journal record was written during this turn (the journal calls it);
 * returns its sequence number. */
uint64_t barrier_append(struct ack_barrier *b);
/* The journal made everything up to seq durable. */
void barrier_durable(struct ack_barrier *b, uint64_t seq);
/* The journal's stage of the loop: with no journal, all that was appended
 * counts as durable at once. */
void barrier_journal_step(struct ack_barrier *b);

/* Hold this turn's output until what was appended so far is durable;
 * false when BARRIER_HELD_MAX batches wait (the caller must stop taking
 * work that would need acknowledging until the journal catches up). */
bool barrier_hold(struct ack_barrier *b, void *batch);
/* Release, oldest first, every held batch the journal made durable:
 * release(ctx, batch) for each. Returns how many went. */
unsigned barrier_release(struct ack_barrier *b, void (*release)(void *ctx, void *batch),
                         void *ctx);
/* Batches still waiting. */
static inline uint32_t barrier_waiting(const struct ack_barrier *b)
{
	return b->len;
}

#endif
