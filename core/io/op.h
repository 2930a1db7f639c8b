/*
 * op.h — what an io_uring completion is about, packed into its user_data:
 * the operation kind, a slot (connection or listener index) and the slot's
 * generation. Never an fd or a pointer: fds and slots are reused, and a
 * completion that arrives after its connection was closed must be
 * recognisable as stale (CONVENTIONS.md "The worker loop").
 *
 *   bits 63..56 kind | 55..32 generation (24 bits) | 31..0 slot
 */
#ifndef STARLING_CORE_OP_H
#define STARLING_CORE_OP_H

#include <stdint.h>

enum op_kind {
	OP_NONE = 0,
	OP_ACCEPT = 1,   /* slot: listener index */
	OP_RECV = 2,     /* slot: connection */
	OP_SEND = 3,     /* slot: connection */
	OP_CLOSE = 4,    /* slot: connection (already released; ignored) */
	OP_WAKE = 5,     /* MSG_RING from another worker: mailboxes have mail */
	OP_STOP = 6,     /* eventfd read: the main thread asks us to stop */
	OP_CANCEL = 7,   /* cancellation of a connection's receive */
	OP_VERIFY = 8,   /* eventfd read: password verdicts are waiting */
	OP_CONNECT = 9,  /* slot: connection we dialled (a link to another node) */
	OP_EXT = 10,     /* a completion for an extension of the loop (the cluster) */
	OP_JOURNAL = 11, /* slot: 0 a journal write, 1 its fsync (core/persist/journal.c) */
	OP_KINDS         /* the loop's table of handlers has this many entries */
};

#define OP_GEN_MASK 0xFFFFFFu

static inline uint64_t op_pack(enum op_kind kind, uint32_t slot, uint32_t gen)
{
	return (uint64_t)kind << 56 | (uint64_t)(gen & OP_GEN_MASK) << 32 | slot;
}

static inline enum op_kind op_kind(uint64_t ud)
{
	return (enum op_kind)(ud >> 56);
}

static inline uint32_t op_slot(uint64_t ud)
{
	return (uint32_t)ud;
}

static inline uint32_t op_gen(uint64_t ud)
{
	return (uint32_t)(ud >> 32) & OP_GEN_MASK;
}

#endif
