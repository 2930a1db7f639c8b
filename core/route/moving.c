/*
 * moving.c — sessions that just moved, reached through their old worker
 * (see moving.h).
 */
#include "route/moving.h"

#include <stdlib.h>

#include "session/sessions.h"

_Static_assert(MOVING_MS < SESS_MOVED_MS, "the old worker must pass mail on for longer");

static uint32_t slot_of(const struct moving *t, struct sess_id id)
{
	uint64_t h =
	    ((uint64_t)id.worker << 48 ^ (uint64_t)id.gen << 24 ^ id.slot) * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(h >> 32) & (t->cap - 1);
}

static struct moving_entry *find(const struct moving *t, struct sess_id id)
{
	for (uint32_t at = slot_of(t, id);; at = (at + 1) & (t->cap - 1)) {
		struct moving_entry *x = &t->e[at];
		if (x->to.gen == 0 || sess_id_eq(x->to, id))
			return x;
	}
}

/* A table of cap slots holding the entries of t that last past now. */
static bool rebuild(struct moving *t, uint32_t cap, uint64_t now_ms)
{
	struct moving n = {calloc(cap, sizeof(struct moving_entry)), cap, 0};
	if (!n.e)
		return false;
	for (uint32_t i = 0; i < t->cap; i++) {
		const struct moving_entry *x = &t->e[i];
		if (x->to.gen != 0 && x->until_ms > now_ms) {
			*find(&n, x->to) = *x;
			n.len++;
		}
	}
	free(t->e);
	*t = n;
	return true;
}

bool moving_add(struct moving *t, struct sess_id to, struct sess_id was, uint64_t until_ms,
                uint32_t hops, uint64_t now_ms)
{
	if (until_ms <= now_ms || to.gen == 0)
		return true; /* over already */
	if ((t->len + 1) * 2 > t->cap) {
		/* Drop the expired first; grow when that is not enough. */
		uint32_t live = 0;
		for (uint32_t i = 0; i < t->cap; i++)
			live += t->e[i].to.gen != 0 && t->e[i].until_ms > now_ms;
		uint32_t cap = t->cap ? t->cap : 64;
		while ((live + 1) * 2 > cap)
			cap *= 2;
		if (live >= MOVING_MAX || !rebuild(t, cap, now_ms))
			return false;
	}
	struct moving_entry *x = find(t, to);
	if (x->to.gen == 0)
		t->len++;
	*x = (struct moving_entry){to, was, until_ms, hops};
	return true;
}

const struct moving_entry *moving_via(const struct moving *t, struct sess_id to, uint64_t now_ms)
{
	if (t->len == 0)
		return NULL;
	const struct moving_entry *x = find(t, to);
	return x->to.gen != 0 && x->until_ms > now_ms ? x : NULL;
}

void moving_fini(struct moving *t)
{
	free(t->e);
	*t = (struct moving){0};
}
