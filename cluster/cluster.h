/*
 * cluster.h — this node's membership of the cluster: a thread of its own that
 * runs the membership protocol (swim.h) over a UDP socket on cluster_listen,
 * finds peers through cluster_seeds and cluster_dns (resolved again
 * periodically: a Kubernetes headless Service), logs every change of a
 * peer's state by name, and publishes what it knows in the core's
 * struct cluster_view (/metrics, /readyz).
 *
 * Why a thread and not a worker's ring: failure detection must answer
 * probes on time whatever the workers are doing (a worker busy with a burst
 * would look dead to its peers), and resolving names blocks. The thread
 * touches nothing of the workers; what the cluster tells them will travel as
 * mailbox messages, like everything between threads here.
 *
 * The main thread calls these.
 */
#ifndef STARLING_CLUSTER_CLUSTER_H
#define STARLING_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct cluster_view;
struct cluster_node;
struct worker_ext;

/* Who this node is to its peers: read from the configuration once, shared
 * by membership and the link. */
struct cluster_identity {
	char name[65];    /* node_name, else the host name */
	char address[65]; /* "ip:port" peers reach us at (cluster_advertise, else cluster_listen) */
	char cluster[65]; /* cluster_name */
	uint8_t secret[64]; /* cluster_secret_file's secret */
	size_t secret_len;  /* 0: none (a trusted network) */
	uint64_t epoch;     /* boot epoch: wall clock in µs at start */
};

/* 1 and id filled when a cluster is configured, 0 when not (a single
 * node), -1 with err in one line naming the key. */
int cluster_identity_load(const struct config *cfg, struct cluster_identity *id, char *err,
                          size_t err_len);

/* Check what start would need (names, the secret file, the advertised
 * address) without starting anything: 0, or -1 with err in one line naming
 * the key. With no cluster_listen there is nothing to check. */
int cluster_node_check(const struct config *cfg, char *err, size_t err_len);

/* Bind cluster_listen (UDP), start the thread and join. NULL with err in one
 * line when the cluster is configured but cannot start; NULL with err[0] ==
 * '\0' when no cluster is configured (a single node). view is updated from
 * now on and must outlive the node. */
struct cluster_node *cluster_node_start(const struct config *cfg, struct cluster_view *view,
                                        const struct cluster_identity *id, char *err,
                                        size_t err_len);

/*
 * The link (link.c): the part of the cluster that runs on the workers'
 * rings, as their extension (loop/worker.h struct worker_ext): each worker's
 * connections to every peer, route replication, forwarding. NULL when out
 * of memory. The view must outlive it; it reads the peers membership
 * publishes there.
 */
struct cluster_link;
struct cluster_link *cluster_link_new(const struct config *cfg, const struct cluster_identity *id,
                                      struct cluster_view *view);
/* The extension to hand broker_start(). */
const struct worker_ext *cluster_link_ext(struct cluster_link *l);
/* After broker_stop (the workers are gone). NULL is fine. */
void cluster_link_free(struct cluster_link *l);

/* "ip:port" or "[ipv6]:port" (membership's addresses, numeric) into a
 * socket address; false when it is not one. Any thread. */
bool cluster_parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* SIGTERM: tell every peer we leave (they drop us within a gossip round,
 * never as dead), give the news a few gossip rounds to spread (bounded,
 * well under a second), and stop the thread. NULL is fine. */
void cluster_node_stop(struct cluster_node *n);

#endif
