/*
 * ws.h — MQTT over WebSocket [MQTT 5.0 §6, RFC 6455]: the opening handshake
 * (read with http.c) and the framing (Debian's libwslay), as a byte
 * transform between a connection's socket and the MQTT codec. Pure: no
 * sockets; bytes come in through ws_input() and leave through the caller's
 * callbacks. One struct ws per connection; only the worker owning the
 * connection calls these.
 *
 * What it enforces: a GET on the listener's path with `Upgrade: websocket`,
 * `Sec-WebSocket-Version: 13`, a Sec-WebSocket-Key, and `mqtt` (or the
 * older `mqttv3.1`) among the offered subprotocols, which it selects
 * [MQTT-6.0.0-3, -4]; client frames must be masked [RFC 6455 5.1]; MQTT
 * travels in binary frames only, any text frame closes the connection
 * [MQTT-6.0.0-1]; an MQTT packet may span frames and a frame may hold
 * several packets [MQTT-6.0.0-2, -3]: the payload is handed on as a byte
 * stream. Pings are answered; a close is answered and ends the connection;
 * a frame over max_frame_bytes is refused with close code 1009.
 */
#ifndef STARLING_CORE_WS_H
#define STARLING_CORE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ws;

/* MQTT bytes received (payload of binary frames, in order). */
typedef void (*ws_deliver_fn)(void *ctx, const uint8_t *data, size_t len);
/* Bytes to send on the socket (the handshake answer, frames). */
typedef void (*ws_output_fn)(void *ctx, const uint8_t *data, size_t len);

enum ws_result {
	WS_OK = 0,    /* go on */
	WS_CLOSE = 1, /* the connection must close once the output is sent:
	               * the handshake was refused (an HTTP error was output),
	               * a protocol error or the peer's close (a close frame
	               * was output) */
};

/* path: the URL path clients must ask for ("/mqtt"). max_frame_bytes:
 * largest frame payload accepted. NULL when out of memory. */
struct ws *ws_new(const char *path, uint64_t max_frame_bytes);
void ws_free(struct ws *ws);

/* Has the handshake completed (so MQTT may be sent)? */
bool ws_open(const struct ws *ws);

/* Received bytes in; MQTT bytes out through deliver, bytes to send through
 * out. A short reason for a WS_CLOSE is in ws_why(). */
enum ws_result ws_input(struct ws *ws, const uint8_t *data, size_t len, ws_deliver_fn deliver,
                        ws_output_fn out, void *ctx);

/* MQTT bytes to send, as one binary frame, through out. */
enum ws_result ws_send(struct ws *ws, const uint8_t *data, size_t len, ws_output_fn out, void *ctx);

/* Start the close handshake (code 1000 normal, 1001 going away, ...). */
void ws_close(struct ws *ws, uint16_t code, ws_output_fn out, void *ctx);

/* Did the peer start the close (a close frame from the client)? */
bool ws_peer_closed(const struct ws *ws);

/* Why the last WS_CLOSE, for the log line ("no mqtt subprotocol offered"). */
const char *ws_why(const struct ws *ws);

/* The Sec-WebSocket-Accept value for a key [RFC 6455 4.2.2] into out
 * (at least 29 bytes). Exposed for tests. */
void ws_accept_key(const char *key, char out[29]);

#endif
