/*
 * delta_test.c — index changes (core/route/delta.c): applying a delta
 * changes the index as asked and reports the filter's first subscription
 * on the node (0 -> 1) and its last one gone (1 -> 0), for plain filters and
 * shared groups, through replacements and moves; the reference count frees
 * it once.
 */
#include <criterion/criterion.h>

#include "route/delta.h"

static const struct sess_id A = {1, 1, 0}, B = {2, 1, 1}, A2 = {7, 3, 1};

static enum delta_effect apply(struct subidx *ix, enum delta_op op, const char *f,
                               struct sess_id who, uint8_t qos, struct sess_id was)
{
	struct sub_entry e = {who, {.qos = qos}};
	struct route_delta *d = route_delta_new(op, mqtt_view_str(f), &e, was);
	cr_assert_not_null(d);
	cr_assert_str_eq(d->filter, f);
	enum delta_effect r = route_delta_apply(ix, d);
	route_delta_unref(d);
	return r;
}

static const struct sess_id none = {0, 0, 0};

Test(delta, first_and_last_subscription_of_a_filter)
{
	struct subidx *ix = subidx_new();
	cr_assert_eq(apply(ix, DELTA_ADD, "a/+", A, 1, none), DELTA_FIRST);
	cr_assert_eq(apply(ix, DELTA_ADD, "a/+", B, 1, none), DELTA_SAME);
	cr_assert_eq(apply(ix, DELTA_ADD, "a/+", A, 2, none), DELTA_SAME, "a replacement");
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("a/+")), 2);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "a/+", A, 0, none), DELTA_SAME);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "a/+", A, 0, none), DELTA_SAME, "already gone");
	cr_assert_eq(apply(ix, DELTA_REMOVE, "a/+", B, 0, none), DELTA_LAST);
	cr_assert_eq(subidx_count(ix), 0);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "never", B, 0, none), DELTA_SAME);
	subidx_free(ix);
}

Test(delta, a_filter_and_its_children_are_separate_routes)
{
	struct subidx *ix = subidx_new();
	cr_assert_eq(apply(ix, DELTA_ADD, "a/b/c", A, 0, none), DELTA_FIRST);
	cr_assert_eq(apply(ix, DELTA_ADD, "a/b", A, 0, none), DELTA_FIRST, "a prefix node");
	cr_assert_eq(apply(ix, DELTA_ADD, "a/b/#", A, 0, none), DELTA_FIRST);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "a/b", A, 0, none), DELTA_LAST);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("a/b/c")), 1);
	subidx_free(ix);
}

Test(delta, shared_groups_count_their_members)
{
	struct subidx *ix = subidx_new();
	cr_assert_eq(apply(ix, DELTA_ADD, "$share/g/t", A, 1, none), DELTA_FIRST);
	cr_assert_eq(apply(ix, DELTA_ADD, "$share/g/t", B, 1, none), DELTA_SAME);
	cr_assert_eq(apply(ix, DELTA_ADD, "$share/h/t", B, 1, none), DELTA_FIRST, "another group");
	cr_assert_eq(apply(ix, DELTA_ADD, "t", B, 1, none), DELTA_FIRST, "the plain filter");
	cr_assert_eq(apply(ix, DELTA_REMOVE, "$share/g/t", A, 0, none), DELTA_SAME);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "$share/g/t", B, 0, none), DELTA_LAST);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("$share/h/t")), 1);
	subidx_free(ix);
}

Test(delta, a_move_keeps_the_route)
{
	struct subidx *ix = subidx_new();
	cr_assert_eq(apply(ix, DELTA_ADD, "m/#", A, 1, none), DELTA_FIRST);
	cr_assert_eq(apply(ix, DELTA_MOVE, "m/#", A2, 1, A), DELTA_SAME);
	cr_assert_eq(subidx_filter_count(ix, mqtt_view_str("m/#")), 1);
	cr_assert_eq(apply(ix, DELTA_REMOVE, "m/#", A, 0, none), DELTA_SAME, "A is gone already");
	cr_assert_eq(apply(ix, DELTA_REMOVE, "m/#", A2, 0, none), DELTA_LAST);
	subidx_free(ix);
}

Test(delta, shared_by_workers_freed_by_the_last)
{
	struct sub_entry e = {A, {0}};
	struct route_delta *d = route_delta_new(DELTA_ADD, mqtt_view_str("x"), &e, none);
	cr_assert_eq(d->origin_node, 0, "made here");
	cr_assert_eq(d->seq, 0);
	atomic_store(&d->refs, 3);
	route_delta_unref(d);
	route_delta_unref(d);
	cr_assert_eq(atomic_load(&d->refs), 1);
	route_delta_unref(d); /* ASan reports a leak or a double free otherwise */
}
