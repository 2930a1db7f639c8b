/*
 * controller.c — `starling-bench controller --agents H:P,H:P,...`: split a
 * scenario over agents (agent i takes slices i*procs .. i*procs+procs-1 of
 * agents*procs), drive the phases from the sum of their counters with the
 * same director as a local run, and print one merged report (histograms
 * merged bucket by bucket, counters added).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "modes.h"
#include "report.h"
#include "run.h"
#include "wire.h"

#define AGENTS_MAX 256

struct agent_link {
	struct wire_conn wc;
	struct stats last; /* latest counters from this agent */
	bool final;        /* last is final */
	char name[128];
};

struct ctl {
	struct agent_link *agents;
	uint32_t count;
	bool broken;
};

static bool ctl_pump(struct ctl *c)
{
	for (uint32_t i = 0; i < c->count; i++) {
		struct agent_link *a = &c->agents[i];
		if (a->final)
			continue;
		for (;;) {
			uint8_t type;
			const uint8_t *body;
			uint32_t len;
			int got = wire_recv(&a->wc, 0, &type, &body, &len);
			if (got == 0)
				break;
			if (got < 0) {
				fprintf(stderr, "controller: agent %s went away\n", a->name);
				c->broken = true;
				return false;
			}
			if (type == WIRE_ERROR) {
				fprintf(stderr, "controller: agent %s: %.*s\n", a->name, (int)len,
				        body);
				c->broken = true;
				return false;
			}
			if ((type == WIRE_STATS || type == WIRE_FINAL) &&
			    wire_stats_decode(body, len, &a->last) < 0) {
				fprintf(stderr, "controller: agent %s runs another build\n",
				        a->name);
				c->broken = true;
				return false;
			}
			if (type == WIRE_FINAL) {
				a->final = true;
				break;
			}
		}
	}
	return true;
}

static bool ctl_collect(void *ctx, struct stats *out)
{
	struct ctl *c = ctx;
	bool ok = ctl_pump(c);
	stats_init(out);
	for (uint32_t i = 0; i < c->count; i++)
		stats_merge(out, &c->agents[i].last);
	return ok;
}

static void ctl_send_all(struct ctl *c, uint8_t type)
{
	for (uint32_t i = 0; i < c->count; i++)
		if (!c->agents[i].final)
			wire_send(c->agents[i].wc.fd, type, NULL, 0);
}

static void ctl_go(void *ctx)
{
	ctl_send_all(ctx, WIRE_GO);
}

static void ctl_stop(void *ctx)
{
	ctl_send_all(ctx, WIRE_STOP);
}

static bool ctl_finished(void *ctx)
{
	struct ctl *c = ctx;
	if (!ctl_pump(c))
		return true;
	for (uint32_t i = 0; i < c->count; i++)
		if (!c->agents[i].final)
			return false;
	return true;
}

int controller_main(const struct scenario *sc_in, const struct extras *x)
{
	static struct scenario sc;
	sc = *sc_in;
	if (!x->agents[0]) {
		fprintf(stderr, "controller: --agents H:P,H:P,... is required\n");
		return 1;
	}
	uint32_t run_id = run_make_id();
	if (!sc.id_prefix[0])
		snprintf(sc.id_prefix, sizeof(sc.id_prefix), "sb%08x", run_id);
	struct ctl c;
	memset(&c, 0, sizeof(c));
	c.agents = calloc(AGENTS_MAX, sizeof(*c.agents));
	if (!c.agents)
		return 1;
	char list[sizeof(x->agents)];
	snprintf(list, sizeof(list), "%s", x->agents);
	char *save = NULL;
	for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (c.count >= AGENTS_MAX)
			break;
		struct agent_link *a = &c.agents[c.count++];
		snprintf(a->name, sizeof(a->name), "%s", tok);
		stats_init(&a->last);
		wire_conn_init(&a->wc, wire_connect(tok, 10000));
		if (a->wc.fd < 0) {
			fprintf(stderr, "controller: cannot reach agent %s\n", tok);
			return 1;
		}
	}
	uint32_t slices = c.count * sc.procs;
	static char text[64 * 1024];
	for (uint32_t i = 0; i < c.count; i++) {
		int n =
		    snprintf(text, sizeof(text), "agent %u %u %u\n", i * sc.procs, slices, run_id);
		int m = scenario_format(&sc, text + n, sizeof(text) - (size_t)n);
		if (m < 0 ||
		    wire_send(c.agents[i].wc.fd, WIRE_SCENARIO, text, (uint32_t)(n + m)) < 0) {
			fprintf(stderr, "controller: cannot send the scenario to %s\n",
			        c.agents[i].name);
			return 1;
		}
	}
	if (!sc.quiet)
		fprintf(stderr, "controller: %s over %u agents x %u procs, run %08x\n",
		        sc.kind_name, c.count, sc.procs, run_id);
	struct director_source src = {&c, ctl_collect, ctl_go, ctl_stop, ctl_finished};
	static struct outcome o;
	int rc = director_drive(&sc, &src, &o);
	o.agents = c.count;
	for (uint32_t i = 0; i < c.count; i++)
		wire_conn_close(&c.agents[i].wc);
	free(c.agents);
	if (rc < 0 || c.broken) {
		fprintf(stderr, "controller: the run broke\n");
		return 1;
	}
	if (sc.json)
		report_json(stdout, &sc, &o);
	else
		report_text(stdout, &sc, &o);
	return local_verdict(&sc, &o);
}
