/*
 * compare.c — `starling-bench compare --a HOSTS --b HOSTS`: the same
 * scenario against two brokers, alternately (A B A B ...) so drift of the
 * machine hits both alike, then each figure for both, the ratio B/A, and
 * each broker's CPU seconds per million delivered messages (given its pid):
 * the fair figure when the bench and the broker share the cores.
 */
#include <stdio.h>
#include <string.h>

#include "modes.h"
#include "report.h"
#include "run.h"

#define ROUNDS_MAX 50

struct figure {
	const char *name;
	double (*get)(const struct outcome *o);
};

static double f_conn(const struct outcome *o)
{
	return report_connect_rate(o);
}
static double f_pub(const struct outcome *o)
{
	return report_publish_rate(o);
}
static double f_dlv(const struct outcome *o)
{
	return report_deliver_rate(o);
}
static double f_lost(const struct outcome *o)
{
	return (double)report_lost(o);
}
static double f_dup(const struct outcome *o)
{
	return (double)o->st.duplicates;
}
static double f_p50(const struct outcome *o)
{
	return (double)hist_quantile(&o->st.latency_ns, 0.5) / 1e3;
}
static double f_p99(const struct outcome *o)
{
	return (double)hist_quantile(&o->st.latency_ns, 0.99) / 1e3;
}
static double f_p999(const struct outcome *o)
{
	return (double)hist_quantile(&o->st.latency_ns, 0.999) / 1e3;
}
static double f_cpu(const struct outcome *o)
{
	return report_cpu_per_million(o);
}
static double f_rss(const struct outcome *o)
{
	return report_broker_bytes_per_conn(o);
}

static const struct figure figures[] = {
    {"connects_per_s", f_conn},   {"published_per_s", f_pub},
    {"delivered_per_s", f_dlv},   {"lost", f_lost},
    {"duplicates", f_dup},        {"latency_p50_us", f_p50},
    {"latency_p99_us", f_p99},    {"latency_p999_us", f_p999},
    {"cpu_s_per_million", f_cpu}, {"broker_rss_per_conn_bytes", f_rss},
};

#define FIGURES (sizeof(figures) / sizeof(figures[0]))

/* Mean over rounds; for latency each round's quantile (histograms not summed). */
static double mean_of(const struct outcome *runs, uint32_t n, const struct figure *f)
{
	double sum = 0;
	uint32_t used = 0;
	for (uint32_t i = 0; i < n; i++) {
		double v = f->get(&runs[i]);
		if (v < 0)
			continue; /* unknown, e.g. no pid given */
		sum += v;
		used++;
	}
	return used ? sum / used : -1;
}

int compare_main(const struct scenario *sc_in, const struct extras *x)
{
	if (!x->a[0] || !x->b[0]) {
		fprintf(stderr, "compare: --a HOSTS and --b HOSTS are required\n");
		return 1;
	}
	uint32_t rounds = x->rounds ? x->rounds : 1;
	if (rounds > ROUNDS_MAX)
		rounds = ROUNDS_MAX;
	static struct outcome runs[2][ROUNDS_MAX];
	const char *hosts[2] = {x->a, x->b};
	uint32_t pids[2] = {x->a_pid, x->b_pid};
	int verdict = 0;
	for (uint32_t r = 0; r < rounds; r++) {
		for (int side = 0; side < 2; side++) {
			static struct scenario sc;
			sc = *sc_in;
			snprintf(sc.hosts, sizeof(sc.hosts), "%s", hosts[side]);
			sc.broker_pid = pids[side];
			if (!sc.id_prefix[0])
				snprintf(sc.id_prefix, sizeof(sc.id_prefix), "sb%08x",
				         run_make_id());
			if (!sc.quiet)
				fprintf(stderr, "compare: round %u, broker %c (%s)\n", r + 1,
				        side ? 'B' : 'A', sc.hosts);
			int rc = local_run(&sc, &runs[side][r]);
			if (rc)
				return rc;
			if (local_verdict(&sc, &runs[side][r]))
				verdict = 2;
			if (director_interrupted)
				return 2;
		}
	}
	if (sc_in->json) {
		printf("{\"scenario\":\"%s\",\"rounds\":%u,\"a\":{\"hosts\":\"%s\",\"pid\":%u},"
		       "\"b\":{\"hosts\":\"%s\",\"pid\":%u},\"figures\":{",
		       sc_in->kind_name, rounds, x->a, x->a_pid, x->b, x->b_pid);
		for (size_t i = 0; i < FIGURES; i++) {
			double a = mean_of(runs[0], rounds, &figures[i]);
			double b = mean_of(runs[1], rounds, &figures[i]);
			printf("%s\"%s\":{\"a\":%.3f,\"b\":%.3f,\"ratio\":%.4f}", i ? "," : "",
			       figures[i].name, a, b, a > 0 && b >= 0 ? b / a : -1.0);
		}
		printf("}}\n");
		return verdict;
	}
	printf("== compare %s, %u round(s) alternating A B; A = %s, B = %s\n", sc_in->kind_name,
	       rounds, x->a, x->b);
	printf("%-28s %16s %16s %10s\n", "figure", "A", "B", "B/A");
	for (size_t i = 0; i < FIGURES; i++) {
		double a = mean_of(runs[0], rounds, &figures[i]);
		double b = mean_of(runs[1], rounds, &figures[i]);
		if (a < 0 && b < 0)
			continue;
		if (a > 0 && b >= 0)
			printf("%-28s %16.2f %16.2f %10.3f\n", figures[i].name, a, b, b / a);
		else
			printf("%-28s %16.2f %16.2f %10s\n", figures[i].name, a, b, "-");
	}
	return verdict;
}
