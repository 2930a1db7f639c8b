/*
 * track.c — loss, duplicate and reorder detection per (sink, publisher).
 *
 * MQTT keeps each publisher's messages in order per subscription, so the
 * common case is seq == next. A sliding bitmap of TRACK_WINDOW_BITS behind
 * the highest sequence seen catches duplicates and places late messages; a
 * message older than the window is counted as late (it cannot be told from
 * a duplicate, and on a correct broker neither happens without reconnects).
 * Loss is not decided here: it is expected minus distinct deliveries.
 */
#include "track.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define WORDS              (TRACK_WINDOW_BITS / 64)
#define TRACK_CAPACITY_MAX (1u << 26)

int track_init(struct track *t, uint32_t capacity_min)
{
	uint32_t cap = 64;
	/* keep the load factor under one half so probes stay short */
	while (cap < capacity_min * 2u && cap < TRACK_CAPACITY_MAX)
		cap <<= 1;
	t->entries = calloc(cap, sizeof(*t->entries));
	if (!t->entries)
		return -ENOMEM;
	t->mask = cap - 1;
	t->used = 0;
	return 0;
}

void track_free(struct track *t)
{
	free(t->entries);
	t->entries = NULL;
}

static uint32_t hash_key(uint32_t sink, uint32_t pub)
{
	uint64_t k = ((uint64_t)sink << 32) | pub;
	k ^= k >> 33;
	k *= UINT64_C(0xff51afd7ed558ccd);
	k ^= k >> 33;
	return (uint32_t)k;
}

static struct track_entry *lookup(struct track *t, uint32_t sink, uint32_t pub)
{
	uint32_t i = hash_key(sink, pub) & t->mask;
	for (uint32_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
		struct track_entry *e = &t->entries[i];
		if (e->sink == sink + 1 && e->pub == pub)
			return e;
		if (e->sink == 0) {
			/* stop at 3/4 full: the tracker is a bounded resource */
			if (t->used >= (t->mask + 1) / 4 * 3)
				return NULL;
			e->sink = sink + 1;
			e->pub = pub;
			t->used++;
			return e;
		}
	}
	return NULL;
}

/* Shift the window left by n sequences (n >= 1). */
static void window_shift(uint64_t *seen, uint64_t n)
{
	if (n >= TRACK_WINDOW_BITS) {
		memset(seen, 0, WORDS * sizeof(*seen));
		return;
	}
	unsigned words = (unsigned)(n / 64), bits = (unsigned)(n % 64);
	for (int w = WORDS - 1; w >= 0; w--) {
		uint64_t v = 0;
		int from = w - (int)words;
		if (from >= 0) {
			v = seen[from] << bits;
			if (bits && from > 0)
				v |= seen[from - 1] >> (64 - bits);
		}
		seen[w] = v;
	}
}

enum track_result track_see(struct track *t, uint32_t sink, uint32_t pub, uint64_t seq)
{
	struct track_entry *e = lookup(t, sink, pub);
	if (!e)
		return TRACK_NOROOM;
	if (seq >= e->next) {
		if (e->next > 0)
			window_shift(e->seen, seq - e->next + 1);
		e->seen[0] |= 1;
		e->next = seq + 1;
		return TRACK_NEW;
	}
	uint64_t back = e->next - 1 - seq;
	if (back >= TRACK_WINDOW_BITS)
		return TRACK_LATE;
	uint64_t bit = UINT64_C(1) << (back % 64);
	if (e->seen[back / 64] & bit)
		return TRACK_DUP;
	e->seen[back / 64] |= bit;
	return TRACK_LATE;
}
