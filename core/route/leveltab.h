/*
 * leveltab.h — a hash table from (parent node, level) to child node, shared
 * by the two topic tries: the subscription index (subidx.c) and the
 * retained store (retain.c). Each trie keeps ONE table for the literal
 * children of all its nodes, so a node with 100k children costs no more per
 * lookup than one with two, and a node with none carries no table at all.
 *
 * The table never looks inside a node except through the caller's is()
 * test, so it serves both node types without a common header: each trie
 * keeps its own node layout (parent, tag, level bytes where they pack best)
 * and passes a static is() to leveltab_find(), which is inline so that the
 * test is inlined on the lookup path as well. Beside each pointer the table
 * stores the node's 32-bit hash tag, so a probe touches a node only when
 * the tag agrees; the caller keeps the tag in its node for
 * leveltab_delete().
 *
 * Also here: the allocation wrappers both tries use to count the bytes they
 * hold (mem_bytes, for tests and metrics).
 *
 * Owned by the trie that embeds it, hence by that trie's one worker thread.
 */
#ifndef STARLING_CORE_LEVELTAB_H
#define STARLING_CORE_LEVELTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct leveltab {
	void **slots;      /* nodes; NULL = empty */
	uint32_t *tags;    /* hash tag of slots[i]; same allocation as slots */
	uint32_t cap;      /* slots, a power of two, or 0 */
	uint32_t count;    /* nodes held */
	uint64_t seed;     /* per-table hash seed (see leveltab_hash) */
	size_t *mem_bytes; /* the owner's allocation counter */
};

/* Does node stand for the level p[0..len) under parent? */
typedef bool (*leveltab_is_fn)(const void *node, const void *parent, const uint8_t *p,
                               uint32_t len);

/* An empty table charging its memory to *mem_bytes. */
void leveltab_init(struct leveltab *t, size_t *mem_bytes, uint64_t seed);
/* Free the slots (not the nodes), uncounted: the owner is going away. */
void leveltab_fini(struct leveltab *t);

/* Make room for one more node (load factor <= 3/4). False when out of memory. */
bool leveltab_reserve(struct leveltab *t);
/* Add node with its tag; leveltab_reserve() must have succeeded first. */
void leveltab_insert(struct leveltab *t, void *node, uint32_t tag);
/* Remove node (present, with the tag it was inserted with); may shrink. */
void leveltab_delete(struct leveltab *t, const void *node, uint32_t tag);

/* malloc/realloc/free that keep *mem_bytes equal to the bytes held. */
void *leveltab_alloc(size_t *mem_bytes, size_t n);
void *leveltab_realloc(size_t *mem_bytes, void *p, size_t old_n, size_t n);
void leveltab_dealloc(size_t *mem_bytes, void *p, size_t n);

/* The murmur3 64-bit finaliser. */
static inline uint64_t leveltab_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/*
 * Hash of a level under a parent (the tag). The parent pointer and a
 * per-table seed go into the initial state, so the same level under
 * different parents lands in different slots, and a client cannot
 * precompute colliding levels without knowing the layout of our heap (a
 * mitigation, not a keyed MAC). Eight bytes per round: levels are often
 * UUIDs or serial numbers.
 */
static inline uint32_t leveltab_hash(const struct leveltab *t, const void *parent, const uint8_t *p,
                                     uint32_t len)
{
	uint64_t h = t->seed ^ leveltab_mix64((uint64_t)(uintptr_t)parent) ^
	             ((uint64_t)len * 0x9E3779B97F4A7C15ULL);
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ (w * 0x87c37b91114253d5ULL));
		h = ((h << 31) | (h >> 33)) * 0x4cf5ad432745937fULL;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;
		memcpy(&w, p, len);
		h ^= w * 0x87c37b91114253d5ULL;
	}
	return (uint32_t)(leveltab_mix64(h) >> 32);
}

/* The child of parent named by p[0..len), or NULL. */
static inline void *leveltab_find(const struct leveltab *t, const void *parent, const uint8_t *p,
                                  uint32_t len, leveltab_is_fn is)
{
	if (t->count == 0)
		return NULL;
	uint32_t tag = leveltab_hash(t, parent, p, len);
	uint32_t mask = t->cap - 1;
	for (uint32_t i = tag & mask;; i = (i + 1) & mask) {
		void *c = t->slots[i];
		if (!c)
			return NULL;
		if (t->tags[i] == tag && is(c, parent, p, len))
			return c;
	}
}

#endif
