/*
 * stats.h — the counters and histograms of one worker, and their merge.
 *
 * A worker writes its own struct stats (in shared memory) and nobody else
 * writes it; the coordinator reads copies for the live line, and merged
 * copies travel from agents to the controller as bytes. Counters are
 * cumulative since the worker started; rates are computed by the reader.
 */
#ifndef STARLING_BENCH_STATS_H
#define STARLING_BENCH_STATS_H

#include <stdint.h>

#include "hist.h"

enum fail_reason {
	FAIL_REFUSED = 0, /* ECONNREFUSED */
	FAIL_TIMEOUT,     /* connect/handshake/CONNACK/SUBACK deadline passed */
	FAIL_RESET,       /* ECONNRESET, EPIPE */
	FAIL_ADDR,        /* EADDRNOTAVAIL, EADDRINUSE: source ports ran out */
	FAIL_FD,          /* EMFILE, ENFILE, ENOBUFS, ENOMEM on socket() */
	FAIL_CONNACK,     /* CONNACK with a refusal code */
	FAIL_SUBACK,      /* SUBACK refused a filter */
	FAIL_TLS,         /* TLS handshake or record error */
	FAIL_WS,          /* WebSocket upgrade refused, malformed or cut off */
	FAIL_PROTOCOL,    /* the broker sent something malformed or unexpected */
	FAIL_CLOSED,      /* the broker closed the connection (EOF or DISCONNECT) */
	FAIL_OTHER,       /* any other errno */
	FAIL_COUNT,
};

const char *stats_fail_name(enum fail_reason r);

struct stats {
	uint64_t clients;          /* clients this worker owns */
	uint64_t conn_attempts;    /* TCP connects started */
	uint64_t conn_ok;          /* CONNACK accepted */
	uint64_t conn_up;          /* connected now (gauge) */
	uint64_t conn_failed;      /* attempts that never reached CONNACK accepted */
	uint64_t conn_lost;        /* connections lost after CONNACK, not by us */
	uint64_t fail[FAIL_COUNT]; /* conn_failed + conn_lost by reason */
	uint64_t subs_ok;          /* subscribers whose SUBACK granted */
	uint64_t subs_failed;      /* subscribers that will never subscribe */
	uint64_t pubs_done;        /* publishers finished (or failed) */
	uint64_t published;        /* PUBLISH sent */
	uint64_t acked;            /* PUBACK / PUBCOMP received */
	uint64_t pub_refused;      /* v5 PUBACK/PUBREC with a reason >= 0x80 */
	uint64_t expected;         /* deliveries the published messages should make */
	uint64_t delivered;        /* distinct deliveries (first receipt) */
	uint64_t duplicates;       /* receipts of an already delivered message */
	uint64_t out_of_order;     /* distinct deliveries after a higher sequence */
	uint64_t foreign;          /* PUBLISH without our header or from another run */
	uint64_t untracked;        /* deliveries the tracker had no room for */
	uint64_t e2e_stalls;       /* end-to-end window heads given up on (loss) */
	uint64_t clock_skew;       /* deliveries with a timestamp in the future */
	uint64_t bytes_out;        /* TCP payload bytes sent */
	uint64_t bytes_in;         /* TCP payload bytes received */
	uint64_t rss_base_bytes;   /* worker RSS before the first connect */
	uint64_t rss_bytes;        /* worker RSS now */
	struct hist latency_ns;    /* publish -> delivery, per delivery */
	struct hist connect_ns;    /* socket -> CONNACK, per connection */
};

void stats_init(struct stats *s);
void stats_merge(struct stats *dst, const struct stats *src);

#endif
