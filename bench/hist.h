/*
 * hist.h — a log-linear (HDR-style) histogram of non-negative integer
 * values, in whatever unit the caller records (the bench uses nanoseconds).
 *
 * Values below HIST_SUB_COUNT are counted exactly; above, each power of two
 * is cut into HIST_SUB_COUNT/2 equal buckets, so a reported quantile is
 * within 1/(HIST_SUB_COUNT/2) (0.78 %) of the true value. Values above
 * HIST_VALUE_MAX are clamped into the last bucket and counted in clamped.
 * Fixed size, no allocation: a histogram can live in shared memory and be
 * copied over a socket as bytes. Two histograms merge by adding buckets.
 */
#ifndef STARLING_BENCH_HIST_H
#define STARLING_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS  8
#define HIST_SUB_COUNT (1u << HIST_SUB_BITS) /* 256 exact values, then 128 per octave */
#define HIST_MSB_MAX   40                    /* values up to 2^41-1 (about 36 min in ns) */
#define HIST_VALUE_MAX ((UINT64_C(1) << (HIST_MSB_MAX + 1)) - 1)
#define HIST_BUCKETS   (HIST_SUB_COUNT + (HIST_MSB_MAX - HIST_SUB_BITS + 1) * (HIST_SUB_COUNT / 2))

struct hist {
	uint64_t count;   /* values recorded */
	uint64_t sum;     /* of values, for the mean; wraps after 2^64 */
	uint64_t min;     /* smallest value; UINT64_MAX when empty */
	uint64_t max;     /* largest value (before clamping) */
	uint64_t clamped; /* values above HIST_VALUE_MAX */
	uint64_t buckets[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t value);
/* Add every value of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/*
 * The value at quantile q (0..1): the value of rank ceil(q*count), as the
 * midpoint of its bucket clamped to [min, max]. 0 when empty.
 */
uint64_t hist_quantile(const struct hist *h, double q);
uint64_t hist_mean(const struct hist *h);
/*
 * out = now - before, where before is an earlier copy of the same
 * histogram: the values recorded in between (for per-interval quantiles).
 * min and max become the bounds of the outermost non-empty buckets.
 */
void hist_diff(struct hist *out, const struct hist *now, const struct hist *before);

/* Bucket arithmetic, exposed for the unit tests. */
uint32_t hist_bucket_of(uint64_t value);
uint64_t hist_bucket_low(uint32_t bucket);
uint64_t hist_bucket_high(uint32_t bucket); /* inclusive */

#endif
