/*
 * link_wire.h — the frames between two nodes over one TCP connection
 * (../shared/DESIGN.md "A cluster", "Link"; proto/link.proto): a 4-byte
 * big-endian length, then one encoded LinkFrame. What a frame means to
 * the link (handshake, routes, forwarding, retained replication) belongs to
 * the link's state machine; this file only turns frames into bytes and
 * bytes into frames, and refuses whatever is out of bounds.
 *
 * Pure: no sockets, no clock, no threads, no randomness (the caller brings
 * the nonces). One thread owns a decoder or a buffer; the functions keep no
 * state of their own, so any thread may call them on its own objects.
 *
 *     struct link_decoder d;  link_decoder_init(&d, LINK_FRAME_BYTES_DEFAULT);
 *     on bytes received:
 *         size_t off = 0;
 *         while (off < len) {
 *             size_t used;  struct link_frame f;
 *             enum link_status st = link_decode(&d, bytes + off, len - off, &used, &f);
 *             off += used;
 *             if (st == LINK_NEED_MORE) break;      // all of it is kept
 *             if (st == LINK_INVALID) close the link (d.why says why);
 *             act on f;  link_frame_free(&f);
 *         }
 *
 *     struct link_buf out;  link_buf_init(&out, bytes_max, LINK_FRAME_BYTES_DEFAULT);
 *     link_encode(&out, &(struct link_frame){.kind = LINK_ACK, .ack = {.up_to = 7}});
 *     send out.bytes[0 .. out.len), then link_buf_consume(&out, sent);
 *
 * The generated protobuf-c code stays inside link_wire.c: frames are the
 * plain structs below. A decoded frame's strings and views point into
 * memory the frame holds until link_frame_free; a frame to encode points
 * wherever its caller likes.
 *
 * Bounds (checked on decode, and on encode so a node never sends what its
 * peers refuse): frames at most the receiver's frame_bytes_max (default
 * 16 MiB, announced lengths beyond are refused before anything is
 * buffered); names 1..LINK_NAME_MAX printable ASCII; topics and filters
 * 1..65,535 bytes of UTF-8 that core/codec accepts (mqtt_topic_name_valid,
 * mqtt_topic_filter_check); QoS <= 2; protocol versions 3, 4, 5; counts per
 * frame below; and, before protobuf-c allocates anything, at most
 * LINK_FIELDS_MAX protobuf fields in a frame, so a frame of tiny fields
 * cannot make its decoding cost many times its size.
 */
#ifndef STARLING_CLUSTER_LINK_WIRE_H
#define STARLING_CLUSTER_LINK_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "view.h"

#define LINK_VERSION              1           /* Hello.link_version we speak */
#define LINK_HEADER_BYTES         4           /* the big-endian length before a frame */
#define LINK_FRAME_BYTES_DEFAULT  (16u << 20) /* frame_bytes_max unless configured */
#define LINK_FRAME_BYTES_MIN      256         /* a Hello with the longest names fits */
#define LINK_FRAME_BYTES_LIMIT    (1u << 30)  /* frame_bytes_max, at most */
#define LINK_NAME_MAX             64          /* bytes of a cluster, node or origin name */
#define LINK_NONCE_BYTES          16
#define LINK_MAC_BYTES            32         /* HMAC-SHA256 */
#define LINK_SECRET_MAX           64         /* bytes of the cluster secret */
#define LINK_WORKERS_MAX          1024       /* Hello.workers, at most */
#define LINK_TOPIC_BYTES_MAX      65535      /* a topic name or filter (MQTT's u16 length) */
#define LINK_BODY_BYTES_MAX       268435455u /* a PUBLISH body: MQTT's largest remaining length */
#define LINK_SNAPSHOT_FILTERS_MAX 8192       /* filters in one RouteSnapshot frame */
#define LINK_DELTA_CHANGES_MAX    8192       /* changes in one RouteDelta frame */
#define LINK_BATCH_PUBLISHES_MAX  4096       /* publishes in one PublishBatch frame */
#define LINK_FIELDS_MAX           65536      /* protobuf fields in one frame, all depths */
/* A RouteSnapshot of n filters of b bytes in all encodes within
 * b + n * LINK_FILTER_OVERHEAD_BYTES + LINK_FRAME_OVERHEAD_BYTES, and so
 * does a RouteDelta of n changes (a change of a 65,535-byte filter spends
 * 10 bytes on keys, lengths and its flag): the caller sizes its chunks by it. */
#define LINK_FILTER_OVERHEAD_BYTES 10
#define LINK_FRAME_OVERHEAD_BYTES  64

enum link_kind {
	LINK_NONE = 0, /* no frame (a failed or finished decode) */
	LINK_HELLO = 1,
	LINK_PING = 2,
	LINK_HELLO_PROOF = 3,
	LINK_ROUTE_SNAPSHOT = 4,
	LINK_ROUTE_DELTA = 5,
	LINK_PUBLISH_BATCH = 6,
	LINK_ACK = 7,
	LINK_RETAINED_SET = 8,
	LINK_RETAINED_DELETE = 9,
	LINK_RETAINED_SNAPSHOT_END = 10,
};
#define LINK_KINDS 11

/* Why a frame (and with it the stream) was refused. */
enum link_invalid {
	LINK_OK = 0,
	LINK_TOO_LARGE,  /* the announced length is beyond frame_bytes_max */
	LINK_SYNTAX,     /* not a LinkFrame: protobuf does not parse, or a field of a wrong type */
	LINK_NO_BODY,    /* a LinkFrame with no message we know (empty, or a newer version's) */
	LINK_TOO_MANY,   /* more fields, filters, changes or publishes than a frame may hold */
	LINK_BAD_NAME,   /* a cluster, node or origin name empty, too long or not printable */
	LINK_BAD_FILTER, /* not a valid MQTT topic filter */
	LINK_BAD_TOPIC,  /* not a valid MQTT topic name, or a body that disagrees with it */
	LINK_BAD_VALUE,  /* another value out of its range (QoS, version, nonce, mac, seq, ...) */
	LINK_NO_MEMORY,  /* out of memory while decoding */
};
#define LINK_INVALID_REASONS 10

struct link_hello {
	const char *cluster_name;
	const char *node_name;
	uint64_t epoch;        /* the sender's boot epoch */
	uint32_t link_version; /* >= 1; whether we speak it is the handshake's call */
	uint32_t workers;      /* 1..LINK_WORKERS_MAX */
	uint32_t worker;       /* the sending worker, < workers */
	uint8_t nonce[LINK_NONCE_BYTES];
};

struct link_hello_proof {
	uint8_t mac_len; /* 0 (no secret) or LINK_MAC_BYTES */
	uint8_t mac[LINK_MAC_BYTES];
};

struct link_ping {
	uint64_t seq;
	bool ack;
};

struct link_route_snapshot {
	uint64_t epoch;
	uint64_t seq; /* the origin's route sequence number it is current as of */
	const struct mqtt_view *filters; /* filter_count valid filters */
	uint32_t filter_count;           /* <= LINK_SNAPSHOT_FILTERS_MAX */
	bool last;                       /* the snapshot's last frame */
};

struct link_route_change {
	struct mqtt_view filter;
	bool add; /* false: removed */
};

struct link_route_delta {
	uint64_t epoch;
	uint64_t first_seq; /* >= 1; changes[i] is number first_seq + i */
	const struct link_route_change *changes;
	uint32_t change_count; /* 1..LINK_DELTA_CHANGES_MAX */
};

struct link_publish {
	uint64_t link_seq; /* 0 exactly when qos is 0 */
	uint8_t version;   /* protocol level of the publisher: 3, 4, 5 */
	uint8_t qos;       /* 0..2 */
	bool retain;
	struct mqtt_view topic;  /* the resolved topic name */
	struct mqtt_view body;   /* the PUBLISH body as received (topic length prefix .. payload) */
	uint64_t expiry_left_ms; /* 0 = no Message Expiry */
	uint64_t wall_ms;        /* retained: wall-clock publish time; else 0 */
	const char *origin_node; /* the node it was published on */
	bool shared;             /* the sender chose this node for the topic's shared groups */
	bool store_only;         /* retained replication: the retained store only, numbered */
};

struct link_publish_batch {
	const struct link_publish *publishes;
	uint32_t count; /* 1..LINK_BATCH_PUBLISHES_MAX */
};

struct link_ack {
	uint64_t up_to; /* every link_seq <= up_to arrived */
};

struct link_retained_set {
	struct mqtt_view topic;
	struct mqtt_view body; /* as in struct link_publish */
	uint8_t version;       /* 3, 4, 5 */
	uint8_t qos;           /* 0..2 */
	uint64_t wall_ms;      /* with origin_node: last writer wins */
	const char *origin_node;
};

struct link_retained_delete {
	struct mqtt_view topic;
	uint64_t wall_ms;
	const char *origin_node;
};

/* One frame: kind says which member is meaningful (LINK_RETAINED_SNAPSHOT_END
 * has none). */
struct link_frame {
	enum link_kind kind;
	union {
		struct link_hello hello;
		struct link_ping ping;
		struct link_hello_proof proof;
		struct link_route_snapshot snapshot;
		struct link_route_delta delta;
		struct link_publish_batch batch;
		struct link_ack ack;
		struct link_retained_set retained_set;
		struct link_retained_delete retained_delete;
	};
	void *hold; /* decoded: what the pointers above point into; NULL otherwise */
};

/* Release what a decoded frame holds (no-op for one the caller built);
 * the frame is LINK_NONE afterwards. */
void link_frame_free(struct link_frame *f);

/* LINK_OK when every value of f is within the bounds above (the encoder's
 * and the decoder's check). */
enum link_invalid link_frame_check(const struct link_frame *f);

/* ---- decoding --------------------------------------------------------- */

enum link_status {
	LINK_NEED_MORE = 0, /* every byte handed in is kept; hand in more */
	LINK_FRAME = 1,     /* a frame is out; bytes after *used are not read yet */
	LINK_INVALID = 2,   /* the stream is refused (why); every later call says so too */
};

/*
 * A resumable decoder of one direction of one link. It buffers at most
 * one partial frame: the 4-byte length, then (once the length is known to
 * be within frame_bytes_max) the frame's bytes as they arrive. A frame
 * that arrives whole in one call is decoded in place, not copied. The
 * fields are the decoder's; callers read why and the counters.
 */
struct link_decoder {
	uint32_t frame_bytes_max;        /* longer announced frames are refused unread */
	uint8_t head[LINK_HEADER_BYTES]; /* the length prefix, as it arrives */
	uint8_t head_len;                /* bytes of head received */
	uint8_t *buf;                    /* the partial frame; NULL until one spans calls */
	uint32_t buf_len;                /* bytes of it received */
	uint32_t buf_cap;                /* bytes allocated, <= frame_bytes_max */
	enum link_invalid why;           /* LINK_OK until the stream is refused */
	uint64_t frames;                 /* frames decoded */
	uint64_t bytes;                  /* bytes consumed */
};

/* frame_bytes_max in LINK_FRAME_BYTES_MIN..LINK_FRAME_BYTES_LIMIT. */
void link_decoder_init(struct link_decoder *d, uint32_t frame_bytes_max);
void link_decoder_fini(struct link_decoder *d);

/*
 * Hand in received bytes. *used is how many were consumed: all of them on
 * LINK_NEED_MORE, up to the end of the frame on LINK_FRAME (call again with
 * the rest), none or some on LINK_INVALID. On LINK_FRAME, *out is a frame
 * to release with link_frame_free; otherwise out->kind is LINK_NONE.
 */
enum link_status link_decode(struct link_decoder *d, const uint8_t *bytes, size_t len, size_t *used,
                             struct link_frame *out);

/* Decode one frame's bytes (after the length prefix). LINK_OK and *out
 * to release, or why not (out->kind is then LINK_NONE). */
enum link_invalid link_frame_decode(const uint8_t *bytes, size_t len, struct link_frame *out);

/* ---- encoding --------------------------------------------------------- */

/* Frames waiting to be sent, growing up to bytes_max and never beyond. */
struct link_buf {
	uint8_t *bytes;           /* framed messages, oldest first */
	size_t len;               /* bytes in use */
	size_t cap;               /* bytes allocated */
	size_t bytes_max;         /* len never exceeds it */
	uint32_t frame_bytes_max; /* the peer's frame limit: larger frames are refused */
	uint64_t frames;          /* frames appended */
	uint64_t refused_full;    /* frames refused because bytes_max would be passed */
};

void link_buf_init(struct link_buf *b, size_t bytes_max, uint32_t frame_bytes_max);
void link_buf_fini(struct link_buf *b);
/* n bytes from the front were sent. */
void link_buf_consume(struct link_buf *b, size_t n);

/*
 * Append f, framed. 0; -EINVAL: f is out of bounds (link_frame_check says
 * why); -EMSGSIZE: it encodes beyond frame_bytes_max; -ENOBUFS: it would
 * take the buffer beyond bytes_max (counted in refused_full); -ENOMEM. On
 * error nothing is appended.
 */
int link_encode(struct link_buf *b, const struct link_frame *f);

/* Bytes f takes framed (length prefix included), unchecked. */
size_t link_frame_size(const struct link_frame *f);
/* Bytes one publish adds to a PublishBatch frame: sum them (plus
 * LINK_FRAME_OVERHEAD_BYTES) to fill a batch up to the frame limit. */
size_t link_publish_size(const struct link_publish *p);

/* ---- the handshake's proof ---------------------------------------------- */

/*
 * The proof a node sends in answer to a peer's Hello:
 *   HMAC-SHA256(secret, "starling-link-v1" || peer_nonce || node_name || epoch as u64 BE)
 * with its own node_name and epoch. Without a secret (NULL or 0 bytes) the
 * proof is empty. 0, -EINVAL (a name or secret out of bounds) or -ENOMEM.
 */
int link_proof_make(const uint8_t *secret, size_t secret_len,
                    const uint8_t peer_nonce[LINK_NONCE_BYTES], const char *node_name,
                    uint64_t epoch, struct link_hello_proof *out);

/*
 * Does proof come from a holder of secret, made for our nonce (the one in
 * the Hello we sent on this link) and for the name and epoch the peer's
 * Hello claims? Compared in constant time. Without a secret only an empty
 * proof is accepted; with one, only the right 32 bytes.
 */
bool link_proof_check(const uint8_t *secret, size_t secret_len,
                      const uint8_t my_nonce[LINK_NONCE_BYTES], const struct link_hello *peer,
                      const struct link_hello_proof *proof);

const char *link_kind_name(enum link_kind k);
const char *link_invalid_name(enum link_invalid why);

#endif
