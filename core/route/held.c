/*
 * held.c — deliveries held until the journal is durable (see held.h).
 */
#include "route/held.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

bool held_push(struct held *h, const struct held_delivery *d)
{
	if (h->len == h->cap) {
		if (h->cap >= HELD_MAX)
			return false;
		uint32_t cap = h->cap ? h->cap * 2 : 256;
		struct held_delivery *e = malloc(cap * sizeof(*e));
		if (!e)
			return false;
		for (uint32_t i = 0; i < h->len; i++)
			e[i] = h->e[(h->head + i) & (h->cap - 1)];
		free(h->e);
		h->e = e;
		h->head = 0;
		h->cap = cap;
	}
	struct held_delivery *x = &h->e[(h->head + h->len) & (h->cap - 1)];
	*x = *d;
	x->lsn = HELD_UNSEALED;
	h->len++;
	h->unsealed++;
	return true;
}

void held_seal(struct held *h, uint64_t lsn)
{
	CHECK(h->unsealed <= h->len);
	for (uint32_t i = h->len - h->unsealed; i < h->len; i++)
		h->e[(h->head + i) & (h->cap - 1)].lsn = lsn;
	h->unsealed = 0;
}

const struct held_delivery *held_ready(const struct held *h, uint64_t durable)
{
	if (h->len == 0)
		return NULL;
	const struct held_delivery *x = &h->e[h->head];
	return x->lsn != HELD_UNSEALED && x->lsn <= durable ? x : NULL;
}

void held_pop(struct held *h)
{
	CHECK(h->len > h->unsealed);
	h->head = (h->head + 1) & (h->cap - 1);
	h->len--;
}

void held_fini(struct held *h)
{
	free(h->e);
	memset(h, 0, sizeof(*h));
}
