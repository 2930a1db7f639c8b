/*
 * http_test.c — the ops listener and the WebSocket upgrade read exactly the
 * request a client sent: verb, path and query, version and keep-alive, the
 * upgrade headers; a head is complete at its blank line and never before,
 * whatever follows it; hostile input is INVALID or TOO_LARGE, never a
 * truncated field. And a response head is exactly the bytes we mean.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/http.h"

/* ------------------------------------------------------------------------ */
/* Helpers */

static enum http_parse parse_n(const char *s, size_t n, size_t max_head, struct http_request *r)
{
	/* An exact-size heap copy, so ASan builds see any read past the input. */
	uint8_t *copy = malloc(n ? n : 1);
	memcpy(copy, s, n);
	enum http_parse rc = http_parse_request(copy, n, max_head, r);
	free(copy);
	return rc;
}

static enum http_parse parse(const char *s, struct http_request *r)
{
	return parse_n(s, strlen(s), HTTP_HEAD_MAX, r);
}

static bool all_zero(const struct http_request *r)
{
	const unsigned char *p = (const unsigned char *)r;
	for (size_t i = 0; i < sizeof(*r); i++)
		if (p[i] != 0)
			return false;
	return true;
}

static bool same_request(const struct http_request *a, const struct http_request *b)
{
	return a->verb == b->verb && strcmp(a->path, b->path) == 0 &&
	       strcmp(a->query, b->query) == 0 && a->version_major == b->version_major &&
	       a->version_minor == b->version_minor && a->keep_alive == b->keep_alive &&
	       a->upgrade == b->upgrade && strcmp(a->upgrade_proto, b->upgrade_proto) == 0 &&
	       strcmp(a->ws_key, b->ws_key) == 0 && strcmp(a->ws_protocols, b->ws_protocols) == 0 &&
	       a->ws_version == b->ws_version && a->content_length == b->content_length &&
	       a->head_len == b->head_len && strcmp(a->authorization, b->authorization) == 0;
}

/* "GET <path> HTTP/1.1\r\n\r\n" with a path of n bytes ("/aaa..."). */
static char *long_target(size_t path_len, size_t query_len)
{
	char *s = malloc(path_len + query_len + 64);
	size_t o = (size_t)sprintf(s, "GET /");
	memset(s + o, 'a', path_len - 1);
	o += path_len - 1;
	if (query_len > 0) {
		s[o++] = '?';
		memset(s + o, 'q', query_len);
		o += query_len;
	}
	strcpy(s + o, " HTTP/1.1\r\nHost: x\r\n\r\n");
	return s;
}

/* A request with one header "<name>: <value of n bytes of c>". */
static char *with_header(const char *name, size_t n, char c)
{
	char *s = malloc(n + strlen(name) + 64);
	size_t o = (size_t)sprintf(s, "GET / HTTP/1.1\r\n%s: ", name);
	memset(s + o, c, n);
	o += n;
	strcpy(s + o, "\r\n\r\n");
	return s;
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

/* ------------------------------------------------------------------------ */
/* Requests a client sends */

Test(http, simple_get)
{
	const char *s = "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\nAccept: */*\r\n\r\n";
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_GET);
	cr_assert_str_eq(r.path, "/metrics");
	cr_assert_str_eq(r.query, "");
	cr_assert_eq(r.version_major, 1);
	cr_assert_eq(r.version_minor, 1);
	cr_assert(r.keep_alive);
	cr_assert_not(r.upgrade);
	cr_assert_str_eq(r.upgrade_proto, "");
	cr_assert_str_eq(r.ws_key, "");
	cr_assert_eq(r.ws_version, 0);
	cr_assert_eq(r.content_length, 0);
	cr_assert_eq(r.head_len, strlen(s));
}

Test(http, head_verb)
{
	struct http_request r;
	cr_assert_eq(parse("HEAD /healthz HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_HEAD);
	cr_assert_str_eq(r.path, "/healthz");
	cr_assert_eq(r.head_len, 26);
}

Test(http, post_is_other_and_body_is_left)
{
	const char *s = "POST /readyz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_OTHER);
	cr_assert_str_eq(r.path, "/readyz");
	cr_assert_eq(r.content_length, 5);
	cr_assert_eq(r.head_len, strlen(s) - 5);
	cr_assert_eq(memcmp(s + r.head_len, "hello", 5), 0);
}

Test(http, other_methods_are_other)
{
	const char *const methods[] = {"PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"};
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char s[64];
		snprintf(s, sizeof(s), "%s / HTTP/1.1\r\n\r\n", methods[i]);
		struct http_request r;
		cr_assert_eq(parse(s, &r), HTTP_PARSE_OK, "%s", methods[i]);
		cr_assert_eq(r.verb, HTTP_VERB_OTHER, "%s", methods[i]);
	}
}

Test(http, query_is_split_off)
{
	struct http_request r;
	cr_assert_eq(parse("GET /metrics?name[]=up&x=%20y HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/metrics");
	cr_assert_str_eq(r.query, "name[]=up&x=%20y", "as sent, not decoded");

	cr_assert_eq(parse("GET /a?b#frag HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/a");
	cr_assert_str_eq(r.query, "b");

	cr_assert_eq(parse("GET /a? HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/a");
	cr_assert_str_eq(r.query, "");
}

Test(http, absolute_form_target)
{
	struct http_request r;
	cr_assert_eq(parse("GET http://node1:9100/metrics?a=1 HTTP/1.1\r\n\r\n", &r),
	             HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/metrics");
	cr_assert_str_eq(r.query, "a=1");
	cr_assert_eq(parse("GET http://node1:9100 HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/");
}

Test(http, http10_closes_by_default)
{
	struct http_request r;
	cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.version_major, 1);
	cr_assert_eq(r.version_minor, 0);
	cr_assert_not(r.keep_alive);

	cr_assert_eq(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert(r.keep_alive);
}

Test(http, http11_keeps_alive_unless_close)
{
	struct http_request r;
	cr_assert_eq(parse("GET / HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert(r.keep_alive);
	cr_assert_eq(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_not(r.keep_alive);
	cr_assert_eq(parse("GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_not(r.keep_alive);
}

Test(http, websocket_upgrade_rfc6455)
{
	struct http_request r;
	cr_assert_eq(parse(ws_request, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_GET);
	cr_assert_str_eq(r.path, "/mqtt");
	cr_assert(r.upgrade);
	cr_assert_str_eq(r.upgrade_proto, "websocket");
	cr_assert_str_eq(r.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
	cr_assert_str_eq(r.ws_protocols, "mqtt");
	cr_assert_eq(r.ws_version, 13);
	cr_assert_eq(r.head_len, sizeof(ws_request) - 1);
}

Test(http, header_names_in_odd_case)
{
	const char *s = "GET /mqtt HTTP/1.1\r\n"
	                "uPgRaDe: WebSocket\r\n"
	                "CONNECTION: UPGRADE\r\n"
	                "sec-websocket-KEY: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                "SEC-WEBSOCKET-PROTOCOL: MQTT\r\n"
	                "sEc-WeBsOcKeT-vErSiOn: 13\r\n"
	                "\r\n";
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert(r.upgrade);
	cr_assert_str_eq(r.upgrade_proto, "websocket", "lower-cased");
	cr_assert_str_eq(r.ws_key, "dGhlIHNhbXBsZSBub25jZQ==", "not lower-cased");
	cr_assert_str_eq(r.ws_protocols, "MQTT", "as sent");
	cr_assert_eq(r.ws_version, 13);
}

Test(http, upgrade_needs_both_headers)
{
	struct http_request r;
	cr_assert_eq(parse("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_not(r.upgrade);
	cr_assert_str_eq(r.upgrade_proto, "websocket", "captured all the same");
	cr_assert_eq(parse("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_not(r.upgrade);
	/* Firefox sends a token list. */
	cr_assert_eq(parse("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
	                   "Upgrade: websocket\r\n\r\n",
	                   &r),
	             HTTP_PARSE_OK);
	cr_assert(r.upgrade);
	cr_assert(r.keep_alive);
	/* The library counts CONNECT as an upgrade; we do not. */
	cr_assert_eq(parse("CONNECT node1:1883 HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_OTHER);
	cr_assert_not(r.upgrade);
	cr_assert_str_eq(r.path, "node1:1883");
}

Test(http, websocket_values_trimmed_joined_and_unfolded)
{
	const char *s = "GET / HTTP/1.1\r\n"
	                "Sec-WebSocket-Key: \t dGhlIHNhbXBsZSBub25jZQ== \t\r\n"
	                "Sec-WebSocket-Protocol: mqtt ,  mqttv3.1  \r\n"
	                "Sec-WebSocket-Protocol:\r\n"
	                "Sec-WebSocket-Protocol: x,\r\n"
	                "   y\r\n"
	                "Upgrade: WebSocket\r\n"
	                "Upgrade: H2C\r\n"
	                "\r\n";
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
	cr_assert_str_eq(r.ws_protocols, "mqtt ,  mqttv3.1, x, y");
	cr_assert_str_eq(r.upgrade_proto, "websocket, h2c");
}

Test(http, websocket_version_values)
{
	struct http_request r;
	const struct {
		const char *value;
		uint8_t want;
	} cases[] = {{"13", 13}, {"8", 8}, {"255", 255}, {"256", 0}, {"abc", 0},
	             {"1 3", 0}, {"0", 0}, {"-1", 0},    {"", 0}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char s[128];
		snprintf(s, sizeof(s), "GET / HTTP/1.1\r\nSec-WebSocket-Version: %s\r\n\r\n",
		         cases[i].value);
		cr_assert_eq(parse(s, &r), HTTP_PARSE_OK, "\"%s\"", cases[i].value);
		cr_assert_eq(r.ws_version, cases[i].want, "\"%s\"", cases[i].value);
	}
	cr_assert_eq(parse("GET / HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.ws_version, 0, "absent");
}

Test(http, bare_lf_and_leading_empty_lines)
{
	struct http_request r;
	cr_assert_eq(parse("GET /a HTTP/1.1\nHost: x\n\nrest", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.head_len, 25);
	cr_assert_str_eq(r.path, "/a");
	/* RFC 7230 3.5: ignore an empty line before the request line. */
	cr_assert_eq(parse("\r\nGET /b HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/b");
	cr_assert_eq(r.head_len, 21);
}

Test(http, chunked_body_is_left_to_the_caller)
{
	const char *head = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
	char s[128];
	snprintf(s, sizeof(s), "%s5\r\nhello\r\n0\r\n\r\n", head);
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.content_length, 0);
	cr_assert_eq(r.head_len, strlen(head));
}

/* ------------------------------------------------------------------------ */
/* Where a head ends */

Test(http, every_split_point)
{
	const size_t n = sizeof(ws_request) - 1;
	struct http_request whole, r;
	cr_assert_eq(parse(ws_request, &whole), HTTP_PARSE_OK);
	for (size_t k = 0; k < n; k++) {
		cr_assert_eq(parse_n(ws_request, k, HTTP_HEAD_MAX, &r), HTTP_PARSE_NEED_MORE,
		             "prefix of %zu bytes", k);
		cr_assert(all_zero(&r), "prefix of %zu bytes leaves fields", k);
	}
	/* Complete, then complete whatever follows. */
	char longer[sizeof(ws_request) + 16];
	memcpy(longer, ws_request, n);
	memcpy(longer + n, "GET / HTTP/1.1\r\n", 16);
	for (size_t k = n; k <= sizeof(longer); k++) {
		cr_assert_eq(parse_n(longer, k, HTTP_HEAD_MAX, &r), HTTP_PARSE_OK, "%zu bytes", k);
		cr_assert(same_request(&r, &whole), "%zu bytes", k);
	}
}

Test(http, pipelined_request_left_after_head)
{
	const char *first = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
	const char *second = "HEAD /readyz HTTP/1.1\r\nHost: a\r\n\r\n";
	char s[128];
	snprintf(s, sizeof(s), "%s%s", first, second);
	struct http_request r;
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.path, "/healthz");
	cr_assert_eq(r.head_len, strlen(first));

	cr_assert_eq(parse_n(s + r.head_len, strlen(second), HTTP_HEAD_MAX, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.verb, HTTP_VERB_HEAD);
	cr_assert_str_eq(r.path, "/readyz");
	cr_assert_eq(r.head_len, strlen(second));
}

Test(http, garbage_after_head_does_not_matter)
{
	const char *head = "GET / HTTP/1.1\r\n\r\n";
	char s[64];
	memcpy(s, head, strlen(head));
	memcpy(s + strlen(head), "\0\x16\x03\xff\r\n\r\n", 8);
	struct http_request r;
	cr_assert_eq(parse_n(s, strlen(head) + 8, HTTP_HEAD_MAX, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.head_len, strlen(head));
}

/* ------------------------------------------------------------------------ */
/* Limits */

Test(http, head_over_max_head_is_too_large)
{
	/* An uncaptured header of 9000 bytes: ignored within max_head, too
	 * large beyond it. */
	char *s = with_header("X-Padding", 9000, 'p');
	size_t n = strlen(s);
	struct http_request r;
	cr_assert_eq(parse_n(s, n, HTTP_HEAD_MAX, &r), HTTP_PARSE_TOO_LARGE);
	cr_assert(all_zero(&r));
	cr_assert_eq(parse_n(s, HTTP_HEAD_MAX - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_NEED_MORE);
	cr_assert_eq(parse_n(s, HTTP_HEAD_MAX, HTTP_HEAD_MAX, &r), HTTP_PARSE_TOO_LARGE);
	cr_assert_eq(parse_n(s, n, 16384, &r), HTTP_PARSE_OK);
	cr_assert_eq(r.head_len, n);
	free(s);
}

Test(http, max_head_boundary_is_inclusive)
{
	const char *s = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t n = strlen(s);
	struct http_request r;
	cr_assert_eq(parse_n(s, n, n, &r), HTTP_PARSE_OK, "a head of exactly max_head bytes");
	cr_assert_eq(r.head_len, n);
	cr_assert_eq(parse_n(s, n, n - 1, &r), HTTP_PARSE_TOO_LARGE);
	cr_assert_eq(parse_n(s, n - 2, n - 1, &r), HTTP_PARSE_NEED_MORE);
	cr_assert_eq(parse_n(s, 0, HTTP_HEAD_MAX, &r), HTTP_PARSE_NEED_MORE, "nothing yet");
	cr_assert_eq(parse_n(s, 0, 0, &r), HTTP_PARSE_TOO_LARGE);
}

Test(http, path_of_255_fits_256_is_too_large)
{
	struct http_request r;
	char *s = long_target(255, 0);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(strlen(r.path), 255);
	free(s);
	s = long_target(256, 0);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_TOO_LARGE);
	cr_assert(all_zero(&r));
	free(s);
	/* Far beyond: the raw target buffer stops it while it is read. */
	s = long_target(4000, 0);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_TOO_LARGE);
	free(s);
}

Test(http, query_of_256_is_too_large)
{
	struct http_request r;
	char *s = long_target(10, 255);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(strlen(r.query), 255);
	free(s);
	s = long_target(10, 256);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_TOO_LARGE);
	free(s);
}

Test(http, overlong_captured_header_is_invalid)
{
	const struct {
		const char *name;
		size_t fits; /* longest value that fits */
	} cases[] = {{"Sec-WebSocket-Key", 63},
	             {"Sec-WebSocket-Protocol", 127},
	             {"Upgrade", 31},
	             {"Sec-WebSocket-Version", 7}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_request r;
		char *s = with_header(cases[i].name, cases[i].fits, '1');
		cr_assert_eq(parse(s, &r), HTTP_PARSE_OK, "%s", cases[i].name);
		free(s);
		s = with_header(cases[i].name, cases[i].fits + 1, '1');
		cr_assert_eq(parse(s, &r), HTTP_PARSE_INVALID, "%s", cases[i].name);
		cr_assert(all_zero(&r));
		free(s);
	}
}

Test(http, uncaptured_headers_any_size)
{
	struct http_request r;
	char *s = with_header("Cookie", 7000, 'c');
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	free(s);
	/* A long name is not one of ours, even with a captured name inside. */
	s = with_header("Sec-WebSocket-Key-And-Then-Some-More-Bytes", 100, 'k');
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.ws_key, "");
	free(s);
}

Test(http, content_length_bounds)
{
	struct http_request r;
	cr_assert_eq(parse("POST / HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\n", &r),
	             HTTP_PARSE_OK);
	cr_assert_eq(r.content_length, UINT32_MAX);
	cr_assert_eq(parse("POST / HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n", &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &r),
	             HTTP_PARSE_INVALID);
}

/* ------------------------------------------------------------------------ */
/* Hostile input */

Test(http, garbage_is_invalid)
{
	const char *const cases[] = {
	    "hello world\r\n\r\n",
	    "get / HTTP/1.1\r\n\r\n", /* methods are case-sensitive */
	    "GET  HTTP/1.1\r\n\r\n",  /* no target */
	    "GET / HTTP/1.1 x\r\n\r\n",
	    "GET / FTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
	    "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
	    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
	    "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c",         /* an MQTT CONNECT */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_request r;
		cr_assert_eq(parse(cases[i], &r), HTTP_PARSE_INVALID, "case %zu", i);
		cr_assert(all_zero(&r));
	}
}

Test(http, only_http1_versions)
{
	struct http_request r;
	cr_assert_eq(parse("GET /\r\n\r\n", &r), HTTP_PARSE_INVALID, "HTTP/0.9");
	cr_assert_eq(parse("GET / HTTP/2.0\r\n\r\n", &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse("GET / HTTP/0.9\r\n\r\n", &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse("GET / HTTP/1.10\r\n\r\n", &r), HTTP_PARSE_INVALID);
	/* Refused at the end of the head: a request after it must not rescue it. */
	cr_assert_eq(parse("GET /\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n", &r), HTTP_PARSE_INVALID);
	cr_assert(all_zero(&r));
	cr_assert_eq(parse("GET / HTTP/1.9\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_eq(r.version_minor, 9);
}

Test(http, nul_and_control_bytes_are_invalid)
{
	static const char in_value[] = "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n";
	static const char in_name[] = "GET / HTTP/1.1\r\nX\0A: ab\r\n\r\n";
	static const char in_path[] = "GET /a\0b HTTP/1.1\r\n\r\n";
	static const char in_key[] = "GET / HTTP/1.1\r\nSec-WebSocket-Key: a\0b\r\n\r\n";
	static const char first[] = "\0GET / HTTP/1.1\r\n\r\n";
	/* A NUL opening a value: the library lets it through (found by fuzz_http). */
	static const char value_first[] = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n"
	                                  "Upgrade:\0\t h2c\r\n\r\n";
	static const char other_first[] = "GET / HTTP/1.1\r\nX-A:\0b\r\n\r\n";
	static const char ctl[] = "GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n";
	static const char del[] = "GET / HTTP/1.1\r\nUpgrade: a\x7f\r\n\r\n";
	struct http_request r;
	cr_assert_eq(parse_n(value_first, sizeof(value_first) - 1, HTTP_HEAD_MAX, &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(other_first, sizeof(other_first) - 1, HTTP_HEAD_MAX, &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(ctl, sizeof(ctl) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(del, sizeof(del) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(in_value, sizeof(in_value) - 1, HTTP_HEAD_MAX, &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(in_name, sizeof(in_name) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(in_path, sizeof(in_path) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(in_key, sizeof(in_key) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
	cr_assert_eq(parse_n(first, sizeof(first) - 1, HTTP_HEAD_MAX, &r), HTTP_PARSE_INVALID);
}

Test(http, repeated_single_websocket_headers_are_invalid)
{
	struct http_request r;
	cr_assert_eq(
	    parse("GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\nSec-WebSocket-Key: b\r\n\r\n", &r),
	    HTTP_PARSE_INVALID);
	cr_assert_eq(parse("GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n"
	                   "sec-websocket-version: 13\r\n\r\n",
	                   &r),
	             HTTP_PARSE_INVALID);
}

/* The ops listener's /metrics credentials: captured as sent and trimmed; as
 * long as the head allows (so the WebSocket listener, which ignores them,
 * refuses no long token); a second one is joined, never chosen over the
 * first. */
Test(http, authorization_is_captured)
{
	struct http_request r;
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nauthorization:  Bearer s3cr=t \r\n\r\n", &r),
	             HTTP_PARSE_OK);
	cr_assert_str_eq(r.authorization, "Bearer s3cr=t");
	cr_assert_eq(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), HTTP_PARSE_OK);
	cr_assert_str_eq(r.authorization, "");
	cr_assert_eq(parse("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\n"
	                   "Authorization: Bearer b\r\n\r\n",
	                   &r),
	             HTTP_PARSE_OK);
	cr_assert_str_eq(r.authorization, "Bearer a, Bearer b");
	/* The longest value a head of HTTP_HEAD_MAX holds. */
	size_t n = HTTP_HEAD_MAX - strlen("GET / HTTP/1.1\r\nAuthorization: \r\n\r\n");
	char *s = with_header("Authorization", n, 'x');
	cr_assert_eq(strlen(s), HTTP_HEAD_MAX);
	cr_assert_eq(parse(s, &r), HTTP_PARSE_OK);
	cr_assert_eq(strlen(r.authorization), n);
	free(s);
}

Test(http, request_smuggling_shapes_are_invalid)
{
	struct http_request r;
	cr_assert_eq(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\n"
	                   "Transfer-Encoding: chunked\r\n\r\n",
	                   &r),
	             HTTP_PARSE_INVALID);
	cr_assert_eq(parse("GET / HTTP/1.1\r\nHost : x\r\n\r\n", &r), HTTP_PARSE_INVALID,
	             "space before the colon [RFC 7230 3.2.4]");
}

Test(http, bare_cr_is_invalid)
{
	const char *const cases[] = {
	    "GET / HTTP/1.1\r\n\rX",  /* the library alone would end the head at X */
	    "GET / HTTP/1.1\r\n\r\r", /* or at the second CR */
	    "GET / HTTP/1.1\r\nA: b\rC: d\r\n\r\n",
	    "GET / HTTP/1.1\rA: b\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_request r;
		cr_assert_eq(parse(cases[i], &r), HTTP_PARSE_INVALID, "case %zu", i);
		cr_assert(all_zero(&r));
	}
}

Test(http, refusal_at_end_of_head_is_final)
{
	/* Checks made when the head is complete; what follows must not be
	 * parsed as a second request that rescues the first. */
	const char *next = "GET / HTTP/1.1\r\n\r\n";
	char *path = long_target(256, 0);
	const struct {
		const char *head;
		enum http_parse want;
	} cases[] = {
	    {"GET / HTTP/2.0\r\n\r\n", HTTP_PARSE_INVALID},
	    {"POST / HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n", HTTP_PARSE_INVALID},
	    {path, HTTP_PARSE_TOO_LARGE},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char s[1024];
		snprintf(s, sizeof(s), "%s%s", cases[i].head, next);
		struct http_request r;
		cr_assert_eq(parse(s, &r), cases[i].want, "case %zu", i);
		cr_assert(all_zero(&r));
	}
	free(path);
}

Test(http, failure_zeroes_the_request)
{
	struct http_request r;
	memset(&r, 0xAA, sizeof(r));
	cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: x\r\n", &r), HTTP_PARSE_NEED_MORE);
	cr_assert(all_zero(&r));
	memset(&r, 0xAA, sizeof(r));
	cr_assert_eq(parse("GET / HTTP/2.0\r\nUpgrade: websocket\r\n\r\n", &r), HTTP_PARSE_INVALID);
	cr_assert(all_zero(&r));
}

/* ------------------------------------------------------------------------ */
/* Responses */

Test(http, format_head_exact_bytes)
{
	static const char want[] = "HTTP/1.1 200 OK\r\n"
	                           "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
	                           "Content-Length: 1234\r\n"
	                           "Connection: close\r\n"
	                           "\r\n";
	char buf[256];
	memset(buf, 'x', sizeof(buf));
	size_t n = http_format_head(buf, sizeof(buf), 200,
	                            "text/plain; version=0.0.4; charset=utf-8", 1234);
	cr_assert_eq(n, sizeof(want) - 1);
	cr_assert_arr_eq(buf, want, n);
	cr_assert_eq(buf[n], 'x', "no byte past the head is written");
}

Test(http, format_head_special_codes)
{
	char buf[256];
	size_t n = http_format_head(buf, sizeof(buf), 404, NULL, 0);
	static const char want404[] =
	    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
	cr_assert_eq(n, sizeof(want404) - 1);
	cr_assert_arr_eq(buf, want404, n);

	n = http_format_head(buf, sizeof(buf), 405, "text/plain", 19);
	static const char want405[] =
	    "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\n"
	    "Content-Length: 19\r\nAllow: GET, HEAD\r\n"
	    "Connection: close\r\n\r\n";
	cr_assert_eq(n, sizeof(want405) - 1);
	cr_assert_arr_eq(buf, want405, n);

	n = http_format_head(buf, sizeof(buf), 204, "text/plain", 0);
	static const char want204[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
	cr_assert_eq(n, sizeof(want204) - 1);
	cr_assert_arr_eq(buf, want204, n);

	n = http_format_head(buf, sizeof(buf), 431, "text/plain", 0);
	static const char want431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
	                              "Content-Type: text/plain\r\nContent-Length: 0\r\n"
	                              "Connection: close\r\n\r\n";
	cr_assert_eq(n, sizeof(want431) - 1);
	cr_assert_arr_eq(buf, want431, n);
}

Test(http, format_head_too_small_is_zero)
{
	char buf[256];
	size_t need = http_format_head(buf, sizeof(buf), 503, "text/plain", 42);
	cr_assert_gt(need, 0);
	char exact[256];
	cr_assert_eq(http_format_head(exact, need, 503, "text/plain", 42), need, "no NUL needed");
	cr_assert_arr_eq(exact, buf, need);
	for (size_t cap = 0; cap < need; cap++)
		cr_assert_eq(http_format_head(exact, cap, 503, "text/plain", 42), 0, "cap %zu",
		             cap);
	cr_assert_eq(http_format_head(NULL, 0, 200, NULL, 0), 0);
}

Test(http, reasons)
{
	const struct {
		int code;
		const char *reason;
	} cases[] = {{200, "OK"},
	             {204, "No Content"},
	             {400, "Bad Request"},
	             {401, "Unauthorized"},
	             {404, "Not Found"},
	             {405, "Method Not Allowed"},
	             {414, "URI Too Long"},
	             {431, "Request Header Fields Too Large"},
	             {500, "Internal Server Error"},
	             {503, "Service Unavailable"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		cr_assert_str_eq(http_reason(cases[i].code), cases[i].reason);
	cr_assert_null(http_reason(302));
	cr_assert_null(http_reason(0));
	cr_assert_null(http_reason(-1));
}
