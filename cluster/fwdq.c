/*
 * fwdq.c — a worker's forwarding queue toward one peer (see fwdq.h).
 */
#include "fwdq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"

void fwdq_init(struct fwdq *q, uint64_t bytes_max)
{
	memset(q, 0, sizeof(*q));
	q->bytes_max = bytes_max;
}

static struct fwd_item *at(const struct fwdq *q, uint32_t i)
{
	return &q->items[(q->head + i) & (q->cap - 1)];
}

static void let_go(struct fwdq *q, struct fwd_item *it)
{
	if (!it->m)
		return;
	q->bytes -= it->m->size_bytes;
	msg_unref(it->m);
	it->m = NULL;
}

/* Pop what was let go from the front, so the ring holds only what waits. */
static void trim(struct fwdq *q)
{
	while (q->len > 0 && at(q, 0)->m == NULL) {
		q->head = (q->head + 1) & (q->cap - 1);
		q->len--;
		if (q->written > 0)
			q->written--;
	}
	if (q->len == 0)
		q->head = 0;
}

void fwdq_fini(struct fwdq *q)
{
	fwdq_drop_all(q);
	free(q->items);
	memset(q, 0, sizeof(*q));
}

static int grow(struct fwdq *q)
{
	uint32_t cap = q->cap ? q->cap * 2 : 64;
	struct fwd_item *n = malloc((size_t)cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->len; i++)
		n[i] = *at(q, i);
	free(q->items);
	q->items = n;
	q->cap = cap;
	q->head = 0;
	return 0;
}

int fwdq_push(struct fwdq *q, struct msg *m, uint8_t flags)
{
	if ((!(flags & FWD_UNBOUNDED) && q->bytes + m->size_bytes > q->bytes_max) ||
	    q->len >= FWDQ_ITEMS_MAX)
		return -ENOBUFS;
	if (q->len == q->cap && grow(q) != 0)
		return -ENOMEM;
	struct fwd_item *it = at(q, q->len);
	bool numbered = (m->pub.qos || (flags & FWD_STORE_ONLY)) && !(flags & FWD_SYNC_END);
	*it = (struct fwd_item){msg_ref(m), numbered ? ++q->next_seq : 0, flags};
	q->len++;
	q->bytes += m->size_bytes;
	return 0;
}

void fwdq_wrote(struct fwdq *q, uint32_t n)
{
	CHECK(n <= fwdq_unwritten(q));
	for (uint32_t i = 0; i < n; i++) {
		struct fwd_item *it = at(q, q->written + i);
		if (it->seq == 0 || it->seq <= q->acked)
			let_go(q, it);
	}
	q->written += n;
	trim(q);
}

void fwdq_ack(struct fwdq *q, uint64_t up_to)
{
	if (up_to <= q->acked)
		return;
	q->acked = up_to;
	/* Numbers grow along the queue; a QoS 0 entry between them waits
	 * until it is written (after a rewind it may not be yet). */
	for (uint32_t i = 0; i < q->len; i++) {
		struct fwd_item *it = at(q, i);
		if (it->seq > up_to)
			break;
		if (it->seq != 0)
			let_go(q, it);
	}
	trim(q);
}

void fwdq_rewind(struct fwdq *q)
{
	q->written = 0;
}

uint32_t fwdq_drop_all(struct fwdq *q)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < q->len; i++) {
		struct fwd_item *it = at(q, i);
		n += it->m != NULL;
		let_go(q, it);
	}
	q->len = q->written = 0;
	q->head = 0;
	return n;
}

uint32_t fwdq_held(const struct fwdq *q)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < q->len; i++)
		n += at(q, i)->m != NULL;
	return n;
}
