/*
 * record_test.c — the journal's bytes (core/persist/crc32c.c, record.c,
 * scan.c): CRC-32C against published vectors, a bit-by-bit reference and
 * itself in hardware and software; file headers; record framing, where a
 * cut tail reads as torn, any flipped bit or zero-filled tail never reads
 * as a record, and an unknown type is still framing; the retained-store
 * payloads, field by field for each protocol level and QoS, with expiry
 * carried across clocks; every truncation refused; the same bytes as the
 * second implementation in tests/fuzz/make_record_corpus.py; and
 * journal_scan over real files, stopping where a crash or damage begins.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "persist/crc32c.h"
#include "persist/record.h"
#include "rng.h"
#include "route/msg.h"
#include "session/session.h"

#define NOW      1000000u         /* monotonic ms */
#define NOW_WALL 1700000000123ull /* wall-clock ms */

/* ---- CRC-32C ------------------------------------------------------------- */

/* Bit by bit from the polynomial: the definition, for comparison. */
static uint32_t crc_ref(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int i = 0; i < 8; i++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
	}
	return ~crc;
}

Test(crc32c, published_vectors)
{
	uint8_t zeros[32] = {0}, ones[32];
	memset(ones, 0xFF, sizeof(ones));
	/* RFC 3720 B.4 and the check value of the CRC catalogue. */
	cr_assert_eq(crc32c(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(crc32c_sw(0, "123456789", 9), 0xE3069283u);
	cr_assert_eq(crc32c(0, zeros, 32), 0x8A9136AAu);
	cr_assert_eq(crc32c_sw(0, zeros, 32), 0x8A9136AAu);
	cr_assert_eq(crc32c(0, ones, 32), 0x62A8AB43u);
	cr_assert_eq(crc32c_sw(0, ones, 32), 0x62A8AB43u);
	uint8_t inc[32];
	for (int i = 0; i < 32; i++)
		inc[i] = (uint8_t)i;
	cr_assert_eq(crc32c(0, inc, 32), 0x46DD794Eu);
	cr_assert_eq(crc32c(0, NULL, 0), 0, "nothing has the checksum 0");
	cr_assert_eq(crc32c(0x12345678u, NULL, 0), 0x12345678u, "and leaves a chain as it was");
}

Test(crc32c, chains)
{
	struct rng r;
	rng_seed(&r, 7);
	uint8_t buf[300];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&r);
	uint32_t whole = crc_ref(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut++) {
		cr_assert_eq(crc32c(crc32c(0, buf, cut), buf + cut, sizeof(buf) - cut), whole,
		             "cut at %zu", cut);
		cr_assert_eq(crc32c_sw(crc32c_sw(0, buf, cut), buf + cut, sizeof(buf) - cut), whole,
		             "software, cut at %zu", cut);
	}
}

/* Does this CPU have the instruction? (The test asks the CPU itself, so a
 * dispatch that never picks the fast path fails.) */
#if defined(__x86_64__)
static bool cpu_has_crc32(void)
{
	return __builtin_cpu_supports("sse4.2");
}
#else
static bool cpu_has_crc32(void)
{
	return false;
}
#endif

Test(crc32c, hardware_and_software_agree_at_every_length_and_alignment)
{
	cr_assert_eq(crc32c_uses_hw(), cpu_has_crc32(), "the instruction is used when there");
	struct rng r;
	rng_seed(&r, 11);
	static uint8_t buf[1024 + 8];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rng_next(&r);
	for (size_t align = 0; align < 8; align++) {
		for (size_t len = 0; len <= 1024; len++) {
			const uint8_t *p = buf + align;
			uint32_t seed = (uint32_t)rng_next(&r);
			uint32_t sw = crc32c_sw(seed, p, len);
			cr_assert_eq(crc32c(seed, p, len), sw, "length %zu, alignment %zu", len,
			             align);
			if (len % 61 == 0 || len < 24) /* the reference is slow */
				cr_assert_eq(crc_ref(seed, p, len), sw, "length %zu, alignment %zu",
				             len, align);
		}
	}
}

static void *crc_in_thread(void *arg)
{
	(void)arg;
	uintptr_t ok =
	    crc32c(0, "123456789", 9) == 0xE3069283u && crc32c_sw(0, "123456789", 9) == 0xE3069283u;
	return (void *)ok;
}

/* Each test is a fresh process: the tables are built here, by whichever
 * thread comes first. */
Test(crc32c, first_use_from_several_threads)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, crc_in_thread, NULL), 0);
	for (int i = 0; i < 4; i++) {
		void *ok;
		pthread_join(t[i], &ok);
		cr_assert(ok);
	}
}

/* ---- file header --------------------------------------------------------- */

static const struct journal_header some_header = {
    .version = JOURNAL_VERSION,
    .writer = 3,
    .kind = JOURNAL_KIND_SNAPSHOT,
    .segment = 0x0102030405060708ull,
    .created_wall_ms = NOW_WALL,
};

Test(header, round_trip)
{
	uint8_t b[JOURNAL_HEADER_BYTES];
	journal_header_put(b, &some_header);
	cr_assert_eq(memcmp(b, "STRLJNL1", 8), 0);
	struct journal_header h;
	memset(&h, 0xAA, sizeof(h));
	cr_assert_eq(journal_header_get(b, sizeof(b), &h), 0);
	cr_assert_eq(h.version, 1);
	cr_assert_eq(h.writer, 3);
	cr_assert_eq(h.kind, JOURNAL_KIND_SNAPSHOT);
	cr_assert_eq(h.segment, 0x0102030405060708ull);
	cr_assert_eq(h.created_wall_ms, NOW_WALL);
}

Test(header, short_flipped_or_foreign_is_refused)
{
	uint8_t b[JOURNAL_HEADER_BYTES + 1];
	journal_header_put(b, &some_header);
	struct journal_header h;
	for (size_t n = 0; n < JOURNAL_HEADER_BYTES; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any overread */
		memcpy(copy, b, n);
		cr_assert_eq(journal_header_get(copy, n, &h), -1, "%zu bytes", n);
		free(copy);
	}
	cr_assert_eq(journal_header_get(b, JOURNAL_HEADER_BYTES + 1, &h), 0,
	             "the bytes after it are not its business");
	for (size_t i = 0; i < JOURNAL_HEADER_BYTES; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(journal_header_get(b, JOURNAL_HEADER_BYTES, &h), -1,
			             "byte %zu bit %u", i, bit);
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* A version this build does not know, with a checksum that holds. */
	struct journal_header v2 = some_header;
	v2.version = 2;
	journal_header_put(b, &v2);
	cr_assert_eq(journal_header_get(b, JOURNAL_HEADER_BYTES, &h), -1);
	/* Another format's magic with a checksum that holds. */
	journal_header_put(b, &some_header);
	b[7] = '2';
	uint32_t c = crc32c(0, b, 36);
	b[36] = (uint8_t)(c >> 24), b[37] = (uint8_t)(c >> 16), b[38] = (uint8_t)(c >> 8),
	b[39] = (uint8_t)c;
	cr_assert_eq(journal_header_get(b, JOURNAL_HEADER_BYTES, &h), -1);
}

/* ---- record framing ------------------------------------------------------ */

/* A record of type with payload_len bytes of a pattern; the caller frees. */
static uint8_t *sealed(size_t payload_len, uint8_t type, uint64_t lsn, uint64_t wall_ms)
{
	size_t total = record_size(payload_len);
	uint8_t *rec = malloc(total);
	cr_assert_not_null(rec);
	uint8_t *p = record_payload(rec);
	cr_assert_eq(p, rec + 25);
	for (size_t i = 0; i < payload_len; i++)
		p[i] = (uint8_t)(i * 31 + lsn);
	record_seal(rec, total, type, lsn, wall_ms);
	return rec;
}

Test(record, round_trip_and_every_prefix_is_torn)
{
	static const size_t sizes[] = {0, 1, 1000, 70000};
	for (size_t k = 0; k < 4; k++) {
		size_t plen = sizes[k], total = record_size(plen);
		uint8_t *rec = sealed(plen, REC_RETAIN_SET, 1000 + k, NOW_WALL + k);
		/* len is everything after the crc field; the payload follows 25 bytes in. */
		uint32_t len = (uint32_t)rec[0] << 24 | (uint32_t)rec[1] << 16 |
		               (uint32_t)rec[2] << 8 | rec[3];
		cr_assert_eq(len, RECORD_FIXED + plen);
		cr_assert_eq(rec[8], REC_RETAIN_SET);
		struct record r;
		cr_assert_eq(record_read(rec, total, &r), RECORD_OK, "payload of %zu", plen);
		cr_assert_eq(r.type, REC_RETAIN_SET);
		cr_assert_eq(r.lsn, 1000 + k);
		cr_assert_eq(r.wall_ms, NOW_WALL + k);
		cr_assert_eq(r.payload, rec + 25);
		cr_assert_eq(r.payload_len, plen);
		cr_assert_eq(r.total, total);
		for (size_t n = 0; n < total; n++) {
			cr_assert_eq(record_read(rec, n, &r), RECORD_TORN, "%zu of %zu bytes", n,
			             total);
			if (n > 64 && total - n > 64)
				continue;
			/* Near either end, a copy of exactly n bytes: ASan sees any overread. */
			uint8_t *copy = malloc(n ? n : 1);
			memcpy(copy, rec, n);
			cr_assert_eq(record_read(copy, n, &r), RECORD_TORN, "%zu of %zu bytes", n,
			             total);
			free(copy);
		}
		free(rec);
	}
}

Test(record, the_next_record_starts_at_total)
{
	uint8_t *a = sealed(10, REC_RETAIN_DEL, 1, 5), *b = sealed(3, REC_RETAIN_SET, 2, 6);
	size_t na = record_size(10), nb = record_size(3);
	uint8_t both[128];
	memcpy(both, a, na);
	memcpy(both + na, b, nb);
	struct record r;
	cr_assert_eq(record_read(both, na + nb, &r), RECORD_OK);
	cr_assert_eq(r.total, na);
	cr_assert_eq(r.lsn, 1);
	cr_assert_eq(record_read(both + r.total, na + nb - r.total, &r), RECORD_OK);
	cr_assert_eq(r.lsn, 2);
	cr_assert_eq(r.type, REC_RETAIN_SET);
	free(a);
	free(b);
}

Test(record, a_flipped_bit_is_never_a_record)
{
	size_t total = record_size(12);
	uint8_t *rec = sealed(12, REC_RETAIN_SET, 9, 9);
	/* Followed by more bytes, as in a file: a longer length then finds some. */
	uint8_t buf[256];
	memset(buf, 0x5A, sizeof(buf));
	memcpy(buf, rec, total);
	unsigned torn = 0, corrupt = 0;
	for (size_t i = 0; i < total; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1u << bit);
			struct record r;
			enum record_result rr = record_read(buf, sizeof(buf), &r);
			cr_assert_neq(rr, RECORD_OK, "byte %zu bit %u", i, bit);
			rr = record_read(buf, total, &r);
			cr_assert_neq(rr, RECORD_OK, "byte %zu bit %u, alone", i, bit);
			torn += rr == RECORD_TORN;
			corrupt += rr == RECORD_CORRUPT;
			buf[i] ^= (uint8_t)(1u << bit);
		}
	}
	cr_assert_gt(torn, 0, "a longer length alone reads as torn");
	cr_assert_gt(corrupt, total * 8 / 2);
	free(rec);
}

static void put_len(uint8_t *p, uint32_t len)
{
	p[0] = (uint8_t)(len >> 24), p[1] = (uint8_t)(len >> 16), p[2] = (uint8_t)(len >> 8),
	p[3] = (uint8_t)len;
}

Test(record, lengths_out_of_bounds_are_corrupt)
{
	static uint8_t buf[64];
	struct record r;
	put_len(buf, RECORD_LEN_MAX + 1);
	cr_assert_eq(record_read(buf, sizeof(buf), &r), RECORD_CORRUPT);
	cr_assert_eq(record_read(buf, 4, &r), RECORD_CORRUPT, "known from the length alone");
	put_len(buf, UINT32_MAX);
	cr_assert_eq(record_read(buf, sizeof(buf), &r), RECORD_CORRUPT);
	put_len(buf, RECORD_LEN_MAX);
	cr_assert_eq(record_read(buf, sizeof(buf), &r), RECORD_TORN, "the largest is a length");
	put_len(buf, RECORD_FIXED - 1);
	cr_assert_eq(record_read(buf, sizeof(buf), &r), RECORD_CORRUPT, "too short for its fields");
	put_len(buf, RECORD_FIXED);
	cr_assert_eq(record_read(buf, sizeof(buf), &r), RECORD_CORRUPT, "no checksum holds");
}

Test(record, zeros_are_not_a_record)
{
	static uint8_t zeros[4096];
	struct record r;
	for (size_t n = 0; n < 4; n++)
		cr_assert_eq(record_read(zeros, n, &r), RECORD_TORN, "%zu zero bytes", n);
	for (size_t n = 4; n <= sizeof(zeros); n++)
		cr_assert_eq(record_read(zeros, n, &r), RECORD_CORRUPT, "%zu zero bytes", n);
}

Test(record, an_unknown_type_is_still_framing)
{
	uint8_t *a = sealed(5, REC_TYPES, 3, 4), *b = sealed(5, 255, 4, 4),
	        *c = sealed(0, REC_NONE, 5, 4);
	struct record r;
	cr_assert_eq(record_read(a, record_size(5), &r), RECORD_OK);
	cr_assert_eq(r.type, REC_TYPES);
	cr_assert_eq(record_read(b, record_size(5), &r), RECORD_OK);
	cr_assert_eq(r.type, 255);
	cr_assert_eq(record_read(c, record_size(0), &r), RECORD_OK);
	cr_assert_eq(r.type, REC_NONE);
	free(a);
	free(b);
	free(c);
}

Test(record, sealing_an_impossible_size_is_a_programmer_error, .signal = SIGABRT)
{
	uint8_t rec[64];
	record_seal(rec, RECORD_HEAD + RECORD_FIXED - 1, REC_RETAIN_SET, 1, 1);
}

/* ---- retained-store payloads --------------------------------------------- */

static struct msg *make_ex(const char *topic, const char *payload, uint8_t qos, uint32_t expiry_s,
                           uint8_t version, bool retain)
{
	uint8_t wire[512];
	struct mqtt_packet p = {.type = MQTT_PUBLISH};
	p.publish.topic = mqtt_view_str(topic);
	p.publish.payload = mqtt_view_str(payload);
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.packet_id = qos ? 7 : 0;
	if (version == MQTT_V5) {
		if (expiry_s) {
			p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
			p.publish.props.message_expiry_s = expiry_s;
		}
		p.publish.props.has |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
		p.publish.props.content_type = mqtt_view_str("text/plain");
	}
	size_t n = mqtt_encode(&p, version, wire, sizeof(wire));
	cr_assert_gt(n, 0);
	struct mqtt_packet d;
	cr_assert_eq(mqtt_decode_buf(wire, n, version, &d, NULL), MQTT_RC_SUCCESS);
	struct msg *m =
	    msg_new(&d.publish, version, d.publish.topic, (struct sess_id){3, 4, 1}, NOW);
	cr_assert_not_null(m);
	m->wall_ms = 1700000000000ull;
	m->origin_rank = 0x1122334455667788ull;
	return m;
}

/* A retained one (the retained store's). */
static struct msg *make(const char *topic, const char *payload, uint8_t qos, uint32_t expiry_s,
                        uint8_t version)
{
	return make_ex(topic, payload, qos, expiry_s, version, true);
}

/* The payload of a REC_RETAIN_SET for m, written at (NOW, NOW_WALL). */
static uint8_t *set_payload(const struct msg *m, uint64_t stamp, size_t *len)
{
	*len = rec_retain_set_size(m);
	uint8_t *p = malloc(*len);
	cr_assert_not_null(p);
	rec_retain_set_put(p, m, stamp, NOW, NOW_WALL);
	return p;
}

struct level_qos {
	uint8_t version;
	uint8_t qos;
};

ParameterizedTestParameters(retain, set_round_trip)
{
	static struct level_qos cases[] = {
	    {MQTT_V31, 0},  {MQTT_V31, 1}, {MQTT_V311, 0}, {MQTT_V311, 1},
	    {MQTT_V311, 2}, {MQTT_V5, 0},  {MQTT_V5, 1},   {MQTT_V5, 2},
	};
	return cr_make_param_array(struct level_qos, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct level_qos *c, retain, set_round_trip)
{
	uint32_t expiry_s = c->version == MQTT_V5 ? 30 : 0;
	struct msg *m = make("home/kitchen/temp", "21.5", c->qos, expiry_s, c->version);
	size_t len;
	uint8_t *p = set_payload(m, 42, &len);
	cr_assert_eq(len, 40 + m->pub.topic.len + (m->size_bytes - sizeof(*m) - m->pub.topic.len));
	/* Read 10 s later on both clocks (a restart): the expiry moves along. */
	struct rec_retain out;
	struct msg *d = NULL;
	cr_assert_eq(rec_retain_set_get(p, len, NOW + 10000, NOW_WALL + 10000, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_not(out.expired);
	cr_assert_eq(out.stamp, 42);
	cr_assert_eq(out.origin_rank, 0x1122334455667788ull);
	cr_assert_eq(out.wall_ms, 1700000000000ull);
	cr_assert_eq(out.topic_len, 17);
	cr_assert_eq(memcmp(out.topic, "home/kitchen/temp", 17), 0);
	cr_assert(out.topic >= p && out.topic + out.topic_len <= p + len,
	          "a view into the payload");
	cr_assert(mqtt_view_eq(d->pub.topic, m->pub.topic));
	cr_assert(mqtt_view_eq(d->pub.payload, m->pub.payload));
	cr_assert_eq(d->pub.qos, c->qos);
	cr_assert(d->pub.retain);
	cr_assert_eq(d->version, c->version);
	cr_assert_eq(d->pub.props.has, m->pub.props.has);
	cr_assert(mqtt_view_eq(d->pub.props.content_type, m->pub.props.content_type));
	cr_assert_eq(d->wall_ms, 1700000000000ull);
	cr_assert_eq(d->origin_rank, 0x1122334455667788ull);
	cr_assert_eq(d->size_bytes, m->size_bytes);
	cr_assert_eq(memcmp(d->data, m->data, m->size_bytes - sizeof(*m)), 0);
	cr_assert_eq(atomic_load(&d->refs), 1);
	if (expiry_s) /* both clocks moved on 10 s: 20 s left */
		cr_assert_eq(d->expires_at_ms, NOW + 10000 + 20000);
	else
		cr_assert_eq(d->expires_at_ms, 0, "never expiring stays so");
	/* Written again from what was read (at the later clocks): the same bytes. */
	uint8_t *again = malloc(len);
	rec_retain_set_put(again, d, 42, NOW + 10000, NOW_WALL + 10000);
	cr_assert_eq(memcmp(again, p, len), 0);
	free(again);
	msg_unref(d);
	msg_unref(m);
	free(p);
}

Test(retain, expiry_is_written_as_wall_clock_time)
{
	struct msg *m = make("t", "x", 1, 60, MQTT_V5);
	size_t len;
	uint8_t *p = set_payload(m, 1, &len);
	uint64_t at = 0;
	for (int i = 0; i < 8; i++)
		at = at << 8 | p[26 + i];
	cr_assert_eq(at, NOW_WALL + 60000);
	free(p);
	/* Already expired when written: now. */
	m->expires_at_ms = NOW - 1;
	p = set_payload(m, 1, &len);
	at = 0;
	for (int i = 0; i < 8; i++)
		at = at << 8 | p[26 + i];
	cr_assert_eq(at, NOW_WALL);
	/* Read back at that very time it has expired: no message. */
	struct rec_retain out;
	struct msg *d = (struct msg *)1;
	cr_assert_eq(rec_retain_set_get(p, len, NOW, NOW_WALL, &out, &d), 0);
	cr_assert_null(d);
	cr_assert(out.expired);
	cr_assert_eq(out.stamp, 1);
	cr_assert_eq(out.topic_len, 1);
	free(p);
	msg_unref(m);
}

Test(retain, expiry_passes_while_the_node_is_down)
{
	struct msg *m = make("t", "x", 1, 60, MQTT_V5);
	size_t len;
	uint8_t *p = set_payload(m, 1, &len);
	struct rec_retain out;
	struct msg *d = NULL;
	/* Restarted 59.999 s later (the monotonic clock began again): 1 ms left. */
	cr_assert_eq(rec_retain_set_get(p, len, 7, NOW_WALL + 59999, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->expires_at_ms, 8);
	msg_unref(d);
	/* 60 s later: expired. */
	d = (struct msg *)1;
	cr_assert_eq(rec_retain_set_get(p, len, 7, NOW_WALL + 60000, &out, &d), 0);
	cr_assert_null(d);
	cr_assert(out.expired);
	/* Written by a clock far ahead: no more than MQTT's longest expiry left. */
	memset(p + 26, 0xFF, 7);
	cr_assert_eq(rec_retain_set_get(p, len, 7, NOW_WALL, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->expires_at_ms, 7 + (uint64_t)UINT32_MAX * 1000);
	msg_unref(d);
	free(p);
	msg_unref(m);
}

Test(retain, an_empty_payload_is_taken_as_it_is)
{
	struct msg *m = make("a/b", "", 0, 0, MQTT_V311);
	size_t len;
	uint8_t *p = set_payload(m, 3, &len);
	struct rec_retain out;
	struct msg *d = NULL;
	cr_assert_eq(rec_retain_set_get(p, len, NOW, NOW_WALL, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->pub.payload.len, 0);
	msg_unref(d);
	free(p);
	msg_unref(m);
}

Test(retain, every_truncation_and_a_trailing_byte_are_refused)
{
	struct msg *m = make("sensors/t1", "21.5", 2, 60, MQTT_V5);
	size_t len;
	uint8_t *p = set_payload(m, 9, &len);
	struct rec_retain out;
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, p, n);
		struct msg *d = (struct msg *)1;
		cr_assert_eq(rec_retain_set_get(copy, n, NOW, NOW_WALL, &out, &d), -1,
		             "%zu of %zu bytes", n, len);
		cr_assert_null(d);
		free(copy);
	}
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, p, len);
	longer[len] = 0;
	struct msg *d = (struct msg *)1;
	cr_assert_eq(rec_retain_set_get(longer, len + 1, NOW, NOW_WALL, &out, &d), -1);
	cr_assert_null(d);
	free(longer);

	size_t dlen = rec_retain_del_size(10);
	uint8_t del[64];
	rec_retain_del_put(del, (const uint8_t *)"sensors/t1", 10, 1, 2, 3);
	for (size_t n = 0; n < dlen; n++) {
		uint8_t *copy = malloc(n ? n : 1);
		memcpy(copy, del, n);
		cr_assert_eq(rec_retain_del_get(copy, n, &out), -1, "%zu of %zu bytes", n, dlen);
		free(copy);
	}
	del[dlen] = 0;
	cr_assert_eq(rec_retain_del_get(del, dlen + 1, &out), -1);
	free(p);
	msg_unref(m);
}

/* A payload with one byte changed at off is refused. */
static void refused_with(const uint8_t *p, size_t len, size_t off, uint8_t value, const char *why)
{
	uint8_t *copy = malloc(len);
	memcpy(copy, p, len);
	copy[off] = value;
	struct rec_retain out;
	struct msg *d = (struct msg *)1;
	cr_assert_eq(rec_retain_set_get(copy, len, NOW, NOW_WALL, &out, &d), -1, "%s", why);
	cr_assert_null(d);
	free(copy);
}

Test(retain, a_message_the_broker_could_not_have_made_is_refused)
{
	struct msg *m = make("ab/c", "21.5", 1, 0, MQTT_V5);
	size_t len;
	uint8_t *p = set_payload(m, 9, &len);
	refused_with(p, len, 24, 6, "level 6");
	refused_with(p, len, 24, 2, "level 2");
	refused_with(p, len, 25, 4 | 3, "QoS 3");
	refused_with(p, len, 25, 4 | 1 | 8, "an unknown flag");
	refused_with(p, len, 36 + 1, '+', "a wildcard in the topic");
	refused_with(p, len, 36, 'x', "the topic disagrees with the body's");
	/* The body's own topic: a wildcard there too. */
	refused_with(p, len, 36 + 4 + 4 + 2 + 1, '#', "the body's topic is not the record's");
	free(p);
	msg_unref(m);
}

Test(retain, del_round_trip)
{
	size_t len = rec_retain_del_size(6);
	cr_assert_eq(len, 32);
	uint8_t p[32];
	rec_retain_del_put(p, (const uint8_t *)"$SYS/x", 6, 77, 0xFEDCBA9876543210ull, NOW_WALL);
	struct rec_retain out;
	memset(&out, 0xAA, sizeof(out));
	cr_assert_eq(rec_retain_del_get(p, len, &out), 0);
	cr_assert_eq(out.stamp, 77);
	cr_assert_eq(out.origin_rank, 0xFEDCBA9876543210ull);
	cr_assert_eq(out.wall_ms, NOW_WALL);
	cr_assert_eq(out.topic, p + 26);
	cr_assert_eq(out.topic_len, 6);
	cr_assert_not(out.expired);
	/* A filter is not a topic. */
	rec_retain_del_put(p, (const uint8_t *)"$SYS/#", 6, 77, 0, NOW_WALL);
	cr_assert_eq(rec_retain_del_get(p, len, &out), -1);
	rec_retain_del_put(p, (const uint8_t *)"", 0, 77, 0, NOW_WALL);
	cr_assert_eq(rec_retain_del_get(p, rec_retain_del_size(0), &out), -1, "an empty topic");
}

/* ---- the second implementation ------------------------------------------- */

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;
	cr_assert_leq(n, cap);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Printed by `/usr/bin/python3 tests/fuzz/make_record_corpus.py --fixtures`
 * (its FIXTURES: CRC-32C bit by bit, fields packed from the description). */
static const char py_header[] =
    "5354524c4a4e4c31000000010003000101020304050607080000018bcfe5687b00000000f8212f35";
static const char py_retain_set[] =
    "00000068ed97034f0101020304050607080000018bcfe5687b000000000000002a11223344556677880000018b"
    "cfe5680005050000018bcfe652db000a73656e736f72732f743100000025000a73656e736f72732f7431000712"
    "020000003c03000a746578742f706c61696e32312e35";
static const char py_retain_del[] =
    "0000003599bd807902000000000000004d0000018bcfe56be7000000000000002b00000000000000050000018b"
    "cfe56be6000a73656e736f72732f7431";
static const char py_sess_put[] =
    "00000020250775fa03000000000000004e0000018bcfe56be8000000000000002c00026331010203";
static const char py_sess_end[] =
    "0000001d8225aa0704000000000000004f0000018bcfe56be9000000000000002d00026331";
static const char py_sess_placed[] =
    "000000328384181b0700000000000000500000018bcfe56bea000000000000002e000000000000000300020102"
    "03040000000700026331010203";
static const char py_msg[] =
    "000000823f6dac680500000000000000510000018bcfe56beb000000000000002f000000000000000305050000"
    "018bcfe652db000a73656e736f72732f743100000025000a73656e736f72732f7431000712020000003c03000a"
    "746578742f706c61696e32312e35000200020102030400000007010000000009fffe00000005ffffffff01030f"
    "ffffff";
static const char py_msg_311[] =
    "0000004fe263eb2b0500000000000000520000018bcfe56bec0000000000000030000000000000000104020000"
    "0000000000000003612f62000000090003612f6200076f6e000100000000000100000001020200000000";
static const char py_msg_done[] =
    "0000001d57c9b27c0600000000000000530000018bcfe56bed000000000000002f00026331";
static const char py_msg_rel[] =
    "0000002747264c390800000000000000540000018bcfe56bee0000000000000031000000000000002fbeef0002"
    "6331";
static const char py_msg_comp[] =
    "0000001fe5a370850900000000000000550000018bcfe56bef0000000000000032beef00026331";
static const char py_msg_in[] =
    "00000055eec646590d00000000000000560000018bcfe56bf0beef0002633100000000000000300000000000"
    "000001040200000000000000000003612f62000000090003612f6200076f6e0001000000000001000000010202"
    "00000000";

Test(python, the_second_implementation_writes_the_same_bytes)
{
	uint8_t want[512];
	size_t n = unhex(py_header, want, sizeof(want));
	uint8_t h[JOURNAL_HEADER_BYTES];
	journal_header_put(h, &some_header);
	cr_assert_eq(n, JOURNAL_HEADER_BYTES);
	cr_assert_eq(memcmp(h, want, n), 0, "header");

	/* make() sets wall_ms 1700000000000 and that origin_rank; 60 s of
	 * expiry from NOW is NOW_WALL + 60000 on the wall clock. */
	struct msg *m = make("sensors/t1", "21.5", 1, 60, MQTT_V5);
	size_t plen = rec_retain_set_size(m), total = record_size(plen);
	uint8_t *rec = malloc(total);
	rec_retain_set_put(record_payload(rec), m, 42, NOW, NOW_WALL);
	record_seal(rec, total, REC_RETAIN_SET, 0x0102030405060708ull, NOW_WALL);
	n = unhex(py_retain_set, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "retain set");
	free(rec);
	msg_unref(m);

	total = record_size(rec_retain_del_size(10));
	rec = malloc(total);
	rec_retain_del_put(record_payload(rec), (const uint8_t *)"sensors/t1", 10, 43, 5,
	                   1700000000998ull);
	record_seal(rec, total, REC_RETAIN_DEL, 77, 1700000000999ull);
	n = unhex(py_retain_del, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "retain delete");
	free(rec);

	const uint8_t state[] = {1, 2, 3};
	total = record_size(rec_sess_size(2, sizeof(state), false));
	rec = malloc(total);
	rec_sess_put(record_payload(rec), 44, NULL, (const uint8_t *)"c1", 2, state, sizeof(state));
	record_seal(rec, total, REC_SESS_PUT, 78, 1700000001000ull);
	n = unhex(py_sess_put, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "session put");
	free(rec);

	total = record_size(rec_sess_size(2, 0, false));
	rec = malloc(total);
	rec_sess_put(record_payload(rec), 45, NULL, (const uint8_t *)"c1", 2, NULL, 0);
	record_seal(rec, total, REC_SESS_END, 79, 1700000001001ull);
	n = unhex(py_sess_end, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "session end");
	free(rec);

	/* The records of the sessions' messages. */
	const struct rec_place place = {.run = 3,
	                                .id = {.slot = 0x01020304, .gen = 7, .worker = 2}};
	total = record_size(rec_sess_size(2, sizeof(state), true));
	rec = malloc(total);
	rec_sess_put(record_payload(rec), 46, &place, (const uint8_t *)"c1", 2, state,
	             sizeof(state));
	record_seal(rec, total, REC_SESS_PLACED, 80, 1700000001002ull);
	n = unhex(py_sess_placed, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "session placed");
	free(rec);

	const struct rec_msg_target t[2] = {
	    {.id = {.slot = 0x01020304, .gen = 7, .worker = 2}, .sub_id = 9, .qos = 1, .flags = 0},
	    {.id = {.slot = 5, .gen = 0xFFFFFFFFu, .worker = 0xFFFE},
	     .sub_id = 0x0FFFFFFF,
	     .qos = 1,
	     .flags = DELIV_RETAIN | DELIV_SHARED},
	};
	m = make("sensors/t1", "21.5", 1, 60, MQTT_V5);
	total = record_size(rec_msg_size(m, 2));
	rec = malloc(total);
	rec_msg_put(record_payload(rec), m, 47, 3, t, 2, NOW, NOW_WALL);
	record_seal(rec, total, REC_MSG, 81, 1700000001003ull);
	n = unhex(py_msg, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "message");
	free(rec);
	msg_unref(m);

	const struct rec_msg_target t1 = {
	    .id = {.slot = 1, .gen = 1, .worker = 0}, .qos = 2, .flags = DELIV_SHARED};
	m = make_ex("a/b", "on", 2, 0, MQTT_V311, false);
	total = record_size(rec_msg_size(m, 1));
	rec = malloc(total);
	rec_msg_put(record_payload(rec), m, 48, 1, &t1, 1, NOW, NOW_WALL);
	record_seal(rec, total, REC_MSG, 82, 1700000001004ull);
	n = unhex(py_msg_311, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "message, 3.1.1");
	free(rec);
	msg_unref(m);

	total = record_size(rec_msg_done_size(2));
	rec = malloc(total);
	rec_msg_done_put(record_payload(rec), 47, (const uint8_t *)"c1", 2);
	record_seal(rec, total, REC_MSG_DONE, 83, 1700000001005ull);
	n = unhex(py_msg_done, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "message done");
	free(rec);

	struct rec_release r = {.stamp = 49,
	                        .msg_stamp = 47,
	                        .pid = 0xBEEF,
	                        .client_id = (const uint8_t *)"c1",
	                        .client_id_len = 2};
	total = record_size(rec_release_size(2, true));
	rec = malloc(total);
	rec_release_put(record_payload(rec), &r, true);
	record_seal(rec, total, REC_MSG_REL, 84, 1700000001006ull);
	n = unhex(py_msg_rel, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "release");
	free(rec);

	r.stamp = 50;
	r.msg_stamp = 12345; /* not written in a COMP */
	total = record_size(rec_release_size(2, false));
	rec = malloc(total);
	rec_release_put(record_payload(rec), &r, false);
	record_seal(rec, total, REC_MSG_COMP, 85, 1700000001007ull);
	n = unhex(py_msg_comp, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "complete");
	free(rec);

	m = make_ex("a/b", "on", 2, 0, MQTT_V311, false);
	struct rec_inbound in = {0xBEEF, (const uint8_t *)"c1", 2};
	total = record_size(rec_msg_in_size(m, 1, 2));
	rec = malloc(total);
	rec_msg_in_put(record_payload(rec), &in, m, 48, 1, &t1, 1, NOW, NOW_WALL);
	record_seal(rec, total, REC_MSG_IN, 86, 1700000001008ull);
	n = unhex(py_msg_in, want, sizeof(want));
	cr_assert_eq(n, total);
	cr_assert_eq(memcmp(rec, want, n), 0, "message with its inbound id");
	free(rec);
	msg_unref(m);
}

/* Counts of what the seeds hold, by kind (the_seeds_read_as_named). */
struct seed_counts {
	unsigned sets, dels, sessions, placed, msgs, msgs_expired, msgs_in, dones, rels, comps;
	unsigned bad, torn, corrupt;
};

/* Decode one record of a seed as recovery would: 0 taken, -1 refused. */
static int seed_record(const char *name, const struct record *r, struct seed_counts *c,
                       bool *expired)
{
	struct rec_retain out = {.expired = false};
	struct msg *m = NULL;
	int got = 0;
	*expired = false;
	switch (r->type) {
	case REC_RETAIN_SET:
		got = rec_retain_set_get(r->payload, r->payload_len, 5000000, 1700000000000ull,
		                         &out, &m);
		c->sets += got == 0;
		*expired = got == 0 && out.expired;
		break;
	case REC_RETAIN_DEL:
		got = rec_retain_del_get(r->payload, r->payload_len, &out);
		c->dels += got == 0;
		break;
	case REC_SESS_PUT:
	case REC_SESS_END:
	case REC_SESS_PLACED: {
		struct rec_sess rs;
		got = rec_sess_get(r->payload, r->payload_len, r->type, &rs);
		if (got == 0 && rs.enc) {
			/* The session inside decodes as recovery decodes it. */
			struct session *sess =
			    session_decode(rs.enc, rs.enc_len, (struct sess_id){1, 1, 0}, 5000000);
			got = sess && sess->client_id_len == rs.client_id_len &&
			              memcmp(sess->client_id, rs.client_id, rs.client_id_len) == 0
			          ? 0
			          : -1;
			session_free(sess);
		}
		if (got == 0 && r->type == REC_SESS_PLACED) {
			cr_assert_neq(rs.place.run, 0, "%s", name);
			cr_assert_neq(rs.place.id.gen, 0, "%s", name);
			c->placed++;
		} else if (got == 0) {
			cr_assert_eq(rs.place.run, 0, "%s: no place", name);
			c->sessions++;
		}
		break;
	}
	case REC_MSG:
	case REC_MSG_IN: {
		struct rec_msg rm;
		struct rec_inbound in;
		got = r->type == REC_MSG_IN ? rec_msg_in_get(r->payload, r->payload_len, 5000000,
		                                             1700000000000ull, &in, &rm, &m)
		                            : rec_msg_get(r->payload, r->payload_len, 5000000,
		                                          1700000000000ull, &rm, &m);
		if (got != 0) {
			cr_assert_null(m, "%s: refused, yet a message", name);
			break;
		}
		cr_assert_gt(rm.n, 0, "%s", name);
		cr_assert_eq(rm.targets + (size_t)rm.n * REC_MSG_TARGET_BYTES,
		             r->payload + r->payload_len, "%s: the targets end the payload", name);
		for (uint16_t i = 0; i < rm.n; i++) {
			struct rec_msg_target t;
			rec_msg_target(&rm, i, &t);
			cr_assert(t.qos >= 1 && t.qos <= 2 && t.flags <= 3 && t.id.gen != 0,
			          "%s: target %u", name, i);
		}
		if (strcmp(name, "msg_most_targets") == 0) {
			cr_assert_eq(rm.n, REC_MSG_TARGETS_MAX);
			for (uint16_t i = 0; i < rm.n; i++) { /* as the script made them */
				struct rec_msg_target t;
				rec_msg_target(&rm, i, &t);
				cr_assert(t.id.worker == i % 7 && t.id.slot == i &&
				              t.id.gen == 1u + i / 7 && t.qos == 1 + i % 2 &&
				              t.flags == i % 4 && t.sub_id == i,
				          "target %u", i);
			}
		}
		if (strcmp(name, "msg_5_qos1") == 0) {
			struct rec_msg_target t;
			cr_assert_eq(rm.n, 3);
			cr_assert_eq(rm.stamp, 7);
			cr_assert_eq(rm.run, 3);
			rec_msg_target(&rm, 2, &t);
			cr_assert(t.id.worker == 0xFFFE && t.id.slot == 0xFFFFFFFFu &&
			          t.id.gen == 0xFFFFFFFFu && t.qos == 1 && t.flags == 3 &&
			          t.sub_id == 0x0FFFFFFF);
			cr_assert_not_null(m);
			cr_assert_eq(m->expires_at_ms, 5000000 + 120000, "two minutes left");
			cr_assert_not(m->pub.retain);
		}
		if (r->type == REC_MSG_IN) {
			cr_assert(in.pid == 0x1234 && in.client_id_len == 5 &&
			              memcmp(in.client_id, "pub-1", 5) == 0,
			          "%s: the inbound id as written", name);
			cr_assert(rm.stamp == 16 && rm.run == 3 && rm.n == 1, "%s", name);
			c->msgs_in++;
		}
		if (rm.expired) {
			cr_assert_null(m, "%s: expired, yet a message", name);
			c->msgs_expired++;
			*expired = true;
		} else {
			cr_assert_not_null(m, "%s", name);
			c->msgs++;
		}
		break;
	}
	case REC_MSG_DONE: {
		struct rec_msg_done d;
		got = rec_msg_done_get(r->payload, r->payload_len, &d);
		c->dones += got == 0;
		break;
	}
	case REC_MSG_REL:
	case REC_MSG_COMP: {
		struct rec_release rr;
		bool rel = r->type == REC_MSG_REL;
		got = rec_release_get(r->payload, r->payload_len, rel, &rr);
		if (got == 0)
			cr_assert(rr.pid > 0 && rr.stamp > 0 && rr.client_id_len > 0, "%s", name);
		if (got == 0 && !rel)
			cr_assert_eq(rr.msg_stamp, 0, "%s: a COMP names no message", name);
		c->rels += got == 0 && rel;
		c->comps += got == 0 && !rel;
		break;
	}
	default:
		break; /* framing only: an older build skips it */
	}
	if (m)
		msg_unref(m);
	return got;
}

/* The fuzzer's seeds come from the same script: each reads as its name
 * says. Found through __FILE__, which meson gives relative to the build
 * root (session_codec_test.c does the same). */
Test(python, the_seeds_read_as_named)
{
	static const char self[] = "tests/unit/record_test.c";
	const char *file = __FILE__;
	size_t root_len = strlen(file) - (sizeof(self) - 1);
	cr_assert_str_eq(file + root_len, self);
	char dir[1024];
	snprintf(dir, sizeof(dir), "%.*stests/fuzz/corpus/record", (int)root_len, file);
	DIR *d = opendir(dir);
	cr_assert_not_null(d, "cannot open %s", dir);
	struct dirent *e;
	struct seed_counts c = {0};
	unsigned files = 0;
	static uint8_t buf[1 << 20];
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		if (name[0] == '.' || strcmp(name, "with_header") == 0)
			continue;
		files++;
		char path[1300];
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		cr_assert_lt(n, sizeof(buf), "%s: read whole", name);
		size_t off = 0;
		enum record_result rr;
		struct record r;
		unsigned ok = 0;
		bool bad = strncmp(name, "bad_", 4) == 0;
		while ((rr = record_read(buf + off, n - off, &r)) == RECORD_OK) {
			bool expired;
			int got = seed_record(name, &r, &c, &expired);
			if (bad) {
				cr_assert_eq(got, -1, "%s was accepted", name);
				c.bad++;
			} else {
				cr_assert_eq(got, 0, "%s: record %u refused", name, ok);
			}
			if (strcmp(name, "set_expired") == 0 || strcmp(name, "msg_expired") == 0)
				cr_assert(expired, "%s", name);
			ok++;
			off += r.total;
		}
		cr_assert_gt(ok, 0, "%s: not even one record", name);
		if (bad)
			cr_assert_eq(ok, 1, "%s: one refused record", name);
		if (strncmp(name, "torn", 4) == 0) {
			cr_assert_eq(rr, RECORD_TORN, "%s", name);
			c.torn++;
		} else if (strcmp(name, "corrupt_crc") == 0 || strcmp(name, "zeros") == 0) {
			cr_assert_eq(rr, RECORD_CORRUPT, "%s", name);
			c.corrupt++;
		} else {
			cr_assert_eq(off, n, "%s: stopped at %zu of %zu bytes", name, off, n);
		}
		if (strcmp(name, "msg_tail") == 0)
			cr_assert_eq(ok, 12, "msg_tail: every record read");
	}
	closedir(d);
	cr_assert_eq(files, 74, "every seed the script writes (but with_header) is here");
	cr_assert_geq(c.sets, 10);
	cr_assert_geq(c.dels, 4);
	cr_assert_geq(c.sessions, 6);
	/* The sessions' messages, seed by seed: sess_placed, msg_tail, torn_msg,
	 * torn_msg_in. */
	cr_assert_eq(c.placed, 4);
	/* msg_5_qos1, msg_311_qos2_retain, msg_31_empty_payload, msg_most_targets,
	 * msg_in_qos2 and three in msg_tail (torn_msg's and torn_msg_in's are
	 * torn). */
	cr_assert_eq(c.msgs, 8);
	cr_assert_eq(c.msgs_in, 1, "msg_in_qos2");
	cr_assert_eq(c.msgs_expired, 2, "msg_expired and msg_tail's");
	cr_assert_eq(c.dones, 2, "msg_done and msg_tail's");
	cr_assert_eq(c.rels, 4, "msg_rel, msg_rel_snapshot and msg_tail's two");
	cr_assert_eq(c.comps, 2, "msg_comp and msg_tail's");
	cr_assert_eq(c.bad, 6 + 35, "the retained and session ones, and 35 of messages");
	cr_assert_eq(c.torn, 4);
	cr_assert_eq(c.corrupt, 2);
}

/* ---- journal_scan -------------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/starling-record-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(tmpdir);
}

TestSuite(scan, .init = make_tmpdir, .fini = remove_tmpdir);

/* A journal image in memory: header, then records of the sizes given. */
struct image {
	uint8_t *b;
	size_t len;
	size_t cap;
	size_t off[4096]; /* where each record starts */
	size_t n;
};

static void image_init(struct image *im)
{
	im->len = JOURNAL_HEADER_BYTES;
	im->cap = 1 << 20;
	im->b = malloc(im->cap);
	im->n = 0;
	struct journal_header h = some_header;
	h.kind = JOURNAL_KIND_SEGMENT;
	journal_header_put(im->b, &h);
}

static void image_add(struct image *im, size_t payload_len, uint8_t type, uint64_t lsn)
{
	uint8_t *rec = sealed(payload_len, type, lsn, NOW_WALL + lsn);
	size_t total = record_size(payload_len);
	while (im->len + total > im->cap)
		im->b = realloc(im->b, im->cap *= 2);
	memcpy(im->b + im->len, rec, total);
	cr_assert_lt(im->n, 4096);
	im->off[im->n++] = im->len;
	im->len += total;
	free(rec);
}

static const char *write_file(const char *name, const uint8_t *b, size_t len)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, len, f), len);
	fclose(f);
	return path;
}

/* What the callback saw. */
struct seen {
	uint64_t lsn[4096];
	uint64_t off[4096];
	size_t n;
	long refuse_at;          /* refuse the record with this index (-1: none) */
	struct scan_result *res; /* to write a reason into */
	bool say_why;
};

static int see(void *ctx, const struct record *r, uint64_t offset)
{
	struct seen *s = ctx;
	if ((long)s->n == s->refuse_at) {
		if (s->say_why)
			snprintf(s->res->err, sizeof(s->res->err), "record %zu: not for us", s->n);
		return -1;
	}
	cr_assert_lt(s->n, 4096);
	s->lsn[s->n] = r->lsn;
	s->off[s->n] = offset;
	s->n++;
	return 0;
}

static struct seen *seen_new(void)
{
	struct seen *s = calloc(1, sizeof(*s));
	s->refuse_at = -1;
	return s;
}

Test(scan, a_clean_file_across_many_chunks_and_a_large_record)
{
	struct image im;
	image_init(&im);
	uint64_t lsn = 10;
	for (int i = 0; i < 2000; i++) /* ~250 KiB: several 64 KiB reads */
		image_add(&im, (size_t)(i * 7) % 200, (uint8_t)(1 + i % 3), lsn++);
	image_add(&im, 300000, REC_RETAIN_SET, lsn++); /* larger than a read */
	image_add(&im, 1, REC_RETAIN_DEL, lsn++);
	image_add(&im, 70000, REC_RETAIN_SET, lsn += 5);
	const char *path = write_file("clean", im.b, im.len);
	struct scan_result res;
	struct seen *s = seen_new();
	cr_assert_eq(journal_scan(path, see, s, &res), 0, "%s", res.err);
	cr_assert_eq(res.stop, RECORD_OK, "%s", res.err);
	cr_assert_eq(res.records, im.n);
	cr_assert_eq(res.good_end, im.len);
	cr_assert_eq(res.file_size, im.len);
	cr_assert_eq(res.last_lsn, lsn);
	cr_assert_eq(res.header.writer, 3);
	cr_assert_eq(res.header.kind, JOURNAL_KIND_SEGMENT);
	cr_assert_eq(res.header.segment, some_header.segment);
	cr_assert_str_empty(res.err);
	cr_assert_eq(s->n, im.n);
	for (size_t i = 0; i < im.n; i++)
		cr_assert_eq(s->off[i], im.off[i], "record %zu", i);
	cr_assert_eq(s->lsn[0], 10);
	free(s);
	free(im.b);
}

Test(scan, a_file_with_only_a_header)
{
	struct image im;
	image_init(&im);
	const char *path = write_file("empty", im.b, im.len);
	struct scan_result res;
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), 0, "%s", res.err);
	cr_assert_eq(res.stop, RECORD_OK);
	cr_assert_eq(res.records, 0);
	cr_assert_eq(res.good_end, JOURNAL_HEADER_BYTES);
	free(im.b);
}

Test(scan, a_torn_tail_at_every_offset_of_the_last_record)
{
	struct image im;
	image_init(&im);
	for (uint64_t lsn = 1; lsn <= 5; lsn++)
		image_add(&im, lsn == 5 ? 100 : 20 * lsn, REC_RETAIN_SET, lsn);
	size_t last = im.off[4];
	struct scan_result res;
	const char *path = write_file("torn", im.b, last);
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), 0);
	cr_assert_eq(res.stop, RECORD_OK, "cut between records: a clean end");
	cr_assert_eq(res.records, 4);
	for (size_t cut = last + 1; cut < im.len; cut++) {
		path = write_file("torn", im.b, cut);
		cr_assert_eq(journal_scan(path, NULL, NULL, &res), 0);
		cr_assert_eq(res.stop, RECORD_TORN, "cut at %zu: %s", cut, res.err);
		cr_assert_eq(res.records, 4, "cut at %zu", cut);
		cr_assert_eq(res.good_end, last, "cut at %zu", cut);
		cr_assert_eq(res.last_lsn, 4);
		cr_assert_eq(res.file_size, cut);
		cr_assert(strstr(res.err, path) && strstr(res.err, "torn"), "%s", res.err);
	}
	free(im.b);
}

Test(scan, a_flipped_bit_in_the_middle_stops_there)
{
	struct image im;
	image_init(&im);
	for (uint64_t lsn = 1; lsn <= 9; lsn++)
		image_add(&im, 40, REC_RETAIN_DEL, lsn);
	struct scan_result res;
	for (size_t at = im.off[4]; at < im.off[5]; at += 3) {
		im.b[at] ^= 0x08;
		const char *path = write_file("flipped", im.b, im.len);
		struct seen *s = seen_new();
		cr_assert_eq(journal_scan(path, see, s, &res), 0);
		cr_assert_neq(res.stop, RECORD_OK, "byte %zu", at);
		cr_assert_eq(res.records, 4, "byte %zu", at);
		cr_assert_eq(res.good_end, im.off[4]);
		cr_assert_eq(s->n, 4, "no record after the damage reached the caller");
		if (res.stop == RECORD_CORRUPT)
			cr_assert(strstr(res.err, "corrupt record at offset"), "%s", res.err);
		free(s);
		im.b[at] ^= 0x08;
	}
	free(im.b);
}

Test(scan, a_zero_filled_tail_is_not_records)
{
	struct image im;
	image_init(&im);
	for (uint64_t lsn = 1; lsn <= 3; lsn++)
		image_add(&im, 30, REC_RETAIN_SET, lsn);
	size_t end = im.len;
	cr_assert_leq(end + 8192, im.cap);
	memset(im.b + end, 0, 8192);
	const char *path = write_file("zeros", im.b, end + 8192);
	struct scan_result res;
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), 0);
	cr_assert_eq(res.stop, RECORD_CORRUPT);
	cr_assert_eq(res.records, 3);
	cr_assert_eq(res.good_end, end);
	cr_assert(strstr(res.err, "length 0 out of bounds"), "%s", res.err);
	free(im.b);
}

Test(scan, an_lsn_not_above_the_one_before_stops_there)
{
	static const uint64_t lsns[][4] = {{1, 2, 2, 3}, {5, 6, 4, 7}, {1, 3, 0, 4}};
	for (int k = 0; k < 3; k++) {
		struct image im;
		image_init(&im);
		for (int i = 0; i < 4; i++)
			image_add(&im, 8, REC_RETAIN_SET, lsns[k][i]);
		const char *path = write_file("lsn", im.b, im.len);
		struct scan_result res;
		cr_assert_eq(journal_scan(path, NULL, NULL, &res), 0);
		cr_assert_eq(res.stop, RECORD_CORRUPT, "case %d", k);
		cr_assert_eq(res.records, 2);
		cr_assert_eq(res.good_end, im.off[2]);
		cr_assert_eq(res.last_lsn, lsns[k][1]);
		cr_assert(strstr(res.err, "not above"), "%s", res.err);
		free(im.b);
	}
}

Test(scan, the_caller_may_refuse_a_record)
{
	struct image im;
	image_init(&im);
	for (uint64_t lsn = 1; lsn <= 5; lsn++)
		image_add(&im, 8, REC_RETAIN_SET, lsn);
	const char *path = write_file("refused", im.b, im.len);
	struct scan_result res;
	struct seen *s = seen_new();
	s->refuse_at = 3;
	s->res = &res;
	s->say_why = true;
	cr_assert_eq(journal_scan(path, see, s, &res), 0);
	cr_assert_eq(res.stop, RECORD_CORRUPT);
	cr_assert_eq(res.records, 3);
	cr_assert_eq(res.good_end, im.off[3]);
	cr_assert_str_eq(res.err, "record 3: not for us");
	/* Without a reason from the caller, the scan says which. */
	free(s);
	s = seen_new();
	s->refuse_at = 0;
	cr_assert_eq(journal_scan(path, see, s, &res), 0);
	cr_assert_eq(res.records, 0);
	cr_assert_eq(res.good_end, JOURNAL_HEADER_BYTES);
	cr_assert(strstr(res.err, path) && strstr(res.err, "refused"), "%s", res.err);
	free(s);
	free(im.b);
}

Test(scan, a_bad_header_or_no_file_is_an_error_naming_the_path)
{
	struct image im;
	image_init(&im);
	image_add(&im, 8, REC_RETAIN_SET, 1);
	struct scan_result res;
	const char *path = write_file("short", im.b, JOURNAL_HEADER_BYTES - 1);
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), -1);
	cr_assert(strstr(res.err, path) && strstr(res.err, "shorter than a journal header"), "%s",
	          res.err);
	path = write_file("nothing", im.b, 0);
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), -1);
	cr_assert(strstr(res.err, path), "%s", res.err);
	im.b[0] = 'X';
	path = write_file("magic", im.b, im.len);
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), -1);
	cr_assert(strstr(res.err, path) && strstr(res.err, "magic"), "%s", res.err);
	im.b[0] = 'S';
	im.b[20] ^= 1;
	path = write_file("crc", im.b, im.len);
	cr_assert_eq(journal_scan(path, NULL, NULL, &res), -1);
	cr_assert(strstr(res.err, path) && strstr(res.err, "bad journal header"), "%s", res.err);
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	cr_assert_eq(journal_scan(missing, NULL, NULL, &res), -1);
	cr_assert(strstr(res.err, missing) && strstr(res.err, "cannot open"), "%s", res.err);
	free(im.b);
}

/* ---- session payloads ----------------------------------------------------- */

Test(sess_record, put_and_end_round_trip)
{
	const uint8_t enc[] = {1, 2, 3, 4, 5};
	uint8_t p[64];
	size_t n = rec_sess_size(3, sizeof(enc), false);
	cr_assert_eq(n, 10 + 3 + sizeof(enc));
	rec_sess_put(p, 0x0102030405060708ull, NULL, (const uint8_t *)"abc", 3, enc, sizeof(enc));
	struct rec_sess r;
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PUT, &r), 0);
	cr_assert_eq(r.stamp, 0x0102030405060708ull);
	cr_assert_eq(r.client_id_len, 3);
	cr_assert_eq(memcmp(r.client_id, "abc", 3), 0);
	cr_assert_eq(r.enc_len, sizeof(enc));
	cr_assert_eq(memcmp(r.enc, enc, sizeof(enc)), 0);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_END, &r), -1, "an END has nothing after the id");

	size_t e = rec_sess_size(3, 0, false);
	rec_sess_put(p, 9, NULL, (const uint8_t *)"abc", 3, NULL, 0);
	cr_assert_eq(rec_sess_get(p, e, REC_SESS_END, &r), 0);
	cr_assert_eq(r.stamp, 9);
	cr_assert_null(r.enc);
	cr_assert_eq(rec_sess_get(p, e, REC_SESS_PUT, &r), -1, "a PUT needs a session");
}

Test(sess_record, every_truncation_and_an_empty_id_are_refused)
{
	const uint8_t enc[] = {7};
	uint8_t p[64];
	size_t n = rec_sess_size(2, 1, false);
	rec_sess_put(p, 1, NULL, (const uint8_t *)"id", 2, enc, 1);
	struct rec_sess r;
	for (size_t len = 0; len < n; len++)
		cr_assert_eq(rec_sess_get(p, len, REC_SESS_PUT, &r), -1, "%zu bytes", len);
	rec_sess_put(p, 1, NULL, (const uint8_t *)"", 0, enc, 1);
	cr_assert_eq(rec_sess_get(p, rec_sess_size(0, 1, false), REC_SESS_PUT, &r), -1);
}

Test(sess_record, placed_round_trip_and_layout)
{
	const uint8_t enc[] = {1, 2, 3, 4, 5};
	const struct rec_place place = {
	    .run = 0x1112131415161718ull,
	    .id = {.slot = 0xA1A2A3A4u, .gen = 0xB1B2B3B4u, .worker = 0xC1C2}};
	uint8_t p[64];
	size_t n = rec_sess_size(3, sizeof(enc), true);
	cr_assert_eq(n, 28 + 3 + sizeof(enc));
	rec_sess_put(p, 0x0102030405060708ull, &place, (const uint8_t *)"abc", 3, enc, sizeof(enc));
	/* u64 stamp | u64 run | u16 worker | u32 slot | u32 gen | u16 cid len | cid | session */
	static const uint8_t head[] = {1,    2,    3,    4,    5,    6,    7,    8,
	                               0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
	                               0xC1, 0xC2, 0xA1, 0xA2, 0xA3, 0xA4, 0xB1, 0xB2,
	                               0xB3, 0xB4, 0,    3,    'a',  'b',  'c'};
	cr_assert_eq(memcmp(p, head, sizeof(head)), 0);
	cr_assert_eq(memcmp(p + sizeof(head), enc, sizeof(enc)), 0);
	struct rec_sess r;
	memset(&r, 0xAA, sizeof(r));
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), 0);
	cr_assert_eq(r.stamp, 0x0102030405060708ull);
	cr_assert_eq(r.place.run, place.run);
	cr_assert(sess_id_eq(r.place.id, place.id));
	cr_assert_eq(r.client_id_len, 3);
	cr_assert_eq(r.client_id, p + 28, "a view into the payload");
	cr_assert_eq(r.enc, p + 31);
	cr_assert_eq(r.enc_len, sizeof(enc));
	/* The session may be of any length: one byte. */
	n = rec_sess_size(3, 1, true);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), 0);
	cr_assert_eq(r.enc_len, 1);
	/* A PUT and an END have no place. */
	rec_sess_put(p, 9, NULL, (const uint8_t *)"abc", 3, enc, sizeof(enc));
	cr_assert_eq(rec_sess_get(p, rec_sess_size(3, sizeof(enc), false), REC_SESS_PUT, &r), 0);
	cr_assert_eq(r.place.run, 0);
	cr_assert_eq(r.place.id.gen, 0);
}

/* A PLACED payload for "id" at place with a one-byte session. */
static size_t placed_payload(uint8_t *p, uint64_t run, uint16_t worker, uint32_t slot, uint32_t gen)
{
	const uint8_t enc[] = {7};
	const struct rec_place pl = {.run = run,
	                             .id = {.slot = slot, .gen = gen, .worker = worker}};
	rec_sess_put(p, 1, &pl, (const uint8_t *)"id", 2, enc, 1);
	return rec_sess_size(2, 1, true);
}

Test(sess_record, placed_every_truncation_and_impossible_place_are_refused)
{
	uint8_t p[64];
	struct rec_sess r;
	size_t n = placed_payload(p, 1, 0, 0, 1);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), 0, "run 1, slot 0, gen 1");
	for (size_t len = 0; len < n; len++) {
		uint8_t *copy = malloc(len ? len : 1); /* exactly len: ASan sees any overread */
		memcpy(copy, p, len);
		cr_assert_eq(rec_sess_get(copy, len, REC_SESS_PLACED, &r), -1, "%zu bytes", len);
		free(copy);
	}
	n = placed_payload(p, 0, 0, 0, 1);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), -1, "run 0: no run is 0");
	n = placed_payload(p, 1, 0, 0, 0);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), -1, "generation 0 is never used");
	n = placed_payload(p, 1, SESS_WORKER_NODE, 0, 1);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), -1, "a peer node is not a session");
	n = placed_payload(p, 1, SESS_WORKER_NODE - 1, UINT32_MAX, UINT32_MAX);
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), 0, "the largest place");
	cr_assert_eq(r.place.id.worker, SESS_WORKER_NODE - 1);
	/* An empty client id, and no session after the id. */
	const struct rec_place pl = {.run = 1, .id = {.slot = 2, .gen = 3, .worker = 1}};
	const uint8_t enc[] = {7};
	rec_sess_put(p, 1, &pl, (const uint8_t *)"", 0, enc, 1);
	cr_assert_eq(rec_sess_get(p, rec_sess_size(0, 1, true), REC_SESS_PLACED, &r), -1);
	rec_sess_put(p, 1, &pl, (const uint8_t *)"id", 2, NULL, 0);
	cr_assert_eq(rec_sess_get(p, rec_sess_size(2, 0, true), REC_SESS_PLACED, &r), -1,
	             "a PLACED needs a session");
	/* A client id length past the end. */
	n = placed_payload(p, 1, 0, 0, 1);
	p[27] = 4;
	cr_assert_eq(rec_sess_get(p, n, REC_SESS_PLACED, &r), -1, "id longer than what is left");
}

/* ---- message payloads ---------------------------------------------------- */

static const struct rec_msg_target some_targets[3] = {
    {.id = {.slot = 0, .gen = 1, .worker = 0}, .sub_id = 0, .qos = 1, .flags = 0},
    {.id = {.slot = 0x01020304, .gen = 0x05060708, .worker = 0x090A},
     .sub_id = 77,
     .qos = 2,
     .flags = DELIV_RETAIN},
    {.id = {.slot = UINT32_MAX, .gen = UINT32_MAX, .worker = SESS_WORKER_NODE - 1},
     .sub_id = 0x0FFFFFFF,
     .qos = 1,
     .flags = DELIV_RETAIN | DELIV_SHARED},
};

/* The payload of a REC_MSG for m with n targets, written at (NOW, NOW_WALL). */
static uint8_t *msg_payload(const struct msg *m, uint64_t stamp, uint64_t run,
                            const struct rec_msg_target *t, size_t n, size_t *len)
{
	*len = rec_msg_size(m, n);
	uint8_t *p = malloc(*len);
	cr_assert_not_null(p);
	rec_msg_put(p, m, stamp, run, t, n, NOW, NOW_WALL);
	return p;
}

static uint64_t be_at(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * A target is u16 worker, u32 slot, u32 generation, u8 QoS, u8 flags, u32
 * subscription id: 16 bytes (record.h and README say 15). Written and read
 * with a guard byte behind the payload: nothing is written past
 * rec_msg_size, nothing read past it, and every field reads back.
 */
Test(msg_record, a_target_is_its_fields_and_stays_within_the_payload)
{
	cr_expect_eq(REC_MSG_TARGET_BYTES, 2 + 4 + 4 + 1 + 1 + 4,
	             "REC_MSG_TARGET_BYTES is %d, a target's fields are 16 bytes",
	             REC_MSG_TARGET_BYTES);
	struct msg *m = make_ex("a/b", "x", 1, 0, MQTT_V311, false);
	const struct rec_msg_target t[2] = {
	    {.id = {.slot = 1, .gen = 1, .worker = 0}, .sub_id = 0x11223344, .qos = 1},
	    {.id = {.slot = 2, .gen = 2, .worker = 0x0102}, .sub_id = 0x55667788, .qos = 2},
	};
	size_t len = rec_msg_size(m, 2);
	uint8_t *p = malloc(len + 1);
	memset(p, 0xEE, len + 1);
	rec_msg_put(p, m, 1, 1, t, 2, NOW, NOW_WALL);
	cr_expect_eq(p[len], 0xEE, "rec_msg_put wrote 0x%02x one byte past rec_msg_size (%zu)",
	             p[len], len);
	p[len] = 0xAB; /* what follows a record in a file: the next one */
	struct rec_msg out;
	struct msg *d = NULL;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), 0);
	for (uint16_t i = 0; i < 2; i++) {
		struct rec_msg_target o;
		rec_msg_target(&out, i, &o);
		cr_expect(sess_id_eq(o.id, t[i].id), "target %u: place", i);
		cr_expect_eq(o.qos, t[i].qos, "target %u: QoS", i);
		cr_expect_eq(o.sub_id, t[i].sub_id,
		             "target %u: subscription id 0x%08x, wrote 0x%08x", i, o.sub_id,
		             t[i].sub_id);
	}
	msg_unref(d);
	free(p);
	msg_unref(m);
}

struct level_qos_retain {
	uint8_t version;
	uint8_t qos;
	bool retain;
};

ParameterizedTestParameters(msg_record, round_trip)
{
	static struct level_qos_retain cases[] = {
	    {MQTT_V31, 1, false}, {MQTT_V31, 2, true}, {MQTT_V311, 1, true}, {MQTT_V311, 2, false},
	    {MQTT_V5, 1, false},  {MQTT_V5, 2, false}, {MQTT_V5, 1, true},
	};
	return cr_make_param_array(struct level_qos_retain, cases,
	                           sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct level_qos_retain *c, msg_record, round_trip)
{
	uint32_t expiry_s = c->version == MQTT_V5 ? 30 : 0;
	struct msg *m =
	    make_ex("home/kitchen/temp", "21.5", c->qos, expiry_s, c->version, c->retain);
	size_t body_len = m->size_bytes - sizeof(*m) - m->pub.topic.len, len;
	uint8_t *p =
	    msg_payload(m, 0x0102030405060708ull, 0x1112131415161718ull, some_targets, 3, &len);
	/* 15 bytes a target says record.h; its fields, 2+4+4+1+1+4, are 16. */
	cr_assert_eq(len, 18 + 16 + 17 + body_len + 3 * REC_MSG_TARGET_BYTES);
	/* The layout: stamp, run, level, flags, expires at, topic, body, n, targets. */
	cr_assert_eq(be_at(p, 8), 0x0102030405060708ull);
	cr_assert_eq(be_at(p + 8, 8), 0x1112131415161718ull);
	cr_assert_eq(p[16], c->version);
	cr_assert_eq(p[17], c->qos | (c->retain ? 4 : 0));
	cr_assert_eq(be_at(p + 18, 8), expiry_s ? NOW_WALL + 30000 : 0);
	cr_assert_eq(be_at(p + 26, 2), 17);
	cr_assert_eq(memcmp(p + 28, "home/kitchen/temp", 17), 0);
	cr_assert_eq(be_at(p + 45, 4), body_len);
	const uint8_t *tp = p + 49 + body_len;
	cr_assert_eq(be_at(tp, 2), 3);
	tp += 2 + REC_MSG_TARGET_BYTES; /* the second target */
	/* u16 worker, u32 slot, u32 gen, u8 QoS, u8 flags, u32 subscription id */
	static const uint8_t t1[16] = {0x09, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 2, 1, 0, 0, 0, 77};
	cr_assert_eq(memcmp(tp, t1, 16), 0, "the second target's fields");

	/* Read 10 s later on both clocks (a restart): the expiry moves along. */
	struct rec_msg out;
	struct msg *d = NULL;
	memset(&out, 0xAA, sizeof(out));
	cr_assert_eq(rec_msg_get(p, len, NOW + 10000, NOW_WALL + 10000, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_not(out.expired);
	cr_assert_eq(out.stamp, 0x0102030405060708ull);
	cr_assert_eq(out.run, 0x1112131415161718ull);
	cr_assert_eq(out.n, 3);
	cr_assert_eq(out.targets, p + len - 3 * REC_MSG_TARGET_BYTES, "a view into the payload");
	for (uint16_t i = 0; i < 3; i++) {
		struct rec_msg_target t;
		memset(&t, 0xAA, sizeof(t));
		rec_msg_target(&out, i, &t);
		cr_assert(sess_id_eq(t.id, some_targets[i].id), "target %u", i);
		cr_assert_eq(t.qos, some_targets[i].qos, "target %u", i);
		cr_assert_eq(t.flags, some_targets[i].flags, "target %u", i);
		cr_assert_eq(t.sub_id, some_targets[i].sub_id, "target %u", i);
	}
	cr_assert(mqtt_view_eq(d->pub.topic, m->pub.topic));
	cr_assert(mqtt_view_eq(d->pub.payload, m->pub.payload));
	cr_assert_eq(d->pub.qos, c->qos);
	cr_assert_eq(d->pub.retain, c->retain);
	cr_assert_eq(d->version, c->version);
	cr_assert_eq(d->size_bytes, m->size_bytes);
	cr_assert_eq(memcmp(d->data, m->data, m->size_bytes - sizeof(*m)), 0);
	cr_assert_eq(atomic_load(&d->refs), 1);
	if (expiry_s)
		cr_assert_eq(d->expires_at_ms, NOW + 10000 + 20000);
	else
		cr_assert_eq(d->expires_at_ms, 0);
	/* Written again from what was read (at the later clocks): the same bytes. */
	struct rec_msg_target t[3];
	for (uint16_t i = 0; i < 3; i++)
		rec_msg_target(&out, i, &t[i]);
	uint8_t *again = malloc(len);
	cr_assert_eq(rec_msg_size(d, 3), len);
	rec_msg_put(again, d, out.stamp, out.run, t, 3, NOW + 10000, NOW_WALL + 10000);
	cr_assert_eq(memcmp(again, p, len), 0);
	free(again);
	msg_unref(d);
	msg_unref(m);
	free(p);
}

Test(msg_record, an_expired_message_reads_without_a_message)
{
	struct msg *m = make_ex("t/x", "v", 1, 60, MQTT_V5, false);
	size_t len;
	uint8_t *p = msg_payload(m, 5, 2, some_targets, 2, &len);
	struct rec_msg out;
	struct msg *d = NULL;
	/* 59.999 s later after a restart: 1 ms left. */
	cr_assert_eq(rec_msg_get(p, len, 7, NOW_WALL + 59999, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->expires_at_ms, 8);
	msg_unref(d);
	/* 60 s later: expired, yet its stamp, run and targets are read. */
	d = (struct msg *)1;
	cr_assert_eq(rec_msg_get(p, len, 7, NOW_WALL + 60000, &out, &d), 0);
	cr_assert_null(d);
	cr_assert(out.expired);
	cr_assert_eq(out.stamp, 5);
	cr_assert_eq(out.run, 2);
	cr_assert_eq(out.n, 2);
	struct rec_msg_target t;
	rec_msg_target(&out, 1, &t);
	cr_assert(sess_id_eq(t.id, some_targets[1].id));
	/* Expired when written: now, and expired when read at that time. */
	m->expires_at_ms = NOW - 1;
	free(p);
	p = msg_payload(m, 5, 2, some_targets, 2, &len);
	cr_assert_eq(be_at(p + 18, 8), NOW_WALL);
	d = (struct msg *)1;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), 0);
	cr_assert_null(d);
	cr_assert(out.expired);
	/* Expired does not excuse a bad target: refused all the same. */
	p[len - REC_MSG_TARGET_BYTES + 10] = 0; /* the last target's QoS */
	d = (struct msg *)1;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1);
	cr_assert_null(d);
	/* A wall clock far ahead when written: no more than MQTT's longest expiry left. */
	free(p);
	m->expires_at_ms = NOW + 1000;
	p = msg_payload(m, 5, 2, some_targets, 2, &len);
	memset(p + 18, 0xFF, 7);
	cr_assert_eq(rec_msg_get(p, len, 7, NOW_WALL, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(d->expires_at_ms, 7 + (uint64_t)UINT32_MAX * 1000);
	msg_unref(d);
	free(p);
	msg_unref(m);
}

Test(msg_record, every_truncation_and_a_trailing_byte_are_refused)
{
	struct msg *m = make_ex("sensors/t1", "21.5", 2, 60, MQTT_V5, false);
	size_t len;
	uint8_t *p = msg_payload(m, 9, 1, some_targets, 3, &len);
	struct rec_msg out;
	for (size_t n = 0; n < len; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exactly n: ASan sees any overread */
		memcpy(copy, p, n);
		struct msg *d = (struct msg *)1;
		cr_assert_eq(rec_msg_get(copy, n, NOW, NOW_WALL, &out, &d), -1, "%zu of %zu bytes",
		             n, len);
		cr_assert_null(d, "%zu bytes", n);
		free(copy);
	}
	const size_t tb = REC_MSG_TARGET_BYTES;
	uint8_t *longer = malloc(len + tb);
	memcpy(longer, p, len);
	memset(longer + len, 0, tb);
	for (size_t extra = 1; extra <= tb; extra++) {
		struct msg *d = (struct msg *)1;
		if (extra == tb) /* a whole target more than the count says */
			memcpy(longer + len, p + len - tb, tb);
		cr_assert_eq(rec_msg_get(longer, len + extra, NOW, NOW_WALL, &out, &d), -1,
		             "%zu bytes after it", extra);
		cr_assert_null(d);
	}
	free(longer);
	/* The count: one more or one fewer than the bytes hold. */
	size_t at_n = len - 3 * REC_MSG_TARGET_BYTES - 2;
	p[at_n + 1] = 4;
	struct msg *d = (struct msg *)1;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "a count of 4");
	cr_assert_null(d);
	p[at_n + 1] = 2;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "a count of 2");
	p[at_n] = 1, p[at_n + 1] = 3;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "a count of 259");
	p[at_n] = 0;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), 0, "the count of 3 again");
	msg_unref(d);
	free(p);
	msg_unref(m);
}

Test(msg_record, no_targets_or_too_many_are_refused)
{
	struct msg *m = make_ex("a/b", "x", 1, 0, MQTT_V311, false);
	struct rec_msg out;
	struct msg *d = (struct msg *)1;
	size_t len;
	uint8_t *p = msg_payload(m, 1, 1, NULL, 0, &len);
	cr_assert_eq(len, rec_msg_size(m, 1) - REC_MSG_TARGET_BYTES);
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "n = 0: names nobody");
	cr_assert_null(d);
	free(p);
	/* The most a record holds, and one more (with its bytes all there). */
	struct rec_msg_target *t = calloc(REC_MSG_TARGETS_MAX + 1, sizeof(*t));
	for (uint32_t i = 0; i <= REC_MSG_TARGETS_MAX; i++)
		t[i] = (struct rec_msg_target){
		    .id = {.slot = i, .gen = 1, .worker = (uint16_t)(i % 3)},
		    .qos = 1,
		    .sub_id = i};
	p = msg_payload(m, 1, 1, t, REC_MSG_TARGETS_MAX, &len);
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), 0);
	cr_assert_not_null(d);
	cr_assert_eq(out.n, REC_MSG_TARGETS_MAX);
	struct rec_msg_target last;
	rec_msg_target(&out, REC_MSG_TARGETS_MAX - 1, &last);
	cr_assert_eq(last.id.slot, REC_MSG_TARGETS_MAX - 1);
	cr_assert_eq(last.sub_id, REC_MSG_TARGETS_MAX - 1);
	msg_unref(d);
	free(p);
	/* rec_msg_put refuses to write more; the bytes made by hand. */
	len = rec_msg_size(m, REC_MSG_TARGETS_MAX + 1);
	p = malloc(len);
	rec_msg_put(p, m, 1, 1, t, REC_MSG_TARGETS_MAX, NOW, NOW_WALL);
	const size_t tb = REC_MSG_TARGET_BYTES;
	size_t at_n = len - (size_t)(REC_MSG_TARGETS_MAX + 1) * tb - 2;
	p[at_n] = (uint8_t)((REC_MSG_TARGETS_MAX + 1) >> 8);
	p[at_n + 1] = (uint8_t)(REC_MSG_TARGETS_MAX + 1);
	memcpy(p + len - tb, p + len - 2 * tb, tb);
	d = (struct msg *)1;
	cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "4097 targets");
	cr_assert_null(d);
	free(p);
	free(t);
	msg_unref(m);
}

Test(msg_record, writing_too_many_targets_is_a_programmer_error, .signal = SIGABRT)
{
	struct msg *m = make_ex("a/b", "x", 1, 0, MQTT_V311, false);
	static uint8_t p[(REC_MSG_TARGETS_MAX + 2) * REC_MSG_TARGET_BYTES + 256];
	static struct rec_msg_target t[REC_MSG_TARGETS_MAX + 1];
	rec_msg_put(p, m, 1, 1, t, REC_MSG_TARGETS_MAX + 1, NOW, NOW_WALL);
}

/* The payload of a one-target REC_MSG with the target's byte k set to v
 * (k < 12: worker, slot, generation, QoS, flags) and the message's byte j (j < 18 + 16) set to w
 * (j: 0 leaves it): 0 or -1 as rec_msg_get says, and no message when refused. */
static int msg_with(uint8_t version, size_t k, uint8_t v, size_t j, uint8_t w)
{
	struct msg *m = make_ex("a/b", "x", 1, 60, version, false);
	const struct rec_msg_target t = {.id = {.slot = 9, .gen = 9, .worker = 9}, .qos = 1};
	size_t len;
	uint8_t *p = msg_payload(m, 3, 3, &t, 1, &len);
	p[len - REC_MSG_TARGET_BYTES + k] = v;
	if (j)
		p[j] = w;
	struct rec_msg out;
	struct msg *d = (struct msg *)1;
	int rc = rec_msg_get(p, len, NOW, NOW_WALL, &out, &d);
	if (rc != 0)
		cr_assert_null(d);
	else if (d)
		msg_unref(d);
	free(p);
	msg_unref(m);
	return rc;
}

Test(msg_record, a_target_or_message_no_writer_makes_is_refused)
{
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 0, 0), 0, "the control");
	/* A target's QoS: 1 or 2 (a QoS 0 delivery is never journaled). */
	cr_assert_eq(msg_with(MQTT_V5, 10, 0, 0, 0), -1, "target QoS 0");
	cr_assert_eq(msg_with(MQTT_V5, 10, 2, 0, 0), 0, "target QoS 2");
	cr_assert_eq(msg_with(MQTT_V5, 10, 3, 0, 0), -1, "target QoS 3");
	cr_assert_eq(msg_with(MQTT_V5, 10, 0x81, 0, 0), -1, "target QoS with a high bit");
	/* Its flags: retain 1, shared 2, nothing else. */
	for (unsigned f = 0; f < 256; f++)
		cr_assert_eq(msg_with(MQTT_V311, 11, (uint8_t)f, 0, 0), f <= 3 ? 0 : -1, "flags %u",
		             f);
	/* Its place: generation 0 is never used; a peer node is no session. */
	cr_assert_eq(msg_with(MQTT_V5, 9, 0, 0, 0), -1, "generation 0");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0xFF, 0, 0), 0, "worker 0xFF09");
	{
		struct msg *m = make_ex("a/b", "x", 1, 0, MQTT_V5, false);
		const struct rec_msg_target t = {
		    .id = {.slot = 1, .gen = 1, .worker = SESS_WORKER_NODE}, .qos = 1};
		size_t len;
		uint8_t *p = msg_payload(m, 3, 3, &t, 1, &len);
		struct rec_msg out;
		struct msg *d = (struct msg *)1;
		cr_assert_eq(rec_msg_get(p, len, NOW, NOW_WALL, &out, &d), -1, "worker 0xFFFF");
		cr_assert_null(d);
		free(p);
		msg_unref(m);
	}
	/* Slot and subscription id: any value. */
	cr_assert_eq(msg_with(MQTT_V5, 2, 0xFF, 0, 0), 0, "slot");
	cr_assert_eq(msg_with(MQTT_V5, 12, 0xFF, 0, 0), 0, "subscription id");
	/* The message: stamp 0 and run 0 are no one's; level, QoS, flags. */
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 7, 0), -1, "stamp 0");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 15, 0), -1, "run 0");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 16, 6), -1, "level 6");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 17, 3), -1, "QoS 3");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 17, 1 | 8), -1, "an unknown flag");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 17, 1 | 0x80), -1, "the high flag");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 17, 1 | 4), 0, "retain");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 28, '+'), -1, "a wildcard in the topic");
	cr_assert_eq(msg_with(MQTT_V5, 0, 0, 28, 'x'), -1, "the body's topic is another");
}

/* REC_MSG_IN: the inbound id in front of a REC_MSG payload, read back
 * with the message; every truncation, a trailing byte, a packet id or a
 * client id length of 0 refused. */
Test(msg_record, inbound_round_trip_and_refusals)
{
	struct msg *m = make_ex("a/b", "on", 2, 0, MQTT_V311, false);
	const struct rec_msg_target t = {.id = {.slot = 4, .gen = 2, .worker = 1}, .qos = 2};
	struct rec_inbound in = {0x1234, (const uint8_t *)"pub", 3};
	size_t n = rec_msg_in_size(m, 1, 3);
	cr_assert_eq(n, 4 + 3 + rec_msg_size(m, 1));
	uint8_t *p = malloc(n + 1);
	rec_msg_in_put(p, &in, m, 77, 5, &t, 1, NOW, NOW_WALL);
	static const uint8_t head[] = {0x12, 0x34, 0, 3, 'p', 'u', 'b'};
	cr_assert_eq(memcmp(p, head, sizeof(head)), 0);
	uint8_t *plain = malloc(rec_msg_size(m, 1));
	rec_msg_put(plain, m, 77, 5, &t, 1, NOW, NOW_WALL);
	cr_assert_eq(memcmp(p + 7, plain, rec_msg_size(m, 1)), 0, "then a REC_MSG payload");
	free(plain);

	struct rec_inbound o;
	struct rec_msg rm;
	struct msg *got;
	cr_assert_eq(rec_msg_in_get(p, n, NOW, NOW_WALL, &o, &rm, &got), 0);
	cr_assert(o.pid == 0x1234 && o.client_id == p + 4 && o.client_id_len == 3);
	cr_assert(rm.stamp == 77 && rm.run == 5 && rm.n == 1);
	cr_assert_not_null(got);
	cr_assert(mqtt_view_eq(got->pub.topic, m->pub.topic) &&
	          mqtt_view_eq(got->pub.payload, m->pub.payload) && got->pub.qos == 2);
	msg_unref(got);

	for (size_t len = 0; len < n; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, p, len);
		got = (struct msg *)1;
		cr_assert_eq(rec_msg_in_get(copy, len, NOW, NOW_WALL, &o, &rm, &got), -1,
		             "%zu bytes", len);
		cr_assert_null(got, "%zu bytes: refused, yet a message", len);
		free(copy);
	}
	p[n] = 0;
	cr_assert_eq(rec_msg_in_get(p, n + 1, NOW, NOW_WALL, &o, &rm, &got), -1, "a trailing byte");
	p[0] = p[1] = 0; /* packet id 0: no writer makes it (CHECK) */
	cr_assert_eq(rec_msg_in_get(p, n, NOW, NOW_WALL, &o, &rm, &got), -1, "packet id 0");
	cr_assert_null(got);
	rec_msg_in_put(p, &in, m, 77, 5, &t, 1, NOW, NOW_WALL);
	p[2] = p[3] = 0; /* client id length 0 */
	cr_assert_eq(rec_msg_in_get(p, n, NOW, NOW_WALL, &o, &rm, &got), -1, "an empty client id");
	p[3] = 200; /* a client id past the end */
	cr_assert_eq(rec_msg_in_get(p, n, NOW, NOW_WALL, &o, &rm, &got), -1, "an id past the end");
	free(p);
	msg_unref(m);
}

/* ---- done, release and complete ------------------------------------------ */

Test(msg_record, done_round_trip_and_refusals)
{
	uint8_t p[64];
	size_t n = rec_msg_done_size(5);
	cr_assert_eq(n, 10 + 5);
	rec_msg_done_put(p, 0x0102030405060708ull, (const uint8_t *)"dev-1", 5);
	static const uint8_t want[] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 5, 'd', 'e', 'v', '-', '1'};
	cr_assert_eq(memcmp(p, want, sizeof(want)), 0);
	struct rec_msg_done d;
	memset(&d, 0xAA, sizeof(d));
	cr_assert_eq(rec_msg_done_get(p, n, &d), 0);
	cr_assert_eq(d.stamp, 0x0102030405060708ull);
	cr_assert_eq(d.client_id, p + 10);
	cr_assert_eq(d.client_id_len, 5);
	for (size_t len = 0; len < n; len++) {
		uint8_t *copy = malloc(len ? len : 1);
		memcpy(copy, p, len);
		cr_assert_eq(rec_msg_done_get(copy, len, &d), -1, "%zu bytes", len);
		free(copy);
	}
	p[n] = 0;
	cr_assert_eq(rec_msg_done_get(p, n + 1, &d), -1, "a trailing byte");
	rec_msg_done_put(p, 1, (const uint8_t *)"x", 1);
	p[9] = 0; /* client id length 0: no writer makes it (CHECK) */
	cr_assert_eq(rec_msg_done_get(p, rec_msg_done_size(0), &d), -1, "an empty client id");
	rec_msg_done_put(p, 0, (const uint8_t *)"x", 1);
	cr_assert_eq(rec_msg_done_get(p, rec_msg_done_size(1), &d), -1, "stamp 0 is no message's");
}

Test(msg_record, release_and_complete_round_trip)
{
	uint8_t p[64];
	struct rec_release r = {.stamp = 0x0102030405060708ull,
	                        .msg_stamp = 0x1112131415161718ull,
	                        .pid = 0xBEEF,
	                        .client_id = (const uint8_t *)"abc",
	                        .client_id_len = 3};
	size_t n = rec_release_size(3, true);
	cr_assert_eq(n, 20 + 3);
	rec_release_put(p, &r, true);
	static const uint8_t rel[] = {1,    2,    3,    4,    5,    6,    7,    8,
	                              0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
	                              0xBE, 0xEF, 0,    3,    'a',  'b',  'c'};
	cr_assert_eq(memcmp(p, rel, sizeof(rel)), 0);
	struct rec_release o;
	memset(&o, 0xAA, sizeof(o));
	cr_assert_eq(rec_release_get(p, n, true, &o), 0);
	cr_assert_eq(o.stamp, r.stamp);
	cr_assert_eq(o.msg_stamp, r.msg_stamp);
	cr_assert_eq(o.pid, 0xBEEF);
	cr_assert_eq(o.client_id, p + 20);
	cr_assert_eq(o.client_id_len, 3);
	/* A snapshot's names no message: msg stamp 0 is taken. */
	r.msg_stamp = 0;
	rec_release_put(p, &r, true);
	cr_assert_eq(rec_release_get(p, n, true, &o), 0);
	cr_assert_eq(o.msg_stamp, 0);

	n = rec_release_size(3, false);
	cr_assert_eq(n, 12 + 3);
	r.msg_stamp = 99; /* not written */
	rec_release_put(p, &r, false);
	static const uint8_t comp[] = {1, 2, 3, 4, 5, 6, 7, 8, 0xBE, 0xEF, 0, 3, 'a', 'b', 'c'};
	cr_assert_eq(memcmp(p, comp, sizeof(comp)), 0);
	memset(&o, 0xAA, sizeof(o));
	cr_assert_eq(rec_release_get(p, n, false, &o), 0);
	cr_assert_eq(o.stamp, r.stamp);
	cr_assert_eq(o.msg_stamp, 0, "a COMP names no message");
	cr_assert_eq(o.pid, 0xBEEF);
	cr_assert_eq(o.client_id, p + 12);
	cr_assert_eq(o.client_id_len, 3);
}

/* A REL (rel) or COMP payload of stamp, pid and client id, read back. */
static int release_with(bool rel, uint64_t stamp, uint16_t pid, const char *cid, size_t extra)
{
	uint8_t p[64] = {0};
	size_t cl = strlen(cid), fixed = rel ? 20 : 12;
	/* By hand: rec_release_put CHECKs what it is given. */
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(stamp >> (56 - 8 * i));
	if (rel)
		p[15] = 1; /* msg stamp 1 */
	p[fixed - 4] = (uint8_t)(pid >> 8), p[fixed - 3] = (uint8_t)pid;
	p[fixed - 2] = 0, p[fixed - 1] = (uint8_t)cl;
	memcpy(p + fixed, cid, cl);
	struct rec_release o;
	return rec_release_get(p, fixed + cl + extra, rel, &o);
}

Test(msg_record, release_and_complete_refusals)
{
	for (int k = 0; k < 2; k++) {
		bool rel = k == 0;
		const char *what = rel ? "REL" : "COMP";
		cr_assert_eq(release_with(rel, 5, 1, "c", 0), 0, "%s: the control", what);
		cr_assert_eq(release_with(rel, 0, 1, "c", 0), -1, "%s: stamp 0", what);
		cr_assert_eq(release_with(rel, 5, 0, "c", 0), -1, "%s: packet id 0", what);
		cr_assert_eq(release_with(rel, 5, 1, "", 0), -1, "%s: an empty client id", what);
		cr_assert_eq(release_with(rel, 5, 1, "c", 1), -1, "%s: a trailing byte", what);
		cr_assert_eq(release_with(rel, 5, 0xFFFF, "c", 0), 0, "%s: the largest packet id",
		             what);
		/* Every truncation, from a copy of exactly that many bytes. */
		uint8_t p[64];
		struct rec_release r = {.stamp = 7,
		                        .msg_stamp = 6,
		                        .pid = 3,
		                        .client_id = (const uint8_t *)"client",
		                        .client_id_len = 6};
		size_t n = rec_release_size(6, rel);
		rec_release_put(p, &r, rel);
		struct rec_release o;
		cr_assert_eq(rec_release_get(p, n, rel, &o), 0);
		for (size_t len = 0; len < n; len++) {
			uint8_t *copy = malloc(len ? len : 1);
			memcpy(copy, p, len);
			cr_assert_eq(rec_release_get(copy, len, rel, &o), -1, "%s: %zu bytes", what,
			             len);
			free(copy);
		}
	}
}

Test(msg_record, a_release_without_a_packet_id_is_a_programmer_error, .signal = SIGABRT)
{
	uint8_t p[64];
	struct rec_release r = {
	    .stamp = 1, .pid = 0, .client_id = (const uint8_t *)"c", .client_id_len = 1};
	rec_release_put(p, &r, true);
}
