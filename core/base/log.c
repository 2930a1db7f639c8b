/*
 * log.c — owns the log level, the line format and the one write(2) per line.
 * Any thread may call log_msg and the LOG_* macros; log_init runs on the main
 * thread before workers start. A line is built in a stack buffer and written
 * whole: a write of at most LOG_LINE_MAX (= PIPE_BUF) bytes to a pipe is
 * atomic, so concurrent lines never interleave and no lock is needed.
 *
 * Logging never changes errno: callers log strerror(errno) and then go on
 * to test errno.
 */
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Atomic int log_threshold = LOG_INFO;
static _Atomic bool log_json_mode = false;

void log_init(enum log_level level, bool json)
{
	atomic_store_explicit(&log_json_mode, json, memory_order_relaxed);
	atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
}

static const char *const level_upper[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const level_lower[] = {"error", "warn", "info", "debug"};

/* A bounded writer: each escape unit goes in whole or not at all, so a cut
 * line never ends inside "\u00". */
struct out {
	char *buf;
	size_t used;
	size_t limit; /* room for the message; the tail is reserved past it */
	bool cut;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->cut || o->used + n > o->limit) {
		o->cut = true;
		return;
	}
	memcpy(o->buf + o->used, s, n);
	o->used += n;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	uint32_t cp;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static void put_escaped(struct out *o, const char *msg, bool json)
{
	const unsigned char *p = (const unsigned char *)msg;
	while (*p != '\0' && !o->cut) {
		unsigned char c = *p;
		char esc[8];
		if (c == '\n' || c == '\r' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			put(o, esc, 2);
			p++;
		} else if (c < 0x20 || (c == 0x7F && !json)) {
			snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", c);
			put(o, esc, strlen(esc));
			p++;
		} else if (json && (c == '"' || c == '\\')) {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(o, esc, 2);
			p++;
		} else if (json && c >= 0x80) {
			size_t n = utf8_len(p);
			if (n == 0) {
				put(o, "\\ufffd", 6);
				n = 1;
			} else {
				put(o, (const char *)p, n);
			}
			p += n;
		} else {
			put(o, (const char *)p, 1);
			p++;
		}
	}
}

size_t log_format(char *buf, size_t len, enum log_level level, bool json,
                  const struct timespec *now, const char *msg)
{
	static const char cut_mark[] = "...";
	char ts[40];
	struct tm tm;
	time_t sec = now->tv_sec;
	gmtime_r(&sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now->tv_nsec / 1000000);

	int lv = (int)level;
	if (lv < 0 || lv > LOG_DEBUG)
		lv = LOG_ERROR;

	/* Reserve the tail ("..." + "\"}\n" + NUL) before the message. */
	const char *tail = json ? "\"}\n" : "\n";
	size_t reserve = sizeof(cut_mark) - 1 + strlen(tail) + 1;
	if (len < 64)
		return 0;
	struct out o = {buf, 0, len - reserve, false};
	int h;
	if (json)
		h = snprintf(buf, len, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts,
		             level_lower[lv]);
	else
		h = snprintf(buf, len, "%s %s ", ts, level_upper[lv]);
	o.used = (size_t)h < o.limit ? (size_t)h : o.limit;
	put_escaped(&o, msg, json);
	if (o.cut) {
		memcpy(buf + o.used, cut_mark, sizeof(cut_mark) - 1);
		o.used += sizeof(cut_mark) - 1;
	}
	memcpy(buf + o.used, tail, strlen(tail) + 1);
	return o.used + strlen(tail);
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	int saved = errno;
	char msg[LOG_LINE_MAX];
	char line[LOG_LINE_MAX];
	struct timespec now;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	size_t n =
	    log_format(line, sizeof(line), level,
	               atomic_load_explicit(&log_json_mode, memory_order_relaxed), &now, msg);
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break; /* nowhere left to report it */
		off += (size_t)w;
	}
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

bool log_ratelimit_at(struct log_ratelimit *rl, uint32_t per_second, uint64_t now_ms,
                      uint32_t *suppressed_out)
{
	*suppressed_out = 0;
	if (rl->window_start_ms == 0 || now_ms - rl->window_start_ms >= 1000) {
		*suppressed_out = rl->suppressed;
		rl->window_start_ms = now_ms != 0 ? now_ms : 1; /* 0 means "never opened" */
		rl->passed = 0;
		rl->suppressed = 0;
	}
	if (rl->passed < per_second) {
		rl->passed++;
		return true;
	}
	if (rl->suppressed < UINT32_MAX)
		rl->suppressed++;
	return false;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint32_t per_second, const char *what)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
	uint32_t suppressed;
	bool ok = log_ratelimit_at(rl, per_second, ms, &suppressed);
	if (suppressed > 0 && log_enabled(LOG_WARN)) {
		const char *cut = rl->what ? rl->what : "";
		log_msg(LOG_WARN, "%u similar lines suppressed: \"%.*s%s\"", suppressed,
		        LOG_RL_WHAT_MAX, cut, strlen(cut) > LOG_RL_WHAT_MAX ? "..." : "");
	}
	if (!ok)
		rl->what = what;
	return ok;
}
