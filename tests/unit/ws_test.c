/*
 * ws_test.c — MQTT over WebSocket as a client sees it [MQTT 5.0 §6,
 * RFC 6455]: the opening handshake is answered with exactly the 101 a
 * browser or MQTT.js checks (accept value, the mqtt subprotocol), or refused
 * with the right HTTP status; binary frame payloads reach the codec as one
 * ordered byte stream however the bytes are cut into frames and reads;
 * text, unmasked and oversized frames close with the RFC's close code;
 * pings are answered, closes are echoed; what we send is one unmasked
 * binary frame.
 *
 * The test carries its own client-side framing (RFC 6455 5.2): a builder of
 * masked frames and a parser of the server's unmasked ones, so wslay is
 * checked against the spec and not against itself.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws.h"

/* ------------------------------------------------------------------------ */
/* Helpers */

#define PATH      "/mqtt"
#define MAX_FRAME 65536u

enum {
	OP_CONT = 0x0,
	OP_TEXT = 0x1,
	OP_BINARY = 0x2,
	OP_CLOSE = 0x8,
	OP_PING = 0x9,
	OP_PONG = 0xA,
};

/* What the callbacks saw during a test. */
struct sink {
	uint8_t *out; /* bytes for the socket, concatenated */
	size_t out_len;
	size_t out_cap;
	uint8_t *got; /* MQTT bytes delivered, concatenated */
	size_t got_len;
	size_t got_cap;
	unsigned deliver_calls;
	bool bad_call; /* a callback got NULL or len 0 */
};

static void append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *p, size_t n)
{
	if (*len + n > *cap) {
		size_t c = *cap ? *cap : 256;
		while (c < *len + n)
			c *= 2;
		*buf = realloc(*buf, c);
		cr_assert_not_null(*buf);
		*cap = c;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
}

static void on_deliver(void *ctx, const uint8_t *data, size_t len)
{
	struct sink *s = ctx;
	s->deliver_calls++;
	if (!data || len == 0) {
		s->bad_call = true;
		return;
	}
	append(&s->got, &s->got_len, &s->got_cap, data, len);
}

static void on_output(void *ctx, const uint8_t *data, size_t len)
{
	struct sink *s = ctx;
	if (!data && len > 0) {
		s->bad_call = true;
		return;
	}
	if (len > 0)
		append(&s->out, &s->out_len, &s->out_cap, data, len);
}

static void sink_reset_out(struct sink *s)
{
	s->out_len = 0;
}

static void sink_free(struct sink *s)
{
	free(s->out);
	free(s->got);
	memset(s, 0, sizeof(*s));
}

/* An exact-size heap copy per call, so ASan builds see any read past it. */
static enum ws_result feed(struct ws *ws, struct sink *s, const void *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	memcpy(copy, data, len);
	enum ws_result rc = ws_input(ws, copy, len, on_deliver, on_output, s);
	free(copy);
	return rc;
}

static enum ws_result feed_str(struct ws *ws, struct sink *s, const char *str)
{
	return feed(ws, s, str, strlen(str));
}

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 5.7 */

/*
 * One client frame [RFC 6455 5.2] into buf (room for len + 14 bytes): FIN,
 * opcode, the shortest length form, and when masked the key and the
 * payload XORed with it. Returns the frame's size.
 */
static size_t frame_build(uint8_t *buf, bool fin, uint8_t opcode, bool masked,
                          const uint8_t *payload, size_t len)
{
	size_t o = 0;
	buf[o++] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
	uint8_t m = masked ? 0x80 : 0;
	if (len <= 125) {
		buf[o++] = (uint8_t)(m | len);
	} else if (len <= 0xffff) {
		buf[o++] = (uint8_t)(m | 126);
		buf[o++] = (uint8_t)(len >> 8);
		buf[o++] = (uint8_t)len;
	} else {
		buf[o++] = (uint8_t)(m | 127);
		for (int i = 7; i >= 0; i--)
			buf[o++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (masked) {
		memcpy(buf + o, mask_key, 4);
		o += 4;
	}
	for (size_t i = 0; i < len; i++)
		buf[o + i] = masked ? (uint8_t)(payload[i] ^ mask_key[i % 4]) : payload[i];
	return o + len;
}

/* A frame in a growing byte string (the client's send stream). */
struct stream {
	uint8_t *b;
	size_t len;
	size_t cap;
};

static void stream_frame(struct stream *st, bool fin, uint8_t opcode, bool masked,
                         const uint8_t *payload, size_t len)
{
	uint8_t *f = malloc(len + 14);
	size_t n = frame_build(f, fin, opcode, masked, payload, len);
	append(&st->b, &st->len, &st->cap, f, n);
	free(f);
}

static void stream_bytes(struct stream *st, const void *p, size_t n)
{
	append(&st->b, &st->len, &st->cap, p, n);
}

/* One server frame as parsed from the output. */
struct frame {
	bool fin;
	uint8_t rsv;
	uint8_t opcode;
	bool masked;
	uint8_t len_form; /* 7, 16 or 64: which length encoding was used */
	uint64_t len;
	const uint8_t *payload; /* into the parsed buffer (unmasked frames) */
};

/* Parse one frame at buf[0..n); returns its size, 0 if incomplete. */
static size_t frame_parse(const uint8_t *buf, size_t n, struct frame *f)
{
	if (n < 2)
		return 0;
	f->fin = buf[0] & 0x80;
	f->rsv = (buf[0] >> 4) & 7;
	f->opcode = buf[0] & 0x0f;
	f->masked = buf[1] & 0x80;
	uint64_t len = buf[1] & 0x7f;
	size_t o = 2;
	f->len_form = 7;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = ((uint64_t)buf[2] << 8) | buf[3];
		o = 4;
		f->len_form = 16;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | buf[2 + i];
		o = 10;
		f->len_form = 64;
	}
	if (f->masked)
		o += 4; /* a server never masks; the test asserts on it */
	if (n < o || n - o < len)
		return 0;
	f->len = len;
	f->payload = buf + o;
	return o + (size_t)len;
}

/* All frames in the output; asserts the output is nothing but whole frames. */
static size_t frames_parse(const struct sink *s, struct frame *fs, size_t max)
{
	size_t off = 0, count = 0;
	while (off < s->out_len) {
		cr_assert_lt(count, max, "more than %zu frames in the output", max);
		size_t k = frame_parse(s->out + off, s->out_len - off, &fs[count]);
		cr_assert_gt(k, 0, "a partial frame at output offset %zu", off);
		cr_assert_not(fs[count].masked, "a server frame is masked [RFC 6455 5.1]");
		cr_assert_eq(fs[count].rsv, 0);
		off += k;
		count++;
	}
	return count;
}

/* The output is exactly one close frame; its status code (0 if none). */
static uint16_t only_close(const struct sink *s)
{
	struct frame fs[4];
	size_t n = frames_parse(s, fs, 4);
	cr_assert_eq(n, 1, "%zu frames instead of one close", n);
	cr_assert(fs[0].fin);
	cr_assert_eq(fs[0].opcode, OP_CLOSE, "opcode 0x%x instead of close", fs[0].opcode);
	if (fs[0].len < 2)
		return 0;
	return (uint16_t)((fs[0].payload[0] << 8) | fs[0].payload[1]);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *p = malloc(n ? n : 1);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
	return p;
}

/* The opening handshake of RFC 6455 section 1.3, with MQTT as subprotocol. */
static const char ws_request[] = "GET /mqtt HTTP/1.1\r\n"
                                 "Host: server.example.com\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                 "Origin: http://example.com\r\n"
                                 "Sec-WebSocket-Protocol: mqtt\r\n"
                                 "Sec-WebSocket-Version: 13\r\n"
                                 "\r\n";

static const char ws_response_mqtt[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                       "Upgrade: websocket\r\n"
                                       "Connection: Upgrade\r\n"
                                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                       "Sec-WebSocket-Protocol: mqtt\r\n"
                                       "\r\n";

/* A handshake request; a NULL header is left out. */
static char *request(const char *line, const char *upgrade, const char *key, const char *protocol,
                     const char *version)
{
	char *s = malloc(1024);
	int o = snprintf(s, 1024, "%s\r\nHost: broker\r\n", line);
	if (upgrade)
		o += snprintf(s + o, 1024 - (size_t)o, "Upgrade: %s\r\nConnection: Upgrade\r\n",
		              upgrade);
	if (key)
		o += snprintf(s + o, 1024 - (size_t)o, "Sec-WebSocket-Key: %s\r\n", key);
	if (protocol)
		o += snprintf(s + o, 1024 - (size_t)o, "Sec-WebSocket-Protocol: %s\r\n", protocol);
	if (version)
		o += snprintf(s + o, 1024 - (size_t)o, "Sec-WebSocket-Version: %s\r\n", version);
	snprintf(s + o, 1024 - (size_t)o, "\r\n");
	return s;
}

static bool out_starts(const struct sink *s, const char *prefix)
{
	size_t n = strlen(prefix);
	return s->out_len >= n && memcmp(s->out, prefix, n) == 0;
}

/* A ws past the handshake, with the 101 already checked and dropped. */
static struct ws *open_ws(struct sink *s, uint64_t max_frame_bytes)
{
	struct ws *ws = ws_new(PATH, max_frame_bytes);
	cr_assert_not_null(ws);
	cr_assert_not(ws_open(ws));
	cr_assert_eq(feed_str(ws, s, ws_request), WS_OK);
	cr_assert(ws_open(ws));
	cr_assert(out_starts(s, "HTTP/1.1 101 "));
	sink_reset_out(s);
	return ws;
}

/* A refused handshake: WS_CLOSE, the status line, a reason, no upgrade. */
static void expect_refusal(const char *req, int status)
{
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(feed_str(ws, &s, req), WS_CLOSE, "request accepted:\n%s", req);
	char line[32];
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
	cr_assert(out_starts(&s, line), "expected \"%s\", got \"%.*s\"", line,
	          (int)(s.out_len < 40 ? s.out_len : 40), (const char *)s.out);
	cr_assert_not(ws_open(ws));
	cr_assert_eq(s.got_len, 0);
	const char *why = ws_why(ws);
	cr_assert_not_null(why);
	cr_assert_gt(strlen(why), 1, "ws_why is \"%s\"", why);
	cr_assert_str_neq(why, "?");
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xc0\x00", 2, on_output, &s), WS_CLOSE);
	ws_free(ws);
	sink_free(&s);
}

/* The selected subprotocol in a 101, or the refusal's status. */
static void expect_protocol(const char *offered, const char *selected)
{
	char *req =
	    request("GET /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", offered, "13");
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(feed_str(ws, &s, req), WS_OK);
	cr_assert(out_starts(&s, "HTTP/1.1 101 "));
	char want[64];
	snprintf(want, sizeof(want), "\r\nSec-WebSocket-Protocol: %s\r\n", selected);
	append(&s.out, &s.out_len, &s.out_cap, (const uint8_t *)"", 1); /* NUL for strstr */
	cr_assert_not_null(strstr((const char *)s.out, want), "offered \"%s\", response:\n%s",
	                   offered, (const char *)s.out);
	ws_free(ws);
	sink_free(&s);
	free(req);
}

/* ------------------------------------------------------------------------ */
/* The opening handshake */

Test(ws, accept_key_rfc6455_example)
{
	char out[29];
	memset(out, 'x', sizeof(out));
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test(ws, handshake_in_one_call_is_exactly_the_101)
{
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_not(ws_open(ws));
	cr_assert_eq(feed_str(ws, &s, ws_request), WS_OK);
	cr_assert(ws_open(ws));
	cr_assert_eq(s.out_len, strlen(ws_response_mqtt), "response:\n%.*s", (int)s.out_len,
	             (const char *)s.out);
	cr_assert_eq(memcmp(s.out, ws_response_mqtt, s.out_len), 0, "response:\n%.*s",
	             (int)s.out_len, (const char *)s.out);
	cr_assert_eq(s.deliver_calls, 0);
	ws_free(ws);
	sink_free(&s);
}

Test(ws, handshake_selects_mqttv31)
{
	expect_protocol("mqttv3.1", "mqttv3.1");
}

Test(ws, handshake_picks_mqtt_from_a_list)
{
	expect_protocol("mqtt, other", "mqtt");
	expect_protocol("foo, mqtt", "mqtt");
	expect_protocol("mqttv3.1, mqtt", "mqtt");
}

Test(ws, handshake_case_and_list_forms_of_upgrade_headers)
{
	/* Header names and the Upgrade token are case-insensitive; Connection
	 * is a list [RFC 6455 4.2.1]. */
	const char *req = "GET /mqtt HTTP/1.1\r\n"
	                  "host: b\r\n"
	                  "upgrade: WebSocket\r\n"
	                  "connection: keep-alive, Upgrade\r\n"
	                  "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                  "sec-websocket-protocol: mqtt\r\n"
	                  "sec-websocket-version: 13\r\n\r\n";
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(feed_str(ws, &s, req), WS_OK);
	cr_assert(ws_open(ws));
	cr_assert_eq(s.out_len, strlen(ws_response_mqtt));
	cr_assert_eq(memcmp(s.out, ws_response_mqtt, s.out_len), 0);
	ws_free(ws);
	sink_free(&s);
}

Test(ws, handshake_every_two_part_split)
{
	/* The handshake and a binary frame after it: wherever the read boundary
	 * falls, the answer is the same 101 and the frame's bytes arrive. */
	static const uint8_t mqtt[] = {0x10, 0x0c, 0x00, 0x04, 'M',  'Q',  'T',
	                               'T',  0x04, 0x02, 0x00, 0x3c, 0x00, 0x00};
	struct stream st = {0};
	stream_bytes(&st, ws_request, strlen(ws_request));
	stream_frame(&st, true, OP_BINARY, true, mqtt, sizeof(mqtt));
	size_t head = strlen(ws_request);
	for (size_t k = 1; k < st.len; k++) {
		struct sink s = {0};
		struct ws *ws = ws_new(PATH, MAX_FRAME);
		cr_assert_eq(feed(ws, &s, st.b, k), WS_OK, "split at %zu", k);
		cr_assert_eq(ws_open(ws), k >= head, "split at %zu: open %d", k, ws_open(ws));
		cr_assert_eq(feed(ws, &s, st.b + k, st.len - k), WS_OK, "split at %zu", k);
		cr_assert(ws_open(ws));
		cr_assert_eq(s.out_len, strlen(ws_response_mqtt), "split at %zu", k);
		cr_assert_eq(memcmp(s.out, ws_response_mqtt, s.out_len), 0, "split at %zu", k);
		cr_assert_eq(s.got_len, sizeof(mqtt), "split at %zu: %zu bytes delivered", k,
		             s.got_len);
		cr_assert_eq(memcmp(s.got, mqtt, sizeof(mqtt)), 0, "split at %zu", k);
		cr_assert_not(s.bad_call);
		ws_free(ws);
		sink_free(&s);
	}
	free(st.b);
}

Test(ws, refuse_wrong_path_404)
{
	char *r =
	    request("GET /other HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 404);
	free(r);
}

Test(ws, refuse_post_405)
{
	char *r =
	    request("POST /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 405);
	free(r);
}

Test(ws, refuse_no_upgrade_400)
{
	char *r = request("GET /mqtt HTTP/1.1", NULL, "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 400);
	free(r);
	r = request("GET /mqtt HTTP/1.1", "h2c", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 400);
	free(r);
}

Test(ws, refuse_version_12_400)
{
	char *r =
	    request("GET /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "12");
	expect_refusal(r, 400);
	free(r);
	r = request("GET /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", NULL);
	expect_refusal(r, 400);
	free(r);
}

Test(ws, refuse_missing_or_short_key_400)
{
	char *r = request("GET /mqtt HTTP/1.1", "websocket", NULL, "mqtt", "13");
	expect_refusal(r, 400);
	free(r);
	r = request("GET /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZQ==", "mqtt", "13");
	expect_refusal(r, 400);
	free(r);
}

Test(ws, refuse_no_mqtt_subprotocol_400)
{
	char *r =
	    request("GET /mqtt HTTP/1.1", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", NULL, "13");
	expect_refusal(r, 400);
	free(r);
	r = request("GET /mqtt HTTP/1.1", "websocket",
	            "dGhlIHNhbXBsZSBub25jZQ==", "chat, MQTT, mqttv5", "13");
	expect_refusal(r, 400);
	free(r);
}

Test(ws, refuse_garbage_400)
{
	/* A TLS ClientHello and an MQTT CONNECT on the WebSocket port. */
	expect_refusal("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400);
	expect_refusal("\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c", 400);
}

Test(ws, refuse_head_over_8k_431)
{
	size_t pad = 9000;
	char *r = malloc(pad + 128);
	int o = snprintf(r, pad + 128, "GET /mqtt HTTP/1.1\r\nX-Pad: ");
	memset(r + o, 'p', pad);
	strcpy(r + o + pad, "\r\n\r\n");
	expect_refusal(r, 431);

	/* The same head in 1000-byte reads: NEED_MORE until the bound, then 431. */
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	size_t len = strlen(r), off = 0;
	enum ws_result rc = WS_OK;
	while (off < len && rc == WS_OK) {
		size_t n = len - off < 1000 ? len - off : 1000;
		rc = feed(ws, &s, r + off, n);
		off += n;
	}
	cr_assert_eq(rc, WS_CLOSE);
	cr_assert(out_starts(&s, "HTTP/1.1 431 "));
	cr_assert_not(ws_open(ws));
	ws_free(ws);
	sink_free(&s);
	free(r);
}

Test(ws, refuse_long_path_414)
{
	/* http.h: TOO_LARGE is a target over HTTP_PATH_MAX (414) or a head over
	 * max_head (431); ops.c tells them apart, so must the upgrade. A 300-byte
	 * path in a 400-byte head is a URI too long, not header fields. */
	char line[400];
	char path[301];
	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(line, sizeof(line), "GET %s HTTP/1.1", path);
	char *r = request(line, "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 414);
	free(r);
}

Test(ws, refuse_http10_400)
{
	/* [RFC 6455 4.1, 4.2.1]: the upgrade is an HTTP/1.1 (or higher) GET. */
	char *r =
	    request("GET /mqtt HTTP/1.0", "websocket", "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	expect_refusal(r, 400);
	free(r);
}

Test(ws, upgrade_list_including_websocket_is_accepted)
{
	/* [RFC 6455 4.1]: the Upgrade value "MUST include" the websocket
	 * keyword; Upgrade is a list [RFC 9110 7.8]. */
	char *r = request("GET /mqtt HTTP/1.1", "h2c, websocket",
	                  "dGhlIHNhbXBsZSBub25jZQ==", "mqtt", "13");
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(feed_str(ws, &s, r), WS_OK, "refused: %s", ws_why(ws));
	cr_assert(out_starts(&s, "HTTP/1.1 101 "));
	ws_free(ws);
	sink_free(&s);
	free(r);
}

/* ------------------------------------------------------------------------ */
/* Frames in */

Test(ws, handshake_and_frame_in_one_input)
{
	static const uint8_t mqtt[] = {0xc0, 0x00}; /* PINGREQ */
	struct stream st = {0};
	stream_bytes(&st, ws_request, strlen(ws_request));
	stream_frame(&st, true, OP_BINARY, true, mqtt, sizeof(mqtt));
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert(ws_open(ws));
	cr_assert_eq(s.out_len, strlen(ws_response_mqtt)); /* no frame answers a data frame */
	cr_assert_eq(s.got_len, 2);
	cr_assert_eq(memcmp(s.got, mqtt, 2), 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, fragmented_message_arrives_whole_and_in_order)
{
	/* [MQTT-6.0.0-2]: a packet may span frames; here a PUBLISH in three. */
	uint8_t pkt[300];
	pkt[0] = 0x30;
	pkt[1] = 0xa9; /* remaining length 297 */
	pkt[2] = 0x02;
	for (size_t i = 3; i < sizeof(pkt); i++)
		pkt[i] = (uint8_t)i;
	struct stream st = {0};
	stream_frame(&st, false, OP_BINARY, true, pkt, 1);
	stream_frame(&st, false, OP_CONT, true, pkt + 1, 150);
	stream_frame(&st, true, OP_CONT, true, pkt + 151, sizeof(pkt) - 151);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert_eq(s.got_len, sizeof(pkt));
	cr_assert_eq(memcmp(s.got, pkt, sizeof(pkt)), 0);
	cr_assert_eq(s.out_len, 0);
	cr_assert_not(s.bad_call);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, several_packets_in_one_frame)
{
	/* [MQTT-6.0.0-3]: PINGREQ, SUBSCRIBE, DISCONNECT in one frame. */
	static const uint8_t pkts[] = {0xc0, 0x00, 0x82, 0x08, 0x00, 0x01, 0x00,
	                               0x03, 'a',  '/',  'b',  0x01, 0xe0, 0x00};
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, true, pkts, sizeof(pkts));
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert_eq(s.got_len, sizeof(pkts));
	cr_assert_eq(memcmp(s.got, pkts, sizeof(pkts)), 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

static void payload_of(size_t n)
{
	uint8_t *p = pattern(n, (unsigned)n);
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, true, p, n);
	/* The length form the builder used is the one under test. */
	uint8_t l7 = st.b[1] & 0x7f;
	cr_assert_eq(l7, n <= 125 ? n : n <= 0xffff ? 126 : 127);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, 1 << 20);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert_eq(s.got_len, n, "%zu of %zu bytes delivered", s.got_len, n);
	cr_assert_eq(memcmp(s.got, p, n), 0);
	cr_assert_eq(s.out_len, 0);
	cr_assert_not(s.bad_call);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(p);
}

Test(ws, payload_125_seven_bit_length)
{
	payload_of(125);
}

Test(ws, payload_126_sixteen_bit_length)
{
	payload_of(126);
}

Test(ws, payload_65535_sixteen_bit_length)
{
	payload_of(65535);
}

Test(ws, payload_65536_sixty_four_bit_length)
{
	payload_of(65536);
}

Test(ws, empty_binary_frame_delivers_nothing)
{
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, true, NULL, 0);
	stream_frame(&st, true, OP_BINARY, true, (const uint8_t *)"\xc0\x00", 2);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert_not(s.bad_call, "deliver() was called with no bytes");
	cr_assert_eq(s.got_len, 2);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, text_frame_closes_1003)
{
	/* [MQTT-6.0.0-1] */
	struct stream st = {0};
	stream_frame(&st, true, OP_TEXT, true, (const uint8_t *)"hello", 5);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	cr_assert_eq(only_close(&s), 1003);
	cr_assert_str_neq(ws_why(ws), "?");

	/* Nothing is read after it. */
	struct stream more = {0};
	stream_frame(&more, true, OP_BINARY, true, (const uint8_t *)"\xc0\x00", 2);
	sink_reset_out(&s);
	cr_assert_eq(feed(ws, &s, more.b, more.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	cr_assert_eq(s.out_len, 0);
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_CLOSE);
	cr_assert_eq(s.out_len, 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(more.b);
}

Test(ws, text_frame_after_binary_fragment_closes)
{
	/* A text frame may not start while a binary message is unfinished, and
	 * the binary bytes already received stay the only ones delivered. */
	struct stream st = {0};
	stream_frame(&st, false, OP_BINARY, true, (const uint8_t *)"\x30", 1);
	stream_frame(&st, true, OP_TEXT, true, (const uint8_t *)"x", 1);
	stream_frame(&st, true, OP_CONT, true, (const uint8_t *)"\x00", 1);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 1);
	uint16_t code = only_close(&s);
	cr_assert(code == 1002 || code == 1003, "close code %u", code);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, unmasked_frame_closes_1002)
{
	/* [RFC 6455 5.1]: a server must close on an unmasked client frame. */
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, false, (const uint8_t *)"\xc0\x00", 2);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	cr_assert_eq(only_close(&s), 1002);
	cr_assert_str_neq(ws_why(ws), "?");
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, continuation_without_start_closes_1002)
{
	struct stream st = {0};
	stream_frame(&st, true, OP_CONT, true, (const uint8_t *)"\xc0\x00", 2);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	cr_assert_eq(only_close(&s), 1002);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, frame_over_max_closes_1009)
{
	size_t max = 1000;
	uint8_t *p = pattern(max + 1, 3);
	struct sink s = {0};

	/* Exactly the limit is accepted. */
	struct stream ok = {0};
	stream_frame(&ok, true, OP_BINARY, true, p, max);
	struct ws *ws = open_ws(&s, max);
	cr_assert_eq(feed(ws, &s, ok.b, ok.len), WS_OK);
	cr_assert_eq(s.got_len, max);
	ws_free(ws);
	sink_free(&s);

	/* One byte more is refused before any of it is delivered. */
	struct stream big = {0};
	stream_frame(&big, true, OP_BINARY, true, p, max + 1);
	ws = open_ws(&s, max);
	cr_assert_eq(feed(ws, &s, big.b, big.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0, "%zu bytes of an oversized frame delivered", s.got_len);
	cr_assert_eq(only_close(&s), 1009);
	cr_assert_str_neq(ws_why(ws), "?");
	ws_free(ws);
	sink_free(&s);

	/* 2^40 bytes announced: refused at the header or at the first payload
	 * byte (wslay reports a frame once some payload is in), never read on. */
	static const uint8_t huge[] = {0x82, 0xff, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
	                               0x00, 0x00, 0x37, 0xfa, 0x21, 0x3d, 0x55};
	ws = open_ws(&s, MAX_FRAME);
	enum ws_result rc = feed(ws, &s, huge, sizeof(huge) - 1);
	if (rc == WS_OK) {
		cr_assert_eq(s.out_len, 0);
		rc = feed(ws, &s, huge + sizeof(huge) - 1, 1);
	}
	cr_assert_eq(rc, WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	cr_assert_eq(only_close(&s), 1009);
	ws_free(ws);
	sink_free(&s);
	free(ok.b);
	free(big.b);
	free(p);
}

Test(ws, limit_is_per_frame_not_per_message)
{
	/* ws.h: max_frame_bytes bounds a frame's payload. A message in frames
	 * each under it may total more (the MQTT codec bounds packets). */
	size_t max = 1000;
	uint8_t *p = pattern(3 * max, 5);
	struct stream st = {0};
	stream_frame(&st, false, OP_BINARY, true, p, max);
	stream_frame(&st, false, OP_CONT, true, p + max, max);
	stream_frame(&st, true, OP_CONT, true, p + 2 * max, max);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, max);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK, "refused: %s", ws_why(ws));
	cr_assert_eq(s.got_len, 3 * max);
	cr_assert_eq(memcmp(s.got, p, 3 * max), 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(p);
}

Test(ws, ping_is_answered_with_pong)
{
	static const uint8_t data[] = "are you there?";
	struct stream st = {0};
	stream_frame(&st, true, OP_PING, true, data, sizeof(data) - 1);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert(ws_open(ws));
	cr_assert_eq(s.got_len, 0);
	struct frame fs[4];
	cr_assert_eq(frames_parse(&s, fs, 4), 1);
	cr_assert(fs[0].fin);
	cr_assert_eq(fs[0].opcode, OP_PONG);
	cr_assert_eq(fs[0].len, sizeof(data) - 1);
	cr_assert_eq(memcmp(fs[0].payload, data, sizeof(data) - 1), 0);
	/* Still open: MQTT goes on. */
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_OK);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, oversized_ping_closes)
{
	/* Control frames carry at most 125 bytes [RFC 6455 5.5]. */
	uint8_t *p = pattern(126, 1);
	struct stream st = {0};
	stream_frame(&st, true, OP_PING, true, p, 126);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 0);
	uint16_t code = only_close(&s);
	cr_assert(code == 1002 || code == 0, "close code %u", code);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(p);
}

Test(ws, client_close_is_answered)
{
	static const uint8_t body[] = {0x03, 0xe8, 'b', 'y', 'e'}; /* 1000 "bye" */
	struct stream st = {0};
	stream_frame(&st, true, OP_CLOSE, true, body, sizeof(body));
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(only_close(&s), 1000);
	cr_assert_eq(s.got_len, 0);
	cr_assert_str_neq(ws_why(ws), "?");
	sink_reset_out(&s);
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_CLOSE);
	cr_assert_eq(s.out_len, 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, nothing_is_read_after_the_client_close)
{
	static const uint8_t body[] = {0x03, 0xe8};
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, true, (const uint8_t *)"\xc0\x00", 2);
	stream_frame(&st, true, OP_CLOSE, true, body, sizeof(body));
	stream_frame(&st, true, OP_BINARY, true, (const uint8_t *)"\xe0\x00", 2);
	stream_frame(&st, true, OP_PING, true, (const uint8_t *)"p", 1);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 2);
	cr_assert_eq(memcmp(s.got, "\xc0\x00", 2), 0);
	cr_assert_eq(only_close(&s), 1000); /* no pong after the close */
	sink_reset_out(&s);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(s.got_len, 2);
	cr_assert_eq(s.out_len, 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, client_close_with_bad_code_is_1002)
{
	/* 1005 must never be sent on the wire [RFC 6455 7.4.1]. */
	static const uint8_t body[] = {0x03, 0xed};
	struct stream st = {0};
	stream_frame(&st, true, OP_CLOSE, true, body, sizeof(body));
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_CLOSE);
	cr_assert_eq(only_close(&s), 1002);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

Test(ws, ping_between_fragments)
{
	/* A control frame may come between the fragments of a message
	 * [RFC 6455 5.4]: it is answered and its payload is not MQTT. */
	uint8_t *p = pattern(40, 9);
	struct stream st = {0};
	stream_frame(&st, false, OP_BINARY, true, p, 10);
	stream_frame(&st, true, OP_PING, true, (const uint8_t *)"PINGDATA", 8);
	stream_frame(&st, false, OP_CONT, true, p + 10, 10);
	stream_frame(&st, true, OP_PONG, true, (const uint8_t *)"unsolicited", 11);
	stream_frame(&st, true, OP_CONT, true, p + 20, 20);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(feed(ws, &s, st.b, st.len), WS_OK);
	cr_assert_eq(s.got_len, 40);
	cr_assert_eq(memcmp(s.got, p, 40), 0);
	struct frame fs[4];
	cr_assert_eq(frames_parse(&s, fs, 4), 1);
	cr_assert_eq(fs[0].opcode, OP_PONG);
	cr_assert_eq(fs[0].len, 8);
	cr_assert_eq(memcmp(fs[0].payload, "PINGDATA", 8), 0);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(p);
}

Test(ws, one_byte_at_a_time)
{
	uint8_t *p = pattern(70000, 11);
	struct stream st = {0};
	stream_frame(&st, true, OP_BINARY, true, p, 3);
	stream_frame(&st, false, OP_BINARY, true, p + 3, 200);
	stream_frame(&st, true, OP_PING, true, (const uint8_t *)"pp", 2);
	stream_frame(&st, true, OP_CONT, true, p + 203, 69797);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, 1 << 20);
	for (size_t i = 0; i < st.len; i++)
		cr_assert_eq(feed(ws, &s, st.b + i, 1), WS_OK, "at byte %zu", i);
	cr_assert_eq(s.got_len, 70000);
	cr_assert_eq(memcmp(s.got, p, 70000), 0);
	cr_assert_not(s.bad_call);
	struct frame fs[4];
	cr_assert_eq(frames_parse(&s, fs, 4), 1);
	cr_assert_eq(fs[0].opcode, OP_PONG);
	cr_assert_eq(fs[0].len, 2);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
	free(p);
}

Test(ws, handshake_one_byte_at_a_time)
{
	struct stream st = {0};
	stream_bytes(&st, ws_request, strlen(ws_request));
	stream_frame(&st, true, OP_BINARY, true, (const uint8_t *)"\xc0\x00", 2);
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	for (size_t i = 0; i < st.len; i++)
		cr_assert_eq(feed(ws, &s, st.b + i, 1), WS_OK, "at byte %zu", i);
	cr_assert_eq(s.out_len, strlen(ws_response_mqtt));
	cr_assert_eq(memcmp(s.out, ws_response_mqtt, s.out_len), 0);
	cr_assert_eq(s.got_len, 2);
	ws_free(ws);
	sink_free(&s);
	free(st.b);
}

/* ------------------------------------------------------------------------ */
/* Frames out */

static void send_of(size_t n, uint8_t len_form)
{
	uint8_t *p = pattern(n, 13);
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	cr_assert_eq(ws_send(ws, p, n, on_output, &s), WS_OK);
	struct frame fs[4];
	cr_assert_eq(frames_parse(&s, fs, 4), 1, "one frame for %zu bytes", n);
	cr_assert(fs[0].fin);
	cr_assert_eq(fs[0].opcode, OP_BINARY);
	cr_assert_eq(fs[0].len_form, len_form);
	cr_assert_eq(fs[0].len, n);
	cr_assert_eq(memcmp(fs[0].payload, p, n), 0);
	ws_free(ws);
	sink_free(&s);
	free(p);
}

Test(ws, send_10_bytes)
{
	send_of(10, 7);
}

Test(ws, send_200_bytes)
{
	send_of(200, 16);
}

Test(ws, send_70000_bytes)
{
	send_of(70000, 64);
}

Test(ws, send_before_handshake_is_close)
{
	struct sink s = {0};
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_CLOSE);
	cr_assert_eq(s.out_len, 0);
	/* Half a handshake is not a handshake either. */
	cr_assert_eq(feed(ws, &s, ws_request, 40), WS_OK);
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_CLOSE);
	cr_assert_eq(s.out_len, 0);
	ws_free(ws);
	sink_free(&s);
}

Test(ws, close_1001_then_send_is_close)
{
	struct sink s = {0};
	struct ws *ws = open_ws(&s, MAX_FRAME);
	ws_close(ws, 1001, on_output, &s);
	cr_assert_eq(only_close(&s), 1001);
	sink_reset_out(&s);
	cr_assert_eq(ws_send(ws, (const uint8_t *)"\xd0\x00", 2, on_output, &s), WS_CLOSE);
	cr_assert_eq(s.out_len, 0);
	ws_close(ws, 1000, on_output, &s); /* once only */
	cr_assert_eq(s.out_len, 0);
	ws_free(ws);
	sink_free(&s);
}

Test(ws, free_null_and_unopened)
{
	ws_free(NULL);
	struct ws *ws = ws_new(PATH, MAX_FRAME);
	cr_assert_not_null(ws);
	cr_assert_not(ws_open(ws));
	ws_free(ws);
}
