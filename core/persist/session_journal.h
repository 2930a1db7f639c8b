/*
 * session_journal.h — persistent sessions into the journal (core/persist/
 * README.md "Sessions"): a session's state without its messages as one
 * REC_SESS_PUT, its end as REC_SESS_END, both stamped from the node-wide
 * order of session records so that recovery keeps, per client id, the last
 * one whichever worker's journal holds it (a session moves between workers
 * on takeover; the moves are ordered by mail, so the stamps are too).
 *
 * mqtt/lifecycle.c decides when (session_journal_*); this file writes.
 */
#ifndef STARLING_CORE_PERSIST_SESSION_JOURNAL_H
#define STARLING_CORE_PERSIST_SESSION_JOURNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "persist/journal.h"
#include "session/session.h"

/* Append s's state (session_encode_state) as REC_SESS_PLACED (with j->run
 * and s->id). false when the
 * journal refused it (failing or behind; counted in journal_refused) or
 * memory ran out. now_ms: the worker's clock (remaining times). */
bool persist_session_put(struct journal *j, const struct session *s, _Atomic uint64_t *stamps,
                         uint64_t now_ms);
/* Append REC_SESS_END for the client id. false as above. */
bool persist_session_end(struct journal *j, const char *client_id, uint16_t len,
                         _Atomic uint64_t *stamps);
/* The same record, of run `run`, into a caller's buffer (a snapshot, a
 * start): the bytes of the whole record at *out (malloc'd), or 0 out of
 * memory. */
size_t persist_session_record(const struct session *s, uint64_t run, uint64_t stamp, uint64_t lsn,
                              uint64_t now_ms, uint64_t wall_ms, uint8_t **out);

#endif
