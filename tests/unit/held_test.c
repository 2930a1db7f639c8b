/*
 * held_test.c — deliveries held until the journal is durable (route/held.h):
 * sealed at the turn's end with the journal's position, released in order
 * once it is durable, nothing overtaking a held one, bounded.
 */
#include <criterion/criterion.h>

#include "route/held.h"

static struct held_delivery d(uint32_t n)
{
	return (struct held_delivery){.m = NULL, .to = {n, 1, 1}, .sub_id = n, .qos = 2};
}

static bool push(struct held *h, uint32_t n)
{
	struct held_delivery x = d(n);
	return held_push(h, &x);
}

Test(held, unsealed_entries_wait_for_the_turns_end)
{
	struct held h = {0};
	cr_assert(push(&h, 1));
	cr_assert(push(&h, 2));
	cr_assert_null(held_ready(&h, UINT64_MAX - 1), "not sealed yet: whatever is durable");
	held_seal(&h, 10);
	cr_assert_null(held_ready(&h, 9), "waits for 10");
	const struct held_delivery *x = held_ready(&h, 10);
	cr_assert(x && x->sub_id == 1);
	held_pop(&h);
	cr_assert(push(&h, 3)); /* a later turn */
	x = held_ready(&h, 10);
	cr_assert(x && x->sub_id == 2, "the sealed one goes; the new one waits behind");
	held_pop(&h);
	cr_assert_null(held_ready(&h, 10));
	held_seal(&h, 12);
	cr_assert_null(held_ready(&h, 11));
	x = held_ready(&h, 12);
	cr_assert(x && x->sub_id == 3);
	held_pop(&h);
	cr_assert_eq(h.len, 0);
	held_fini(&h);
}

Test(held, order_is_kept_across_growth_and_wrap)
{
	struct held h = {0};
	uint32_t next_in = 0, next_out = 0;
	for (int round = 0; round < 50; round++) {
		for (int i = 0; i < 300; i++)
			cr_assert(push(&h, next_in++));
		held_seal(&h, (uint64_t)round + 1);
		for (int i = 0; i < 250; i++) {
			const struct held_delivery *x = held_ready(&h, (uint64_t)round + 1);
			cr_assert_not_null(x);
			cr_assert_eq(x->sub_id, next_out++, "in order");
			held_pop(&h);
		}
	}
	cr_assert_eq(h.len, next_in - next_out);
	held_fini(&h);
}

Test(held, bounded)
{
	struct held h = {0};
	for (uint32_t i = 0; i < HELD_MAX; i++)
		cr_assert(push(&h, i));
	cr_assert_not(push(&h, 0), "full: the caller sends it");
	cr_assert_eq(h.len, HELD_MAX);
	held_fini(&h);
}
