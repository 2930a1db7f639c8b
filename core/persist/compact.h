/*
 * compact.h — compaction by snapshot (DESIGN.md "Durability";
 * core/persist/README.md "Compaction"): when the journals have grown by
 * persistence_compact_bytes since the last time (and once after a start
 * that recovered something), every worker starts a new segment, writes a
 * snapshot of the state it owns beside it, and once every snapshot is
 * durable the older files are deleted. No worker stops.
 *
 * Records in a worker's journal describe state other workers own (a
 * retained write goes to its topic's shard by mail), so a segment may go
 * only once every record in it is in its owner's snapshot. The mailboxes
 * are FIFO per pair of workers: each worker, right after it started its new
 * segment, mails every other worker ROTATED; a worker writes its snapshot
 * only when it has every worker's ROTATED, so everything any worker
 * journaled before its rotation has reached it first.
 *
 *   worker 0: BEGIN(gen) to all --> each: rotate to segment gen, ROTATED(gen)
 *   to all --> each, with all ROTATED: snapshot w<id>-<gen>.snap, flushed
 *   --> all snapshots durable: a short-lived thread deletes every file of
 *   a segment below gen (system calls off the workers).
 */
#ifndef STARLING_CORE_COMPACT_H
#define STARLING_CORE_COMPACT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"
#include "io/mail.h"
#include "persist/journal.h"
#include "route/retain.h"
#include "session/sessions.h"

#define JOURNAL_SLOT_SNAPSHOT 8  /* OP_JOURNAL slots from here are compact.c's */
#define MAIL_KIND_JOURNAL     28 /* io/mail.h's MAIL_KIND_NEXT range: 28..29 */

/* What the workers share (in the broker). */
struct compact_node {
	_Atomic uint64_t gen;           /* the compaction under way: its segment; 0: none */
	_Atomic unsigned snapshots;     /* workers whose snapshot for gen is durable */
	_Atomic uint64_t next_segment;  /* the next segment number to take */
	_Atomic uint64_t snap_records;  /* records in this round's snapshots */
	_Atomic uint64_t runs;          /* compactions completed */
	_Atomic uint64_t removed_bytes; /* by them */
	_Atomic bool cleaning;          /* the deleting thread runs */
	_Atomic bool start_wanted;      /* once after a start that recovered files */
	_Atomic uint64_t *written;      /* [workers]: journal bytes since each one's rotation */
	bool keep_old;                  /* recovery met records it does not know: delete nothing */
	bool thread_started;
	pthread_t thread;
	uint64_t threshold; /* persistence_compact_bytes */
	unsigned workers;
	char dir[CONFIG_PATH_MAX + 16]; /* the journal directory */
};

/* A worker's part. */
struct compact {
	struct compact_node *node;
	struct journal *j;
	struct retain *shard;
	const struct sessions *sessions; /* the worker's: journaled ones go in the snapshot */
	_Atomic uint64_t *sess_stamps;   /* the node-wide order of session records */
	struct mail *mail;
	struct ring *ring;
	const uint64_t *now_ms;
	uint16_t id;
	uint64_t gen;          /* the round this worker is in */
	unsigned rotated;      /* ROTATED(gen) seen, its own included */
	bool self_rotated;     /* it started segment gen */
	bool snapped;          /* its snapshot for gen is durable */
	uint64_t begin_wanted; /* BEGIN(gen) waits for the previous rotation to end */
	/* the snapshot being written */
	uint8_t *buf;
	size_t len, done;
	int fd;
	bool writing;
	uint64_t retry_at_ms; /* a snapshot that failed is written again then; 0: none */
	char name[48];
};

/* Main thread: the shared part (recovery's next segment number: the
 * workers opened next_segment - 1). 0, or -1 out of memory. */
int compact_node_init(struct compact_node *n, const struct config *cfg, unsigned workers,
                      uint64_t next_segment, bool keep_old, bool start_wanted);
void compact_node_fini(struct compact_node *n);

/* Before the worker runs: its part; registers the mail kinds. */
void compact_init(struct compact *c, struct compact_node *n, uint16_t id, struct journal *j,
                  struct retain *shard, struct mail *mail, const uint64_t *now_ms);
/* On the worker's thread once its ring exists. */
void compact_start(struct compact *c, struct ring *ring);
void compact_fini(struct compact *c);
/* Once a turn (before the journal's step). */
void compact_turn(struct compact *c);
/* A snapshot's write is in the kernel (its buffer must live). */
static inline bool compact_writing(const struct compact *c)
{
	return c->writing;
}
/* A completion of kind OP_JOURNAL with slot >= JOURNAL_SLOT_SNAPSHOT. */
void compact_done(struct compact *c, int32_t res, uint32_t slot);

#endif
