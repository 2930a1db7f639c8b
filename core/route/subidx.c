/*
 * subidx.c — the subscription index (see subidx.h): a trie over topic
 * levels. Owned by one worker; only that worker's thread may call any of
 * these functions, and fn passed to subidx_match() must not call back into
 * the same index (checked by an assertion).
 *
 * Layout, chosen for the publish path:
 *  - A node per filter level. The wildcard children '+' and '#' hang off
 *    their parent by direct pointer, so match never hashes a wildcard.
 *    Literal children of every node live in ONE open-addressing table keyed
 *    by (parent pointer, level bytes) (leveltab.h, shared with retain.c): a
 *    node with 100k children costs no more per lookup than one with two,
 *    and a node with none carries no empty child table. The table stores a
 *    32-bit hash tag beside each pointer so a probe touches a node only
 *    when the tag agrees.
 *  - Non-shared subscriptions of a node are a packed array of 16-byte
 *    entries (sub_id, QoS, no-local and RAP share one word). Past
 *    SUBS_INDEX_MIN entries a per-node position index (u32 open addressing
 *    keyed by slot+worker) keeps subscribe/unsubscribe O(1) when thousands of
 *    sessions share one filter.
 *  - Shared groups [§4.8.2] are a short list per node; members keep their
 *    order (removal shifts) so round-robin stays fair across removals.
 *  - match walks the trie depth-first with an explicit stack owned by the
 *    index and sized on add for the deepest node ever created, so match
 *    never allocates and never recurses.
 *
 * Invariants:
 *  - Every node but the root has at least one subscription, group or child;
 *    remove prunes upward, so memory follows the live subscriptions.
 *  - node->kids counts table children plus the '+' and '#' children.
 *  - A session (slot, worker) appears at most once per node array and at
 *    most once per group.
 *  - Identity on add is (slot, worker): a new generation replaces the old
 *    entry [MQTT-3.8.4-3]. Identity on remove is the full sess_id, so a late
 *    cleanup for a dead generation cannot drop its successor's subscription.
 *
 * Limits: filters and levels are MQTT strings (< 64 KiB, asserted), already
 * checked by mqtt_topic_filter_check(); sub_id fits 28 bits (§3.8.2.1.2).
 * The trie depth is bounded by the longest filter; match's stack by that.
 */
#include "route/subidx.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "route/leveltab.h"
#include "topic.h"

/* Test-visible (declared again in tests/unit/subidx_test.c). */
size_t subidx_node_count(const struct subidx *ix);
size_t subidx_mem_bytes(const struct subidx *ix);

#define SUB_ID_MAX     0x0FFFFFFFu /* 268,435,455: a Variable Byte Integer */
#define SUBS_INDEX_MIN 16u         /* entries before a node gets a position index */

/* One subscriber, packed: 16 bytes instead of sizeof(struct sub_entry). */
struct pentry {
	uint32_t slot;
	uint32_t gen;
	uint32_t idq; /* sub_id | qos << 28 | no_local << 30 | rap << 31 */
	uint16_t worker;
	bool journaled; /* in the padding: still 16 bytes */
};

_Static_assert(sizeof(struct pentry) == 16, "an index entry is 16 bytes");

/* The non-shared subscriptions of one node. */
struct subs {
	uint32_t n;         /* entries in e[] */
	uint32_t cap;       /* entries allocated */
	uint32_t *index;    /* position + 1 per slot, 0 = empty; NULL below SUBS_INDEX_MIN */
	uint32_t index_cap; /* slots of index, a power of two, >= 2 * n */
	uint32_t remote;    /* of n, entries naming a peer node (SESS_WORKER_NODE) */
	struct pentry e[];
};

/* One shared group "$share/{name}/{filter}" at its filter's node. */
struct group {
	struct group *next; /* next group of the same node */
	struct pentry *m;   /* members in subscription order */
	uint32_t n;         /* members */
	uint32_t cap;       /* members allocated */
	uint32_t turn;      /* member that gets the next message, < n */
	uint32_t remote;    /* of n, members naming a peer node (SESS_WORKER_NODE) */
	uint16_t name_len;  /* bytes of name */
	uint8_t name[];
};

struct node {
	struct node *parent;  /* NULL only for the root */
	struct node *plus;    /* '+' child */
	struct node *hash;    /* '#' child; never has children */
	struct subs *subs;    /* non-shared subscriptions, NULL when none */
	struct group *groups; /* shared groups, NULL when none */
	uint32_t kids;        /* children: in the table, plus '+' and '#' */
	uint32_t tag;         /* hash of (parent, level), kept for table deletion */
	uint16_t level_len;   /* bytes of level */
	uint8_t level[];
};

/* A pending visit of match: a node and the topic levels after it. */
struct frame {
	struct node *n;
	struct mqtt_level_iter it;
};

struct subidx {
	struct node *root;     /* level "", never freed before subidx_free */
	struct leveltab table; /* literal children of every node, keyed by (parent, level) */
	struct frame *stack;   /* match's DFS stack */
	uint32_t stack_cap;    /* frames; >= deepest node depth + 2 */
	size_t sub_count;      /* subscriptions, a shared member counting once */
	size_t group_count;    /* shared groups */
	size_t node_count;     /* nodes including the root */
	size_t mem_bytes;      /* bytes requested from malloc, for tests and metrics */
	bool matching;         /* inside subidx_match: no reentry */
	uint32_t match_lists;  /* lists the last match reported from (subidx_match_lists) */
};

/* ---- the child table (leveltab.h) -------------------------------------- */

static bool node_is(const void *node, const void *parent, const uint8_t *p, uint32_t len)
{
	const struct node *c = node;
	return (const void *)c->parent == parent && c->level_len == len &&
	       memcmp(c->level, p, len) == 0;
}

/* ---- nodes -------------------------------------------------------------- */

/* Never less than the struct: a short level lives in its tail padding. */
static size_t node_bytes(uint32_t level_len)
{
	size_t n = offsetof(struct node, level) + level_len;
	return n < sizeof(struct node) ? sizeof(struct node) : n;
}

static struct node *node_new(struct subidx *ix, struct node *parent, const uint8_t *p, uint32_t len)
{
	assert(len <= UINT16_MAX);
	struct node *n = leveltab_alloc(&ix->mem_bytes, node_bytes(len));
	if (!n)
		return NULL;
	memset(n, 0, offsetof(struct node, level));
	n->parent = parent;
	n->level_len = (uint16_t)len;
	if (len)
		memcpy(n->level, p, len);
	ix->node_count++;
	return n;
}

static bool is_plus(struct mqtt_view l)
{
	return l.len == 1 && l.ptr[0] == '+';
}

static bool is_hash(struct mqtt_view l)
{
	return l.len == 1 && l.ptr[0] == '#';
}

static struct node *child_find(const struct subidx *ix, const struct node *n, struct mqtt_view l)
{
	if (is_plus(l))
		return n->plus;
	if (is_hash(l))
		return n->hash;
	return leveltab_find(&ix->table, n, l.ptr, l.len, node_is);
}

static struct node *child_add(struct subidx *ix, struct node *n, struct mqtt_view l)
{
	bool wild = is_plus(l) || is_hash(l);
	if (!wild && !leveltab_reserve(&ix->table))
		return NULL;
	struct node *c = node_new(ix, n, l.ptr, l.len);
	if (!c)
		return NULL;
	if (is_plus(l)) {
		n->plus = c;
	} else if (is_hash(l)) {
		n->hash = c;
	} else {
		c->tag = leveltab_hash(&ix->table, n, l.ptr, l.len);
		leveltab_insert(&ix->table, c, c->tag);
	}
	n->kids++;
	return c;
}

static bool node_empty(const struct node *n)
{
	return n->kids == 0 && !n->subs && !n->groups;
}

/* Free n and every ancestor left empty, stopping at the root. */
static void prune(struct subidx *ix, struct node *n)
{
	while (n != ix->root && node_empty(n)) {
		struct node *parent = n->parent;
		if (parent->plus == n)
			parent->plus = NULL;
		else if (parent->hash == n)
			parent->hash = NULL;
		else
			leveltab_delete(&ix->table, n, n->tag);
		parent->kids--;
		leveltab_dealloc(&ix->mem_bytes, n, node_bytes(n->level_len));
		ix->node_count--;
		n = parent;
	}
}

/* ---- entries ------------------------------------------------------------ */

static struct pentry pack(const struct sub_entry *e)
{
	assert(e->opts.qos <= 2);
	assert(e->opts.sub_id <= SUB_ID_MAX);
	struct pentry p = {
	    .slot = e->who.slot,
	    .gen = e->who.gen,
	    .idq = e->opts.sub_id | (uint32_t)e->opts.qos << 28 | (uint32_t)e->opts.no_local << 30 |
	           (uint32_t)e->opts.rap << 31,
	    .worker = e->who.worker,
	    .journaled = e->opts.journaled,
	};
	return p;
}

static struct sub_entry unpack(const struct pentry *p)
{
	struct sub_entry e = {
	    .who = {.slot = p->slot, .gen = p->gen, .worker = p->worker},
	    .opts =
	        {
	            .sub_id = p->idq & SUB_ID_MAX,
	            .qos = (uint8_t)((p->idq >> 28) & 3),
	            .no_local = (p->idq >> 30) & 1,
	            .rap = (p->idq >> 31) & 1,
	            .journaled = p->journaled,
	        },
	};
	return e;
}

static bool same_session(const struct pentry *p, struct sess_id who)
{
	return p->slot == who.slot && p->worker == who.worker;
}

static uint32_t session_hash(uint32_t slot, uint16_t worker)
{
	return (uint32_t)(leveltab_mix64((uint64_t)slot << 16 | worker) >> 32);
}

static size_t subs_bytes(uint32_t cap)
{
	return sizeof(struct subs) + (size_t)cap * sizeof(struct pentry);
}

/* Slot of the index holding position pos + 1 of entry e, or an empty slot. */
static uint32_t index_slot(const struct subs *s, uint32_t slot, uint16_t worker, uint32_t *pos)
{
	uint32_t mask = s->index_cap - 1;
	for (uint32_t i = session_hash(slot, worker) & mask;; i = (i + 1) & mask) {
		uint32_t v = s->index[i];
		if (v == 0 || (s->e[v - 1].slot == slot && s->e[v - 1].worker == worker)) {
			*pos = v;
			return i;
		}
	}
}

static void index_put(struct subs *s, uint32_t at)
{
	uint32_t v;
	uint32_t i = index_slot(s, s->e[at].slot, s->e[at].worker, &v);
	s->index[i] = at + 1;
}

/* Build (or rebuild at a new size) the position index. */
static bool index_build(struct subidx *ix, struct subs *s, uint32_t cap)
{
	uint32_t *idx = leveltab_alloc(&ix->mem_bytes, (size_t)cap * sizeof(uint32_t));
	if (!idx)
		return false;
	memset(idx, 0, (size_t)cap * sizeof(uint32_t));
	leveltab_dealloc(&ix->mem_bytes, s->index, (size_t)s->index_cap * sizeof(uint32_t));
	s->index = idx;
	s->index_cap = cap;
	for (uint32_t k = 0; k < s->n; k++)
		index_put(s, k);
	return true;
}

static void index_drop(struct subidx *ix, struct subs *s)
{
	leveltab_dealloc(&ix->mem_bytes, s->index, (size_t)s->index_cap * sizeof(uint32_t));
	s->index = NULL;
	s->index_cap = 0;
}

/* Position of who's entry in s, or -1. */
static long subs_find(const struct subs *s, struct sess_id who)
{
	if (s->index) {
		uint32_t v;
		index_slot(s, who.slot, who.worker, &v);
		return (long)v - 1;
	}
	for (uint32_t k = 0; k < s->n; k++)
		if (same_session(&s->e[k], who))
			return k;
	return -1;
}

static int subs_add(struct subidx *ix, struct node *n, const struct pentry *p)
{
	struct subs *s = n->subs;
	if (s) {
		long at = subs_find(s, (struct sess_id){.slot = p->slot, .worker = p->worker});
		if (at >= 0) {
			s->e[at] = *p;
			return 0;
		}
	}
	uint32_t count = s ? s->n : 0;
	uint32_t cap = s ? s->cap : 0;
	if (count == cap) {
		uint32_t ncap = cap ? cap * 2 : 1;
		struct subs *g =
		    leveltab_realloc(&ix->mem_bytes, s, s ? subs_bytes(cap) : 0, subs_bytes(ncap));
		if (!g)
			return -1;
		if (!s) {
			g->n = 0;
			g->index = NULL;
			g->index_cap = 0;
			g->remote = 0;
		}
		g->cap = ncap;
		n->subs = s = g;
	}
	/* Grow the index before appending so failure leaves nothing to undo. */
	if (s->n + 1 >= SUBS_INDEX_MIN && (uint64_t)(s->n + 1) * 2 > s->index_cap) {
		uint32_t icap = s->index_cap ? s->index_cap * 2 : 2 * SUBS_INDEX_MIN;
		if (!index_build(ix, s, icap))
			return -1;
	}
	s->e[s->n] = *p;
	if (s->index)
		index_put(s, s->n);
	s->n++;
	s->remote += p->worker == SESS_WORKER_NODE;
	return 1;
}

/* Remove the index slot at i with backward shift. */
static void index_delete(struct subs *s, uint32_t i)
{
	uint32_t mask = s->index_cap - 1;
	for (uint32_t j = (i + 1) & mask; s->index[j]; j = (j + 1) & mask) {
		const struct pentry *q = &s->e[s->index[j] - 1];
		uint32_t home = session_hash(q->slot, q->worker) & mask;
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		s->index[i] = s->index[j];
		i = j;
	}
	s->index[i] = 0;
}

static bool subs_remove(struct subidx *ix, struct node *n, struct sess_id who)
{
	struct subs *s = n->subs;
	if (!s)
		return false;
	long at = subs_find(s, who);
	if (at < 0 || s->e[at].gen != who.gen)
		return false;
	uint32_t last = s->n - 1;
	s->remote -= s->e[at].worker == SESS_WORKER_NODE;
	if (s->index) {
		uint32_t v;
		index_delete(s, index_slot(s, who.slot, who.worker, &v));
		if ((uint32_t)at != last) {
			/* The last entry moves into the hole: repoint its slot. */
			uint32_t i = index_slot(s, s->e[last].slot, s->e[last].worker, &v);
			s->index[i] = (uint32_t)at + 1;
		}
	}
	s->e[at] = s->e[last];
	s->n--;
	if (s->n == 0) {
		index_drop(ix, s);
		leveltab_dealloc(&ix->mem_bytes, s, subs_bytes(s->cap));
		n->subs = NULL;
		return true;
	}
	if (s->index && s->n < SUBS_INDEX_MIN / 2)
		index_drop(ix, s);
	else if (s->index && s->index_cap > 2 * SUBS_INDEX_MIN && s->n * 8 < s->index_cap)
		index_build(ix, s, s->index_cap / 2); /* failure keeps the larger one */
	if (s->n * 4 <= s->cap) {
		struct subs *g =
		    leveltab_realloc(&ix->mem_bytes, s, subs_bytes(s->cap), subs_bytes(s->cap / 2));
		if (g) {
			g->cap /= 2;
			n->subs = g;
		}
	}
	return true;
}

/* ---- shared groups ------------------------------------------------------ */

static size_t group_bytes(uint32_t name_len)
{
	size_t n = offsetof(struct group, name) + name_len;
	return n < sizeof(struct group) ? sizeof(struct group) : n;
}

static struct group *group_find(const struct node *n, struct mqtt_view name)
{
	for (struct group *g = n->groups; g; g = g->next)
		if (g->name_len == name.len && memcmp(g->name, name.ptr, name.len) == 0)
			return g;
	return NULL;
}

static void group_unlink_free(struct subidx *ix, struct node *n, struct group *g)
{
	struct group **pp = &n->groups;
	while (*pp != g)
		pp = &(*pp)->next;
	*pp = g->next;
	leveltab_dealloc(&ix->mem_bytes, g->m, (size_t)g->cap * sizeof(struct pentry));
	leveltab_dealloc(&ix->mem_bytes, g, group_bytes(g->name_len));
	ix->group_count--;
}

static int group_add(struct subidx *ix, struct node *n, struct mqtt_view name,
                     const struct pentry *p)
{
	assert(name.len > 0 && name.len <= UINT16_MAX);
	struct group *g = group_find(n, name);
	bool fresh = !g;
	if (g) {
		for (uint32_t k = 0; k < g->n; k++) {
			if (g->m[k].slot == p->slot && g->m[k].worker == p->worker) {
				g->m[k] = *p;
				return 0;
			}
		}
	} else {
		g = leveltab_alloc(&ix->mem_bytes, group_bytes(name.len));
		if (!g)
			return -1;
		memset(g, 0, offsetof(struct group, name));
		g->name_len = (uint16_t)name.len;
		memcpy(g->name, name.ptr, name.len);
		g->next = n->groups;
		n->groups = g;
		ix->group_count++;
	}
	if (g->n == g->cap) {
		uint32_t ncap = g->cap ? g->cap * 2 : 1;
		struct pentry *m = leveltab_realloc(
		    &ix->mem_bytes, g->m, (size_t)g->cap * sizeof(*m), (size_t)ncap * sizeof(*m));
		if (!m) {
			if (fresh)
				group_unlink_free(ix, n, g);
			return -1;
		}
		g->m = m;
		g->cap = ncap;
	}
	g->m[g->n++] = *p;
	g->remote += p->worker == SESS_WORKER_NODE;
	return 1;
}

static bool group_remove(struct subidx *ix, struct node *n, struct mqtt_view name,
                         struct sess_id who)
{
	struct group *g = group_find(n, name);
	if (!g)
		return false;
	uint32_t k = 0;
	while (k < g->n && !(same_session(&g->m[k], who) && g->m[k].gen == who.gen))
		k++;
	if (k == g->n)
		return false;
	g->remote -= g->m[k].worker == SESS_WORKER_NODE;
	/* Shift, not swap: members keep their order so each still gets one
	 * turn per round; the member after the removed one inherits its turn. */
	memmove(&g->m[k], &g->m[k + 1], (size_t)(g->n - k - 1) * sizeof(g->m[0]));
	g->n--;
	if (k < g->turn)
		g->turn--;
	if (g->turn >= g->n)
		g->turn = 0;
	if (g->n == 0) {
		group_unlink_free(ix, n, g);
	} else if (g->n * 4 <= g->cap) {
		struct pentry *m =
		    leveltab_realloc(&ix->mem_bytes, g->m, (size_t)g->cap * sizeof(*m),
		                     (size_t)(g->cap / 2) * sizeof(*m));
		if (m) {
			g->m = m;
			g->cap /= 2;
		}
	}
	return true;
}

/* ---- public API --------------------------------------------------------- */

struct subidx *subidx_new(void)
{
	struct subidx *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return NULL;
	ix->mem_bytes = sizeof(*ix);
	leveltab_init(&ix->table, &ix->mem_bytes,
	              leveltab_mix64((uint64_t)(uintptr_t)ix ^ 0x5354524c494e47ULL));
	ix->root = node_new(ix, NULL, NULL, 0);
	ix->stack_cap = 8;
	ix->stack = leveltab_alloc(&ix->mem_bytes, ix->stack_cap * sizeof(struct frame));
	if (!ix->root || !ix->stack) {
		free(ix->root);
		free(ix->stack);
		free(ix);
		return NULL;
	}
	return ix;
}

/* Free a node with everything stored at it (not its children). */
static void node_free_all(struct node *n)
{
	if (n->subs) {
		free(n->subs->index);
		free(n->subs);
	}
	for (struct group *g = n->groups, *next; g; g = next) {
		next = g->next;
		free(g->m);
		free(g);
	}
	free(n);
}

void subidx_free(struct subidx *ix)
{
	if (!ix)
		return;
	/* Every node is the root, a table node, or a wildcard node; a
	 * wildcard node hangs off the '+' chain starting at the root or at a
	 * table node (a '#' off any member of that chain). Walking each chain
	 * frees every node exactly once, without recursion. */
	for (uint32_t i = 0; i <= ix->table.cap; i++) {
		struct node *n = i < ix->table.cap ? ix->table.slots[i] : ix->root;
		while (n) {
			struct node *plus = n->plus;
			if (n->hash)
				node_free_all(n->hash);
			node_free_all(n);
			n = plus;
		}
	}
	leveltab_fini(&ix->table);
	free(ix->stack);
	free(ix);
}

int subidx_add(struct subidx *ix, struct mqtt_view filter, const struct sub_entry *e)
{
	assert(!ix->matching);
	assert(filter.len > 0 && filter.len <= UINT16_MAX);
	struct mqtt_filter_parts parts;
	mqtt_filter_split(filter, &parts);

	/* match needs a frame per depth plus two; grow it now so match
	 * never has to. */
	unsigned depth = mqtt_topic_levels(parts.filter);
	if (depth + 2 > ix->stack_cap) {
		uint32_t cap = ix->stack_cap;
		while (cap < depth + 2)
			cap *= 2;
		struct frame *st = leveltab_realloc(&ix->mem_bytes, ix->stack,
		                                    ix->stack_cap * sizeof(*st), cap * sizeof(*st));
		if (!st)
			return -1;
		ix->stack = st;
		ix->stack_cap = cap;
	}

	struct node *n = ix->root;
	struct mqtt_level_iter it;
	struct mqtt_view l;
	mqtt_level_iter_init(&it, parts.filter);
	while (mqtt_level_iter_next(&it, &l)) {
		struct node *c = child_find(ix, n, l);
		if (!c)
			c = child_add(ix, n, l);
		if (!c) {
			prune(ix, n);
			return -1;
		}
		n = c;
	}

	struct pentry p = pack(e);
	int rc = parts.shared ? group_add(ix, n, parts.group, &p) : subs_add(ix, n, &p);
	if (rc < 0)
		prune(ix, n);
	else if (rc == 1)
		ix->sub_count++;
	return rc;
}

/* The node a (plain) filter's levels lead to, or NULL. */
static struct node *node_at(const struct subidx *ix, struct mqtt_view filter)
{
	struct node *n = ix->root;
	struct mqtt_level_iter it;
	struct mqtt_view l;
	mqtt_level_iter_init(&it, filter);
	while (n && mqtt_level_iter_next(&it, &l))
		n = child_find(ix, n, l);
	return n == ix->root ? NULL : n;
}

bool subidx_remove(struct subidx *ix, struct mqtt_view filter, struct sess_id who)
{
	assert(!ix->matching);
	struct mqtt_filter_parts parts;
	mqtt_filter_split(filter, &parts);
	struct node *n = node_at(ix, parts.filter);
	if (!n)
		return false;
	bool found = parts.shared ? group_remove(ix, n, parts.group, who) : subs_remove(ix, n, who);
	if (!found)
		return false;
	ix->sub_count--;
	prune(ix, n);
	return true;
}

size_t subidx_filter_count(const struct subidx *ix, struct mqtt_view filter)
{
	struct mqtt_filter_parts parts;
	mqtt_filter_split(filter, &parts);
	struct node *n = node_at(ix, parts.filter);
	if (!n)
		return 0;
	if (!parts.shared)
		return n->subs ? n->subs->n - n->subs->remote : 0;
	struct group *g = group_find(n, parts.group);
	return g ? g->n - g->remote : 0;
}

bool subidx_shared_pick(struct subidx *ix, struct mqtt_view filter, struct sub_entry *out)
{
	struct mqtt_filter_parts parts;
	mqtt_filter_split(filter, &parts);
	if (!parts.shared)
		return false;
	struct node *n = node_at(ix, parts.filter);
	struct group *g = n ? group_find(n, parts.group) : NULL;
	if (!g || g->n == 0)
		return false;
	*out = unpack(&g->m[g->turn]);
	g->turn = g->turn + 1 == g->n ? 0 : g->turn + 1;
	return true;
}

/* Report every subscription stored at n; returns the calls made. Each
 * list that reports counts in ix->match_lists (a group's one member too). */
static size_t report(struct subidx *ix, const struct node *n, enum subidx_groups groups,
                     subidx_fn fn, void *ctx)
{
	size_t calls = 0;
	if (n->subs && n->subs->n) {
		ix->match_lists++;
		for (uint32_t k = 0; k < n->subs->n; k++) {
			struct sub_entry e = unpack(&n->subs->e[k]);
			fn(ctx, &e, false);
		}
		calls += n->subs->n;
	}
	for (struct group *g = groups == SUBIDX_GROUPS_NONE ? NULL : n->groups; g; g = g->next) {
		if (groups == SUBIDX_GROUPS_LOCAL && g->remote == g->n)
			continue; /* every member is on another node */
		struct sub_entry e;
		do { /* LOCAL: the next member of this node, whose turn it is */
			e = unpack(&g->m[g->turn]);
			g->turn = g->turn + 1 == g->n ? 0 : g->turn + 1;
		} while (groups == SUBIDX_GROUPS_LOCAL && e.who.worker == SESS_WORKER_NODE);
		fn(ctx, &e, true);
		calls++;
		ix->match_lists++;
	}
	return calls;
}

size_t subidx_match(struct subidx *ix, struct mqtt_view topic, subidx_fn fn, void *ctx)
{
	return subidx_match_groups(ix, topic, SUBIDX_GROUPS_ALL, fn, ctx);
}

size_t subidx_match_groups(struct subidx *ix, struct mqtt_view topic, enum subidx_groups groups,
                           subidx_fn fn, void *ctx)
{
	assert(!ix->matching);
	ix->matching = true;
	ix->match_lists = 0;
	/* [MQTT-4.7.2-1]: a leading wildcard does not match a '$' topic. */
	bool dollar = topic.len > 0 && topic.ptr[0] == '$';
	size_t calls = 0;
	uint32_t sp = 0;

	ix->stack[sp].n = ix->root;
	mqtt_level_iter_init(&ix->stack[sp].it, topic);
	if (topic.len == 0) {
		/* The reference matcher reads an empty topic as one empty level. */
		static const uint8_t none[1];
		ix->stack[sp].it = (struct mqtt_level_iter){none, none, false};
	}
	sp++;

	while (sp) {
		struct frame f = ix->stack[--sp];
		bool wild_ok = !(dollar && f.n == ix->root);
		/* '#' matches the rest, including nothing: "a/#" matches "a". */
		if (f.n->hash && wild_ok)
			calls += report(ix, f.n->hash, groups, fn, ctx);
		struct mqtt_view l;
		if (!mqtt_level_iter_next(&f.it, &l)) {
			calls += report(ix, f.n, groups, fn, ctx);
			continue;
		}
		/* At most one frame per depth waits below the top two, and depth
		 * never exceeds what add sized the stack for. */
		if (f.n->plus && wild_ok) {
			assert(sp < ix->stack_cap);
			ix->stack[sp++] = (struct frame){f.n->plus, f.it};
		}
		struct node *c =
		    f.n->kids ? leveltab_find(&ix->table, f.n, l.ptr, l.len, node_is) : NULL;
		if (c) {
			assert(sp < ix->stack_cap);
			ix->stack[sp++] = (struct frame){c, f.it};
		}
	}
	ix->matching = false;
	return calls;
}

uint32_t subidx_match_lists(const struct subidx *ix)
{
	return ix->match_lists;
}

size_t subidx_count(const struct subidx *ix)
{
	return ix->sub_count;
}

size_t subidx_group_count(const struct subidx *ix)
{
	return ix->group_count;
}

size_t subidx_node_count(const struct subidx *ix)
{
	return ix->node_count;
}

size_t subidx_mem_bytes(const struct subidx *ix)
{
	return ix->mem_bytes;
}
