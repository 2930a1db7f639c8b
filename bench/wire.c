/*
 * wire.c — controller/agent framing (wire.h). Blocking writes (the frames
 * are small and the peer is always reading), polled reads with a deadline.
 */
#include "wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STATS_VERSION (0x53540000u | (uint32_t)(sizeof(struct stats) & 0xffff))

static int resolve(const char *addr, struct addrinfo **res, bool passive)
{
	char host[256], port[16];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	snprintf(port, sizeof(port), "%s", colon + 1);
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE : 0;
	return getaddrinfo(host[0] ? host : NULL, port, &hints, res) == 0 ? 0 : -1;
}

int wire_listen(const char *addr)
{
	struct addrinfo *res = NULL;
	if (resolve(addr, &res, true) < 0)
		return -1;
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 16) < 0) {
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int wire_connect(const char *addr, int timeout_ms)
{
	struct addrinfo *res = NULL;
	if (resolve(addr, &res, false) < 0)
		return -1;
	int fd = -1;
	/* the agent may still be starting: retry until the deadline */
	for (int waited = 0; waited <= timeout_ms; waited += 100) {
		fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		usleep(100 * 1000);
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int wire_send(int fd, uint8_t type, const void *body, uint32_t len)
{
	if (len + 1 > WIRE_FRAME_MAX)
		return -1;
	uint8_t head[5];
	uint32_t n = len + 1;
	for (int i = 0; i < 4; i++)
		head[i] = (uint8_t)(n >> (8 * i));
	head[4] = type;
	if (write_all(fd, head, sizeof(head)) < 0)
		return -1;
	return len ? write_all(fd, body, len) : 0;
}

int wire_send_stats(int fd, uint8_t type, const struct stats *st)
{
	static uint8_t body[sizeof(uint32_t) + sizeof(struct stats)];
	uint32_t v = STATS_VERSION;
	memcpy(body, &v, sizeof(v));
	memcpy(body + sizeof(v), st, sizeof(*st));
	return wire_send(fd, type, body, sizeof(body));
}

int wire_stats_decode(const uint8_t *body, uint32_t len, struct stats *out)
{
	uint32_t v;
	if (len != sizeof(v) + sizeof(*out))
		return -1;
	memcpy(&v, body, sizeof(v));
	if (v != STATS_VERSION)
		return -1;
	memcpy(out, body + sizeof(v), sizeof(*out));
	return 0;
}

void wire_conn_init(struct wire_conn *c, int fd)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
}

void wire_conn_close(struct wire_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static uint32_t frame_len(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int wire_recv(struct wire_conn *c, int timeout_ms, uint8_t *type, const uint8_t **body,
              uint32_t *len)
{
	/* drop the frame handed out by the previous call */
	if (c->handed) {
		memmove(c->buf, c->buf + c->handed, c->len - c->handed);
		c->len -= c->handed;
		c->handed = 0;
	}
	for (;;) {
		if (c->len >= 4) {
			uint32_t n = frame_len(c->buf);
			if (n == 0 || n > WIRE_FRAME_MAX)
				return -1;
			if (c->len >= 4 + n) {
				*type = c->buf[4];
				*body = c->buf + 5;
				*len = n - 1;
				c->handed = 4 + (size_t)n;
				return 1;
			}
		}
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, timeout_ms);
		if (pr < 0 && errno == EINTR)
			return 0;
		if (pr <= 0)
			return pr < 0 ? -1 : 0;
		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 256 * 1024;
			uint8_t *nb = realloc(c->buf, cap);
			if (!nb)
				return -1;
			c->buf = nb;
			c->cap = cap;
		}
		ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		/* a frame can arrive in pieces: keep waiting up to timeout_ms each */
		c->len += (size_t)r;
	}
}
