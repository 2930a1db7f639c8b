/*
 * ws.c — the WebSocket layer of bench clients (see ws.h): the opening
 * handshake [RFC 6455 §4.1, §4.2.2], masked binary frames out [§5.3] and
 * frames in [§5.2, §5.4, §5.5], with MQTT's rules on top [MQTT-6.0.0-1]
 * (binary data only) and [MQTT-6.0.0-2] (packets may span frames, frames
 * may hold several packets: the frame payloads are one byte stream).
 *
 * Owner: the single thread of one worker process.
 *
 * Memory: libwslay keeps a 4 KiB input buffer in every frame context, and
 * its event context adds another 4 KiB of output buffer: 9.4 KiB per
 * connection, 60 times what an idle bench client costs. So clients do not
 * own frame contexts. A receive borrows one from the worker's pool, feeds
 * it the bytes that arrived and gives it back when everything fed has come
 * out as complete frames (fed == framed: wslay then holds no byte and is in
 * its initial state, waiting for a header — see wslay_frame_recv). Only a
 * client whose frame is cut by the end of a read keeps its context until
 * the rest arrives. All sends go through one frame context of the worker:
 * the sink always takes a whole frame, so it never stops mid-frame.
 *
 * Masking keys come from OpenSSL's RAND_bytes, 4 KiB at a time [§5.3: keys
 * must not be predictable].
 */
#include "ws.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wslay/wslay.h>

#define WS_GUID     "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_POOL_MAX 64u   /* idle frame contexts kept per worker */
#define WS_RAND     4096u /* bytes of masking keys drawn at once */
#define WS_PATH_MAX 256u

struct ws_conn {
	wslay_frame_context_ptr frame; /* NULL while upgrading */
	uint64_t fed;                  /* bytes handed to frame since it was last idle */
	uint64_t framed;               /* bytes of complete frames (head + payload) among them */
	uint64_t frame_left;           /* payload bytes of the current frame still to come */
	uint8_t opcode;                /* of the current frame */
	bool in_frame;                 /* the current frame's first piece has been seen */
	bool in_msg;                   /* a fragmented data message is open (fin not seen) */
	uint8_t ctrl_len;              /* bytes of ctrl[] */
	uint8_t ctrl[125];             /* a control frame's payload, gathered [§5.5] */
	char accept[29];               /* upgrading: the Sec-WebSocket-Accept we expect */
	uint32_t head_len;             /* upgrading: bytes in head */
	char *head;                    /* upgrading: an answer split across reads, or NULL */
};

struct ws_ctx {
	char path[WS_PATH_MAX];
	wslay_frame_context_ptr send_frame; /* shared by every client's sends */
	struct ws_conn *pool[WS_POOL_MAX];  /* idle conns, each with a frame context */
	uint32_t pool_count;
	/* the read in progress: what the recv callback hands to wslay */
	struct ws_conn *cur;
	const uint8_t *in;
	size_t in_len, in_off;
	/* the write in progress */
	ws_sink_fn sink;
	void *sink_arg;
	bool sink_failed;
	uint32_t rand_off; /* next unused byte of rand[] */
	uint8_t rand[WS_RAND];
};

static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
	(void)flags;
	struct ws_ctx *ctx = user_data;
	size_t n = ctx->in_len - ctx->in_off;
	if (n > len)
		n = len;
	if (!n)
		return 0; /* wslay: WSLAY_ERR_WANT_READ */
	memcpy(buf, ctx->in + ctx->in_off, n);
	ctx->in_off += n;
	ctx->cur->fed += n;
	return (ssize_t)n;
}

static ssize_t send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
	(void)flags;
	struct ws_ctx *ctx = user_data;
	/* claim every byte even on failure, so the shared context always ends
	 * the frame and is ready for the next client; the failure is reported */
	if (!ctx->sink_failed && ctx->sink(ctx->sink_arg, data, len) < 0)
		ctx->sink_failed = true;
	return (ssize_t)len;
}

static int rand_take(struct ws_ctx *ctx, uint8_t *buf, size_t len)
{
	if (ctx->rand_off + len > WS_RAND) {
		if (RAND_bytes(ctx->rand, WS_RAND) != 1)
			return -1;
		ctx->rand_off = 0;
	}
	memcpy(buf, ctx->rand + ctx->rand_off, len);
	ctx->rand_off += (uint32_t)len;
	return 0;
}

static int genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
	return rand_take(user_data, buf, len);
}

struct ws_ctx *ws_ctx_new(const char *path)
{
	if (strlen(path) >= WS_PATH_MAX || path[0] != '/')
		return NULL;
	struct ws_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	snprintf(ctx->path, sizeof(ctx->path), "%s", path);
	ctx->rand_off = WS_RAND; /* drawn on first use */
	struct wslay_frame_callbacks cb = {
	    .send_callback = send_cb,
	    .recv_callback = recv_cb,
	    .genmask_callback = genmask_cb,
	};
	if (wslay_frame_context_init(&ctx->send_frame, &cb, ctx) != 0) {
		free(ctx);
		return NULL;
	}
	return ctx;
}

void ws_ctx_free(struct ws_ctx *ctx)
{
	if (!ctx)
		return;
	for (uint32_t i = 0; i < ctx->pool_count; i++) {
		wslay_frame_context_free(ctx->pool[i]->frame);
		free(ctx->pool[i]);
	}
	wslay_frame_context_free(ctx->send_frame);
	free(ctx);
}

void ws_conn_free(struct ws_ctx *ctx, struct ws_conn *wc)
{
	if (!wc)
		return;
	free(wc->head);
	wc->head = NULL;
	if (!wc->frame) {
		free(wc);
		return;
	}
	if (ctx->pool_count < WS_POOL_MAX && !wc->fed && !wc->in_frame) {
		ctx->pool[ctx->pool_count++] = wc; /* idle: wslay is in its initial state */
		return;
	}
	wslay_frame_context_free(wc->frame);
	free(wc);
}

static struct ws_conn *conn_take(struct ws_ctx *ctx)
{
	if (ctx->pool_count)
		return ctx->pool[--ctx->pool_count];
	struct ws_conn *wc = calloc(1, sizeof(*wc));
	if (!wc)
		return NULL;
	struct wslay_frame_callbacks cb = {.recv_callback = recv_cb};
	if (wslay_frame_context_init(&wc->frame, &cb, ctx) != 0) {
		free(wc);
		return NULL;
	}
	return wc;
}

int ws_accept_of(const char *key, char out[29])
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	uint8_t md[EVP_MAX_MD_SIZE];
	unsigned md_len = 0;
	if (EVP_Digest(buf, (size_t)n, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
		return -1;
	return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : -1;
}

int ws_handshake_start(struct ws_ctx *ctx, struct ws_conn **wc, const char *host, char *out,
                       size_t cap)
{
	uint8_t nonce[16];
	char key[32];
	if (rand_take(ctx, nonce, sizeof(nonce)) < 0 ||
	    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof(nonce)) != 24)
		return -1;
	int n = snprintf(out, cap,
	                 "GET %s HTTP/1.1\r\n"
	                 "Host: %s\r\n"
	                 "Upgrade: websocket\r\n"
	                 "Connection: Upgrade\r\n"
	                 "Sec-WebSocket-Key: %s\r\n"
	                 "Sec-WebSocket-Version: 13\r\n"
	                 "Sec-WebSocket-Protocol: mqtt\r\n"
	                 "\r\n",
	                 ctx->path, host, key);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	struct ws_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -1;
	if (ws_accept_of(key, c->accept) < 0) {
		free(c);
		return -1;
	}
	*wc = c;
	return n;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = 0;
	return s;
}

/* Is token (case-insensitive) in the comma-separated list? */
static bool has_token(char *list, const char *token)
{
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
		if (strcasecmp(trim(t), token) == 0)
			return true;
	return false;
}

/* Check a whole answer head (NUL-terminated, CRLF lines). */
static int check_head(const struct ws_conn *wc, char *head, char *why, size_t why_len)
{
	char *save = NULL;
	char *line = strtok_r(head, "\r\n", &save);
	int status = 0;
	if (!line || sscanf(line, "HTTP/1.%*1[01] %3d", &status) != 1) {
		snprintf(why, why_len, "not an HTTP answer");
		return -1;
	}
	if (status != 101) {
		snprintf(why, why_len, "HTTP status %d, not 101", status);
		return -1;
	}
	bool upgrade = false, connection = false, accept = false, protocol = false;
	while ((line = strtok_r(NULL, "\r\n", &save))) {
		char *colon = strchr(line, ':');
		if (!colon) {
			snprintf(why, why_len, "malformed header line");
			return -1;
		}
		*colon = 0;
		char *name = trim(line), *value = trim(colon + 1);
		if (strcasecmp(name, "Upgrade") == 0)
			upgrade = strcasecmp(value, "websocket") == 0;
		else if (strcasecmp(name, "Connection") == 0)
			connection = has_token(value, "upgrade");
		else if (strcasecmp(name, "Sec-WebSocket-Accept") == 0)
			accept = strcmp(value, wc->accept) == 0;
		else if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0)
			protocol = strcmp(value, "mqtt") == 0;
		else if (strcasecmp(name, "Sec-WebSocket-Extensions") == 0) {
			/* we offered none [RFC 6455 §4.1, point 5] */
			snprintf(why, why_len, "extension not offered: %s", value);
			return -1;
		}
	}
	const char *missing = !upgrade      ? "Upgrade: websocket"
	                      : !connection ? "Connection: Upgrade"
	                      : !accept     ? "the expected Sec-WebSocket-Accept"
	                      : !protocol   ? "Sec-WebSocket-Protocol: mqtt"
	                                    : NULL;
	if (missing) {
		snprintf(why, why_len, "101 without %s", missing);
		return -1;
	}
	return 0;
}

static const uint8_t *find_end(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
			return p + i + 4;
	return NULL;
}

int ws_handshake_input(struct ws_ctx *ctx, struct ws_conn **wc, const uint8_t *data, size_t len,
                       size_t *used, char *why, size_t why_len)
{
	struct ws_conn *c = *wc;
	*used = 0;
	/* look for the end of the head in what is kept plus what arrived; the
	 * head is never longer than WS_RESPONSE_MAX */
	size_t have = c->head_len;
	size_t take = len;
	if (have + take > WS_RESPONSE_MAX)
		take = WS_RESPONSE_MAX - have;
	char *buf = realloc(c->head, have + take + 1);
	if (!buf) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	c->head = buf;
	memcpy(buf + have, data, take);
	/* the end may straddle the two parts: search from 3 bytes back */
	size_t from = have > 3 ? have - 3 : 0;
	const uint8_t *end = find_end((const uint8_t *)buf + from, have + take - from);
	if (!end) {
		c->head_len = (uint32_t)(have + take);
		if (c->head_len >= WS_RESPONSE_MAX) {
			snprintf(why, why_len, "answer head longer than %u bytes", WS_RESPONSE_MAX);
			return -1;
		}
		*used = len;
		return 0;
	}
	size_t head_len = (size_t)(end - (const uint8_t *)buf);
	buf[head_len] = 0;
	if (check_head(c, buf, why, why_len) < 0)
		return -1;
	*used = head_len - have;
	ws_conn_free(ctx, c);
	*wc = NULL;
	return 1;
}

int ws_write(struct ws_ctx *ctx, enum ws_opcode op, const uint8_t *data, size_t len,
             ws_sink_fn sink, void *arg)
{
	struct wslay_frame_iocb io = {
	    .fin = 1,
	    .rsv = 0,
	    .opcode = (uint8_t)op,
	    .payload_length = len,
	    .mask = 1, /* a client masks every frame [RFC 6455 §5.3] */
	    .data = data,
	    .data_length = len,
	};
	ctx->sink = sink;
	ctx->sink_arg = arg;
	ctx->sink_failed = false;
	ssize_t r = wslay_frame_send(ctx->send_frame, &io);
	if (r < 0) {
		/* only an invalid argument gets here; start clean */
		wslay_frame_context_ptr fresh;
		struct wslay_frame_callbacks cb = {.send_callback = send_cb,
		                                   .recv_callback = recv_cb,
		                                   .genmask_callback = genmask_cb};
		if (wslay_frame_context_init(&fresh, &cb, ctx) == 0) {
			wslay_frame_context_free(ctx->send_frame);
			ctx->send_frame = fresh;
		}
		return -1;
	}
	return ctx->sink_failed || (size_t)r != len ? -1 : 0;
}

static uint64_t head_bytes(uint64_t payload_len, bool masked)
{
	uint64_t n = 2 + (masked ? 4 : 0);
	if (payload_len >= 65536)
		n += 8;
	else if (payload_len >= 126)
		n += 2;
	return n;
}

/* The first piece of a frame: may it come now? [RFC 6455 §5.2, §5.4] */
static bool frame_allowed(struct ws_conn *c, const struct wslay_frame_iocb *io)
{
	if (io->mask || io->rsv)
		return false; /* a server never masks [§5.1]; no extension was agreed */
	switch (io->opcode) {
	case WS_OP_CONT:
		return c->in_msg;
	case WS_OP_BINARY:
		return !c->in_msg;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		return io->payload_length <= sizeof(c->ctrl);
	default:
		return false; /* text [MQTT-6.0.0-1], reserved opcodes */
	}
}

enum ws_read_rc ws_read(struct ws_ctx *ctx, struct ws_conn **wc, const uint8_t *data, size_t len,
                        const struct ws_events *ev, void *arg, uint16_t *close_code)
{
	struct ws_conn *c = *wc ? *wc : conn_take(ctx);
	if (!c)
		return WS_READ_NOMEM;
	*wc = c;
	ctx->cur = c;
	ctx->in = data;
	ctx->in_len = len;
	ctx->in_off = 0;
	enum ws_read_rc rc = WS_READ_OK;
	for (;;) {
		struct wslay_frame_iocb io;
		memset(&io, 0, sizeof(io));
		ssize_t r = wslay_frame_recv(c->frame, &io);
		if (r == WSLAY_ERR_WANT_READ) {
			if (ctx->in_off == ctx->in_len)
				break;
			continue; /* wslay's buffer had room for less than arrived */
		}
		if (r < 0) {
			rc = WS_READ_PROTO;
			break;
		}
		if (!c->in_frame) {
			if (!frame_allowed(c, &io)) {
				rc = WS_READ_PROTO;
				break;
			}
			c->in_frame = true;
			c->opcode = io.opcode;
			c->frame_left = io.payload_length;
			c->ctrl_len = 0;
			if (io.opcode == WS_OP_BINARY || io.opcode == WS_OP_CONT)
				c->in_msg = !io.fin;
		}
		c->frame_left -= io.data_length;
		bool control = c->opcode >= WS_OP_CLOSE;
		if (control) {
			memcpy(c->ctrl + c->ctrl_len, io.data, io.data_length);
			c->ctrl_len = (uint8_t)(c->ctrl_len + io.data_length);
		}
		bool go_on = true;
		if (!control && io.data_length)
			go_on = ev->on_data(arg, io.data, io.data_length);
		if (c->frame_left == 0) {
			c->in_frame = false;
			c->framed += head_bytes(io.payload_length, false) + io.payload_length;
			if (c->opcode == WS_OP_PING) {
				ev->on_ping(arg, c->ctrl, c->ctrl_len);
			} else if (c->opcode == WS_OP_CLOSE) {
				*close_code = c->ctrl_len >= 2
				                  ? (uint16_t)(c->ctrl[0] << 8 | c->ctrl[1])
				                  : 1005; /* no status code [§7.1.5] */
				rc = WS_READ_CLOSE;
				break;
			}
		}
		if (!go_on)
			break;
	}
	if (rc == WS_READ_OK && c->fed == c->framed && !c->in_frame && !c->in_msg) {
		/* between frames with nothing buffered: give the context back */
		c->fed = c->framed = 0;
		ws_conn_free(ctx, c);
		*wc = NULL;
	}
	ctx->cur = NULL;
	return rc;
}
