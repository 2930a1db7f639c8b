/*
 * journal.h — a worker's append-only journal (DESIGN.md "Durability";
 * core/persist/README.md): records appended during a turn go to the kernel
 * as one write through the worker's own ring (no blocking syscall on the
 * worker, no thread per write), one write in flight at a time: what is
 * appended while it flies is the next group. persistence_sync says what
 * "durable" means for the barrier (barrier.h): `write` when the write
 * completed, `fsync` when the fdatasync linked behind it completed (group
 * commit), `none` at once (the write follows in the background).
 *
 * A failed write (disk full, an I/O error) keeps its bytes and is tried
 * again every JOURNAL_RETRY_MS; meanwhile the journal says it is failing
 * (/readyz false) and refuses new records (journal_reserve gives NULL: the
 * caller refuses the work with 0x97), and output waiting for those bytes
 * keeps waiting: nothing is acknowledged that is not on disk.
 *
 * Files: DATA_DIR/journal/w<writer>-<segment>.log (record.h: a header, then
 * records). Each start opens a new segment for every worker; recovery
 * (recover.h) reads them all, whatever the worker count that wrote them.
 *
 * Only the owning worker's thread uses a journal, after journal_open on
 * the main thread.
 */
#ifndef STARLING_CORE_JOURNAL_H
#define STARLING_CORE_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "io/ring.h"
#include "ops/stats.h"
#include "persist/barrier.h"

#define JOURNAL_FILL_MAX                                                                           \
	(64u << 20)           /* bytes appended and not yet written; beyond:                       \
	                       * new records are refused (the disk is behind) */
#define JOURNAL_RETRY_MS 1000 /* a failed write is tried again after this */

struct journal {
	bool on; /* persistence is on: everything below is set up */
	uint16_t id;
	uint64_t run; /* this start of the node (record.h: struct rec_place), set at open */
	enum persistence_sync sync;
	int fd;            /* the open segment */
	uint64_t segment;  /* its number */
	uint64_t seg_off;  /* its bytes on disk (the next write's offset) */
	uint32_t group_ms; /* persistence_fsync_max_ms */
	uint64_t group_bytes;
	char path[CONFIG_PATH_MAX + 64];

	/* set at start */
	struct ring *ring;
	struct ack_barrier *barrier;
	struct worker_stats *st;
	const uint64_t *now_ms;
	void (*advanced)(void *ctx); /* durable moved up (flush waiting output) */
	void *advanced_ctx;

	/* records appended, not yet handed to the kernel */
	uint8_t *fill;
	size_t fill_len, fill_cap;
	uint64_t fill_lsn;      /* the last record's number in fill */
	uint64_t fill_since_ms; /* when fill's first record came */
	size_t rec_off;         /* journal_reserve's record, until journal_commit */
	size_t rec_total;

	/* the write in flight */
	uint8_t *flight;
	size_t flight_len, flight_cap;
	size_t flight_done; /* bytes of it written (short writes) */
	uint64_t flight_lsn;
	uint64_t flight_ns;  /* when it was submitted */
	bool in_flight;      /* a write (and with fsync its flush) is in the kernel */
	bool write_done;     /* its write completed; with fsync, the flush flies */
	bool failing;        /* the last write or flush failed */
	uint64_t sync_at_ms; /* test hook only: when the delayed flush is submitted */
	uint64_t retry_at_ms;
	uint64_t written; /* bytes written since the last rotation (compaction's trigger) */

	/* A rotation to the next segment (compaction, compact.h): records
	 * appended before journal_rotate go to the old segment (the group in
	 * flight, then fill[0, old_end)), those after to the new one, which
	 * begins with its header at fill[old_end]. */
	int dir_fd;           /* the journal directory: new files, their names' flush */
	uint64_t rot_segment; /* the segment being started; 0: none */
	size_t old_end;       /* fill bytes still for the old segment */
	uint64_t old_lsn;     /* the last record's number among them */
	int new_fd;           /* the new segment once open; -1 before */
	bool new_busy;        /* its open (or the directory's flush) is in flight */
	bool new_ready;       /* open, and its name durable */
	char new_path[CONFIG_PATH_MAX + 64];
	char new_name[40]; /* relative to dir_fd, for the ring's openat */
};

/* The journal directory's files (and nothing else in it is ours):
 *   w<writer, 3+ digits>-<segment, 16 hex>.log   a worker's segment
 *   w<writer>-<segment>.snap                     a worker's snapshot (compact.h)
 *   c-<segment, 16 hex>.done                     a compaction's mark: every
 *       snapshot of that segment (named inside, one per line) was durable
 *       before it was made; older files no longer count */
enum journal_file { JFILE_SEGMENT, JFILE_SNAPSHOT, JFILE_MARK };
/* Parse a name of exactly those forms: 0, or -1 for anything else. */
int journal_name_parse(const char *name, unsigned *writer, uint64_t *segment,
                       enum journal_file *kind);

/* DATA_DIR/journal into out, both made if missing. 0, or -1 with err. */
int journal_dir(const struct config *cfg, char *out, size_t len, char *err, size_t err_len);
/* Main thread, before the worker starts: create DATA_DIR/journal if needed
 * and open segment `segment` for writer id (a new file with its header).
 * With persistence off, j stays off and this does nothing. 0, or -1 with
 * err saying what (path and errno). */
int journal_open(struct journal *j, const struct config *cfg, uint16_t id, uint64_t segment,
                 char *err, size_t err_len);
/* Main thread, after journal_open and before the worker starts: append
 * len bytes of whole records (sealed by the caller with the numbers its
 * barrier hands out) and flush them. 0, or -1 with err. */
int journal_write_at_start(struct journal *j, const uint8_t *buf, size_t len, char *err,
                           size_t err_len);
/* On the worker's thread, once its ring exists. */
void journal_start(struct journal *j, struct ring *ring, struct ack_barrier *b,
                   struct worker_stats *st, const uint64_t *now_ms, void (*advanced)(void *ctx),
                   void *ctx);
void journal_close(struct journal *j);

/* Room for a record with a payload of payload_len bytes: where to write the
 * payload, then journal_commit. NULL when the journal is off, failing or
 * too far behind (counted in journal_refused by the caller). */
uint8_t *journal_reserve(struct journal *j, size_t payload_len);
/* The reserved record is complete: seal it with the next number. */
uint64_t journal_commit(struct journal *j, uint8_t type, uint64_t wall_ms);
/* Start segment `segment` (compaction): what is appended from now on goes
 * there, what was appended before to the current one. Needs no rotation
 * in progress (journal_rotating). */
void journal_rotate(struct journal *j, uint64_t segment);
static inline bool journal_rotating(const struct journal *j)
{
	return j->rot_segment != 0;
}

/* Nothing of the journal is in the kernel (a failing one counts as idle:
 * journal_close writes what it holds). */
static inline bool journal_idle(const struct journal *j)
{
	return !j->in_flight || j->failing;
}

/* May new persistent work come in? */
static inline bool journal_accepting(const struct journal *j)
{
	return j->on && !j->failing && j->fill_len < JOURNAL_FILL_MAX;
}

/* The loop's journal step: hand what was appended to the kernel when it
 * is due; try a failed write again. */
void journal_step(struct journal *j);
/* The next time journal_step has work (a gathering group, a retry); 0: none. */
uint64_t journal_deadline_ms(const struct journal *j);
/* A completion of kind OP_JOURNAL. */
void journal_done(struct journal *j, int32_t res, uint32_t slot);

#endif
