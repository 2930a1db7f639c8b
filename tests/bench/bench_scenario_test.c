/*
 * bench_scenario_test.c — scenario options: files and flags share one
 * table, text round-trips (that is what agents receive), and the plan
 * gives every publisher its expected deliveries.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "scenario.h"

static struct scenario sc, back;
static char err[256];
static char text[16384];

Test(bench_scenario, file_text_sets_options)
{
	scenario_defaults(&sc);
	cr_assert_eq(scenario_parse_text(&sc,
	                                 "# a fanout\nscenario = fanout\nsubs 250\nqos=2\n"
	                                 "retain\nsize = 100  # bytes\n",
	                                 err, sizeof(err)),
	             0, "%s", err);
	cr_expect_eq(sc.kind, SCENARIO_FANOUT);
	cr_expect_eq(sc.subs, 250);
	cr_expect_eq(sc.qos, 2);
	cr_expect(sc.retain);
	cr_expect_eq(sc.size_bytes, 100);
}

Test(bench_scenario, bad_values_are_refused)
{
	scenario_defaults(&sc);
	cr_expect_lt(scenario_set(&sc, "qos", "3", err, sizeof(err)), 0);
	cr_expect_lt(scenario_set(&sc, "qos", "-1", err, sizeof(err)), 0);
	cr_expect_lt(scenario_set(&sc, "scenario", "nope", err, sizeof(err)), 0);
	cr_expect_lt(scenario_set(&sc, "no-such-option", "1", err, sizeof(err)), 0);
	cr_expect_lt(scenario_parse_text(&sc, "size = 10x\n", err, sizeof(err)), 0);
	cr_expect(strstr(err, "line 1") != NULL, "%s", err);
	scenario_defaults(&sc);
	sc.size_bytes = 8;
	cr_expect_lt(scenario_finish(&sc, err, sizeof(err)), 0, "payload header needs 32 bytes");
}

Test(bench_scenario, format_round_trips)
{
	scenario_defaults(&sc);
	scenario_set(&sc, "scenario", "shared", err, sizeof(err));
	scenario_set(&sc, "hosts", "127.0.0.1:1884,127.0.0.2", err, sizeof(err));
	scenario_set(&sc, "count", "123456789012", err, sizeof(err));
	scenario_set(&sc, "tls", "1", err, sizeof(err));
	scenario_set(&sc, "groups", "3", err, sizeof(err));
	cr_assert_gt(scenario_format(&sc, text, sizeof(text)), 0);
	scenario_defaults(&back);
	cr_assert_eq(scenario_parse_text(&back, text, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(memcmp(&sc, &back, sizeof(sc)), 0);
}

Test(bench_scenario, plan_expected_deliveries)
{
	struct plan p;
	scenario_defaults(&sc);
	scenario_set(&sc, "scenario", "fanout", err, sizeof(err));
	sc.subs = 40;
	sc.pubs = 2;
	cr_assert_eq(scenario_finish(&sc, err, sizeof(err)), 0);
	plan_make(&sc, &p);
	cr_expect_eq(p.per_msg, 40);
	cr_expect_eq(p.clients_total, 42);
	cr_expect_eq(plan_role(&p, 0), ROLE_SUB);
	cr_expect_eq(plan_role(&p, 40), ROLE_PUB);
	/* all 4 slices together hold every subscriber; one slice a quarter */
	cr_expect_eq(plan_local_deliveries(&sc, &p, 0, 0, 4, 4), 40);
	cr_expect_eq(plan_local_deliveries(&sc, &p, 0, 1, 2, 4), 10);

	scenario_defaults(&sc);
	sc.clients = 8; /* pairs */
	cr_assert_eq(scenario_finish(&sc, err, sizeof(err)), 0);
	plan_make(&sc, &p);
	cr_expect_eq(p.per_msg, 1);
	/* pair i's publisher and subscriber share a slice */
	for (uint32_t i = 0; i < 8; i++)
		cr_expect_eq(plan_slice(&p, i, 3), plan_slice(&p, 8 + i, 3));

	scenario_defaults(&sc);
	scenario_set(&sc, "scenario", "shared", err, sizeof(err));
	sc.subs = 6;
	sc.groups = 3;
	cr_assert_eq(scenario_finish(&sc, err, sizeof(err)), 0);
	plan_make(&sc, &p);
	cr_expect_eq(p.per_msg, 3, "one delivery per $share group");
	char f[128];
	plan_sub_filter(&sc, 4, f, sizeof(f));
	cr_expect_str_eq(f, "$share/g1/bench/+");
}
