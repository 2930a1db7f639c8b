/*
 * e2e.c — the cross-process end-to-end window (see e2e.h).
 *
 * Invariant: a publisher never sends seq >= head + window, so every
 * undelivered sequence has its own slot. A subscriber counts only sequences
 * in [head, head + window); a late delivery of a message the publisher
 * already gave up on is dropped here (it was counted as delivered anyway).
 */
#include "e2e.h"

size_t e2e_bytes(uint32_t pubs, uint32_t window)
{
	if (!window)
		return 0;
	return (size_t)pubs * sizeof(uint64_t) + (size_t)pubs * window * sizeof(uint32_t);
}

void e2e_attach(struct e2e *e, void *mem, uint32_t pubs, uint32_t window)
{
	e->pubs = pubs;
	e->window = window;
	e->heads = mem;
	e->counts = (uint32_t *)((uint64_t *)mem + pubs);
}

void e2e_delivered(struct e2e *e, uint32_t pub, uint64_t seq)
{
	if (!e->window || pub >= e->pubs)
		return;
	uint64_t head = __atomic_load_n(&e->heads[pub], __ATOMIC_ACQUIRE);
	if (seq < head || seq >= head + e->window)
		return;
	__atomic_fetch_add(&e->counts[(size_t)pub * e->window + seq % e->window], 1,
	                   __ATOMIC_RELEASE);
}

bool e2e_may_publish(struct e2e *e, uint32_t pub, uint64_t seq_next, uint32_t target,
                     uint64_t now_ns, uint64_t stall_ns, uint64_t *progress_ns, uint64_t *stalls)
{
	if (!e->window || !target || pub >= e->pubs)
		return true;
	uint64_t head = __atomic_load_n(&e->heads[pub], __ATOMIC_RELAXED);
	uint32_t *counts = &e->counts[(size_t)pub * e->window];
	uint64_t start = head;
	while (head < seq_next) {
		uint32_t *slot = &counts[head % e->window];
		if (__atomic_load_n(slot, __ATOMIC_ACQUIRE) < target)
			break;
		__atomic_store_n(slot, 0, __ATOMIC_RELAXED);
		head++;
	}
	if (head == start && head < seq_next && seq_next - head >= e->window &&
	    now_ns - *progress_ns > stall_ns) {
		/* the oldest message will not arrive everywhere: give up on it */
		__atomic_store_n(&counts[head % e->window], 0, __ATOMIC_RELAXED);
		head++;
		(*stalls)++;
	}
	if (head != start) {
		__atomic_store_n(&e->heads[pub], head, __ATOMIC_RELEASE);
		*progress_ns = now_ns;
	}
	return seq_next - head < e->window;
}
