/*
 * stats.c — merging worker counters (see stats.h). Gauges (conn_up, RSS,
 * clients) add up too: merged they describe the whole run.
 */
#include "stats.h"

#include <stddef.h>
#include <string.h>

static const char *const fail_names[FAIL_COUNT] = {
    "refused",          "timeout",        "reset", "source_exhausted", "no_fd",
    "connack_refused",  "suback_refused", "tls",   "ws_handshake",     "protocol",
    "closed_by_broker", "other",
};

const char *stats_fail_name(enum fail_reason r)
{
	return r < FAIL_COUNT ? fail_names[r] : "?";
}

void stats_init(struct stats *s)
{
	memset(s, 0, sizeof(*s));
	hist_init(&s->latency_ns);
	hist_init(&s->connect_ns);
}

void stats_merge(struct stats *dst, const struct stats *src)
{
	/* every field before the histograms is a uint64_t counter */
	const size_t n = offsetof(struct stats, latency_ns) / sizeof(uint64_t);
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;
	for (size_t i = 0; i < n; i++)
		d[i] += s[i];
	hist_merge(&dst->latency_ns, &src->latency_ns);
	hist_merge(&dst->connect_ns, &src->connect_ns);
}
