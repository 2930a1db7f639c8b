/*
 * run.h — the processes of one run on this machine: fork `procs` workers
 * sharing a region (shared.h), read their counters, tell them go and stop,
 * and wait for them. Used by the local command, by an agent (for its slice)
 * and by the comparison runner. Owner: the coordinator process.
 */
#ifndef STARLING_BENCH_RUN_H
#define STARLING_BENCH_RUN_H

#include <stdbool.h>
#include <sys/types.h>

#include "scenario.h"
#include "shared.h"
#include "stats.h"

struct run {
	struct scenario sc;
	struct shared *sh;
	pid_t pids[SCENARIO_PROCS_MAX];
	uint32_t procs;
	uint32_t alive; /* workers not yet reaped */
	int failed;     /* workers that exited non-zero */
};

/*
 * Start sc.procs workers taking slices [slice_base, slice_base + procs) of
 * slices_total. Returns 0 or -1.
 */
int run_start(struct run *r, const struct scenario *sc, uint32_t run_id, uint32_t slice_base,
              uint32_t slices_total);
void run_collect(struct run *r, struct stats *out);
void run_go(struct run *r);
void run_stop(struct run *r);
/* Reap exited workers; true when none is left. */
bool run_finished(struct run *r);
/* Kill what is left, reap, unmap. */
void run_end(struct run *r);

/* A random run id (never 0). */
uint32_t run_make_id(void);

#endif
