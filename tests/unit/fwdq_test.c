/*
 * fwdq_test.c — a worker's forwarding queue toward one peer
 * (cluster/fwdq.h): QoS 0 let go once written, QoS 1/2 kept until
 * acknowledged and written again first after a broken connection, numbers
 * in order, bounds by bytes and entries, and every reference released.
 * A randomized run against a model: whatever the writes, breaks and
 * acknowledgements, every QoS 1/2 message reaches the peer (counting
 * what the model's peer de-duplicates by number) in order, exactly once
 * after de-duplication, and no reference leaks.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "codec.h"
#include "fwdq.h"

static struct msg *mk(uint8_t qos, int n)
{
	char payload[16];
	snprintf(payload, sizeof(payload), "%d", n);
	uint8_t wire[128];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str("t");
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = qos;
	p.publish.packet_id = qos ? 1 : 0;
	size_t len = mqtt_encode(&p, MQTT_V5, wire, sizeof(wire));
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, len, MQTT_V5, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m = msg_new(&d.publish, MQTT_V5, d.publish.topic, (struct sess_id){0}, 0);
	cr_assert_not_null(m);
	return m;
}

static unsigned refs(struct msg *m)
{
	return atomic_load(&m->refs);
}

Test(fwdq, qos0_goes_once_written_qos1_stays_until_acknowledged)
{
	struct fwdq q;
	fwdq_init(&q, 1 << 20);
	struct msg *a = mk(0, 1), *b = mk(1, 2), *c = mk(2, 3);
	cr_assert_eq(fwdq_push(&q, a, 0), 0);
	cr_assert_eq(fwdq_push(&q, b, FWD_SHARED), 0);
	cr_assert_eq(fwdq_push(&q, c, 0), 0);
	cr_assert_eq(refs(a), 2);
	cr_assert_eq(fwdq_unwritten(&q), 3);
	cr_assert_eq(fwdq_unwritten_at(&q, 0)->seq, 0);
	cr_assert_eq(fwdq_unwritten_at(&q, 1)->seq, 1);
	cr_assert_eq(fwdq_unwritten_at(&q, 1)->flags, FWD_SHARED);
	cr_assert_eq(fwdq_unwritten_at(&q, 2)->seq, 2);
	fwdq_wrote(&q, 3);
	cr_assert_eq(refs(a), 1, "QoS 0 let go once written");
	cr_assert_eq(refs(b), 2);
	cr_assert_eq(fwdq_held(&q), 2);
	/* The connection broke: both go again, first. */
	fwdq_rewind(&q);
	cr_assert_eq(fwdq_unwritten(&q), 2);
	cr_assert_eq(fwdq_unwritten_at(&q, 0)->m, b);
	fwdq_ack(&q, 1);
	cr_assert_eq(refs(b), 1);
	cr_assert_eq(fwdq_unwritten(&q), 1);
	cr_assert_eq(fwdq_unwritten_at(&q, 0)->m, c);
	fwdq_wrote(&q, 1);
	fwdq_ack(&q, 2);
	cr_assert_eq(refs(c), 1);
	cr_assert_eq(q.len, 0);
	cr_assert_eq(q.bytes, 0);
	fwdq_fini(&q);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
}

Test(fwdq, bounded_by_bytes_and_drop_all_releases)
{
	struct msg *m = mk(1, 7);
	struct fwdq q;
	fwdq_init(&q, (uint64_t)m->size_bytes * 3);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(fwdq_push(&q, m, 0), 0);
	cr_assert_eq(fwdq_push(&q, m, 0), -ENOBUFS, "a full queue refuses");
	cr_assert_eq(refs(m), 4);
	fwdq_wrote(&q, 2);
	cr_assert_eq(fwdq_drop_all(&q), 3);
	cr_assert_eq(refs(m), 1);
	cr_assert_eq(q.bytes, 0);
	cr_assert_eq(fwdq_push(&q, m, 0), 0, "room again");
	fwdq_fini(&q);
	cr_assert_eq(refs(m), 1);
	msg_unref(m);
}

Test(fwdq, a_qos0_entry_not_yet_written_survives_an_acknowledgement)
{
	struct fwdq q;
	fwdq_init(&q, 1 << 20);
	struct msg *a = mk(1, 1), *b = mk(0, 2), *c = mk(1, 3);
	fwdq_push(&q, a, 0);
	fwdq_push(&q, b, 0);
	fwdq_push(&q, c, 0);
	fwdq_wrote(&q, 3);  /* b let go */
	fwdq_rewind(&q);    /* a, c again */
	fwdq_ack(&q, 1);
	cr_assert_eq(fwdq_unwritten(&q), 1);
	cr_assert_eq(fwdq_unwritten_at(&q, 0)->m, c);
	fwdq_fini(&q);
	cr_assert_eq(refs(a) + refs(b) + refs(c), 3);
	msg_unref(a);
	msg_unref(b);
	msg_unref(c);
}

Test(fwdq, random_breaks_and_acks_lose_and_duplicate_nothing)
{
	for (unsigned seed = 1; seed <= 50; seed++) {
		srand(seed);
		struct fwdq q;
		fwdq_init(&q, 1 << 20);
		enum { N = 2000 };
		static struct msg *ms[N];
		uint64_t peer_max = 0;      /* what the peer has delivered, by number */
		uint64_t delivered = 0;     /* QoS 1/2 delivered after de-duplication */
		uint64_t pushed_qos = 0;
		int pushed = 0;
		uint64_t on_wire[N];        /* numbers written on the current connection */
		int wire_len = 0, wire_acked = 0;
		while (pushed < N || q.len > 0) {
			int r = rand() % 10;
			if (r < 4 && pushed < N) {
				uint8_t qos = (uint8_t)(rand() % 3);
				ms[pushed] = mk(qos, pushed);
				if (fwdq_push(&q, ms[pushed], 0) == 0 && qos)
					pushed_qos++;
				pushed++;
			} else if (r < 7 && fwdq_unwritten(&q)) {
				uint32_t n = 1 + (uint32_t)rand() % fwdq_unwritten(&q);
				for (uint32_t i = 0; i < n; i++) {
					const struct fwd_item *it = fwdq_unwritten_at(&q, i);
					if (it->m && it->seq)
						on_wire[wire_len++ % N] = it->seq;
				}
				fwdq_wrote(&q, n);
			} else if (r < 9 && wire_acked < wire_len) {
				/* The peer reads some of the connection and acknowledges. */
				int upto = wire_acked + 1 + rand() % (wire_len - wire_acked);
				for (int i = wire_acked; i < upto; i++) {
					uint64_t s = on_wire[i % N];
					if (s > peer_max) {
						cr_assert_eq(s, peer_max + 1, "in order, nothing skipped (seed %u)",
						             seed);
						peer_max = s;
						delivered++;
					}
				}
				wire_acked = upto;
				fwdq_ack(&q, peer_max);
			} else if (r == 9) {
				/* The connection breaks: what was not read is lost. */
				wire_len = wire_acked = 0;
				fwdq_rewind(&q);
			} else if (pushed == N && fwdq_unwritten(&q) == 0 && wire_acked == wire_len) {
				/* Everything written and read: the rest is acknowledged. */
				fwdq_ack(&q, peer_max);
				if (q.len)
					fwdq_rewind(&q);
			}
		}
		cr_assert_eq(delivered, pushed_qos, "every QoS 1/2 message exactly once (seed %u)",
		             seed);
		for (int i = 0; i < N; i++) {
			cr_assert_eq(refs(ms[i]), 1, "no reference kept (seed %u)", seed);
			msg_unref(ms[i]);
		}
		fwdq_fini(&q);
	}
}
