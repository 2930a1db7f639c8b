/*
 * record.c — the journal's bytes (record.h; core/persist/README.md "Record
 * format"): file headers, record framing and the retained-store payloads.
 * Pure: no I/O, no clocks, no globals; any thread.
 *
 * Invariants: a reader never reads past the bytes it is given, and accepts
 * only what a writer could have written (a record whose checksum holds; a
 * payload whose every length adds up to the bytes there, whose message the
 * MQTT codec rebuilds, with nothing left over). Writers get sizes from
 * their own *_size function and CHECK what the caller promised.
 */
#include "persist/record.h"

#include <errno.h>
#include <string.h>

#include "base/check.h"
#include "codec.h"
#include "persist/crc32c.h"
#include "route/msg.h"

static const uint8_t magic[8] = {'S', 'T', 'R', 'L', 'J', 'N', 'L', '1'};

/* Offsets in a record. */
#define AT_LEN     0
#define AT_CRC     4
#define AT_TYPE    8
#define AT_LSN     9
#define AT_WALL    17
#define AT_PAYLOAD (RECORD_HEAD + RECORD_FIXED)

_Static_assert(AT_PAYLOAD == 25, "the payload starts 25 bytes in");
_Static_assert(RECORD_LEN_MAX <= UINT32_MAX - RECORD_HEAD, "a record's size fits in 32 bits");

static void put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- a file's header ----------------------------------------------------- */

void journal_header_put(uint8_t out[JOURNAL_HEADER_BYTES], const struct journal_header *h)
{
	memcpy(out, magic, sizeof(magic));
	put_be(out + 8, h->version, 4);
	put_be(out + 12, h->writer, 2);
	put_be(out + 14, h->kind, 2);
	put_be(out + 16, h->segment, 8);
	put_be(out + 24, h->created_wall_ms, 8);
	put_be(out + 32, 0, 4);
	put_be(out + 36, crc32c(0, out, 36), 4);
}

int journal_header_get(const uint8_t *p, size_t n, struct journal_header *h)
{
	if (n < JOURNAL_HEADER_BYTES || memcmp(p, magic, sizeof(magic)) != 0 ||
	    get_be(p + 36, 4) != crc32c(0, p, 36))
		return -1;
	uint32_t version = (uint32_t)get_be(p + 8, 4);
	if (version != JOURNAL_VERSION)
		return -1;
	h->version = version;
	h->writer = (uint16_t)get_be(p + 12, 2);
	h->kind = (uint16_t)get_be(p + 14, 2);
	h->segment = get_be(p + 16, 8);
	h->created_wall_ms = get_be(p + 24, 8);
	return 0;
}

/* ---- a record's framing -------------------------------------------------- */

uint8_t *record_payload(uint8_t *rec)
{
	return rec + AT_PAYLOAD;
}

/* The checksum of a record whose len is len: the length's 4 bytes, then
 * the len bytes after the crc field (the crc field itself skipped). */
static uint32_t record_crc(const uint8_t *rec, uint32_t len)
{
	return crc32c(crc32c(0, rec + AT_LEN, 4), rec + AT_TYPE, len);
}

void record_seal(uint8_t *rec, size_t total, uint8_t type, uint64_t lsn, uint64_t wall_ms)
{
	CHECK(total >= RECORD_HEAD + RECORD_FIXED && total - RECORD_HEAD <= RECORD_LEN_MAX);
	uint32_t len = (uint32_t)(total - RECORD_HEAD);
	put_be(rec + AT_LEN, len, 4);
	rec[AT_TYPE] = type;
	put_be(rec + AT_LSN, lsn, 8);
	put_be(rec + AT_WALL, wall_ms, 8);
	put_be(rec + AT_CRC, record_crc(rec, len), 4);
}

enum record_result record_read(const uint8_t *p, size_t n, struct record *out)
{
	if (n < 4)
		return RECORD_TORN;
	uint32_t len = (uint32_t)get_be(p + AT_LEN, 4);
	if (len < RECORD_FIXED || len > RECORD_LEN_MAX)
		return RECORD_CORRUPT;
	if (n < RECORD_HEAD || n - RECORD_HEAD < len)
		return RECORD_TORN;
	if (get_be(p + AT_CRC, 4) != record_crc(p, len))
		return RECORD_CORRUPT;
	out->type = p[AT_TYPE];
	out->lsn = get_be(p + AT_LSN, 8);
	out->wall_ms = get_be(p + AT_WALL, 8);
	out->payload = p + AT_PAYLOAD;
	out->payload_len = len - RECORD_FIXED;
	out->total = RECORD_HEAD + (size_t)len;
	return RECORD_OK;
}

/* ---- retained-store payloads --------------------------------------------- */

#define SET_FIXED 40 /* stamp, rank, wall, level, flags, expires, topic len, body len */
#define DEL_FIXED 26 /* stamp, rank, wall, topic len */

/* The longest Message Expiry Interval, 2^32-1 s [MQTT-3.3.2.3.3]. */
#define EXPIRY_MAX_MS ((uint64_t)UINT32_MAX * 1000)

static size_t body_len_of(const struct msg *m)
{
	/* The body was copied whole behind the topic (msg.c). */
	return m->size_bytes - sizeof(*m) - m->pub.topic.len;
}

size_t rec_retain_set_size(const struct msg *m)
{
	return SET_FIXED + m->pub.topic.len + body_len_of(m);
}

static size_t msg_part_size(const struct msg *m);

/* A message as REC_RETAIN_SET and REC_MSG write it: u8 level, u8 flags,
 * u64 expires at (wall), u16 topic length, topic, u32 body length, body. */
#define MSG_FIXED 16

static size_t msg_part_size(const struct msg *m)
{
	return MSG_FIXED + m->pub.topic.len + body_len_of(m);
}

static uint8_t *msg_part_put(uint8_t *p, const struct msg *m, uint64_t now_ms, uint64_t now_wall_ms)
{
	size_t topic_len = m->pub.topic.len, body_len = body_len_of(m);
	CHECK(topic_len <= UINT16_MAX && body_len <= UINT32_MAX);
	uint64_t at = 0;
	if (m->expires_at_ms != 0)
		at = m->expires_at_ms > now_ms ? now_wall_ms + (m->expires_at_ms - now_ms)
		                               : now_wall_ms;
	p[0] = m->version;
	p[1] = (uint8_t)(m->pub.qos | (m->pub.retain ? 4 : 0));
	put_be(p + 2, at, 8);
	put_be(p + 10, topic_len, 2);
	p += 12;
	memcpy(p, m->pub.topic.ptr, topic_len);
	p += topic_len;
	put_be(p, body_len, 4);
	if (body_len)
		memcpy(p + 4, m->data + topic_len, body_len);
	return p + 4 + body_len;
}

struct msg_part {
	const uint8_t *topic;
	uint16_t topic_len;
	size_t used;  /* bytes of the part */
	bool expired; /* no message made */
};

/* Read the message at p (at most len bytes, maybe followed by more): 0 with
 * *m (NULL when expired), or -1 (errno EINVAL or ENOMEM). */
static int msg_part_get(const uint8_t *p, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                        struct msg_part *out, struct msg **m)
{
	*m = NULL;
	errno = EINVAL;
	if (len < MSG_FIXED)
		return -1;
	uint8_t version = p[0], flags = p[1], qos = flags & 3;
	uint64_t at = get_be(p + 2, 8);
	uint16_t topic_len = (uint16_t)get_be(p + 10, 2);
	/* topic, then the body's 4-byte length: both within len */
	if (len - MSG_FIXED < topic_len)
		return -1;
	const uint8_t *topic = p + 12;
	uint32_t body_len = (uint32_t)get_be(topic + topic_len, 4);
	const uint8_t *body = topic + topic_len + 4;
	if (len - MSG_FIXED - topic_len < body_len)
		return -1;
	struct mqtt_view tv = {topic, topic_len};
	if ((version != MQTT_V31 && version != MQTT_V311 && version != MQTT_V5) || qos > 2 ||
	    (flags & ~7u) || !mqtt_topic_name_valid(tv))
		return -1;
	struct msg *msg = msg_from_body(body, body_len, version, qos, (flags & 4) != 0, tv, now_ms);
	if (!msg)
		return -1; /* errno: EINVAL or ENOMEM */
	out->topic = topic;
	out->topic_len = topic_len;
	out->used = MSG_FIXED + (size_t)topic_len + body_len;
	out->expired = at != 0 && at <= now_wall_ms;
	if (out->expired) {
		msg_unref(msg);
		return 0;
	}
	msg->expires_at_ms = 0;
	if (at != 0) {
		uint64_t left_ms = at - now_wall_ms;
		msg->expires_at_ms = now_ms + (left_ms < EXPIRY_MAX_MS ? left_ms : EXPIRY_MAX_MS);
	}
	*m = msg;
	return 0;
}

void rec_retain_set_put(uint8_t *payload, const struct msg *m, uint64_t stamp, uint64_t now_ms,
                        uint64_t now_wall_ms)
{
	put_be(payload, stamp, 8);
	put_be(payload + 8, m->origin_rank, 8);
	put_be(payload + 16, m->wall_ms, 8);
	msg_part_put(payload + 24, m, now_ms, now_wall_ms);
}

size_t rec_retain_del_size(size_t topic_len)
{
	return DEL_FIXED + topic_len;
}

void rec_retain_del_put(uint8_t *payload, const uint8_t *topic, size_t topic_len, uint64_t stamp,
                        uint64_t origin_rank, uint64_t wall_ms)
{
	CHECK(topic_len <= UINT16_MAX);
	put_be(payload, stamp, 8);
	put_be(payload + 8, origin_rank, 8);
	put_be(payload + 16, wall_ms, 8);
	put_be(payload + 24, topic_len, 2);
	if (topic_len)
		memcpy(payload + DEL_FIXED, topic, topic_len);
}

int rec_retain_set_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                       struct rec_retain *out, struct msg **m)
{
	*m = NULL;
	errno = EINVAL;
	if (len < SET_FIXED)
		return -1;
	struct msg_part part;
	struct msg *msg;
	if (msg_part_get(payload + 24, len - 24, now_ms, now_wall_ms, &part, &msg) != 0)
		return -1;
	if (part.used != len - 24) { /* trailing bytes */
		if (msg)
			msg_unref(msg);
		errno = EINVAL;
		return -1;
	}
	out->stamp = get_be(payload, 8);
	out->origin_rank = get_be(payload + 8, 8);
	out->wall_ms = get_be(payload + 16, 8);
	out->topic = part.topic;
	out->topic_len = part.topic_len;
	out->expired = part.expired;
	if (msg) {
		msg->wall_ms = out->wall_ms;
		msg->origin_rank = out->origin_rank;
	}
	*m = msg;
	return 0;
}

int rec_retain_del_get(const uint8_t *payload, size_t len, struct rec_retain *out)
{
	errno = EINVAL;
	if (len < DEL_FIXED)
		return -1;
	uint16_t topic_len = (uint16_t)get_be(payload + 24, 2);
	const uint8_t *topic = payload + DEL_FIXED;
	if (len - DEL_FIXED != topic_len ||
	    !mqtt_topic_name_valid((struct mqtt_view){topic, topic_len}))
		return -1;
	out->stamp = get_be(payload, 8);
	out->origin_rank = get_be(payload + 8, 8);
	out->wall_ms = get_be(payload + 16, 8);
	out->topic = topic;
	out->topic_len = topic_len;
	out->expired = false;
	return 0;
}

/* ---- session payloads ---------------------------------------------------- */

#define SESS_FIXED   10 /* stamp, client id length */
#define PLACED_FIXED 28 /* stamp, run, worker, slot, generation, client id length */

size_t rec_sess_size(size_t client_id_len, size_t enc_len, bool placed)
{
	return (placed ? PLACED_FIXED : SESS_FIXED) + client_id_len + enc_len;
}

void rec_sess_put(uint8_t *payload, uint64_t stamp, const struct rec_place *place,
                  const uint8_t *client_id, size_t client_id_len, const uint8_t *enc,
                  size_t enc_len)
{
	CHECK(client_id_len <= UINT16_MAX);
	uint8_t *p = payload;
	put_be(p, stamp, 8);
	p += 8;
	if (place) {
		put_be(p, place->run, 8);
		put_be(p + 8, place->id.worker, 2);
		put_be(p + 10, place->id.slot, 4);
		put_be(p + 14, place->id.gen, 4);
		p += 18;
	}
	put_be(p, client_id_len, 2);
	if (client_id_len)
		memcpy(p + 2, client_id, client_id_len);
	if (enc_len)
		memcpy(p + 2 + client_id_len, enc, enc_len);
}

int rec_sess_get(const uint8_t *payload, size_t len, uint8_t type, struct rec_sess *out)
{
	errno = EINVAL;
	bool placed = type == REC_SESS_PLACED, end = type == REC_SESS_END;
	size_t fixed = placed ? PLACED_FIXED : SESS_FIXED;
	if (len < fixed)
		return -1;
	out->stamp = get_be(payload, 8);
	out->place = (struct rec_place){0};
	if (placed) {
		out->place.run = get_be(payload + 8, 8);
		out->place.id.worker = (uint16_t)get_be(payload + 16, 2);
		out->place.id.slot = (uint32_t)get_be(payload + 18, 4);
		out->place.id.gen = (uint32_t)get_be(payload + 22, 4);
		if (out->place.run == 0 || out->place.id.gen == 0 ||
		    out->place.id.worker == SESS_WORKER_NODE)
			return -1;
	}
	uint16_t cid_len = (uint16_t)get_be(payload + fixed - 2, 2);
	if (cid_len == 0 || len - fixed < cid_len)
		return -1;
	size_t enc_len = len - fixed - cid_len;
	if (end ? enc_len != 0 : enc_len == 0)
		return -1;
	out->client_id = payload + fixed;
	out->client_id_len = cid_len;
	out->enc = enc_len ? payload + fixed + cid_len : NULL;
	out->enc_len = enc_len;
	return 0;
}

/* ---- message payloads ---------------------------------------------------- */

#define MSGREC_FIXED 18 /* stamp, run, the target count */

_Static_assert(REC_MSG_TARGET_BYTES == 2 + 4 + 4 + 1 + 1 + 4,
               "a target is worker, slot, generation, QoS, flags, subscription id");

size_t rec_msg_size(const struct msg *m, size_t n)
{
	return MSGREC_FIXED + msg_part_size(m) + n * REC_MSG_TARGET_BYTES;
}

void rec_msg_put(uint8_t *payload, const struct msg *m, uint64_t stamp, uint64_t run,
                 const struct rec_msg_target *t, size_t n, uint64_t now_ms, uint64_t now_wall_ms)
{
	CHECK(n <= REC_MSG_TARGETS_MAX);
	put_be(payload, stamp, 8);
	put_be(payload + 8, run, 8);
	uint8_t *p = msg_part_put(payload + 16, m, now_ms, now_wall_ms);
	put_be(p, n, 2);
	p += 2;
	for (size_t i = 0; i < n; i++, p += REC_MSG_TARGET_BYTES) {
		put_be(p, t[i].id.worker, 2);
		put_be(p + 2, t[i].id.slot, 4);
		put_be(p + 6, t[i].id.gen, 4);
		p[10] = t[i].qos;
		p[11] = t[i].flags;
		put_be(p + 12, t[i].sub_id, 4);
	}
}

void rec_msg_target(const struct rec_msg *r, uint16_t i, struct rec_msg_target *t)
{
	const uint8_t *p = r->targets + (size_t)i * REC_MSG_TARGET_BYTES;
	t->id.worker = (uint16_t)get_be(p, 2);
	t->id.slot = (uint32_t)get_be(p + 2, 4);
	t->id.gen = (uint32_t)get_be(p + 6, 4);
	t->qos = p[10];
	t->flags = p[11];
	t->sub_id = (uint32_t)get_be(p + 12, 4);
}

int rec_msg_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                struct rec_msg *out, struct msg **m)
{
	*m = NULL;
	errno = EINVAL;
	if (len < MSGREC_FIXED)
		return -1;
	struct msg_part part;
	struct msg *msg;
	if (msg_part_get(payload + 16, len - 16, now_ms, now_wall_ms, &part, &msg) != 0)
		return -1;
	size_t left = len - 16 - part.used;
	const uint8_t *p = payload + 16 + part.used;
	uint16_t n = left >= 2 ? (uint16_t)get_be(p, 2) : 0;
	bool ok = left >= 2 && n > 0 && n <= REC_MSG_TARGETS_MAX &&
	          left - 2 == (size_t)n * REC_MSG_TARGET_BYTES;
	out->stamp = get_be(payload, 8);
	out->run = get_be(payload + 8, 8);
	out->targets = p + 2;
	out->n = n;
	out->expired = part.expired;
	for (uint16_t i = 0; ok && i < n; i++) {
		struct rec_msg_target t;
		rec_msg_target(out, i, &t);
		ok = t.qos >= 1 && t.qos <= 2 && !(t.flags & ~3u) && t.id.gen != 0 &&
		     t.id.worker != SESS_WORKER_NODE;
	}
	if (!ok || out->stamp == 0 || out->run == 0) {
		if (msg)
			msg_unref(msg);
		errno = EINVAL;
		return -1;
	}
	*m = msg;
	return 0;
}

#define IN_FIXED 4 /* packet id, client id length */

size_t rec_msg_in_size(const struct msg *m, size_t n, size_t client_id_len)
{
	return IN_FIXED + client_id_len + rec_msg_size(m, n);
}

void rec_msg_in_put(uint8_t *payload, const struct rec_inbound *in, const struct msg *m,
                    uint64_t stamp, uint64_t run, const struct rec_msg_target *t, size_t n,
                    uint64_t now_ms, uint64_t now_wall_ms)
{
	CHECK(in->pid > 0 && in->client_id_len > 0);
	put_be(payload, in->pid, 2);
	put_be(payload + 2, in->client_id_len, 2);
	memcpy(payload + IN_FIXED, in->client_id, in->client_id_len);
	rec_msg_put(payload + IN_FIXED + in->client_id_len, m, stamp, run, t, n, now_ms,
	            now_wall_ms);
}

int rec_msg_in_get(const uint8_t *payload, size_t len, uint64_t now_ms, uint64_t now_wall_ms,
                   struct rec_inbound *in, struct rec_msg *out, struct msg **m)
{
	*m = NULL;
	errno = EINVAL;
	if (len < IN_FIXED)
		return -1;
	in->pid = (uint16_t)get_be(payload, 2);
	in->client_id_len = (uint16_t)get_be(payload + 2, 2);
	in->client_id = payload + IN_FIXED;
	if (in->pid == 0 || in->client_id_len == 0 || len - IN_FIXED < in->client_id_len)
		return -1;
	size_t at = IN_FIXED + in->client_id_len;
	return rec_msg_get(payload + at, len - at, now_ms, now_wall_ms, out, m);
}

#define DONE_FIXED 10 /* stamp, client id length */

size_t rec_msg_done_size(size_t client_id_len)
{
	return DONE_FIXED + client_id_len;
}

void rec_msg_done_put(uint8_t *payload, uint64_t stamp, const uint8_t *client_id,
                      size_t client_id_len)
{
	CHECK(client_id_len > 0 && client_id_len <= UINT16_MAX);
	put_be(payload, stamp, 8);
	put_be(payload + 8, client_id_len, 2);
	memcpy(payload + DONE_FIXED, client_id, client_id_len);
}

int rec_msg_done_get(const uint8_t *payload, size_t len, struct rec_msg_done *out)
{
	errno = EINVAL;
	if (len < DONE_FIXED)
		return -1;
	uint16_t cid_len = (uint16_t)get_be(payload + 8, 2);
	if (cid_len == 0 || len - DONE_FIXED != cid_len || get_be(payload, 8) == 0)
		return -1;
	out->stamp = get_be(payload, 8);
	out->client_id = payload + DONE_FIXED;
	out->client_id_len = cid_len;
	return 0;
}

size_t rec_release_size(size_t client_id_len, bool with_msg)
{
	return (with_msg ? 20 : 12) + client_id_len;
}

void rec_release_put(uint8_t *payload, const struct rec_release *r, bool with_msg)
{
	CHECK(r->client_id_len > 0 && r->pid > 0);
	uint8_t *p = payload;
	put_be(p, r->stamp, 8);
	p += 8;
	if (with_msg) {
		put_be(p, r->msg_stamp, 8);
		p += 8;
	}
	put_be(p, r->pid, 2);
	put_be(p + 2, r->client_id_len, 2);
	memcpy(p + 4, r->client_id, r->client_id_len);
}

int rec_release_get(const uint8_t *payload, size_t len, bool with_msg, struct rec_release *out)
{
	errno = EINVAL;
	size_t fixed = with_msg ? 20 : 12;
	if (len < fixed)
		return -1;
	const uint8_t *p = payload + fixed - 4;
	out->stamp = get_be(payload, 8);
	out->msg_stamp = with_msg ? get_be(payload + 8, 8) : 0;
	out->pid = (uint16_t)get_be(p, 2);
	out->client_id_len = (uint16_t)get_be(p + 2, 2);
	out->client_id = payload + fixed;
	if (out->stamp == 0 || out->pid == 0 || out->client_id_len == 0 ||
	    len - fixed != out->client_id_len)
		return -1;
	return 0;
}
