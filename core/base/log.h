/*
 * log.h — a small leveled logger: one line per event on stderr, plain text or
 * one JSON object per line, safe to call from any thread.
 *
 * Use the macros: LOG_INFO("listening on %s", addr). They test the level
 * before evaluating the arguments, so a disabled LOG_DEBUG costs one load.
 * (The macros share their names with the enum log_level constants of
 * config.h; a function-like macro only expands when followed by '(', so
 * LOG_INFO alone still names the level.)
 */
#ifndef STARLING_CORE_LOG_H
#define STARLING_CORE_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "base/config.h" /* enum log_level */

#define LOG_LINE_MAX 4096 /* bytes per line, newline included; longer is cut with "..." */

/* Most verbose level written; read by every LOG_* macro, so atomic. */
extern _Atomic int log_threshold;

/* Set the level and format; call on the main thread before workers start.
 * Until called: info, plain text. */
void log_init(enum log_level level, bool json);

static inline bool log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

/* Format and write one line with a single write(2), so lines from different
 * threads never interleave. Writes regardless of the level: use the macros. */
__attribute__((format(printf, 2, 3))) void log_msg(enum log_level level, const char *fmt, ...);
__attribute__((format(printf, 2, 0))) void log_vmsg(enum log_level level, const char *fmt,
                                                    va_list ap);

#define LOG_AT(level, ...)                                                                         \
	do {                                                                                       \
		if (log_enabled(level))                                                            \
			log_msg(level, __VA_ARGS__);                                               \
	} while (0)
#define LOG_ERROR(...) LOG_AT(LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  LOG_AT(LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...)  LOG_AT(LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_DEBUG, __VA_ARGS__)

/*
 * Flood control for lines a client can trigger at will. The state belongs to
 * one thread (declare it _Thread_local or in a per-worker struct). At most
 * per_second lines pass per one-second window; the first call after a window
 * with suppressed lines writes, at warn level, which line it was:
 * `12 similar lines suppressed: "refused %s on %s: %s (0x%02X)"` (the call
 * site's format, its first LOG_RL_WHAT_MAX bytes).
 */
#define LOG_RL_WHAT_MAX 120
struct log_ratelimit {
	uint64_t window_start_ms; /* CLOCK_MONOTONIC ms when the window opened */
	uint32_t passed;          /* lines let through in this window */
	uint32_t suppressed;      /* lines refused in this window */
	const char *what;         /* the last refused line's format (a literal) */
};

/* what: the format of the line being limited (a string that outlives rl:
 * the macros pass their literal), named by the summary. */
bool log_ratelimit_ok(struct log_ratelimit *rl, uint32_t per_second, const char *what);

/* The same decision at an explicit time, for tests: returns whether the line
 * may pass and stores in *suppressed_out how many lines the window that just
 * closed refused (0 if none closed). */
bool log_ratelimit_at(struct log_ratelimit *rl, uint32_t per_second, uint64_t now_ms,
                      uint32_t *suppressed_out);

/* LOG_WARN_RL(10, "bad packet from %s", id): at most 10 per second per call
 * site and thread. */
#define LOG_FIRST_(first, ...) first
#define LOG_AT_RL(level, per_second, ...)                                                          \
	do {                                                                                       \
		static _Thread_local struct log_ratelimit log_rl_;                                 \
		if (log_enabled(level) &&                                                          \
		    log_ratelimit_ok(&log_rl_, (per_second), LOG_FIRST_(__VA_ARGS__, "")))         \
			log_msg(level, __VA_ARGS__);                                               \
	} while (0)
/* Lines about one client's connection (connected, refused, closing, why):
 * per call site and worker, so a flood of bad clients costs a few lines a
 * second and a summary of what was suppressed. */
#define LOG_CLIENT_RL                 50
#define LOG_ERROR_RL(per_second, ...) LOG_AT_RL(LOG_ERROR, per_second, __VA_ARGS__)
#define LOG_WARN_RL(per_second, ...)  LOG_AT_RL(LOG_WARN, per_second, __VA_ARGS__)
#define LOG_INFO_RL(per_second, ...)  LOG_AT_RL(LOG_INFO, per_second, __VA_ARGS__)

/*
 * Format one complete line (timestamp, level, message, newline) into buf of
 * len bytes (len >= 64) and return its length. Control characters in msg are
 * escaped in both formats so a client id cannot forge a line; in JSON mode
 * invalid UTF-8 becomes U+FFFD. Exposed for tests.
 */
size_t log_format(char *buf, size_t len, enum log_level level, bool json,
                  const struct timespec *now, const char *msg);

#endif
