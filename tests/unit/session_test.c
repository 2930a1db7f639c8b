/*
 * session_test.c — the session state machine of core/session/session.c: packet
 * identifiers, the outbound window and its acknowledgements (QoS 1 and the
 * two steps of QoS 2), the bounded queue under both overflow policies,
 * inbound QoS 2 ids, subscriptions, expiry; and that every message
 * reference taken is given back.
 */
#include <criterion/criterion.h>

#include "codec.h"
#include "session/session.h"

static struct msg *make(const char *payload, uint32_t expiry_s, uint64_t now_ms)
{
	uint8_t wire[256];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str("t");
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = 1;
	p.publish.packet_id = 1;
	if (expiry_s) {
		p.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
		p.publish.props.message_expiry_s = expiry_s;
	}
	size_t n = mqtt_encode(&p, 5, wire, sizeof(wire));
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, 5, &d, NULL), MQTT_RC_SUCCESS);
	return msg_new(&d.publish, 5, d.publish.topic, (struct sess_id){0}, now_ms);
}

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

static struct session *new_session(void)
{
	struct session *s = session_new((const uint8_t *)"client", 6, (struct sess_id){1, 1, 0});
	cr_assert_not_null(s);
	cr_assert_str_eq(s->client_id, "client");
	return s;
}

Test(session, qos1_window_and_puback)
{
	struct session *s = new_session();
	struct msg *m = make("a", 0, 0);
	uint16_t p1 = session_infl_add(s, m, 1, false, 0, 2);
	uint16_t p2 = session_infl_add(s, m, 1, false, 0, 2);
	cr_assert(p1 != 0 && p2 != 0 && p1 != p2);
	cr_assert_eq(session_infl_add(s, m, 1, false, 0, 2), 0, "window of 2 is full");
	cr_assert_eq(refs(m), 3);
	cr_assert_not(session_infl_ack(s, MQTT_PUBREC, p1), "PUBREC does not fit QoS 1");
	cr_assert_not(session_infl_ack(s, MQTT_PUBACK, 999), "unknown id");
	cr_assert(session_infl_ack(s, MQTT_PUBACK, p1));
	cr_assert_not(session_infl_ack(s, MQTT_PUBACK, p1), "acknowledged once only");
	cr_assert_eq(s->infl_count, 1);
	cr_assert_eq(refs(m), 2);
	session_free(s);
	cr_assert_eq(refs(m), 1, "freeing a session gives its references back");
	msg_unref(m);
}

Test(session, qos2_two_steps)
{
	struct session *s = new_session();
	struct msg *m = make("b", 0, 0);
	uint16_t pid = session_infl_add(s, m, 2, true, 7, 10);
	cr_assert_not(session_infl_ack(s, MQTT_PUBCOMP, pid), "PUBCOMP before PUBREC");
	cr_assert_not(session_infl_ack(s, MQTT_PUBACK, pid), "PUBACK does not fit QoS 2");
	cr_assert(session_infl_ack(s, MQTT_PUBREC, pid));
	cr_assert_eq(session_infl_find(s, pid)->state, INFL_WAIT_COMP);
	cr_assert_null(session_infl_find(s, pid)->m, "the message is released at PUBREC");
	cr_assert_eq(refs(m), 1);
	cr_assert_not(session_infl_ack(s, MQTT_PUBREC, pid), "second PUBREC");
	cr_assert(session_infl_ack(s, MQTT_PUBCOMP, pid));
	cr_assert_eq(s->infl_count, 0);
	session_free(s);
	msg_unref(m);
}

Test(session, packet_ids_skip_those_in_use_and_wrap)
{
	struct session *s = new_session();
	struct msg *m = make("c", 0, 0);
	s->next_pid = 65534;
	cr_assert_eq(session_infl_add(s, m, 1, false, 0, 100), 65534);
	cr_assert_eq(session_infl_add(s, m, 1, false, 0, 100), 65535);
	cr_assert_eq(session_infl_add(s, m, 1, false, 0, 100), 1, "wraps to 1, never 0");
	s->next_pid = 65535;
	cr_assert_eq(session_infl_add(s, m, 1, false, 0, 100), 2, "skips ids in flight");
	session_free(s);
	msg_unref(m);
}

Test(session, resend_order_is_send_order)
{
	struct session *s = new_session();
	struct msg *m = make("d", 0, 0);
	uint16_t a = session_infl_add(s, m, 1, false, 0, 10);
	uint16_t b = session_infl_add(s, m, 1, false, 0, 10);
	uint16_t c = session_infl_add(s, m, 1, false, 0, 10);
	cr_assert(session_infl_ack(s, MQTT_PUBACK, b));
	uint32_t seq = s->infl_head;
	cr_assert_eq(session_infl_next(s, &seq)->pid, a);
	cr_assert_eq(session_infl_next(s, &seq)->pid, c);
	cr_assert_null(session_infl_next(s, &seq));
	session_free(s);
	msg_unref(m);
}

Test(session, queue_drop_oldest)
{
	struct session *s = new_session();
	struct msg *ms[5];
	for (int i = 0; i < 5; i++) {
		char p[2] = {(char)('0' + i), 0};
		ms[i] = make(p, 0, 0);
	}
	for (int i = 0; i < 5; i++)
		cr_assert_eq(
		    session_enqueue(s, ms[i], 1, false, 0, 3, UINT64_MAX, QUEUE_DROP_OLDEST, NULL),
		    i < 3 ? 0u : 1u);
	cr_assert_eq(s->q_len, 3);
	cr_assert_eq(refs(ms[0]), 1, "dropped messages are released");
	struct queued q;
	for (int i = 2; i < 5; i++) {
		cr_assert(session_dequeue(s, &q));
		cr_assert_eq(q.m, ms[i], "oldest kept first");
		msg_unref(q.m);
	}
	cr_assert_not(session_dequeue(s, &q));
	cr_assert_eq(s->q_bytes, 0);
	session_free(s);
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(refs(ms[i]), 1);
		msg_unref(ms[i]);
	}
}

struct heard {
	const struct msg *m[8];
	int n;
};

static void heard_drop(void *ctx, const struct session *s, const struct msg *m)
{
	struct heard *h = ctx;
	(void)s;
	cr_assert_lt(h->n, 8);
	h->m[h->n++] = m;
}

Test(session, queue_drops_of_journaled_messages_are_told)
{
	/* The sink hears of each journaled message a limit drops (oldest,
	 * newest, a limit of 0), and of no other. */
	struct session *s = new_session();
	struct msg *a = make("a", 0, 0), *b = make("b", 0, 0), *c = make("c", 0, 0);
	struct heard h = {0};
	struct drop_sink sink = {heard_drop, &h};
	cr_assert_eq(
	    session_enqueue(s, a, 1, DELIV_JOURNALED, 0, 1, UINT64_MAX, QUEUE_DROP_OLDEST, &sink),
	    0);
	cr_assert_eq(h.n, 0);
	cr_assert_eq(session_enqueue(s, b, 1, 0, 0, 1, UINT64_MAX, QUEUE_DROP_OLDEST, &sink), 1);
	cr_assert_eq(h.n, 1, "the journaled oldest was dropped");
	cr_assert_eq(h.m[0], a);
	cr_assert_eq(session_enqueue(s, c, 1, 0, 0, 1, UINT64_MAX, QUEUE_DROP_OLDEST, &sink), 1);
	cr_assert_eq(h.n, 1, "b was not journaled: nothing to tell");
	cr_assert_eq(
	    session_enqueue(s, a, 1, DELIV_JOURNALED, 0, 1, UINT64_MAX, QUEUE_DROP_NEWEST, &sink),
	    1);
	cr_assert_eq(h.n, 2, "the journaled newest was refused");
	cr_assert_eq(h.m[1], a);
	cr_assert_eq(
	    session_enqueue(s, b, 1, DELIV_JOURNALED, 0, 0, UINT64_MAX, QUEUE_DROP_OLDEST, &sink),
	    2);
	cr_assert_eq(h.n, 3, "a limit of 0: c (not journaled) and b (journaled) go");
	cr_assert_eq(h.m[2], b);
	cr_assert_eq(s->q_len, 0);
	session_free(s);
	cr_assert_eq(refs(a) + refs(b) + refs(c), 3);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
}

Test(session, queue_drop_newest_and_bytes_limit)
{
	struct session *s = new_session();
	struct msg *a = make("a", 0, 0), *b = make("b", 0, 0);
	uint64_t one = a->size_bytes;
	cr_assert_eq(session_enqueue(s, a, 1, false, 0, 100, one, QUEUE_DROP_NEWEST, NULL), 0);
	cr_assert_eq(session_enqueue(s, b, 1, false, 0, 100, one, QUEUE_DROP_NEWEST, NULL), 1,
	             "over the byte limit: the new one goes");
	cr_assert_eq(s->q_len, 1);
	cr_assert_eq(s->q[s->q_head].m, a);
	cr_assert_eq(s->q_bytes, one);
	cr_assert_eq(refs(b), 1);
	cr_assert_eq(session_enqueue(s, b, 1, false, 0, 0, UINT64_MAX, QUEUE_DROP_OLDEST, NULL), 2,
	             "a limit of 0 keeps nothing: the queued one and the new one go");
	cr_assert_eq(s->q_len, 0);
	cr_assert_eq(refs(a), 1);
	session_free(s);
	msg_unref(a);
	msg_unref(b);
}

Test(session, queue_grows_past_its_first_allocation_in_order)
{
	struct session *s = new_session();
	struct msg *m[40];
	for (int i = 0; i < 40; i++) {
		m[i] = make("x", 0, 0);
		/* Interleave dequeues so the ring wraps before it grows. */
		session_enqueue(s, m[i], 1, false, (uint32_t)i, 1000, UINT64_MAX, QUEUE_DROP_OLDEST,
		                NULL);
		if (i % 3 == 0) {
			struct queued q;
			cr_assert(session_dequeue(s, &q));
			msg_unref(q.m);
		}
	}
	uint32_t last = 0;
	struct queued q;
	bool first = true;
	while (session_dequeue(s, &q)) {
		cr_assert(first || q.sub_id > last, "order kept across growth");
		first = false;
		last = q.sub_id;
		msg_unref(q.m);
	}
	session_free(s);
	for (int i = 0; i < 40; i++)
		msg_unref(m[i]);
}

Test(session, expired_queued_messages_are_dropped_in_place)
{
	struct session *s = new_session();
	struct msg *short_ = make("s", 1, 0), *long_ = make("l", 100, 0), *never = make("n", 0, 0);
	session_enqueue(s, short_, 1, false, 1, 10, UINT64_MAX, QUEUE_DROP_OLDEST, NULL);
	session_enqueue(s, long_, 1, false, 2, 10, UINT64_MAX, QUEUE_DROP_OLDEST, NULL);
	session_enqueue(s, never, 1, false, 3, 10, UINT64_MAX, QUEUE_DROP_OLDEST, NULL);
	cr_assert_eq(session_drop_expired(s, 500), 0);
	cr_assert_eq(session_drop_expired(s, 1000), 1);
	struct queued q;
	cr_assert(session_dequeue(s, &q) && q.sub_id == 2);
	msg_unref(q.m);
	cr_assert(session_dequeue(s, &q) && q.sub_id == 3);
	msg_unref(q.m);
	session_free(s);
	msg_unref(short_);
	msg_unref(long_);
	msg_unref(never);
}

Test(session, inbound_qos2_ids)
{
	struct session *s = new_session();
	cr_assert(session_rx_qos2_add(s, 5, 2));
	cr_assert_not(session_rx_qos2_add(s, 5, 2), "a resend is not new");
	cr_assert(session_rx_qos2_add(s, 6, 2));
	cr_assert_not(session_rx_qos2_add(s, 7, 2), "receive maximum reached");
	cr_assert(session_rx_qos2_has(s, 6));
	cr_assert(session_rx_qos2_remove(s, 5));
	cr_assert_not(session_rx_qos2_remove(s, 5));
	cr_assert(session_rx_qos2_add(s, 7, 2));
	session_free(s);
}

Test(session, subscriptions_replace_and_limit)
{
	struct session *s = new_session();
	struct sub_opts o1 = {.qos = 1}, o2 = {.qos = 2, .sub_id = 9};
	cr_assert_eq(session_sub_add(s, mqtt_view_str("a/+"), o1, 2), 1);
	cr_assert_eq(session_sub_add(s, mqtt_view_str("a/+"), o2, 2), 0, "replaced");
	cr_assert_eq(s->sub_count, 1);
	cr_assert_eq(s->subs[0].opts.qos, 2);
	cr_assert_eq(s->subs[0].opts.sub_id, 9);
	cr_assert_eq(session_sub_add(s, mqtt_view_str("b"), o1, 2), 1);
	cr_assert_eq(session_sub_add(s, mqtt_view_str("c"), o1, 2), -1, "over the maximum");
	cr_assert(session_sub_remove(s, mqtt_view_str("a/+")));
	cr_assert_not(session_sub_remove(s, mqtt_view_str("a/+")));
	cr_assert_eq(s->sub_count, 1);
	cr_assert_str_eq(s->subs[0].filter, "b");
	session_free(s);
}

Test(session, clear_messages_keeps_subscriptions)
{
	struct session *s = new_session();
	struct msg *m = make("z", 0, 0);
	session_sub_add(s, mqtt_view_str("keep"), (struct sub_opts){.qos = 1}, 10);
	session_infl_add(s, m, 1, false, 0, 10);
	session_enqueue(s, m, 1, false, 0, 10, UINT64_MAX, QUEUE_DROP_OLDEST, NULL);
	session_rx_qos2_add(s, 3, 10);
	cr_assert_eq(refs(m), 3);
	session_clear_messages(s);
	cr_assert_eq(refs(m), 1);
	cr_assert_eq(s->infl_count + s->q_len + s->rx_qos2_count, 0);
	cr_assert_eq(s->sub_count, 1);
	session_free(s);
	msg_unref(m);
}

/* A client with a large Receive Maximum: tens of thousands in flight,
 * acknowledged in a scrambled order, every id found and released. */
Test(session, large_window_scrambled_acks)
{
	struct session *s = new_session();
	struct msg *m = make("w", 0, 0);
	enum { N = 60000 };
	static uint16_t pids[N];
	for (int i = 0; i < N; i++) {
		pids[i] = session_infl_add(s, m, 1, 0, 0, 65535);
		cr_assert_neq(pids[i], 0);
	}
	cr_assert_eq(session_infl_add(s, m, 1, 0, 0, N), 0, "window of N is full");
	for (int i = 0; i < N; i++)
		cr_assert_eq(session_infl_find(s, pids[i])->pid, pids[i]);
	/* Ack every 7th position in turn: a scrambled order. */
	for (int k = 0; k < 7; k++)
		for (int i = k; i < N; i += 7)
			cr_assert(session_infl_ack(s, MQTT_PUBACK, pids[i]), "ack %d", i);
	cr_assert_eq(s->infl_count, 0);
	cr_assert_eq(s->infl_head, s->infl_tail, "everything popped");
	cr_assert_eq(refs(m), 1);
	session_free(s);
	msg_unref(m);
}

/* The oldest message is never acknowledged, the rest always are: the ring
 * compacts instead of growing, and the old one keeps its place for
 * redelivery. */
Test(session, stuck_oldest_does_not_grow_the_ring)
{
	struct session *s = new_session();
	struct msg *m = make("s", 0, 0);
	uint16_t stuck = session_infl_add(s, m, 1, 0, 0, 16);
	for (int i = 0; i < 100000; i++) {
		uint16_t p = session_infl_add(s, m, 1, 0, 0, 16);
		cr_assert_neq(p, 0);
		cr_assert_neq(p, stuck, "an id in use is never reused");
		cr_assert(session_infl_ack(s, MQTT_PUBACK, p));
	}
	cr_assert_leq(s->infl_cap, 32, "ring stayed small (cap %u)", s->infl_cap);
	uint32_t seq = s->infl_head;
	struct inflight *f = session_infl_next(s, &seq);
	cr_assert(f && f->pid == stuck);
	cr_assert_null(session_infl_next(s, &seq));
	session_free(s);
	msg_unref(m);
}

/* ---- outgoing topic aliases (session.h: first sent, first aliased, then fixed) */

Test(alias_out, first_topics_get_aliases_then_the_set_stays)
{
	struct alias_out *a = alias_out_new(2);
	struct mqtt_view x = mqtt_view_str("dev/1/temp"), y = mqtt_view_str("dev/1/hum"),
	                 z = mqtt_view_str("dev/1/wind");
	cr_assert_eq(alias_out_find(a, x), 0);
	cr_assert_eq(alias_out_next(a, x), 1);
	cr_assert(alias_out_add(a, x));
	cr_assert_eq(alias_out_find(a, x), 1);
	cr_assert_eq(alias_out_next(a, y), 2);
	cr_assert(alias_out_add(a, y));
	cr_assert_eq(alias_out_find(a, y), 2);
	cr_assert_eq(alias_out_next(a, z), 0, "the client's maximum is reached");
	cr_assert_not(alias_out_add(a, z));
	cr_assert_eq(alias_out_find(a, z), 0);
	cr_assert_eq(alias_out_find(a, x), 1, "kept");
	cr_assert_eq(alias_out_find(a, mqtt_view_str("dev/1/tem")), 0, "a prefix is another topic");
	alias_out_free(a);
}

Test(alias_out, short_topics_and_the_byte_budget)
{
	struct alias_out *a = alias_out_new(1000);
	cr_assert_eq(alias_out_next(a, mqtt_view_str("abc")), 0, "3 bytes gain nothing");
	cr_assert_eq(alias_out_next(a, mqtt_view_str("abcd")), 1);
	static char big[ALIAS_OUT_TEXT_MAX + 2];
	memset(big, 'b', ALIAS_OUT_TEXT_MAX + 1);
	cr_assert_eq(alias_out_next(a, mqtt_view_str(big)), 0, "over the budget alone");
	big[ALIAS_OUT_TEXT_MAX - 4] = '\0';
	cr_assert(alias_out_add(a, mqtt_view_str(big)));
	cr_assert(alias_out_add(a, mqtt_view_str("abcd")));
	cr_assert_eq(alias_out_next(a, mqtt_view_str("abcde")), 0, "the budget is used up");
	cr_assert_eq(alias_out_find(a, mqtt_view_str(big)), 1);
	cr_assert_eq(alias_out_find(a, mqtt_view_str("abcd")), 2);
	alias_out_free(a);
}

Test(alias_out, many_topics_through_index_growth)
{
	struct alias_out *a = alias_out_new(600);
	char t[32];
	for (int i = 0; i < 600; i++) {
		snprintf(t, sizeof(t), "s/%d", i + 1000);
		cr_assert_eq(alias_out_next(a, mqtt_view_str(t)), i + 1);
		cr_assert(alias_out_add(a, mqtt_view_str(t)), "add %d", i);
	}
	for (int i = 0; i < 600; i++) {
		snprintf(t, sizeof(t), "s/%d", i + 1000);
		cr_assert_eq(alias_out_find(a, mqtt_view_str(t)), i + 1, "topic %s", t);
		snprintf(t, sizeof(t), "s/%d", i + 5000);
		cr_assert_eq(alias_out_find(a, mqtt_view_str(t)), 0, "never added: %s", t);
	}
	cr_assert_eq(alias_out_next(a, mqtt_view_str("s/other")), 0);
	alias_out_free(a);
	alias_out_free(NULL);
}
