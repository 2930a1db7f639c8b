/*
 * moving_test.c — sessions that just moved, reached through their old
 * worker for a while (route/moving.h): lookups, expiry, replacement,
 * growth past many entries, the bound.
 */
#include <criterion/criterion.h>

#include "route/moving.h"

static struct sess_id id(uint16_t worker, uint32_t slot, uint32_t gen)
{
	return (struct sess_id){.slot = slot, .gen = gen, .worker = worker};
}

Test(moving, an_entry_lasts_until_its_end)
{
	struct moving t = {0};
	cr_assert_null(moving_via(&t, id(1, 5, 2), 0), "empty: nothing");
	cr_assert(moving_add(&t, id(1, 5, 2), id(0, 9, 1), 5000, 1, 0));
	const struct moving_entry *x = moving_via(&t, id(1, 5, 2), 100);
	cr_assert_not_null(x);
	cr_assert(sess_id_eq(x->was, id(0, 9, 1)));
	cr_assert_eq(x->until_ms, 5000);
	cr_assert_eq(x->hops, 1);
	cr_assert_null(moving_via(&t, id(1, 5, 3), 100), "another generation of the slot");
	cr_assert_null(moving_via(&t, id(0, 5, 2), 100), "another worker");
	cr_assert_null(moving_via(&t, id(1, 5, 2), 5000), "over at its end");
	moving_fini(&t);
}

Test(moving, the_same_session_moving_again_replaces_its_entry)
{
	struct moving t = {0};
	cr_assert(moving_add(&t, id(1, 5, 2), id(0, 9, 1), 5000, 1, 0));
	cr_assert(moving_add(&t, id(1, 5, 2), id(2, 3, 4), 6000, 2, 10));
	cr_assert_eq(t.len, 1);
	const struct moving_entry *x = moving_via(&t, id(1, 5, 2), 20);
	cr_assert(sess_id_eq(x->was, id(2, 3, 4)) && x->hops == 2 && x->until_ms == 6000);
	cr_assert(moving_add(&t, id(1, 6, 1), id(0, 1, 1), 0, 1, 10), "over already: nothing kept");
	cr_assert_eq(t.len, 1);
	moving_fini(&t);
}

Test(moving, many_entries_and_expired_ones_make_room)
{
	/* 10,000 moves at once: every one found; then, 5 s later, 10,000
	 * others: the expired ones are dropped when the table fills, so it
	 * does not keep growing. */
	struct moving t = {0};
	for (uint32_t i = 0; i < 10000; i++)
		cr_assert(moving_add(&t, id(1, i, 1), id(0, i, 7), 5000, 1, 0));
	for (uint32_t i = 0; i < 10000; i++) {
		const struct moving_entry *x = moving_via(&t, id(1, i, 1), 1);
		cr_assert_not_null(x, "entry %u", i);
		cr_assert(sess_id_eq(x->was, id(0, i, 7)));
	}
	uint32_t cap = t.cap;
	for (uint32_t i = 0; i < 10000; i++)
		cr_assert(moving_add(&t, id(2, i, 1), id(0, i, 8), 11000, 1, 6000));
	cr_assert_leq(t.cap, cap, "expired entries made room: %u slots, was %u", t.cap, cap);
	for (uint32_t i = 0; i < 10000; i++) {
		cr_assert_null(moving_via(&t, id(1, i, 1), 6000));
		cr_assert_not_null(moving_via(&t, id(2, i, 1), 6000), "entry %u", i);
	}
	moving_fini(&t);
}
