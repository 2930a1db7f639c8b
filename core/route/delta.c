/*
 * delta.c — changes to the subscription index (see delta.h).
 */
#include "route/delta.h"

#include <stdlib.h>
#include <string.h>

#include "base/check.h"

struct route_delta *route_delta_new(enum delta_op op, struct mqtt_view filter,
                                    const struct sub_entry *e, struct sess_id was)
{
	CHECK(filter.len > 0 && filter.len <= UINT16_MAX);
	struct route_delta *d = malloc(sizeof(*d) + filter.len + 1);
	if (!d)
		return NULL;
	atomic_init(&d->refs, 1);
	d->op = (uint8_t)op;
	d->origin_node = 0;
	d->seq = 0;
	d->e = *e;
	d->was = was;
	d->at_ms = 0;
	d->filter_len = (uint16_t)filter.len;
	memcpy(d->filter, filter.ptr, filter.len);
	d->filter[filter.len] = '\0';
	return d;
}

void route_delta_unref(struct route_delta *d)
{
	if (atomic_fetch_sub_explicit(&d->refs, 1, memory_order_acq_rel) == 1)
		free(d);
}

enum delta_effect route_delta_apply(struct subidx *ix, const struct route_delta *d)
{
	struct mqtt_view f = route_delta_filter(d);
	size_t before = subidx_filter_count(ix, f);
	switch (d->op) {
	case DELTA_ADD:
		if (subidx_add(ix, f, &d->e) < 0)
			return DELTA_FAILED;
		break;
	case DELTA_REMOVE:
		subidx_remove(ix, f, d->e.who);
		break;
	case DELTA_MOVE:
		subidx_remove(ix, f, d->was);
		if (subidx_add(ix, f, &d->e) < 0)
			return DELTA_FAILED;
		break;
	default:
		CHECK(!"a delta of no known kind");
	}
	size_t after = subidx_filter_count(ix, f);
	if (before == 0 && after > 0)
		return DELTA_FIRST;
	if (before > 0 && after == 0)
		return DELTA_LAST;
	return DELTA_SAME;
}
