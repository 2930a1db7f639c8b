/*
 * retain_test.c — the retained store of one shard: set, replace and delete
 * by topic, wildcard matching that agrees with mqtt_topic_match() on random
 * topics, expiry that drops and frees, the '$' rule, one reference per
 * message, byte accounting, memory that follows the contents, and a shard
 * hash that is stable and spreads.
 *
 * Random runs use fixed seeds; STARLING_TEST_SEED=<n> replays one.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "route/retain.h"
#include "rng.h"
#include "topic.h"

/* Test-visible internals of core/route/retain.c. */
size_t retain_node_count(const struct retain *rs);
size_t retain_mem_bytes(const struct retain *rs);

/* ---- building messages -------------------------------------------------- */

static size_t put_vbi(uint8_t *p, uint32_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v & 0x7F;
		v >>= 7;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

/*
 * A 5.0 PUBLISH QoS 0 with RETAIN set, as a client would send it, decoded
 * and copied into a message the way the broker does. expiry_s 0 = none.
 */
static struct msg *mk(const char *topic, const char *payload, uint32_t expiry_s, uint64_t now_ms)
{
	uint8_t body[512], wire[520];
	size_t tl = strlen(topic), pl = strlen(payload), b = 0;
	cr_assert_lt(tl + pl + 16, sizeof(body));
	body[b++] = (uint8_t)(tl >> 8);
	body[b++] = (uint8_t)tl;
	memcpy(body + b, topic, tl);
	b += tl;
	if (expiry_s) {
		body[b++] = 5; /* property length */
		body[b++] = 0x02;
		body[b++] = (uint8_t)(expiry_s >> 24);
		body[b++] = (uint8_t)(expiry_s >> 16);
		body[b++] = (uint8_t)(expiry_s >> 8);
		body[b++] = (uint8_t)expiry_s;
	} else {
		body[b++] = 0;
	}
	memcpy(body + b, payload, pl);
	b += pl;
	size_t w = 0;
	wire[w++] = 0x31;
	w += put_vbi(wire + w, (uint32_t)b);
	memcpy(wire + w, body, b);
	w += b;
	struct mqtt_packet p;
	cr_assert_eq(mqtt_decode_buf(wire, w, 5, &p, NULL), MQTT_RC_SUCCESS, "topic %s", topic);
	struct msg *m = msg_new(&p.publish, 5, p.publish.topic, (struct sess_id){0}, now_ms);
	cr_assert_not_null(m);
	return m;
}

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

#define GOT_MAX 4096

struct got {
	struct msg *m[GOT_MAX];
	size_t n;
};

static void collect(void *ctx, struct msg *m)
{
	struct got *g = ctx;
	cr_assert_lt(g->n, GOT_MAX);
	g->m[g->n++] = m;
}

static struct got *match(struct retain *rs, const char *filter, uint64_t now_ms)
{
	static struct got g;
	g.n = 0;
	size_t n = retain_match(rs, mqtt_view_str(filter), now_ms, collect, &g);
	cr_assert_eq(n, g.n);
	return &g;
}

static bool has(const struct got *g, const struct msg *m)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->m[i] == m)
			return true;
	return false;
}

/* ---- set, replace, delete ----------------------------------------------- */

Test(retain, set_replace_delete)
{
	struct retain *rs = retain_new();
	size_t mem0 = retain_mem_bytes(rs);
	struct msg *m1 = mk("a/b", "one", 0, 0);
	struct msg *m2 = mk("a/b", "two", 0, 0);
	struct msg *other = mk("a/c", "x", 0, 0);
	struct msg *del = mk("a/b", "", 0, 0);

	cr_assert_eq(retain_put(rs, m1), 0);
	cr_assert_eq(refs(m1), 2, "the store holds one reference");
	cr_assert_eq(retain_count(rs), 1);
	cr_assert_eq(retain_bytes(rs), m1->size_bytes);
	cr_assert_eq(retain_put(rs, other), 0);
	cr_assert_eq(retain_bytes(rs), m1->size_bytes + other->size_bytes);

	struct got *g = match(rs, "a/b", 0);
	cr_assert_eq(g->n, 1);
	cr_assert_eq(g->m[0], m1);

	cr_assert_eq(retain_put(rs, m2), 0); /* replace */
	cr_assert_eq(refs(m1), 1, "the replaced message is released");
	cr_assert_eq(refs(m2), 2);
	cr_assert_eq(retain_count(rs), 2);
	cr_assert_eq(retain_bytes(rs), m2->size_bytes + other->size_bytes);
	g = match(rs, "a/b", 0);
	cr_assert_eq(g->n, 1);
	cr_assert_eq(g->m[0], m2);

	cr_assert_eq(retain_put(rs, m2), 0); /* the same message again */
	cr_assert_eq(refs(m2), 2);
	cr_assert_eq(retain_count(rs), 2);

	cr_assert_eq(retain_put(rs, del), 0); /* empty payload deletes */
	cr_assert_eq(refs(m2), 1);
	cr_assert_eq(refs(del), 1, "a delete is not kept");
	cr_assert_eq(retain_count(rs), 1);
	cr_assert_eq(retain_bytes(rs), other->size_bytes);
	cr_assert_eq(match(rs, "a/b", 0)->n, 0);
	cr_assert_eq(match(rs, "a/#", 0)->n, 1);

	/* Deleting what is not there creates nothing. */
	struct msg *del2 = mk("x/y/z", "", 0, 0);
	size_t nodes = retain_node_count(rs);
	cr_assert_eq(retain_put(rs, del2), 0);
	cr_assert_eq(retain_node_count(rs), nodes);

	struct msg *del3 = mk("a/c", "", 0, 0);
	cr_assert_eq(retain_put(rs, del3), 0);
	cr_assert_eq(retain_count(rs), 0);
	cr_assert_eq(retain_bytes(rs), 0);
	cr_assert_eq(retain_node_count(rs), 1, "empty nodes are pruned");
	cr_assert_eq(retain_mem_bytes(rs), mem0);

	retain_free(rs);
	struct msg *all[] = {m1, m2, other, del, del2, del3};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		cr_assert_eq(refs(all[i]), 1);
		msg_unref(all[i]);
	}
}

Test(retain, free_drops_every_reference)
{
	struct retain *rs = retain_new();
	struct msg *m[3] = {mk("a", "1", 0, 0), mk("a/b", "2", 0, 0), mk("$SYS/x", "3", 0, 0)};
	for (int i = 0; i < 3; i++)
		retain_put(rs, m[i]);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(refs(m[i]), 2);
	retain_free(rs);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(refs(m[i]), 1);
		msg_unref(m[i]);
	}
}

Test(retain, wildcards_parent_level_and_dollar_rule)
{
	struct retain *rs = retain_new();
	struct msg *a = mk("a", "1", 0, 0);
	struct msg *ab = mk("a/b", "1", 0, 0);
	struct msg *aeb = mk("a//b", "1", 0, 0);
	struct msg *sys = mk("$SYS/x", "1", 0, 0);
	struct msg *lead = mk("/a", "1", 0, 0);
	struct msg *all[] = {a, ab, aeb, sys, lead};
	for (size_t i = 0; i < 5; i++)
		retain_put(rs, all[i]);

	struct got *g = match(rs, "#", 0);
	cr_assert_eq(g->n, 4, "'#' does not match $SYS/x [MQTT-4.7.2-1]");
	cr_assert_not(has(g, sys));
	g = match(rs, "a/#", 0);
	cr_assert_eq(g->n, 3); /* a (parent level), a/b, a//b */
	cr_assert(has(g, a) && has(g, ab) && has(g, aeb));
	g = match(rs, "+/x", 0);
	cr_assert_eq(g->n, 0);
	g = match(rs, "$SYS/+", 0);
	cr_assert_eq(g->n, 1);
	cr_assert(has(g, sys));
	g = match(rs, "$SYS/#", 0);
	cr_assert_eq(g->n, 1);
	g = match(rs, "+/+", 0);
	cr_assert_eq(g->n, 2); /* a/b, /a */
	cr_assert(has(g, ab) && has(g, lead));
	g = match(rs, "a/+/b", 0);
	cr_assert_eq(g->n, 1);
	cr_assert(has(g, aeb));
	g = match(rs, "+", 0);
	cr_assert_eq(g->n, 1);
	cr_assert(has(g, a));
	retain_free(rs);
	for (size_t i = 0; i < 5; i++)
		msg_unref(all[i]);
}

/* ---- expiry ------------------------------------------------------------- */

Test(retain, expired_are_skipped_dropped_and_freed)
{
	struct retain *rs = retain_new();
	size_t mem0 = retain_mem_bytes(rs);
	struct msg *keep = mk("s/keep", "k", 0, 1000);
	struct msg *soon = mk("s/soon/deep", "s", 10, 1000); /* expires at 11000 ms */
	struct msg *late = mk("s/late", "l", 60, 1000);
	retain_put(rs, keep);
	retain_put(rs, soon);
	retain_put(rs, late);
	size_t all_bytes = keep->size_bytes + soon->size_bytes + late->size_bytes;
	cr_assert_eq(retain_bytes(rs), all_bytes);

	cr_assert_eq(match(rs, "s/#", 10999)->n, 3);
	/* An exact filter elsewhere does not touch it. */
	cr_assert_eq(match(rs, "s/keep", 11000)->n, 1);
	cr_assert_eq(retain_count(rs), 3);

	struct got *g = match(rs, "s/#", 11000);
	cr_assert_eq(g->n, 2);
	cr_assert_not(has(g, soon));
	cr_assert_eq(retain_count(rs), 2, "the expired message is dropped");
	cr_assert_eq(retain_bytes(rs), keep->size_bytes + late->size_bytes);
	cr_assert_eq(refs(soon), 1, "and its reference released");
	cr_assert_eq(retain_node_count(rs), 4, "and its nodes freed: root s keep late");

	/* Expiry through a '+' walk and an exact filter. */
	g = match(rs, "+/late", 61000);
	cr_assert_eq(g->n, 0);
	cr_assert_eq(refs(late), 1);
	struct msg *exact = mk("e/x", "e", 1, 0);
	retain_put(rs, exact);
	cr_assert_eq(match(rs, "e/x", 1000)->n, 0);
	cr_assert_eq(refs(exact), 1);
	cr_assert_eq(retain_count(rs), 1);
	cr_assert_eq(retain_node_count(rs), 3); /* root s keep */

	struct msg *del = mk("s/keep", "", 0, 0);
	retain_put(rs, del);
	cr_assert_eq(retain_node_count(rs), 1);
	cr_assert_eq(retain_mem_bytes(rs), mem0);
	retain_free(rs);
	struct msg *ms[] = {keep, soon, late, exact, del};
	for (size_t i = 0; i < 5; i++) {
		cr_assert_eq(refs(ms[i]), 1);
		msg_unref(ms[i]);
	}
}

/* ---- random topics against the reference matcher ------------------------- */

static struct rng rng;

#define TOPICS_MAX 800 /* 5 + 25 + 125 + 625 distinct topics possible */

struct model {
	char topic[TOPICS_MAX][32];
	struct msg *m[TOPICS_MAX]; /* our own reference, NULL when none retained */
	size_t n;
};

static size_t model_slot(struct model *md, const char *topic)
{
	for (size_t i = 0; i < md->n; i++)
		if (strcmp(md->topic[i], topic) == 0)
			return i;
	cr_assert_lt(md->n, TOPICS_MAX);
	snprintf(md->topic[md->n], sizeof(md->topic[0]), "%s", topic);
	md->m[md->n] = NULL;
	return md->n++;
}

static void random_run(uint64_t seed)
{
	rng_seed(&rng, seed);
	struct retain *rs = retain_new();
	static struct model md;
	memset(&md, 0, sizeof(md));
	uint64_t now = 0;
	for (int step = 0; step < 1500; step++) {
		now += rng_below(&rng, 200);
		char t[32];
		rng_levels(&rng, t, sizeof(t), 0);
		size_t i = model_slot(&md, t);
		uint32_t r = rng_below(&rng, 10);
		if (r < 7) {
			uint32_t expiry_s = rng_below(&rng, 3) == 0 ? 1 + rng_below(&rng, 20) : 0;
			struct msg *m = mk(t, "p", expiry_s, now);
			cr_assert_eq(retain_put(rs, m), 0, "seed %llu", (unsigned long long)seed);
			if (md.m[i])
				msg_unref(md.m[i]);
			md.m[i] = m;
		} else if (r < 9) {
			struct msg *m = mk(t, "", 0, now);
			cr_assert_eq(retain_put(rs, m), 0);
			msg_unref(m);
			if (md.m[i])
				msg_unref(md.m[i]);
			md.m[i] = NULL;
		} else {
			char f[32];
			rng_levels(&rng, f, sizeof(f), 2);
			struct got *g = match(rs, f, now);
			size_t want = 0;
			for (size_t k = 0; k < md.n; k++) {
				struct msg *m = md.m[k];
				if (!m ||
				    !mqtt_topic_match(mqtt_view_str(f), mqtt_view_str(md.topic[k])))
					continue;
				size_t seen = 0;
				for (size_t j = 0; j < g->n; j++)
					seen += g->m[j] == m;
				bool live = !msg_expired(m, now);
				cr_assert_eq(seen, live ? 1u : 0u,
				             "seed %llu: filter %s topic %s: seen %zu times",
				             (unsigned long long)seed, f, md.topic[k], seen);
				want += live;
				if (!live) {
					/* Dropped by the store: ours is the last reference. */
					cr_assert_eq(refs(m), 1, "seed %llu",
					             (unsigned long long)seed);
					msg_unref(m);
					md.m[k] = NULL;
				}
			}
			cr_assert_eq(g->n, want, "seed %llu: filter %s", (unsigned long long)seed,
			             f);
		}
		size_t count = 0, bytes = 0;
		for (size_t k = 0; k < md.n; k++) {
			if (md.m[k]) {
				count++;
				bytes += md.m[k]->size_bytes;
				cr_assert_eq(refs(md.m[k]), 2, "seed %llu",
				             (unsigned long long)seed);
			}
		}
		cr_assert_eq(retain_count(rs), count, "seed %llu step %d", (unsigned long long)seed,
		             step);
		cr_assert_eq(retain_bytes(rs), bytes, "seed %llu", (unsigned long long)seed);
	}
	/* Delete everything: only the root is left. */
	for (size_t k = 0; k < md.n; k++) {
		struct msg *d = mk(md.topic[k], "", 0, now);
		retain_put(rs, d);
		msg_unref(d);
		if (md.m[k]) {
			cr_assert_eq(refs(md.m[k]), 1);
			msg_unref(md.m[k]);
		}
	}
	cr_assert_eq(retain_count(rs), 0);
	cr_assert_eq(retain_node_count(rs), 1, "seed %llu", (unsigned long long)seed);
	retain_free(rs);
}

Test(retain, random_topics_agree_with_reference_matcher)
{
	rng_run_seeds(10, random_run);
}

/* ---- scale and memory --------------------------------------------------- */

static void count_only(void *ctx, struct msg *m)
{
	(void)m;
	(*(size_t *)ctx)++;
}

Test(retain, many_topics_memory_and_churn)
{
	enum { N = 50000 };
	struct retain *rs = retain_new();
	size_t mem0 = retain_mem_bytes(rs);
	static struct msg *ms[N];
	char t[64];
	for (int cycle = 0; cycle < 2; cycle++) {
		for (uint32_t i = 0; i < N; i++) {
			snprintf(t, sizeof(t), "devices/%u/state", i);
			ms[i] = mk(t, "on", 0, 0);
			cr_assert_eq(retain_put(rs, ms[i]), 0);
		}
		if (cycle == 0)
			cr_log_info("retain index memory: %.1f B per retained topic "
			            "(devices/<n>/state), besides the message itself\n",
			            (double)(retain_mem_bytes(rs) - mem0) / N);
		size_t c = 0;
		retain_match(rs, mqtt_view_str("devices/+/state"), 0, count_only, &c);
		cr_assert_eq(c, N);
		c = 0;
		retain_match(rs, mqtt_view_str("devices/777/state"), 0, count_only, &c);
		cr_assert_eq(c, 1);
		c = 0;
		retain_match(rs, mqtt_view_str("devices/777/+"), 0, count_only, &c);
		cr_assert_eq(c, 1);
		for (uint32_t i = 0; i < N; i++) {
			snprintf(t, sizeof(t), "devices/%u/state", i);
			struct msg *d = mk(t, "", 0, 0);
			retain_put(rs, d);
			msg_unref(d);
			cr_assert_eq(refs(ms[i]), 1);
			msg_unref(ms[i]);
		}
		cr_assert_eq(retain_count(rs), 0);
		cr_assert_eq(retain_node_count(rs), 1);
		cr_assert_eq(retain_mem_bytes(rs), mem0, "cycle %d", cycle);
	}
	retain_free(rs);
}

/* ---- shard hash --------------------------------------------------------- */

Test(retain, shard_hash_is_stable_and_spreads)
{
	/* Pinned values: every worker and every node must agree, so a change
	 * of this function is a cluster protocol change. */
	unsigned a = retain_shard_of(mqtt_view_str("sensors/42/temp"), 1u << 31);
	cr_assert_eq(a, retain_shard_of(mqtt_view_str("sensors/42/temp"), 1u << 31));
	cr_assert_eq(retain_shard_of(mqtt_view_str("anything"), 1), 0);
	cr_log_info("retain_shard_of(sensors/42/temp, 2^31) = %u\n", a);
	cr_assert_eq(a, 518593908u);

	enum { SHARDS = 8, TOPICS = 16000 };
	unsigned per[SHARDS] = {0};
	char t[64];
	for (unsigned i = 0; i < TOPICS; i++) {
		snprintf(t, sizeof(t), "devices/%u/state", i);
		unsigned s = retain_shard_of(mqtt_view_str(t), SHARDS);
		cr_assert_lt(s, SHARDS);
		per[s]++;
	}
	for (unsigned s = 0; s < SHARDS; s++)
		cr_assert(per[s] > TOPICS / SHARDS * 9 / 10 && per[s] < TOPICS / SHARDS * 11 / 10,
		          "shard %u has %u of %u", s, per[s], TOPICS);
}

/* ---- a cluster's replicas: last writer wins --------------------------- */

static struct msg *stamped(const char *topic, const char *payload, uint64_t wall_ms,
                           uint64_t rank)
{
	struct msg *m = mk(topic, payload, 0, 0);
	m->wall_ms = wall_ms;
	m->origin_rank = rank;
	return m;
}

static void keep(void *ctx, struct msg *m)
{
	*(struct msg **)ctx = m;
}

static const char *held(struct retain *rs, const char *topic)
{
	static char out[64];
	out[0] = '\0';
	struct msg *found = NULL;
	retain_match(rs, mqtt_view_str(topic), 0, keep, &found);
	if (found)
		snprintf(out, sizeof(out), "%.*s", (int)found->pub.payload.len,
		         (const char *)found->pub.payload.ptr);
	return out;
}

Test(retain, replicas_in_any_order_end_in_the_same_value)
{
	/* Three writes of one topic from three nodes, applied in every order
	 * on six stores: each ends with the latest by (wall, rank). */
	const char *vals[3] = {"early", "tie-low", "tie-high"};
	uint64_t walls[3] = {100, 200, 200}, ranks[3] = {9, 5, 7};
	const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
	for (int o = 0; o < 6; o++) {
		struct retain *rs = retain_new();
		for (int i = 0; i < 3; i++) {
			int k = orders[o][i];
			struct msg *m = stamped("t", vals[k], walls[k], ranks[k]);
			cr_assert_eq(retain_put(rs, m), 0);
			msg_unref(m);
		}
		cr_assert_str_eq(held(rs, "t"), "tie-high", "order %d", o);
		/* A delete older than the value held changes nothing; a later one
		 * deletes. */
		struct msg *d = stamped("t", "", 150, 1);
		retain_put(rs, d);
		msg_unref(d);
		cr_assert_str_eq(held(rs, "t"), "tie-high");
		d = stamped("t", "", 300, 1);
		retain_put(rs, d);
		msg_unref(d);
		cr_assert_str_eq(held(rs, "t"), "");
		retain_free(rs);
	}
}

Test(retain, a_single_node_keeps_the_order_of_arrival_whatever_its_clock)
{
	struct retain *rs = retain_new();
	struct msg *a = stamped("t", "first", 500, 0), *b = stamped("t", "second", 400, 0);
	retain_put(rs, a);
	retain_put(rs, b); /* the clock went back: still the later publish */
	cr_assert_str_eq(held(rs, "t"), "second");
	msg_unref(a);
	msg_unref(b);
	retain_free(rs);
}

static void count_one(void *ctx, struct msg *m)
{
	(void)m;
	(*(int *)ctx)++;
}

Test(retain, each_visits_every_message_dollar_topics_too)
{
	struct retain *rs = retain_new();
	const char *topics[] = {"a", "a/b", "$SYS/x", "$foo", "c/d/e"};
	for (int i = 0; i < 5; i++) {
		struct msg *m = mk(topics[i], "v", 0, 0);
		retain_put(rs, m);
		msg_unref(m);
	}
	int n = 0;
	retain_each(rs, count_one, &n);
	cr_assert_eq(n, 5);
	retain_free(rs);
}
