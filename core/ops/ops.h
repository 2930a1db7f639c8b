/*
 * ops.h — the operations listener: HTTP on metrics_listen serving
 * /metrics (Prometheus text), /healthz (the process and every worker loop
 * are alive) and /readyz (listeners up, not shutting down).
 *
 * It runs on a thread of its own, not on a worker ring (a decision recorded
 * in core/README.md): a scrape never takes a turn from a worker, and
 * /healthz can notice a worker that stopped turning, which a stuck worker
 * could not report itself. It only reads what workers publish (stats.h,
 * mailbox counters, atomics of struct broker), never their private state.
 */
#ifndef STARLING_CORE_OPS_H
#define STARLING_CORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct ops;

/* A worker that has not turned for this long makes /healthz fail (a worker
 * wakes at least every 250 ms even when idle). */
#define OPS_STALL_MS 5000

/* Bind cfg->metrics_listen and start the thread. NULL with err filled in
 * when the address cannot be bound. Main thread, after broker_start(). */
struct ops *ops_start(struct broker *b, char *err, size_t err_len);
/* The bound port (useful when metrics_listen asked for port 0). */
uint16_t ops_port(const struct ops *o);
/* Stop the thread and close everything. Main thread. */
void ops_stop(struct ops *o);

/* Allocator figures from jemalloc, for /metrics and $SYS; false when the
 * allocator cannot tell. Any thread. */
struct ops_memory {
	uint64_t allocated_bytes;
	uint64_t active_bytes;
	uint64_t resident_bytes;
	uint64_t mapped_bytes;
};
bool ops_read_memory(struct ops_memory *m);

#endif
