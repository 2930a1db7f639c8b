/*
 * msg.h — an application message: one PUBLISH, decoded once, immutable and
 * reference-counted, shared by every subscriber on every worker it fans out
 * to (DESIGN.md "Messages"). The reference count is the only field that
 * changes after creation and the only state shared between workers.
 *
 * The wire bytes for a subscriber are encoded at send time from pub, since
 * packet id, QoS, DUP, topic alias, subscription ids and remaining expiry
 * differ per subscriber.
 */
#ifndef STARLING_CORE_MSG_H
#define STARLING_CORE_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "packet.h"
#include "session/sess_id.h"

struct msg {
	atomic_uint refs;        /* references; the last msg_unref() frees */
	uint32_t size_bytes;     /* bytes of data[], for memory accounting */
	uint64_t expires_at_ms;  /* monotonic deadline from Message Expiry; 0 = never */
	uint64_t created_ns;     /* monotonic, retain-flagged only (else 0); a retained
	                          * lookup older than this skips it */
	uint64_t wall_ms;        /* wall-clock time it was published, retain-flagged only
	                          * (else 0): with origin_node, the order of retained
	                          * values across nodes (last writer wins) */
	struct sess_id origin;   /* publishing session, for no-local */
	uint16_t origin_node;    /* the node it was published on: 0 = this one */
	bool forwarded;          /* it came from another node: delivered here, never
	                          * forwarded again */
	bool forwarded_shared;   /* and that node chose this one for its shared groups */
	bool recovered;          /* it came back from the journal after a restart: it may
	                          * have been sent before, so it goes with DUP set */
	uint64_t origin_rank;    /* retain-flagged only: a hash of the origin node's name, the
	                          * same on every node; with wall_ms it orders retained values
	                          * (last writer wins); 0 on a single node */
	uint64_t retain_stamp;   /* retain-flagged, persistence on: the node-wide order of
	                          * retained writes (the journal's too); 0 otherwise */
	uint64_t jstamp;         /* persistence on, QoS 1/2 reaching a journaled
	                          * subscription: its REC_MSG's stamp (set before it is
	                          * shared); 0 otherwise */
	uint8_t version;         /* protocol level of the publisher */
	struct mqtt_publish pub; /* views into data[]; pub.topic is the real
	                          * topic even when the publisher used an alias;
	                          * TOPIC_ALIAS and SUBSCRIPTION_ID are cleared
	                          * from pub.props.has */
	uint8_t data[];          /* topic, then the PUBLISH body as received */
};

/*
 * Copy a decoded PUBLISH (views into a receive buffer that is about to be
 * reused) into a new message with one reference. topic is the resolved
 * topic name. Returns NULL when out of memory.
 */
struct msg *msg_new(const struct mqtt_publish *p, uint8_t version, struct mqtt_view topic,
                    struct sess_id origin, uint64_t now_ms);

/*
 * A private copy of m with one reference and no journal stamp (jstamp 0):
 * for a delivery that is journaled on its own (persist/msg_journal.h),
 * since m's fields other than refs must not change once it is shared.
 * NULL when out of memory.
 */
struct msg *msg_copy(const struct msg *m);

static inline struct msg *msg_ref(struct msg *m)
{
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void msg_unref(struct msg *m);

/*
 * A message from a PUBLISH body as it was received (from the topic's
 * length prefix to the end of the payload; cluster links and the session
 * codec carry it so), the publisher's protocol version, QoS and retain
 * flag, and the resolved topic (the body's may be empty: a 5.0 alias).
 * The body is decoded like any PUBLISH. NULL when it does not decode, its
 * topic disagrees, or out of memory (errno EINVAL or ENOMEM).
 */
struct msg *msg_from_body(const uint8_t *body, size_t body_len, uint8_t version, uint8_t qos,
                          bool retain, struct mqtt_view topic, uint64_t now_ms);

/* Has the message outlived its Message Expiry Interval? */
static inline bool msg_expired(const struct msg *m, uint64_t now_ms)
{
	return m->expires_at_ms != 0 && now_ms >= m->expires_at_ms;
}

/* Seconds of expiry left to tell a subscriber (rounded up; at least 1). */
uint32_t msg_expiry_left_s(const struct msg *m, uint64_t now_ms);

#endif
