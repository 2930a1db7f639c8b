/*
 * retained.h — retained writes into the journal: the router's
 * journal_retained hook (route.h) on every worker, with persistence on.
 */
#ifndef STARLING_CORE_PERSIST_RETAINED_H
#define STARLING_CORE_PERSIST_RETAINED_H

#include <stdatomic.h>
#include <stdint.h>

#include "persist/journal.h"
#include "route/msg.h"

/*
 * Stamp m with the next number of the node-wide order (*stamps, shared by
 * the workers) and append its record to j: REC_RETAIN_SET, or
 * REC_RETAIN_DEL for an empty payload. false when the journal refused it
 * (failing or behind: counted in journal_refused; the store still takes m,
 * the caller had checked journal_accepting before acknowledging). $SYS/
 * topics are not journaled: the node publishes them again after a start.
 */
bool persist_retained(struct journal *j, struct msg *m, _Atomic uint64_t *stamps, uint64_t now_ms);

#endif
