/*
 * retain.c — the retained messages of one shard (see retain.h). Owned by
 * one worker; only its thread may call these functions, and fn passed to
 * retain_match() must not call back into the same store (asserted). Other
 * shards are reached by mailbox, never by calling in here.
 *
 * Layout: a trie over topic levels. Each node knows its parent, its first
 * child and its siblings (doubly linked, so a node leaves its parent in
 * O(1) even under 100k siblings), and holds at most one message. Literal
 * lookup of a child goes through ONE open-addressing table keyed by
 * (parent pointer, level bytes) for the whole store (leveltab.h, shared
 * with subidx.c). So a
 * filter level costs one hash probe when it is a literal, a walk of the
 * children when it is '+', and a walk of the subtree when it is '#': match
 * touches only the branches the filter can reach, never every topic.
 *
 * match needs no stack and no recursion: it goes down by the filter's
 * levels and comes back up by parent pointers, finding the filter level of
 * the parent by scanning back to the previous '/'. Expired messages met on
 * the way are dropped, and a node left empty is freed as the walk leaves it
 * for good (its subtree done), so expiry frees memory without a sweep.
 *
 * Invariants:
 *  - Outside retain_match, every node but the root holds a message or has a
 *    child; put and match prune what they empty.
 *  - count and bytes are the number and sum of size_bytes of the messages
 *    held; the store holds exactly one reference to each.
 *
 * Limits: topics and filters are MQTT strings (< 64 KiB, asserted), already
 * valid (topic names have no wildcards [MQTT-3.3.2-2]). A filter is plain:
 * the caller handles "$share/" (§4.8.2: no retained messages for a shared
 * subscription). The tree is as deep as the deepest retained topic.
 */
#include "route/retain.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "route/leveltab.h"
#include "topic.h"

/* Test-visible (declared again in tests/unit/retain_test.c). */
size_t retain_node_count(const struct retain *rs);
size_t retain_mem_bytes(const struct retain *rs);

#define LEVEL_ROOT UINT32_MAX       /* filter offset "selected the root" */
#define LEVEL_END  (UINT32_MAX - 1) /* filter offset "no level left" */

struct rnode {
	struct rnode *parent; /* NULL only for the root */
	struct rnode *first;  /* first child */
	struct rnode *next;   /* next sibling */
	struct rnode *prev;   /* previous sibling */
	struct msg *msg;      /* retained message of this topic, or NULL */
	uint32_t tag;         /* hash of (parent, level), kept for table deletion */
	uint16_t level_len;   /* bytes of level */
	uint8_t level[];
};

struct retain {
	struct rnode *root;    /* level "", never freed before retain_free */
	struct leveltab table; /* every node but the root, keyed by (parent, level) */
	size_t count;          /* messages held */
	size_t bytes;          /* sum of their size_bytes */
	size_t mem_bytes;      /* bytes of index structure requested from malloc */
	bool matching;         /* inside retain_match: no reentry */
};

/* ---- the child table (leveltab.h) -------------------------------------- */

static bool node_is(const void *node, const void *parent, const uint8_t *p, uint32_t len)
{
	const struct rnode *c = node;
	return (const void *)c->parent == parent && c->level_len == len &&
	       memcmp(c->level, p, len) == 0;
}

/* ---- nodes -------------------------------------------------------------- */

/* Never less than the struct: a short level lives in its tail padding. */
static size_t node_bytes(uint32_t level_len)
{
	size_t n = offsetof(struct rnode, level) + level_len;
	return n < sizeof(struct rnode) ? sizeof(struct rnode) : n;
}

static struct rnode *node_new(struct retain *rs, struct rnode *parent, const uint8_t *p,
                              uint32_t len)
{
	assert(len <= UINT16_MAX);
	struct rnode *n = leveltab_alloc(&rs->mem_bytes, node_bytes(len));
	if (!n)
		return NULL;
	memset(n, 0, offsetof(struct rnode, level));
	n->parent = parent;
	n->level_len = (uint16_t)len;
	if (len)
		memcpy(n->level, p, len);
	return n;
}

static struct rnode *child_add(struct retain *rs, struct rnode *p, struct mqtt_view l)
{
	if (!leveltab_reserve(&rs->table))
		return NULL;
	struct rnode *c = node_new(rs, p, l.ptr, l.len);
	if (!c)
		return NULL;
	c->tag = leveltab_hash(&rs->table, p, l.ptr, l.len);
	leveltab_insert(&rs->table, c, c->tag);
	c->next = p->first;
	if (p->first)
		p->first->prev = c;
	p->first = c;
	return c;
}

/* Free n if it holds nothing; the caller knows n is not needed any more. */
static void free_if_empty(struct retain *rs, struct rnode *n)
{
	if (n == rs->root || n->msg || n->first)
		return;
	if (n->prev)
		n->prev->next = n->next;
	else
		n->parent->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	leveltab_delete(&rs->table, n, n->tag);
	leveltab_dealloc(&rs->mem_bytes, n, node_bytes(n->level_len));
}

/* Free n and every ancestor it leaves empty. */
static void prune(struct retain *rs, struct rnode *n)
{
	while (n != rs->root && !n->msg && !n->first) {
		struct rnode *parent = n->parent;
		free_if_empty(rs, n);
		n = parent;
	}
}

static void drop_msg(struct retain *rs, struct rnode *n)
{
	struct msg *m = n->msg;
	rs->count--;
	rs->bytes -= m->size_bytes;
	n->msg = NULL;
	msg_unref(m);
}

/* ---- public API --------------------------------------------------------- */

struct retain *retain_new(void)
{
	struct retain *rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->mem_bytes = sizeof(*rs);
	leveltab_init(&rs->table, &rs->mem_bytes,
	              leveltab_mix64((uint64_t)(uintptr_t)rs ^ 0x52455441494eULL));
	rs->root = node_new(rs, NULL, NULL, 0);
	if (!rs->root) {
		free(rs);
		return NULL;
	}
	return rs;
}

void retain_free(struct retain *rs)
{
	if (!rs)
		return;
	/* Every node but the root is in the table: no tree walk needed. */
	for (uint32_t i = 0; i < rs->table.cap; i++) {
		struct rnode *n = rs->table.slots[i];
		if (!n)
			continue;
		if (n->msg)
			msg_unref(n->msg);
		free(n);
	}
	free(rs->root);
	leveltab_fini(&rs->table);
	free(rs);
}

int retain_put(struct retain *rs, struct msg *m)
{
	assert(!rs->matching);
	struct mqtt_view topic = m->pub.topic;
	assert(topic.len > 0 && topic.len <= UINT16_MAX);
	bool del = m->pub.payload.len == 0; /* [MQTT-3.3.1-6] [MQTT-3.3.1-7] */

	struct rnode *n = rs->root;
	struct mqtt_level_iter it;
	struct mqtt_view l;
	mqtt_level_iter_init(&it, topic);
	while (mqtt_level_iter_next(&it, &l)) {
		struct rnode *c = leveltab_find(&rs->table, n, l.ptr, l.len, node_is);
		if (!c && del)
			return 0; /* nothing retained there */
		if (!c)
			c = child_add(rs, n, l);
		if (!c) {
			prune(rs, n);
			return -1;
		}
		n = c;
	}
	/* In a cluster (ranks set) the later value by (wall clock, origin)
	 * wins on every node, whatever order replicas arrive in; a single node
	 * keeps the order of arrival, whatever its clock does. */
	if (n->msg && (n->msg->origin_rank | m->origin_rank) &&
	    (n->msg->wall_ms > m->wall_ms ||
	     (n->msg->wall_ms == m->wall_ms && n->msg->origin_rank > m->origin_rank)))
		return 0; /* a later value is held (a replica arrived out of order) */
	/* Persistence on: the node-wide stamp is the order recovery rebuilds,
	 * so the store keeps it too (two workers' writes to one topic may
	 * arrive in the other order). */
	if (n->msg && m->retain_stamp && n->msg->retain_stamp > m->retain_stamp &&
	    ((n->msg->origin_rank | m->origin_rank) == 0 ||
	     (n->msg->wall_ms == m->wall_ms && n->msg->origin_rank == m->origin_rank)))
		return 0;
	if (n->msg)
		drop_msg(rs, n);
	if (del) {
		prune(rs, n);
		return 0;
	}
	n->msg = msg_ref(m);
	rs->count++;
	rs->bytes += m->size_bytes;
	return 0;
}

/* Where the filter level starting at off ends ('/' or the end). */
static uint32_t level_end(struct mqtt_view f, uint32_t off)
{
	const uint8_t *slash = memchr(f.ptr + off, '/', f.len - off);
	return slash ? (uint32_t)(slash - f.ptr) : f.len;
}

static uint32_t level_next(struct mqtt_view f, uint32_t off)
{
	uint32_t e = level_end(f, off);
	return e == f.len ? LEVEL_END : e + 1;
}

/* The start of the level before the one at off (off > 0). */
static uint32_t level_prev(struct mqtt_view f, uint32_t off)
{
	uint32_t i = off - 1; /* the '/' before the level at off */
	while (i > 0 && f.ptr[i - 1] != '/')
		i--;
	return i;
}

static struct mqtt_view level_at(struct mqtt_view f, uint32_t off)
{
	return (struct mqtt_view){f.ptr + off, level_end(f, off) - off};
}

static bool is_wild(struct mqtt_view l, uint8_t c)
{
	return l.len == 1 && l.ptr[0] == c;
}

/* [MQTT-4.7.2-1]: wildcards at the first level skip '$' topics. */
static struct rnode *skip_dollar(const struct retain *rs, struct rnode *c)
{
	while (c && c->parent == rs->root && c->level_len > 0 && c->level[0] == '$')
		c = c->next;
	return c;
}

struct walk {
	struct retain *rs;
	uint64_t now_ms;
	retain_fn fn;
	void *ctx;
	size_t calls;
};

static void visit(struct walk *w, struct rnode *n)
{
	if (!n->msg)
		return;
	if (msg_expired(n->msg, w->now_ms)) {
		drop_msg(w->rs, n); /* the node is freed when the walk leaves it */
		return;
	}
	w->fn(w->ctx, n->msg);
	w->calls++;
}

/* Every message strictly below top ('#'), freeing emptied nodes post-order. */
static void visit_subtree(struct walk *w, struct rnode *top)
{
	struct rnode *x = skip_dollar(w->rs, top->first);
	while (x) {
		visit(w, x);
		if (x->first) {
			x = x->first;
			continue;
		}
		for (;;) {
			struct rnode *parent = x->parent;
			struct rnode *sib = skip_dollar(w->rs, x->next);
			free_if_empty(w->rs, x);
			if (sib) {
				x = sib;
				break;
			}
			if (parent == top) {
				x = NULL;
				break;
			}
			x = parent;
		}
	}
}

size_t retain_match(struct retain *rs, struct mqtt_view filter, uint64_t now_ms, retain_fn fn,
                    void *ctx)
{
	assert(!rs->matching);
	assert(filter.len > 0 && filter.len <= UINT16_MAX);
	rs->matching = true;
	struct walk w = {rs, now_ms, fn, ctx, 0};

	/* State: node c, selected by the filter level starting at cs. Going
	 * down consumes filter levels; going up leaves c for good. */
	struct rnode *c = rs->root;
	uint32_t cs = LEVEL_ROOT;
	bool down = true;
	for (;;) {
		if (down) {
			uint32_t ns = cs == LEVEL_ROOT ? 0 : level_next(filter, cs);
			if (ns == LEVEL_END) {
				visit(&w, c);
				down = false;
				continue;
			}
			struct mqtt_view l = level_at(filter, ns);
			if (is_wild(l, '#')) {
				/* "a/#" matches "a" too [§4.7.1.2]. */
				if (c != rs->root)
					visit(&w, c);
				visit_subtree(&w, c);
				down = false;
				continue;
			}
			struct rnode *child =
			    is_wild(l, '+') ? skip_dollar(rs, c->first)
			                    : leveltab_find(&rs->table, c, l.ptr, l.len, node_is);
			if (child) {
				c = child;
				cs = ns;
			} else {
				down = false;
			}
			continue;
		}
		if (c == rs->root)
			break;
		struct rnode *parent = c->parent;
		struct rnode *sib = NULL;
		if (is_wild(level_at(filter, cs), '+'))
			sib = skip_dollar(rs, c->next);
		free_if_empty(rs, c);
		if (sib) {
			c = sib;
			down = true;
			continue;
		}
		c = parent;
		cs = cs == 0 ? LEVEL_ROOT : level_prev(filter, cs);
	}
	rs->matching = false;
	return w.calls;
}

void retain_each(struct retain *rs, retain_fn fn, void *ctx)
{
	assert(!rs->matching);
	for (uint32_t i = 0; i < rs->table.cap; i++) {
		struct rnode *n = rs->table.slots[i];
		if (n && n->msg)
			fn(ctx, n->msg);
	}
}

size_t retain_count(const struct retain *rs)
{
	return rs->count;
}

size_t retain_bytes(const struct retain *rs)
{
	return rs->bytes;
}

/*
 * FNV-1a (32-bit) with a murmur3 finaliser: FNV alone leaves the low bits
 * that "% n" keeps poorly mixed for short, similar topics. No seed, so every
 * worker and every node of a cluster agrees; topic order within a shard is
 * decided by the seeded table hash above, not by this one.
 */
unsigned retain_shard_of(struct mqtt_view topic, unsigned n)
{
	assert(n > 0);
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < topic.len; i++) {
		h ^= topic.ptr[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h % n;
}

size_t retain_node_count(const struct retain *rs)
{
	return rs->table.count + 1;
}

size_t retain_mem_bytes(const struct retain *rs)
{
	return rs->mem_bytes;
}
