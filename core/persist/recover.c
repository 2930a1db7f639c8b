/*
 * recover.c — the node's state back from its journal (see recover.h).
 */
#include "persist/recover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/hash.h"
#include "base/log.h"
#include "persist/journal.h"
#include "persist/record.h"

/* The last write of one topic: a message, or a delete (m NULL). */
struct rentry {
	uint8_t *topic; /* own copy */
	uint16_t topic_len;
	uint64_t hash;
	uint64_t stamp, rank, wall;
	struct msg *m;
	bool expired; /* the last write was a message that has expired since */
	/* In the sessions' table (keyed by client id): the last REC_SESS_PUT's
	 * encoded session (own copy) and its record's wall-clock ms; NULL
	 * after a REC_SESS_END. */
	uint8_t *enc;
	size_t enc_len;
	uint64_t end_stamp;   /* the highest REC_SESS_END's stamp (0: none) */
	struct sess_id where; /* restored there (restored) */
	bool restored;
};

/* A place in a run (record.h: struct rec_place): whose session lived there,
 * and the stamp of the last record that said so. */
struct place {
	uint64_t run; /* 0: an empty slot */
	struct sess_id id;
	uint64_t hash;
	uint8_t *cid; /* own copy */
	uint16_t cid_len;
	uint64_t last_put;
};

struct ptable {
	struct place *e;
	size_t cap, len;
};

/* A REC_MSG: the message (NULL: expired) and the places it names. */
struct jmsg {
	uint64_t stamp, run;
	struct msg *m;
	struct rec_msg_target *t;
	uint16_t n;
};

/* The last REC_MSG_REL or REC_MSG_COMP of one (client id, packet id). */
struct rel {
	uint64_t hash; /* of the client id; 0: an empty slot */
	uint64_t stamp;
	uint8_t *cid; /* own copy */
	uint16_t cid_len;
	uint16_t pid;
	bool inbound; /* REC_IN_QOS2 / REC_IN_REL (else REC_MSG_REL / REC_MSG_COMP) */
	bool owed;    /* the last was a REL (inbound: an IN_QOS2) */
};

struct reltable {
	struct rel *e;
	size_t cap, len;
};

/* (message stamp, client id hash) pairs with a value; stamp 0 is an
 * empty slot. */
struct pairs {
	uint64_t (*e)[3];
	size_t cap, len;
};

struct rtable {
	struct rentry *e; /* open addressing, topic NULL = empty */
	size_t cap, len;
};

struct state {
	struct rtable rt;
	struct rtable st; /* sessions */
	struct ptable places;
	struct jmsg *msgs;
	size_t msgs_len, msgs_cap;
	struct pairs done;  /* REC_MSG_DONE */
	struct pairs given; /* what recovery gave back (each message once per session) */
	struct reltable rels;
	struct pairs sent; /* REC_MSG_SENT: (message, client id) -> stamp << 16 | packet id */
	uint64_t max_run;
	uint64_t max_sess_stamp;
	uint64_t now_ms, now_wall_ms;
	uint64_t max_stamp;
	uint64_t unknown, rejected;
	int oom;
};

/* Never 0 (an empty slot of the tables below). */
static uint64_t key_hash(const uint8_t *p, size_t n)
{
	return hash_bytes(p, n) | 1;
}

static int rt_grow(struct rtable *t)
{
	size_t cap = t->cap ? t->cap * 2 : 1024;
	struct rentry *e = calloc(cap, sizeof(*e));
	if (!e)
		return -1;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->e[i].topic)
			continue;
		size_t at = t->e[i].hash & (cap - 1);
		while (e[at].topic)
			at = (at + 1) & (cap - 1);
		e[at] = t->e[i];
	}
	free(t->e);
	t->e = e;
	t->cap = cap;
	return 0;
}

static struct rentry *rt_get(struct rtable *t, const uint8_t *topic, uint16_t len)
{
	if ((t->len + 1) * 2 > t->cap && rt_grow(t) != 0)
		return NULL;
	uint64_t h = key_hash(topic, len);
	size_t at = h & (t->cap - 1);
	while (t->e[at].topic) {
		struct rentry *x = &t->e[at];
		if (x->hash == h && x->topic_len == len && memcmp(x->topic, topic, len) == 0)
			return x;
		at = (at + 1) & (t->cap - 1);
	}
	struct rentry *x = &t->e[at];
	x->topic = malloc(len ? len : 1);
	if (!x->topic)
		return NULL;
	memcpy(x->topic, topic, len);
	x->topic_len = len;
	x->hash = h;
	x->stamp = 0; /* below every real write */
	t->len++;
	return x;
}

static struct rentry *rt_find(const struct rtable *t, const uint8_t *key, uint16_t len)
{
	if (!t->cap)
		return NULL;
	uint64_t h = key_hash(key, len);
	for (size_t at = h & (t->cap - 1); t->e[at].topic; at = (at + 1) & (t->cap - 1)) {
		const struct rentry *x = &t->e[at];
		if (x->hash == h && x->topic_len == len && memcmp(x->topic, key, len) == 0)
			return (struct rentry *)x;
	}
	return NULL;
}

static uint64_t place_hash(uint64_t run, struct sess_id id)
{
	uint64_t h = run * 0x9E3779B97F4A7C15ull;
	h ^= ((uint64_t)id.worker << 48 | (uint64_t)id.slot) * 0xC2B2AE3D27D4EB4Full;
	h ^= (uint64_t)id.gen * 0x165667B19E3779F9ull;
	return h ^ (h >> 29);
}

/* The place (run, id), made when missing (cid NULL) with make; NULL when
 * missing, or out of memory (make). */
static struct place *place_get(struct ptable *t, uint64_t run, struct sess_id id, bool make)
{
	if (make && (t->len + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct place *e = calloc(cap, sizeof(*e));
		if (!e)
			return NULL;
		for (size_t i = 0; i < t->cap; i++) {
			if (!t->e[i].run)
				continue;
			size_t at = t->e[i].hash & (cap - 1);
			while (e[at].run)
				at = (at + 1) & (cap - 1);
			e[at] = t->e[i];
		}
		free(t->e);
		t->e = e;
		t->cap = cap;
	}
	if (!t->cap)
		return NULL;
	uint64_t h = place_hash(run, id);
	size_t at = h & (t->cap - 1);
	for (; t->e[at].run; at = (at + 1) & (t->cap - 1)) {
		struct place *x = &t->e[at];
		if (x->hash == h && x->run == run && sess_id_eq(x->id, id))
			return x;
	}
	if (!make)
		return NULL;
	t->e[at] = (struct place){.run = run, .id = id, .hash = h};
	t->len++;
	return &t->e[at];
}

/* The slot of (stamp, h) in p, or of the empty slot where it would go. */
static uint64_t *pairs_slot(const struct pairs *p, uint64_t stamp, uint64_t h)
{
	size_t at = place_hash(stamp, (struct sess_id){0}) ^ h;
	for (;; at++) {
		uint64_t *x = p->e[at & (p->cap - 1)];
		if (!x[0] || (x[0] == stamp && x[1] == h))
			return x;
	}
}

/* Add (stamp, h) to p: 1 added (*value 0), 0 already there, -1 out of
 * memory; *value (may be NULL) is its value. */
static int pairs_add_v(struct pairs *p, uint64_t stamp, uint64_t h, uint64_t **value)
{
	if ((p->len + 1) * 2 > p->cap) {
		struct pairs n = {calloc(p->cap ? p->cap * 2 : 1024, sizeof(*p->e)),
		                  p->cap ? p->cap * 2 : 1024, p->len};
		if (!n.e)
			return -1;
		for (size_t i = 0; i < p->cap; i++)
			if (p->e[i][0])
				memcpy(pairs_slot(&n, p->e[i][0], p->e[i][1]), p->e[i],
				       sizeof(*p->e));
		free(p->e);
		*p = n;
	}
	uint64_t *x = pairs_slot(p, stamp, h);
	if (value)
		*value = &x[2];
	if (x[0])
		return 0;
	x[0] = stamp;
	x[1] = h;
	x[2] = 0;
	p->len++;
	return 1;
}

static int pairs_add(struct pairs *p, uint64_t stamp, uint64_t h)
{
	return pairs_add_v(p, stamp, h, NULL);
}

/* The value of (stamp, h), or NULL when p does not hold it. */
static const uint64_t *pairs_get(const struct pairs *p, uint64_t stamp, uint64_t h)
{
	if (!p->cap)
		return NULL;
	const uint64_t *x = pairs_slot(p, stamp, h);
	return x[0] ? &x[2] : NULL;
}

static bool pairs_has(const struct pairs *p, uint64_t stamp, uint64_t h)
{
	return pairs_get(p, stamp, h) != NULL;
}

/* Is (stamp, rank, wall) later than what e holds? The live store's order
 * (route/retain.c): in a cluster (ranks set) the publish time and origin
 * first, ties and a single node by the node-wide stamp. */
static bool later(const struct rentry *e, uint64_t stamp, uint64_t rank, uint64_t wall)
{
	if (e->stamp == 0)
		return true;
	if ((e->rank | rank) && (e->wall != wall || e->rank != rank))
		return wall > e->wall || (wall == e->wall && rank > e->rank);
	return stamp > e->stamp;
}

/* A session record: the last one of its client id (by stamp) stays. */
static int on_session(struct state *s, const struct record *r)
{
	struct rec_sess rs;
	if (rec_sess_get(r->payload, r->payload_len, r->type, &rs) != 0) {
		s->rejected++;
		return 0;
	}
	if (rs.stamp > s->max_sess_stamp)
		s->max_sess_stamp = rs.stamp;
	struct rentry *e = rt_get(&s->st, rs.client_id, rs.client_id_len);
	if (!e)
		return s->oom = 1, -1;
	if (r->type == REC_SESS_END && rs.stamp > e->end_stamp)
		e->end_stamp = rs.stamp;
	if (rs.place.run) {
		if (rs.place.run > s->max_run)
			s->max_run = rs.place.run;
		struct place *pl = place_get(&s->places, rs.place.run, rs.place.id, true);
		if (!pl)
			return s->oom = 1, -1;
		if (!pl->cid) {
			if (!(pl->cid = malloc(rs.client_id_len)))
				return s->oom = 1, -1;
			memcpy(pl->cid, rs.client_id, rs.client_id_len);
			pl->cid_len = rs.client_id_len;
		}
		if (rs.stamp > pl->last_put)
			pl->last_put = rs.stamp;
	}
	if (e->stamp != 0 && rs.stamp <= e->stamp)
		return 0;
	uint8_t *copy = NULL;
	if (rs.enc) {
		copy = malloc(rs.enc_len);
		if (!copy)
			return s->oom = 1, -1;
		memcpy(copy, rs.enc, rs.enc_len);
	}
	free(e->enc);
	e->enc = copy;
	e->enc_len = rs.enc_len;
	e->stamp = rs.stamp;
	e->wall = r->wall_ms;
	return 0;
}

static int rel_note(struct state *s, bool inbound, bool owed, uint64_t stamp, uint16_t pid,
                    const uint8_t *cid, uint16_t cid_len);

/* A message record: kept with its targets until every session is known.
 * A REC_MSG_IN says its publisher's inbound id too, as an REC_IN_QOS2 of
 * the message's stamp would. */
static int on_message(struct state *s, const struct record *r)
{
	struct rec_msg rm;
	struct msg *m;
	struct rec_inbound in;
	int rc = r->type == REC_MSG_IN
	             ? rec_msg_in_get(r->payload, r->payload_len, s->now_ms, s->now_wall_ms, &in,
	                              &rm, &m)
	             : rec_msg_get(r->payload, r->payload_len, s->now_ms, s->now_wall_ms, &rm, &m);
	if (rc != 0) {
		if (errno == ENOMEM)
			return s->oom = 1, -1;
		s->rejected++;
		return 0;
	}
	if (rm.stamp > s->max_sess_stamp)
		s->max_sess_stamp = rm.stamp;
	if (rm.run > s->max_run)
		s->max_run = rm.run;
	if (s->msgs_len == s->msgs_cap) {
		size_t cap = s->msgs_cap ? s->msgs_cap * 2 : 1024;
		struct jmsg *x = realloc(s->msgs, cap * sizeof(*x));
		if (!x)
			goto oom;
		s->msgs = x;
		s->msgs_cap = cap;
	}
	struct rec_msg_target *t = malloc(rm.n * sizeof(*t));
	if (!t)
		goto oom;
	for (uint16_t i = 0; i < rm.n; i++)
		rec_msg_target(&rm, i, &t[i]);
	if (m) {
		m->jstamp = rm.stamp;
		m->recovered = true;
	}
	s->msgs[s->msgs_len++] = (struct jmsg){rm.stamp, rm.run, m, t, rm.n};
	if (r->type == REC_MSG_IN)
		return rel_note(s, true, true, rm.stamp, in.pid, in.client_id, in.client_id_len);
	return 0;
oom:
	if (m)
		msg_unref(m);
	return s->oom = 1, -1;
}

static int on_done(struct state *s, const struct record *r)
{
	struct rec_msg_done d;
	if (rec_msg_done_get(r->payload, r->payload_len, &d) != 0) {
		s->rejected++;
		return 0;
	}
	if (d.stamp > s->max_sess_stamp)
		s->max_sess_stamp = d.stamp;
	if (pairs_add(&s->done, d.stamp, key_hash(d.client_id, d.client_id_len)) < 0)
		return s->oom = 1, -1;
	return 0;
}

static size_t rel_slot(const struct reltable *t, uint64_t h, uint16_t pid)
{
	return (size_t)((h ^ (uint64_t)pid * 0x9E3779B97F4A7C15ull) & (t->cap - 1));
}

static int on_release(struct state *s, const struct record *r)
{
	struct rec_release rr;
	bool with_msg = rec_release_with_msg(r->type);
	if (rec_release_get(r->payload, r->payload_len, with_msg, &rr) != 0) {
		s->rejected++;
		return 0;
	}
	if (rr.stamp > s->max_sess_stamp)
		s->max_sess_stamp = rr.stamp;
	uint64_t h = key_hash(rr.client_id, rr.client_id_len);
	if (r->type == REC_MSG_SENT) {
		uint64_t *v;
		if (pairs_add_v(&s->sent, rr.msg_stamp, h, &v) < 0)
			return s->oom = 1, -1;
		if (rr.stamp > *v >> 16)
			*v = rr.stamp << 16 | rr.pid; /* the later sending holds */
		return 0;
	}
	if (r->type == REC_MSG_REL && rr.msg_stamp && pairs_add(&s->done, rr.msg_stamp, h) < 0)
		return s->oom = 1, -1;
	return rel_note(s, r->type == REC_IN_QOS2 || r->type == REC_IN_REL,
	                r->type == REC_MSG_REL || r->type == REC_IN_QOS2, rr.stamp, rr.pid,
	                rr.client_id, rr.client_id_len);
}

/* A packet id's step (client id, pid; inbound or a delivery's): the later by
 * stamp holds; owed: a PUBREL owed (a delivery's) or awaited (inbound). */
static int rel_note(struct state *s, bool inbound, bool owed, uint64_t stamp, uint16_t pid,
                    const uint8_t *cid, uint16_t cid_len)
{
	uint64_t h = key_hash(cid, cid_len);
	struct reltable *t = &s->rels;
	if ((t->len + 1) * 2 > t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct rel *e = calloc(cap, sizeof(*e));
		if (!e)
			return s->oom = 1, -1;
		struct reltable n = {e, cap, t->len};
		for (size_t i = 0; i < t->cap; i++) {
			if (!t->e[i].hash)
				continue;
			size_t at = rel_slot(&n, t->e[i].hash, t->e[i].pid);
			while (e[at].hash)
				at = (at + 1) & (cap - 1);
			e[at] = t->e[i];
		}
		free(t->e);
		*t = n;
	}
	size_t at = rel_slot(t, h, pid);
	for (; t->e[at].hash; at = (at + 1) & (t->cap - 1)) {
		struct rel *x = &t->e[at];
		if (x->hash == h && x->pid == pid && x->inbound == inbound &&
		    x->cid_len == cid_len && memcmp(x->cid, cid, cid_len) == 0)
			break;
	}
	struct rel *x = &t->e[at];
	if (!x->hash) {
		if (!(x->cid = malloc(cid_len)))
			return s->oom = 1, -1;
		memcpy(x->cid, cid, cid_len);
		x->cid_len = cid_len;
		x->hash = h;
		x->pid = pid;
		x->inbound = inbound;
		t->len++;
	} else if (stamp <= x->stamp) {
		return 0;
	}
	x->stamp = stamp;
	x->owed = owed;
	return 0;
}

static int on_record(void *ctx, const struct record *r, uint64_t offset)
{
	(void)offset;
	struct state *s = ctx;
	struct rec_retain rr;
	struct msg *m = NULL;
	switch (r->type) {
	case REC_SESS_PUT:
	case REC_SESS_END:
	case REC_SESS_PLACED:
		return on_session(s, r);
	case REC_MSG:
	case REC_MSG_IN:
		return on_message(s, r);
	case REC_MSG_DONE:
		return on_done(s, r);
	case REC_MSG_REL:
	case REC_MSG_COMP:
	case REC_MSG_SENT:
	case REC_IN_QOS2:
	case REC_IN_REL:
		return on_release(s, r);
	case REC_RETAIN_SET:
		if (rec_retain_set_get(r->payload, r->payload_len, s->now_ms, s->now_wall_ms, &rr,
		                       &m) != 0) {
			if (errno == ENOMEM)
				return s->oom = 1, -1;
			s->rejected++; /* its checksum holds: not damage, so not a cut */
			return 0;
		}
		break;
	case REC_RETAIN_DEL:
		if (rec_retain_del_get(r->payload, r->payload_len, &rr) != 0) {
			s->rejected++;
			return 0;
		}
		break;
	default:
		s->unknown++; /* a later build's record: not ours to judge */
		return 0;
	}
	if (rr.stamp > s->max_stamp)
		s->max_stamp = rr.stamp;
	struct rentry *e = rt_get(&s->rt, rr.topic, rr.topic_len);
	if (!e) {
		if (m)
			msg_unref(m);
		s->oom = 1;
		return -1;
	}
	if (!later(e, rr.stamp, rr.origin_rank, rr.wall_ms)) {
		if (m)
			msg_unref(m);
		return 0;
	}
	if (e->m)
		msg_unref(e->m);
	e->m = m; /* NULL: deleted, or expired */
	e->expired = r->type == REC_RETAIN_SET && !m;
	e->stamp = rr.stamp;
	e->rank = rr.origin_rank;
	e->wall = rr.wall_ms;
	if (m)
		m->retain_stamp = rr.stamp;
	return 0;
}

#define RECOVER_READ_TRIES 10

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool listed(char **names, size_t n, const char *name)
{
	return bsearch(&name, names, n, sizeof(*names), by_name) != NULL;
}

/* A compaction's mark counts when every snapshot it names is there (it
 * was made after they were durable; a copy may lack them). */
static bool mark_complete(const char *dir, const char *mark, char **names, size_t n)
{
	char path[CONFIG_PATH_MAX + 64], line[64];
	snprintf(path, sizeof(path), "%s/%s", dir, mark);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	unsigned snapshots = 0;
	bool ok = true;
	while (ok && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		unsigned w;
		uint64_t seg;
		enum journal_file k;
		ok = journal_name_parse(line, &w, &seg, &k) == 0 && k == JFILE_SNAPSHOT &&
		     listed(names, n, line);
		snapshots++;
	}
	fclose(f);
	return ok && snapshots > 0;
}

static int by_stamp(const void *a, const void *b)
{
	uint64_t x = ((const struct jmsg *)a)->stamp, y = ((const struct jmsg *)b)->stamp;
	return x < y ? -1 : x > y;
}

/* Give each restored session the messages it had not done with, in stamp
 * order (recover.h), and free them. */
static int give_messages(struct state *s, recover_message_fn msg, void *ctx, bool give,
                         struct recover_result *res)
{
	int rc = 0;
	if (s->msgs_len > 1)
		qsort(s->msgs, s->msgs_len, sizeof(*s->msgs), by_stamp);
	for (size_t i = 0; i < s->msgs_len; i++) {
		struct jmsg *j = &s->msgs[i];
		for (uint16_t k = 0; give && rc == 0 && k < j->n; k++) {
			const struct rec_msg_target *t = &j->t[k];
			struct place *pl = place_get(&s->places, j->run, t->id, false);
			struct rentry *e =
			    pl && pl->cid ? rt_find(&s->st, pl->cid, pl->cid_len) : NULL;
			if (!e || !e->restored || e->end_stamp > pl->last_put) {
				res->messages_orphaned++;
				continue;
			}
			uint64_t h = key_hash(pl->cid, pl->cid_len);
			if (pairs_has(&s->done, j->stamp, h))
				continue;
			int added = pairs_add(&s->given, j->stamp, h);
			if (added < 0) {
				rc = -1;
				break;
			}
			if (added == 0)
				continue; /* a snapshot's copy and the original: once */
			if (!j->m) {
				res->messages_expired++;
				continue;
			}
			res->messages++;
			/* A QoS 2 delivery that went out goes again under its id. */
			const uint64_t *sent =
			    t->qos == 2 ? pairs_get(&s->sent, j->stamp, h) : NULL;
			uint16_t pid = sent ? (uint16_t)*sent : 0;
			if (msg)
				msg(ctx, e->where, msg_ref(j->m), t->qos, t->flags, t->sub_id, pid);
		}
		if (j->m)
			msg_unref(j->m);
		free(j->t);
	}
	free(s->msgs);
	s->msgs = NULL;
	for (size_t i = 0; i < s->rels.cap; i++) {
		struct rel *x = &s->rels.e[i];
		if (!x->hash)
			continue;
		struct rentry *e = rt_find(&s->st, x->cid, x->cid_len);
		if (give && rc == 0 && x->owed && e && e->restored && x->stamp > e->end_stamp) {
			if (x->inbound)
				res->inbound++;
			else
				res->releases++;
			if (msg)
				msg(ctx, e->where, NULL, x->inbound ? 0 : 2, 0, 0, x->pid);
		}
		free(x->cid);
	}
	free(s->rels.e);
	for (size_t i = 0; i < s->places.cap; i++)
		free(s->places.e[i].cid);
	free(s->places.e);
	free(s->done.e);
	free(s->given.e);
	free(s->sent.e);
	return rc;
}

static int recover(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                   recover_session_fn sess, recover_message_fn msg, void *ctx,
                   struct recover_result *res, bool cut, char *err, size_t err_len)
{
	memset(res, 0, sizeof(*res));
	uint64_t t0 = clock_now_ns();
	struct state s = {.now_ms = now_ms};
	s.now_wall_ms = clock_wall_ms();

	char dir[CONFIG_PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/journal", cfg->data_dir);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			res->next_segment = 1;
			res->next_stamp = 1;
			res->next_sess_stamp = 1;
			res->next_run = 1;
			return 0;
		}
		snprintf(err, err_len, "cannot read %s: %s", dir, strerror(errno));
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	uint64_t max_seg = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned w;
		uint64_t seg;
		enum journal_file k;
		if (journal_name_parse(de->d_name, &w, &seg, &k) != 0)
			continue;
		if (seg > max_seg)
			max_seg = seg;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **x = realloc(names, cap * sizeof(*x));
			if (!x) {
				rc = -1;
				break;
			}
			names = x;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc != 0)
		snprintf(err, err_len, "out of memory listing %s", dir);
	if (n > 1)
		qsort(names, n, sizeof(*names), by_name);

	/* The newest complete compaction: files of older segments are
	 * superseded (a crash in the middle of its deletions left them; a
	 * delete they lack would bring old values back). */
	uint64_t base = 0;
	for (size_t i = n; rc == 0 && i-- > 0;) {
		unsigned w;
		uint64_t seg;
		enum journal_file k;
		journal_name_parse(names[i], &w, &seg, &k);
		if (k == JFILE_MARK && seg > base && mark_complete(dir, names[i], names, n))
			base = seg;
	}
	uint64_t superseded = 0;
	bool vanished = false;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		unsigned w;
		uint64_t seg;
		enum journal_file k;
		journal_name_parse(names[i], &w, &seg, &k);
		if (seg >= base && k != JFILE_MARK)
			continue;
		if (seg < base) {
			superseded++;
			if (cut) {
				char path[CONFIG_PATH_MAX + 300];
				snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
				unlink(path); /* the compaction's own work, finished */
			}
		}
		names[i][0] = '\0'; /* not read */
	}
	if (superseded)
		LOG_INFO("journal %s: %llu files older than the compaction of segment %llu %s", dir,
		         (unsigned long long)superseded, (unsigned long long)base,
		         cut ? "removed (its deletions had not finished)" : "left out");

	for (size_t i = 0; rc == 0 && i < n; i++) {
		if (!names[i][0])
			continue;
		char path[CONFIG_PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		struct stat st;
		int got = stat(path, &st);
		if (got != 0 && errno == ENOENT && !cut) {
			vanished = true; /* a running node's compaction removed it: again */
			break;
		}
		if (got != 0 && errno != ENOENT) {
			/* Data there that cannot be read: not a start without it. */
			snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
			rc = -1;
			break;
		}
		if (got != 0 || !S_ISREG(st.st_mode)) {
			LOG_WARN("journal %s: not a regular file; skipped", path);
			continue;
		}
		struct scan_result sr;
		if (journal_scan(path, on_record, &s, &sr) != 0) {
			if (!cut && access(path, F_OK) != 0 && errno == ENOENT) {
				vanished = true;
				break;
			}
			if (access(path, R_OK) != 0) {
				snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
				rc = -1;
				break;
			}
			/* A file whose header never made it (a crash while it was
			 * created) holds nothing; a damaged header hides what it
			 * holds: say so loudly and go on. */
			LOG_WARN("journal %s: %s; skipped", path, sr.err);
			continue;
		}
		if (s.oom) {
			snprintf(err, err_len, "out of memory reading %s", path);
			rc = -1;
			break;
		}
		res->files++;
		res->records += sr.records;
		res->bytes += sr.file_size;
		if (sr.stop != RECORD_OK && !cut) {
			res->cut++; /* reported only: a running node may be writing it */
			res->cut_bytes += sr.file_size - sr.good_end;
		} else if (sr.stop != RECORD_OK) {
			LOG_WARN(
			    "journal %s: %s at byte %llu of %llu: cut there (%llu good records "
			    "before it are kept)",
			    path, sr.stop == RECORD_TORN ? "torn tail" : "damaged record",
			    (unsigned long long)sr.good_end, (unsigned long long)sr.file_size,
			    (unsigned long long)sr.records);
			if (sr.err[0])
				LOG_WARN("journal %s: %s", path, sr.err);
			res->cut++;
			res->cut_bytes += sr.file_size - sr.good_end;
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || ftruncate(fd, (off_t)sr.good_end) != 0)
				LOG_WARN(
				    "journal %s: cannot cut at %llu: %s (read the same way next "
				    "time)",
				    path, (unsigned long long)sr.good_end, strerror(errno));
			if (fd >= 0)
				close(fd);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);

	for (size_t i = 0; i < s.rt.cap; i++) {
		struct rentry *e = &s.rt.e[i];
		if (!e->topic)
			continue;
		if (e->expired)
			res->retained_expired++;
		if (e->m && rc == 0 && !vanished) {
			res->retained++;
			put(ctx, e->m);
		} else if (e->m) {
			msg_unref(e->m);
		}
		free(e->topic);
	}
	free(s.rt.e);
	for (size_t i = 0; i < s.st.cap; i++) {
		struct rentry *e = &s.st.e[i];
		if (!e->topic)
			continue;
		if (e->enc && rc == 0 && !vanished) {
			int r = sess ? sess(ctx, e->topic, e->topic_len, e->enc, e->enc_len,
			                    e->wall, &e->where)
			             : 0;
			if (r == 0) {
				res->sessions++;
				e->restored = true;
			} else if (r == 1) {
				res->sessions_expired++;
			} else {
				res->sessions_refused++;
				LOG_WARN(
				    "journal %s: the session of client id \"%.*s\" could not be "
				    "restored (see above)",
				    dir, (int)e->topic_len, (const char *)e->topic);
			}
		}
		free(e->enc);
		e->enc = NULL;
	}
	if (give_messages(&s, msg, ctx, rc == 0 && !vanished, res) != 0 && rc == 0) {
		snprintf(err, err_len, "out of memory giving back the sessions' messages");
		rc = -1;
	}
	for (size_t i = 0; i < s.st.cap; i++)
		free(s.st.e[i].topic);
	free(s.st.e);
	res->unknown = s.unknown;
	res->rejected = s.rejected;
	if (s.rejected)
		LOG_WARN("journal %s: %llu records whose checksum holds but whose contents this "
		         "build refuses were skipped",
		         dir, (unsigned long long)s.rejected);
	res->next_segment = max_seg + 1;
	res->next_stamp = s.max_stamp + 1;
	res->next_sess_stamp = s.max_sess_stamp + 1;
	res->next_run = s.max_run + 1;
	res->ms = (clock_now_ns() - t0) / 1000000u;
	return vanished && rc == 0 ? 1 : rc;
}

int recover_run(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                recover_session_fn sess, recover_message_fn msg, void *ctx,
                struct recover_result *res, char *err, size_t err_len)
{
	return recover(cfg, now_ms, put, sess, msg, ctx, res, true, err, err_len);
}

int recover_read(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                 recover_session_fn sess, recover_message_fn msg, void *ctx,
                 struct recover_result *res, char *err, size_t err_len)
{
	/* A running node's compaction may remove a file between the listing
	 * and its reading (its snapshot, newer, is then there): read again. */
	for (int attempt = 1; attempt <= RECOVER_READ_TRIES; attempt++) {
		int rc = recover(cfg, now_ms, put, sess, msg, ctx, res, false, err, err_len);
		if (rc != 1)
			return rc;
	}
	snprintf(err, err_len, "files kept vanishing under the reading (%d tries)",
	         RECOVER_READ_TRIES);
	return -1;
}
