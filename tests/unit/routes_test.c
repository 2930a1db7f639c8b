/*
 * routes_test.c — the cluster's route tables (cluster/routes.h): the
 * origin numbers its changes and keeps a bounded log; a peer catches up by
 * delta or by a snapshot in chunks; gaps apply nothing; a new epoch or a
 * dead node drops the copy with a removal reported per filter; the digest
 * round trips within its bound; limits are counted. And the property the
 * rest serves: over thousands of random subscribe/unsubscribe flaps, lost
 * deltas, broken links, restarts and deaths, the caller's index (rebuilt
 * from nothing but the callbacks) always equals the peer's copy, and after
 * a catch-up the copy equals the origin's set.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "rng.h"
#include "routes.h"

/* ---- the caller's index, as the callbacks build it ------------------------- */

#define MIRROR_MAX 4096

struct mirror {
	char *f[MIRROR_MAX]; /* filters reported added and not removed */
	size_t n;
	uint64_t adds, removes;
	const char *node; /* the peer it mirrors */
};

static ssize_t mirror_find(const struct mirror *m, struct mqtt_view f)
{
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->f[i]) == f.len && memcmp(m->f[i], f.ptr, f.len) == 0)
			return (ssize_t)i;
	return -1;
}

static void on_change(void *arg, const char *node, struct mqtt_view f, bool add)
{
	struct mirror *m = arg;
	cr_assert_str_eq(node, m->node);
	ssize_t i = mirror_find(m, f);
	if (add) {
		cr_assert_lt(i, 0, "%.*s reported added twice", (int)f.len, f.ptr);
		cr_assert_lt(m->n, MIRROR_MAX);
		m->f[m->n] = strndup((const char *)f.ptr, f.len);
		m->n++;
		m->adds++;
	} else {
		cr_assert_geq(i, 0, "%.*s reported removed but never added", (int)f.len, f.ptr);
		free(m->f[i]);
		m->f[i] = m->f[--m->n];
		m->removes++;
	}
}

static void mirror_clear(struct mirror *m)
{
	for (size_t i = 0; i < m->n; i++)
		free(m->f[i]);
	m->n = 0;
}

/* The index equals the copy: nothing left behind, nothing missing. */
static void assert_mirror(const struct mirror *m, const struct route_peer *r)
{
	cr_assert_eq(m->n, route_peer_count(r), "index %zu filters, copy %u", m->n,
	             route_peer_count(r));
	for (size_t i = 0; i < m->n; i++)
		cr_assert(route_peer_has(r, mqtt_view_str(m->f[i])), "orphan %s", m->f[i]);
}

/* The copy equals the origin's set. */
static void assert_same_set(const struct route_origin *o, const struct route_peer *r)
{
	cr_assert_eq(route_peer_count(r), route_origin_count(o), "copy %u, origin %u",
	             route_peer_count(r), route_origin_count(o));
	uint32_t cursor = 0;
	struct mqtt_view f;
	while (route_peer_next(r, &cursor, &f))
		cr_assert(route_origin_has(o, f), "%.*s not at the origin", (int)f.len, f.ptr);
}

static struct route_params params(void)
{
	struct route_params p;
	route_params_default(&p);
	p.hash_seed = 12345;
	return p;
}

static struct mqtt_view V(const char *s) {
	return mqtt_view_str(s);
}

/* Send the origin's changes after after_seq to the peer, in chunks. */
static void
send_changes(struct route_origin *o, struct route_peer *r, uint64_t after_seq, size_t chunk)
{
	struct route_change ch[64];
	cr_assert_leq(chunk, 64);
	for (;;) {
		int n = route_origin_changes(o, after_seq, ch, chunk, SIZE_MAX);
		cr_assert_geq(n, 0, "changes after %lu: %d", (unsigned long)after_seq, n);
		if (n == 0)
			return;
		enum route_result res =
		    route_peer_delta(r, route_origin_epoch(o), after_seq + 1, ch, (size_t)n);
		cr_assert_eq(res, ROUTE_APPLIED, "%s", route_result_name(res));
		after_seq += (uint64_t)n;
	}
}

/* Send a whole snapshot in chunks of at most chunk filters. */
static unsigned send_snapshot(struct route_origin *o, struct route_peer *r, size_t chunk)
{
	struct route_snapshot_cursor c;
	struct mqtt_view out[64];
	cr_assert_leq(chunk, 64);
	route_origin_snapshot_begin(o, &c);
	unsigned chunks = 0;
	bool last = false;
	while (!last) {
		int n = route_origin_snapshot_next(o, &c, out, chunk, SIZE_MAX, &last);
		cr_assert_geq(n, 0);
		chunks++;
		enum route_result res =
		    route_peer_snapshot(r, c.epoch, c.seq, out, (size_t)n, last);
		cr_assert_eq(res, ROUTE_APPLIED, "%s", route_result_name(res));
	}
	return chunks;
}

/* ---- the origin ------------------------------------------------------------ */

Test(routes, origin_numbering_and_bounded_log)
{
	struct route_params p = params();
	p.log_max = 4;
	struct route_origin *o = route_origin_new(&p, "node-a", 7);
	cr_assert_not_null(o);
	cr_assert_eq(route_origin_seq(o), 0);
	cr_assert_eq(route_origin_add(o, V("a/#")), 1);
	cr_assert_eq(route_origin_seq(o), 1);
	cr_assert_eq(route_origin_add(o, V("b/+")), 1);
	cr_assert_eq(route_origin_add(o, V("$share/g/c")), 1);
	cr_assert_eq(route_origin_seq(o), 3);
	cr_assert_eq(route_origin_add(o, V("a/#")), 0, "held already: not numbered");
	cr_assert_eq(route_origin_remove(o, V("zzz")), 0, "not held: not numbered");
	cr_assert_eq(route_origin_counters(o)->unmatched, 2);
	cr_assert_eq(route_origin_seq(o), 3);
	cr_assert_eq(route_origin_remove(o, V("b/+")), 1);
	cr_assert_eq(route_origin_seq(o), 4);
	cr_assert_eq(route_origin_count(o), 2);

	struct route_change ch[8];
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, SIZE_MAX), 4);
	cr_assert(mqtt_view_eq_str(ch[0].filter, "a/#") && ch[0].add);
	cr_assert(mqtt_view_eq_str(ch[1].filter, "b/+") && ch[1].add);
	cr_assert(mqtt_view_eq_str(ch[2].filter, "$share/g/c") && ch[2].add);
	cr_assert(mqtt_view_eq_str(ch[3].filter, "b/+") && !ch[3].add,
	          "the removal kept its bytes");
	cr_assert_eq(route_origin_changes(o, 2, ch, 8, SIZE_MAX), 2);
	cr_assert(mqtt_view_eq_str(ch[0].filter, "$share/g/c"));
	cr_assert_eq(route_origin_changes(o, 4, ch, 8, SIZE_MAX), 0);
	cr_assert_eq(route_origin_changes(o, 5, ch, 8, SIZE_MAX), -ERANGE, "ahead of the origin");
	/* chunks: by count, and by bytes (always one at least) */
	cr_assert_eq(route_origin_changes(o, 0, ch, 3, SIZE_MAX), 3);
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, 4), 1);
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, 0), 1);

	/* the log holds the last 4: changes 2..5 after one more */
	cr_assert_eq(route_origin_add(o, V("d")), 1);
	cr_assert_eq(route_origin_counters(o)->log_evicted, 1);
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, SIZE_MAX), -ERANGE);
	cr_assert_eq(route_origin_changes(o, 1, ch, 8, SIZE_MAX), 4);

	uint64_t after;
	cr_assert_eq(route_origin_catchup(o, 7, 5, &after), ROUTE_CURRENT);
	cr_assert_eq(route_origin_catchup(o, 7, 1, &after), ROUTE_BY_DELTA);
	cr_assert_eq(after, 1);
	cr_assert_eq(route_origin_catchup(o, 7, 0, &after), ROUTE_BY_SNAPSHOT, "change 1 is gone");
	cr_assert_eq(route_origin_catchup(o, 0, 0, &after), ROUTE_BY_SNAPSHOT, "asked for one");
	cr_assert_eq(route_origin_catchup(o, 6, 99, &after), ROUTE_BY_SNAPSHOT, "an old epoch");
	cr_assert_eq(route_origin_catchup(o, 7, 9, &after), ROUTE_BY_SNAPSHOT, "ahead of us");

	struct route_origin_counters c = *route_origin_counters(o);
	cr_assert_eq(c.adds, 4);
	cr_assert_eq(c.removes, 1);
	route_origin_free(o);

	/* the log's bytes bound it too; a change too big to log empties it,
	 * so a delta never skips one */
	p = params();
	p.log_bytes_max = 10;
	o = route_origin_new(&p, "node-a", 7);
	cr_assert_eq(route_origin_add(o, V("aaaa")), 1);
	cr_assert_eq(route_origin_add(o, V("bbbb")), 1);
	cr_assert_eq(route_origin_add(o, V("cccc")), 1); /* 12 bytes: the first goes */
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, SIZE_MAX), -ERANGE);
	cr_assert_eq(route_origin_changes(o, 1, ch, 8, SIZE_MAX), 2);
	cr_assert_eq(route_origin_add(o, V("0123456789a")), 1); /* 11 bytes: unloggable */
	cr_assert_eq(route_origin_changes(o, 3, ch, 8, SIZE_MAX), -ERANGE);
	cr_assert_eq(route_origin_changes(o, 4, ch, 8, SIZE_MAX), 0);
	cr_assert_eq(route_origin_catchup(o, 7, 3, &after), ROUTE_BY_SNAPSHOT);
	cr_assert_eq(route_origin_add(o, V("e")), 1);
	cr_assert_eq(route_origin_changes(o, 4, ch, 8, SIZE_MAX), 1);
	route_origin_free(o);

	/* no log at all: every catch-up is a snapshot */
	p = params();
	p.log_max = 0;
	o = route_origin_new(&p, "node-a", 7);
	cr_assert_eq(route_origin_add(o, V("x")), 1);
	cr_assert_eq(route_origin_catchup(o, 7, 0, &after), ROUTE_BY_SNAPSHOT);
	cr_assert_eq(route_origin_changes(o, 0, ch, 8, SIZE_MAX), -ERANGE);
	route_origin_free(o);
}

Test(routes, origin_refuses_bad_input)
{
	struct route_params p = params();
	cr_assert_null(route_origin_new(&p, "bad name", 1));
	cr_assert_null(route_origin_new(&p, "n", 0), "epoch 0 is no epoch");
	p.filter_bytes_max = 0;
	cr_assert_null(route_origin_new(&p, "n", 1));
	cr_assert_not_null(route_params_invalid(&p));
	p = params();
	cr_assert_null(route_params_invalid(&p));
}

Test(routes, snapshot_cursor)
{
	struct route_params p = params();
	struct route_origin *o = route_origin_new(&p, "node-a", 3);
	struct route_snapshot_cursor c;
	struct mqtt_view out[8];
	bool last;
	/* an empty set is one empty, last chunk */
	route_origin_snapshot_begin(o, &c);
	cr_assert_eq(route_origin_snapshot_next(o, &c, out, 8, SIZE_MAX, &last), 0);
	cr_assert(last);
	cr_assert_eq(c.seq, 0);

	char name[32];
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "t/%d/#", i);
		cr_assert_eq(route_origin_add(o, V(name)), 1);
	}
	route_origin_snapshot_begin(o, &c);
	size_t total = 0;
	unsigned chunks = 0;
	do {
		int n = route_origin_snapshot_next(o, &c, out, 8, SIZE_MAX, &last);
		cr_assert_geq(n, 1);
		cr_assert_leq(n, 8);
		total += (size_t)n;
		chunks++;
	} while (!last);
	cr_assert_eq(total, 100);
	cr_assert_eq(chunks, 13);
	cr_assert_eq(c.seq, 100);

	/* by bytes: each "t/NN/#" is 6 bytes, 7 for "t/1/#"-style... at
	 * least one per chunk, never more than the bytes allow */
	route_origin_snapshot_begin(o, &c);
	total = 0;
	do {
		int n = route_origin_snapshot_next(o, &c, out, 8, 13, &last);
		size_t bytes = 0;
		for (int i = 0; i < n; i++)
			bytes += out[i].len;
		cr_assert(n == 1 || bytes <= 13);
		total += (size_t)n;
	} while (!last);
	cr_assert_eq(total, 100);

	/* a change in between: the cursor is stale */
	route_origin_snapshot_begin(o, &c);
	cr_assert_gt(route_origin_snapshot_next(o, &c, out, 8, SIZE_MAX, &last), 0);
	cr_assert_eq(route_origin_remove(o, V("t/5/#")), 1);
	cr_assert_eq(route_origin_snapshot_next(o, &c, out, 8, SIZE_MAX, &last), -ESTALE);
	route_origin_free(o);
}

/* ---- a peer ---------------------------------------------------------------- */

Test(routes, catch_up_by_delta_and_by_snapshot)
{
	struct route_params p = params();
	p.log_max = 64;
	struct route_origin *o = route_origin_new(&p, "node-a", 11);
	struct mirror near = {.node = "node-a"}, far = {.node = "node-a"};
	struct route_peer *rn = route_peer_new(&p, "node-a", on_change, &near);
	struct route_peer *rf = route_peer_new(&p, "node-a", on_change, &far);
	char name[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "f/%d/+", i);
		cr_assert_eq(route_origin_add(o, V(name)), 1);
	}
	/* both start from a snapshot, in chunks of 16 */
	cr_assert_eq(send_snapshot(o, rn, 16), 63);
	send_snapshot(o, rf, 64);
	assert_same_set(o, rn);
	assert_same_set(o, rf);
	assert_mirror(&near, rn);
	assert_mirror(&far, rf);
	cr_assert_eq(route_peer_seq(rn), 1000);

	/* 40 changes: within the log */
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f/%d/+", i);
		cr_assert_eq(route_origin_remove(o, V(name)), 1);
		snprintf(name, sizeof(name), "g/%d", i);
		cr_assert_eq(route_origin_add(o, V(name)), 1);
	}
	uint64_t after;
	struct route_digest_entry d;
	route_peer_digest(rn, &d);
	cr_assert_str_eq(d.origin, "node-a");
	cr_assert_eq(route_origin_catchup(o, d.epoch, d.seq, &after), ROUTE_BY_DELTA);
	cr_assert(route_peer_behind(rn, 11, route_origin_seq(o)));
	uint64_t removes = near.removes;
	send_changes(o, rn, after, 7);
	assert_same_set(o, rn);
	assert_mirror(&near, rn);
	cr_assert_eq(near.removes - removes, 20, "one removal reported per filter");
	cr_assert_not(route_peer_behind(rn, 11, route_origin_seq(o)));

	/* 100 more: the far peer is beyond the log now */
	for (int i = 20; i < 70; i++) {
		snprintf(name, sizeof(name), "f/%d/+", i);
		route_origin_remove(o, V(name));
		snprintf(name, sizeof(name), "g/%d", i);
		route_origin_add(o, V(name));
	}
	route_peer_digest(rf, &d);
	cr_assert_eq(route_origin_catchup(o, d.epoch, d.seq, &after), ROUTE_BY_SNAPSHOT);
	uint64_t adds = far.adds;
	removes = far.removes;
	unsigned chunks = send_snapshot(o, rf, 10);
	cr_assert_gt(chunks, 90);
	assert_same_set(o, rf);
	assert_mirror(&far, rf);
	/* the snapshot is swapped in by difference: only what changed is reported */
	cr_assert_eq(far.adds - adds, 70);
	cr_assert_eq(far.removes - removes, 70);
	cr_assert_eq(route_peer_counters(rf)->snapshots_applied, 2);
	cr_assert_eq(route_peer_seq(rf), route_origin_seq(o));

	route_peer_free(rn);
	route_peer_free(rf);
	mirror_clear(&near);
	mirror_clear(&far);
	route_origin_free(o);
}

Test(routes, gap_detection)
{
	struct route_params p = params();
	struct mirror m = {.node = "b"};
	struct route_peer *r = route_peer_new(&p, "b", on_change, &m);
	struct route_change c1[] = {{V("x"), true}, {V("y"), true}};
	cr_assert_eq(route_peer_delta(r, 5, 1, c1, 2), ROUTE_APPLIED,
	             "a new epoch starts empty at 0");
	cr_assert_eq(route_peer_seq(r), 2);
	cr_assert_eq(route_peer_epoch(r), 5);

	struct route_change c4[] = {{V("z"), true}};
	cr_assert_eq(route_peer_delta(r, 5, 4, c4, 1), ROUTE_GAP, "change 3 is missing");
	cr_assert_eq(route_peer_seq(r), 2);
	cr_assert_not(route_peer_has(r, V("z")), "nothing of a gapped delta applies");
	cr_assert_eq(route_peer_counters(r)->gaps, 1);
	cr_assert(route_peer_behind(r, 5, 4));
	struct route_digest_entry d;
	route_peer_digest(r, &d);
	cr_assert_eq(d.epoch, 5);
	cr_assert_eq(d.seq, 2, "the digest says where to resume");

	/* overlapping: 2 again plus 3 and 4; only 3 and 4 apply */
	struct route_change c2[] = {{V("y"), true}, {V("x"), false}, {V("z"), true}};
	cr_assert_eq(route_peer_delta(r, 5, 2, c2, 3), ROUTE_APPLIED);
	cr_assert_eq(route_peer_seq(r), 4);
	cr_assert_not(route_peer_has(r, V("x")));
	cr_assert(route_peer_has(r, V("z")));
	cr_assert_eq(route_peer_counters(r)->mismatched, 0, "the repeat of 2 was skipped");
	/* a repeat of what is applied: stale */
	cr_assert_eq(route_peer_delta(r, 5, 3, c2 + 1, 2), ROUTE_STALE);
	/* an older epoch: stale */
	cr_assert_eq(route_peer_delta(r, 4, 5, c4, 1), ROUTE_STALE);
	/* nonsense */
	cr_assert_eq(route_peer_delta(r, 0, 5, c4, 1), ROUTE_INVALID);
	cr_assert_eq(route_peer_delta(r, 5, 0, c4, 1), ROUTE_INVALID);
	cr_assert_eq(route_peer_delta(r, 5, UINT64_MAX, c2, 2), ROUTE_INVALID);
	cr_assert_eq(route_peer_snapshot(r, 0, 1, NULL, 0, true), ROUTE_INVALID);
	assert_mirror(&m, r);
	route_peer_free(r);
	mirror_clear(&m);
}

Test(routes, new_epoch_drops_all_and_resyncs)
{
	struct route_params p = params();
	struct route_origin *o = route_origin_new(&p, "a", 100);
	struct mirror m = {.node = "a"};
	struct route_peer *r = route_peer_new(&p, "a", on_change, &m);
	route_origin_add(o, V("old/1"));
	route_origin_add(o, V("old/2"));
	route_origin_add(o, V("both"));
	send_snapshot(o, r, 2);
	assert_same_set(o, r);
	route_origin_free(o);

	/* a restart: a new epoch, empty at seq 0, then its own changes */
	o = route_origin_new(&p, "a", 200);
	route_origin_add(o, V("both"));
	route_origin_add(o, V("new/1"));
	uint64_t after;
	cr_assert_eq(route_origin_catchup(o, 100, 3, &after), ROUTE_BY_DELTA, "log from 1");
	cr_assert_eq(after, 0);
	uint64_t removes = m.removes;
	send_changes(o, r, after, 1);
	cr_assert_eq(m.removes - removes, 3, "everything of the old epoch reported removed");
	cr_assert_eq(route_peer_epoch(r), 200);
	cr_assert_eq(route_peer_counters(r)->epochs, 1);
	assert_same_set(o, r);
	assert_mirror(&m, r);

	/* the old epoch's frames still in flight are ignored */
	struct route_change late[] = {{V("old/3"), true}};
	cr_assert_eq(route_peer_delta(r, 100, 4, late, 1), ROUTE_STALE);
	struct mqtt_view lf[] = {V("old/3")};
	cr_assert_eq(route_peer_snapshot(r, 100, 4, lf, 1, true), ROUTE_STALE);
	assert_same_set(o, r);

	/* membership hears of a newer epoch first: dropped at once */
	removes = m.removes;
	route_peer_epoch_seen(r, 200); /* the same: nothing */
	cr_assert_eq(m.removes, removes);
	route_peer_epoch_seen(r, 300);
	cr_assert_eq(m.removes - removes, 2);
	cr_assert_eq(route_peer_count(r), 0);
	cr_assert_eq(route_peer_seq(r), 0);
	route_origin_free(o);

	/* the new epoch with no change yet: only an empty snapshot says so */
	o = route_origin_new(&p, "a", 400);
	cr_assert_eq(route_origin_catchup(o, 300, 0, &after), ROUTE_BY_SNAPSHOT);
	send_snapshot(o, r, 4);
	cr_assert_eq(route_peer_epoch(r), 400);
	assert_same_set(o, r);
	assert_mirror(&m, r);
	route_peer_free(r);
	mirror_clear(&m);
	route_origin_free(o);
}

Test(routes, dead_peer_routes_dropped)
{
	struct route_params p = params();
	struct route_origin *o = route_origin_new(&p, "a", 9);
	struct mirror m = {.node = "a"};
	struct route_peer *r = route_peer_new(&p, "a", on_change, &m);
	char name[32];
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "d/%d", i);
		route_origin_add(o, V(name));
	}
	send_snapshot(o, r, 8);
	cr_assert_eq(m.n, 50);
	uint64_t removes = m.removes;
	route_peer_drop(r);
	cr_assert_eq(m.removes - removes, 50, "a removal reported for each filter");
	cr_assert_eq(m.n, 0);
	cr_assert_eq(route_peer_count(r), 0);
	cr_assert_eq(route_peer_epoch(r), 9, "the epoch is kept");
	cr_assert_eq(route_peer_seq(r), 0);
	cr_assert_eq(route_peer_counters(r)->drops, 1);

	/* it comes back (refuted, same epoch): rebuilt from seq 0 */
	struct route_digest_entry d;
	route_peer_digest(r, &d);
	uint64_t after;
	cr_assert_eq(route_origin_catchup(o, d.epoch, d.seq, &after), ROUTE_BY_DELTA);
	send_changes(o, r, after, 16);
	assert_same_set(o, r);
	assert_mirror(&m, r);

	/* dropped again in the middle of a snapshot: the partial one goes too */
	struct route_snapshot_cursor c;
	struct mqtt_view out[4];
	bool last;
	route_origin_snapshot_begin(o, &c);
	int n = route_origin_snapshot_next(o, &c, out, 4, SIZE_MAX, &last);
	cr_assert_eq(route_peer_snapshot(r, c.epoch, c.seq, out, (size_t)n, last), ROUTE_APPLIED);
	route_peer_drop(r);
	cr_assert_eq(m.n, 0);
	cr_assert_eq(route_peer_counters(r)->snapshots_abandoned, 1);
	route_peer_free(r);
	mirror_clear(&m);
	route_origin_free(o);
}

Test(routes, snapshot_staging)
{
	struct route_params p = params();
	struct mirror m = {.node = "a"};
	struct route_peer *r = route_peer_new(&p, "a", on_change, &m);
	struct mqtt_view part1[] = {V("s/1"), V("s/2")};
	struct mqtt_view part2[] = {V("s/3")};
	/* nothing is reported before the last chunk */
	cr_assert_eq(route_peer_snapshot(r, 1, 10, part1, 2, false), ROUTE_APPLIED);
	cr_assert_eq(m.n, 0);
	cr_assert_eq(route_peer_count(r), 0);
	/* the link breaks: the partial snapshot is abandoned */
	route_peer_link_down(r);
	cr_assert_eq(route_peer_counters(r)->snapshots_abandoned, 1);
	cr_assert_eq(route_peer_snapshot(r, 1, 10, part2, 1, true), ROUTE_APPLIED);
	cr_assert_eq(route_peer_count(r), 1, "only the chunk after the break");
	assert_mirror(&m, r);

	/* a chunk of another seq starts a new snapshot */
	cr_assert_eq(route_peer_snapshot(r, 1, 12, part1, 2, false), ROUTE_APPLIED);
	cr_assert_eq(route_peer_snapshot(r, 1, 13, part2, 1, false), ROUTE_APPLIED);
	cr_assert_eq(route_peer_snapshot(r, 1, 13, part1, 1, true), ROUTE_APPLIED);
	cr_assert(route_peer_has(r, V("s/3")) && route_peer_has(r, V("s/1")));
	cr_assert_not(route_peer_has(r, V("s/2")));
	cr_assert_eq(route_peer_seq(r), 13);
	assert_mirror(&m, r);

	/* an older snapshot than the deltas applied: stale */
	cr_assert_eq(route_peer_snapshot(r, 1, 12, part1, 2, true), ROUTE_STALE);
	/* deltas applied while a snapshot comes in make it stale at its end */
	cr_assert_eq(route_peer_snapshot(r, 1, 13, part1, 2, false), ROUTE_APPLIED);
	struct route_change ch[] = {{V("s/9"), true}};
	cr_assert_eq(route_peer_delta(r, 1, 14, ch, 1), ROUTE_APPLIED);
	cr_assert_eq(route_peer_snapshot(r, 1, 13, part2, 1, true), ROUTE_STALE);
	cr_assert(route_peer_has(r, V("s/9")));
	assert_mirror(&m, r);
	route_peer_free(r);
	mirror_clear(&m);
}

/* ---- limits ------------------------------------------------------------------ */

Test(routes, limits_counted)
{
	struct route_params p = params();
	p.filters_max = 3;
	p.filter_bytes_max = 8;
	struct route_origin *o = route_origin_new(&p, "a", 1);
	cr_assert_eq(route_origin_add(o, V("1")), 1);
	cr_assert_eq(route_origin_add(o, V("2")), 1);
	cr_assert_eq(route_origin_add(o, V("3")), 1);
	cr_assert_eq(route_origin_add(o, V("4")), -ENOSPC);
	cr_assert_eq(route_origin_counters(o)->refused_full, 1);
	cr_assert_eq(route_origin_add(o, V("123456789")), -EINVAL, "9 bytes");
	cr_assert_eq(route_origin_add(o, V("a/#/b")), -EINVAL);
	cr_assert_eq(route_origin_add(o, (struct mqtt_view){(const uint8_t *)"a\0", 2}), -EINVAL);
	cr_assert_eq(route_origin_counters(o)->refused_invalid, 3);
	cr_assert_eq(route_origin_remove(o, V("4")), 0, "its add was refused");
	cr_assert_eq(route_origin_seq(o), 3);
	route_origin_free(o);

	/* a peer with smaller limits than its origin: refused, counted, and
	 * the later removal of a refused filter is no mismatch */
	struct route_params big = params();
	o = route_origin_new(&big, "a", 1);
	struct mirror m = {.node = "a"};
	struct route_peer *r = route_peer_new(&p, "a", on_change, &m);
	route_origin_add(o, V("1"));
	route_origin_add(o, V("2"));
	route_origin_add(o, V("3"));
	route_origin_add(o, V("4"));
	route_origin_add(o, V("longer/than/8"));
	send_changes(o, r, 0, 2);
	cr_assert_eq(route_peer_count(r), 3);
	cr_assert_eq(route_peer_counters(r)->refused_full, 1);
	cr_assert_eq(route_peer_counters(r)->refused_invalid, 1);
	route_origin_remove(o, V("4"));
	route_origin_remove(o, V("longer/than/8"));
	route_origin_remove(o, V("1"));
	send_changes(o, r, 5, 8);
	cr_assert_eq(route_peer_counters(r)->mismatched, 0);
	cr_assert_not(route_peer_needs_snapshot(r));
	cr_assert_eq(route_peer_count(r), 2);
	assert_mirror(&m, r);
	/* a snapshot over the limit is cut the same way */
	struct mqtt_view many[] = {V("a"), V("b"), V("c"), V("d"), V("e")};
	cr_assert_eq(route_peer_snapshot(r, 1, 8, many, 5, true), ROUTE_APPLIED);
	cr_assert_eq(route_peer_count(r), 3);
	cr_assert_eq(route_peer_counters(r)->refused_full, 3);
	assert_mirror(&m, r);
	route_peer_free(r);
	mirror_clear(&m);
	route_origin_free(o);
}

Test(routes, mismatch_asks_for_a_snapshot)
{
	struct route_params p = params();
	struct route_origin *o = route_origin_new(&p, "a", 1);
	struct mirror m = {.node = "a"};
	struct route_peer *r = route_peer_new(&p, "a", on_change, &m);
	route_origin_add(o, V("x"));
	send_changes(o, r, 0, 1);
	/* a (buggy) delta that adds what is held */
	struct route_change ch[] = {{V("x"), true}};
	cr_assert_eq(route_peer_delta(r, 1, 2, ch, 1), ROUTE_APPLIED);
	cr_assert_eq(route_peer_counters(r)->mismatched, 1);
	cr_assert(route_peer_needs_snapshot(r));
	struct route_digest_entry d;
	route_peer_digest(r, &d);
	cr_assert_eq(d.epoch, 0, "the digest asks for a snapshot");
	uint64_t after;
	cr_assert_eq(route_origin_catchup(o, d.epoch, d.seq, &after), ROUTE_BY_SNAPSHOT);
	route_origin_add(o, V("y"));
	route_origin_add(o, V("z")); /* the origin is at 3 too */
	send_snapshot(o, r, 1);
	cr_assert_not(route_peer_needs_snapshot(r));
	assert_same_set(o, r);
	assert_mirror(&m, r);
	route_peer_free(r);
	mirror_clear(&m);
	route_origin_free(o);
}

/* ---- the digest ---------------------------------------------------------------- */

Test(routes, digest_round_trip_and_bound)
{
	struct route_digest_entry e[40], out[ROUTE_DIGEST_ENTRIES_MAX];
	for (int i = 0; i < 40; i++) {
		snprintf(e[i].origin, sizeof(e[i].origin), "starling-%d.starling.default", i);
		e[i].epoch = 1712345678901234ULL + (uint64_t)i;
		e[i].seq = (uint64_t)i * 1000003;
	}
	e[0].seq = UINT64_MAX;
	e[1].epoch = 0;
	uint8_t buf[ROUTE_DIGEST_BYTES_MAX];
	size_t encoded;
	int len = route_digest_encode(e, 40, buf, sizeof(buf), &encoded);
	cr_assert_gt(len, 0);
	cr_assert_leq(len, ROUTE_DIGEST_BYTES_MAX);
	cr_assert_lt(encoded, 40, "not all fit: the caller rotates");
	cr_assert_geq(encoded, 4);
	int n = route_digest_decode(buf, (size_t)len, out, ROUTE_DIGEST_ENTRIES_MAX);
	cr_assert_eq(n, (int)encoded);
	for (int i = 0; i < n; i++) {
		cr_assert_str_eq(out[i].origin, e[i].origin);
		cr_assert_eq(out[i].epoch, e[i].epoch);
		cr_assert_eq(out[i].seq, e[i].seq);
	}
	/* the next digest starts where this one stopped */
	len = route_digest_encode(e + encoded, 40 - encoded, buf, sizeof(buf), &encoded);
	cr_assert_gt(encoded, 0);

	/* a worst case: 64-byte names, 10-byte varints: three fit */
	struct route_digest_entry w[5];
	for (int i = 0; i < 5; i++) {
		memset(w[i].origin, 'a' + i, ROUTE_NAME_MAX);
		w[i].origin[ROUTE_NAME_MAX] = '\0';
		w[i].epoch = w[i].seq = UINT64_MAX;
	}
	len = route_digest_encode(w, 5, buf, sizeof(buf), &encoded);
	cr_assert_eq(encoded, 3);
	cr_assert_eq(len, 1 + 3 * (1 + 64 + 10 + 10));
	cr_assert_eq(route_digest_decode(buf, (size_t)len, out, 8), 3);
	/* a smaller cap is respected */
	len = route_digest_encode(w, 5, buf, 100, &encoded);
	cr_assert_eq(encoded, 1);
	cr_assert_leq(len, 100);
	/* empty digest: the version byte alone */
	len = route_digest_encode(w, 0, buf, sizeof(buf), &encoded);
	cr_assert_eq(len, 1);
	cr_assert_eq(route_digest_decode(buf, 1, out, 8), 0);

	/* origin and peer entries */
	struct route_params p = params();
	struct route_origin *o = route_origin_new(&p, "self", 77);
	route_origin_add(o, V("q"));
	route_origin_digest(o, &e[0]);
	cr_assert_str_eq(e[0].origin, "self");
	cr_assert_eq(e[0].epoch, 77);
	cr_assert_eq(e[0].seq, 1);
	route_origin_free(o);
}

Test(routes, digest_refusals)
{
	struct route_digest_entry out[8];
	/* version, truncation, a name of 0 or 65 bytes, a NUL or a space in a
	 * name, a varint beyond 64 bits, an origin twice */
	static const uint8_t v2[] = {2};
	static const uint8_t trunc_name[] = {1, 5, 'a', 'b'};
	static const uint8_t trunc_varint[] = {1, 1, 'a', 0x80};
	static const uint8_t no_seq[] = {1, 1, 'a', 0x05};
	static const uint8_t empty_name[] = {1, 0, 1, 1};
	static const uint8_t nul_name[] = {1, 2, 'a', 0, 1, 1};
	static const uint8_t space_name[] = {1, 2, 'a', ' ', 1, 1};
	static const uint8_t long_varint[] = {1,    1,    'a',  0xff, 0xff, 0xff, 0xff,
	                                      0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 1};
	static const uint8_t eleven[] = {1,    1,    'a',  0x80, 0x80, 0x80, 0x80, 0x80,
	                                 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 1};
	static const uint8_t twice[] = {1, 1, 'a', 1, 1, 1, 'a', 2, 2};
	static const uint8_t ok[] = {1,    1,    'a',  0xff, 0xff, 0xff, 0xff,
	                             0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0};
	cr_assert_eq(route_digest_decode(v2, sizeof(v2), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(v2, 0, out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(trunc_name, sizeof(trunc_name), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(trunc_varint, sizeof(trunc_varint), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(no_seq, sizeof(no_seq), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(empty_name, sizeof(empty_name), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(nul_name, sizeof(nul_name), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(space_name, sizeof(space_name), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(long_varint, sizeof(long_varint), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(eleven, sizeof(eleven), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(twice, sizeof(twice), out, 8), -EINVAL);
	cr_assert_eq(route_digest_decode(ok, sizeof(ok), out, 8), 1);
	cr_assert_eq(out[0].epoch, UINT64_MAX);
	cr_assert_eq(route_digest_decode(ok, sizeof(ok), out, 0), -EINVAL, "no room");

	uint8_t big[ROUTE_DIGEST_BYTES_MAX + 1] = {1};
	cr_assert_eq(route_digest_decode(big, sizeof(big), out, 8), -EINVAL, "beyond 256 bytes");

	struct route_digest_entry bad = {.origin = "has space"};
	uint8_t buf[64];
	size_t encoded;
	cr_assert_eq(route_digest_encode(&bad, 1, buf, sizeof(buf), &encoded), -EINVAL);
	cr_assert_eq(route_digest_encode(&bad, 0, buf, 0, &encoded), -EINVAL);
}

/* ---- the property: no orphan, and convergence -------------------------------- */

/* The link as the test models it: frames in order; a broken link loses
 * what is in it, and (for the test's sake) single deltas get lost too. */
struct frame {
	bool snapshot;
	uint64_t epoch, seq; /* a snapshot's seq, or a delta's first_seq */
	bool last;
	size_t n;
	char **filters;
	bool *adds;
};

struct link {
	struct frame q[4096];
	size_t head, len;
};

static void frame_free(struct frame *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->filters[i]);
	free(f->filters);
	free(f->adds);
}

static struct frame *link_push(struct link *l)
{
	cr_assert_lt(l->len, 4096, "the test's link overflowed");
	struct frame *f = &l->q[(l->head + l->len++) % 4096];
	memset(f, 0, sizeof(*f));
	return f;
}

static void link_clear(struct link *l)
{
	while (l->len) {
		frame_free(&l->q[l->head]);
		l->head = (l->head + 1) % 4096;
		l->len--;
	}
}

static void link_deliver_one(struct link *l, struct route_peer *r, bool lose)
{
	struct frame *f = &l->q[l->head];
	if (!lose) {
		struct mqtt_view views[64];
		struct route_change ch[64];
		cr_assert_leq(f->n, 64);
		for (size_t i = 0; i < f->n; i++) {
			views[i] = mqtt_view_str(f->filters[i]);
			ch[i] = (struct route_change){views[i], f->adds[i]};
		}
		if (f->snapshot)
			route_peer_snapshot(r, f->epoch, f->seq, views, f->n, f->last);
		else
			route_peer_delta(r, f->epoch, f->seq, ch, f->n);
	}
	frame_free(f);
	l->head = (l->head + 1) % 4096;
	l->len--;
}

static void push_changes(struct link *l, struct route_origin *o, uint64_t after, size_t chunk)
{
	struct route_change ch[16];
	for (;;) {
		int n = route_origin_changes(o, after, ch, chunk, SIZE_MAX);
		cr_assert_geq(n, 0);
		if (n == 0)
			return;
		struct frame *f = link_push(l);
		f->epoch = route_origin_epoch(o);
		f->seq = after + 1;
		f->n = (size_t)n;
		f->filters = calloc((size_t)n, sizeof(char *));
		f->adds = calloc((size_t)n, sizeof(bool));
		for (int i = 0; i < n; i++) {
			f->filters[i] = strndup((const char *)ch[i].filter.ptr, ch[i].filter.len);
			f->adds[i] = ch[i].add;
		}
		after += (uint64_t)n;
	}
}

static void push_snapshot(struct link *l, struct route_origin *o, size_t chunk)
{
	struct route_snapshot_cursor c;
	struct mqtt_view out[16];
	route_origin_snapshot_begin(o, &c);
	bool last = false;
	while (!last) {
		int n = route_origin_snapshot_next(o, &c, out, chunk, SIZE_MAX, &last);
		cr_assert_geq(n, 0);
		struct frame *f = link_push(l);
		*f = (struct frame){
		    .snapshot = true, .epoch = c.epoch, .seq = c.seq, .last = last, .n = (size_t)n};
		f->filters = calloc((size_t)n + 1, sizeof(char *));
		f->adds = calloc((size_t)n + 1, sizeof(bool));
		for (int i = 0; i < n; i++)
			f->filters[i] = strndup((const char *)out[i].ptr, out[i].len);
	}
}

/* The origin reads the peer's digest entry and pushes what it lacks. */
static unsigned by_delta, by_snapshot; /* how the catch-ups went, for the property's checks */

static void catch_up(struct link *l, struct route_origin *o, struct route_peer *r, struct rng *rng)
{
	struct route_digest_entry d;
	route_peer_digest(r, &d);
	/* through the bytes, as it travels */
	uint8_t buf[ROUTE_DIGEST_BYTES_MAX];
	size_t encoded;
	int len = route_digest_encode(&d, 1, buf, sizeof(buf), &encoded);
	cr_assert_eq(encoded, 1);
	struct route_digest_entry got;
	cr_assert_eq(route_digest_decode(buf, (size_t)len, &got, 1), 1);
	uint64_t after;
	switch (route_origin_catchup(o, got.epoch, got.seq, &after)) {
	case ROUTE_CURRENT:
		break;
	case ROUTE_BY_DELTA:
		by_delta++;
		push_changes(l, o, after, 1 + rng_below(rng, 8));
		break;
	case ROUTE_BY_SNAPSHOT:
		by_snapshot++;
		push_snapshot(l, o, 1 + rng_below(rng, 12));
		break;
	}
}

#define UNIVERSE 48

static void run_property(uint64_t seed)
{
	struct rng rng;
	rng_seed(&rng, seed);
	struct route_params p = params();
	p.hash_seed = seed;
	p.log_max = 1 + rng_below(&rng, 32); /* small: both catch-up paths happen */
	char universe[UNIVERSE][32];
	for (int i = 0; i < UNIVERSE; i++) {
		static const char *const forms[] = {"a/%d", "+/%d/#", "$share/g/x/%d", "s/%d/+/t"};
		snprintf(universe[i], sizeof(universe[i]), forms[i % 4], i);
	}
	uint64_t epoch = 1000;
	struct route_origin *o = route_origin_new(&p, "origin", epoch);
	struct mirror m = {.node = "origin"};
	struct route_peer *r = route_peer_new(&p, "origin", on_change, &m);
	static struct link l;
	memset(&l, 0, sizeof(l));
	by_delta = by_snapshot = 0;
	unsigned restarts = 0, deaths = 0, syncs = 0;

	for (int step = 0; step < 3000; step++) {
		uint32_t op = rng_below(&rng, 100);
		if (op < 50) { /* flap: subscribe or unsubscribe */
			struct mqtt_view f = mqtt_view_str(universe[rng_below(&rng, UNIVERSE)]);
			uint64_t before = route_origin_seq(o);
			int rc = route_origin_has(o, f) ? route_origin_remove(o, f)
			                                : route_origin_add(o, f);
			cr_assert_eq(rc, 1);
			cr_assert_eq(route_origin_seq(o), before + 1);
			if (l.len < 4000)
				push_changes(&l, o, before, 1); /* streamed as it happens */
		} else if (op < 70) {                           /* the link delivers */
			size_t k = 1 + rng_below(&rng, 6);
			while (k-- && l.len)
				link_deliver_one(&l, r, false);
		} else if (op < 78) { /* a delta lost */
			if (l.len)
				link_deliver_one(&l, r, !l.q[l.head].snapshot);
		} else if (op < 82) { /* the link breaks */
			link_clear(&l);
			route_peer_link_down(r);
		} else if (op < 92) { /* a digest arrives at the origin */
			if (l.len < 3000)
				catch_up(&l, o, r, &rng);
		} else if (op < 94) { /* the origin restarts */
			route_origin_free(o);
			epoch += 1 + rng_below(&rng, 3);
			o = route_origin_new(&p, "origin", epoch);
			restarts++;
			if (rng_below(&rng, 2))
				route_peer_epoch_seen(r, epoch); /* membership heard first */
			for (int i = 0; i < UNIVERSE; i++)
				if (rng_below(&rng, 3) == 0)
					route_origin_add(o, mqtt_view_str(universe[i]));
		} else if (op < 95) { /* declared dead, and back later */
			link_clear(&l);
			route_peer_drop(r);
			cr_assert_eq(m.n, 0, "a dead node's routes are all removed");
			deaths++;
		} else { /* full catch-up: the sets must agree */
			link_clear(&l);
			route_peer_link_down(r);
			for (int round = 0; round < 4; round++) {
				catch_up(&l, o, r, &rng);
				while (l.len)
					link_deliver_one(&l, r, false);
			}
			assert_same_set(o, r);
			cr_assert_eq(route_peer_seq(r), route_origin_seq(o));
			cr_assert_eq(route_peer_epoch(r), route_origin_epoch(o));
			syncs++;
		}
		assert_mirror(&m, r); /* after every step: no orphan, nothing missing */
	}
	link_clear(&l);
	route_peer_link_down(r);
	for (int round = 0; round < 4; round++) {
		catch_up(&l, o, r, &rng);
		while (l.len)
			link_deliver_one(&l, r, false);
	}
	assert_same_set(o, r);
	assert_mirror(&m, r);
	/* the run went through what it is meant to: both ways of catching
	 * up, gaps from lost deltas, stale frames of old epochs, restarts,
	 * deaths, abandoned snapshots */
	const struct route_peer_counters *c = route_peer_counters(r);
	cr_assert_eq(c->mismatched, 0, "seed %lu", (unsigned long)seed);
	cr_assert(by_delta > 0 && by_snapshot > 0, "seed %lu: %u by delta, %u by snapshot",
	          (unsigned long)seed, by_delta, by_snapshot);
	cr_assert(c->gaps > 0 && c->stale > 0 && c->epochs > 0, "seed %lu", (unsigned long)seed);
	cr_assert(restarts > 0 && deaths > 0 && syncs > 0, "seed %lu", (unsigned long)seed);
	route_peer_drop(r);
	cr_assert_eq(m.n, 0);
	route_peer_free(r);
	route_origin_free(o);
	mirror_clear(&m);
}

Test(routes, flapping_never_leaves_an_orphan, .timeout = 120)
{
	rng_run_seeds(40, run_property);
}
