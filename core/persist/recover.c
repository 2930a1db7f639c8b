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
};

struct rtable {
	struct rentry *e; /* open addressing, topic NULL = empty */
	size_t cap, len;
};

struct state {
	struct rtable rt;
	struct rtable st; /* sessions */
	uint64_t max_sess_stamp;
	uint64_t now_ms, now_wall_ms;
	uint64_t max_stamp;
	uint64_t unknown, rejected;
	int oom;
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h | 1;
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
	uint64_t h = hash_bytes(topic, len);
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
	if (rec_sess_get(r->payload, r->payload_len, r->type == REC_SESS_END, &rs) != 0) {
		s->rejected++;
		return 0;
	}
	if (rs.stamp > s->max_sess_stamp)
		s->max_sess_stamp = rs.stamp;
	struct rentry *e = rt_get(&s->st, rs.client_id, rs.client_id_len);
	if (!e)
		return s->oom = 1, -1;
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

static int on_record(void *ctx, const struct record *r, uint64_t offset)
{
	(void)offset;
	struct state *s = ctx;
	struct rec_retain rr;
	struct msg *m = NULL;
	switch (r->type) {
	case REC_SESS_PUT:
	case REC_SESS_END:
		return on_session(s, r);
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

static int recover(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                   recover_session_fn sess, void *ctx, struct recover_result *res, bool cut,
                   char *err, size_t err_len)
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
			int r = sess
			            ? sess(ctx, e->topic, e->topic_len, e->enc, e->enc_len, e->wall)
			            : 0;
			if (r == 0) {
				res->sessions++;
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
		free(e->topic);
	}
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
	res->ms = (clock_now_ns() - t0) / 1000000u;
	return vanished && rc == 0 ? 1 : rc;
}

int recover_run(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                recover_session_fn sess, void *ctx, struct recover_result *res, char *err,
                size_t err_len)
{
	return recover(cfg, now_ms, put, sess, ctx, res, true, err, err_len);
}

int recover_read(const struct config *cfg, uint64_t now_ms, recover_retained_fn put,
                 recover_session_fn sess, void *ctx, struct recover_result *res, char *err,
                 size_t err_len)
{
	/* A running node's compaction may remove a file between the listing
	 * and its reading (its snapshot, newer, is then there): read again. */
	for (int attempt = 1; attempt <= RECOVER_READ_TRIES; attempt++) {
		int rc = recover(cfg, now_ms, put, sess, ctx, res, false, err, err_len);
		if (rc != 1)
			return rc;
	}
	snprintf(err, err_len, "files kept vanishing under the reading (%d tries)",
	         RECOVER_READ_TRIES);
	return -1;
}
