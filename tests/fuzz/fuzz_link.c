/*
 * fuzz_link.c — libFuzzer target over the link's receive path
 * (cluster/link_wire.h: the stream decoder and every frame it accepts) and
 * what route frames do to a peer's copy (cluster/routes.h): bytes from a
 * peer node are the link's one input an outsider controls.
 *
 * Input: a flags byte, a count byte k (k & 15 chunk sizes follow, each
 * byte b meaning b + 1 bytes; none: one byte at a time), then the stream.
 * Flags & 3 pick the decoder's frame limit (16 MiB, 256, 4096, 65536);
 * with flags & 4 the stream starts with a route digest: a length byte and
 * that many bytes, the rest is the link's stream.
 * Frames decoded from the whole stream act on a peer's route copy
 * (filters_max 64, filters of at most 32 bytes): snapshots and deltas are
 * applied; the harness lets a Ping's seq stand for an epoch membership
 * heard, an Ack for the link breaking and a RetainedSnapshotEnd for the
 * node declared dead. Seeds: tests/fuzz/make_link_corpus.py (hand-encoded
 * protobuf).
 *
 * Promises: nothing crashes, leaks or reads past its input (ASan); the
 * stream decoded whole and decoded in the chunks the input names gives the
 * same frames, the same verdict and consumes the same bytes; NEED_MORE
 * takes every byte; every frame passes link_frame_check, re-encodes, and
 * decodes again to the same frame and the same bytes; a proof made for a
 * decoded Hello checks, and not against another nonce; route frames keep
 * the caller's index (built from the callbacks alone) equal to the copy,
 * and dropping the copy reports every filter; a digest that decodes
 * re-encodes to the same entries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_wire.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_link: " __VA_ARGS__);                                \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define FRAMES_MAX  64 /* frames compared per input; more are decoded, not kept */
#define FILTERS_MAX 64 /* a small copy: the limit is met and counted */

static const uint32_t LIMITS[4] = {LINK_FRAME_BYTES_DEFAULT, 256, 4096, 65536};
static const uint8_t SECRET[] = "fuzz-secret";

/* ---- a frame, as bytes and as a comparison ---------------------------------- */

static bool views_eq(struct mqtt_view a, struct mqtt_view b)
{
	return mqtt_view_eq(a, b);
}

static bool strs_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static bool frames_eq(const struct link_frame *a, const struct link_frame *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case LINK_HELLO:
		return strs_eq(a->hello.cluster_name, b->hello.cluster_name) &&
		       strs_eq(a->hello.node_name, b->hello.node_name) &&
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
	case LINK_NONE:
		return true;
	case LINK_ROUTE_SNAPSHOT:
		if (a->snapshot.epoch != b->snapshot.epoch || a->snapshot.seq != b->snapshot.seq ||
		    a->snapshot.last != b->snapshot.last ||
		    a->snapshot.filter_count != b->snapshot.filter_count)
			return false;
		for (uint32_t i = 0; i < a->snapshot.filter_count; i++)
			if (!views_eq(a->snapshot.filters[i], b->snapshot.filters[i]))
				return false;
		return true;
	case LINK_ROUTE_DELTA:
		if (a->delta.epoch != b->delta.epoch || a->delta.first_seq != b->delta.first_seq ||
		    a->delta.change_count != b->delta.change_count)
			return false;
		for (uint32_t i = 0; i < a->delta.change_count; i++)
			if (!views_eq(a->delta.changes[i].filter, b->delta.changes[i].filter) ||
			    a->delta.changes[i].add != b->delta.changes[i].add)
				return false;
		return true;
	case LINK_PUBLISH_BATCH:
		if (a->batch.count != b->batch.count)
			return false;
		for (uint32_t i = 0; i < a->batch.count; i++) {
			const struct link_publish *x = &a->batch.publishes[i];
			const struct link_publish *y = &b->batch.publishes[i];
			if (x->link_seq != y->link_seq || x->version != y->version ||
			    x->qos != y->qos || x->retain != y->retain ||
			    !views_eq(x->topic, y->topic) || !views_eq(x->body, y->body) ||
			    x->expiry_left_ms != y->expiry_left_ms || x->wall_ms != y->wall_ms ||
			    !strs_eq(x->origin_node, y->origin_node))
				return false;
		}
		return true;
	case LINK_RETAINED_SET:
		return views_eq(a->retained_set.topic, b->retained_set.topic) &&
		       views_eq(a->retained_set.body, b->retained_set.body) &&
		       a->retained_set.version == b->retained_set.version &&
		       a->retained_set.qos == b->retained_set.qos &&
		       a->retained_set.wall_ms == b->retained_set.wall_ms &&
		       strs_eq(a->retained_set.origin_node, b->retained_set.origin_node);
	case LINK_RETAINED_DELETE:
		return views_eq(a->retained_delete.topic, b->retained_delete.topic) &&
		       a->retained_delete.wall_ms == b->retained_delete.wall_ms &&
		       strs_eq(a->retained_delete.origin_node, b->retained_delete.origin_node);
	}
	return false;
}

/* f re-encoded (framed) into a fresh buffer; len 0 when beyond the limit. */
static struct link_buf reencode(const struct link_frame *f, uint32_t limit)
{
	struct link_buf b;
	link_buf_init(&b, (size_t)limit + LINK_HEADER_BYTES, limit);
	int rc = link_encode(&b, f);
	FUZZ_CHECK(rc == 0 || rc == -EMSGSIZE, "a decoded %s does not encode: %d",
	           link_kind_name(f->kind), rc);
	return b;
}

/* ---- the stream, decoded two ways ------------------------------------------- */

struct run {
	struct link_buf bytes[FRAMES_MAX]; /* each frame re-encoded */
	size_t n;                          /* frames decoded */
	enum link_status last;
	enum link_invalid why;
	uint64_t consumed;
};

static void keep(struct run *r, const struct link_frame *f, uint32_t limit)
{
	if (r->n < FRAMES_MAX)
		r->bytes[r->n] = reencode(f, limit);
	r->n++;
}

static void run_free(struct run *r)
{
	for (size_t i = 0; i < r->n && i < FRAMES_MAX; i++)
		link_buf_fini(&r->bytes[i]);
}

/* Feed [p, p + len) as one piece; frames to act(). */
static bool feed(struct link_decoder *d, const uint8_t *p, size_t len, struct run *r,
                 uint32_t limit, void (*act)(const struct link_frame *, void *), void *arg)
{
	size_t off = 0;
	while (off < len) {
		size_t used;
		struct link_frame f;
		enum link_status st = link_decode(d, p + off, len - off, &used, &f);
		FUZZ_CHECK(used <= len - off, "used %zu of %zu", used, len - off);
		off += used;
		r->consumed += used;
		r->last = st;
		if (st == LINK_NEED_MORE) {
			FUZZ_CHECK(off == len, "NEED_MORE left %zu bytes", len - off);
			FUZZ_CHECK(f.kind == LINK_NONE && !f.hold, "a frame with NEED_MORE");
			return true;
		}
		if (st == LINK_INVALID) {
			FUZZ_CHECK(d->why != LINK_OK, "INVALID without a reason");
			FUZZ_CHECK(f.kind == LINK_NONE && !f.hold, "a frame with INVALID");
			r->why = d->why;
			return false;
		}
		FUZZ_CHECK(st == LINK_FRAME && f.kind != LINK_NONE, "status %d", (int)st);
		FUZZ_CHECK(d->buf_cap <= d->frame_bytes_max, "buffer of %u", d->buf_cap);
		keep(r, &f, limit);
		if (act)
			act(&f, arg);
		link_frame_free(&f);
	}
	return true;
}

/* ---- what frames do ----------------------------------------------------------- */

struct index {
	char *f[FILTERS_MAX];
	size_t n;
};

static void on_change(void *arg, const char *node, struct mqtt_view f, bool add)
{
	struct index *ix = arg;
	FUZZ_CHECK(strcmp(node, "peer") == 0, "a change of %s", node);
	size_t i = 0;
	while (i < ix->n && !(strlen(ix->f[i]) == f.len && memcmp(ix->f[i], f.ptr, f.len) == 0))
		i++;
	if (add) {
		FUZZ_CHECK(i == ix->n, "%.*s added twice", (int)f.len, f.ptr);
		FUZZ_CHECK(ix->n < FILTERS_MAX, "more than filters_max in the copy");
		ix->f[ix->n++] = strndup((const char *)f.ptr, f.len);
	} else {
		FUZZ_CHECK(i < ix->n, "%.*s removed, never added", (int)f.len, f.ptr);
		free(ix->f[i]);
		ix->f[i] = ix->f[--ix->n];
	}
}

struct world {
	struct route_peer *peer;
	struct index ix;
};

static void act(const struct link_frame *f, void *arg)
{
	struct world *w = arg;
	FUZZ_CHECK(link_frame_check(f) == LINK_OK, "a decoded %s fails the check",
	           link_kind_name(f->kind));
	switch (f->kind) {
	case LINK_HELLO: {
		uint8_t mine[LINK_NONCE_BYTES], other[LINK_NONCE_BYTES];
		memset(mine, 0x5a, sizeof(mine));
		memcpy(other, mine, sizeof(other));
		other[0] ^= 1;
		struct link_hello_proof p;
		FUZZ_CHECK(link_proof_make(SECRET, sizeof(SECRET) - 1, mine, f->hello.node_name,
		                           f->hello.epoch, &p) == 0,
		           "no proof for a valid hello");
		FUZZ_CHECK(link_proof_check(SECRET, sizeof(SECRET) - 1, mine, &f->hello, &p),
		           "a right proof refused");
		FUZZ_CHECK(!link_proof_check(SECRET, sizeof(SECRET) - 1, other, &f->hello, &p),
		           "a proof for another nonce accepted");
		/* and the peer's own nonce, as the other side would use it */
		FUZZ_CHECK(link_proof_make(NULL, 0, f->hello.nonce, f->hello.node_name,
		                           f->hello.epoch, &p) == 0 &&
		               p.mac_len == 0,
		           "no empty proof");
		break;
	}
	case LINK_HELLO_PROOF: {
		struct link_hello h = {.node_name = "peer", .epoch = 1};
		uint8_t mine[LINK_NONCE_BYTES] = {0};
		bool with = link_proof_check(SECRET, sizeof(SECRET) - 1, mine, &h, &f->proof);
		bool without = link_proof_check(NULL, 0, mine, &h, &f->proof);
		FUZZ_CHECK(without == (f->proof.mac_len == 0), "the empty-mac rule");
		FUZZ_CHECK(!(with && without), "accepted both with and without a secret");
		break;
	}
	case LINK_ROUTE_SNAPSHOT:
		route_peer_snapshot(w->peer, f->snapshot.epoch, f->snapshot.seq,
		                    f->snapshot.filters, f->snapshot.filter_count,
		                    f->snapshot.last);
		break;
	case LINK_ROUTE_DELTA: {
		static struct route_change ch[LINK_DELTA_CHANGES_MAX];
		for (uint32_t i = 0; i < f->delta.change_count; i++)
			ch[i] = (struct route_change){f->delta.changes[i].filter,
			                              f->delta.changes[i].add};
		route_peer_delta(w->peer, f->delta.epoch, f->delta.first_seq, ch,
		                 f->delta.change_count);
		break;
	}
	case LINK_PING:
		/* the harness lets a Ping's seq stand for an epoch membership heard */
		route_peer_epoch_seen(w->peer, f->ping.seq);
		break;
	case LINK_ACK: /* and an Ack for the link breaking */
		route_peer_link_down(w->peer);
		break;
	case LINK_RETAINED_SNAPSHOT_END: /* and this for the node declared dead */
		route_peer_drop(w->peer);
		FUZZ_CHECK(w->ix.n == 0, "a dropped copy left %zu filters in the index", w->ix.n);
		break;
	default:
		break;
	}
	/* the index equals the copy */
	FUZZ_CHECK(w->ix.n == route_peer_count(w->peer), "index %zu, copy %u", w->ix.n,
	           route_peer_count(w->peer));
	for (size_t i = 0; i < w->ix.n; i++)
		FUZZ_CHECK(route_peer_has(w->peer, mqtt_view_str(w->ix.f[i])), "orphan %s",
		           w->ix.f[i]);
}

static void digest_round_trip(const uint8_t *p, size_t len)
{
	struct route_digest_entry e[ROUTE_DIGEST_ENTRIES_MAX], again[ROUTE_DIGEST_ENTRIES_MAX];
	int n = route_digest_decode(p, len, e, ROUTE_DIGEST_ENTRIES_MAX);
	if (n < 0)
		return;
	uint8_t out[ROUTE_DIGEST_BYTES_MAX];
	size_t encoded;
	int out_len = route_digest_encode(e, (size_t)n, out, sizeof(out), &encoded);
	/* canonical varints are never longer than the ones read */
	FUZZ_CHECK(out_len > 0 && encoded == (size_t)n, "%d entries re-encode as %zu", n, encoded);
	FUZZ_CHECK(route_digest_decode(out, (size_t)out_len, again, ROUTE_DIGEST_ENTRIES_MAX) == n,
	           "re-encoded digest does not decode");
	for (int i = 0; i < n; i++)
		FUZZ_CHECK(strcmp(e[i].origin, again[i].origin) == 0 &&
		               e[i].epoch == again[i].epoch && e[i].seq == again[i].seq,
		           "digest entry %d differs", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint8_t flags = data[0];
	size_t k = data[1] & 15;
	if (size < 2 + k)
		return 0;
	const uint8_t *chunks = data + 2;
	const uint8_t *stream = data + 2 + k;
	size_t len = size - 2 - k;
	uint32_t limit = LIMITS[flags & 3];

	if ((flags & 4) && len >= 1) {
		size_t digest_len = stream[0] < len - 1 ? stream[0] : len - 1;
		digest_round_trip(stream + 1, digest_len);
		stream += 1 + digest_len;
		len -= 1 + digest_len;
	}

	/* whole: the frames act on a peer's copy */
	struct route_params p;
	route_params_default(&p);
	p.filters_max = FILTERS_MAX;
	p.filter_bytes_max = 32;
	p.hash_seed = flags;
	struct world w = {0};
	w.peer = route_peer_new(&p, "peer", on_change, &w.ix);
	FUZZ_CHECK(w.peer, "route_peer_new");
	struct link_decoder d;
	link_decoder_init(&d, limit);
	struct run whole = {0};
	feed(&d, stream, len, &whole, limit, act, &w);
	link_decoder_fini(&d);

	/* in the input's chunks: the same frames, verdict and bytes */
	link_decoder_init(&d, limit);
	struct run pieces = {0};
	size_t off = 0, c = 0;
	while (off < len) {
		size_t piece = k ? (size_t)chunks[c++ % k] + 1 : 1;
		if (piece > len - off)
			piece = len - off;
		bool go_on = feed(&d, stream + off, piece, &pieces, limit, NULL, NULL);
		off += piece;
		if (!go_on)
			break;
	}
	size_t used_after;
	struct link_frame none;
	if (pieces.why) /* sticky */
		FUZZ_CHECK(link_decode(&d, stream, len, &used_after, &none) == LINK_INVALID &&
		               used_after == 0,
		           "a refused stream came back");
	link_decoder_fini(&d);
	FUZZ_CHECK(whole.n == pieces.n, "%zu frames whole, %zu in pieces", whole.n, pieces.n);
	FUZZ_CHECK(whole.why == pieces.why, "whole says %s, pieces %s",
	           link_invalid_name(whole.why), link_invalid_name(pieces.why));
	FUZZ_CHECK(whole.consumed == pieces.consumed, "%lu bytes whole, %lu in pieces",
	           (unsigned long)whole.consumed, (unsigned long)pieces.consumed);
	for (size_t i = 0; i < whole.n && i < FRAMES_MAX; i++) {
		const struct link_buf *a = &whole.bytes[i], *b = &pieces.bytes[i];
		FUZZ_CHECK(a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0,
		           "frame %zu differs between whole and pieces", i);
		if (a->len == 0)
			continue; /* beyond the limit once re-encoded */
		/* decoded again: the same frame, the same bytes */
		struct link_frame f1, f2;
		FUZZ_CHECK(link_frame_decode(a->bytes + 4, a->len - 4, &f1) == LINK_OK,
		           "a re-encoded frame does not decode");
		struct link_buf again = reencode(&f1, limit);
		FUZZ_CHECK(again.len == a->len && memcmp(again.bytes, a->bytes, a->len) == 0,
		           "re-encoding is not stable");
		FUZZ_CHECK(link_frame_decode(again.bytes + 4, again.len - 4, &f2) == LINK_OK &&
		               frames_eq(&f1, &f2),
		           "frame %zu decodes differently the second time", i);
		link_frame_free(&f1);
		link_frame_free(&f2);
		link_buf_fini(&again);
	}
	run_free(&whole);
	run_free(&pieces);

	route_peer_drop(w.peer);
	FUZZ_CHECK(w.ix.n == 0, "dropping left %zu filters", w.ix.n);
	const struct route_peer_counters *rc = route_peer_counters(w.peer);
	FUZZ_CHECK(rc->drops >= 1, "drops %lu", (unsigned long)rc->drops);
	route_peer_free(w.peer);
	return 0;
}
