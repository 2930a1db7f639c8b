/*
 * routes.c — the cluster's route tables (routes.h): this node's own routes
 * as their only writer (struct route_origin), each peer's as a read-only
 * copy (struct route_peer), and the digest that tells nodes who is behind.
 * Pure: no I/O, no clock; one thread owns an instance.
 *
 * Filters live in a set (linear probing, backward-shift deletion, a seeded
 * hash) of reference-counted names: the origin's set and its log share
 * one copy of a filter, so a change costs one allocation.
 *
 * Invariants, checked where they could break:
 *  - an origin's log holds exactly the changes log_first .. seq, in order,
 *    contiguous: a change that cannot be logged empties the log, so a
 *    delta never skips one;
 *  - a peer's copy is the origin's set as of (epoch, applied) — at seq 0
 *    the empty set — except for filters refused by a limit (counted, and
 *    marked lossy so their later removal is not a mismatch);
 *  - every filter that enters or leaves a peer's copy is reported once,
 *    after the copy changed, so the caller's index equals the copy.
 */
#include "routes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "link_wire.h"
#include "swim.h"
#include "topic.h"
#include "utf8.h"

_Static_assert(ROUTE_NAME_MAX == SWIM_NAME_MAX, "routes are named as members are");
_Static_assert(ROUTE_NAME_MAX == LINK_NAME_MAX, "and as the link names them");
_Static_assert(ROUTE_DIGEST_BYTES_MAX <= SWIM_PAYLOAD_MAX, "a digest rides on probes");
_Static_assert(ROUTE_FILTER_BYTES_MAX == LINK_TOPIC_BYTES_MAX, "a filter fits a frame");

#define DIGEST_VERSION 1
#define SET_MIN_CAP    16 /* slots of a set's first table */

/* ---- names and filters ---------------------------------------------------- */

static bool name_ok(const char *s)
{
	if (!s)
		return false;
	size_t n = strnlen(s, ROUTE_NAME_MAX + 1);
	if (n == 0 || n > ROUTE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static bool filter_ok(const struct route_params *p, struct mqtt_view f)
{
	return f.len >= 1 && f.len <= p->filter_bytes_max && f.ptr &&
	       mqtt_utf8_valid(f.ptr, f.len) && mqtt_topic_filter_check(f) == MQTT_RC_SUCCESS;
}

/* A filter's bytes, shared by a set and a log. */
struct rname {
	uint32_t refs; /* holders: a set, log entries */
	uint32_t hash;
	uint32_t len; /* bytes */
	uint8_t bytes[];
};

static struct rname *rname_new(struct mqtt_view f, uint32_t hash)
{
	struct rname *n = malloc(sizeof(*n) + f.len);
	if (!n)
		return NULL;
	n->refs = 1;
	n->hash = hash;
	n->len = f.len;
	memcpy(n->bytes, f.ptr, f.len);
	return n;
}

static void rname_unref(struct rname *n)
{
	CHECK(n->refs > 0);
	if (--n->refs == 0)
		free(n);
}

static struct mqtt_view rname_view(const struct rname *n)
{
	return (struct mqtt_view){n->bytes, n->len};
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Seeded, eight bytes per round (filters are often long and alike). */
static uint32_t filter_hash(uint64_t seed, struct mqtt_view f)
{
	uint64_t h = mix64(seed) ^ ((uint64_t)f.len * 0x9E3779B97F4A7C15ULL);
	const uint8_t *p = f.ptr;
	uint32_t len = f.len;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h ^= w * 0x87c37b91114253d5ULL;
		h = ((h << 31) | (h >> 33)) * 0x4cf5ad432745937fULL;
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t w = 0;
		memcpy(&w, p, len);
		h ^= w * 0x87c37b91114253d5ULL;
	}
	return (uint32_t)(mix64(h) >> 32);
}

/* ---- a set of filters ------------------------------------------------------- */

struct fset {
	struct rname **slot; /* NULL = empty */
	uint32_t cap;        /* slots: a power of two, or 0 */
	uint32_t count;      /* filters held */
	uint64_t seed;
};

static uint32_t fset_find(const struct fset *s, struct mqtt_view f, uint32_t hash)
{
	if (s->count == 0)
		return UINT32_MAX;
	uint32_t mask = s->cap - 1;
	for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
		const struct rname *n = s->slot[i];
		if (!n)
			return UINT32_MAX;
		if (n->hash == hash && n->len == f.len && memcmp(n->bytes, f.ptr, f.len) == 0)
			return i;
	}
}

static void fset_place(struct rname **slot, uint32_t cap, struct rname *n)
{
	uint32_t mask = cap - 1, i = n->hash & mask;
	while (slot[i])
		i = (i + 1) & mask;
	slot[i] = n;
}

static bool fset_resize(struct fset *s, uint32_t cap)
{
	struct rname **slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return false;
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->slot[i])
			fset_place(slot, cap, s->slot[i]);
	free(s->slot);
	s->slot = slot;
	s->cap = cap;
	return true;
}

/* Room for one more at a load of at most 3/4. */
static bool fset_reserve(struct fset *s)
{
	if ((uint64_t)(s->count + 1) * 4 <= (uint64_t)s->cap * 3)
		return true;
	return fset_resize(s, s->cap ? s->cap * 2 : SET_MIN_CAP);
}

/* Takes the caller's reference; fset_reserve succeeded first. */
static void fset_insert(struct fset *s, struct rname *n)
{
	CHECK((uint64_t)(s->count + 1) * 4 <= (uint64_t)s->cap * 3);
	fset_place(s->slot, s->cap, n);
	s->count++;
}

/* Remove slot i, returning its name with the set's reference. */
static struct rname *fset_take(struct fset *s, uint32_t i)
{
	uint32_t mask = s->cap - 1;
	struct rname *n = s->slot[i];
	CHECK(n && s->count > 0);
	s->slot[i] = NULL;
	s->count--;
	/* backward shift: pull later entries of the run into the hole when
	 * their home slot is not in (hole, j] cyclically */
	for (uint32_t j = (i + 1) & mask; s->slot[j]; j = (j + 1) & mask) {
		uint32_t home = s->slot[j]->hash & mask;
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			s->slot[i] = s->slot[j];
			s->slot[j] = NULL;
			i = j;
		}
	}
	/* shrink, so a burst does not keep its memory (fails harmlessly) */
	if (s->cap > SET_MIN_CAP && s->count < s->cap / 8)
		fset_resize(s, s->cap / 2);
	return n;
}

static void fset_clear(struct fset *s)
{
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->slot[i])
			rname_unref(s->slot[i]);
	free(s->slot);
	s->slot = NULL;
	s->cap = s->count = 0;
}

/* ---- parameters ------------------------------------------------------------- */

void route_params_default(struct route_params *p)
{
	*p = (struct route_params){
	    .filters_max = 1u << 20,
	    .filter_bytes_max = ROUTE_FILTER_BYTES_MAX,
	    .log_max = 16384,
	    .log_bytes_max = 4u << 20,
	    .hash_seed = 0,
	};
}

const char *route_params_invalid(const struct route_params *p)
{
	if (p->filters_max == 0 || p->filters_max > (1u << 30))
		return "filters_max must be 1..2^30";
	if (p->filter_bytes_max == 0 || p->filter_bytes_max > ROUTE_FILTER_BYTES_MAX)
		return "filter_bytes_max must be 1..65535";
	if (p->log_max > (1u << 24))
		return "log_max must be at most 2^24";
	return NULL;
}

/* ---- the origin -------------------------------------------------------------- */

struct log_entry {
	struct rname *f; /* a reference */
	bool add;
};

struct route_origin {
	struct route_params p;
	char node[ROUTE_NAME_MAX + 1];
	uint64_t epoch;
	uint64_t seq;          /* the last change's number */
	struct fset set;       /* the filters with subscribers here */
	struct log_entry *log; /* ring of log_max: changes log_first .. seq */
	uint32_t log_head;     /* the ring index of change log_first */
	uint32_t log_len;      /* changes in the log: seq - log_first + 1 */
	uint64_t log_first;    /* the oldest logged change's number; seq + 1 when empty */
	uint64_t log_bytes;    /* filter bytes of the logged changes */
	struct route_origin_counters c;
};

struct route_origin *route_origin_new(const struct route_params *p, const char *node,
                                      uint64_t epoch)
{
	if (route_params_invalid(p) || !name_ok(node) || epoch == 0)
		return NULL;
	struct route_origin *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->p = *p;
	snprintf(o->node, sizeof(o->node), "%s", node);
	o->epoch = epoch;
	o->log_first = 1;
	o->set.seed = p->hash_seed;
	if (p->log_max) {
		o->log = calloc(p->log_max, sizeof(*o->log));
		if (!o->log) {
			free(o);
			return NULL;
		}
	}
	return o;
}

static void log_pop(struct route_origin *o)
{
	CHECK(o->log_len > 0);
	struct log_entry *e = &o->log[o->log_head];
	o->log_bytes -= e->f->len;
	rname_unref(e->f);
	e->f = NULL;
	o->log_head = (o->log_head + 1) % o->p.log_max;
	o->log_len--;
	o->log_first++;
}

void route_origin_free(struct route_origin *o)
{
	if (!o)
		return;
	while (o->log_len)
		log_pop(o);
	free(o->log);
	fset_clear(&o->set);
	free(o);
}

/* Number a change and log it (taking a reference to f); when it cannot be
 * logged the log empties, so it never skips a change. */
static void origin_record(struct route_origin *o, struct rname *f, bool add)
{
	o->seq++;
	if (add)
		o->c.adds++;
	else
		o->c.removes++;
	bool fits = o->p.log_max > 0 && f->len <= o->p.log_bytes_max;
	while (o->log_len > 0 && (!fits || o->log_len == o->p.log_max ||
	                          o->log_bytes + f->len > o->p.log_bytes_max)) {
		log_pop(o);
		o->c.log_evicted++;
	}
	if (!fits) {
		o->c.log_evicted++; /* this change itself */
		o->log_first = o->seq + 1;
		return;
	}
	uint32_t at = (o->log_head + o->log_len) % o->p.log_max;
	f->refs++;
	o->log[at] = (struct log_entry){f, add};
	o->log_len++;
	o->log_bytes += f->len;
	CHECK(o->log_first + o->log_len - 1 == o->seq);
}

int route_origin_add(struct route_origin *o, struct mqtt_view filter)
{
	if (!filter_ok(&o->p, filter)) {
		o->c.refused_invalid++;
		return -EINVAL;
	}
	uint32_t hash = filter_hash(o->set.seed, filter);
	if (fset_find(&o->set, filter, hash) != UINT32_MAX) {
		o->c.unmatched++;
		return 0;
	}
	if (o->set.count >= o->p.filters_max) {
		o->c.refused_full++;
		return -ENOSPC;
	}
	if (!fset_reserve(&o->set))
		return -ENOMEM;
	struct rname *n = rname_new(filter, hash);
	if (!n)
		return -ENOMEM;
	fset_insert(&o->set, n);
	origin_record(o, n, true);
	return 1;
}

int route_origin_remove(struct route_origin *o, struct mqtt_view filter)
{
	if (!filter_ok(&o->p, filter)) {
		o->c.refused_invalid++;
		return -EINVAL;
	}
	uint32_t i = fset_find(&o->set, filter, filter_hash(o->set.seed, filter));
	if (i == UINT32_MAX) {
		o->c.unmatched++; /* e.g. the add was refused */
		return 0;
	}
	struct rname *n = fset_take(&o->set, i);
	origin_record(o, n, false);
	rname_unref(n); /* the set's reference; the log keeps its own */
	return 1;
}

const char *route_origin_node(const struct route_origin *o)
{
	return o->node;
}

uint64_t route_origin_epoch(const struct route_origin *o)
{
	return o->epoch;
}

uint64_t route_origin_seq(const struct route_origin *o)
{
	return o->seq;
}

uint32_t route_origin_count(const struct route_origin *o)
{
	return o->set.count;
}

bool route_origin_has(const struct route_origin *o, struct mqtt_view filter)
{
	if (filter.len == 0 || !filter.ptr)
		return false;
	return fset_find(&o->set, filter, filter_hash(o->set.seed, filter)) != UINT32_MAX;
}

enum route_catchup route_origin_catchup(const struct route_origin *o, uint64_t peer_epoch,
                                        uint64_t peer_seq, uint64_t *after_seq)
{
	*after_seq = 0;
	if (peer_epoch == o->epoch) {
		if (peer_seq == o->seq)
			return ROUTE_CURRENT;
		if (peer_seq < o->seq && peer_seq + 1 >= o->log_first) {
			*after_seq = peer_seq;
			return ROUTE_BY_DELTA;
		}
		return ROUTE_BY_SNAPSHOT;
	}
	/* An older epoch of ours: the changes from 1 on rebuild it, once the
	 * peer drops the old epoch on seeing the new one. With no change yet,
	 * only an (empty) snapshot tells it of the new epoch. */
	if (peer_epoch != 0 && peer_epoch < o->epoch && o->seq > 0 && o->log_first == 1)
		return ROUTE_BY_DELTA;
	return ROUTE_BY_SNAPSHOT;
}

int route_origin_changes(const struct route_origin *o, uint64_t after_seq, struct route_change *out,
                         size_t out_max, size_t bytes_max)
{
	if (after_seq == o->seq)
		return 0;
	if (after_seq > o->seq || after_seq + 1 < o->log_first)
		return -ERANGE;
	size_t n = 0, bytes = 0;
	uint64_t s = after_seq + 1;
	while (s <= o->seq && n < out_max && n < INT32_MAX) {
		const struct log_entry *e =
		    &o->log[(o->log_head + (uint32_t)(s - o->log_first)) % o->p.log_max];
		if (n > 0 && bytes + e->f->len > bytes_max)
			break;
		out[n++] = (struct route_change){rname_view(e->f), e->add};
		bytes += e->f->len;
		s++;
	}
	return (int)n;
}

void route_origin_snapshot_begin(const struct route_origin *o, struct route_snapshot_cursor *c)
{
	*c = (struct route_snapshot_cursor){.epoch = o->epoch, .seq = o->seq};
}

int route_origin_snapshot_next(const struct route_origin *o, struct route_snapshot_cursor *c,
                               struct mqtt_view *out, size_t out_max, size_t bytes_max, bool *last)
{
	*last = false;
	if (c->epoch != o->epoch || c->seq != o->seq)
		return -ESTALE; /* the table may have moved: slots are no positions any more */
	if (c->done) {
		*last = true;
		return 0;
	}
	size_t n = 0, bytes = 0;
	uint32_t i = c->pos;
	for (; i < o->set.cap && n < out_max && n < INT32_MAX; i++) {
		const struct rname *f = o->set.slot[i];
		if (!f)
			continue;
		if (n > 0 && bytes + f->len > bytes_max)
			break;
		out[n++] = rname_view(f);
		bytes += f->len;
	}
	/* skip empty slots so a chunk that took the last filter is the last */
	while (i < o->set.cap && !o->set.slot[i])
		i++;
	c->pos = i;
	if (i >= o->set.cap) {
		c->done = true;
		*last = true;
	}
	return (int)n;
}

const struct route_origin_counters *route_origin_counters(const struct route_origin *o)
{
	return &o->c;
}

void route_origin_digest(const struct route_origin *o, struct route_digest_entry *out)
{
	*out = (struct route_digest_entry){.epoch = o->epoch, .seq = o->seq};
	memcpy(out->origin, o->node, sizeof(out->origin));
}

/* ---- a peer's copy ---------------------------------------------------------- */

struct route_peer {
	struct route_params p;
	char node[ROUTE_NAME_MAX + 1];
	route_change_fn fn;
	void *arg;
	uint64_t epoch;      /* 0: none heard */
	uint64_t applied;    /* the copy is the origin's set as of this change */
	struct fset set;     /* the copy */
	struct fset staging; /* a snapshot being received */
	bool staging_on;
	uint64_t staging_seq;
	uint64_t seeds;     /* staging sets made: each gets a hash seed of its own */
	bool staging_lossy; /* a filter of the staged snapshot was refused */
	bool lossy; /* a filter of this epoch was refused: removals of unheld ones expected */
	bool needs_snapshot; /* a change disagreed with the copy */
	struct route_peer_counters c;
};

struct route_peer *route_peer_new(const struct route_params *p, const char *node,
                                  route_change_fn fn, void *arg)
{
	if (route_params_invalid(p) || !name_ok(node) || !fn)
		return NULL;
	struct route_peer *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->p = *p;
	snprintf(r->node, sizeof(r->node), "%s", node);
	r->fn = fn;
	r->arg = arg;
	r->set.seed = p->hash_seed;
	return r;
}

void route_peer_free(struct route_peer *r)
{
	if (!r)
		return;
	fset_clear(&r->set);
	fset_clear(&r->staging);
	free(r);
}

static void staging_abandon(struct route_peer *r)
{
	if (r->staging_on)
		r->c.snapshots_abandoned++;
	fset_clear(&r->staging);
	r->staging_on = false;
	r->staging_lossy = false;
}

/* Empty the copy, reporting each filter removed. */
static void copy_clear(struct route_peer *r)
{
	struct fset old = r->set;
	r->set = (struct fset){.seed = old.seed};
	for (uint32_t i = 0; i < old.cap; i++) {
		if (old.slot[i]) {
			r->c.changes++;
			r->fn(r->arg, r->node, rname_view(old.slot[i]), false);
		}
	}
	fset_clear(&old);
}

static void new_epoch(struct route_peer *r, uint64_t epoch)
{
	CHECK(epoch > r->epoch);
	if (r->epoch != 0)
		r->c.epochs++;
	staging_abandon(r);
	copy_clear(r);
	r->epoch = epoch;
	r->applied = 0; /* a new epoch starts empty at seq 0 */
	r->lossy = false;
	r->needs_snapshot = false;
}

enum take {
	TAKE_ADDED,   /* now in the set */
	TAKE_HELD,    /* it was already */
	TAKE_REFUSED, /* invalid, or the set is full: counted */
};

/* Add to a set (the copy or the staging) a filter the peer may hold. */
static enum take set_take(struct route_peer *r, struct fset *s, struct mqtt_view f)
{
	if (!filter_ok(&r->p, f)) {
		r->c.refused_invalid++;
		return TAKE_REFUSED;
	}
	uint32_t hash = filter_hash(s->seed, f);
	if (fset_find(s, f, hash) != UINT32_MAX)
		return TAKE_HELD;
	if (s->count >= r->p.filters_max) {
		r->c.refused_full++;
		return TAKE_REFUSED;
	}
	struct rname *n = fset_reserve(s) ? rname_new(f, hash) : NULL;
	if (!n) {
		r->c.refused_full++; /* out of memory: as full */
		return TAKE_REFUSED;
	}
	fset_insert(s, n);
	return TAKE_ADDED;
}

/* One numbered change against the copy. */
static void copy_apply(struct route_peer *r, const struct route_change *ch)
{
	if (ch->add) {
		switch (set_take(r, &r->set, ch->filter)) {
		case TAKE_ADDED:
			r->c.changes++;
			r->fn(r->arg, r->node, ch->filter, true);
			break;
		case TAKE_HELD:
			r->c.mismatched++;
			r->needs_snapshot = true;
			break;
		case TAKE_REFUSED:
			r->lossy = true;
			break;
		}
		return;
	}
	uint32_t i = ch->filter.len && ch->filter.ptr
	                 ? fset_find(&r->set, ch->filter, filter_hash(r->set.seed, ch->filter))
	                 : UINT32_MAX;
	if (i == UINT32_MAX) {
		if (!r->lossy) { /* unless its add was refused, the copy is off */
			r->c.mismatched++;
			r->needs_snapshot = true;
		}
		return;
	}
	struct rname *n = fset_take(&r->set, i);
	r->c.changes++;
	r->fn(r->arg, r->node, rname_view(n), false);
	rname_unref(n);
}

/* The staged snapshot becomes the copy: what left is reported removed,
 * what is new reported added. */
static void staging_commit(struct route_peer *r)
{
	struct fset old = r->set;
	struct fset *next = &r->staging;
	for (uint32_t i = 0; i < old.cap; i++) {
		struct rname *n = old.slot[i];
		if (n && fset_find(next, rname_view(n), filter_hash(next->seed, rname_view(n))) ==
		             UINT32_MAX) {
			r->c.changes++;
			r->fn(r->arg, r->node, rname_view(n), false);
		}
	}
	for (uint32_t i = 0; i < next->cap; i++) {
		struct rname *n = next->slot[i];
		if (n && fset_find(&old, rname_view(n), filter_hash(old.seed, rname_view(n))) ==
		             UINT32_MAX) {
			r->c.changes++;
			r->fn(r->arg, r->node, rname_view(n), true);
		}
	}
	r->set = *next;
	*next = (struct fset){0};
	fset_clear(&old);
	r->applied = r->staging_seq;
	r->lossy = r->staging_lossy;
	r->needs_snapshot = false;
	r->staging_on = false;
	r->staging_lossy = false;
	r->c.snapshots_applied++;
}

enum route_result route_peer_snapshot(struct route_peer *r, uint64_t epoch, uint64_t seq,
                                      const struct mqtt_view *filters, size_t n, bool last)
{
	if (epoch == 0) {
		r->c.invalid++;
		return ROUTE_INVALID;
	}
	if (epoch < r->epoch) {
		r->c.stale++;
		return ROUTE_STALE;
	}
	if (epoch > r->epoch)
		new_epoch(r, epoch);
	r->c.chunks++;
	if (r->staging_on && r->staging_seq != seq)
		staging_abandon(r); /* another snapshot began: the origin moved on */
	if (!r->staging_on) {
		if (seq < r->applied) {
			r->c.stale++; /* older than the deltas applied since */
			return ROUTE_STALE;
		}
		r->staging_on = true;
		r->staging_seq = seq;
		/* A seed of its own: the chunks come in the origin's table order,
		 * and inserting one table's order into a table with the same hash
		 * makes long probe runs (linear probing's known trap). */
		r->staging.seed = mix64(r->p.hash_seed ^ mix64(++r->seeds));
	}
	for (size_t i = 0; i < n; i++)
		if (set_take(r, &r->staging, filters[i]) == TAKE_REFUSED)
			r->staging_lossy = true;
	if (!last)
		return ROUTE_APPLIED;
	if (r->staging_seq < r->applied) {
		/* deltas beyond it were applied while it came in */
		staging_abandon(r);
		r->c.stale++;
		return ROUTE_STALE;
	}
	staging_commit(r);
	return ROUTE_APPLIED;
}

enum route_result route_peer_delta(struct route_peer *r, uint64_t epoch, uint64_t first_seq,
                                   const struct route_change *changes, size_t n)
{
	if (epoch == 0 || first_seq == 0 || n == 0 || first_seq - 1 > UINT64_MAX - n) {
		r->c.invalid++;
		return ROUTE_INVALID;
	}
	if (epoch < r->epoch) {
		r->c.stale++;
		return ROUTE_STALE;
	}
	if (epoch > r->epoch)
		new_epoch(r, epoch);
	uint64_t last_seq = first_seq - 1 + n;
	if (last_seq <= r->applied) {
		r->c.stale++;
		return ROUTE_STALE;
	}
	if (first_seq > r->applied + 1) {
		r->c.gaps++;
		return ROUTE_GAP;
	}
	for (size_t i = (size_t)(r->applied + 1 - first_seq); i < n; i++) {
		copy_apply(r, &changes[i]);
		r->applied++;
	}
	CHECK(r->applied == last_seq);
	r->c.deltas_applied++;
	return ROUTE_APPLIED;
}

void route_peer_epoch_seen(struct route_peer *r, uint64_t epoch)
{
	if (epoch > r->epoch)
		new_epoch(r, epoch);
}

void route_peer_drop(struct route_peer *r)
{
	r->c.drops++;
	staging_abandon(r);
	copy_clear(r);
	r->applied = 0; /* the epoch's empty start: its changes from 1 rebuild it */
	r->lossy = false;
	r->needs_snapshot = false;
}

void route_peer_link_down(struct route_peer *r)
{
	staging_abandon(r);
}

bool route_peer_behind(const struct route_peer *r, uint64_t epoch, uint64_t seq)
{
	return r->needs_snapshot || epoch > r->epoch || (epoch == r->epoch && seq > r->applied);
}

const char *route_peer_node(const struct route_peer *r)
{
	return r->node;
}

uint64_t route_peer_epoch(const struct route_peer *r)
{
	return r->epoch;
}

uint64_t route_peer_seq(const struct route_peer *r)
{
	return r->applied;
}

uint32_t route_peer_count(const struct route_peer *r)
{
	return r->set.count;
}

bool route_peer_has(const struct route_peer *r, struct mqtt_view filter)
{
	if (filter.len == 0 || !filter.ptr)
		return false;
	return fset_find(&r->set, filter, filter_hash(r->set.seed, filter)) != UINT32_MAX;
}

bool route_peer_next(const struct route_peer *r, uint32_t *cursor, struct mqtt_view *out)
{
	for (uint32_t i = *cursor; i < r->set.cap; i++) {
		if (r->set.slot[i]) {
			*out = rname_view(r->set.slot[i]);
			*cursor = i + 1;
			return true;
		}
	}
	*cursor = r->set.cap;
	return false;
}

bool route_peer_needs_snapshot(const struct route_peer *r)
{
	return r->needs_snapshot;
}

const struct route_peer_counters *route_peer_counters(const struct route_peer *r)
{
	return &r->c;
}

void route_peer_digest(const struct route_peer *r, struct route_digest_entry *out)
{
	*out = (struct route_digest_entry){0};
	memcpy(out->origin, r->node, sizeof(out->origin));
	if (!r->needs_snapshot) { /* else epoch 0: a snapshot, please */
		out->epoch = r->epoch;
		out->seq = r->applied;
	}
}

/* ---- the digest -------------------------------------------------------------- */

static size_t varint_put(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

static bool varint_get(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (*off >= len)
			return false;
		uint8_t b = p[(*off)++];
		if (i == 9 && b > 1)
			return false; /* beyond 64 bits */
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false;
}

int route_digest_encode(const struct route_digest_entry *e, size_t n, uint8_t *out, size_t cap,
                        size_t *encoded)
{
	*encoded = 0;
	if (cap < 1)
		return -EINVAL;
	if (cap > ROUTE_DIGEST_BYTES_MAX)
		cap = ROUTE_DIGEST_BYTES_MAX;
	for (size_t i = 0; i < n; i++)
		if (!name_ok(e[i].origin))
			return -EINVAL;
	size_t len = 0;
	out[len++] = DIGEST_VERSION;
	for (size_t i = 0; i < n && i < ROUTE_DIGEST_ENTRIES_MAX; i++) {
		uint8_t entry[1 + ROUTE_NAME_MAX + 10 + 10];
		size_t name_len = strlen(e[i].origin), k = 0;
		entry[k++] = (uint8_t)name_len;
		memcpy(entry + k, e[i].origin, name_len);
		k += name_len;
		k += varint_put(entry + k, e[i].epoch);
		k += varint_put(entry + k, e[i].seq);
		if (k > cap - len)
			break;
		memcpy(out + len, entry, k);
		len += k;
		(*encoded)++;
	}
	return (int)len;
}

int route_digest_decode(const uint8_t *bytes, size_t len, struct route_digest_entry *out,
                        size_t out_max)
{
	if (len < 1 || len > ROUTE_DIGEST_BYTES_MAX || bytes[0] != DIGEST_VERSION)
		return -EINVAL;
	size_t off = 1, n = 0;
	while (off < len) {
		if (n >= out_max || n >= ROUTE_DIGEST_ENTRIES_MAX)
			return -EINVAL;
		size_t name_len = bytes[off++];
		if (name_len == 0 || name_len > ROUTE_NAME_MAX || name_len > len - off)
			return -EINVAL;
		struct route_digest_entry *e = &out[n];
		memcpy(e->origin, bytes + off, name_len);
		e->origin[name_len] = '\0';
		off += name_len;
		/* a NUL inside would shorten the name: name_ok sees the length */
		if (!name_ok(e->origin) || strlen(e->origin) != name_len)
			return -EINVAL;
		if (!varint_get(bytes, len, &off, &e->epoch) ||
		    !varint_get(bytes, len, &off, &e->seq))
			return -EINVAL;
		for (size_t k = 0; k < n; k++)
			if (strcmp(out[k].origin, e->origin) == 0)
				return -EINVAL;
		n++;
	}
	return (int)n;
}

const char *route_result_name(enum route_result r)
{
	switch (r) {
	case ROUTE_APPLIED:
		return "applied";
	case ROUTE_STALE:
		return "stale";
	case ROUTE_GAP:
		return "gap";
	case ROUTE_INVALID:
		return "invalid";
	}
	return "?";
}
