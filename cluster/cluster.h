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

#include <stddef.h>

struct config;
struct cluster_view;
struct cluster_node;

/* Check what start would need (names, the secret file, the advertised
 * address) without starting anything: 0, or -1 with err in one line naming
 * the key. With no cluster_listen there is nothing to check. */
int cluster_node_check(const struct config *cfg, char *err, size_t err_len);

/* Bind cluster_listen (UDP), start the thread and join. NULL with err in one
 * line when the cluster is configured but cannot start; NULL with err[0] ==
 * '\0' when no cluster is configured (a single node). view is updated from
 * now on and must outlive the node. */
struct cluster_node *cluster_node_start(const struct config *cfg, struct cluster_view *view,
                                        char *err, size_t err_len);

/* SIGTERM: tell every peer we leave (they drop us within a gossip round,
 * never as dead), give the news a few gossip rounds to spread (bounded,
 * well under a second), and stop the thread. NULL is fine. */
void cluster_node_stop(struct cluster_node *n);

#endif
