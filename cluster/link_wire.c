/*
 * link_wire.c — link frames as bytes (link_wire.h, proto/link.proto): the
 * only file of the link that sees protobuf-c or OpenSSL. Pure: no I/O; any
 * thread, on the decoder or buffer it owns.
 *
 * Decoding a frame goes, in this order, so each refusal is told under the
 * first reason that applies: the announced length (TOO_LARGE, before a byte
 * of the frame is buffered); a walk over the protobuf wire format that
 * reads nothing past the frame and counts its fields at every depth the
 * schema nests (SYNTAX, TOO_MANY) — protobuf-c allocates per field, so
 * without it a 16 MiB frame of two-byte fields would cost gigabytes;
 * protobuf-c's unpack (SYNTAX); the oneof (NO_BODY); the counts (TOO_MANY);
 * then every value, wide integers before they are narrowed into the plain
 * structs, and the plain frame through the same link_frame_check the
 * encoder uses. A frame is accepted whole or not at all.
 *
 * Invariants: a decoded frame's pointers stay inside its hold (the
 * unpacked message and one array) until link_frame_free; a decoder buffers
 * at most one frame and never more than frame_bytes_max; a link_buf never
 * holds more than bytes_max and holds whole frames only.
 */
#include "link_wire.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "base/check.h"
#include "link.pb-c.h"
#include "topic.h"
#include "utf8.h"

typedef Starling__Link__LinkFrame LinkFrame;
typedef Starling__Link__Hello Hello;
typedef Starling__Link__HelloProof HelloProof;
typedef Starling__Link__Ping Ping;
typedef Starling__Link__RouteSnapshot RouteSnapshot;
typedef Starling__Link__RouteChange RouteChange;
typedef Starling__Link__RouteDelta RouteDelta;
typedef Starling__Link__Publish Publish;
typedef Starling__Link__PublishBatch PublishBatch;
typedef Starling__Link__Ack Ack;
typedef Starling__Link__RetainedSet RetainedSet;
typedef Starling__Link__RetainedDelete RetainedDelete;
typedef Starling__Link__RetainedSnapshotEnd RetainedSnapshotEnd;

/* enum link_kind is the oneof's field number: frames convert by cast. */
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_HELLO == (int)LINK_HELLO, "hello");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_PING == (int)LINK_PING, "ping");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_HELLO_PROOF == (int)LINK_HELLO_PROOF, "proof");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_ROUTE_SNAPSHOT == (int)LINK_ROUTE_SNAPSHOT,
               "snapshot");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_ROUTE_DELTA == (int)LINK_ROUTE_DELTA, "delta");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_PUBLISH_BATCH == (int)LINK_PUBLISH_BATCH,
               "batch");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_ACK == (int)LINK_ACK, "ack");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_RETAINED_SET == (int)LINK_RETAINED_SET,
               "retained set");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_RETAINED_DELETE == (int)LINK_RETAINED_DELETE,
               "retained delete");
_Static_assert((int)STARLING__LINK__LINK_FRAME__BODY_RETAINED_SNAPSHOT_END ==
                   (int)LINK_RETAINED_SNAPSHOT_END,
               "retained end");
_Static_assert(LINK_FRAME_BYTES_LIMIT <= UINT32_MAX, "the length prefix is 32 bits");

#define DECODER_KEEP_BYTES (64u << 10) /* a decoder's buffer beyond this is freed after a frame */
#define BUF_MIN_BYTES      4096        /* a link_buf's first allocation */
#define ENC_STACK_ITEMS    16          /* repeated items encoded without malloc */

static const char PROOF_LABEL[] = "starling-link-v1"; /* 16 bytes, no NUL on the wire */
#define PROOF_LABEL_BYTES (sizeof(PROOF_LABEL) - 1)

/* What a decoded frame holds until link_frame_free: the unpacked message
 * and the array its plain struct points at (filters, changes or publishes). */
struct hold {
	LinkFrame *msg;
	max_align_t items[];
};

/* ---- bounds -------------------------------------------------------------- */

static bool name_ok(const char *s)
{
	if (!s)
		return false;
	size_t n = strnlen(s, LINK_NAME_MAX + 1);
	if (n == 0 || n > LINK_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static bool filter_ok(struct mqtt_view v)
{
	/* UTF-8 first: the filter checker assumes the decoder's UTF-8 check ran. */
	return v.len >= 1 && v.len <= LINK_TOPIC_BYTES_MAX && v.ptr &&
	       mqtt_utf8_valid(v.ptr, v.len) && mqtt_topic_filter_check(v) == MQTT_RC_SUCCESS;
}

static bool topic_ok(struct mqtt_view v)
{
	return v.len >= 1 && v.len <= LINK_TOPIC_BYTES_MAX && v.ptr &&
	       mqtt_utf8_valid(v.ptr, v.len) && mqtt_topic_name_valid(v);
}

static bool version_ok(uint8_t v)
{
	return v == MQTT_V31 || v == MQTT_V311 || v == MQTT_V5;
}

/*
 * The body as received must agree with the message around it: it starts
 * with the topic's length prefix and the topic (or an empty topic: a 5.0
 * alias), then a packet id when QoS > 0. The rest (properties, payload) is
 * read by the codec where the receiver turns it into a message.
 */
static enum link_invalid body_check(struct mqtt_view topic, struct mqtt_view body, uint8_t version,
                                    uint8_t qos)
{
	if (body.len > LINK_BODY_BYTES_MAX || body.len < 2 || !body.ptr)
		return LINK_BAD_VALUE;
	uint32_t tl = (uint32_t)body.ptr[0] << 8 | body.ptr[1];
	if (tl == 0 ? version != MQTT_V5
	            : tl != topic.len || memcmp(body.ptr + 2, topic.ptr, tl) != 0)
		return LINK_BAD_TOPIC;
	if ((uint64_t)body.len < 2u + tl + (qos ? 2u : 0u))
		return LINK_BAD_VALUE;
	return LINK_OK;
}

static enum link_invalid publish_check(const struct link_publish *p)
{
	if (!version_ok(p->version) || p->qos > 2 ||
	    (p->link_seq == 0) != (p->qos == 0 && !p->store_only) || (p->store_only && !p->retain))
		return LINK_BAD_VALUE;
	if (!topic_ok(p->topic))
		return LINK_BAD_TOPIC;
	enum link_invalid why = body_check(p->topic, p->body, p->version, p->qos);
	if (why)
		return why;
	return name_ok(p->origin_node) ? LINK_OK : LINK_BAD_NAME;
}

enum link_invalid link_frame_check(const struct link_frame *f)
{
	switch (f->kind) {
	case LINK_HELLO: {
		const struct link_hello *h = &f->hello;
		if (!name_ok(h->cluster_name) || !name_ok(h->node_name))
			return LINK_BAD_NAME;
		if (h->epoch == 0 || h->link_version == 0 || h->workers == 0 ||
		    h->workers > LINK_WORKERS_MAX || h->worker >= h->workers)
			return LINK_BAD_VALUE;
		return LINK_OK;
	}
	case LINK_HELLO_PROOF:
		return f->proof.mac_len == 0 || f->proof.mac_len == LINK_MAC_BYTES ? LINK_OK
		                                                                   : LINK_BAD_VALUE;
	case LINK_PING:
	case LINK_ACK:
	case LINK_RETAINED_SNAPSHOT_END:
		return LINK_OK;
	case LINK_ROUTE_SNAPSHOT: {
		const struct link_route_snapshot *s = &f->snapshot;
		if (s->filter_count > LINK_SNAPSHOT_FILTERS_MAX)
			return LINK_TOO_MANY;
		if (s->epoch == 0 || (s->filter_count && !s->filters))
			return LINK_BAD_VALUE;
		for (uint32_t i = 0; i < s->filter_count; i++)
			if (!filter_ok(s->filters[i]))
				return LINK_BAD_FILTER;
		return LINK_OK;
	}
	case LINK_ROUTE_DELTA: {
		const struct link_route_delta *d = &f->delta;
		if (d->change_count > LINK_DELTA_CHANGES_MAX)
			return LINK_TOO_MANY;
		/* the last change's number must not wrap */
		if (d->epoch == 0 || d->first_seq == 0 || d->change_count == 0 || !d->changes ||
		    d->first_seq > UINT64_MAX - (d->change_count - 1))
			return LINK_BAD_VALUE;
		for (uint32_t i = 0; i < d->change_count; i++)
			if (!filter_ok(d->changes[i].filter))
				return LINK_BAD_FILTER;
		return LINK_OK;
	}
	case LINK_PUBLISH_BATCH: {
		const struct link_publish_batch *b = &f->batch;
		if (b->count > LINK_BATCH_PUBLISHES_MAX)
			return LINK_TOO_MANY;
		if (b->count == 0 || !b->publishes)
			return LINK_BAD_VALUE;
		for (uint32_t i = 0; i < b->count; i++) {
			enum link_invalid why = publish_check(&b->publishes[i]);
			if (why)
				return why;
		}
		return LINK_OK;
	}
	case LINK_RETAINED_SET: {
		const struct link_retained_set *r = &f->retained_set;
		if (!version_ok(r->version) || r->qos > 2)
			return LINK_BAD_VALUE;
		if (!topic_ok(r->topic))
			return LINK_BAD_TOPIC;
		enum link_invalid why = body_check(r->topic, r->body, r->version, r->qos);
		if (why)
			return why;
		return name_ok(r->origin_node) ? LINK_OK : LINK_BAD_NAME;
	}
	case LINK_RETAINED_DELETE:
		if (!topic_ok(f->retained_delete.topic))
			return LINK_BAD_TOPIC;
		return name_ok(f->retained_delete.origin_node) ? LINK_OK : LINK_BAD_NAME;
	case LINK_NONE:
		break;
	}
	return LINK_NO_BODY;
}

/* ---- decoding: the wire walk ---------------------------------------------- */

/* What the schema nests where: only these length-delimited fields are
 * messages that protobuf-c unpacks (and allocates for) field by field. */
enum scan_kind {
	SCAN_OPAQUE, /* bytes, a string, or a field we do not know: not looked into */
	SCAN_LEAF,   /* a message whose fields are all scalars, strings or bytes */
	SCAN_FRAME,  /* LinkFrame */
	SCAN_DELTA,  /* RouteDelta: its changes are messages */
	SCAN_BATCH,  /* PublishBatch: its publishes are messages */
};

static enum scan_kind scan_child(enum scan_kind k, uint64_t field)
{
	switch (k) {
	case SCAN_FRAME:
		if (field == LINK_ROUTE_DELTA)
			return SCAN_DELTA;
		if (field == LINK_PUBLISH_BATCH)
			return SCAN_BATCH;
		return field >= 1 && field < LINK_KINDS ? SCAN_LEAF : SCAN_OPAQUE;
	case SCAN_DELTA:
		return field == 3 ? SCAN_LEAF : SCAN_OPAQUE; /* RouteDelta.changes */
	case SCAN_BATCH:
		return field == 1 ? SCAN_LEAF : SCAN_OPAQUE; /* PublishBatch.publishes */
	default:
		return SCAN_OPAQUE;
	}
}

static bool scan_varint(const uint8_t *p, size_t len, size_t *off, uint64_t *v)
{
	uint64_t x = 0;
	for (unsigned i = 0; i < 10; i++) { /* shifts 0 .. 63: the 10th byte's high bits drop */
		if (*off >= len)
			return false;
		uint8_t b = p[(*off)++];
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if (!(b & 0x80)) {
			*v = x;
			return true;
		}
	}
	return false; /* longer than 10 bytes */
}

/* Walk one message's fields, descending where the schema nests messages;
 * *fields counts every field met. Never reads outside p[0..len). */
static enum link_invalid scan(const uint8_t *p, size_t len, enum scan_kind k, size_t *fields)
{
	size_t off = 0;
	while (off < len) {
		uint64_t key, n;
		if (!scan_varint(p, len, &off, &key))
			return LINK_SYNTAX;
		if (++*fields > LINK_FIELDS_MAX)
			return LINK_TOO_MANY;
		switch (key & 7) {
		case 0: /* varint */
			if (!scan_varint(p, len, &off, &n))
				return LINK_SYNTAX;
			break;
		case 1: /* 64-bit */
			if (len - off < 8)
				return LINK_SYNTAX;
			off += 8;
			break;
		case 5: /* 32-bit */
			if (len - off < 4)
				return LINK_SYNTAX;
			off += 4;
			break;
		case 2: { /* length-delimited */
			if (!scan_varint(p, len, &off, &n) || n > len - off)
				return LINK_SYNTAX;
			enum scan_kind child = scan_child(k, key >> 3);
			if (child != SCAN_OPAQUE) {
				enum link_invalid why = scan(p + off, (size_t)n, child, fields);
				if (why)
					return why;
			}
			off += (size_t)n;
			break;
		}
		default: /* groups (3, 4) and wire types 6, 7: not in our schema */
			return LINK_SYNTAX;
		}
	}
	return LINK_OK;
}

/* ---- decoding: the message into plain structs ------------------------------ */

static struct mqtt_view view_of(const ProtobufCBinaryData *b)
{
	/* callers checked b->len fits: at most LINK_BODY_BYTES_MAX */
	return (struct mqtt_view){b->len ? b->data : NULL, (uint32_t)b->len};
}

static enum link_invalid publish_in(const Publish *m, struct link_publish *out)
{
	/* wide values are checked before they are narrowed */
	if (m->version > UINT8_MAX || m->qos > UINT8_MAX || m->body.len > LINK_BODY_BYTES_MAX)
		return LINK_BAD_VALUE;
	if (m->topic.len > LINK_TOPIC_BYTES_MAX)
		return LINK_BAD_TOPIC;
	*out = (struct link_publish){
	    .link_seq = m->link_seq,
	    .version = (uint8_t)m->version,
	    .qos = (uint8_t)m->qos,
	    .retain = m->retain,
	    .topic = view_of(&m->topic),
	    .body = view_of(&m->body),
	    .expiry_left_ms = m->expiry_left_ms,
	    .wall_ms = m->wall_ms,
	    .origin_node = m->origin_node,
	    .shared = m->shared,
	    .store_only = m->store_only,
	};
	return LINK_OK;
}

static enum link_invalid frame_in(const LinkFrame *m, struct hold *h, struct link_frame *f)
{
	f->kind = (enum link_kind)m->body_case;
	switch (m->body_case) {
	case STARLING__LINK__LINK_FRAME__BODY_HELLO: {
		const Hello *x = m->hello;
		if (x->nonce.len != LINK_NONCE_BYTES)
			return LINK_BAD_VALUE;
		f->hello = (struct link_hello){
		    .cluster_name = x->cluster_name,
		    .node_name = x->node_name,
		    .epoch = x->epoch,
		    .link_version = x->link_version,
		    .workers = x->workers,
		    .worker = x->worker,
		};
		memcpy(f->hello.nonce, x->nonce.data, LINK_NONCE_BYTES);
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_HELLO_PROOF: {
		const HelloProof *x = m->hello_proof;
		if (x->mac.len != 0 && x->mac.len != LINK_MAC_BYTES)
			return LINK_BAD_VALUE;
		f->proof.mac_len = (uint8_t)x->mac.len;
		if (x->mac.len)
			memcpy(f->proof.mac, x->mac.data, LINK_MAC_BYTES);
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_PING:
		f->ping = (struct link_ping){m->ping->seq, m->ping->ack};
		return LINK_OK;
	case STARLING__LINK__LINK_FRAME__BODY_ACK:
		f->ack.up_to = m->ack->up_to;
		return LINK_OK;
	case STARLING__LINK__LINK_FRAME__BODY_RETAINED_SNAPSHOT_END:
		return LINK_OK;
	case STARLING__LINK__LINK_FRAME__BODY_ROUTE_SNAPSHOT: {
		const RouteSnapshot *x = m->route_snapshot;
		struct mqtt_view *filters = (struct mqtt_view *)h->items;
		for (size_t i = 0; i < x->n_filters; i++) {
			if (x->filters[i].len > LINK_TOPIC_BYTES_MAX)
				return LINK_BAD_FILTER;
			filters[i] = view_of(&x->filters[i]);
		}
		f->snapshot = (struct link_route_snapshot){
		    .epoch = x->epoch,
		    .seq = x->seq,
		    .filters = filters,
		    .filter_count = (uint32_t)x->n_filters,
		    .last = x->last,
		};
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_ROUTE_DELTA: {
		const RouteDelta *x = m->route_delta;
		struct link_route_change *changes = (struct link_route_change *)h->items;
		for (size_t i = 0; i < x->n_changes; i++) {
			if (x->changes[i]->filter.len > LINK_TOPIC_BYTES_MAX)
				return LINK_BAD_FILTER;
			changes[i].filter = view_of(&x->changes[i]->filter);
			changes[i].add = x->changes[i]->add;
		}
		f->delta = (struct link_route_delta){
		    .epoch = x->epoch,
		    .first_seq = x->first_seq,
		    .changes = changes,
		    .change_count = (uint32_t)x->n_changes,
		};
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_PUBLISH_BATCH: {
		const PublishBatch *x = m->publish_batch;
		struct link_publish *pubs = (struct link_publish *)h->items;
		for (size_t i = 0; i < x->n_publishes; i++) {
			enum link_invalid why = publish_in(x->publishes[i], &pubs[i]);
			if (why)
				return why;
		}
		f->batch = (struct link_publish_batch){pubs, (uint32_t)x->n_publishes};
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_RETAINED_SET: {
		const RetainedSet *x = m->retained_set;
		if (x->version > UINT8_MAX || x->qos > UINT8_MAX ||
		    x->body.len > LINK_BODY_BYTES_MAX)
			return LINK_BAD_VALUE;
		if (x->topic.len > LINK_TOPIC_BYTES_MAX)
			return LINK_BAD_TOPIC;
		f->retained_set = (struct link_retained_set){
		    .topic = view_of(&x->topic),
		    .body = view_of(&x->body),
		    .version = (uint8_t)x->version,
		    .qos = (uint8_t)x->qos,
		    .wall_ms = x->wall_ms,
		    .origin_node = x->origin_node,
		};
		return LINK_OK;
	}
	case STARLING__LINK__LINK_FRAME__BODY_RETAINED_DELETE: {
		const RetainedDelete *x = m->retained_delete;
		if (x->topic.len > LINK_TOPIC_BYTES_MAX)
			return LINK_BAD_TOPIC;
		f->retained_delete = (struct link_retained_delete){
		    .topic = view_of(&x->topic),
		    .wall_ms = x->wall_ms,
		    .origin_node = x->origin_node,
		};
		return LINK_OK;
	}
	default:
		break;
	}
	f->kind = LINK_NONE;
	return LINK_NO_BODY;
}

enum link_invalid link_frame_decode(const uint8_t *bytes, size_t len, struct link_frame *out)
{
	*out = (struct link_frame){.kind = LINK_NONE};
	if (len > LINK_FRAME_BYTES_LIMIT)
		return LINK_TOO_LARGE;
	size_t fields = 0;
	enum link_invalid why = scan(bytes, len, SCAN_FRAME, &fields);
	if (why)
		return why;
	/* protobuf-c does not tell a malformed message from a failed
	 * allocation; the scan above has seen the syntax, so this is rare */
	LinkFrame *m = starling__link__link_frame__unpack(NULL, len, bytes);
	if (!m)
		return LINK_SYNTAX;

	size_t items = 0, item_bytes = 0, items_max = 0;
	switch (m->body_case) {
	case STARLING__LINK__LINK_FRAME__BODY_ROUTE_SNAPSHOT:
		items = m->route_snapshot->n_filters;
		item_bytes = sizeof(struct mqtt_view);
		items_max = LINK_SNAPSHOT_FILTERS_MAX;
		break;
	case STARLING__LINK__LINK_FRAME__BODY_ROUTE_DELTA:
		items = m->route_delta->n_changes;
		item_bytes = sizeof(struct link_route_change);
		items_max = LINK_DELTA_CHANGES_MAX;
		break;
	case STARLING__LINK__LINK_FRAME__BODY_PUBLISH_BATCH:
		items = m->publish_batch->n_publishes;
		item_bytes = sizeof(struct link_publish);
		items_max = LINK_BATCH_PUBLISHES_MAX;
		break;
	default:
		break;
	}
	struct hold *h = NULL;
	if (items > items_max) {
		why = LINK_TOO_MANY;
		goto fail;
	}
	h = malloc(sizeof(*h) + items * item_bytes);
	if (!h) {
		why = LINK_NO_MEMORY;
		goto fail;
	}
	h->msg = m;
	struct link_frame f = {.kind = LINK_NONE, .hold = h};
	why = frame_in(m, h, &f);
	if (!why)
		why = link_frame_check(&f);
	if (why)
		goto fail;
	*out = f;
	return LINK_OK;

fail:
	free(h);
	starling__link__link_frame__free_unpacked(m, NULL);
	return why;
}

void link_frame_free(struct link_frame *f)
{
	struct hold *h = f->hold;
	if (h) {
		starling__link__link_frame__free_unpacked(h->msg, NULL);
		free(h);
	}
	*f = (struct link_frame){.kind = LINK_NONE};
}

/* ---- decoding: the stream ------------------------------------------------- */

void link_decoder_init(struct link_decoder *d, uint32_t frame_bytes_max)
{
	CHECK(frame_bytes_max >= LINK_FRAME_BYTES_MIN && frame_bytes_max <= LINK_FRAME_BYTES_LIMIT);
	*d = (struct link_decoder){.frame_bytes_max = frame_bytes_max};
}

void link_decoder_fini(struct link_decoder *d)
{
	free(d->buf);
	d->buf = NULL;
	d->buf_cap = d->buf_len = 0;
}

/* Room for need bytes of a frame of frame_len: grow as bytes arrive, so an
 * announced length alone commits no memory. */
static bool decoder_room(struct link_decoder *d, uint32_t need, uint32_t frame_len)
{
	if (need <= d->buf_cap)
		return true;
	uint64_t cap = d->buf_cap ? (uint64_t)d->buf_cap * 2 : BUF_MIN_BYTES;
	if (cap < need)
		cap = need;
	if (cap > frame_len)
		cap = frame_len;
	uint8_t *p = realloc(d->buf, (size_t)cap);
	if (!p)
		return false;
	d->buf = p;
	d->buf_cap = (uint32_t)cap;
	return true;
}

enum link_status link_decode(struct link_decoder *d, const uint8_t *bytes, size_t len, size_t *used,
                             struct link_frame *out)
{
	*out = (struct link_frame){.kind = LINK_NONE};
	*used = 0;
	if (d->why)
		return LINK_INVALID;
	size_t off = 0;
	while (d->head_len < LINK_HEADER_BYTES && off < len)
		d->head[d->head_len++] = bytes[off++];
	if (d->head_len < LINK_HEADER_BYTES) {
		*used = off;
		d->bytes += off;
		return LINK_NEED_MORE;
	}
	uint32_t frame_len = (uint32_t)d->head[0] << 24 | (uint32_t)d->head[1] << 16 |
	                     (uint32_t)d->head[2] << 8 | d->head[3];
	if (frame_len > d->frame_bytes_max) {
		d->why = LINK_TOO_LARGE;
		*used = off;
		d->bytes += off;
		return LINK_INVALID;
	}

	const uint8_t *frame;
	if (d->buf_len == 0 && len - off >= frame_len) {
		frame = bytes + off; /* whole in this call: decoded in place */
		off += frame_len;
	} else {
		uint32_t want = frame_len - d->buf_len;
		uint32_t take = len - off < want ? (uint32_t)(len - off) : want;
		if (!decoder_room(d, d->buf_len + take, frame_len)) {
			d->why = LINK_NO_MEMORY;
			*used = off;
			d->bytes += off;
			return LINK_INVALID;
		}
		if (take)
			memcpy(d->buf + d->buf_len, bytes + off, take);
		d->buf_len += take;
		off += take;
		if (d->buf_len < frame_len) {
			*used = off;
			d->bytes += off;
			return LINK_NEED_MORE;
		}
		frame = d->buf;
	}
	CHECK(d->buf_len == 0 || d->buf_len == frame_len);

	enum link_invalid why = link_frame_decode(frame, frame_len, out);
	/* protobuf-c copied what the frame keeps: the buffer is free again */
	d->head_len = 0;
	d->buf_len = 0;
	if (d->buf_cap > DECODER_KEEP_BYTES)
		link_decoder_fini(d); /* one large frame does not pin its memory */
	*used = off;
	d->bytes += off;
	if (why) {
		d->why = why;
		return LINK_INVALID;
	}
	d->frames++;
	return LINK_FRAME;
}

/* ---- encoding ------------------------------------------------------------- */

/* A LinkFrame built from a plain frame: views, no copies of the bytes. */
struct enc {
	LinkFrame frame;
	union {
		Hello hello;
		HelloProof proof;
		Ping ping;
		RouteSnapshot snapshot;
		RouteDelta delta;
		PublishBatch batch;
		Ack ack;
		RetainedSet rset;
		RetainedDelete rdel;
		RetainedSnapshotEnd rend;
	} m;
	void *heap; /* repeated items beyond the stack's */
	union {
		ProtobufCBinaryData filters[ENC_STACK_ITEMS];
		struct {
			RouteChange msgs[ENC_STACK_ITEMS];
			RouteChange *ptrs[ENC_STACK_ITEMS];
		} changes;
		struct {
			Publish msgs[ENC_STACK_ITEMS];
			Publish *ptrs[ENC_STACK_ITEMS];
		} pubs;
	} stack;
};

static ProtobufCBinaryData bin(struct mqtt_view v)
{
	return (ProtobufCBinaryData){v.len, (uint8_t *)v.ptr};
}

static void publish_out(const struct link_publish *p, Publish *m)
{
	starling__link__publish__init(m);
	m->link_seq = p->link_seq;
	m->version = p->version;
	m->qos = p->qos;
	m->retain = p->retain;
	m->topic = bin(p->topic);
	m->body = bin(p->body);
	m->expiry_left_ms = p->expiry_left_ms;
	m->wall_ms = p->wall_ms;
	m->origin_node = (char *)(p->origin_node ? p->origin_node : "");
	m->shared = p->shared;
	m->store_only = p->store_only;
}

/* Room for n items of msg_bytes plus a pointer each: the stack's, or the heap. */
static void *enc_items(struct enc *e, size_t n, size_t msg_bytes, void *stack)
{
	if (n <= ENC_STACK_ITEMS)
		return stack;
	e->heap = malloc(n * (msg_bytes + sizeof(void *)));
	return e->heap;
}

static bool enc_fill(struct enc *e, const struct link_frame *f)
{
	starling__link__link_frame__init(&e->frame);
	e->heap = NULL;
	LinkFrame *fr = &e->frame;
	fr->body_case = (Starling__Link__LinkFrame__BodyCase)f->kind;
	switch (f->kind) {
	case LINK_HELLO:
		starling__link__hello__init(&e->m.hello);
		e->m.hello.cluster_name =
		    (char *)(f->hello.cluster_name ? f->hello.cluster_name : "");
		e->m.hello.node_name = (char *)(f->hello.node_name ? f->hello.node_name : "");
		e->m.hello.epoch = f->hello.epoch;
		e->m.hello.link_version = f->hello.link_version;
		e->m.hello.workers = f->hello.workers;
		e->m.hello.worker = f->hello.worker;
		e->m.hello.nonce =
		    (ProtobufCBinaryData){LINK_NONCE_BYTES, (uint8_t *)f->hello.nonce};
		fr->hello = &e->m.hello;
		return true;
	case LINK_HELLO_PROOF:
		starling__link__hello_proof__init(&e->m.proof);
		e->m.proof.mac = (ProtobufCBinaryData){f->proof.mac_len, (uint8_t *)f->proof.mac};
		fr->hello_proof = &e->m.proof;
		return true;
	case LINK_PING:
		starling__link__ping__init(&e->m.ping);
		e->m.ping.seq = f->ping.seq;
		e->m.ping.ack = f->ping.ack;
		fr->ping = &e->m.ping;
		return true;
	case LINK_ACK:
		starling__link__ack__init(&e->m.ack);
		e->m.ack.up_to = f->ack.up_to;
		fr->ack = &e->m.ack;
		return true;
	case LINK_RETAINED_SNAPSHOT_END:
		starling__link__retained_snapshot_end__init(&e->m.rend);
		fr->retained_snapshot_end = &e->m.rend;
		return true;
	case LINK_ROUTE_SNAPSHOT: {
		const struct link_route_snapshot *s = &f->snapshot;
		starling__link__route_snapshot__init(&e->m.snapshot);
		ProtobufCBinaryData *filters =
		    s->filter_count <= ENC_STACK_ITEMS
		        ? e->stack.filters
		        : (e->heap = malloc(s->filter_count * sizeof(ProtobufCBinaryData)));
		if (!filters)
			return false;
		for (uint32_t i = 0; i < s->filter_count; i++)
			filters[i] = bin(s->filters[i]);
		e->m.snapshot.epoch = s->epoch;
		e->m.snapshot.seq = s->seq;
		e->m.snapshot.n_filters = s->filter_count;
		e->m.snapshot.filters = s->filter_count ? filters : NULL;
		e->m.snapshot.last = s->last;
		fr->route_snapshot = &e->m.snapshot;
		return true;
	}
	case LINK_ROUTE_DELTA: {
		const struct link_route_delta *d = &f->delta;
		starling__link__route_delta__init(&e->m.delta);
		RouteChange *msgs =
		    enc_items(e, d->change_count, sizeof(RouteChange), e->stack.changes.msgs);
		if (!msgs)
			return false;
		RouteChange **ptrs = d->change_count <= ENC_STACK_ITEMS
		                         ? e->stack.changes.ptrs
		                         : (RouteChange **)(msgs + d->change_count);
		for (uint32_t i = 0; i < d->change_count; i++) {
			starling__link__route_change__init(&msgs[i]);
			msgs[i].filter = bin(d->changes[i].filter);
			msgs[i].add = d->changes[i].add;
			ptrs[i] = &msgs[i];
		}
		e->m.delta.epoch = d->epoch;
		e->m.delta.first_seq = d->first_seq;
		e->m.delta.n_changes = d->change_count;
		e->m.delta.changes = d->change_count ? ptrs : NULL;
		fr->route_delta = &e->m.delta;
		return true;
	}
	case LINK_PUBLISH_BATCH: {
		const struct link_publish_batch *b = &f->batch;
		starling__link__publish_batch__init(&e->m.batch);
		Publish *msgs = enc_items(e, b->count, sizeof(Publish), e->stack.pubs.msgs);
		if (!msgs)
			return false;
		Publish **ptrs = b->count <= ENC_STACK_ITEMS ? e->stack.pubs.ptrs
		                                             : (Publish **)(msgs + b->count);
		for (uint32_t i = 0; i < b->count; i++) {
			publish_out(&b->publishes[i], &msgs[i]);
			ptrs[i] = &msgs[i];
		}
		e->m.batch.n_publishes = b->count;
		e->m.batch.publishes = b->count ? ptrs : NULL;
		fr->publish_batch = &e->m.batch;
		return true;
	}
	case LINK_RETAINED_SET: {
		const struct link_retained_set *r = &f->retained_set;
		starling__link__retained_set__init(&e->m.rset);
		e->m.rset.topic = bin(r->topic);
		e->m.rset.body = bin(r->body);
		e->m.rset.version = r->version;
		e->m.rset.qos = r->qos;
		e->m.rset.wall_ms = r->wall_ms;
		e->m.rset.origin_node = (char *)(r->origin_node ? r->origin_node : "");
		fr->retained_set = &e->m.rset;
		return true;
	}
	case LINK_RETAINED_DELETE: {
		const struct link_retained_delete *r = &f->retained_delete;
		starling__link__retained_delete__init(&e->m.rdel);
		e->m.rdel.topic = bin(r->topic);
		e->m.rdel.wall_ms = r->wall_ms;
		e->m.rdel.origin_node = (char *)(r->origin_node ? r->origin_node : "");
		fr->retained_delete = &e->m.rdel;
		return true;
	}
	case LINK_NONE:
		break;
	}
	fr->body_case = STARLING__LINK__LINK_FRAME__BODY__NOT_SET;
	return true;
}

static size_t varint_size(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

size_t link_frame_size(const struct link_frame *f)
{
	struct enc e;
	if (!enc_fill(&e, f)) {
		free(e.heap);
		return SIZE_MAX; /* out of memory: too large to send */
	}
	size_t n = starling__link__link_frame__get_packed_size(&e.frame);
	free(e.heap);
	return LINK_HEADER_BYTES + n;
}

size_t link_publish_size(const struct link_publish *p)
{
	Publish m;
	publish_out(p, &m);
	size_t n = starling__link__publish__get_packed_size(&m);
	return 1 + varint_size(n) + n; /* PublishBatch.publishes is field 1: a 1-byte key */
}

void link_buf_init(struct link_buf *b, size_t bytes_max, uint32_t frame_bytes_max)
{
	CHECK(frame_bytes_max >= LINK_FRAME_BYTES_MIN && frame_bytes_max <= LINK_FRAME_BYTES_LIMIT);
	*b = (struct link_buf){.bytes_max = bytes_max, .frame_bytes_max = frame_bytes_max};
}

void link_buf_fini(struct link_buf *b)
{
	free(b->bytes);
	b->bytes = NULL;
	b->len = b->cap = 0;
}

void link_buf_consume(struct link_buf *b, size_t n)
{
	CHECK(n <= b->len);
	if (n < b->len)
		memmove(b->bytes, b->bytes + n, b->len - n);
	b->len -= n;
}

static bool buf_room(struct link_buf *b, size_t need)
{
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap * 2 : BUF_MIN_BYTES;
	if (cap < need)
		cap = need;
	if (cap > b->bytes_max)
		cap = b->bytes_max; /* need <= bytes_max: checked by the caller */
	uint8_t *p = realloc(b->bytes, cap);
	if (!p)
		return false;
	b->bytes = p;
	b->cap = cap;
	return true;
}

int link_encode(struct link_buf *b, const struct link_frame *f)
{
	if (link_frame_check(f) != LINK_OK)
		return -EINVAL;
	struct enc e;
	int rc = 0;
	if (!enc_fill(&e, f)) {
		rc = -ENOMEM;
		goto done;
	}
	size_t n = starling__link__link_frame__get_packed_size(&e.frame);
	if (n > b->frame_bytes_max) {
		rc = -EMSGSIZE;
		goto done;
	}
	CHECK(b->len <= b->bytes_max);
	if (LINK_HEADER_BYTES + n > b->bytes_max - b->len) {
		b->refused_full++;
		rc = -ENOBUFS;
		goto done;
	}
	if (!buf_room(b, b->len + LINK_HEADER_BYTES + n)) {
		rc = -ENOMEM;
		goto done;
	}
	uint8_t *at = b->bytes + b->len;
	at[0] = (uint8_t)(n >> 24);
	at[1] = (uint8_t)(n >> 16);
	at[2] = (uint8_t)(n >> 8);
	at[3] = (uint8_t)n;
	CHECK(starling__link__link_frame__pack(&e.frame, at + LINK_HEADER_BYTES) == n);
	b->len += LINK_HEADER_BYTES + n;
	b->frames++;
done:
	free(e.heap);
	return rc;
}

/* ---- the handshake's proof ------------------------------------------------ */

int link_proof_make(const uint8_t *secret, size_t secret_len,
                    const uint8_t peer_nonce[LINK_NONCE_BYTES], const char *node_name,
                    uint64_t epoch, struct link_hello_proof *out)
{
	*out = (struct link_hello_proof){0};
	if (!name_ok(node_name) || secret_len > LINK_SECRET_MAX)
		return -EINVAL;
	if (!secret || secret_len == 0)
		return 0; /* no secret: the empty proof */
	uint8_t msg[PROOF_LABEL_BYTES + LINK_NONCE_BYTES + LINK_NAME_MAX + 8];
	size_t n = 0, name_len = strlen(node_name);
	memcpy(msg, PROOF_LABEL, PROOF_LABEL_BYTES);
	n += PROOF_LABEL_BYTES;
	memcpy(msg + n, peer_nonce, LINK_NONCE_BYTES);
	n += LINK_NONCE_BYTES;
	memcpy(msg + n, node_name, name_len);
	n += name_len;
	for (int i = 7; i >= 0; i--)
		msg[n++] = (uint8_t)(epoch >> (8 * i));
	unsigned mac_len = 0;
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, msg, n, out->mac, &mac_len))
		return -ENOMEM;
	CHECK(mac_len == LINK_MAC_BYTES);
	out->mac_len = LINK_MAC_BYTES;
	return 0;
}

bool link_proof_check(const uint8_t *secret, size_t secret_len,
                      const uint8_t my_nonce[LINK_NONCE_BYTES], const struct link_hello *peer,
                      const struct link_hello_proof *proof)
{
	if (!secret || secret_len == 0)
		return proof->mac_len == 0; /* a peer with a secret we lack is misconfigured */
	if (proof->mac_len != LINK_MAC_BYTES)
		return false;
	struct link_hello_proof want;
	if (link_proof_make(secret, secret_len, my_nonce, peer->node_name, peer->epoch, &want) != 0)
		return false;
	return CRYPTO_memcmp(want.mac, proof->mac, LINK_MAC_BYTES) == 0;
}

/* ---- names ---------------------------------------------------------------- */

const char *link_kind_name(enum link_kind k)
{
	static const char *const names[LINK_KINDS] = {
	    "none",
	    "hello",
	    "ping",
	    "hello_proof",
	    "route_snapshot",
	    "route_delta",
	    "publish_batch",
	    "ack",
	    "retained_set",
	    "retained_delete",
	    "retained_snapshot_end",
	};
	return (unsigned)k < LINK_KINDS ? names[k] : "?";
}

const char *link_invalid_name(enum link_invalid why)
{
	static const char *const names[LINK_INVALID_REASONS] = {
	    "ok",       "too_large",  "syntax",    "no_body",   "too_many",
	    "bad_name", "bad_filter", "bad_topic", "bad_value", "no_memory",
	};
	return (unsigned)why < LINK_INVALID_REASONS ? names[why] : "?";
}
