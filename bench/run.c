/*
 * run.c — fork and supervise the worker processes of one run (run.h).
 *
 * Each worker is a forked child with its own ring and its own file limit;
 * the shared region is mapped before fork so all of them see it at the same
 * address. Workers exit with _exit() so nothing of the parent's stdio is
 * flushed twice.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e.h"
#include "worker.h"

uint32_t run_make_id(void)
{
	uint32_t id = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &id, sizeof(id)) != (ssize_t)sizeof(id))
			id = 0;
		close(fd);
	}
	if (!id)
		id = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
	return id ? id : 1;
}

int run_start(struct run *r, const struct scenario *sc, uint32_t run_id, uint32_t slice_base,
              uint32_t slices_total)
{
	memset(r, 0, sizeof(*r));
	r->sc = *sc;
	r->procs = sc->procs ? sc->procs : 1;
	struct plan plan;
	plan_make(sc, &plan);
	r->sh = shared_create(r->procs, e2e_bytes(plan.pubs_total, sc->e2e_window), run_id);
	if (!r->sh) {
		fprintf(stderr, "bench: shared memory: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	for (uint32_t i = 0; i < r->procs; i++) {
		pid_t pid = fork();
		if (pid < 0) {
			fprintf(stderr, "bench: fork: %s\n", strerror(errno));
			run_end(r);
			return -1;
		}
		if (pid == 0) {
			int rc = worker_run(&r->sc, r->sh, i, slice_base + i, slices_total,
			                    slice_base, slice_base + r->procs);
			_exit(rc == 0 ? 0 : 1);
		}
		r->pids[i] = pid;
		r->alive++;
	}
	return 0;
}

void run_collect(struct run *r, struct stats *out)
{
	stats_init(out);
	for (uint32_t i = 0; i < r->procs; i++)
		stats_merge(out, &r->sh->stats[i]);
}

void run_go(struct run *r)
{
	shared_store(&r->sh->go, 1);
}

void run_stop(struct run *r)
{
	shared_store(&r->sh->stop, 1);
}

bool run_finished(struct run *r)
{
	for (uint32_t i = 0; i < r->procs; i++) {
		if (r->pids[i] <= 0)
			continue;
		int status = 0;
		pid_t p = waitpid(r->pids[i], &status, WNOHANG);
		if (p == r->pids[i]) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				r->failed++;
			r->pids[i] = 0;
			r->alive--;
		}
	}
	return r->alive == 0;
}

void run_end(struct run *r)
{
	for (uint32_t i = 0; i < r->procs; i++) {
		if (r->pids[i] > 0) {
			kill(r->pids[i], SIGKILL);
			waitpid(r->pids[i], NULL, 0);
			r->pids[i] = 0;
		}
	}
	r->alive = 0;
	shared_destroy(r->sh);
	r->sh = NULL;
}
