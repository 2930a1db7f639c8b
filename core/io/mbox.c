/*
 * mbox.c — the SPSC ring (see mbox.h). Producer: one thread; consumer: one
 * other thread. Release on publish of a counter, acquire on reading the other
 * side's, so a message's bytes are visible before its slot is.
 */
#include "io/mbox.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

struct mbox *mbox_new(uint32_t cap)
{
	CHECK(cap > 0 && (cap & (cap - 1)) == 0);
	size_t bytes = sizeof(struct mbox) + (size_t)cap * sizeof(struct mbox_msg);
	bytes = (bytes + 63) & ~(size_t)63; /* aligned_alloc wants a multiple */
	struct mbox *mb = aligned_alloc(64, bytes);
	if (!mb)
		return NULL;
	atomic_init(&mb->tail, 0);
	atomic_init(&mb->head, 0);
	atomic_init(&mb->consumed_bytes, 0);
	mb->head_cache = 0;
	mb->tail_cache = 0;
	mb->cap = cap;
	return mb;
}


unsigned mbox_available(struct mbox *mb)
{
	mb->tail_cache = atomic_load_explicit(&mb->tail, memory_order_acquire);
	return mb->tail_cache - atomic_load_explicit(&mb->head, memory_order_relaxed);
}

unsigned mbox_depth(const struct mbox *mb)
{
	/* The casts drop const only for C11's atomic_load signature. */
	unsigned head = atomic_load_explicit((atomic_uint *)&mb->head, memory_order_acquire);
	unsigned tail = atomic_load_explicit((atomic_uint *)&mb->tail, memory_order_acquire);
	/* Head first: both only grow and head never passes tail, so the
	 * difference is never negative; pushes between the two loads can take
	 * it past the capacity, hence the clamp. */
	return tail - head <= mb->cap ? tail - head : mb->cap;
}

unsigned mbox_pop(struct mbox *mb, struct mbox_msg *out, unsigned max)
{
	uint32_t head = atomic_load_explicit(&mb->head, memory_order_relaxed);
	if (head == mb->tail_cache) {
		mb->tail_cache = atomic_load_explicit(&mb->tail, memory_order_acquire);
		if (head == mb->tail_cache)
			return 0;
	}
	unsigned n = 0;
	while (n < max && head != mb->tail_cache) {
		out[n++] = mb->slots[head & (mb->cap - 1)];
		head++;
	}
	atomic_store_explicit(&mb->head, head, memory_order_release);
	return n;
}
