/*
 * rng.h — repeatable randomness for the unit tests that check a trie
 * against the reference matcher (subidx_test.c, retain_test.c): a
 * xorshift64* generator, random topics and filters over a small alphabet
 * chosen to collide, and the seed loop that STARLING_TEST_SEED=<n> narrows
 * to one seed. Header-only; each test keeps its own generator state.
 */
#ifndef STARLING_TESTS_RNG_H
#define STARLING_TESTS_RNG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct rng {
	uint64_t state; /* never 0 */
};

/* The generator for one random run; different seeds give unrelated runs. */
static inline void rng_seed(struct rng *r, uint64_t seed)
{
	r->state = seed * 0x9E3779B97F4A7C15ULL + 1;
}

/* xorshift64* */
static inline uint64_t rng_next(struct rng *r)
{
	r->state ^= r->state >> 12;
	r->state ^= r->state << 25;
	r->state ^= r->state >> 27;
	return r->state * 0x2545F4914F6CDD1DULL;
}

static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rng_next(r) % n);
}

/* Levels chosen to collide: wildcards, empty levels and '$' topics. */
static const char *const rng_alphabet[] = {"a", "b", "c", "$SYS", ""};
#define RNG_ALPHABET_N (sizeof(rng_alphabet) / sizeof(rng_alphabet[0]))

/*
 * A non-empty topic of 1 to 4 levels from rng_alphabet into out (cap >= 32).
 * wild > 0 makes it a filter: each level is drawn from the alphabet plus
 * wild extra choices, which give '+' except the last one at the last level,
 * which gives '#'.
 */
static inline void rng_levels(struct rng *r, char *out, size_t cap, uint32_t wild)
{
	do {
		out[0] = '\0';
		unsigned levels = 1 + rng_below(r, 4);
		for (unsigned i = 0; i < levels; i++) {
			if (i)
				strncat(out, "/", cap - strlen(out) - 1);
			uint32_t k = rng_below(r, (uint32_t)RNG_ALPHABET_N + wild);
			const char *l = k < RNG_ALPHABET_N ? rng_alphabet[k] : "+";
			if (wild && i + 1 == levels && k == RNG_ALPHABET_N + wild - 1)
				l = "#";
			strncat(out, l, cap - strlen(out) - 1);
		}
	} while (out[0] == '\0');
}

/* run(seed) for seeds 1..n, or for STARLING_TEST_SEED alone when it is set. */
static inline void rng_run_seeds(uint64_t n, void (*run)(uint64_t seed))
{
	const char *env = getenv("STARLING_TEST_SEED");
	if (env) {
		run(strtoull(env, NULL, 10));
		return;
	}
	for (uint64_t seed = 1; seed <= n; seed++)
		run(seed);
}

#endif
