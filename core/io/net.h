/*
 * net.h — opening a listening TCP socket from a configured address, for the
 * MQTT listeners (broker.c) and the ops listener (ops.c). Main thread, at
 * start.
 */
#ifndef STARLING_CORE_NET_H
#define STARLING_CORE_NET_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"

enum net_listen_flags {
	NET_REUSEPORT = 1, /* one socket per worker on the same port, the kernel spreads */
	NET_NODELAY = 2,   /* inherited by accepted sockets: no Nagle delay */
	NET_NONBLOCK = 4,
};

/* A bound, listening socket, or -1 with err saying "host:port: why". *port
 * is the port to bind (0: any free one) and receives the one bound. */
int net_listen(const struct config_addr *a, int flags, int backlog, uint16_t *port, char *err,
               size_t err_len);

#endif
