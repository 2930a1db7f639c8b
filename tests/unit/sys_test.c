/*
 * sys_test.c — the $SYS/broker/... tree: exact topics and values for a known
 * snapshot (mosquitto's names and formats), the item count and truncation at
 * max, topics that a subscriber to $SYS/# receives (valid names, unique,
 * under $SYS/broker/), and the load averages against hand-computed values:
 * nothing on the first update, a steady rate converging to that rate, a
 * burst decaying, a counter going backwards, an unusable interval.
 *
 * The expected damping factors are e^(-t/T) computed offline
 * (python3 -c 'import math; print(repr(math.exp(-10/60)))').
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <string.h>

#include "ops/sys.h"
#include "topic.h"

#define N_ITEMS 39 /* 18 plain topics + 7 load series x 3 periods */

/* e^(-10/60), e^(-10/300), e^(-10/900), e^(-1) */
static const double K10_1 = 0.8464817248906141;
static const double K10_5 = 0.9672161004820059;
static const double K10_15 = 0.9889503892939223;
static const double K60_1 = 0.36787944117144233;

static const struct sys_snapshot known = {
    .uptime_s = 3725,
    .clients_connected = 12,
    .clients_disconnected = 3,
    .clients_maximum = 40,
    .connections_total = 987,
    .msgs_received = 123456,
    .msgs_sent = 654321,
    .msgs_dropped = 7,
    .bytes_received = 10000000001ULL,
    .bytes_sent = 20000000002ULL,
    .subscriptions = 55,
    .retained = 9,
    .inflight = 4,
    .queued = 21,
    .heap_bytes = 1048576,
};

static const char *value_of(const struct sys_item *items, size_t n, const char *topic)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(items[i].topic, topic) == 0)
			return items[i].value;
	return NULL;
}

static void expect(const struct sys_item *items, size_t n, const char *topic, const char *value)
{
	const char *v = value_of(items, n, topic);
	cr_assert_not_null(v, "missing topic %s", topic);
	cr_assert_str_eq(v, value, "topic %s", topic);
}

static double near(double got, double want)
{
	double d = got - want;
	return d < 0 ? -d : d;
}

#define cr_assert_near(got, want, tol)                                                             \
	cr_assert(near((got), (want)) <= (tol), "%s = %.12f, want %.12f", #got, (double)(got),     \
	          (double)(want))

/* A snapshot whose load counters are all `c` (connections c / 100). */
static struct sys_snapshot at(uint64_t c)
{
	struct sys_snapshot s = {0};
	s.msgs_received = c;
	s.msgs_sent = 2 * c;
	s.bytes_received = 100 * c;
	s.bytes_sent = 200 * c;
	s.connections_total = c / 100;
	return s;
}

/* ---- the tree ----------------------------------------------------------- */

Test(sys, known_snapshot_exact_topics_and_values)
{
	struct sys_load l = {0};
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&known, &l, "starling 0.1.0", items, SYS_ITEMS_MAX);
	cr_assert_eq(n, N_ITEMS);

	static const char *const want[][2] = {
	    {"$SYS/broker/version", "starling 0.1.0"},
	    {"$SYS/broker/uptime", "3725 seconds"},
	    {"$SYS/broker/clients/connected", "12"},
	    {"$SYS/broker/clients/disconnected", "3"},
	    {"$SYS/broker/clients/total", "15"},
	    {"$SYS/broker/clients/maximum", "40"},
	    {"$SYS/broker/messages/received", "123456"},
	    {"$SYS/broker/messages/sent", "654321"},
	    {"$SYS/broker/publish/messages/received", "123456"},
	    {"$SYS/broker/publish/messages/sent", "654321"},
	    {"$SYS/broker/publish/messages/dropped", "7"},
	    {"$SYS/broker/bytes/received", "10000000001"},
	    {"$SYS/broker/bytes/sent", "20000000002"},
	    {"$SYS/broker/subscriptions/count", "55"},
	    {"$SYS/broker/retained messages/count", "9"},
	    {"$SYS/broker/messages/inflight", "4"},
	    {"$SYS/broker/store/messages/count", "21"},
	    {"$SYS/broker/heap/current", "1048576"},
	};
	size_t nwant = sizeof(want) / sizeof(want[0]);
	/* The plain topics come first, in this order. */
	for (size_t i = 0; i < nwant; i++) {
		cr_assert_str_eq(items[i].topic, want[i][0], "item %zu", i);
		cr_assert_str_eq(items[i].value, want[i][1], "topic %s", want[i][0]);
	}
	/* Then the 21 load averages, all "0.00" before any update. */
	static const char *const series[] = {
	    "messages/received", "messages/sent", "publish/received", "publish/sent",
	    "bytes/received",    "bytes/sent",    "connections",
	};
	static const char *const periods[] = {"1min", "5min", "15min"};
	size_t i = nwant;
	for (size_t s = 0; s < 7; s++) {
		for (size_t p = 0; p < 3; p++, i++) {
			char topic[80];
			snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", series[s],
			         periods[p]);
			cr_assert_str_eq(items[i].topic, topic, "item %zu", i);
			cr_assert_str_eq(items[i].value, "0.00", "topic %s", topic);
		}
	}
	cr_assert_eq(i, n);
}

Test(sys, count_fits_and_is_stable)
{
	struct sys_load l = {0};
	struct sys_item items[SYS_ITEMS_MAX];
	struct sys_snapshot zero = {0};
	cr_assert_leq(N_ITEMS, SYS_ITEMS_MAX);
	cr_assert_eq(sys_items(&known, &l, "v", items, SYS_ITEMS_MAX), N_ITEMS);
	cr_assert_eq(sys_items(&zero, &l, "v", items, SYS_ITEMS_MAX), N_ITEMS);
	sys_load_update(&l, &known, 10);
	sys_load_update(&l, &known, 10);
	cr_assert_eq(sys_items(&known, &l, "v", items, SYS_ITEMS_MAX), N_ITEMS);
	/* More room than needed changes nothing. */
	struct sys_item big[100];
	cr_assert_eq(sys_items(&known, &l, "v", big, 100), N_ITEMS);
}

Test(sys, max_truncates_and_writes_nothing_past_it)
{
	struct sys_load l = {0};
	struct sys_item full[SYS_ITEMS_MAX], items[SYS_ITEMS_MAX];
	sys_items(&known, &l, "starling 0.1.0", full, SYS_ITEMS_MAX);
	memset(items, 0x5A, sizeof(items));

	cr_assert_eq(sys_items(&known, &l, "starling 0.1.0", items, 5), 5);
	for (size_t i = 0; i < 5; i++) {
		cr_assert_str_eq(items[i].topic, full[i].topic);
		cr_assert_str_eq(items[i].value, full[i].value);
	}
	const unsigned char *p = (const unsigned char *)&items[5];
	for (size_t b = 0; b < sizeof(items) - 5 * sizeof(items[0]); b++)
		cr_assert_eq(p[b], 0x5A, "byte %zu past max was written", b);

	cr_assert_eq(sys_items(&known, &l, "starling 0.1.0", NULL, 0), 0);
	cr_assert_eq(sys_items(&known, &l, "starling 0.1.0", items, N_ITEMS - 1), N_ITEMS - 1);
}

Test(sys, every_topic_is_a_valid_unique_name_under_sys_broker)
{
	struct sys_load l = {0};
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&known, &l, "starling 0.1.0", items, SYS_ITEMS_MAX);
	for (size_t i = 0; i < n; i++) {
		const char *t = items[i].topic;
		cr_assert_eq(strncmp(t, "$SYS/broker/", 12), 0, "%s", t);
		cr_assert_gt(strlen(t), 12, "%s", t);
		cr_assert_null(strchr(t, '+'), "%s", t);
		cr_assert_null(strchr(t, '#'), "%s", t);
		cr_assert(mqtt_topic_name_valid(mqtt_view_str(t)), "%s", t);
		cr_assert_null(strstr(t, "//"), "empty level in %s", t);
		cr_assert_neq(t[strlen(t) - 1], '/', "%s", t);
		for (size_t j = 0; j < i; j++)
			cr_assert_str_neq(t, items[j].topic, "duplicate topic");
	}
}

Test(sys, extreme_values_and_a_long_version)
{
	struct sys_snapshot s = {0};
	s.uptime_s = UINT64_MAX;
	s.bytes_sent = UINT64_MAX;
	s.clients_connected = 5;
	s.clients_disconnected = 0;
	struct sys_load l = {0};
	char version[200];
	memset(version, 'v', sizeof(version) - 1);
	version[sizeof(version) - 1] = '\0';

	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&s, &l, version, items, SYS_ITEMS_MAX);
	cr_assert_eq(n, N_ITEMS);
	expect(items, n, "$SYS/broker/uptime", "18446744073709551615 seconds");
	expect(items, n, "$SYS/broker/bytes/sent", "18446744073709551615");
	expect(items, n, "$SYS/broker/clients/total", "5");
	expect(items, n, "$SYS/broker/heap/current", "0");
	/* The version is cut to fit, still terminated. */
	const char *v = value_of(items, n, "$SYS/broker/version");
	cr_assert_eq(strlen(v), sizeof(items[0].value) - 1);
	cr_assert_eq(strspn(v, "v"), strlen(v));
}

/* ---- load averages ------------------------------------------------------ */

Test(sys, first_update_only_records)
{
	struct sys_load l = {0};
	struct sys_snapshot s = at(1000000);
	sys_load_update(&l, &s, 10);
	cr_assert(l.primed);
	for (size_t i = 0; i < SYS_LOAD_SERIES_N; i++)
		for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++)
			cr_assert_eq(l.avg_per_min[i][p], 0.0, "series %zu period %zu", i, p);
	cr_assert_eq(l.prev[SYS_LOAD_MSGS_RX], 1000000);
	cr_assert_eq(l.prev[SYS_LOAD_BYTES_TX], 200000000);

	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&s, &l, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/messages/received/1min", "0.00");
	expect(items, n, "$SYS/broker/load/bytes/sent/15min", "0.00");
}

Test(sys, one_update_matches_hand_computed_values)
{
	struct sys_load l = {0};
	struct sys_snapshot s0 = at(1000), s1 = at(1600);
	sys_load_update(&l, &s0, 10);
	/* 600 PUBLISH in 10 s = 3600 per minute. */
	sys_load_update(&l, &s1, 10);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], 3600 * (1 - K10_1), 1e-9);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_5MIN], 3600 * (1 - K10_5), 1e-9);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_15MIN], 3600 * (1 - K10_15), 1e-9);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_TX][SYS_LOAD_1MIN], 7200 * (1 - K10_1), 1e-9);
	cr_assert_near(l.avg_per_min[SYS_LOAD_BYTES_TX][SYS_LOAD_1MIN], 720000 * (1 - K10_1), 1e-7);
	/* connections 10 -> 16: 6 in 10 s = 36 per minute */
	cr_assert_near(l.avg_per_min[SYS_LOAD_CONNS][SYS_LOAD_1MIN], 36 * (1 - K10_1), 1e-9);

	/* 3600 * (1 - e^-1/6) = 552.6657839..., 3600 * (1 - e^-1/30) = 118.0220..., ... */
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&s1, &l, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/messages/received/1min", "552.67");
	expect(items, n, "$SYS/broker/load/messages/received/5min", "118.02");
	expect(items, n, "$SYS/broker/load/messages/received/15min", "39.78");
	expect(items, n, "$SYS/broker/load/publish/received/1min", "552.67");
	expect(items, n, "$SYS/broker/load/messages/sent/1min", "1105.33");
	expect(items, n, "$SYS/broker/load/publish/sent/15min", "79.56");
	expect(items, n, "$SYS/broker/load/connections/1min", "5.53");
}

Test(sys, steady_rate_converges_to_the_rate)
{
	struct sys_load l = {0};
	uint64_t c = 0;
	struct sys_snapshot s = at(c);
	sys_load_update(&l, &s, 10);
	/* 6 hours at 600 per 10 s: every average approaches 3600 per minute,
	 * and after k updates is 3600 * (1 - K^k) exactly (the 15-minute one is
	 * still 0.03% short after 2 hours: e^-8). */
	double k1 = 1, k15 = 1;
	for (int i = 0; i < 2160; i++) {
		c += 600;
		s = at(c);
		sys_load_update(&l, &s, 10);
		k1 *= K10_1;
		k15 *= K10_15;
		if (i == 5) {
			cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN],
			               3600 * (1 - k1), 1e-8);
			cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_15MIN],
			               3600 * (1 - k15), 1e-8);
		}
	}
	for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++) {
		cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][p], 3600, 1e-3);
		cr_assert_near(l.avg_per_min[SYS_LOAD_BYTES_RX][p], 360000, 1e-1);
	}
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&s, &l, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/messages/received/1min", "3600.00");
	expect(items, n, "$SYS/broker/load/messages/received/15min", "3600.00");
	expect(items, n, "$SYS/broker/load/bytes/received/5min", "360000.00");
}

Test(sys, one_burst_decays)
{
	struct sys_load l = {0};
	struct sys_snapshot s = at(0);
	sys_load_update(&l, &s, 10);
	s = at(600); /* one burst of 600 in one interval, then silence */
	sys_load_update(&l, &s, 10);
	double peak1 = 3600 * (1 - K10_1), peak5 = 3600 * (1 - K10_5);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], peak1, 1e-9);
	double k1 = 1, k5 = 1;
	for (int i = 1; i <= 6; i++) {
		sys_load_update(&l, &s, 10);
		k1 *= K10_1;
		k5 *= K10_5;
		cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], peak1 * k1, 1e-9);
		cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_5MIN], peak5 * k5, 1e-9);
	}
	/* Six updates of 10 s = one minute: the 1-minute average fell by e. */
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], peak1 * K60_1, 1e-9);
	/* The longer periods forget more slowly: a larger share of their peak. */
	cr_assert_gt(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_5MIN] / peak5,
	             l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN] / peak1);
	for (int i = 0; i < 1000; i++) /* 10000 s: 15-min share e^-11 */
		sys_load_update(&l, &s, 10);
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&s, &l, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/messages/received/1min", "0.00");
	expect(items, n, "$SYS/broker/load/messages/received/15min", "0.00");
}

Test(sys, interval_length_scales_rate_and_damping)
{
	/* One update of 60 s over the 1-minute period: factor e^-1. */
	struct sys_load l = {0};
	struct sys_snapshot s = at(0);
	sys_load_update(&l, &s, 60);
	s = at(600); /* 600 in 60 s = 600 per minute */
	sys_load_update(&l, &s, 60);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], 600 * (1 - K60_1), 1e-9);

	/* A fractional interval: 5 in 2.5 s = 120 per minute. */
	struct sys_load m = {0};
	s = at(0);
	sys_load_update(&m, &s, 2.5);
	s = at(5);
	sys_load_update(&m, &s, 2.5);
	/* e^(-2.5/60) = 0.9591894571091382 */
	cr_assert_near(m.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN],
	               120 * (1 - 0.9591894571091382), 1e-9);

	/* A very long gap forgets everything before it: the average is the rate. */
	struct sys_load g = {0};
	s = at(0);
	sys_load_update(&g, &s, 10);
	s = at(1000000);
	sys_load_update(&g, &s, 10);
	s = at(1000000 + 36000);
	sys_load_update(&g, &s, 36000); /* 36000 in 10 h = 60 per minute */
	for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++)
		cr_assert_near(g.avg_per_min[SYS_LOAD_MSGS_RX][p], 60, 1e-6);
}

Test(sys, backwards_counter_counts_as_nothing)
{
	struct sys_load l = {0};
	struct sys_snapshot s = at(1000);
	sys_load_update(&l, &s, 10);
	s = at(1600);
	sys_load_update(&l, &s, 10);
	double before = l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN];

	/* A reset: every counter drops. No 2^64-sized delta, only decay. */
	s = at(100);
	sys_load_update(&l, &s, 10);
	for (size_t i = 0; i < SYS_LOAD_SERIES_N; i++)
		for (size_t p = 0; p < SYS_LOAD_PERIODS_N; p++)
			cr_assert_lt(l.avg_per_min[i][p], 1e6, "series %zu period %zu", i, p);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], before * K10_1, 1e-9);
	cr_assert_eq(l.prev[SYS_LOAD_MSGS_RX], 100, "the lower value is the new baseline");

	/* Counting resumes from the new baseline: 100 -> 700 is 600 again. */
	s = at(700);
	sys_load_update(&l, &s, 10);
	cr_assert_near(l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN],
	               before * K10_1 * K10_1 + 3600 * (1 - K10_1), 1e-9);

	/* Only one series going backwards leaves the others alone. */
	struct sys_load m = {0};
	struct sys_snapshot a = at(1000), b = at(1600);
	sys_load_update(&m, &a, 10);
	b.bytes_sent = 5;
	sys_load_update(&m, &b, 10);
	cr_assert_eq(m.avg_per_min[SYS_LOAD_BYTES_TX][SYS_LOAD_1MIN], 0.0);
	cr_assert_near(m.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN], 3600 * (1 - K10_1), 1e-9);

	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&b, &m, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/bytes/sent/1min", "0.00");
}

Test(sys, unusable_interval_keeps_averages_and_rebases)
{
	struct sys_load l = {0};
	struct sys_snapshot s = at(1000);
	sys_load_update(&l, &s, 10);
	s = at(1600);
	sys_load_update(&l, &s, 10);
	struct sys_load saved = l;

	const double bad[] = {0.0, -10.0, __builtin_nan(""), __builtin_inf()};
	uint64_t c = 1600;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c += 600;
		s = at(c);
		sys_load_update(&l, &s, bad[i]);
		cr_assert_eq(memcmp(l.avg_per_min, saved.avg_per_min, sizeof(l.avg_per_min)), 0,
		             "interval %g changed the averages", bad[i]);
		cr_assert_eq(l.prev[SYS_LOAD_MSGS_RX], c, "interval %g: counters not recorded",
		             bad[i]);
	}
	/* The next good update counts only what came after the last snapshot. */
	s = at(c + 600);
	sys_load_update(&l, &s, 10);
	cr_assert_near(
	    l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN],
	    saved.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN] * K10_1 + 3600 * (1 - K10_1), 1e-9);
}

Test(sys, load_values_have_two_decimals)
{
	struct sys_load l = {0};
	l.primed = true;
	l.avg_per_min[SYS_LOAD_MSGS_RX][SYS_LOAD_1MIN] = 1234.5678;
	l.avg_per_min[SYS_LOAD_BYTES_RX][SYS_LOAD_5MIN] = 0.004;
	l.avg_per_min[SYS_LOAD_CONNS][SYS_LOAD_15MIN] = 7;
	struct sys_item items[SYS_ITEMS_MAX];
	size_t n = sys_items(&known, &l, "v", items, SYS_ITEMS_MAX);
	expect(items, n, "$SYS/broker/load/messages/received/1min", "1234.57");
	expect(items, n, "$SYS/broker/load/publish/received/1min", "1234.57");
	expect(items, n, "$SYS/broker/load/bytes/received/5min", "0.00");
	expect(items, n, "$SYS/broker/load/connections/15min", "7.00");
	expect(items, n, "$SYS/broker/load/messages/sent/1min", "0.00");
}

Test(sys, the_cluster_view_only_in_a_cluster)
{
	struct sys_load l = {0};
	struct sys_item items[SYS_ITEMS_MAX];
	struct sys_snapshot s = known;
	s.cluster = true;
	snprintf(s.node, sizeof(s.node), "node-2");
	s.nodes[0] = 2;
	s.nodes[2] = 1;
	s.links_up = 4;
	s.forwarded_in = 10;
	s.forwarded_out = 20;
	s.routes = 3;
	s.synced = true;
	size_t n = sys_items(&s, &l, "v", items, SYS_ITEMS_MAX);
	cr_assert_eq(n, N_ITEMS + 10);
	expect(items, n, "$SYS/broker/cluster/node", "node-2");
	expect(items, n, "$SYS/broker/cluster/nodes/alive", "2");
	expect(items, n, "$SYS/broker/cluster/nodes/suspect", "0");
	expect(items, n, "$SYS/broker/cluster/nodes/dead", "1");
	expect(items, n, "$SYS/broker/cluster/nodes/left", "0");
	expect(items, n, "$SYS/broker/cluster/links/up", "4");
	expect(items, n, "$SYS/broker/cluster/forwarded/received", "10");
	expect(items, n, "$SYS/broker/cluster/forwarded/sent", "20");
	expect(items, n, "$SYS/broker/cluster/routes", "3");
	expect(items, n, "$SYS/broker/cluster/synced", "1");
	cr_assert_eq(sys_items(&known, &l, "v", items, SYS_ITEMS_MAX), N_ITEMS, "none alone");
}
