/*
 * http.c — owns reading one request head with Debian's libhttp-parser
 * (nodejs http-parser 2.9) and writing a response head. Pure and
 * reentrant: all state lives in one struct parse on the caller's stack, the
 * settings table is const, and the library's only global (its header size
 * limit) is never written, so any thread may call it.
 *
 * The library parses whole messages; we want the head only. In 2.9, a
 * request's on_headers_complete returning 1 means "no body" (it is meant for
 * responses to HEAD), not "stop", so instead it pauses the parser:
 * http_parser_execute() then returns at once with HPE_PAUSED and the offset
 * of the LF that ends the blank line, which makes head_len that offset + 1.
 * No byte after the head is ever parsed, so a body or a pipelined request
 * never changes the result.
 *
 * Debian builds the library without HTTP_PARSER_STRICT, which is lax in two
 * ways that matter to a server: SP is allowed inside header names, and the
 * CR of the blank line may be followed by any byte. Both are refused here
 * [RFC 7230 3.2.4; RFC 9112 2.2: a bare CR makes the element invalid].
 *
 * Callbacks copy into the caller's struct http_request as they go. The
 * library may hand over a name or value in several fragments: names are
 * accumulated in a small buffer before they are matched, values are
 * appended byte by byte to the field the name picked. All bytes handed to
 * us in one call lie in the caller's buffer, so a value fragment that does
 * not start where the previous one ended means an obs-fold was skipped.
 *
 * Invariants: every string written stays below its field's size, so the
 * zeroed tail is its NUL; head_len <= min(len, max_head) on OK; any other
 * result leaves *out zeroed.
 */
#include "transport/http.h"

#include <assert.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Pausing in on_headers_complete and the offset it returns are 2.9 details. */
_Static_assert(HTTP_PARSER_VERSION_MAJOR == 2 && HTTP_PARSER_VERSION_MINOR >= 9,
               "http.c relies on http-parser 2.9 pause semantics");

#define NAME_MAX_BYTES    32                  /* longer names cannot be one we capture */
#define VERSION_MAX_BYTES 8                   /* Sec-WebSocket-Version digits, NUL included */
#define TARGET_MAX_BYTES  (2 * HTTP_PATH_MAX) /* raw request target: path, query, host */

/* The headers we capture. Bits of struct parse.seen. */
enum hdr {
	HDR_NONE,
	HDR_UPGRADE,
	HDR_WS_KEY,
	HDR_WS_PROTOCOL,
	HDR_WS_VERSION,
	HDR_AUTHORIZATION,
	HDR_COUNT,
};

static const struct {
	const char *name;
	bool repeat; /* a list header: repeats are joined with ", " [RFC 7230 3.2.2] */
} hdr_info[HDR_COUNT] = {
    [HDR_UPGRADE] = {"upgrade", true},
    [HDR_WS_KEY] = {"sec-websocket-key", false},
    [HDR_WS_PROTOCOL] = {"sec-websocket-protocol", true},
    [HDR_WS_VERSION] = {"sec-websocket-version", false},
    /* A singleton field [RFC 9110 11.6.2], but refusing a second one would
     * change what the WebSocket listener accepts; joined, it authenticates
     * nobody. */
    [HDR_AUTHORIZATION] = {"authorization", true},
};

/* One call's state; p.data points here. */
struct parse {
	struct http_request *out;
	bool failed;          /* a callback stopped the parser; result holds why */
	enum http_parse fail; /* INVALID or TOO_LARGE */
	bool done;            /* on_headers_complete ran and paused the parser */

	char target[TARGET_MAX_BYTES]; /* the raw request target, split at the end */
	size_t target_len;

	char name[NAME_MAX_BYTES]; /* current header name, not NUL-terminated */
	size_t name_len;
	bool name_long; /* name over NAME_MAX_BYTES: not one of ours */
	bool in_value;  /* the last header callback was a value: a name starts anew */

	enum hdr cur;                    /* header whose value is arriving; HDR_NONE = skip */
	unsigned seen;                   /* 1 << enum hdr for each header met so far */
	const char *value_end;           /* where the previous value fragment ended */
	size_t occ_len;                  /* bytes this occurrence has contributed */
	const char *ws_at;               /* held whitespace run: emitted only if more follows */
	size_t ws_len;                   /* its length; 0 = none held */
	bool ws_fold;                    /* the held run spans an obs-fold: emit one SP */
	size_t len[HDR_COUNT];           /* bytes in each captured field */
	char version[VERSION_MAX_BYTES]; /* Sec-WebSocket-Version as sent */
};

static int stop(struct parse *ps, enum http_parse why)
{
	ps->failed = true;
	ps->fail = why;
	/* Not 1: from on_headers_complete that means "no body" and the library
	 * would go on to parse what follows as the next request. */
	return -1;
}

/* The field that header h fills, and its size. */
static char *field_of(struct parse *ps, enum hdr h, size_t *cap)
{
	struct http_request *r = ps->out;
	switch (h) {
	case HDR_UPGRADE:
		*cap = sizeof(r->upgrade_proto);
		return r->upgrade_proto;
	case HDR_WS_KEY:
		*cap = sizeof(r->ws_key);
		return r->ws_key;
	case HDR_WS_PROTOCOL:
		*cap = sizeof(r->ws_protocols);
		return r->ws_protocols;
	case HDR_WS_VERSION:
		*cap = sizeof(ps->version);
		return ps->version;
	case HDR_AUTHORIZATION:
		*cap = sizeof(r->authorization);
		return r->authorization;
	default:
		assert(!"no field for this header");
		return NULL;
	}
}

/* Append n bytes to the current header's field; false if they do not fit
 * (the NUL needs the last byte). */
static bool put(struct parse *ps, const char *s, size_t n)
{
	size_t cap;
	char *dst = field_of(ps, ps->cur, &cap);
	size_t *used = &ps->len[ps->cur];
	if (n >= cap - *used)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (ps->cur == HDR_UPGRADE && c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		dst[(*used)++] = c;
	}
	return true;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
	struct parse *ps = p->data;
	if (n > sizeof(ps->target) - ps->target_len)
		return stop(ps, HTTP_PARSE_TOO_LARGE);
	memcpy(ps->target + ps->target_len, at, n);
	ps->target_len += n;
	return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
	struct parse *ps = p->data;
	/* Built without HTTP_PARSER_STRICT, the library lets SP into names:
	 * "Transfer-Encoding : chunked" would mean one thing to it and another
	 * to a proxy. A server must refuse it [RFC 7230 3.2.4]. */
	if (memchr(at, ' ', n) != NULL)
		return stop(ps, HTTP_PARSE_INVALID);
	if (ps->in_value) {
		ps->in_value = false;
		ps->name_len = 0;
		ps->name_long = false;
	}
	if (ps->name_long || n > sizeof(ps->name) - ps->name_len) {
		ps->name_long = true;
		return 0;
	}
	memcpy(ps->name + ps->name_len, at, n);
	ps->name_len += n;
	return 0;
}

static enum hdr hdr_of(const struct parse *ps)
{
	if (ps->name_long)
		return HDR_NONE;
	for (int h = HDR_NONE + 1; h < HDR_COUNT; h++)
		if (strlen(hdr_info[h].name) == ps->name_len &&
		    strncasecmp(hdr_info[h].name, ps->name, ps->name_len) == 0)
			return (enum hdr)h;
	return HDR_NONE;
}

/*
 * Leading and trailing whitespace of a value is dropped and inner runs are
 * kept as sent, so a whitespace run is held back until a byte that is not
 * whitespace follows it. A run that contains an obs-fold is emitted as one SP.
 */
static int on_header_value(http_parser *p, const char *at, size_t n)
{
	struct parse *ps = p->data;
	if (!ps->in_value) {
		ps->in_value = true;
		ps->cur = hdr_of(ps);
		ps->value_end = at;
		ps->occ_len = 0;
		ps->ws_len = 0;
		ps->ws_fold = false;
		if (ps->cur != HDR_NONE) {
			unsigned bit = 1u << ps->cur;
			if ((ps->seen & bit) && !hdr_info[ps->cur].repeat)
				return stop(ps, HTTP_PARSE_INVALID);
			ps->seen |= bit;
		}
	}
	/* field-value is VCHAR, obs-text, SP and HTAB [RFC 7230 3.2]. The
	 * library refuses a NUL inside a value but not as its first byte, and
	 * a NUL cut short what a C string of the value says. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)at[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return stop(ps, HTTP_PARSE_INVALID);
	}
	if (ps->cur == HDR_NONE)
		return 0;
	if (at != ps->value_end && ps->occ_len > 0)
		ps->ws_fold = true;
	ps->value_end = at + n;
	for (size_t i = 0; i < n; i++) {
		if (at[i] == ' ' || at[i] == '\t') {
			if (ps->ws_len++ == 0)
				ps->ws_at = at + i;
			continue;
		}
		bool ok = true;
		if (ps->occ_len == 0 && ps->len[ps->cur] > 0)
			ok = put(ps, ", ", 2);
		else if (ps->occ_len > 0 && ps->ws_fold)
			ok = put(ps, " ", 1);
		else if (ps->occ_len > 0 && ps->ws_len > 0)
			ok = put(ps, ps->ws_at, ps->ws_len);
		if (!ok || !put(ps, at + i, 1))
			return stop(ps, HTTP_PARSE_INVALID);
		ps->occ_len++;
		ps->ws_len = 0;
		ps->ws_fold = false;
	}
	return 0;
}

/* Copy s[0..n) into a field of HTTP_PATH_MAX bytes; false if it does not fit. */
static bool copy_part(char *dst, const char *s, size_t n)
{
	if (n >= HTTP_PATH_MAX)
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* Split the target into path and query [RFC 7230 5.3]. */
static enum http_parse split_target(struct parse *ps, bool is_connect)
{
	struct http_request *r = ps->out;
	if (is_connect) /* authority-form: no path, keep it for the log line */
		return copy_part(r->path, ps->target, ps->target_len) ? HTTP_PARSE_OK
		                                                      : HTTP_PARSE_TOO_LARGE;
	struct http_parser_url u;
	http_parser_url_init(&u);
	if (http_parser_parse_url(ps->target, ps->target_len, 0, &u) != 0)
		return HTTP_PARSE_INVALID;
	if (u.field_set & (1 << UF_PATH)) {
		if (!copy_part(r->path, ps->target + u.field_data[UF_PATH].off,
		               u.field_data[UF_PATH].len))
			return HTTP_PARSE_TOO_LARGE;
	} else {
		r->path[0] = '/'; /* "http://host" means "/" */
	}
	if ((u.field_set & (1 << UF_QUERY)) &&
	    !copy_part(r->query, ps->target + u.field_data[UF_QUERY].off,
	               u.field_data[UF_QUERY].len))
		return HTTP_PARSE_TOO_LARGE;
	return HTTP_PARSE_OK;
}

/* "13" -> 13; anything but 1..255 in plain decimal -> 0. */
static uint8_t ws_version_of(const char *s, size_t n)
{
	if (n == 0 || n > 3)
		return 0;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	return v <= 255 ? (uint8_t)v : 0;
}

static int on_headers_complete(http_parser *p)
{
	struct parse *ps = p->data;
	struct http_request *r = ps->out;

	/* The library also takes HTTP/0.9 ("GET /") and any other digit. */
	if (p->http_major != 1 || p->http_minor > 9)
		return stop(ps, HTTP_PARSE_INVALID);
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > UINT32_MAX)
		return stop(ps, HTTP_PARSE_INVALID);
	enum http_parse rc = split_target(ps, p->method == HTTP_CONNECT);
	if (rc != HTTP_PARSE_OK)
		return stop(ps, rc);

	r->verb = p->method == HTTP_GET    ? HTTP_VERB_GET
	          : p->method == HTTP_HEAD ? HTTP_VERB_HEAD
	                                   : HTTP_VERB_OTHER;
	r->version_major = (uint8_t)p->http_major;
	r->version_minor = (uint8_t)p->http_minor;
	r->keep_alive = http_should_keep_alive(p) != 0;
	/* Not p->upgrade: the library also sets it for every CONNECT. */
	r->upgrade = (p->flags & F_UPGRADE) && (p->flags & F_CONNECTION_UPGRADE);
	r->ws_version = ws_version_of(ps->version, ps->len[HDR_WS_VERSION]);
	r->content_length = (p->flags & F_CONTENTLENGTH) ? (uint32_t)p->content_length : 0;

	ps->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

enum http_parse http_parse_request(const uint8_t *buf, size_t len, size_t max_head,
                                   struct http_request *out)
{
	assert(out != NULL);
	assert(buf != NULL || len == 0);
	memset(out, 0, sizeof(*out));

	/* Never execute on zero bytes: to the library that means end of stream. */
	size_t n = len < max_head ? len : max_head;
	if (n == 0)
		return len >= max_head ? HTTP_PARSE_TOO_LARGE : HTTP_PARSE_NEED_MORE;

	struct parse ps;
	memset(&ps, 0, sizeof(ps));
	ps.out = out;
	http_parser p;
	http_parser_init(&p, HTTP_REQUEST);
	p.data = &ps;
	size_t used = http_parser_execute(&p, &settings, (const char *)buf, n);
	enum http_errno e = HTTP_PARSER_ERRNO(&p);

	enum http_parse rc;
	if (ps.done && e == HPE_PAUSED && used < n && buf[used] == '\n') {
		out->head_len = used + 1;
		return HTTP_PARSE_OK;
	}
	if (ps.done && e == HPE_PAUSED) /* a non-strict build ends a head at "\r\n\rX" */
		rc = HTTP_PARSE_INVALID;
	else if (ps.failed)
		rc = ps.fail;
	else if (e == HPE_HEADER_OVERFLOW) /* the library's own bound, 80 KiB */
		rc = HTTP_PARSE_TOO_LARGE;
	else if (e != HPE_OK)
		rc = HTTP_PARSE_INVALID;
	else
		rc = len >= max_head ? HTTP_PARSE_TOO_LARGE : HTTP_PARSE_NEED_MORE;
	memset(out, 0, sizeof(*out));
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Responses */

const char *http_reason(int code)
{
	switch (code) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return NULL;
	}
}

/* A bounded writer, as in log.c: once a piece does not fit, nothing more goes. */
struct out {
	char *buf;
	size_t used;
	size_t cap;
	bool cut;
};

static void out_put(struct out *o, const char *s)
{
	size_t n = strlen(s);
	if (o->cut || n > o->cap - o->used) {
		o->cut = true;
		return;
	}
	memcpy(o->buf + o->used, s, n);
	o->used += n;
}

size_t http_format_head(char *buf, size_t cap, int code, const char *content_type,
                        size_t content_length)
{
	const char *reason = http_reason(code);
	assert(reason != NULL);
	assert(buf != NULL || cap == 0);
	assert(content_type == NULL || strpbrk(content_type, "\r\n") == NULL);

	char num[24];
	struct out o = {buf, 0, cap, false};
	snprintf(num, sizeof(num), "%d", code);
	out_put(&o, "HTTP/1.1 ");
	out_put(&o, num);
	out_put(&o, " ");
	out_put(&o, reason);
	out_put(&o, "\r\n");
	if (code == 204) {
		assert(content_length == 0);
	} else {
		if (content_type != NULL) {
			out_put(&o, "Content-Type: ");
			out_put(&o, content_type);
			out_put(&o, "\r\n");
		}
		snprintf(num, sizeof(num), "%zu", content_length);
		out_put(&o, "Content-Length: ");
		out_put(&o, num);
		out_put(&o, "\r\n");
	}
	if (code == 405)
		out_put(&o, "Allow: GET, HEAD\r\n");
	out_put(&o, "Connection: close\r\n\r\n");
	return o.cut ? 0 : o.used;
}
