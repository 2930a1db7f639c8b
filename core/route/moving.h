/*
 * moving.h — sessions that just moved to another worker, reached through
 * their old worker for a while (mqtt/takeover.c, DESIGN.md "Sessions and
 * client ids").
 *
 * When a session moves (a takeover), each worker's index entries switch
 * from the old id to the new one as the move's delta arrives. Mail this
 * worker sent to the old id before that is passed on by the old worker
 * (sessions.h: SESS_MOVED_MS); mail sent straight to the new id after it
 * would overtake it, and one publisher's messages would reach the
 * subscriber out of order [MQTT-4.6.0-5]. So for MOVING_MS after the move
 * this worker still sends to the old id: the old worker's mailbox from here
 * is FIFO, and it passes everything on in that order. The old worker itself
 * and a move within one worker need no entry (their mail to the new id
 * already goes behind the rest). A session that moves again while mail to
 * it still goes the long way keeps going that way: the new entry takes the
 * old one's path and end (route.c: moved), or a message sent straight to
 * the newest id overtakes one still travelling the chain. Each hop of a
 * chain is a mailbox trip, so a chain stops growing at MOVING_HOPS_MAX (a
 * client reconnecting many times a second): the next move starts a new
 * one, and a message of the old chain may then be overtaken.
 *
 * A hash table of (new id -> old id, until), open addressing, rebuilt
 * without the expired entries when it fills; at most MOVING_MAX entries
 * (a reconnect storm beyond that goes straight, counted by the caller).
 * Pure; the worker's thread only.
 */
#ifndef STARLING_CORE_MOVING_H
#define STARLING_CORE_MOVING_H

#include <stdbool.h>
#include <stdint.h>

#include "session/sess_id.h"

#define MOVING_MS       5000 /* < SESS_MOVED_MS: the old worker passes mail on longer */
#define MOVING_MAX      (1u << 20)
#define MOVING_HOPS_MAX 8 /* a chain longer than this starts again (see below) */

struct moving_entry {
	struct sess_id to;  /* the new id (to.gen == 0: an empty slot) */
	struct sess_id was; /* the old one: where mail goes meanwhile */
	uint64_t until_ms;
	uint32_t hops; /* moves mail to `was` passes through before it reaches `to` */
};

struct moving {
	struct moving_entry *e;
	uint32_t cap; /* a power of two, or 0 */
	uint32_t len; /* slots in use, expired ones included */
};

/* Mail for `to` goes to `was` until until_ms. false when full or out of
 * memory (it then goes straight to `to`). */
bool moving_add(struct moving *t, struct sess_id to, struct sess_id was, uint64_t until_ms,
                uint32_t hops, uint64_t now_ms);
/* Where mail for `to` goes now: the entry's old id, end and hops while it
 * lasts, else NULL. */
const struct moving_entry *moving_via(const struct moving *t, struct sess_id to, uint64_t now_ms);
void moving_fini(struct moving *t);

#endif
