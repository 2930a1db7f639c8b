/*
 * shared.h — the memory a run's coordinator shares with the worker
 * processes it forks (MAP_SHARED | MAP_ANONYMOUS, created before fork).
 *
 * Writers: the coordinator writes go/stop; worker i writes only stats[i];
 * the end-to-end window (e2e.h) lives behind the stats and is written with
 * atomics by every worker. Flags are read with relaxed atomics; a worker
 * that misses a flag sees it on its next loop turn.
 */
#ifndef STARLING_BENCH_SHARED_H
#define STARLING_BENCH_SHARED_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

struct shared {
	uint32_t go;          /* 1: publishers may start (all subscriptions are in) */
	uint32_t stop;        /* 1: disconnect and exit */
	uint32_t run_id;      /* payload header run id */
	uint32_t workers;     /* entries in stats[] */
	size_t e2e_offset;    /* bytes from the start of this struct to the window */
	size_t size;          /* bytes mapped */
	struct stats stats[]; /* one per worker */
};

/* Map a region for workers and an e2e window of e2e_bytes; NULL on failure. */
struct shared *shared_create(uint32_t workers, size_t e2e_bytes, uint32_t run_id);
void shared_destroy(struct shared *sh);
void *shared_e2e(struct shared *sh);

static inline uint32_t shared_load(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void shared_store(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

#endif
