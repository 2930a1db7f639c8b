/*
 * mail.h — a worker's mail: what it sends to the other workers of its node
 * and how it takes in what they sent (DESIGN.md "Mailboxes").
 *
 * Sending: mail_send() appends to the mailbox toward the receiver; a full
 * mailbox is backpressure, not an error: the message waits in the sender's
 * overflow toward that receiver, in order, and mail_flush() (once per loop
 * turn) pushes what fits and wakes every worker written to, one MSG_RING per
 * receiver per turn.
 *
 * Limits, by the class of the message (mbox.h), so no queue grows silently:
 *  - MBOX_DROPPABLE (QoS 0 deliveries) is refused once the bytes in transit
 *    toward that worker (its mailbox plus our overflow, as the senders count
 *    them in mbox_msg.bytes: route.c counts each delivery's entry and its
 *    message once per publish) pass transit_droppable_max (the
 *    worker_transit_bytes_max setting): QoS 0 promises nothing and memory
 *    must stay bounded when a worker falls behind.
 * A receiver that drains a whole box's worth from one sender wakes it with
 * its next flush: that sender's overflow goes on at once, not at its next
 * timer.
 *  - MBOX_DELIVERY (QoS 1/2) is refused once held_max messages wait in the
 *    overflow toward that worker.
 *  - MBOX_CONTROL (index deltas, takeovers, retained messages) is never
 *    refused: losing a delta would split the index. Its number is bounded by
 *    what makes it — the callers that add to the index or move a session ask
 *    mail_congested() first and refuse the client (0x97, 0x89) past held_max —
 *    while removals always go (their number is bounded by the subscriptions
 *    that exist).
 * Refusals are counted (refused_droppable, refused_delivery) for the caller's
 * statistics; the caller releases what the message referenced.
 *
 * Receiving: mail_drain() pops every sender's mailbox in batches and hands
 * each message to the handler of its kind (a table the loop fills: each
 * module owns a range of kinds), then tells the sender how many bytes it
 * consumed.
 *
 * Capacity: mail_box_cap() gives each mailbox a share of a per-worker budget,
 * so a node's mailboxes cost O(workers), not O(workers^2).
 *
 * Only the owning worker's thread calls these, except mail_depth_toward()
 * (any thread, metrics).
 */
#ifndef STARLING_CORE_MAIL_H
#define STARLING_CORE_MAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/check.h"
#include "io/mbox.h"

struct ring;

/* Module ranges of mailbox kinds (mbox.h: 1..MBOX_KINDS-1). */
#define MAIL_KIND_ROUTE 1  /* route/mail.h: 1..15 */
#define MAIL_KIND_MQTT  16 /* mqtt/takeover.c: 16..23 */
#define MAIL_KIND_NEXT  24 /* cluster, journal: 24..31 */

/* Our way to one other worker. */
struct mail_dest {
	struct mbox *box;       /* from us to it; NULL toward ourselves */
	struct mbox_msg *held;  /* the overflow: what did not fit, oldest first */
	uint32_t held_len;      /* messages in held */
	uint32_t held_cap;      /* allocated entries */
	uint32_t held_delivery; /* of held_len, MBOX_DELIVERY and MBOX_DROPPABLE ones */
	uint64_t sent_bytes;    /* sum of `bytes` sent toward it (box + held) */
	bool wake;              /* pushed since the last flush: wake it */
};

/* A handler of one kind of mail, with the context it was registered with. */
typedef void (*mail_fn)(void *ctx, const struct mbox_msg *m);
/* Release what a message references without handling it (at exit). */
typedef void (*mail_discard_fn)(const struct mbox_msg *m);

struct mail_kind {
	mail_fn handle;          /* NULL: no such kind */
	mail_discard_fn discard; /* NULL: the body references nothing */
	void *ctx;               /* passed to handle: the module's part of the worker */
};

struct mail {
	uint16_t id;                        /* this worker */
	unsigned count;                     /* workers on the node */
	struct mail_dest *to;               /* [count], to[id] unused */
	struct mbox **in;                   /* [count]: from each worker to us; in[id] NULL */
	const int *ring_fds;                /* [count]: every worker's ring, to wake it */
	struct mail_kind kinds[MBOX_KINDS]; /* handlers by kind, registered by their modules */
	uint32_t held_max;                  /* MBOX_DELIVERY held toward one worker; control
	                                     * past this makes mail_congested() true */
	uint64_t transit_droppable_max;     /* bytes in transit past which droppable is refused */
	/* Counters, read by the worker's statistics. */
	uint64_t overflows;         /* sends that found a mailbox full and were held */
	uint64_t refused_droppable; /* droppable mail refused: the receiver is behind */
	uint64_t refused_delivery;  /* QoS 1/2 deliveries refused: held_max reached */
};

/* Slots per mailbox for a node of `workers` workers (a power of two). */
uint32_t mail_box_cap(unsigned workers);

/* Set up m for worker id of count; boxes is the node's [from * count + to]
 * matrix (NULL on the diagonal). 0, or -1 when out of memory. */
int mail_init(struct mail *m, uint16_t id, unsigned count, struct mbox **boxes,
              const int *ring_fds);
/* The module owning kind handles it with handle(ctx, message). */
void mail_register(struct mail *m, uint8_t kind, mail_fn handle, mail_discard_fn discard,
                   void *ctx);
/* Release what a message not handled references (a mailbox emptied at exit). */
void mail_discard(const struct mail *m, const struct mbox_msg *msg);
/* Free the overflow, discarding what it references. */
void mail_fini(struct mail *m);

enum mail_result {
	MAIL_SENT,    /* in the receiver's mailbox */
	MAIL_HELD,    /* in our overflow, in order; it goes at a later flush */
	MAIL_REFUSED, /* over a limit: not sent, the caller releases its references */
};

/* Send msg (kind, cls, bytes and body set; from is filled in). The common
 * case — nothing held toward that worker, room in its mailbox, within the
 * limits — is inline: it runs once per message to another worker. */
enum mail_result mail_send_held(struct mail *m, uint16_t to, struct mbox_msg *msg);
static inline enum mail_result mail_send(struct mail *m, uint16_t to, struct mbox_msg *msg)
{
	CHECK(to < m->count && to != m->id);
	struct mail_dest *d = &m->to[to];
	msg->from = m->id;
	if (d->held_len == 0 &&
	    (msg->cls != MBOX_DROPPABLE ||
	     d->sent_bytes - atomic_load_explicit(&d->box->consumed_bytes, memory_order_acquire) <=
	         m->transit_droppable_max) &&
	    mbox_push(d->box, msg)) {
		d->sent_bytes += msg->bytes;
		d->wake = true;
		return MAIL_SENT;
	}
	return mail_send_held(m, to, msg);
}

/* Too much control mail waits toward some worker: refuse new index entries
 * and session moves until it drained. */
bool mail_congested(const struct mail *m);

/* Push the overflows, then wake every worker written to. Once per turn. */
void mail_flush(struct mail *m, struct ring *r);

/* Handle up to max messages from each sender (in sender order); returns how
 * many were handled. max_each 0: only what is there now, however many. */
uint64_t mail_drain(struct mail *m, unsigned max_each);

/* Messages waiting in our overflows. */
uint64_t mail_held(const struct mail *m);

/* Is there mail for us that we have not handled? */
bool mail_pending(struct mail *m);

#endif
