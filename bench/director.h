/*
 * director.h — the phases of a run, decided from merged counters alone so
 * the same logic drives local workers and remote agents:
 *   connect (and subscribe) -> go -> publish -> drain -> stop,
 * or for `conn`: connect -> hold for the duration -> stop.
 * It prints the live line once a second and fills an outcome for the
 * final report. Owner: the coordinating process (local run or controller).
 */
#ifndef STARLING_BENCH_DIRECTOR_H
#define STARLING_BENCH_DIRECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "scenario.h"
#include "stats.h"

/* Where the counters come from and where go/stop go to. */
struct director_source {
	void *ctx;
	/* merged counters as of now; false when the source broke */
	bool (*collect)(void *ctx, struct stats *out);
	void (*go)(void *ctx);
	void (*stop)(void *ctx);
	/* true once every worker or agent has finished after stop */
	bool (*finished)(void *ctx);
};

struct outcome {
	struct stats st;                /* final merged counters */
	double connect_s;               /* start -> every client connected or failed */
	double publish_s;               /* go -> every publisher done */
	double deliver_s;               /* go -> last delivery seen */
	double hold_s;                  /* conn: time held */
	uint64_t conn_up_peak;          /* most connections up at one reading */
	uint64_t bench_rss_peak_bytes;  /* bench workers' RSS at the peak */
	uint64_t bench_rss_base_bytes;  /* bench workers' RSS before connecting */
	uint64_t broker_rss_base_bytes; /* broker RSS before the run */
	uint64_t broker_rss_peak_bytes; /* broker RSS with every client connected */
	double broker_cpu_s;            /* broker utime+stime from go to stop; <0 unknown */
	uint32_t agents;                /* agents that ran it (controller); 0 local */
	bool interrupted;               /* stopped by a signal */
	bool timed_out;                 /* a phase hit its deadline */
};

int director_drive(const struct scenario *sc, const struct director_source *src,
                   struct outcome *out);

/* Set by SIGINT/SIGTERM handlers; the director stops the run. */
extern volatile int director_interrupted;
void director_install_signals(void);

#endif
