/*
 * cluster_view.c — the labels of the cluster's drop reasons (cluster_view.h).
 */
#include "ops/cluster_view.h"

const char *const cluster_drop_names[CLUSTER_DROP_REASONS] = {
    "accepted",    "malformed", "auth",         "cluster",     "version",
    "self",        "stale_epoch", "out_full",   "members_full", "relays_full",
};
