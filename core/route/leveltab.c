/*
 * leveltab.c — the (parent, level) -> child table of the topic tries (see
 * leveltab.h): open addressing with linear probing, a 32-bit tag per slot,
 * backward-shift deletion. Called only by the thread that owns the trie
 * embedding the table.
 *
 * Invariants:
 *  - cap is 0 or a power of two >= TABLE_MIN_SLOTS, and count <= 3/4 cap
 *    after every leveltab_reserve().
 *  - No tombstones: every node is reachable from its home slot (tag & mask)
 *    without crossing an empty slot, so churn cannot degrade probes.
 *  - slots and tags are one allocation of table_bytes(cap), counted in
 *    *mem_bytes; an empty table holds no memory.
 */
#include "route/leveltab.h"

#include <assert.h>
#include <stdlib.h>

#define TABLE_MIN_SLOTS 64u

/* ---- memory accounting -------------------------------------------------- */

void *leveltab_alloc(size_t *mem_bytes, size_t n)
{
	void *p = malloc(n);
	if (p)
		*mem_bytes += n;
	return p;
}

void *leveltab_realloc(size_t *mem_bytes, void *p, size_t old_n, size_t n)
{
	void *q = realloc(p, n);
	if (q)
		*mem_bytes = *mem_bytes - old_n + n;
	return q;
}

void leveltab_dealloc(size_t *mem_bytes, void *p, size_t n)
{
	if (!p)
		return;
	*mem_bytes -= n;
	free(p);
}

/* ---- the table ---------------------------------------------------------- */

static size_t table_bytes(uint32_t cap)
{
	return (size_t)cap * (sizeof(void *) + sizeof(uint32_t));
}

void leveltab_init(struct leveltab *t, size_t *mem_bytes, uint64_t seed)
{
	*t = (struct leveltab){.seed = seed, .mem_bytes = mem_bytes};
}

void leveltab_fini(struct leveltab *t)
{
	free(t->slots);
	t->slots = NULL;
	t->tags = NULL;
	t->cap = 0;
	t->count = 0;
}

/* Rebuild the table with cap slots (cap 0 frees it). False when out of memory. */
static bool resize(struct leveltab *t, uint32_t cap)
{
	void **slots = NULL;
	uint32_t *tags = NULL;
	if (cap) {
		slots = leveltab_alloc(t->mem_bytes, table_bytes(cap));
		if (!slots)
			return false;
		memset(slots, 0, table_bytes(cap));
		tags = (uint32_t *)(slots + cap);
		uint32_t mask = cap - 1;
		for (uint32_t j = 0; j < t->cap; j++) {
			if (!t->slots[j])
				continue;
			uint32_t i = t->tags[j] & mask;
			while (slots[i])
				i = (i + 1) & mask;
			slots[i] = t->slots[j];
			tags[i] = t->tags[j];
		}
	}
	leveltab_dealloc(t->mem_bytes, t->slots, table_bytes(t->cap));
	t->slots = slots;
	t->tags = tags;
	t->cap = cap;
	return true;
}

bool leveltab_reserve(struct leveltab *t)
{
	if ((uint64_t)(t->count + 1) * 4 <= (uint64_t)t->cap * 3)
		return true;
	uint32_t cap = t->cap ? t->cap * 2 : TABLE_MIN_SLOTS;
	assert(cap > t->cap); /* 2^31 slots is far past any memory limit */
	return resize(t, cap);
}

void leveltab_insert(struct leveltab *t, void *node, uint32_t tag)
{
	assert((uint64_t)(t->count + 1) * 4 <= (uint64_t)t->cap * 3);
	uint32_t mask = t->cap - 1;
	uint32_t i = tag & mask;
	while (t->slots[i])
		i = (i + 1) & mask;
	t->slots[i] = node;
	t->tags[i] = tag;
	t->count++;
}

void leveltab_delete(struct leveltab *t, const void *node, uint32_t tag)
{
	uint32_t mask = t->cap - 1;
	uint32_t i = tag & mask;
	while (t->slots[i] != node) {
		assert(t->slots[i]);
		i = (i + 1) & mask;
	}
	for (uint32_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
		uint32_t home = t->tags[j] & mask;
		/* Move j into the hole at i unless its home lies in (i, j]. */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		t->slots[i] = t->slots[j];
		t->tags[i] = t->tags[j];
		i = j;
	}
	t->slots[i] = NULL;
	t->count--;
	/* Give memory back after churn; a failed shrink keeps the big table. */
	if (t->count == 0)
		resize(t, 0);
	else if (t->cap > TABLE_MIN_SLOTS && t->count < t->cap / 8)
		resize(t, t->cap / 2);
}
