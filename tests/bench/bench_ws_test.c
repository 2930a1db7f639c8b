/*
 * bench_ws_test.c — the bench's WebSocket layer (bench/ws.c) without a
 * socket: the accept key of RFC 6455 §1.3, the upgrade answer's checks,
 * frames in (fragmented, control frames between fragments, several packets
 * per frame, cut anywhere) and masked frames out.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ws.h"

struct got {
	uint8_t data[200000];
	size_t len;
	uint8_t ping[128];
	size_t ping_len;
	int pings;
};

static bool on_data(void *arg, const uint8_t *data, size_t len)
{
	struct got *g = arg;
	cr_assert(g->len + len <= sizeof(g->data));
	memcpy(g->data + g->len, data, len);
	g->len += len;
	return true;
}

static void on_ping(void *arg, const uint8_t *data, size_t len)
{
	struct got *g = arg;
	memcpy(g->ping, data, len);
	g->ping_len = len;
	g->pings++;
}

static const struct ws_events events = {.on_data = on_data, .on_ping = on_ping};

/* An unmasked server frame into out; returns its length. */
static size_t frame(uint8_t *out, bool fin, uint8_t op, const uint8_t *payload, size_t n)
{
	size_t h = 0;
	out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (n < 126) {
		out[h++] = (uint8_t)n;
	} else if (n < 65536) {
		out[h++] = 126;
		out[h++] = (uint8_t)(n >> 8);
		out[h++] = (uint8_t)n;
	} else {
		out[h++] = 127;
		for (int i = 7; i >= 0; i--)
			out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	memcpy(out + h, payload, n);
	return h + n;
}

Test(bench_ws, accept_of_rfc_sample)
{
	char out[29];
	cr_assert_eq(ws_accept_of("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* Start an upgrade and return the answer a correct server would give. */
static struct ws_conn *start(struct ws_ctx *ctx, char *answer, size_t cap, const char *extra)
{
	struct ws_conn *wc = NULL;
	char req[WS_REQUEST_MAX];
	int n = ws_handshake_start(ctx, &wc, "127.0.0.1:1883", req, sizeof(req));
	cr_assert_gt(n, 0);
	req[n] = 0;
	cr_assert(strncmp(req, "GET /mqtt HTTP/1.1\r\n", 20) == 0);
	cr_assert(strstr(req, "\r\nHost: 127.0.0.1:1883\r\n"));
	cr_assert(strstr(req, "\r\nUpgrade: websocket\r\n"));
	cr_assert(strstr(req, "\r\nConnection: Upgrade\r\n"));
	cr_assert(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n"));
	cr_assert(strstr(req, "\r\nSec-WebSocket-Protocol: mqtt\r\n"));
	cr_assert(strcmp(req + n - 4, "\r\n\r\n") == 0);
	const char *k = strstr(req, "Sec-WebSocket-Key: ");
	cr_assert(k);
	char key[25];
	memcpy(key, k + 19, 24);
	key[24] = 0;
	cr_assert_eq(k[19 + 24], '\r');
	char accept[29];
	cr_assert_eq(ws_accept_of(key, accept), 0);
	snprintf(answer, cap,
	         "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
	         "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
	         "Sec-WebSocket-Protocol: mqtt\r\n%s\r\n",
	         accept, extra);
	return wc;
}

Test(bench_ws, handshake_split_answer_then_frames)
{
	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	char ans[1024];
	struct ws_conn *wc = start(ctx, ans, sizeof(ans), "");
	/* the answer is followed, in the same read, by a frame */
	uint8_t buf[2048];
	size_t alen = strlen(ans);
	memcpy(buf, ans, alen);
	const uint8_t connack[] = {0x20, 0x03, 0x00, 0x00, 0x00};
	size_t flen = frame(buf + alen, true, WS_OP_BINARY, connack, sizeof(connack));
	/* cut inside the final CRLFCRLF */
	size_t cut = alen - 2, used = 0;
	char why[160];
	cr_assert_eq(ws_handshake_input(ctx, &wc, buf, cut, &used, why, sizeof(why)), 0);
	cr_assert_eq(used, cut);
	int r = ws_handshake_input(ctx, &wc, buf + cut, alen + flen - cut, &used, why, sizeof(why));
	cr_assert_eq(r, 1, "%s", why);
	cr_assert_eq(used, 2);
	cr_assert_null(wc);
	struct got *g = calloc(1, sizeof(*g));
	uint16_t code = 0;
	cr_assert_eq(ws_read(ctx, &wc, buf + alen, flen, &events, g, &code), WS_READ_OK);
	cr_assert_eq(g->len, sizeof(connack));
	cr_assert_null(wc); /* between frames: the client holds nothing */
	free(g);
	ws_ctx_free(ctx);
}

static void expect_refused(const char *answer_fmt_extra, bool bad_status, bool bad_accept)
{
	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	char ans[1024];
	struct ws_conn *wc = start(ctx, ans, sizeof(ans), answer_fmt_extra);
	if (bad_status)
		memcpy(ans + 9, "404", 3);
	if (bad_accept) {
		char *a = strstr(ans, "Accept: ") + 8;
		a[0] = a[0] == 'A' ? 'B' : 'A';
	}
	size_t used;
	char why[160] = "";
	cr_assert_eq(ws_handshake_input(ctx, &wc, (const uint8_t *)ans, strlen(ans), &used, why,
	                                sizeof(why)),
	             -1);
	cr_assert_neq(why[0], 0);
	ws_conn_free(ctx, wc);
	ws_ctx_free(ctx);
}

Test(bench_ws, handshake_refusals)
{
	expect_refused("", true, false);
	expect_refused("", false, true);
	expect_refused("Sec-WebSocket-Extensions: permessage-deflate\r\n", false, false);
}

Test(bench_ws, handshake_without_protocol)
{
	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	char ans[1024];
	struct ws_conn *wc = start(ctx, ans, sizeof(ans), "");
	char *p = strstr(ans, "Sec-WebSocket-Protocol: mqtt\r\n");
	memmove(p, p + 30, strlen(p + 30) + 1);
	size_t used;
	char why[160];
	cr_assert_eq(ws_handshake_input(ctx, &wc, (const uint8_t *)ans, strlen(ans), &used, why,
	                                sizeof(why)),
	             -1);
	cr_assert(strstr(why, "Sec-WebSocket-Protocol"), "%s", why);
	ws_conn_free(ctx, wc);
	ws_ctx_free(ctx);
}

/* A fragmented message with a ping inside, two packets in the last
 * fragment, a 70,000-byte frame; fed in pieces of every size given. */
static void read_stream(size_t piece)
{
	static uint8_t big[70000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	static uint8_t wire[80000], want[80000];
	size_t n = 0, w = 0;
	const uint8_t a[] = {1, 2, 3}, b[] = {4, 5, 6, 7}, ping[] = "abc";
	n += frame(wire + n, false, WS_OP_BINARY, a, sizeof(a));
	n += frame(wire + n, true, WS_OP_PING, ping, 3);
	n += frame(wire + n, true, WS_OP_CONT, b, sizeof(b));
	n += frame(wire + n, true, WS_OP_PONG, NULL, 0);
	n += frame(wire + n, true, WS_OP_BINARY, big, sizeof(big));
	memcpy(want + w, a, sizeof(a)), w += sizeof(a);
	memcpy(want + w, b, sizeof(b)), w += sizeof(b);
	memcpy(want + w, big, sizeof(big)), w += sizeof(big);

	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	struct ws_conn *wc = NULL;
	struct got *g = calloc(1, sizeof(*g));
	uint16_t code;
	for (size_t off = 0; off < n; off += piece) {
		size_t len = n - off < piece ? n - off : piece;
		cr_assert_eq(ws_read(ctx, &wc, wire + off, len, &events, g, &code), WS_READ_OK);
	}
	cr_assert_null(wc, "state left after whole frames (piece %zu)", piece);
	cr_assert_eq(g->len, w);
	cr_assert(memcmp(g->data, want, w) == 0);
	cr_assert_eq(g->pings, 1);
	cr_assert_eq(g->ping_len, 3);
	cr_assert(memcmp(g->ping, "abc", 3) == 0);
	free(g);
	ws_ctx_free(ctx);
}

Test(bench_ws, read_whole)
{
	read_stream(1u << 20);
}
Test(bench_ws, read_byte_by_byte)
{
	read_stream(1);
}
Test(bench_ws, read_odd_pieces)
{
	read_stream(4099);
}

static enum ws_read_rc read_one(const uint8_t *wire, size_t n, uint16_t *code)
{
	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	struct ws_conn *wc = NULL;
	struct got *g = calloc(1, sizeof(*g));
	enum ws_read_rc rc = ws_read(ctx, &wc, wire, n, &events, g, code);
	ws_conn_free(ctx, wc);
	free(g);
	ws_ctx_free(ctx);
	return rc;
}

Test(bench_ws, read_refuses)
{
	uint8_t wire[64];
	uint16_t code;
	const uint8_t p[] = {0x30, 0x00};
	frame(wire, true, WS_OP_TEXT, p, 2); /* [MQTT-6.0.0-1] */
	cr_assert_eq(read_one(wire, 4, &code), WS_READ_PROTO);
	frame(wire, true, WS_OP_CONT, p, 2); /* continuation without a start */
	cr_assert_eq(read_one(wire, 4, &code), WS_READ_PROTO);
	const uint8_t masked[] = {0x82, 0x82, 1, 2, 3, 4, 0x31, 0x02}; /* a masked server frame */
	cr_assert_eq(read_one(masked, sizeof(masked), &code), WS_READ_PROTO);
	const uint8_t close_frame[] = {0x88, 0x02, 0x03, 0xf0}; /* 1008 */
	cr_assert_eq(read_one(close_frame, sizeof(close_frame), &code), WS_READ_CLOSE);
	cr_assert_eq(code, 1008);
}

struct sink {
	uint8_t buf[80000];
	size_t len;
};

static int sink_fn(void *arg, const uint8_t *data, size_t len)
{
	struct sink *s = arg;
	cr_assert(s->len + len <= sizeof(s->buf));
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return 0;
}

Test(bench_ws, write_masked)
{
	struct ws_ctx *ctx = ws_ctx_new("/mqtt");
	static uint8_t data[70000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	const size_t sizes[] = {0, 2, 125, 126, 65535, 65536, 70000};
	const size_t heads[] = {6, 6, 6, 8, 8, 14, 14};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct sink *s = calloc(1, sizeof(*s));
		cr_assert_eq(ws_write(ctx, WS_OP_BINARY, data, sizes[k], sink_fn, s), 0);
		cr_assert_eq(s->len, heads[k] + sizes[k], "size %zu", sizes[k]);
		cr_assert_eq(s->buf[0], 0x82);
		cr_assert(s->buf[1] & 0x80, "client frames are masked");
		const uint8_t *key = s->buf + heads[k] - 4;
		for (size_t i = 0; i < sizes[k]; i++)
			cr_assert_eq(s->buf[heads[k] + i] ^ key[i % 4], data[i]);
		free(s);
	}
	ws_ctx_free(ctx);
}
