/*
 * net.c — listening sockets (see net.h). Resolves numeric addresses and
 * "localhost" only through getaddrinfo at start; nothing here runs on a
 * worker.
 */
#include "io/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int net_listen(const struct config_addr *a, int flags, int backlog, uint16_t *port, char *err,
               size_t err_len)
{
	const char *shown = a->host[0] ? a->host : "*";
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	char service[8];
	snprintf(service, sizeof(service), "%u", *port);
	struct addrinfo *res;
	int gai = getaddrinfo(a->host[0] ? a->host : NULL, service, &hints, &res);
	if (gai != 0) {
		snprintf(err, err_len, "%s:%u: %s", shown, *port, gai_strerror(gai));
		return -1;
	}
	int type = SOCK_STREAM | SOCK_CLOEXEC | (flags & NET_NONBLOCK ? SOCK_NONBLOCK : 0);
	int fd = socket(res->ai_family, type, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    ((flags & NET_REUSEPORT) &&
	     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    ((flags & NET_NODELAY) &&
	     setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, backlog) < 0) {
		snprintf(err, err_len, "%s:%u: %s", shown, *port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}
