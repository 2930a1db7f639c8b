/*
 * procfs.h — readings from /proc: a process's resident memory and CPU time.
 * Used for the bench's own memory per client and for a broker's RSS and
 * CPU seconds (given its pid). Any thread.
 */
#ifndef STARLING_BENCH_PROCFS_H
#define STARLING_BENCH_PROCFS_H

#include <stdint.h>
#include <sys/types.h>

uint64_t procfs_self_rss_bytes(void);
/* 0 when the process cannot be read. */
uint64_t procfs_rss_bytes(pid_t pid);
/* utime + stime in seconds; negative when the process cannot be read. */
double procfs_cpu_s(pid_t pid);

#endif
