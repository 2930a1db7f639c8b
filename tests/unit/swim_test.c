/*
 * swim_test.c — membership and failure detection (cluster/swim.h) on a
 * simulated network: N instances in one process, a virtual clock that
 * jumps to the next thing due (a datagram's arrival or an instance's
 * deadline), and a message bus with per-link delay, loss and blocking
 * (asymmetric allowed). A crashed node processes and sends nothing and
 * its mail is lost; a stalled node (SIGSTOP) processes nothing for a
 * while and then finds its mail waiting, as in a socket buffer.
 *
 * Every scenario is bounded in virtual time and repeatable: the bus and
 * every instance take their randomness from seeds. Measured times are
 * printed to stderr ("swim: ..."), so a run shows the detection times.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rng.h"
#include "swim.h"

#define NODES_MAX 8
#define NEVER     UINT64_MAX

struct datagram {
	uint64_t at_ms; /* arrival */
	uint64_t seq;   /* sending order: ties arrive in it */
	int from, to;
	uint8_t *bytes;
	size_t len;
};

struct logged {
	uint64_t at_ms;
	struct swim_event ev;
};

struct node {
	struct swim *sw;
	char name[16];
	char address[32];
	uint64_t epoch;
	bool crashed;           /* processes and sends nothing; its mail is lost */
	uint64_t stalled_until; /* processes nothing before then; its mail waits */
	bool keep_events;       /* leave events in the instance (bounded-queue test) */
	struct logged *log;     /* events taken out, with when */
	size_t log_len, log_cap;
	uint8_t last_sent[SWIM_PUSH_PULL_BYTES_MAX]; /* capture: the last datagram it sent */
	size_t last_sent_len;
};

struct sim {
	struct swim_params p;
	int n;
	struct node node[NODES_MAX];
	bool block[NODES_MAX][NODES_MAX]; /* datagrams from i to j are lost */
	uint32_t loss_pct[NODES_MAX][NODES_MAX];
	uint32_t delay_ms; /* one-way, plus 0..jitter_ms */
	uint32_t jitter_ms;
	struct rng rng;
	uint64_t now;
	uint64_t seq;
	struct datagram *q; /* in flight */
	size_t q_len, q_cap;
	/* capture: the largest datagram from cap_from to cap_to, while cap_from >= 0 */
	int cap_from, cap_to;
	uint8_t cap[SWIM_PUSH_PULL_BYTES_MAX];
	size_t cap_len;
};

static const char *CLUSTER = "test";

static void node_start(struct sim *s, int i, const char *cluster, const uint8_t *secret,
                       size_t secret_len, uint64_t seed)
{
	struct node *nd = &s->node[i];
	struct swim_node self = {
	    .name = nd->name,
	    .address = nd->address,
	    .epoch = nd->epoch,
	    .cluster = cluster,
	    .secret = secret,
	    .secret_len = secret_len,
	    .seed = seed,
	};
	nd->sw = swim_new(&s->p, &self);
	cr_assert_not_null(nd->sw, "swim_new %s", nd->name);
	nd->crashed = false;
	nd->stalled_until = 0;
}

static struct sim *sim_new(int n, const char *profile, uint64_t seed)
{
	struct sim *s = calloc(1, sizeof(*s));
	cr_assert_eq(swim_params_profile(&s->p, profile), 0);
	s->n = n;
	s->delay_ms = 1;
	s->jitter_ms = 2;
	s->cap_from = -1;
	rng_seed(&s->rng, seed);
	s->now = 1000000; /* an arbitrary monotonic start */
	for (int i = 0; i < n; i++) {
		struct node *nd = &s->node[i];
		snprintf(nd->name, sizeof(nd->name), "n%d", i);
		snprintf(nd->address, sizeof(nd->address), "10.0.0.%d:7946", i + 1);
		nd->epoch = 100 + (uint64_t)i;
		node_start(s, i, CLUSTER, NULL, 0, seed * 131 + (uint64_t)i);
	}
	return s;
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < s->n; i++) {
		swim_free(s->node[i].sw);
		free(s->node[i].log);
	}
	for (size_t k = 0; k < s->q_len; k++)
		free(s->q[k].bytes);
	free(s->q);
	free(s);
}

static int node_of(const struct sim *s, const char *address)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->node[i].address, address) == 0)
			return i;
	return -1;
}

/* Take what node i wants to send onto the bus, and its events into its log. */
static void pump(struct sim *s, int i)
{
	struct node *nd = &s->node[i];
	struct swim_datagram d;
	while (swim_next_send(nd->sw, &d)) {
		cr_assert_leq(d.len, SWIM_PUSH_PULL_BYTES_MAX);
		memcpy(nd->last_sent, d.bytes, d.len);
		nd->last_sent_len = d.len;
		int to = node_of(s, d.to);
		if (i == s->cap_from && to == s->cap_to && d.len > s->cap_len) {
			memcpy(s->cap, d.bytes, d.len);
			s->cap_len = d.len;
		}
		if (to < 0 || s->block[i][to])
			continue;
		if (s->loss_pct[i][to] && rng_below(&s->rng, 100) < s->loss_pct[i][to])
			continue;
		if (s->q_len == s->q_cap) {
			s->q_cap = s->q_cap ? 2 * s->q_cap : 256;
			s->q = realloc(s->q, s->q_cap * sizeof(*s->q));
		}
		uint8_t *copy = malloc(d.len);
		memcpy(copy, d.bytes, d.len);
		s->q[s->q_len++] = (struct datagram){
		    .at_ms = s->now + s->delay_ms +
		             (s->jitter_ms ? rng_below(&s->rng, s->jitter_ms + 1) : 0),
		    .seq = ++s->seq,
		    .from = i,
		    .to = to,
		    .bytes = copy,
		    .len = d.len,
		};
	}
	if (nd->keep_events)
		return;
	struct swim_event ev;
	while (swim_next_event(nd->sw, &ev)) {
		if (nd->log_len == nd->log_cap) {
			nd->log_cap = nd->log_cap ? 2 * nd->log_cap : 64;
			nd->log = realloc(nd->log, nd->log_cap * sizeof(*nd->log));
		}
		nd->log[nd->log_len++] = (struct logged){s->now, ev};
	}
}

static bool can_run(const struct sim *s, int i)
{
	return !s->node[i].crashed && s->now >= s->node[i].stalled_until;
}

/* When anything happens next: an arrival at a node that can take it, or a
 * node's deadline. */
static uint64_t next_time(const struct sim *s)
{
	uint64_t t = NEVER;
	for (size_t k = 0; k < s->q_len; k++) {
		const struct node *to = &s->node[s->q[k].to];
		uint64_t at = s->q[k].at_ms;
		if (to->crashed)
			at = s->now; /* lost: cleared at once */
		else if (at < to->stalled_until)
			at = to->stalled_until;
		t = at < t ? at : t;
	}
	for (int i = 0; i < s->n; i++) {
		const struct node *nd = &s->node[i];
		if (nd->crashed)
			continue;
		uint64_t d = swim_next_deadline_ms(nd->sw);
		if (d < nd->stalled_until)
			d = nd->stalled_until;
		t = d < t ? d : t;
	}
	return t;
}

/* Deliver the earliest due datagram; false when none is due. */
static bool deliver_one(struct sim *s)
{
	size_t best = SIZE_MAX;
	for (size_t k = 0; k < s->q_len; k++) {
		const struct datagram *d = &s->q[k];
		bool lost = s->node[d->to].crashed;
		if (!lost && (d->at_ms > s->now || !can_run(s, d->to)))
			continue;
		if (best == SIZE_MAX || d->at_ms < s->q[best].at_ms ||
		    (d->at_ms == s->q[best].at_ms && d->seq < s->q[best].seq))
			best = k;
	}
	if (best == SIZE_MAX)
		return false;
	struct datagram d = s->q[best];
	s->q[best] = s->q[--s->q_len];
	if (!s->node[d.to].crashed) {
		swim_receive(s->node[d.to].sw, s->now, s->node[d.from].address, d.bytes, d.len);
		pump(s, d.to);
	}
	free(d.bytes);
	return true;
}

/* One instant: mail first (a loop takes completions before timers), then
 * whatever is due. */
static void step(struct sim *s)
{
	while (deliver_one(s))
		;
	for (int i = 0; i < s->n; i++) {
		if (!can_run(s, i))
			continue;
		if (swim_next_deadline_ms(s->node[i].sw) <= s->now)
			swim_tick(s->node[i].sw, s->now);
		pump(s, i);
	}
}

typedef bool (*cond_fn)(struct sim *s, const void *arg);

/* Run until cond holds (checked after every instant) or until the time
 * limit; the time it held, or NEVER. cond NULL: run to the limit. */
static uint64_t run_until(struct sim *s, uint64_t limit_ms, cond_fn cond, const void *arg)
{
	uint64_t end = s->now + limit_ms;
	unsigned same = 0;
	for (;;) {
		if (cond && cond(s, arg))
			return s->now;
		uint64_t t = next_time(s);
		if (t > end) {
			s->now = end;
			step(s);
			return cond && cond(s, arg) ? s->now : NEVER;
		}
		if (t <= s->now) {
			cr_assert_lt(++same, 100000, "time does not move at %lu",
			             (unsigned long)s->now);
			t = s->now;
		} else {
			same = 0;
		}
		s->now = t;
		step(s);
	}
}

static void run_for(struct sim *s, uint64_t ms)
{
	run_until(s, ms, NULL, NULL);
}

static void join_all(struct sim *s)
{
	const char *seed = s->node[0].address;
	for (int i = 0; i < s->n; i++) {
		swim_join(s->node[i].sw, s->now, &seed, 1);
		pump(s, i);
	}
}

/* Every running node sees every other running node alive, and only them. */
static bool all_alive(struct sim *s, const void *arg)
{
	(void)arg;
	int live = 0;
	for (int i = 0; i < s->n; i++)
		live += !s->node[i].crashed;
	for (int i = 0; i < s->n; i++) {
		if (s->node[i].crashed)
			continue;
		if (swim_member_count(s->node[i].sw, SWIM_ALIVE) != (size_t)(live - 1))
			return false;
		for (int j = 0; j < s->n; j++) {
			struct swim_member_info mi;
			if (j == i || s->node[j].crashed)
				continue;
			if (!swim_member_get(s->node[i].sw, s->node[j].name, &mi) ||
			    mi.state != SWIM_ALIVE || mi.epoch != s->node[j].epoch)
				return false;
		}
	}
	return true;
}

/* When observer logged an event of this type about member, at or after
 * since; NEVER if it did not. */
static uint64_t event_at(const struct sim *s, int observer, enum swim_event_type t,
                         const char *member, uint64_t since)
{
	const struct node *nd = &s->node[observer];
	for (size_t k = 0; k < nd->log_len; k++)
		if (nd->log[k].at_ms >= since && nd->log[k].ev.type == t &&
		    strcmp(nd->log[k].ev.name, member) == 0)
			return nd->log[k].at_ms;
	return NEVER;
}

static size_t events_of(const struct sim *s, enum swim_event_type t, uint64_t since)
{
	size_t n = 0;
	for (int i = 0; i < s->n; i++)
		for (size_t k = 0; k < s->node[i].log_len; k++)
			n += s->node[i].log[k].at_ms >= since && s->node[i].log[k].ev.type == t;
	return n;
}

struct member_state {
	int member;
	enum swim_state state;
};

/* Every other running node sees arg->member in arg->state. */
static bool all_see(struct sim *s, const void *arg)
{
	const struct member_state *ms = arg;
	for (int i = 0; i < s->n; i++) {
		struct swim_member_info mi;
		if (i == ms->member || s->node[i].crashed)
			continue;
		if (!swim_member_get(s->node[i].sw, s->node[ms->member].name, &mi) ||
		    mi.state != ms->state)
			return false;
	}
	return true;
}

static uint64_t converge(struct sim *s, uint64_t limit_ms)
{
	uint64_t t0 = s->now;
	join_all(s);
	uint64_t t = run_until(s, limit_ms, all_alive, NULL);
	cr_assert_neq(t, NEVER, "no convergence within %lu ms", (unsigned long)limit_ms);
	return t - t0;
}

/* ---- parameters and formulas ----------------------------------------------- */

Test(swim, profiles_follow_memberlist)
{
	struct swim_params p;
	cr_assert_eq(swim_params_profile(&p, "lan"), 0);
	cr_assert_eq(p.probe_interval_ms, 1000);
	cr_assert_eq(p.probe_timeout_ms, 500);
	cr_assert_eq(p.indirect_checks, 3);
	cr_assert_eq(p.suspicion_mult, 4);
	cr_assert_eq(p.suspicion_max_timeout_mult, 6);
	cr_assert_eq(p.gossip_interval_ms, 200);
	cr_assert_eq(p.gossip_nodes, 3);
	cr_assert_eq(p.retransmit_mult, 4);
	cr_assert_eq(p.push_pull_interval_ms, 30000);
	cr_assert_eq(p.awareness_max_multiplier, 8);
	cr_assert_eq(p.members_max, SWIM_MEMBERS_MAX);
	cr_assert_null(swim_params_invalid(&p));
	cr_assert_eq(swim_params_profile(&p, "fast"), 0);
	cr_assert_eq(p.probe_interval_ms, 200);
	cr_assert_eq(p.probe_timeout_ms, 100);
	cr_assert_eq(p.suspicion_mult, 3);
	cr_assert_eq(p.gossip_interval_ms, 100);
	cr_assert_eq(p.retransmit_mult, 2);
	cr_assert_eq(p.push_pull_interval_ms, 15000);
	cr_assert_null(swim_params_invalid(&p));
	cr_assert_eq(swim_params_profile(&p, "wan"), -EINVAL);
	cr_assert_eq(swim_params_profile(&p, NULL), -EINVAL);

	swim_params_profile(&p, "lan");
	p.probe_timeout_ms = p.probe_interval_ms;
	cr_assert_not_null(swim_params_invalid(&p), "a timeout as long as the period");
	swim_params_profile(&p, "lan");
	p.members_max = SWIM_MEMBERS_MAX + 1;
	cr_assert_not_null(swim_params_invalid(&p));
	swim_params_profile(&p, "lan");
	p.indirect_checks = SWIM_HELPERS_MAX + 1;
	cr_assert_not_null(swim_params_invalid(&p));
	cr_assert_not_null(swim_params_invalid(NULL));
}

Test(swim, new_refuses_bad_identities)
{
	struct swim_params p;
	swim_params_profile(&p, "fast");
	char long_name[SWIM_NAME_MAX + 2];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	static const uint8_t key[SWIM_SECRET_MAX + 1] = {1};
	struct swim_node ok = {"a", "10.0.0.1:1", 1, "c", NULL, 0, 1};
	struct swim_node bad[] = {
	    {long_name, "10.0.0.1:1", 1, "c", NULL, 0, 1},
	    {"", "10.0.0.1:1", 1, "c", NULL, 0, 1},
	    {"a b", "10.0.0.1:1", 1, "c", NULL, 0, 1},
	    {"a", NULL, 1, "c", NULL, 0, 1},
	    {"a", "10.0.0.1:1", 1, "", NULL, 0, 1},
	    {"a", "10.0.0.1:1", 1, "c", key, 0, 1},
	    {"a", "10.0.0.1:1", 1, "c", key, sizeof(key), 1},
	};
	struct swim *s = swim_new(&p, &ok);
	cr_assert_not_null(s);
	swim_free(s);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(swim_new(&p, &bad[i]), "identity %zu", i);
	p.probe_timeout_ms = 0;
	cr_assert_null(swim_new(&p, &ok));
}

Test(swim, formulas_are_memberlists)
{
	struct swim_params p;
	swim_params_profile(&p, "lan");
	/* min = 4 * max(1, log10 N) * 1 s (cluster-notes §3.1: 4 s to N = 10, 4.8 s at 16, 8 s at
	 * 100) */
	cr_assert_eq(swim_suspicion_min_ms(&p, 1), 4000);
	cr_assert_eq(swim_suspicion_min_ms(&p, 3), 4000);
	cr_assert_eq(swim_suspicion_min_ms(&p, 10), 4000);
	cr_assert_eq(swim_suspicion_min_ms(&p, 16), 4816);
	cr_assert_eq(swim_suspicion_min_ms(&p, 100), 8000);
	/* the timer starts at max and reaches min with k confirmations */
	cr_assert_eq(swim_suspicion_timeout_ms(4000, 24000, 2, 0), 24000);
	cr_assert_eq(swim_suspicion_timeout_ms(4000, 24000, 2, 1), 11381); /* 24 - log2/log3 * 20 */
	cr_assert_eq(swim_suspicion_timeout_ms(4000, 24000, 2, 2), 4000);
	cr_assert_eq(swim_suspicion_timeout_ms(4000, 24000, 2, 5), 4000, "never below min");
	cr_assert_eq(swim_suspicion_timeout_ms(4000, 24000, 0, 0), 4000, "k = 0: min at once");
	/* retransmits: 4 * ceil(log10(N + 1)) */
	cr_assert_eq(swim_retransmit_limit(&p, 3), 4);
	cr_assert_eq(swim_retransmit_limit(&p, 9), 4);
	cr_assert_eq(swim_retransmit_limit(&p, 10), 8);
	cr_assert_eq(swim_retransmit_limit(&p, 1000), 16);
}

/* ---- joining -------------------------------------------------------------- */

static void join_converges(int n, const char *profile, uint64_t bound_ms)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim *s = sim_new(n, profile, seed);
		uint64_t took = converge(s, bound_ms);
		fprintf(stderr, "swim: %s N=%d seed %lu: all alive everywhere after %lu ms\n",
		        profile, n, (unsigned long)seed, (unsigned long)took);
		/* nobody was ever suspected on the way */
		cr_assert_eq(events_of(s, SWIM_EV_SUSPECT, 0), 0);
		cr_assert_eq(events_of(s, SWIM_EV_JOINED, 0), (size_t)(n * (n - 1)));
		/* joining again (DNS re-resolved) costs nothing once in */
		const char *seed_addr = s->node[0].address;
		cr_assert_eq(swim_join(s->node[1].sw, s->now, &seed_addr, 1), 0);
		run_for(s, 5000);
		cr_assert(all_alive(s, NULL), "stays converged");
		sim_free(s);
	}
}

Test(swim, three_join_through_one_seed)
{
	join_converges(3, "lan", 3000);
	join_converges(3, "fast", 1000);
}

Test(swim, five_join_through_one_seed)
{
	join_converges(5, "lan", 3000);
	join_converges(5, "fast", 1000);
}

Test(swim, a_seed_that_starts_late_is_retried)
{
	struct sim *s = sim_new(3, "fast", 7);
	s->node[0].crashed = true; /* the seed is not up yet */
	join_all(s);
	run_for(s, 2000);
	s->node[0].crashed = false;
	uint64_t t = run_until(s, 3000, all_alive, NULL);
	cr_assert_neq(t, NEVER, "joined once the seed came up");
	cr_assert_gt(swim_counters(s->node[1].sw)->push_pulls_sent, 2);
	sim_free(s);
}

/* ---- crash detection --------------------------------------------------------- */

/* Crash the last node once converged; the worst time over the others until
 * DEAD, or NEVER. */
static uint64_t crash_detection(int n, const char *profile, uint64_t seed, uint64_t limit_ms)
{
	struct sim *s = sim_new(n, profile, seed);
	converge(s, 5000);
	run_for(s, 3000 + rng_below(&s->rng, 1000)); /* a random phase */
	int x = n - 1;
	uint64_t t0 = s->now;
	s->node[x].crashed = true;
	struct member_state dead = {x, SWIM_DEAD};
	uint64_t t = run_until(s, limit_ms, all_see, &dead);
	uint64_t took = t == NEVER ? NEVER : t - t0;
	if (getenv("SWIM_TEST_DUMP") && seed == strtoull(getenv("SWIM_TEST_DUMP"), NULL, 10))
		for (int i = 0; i < n; i++)
			for (size_t k = 0; k < s->node[i].log_len; k++)
				fprintf(stderr, "swim: n%d t=%+ld %s %s inc %u\n", i,
				        (long)(s->node[i].log[k].at_ms - t0),
				        swim_event_name(s->node[i].log[k].ev.type),
				        s->node[i].log[k].ev.name,
				        s->node[i].log[k].ev.incarnation);
	/* only the crashed one died, and nobody else was even suspected */
	for (int i = 0; i < x; i++) {
		cr_assert_eq(event_at(s, i, SWIM_EV_ALIVE, s->node[x].name, t0), NEVER);
		for (int j = 0; j < x; j++)
			cr_assert_eq(event_at(s, i, SWIM_EV_SUSPECT, s->node[j].name, 0), NEVER);
	}
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), (size_t)(n - 1));
	sim_free(s);
	return took;
}

static void crash_detected(int n, const char *profile, uint64_t bound_ms)
{
	uint64_t worst = 0, sum = 0;
	const uint64_t runs = 8;
	for (uint64_t seed = 1; seed <= runs; seed++) {
		uint64_t took = crash_detection(n, profile, seed, 30000);
		cr_assert_neq(took, NEVER, "%s N=%d seed %lu: not detected", profile, n,
		              (unsigned long)seed);
		worst = took > worst ? took : worst;
		sum += took;
		if (getenv("SWIM_TEST_VERBOSE"))
			fprintf(stderr, "swim:   %s N=%d seed %lu: %lu ms\n", profile, n,
			        (unsigned long)seed, (unsigned long)took);
	}
	fprintf(stderr,
	        "swim: %s N=%d crash: dead everywhere after %lu ms mean, %lu ms worst (%lu runs)\n",
	        profile, n, (unsigned long)(sum / runs), (unsigned long)worst, (unsigned long)runs);
	cr_assert_leq(worst, bound_ms, "%s N=%d: %lu ms", profile, n, (unsigned long)worst);
}

Test(swim, crash_detected_fast_profile)
{
	crash_detected(3, "fast", 1500);
	crash_detected(5, "fast", 1500);
}

Test(swim, crash_detected_lan_profile)
{
	/* first probe (up to ~2 s for N = 3 with a reshuffled round) + 1 s
	 * probe + 4 s suspicion (N = 3: k = 0, the minimum at once) */
	crash_detected(3, "lan", 7500);
	/* N = 5: k = 2; 4 s once two others confirmed, longer until then */
	crash_detected(5, "lan", 8500);
}

/* ---- no false positives ---------------------------------------------------- */

Test(swim, two_second_stall_is_no_death)
{
	struct sim *s = sim_new(3, "lan", 3);
	converge(s, 3000);
	run_for(s, 2500);
	uint64_t t0 = s->now;
	s->node[2].stalled_until = s->now + 2000;
	run_for(s, 30000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0, "a 2 s stall killed someone");
	cr_assert(all_alive(s, NULL));
	/* If it was suspected, it refuted: alive again at a higher incarnation. */
	for (int i = 0; i < 2; i++) {
		uint64_t sus = event_at(s, i, SWIM_EV_SUSPECT, "n2", t0);
		if (sus == NEVER)
			continue;
		cr_assert_neq(event_at(s, i, SWIM_EV_ALIVE, "n2", sus), NEVER);
		struct swim_member_info mi;
		cr_assert(swim_member_get(s->node[i].sw, "n2", &mi));
		cr_assert_geq(mi.incarnation, 1);
	}
	fprintf(stderr, "swim: lan N=3 2 s stall: %zu suspicions, %lu refutations, 0 deaths\n",
	        events_of(s, SWIM_EV_SUSPECT, t0),
	        (unsigned long)swim_counters(s->node[2].sw)->refutations);
	sim_free(s);
}

Test(swim, ten_minutes_of_periodic_stalls_kill_nobody)
{
	struct sim *s = sim_new(3, "lan", 11);
	converge(s, 3000);
	for (int k = 0; k < 30; k++) {
		run_for(s, 18000 + rng_below(&s->rng, 1000));
		s->node[k % 3].stalled_until = s->now + 2000;
	}
	run_for(s, 20000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0);
	cr_assert(all_alive(s, NULL));
	fprintf(stderr, "swim: lan N=3 30 stalls of 2 s in 10 min: %zu suspicions, 0 deaths\n",
	        events_of(s, SWIM_EV_SUSPECT, 0));
	sim_free(s);
}

Test(swim, suspected_member_refutes_with_a_higher_incarnation)
{
	struct sim *s = sim_new(3, "lan", 5);
	converge(s, 3000);
	uint64_t t0 = s->now;
	for (int i = 0; i < 2; i++)
		s->block[i][2] = s->block[2][i] = true;
	/* long enough to be probed and suspected, shorter than the 4 s suspicion */
	struct member_state sus = {2, SWIM_SUSPECT};
	cr_assert_neq(run_until(s, 3000, all_see, &sus), NEVER);
	for (int i = 0; i < 2; i++)
		s->block[i][2] = s->block[2][i] = false;
	struct member_state alive = {2, SWIM_ALIVE};
	uint64_t t = run_until(s, 3000, all_see, &alive);
	cr_assert_neq(t, NEVER, "not refuted");
	cr_assert_geq(swim_incarnation(s->node[2].sw), 1);
	cr_assert_geq(swim_counters(s->node[2].sw)->refutations, 1);
	for (int i = 0; i < 2; i++) {
		struct swim_member_info mi;
		cr_assert(swim_member_get(s->node[i].sw, "n2", &mi));
		cr_assert_eq(mi.incarnation, swim_incarnation(s->node[2].sw));
		cr_assert_neq(event_at(s, i, SWIM_EV_ALIVE, "n2", t0), NEVER);
	}
	run_for(s, 20000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0);
	cr_assert(all_alive(s, NULL));
	sim_free(s);
}

Test(swim, suspicion_shrinks_with_confirmations)
{
	/* N = 6, lan: k = 2, min 4 s, max 24 s. The same crash with five
	 * healthy confirmers and with none (all crashed at once). */
	struct sim *s = sim_new(6, "lan", 2);
	converge(s, 3000);
	run_for(s, 2000);
	s->node[5].crashed = true;
	run_for(s, 30000);
	uint64_t sus = event_at(s, 0, SWIM_EV_SUSPECT, "n5", 0);
	uint64_t dead = event_at(s, 0, SWIM_EV_DEAD, "n5", 0);
	cr_assert(sus != NEVER && dead != NEVER);
	uint64_t confirmed = dead - sus;
	sim_free(s);

	s = sim_new(6, "lan", 2);
	converge(s, 3000);
	run_for(s, 2000);
	for (int i = 1; i < 6; i++)
		s->node[i].crashed = true;
	run_for(s, 120000); /* its probes slow down 8x as its health score climbs */
	sus = event_at(s, 0, SWIM_EV_SUSPECT, "n5", 0);
	dead = event_at(s, 0, SWIM_EV_DEAD, "n5", 0);
	cr_assert(sus != NEVER && dead != NEVER);
	uint64_t alone = dead - sus;
	sim_free(s);

	fprintf(stderr,
	        "swim: lan N=6 suspicion to death: %lu ms with confirmations, %lu ms without\n",
	        (unsigned long)confirmed, (unsigned long)alone);
	cr_assert_eq(alone, 24000, "no confirmation: the max timeout");
	cr_assert_leq(confirmed, 8000);
	cr_assert_lt(confirmed, alone);
}

Test(swim, probe_now_never_kills_a_healthy_member)
{
	struct sim *s = sim_new(3, "fast", 4);
	converge(s, 1000);
	cr_assert_eq(swim_probe_now(s->node[0].sw, s->now, "nobody"), -ENOENT);
	int started = 0;
	for (int k = 0; k < 1000; k++) {
		int rc = swim_probe_now(s->node[0].sw, s->now, "n1");
		cr_assert(rc == 0 || rc == -EALREADY, "rc %d", rc);
		started += rc == 0;
		pump(s, 0);
		run_for(s, 10);
	}
	cr_assert_gt(started, 10);
	cr_assert_eq(events_of(s, SWIM_EV_SUSPECT, 0) + events_of(s, SWIM_EV_DEAD, 0), 0);

	/* A broken link to a crashed member: probed now, but dead only when
	 * the suspicion runs out. */
	s->node[2].crashed = true;
	uint64_t t0 = s->now;
	cr_assert_eq(swim_probe_now(s->node[0].sw, s->now, "n2"), 0);
	pump(s, 0);
	struct member_state dead = {2, SWIM_DEAD};
	uint64_t t = run_until(s, 10000, all_see, &dead);
	cr_assert_neq(t, NEVER);
	uint64_t sus = event_at(s, 0, SWIM_EV_SUSPECT, "n2", t0);
	cr_assert_neq(sus, NEVER);
	cr_assert_geq(event_at(s, 0, SWIM_EV_DEAD, "n2", t0) - sus,
	              swim_suspicion_min_ms(&s->p, 3));
	sim_free(s);
}

/* ---- leaving and restarting ---------------------------------------------------- */

Test(swim, graceful_leave_is_seen_as_left_at_once)
{
	struct sim *s = sim_new(4, "lan", 6);
	converge(s, 3000);
	run_for(s, 1500);
	uint64_t t0 = s->now;
	swim_leave(s->node[3].sw, s->now);
	pump(s, 3);
	s->node[3].crashed = true; /* and the process exits */
	struct member_state left = {3, SWIM_LEFT};
	uint64_t t = run_until(s, 5000, all_see, &left);
	cr_assert_neq(t, NEVER);
	fprintf(stderr, "swim: lan N=4 leave: LEFT everywhere after %lu ms\n",
	        (unsigned long)(t - t0));
	cr_assert_leq(t - t0, s->p.gossip_interval_ms + s->p.probe_interval_ms);
	run_for(s, 60000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0, "a leave reported as a death");
	cr_assert_eq(events_of(s, SWIM_EV_SUSPECT, t0), 0);
	cr_assert_eq(events_of(s, SWIM_EV_LEFT, 0), 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(swim_member_count(s->node[i].sw, SWIM_LEFT), 1);
	cr_assert_eq(swim_probe_now(s->node[3].sw, s->now, "n0"), -ESHUTDOWN);
	sim_free(s);
}

Test(swim, restart_with_a_new_epoch_replaces_the_record)
{
	struct sim *s = sim_new(3, "fast", 8);
	converge(s, 1000);
	run_for(s, 1000);
	/* A datagram of the old process, for replaying later. */
	uint8_t old[SWIM_PUSH_PULL_BYTES_MAX];
	size_t old_len = s->node[2].last_sent_len;
	cr_assert_gt(old_len, 0);
	memcpy(old, s->node[2].last_sent, old_len);

	uint64_t t0 = s->now;
	swim_free(s->node[2].sw);
	uint64_t before = s->node[2].epoch;
	s->node[2].epoch = before + 1000;
	node_start(s, 2, CLUSTER, NULL, 0, 99);
	const char *seed = s->node[0].address;
	swim_join(s->node[2].sw, s->now, &seed, 1);
	pump(s, 2);
	uint64_t t = run_until(s, 2000, all_alive, NULL);
	cr_assert_neq(t, NEVER);
	for (int i = 0; i < 2; i++) {
		const struct node *nd = &s->node[i];
		bool seen = false;
		for (size_t k = 0; k < nd->log_len; k++) {
			const struct swim_event *ev = &nd->log[k].ev;
			if (nd->log[k].at_ms >= t0 && ev->type == SWIM_EV_RESTARTED &&
			    strcmp(ev->name, "n2") == 0) {
				cr_assert_eq(ev->epoch_before, before);
				cr_assert_eq(ev->epoch, before + 1000);
				seen = true;
			}
		}
		cr_assert(seen, "n%d saw no RESTARTED", i);
		size_t cursor = 0, records = 0;
		struct swim_member_info mi;
		while (swim_member_next(nd->sw, &cursor, &mi))
			records += strcmp(mi.name, "n2") == 0;
		cr_assert_eq(records, 1, "the old record is gone");
	}
	fprintf(stderr, "swim: fast N=3 restart: RESTARTED everywhere after %lu ms\n",
	        (unsigned long)(t - t0));
	/* The old process's words count for nothing now. */
	uint64_t stale = swim_counters(s->node[0].sw)->dropped[SWIM_DROP_STALE_EPOCH];
	cr_assert_eq(swim_receive(s->node[0].sw, s->now, s->node[2].address, old, old_len),
	             SWIM_DROP_STALE_EPOCH);
	cr_assert_eq(swim_counters(s->node[0].sw)->dropped[SWIM_DROP_STALE_EPOCH], stale + 1);
	pump(s, 0);
	run_for(s, 5000);
	cr_assert(all_alive(s, NULL));
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0);
	sim_free(s);
}

/* ---- partial failures and partitions ------------------------------------------ */

static void no_eviction(int n, bool both_ways)
{
	struct sim *s = sim_new(n, "lan", 9);
	converge(s, 3000);
	s->block[0][1] = true;
	if (both_ways)
		s->block[1][0] = true;
	run_for(s, 60000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0);
	cr_assert_eq(events_of(s, SWIM_EV_SUSPECT, 0), 0, "indirect probes should have answered");
	cr_assert(all_alive(s, NULL));
	cr_assert_gt(swim_counters(s->node[0].sw)->indirect_probes_sent, 0);
	cr_assert_eq(swim_health_score(s->node[2].sw), 0);
	sim_free(s);
}

Test(swim, asymmetric_failure_evicts_nobody)
{
	no_eviction(3, false); /* A cannot reach B; B reaches A; both reach C */
	no_eviction(3, true);
	no_eviction(5, true);
}

static void partition_heals(const int *side, int n, const char *what)
{
	struct sim *s = sim_new(n, "fast", 10);
	converge(s, 1000);
	run_for(s, 500);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			s->block[i][j] = side[i] != side[j];
	run_for(s, 10000);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++) {
			struct swim_member_info mi;
			if (i == j)
				continue;
			cr_assert(swim_member_get(s->node[i].sw, s->node[j].name, &mi));
			cr_assert_eq(mi.state, side[i] == side[j] ? SWIM_ALIVE : SWIM_DEAD,
			             "%s: n%d sees n%d %s", what, i, j, swim_state_name(mi.state));
		}
	memset(s->block, 0, sizeof(s->block));
	uint64_t t0 = s->now;
	uint64_t t = run_until(s, 20000, all_alive, NULL);
	cr_assert_neq(t, NEVER, "%s: not healed", what);
	fprintf(stderr, "swim: fast %s partition: all alive again %lu ms after the heal\n", what,
	        (unsigned long)(t - t0));
	run_for(s, 10000);
	cr_assert(all_alive(s, NULL), "%s: stays healed", what);
	sim_free(s);
}

Test(swim, partition_two_one_then_heal)
{
	static const int side[] = {0, 0, 1};
	partition_heals(side, 3, "2|1");
}

Test(swim, partition_one_one_one_then_heal)
{
	static const int side[] = {0, 1, 2};
	partition_heals(side, 3, "1|1|1");
}

Test(swim, lossy_network_converges_and_kills_nobody)
{
	struct sim *s = sim_new(5, "lan", 12);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 5; j++)
			s->loss_pct[i][j] = 5;
	s->jitter_ms = 20;
	converge(s, 10000);
	run_for(s, 120000);
	cr_assert_eq(events_of(s, SWIM_EV_DEAD, 0), 0);
	cr_assert(all_alive(s, NULL));
	sim_free(s);
}

/* ---- who gets in ------------------------------------------------------------- */

static void intruder(const char *cluster, const uint8_t *secret, size_t secret_len,
                     enum swim_drop reason)
{
	static const uint8_t key[] = "correct horse battery staple";
	struct sim *s = sim_new(4, "fast", 13);
	for (int i = 0; i < 4; i++) {
		swim_free(s->node[i].sw);
		if (i < 3)
			node_start(s, i, CLUSTER, key, sizeof(key) - 1, (uint64_t)i + 1);
		else
			node_start(s, i, cluster, secret, secret_len, 77);
	}
	join_all(s);
	run_for(s, 10000);
	for (int i = 0; i < 3; i++) {
		struct swim_member_info mi;
		cr_assert_not(swim_member_get(s->node[i].sw, "n3", &mi), "n%d admitted n3", i);
		cr_assert_eq(swim_member_count(s->node[i].sw, SWIM_ALIVE), 2);
	}
	cr_assert_eq(swim_member_count(s->node[3].sw, SWIM_ALIVE), 0);
	cr_assert_gt(swim_counters(s->node[0].sw)->dropped[reason], 0, "refusals counted as %s",
	             swim_drop_name(reason));
	sim_free(s);
}

Test(swim, wrong_secret_or_cluster_is_never_admitted)
{
	static const uint8_t wrong[] = "incorrect horse";
	static const uint8_t key[] = "correct horse battery staple";
	intruder(CLUSTER, wrong, sizeof(wrong) - 1, SWIM_DROP_AUTH);
	intruder(CLUSTER, NULL, 0, SWIM_DROP_AUTH);
	intruder("another", key, sizeof(key) - 1, SWIM_DROP_CLUSTER);
}

/* ---- payload --------------------------------------------------------------- */

static bool payload_seen(struct sim *s, const void *arg)
{
	const char *want = arg;
	for (int i = 1; i < s->n; i++) {
		bool seen = false;
		const struct node *nd = &s->node[i];
		for (size_t k = nd->log_len; k-- > 0 && !seen;) {
			const struct swim_event *ev = &nd->log[k].ev;
			if (ev->type == SWIM_EV_PAYLOAD && strcmp(ev->name, "n0") == 0)
				seen = ev->payload_len == strlen(want) &&
				       memcmp(ev->payload, want, ev->payload_len) == 0 &&
				       ev->epoch == s->node[0].epoch;
			if (ev->type == SWIM_EV_PAYLOAD && strcmp(ev->name, "n0") == 0)
				break; /* only the latest counts */
		}
		if (!seen)
			return false;
	}
	return true;
}

Test(swim, payload_piggybacks_and_changes_are_delivered)
{
	struct sim *s = sim_new(3, "fast", 14);
	cr_assert_eq(swim_set_payload(s->node[0].sw, (const uint8_t *)"digest-1", 8), 0);
	uint8_t big[SWIM_PAYLOAD_MAX + 1] = {0};
	cr_assert_eq(swim_set_payload(s->node[0].sw, big, sizeof(big)), -EMSGSIZE);
	converge(s, 1000);
	cr_assert_neq(run_until(s, 2000, payload_seen, "digest-1"), NEVER);
	uint64_t t0 = s->now;
	memset(big, 'x', SWIM_PAYLOAD_MAX);
	memcpy(big, "digest-2", 8);
	cr_assert_eq(swim_set_payload(s->node[0].sw, (const uint8_t *)"digest-2", 8), 0);
	uint64_t t = run_until(s, 2000, payload_seen, "digest-2");
	cr_assert_neq(t, NEVER);
	fprintf(stderr, "swim: fast N=3 payload change delivered after %lu ms\n",
	        (unsigned long)(t - t0));
	/* unchanged payloads raise nothing more */
	size_t n = events_of(s, SWIM_EV_PAYLOAD, 0);
	run_for(s, 3000);
	cr_assert_eq(events_of(s, SWIM_EV_PAYLOAD, 0), n);
	/* the largest payload fits too */
	cr_assert_eq(swim_set_payload(s->node[0].sw, big, SWIM_PAYLOAD_MAX), 0);
	run_for(s, 3000);
	cr_assert_gt(events_of(s, SWIM_EV_PAYLOAD, 0), n);
	cr_assert(all_alive(s, NULL));
	sim_free(s);
}

/* ---- bounds ------------------------------------------------------------------ */

Test(swim, queues_are_bounded_and_count_drops)
{
	/* events: nobody takes them out */
	struct sim *s = sim_new(5, "fast", 15);
	s->p.events_max = 2;
	swim_free(s->node[1].sw);
	node_start(s, 1, CLUSTER, NULL, 0, 5);
	s->node[1].keep_events = true;
	converge(s, 1000);
	cr_assert_gt(swim_counters(s->node[1].sw)->events_dropped, 0);
	struct swim_event ev;
	int kept = 0;
	while (swim_next_event(s->node[1].sw, &ev))
		kept++;
	cr_assert_eq(kept, 2);
	sim_free(s);

	/* members: a table of 2 in a cluster of 5 */
	s = sim_new(5, "fast", 16);
	s->p.members_max = 2;
	swim_free(s->node[4].sw);
	node_start(s, 4, CLUSTER, NULL, 0, 6);
	join_all(s);
	run_for(s, 5000);
	cr_assert_eq(swim_member_count(s->node[4].sw, SWIM_ALIVE), 2);
	cr_assert_gt(swim_counters(s->node[4].sw)->dropped[SWIM_DROP_MEMBERS_FULL], 0);
	sim_free(s);

	/* outgoing datagrams: two fit */
	struct swim_params p;
	swim_params_profile(&p, "fast");
	p.out_max = 2;
	struct swim_node self = {"a", "10.9.9.9:1", 1, CLUSTER, NULL, 0, 1};
	struct swim *sw = swim_new(&p, &self);
	const char *seeds[] = {"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1",
	                       "10.0.0.5:1"};
	cr_assert_eq(swim_join(sw, 1000, seeds, 5), 5);
	cr_assert_eq(swim_counters(sw)->dropped[SWIM_DROP_OUT_FULL], 3);
	struct swim_datagram d;
	int out = 0;
	while (swim_next_send(sw, &d))
		out++;
	cr_assert_eq(out, 2);
	swim_free(sw);
}

Test(swim, large_clusters_split_push_pull_and_bound_datagrams)
{
	/* One instance told about 1,000 members by a forged push-pull from
	 * a peer (built by another instance that learned them one by one). */
	struct swim_params p;
	swim_params_profile(&p, "lan");
	struct swim_node a = {"a", "10.1.0.1:1", 1, CLUSTER, NULL, 0, 1};
	struct swim_node b = {"b", "10.1.0.2:1", 1, CLUSTER, NULL, 0, 2};
	struct swim *sa = swim_new(&p, &a), *sb = swim_new(&p, &b);
	uint64_t now = 1000;
	/* Each fake member introduces itself to a with one ping. */
	for (int i = 0; i < 1000; i++) {
		char name[64], addr[32];
		snprintf(name, sizeof(name),
		         "member-with-a-rather-long-name-to-fill-datagrams-%04d", i);
		snprintf(addr, sizeof(addr), "10.2.%d.%d:7946", i / 250, i % 250);
		struct swim_node f = {name, addr, 7, CLUSTER, NULL, 0, (uint64_t)i};
		struct swim *sf = swim_new(&p, &f);
		const char *to = a.address;
		swim_join(sf, now, &to, 1);
		struct swim_datagram d;
		while (swim_next_send(sf, &d))
			cr_assert_eq(swim_receive(sa, now, f.address, d.bytes, d.len),
			             SWIM_DROP_NONE);
		swim_free(sf);
		while (swim_next_send(sa, &d)) /* a's answers go nowhere */
			cr_assert_leq(d.len, SWIM_PUSH_PULL_BYTES_MAX);
	}
	cr_assert_eq(swim_member_count(sa, SWIM_ALIVE), 1000);
	/* drain a's answers and gossip; every datagram within bounds */
	struct swim_datagram d;
	while (swim_next_send(sa, &d))
		cr_assert_leq(d.len, SWIM_PUSH_PULL_BYTES_MAX);
	/* b joins through a: a's answer comes in several parts */
	const char *to = a.address;
	swim_join(sb, now, &to, 1);
	while (swim_next_send(sb, &d))
		swim_receive(sa, now, b.address, d.bytes, d.len);
	int parts = 0;
	while (swim_next_send(sa, &d)) {
		if (strcmp(d.to, b.address) != 0)
			continue;
		cr_assert_leq(d.len, SWIM_PUSH_PULL_BYTES_MAX);
		cr_assert_eq(swim_receive(sb, now, a.address, d.bytes, d.len), SWIM_DROP_NONE);
		parts++;
	}
	cr_assert_gt(parts, 1, "1,001 records in one datagram?");
	cr_assert_eq(swim_member_count(sb, SWIM_ALIVE), 1001);
	/* gossip and probes stay under a frame */
	for (int k = 0; k < 50; k++) {
		now += 100;
		swim_tick(sb, now);
		while (swim_next_send(sb, &d))
			cr_assert_leq(d.len, SWIM_PACKET_BYTES_MAX);
	}
	swim_free(sa);
	swim_free(sb);
}

/* ---- bytes ---------------------------------------------------------------------- */

/* Capture real datagrams: n0's push-pull answer to a fresh join from n3
 * (every member in it, and n0's payload), or the largest probe-sized
 * packet n0 sends n1 (pings and acks with piggybacked updates). */
static size_t capture(const uint8_t *secret, size_t secret_len, uint8_t *out, size_t cap,
                      bool push_pull)
{
	struct sim *s = sim_new(4, "fast", 17);
	for (int i = 0; i < 4; i++) {
		swim_free(s->node[i].sw);
		node_start(s, i, CLUSTER, secret, secret_len, (uint64_t)i + 1);
	}
	swim_set_payload(s->node[0].sw, (const uint8_t *)"digest", 6);
	converge(s, 1000);
	s->cap_from = 0;
	if (push_pull) {
		s->cap_to = 3;
		const char *seed = s->node[0].address;
		swim_free(s->node[3].sw);
		s->node[3].epoch++;
		node_start(s, 3, CLUSTER, secret, secret_len, 9);
		swim_join(s->node[3].sw, s->now, &seed, 1);
		pump(s, 3);
		run_for(s, 20);
	} else {
		s->cap_to = 1;
		run_for(s, 2000);
	}
	size_t len = s->cap_len;
	cr_assert_gt(len, 0);
	cr_assert_leq(len, cap);
	memcpy(out, s->cap, len);
	sim_free(s);
	return len;
}

static struct swim *receiver(const uint8_t *secret, size_t secret_len)
{
	struct swim_params p;
	swim_params_profile(&p, "fast");
	struct swim_node self = {"r", "10.5.5.5:1", 1, CLUSTER, secret, secret_len, 3};
	struct swim *s = swim_new(&p, &self);
	cr_assert_not_null(s);
	return s;
}

/* Feed bytes to two fresh receivers: the same verdict and the same state,
 * and the counters add up. */
static enum swim_drop feed(const uint8_t *secret, size_t secret_len, const uint8_t *bytes,
                           size_t len)
{
	struct swim *a = receiver(secret, secret_len), *b = receiver(secret, secret_len);
	uint8_t *copy = malloc(len ? len : 1); /* exactly len: ASan sees overreads */
	memcpy(copy, bytes, len);
	enum swim_drop ra = swim_receive(a, 5000, "10.0.0.1:7946", copy, len);
	enum swim_drop rb = swim_receive(b, 5000, "10.0.0.1:7946", copy, len);
	free(copy);
	cr_assert_eq(ra, rb);
	cr_assert_eq(swim_member_count(a, SWIM_ALIVE), swim_member_count(b, SWIM_ALIVE));
	const struct swim_counters *c = swim_counters(a);
	uint64_t refused = 0; /* the reasons a received datagram is refused for */
	for (int k = SWIM_DROP_MALFORMED; k <= SWIM_DROP_STALE_EPOCH; k++)
		refused += c->dropped[k];
	cr_assert_eq(c->packets_received, 1);
	cr_assert_eq(refused, ra != SWIM_DROP_NONE);
	if (ra != SWIM_DROP_NONE)
		cr_assert_eq(c->dropped[ra], 1);
	swim_tick(a, 6000);
	swim_tick(a, 60000);
	cr_assert_leq(swim_member_count(a, SWIM_ALIVE) + swim_member_count(a, SWIM_SUSPECT) +
	                  swim_member_count(a, SWIM_DEAD) + swim_member_count(a, SWIM_LEFT),
	              SWIM_MEMBERS_MAX);
	swim_free(a);
	swim_free(b);
	return ra;
}

static void prefixes_and_flips(const uint8_t *secret, size_t secret_len, bool push_pull)
{
	static uint8_t pkt[SWIM_PUSH_PULL_BYTES_MAX];
	size_t len = capture(secret, secret_len, pkt, sizeof(pkt), push_pull);
	cr_assert_eq(feed(secret, secret_len, pkt, len), SWIM_DROP_NONE, "the real one");
	size_t accepted = 0;
	for (size_t k = 0; k < len; k++) {
		enum swim_drop r = feed(secret, secret_len, pkt, k);
		if (secret)
			cr_assert(r == SWIM_DROP_AUTH || r == SWIM_DROP_MALFORMED,
			          "a %zu-byte prefix of %zu got %s", k, len, swim_drop_name(r));
		accepted += r == SWIM_DROP_NONE;
	}
	struct rng rng;
	rng_seed(&rng, len);
	size_t flips_accepted = 0;
	static uint8_t bad[SWIM_PUSH_PULL_BYTES_MAX];
	for (int k = 0; k < 500; k++) {
		memcpy(bad, pkt, len);
		int bits = 1 + (int)rng_below(&rng, 3);
		for (int b = 0; b < bits; b++)
			bad[rng_below(&rng, (uint32_t)len)] ^= (uint8_t)(1u << rng_below(&rng, 8));
		enum swim_drop r = feed(secret, secret_len, bad, len);
		if (secret && memcmp(bad, pkt, len) != 0)
			cr_assert(r == SWIM_DROP_AUTH || r == SWIM_DROP_MALFORMED, "a flip got %s",
			          swim_drop_name(r));
		flips_accepted += r == SWIM_DROP_NONE;
	}
	fprintf(stderr, "swim: %s %s of %zu bytes: %zu prefixes and %zu of 500 flips accepted\n",
	        secret ? "with secret," : "no secret,", push_pull ? "push-pull" : "probe", len,
	        accepted, flips_accepted);
}

Test(swim, every_prefix_and_bit_flip_is_refused_or_accepted_consistently)
{
	static const uint8_t key[] = "k";
	prefixes_and_flips(NULL, 0, true);
	prefixes_and_flips(NULL, 0, false);
	prefixes_and_flips(key, 1, true);
	prefixes_and_flips(key, 1, false);
	/* junk */
	cr_assert_eq(feed(NULL, 0, (const uint8_t *)"", 0), SWIM_DROP_MALFORMED);
	cr_assert_eq(feed(NULL, 0, (const uint8_t *)"\xff\xff\xff", 3), SWIM_DROP_MALFORMED);
	static uint8_t huge[SWIM_DATAGRAM_BYTES_MAX + 1];
	cr_assert_eq(feed(NULL, 0, huge, sizeof(huge)), SWIM_DROP_MALFORMED);
}
