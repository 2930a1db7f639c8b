/*
 * fuzz_ws.c — libFuzzer target over the WebSocket transform (ws.c over
 * http.c and libwslay): a fresh struct ws per input, fed the bytes a client
 * could send, cut into reads, with MQTT sent back in between.
 *
 * Input: byte 0 picks the run, the rest is what the client sends.
 *   bits 0-1  bytes per ws_input call: 1, 7, 64 or all at once
 *   bits 2-3  ws_send: never, after every read (a payload cut from the
 *             input), after every 4th read, or once a 70000-byte payload
 *   bit 4     ws_close(1001) halfway through the reads
 *   bit 6     max_frame_bytes 125 instead of 65536 (reaches 1009 often)
 *   bit 7     prepend the RFC 6455 1.3 handshake, so frames are reached
 *
 * What must hold whatever the bytes:
 *   - deliver() gets data != NULL and len > 0; out() never gets NULL with
 *     len > 0; bytes delivered <= bytes fed;
 *   - ws_open() never goes back to false; before it is true the only
 *     output is the refusal, and a refusal is WS_CLOSE; the first output of
 *     an open ws is the 101;
 *   - after the 101 the output is whole RFC 6455 frames: unmasked, RSV 0,
 *     known opcodes, control payloads <= 125 bytes, nothing after a close;
 *     binary frames are exactly the ws_send() payloads that got WS_OK;
 *   - once ws_input() returned WS_CLOSE (and we did not close first), later
 *     ws_input() calls return WS_CLOSE and deliver nothing, ws_send()
 *     returns WS_CLOSE and outputs nothing, ws_why() says something;
 *   - ws_free() frees everything (LeakSanitizer).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_ws: " __VA_ARGS__);                                  \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define SEND_BIG_BYTES 70000 /* the one large ws_send: a 64-bit length frame */
#define SEND_CUT_BYTES 300   /* at most this much of a read is sent back */

static const char handshake[] = "GET /mqtt HTTP/1.1\r\n"
                                "Host: server.example.com\r\n"
                                "Upgrade: websocket\r\n"
                                "Connection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                "Sec-WebSocket-Protocol: mqtt\r\n"
                                "Sec-WebSocket-Version: 13\r\n"
                                "\r\n";

/* Growing byte string. */
struct buf {
	uint8_t *b;
	size_t len;
	size_t cap;
};

static void buf_add(struct buf *x, const uint8_t *p, size_t n)
{
	if (n == 0)
		return;
	if (x->len + n > x->cap) {
		size_t c = x->cap ? x->cap : 1024;
		while (c < x->len + n)
			c *= 2;
		x->b = realloc(x->b, c);
		FUZZ_CHECK(x->b != NULL, "out of memory");
		x->cap = c;
	}
	memcpy(x->b + x->len, p, n);
	x->len += n;
}

struct run {
	struct buf out;     /* everything output */
	struct buf sent;    /* ws_send payloads that returned WS_OK, concatenated */
	size_t delivered;   /* bytes delivered */
	size_t call_deliv;  /* bytes delivered during the current ws_input */
	bool in_call;       /* inside ws_input (deliver is only legal there) */
	size_t frames_from; /* output offset where frames start (after the 101) */
	bool open_seen;
};

static void on_deliver(void *ctx, const uint8_t *data, size_t len)
{
	struct run *r = ctx;
	FUZZ_CHECK(r->in_call, "deliver() outside ws_input()");
	FUZZ_CHECK(data != NULL && len > 0, "deliver(%p, %zu)", (const void *)data, len);
	/* Touch every byte so ASan checks the range. */
	volatile uint8_t sink = 0;
	for (size_t i = 0; i < len; i++)
		sink ^= data[i];
	(void)sink;
	r->delivered += len;
	r->call_deliv += len;
}

static void on_output(void *ctx, const uint8_t *data, size_t len)
{
	struct run *r = ctx;
	FUZZ_CHECK(data != NULL || len == 0, "out(NULL, %zu)", len);
	buf_add(&r->out, data, len);
}

/* The output after the 101 is whole frames; binary ones are what was sent. */
static void check_frames(const struct run *r)
{
	const uint8_t *p = r->out.b + r->frames_from;
	size_t n = r->out.len - r->frames_from, off = 0, sent_off = 0;
	bool closed = false;
	while (off < n) {
		FUZZ_CHECK(!closed, "a frame after the close frame");
		FUZZ_CHECK(n - off >= 2, "a partial frame header at the end of the output");
		uint8_t b0 = p[off], b1 = p[off + 1];
		uint8_t op = b0 & 0x0f;
		FUZZ_CHECK((b0 & 0x70) == 0, "RSV bits 0x%02x in a server frame", b0);
		FUZZ_CHECK((b1 & 0x80) == 0, "a masked server frame");
		FUZZ_CHECK(b0 & 0x80, "a server frame without FIN (opcode %u)", op);
		uint64_t len = b1 & 0x7f;
		size_t h = 2;
		if (len == 126) {
			FUZZ_CHECK(n - off >= 4, "partial 16-bit length");
			len = ((uint64_t)p[off + 2] << 8) | p[off + 3];
			h = 4;
		} else if (len == 127) {
			FUZZ_CHECK(n - off >= 10, "partial 64-bit length");
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | p[off + 2 + i];
			h = 10;
		}
		FUZZ_CHECK(n - off - h >= len, "frame of %llu bytes cut at the end of the output",
		           (unsigned long long)len);
		const uint8_t *pl = p + off + h;
		switch (op) {
		case 0x2:
			FUZZ_CHECK(sent_off + len <= r->sent.len &&
			               memcmp(pl, r->sent.b + sent_off, (size_t)len) == 0,
			           "a binary frame that is not the next ws_send payload");
			sent_off += (size_t)len;
			break;
		case 0x8:
			FUZZ_CHECK(len != 1, "a close frame with a 1-byte body");
			closed = true;
			/* fallthrough */
		case 0xA:
			FUZZ_CHECK(len <= 125, "a control frame of %llu bytes",
			           (unsigned long long)len);
			break;
		default:
			FUZZ_CHECK(false, "server frame opcode 0x%x", op);
		}
		off += h + (size_t)len;
	}
	FUZZ_CHECK(sent_off == r->sent.len, "%zu of %zu sent bytes framed", sent_off, r->sent.len);
}

static bool starts(const struct buf *x, size_t from, const char *s)
{
	size_t n = strlen(s);
	return x->len - from >= n && memcmp(x->b + from, s, n) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const size_t chunks[] = {1, 7, 64, SIZE_MAX};
	uint8_t mode = data[0];
	size_t chunk = chunks[mode & 3];
	unsigned send_mode = (mode >> 2) & 3;
	bool close_mid = mode & 0x10;
	uint64_t max_frame = (mode & 0x40) ? 125 : 65536;

	/* The client's byte stream: the handshake (maybe), then the input. */
	struct buf in = {0};
	if (mode & 0x80)
		buf_add(&in, (const uint8_t *)handshake, sizeof(handshake) - 1);
	buf_add(&in, data + 1, size - 1);

	struct ws *ws = ws_new("/mqtt", max_frame);
	FUZZ_CHECK(ws != NULL, "ws_new");
	struct run r = {0};
	bool input_closed = false; /* ws_input said WS_CLOSE before we closed */
	bool we_closed = false;
	bool refused = false; /* the handshake was answered with an HTTP error */
	size_t fed = 0, calls = 0;
	size_t total_calls =
	    in.len == 0 ? 0 : (chunk == SIZE_MAX ? 1 : (in.len + chunk - 1) / chunk);
	uint8_t *big = NULL;

	for (size_t off = 0; off < in.len; calls++) {
		size_t n = in.len - off < chunk ? in.len - off : chunk;
		/* An exact-size copy so ASan sees reads past the call's bytes. */
		uint8_t *piece = malloc(n);
		memcpy(piece, in.b + off, n);
		bool was_open = ws_open(ws);
		size_t out_before = r.out.len;
		r.call_deliv = 0;
		r.in_call = true;
		enum ws_result rc = ws_input(ws, piece, n, on_deliver, on_output, &r);
		r.in_call = false;
		off += n;
		fed += n;
		FUZZ_CHECK(rc == WS_OK || rc == WS_CLOSE, "ws_input result %d", (int)rc);
		FUZZ_CHECK(r.delivered <= fed, "%zu bytes delivered from %zu fed", r.delivered,
		           fed);
		bool now_open = ws_open(ws);
		FUZZ_CHECK(!was_open || now_open, "ws_open() went back to false");
		if (!was_open && now_open) {
			FUZZ_CHECK(!r.open_seen, "opened twice");
			r.open_seen = true;
			FUZZ_CHECK(out_before == 0, "output before the 101");
			FUZZ_CHECK(starts(&r.out, 0, "HTTP/1.1 101 Switching Protocols\r\n"),
			           "the first output of an open ws is not the 101");
			uint8_t *end = memmem(r.out.b, r.out.len, "\r\n\r\n", 4);
			FUZZ_CHECK(end != NULL, "101 without its blank line");
			r.frames_from = (size_t)(end + 4 - r.out.b);
		} else if (!now_open) {
			FUZZ_CHECK(r.call_deliv == 0, "delivery before the handshake");
			if (rc == WS_OK)
				FUZZ_CHECK(r.out.len == out_before,
				           "output while the head is read");
			else if (!refused) {
				FUZZ_CHECK(starts(&r.out, out_before, "HTTP/1.1 4") ||
				               starts(&r.out, out_before, "HTTP/1.1 5"),
				           "a refusal that is not an HTTP error");
				refused = true;
			} else {
				/* Answered once: later input gets no second answer. */
				FUZZ_CHECK(r.out.len == out_before, "a second refusal");
			}
		}
		if (input_closed) {
			FUZZ_CHECK(rc == WS_CLOSE, "WS_OK after WS_CLOSE");
			FUZZ_CHECK(r.call_deliv == 0, "%zu bytes delivered after WS_CLOSE",
			           r.call_deliv);
			if (now_open)
				FUZZ_CHECK(r.out.len == out_before, "output after WS_CLOSE");
		}
		if (rc == WS_CLOSE) {
			if (!we_closed)
				input_closed = true;
			const char *why = ws_why(ws);
			FUZZ_CHECK(why != NULL && why[0] != '\0', "ws_why() empty");
		}
		if (we_closed)
			FUZZ_CHECK(rc == WS_CLOSE, "WS_OK after ws_close()");

		/* MQTT the other way. */
		bool do_send = (send_mode == 1) || (send_mode == 2 && calls % 4 == 3) ||
		               (send_mode == 3 && calls == total_calls / 2);
		if (do_send) {
			const uint8_t *pl = piece;
			size_t pl_len = n < SEND_CUT_BYTES ? n : SEND_CUT_BYTES;
			if (send_mode == 3) {
				big = malloc(SEND_BIG_BYTES);
				for (size_t i = 0; i < SEND_BIG_BYTES; i++)
					big[i] = (uint8_t)(i ^ (i >> 8) ^ mode);
				pl = big;
				pl_len = SEND_BIG_BYTES;
			}
			size_t out_at = r.out.len;
			enum ws_result sr = ws_send(ws, pl, pl_len, on_output, &r);
			FUZZ_CHECK(sr == WS_OK || sr == WS_CLOSE, "ws_send result %d", (int)sr);
			if (!now_open || input_closed || we_closed)
				FUZZ_CHECK(sr == WS_CLOSE,
				           "ws_send WS_OK on a closed or unopened ws");
			if (sr == WS_OK)
				buf_add(&r.sent, pl, pl_len);
			else
				FUZZ_CHECK(r.out.len == out_at, "ws_send output and said WS_CLOSE");
			free(big);
			big = NULL;
		}
		free(piece);

		if (close_mid && !we_closed && calls == total_calls / 2) {
			size_t out_at = r.out.len;
			ws_close(ws, 1001, on_output, &r);
			we_closed = now_open; /* before the handshake it does nothing */
			if (!now_open)
				FUZZ_CHECK(r.out.len == out_at,
				           "ws_close output before the handshake");
			FUZZ_CHECK(ws_send(ws, (const uint8_t *)"\xe0\x00", 2, on_output, &r) ==
			               WS_CLOSE,
			           "ws_send WS_OK after ws_close()");
		}
	}

	if (r.open_seen)
		check_frames(&r);
	else
		FUZZ_CHECK(r.delivered == 0, "delivery without a handshake");

	ws_free(ws);
	free(in.b);
	free(r.out.b);
	free(r.sent.b);
	return 0;
}
