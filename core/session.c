/*
 * session.c — session bookkeeping (see session.h). Only the owning worker's
 * thread calls these. Invariants: infl[0..infl_count) hold distinct non-zero
 * packet ids; q holds q_len messages from q_head, each with one reference;
 * rx_qos2 holds distinct ids.
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

struct session *session_new(const uint8_t *client_id, uint16_t len, struct sess_id id)
{
	struct session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->client_id = malloc((size_t)len + 1);
	if (!s->client_id) {
		free(s);
		return NULL;
	}
	memcpy(s->client_id, client_id, len);
	s->client_id[len] = '\0';
	s->client_id_len = len;
	s->id = id;
	s->next_pid = 1;
	return s;
}

void session_clear_messages(struct session *s)
{
	for (uint32_t i = 0; i < s->infl_count; i++)
		if (s->infl[i].m)
			msg_unref(s->infl[i].m);
	s->infl_count = 0;
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

static bool pid_in_use(const struct session *s, uint16_t pid)
{
	for (uint32_t i = 0; i < s->infl_count; i++)
		if (s->infl[i].pid == pid)
			return true;
	return false;
}

uint16_t session_infl_add(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                          uint32_t sub_id, uint32_t window)
{
	if (s->infl_count >= window || s->infl_count >= 65535)
		return 0;
	if (s->infl_count == s->infl_cap) {
		uint32_t cap = s->infl_cap ? s->infl_cap * 2 : 8;
		struct inflight *n = realloc(s->infl, cap * sizeof(*n));
		if (!n)
			return 0;
		s->infl = n;
		s->infl_cap = cap;
	}
	/* Fewer than 65535 ids are taken, so this finds one; the window is
	 * small in practice, so the scan is short. */
	uint16_t pid = s->next_pid;
	while (pid_in_use(s, pid))
		pid = pid == 65535 ? 1 : (uint16_t)(pid + 1);
	s->next_pid = pid == 65535 ? 1 : (uint16_t)(pid + 1);
	s->infl[s->infl_count++] = (struct inflight){.m = msg_ref(m),
	                                             .sub_id = sub_id,
	                                             .pid = pid,
	                                             .qos = qos,
	                                             .state = INFL_WAIT_ACK,
	                                             .retain = flags & DELIV_RETAIN,
	                                             .shared = flags & DELIV_SHARED};
	return pid;
}

bool session_infl_ack(struct session *s, uint8_t packet_type, uint16_t pid)
{
	for (uint32_t i = 0; i < s->infl_count; i++) {
		struct inflight *f = &s->infl[i];
		if (f->pid != pid)
			continue;
		bool done;
		if (packet_type == MQTT_PUBACK && f->qos == 1 && f->state == INFL_WAIT_ACK) {
			done = true;
		} else if (packet_type == MQTT_PUBREC && f->qos == 2 && f->state == INFL_WAIT_ACK) {
			msg_unref(f->m);
			f->m = NULL;
			f->state = INFL_WAIT_COMP;
			return true;
		} else if (packet_type == MQTT_PUBCOMP && f->state == INFL_WAIT_COMP) {
			done = true;
		} else {
			return false;
		}
		if (done) {
			if (f->m)
				msg_unref(f->m);
			/* Keep send order for redelivery. */
			memmove(f, f + 1, (s->infl_count - i - 1) * sizeof(*f));
			s->infl_count--;
		}
		return true;
	}
	return false;
}

unsigned session_enqueue(struct session *s, struct msg *m, uint8_t qos, uint8_t flags,
                         uint32_t sub_id, uint32_t max_messages, uint64_t max_bytes,
                         enum queue_overflow policy)
{
	unsigned dropped = 0;
	while (s->q_len > 0 &&
	       (s->q_len >= max_messages || s->q_bytes + m->size_bytes > max_bytes)) {
		if (policy == QUEUE_DROP_NEWEST) {
			s->dropped_count++;
			return 1;
		}
		struct queued old;
		session_dequeue(s, &old);
		msg_unref(old.m);
		dropped++;
	}
	if (max_messages == 0 || m->size_bytes > max_bytes) {
		s->dropped_count += dropped + 1;
		return dropped + 1;
	}
	if (s->q_len == s->q_cap) {
		uint32_t cap = s->q_cap ? s->q_cap * 2 : 8;
		struct queued *n = malloc(cap * sizeof(*n));
		if (!n) {
			s->dropped_count += dropped + 1;
			return dropped + 1;
		}
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
	                    .shared = flags & DELIV_SHARED};
	s->q_len++;
	s->q_bytes += m->size_bytes;
	s->dropped_count += dropped;
	return dropped;
}

bool session_dequeue(struct session *s, struct queued *out)
{
	if (s->q_len == 0)
		return false;
	*out = s->q[s->q_head];
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
