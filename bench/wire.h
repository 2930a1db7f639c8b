/*
 * wire.h — controller <-> agent framing over TCP: [u32 length][u8 type]
 * [body], length counting type and body, little-endian, at most
 * WIRE_FRAME_MAX bytes. Stats travel as the raw struct stats bytes behind a
 * version word, so both ends must be the same build (checked by size).
 */
#ifndef STARLING_BENCH_WIRE_H
#define STARLING_BENCH_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "stats.h"

#define WIRE_FRAME_MAX (1u << 20)

enum wire_type {
	WIRE_SCENARIO = 1, /* controller -> agent: "agent BASE SLICES RUNID\n" + scenario text */
	WIRE_GO = 2,       /* controller -> agent: start publishing */
	WIRE_STOP = 3,     /* controller -> agent: disconnect and finish */
	WIRE_STATS = 4,    /* agent -> controller: merged counters so far */
	WIRE_FINAL = 5,    /* agent -> controller: final merged counters */
	WIRE_ERROR = 6,    /* agent -> controller: text, the run could not start */
};

struct wire_conn {
	int fd;
	uint8_t *buf; /* received bytes */
	size_t len;
	size_t cap;
	size_t handed; /* bytes of the frame last returned, dropped on the next call */
};

/* "host:port" -> a listening or connected socket; -1 with errno-ish message. */
int wire_listen(const char *addr);
int wire_connect(const char *addr, int timeout_ms);
int wire_send(int fd, uint8_t type, const void *body, uint32_t len);
int wire_send_stats(int fd, uint8_t type, const struct stats *st);
/* Decode a stats body; -1 when it is not from this build. */
int wire_stats_decode(const uint8_t *body, uint32_t len, struct stats *out);
/*
 * Wait up to timeout_ms for a complete frame. 1: type, body and len describe
 * it (body valid until the next call); 0: none yet; -1: closed or broken.
 */
int wire_recv(struct wire_conn *c, int timeout_ms, uint8_t *type, const uint8_t **body,
              uint32_t *len);
void wire_conn_init(struct wire_conn *c, int fd);
void wire_conn_close(struct wire_conn *c);

#endif
