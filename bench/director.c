/*
 * director.c — run phases and the live line (director.h).
 *
 * Deadlines bound every phase, so a run always ends by itself: connecting
 * gets clients/connect_rate + connect_timeout + 5 s, publishing gets the
 * duration (or, with a count, count/rate plus a margin), draining gets
 * --drain seconds and also ends after one quiet second without deliveries.
 */
#include "director.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "procfs.h"

#define STEP_NS       (100000000ull)
#define SEC_NS        (1000000000ull)
#define QUIET_NS      (1000000000ull)
#define FINISH_MAX_NS (15000000000ull)

volatile int director_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	director_interrupted = 1;
}

void director_install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SEC_NS + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / SEC_NS), .tv_nsec = (long)(ns % SEC_NS)};
	nanosleep(&ts, NULL);
}

enum phase { PH_CONNECT, PH_HOLD, PH_PUBLISH, PH_DRAIN, PH_STOP };

static const char *phase_name(enum phase p)
{
	static const char *const names[] = {"connect", "hold", "publish", "drain", "stop"};
	return names[p];
}

static void live_line(const struct scenario *sc, enum phase ph, double t, const struct stats *s,
                      const struct stats *prev, uint64_t clients)
{
	if (sc->quiet)
		return;
	/* latency of the last second only, so a live line shows change */
	static struct hist recent;
	hist_diff(&recent, &s->latency_ns, &prev->latency_ns);
	fprintf(stderr,
	        "[%6.1fs] %-7s conns %llu/%llu  conn/s %llu  pub/s %llu  dlv/s %llu  "
	        "expected %llu  delivered %llu  dup %llu  ooo %llu  p50 %.0fus  p99 %.0fus  max "
	        "%.0fus\n",
	        t, phase_name(ph), (unsigned long long)s->conn_up, (unsigned long long)clients,
	        (unsigned long long)(s->conn_ok - prev->conn_ok),
	        (unsigned long long)(s->published - prev->published),
	        (unsigned long long)(s->delivered - prev->delivered),
	        (unsigned long long)s->expected, (unsigned long long)s->delivered,
	        (unsigned long long)s->duplicates, (unsigned long long)s->out_of_order,
	        hist_quantile(&recent, 0.5) / 1e3, hist_quantile(&recent, 0.99) / 1e3,
	        recent.count ? recent.max / 1e3 : 0.0);
}

int director_drive(const struct scenario *sc, const struct director_source *src,
                   struct outcome *out)
{
	memset(out, 0, sizeof(*out));
	out->broker_cpu_s = -1;
	struct plan plan;
	plan_make(sc, &plan);
	pid_t broker = (pid_t)sc->broker_pid;
	if (broker)
		out->broker_rss_base_bytes = procfs_rss_bytes(broker);
	/* conn has no go: its broker CPU covers connecting and holding */
	double cpu_go = broker && sc->kind == SCENARIO_CONN ? procfs_cpu_s(broker) : -1;

	static struct stats cur, prev;
	stats_init(&prev);
	uint64_t t0 = mono_ns(), now = t0, next_line = t0 + SEC_NS;
	uint64_t t_phase = t0, t_go = 0, t_last_dlv = 0, t_quiet = 0, last_delivered = 0;
	double connect_budget_s = sc->connect_timeout_s + 5.0;
	if (sc->connect_rate)
		connect_budget_s += (double)plan.clients_total / sc->connect_rate;
	double publish_budget_s = sc->duration_s + 5.0 + sc->connect_timeout_s;
	if (sc->count && sc->rate)
		publish_budget_s = (double)sc->count / sc->rate + 10.0 + sc->connect_timeout_s;
	else if (sc->count)
		publish_budget_s = 600.0; /* unlimited rate with a count: bounded all the same */
	if (sc->count && sc->duration_s &&
	    publish_budget_s > sc->duration_s + 5.0 + sc->connect_timeout_s)
		publish_budget_s = sc->duration_s + 5.0 + sc->connect_timeout_s;
	enum phase ph = PH_CONNECT;
	bool ok = true;

	while (ph != PH_STOP) {
		sleep_ns(STEP_NS);
		now = mono_ns();
		if (!src->collect(src->ctx, &cur)) {
			ok = false;
			break;
		}
		double in_phase = (double)(now - t_phase) / 1e9;
		if (director_interrupted) {
			out->interrupted = true;
			break;
		}
		if (cur.conn_up > out->conn_up_peak)
			out->conn_up_peak = cur.conn_up;
		/* workers read their RSS once a second: keep the highest seen */
		if (cur.rss_bytes > out->bench_rss_peak_bytes)
			out->bench_rss_peak_bytes = cur.rss_bytes;
		switch (ph) {
		case PH_CONNECT: {
			bool all = cur.conn_ok + cur.conn_failed >= plan.clients_total &&
			           cur.subs_ok + cur.subs_failed >= plan.subs_total;
			bool late = in_phase > connect_budget_s;
			if (!all && !late)
				break;
			out->timed_out |= late && !all;
			out->connect_s = (double)(now - t0) / 1e9;
			t_phase = now;
			if (sc->kind == SCENARIO_CONN) {
				ph = PH_HOLD;
				break;
			}
			if (broker)
				cpu_go = procfs_cpu_s(broker);
			src->go(src->ctx);
			t_go = now;
			ph = PH_PUBLISH;
			break;
		}
		case PH_HOLD:
			if (in_phase >= sc->duration_s) {
				out->hold_s = in_phase;
				if (broker)
					out->broker_rss_peak_bytes = procfs_rss_bytes(broker);
				ph = PH_STOP;
			}
			break;
		case PH_PUBLISH: {
			bool done = plan.pubs_total ? cur.pubs_done >= plan.pubs_total
			                            : in_phase >= sc->duration_s;
			if (!done && in_phase > publish_budget_s) {
				out->timed_out = true;
				done = true;
			}
			if (done) {
				out->publish_s = in_phase;
				t_phase = now;
				t_quiet = now;
				/* pub alone has nobody to wait for; sub ran its duration */
				ph = plan.pubs_total && plan.per_msg ? PH_DRAIN : PH_STOP;
			}
			break;
		}
		case PH_DRAIN:
			if (cur.delivered >= cur.expected || in_phase >= sc->drain_s ||
			    now - t_quiet >= QUIET_NS)
				ph = PH_STOP;
			break;
		case PH_STOP:
			break;
		}
		if (cur.delivered != last_delivered) {
			last_delivered = cur.delivered;
			t_last_dlv = now;
			t_quiet = now;
		}
		if (now >= next_line) {
			live_line(sc, ph, (double)(now - t0) / 1e9, &cur, &prev,
			          plan.clients_total);
			prev = cur;
			next_line += SEC_NS;
		}
	}
	if (broker && cpu_go >= 0) {
		double cpu_end = procfs_cpu_s(broker);
		if (cpu_end >= 0)
			out->broker_cpu_s = cpu_end - cpu_go;
	}
	if (broker && !out->broker_rss_peak_bytes)
		out->broker_rss_peak_bytes = procfs_rss_bytes(broker);
	if (t_go)
		out->deliver_s = t_last_dlv > t_go ? (double)(t_last_dlv - t_go) / 1e9 : 0;
	src->stop(src->ctx);
	uint64_t t_stop = mono_ns();
	while (!src->finished(src->ctx) && mono_ns() - t_stop < FINISH_MAX_NS)
		sleep_ns(STEP_NS / 2);
	src->collect(src->ctx, &out->st);
	out->bench_rss_base_bytes = out->st.rss_base_bytes;
	if (!out->bench_rss_peak_bytes)
		out->bench_rss_peak_bytes = out->st.rss_bytes;
	return ok ? 0 : -1;
}
