/*
 * subidx_test.c — the subscription index agrees with the reference matcher
 * mqtt_topic_match() on random filters and topics (before and after random
 * removals), shares each message with one member of each group in fair
 * rotation, replaces a session's options, and gives its memory back.
 *
 * Random runs use fixed seeds so CI is repeatable; STARLING_TEST_SEED=<n>
 * replays one seed. Every failure message carries its seed.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rng.h"
#include "route/subidx.h"
#include "topic.h"

/* Test-visible internals of core/route/subidx.c. */
size_t subidx_node_count(const struct subidx *ix);
size_t subidx_mem_bytes(const struct subidx *ix);

/* ---- helpers ------------------------------------------------------------ */

#define CALLS_MAX 4096

struct call {
	struct sub_entry e;
	bool shared;
};

struct calls {
	struct call c[CALLS_MAX];
	size_t n;
};

static void collect(void *ctx, const struct sub_entry *e, bool shared)
{
	struct calls *cs = ctx;
	cr_assert_lt(cs->n, CALLS_MAX);
	cs->c[cs->n].e = *e;
	cs->c[cs->n].shared = shared;
	cs->n++;
}

static struct calls *match(struct subidx *ix, const char *topic)
{
	static struct calls cs;
	cs.n = 0;
	size_t n = subidx_match(ix, mqtt_view_str(topic), collect, &cs);
	cr_assert_eq(n, cs.n, "match returned %zu but made %zu calls", n, cs.n);
	return &cs;
}

static struct sub_entry entry(uint32_t slot, uint32_t gen, uint16_t worker, uint32_t sub_id,
                              uint8_t qos)
{
	struct sub_entry e = {
	    .who = {.slot = slot, .gen = gen, .worker = worker},
	    .opts = {.sub_id = sub_id, .qos = qos},
	};
	return e;
}

static int add(struct subidx *ix, const char *filter, struct sub_entry e)
{
	cr_assert_eq(mqtt_topic_filter_check(mqtt_view_str(filter)), MQTT_RC_SUCCESS, "%s", filter);
	return subidx_add(ix, mqtt_view_str(filter), &e);
}

static bool del(struct subidx *ix, const char *filter, struct sess_id who)
{
	return subidx_remove(ix, mqtt_view_str(filter), who);
}

/* Does topic reach the subscription with sub_id (any kind)? */
static size_t count_id(const struct calls *cs, uint32_t sub_id)
{
	size_t k = 0;
	for (size_t i = 0; i < cs->n; i++)
		k += cs->c[i].e.opts.sub_id == sub_id;
	return k;
}

/* ---- basics ------------------------------------------------------------- */

Test(subidx, wildcards_and_dollar_rule)
{
	struct subidx *ix = subidx_new();
	cr_assert_not_null(ix);
	cr_assert_eq(add(ix, "a/b", entry(1, 1, 0, 1, 0)), 1);
	cr_assert_eq(add(ix, "a/+", entry(1, 1, 0, 2, 0)), 1);
	cr_assert_eq(add(ix, "a/#", entry(1, 1, 0, 3, 0)), 1);
	cr_assert_eq(add(ix, "#", entry(1, 1, 0, 4, 0)), 1);
	cr_assert_eq(add(ix, "+/b", entry(1, 1, 0, 5, 0)), 1);
	cr_assert_eq(add(ix, "$SYS/#", entry(1, 1, 0, 6, 0)), 1);
	cr_assert_eq(add(ix, "+/+", entry(1, 1, 0, 7, 0)), 1);
	cr_assert_eq(add(ix, "a//b", entry(1, 1, 0, 8, 0)), 1);
	cr_assert_eq(subidx_count(ix), 8);

	struct calls *cs = match(ix, "a/b");
	cr_assert_eq(cs->n, 6); /* a/b a/+ a/# # +/b +/+ */
	cr_assert_eq(count_id(cs, 8), 0);

	cs = match(ix, "a"); /* "a/#" matches its parent level, "#" everything */
	cr_assert_eq(cs->n, 2);
	cr_assert_eq(count_id(cs, 3), 1);
	cr_assert_eq(count_id(cs, 4), 1);

	cs = match(ix, "a//b"); /* empty levels are levels */
	cr_assert_eq(cs->n, 3); /* a/# # a//b */
	cr_assert_eq(count_id(cs, 8), 1);

	cs = match(ix, "$SYS/b"); /* [MQTT-4.7.2-1] */
	cr_assert_eq(cs->n, 1);
	cr_assert_eq(count_id(cs, 6), 1);

	cs = match(ix, "$SYS"); /* "$SYS/#" matches "$SYS" */
	cr_assert_eq(cs->n, 1);
	cs = match(ix, "x/y/z");
	cr_assert_eq(cs->n, 1); /* only "#" */
	subidx_free(ix);
}

Test(subidx, options_round_trip_and_replace)
{
	struct subidx *ix = subidx_new();
	struct sub_entry e = entry(7, 1, 3, 268435455, 2);
	e.opts.no_local = true;
	e.opts.rap = true;
	cr_assert_eq(add(ix, "t", e), 1);
	struct calls *cs = match(ix, "t");
	cr_assert_eq(cs->n, 1);
	cr_assert_eq(cs->c[0].e.opts.sub_id, 268435455);
	cr_assert_eq(cs->c[0].e.opts.qos, 2);
	cr_assert(cs->c[0].e.opts.no_local && cs->c[0].e.opts.rap);
	cr_assert(sess_id_eq(cs->c[0].e.who, e.who));
	cr_assert_not(cs->c[0].shared);

	/* Same session, new generation, new options: replaced, not added. */
	struct sub_entry e2 = entry(7, 2, 3, 5, 1);
	cr_assert_eq(add(ix, "t", e2), 0);
	cr_assert_eq(subidx_count(ix), 1);
	cs = match(ix, "t");
	cr_assert_eq(cs->n, 1);
	cr_assert_eq(cs->c[0].e.opts.sub_id, 5);
	cr_assert_eq(cs->c[0].e.opts.qos, 1);
	cr_assert_not(cs->c[0].e.opts.no_local || cs->c[0].e.opts.rap);
	cr_assert_eq(cs->c[0].e.who.gen, 2);

	/* Another worker's slot 7 is another session. */
	cr_assert_eq(add(ix, "t", entry(7, 2, 4, 6, 0)), 1);
	cr_assert_eq(subidx_count(ix), 2);

	/* A late cleanup for the dead generation does not remove its successor. */
	cr_assert_not(del(ix, "t", (struct sess_id){.slot = 7, .gen = 1, .worker = 3}));
	cr_assert(del(ix, "t", (struct sess_id){.slot = 7, .gen = 2, .worker = 3}));
	cr_assert_not(del(ix, "t", (struct sess_id){.slot = 7, .gen = 2, .worker = 3}));
	cr_assert_eq(subidx_count(ix), 1);
	cr_assert_not(del(ix, "nope", (struct sess_id){.slot = 7, .gen = 2, .worker = 4}));
	cr_assert_not(del(ix, "t/deeper", (struct sess_id){.slot = 7, .gen = 2, .worker = 4}));

	/* Shared: the same rules inside a group. */
	cr_assert_eq(add(ix, "$share/g/t", entry(1, 1, 0, 10, 0)), 1);
	cr_assert_eq(add(ix, "$share/g/t", entry(1, 9, 0, 11, 1)), 0);
	cr_assert_eq(subidx_count(ix), 2);
	cr_assert_eq(subidx_group_count(ix), 1);
	cs = match(ix, "t");
	cr_assert_eq(cs->n, 2);
	cr_assert_eq(count_id(cs, 11), 1);
	cr_assert_eq(count_id(cs, 10), 0);
	subidx_free(ix);
}

/* ---- shared subscriptions ------------------------------------------------- */

Test(subidx, shared_rotation_is_fair)
{
	struct subidx *ix = subidx_new();
	enum { N = 7, K = 13 };
	for (uint32_t i = 0; i < N; i++)
		cr_assert_eq(add(ix, "$share/work/jobs/+", entry(i, 1, 0, 100 + i, 1)), 1);
	cr_assert_eq(subidx_group_count(ix), 1);
	cr_assert_eq(subidx_count(ix), N);
	size_t got[N] = {0};
	for (int m = 0; m < K * N; m++) {
		struct calls *cs = match(ix, "jobs/x");
		cr_assert_eq(cs->n, 1, "a group receives each message once");
		cr_assert(cs->c[0].shared);
		got[cs->c[0].e.who.slot]++;
		/* Round-robin: within each round of N every member appears once. */
		cr_assert_eq(cs->c[0].e.who.slot, (uint32_t)(m % N));
	}
	for (int i = 0; i < N; i++)
		cr_assert_eq(got[i], K, "member %d got %zu", i, got[i]);
	subidx_free(ix);
}

static uint32_t next_member(struct subidx *ix, const char *topic)
{
	struct calls *cs = match(ix, topic);
	cr_assert_eq(cs->n, 1);
	return cs->c[0].e.who.slot;
}

Test(subidx, shared_removal_mid_rotation)
{
	struct subidx *ix = subidx_new();
	for (uint32_t i = 0; i < 4; i++) /* members 0 1 2 3 */
		add(ix, "$share/g/t", entry(i, 1, 0, 1 + i, 0));
	cr_assert_eq(next_member(ix, "t"), 0);
	cr_assert_eq(next_member(ix, "t"), 1);
	/* Remove one that already had its turn: the next is still 2. */
	cr_assert(del(ix, "$share/g/t", (struct sess_id){.slot = 0, .gen = 1}));
	cr_assert_eq(next_member(ix, "t"), 2);
	/* Remove the one whose turn it is: its successor takes the turn. */
	cr_assert(del(ix, "$share/g/t", (struct sess_id){.slot = 3, .gen = 1}));
	cr_assert_eq(next_member(ix, "t"), 1);
	cr_assert_eq(next_member(ix, "t"), 2);
	/* Fair again over whole rounds of the remaining members. */
	size_t got[4] = {0};
	for (int m = 0; m < 20; m++)
		got[next_member(ix, "t")]++;
	cr_assert_eq(got[1], 10);
	cr_assert_eq(got[2], 10);
	/* Last member gone: the group is gone. */
	cr_assert(del(ix, "$share/g/t", (struct sess_id){.slot = 1, .gen = 1}));
	cr_assert(del(ix, "$share/g/t", (struct sess_id){.slot = 2, .gen = 1}));
	cr_assert_eq(subidx_group_count(ix), 0);
	cr_assert_eq(match(ix, "t")->n, 0);
	cr_assert_eq(subidx_node_count(ix), 1);
	subidx_free(ix);
}

Test(subidx, shared_groups_and_plain_side_by_side)
{
	struct subidx *ix = subidx_new();
	/* Session 1 in two groups on the same filter, session 2 in one of
	 * them, session 3 subscribed plainly to the same filter, and session 1
	 * also plainly to an overlapping wildcard. */
	cr_assert_eq(add(ix, "$share/a/s/x", entry(1, 1, 0, 1, 0)), 1);
	cr_assert_eq(add(ix, "$share/b/s/x", entry(1, 1, 0, 2, 0)), 1);
	cr_assert_eq(add(ix, "$share/b/s/x", entry(2, 1, 0, 3, 0)), 1);
	cr_assert_eq(add(ix, "s/x", entry(3, 1, 0, 4, 0)), 1);
	cr_assert_eq(add(ix, "s/+", entry(1, 1, 0, 5, 0)), 1);
	cr_assert_eq(add(ix, "$share/a/s/+", entry(4, 1, 0, 6, 0)), 1);
	cr_assert_eq(subidx_group_count(ix), 3);
	cr_assert_eq(subidx_count(ix), 6);

	size_t b1 = 0, b2 = 0;
	for (int m = 0; m < 10; m++) {
		struct calls *cs = match(ix, "s/x");
		cr_assert_eq(cs->n, 5); /* a@s/x, b@s/x, s/x, s/+, a@s/+ */
		size_t shared = 0;
		for (size_t i = 0; i < cs->n; i++)
			shared += cs->c[i].shared;
		cr_assert_eq(shared, 3);
		cr_assert_eq(count_id(cs, 1), 1);
		cr_assert_eq(count_id(cs, 4), 1);
		cr_assert_eq(count_id(cs, 5), 1);
		cr_assert_eq(count_id(cs, 6), 1);
		cr_assert_eq(count_id(cs, 2) + count_id(cs, 3), 1);
		b1 += count_id(cs, 2);
		b2 += count_id(cs, 3);
	}
	cr_assert_eq(b1, 5);
	cr_assert_eq(b2, 5);
	/* "$share/a/s/x" and "s/x" are different subscriptions of one filter. */
	cr_assert(del(ix, "s/x", (struct sess_id){.slot = 3, .gen = 1}));
	cr_assert_eq(match(ix, "s/x")->n, 4);
	cr_assert_not(del(ix, "$share/c/s/x", (struct sess_id){.slot = 1, .gen = 1}));
	cr_assert(del(ix, "$share/a/s/x", (struct sess_id){.slot = 1, .gen = 1}));
	cr_assert_eq(subidx_group_count(ix), 2);
	subidx_free(ix);
}

/* ---- random filters against the reference matcher ------------------------ */

static struct rng rng;

static void rnd_filter(char *out, size_t cap)
{
	char plain[64];
	rng_levels(&rng, plain, sizeof(plain), 3);
	if (rng_below(&rng, 4) == 0)
		snprintf(out, cap, "$share/g%u/%s", rng_below(&rng, 2), plain);
	else
		snprintf(out, cap, "%s", plain);
}

struct model_sub {
	char filter[96]; /* as subscribed, maybe "$share/..." */
	struct sub_entry e;
	bool live;
};

#define MODEL_MAX 1200

struct model {
	struct model_sub s[MODEL_MAX];
	size_t n;
	uint32_t next_id;
};

static struct model_sub *model_find(struct model *m, const char *filter, struct sess_id who)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->s[i].live && strcmp(m->s[i].filter, filter) == 0 &&
		    m->s[i].e.who.slot == who.slot && m->s[i].e.who.worker == who.worker)
			return &m->s[i];
	return NULL;
}

static void model_add(struct model *m, struct subidx *ix, uint64_t seed)
{
	char f[96];
	rnd_filter(f, sizeof(f));
	struct sub_entry e =
	    entry(rng_below(&rng, 8), 1 + rng_below(&rng, 3), (uint16_t)rng_below(&rng, 2),
	          ++m->next_id, (uint8_t)rng_below(&rng, 3));
	e.opts.no_local = rng_below(&rng, 2);
	e.opts.rap = rng_below(&rng, 2);
	struct model_sub *old = model_find(m, f, e.who);
	int rc = add(ix, f, e);
	if (old) {
		cr_assert_eq(rc, 0, "seed %llu: re-subscribe %s must replace",
		             (unsigned long long)seed, f);
		old->e = e;
		return;
	}
	cr_assert_eq(rc, 1, "seed %llu: subscribe %s must add", (unsigned long long)seed, f);
	cr_assert_lt(m->n, MODEL_MAX);
	struct model_sub *s = &m->s[m->n++];
	snprintf(s->filter, sizeof(s->filter), "%s", f);
	s->e = e;
	s->live = true;
}

static void model_remove_some(struct model *m, struct subidx *ix, uint64_t seed)
{
	for (size_t i = 0; i < m->n; i++) {
		struct model_sub *s = &m->s[i];
		if (!s->live || rng_below(&rng, 2))
			continue;
		/* A wrong generation is refused first. */
		struct sess_id stale = s->e.who;
		stale.gen += 7;
		cr_assert_not(del(ix, s->filter, stale), "seed %llu: %s", (unsigned long long)seed,
		              s->filter);
		cr_assert(del(ix, s->filter, s->e.who), "seed %llu: %s", (unsigned long long)seed,
		          s->filter);
		s->live = false;
		cr_assert_not(del(ix, s->filter, s->e.who), "seed %llu: %s",
		              (unsigned long long)seed, s->filter);
	}
}

static size_t model_live(const struct model *m)
{
	size_t k = 0;
	for (size_t i = 0; i < m->n; i++)
		k += m->s[i].live;
	return k;
}

static const struct model_sub *model_by_id(const struct model *m, uint32_t sub_id)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->s[i].live && m->s[i].e.opts.sub_id == sub_id)
			return &m->s[i];
	return NULL;
}

/* Same group and same plain filter: "$share/g/f" up to the member. */
static bool same_group(const struct model_sub *a, const struct model_sub *b)
{
	return strcmp(a->filter, b->filter) == 0;
}

static void model_check(const struct model *m, struct subidx *ix, uint64_t seed, int topics)
{
	for (int t = 0; t < topics; t++) {
		char topic[64];
		rng_levels(&rng, topic, sizeof(topic), 0);
		struct calls *cs = match(ix, topic);
		static const struct model_sub *owner[CALLS_MAX];
		/* Every call names a live subscription that matches, with its
		 * exact options, of the kind it says. */
		for (size_t i = 0; i < cs->n; i++) {
			const struct sub_entry *e = &cs->c[i].e;
			const struct model_sub *s = model_by_id(m, e->opts.sub_id);
			owner[i] = s;
			cr_assert_not_null(s, "seed %llu topic %s: unknown sub_id %u",
			                   (unsigned long long)seed, topic, e->opts.sub_id);
			struct mqtt_filter_parts parts;
			mqtt_filter_split(mqtt_view_str(s->filter), &parts);
			cr_assert(mqtt_topic_match(parts.filter, mqtt_view_str(topic)),
			          "seed %llu: %s reported for topic %s", (unsigned long long)seed,
			          s->filter, topic);
			cr_assert_eq(cs->c[i].shared, parts.shared, "seed %llu",
			             (unsigned long long)seed);
			cr_assert(sess_id_eq(e->who, s->e.who), "seed %llu",
			          (unsigned long long)seed);
			cr_assert(e->opts.qos == s->e.opts.qos &&
			              e->opts.no_local == s->e.opts.no_local &&
			              e->opts.rap == s->e.opts.rap,
			          "seed %llu", (unsigned long long)seed);
		}
		/* Every matching plain subscription exactly once; every matching
		 * group exactly once. */
		for (size_t i = 0; i < m->n; i++) {
			const struct model_sub *s = &m->s[i];
			if (!s->live)
				continue;
			struct mqtt_filter_parts parts;
			mqtt_filter_split(mqtt_view_str(s->filter), &parts);
			bool want = mqtt_topic_match(parts.filter, mqtt_view_str(topic));
			size_t got;
			if (!parts.shared) {
				got = count_id(cs, s->e.opts.sub_id);
			} else {
				got = 0;
				for (size_t k = 0; k < cs->n; k++)
					got += same_group(owner[k], s);
			}
			cr_assert_eq(got, want ? 1u : 0u,
			             "seed %llu: filter %s topic %s: expected %d call(s), got %zu",
			             (unsigned long long)seed, s->filter, topic, want, got);
		}
	}
}

static void random_run(uint64_t seed)
{
	rng_seed(&rng, seed);
	struct subidx *ix = subidx_new();
	static struct model m;
	memset(&m, 0, sizeof(m));
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 300; i++)
			model_add(&m, ix, seed);
		cr_assert_eq(subidx_count(ix), model_live(&m), "seed %llu",
		             (unsigned long long)seed);
		model_check(&m, ix, seed, 200);
		model_remove_some(&m, ix, seed);
		cr_assert_eq(subidx_count(ix), model_live(&m), "seed %llu",
		             (unsigned long long)seed);
		model_check(&m, ix, seed, 200);
	}
	/* Remove everything: only the root is left. */
	for (size_t i = 0; i < m.n; i++)
		if (m.s[i].live)
			cr_assert(del(ix, m.s[i].filter, m.s[i].e.who), "seed %llu",
			          (unsigned long long)seed);
	cr_assert_eq(subidx_count(ix), 0);
	cr_assert_eq(subidx_group_count(ix), 0);
	cr_assert_eq(subidx_node_count(ix), 1, "seed %llu: nodes left after removing all",
	             (unsigned long long)seed);
	subidx_free(ix);
}

Test(subidx, random_filters_agree_with_reference_matcher)
{
	rng_run_seeds(12, random_run);
}

/* ---- memory ------------------------------------------------------------- */

Test(subidx, churn_does_not_grow)
{
	struct subidx *ix = subidx_new();
	rng.state = 42;
	static char filters[2000][128];
	size_t base_nodes = subidx_node_count(ix);
	size_t after_first = 0;
	for (int cycle = 0; cycle < 5; cycle++) {
		for (int i = 0; i < 2000; i++) {
			/* Many distinct levels so the child table grows and shrinks. */
			char plain[64];
			snprintf(plain, sizeof(plain), "c%u/%s/d%u", rng_below(&rng, 300),
			         rng_below(&rng, 2) ? "+" : "x", rng_below(&rng, 50));
			snprintf(filters[i], sizeof(filters[i]), "%s%s",
			         rng_below(&rng, 5) == 0 ? "$share/g/" : "", plain);
			cr_assert_geq(add(ix, filters[i], entry((uint32_t)i, 1, 0, 1, 0)), 0);
		}
		for (int i = 0; i < 2000; i++)
			cr_assert(
			    del(ix, filters[i], (struct sess_id){.slot = (uint32_t)i, .gen = 1}));
		cr_assert_eq(subidx_count(ix), 0);
		cr_assert_eq(subidx_group_count(ix), 0);
		cr_assert_eq(subidx_node_count(ix), base_nodes);
		if (cycle == 0)
			after_first = subidx_mem_bytes(ix);
		else
			cr_assert_eq(subidx_mem_bytes(ix), after_first, "cycle %d", cycle);
	}
	subidx_free(ix);
}

static volatile size_t sink;

static void count_only(void *ctx, const struct sub_entry *e, bool shared)
{
	(void)e;
	(void)shared;
	(*(size_t *)ctx)++;
}

Test(subidx, many_children_and_many_sessions)
{
	enum { DEVICES = 100000 };
	struct subidx *ix = subidx_new();
	size_t mem0 = subidx_mem_bytes(ix);
	char f[64];
	/* 100k sessions, one filter each, all under "devices/+". */
	for (uint32_t i = 0; i < DEVICES; i++) {
		snprintf(f, sizeof(f), "devices/%u/state", i);
		cr_assert_eq(add(ix, f, entry(i, 1, (uint16_t)(i % 4), i + 1, 1)), 1);
	}
	size_t mem_unique = subidx_mem_bytes(ix) - mem0;
	/* The same 100k sessions on one shared wildcard filter. */
	size_t mem1 = subidx_mem_bytes(ix);
	for (uint32_t i = 0; i < DEVICES; i++)
		cr_assert_eq(add(ix, "devices/+/state", entry(i, 1, (uint16_t)(i % 4), 7, 0)), 1);
	size_t mem_same = subidx_mem_bytes(ix) - mem1;
	cr_log_info("subidx memory: %.1f B per subscription with its own filter "
	            "(devices/<n>/state), %.1f B per subscription on a shared filter\n",
	            (double)mem_unique / DEVICES, (double)mem_same / DEVICES);
	cr_assert_lt(mem_same / DEVICES, 100, "an entry on an existing node is compact");

	/* Re-subscribing 100k sessions replaces through the position index. */
	for (uint32_t i = 0; i < DEVICES; i += 3)
		cr_assert_eq(add(ix, "devices/+/state", entry(i, 2, (uint16_t)(i % 4), 8, 2)), 0);
	cr_assert_eq(subidx_count(ix), 2 * DEVICES);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t calls = 0;
	for (uint32_t i = 0; i < DEVICES; i += 97) {
		snprintf(f, sizeof(f), "devices/%u/state", i);
		size_t before = calls;
		/* The fan-out of "devices/+/state" is 100k; count only. */
		sink = subidx_match(ix, mqtt_view_str(f), count_only, &calls);
		cr_assert_eq(calls - before, DEVICES + 1);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_log_info("subidx: %.1f ns per delivered entry\n",
	            ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
	                (double)calls);

	/* Remove half of the shared-filter sessions by index, then the rest. */
	for (uint32_t i = 0; i < DEVICES; i++) {
		uint32_t gen = i % 3 == 0 ? 2 : 1;
		cr_assert(
		    del(ix, "devices/+/state",
		        (struct sess_id){.slot = i, .gen = gen, .worker = (uint16_t)(i % 4)}));
		if (i == DEVICES / 2) {
			size_t c = 0;
			subidx_match(ix, mqtt_view_str("devices/1/state"), count_only, &c);
			cr_assert_eq(c, DEVICES - DEVICES / 2 - 1 + 1);
		}
	}
	for (uint32_t i = 0; i < DEVICES; i++) {
		snprintf(f, sizeof(f), "devices/%u/state", i);
		cr_assert(
		    del(ix, f, (struct sess_id){.slot = i, .gen = 1, .worker = (uint16_t)(i % 4)}));
	}
	cr_assert_eq(subidx_count(ix), 0);
	cr_assert_eq(subidx_node_count(ix), 1);
	cr_assert_eq(subidx_mem_bytes(ix), mem0, "all memory returned");
	subidx_free(ix);
}

Test(subidx, deep_filters_and_topics)
{
	/* A topic far deeper than any filter, and a filter of 1000 levels:
	 * match walks only as deep as the trie, with the stack add sized. */
	struct subidx *ix = subidx_new();
	static char deep[4100];
	deep[0] = '\0';
	for (int i = 0; i < 1000; i++)
		strcat(deep, i ? "/+" : "+");
	cr_assert_eq(add(ix, deep, entry(1, 1, 0, 1, 0)), 1);
	cr_assert_eq(add(ix, "#", entry(2, 1, 0, 2, 0)), 1);
	static char topic[4100];
	topic[0] = '\0';
	for (int i = 0; i < 1000; i++)
		strcat(topic, i ? "/x" : "x");
	cr_assert_eq(match(ix, topic)->n, 2);
	strcat(topic, "/y");
	cr_assert_eq(match(ix, topic)->n, 1);
	subidx_free(ix);
}

/* Handing a departed member's message to its group picks the other members
 * in turn, shares the turn with matching, and knows only groups that exist. */
Test(subidx, shared_pick_by_filter)
{
	struct subidx *ix = subidx_new();
	for (uint32_t i = 1; i <= 3; i++)
		cr_assert_eq(add(ix, "$share/g/a/+", entry(i, 1, 0, i, 1)), 1);
	struct sub_entry e;
	uint32_t seen[4] = {0};
	for (int k = 0; k < 6; k++) {
		cr_assert(subidx_shared_pick(ix, mqtt_view_str("$share/g/a/+"), &e));
		seen[e.who.slot]++;
	}
	cr_assert(seen[1] == 2 && seen[2] == 2 && seen[3] == 2, "each member twice");
	cr_assert(del(ix, "$share/g/a/+", (struct sess_id){.slot = 2, .gen = 1, .worker = 0}));
	for (int k = 0; k < 4; k++) {
		cr_assert(subidx_shared_pick(ix, mqtt_view_str("$share/g/a/+"), &e));
		cr_assert_neq(e.who.slot, 2, "a removed member is never picked");
	}
	cr_assert_not(subidx_shared_pick(ix, mqtt_view_str("$share/other/a/+"), &e));
	cr_assert_not(subidx_shared_pick(ix, mqtt_view_str("$share/g/a/b"), &e));
	cr_assert_not(subidx_shared_pick(ix, mqtt_view_str("a/+"), &e), "not a shared filter");
	subidx_free(ix);
}
