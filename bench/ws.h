/*
 * ws.h — MQTT over WebSocket for bench clients (RFC 6455, MQTT 5.0 §6):
 * the client's HTTP upgrade and its check, and binary frames both ways
 * through libwslay's frame API. Like tls.h it moves bytes between memory
 * buffers and never touches a socket; the caller (io.c) owns the stream.
 *
 * One struct ws_ctx per worker. A client owns a struct ws_conn only while
 * it is upgrading or while a received frame is incomplete: an idle client
 * owns nothing. Not thread-safe (one worker).
 */
#ifndef STARLING_BENCH_WS_H
#define STARLING_BENCH_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_REQUEST_MAX    1024u /* bytes of an upgrade request, path and host included */
#define WS_RESPONSE_MAX   8192u /* bytes of the 101 answer's head, at most */
#define WS_FRAME_HEAD_MAX 14u   /* a frame's head: 2 + 8 length + 4 mask */

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xa,
};

struct ws_ctx;
struct ws_conn;

/* Takes every byte of a frame being written; -1 when it cannot. */
typedef int (*ws_sink_fn)(void *arg, const uint8_t *data, size_t len);

/* What ws_read hands back, synchronously. */
struct ws_events {
	/* A piece of the binary stream (MQTT bytes); false stops reading
	 * (the connection is closing). */
	bool (*on_data)(void *arg, const uint8_t *data, size_t len);
	/* A complete ping: answer it (a pong with the same payload). */
	void (*on_ping)(void *arg, const uint8_t *data, size_t len);
};

enum ws_read_rc {
	WS_READ_OK = 0,     /* everything consumed, or on_data stopped it */
	WS_READ_CLOSE = 1,  /* the broker sent a close frame: *close_code set */
	WS_READ_PROTO = -1, /* a frame RFC 6455 or MQTT §6 forbids */
	WS_READ_NOMEM = -2,
};

/* path is the request target, e.g. "/mqtt". NULL when out of memory. */
struct ws_ctx *ws_ctx_new(const char *path);
void ws_ctx_free(struct ws_ctx *ctx);

/*
 * Start an upgrade: a new *wc holding the expected Sec-WebSocket-Accept,
 * and the request in out. host is the Host header value. Returns the
 * request's length, or -1 (nothing allocated).
 */
int ws_handshake_start(struct ws_ctx *ctx, struct ws_conn **wc, const char *host, char *out,
                       size_t cap);
/*
 * Bytes of the answer: 1 upgraded (*used bytes were the answer; the rest are
 * frames, and *wc is freed and NULL), 0 needs more (all kept), -1 refused or
 * malformed (a reason in why).
 */
int ws_handshake_input(struct ws_ctx *ctx, struct ws_conn **wc, const uint8_t *data, size_t len,
                       size_t *used, char *why, size_t why_len);

/* One masked frame (fin set) of opcode with data, given to sink. 0 or -1. */
int ws_write(struct ws_ctx *ctx, enum ws_opcode op, const uint8_t *data, size_t len,
             ws_sink_fn sink, void *arg);

/*
 * Frames received after the upgrade: data frames go to ev->on_data as they
 * arrive (a packet may span frames, a frame may hold several packets),
 * pings to ev->on_ping. *wc is the client's state: NULL when it is between
 * frames, else it holds the incomplete frame.
 */
enum ws_read_rc ws_read(struct ws_ctx *ctx, struct ws_conn **wc, const uint8_t *data, size_t len,
                        const struct ws_events *ev, void *arg, uint16_t *close_code);

/* Release a client's state (NULL is fine). */
void ws_conn_free(struct ws_ctx *ctx, struct ws_conn *wc);

/* base64(SHA-1(key + RFC 6455 GUID)) into out[29]; 0 or -1. */
int ws_accept_of(const char *key, char out[29]);

#endif
