/*
 * session_journal.c — persistent sessions into the journal (see
 * session_journal.h).
 */
#include "persist/session_journal.h"

#include <stdlib.h>

#include "base/clock.h"
#include "persist/record.h"

bool persist_session_put(struct journal *j, const struct session *s, _Atomic uint64_t *stamps,
                         uint64_t now_ms)
{
	size_t enc_len;
	uint8_t *enc = session_encode_state(s, now_ms, &enc_len);
	if (!enc)
		return false;
	uint8_t *p = journal_reserve(j, rec_sess_size(s->client_id_len, enc_len, true));
	if (!p) {
		j->st->journal_refused++;
		free(enc);
		return false;
	}
	uint64_t stamp = atomic_fetch_add_explicit(stamps, 1, memory_order_relaxed) + 1;
	struct rec_place place = {j->run, s->id};
	rec_sess_put(p, stamp, &place, (const uint8_t *)s->client_id, s->client_id_len, enc,
	             enc_len);
	journal_commit(j, REC_SESS_PLACED, clock_wall_ms());
	free(enc);
	return true;
}

bool persist_session_end(struct journal *j, const char *client_id, uint16_t len,
                         _Atomic uint64_t *stamps)
{
	uint8_t *p = journal_reserve(j, rec_sess_size(len, 0, false));
	if (!p) {
		j->st->journal_refused++;
		return false;
	}
	uint64_t stamp = atomic_fetch_add_explicit(stamps, 1, memory_order_relaxed) + 1;
	rec_sess_put(p, stamp, NULL, (const uint8_t *)client_id, len, NULL, 0);
	journal_commit(j, REC_SESS_END, clock_wall_ms());
	return true;
}

size_t persist_session_record(const struct session *s, uint64_t run, uint64_t stamp, uint64_t lsn,
                              uint64_t now_ms, uint64_t wall_ms, uint8_t **out)
{
	size_t enc_len;
	uint8_t *enc = session_encode_state(s, now_ms, &enc_len);
	if (!enc)
		return 0;
	size_t total = record_size(rec_sess_size(s->client_id_len, enc_len, true));
	uint8_t *rec = malloc(total);
	if (!rec) {
		free(enc);
		return 0;
	}
	struct rec_place place = {run, s->id};
	rec_sess_put(record_payload(rec), stamp, &place, (const uint8_t *)s->client_id,
	             s->client_id_len, enc, enc_len);
	record_seal(rec, total, REC_SESS_PLACED, lsn, wall_ms);
	free(enc);
	*out = rec;
	return total;
}
