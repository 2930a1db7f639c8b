/*
 * journal.c — a worker's append-only journal on its ring (see journal.h).
 */
#include "persist/journal.h"

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
#include "persist/record.h"

/* OP_JOURNAL slots of the journal (compact.c has JOURNAL_SLOT_SNAPSHOT on). */
enum { SLOT_WRITE = 0, SLOT_SYNC = 1, SLOT_OPEN = 2, SLOT_DIRSYNC = 3, SLOT_CLOSE = 4 };

/* Tests only (meson -Dtest_hooks=true): SLTEST_FSYNC_DELAY_MS=N submits
 * each group's flush N ms after its write completed instead of linked
 * behind it, so a test can see that no acknowledgement leaves before the
 * flush completed (tests/integration/persist_test.py). */
static uint32_t fsync_delay_ms(void)
{
#ifdef STARLING_TEST_HOOKS
	static int v = -1;
	if (v < 0) {
		const char *e = getenv("SLTEST_FSYNC_DELAY_MS");
		v = e ? atoi(e) : 0;
		if (v > 0)
			LOG_WARN("test hook: every journal flush is delayed by %d ms", v);
	}
	return (uint32_t)v;
#else
	return 0;
#endif
}

/* mkdir -p for one or two levels: data_dir and data_dir/journal. */
static int make_dir(const char *path, char *err, size_t err_len)
{
	if (mkdir(path, 0750) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		snprintf(err, err_len, "%s: not a directory", path);
		return -1;
	}
	snprintf(err, err_len, "cannot create %s: %s", path, strerror(errno));
	return -1;
}

static int hex16(const char *p, uint64_t *v)
{
	uint64_t x = 0;
	for (int i = 0; i < 16; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		x = x << 4 | (uint64_t)d;
	}
	*v = x;
	return 0;
}

int journal_name_parse(const char *name, unsigned *writer, uint64_t *segment,
                       enum journal_file *kind)
{
	if (name[0] == 'c' && name[1] == '-') {
		if (hex16(name + 2, segment) != 0 || strcmp(name + 18, ".done") != 0)
			return -1;
		*writer = 0;
		*kind = JFILE_MARK;
		return 0;
	}
	if (name[0] != 'w')
		return -1;
	unsigned w = 0, digits = 0;
	const char *p = name + 1;
	while (*p >= '0' && *p <= '9' && digits < 6) {
		w = w * 10 + (unsigned)(*p++ - '0');
		digits++;
	}
	if (digits < 3 || *p++ != '-' || hex16(p, segment) != 0)
		return -1;
	p += 16;
	if (!strcmp(p, ".log"))
		*kind = JFILE_SEGMENT;
	else if (!strcmp(p, ".snap"))
		*kind = JFILE_SNAPSHOT;
	else
		return -1;
	*writer = w;
	return 0;
}

int journal_dir(const struct config *cfg, char *out, size_t len, char *err, size_t err_len)
{
	if (make_dir(cfg->data_dir, err, err_len) != 0)
		return -1;
	snprintf(out, len, "%s/journal", cfg->data_dir);
	return make_dir(out, err, err_len);
}

int journal_open(struct journal *j, const struct config *cfg, uint16_t id, uint64_t segment,
                 char *err, size_t err_len)
{
	memset(j, 0, sizeof(*j));
	j->fd = j->dir_fd = j->new_fd = -1;
	if (!cfg->persistence)
		return 0;
	char dir[CONFIG_PATH_MAX + 16];
	if (journal_dir(cfg, dir, sizeof(dir), err, err_len) != 0)
		return -1;
	snprintf(j->path, sizeof(j->path), "%s/w%03u-%016llx.log", dir, id,
	         (unsigned long long)segment);
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (j->fd < 0) {
		snprintf(err, err_len, "cannot create %s: %s", j->path, strerror(errno));
		return -1;
	}
	uint8_t head[JOURNAL_HEADER_BYTES];
	struct journal_header h = {.version = JOURNAL_VERSION,
	                           .writer = id,
	                           .kind = JOURNAL_KIND_SEGMENT,
	                           .segment = segment,
	                           .created_wall_ms = clock_wall_ms()};
	journal_header_put(head, &h);
	/* At start, on the main thread: plain blocking calls. The file's name
	 * must be durable too, or a power loss forgets the whole file. */
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pwrite(j->fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    fdatasync(j->fd) != 0 || dfd < 0 || fsync(dfd) != 0) {
		snprintf(err, err_len, "cannot write %s: %s", j->path, strerror(errno));
		if (dfd >= 0)
			close(dfd);
		close(j->fd);
		j->fd = -1;
		return -1;
	}
	j->dir_fd = dfd;
	j->new_fd = -1;
	j->on = true;
	j->id = id;
	j->sync = cfg->persistence_sync;
	j->segment = segment;
	j->seg_off = JOURNAL_HEADER_BYTES;
	j->group_ms = cfg->persistence_fsync_max_ms;
	if (j->sync == PERSIST_SYNC_FSYNC && id == 0)
		(void)fsync_delay_ms(); /* a test hook says so at start */
	j->group_bytes = cfg->persistence_fsync_max_bytes;
	return 0;
}

int journal_write_at_start(struct journal *j, const uint8_t *buf, size_t len, char *err,
                           size_t err_len)
{
	/* Main thread, before the worker runs: plain blocking calls, flushed
	 * whatever persistence_sync says (what follows depends on it). */
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(j->fd, buf + done, len - done, (off_t)(j->seg_off + done));
		if (n <= 0) {
			snprintf(err, err_len, "cannot write %s: %s", j->path,
			         n == 0 ? strerror(ENOSPC) : strerror(errno));
			return -1;
		}
		done += (size_t)n;
	}
	if (fdatasync(j->fd) != 0) {
		snprintf(err, err_len, "cannot write %s: %s", j->path, strerror(errno));
		return -1;
	}
	j->seg_off += len;
	j->written += len;
	return 0;
}

void journal_start(struct journal *j, struct ring *ring, struct ack_barrier *b,
                   struct worker_stats *st, const uint64_t *now_ms, void (*advanced)(void *ctx),
                   void *ctx)
{
	j->ring = ring;
	j->barrier = b;
	j->st = st;
	j->now_ms = now_ms;
	j->advanced = advanced;
	j->advanced_ctx = ctx;
}

/* Blocking, at the very end (main thread, the worker's loop is over):
 * whatever is still in memory goes to the file, in order. A write of the
 * flight may also have completed: the same bytes at the same offset. */
void journal_close(struct journal *j)
{
	if (j->fd < 0)
		return;
	uint64_t off = j->seg_off;
	bool ok = true;
	/* The group in flight, then the old segment's part of the fill. */
	size_t old = j->rot_segment ? j->old_end : j->fill_len;
	if (j->flight_len) /* always the current segment's: a new one's wait for the switch */
		ok = pwrite(j->fd, j->flight, j->flight_len, (off_t)off) == (ssize_t)j->flight_len;
	off += j->flight_len;
	if (ok && old)
		ok = pwrite(j->fd, j->fill, old, (off_t)off) == (ssize_t)old;
	if (!ok || fdatasync(j->fd) != 0)
		LOG_ERROR(
		    "worker %u: journal %s: the last %zu bytes could not be written at exit: %s",
		    j->id, j->path, j->flight_len + old, strerror(errno));
	close(j->fd);
	if (j->rot_segment) {
		/* The new segment's part (its header first). */
		if (j->new_fd < 0)
			j->new_fd = open(j->new_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
		size_t n = j->fill_len - j->old_end;
		if (j->new_fd < 0 || pwrite(j->new_fd, j->fill + j->old_end, n, 0) != (ssize_t)n ||
		    fdatasync(j->new_fd) != 0)
			LOG_ERROR(
			    "worker %u: journal %s: the last %zu bytes could not be written at "
			    "exit: %s",
			    j->id, j->new_path, n, strerror(errno));
		if (j->new_fd >= 0)
			close(j->new_fd);
	}
	if (j->dir_fd >= 0) {
		fsync(j->dir_fd);
		close(j->dir_fd);
	}
	j->fd = j->dir_fd = j->new_fd = -1;
	free(j->fill);
	free(j->flight);
	j->fill = j->flight = NULL;
	j->on = false;
}

uint8_t *journal_reserve(struct journal *j, size_t payload_len)
{
	if (!journal_accepting(j))
		return NULL;
	size_t total = record_size(payload_len);
	if (total > RECORD_HEAD + RECORD_LEN_MAX)
		return NULL;
	if (j->fill_len + total > j->fill_cap) {
		size_t cap = j->fill_cap ? j->fill_cap : 64 * 1024;
		while (cap < j->fill_len + total)
			cap *= 2;
		uint8_t *p = realloc(j->fill, cap);
		if (!p)
			return NULL;
		j->fill = p;
		j->fill_cap = cap;
	}
	j->rec_off = j->fill_len;
	j->rec_total = total;
	return record_payload(j->fill + j->rec_off);
}

uint64_t journal_commit(struct journal *j, uint8_t type, uint64_t wall_ms)
{
	CHECK(j->rec_total > 0 && j->rec_off == j->fill_len);
	uint64_t lsn = barrier_append(j->barrier);
	record_seal(j->fill + j->rec_off, j->rec_total, type, lsn, wall_ms);
	if (j->fill_len == 0)
		j->fill_since_ms = *j->now_ms;
	j->fill_len += j->rec_total;
	j->rec_total = 0;
	j->fill_lsn = lsn;
	j->st->journal_records++;
	if (j->sync == PERSIST_SYNC_NONE)
		barrier_durable(j->barrier, lsn); /* nothing waits: the write follows */
	return lsn;
}

static void submit(struct journal *j)
{
	const uint8_t *p = j->flight + j->flight_done;
	uint32_t len = (uint32_t)(j->flight_len - j->flight_done);
	uint64_t off = j->seg_off + j->flight_done;
	if (j->sync == PERSIST_SYNC_FSYNC && fsync_delay_ms() == 0)
		ring_write_fdatasync(j->ring, j->fd, p, len, off,
		                     op_pack(OP_JOURNAL, SLOT_WRITE, 0),
		                     op_pack(OP_JOURNAL, SLOT_SYNC, 0));
	else
		ring_write(j->ring, j->fd, p, len, off, op_pack(OP_JOURNAL, SLOT_WRITE, 0));
	j->in_flight = true;
	j->write_done = false;
}

/* The fill becomes the flight: all of it, or during a rotation the old
 * segment's part first, and the new one's once its file is open. */
static void start_group(struct journal *j)
{
	CHECK(!j->in_flight && j->flight_len == 0 && j->fill_len > 0);
	size_t take = j->fill_len;
	uint64_t lsn = j->fill_lsn;
	bool old = false;
	if (j->rot_segment) {
		if (j->old_end > 0) {
			take = j->old_end;
			lsn = j->old_lsn;
			old = true;
		} else {
			return; /* the new segment's file is not there yet (rotation_step) */
		}
	}
	size_t rest = j->fill_len - take;
	if (rest > 0) {
		/* The new part stays in the fill: into the other buffer. */
		if (j->flight_cap < rest) {
			uint8_t *p = realloc(j->flight, rest);
			if (!p)
				return; /* tried again next turn */
			j->flight = p;
			j->flight_cap = rest;
		}
		memcpy(j->flight, j->fill + take, rest);
	}
	uint8_t *p = j->flight;
	size_t cap = j->flight_cap;
	j->flight = j->fill;
	j->flight_cap = j->fill_cap;
	j->flight_len = take;
	j->flight_lsn = lsn;
	j->flight_done = 0;
	j->flight_ns = clock_now_ns();
	j->fill = p;
	j->fill_cap = cap;
	j->fill_len = rest;
	if (old)
		j->old_end = 0;
	j->st->journal_commits++;
	submit(j);
}

/* During a rotation: once the old segment has nothing left to write and
 * the new one is open, the new one is the journal. */
static void rotation_step(struct journal *j)
{
	if (!j->rot_segment || j->in_flight || j->old_end > 0 || !j->new_ready ||
	    j->fd == j->new_fd)
		return;
	ring_close(j->ring, j->fd, op_pack(OP_JOURNAL, SLOT_CLOSE, 0));
	j->fd = j->new_fd;
	j->seg_off = 0;
	j->segment = j->rot_segment;
	memcpy(j->path, j->new_path, sizeof(j->path));
	j->rot_segment = 0;
	j->new_fd = -1;
	j->new_ready = false;
}

static void open_new(struct journal *j)
{
	ring_openat(j->ring, j->dir_fd, j->new_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640,
	            op_pack(OP_JOURNAL, SLOT_OPEN, 0));
	j->new_busy = true;
}

void journal_rotate(struct journal *j, uint64_t segment)
{
	CHECK(j->on && !j->rot_segment && segment > j->segment);
	uint8_t *head = NULL;
	/* The new segment's header goes first in its part of the fill. */
	if (j->fill_len + JOURNAL_HEADER_BYTES > j->fill_cap) {
		size_t cap = j->fill_cap ? j->fill_cap * 2 : 64 * 1024;
		uint8_t *p = realloc(j->fill, cap);
		CHECK(p != NULL); /* a rotation cannot be refused: a small buffer or nothing */
		j->fill = p;
		j->fill_cap = cap;
	}
	j->rot_segment = segment;
	j->old_end = j->fill_len;
	j->old_lsn = j->fill_lsn;
	head = j->fill + j->fill_len;
	struct journal_header h = {.version = JOURNAL_VERSION,
	                           .writer = j->id,
	                           .kind = JOURNAL_KIND_SEGMENT,
	                           .segment = segment,
	                           .created_wall_ms = clock_wall_ms()};
	journal_header_put(head, &h);
	if (j->fill_len == 0)
		j->fill_since_ms = *j->now_ms;
	j->fill_len += JOURNAL_HEADER_BYTES;
	j->written = 0;
	snprintf(j->new_name, sizeof(j->new_name), "w%03u-%016llx.log", j->id,
	         (unsigned long long)segment);
	char *slash = strrchr(j->path, '/');
	snprintf(j->new_path, sizeof(j->new_path), "%.*s/%s", slash ? (int)(slash - j->path) : 1,
	         slash ? j->path : ".", j->new_name);
	j->new_fd = -1;
	j->new_ready = false;
	open_new(j);
}

static bool group_due(const struct journal *j)
{
	if (j->sync != PERSIST_SYNC_FSYNC || j->group_ms == 0)
		return true; /* at once: the write in flight is what gathers the next group */
	return j->fill_len >= j->group_bytes || *j->now_ms >= j->fill_since_ms + j->group_ms;
}

void journal_step(struct journal *j)
{
	if (j->sync_at_ms && *j->now_ms >= j->sync_at_ms) {
		j->sync_at_ms = 0; /* the test hook's delayed flush */
		ring_fdatasync(j->ring, j->fd, op_pack(OP_JOURNAL, SLOT_SYNC, 0));
	}
	if (!j->on || j->in_flight)
		return;
	if (j->failing) {
		if (*j->now_ms < j->retry_at_ms)
			return;
		if (j->flight_len) {
			submit(j); /* the failed group again, from where it stopped */
			return;
		}
		if (j->rot_segment && j->new_fd < 0 && !j->new_busy) {
			open_new(j); /* the new segment could not be created */
			return;
		}
		if (j->rot_segment && !j->new_ready && !j->new_busy) {
			/* its name's flush failed: again */
			ring_fdatasync(j->ring, j->dir_fd, op_pack(OP_JOURNAL, SLOT_DIRSYNC, 0));
			j->new_busy = true;
			return;
		}
		j->failing = j->barrier->stalled = false;
	}
	rotation_step(j);
	if (j->fill_len > 0 && group_due(j))
		start_group(j);
}

uint64_t journal_deadline_ms(const struct journal *j)
{
	if (j->sync_at_ms)
		return j->sync_at_ms;
	if (!j->on || j->in_flight)
		return 0;
	if (j->failing)
		return j->retry_at_ms;
	if (j->fill_len > 0)
		return group_due(j) ? *j->now_ms : j->fill_since_ms + j->group_ms;
	return 0;
}

static void fail(struct journal *j, int err, const char *what)
{
	j->st->journal_errors++;
	j->in_flight = false;
	j->retry_at_ms = *j->now_ms + JOURNAL_RETRY_MS;
	if (!j->failing)
		LOG_ERROR("worker %u: journal %s: %s of %zu bytes at offset %llu failed: %s; "
		          "acknowledgements that wait for it wait, new persistent work is refused "
		          "(0x97) and /readyz is false until it succeeds (tried again every %u ms)",
		          j->id, j->path, what, j->flight_len - j->flight_done,
		          (unsigned long long)(j->seg_off + j->flight_done), strerror(err),
		          JOURNAL_RETRY_MS);
	j->failing = true;
	j->barrier->stalled = true;
}

/* The group is on disk as persistence_sync asks. */
static void group_done(struct journal *j)
{
	j->seg_off += j->flight_len;
	j->written += j->flight_len;
	j->st->journal_bytes += j->flight_len;
	uint64_t ns = clock_now_ns() - j->flight_ns;
	j->st->journal_commit_ns += ns;
	j->st->journal_commit_hist[stats_loop_bucket(ns)]++;
	j->flight_len = j->flight_done = 0;
	j->in_flight = j->write_done = false;
	if (j->failing) {
		j->failing = false;
		j->barrier->stalled = false;
		LOG_INFO("worker %u: journal %s: writing again", j->id, j->path);
	}
	if (j->sync != PERSIST_SYNC_NONE) {
		barrier_durable(j->barrier, j->flight_lsn);
		if (j->advanced)
			j->advanced(j->advanced_ctx);
	}
	rotation_step(j);
	/* What gathered meanwhile goes now (a turn sooner than the step). */
	if (j->fill_len > 0 && group_due(j))
		start_group(j);
}

void journal_done(struct journal *j, int32_t res, uint32_t slot)
{
	if (!j->on)
		return;
	if (slot == SLOT_CLOSE)
		return; /* an old segment's descriptor: nothing to do either way */
	if (slot == SLOT_OPEN || slot == SLOT_DIRSYNC) {
		j->new_busy = false;
		if (res < 0) {
			if (slot == SLOT_OPEN)
				LOG_ERROR("worker %u: journal: cannot create %s: %s", j->id,
				          j->new_path, strerror(-res));
			fail(j, -res, slot == SLOT_OPEN ? "create" : "directory flush");
			return;
		}
		if (slot == SLOT_OPEN) {
			j->new_fd = res;
			if (j->sync == PERSIST_SYNC_FSYNC) {
				/* The new name must survive power loss before what is
				 * in the file counts as durable. */
				ring_fdatasync(j->ring, j->dir_fd,
				               op_pack(OP_JOURNAL, SLOT_DIRSYNC, 0));
				j->new_busy = true;
				return;
			}
		}
		j->new_ready = true;
		rotation_step(j);
		if (!j->in_flight && j->fill_len > 0 && group_due(j))
			start_group(j);
		return;
	}
	if (slot == SLOT_SYNC) {
		if (!j->write_done)
			return; /* canceled: its write failed or was short (handled there) */
		if (res < 0) {
			j->flight_done = 0; /* the pages may be lost: write it all again */
			fail(j, -res, "fdatasync");
			return;
		}
		j->st->journal_fsyncs++;
		group_done(j);
		return;
	}
	if (res < 0) {
		fail(j, -res, "write");
		return;
	}
	j->flight_done += (size_t)res;
	if (res == 0 || j->flight_done < j->flight_len) {
		/* Short (a full disk says so first): the rest, with its flush;
		 * a linked flush behind it was canceled. */
		if (res == 0) {
			fail(j, ENOSPC, "write");
			return;
		}
		submit(j);
		return;
	}
	j->write_done = true;
	if (j->sync != PERSIST_SYNC_FSYNC)
		group_done(j);
	else if (fsync_delay_ms())
		j->sync_at_ms = *j->now_ms + fsync_delay_ms();
}
