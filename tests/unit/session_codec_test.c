/*
 * session_codec_test.c — the encoded session (core/session/codec.c): what
 * session_encode writes, session_decode rebuilds, field by field, for
 * sessions of each protocol level with and without messages in every state;
 * an encoding of the rebuilt session is the same bytes; truncated and
 * corrupted encodings are refused (never read past their end, never a
 * session the broker could not have made); and every message reference is
 * given back.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "persist/msg_journal.h"
#include "persist/record.h"
#include "session/session.h"

#define NOW 1000000u

static struct msg *make(const char *topic, const char *payload, uint8_t qos, bool retain,
                        uint32_t expiry_s, uint8_t version)
{
	uint8_t wire[512];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(topic);
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.packet_id = qos ? 7 : 0;
	if (version == MQTT_V5) {
		p.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
		p.publish.props.content_type = mqtt_view_str("text/plain");
		if (expiry_s) {
			p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			p.publish.props.message_expiry_s = expiry_s;
		}
	}
	size_t n = mqtt_encode(&p, version, wire, sizeof(wire));
	cr_assert_gt(n, 0);
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, version, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m =
	    msg_new(&d.publish, version, d.publish.topic, (struct sess_id){3, 4, 1}, NOW);
	cr_assert_not_null(m);
	return m;
}

static uint8_t *will_bytes(uint32_t *len)
{
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str("wills/c1");
	p.publish.payload = mqtt_view_str("gone");
	p.publish.qos = 1;
	p.publish.packet_id = 1;
	size_t n = mqtt_encode_len(&p, MQTT_V5);
	uint8_t *b = malloc(n);
	*len = (uint32_t)mqtt_encode(&p, MQTT_V5, b, n);
	return b;
}

/* A session with everything a session keeps; msgs[] are the messages it
 * holds (the caller drops its own references after). */
static struct session *rich(uint8_t version, struct msg *msgs[4])
{
	struct session *s = session_new((const uint8_t *)"client-1", 8, (struct sess_id){5, 9, 0});
	cr_assert_not_null(s);
	cr_assert(session_set_username(s, (const uint8_t *)"alice", 5));
	session_set_expiry(s, 3600);
	session_attach(s, 1, 1, version);
	struct sub_opts a = {.sub_id = 0, .qos = 1};
	struct sub_opts b = {.sub_id = 42, .qos = 2, .no_local = true, .rap = true};
	struct sub_opts c = {.qos = 0};
	cr_assert_eq(session_sub_add(s, mqtt_view_str("a/+/c"), a, 10), 1);
	cr_assert_eq(session_sub_add(s, mqtt_view_str("b/#"), b, 10), 1);
	cr_assert_eq(session_sub_add(s, mqtt_view_str("$share/g/x"), c, 10), 1);
	msgs[0] = make("a/b/c", "one", 1, false, 0, version);
	msgs[1] = make("b/x", "two", 2, true, 30, version);
	msgs[2] = make("b/y", "three", 2, false, 0, version);
	msgs[3] = make("x", "four", 1, false, 0, version);
	uint16_t p0 = session_infl_add(s, msgs[0], 1, 0, 0, 10);
	uint16_t p1 = session_infl_add(s, msgs[1], 2, DELIV_RETAIN, 42, 10);
	uint16_t p2 = session_infl_add(s, msgs[2], 2, 0, 42, 10);
	cr_assert(p0 && p1 && p2);
	cr_assert(session_infl_ack(s, MQTT_PUBACK, p0)); /* finished: not encoded */
	cr_assert(session_infl_ack(s, MQTT_PUBREC, p2)); /* awaiting PUBCOMP */
	cr_assert_eq(
	    session_enqueue(s, msgs[3], 1, DELIV_SHARED, 0, 10, 1 << 20, QUEUE_DROP_OLDEST, NULL),
	    0);
	cr_assert_eq(session_enqueue(s, msgs[0], 0, 0, 0, 10, 1 << 20, QUEUE_DROP_OLDEST, NULL), 0);
	cr_assert(session_rx_qos2_add(s, 17, 10));
	cr_assert(session_rx_qos2_add(s, 65535, 10));
	uint32_t wl;
	uint8_t *will = will_bytes(&wl);
	session_set_will(s, will, wl, 5);
	unsigned after = session_detach(s, NOW, true); /* offline: expiry and will pending */
	cr_assert_eq(after, SESSION_KEPT);
	return s;
}

static void free_msgs(struct msg *msgs[4])
{
	for (int i = 0; i < 4; i++)
		msg_unref(msgs[i]);
}

static void assert_same_msg(const struct msg *a, const struct msg *b)
{
	cr_assert(mqtt_view_eq(a->pub.topic, b->pub.topic));
	cr_assert(mqtt_view_eq(a->pub.payload, b->pub.payload));
	cr_assert_eq(a->pub.qos, b->pub.qos);
	cr_assert_eq(a->pub.retain, b->pub.retain);
	cr_assert_eq(a->version, b->version);
	cr_assert_eq(a->pub.props.has, b->pub.props.has);
	cr_assert(mqtt_view_eq(a->pub.props.content_type, b->pub.props.content_type));
	cr_assert_eq(a->expires_at_ms, b->expires_at_ms);
}

ParameterizedTestParameters(session_codec, round_trip)
{
	static uint8_t versions[] = {MQTT_V31, MQTT_V311, MQTT_V5};
	return cr_make_param_array(uint8_t, versions, 3);
}

ParameterizedTest(uint8_t *version, session_codec, round_trip)
{
	struct msg *msgs[4];
	struct session *s = rich(*version, msgs);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	cr_assert_not_null(enc);
	struct sess_id id = {77, 3, 1};
	struct session *d = session_decode(enc, len, id, NOW);
	cr_assert_not_null(d);

	cr_assert(sess_id_eq(d->id, id));
	cr_assert_str_eq(d->client_id, "client-1");
	size_t ulen;
	cr_assert_str_eq(session_username(d, &ulen), "alice");
	cr_assert_eq(d->expiry_s, 3600);
	cr_assert_eq(d->version, *version);
	cr_assert_eq(d->next_pid, s->next_pid);
	cr_assert_not(d->online);
	cr_assert_eq(d->expires_at_ms, s->expires_at_ms);
	cr_assert_eq(d->will_len, s->will_len);
	cr_assert_eq(memcmp(d->will, s->will, s->will_len), 0);
	cr_assert_eq(d->will_delay_s, 5);
	cr_assert_eq(d->will_at_ms, s->will_at_ms);

	cr_assert_eq(d->sub_count, 3);
	for (uint32_t i = 0; i < 3; i++) {
		cr_assert_str_eq(d->subs[i].filter, s->subs[i].filter);
		cr_assert_eq(d->subs[i].opts.sub_id, s->subs[i].opts.sub_id);
		cr_assert_eq(d->subs[i].opts.qos, s->subs[i].opts.qos);
		cr_assert_eq(d->subs[i].opts.no_local, s->subs[i].opts.no_local);
		cr_assert_eq(d->subs[i].opts.rap, s->subs[i].opts.rap);
	}

	cr_assert_eq(d->infl_count, 2);
	uint32_t sa = s->infl_head, sb = d->infl_head;
	struct inflight *fa, *fb;
	while ((fa = session_infl_next(s, &sa)) != NULL) {
		fb = session_infl_next(d, &sb);
		cr_assert_not_null(fb);
		cr_assert_eq(fb->pid, fa->pid);
		cr_assert_eq(fb->qos, fa->qos);
		cr_assert_eq(fb->state, fa->state);
		cr_assert_eq(fb->retain, fa->retain);
		cr_assert_eq(fb->shared, fa->shared);
		cr_assert_eq(fb->sub_id, fa->sub_id);
		cr_assert_eq(fb->m == NULL, fa->m == NULL);
		if (fa->m)
			assert_same_msg(fa->m, fb->m);
		cr_assert_eq(session_infl_find(d, fa->pid), fb, "found by its packet id");
	}
	cr_assert_null(session_infl_next(d, &sb));

	cr_assert_eq(d->q_len, 2);
	cr_assert_eq(d->q_bytes, s->q_bytes);
	for (uint32_t i = 0; i < 2; i++) {
		struct queued *qa = &s->q[(s->q_head + i) & (s->q_cap - 1)];
		struct queued *qb = &d->q[(d->q_head + i) & (d->q_cap - 1)];
		cr_assert_eq(qb->qos, qa->qos);
		cr_assert_eq(qb->shared, qa->shared);
		cr_assert_eq(qb->retain, qa->retain);
		assert_same_msg(qa->m, qb->m);
	}
	cr_assert_eq(d->rx_qos2_count, 2);
	cr_assert(session_rx_qos2_has(d, 17));
	cr_assert(session_rx_qos2_has(d, 65535));

	/* The rebuilt session encodes to the same bytes. */
	size_t len2;
	uint8_t *enc2 = session_encode(d, NOW, &len2);
	cr_assert_eq(len2, len);
	cr_assert_eq(memcmp(enc, enc2, len), 0);

	/* The session holds what it keeps (the decoded one its own copies):
	 * the message released at PUBREC only by us. */
	cr_assert_eq(atomic_load(&msgs[2]->refs), 1);
	cr_assert_eq(atomic_load(&msgs[0]->refs), 2,
	             "queued (its in-flight entry was acknowledged)");
	cr_assert_eq(atomic_load(&msgs[1]->refs), 2);
	cr_assert_eq(atomic_load(&msgs[3]->refs), 2);
	session_free(s);
	free_msgs(msgs);
	session_free(d);
	free(enc);
	free(enc2);
}

Test(session_codec, remaining_times_follow_the_clock)
{
	struct msg *msgs[4];
	struct session *s = rich(MQTT_V5, msgs);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	/* Decoded 10 s later (another node, a restart): deadlines move along. */
	struct session *d = session_decode(enc, len, (struct sess_id){1, 1, 0}, NOW + 10000);
	cr_assert_not_null(d);
	cr_assert_eq(d->expires_at_ms, s->expires_at_ms + 10000);
	cr_assert_eq(d->will_at_ms, s->will_at_ms + 10000);
	uint32_t seq = d->infl_head;
	struct inflight *g;
	while ((g = session_infl_next(d, &seq)) != NULL)
		if (g->m && g->m->expires_at_ms)
			cr_assert_eq(g->m->expires_at_ms, NOW + 10000 + 30000);
	session_free(s);
	session_free(d);
	free_msgs(msgs);
	free(enc);
}

Test(session_codec, an_empty_session)
{
	struct session *s = session_new((const uint8_t *)"x", 1, (struct sess_id){1, 1, 0});
	session_attach(s, 1, 1, MQTT_V311);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	struct session *d = session_decode(enc, len, (struct sess_id){2, 1, 0}, NOW);
	cr_assert_not_null(d);
	size_t ulen;
	cr_assert_null(session_username(d, &ulen));
	cr_assert_eq(d->sub_count + d->infl_count + d->q_len + d->rx_qos2_count, 0);
	cr_assert_null(d->will);
	cr_assert_eq(d->expires_at_ms, 0, "an online session was not expiring");
	session_free(s);
	session_free(d);
	free(enc);
}

/* What the journal marks (persist/msg_journal.h) survives a takeover: the
 * journaled bit of a subscription, of an entry in flight (with its
 * message's stamp), of a released QoS 2 entry (a PUBREL owed, as recovery
 * restores it) and of a queued one; a message that came back from the
 * journal stays marked so (it goes with DUP). */
Test(session_codec, journal_marks_survive)
{
	struct session *s = session_new((const uint8_t *)"j", 1, (struct sess_id){1, 1, 0});
	session_set_expiry(s, 60);
	session_attach(s, 1, 1, MQTT_V5);
	struct sub_opts o = {.qos = 2, .journaled = true};
	cr_assert_eq(session_sub_add(s, mqtt_view_str("j/#"), o, 10), 1);
	struct msg *a = make("j/a", "in flight", 2, false, 0, MQTT_V5);
	struct msg *b = make("j/b", "queued", 1, false, 0, MQTT_V5);
	a->jstamp = 0x0102030405060708ull;
	b->jstamp = 77;
	b->recovered = true;
	cr_assert(session_owe_pubrel(s, 9));
	cr_assert(session_resend_inflight(s, a, 3, 2, DELIV_JOURNALED, 0));
	cr_assert_eq(session_enqueue(s, b, 1, DELIV_JOURNALED | DELIV_SHARED, 0, 10, 1 << 20,
	                             QUEUE_DROP_OLDEST, NULL),
	             0);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	struct session *d = session_decode(enc, len, (struct sess_id){2, 1, 0}, NOW);
	cr_assert_not_null(d, "a session with journal marks decodes");
	cr_assert(d->subs[0].opts.journaled);
	struct inflight *rel = session_infl_find(d, 9), *fl = session_infl_find(d, 3);
	cr_assert(rel && rel->state == INFL_WAIT_COMP && rel->journaled && !rel->m);
	cr_assert(fl && fl->state == INFL_WAIT_ACK && fl->journaled);
	cr_assert_eq(fl->m->jstamp, 0x0102030405060708ull);
	cr_assert_not(fl->m->recovered);
	cr_assert_eq(d->q_len, 1);
	struct queued *q = &d->q[d->q_head];
	cr_assert(q->journaled && q->shared);
	cr_assert_eq(q->m->jstamp, 77);
	cr_assert(q->m->recovered);
	/* Every truncation of it is still refused. */
	for (size_t n = 0; n < len; n++) {
		struct session *t = session_decode(enc, n, (struct sess_id){2, 1, 0}, NOW);
		cr_assert_null(t, "%zu of %zu bytes accepted", n, len);
	}
	session_free(d);
	session_free(s);
	free(enc);
	msg_unref(a);
	msg_unref(b);
}

Test(session_codec, every_truncation_is_refused)
{
	struct msg *msgs[4];
	struct session *s = rich(MQTT_V5, msgs);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any overread */
		memcpy(copy, enc, n);
		struct session *d = session_decode(copy, n, (struct sess_id){1, 1, 0}, NOW);
		cr_assert_null(d, "a prefix of %zu of %zu bytes was accepted", n, len);
		free(copy);
	}
	/* And one byte more is not a session either. */
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, enc, len);
	longer[len] = 0;
	cr_assert_null(session_decode(longer, len + 1, (struct sess_id){1, 1, 0}, NOW));
	free(longer);
	session_free(s);
	free_msgs(msgs);
	free(enc);
}

Test(session_codec, flipped_bits_give_a_valid_session_or_none)
{
	struct msg *msgs[4];
	struct session *s = rich(MQTT_V5, msgs);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	unsigned accepted = 0;
	for (size_t i = 0; i < len; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			enc[i] ^= (uint8_t)(1u << bit);
			struct session *d =
			    session_decode(enc, len, (struct sess_id){1, 1, 0}, NOW);
			if (d) {
				/* Whatever it accepted, it can write again and read back. */
				size_t l2;
				uint8_t *e2 = session_encode(d, NOW, &l2);
				cr_assert_not_null(e2);
				struct session *d2 =
				    session_decode(e2, l2, (struct sess_id){1, 1, 0}, NOW);
				cr_assert_not_null(d2, "byte %zu bit %u: accepted, then not", i,
				                   bit);
				session_free(d2);
				free(e2);
				session_free(d);
				accepted++;
			}
			enc[i] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert_lt(accepted, len * 8, "a format that accepts anything checks nothing");
	session_free(s);
	free_msgs(msgs);
	free(enc);
}

Test(session_codec, a_wrong_version_byte_is_refused)
{
	struct session *s = session_new((const uint8_t *)"x", 1, (struct sess_id){1, 1, 0});
	session_attach(s, 1, 1, MQTT_V5);
	size_t len;
	uint8_t *enc = session_encode(s, NOW, &len);
	enc[0] = 2;
	cr_assert_null(session_decode(enc, len, (struct sess_id){1, 1, 0}, NOW));
	session_free(s);
	free(enc);
}

/* The fuzzer's seeds are written from the format's description by a second
 * implementation (tests/fuzz/make_session_corpus.py): the decoder must take
 * every good one and refuse every "bad_" one. Found through __FILE__, which
 * meson gives relative to the build root (config_test.c does the same). */
#include <dirent.h>
#include <stdio.h>

Test(session_codec, the_seeds_written_from_the_description)
{
	static const char self[] = "tests/unit/session_codec_test.c";
	const char *file = __FILE__;
	size_t root_len = strlen(file) - (sizeof(self) - 1);
	cr_assert_str_eq(file + root_len, self);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%.*stests/fuzz/corpus/session", (int)root_len, file);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	struct dirent *e;
	unsigned good = 0, bad = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[1300];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		static uint8_t buf[65536];
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		struct session *s = session_decode(buf, n, (struct sess_id){1, 1, 0}, NOW);
		if (strncmp(e->d_name, "bad_", 4) == 0) {
			cr_assert_null(s, "%s was accepted", e->d_name);
			bad++;
		} else {
			cr_assert_not_null(s, "%s was refused", e->d_name);
			size_t len;
			uint8_t *enc = session_encode(s, NOW, &len);
			cr_assert_eq(len, n, "%s: our encoding differs in length", e->d_name);
			cr_assert_eq(memcmp(enc, buf, n), 0, "%s: our encoding differs", e->d_name);
			free(enc);
			session_free(s);
			good++;
		}
	}
	closedir(d);
	cr_assert_geq(good, 9);
	cr_assert_geq(bad, 3);
}

/* What session_journaled_walk reports, in order. */
struct walked {
	char line[16][48];
	int n;
};

static void walk_message(void *ctx, const struct session *s, const struct msg *m, uint8_t qos,
                         uint8_t flags, uint32_t sub_id)
{
	struct walked *w = ctx;
	(void)s;
	cr_assert_lt(w->n, 16);
	snprintf(w->line[w->n++], 48, "msg %llu q%u f%u s%u", (unsigned long long)m->jstamp, qos,
	         flags, sub_id);
}

static void walk_packet_id(void *ctx, const struct session *s, uint8_t type, uint64_t msg_stamp,
                           uint16_t pid)
{
	struct walked *w = ctx;
	(void)s;
	cr_assert_lt(w->n, 16);
	snprintf(w->line[w->n++], 48, "%s %llu p%u",
	         type == REC_MSG_SENT  ? "sent"
	         : type == REC_MSG_REL ? "rel"
	         : type == REC_IN_QOS2 ? "in"
	                               : "?",
	         (unsigned long long)msg_stamp, pid);
}

Test(session_codec, journaled_walk_says_what_the_journal_holds)
{
	/* In flight: QoS 1 and QoS 2 journaled awaiting their ack, a QoS 2
	 * PUBRECed (PUBREL owed), a QoS 1 not journaled; an inbound QoS 2 id;
	 * queued: one journaled, one not. The walk gives what a snapshot
	 * writes, in flight first, and nothing of what is not journaled. */
	struct session *s = session_new((const uint8_t *)"walker", 6, (struct sess_id){3, 1, 0});
	cr_assert_not_null(s);
	struct msg *m[6];
	for (int i = 0; i < 6; i++) {
		m[i] = make("w/t", "x", 2, false, 0, MQTT_V5);
		m[i]->jstamp = 100 + (uint64_t)i;
	}
	uint16_t p0 = session_infl_add(s, m[0], 1, DELIV_JOURNALED, 7, 10);
	uint16_t p1 = session_infl_add(s, m[1], 2, DELIV_JOURNALED | DELIV_RETAIN, 0, 10);
	uint16_t p2 = session_infl_add(s, m[2], 2, DELIV_JOURNALED, 0, 10);
	uint16_t p3 = session_infl_add(s, m[3], 1, 0, 0, 10);
	cr_assert(p0 && p1 && p2 && p3);
	cr_assert(session_infl_ack(s, MQTT_PUBREC, p2));
	cr_assert(session_rx_qos2_add(s, 17, 10));
	cr_assert_eq(session_enqueue(s, m[4], 1, DELIV_JOURNALED | DELIV_SHARED, 9, 10, 1 << 20,
	                             QUEUE_DROP_OLDEST, NULL),
	             0);
	cr_assert_eq(session_enqueue(s, m[5], 1, 0, 0, 10, 1 << 20, QUEUE_DROP_OLDEST, NULL), 0);

	struct walked w = {0};
	static const struct journaled_walk fn = {walk_message, walk_packet_id};
	session_journaled_walk(s, &fn, &w);
	char want[6][48];
	snprintf(want[0], 48, "msg 100 q1 f%u s7", DELIV_JOURNALED);
	snprintf(want[1], 48, "msg 101 q2 f%u s0", DELIV_JOURNALED | DELIV_RETAIN);
	snprintf(want[2], 48, "sent 101 p%u", p1);
	snprintf(want[3], 48, "rel 0 p%u", p2);
	snprintf(want[4], 48, "in 0 p17");
	snprintf(want[5], 48, "msg 104 q1 f%u s9", DELIV_JOURNALED | DELIV_SHARED);
	cr_assert_eq(w.n, 6, "%d records", w.n);
	for (int i = 0; i < 6; i++)
		cr_assert_str_eq(w.line[i], want[i], "record %d", i);
	session_free(s);
	for (int i = 0; i < 6; i++)
		msg_unref(m[i]);
}
