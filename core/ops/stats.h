/*
 * stats.h — a worker's counters and gauges, and how other threads read them
 * without a lock on the hot path (issue 6: "per-worker counters are summed
 * at scrape time without locks").
 *
 * The owning worker updates its struct worker_stats with plain stores: no
 * atomic read-modify-write, no shared cache line on the publish path. Every
 * STATS_PUBLISH_MS (and when it stops) it copies the struct word by word into
 * its struct stats_pub with relaxed atomic stores; the ops thread (/metrics,
 * /healthz) and worker 0 ($SYS) read that copy with relaxed loads. A reader
 * may see a snapshot torn between two publications (one counter from this
 * one, the next from the last): each value is still one that was true, which
 * is all Prometheus counters need.
 *
 * Every field is a uint64_t so the struct is an array of words; a field's
 * word index is offsetof()/8 (metrics.c renders from that).
 */
#ifndef STARLING_CORE_STATS_H
#define STARLING_CORE_STATS_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define STATS_PUBLISH_MS 100 /* how stale a scrape may be, at most (plus one turn) */

/* Why a connection ended: the label of starling_connections_closed_total. */
enum close_reason {
	CLOSE_UNSET = 0,         /* conn_close() derives it from the reason code */
	CLOSE_CLIENT_DISCONNECT, /* the client sent DISCONNECT */
	CLOSE_PEER_CLOSED,       /* end of stream without DISCONNECT */
	CLOSE_SOCKET_ERROR,      /* a receive or send failed */
	CLOSE_CONNECT_TIMEOUT,   /* no CONNECT within connect_timeout_ms */
	CLOSE_CONNECT_REFUSED,   /* CONNECT refused (CONNACK failure) or unreadable */
	CLOSE_KEEPALIVE_TIMEOUT, /* 0x8D */
	CLOSE_PROTOCOL_ERROR,    /* malformed or forbidden packets (0x81, 0x82, ...) */
	CLOSE_TAKEN_OVER,        /* 0x8E: the client id connected again */
	CLOSE_LIMIT,             /* 0x93, 0x95, 0x96, 0x97, 0x9F: a limit was exceeded */
	CLOSE_SERVER_ERROR,      /* 0x80, 0x83, 0x88, 0x89: out of memory, busy */
	CLOSE_SHUTDOWN,          /* 0x8B: the node is stopping */
	CLOSE_TLS_HANDSHAKE,     /* the TLS handshake failed (tls_fail says why) */
	CLOSE_REASON_COUNT
};

/* Why a TLS handshake failed: the label of
 * starling_tls_handshake_failures_total. */
enum tls_fail {
	TLS_FAIL_NOT_TLS = 0,      /* the first bytes were not a TLS record (plaintext MQTT) */
	TLS_FAIL_VERSION,          /* below TLS 1.2, or no version in common */
	TLS_FAIL_NO_CERT,          /* a client certificate is required and none came */
	TLS_FAIL_CERT_UNTRUSTED,   /* the client's certificate does not chain to tls_ca_file */
	TLS_FAIL_CERT_EXPIRED,     /* ... or is outside its validity period */
	TLS_FAIL_CERT_INVALID,     /* ... or fails another check (purpose, signature) */
	TLS_FAIL_PEER_ALERT,       /* the client gave up with an alert (e.g. it distrusts us) */
	TLS_FAIL_NO_SHARED_CIPHER, /* no cipher, suite or group in common */
	TLS_FAIL_TIMEOUT,          /* not finished within connect_timeout_ms */
	TLS_FAIL_CLOSED,           /* the connection ended in the middle */
	TLS_FAIL_OTHER,            /* any other protocol error */
	TLS_FAIL_COUNT
};

/* CONNECT outcomes by CONNACK reason code: 0x00 and 0x80..0x9F have a slot
 * each, anything else the last one. */
#define STATS_CONNACK_SLOTS 34

/* Loop turn busy time, a Prometheus histogram: upper bounds in ns, the last
 * bucket is +Inf. */
#define STATS_LOOP_BUCKETS 14
extern const uint64_t stats_loop_bounds_ns[STATS_LOOP_BUCKETS - 1];

struct worker_stats {
	/* Counters (since start) */
	uint64_t conns_accepted;
	uint64_t conns_refused;          /* over max_connections */
	uint64_t conns_refused_listener; /* over listener_max_connections */
	uint64_t conns_refused_rate;     /* over connect_rate_per_address */
	uint64_t accept_errors;          /* accepts that failed: no descriptors or memory left */
	uint64_t partial_over_budget;    /* closed: partial_packets_bytes_max reached */
	uint64_t partial_timeouts; /* closed: a packet not finished in packet_receive_timeout_ms */
	uint64_t conns_closed[CLOSE_REASON_COUNT]; /* by enum close_reason */
	uint64_t connack[STATS_CONNACK_SLOTS];     /* by stats_connack_slot() */
	uint64_t msgs_in[3];                       /* PUBLISH received, by QoS */
	uint64_t msgs_out[3];                      /* PUBLISH sent, by QoS */
	uint64_t bytes_in;                         /* bytes received from clients */
	uint64_t bytes_out;                        /* bytes sent to clients */
	uint64_t drops_outbox;                     /* QoS 0 dropped: outbox full */
	uint64_t drops_oversize;       /* skipped: over the client's maximum packet size */
	uint64_t drops_queue;          /* lost to session queue limits */
	uint64_t drops_expired;        /* expired before delivery */
	uint64_t drops_transit;        /* QoS 0 not sent to a worker that fell behind */
	uint64_t drops_no_subscribers; /* PUBLISH that matched nobody */
	uint64_t drops_denied;         /* PUBLISH refused by authorization */
	uint64_t mbox_overflows;       /* pushes that found a mailbox full */
	uint64_t lookups_dropped;      /* retained lookups of new subscriptions not answered */
	uint64_t loop_turns;
	uint64_t loop_busy_ns;                       /* sum of turn busy times */
	uint64_t loop_busy_hist[STATS_LOOP_BUCKETS]; /* per bucket, not cumulative */
	uint64_t sends;                              /* send operations submitted */
	uint64_t tls_handshakes;                     /* TLS handshakes completed */
	uint64_t tls_failures[TLS_FAIL_COUNT];       /* TLS handshakes failed, by enum tls_fail */
	/* The journal (core/persist/journal.c; zero with persistence off) */
	uint64_t journal_records;   /* records appended */
	uint64_t journal_bytes;     /* bytes written */
	uint64_t journal_commits;   /* writes (with fsync: group commits) */
	uint64_t journal_fsyncs;    /* fdatasyncs completed */
	uint64_t journal_errors;    /* writes or fsyncs that failed */
	uint64_t journal_refused;   /* persistent work refused: journal failing */
	uint64_t journal_commit_ns; /* sum of commit latencies */
	uint64_t journal_commit_hist[STATS_LOOP_BUCKETS]; /* submit to durable, per bucket */

	/* Gauges (now), refreshed by the worker's sweep */
	uint64_t conns_current;
	uint64_t sessions_online;
	uint64_t sessions_offline;
	uint64_t queued_msgs; /* messages waiting in this worker's sessions' queues */
	uint64_t queued_bytes;
	uint64_t inflight; /* outbound QoS 1/2 awaiting acknowledgement */
	uint64_t retained; /* retained messages in this worker's shard */
	uint64_t retained_bytes;
	uint64_t subscriptions; /* in this worker's copy of the node's index */
	uint64_t shared_groups; /* likewise */
	uint64_t mbox_backlog;  /* messages in this worker's overflow toward others */
	/* A stall's traces, over the last 10 to 20 s (two windows of STALL_WINDOW_MS): */
	uint64_t loop_turn_max_ns; /* the longest turn's busy time */
	uint64_t mbox_depth_max;   /* the most messages waiting in our mailboxes at a drain */
	uint64_t journal_failing;  /* 1 while the journal cannot write (disk full, I/O error) */
	uint64_t journal_waiting;  /* bytes appended and not yet durable */
	uint64_t last_turn_ms;     /* monotonic time of the last loop turn: liveness */
};

#define STATS_WORDS       (sizeof(struct worker_stats) / sizeof(uint64_t))
#define STATS_WORD(field) (offsetof(struct worker_stats, field) / sizeof(uint64_t))

/* The copy other threads read; written only by the owning worker. */
struct stats_pub {
	alignas(64) _Atomic uint64_t word[STATS_WORDS];
};

/* Owner: make s visible to readers. */
void stats_publish(struct stats_pub *p, const struct worker_stats *s);
/* Any thread: the last published values. */
void stats_read(const struct stats_pub *p, struct worker_stats *out);
/* out += in, field by field (gauges add too: per-worker parts of a node-wide
 * figure; the index-copy gauges are per worker and not summed by callers). */
void stats_add(struct worker_stats *out, const struct worker_stats *in);

/* rc: an MQTT reason code (enum mqtt_rc); this header names no protocol type,
 * so the transport can count into the same struct. */
unsigned stats_connack_slot(unsigned rc);
/* The reason code of a slot (slot 33, "other", gives 0xFF). */
unsigned stats_connack_code(unsigned slot);
unsigned stats_loop_bucket(uint64_t busy_ns);
/* What a close with this server reason code counts as (rc != 0). */
enum close_reason stats_close_reason_of(unsigned rc);
const char *stats_close_reason_name(enum close_reason r);
const char *stats_tls_fail_name(enum tls_fail f);

#endif
