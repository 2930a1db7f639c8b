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
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "persist/record.h"

/* The last write of one topic: a message, or a delete (m NULL). */
struct rentry {
	uint8_t *topic; /* own copy */
	uint16_t topic_len;
	uint64_t hash;
	uint64_t stamp, rank, wall;
	struct msg *m;
};

struct rtable {
	struct rentry *e; /* open addressing, topic NULL = empty */
	size_t cap, len;
};

struct state {
	struct rtable rt;
	uint64_t now_ms, now_wall_ms;
	uint64_t max_stamp;
	uint64_t unknown, expired;
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

static int on_record(void *ctx, const struct record *r, uint64_t offset)
{
	(void)offset;
	struct state *s = ctx;
	struct rec_retain rr;
	struct msg *m = NULL;
	switch (r->type) {
	case REC_RETAIN_SET:
		if (rec_retain_set_get(r->payload, r->payload_len, s->now_ms, s->now_wall_ms, &rr,
		                       &m) != 0)
			return errno == ENOMEM ? (s->oom = 1, -1) : -1;
		if (rr.expired)
			s->expired++;
		break;
	case REC_RETAIN_DEL:
		if (rec_retain_del_get(r->payload, r->payload_len, &rr) != 0)
			return -1;
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
	e->stamp = rr.stamp;
	e->rank = rr.origin_rank;
	e->wall = rr.wall_ms;
	if (m)
		m->retain_stamp = rr.stamp;
	return 0;
}

/* w<writer>-<segment>.log (a segment) or .snap (a snapshot): the segment
 * number, or -1. */
static int64_t segment_of(const char *name)
{
	unsigned w;
	unsigned long long seg;
	char ext[8];
	int used = 0;
	if (sscanf(name, "w%u-%llx.%5[a-z]%n", &w, &seg, ext, &used) != 3 || name[used] != '\0' ||
	    (strcmp(ext, "log") != 0 && strcmp(ext, "snap") != 0))
		return -1;
	return (int64_t)seg;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int recover(const struct config *cfg, uint64_t now_ms, recover_retained_fn put, void *ctx,
                   struct recover_result *res, bool cut, char *err, size_t err_len)
{
	memset(res, 0, sizeof(*res));
	uint64_t t0 = clock_now_ns();
	struct state s = {.now_ms = now_ms};
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s.now_wall_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;

	char dir[CONFIG_PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s/journal", cfg->data_dir);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			res->next_segment = 1;
			res->next_stamp = 1;
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
		int64_t seg = segment_of(de->d_name);
		if (seg < 0)
			continue;
		if ((uint64_t)seg > max_seg)
			max_seg = (uint64_t)seg;
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

	for (size_t i = 0; rc == 0 && i < n; i++) {
		char path[CONFIG_PATH_MAX + 300];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		struct scan_result sr;
		if (journal_scan(path, on_record, &s, &sr) != 0) {
			/* A file whose header never made it (a crash while it was
			 * created) holds nothing: say so and go on. */
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
		if (e->m && rc == 0) {
			res->retained++;
			put(ctx, e->m);
		} else if (e->m) {
			msg_unref(e->m);
		}
		free(e->topic);
	}
	free(s.rt.e);
	res->unknown = s.unknown;
	res->retained_expired = s.expired;
	res->next_segment = max_seg + 1;
	res->next_stamp = s.max_stamp + 1;
	res->ms = (clock_now_ns() - t0) / 1000000u;
	return rc;
}

int recover_run(const struct config *cfg, uint64_t now_ms, recover_retained_fn put, void *ctx,
                struct recover_result *res, char *err, size_t err_len)
{
	return recover(cfg, now_ms, put, ctx, res, true, err, err_len);
}

int recover_read(const struct config *cfg, uint64_t now_ms, recover_retained_fn put, void *ctx,
                 struct recover_result *res, char *err, size_t err_len)
{
	return recover(cfg, now_ms, put, ctx, res, false, err, err_len);
}
