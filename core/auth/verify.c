/*
 * verify.c — the password-checking pool (see verify.h). Owns its threads,
 * the request queue, each worker's verdict list and the password database.
 * Workers call verify_submit and verify_take; the main thread calls
 * verify_start, verify_set_db and verify_stop. Nothing here is on the
 * publish path: it runs per CONNECT with credentials, so plain mutexes are
 * the right tool.
 */
#include "auth/verify.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "auth/passwd.h"

struct request {
	uint64_t queued_ms; /* clock_now_ms() at submission */
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

struct lane { /* the checks of the user names hashed to it, oldest first */
	struct request *ring[VERIFY_LANE_MAX];
	unsigned head;
	unsigned len;
};

struct verify_pool {
	pthread_mutex_t lock; /* the lanes and `stopping` */
	pthread_cond_t ready;
	struct lane *lanes;  /* [2 * VERIFY_LANES]: first the prompt ones, then `later` */
	unsigned len;        /* checks waiting in all lanes */
	unsigned len_prompt; /* of them, in the first VERIFY_LANES */
	unsigned next[2];    /* per kind, the lane whose turn it is */
	uint64_t seed;       /* of the lane hash: a client cannot aim at another's lane */
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

static void discard(struct request *r)
{
	if (!r)
		return; /* (never; said for the compiler's nonnull check) */
	/* The password must not outlive its check in freed memory. */
	explicit_bzero(r, sizeof(*r));
	free(r);
}

/* The next check: round-robin over the prompt lanes, or over the `later`
 * ones when no prompt check waits; p->len > 0, under p->lock. */
static struct request *take_next(struct verify_pool *p)
{
	unsigned kind = p->len_prompt > 0 ? 0 : 1;
	struct lane *lanes = p->lanes + kind * VERIFY_LANES;
	for (unsigned i = 0; i < VERIFY_LANES; i++) {
		unsigned n = (p->next[kind] + i) % VERIFY_LANES;
		struct lane *l = &lanes[n];
		if (l->len == 0)
			continue;
		struct request *r = l->ring[l->head];
		l->head = (l->head + 1) % VERIFY_LANE_MAX;
		l->len--;
		p->len--;
		p->len_prompt -= kind == 0;
		p->next[kind] = (n + 1) % VERIFY_LANES;
		return r;
	}
	return NULL; /* not reached: the counts say a lane of that kind waits */
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
		struct request *r = take_next(p);
		bool stale = r && clock_now_ms() - r->queued_ms > VERIFY_WAIT_MS;
		pthread_mutex_unlock(&p->lock);
		if (!r)
			continue;
		/* A check that waited this long is for a client that has
		 * probably given up: a hash for it would only lengthen the
		 * queue. Its connection is closed by the worker's sweep
		 * (VERIFY_ANSWER_MS). */
		if (!stale)
			deliver(p, r, check(p, r));
		else
			LOG_WARN_RL(1,
			            "password checks: dropped one that waited over %u ms in "
			            "the queue",
			            VERIFY_WAIT_MS);
		discard(r);
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
	p->lanes = calloc(2 * VERIFY_LANES, sizeof(*p->lanes));
	p->res = calloc(workers, sizeof(*p->res));
	p->threads = calloc(threads, sizeof(*p->threads));
	if (!p->lanes || !p->res || !p->threads)
		goto oom;
	if (getrandom(&p->seed, sizeof(p->seed), 0) != sizeof(p->seed)) {
		snprintf(err, err_len, "password checks: getrandom: %s", strerror(errno));
		verify_stop(p);
		return NULL;
	}
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
	for (unsigned i = 0; p->lanes && i < 2 * VERIFY_LANES; i++) {
		struct lane *l = &p->lanes[i];
		for (unsigned j = 0; j < l->len; j++)
			discard(l->ring[(l->head + j) % VERIFY_LANE_MAX]);
	}
	for (unsigned i = 0; p->res && i < p->workers; i++) {
		free(p->res[i].items);
		if (p->res[i].event_fd >= 0)
			close(p->res[i].event_fd);
		pthread_mutex_destroy(&p->res[i].lock);
	}
	passwd_free(p->db);
	free(p->lanes);
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

/* Where a user name's hash points: FNV-1a from a random seed, with a final
 * mix. */
static unsigned lane_hash(const struct verify_pool *p, const uint8_t *user, size_t len)
{
	uint64_t h = 14695981039346656037u ^ p->seed;
	for (size_t i = 0; i < len; i++)
		h = (h ^ user[i]) * 1099511628211u;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return (unsigned)(h % VERIFY_LANES);
}

/* The lane of a user name, of one kind (lanes: that kind's VERIFY_LANES),
 * under p->lock: the lane its waiting checks are in, else the first empty
 * one from where its hash points, else (every lane busy with other names)
 * the one it points to. Hashing alone put two names in one lane once in
 * VERIFY_LANES, and a client whose name shared the attacked name's lane
 * waited behind the whole attack (a flaky test showed it). All lanes are
 * looked at, not only up to the first empty one, so that a name never has
 * two lanes and two turns in a round. */
static unsigned lane_of(const struct verify_pool *p, const struct lane *lanes, const uint8_t *user,
                        size_t len)
{
	unsigned start = lane_hash(p, user, len), empty = VERIFY_LANES;
	for (unsigned i = 0; i < VERIFY_LANES; i++) {
		unsigned n = (start + i) % VERIFY_LANES;
		const struct lane *l = &lanes[n];
		if (l->len == 0) {
			if (empty == VERIFY_LANES)
				empty = n;
			continue;
		}
		const struct request *h = l->ring[l->head];
		if (h->user_len == len && memcmp(h->cred, user, len) == 0)
			return n;
	}
	return empty < VERIFY_LANES ? empty : start;
}

bool verify_submit(struct verify_pool *p, uint16_t worker, uint32_t slot, uint32_t gen,
                   const uint8_t *user, size_t user_len, const uint8_t *password,
                   size_t password_len, bool later)
{
	struct request *r = malloc(sizeof(*r));
	if (!r)
		return false;
	r->queued_ms = clock_now_ms();
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
	struct lane *lanes = p->lanes + (later ? VERIFY_LANES : 0);
	struct lane *l = &lanes[lane_of(p, lanes, r->cred, r->user_len)];
	bool queued = l->len < VERIFY_LANE_MAX && p->len < VERIFY_QUEUE_MAX && !p->stopping;
	if (queued) {
		l->ring[(l->head + l->len) % VERIFY_LANE_MAX] = r;
		l->len++;
		p->len++;
		p->len_prompt += !later;
		pthread_cond_signal(&p->ready);
	}
	pthread_mutex_unlock(&p->lock);
	if (!queued)
		discard(r);
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
