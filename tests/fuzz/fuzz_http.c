/*
 * fuzz_http.c — libFuzzer target over http_parse_request().
 *
 * Input: the bytes a client sends to the ops listener, as is (so seeds are
 * plain requests). Each input is parsed with several max_head bounds and
 * must keep the parser's promises:
 *   - OK: head_len <= len and <= max_head, the head ends with LF; every
 *     string field is NUL-terminated inside its array, holds no CR or LF and
 *     captured values have no surrounding whitespace; the version is 1.x;
 *     every shorter prefix is NEED_MORE, and the head alone or the input
 *     with more bytes appended parses to the same request.
 *   - NEED_MORE: every prefix is NEED_MORE too.
 *   - INVALID / TOO_LARGE: appending bytes never undoes the error.
 *   - anything but OK leaves the struct zeroed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_http: " __VA_ARGS__);                                \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define PREFIXES_MAX 64 /* prefixes tried per input beyond the last one */

static const char *const names[] = {"NEED_MORE", "OK", "INVALID", "TOO_LARGE"};

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
	       a->head_len == b->head_len;
}

/* A string field: terminated inside its array, no line breaks. */
static void check_string(const char *what, const char *s, size_t cap, bool trimmed)
{
	const char *nul = memchr(s, '\0', cap);
	FUZZ_CHECK(nul != NULL, "%s is not NUL-terminated", what);
	size_t n = (size_t)(nul - s);
	FUZZ_CHECK(memchr(s, '\r', n) == NULL && memchr(s, '\n', n) == NULL, "%s holds CR or LF",
	           what);
	if (trimmed && n > 0) {
		FUZZ_CHECK(s[0] != ' ' && s[0] != '\t', "%s has leading whitespace", what);
		FUZZ_CHECK(s[n - 1] != ' ' && s[n - 1] != '\t', "%s has trailing whitespace", what);
	}
}

static void check_request(const struct http_request *r, const uint8_t *data, size_t size,
                          size_t max_head)
{
	FUZZ_CHECK(r->head_len > 0 && r->head_len <= size && r->head_len <= max_head,
	           "head_len %zu, len %zu, max_head %zu", r->head_len, size, max_head);
	FUZZ_CHECK(data[r->head_len - 1] == '\n', "head ends with 0x%02x", data[r->head_len - 1]);
	FUZZ_CHECK(r->verb <= HTTP_VERB_HEAD, "verb %d", (int)r->verb);
	FUZZ_CHECK(r->version_major == 1 && r->version_minor <= 9, "version %u.%u",
	           r->version_major, r->version_minor);
	check_string("path", r->path, sizeof(r->path), false);
	FUZZ_CHECK(strlen(r->path) > 0 && strlen(r->path) < HTTP_PATH_MAX, "path length %zu",
	           strlen(r->path));
	check_string("query", r->query, sizeof(r->query), false);
	check_string("upgrade_proto", r->upgrade_proto, sizeof(r->upgrade_proto), true);
	check_string("ws_key", r->ws_key, sizeof(r->ws_key), true);
	check_string("ws_protocols", r->ws_protocols, sizeof(r->ws_protocols), true);
	for (const char *c = r->upgrade_proto; *c; c++)
		FUZZ_CHECK(*c < 'A' || *c > 'Z', "upgrade_proto \"%s\" not lower-cased",
		           r->upgrade_proto);
}

static enum http_parse parse(const uint8_t *data, size_t n, size_t max_head, struct http_request *r)
{
	enum http_parse rc = http_parse_request(data, n, max_head, r);
	FUZZ_CHECK(rc <= HTTP_PARSE_TOO_LARGE, "result %d", (int)rc);
	if (rc != HTTP_PARSE_OK)
		FUZZ_CHECK(all_zero(r), "%s left fields set", names[rc]);
	return rc;
}

/* The input with more bytes after it: a pipelined request and some junk. */
static enum http_parse parse_extended(const uint8_t *data, size_t size, size_t max_head,
                                      struct http_request *r)
{
	static const char more[] = "GET /next HTTP/1.1\r\n\r\n\0\xff\r\n\r\n";
	uint8_t *buf = malloc(size + sizeof(more));
	if (size > 0)
		memcpy(buf, data, size);
	memcpy(buf + size, more, sizeof(more));
	enum http_parse rc = parse(buf, size + sizeof(more), max_head, r);
	if (rc == HTTP_PARSE_OK)
		check_request(r, buf, size + sizeof(more), max_head);
	free(buf);
	return rc;
}

static void check_prefix(const uint8_t *data, size_t k, size_t max_head, size_t size,
                         enum http_parse whole)
{
	struct http_request r;
	enum http_parse p = parse(data, k, max_head, &r);
	FUZZ_CHECK(p == HTTP_PARSE_NEED_MORE, "prefix of %zu bytes is %s, %zu bytes are %s", k,
	           names[p], size, names[whole]);
}

static void one(const uint8_t *data, size_t size, size_t max_head)
{
	struct http_request r, again;
	enum http_parse rc = parse(data, size, max_head, &r);

	if (rc == HTTP_PARSE_OK) {
		check_request(&r, data, size, max_head);
		FUZZ_CHECK(parse(data, r.head_len, max_head, &again) == HTTP_PARSE_OK &&
		               same_request(&r, &again),
		           "the head alone (%zu bytes) parses differently", r.head_len);
		FUZZ_CHECK(parse_extended(data, size, max_head, &again) == HTTP_PARSE_OK &&
		               same_request(&r, &again),
		           "more bytes after the input change the request");
	} else if (rc == HTTP_PARSE_INVALID || rc == HTTP_PARSE_TOO_LARGE) {
		enum http_parse ext = parse_extended(data, size, max_head, &again);
		FUZZ_CHECK(ext == rc, "%s became %s with more bytes", names[rc], names[ext]);
	}

	/* Prefixes: every one under PREFIXES_MAX bytes, an even sample beyond. */
	if (rc != HTTP_PARSE_OK && rc != HTTP_PARSE_NEED_MORE)
		return;
	size_t end = rc == HTTP_PARSE_OK ? r.head_len : size;
	size_t step = end / PREFIXES_MAX + 1;
	for (size_t k = 0; k < end; k += step)
		check_prefix(data, k, max_head, size, rc);
	if (end > 0)
		check_prefix(data, end - 1, max_head, size, rc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The default bound, one that cuts most heads, and none in practice. */
	static const size_t max_heads[] = {HTTP_HEAD_MAX, 48, 1 << 20};
	for (size_t i = 0; i < sizeof(max_heads) / sizeof(max_heads[0]); i++)
		one(data, size, max_heads[i]);
	return 0;
}
