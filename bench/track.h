/*
 * track.h — per (sink, publisher) sequence tracking on the subscriber side:
 * tells a new message from a duplicate and an in-order one from a late one.
 *
 * A sink is a subscribing client, or a $share group (all its members in one
 * process share a tracker, so a message handed to two members is caught as
 * a duplicate). The table is fixed-size open addressing: when it is full a
 * delivery is counted as untracked instead of growing without bound.
 * Owner: one bench worker; not thread-safe.
 */
#ifndef STARLING_BENCH_TRACK_H
#define STARLING_BENCH_TRACK_H

#include <stdint.h>

#define TRACK_WINDOW_BITS 256u /* how far back a late message can be placed */

enum track_result {
	TRACK_NEW = 0,    /* first time seen, in order (maybe after a gap) */
	TRACK_LATE = 1,   /* first time seen, but after a higher sequence */
	TRACK_DUP = 2,    /* seen before */
	TRACK_NOROOM = 3, /* the table is full: not tracked */
};

struct track_entry {
	uint32_t sink;                         /* sink id + 1; 0 marks a free entry */
	uint32_t pub;                          /* publisher id */
	uint64_t next;                         /* highest sequence seen + 1; 0 when nothing seen */
	uint64_t seen[TRACK_WINDOW_BITS / 64]; /* bit i: sequence next-1-i seen */
};

struct track {
	struct track_entry *entries;
	uint32_t mask; /* capacity - 1, capacity a power of two */
	uint32_t used; /* entries in use */
};

/* capacity_min entries at least; returns -ENOMEM on failure. */
int track_init(struct track *t, uint32_t capacity_min);
void track_free(struct track *t);
enum track_result track_see(struct track *t, uint32_t sink, uint32_t pub, uint64_t seq);

#endif
