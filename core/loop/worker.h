/*
 * worker.h — a worker (one thread, one io_uring ring) as the sum of its
 * rooms' parts, and the broker (what every worker shares). Each part's type
 * lives with its room and only that room writes it: the ring and the mail
 * (io/), the connections (transport/), the session table (session/), the
 * routing state (route/), the protocol's state (mqtt/), the counters
 * (ops/). The loop (worker.c) runs the steps of a turn over them.
 *
 * Rooms below mqtt/ never see this header: they get their own part and what
 * it needs (the clock, the counters, the mail) at init. mqtt/ and ops/ use
 * it to reach the parts of their worker.
 *
 * Ownership (DESIGN.md "Ownership"): a connection and its attached session
 * belong to exactly one worker; only that worker's thread reads or writes
 * them. Other workers reach them only through mailboxes.
 */
#ifndef STARLING_CORE_WORKER_H
#define STARLING_CORE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/config.h"
#include "io/mail.h"
#include "io/ring.h"
#include "mqtt/client.h"
#include "ops/cluster_view.h"
#include "ops/stats.h"
#include "persist/barrier.h"
#include "persist/compact.h"
#include "persist/journal.h"
#include "persist/recover.h"
#include "route/route.h"
#include "session/registry.h"
#include "session/sessions.h"
#include "transport/conn.h"

#define WORKERS_MAX CONFIG_WORKERS_MAX

struct worker;
struct tls;
struct sys_state;

/*
 * An extension of every worker: code above the core (the cluster's link)
 * that runs on the workers' threads without the core knowing it. It
 * registers what it needs at init (a layer above the transport for its
 * listeners, mail kinds of its range); the loop then calls it once a turn,
 * right after the mail step, and hands it the completions of OP_EXT.
 * Every function may be NULL.
 */
struct worker_ext {
	void *ctx;
	/* NULL, or an address every worker listens on (LISTENER_LINK) for the
	 * layer above of index `upper` (transport_add_upper at init), which
	 * also gets a LISTENER_DIAL for the connections it dials. */
	const struct config_addr *listen;
	uint8_t upper;
	/* Before the worker's thread starts (main thread): 0, or -1 with the
	 * reason logged. */
	int (*init)(void *ctx, struct worker *w);
	/* On the worker's thread, once its ring exists. */
	void (*start)(void *ctx, struct worker *w);
	/* Once a turn, after the mail was drained. */
	void (*turn)(void *ctx, struct worker *w);
	/* A completion of kind OP_EXT. */
	void (*completion)(void *ctx, struct worker *w, const struct completion *cqe);
	/* The worker is freed (main thread, after the loop ended). */
	void (*fini)(void *ctx, struct worker *w);
};

/* What every worker shares. Immutable after broker_start() except the
 * atomics and what their comments say. */
struct broker {
	const struct config *cfg;
	unsigned worker_count;
	struct worker **workers;          /* [worker_count] */
	struct mbox **mboxes;             /* [from * worker_count + to]; NULL when from == to */
	int *ring_fds;                    /* [worker_count]: each worker's ring, set before the
	                                   * start barrier (wake-ups) */
	struct registry *registry;        /* client id -> session; locked inside */
	struct auth *auth;                /* access policy (auth.h); shared, thread-safe */
	struct transport_node tnode;      /* listeners and connection counts */
	atomic_uint sess_count;           /* sessions on the node, online and offline (limit) */
	atomic_bool stopping;             /* main: SIGTERM seen; /readyz answers 503 */
	atomic_uint stop_wills_out;       /* workers whose shutdown wills are all in mailboxes */
	atomic_ullong rx_bytes;           /* rx buffers of incomplete packets, node-wide (budget) */
	pthread_barrier_t start_barrier;  /* workers and main: every ring is up */
	bool start_failed;                /* main: listeners failed, workers must exit */
	uint64_t start_ms;                /* monotonic start time */
	struct tls *tls;                  /* TLS context (tls.h); NULL without tls_listen */
	struct cluster_view cluster_view; /* written by the cluster's thread (cluster/node.c) */
	struct worker_ext ext;            /* the workers' extension; zero: none */
	struct recover_result recovered;  /* what the journal gave back at start */
	struct compact_node compact;      /* persistence: compaction's shared part */
	int data_lock;                    /* persistence: data_dir/LOCK, held (persist_cmd.h) */
	_Atomic uint64_t retain_stamp;    /* persistence: the node-wide order of retained
	                                   * writes (persist/retained.h) */
	_Atomic uint64_t sess_stamp;      /* persistence: the node-wide order of session
	                                   * records (persist/session_journal.h) */
	uint64_t run;                  /* persistence: this start's number (record.h: rec_place) */
	unsigned bridge_listener0;     /* the pseudo-listener of cfg->bridges[0]; the rest follow */
	struct bridge_dns *bridge_dns; /* the bridges' addresses (bridge_dns.h) */
	struct bridge_pub *bridge_pub; /* [cfg->bridge_count]: their figures (bridge.h) */
};

/* A worker's way out on SIGTERM (stop.c): every session's will is published
 * first, and connections stay open until what they are owed has gone out,
 * as far as their windows allow, within half of shutdown_grace_ms; the
 * other half is for their DISCONNECT and last bytes. */
enum stop_phase {
	STOP_NONE = 0, /* serving */
	STOP_WILLS,    /* our wills are published; their mail may still wait in our overflow */
	STOP_SETTLE,   /* ours are in the mailboxes: deliver, once every worker's are too */
	STOP_CLOSING,  /* connections told (0x8B) and closing; exit when none is left */
};

/* A completion handler, by op kind (io/op.h). */
typedef void (*op_fn)(struct worker *w, const struct completion *cqe);

struct worker {
	uint16_t id;
	struct broker *b;
	const struct config *cfg;
	pthread_t thread;
	uint64_t now_ms; /* the clock, read at the top of each turn and after each wait */

	/* io/ */
	struct ring ring;
	struct mail mail;
	/* the rooms */
	struct transport tp;
	struct sessions sessions;
	struct router route;
	struct mqtt_worker mq;
	struct ack_barrier barrier; /* the journal's position; output waits on it (barrier.h) */
	struct journal journal;     /* persistence on: this worker's journal (journal.h) */
	struct compact compact;     /* and its part in compaction (compact.h) */

	/* the loop (worker.c, stop.c) */
	int stop_fd; /* eventfd: the main thread writes to stop us */
	uint64_t stop_buf;
	atomic_bool stopping;     /* set by the main thread, read by us */
	uint8_t stop_phase;       /* enum stop_phase */
	uint64_t stop_began_ms;   /* when the stop began (the grace counts from here) */
	bool init_failed;         /* ring setup failed in the worker thread */
	uint64_t next_sweep_ms;   /* next timer sweep */
	uint64_t next_report_ms;  /* next drop report */
	uint64_t next_publish_ms; /* next stats_publish() */

	/* ops/ */
	struct worker_stats st;
	struct worker_stats st_reported; /* st at the last drop report */
	struct stats_pub pub;            /* st as other threads see it (stats.h) */
	struct sys_state *sys;           /* worker 0: $SYS publishing state; else NULL */
	/* The maxima behind st.loop_turn_max_ns and st.mbox_depth_max: this
	 * window's [0] and the previous one's [1], turned every STALL_WINDOW_MS. */
	uint64_t turn_max_ns[2];
	uint64_t depth_max[2];
	uint64_t stall_window_end_ms;
};

/* broker.c */
/* The workers cfg asks for: its workers key, or one per online CPU; at most
 * WORKERS_MAX. */
unsigned broker_worker_count(const struct config *cfg);
/* 0, or -1 with err saying why in one line (port in use, no ring ...).
 * ext (NULL: none) extends every worker (struct worker_ext). */
int broker_start(struct broker *b, const struct config *cfg, const struct worker_ext *ext,
                 char *err, size_t err_len);
/* Ask every worker to stop (they drain and exit); broker_stop also joins them. */
void broker_signal_stop(struct broker *b);
void broker_stop(struct broker *b);
void broker_free(struct broker *b);

/* worker.c: the loop */
struct worker *worker_new(struct broker *b, uint16_t id);
void worker_free(struct worker *w);
void *worker_main(void *arg);

/* stop.c: the shutdown's phases */
void stop_begin(struct worker *w);
void stop_step(struct worker *w);

#endif
