/*
 * mbox.h — single-producer single-consumer mailbox between two workers
 * (DESIGN.md "Mailboxes"; Seastar's smp queues). Every ordered pair of
 * workers has one. Messages are small fixed-size values: a kind, the
 * sender, and a body that only the module owning the kind reads (route's
 * deliveries and deltas, mqtt's takeovers; mail.h). The only pointers a
 * body carries are to immutable reference-counted objects (a message, a
 * subscription delta) or to an object whose ownership moves with the
 * message, named so in its type (an encoded session).
 *
 * The producer and consumer counters live on separate cache lines, each side
 * caches the other's counter, and the consumer drains in batches; the wake-up
 * (IORING_OP_MSG_RING) is mail.c's business, once per batch.
 *
 * Capacity is chosen per node by the worker count (mail.h), so mailbox
 * memory grows with the workers, not with their square.
 */
#ifndef STARLING_CORE_MBOX_H
#define STARLING_CORE_MBOX_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define MBOX_KINDS      32 /* kinds 1..31; each module owns a range (mail.h) */
#define MBOX_BODY_BYTES 40 /* a message is 48 bytes */

/* How a message may be treated when its receiver falls behind. */
enum mbox_class {
	MBOX_CONTROL = 0,   /* never dropped: index deltas, takeovers, retained */
	MBOX_DELIVERY = 1,  /* a QoS 1/2 delivery: bounded in number in the overflow */
	MBOX_DROPPABLE = 2, /* a QoS 0 delivery: dropped past the bytes in transit */
};

struct mbox_msg {
	uint8_t kind;   /* who handles it (1..MBOX_KINDS-1) */
	uint8_t cls;    /* enum mbox_class */
	uint16_t from;  /* sending worker */
	uint32_t bytes; /* message bytes it keeps alive (transit accounting), else 0 */
	union {
		uint64_t align_;
		uint8_t body[MBOX_BODY_BYTES]; /* the kind's struct, copied in and out */
	};
};

_Static_assert(sizeof(struct mbox_msg) == 48, "a mailbox message is 48 bytes");

struct mbox {
	alignas(64) atomic_uint tail; /* written by the producer */
	uint32_t head_cache;          /* producer's last view of head */
	alignas(64) atomic_uint head; /* written by the consumer */
	uint32_t tail_cache;          /* consumer's last view of tail */
	/* Written by the consumer: the sum of `bytes` it has handled; the
	 * producer subtracts it from what it sent to know what is in transit. */
	atomic_uint_fast64_t consumed_bytes;
	uint32_t cap; /* slots, a power of two; fixed at mbox_new */
	alignas(64) struct mbox_msg slots[];
};

/* A mailbox of cap slots (a power of two), or NULL. Freed with free(). */
struct mbox *mbox_new(uint32_t cap);

/* Producer side. false when full: keep it in the overflow and retry.
 * Inline: once per message sent to another worker. */
static inline bool mbox_push(struct mbox *mb, const struct mbox_msg *m)
{
	uint32_t tail = atomic_load_explicit(&mb->tail, memory_order_relaxed);
	if (tail - mb->head_cache >= mb->cap) {
		mb->head_cache = atomic_load_explicit(&mb->head, memory_order_acquire);
		if (tail - mb->head_cache >= mb->cap)
			return false;
	}
	mb->slots[tail & (mb->cap - 1)] = *m;
	atomic_store_explicit(&mb->tail, tail + 1, memory_order_release);
	return true;
}

/* Consumer side: up to max messages into out; returns how many. */
unsigned mbox_pop(struct mbox *mb, struct mbox_msg *out, unsigned max);

/* Consumer side: how many messages are waiting right now. */
unsigned mbox_available(struct mbox *mb);

/* Any thread (metrics): messages waiting now, from the two counters only. */
unsigned mbox_depth(const struct mbox *mb);

#endif
