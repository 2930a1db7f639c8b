/*
 * fuzz_record.c — libFuzzer target over the journal's records (core/
 * persist/record.c): the bytes of a journal tail as recovery reads them
 * after a crash, with whatever damage the disk or the crash left.
 *
 * Input: records one after another, optionally behind a file header (when
 * the input starts with the magic), read as they are and then once more
 * with every checksum made to hold, so that the fuzzer's changes inside a
 * payload reach the payload decoders. Seeds: tests/fuzz/
 * make_record_corpus.py, written from the format's description with its own
 * CRC-32C. Promises:
 * record_read never reads past the input and says OK only for a record
 * that lies within it and seals again to the same bytes; TORN only when the
 * bytes are short of what the length asks; the payload decoders never
 * crash; a decoded retained set writes again to the same bytes (but for an
 * expiry beyond what MQTT can express, which is capped) and reads back to
 * the same topic, QoS, body and order fields; a decoded delete writes
 * again to the same bytes; so does a session record (REC_SESS_PUT, _END
 * and REC_SESS_PLACED with its run and place), and the session in a PUT or
 * PLACED goes through session_decode; a decoded REC_MSG has 1 to
 * REC_MSG_TARGETS_MAX targets ending the payload, each of QoS 1 or 2 and a
 * generation other than 0, makes a message unless it expired, and writes
 * again to the same bytes with its targets (but for a capped expiry, as a
 * set); so does a REC_MSG_IN, with the inbound packet id and client id
 * (both not 0) in front; a decoded REC_MSG_DONE writes again to the same bytes, and so does
 * a packet id's record (REC_MSG_REL, _COMP, _SENT, REC_IN_QOS2, _IN_REL).
 * Every message reference is given back (ASan's leak check).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "persist/record.h"
#include "route/msg.h"
#include "session/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_record: " __VA_ARGS__);                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define NOW_MS      5000000u
#define NOW_WALL_MS 1700000000000u
#define AT_EXPIRES  26 /* the expiry's offset in a REC_RETAIN_SET payload */

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void header(const uint8_t *data, size_t size)
{
	struct journal_header h;
	if (journal_header_get(data, size, &h) != 0)
		return;
	uint8_t again[JOURNAL_HEADER_BYTES];
	journal_header_put(again, &h);
	struct journal_header h2;
	FUZZ_CHECK(journal_header_get(again, sizeof(again), &h2) == 0,
	           "a header written is refused");
	FUZZ_CHECK(h2.version == h.version && h2.writer == h.writer && h2.kind == h.kind &&
	               h2.segment == h.segment && h2.created_wall_ms == h.created_wall_ms,
	           "a header reads back different");
	FUZZ_CHECK(memcmp(again, data, 32) == 0, "a header writes to other bytes");
}

static void retain_set(const struct record *r)
{
	struct rec_retain a;
	struct msg *m = (struct msg *)1;
	if (rec_retain_set_get(r->payload, r->payload_len, NOW_MS, NOW_WALL_MS, &a, &m) != 0) {
		FUZZ_CHECK(m == NULL, "a refused payload left a message");
		return;
	}
	FUZZ_CHECK(a.topic >= r->payload && a.topic + a.topic_len <= r->payload + r->payload_len,
	           "the topic is not inside the payload");
	if (a.expired) {
		FUZZ_CHECK(m == NULL, "an expired set made a message");
		return;
	}
	FUZZ_CHECK(m != NULL, "an accepted set made no message");
	FUZZ_CHECK(m->pub.topic.len == a.topic_len &&
	               memcmp(m->pub.topic.ptr, a.topic, a.topic_len) == 0,
	           "the message's topic is not the record's");
	FUZZ_CHECK(m->wall_ms == a.wall_ms && m->origin_rank == a.origin_rank,
	           "the order fields did not reach the message");
	size_t n = rec_retain_set_size(m);
	FUZZ_CHECK(n == r->payload_len, "the set's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	rec_retain_set_put(again, m, a.stamp, NOW_MS, NOW_WALL_MS);
	uint64_t at = be64(r->payload + AT_EXPIRES), at2 = be64(again + AT_EXPIRES);
	FUZZ_CHECK(at2 == at || (at - NOW_WALL_MS > (uint64_t)UINT32_MAX * 1000 && at2 < at),
	           "expiry %llu written again as %llu", (unsigned long long)at,
	           (unsigned long long)at2);
	FUZZ_CHECK(memcmp(again, r->payload, AT_EXPIRES) == 0 &&
	               memcmp(again + AT_EXPIRES + 8, r->payload + AT_EXPIRES + 8,
	                      n - AT_EXPIRES - 8) == 0,
	           "a decoded set writes to other bytes");
	struct rec_retain b;
	struct msg *m2 = NULL;
	FUZZ_CHECK(rec_retain_set_get(again, n, NOW_MS, NOW_WALL_MS, &b, &m2) == 0 && m2,
	           "a set written again is refused");
	FUZZ_CHECK(b.stamp == a.stamp && b.origin_rank == a.origin_rank && b.wall_ms == a.wall_ms,
	           "the order fields read back different");
	FUZZ_CHECK(mqtt_view_eq(m2->pub.topic, m->pub.topic), "topic differs");
	FUZZ_CHECK(m2->pub.qos == m->pub.qos && m2->pub.retain == m->pub.retain &&
	               m2->version == m->version,
	           "QoS, retain or level differs");
	FUZZ_CHECK(mqtt_view_eq(m2->pub.payload, m->pub.payload), "payload differs");
	FUZZ_CHECK(m2->size_bytes == m->size_bytes &&
	               memcmp(m2->data, m->data, m->size_bytes - sizeof(*m)) == 0,
	           "body differs");
	FUZZ_CHECK(m2->expires_at_ms == m->expires_at_ms, "expiry differs");
	msg_unref(m2);
	msg_unref(m);
	free(again);
}

static void retain_del(const struct record *r)
{
	struct rec_retain a;
	if (rec_retain_del_get(r->payload, r->payload_len, &a) != 0)
		return;
	FUZZ_CHECK(!a.expired, "a delete expired");
	size_t n = rec_retain_del_size(a.topic_len);
	FUZZ_CHECK(n == r->payload_len, "the delete's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	rec_retain_del_put(again, a.topic, a.topic_len, a.stamp, a.origin_rank, a.wall_ms);
	FUZZ_CHECK(memcmp(again, r->payload, n) == 0, "a decoded delete writes to other bytes");
	free(again);
}

/* A message record: a decoded one writes again to the same bytes (but for
 * an expiry past the longest interval, capped), with its targets. */
#define AT_MSG_EXPIRES 18 /* the expiry's offset in a REC_MSG payload */

static void msg_rec(const struct record *r)
{
	struct rec_msg a;
	struct rec_inbound in;
	bool with_in = r->type == REC_MSG_IN;
	struct msg *m = (struct msg *)1;
	int rc = with_in
	             ? rec_msg_in_get(r->payload, r->payload_len, NOW_MS, NOW_WALL_MS, &in, &a, &m)
	             : rec_msg_get(r->payload, r->payload_len, NOW_MS, NOW_WALL_MS, &a, &m);
	if (rc != 0) {
		FUZZ_CHECK(m == NULL, "a refused message record left a message");
		return;
	}
	FUZZ_CHECK(a.n > 0 && a.n <= REC_MSG_TARGETS_MAX, "%u targets", a.n);
	FUZZ_CHECK(a.targets + (size_t)a.n * REC_MSG_TARGET_BYTES == r->payload + r->payload_len,
	           "the targets do not end the payload");
	/* The inbound id in front: within the payload, as the reader promises. */
	size_t skip = 0;
	if (with_in) {
		FUZZ_CHECK(in.pid > 0 && in.client_id_len > 0 && in.client_id == r->payload + 4,
		           "an inbound id the reader should refuse");
		skip = 4 + (size_t)in.client_id_len;
	}
	if (a.expired) {
		FUZZ_CHECK(m == NULL, "an expired message record made a message");
		return;
	}
	FUZZ_CHECK(m != NULL, "an accepted message record made no message");
	struct rec_msg_target *t = malloc(a.n * sizeof(*t));
	FUZZ_CHECK(t, "out of memory");
	for (uint16_t i = 0; i < a.n; i++) {
		rec_msg_target(&a, i, &t[i]);
		FUZZ_CHECK(t[i].qos >= 1 && t[i].qos <= 2 && t[i].id.gen != 0,
		           "a target the reader should refuse");
	}
	size_t n = with_in ? rec_msg_in_size(m, a.n, in.client_id_len) : rec_msg_size(m, a.n);
	FUZZ_CHECK(n == r->payload_len, "the message record's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	if (with_in)
		rec_msg_in_put(again, &in, m, a.stamp, a.run, t, a.n, NOW_MS, NOW_WALL_MS);
	else
		rec_msg_put(again, m, a.stamp, a.run, t, a.n, NOW_MS, NOW_WALL_MS);
	size_t x = skip + AT_MSG_EXPIRES;
	uint64_t at = be64(r->payload + x), at2 = be64(again + x);
	FUZZ_CHECK(at2 == at || (at - NOW_WALL_MS > (uint64_t)UINT32_MAX * 1000 && at2 < at),
	           "expiry %llu written again as %llu", (unsigned long long)at,
	           (unsigned long long)at2);
	FUZZ_CHECK(memcmp(again, r->payload, x) == 0 &&
	               memcmp(again + x + 8, r->payload + x + 8, n - x - 8) == 0,
	           "a decoded message record writes to other bytes");
	free(again);
	free(t);
	msg_unref(m);
}

static void msg_done(const struct record *r)
{
	struct rec_msg_done a;
	if (rec_msg_done_get(r->payload, r->payload_len, &a) != 0)
		return;
	size_t n = rec_msg_done_size(a.client_id_len);
	FUZZ_CHECK(n == r->payload_len, "a done record's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	rec_msg_done_put(again, a.stamp, a.client_id, a.client_id_len);
	FUZZ_CHECK(memcmp(again, r->payload, n) == 0,
	           "a decoded done record writes to other bytes");
	free(again);
}

/* A packet id's record (REL, COMP, SENT, IN_QOS2, IN_REL): a decoded one
 * writes again to the same bytes. */
static void packet_id(const struct record *r)
{
	struct rec_release a;
	bool with_msg = rec_release_with_msg(r->type);
	if (rec_release_get(r->payload, r->payload_len, with_msg, &a) != 0)
		return;
	FUZZ_CHECK(a.pid > 0 && a.client_id_len > 0 && a.stamp > 0, "a field the reader refuses");
	size_t n = rec_release_size(a.client_id_len, with_msg);
	FUZZ_CHECK(n == r->payload_len, "a packet id record's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	rec_release_put(again, &a, with_msg);
	FUZZ_CHECK(memcmp(again, r->payload, n) == 0,
	           "a decoded packet id record writes to other bytes");
	free(again);
}

/* A session record: a decoded one writes again to the same bytes, and
 * the session it carries goes through session_decode as recovery's does
 * (never a crash; its client id compared with the record's). */
static void sess(const struct record *r)
{
	struct rec_sess a;
	bool end = r->type == REC_SESS_END, placed = r->type == REC_SESS_PLACED;
	if (rec_sess_get(r->payload, r->payload_len, r->type, &a) != 0)
		return;
	size_t n = rec_sess_size(a.client_id_len, a.enc_len, placed);
	FUZZ_CHECK(n == r->payload_len, "the session record's size is %zu, the payload's %zu", n,
	           r->payload_len);
	uint8_t *again = malloc(n);
	FUZZ_CHECK(again, "out of memory");
	rec_sess_put(again, a.stamp, placed ? &a.place : NULL, a.client_id, a.client_id_len, a.enc,
	             a.enc_len);
	FUZZ_CHECK(memcmp(again, r->payload, n) == 0,
	           "a decoded session record writes to other bytes");
	free(again);
	if (end)
		return;
	struct session *s = session_decode(a.enc, a.enc_len, (struct sess_id){1, 1, 0}, NOW_MS);
	if (s)
		FUZZ_CHECK(s->client_id_len > 0, "a session without a client id");
	session_free(s);
}

/* Read records from the n bytes at data until one is not OK. */
static void tail(const uint8_t *data, size_t size)
{
	size_t off = 0;
	for (;;) {
		struct record r;
		size_t left = size - off;
		enum record_result rr = record_read(data + off, left, &r);
		if (rr == RECORD_TORN) {
			/* Only when the bytes are short of what the length asks. */
			if (left >= 4) {
				uint32_t len = be32(data + off);
				FUZZ_CHECK(len >= RECORD_FIXED && len <= RECORD_LEN_MAX &&
				               left < RECORD_HEAD + (size_t)len,
				           "TORN for a length of %u in %zu bytes", len, left);
			}
			break;
		}
		if (rr != RECORD_OK)
			break;
		FUZZ_CHECK(r.total <= left && r.total == record_size(r.payload_len),
		           "a record of %zu bytes in %zu", r.total, left);
		FUZZ_CHECK(r.payload == data + off + RECORD_HEAD + RECORD_FIXED,
		           "payload misplaced");
		/* Sealed again from its fields, it is the same bytes. */
		uint8_t *again = malloc(r.total);
		FUZZ_CHECK(again, "out of memory");
		memcpy(record_payload(again), r.payload, r.payload_len);
		record_seal(again, r.total, r.type, r.lsn, r.wall_ms);
		FUZZ_CHECK(memcmp(again, data + off, r.total) == 0,
		           "a record seals to other bytes");
		free(again);
		if (r.type == REC_RETAIN_SET)
			retain_set(&r);
		else if (r.type == REC_RETAIN_DEL)
			retain_del(&r);
		else if (r.type == REC_SESS_PUT || r.type == REC_SESS_END ||
		         r.type == REC_SESS_PLACED)
			sess(&r);
		else if (r.type == REC_MSG || r.type == REC_MSG_IN)
			msg_rec(&r);
		else if (r.type == REC_MSG_DONE)
			msg_done(&r);
		else if (r.type == REC_MSG_REL || r.type == REC_MSG_COMP ||
		         r.type == REC_MSG_SENT || r.type == REC_IN_QOS2 || r.type == REC_IN_REL)
			packet_id(&r);
		off += r.total;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	if (size >= 8 && memcmp(data, "STRLJNL1", 8) == 0) {
		header(data, size);
		off = size < JOURNAL_HEADER_BYTES ? size : JOURNAL_HEADER_BYTES;
	}
	tail(data + off, size - off);

	/* Again with every checksum made to hold, so that what the fuzzer
	 * changes in a payload reaches the payload decoders instead of
	 * stopping at the CRC. */
	size_t n = size - off;
	uint8_t *copy = malloc(n ? n : 1);
	FUZZ_CHECK(copy, "out of memory");
	if (n)
		memcpy(copy, data + off, n);
	for (size_t at = 0; n - at >= RECORD_HEAD + RECORD_FIXED;) {
		uint32_t len = be32(copy + at);
		if (len < RECORD_FIXED || len > RECORD_LEN_MAX || len > n - at - RECORD_HEAD)
			break;
		record_seal(copy + at, RECORD_HEAD + (size_t)len, copy[at + 8], be64(copy + at + 9),
		            be64(copy + at + 17));
		at += RECORD_HEAD + (size_t)len;
	}
	tail(copy, n);
	free(copy);
	return 0;
}
