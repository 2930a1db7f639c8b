/*
 * bench_hist_test.c — the bench's log-linear histogram: bucket arithmetic,
 * quantiles against exact quantiles of sorted data, and merging.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "hist.h"

static struct hist h, h2, whole;

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The value of rank ceil(q*n) in sorted data, the definition hist uses. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	double want = q * (double)n;
	size_t rank = (size_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	return sorted[rank - 1];
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void check_quantiles(const struct hist *hh, uint64_t *vals, size_t n)
{
	qsort(vals, n, sizeof(*vals), cmp_u64);
	const double qs[] = {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0};
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
		uint64_t want = exact_quantile(vals, n, qs[i]);
		uint64_t got = hist_quantile(hh, qs[i]);
		/* within one bucket: relative error 1/(HIST_SUB_COUNT/2) */
		uint64_t tol = want / (HIST_SUB_COUNT / 2) + 1;
		uint64_t diff = got > want ? got - want : want - got;
		cr_expect(diff <= tol, "q=%g: got %lu, exact %lu (tolerance %lu)", qs[i],
		          (unsigned long)got, (unsigned long)want, (unsigned long)tol);
	}
	cr_expect_eq(hist_quantile(hh, 0.0), vals[0]);
	cr_expect_eq(hist_quantile(hh, 1.0), vals[n - 1]);
}

Test(bench_hist, buckets_cover_values_in_order)
{
	uint32_t prev = 0;
	for (uint64_t v = 0; v < 1000000; v += 7) {
		uint32_t b = hist_bucket_of(v);
		cr_assert(b >= prev, "bucket of %lu went backwards", (unsigned long)v);
		cr_assert(hist_bucket_low(b) <= v && v <= hist_bucket_high(b),
		          "%lu outside its bucket [%lu, %lu]", (unsigned long)v,
		          (unsigned long)hist_bucket_low(b), (unsigned long)hist_bucket_high(b));
		prev = b;
	}
	cr_expect_eq(hist_bucket_of(HIST_VALUE_MAX), HIST_BUCKETS - 1);
	cr_expect_eq(hist_bucket_of(UINT64_MAX), HIST_BUCKETS - 1);
}

Test(bench_hist, small_values_are_exact)
{
	hist_init(&h);
	for (uint64_t v = 1; v <= 100; v++)
		hist_record(&h, v);
	cr_expect_eq(hist_quantile(&h, 0.5), 50);
	cr_expect_eq(hist_quantile(&h, 0.9), 90);
	cr_expect_eq(hist_quantile(&h, 0.99), 99);
	cr_expect_eq(h.min, 1);
	cr_expect_eq(h.max, 100);
	cr_expect_eq(hist_mean(&h), 50);
}

Test(bench_hist, quantiles_match_sorted_data_uniform)
{
	enum { N = 100000 };
	static uint64_t vals[N];
	uint64_t seed = 88172645463325252ull;
	hist_init(&h);
	for (size_t i = 0; i < N; i++) {
		vals[i] = xorshift(&seed) % 10000000; /* up to 10 ms in ns */
		hist_record(&h, vals[i]);
	}
	check_quantiles(&h, vals, N);
}

Test(bench_hist, quantiles_match_sorted_data_long_tail)
{
	enum { N = 50000 };
	static uint64_t vals[N];
	uint64_t seed = 12345;
	hist_init(&h);
	for (size_t i = 0; i < N; i++) {
		/* mostly ~50us, a tail up to seconds: the shape of real latencies */
		uint64_t r = xorshift(&seed);
		vals[i] = (r % 100 < 95) ? 40000 + r % 20000 : (r >> 8) % 2000000000ull;
		hist_record(&h, vals[i]);
	}
	check_quantiles(&h, vals, N);
}

Test(bench_hist, merge_equals_recording_everything)
{
	enum { N = 20000 };
	static uint64_t vals[2 * N];
	uint64_t seed = 777;
	hist_init(&h);
	hist_init(&h2);
	hist_init(&whole);
	for (size_t i = 0; i < 2 * N; i++) {
		vals[i] = xorshift(&seed) % (i < N ? 1000000 : 50000000);
		hist_record(i < N ? &h : &h2, vals[i]);
		hist_record(&whole, vals[i]);
	}
	hist_merge(&h, &h2);
	cr_expect_eq(h.count, whole.count);
	cr_expect_eq(h.sum, whole.sum);
	cr_expect_eq(h.min, whole.min);
	cr_expect_eq(h.max, whole.max);
	cr_expect_arr_eq(h.buckets, whole.buckets, sizeof(h.buckets));
	check_quantiles(&h, vals, 2 * N);
}

Test(bench_hist, merge_into_empty_and_of_empty)
{
	hist_init(&h);
	hist_init(&h2);
	hist_record(&h2, 5);
	hist_merge(&h, &h2);
	cr_expect_eq(h.count, 1);
	cr_expect_eq(h.min, 5);
	hist_init(&h2);
	hist_merge(&h, &h2);
	cr_expect_eq(h.count, 1);
	cr_expect_eq(hist_quantile(&h2, 0.5), 0);
}

Test(bench_hist, huge_values_are_clamped_and_counted)
{
	hist_init(&h);
	hist_record(&h, HIST_VALUE_MAX + 1000);
	cr_expect_eq(h.clamped, 1);
	cr_expect_eq(h.max, HIST_VALUE_MAX + 1000);
	cr_expect_eq(h.buckets[HIST_BUCKETS - 1], 1);
}

Test(bench_hist, diff_gives_the_values_recorded_in_between)
{
	static struct hist before, recent;
	hist_init(&h);
	for (uint64_t v = 1; v <= 1000; v++)
		hist_record(&h, v * 1000);
	before = h;
	for (uint64_t v = 1; v <= 100; v++)
		hist_record(&h, 5000000 + v);
	hist_diff(&recent, &h, &before);
	cr_expect_eq(recent.count, 100);
	uint64_t p50 = hist_quantile(&recent, 0.5);
	cr_expect(p50 >= 5000000 - 5000000 / 128 && p50 <= 5000100 + 5000100 / 128, "p50 %lu",
	          (unsigned long)p50);
	cr_expect_eq(recent.max, 5000100);
	hist_diff(&recent, &h, &h);
	cr_expect_eq(recent.count, 0);
	cr_expect_eq(hist_quantile(&recent, 0.99), 0);
}
