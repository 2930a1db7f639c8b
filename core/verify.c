/*
 * verify.c — the password-checking pool (see verify.h). Owns its threads,
 * the request queue, each worker's verdict list and the password database.
 * Workers call verify_submit and verify_take; the main thread calls
 * verify_start, verify_set_db and verify_stop. Nothing here is on the
 * publish path: it runs per CONNECT with credentials, so plain mutexes are
 * the right tool.
 */
#include "verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "passwd.h"

struct request {
	uint16_t worker;
	uint32_t slot;
	uint32_t gen;
	uint16_t user_len;
	uint16_t password_len;
	uint8_t cred[VERIFY_CRED_MAX]; /* user, then password */
};

struct results { /* one worker's verdicts, oldest first */
	pthread_mutex_t lock;
	struct verify_result *items;
	unsigned len;
	unsigned cap;
	int event_fd;
};

struct verify_pool {
	pthread_mutex_t lock; /* the queue and `stopping` */
	pthread_cond_t ready;
	struct request **queue; /* ring of VERIFY_QUEUE_MAX */
	unsigned head;
	unsigned len;
	bool stopping;

	/* The database: checks hold the read side for one hash; a reload
	 * takes the write side, so it waits for at most the checks in
	 * progress and never frees a database under one. */
	pthread_rwlock_t db_lock;
	struct passwd_db *db;

	unsigned workers;
	struct results *res; /* [workers] */
	unsigned thread_count;
	pthread_t *threads;
};

static bool check(struct verify_pool *p, const struct request *r)
{
	const uint8_t *user = r->cred, *pw = r->cred + r->user_len;
	pthread_rwlock_rdlock(&p->db_lock);
	/* passwd_check costs a hash for an unknown user too, so the time of a
	 * refusal does not tell which user names exist. */
	bool ok =
	    p->db && passwd_check(p->db, (const char *)user, r->user_len, pw, r->password_len);
	pthread_rwlock_unlock(&p->db_lock);
	return ok;
}

static void deliver(struct verify_pool *p, const struct request *r, bool ok)
{
	struct results *rs = &p->res[r->worker];
	pthread_mutex_lock(&rs->lock);
	if (rs->len == rs->cap) {
		unsigned cap = rs->cap ? rs->cap * 2 : 64;
		struct verify_result *n = realloc(rs->items, cap * sizeof(*n));
		if (!n) {
			/* The connection then waits for its connect timeout. */
			pthread_mutex_unlock(&rs->lock);
			return;
		}
		rs->items = n;
		rs->cap = cap;
	}
	rs->items[rs->len++] = (struct verify_result){r->slot, r->gen, ok};
	pthread_mutex_unlock(&rs->lock);
	uint64_t one = 1;
	if (write(rs->event_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN cannot happen below 2^64-1 pending; nothing to do. */
	}
}

static void *pool_main(void *arg)
{
	struct verify_pool *p = arg;
	pthread_setname_np(pthread_self(), "starling-auth");
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->len == 0 && !p->stopping)
			pthread_cond_wait(&p->ready, &p->lock);
		if (p->stopping) {
			pthread_mutex_unlock(&p->lock);
			return NULL;
		}
		struct request *r = p->queue[p->head];
		p->head = (p->head + 1) % VERIFY_QUEUE_MAX;
		p->len--;
		pthread_mutex_unlock(&p->lock);
		bool ok = check(p, r);
		deliver(p, r, ok);
		/* The password must not outlive its check in freed memory. */
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
}

struct verify_pool *verify_start(unsigned threads, unsigned workers, char *err, size_t err_len)
{
	struct verify_pool *p = calloc(1, sizeof(*p));
	if (!p)
		goto oom;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->ready, NULL);
	pthread_rwlock_init(&p->db_lock, NULL);
	p->queue = calloc(VERIFY_QUEUE_MAX, sizeof(*p->queue));
	p->res = calloc(workers, sizeof(*p->res));
	p->threads = calloc(threads, sizeof(*p->threads));
	if (!p->queue || !p->res || !p->threads)
		goto oom;
	p->workers = workers;
	for (unsigned i = 0; i < workers; i++) {
		pthread_mutex_init(&p->res[i].lock, NULL);
		p->res[i].event_fd = -1;
	}
	for (unsigned i = 0; i < workers; i++) {
		/* Blocking: the worker reads it through its ring, and io_uring
		 * would answer a non-blocking one with EAGAIN instead of waiting. */
		p->res[i].event_fd = eventfd(0, EFD_CLOEXEC);
		if (p->res[i].event_fd < 0) {
			snprintf(err, err_len, "password checks: eventfd: %s", strerror(errno));
			verify_stop(p);
			return NULL;
		}
	}
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&p->threads[i], NULL, pool_main, p) != 0) {
			snprintf(err, err_len, "password checks: cannot start a thread");
			verify_stop(p);
			return NULL;
		}
		p->thread_count++;
	}
	return p;
oom:
	snprintf(err, err_len, "password checks: out of memory");
	verify_stop(p);
	return NULL;
}

void verify_stop(struct verify_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->ready);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->thread_count; i++)
		pthread_join(p->threads[i], NULL);
	for (unsigned i = 0; p->queue && i < p->len; i++) {
		struct request *r = p->queue[(p->head + i) % VERIFY_QUEUE_MAX];
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
	for (unsigned i = 0; p->res && i < p->workers; i++) {
		free(p->res[i].items);
		if (p->res[i].event_fd >= 0)
			close(p->res[i].event_fd);
		pthread_mutex_destroy(&p->res[i].lock);
	}
	passwd_free(p->db);
	free(p->queue);
	free(p->res);
	free(p->threads);
	pthread_rwlock_destroy(&p->db_lock);
	pthread_cond_destroy(&p->ready);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void verify_set_db(struct verify_pool *p, struct passwd_db *db)
{
	pthread_rwlock_wrlock(&p->db_lock);
	struct passwd_db *old = p->db;
	p->db = db;
	pthread_rwlock_unlock(&p->db_lock);
	passwd_free(old);
}

bool verify_submit(struct verify_pool *p, uint16_t worker, uint32_t slot, uint32_t gen,
                   const uint8_t *user, size_t user_len, const uint8_t *password,
                   size_t password_len)
{
	struct request *r = malloc(sizeof(*r));
	if (!r)
		return false;
	r->worker = worker;
	r->slot = slot;
	r->gen = gen;
	if (user_len + password_len > VERIFY_CRED_MAX) {
		/* Longer than any stored credential can be: fails, but only
		 * after a hash's time like any other wrong password. */
		user_len = 0;
		password_len = 0;
	}
	r->user_len = (uint16_t)user_len;
	r->password_len = (uint16_t)password_len;
	if (user_len)
		memcpy(r->cred, user, user_len);
	if (password_len)
		memcpy(r->cred + user_len, password, password_len);
	pthread_mutex_lock(&p->lock);
	bool queued = p->len < VERIFY_QUEUE_MAX && !p->stopping;
	if (queued) {
		p->queue[(p->head + p->len) % VERIFY_QUEUE_MAX] = r;
		p->len++;
		pthread_cond_signal(&p->ready);
	}
	pthread_mutex_unlock(&p->lock);
	if (!queued) {
		explicit_bzero(r, sizeof(*r));
		free(r);
	}
	return queued;
}

int verify_event_fd(const struct verify_pool *p, uint16_t worker)
{
	return p->res[worker].event_fd;
}

unsigned verify_take(struct verify_pool *p, uint16_t worker, struct verify_result *out,
                     unsigned max)
{
	struct results *rs = &p->res[worker];
	pthread_mutex_lock(&rs->lock);
	unsigned n = rs->len < max ? rs->len : max;
	memcpy(out, rs->items, n * sizeof(*out));
	memmove(rs->items, rs->items + n, (rs->len - n) * sizeof(*out));
	rs->len -= n;
	pthread_mutex_unlock(&rs->lock);
	return n;
}
