/*
 * held.h — deliveries to other workers held until this worker's journal has
 * what they depend on (core/persist/README.md "Messages": QoS 2 across a
 * crash). A journaled QoS 2 message must not reach a subscriber on another
 * worker before its REC_MSG (with the publisher's inbound id) is durable
 * here: the subscriber's worker gates its output on its own journal only,
 * and a subscriber that got a message the journal then lost would get it
 * again, under another packet id, when its publisher sends it again after
 * the crash. On this worker the connection's own gate already holds it.
 *
 * A FIFO: a delivery is held when it needs to be, or when an earlier one
 * is still held (order per destination is kept: nothing overtakes a held
 * delivery). Entries are sealed with the journal position at the end of
 * the turn that held them (everything that turn appended: the message's
 * records and the publisher's inbound id) and released, in order, once the
 * journal is durable there. Pure bookkeeping; the worker's thread only.
 */
#ifndef STARLING_CORE_HELD_H
#define STARLING_CORE_HELD_H

#include <stdbool.h>
#include <stdint.h>

#include "route/msg.h"
#include "session/sess_id.h"

#define HELD_MAX      65536 /* deliveries held at most; beyond, they go at once (counted) */
#define HELD_UNSEALED UINT64_MAX

/* A delivery as route.c mails it (route/mail.h: struct mail_deliver). */
struct held_delivery {
	uint64_t lsn;  /* the journal position it waits for; HELD_UNSEALED: this turn's end */
	struct msg *m; /* one reference, the delivery's */
	struct sess_id to;
	uint32_t sub_id;
	uint8_t qos;
	uint8_t flags;
};

struct held {
	struct held_delivery *e; /* ring */
	uint32_t head, len, cap; /* cap: a power of two, grown up to HELD_MAX */
	uint32_t unsealed;       /* entries at the tail still HELD_UNSEALED */
};

/* Add d at the tail (its lsn is set: unsealed). false when full or out of
 * memory. */
bool held_push(struct held *h, const struct held_delivery *d);
/* The unsealed entries wait for lsn. */
void held_seal(struct held *h, uint64_t lsn);
/* The oldest entry when it may go (its lsn <= durable), else NULL; then
 * held_pop. */
const struct held_delivery *held_ready(const struct held *h, uint64_t durable);
void held_pop(struct held *h);
void held_fini(struct held *h);

#endif
