/*
 * hist.c — the log-linear latency histogram (see hist.h for the layout).
 *
 * Owner: whoever holds the struct; no locking. The bench's workers each
 * record into their own and the coordinator merges copies, so recording
 * never contends.
 */
#include "hist.h"

#include <assert.h>
#include <string.h>

#define HALF_COUNT (HIST_SUB_COUNT / 2)

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint32_t hist_bucket_of(uint64_t value)
{
	if (value > HIST_VALUE_MAX)
		value = HIST_VALUE_MAX;
	if (value < HIST_SUB_COUNT)
		return (uint32_t)value;
	unsigned msb = 63u - (unsigned)__builtin_clzll(value); /* >= HIST_SUB_BITS */
	unsigned shift = msb - (HIST_SUB_BITS - 1);            /* >= 1 */
	uint64_t top = value >> shift;                         /* in [HALF, SUB_COUNT) */
	uint32_t b = HIST_SUB_COUNT + (shift - 1) * HALF_COUNT + (uint32_t)(top - HALF_COUNT);
	assert(b < HIST_BUCKETS);
	return b;
}

uint64_t hist_bucket_low(uint32_t bucket)
{
	assert(bucket < HIST_BUCKETS);
	if (bucket < HIST_SUB_COUNT)
		return bucket;
	uint32_t rel = bucket - HIST_SUB_COUNT;
	unsigned shift = rel / HALF_COUNT + 1;
	uint64_t top = HALF_COUNT + rel % HALF_COUNT;
	return top << shift;
}

uint64_t hist_bucket_high(uint32_t bucket)
{
	if (bucket < HIST_SUB_COUNT)
		return bucket;
	unsigned shift = (bucket - HIST_SUB_COUNT) / HALF_COUNT + 1;
	return hist_bucket_low(bucket) + (UINT64_C(1) << shift) - 1;
}

void hist_record(struct hist *h, uint64_t value)
{
	if (value > HIST_VALUE_MAX)
		h->clamped++;
	h->buckets[hist_bucket_of(value)]++;
	h->count++;
	h->sum += value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum += src->sum;
	dst->clamped += src->clamped;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* rank is 1-based: the value that has ceil(q*count) values at or below it */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t lo = hist_bucket_low(i);
			uint64_t v = lo + (hist_bucket_high(i) - lo) / 2;
			if (v < h->min)
				v = h->min;
			if (v > h->max)
				v = h->max;
			return v;
		}
	}
	return h->max;
}

uint64_t hist_mean(const struct hist *h)
{
	return h->count ? h->sum / h->count : 0;
}

void hist_diff(struct hist *out, const struct hist *now, const struct hist *before)
{
	hist_init(out);
	for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
		uint64_t n = now->buckets[i] - before->buckets[i];
		if (!n)
			continue;
		out->buckets[i] = n;
		if (out->count == 0)
			out->min = hist_bucket_low(i);
		out->max = hist_bucket_high(i);
		out->count += n;
	}
	out->sum = now->sum - before->sum;
	out->clamped = now->clamped - before->clamped;
	if (out->max > now->max)
		out->max = now->max;
	if (out->count && out->min < now->min)
		out->min = now->min;
}
