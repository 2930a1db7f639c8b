/* clock.h — monotonic milliseconds, the time the broker's logic uses (and
 * nanoseconds, for its own measurements); wall-clock milliseconds only
 * where nodes must agree on an order (retained messages: last writer wins). */
#ifndef STARLING_CORE_CLOCK_H
#define STARLING_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Monotonic nanoseconds, for measuring short spans (loop turn busy time). */
static inline uint64_t clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wall-clock milliseconds since the epoch (CLOCK_REALTIME): comparable
 * across nodes whose clocks are synchronised, never used for a timeout. */
static inline uint64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
