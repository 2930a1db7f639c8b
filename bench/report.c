/*
 * report.c — final summaries (report.h). Latencies are printed in
 * microseconds; the histogram keeps nanoseconds.
 */
#include "report.h"

#include <inttypes.h>

double report_connect_rate(const struct outcome *o)
{
	return o->connect_s > 0 ? (double)o->st.conn_ok / o->connect_s : 0;
}

double report_publish_rate(const struct outcome *o)
{
	return o->publish_s > 0 ? (double)o->st.published / o->publish_s : 0;
}

double report_deliver_rate(const struct outcome *o)
{
	return o->deliver_s > 0 ? (double)o->st.delivered / o->deliver_s : 0;
}

uint64_t report_lost(const struct outcome *o)
{
	return o->st.expected > o->st.delivered ? o->st.expected - o->st.delivered : 0;
}

double report_cpu_per_million(const struct outcome *o)
{
	if (o->broker_cpu_s < 0 || !o->st.delivered)
		return -1;
	return o->broker_cpu_s / ((double)o->st.delivered / 1e6);
}

double report_bench_bytes_per_client(const struct outcome *o)
{
	if (!o->conn_up_peak || o->bench_rss_peak_bytes < o->bench_rss_base_bytes)
		return 0;
	return (double)(o->bench_rss_peak_bytes - o->bench_rss_base_bytes) /
	       (double)o->conn_up_peak;
}

double report_broker_bytes_per_conn(const struct outcome *o)
{
	if (!o->conn_up_peak || o->broker_rss_peak_bytes < o->broker_rss_base_bytes)
		return 0;
	return (double)(o->broker_rss_peak_bytes - o->broker_rss_base_bytes) /
	       (double)o->conn_up_peak;
}

static double us(uint64_t ns)
{
	return (double)ns / 1e3;
}

void report_text(FILE *f, const struct scenario *sc, const struct outcome *o)
{
	const struct stats *s = &o->st;
	fprintf(f,
	        "== starling-bench %s: mqtt %s, qos %u, %u-byte payload, procs %u, agents %u%s%s\n",
	        sc->kind_name, sc->mqtt == 5 ? "5.0" : "3.1.1", sc->qos, sc->size_bytes, sc->procs,
	        o->agents, o->interrupted ? " (INTERRUPTED)" : "",
	        o->timed_out ? " (A PHASE TIMED OUT)" : "");
	fprintf(f,
	        "connections  attempted %" PRIu64 "  ok %" PRIu64 "  failed %" PRIu64
	        "  lost %" PRIu64 "  peak up %" PRIu64 "  %.0f conn/s over %.2fs\n",
	        s->conn_attempts, s->conn_ok, s->conn_failed, s->conn_lost, o->conn_up_peak,
	        report_connect_rate(o), o->connect_s);
	for (int r = 0; r < FAIL_COUNT; r++)
		if (s->fail[r])
			fprintf(f, "  failure %-18s %" PRIu64 "\n",
			        stats_fail_name((enum fail_reason)r), s->fail[r]);
	if (sc->kind != SCENARIO_CONN) {
		fprintf(f,
		        "publish      published %" PRIu64 "  acked %" PRIu64 "  refused %" PRIu64
		        "  %.0f msg/s over %.2fs\n",
		        s->published, s->acked, s->pub_refused, report_publish_rate(o),
		        o->publish_s);
		fprintf(f,
		        "delivery     expected %" PRIu64 "  delivered %" PRIu64 "  lost %" PRIu64
		        "  duplicates %" PRIu64 "  out-of-order %" PRIu64 "  foreign %" PRIu64
		        "  %.0f msg/s\n",
		        s->expected, s->delivered, report_lost(o), s->duplicates, s->out_of_order,
		        s->foreign, report_deliver_rate(o));
		const struct hist *h = &s->latency_ns;
		fprintf(f,
		        "latency      p50 %.1fus  p90 %.1fus  p99 %.1fus  p99.9 %.1fus  max %.1fus"
		        "  (%" PRIu64 " samples)\n",
		        us(hist_quantile(h, 0.5)), us(hist_quantile(h, 0.9)),
		        us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)),
		        us(h->count ? h->max : 0), h->count);
	}
	const struct hist *c = &s->connect_ns;
	fprintf(f, "connect time p50 %.1fus  p99 %.1fus  max %.1fus\n", us(hist_quantile(c, 0.5)),
	        us(hist_quantile(c, 0.99)), us(c->count ? c->max : 0));
	fprintf(f,
	        "bench memory %.0f bytes per connected client (RSS %" PRIu64 " -> %" PRIu64
	        " bytes)\n",
	        report_bench_bytes_per_client(o), o->bench_rss_base_bytes, o->bench_rss_peak_bytes);
	if (sc->broker_pid) {
		fprintf(f,
		        "broker       pid %u  RSS %" PRIu64 " -> %" PRIu64
		        " bytes (%.0f per connection)",
		        sc->broker_pid, o->broker_rss_base_bytes, o->broker_rss_peak_bytes,
		        report_broker_bytes_per_conn(o));
		if (o->broker_cpu_s >= 0)
			fprintf(f, "  CPU %.2fs  (%.2f s per million delivered)", o->broker_cpu_s,
			        report_cpu_per_million(o));
		fprintf(f, "\n");
	}
}

static void json_hist(FILE *f, const char *name, const struct hist *h)
{
	fprintf(f,
	        "\"%s\":{\"count\":%" PRIu64
	        ",\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
	        "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f}",
	        name, h->count, us(h->count ? h->min : 0), us(hist_mean(h)),
	        us(hist_quantile(h, 0.5)), us(hist_quantile(h, 0.9)), us(hist_quantile(h, 0.99)),
	        us(hist_quantile(h, 0.999)), us(h->count ? h->max : 0));
}

void report_json(FILE *f, const struct scenario *sc, const struct outcome *o)
{
	const struct stats *s = &o->st;
	fprintf(f,
	        "{\"scenario\":\"%s\",\"mqtt\":%u,\"qos\":%u,\"size\":%u,\"procs\":%u,"
	        "\"agents\":%u,\"interrupted\":%s,\"timed_out\":%s,",
	        sc->kind_name, sc->mqtt, sc->qos, sc->size_bytes, sc->procs, o->agents,
	        o->interrupted ? "true" : "false", o->timed_out ? "true" : "false");
	fprintf(f,
	        "\"connections\":{\"clients\":%" PRIu64 ",\"attempted\":%" PRIu64 ",\"ok\":%" PRIu64
	        ",\"failed\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"peak_up\":%" PRIu64
	        ",\"connect_s\":%.3f,\"per_s\":%.1f,\"failures\":{",
	        s->clients, s->conn_attempts, s->conn_ok, s->conn_failed, s->conn_lost,
	        o->conn_up_peak, o->connect_s, report_connect_rate(o));
	for (int r = 0; r < FAIL_COUNT; r++)
		fprintf(f, "%s\"%s\":%" PRIu64, r ? "," : "", stats_fail_name((enum fail_reason)r),
		        s->fail[r]);
	fprintf(f, "}},");
	fprintf(f,
	        "\"publish\":{\"published\":%" PRIu64 ",\"acked\":%" PRIu64 ",\"refused\":%" PRIu64
	        ",\"publish_s\":%.3f,\"per_s\":%.1f},",
	        s->published, s->acked, s->pub_refused, o->publish_s, report_publish_rate(o));
	fprintf(f,
	        "\"delivery\":{\"expected\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"lost\":%" PRIu64
	        ",\"duplicates\":%" PRIu64 ",\"out_of_order\":%" PRIu64 ",\"foreign\":%" PRIu64
	        ",\"untracked\":%" PRIu64 ",\"e2e_stalls\":%" PRIu64 ",\"clock_skew\":%" PRIu64
	        ",\"deliver_s\":%.3f,\"per_s\":%.1f},",
	        s->expected, s->delivered, report_lost(o), s->duplicates, s->out_of_order,
	        s->foreign, s->untracked, s->e2e_stalls, s->clock_skew, o->deliver_s,
	        report_deliver_rate(o));
	json_hist(f, "latency_us", &s->latency_ns);
	fprintf(f, ",");
	json_hist(f, "connect_us", &s->connect_ns);
	fprintf(f,
	        ",\"bench\":{\"rss_base_bytes\":%" PRIu64 ",\"rss_peak_bytes\":%" PRIu64
	        ",\"bytes_per_client\":%.1f,\"bytes_out\":%" PRIu64 ",\"bytes_in\":%" PRIu64 "}",
	        o->bench_rss_base_bytes, o->bench_rss_peak_bytes, report_bench_bytes_per_client(o),
	        s->bytes_out, s->bytes_in);
	if (sc->broker_pid)
		fprintf(f,
		        ",\"broker\":{\"pid\":%u,\"rss_base_bytes\":%" PRIu64
		        ",\"rss_peak_bytes\":%" PRIu64 ",\"rss_per_conn_bytes\":%.1f,\"cpu_s\":%.3f"
		        ",\"cpu_s_per_million\":%.3f}",
		        sc->broker_pid, o->broker_rss_base_bytes, o->broker_rss_peak_bytes,
		        report_broker_bytes_per_conn(o), o->broker_cpu_s,
		        report_cpu_per_million(o));
	fprintf(f, "}\n");
}
