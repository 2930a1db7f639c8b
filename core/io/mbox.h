/*
 * mbox.h — single-producer single-consumer mailbox between two workers
 * (DESIGN.md "Mailboxes"; Seastar's smp queues). Every ordered pair of
 * workers has one. Messages are small fixed-size values; the only pointers
 * they carry are to immutable reference-counted objects (a message, a
 * subscription delta) or to an object whose ownership moves with the message
 * (a session on takeover).
 *
 * The producer and consumer counters live on separate cache lines, each side
 * caches the other's counter, and the consumer drains in batches; the wake-up
 * (IORING_OP_MSG_RING) is the worker's business, once per batch.
 */
#ifndef STARLING_CORE_MBOX_H
#define STARLING_CORE_MBOX_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "session/sess_id.h"

#define MBOX_CAP 16384u /* messages per direction per pair; a power of two */

enum mbox_kind {
	MB_DELIVER = 1,  /* ptr: struct msg (one reference moves); to target session */
	MB_SUB_DELTA,    /* ptr: struct sub_delta (one reference moves) */
	MB_RETAIN_PUT,   /* ptr: struct msg (one reference moves); to the topic's shard */
	MB_RETAIN_QUERY, /* ptr: struct sub_delta naming filter and subscriber */
	MB_TAKEOVER,     /* target: the session to take; conn: the new connection; fresh */
	MB_HANDOVER,     /* ptr: struct session or NULL; conn: the waiting connection */
};

struct mbox_msg {
	uint8_t kind;  /* enum mbox_kind */
	uint8_t qos;   /* MB_DELIVER: QoS to deliver with */
	uint8_t flags; /* MB_DELIVER: MBOX_F_*; MB_TAKEOVER: MBOX_F_CLEAN */
	uint8_t pad;
	uint16_t from;         /* sending worker */
	uint32_t sub_id;       /* MB_DELIVER: subscription identifier, 0 = none */
	struct sess_id target; /* session the message is for */
	uint32_t conn_slot;    /* MB_TAKEOVER / MB_HANDOVER: the new connection */
	uint32_t conn_gen;
	uint32_t bytes; /* MB_DELIVER: the message's size_bytes (transit accounting) */
	union {
		void *ptr; /* see the kinds */
		struct {   /* MB_TAKEOVER: the new session, on worker `from` */
			uint32_t slot, gen;
		} fresh;
	};
};

#define MBOX_F_RETAIN 0x01 /* deliver with the retain flag set */
#define MBOX_F_CLEAN  0x02 /* takeover with clean start: discard the session */
#define MBOX_F_SHARED 0x04 /* deliver through a shared subscription */

struct mbox {
	alignas(64) atomic_uint tail; /* written by the producer */
	uint32_t head_cache;          /* producer's last view of head */
	alignas(64) atomic_uint head; /* written by the consumer */
	uint32_t tail_cache;          /* consumer's last view of tail */
	/* Written by the consumer: the sum of `bytes` it has handled; the
	 * producer subtracts it from what it sent to know what is in transit. */
	atomic_uint_fast64_t consumed_bytes;
	alignas(64) struct mbox_msg slots[MBOX_CAP];
};

void mbox_init(struct mbox *mb);

/* Producer side. false when full: keep it in the overflow and retry. */
bool mbox_push(struct mbox *mb, const struct mbox_msg *m);

/* Consumer side: up to max messages into out; returns how many. */
unsigned mbox_pop(struct mbox *mb, struct mbox_msg *out, unsigned max);

/* Consumer side: how many messages are waiting right now. */
unsigned mbox_available(struct mbox *mb);

/* Any thread (metrics): messages waiting now, from the two counters only. */
unsigned mbox_depth(const struct mbox *mb);

#endif
