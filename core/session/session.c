/*
 * session.c — session bookkeeping (see session.h). Only the owning worker's
 * thread calls these.
 *
 * In flight: one allocation holds a ring of infl_cap entries in send order
 * (addressed by sequence numbers infl_head..infl_tail, seq & (cap - 1)) and
 * after it a direct-mapped index of 2 x infl_cap slots from packet id to
 * sequence number: slot pid & (2 x infl_cap - 1). We choose the packet ids,
 * so we only hand out one whose slot is free: the index never collides
 * (growing adds mask bits, so distinct slots stay distinct; compacting
 * keeps the mask). An acknowledged entry is marked finished (state 0) and
 * leaves the index; finished entries at the head are popped. So adding,
 * acknowledging and choosing a packet id are O(1) however large the
 * client's Receive Maximum (probing linearly instead would scan the whole
 * run of consecutive ids on every erase), and redelivery keeps send order.
 *
 * Invariants: the index holds exactly the unfinished entries' distinct,
 * non-zero ids; q holds q_len messages from q_head, each with one
 * reference; rx_qos2 holds distinct ids.
 */
#include "session/session.h"
#include "session/session_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

struct session *session_new(const uint8_t *client_id, uint16_t len, struct sess_id id)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	/* client id, NUL, then a user-name mark (session_set_username). */
	s->client_id = malloc((size_t)len + 2);
	if (!s->client_id) {
		free(s);
		return NULL;
	}
	memcpy(s->client_id, client_id, len);
	s->client_id[len] = '\0';
	s->client_id[len + 1] = '\0'; /* no user name */
	s->client_id_len = len;
	s->id = id;
	s->next_pid = 1;
	return s;
}

bool session_set_username(struct session *s, const uint8_t *user, size_t len)
{
	/* Kept behind the client id in the same allocation: the session
	 * struct stays in its 160-byte size class, and the name (needed by
	 * every ACL check) is one pointer away. */
	size_t at = (size_t)s->client_id_len + 1;
	char *n = realloc(s->client_id, at + 2 + len);
	if (!n)
		return false;
	s->client_id = n;
	n[at] = '\1';
	memcpy(n + at + 1, user, len);
	n[at + 1 + len] = '\0';
	return true;
}

const char *session_username(const struct session *s, size_t *len)
{
	const char *mark = s->client_id + s->client_id_len + 1;
	if (*mark == '\0') {
		*len = 0;
		return NULL;
	}
	*len = strlen(mark + 1); /* MQTT strings hold no U+0000 [MQTT-1.5.4-2] */
	return mark + 1;
}

struct infl_ix {
	uint16_t pid; /* 0: empty slot */
	uint32_t seq; /* the entry's sequence number */
};

static struct infl_ix *ix_of(const struct session *s)
{
	return (struct infl_ix *)(s->infl + s->infl_cap);
}

static struct inflight *at(const struct session *s, uint32_t seq)
{
	return &s->infl[seq & (s->infl_cap - 1)];
}

static uint32_t ix_slot(const struct session *s, uint16_t pid)
{
	return pid & (2 * s->infl_cap - 1);
}

struct inflight *session_infl_find(struct session *s, uint16_t pid)
{
	if (s->infl_cap == 0 || pid == 0)
		return NULL;
	const struct infl_ix *e = &ix_of(s)[ix_slot(s, pid)];
	return e->pid == pid ? at(s, e->seq) : NULL;
}

struct inflight *session_infl_next(struct session *s, uint32_t *seq)
{
	while (*seq != s->infl_tail) {
		struct inflight *f = at(s, (*seq)++);
		if (f->state != 0)
			return f;
	}
	return NULL;
}

/*
 * Rebuild the ring with cap entries, keeping only unfinished entries, in
 * order, renumbered from infl_head. Growing when mostly live, compacting
 * when mostly finished: a client that never acknowledges its oldest
 * message while acknowledging the rest must not make the ring grow.
 */
static bool infl_rebuild(struct session *s, uint32_t cap)
{
	struct inflight *n =
	    malloc(cap * sizeof(struct inflight) + 2 * (size_t)cap * sizeof(struct infl_ix));
	if (!n)
		return false;
	struct session r = *s;
	r.infl = n;
	r.infl_cap = cap;
	r.infl_tail = s->infl_head;
	memset(ix_of(&r), 0, 2 * (size_t)cap * sizeof(struct infl_ix));
	for (uint32_t seq = s->infl_head; seq != s->infl_tail; seq++) {
		struct inflight *f = at(s, seq);
		if (f->state == 0)
			continue;
		uint32_t nseq = r.infl_tail++;
		*at(&r, nseq) = *f;
		ix_of(&r)[ix_slot(&r, f->pid)] = (struct infl_ix){f->pid, nseq};
	}
	free(s->infl);
	s->infl = n;
	s->infl_cap = cap;
	s->infl_tail = r.infl_tail;
	return true;
}

void session_clear_messages(struct session *s)
{
	for (uint32_t seq = s->infl_head; seq != s->infl_tail; seq++)
		if (at(s, seq)->state != 0 && at(s, seq)->m)
			msg_unref(at(s, seq)->m);
	s->infl_head = s->infl_tail = s->infl_count = 0;
	if (s->infl_cap)
		memset(ix_of(s), 0, 2 * (size_t)s->infl_cap * sizeof(struct infl_ix));
	struct queued q;
	while (session_dequeue(s, &q))
		msg_unref(q.m);
	s->rx_qos2_count = 0;
}

void session_free(struct session *s)
{
	if (!s)
		return;
	session_clear_messages(s);
	for (uint32_t i = 0; i < s->sub_count; i++)
		free(s->subs[i].filter);
	free(s->subs);
	free(s->infl);
	free(s->q);
	free(s->rx_qos2);
	free(s->will);
	free(s->client_id);
	free(s);
}

static int sub_find(const struct session *s, struct mqtt_view filter)
{
	for (uint32_t i = 0; i < s->sub_count; i++)
		if (s->subs[i].filter_len == filter.len &&
		    memcmp(s->subs[i].filter, filter.ptr, filter.len) == 0)
			return (int)i;
	return -1;
}

const struct sub_opts *session_sub_opts(const struct session *s, struct mqtt_view filter)
{
	int i = sub_find(s, filter);
	return i >= 0 ? &s->subs[i].opts : NULL;
}

int session_sub_add(struct session *s, struct mqtt_view filter, struct sub_opts opts, uint32_t max)
{
	int i = sub_find(s, filter);
	if (i >= 0) {
		s->subs[i].opts = opts;
		return 0;
	}
	if (s->sub_count >= max || filter.len > UINT16_MAX)
		return -1;
	if (s->sub_count == s->sub_cap) {
		uint32_t cap = s->sub_cap ? s->sub_cap * 2 : 4;
		struct sess_sub *n = realloc(s->subs, cap * sizeof(*n));
		if (!n)
			return -1;
		s->subs = n;
		s->sub_cap = cap;
	}
	char *copy = malloc((size_t)filter.len + 1);
	if (!copy)
		return -1;
	memcpy(copy, filter.ptr, filter.len);
	copy[filter.len] = '\0';
	s->subs[s->sub_count++] = (struct sess_sub){copy, (uint16_t)filter.len, opts};
	return 1;
}

bool session_sub_remove(struct session *s, struct mqtt_view filter)
{
	int i = sub_find(s, filter);
	if (i < 0)
		return false;
	free(s->subs[i].filter);
	s->subs[i] = s->subs[--s->sub_count];
	return true;
}

/* Room at the ring's tail for one more entry: grown when mostly live,
 * compacted when mostly finished (infl_rebuild). */
static bool infl_room(struct session *s)
{
	if (s->infl_tail - s->infl_head < s->infl_cap)
		return true;
	uint32_t cap = s->infl_cap == 0                   ? 8
	               : s->infl_count >= s->infl_cap / 2 ? s->infl_cap * 2
	                                                  : s->infl_cap;
	return infl_rebuild(s, cap);
}

uint16_t session_infl_add(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                          uint32_t sub_id, uint32_t window)
{
	if (s->infl_count >= window || s->infl_count >= 65535)
		return 0;
	if (!infl_room(s))
		return 0;
	/* An id whose index slot is free (so it is not in use either): at
	 * most half the slots are taken, so this ends, usually at once. */
	uint16_t pid = s->next_pid;
	while (ix_of(s)[ix_slot(s, pid)].pid != 0)
		pid = pid == 65535 ? 1 : (uint16_t)(pid + 1);
	s->next_pid = pid == 65535 ? 1 : (uint16_t)(pid + 1);
	uint32_t seq = s->infl_tail++;
	*at(s, seq) = (struct inflight){.m = msg_ref(m),
	                                .sub_id = sub_id,
	                                .pid = pid,
	                                .qos = qos,
	                                .state = INFL_WAIT_ACK,
	                                .retain = flags & DELIV_RETAIN,
	                                .shared = flags & DELIV_SHARED,
	                                .journaled = flags & DELIV_JOURNALED};
	ix_of(s)[ix_slot(s, pid)] = (struct infl_ix){pid, seq};
	s->infl_count++;
	return pid;
}

bool session_infl_ack(struct session *s, uint8_t packet_type, uint16_t pid)
{
	struct inflight *f = session_infl_find(s, pid);
	if (!f)
		return false;
	if (packet_type == MQTT_PUBREC && f->qos == 2 && f->state == INFL_WAIT_ACK) {
		msg_unref(f->m);
		f->m = NULL;
		f->state = INFL_WAIT_COMP;
		return true;
	}
	bool done = (packet_type == MQTT_PUBACK && f->qos == 1 && f->state == INFL_WAIT_ACK) ||
	            (packet_type == MQTT_PUBCOMP && f->state == INFL_WAIT_COMP);
	if (!done)
		return false;
	if (f->m)
		msg_unref(f->m);
	f->m = NULL;
	f->state = 0;
	ix_of(s)[ix_slot(s, pid)].pid = 0;
	CHECK(s->infl_count > 0);
	s->infl_count--;
	while (s->infl_head != s->infl_tail && at(s, s->infl_head)->state == 0)
		s->infl_head++;
	return true;
}

/* m is dropped: the sink hears of it when the journal holds it. */
static unsigned drop(const struct session *s, const struct msg *m, bool journaled,
                     const struct drop_sink *sink)
{
	if (journaled && sink)
		sink->dropped(sink->ctx, s, m);
	return 1;
}

unsigned session_enqueue(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                         uint32_t sub_id, uint32_t max_messages, uint64_t max_bytes,
                         enum queue_overflow policy, const struct drop_sink *sink)
{
	bool journaled = flags & DELIV_JOURNALED;
	unsigned dropped = 0;
	while (s->q_len > 0 &&
	       (s->q_len >= max_messages || s->q_bytes + m->size_bytes > max_bytes)) {
		if (policy == QUEUE_DROP_NEWEST)
			return drop(s, m, journaled, sink);
		struct queued old;
		session_dequeue(s, &old);
		dropped += drop(s, old.m, old.journaled, sink);
		msg_unref(old.m);
	}
	if (max_messages == 0 || m->size_bytes > max_bytes)
		return dropped + drop(s, m, journaled, sink);
	if (s->q_len == s->q_cap) {
		uint32_t cap = s->q_cap ? s->q_cap * 2 : 8;
		struct queued *n = malloc(cap * sizeof(*n));
		if (!n)
			return dropped + drop(s, m, journaled, sink);
		for (uint32_t i = 0; i < s->q_len; i++)
			n[i] = s->q[(s->q_head + i) & (s->q_cap - 1)];
		free(s->q);
		s->q = n;
		s->q_head = 0;
		s->q_cap = cap;
	}
	s->q[(s->q_head + s->q_len) & (s->q_cap - 1)] =
	    (struct queued){.m = msg_ref(m),
	                    .sub_id = sub_id,
	                    .qos = qos,
	                    .retain = flags & DELIV_RETAIN,
	                    .shared = flags & DELIV_SHARED,
	                    .journaled = flags & DELIV_JOURNALED};
	s->q_len++;
	s->q_bytes += m->size_bytes;
	CHECK(s->q_len <= s->q_cap);
	return dropped;
}

bool session_dequeue(struct session *s, struct queued *out)
{
	if (s->q_len == 0)
		return false;
	*out = s->q[s->q_head];
	CHECK(out->m && s->q_bytes >= out->m->size_bytes);
	s->q_head = (s->q_head + 1) & (s->q_cap - 1);
	s->q_len--;
	s->q_bytes -= out->m->size_bytes;
	return true;
}

unsigned session_drop_expired(struct session *s, uint64_t now_ms)
{
	unsigned n = s->q_len, dropped = 0;
	for (unsigned i = 0; i < n; i++) {
		struct queued q;
		session_dequeue(s, &q);
		if (msg_expired(q.m, now_ms)) {
			msg_unref(q.m);
			dropped++;
			continue;
		}
		/* Re-append in order: dequeuing made room for it. */
		s->q[(s->q_head + s->q_len) & (s->q_cap - 1)] = q;
		s->q_len++;
		s->q_bytes += q.m->size_bytes;
	}
	return dropped;
}

bool session_rx_qos2_has(const struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->rx_qos2_count; i++)
		if (s->rx_qos2[i] == pid)
			return true;
	return false;
}

bool session_rx_qos2_add(struct session *s, uint16_t pid, uint32_t max)
{
	if (session_rx_qos2_has(s, pid) || s->rx_qos2_count >= max)
		return false;
	if (s->rx_qos2_count == s->rx_qos2_cap) {
		uint32_t cap = s->rx_qos2_cap ? s->rx_qos2_cap * 2 : 8;
		uint16_t *n = realloc(s->rx_qos2, cap * sizeof(*n));
		if (!n)
			return false;
		s->rx_qos2 = n;
		s->rx_qos2_cap = cap;
	}
	s->rx_qos2[s->rx_qos2_count++] = pid;
	return true;
}

bool session_rx_qos2_remove(struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->rx_qos2_count; i++) {
		if (s->rx_qos2[i] == pid) {
			s->rx_qos2[i] = s->rx_qos2[--s->rx_qos2_count];
			return true;
		}
	}
	return false;
}

/*
 * Outgoing topic aliases. Alias n's topic is topics[n - 1], its bytes in
 * text (back to back, never moved but by growing); ix is an open-addressing
 * index (linear probing, at most half full) from the topic's hash to its
 * alias. Only ever added to, so no deletion to handle.
 */
struct alias_out {
	uint16_t max;   /* aliases it may hand out */
	uint16_t count; /* handed out: 1..count */
	uint16_t topics_cap;
	uint32_t ix_cap;
	uint32_t text_len;
	uint32_t text_cap;
	uint16_t *ix; /* [ix_cap] alias, 0 = empty */
	struct alias_topic {
		uint32_t hash;
		uint32_t off; /* in text */
		uint16_t len;
	} * topics; /* [topics_cap]; grows up to max */
	char *text;
};

static uint32_t topic_hash(struct mqtt_view t)
{
	uint32_t h = 2166136261u; /* FNV-1a: short keys, one pass */
	for (uint32_t i = 0; i < t.len; i++)
		h = (h ^ t.ptr[i]) * 16777619u;
	return h;
}

struct alias_out *alias_out_new(uint16_t max)
{
	struct alias_out *a = calloc(1, sizeof(*a));
	if (a)
		a->max = max;
	return a;
}

void alias_out_free(struct alias_out *a)
{
	if (!a)
		return;
	free(a->ix);
	free(a->topics);
	free(a->text);
	free(a);
}

uint16_t alias_out_find(const struct alias_out *a, struct mqtt_view topic)
{
	if (a->count == 0)
		return 0;
	uint32_t h = topic_hash(topic);
	for (uint32_t i = h & (a->ix_cap - 1);; i = (i + 1) & (a->ix_cap - 1)) {
		uint16_t n = a->ix[i];
		if (n == 0)
			return 0;
		const struct alias_topic *t = &a->topics[n - 1];
		if (t->hash == h && t->len == topic.len &&
		    memcmp(a->text + t->off, topic.ptr, topic.len) == 0)
			return n;
	}
}

uint16_t alias_out_next(const struct alias_out *a, struct mqtt_view topic)
{
	if (a->count >= a->max || topic.len < ALIAS_OUT_TOPIC_MIN ||
	    a->text_len + topic.len > ALIAS_OUT_TEXT_MAX)
		return 0;
	return (uint16_t)(a->count + 1);
}

static void ix_put(struct alias_out *a, uint16_t n)
{
	uint32_t i = a->topics[n - 1].hash & (a->ix_cap - 1);
	while (a->ix[i])
		i = (i + 1) & (a->ix_cap - 1);
	a->ix[i] = n;
}

bool alias_out_add(struct alias_out *a, struct mqtt_view topic)
{
	if (alias_out_next(a, topic) == 0)
		return false;
	if (a->count == a->topics_cap) {
		uint32_t cap = a->topics_cap ? a->topics_cap * 2u : 8u;
		if (cap > a->max)
			cap = a->max;
		struct alias_topic *n = realloc(a->topics, (size_t)cap * sizeof(*n));
		if (!n)
			return false;
		a->topics = n;
		a->topics_cap = (uint16_t)cap;
	}
	if (a->text_len + topic.len > a->text_cap) {
		uint32_t cap = a->text_cap ? a->text_cap : 256;
		while (cap < a->text_len + topic.len)
			cap *= 2;
		char *n = realloc(a->text, cap);
		if (!n)
			return false;
		a->text = n;
		a->text_cap = cap;
	}
	if (2u * (a->count + 1u) > a->ix_cap) {
		uint32_t cap = a->ix_cap ? a->ix_cap * 2 : 16;
		uint16_t *n = calloc(cap, sizeof(*n));
		if (!n)
			return false;
		free(a->ix);
		a->ix = n;
		a->ix_cap = cap;
		for (uint16_t k = 1; k <= a->count; k++)
			ix_put(a, k);
	}
	memcpy(a->text + a->text_len, topic.ptr, topic.len);
	a->topics[a->count] =
	    (struct alias_topic){topic_hash(topic), a->text_len, (uint16_t)topic.len};
	a->text_len += topic.len;
	a->count++;
	ix_put(a, a->count);
	return true;
}

/* ---- the session on a connection --------------------------------------- */

void session_set_id(struct session *s, struct sess_id id)
{
	s->id = id;
}

void session_moved(struct session *s, struct sess_id to)
{
	s->id = to;
	s->online = false;
}

void session_attach(struct session *s, uint32_t conn_slot, uint32_t conn_gen, uint8_t version)
{
	s->online = true;
	s->conn_slot = conn_slot;
	s->conn_gen = conn_gen;
	s->version = version;
	s->expires_at_ms = 0;
	s->will_at_ms = 0;
}

void session_set_expiry(struct session *s, uint32_t expiry_s)
{
	s->expiry_s = expiry_s;
}

void session_set_will(struct session *s, uint8_t *will, uint32_t len, uint32_t delay_s)
{
	free(s->will);
	s->will = will;
	s->will_len = will ? len : 0;
	s->will_delay_s = will ? delay_s : 0;
}

uint8_t *session_take_will(struct session *s, uint32_t *len)
{
	uint8_t *w = s->will;
	*len = s->will_len;
	s->will = NULL;
	s->will_len = 0;
	s->will_at_ms = 0;
	return w;
}

unsigned session_detach(struct session *s, uint64_t now_ms, bool keep_will)
{
	s->online = false;
	if (!keep_will && s->will) {
		free(s->will);
		s->will = NULL;
		s->will_len = 0;
	}
	if (s->expiry_s == 0)
		return SESSION_ENDS | (s->will ? SESSION_WILL_NOW : 0);
	s->expires_at_ms = now_ms + (uint64_t)s->expiry_s * 1000;
	if (!s->will)
		return SESSION_KEPT;
	if (s->will_delay_s == 0)
		return SESSION_WILL_NOW;
	s->will_at_ms = now_ms + (uint64_t)s->will_delay_s * 1000;
	return SESSION_KEPT;
}

unsigned session_adopt(struct session *fresh, struct session *old, uint32_t max_messages,
                       uint64_t max_bytes, enum queue_overflow policy, const struct drop_sink *sink)
{
	struct session early = {0}; /* fresh's queue: mail that arrived first */
#define TAKE(f)                                                                                    \
	do {                                                                                       \
		early.f = fresh->f;                                                                \
		fresh->f = 0;                                                                      \
	} while (0)
	TAKE(q);
	TAKE(q_head);
	TAKE(q_len);
	TAKE(q_cap);
	TAKE(q_bytes);
#undef TAKE
#define MOVE(f)                                                                                    \
	do {                                                                                       \
		fresh->f = old->f;                                                                 \
		old->f = 0;                                                                        \
	} while (0)
	MOVE(subs);
	MOVE(sub_count);
	MOVE(sub_cap);
	MOVE(infl);
	MOVE(infl_head);
	MOVE(infl_tail);
	MOVE(infl_count);
	MOVE(infl_cap);
	MOVE(q);
	MOVE(q_head);
	MOVE(q_len);
	MOVE(q_cap);
	MOVE(q_bytes);
	MOVE(rx_qos2);
	MOVE(rx_qos2_count);
	MOVE(rx_qos2_cap);
#undef MOVE
	fresh->next_pid = old->next_pid;
	session_free(old);
	unsigned dropped = 0;
	struct queued e;
	while (session_dequeue(&early, &e)) {
		dropped += session_enqueue(fresh, e.m, e.qos, queued_flags(&e), e.sub_id,
		                           max_messages, max_bytes, policy, sink);
		msg_unref(e.m);
	}
	free(early.q);
	return dropped;
}

bool session_infl_restore(struct session *s, struct msg *m, uint16_t pid, uint8_t qos,
                          uint8_t state, uint8_t flags, uint32_t sub_id)
{
	if (pid == 0 || qos < 1 || qos > 2 || (state != INFL_WAIT_ACK && state != INFL_WAIT_COMP) ||
	    (state == INFL_WAIT_ACK) != (m != NULL) || (state == INFL_WAIT_COMP && qos != 2) ||
	    session_infl_find(s, pid) || s->infl_count >= 65535)
		return false;
	if (!infl_room(s))
		return false;
	/* The index is direct-mapped by pid (infl_add picks ids whose slot
	 * is free); given ids may share a slot in a smaller ring than the one
	 * they were chosen in: grow until they do not. Two distinct ids differ
	 * modulo 2 x 65536, so this ends. */
	while (ix_of(s)[ix_slot(s, pid)].pid != 0)
		if (!infl_rebuild(s, s->infl_cap * 2))
			return false;
	uint32_t seq = s->infl_tail++;
	*at(s, seq) = (struct inflight){.m = m ? msg_ref(m) : NULL,
	                                .sub_id = sub_id,
	                                .pid = pid,
	                                .qos = qos,
	                                .state = state,
	                                .retain = flags & DELIV_RETAIN,
	                                .shared = flags & DELIV_SHARED,
	                                .journaled = flags & DELIV_JOURNALED};
	ix_of(s)[ix_slot(s, pid)] = (struct infl_ix){pid, seq};
	s->infl_count++;
	return true;
}

bool session_owe_pubrel(struct session *s, uint16_t pid)
{
	return session_infl_restore(s, NULL, pid, 2, INFL_WAIT_COMP, DELIV_JOURNALED, 0);
}

bool session_resend_inflight(struct session *s, struct msg *m, uint16_t pid, uint8_t qos,
                             uint8_t flags, uint32_t sub_id)
{
	return session_infl_restore(s, m, pid, qos, INFL_WAIT_ACK, flags, sub_id);
}
