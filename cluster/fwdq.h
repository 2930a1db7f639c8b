/*
 * fwdq.h — what one worker forwards to one peer node, in order, until the
 * peer has it (../shared/DESIGN.md "A cluster", "Forwarding"): the
 * message references of the publishes the plans named that node for, each
 * QoS 1/2 one numbered on this worker's link (link_seq), kept after it was
 * written to the connection until the peer acknowledges its number, and
 * written again, in order, on the next connection if the one it went on
 * broke. A QoS 0 publish is let go once written: it promises nothing.
 *
 * The peer de-duplicates by (our node and epoch, our worker, link_seq), so
 * a publish written twice across a reconnect is delivered once.
 *
 * Bounded by the bytes of the messages it holds (cluster_link_buffer_bytes
 * / workers) and by FWDQ_ITEMS_MAX entries: a publish beyond either is
 * refused, and the caller counts it dropped. The publisher is never
 * blocked by another node.
 *
 * Pure: no I/O, no clock. One worker's thread owns a queue.
 */
#ifndef STARLING_CLUSTER_FWDQ_H
#define STARLING_CLUSTER_FWDQ_H

#include <stdbool.h>
#include <stdint.h>

#include "route/msg.h"

#define FWDQ_ITEMS_MAX (1u << 20) /* entries one queue holds, at most */

/* What an entry is for. */
#define FWD_SHARED     0x01 /* the plan chose that node for a shared group */
#define FWD_STORE_ONLY 0x02 /* retained replication: numbered whatever its QoS */
#define FWD_SYNC_END   0x04 /* not a message: the end of a retained sync (m is a stand-in) */
#define FWD_UNBOUNDED                                                                              \
	0x08 /* a sync of what is already held: past bytes_max (the                                \
	      * messages exist anyway; only FWDQ_ITEMS_MAX bounds it) */

struct fwd_item {
	struct msg *m; /* one reference; NULL: let go (written unnumbered, or acknowledged) */
	uint64_t seq;  /* link_seq: 0 for QoS 0 (unless FWD_STORE_ONLY) */
	uint8_t flags; /* FWD_* */
};

struct fwdq {
	struct fwd_item *items; /* a ring of cap entries */
	uint32_t head;          /* the oldest entry */
	uint32_t len;           /* entries from head */
	uint32_t cap;           /* a power of two, or 0 */
	uint32_t written;       /* of len, those written on the current connection */
	uint64_t bytes;         /* size_bytes of the messages held */
	uint64_t bytes_max;
	uint64_t next_seq; /* the last link_seq given */
	uint64_t acked;    /* the highest link_seq the peer acknowledged */
};

void fwdq_init(struct fwdq *q, uint64_t bytes_max);
/* Releases every message held. */
void fwdq_fini(struct fwdq *q);

/* Queue m (takes a reference of its own) with FWD_* flags. 0; -ENOBUFS:
 * over bytes_max or FWDQ_ITEMS_MAX (counted by the caller); -ENOMEM. */
int fwdq_push(struct fwdq *q, struct msg *m, uint8_t flags);

/* Entries not yet written on the current connection, and the i-th of them
 * (its m is NULL when there is nothing to write: skip it). */
static inline uint32_t fwdq_unwritten(const struct fwdq *q)
{
	return q->len - q->written;
}
static inline const struct fwd_item *fwdq_unwritten_at(const struct fwdq *q, uint32_t i)
{
	return &q->items[(q->head + q->written + i) & (q->cap - 1)];
}

/* The next n unwritten entries were written: QoS 0 ones are let go. */
void fwdq_wrote(struct fwdq *q, uint32_t n);

/* The peer has every link_seq <= up_to: those are let go. */
void fwdq_ack(struct fwdq *q, uint64_t up_to);

/* The connection broke: what it was not acknowledged for is unwritten
 * again, to go first on the next one. */
void fwdq_rewind(struct fwdq *q);

/* The peer is gone (dead, left, or a new process): let everything go;
 * returns how many messages were held. */
uint32_t fwdq_drop_all(struct fwdq *q);

/* Messages held (written-and-unacknowledged included). */
uint32_t fwdq_held(const struct fwdq *q);

#endif
