/*
 * http.h — one HTTP/1.x request head read from untrusted bytes, and the head
 * of a response. Used by the ops listener (/metrics, /healthz, /readyz) and,
 * later, the WebSocket upgrade [RFC 6455 4.2.1], so it captures the headers
 * that needs as well.
 *
 * Pure: no I/O, no allocation, no globals; any thread may call it. The
 * parser does not keep state between calls: the caller accumulates the bytes
 * of a connection and calls http_parse_request() again on the whole prefix
 * (heads are small, a reparse costs less than the bookkeeping it saves),
 * nginx-style OK / NEED_MORE / INVALID.
 */
#ifndef STARLING_CORE_HTTP_H
#define STARLING_CORE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_parse {
	HTTP_PARSE_NEED_MORE, /* a valid prefix of a head: read more and call again */
	HTTP_PARSE_OK,        /* a whole head; *out is filled in */
	HTTP_PARSE_INVALID,   /* not an HTTP/1.x request: answer 400 and close */
	HTTP_PARSE_TOO_LARGE, /* target over HTTP_PATH_MAX (414) or head over max_head (431) */
};

enum http_verb {
	HTTP_VERB_OTHER = 0, /* any other valid method: the ops listener answers 405 */
	HTTP_VERB_GET,
	HTTP_VERB_HEAD,
};

#define HTTP_PATH_MAX 256  /* bytes of path or query, NUL included; longer: TOO_LARGE (414) */
#define HTTP_HEAD_MAX 8192 /* default bound on a request head, in bytes */
/* Bytes of Authorization, NUL included: a whole head's worth, so with a
 * max_head of at most HTTP_HEAD_MAX no Authorization is refused for its
 * size (the WebSocket listener does not use it and must not start to
 * refuse long bearer tokens). */
#define HTTP_AUTH_MAX HTTP_HEAD_MAX

/* A parsed request head. Strings are NUL-terminated copies, never views into
 * the caller's buffer; the target is as sent (not percent-decoded). */
struct http_request {
	enum http_verb verb;
	char path[HTTP_PATH_MAX];  /* target without query or fragment; absolute-form
	                              "http://h/p" gives "/p", "http://h" gives "/" */
	char query[HTTP_PATH_MAX]; /* after '?', without '#...'; "" if none */
	uint8_t version_major;     /* always 1: other versions are INVALID */
	uint8_t version_minor;     /* 0..9 */
	bool keep_alive;           /* http_should_keep_alive(): version and Connection */
	bool upgrade;              /* Connection: upgrade together with an Upgrade header */
	char upgrade_proto[32];    /* Upgrade value, lower-cased ("websocket"); repeats
	                              joined with ", " */
	char ws_key[64];           /* Sec-WebSocket-Key, surrounding whitespace trimmed */
	char ws_protocols[128];    /* Sec-WebSocket-Protocol as sent; repeats joined ", " */
	uint8_t ws_version;        /* Sec-WebSocket-Version 1..255, 0 if absent/invalid */
	uint32_t content_length;   /* Content-Length in bytes, 0 if absent (or chunked) */
	size_t head_len;           /* bytes of the head, through the blank line's LF */

	/* Authorization as sent ("Bearer ..."), "" if none: /metrics credentials.
	 * Repeats are joined with ", ", which matches no credential. */
	char authorization[HTTP_AUTH_MAX];
};

/*
 * Parse the request head at the front of buf[0..len). Stops at the end of
 * the head: a body or pipelined bytes after head_len are left to the caller,
 * and never change the result. max_head bounds the head: once len >= max_head
 * without a complete head in the first max_head bytes, NEED_MORE becomes
 * TOO_LARGE (so head_len <= max_head).
 *
 * Header names are case-insensitive. A header value that we capture and that
 * does not fit its field is INVALID, never silently truncated; so is a second
 * Sec-WebSocket-Key or Sec-WebSocket-Version [RFC 6455 11.3.1, 11.3.5], a
 * Content-Length over UINT32_MAX, a Content-Length together with
 * Transfer-Encoding, a NUL or other control byte, an unknown method and any
 * version but HTTP/1.x. Values we do not capture are skipped whatever their
 * size (within max_head). obs-fold in a captured value becomes one SP
 * [RFC 7230 3.2.4].
 *
 * On any result but OK, *out is all zeroes.
 */
enum http_parse http_parse_request(const uint8_t *buf, size_t len, size_t max_head,
                                   struct http_request *out);

/*
 * The head of a response, into buf[0..cap):
 *   "HTTP/1.1 <code> <reason>\r\nContent-Type: <type>\r\nContent-Length: <n>\r\n"
 *   "Connection: close\r\n\r\n"
 * Content-Type is left out when content_type is NULL; a 405 also carries
 * "Allow: GET, HEAD" [RFC 9110 15.5.6]; a 204 carries neither Content-Type
 * nor Content-Length [RFC 9110 8.6]. Returns the bytes written (no NUL is
 * added), 0 if they do not fit in cap. code must be one of
 * 200 204 400 401 404 405 414 431 500 503 (a 401's caller adds its own
 * WWW-Authenticate [RFC 9110 11.6.1]) and content_type must not hold CR or LF
 * (both asserted: they are programmer errors, not input).
 */
size_t http_format_head(char *buf, size_t cap, int code, const char *content_type,
                        size_t content_length);

/* "OK", "Not Found", ... for the codes above; NULL for any other code. */
const char *http_reason(int code);

#endif
