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

#define SET_FIXED      40 /* stamp, rank, wall, level, flags, expires, topic len, body len */
#define DEL_FIXED      26 /* stamp, rank, wall, topic len */
#define AT_SET_EXPIRES 26

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

void rec_retain_set_put(uint8_t *payload, const struct msg *m, uint64_t stamp, uint64_t now_ms,
                        uint64_t now_wall_ms)
{
	size_t topic_len = m->pub.topic.len, body_len = body_len_of(m);
	CHECK(topic_len <= UINT16_MAX && body_len <= UINT32_MAX);
	uint64_t at = 0;
	if (m->expires_at_ms != 0)
		at = m->expires_at_ms > now_ms ? now_wall_ms + (m->expires_at_ms - now_ms)
		                               : now_wall_ms;
	uint8_t *p = payload;
	put_be(p, stamp, 8);
	put_be(p + 8, m->origin_rank, 8);
	put_be(p + 16, m->wall_ms, 8);
	p[24] = m->version;
	p[25] = (uint8_t)(m->pub.qos | (m->pub.retain ? 4 : 0));
	put_be(p + AT_SET_EXPIRES, at, 8);
	put_be(p + 34, topic_len, 2);
	p += 36;
	memcpy(p, m->pub.topic.ptr, topic_len);
	p += topic_len;
	put_be(p, body_len, 4);
	if (body_len)
		memcpy(p + 4, m->data + topic_len, body_len);
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
	const uint8_t *p = payload;
	uint8_t version = p[24], flags = p[25], qos = flags & 3;
	uint64_t at = get_be(p + AT_SET_EXPIRES, 8);
	uint16_t topic_len = (uint16_t)get_be(p + 34, 2);
	/* topic, then the body's 4-byte length: both within len */
	if (len - SET_FIXED < topic_len)
		return -1;
	const uint8_t *topic = p + 36;
	uint32_t body_len = (uint32_t)get_be(topic + topic_len, 4);
	const uint8_t *body = topic + topic_len + 4;
	if (len - SET_FIXED - topic_len != body_len)
		return -1; /* short, or trailing bytes */
	struct mqtt_view tv = {topic, topic_len};
	if ((version != MQTT_V31 && version != MQTT_V311 && version != MQTT_V5) || qos > 2 ||
	    (flags & ~7u) || !mqtt_topic_name_valid(tv))
		return -1;
	struct msg *msg = msg_from_body(body, body_len, version, qos, (flags & 4) != 0, tv, now_ms);
	if (!msg)
		return -1; /* errno: EINVAL or ENOMEM */
	out->stamp = get_be(p, 8);
	out->origin_rank = get_be(p + 8, 8);
	out->wall_ms = get_be(p + 16, 8);
	out->topic = topic;
	out->topic_len = topic_len;
	out->expired = at != 0 && at <= now_wall_ms;
	if (out->expired) {
		msg_unref(msg);
		return 0;
	}
	msg->wall_ms = out->wall_ms;
	msg->origin_rank = out->origin_rank;
	msg->expires_at_ms = 0;
	if (at != 0) {
		uint64_t left_ms = at - now_wall_ms;
		msg->expires_at_ms = now_ms + (left_ms < EXPIRY_MAX_MS ? left_ms : EXPIRY_MAX_MS);
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

#define SESS_FIXED 10 /* stamp, client id length */

size_t rec_sess_size(size_t client_id_len, size_t enc_len)
{
	return SESS_FIXED + client_id_len + enc_len;
}

void rec_sess_put(uint8_t *payload, uint64_t stamp, const uint8_t *client_id, size_t client_id_len,
                  const uint8_t *enc, size_t enc_len)
{
	CHECK(client_id_len <= UINT16_MAX);
	put_be(payload, stamp, 8);
	put_be(payload + 8, client_id_len, 2);
	if (client_id_len)
		memcpy(payload + SESS_FIXED, client_id, client_id_len);
	if (enc_len)
		memcpy(payload + SESS_FIXED + client_id_len, enc, enc_len);
}

int rec_sess_get(const uint8_t *payload, size_t len, bool end, struct rec_sess *out)
{
	errno = EINVAL;
	if (len < SESS_FIXED)
		return -1;
	uint16_t cid_len = (uint16_t)get_be(payload + 8, 2);
	if (cid_len == 0 || len - SESS_FIXED < cid_len)
		return -1;
	size_t enc_len = len - SESS_FIXED - cid_len;
	if (end ? enc_len != 0 : enc_len == 0)
		return -1;
	out->stamp = get_be(payload, 8);
	out->client_id = payload + SESS_FIXED;
	out->client_id_len = cid_len;
	out->enc = enc_len ? payload + SESS_FIXED + cid_len : NULL;
	out->enc_len = enc_len;
	return 0;
}
