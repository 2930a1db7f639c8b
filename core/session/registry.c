/*
 * registry.c — client id map (see registry.h). Any worker thread may call;
 * a mutex serialises them. Chained hash table that doubles at load 1.
 */
#include "session/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"

struct reg_entry {
	struct reg_entry *next;
	struct sess_id id;
	uint64_t hash;
	size_t len;
	char key[];
};

struct registry {
	pthread_mutex_t lock;
	struct reg_entry **buckets;
	size_t bucket_count; /* power of two */
	size_t count;
};

static uint64_t hash_key(const char *s, size_t len)
{
	return hash_bytes(s, len);
}

struct registry *registry_new(void)
{
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->bucket_count = 1024;
	r->buckets = calloc(r->bucket_count, sizeof(*r->buckets));
	if (!r->buckets) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void registry_free(struct registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->bucket_count; i++) {
		struct reg_entry *e = r->buckets[i];
		while (e) {
			struct reg_entry *next = e->next;
			free(e);
			e = next;
		}
	}
	free(r->buckets);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct reg_entry **find(struct registry *r, const char *key, size_t len, uint64_t h)
{
	struct reg_entry **p = &r->buckets[h & (r->bucket_count - 1)];
	while (*p && !((*p)->hash == h && (*p)->len == len && memcmp((*p)->key, key, len) == 0))
		p = &(*p)->next;
	return p;
}

static void grow(struct registry *r)
{
	size_t n = r->bucket_count * 2;
	struct reg_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* stay at a higher load; still correct */
	for (size_t i = 0; i < r->bucket_count; i++) {
		struct reg_entry *e = r->buckets[i];
		while (e) {
			struct reg_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->bucket_count = n;
}

/* registry_claim under the lock; take: a holder is replaced (else left). */
static int claim_locked(struct registry *r, const char *client_id, size_t len, struct sess_id id,
                        struct sess_id *prev, bool take)
{
	uint64_t h = hash_key(client_id, len);
	int ret = 0;
	struct reg_entry **p = find(r, client_id, len, h);
	if (*p) {
		*prev = (*p)->id;
		if (take)
			(*p)->id = id;
		ret = 1;
	} else {
		struct reg_entry *e = malloc(sizeof(*e) + len);
		if (!e) {
			ret = -1;
		} else {
			e->next = NULL;
			e->id = id;
			e->hash = h;
			e->len = len;
			memcpy(e->key, client_id, len);
			*p = e;
			if (++r->count > r->bucket_count)
				grow(r);
		}
	}
	return ret;
}

int registry_claim(struct registry *r, const char *client_id, size_t len, struct sess_id id,
                   struct sess_id *prev)
{
	pthread_mutex_lock(&r->lock);
	int ret = claim_locked(r, client_id, len, id, prev, true);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int registry_claim_free(struct registry *r, const char *client_id, size_t len, struct sess_id id,
                        struct sess_id *prev)
{
	pthread_mutex_lock(&r->lock);
	int ret = claim_locked(r, client_id, len, id, prev, false);
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void registry_release(struct registry *r, const char *client_id, size_t len, struct sess_id id)
{
	uint64_t h = hash_key(client_id, len);
	pthread_mutex_lock(&r->lock);
	struct reg_entry **p = find(r, client_id, len, h);
	if (*p && sess_id_eq((*p)->id, id)) {
		struct reg_entry *e = *p;
		*p = e->next;
		free(e);
		r->count--;
	}
	pthread_mutex_unlock(&r->lock);
}

size_t registry_count(struct registry *r)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->count;
	pthread_mutex_unlock(&r->lock);
	return n;
}
