/*
 * e2e.h — the end-to-end window: per publisher, at most `window` messages
 * published but not yet delivered to all of its (local) subscribers.
 *
 * Layout in shared memory, per publisher rank: a u64 head (the first
 * sequence not yet delivered everywhere) and `window` u32 delivery counts,
 * slot seq % window. Subscribers in any worker add to a slot; only the
 * publisher's own worker moves the head and clears slots. If the head does
 * not move for stall_ns (a QoS 0 message was dropped), the publisher gives
 * up on it, counts a stall and moves on, so a lost message cannot stop a run.
 */
#ifndef STARLING_BENCH_E2E_H
#define STARLING_BENCH_E2E_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct e2e {
	uint64_t *heads;  /* [pubs] */
	uint32_t *counts; /* [pubs * window] */
	uint32_t pubs;
	uint32_t window; /* 0: off */
};

size_t e2e_bytes(uint32_t pubs, uint32_t window);
void e2e_attach(struct e2e *e, void *mem, uint32_t pubs, uint32_t window);
/* A subscriber delivered (pub, seq) for the first time. */
void e2e_delivered(struct e2e *e, uint32_t pub, uint64_t seq);
/*
 * May publisher pub send sequence seq_next, with target deliveries per
 * message? Moves the head over fully delivered messages; *progress_ns is the
 * publisher's last head move, *stalls counts give-ups.
 */
bool e2e_may_publish(struct e2e *e, uint32_t pub, uint64_t seq_next, uint32_t target,
                     uint64_t now_ns, uint64_t stall_ns, uint64_t *progress_ns, uint64_t *stalls);

#endif
