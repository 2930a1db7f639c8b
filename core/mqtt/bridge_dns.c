/*
 * bridge_dns.c — the bridges' addresses (bridge_dns.h): resolved at start,
 * then on the resolver thread when a bridge's worker asks.
 */
#include "mqtt/bridge_dns.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "transport/tls.h"

/* Every entry of c->address into out (count 0 when none resolves); names
 * that do not resolve are logged (rate-limited: a worker may ask every
 * second) and skipped. Sets out->names when an entry is not an IP address. */
static void resolve(const struct config_bridge *c, struct bridge_addrs *out)
{
	out->count = 0;
	char list[CONFIG_PEERS_MAX];
	snprintf(list, sizeof(list), "%s", c->address);
	char *save = NULL;
	for (char *one = strtok_r(list, ",", &save); one; one = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(one, ':');
		if (!colon)
			continue; /* the config's setter allows no such entry */
		*colon = '\0';
		char *host = one;
		if (host[0] == '[') { /* [v6] */
			host++;
			host[strlen(host) - 1] = '\0';
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(host, colon + 1, &hints, &res);
		if (rc == EAI_NONAME) { /* not an IP address: a name */
			out->names = true;
			hints.ai_flags = 0;
			rc = getaddrinfo(host, colon + 1, &hints, &res);
		}
		if (rc != 0) {
			LOG_WARN_RL(
			    1, "bridge %s: cannot resolve %s: %s (tried again at the next attempt)",
			    c->name, host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
			continue;
		}
		for (struct addrinfo *r = res; r && out->count < CONFIG_PEERS_COUNT_MAX;
		     r = r->ai_next) {
			memcpy(&out->addr[out->count], r->ai_addr, r->ai_addrlen);
			snprintf(out->host[out->count], sizeof(out->host[0]), "%s", host);
			out->len[out->count++] = r->ai_addrlen;
		}
		freeaddrinfo(res);
	}
}

static bool same_list(const struct bridge_addrs *a, const struct bridge_addrs *b)
{
	if (a->count != b->count)
		return false;
	for (unsigned k = 0; k < a->count; k++)
		if (a->len[k] != b->len[k] || memcmp(&a->addr[k], &b->addr[k], a->len[k]) != 0)
			return false;
	return true;
}

static void *resolver_main(void *arg)
{
	struct bridge_dns *d = arg;
	pthread_setname_np(pthread_self(), "starling-dns");
	/* The work is one bridge's names at a time, resolved outside the lock
	 * (getaddrinfo may take seconds); the lock is held to read what is
	 * wanted and to swap a new list in. */
	static _Thread_local struct bridge_addrs fresh;
	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		uint64_t now = clock_now_ms();
		int due = -1;
		uint64_t soonest = 0;
		for (unsigned i = 0; i < d->cfg->bridge_count; i++) {
			const struct bridge_addrs *a = &d->addrs[i];
			if (!a->wanted)
				continue;
			uint64_t at = a->last_ms + BRIDGE_DNS_MIN_GAP_MS;
			if (at <= now) {
				due = (int)i;
				break;
			}
			if (!soonest || at < soonest)
				soonest = at;
		}
		if (due < 0) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			uint64_t wait_ms = soonest ? soonest - now : 60000;
			ts.tv_sec += (time_t)(wait_ms / 1000);
			ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&d->cond, &d->lock, &ts);
			continue;
		}
		struct bridge_addrs *a = &d->addrs[due];
		a->wanted = false;
		a->last_ms = now;
		pthread_mutex_unlock(&d->lock);
		const struct config_bridge *c = &d->cfg->bridges[due];
		memset(&fresh, 0, sizeof(fresh));
		resolve(c, &fresh);
		pthread_mutex_lock(&d->lock);
		/* Nothing resolved (the name servers are away): the last list is
		 * still the best guess. */
		if (fresh.count > 0 && !same_list(a, &fresh)) {
			LOG_INFO("bridge %s: %s now resolves to %u address%s (was %u)", c->name,
			         c->address, fresh.count, fresh.count == 1 ? "" : "es", a->count);
			a->count = fresh.count;
			memcpy(a->addr, fresh.addr, sizeof(a->addr));
			memcpy(a->len, fresh.len, sizeof(a->len));
			memcpy(a->host, fresh.host, sizeof(a->host));
		}
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

struct bridge_dns *bridge_dns_start(const struct config *cfg, char *err, size_t err_len)
{
	struct bridge_dns *d = calloc(1, sizeof(*d));
	if (d)
		d->addrs = calloc(cfg->bridge_count ? cfg->bridge_count : 1, sizeof(*d->addrs));
	if (!d || !d->addrs) {
		free(d);
		snprintf(err, err_len, "bridges: out of memory");
		return NULL;
	}
	d->cfg = cfg;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	bool names = false;
	for (unsigned i = 0; i < cfg->bridge_count; i++) {
		const struct config_bridge *c = &cfg->bridges[i];
		struct bridge_addrs *a = &d->addrs[i];
		if (c->tls) {
			/* Files read once, here: a bad one stops the start naming it. */
			struct tls_client_opts o = {.cafile = c->cafile,
			                            .certfile = c->certfile,
			                            .keyfile = c->keyfile,
			                            .verify = c->verify};
			char why[256];
			a->ssl_ctx = tls_client_ctx_build(&o, why, sizeof(why));
			if (!a->ssl_ctx) {
				snprintf(err, err_len, "bridge.%s.%s", c->name, why);
				bridge_dns_stop(d);
				return NULL;
			}
		}
		resolve(c, a);
		a->last_ms = clock_now_ms();
		names |= a->names;
		if (a->count == 0)
			LOG_WARN("bridge %s: no address of \"%s\" resolves yet: the bridge waits, "
			         "resolving again before each attempt",
			         c->name, c->address);
	}
	if (names) {
		if (pthread_create(&d->thread, NULL, resolver_main, d) != 0) {
			snprintf(err, err_len, "bridges: cannot start the resolver thread");
			bridge_dns_stop(d);
			return NULL;
		}
		d->running = true;
	}
	return d;
}

void bridge_dns_stop(struct bridge_dns *d)
{
	if (!d)
		return;
	if (d->running) {
		pthread_mutex_lock(&d->lock);
		d->stop = true;
		pthread_cond_signal(&d->cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->thread, NULL);
	}
	for (unsigned i = 0; i < d->cfg->bridge_count; i++)
		tls_ctx_discard(d->addrs[i].ssl_ctx);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
	free(d->addrs);
	free(d);
}

bool bridge_dns_pick(struct bridge_dns *d, unsigned i, unsigned k, struct sockaddr_storage *addr,
                     socklen_t *len, char *host, struct ssl_ctx_st **ssl_ctx)
{
	const struct bridge_addrs *a = &d->addrs[i];
	*ssl_ctx = a->ssl_ctx;
	pthread_mutex_lock(&d->lock);
	bool any = a->count > 0;
	if (any) {
		k %= a->count;
		memcpy(addr, &a->addr[k], a->len[k]);
		*len = a->len[k];
		memcpy(host, a->host[k], BRIDGE_HOST_MAX);
	}
	pthread_mutex_unlock(&d->lock);
	return any;
}

void bridge_dns_refresh(struct bridge_dns *d, unsigned i)
{
	if (!d->running || !d->addrs[i].names)
		return; /* IP addresses only: nothing to look up */
	pthread_mutex_lock(&d->lock);
	d->addrs[i].wanted = true;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}
