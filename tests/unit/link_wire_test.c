/*
 * link_wire_test.c — the link's frames (cluster/link_wire.h): every kind
 * round trips through a buffer and the stream decoder; a stream split at
 * every byte gives the same frames; an oversize length is refused before a
 * byte is buffered; every truncation and thousands of random bit flips of
 * valid frames are refused or decode to a frame that re-encodes to itself;
 * each bound is refused where it is crossed, on encode and on decode; and
 * the handshake's proof holds against a wrong secret, a wrong nonce, a
 * replay to another node, and the empty-mac rules.
 *
 * Hand-written protobuf below (the unknown kind, too many fields, an
 * embedded NUL) is encoded here from proto/link.proto, not by protobuf-c.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "link_wire.h"
#include "rng.h"

/* ---- fixtures ------------------------------------------------------------ */

static struct mqtt_view V(const char *s) {
	return mqtt_view_str(s);
}

/* A PUBLISH body as received: topic length prefix, topic, packet id when
 * QoS > 0, 5.0 properties (here a Message Expiry of 60 s), payload. */
struct body {
	uint8_t b[512];
	uint32_t len;
};

static struct body make_body(const char *topic, uint8_t version, uint8_t qos, const char *payload)
{
	struct body out = {0};
	size_t tl = strlen(topic), n = 0;
	out.b[n++] = (uint8_t)(tl >> 8);
	out.b[n++] = (uint8_t)tl;
	memcpy(out.b + n, topic, tl);
	n += tl;
	if (qos) {
		out.b[n++] = 0x12;
		out.b[n++] = 0x34;
	}
	if (version == 5) {
		static const uint8_t props[] = {5, 0x02, 0, 0, 0, 60};
		memcpy(out.b + n, props, sizeof(props));
		n += sizeof(props);
	}
	memcpy(out.b + n, payload, strlen(payload));
	n += strlen(payload);
	out.len = (uint32_t)n;
	return out;
}

static struct mqtt_view body_view(const struct body *b)
{
	return (struct mqtt_view){b->b, b->len};
}

static bool view_eq(struct mqtt_view a, struct mqtt_view b)
{
	return mqtt_view_eq(a, b);
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool publish_eq(const struct link_publish *a, const struct link_publish *b)
{
	return a->link_seq == b->link_seq && a->version == b->version && a->qos == b->qos &&
	       a->retain == b->retain && view_eq(a->topic, b->topic) && view_eq(a->body, b->body) &&
	       a->expiry_left_ms == b->expiry_left_ms && a->wall_ms == b->wall_ms &&
	       str_eq(a->origin_node, b->origin_node);
}

/* Field by field: what a frame says, whoever built it. */
static bool frame_eq(const struct link_frame *a, const struct link_frame *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case LINK_HELLO:
		return str_eq(a->hello.cluster_name, b->hello.cluster_name) &&
		       str_eq(a->hello.node_name, b->hello.node_name) &&
		       a->hello.epoch == b->hello.epoch &&
		       a->hello.link_version == b->hello.link_version &&
		       a->hello.workers == b->hello.workers && a->hello.worker == b->hello.worker &&
		       memcmp(a->hello.nonce, b->hello.nonce, LINK_NONCE_BYTES) == 0;
	case LINK_HELLO_PROOF:
		return a->proof.mac_len == b->proof.mac_len &&
		       memcmp(a->proof.mac, b->proof.mac, a->proof.mac_len) == 0;
	case LINK_PING:
		return a->ping.seq == b->ping.seq && a->ping.ack == b->ping.ack;
	case LINK_ACK:
		return a->ack.up_to == b->ack.up_to;
	case LINK_RETAINED_SNAPSHOT_END:
		return true;
	case LINK_ROUTE_SNAPSHOT:
		if (a->snapshot.epoch != b->snapshot.epoch || a->snapshot.seq != b->snapshot.seq ||
		    a->snapshot.last != b->snapshot.last ||
		    a->snapshot.filter_count != b->snapshot.filter_count)
			return false;
		for (uint32_t i = 0; i < a->snapshot.filter_count; i++)
			if (!view_eq(a->snapshot.filters[i], b->snapshot.filters[i]))
				return false;
		return true;
	case LINK_ROUTE_DELTA:
		if (a->delta.epoch != b->delta.epoch || a->delta.first_seq != b->delta.first_seq ||
		    a->delta.change_count != b->delta.change_count)
			return false;
		for (uint32_t i = 0; i < a->delta.change_count; i++)
			if (!view_eq(a->delta.changes[i].filter, b->delta.changes[i].filter) ||
			    a->delta.changes[i].add != b->delta.changes[i].add)
				return false;
		return true;
	case LINK_PUBLISH_BATCH:
		if (a->batch.count != b->batch.count)
			return false;
		for (uint32_t i = 0; i < a->batch.count; i++)
			if (!publish_eq(&a->batch.publishes[i], &b->batch.publishes[i]))
				return false;
		return true;
	case LINK_RETAINED_SET:
		return view_eq(a->retained_set.topic, b->retained_set.topic) &&
		       view_eq(a->retained_set.body, b->retained_set.body) &&
		       a->retained_set.version == b->retained_set.version &&
		       a->retained_set.qos == b->retained_set.qos &&
		       a->retained_set.wall_ms == b->retained_set.wall_ms &&
		       str_eq(a->retained_set.origin_node, b->retained_set.origin_node);
	case LINK_RETAINED_DELETE:
		return view_eq(a->retained_delete.topic, b->retained_delete.topic) &&
		       a->retained_delete.wall_ms == b->retained_delete.wall_ms &&
		       str_eq(a->retained_delete.origin_node, b->retained_delete.origin_node);
	case LINK_NONE:
		return true;
	}
	return false;
}

/* One of every kind, publishes at protocol level version. The frames
 * point into static storage: valid for the whole test. */
#define SAMPLE_KINDS 10
static struct body sample_bodies[4];
static struct mqtt_view sample_filters[4];
static struct link_route_change sample_changes[3];
static struct link_publish sample_pubs[3];

static void samples(uint8_t version, struct link_frame out[SAMPLE_KINDS])
{
	sample_bodies[0] = make_body("sensors/1/temp", version, 0, "21.5");
	sample_bodies[1] = make_body("sensors/2/temp", version, 1, "19");
	sample_bodies[2] = make_body(version == 5 ? "" : "a/b", version, 2, ""); /* 5.0: an alias */
	sample_bodies[3] = make_body("state/door", version, 1, "open");
	sample_filters[0] = V("sensors/+/temp");
	sample_filters[1] = V("#");
	sample_filters[2] = V("$share/g/jobs/#");
	sample_filters[3] = V("a//b/\xc3\xa9"); /* empty level, UTF-8 */
	sample_changes[0] = (struct link_route_change){V("x/+"), true};
	sample_changes[1] = (struct link_route_change){V("y/#"), false};
	sample_changes[2] = (struct link_route_change){V("x/+"), false};
	sample_pubs[0] = (struct link_publish){.link_seq = 0,
	                                       .version = version,
	                                       .qos = 0,
	                                       .topic = V("sensors/1/temp"),
	                                       .body = body_view(&sample_bodies[0]),
	                                       .origin_node = "node-a"};
	sample_pubs[1] = (struct link_publish){.link_seq = 41,
	                                       .version = version,
	                                       .qos = 1,
	                                       .topic = V("sensors/2/temp"),
	                                       .body = body_view(&sample_bodies[1]),
	                                       .expiry_left_ms = 59000,
	                                       .origin_node = "node-a"};
	sample_pubs[2] = (struct link_publish){.link_seq = UINT64_MAX,
	                                       .version = version,
	                                       .qos = 2,
	                                       .retain = true,
	                                       .topic = V("a/b"),
	                                       .body = body_view(&sample_bodies[2]),
	                                       .wall_ms = 1700000000123ULL,
	                                       .origin_node = "node-c"};
	struct link_frame f[SAMPLE_KINDS] = {
	    {.kind = LINK_HELLO,
	     .hello = {.cluster_name = "prod",
	               .node_name = "starling-0",
	               .epoch = 1712345678901234ULL,
	               .link_version = LINK_VERSION,
	               .workers = 8,
	               .worker = 7,
	               .nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0xff}}},
	    {.kind = LINK_HELLO_PROOF, .proof = {.mac_len = 32, .mac = {0xaa, 0, 0xbb}}},
	    {.kind = LINK_PING, .ping = {.seq = 9, .ack = true}},
	    {.kind = LINK_ROUTE_SNAPSHOT,
	     .snapshot = {.epoch = 77, .seq = 1000, .filters = sample_filters, .filter_count = 4}},
	    {.kind = LINK_ROUTE_DELTA,
	     .delta =
	         {.epoch = 77, .first_seq = 1001, .changes = sample_changes, .change_count = 3}},
	    {.kind = LINK_PUBLISH_BATCH, .batch = {.publishes = sample_pubs, .count = 3}},
	    {.kind = LINK_ACK, .ack = {.up_to = 41}},
	    {.kind = LINK_RETAINED_SET,
	     .retained_set = {.topic = V("state/door"),
	                      .body = body_view(&sample_bodies[3]),
	                      .version = version,
	                      .qos = 1,
	                      .wall_ms = 1700000000999ULL,
	                      .origin_node = "node-b"}},
	    {.kind = LINK_RETAINED_DELETE,
	     .retained_delete = {.topic = V("state/door"),
	                         .wall_ms = 1700000001000ULL,
	                         .origin_node = "node-b"}},
	    {.kind = LINK_RETAINED_SNAPSHOT_END},
	};
	memcpy(out, f, sizeof(f));
}

/* Encode f alone: its framed bytes in a fresh buffer. */
static struct link_buf encode_one(const struct link_frame *f)
{
	struct link_buf b;
	link_buf_init(&b, 1 << 20, LINK_FRAME_BYTES_DEFAULT);
	int rc = link_encode(&b, f);
	cr_assert_eq(rc, 0, "encode %s: %d", link_kind_name(f->kind), rc);
	return b;
}

/* Does bytes[0..len) (a frame, no prefix) decode to a frame that encodes
 * and decodes again to the same frame? Or is it refused? Never anything
 * else. Returns whether it decoded. */
static bool decodes_consistently(const uint8_t *bytes, size_t len)
{
	struct link_frame f;
	enum link_invalid why = link_frame_decode(bytes, len, &f);
	if (why != LINK_OK) {
		cr_assert_eq(f.kind, LINK_NONE);
		cr_assert_null(f.hold);
		return false;
	}
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	struct link_buf b = encode_one(&f);
	struct link_frame g;
	cr_assert_eq(link_frame_decode(b.bytes + 4, b.len - 4, &g), LINK_OK);
	cr_assert(frame_eq(&f, &g), "%s differs after re-encoding", link_kind_name(f.kind));
	struct link_buf b2 = encode_one(&g);
	cr_assert(b.len == b2.len && memcmp(b.bytes, b2.bytes, b.len) == 0,
	          "re-encoding is not stable");
	link_frame_free(&g);
	link_frame_free(&f);
	link_buf_fini(&b);
	link_buf_fini(&b2);
	return true;
}

/* All frames in a stream fed in pieces of the given sizes (cycled). */
struct stream_result {
	struct link_frame f[64];
	size_t n;
	enum link_status last;
	enum link_invalid why;
};

static void feed(struct link_decoder *d, const uint8_t *bytes, size_t len, struct stream_result *r)
{
	size_t off = 0;
	while (off < len) {
		size_t used;
		struct link_frame f;
		enum link_status st = link_decode(d, bytes + off, len - off, &used, &f);
		cr_assert_leq(used, len - off);
		off += used;
		r->last = st;
		if (st == LINK_NEED_MORE) {
			cr_assert_eq(off, len, "NEED_MORE must take everything");
			break;
		}
		if (st == LINK_INVALID) {
			r->why = d->why;
			break;
		}
		cr_assert_lt(r->n, 64);
		r->f[r->n++] = f;
	}
}

static void result_free(struct stream_result *r)
{
	for (size_t i = 0; i < r->n; i++)
		link_frame_free(&r->f[i]);
	r->n = 0;
}

/* ---- round trips --------------------------------------------------------- */

ParameterizedTestParameters(link_wire, round_trip_every_kind)
{
	static uint8_t versions[] = {3, 4, 5};
	return cr_make_param_array(uint8_t, versions, 3);
}

ParameterizedTest(uint8_t *version, link_wire, round_trip_every_kind)
{
	struct link_frame f[SAMPLE_KINDS];
	samples(*version, f);
	struct link_buf b;
	link_buf_init(&b, 1 << 20, LINK_FRAME_BYTES_DEFAULT);
	size_t expect_len = 0;
	for (int i = 0; i < SAMPLE_KINDS; i++) {
		cr_assert_eq(link_frame_check(&f[i]), LINK_OK, "%s", link_kind_name(f[i].kind));
		size_t before = b.len;
		cr_assert_eq(link_encode(&b, &f[i]), 0, "%s", link_kind_name(f[i].kind));
		cr_assert_eq(b.len - before, link_frame_size(&f[i]), "size of %s",
		             link_kind_name(f[i].kind));
		expect_len += link_frame_size(&f[i]);
	}
	cr_assert_eq(b.len, expect_len);
	cr_assert_eq(b.frames, SAMPLE_KINDS);

	struct link_decoder d;
	link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
	struct stream_result r = {0};
	feed(&d, b.bytes, b.len, &r);
	cr_assert_eq(r.n, SAMPLE_KINDS);
	cr_assert_eq(r.last, LINK_FRAME);
	cr_assert_eq(d.frames, SAMPLE_KINDS);
	cr_assert_eq(d.bytes, b.len);
	for (int i = 0; i < SAMPLE_KINDS; i++) {
		cr_assert(frame_eq(&f[i], &r.f[i]), "%s differs", link_kind_name(f[i].kind));
		cr_assert_not_null(r.f[i].hold);
	}
	/* the views point into the decoded frame, not into the stream */
	memset(b.bytes, 0xEE, b.len);
	cr_assert(frame_eq(&f[3], &r.f[3]));
	cr_assert(frame_eq(&f[5], &r.f[5]));
	result_free(&r);
	link_decoder_fini(&d);
	link_buf_fini(&b);
}

Test(link_wire, fixed_bytes_of_small_frames)
{
	/* Ack{up_to=300}: LinkFrame field 7 (0x3a), Ack field 1 varint 300 */
	static const uint8_t ack[] = {0, 0, 0, 5, 0x3a, 0x03, 0x08, 0xac, 0x02};
	/* Ping{seq=0, ack=false}: an empty Ping, present */
	static const uint8_t ping[] = {0, 0, 0, 2, 0x12, 0x00};
	/* RetainedSnapshotEnd{} */
	static const uint8_t end[] = {0, 0, 0, 2, 0x52, 0x00};
	struct link_frame f = {.kind = LINK_ACK, .ack = {.up_to = 300}};
	struct link_buf b = encode_one(&f);
	cr_assert_eq(b.len, sizeof(ack));
	cr_assert_arr_eq(b.bytes, ack, sizeof(ack));
	link_buf_fini(&b);
	f = (struct link_frame){.kind = LINK_PING};
	b = encode_one(&f);
	cr_assert_arr_eq(b.bytes, ping, sizeof(ping));
	link_buf_fini(&b);
	f = (struct link_frame){.kind = LINK_RETAINED_SNAPSHOT_END};
	b = encode_one(&f);
	cr_assert_arr_eq(b.bytes, end, sizeof(end));
	link_buf_fini(&b);
}

Test(link_wire, large_batches_and_snapshots)
{
	/* beyond the encoder's stack items: the heap path */
	static struct body body;
	body = make_body("t/x", 4, 1, "payload");
	static struct link_publish pubs[LINK_BATCH_PUBLISHES_MAX];
	for (uint32_t i = 0; i < LINK_BATCH_PUBLISHES_MAX; i++)
		pubs[i] = (struct link_publish){.link_seq = i + 1,
		                                .version = 4,
		                                .qos = 1,
		                                .topic = V("t/x"),
		                                .body = body_view(&body),
		                                .origin_node = "n"};
	struct link_frame f = {.kind = LINK_PUBLISH_BATCH,
	                       .batch = {.publishes = pubs, .count = LINK_BATCH_PUBLISHES_MAX}};
	size_t inner = 0;
	for (uint32_t i = 0; i < f.batch.count; i++)
		inner += link_publish_size(&pubs[i]);
	/* the length prefix, LinkFrame's key and the batch's length */
	size_t varint = 1;
	for (size_t v = inner; v >= 0x80; v >>= 7)
		varint++;
	cr_assert_eq(link_frame_size(&f), LINK_HEADER_BYTES + 1 + varint + inner);
	struct link_buf b = encode_one(&f);
	struct link_frame g;
	cr_assert_eq(link_frame_decode(b.bytes + 4, b.len - 4, &g), LINK_OK);
	cr_assert(frame_eq(&f, &g));
	link_frame_free(&g);
	link_buf_fini(&b);

	f.batch.count = LINK_BATCH_PUBLISHES_MAX + 1; /* the encoder refuses beyond */
	cr_assert_eq(link_frame_check(&f), LINK_TOO_MANY);
	link_buf_init(&b, 1 << 24, LINK_FRAME_BYTES_DEFAULT);
	cr_assert_eq(link_encode(&b, &f), -EINVAL);
	cr_assert_eq(b.len, 0);
	link_buf_fini(&b);

	static struct mqtt_view filters[LINK_SNAPSHOT_FILTERS_MAX];
	static char names[LINK_SNAPSHOT_FILTERS_MAX][16];
	size_t bytes = 0;
	for (uint32_t i = 0; i < LINK_SNAPSHOT_FILTERS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "f/%u/+", i);
		filters[i] = V(names[i]);
		bytes += filters[i].len;
	}
	f = (struct link_frame){.kind = LINK_ROUTE_SNAPSHOT,
	                        .snapshot = {.epoch = 1,
	                                     .seq = 5,
	                                     .filters = filters,
	                                     .filter_count = LINK_SNAPSHOT_FILTERS_MAX,
	                                     .last = true}};
	/* the bound the route chunks are sized by */
	cr_assert_leq(link_frame_size(&f),
	              bytes + LINK_SNAPSHOT_FILTERS_MAX * LINK_FILTER_OVERHEAD_BYTES +
	                  LINK_FRAME_OVERHEAD_BYTES);
	b = encode_one(&f);
	cr_assert_eq(link_frame_decode(b.bytes + 4, b.len - 4, &g), LINK_OK);
	cr_assert(frame_eq(&f, &g));
	link_frame_free(&g);
	link_buf_fini(&b);

	/* the same bound for a delta, with the longest filters there are */
	static char longest[LINK_TOPIC_BYTES_MAX + 1];
	memset(longest, 'l', LINK_TOPIC_BYTES_MAX);
	struct link_route_change ch[3] = {{V(longest), true}, {V("s"), false}, {V(longest), false}};
	f = (struct link_frame){.kind = LINK_ROUTE_DELTA,
	                        .delta = {.epoch = UINT64_MAX,
	                                  .first_seq = UINT64_MAX - 2,
	                                  .changes = ch,
	                                  .change_count = 3}};
	cr_assert_leq(link_frame_size(&f), 2 * LINK_TOPIC_BYTES_MAX + 1 +
	                                       3 * LINK_FILTER_OVERHEAD_BYTES +
	                                       LINK_FRAME_OVERHEAD_BYTES);
	b = encode_one(&f);
	cr_assert_eq(link_frame_decode(b.bytes + 4, b.len - 4, &g), LINK_OK);
	cr_assert(frame_eq(&f, &g));
	link_frame_free(&g);
	link_buf_fini(&b);
	/* one byte longer is no filter */
	longest[LINK_TOPIC_BYTES_MAX] = 'l';
	ch[0].filter.len = LINK_TOPIC_BYTES_MAX + 1;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_FILTER);
}

/* ---- the stream ------------------------------------------------------------ */

Test(link_wire, split_at_every_byte_gives_the_same_frames)
{
	struct link_frame f[SAMPLE_KINDS];
	samples(5, f);
	struct link_buf b;
	link_buf_init(&b, 1 << 20, LINK_FRAME_BYTES_DEFAULT);
	for (int i = 0; i < SAMPLE_KINDS; i++)
		cr_assert_eq(link_encode(&b, &f[i]), 0);

	for (size_t cut = 0; cut <= b.len; cut++) {
		struct link_decoder d;
		link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
		struct stream_result r = {0};
		feed(&d, b.bytes, cut, &r);
		feed(&d, b.bytes + cut, b.len - cut, &r);
		cr_assert_eq(r.n, SAMPLE_KINDS, "cut at %zu", cut);
		for (int i = 0; i < SAMPLE_KINDS; i++)
			cr_assert(frame_eq(&f[i], &r.f[i]), "cut at %zu: %s", cut,
			          link_kind_name(f[i].kind));
		cr_assert_eq(d.head_len, 0);
		cr_assert_eq(d.buf_len, 0);
		result_free(&r);
		link_decoder_fini(&d);
	}

	/* one byte at a time, and in random pieces */
	struct rng rng;
	rng_seed(&rng, 7);
	for (int run = 0; run < 200; run++) {
		struct link_decoder d;
		link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
		struct stream_result r = {0};
		size_t off = 0;
		while (off < b.len) {
			size_t piece = run == 0 ? 1 : 1 + rng_below(&rng, 64);
			if (piece > b.len - off)
				piece = b.len - off;
			feed(&d, b.bytes + off, piece, &r);
			off += piece;
		}
		cr_assert_eq(r.n, SAMPLE_KINDS);
		for (int i = 0; i < SAMPLE_KINDS; i++)
			cr_assert(frame_eq(&f[i], &r.f[i]));
		cr_assert_eq(d.bytes, b.len);
		result_free(&r);
		link_decoder_fini(&d);
	}
	link_buf_fini(&b);
}

Test(link_wire, oversize_length_refused_before_buffering)
{
	struct link_decoder d;
	link_decoder_init(&d, 1024);
	/* the length arrives a byte at a time: NEED_MORE, then refused at the
	 * fourth byte, with nothing buffered and nothing read beyond it */
	static const uint8_t stream[] = {0x00, 0x00, 0x04, 0x01, 0x0a, 0x00, 0xff, 0xff};
	size_t used;
	struct link_frame f;
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(link_decode(&d, stream + i, 1, &used, &f), LINK_NEED_MORE);
		cr_assert_eq(used, 1);
	}
	cr_assert_eq(link_decode(&d, stream + 3, sizeof(stream) - 3, &used, &f), LINK_INVALID);
	cr_assert_eq(used, 1);
	cr_assert_eq(d.why, LINK_TOO_LARGE);
	cr_assert_null(d.buf);
	cr_assert_eq(f.kind, LINK_NONE);
	/* sticky: the stream has lost its framing */
	cr_assert_eq(link_decode(&d, stream, sizeof(stream), &used, &f), LINK_INVALID);
	cr_assert_eq(used, 0);
	link_decoder_fini(&d);

	/* the largest length announced at once: refused the same way */
	link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
	static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 0x00};
	cr_assert_eq(link_decode(&d, huge, sizeof(huge), &used, &f), LINK_INVALID);
	cr_assert_eq(used, 4);
	cr_assert_eq(d.why, LINK_TOO_LARGE);
	cr_assert_null(d.buf);
	link_decoder_fini(&d);

	/* exactly the limit is accepted, and its memory comes as its bytes do */
	link_decoder_init(&d, 1024);
	static const uint8_t at_limit[] = {0x00, 0x00, 0x04, 0x00, 0x3a};
	cr_assert_eq(link_decode(&d, at_limit, sizeof(at_limit), &used, &f), LINK_NEED_MORE);
	cr_assert_eq(used, sizeof(at_limit));
	cr_assert_leq(d.buf_cap, 1024);
	link_decoder_fini(&d);

	/* a frame announced as 16 MiB commits no more than what has arrived
	 * (rounded to the first allocation) */
	link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
	static const uint8_t big[] = {0x01, 0x00, 0x00, 0x00, 0x3a, 0x01};
	cr_assert_eq(link_decode(&d, big, sizeof(big), &used, &f), LINK_NEED_MORE);
	cr_assert_leq(d.buf_cap, 4096);
	link_decoder_fini(&d);
}

Test(link_wire, encoder_limits)
{
	struct link_frame ping = {.kind = LINK_PING, .ping = {.seq = 1}};
	size_t one = link_frame_size(&ping);
	struct link_buf b;
	link_buf_init(&b, 3 * one, LINK_FRAME_BYTES_MIN);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(link_encode(&b, &ping), 0);
	cr_assert_eq(link_encode(&b, &ping), -ENOBUFS);
	cr_assert_eq(b.len, 3 * one, "nothing appended when refused");
	cr_assert_eq(b.refused_full, 1);
	cr_assert_eq(b.frames, 3);
	link_buf_consume(&b, one);
	cr_assert_eq(b.len, 2 * one);
	cr_assert_eq(link_encode(&b, &ping), 0);

	/* a frame beyond the peer's frame limit */
	static uint8_t payload[LINK_FRAME_BYTES_MIN];
	static struct body big;
	memset(payload, 'x', sizeof(payload) - 1);
	big = make_body("t", 4, 0, (const char *)payload);
	struct link_publish p = {
	    .version = 4, .topic = V("t"), .body = body_view(&big), .origin_node = "n"};
	struct link_frame f = {.kind = LINK_PUBLISH_BATCH, .batch = {&p, 1}};
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	size_t before = b.len;
	cr_assert_eq(link_encode(&b, &f), -EMSGSIZE);
	cr_assert_eq(b.len, before);
	link_buf_fini(&b);
}

/* ---- refusals -------------------------------------------------------------- */

Test(link_wire, bounds_refused_on_encode)
{
	struct link_frame s[SAMPLE_KINDS];
	samples(4, s);
	struct link_frame f;
	char name65[66];
	memset(name65, 'n', 65);
	name65[65] = '\0';

	f = s[0];
	f.hello.node_name = name65;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	name65[64] = '\0'; /* 64 bytes: fine */
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	f.hello.node_name = "has space";
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	f.hello.node_name = "";
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	f = s[0];
	f.hello.cluster_name = NULL;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	f = s[0];
	f.hello.worker = f.hello.workers;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[0];
	f.hello.workers = LINK_WORKERS_MAX + 1;
	f.hello.worker = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[0];
	f.hello.epoch = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[0];
	f.hello.link_version = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);

	f = s[1];
	f.proof.mac_len = 31;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);

	static struct mqtt_view bad_filters[] = {
	    {(const uint8_t *)"a/#/b", 5}, {(const uint8_t *)"a+", 2},
	    {(const uint8_t *)"", 0},      {(const uint8_t *)"a\0b", 3},
	    {(const uint8_t *)"\xff", 1},  {(const uint8_t *)"$share/g", 8},
	};
	for (size_t i = 0; i < sizeof(bad_filters) / sizeof(bad_filters[0]); i++) {
		f = s[3];
		f.snapshot.filters = &bad_filters[i];
		f.snapshot.filter_count = 1;
		cr_assert_eq(link_frame_check(&f), LINK_BAD_FILTER, "filter %zu", i);
		struct link_route_change ch = {bad_filters[i], true};
		f = s[4];
		f.delta.changes = &ch;
		f.delta.change_count = 1;
		cr_assert_eq(link_frame_check(&f), LINK_BAD_FILTER, "change %zu", i);
	}
	f = s[3];
	f.snapshot.epoch = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[3];
	f.snapshot.filter_count = 0; /* an empty set: a valid snapshot */
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	f = s[4];
	f.delta.first_seq = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[4];
	f.delta.first_seq = UINT64_MAX - 1; /* three changes would wrap */
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f.delta.first_seq = UINT64_MAX - 2;
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	f = s[4];
	f.delta.change_count = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);

	/* publishes */
	struct link_publish p = sample_pubs[1];
	f = (struct link_frame){.kind = LINK_PUBLISH_BATCH, .batch = {&p, 1}};
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	p.qos = 3;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p = sample_pubs[1];
	p.version = 2;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p.version = 6;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p = sample_pubs[1];
	p.link_seq = 0; /* QoS 1 needs a link sequence number */
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p = sample_pubs[0];
	p.link_seq = 5; /* QoS 0 has none */
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p = sample_pubs[1];
	p.topic = V("sensors/+/temp");
	cr_assert_eq(link_frame_check(&f), LINK_BAD_TOPIC);
	p.topic = V("sensors/3/temp"); /* disagrees with the body */
	cr_assert_eq(link_frame_check(&f), LINK_BAD_TOPIC);
	p = sample_pubs[1];
	p.origin_node = "";
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	p = sample_pubs[1];
	p.body.len = 1;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	p = sample_pubs[1];
	p.body.len = 2 + 14 + 1; /* QoS 1 without a whole packet id */
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	/* an aliased (empty) topic in the body is 5.0 only */
	static struct body alias4;
	alias4 = make_body("", 4, 0, "x");
	p = sample_pubs[0];
	p.body = body_view(&alias4);
	cr_assert_eq(link_frame_check(&f), LINK_BAD_TOPIC);
	p.version = 5;
	cr_assert_eq(link_frame_check(&f), LINK_OK);
	f.batch.count = 0;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);

	f = s[7];
	f.retained_set.qos = 3;
	cr_assert_eq(link_frame_check(&f), LINK_BAD_VALUE);
	f = s[7];
	f.retained_set.topic = V("state/#");
	cr_assert_eq(link_frame_check(&f), LINK_BAD_TOPIC);
	f = s[8];
	f.retained_delete.origin_node = "node\x7f";
	cr_assert_eq(link_frame_check(&f), LINK_BAD_NAME);
	f = (struct link_frame){.kind = LINK_NONE};
	cr_assert_eq(link_frame_check(&f), LINK_NO_BODY);

	struct link_buf b;
	link_buf_init(&b, 1 << 20, LINK_FRAME_BYTES_DEFAULT);
	f = s[0];
	f.hello.node_name = "";
	cr_assert_eq(link_encode(&b, &f), -EINVAL);
	cr_assert_eq(b.len, 0);
	link_buf_fini(&b);
}

/* ---- hand-written protobuf for what the encoder never makes ---------------- */

struct pb {
	uint8_t *b;
	size_t len, cap;
};

static void pb_byte(struct pb *p, uint8_t v)
{
	if (p->len == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 256;
		p->b = realloc(p->b, p->cap);
	}
	p->b[p->len++] = v;
}

static void pb_varint(struct pb *p, uint64_t v)
{
	while (v >= 0x80) {
		pb_byte(p, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	pb_byte(p, (uint8_t)v);
}

static void pb_bytes(struct pb *p, unsigned field, const void *b, size_t n)
{
	pb_varint(p, field << 3 | 2);
	pb_varint(p, n);
	for (size_t i = 0; i < n; i++)
		pb_byte(p, ((const uint8_t *)b)[i]);
}

static void pb_uint(struct pb *p, unsigned field, uint64_t v)
{
	pb_varint(p, field << 3 | 0);
	pb_varint(p, v);
}

static enum link_invalid decode_pb(const struct pb *p)
{
	struct link_frame f;
	enum link_invalid why = link_frame_decode(p->b, p->len, &f);
	if (why == LINK_OK)
		link_frame_free(&f);
	return why;
}

Test(link_wire, refused_on_decode)
{
	struct pb p = {0}, inner = {0};

	/* empty frame, an unknown kind (a newer version's field 11) */
	cr_assert_eq(decode_pb(&p), LINK_NO_BODY);
	pb_bytes(&p, 11, "", 0);
	cr_assert_eq(decode_pb(&p), LINK_NO_BODY);

	/* not protobuf: a truncated length, a group, wire type 7 */
	p.len = 0;
	pb_byte(&p, 0x3a);
	pb_byte(&p, 0x05);
	pb_byte(&p, 0x08);
	cr_assert_eq(decode_pb(&p), LINK_SYNTAX);
	static const uint8_t group[] = {0x0b, 0x0c};
	cr_assert_eq(link_frame_decode(group, sizeof(group), &(struct link_frame){0}), LINK_SYNTAX);
	static const uint8_t wt7[] = {0x0f, 0x00};
	cr_assert_eq(link_frame_decode(wt7, sizeof(wt7), &(struct link_frame){0}), LINK_SYNTAX);
	/* Ack with a field of the wrong wire type: protobuf-c refuses */
	static const uint8_t ack_bytes[] = {0x3a, 0x02, 0x0a, 0x00};
	cr_assert_eq(link_frame_decode(ack_bytes, sizeof(ack_bytes), &(struct link_frame){0}),
	             LINK_SYNTAX);

	/* a filter with a NUL inside: bytes keep it, and it is refused */
	p.len = inner.len = 0;
	pb_uint(&inner, 1, 7);
	pb_bytes(&inner, 3, "a\0b", 3);
	pb_bytes(&p, 4, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_BAD_FILTER);

	/* a Hello whose nonce is 15 bytes */
	p.len = inner.len = 0;
	pb_bytes(&inner, 1, "c", 1);
	pb_bytes(&inner, 2, "n", 1);
	pb_uint(&inner, 3, 1);
	pb_uint(&inner, 4, 1);
	pb_uint(&inner, 5, 9);
	pb_bytes(&inner, 7, "0123456789abcde", 15);
	pb_bytes(&p, 1, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_BAD_VALUE);
	inner.len -= 17;
	pb_bytes(&inner, 7, "0123456789abcdef", 16);
	p.len = 0;
	pb_bytes(&p, 1, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_OK);

	/* a QoS that only narrowing would make valid: 258 is not 2 */
	p.len = inner.len = 0;
	struct pb pub = {0};
	static struct body body;
	body = make_body("t", 4, 0, "x");
	pb_uint(&pub, 2, 4);
	pb_uint(&pub, 3, 256);
	pb_bytes(&pub, 5, "t", 1);
	pb_bytes(&pub, 6, body.b, body.len);
	pb_bytes(&pub, 9, "n", 1);
	pb_bytes(&inner, 1, pub.b, pub.len);
	pb_bytes(&p, 6, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_BAD_VALUE);

	/* too many filters in one snapshot */
	p.len = inner.len = 0;
	pb_uint(&inner, 1, 7);
	for (int i = 0; i <= LINK_SNAPSHOT_FILTERS_MAX; i++)
		pb_bytes(&inner, 3, "a", 1);
	pb_bytes(&p, 4, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_TOO_MANY);

	/* too many fields: tiny unknown ones that protobuf-c would keep,
	 * each costing an allocation, are refused before it sees them */
	p.len = inner.len = 0;
	for (int i = 0; i <= LINK_FIELDS_MAX; i++)
		pb_uint(&inner, 15, 1);
	pb_bytes(&p, 7, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_TOO_MANY);
	/* and so are empty publishes, deeper down */
	p.len = inner.len = 0;
	for (int i = 0; i <= LINK_FIELDS_MAX; i++)
		pb_bytes(&inner, 1, "", 0);
	pb_bytes(&p, 6, inner.b, inner.len);
	cr_assert_eq(decode_pb(&p), LINK_TOO_MANY);

	/* unknown fields within the bound are ignored */
	p.len = inner.len = 0;
	pb_uint(&inner, 1, 5);
	pb_uint(&inner, 15, 1);
	pb_bytes(&inner, 16, "future", 6);
	pb_bytes(&p, 7, inner.b, inner.len);
	pb_uint(&p, 20, 3);
	struct link_frame f;
	cr_assert_eq(link_frame_decode(p.b, p.len, &f), LINK_OK);
	cr_assert_eq(f.kind, LINK_ACK);
	cr_assert_eq(f.ack.up_to, 5);
	link_frame_free(&f);

	free(p.b);
	free(inner.b);
	free(pub.b);
}

Test(link_wire, every_truncation_refused_or_consistent)
{
	for (uint8_t version = 3; version <= 5; version++) {
		struct link_frame s[SAMPLE_KINDS];
		samples(version, s);
		for (int k = 0; k < SAMPLE_KINDS; k++) {
			struct link_buf b = encode_one(&s[k]);
			const uint8_t *frame = b.bytes + 4;
			size_t len = b.len - 4;
			cr_assert(decodes_consistently(frame, len));
			for (size_t cut = 0; cut < len; cut++) {
				uint8_t *copy =
				    malloc(cut ? cut : 1); /* exact size: ASan sees overreads */
				memcpy(copy, frame, cut);
				decodes_consistently(copy, cut);
				free(copy);
			}
			/* and through the stream: a cut stream waits for more */
			for (size_t cut = 0; cut < b.len; cut++) {
				struct link_decoder d;
				link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
				struct stream_result r = {0};
				feed(&d, b.bytes, cut, &r);
				cr_assert_eq(r.n, 0);
				cr_assert(cut == 0 || r.last == LINK_NEED_MORE);
				link_decoder_fini(&d);
			}
			link_buf_fini(&b);
		}
	}
}

Test(link_wire, random_bit_flips_refused_or_consistent)
{
	struct rng rng;
	rng_seed(&rng, 42);
	unsigned decoded = 0, refused = 0;
	for (uint8_t version = 3; version <= 5; version++) {
		struct link_frame s[SAMPLE_KINDS];
		samples(version, s);
		for (int k = 0; k < SAMPLE_KINDS; k++) {
			struct link_buf b = encode_one(&s[k]);
			size_t len = b.len - 4;
			uint8_t *copy = malloc(len);
			for (int run = 0; run < 400; run++) {
				memcpy(copy, b.bytes + 4, len);
				unsigned flips = 1 + rng_below(&rng, 3);
				for (unsigned i = 0; i < flips; i++)
					copy[rng_below(&rng, (uint32_t)len)] ^=
					    (uint8_t)(1u << rng_below(&rng, 8));
				if (decodes_consistently(copy, len))
					decoded++;
				else
					refused++;
			}
			free(copy);
			/* flips through the stream decoder, length prefix included */
			uint8_t *stream = malloc(b.len);
			for (int run = 0; run < 100; run++) {
				memcpy(stream, b.bytes, b.len);
				stream[rng_below(&rng, (uint32_t)b.len)] ^=
				    (uint8_t)(1u << rng_below(&rng, 8));
				struct link_decoder d;
				link_decoder_init(&d, 4096);
				struct stream_result r = {0};
				feed(&d, stream, b.len, &r);
				cr_assert_leq(r.n, 1);
				if (r.n == 1)
					cr_assert_eq(link_frame_check(&r.f[0]), LINK_OK);
				result_free(&r);
				link_decoder_fini(&d);
			}
			free(stream);
			link_buf_fini(&b);
		}
	}
	/* both outcomes happen: the test reaches past the first check */
	cr_assert_gt(decoded, 100);
	cr_assert_gt(refused, 100);
}

/* ---- the handshake's proof ------------------------------------------------- */

static const uint8_t SECRET[] = "cluster-secret";
#define SECRET_LEN (sizeof(SECRET) - 1)

static struct link_hello hello_of(const char *name, uint64_t epoch, uint8_t nonce_byte)
{
	struct link_hello h = {.cluster_name = "prod",
	                       .node_name = name,
	                       .epoch = epoch,
	                       .link_version = LINK_VERSION,
	                       .workers = 2,
	                       .worker = 1};
	memset(h.nonce, nonce_byte, LINK_NONCE_BYTES);
	return h;
}

Test(link_wire, hello_proof)
{
	/* A and B open a link; each proves itself over the other's nonce */
	struct link_hello a = hello_of("node-a", 100, 0xA1);
	struct link_hello b = hello_of("node-b", 200, 0xB2);
	struct link_hello_proof from_a, from_b;
	cr_assert_eq(link_proof_make(SECRET, SECRET_LEN, b.nonce, "node-a", 100, &from_a), 0);
	cr_assert_eq(link_proof_make(SECRET, SECRET_LEN, a.nonce, "node-b", 200, &from_b), 0);
	cr_assert_eq(from_a.mac_len, LINK_MAC_BYTES);
	cr_assert(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a, &from_a), "B accepts A");
	cr_assert(link_proof_check(SECRET, SECRET_LEN, a.nonce, &b, &from_b), "A accepts B");

	/* the proof travels in a frame and still checks */
	struct link_frame pf = {.kind = LINK_HELLO_PROOF, .proof = from_a};
	struct link_buf buf = encode_one(&pf);
	struct link_frame got;
	cr_assert_eq(link_frame_decode(buf.bytes + 4, buf.len - 4, &got), LINK_OK);
	cr_assert(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a, &got.proof));
	link_frame_free(&got);
	link_buf_fini(&buf);

	/* a wrong secret */
	static const uint8_t other[] = "another-secret";
	cr_assert_not(link_proof_check(other, sizeof(other) - 1, b.nonce, &a, &from_a));
	struct link_hello_proof forged;
	cr_assert_eq(link_proof_make(other, sizeof(other) - 1, b.nonce, "node-a", 100, &forged), 0);
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a, &forged));

	/* a wrong nonce (an old link's) */
	uint8_t old_nonce[LINK_NONCE_BYTES];
	memset(old_nonce, 0xB1, sizeof(old_nonce));
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, old_nonce, &a, &from_a));

	/* replayed to another node: C's nonce differs, so A's proof for B fails */
	struct link_hello c = hello_of("node-c", 300, 0xC3);
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, c.nonce, &a, &from_a));

	/* a proof for another name or another epoch of the sender */
	struct link_hello a2 = hello_of("node-x", 100, 0xA1);
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a2, &from_a));
	struct link_hello a_restarted = hello_of("node-a", 101, 0xA1);
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a_restarted, &from_a));

	/* one flipped bit of the mac */
	struct link_hello_proof flipped = from_a;
	flipped.mac[31] ^= 1;
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a, &flipped));

	/* empty-mac rules: without a secret the proof is empty and only an
	 * empty one is accepted; with a secret an empty one is refused */
	struct link_hello_proof empty;
	cr_assert_eq(link_proof_make(NULL, 0, b.nonce, "node-a", 100, &empty), 0);
	cr_assert_eq(empty.mac_len, 0);
	cr_assert(link_proof_check(NULL, 0, b.nonce, &a, &empty));
	cr_assert_not(link_proof_check(NULL, 0, b.nonce, &a, &from_a), "a mac where none is set");
	cr_assert_not(link_proof_check(SECRET, SECRET_LEN, b.nonce, &a, &empty));
	cr_assert(link_proof_check(SECRET, 0, b.nonce, &a, &empty), "0 bytes is no secret");

	/* bounds */
	uint8_t long_secret[LINK_SECRET_MAX + 1] = {0};
	cr_assert_eq(
	    link_proof_make(long_secret, sizeof(long_secret), b.nonce, "node-a", 1, &forged),
	    -EINVAL);
	cr_assert_eq(link_proof_make(SECRET, SECRET_LEN, b.nonce, "bad name", 1, &forged), -EINVAL);
	cr_assert_not(link_proof_check(long_secret, sizeof(long_secret), b.nonce, &a, &from_a));
}

Test(link_wire, names)
{
	cr_assert_str_eq(link_kind_name(LINK_ROUTE_DELTA), "route_delta");
	cr_assert_str_eq(link_kind_name(LINK_RETAINED_SNAPSHOT_END), "retained_snapshot_end");
	cr_assert_str_eq(link_invalid_name(LINK_TOO_LARGE), "too_large");
	cr_assert_str_eq(link_invalid_name(LINK_NO_MEMORY), "no_memory");
	cr_assert_str_eq(link_invalid_name((enum link_invalid)99), "?");
}
