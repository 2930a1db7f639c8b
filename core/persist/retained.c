/*
 * retained.c — retained writes into the journal (see retained.h).
 */
#include "persist/retained.h"

#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "persist/record.h"

bool persist_retained(struct journal *j, struct msg *m, _Atomic uint64_t *stamps, uint64_t now_ms)
{
	/* $SYS/ is the node's own, published again from its counters after
	 * every start (and per node in a cluster): not state to keep. */
	if (m->pub.topic.len >= 4 && memcmp(m->pub.topic.ptr, "$SYS", 4) == 0)
		return true;
	m->retain_stamp = atomic_fetch_add_explicit(stamps, 1, memory_order_relaxed) + 1;
	uint64_t wall = clock_wall_ms();
	bool del = m->pub.payload.len == 0;
	size_t len = del ? rec_retain_del_size(m->pub.topic.len) : rec_retain_set_size(m);
	uint8_t *p = journal_reserve(j, len);
	if (!p) {
		j->st->journal_refused++;
		return false;
	}
	if (del)
		rec_retain_del_put(p, m->pub.topic.ptr, m->pub.topic.len, m->retain_stamp,
		                   m->origin_rank, m->wall_ms ? m->wall_ms : wall);
	else
		rec_retain_set_put(p, m, m->retain_stamp, now_ms, wall);
	journal_commit(j, del ? REC_RETAIN_DEL : REC_RETAIN_SET, wall);
	return true;
}
