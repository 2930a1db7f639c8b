/*
 * codec.c — the encoded session (session.h: session_encode, session_decode):
 * one stable binary form for what a session keeps across connections, used
 * by takeover across workers, and next by the journal and by takeover
 * across nodes. Pure: no I/O; any thread, on a session it owns.
 *
 * Format (all integers big-endian, version 1):
 *
 *   u8  format version (1)
 *   u16 client id length, bytes
 *   u8  has user name (0/1); if 1: u16 length, bytes
 *   u32 session expiry interval (s)      u8  protocol level
 *   u16 next packet id                   u64 expires in (ms; 0 = not expiring)
 *   u32 will length (0 = no will), bytes (an encoded 5.0 PUBLISH)
 *   u32 will delay (s)                   u64 will due in (ms; 0 = not pending)
 *   u32 subscriptions; each:  u16 filter length, bytes, u32 subscription id,
 *                             u8 QoS, u8 flags (1 no-local, 2 retain as published,
 *                             4 journaled: route/subidx.h)
 *   u32 in flight; each:      u16 packet id, u8 QoS, u8 state (1 awaiting
 *                             PUBACK/PUBREC, 2 awaiting PUBCOMP), u8 flags
 *                             (1 retain, 2 shared, 4 journaled), u32
 *                             subscription id, then a message when state
 *                             is 1, then with flag 4 in state 1 the u64
 *                             journal stamp of the message (flag 4 in state
 *                             2: the journal holds the PUBREL owed)
 *   u32 queued; each:         u8 QoS, u8 flags, u32 subscription id, message,
 *                             with flag 4 its u64 journal stamp
 *   u32 inbound QoS 2 ids; each u16
 *
 *   message: u8 protocol level, u8 flags (QoS in bits 0-1, 4 retain, 8
 *            recovered from the journal: msg.h),
 *            u64 expires in (ms; 0 = never), u16 topic length, bytes,
 *            u32 body length, bytes (the PUBLISH body as received, from the
 *            topic's length prefix to the end of the payload)
 *
 * A decoder never reads past its input, checks every count against the
 * bytes left and every value against what the session accepts, and
 * rebuilds messages through the MQTT codec, so an encoding it accepts is a
 * session the broker could have made.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "session/session_int.h"

#define FORMAT_VERSION 1

/* ---- writing ------------------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t len;
	size_t cap;
	bool oom;
};

static uint8_t *wroom(struct wbuf *w, size_t n)
{
	if (w->oom)
		return NULL;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *p = realloc(w->p, cap);
		if (!p) {
			w->oom = true;
			return NULL;
		}
		w->p = p;
		w->cap = cap;
	}
	uint8_t *at = w->p + w->len;
	w->len += n;
	return at;
}

static void put_be(struct wbuf *w, uint64_t v, unsigned bytes)
{
	uint8_t *at = wroom(w, bytes);
	for (unsigned i = 0; at && i < bytes; i++)
		at[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static void put_bytes(struct wbuf *w, const void *b, size_t n)
{
	uint8_t *at = wroom(w, n);
	if (at && n)
		memcpy(at, b, n);
}

static uint64_t left_ms(uint64_t deadline_ms, uint64_t now_ms)
{
	if (deadline_ms == 0)
		return 0;
	return deadline_ms > now_ms ? deadline_ms - now_ms : 1; /* due: as soon as possible */
}

static void put_msg(struct wbuf *w, const struct msg *m, uint64_t now_ms)
{
	/* The body was copied whole behind the topic (msg.c). */
	const uint8_t *body = m->data + m->pub.topic.len;
	size_t body_len = m->size_bytes - sizeof(*m) - m->pub.topic.len;
	put_be(w, m->version, 1);
	put_be(w, (uint64_t)(m->pub.qos | (m->pub.retain ? 4 : 0) | (m->recovered ? 8 : 0)), 1);
	put_be(w, left_ms(m->expires_at_ms, now_ms), 8);
	put_be(w, m->pub.topic.len, 2);
	put_bytes(w, m->pub.topic.ptr, m->pub.topic.len);
	put_be(w, body_len, 4);
	put_bytes(w, body, body_len);
}

/* messages false: the state alone (no messages in flight or queued, no
 * inbound QoS 2 ids), as the journal's session record keeps it. */
static uint8_t *encode(const struct session *s, uint64_t now_ms, size_t *len, bool messages)
{
	struct wbuf w = {0};
	put_be(&w, FORMAT_VERSION, 1);
	put_be(&w, s->client_id_len, 2);
	put_bytes(&w, s->client_id, s->client_id_len);
	size_t ulen;
	const char *user = session_username(s, &ulen);
	put_be(&w, user != NULL, 1);
	if (user) {
		put_be(&w, ulen, 2);
		put_bytes(&w, user, ulen);
	}
	put_be(&w, s->expiry_s, 4);
	put_be(&w, s->version, 1);
	put_be(&w, s->next_pid, 2);
	put_be(&w, s->online ? 0 : left_ms(s->expires_at_ms, now_ms), 8);
	put_be(&w, s->will ? s->will_len : 0, 4);
	if (s->will)
		put_bytes(&w, s->will, s->will_len);
	put_be(&w, s->will ? s->will_delay_s : 0, 4);
	put_be(&w, s->will ? left_ms(s->will_at_ms, now_ms) : 0, 8);

	put_be(&w, s->sub_count, 4);
	for (uint32_t i = 0; i < s->sub_count; i++) {
		const struct sess_sub *sub = &s->subs[i];
		put_be(&w, sub->filter_len, 2);
		put_bytes(&w, sub->filter, sub->filter_len);
		put_be(&w, sub->opts.sub_id, 4);
		put_be(&w, sub->opts.qos, 1);
		put_be(&w,
		       (uint64_t)((sub->opts.no_local ? 1 : 0) | (sub->opts.rap ? 2 : 0) |
		                  (sub->opts.journaled ? 4 : 0)),
		       1);
	}

	if (!messages) {
		put_be(&w, 0, 4); /* in flight */
		put_be(&w, 0, 4); /* queued */
		put_be(&w, 0, 4); /* inbound QoS 2 */
		goto done;
	}
	put_be(&w, s->infl_count, 4);
	uint32_t seq = s->infl_head, n = 0;
	struct inflight *f;
	while ((f = session_infl_next((struct session *)s, &seq)) != NULL) {
		put_be(&w, f->pid, 2);
		put_be(&w, f->qos, 1);
		put_be(&w, f->state, 1);
		put_be(&w, infl_flags(f), 1);
		put_be(&w, f->sub_id, 4);
		if (f->state == INFL_WAIT_ACK)
			put_msg(&w, f->m, now_ms);
		if (f->state == INFL_WAIT_ACK && f->journaled)
			put_be(&w, f->m->jstamp, 8);
		n++;
	}
	if (n != s->infl_count) /* the count written first must be the truth */
		w.oom = true;

	put_be(&w, s->q_len, 4);
	for (uint32_t i = 0; i < s->q_len; i++) {
		const struct queued *q = &s->q[(s->q_head + i) & (s->q_cap - 1)];
		put_be(&w, q->qos, 1);
		put_be(&w, queued_flags(q), 1);
		put_be(&w, q->sub_id, 4);
		put_msg(&w, q->m, now_ms);
		if (q->journaled)
			put_be(&w, q->m->jstamp, 8);
	}

	put_be(&w, s->rx_qos2_count, 4);
	for (uint32_t i = 0; i < s->rx_qos2_count; i++)
		put_be(&w, s->rx_qos2[i], 2);
done:
	if (w.oom) {
		free(w.p);
		return NULL;
	}
	*len = w.len;
	return w.p;
}

uint8_t *session_encode(const struct session *s, uint64_t now_ms, size_t *len)
{
	return encode(s, now_ms, len, true);
}

uint8_t *session_encode_state(const struct session *s, uint64_t now_ms, size_t *len)
{
	return encode(s, now_ms, len, false);
}

/* ---- reading ------------------------------------------------------------ */

struct rbuf {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool bad; /* past the end, or a value out of range */
};

static uint64_t get_be(struct rbuf *r, unsigned bytes)
{
	if (r->bad || r->len - r->off < bytes) {
		r->bad = true;
		return 0;
	}
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v = v << 8 | r->p[r->off + i];
	r->off += bytes;
	return v;
}

static const uint8_t *get_bytes(struct rbuf *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *at = r->p + r->off;
	r->off += n;
	return at;
}

/* A count of entries each at least min_bytes long: no more than fit. */
static uint32_t get_count(struct rbuf *r, size_t min_bytes)
{
	uint32_t n = (uint32_t)get_be(r, 4);
	if (!r->bad && (uint64_t)n * min_bytes > r->len - r->off)
		r->bad = true;
	return r->bad ? 0 : n;
}

static struct msg *get_msg(struct rbuf *r, uint64_t now_ms)
{
	uint8_t version = (uint8_t)get_be(r, 1);
	uint8_t flags = (uint8_t)get_be(r, 1);
	uint64_t expires_in = get_be(r, 8);
	uint16_t topic_len = (uint16_t)get_be(r, 2);
	const uint8_t *topic = get_bytes(r, topic_len);
	uint32_t body_len = (uint32_t)get_be(r, 4);
	const uint8_t *body = get_bytes(r, body_len);
	uint8_t qos = flags & 3;
	if (r->bad || (version != MQTT_V31 && version != MQTT_V311 && version != MQTT_V5) ||
	    qos > 2 || (flags & ~15u) || body_len > 0x0FFFFFFFu ||
	    !mqtt_topic_name_valid((struct mqtt_view){topic, topic_len})) {
		r->bad = true;
		return NULL;
	}
	struct msg *m = msg_from_body(body, body_len, version, qos, (flags & 4) != 0,
	                              (struct mqtt_view){topic, topic_len}, now_ms);
	if (m) {
		m->expires_at_ms = expires_in ? now_ms + expires_in : 0;
		m->recovered = (flags & 8) != 0;
	} else if (errno != ENOMEM)
		r->bad = true;
	return m;
}

struct session *session_decode(const uint8_t *buf, size_t len, struct sess_id id, uint64_t now_ms)
{
	struct rbuf r = {buf, len, 0, false};
	if (get_be(&r, 1) != FORMAT_VERSION)
		return NULL;
	uint16_t cid_len = (uint16_t)get_be(&r, 2);
	const uint8_t *cid = get_bytes(&r, cid_len);
	if (r.bad || memchr(cid, 0, cid_len))
		return NULL;
	struct session *s = session_new(cid, cid_len, id);
	if (!s)
		return NULL;
	if (get_be(&r, 1)) {
		uint16_t ulen = (uint16_t)get_be(&r, 2);
		const uint8_t *user = get_bytes(&r, ulen);
		if (r.bad || memchr(user, 0, ulen) || !session_set_username(s, user, ulen))
			goto fail;
	}
	s->expiry_s = (uint32_t)get_be(&r, 4);
	s->version = (uint8_t)get_be(&r, 1);
	s->next_pid = (uint16_t)get_be(&r, 2);
	uint64_t expires_in = get_be(&r, 8);
	s->expires_at_ms = expires_in ? now_ms + expires_in : 0;
	uint32_t will_len = (uint32_t)get_be(&r, 4);
	const uint8_t *will = get_bytes(&r, will_len);
	uint32_t will_delay_s = (uint32_t)get_be(&r, 4);
	uint64_t will_in = get_be(&r, 8);
	if (r.bad || s->next_pid == 0 ||
	    (s->version != MQTT_V31 && s->version != MQTT_V311 && s->version != MQTT_V5))
		goto fail;
	if (will_len > 0) {
		struct mqtt_packet wp;
		if (mqtt_decode_buf(will, will_len, MQTT_V5, &wp, NULL) != MQTT_RC_SUCCESS ||
		    wp.type != MQTT_PUBLISH)
			goto fail;
		uint8_t *copy = malloc(will_len);
		if (!copy)
			goto fail;
		memcpy(copy, will, will_len);
		session_set_will(s, copy, will_len, will_delay_s);
		s->will_at_ms = will_in ? now_ms + will_in : 0;
	}

	uint32_t subs = get_count(&r, 8);
	for (uint32_t i = 0; i < subs && !r.bad; i++) {
		uint16_t flen = (uint16_t)get_be(&r, 2);
		const uint8_t *f = get_bytes(&r, flen);
		struct sub_opts o = {0};
		o.sub_id = (uint32_t)get_be(&r, 4);
		o.qos = (uint8_t)get_be(&r, 1);
		uint8_t fl = (uint8_t)get_be(&r, 1);
		o.no_local = fl & 1;
		o.rap = (fl & 2) != 0;
		o.journaled = (fl & 4) != 0;
		struct mqtt_view fv = {f, flen};
		if (r.bad || o.qos > 2 || (fl & ~7u) || o.sub_id > 0x0FFFFFFFu ||
		    mqtt_topic_filter_check(fv) != MQTT_RC_SUCCESS ||
		    session_sub_add(s, fv, o, UINT32_MAX) != 1)
			goto fail;
	}

	uint32_t infl = get_count(&r, 9);
	for (uint32_t i = 0; i < infl && !r.bad; i++) {
		uint16_t pid = (uint16_t)get_be(&r, 2);
		uint8_t qos = (uint8_t)get_be(&r, 1);
		uint8_t state = (uint8_t)get_be(&r, 1);
		uint8_t fl = (uint8_t)get_be(&r, 1);
		uint32_t sub_id = (uint32_t)get_be(&r, 4);
		if (r.bad || (fl & ~DELIV_ALL))
			goto fail;
		struct msg *m = state == INFL_WAIT_ACK ? get_msg(&r, now_ms) : NULL;
		if (m && (fl & DELIV_JOURNALED))
			m->jstamp = get_be(&r, 8);
		if (r.bad || (state == INFL_WAIT_ACK && !m)) {
			if (m)
				msg_unref(m);
			goto fail;
		}
		bool ok = session_infl_restore(s, m, pid, qos, state, fl, sub_id);
		if (m)
			msg_unref(m);
		if (!ok)
			goto fail;
	}

	uint32_t queued = get_count(&r, 6);
	for (uint32_t i = 0; i < queued && !r.bad; i++) {
		uint8_t qos = (uint8_t)get_be(&r, 1);
		uint8_t fl = (uint8_t)get_be(&r, 1);
		uint32_t sub_id = (uint32_t)get_be(&r, 4);
		struct msg *m = get_msg(&r, now_ms);
		if (m && (fl & DELIV_JOURNALED))
			m->jstamp = get_be(&r, 8);
		if (!m || r.bad || qos > 2 || (fl & ~DELIV_ALL)) {
			if (m)
				msg_unref(m);
			goto fail;
		}
		unsigned dropped = session_enqueue(s, m, qos, fl, sub_id, UINT32_MAX, UINT64_MAX,
		                                   QUEUE_DROP_NEWEST, NULL);
		msg_unref(m);
		if (dropped)
			goto fail; /* no memory */
	}

	uint32_t ids = get_count(&r, 2);
	for (uint32_t i = 0; i < ids && !r.bad; i++) {
		uint16_t pid = (uint16_t)get_be(&r, 2);
		if (r.bad || pid == 0 || !session_rx_qos2_add(s, pid, UINT32_MAX))
			goto fail;
	}
	if (r.bad || r.off != r.len)
		goto fail;
	return s;
fail:
	session_free(s);
	return NULL;
}
