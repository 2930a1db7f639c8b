/*
 * ws.c — the WebSocket transform of one connection (see ws.h). The opening
 * handshake is read with http.c over libhttp-parser; frames are read and
 * written by libwslay's event API with memory callbacks: its recv callback
 * reads from the bytes ws_input() was given, its send callback hands bytes
 * to the caller. Payload chunks of binary frames go to the caller as they
 * arrive (wslay's message buffering is off), so a large MQTT packet is
 * never held twice.
 *
 * Owner: the worker owning the connection. Limits: the handshake head is at
 * most HTTP_HEAD_MAX bytes; a frame's payload at most max_frame_bytes.
 */
#include "transport/ws.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "transport/http.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */

struct ws {
	wslay_event_context_ptr ev; /* NULL until the handshake is done */
	uint64_t max_frame_bytes;
	char path[HTTP_PATH_MAX];
	uint8_t *head; /* handshake bytes so far */
	uint32_t head_len;
	const char *why;  /* reason of the last WS_CLOSE */
	bool closing;     /* a close frame was sent or received */
	bool refused;     /* the handshake was answered with an HTTP error */
	bool peer_closed; /* the client sent a close frame */
	bool msg_binary;  /* the message being received is binary */
	bool frame_data;  /* the frame being received carries MQTT bytes */

	/* Valid during one ws_input / ws_send call. */
	const uint8_t *in;
	size_t in_len;
	size_t in_off;
	ws_deliver_fn deliver;
	ws_output_fn out;
	void *ctx;
};

void ws_accept_key(const char *key, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	char buf[64 + sizeof(WS_GUID)];
	int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
	SHA1((const unsigned char *)buf, (size_t)n, md);
	EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH); /* 28 + NUL */
}

static ssize_t recv_cb(wslay_event_context_ptr ev, uint8_t *buf, size_t len, int flags, void *user)
{
	(void)flags;
	struct ws *ws = user;
	size_t left = ws->in_len - ws->in_off;
	if (left == 0) {
		wslay_event_set_error(ev, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	size_t n = left < len ? left : len;
	memcpy(buf, ws->in + ws->in_off, n);
	ws->in_off += n;
	return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ev, const uint8_t *data, size_t len, int flags,
                       void *user)
{
	(void)ev;
	(void)flags;
	struct ws *ws = user;
	ws->out(ws->ctx, data, len); /* the caller's outbox takes it all */
	return (ssize_t)len;
}

static void frame_start(wslay_event_context_ptr ev,
                        const struct wslay_event_on_frame_recv_start_arg *a, void *user)
{
	struct ws *ws = user;
	ws->frame_data = false;
	if (wslay_is_ctrl_frame(a->opcode))
		return; /* ping, pong, close: wslay answers them */
	if (a->opcode != WSLAY_CONTINUATION_FRAME)
		ws->msg_binary = a->opcode == WSLAY_BINARY_FRAME;
	if (!ws->msg_binary) {
		/* [MQTT-6.0.0-1]: MQTT only in binary frames. */
		ws->why = "a text frame (MQTT travels in binary frames)";
		wslay_event_queue_close(ev, WSLAY_CODE_UNSUPPORTED_DATA, NULL, 0);
		wslay_event_shutdown_read(ev);
		ws->closing = true;
		return;
	}
	ws->frame_data = true;
}

static void frame_chunk(wslay_event_context_ptr ev,
                        const struct wslay_event_on_frame_recv_chunk_arg *a, void *user)
{
	(void)ev;
	struct ws *ws = user;
	if (ws->frame_data && a->data_length)
		ws->deliver(ws->ctx, a->data, a->data_length);
}

static void msg_recv(wslay_event_context_ptr ev, const struct wslay_event_on_msg_recv_arg *a,
                     void *user)
{
	(void)ev;
	struct ws *ws = user;
	if (a->opcode == WSLAY_CONNECTION_CLOSE) {
		ws->closing = true; /* wslay queued the answering close */
		ws->peer_closed = true;
		if (!ws->why)
			ws->why = "the client closed the WebSocket";
	}
}

struct ws *ws_new(const char *path, uint64_t max_frame_bytes)
{
	struct ws *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	snprintf(ws->path, sizeof(ws->path), "%s", path);
	ws->max_frame_bytes = max_frame_bytes;
	return ws;
}

void ws_free(struct ws *ws)
{
	if (!ws)
		return;
	if (ws->ev)
		wslay_event_context_free(ws->ev);
	free(ws->head);
	free(ws);
}

bool ws_open(const struct ws *ws)
{
	return ws->ev != NULL;
}

bool ws_peer_closed(const struct ws *ws)
{
	return ws->peer_closed;
}

const char *ws_why(const struct ws *ws)
{
	return ws->why ? ws->why : "?";
}

/* An HTTP refusal of the upgrade, then close. */
static enum ws_result refuse(struct ws *ws, int code, const char *why)
{
	char head[256];
	char body[160];
	int bl = snprintf(body, sizeof(body), "%s\n", why);
	size_t hl =
	    http_format_head(head, sizeof(head), code, "text/plain; charset=utf-8", (size_t)bl);
	ws->out(ws->ctx, (const uint8_t *)head, hl);
	ws->out(ws->ctx, (const uint8_t *)body, (size_t)bl);
	ws->why = why;
	ws->refused = true;
	return WS_CLOSE;
}

/* Is token one of the comma-separated list's items (Upgrade is a list)? */
static bool has_token(const char *list, const char *token)
{
	char copy[64];
	snprintf(copy, sizeof(copy), "%s", list);
	char *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save))
		if (!strcmp(t, token))
			return true;
	return false;
}

/* Which offered subprotocol we speak: "mqtt", else the 3.1 era's name. */
static const char *pick_protocol(const char *offered)
{
	const char *best = NULL;
	char list[sizeof(((struct http_request *)0)->ws_protocols)];
	snprintf(list, sizeof(list), "%s", offered);
	char *save = NULL;
	for (char *t = strtok_r(list, ", \t", &save); t; t = strtok_r(NULL, ", \t", &save)) {
		if (!strcmp(t, "mqtt"))
			return "mqtt";
		if (!strcmp(t, "mqttv3.1"))
			best = "mqttv3.1";
	}
	return best;
}

static enum ws_result handshake(struct ws *ws, const struct http_request *rq)
{
	if (rq->verb != HTTP_VERB_GET)
		return refuse(ws, 405, "a WebSocket upgrade is a GET");
	if (strcmp(rq->path, ws->path) != 0)
		return refuse(ws, 404, "not the MQTT WebSocket path");
	if (rq->version_minor < 1) /* [RFC 6455 4.1] */
		return refuse(ws, 400, "a WebSocket upgrade needs HTTP/1.1");
	if (!rq->upgrade || !has_token(rq->upgrade_proto, "websocket"))
		return refuse(ws, 400, "not a WebSocket upgrade request");
	if (rq->ws_version != 13)
		return refuse(ws, 400, "Sec-WebSocket-Version must be 13");
	if (strlen(rq->ws_key) != 24) /* base64 of 16 bytes [RFC 6455 4.1] */
		return refuse(ws, 400, "bad Sec-WebSocket-Key");
	const char *proto = pick_protocol(rq->ws_protocols);
	if (!proto)
		return refuse(ws, 400, "no mqtt subprotocol offered");

	struct wslay_event_callbacks cb = {.recv_callback = recv_cb,
	                                   .send_callback = send_cb,
	                                   .on_frame_recv_start_callback = frame_start,
	                                   .on_frame_recv_chunk_callback = frame_chunk,
	                                   .on_msg_recv_callback = msg_recv};
	if (wslay_event_context_server_init(&ws->ev, &cb, ws) != 0) {
		ws->ev = NULL;
		return refuse(ws, 500, "out of memory");
	}
	wslay_event_config_set_no_buffering(ws->ev, 1);
	wslay_event_config_set_max_recv_msg_length(ws->ev, ws->max_frame_bytes);

	char accept[29];
	ws_accept_key(rq->ws_key, accept);
	char resp[256];
	int n = snprintf(resp, sizeof(resp),
	                 "HTTP/1.1 101 Switching Protocols\r\n"
	                 "Upgrade: websocket\r\n"
	                 "Connection: Upgrade\r\n"
	                 "Sec-WebSocket-Accept: %s\r\n"
	                 "Sec-WebSocket-Protocol: %s\r\n\r\n",
	                 accept, proto);
	ws->out(ws->ctx, (const uint8_t *)resp, (size_t)n);
	return WS_OK;
}

/* Run wslay over the bytes in ws->in, then send what it queued (pongs,
 * closes). wslay stops reading after a frame it refuses (unmasked, over
 * max_frame_bytes, bad opcode or length) and after the peer's close, and
 * queues the close frame that says why. */
static enum ws_result pump(struct ws *ws)
{
	if (ws->in_off < ws->in_len && wslay_event_recv(ws->ev) != 0)
		ws->closing = true;
	if (wslay_event_want_write(ws->ev))
		wslay_event_send(ws->ev);
	if (!wslay_event_want_read(ws->ev))
		ws->closing = true;
	if (ws->closing && !ws->why)
		ws->why = "a WebSocket frame it refused (unmasked, oversized or malformed)";
	return ws->closing ? WS_CLOSE : WS_OK;
}

enum ws_result ws_input(struct ws *ws, const uint8_t *data, size_t len, ws_deliver_fn deliver,
                        ws_output_fn out, void *ctx)
{
	ws->deliver = deliver;
	ws->out = out;
	ws->ctx = ctx;
	ws->in = data;
	ws->in_len = len;
	ws->in_off = 0;
	if (ws->ev)
		return pump(ws);

	/* The handshake: gather the head (bounded), answer it, and give what
	 * followed it to the framing. */
	if (ws->refused)
		return WS_CLOSE; /* answered once; nothing more to say */
	size_t room = HTTP_HEAD_MAX - ws->head_len;
	size_t take = len < room ? len : room;
	if (!ws->head && !(ws->head = malloc(HTTP_HEAD_MAX)))
		return refuse(ws, 500, "out of memory");
	if (take)
		memcpy(ws->head + ws->head_len, data, take);
	ws->head_len += (uint32_t)take;
	struct http_request rq;
	switch (http_parse_request(ws->head, ws->head_len, HTTP_HEAD_MAX, &rq)) {
	case HTTP_PARSE_NEED_MORE:
		return WS_OK;
	case HTTP_PARSE_INVALID:
		return refuse(ws, 400, "not an HTTP request");
	case HTTP_PARSE_TOO_LARGE:
		/* The parser says too large for either: the head or the target. */
		return ws->head_len >= HTTP_HEAD_MAX ? refuse(ws, 431, "request head too large")
		                                     : refuse(ws, 414, "request target too long");
	case HTTP_PARSE_OK:
		break;
	}
	if (handshake(ws, &rq) != WS_OK)
		return WS_CLOSE;
	/* Bytes after the head: from the part we copied, then the rest. */
	size_t prior = ws->head_len - take; /* head bytes from earlier calls */
	size_t used_now = rq.head_len - prior;
	free(ws->head);
	ws->head = NULL;
	ws->in = data + used_now;
	ws->in_len = len - used_now;
	ws->in_off = 0;
	if (ws->in_len == 0)
		return WS_OK;
	return pump(ws);
}

enum ws_result ws_send(struct ws *ws, const uint8_t *data, size_t len, ws_output_fn out, void *ctx)
{
	if (!ws->ev || ws->closing)
		return WS_CLOSE;
	ws->out = out;
	ws->ctx = ctx;
	struct wslay_event_msg m = {.opcode = WSLAY_BINARY_FRAME, .msg = data, .msg_length = len};
	if (wslay_event_queue_msg(ws->ev, &m) != 0)
		return WS_CLOSE;
	wslay_event_send(ws->ev);
	return WS_OK;
}

void ws_close(struct ws *ws, uint16_t code, ws_output_fn out, void *ctx)
{
	if (!ws->ev || ws->closing)
		return;
	ws->out = out;
	ws->ctx = ctx;
	ws->closing = true;
	wslay_event_queue_close(ws->ev, code, NULL, 0);
	wslay_event_send(ws->ev);
}
