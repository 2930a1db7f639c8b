/*
 * report.h — the final summary of a run, as text for people and as one
 * JSON object for scripts (--json). Field names are stable: tests and the
 * comparison runner read them.
 */
#ifndef STARLING_BENCH_REPORT_H
#define STARLING_BENCH_REPORT_H

#include <stdio.h>

#include "director.h"
#include "scenario.h"

void report_text(FILE *f, const struct scenario *sc, const struct outcome *o);
void report_json(FILE *f, const struct scenario *sc, const struct outcome *o);

/* Derived figures, shared with the comparison runner. */
double report_connect_rate(const struct outcome *o);
double report_publish_rate(const struct outcome *o);
double report_deliver_rate(const struct outcome *o);
uint64_t report_lost(const struct outcome *o);
/* Broker CPU seconds per million delivered messages; <0 unknown. */
double report_cpu_per_million(const struct outcome *o);
/* Bench memory per connected client, bytes; 0 unknown. */
double report_bench_bytes_per_client(const struct outcome *o);
double report_broker_bytes_per_conn(const struct outcome *o);

#endif
