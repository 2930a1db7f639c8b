/*
 * plan_test.c — where one message goes (core/route/plan.c), decided from
 * an index alone: overlapping subscriptions of a session merge into one
 * delivery at the highest QoS, one per subscription identifier; no-local
 * leaves the publisher out; Retain As Published keeps the retain flag;
 * shared groups give one member per group and turn; the QoS is the lower of
 * message and subscription; targets come out by worker; a forwarded
 * message's plan is local only.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "codec.h"
#include "route/plan.h"
#include "session/session.h"

static struct msg *publish(const char *topic, uint8_t qos, bool retain, struct sess_id from)
{
	uint8_t wire[256];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(topic);
	p.publish.payload = mqtt_view_str("x");
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.packet_id = qos ? 1 : 0;
	size_t n = mqtt_encode(&p, MQTT_V5, wire, sizeof(wire));
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, MQTT_V5, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m = msg_new(&d.publish, MQTT_V5, d.publish.topic, from, 0);
	cr_assert_not_null(m);
	return m;
}

static void sub(struct subidx *ix, const char *filter, struct sess_id who, uint8_t qos,
                uint32_t sub_id, bool no_local, bool rap)
{
	struct sub_entry e = {who, {.sub_id = sub_id, .qos = qos, .no_local = no_local, .rap = rap}};
	cr_assert_geq(subidx_add(ix, mqtt_view_str(filter), &e), 0);
}

static const struct plan_target *find(const struct plan *p, struct sess_id who, uint32_t sub_id)
{
	for (uint32_t i = 0; i < p->len; i++)
		if (sess_id_eq(p->t[i].who, who) && p->t[i].sub_id == sub_id)
			return &p->t[i];
	return NULL;
}

static const struct sess_id A = {1, 1, 0}, B = {2, 1, 0}, C = {1, 1, 1}, D = {3, 2, 1};

Test(plan, overlapping_subscriptions_merge_at_the_highest_qos)
{
	struct subidx *ix = subidx_new();
	sub(ix, "a/b", A, 0, 0, false, false);
	sub(ix, "a/+", A, 2, 0, false, false);
	sub(ix, "a/#", A, 1, 0, false, false);
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("a/b", 2, false, B);
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_eq(p.len, 1, "one delivery for one session [MQTT-3.3.4-2]");
	cr_assert_eq(p.t[0].qos, 2);
	cr_assert_eq(p.t[0].flags, 0);
	msg_unref(m);
	/* The message's QoS caps it. */
	m = publish("a/b", 1, false, B);
	plan_make(&p, ix, m);
	cr_assert_eq(p.t[0].qos, 1);
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, each_subscription_identifier_gets_its_copy)
{
	struct subidx *ix = subidx_new();
	sub(ix, "a/b", A, 1, 7, false, false);
	sub(ix, "a/+", A, 0, 9, false, false);
	sub(ix, "a/#", A, 2, 7, false, false); /* the same id as a/b: merged with it */
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("a/b", 2, false, B);
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_eq(p.len, 2, "one per identifier [MQTT-3.3.4-3, -5]");
	cr_assert_eq(find(&p, A, 7)->qos, 2);
	cr_assert_eq(find(&p, A, 9)->qos, 0);
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, no_local_leaves_out_the_publisher_only)
{
	struct subidx *ix = subidx_new();
	sub(ix, "t", A, 1, 0, true, false);
	sub(ix, "t", B, 1, 0, true, false);
	sub(ix, "#", A, 0, 3, false, false); /* another subscription of A, not no-local */
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("t", 1, false, A);
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_null(find(&p, A, 0), "[MQTT-3.8.3-3]");
	cr_assert_not_null(find(&p, A, 3), "its own other subscription still matches");
	cr_assert_not_null(find(&p, B, 0));
	cr_assert_eq(p.len, 2);
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, retain_as_published)
{
	struct subidx *ix = subidx_new();
	sub(ix, "r", A, 1, 0, false, true);
	sub(ix, "r", B, 1, 0, false, false);
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("r", 1, true, D);
	plan_make(&p, ix, m);
	cr_assert_eq(find(&p, A, 0)->flags & PLAN_RETAIN, PLAN_RETAIN, "kept [MQTT-3.3.1-12]");
	cr_assert_eq(find(&p, B, 0)->flags & PLAN_RETAIN, 0, "cleared on normal delivery");
	msg_unref(m);
	m = publish("r", 1, false, D);
	plan_make(&p, ix, m);
	cr_assert_eq(find(&p, A, 0)->flags & PLAN_RETAIN, 0, "a message not retained stays so");
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, shared_groups_give_one_member_in_turn)
{
	struct subidx *ix = subidx_new();
	sub(ix, "$share/g/s/#", A, 1, 0, false, false);
	sub(ix, "$share/g/s/#", B, 1, 0, false, false);
	sub(ix, "$share/h/s/#", C, 1, 0, false, false);
	struct plan p;
	plan_init(&p);
	unsigned got_a = 0, got_b = 0;
	for (int i = 0; i < 4; i++) {
		struct msg *m = publish("s/x", 1, false, D);
		plan_make(&p, ix, m);
		cr_assert_eq(p.len, 2, "one member of each group");
		cr_assert_not_null(find(&p, C, 0));
		got_a += find(&p, A, 0) != NULL;
		got_b += find(&p, B, 0) != NULL;
		for (uint32_t k = 0; k < p.len; k++)
			cr_assert_eq(p.t[k].flags & PLAN_SHARED, PLAN_SHARED);
		msg_unref(m);
	}
	cr_assert_eq(got_a, 2, "round-robin");
	cr_assert_eq(got_b, 2);
	/* A session's own subscription that also matches: it is theirs. */
	sub(ix, "s/x", A, 0, 0, false, false);
	sub(ix, "s/x", B, 0, 0, false, false);
	struct msg *m = publish("s/x", 1, false, D);
	plan_make(&p, ix, m);
	for (uint32_t k = 0; k < p.len; k++)
		if (!sess_id_eq(p.t[k].who, C))
			cr_assert_eq(p.t[k].flags & PLAN_SHARED, 0);
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, one_list_gives_each_session_once_unsorted_several_lists_by_worker)
{
	struct subidx *ix = subidx_new();
	struct sess_id ids[] = {{5, 1, 3}, {1, 1, 0}, {9, 1, 2}, {2, 1, 0}, {4, 1, 3}, {1, 1, 1}};
	size_t n = sizeof(ids) / sizeof(ids[0]);
	for (size_t i = 0; i < n; i++)
		sub(ix, "w", ids[i], 0, 0, false, false);
	struct plan p;
	plan_init(&p);
	/* One filter's list: no sort, every session exactly once. */
	struct msg *m = publish("w", 0, false, D);
	plan_make(&p, ix, m);
	cr_assert_eq(subidx_match_lists(ix), 1);
	cr_assert_eq(p.len, n);
	for (size_t i = 0; i < n; i++) {
		unsigned seen = 0;
		for (uint32_t k = 0; k < p.len; k++)
			seen += sess_id_eq(p.t[k].who, ids[i]);
		cr_assert_eq(seen, 1, "session %zu seen %u times", i, seen);
	}
	msg_unref(m);
	/* Two lists (a wildcard too): merged, so sorted by worker. */
	sub(ix, "#", ids[0], 1, 0, false, false);
	sub(ix, "#", (struct sess_id){7, 1, 0}, 0, 0, false, false);
	m = publish("w", 1, false, D);
	plan_make(&p, ix, m);
	cr_assert_eq(subidx_match_lists(ix), 2);
	cr_assert_eq(p.len, n + 1, "ids[0] once for both of its filters");
	for (uint32_t i = 1; i < p.len; i++)
		cr_assert_leq(p.t[i - 1].who.worker, p.t[i].who.worker);
	for (uint32_t k = 0; k < p.len; k++)
		if (sess_id_eq(p.t[k].who, ids[0]))
			cr_assert_eq(p.t[k].qos, 1, "the higher of its two subscriptions");
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, dollar_topics_and_wildcards)
{
	struct subidx *ix = subidx_new();
	sub(ix, "#", A, 0, 0, false, false);
	sub(ix, "$SYS/#", B, 0, 0, false, false);
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("$SYS/broker/uptime", 0, false, D);
	plan_make(&p, ix, m);
	cr_assert_eq(p.len, 1, "# does not match a $ topic [MQTT-4.7.2-1]");
	cr_assert_not_null(find(&p, B, 0));
	msg_unref(m);
	m = publish("nobody/here", 0, false, D);
	plan_make(&p, ix, m);
	cr_assert_eq(p.len, 1);
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, a_forwarded_message_is_local_only)
{
	struct subidx *ix = subidx_new();
	sub(ix, "f", A, 0, 0, false, false);
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("f", 0, false, D);
	plan_make(&p, ix, m);
	cr_assert_not(p.local_only);
	m->forwarded = true; /* as the cluster's link will mark it */
	plan_make(&p, ix, m);
	cr_assert(p.local_only);
	cr_assert_eq(p.node_count, 0, "never forwarded again");
	cr_assert_eq(p.len, 1, "still delivered here");
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

/* ---- peer nodes (the cluster's routes in the same index) ---------------- */

static struct sess_id node(uint32_t n)
{
	return (struct sess_id){n, 1, SESS_WORKER_NODE};
}

Test(plan, a_peer_node_gets_a_message_once_however_many_of_its_filters_match)
{
	struct subidx *ix = subidx_new();
	sub(ix, "a/b", node(3), 2, 0, false, false);
	sub(ix, "a/+", node(3), 2, 0, false, false);
	sub(ix, "a/#", node(3), 2, 0, false, false);
	sub(ix, "#", node(5), 2, 0, false, false);
	sub(ix, "a/b", A, 1, 0, false, false);
	struct plan p;
	plan_init(&p);
	struct msg *m = publish("a/b", 1, false, B);
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_eq(p.len, 1, "only the session is a delivery");
	cr_assert_not_null(find(&p, A, 0));
	cr_assert_eq(p.node_count, 2);
	bool n3 = false, n5 = false;
	for (uint32_t i = 0; i < p.node_count; i++) {
		n3 |= p.nodes[i] == 3;
		n5 |= p.nodes[i] == 5;
	}
	cr_assert(n3 && n5, "each interested node once");
	cr_assert_eq(p.nodes_shared, 0);
	msg_unref(m);
	/* A message another node forwarded goes to no node again. */
	m = publish("a/b", 1, false, B);
	m->forwarded = true;
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_eq(p.node_count, 0, "never forwarded twice");
	cr_assert_eq(p.len, 1, "still delivered here");
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, a_shared_group_spans_nodes_and_is_served_once)
{
	struct subidx *ix = subidx_new();
	/* Group g: member A here, and node 4 has members too. */
	sub(ix, "$share/g/t", A, 1, 0, false, false);
	sub(ix, "$share/g/t", node(4), 2, 0, false, false);
	struct plan p;
	plan_init(&p);
	unsigned here = 0, there = 0;
	for (int i = 0; i < 4; i++) {
		struct msg *m = publish("t", 1, false, B);
		cr_assert_eq(plan_make(&p, ix, m), 0);
		cr_assert_eq(p.len + p.node_count, 1, "one member of the group per message");
		if (p.len) {
			here++;
			cr_assert_eq(p.t[0].flags & PLAN_SHARED, PLAN_SHARED);
		} else {
			there++;
			cr_assert_eq(p.nodes[0], 4);
			cr_assert_eq(p.nodes_shared, 1ull << 4, "node 4 is told it serves the group");
		}
		msg_unref(m);
	}
	cr_assert_eq(here, 2);
	cr_assert_eq(there, 2);
	/* Forwarded for the group: served by a member here, never by a node. */
	for (int i = 0; i < 3; i++) {
		struct msg *m = publish("t", 1, false, B);
		m->forwarded = true;
		m->forwarded_shared = true;
		cr_assert_eq(plan_make(&p, ix, m), 0);
		cr_assert_eq(p.len, 1);
		cr_assert(sess_id_eq(p.t[0].who, A));
		msg_unref(m);
	}
	/* Forwarded for another reason: the group was served elsewhere. */
	sub(ix, "t", C, 1, 0, false, false);
	struct msg *m = publish("t", 1, false, B);
	m->forwarded = true;
	cr_assert_eq(plan_make(&p, ix, m), 0);
	cr_assert_eq(p.len, 1);
	cr_assert(sess_id_eq(p.t[0].who, C), "only the plain subscription");
	msg_unref(m);
	plan_fini(&p);
	subidx_free(ix);
}

Test(plan, a_nodes_entries_are_not_the_nodes_own_subscriptions)
{
	struct subidx *ix = subidx_new();
	sub(ix, "x/#", node(2), 2, 0, false, false);
	sub(ix, "$share/g/x", node(2), 2, 0, false, false);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("x/#")), 0, "no route of ours");
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("$share/g/x")), 0);
	struct sub_entry out;
	cr_assert(subidx_shared_pick(ix, mqtt_view_str("$share/g/x"), &out),
	          "a handover may go to the node");
	cr_assert_eq(out.who.worker, SESS_WORKER_NODE);
	sub(ix, "x/#", A, 1, 0, false, false);
	sub(ix, "$share/g/x", B, 1, 0, false, false);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("x/#")), 1);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("$share/g/x")), 1);
	/* In turn: the node, then B, then the node. */
	int b = 0, n = 0;
	for (int i = 0; i < 4; i++) {
		cr_assert(subidx_shared_pick(ix, mqtt_view_str("$share/g/x"), &out));
		b += sess_id_eq(out.who, B);
		n += out.who.worker == SESS_WORKER_NODE;
	}
	cr_assert_eq(b, 2);
	cr_assert_eq(n, 2);
	cr_assert(subidx_remove(ix, mqtt_view_str("x/#"), node(2)));
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("x/#")), 1);
	cr_assert(subidx_remove(ix, mqtt_view_str("x/#"), A));
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("x/#")), 0);
	subidx_free(ix);
}
