/*
 * bridge_dns.h — where the bridges dial (docs/bridges.md): the addresses of
 * bridge.NAME.address, resolved at start and again on a thread of their
 * own whenever a bridge's worker asks (a dial failed, a link was lost), and
 * each bridge's TLS client context.
 *
 * A host name may not resolve yet when the node starts (an edge gateway
 * that boots before its uplink) and its addresses may change while the node
 * runs (a cloud broker behind a load balancer, a failover record): the
 * bridge follows the name instead of what it was at start. getaddrinfo
 * blocks for as long as the name servers take, so a worker never calls it:
 * it copies one address from the list under a mutex the resolver holds only
 * to swap a new list in. An entry that is an IP address is taken as is.
 */
#ifndef STARLING_CORE_BRIDGE_DNS_H
#define STARLING_CORE_BRIDGE_DNS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/config.h"

struct ssl_ctx_st;

#define BRIDGE_HOST_MAX       256  /* a host name of `address`, with its NUL */
#define BRIDGE_DNS_MIN_GAP_MS 1000 /* a bridge's names resolved at most this often */

/* One bridge's remote addresses (every entry of `address`, in order, with
 * all the addresses each name has) and its TLS client context. */
struct bridge_addrs {
	unsigned count; /* 0: none resolved yet */
	struct sockaddr_storage addr[CONFIG_PEERS_COUNT_MAX];
	socklen_t len[CONFIG_PEERS_COUNT_MAX];
	char host[CONFIG_PEERS_COUNT_MAX][BRIDGE_HOST_MAX]; /* as configured: SNI, checks */
	struct ssl_ctx_st *ssl_ctx;                         /* NULL: plain TCP; fixed at start */
	bool names;       /* an entry is a host name: resolved again when asked */
	bool wanted;      /* a worker asked for a new resolution */
	uint64_t last_ms; /* the resolver's: when it last resolved them */
};

struct bridge_dns {
	const struct config *cfg;
	pthread_mutex_t lock; /* the lists, wanted, stop */
	pthread_cond_t cond;  /* a worker asked, or stop */
	bool stop;
	bool running; /* the thread exists (some bridge has a host name) */
	pthread_t thread;
	struct bridge_addrs *addrs; /* [cfg->bridge_count] */
};

/* Main thread, before the workers start: TLS contexts (a bad file stops
 * the start: -1 with err naming the bridge and key), the first resolution
 * (a name that does not resolve is logged and tried again later) and the
 * resolver thread if a name needs one. NULL with err on failure. */
struct bridge_dns *bridge_dns_start(const struct config *cfg, char *err, size_t err_len);
/* Main thread, after the workers stopped. */
void bridge_dns_stop(struct bridge_dns *d);

/* The bridge's worker: a copy of address k (mod the count) of bridge i,
 * its configured host and the TLS context; false when none is known yet. */
bool bridge_dns_pick(struct bridge_dns *d, unsigned i, unsigned k, struct sockaddr_storage *addr,
                     socklen_t *len, char *host, struct ssl_ctx_st **ssl_ctx);
/* The bridge's worker: resolve bridge i's names again (a dial failed or the
 * link was lost); at most once per BRIDGE_DNS_MIN_GAP_MS, off the worker. */
void bridge_dns_refresh(struct bridge_dns *d, unsigned i);

#endif
