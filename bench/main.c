/*
 * main.c — starling-bench's command line: pick the mode, build the
 * scenario from defaults, scenario files and flags (in that order, later
 * wins), and run it.
 *
 *   starling-bench [run] [SCENARIO] [options]     a run on this machine
 *   starling-bench agent --listen ADDR:PORT       serve a controller
 *   starling-bench controller --agents A,B,C ...  a run split over agents
 *   starling-bench compare --a HOST --b HOST ...  two brokers, A B A B
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modes.h"
#include "report.h"
#include "run.h"

static void usage(void)
{
	fprintf(stderr,
	        "usage: starling-bench [run|agent|controller|compare] [SCENARIO] [options]\n"
	        "  SCENARIO is conn, pub, sub, pairs, fanin, fanout or shared\n"
	        "  -f FILE / --file FILE   read options from a scenario file (name = value)\n"
	        "  short forms: -h hosts -p port -c clients -q qos -V mqtt -s size -r rate\n"
	        "               -n count -d duration -P procs\n"
	        "  agent: --listen ADDR:PORT [--once]; controller: --agents H:P,H:P,...\n"
	        "  compare: --a HOSTS --b HOSTS [--a-pid PID --b-pid PID] [--rounds N]\n"
	        "options:\n");
	scenario_print_options();
}

static const char *short_name(char c)
{
	switch (c) {
	case 'h':
		return "hosts";
	case 'p':
		return "port";
	case 'c':
		return "clients";
	case 'q':
		return "qos";
	case 'V':
		return "mqtt";
	case 's':
		return "size";
	case 'r':
		return "rate";
	case 'n':
		return "count";
	case 'd':
		return "duration";
	case 'P':
		return "procs";
	default:
		return NULL;
	}
}

static int set_extra(struct extras *x, const char *name, const char *value, bool *handled)
{
	*handled = true;
	if (strcmp(name, "listen") == 0)
		snprintf(x->listen, sizeof(x->listen), "%s", value);
	else if (strcmp(name, "agents") == 0)
		snprintf(x->agents, sizeof(x->agents), "%s", value);
	else if (strcmp(name, "a") == 0)
		snprintf(x->a, sizeof(x->a), "%s", value);
	else if (strcmp(name, "b") == 0)
		snprintf(x->b, sizeof(x->b), "%s", value);
	else if (strcmp(name, "a-pid") == 0)
		x->a_pid = (uint32_t)strtoul(value, NULL, 10);
	else if (strcmp(name, "b-pid") == 0)
		x->b_pid = (uint32_t)strtoul(value, NULL, 10);
	else if (strcmp(name, "rounds") == 0)
		x->rounds = (uint32_t)strtoul(value, NULL, 10);
	else
		*handled = false;
	return 0;
}

int local_verdict(const struct scenario *sc, const struct outcome *o)
{
	const struct stats *s = &o->st;
	if (o->interrupted || o->timed_out)
		return 2;
	if (s->conn_failed || s->conn_lost)
		return 2;
	if (sc->kind != SCENARIO_CONN && sc->qos > 0 &&
	    (s->duplicates || s->delivered < s->expected))
		return 2;
	return 0;
}

struct local_ctx {
	struct run run;
};

static bool local_collect(void *ctx, struct stats *out)
{
	struct local_ctx *l = ctx;
	run_collect(&l->run, out);
	return true;
}

static void local_go(void *ctx)
{
	run_go(&((struct local_ctx *)ctx)->run);
}

static void local_stop(void *ctx)
{
	run_stop(&((struct local_ctx *)ctx)->run);
}

static bool local_finished(void *ctx)
{
	return run_finished(&((struct local_ctx *)ctx)->run);
}

int local_run(const struct scenario *sc, struct outcome *out)
{
	static struct local_ctx l;
	if (run_start(&l.run, sc, run_make_id(), 0, sc->procs) < 0)
		return 1;
	struct director_source src = {&l, local_collect, local_go, local_stop, local_finished};
	int rc = director_drive(sc, &src, out);
	bool worker_failed = l.run.failed > 0;
	run_end(&l.run);
	if (worker_failed) {
		fprintf(stderr, "bench: a worker process failed\n");
		return 1;
	}
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	static struct scenario sc;
	struct extras x;
	memset(&x, 0, sizeof(x));
	x.rounds = 2;
	scenario_defaults(&sc);
	char err[512];
	int i = 1;
	const char *mode = "run";
	if (i < argc && (strcmp(argv[i], "run") == 0 || strcmp(argv[i], "agent") == 0 ||
	                 strcmp(argv[i], "controller") == 0 || strcmp(argv[i], "compare") == 0))
		mode = argv[i++];
	if (i < argc && argv[i][0] != '-') {
		if (scenario_set(&sc, "scenario", argv[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "starling-bench: %s\n", err);
			return 1;
		}
		i++;
	}
	for (; i < argc; i++) {
		const char *arg = argv[i];
		char name[64];
		const char *value = NULL;
		if (strcmp(arg, "--help") == 0) {
			usage();
			return 0;
		}
		if (arg[0] == '-' && arg[1] && arg[1] != '-' && !arg[2]) {
			const char *n = arg[1] == 'f' ? "file" : short_name(arg[1]);
			if (!n) {
				fprintf(stderr, "starling-bench: unknown flag %s\n", arg);
				return 1;
			}
			snprintf(name, sizeof(name), "%s", n);
		} else if (arg[0] == '-' && arg[1] == '-') {
			const char *eq = strchr(arg + 2, '=');
			size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
			if (len >= sizeof(name)) {
				fprintf(stderr, "starling-bench: bad option %s\n", arg);
				return 1;
			}
			memcpy(name, arg + 2, len);
			name[len] = 0;
			if (eq)
				value = eq + 1;
		} else {
			/* a bare word is the scenario, wherever it stands */
			if (scenario_set(&sc, "scenario", arg, err, sizeof(err)) < 0) {
				fprintf(stderr, "starling-bench: unexpected argument '%s'\n", arg);
				usage();
				return 1;
			}
			continue;
		}
		bool is_switch = scenario_is_switch(name) == 1 || strcmp(name, "once") == 0;
		if (!value && !is_switch) {
			if (i + 1 >= argc) {
				fprintf(stderr, "starling-bench: --%s needs a value\n", name);
				return 1;
			}
			value = argv[++i];
		}
		if (!value)
			value = "1";
		if (strcmp(name, "file") == 0) {
			if (scenario_load_file(&sc, value, err, sizeof(err)) < 0) {
				fprintf(stderr, "starling-bench: %s\n", err);
				return 1;
			}
			continue;
		}
		if (strcmp(name, "once") == 0) {
			x.once = true;
			continue;
		}
		bool handled = false;
		set_extra(&x, name, value, &handled);
		if (handled)
			continue;
		if (scenario_set(&sc, name, value, err, sizeof(err)) < 0) {
			fprintf(stderr, "starling-bench: %s\n", err);
			return 1;
		}
	}
	if (strcmp(mode, "agent") == 0)
		return agent_main(&sc, &x);
	if (scenario_finish(&sc, err, sizeof(err)) < 0) {
		fprintf(stderr, "starling-bench: %s\n", err);
		return 1;
	}
	director_install_signals();
	if (strcmp(mode, "controller") == 0)
		return controller_main(&sc, &x);
	if (strcmp(mode, "compare") == 0)
		return compare_main(&sc, &x);

	if (!sc.id_prefix[0])
		snprintf(sc.id_prefix, sizeof(sc.id_prefix), "sb%08x", run_make_id());
	struct outcome o;
	int rc = local_run(&sc, &o);
	if (rc)
		return rc;
	if (sc.json)
		report_json(stdout, &sc, &o);
	else
		report_text(stdout, &sc, &o);
	return local_verdict(&sc, &o);
}
