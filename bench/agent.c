/*
 * agent.c — `starling-bench agent --listen ADDR:PORT`: wait for a
 * controller, receive a scenario and this agent's slices of it, run them
 * with local worker processes, stream merged counters every half second,
 * start and stop when told, and send the final counters.
 *
 * The agent decides nothing about phases: the controller's director does,
 * from the sum of every agent's counters. If the controller goes away the
 * run is stopped, so an agent never runs unbounded.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "modes.h"
#include "run.h"
#include "wire.h"

#define STATS_EVERY_MS 500
#define RUN_MAX_S      (24 * 3600)

static uint64_t ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int serve_one(struct wire_conn *wc)
{
	uint8_t type = 0;
	const uint8_t *body;
	uint32_t len;
	if (wire_recv(wc, 10000, &type, &body, &len) != 1 || type != WIRE_SCENARIO) {
		fprintf(stderr, "agent: no scenario from the controller\n");
		return -1;
	}
	static char text[WIRE_FRAME_MAX + 1];
	memcpy(text, body, len);
	text[len] = 0;
	unsigned base = 0, slices = 0, run_id = 0;
	char *nl = strchr(text, '\n');
	static struct scenario sc;
	char err[512];
	scenario_defaults(&sc);
	if (!nl || sscanf(text, "agent %u %u %u", &base, &slices, &run_id) != 3 ||
	    scenario_parse_text(&sc, nl + 1, err, sizeof(err)) < 0 ||
	    scenario_finish(&sc, err, sizeof(err)) < 0 || base + sc.procs > slices) {
		snprintf(err, sizeof(err), "bad scenario from controller");
		wire_send(wc->fd, WIRE_ERROR, err, (uint32_t)strlen(err));
		return -1;
	}
	fprintf(stderr, "agent: %s, slices %u-%u of %u, run %08x\n", sc.kind_name, base,
	        base + sc.procs - 1, slices, run_id);
	static struct run r;
	if (run_start(&r, &sc, run_id, base, slices) < 0) {
		wire_send(wc->fd, WIRE_ERROR, "run start failed", 16);
		return -1;
	}
	static struct stats st;
	uint64_t next_stats = ms_now(), started = ms_now();
	bool stopped = false;
	int rc = 0;
	while (!run_finished(&r)) {
		int got = wire_recv(wc, 100, &type, &body, &len);
		if (got < 0 && !stopped) {
			fprintf(stderr, "agent: controller went away, stopping\n");
			run_stop(&r);
			stopped = true;
			rc = -1;
		} else if (got == 1 && type == WIRE_GO) {
			run_go(&r);
		} else if (got == 1 && type == WIRE_STOP && !stopped) {
			run_stop(&r);
			stopped = true;
		}
		if (!stopped &&
		    (director_interrupted || ms_now() - started > RUN_MAX_S * 1000ull)) {
			run_stop(&r);
			stopped = true;
		}
		if (ms_now() >= next_stats && rc == 0) {
			run_collect(&r, &st);
			if (wire_send_stats(wc->fd, WIRE_STATS, &st) < 0 && !stopped) {
				run_stop(&r);
				stopped = true;
				rc = -1;
			}
			next_stats += STATS_EVERY_MS;
		}
	}
	run_collect(&r, &st);
	if (rc == 0)
		wire_send_stats(wc->fd, WIRE_FINAL, &st);
	run_end(&r);
	return rc;
}

int agent_main(const struct scenario *sc, const struct extras *x)
{
	(void)sc;
	if (!x->listen[0]) {
		fprintf(stderr, "agent: --listen ADDR:PORT is required\n");
		return 1;
	}
	int lfd = wire_listen(x->listen);
	if (lfd < 0) {
		fprintf(stderr, "agent: cannot listen on %s\n", x->listen);
		return 1;
	}
	director_install_signals();
	fprintf(stderr, "agent: listening on %s\n", x->listen);
	int rc = 0;
	while (!director_interrupted) {
		struct pollfd pfd = {.fd = lfd, .events = POLLIN};
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		struct wire_conn wc;
		wire_conn_init(&wc, fd);
		rc = serve_one(&wc) < 0 ? 1 : 0;
		wire_conn_close(&wc);
		if (x->once)
			break;
	}
	close(lfd);
	return rc;
}
