/*
 * modes.h — the commands of starling-bench besides a plain local run:
 * agent and controller (distributed runs), compare (two brokers, A B A B).
 * main.c parses the command line into a scenario plus these extras.
 */
#ifndef STARLING_BENCH_MODES_H
#define STARLING_BENCH_MODES_H

#include <stdbool.h>
#include <stdint.h>

#include "director.h"
#include "scenario.h"

struct extras {
	char listen[128];  /* agent: address:port to listen on */
	bool once;         /* agent: exit after one run */
	char agents[1024]; /* controller: host:port,host:port,... */
	char a[256];       /* compare: hosts of broker A */
	char b[256];       /* compare: hosts of broker B */
	uint32_t a_pid;    /* compare: pid of broker A */
	uint32_t b_pid;    /* compare: pid of broker B */
	uint32_t rounds;   /* compare: A B rounds */
};

/* A local run: fork workers, direct, report. Returns the exit code. */
int local_run(const struct scenario *sc, struct outcome *out);
/* Exit code of a finished run: 0 clean, 2 loss/dups/failures. */
int local_verdict(const struct scenario *sc, const struct outcome *o);

int agent_main(const struct scenario *sc, const struct extras *x);
int controller_main(const struct scenario *sc, const struct extras *x);
int compare_main(const struct scenario *sc, const struct extras *x);

#endif
