/*
 * compact.c — compaction by snapshot (see compact.h).
 */
#include "persist/compact.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/check.h"
#include "base/clock.h"
#include "base/log.h"
#include "io/op.h"
#include "persist/msg_journal.h"
#include "persist/record.h"
#include "persist/session_journal.h"

enum {
	MAIL_COMPACT_BEGIN = MAIL_KIND_JOURNAL, /* worker 0 to all: start segment gen */
	MAIL_COMPACT_ROTATED,                   /* a worker to all: it started segment gen */
};

enum {
	SLOT_SNAP_OPEN = JOURNAL_SLOT_SNAPSHOT,
	SLOT_SNAP_WRITE,
	SLOT_SNAP_SYNC,
	SLOT_SNAP_DIRSYNC,
	SLOT_SNAP_CLOSE,
};

#define SNAPSHOT_RETRY_MS 5000 /* a snapshot that failed (disk full) is tried again */

struct mail_compact {
	uint64_t gen;
};

int compact_node_init(struct compact_node *n, const struct config *cfg, unsigned workers,
                      uint64_t next_segment, bool keep_old, bool start_wanted)
{
	memset(n, 0, sizeof(*n));
	n->written = calloc(workers, sizeof(*n->written));
	if (!n->written)
		return -1;
	n->workers = workers;
	n->threshold = cfg->persistence_compact_bytes;
	n->keep_old = keep_old;
	atomic_store(&n->next_segment, next_segment);
	atomic_store(&n->start_wanted, start_wanted && !keep_old);
	snprintf(n->dir, sizeof(n->dir), "%s/journal", cfg->data_dir);
	return 0;
}

void compact_node_fini(struct compact_node *n)
{
	if (n->thread_started)
		pthread_join(n->thread, NULL);
	free(n->written);
	n->written = NULL;
}

/* ---- the round --------------------------------------------------------- */

static void send_all(struct compact *c, uint8_t kind, uint64_t gen)
{
	for (unsigned k = 0; k < c->node->workers; k++) {
		if (k == c->id)
			continue;
		struct mbox_msg mb = {.kind = kind, .cls = MBOX_CONTROL};
		struct mail_compact m = {gen};
		memcpy(mb.body, &m, sizeof(m));
		mail_send(c->mail, (uint16_t)k, &mb); /* control mail is never refused */
	}
}

static void enter(struct compact *c, uint64_t gen)
{
	if (c->gen == gen)
		return;
	c->gen = gen;
	c->rotated = 0;
	c->self_rotated = false;
	c->snapped = false;
}

static void snapshot_start(struct compact *c);

static void maybe_snapshot(struct compact *c)
{
	if (c->self_rotated && c->rotated == c->node->workers && !c->writing && !c->snapped &&
	    c->gen && (!c->retry_at_ms || *c->now_ms >= c->retry_at_ms))
		snapshot_start(c);
}

static void begin(struct compact *c, uint64_t gen)
{
	if (journal_rotating(c->j)) {
		c->begin_wanted = gen; /* the last round's switch is still under way */
		return;
	}
	c->begin_wanted = 0;
	enter(c, gen);
	journal_rotate(c->j, gen);
	/* From here on this worker's records go to segment gen; everything it
	 * mailed before is ahead of this in every mailbox. */
	send_all(c, MAIL_COMPACT_ROTATED, gen);
	c->self_rotated = true;
	c->rotated++;
	maybe_snapshot(c);
}

static void on_mail(void *ctx, const struct mbox_msg *mb)
{
	struct compact *c = ctx;
	struct mail_compact m;
	memcpy(&m, mb->body, sizeof(m));
	if (mb->kind == MAIL_COMPACT_BEGIN) {
		begin(c, m.gen);
		return;
	}
	enter(c, m.gen);
	c->rotated++;
	maybe_snapshot(c);
}

static void on_discard(const struct mbox_msg *mb)
{
	(void)mb; /* references nothing */
}

void compact_init(struct compact *c, struct compact_node *n, uint16_t id, struct journal *j,
                  struct retain *shard, struct mail *mail, const uint64_t *now_ms)
{
	memset(c, 0, sizeof(*c));
	c->node = n;
	c->id = id;
	c->j = j;
	c->shard = shard;
	c->mail = mail;
	c->now_ms = now_ms;
	c->fd = -1;
	mail_register(mail, MAIL_COMPACT_BEGIN, on_mail, on_discard, c);
	mail_register(mail, MAIL_COMPACT_ROTATED, on_mail, on_discard, c);
}

void compact_start(struct compact *c, struct ring *ring)
{
	c->ring = ring;
}

void compact_fini(struct compact *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	c->buf = NULL;
}

/* ---- the snapshot ------------------------------------------------------ */

struct encode {
	struct compact *c;
	uint64_t lsn, now_ms, wall;
	size_t len, cap;
	uint8_t *buf;
	bool oom;
};

/* Room for total more bytes in the snapshot's buffer. */
static bool room(struct encode *e, size_t total)
{
	if (e->oom)
		return false;
	if (e->len + total > e->cap) {
		size_t cap = e->cap * 2;
		while (cap < e->len + total)
			cap *= 2;
		uint8_t *p = realloc(e->buf, cap);
		if (!p) {
			e->oom = true;
			return false;
		}
		e->buf = p;
		e->cap = cap;
	}
	return true;
}

static void encode_one(void *ctx, struct msg *m)
{
	struct encode *e = ctx;
	if (e->oom || (m->pub.topic.len >= 4 && memcmp(m->pub.topic.ptr, "$SYS", 4) == 0))
		return; /* $SYS is published again after a start */
	size_t plen = rec_retain_set_size(m);
	size_t total = record_size(plen);
	if (!room(e, total))
		return;
	uint8_t *rec = e->buf + e->len;
	rec_retain_set_put(record_payload(rec), m, m->retain_stamp, e->now_ms, e->wall);
	record_seal(rec, total, REC_RETAIN_SET, ++e->lsn, e->wall);
	e->len += total;
}

/* One journaled message of s as a REC_MSG naming s alone, with its stamp
 * (session_journaled_walk's message). */
static void encode_message(void *ctx, const struct session *s, const struct msg *m, uint8_t qos,
                           uint8_t flags, uint32_t sub_id)
{
	struct encode *e = ctx;
	struct rec_msg_target t = {.id = s->id,
	                           .sub_id = sub_id,
	                           .qos = qos,
	                           .flags = flags & (DELIV_RETAIN | DELIV_SHARED)};
	size_t total = record_size(rec_msg_size(m, 1));
	if (!room(e, total))
		return;
	uint8_t *rec = e->buf + e->len;
	rec_msg_put(record_payload(rec), m, m->jstamp, e->c->j->run, &t, 1, e->now_ms, e->wall);
	record_seal(rec, total, REC_MSG, ++e->lsn, e->wall);
	e->len += total;
}

/* A packet id's state as a record of `type` with a new stamp (later than
 * the records it replaces; session_journaled_walk's packet_id). */
static void encode_packet_id(void *ctx, const struct session *s, uint8_t type, uint64_t msg_stamp,
                             uint16_t pid)
{
	struct encode *e = ctx;
	struct rec_release r = {
	    .stamp = atomic_fetch_add_explicit(e->c->sess_stamps, 1, memory_order_relaxed) + 1,
	    .msg_stamp = msg_stamp,
	    .pid = pid,
	    .client_id = (const uint8_t *)s->client_id,
	    .client_id_len = s->client_id_len};
	bool with_msg = rec_release_with_msg(type);
	size_t total = record_size(rec_release_size(s->client_id_len, with_msg));
	if (!room(e, total))
		return;
	uint8_t *rec = e->buf + e->len;
	rec_release_put(record_payload(rec), &r, with_msg);
	record_seal(rec, total, type, ++e->lsn, e->wall);
	e->len += total;
}

/* The worker's journaled sessions (sessions.h: those whose state the
 * journal holds), each as a REC_SESS_PLACED with a new stamp: the snapshot
 * is their state now, later than any record of them so far, and a change
 * after it is stamped later still. Then the messages the journal holds for
 * each (in flight awaiting PUBACK/PUBREC, queued), each with its own stamp,
 * the packet ids its QoS 2 deliveries went out under, the PUBRELs it owes
 * and the inbound QoS 2 ids awaiting PUBREL,
 * so that a REC_MSG_DONE written after the rotation still finds it. A
 * message that reached the session by mail was journaled before that mail
 * left its publisher's worker, so before that worker's ROTATED: it is here.
 * A session on its way to another worker is in neither table: its new
 * worker journals it when it arrives, after this worker's ROTATED
 * (compact.h: mail is FIFO per pair). */
static void encode_sessions(struct compact *c, struct encode *e)
{
	const struct sessions *t = c->sessions;
	for (uint32_t i = 0; t && i < t->cap && !e->oom; i++) {
		struct session *s = t->sess[i];
		if (!s || !t->journaled[i])
			continue;
		uint64_t stamp =
		    atomic_fetch_add_explicit(c->sess_stamps, 1, memory_order_relaxed) + 1;
		uint8_t *rec;
		size_t total = persist_session_record(s, c->j->run, stamp, e->lsn + 1, e->now_ms,
		                                      e->wall, &rec);
		if (!total || !room(e, total)) {
			free(total ? rec : NULL);
			e->oom = true;
			return;
		}
		memcpy(e->buf + e->len, rec, total);
		free(rec);
		e->len += total;
		e->lsn++;
		static const struct journaled_walk fn = {encode_message, encode_packet_id};
		session_journaled_walk(s, &fn, e);
	}
}

static void snapshot_failed(struct compact *c, const char *what, int err)
{
	LOG_ERROR("worker %u: compaction: %s %s/%s: %s; this round's older files are kept", c->id,
	          what, c->node->dir, c->name, strerror(err));
	if (c->fd >= 0)
		ring_close(c->ring, c->fd, op_pack(OP_JOURNAL, SLOT_SNAP_CLOSE, 0));
	c->fd = -1;
	c->writing = false;
	free(c->buf);
	c->buf = NULL;
	/* The round stays open (worker 0 deletes nothing until every
	 * snapshot is durable); this one is written again later. */
	c->retry_at_ms = *c->now_ms + SNAPSHOT_RETRY_MS;
}

static void snapshot_start(struct compact *c)
{
	struct encode e = {.c = c, .now_ms = *c->now_ms, .wall = clock_wall_ms(), .cap = 64 * 1024};
	e.buf = malloc(e.cap);
	c->retry_at_ms = 0;
	if (!e.buf) {
		c->retry_at_ms = *c->now_ms + SNAPSHOT_RETRY_MS;
		return;
	}
	struct journal_header h = {.version = JOURNAL_VERSION,
	                           .writer = c->id,
	                           .kind = JOURNAL_KIND_SNAPSHOT,
	                           .segment = c->gen,
	                           .created_wall_ms = e.wall};
	journal_header_put(e.buf, &h);
	e.len = JOURNAL_HEADER_BYTES;
	retain_each(c->shard, encode_one, &e);
	encode_sessions(c, &e);
	if (e.oom) {
		free(e.buf);
		LOG_ERROR("worker %u: compaction: out of memory for the snapshot (tried again in "
		          "%u s)",
		          c->id, SNAPSHOT_RETRY_MS / 1000);
		c->retry_at_ms = *c->now_ms + SNAPSHOT_RETRY_MS;
		return;
	}
	c->buf = e.buf;
	c->len = e.len;
	c->done = 0;
	c->writing = true;
	atomic_fetch_add(&c->node->snap_records, e.lsn);
	snprintf(c->name, sizeof(c->name), "w%03u-%016llx.snap", c->id, (unsigned long long)c->gen);
	ring_openat(c->ring, c->j->dir_fd, c->name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640,
	            op_pack(OP_JOURNAL, SLOT_SNAP_OPEN, 0));
}

static void snapshot_write(struct compact *c)
{
	ring_write(c->ring, c->fd, c->buf + c->done, (uint32_t)(c->len - c->done), c->done,
	           op_pack(OP_JOURNAL, SLOT_SNAP_WRITE, 0));
}

void compact_done(struct compact *c, int32_t res, uint32_t slot)
{
	if (slot == SLOT_SNAP_CLOSE)
		return;
	if (!c->writing)
		return;
	if (res < 0) {
		snapshot_failed(c, slot == SLOT_SNAP_OPEN ? "cannot create" : "cannot write", -res);
		return;
	}
	switch (slot) {
	case SLOT_SNAP_OPEN:
		c->fd = res;
		snapshot_write(c);
		return;
	case SLOT_SNAP_WRITE:
		if (res == 0) {
			snapshot_failed(c, "cannot write", ENOSPC);
			return;
		}
		c->done += (size_t)res;
		if (c->done < c->len) {
			snapshot_write(c);
			return;
		}
		/* Always flushed, whatever persistence_sync says: older files
		 * are deleted on the strength of it. */
		ring_fdatasync(c->ring, c->fd, op_pack(OP_JOURNAL, SLOT_SNAP_SYNC, 0));
		return;
	case SLOT_SNAP_SYNC:
		ring_fdatasync(c->ring, c->j->dir_fd, op_pack(OP_JOURNAL, SLOT_SNAP_DIRSYNC, 0));
		return;
	case SLOT_SNAP_DIRSYNC:
		ring_close(c->ring, c->fd, op_pack(OP_JOURNAL, SLOT_SNAP_CLOSE, 0));
		c->fd = -1;
		c->writing = false;
		c->snapped = true;
		free(c->buf);
		c->buf = NULL;
		atomic_fetch_add(&c->node->snapshots, 1);
		return;
	}
}

/* ---- worker 0: starting a round, and its end ----------------------------- */

/* Make the mark of round gen (journal.h): the names of its snapshots, then
 * the file and the directory flushed. 0, or -1. */
static int write_mark(struct compact_node *n, int dfd, uint64_t gen)
{
	char name[32];
	snprintf(name, sizeof(name), "c-%016llx.done", (unsigned long long)gen);
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	bool ok = true;
	for (unsigned i = 0; ok && i < n->workers; i++) {
		char line[48];
		int len = snprintf(line, sizeof(line), "w%03u-%016llx.snap\n", i,
		                   (unsigned long long)gen);
		ok = write(fd, line, (size_t)len) == len;
	}
	ok = ok && fsync(fd) == 0;
	close(fd);
	return ok && fsync(dfd) == 0 ? 0 : -1;
}

/* The deleting thread: the round's mark first (from then on recovery
 * ignores what is older, so a crash in the middle of the deletions cannot
 * bring back a value whose delete was in a file already gone), then every
 * file of an older segment, then the directory flushed. */
static void *cleanup(void *arg)
{
	struct compact_node *n = arg;
	uint64_t gen = atomic_load(&n->gen);
	uint64_t files = 0, bytes = 0;
	DIR *d = opendir(n->dir);
	if (!d || write_mark(n, dirfd(d), gen) != 0) {
		LOG_WARN("compaction %llu: cannot write its mark in %s: %s; older files kept",
		         (unsigned long long)gen, n->dir, strerror(errno));
		if (d)
			closedir(d);
		atomic_store(&n->gen, 0);
		atomic_store(&n->cleaning, false);
		return NULL;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned w;
		uint64_t seg;
		enum journal_file kind;
		if (journal_name_parse(de->d_name, &w, &seg, &kind) != 0 || seg >= gen)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			bytes += (uint64_t)st.st_size;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0)
			files++;
		else
			LOG_WARN("compaction: cannot remove %s/%s: %s", n->dir, de->d_name,
			         strerror(errno));
	}
	fsync(dirfd(d));
	closedir(d);
	LOG_INFO("compaction %llu: snapshots of %llu records by %u workers; %llu older files "
	         "removed (%llu bytes)",
	         (unsigned long long)gen, (unsigned long long)atomic_load(&n->snap_records),
	         n->workers, (unsigned long long)files, (unsigned long long)bytes);
	atomic_fetch_add(&n->removed_bytes, bytes);
	atomic_fetch_add(&n->runs, 1);
	atomic_store(&n->gen, 0);
	atomic_store(&n->cleaning, false);
	return NULL;
}

static void start_round(struct compact *c)
{
	struct compact_node *n = c->node;
	uint64_t gen = atomic_fetch_add(&n->next_segment, 1);
	atomic_store(&n->snapshots, 0);
	atomic_store(&n->snap_records, 0);
	atomic_store(&n->gen, gen);
	atomic_store(&n->start_wanted, false);
	send_all(c, MAIL_COMPACT_BEGIN, gen);
	begin(c, gen);
}

void compact_turn(struct compact *c)
{
	struct compact_node *n = c->node;
	if (!n || !c->j->on)
		return;
	atomic_store_explicit(&n->written[c->id], c->j->written, memory_order_relaxed);
	if (c->begin_wanted)
		begin(c, c->begin_wanted);
	if (c->retry_at_ms && *c->now_ms >= c->retry_at_ms)
		maybe_snapshot(c);
	if (c->id != 0 || n->keep_old || atomic_load(&n->cleaning))
		return;
	uint64_t gen = atomic_load(&n->gen);
	if (gen) {
		if (atomic_load(&n->snapshots) < n->workers)
			return; /* (a failed snapshot keeps the round open: nothing deleted) */
		if (n->thread_started)
			pthread_join(n->thread, NULL);
		n->thread_started = false;
		atomic_store(&n->cleaning, true);
		if (pthread_create(&n->thread, NULL, cleanup, n) != 0) {
			LOG_WARN("compaction: cannot start the thread that removes older files");
			atomic_store(&n->cleaning, false);
			return;
		}
		n->thread_started = true;
		return;
	}
	uint64_t sum = 0;
	for (unsigned i = 0; i < n->workers; i++)
		sum += atomic_load_explicit(&n->written[i], memory_order_relaxed);
	if (atomic_load(&n->start_wanted) || sum >= n->threshold)
		start_round(c);
}
